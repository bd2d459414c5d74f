//! Detection and masking over every string value of a JSON document (object
//! keys are not scanned). Walks with an explicit stack, so a 10,000-deep
//! array cannot overflow the thread's stack. Paths are JSON Pointers
//! (RFC 6901), built only for strings that have findings.

use serde_json::Value;

use super::{DetectorSet, Finding, Masker};

enum Seg {
    Key(String),
    Index(usize),
}

fn pointer(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        out.push('/');
        match seg {
            Seg::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
            Seg::Index(i) => out.push_str(&i.to_string()),
        }
    }
    out
}

/// Depth-first over `root` in document order; `visit` sees each string with
/// its path.
fn walk_mut(root: &mut Value, mut visit: impl FnMut(&[Seg], &mut String)) {
    let mut path: Vec<Seg> = Vec::new();
    // (value, its depth, the segment that leads to it)
    let mut stack: Vec<(&mut Value, usize, Option<Seg>)> = vec![(root, 0, None)];
    while let Some((v, depth, seg)) = stack.pop() {
        path.truncate(depth.saturating_sub(1));
        if let Some(seg) = seg {
            path.push(seg);
        }
        match v {
            Value::String(s) => visit(&path, s),
            Value::Array(a) => {
                for (i, child) in a.iter_mut().enumerate().rev() {
                    stack.push((child, depth + 1, Some(Seg::Index(i))));
                }
            }
            Value::Object(o) => {
                let children: Vec<(&String, &mut Value)> = o.iter_mut().collect();
                for (k, child) in children.into_iter().rev() {
                    stack.push((child, depth + 1, Some(Seg::Key(k.clone()))));
                }
            }
            _ => {}
        }
    }
}

fn walk(root: &Value, mut visit: impl FnMut(&[Seg], &str)) {
    let mut path: Vec<Seg> = Vec::new();
    let mut stack: Vec<(&Value, usize, Option<Seg>)> = vec![(root, 0, None)];
    while let Some((v, depth, seg)) = stack.pop() {
        path.truncate(depth.saturating_sub(1));
        if let Some(seg) = seg {
            path.push(seg);
        }
        match v {
            Value::String(s) => visit(&path, s),
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate().rev() {
                    stack.push((child, depth + 1, Some(Seg::Index(i))));
                }
            }
            Value::Object(o) => {
                for (k, child) in o.iter().rev() {
                    stack.push((child, depth + 1, Some(Seg::Key(k.clone()))));
                }
            }
            _ => {}
        }
    }
}

impl DetectorSet {
    /// Findings in every string value of `v`, each with the JSON Pointer of
    /// its string (offsets are within that string), in document order.
    pub fn scan_json(&self, v: &Value) -> Vec<(String, Finding)> {
        let mut out = Vec::new();
        walk(v, |path, s| {
            let found = self.scan(s);
            if !found.is_empty() {
                let p = pointer(path);
                out.extend(found.into_iter().map(|f| (p.clone(), f)));
            }
        });
        out
    }
}

impl Masker {
    /// Scans every string value of `v` with `detectors` and masks the
    /// findings in place; returns them with their JSON Pointers (offsets are
    /// into the string before masking).
    pub fn mask_json(&mut self, detectors: &DetectorSet, v: &mut Value) -> Vec<(String, Finding)> {
        let mut out = Vec::new();
        walk_mut(v, |path, s| {
            let found = detectors.scan(s);
            if !found.is_empty() {
                *s = self.mask(s, &found);
                let p = pointer(path);
                out.extend(found.into_iter().map(|f| (p.clone(), f)));
            }
        });
        out
    }
}
