//! Test harness: a real mock upstream and a real gateway, each on port 0,
//! configured through a real YAML file in a temp dir.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tollgate::server::Running;
use tollgate::store::Store;

pub(crate) mod echo;
pub(crate) mod jwt;
pub(crate) mod pg;
pub(crate) mod proc;
pub(crate) mod redis_server;

pub(crate) const KEY: &str = "tg-test-key-full";
pub(crate) const KEY_LIMITED: &str = "tg-test-key-limited";
pub(crate) const UPSTREAM_KEY: &str = "upstream-secret-value";

pub(crate) fn hash(key: &str) -> String {
    tollgate::auth::format_hash(&tollgate::auth::hash_key(key))
}

pub(crate) struct Mock {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Mock {
    pub(crate) fn base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// What the upstream received, oldest first.
    pub(crate) async fn received(&self) -> Vec<Value> {
        let v: Value = reqwest::get(format!("http://{}/_mock/requests", self.addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array().cloned().unwrap_or_default()
    }
}

pub(crate) async fn start_mock(require_key: Option<&str>) -> Mock {
    start_mock_with(tollgate::mock::server::MockOptions {
        require_key: require_key.map(str::to_owned),
        ..Default::default()
    })
    .await
}

/// Moves Tokio's clock on by `d` instead of sleeping through it. The
/// in-process gateway and mock run on this test's runtime, so their
/// windows, cooldowns, token lifetimes and refresh timers see the jump; the
/// clock runs on in real time afterwards, so sockets and timeouts behave.
pub(crate) async fn skip_clock(d: Duration) {
    tokio::time::pause();
    tokio::time::advance(d).await;
    tokio::time::resume();
}

pub(crate) async fn start_mock_with(opts: tollgate::mock::server::MockOptions) -> Mock {
    start_mock_at("127.0.0.1:0", opts).await
}

/// The mock upstream on `addr` (another loopback address, a chosen port).
pub(crate) async fn start_mock_at(addr: &str, opts: tollgate::mock::server::MockOptions) -> Mock {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(tollgate::mock::server::serve(listener, opts, async {
        let _ = rx.await;
    }));
    Mock { addr, _stop: tx }
}

/// The `server`, `storage` and `ledger` sections of a test config (no file
/// watch, fast ledger flush).
pub(crate) fn config_head(db: &str) -> String {
    format!(
        "server:\n  listen: 127.0.0.1:0\n  admin_listen: 127.0.0.1:0\n  watch_config: false\n\
         storage:\n  url: {db}\nledger:\n  flush_interval: 20ms\n"
    )
}

/// An address nothing listens on.
pub(crate) async fn dead_addr() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// The standard test config: providers `local` (in-process mock), `up`
/// (the mock upstream, credential checked), `dead` (connection refused),
/// `slow` (short timeouts); keys KEY (broad) and KEY_LIMITED.
pub(crate) fn standard_config(mock: &Mock, dead: SocketAddr, db: &str) -> String {
    format!(
        r#"
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  max_body_bytes: 65536
  shutdown_grace: 5s
storage:
  url: {db}
  key_refresh: 100ms
ledger:
  flush_interval: 20ms
providers:
  - name: local
    kind: mock
  - name: up
    kind: openai
    base_url: {base}
    api_key: {UPSTREAM_KEY}
    forward_headers: ["x-mock-*"]
  - name: up-h2
    kind: openai
    base_url: {base}
    api_key: {UPSTREAM_KEY}
    http_version: http2
  - name: dead
    kind: openai
    base_url: http://{dead}/v1
  - name: slow
    kind: openai
    base_url: {base}
    api_key: {UPSTREAM_KEY}
    forward_headers: ["x-mock-*"]
    timeouts: {{ connect: 1s, first_byte: 300ms, total: 700ms }}
models:
  - name: chat-local
    provider: local
    price: {{ input_per_mtok: 1.0, output_per_mtok: 2.0 }}
  - name: chat-up
    provider: up
    upstream_model: mock-chat
    price: {{ input_per_mtok: 10.0, output_per_mtok: 20.0 }}
  - name: embed-up
    provider: up
    upstream_model: mock-embed
    endpoints: [embeddings]
  - name: chat-h2
    provider: up-h2
    upstream_model: mock-chat
  - name: chat-dead
    provider: dead
  - name: chat-slow
    provider: slow
    upstream_model: mock-chat
  - name: secret-model
    provider: local
keys:
  - id: full
    hash: {full}
    principal: alice
    groups: [eng]
    models: ["chat-*", "embed-*"]
  - id: limited
    hash: {limited}
    principal: bob
    kind: service
    models: ["chat-local"]
"#,
        base = mock.base(),
        full = hash(KEY),
        limited = hash(KEY_LIMITED),
    )
}

pub(crate) struct Gateway {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub config_path: PathBuf,
    pub db_url: String,
    pub dir: tempfile::TempDir,
}

impl Gateway {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub(crate) fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// Graceful shutdown (flushes the ledger), then the store for assertions.
    pub(crate) async fn stop(&mut self) -> Store {
        if let Some(r) = self.running.take() {
            r.shutdown();
            tokio::time::timeout(Duration::from_secs(15), r.wait())
                .await
                .expect("shutdown within 15s")
                .expect("clean shutdown");
        }
        Store::open(&self.db_url).await.unwrap()
    }

    pub(crate) fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }
}

pub(crate) async fn start_gateway_with(make: impl FnOnce(&str) -> String) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("t.db").display());
    let config_path = dir.path().join("tollgate.yaml");
    std::fs::write(&config_path, make(&db_url)).unwrap();
    let running = tollgate::server::start(&config_path).await.unwrap();
    Gateway {
        addr: running.addr,
        admin: running.admin_addr,
        running: Some(running),
        config_path,
        db_url,
        dir,
    }
}

