//! `bedrock`: Amazon Bedrock's Converse API. Chat goes to
//! `{base_url}/model/{modelId}/converse` (streams to `/converse-stream`,
//! answered with the binary `application/vnd.amazon.eventstream`), every
//! request signed with AWS SigV4 (`aws-sigv4`) from static keys in the config
//! or the usual AWS environment variables, read when the provider is built
//! (at start and on reload). Translation: `tollgate_translate::bedrock`.

use std::time::Duration;
use tollgate_core::error::BuildError;
use tollgate_net::Egress;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use http::HeaderMap;
use serde_json::Value;

use super::translated::{self, bad_json, send, unsupported, StreamTranslator};
use super::{Provider, ProviderBody, ProviderCall, ProviderError, ProviderResponse};
use tollgate_config::{AwsConfig, Endpoint, ProviderConfig};
use tollgate_translate::bedrock as tr;
use tollgate_translate::bedrock_stream::{BedrockToOpenAi, FrameDecoder};
use tollgate_translate::{ChunkWriter, Fault};

/// The SigV4 service name of the Bedrock runtime.
const SERVICE: &str = "bedrock";

pub(super) struct BedrockProvider {
    name: String,
    client: tollgate_net::Client,
    base: String,
    region: String,
    credentials: Credentials,
    headers: HeaderMap,
    forward: Vec<String>,
    first_byte: Duration,
    /// `max_response_bytes`: the most of a non-streamed answer read.
    max_response: usize,
}

/// A setting from the config, else from the first environment variable set.
fn setting(configured: Option<&String>, env: &[&str]) -> Option<String> {
    configured.filter(|v| !v.is_empty()).cloned().or_else(|| {
        env.iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    })
}

