//! The `tollgate` binary: parses the command line and calls the library.

mod cli;
mod connections;
mod jobs;
mod mcp;

use std::process::ExitCode;

/// mimalloc instead of the system allocator: the request path allocates per
/// request and the ledger and audit writers free those records on other
/// threads, which glibc's malloc serves slowly (`malloc_consolidate` and
/// arena locks were a tenth of the gateway's CPU under load, bench/history/LEDGER.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main()
}
