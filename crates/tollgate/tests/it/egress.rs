//! The egress allowlist (docs/egress.md) on every kind of outbound call:
//! providers by name, IP literal, private address and port; redirects; a
//! guardrail webhook, an MCP upstream and a JWKS URL under the same list
//! (and reachable once a reload lists them); and DNS rebinding, with a DNS
//! server of the test's own (`egress.nameservers`) and upstreams on other
//! loopback addresses (127.0.0.2, 127.0.0.3: all of 127/8 is local).

use crate::common::{self, *};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

type Answer = dyn Fn(&str, usize) -> Option<Vec<IpAddr>> + Send + Sync;

/// A DNS server on 127.0.0.1 (UDP): `answer(name, nth)` gives the A records
/// for the nth A query of `name` (from 1), `None` for NXDOMAIN; AAAA
/// queries get no records. Every A query is counted by name.
struct Dns {
    addr: SocketAddr,
    queries: Arc<Mutex<HashMap<String, usize>>>,
}

impl Dns {
    async fn start(
        answer: impl Fn(&str, usize) -> Option<Vec<IpAddr>> + Send + Sync + 'static,
    ) -> Dns {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let queries = Arc::new(Mutex::new(HashMap::new()));
        let counted = queries.clone();
        let answer: Arc<Answer> = Arc::new(answer);
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                if let Some(reply) = dns_reply(&buf[..n], &counted, &*answer) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        Dns { addr, queries }
    }

    fn count(&self, name: &str) -> usize {
        self.queries.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

/// A reply to one query (RFC 1035 §4.1), written by hand: the question
/// echoed, then one record per address (TTL 0, so nothing is cached).
fn dns_reply(
    query: &[u8],
    queries: &Mutex<HashMap<String, usize>>,
    answer: &Answer,
) -> Option<Vec<u8>> {
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*query.get(i)?, *query.get(i + 1)?]);
    let question = query.get(12..i + 4)?;
    let name = labels.join(".");
    let addrs = match qtype {
        1 => {
            let nth = {
                let mut q = queries.lock().unwrap();
                let n = q.entry(name.clone()).or_insert(0);
                *n += 1;
                *n
            };
            answer(&name, nth)
        }
        _ => answer(&name, 0).map(|_| Vec::new()),
    };
    let mut out = Vec::new();
    out.extend_from_slice(&query[..2]);
    out.extend_from_slice(if addrs.is_some() {
        &[0x81, 0x80]
    } else {
        &[0x81, 0x83]
    });
    let records: Vec<[u8; 4]> = addrs
        .unwrap_or_default()
        .into_iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(v4) => Some(v4.octets()),
            IpAddr::V6(_) => None,
        })
        .collect();
    for n in [1u16, records.len() as u16, 0, 0] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(question);
    for r in records {
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
        out.extend_from_slice(&r);
    }
    Some(out)
}

/// An HTTP server on `addr` answering every request with `body` (JSON,
/// `Connection: close`); counts the connections it accepts.
async fn counted(addr: &str, body: String) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let bound = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                if read_request(&mut stream).await.is_some() {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(body.as_bytes()).await;
                }
            });
        }
    });
    (bound, accepted)
}

fn head(db: &str) -> String {
    config_head(db)
        + &format!(
            "keys:\n  - id: full\n    hash: {}\n    principal: alice\n    models: [\"*\"]\n",
            hash(KEY)
        )
}

/// A provider `name` at `base` and its model `m-{name}` (`mock-chat` upstream).
fn provider(name: &str, base: &str) -> (String, String) {
    (
        format!(
            "  - name: {name}\n    kind: openai\n    base_url: {base}\n    api_key: {UPSTREAM_KEY}\n    timeouts: {{ connect: 2s }}\n"
        ),
        format!("  - name: m-{name}\n    provider: {name}\n    upstream_model: mock-chat\n"),
    )
}

fn providers(list: &[(&str, String)]) -> String {
    let (p, m): (Vec<_>, Vec<_>) = list.iter().map(|(n, b)| provider(n, b)).unzip();
    format!("providers:\n{}models:\n{}", p.concat(), m.concat())
}

