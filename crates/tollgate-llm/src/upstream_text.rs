//! Text from an upstream HTTP exchange for error messages: a body read up
//! to a limit, a message cut to a length, an error with its sources. Used
//! by the providers' transport and the credentials' token endpoint client,
//! so neither imports the other for them.

use bytes::Bytes;

/// An upstream error body (or a token endpoint's answer), at most `limit`
/// bytes of it: the rest is not read.
pub(crate) async fn read_capped(mut resp: reqwest::Response, limit: usize) -> Bytes {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = limit.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= limit {
            break;
        }
    }
    Bytes::from(buf)
}

/// `s` cut to at most `max` bytes (on a character boundary), marked `…`.
pub(crate) fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// reqwest's top-level message plus its sources ("error sending request: connection refused").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    // reqwest includes the URL; keep it (no credentials live in URLs here).
    out
}
