//! The guardrail scanners over model text: every built-in detector, a deny
//! list and a custom regex in one pass, masking, and the stream scanner fed
//! the same text in chunks (its size from the first byte). Checks what must
//! hold whatever the text: findings are in bounds and in order, a
//! pass-through scanner emits exactly its input, and for text that fits in
//! the window the stream masks exactly what one pass masks (text released
//! early must be final: no later text could have changed its findings).
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use tollgate_guardrails::{
    Builtin, CustomDetector, DenyList, DetectorSet, DetectorSpec, Masker, StreamScanner,
};

fn sets() -> &'static [Arc<DetectorSet>; 2] {
    static SETS: OnceLock<[Arc<DetectorSet>; 2]> = OnceLock::new();
    SETS.get_or_init(|| {
        let builtins = DetectorSpec {
            builtins: Builtin::ALL.to_vec(),
            deny_lists: vec![DenyList {
                name: "d".into(),
                terms: vec!["nerve agent".into(), "straße".into(), "bomb".into()],
                whole_word: true,
            }],
            ..DetectorSpec::default()
        };
        let custom = DetectorSpec {
            custom: vec![CustomDetector {
                name: "ticket".into(),
                pattern: r"\bTCK-\d{6}\b".into(),
            }],
            ..builtins.clone()
        };
        [builtins, custom].map(|s| match DetectorSet::new(&s) {
            Ok(d) => Arc::new(d),
            Err(e) => panic!("detector set: {e}"),
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    // Model text arrives in chunks of a few words; a longer input only
    // slows the search down (every push rescans the held text).
    if rest.len() > 2048 {
        return;
    }
    let text = String::from_utf8_lossy(rest);
    let step = usize::from(step % 64).max(1);
    for set in sets() {
        let found = set.scan(&text);
        let mut end = 0;
        for f in &found {
            assert!(f.start >= end && f.start < f.end && f.end <= text.len());
            assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
            end = f.end;
        }
        let _ = set.hold_from(&text, 0);
        let once = Masker::default().mask(&text, &found);

        let mut pieces = Vec::new();
        let mut at = 0;
        while at < text.len() {
            let mut next = (at + step).min(text.len());
            while !text.is_char_boundary(next) {
                next += 1;
            }
            pieces.push(&text[at..next]);
            at = next;
        }
        let mut pass = StreamScanner::passthrough(set.clone(), 64);
        let mut masked = StreamScanner::new(set.clone(), 64, true);
        let (mut passed, mut out) = (String::new(), String::new());
        for p in &pieces {
            passed.push_str(&pass.push(p).emit);
            out.push_str(&masked.push(p).emit);
            assert!(masked.held() <= 64);
        }
        passed.push_str(&pass.finish().emit);
        out.push_str(&masked.finish().emit);
        assert_eq!(passed, text);
        if text.len() <= 64 {
            assert_eq!(out, once, "pieces {pieces:?}");
        }
    }
});
