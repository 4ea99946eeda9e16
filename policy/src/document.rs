//! [`Policy`]: a set of policy keys with checked, canonical values. The same type is what an
//! administrator sets (org defaults, one group), what a user ends up with (the merge), what
//! travels to the agent, and what the agent renders.
//!
//! Its JSON form nests keys by section (`{"permissions": {"deny": [...]}}`); policy files,
//! storage and the wire all use it. Reading accepts a key written flat (`"permissions.deny"`)
//! too, and a version-1 policy (migrated, with a notice: [`crate::migrate`]).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{PolicyError, PolicyErrors};
use crate::keys::{self, Key, Merge, KEYS};
use crate::level::SecurityLevel;
use crate::rules::{edit_distance, quote};
use crate::value::{self, describe};
use crate::SCHEMA_VERSION;

/// A set of policy keys with checked, canonical values. Absent keys have no opinion.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    values: BTreeMap<&'static str, Value>,
}

/// A policy read from text or storage, with what was done to it on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub policy: Policy,
    /// Human-readable notices (a version-1 policy was migrated, ...).
    pub notices: Vec<String>,
}

/// Who sets a policy: the org defaults may set every key, a group not the org-only ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Org,
    Group,
}

impl Policy {
    /// The policy with no key: no opinion on anything.
    pub fn new() -> Policy {
        Policy::default()
    }

