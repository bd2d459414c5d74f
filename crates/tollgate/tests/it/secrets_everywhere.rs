//! No seeded secret reaches any surface the gateway writes (issue 24):
//! distinctive provider keys, an OAuth client secret, the token minted with
//! it, caller API keys (valid, wrong, passed through) are sent through every
//! credential mode, including upstreams that echo what they received, and
//! none appears in the answers (bodies and headers), the logs at TRACE level
//! (every crate), the exported traces, `/metrics`, the ledger, the audit log
//! (payloads on), or a config dump (`Debug`, `tollgate validate` problems).
//! Config-only secrets are seeded too: a password in the Redis URLs of the
//! cache (unreachable, so its connection errors are logged) and of the
//! limits, and a provider's static header value, which must not show in a
//! config dump, a failed reload's error or log line, or a validation
//! problem about those URLs; and a secret in the query of a token
//! endpoint's URL (`auth.token_url`), whose endpoint is down, so its
//! connect error (which quotes the URL) is logged.

use crate::common;
use crate::secrets::{capture_logs, echoing_upstream_into};
use crate::telemetry::http_receiver;

use std::sync::{Arc, Mutex};

use common::*;
use serde_json::json;
use tollgate::mock::server::MockOptions;

const PROVIDER_KEY: &str = "sk-proj-Pv7Q2w9E4r6T8y0U1i3O5pAsDf";
const AWS_SECRET: &str = "Aw5Secr3tKeyQz8Xc1Vb4Nm7Lk0Jh";
const CLIENT_ID: &str = "sp-7f3e-id";
const CLIENT_SECRET: &str = "Cs9xLm2Qp7Wd4Rt6Yh8Jk0";
const CALLER_KEY: &str = "tg-Ck4Bn7Vm1Xz3Qw5Er8Ty";
const WRONG_KEY: &str = "tg-Wk2Hj5Gf8Ds1Aq4Zx7Cv";
const REDIS_PASSWORD: &str = "Rp6Vz9Kq3Wm1Xs8Tn4Lb";
const STATIC_HEADER: &str = "Sh5Gq8Zt1Mv4Nb7Xc0Pw";
const TOKEN_URL_SECRET: &str = "Tq3Vx8Lm2Rw5Zn7Kp1Ys";

/// The first seeded value any 10-character run of which occurs in `text`
/// (a minted token, which the OAuth mock builds around the public client
/// id, counts whole).
fn leak(text: &str, secrets: &[String]) -> Option<String> {
    let minted = secrets.iter().filter(|t| t.contains(CLIENT_ID));
    if let Some(t) = minted.into_iter().find(|t| text.contains(t.as_str())) {
        return Some(format!("a minted token: {t}"));
    }
    secrets
        .iter()
        .filter(|t| !t.contains(CLIENT_ID))
        .find_map(|s| {
            let b = s.as_bytes();
            (0..=b.len().saturating_sub(10))
                .map(|i| &s[i..(i + 10).min(s.len())])
                .find(|piece| text.contains(piece))
                .map(|piece| format!("{piece} (of a seeded value)"))
        })
}

