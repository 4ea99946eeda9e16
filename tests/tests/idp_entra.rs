//! Microsoft Entra ID's provisioning requests, replayed literally: the legacy style (capitalised
//! ops, string booleans, member removal by value) and the `aadOptscim062020` style.

use anyhow::{bail, Result};
use palisade_tests::*;
use serde_json::{json, Value};

backend_tests! {
    entra_test_connection => entra_test_connection_sqlite, entra_test_connection_postgres;
    entra_user_lifecycle_legacy => entra_user_lifecycle_legacy_sqlite, entra_user_lifecycle_legacy_postgres;
    entra_user_optscim062020 => entra_user_optscim062020_sqlite, entra_user_optscim062020_postgres;
    entra_groups => entra_groups_sqlite, entra_groups_postgres;
}

const ENTRA_UA: &str = "Microsoft.AAD.Provisioning";

fn entra_user(user_name: &str, external_id: &str) -> Value {
    json!({
        "schemas": [USER_URN, ENTERPRISE_URN],
        "externalId": external_id,
        "userName": user_name,
        "active": true,
        "displayName": null,
        "title": null,
        "nickName": null,
        "emails": [{"primary": true, "type": "work", "value": format!("mail.{user_name}")}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName", "middleName": null},
        "roles": [],
        ENTERPRISE_URN: {"employeeNumber": "701984", "department": null, "costCenter": "4130"}
    })
}

async fn entra_test_connection(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim().with_user_agent(ENTRA_UA);
    let guid = "a7d3c9e4-5b1f-4e2a-9c8d-3f6b2a1e0d9c";
    let r = scim
        .get_q("/Users", &[("filter", &format!("userName eq \"{guid}\""))])
        .await?;
    r.list()?;
    check_eq(
        r.total()?,
        0,
        "Test Connection filter on a random GUID: 200 with an empty list",
        &r,
    )?;
    let r = scim
        .get_q(
            "/Groups",
            &[
                ("excludedAttributes", "members"),
                ("filter", &format!("displayName eq \"{guid}\"")),
            ],
        )
        .await?;
    r.list()?;
    check_eq(r.total()?, 0, "group lookup on a random GUID", &r)?;
    Ok(())
}

/// Legacy (default) Entra behaviour.
async fn entra_user_lifecycle_legacy(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim().with_user_agent(ENTRA_UA);
    let un = "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@testuser.com";

    // Lookup, create with nulls and roles: [].
    let r = scim
        .get_q("/Users", &[("filter", &format!("userName eq \"{un}\""))])
        .await?;
    check_eq(r.list()?.len(), 0, "no such user yet", &r)?;
    let r = scim
        .post(
            "/Users",
            &entra_user(un, "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"),
        )
        .await?;
    r.expect(201)?;
    let id = r.id()?;
    check(
        r.body.get("title").is_none_or(Value::is_null),
        "null attributes are ignored",
        &r,
    )?;
    check_eq(
        r.body[ENTERPRISE_URN]["employeeNumber"].as_str(),
        Some("701984"),
        "enterprise employeeNumber",
        &r,
    )?;
    let path = format!("/Users/{id}");

    // A second user, for the unquoted-value filter and as a manager.
    let r = scim
        .post("/Users", &entra_user("jyoung@testuser.com", "jyoung"))
        .await?;
    r.expect(201)?;
    let mgr = r.id()?;

    // Filters Entra sends: userName, externalId (also unquoted), emails[type eq "work"].value, and.
    let r = scim
        .get_q("/Users", &[("filter", &format!("userName eq \"{un}\""))])
        .await?;
    check_eq(r.list_ids()?, vec![id.clone()], "filter userName eq", &r)?;
    let r = scim
        .get_q(
            "/Users",
            &[(
                "filter",
                "externalId eq \"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef\"",
            )],
        )
        .await?;
    check_eq(r.list_ids()?, vec![id.clone()], "filter externalId eq", &r)?;
    let r = scim
        .get_q("/Users", &[("filter", "externalId eq jyoung")])
        .await?;
    check_eq(
        r.list_ids()?,
        vec![mgr.clone()],
        "filter with an unquoted value (externalId eq jyoung)",
        &r,
    )?;
    let r = scim
        .get_q(
            "/Users",
            &[(
                "filter",
                &format!("emails[type eq \"work\"].value eq \"mail.{un}\""),
            )],
        )
        .await?;
    check_eq(
        r.list_ids()?,
        vec![id.clone()],
        "filter emails[type eq \"work\"].value eq",
        &r,
    )?;
    let r = scim.get_q("/Users", &[("filter", &format!("userName eq \"{un}\" and externalId eq \"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef\""))]).await?;
    check_eq(r.list_ids()?, vec![id.clone()], "filter with and", &r)?;

    // Capitalised ops, dotted and URN paths, value-path replace.
    let r = scim
        .patch_ops(
            &path,
            json!([
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Sales"},
                {"op": "Add", "path": "title", "value": "Engineer"}
            ]),
        )
        .await?;
    r.expect(200)?;
    let work: Vec<&Value> = r.body["emails"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["type"] == "work").collect())
        .unwrap_or_default();
    check(
        work.len() == 1 && work[0]["value"] == "updatedEmail@microsoft.com",
        "work email replaced in place",
        &r,
    )?;
    check_eq(
        r.body["name"]["familyName"].as_str(),
        Some("updatedFamilyName"),
        "name.familyName",
        &r,
    )?;
    check_eq(
        r.body["name"]["givenName"].as_str(),
        Some("givenName"),
        "name.givenName kept",
        &r,
    )?;
    check_eq(
        r.body[ENTERPRISE_URN]["department"].as_str(),
        Some("Sales"),
        "URN-prefixed path",
        &r,
    )?;
    check_eq(
        r.body[ENTERPRISE_URN]["employeeNumber"].as_str(),
        Some("701984"),
        "other enterprise attributes kept",
        &r,
    )?;
    check_eq(r.body["title"].as_str(), Some("Engineer"), "title", &r)?;

    // Manager: Add with an array value carrying "$ref": null.
    let r = scim
        .patch_ops(
            &path,
            json!([{"op": "Add", "path": "manager", "value": [{"$ref": null, "value": mgr}]}]),
        )
        .await?;
    r.expect(200)?;
    check_eq(
        r.body[ENTERPRISE_URN]["manager"]["value"].as_str(),
        Some(mgr.as_str()),
        "enterprise manager.value",
        &r,
    )?;

    // String booleans: "False" deactivates (soft delete); the user stays visible.
    let r = scim
        .patch_ops(
            &path,
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )
        .await?;
    r.expect(200)?;
    check_eq(
        r.body["active"].clone(),
        json!(false),
        "active is a real boolean false",
        &r,
    )?;
    let r = scim.get(&path).await?;
    r.expect(200)?;
    check_eq(
        r.body["active"].clone(),
        json!(false),
        "inactive user still returned by GET",
        &r,
    )?;
    let r = scim
        .get_q("/Users", &[("filter", &format!("userName eq \"{un}\""))])
        .await?;
    check_eq(
        r.list_ids()?,
        vec![id.clone()],
        "inactive user still found by filter",
        &r,
    )?;
    let r = scim
        .patch_ops(
            &path,
            json!([{"op": "Replace", "path": "active", "value": "True"}]),
        )
        .await?;
    r.expect(200)?;
    check_eq(
        r.body["active"].clone(),
        json!(true),
        "\"True\" reactivates",
        &r,
    )?;

    // Value-path add on an absent array creates the element.
    let bare = create_user(&scim, "bare@testuser.com").await?;
    let r = scim
        .patch_ops(
            &format!("/Users/{bare}"),
            json!([
                {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "bare@work.example"},
                {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100"}
            ]),
        )
        .await?;
    r.expect(200)?;
    let emails = r.body["emails"].as_array().cloned().unwrap_or_default();
    check(
        emails.len() == 1
            && emails[0]["type"] == "work"
            && emails[0]["value"] == "bare@work.example",
        "emails[type eq work].value created",
        &r,
    )?;
    let phones = r.body["phoneNumbers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    check(
        phones.len() == 1 && phones[0]["type"] == "mobile" && phones[0]["value"] == "+1 555 0100",
        "phoneNumbers[type eq mobile].value created",
        &r,
    )?;

    // Hard delete.
    scim.delete(&path).await?.expect(204)?;
    scim.get(&path).await?.expect_error(404, None)?;
    let r = scim
        .get_q("/Users", &[("filter", &format!("userName eq \"{un}\""))])
        .await?;
    check_eq(r.total()?, 0, "deleted user gone from filters", &r)?;
    Ok(())
}

/// With the `aadOptscim062020` flag: lowercase ops, real booleans, path-less multi-attribute
/// replace with dotted and URN-prefixed keys.
async fn entra_user_optscim062020(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim().with_user_agent(ENTRA_UA);
    let id = create_user_body(&scim, &entra_user("alex@contoso.com", "ext-alex")).await?;
    let mgr = create_user(&scim, "boss@contoso.com").await?;
    let path = format!("/Users/{id}");

    let r = scim
        .patch_ops(
            &path,
            json!([{"op": "replace", "value": {
                "displayName": "Alex Wilber",
                "name.givenName": "Alex",
                "name.familyName": "Wilber",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "12345",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Retail",
                "active": false
            }}]),
        )
        .await?;
    r.expect(200)?;
    check_eq(
        r.body["displayName"].as_str(),
        Some("Alex Wilber"),
        "displayName",
        &r,
    )?;
    check_eq(
        r.body["name"]["givenName"].as_str(),
        Some("Alex"),
        "dotted key name.givenName",
        &r,
    )?;
    check_eq(
        r.body["name"]["familyName"].as_str(),
        Some("Wilber"),
        "dotted key name.familyName",
        &r,
    )?;
    check_eq(
        r.body["name"]["formatted"].as_str(),
        Some("givenName familyName"),
        "other name parts kept",
        &r,
    )?;
    check_eq(
        r.body[ENTERPRISE_URN]["employeeNumber"].as_str(),
        Some("12345"),
        "URN-prefixed key employeeNumber",
        &r,
    )?;
    check_eq(
        r.body[ENTERPRISE_URN]["department"].as_str(),
        Some("Retail"),
        "URN-prefixed key department",
        &r,
    )?;
    check_eq(
        r.body[ENTERPRISE_URN]["costCenter"].as_str(),
        Some("4130"),
        "unmentioned enterprise attribute kept",
        &r,
    )?;
    check_eq(r.body["active"].clone(), json!(false), "active false", &r)?;

    // The Microsoft "known issues" example also uses a value-path key inside the value object.
    let r = scim
        .patch_ops(
            &path,
            json!([{"op": "replace", "value": {
                "emails[type eq \"work\"].value": "alex.wilber@contoso.com",
                "externalId": "Eqpj"
            }}]),
        )
        .await?;
    r.expect(200)?;
    let work: Vec<&Value> = r.body["emails"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["type"] == "work").collect())
        .unwrap_or_default();
    check(
        work.len() == 1 && work[0]["value"] == "alex.wilber@contoso.com",
        "value-path key emails[type eq \"work\"].value",
        &r,
    )?;
    check_eq(
        r.body["externalId"].as_str(),
        Some("Eqpj"),
        "externalId",
        &r,
    )?;

    let r = scim.get(&path).await?;
    check_eq(
        r.body["name"]["familyName"].as_str(),
        Some("Wilber"),
        "persisted",
        &r,
    )?;
    check_eq(
        r.body["active"].clone(),
        json!(false),
        "persisted inactive",
        &r,
    )?;

    let r = scim
        .patch_ops(
            &path,
            json!([{"op": "replace", "path": "active", "value": true}]),
        )
        .await?;
    r.expect(200)?;
    check_eq(
        r.body["active"].clone(),
        json!(true),
        "real boolean true",
        &r,
    )?;

    // Group membership in the new style: add, then remove via members[value eq "id"].
    let g = create_group(&scim, "Retail", &[]).await?;
    let gpath = format!("/Groups/{g}");
    scim.patch_ops(
        &gpath,
        json!([{"op": "add", "path": "members", "value": [{"value": id}, {"value": mgr}]}]),
    )
    .await?
    .expect_group_patch()?;
    scim.patch_ops(
        &gpath,
        json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]),
    )
    .await?
    .expect_group_patch()?;
    let m = group_members(&scim, &g).await?;
    if m != set([mgr.clone()]) {
        bail!("after members[value eq id] removal: {m:?}, expected only the manager");
    }
    Ok(())
}

