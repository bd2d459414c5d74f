//! The stored form of an API key: `sha256:<64 hex>` of the key. Shared by
//! config validation (keys listed in the file) and the key index.

pub type KeyHash = [u8; 32];

/// Parses `sha256:<64 hex>`.
pub fn parse_hash(text: &str) -> Option<KeyHash> {
    let hex_part = text.strip_prefix("sha256:")?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).ok()?;
    Some(out)
}

/// `sha256:<64 hex>`.
pub fn format_hash(hash: &KeyHash) -> String {
    format!("sha256:{}", hex::encode(hash))
}
