//! Phase 4, authorize: deny by default (policy rules, the key's own grant,
//! the model's owning tenant) on the name the caller asked for; checked
//! before anything reveals more than the name's existence.

use super::{Authenticated, Call, Target};
use crate::error::GatewayError;
use crate::snapshot::{Resolved, Snapshot};

pub(in crate::pipeline) fn authorize(
    snap: &Snapshot,
    who: &Authenticated,
    call: &Call,
    target: &Target,
) -> Result<(), GatewayError> {
    let identity = &who.identity;
    let access = snap
        .policy
        .evaluate(&identity.principal, identity.key_grant());
    let tenant = match &target.0 {
        Resolved::Model(route) => route.tenant.as_deref(),
        Resolved::Virtual(_) => None,
    };
    access
        .decide(&call.parsed.model, tenant)
        .map(|_| ())
        .map_err(|denial| crate::error::forbidden(&call.parsed.model, &identity.principal, denial))
}
