//! Phase 5, admit: rate limits, quotas, budgets. The estimate is reserved
//! on every counter the request charges, all or nothing (settled at the
//! request's end, `finish.rs`; streams extend it as tokens flow).

use super::{Admitted, Authenticated, Call, Routed};
use crate::error::GatewayError;
use crate::pipeline::{admit, RequestCtx};
use crate::snapshot::Snapshot;

pub(in crate::pipeline) async fn admit(
    snap: &Snapshot,
    ctx: &mut RequestCtx,
    who: &Authenticated,
    call: &Call,
    routed: &Routed,
) -> Result<Admitted, GatewayError> {
    let mut limit_headers = tollgate_policy::limits::RateHeaders::default();
    if !snap.limits.is_empty() {
        let model = &call.parsed.model;
        let counters = snap.limits.counters(&who.identity.principal, model);
        let counts_tokens = counters.counts_tokens();
        let demand = admit::demand(
            &snap.limits,
            ctx.endpoint,
            &call.parsed.body,
            &routed.plan,
            &counters,
        );
        match snap.limits.admit_counters(counters, demand).await {
            Ok(adm) => {
                // Streams extend their reservation as tokens flow and are
                // cut at the cap; a whole answer cannot be, so it is capped.
                if counts_tokens && !call.parsed.stream {
                    ctx.completion_cap = admit::completion_cap(ctx.endpoint, &call.parsed.body)
                        .then_some(demand.completion);
                }
                limit_headers = adm.headers();
                ctx.admission = (!adm.is_empty()).then_some(adm);
            }
            Err(e) => {
                ctx.limit_decisions = e.ledger_decisions();
                return Err(e.into());
            }
        }
    }
    Ok(Admitted { limit_headers })
}
