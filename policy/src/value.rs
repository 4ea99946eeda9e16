//! Checking one key's value against its [`Kind`] and bringing it to its one canonical form:
//! sets sorted and de-duplicated, tables with sorted keys. Two values that mean the same are
//! then equal, hash the same and merge as one.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::keys::Kind;
use crate::rules::names;

/// One problem with a value: the list index it is about, if any, and what is wrong.
pub type ValueError = (Option<usize>, String);

/// The kind of a JSON value, for "expected X, found Y".
pub fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// `value` checked against `kind` and normalized, or every problem found.
pub fn check(kind: Kind, value: &Value) -> Result<Value, Vec<ValueError>> {
    let wrong = || {
        vec![(
            None,
            format!("expected {}, found {}", kind.describe(), describe(value)),
        )]
    };
    match (kind, value) {
        (Kind::Bool, Value::Bool(_)) => Ok(value.clone()),
        (Kind::Count { min, max }, Value::Number(n)) => match n.as_u64() {
            Some(v) if (min..=max).contains(&v) => Ok(Value::from(v)),
            _ => Err(vec![(
                None,
                format!("expected a whole number from {min} to {max}, found {n}"),
            )]),
        },
        (Kind::Choice(choices), Value::String(s)) => {
            if choices.contains(&s.as_str()) {
                Ok(value.clone())
            } else {
                let mut message = format!(
                    "{} is not one of {}",
                    crate::rules::quote(s),
                    choices.join(", ")
                );
                if choices.iter().any(|c| c.eq_ignore_ascii_case(s)) {
                    message.push_str(" (names are case-sensitive)");
                }
                Err(vec![(None, message)])
            }
        }
        (Kind::Text(rule), Value::String(s)) => {
            rule(s).map(Value::String).map_err(|m| vec![(None, m)])
        }
        (Kind::Strings(rule), Value::Array(items)) => {
            let mut out = std::collections::BTreeSet::new();
            let mut errors = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => match rule(s) {
                        Ok(v) => {
                            out.insert(v);
                        }
                        Err(m) => errors.push((Some(i), m)),
                    },
                    other => errors.push((
                        Some(i),
                        format!("expected a string, found {}", describe(other)),
                    )),
                }
            }
            if errors.is_empty() {
                Ok(Value::Array(out.into_iter().map(Value::String).collect()))
            } else {
                Err(errors)
            }
        }
        (Kind::Objects(rule), Value::Array(items)) => {
            let mut out = BTreeMap::new();
            let mut errors = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match rule(item) {
                    Ok(v) => {
                        let v = canonical(&v);
                        out.insert(v.to_string(), v);
                    }
                    Err(m) => errors.push((Some(i), m)),
                }
            }
            if errors.is_empty() {
                Ok(Value::Array(out.into_values().collect()))
            } else {
                Err(errors)
            }
        }
        (Kind::StringMap(name_rule, value_rule), Value::Object(map)) => {
            let mut out = BTreeMap::new();
            let mut errors = Vec::new();
            for (name, v) in map {
                let checked = name_rule(name).and_then(|n| match v {
                    Value::String(s) => value_rule(s).map(|s| (n, s)),
                    other => Err(format!(
                        "{name}: expected a string, found {}",
                        describe(other)
                    )),
                });
                match checked {
                    Ok((n, s)) => {
                        out.insert(n, Value::String(s));
                    }
                    Err(m) => errors.push((None, m)),
                }
            }
            if errors.is_empty() {
                Ok(Value::Object(out.into_iter().collect()))
            } else {
                Err(errors)
            }
        }
        (Kind::Hooks, Value::Object(events)) => {
            let mut out = BTreeMap::new();
            let mut errors = Vec::new();
            for (event, groups) in events {
                if let Err(m) = names::hook_event(event) {
                    errors.push((None, m));
                    continue;
                }
                let Value::Array(groups) = groups else {
                    errors.push((None, format!("{event}: expected a list of matcher groups")));
                    continue;
                };
                let mut set = BTreeMap::new();
                for (i, group) in groups.iter().enumerate() {
                    match names::hook_group(group) {
                        Ok(v) => {
                            let v = canonical(&v);
                            set.insert(v.to_string(), v);
                        }
                        Err(m) => errors.push((Some(i), format!("{event}: {m}"))),
                    }
                }
                if !set.is_empty() {
                    out.insert(event.clone(), Value::Array(set.into_values().collect()));
                }
            }
            if errors.is_empty() {
                Ok(Value::Object(out.into_iter().collect()))
            } else {
                Err(errors)
            }
        }
        _ => Err(wrong()),
    }
}

/// `value` with every table's keys in byte order (the workspace enables serde_json's
/// `preserve_order`, so insertion order would otherwise show in the text).
pub fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, Value> =
                map.iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(
                sorted
                    .into_iter()
                    .map(|(k, v)| (k.clone(), v))
                    .collect::<Map<_, _>>(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{domain, names};
    use serde_json::json;

    #[test]
    fn sets_are_sorted_and_deduplicated() {
        let v = check(
            Kind::Strings(domain::domain),
            &json!(["b.com", "A.com", "a.com"]),
        )
        .unwrap();
        assert_eq!(v, json!(["a.com", "b.com"]));
    }

    #[test]
    fn every_bad_entry_is_reported() {
        let e = check(
            Kind::Strings(domain::domain),
            &json!(["ok.com", 3, "bad domain"]),
        )
        .unwrap_err();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].0, Some(1));
        assert_eq!(e[1].0, Some(2));
    }

    #[test]
    fn wrong_types_and_ranges() {
        assert!(check(Kind::Bool, &json!("true")).unwrap_err()[0]
            .1
            .contains("expected a boolean, found a string"));
        assert!(check(Kind::Count { min: 1, max: 10 }, &json!(0)).is_err());
        assert!(check(Kind::Count { min: 1, max: 10 }, &json!(2.5)).is_err());
        assert_eq!(
            check(Kind::Count { min: 1, max: 10 }, &json!(3)),
            Ok(json!(3))
        );
        let e = check(Kind::Choice(&["plan", "auto"]), &json!("Plan")).unwrap_err();
        assert!(e[0].1.contains("case-sensitive"));
        assert!(check(Kind::Text(names::version), &json!("2.1")).is_err());
    }

    #[test]
    fn hooks_are_checked_per_event() {
        let v = json!({"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "x"}]}]});
        assert!(check(Kind::Hooks, &v).is_ok());
        assert!(check(Kind::Hooks, &json!({"Nope": []})).is_err());
    }
}
