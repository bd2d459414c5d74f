//! File descriptors: the gateway raises its soft open-file limit at start,
//! and when the process runs out anyway, a failed accept or upstream connect
//! is reported as such and counted, and service resumes once descriptors
//! are free again. One test in its own binary: it changes the process's
//! limit and fills its descriptor table.
#![cfg(target_os = "linux")]
// `disallowed_methods`: tests read the gateway's own answers whole
// (`reqwest::Response::json` and friends are banned in product code).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

#[path = "it/common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use rlimit::Resource;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[tokio::test]
async fn open_file_limit_is_raised_and_exhaustion_is_survived() {
    let (_, hard) = rlimit::getrlimit(Resource::NOFILE).unwrap();
    let low = 512.min(hard);
    rlimit::setrlimit(Resource::NOFILE, low, hard).unwrap();

    // An upstream the gateway has not connected to yet.
    let upstream = raw_upstream(|mut s, _| async move {
        let body = r#"{"id":"x","object":"chat.completion","choices":[]}"#;
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(format!("{head}{body}").as_bytes()).await;
    })
    .await;
    let gw = start_gateway_with(|db| raw_config(db, upstream, "", "")).await;

    // Raised at start, read back in-process.
    let (soft, hard_now) = rlimit::getrlimit(Resource::NOFILE).unwrap();
    assert_eq!(hard_now, hard);
    assert!(
        soft == hard || (soft == 1 << 20 && hard > 1 << 20),
        "soft limit {soft} not raised to the hard limit {hard}"
    );

    // A caller connection, accepted and kept alive before the table fills.
    let (mut caller_r, mut caller_w) = TcpStream::connect(gw.addr).await.unwrap().into_split();
    let models =
        format!("GET /v1/models HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {KEY}\r\n\r\n");
    caller_w.write_all(models.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut caller_r).await.0, 200);

    // Fill the descriptor table: a small limit, then /dev/null until EMFILE.
    rlimit::setrlimit(Resource::NOFILE, open_fds() + 32, hard).unwrap();
    let mut hog = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => hog.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(24), "{e}");
                break;
            }
        }
        assert!(hog.len() < 1000, "no EMFILE");
    }

    // The gateway cannot open a socket to the upstream: 502, said plainly.
    let body = serde_json::to_string(&chat_body("chat-raw", "x")).unwrap();
    let chat = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    caller_w.write_all(chat.as_bytes()).await.unwrap();
    let (status, text) = read_response(&mut caller_r).await;
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("Too many open files"), "{text}");

    // A new caller: one descriptor freed for the caller's own socket, so the
    // kernel completes the handshake but the gateway's accept gets EMFILE.
    hog.pop();
    let late = TcpStream::connect(gw.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    drop(hog);
    rlimit::setrlimit(Resource::NOFILE, soft, hard).unwrap();

    // Accepted once descriptors are back, and served.
    let (mut late_r, mut late_w) = late.into_split();
    late_w.write_all(models.as_bytes()).await.unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(3), read_response(&mut late_r)).await;
    assert_eq!(
        answered.expect("the waiting caller was never served").0,
        200
    );

    let metrics = metrics_text(&gw).await;
    let count = |op: &str| -> f64 {
        let name = format!("tollgate_fd_exhausted_total{{op=\"{op}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    assert!(count("upstream_connect") >= 1.0, "{metrics}");
    assert!(count("accept") >= 2.0, "retried while exhausted: {metrics}");
}
