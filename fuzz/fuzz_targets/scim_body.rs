//! Fuzzes SCIM resource bodies: a POST/PUT body parsed as the User and the Group handlers do
//! (canonical form, then the split into indexed columns and the attribute document).
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_control_plane::scim::groups::group_write;
use palisade_control_plane::scim::resource::canonical_resource;
use palisade_control_plane::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
use palisade_control_plane::scim::users::user_write;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(doc) = canonical_resource(&USER_RESOURCE, body.clone()) {
        let _ = user_write(doc);
    }
    if let Ok(doc) = canonical_resource(&GROUP_RESOURCE, body) {
        let _ = group_write(doc);
    }
});
