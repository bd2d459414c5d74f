//! Accepted connections, for both listeners. The gateway runs its own accept
//! loop over hyper-util's HTTP/1.1 + h2c connection builder (what
//! `axum::serve` runs inside) so that it can do what `axum::serve` does not
//! expose:
//!
//! - every accepted socket sets TCP_NODELAY (SSE chunks are small writes;
//!   Nagle's algorithm would hold each behind the caller's delayed ACK);
//! - `server.timeouts` (docs/configuration.md): a watchdog per connection
//!   closes it when a request's headers take longer than `header_read`
//!   (counted from the request's first byte; on a new connection, from the
//!   accept), or when it sits with no request in flight for `idle`; and a
//!   request body must arrive whole within `body_read` of its headers, else
//!   reading it fails with `BodyTimeout`, which the pipeline answers 408;
//! - overload control on the data plane: at most
//!   `server.max_concurrent_requests` requests in flight (a permit taken
//!   without waiting and held by the response body, so a stream holds it
//!   until it ends); past it a request is answered 503 with `Retry-After`
//!   at once, before routing (`api::overloaded`). The admin listener is
//!   never shed;
//! - hyper's own empty answers to a malformed HTTP/1 request head (400,
//!   414, 431) are replaced by one in the caller's error shape
//!   (`head_error.rs`).
//!
//! Graceful shutdown is `axum::serve`'s: on the stop signal the listener is
//! closed and every connection is asked to finish what is in flight
//! (HTTP/1 closes when idle, HTTP/2 sends GOAWAY); `serve` returns when
//! all have closed. Dropping (aborting) `serve` drops every connection.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use super::head_error::{self, HeadBytes, Replacement};
use crate::config::ServerTimeouts;
use tollgate_core::error::BodyTimeout;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a listener enforces.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) timeouts: ServerTimeouts,
    /// `server.max_concurrent_requests` (the data plane); `None`: never
    /// shed (the admin listener).
    pub(super) max_in_flight: Option<usize>,
}

/// The data plane's request permits.
struct Shed {
    permits: Arc<Semaphore>,
    limit: usize,
}

/// Serves `router` on `listener` until `stop` turns true, then lets the
/// open connections finish and returns. `name` names the listener in logs
/// and metrics (`data`, `admin`).
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    name: &'static str,
    stop: watch::Receiver<bool>,
) {
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    let shed = limits.max_in_flight.map(|n| {
        let limit = n.min(Semaphore::MAX_PERMITS);
        Arc::new(Shed {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        })
    });
    let stopping = super::stopped(stop.clone());
    tokio::pin!(stopping);
    let mut conns = JoinSet::new();
    // Out of file descriptors since the last good accept (logged once).
    let mut exhausted = false;
    loop {
        tokio::select! {
            () = &mut stopping => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if exhausted {
                        exhausted = false;
                        tracing::info!(listener = name, "accepting again: file descriptors available");
                    }
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(listener = name, error = %e, "cannot set TCP_NODELAY");
                    }
                    let service = ConnService {
                        router: router.clone(),
                        watch: Arc::new(ConnWatch::new()),
                        body_read: limits.timeouts.body_read,
                        shed: shed.clone(),
                    };
                    conns.spawn(connection(
                        stream,
                        service,
                        limits.timeouts,
                        name,
                        stop.clone(),
                        builder.clone(),
                    ));
                }
                Err(e) => accept_error(&e, name, &mut exhausted).await,
            },
            // Reap finished connections so the set stays small.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

async fn accept_error(e: &io::Error, listener: &'static str, exhausted: &mut bool) {
    // The peer gave up before the accept: nothing to do.
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    if tollgate_core::error::is_fd_exhausted(e) {
        // The connection waits in the backlog; retry soon, log once.
        metrics::counter!("tollgate_fd_exhausted_total", "op" => "accept").increment(1);
        if !*exhausted {
            *exhausted = true;
            tracing::error!(
                listener,
                error = %e,
                "accept failed: too many open files (EMFILE/ENFILE); retrying every 100ms"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        return;
    }
    tracing::error!(listener, error = %e, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// One connection: served until it ends, is drained at shutdown, or its
/// watchdog fires (then it is dropped, which closes the socket).
async fn connection(
    stream: TcpStream,
    service: ConnService,
    timeouts: ServerTimeouts,
    listener: &'static str,
    stop: watch::Receiver<bool>,
    builder: Arc<auto::Builder<TokioExecutor>>,
) {
    let watch = service.watch.clone();
    let io = TokioIo::new(WatchedIo {
        inner: stream,
        watch: watch.clone(),
        sniffed: false,
        http2: false,
        head: HeadBytes::default(),
        replacing: None,
    });
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let stopping = super::stopped(stop);
    tokio::pin!(stopping);
    let mut draining = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::trace!(listener, error = %e, "connection ended with an error");
                }
                return;
            }
            () = &mut stopping, if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            reason = watch.expired(&timeouts) => {
                metrics::counter!("tollgate_connection_timeouts_total",
                    "listener" => listener, "reason" => reason)
                .increment(1);
                tracing::debug!(listener, reason, "closing a connection: timed out");
                return;
            }
        }
    }
}