/// Providers: `up` (the mock, checking the key), `echo` and `pass` (an
/// upstream quoting every credential back), `sp` (OAuth client credentials
/// against the OAuth mock), `sp-echo` (a token from the OAuth mock, sent to
/// the echoing upstream), `sp-down` (a token endpoint that is down, a
/// secret in its URL's query), `aws` (SigV4 keys, echoing upstream). `up` and
/// `echo` send a static header; the cache's Redis (with a password) is
/// down, `limits.redis` names one with a password.
fn config(
    db: &str,
    plain: &common::Mock,
    oauth: &common::Mock,
    echo: std::net::SocketAddr,
    otlp: &str,
    audit: &str,
    dead: std::net::SocketAddr,
) -> String {
    format!(
        "{head}audit:\n  enabled: true\n  sink: {audit}\n  payload_models: [\"*\"]\n\
         tracing:\n  enabled: true\n  endpoint: {otlp}\n  protocol: http_protobuf\n  sample_ratio: 1.0\n\
         cache:\n  backend: redis\n  redis_url: \"redis://:{REDIS_PASSWORD}@{dead}/0\"\n\
         limits:\n  redis: {{url: \"redis://:{REDIS_PASSWORD}@{dead}/1\"}}\n\
         providers:\n\
         \x20 - {{name: up, kind: openai, base_url: \"{base}\", api_key: {PROVIDER_KEY}, headers: {{x-seed-header: {STATIC_HEADER}}}}}\n\
         \x20 - {{name: echo, kind: openai, base_url: \"http://{echo}/v1\", api_key: {PROVIDER_KEY}, headers: {{x-seed-header: {STATIC_HEADER}}}}}\n\
         \x20 - {{name: pass, kind: openai, base_url: \"http://{echo}/v1\", auth: {{type: passthrough}}}}\n\
         \x20 - {{name: sp, kind: databricks, base_url: \"http://{m}\", auth: {{type: client_credentials, client_id: {CLIENT_ID}, client_secret: {CLIENT_SECRET}}}}}\n\
         \x20 - {{name: sp-echo, kind: databricks, base_url: \"http://{echo}\", auth: {{type: client_credentials, token_url: \"http://{m}/oidc/v1/token\", client_id: {CLIENT_ID}, client_secret: {CLIENT_SECRET}}}}}\n\
         \x20 - {{name: sp-down, kind: databricks, base_url: \"http://{echo}\", auth: {{type: client_credentials, token_url: \"http://{dead}/oidc/v1/token?sig={TOKEN_URL_SECRET}\", client_id: {CLIENT_ID}, client_secret: {CLIENT_SECRET}}}}}\n\
         \x20 - {{name: aws, kind: bedrock, base_url: \"http://{echo}\", aws: {{region: eu-west-1, access_key_id: AKIDSEEDEXAMPLE, secret_access_key: {AWS_SECRET}}}}}\n\
         models:\n\
         \x20 - {{name: m-up, provider: up, upstream_model: mock-chat}}\n\
         \x20 - {{name: m-fail, provider: up, upstream_model: \"mock-chat?status=500\"}}\n\
         \x20 - {{name: m-echo, provider: echo}}\n\
         \x20 - {{name: m-pass, provider: pass}}\n\
         \x20 - {{name: m-sp, provider: sp, upstream_model: my-endpoint}}\n\
         \x20 - {{name: m-sp-echo, provider: sp-echo, upstream_model: my-endpoint}}\n\
         \x20 - {{name: m-aws, provider: aws, upstream_model: anthropic.claude}}\n\
         \x20 - {{name: m-sp-down, provider: sp-down, upstream_model: my-endpoint}}\n\
         keys:\n  - {{id: seed, hash: \"{hash}\", principal: alice, models: [\"*\"]}}\n",
        head = config_head(db),
        base = plain.base(),
        m = oauth.addr,
        hash = hash(CALLER_KEY),
    )
}

