//! RFC 7643/7644 core behaviour: CRUD, PATCH, filters, paging, projection, sorting, .search,
//! ETags, the enterprise extension, roles, discovery and error bodies.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};
use palisade_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

backend_tests! {
    user_crud => user_crud_sqlite, user_crud_postgres;
    user_patch_semantics => user_patch_semantics_sqlite, user_patch_semantics_postgres;
    filters => filters_sqlite, filters_postgres;
    paging => paging_sqlite, paging_postgres;
    attribute_projection => attribute_projection_sqlite, attribute_projection_postgres;
    sorting => sorting_sqlite, sorting_postgres;
    search_endpoint => search_endpoint_sqlite, search_endpoint_postgres;
    etags => etags_sqlite, etags_postgres;
    enterprise_extension => enterprise_extension_sqlite, enterprise_extension_postgres;
    roles_primary => roles_primary_sqlite, roles_primary_postgres;
    discovery => discovery_sqlite, discovery_postgres;
    errors => errors_sqlite, errors_postgres;
    group_crud => group_crud_sqlite, group_crud_postgres;
}

async fn user_crud(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();

    let r = scim
        .post(
            "/Users",
            &json!({
                "schemas": [USER_URN],
                "id": "client-chosen",
                "meta": {"created": "2000-01-01T00:00:00Z", "version": "W/\"forged\""},
                "UserName": "alice@example.com",
                "name": {"givenName": "Alice", "familyName": "Anderson"},
                "displayName": "Alice Anderson",
                "emails": [{"value": "alice@example.com", "type": "work", "primary": true}],
                "externalId": "ext-1",
                "active": true
            }),
        )
        .await?;
    r.expect(201)?;
    let id = r.id()?;
    check(
        id != "client-chosen" && !id.is_empty(),
        "id is server-assigned (readOnly id in the request ignored)",
        &r,
    )?;
    check_eq(
        r.body["userName"].as_str(),
        Some("alice@example.com"),
        "attribute names are case-insensitive (UserName)",
        &r,
    )?;
    check(
        r.body["schemas"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == USER_URN)),
        "schemas lists the User schema",
        &r,
    )?;
    let meta = &r.body["meta"];
    check_eq(
        meta["resourceType"].as_str(),
        Some("User"),
        "meta.resourceType",
        &r,
    )?;
    check(
        meta["created"].is_string() && meta["lastModified"].is_string(),
        "meta.created / lastModified",
        &r,
    )?;
    check(
        meta["created"] != "2000-01-01T00:00:00Z",
        "readOnly meta.created in the request ignored",
        &r,
    )?;
    check(
        meta["version"].is_string() && meta["version"] != "W/\"forged\"",
        "meta.version server-assigned",
        &r,
    )?;
    check_eq(
        r.header("location").as_deref(),
        meta["location"].as_str(),
        "Location header equals meta.location",
        &r,
    )?;
    check(
        meta["location"]
            .as_str()
            .is_some_and(|l| l == format!("{}/Users/{id}", cp.base_url)),
        "meta.location is the absolute URL",
        &r,
    )?;
    check_eq(
        r.header("etag").as_deref(),
        meta["version"].as_str(),
        "ETag mirrors meta.version",
        &r,
    )?;
    let created = meta["created"].clone();
    let v1 = meta["version"].clone();

    let path = format!("/Users/{id}");
    let r = scim.get(&path).await?;
    r.expect(200)?;
    check_eq(r.body["id"].as_str(), Some(id.as_str()), "GET id", &r)?;
    check_eq(
        r.body["displayName"].as_str(),
        Some("Alice Anderson"),
        "GET displayName",
        &r,
    )?;
    check_eq(
        r.body["externalId"].as_str(),
        Some("ext-1"),
        "GET externalId",
        &r,
    )?;
    check_eq(
        r.body["meta"]["version"].clone(),
        v1.clone(),
        "GET version unchanged",
        &r,
    )?;

    // PUT replaces the whole resource: attributes left out are cleared.
    let r = scim.put(&path, &json!({"schemas": [USER_URN], "userName": "alice@example.com", "displayName": "Alice B", "active": true})).await?;
    r.expect(200)?;
    check_eq(
        r.body["displayName"].as_str(),
        Some("Alice B"),
        "PUT displayName",
        &r,
    )?;
    check(
        r.body
            .get("emails")
            .is_none_or(|e| e.as_array().is_some_and(Vec::is_empty)),
        "PUT without emails clears them",
        &r,
    )?;
    check(
        r.body
            .get("name")
            .is_none_or(|n| n.get("givenName").is_none()),
        "PUT without name clears it",
        &r,
    )?;
    check_eq(
        r.body["meta"]["created"].clone(),
        created.clone(),
        "meta.created unchanged by PUT",
        &r,
    )?;
    check(
        r.body["meta"]["version"] != v1,
        "meta.version changes on PUT",
        &r,
    )?;
    check_eq(
        r.header("etag").as_deref(),
        r.body["meta"]["version"].as_str(),
        "ETag mirrors the new version",
        &r,
    )?;

    // PUT never creates.
    scim.put(
        "/Users/00000000-0000-4000-8000-000000000000",
        &user("ghost@example.com"),
    )
    .await?
    .expect_error(404, None)?;
    let r = scim
        .get_q("/Users", &[("filter", "userName eq \"ghost@example.com\"")])
        .await?;
    check_eq(r.total()?, 0, "PUT to an unknown id created nothing", &r)?;

    // A second user; userName collisions on PUT are 409.
    let bob = create_user(&scim, "bob@example.com").await?;
    scim.put(&format!("/Users/{bob}"), &user("ALICE@example.com"))
        .await?
        .expect_error(409, Some("uniqueness"))?;

    // DELETE: 204 without body, then 404 everywhere.
    let r = scim.delete(&path).await?;
    r.expect(204)?;
    check(r.text.is_empty(), "DELETE 204 has no body", &r)?;
    scim.get(&path).await?.expect_error(404, None)?;
    scim.delete(&path).await?.expect_error(404, None)?;
    scim.put(&path, &user("alice@example.com"))
        .await?
        .expect_error(404, None)?;
    scim.patch_ops(
        &path,
        json!([{"op": "replace", "path": "displayName", "value": "x"}]),
    )
    .await?
    .expect_error(404, None)?;

    // The deleted userName can be provisioned again, as a new resource.
    let r = scim.post("/Users", &user("alice@example.com")).await?;
    r.expect(201)?;
    check(r.id()? != id, "re-provisioned user gets a new id", &r)?;
    let r = scim.get("/Users").await?;
    check_eq(r.total()?, 2, "bob + the new alice", &r)?;
    Ok(())
}

