//! One cached answer: the response body in its non-streaming form (a
//! streamed answer is assembled into one, see `fill.rs`) and what it cost.
//! Encoded for Redis as one JSON line of metadata, `\n`, then the body.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    pub provider: String,
    pub upstream_model: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// What the upstream call cost; every hit saves it again.
    pub cost: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub meta: Meta,
    /// The JSON response body as the caller saw it (after output guardrails).
    pub body: Bytes,
}

impl Entry {
    /// Bytes it holds, for the memory bound.
    pub fn weight(&self) -> u32 {
        let n = self.body.len() + self.meta.provider.len() + self.meta.upstream_model.len() + 96;
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    pub fn encode(&self) -> Vec<u8> {
        // serde_json writes no raw newline, so the first `\n` ends the meta.
        let mut out = serde_json::to_vec(&self.meta).unwrap_or_default();
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let split = bytes.iter().position(|b| *b == b'\n')?;
        let meta = serde_json::from_slice(&bytes[..split]).ok()?;
        Some(Self {
            meta,
            body: Bytes::copy_from_slice(&bytes[split + 1..]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let e = Entry {
            meta: Meta {
                provider: "p\nq".into(),
                upstream_model: "m".into(),
                prompt_tokens: 3,
                completion_tokens: 4,
                cost: 0.5,
            },
            body: Bytes::from_static(b"{\"a\":\"x\\ny\"}\n"),
        };
        assert_eq!(Entry::decode(&e.encode()), Some(e));
        assert_eq!(Entry::decode(b"no newline"), None);
    }
}