pub(crate) async fn start_standard(mock: &Mock) -> Gateway {
    let dead = dead_addr().await;
    start_gateway_with(|db| standard_config(mock, dead, db)).await
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub(crate) fn chat_body(model: &str, content: &str) -> Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": content}]})
}

pub(crate) async fn post(
    gw: &Gateway,
    path: &str,
    key: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut req = client().post(gw.url(path)).json(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap()
}

/// Splits an SSE body into its `data:` payloads.
pub(crate) fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|ev| ev.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// How long [`poll_until`] waits for an asynchronous effect (a ledger
/// flush, a reload, a key refresh, a health probe, a process start) before
/// it gives up: generous, because the test machine may be saturated; a
/// passing test waits only as long as the effect takes.
pub(crate) const SETTLE: Duration = Duration::from_secs(30);

/// Polls `probe` every 20 ms until `done` holds for its value or
/// [`SETTLE`] (real time) has passed, and returns the last value: the
/// caller asserts on it, so a timeout fails with the caller's message.
pub(crate) async fn poll_until<T>(probe: impl AsyncFnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    poll_within(SETTLE, probe, done).await
}

/// [`poll_until`] with its own bound, for a wait whose end may never come
/// and is then not a failure.
pub(crate) async fn poll_within<T>(
    within: Duration,
    mut probe: impl AsyncFnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    // Real time, not Tokio's: a paused or skipped clock must not cut the
    // wait for a real process or socket short.
    let deadline = std::time::Instant::now() + within;
    loop {
        let value = probe().await;
        if done(&value) || std::time::Instant::now() >= deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the store has at least `n` usage records, at most 5 s: some
/// callers ask for more than can arrive (a refused request may not be
/// recorded) and assert on what there is.
pub(crate) async fn wait_records(store: &Store, n: usize) -> Vec<tollgate::ledger::UsageRecord> {
    poll_within(
        Duration::from_secs(5),
        async || store.usage_since(0).await.unwrap(),
        |recs| recs.len() >= n,
    )
    .await
}

/// A streamed chat on `chat-up` paced by the mock: `tokens` at `per_sec`.
pub(crate) async fn paced_stream(
    gw: &Gateway,
    content: &str,
    per_sec: u32,
    tokens: u32,
) -> reqwest::Response {
    let mut body = chat_body("chat-up", content);
    body["stream"] = serde_json::json!(true);
    client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-mock-tokens-per-sec", per_sec.to_string())
        .header("x-mock-tokens", tokens.to_string())
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The status of a one-message chat on `model` with `key`.
pub(crate) async fn chat_status(gw: &Gateway, key: &str, model: &str) -> u16 {
    post(
        gw,
        "/v1/chat/completions",
        Some(key),
        &chat_body(model, "x"),
    )
    .await
    .status()
    .as_u16()
}

/// The admin listener's Prometheus text.
pub(crate) async fn metrics_text(gw: &Gateway) -> String {
    client()
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Whether `name` shows in the admin listener's metrics within [`SETTLE`].
pub(crate) async fn metric_appears(gw: &Gateway, name: &str) -> bool {
    poll_until(async || metrics_text(gw).await.contains(name), |seen| *seen).await
}

/// `GET path` with `key`, as JSON.
pub(crate) async fn get_json(gw: &Gateway, path: &str, key: &str) -> Value {
    client()
        .get(gw.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A hand-written upstream on port 0: for every connection, the request
/// (head and `Content-Length` body) is read, then `answer` gets the socket
/// (TCP_NODELAY set) and the request's bytes, and writes what it likes.
pub(crate) async fn raw_upstream<F, Fut>(answer: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream, Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                stream.set_nodelay(true).unwrap();
                if let Some(request) = read_request(&mut stream).await {
                    answer(stream, request).await;
                }
            });
        }
    });
    addr
}

/// Reads one HTTP/1.1 request (head, then a `Content-Length` body); `None`
/// when the peer closes first.
pub(crate) async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf)
}

/// A config with one `openai` provider `raw` at `upstream` (model
/// `chat-raw`), key KEY; `server_extra` is appended to `server:` and
/// `provider_extra` to the provider (lines indented to fit).
pub(crate) fn raw_config(
    db: &str,
    upstream: SocketAddr,
    server_extra: &str,
    provider_extra: &str,
) -> String {
    format!(
        "server:\n  listen: 127.0.0.1:0\n  admin_listen: 127.0.0.1:0\n  watch_config: false\n\
         {server_extra}\
         storage:\n  url: {db}\nledger:\n  flush_interval: 20ms\n\
         providers:\n  - name: raw\n    kind: openai\n    base_url: http://{upstream}/v1\n\
         {provider_extra}\
         models:\n  - name: chat-raw\n    provider: raw\n\
         keys:\n  - id: full\n    hash: {full}\n    principal: alice\n    models: [\"*\"]\n",
        full = hash(KEY),
    )
}

/// Reads one response with a `Content-Length` body: (status, body).
pub(crate) async fn read_response(s: &mut (impl tokio::io::AsyncRead + Unpin)) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                let status = head[9..12].parse().unwrap();
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                return (status, body);
            }
        }
        let n = tokio::io::AsyncReadExt::read(s, &mut chunk).await.unwrap();
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}