async fn user_patch_semantics(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    let id = create_user_body(
        &scim,
        &json!({
            "schemas": [USER_URN],
            "userName": "pat@example.com",
            "name": {"givenName": "Pat", "familyName": "Smith", "middleName": "Q"},
            "emails": [
                {"value": "pat@work.example", "type": "work", "primary": true},
                {"value": "pat@home.example", "type": "home"}
            ]
        }),
    )
    .await?;
    let path = format!("/Users/{id}");
    let emails = |r: &Resp| r.body["emails"].as_array().cloned().unwrap_or_default();
    let email_of = |r: &Resp, t: &str| emails(r).into_iter().find(|e| e["type"] == t);

    // Path-less add of several attributes.
    let r = scim
        .patch_ops(
            &path,
            json!([{"op": "add", "value": {"title": "Dev", "nickName": "patty"}}]),
        )
        .await?;
    r.expect(200)?;
    check_eq(
        r.body["title"].as_str(),
        Some("Dev"),
        "path-less add title",
        &r,
    )?;
    check_eq(
        r.body["nickName"].as_str(),
        Some("patty"),
        "path-less add nickName",
        &r,
    )?;
    check_eq(
        r.body["userName"].as_str(),
        Some("pat@example.com"),
        "PATCH answers the full user",
        &r,
    )?;

    // Replace on an absent attribute acts as add.
    let r = scim
        .patch_ops(
            &path,
            json!([{"op": "replace", "path": "userType", "value": "Employee"}]),
        )
        .await?;
    r.expect(200)?;
    check_eq(
        r.body["userType"].as_str(),
        Some("Employee"),
        "replace on absent attribute adds it",
        &r,
    )?;

    // Replace of a complex attribute leaves unspecified sub-attributes alone (RFC 7644 3.5.2.3).
    let r = scim
        .patch_ops(
            &path,
            json!([{"op": "replace", "path": "name", "value": {"givenName": "Patricia"}}]),
        )
        .await?;
    r.expect(200)?;
    check_eq(
        r.body["name"]["givenName"].as_str(),
        Some("Patricia"),
        "name.givenName replaced",
        &r,
    )?;
    check_eq(
        r.body["name"]["familyName"].as_str(),
        Some("Smith"),
        "name.familyName untouched by replace of name",
        &r,
    )?;

    // Sub-attribute paths.
    let r = scim.patch_ops(&path, json!([{"op": "remove", "path": "name.middleName"}, {"op": "add", "path": "name.honorificPrefix", "value": "Dr."}])).await?;
    r.expect(200)?;
    check(
        r.body["name"].get("middleName").is_none(),
        "remove name.middleName",
        &r,
    )?;
    check_eq(
        r.body["name"]["honorificPrefix"].as_str(),
        Some("Dr."),
        "add name.honorificPrefix",
        &r,
    )?;

    // Add to a multi-valued attribute appends.
    let r = scim.patch_ops(&path, json!([{"op": "add", "path": "emails", "value": [{"value": "pat@other.example", "type": "other"}]}])).await?;
    r.expect(200)?;
    check_eq(emails(&r).len(), 3, "add emails appends", &r)?;

    // Value-path replace touches only the matching element.
    let r = scim.patch_ops(&path, json!([{"op": "replace", "path": "emails[type eq \"home\"].value", "value": "pat@newhome.example"}])).await?;
    r.expect(200)?;
    check_eq(
        email_of(&r, "home").map(|e| e["value"].clone()),
        Some(json!("pat@newhome.example")),
        "home email replaced",
        &r,
    )?;
    check_eq(
        email_of(&r, "work").map(|e| e["value"].clone()),
        Some(json!("pat@work.example")),
        "work email untouched",
        &r,
    )?;

    // Value-path remove.
    let r = scim
        .patch_ops(
            &path,
            json!([{"op": "remove", "path": "emails[type eq \"other\"]"}]),
        )
        .await?;
    r.expect(200)?;
    check(
        emails(&r).len() == 2 && email_of(&r, "other").is_none(),
        "emails[type eq other] removed",
        &r,
    )?;

    // Setting primary on a new value clears it elsewhere (RFC 7644 3.5.2); "Primary" capitalised.
    let r = scim.patch_ops(&path, json!([{"op": "add", "path": "emails", "value": [{"Value": "pat@new.example", "Type": "work2", "Primary": true}]}])).await?;
    r.expect(200)?;
    let primaries: Vec<Value> = emails(&r)
        .into_iter()
        .filter(|e| e["primary"] == json!(true))
        .collect();
    check(
        primaries.len() == 1 && primaries[0]["value"] == "pat@new.example",
        "exactly one primary email, the new one",
        &r,
    )?;

    // Remove a simple attribute.
    let r = scim
        .patch_ops(&path, json!([{"op": "remove", "path": "title"}]))
        .await?;
    r.expect(200)?;
    check(r.body.get("title").is_none(), "title removed", &r)?;

    // Several ops in one request apply in order.
    let r = scim
        .patch_ops(&path, json!([{"op": "add", "path": "title", "value": "One"}, {"op": "replace", "path": "title", "value": "Two"}, {"op": "add", "path": "displayName", "value": "Pat S"}]))
        .await?;
    r.expect(200)?;
    check_eq(
        r.body["title"].as_str(),
        Some("Two"),
        "ops apply in order",
        &r,
    )?;
    check_eq(
        r.body["displayName"].as_str(),
        Some("Pat S"),
        "third op applied",
        &r,
    )?;

    // Errors: remove without a path; modifying readOnly id.
    scim.patch_ops(&path, json!([{"op": "remove"}]))
        .await?
        .expect_error(400, Some("noTarget"))?;
    scim.patch_ops(
        &path,
        json!([{"op": "replace", "path": "id", "value": "another-id"}]),
    )
    .await?
    .expect_error(400, Some("mutability"))?;
    let r = scim.get(&path).await?;
    check_eq(r.body["id"].as_str(), Some(id.as_str()), "id unchanged", &r)?;
    check_eq(
        r.body["title"].as_str(),
        Some("Two"),
        "failed PATCHes changed nothing",
        &r,
    )?;
    Ok(())
}

/// Creates the filter fixture and returns name -> id.
async fn filter_fixture(scim: &Scim) -> Result<BTreeMap<String, String>> {
    let users = [
        json!({"schemas": [USER_URN], "userName": "alice@example.com", "displayName": "Alice Anderson", "title": "Analyst", "externalId": "ext-Alice",
               "name": {"givenName": "Alice", "familyName": "Anderson"}, "active": true, "userType": "Employee",
               "emails": [{"value": "alice@example.com", "type": "work", "primary": true}, {"value": "alice@home.net", "type": "home"}]}),
        json!({"schemas": [USER_URN], "userName": "bob@example.com", "displayName": "Bob Brown", "title": "Engineer", "externalId": "ext-Bob",
               "name": {"givenName": "Bob", "familyName": "Brown"}, "active": false, "userType": "Contractor",
               "emails": [{"value": "bob@example.com", "type": "work", "primary": true}]}),
        json!({"schemas": [USER_URN], "userName": "carol@example.org", "displayName": "Carol Clark", "title": "Manager", "externalId": "ext-Carol",
               "name": {"givenName": "Carol", "familyName": "Clark"}, "active": true, "userType": "Employee",
               "emails": [{"value": "carol@example.org", "type": "work", "primary": false}, {"value": "carol@home.net", "type": "home", "primary": true}]}),
        json!({"schemas": [USER_URN], "userName": "dave@example.org", "displayName": "Dave Davis", "externalId": "ext-Dave",
               "name": {"givenName": "Dave", "familyName": "Davis"}, "active": true}),
    ];
    let mut ids = BTreeMap::new();
    for u in users {
        let name = u["userName"]
            .as_str()
            .unwrap_or_default()
            .split('@')
            .next()
            .unwrap_or_default()
            .to_string();
        ids.insert(name, create_user_body(scim, &u).await?);
    }
    Ok(ids)
}

async fn filter_names(
    scim: &Scim,
    res: &str,
    filter: &str,
    ids: &BTreeMap<String, String>,
) -> Result<BTreeSet<String>> {
    let r = scim
        .get_q(res, &[("filter", filter), ("count", "100")])
        .await?;
    if r.status != 200 {
        bail!("filter {filter:?} must be accepted:\n{r}");
    }
    let by_id: BTreeMap<&String, &String> = ids.iter().map(|(n, i)| (i, n)).collect();
    let found = r.list_ids()?;
    check_eq(
        r.total()? as usize,
        found.len(),
        "totalResults equals the matches (all on one page)",
        &r,
    )?;
    Ok(found
        .iter()
        .map(|i| {
            by_id
                .get(i)
                .map(|n| n.to_string())
                .unwrap_or_else(|| format!("<unknown {i}>"))
        })
        .collect())
}