async fn chat(gw: &Gateway, model: &str) -> (u16, Value) {
    let resp = post(
        gw,
        "/v1/chat/completions",
        Some(KEY),
        &chat_body(model, "hi"),
    )
    .await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// A refusal as the caller sees it: 502 `egress_denied`, no secret.
fn assert_denied(model: &str, status: u16, body: &Value) {
    assert_eq!(status, 502, "{model}: {body}");
    assert_eq!(body["error"]["code"], "egress_denied", "{model}: {body}");
    let text = body.to_string();
    assert!(text.contains("egress refused"), "{model}: {body}");
    assert!(!text.contains(UPSTREAM_KEY), "{model}: {body}");
}

fn opts() -> tollgate::mock::server::MockOptions {
    Default::default()
}

#[tokio::test]
async fn calls_reach_only_what_the_allowlist_lists() {
    let listed = start_mock_at("127.0.0.1:0", opts()).await;
    let private = start_mock_at("127.0.0.2:0", opts()).await;
    let named = start_mock_at("127.0.0.3:0", opts()).await;
    let dns = Dns::start(|name, _| match name {
        "named.test" | "unlisted.test" => Some(vec!["127.0.0.3".parse().unwrap()]),
        "private.test" => Some(vec!["127.0.0.2".parse().unwrap()]),
        _ => None,
    })
    .await;
    let dead = dead_addr().await;
    let (lp, pp, np) = (listed.addr.port(), private.addr.port(), named.addr.port());
    let gw = start_gateway_with(|db| {
        head(db)
            + &providers(&[
                ("listed-ip", format!("http://127.0.0.1:{lp}/v1")),
                ("listed-name", format!("http://named.test:{np}/v1")),
                ("unlisted-name", format!("http://unlisted.test:{np}/v1")),
                ("ip-literal", format!("http://127.0.0.2:{pp}/v1")),
                ("private-address", format!("http://private.test:{pp}/v1")),
                ("other-port", format!("http://{dead}/v1")),
            ])
            + &format!(
                "egress:\n  nameservers: [\"{}\"]\n  allow:\n\
                 \x20   - {{ host: 127.0.0.1, ports: [{lp}] }}\n\
                 \x20   - {{ host: named.test, schemes: [http] }}\n\
                 \x20   - {{ host: private.test }}\n\
                 \x20   - {{ cidr: 127.0.0.3/32 }}\n",
                dns.addr
            )
    })
    .await;

    assert_eq!(chat(&gw, "m-listed-ip").await.0, 200);
    assert_eq!(listed.received().await.len(), 1);
    assert_eq!(chat(&gw, "m-listed-name").await.0, 200);
    assert_eq!(named.received().await.len(), 1);
    assert_eq!(dns.count("named.test"), 1);

    for model in [
        "m-unlisted-name",
        "m-ip-literal",
        "m-private-address",
        "m-other-port",
    ] {
        let (status, body) = chat(&gw, model).await;
        assert_denied(model, status, &body);
    }
    // Refused before any lookup, and before any byte reached the upstreams.
    assert_eq!(dns.count("unlisted.test"), 0);
    assert!(dns.count("private.test") >= 1);
    assert!(private.received().await.is_empty());
    assert_eq!(named.received().await.len(), 1);

    let metrics = metrics_text(&gw).await;
    for reason in ["host", "ip_literal", "address", "port"] {
        assert!(
            metrics.contains(&format!(
                "tollgate_egress_denied_total{{reason=\"{reason}\"}}"
            )),
            "{reason}: {metrics}"
        );
    }
}

#[tokio::test]
async fn redirects_are_checked_hop_by_hop() {
    let on_list = start_mock_at("127.0.0.1:0", opts()).await;
    let off_list = start_mock_at("127.0.0.2:0", opts()).await;
    let (on, off) = (on_list.addr, off_list.addr);
    // Answers 307 to the listed mock under /on, to the unlisted one under /off.
    let redirector = raw_upstream(move |mut stream, request| async move {
        let target = if request.starts_with(b"POST /on/") { on } else { off };
        let head = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{target}/v1/chat/completions\r\ncontent-length: 0\r\n\r\n"
        );
        let _ = stream.write_all(head.as_bytes()).await;
    })
    .await;
    let gw = start_gateway_with(|db| {
        head(db)
            + &providers(&[
                ("to-listed", format!("http://{redirector}/on/v1")),
                ("to-unlisted", format!("http://{redirector}/off/v1")),
            ])
            + "egress:\n  allow:\n    - { host: 127.0.0.1 }\n"
    })
    .await;

    assert_eq!(chat(&gw, "m-to-listed").await.0, 200);
    assert_eq!(on_list.received().await.len(), 1);
    let (status, body) = chat(&gw, "m-to-unlisted").await;
    assert_denied("m-to-unlisted", status, &body);
    assert!(off_list.received().await.is_empty());
}