/// What the watchdog knows about one connection.
struct ConnWatch {
    state: Mutex<ConnState>,
    /// Set while an HTTP/1 connection that has served a request has none in
    /// flight: the next byte read starts its header clock.
    arm_reads: AtomicBool,
    /// How many requests have started (the socket keeps each head's first
    /// bytes apart by it).
    started: AtomicU64,
    /// A request is in flight: bytes read are not a request head's.
    busy: AtomicBool,
}

struct ConnState {
    accepted: Instant,
    in_flight: usize,
    /// A request has started on this connection.
    served: bool,
    /// When the last request in flight finished.
    idle_since: Instant,
    /// The first byte of the next request's head, when it has arrived.
    head_started: Option<Instant>,
    http2: bool,
}

impl ConnWatch {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(ConnState {
                accepted: now,
                in_flight: 0,
                served: false,
                idle_since: now,
                head_started: None,
                http2: false,
            }),
            arm_reads: AtomicBool::new(false),
            started: AtomicU64::new(0),
            busy: AtomicBool::new(false),
        }
    }

    fn state(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the connection is to be closed, and why; `None` while a request
    /// is in flight.
    fn deadline(&self, t: &ServerTimeouts) -> Option<(Instant, &'static str)> {
        let s = self.state();
        if s.in_flight > 0 {
            None
        } else if !s.served {
            Some((s.accepted + t.header_read, "header_read"))
        } else if let Some(at) = s.head_started {
            Some((at + t.header_read, "header_read"))
        } else {
            Some((s.idle_since + t.idle, "idle"))
        }
    }

    /// Resolves with the reason once a deadline passes. Checked on a timer
    /// rather than woken by every request: a request starting or ending only
    /// updates the state under the lock, instead of waking the connection's
    /// task and re-arming its timer three times per kept-alive request
    /// (start, end, the next head). A deadline that moves earlier (a new
    /// head after an idle spell) is seen within half the shorter timeout.
    async fn expired(&self, t: &ServerTimeouts) -> &'static str {
        let period = (t.header_read.min(t.idle) / 2).max(Duration::from_millis(10));
        loop {
            let now = Instant::now();
            match self.deadline(t) {
                Some((at, reason)) if at <= now => return reason,
                Some((at, _)) => tokio::time::sleep_until(at.min(now + period)).await,
                None => tokio::time::sleep_until(now + period).await,
            }
        }
    }

    /// A request's headers are complete: no clock runs while it is in flight.
    fn request_started(self: &Arc<Self>) -> InFlight {
        {
            let mut s = self.state();
            s.in_flight += 1;
            s.served = true;
            s.head_started = None;
        }
        self.arm_reads.store(false, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        self.busy.store(true, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn request_finished(&self) {
        {
            let mut s = self.state();
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight == 0 {
                s.idle_since = Instant::now();
                s.head_started = None;
                self.busy.store(false, Ordering::Relaxed);
                if !s.http2 {
                    self.arm_reads.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// Bytes arrived while the connection was idle: a request head begins.
    fn head_begins(&self) {
        {
            let mut s = self.state();
            if s.in_flight > 0 || s.head_started.is_some() || s.http2 {
                return;
            }
            s.head_started = Some(Instant::now());
        }
        self.arm_reads.store(false, Ordering::Relaxed);
    }

    fn set_http2(&self) {
        self.state().http2 = true;
    }
}

/// Marks a request in flight until its response body is done (or dropped).
struct InFlight(Arc<ConnWatch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// The socket, telling the watchdog when bytes arrive on an idle
/// connection (and whether it speaks HTTP/2, which has no header clock);
/// on HTTP/1 it keeps the start of each request head and writes our answer
/// in place of hyper's automatic one to a malformed head.
struct WatchedIo {
    inner: TcpStream,
    watch: Arc<ConnWatch>,
    sniffed: bool,
    http2: bool,
    head: HeadBytes,
    /// Our answer to a malformed head, being written; hyper closes the
    /// connection after its own, so whatever it writes later is dropped.
    replacing: Option<Replacement>,
}

impl WatchedIo {
    /// Writes our answer instead of `buf` if `buf` is hyper's automatic
    /// answer (or one is being written): `None` when `buf` is to be written
    /// as it is.
    fn poll_replace(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Option<Poll<io::Result<()>>> {
        if self.replacing.is_none() {
            if self.http2 {
                return None;
            }
            let started = self.watch.started.load(Ordering::Relaxed);
            self.replacing = Some(Replacement::of(buf, self.head.current(started))?);
        }
        let replacing = self.replacing.as_mut()?;
        Some(replacing.poll_drive(&mut self.inner, cx))
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read = &buf.filled()[before..];
        if !read.is_empty() {
            if !this.sniffed {
                this.sniffed = true;
                // The HTTP/2 connection preface (h2c prior knowledge).
                let n = read.len().min(4);
                if read[..n] == b"PRI "[..n] {
                    this.http2 = true;
                    this.watch.set_http2();
                }
            }
            if this.watch.arm_reads.load(Ordering::Relaxed) {
                this.watch.head_begins();
            }
            if !this.http2 && !this.watch.busy.load(Ordering::Relaxed) {
                let started = this.watch.started.load(Ordering::Relaxed);
                this.head.record(read, started);
            }
        }
        polled
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(replaced) = this.poll_replace(cx, buf) {
            return replaced.map_ok(|()| buf.len());
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut bufs = bufs;
        if !this.http2 {
            // hyper's answer is a head of its own: what is queued before it
            // (a pipelined response) goes out first, as it is.
            let at = bufs.iter().position(|b| head_error::is_automatic(b));
            let before = at.map_or(0, |i| bufs[..i].iter().map(|b| b.len()).sum());
            match at {
                Some(i) if before > 0 => bufs = &bufs[..i],
                _ if at.is_some() || this.replacing.is_some() => {
                    let from = at.unwrap_or(0);
                    let first = bufs.get(from).map_or(&[][..], |b| &b[..]);
                    if let Some(replaced) = this.poll_replace(cx, first) {
                        let total = bufs.iter().map(|b| b.len()).sum();
                        return replaced.map_ok(|()| total);
                    }
                }
                _ => {}
            }
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(r) = this.replacing.as_mut() {
            ready!(r.poll_drive(&mut this.inner, cx))?;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(r) = this.replacing.as_mut() {
            ready!(r.poll_drive(&mut this.inner, cx))?;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// The hyper service of one connection: the router, with the request body
/// under its deadline and the response body holding the request's place
/// (in flight on the connection, a data-plane permit) until it ends.
#[derive(Clone)]
struct ConnService {
    router: Router,
    watch: Arc<ConnWatch>,
    body_read: Duration,
    shed: Option<Arc<Shed>>,
}

/// What a request holds until its response body has ended or is dropped.
struct Held {
    _in_flight: InFlight,
    _permit: Option<OwnedSemaphorePermit>,
}

type ConnFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ConnFuture;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let in_flight = self.watch.request_started();
        let permit = match &self.shed {
            None => None,
            Some(shed) => match shed.permits.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    metrics::counter!("tollgate_requests_shed_total").increment(1);
                    let resp = crate::api::overloaded(req.headers(), req.uri().path(), shed.limit);
                    let held = Held {
                        _in_flight: in_flight,
                        _permit: None,
                    };
                    return Box::pin(std::future::ready(Ok(track(resp, held))));
                }
            },
        };
        let held = Held {
            _in_flight: in_flight,
            _permit: permit,
        };
        let deadline = Instant::now() + self.body_read;
        let after = self.body_read;
        let req = req.map(|inner| {
            Body::new(DeadlineBody {
                inner,
                deadline,
                after,
                sleep: None,
            })
        });
        let router = self.router.clone();
        Box::pin(async move {
            let resp = router.oneshot(req).await?;
            Ok(track(resp, held))
        })
    }
}

fn track(resp: Response<Body>, held: Held) -> Response<Body> {
    resp.map(|inner| {
        Body::new(TrackedBody {
            inner,
            held: Some(held),
        })
    })
}

/// A request body that must end by `deadline` (`server.timeouts.body_read`
/// after the headers); past it, the next read fails with `BodyTimeout`.
struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    after: Duration,
    /// Made on the first wait only: a body that is already here costs no timer.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BoxError::from)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout { after: this.after })))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body; the request keeps its place until it has ended.
struct TrackedBody {
    inner: Body,
    held: Option<Held>,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.held = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
