//! The MCP gateway's HTTP surface: Streamable HTTP at `/mcp/{server}`
//! (POST a message, DELETE the session, GET the server-to-client stream) and the OAuth
//! protected-resource metadata that points MCP clients at the issuers.
//! Handlers only call `pipeline::mcp` and render its typed answer
//! (`mcp_reply.rs`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::HeaderMap;

use super::mcp_reply;
use crate::pipeline::{self, mcp};
use crate::server::AppState;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/mcp", get(servers))
        .route("/mcp/{server}", get(listen).post(post).delete(delete))
        .route("/.well-known/oauth-protected-resource", get(metadata_root))
        .route(
            "/.well-known/oauth-protected-resource/mcp/{server}",
            get(metadata),
        )
}

async fn servers(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match mcp::list_servers(app, headers).await {
        Ok(names) => mcp_reply::servers(&names),
        Err(f) => mcp_reply::error(&f),
    }
}

async fn post(
    State(app): State<Arc<AppState>>,
    Path(server): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = pipeline::request_body(body);
    mcp_reply::posted(mcp::handle_post(app, server, headers, body).await)
}

async fn listen(
    State(app): State<Arc<AppState>>,
    Path(server): Path<String>,
    headers: HeaderMap,
) -> Response {
    match mcp::handle_get(app, server, headers).await {
        Ok(events) => mcp_reply::listened(events),
        Err(refused) => mcp_reply::whole(refused),
    }
}

async fn delete(
    State(app): State<Arc<AppState>>,
    Path(server): Path<String>,
    headers: HeaderMap,
) -> Response {
    mcp_reply::whole(mcp::handle_delete(app, server, headers).await)
}

async fn metadata(
    State(app): State<Arc<AppState>>,
    Path(server): Path<String>,
    headers: HeaderMap,
) -> Response {
    mcp_reply::metadata(mcp::resource_metadata(
        &app.snapshot.load(),
        &headers,
        Some(&server),
    ))
}

async fn metadata_root(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    mcp_reply::metadata(mcp::resource_metadata(&app.snapshot.load(), &headers, None))
}
