//! The counters a caller charges for a model, worked out once per (caller,
//! model) and kept until the next config reload.
//!
//! Which rules apply and how their counters are partitioned depend only on
//! the principal (key id, subject, groups, tenant) and the model, so every
//! request after the first clones one `Arc` instead of matching each rule,
//! building each counter key and looking each counter up in the local store
//! (with five caps, 3.1 k of the 16.6 k instructions a limited request
//! added, bench/history/LIMITS.md). Each counter's name for the ledger
//! (`CounterId`, shared by every decision on it) is built here too.
//!
//! A plain sharded map, not an LRU (`moka`): a hit must stay a few hundred
//! instructions, and the only cost of a full map is that it starts over.

use std::sync::Arc;

use dashmap::DashMap;

use super::local::{Counter, LocalStore};
use super::{CapKind, Rule};
use crate::auth::Principal;
use tollgate_config::{LimitMode, LimitStore};
use tollgate_core::limit_decision::CounterId;

/// One counter a (caller, model) charges.
pub(super) struct Template {
    pub rule: Arc<Rule>,
    /// Index into `rule.caps`.
    pub cap: usize,
    /// `rule:cap:partition`.
    pub key: Box<str>,
    /// The counter as the ledger names it.
    pub id: Arc<CounterId>,
    /// This node's counter, for a rule counted here (`store: local`).
    pub counter: Option<Counter>,
}

impl Template {
    pub(super) fn cap(&self) -> &super::Cap {
        &self.rule.caps[self.cap]
    }

    pub(super) fn enforce(&self) -> bool {
        self.rule.mode == LimitMode::Enforce
    }
}

/// The counters of one (caller, model): empty when no rule applies.
#[derive(Clone)]
pub struct Counters(pub(super) Arc<[Template]>);

