//! The `jobs:` section: Databricks jobs callers may trigger through the
//! gateway (`POST /v1/jobs/{name}/runs`), each a workspace, a job id, the
//! credential the gateway sends (the connections' credential modes: a PAT
//! from a named secret, service-principal OAuth, token federation), default
//! parameters and how long a waited run may take (docs/jobs.md). Schema and
//! checks only; the runtime lives in `tollgate_pipeline::pipeline::jobs`.

use crate::redact::redacted_debug;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;
use super::forward::{
    check_credential, check_timeouts, http_url, valid_name, ConnectionCredential, CredentialKind,
};
use super::model::Timeouts;

/// One Databricks job callers may run.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// Names the job in its path (`/v1/jobs/{name}/runs`), grants
    /// (`policy.rules[].jobs`), the ledger and metrics.
    pub name: String,
    /// The workspace URL, e.g. `https://adb-123.azuredatabricks.net`.
    pub workspace: String,
    /// The Databricks job id.
    pub job_id: i64,
    /// How the gateway authenticates to the workspace: `bearer` (a PAT,
    /// best from `secret:`), `oauth_client_credentials` (a service
    /// principal; `token_url` defaults to `{workspace}/oidc/v1/token`,
    /// `scope` to `all-apis`), `token_exchange` (federation), `caller`.
    #[serde(default)]
    pub credential: Option<ConnectionCredential>,
    /// Job-level parameters sent with every run; a caller's own
    /// `job_parameters` override them key by key.
    #[serde(default)]
    pub job_parameters: BTreeMap<String, String>,
    /// Notebook parameters sent with every run (legacy notebook jobs);
    /// merged with the caller's like `job_parameters`.
    #[serde(default)]
    pub notebook_params: BTreeMap<String, String>,
    /// Longest a waited run may take (default 1h); past it the run is
    /// cancelled and the call fails. A caller may ask for less or more.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// Whether a trigger waits for the run to end unless the caller says
    /// otherwise (default false: fire and forget, the run id is returned).
    #[serde(default)]
    pub wait: bool,
    /// First pause between two status polls while waiting (default 1s);
    /// each later pause is half as long again, up to `poll_max_interval`.
    #[serde(default = "default_poll", with = "duration")]
    pub poll_interval: Duration,
    /// Longest pause between two polls (default 30s).
    #[serde(default = "default_poll_max", with = "duration")]
    pub poll_max_interval: Duration,
    /// Each Jobs API call's timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
}

redacted_debug!(JobConfig {
    plain name,
    url workspace,
    plain job_id,
    plain credential,
    values job_parameters,
    values notebook_params,
    plain timeout,
    plain wait,
    plain poll_interval,
    plain poll_max_interval,
    plain timeouts,
});

impl JobConfig {
    /// The credential with the Databricks defaults filled in: an OAuth or
    /// token-exchange credential without `token_url` uses the workspace's
    /// (`{workspace}/oidc/v1/token`) and `all-apis` as its scope.
    pub fn effective_credential(&self) -> Option<ConnectionCredential> {
        let mut c = self.credential.clone()?;
        if matches!(
            c.kind,
            CredentialKind::OauthClientCredentials | CredentialKind::TokenExchange
        ) {
            if c.token_url.is_none() {
                c.token_url = Some(format!(
                    "{}/oidc/v1/token",
                    self.workspace.trim_end_matches('/')
                ));
            }
            if c.scope.is_none() {
                c.scope = Some("all-apis".into());
            }
        }
        Some(c)
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(3600)
}
fn default_poll() -> Duration {
    Duration::from_secs(1)
}
fn default_poll_max() -> Duration {
    Duration::from_secs(30)
}

pub(crate) fn validate_jobs(jobs: &[JobConfig], p: &mut Vec<String>) {
    let mut names = HashSet::new();
    for (i, j) in jobs.iter().enumerate() {
        let at = format!("jobs[{i}]");
        if !valid_name(&j.name) {
            p.push(format!(
                "{at}.name: {:?} must be 1-64 letters, digits, `-` or `_`",
                j.name
            ));
        } else if !names.insert(j.name.as_str()) {
            p.push(format!("{at}.name: duplicate job {:?}", j.name));
        }
        if !http_url(&j.workspace) {
            p.push(format!(
                "{at}.workspace: {:?} is not an http(s) URL",
                crate::shown_url(&j.workspace)
            ));
        }
        if j.job_id <= 0 {
            p.push(format!("{at}.job_id: must be a positive job id"));
        }
        if let Some(c) = j.effective_credential() {
            if matches!(c.kind, CredentialKind::Header | CredentialKind::Basic) {
                p.push(format!(
                    "{at}.credential.type: Databricks takes bearer, oauth_client_credentials, token_exchange or caller"
                ));
            }
            check_credential(&format!("{at}.credential"), &c, p);
        }
        check_timeouts(&at, &j.timeouts, p);
        if j.timeout.is_zero() {
            p.push(format!("{at}.timeout: must be greater than 0"));
        }
        if j.poll_interval.is_zero() || j.poll_max_interval < j.poll_interval {
            p.push(format!(
                "{at}.poll_interval: must be greater than 0 and at most poll_max_interval"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(yaml: &str) -> JobConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn databricks_defaults_and_checks() {
        let j = job("{name: train, workspace: 'https://adb-1.net/', job_id: 7, \
                     credential: {type: oauth_client_credentials, client_id: sp, value: s}}");
        let c = j.effective_credential().unwrap();
        assert_eq!(
            c.token_url.as_deref(),
            Some("https://adb-1.net/oidc/v1/token")
        );
        assert_eq!(c.scope.as_deref(), Some("all-apis"));
        assert!(!j.wait && j.timeout == Duration::from_secs(3600));
        let mut p = Vec::new();
        validate_jobs(&[j.clone(), j], &mut p);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("duplicate job"), "{p:?}");

        let bad = job(
            "{name: 'a b', workspace: ftp://x, job_id: 0, poll_interval: 0s, \
                       credential: {type: basic, username: u, value: v}}",
        );
        let mut p = Vec::new();
        validate_jobs(&[bad], &mut p);
        for want in [
            "name",
            "workspace",
            "job_id",
            "credential.type",
            "poll_interval",
        ] {
            assert!(p.iter().any(|m| m.contains(want)), "{want}: {p:?}");
        }
    }
}