/// A provider's redirect to another origin (here another port) is followed
/// with the same method and body (307), without the provider's key, which
/// the first hop carried: `authorization` (OpenAI) and `api-key` (Azure
/// OpenAI, which reqwest used to send on; docs/egress.md, "Redirects").
#[tokio::test]
async fn a_redirect_to_another_origin_goes_without_the_credential() {
    let target = start_mock_at("127.0.0.1:0", opts()).await;
    let to = target.addr;
    let keyed = Arc::new(AtomicUsize::new(0));
    let seen = keyed.clone();
    let redirector = raw_upstream(move |mut stream, request| {
        if String::from_utf8_lossy(&request).contains(UPSTREAM_KEY) {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        async move {
            let head = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{to}/v1/chat/completions\r\ncontent-length: 0\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes()).await;
        }
    })
    .await;
    let (p, m) = provider("hop", &format!("http://{redirector}/v1"));
    let gw = start_gateway_with(|db| {
        head(db)
            + &format!(
                "providers:\n{p}  - name: az\n    kind: azure_openai\n    base_url: http://{redirector}\n    \
                 api_version: 2024-10-21\n    api_key: {UPSTREAM_KEY}\n\
                 models:\n{m}  - name: m-az\n    provider: az\n    upstream_model: mock-chat\n"
            )
    })
    .await;

    for (n, model) in [(1, "m-hop"), (2, "m-az")] {
        assert_eq!(chat(&gw, model).await.0, 200, "{model}");
        assert_eq!(keyed.load(Ordering::SeqCst), n, "{model}");
        let got = target.received().await;
        assert_eq!(got.len(), n, "{got:?}");
        let last = &got[n - 1];
        // The same POST body (a GET would have none).
        assert_eq!(last["path"], "/v1/chat/completions", "{last}");
        assert_eq!(last["body"]["model"], "mock-chat", "{last}");
        let text = last.to_string();
        assert!(!text.contains(UPSTREAM_KEY), "{model}: {text}");
        for header in ["authorization", "api-key"] {
            assert!(last["headers"].get(header).is_none(), "{model}: {text}");
        }
    }
}

