//! Human approval of high-risk tool calls: a call named by
//! `mcp.approval.tools` waits, before it is forwarded, until an operator
//! approves or denies it through the admin API, or `mcp.approval.timeout`
//! passes (then it is refused). Pending calls live in this process's
//! memory: the operator decides on the replica that holds the call (the
//! admin API lists only that replica's calls).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;

/// What an operator sees of a waiting call.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PendingCall {
    pub id: String,
    /// `server/tool`, as served.
    pub tool: String,
    pub principal: String,
    pub request_id: String,
    /// The arguments as the upstream would receive them (after guardrail masking).
    pub arguments: Value,
    pub created_ms: i64,
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approved,
    Denied,
}

#[derive(Default)]
pub struct Approvals {
    pending: Mutex<BTreeMap<String, (PendingCall, oneshot::Sender<Decision>)>>,
}

/// A call waiting for a decision; dropping it (the caller went away)
/// removes it from the list.
pub struct Waiting<'a> {
    book: &'a Approvals,
    pub id: String,
    rx: Option<oneshot::Receiver<Decision>>,
}

impl Approvals {
    pub fn request(&self, call: PendingCall) -> Waiting<'_> {
        let (tx, rx) = oneshot::channel();
        let id = call.id.clone();
        tracing::warn!(approval = %id, tool = %call.tool, principal = %call.principal,
            "mcp tool call waits for approval");
        metrics::counter!("tollgate_mcp_approvals_total", "outcome" => "requested").increment(1);
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id.clone(), (call, tx));
        }
        Waiting {
            book: self,
            id,
            rx: Some(rx),
        }
    }

    /// Decides a waiting call; `false` when no call has that id here.
    pub fn decide(&self, id: &str, decision: Decision) -> bool {
        let entry = self.pending.lock().ok().and_then(|mut p| p.remove(id));
        match entry {
            Some((_, tx)) => tx.send(decision).is_ok(),
            None => false,
        }
    }

    pub fn list(&self) -> Vec<PendingCall> {
        self.pending
            .lock()
            .map(|p| p.values().map(|(c, _)| c.clone()).collect())
            .unwrap_or_default()
    }
}

impl Waiting<'_> {
    /// Waits for the decision; `None` when `timeout` passed first.
    pub async fn decision(mut self, timeout: std::time::Duration) -> Option<Decision> {
        let rx = self.rx.take()?;
        let outcome = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(d)) => Some(d),
            Ok(Err(_)) => Some(Decision::Denied),
            Err(_) => None,
        };
        let label = match outcome {
            Some(Decision::Approved) => "approved",
            Some(Decision::Denied) => "denied",
            None => "timed_out",
        };
        metrics::counter!("tollgate_mcp_approvals_total", "outcome" => label).increment(1);
        outcome
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Ok(mut p) = self.book.pending.lock() {
            p.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &str) -> PendingCall {
        PendingCall {
            id: id.into(),
            tool: "wh/drop_table".into(),
            principal: "bob".into(),
            request_id: "r1".into(),
            arguments: serde_json::json!({"name": "users"}),
            created_ms: 1,
        }
    }

    #[tokio::test]
    async fn a_call_waits_for_the_operator() {
        let book = Approvals::default();
        let w = book.request(call("a"));
        assert_eq!(book.list(), vec![call("a")]);
        assert!(book.decide("a", Decision::Approved));
        assert_eq!(
            w.decision(std::time::Duration::from_secs(5)).await,
            Some(Decision::Approved)
        );
        assert!(book.list().is_empty());
        assert!(!book.decide("a", Decision::Denied), "decided once");
    }

    #[tokio::test(start_paused = true)]
    async fn an_undecided_call_times_out_and_leaves_the_list() {
        let book = Approvals::default();
        let w = book.request(call("b"));
        assert_eq!(w.decision(std::time::Duration::from_secs(60)).await, None);
        assert!(book.list().is_empty());
        drop(book.request(call("c")));
        assert!(
            book.list().is_empty(),
            "a caller that went away is not listed"
        );
    }
}
