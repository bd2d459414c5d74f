//! Errors every layer may return without knowing the gateway's error type
//! (which lives above them and renders in the caller's API shape).

/// The caller's request is malformed; `param` names the field when one is
/// to blame. Becomes a 400 `invalid_request_error` at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidRequest {
    pub message: String,
    pub param: Option<&'static str>,
}

impl InvalidRequest {
    pub fn new(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self {
            message: message.into(),
            param,
        }
    }
}

/// The request body did not arrive in time (`server.timeouts.body_read`):
/// the edge's body wrapper yields it as the body's error, and whoever reads
/// the body finds it in the error's source chain and answers 408.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body was not received within {}ms", after.as_millis())]
pub struct BodyTimeout {
    pub after: std::time::Duration,
}

impl BodyTimeout {
    /// The `BodyTimeout` in `e` or anywhere in its source chain.
    pub fn find<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyTimeout> {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(t) = err.downcast_ref::<BodyTimeout>() {
                return Some(t);
            }
            cur = err.source();
        }
        None
    }
}

/// OS error codes for "too many open files": the process (`EMFILE`) or the
/// whole system (`ENFILE`) is out of file descriptors.
#[cfg(unix)]
const FD_EXHAUSTED: &[i32] = &[24, 23];
#[cfg(windows)]
const FD_EXHAUSTED: &[i32] = &[10024]; // WSAEMFILE
#[cfg(not(any(unix, windows)))]
const FD_EXHAUSTED: &[i32] = &[];

/// Whether `e`, or an error in its source chain, is the OS refusing a new
/// file descriptor (`EMFILE` / `ENFILE`, "Too many open files").
pub fn is_fd_exhausted(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(code) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            if FD_EXHAUSTED.contains(&code) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn recognises_fd_exhaustion_in_a_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("connect failed")]
        struct Connect(#[source] std::io::Error);

        let emfile = std::io::Error::from_raw_os_error(24);
        assert!(is_fd_exhausted(&emfile));
        assert!(is_fd_exhausted(&Connect(
            std::io::Error::from_raw_os_error(23)
        )));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!is_fd_exhausted(&Connect(refused)));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] BodyTimeout);

    #[test]
    fn finds_a_body_timeout_in_the_chain() {
        let t = BodyTimeout {
            after: std::time::Duration::from_millis(300),
        };
        assert_eq!(BodyTimeout::find(&Outer(t)), Some(&t));
        assert_eq!(
            t.to_string(),
            "the request body was not received within 300ms"
        );
        let other = InvalidRequest::new("x", None);
        assert_eq!(BodyTimeout::find(&other), None);
    }
}
