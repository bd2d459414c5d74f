//! Who a rule applies to: the one matcher behind access policy rules
//! (`policy.rules[]`), limit rules (`limits.rules[].match`) and guardrail
//! policies (`guardrails.policies[].applies_to`). A `Subject` holds one list
//! of names per dimension — keys, principals, groups, tenants, kinds and
//! targets (model names today) — and is matched against a principal and,
//! where the rule is about a call, the call's target.
//!
//! One meaning, documented in docs/identity.md ("Who a rule applies to"):
//! - A dimension with an empty list is not listed: it constrains nothing.
//! - A listed dimension matches when the principal's value is in the list
//!   (groups: any of the principal's groups). A value the principal lacks
//!   (no tenant, no key id) matches only a `*` that means "all" (and `""`
//!   in limits, which compare a missing value as empty).
//! - The rule's owner picks how listed dimensions combine: `Combine::All`
//!   (every listed dimension matches; nothing listed matches everyone:
//!   limits, guardrails) or `Combine::Any` (some listed dimension matches;
//!   nothing listed matches nobody: access policy, where each selector is a
//!   grant on its own).
//! - The config block picks how a listed value is read (`Names::exact`,
//!   `exact_or_all`, `globs`), so each block keeps the meaning it was
//!   documented with.
//!
//! Targets: a call names one target of one kind. When a subject lists no
//! target of any kind, every target matches; otherwise the call's target
//! must be in the list of its own kind. A new target kind (MCP tools,
//! routes, connections) is a `TargetKind` variant and the config list that
//! fills it.
//!
//! Must not: allocate or do I/O while matching (guardrail applicability is
//! matched on every request).

use std::collections::HashSet;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::auth::Principal;
use tollgate_config::PrincipalKind;

/// The names listed on one dimension, compiled once per snapshot.
#[derive(Debug, Default)]
pub struct Names {
    listed: bool,
    /// A `*` that matches every value.
    all: bool,
    /// What a missing value (no tenant, no key id) matches.
    missing: bool,
    exact: HashSet<Box<str>>,
    globs: Option<GlobSet>,
}

fn has_glob_syntax(v: &str) -> bool {
    v.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

impl Names {
    /// Exact names; `*` is a name like any other (access policy; guardrail
    /// principals, groups, tenants).
    pub fn exact(values: &[String]) -> Self {
        Self::plain(values, false)
    }

    /// Exact names; `*` alone matches every value, a missing one included,
    /// and a missing value compares as `""` (limits `match`).
    pub fn exact_or_all(values: &[String]) -> Self {
        Self::plain(values, true)
    }

    fn plain(values: &[String], star: bool) -> Self {
        let mut names = Names {
            listed: !values.is_empty(),
            ..Names::default()
        };
        for v in values {
            if star && v == "*" {
                names.all = true;
            } else {
                names.exact.insert(v.as_str().into());
            }
        }
        names.missing = names.all || (star && names.exact.contains(""));
        names
    }

    /// Globs (`gpt-*`, `*`); a value without glob characters is compared as
    /// an exact name, which is what its glob would match (guardrail `models`).
    pub fn globs(values: &[String]) -> Result<Self, globset::Error> {
        let mut names = Names {
            listed: !values.is_empty(),
            ..Names::default()
        };
        let mut globs = GlobSetBuilder::new();
        let mut any_glob = false;
        for v in values {
            if v == "*" {
                names.all = true;
            } else if has_glob_syntax(v) {
                globs.add(Glob::new(v)?);
                any_glob = true;
            } else {
                names.exact.insert(v.as_str().into());
            }
        }
        names.missing = names.all;
        if any_glob {
            names.globs = Some(globs.build()?);
        }
        Ok(names)
    }

    /// Whether nothing is listed (the dimension constrains nothing).
    pub fn is_empty(&self) -> bool {
        !self.listed
    }

    pub fn matches(&self, value: &str) -> bool {
        self.all
            || self.exact.contains(value)
            || self.globs.as_ref().is_some_and(|g| g.is_match(value))
    }

    /// A value the principal may lack.
    pub fn matches_opt(&self, value: Option<&str>) -> bool {
        match value {
            Some(v) => self.matches(v),
            None => self.missing,
        }
    }
}

/// What kind of thing a call is made to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// A model or virtual model, by the name the caller sent.
    Model,
    /// An MCP tool, as `server/tool` (served names).
    Tool,
    /// An identity-aware route (`routes[].name`).
    Route,
    /// An outbound connection (`connections[].name`).
    Connection,
}

