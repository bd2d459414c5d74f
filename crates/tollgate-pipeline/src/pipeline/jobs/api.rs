//! The Databricks Jobs API (2.2) as the gateway calls it: `run-now` with an
//! idempotency token, `runs/get`, `runs/cancel`, each one bounded HTTP
//! exchange through the job's egress-checked client, with the credential
//! the call was given. Typed wire models keep only what the gateway reads
//! (a run's job, id, state and page); the rest of a run is not relayed.
//!
//! Must not: decide grants or record anything (the phases in `mod.rs` do);
//! put a credential in an error (upstream text is scrubbed of it).

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue, Method};
use serde::{Deserialize, Serialize};
use tollgate_core::error::GatewayError;
use tollgate_core::secret::SecretSource;
use tollgate_llm::providers::{ProviderError, Secrets};

use super::table::Job;

/// Largest Jobs API answer read (a run with many tasks stays far below).
const MAX_ANSWER: usize = 1024 * 1024;

/// `POST /api/2.2/jobs/run-now`.
#[derive(Debug, Serialize)]
pub(super) struct RunNow<'a> {
    pub job_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_token: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub job_parameters: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub notebook_params: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RunNowAnswer {
    pub run_id: i64,
}

/// What `runs/get` says of a run.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Run {
    pub job_id: i64,
    pub run_id: i64,
    #[serde(default)]
    pub state: RunState,
    #[serde(default)]
    pub run_page_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct RunState {
    #[serde(default)]
    pub life_cycle_state: String,
    #[serde(default)]
    pub result_state: Option<String>,
    #[serde(default)]
    pub state_message: Option<String>,
}

impl Run {
    /// Whether the run has ended: `TERMINATED`, `SKIPPED` and
    /// `INTERNAL_ERROR` are terminal; `PENDING`, `QUEUED`, `RUNNING`,
    /// `TERMINATING`, `BLOCKED`, `WAITING_FOR_RETRY` (and any state added
    /// later) are not.
    pub(super) fn done(&self) -> bool {
        matches!(
            self.state.life_cycle_state.as_str(),
            "TERMINATED" | "SKIPPED" | "INTERNAL_ERROR"
        )
    }
}

#[derive(Debug, Serialize)]
struct RunIdBody {
    run_id: i64,
}

/// One credential for Jobs API exchanges.
pub(super) type Auth = Option<(HeaderName, HeaderValue)>;

/// What a granted call's credential is made from: asked again before each
/// exchange of a long wait, so an OAuth token refreshed in the meantime
/// (or a rotated named secret) is the one sent.
pub(super) struct Caller<'a> {
    pub secrets: &'a dyn SecretSource,
    pub headers: &'a http::HeaderMap,
}

impl Job {
    pub(super) async fn auth(&self, c: &Caller<'_>) -> Result<Auth, GatewayError> {
        self.credential
            .header(&self.name, c.secrets, c.headers)
            .await
    }

    pub(super) async fn run_now(&self, auth: &Auth, req: &RunNow<'_>) -> Result<i64, GatewayError> {
        let body = serde_json::to_vec(req).map_err(|_| GatewayError::internal())?;
        let a: RunNowAnswer = self
            .exchange(Method::POST, "jobs/run-now", None, Some(body), auth)
            .await?;
        Ok(a.run_id)
    }

    pub(super) async fn get(&self, auth: &Auth, run_id: i64) -> Result<Run, GatewayError> {
        let query = format!("run_id={run_id}");
        self.exchange(Method::GET, "jobs/runs/get", Some(&query), None, auth)
            .await
    }

    pub(super) async fn cancel(&self, auth: &Auth, run_id: i64) -> Result<(), GatewayError> {
        let body =
            serde_json::to_vec(&RunIdBody { run_id }).map_err(|_| GatewayError::internal())?;
        let _: serde_json::Value = self
            .exchange(Method::POST, "jobs/runs/cancel", None, Some(body), auth)
            .await?;
        Ok(())
    }

    async fn exchange<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: Option<&str>,
        body: Option<Vec<u8>>,
        auth: &Auth,
    ) -> Result<T, GatewayError> {
        let mut url = format!("{}/api/2.2/{path}", self.workspace);
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        let url = reqwest::Url::parse(&url).map_err(|_| GatewayError::internal())?;
        let mut headers = http::HeaderMap::new();
        if let Some((n, v)) = auth {
            headers.insert(n.clone(), v.clone());
        }
        let secrets = Secrets::of(&headers);
        let mut req = self
            .client
            .request(method, url)
            .map_err(GatewayError::from)?
            .headers(headers);
        if let Some(b) = body {
            req = req
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let deadline = tokio::time::Instant::now() + self.timeouts.total;
        let first_byte = deadline.min(tokio::time::Instant::now() + self.timeouts.first_byte);
        let resp = match tokio::time::timeout_at(first_byte, req.send()).await {
            Err(_) => {
                return Err(GatewayError::from(ProviderError::Timeout {
                    provider: self.name.clone(),
                    stage: "first byte",
                }))
            }
            Ok(Err(e)) => {
                let detail = secrets.scrub(tollgate_llm::providers::error_chain(&e));
                return Err(GatewayError::from(ProviderError::Connect {
                    provider: self.name.clone(),
                    message: detail,
                }));
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        let bytes =
            super::super::forward::read_whole(resp, MAX_ANSWER, deadline, &self.name).await?;
        if !(200..300).contains(&status) {
            return Err(GatewayError::from(ProviderError::Status {
                provider: self.name.clone(),
                status,
                message: secrets.scrub(upstream_message(&bytes)),
                retry_after: None,
            }));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            GatewayError::from(ProviderError::Protocol {
                provider: self.name.clone(),
                message: format!("the Jobs API answer is not what {path} returns: {e}"),
            })
        })
    }
}

/// A Databricks error's `error_code: message`, or the start of the text.
fn upstream_message(bytes: &[u8]) -> String {
    #[derive(Deserialize)]
    struct DbxError {
        #[serde(default)]
        error_code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<DbxError>(bytes) {
        Ok(e) if !e.error_code.is_empty() || !e.message.is_empty() => {
            format!("{}: {}", e.error_code, e.message)
        }
        _ => String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
    }
}
