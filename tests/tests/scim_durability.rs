//! A SCIM request that returned success survives `kill -9`; a failed request writes nothing.

use anyhow::{bail, Result};
use palisade_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

backend_tests! {
    survives_kill9 => survives_kill9_sqlite, survives_kill9_postgres;
    failed_requests_write_nothing => failed_requests_write_nothing_sqlite, failed_requests_write_nothing_postgres;
}

async fn survives_kill9(backend: Backend) -> Result<()> {
    let mut cp = ControlPlane::start(backend, &[]).await?;
    let token = cp.token.clone();

    // Round 1: create, patch, group, then SIGKILL right after the last 2xx.
    let scim = cp.scim();
    let doomed = create_user(&scim, "doomed@example.com").await?;
    let id = create_user(&scim, "durable@example.com").await?;
    let gid = create_group(&scim, "Durable", &[&id]).await?;
    scim.patch_ops(
        &format!("/Users/{id}"),
        json!([{"op": "replace", "path": "displayName", "value": "Durable One"}]),
    )
    .await?
    .expect(200)?;
    scim.delete(&format!("/Users/{doomed}"))
        .await?
        .expect(204)?;
    let r = scim
        .patch_ops(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": "active", "value": false}]),
        )
        .await?;
    r.expect(200)?;
    let version = r.body["meta"]["version"].clone();
    let last = scim
        .post("/Users", &user("last-second@example.com"))
        .await?;
    last.expect(201)?;
    let last_id = last.id()?;
    cp.restart_after_kill9().await?;

    if let Some(t) = &cp.printed_token {
        bail!("a restart on a non-empty store must not mint and print a new token (printed {t:?})");
    }
    let scim = cp.scim_with(Some(&token));
    let r = scim.get(&format!("/Users/{id}")).await?;
    r.expect(200)?;
    check(
        r.body["displayName"] == "Durable One" && r.body["active"] == json!(false),
        "patched values survived kill -9",
        &r,
    )?;
    check_eq(
        r.body["meta"]["version"].clone(),
        version,
        "version survived",
        &r,
    )?;
    scim.get(&format!("/Users/{last_id}")).await?.expect(200)?;
    scim.get(&format!("/Users/{doomed}"))
        .await?
        .expect_error(404, None)?;
    check_eq(
        group_members(&scim, &gid).await?,
        set([id.clone()]),
        "group membership survived",
        &r,
    )?;

    // Round 2: group PATCH (204) and a token minted by the CLI, then kill -9 again.
    let extra = create_user(&scim, "extra@example.com").await?;
    scim.patch_ops(
        &format!("/Groups/{gid}"),
        json!([{"op": "add", "path": "members", "value": [{"value": extra}]}]),
    )
    .await?
    .expect_group_patch()?;
    let t2 = cp.create_token("default", "after restart").await?;
    cp.scim_with(Some(&t2)).get("/Users").await?.expect(200)?;
    scim.delete(&format!("/Groups/{gid}")).await?.expect(204)?;
    let g2 = create_group(&scim, "Durable", &[&extra]).await?;
    cp.restart_after_kill9().await?;

    let scim = cp.scim_with(Some(&token));
    scim.get(&format!("/Groups/{gid}"))
        .await?
        .expect_error(404, None)?;
    check_eq(
        group_members(&scim, &g2).await?,
        set([extra.clone()]),
        "recreated group survived",
        &scim.get(&format!("/Groups/{g2}")).await?,
    )?;
    cp.scim_with(Some(&t2)).get("/Users").await?.expect(200)?;
    let r = scim.get("/Users").await?;
    check_eq(r.total()?, 3, "durable + last-second + extra", &r)?;
    Ok(())
}

/// GETs a resource and returns its whole body, compared verbatim before and after failed
/// requests (with the server's base URL, which changes across restarts, replaced).
async fn snapshot(scim: &Scim, path: &str) -> Result<Value> {
    let r = scim.get(path).await?;
    r.expect(200)?;
    let text = serde_json::to_string(&r.body)?.replace(&scim.base, "<base>");
    Ok(serde_json::from_str(&text)?)
}

