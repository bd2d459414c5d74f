//! The data-plane HTTP surface: routes, the request-id edge middleware and
//! the OpenAI-shaped handlers. Handlers are thin: model calls go straight
//! into `crate::pipeline::handle`.

mod anthropic;
mod databricks;
pub mod error;
mod forward;
mod jobs;
mod mcp;
mod mcp_reply;
mod me;
mod openai;
mod prompts;
pub mod protocol;
mod reply;
mod responses;

pub use openai::router;

/// The answer to a data-plane request shed because `limit` requests are in
/// flight (`server.max_concurrent_requests`): 503 with `Retry-After: 1`,
/// in the caller's error shape as told by the path, with its request id.
/// Made before any routing, so it costs next to nothing.
pub fn overloaded(headers: &http::HeaderMap, path: &str, limit: usize) -> axum::response::Response {
    let shape = protocol::api_shape(path);
    let mut resp = error::Render::into_response_shaped(error::overloaded(limit), shape);
    if let Some(id) = openai::request_id_for(headers) {
        resp.headers_mut().insert(crate::pipeline::REQUEST_ID, id);
    }
    resp
}
