//! `{{variable}}` templates. Hand-written because the syntax is plain
//! substitution: a template engine (minijinja, handlebars) would add logic,
//! escaping rules and a second syntax inside values. A template is parsed
//! once, at config load, into literal and variable segments; rendering only
//! concatenates them, so a value is inserted as data and never parsed again
//! (a value containing `{{x}}` stays exactly that text).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Text(String),
    Var(String),
}

/// Why a template text does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("`{{{{` at byte {at} is never closed")]
    Unclosed { at: usize },
    #[error("`{{{{{0}}}}}` is not a variable name")]
    BadName(String),
}

/// Why a call's variables do not fit its template: every one missing,
/// unexpected or of the wrong type (shown to the caller in one sentence).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.sentence())]
pub struct VariablesError {
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
    pub wrong_type: Vec<String>,
}

impl VariablesError {
    fn sentence(&self) -> String {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("missing variables: {}", self.missing.join(", ")));
        }
        if !self.unexpected.is_empty() {
            parts.push(format!(
                "unexpected variables: {}",
                self.unexpected.join(", ")
            ));
        }
        if !self.wrong_type.is_empty() {
            parts.push(format!(
                "variables must be strings, numbers or booleans: {}",
                self.wrong_type.join(", ")
            ));
        }
        parts.join("; ")
    }
}

/// Splits `text` into segments; `{{ name }}` (spaces optional) is a
/// variable, names are letters, digits, `_`, `-`, `.`.
pub fn parse(text: &str) -> Result<Vec<Segment>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            out.push(Segment::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or(TemplateError::Unclosed {
            at: text.len() - rest.len() + open,
        })?;
        let name = after[..close].trim();
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if !valid {
            return Err(TemplateError::BadName(after[..close].to_owned()));
        }
        out.push(Segment::Var(name.to_string()));
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest.to_string()));
    }
    Ok(out)
}

/// The variables a list of parsed texts uses, sorted.
pub fn variables<'a>(texts: impl IntoIterator<Item = &'a [Segment]>) -> BTreeSet<String> {
    texts
        .into_iter()
        .flatten()
        .filter_map(|s| match s {
            Segment::Var(v) => Some(v.clone()),
            Segment::Text(_) => None,
        })
        .collect()
}

/// Checks the caller's variables against the template's: every one given,
/// no others, each a string, number or boolean. The error names them all.
pub fn check(
    expected: &BTreeSet<String>,
    given: &Map<String, Value>,
) -> Result<(), VariablesError> {
    let names = |it: &mut dyn Iterator<Item = &String>| it.cloned().collect::<Vec<_>>();
    let e = VariablesError {
        missing: names(&mut expected.iter().filter(|v| !given.contains_key(*v))),
        unexpected: names(&mut given.keys().filter(|k| !expected.contains(*k))),
        wrong_type: names(
            &mut given
                .iter()
                .filter(|(_, v)| !matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)))
                .map(|(k, _)| k),
        ),
    };
    if e.missing.is_empty() && e.unexpected.is_empty() && e.wrong_type.is_empty() {
        Ok(())
    } else {
        Err(e)
    }
}

/// Renders checked variables into the segments.
pub fn render(segments: &[Segment], vars: &Map<String, Value>) -> String {
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Text(t) => out.push_str(t),
            Segment::Var(v) => match vars.get(v) {
                Some(Value::String(s)) => out.push_str(s),
                Some(other) => out.push_str(&other.to_string()),
                None => {}
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn renders_and_never_reparses_values() {
        let segs = parse("Hi {{ name }}, about {{topic}}!").unwrap();
        let v = vars(json!({"name": "{{topic}}", "topic": "}} {{name}} {{"}));
        assert_eq!(render(&segs, &v), "Hi {{topic}}, about }} {{name}} {{!");
        assert_eq!(
            render(&segs, &vars(json!({"name": 7, "topic": true}))),
            "Hi 7, about true!"
        );
    }

    #[test]
    fn names_missing_extra_and_bad_variables() {
        let segs = parse("{{a}} {{b}} {{c}}").unwrap();
        let expected = variables([segs.as_slice()]);
        let err = check(&expected, &vars(json!({"a": "x", "b": [1], "z": 1})))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing variables: c"), "{err}");
        assert!(err.contains("unexpected variables: z"), "{err}");
        assert!(err.contains("strings, numbers or booleans: b"), "{err}");
        assert!(check(&expected, &vars(json!({"a": 1, "b": "", "c": false}))).is_ok());
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(parse("{{ unclosed").is_err());
        assert!(parse("{{ two words }}").is_err());
        assert!(parse("{{}}").is_err());
        assert_eq!(parse("plain } { text").unwrap().len(), 1);
    }
}
