//! What a caller asks of a job, typed: a trigger (its idempotency key,
//! parameters, whether and how long to wait), a status read (optionally
//! waited for) or a cancel, parsed from the method, the path's run id, the
//! query (`wait`, `timeout`) and the trigger's JSON body.
//!
//! The idempotency token sent to Databricks is the SHA-256 (hex, the 64
//! characters Databricks allows) of the job, the caller's tenant and
//! subject and the key: a retry by the same caller with the same key
//! names the same run, while another caller's equal key never reaches it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tollgate_core::error::GatewayError;
use tollgate_policy::auth::Principal;

use super::api::RunNow;
use super::table::Job;

pub(super) const TRIGGER: &str = "job/trigger";
pub(super) const GET: &str = "job/get";
pub(super) const CANCEL: &str = "job/cancel";

/// Longest idempotency key accepted (it is hashed, never sent as is).
const MAX_KEY: usize = 256;

/// The ledger's and metrics' `endpoint` of a job call.
pub(super) fn operation(method: &http::Method, has_run: bool) -> &'static str {
    match (method, has_run) {
        (&http::Method::DELETE, true) => CANCEL,
        (_, true) => GET,
        _ => TRIGGER,
    }
}

/// One job call.
#[derive(Debug)]
pub(super) enum Call {
    Trigger(Trigger),
    /// Read a run; with `wait`, until it ends or the timeout passes.
    Get {
        run_id: i64,
        wait: Option<Duration>,
    },
    Cancel {
        run_id: i64,
    },
}

#[derive(Debug)]
pub(super) struct Trigger {
    /// The caller's idempotency key, as given (or `run:<caller_run_id>`).
    pub(super) key: Option<String>,
    /// The token sent as `idempotency_token`.
    token: Option<String>,
    job_parameters: BTreeMap<String, String>,
    notebook_params: BTreeMap<String, String>,
    /// Wait for the run to end, at most this long.
    pub(super) wait: Option<Duration>,
}

impl Trigger {
    /// The `run-now` body: the job's default parameters, the caller's on top.
    pub(super) fn request(&self, job: &Job) -> RunNow<'_> {
        let merge = |base: &BTreeMap<String, String>, over: &BTreeMap<String, String>| {
            let mut m = base.clone();
            m.extend(over.iter().map(|(k, v)| (k.clone(), v.clone())));
            m
        };
        RunNow {
            job_id: job.job_id,
            idempotency_token: self.token.as_deref(),
            job_parameters: merge(&job.job_parameters, &self.job_parameters),
            notebook_params: merge(&job.notebook_params, &self.notebook_params),
        }
    }
}

/// A trigger's JSON body; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    #[serde(default)]
    idempotency_key: Option<String>,
    /// The calling workflow's own run id (a Flyte execution, an Airflow
    /// run): the key is derived from it when no key is given.
    #[serde(default)]
    caller_run_id: Option<String>,
    #[serde(default)]
    job_parameters: BTreeMap<String, String>,
    #[serde(default)]
    notebook_params: BTreeMap<String, String>,
    #[serde(default)]
    wait: Option<bool>,
    #[serde(default)]
    timeout: Option<TimeoutValue>,
}

/// Seconds as a number, or a duration string (`90s`, `2m`, `1h`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TimeoutValue {
    Seconds(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
struct WaitQuery {
    #[serde(default)]
    wait: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
}

fn timeout(text: &str, param: &'static str) -> Result<Duration, GatewayError> {
    let d = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(text).map_err(|_| {
            GatewayError::invalid(
                format!("`{param}` must be seconds or a duration such as 90s, 2m, 1h"),
                Some(param),
            )
        })?,
    };
    if d.is_zero() {
        return Err(GatewayError::invalid(
            format!("`{param}` must be greater than 0"),
            Some(param),
        ));
    }
    Ok(d)
}

fn flag(text: &str) -> Result<bool, GatewayError> {
    match text {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(GatewayError::invalid(
            "`wait` must be true or false",
            Some("wait"),
        )),
    }
}

