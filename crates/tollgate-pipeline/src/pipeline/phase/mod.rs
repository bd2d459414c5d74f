//! The phases, one module each, called in order by `pipeline::run`. Each
//! takes what the earlier phases produced as a typed value (the request
//! advances Authenticated → Call → Target → Routed → Admitted → Guarded →
//! Served) and records what the ledger needs in the `RequestCtx`.

pub(super) mod admit;
pub(super) mod attempt;
pub(super) mod authenticate;
pub(super) mod authorize;
pub(super) mod guard_input;
pub(super) mod ingress;
pub(super) mod lookup;
pub(super) mod resolve;
pub(super) mod respond;
pub(super) mod route;

use std::sync::Arc;

use bytes::Bytes;
use tollgate_guardrails::{Masker, Restorer};
use tollgate_policy::auth::Identity;
use tollgate_policy::guard::GuardPolicy;
use tollgate_policy::limits::RateHeaders;

use super::attempt::Plan;
use super::ingress::Parsed;
use crate::snapshot::Resolved;

/// Phase 1's result: who is calling.
pub(super) struct Authenticated {
    pub identity: Identity,
}

/// Phase 2's result: the call, as an OpenAI chat body (`bytes` as the
/// caller sent it after any template or shape translation, `parsed` its
/// checked fields and body).
pub(super) struct Call {
    pub bytes: Bytes,
    pub parsed: Parsed,
}

/// Phase 3's result: what the requested name resolves to.
pub(super) struct Target(pub Resolved);

/// Phase 4b's result: the targets to try, in order.
pub(super) struct Routed {
    pub plan: Plan,
}

/// Phase 5's result: the rate-limit headers of the admission (the
/// reservations themselves live in the context until settled).
pub(super) struct Admitted {
    pub limit_headers: RateHeaders,
}

/// Phase 6's result: the guardrail policies that apply, the masker whose
/// placeholders the output phase reuses, and the input placeholders that
/// restoring policies put in (turned back in the answer; memory only).
pub(super) struct Guarded {
    pub guards: Vec<Arc<GuardPolicy>>,
    pub masker: Masker,
    pub restorer: Option<Restorer>,
}
