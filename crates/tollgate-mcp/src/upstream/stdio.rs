//! An upstream MCP server that is a local command speaking JSON-RPC lines
//! on stdin/stdout. The gateway spawns it when the config is loaded, is its
//! one client (it initializes it once and multiplexes every client session's
//! requests over it, ids rewritten so answers find their caller), and
//! supervises it: when it exits, requests in flight fail at once and it is
//! started again after a back-off (1 s doubling to 30 s, reset after a
//! minute of good health). It is killed when a reload drops it.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::{FramedRead, LinesCodec};
use tollgate_config::McpServerConfig;

use super::waiters::LinkEnd;
use super::waiters::{Backoff, Waiters};
use super::UpstreamError;
use crate::relay::Relay;
use crate::wire::{Notices, Outgoing, UpstreamReply, UPSTREAM_PROTOCOL_VERSION};

pub(crate) struct StdioUpstream {
    name: String,
    timeout: Duration,
    /// The running process's stdin writer; `None` while (re)starting.
    writer: watch::Receiver<Option<mpsc::Sender<String>>>,
    waiters: Arc<Waiters>,
    /// Dropping this stops the supervisor (and kills the process).
    _stop: oneshot::Sender<()>,
}

impl StdioUpstream {
    pub(crate) fn spawn(cfg: &McpServerConfig, max_bytes: usize, notices: Notices) -> Self {
        let (writer_tx, writer) = watch::channel(None);
        let (stop, stopped) = oneshot::channel();
        let waiters = Arc::new(Waiters::new(notices));
        let sup = Supervisor {
            cfg: cfg.clone(),
            max_bytes,
            writer: writer_tx,
            waiters: waiters.clone(),
        };
        // Outside a runtime (`tollgate validate`) nothing is started: the
        // server stays down and requests to it fail fast.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(sup.run(stopped));
        }
        Self {
            name: cfg.name.clone(),
            timeout: cfg.timeout,
            writer,
            waiters,
            _stop: stop,
        }
    }

    /// Sends a request and waits for its answer, or a notification.
    pub(crate) async fn exchange(
        &self,
        method: &str,
        params: Option<&serde_json::Value>,
        is_request: bool,
        relay: Option<&Relay>,
    ) -> Result<Option<UpstreamReply>, UpstreamError> {
        let work = async {
            let writer = self.wait_running().await?;
            let down = || self.down();
            self.waiters
                .exchange(
                    &self.name,
                    method,
                    params,
                    is_request,
                    relay,
                    |line| async move { writer.send(line).await.map_err(|_| down()) },
                )
                .await
        };
        super::within(&self.name, self.timeout, work).await
    }

    async fn wait_running(&self) -> Result<mpsc::Sender<String>, UpstreamError> {
        let mut rx = self.writer.clone();
        let w = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| self.down())?;
        w.clone().ok_or_else(|| self.down())
    }

    fn down(&self) -> UpstreamError {
        UpstreamError::Down {
            server: self.name.clone(),
        }
    }
}

struct Supervisor {
    cfg: McpServerConfig,
    max_bytes: usize,
    writer: watch::Sender<Option<mpsc::Sender<String>>>,
    waiters: Arc<Waiters>,
}

impl Supervisor {
    async fn run(self, mut stopped: oneshot::Receiver<()>) {
        let mut backoff = Backoff::default();
        loop {
            let started = tokio::time::Instant::now();
            tokio::select! {
                _ = &mut stopped => return,
                outcome = self.run_once() => match outcome {
                    Ok(status) => tracing::warn!(server = %self.cfg.name, %status,
                        "mcp stdio server exited; restarting"),
                    Err(e) => tracing::warn!(server = %self.cfg.name, error = %e,
                        "mcp stdio server failed; restarting"),
                },
            }
            self.writer.send_replace(None);
            // Requests in flight fail now rather than at their timeout.
            self.waiters.fail_all();
            if !backoff.pause(&self.cfg.name, started, &mut stopped).await {
                return;
            }
        }
    }

