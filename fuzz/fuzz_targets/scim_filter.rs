//! Fuzzes the SCIM filter and PATCH-path grammar, then evaluates any parsed filter against a
//! sample User and Group (matching, element matching, sorting) so evaluation is covered too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_control_plane::scim::filter::{
    compare_by, matches, matches_element, parse_filter, parse_patch_path, validate,
};
use palisade_control_plane::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "u1", "userName": "ada@example.com", "active": true, "displayName": "Ada",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": "ada@example.com", "type": "work", "primary": true}, {"value": "a@x.org"}],
        "meta": {"created": "2024-01-01T00:00:00Z", "lastModified": "2024-02-01T00:00:00Z"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D", "manager": {"value": "u2"}}
    });
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "g1", "displayName": "Eng", "members": [{"value": "u1", "display": "ada"}, {"value": "u2"}]
    });
    if let Ok(f) = parse_filter(text) {
        for (rt, res) in [(&USER_RESOURCE, &user), (&GROUP_RESOURCE, &group)] {
            let _ = validate(rt, &f);
            let _ = matches(rt, &f, res);
        }
        if let Some(def) = GROUP_RESOURCE.schema.attr("members") {
            let _ = matches_element(def, &f, &json!({"value": "u1", "display": "ada"}));
        }
    }
    if let Ok(p) = parse_patch_path(text) {
        let _ = compare_by(&USER_RESOURCE, &p.attr, &user, &user);
        if let Some(f) = &p.filter {
            let _ = matches(&USER_RESOURCE, f, &user);
        }
    }
});