impl TargetKind {
    const COUNT: usize = 4;

    fn index(self) -> usize {
        match self {
            TargetKind::Model => 0,
            TargetKind::Tool => 1,
            TargetKind::Route => 2,
            TargetKind::Connection => 3,
        }
    }
}

/// The target of one call.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub kind: TargetKind,
    pub name: &'a str,
}

impl<'a> Target<'a> {
    pub fn model(name: &'a str) -> Self {
        Target {
            kind: TargetKind::Model,
            name,
        }
    }

    pub fn tool(name: &'a str) -> Self {
        Target {
            kind: TargetKind::Tool,
            name,
        }
    }

    pub fn of(kind: TargetKind, name: &'a str) -> Self {
        Target { kind, name }
    }
}

/// How the listed dimensions of a subject combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Every listed dimension matches; a subject listing nothing matches all.
    All,
    /// Some listed dimension matches; a subject listing nothing matches none.
    Any,
}

/// Who (and, for calls, which targets) a rule applies to.
#[derive(Debug, Default)]
pub struct Subject {
    pub keys: Names,
    pub principals: Names,
    pub groups: Names,
    pub tenants: Names,
    pub kinds: Vec<PrincipalKind>,
    pub targets: Targets,
}

/// The listed targets, one list per kind.
#[derive(Debug, Default)]
pub struct Targets {
    lists: [Names; TargetKind::COUNT],
    /// Whether any kind lists a target.
    listed: bool,
}

impl Targets {
    /// Whether targets of `kind` are listed.
    pub fn lists(&self, kind: TargetKind) -> bool {
        !self.lists[kind.index()].is_empty()
    }

    /// Lists the targets of one kind.
    pub fn with(mut self, kind: TargetKind, names: Names) -> Self {
        self.listed |= !names.is_empty();
        self.lists[kind.index()] = names;
        self
    }

    fn check(&self, target: Target<'_>) -> Option<bool> {
        self.listed
            .then(|| self.lists[target.kind.index()].matches(target.name))
    }
}

impl Subject {
    /// One principal dimension: `None` when this subject does not list it.
    fn check(&self, dim: Dim, p: &Principal) -> Option<bool> {
        match dim {
            Dim::Principal => listed(&self.principals, || self.principals.matches(&p.subject)),
            Dim::Key => listed(&self.keys, || self.keys.matches_opt(p.key_id.as_deref())),
            Dim::Tenant => listed(&self.tenants, || {
                self.tenants.matches_opt(p.tenant.as_deref())
            }),
            Dim::Group => listed(&self.groups, || {
                p.groups.iter().any(|g| self.groups.matches(g))
            }),
            Dim::Kind => (!self.kinds.is_empty()).then(|| self.kinds.contains(&p.kind)),
        }
    }

    fn principal_dims<'s>(&'s self, p: &'s Principal) -> impl Iterator<Item = Option<bool>> + 's {
        Dim::ALL.into_iter().map(move |d| self.check(d, p))
    }

    /// Whether the rule applies to this principal (rules about principals
    /// only: access policy).
    pub fn matches_principal(&self, combine: Combine, p: &Principal) -> bool {
        combined(combine, self.principal_dims(p))
    }

    /// Whether the rule applies to this principal's call to `target`.
    pub fn matches(&self, combine: Combine, p: &Principal, target: Target<'_>) -> bool {
        combined(
            combine,
            std::iter::once_with(|| self.targets.check(target)).chain(self.principal_dims(p)),
        )
    }
}

