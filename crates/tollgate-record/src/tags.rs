//! A request's custom tags (`ledger.tags`): `name=value` pairs from a
//! request header and/or the string values of the body's `metadata`
//! object, bounded, recorded in the ledger's `tags` column as one small JSON
//! object (`{"env":"prod","team":"ml"}`, names sorted; empty text when the
//! request has none) and read back by the usage report (`group_by=tag:NAME`).
//!
//! Bounds keep the ledger row small: at most `MAX_TAGS` tags, names of at
//! most `MAX_NAME` bytes of `[A-Za-z0-9_.-]`, values of at most `MAX_VALUE`
//! bytes without control characters. A header that breaks them is refused
//! (400: the caller wrote it for the gateway); `metadata` entries that
//! break them are skipped (the object is also the upstream's).

use serde_json::{Map, Value};
use tollgate_core::error::InvalidRequest;
use tollgate_core::json_text;

/// Most tags one request records.
pub const MAX_TAGS: usize = 8;
/// Longest tag name, in bytes.
pub const MAX_NAME: usize = 32;
/// Longest tag value, in bytes.
pub const MAX_VALUE: usize = 64;

fn good_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_NAME
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn good_value(v: &str) -> bool {
    !v.is_empty() && v.len() <= MAX_VALUE && !v.chars().any(char::is_control)
}

/// The tags of one request, encoded for the ledger: `header` is the
/// configured header's value, `metadata` the body's `metadata` object when
/// `ledger.tags.metadata` is on. The header's pairs come first and win for
/// a name both give.
pub fn encode(
    header_name: &str,
    header: Option<&str>,
    metadata: Option<&Map<String, Value>>,
) -> Result<String, InvalidRequest> {
    let mut tags: Vec<(&str, &str)> = Vec::new();
    if let Some(h) = header {
        for pair in h.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .map(|(n, v)| (n.trim(), v.trim()))
                .filter(|(n, v)| good_name(n) && good_value(v))
                .ok_or_else(|| {
                    InvalidRequest::new(
                        format!(
                            "`{header_name}`: expected name=value pairs separated by commas \
                             (names of at most {MAX_NAME} letters, digits, `_.-`; values of \
                             at most {MAX_VALUE} bytes)"
                        ),
                        None,
                    )
                })?;
            if tags.iter().any(|(n, _)| *n == name) {
                continue;
            }
            if tags.len() == MAX_TAGS {
                return Err(InvalidRequest::new(
                    format!("`{header_name}`: at most {MAX_TAGS} tags"),
                    None,
                ));
            }
            tags.push((name, value));
        }
    }
    if let Some(m) = metadata {
        for (name, value) in m {
            if tags.len() == MAX_TAGS {
                break;
            }
            let Value::String(value) = value else {
                continue;
            };
            if good_name(name) && good_value(value) && !tags.iter().any(|(n, _)| n == name) {
                tags.push((name, value));
            }
        }
    }
    Ok(to_json(&mut tags))
}

/// `{"a":"1","b":"2"}`, names sorted; empty text for no tags.
fn to_json(tags: &mut [(&str, &str)]) -> String {
    if tags.is_empty() {
        return String::new();
    }
    tags.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = String::with_capacity(
        2 + tags
            .iter()
            .map(|(n, v)| n.len() + v.len() + 6)
            .sum::<usize>(),
    );
    out.push('{');
    for (i, (n, v)) in tags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_text::push_str(&mut out, n);
        out.push(':');
        json_text::push_str(&mut out, v);
    }
    out.push('}');
    out
}

/// The value of tag `name` in a stored `tags` column (`None`: not tagged).
pub fn get(stored: &str, name: &str) -> Option<String> {
    if stored.is_empty() {
        return None;
    }
    let map: Map<String, Value> = serde_json::from_str(stored).ok()?;
    match map.get(name) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// A stored `tags` column as a JSON object (`{}` for none).
pub fn to_value(stored: &str) -> Value {
    serde_json::from_str(stored).unwrap_or_else(|_| Value::Object(Map::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn header_and_metadata_merge_sorted_header_first() {
        let m = meta(r#"{"team":"other","app":"bot","n":3,"bad name":"x"}"#);
        let t = encode("x-tags", Some(" team=ml , env = prod,"), Some(&m)).unwrap();
        assert_eq!(t, r#"{"app":"bot","env":"prod","team":"ml"}"#);
        assert_eq!(get(&t, "team").as_deref(), Some("ml"));
        assert_eq!(get(&t, "zone"), None);
        assert_eq!(get("", "team"), None);
        let v: Value = serde_json::from_str(&t).unwrap();
        assert_eq!(to_value(&t), v);
        assert_eq!(encode("x-tags", None, None).unwrap(), "");
        // Escaped like any JSON string.
        let t = encode("x-tags", Some(r#"q=a"b\c"#), None).unwrap();
        assert_eq!(get(&t, "q").as_deref(), Some(r#"a"b\c"#));
    }

    #[test]
    fn bounds() {
        for bad in [
            "team",
            "=x",
            "team=",
            "t m=x",
            &format!("{}=x", "n".repeat(33)),
        ] {
            assert!(encode("x-tags", Some(bad), None).is_err(), "{bad}");
        }
        let v = "v".repeat(MAX_VALUE + 1);
        assert!(encode("x-tags", Some(&format!("a={v}")), None).is_err());
        let nine: Vec<String> = (0..9).map(|i| format!("t{i}=v")).collect();
        assert!(encode("x-tags", Some(&nine.join(",")), None).is_err());
        let m: Map<String, Value> = (0..20)
            .map(|i| (format!("k{i:02}"), Value::String("v".into())))
            .collect();
        let t = encode("x-tags", Some("a=1"), Some(&m)).unwrap();
        assert_eq!(to_value(&t).as_object().unwrap().len(), MAX_TAGS);
    }
}
