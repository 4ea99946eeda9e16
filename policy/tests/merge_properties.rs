//! Property tests of the merge: whatever the groups, adding one never removes a restriction
//! (a deny entry, a lock, a lower retention, a higher minimum version, a stricter choice) and
//! never widens a grant, and the order of the groups does not matter.

use palisade_policy::keys::{Kind, Merge, KEYS};
use palisade_policy::{effective, GroupPolicy, Policy};
use proptest::prelude::*;
use serde_json::{json, Value};

/// A few valid values per key, so random policies overlap and conflict often.
fn pool(name: &str, kind: Kind) -> Vec<Value> {
    match (name, kind) {
        (_, Kind::Bool) => vec![json!(true), json!(false)],
        (_, Kind::Count { .. }) => vec![json!(1), json!(30), json!(90)],
        (_, Kind::Choice(c)) => c.iter().map(|s| json!(s)).collect(),
        ("models.default", _) => vec![json!("sonnet"), json!("haiku"), json!("opus")],
        ("session.claude_md", _) => vec![json!("Use the house style."), json!("No secrets.")],
        (n, _) if n.ends_with("version") => {
            vec![json!("2.1.100"), json!("2.1.240"), json!("2.2.0")]
        }
        ("permissions.deny" | "permissions.ask", _) => lists(&[
            "Bash",
            "WebFetch",
            "Bash(curl *)",
            "Read(~/.ssh/**)",
            "mcp__github__*",
        ]),
        ("permissions.allow", _) => lists(&["Bash(npm test)", "Read", "WebFetch(domain:docs.rs)"]),
        ("permissions.additional_directories", _) => lists(&["/srv/a", "~/work", "/srv/b"]),
        ("files.deny_read" | "files.deny_write", _) => lists(&["/etc", "~/.ssh", "**/.env", "/"]),
        ("network.allowed_domains", _) => {
            lists(&["docs.rs", "*.example.com", "a.example.com", "crates.io"])
        }
        ("network.denied_domains", _) => lists(&["pastebin.com", "*.evil.test"]),
        ("mcp.allowed" | "mcp.denied", _) => vec![
            json!([]),
            json!([{"name": "github"}]),
            json!([{"name": "github"}, {"url": "https://mcp.example.com/*"}]),
            json!([{"command": ["npx", "x"]}]),
        ],
        ("models.available", _) => lists(&["sonnet", "haiku", "opus"]),
        ("hooks.events", _) => vec![
            json!({}),
            json!({"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "/bin/true"}]}]}),
            json!({"Stop": [{"hooks": [{"type": "command", "command": "/bin/audit"}]}]}),
        ],
        ("hooks.allowed_http_urls", _) => {
            lists(&["https://a.example.com/*", "https://b.example.com/*"])
        }
        ("telemetry.endpoint", _) => vec![
            json!("https://otel.example.com"),
            json!("https://otel2.example.com"),
        ],
        ("telemetry.headers" | "telemetry.resource_attributes", _) => {
            vec![json!({"team": "x"}), json!({"team": "y"})]
        }
        ("credentials.force_login_org_uuid", _) => lists(&[
            "123e4567-e89b-12d3-a456-426614174000",
            "123e4567-e89b-12d3-a456-426614174001",
        ]),
        ("plugins.known_marketplaces" | "plugins.blocked_marketplaces", _) => vec![
            json!([]),
            json!([{"source": "github", "repo": "acme/a"}]),
            json!([{"source": "github", "repo": "acme/a"}, {"source": "github", "repo": "acme/b"}]),
        ],
        ("plugins.only_customization", _) => lists(&["skills", "mcp", "hooks", "agents"]),
        ("skills.allowed", _) => lists(&["pdf", "docx", "xlsx"]),
        ("session.announcements", _) => lists(&["Be kind.", "Read the policy."]),
        (other, _) => panic!("no pool for {other}"),
    }
}

/// Every subset of up to three of `items`, as JSON lists (including the empty one).
fn lists(items: &[&str]) -> Vec<Value> {
    let mut out = vec![json!([])];
    for i in 0..items.len() {
        out.push(json!([items[i]]));
        for j in i + 1..items.len() {
            out.push(json!([items[i], items[j]]));
        }
    }
    out
}

fn arb_policy(org: bool) -> impl Strategy<Value = Policy> {
    let keys: Vec<(&'static str, Vec<Value>)> = KEYS
        .iter()
        .filter(|k| org || k.merge != Merge::OrgOnly)
        .map(|k| (k.name, pool(k.name, k.kind)))
        .collect();
    proptest::collection::vec((0..keys.len(), any::<prop::sample::Index>()), 0..8).prop_map(
        move |picks| {
            let mut p = Policy::new();
            for (key, index) in picks {
                let (name, values) = &keys[key];
                p.set(name, index.get(values).clone())
                    .expect("pool values are valid");
            }
            p
        },
    )
}

fn merged(defaults: &Policy, groups: &[(String, Policy)]) -> Policy {
    let gp: Vec<GroupPolicy<'_>> = groups
        .iter()
        .map(|(g, p)| GroupPolicy {
            group: g,
            policy: p,
        })
        .collect();
    effective(defaults, &gp)
}

fn set_of(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().map(Value::to_string).collect())
        .unwrap_or_default()
}

fn groups() -> impl Strategy<Value = Vec<(String, Policy)>> {
    proptest::collection::vec(arb_policy(false), 0..4).prop_map(|ps| {
        ps.into_iter()
            .enumerate()
            .map(|(i, p)| (format!("group-{i}"), p))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn group_order_does_not_matter(defaults in arb_policy(true), groups in groups(), seed in any::<u64>()) {
        let mut shuffled = groups.clone();
        // A deterministic shuffle from the seed.
        let n = shuffled.len();
        for i in (1..n).rev() {
            let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        prop_assert_eq!(merged(&defaults, &groups), merged(&defaults, &shuffled));
    }

    #[test]
    fn adding_a_group_only_restricts(defaults in arb_policy(true), groups in groups(), extra in arb_policy(false)) {
        let before = merged(&defaults, &groups);
        let mut more = groups.clone();
        more.push(("group-extra".to_owned(), extra));
        let after = merged(&defaults, &more);
        prop_assert!(after.level() >= before.level());
        for key in KEYS {
            let (b, a) = (before.get(key.name), after.get(key.name));
            match key.merge {
                Merge::Union if matches!(key.kind, Kind::Hooks) => {
                    for (event, groups) in b.and_then(Value::as_object).into_iter().flatten() {
                        let kept = a.and_then(|a| a.get(event));
                        for g in set_of(Some(groups)) {
                            prop_assert!(set_of(kept).contains(&g), "{} lost a hook", key.name);
                        }
                    }
                }
                Merge::Union => {
                    for entry in set_of(b) {
                        prop_assert!(set_of(a).contains(&entry), "{} lost {}", key.name, entry);
                    }
                }
                Merge::Intersect => {
                    if let Some(b) = b {
                        let a = a.expect("a grant set before stays set");
                        for entry in set_of(Some(a)) {
                            prop_assert!(set_of(Some(b)).contains(&entry), "{} widened by {}", key.name, entry);
                        }
                    }
                }
                Merge::IntersectDomains => {
                    if let Some(b) = b {
                        let a = a.expect("an allowlist set before stays set");
                        let strs = |v: &Value| v.as_array().map(|l| l.iter().filter_map(Value::as_str).map(str::to_owned).collect::<Vec<_>>()).unwrap_or_default();
                        for entry in strs(a) {
                            let covered = strs(b).iter().any(|p| palisade_policy::rules::domain::covers(p, &entry));
                            prop_assert!(covered, "{} widened by {}", key.name, entry);
                        }
                    }
                }
                Merge::AnyTrue if b == Some(&json!(true)) => prop_assert_eq!(a, Some(&json!(true)), "{}", key.name),
                Merge::FalseWins if b == Some(&json!(false)) => prop_assert_eq!(a, Some(&json!(false)), "{}", key.name),
                Merge::Minimum => if let (Some(b), Some(a)) = (b, a) {
                    prop_assert!(a.as_u64() <= b.as_u64(), "{}", key.name);
                },
                Merge::HighestVersion => if let Some(b) = b {
                    let parse = |v: &Value| palisade_policy::rules::names::parse_version(v.as_str().unwrap_or_default()).ok();
                    prop_assert!(parse(a.expect("kept")) >= parse(b), "{}", key.name);
                },
                Merge::Strictest => if let (Some(b), Some(a), Kind::Choice(order)) = (b, a, key.kind) {
                    let rank = |v: &Value| order.iter().position(|c| Some(*c) == v.as_str());
                    prop_assert!(rank(a) <= rank(b), "{} weakened", key.name);
                },
                // The person's groups are added to the attributes by design.
                Merge::OrgOnly if key.name == "telemetry.resource_attributes" => {}
                Merge::OrgOnly => prop_assert_eq!(a, b, "{} changed by a group", key.name),
                _ => {}
            }
        }
    }

    #[test]
    fn a_group_policy_survives_its_own_json(p in arb_policy(true)) {
        let again = Policy::from_value(&p.to_value()).expect("its own form reads back").policy;
        prop_assert_eq!(&again, &p);
        let wire = Policy::from_wire(palisade_policy::SCHEMA_VERSION, &p.canonical_json()).expect("wire");
        prop_assert_eq!(wire, p);
    }
}
