//! Counters shared by every gateway node, in Redis. A request's admission
//! is checked by a Lua script that reads every counter it charges and adds
//! to all of them only if no enforced cap would be crossed, so racing
//! nodes can never admit more than the cap together. Admissions go through
//! one task per store: a request's admission is sent at once while fewer
//! than `ADMIT_IN_FLIGHT` calls are out (pipelined on the connection);
//! those that queue meanwhile go together in the next call, which checks
//! and reserves them one after the other, each against what the ones
//! before it left (`admit_batch.rs`), so a batch is as exact as the same
//! calls one by one. Settlement is one script of `INCRBYFLOAT`
//! corrections, sent off the request path by the settlement task:
//! corrections that queue while a settlement is in flight, or in the short
//! pause after it, are merged per counter and go in the next one (Redis
//! applies one increment per counter instead of one per request). A
//! delayed correction keeps a reservation a little longer, or adds a
//! request's excess over its estimate a little later: either stays within
//! the bound of docs/limits.md. The connection manager reconnects on its
//! own after Redis returns.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;
use tollgate_core::error::BuildError;

use futures_util::stream::{FuturesUnordered, StreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, oneshot};

use super::admit_batch::Encoded;
use super::redis_args::{evalsha, Num};
pub(super) use super::redis_args::{Item, RedisFailure};
use tollgate_config::RedisConfig;

/// Settlement: every correction of a batch in one script, so Redis sends one
/// reply instead of two per counter (redis-rs's reply parser was the largest
/// cost of a Redis-limited request, bench/history/LIMITS.md).
const SETTLE: &str = r#"
-- KEYS: counters. ARGV: per key, 2 values: delta, ttl_ms.
for i = 1, #KEYS do
  redis.call('INCRBYFLOAT', KEYS[i], ARGV[2 * i - 1])
  redis.call('PEXPIRE', KEYS[i], ARGV[2 * i])
end
return #KEYS
"#;

/// Counters per settlement script: a long script blocks Redis for every
/// other client meanwhile, so a large merged batch goes in several.
const SETTLE_CHUNK: usize = 256;

pub struct RedisStore {
    pub config: RedisConfig,
    conn: ConnectionManager,
    /// The admission task's queue, started on first use (inside the runtime).
    admitter: OnceLock<mpsc::Sender<Pending>>,
    /// The settlement task's queue, likewise.
    settler: OnceLock<mpsc::Sender<Vec<Correction>>>,
}

/// One request's admission: what it charges, and where the answer goes.
struct Pending {
    items: Vec<Item>,
    answer: oneshot::Sender<Admission>,
}

/// `Ok((0, used))` when admitted, `Ok((i, used))` when item `i` (1-based)
/// would cross its cap; `used`: each counter before this request.
pub(super) type Admission = Result<(usize, Vec<f64>), RedisFailure>;

/// Admissions waiting for the admission task; past it a request gets a
/// store error (and its rule's `on_store_error`).
const ADMIT_QUEUE: usize = 65_536;
/// Requests per admission script call: the script blocks Redis for every
/// other client while it runs, so a long queue goes in several calls.
const ADMIT_BATCH: usize = 128;
/// Admission script calls in flight at once: a request arriving while one
/// call is out goes in the next at once instead of waiting a round trip
/// for it (the p99 latency at moderate load); under saturation the calls
/// fill up and requests share them.
const ADMIT_IN_FLIGHT: usize = 4;

/// A settlement correction: (counter key, delta, ttl in ms).
pub(super) type Correction = (String, f64, i64);

/// Settlements waiting for the settlement task; past it they are dropped
/// and counted as store errors.
const SETTLE_QUEUE: usize = 65_536;
/// The pause after each settlement call, while corrections queue and merge
/// per counter into the next: under load one call carries many requests'
/// corrections (Redis applies one increment per counter instead of one per
/// request); when idle a correction still goes at once. A correction held
/// back keeps a reservation (or an in-flight slot) this much longer, or
/// adds an excess over the estimate this much later (docs/limits.md: the
/// bound does not depend on when).
const SETTLE_GAP: Duration = Duration::from_millis(2);

