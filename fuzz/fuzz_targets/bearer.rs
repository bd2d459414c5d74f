//! What the identity code reads from a request before any signature check
//! (`tollgate_core::bearer`): the `Authorization: Bearer` / `x-api-key`
//! value, the JWT shape test and the unverified header and claims decoding.
//! The first byte picks the way in: bit 0 the header (`Authorization` or
//! `x-api-key`); bit 1 set, the rest is `header JSON \0 claims JSON \0
//! signature`, base64url-encoded into a compact token, so the JSON decoders
//! see arbitrary JSON rather than mostly broken base64. Checks that a token
//! decodes only with three segments and that the shape test agrees with the
//! decoder about segment counts and length.
#![no_main]

use base64::Engine;
use http::{header::AUTHORIZATION, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tollgate_core::bearer::{looks_like_jwt, peek, presented, MAX_TOKEN_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 2 != 0 {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = rest
            .splitn(3, |&b| b == 0)
            .map(|part| b64.encode(part))
            .collect::<Vec<_>>()
            .join(".");
        check(&token);
        return;
    }
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(rest) {
        if mode & 1 == 0 {
            headers.insert(AUTHORIZATION, v);
        } else {
            headers.insert("x-api-key", v);
        }
    }
    if let Ok(key) = presented(&headers) {
        assert!(!key.is_empty() && key.trim() == key);
        check(key);
    }
    if let Ok(s) = std::str::from_utf8(rest) {
        check(s);
    }
});

fn check(token: &str) {
    let shaped = looks_like_jwt(token);
    if shaped {
        assert!(token.len() <= MAX_TOKEN_LEN && token.split('.').count() == 3);
    }
    if let Ok(p) = peek(token) {
        assert!(token.len() <= MAX_TOKEN_LEN && token.split('.').count() == 3);
        let _ = (p.iss(), p.alg.len(), p.kid.as_deref(), p.crit);
    }
}
