//! The effective policy of one user: the org defaults overlaid with the policy of every group
//! the user is in, plus the bundle of the strictest security level set anywhere, each key by
//! its rule in [`crate::keys::KEYS`]. The order of the groups never matters (they are sorted
//! by name first), and no rule lets a group widen what another source forbids.
//!
//! [`explain`] gives the same result with each key's sources and rule, for `--explain`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::{json, Map, Value};

use crate::document::Policy;
use crate::keys::{Key, Kind, Merge, KEYS};
use crate::level::SecurityLevel;
use crate::rules::{domain, names};

/// One group of the user and its policy.
#[derive(Debug, Clone, Copy)]
pub struct GroupPolicy<'a> {
    /// The group's name, for explanations and telemetry attributes.
    pub group: &'a str,
    pub policy: &'a Policy,
}

/// Where a value comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// The organisation's defaults.
    Org,
    /// A group's policy.
    Group(String),
    /// The bundle of a security level.
    Level(SecurityLevel),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Org => f.write_str("org default"),
            Source::Group(name) => write!(f, "group {}", crate::rules::quote(name)),
            Source::Level(level) => write!(f, "security level {level}"),
        }
    }
}

/// How one key of the effective policy came to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyExplanation {
    pub key: &'static Key,
    /// The merged value (`None`: no source has an opinion that survives).
    pub value: Option<Value>,
    /// Every source that set the key, with its value, in merge order.
    pub sources: Vec<(Source, Value)>,
    /// Conflicts and values left out, in words.
    pub notes: Vec<String>,
}

/// The effective policy with the story of each key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub policy: Policy,
    pub keys: Vec<KeyExplanation>,
}

