//! Rows in a model-serving request: the unit route limits and the ledger
//! count. `payload: auto` recognises the payloads of the common serving
//! stacks; the body is only read, never changed.
//!
//! | payload | rows |
//! | --- | --- |
//! | Databricks / MLflow `dataframe_split` | `data.len()` |
//! | `dataframe_records` | `len()` |
//! | `instances` (MLflow, TF Serving, Vertex) | `len()` |
//! | KServe v2 `inputs` (`[{name, shape, datatype, data}]`) | the largest `shape[0]` |
//! | MLflow `inputs` as a list | `len()`; as columns (`{col: [..]}`) the longest column |
//! | Azure ML `input_data` (`{columns, index, data}` or a list) | `data.len()` / `len()` |
//! | any other JSON, or a body that is not JSON | 1 |
//! | no body | 0 |

use serde_json::Value;

/// The rows of a request body under `payload: auto`.
pub(super) fn rows(body: &[u8]) -> u64 {
    if body.iter().all(u8::is_ascii_whitespace) {
        return 0;
    }
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return 1;
    };
    let len = |v: &Value| v.as_array().map(|a| a.len() as u64);
    let counted = if let Some(v) = map.get("dataframe_split") {
        v.get("data").and_then(len)
    } else if let Some(v) = map.get("dataframe_records") {
        len(v)
    } else if let Some(v) = map.get("instances") {
        len(v)
    } else if let Some(v) = map.get("inputs") {
        inputs(v)
    } else if let Some(v) = map.get("input_data") {
        v.get("data").and_then(len).or_else(|| len(v))
    } else {
        None
    };
    counted.unwrap_or(1)
}

/// `inputs`: KServe v2 tensors, an MLflow list, or MLflow columns.
fn inputs(v: &Value) -> Option<u64> {
    match v {
        Value::Array(items) => {
            let tensors: Vec<u64> = items
                .iter()
                .filter(|t| t.get("datatype").is_some())
                .filter_map(|t| t.get("shape")?.get(0)?.as_u64())
                .collect();
            match tensors.iter().max() {
                Some(m) if tensors.len() == items.len() => Some(*m),
                _ => Some(items.len() as u64),
            }
        }
        Value::Object(cols) => cols
            .values()
            .filter_map(|c| c.as_array().map(|a| a.len() as u64))
            .max(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::rows;

    #[test]
    fn serving_payloads_count_their_rows() {
        let r = |s: &str| rows(s.as_bytes());
        assert_eq!(
            r(r#"{"dataframe_split":{"columns":["a"],"data":[[1],[2],[3]]}}"#),
            3
        );
        assert_eq!(r(r#"{"dataframe_records":[{"a":1},{"a":2}]}"#), 2);
        assert_eq!(r(r#"{"instances":[[1,2],[3,4],[5,6],[7,8]]}"#), 4);
        assert_eq!(
            r(
                r#"{"inputs":[{"name":"x","shape":[5,3],"datatype":"FP32","data":[0]},{"name":"y","shape":[5],"datatype":"INT64","data":[0]}]}"#
            ),
            5
        );
        assert_eq!(r(r#"{"inputs":[[1],[2]]}"#), 2);
        assert_eq!(r(r#"{"inputs":{"a":[1,2,3],"b":[1]}}"#), 3);
        assert_eq!(
            r(r#"{"input_data":{"columns":["a"],"index":[0,1],"data":[[1],[2]]}}"#),
            2
        );
        assert_eq!(r(r#"{"input_data":[[1],[2],[3]]}"#), 3);
        assert_eq!(r(r#"{"anything":1}"#), 1);
        assert_eq!(r("not json"), 1);
        assert_eq!(r("  "), 0);
    }
}
