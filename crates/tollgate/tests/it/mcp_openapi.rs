//! REST APIs published as MCP tools (issue 27, `transport: openapi`): a
//! local REST API and its OpenAPI document (a file, and the same document
//! served by the API at a URL) behind `/mcp/{server}`, called with the
//! gateway's own MCP client: the tool mapping (path, query, header, JSON
//! body), the credential injected and scrubbed from echoes, an error
//! status as `isError`, and a curated subset.

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use common::*;
use http::{HeaderMap, Request};
use serde_json::{json, Value};
use tollgate::config::{McpServerConfig, McpToolSelection, McpTransport, Secret, UpstreamAuth};
use tollgate::mcp_gateway::Upstream;

const API_TOKEN: &str = "rest-api-token-Lk29Vd83Mq";
const DOC: &str = include_str!("../data/openapi/pets.yaml");

/// What the API received: method, path and query, Authorization, body.
type Seen = Arc<Mutex<Vec<(String, String, String, String)>>>;

/// The pets API: `GET /v1/pets/{id}` (404 for id 0; echoes the
/// Authorization it got in `auth`), `GET /v1/pets` (a JSON array), `POST
/// /v1/pets` (201, the body back), `DELETE /v1/pets/{id}`, `GET
/// /openapi.yaml` (its document).
async fn start_api() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = Router::new().fallback(move |req: Request<Body>| {
        let log = log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            let auth = parts
                .headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let target = parts.uri.to_string();
            let path = parts.uri.path().to_string();
            let method = parts.method.to_string();
            if path == "/openapi.yaml" {
                return (
                    http::StatusCode::OK,
                    [("content-type", "application/yaml")],
                    DOC.to_string(),
                );
            }
            log.lock().unwrap().push((
                method.clone(),
                target.clone(),
                auth.clone(),
                String::from_utf8_lossy(&body).into_owned(),
            ));
            let json_ct = [("content-type", "application/json")];
            match (method.as_str(), path.as_str()) {
                ("GET", "/v1/pets/0") => (
                    http::StatusCode::NOT_FOUND,
                    json_ct,
                    json!({"error": "no such pet"}).to_string(),
                ),
                ("GET", p) if p.starts_with("/v1/pets/") => (
                    http::StatusCode::OK,
                    json_ct,
                    json!({"id": &p[9..], "name": "rex", "auth": auth,
                           "trace": parts.headers.get("x-trace").map(|v| v.to_str().unwrap())})
                    .to_string(),
                ),
                ("GET", "/v1/pets") => (
                    http::StatusCode::OK,
                    json_ct,
                    json!([{"query": parts.uri.query()}]).to_string(),
                ),
                ("POST", "/v1/pets") => (
                    http::StatusCode::CREATED,
                    json_ct,
                    String::from_utf8_lossy(&body).into_owned(),
                ),
                _ => (
                    http::StatusCode::METHOD_NOT_ALLOWED,
                    json_ct,
                    "{}".to_string(),
                ),
            }
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (addr, seen)
}

/// The config's start: the store, one key, a rule granting every tool.
fn head(db: &str) -> String {
    format!(
        r#"{head}keys:
  - id: full
    hash: {full}
    principal: alice
policy:
  rules:
    - name: all
      principals: [alice]
      tools: ["*"]
"#,
        head = config_head(db),
        full = hash(KEY),
    )
}

fn config(db: &str, api: SocketAddr, spec: &Path) -> String {
    format!(
        r#"{head}mcp:
  servers:
    - name: pets
      transport: openapi
      openapi: {{ spec: {spec}, base_url: "http://{api}/v1", operations: [getPet, listPets, createPet] }}
      auth: {{ type: bearer, token: {API_TOKEN} }}
      timeout: 5s
    - name: pets-url
      transport: openapi
      openapi: {{ spec: "http://{api}/openapi.yaml" }}
      auth: {{ type: bearer, token: {API_TOKEN} }}
"#,
        head = head(db),
        spec = spec.display(),
    )
}

/// The gateway's `/mcp/{server}` through the gateway's own MCP client.
fn client(gw: &Gateway, server: &str) -> Upstream {
    let cfg = McpServerConfig {
        name: server.into(),
        transport: McpTransport::StreamableHttp,
        url: Some(gw.url(&format!("/mcp/{server}"))),
        command: None,
        args: vec![],
        env: Default::default(),
        cwd: None,
        auth: Some(UpstreamAuth::Bearer {
            token: Some(Secret(KEY.into())),
            token_file: None,
        }),
        headers: Default::default(),
        timeout: Duration::from_secs(10),
        expose: true,
        tools: McpToolSelection::default(),
        pin_tools: false,
        openapi: None,
    };
    Upstream::build(&cfg, 1 << 20, &Default::default()).unwrap()
}

async fn call(c: &Upstream, session: Option<&str>, tool: &str, args: Value) -> Value {
    c.request(
        session,
        "tools/call",
        Some(&json!({"name": tool, "arguments": args})),
        &HeaderMap::new(),
        None,
        None,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn rest_operations_are_tools() {
    let (api, seen) = start_api().await;
    let spec_dir = tempfile::tempdir().unwrap();
    let spec = spec_dir.path().join("pets.yaml");
    std::fs::write(&spec, DOC).unwrap();
    let mut gw = start_gateway_with(|db| config(db, api, &spec)).await;
    let c = client(&gw, "pets");
    let session = c.open(&HeaderMap::new()).await.unwrap();
    let s = session.as_deref();
    let list = c
        .request(s, "tools/list", None, &HeaderMap::new(), None, None)
        .await
        .unwrap();
    let names: Vec<&str> = list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    // `deletePet` is in the document but not in `operations`.
    assert_eq!(names, vec!["listPets", "createPet", "getPet"]);
    let get = &list["tools"][2];
    assert_eq!(get["description"], "Fetch one pet");
    assert_eq!(get["inputSchema"]["required"], json!(["petId"]));

    // Path and header parameters; the credential injected, and scrubbed
    // from the echo before the agent sees it.
    let r = call(&c, s, "getPet", json!({"petId": "a b/c", "X-Trace": "t-7"})).await;
    assert_eq!(r["isError"], false);
    assert_eq!(r["structuredContent"]["id"], "a%20b%2Fc");
    assert_eq!(r["structuredContent"]["trace"], "t-7");
    assert_eq!(r["structuredContent"]["auth"], "[redacted]");
    assert!(!r.to_string().contains(API_TOKEN));
    // Query (an array repeats its name) and a JSON array answer.
    let r = call(&c, s, "listPets", json!({"limit": 2, "tag": ["x", "y"]})).await;
    assert_eq!(
        r["structuredContent"],
        json!({"result": [{"query": "limit=2&tag=x&tag=y"}]})
    );
    // A JSON body.
    let r = call(
        &c,
        s,
        "createPet",
        json!({"body": {"name": "tom", "age": 3}}),
    )
    .await;
    assert_eq!(r["structuredContent"], json!({"name": "tom", "age": 3}));
    // An error status is a tool error with the status and the body.
    let r = call(&c, s, "getPet", json!({"petId": 0})).await;
    assert_eq!(r["isError"], true);
    assert_eq!(
        r["content"][0]["text"],
        "HTTP 404: {\"error\":\"no such pet\"}"
    );
    // Not published: unknown to the gateway; a missing argument: no request.
    let before = seen.lock().unwrap().len();
    for (tool, args) in [("deletePet", json!({"petId": 1})), ("getPet", json!({}))] {
        let e = c
            .request(
                s,
                "tools/call",
                Some(&json!({"name": tool, "arguments": args})),
                &HeaderMap::new(),
                None,
                None,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, tollgate::mcp_gateway::UpstreamError::Rpc { .. }),
            "{e:?}"
        );
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), before);
    assert_eq!(
        seen.iter()
            .map(|r| (r.0.as_str(), r.1.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("GET", "/v1/pets/a%20b%2Fc"),
            ("GET", "/v1/pets?limit=2&tag=x&tag=y"),
            ("POST", "/v1/pets"),
            ("GET", "/v1/pets/0"),
        ]
    );
    assert!(seen.iter().all(|r| r.2 == format!("Bearer {API_TOKEN}")));
    assert_eq!(seen[2].3, r#"{"age":3,"name":"tom"}"#);

    // The document at a URL (fetched on first use), its relative server
    // URL resolved against it; every operation published.
    let c = client(&gw, "pets-url");
    let session = c.open(&HeaderMap::new()).await.unwrap();
    let list = c
        .request(
            session.as_deref(),
            "tools/list",
            None,
            &HeaderMap::new(),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(list["tools"].as_array().unwrap().len(), 4);
    let r = call(&c, session.as_deref(), "getPet", json!({"petId": 5})).await;
    assert_eq!(r["structuredContent"]["id"], "5");
    gw.stop().await;
}

#[tokio::test]
async fn a_rest_api_through_a_connection_takes_its_credential_and_allow_lists() {
    const CONN_TOKEN: &str = "connection-token-Qp47Zx10Rt";
    let (api, seen) = start_api().await;
    let spec_dir = tempfile::tempdir().unwrap();
    let spec = spec_dir.path().join("pets.yaml");
    std::fs::write(&spec, DOC).unwrap();
    let gw = start_gateway_with(|db| {
        format!(
            r#"{head}connections:
  - name: petstore
    base_url: "http://{api}/v1"
    credential: {{ type: bearer, value: {CONN_TOKEN} }}
    methods: [GET]
mcp:
  servers:
    - name: pets
      transport: openapi
      openapi: {{ spec: {spec}, connection: petstore }}
"#,
            head = head(db),
            spec = spec.display(),
        )
    })
    .await;
    let c = client(&gw, "pets");
    let session = c.open(&HeaderMap::new()).await.unwrap();
    let s = session.as_deref();
    // The connection's base URL and credential (scrubbed from the echo);
    // no connections grant needed, the tool grant is the grant.
    let r = call(&c, s, "getPet", json!({"petId": 7})).await;
    assert_eq!(r["isError"], false, "{r}");
    assert_eq!(r["structuredContent"]["id"], "7");
    assert_eq!(r["structuredContent"]["auth"], "[redacted]");
    // The connection allows GET only: a POST tool is refused before the API.
    let e = c
        .request(
            s,
            "tools/call",
            Some(&json!({"name": "createPet", "arguments": {"body": {"name": "x"}}})),
            &HeaderMap::new(),
            None,
            None,
        )
        .await
        .unwrap_err();
    match e {
        tollgate::mcp_gateway::UpstreamError::Rpc { error, .. } => {
            assert_eq!(error.code, -32003, "{error:?}");
            assert!(error.message.contains("petstore"), "{error:?}");
        }
        other => panic!("{other:?}"),
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].0.as_str(), seen[0].1.as_str()),
        ("GET", "/v1/pets/7")
    );
    assert_eq!(seen[0].2, format!("Bearer {CONN_TOKEN}"));
}