    /// True when no key is set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// `key` as a switch: `Some(b)` when set.
    pub fn flag(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    /// True when the switch `key` is set to true.
    pub fn on(&self, key: &str) -> bool {
        self.flag(key) == Some(true)
    }

    /// `key` as a list of strings (`None`: not set).
    pub fn strings(&self, key: &str) -> Option<Vec<&str>> {
        self.get(key)?
            .as_array()
            .map(|items| items.iter().filter_map(Value::as_str).collect())
    }

    /// `key` as one string.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// The security level set (`minimal` when none).
    pub fn level(&self) -> SecurityLevel {
        self.text("security_level")
            .and_then(|s| s.parse().ok())
            .unwrap_or_default()
    }

    /// Checks `value` against `key`'s kind and stores its canonical form.
    pub fn set(&mut self, key: &str, value: Value) -> Result<(), PolicyErrors> {
        let Some(def) = keys::find(key) else {
            return Err(PolicyErrors::one(unknown_key(key)));
        };
        match value::check(def.kind, &value) {
            Ok(v) => {
                self.store(def, v);
                Ok(())
            }
            Err(problems) => Err(key_errors(def.name, problems)),
        }
    }

    /// Stores an already canonical value (the merge's results).
    pub(crate) fn put(&mut self, key: &'static Key, value: Value) {
        self.values.insert(key.name, value);
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.values.remove(key)
    }

    /// The keys that are set, with their definitions, in table order.
    pub fn entries(&self) -> impl Iterator<Item = (&'static Key, &Value)> {
        KEYS.iter()
            .filter_map(|k| self.values.get(k.name).map(|v| (k, v)))
    }

    /// The nested JSON form, keys in byte order.
    pub fn to_value(&self) -> Value {
        let mut root: BTreeMap<&str, Value> = BTreeMap::new();
        for (name, v) in &self.values {
            match name.split_once('.') {
                None => {
                    root.insert(name, v.clone());
                }
                Some((section, inner)) => {
                    let entry = root
                        .entry(section)
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(map) = entry {
                        map.insert(inner.to_owned(), v.clone());
                    }
                }
            }
        }
        value::canonical(&Value::Object(
            root.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        ))
    }

    /// Compact canonical JSON: the text hashed to tell whether a policy changed, and the wire
    /// form. `{}` for the empty policy.
    pub fn canonical_json(&self) -> String {
        self.to_value().to_string()
    }

    /// Pretty JSON (two-space indent) with a trailing newline, as policy files are written.
    pub fn to_pretty_json(&self) -> String {
        format!("{:#}\n", self.to_value())
    }

    /// Reads a policy from its JSON form: version 2 (nested or flat keys) or version 1
    /// (migrated). Every problem is reported.
    pub fn from_value(document: &Value) -> Result<Loaded, PolicyErrors> {
        let Value::Object(top) = document else {
            return Err(PolicyErrors::one(PolicyError::key(
                "(policy)",
                None,
                format!("expected a table of keys, found {}", describe(document)),
            )));
        };
        if crate::migrate::is_v1(top) {
            let (migrated, notices) = crate::migrate::to_v2(top)?;
            let loaded = Policy::from_value(&migrated)?;
            return Ok(Loaded {
                policy: loaded.policy,
                notices,
            });
        }
        let mut policy = Policy::new();
        let mut errors = Vec::new();
        for (name, v) in top {
            if name == "schema" {
                check_schema(v, &mut errors);
                continue;
            }
            if v.is_null() {
                continue;
            }
            if let Some(def) = keys::find(name) {
                policy.read(def, v, &mut errors);
                continue;
            }
            match (keys::sections().contains(&name.as_str()), v) {
                (true, Value::Object(inner)) => {
                    for (inner_name, inner_value) in inner {
                        let full = format!("{name}.{inner_name}");
                        match keys::find(&full) {
                            Some(_) if inner_value.is_null() => {}
                            Some(def) => policy.read(def, inner_value, &mut errors),
                            None => errors.push(unknown_key(&full)),
                        }
                    }
                }
                (true, other) => errors.push(PolicyError::key(
                    name.clone(),
                    None,
                    format!("expected a table of {name} keys, found {}", describe(other)),
                )),
                (false, _) => errors.push(unknown_key(name)),
            }
        }
        PolicyErrors::check(errors)?;
        Ok(Loaded {
            policy,
            notices: Vec::new(),
        })
    }

    /// Reads the wire form an agent receives: canonical JSON of version 2 only. A key this
    /// build does not know is an error, so an older agent refuses (NACKs) a newer policy
    /// instead of silently dropping a restriction.
    pub fn from_wire(schema: u32, text: &str) -> Result<Policy, PolicyErrors> {
        if schema > SCHEMA_VERSION {
            return Err(PolicyErrors::one(PolicyError::key(
                "schema",
                None,
                format!(
                    "the policy uses schema {schema}; this agent understands up to {SCHEMA_VERSION}: \
                     upgrade palisade-agent"
                ),
            )));
        }
        let document: Value = serde_json::from_str(text).map_err(|e| {
            PolicyErrors::one(PolicyError::key("(policy)", None, format!("not JSON: {e}")))
        })?;
        if let Value::Object(top) = &document {
            if crate::migrate::is_v1(top) {
                return Err(PolicyErrors::one(PolicyError::key(
                    "(policy)",
                    None,
                    "a version-1 policy on the wire; the control plane sends version 2",
                )));
            }
        }
        Policy::from_value(&document)
            .map(|loaded| loaded.policy)
            .map_err(|errors| {
                errors.map(|e| match e {
                    PolicyError::Key {
                        key,
                        index,
                        message,
                    } if message.starts_with("unknown key") => PolicyError::Key {
                        key,
                        index,
                        message: format!(
                            "{message}; this agent (policy schema {SCHEMA_VERSION}) may be \
                                 older than the control plane: upgrade palisade-agent"
                        ),
                    },
                    other => other,
                })
            })
    }

    /// Refuses the keys `scope` may not set (a group setting an org-only key).
    pub fn check_scope(&self, scope: Scope) -> Result<(), PolicyErrors> {
        if scope == Scope::Org {
            return Ok(());
        }
        let errors = self
            .entries()
            .filter(|(k, _)| k.merge == Merge::OrgOnly)
            .map(|(k, _)| {
                PolicyError::key(
                    k.name,
                    None,
                    "only the org defaults may set this key (policy set without --group)",
                )
            })
            .collect();
        PolicyErrors::check(errors)
    }

    fn read(&mut self, def: &'static Key, v: &Value, errors: &mut Vec<PolicyError>) {
        if self.values.contains_key(def.name) {
            errors.push(PolicyError::key(def.name, None, "given more than once"));
            return;
        }
        match value::check(def.kind, v) {
            Ok(v) => self.store(def, v),
            Err(problems) => errors.extend(key_errors(def.name, problems)),
        }
    }

    /// Stores a checked value; an empty list under a union key says nothing and is left out,
    /// so that it neither changes the hash nor shows in reports.
    fn store(&mut self, def: &'static Key, v: Value) {
        let says_nothing = def.merge == Merge::Union
            && (v.as_array().is_some_and(Vec::is_empty)
                || v.as_object().is_some_and(Map::is_empty));
        if says_nothing {
            self.values.remove(def.name);
        } else {
            self.values.insert(def.name, v);
        }
    }
}

/// Serialized as its nested JSON form ([`Policy::to_value`]).
impl serde::Serialize for Policy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

/// Read with [`Policy::from_value`] (a version-1 policy is migrated; notices are dropped), so
/// a cache written by an older build still loads.
impl<'de> serde::Deserialize<'de> for Policy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Policy::from_value(&value)
            .map(|loaded| loaded.policy)
            .map_err(serde::de::Error::custom)
    }
}

