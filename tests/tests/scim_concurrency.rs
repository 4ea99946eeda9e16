//! Concurrent PATCHes never lose an update (no read-modify-write races), and uniqueness holds
//! under concurrent creates.

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use futures::future::join_all;
use palisade_tests::*;
use serde_json::json;

backend_tests! {
    concurrent_group_membership => concurrent_group_membership_sqlite, concurrent_group_membership_postgres;
    concurrent_user_patches => concurrent_user_patches_sqlite, concurrent_user_patches_postgres;
    concurrent_unique_creates => concurrent_unique_creates_sqlite, concurrent_unique_creates_postgres;
}

async fn create_users(scim: &Scim, prefix: &str, n: usize) -> Result<Vec<String>> {
    let futs = (0..n).map(|i| {
        let scim = scim.clone();
        let name = format!("{prefix}-{i:03}@example.com");
        async move { create_user(&scim, &name).await }
    });
    join_all(futs).await.into_iter().collect()
}

/// Sends all PATCHes at once; every one must answer 204 No Content.
async fn patch_all(
    scim: &Scim,
    path: &str,
    bodies: Vec<serde_json::Value>,
    what: &str,
) -> Result<()> {
    let futs = bodies.into_iter().map(|ops| {
        let scim = scim.clone();
        let path = path.to_string();
        async move { scim.patch_ops(&path, ops).await }
    });
    let mut bad = Vec::new();
    for r in join_all(futs).await {
        let r = r?;
        if r.expect_group_patch().is_err() {
            bad.push(r.to_string());
        }
    }
    if !bad.is_empty() {
        bail!(
            "{what}: {} of the concurrent PATCHes did not answer 204:\n{}",
            bad.len(),
            bad.join("\n")
        );
    }
    Ok(())
}

async fn expect_members(scim: &Scim, gid: &str, want: &BTreeSet<String>, what: &str) -> Result<()> {
    let got = group_members(scim, gid).await?;
    if &got != want {
        let missing: Vec<_> = want.difference(&got).collect();
        let extra: Vec<_> = got.difference(want).collect();
        bail!(
            "{what}: {} members, expected {}; missing {missing:?}, unexpected {extra:?}",
            got.len(),
            want.len()
        );
    }
    Ok(())
}

async fn concurrent_group_membership(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    let users = create_users(&scim, "member", 50).await?;
    let gid = create_group(&scim, "Busy", &[]).await?;
    let gpath = format!("/Groups/{gid}");

    // 50 concurrent adds of distinct members.
    let adds = users
        .iter()
        .map(|u| json!([{"op": "add", "path": "members", "value": [{"value": u}]}]))
        .collect();
    patch_all(&scim, &gpath, adds, "50 concurrent adds").await?;
    expect_members(&scim, &gid, &set(users.clone()), "after 50 concurrent adds").await?;

    // 50 concurrent removes, half by value filter, half Entra-style by value.
    let removes = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            if i % 2 == 0 {
                json!([{"op": "remove", "path": format!("members[value eq \"{u}\"]")}])
            } else {
                json!([{"op": "Remove", "path": "members", "value": [{"value": u}]}])
            }
        })
        .collect();
    patch_all(&scim, &gpath, removes, "50 concurrent removes").await?;
    expect_members(&scim, &gid, &BTreeSet::new(), "after 50 concurrent removes").await?;

    // Mixed: the first half present, then remove it while adding the second half concurrently.
    let (first, second) = users.split_at(25);
    scim.patch_ops(&gpath, json!([{"op": "add", "path": "members", "value": first.iter().map(|u| json!({"value": u})).collect::<Vec<_>>()}])).await?.expect_group_patch()?;
    let mixed = first
        .iter()
        .map(|u| json!([{"op": "remove", "path": format!("members[value eq \"{u}\"]")}]))
        .chain(
            second
                .iter()
                .map(|u| json!([{"op": "Add", "path": "members", "value": [{"value": u}]}])),
        )
        .collect();
    patch_all(&scim, &gpath, mixed, "25 removes + 25 adds concurrently").await?;
    expect_members(
        &scim,
        &gid,
        &set(second.to_vec()),
        "after concurrent removes and adds",
    )
    .await?;

    // Concurrent adds to several groups at once, each user into every group.
    let g2 = create_group(&scim, "Busy 2", &[]).await?;
    let g3 = create_group(&scim, "Busy 3", &[]).await?;
    let futs = users
        .iter()
        .take(20)
        .flat_map(|u| [g2.clone(), g3.clone()].map(|g| (g, u.clone())))
        .map(|(g, u)| {
            let scim = scim.clone();
            async move {
                scim.patch_ops(
                    &format!("/Groups/{g}"),
                    json!([{"op": "add", "path": "members", "value": [{"value": u}]}]),
                )
                .await
            }
        });
    for r in join_all(futs).await {
        r?.expect_group_patch()?;
    }
    let want: BTreeSet<String> = users.iter().take(20).cloned().collect();
    expect_members(&scim, &g2, &want, "group 2 after concurrent adds").await?;
    expect_members(&scim, &g3, &want, "group 3 after concurrent adds").await?;
    Ok(())
}