#[tokio::test]
async fn no_seeded_secret_reaches_any_surface() {
    let (logs, _guard) = capture_logs(tracing::Level::TRACE);

    let plain = start_mock(Some(PROVIDER_KEY)).await;
    let oauth = start_mock_with(MockOptions {
        client_id: Some(CLIENT_ID.into()),
        client_secret: Some(CLIENT_SECRET.into()),
        ..Default::default()
    })
    .await;
    let echoed = Arc::new(Mutex::new(Vec::new()));
    let echo = echoing_upstream_into(echoed.clone()).await;
    let (otlp, spans) = http_receiver().await;
    let dead = dead_addr().await;
    let mut audit_path = std::path::PathBuf::new();
    let mut config_text = String::new();
    let mut gw = start_gateway_with(|db| {
        let dir = std::path::Path::new(db.trim_start_matches("sqlite://"))
            .parent()
            .unwrap();
        audit_path = dir.join("audit.jsonl");
        config_text = config(
            db,
            &plain,
            &oauth,
            echo,
            &otlp,
            &audit_path.display().to_string(),
            dead,
        );
        config_text.clone()
    })
    .await;

    let mut answers = Vec::new();
    let call = |path: &'static str, key: &'static str, body: serde_json::Value| {
        let url = gw.url(path);
        async move {
            let r = client()
                .post(url)
                .bearer_auth(key)
                .header("x-api-key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let head = format!("{:?}", r.headers());
            (status, format!("{head}\n{}", r.text().await.unwrap()))
        }
    };
    let chat = |model: &str, stream: bool| {
        json!({"model": model, "stream": stream, "max_tokens": 16,
               "messages": [{"role": "user", "content": "hello there"}]})
    };
    let mut expect = Vec::new();
    for (model, stream, status) in [
        ("m-up", false, 200),
        ("m-up", true, 200),
        ("m-fail", false, 502),
        ("m-echo", false, 502),
        ("m-echo", true, 502),
        ("m-pass", false, 502),
        ("m-sp", false, 200),
        ("m-sp-echo", false, 502),
        ("m-aws", false, 502),
        ("m-sp-down", false, 502),
    ] {
        answers.push(call("/v1/chat/completions", CALLER_KEY, chat(model, stream)).await);
        expect.push((model, status));
    }
    answers.push(call("/v1/chat/completions", WRONG_KEY, chat("m-up", false)).await);
    expect.push(("wrong key", 401));
    answers.push(
        call(
            "/v1/messages",
            CALLER_KEY,
            json!({"model": "m-echo", "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await,
    );
    expect.push(("anthropic m-echo", 502));
    for ((status, text), (what, want)) in answers.iter().zip(&expect) {
        assert_eq!(status, want, "{what}: {text}");
    }
    // The cache's Redis connect fails after the client's own retries
    // (several seconds); its error is logged and counted by then.
    poll_until(
        async || String::from_utf8_lossy(&logs.0.lock().unwrap()).contains("redis unreachable"),
        |logged| *logged,
    )
    .await;
    let metrics = metrics_text(&gw).await;
    assert!(
        metrics.contains("tollgate_cache_errors_total{op=\"connect\"}"),
        "{metrics}"
    );

    // A reload of a config that fails validation on the Redis URLs: the
    // error and its log line quote the URLs without their password.
    let bad_reload = config_text.replace("redis://:", "redsi://:");
    std::fs::write(&gw.config_path, &bad_reload).unwrap();
    let reload_error = gw.running().reload().unwrap_err().to_string();
    assert!(
        reload_error.contains("limits.redis.url") && reload_error.contains("cache.redis_url"),
        "{reload_error}"
    );

    // Every credential the upstreams saw, including the minted tokens.
    let mut secrets: Vec<String> = [
        PROVIDER_KEY,
        AWS_SECRET,
        CLIENT_SECRET,
        CALLER_KEY,
        WRONG_KEY,
        REDIS_PASSWORD,
        STATIC_HEADER,
        TOKEN_URL_SECRET,
    ]
    .map(str::to_owned)
    .to_vec();
    let minted: Vec<String> = oauth
        .received()
        .await
        .iter()
        .filter_map(|r| r["headers"]["authorization"].as_str().map(str::to_owned))
        .chain(echoed.lock().unwrap().iter().cloned())
        .filter_map(|v| v.strip_prefix("Bearer ").map(str::to_owned))
        .filter(|t| !secrets.contains(t) && t.len() >= 16)
        .collect();
    assert!(!minted.is_empty(), "no OAuth token was minted and sent");
    secrets.extend(minted);

    for ((_, text), (what, _)) in answers.iter().zip(&expect) {
        assert_eq!(leak(text, &secrets), None, "answer to {what}: {text}");
    }
    assert_eq!(leak(&metrics, &secrets), None, "/metrics");
    assert_eq!(
        leak(&reload_error, &secrets),
        None,
        "reload: {reload_error}"
    );

    let store = gw.stop().await;
    let recs = wait_records(&store, answers.len()).await;
    assert!(recs.len() >= answers.len() - 1, "{} records", recs.len());
    assert_eq!(leak(&format!("{recs:?}"), &secrets), None, "ledger");
    let audit = std::fs::read_to_string(&audit_path).unwrap();
    assert!(audit.lines().count() >= answers.len(), "audit: {audit}");
    assert_eq!(leak(&audit, &secrets), None, "audit log");
    let spans = format!("{:?}", spans.spans.lock().unwrap());
    assert!(spans.contains("m-echo"), "no spans exported: {spans}");
    assert_eq!(leak(&spans, &secrets), None, "traces");
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string();
    assert!(
        logs.contains("\"TRACE\"") && logs.contains("m-echo"),
        "logs were not captured"
    );
    assert!(
        logs.contains("redis unreachable") && logs.contains("config reload failed"),
        "the cache's Redis errors and the failed reload were not logged"
    );
    assert_eq!(leak(&logs, &secrets), None, "logs");

    // Config dumps: the loaded config's `Debug`, and `tollgate validate`'s
    // problems for a config that holds the secrets and is wrong elsewhere.
    let cfg = tollgate::config::parse_str(&config_text).unwrap();
    assert_eq!(leak(&format!("{cfg:?}"), &secrets), None, "config Debug");
    let broken = config_text.replace("sample_ratio: 1.0", "sample_ratio: 7.0");
    let problems = tollgate::config::parse_str(&broken)
        .unwrap_err()
        .to_string();
    assert_eq!(leak(&problems, &secrets), None, "validate: {problems}");
    let problems = tollgate::config::parse_str(&bad_reload)
        .unwrap_err()
        .to_string();
    assert!(problems.contains("[redacted]@"), "{problems}");
    assert_eq!(leak(&problems, &secrets), None, "validate: {problems}");
}
