//! Prompt template labels and typed variables against a real gateway and
//! mock upstream: `name@label` calls the labelled version, a reload moves a
//! label, declared variables take their defaults and are type-checked with
//! the error in the caller's (OpenAI) shape.

use crate::common;

use common::*;
use serde_json::{json, Value};

fn templates(production: u32, staging: u32) -> String {
    let labels = |v: u32| {
        let mut l = Vec::new();
        if v == production {
            l.push("production");
        }
        if v == staging {
            l.push("staging");
        }
        format!("[{}]", l.join(", "))
    };
    format!(
        r#"
prompts:
  templates:
    - name: greet
      version: 1
      model: chat-up
      labels: {l1}
      variables:
        who: {{ type: string, default: world }}
        times: {{ type: number, default: 3 }}
        loud: {{ type: bool }}
      messages:
        - {{ role: user, content: "v1 hello {{{{who}}}} x{{{{times}}}} loud={{{{loud}}}}" }}
    - name: greet
      version: 2
      model: chat-up
      labels: {l2}
      messages:
        - {{ role: user, content: "v2 hi {{{{who}}}}" }}
policy:
  rules:
    - name: prompt users
      principals: [alice]
      models: ["prompt:*"]
"#,
        l1 = labels(1),
        l2 = labels(2),
    )
}

/// The user message the upstream last received.
async fn last_prompt(mock: &Mock) -> String {
    let seen = mock.received().await;
    let body = &seen.last().unwrap()["body"];
    body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn call(gw: &Gateway, reference: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(gw.url(&format!("/v1/prompts/{reference}/completions")))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn labels_are_called_and_moved_and_variables_are_typed() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let dead = dead_addr().await;
    let gw =
        start_gateway_with(|db| format!("{}{}", standard_config(&mock, dead, db), templates(1, 2)))
            .await;

    let (s, _) = call(
        &gw,
        "greet@production",
        json!({"variables": {"loud": true}}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        last_prompt(&mock).await,
        "v1 hello world x3 loud=true",
        "defaults filled in"
    );
    let (s, _) = call(
        &gw,
        "greet@production",
        json!({"variables": {"loud": false, "who": "Ann", "times": 2}}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(last_prompt(&mock).await, "v1 hello Ann x2 loud=false");
    let (s, _) = call(&gw, "greet@staging", json!({"variables": {"who": "Bo"}})).await;
    assert_eq!(s, 200);
    assert_eq!(last_prompt(&mock).await, "v2 hi Bo");
    // A number after `@` is a version; no suffix is the highest version.
    let (s, _) = call(&gw, "greet@1", json!({"variables": {"loud": true}})).await;
    assert_eq!(s, 200);
    assert_eq!(last_prompt(&mock).await, "v1 hello world x3 loud=true");
    let (s, _) = call(&gw, "greet", json!({"variables": {"who": "Cy"}})).await;
    assert_eq!((s, last_prompt(&mock).await), (200, "v2 hi Cy".to_owned()));
    let (s, err) = call(&gw, "greet@canary", json!({})).await;
    assert_eq!(s, 404, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("greet@canary"),
        "{err}"
    );

    // Wrong types, all named, in OpenAI's error shape; a required one missing.
    let (s, err) = call(
        &gw,
        "greet@production",
        json!({"variables": {"times": "three", "loud": 1}}),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert_eq!(err["error"]["param"], "variables");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("times (expected number)") && msg.contains("loud (expected bool)"),
        "{msg}"
    );
    let (s, err) = call(&gw, "greet@production", json!({"variables": {}})).await;
    assert_eq!(s, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing variables: loud"),
        "{err}"
    );

    // The listing shows the labels.
    let v = get_json(&gw, "/v1/prompts", KEY).await;
    let labels: Vec<(i64, Value)> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["version"].as_i64().unwrap(), t["labels"].clone()))
        .collect();
    assert_eq!(
        labels,
        [(1, json!(["production"])), (2, json!(["staging"]))]
    );

    // The operator moves `production` to version 2: a reload.
    let cfg = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        cfg.replace(&templates(1, 2), &templates(2, 2)),
    )
    .unwrap();
    gw.running().reload().unwrap();
    let (s, _) = call(&gw, "greet@production", json!({"variables": {"who": "Di"}})).await;
    assert_eq!((s, last_prompt(&mock).await), (200, "v2 hi Di".to_owned()));
}

#[tokio::test]
async fn bad_labels_and_variables_are_config_errors() {
    let head = "server: { listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0 }\nmodels: [{ name: m, provider: p }]\nproviders: [{ name: p, kind: mock }]\nprompts:\n  templates:\n";
    let t = |v: u32, extra: &str| {
        format!("    - {{ name: t, version: {v}, model: m, messages: [{{ role: user, content: \"{{{{a}}}}\" }}]{extra} }}\n")
    };
    let bad = format!(
        "{head}{}{}{}",
        t(1, ", labels: [prod, \"7\"]"),
        t(2, ", labels: [prod]"),
        t(
            3,
            ", variables: { a: { type: number, default: x }, b: { type: bool } }"
        ),
    );
    let err = tollgate::config::parse_str(&bad).unwrap_err().to_string();
    assert!(err.contains("\"7\": use letters"), "{err}");
    assert!(
        err.contains("\"prod\" is already on another version"),
        "{err}"
    );
    assert!(
        err.contains("variables.a.default: \"x\" is not a number"),
        "{err}"
    );
    assert!(err.contains("variables.b: not used"), "{err}");
}
