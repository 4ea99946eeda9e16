//! Okta's documented SCIM 2.0 request sequences, replayed literally (quirks included).

use anyhow::Result;
use palisade_tests::*;
use serde_json::{json, Value};

backend_tests! {
    okta_test_connection => okta_test_connection_sqlite, okta_test_connection_postgres;
    okta_custom_app_lifecycle => okta_custom_app_lifecycle_sqlite, okta_custom_app_lifecycle_postgres;
    okta_catalog_app_patch => okta_catalog_app_patch_sqlite, okta_catalog_app_patch_postgres;
    okta_push_groups => okta_push_groups_sqlite, okta_push_groups_postgres;
}

const OKTA_UA: &str = "Okta SCIM Client 1.0.0";

fn okta_user(user_name: &str, external_id: &str) -> Value {
    json!({
        "schemas": [USER_URN],
        "userName": user_name,
        "name": {"givenName": "Isabella", "familyName": "Jones"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Isabella Jones",
        "locale": "en-US",
        "externalId": external_id,
        "groups": [],
        "password": "1mz050nq",
        "active": true
    })
}

/// "Test API credentials", plus the spec-test checks on 401 and 404.
async fn okta_test_connection(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim().with_user_agent(OKTA_UA);

    let r = scim.get("/Users?startIndex=1&count=2").await?;
    r.list()?;
    check_eq(
        r.body["startIndex"].as_u64(),
        Some(1),
        "startIndex echoed as a number",
        &r,
    )?;
    check_eq(r.total()?, 0, "empty store has no users", &r)?;

    let r = scim.get("/Groups?startIndex=1&count=100").await?;
    r.list()?;
    check_eq(r.total()?, 0, "empty store has no groups", &r)?;

    // Bad credentials: 401 with a SCIM Error body whose status is "401".
    let bad = cp
        .scim_with(Some("definitely-not-a-valid-token"))
        .with_user_agent(OKTA_UA);
    bad.get("/Users?startIndex=1&count=2")
        .await?
        .expect_error(401, None)?;
    let none = cp.scim_with(None).with_user_agent(OKTA_UA);
    none.get("/Users?startIndex=1&count=2")
        .await?
        .expect_error(401, None)?;

    // Unknown ids: 404 with an Error body and a detail.
    scim.get("/Users/010101010101010101010101")
        .await?
        .expect_error(404, None)?;
    scim.get("/Groups/010101010101010101010101")
        .await?
        .expect_error(404, None)?;
    Ok(())
}

/// App Integration Wizard app: look up, create, duplicate 409, GET + PUT updates, PUT deactivation.
async fn okta_custom_app_lifecycle(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim().with_user_agent(OKTA_UA);
    let un = "isabella.jones@example.com";
    let lookup = format!(
        "/Users?filter={}&startIndex=1&count=100",
        enc(&format!("userName eq \"{un}\""))
    );

    let r = scim.get(&lookup).await?;
    r.list()?;
    check_eq(
        r.total()?,
        0,
        "lookup before create must be 200 with totalResults 0",
        &r,
    )?;

    let r = scim
        .post("/Users", &okta_user(un, "00ujl29u0le5T6Aj10h7"))
        .await?;
    r.expect(201)?;
    let id = r.id()?;
    check_eq(r.body["userName"].as_str(), Some(un), "userName", &r)?;
    check_eq(r.body["active"].as_bool(), Some(true), "active", &r)?;
    check_eq(
        r.body["externalId"].as_str(),
        Some("00ujl29u0le5T6Aj10h7"),
        "externalId",
        &r,
    )?;
    check_eq(
        r.body["name"]["familyName"].as_str(),
        Some("Jones"),
        "name.familyName",
        &r,
    )?;
    check_eq(r.body["locale"].as_str(), Some("en-US"), "locale", &r)?;
    check(
        r.body.get("password").is_none(),
        "password must never be returned",
        &r,
    )?;
    let loc = r.header("location");
    check(loc.is_some(), "201 must carry Location", &r)?;
    check_eq(
        loc.as_deref(),
        r.body["meta"]["location"].as_str(),
        "Location equals meta.location",
        &r,
    )?;
    check(
        loc.as_deref()
            .is_some_and(|l| l.ends_with(&format!("/Users/{id}"))),
        "Location names the new user",
        &r,
    )?;

    // Okta retries a create for an existing user: 409 uniqueness.
    scim.post("/Users", &okta_user(un, "00ujl29u0le5T6Aj10h7"))
        .await?
        .expect_error(409, Some("uniqueness"))?;
    // userName is case-insensitive, for uniqueness too.
    scim.post("/Users", &okta_user("Isabella.Jones@Example.com", "other"))
        .await?
        .expect_error(409, Some("uniqueness"))?;

    // The lookup now finds exactly this user, whatever the case Okta sends.
    for name in [un, "ISABELLA.JONES@EXAMPLE.COM"] {
        let q = format!(
            "/Users?filter={}&startIndex=1&count=100",
            enc(&format!("userName eq \"{name}\""))
        );
        let r = scim.get(&q).await?;
        check_eq(
            r.list_ids()?,
            vec![id.clone()],
            "lookup by userName (case-insensitive)",
            &r,
        )?;
    }

    // Profile update: GET then PUT the whole user.
    let r = scim.get(&format!("/Users/{id}")).await?;
    r.expect(200)?;
    let mut full = r.body.clone();
    full["name"] = json!({"givenName": "Isabella", "familyName": "Jones-Smith"});
    full["displayName"] = json!("Isabella Jones-Smith");
    full["groups"] = json!([]);
    full["password"] = json!("newpassword1");
    let r = scim.put(&format!("/Users/{id}"), &full).await?;
    r.expect(200)?;
    check_eq(
        r.body["name"]["familyName"].as_str(),
        Some("Jones-Smith"),
        "PUT replaced name",
        &r,
    )?;
    check_eq(
        r.body["id"].as_str(),
        Some(id.as_str()),
        "id stable across PUT",
        &r,
    )?;

    // Deactivation is a PUT with active:false.
    let r = scim.get(&format!("/Users/{id}")).await?;
    let mut full = r.body.clone();
    full["active"] = json!(false);
    let r = scim.put(&format!("/Users/{id}"), &full).await?;
    r.expect(200)?;
    check_eq(
        r.body["active"].as_bool(),
        Some(false),
        "PUT deactivated",
        &r,
    )?;

    // Deactivated users stay visible to GET and to the lookup filter.
    let r = scim.get(&format!("/Users/{id}")).await?;
    r.expect(200)?;
    check_eq(
        r.body["active"].as_bool(),
        Some(false),
        "GET after deactivation",
        &r,
    )?;
    check_eq(
        r.body["name"]["familyName"].as_str(),
        Some("Jones-Smith"),
        "deactivation kept the profile",
        &r,
    )?;
    let r = scim.get(&lookup).await?;
    let res = r.list()?;
    check(
        res.len() == 1 && res[0]["active"] == json!(false),
        "deactivated user still found by filter",
        &r,
    )?;

    // Reactivation by PUT.
    let mut full = res[0].clone();
    full["active"] = json!(true);
    let r = scim.put(&format!("/Users/{id}"), &full).await?;
    r.expect(200)?;
    check_eq(
        r.body["active"].as_bool(),
        Some(true),
        "PUT reactivated",
        &r,
    )?;
    Ok(())
}

/// Catalog (OIN) app: path-less replace of `active`, and path-less profile replace.
async fn okta_catalog_app_patch(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim().with_user_agent(OKTA_UA);
    let id = create_user_body(
        &scim,
        &okta_user("john.doe@example.com", "00u1dhhb1fkIGP7RL1d8"),
    )
    .await?;
    let path = format!("/Users/{id}");

    let r = scim
        .patch_ops(
            &path,
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .await?;
    r.expect(200)?;
    check_eq(
        r.body["active"].as_bool(),
        Some(false),
        "PATCH replace active=false answers the user",
        &r,
    )?;
    check_eq(
        r.body["userName"].as_str(),
        Some("john.doe@example.com"),
        "PATCH answer is the full user",
        &r,
    )?;
    let r = scim.get(&path).await?;
    r.expect(200)?;
    check_eq(
        r.body["active"].as_bool(),
        Some(false),
        "deactivated user still readable",
        &r,
    )?;

    let r = scim
        .patch_ops(&path, json!([{"op": "replace", "value": {"active": true}}]))
        .await?;
    r.expect(200)?;
    check_eq(r.body["active"].as_bool(), Some(true), "reactivated", &r)?;

    let r = scim
        .patch_ops(
            &path,
            json!([{"op": "replace", "value": {
                "userName": "john.doe@example.com",
                "name": {"givenName": "Johnny", "familyName": "Doe"},
                "emails": [{"primary": true, "value": "johnny@example.com", "type": "work"}]
            }}]),
        )
        .await?;
    r.expect(200)?;
    check_eq(
        r.body["name"]["givenName"].as_str(),
        Some("Johnny"),
        "path-less profile replace",
        &r,
    )?;
    check_eq(
        r.body["emails"][0]["value"].as_str(),
        Some("johnny@example.com"),
        "emails replaced",
        &r,
    )?;
    check_eq(
        r.body["emails"].as_array().map(Vec::len),
        Some(1),
        "emails replaced, not appended",
        &r,
    )?;
    Ok(())
}

/// Push Groups: lookup, create with empty members, rename, add / remove / whole-list replace, delete.
async fn okta_push_groups(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim().with_user_agent(OKTA_UA);
    let u1 = create_user(&scim, "u1@example.com").await?;
    let u2 = create_user(&scim, "u2@example.com").await?;
    let u3 = create_user(&scim, "u3@example.com").await?;

    let r = scim
        .get(&format!(
            "/Groups?filter={}&startIndex=1&count=100",
            enc("displayName eq \"Engineering\"")
        ))
        .await?;
    r.list()?;
    check_eq(r.total()?, 0, "group lookup before create", &r)?;

    let r = scim
        .post(
            "/Groups",
            &json!({"schemas": [GROUP_URN], "displayName": "Engineering", "members": []}),
        )
        .await?;
    r.expect(201)?;
    let gid = r.id()?;
    check_eq(
        r.body["displayName"].as_str(),
        Some("Engineering"),
        "displayName",
        &r,
    )?;
    check(
        member_ids(&r.body).is_empty(),
        "new group has no members",
        &r,
    )?;
    check(
        r.header("location")
            .is_some_and(|l| l.ends_with(&format!("/Groups/{gid}"))),
        "Location",
        &r,
    )?;
    let gpath = format!("/Groups/{gid}");

    // Rename: path-less replace carrying id and displayName.
    let r = scim
        .patch_ops(
            &gpath,
            json!([{"op": "replace", "value": {"id": gid, "displayName": "Engineering Team"}}]),
        )
        .await?;
    r.expect_group_patch()?;
    let r = scim.get(&gpath).await?;
    check_eq(
        r.body["displayName"].as_str(),
        Some("Engineering Team"),
        "renamed",
        &r,
    )?;
    check_eq(
        r.body["id"].as_str(),
        Some(gid.as_str()),
        "id unchanged",
        &r,
    )?;

    // Add with path "members".
    let r = scim.patch_ops(&gpath, json!([{"op": "add", "path": "members", "value": [{"value": u1, "display": "u1@example.com"}, {"value": u2, "display": "u2@example.com"}]}])).await?;
    r.expect_group_patch()?;
    let m = group_members(&scim, &gid).await?;
    if m != set([u1.clone(), u2.clone()]) {
        anyhow::bail!("after add members: {m:?}, expected u1+u2");
    }

    // Remove with a value filter path.
    let r = scim
        .patch_ops(
            &gpath,
            json!([{"op": "remove", "path": format!("members[value eq \"{u1}\"]")}]),
        )
        .await?;
    r.expect_group_patch()?;
    let m = group_members(&scim, &gid).await?;
    if m != set([u2.clone()]) {
        anyhow::bail!("after remove members[value eq u1]: {m:?}, expected only u2");
    }

    // Path-less replace of the whole member list.
    let r = scim
        .patch_ops(&gpath, json!([{"op": "replace", "value": {"id": gid, "displayName": "Engineering Team", "members": [{"value": u1, "display": "u1@example.com"}, {"value": u3, "display": "u3@example.com"}]}}]))
        .await?;
    r.expect_group_patch()?;
    let m = group_members(&scim, &gid).await?;
    if m != set([u1.clone(), u3.clone()]) {
        anyhow::bail!("after path-less replace of members: {m:?}, expected exactly u1+u3");
    }

    // Okta's duplicate push of the same name: 409.
    scim.post(
        "/Groups",
        &json!({"schemas": [GROUP_URN], "displayName": "Engineering Team", "members": []}),
    )
    .await?
    .expect_error(409, Some("uniqueness"))?;

    // Unlinking a pushed group with "delete the group in the app".
    scim.delete(&gpath).await?.expect(204)?;
    scim.get(&gpath).await?.expect_error(404, None)?;
    // Users are untouched.
    scim.get(&format!("/Users/{u1}")).await?.expect(200)?;
    Ok(())
}
