//! The recorders' threads (the SQLite ledger writer, the audit writer) run
//! below the request path's priority. On a core shared with the request
//! path, a batch write of a few hundred rows takes milliseconds of CPU; at
//! equal priority the scheduler lets it run on for up to its wake-up
//! granularity before a newly arrived request is served, which showed as
//! the added p99 latency at a steady 1,000 requests/s. At nice +10 a
//! waking request thread preempts the writer at once, and under saturation
//! the writer still gets its share (about a tenth of a contended core), so
//! recording keeps up.

/// How much lower than the process: nice +10.
const NICE: i32 = 10;

/// Lowers the calling thread's CPU priority (Linux: `setpriority` on the
/// thread id sets that thread's nice value only). A refusal is logged and
/// otherwise ignored: the thread then runs at the process's priority.
pub(crate) fn lower_this_thread() {
    let tid = rustix::thread::gettid();
    let current = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
    if let Err(e) = rustix::process::setpriority_process(Some(tid), current.saturating_add(NICE)) {
        tracing::debug!(error = %e, "recorder thread keeps the process's priority");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lowers_only_the_calling_thread() {
        let main = rustix::process::getpriority_process(Some(rustix::thread::gettid()));
        let lowered = std::thread::spawn(|| {
            super::lower_this_thread();
            rustix::process::getpriority_process(Some(rustix::thread::gettid()))
        })
        .join();
        let (Ok(main), Ok(Ok(lowered))) = (main, lowered) else {
            panic!("getpriority failed");
        };
        assert_eq!(lowered, (main + super::NICE).min(19));
        assert_eq!(
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).ok(),
            Some(main)
        );
    }
}