async fn entra_groups(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim().with_user_agent(ENTRA_UA);
    let u1 = create_user(&scim, "g1@contoso.com").await?;
    let u2 = create_user(&scim, "g2@contoso.com").await?;
    let u3 = create_user(&scim, "g3@contoso.com").await?;

    // Create exactly as the Entra docs show it (with Entra's extra ADSCIM schema URN).
    let r = scim
        .post(
            "/Groups",
            &json!({
                "schemas": [GROUP_URN, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                "displayName": "Sales Team",
                "meta": {"resourceType": "Group"}
            }),
        )
        .await?;
    r.expect(201)?;
    let g = r.id()?;
    let gpath = format!("/Groups/{g}");

    // Lookups with excludedAttributes=members.
    let r = scim
        .get_q(
            "/Groups",
            &[
                ("excludedAttributes", "members"),
                ("filter", "displayName eq \"Sales Team\""),
            ],
        )
        .await?;
    let res = r.list()?;
    check(
        res.len() == 1 && res[0]["id"] == json!(g),
        "group found by displayName",
        &r,
    )?;
    check(
        res[0].get("members").is_none(),
        "excludedAttributes=members honoured in lists",
        &r,
    )?;
    check_eq(
        res[0]["displayName"].as_str(),
        Some("Sales Team"),
        "displayName still returned",
        &r,
    )?;

    // Add members (Entra sends "$ref": null).
    let r = scim
        .patch_ops(&gpath, json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": u1}, {"$ref": null, "value": u2}, {"$ref": null, "value": u3}]}]))
        .await?;
    r.expect_group_patch()?;
    let r = scim
        .get_q(&gpath, &[("excludedAttributes", "members")])
        .await?;
    r.expect(200)?;
    check(
        r.body.get("members").is_none(),
        "excludedAttributes=members honoured on GET by id",
        &r,
    )?;
    check_eq(
        group_members(&scim, &g).await?,
        set([u1.clone(), u2.clone(), u3.clone()]),
        "three members added",
        &r,
    )?;

    // Removal by value without a filter removes only those members.
    let r = scim
        .patch_ops(
            &gpath,
            json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": u1}]}]),
        )
        .await?;
    r.expect_group_patch()?;
    let m = group_members(&scim, &g).await?;
    if m != set([u2.clone(), u3.clone()]) {
        bail!("Entra's Remove path=members value=[u1] must remove only u1, members now {m:?}");
    }

    // Adding an existing member again is harmless.
    scim.patch_ops(
        &gpath,
        json!([{"op": "Add", "path": "members", "value": [{"value": u2}]}]),
    )
    .await?
    .expect_group_patch()?;
    check_eq(
        group_members(&scim, &g).await?,
        set([u2.clone(), u3.clone()]),
        "re-adding a member is idempotent",
        &r,
    )?;

    // Rename.
    scim.patch_ops(
        &gpath,
        json!([{"op": "Replace", "path": "displayName", "value": "Sales Team EMEA"}]),
    )
    .await?
    .expect_group_patch()?;
    let r = scim.get(&gpath).await?;
    check_eq(
        r.body["displayName"].as_str(),
        Some("Sales Team EMEA"),
        "renamed",
        &r,
    )?;
    check_eq(
        r.body["externalId"].as_str(),
        Some("8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"),
        "externalId kept",
        &r,
    )?;

    // Delete.
    scim.delete(&gpath).await?.expect(204)?;
    scim.get(&gpath).await?.expect_error(404, None)?;
    Ok(())
}