    /// One life of the process: spawn, initialize, serve until it exits.
    async fn run_once(&self) -> Result<std::process::ExitStatus, LinkEnd> {
        let mut child = self.command().spawn().map_err(LinkEnd::Start)?;
        let stdin = child.stdin.take().ok_or(LinkEnd::NoPipe("stdin"))?;
        let stdout = child.stdout.take().ok_or(LinkEnd::NoPipe("stdout"))?;
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(log_stderr(self.cfg.name.clone(), self.secrets(), stderr));
        }
        let (line_tx, line_rx) = mpsc::channel::<String>(256);
        let writer = tokio::spawn(write_lines(stdin, line_rx));
        let mut lines = FramedRead::new(stdout, LinesCodec::new_with_max_length(self.max_bytes));
        self.handshake(&line_tx, &mut lines).await?;
        self.writer.send_replace(Some(line_tx.clone()));
        tracing::info!(server = %self.cfg.name, "mcp stdio server started");
        while let Some(line) = lines.next().await {
            match line {
                Ok(line) => self.dispatch(&line, &line_tx).await,
                Err(e) => {
                    tracing::warn!(server = %self.cfg.name, error = %e, "mcp stdio server sent a bad line");
                    break;
                }
            }
        }
        writer.abort();
        finish(child).await
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(self.cfg.command.as_deref().unwrap_or_default());
        cmd.args(&self.cfg.args)
            .envs(&self.cfg.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = &self.cfg.cwd {
            cmd.current_dir(dir);
        }
        cmd
    }

    /// `initialize` then `notifications/initialized`, before any client's
    /// request reaches the process.
    async fn handshake(
        &self,
        tx: &mpsc::Sender<String>,
        lines: &mut FramedRead<tokio::process::ChildStdout, LinesCodec>,
    ) -> Result<(), LinkEnd> {
        let id = self.waiters.next_id();
        let params = super::initialize_params();
        let text = |id: Option<u64>, method: &str, params: Option<&serde_json::Value>| {
            serde_json::to_string(&Outgoing {
                jsonrpc: "2.0",
                id,
                method,
                params,
            })
        };
        tx.send(text(Some(id), "initialize", Some(&params))?)
            .await
            .map_err(|_| LinkEnd::Closed)?;
        let wait = async {
            while let Some(line) = lines.next().await {
                let line = line?;
                if let Ok(r) = serde_json::from_str::<UpstreamReply>(&line) {
                    if r.id.as_ref().and_then(serde_json::Value::as_u64) == Some(id) {
                        return match r.error {
                            Some(e) => Err(LinkEnd::Refused(e.message)),
                            None => Ok(()),
                        };
                    }
                }
            }
            Err(LinkEnd::Closed)
        };
        tokio::time::timeout(self.cfg.timeout, wait)
            .await
            .map_err(|_| LinkEnd::NoAnswer)??;
        tx.send(text(None, "notifications/initialized", None)?)
            .await
            .map_err(|_| LinkEnd::Closed)?;
        tracing::debug!(server = %self.cfg.name, protocol = UPSTREAM_PROTOCOL_VERSION, "mcp stdio server initialized");
        Ok(())
    }

    /// What the process was configured with that may be a secret (its
    /// environment's values and its arguments, 8 bytes or longer): never
    /// repeated in a log line.
    fn secrets(&self) -> Vec<String> {
        self.cfg
            .env
            .values()
            .chain(self.cfg.args.iter())
            .filter(|v| v.len() >= 8)
            .cloned()
            .collect()
    }

    /// One line from the process: an answer goes to its waiter; what the
    /// server starts itself is sorted by `Waiters::on_server_message` (relayed,
    /// announced, answered or dropped), and a reply it needs is written
    /// back when ready, without holding up the lines after it.
    async fn dispatch(&self, line: &str, tx: &mpsc::Sender<String>) {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            tracing::debug!(server = %self.cfg.name, "mcp stdio server sent a non-JSON-RPC line");
            return;
        };
        if msg.get("method").is_none() {
            if let Ok(reply) = serde_json::from_value::<UpstreamReply>(msg) {
                self.waiters.resolve(reply);
            }
            return;
        }
        if let Some(reply) = self.waiters.on_server_message(msg) {
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(reply.await).await;
            });
        }
    }
}

async fn write_lines(mut stdin: ChildStdin, mut rx: mpsc::Receiver<String>) {
    while let Some(mut line) = rx.recv().await {
        line.push('\n');
        if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
            return;
        }
    }
}

/// The process's stderr, line by line, at debug level (a server's own
/// diagnostics; it may print what it was configured with, so not higher).
async fn log_stderr(name: String, secrets: Vec<String>, stderr: tokio::process::ChildStderr) {
    let mut lines = FramedRead::new(stderr, LinesCodec::new_with_max_length(8 * 1024));
    while let Some(Ok(mut line)) = lines.next().await {
        for s in &secrets {
            if line.contains(s.as_str()) {
                line = line.replace(s.as_str(), "[redacted]");
            }
        }
        tracing::debug!(server = %name, line = %line, "mcp stdio server stderr");
    }
}

async fn finish(mut child: Child) -> Result<std::process::ExitStatus, LinkEnd> {
    let _ = child.start_kill();
    child.wait().await.map_err(LinkEnd::Wait)
}
