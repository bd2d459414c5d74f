//! Phase 6, input guardrails: detectors and webhooks over the request's
//! text; block (400), mask in place, or audit. One masker per request keeps
//! placeholders consistent between input and output; the placeholders of
//! policies with `restore` leave this phase as the request's `Restorer`.

use tollgate_guardrails::Masker;
use tollgate_policy::guard;

use super::{Authenticated, Call, Guarded};
use crate::error::GatewayError;
use crate::pipeline::RequestCtx;
use crate::snapshot::Snapshot;

pub(in crate::pipeline) async fn check(
    snap: &Snapshot,
    ctx: &mut RequestCtx,
    who: &Authenticated,
    call: &mut Call,
) -> Result<Guarded, GatewayError> {
    let principal = &who.identity.principal;
    let guards = snap.guards.applicable(&call.parsed.model, principal);
    let mut masker = Masker::default();
    if !guards.is_empty() {
        let _span = ctx
            .trace
            .as_ref()
            .map(|t| t.child("tollgate.guardrails.input"));
        guard::check_input(
            &guards,
            &call.parsed.model,
            principal,
            &mut call.parsed.body,
            &mut masker,
            &mut ctx.verdicts,
        )
        .await?;
    }
    let restorer = masker.restorer();
    Ok(Guarded {
        guards,
        masker,
        restorer,
    })
}