/// The principal's dimensions, in the order they are checked.
#[derive(Clone, Copy)]
enum Dim {
    Principal,
    Key,
    Tenant,
    Group,
    Kind,
}

impl Dim {
    const ALL: [Dim; 5] = [Dim::Principal, Dim::Key, Dim::Tenant, Dim::Group, Dim::Kind];
}

fn listed(names: &Names, check: impl FnOnce() -> bool) -> Option<bool> {
    (!names.is_empty()).then(check)
}

fn combined(combine: Combine, dims: impl Iterator<Item = Option<bool>>) -> bool {
    let mut dims = dims.flatten();
    match combine {
        Combine::All => dims.all(|m| m),
        Combine::Any => dims.any(|m| m),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::AuthMethod;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }
    fn exact(v: &[&str]) -> Names {
        Names::exact(&strings(v))
    }
    fn or_all(v: &[&str]) -> Names {
        Names::exact_or_all(&strings(v))
    }
    fn globs(v: &[&str]) -> Names {
        Names::globs(&strings(v)).unwrap()
    }

    fn principal(key: Option<&str>, tenant: Option<&str>, groups: &[&str]) -> Principal {
        Principal {
            subject: "alice".into(),
            kind: PrincipalKind::User,
            groups: groups
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .into(),
            tenant: tenant.map(Arc::from),
            key_id: key.map(Arc::from),
            issuer: None,
            method: AuthMethod::ApiKey,
            claims: None,
        }
    }

    #[test]
    fn syntaxes_read_values_as_their_blocks_documented() {
        let names = exact(&["*", "a"]);
        assert!(names.matches("*") && names.matches("a") && !names.matches("b"));
        assert!(!names.matches_opt(None));

        let all = or_all(&["*"]);
        assert!(all.matches("b") && all.matches_opt(None));
        let literal = or_all(&["gpt-*"]);
        assert!(literal.matches("gpt-*") && !literal.matches("gpt-4"));
        assert!(or_all(&[""]).matches_opt(None));
        assert!(!or_all(&["x"]).matches_opt(None));

        let glob = globs(&["gpt-*", "claude"]);
        assert!(glob.matches("gpt-4") && glob.matches("claude"));
        assert!(!glob.matches("claude-3") && !glob.matches("o1"));
        assert!(globs(&["*"]).matches_opt(None));
        assert!(Names::globs(&strings(&["["])).is_err());
    }

    #[test]
    fn all_needs_every_listed_dimension_any_needs_one() {
        let s = Subject {
            groups: exact(&["eng"]),
            tenants: exact(&["acme"]),
            targets: Targets::default().with(TargetKind::Model, globs(&["chat-*"])),
            ..Subject::default()
        };
        let eng_acme = principal(None, Some("acme"), &["ops", "eng"]);
        let eng = principal(None, None, &["eng"]);
        assert!(s.matches(Combine::All, &eng_acme, Target::model("chat-1")));
        assert!(!s.matches(Combine::All, &eng_acme, Target::model("embed")));
        assert!(!s.matches(Combine::All, &eng, Target::model("chat-1")));
        assert!(s.matches(Combine::Any, &eng, Target::model("embed")));
        assert!(s.matches_principal(Combine::Any, &eng));
        assert!(!s.matches_principal(Combine::Any, &principal(None, None, &[])));

        let nothing = Subject::default();
        let p = principal(Some("k"), None, &[]);
        assert!(nothing.matches(Combine::All, &p, Target::model("m")));
        assert!(!nothing.matches_principal(Combine::Any, &p));
    }

    #[test]
    fn missing_values_match_only_all() {
        let keyed = Subject {
            keys: or_all(&["*"]),
            ..Subject::default()
        };
        let token = principal(None, None, &[]);
        assert!(keyed.matches(Combine::All, &token, Target::model("m")));
        let k1 = Subject {
            keys: or_all(&["k1"]),
            ..Subject::default()
        };
        assert!(!k1.matches(Combine::All, &token, Target::model("m")));
        assert!(k1.matches(
            Combine::All,
            &principal(Some("k1"), None, &[]),
            Target::model("m")
        ));
    }
}