impl Counters {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a token or cost cap applies (only then are the prompt's
    /// tokens counted on the request path).
    pub fn counts_tokens(&self) -> bool {
        self.0
            .iter()
            .any(|t| matches!(t.cap().kind, CapKind::Tokens(_) | CapKind::Cost))
    }
}

/// Past this many (caller, model) pairs the cache starts over: a gateway
/// with more distinct callers between two reloads pays the uncached cost
/// for a while, nothing else. An entry of five caps is about 1.3 kB, so
/// the cache stays under ~6 MB.
const MAX_ENTRIES: usize = 4_096;

#[derive(Default)]
pub(super) struct Templates {
    map: DashMap<Box<str>, Counters, foldhash::fast::RandomState>,
}

impl Templates {
    pub(super) fn get(
        &self,
        rules: &[Arc<Rule>],
        local: &LocalStore,
        p: &Principal,
        model: &str,
    ) -> Counters {
        // The key is built in a buffer kept per thread: a hit allocates nothing.
        thread_local! {
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        // A hit answers its entry; a miss, the key to store the new one under.
        let looked_up = KEY.with(|k| {
            let mut own = String::new();
            // (A buffer already borrowed cannot happen: nothing here
            // re-enters; it would only mean a buffer of its own.)
            let mut kept = k.try_borrow_mut();
            let k = kept.as_deref_mut().unwrap_or(&mut own);
            k.clear();
            cache_key(k, p, model);
            let found = match self.map.get(k.as_str()) {
                Some(c) => Ok(c.clone()),
                None => Err(Box::<str>::from(k.as_str())),
            };
            if k.capacity() > 4096 {
                // One caller's huge names do not stay allocated per thread.
                *k = String::new();
            }
            found
        });
        let id = match looked_up {
            Ok(c) => return c,
            Err(id) => id,
        };
        let built = Counters(build(rules, local, p, model).into());
        if self.map.len() >= MAX_ENTRIES {
            self.map.clear();
        }
        self.map.insert(id, built.clone());
        built
    }
}

/// Every field a rule's match or partition reads, each length-prefixed so
/// no two callers share a key whatever their names contain.
fn cache_key(out: &mut String, p: &Principal, model: &str) {
    let mut num = itoa::Buffer::new();
    let mut field = |out: &mut String, v: Option<&str>| match v {
        None => out.push('~'),
        Some(v) => {
            out.push_str(num.format(v.len()));
            out.push(':');
            out.push_str(v);
        }
    };
    field(out, p.key_id.as_deref());
    field(out, Some(&p.subject));
    field(out, p.tenant.as_deref());
    field(out, Some(model));
    for g in p.groups.iter() {
        field(out, Some(g));
    }
}

fn build(rules: &[Arc<Rule>], local: &LocalStore, p: &Principal, model: &str) -> Vec<Template> {
    let mut out = Vec::with_capacity(rules.len() * 2);
    let mut part = String::with_capacity(96);
    for rule in rules {
        if !rule.applies(p, model) {
            continue;
        }
        rule.partitions(p, model, &mut part, |part| {
            for (ci, cap) in rule.caps.iter().enumerate() {
                let key: Box<str> = format!("{}{part}", cap.prefix).into();
                out.push(Template {
                    rule: rule.clone(),
                    cap: ci,
                    counter: (rule.store == LimitStore::Local).then(|| local.counter(&key)),
                    key,
                    id: Arc::new(CounterId::new(&rule.name, cap.label, part, cap.restored())),
                });
            }
        });
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::auth::AuthMethod;
    use tollgate_config::{LimitsConfig, PrincipalKind};

    pub(in crate::limits) fn principal(subject: &str, groups: &[&str]) -> Principal {
        Principal {
            subject: subject.into(),
            kind: PrincipalKind::User,
            groups: groups
                .iter()
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .into(),
            tenant: None,
            key_id: None,
            issuer: None,
            method: AuthMethod::Jwt,
            claims: None,
        }
    }

    #[test]
    fn callers_whose_fields_concatenate_alike_get_their_own_counters() {
        let cfg: LimitsConfig = serde_yaml_ng::from_str(
            "rules:\n  - { name: r, per: [principal, group], requests_per_minute: 5 }\n",
        )
        .unwrap();
        let rules: Vec<Arc<Rule>> = cfg.rules.iter().map(|r| Arc::new(Rule::build(r))).collect();
        let local = LocalStore::default();
        let t = Templates::default();
        let a = t.get(&rules, &local, &principal("ab", &["c"]), "m");
        let b = t.get(&rules, &local, &principal("a", &["bc"]), "m");
        let c = t.get(&rules, &local, &principal("a", &["b", "c"]), "m");
        assert_eq!(&*a.0[0].key, "r:requests_per_minute:principal=ab|group=c|");
        assert_eq!(&*b.0[0].key, "r:requests_per_minute:principal=a|group=bc|");
        assert_eq!(c.0.len(), 2, "one counter per group");
        // A hit is the same list; another model is another entry.
        let again = t.get(&rules, &local, &principal("ab", &["c"]), "m");
        assert!(Arc::ptr_eq(&a.0, &again.0));
        assert!(!Arc::ptr_eq(
            &a.0,
            &t.get(&rules, &local, &principal("ab", &["c"]), "n").0
        ));
        // Local counters come with the template: the store holds the same cell.
        a.0[0].counter.as_ref().unwrap().try_add(1, 1.0, 5.0, true);
        assert_eq!(
            local.used("r:requests_per_minute:principal=ab|group=c|", 1),
            1.0
        );
    }

    #[test]
    fn the_cache_starts_over_when_full() {
        let cfg: LimitsConfig =
            serde_yaml_ng::from_str("rules:\n  - { name: r, per: [principal], concurrent: 5 }\n")
                .unwrap();
        let rules: Vec<Arc<Rule>> = cfg.rules.iter().map(|r| Arc::new(Rule::build(r))).collect();
        let local = LocalStore::default();
        let t = Templates::default();
        for i in 0..MAX_ENTRIES + 10 {
            t.get(&rules, &local, &principal(&format!("u{i}"), &[]), "m");
        }
        assert!(t.map.len() <= MAX_ENTRIES);
        assert!(!t.map.is_empty());
    }
}
