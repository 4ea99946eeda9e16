//! Fuzzes policy files: the same text parsed as JSON and as TOML; a parsed policy goes
//! through the merge (as org defaults and as a group), its canonical JSON, the wire reader and
//! the renderer for every platform.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_policy::{
    effective, parse_policy, render, GroupPolicy, Policy, PolicyFormat, RenderOptions, TargetOs,
    SCHEMA_VERSION,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for format in [PolicyFormat::Json, PolicyFormat::Toml] {
        match parse_policy(format, text) {
            Ok(loaded) => {
                let p = &loaded.policy;
                let merged = effective(p, &[GroupPolicy { group: "g", policy: p }]);
                let wire = Policy::from_wire(SCHEMA_VERSION, &merged.canonical_json())
                    .expect("the canonical form of a valid policy reads back");
                assert_eq!(wire, merged);
                for os in [TargetOs::Linux, TargetOs::MacOs, TargetOs::Windows] {
                    let opts = RenderOptions { os, ..RenderOptions::default() };
                    let _ = render(&merged, &opts);
                }
            }
            Err(errors) => {
                let _ = errors.to_string();
            }
        }
    }
});