async fn concurrent_user_patches(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    let id = create_user(&scim, "hot@example.com").await?;
    let path = format!("/Users/{id}");
    // Every PATCH either applies (200) or is refused as retryable (503 + Retry-After, which
    // IdPs retry); refused ones are retried until all have applied. None may be lost.
    let mut pending: Vec<usize> = (0..20).collect();
    for round in 0..10 {
        let futs = pending.iter().map(|&i| {
            let scim = scim.clone();
            let path = path.clone();
            async move { (i, scim.patch_ops(&path, json!([{"op": "add", "path": "emails", "value": [{"value": format!("alias{i:02}@example.com"), "type": "other"}]}])).await) }
        });
        let mut retry = Vec::new();
        for (i, r) in join_all(futs).await {
            let r = r?;
            match r.status {
                200 => {}
                503 if r.header("retry-after").is_some() => retry.push(i),
                _ => bail!("concurrent user PATCH (round {round}): expected 200, or 503 with Retry-After:\n{r}"),
            }
        }
        pending = retry;
        if pending.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    if !pending.is_empty() {
        bail!(
            "{} PATCHes still refused after 10 rounds of retries",
            pending.len()
        );
    }
    let r = scim.get(&path).await?;
    let got: BTreeSet<String> = r.body["emails"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["value"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let want: BTreeSet<String> = (0..20)
        .map(|i| format!("alias{i:02}@example.com"))
        .collect();
    check_eq(
        got,
        want,
        "20 concurrent email adds to one user must all be kept",
        &r,
    )?;
    Ok(())
}

async fn concurrent_unique_creates(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();

    let futs = (0..12).map(|i| {
        let scim = scim.clone();
        // Differently-cased spellings of one userName.
        let name = if i % 2 == 0 {
            "race@example.com".to_string()
        } else {
            "RACE@example.com".to_string()
        };
        async move { scim.post("/Users", &user(&name)).await }
    });
    let results: Vec<Resp> = join_all(futs).await.into_iter().collect::<Result<_>>()?;
    let created = results.iter().filter(|r| r.status == 201).count();
    let conflicts = results
        .iter()
        .filter(|r| r.status == 409 && r.body["scimType"] == "uniqueness")
        .count();
    if created != 1 || conflicts != 11 {
        let all: Vec<String> = results
            .iter()
            .map(|r| format!("{} {}", r.status, truncate(&r.text, 200)))
            .collect();
        bail!(
            "12 concurrent creates of one userName: want 1x201 + 11x409 uniqueness, got:\n{}",
            all.join("\n")
        );
    }
    let r = scim
        .get_q("/Users", &[("filter", "userName eq \"race@example.com\"")])
        .await?;
    check_eq(r.total()?, 1, "exactly one user exists", &r)?;

    let futs = (0..12).map(|_| {
        let scim = scim.clone();
        async move {
            scim.post(
                "/Groups",
                &json!({"schemas": [GROUP_URN], "displayName": "Race Group"}),
            )
            .await
        }
    });
    let results: Vec<Resp> = join_all(futs).await.into_iter().collect::<Result<_>>()?;
    let created = results.iter().filter(|r| r.status == 201).count();
    let conflicts = results.iter().filter(|r| r.status == 409).count();
    if created != 1 || conflicts != 11 {
        let all: Vec<String> = results
            .iter()
            .map(|r| format!("{} {}", r.status, truncate(&r.text, 200)))
            .collect();
        bail!(
            "12 concurrent creates of one group displayName: want 1x201 + 11x409, got:\n{}",
            all.join("\n")
        );
    }
    let r = scim.get("/Groups").await?;
    check_eq(r.total()?, 1, "exactly one group exists", &r)?;
    Ok(())
}