async fn filters(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    let ids = filter_fixture(&scim).await?;
    let alice = ids["alice"].clone();

    let cases: Vec<(String, Vec<&str>)> = vec![
        ("userName eq \"alice@example.com\"".into(), vec!["alice"]),
        ("USERNAME EQ \"ALICE@EXAMPLE.COM\"".into(), vec!["alice"]),
        (
            "urn:ietf:params:scim:schemas:core:2.0:User:userName eq \"bob@example.com\"".into(),
            vec!["bob"],
        ),
        ("displayName eq \"bob brown\"".into(), vec!["bob"]),
        ("title eq \"analyst\"".into(), vec!["alice"]),
        ("name.familyName eq \"anderson\"".into(), vec!["alice"]),
        ("externalId eq \"ext-Alice\"".into(), vec!["alice"]),
        ("externalId eq \"EXT-ALICE\"".into(), vec![]),
        (format!("id eq \"{alice}\""), vec!["alice"]),
        (
            "userName ne \"alice@example.com\"".into(),
            vec!["bob", "carol", "dave"],
        ),
        ("userName co \"ob\"".into(), vec!["bob"]),
        ("userName co \"EXAMPLE.ORG\"".into(), vec!["carol", "dave"]),
        ("userName sw \"A\"".into(), vec!["alice"]),
        ("userName ew \".org\"".into(), vec!["carol", "dave"]),
        ("title pr".into(), vec!["alice", "bob", "carol"]),
        ("not (title pr)".into(), vec!["dave"]),
        ("title gt \"Engineer\"".into(), vec!["carol"]),
        ("title ge \"Engineer\"".into(), vec!["bob", "carol"]),
        ("title lt \"Engineer\"".into(), vec!["alice"]),
        ("title le \"Engineer\"".into(), vec!["alice", "bob"]),
        ("active eq false".into(), vec!["bob"]),
        (
            "active eq true and userType eq \"Employee\"".into(),
            vec!["alice", "carol"],
        ),
        (
            "userType eq \"Employee\" or title eq \"Engineer\"".into(),
            vec!["alice", "bob", "carol"],
        ),
        // Precedence: and binds tighter than or.
        (
            "userName sw \"dave\" or userName sw \"alice\" and active eq false".into(),
            vec!["dave"],
        ),
        (
            "(userName sw \"dave\" or userName sw \"alice\") and active eq true".into(),
            vec!["alice", "dave"],
        ),
        (
            "not (userName sw \"a\") and not (userName sw \"b\")".into(),
            vec!["carol", "dave"],
        ),
        (
            "((userName eq \"alice@example.com\"))".into(),
            vec!["alice"],
        ),
        // Value paths and multi-valued attributes.
        (
            "emails[type eq \"home\" and value ew \"home.net\"]".into(),
            vec!["alice", "carol"],
        ),
        (
            "emails[type eq \"work\" and primary eq true]".into(),
            vec!["alice", "bob"],
        ),
        (
            "emails[type eq \"work\"] and emails[type eq \"home\"]".into(),
            vec!["alice", "carol"],
        ),
        (
            "emails.value co \"home.net\"".into(),
            vec!["alice", "carol"],
        ),
        ("emails.type eq \"home\"".into(), vec!["alice", "carol"]),
        ("emails pr".into(), vec!["alice", "bob", "carol"]),
        (
            "meta.created gt \"2000-01-01T00:00:00Z\"".into(),
            vec!["alice", "bob", "carol", "dave"],
        ),
        (
            "meta.lastModified lt \"2000-01-01T00:00:00Z\"".into(),
            vec![],
        ),
        (
            "meta.resourceType eq \"User\"".into(),
            vec!["alice", "bob", "carol", "dave"],
        ),
    ];
    let mut failures = Vec::new();
    for (filter, want) in &cases {
        let got = filter_names(&scim, "/Users", filter, &ids).await?;
        let want: BTreeSet<String> = set(want.iter().copied());
        if got != want {
            failures.push(format!(
                "  filter {filter:?}: got {got:?}, expected {want:?}"
            ));
        }
    }
    if alice.to_uppercase() != alice {
        let got = filter_names(
            &scim,
            "/Users",
            &format!("id eq \"{}\"", alice.to_uppercase()),
            &ids,
        )
        .await?;
        if !got.is_empty() {
            failures.push(format!("  id is caseExact: upper-cased id matched {got:?}"));
        }
    }
    if !failures.is_empty() {
        bail!("wrong filter results:\n{}", failures.join("\n"));
    }

    for bad in [
        "userName eq",
        "userName xx \"a\"",
        "(userName eq \"a\"",
        "userName eq \"a\" and",
        "emails[type eq \"work\"",
        "userName eq \"unterminated",
        "and",
        "userName eq \"a\" userName eq \"b\"",
    ] {
        scim.get_q("/Users", &[("filter", bad)])
            .await?
            .expect_error(400, Some("invalidFilter"))?;
    }

    // Groups.
    let admins = create_group(&scim, "Admins", &[&ids["alice"], &ids["bob"]]).await?;
    let staff = create_group(&scim, "Staff", &[&ids["carol"]]).await?;
    let gids: BTreeMap<String, String> =
        [("Admins".to_string(), admins), ("Staff".to_string(), staff)]
            .into_iter()
            .collect();
    for (filter, want) in [
        ("displayName eq \"admins\"".to_string(), vec!["Admins"]),
        ("displayName sw \"S\"".to_string(), vec!["Staff"]),
        (
            format!("members[value eq \"{}\"]", ids["alice"]),
            vec!["Admins"],
        ),
        (
            format!("members.value eq \"{}\"", ids["carol"]),
            vec!["Staff"],
        ),
        ("displayName pr".to_string(), vec!["Admins", "Staff"]),
    ] {
        let got = filter_names(&scim, "/Groups", &filter, &gids).await?;
        if got != set(want.iter().copied()) {
            bail!("group filter {filter:?}: got {got:?}, expected {want:?}");
        }
    }
    Ok(())
}

