//! `POST /.search` at the SCIM root: Users and Groups in one paged list, the filter applied per
//! resource type, and errors for filters no resource type understands.

use anyhow::Result;
use palisade_tests::{backend_tests, Backend, ControlPlane};
use serde_json::json;

async fn root_search(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &[]).await?;
    let scim = cp.scim();
    for name in ["ana@example.com", "ben@example.com"] {
        scim.post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}),
        )
        .await?
        .expect(201)?;
    }
    scim.post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering"}))
        .await?
        .expect(201)?;

    let search = |body: serde_json::Value| {
        let scim = scim.clone();
        async move { scim.post("/.search", &body).await }
    };
    let all =
        search(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]})).await?;
    all.expect(200)?;
    assert_eq!(all.body["totalResults"], 3, "{}", all.body);
    let types: Vec<&str> = all.body["Resources"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["meta"]["resourceType"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(types, vec!["User", "User", "Group"]);

    // Paging crosses from Users into Groups.
    let page = search(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "startIndex": 2, "count": 2})).await?;
    assert_eq!(page.body["totalResults"], 3);
    assert_eq!(page.body["itemsPerPage"], 2);
    assert_eq!(page.body["Resources"][0]["userName"], "ben@example.com");
    assert_eq!(page.body["Resources"][1]["displayName"], "Engineering");

    // A filter on an attribute only Users have matches only Users.
    let users = search(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName sw \"ANA\""})).await?;
    assert_eq!(users.body["totalResults"], 1, "{}", users.body);
    let groups = search(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "displayName eq \"engineering\"", "attributes": ["displayName"]})).await?;
    assert_eq!(groups.body["totalResults"], 1, "{}", groups.body);
    assert!(
        groups.body["Resources"][0].get("meta").is_none(),
        "projection applied: {}",
        groups.body
    );

    // A filter neither type understands, or a malformed one, is 400 invalidFilter.
    search(json!({"filter": "nosuchattr eq 1"}))
        .await?
        .expect_error(400, Some("invalidFilter"))?;
    search(json!({"filter": "userName eq"}))
        .await?
        .expect_error(400, Some("invalidFilter"))?;
    Ok(())
}

backend_tests! {
    root_search => root_search_sqlite, root_search_postgres;
}