/// A guardrail webhook, an MCP upstream and an OIDC issuer's JWKS, all on
/// 127.0.0.2: refused while it is not listed, reached once a reload lists
/// it (the MCP upstream and the key cache are kept across the reload, so
/// their clients read the new list).
#[tokio::test]
async fn webhooks_mcp_upstreams_and_jwks_follow_the_same_list() {
    let mock = start_mock(None).await;
    let (hook, hook_calls) = counted("127.0.0.2:0", r#"{"action":"allow"}"#.into()).await;
    let (mcp, mcp_calls) = counted("127.0.0.2:0", "{}".into()).await;
    let jwks_body = String::from_utf8(common::jwt::fixture("jwks.json")).unwrap();
    let (jwks, jwks_calls) = counted("127.0.0.2:0", jwks_body).await;
    let config = |db: &str, extra: &str| {
        head(db)
            + &providers(&[("up", mock.base())])
            + &format!(
                "guardrails:\n  policies:\n    - {{ name: hook, mode: enforce, direction: input, \
                 applies_to: {{ models: [m-up] }}, webhook: {{ url: \"http://{hook}/check\", timeout: 2s }} }}\n\
                 auth:\n  oidc:\n    - issuer: {issuer}\n      audiences: [tollgate]\n      discovery: false\n\
                 \x20     jwks_url: http://{jwks}/jwks\n      unknown_kid_refresh: 1s\n\
                 policy:\n  rules:\n    - {{ name: all, principals: [alice, jwt-user], models: [\"*\"], tools: [\"*\"] }}\n\
                 mcp:\n  servers:\n    - {{ name: crm, transport: streamable_http, url: \"http://{mcp}/mcp\", timeout: 2s }}\n\
                 egress:\n  allow:\n    - {{ host: 127.0.0.1, ports: [{port}] }}\n{extra}",
                issuer = common::jwt::ISSUER,
                port = mock.addr.port(),
            )
    };
    let gw = start_gateway_with(|db| config(db, "")).await;
    let token = common::jwt::sign(jsonwebtoken::Algorithm::RS256, json!({"sub": "jwt-user"}));
    let jwt_status = || async {
        client()
            .get(gw.url("/v1/models"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let initialize = || async {
        client()
            .post(gw.url("/mcp/crm"))
            .bearer_auth(KEY)
            .header("accept", "application/json, text/event-stream")
            .json(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}}}),
            )
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };

    // The webhook is refused: the enforce-mode guardrail fails the call.
    assert_eq!(chat(&gw, "m-up").await.0, 503);
    // The one member's session cannot be opened: the call fails (the
    // refusal itself is in the log; `initialize` reports the server down).
    let answer = initialize().await;
    assert!(answer.contains("\"error\""), "{answer}");
    assert_eq!(jwt_status().await, 401);
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (what, calls) in [
        ("webhook", &hook_calls),
        ("mcp", &mcp_calls),
        ("jwks", &jwks_calls),
    ] {
        assert_eq!(calls.load(Ordering::SeqCst), 0, "{what} was reached");
    }

    let db = gw.db_url.clone();
    std::fs::write(
        &gw.config_path,
        config(&db, "    - { cidr: 127.0.0.2/32 }\n"),
    )
    .unwrap();
    gw.running().reload().unwrap();
    // Past the unknown-kid refresh's cooldown.
    skip_clock(Duration::from_secs(2)).await;

    assert_eq!(chat(&gw, "m-up").await.0, 200);
    assert_eq!(hook_calls.load(Ordering::SeqCst), 1);
    // Reached now (it answers `{}`, which is not an MCP answer).
    initialize().await;
    assert!(mcp_calls.load(Ordering::SeqCst) >= 1);
    assert_eq!(jwt_status().await, 200);
    assert!(jwks_calls.load(Ordering::SeqCst) >= 1);
}

/// The name answers 127.0.0.2 (listed) to its first query and 127.0.0.1
/// (not listed) to every later one, and a listener waits on 127.0.0.1 at
/// the same port. A check that looked the name up apart from the connect
/// would pass on the first answer and connect on the second; here each
/// connection resolves once and connects to what was checked.
#[tokio::test]
async fn dns_rebinding_cannot_move_a_checked_connection() {
    let (upstream, loopback, loopback_calls) = loop {
        let upstream = start_mock_at("127.0.0.2:0", opts()).await;
        let port = upstream.addr.port();
        if tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .is_ok()
        {
            let (addr, calls) = counted(&format!("127.0.0.1:{port}"), "{}".into()).await;
            break (upstream, addr, calls);
        }
    };
    let dns = Dns::start(|name, nth| match (name, nth) {
        ("rebind.test", 0 | 1) => Some(vec!["127.0.0.2".parse().unwrap()]),
        ("rebind.test", _) => Some(vec!["127.0.0.1".parse().unwrap()]),
        _ => None,
    })
    .await;
    let port = loopback.port();
    // Two providers, two connection pools: each call opens a connection.
    let gw = start_gateway_with(|db| {
        head(db)
            + &providers(&[
                ("first", format!("http://rebind.test:{port}/v1")),
                ("second", format!("http://rebind.test:{port}/v1")),
            ])
            + &format!(
                "egress:\n  nameservers: [\"{}\"]\n  allow:\n    - {{ host: rebind.test }}\n    - {{ cidr: 127.0.0.2/32 }}\n",
                dns.addr
            )
    })
    .await;

    assert_eq!(chat(&gw, "m-first").await.0, 200);
    assert_eq!(upstream.received().await.len(), 1);
    assert_eq!(dns.count("rebind.test"), 1, "one lookup per connection");

    let (status, body) = chat(&gw, "m-second").await;
    assert_denied("m-second", status, &body);
    assert_eq!(dns.count("rebind.test"), 2);
    assert_eq!(
        loopback_calls.load(Ordering::SeqCst),
        0,
        "the rebound address was reached"
    );
    assert_eq!(upstream.received().await.len(), 1);
}
