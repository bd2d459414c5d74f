//! Text from an upstream HTTP exchange for error messages: a body read up
//! to a limit, a message cut to a length, an error with its sources. Used
//! by the providers' transport and the credentials' token endpoint client,
//! so neither imports the other for them.

use bytes::Bytes;

/// A response body from either upstream client: the providers' own
/// (`tollgate_net::UpstreamBody`) or reqwest's (`http::Response::from` a
/// `reqwest::Response`).
pub(crate) trait UpstreamBody:
    http_body::Body<Data = Bytes, Error: std::error::Error + Send + Sync + 'static> + Unpin + Send
{
}

impl<B> UpstreamBody for B where
    B: http_body::Body<Data = Bytes, Error: std::error::Error + Send + Sync + 'static>
        + Unpin
        + Send
{
}

/// The next data chunk of `body` (trailers skipped), `None` at its end.
pub(crate) async fn next_chunk<B: UpstreamBody>(body: &mut B) -> Result<Option<Bytes>, B::Error> {
    while let Some(frame) = http_body_util::BodyExt::frame(body).await {
        if let Ok(data) = frame?.into_data() {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

/// An upstream error body (or a token endpoint's answer), at most `limit`
/// bytes of it: the rest is not read.
pub(crate) async fn read_capped<B: UpstreamBody>(
    mut resp: http::Response<B>,
    limit: usize,
) -> Bytes {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = next_chunk(resp.body_mut()).await {
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

/// reqwest's top-level message plus its sources ("error sending request: connection refused"),
/// the URL reqwest quotes shown without its query (`url_without_secrets`).
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
    url_without_secrets(out)
}

/// `text` with each URL reqwest quotes (`… for url (URL)`) put through
/// `tollgate_config::shown_url`: a configured URL (a `token_url`, a base
/// URL) may carry a secret in its query, and this text is logged. reqwest
/// has already moved a URL's userinfo into a header; a URL has no spaces.
fn url_without_secrets(text: String) -> String {
    const AT: &str = "for url (";
    if !text.contains(AT) {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find(AT) {
        let start = i + AT.len();
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let word = after.find(char::is_whitespace).unwrap_or(after.len());
        let end = after[..word].rfind(')').unwrap_or(word);
        out.push_str(&tollgate_config::shown_url(&after[..end]));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Failed(&'static str, Option<Box<Failed>>);

    impl std::fmt::Display for Failed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Failed {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1
                .as_deref()
                .map(|e| e as &(dyn std::error::Error + 'static))
        }
    }

    #[test]
    fn a_quoted_url_loses_its_query() {
        let e = Failed(
            "error sending request for url (https://idp.example/oauth2/token?code=QrySigSeed&x=(1))",
            Some(Box::new(Failed("tcp connect error: Connection refused", None))),
        );
        assert_eq!(
            error_chain(&e),
            "error sending request for url (https://idp.example/oauth2/token?[redacted]): \
             tcp connect error: Connection refused"
        );
        let plain = Failed("error decoding response body", None);
        assert_eq!(error_chain(&plain), "error decoding response body");
        assert_eq!(
            url_without_secrets("a for url (http://h/p) b for url (http://g/?k=v)".into()),
            "a for url (http://h/p) b for url (http://g/?[redacted])"
        );
    }
}