fn check_schema(v: &Value, errors: &mut Vec<PolicyError>) {
    match v.as_u64() {
        Some(n) if (1..=u64::from(SCHEMA_VERSION)).contains(&n) => {}
        Some(n) if n > u64::from(SCHEMA_VERSION) => errors.push(PolicyError::key(
            "schema",
            None,
            format!("written for policy schema {n}; this build understands up to {SCHEMA_VERSION}"),
        )),
        _ => errors.push(PolicyError::key(
            "schema",
            None,
            format!("expected 1 or {SCHEMA_VERSION}"),
        )),
    }
}

fn key_errors(key: &str, problems: Vec<value::ValueError>) -> PolicyErrors {
    let errors = problems
        .into_iter()
        .map(|(index, m)| PolicyError::key(key, index, m))
        .collect();
    match PolicyErrors::check(errors) {
        Err(e) => e,
        Ok(()) => PolicyErrors::one(PolicyError::key(key, None, "invalid")),
    }
}

/// An unknown key, with the known key it probably meant.
fn unknown_key(name: &str) -> PolicyError {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '_' | '-' | ' ' | '.'))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wanted = squash(name);
    let candidates = KEYS.iter().map(|k| k.name).chain(keys::sections());
    let best = candidates
        .map(|c| {
            let tail = c.rsplit('.').next().unwrap_or(c);
            let distance =
                edit_distance(&squash(c), &wanted).min(edit_distance(&squash(tail), &wanted));
            (distance, c)
        })
        .filter(|(d, _)| *d <= 3)
        .min();
    let hint = match best {
        Some((_, c)) => format!(" (did you mean {c}?)"),
        None => String::new(),
    };
    let shown = if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.is_empty()
    {
        name.to_owned()
    } else {
        quote(name)
    };
    PolicyError::key(
        shown,
        None,
        format!("unknown key{hint}; `palisade-control-plane policy keys` lists them"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_and_flat_read_the_same() {
        let a =
            Policy::from_value(&json!({"permissions": {"deny": ["Bash", "WebFetch"]}})).unwrap();
        let b =
            Policy::from_value(&json!({"permissions.deny": ["WebFetch", "Bash", "Bash"]})).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.policy.canonical_json(),
            r#"{"permissions":{"deny":["Bash","WebFetch"]}}"#
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let e = Policy::from_value(&json!({
            "permissions": {"deny": ["bash", "Read(/etc)"], "dney": []},
            "network": {"allowed_domains": "docs.rs"},
            "sandboxx": {},
            "session": {"cleanup_period_days": 0},
        }))
        .unwrap_err();
        let text = e.to_string();
        for want in [
            "permissions.deny[0]: unknown tool \"bash\" (did you mean \"Bash\"?",
            "permissions.deny[1]: \"Read(/etc)\": \"/etc\" is relative to the settings file",
            "permissions.dney: unknown key (did you mean permissions.deny?)",
            "network.allowed_domains: expected a list of strings, found a string",
            "sandboxx: unknown key (did you mean sandbox?)",
            "session.cleanup_period_days: expected a whole number from 1 to 3650",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert_eq!(e.len(), 6, "{text}");
    }

    #[test]
    fn wire_refuses_unknown_keys_with_an_upgrade_hint() {
        let e = Policy::from_wire(
            SCHEMA_VERSION,
            r#"{"permissions":{"deny":["Bash"],"future_key":true}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("permissions.future_key: unknown key"), "{e}");
        assert!(e.contains("upgrade palisade-agent"), "{e}");
        let e = Policy::from_wire(SCHEMA_VERSION + 1, "{}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("upgrade palisade-agent"), "{e}");
        assert!(Policy::from_wire(SCHEMA_VERSION, r#"{"blocked_tools":["Bash"]}"#).is_err());
        let ok = Policy::from_wire(SCHEMA_VERSION, r#"{"permissions":{"deny":["Bash"]}}"#).unwrap();
        assert_eq!(ok.strings("permissions.deny"), Some(vec!["Bash"]));
    }

    #[test]
    fn org_only_keys_are_refused_for_groups() {
        let p = Policy::from_value(&json!({"telemetry": {"endpoint": "https://otel.example.com"}}))
            .unwrap()
            .policy;
        assert!(p.check_scope(Scope::Org).is_ok());
        let e = p.check_scope(Scope::Group).unwrap_err().to_string();
        assert!(
            e.contains("telemetry.endpoint: only the org defaults"),
            "{e}"
        );
    }

    #[test]
    fn schema_numbers() {
        assert!(Policy::from_value(&json!({"schema": 2})).is_ok());
        let e = Policy::from_value(&json!({"schema": 99}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("understands up to"), "{e}");
    }
}
