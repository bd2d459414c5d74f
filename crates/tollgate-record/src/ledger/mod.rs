//! The usage ledger: one `UsageRecord` per request, handed to a bounded
//! queue on the request path (never awaited: a full queue drops the record
//! and counts it) and written in batches by one background task. A slow or
//! failing store never slows or fails a request.

mod retention;
pub mod spool;
mod writer;

pub use crate::limits_column as limits;
pub use crate::limits_column::LimitsColumn;
pub use crate::usage_record::UsageRecord;
pub use retention::run_retention;
pub use writer::{Ledger, LedgerHandle};