async fn paging(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    let mut all = BTreeSet::new();
    for i in 0..25 {
        all.insert(create_user(&scim, &format!("page-user-{i:02}@example.com")).await?);
    }

    let page = |start: i64, count: i64| {
        let scim = scim.clone();
        async move {
            scim.get(&format!("/Users?startIndex={start}&count={count}"))
                .await
        }
    };

    // Walk the pages while modifying users in between: no duplicates, nothing missed.
    let mut seen = Vec::new();
    for (start, want) in [(1, 10), (11, 10), (21, 5)] {
        let r = page(start, 10).await?;
        let ids = r.list_ids()?;
        check_eq(r.total()?, 25, "totalResults", &r)?;
        check_eq(
            r.body["startIndex"].as_i64(),
            Some(start),
            "startIndex echoed",
            &r,
        )?;
        check_eq(ids.len(), want, "page size", &r)?;
        // Touch the first user of this page (lastModified / version change).
        scim.patch_ops(
            &format!("/Users/{}", ids[0]),
            json!([{"op": "replace", "path": "displayName", "value": format!("touched {start}")}]),
        )
        .await?
        .expect(200)?;
        seen.extend(ids);
    }
    let uniq: BTreeSet<String> = seen.iter().cloned().collect();
    if uniq.len() != seen.len() || uniq != all {
        bail!("paging with count=10 must return each of the 25 users exactly once; got {} ids ({} distinct)", seen.len(), uniq.len());
    }

    // Same query, same order.
    let mut again = Vec::new();
    for start in [1, 11, 21] {
        again.extend(page(start, 10).await?.list_ids()?);
    }
    if again != seen {
        bail!("ordering is not stable across identical page walks:\n first {seen:?}\nsecond {again:?}");
    }

    // startIndex below 1 means 1.
    for start in [0, -3] {
        let r = page(start, 10).await?;
        check_eq(
            r.list_ids()?,
            seen[..10].to_vec(),
            "startIndex < 1 behaves as 1",
            &r,
        )?;
        check_eq(
            r.body["startIndex"].as_i64(),
            Some(1),
            "startIndex < 1 answered as 1",
            &r,
        )?;
    }
    // count 0 (or negative): only totalResults.
    for count in [0, -5] {
        let r = page(1, count).await?;
        check_eq(r.list()?.len(), 0, "count<=0 returns no resources", &r)?;
        check_eq(r.total()?, 25, "count<=0 still gives totalResults", &r)?;
    }
    // Partial and past-the-end pages.
    let r = page(24, 10).await?;
    check_eq(r.list_ids()?, seen[23..].to_vec(), "last two", &r)?;
    let r = page(26, 10).await?;
    check_eq(r.list()?.len(), 0, "past the end", &r)?;
    check_eq(r.total()?, 25, "past the end keeps totalResults", &r)?;

    // Paging over a filter.
    let mut filtered = Vec::new();
    for start in [1, 4, 7, 10] {
        let r = scim
            .get_q(
                "/Users",
                &[
                    ("filter", "userName sw \"page-user-1\""),
                    ("startIndex", &start.to_string()),
                    ("count", "3"),
                ],
            )
            .await?;
        check_eq(r.total()?, 10, "filtered totalResults", &r)?;
        filtered.extend(r.list_ids()?);
    }
    check_eq(
        filtered.iter().collect::<BTreeSet<_>>().len(),
        10,
        "filtered pages cover the 10 matches once",
        &scim.get("/Users?count=0").await?,
    )?;

    // Paging with sortBy concatenates to the fully sorted list.
    let mut sorted = Vec::new();
    for start in [1, 8, 15, 22] {
        let r = scim
            .get(&format!(
                "/Users?sortBy=userName&startIndex={start}&count=7"
            ))
            .await?;
        sorted.extend(
            r.list()?
                .into_iter()
                .map(|u| u["userName"].as_str().unwrap_or_default().to_string()),
        );
    }
    let mut expect = sorted.clone();
    expect.sort();
    if sorted != expect || sorted.len() != 25 {
        bail!("sorted paging is not ordered/complete: {sorted:?}");
    }
    Ok(())
}

async fn attribute_projection(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    let id = create_user_body(
        &scim,
        &json!({
            "schemas": [USER_URN, ENTERPRISE_URN],
            "userName": "proj@example.com",
            "displayName": "Pro Jection",
            "title": "Tester",
            "name": {"givenName": "Pro", "familyName": "Jection"},
            "emails": [{"value": "proj@example.com", "type": "work"}],
            ENTERPRISE_URN: {"department": "QA", "employeeNumber": "7"}
        }),
    )
    .await?;
    let path = format!("/Users/{id}");

    let r = scim.get_q(&path, &[("attributes", "userName")]).await?;
    r.expect(200)?;
    check(
        r.body["id"] == json!(id) && r.body["userName"] == "proj@example.com",
        "attributes=userName keeps id and userName",
        &r,
    )?;
    for absent in ["displayName", "title", "name", "emails", ENTERPRISE_URN] {
        check(
            r.body.get(absent).is_none(),
            &format!("attributes=userName drops {absent}"),
            &r,
        )?;
    }

    let r = scim
        .get_q(&path, &[("attributes", "name.givenName")])
        .await?;
    r.expect(200)?;
    check_eq(
        r.body["name"]["givenName"].as_str(),
        Some("Pro"),
        "attributes=name.givenName",
        &r,
    )?;
    check(
        r.body["name"].get("familyName").is_none() && r.body.get("title").is_none(),
        "only name.givenName returned",
        &r,
    )?;

    let r = scim
        .get_q(&path, &[("attributes", "USERNAME,DisplayName")])
        .await?;
    r.expect(200)?;
    check(
        r.body["userName"].is_string()
            && r.body["displayName"].is_string()
            && r.body.get("title").is_none(),
        "attributes are case-insensitive and comma-separated",
        &r,
    )?;

    let r = scim
        .get_q(&path, &[("excludedAttributes", "emails,name")])
        .await?;
    r.expect(200)?;
    check(
        r.body.get("emails").is_none() && r.body.get("name").is_none(),
        "excludedAttributes drops emails and name",
        &r,
    )?;
    check(
        r.body["userName"].is_string()
            && r.body["title"] == "Tester"
            && r.body[ENTERPRISE_URN]["department"] == "QA",
        "excludedAttributes keeps the rest",
        &r,
    )?;

    let r = scim.get_q(&path, &[("excludedAttributes", "id")]).await?;
    check_eq(
        r.body["id"].as_str(),
        Some(id.as_str()),
        "id is returned always, even when excluded",
        &r,
    )?;

    let r = scim
        .get_q(
            &path,
            &[(
                "attributes",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            )],
        )
        .await?;
    r.expect(200)?;
    check_eq(
        r.body[ENTERPRISE_URN]["department"].as_str(),
        Some("QA"),
        "URN-qualified attributes",
        &r,
    )?;
    check(
        r.body[ENTERPRISE_URN].get("employeeNumber").is_none() && r.body.get("title").is_none(),
        "only the department",
        &r,
    )?;

    let r = scim
        .get_q(
            &path,
            &[(
                "attributes",
                "urn:ietf:params:scim:schemas:core:2.0:User:title",
            )],
        )
        .await?;
    check(
        r.body["title"] == "Tester" && r.body.get("displayName").is_none(),
        "core-URN-qualified attribute",
        &r,
    )?;

    let r = scim
        .get_q(
            "/Users",
            &[
                ("attributes", "userName"),
                ("filter", "userName eq \"proj@example.com\""),
            ],
        )
        .await?;
    let res = r.list()?;
    check(
        res.len() == 1
            && res[0]["id"] == json!(id)
            && res[0]["userName"].is_string()
            && res[0].get("title").is_none(),
        "attributes apply to lists",
        &r,
    )?;
    let r = scim
        .get_q("/Users", &[("excludedAttributes", "title,emails")])
        .await?;
    let res = r.list()?;
    check(
        res.len() == 1 && res[0].get("title").is_none() && res[0]["displayName"] == "Pro Jection",
        "excludedAttributes apply to lists",
        &r,
    )?;

    let g = create_group(&scim, "Projected", &[&id]).await?;
    let r = scim
        .get_q(&format!("/Groups/{g}"), &[("attributes", "displayName")])
        .await?;
    check(
        r.body["displayName"] == "Projected"
            && r.body.get("members").is_none()
            && r.body["id"] == json!(g),
        "group attributes=displayName",
        &r,
    )?;
    Ok(())
}

