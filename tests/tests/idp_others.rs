//! JumpCloud, OneLogin and Google's provisioning client.

use anyhow::{bail, Result};
use palisade_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

backend_tests! {
    jumpcloud_test_connection => jumpcloud_test_connection_sqlite, jumpcloud_test_connection_postgres;
    onelogin_no_user_agent_group_patch => onelogin_no_user_agent_group_patch_sqlite, onelogin_no_user_agent_group_patch_postgres;
    google_application_json_scim1_urn => google_application_json_scim1_urn_sqlite, google_application_json_scim1_urn_postgres;
}

/// Test Connection creates a test user and a test group, then deletes both; clicking it twice
/// must work too (a deleted userName / displayName can be provisioned again).
async fn jumpcloud_test_connection(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim().with_user_agent("JumpCloud SCIM Client");
    let mut previous_ids = Vec::new();
    for round in 0..2 {
        let r = scim
            .post(
                "/Users",
                &json!({
                    "schemas": [USER_URN],
                    "userName": "jumpcloud.test.user@jumpcloud.com",
                    "name": {"givenName": "JumpCloud", "familyName": "TestUser"},
                    "emails": [{"value": "jumpcloud.test.user@jumpcloud.com", "type": "work", "primary": true}],
                    "active": true
                }),
            )
            .await?;
        r.expect(201)?;
        let uid = r.id()?;
        if previous_ids.contains(&uid) {
            bail!("round {round}: re-created user got a previously used id {uid}");
        }
        let r = scim
            .post(
                "/Groups",
                &json!({"schemas": [GROUP_URN], "displayName": "JumpCloud Test Group"}),
            )
            .await?;
        r.expect(201)?;
        let gid = r.id()?;
        previous_ids.push(uid.clone());

        let r = scim.delete(&format!("/Users/{uid}")).await?;
        r.expect(204)?;
        check(r.text.is_empty(), "204 has no body", &r)?;
        scim.delete(&format!("/Groups/{gid}")).await?.expect(204)?;
        scim.get(&format!("/Users/{uid}"))
            .await?
            .expect_error(404, None)?;
        scim.get(&format!("/Groups/{gid}"))
            .await?
            .expect_error(404, None)?;
        scim.delete(&format!("/Users/{uid}"))
            .await?
            .expect_error(404, None)?;
        let r = scim
            .get_q(
                "/Users",
                &[(
                    "filter",
                    "userName eq \"jumpcloud.test.user@jumpcloud.com\"",
                )],
            )
            .await?;
        check_eq(r.total()?, 0, "deleted test user no longer listed", &r)?;
    }
    Ok(())
}

/// OneLogin sends no User-Agent at all and manages membership with PATCH /Groups/{id}.
async fn onelogin_no_user_agent_group_patch(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let auth = format!("Bearer {}", cp.token);
    let hdrs = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/scim+json"),
    ];
    let send = |method: &'static str, target: String, body: Value| {
        let addr = cp.addr.clone();
        let bytes = if body.is_null() {
            vec![]
        } else {
            serde_json::to_vec(&body).unwrap_or_default()
        };
        let target = format!("/scim/v2{target}");
        async move { raw_http(&addr, method, &target, &hdrs, &bytes).await }
    };
    let expect = |r: &RawResp, status: u16, what: &str| -> Result<()> {
        if r.status != status {
            bail!("OneLogin {what}: expected {status}, got {r:?}");
        }
        if !r.body.is_empty()
            && !r
                .header("content-type")
                .unwrap_or_default()
                .starts_with("application/scim+json")
        {
            bail!("OneLogin {what}: Content-Type must be application/scim+json: {r:?}");
        }
        Ok(())
    };

    let mut users = Vec::new();
    for n in ["ol.one@example.com", "ol.two@example.com"] {
        let r = send("POST", "/Users".into(), json!({"schemas": [USER_URN], "userName": n, "name": {"givenName": "One", "familyName": "Login"}, "active": true})).await?;
        expect(&r, 201, "create user")?;
        users.push(r.json()["id"].as_str().unwrap_or_default().to_string());
    }
    let r = send(
        "POST",
        "/Groups".into(),
        json!({"schemas": [GROUP_URN], "displayName": "OneLogin Admins"}),
    )
    .await?;
    expect(&r, 201, "create group")?;
    let gid = r.json()["id"].as_str().unwrap_or_default().to_string();

    let r = send("PATCH", format!("/Groups/{gid}"), patch_body(json!([{"op": "add", "path": "members", "value": [{"value": users[0]}, {"value": users[1]}]}]))).await?;
    expect(&r, GROUP_PATCH_STATUS, "PATCH add members")?;
    let r = send("GET", format!("/Groups/{gid}"), Value::Null).await?;
    expect(&r, 200, "GET group")?;
    if member_ids(&r.json()) != set(users.clone()) {
        bail!("after OneLogin add: {r:?}");
    }

    let r = send(
        "PATCH",
        format!("/Groups/{gid}"),
        patch_body(
            json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", users[0])}]),
        ),
    )
    .await?;
    expect(&r, GROUP_PATCH_STATUS, "PATCH remove member")?;
    let r = send("GET", format!("/Groups/{gid}"), Value::Null).await?;
    expect(&r, 200, "GET group")?;
    if member_ids(&r.json()) != set([users[1].clone()]) {
        bail!("after OneLogin remove: {r:?}");
    }

    // Deprovisioning a user without any User-Agent either.
    let r = send(
        "PATCH",
        format!("/Users/{}", users[1]),
        patch_body(json!([{"op": "replace", "path": "active", "value": false}])),
    )
    .await?;
    expect(&r, 200, "PATCH deactivate user")?;
    if r.json()["active"] != json!(false) {
        bail!("OneLogin deactivation not applied: {r:?}");
    }
    Ok(())
}