impl RedisStore {
    /// Connects lazily: the first request opens the connection, and a
    /// Redis that is down at start is only a store error until it returns.
    pub fn new(config: &RedisConfig) -> Result<Self, BuildError> {
        // Nagle's algorithm (redis-rs leaves it on) holds small pipelined
        // writes back for up to a delayed-ACK timeout: tens of ms per call.
        let info = redis::IntoConnectionInfo::into_connection_info(config.url.as_str())
            .map_err(|e| format!("limits.redis.url: {e}"))?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info).map_err(|e| format!("limits.redis.url: {e}"))?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, cfg)
            .map_err(|e| format!("limits.redis: {e}"))?;
        Ok(Self {
            config: config.clone(),
            conn,
            admitter: OnceLock::new(),
            settler: OnceLock::new(),
        })
    }

    /// The shared connection, for commands off the request path.
    pub(super) fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// `prefix:counter:window`, built without `format!` (ten per limited
    /// request in Redis mode).
    pub fn key(&self, counter: &str, window: i64) -> String {
        let mut num = itoa::Buffer::new();
        let window = num.format(window);
        let prefix = &self.config.prefix;
        let mut k = String::with_capacity(prefix.len() + counter.len() + window.len() + 2);
        k.push_str(prefix);
        k.push(':');
        k.push_str(counter);
        k.push(':');
        k.push_str(window);
        k
    }

    /// Checks and reserves all items at once (one request), through the
    /// admission task; waits at most the configured timeout.
    pub async fn admit(&self, items: Vec<Item>) -> Admission {
        let Some(tx) = self.task(&self.admitter, ADMIT_QUEUE, |rx| {
            admit_loop(self.conn.clone(), self.config.timeout, rx)
        }) else {
            return Err(RedisFailure::Stopped);
        };
        let (answer, rx) = oneshot::channel();
        tx.try_send(Pending { items, answer })
            .map_err(|_| RedisFailure::Busy)?;
        match tokio::time::timeout(self.config.timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(RedisFailure::Stopped),
            Err(_) => Err(RedisFailure::Timeout(self.config.timeout)),
        }
    }

    /// Hands one request's corrections to the settlement task; never waits.
    pub fn settle_later(&self, items: Vec<Correction>) {
        let Some(tx) = self.task(&self.settler, SETTLE_QUEUE, |rx| {
            settle_loop(self.conn.clone(), self.config.timeout, rx)
        }) else {
            return;
        };
        if tx.try_send(items).is_err() {
            metrics::counter!("tollgate_limit_store_errors_total", "op" => "settle").increment(1);
            tracing::warn!("LIMIT STORE BEHIND: settlement queue full, correction lost");
        }
    }

    /// A background task's queue: the task is spawned on first use, on the
    /// caller's runtime (None outside one).
    fn task<'s, T, F>(
        &self,
        cell: &'s OnceLock<mpsc::Sender<T>>,
        capacity: usize,
        run: impl FnOnce(mpsc::Receiver<T>) -> F,
    ) -> Option<&'s mpsc::Sender<T>>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        if let Some(tx) = cell.get() {
            return Some(tx);
        }
        let rt = tokio::runtime::Handle::try_current().ok()?;
        Some(cell.get_or_init(|| {
            let (tx, rx) = mpsc::channel(capacity);
            rt.spawn(run(rx));
            tx
        }))
    }
}

/// Sends queued admissions, up to `ADMIT_BATCH` per script call and up to
/// `ADMIT_IN_FLIGHT` calls at a time (pipelined on the one connection;
/// Redis runs them in the order sent, each against what the ones before
/// left, so several in flight are as exact as one). A request whose caller
/// stopped waiting (timed out) is left out, so it reserves nothing.
async fn admit_loop(conn: ConnectionManager, timeout: Duration, mut rx: mpsc::Receiver<Pending>) {
    let script = redis::Script::new(super::admit_batch::SCRIPT);
    let mut in_flight = FuturesUnordered::new();
    let mut queued = Vec::with_capacity(ADMIT_BATCH);
    let mut open = true;
    loop {
        tokio::select! {
            n = rx.recv_many(&mut queued, ADMIT_BATCH), if open && in_flight.len() < ADMIT_IN_FLIGHT => {
                if n == 0 {
                    open = false;
                    continue;
                }
                let mut batch = std::mem::replace(&mut queued, Vec::with_capacity(ADMIT_BATCH));
                batch.retain(|p| !p.answer.is_closed());
                if !batch.is_empty() {
                    in_flight.push(admit_and_answer(conn.clone(), &script, timeout, batch));
                }
            }
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            else => break,
        }
    }
}

