//! Organisations and SCIM credentials: isolation, revocation, rotation and the token CLI.

use anyhow::{bail, Result};
use palisade_tests::*;
use serde_json::json;

backend_tests! {
    org_isolation => org_isolation_sqlite, org_isolation_postgres;
    token_revoke_and_rotation => token_revoke_and_rotation_sqlite, token_revoke_and_rotation_postgres;
    token_cli => token_cli_sqlite, token_cli_postgres;
}

async fn org_isolation(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    cp.create_org("acme").await?;
    let acme_token = cp.create_token("acme", "Okta production").await?;
    let dflt = cp.scim();
    let acme = cp.scim_with(Some(&acme_token));

    let uid = create_user(&dflt, "shared.name@example.com").await?;
    let gid = create_group(&dflt, "Engineering", &[&uid]).await?;

    // Nothing of "default" is visible to acme.
    for p in [format!("/Users/{uid}"), format!("/Groups/{gid}")] {
        acme.get(&p).await?.expect_error(404, None)?;
    }
    for (res, f) in [
        ("/Users", "userName eq \"shared.name@example.com\""),
        ("/Groups", "displayName eq \"Engineering\""),
    ] {
        let r = acme.get_q(res, &[("filter", f)]).await?;
        check_eq(r.total()?, 0, "filter across orgs finds nothing", &r)?;
    }
    let r = acme.get("/Users").await?;
    check_eq(r.total()?, 0, "acme's user list is empty", &r)?;
    let r = acme
        .post(
            "/Users/.search",
            &json!({"schemas": [SEARCH_URN], "filter": "userName pr"}),
        )
        .await?;
    check_eq(r.total()?, 0, "acme's .search is empty", &r)?;

    // Nor can acme change or delete it.
    acme.put(&format!("/Users/{uid}"), &user("hijack@example.com"))
        .await?
        .expect_error(404, None)?;
    acme.patch_ops(
        &format!("/Users/{uid}"),
        json!([{"op": "replace", "path": "active", "value": false}]),
    )
    .await?
    .expect_error(404, None)?;
    acme.patch_ops(
        &format!("/Groups/{gid}"),
        json!([{"op": "remove", "path": "members"}]),
    )
    .await?
    .expect_error(404, None)?;
    acme.delete(&format!("/Users/{uid}"))
        .await?
        .expect_error(404, None)?;
    acme.delete(&format!("/Groups/{gid}"))
        .await?
        .expect_error(404, None)?;
    let r = dflt.get(&format!("/Users/{uid}")).await?;
    r.expect(200)?;
    check(
        r.body["active"] == json!(true) && r.body["userName"] == "shared.name@example.com",
        "default's user untouched by acme",
        &r,
    )?;
    check_eq(
        group_members(&dflt, &gid).await?,
        set([uid.clone()]),
        "default's group untouched by acme",
        &r,
    )?;

    // Names are unique per organisation, not globally.
    let r = acme
        .post("/Users", &user("shared.name@example.com"))
        .await?;
    r.expect(201)?;
    let acme_uid = r.id()?;
    check(acme_uid != uid, "a distinct user", &r)?;
    let acme_gid = create_group(&acme, "Engineering", &[&acme_uid]).await?;

    // A foreign user can never become a member of an acme group, by POST, PATCH or PUT: the
    // request is refused (400/404) or the unknown member is left out.
    let r = acme
        .post(
            "/Groups",
            &json!({"schemas": [GROUP_URN], "displayName": "Mixed", "members": [{"value": uid}]}),
        )
        .await?;
    check(
        matches!(r.status, 201 | 400 | 404),
        "foreign member on create",
        &r,
    )?;
    if r.status == 201 {
        check(
            member_ids(&r.body).is_empty(),
            "foreign member left out on create",
            &r,
        )?;
        check(
            member_ids(&acme.get(&format!("/Groups/{}", r.id()?)).await?.body).is_empty(),
            "foreign member not stored on create",
            &r,
        )?;
    }
    let r = acme
        .patch_ops(
            &format!("/Groups/{acme_gid}"),
            json!([{"op": "add", "path": "members", "value": [{"value": uid}]}]),
        )
        .await?;
    check(
        r.status < 300 || r.status == 400 || r.status == 404,
        "foreign member on PATCH",
        &r,
    )?;
    check_eq(
        group_members(&acme, &acme_gid).await?,
        set([acme_uid.clone()]),
        "acme group holds only acme's user after PATCH",
        &r,
    )?;
    let r = acme.put(&format!("/Groups/{acme_gid}"), &json!({"schemas": [GROUP_URN], "displayName": "Engineering", "members": [{"value": uid}, {"value": acme_uid}]})).await?;
    check(
        r.status == 200 || r.status == 400 || r.status == 404,
        "foreign member on PUT",
        &r,
    )?;
    check_eq(
        group_members(&acme, &acme_gid).await?,
        set([acme_uid.clone()]),
        "acme group holds only acme's user after PUT",
        &r,
    )?;
    let r = dflt.get(&format!("/Users/{uid}")).await?;
    check(
        !r.body["groups"]
            .as_array()
            .is_some_and(|a| a.iter().any(|g| g["value"] == json!(acme_gid))),
        "foreign group never reaches User.groups",
        &r,
    )?;

    // And symmetrically default cannot see acme.
    dflt.get(&format!("/Users/{acme_uid}"))
        .await?
        .expect_error(404, None)?;
    dflt.get(&format!("/Groups/{acme_gid}"))
        .await?
        .expect_error(404, None)?;
    let r = dflt.get("/Users").await?;
    check_eq(
        r.list_ids()?,
        vec![uid.clone()],
        "default sees only its own user",
        &r,
    )?;
    let r = dflt.get("/Groups").await?;
    check_eq(
        r.list_ids()?,
        vec![gid.clone()],
        "default sees only its own group",
        &r,
    )?;
    let r = dflt.get(&format!("/Users/{uid}")).await?;
    check(
        !r.body["groups"]
            .as_array()
            .is_some_and(|a| a.iter().any(|g| g["value"] == json!(acme_gid))),
        "no foreign group in User.groups",
        &r,
    )?;
    Ok(())
}

