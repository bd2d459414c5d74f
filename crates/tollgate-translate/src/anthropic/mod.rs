//! OpenAI ⇄ Anthropic Messages: requests, responses, streams, errors.
//! Used by the `anthropic` provider (egress), the `/v1/messages` routes
//! (ingress) and the mock upstream's Anthropic endpoint.

pub mod request;
pub mod response;
pub mod stream;

pub use request::{from_anthropic, make_portable, to_anthropic, DEFAULT_MAX_TOKENS};
pub use response::{error_body, error_type, from_openai, to_openai};
pub use stream::{error_event, FromOpenAi, ToOpenAi};
