//! Helpers shared by the filter modules' unit tests: attribute paths and a sample User.

use serde_json::{json, Value};

use super::ast::AttrPath;
use crate::scim::schema::{ENTERPRISE_USER_URN, USER_URN};

/// Parses an attribute path that must be valid.
pub(super) fn p(s: &str) -> AttrPath {
    AttrPath::parse(s).unwrap()
}

/// A User with core, multi-valued and enterprise-extension attributes.
pub(super) fn user() -> Value {
    json!({
        "schemas": [USER_URN, ENTERPRISE_USER_URN],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "JYoung",
        "userName": "Bjensen@Example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "displayName": "Babs Jensen",
        "nickName": "",
        "title": "Tour Guide",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [],
        "meta": {
            "resourceType": "User",
            "created": "2024-01-23T04:56:22Z",
            "lastModified": "2024-05-13T04:42:34+02:00",
            "version": "W/\"a330bc54f0671c9\""
        },
        ENTERPRISE_USER_URN: {
            "department": "R&D",
            "employeeNumber": "00042",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
        }
    })
}