fn idempotency_token(job: &str, p: &Principal, key: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        "tollgate-job",
        job,
        p.tenant.as_deref().unwrap_or(""),
        &p.subject,
        key,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

fn check_key(key: &str, param: &'static str) -> Result<(), GatewayError> {
    let ok = !key.is_empty() && key.len() <= MAX_KEY && key.bytes().all(|b| b.is_ascii_graphic());
    match ok {
        true => Ok(()),
        false => Err(GatewayError::invalid(
            format!("`{param}` must be 1-{MAX_KEY} visible ASCII characters"),
            Some(param),
        )),
    }
}

impl Call {
    pub(super) fn parse(
        job: &Job,
        principal: &Principal,
        parts: &http::request::Parts,
        run_id: Option<&str>,
        body: &[u8],
    ) -> Result<Self, GatewayError> {
        let query = serde_urlencoded::from_str::<WaitQuery>(parts.uri.query().unwrap_or_default())
            .map_err(|_| GatewayError::invalid("the query string is malformed", None))?;
        let query_wait = query.wait.as_deref().map(flag).transpose()?;
        let query_timeout = query
            .timeout
            .as_deref()
            .map(|t| timeout(t, "timeout"))
            .transpose()?;
        if let Some(id) = run_id {
            let run_id = id
                .parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| GatewayError::invalid("the run id must be a number", None))?;
            if parts.method == http::Method::DELETE {
                return Ok(Call::Cancel { run_id });
            }
            let wait = query_wait
                .unwrap_or(false)
                .then(|| query_timeout.unwrap_or(job.timeout));
            return Ok(Call::Get { run_id, wait });
        }
        let b: TriggerBody = match body.iter().all(u8::is_ascii_whitespace) {
            true => TriggerBody::default(),
            false => serde_json::from_slice(body).map_err(|e| {
                GatewayError::invalid(format!("the trigger body is not valid: {e}"), None)
            })?,
        };
        let header = parts
            .headers
            .get("idempotency-key")
            .map(|v| {
                v.to_str()
                    .map(str::to_owned)
                    .map_err(|_| GatewayError::invalid("Idempotency-Key is not text", None))
            })
            .transpose()?;
        let key = match (header, b.idempotency_key, b.caller_run_id) {
            (Some(h), _, _) => {
                check_key(&h, "Idempotency-Key")?;
                Some(h)
            }
            (None, Some(k), _) => {
                check_key(&k, "idempotency_key")?;
                Some(k)
            }
            (None, None, Some(r)) => {
                check_key(&r, "caller_run_id")?;
                Some(format!("run:{r}"))
            }
            (None, None, None) => None,
        };
        let body_timeout = match b.timeout {
            Some(TimeoutValue::Seconds(s)) => Some(timeout(&s.to_string(), "timeout")?),
            Some(TimeoutValue::Text(t)) => Some(timeout(&t, "timeout")?),
            None => None,
        };
        let wait = query_wait.or(b.wait).unwrap_or(job.wait);
        let limit = query_timeout.or(body_timeout).unwrap_or(job.timeout);
        Ok(Call::Trigger(Trigger {
            token: key
                .as_deref()
                .map(|k| idempotency_token(&job.name, principal, k)),
            key,
            job_parameters: b.job_parameters,
            notebook_params: b.notebook_params,
            wait: wait.then_some(limit),
        }))
    }

    /// The run the call is about, when the caller named one.
    pub(super) fn run_id(&self) -> Option<i64> {
        match self {
            Call::Trigger(_) => None,
            Call::Get { run_id, .. } | Call::Cancel { run_id } => Some(*run_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tollgate_config::PrincipalKind;
    use tollgate_policy::auth::AuthMethod;

    fn who(sub: &str, tenant: Option<&str>) -> Principal {
        Principal {
            subject: sub.into(),
            kind: PrincipalKind::Service,
            groups: Vec::<String>::new().into(),
            tenant: tenant.map(Arc::from),
            key_id: None,
            issuer: None,
            method: AuthMethod::Jwt,
            claims: None,
        }
    }

    #[test]
    fn tokens_are_per_job_caller_and_key() {
        let a = idempotency_token("train", &who("svc", Some("acme")), "k1");
        assert_eq!(a.len(), 64);
        assert_eq!(
            a,
            idempotency_token("train", &who("svc", Some("acme")), "k1")
        );
        assert_ne!(
            a,
            idempotency_token("train", &who("svc", Some("globex")), "k1")
        );
        assert_ne!(
            a,
            idempotency_token("train", &who("other", Some("acme")), "k1")
        );
        assert_ne!(a, idempotency_token("etl", &who("svc", Some("acme")), "k1"));
        assert_ne!(
            a,
            idempotency_token("train", &who("svc", Some("acme")), "k2")
        );
    }

    #[test]
    fn timeouts_and_flags() {
        assert_eq!(timeout("2000", "t").unwrap(), Duration::from_secs(2000));
        assert_eq!(timeout("90s", "t").unwrap(), Duration::from_secs(90));
        assert!(timeout("0", "t").is_err() && timeout("soon", "t").is_err());
        assert!(flag("true").unwrap() && !flag("0").unwrap() && flag("maybe").is_err());
        assert!(check_key("wf-1/step 2", "k").is_err() && check_key("wf-1/step-2", "k").is_ok());
    }
}
