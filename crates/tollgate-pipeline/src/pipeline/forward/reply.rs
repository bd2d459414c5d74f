//! The refusals of forwarded calls. They render in the plain JSON shape
//! (`{"error":{message,type,param,code}}`, `ApiShape::OpenAi`) whatever
//! the upstream speaks; the upstream's own answers pass through unchanged.

use tollgate_core::error::{ErrorKind, GatewayError};
use tollgate_policy::auth::{policy, Principal};

use super::upstream::Kind;

fn noun(kind: Kind) -> &'static str {
    match kind {
        Kind::Route => "route",
        Kind::Connection => "connection",
    }
}

fn grant_field(kind: Kind) -> &'static str {
    match kind {
        Kind::Route => "routes",
        Kind::Connection => "connections",
    }
}

pub(super) fn unknown(kind: Kind, name: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        404,
        "unknown_target",
        format!("no {} `{name}` is configured", noun(kind)),
    )
    .with_code("unknown_url")
}

pub(super) fn forbidden(kind: Kind, name: &str, method: &str, p: &Principal) -> GatewayError {
    let (label, code) = match kind {
        Kind::Route => ("route_forbidden", "route_not_allowed"),
        Kind::Connection => ("connection_forbidden", "connection_not_allowed"),
    };
    GatewayError::new(
        ErrorKind::Permission,
        403,
        label,
        format!(
            "{} `{name}` is not granted to principal `{}` ({}) for {method}: missing grant `{}: [\"{name}\"]` in a rule whose `methods` (if any) include {method}",
            noun(kind),
            p.subject,
            policy::describe(p),
            grant_field(kind),
        ),
    )
    .with_code(code)
}

pub(super) fn method_refused(kind: Kind, name: &str, method: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        405,
        "method_not_allowed",
        format!("method {method} is not allowed on {} `{name}`", noun(kind)),
    )
    .with_code("method_not_allowed")
}

pub(super) fn path_refused(kind: Kind, name: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::Permission,
        403,
        "path_forbidden",
        format!(
            "this path is not among the paths {} `{name}` allows",
            noun(kind)
        ),
    )
    .with_code("path_not_allowed")
}

pub(super) fn too_many_rows(name: &str, rows: u64, max: u64) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        413,
        "too_many_rows",
        format!("the request holds {rows} rows; route `{name}` accepts at most {max} (max_rows)"),
    )
    .with_code("too_many_rows")
}