impl BedrockProvider {
    pub(super) fn new(cfg: &ProviderConfig, egress: &Egress) -> Result<Self, BuildError> {
        let aws = cfg.aws.clone().unwrap_or_default();
        let AwsConfig {
            region,
            access_key_id,
            secret_access_key,
            session_token,
        } = &aws;
        let region =
            setting(region.as_ref(), &["AWS_REGION", "AWS_DEFAULT_REGION"]).ok_or_else(|| {
                format!(
                    "provider {}: aws.region (or AWS_REGION) is required",
                    cfg.name
                )
            })?;
        let from_config = access_key_id.is_some();
        let key = setting(access_key_id.as_ref(), &["AWS_ACCESS_KEY_ID"]);
        let secret = setting(
            secret_access_key.as_ref().map(|s| &s.0),
            &["AWS_SECRET_ACCESS_KEY"],
        );
        let (Some(key), Some(secret)) = (key, secret) else {
            return Err(BuildError::new(format!(
                "provider {}: AWS credentials are required: aws.access_key_id and \
                 aws.secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                cfg.name
            )));
        };
        // An environment session token belongs to environment keys only.
        let token = match session_token {
            Some(t) if !t.expose().is_empty() => Some(t.expose().to_owned()),
            _ if from_config => None,
            _ => setting(None, &["AWS_SESSION_TOKEN"]),
        };
        if !region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(BuildError::new(format!(
                "provider {}: {region:?} is not an AWS region",
                cfg.name
            )));
        }
        let base = cfg
            .base_url
            .clone()
            .unwrap_or_else(|| format!("https://bedrock-runtime.{region}.amazonaws.com"))
            .trim_end_matches('/')
            .to_string();
        Ok(Self {
            name: cfg.name.clone(),
            client: super::transport::http_client(cfg, egress)?,
            base,
            region,
            credentials: Credentials::new(key, secret, token, None, "tollgate-config"),
            headers: super::transport::static_headers(cfg)?,
            forward: cfg.forward_headers.clone(),
            first_byte: cfg.timeouts.first_byte,
            max_response: cfg.max_response_bytes,
        })
    }

    /// A signed POST of `body` to `url`.
    fn signed(
        &self,
        url: &str,
        body: Vec<u8>,
        accept: &str,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let protocol = |message: String| ProviderError::Protocol {
            provider: self.name.clone(),
            message,
        };
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(tollgate_core::clock::wall_time())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| protocol(format!("cannot sign: {e}")))?
            .into();
        let headers = [("content-type", "application/json"), ("accept", accept)];
        let signable = SignableRequest::new(
            "POST",
            url,
            headers.iter().copied(),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| protocol(format!("cannot sign: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| protocol(format!("cannot sign: {e}")))?
            .into_parts();
        let url = reqwest::Url::parse(url).map_err(|e| protocol(format!("bad URL: {e}")))?;
        let mut req = self
            .client
            .post(url)
            .map_err(super::transport::egress_error(&self.name))?
            .body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        for (k, v) in instructions.headers() {
            let mut value = http::HeaderValue::from_str(v)
                .map_err(|_| protocol("signature is not a header value".into()))?;
            value.set_sensitive(true);
            req = req.header(k, value);
        }
        Ok(req)
    }

    async fn answer(&self, call: ProviderCall<'_>) -> Result<ProviderResponse, ProviderError> {
        if call.endpoint != Endpoint::Chat {
            return Err(ProviderError::Unsupported {
                provider: self.name.clone(),
                field: "model".into(),
                message: "bedrock (Converse) serves chat completions only".into(),
            });
        }
        let model = call
            .body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let body = tr::request(&call.body).map_err(|u| unsupported(&self.name, u))?;
        let path = if call.stream {
            "converse-stream"
        } else {
            "converse"
        };
        let url = format!("{}/model/{}/{path}", self.base, encode_segment(&model));
        let accept = if call.stream {
            "application/vnd.amazon.eventstream"
        } else {
            "application/json"
        };
        let req = self.signed(&url, translated::to_bytes(&body), accept)?;
        let resp = send(
            &self.name,
            self.first_byte,
            req,
            &self.forward,
            call.client_headers,
            &self.headers,
        )
        .await
        .map_err(|(e, _)| e)?;
        let id = resp
            .headers()
            .get("x-amzn-requestid")
            .and_then(|v| v.to_str().ok())
            .map_or_else(
                || format!("chatcmpl-{}", uuid::Uuid::now_v7().simple()),
                |r| format!("chatcmpl-{r}"),
            );
        if !call.stream {
            let bytes = translated::body(&self.name, resp, self.max_response).await?;
            let b: Value = serde_json::from_slice(&bytes).map_err(|e| bad_json(&self.name, e))?;
            let out = tr::response(&b, &id, &model, translated::now());
            return Ok(ProviderResponse {
                status: 200,
                body: ProviderBody::Full(Bytes::from(translated::to_bytes(&out))),
            });
        }
        let writer = ChunkWriter {
            id,
            model,
            created: translated::now(),
        };
        let translator = EventStream {
            frames: FrameDecoder::default(),
            inner: BedrockToOpenAi::new(writer, tollgate_translate::include_usage(&call.body)),
        };
        Ok(ProviderResponse {
            status: 200,
            body: ProviderBody::Stream(translated::translate_stream(
                &self.name,
                resp.bytes_stream(),
                translator,
            )),
        })
    }
}

/// Percent-encodes a model id (`anthropic.claude-3-haiku-20240307-v1:0`, an
/// inference profile ARN) as one path segment, as the AWS SDKs do.
pub(super) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Frame decoding in front of the ConverseStream event translator.
struct EventStream {
    frames: FrameDecoder,
    inner: BedrockToOpenAi,
}

impl StreamTranslator for EventStream {
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<u8>, Fault> {
        let mut out = Vec::new();
        for m in self.frames.push(chunk)? {
            out.extend(self.inner.frame(&m)?);
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>, Fault> {
        self.inner.finish()
    }
}

impl Provider for BedrockProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn call<'a>(
        &'a self,
        call: ProviderCall<'a>,
    ) -> BoxFuture<'a, Result<ProviderResponse, ProviderError>> {
        self.answer(call).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_one_segment() {
        assert_eq!(
            encode_segment("anthropic.claude-3-haiku-20240307-v1:0"),
            "anthropic.claude-3-haiku-20240307-v1%3A0"
        );
        assert_eq!(encode_segment("arn:aws/x"), "arn%3Aaws%2Fx");
    }
}
