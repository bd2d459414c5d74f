//! Config loading (`tollgate_config::parse_str`): YAML text → `${ENV}`
//! interpolation → the typed config → validation, as `tollgate serve`,
//! `validate` and every reload run it on an operator's file. Built without
//! the `redis` feature (the redis client is too large to build instrumented
//! in CI's time), so `cache.redis_url` is not put through redis's URL
//! parser here; everything else is the gateway's own code path. A config
//! that loads is also formatted with `Debug`, the form a log line takes.
#![no_main]

use std::sync::Once;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static ENV: Once = Once::new();
    ENV.call_once(|| {
        std::env::set_var("TG_FUZZ_KEY", "sk-fuzz-0123456789");
        std::env::set_var("TG_FUZZ_EMPTY", "");
        std::env::set_var("TG_FUZZ_URL", "redis://:pw@127.0.0.1:6379/0");
    });
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match tollgate_config::parse_str(text) {
        Ok(cfg) => {
            let _ = format!("{cfg:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