/// One batch's script call, and each request's answer.
async fn admit_and_answer(
    mut conn: ConnectionManager,
    script: &redis::Script,
    timeout: Duration,
    batch: Vec<Pending>,
) {
    batch_histogram().record(batch.len() as f64);
    let requests: Vec<&[Item]> = batch.iter().map(|p| p.items.as_slice()).collect();
    let encoded = Encoded::new(&requests);
    let cmd = encoded.command(script, &requests);
    let reply = tokio::time::timeout(timeout, run_script::<String>(&mut conn, script, &cmd))
        .await
        .map_err(|_| RedisFailure::Timeout(timeout))
        .and_then(|r| r.map_err(RedisFailure::from))
        .and_then(|reply| encoded.answers(&reply, &requests));
    match reply {
        Ok(answers) => {
            for (p, a) in batch.into_iter().zip(answers) {
                let _ = p.answer.send(Ok(a));
            }
        }
        Err(e) => {
            let e = e.to_string();
            for p in batch {
                let _ = p.answer.send(Err(RedisFailure::Batch(e.clone())));
            }
        }
    }
}

/// Requests per admission script call (how many share a round trip).
fn batch_histogram() -> &'static metrics::Histogram {
    static H: OnceLock<metrics::Histogram> = OnceLock::new();
    H.get_or_init(|| metrics::histogram!("tollgate_limit_store_admit_batch"))
}

/// Runs an `evalsha` command; when Redis does not have the script yet
/// (first call, or after a restart or `SCRIPT FLUSH`) loads it and retries
/// once, as `ScriptInvocation` does.
async fn run_script<T: redis::FromRedisValue>(
    conn: &mut ConnectionManager,
    script: &redis::Script,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    match cmd.query_async(conn).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            script.load_async(conn).await?;
            cmd.query_async(conn).await
        }
        r => r,
    }
}

/// Sends queued corrections, merged per counter, one settlement at a time.
async fn settle_loop(
    conn: ConnectionManager,
    timeout: Duration,
    mut rx: mpsc::Receiver<Vec<Correction>>,
) {
    let script = redis::Script::new(SETTLE);
    let mut queued = Vec::new();
    // foldhash: every correction's key is hashed here (SipHash showed in profiles).
    let mut merged: HashMap<String, (f64, i64), foldhash::fast::RandomState> = HashMap::default();
    while rx.recv_many(&mut queued, 4096).await > 0 {
        for (key, delta, ttl) in queued.drain(..).flatten() {
            let e = merged.entry(key).or_insert((0.0, ttl));
            e.0 += delta;
            e.1 = e.1.max(ttl);
        }
        let items: Vec<Correction> = merged
            .drain()
            .filter(|(_, (d, _))| *d != 0.0)
            .map(|(k, (d, t))| (k, d, t))
            .collect();
        if let Err(e) = settle(conn.clone(), &script, timeout, &items).await {
            metrics::counter!("tollgate_limit_store_errors_total", "op" => "settle").increment(1);
            tracing::warn!(error = %e, counters = items.len(), "LIMIT STORE DOWN: settlement lost");
        }
        tokio::time::sleep(SETTLE_GAP).await;
    }
}

/// Applies corrections `(key, delta, ttl_ms)`: one script call (one round
/// trip) per `SETTLE_CHUNK` counters. The corrections are independent, so
/// a failed chunk does not undo the others.
async fn settle(
    mut conn: ConnectionManager,
    script: &redis::Script,
    timeout: Duration,
    items: &[Correction],
) -> Result<(), RedisFailure> {
    for chunk in items.chunks(SETTLE_CHUNK) {
        let mut cmd = evalsha(script, chunk.len());
        for (key, _, _) in chunk {
            cmd.arg(key);
        }
        for (_, delta, ttl) in chunk {
            cmd.arg(Num(*delta)).arg(*ttl);
        }
        tokio::time::timeout(timeout, run_script::<i64>(&mut conn, script, &cmd))
            .await
            .map_err(|_| RedisFailure::Timeout(timeout))??;
    }
    Ok(())
}
