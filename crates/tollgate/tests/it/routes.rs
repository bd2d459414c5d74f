//! Identity-aware routes (docs/routes.md): a data-plane path prefix
//! forwarded to an HTTP upstream through the same phases as a model call.
//! Asserted on what a local upstream receives and on the ledger and audit.

use serde_json::{json, Value};

use crate::common::echo::{start_echo, Echo};
use crate::common::*;

const ACME: &str = "tg-route-acme-1";
const ACME2: &str = "tg-route-acme-2";
const GLOBEX: &str = "tg-route-globex";
const NOBODY: &str = "tg-route-nobody";
const ROUTE_TOKEN: &str = "route-upstream-token-5f3a9c";

fn config(db: &str, echo: &Echo, audit: &std::path::Path) -> String {
    format!(
        r#"{head}
audit:
  enabled: true
  sink: {audit}
routes:
  - name: fraud
    path: /ml/fraud
    upstream: {base}/serving-endpoints/fraud
    auth: {{ type: bearer, token: {ROUTE_TOKEN} }}
    methods: [POST]
    max_rows: 5
    max_request_bytes: 4000
    audit_payloads: true
  - name: kserve
    path: /ml/kserve
    upstream: {base}
    replace_prefix: /v2/models/m
keys:
  - {{ id: acme1, hash: {h1}, principal: ann, tenant: acme }}
  - {{ id: acme2, hash: {h2}, principal: amy, tenant: acme }}
  - {{ id: globex, hash: {h3}, principal: gus, tenant: globex }}
  - {{ id: nobody, hash: {h4}, principal: ned, models: ["*"] }}
policy:
  rules:
    - {{ name: ml-users, tenants: [acme, globex], routes: ["fraud", "ks*"] }}
limits:
  rules:
    - name: rows-per-tenant
      match: {{ routes: [fraud, kserve] }}
      per: [tenant]
      tokens_per_minute: 6
      token_kind: input
"#,
        head = config_head(db),
        audit = audit.display(),
        base = echo.base(),
        h1 = hash(ACME),
        h2 = hash(ACME2),
        h3 = hash(GLOBEX),
        h4 = hash(NOBODY),
    )
}

async fn call(
    gw: &Gateway,
    key: &str,
    method: &str,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    client()
        .request(method.parse().unwrap(), gw.url(path))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn routes_forward_with_grants_limits_caps_and_records() {
    let echo = start_echo().await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let mut gw = start_gateway_with(|db| config(db, &echo, &audit)).await;

    // No grant (a key whose models grant is `*`): 403, nothing reaches the upstream.
    let r = call(&gw, NOBODY, "POST", "/ml/fraud/invocations", &json!({})).await;
    assert_eq!(r.status(), 403);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "route_not_allowed", "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("routes: [\"fraud\"]"));
    assert!(echo.received().is_empty());

    // A Databricks-style payload: 3 rows, passed through unchanged, the
    // route's credential injected, the caller's key not forwarded.
    let records = json!({"dataframe_records": [{"a": 1}, {"a": 2}, {"a": 3}]});
    let r = call(&gw, ACME, "POST", "/ml/fraud/invocations?v=1", &records).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["predictions"], json!([0.1, 0.9]));
    let got = echo.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].uri, "/serving-endpoints/fraud/invocations?v=1");
    assert_eq!(
        got[0].headers["authorization"],
        format!("Bearer {ROUTE_TOKEN}").as_str()
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&got[0].body).unwrap(),
        records
    );
    assert!(!format!("{:?}", got[0].headers).contains(ACME));

    // A KServe v2 payload (shape [2, …]): 2 rows, the prefix replaced; no
    // route credential configured, so no Authorization at all.
    let kserve = json!({"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1,2,3,4,5,6]}]});
    let r = call(&gw, ACME2, "POST", "/ml/kserve/infer", &kserve).await;
    assert_eq!(r.status(), 200);
    let got = echo.received();
    assert_eq!(got[1].uri, "/v2/models/m/infer");
    assert!(got[1].headers.get("authorization").is_none());

    // Tenant acme has used 5 of its 6 rows this minute: 2 more are refused.
    let two = json!({"instances": [[1], [2]]});
    let r = call(&gw, ACME, "POST", "/ml/kserve/infer", &two).await;
    assert_eq!(r.status(), 429);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "rate_limit_exceeded", "{err}");
    assert_eq!(echo.received().len(), 2);
    // Another tenant has its own counter.
    let r = call(&gw, GLOBEX, "POST", "/ml/kserve/infer", &two).await;
    assert_eq!(r.status(), 200);

    // Caps: rows per request, request size, methods, unknown paths.
    let six = json!({"dataframe_split": {"columns": ["a"], "data": [[1],[2],[3],[4],[5],[6]]}});
    let r = call(&gw, GLOBEX, "POST", "/ml/fraud/invocations", &six).await;
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "too_many_rows"
    );
    let big = json!({"instances": ["x".repeat(5000)]});
    let r = call(&gw, GLOBEX, "POST", "/ml/fraud/invocations", &big).await;
    assert_eq!(r.status(), 413);
    let r = call(&gw, GLOBEX, "GET", "/ml/fraud/invocations", &json!({})).await;
    assert_eq!(r.status(), 405);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "method_not_allowed"
    );
    let r = call(&gw, GLOBEX, "POST", "/ml/fraudulent", &json!({})).await;
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].is_string());
    assert_eq!(
        echo.received().len(),
        3,
        "refused calls never reach the upstream"
    );

    // Metrics carry the route as the model label, like a model call.
    let metrics = metrics_text(&gw).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("tollgate_requests_total")
                && l.contains("endpoint=\"route\"")
                && l.contains("model=\"fraud\"")
                && l.contains("status=\"200\"")),
        "{metrics}"
    );

    // The ledger: one row per call, the route as target, rows and bytes.
    let store = gw.stop().await;
    let recs = wait_records(&store, 8).await;
    let ok = recs
        .iter()
        .find(|r| r.endpoint == "route" && r.requested_model == "fraud" && r.status == 200)
        .expect("fraud call recorded");
    assert_eq!(ok.rows, 3);
    assert_eq!(ok.provider, "fraud");
    assert_eq!(ok.upstream_model, "/invocations");
    assert!(ok.request_bytes > 0 && ok.response_bytes > 0, "{ok:?}");
    assert!(ok.limits.contains("rows-per-tenant"), "{}", &*ok.limits);
    let limited = recs.iter().find(|r| r.status == 429).unwrap();
    assert_eq!(limited.error, "rate_limited");
    assert!(recs
        .iter()
        .any(|r| r.status == 403 && r.error == "route_forbidden"));

    // The audit line: headers (credentials redacted), rows, the payload.
    let audit = std::fs::read_to_string(&audit).unwrap();
    let line: Value = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["endpoint"] == "route" && l["status"] == 200 && l["rows"] == 3)
        .expect("audit line of the fraud call");
    assert!(line["headers"].is_object(), "{line}");
    assert!(!audit.contains(ACME) && !audit.contains(ROUTE_TOKEN));
    assert!(line.to_string().contains("dataframe_records"), "{line}");
}