/// Google's client: `Content-Type: application/json` and the SCIM 1.0 core URN beside 2.0.
async fn google_application_json_scim1_urn(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim().with_user_agent("Google-Cloud-Identity-SCIM");
    let json_hdrs = [("Content-Type", "application/json"), ("Accept", "*/*")];

    let body = json!({
        "schemas": [SCIM1_CORE_URN, USER_URN],
        "userName": "gwen@example.org",
        "name": {"givenName": "Gwen", "familyName": "Stacy"},
        "emails": [{"value": "gwen@example.org", "type": "work", "primary": true}],
        "active": true
    });
    let r = scim
        .send(Method::POST, "/Users", Some(&body), &json_hdrs)
        .await?;
    r.expect(201)?;
    let id = r.id()?;
    check_eq(
        r.body["userName"].as_str(),
        Some("gwen@example.org"),
        "created from application/json",
        &r,
    )?;
    check(
        r.body["schemas"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == USER_URN)),
        "response lists the SCIM 2.0 User schema",
        &r,
    )?;

    let r = scim
        .send(
            Method::GET,
            &format!("/Users/{id}"),
            None,
            &[("Accept", "*/*")],
        )
        .await?;
    r.expect(200)?;

    // Suspension as a full replace with application/json.
    let mut full = body.clone();
    full["active"] = json!(false);
    let r = scim
        .send(
            Method::PUT,
            &format!("/Users/{id}"),
            Some(&full),
            &json_hdrs,
        )
        .await?;
    r.expect(200)?;
    check_eq(
        r.body["active"].clone(),
        json!(false),
        "PUT with application/json",
        &r,
    )?;

    let p = json!({"schemas": [PATCH_URN], "Operations": [{"op": "replace", "path": "name.givenName", "value": "Gwendolyn"}]});
    let r = scim
        .send(Method::PATCH, &format!("/Users/{id}"), Some(&p), &json_hdrs)
        .await?;
    r.expect(200)?;
    check_eq(
        r.body["name"]["givenName"].as_str(),
        Some("Gwendolyn"),
        "PATCH with application/json",
        &r,
    )?;

    let g = json!({"schemas": [SCIM1_CORE_URN, GROUP_URN], "displayName": "Google Synced", "members": [{"value": id}]});
    let r = scim
        .send(Method::POST, "/Groups", Some(&g), &json_hdrs)
        .await?;
    r.expect(201)?;
    check_eq(
        member_ids(&r.body),
        set([id.clone()]),
        "group created from application/json with SCIM 1.0 URN",
        &r,
    )?;

    let s = json!({"schemas": [SEARCH_URN], "filter": "userName eq \"gwen@example.org\""});
    let r = scim
        .send(Method::POST, "/Users/.search", Some(&s), &json_hdrs)
        .await?;
    check_eq(
        r.list_ids()?,
        vec![id.clone()],
        ".search with application/json",
        &r,
    )?;
    Ok(())
}
