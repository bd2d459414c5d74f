//! Prompt templates against a real gateway and a real mock upstream:
//! rendering, versions, variables checks, injection, streaming, access
//! control, the listing, the templates folder and the ledger.

use crate::common;

use common::*;
use serde_json::{json, Value};

const KEY_ACME: &str = "tg-test-key-acme";

const TEMPLATES: &str = r#"
prompts:
  dir: templates
  templates:
    - name: summarize
      version: 1
      model: chat-up
      messages:
        - { role: system, content: "You summarize." }
        - { role: user, content: "Summarize: {{text}}" }
    - name: summarize
      version: 2
      model: chat-up
      description: Summaries in a given style
      params: { temperature: 0, max_tokens: 50 }
      messages:
        - { role: system, content: "You summarize in a {{ style }} style." }
        - { role: user, content: "Summarize: {{text}}" }
    - name: acme-only
      model: chat-up
      tenant: acme
      messages:
        - { role: user, content: "Hello {{name}}" }
policy:
  rules:
    - name: prompt users
      principals: [alice, acme1]
      models: ["prompt:*"]
"#;

const FOLDER_TEMPLATE: &str = r#"
name: greet
version: 3
model: chat-local
messages:
  - { role: user, content: "Greet {{who}}" }
"#;

async fn start(mock: &Mock) -> Gateway {
    let dead = dead_addr().await;
    start_gateway_with(|db| {
        let cfg = standard_config(mock, dead, db).replace(
            "keys:\n",
            &format!(
                "keys:\n  - id: acme1\n    hash: {}\n    principal: acme1\n    tenant: acme\n    models: [\"chat-*\"]\n",
                hash(KEY_ACME)
            ),
        );
        // `db` is sqlite://<dir>/t.db: the templates folder goes next to the config.
        let dir = std::path::Path::new(db.trim_start_matches("sqlite://"))
            .parent()
            .unwrap()
            .join("templates");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("greet.yaml"), FOLDER_TEMPLATE).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a template").unwrap();
        format!("{cfg}{TEMPLATES}")
    })
    .await
}

async fn call(gw: &Gateway, key: &str, path: &str, body: Value) -> reqwest::Response {
    post(gw, path, Some(key), &body).await
}

async fn last_upstream_messages(mock: &Mock) -> Value {
    let all = mock.received().await;
    all.last().unwrap()["body"].clone()
}

#[tokio::test]
async fn renders_versions_params_and_overrides() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let mut gw = start(&mock).await;
    let vars = json!({"variables": {"text": "gateways route calls", "style": "terse"}});
    let resp = call(&gw, KEY, "/v1/prompts/summarize/completions", vars).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    let sent = last_upstream_messages(&mock).await;
    assert_eq!(sent["model"], "mock-chat");
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "system", "content": "You summarize in a terse style."},
            {"role": "user", "content": "Summarize: gateways route calls"}
        ])
    );
    assert_eq!(
        (sent["temperature"].clone(), sent["max_tokens"].clone()),
        (json!(0), json!(50))
    );

    // A pinned version, and the caller's overrides over the defaults.
    let v1 = json!({"variables": {"text": "old"}, "max_tokens": 7, "temperature": 0.2});
    let resp = call(&gw, KEY, "/v1/prompts/summarize/versions/1/completions", v1).await;
    assert_eq!(resp.status(), 200);
    let sent = last_upstream_messages(&mock).await;
    assert_eq!(sent["messages"][1]["content"], "Summarize: old");
    assert_eq!(sent["max_tokens"], 7);

    // A template from the folder.
    let resp = call(
        &gw,
        KEY,
        "/v1/prompts/greet/completions",
        json!({"variables": {"who": "Ada"}}),
    )
    .await;
    assert_eq!(resp.status(), 200);

    let store = gw.stop().await;
    let recs = wait_records(&store, 3).await;
    let called: Vec<(&str, Option<i64>, &str)> = recs
        .iter()
        .map(|r| {
            (
                r.template.as_str(),
                r.template_version,
                r.requested_model.as_str(),
            )
        })
        .collect();
    assert_eq!(
        called,
        [
            ("summarize", Some(2), "chat-up"),
            ("summarize", Some(1), "chat-up"),
            ("greet", Some(3), "chat-local")
        ]
    );
}

