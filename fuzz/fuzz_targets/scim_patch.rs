//! Fuzzes the PATCH engine: a request body is parsed and applied to a sample User and a sample
//! Group (members inline and as external row changes), then canonicalised as the handlers do.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_control_plane::scim::patch::{apply_patch, parse_patch_request};
use palisade_control_plane::scim::resource::canonical_resource;
use palisade_control_plane::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(ops) = parse_patch_request(&body) else {
        return;
    };
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "u1", "userName": "ada@example.com", "active": true,
        "name": {"givenName": "Ada"},
        "emails": [{"value": "ada@example.com", "type": "work", "primary": true}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}
    });
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "g1", "displayName": "Eng", "members": [{"value": "u1"}, {"value": "u2"}]
    });
    for (rt, base, external) in [
        (&USER_RESOURCE, &user, false),
        (&GROUP_RESOURCE, &group, false),
        (&GROUP_RESOURCE, &group, true),
    ] {
        let mut doc = base.clone();
        if apply_patch(rt, &mut doc, &ops, external).is_ok() {
            let _ = canonical_resource(rt, doc);
        }
    }
});
