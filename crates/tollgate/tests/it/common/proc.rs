//! The gateway as a real process (`target/debug/tollgate serve`, built by
//! `cargo build` first, or `TOLLGATE_BIN`), for what an in-process gateway
//! cannot show: several nodes, and a `kill -9`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::{client, poll_until};

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn gateway_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TOLLGATE_BIN") {
        return p.into();
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/tollgate");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build` first (scripts/test.sh does)",
        p.display()
    );
    p
}

pub(crate) struct Proc {
    child: Child,
    pub(crate) addr: String,
    pub(crate) admin: String,
}

impl Proc {
    /// SIGKILL: no graceful shutdown, no ledger drain.
    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn spawn_gateway(config: String, dir: &std::path::Path, n: usize) -> Proc {
    let (port, admin) = (free_port(), free_port());
    let config = config
        .replacen(
            "listen: 127.0.0.1:0",
            &format!("listen: 127.0.0.1:{port}"),
            1,
        )
        .replacen(
            "admin_listen: 127.0.0.1:0",
            &format!("admin_listen: 127.0.0.1:{admin}"),
            1,
        );
    let path = dir.join(format!("gw{n}.yaml"));
    std::fs::write(&path, config).unwrap();
    let child = Command::new(gateway_bin())
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proc = Proc {
        child,
        addr: format!("127.0.0.1:{port}"),
        admin: format!("127.0.0.1:{admin}"),
    };
    let url = format!("http://127.0.0.1:{admin}/readyz");
    let ready = poll_until(
        async || {
            client()
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        },
        |ready| *ready,
    )
    .await;
    assert!(ready, "gateway {n} did not become ready");
    proc
}