async fn failed_requests_write_nothing(backend: Backend) -> Result<()> {
    let mut cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    let a = create_user_body(
        &scim,
        &json!({"schemas": [USER_URN], "userName": "a@example.com", "displayName": "A", "title": "Original",
                "emails": [{"value": "a@example.com", "type": "work", "primary": true}]}),
    )
    .await?;
    let b = create_user(&scim, "b@example.com").await?;
    let c = create_user(&scim, "c@example.com").await?;
    let g = create_group(&scim, "Team", &[&a]).await?;
    let g_other = create_group(&scim, "Other Team", &[]).await?;
    let (ua, ub, gp) = (
        format!("/Users/{a}"),
        format!("/Users/{b}"),
        format!("/Groups/{g}"),
    );

    let before_a = snapshot(&scim, &ua).await?;
    let before_b = snapshot(&scim, &ub).await?;
    let before_g = snapshot(&scim, &gp).await?;
    let before_go = snapshot(&scim, &format!("/Groups/{g_other}")).await?;

    let mut failures: Vec<(String, Resp)> = Vec::new();
    let mut expect_fail = |what: &str, r: Resp, status: u16| {
        if r.status != status {
            failures.push((format!("{what}: expected {status}"), r));
        }
    };

    // Duplicate creates.
    expect_fail("duplicate userName POST", scim.post("/Users", &json!({"schemas": [USER_URN], "userName": "a@example.com", "displayName": "Impostor", "title": "Impostor"})).await?, 409);
    expect_fail(
        "duplicate displayName POST",
        scim.post(
            "/Groups",
            &json!({"schemas": [GROUP_URN], "displayName": "Team", "members": [{"value": b}]}),
        )
        .await?,
        409,
    );

    // A PATCH whose middle operation is invalid: the first and last must not be applied.
    expect_fail(
        "PATCH with an invalid op in the middle",
        scim.patch_ops(
            &ua,
            json!([
                {"op": "replace", "path": "displayName", "value": "Changed"},
                {"op": "remove"},
                {"op": "replace", "path": "title", "value": "Changed"}
            ]),
        )
        .await?,
        400,
    );
    expect_fail(
        "PATCH with an invalid path in the middle",
        scim.patch_ops(
            &ua,
            json!([
                {"op": "add", "path": "nickName", "value": "nick"},
                {"op": "replace", "path": "emails[type eq", "value": "x"},
                {"op": "replace", "path": "active", "value": false}
            ]),
        )
        .await?,
        400,
    );
    expect_fail(
        "PATCH with a bad value type last",
        scim.patch_ops(
            &ua,
            json!([
                {"op": "replace", "path": "displayName", "value": "Changed"},
                {"op": "replace", "path": "active", "value": "maybe"}
            ]),
        )
        .await?,
        400,
    );
    // A PATCH that would collide on userName after other ops.
    expect_fail(
        "PATCH renaming onto an existing userName",
        scim.patch_ops(
            &ub,
            json!([
                {"op": "replace", "path": "displayName", "value": "Changed"},
                {"op": "replace", "path": "userName", "value": "A@EXAMPLE.COM"}
            ]),
        )
        .await?,
        409,
    );
    // PUT collisions and invalid PUTs.
    expect_fail(
        "PUT onto an existing userName",
        scim.put(
            &ub,
            &json!({"schemas": [USER_URN], "userName": "a@example.com", "displayName": "Changed"}),
        )
        .await?,
        409,
    );
    expect_fail(
        "PUT without userName",
        scim.put(
            &ua,
            &json!({"schemas": [USER_URN], "displayName": "Changed"}),
        )
        .await?,
        400,
    );
    // Group PATCH: member add followed by an invalid op; rename onto an existing name with a member add.
    expect_fail(
        "group PATCH add then invalid",
        scim.patch_ops(
            &gp,
            json!([
                {"op": "add", "path": "members", "value": [{"value": b}, {"value": c}]},
                {"op": "remove"}
            ]),
        )
        .await?,
        400,
    );
    expect_fail(
        "group PATCH remove then invalid path",
        scim.patch_ops(
            &gp,
            json!([
                {"op": "remove", "path": format!("members[value eq \"{a}\"]")},
                {"op": "add", "path": "members[value eq", "value": [{"value": b}]}
            ]),
        )
        .await?,
        400,
    );
    expect_fail(
        "group PATCH rename onto an existing displayName",
        scim.patch_ops(
            &format!("/Groups/{g_other}"),
            json!([
                {"op": "add", "path": "members", "value": [{"value": b}]},
                {"op": "replace", "path": "displayName", "value": "Team"}
            ]),
        )
        .await?,
        409,
    );
    // Stale If-Match.
    let stale = "W/\"definitely-stale\"";
    expect_fail(
        "PATCH with a stale If-Match",
        scim.send(
            Method::PATCH,
            &ua,
            Some(&patch_body(
                json!([{"op": "replace", "path": "title", "value": "Changed"}]),
            )),
            &[("If-Match", stale)],
        )
        .await?,
        412,
    );
    expect_fail(
        "DELETE with a stale If-Match",
        scim.send(Method::DELETE, &ub, None, &[("If-Match", stale)])
            .await?,
        412,
    );

    if !failures.is_empty() {
        let msg: Vec<String> = failures
            .iter()
            .map(|(w, r)| format!("{w}, got:\n{r}"))
            .collect();
        bail!("requests that must fail did not:\n{}", msg.join("\n"));
    }

    let verify = |scim: Scim| {
        let (ua, ub, gp, go) = (
            ua.clone(),
            ub.clone(),
            gp.clone(),
            format!("/Groups/{g_other}"),
        );
        let (ba, bb, bg, bgo) = (
            before_a.clone(),
            before_b.clone(),
            before_g.clone(),
            before_go.clone(),
        );
        async move {
            for (p, before) in [(&ua, &ba), (&ub, &bb), (&gp, &bg), (&go, &bgo)] {
                let now = snapshot(&scim, p).await?;
                if &now != before {
                    bail!("a failed request changed {p}:\nbefore: {before}\nnow:    {now}");
                }
            }
            let r = scim.get("/Users").await?;
            check_eq(
                r.total()?,
                3,
                "no user was created by the failed requests",
                &r,
            )?;
            let r = scim.get("/Groups").await?;
            check_eq(
                r.total()?,
                2,
                "no group was created by the failed requests",
                &r,
            )?;
            Ok(())
        }
    };
    verify(scim.clone()).await?;
    // And nothing half-written shows up after a crash either.
    let token = cp.token.clone();
    cp.restart_after_kill9().await?;
    verify(cp.scim_with(Some(&token))).await?;
    Ok(())
}
