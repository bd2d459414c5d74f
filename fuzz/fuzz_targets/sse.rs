//! The SSE splitter (`tollgate_core::sse`): upstream bytes in chunks of any
//! size. The first byte picks the chunk size; every event's data is read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::sse::SseSplitter;

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut s = SseSplitter::default();
    for chunk in rest.chunks(step) {
        for ev in s.push(chunk) {
            let _ = ev.data();
        }
    }
    let _ = s.pending();
    let _ = s.take_rest();
});
