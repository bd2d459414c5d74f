//! Databricks Model Serving both ways, over real HTTP: the `databricks`
//! egress provider (chat, completions, embeddings, streaming, MLflow payloads
//! passed through unchanged) and the gateway's own
//! `POST /serving-endpoints/{name}/invocations` ingress with errors in
//! Databricks' `{"error_code","message"}` shape; `azure_openai` paths and
//! `api-version`.
// `disallowed_methods`: tests read the gateway's own answers whole
// (`reqwest::Response::json` and friends are banned in product code).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use common::*;
use serde_json::{json, Value};

const PAT: &str = "dapi-test-pat-0001";

fn config(mock: &Mock, db: &str) -> String {
    format!(
        r#"{head}providers:
  - name: dbx
    kind: databricks
    base_url: http://{addr}
    auth: {{type: bearer, token: {PAT}}}
    forward_headers: ["x-mock-*"]
  - name: az
    kind: azure_openai
    base_url: http://{addr}/
    api_version: 2024-10-21
    auth: {{type: api_key, key: {PAT}}}
  - name: oai
    kind: openai
    base_url: http://{addr}/v1
    api_key: {PAT}
models:
  - name: llama
    provider: dbx
    upstream_model: databricks-llama-endpoint
  - name: bge
    provider: dbx
    upstream_model: bge-endpoint
  - name: churn-model
    provider: dbx
  - name: gpt
    provider: az
    upstream_model: gpt-deploy
  - name: plain
    provider: oai
    upstream_model: mock-chat
keys:
  - id: k
    hash: {hash}
    principal: alice
    models: ["*"]
"#,
        addr = mock.addr,
        hash = hash(KEY),
        head = config_head(db),
    )
}

async fn setup() -> (Mock, Gateway) {
    let mock = start_mock(Some(PAT)).await;
    let gw = start_gateway_with(|db| config(&mock, db)).await;
    (mock, gw)
}

async fn last(mock: &Mock) -> Value {
    mock.received().await.pop().unwrap()
}

