//! What a request presents as its credential, read before any check: the
//! `Authorization: Bearer` / `x-api-key` value, whether it has a JWT's
//! shape, and a JWT's header and claims decoded but NOT verified (to pick
//! the issuer and key and give precise reasons). These are the identity
//! code's parsers of outside bytes, kept here, with no crypto, so they can
//! be fuzzed on their own (`fuzz/fuzz_targets/bearer.rs`); the verification
//! and the claims mapping live in `tollgate-policy`'s `auth/jwt.rs`.

use base64::Engine;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Longest bearer token considered (IdP tokens with many groups can be large).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why no credential could be read from the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotPresented {
    /// Neither header, or an empty value.
    Missing,
    /// Not text, or an `Authorization` scheme other than `Bearer`.
    Malformed,
}

/// The key or token a request presents: `Authorization: Bearer` first,
/// then `x-api-key`, trimmed.
pub fn presented(headers: &HeaderMap) -> Result<&str, NotPresented> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION) {
        let v = v.to_str().map_err(|_| NotPresented::Malformed)?;
        let (scheme, rest) = v.split_once(' ').ok_or(NotPresented::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(NotPresented::Malformed);
        }
        return non_empty(rest.trim());
    }
    if let Some(v) = headers.get("x-api-key") {
        return non_empty(v.to_str().map_err(|_| NotPresented::Malformed)?.trim());
    }
    Err(NotPresented::Missing)
}

fn non_empty(key: &str) -> Result<&str, NotPresented> {
    if key.is_empty() {
        Err(NotPresented::Missing)
    } else {
        Ok(key)
    }
}

/// Whether a bearer value has the shape of a compact JWS: three dot-separated
/// base64url segments, the first two non-empty (the third is empty in
/// `alg: none` tokens, which must still be recognised to be refused).
pub fn looks_like_jwt(value: &str) -> bool {
    if value.len() > MAX_TOKEN_LEN || !value.starts_with("eyJ") {
        return false;
    }
    // Every bearer of an SSO deployment passes here, and RS256 tokens are
    // 600+ bytes: one table load per byte instead of a chain of range
    // compares (a third of the cost), the dots counted in a loop the
    // compiler vectorises.
    let bytes = value.as_bytes();
    if !bytes.iter().all(|&b| JWS_BYTE[usize::from(b)]) {
        return false;
    }
    if bytes.iter().filter(|&&b| b == b'.').count() != 2 {
        return false;
    }
    // Two dots, the first past "eyJ": the second segment must be non-empty.
    match value.split('.').nth(1) {
        Some(claims) => !claims.is_empty(),
        None => false,
    }
}

/// The bytes of a compact JWS: the base64url alphabet and the dot.
const JWS_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.';
        i += 1;
    }
    table
};

#[derive(Debug, Deserialize)]
struct RawHeader {
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// A token's header and claims, decoded but NOT verified: used only to pick
/// the issuer and key and to give precise reasons.
#[derive(Debug)]
pub struct Peeked {
    pub alg: String,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
    /// The header lists critical extensions (`crit`), which are refused.
    pub crit: bool,
}

impl Peeked {
    pub fn iss(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }
}

fn b64_json<T: serde::de::DeserializeOwned>(
    seg: &str,
    what: &'static str,
) -> Result<T, &'static str> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(seg)
        .map_err(|_| what)?;
    serde_json::from_slice(&bytes).map_err(|_| what)
}

/// Decodes header and claims without verifying anything; `Err` says what
/// is malformed (never quoting the token).
pub fn peek(token: &str) -> Result<Peeked, &'static str> {
    if token.len() > MAX_TOKEN_LEN {
        return Err("token too long");
    }
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(_sig), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err("expected three dot-separated segments");
    };
    let header: RawHeader = b64_json(h, "header is not base64url JSON")?;
    let claims: Map<String, Value> = b64_json(p, "payload is not a base64url JSON object")?;
    Ok(Peeked {
        alg: header.alg.unwrap_or_default(),
        kid: header.kid,
        claims,
        crit: header.crit.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The segment-by-segment definition the table-driven check replaced.
    fn by_segments(value: &str) -> bool {
        if value.len() > MAX_TOKEN_LEN || !value.starts_with("eyJ") {
            return false;
        }
        let segs: Vec<&str> = value.split('.').collect();
        segs.len() == 3
            && !segs[0].is_empty()
            && !segs[1].is_empty()
            && segs.iter().all(|s| {
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    }

    #[test]
    fn table_check_agrees_with_the_segment_definition() {
        // Segments of mostly base64url bytes, now and then an empty one, a
        // byte outside the alphabet, or one segment too few or too many.
        let alphabet = b"abcXYZ019-_";
        let odd = b"=+/ .\x7f";
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) as usize % n
        };
        let mut agreed = 0;
        for _ in 0..20_000 {
            let segments = 2 + next(3);
            let mut s = String::from("eyJ");
            for seg in 0..segments {
                if seg > 0 {
                    s.push('.');
                }
                for _ in 0..next(6) {
                    let set: &[u8] = if next(40) == 0 { odd } else { alphabet };
                    s.push(char::from(set[next(set.len())]));
                }
            }
            assert_eq!(looks_like_jwt(&s), by_segments(&s), "{s:?}");
            agreed += usize::from(by_segments(&s));
        }
        for s in [
            "eyJa.b.c",
            "eyJa.b.",
            "eyJa..c",
            "eyJ.b.c",
            "eyJa.b.c.d",
            "eyJ",
            "eyJa.b",
        ] {
            assert_eq!(looks_like_jwt(s), by_segments(s), "{s:?}");
        }
        assert!(
            agreed > 100,
            "the generator made too few JWT-shaped strings: {agreed}"
        );
    }
}