#[tokio::test]
async fn route_guardrails_mask_json_strings_and_block() {
    let echo = start_echo().await;
    let mut gw = start_gateway_with(|db| {
        format!(
            r#"{head}
routes:
  - {{ name: fraud, path: /ml/fraud, upstream: {base} }}
keys:
  - {{ id: a, hash: {h}, principal: ann, tenant: acme }}
policy:
  rules:
    - {{ name: r, tenants: [acme], routes: ["*"] }}
guardrails:
  policies:
    - name: pii
      applies_to: {{ routes: [fraud] }}
      direction: both
      detectors: {{ builtins: [email, credit_card] }}
      action: mask
      actions: {{ credit_card: block }}
"#,
            head = config_head(db),
            base = echo.base(),
            h = hash(ACME),
        )
    })
    .await;
    let body = json!({"dataframe_records": [{"who": "jane@corp.example", "n": 1}]});
    let r = call(&gw, ACME, "POST", "/ml/fraud/invocations", &body).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    // The response's JSON strings are masked too.
    assert!(!answer.to_string().contains("ops@example.com"), "{answer}");
    let got = echo.received();
    let sent = String::from_utf8(got[0].body.clone()).unwrap();
    assert!(
        !sent.contains("jane@corp.example") && sent.contains("EMAIL"),
        "{sent}"
    );
    let card = json!({"instances": ["4111 1111 1111 1111"]});
    let r = call(&gw, ACME, "POST", "/ml/fraud/invocations", &card).await;
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "guardrail_blocked", "{err}");
    assert_eq!(echo.received().len(), 1);
    let _ = gw.stop().await;
}

#[tokio::test]
async fn rules_grant_routes_per_method_and_answers_carry_the_rate_limit_headers() {
    let echo = start_echo().await;
    let gw = start_gateway_with(|db| {
        format!(
            r#"{head}
routes:
  - name: api
    path: /api
    upstream: {base}
keys:
  - {{ id: reader, hash: {h1}, principal: rita, groups: [readers] }}
  - {{ id: writer, hash: {h2}, principal: walt, groups: [writers] }}
policy:
  rules:
    - {{ name: read-only, groups: [readers], routes: [api], methods: [get, HEAD] }}
    - {{ name: read-write, groups: [writers], routes: [api] }}
limits:
  rules:
    - name: api-calls
      match: {{ routes: [api] }}
      per: [principal]
      requests_per_minute: 5
"#,
            head = config_head(db),
            base = echo.base(),
            h1 = hash(ACME),
            h2 = hash(GLOBEX),
        )
    })
    .await;

    let r = call(&gw, ACME, "GET", "/api/items", &json!({})).await;
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["x-ratelimit-limit-requests"], "5");
    assert_eq!(h["x-ratelimit-remaining-requests"], "4");
    assert!(h.contains_key("x-ratelimit-reset-requests"));
    // The rule grants the route for GET and HEAD only.
    let r = call(&gw, ACME, "POST", "/api/items", &json!({})).await;
    assert_eq!(r.status(), 403);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "route_not_allowed", "{err}");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("for POST") && msg.contains("routes: [\"api\"]"),
        "{msg}"
    );
    assert_eq!(
        echo.received().len(),
        1,
        "the refused method never reached it"
    );
    // A rule without `methods` grants every method.
    let r = call(&gw, GLOBEX, "DELETE", "/api/items/1", &json!({})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "4");
    assert_eq!(echo.received()[1].method, "DELETE");
}