#[tokio::test]
async fn egress_chat_completions_embeddings_and_streams() {
    let (mock, gw) = setup().await;
    let r = post(
        &gw,
        "/v1/chat/completions",
        Some(KEY),
        &chat_body("llama", "hello"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-tollgate-resolved-model"],
        "dbx/databricks-llama-endpoint"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    let seen = last(&mock).await;
    assert_eq!(
        seen["path"],
        "/serving-endpoints/databricks-llama-endpoint/invocations"
    );
    assert_eq!(seen["headers"]["authorization"], format!("Bearer {PAT}"));
    // The path names the endpoint; `model` is not sent in the body.
    assert!(seen["body"].get("model").is_none());
    assert_eq!(seen["body"]["messages"][0]["content"], "hello");

    let r = post(
        &gw,
        "/v1/completions",
        Some(KEY),
        &json!({"model": "llama", "prompt": "once upon"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["object"],
        "text_completion"
    );

    let r = post(
        &gw,
        "/v1/embeddings",
        Some(KEY),
        &json!({"model": "bge", "input": ["a", "b"]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        last(&mock).await["path"],
        "/serving-endpoints/bge-endpoint/invocations"
    );

    let mut body = chat_body("llama", "stream please");
    body["stream"] = json!(true);
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-mock-tokens", "5")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let content: String = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content.split_whitespace().count(), 5);
}

#[tokio::test]
async fn upstream_errors_keep_their_status() {
    let (_mock, gw) = setup().await;
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-mock-status", "429")
        .header("x-mock-retry-after", "7")
        .json(&chat_body("llama", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    let body: Value = r.json().await.unwrap();
    // Databricks' `message` reaches the caller.
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("forced status 429"));
}

async fn invoke(gw: &Gateway, name: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
    let r = post(
        gw,
        &format!("/serving-endpoints/{name}/invocations"),
        key,
        body,
    )
    .await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn ingress_runs_chat_completions_and_embeddings_through_the_pipeline() {
    let (mock, gw) = setup().await;
    let chat = json!({"messages": [{"role": "user", "content": "hi there"}], "max_tokens": 5});
    let (status, body) = invoke(&gw, "llama", Some(KEY), &chat).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        last(&mock).await["path"],
        "/serving-endpoints/databricks-llama-endpoint/invocations"
    );
    // Any model works behind the Databricks ingress, e.g. Azure.
    let (status, body) = invoke(&gw, "gpt", Some(KEY), &chat).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        last(&mock).await["path"],
        "/openai/deployments/gpt-deploy/chat/completions?api-version=2024-10-21"
    );
    let (status, body) = invoke(&gw, "plain", Some(KEY), &json!({"prompt": "abc"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "text_completion");
    let (status, body) = invoke(&gw, "bge", Some(KEY), &json!({"input": "abc"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");

    // Streaming through the ingress.
    let r = post(
        &gw,
        "/serving-endpoints/llama/invocations",
        Some(KEY),
        &json!({"messages": [{"role": "user", "content": "x"}], "stream": true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));

    // Recorded in the ledger like any other call.
    let mut gw = gw;
    let store = gw.stop().await;
    let recs = wait_records(&store, 5).await;
    assert!(recs
        .iter()
        .any(|r| r.requested_model == "llama" && r.status == 200 && r.provider == "dbx"));
}

#[tokio::test]
async fn ml_payloads_pass_through_unchanged_to_databricks_only() {
    let (mock, gw) = setup().await;
    let payloads = [
        json!({"dataframe_records": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]}),
        json!({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}}),
        json!({"instances": [[1, 2], [3, 4]]}),
        json!({"inputs": [[1, 2], [3, 4]], "params": {"threshold": 0.5}}),
    ];
    for p in &payloads {
        let (status, body) = invoke(&gw, "churn-model", Some(KEY), p).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!({"predictions": [3.0, 7.0]}));
        let seen = last(&mock).await;
        assert_eq!(seen["path"], "/serving-endpoints/churn-model/invocations");
        assert_eq!(&seen["body"], p, "the payload reached the model unchanged");
    }
    // A model whose provider cannot take ML payloads: a Databricks-shaped 400.
    let (status, body) = invoke(&gw, "plain", Some(KEY), &payloads[0]).await;
    assert_eq!(status, 400);
    assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE");
    assert!(body["message"].as_str().unwrap().contains("invocations"));
    // On the OpenAI routes the same model is fine.
    let r = post(
        &gw,
        "/v1/chat/completions",
        Some(KEY),
        &chat_body("plain", "x"),
    )
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn ingress_errors_are_in_databricks_shape() {
    let (_mock, gw) = setup().await;
    let chat = json!({"messages": [{"role": "user", "content": "x"}]});
    let (status, body) = invoke(&gw, "llama", None, &chat).await;
    assert_eq!(status, 401);
    assert_eq!(body["error_code"], "UNAUTHENTICATED");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("missing API key"));
    let (status, body) = invoke(&gw, "nope", Some(KEY), &chat).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (404, Some("RESOURCE_DOES_NOT_EXIST"))
    );
    let (status, body) = invoke(&gw, "llama", Some(KEY), &json!({"what": 1})).await;
    assert_eq!(status, 400);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("dataframe_records"));
    let (status, body) = invoke(&gw, "llama", Some(KEY), &json!([1])).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE"))
    );
    let r = client()
        .post(gw.url("/serving-endpoints/llama/invocations"))
        .bearer_auth(KEY)
        .header("x-mock-status", "503")
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_code"], "TEMPORARILY_UNAVAILABLE");
    assert!(body.get("error").is_none());
}

#[tokio::test]
async fn azure_requires_api_version_and_uses_deployments() {
    let (mock, gw) = setup().await;
    for (path, body) in [
        ("/v1/chat/completions", chat_body("gpt", "x")),
        ("/v1/completions", json!({"model": "gpt", "prompt": "x"})),
        ("/v1/embeddings", json!({"model": "gpt", "input": "x"})),
    ] {
        let r = post(&gw, path, Some(KEY), &body).await;
        assert_eq!(r.status(), 200, "{path}");
    }
    let paths: Vec<String> = mock
        .received()
        .await
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        paths,
        [
            "/openai/deployments/gpt-deploy/chat/completions?api-version=2024-10-21",
            "/openai/deployments/gpt-deploy/completions?api-version=2024-10-21",
            "/openai/deployments/gpt-deploy/embeddings?api-version=2024-10-21",
        ]
    );
    // The mock refuses a call without api-version, as Azure does.
    let r = client()
        .post(format!(
            "http://{}/openai/deployments/gpt-deploy/chat/completions",
            mock.addr
        ))
        .header("api-key", PAT)
        .json(&chat_body("gpt", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // A config without api_version is rejected with the path named.
    let text = config(&mock, "'sqlite::memory:'").replace("    api_version: 2024-10-21\n", "");
    let err = tollgate::config::parse_str(&text)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("providers[1].api_version: required"), "{err}");
}