async fn token_revoke_and_rotation(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let first = cp.scim();
    let id = create_user(&first, "rot@example.com").await?;

    // Rotation: a second token works alongside the first.
    let new_token = cp.create_token("default", "Entra rotation").await?;
    if new_token == cp.token {
        bail!("a new token must differ from the existing one");
    }
    let second = cp.scim_with(Some(&new_token));
    second.get(&format!("/Users/{id}")).await?.expect(200)?;
    first.get(&format!("/Users/{id}")).await?.expect(200)?;
    // Both keep working while interleaved.
    for _ in 0..3 {
        first.get("/Users").await?.expect(200)?;
        second.get("/Users").await?.expect(200)?;
    }

    // Revoke the first (by its prefix, read from the list): 401 at the very next request.
    let list = cp
        .cli_ok(&["scim-token", "list", "--org", "default"])
        .await?;
    let first_prefix = token_prefix_in(&list, &cp.token)
        .ok_or_else(|| anyhow::anyhow!("no prefix of the first token in the list:\n{list}"))?;
    cp.cli_ok(&["scim-token", "revoke", "--org", "default", &first_prefix])
        .await?;
    first
        .get(&format!("/Users/{id}"))
        .await?
        .expect_error(401, None)?;
    first
        .post("/Users", &user("after-revoke@example.com"))
        .await?
        .expect_error(401, None)?;
    second.get(&format!("/Users/{id}")).await?.expect(200)?;
    let r = second
        .get_q(
            "/Users",
            &[("filter", "userName eq \"after-revoke@example.com\"")],
        )
        .await?;
    check_eq(
        r.total()?,
        0,
        "the revoked token's POST created nothing",
        &r,
    )?;

    // Revoke by id: a third token, revoked through its id column.
    let third_token = cp.create_token("default", "third").await?;
    let third = cp.scim_with(Some(&third_token));
    third.get("/Users").await?.expect(200)?;
    let list = cp
        .cli_ok(&["scim-token", "list", "--org", "default"])
        .await?;
    let row = list
        .lines()
        .find(|l| l.contains("third"))
        .ok_or_else(|| anyhow::anyhow!("label \"third\" not listed:\n{list}"))?;
    let token_id = cells(row)
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("empty row {row:?}"))?;
    cp.cli_ok(&["scim-token", "revoke", "--org", "default", &token_id])
        .await?;
    third.get("/Users").await?.expect_error(401, None)?;
    second.get("/Users").await?.expect(200)?;

    // Revocation survives a restart.
    let mut cp = cp;
    cp.restart_after_kill9().await?;
    cp.scim_with(Some(&cp.token.clone()))
        .get("/Users")
        .await?
        .expect_error(401, None)?;
    cp.scim_with(Some(&third_token))
        .get("/Users")
        .await?
        .expect_error(401, None)?;
    cp.scim_with(Some(&new_token))
        .get("/Users")
        .await?
        .expect(200)?;
    Ok(())
}