async fn sorting(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    let people = [
        ("mike", "Oscar", "C"),
        ("alpha", "Zed", "E"),
        ("zulu", "Bravo", "A"),
        ("kilo", "Alpha", "D"),
        ("bravo", "Mike", "B"),
    ];
    for (u, family, title) in people {
        create_user_body(&scim, &json!({"schemas": [USER_URN], "userName": format!("{u}@example.com"), "name": {"familyName": family}, "title": title})).await?;
    }
    let names = |r: &Resp| -> Result<Vec<String>> {
        Ok(r.list()?
            .iter()
            .map(|u| {
                u["userName"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_end_matches("@example.com")
                    .to_string()
            })
            .collect())
    };

    let r = scim.get("/Users?sortBy=userName").await?;
    check_eq(
        names(&r)?,
        vec!["alpha", "bravo", "kilo", "mike", "zulu"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>(),
        "sortBy=userName ascending by default",
        &r,
    )?;
    let r = scim
        .get("/Users?sortBy=USERNAME&sortOrder=descending")
        .await?;
    check_eq(
        names(&r)?,
        vec!["zulu", "mike", "kilo", "bravo", "alpha"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>(),
        "descending",
        &r,
    )?;
    let r = scim
        .get("/Users?sortBy=userName&sortOrder=ascending&startIndex=2&count=2")
        .await?;
    check_eq(
        names(&r)?,
        vec!["bravo".to_string(), "kilo".to_string()],
        "sorted page 2",
        &r,
    )?;
    let r = scim.get("/Users?sortBy=name.familyName").await?;
    check_eq(
        names(&r)?,
        vec!["kilo", "zulu", "bravo", "mike", "alpha"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>(),
        "sortBy=name.familyName",
        &r,
    )?;
    let r = scim
        .get_q(
            "/Users",
            &[
                ("sortBy", "title"),
                ("sortOrder", "descending"),
                ("filter", "title pr"),
            ],
        )
        .await?;
    check_eq(
        names(&r)?,
        vec!["alpha", "kilo", "mike", "bravo", "zulu"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>(),
        "sortBy=title descending with a filter",
        &r,
    )?;

    for g in ["Gamma", "alpha team", "Beta"] {
        create_group(&scim, g, &[]).await?;
    }
    let r = scim
        .get("/Groups?sortBy=displayName&sortOrder=descending")
        .await?;
    let got: Vec<String> = r
        .list()?
        .iter()
        .map(|g| g["displayName"].as_str().unwrap_or_default().to_string())
        .collect();
    check_eq(
        got,
        vec![
            "Gamma".to_string(),
            "Beta".to_string(),
            "alpha team".to_string(),
        ],
        "groups sorted by displayName (case-insensitive, descending)",
        &r,
    )?;
    Ok(())
}

async fn search_endpoint(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    let ids = filter_fixture(&scim).await?;

    let r = scim
        .post(
            "/Users/.search",
            &json!({"schemas": [SEARCH_URN], "filter": "userName ew \"example.com\" or userName ew \"example.org\"", "attributes": ["userName"], "sortBy": "userName", "sortOrder": "descending", "startIndex": 1, "count": 2}),
        )
        .await?;
    let res = r.list()?;
    check_eq(r.total()?, 4, ".search totalResults", &r)?;
    let got: Vec<&str> = res
        .iter()
        .map(|u| u["userName"].as_str().unwrap_or_default())
        .collect();
    check_eq(
        got,
        vec!["dave@example.org", "carol@example.org"],
        ".search sorted descending, count 2",
        &r,
    )?;
    check(
        res.iter()
            .all(|u| u.get("displayName").is_none() && u["id"].is_string()),
        ".search attributes honoured",
        &r,
    )?;

    let r = scim.post("/Users/.search", &json!({"schemas": [SEARCH_URN], "filter": "active eq false", "excludedAttributes": ["emails"]})).await?;
    let res = r.list()?;
    check(
        res.len() == 1
            && res[0]["id"] == json!(ids["bob"])
            && res[0].get("emails").is_none()
            && res[0]["displayName"] == "Bob Brown",
        ".search excludedAttributes",
        &r,
    )?;

    let r = scim
        .post(
            "/Users/.search",
            &json!({"schemas": [SEARCH_URN], "startIndex": 3, "count": 10}),
        )
        .await?;
    check_eq(
        r.list()?.len(),
        2,
        ".search without filter pages over all users",
        &r,
    )?;

    scim.post(
        "/Users/.search",
        &json!({"schemas": [SEARCH_URN], "filter": "userName eq"}),
    )
    .await?
    .expect_error(400, Some("invalidFilter"))?;

    let g = create_group(&scim, "Searchers", &[&ids["alice"]]).await?;
    let r = scim
        .post(
            "/Groups/.search",
            &json!({"schemas": [SEARCH_URN], "filter": "displayName eq \"searchers\""}),
        )
        .await?;
    check_eq(r.list_ids()?, vec![g], "Groups/.search", &r)?;
    Ok(())
}

async fn etags(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    let r = scim.post("/Users", &user("etag@example.com")).await?;
    r.expect(201)?;
    let id = r.id()?;
    let path = format!("/Users/{id}");
    let v1 = r.header("etag").unwrap_or_default();
    check(
        !v1.is_empty() && r.body["meta"]["version"] == json!(v1),
        "POST ETag mirrors meta.version",
        &r,
    )?;

    let r = scim.get(&path).await?;
    check_eq(r.header("etag"), Some(v1.clone()), "GET ETag", &r)?;
    let r = scim
        .send(Method::GET, &path, None, &[("If-None-Match", &v1)])
        .await?;
    r.expect(304)?;
    check(r.text.is_empty(), "304 has no body", &r)?;
    scim.send(
        Method::GET,
        &path,
        None,
        &[("If-None-Match", "W/\"not-the-version\"")],
    )
    .await?
    .expect(200)?;

    // Change it: the version moves.
    let r = scim
        .send(
            Method::PATCH,
            &path,
            Some(&patch_body(
                json!([{"op": "replace", "path": "displayName", "value": "One"}]),
            )),
            &[("If-Match", &v1)],
        )
        .await?;
    r.expect(200)?;
    let v2 = r.header("etag").unwrap_or_default();
    check(
        !v2.is_empty() && v2 != v1 && r.body["meta"]["version"] == json!(v2),
        "PATCH gives a new ETag mirroring meta.version",
        &r,
    )?;
    let r = scim.get(&path).await?;
    check_eq(
        r.header("etag"),
        Some(v2.clone()),
        "GET shows the new ETag",
        &r,
    )?;
    scim.send(Method::GET, &path, None, &[("If-None-Match", &v1)])
        .await?
        .expect(200)?;

    // Stale If-Match: 412 and no change, for PUT, PATCH and DELETE.
    let mut put = user("etag@example.com");
    put["displayName"] = json!("Stale");
    scim.send(Method::PUT, &path, Some(&put), &[("If-Match", &v1)])
        .await?
        .expect_error(412, None)?;
    scim.send(
        Method::PATCH,
        &path,
        Some(&patch_body(
            json!([{"op": "replace", "path": "displayName", "value": "Stale"}]),
        )),
        &[("If-Match", &v1)],
    )
    .await?
    .expect_error(412, None)?;
    scim.send(Method::DELETE, &path, None, &[("If-Match", &v1)])
        .await?
        .expect_error(412, None)?;
    let r = scim.get(&path).await?;
    r.expect(200)?;
    check(
        r.body["displayName"] == "One" && r.header("etag") == Some(v2.clone()),
        "412s changed nothing",
        &r,
    )?;

    // Current If-Match and "*" succeed.
    let r = scim
        .send(Method::PUT, &path, Some(&put), &[("If-Match", &v2)])
        .await?;
    r.expect(200)?;
    let v3 = r.header("etag").unwrap_or_default();
    check(
        v3 != v2 && r.body["displayName"] == "Stale",
        "PUT with the current If-Match",
        &r,
    )?;
    scim.send(
        Method::PATCH,
        &path,
        Some(&patch_body(
            json!([{"op": "replace", "path": "title", "value": "T"}]),
        )),
        &[("If-Match", "*")],
    )
    .await?
    .expect(200)?;

    // Lists carry meta.version too.
    let r = scim.get("/Users").await?;
    check(
        r.list()?.iter().all(|u| u["meta"]["version"].is_string()),
        "listed resources carry meta.version",
        &r,
    )?;

    // Groups: ETag changes with membership.
    let g = create_group(&scim, "Versioned", &[]).await?;
    let gpath = format!("/Groups/{g}");
    let r = scim.get(&gpath).await?;
    let gv1 = r.header("etag").unwrap_or_default();
    check(
        !gv1.is_empty() && r.body["meta"]["version"] == json!(gv1),
        "group ETag mirrors meta.version",
        &r,
    )?;
    scim.send(
        Method::PATCH,
        &gpath,
        Some(&patch_body(
            json!([{"op": "add", "path": "members", "value": [{"value": id}]}]),
        )),
        &[("If-Match", &gv1)],
    )
    .await?
    .expect_group_patch()?;
    let r = scim.get(&gpath).await?;
    let gv2 = r.header("etag").unwrap_or_default();
    check(gv2 != gv1, "member add changes the group's version", &r)?;
    scim.send(
        Method::PATCH,
        &gpath,
        Some(&patch_body(json!([{"op": "remove", "path": "members"}]))),
        &[("If-Match", &gv1)],
    )
    .await?
    .expect_error(412, None)?;
    check_eq(
        group_members(&scim, &g).await?,
        set([id.clone()]),
        "stale group PATCH changed nothing",
        &r,
    )?;
    scim.send(Method::GET, &gpath, None, &[("If-None-Match", &gv2)])
        .await?
        .expect(304)?;
    let r = scim
        .send(Method::DELETE, &path, None, &[("If-Match", &v3)])
        .await?;
    check(
        r.status == 412,
        "DELETE with an outdated If-Match (v3 was superseded by the If-Match: * PATCH)",
        &r,
    )?;
    Ok(())
}

async fn enterprise_extension(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    let boss = create_user(&scim, "boss@example.com").await?;
    let boss2 = create_user(&scim, "boss2@example.com").await?;
    let r = scim
        .post(
            "/Users",
            &json!({
                "schemas": [USER_URN, ENTERPRISE_URN],
                "userName": "emp@example.com",
                ENTERPRISE_URN: {"employeeNumber": "701984", "costCenter": "4130", "organization": "Universal Studios",
                                 "division": "Theme Park", "department": "Tour Operations", "manager": {"value": boss}}
            }),
        )
        .await?;
    r.expect(201)?;
    let id = r.id()?;
    let path = format!("/Users/{id}");
    let ext = &r.body[ENTERPRISE_URN];
    for (k, v) in [
        ("employeeNumber", "701984"),
        ("costCenter", "4130"),
        ("organization", "Universal Studios"),
        ("division", "Theme Park"),
        ("department", "Tour Operations"),
    ] {
        check_eq(ext[k].as_str(), Some(v), &format!("enterprise {k}"), &r)?;
    }
    check_eq(
        ext["manager"]["value"].as_str(),
        Some(boss.as_str()),
        "enterprise manager.value",
        &r,
    )?;
    check(
        r.body["schemas"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == ENTERPRISE_URN)),
        "schemas lists the extension",
        &r,
    )?;

    let ids: BTreeMap<String, String> = [
        ("emp".to_string(), id.clone()),
        ("boss".to_string(), boss.clone()),
        ("boss2".to_string(), boss2.clone()),
    ]
    .into_iter()
    .collect();
    for (f, want) in [
        (
            format!("{ENTERPRISE_URN}:department eq \"tour operations\""),
            vec!["emp"],
        ),
        (
            format!("{ENTERPRISE_URN}:manager.value eq \"{boss}\""),
            vec!["emp"],
        ),
        (format!("{ENTERPRISE_URN}:employeeNumber pr"), vec!["emp"]),
    ] {
        let got = filter_names(&scim, "/Users", &f, &ids).await?;
        if got != set(want.iter().copied()) {
            bail!("enterprise filter {f:?}: got {got:?}, expected {want:?}");
        }
    }

    let r = scim.patch_ops(&path, json!([{"op": "replace", "path": format!("{ENTERPRISE_URN}:manager"), "value": {"value": boss2}}])).await?;
    r.expect(200)?;
    check_eq(
        r.body[ENTERPRISE_URN]["manager"]["value"].as_str(),
        Some(boss2.as_str()),
        "manager replaced",
        &r,
    )?;
    let r = scim
        .patch_ops(
            &path,
            json!([{"op": "remove", "path": format!("{ENTERPRISE_URN}:department")}]),
        )
        .await?;
    r.expect(200)?;
    check(
        r.body[ENTERPRISE_URN].get("department").is_none(),
        "department removed",
        &r,
    )?;
    check_eq(
        r.body[ENTERPRISE_URN]["costCenter"].as_str(),
        Some("4130"),
        "costCenter kept",
        &r,
    )?;
    let r = scim
        .patch_ops(
            &path,
            json!([{"op": "add", "value": {ENTERPRISE_URN: {"division": "Studios"}}}]),
        )
        .await?;
    r.expect(200)?;
    check(
        r.body[ENTERPRISE_URN]["division"] == "Studios"
            && r.body[ENTERPRISE_URN]["employeeNumber"] == "701984",
        "path-less add merges into the extension",
        &r,
    )?;

    let r = scim.put(&path, &user("emp@example.com")).await?;
    r.expect(200)?;
    check(
        r.body
            .get(ENTERPRISE_URN)
            .is_none_or(|e| e.get("employeeNumber").is_none()),
        "PUT without the extension clears it",
        &r,
    )?;
    Ok(())
}

async fn roles_primary(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    let r = scim
        .post(
            "/Users",
            &json!({"schemas": [USER_URN], "userName": "roles@example.com",
                    "roles": [{"value": "developer", "Primary": true}, {"value": "read-only"}]}),
        )
        .await?;
    r.expect(201)?;
    let id = r.id()?;
    let path = format!("/Users/{id}");
    let roles = |r: &Resp| r.body["roles"].as_array().cloned().unwrap_or_default();
    let primary = |r: &Resp| {
        roles(r)
            .into_iter()
            .filter(|x| x["primary"] == json!(true))
            .map(|x| x["value"].clone())
            .collect::<Vec<_>>()
    };
    check_eq(roles(&r).len(), 2, "two roles", &r)?;
    check_eq(
        primary(&r),
        vec![json!("developer")],
        "\"Primary\" (capitalised) marks the primary role",
        &r,
    )?;

    let other = create_user(&scim, "other@example.com").await?;
    let ids: BTreeMap<String, String> = [
        ("roles".to_string(), id.clone()),
        ("other".to_string(), other),
    ]
    .into_iter()
    .collect();
    let got = filter_names(
        &scim,
        "/Users",
        "roles[primary eq true and value eq \"developer\"]",
        &ids,
    )
    .await?;
    if got != set(["roles"]) {
        bail!("roles[primary eq true and value eq \"developer\"] matched {got:?}");
    }

    let r = scim
        .patch_ops(
            &path,
            json!([{"op": "replace", "path": "roles[primary eq true].value", "value": "security"}]),
        )
        .await?;
    r.expect(200)?;
    check_eq(
        primary(&r),
        vec![json!("security")],
        "roles[primary eq true].value replaced",
        &r,
    )?;
    check(
        roles(&r).iter().any(|x| x["value"] == "read-only"),
        "other role kept",
        &r,
    )?;

    let r = scim
        .patch_ops(
            &path,
            json!([{"op": "add", "path": "roles", "value": [{"value": "admin", "primary": true}]}]),
        )
        .await?;
    r.expect(200)?;
    check_eq(
        primary(&r),
        vec![json!("admin")],
        "a new primary role demotes the old one",
        &r,
    )?;
    check_eq(roles(&r).len(), 3, "three roles", &r)?;
    let got = filter_names(
        &scim,
        "/Users",
        "roles[primary eq true and value eq \"admin\"]",
        &ids,
    )
    .await?;
    if got != set(["roles"]) {
        bail!("after promotion, roles[primary eq true and value eq \"admin\"] matched {got:?}");
    }
    Ok(())
}

async fn discovery(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();

    let r = scim.get("/ServiceProviderConfig").await?;
    r.expect(200)?;
    let b = &r.body;
    check(
        b["schemas"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == SPC_URN)),
        "SPC schema",
        &r,
    )?;
    check_eq(
        b["patch"]["supported"].as_bool(),
        Some(true),
        "patch.supported",
        &r,
    )?;
    check_eq(
        b["filter"]["supported"].as_bool(),
        Some(true),
        "filter.supported",
        &r,
    )?;
    check(
        b["filter"]["maxResults"].as_u64().is_some_and(|n| n > 0),
        "filter.maxResults is a positive integer",
        &r,
    )?;
    check_eq(
        b["sort"]["supported"].as_bool(),
        Some(true),
        "sort.supported",
        &r,
    )?;
    check_eq(
        b["etag"]["supported"].as_bool(),
        Some(true),
        "etag.supported",
        &r,
    )?;
    check(
        b["changePassword"]["supported"].is_boolean() && b["bulk"]["supported"].is_boolean(),
        "changePassword / bulk flags",
        &r,
    )?;
    check(
        b["authenticationSchemes"].as_array().is_some_and(|a| {
            a.iter().any(|s| {
                s["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("oauthbearertoken"))
            })
        }),
        "authenticationSchemes lists oauthbearertoken",
        &r,
    )?;

    let r = scim.get("/ResourceTypes").await?;
    let rts = r.list()?;
    let user_rt = rts
        .iter()
        .find(|t| t["id"] == "User" || t["name"] == "User")
        .cloned()
        .unwrap_or(Value::Null);
    let group_rt = rts
        .iter()
        .find(|t| t["id"] == "Group" || t["name"] == "Group")
        .cloned()
        .unwrap_or(Value::Null);
    check(
        user_rt["endpoint"] == "/Users" && user_rt["schema"] == USER_URN,
        "User resource type",
        &r,
    )?;
    check(
        user_rt["schemaExtensions"].as_array().is_some_and(|a| {
            a.iter()
                .any(|e| e["schema"] == ENTERPRISE_URN && e["required"] == json!(false))
        }),
        "User resource type lists the enterprise extension (not required)",
        &r,
    )?;
    check(
        group_rt["endpoint"] == "/Groups" && group_rt["schema"] == GROUP_URN,
        "Group resource type",
        &r,
    )?;
    let r = scim.get("/ResourceTypes/User").await?;
    r.expect(200)?;
    check_eq(
        r.body["endpoint"].as_str(),
        Some("/Users"),
        "/ResourceTypes/User",
        &r,
    )?;
    scim.get("/ResourceTypes/Printer")
        .await?
        .expect_error(404, None)?;

    let r = scim.get("/Schemas").await?;
    let ids: BTreeSet<String> = r
        .list()?
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect();
    for want in [USER_URN, GROUP_URN, ENTERPRISE_URN] {
        check(ids.contains(want), &format!("/Schemas lists {want}"), &r)?;
    }
    let r = scim.get(&format!("/Schemas/{USER_URN}")).await?;
    r.expect(200)?;
    let un = r.body["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "userName"))
        .cloned()
        .unwrap_or(Value::Null);
    check(
        un["uniqueness"] == "server"
            && un["caseExact"] == json!(false)
            && un["required"] == json!(true),
        "userName schema: required, server-unique, not caseExact",
        &r,
    )?;
    scim.get("/Schemas/urn:example:nope")
        .await?
        .expect_error(404, None)?;

    for p in ["/healthz", "/readyz"] {
        let (s, body) = cp.get_root(p).await?;
        if s != 200 {
            bail!("{p} must answer 200, got {s}: {body}");
        }
    }
    Ok(())
}

async fn errors(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    let id = create_user(&scim, "err@example.com").await?;

    // 401, with SCIM bodies and a WWW-Authenticate challenge.
    let anon = cp.scim_with(None);
    for (m, p) in [
        (Method::GET, "/Users".to_string()),
        (Method::GET, format!("/Users/{id}")),
        (Method::GET, "/Groups".to_string()),
        (Method::DELETE, format!("/Users/{id}")),
    ] {
        let r = anon.send(m, &p, None, &[]).await?;
        r.expect_error(401, None)?;
        check(
            r.header("www-authenticate")
                .is_some_and(|h| h.to_ascii_lowercase().starts_with("bearer")),
            "401 carries WWW-Authenticate: Bearer",
            &r,
        )?;
        check(!r.text.contains("err@example.com"), "401 leaks no data", &r)?;
    }
    anon.post("/Users", &user("anon@example.com"))
        .await?
        .expect_error(401, None)?;
    for auth in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        &format!("Bearer {}x", cp.token),
        &format!("Token {}", cp.token),
    ] {
        anon.send(Method::GET, "/Users", None, &[("Authorization", auth)])
            .await?
            .expect_error(401, None)?;
    }
    let r = scim
        .get_q("/Users", &[("filter", "userName eq \"anon@example.com\"")])
        .await?;
    check_eq(r.total()?, 0, "unauthenticated POST created nothing", &r)?;
    scim.get(&format!("/Users/{id}")).await?.expect(200)?;

    // 404.
    for p in [
        "/Users/does-not-exist",
        "/Groups/does-not-exist",
        "/Widgets",
        "/Users/does-not-exist/extra",
    ] {
        scim.get(p).await?.expect_error(404, None)?;
    }
    scim.patch_ops(
        "/Groups/does-not-exist",
        json!([{"op": "add", "path": "members", "value": [{"value": id}]}]),
    )
    .await?
    .expect_error(404, None)?;
    scim.delete("/Groups/does-not-exist")
        .await?
        .expect_error(404, None)?;

    // 405.
    for (m, p) in [
        (Method::DELETE, "/Users".to_string()),
        (Method::PUT, "/Users".to_string()),
        (Method::PATCH, "/Groups".to_string()),
        (Method::POST, format!("/Users/{id}")),
        (Method::POST, "/ServiceProviderConfig".to_string()),
        (Method::DELETE, "/Schemas".to_string()),
    ] {
        let body = (m != Method::DELETE).then(|| json!({"schemas": [USER_URN], "userName": "x"}));
        scim.send(m, &p, body.as_ref(), &[])
            .await?
            .expect_error(405, None)?;
    }

    // 415.
    for ct in [
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
    ] {
        let body = serde_json::to_vec(&user("media@example.com"))?;
        scim.send_raw(Method::POST, "/Users", Some(body), &[("Content-Type", ct)])
            .await?
            .expect_error(415, None)?;
    }
    let body = serde_json::to_vec(&patch_body(
        json!([{"op": "replace", "path": "title", "value": "x"}]),
    ))?;
    scim.send_raw(
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(body),
        &[("Content-Type", "text/plain")],
    )
    .await?
    .expect_error(415, None)?;
    let r = scim
        .get_q("/Users", &[("filter", "userName eq \"media@example.com\"")])
        .await?;
    check_eq(r.total()?, 0, "415 created nothing", &r)?;

    // 400 with the right scimType.
    scim.send_raw(
        Method::POST,
        "/Users",
        Some(b"{\"userName\": ".to_vec()),
        &[],
    )
    .await?
    .expect_error(400, Some("invalidSyntax"))?;
    scim.post(
        "/Users",
        &json!({"schemas": [USER_URN], "displayName": "No Username"}),
    )
    .await?
    .expect_error(400, Some("invalidValue"))?;
    scim.post(
        "/Users",
        &json!({"schemas": [USER_URN], "userName": "bad-bool@example.com", "active": "maybe"}),
    )
    .await?
    .expect_error(400, Some("invalidValue"))?;
    scim.post("/Groups", &json!({"schemas": [GROUP_URN], "members": []}))
        .await?
        .expect_error(400, Some("invalidValue"))?;
    scim.post(
        "/Users",
        &json!({"schemas": [USER_URN], "userName": "err@example.com"}),
    )
    .await?
    .expect_error(409, Some("uniqueness"))?;
    let upath = format!("/Users/{id}");
    scim.patch_ops(&upath, json!([{"op": "remove"}]))
        .await?
        .expect_error(400, Some("noTarget"))?;
    scim.patch_ops(
        &upath,
        json!([{"op": "replace", "path": "emails[type eq \"work\"", "value": "x"}]),
    )
    .await?
    .expect_error(400, Some("invalidPath"))?;
    scim.get_q("/Users", &[("filter", "userName zz \"x\"")])
        .await?
        .expect_error(400, Some("invalidFilter"))?;
    for (what, body) in [
        (
            "unknown op",
            patch_body(json!([{"op": "frobnicate", "path": "title", "value": "x"}])),
        ),
        ("no Operations", json!({"schemas": [PATCH_URN]})),
        (
            "Operations not an array",
            json!({"schemas": [PATCH_URN], "Operations": {"op": "add"}}),
        ),
    ] {
        let r = scim.patch(&upath, &body).await?;
        r.expect_error(400, None)?;
        check(
            r.body["scimType"].is_string(),
            &format!("PATCH with {what}: 400 must carry a scimType"),
            &r,
        )?;
    }
    Ok(())
}

async fn group_crud(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    let u1 = create_user(&scim, "m1@example.com").await?;
    let u2 = create_user(&scim, "m2@example.com").await?;
    let u3 = create_user(&scim, "m3@example.com").await?;

    let r = scim.post("/Groups", &json!({"schemas": [GROUP_URN], "displayName": "Admins", "externalId": "g-ext", "members": [{"value": u1}, {"value": u2}]})).await?;
    r.expect(201)?;
    let g = r.id()?;
    let gpath = format!("/Groups/{g}");
    check_eq(
        member_ids(&r.body),
        set([u1.clone(), u2.clone()]),
        "members on create",
        &r,
    )?;
    check_eq(
        r.body["meta"]["resourceType"].as_str(),
        Some("Group"),
        "meta.resourceType",
        &r,
    )?;
    check_eq(
        r.header("location").as_deref(),
        r.body["meta"]["location"].as_str(),
        "Location",
        &r,
    )?;
    check_eq(
        r.header("etag").as_deref(),
        r.body["meta"]["version"].as_str(),
        "ETag",
        &r,
    )?;

    // User.groups is computed and readOnly.
    let r = scim.get(&format!("/Users/{u1}")).await?;
    check(
        r.body["groups"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["value"] == json!(g))),
        "User.groups lists the group",
        &r,
    )?;
    let r = scim.post("/Users", &json!({"schemas": [USER_URN], "userName": "sneaky@example.com", "groups": [{"value": g}]})).await?;
    r.expect(201)?;
    let sneaky = r.id()?;
    check_eq(
        group_members(&scim, &g).await?,
        set([u1.clone(), u2.clone()]),
        "readOnly User.groups in a POST is ignored",
        &r,
    )?;

    // Uniqueness of displayName.
    scim.post(
        "/Groups",
        &json!({"schemas": [GROUP_URN], "displayName": "Admins"}),
    )
    .await?
    .expect_error(409, Some("uniqueness"))?;
    let other = create_group(&scim, "Others", &[]).await?;
    scim.patch_ops(
        &format!("/Groups/{other}"),
        json!([{"op": "replace", "path": "displayName", "value": "Admins"}]),
    )
    .await?
    .expect_error(409, Some("uniqueness"))?;
    scim.put(
        &format!("/Groups/{other}"),
        &json!({"schemas": [GROUP_URN], "displayName": "Admins"}),
    )
    .await?
    .expect_error(409, Some("uniqueness"))?;

    // PUT replaces the member list.
    let r = scim.put(&gpath, &json!({"schemas": [GROUP_URN], "displayName": "Admins", "members": [{"value": u2}, {"value": u3}]})).await?;
    r.expect(200)?;
    check_eq(
        member_ids(&r.body),
        set([u2.clone(), u3.clone()]),
        "PUT members",
        &r,
    )?;
    check(
        r.body.get("externalId").is_none(),
        "PUT without externalId clears it",
        &r,
    )?;

    // Group PATCH: 204 without projection params, 200 with the resource when they are present.
    let r = scim
        .patch_ops(
            &gpath,
            json!([{"op": "add", "path": "members", "value": [{"value": sneaky}]}]),
        )
        .await?;
    r.expect_group_patch()?;
    let r = scim
        .patch_ops(
            &format!("{gpath}?excludedAttributes=members"),
            json!([{"op": "remove", "path": format!("members[value eq \"{sneaky}\"]")}]),
        )
        .await?;
    r.expect(200)?;
    check(
        r.body["id"] == json!(g)
            && r.body.get("members").is_none()
            && r.body["displayName"] == "Admins",
        "PATCH ?excludedAttributes=members answers the projected group",
        &r,
    )?;
    let r = scim
        .patch_ops(
            &format!("{gpath}?attributes=members"),
            json!([{"op": "add", "path": "members", "value": [{"value": u1}]}]),
        )
        .await?;
    r.expect(200)?;
    check_eq(
        member_ids(&r.body),
        set([u1.clone(), u2.clone(), u3.clone()]),
        "PATCH ?attributes=members answers the members",
        &r,
    )?;
    check(
        r.body.get("displayName").is_none(),
        "PATCH ?attributes=members projects",
        &r,
    )?;

    // Deleting a user removes it from its groups.
    scim.delete(&format!("/Users/{u2}")).await?.expect(204)?;
    check_eq(
        group_members(&scim, &g).await?,
        set([u1.clone(), u3.clone()]),
        "deleted user removed from the group",
        &r,
    )?;

    // Deleting the group.
    scim.delete(&gpath).await?.expect(204)?;
    scim.get(&gpath).await?.expect_error(404, None)?;
    let r = scim.get(&format!("/Users/{u3}")).await?;
    r.expect(200)?;
    check(
        !r.body["groups"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["value"] == json!(g))),
        "deleted group no longer in User.groups",
        &r,
    )?;
    // The name is free again.
    create_group(&scim, "Admins", &[&u3]).await?;
    Ok(())
}
