//! Fuzzes the agent's side of the policy stream: arbitrary bytes decoded as a `ServerMessage`
//! with prost, converted into the agent's plain event (the policy document checked against the
//! key table), and a snapshot's policy rendered into the managed-settings drop-in, as the agent
//! does before writing it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_agent::link::grpc::server_event;
use palisade_agent::link::messages::ServerEvent;
use palisade_policy::{render, RenderOptions, TargetOs};
use palisade_proto::v1 as pb;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = pb::ServerMessage::decode(data) else {
        return;
    };
    if let Some(ServerEvent::Snapshot(snapshot)) = server_event(msg) {
        for os in [TargetOs::Linux, TargetOs::MacOs, TargetOs::Windows] {
            let opts = RenderOptions {
                api_key_helper: Some("/usr/bin/palisade-agent api-key".to_string()),
                api_key_helper_ttl_ms: 300_000,
                os,
                // What the server sent for an unverified device ends up here.
                announcement: snapshot.confirm_url.clone(),
                // And the relay's upstream, when the server names one.
                base_url: snapshot.upstream_url.clone(),
            };
            let _ = render(&snapshot.policy, &opts);
        }
    }
});
