//! The request's end, run exactly once from one place: settle the limits,
//! then metrics, the log line, the usage record, the audit entry and the end
//! of the trace (`after::finish`). A `Finish` guard owns the request's
//! context from the start; whatever way the request ends, the guard runs
//! the end once:
//!
//! - explicitly, with the outcome filled in ([`Finish::end`]), for full
//!   answers and errors, and for streams when they end or fail;
//! - on drop, when the request ends without saying how: the caller went
//!   away while the gateway was still working (the handler's future is
//!   dropped: 499 `client_closed`) or a panic unwinds through it (500
//!   `internal`).
//!
//! A stream takes the context over from the handler's guard into its own
//! ([`Finish::hand_over`]), so the end runs when the stream does.

use std::sync::Arc;

use crate::state::AppState;

use super::after;
use super::context::RequestCtx;

pub(super) struct Finish {
    app: Arc<AppState>,
    ctx: Option<RequestCtx>,
}

impl Finish {
    pub(super) fn new(app: Arc<AppState>, ctx: RequestCtx) -> Self {
        Self {
            app,
            ctx: Some(ctx),
        }
    }

    /// The context while the request runs (`None` once ended or handed over).
    pub(super) fn ctx(&mut self) -> Option<&mut RequestCtx> {
        self.ctx.as_mut()
    }

    /// Ends the request: `outcome` records how it ended, then the end runs.
    /// Later calls (and the drop) do nothing.
    pub(super) fn end(&mut self, outcome: impl FnOnce(&AppState, &mut RequestCtx)) {
        if let Some(mut ctx) = self.ctx.take() {
            outcome(&self.app, &mut ctx);
            after::finish(&self.app, ctx);
        }
    }

    /// Drops the context without recording anything (an MCP notification:
    /// acknowledged, not a request).
    /// Ends the request as refused or failed by `err`: its status and
    /// label on the record, the denial and the detail logged with the
    /// request id (the caller's answer is rendered by the edge).
    pub(super) fn fail(&mut self, err: &crate::error::GatewayError) {
        self.end(|_, ctx| {
            ctx.status = err.status();
            ctx.error = err.label();
            crate::error::log_denial(err, &ctx.request_id);
            crate::error::log_detail(err, &ctx.request_id);
        });
    }

    pub(super) fn forget(&mut self) {
        self.ctx = None;
    }

    /// Gives the context to a new guard (the stream's); this one is spent.
    pub(super) fn hand_over(&mut self) -> Option<Finish> {
        self.ctx
            .take()
            .map(|ctx| Finish::new(self.app.clone(), ctx))
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        self.end(|_, ctx| {
            if panicking {
                ctx.status = 500;
                ctx.error = "internal";
            } else {
                ctx.status = 499;
                ctx.error = "client_closed";
            }
        });
    }
}