/// Splits a table row into cells (whitespace or `|`/box-drawing separated).
fn cells(row: &str) -> Vec<String> {
    row.split(|c: char| c.is_whitespace() || c == '|' || c == '│' || c == '┃')
        .map(|c| c.trim_matches(|ch: char| ch == '…' || ch == '.' || ch == '*'))
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// The cell of `list` that is a proper, non-trivial prefix of `token`.
fn token_prefix_in(list: &str, token: &str) -> Option<String> {
    list.lines()
        .flat_map(cells)
        .find(|c| c.len() >= 4 && c.len() < token.len() && token.starts_with(c.as_str()))
}

async fn token_cli(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    cp.create_org("globex").await?;
    let t1 = cp.create_token("globex", "Okta production").await?;
    let t2 = cp.create_token("globex", "Entra staging").await?;
    cp.scim_with(Some(&t1)).get("/Users").await?.expect(200)?;

    let list = cp
        .cli_ok(&["scim-token", "list", "--org", "globex"])
        .await?;
    let lower = list.to_lowercase();
    for col in ["id", "prefix", "label", "created", "last used", "revoked"] {
        if !lower.contains(col) {
            bail!("`scim-token list` must have a {col:?} column:\n{list}");
        }
    }
    for label in ["Okta production", "Entra staging"] {
        if !list.contains(label) {
            bail!("`scim-token list` must show the label {label:?}:\n{list}");
        }
    }
    for (t, label) in [(&t1, "Okta production"), (&t2, "Entra staging")] {
        if list.contains(t.as_str()) {
            bail!("`scim-token list` must never print a token secret:\n{list}");
        }
        let row = list.lines().find(|l| l.contains(label)).unwrap_or_default();
        if token_prefix_in(row, t).is_none() {
            bail!("the row of {label:?} must show a short non-secret prefix of its token ({}…):\n{list}", &t[..t.len().min(8)]);
        }
    }
    // Another org's list does not show globex's tokens.
    let default_list = cp
        .cli_ok(&["scim-token", "list", "--org", "default"])
        .await?;
    if default_list.contains("Okta production") || default_list.contains("Entra staging") {
        bail!("default's token list shows globex's tokens:\n{default_list}");
    }

    // The environment variable works in place of --database-url.
    let out = run_cli_env(
        &["scim-token", "list", "--org", "globex"],
        &[("PALISADE_DATABASE_URL", &cp.db.url)],
    )
    .await?;
    if !out.status.success() || !String::from_utf8_lossy(&out.stdout).contains("Okta production") {
        bail!(
            "PALISADE_DATABASE_URL must be honoured: {}",
            describe_output(&["scim-token", "list", "--org", "globex"], &out)
        );
    }

    // Revoking shows in the list, and a token of one org cannot be revoked through another.
    let p2 = token_prefix_in(&list, &t2).unwrap_or_default();
    let out = cp
        .cli(&["scim-token", "revoke", "--org", "default", &p2])
        .await?;
    if out.status.success() {
        bail!(
            "revoking globex's token with --org default must fail: {}",
            describe_output(&["scim-token", "revoke", "--org", "default", &p2], &out)
        );
    }
    cp.scim_with(Some(&t2)).get("/Users").await?.expect(200)?;
    let before = list
        .lines()
        .find(|l| l.contains("Entra staging"))
        .unwrap_or_default()
        .to_string();
    cp.cli_ok(&["scim-token", "revoke", "--org", "globex", &p2])
        .await?;
    let after_list = cp
        .cli_ok(&["scim-token", "list", "--org", "globex"])
        .await?;
    let after = after_list
        .lines()
        .find(|l| l.contains("Entra staging"))
        .unwrap_or_default()
        .to_string();
    if after.is_empty() || after == before {
        bail!("a revoked token must stay listed and show as revoked:\nbefore: {before}\nafter:  {after}");
    }
    cp.scim_with(Some(&t2))
        .get("/Users")
        .await?
        .expect_error(401, None)?;
    cp.scim_with(Some(&t1)).get("/Users").await?.expect(200)?;

    // Errors are reported with a non-zero exit status.
    for args in [
        vec![
            "scim-token",
            "create",
            "--org",
            "no-such-org",
            "--label",
            "x",
        ],
        vec!["scim-token", "list", "--org", "no-such-org"],
        vec!["scim-token", "revoke", "--org", "globex", "no-such-token"],
    ] {
        let out = cp.cli(&args).await?;
        if out.status.success() {
            bail!("expected failure: {}", describe_output(&args, &out));
        }
    }
    Ok(())
}
