//! Phase 4b, route: the ordered targets (strategy and health, all in
//! memory); a plan none of whose targets serves the endpoint is a 400.

use http::HeaderMap;
use tollgate_policy::routing;

use super::{Call, Routed, Target};
use crate::error::GatewayError;
use crate::pipeline::attempt::Plan;
use crate::pipeline::RequestCtx;
use crate::snapshot::Resolved;

pub(in crate::pipeline) fn route(
    ctx: &RequestCtx,
    headers: &HeaderMap,
    call: &Call,
    target: Target,
) -> Result<Routed, GatewayError> {
    let plan = match &target.0 {
        Resolved::Model(route) => Plan::single(route.clone()),
        Resolved::Virtual(vm) => {
            let order = vm.plan(
                routing::clock::now_ms(),
                vm.sticky_key(headers, &call.parsed.body),
                rand::random(),
            );
            Plan::virtual_model(vm, &order, ctx.endpoint)
        }
    };
    if plan.targets.is_empty() || !plan.targets.iter().any(|t| t.route.serves(ctx.endpoint)) {
        return Err(crate::error::wrong_endpoint(
            &call.parsed.model,
            ctx.endpoint.as_str(),
        ));
    }
    Ok(Routed { plan })
}
