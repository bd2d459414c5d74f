//! External guardrail webhooks: the content and its context are POSTed; the
//! answer allows, blocks or rewrites.
//!
//! Request: `{"policy","direction","model","principal":{"subject","tenant","groups"},"texts":[…]}`.
//! Answer: `{"action":"allow"}`, `{"action":"block","reason":"…"}` or
//! `{"action":"rewrite","texts":[…]}` (same length as `texts`).

use std::time::Duration;
use tollgate_core::error::BuildError;

use serde::Deserialize;
use serde_json::json;

use crate::auth::Principal;
use tollgate_config::WebhookConfig;
use tollgate_net::EgressDenied;

pub(super) struct Webhook {
    client: tollgate_net::Client,
    url: reqwest::Url,
    timeout: Duration,
    headers: http::HeaderMap,
    /// `max_response_bytes`: the longest answer read.
    max_response: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum WebhookVerdict {
    Allow,
    Block(String),
    Rewrite(Vec<String>),
}

#[derive(Deserialize)]
struct Answer {
    action: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    texts: Option<Vec<String>>,
}

impl Webhook {
    pub(super) fn new(
        cfg: &WebhookConfig,
        client: tollgate_net::Client,
    ) -> Result<Self, BuildError> {
        let url = reqwest::Url::parse(&cfg.url).map_err(|e| format!("webhook url: {e}"))?;
        let mut headers = http::HeaderMap::new();
        for (k, v) in &cfg.headers {
            let name = http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("webhook header {k}"))?;
            let mut value =
                http::HeaderValue::from_str(v).map_err(|_| format!("webhook header {k}"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(Self {
            client,
            url,
            timeout: cfg.timeout,
            headers,
            max_response: cfg.max_response_bytes,
        })
    }

    /// Asks the webhook; `Err` is a guardrail failure (down, slow, bad answer).
    pub(super) async fn check(
        &self,
        policy: &str,
        direction: &str,
        model: &str,
        principal: &Principal,
        texts: &[String],
    ) -> Result<WebhookVerdict, WebhookError> {
        let body = json!({
            "policy": policy,
            "direction": direction,
            "model": model,
            "principal": {
                "subject": &*principal.subject,
                "tenant": principal.tenant.as_deref(),
                "groups": &*principal.groups,
            },
            "texts": texts,
        });
        let send = self
            .client
            .post(self.url.clone())
            .map_err(WebhookError::Egress)?
            .headers(self.headers.clone())
            .json(&body)
            .send();
        let resp = tokio::time::timeout(self.timeout, send)
            .await
            .map_err(|_| WebhookError::Timeout(self.timeout))?
            .map_err(|e| match EgressDenied::find(&e) {
                Some(denied) => WebhookError::Egress(denied.clone()),
                None => WebhookError::Unreachable(e),
            })?;
        if !resp.status().is_success() {
            return Err(WebhookError::Status(resp.status().as_u16()));
        }
        let body = tokio::time::timeout(self.timeout, read_limited(resp, self.max_response))
            .await
            .map_err(|_| WebhookError::ReadTimeout)??;
        let answer: Answer = serde_json::from_slice(&body).map_err(WebhookError::NotJson)?;
        match answer.action.as_str() {
            "allow" => Ok(WebhookVerdict::Allow),
            "block" => Ok(WebhookVerdict::Block(answer.reason.unwrap_or_default())),
            "rewrite" => match answer.texts {
                Some(t) if t.len() == texts.len() => Ok(WebhookVerdict::Rewrite(t)),
                _ => Err(WebhookError::RewriteCount),
            },
            other => Err(WebhookError::Action(other.to_owned())),
        }
    }
}

/// Why a webhook check failed (a guardrail failure: the policy's mode
/// decides whether the request goes on). The text goes to the log.
#[derive(Debug, thiserror::Error)]
pub(super) enum WebhookError {
    #[error("webhook timed out after {0:?}")]
    Timeout(Duration),
    #[error("webhook unreachable: {0}")]
    Unreachable(reqwest::Error),
    /// The egress allowlist refused the webhook's URL or a redirect off it.
    #[error("webhook: {0}")]
    Egress(EgressDenied),
    #[error("webhook answered {0}")]
    Status(u16),
    #[error("webhook timed out reading its answer")]
    ReadTimeout,
    #[error("webhook answer could not be read: {0}")]
    Read(reqwest::Error),
    #[error("webhook answer exceeds the limit of {0} bytes")]
    TooLarge(usize),
    #[error("webhook answer is not valid JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("webhook rewrite must return as many texts as it was sent")]
    RewriteCount,
    #[error("webhook action {0:?} is not allow, block or rewrite")]
    Action(String),
}

/// The webhook's answer, read chunk by chunk; past `limit` bytes the read
/// stops and the check fails.
async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, WebhookError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(WebhookError::Read)? {
        if body.len() + chunk.len() > limit {
            return Err(WebhookError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