/// The effective policy (see the module documentation).
pub fn effective(defaults: &Policy, groups: &[GroupPolicy<'_>]) -> Policy {
    explain(defaults, groups).policy
}

/// [`effective`], with where each key comes from.
pub fn explain(defaults: &Policy, groups: &[GroupPolicy<'_>]) -> Explanation {
    let mut sorted: Vec<&GroupPolicy<'_>> = groups.iter().collect();
    // By name; the canonical text only breaks a tie of names (rare), so it is not computed
    // for every comparison.
    sorted.sort_by(|a, b| {
        a.group
            .cmp(b.group)
            .then_with(|| a.policy.canonical_json().cmp(&b.policy.canonical_json()))
    });
    let mut layers: Vec<(Source, &Policy)> = vec![(Source::Org, defaults)];
    layers.extend(
        sorted
            .iter()
            .map(|g| (Source::Group(g.group.to_owned()), g.policy)),
    );

    let level = layers
        .iter()
        .map(|(_, p)| p.level())
        .max()
        .unwrap_or_default();
    let bundle = crate::bundles::bundle(level);
    layers.push((Source::Level(level), &bundle));

    let mut policy = Policy::new();
    let mut keys = Vec::new();
    for key in KEYS {
        let mut notes = Vec::new();
        let mut sources: Vec<(Source, Value)> = Vec::new();
        for (source, layer) in &layers {
            let Some(v) = layer.get(key.name) else {
                continue;
            };
            if key.merge == Merge::OrgOnly && *source != Source::Org {
                notes.push(format!(
                    "{source} cannot set an org-only key; its value is ignored"
                ));
                continue;
            }
            sources.push((source.clone(), v.clone()));
        }
        if sources.is_empty() && notes.is_empty() {
            continue;
        }
        let value = merge(key, &sources, &mut notes);
        if let Some(v) = &value {
            policy.put(key, v.clone());
        }
        keys.push(KeyExplanation {
            key,
            value,
            sources,
            notes,
        });
    }
    finish(&mut policy, &mut keys, &sorted);
    Explanation { policy, keys }
}

/// Rules that look at more than one key: the groups in the telemetry attributes, and a
/// default model the allowlist does not admit.
fn finish(policy: &mut Policy, keys: &mut [KeyExplanation], groups: &[&GroupPolicy<'_>]) {
    if policy.on("telemetry.include_groups") {
        let names: BTreeSet<&str> = groups.iter().map(|g| g.group).collect();
        let joined = names
            .iter()
            .map(|n| utf8_percent_encode(n, GROUP_NAME).to_string())
            .collect::<Vec<_>>()
            .join(";");
        let mut attributes = policy
            .get("telemetry.resource_attributes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        attributes.insert(GROUPS_ATTRIBUTE.to_owned(), Value::String(joined));
        if let Some(key) = crate::keys::find("telemetry.resource_attributes") {
            let value = crate::value::canonical(&Value::Object(attributes));
            policy.put(key, value.clone());
            if let Some(k) = keys.iter_mut().find(|k| k.key.name == key.name) {
                k.value = Some(value);
                k.notes.push(format!(
                    "{GROUPS_ATTRIBUTE} added by telemetry.include_groups"
                ));
            }
        }
    }
    if let (Some(default), Some(available)) = (
        policy.text("models.default").map(str::to_owned),
        policy.strings("models.available"),
    ) {
        if !available.contains(&default.as_str()) {
            policy.remove("models.default");
            if let Some(k) = keys.iter_mut().find(|k| k.key.name == "models.default") {
                k.value = None;
                k.notes.push(format!(
                    "default model {default} is not in models.available; left out"
                ));
            }
        }
    }
}

/// The resource attribute that carries the person's groups.
pub const GROUPS_ATTRIBUTE: &str = "palisade.groups";

/// Group names are joined with `;`; these characters are escaped inside a name.
const GROUP_NAME: &AsciiSet = &CONTROLS.add(b';').add(b'%').add(b',').add(b'=');

fn merge(key: &Key, sources: &[(Source, Value)], notes: &mut Vec<String>) -> Option<Value> {
    let values: Vec<&Value> = sources.iter().map(|(_, v)| v).collect();
    let first = *values.first()?;
    Some(match key.merge {
        Merge::Union if matches!(key.kind, Kind::Hooks) => union_hooks(&values),
        Merge::Union => Value::Array(
            by_text(values.iter().flat_map(|v| items(v)))
                .into_values()
                .collect(),
        ),
        Merge::Intersect => {
            let sets: Vec<BTreeMap<String, Value>> =
                values.iter().map(|v| by_text(items(v))).collect();
            let mut result = sets.first().cloned().unwrap_or_default();
            result.retain(|text, _| sets.iter().all(|s| s.contains_key(text)));
            Value::Array(result.into_values().collect())
        }
        Merge::IntersectDomains => {
            let lists: Vec<Vec<&str>> = values.iter().map(|v| strs(v)).collect();
            let candidates: BTreeSet<&str> = lists.iter().flatten().copied().collect();
            let kept: Vec<Value> = candidates
                .into_iter()
                .filter(|d| lists.iter().all(|l| l.iter().any(|p| domain::covers(p, d))))
                .map(|d| Value::String(d.to_owned()))
                .collect();
            Value::Array(kept)
        }
        Merge::AnyTrue => Value::Bool(values.iter().any(|v| v.as_bool() == Some(true))),
        Merge::FalseWins => Value::Bool(values.iter().all(|v| v.as_bool() != Some(false))),
        Merge::Minimum => values
            .iter()
            .filter_map(|v| v.as_u64())
            .min()
            .map(Value::from)?,
        Merge::HighestVersion | Merge::LowestVersion => {
            let mut versions: Vec<((u64, u64, u64), &str)> = values
                .iter()
                .filter_map(|v| v.as_str())
                .filter_map(|s| names::parse_version(s).ok().map(|p| (p, s)))
                .collect();
            versions.sort();
            let pick = if key.merge == Merge::HighestVersion {
                versions.last()
            } else {
                versions.first()
            };
            Value::String(pick?.1.to_owned())
        }
        Merge::Strictest => {
            let Kind::Choice(order) = key.kind else {
                return Some(first.clone());
            };
            let rank = |v: &Value| {
                order
                    .iter()
                    .position(|c| Some(*c) == v.as_str())
                    .unwrap_or(usize::MAX)
            };
            values.iter().copied().min_by_key(|v| rank(v))?.clone()
        }
        Merge::OrgFirst => {
            if let Some((_, v)) = sources.iter().find(|(s, _)| *s == Source::Org) {
                return Some(v.clone());
            }
            let distinct = by_text(values.iter().map(|v| (*v).clone()));
            if distinct.len() > 1 {
                notes.push(format!(
                    "groups disagree ({}); the first in byte order is used — set it in the org defaults",
                    distinct.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            distinct.into_values().next()?
        }
        Merge::OrgOnly => first.clone(),
        Merge::Concatenate => {
            let mut seen = BTreeSet::new();
            let texts: Vec<&str> = values
                .iter()
                .filter_map(|v| v.as_str())
                .filter(|t| seen.insert(*t))
                .collect();
            Value::String(texts.join("\n\n"))
        }
    })
}

fn items(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Values keyed (and so sorted and de-duplicated) by their canonical text.
fn by_text(values: impl IntoIterator<Item = Value>) -> BTreeMap<String, Value> {
    values
        .into_iter()
        .map(|v| {
            let v = crate::value::canonical(&v);
            let text = match &v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (text, v)
        })
        .collect()
}

fn union_hooks(values: &[&Value]) -> Value {
    let mut events: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for v in values {
        for (event, groups) in v.as_object().into_iter().flatten() {
            events
                .entry(event.clone())
                .or_default()
                .extend(by_text(items(groups)));
        }
    }
    let map: Map<String, Value> = events
        .into_iter()
        .map(|(event, groups)| (event, Value::Array(groups.into_values().collect())))
        .collect();
    Value::Object(map)
}

impl Explanation {
    /// The JSON form: `{"policy": .., "keys": [{key, rule, value, sources, notes}]}`.
    pub fn to_value(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|k| {
                json!({
                    "key": k.key.name,
                    "rule": k.key.merge.describe(),
                    "value": k.value,
                    "sources": k.sources.iter().map(|(s, v)| json!({"source": s.to_string(), "value": v})).collect::<Vec<_>>(),
                    "notes": k.notes,
                })
            })
            .collect();
        json!({ "policy": self.policy.to_value(), "keys": keys })
    }
}

impl fmt::Display for Explanation {
    /// One block per key: `key = value   [rule]`, then each source's value, then notes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.keys.is_empty() {
            return writeln!(f, "(no key is set: Claude Code's own defaults apply)");
        }
        for k in &self.keys {
            let value = k
                .value
                .as_ref()
                .map_or("(left out)".to_owned(), Value::to_string);
            writeln!(f, "{} = {value}   [{}]", k.key.name, k.key.merge.describe())?;
            for (source, v) in &k.sources {
                writeln!(f, "    {source}: {v}")?;
            }
            for note in &k.notes {
                writeln!(f, "    note: {note}")?;
            }
        }
        Ok(())
    }
}
