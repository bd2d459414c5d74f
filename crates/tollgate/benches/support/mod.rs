//! What several benches share (each bench is its own crate and includes
//! this with `#[path]`).
#![allow(dead_code)]

use std::sync::Arc;

use tollgate::auth::{AuthMethod, Principal};
use tollgate::config::{Price, PrincipalKind};
use tollgate::limits::Demand;

/// A user with one group, a tenant and an API key: every limit dimension set.
pub(crate) fn alice() -> Principal {
    Principal {
        subject: "alice".into(),
        kind: PrincipalKind::User,
        groups: Arc::from(vec!["eng".to_string()]),
        tenant: Some("acme".into()),
        key_id: Some("k1".into()),
        issuer: None,
        method: AuthMethod::ApiKey,
        claims: None,
    }
}

/// A chat request's estimate: 120 prompt tokens, `max_tokens` 256.
pub(crate) fn demand() -> Demand {
    Demand {
        prompt: 120,
        completion: 256,
        price: Price {
            input_per_mtok: 2.5,
            output_per_mtok: 10.0,
        },
    }
}
