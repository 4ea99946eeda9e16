//! `palisade-control-plane policy apply --org O --dir policies/ [--dry-run] [--prune]`: policy
//! as code. The folder holds `defaults.{json,toml,yaml}` and `groups/<group displayName>.{json,
//! toml,yaml}`; every file is read and checked before anything is written, the diff is printed
//! (per policy: the keys that change and how many people and devices it reaches), and then the
//! policies are saved through the same service as the console and the API.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

use super::admin::read_policy_file;
use super::find_org;
use crate::admin::policies::{diff_keys, set_policy, PolicyTarget, Preview};
use crate::admin::{AdminRole, Principal};
use crate::domain::Actor;
use crate::store::Store;
use palisade_policy::{PolicyFormat, Scope};

/// One policy the folder sets (or, with `--prune`, removes).
struct Planned {
    name: String,
    target: PolicyTarget,
    current: Option<Value>,
    wanted: Option<Value>,
}

fn policy_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if !dir.is_dir() {
        return Ok(files);
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_file() && PolicyFormat::from_path_name(&path.to_string_lossy()).is_ok() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

pub async fn apply(
    store: &Store,
    org: &str,
    dir: &Path,
    dry_run: bool,
    prune: bool,
) -> anyhow::Result<()> {
    let o = find_org(store, org).await?;
    let who = Principal {
        org_id: o.id.clone(),
        role: AdminRole::Owner,
        actor: Actor::operator(),
        user_id: None,
    };
    if !dir.is_dir() {
        bail!("--dir {}: not a folder", dir.display());
    }
    // Read and check every file first: one bad file applies nothing.
    let mut plan = Vec::new();
    let mut errors = Vec::new();
    let defaults: Vec<PathBuf> = policy_files(dir)?
        .into_iter()
        .filter(|p| p.file_stem().is_some_and(|s| s == "defaults"))
        .collect();
    if defaults.len() > 1 {
        errors.push(format!("{}: more than one defaults file", dir.display()));
    }
    if let Some(file) = defaults.first() {
        match read_policy_file(file, Scope::Org) {
            Ok(p) => plan.push(Planned {
                name: "defaults".to_owned(),
                target: PolicyTarget::Defaults,
                current: Some(store.org_settings(&o.id).await?.default_policy),
                wanted: Some(p.to_value()),
            }),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    let mut named = std::collections::BTreeSet::new();
    for file in policy_files(&dir.join("groups"))? {
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !named.insert(name.clone()) {
            errors.push(format!("group {name:?}: more than one file"));
            continue;
        }
        let Some(group) = store.group_by_display_name(&o.id, &name).await? else {
            errors.push(format!(
                "{}: no group {name:?} in organisation {org:?} (groups are provisioned by the IdP)",
                file.display()
            ));
            continue;
        };
        match read_policy_file(&file, Scope::Group) {
            Ok(p) => plan.push(Planned {
                name: format!("group {name:?}"),
                target: PolicyTarget::Group(group.id.clone()),
                current: store.group_policy(&group.id).await?,
                wanted: Some(p.to_value()),
            }),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if prune {
        let (groups, _) = store.page_groups(&o.id, 0, i64::MAX).await?;
        for g in groups.iter().filter(|g| !named.contains(&g.display_name)) {
            if let Some(current) = store.group_policy(&g.id).await? {
                plan.push(Planned {
                    name: format!("group {:?} (no file: removed)", g.display_name),
                    target: PolicyTarget::Group(g.id.clone()),
                    current: Some(current),
                    wanted: None,
                });
            }
        }
    }
    if !errors.is_empty() {
        bail!("nothing applied:\n{}", errors.join("\n"));
    }
    let changes: Vec<&Planned> = plan.iter().filter(|p| p.current != p.wanted).collect();
    if changes.is_empty() {
        println!(
            "no change: the organisation's policies already match {}",
            dir.display()
        );
        return Ok(());
    }
    for p in &changes {
        let preview = set_policy(store, &who, &p.target, p.wanted.as_ref(), true)
            .await
            .map_err(|e| anyhow!("{}: {e}", p.name))?;
        print_diff(p, &preview);
    }
    if dry_run {
        println!("dry run: nothing saved");
        return Ok(());
    }
    for p in &changes {
        set_policy(store, &who, &p.target, p.wanted.as_ref(), false)
            .await
            .map_err(|e| anyhow!("{}: {e} (the policies listed before it were saved)", p.name))?;
    }
    println!(
        "applied {} change(s); the running control plane delivers them",
        changes.len()
    );
    Ok(())
}

fn print_diff(p: &Planned, preview: &Preview) {
    let empty = Value::Object(Default::default());
    let before = p.current.as_ref().unwrap_or(&empty);
    let after = p.wanted.as_ref().unwrap_or(&empty);
    println!("~ {}", p.name);
    for key in diff_keys(before, after) {
        let show = |v: &Value| lookup(v, &key).map_or("(unset)".to_owned(), |v| v.to_string());
        println!("    {key}: {} -> {}", show(before), show(after));
    }
    println!(
        "    effective policy changes for {} of {} people ({} devices)",
        preview.people_changed, preview.people_affected, preview.devices_changed
    );
}

fn lookup<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    match dotted.split_once('.') {
        Some((section, key)) => v.get(section)?.get(key),
        None => v.get(dotted),
    }
}