async fn error_of(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status(), status);
    let v: Value = resp.json().await.unwrap();
    v["error"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn variables_are_checked_and_inserted_as_data() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start(&mock).await;
    let path = "/v1/prompts/summarize/completions";
    let msg = error_of(
        call(
            &gw,
            KEY,
            path,
            json!({"variables": {"text": "x", "tone": "y"}}),
        )
        .await,
        400,
    )
    .await;
    assert!(msg.contains("missing variables: style"), "{msg}");
    assert!(msg.contains("unexpected variables: tone"), "{msg}");
    let msg = error_of(call(&gw, KEY, path, json!({})).await, 400).await;
    assert!(msg.contains("missing variables: style, text"), "{msg}");
    let msg = error_of(
        call(
            &gw,
            KEY,
            path,
            json!({"variables": {"text": "x", "style": "s"}, "model": "chat-local"}),
        )
        .await,
        400,
    )
    .await;
    assert!(msg.contains("`model`"), "{msg}");
    let msg = error_of(
        call(&gw, KEY, path, json!({"variables": "text"})).await,
        400,
    )
    .await;
    assert!(msg.contains("`variables` must be an object"), "{msg}");

    // Template syntax inside a value stays text.
    let evil = json!({"variables": {"text": "{{style}} }} {{ text }} {{", "style": "{{text}}"}});
    assert_eq!(call(&gw, KEY, path, evil).await.status(), 200);
    let sent = last_upstream_messages(&mock).await;
    assert_eq!(
        sent["messages"][0]["content"],
        "You summarize in a {{text}} style."
    );
    assert_eq!(
        sent["messages"][1]["content"],
        "Summarize: {{style}} }} {{ text }} {{"
    );
}

#[tokio::test]
async fn streams_through_the_chat_pipeline() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start(&mock).await;
    let body = json!({"variables": {"text": "t", "style": "s"}, "stream": true,
        "stream_options": {"include_usage": true}});
    let resp = call(&gw, KEY, "/v1/prompts/summarize/completions", body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert!(usage["usage"]["completion_tokens"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn access_is_granted_like_models() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start(&mock).await;
    let vars = json!({"variables": {"text": "t", "style": "s"}});
    // bob has no `prompt:` grant.
    let msg = error_of(
        call(
            &gw,
            KEY_LIMITED,
            "/v1/prompts/summarize/completions",
            vars.clone(),
        )
        .await,
        403,
    )
    .await;
    assert!(msg.contains("prompt:summarize"), "{msg}");
    // A tenant's template is only for its tenant; unknown names and
    // versions; no credential.
    let hello = json!({"variables": {"name": "x"}});
    for (path, key, body, status) in [
        ("/v1/prompts/acme-only/completions", Some(KEY), &hello, 403),
        (
            "/v1/prompts/acme-only/completions",
            Some(KEY_ACME),
            &hello,
            200,
        ),
        ("/v1/prompts/nope/completions", Some(KEY), &vars, 404),
        (
            "/v1/prompts/summarize/versions/9/completions",
            Some(KEY),
            &vars,
            404,
        ),
        (
            "/v1/prompts/summarize/versions/x/completions",
            Some(KEY),
            &vars,
            400,
        ),
        ("/v1/prompts/summarize/completions", None, &vars, 401),
    ] {
        let resp = post(&gw, path, key, body).await;
        assert_eq!(resp.status(), status, "{path} {key:?}");
    }

    let list = |key: &'static str| {
        let gw = &gw;
        async move {
            let v = get_json(gw, "/v1/prompts", key).await;
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    format!(
                        "{}@{}:{}",
                        t["name"].as_str().unwrap(),
                        t["version"],
                        t["variables"]
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(KEY).await,
        [
            "summarize@1:[\"text\"]",
            "summarize@2:[\"style\",\"text\"]",
            "greet@3:[\"who\"]"
        ]
    );
    assert!(list(KEY_LIMITED).await.is_empty());
    assert!(list(KEY_ACME)
        .await
        .contains(&"acme-only@1:[\"name\"]".to_string()));
}

#[tokio::test]
async fn bad_templates_are_config_errors() {
    let bad = "server: { listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0 }\nmodels: [{ name: m, provider: p }]\nproviders: [{ name: p, kind: mock }]\nprompts:\n  templates:\n    - { name: t, model: nope, messages: [{ role: user, content: \"{{ unclosed\" }] }\n";
    let err = tollgate::config::parse_str(bad).unwrap_err().to_string();
    assert!(err.contains("unknown model \"nope\""), "{err}");
    assert!(err.contains("never closed"), "{err}");
}

#[tokio::test]
async fn the_templates_folder_is_read_again_on_reload() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start(&mock).await;
    let file = gw.dir.path().join("templates").join("greet.yaml");
    std::fs::write(&file, FOLDER_TEMPLATE.replace("version: 3", "version: 4")).unwrap();
    gw.running().reload().unwrap();
    let v = get_json(&gw, "/v1/prompts", KEY).await;
    let greet: Vec<_> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"] == "greet")
        .map(|t| t["version"].clone())
        .collect();
    assert_eq!(greet, [json!(4)]);
    // A broken file keeps the running templates and says where.
    std::fs::write(&file, "name: greet\nmodel: [").unwrap();
    let err = gw.running().reload().unwrap_err().to_string();
    assert!(err.contains("greet.yaml"), "{err}");
    let resp = call(
        &gw,
        KEY,
        "/v1/prompts/greet/completions",
        json!({"variables": {"who": "x"}}),
    )
    .await;
    assert_eq!(resp.status(), 200);
}
