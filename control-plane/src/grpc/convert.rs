//! Conversions between domain policy types and the generated `palisade.v1` types. Generated
//! types go no further into the control plane than this module and `service.rs`.

use palisade_policy::{Policy, SCHEMA_VERSION};
use palisade_proto::v1 as pb;

use crate::store::{KeyDelivery, OfflineRule};

pub fn offline_rule(rule: OfflineRule) -> pb::OfflineRule {
    match rule {
        OfflineRule::KeepLast => pb::OfflineRule::KeepLast,
        OfflineRule::Lockdown => pb::OfflineRule::Lockdown,
    }
}

pub fn key_delivery(delivery: KeyDelivery) -> pb::KeyDelivery {
    match delivery {
        KeyDelivery::Helper => pb::KeyDelivery::Helper,
        KeyDelivery::Proxy => pb::KeyDelivery::Proxy,
    }
}

/// The wire form: the schema and the canonical JSON document. The schema-1 fields stay empty
/// and the level UNSPECIFIED, so a schema-1 agent refuses the policy instead of applying an
/// empty one.
pub fn policy(p: &Policy) -> pb::Policy {
    pb::Policy {
        security_level: pb::SecurityLevel::Unspecified as i32,
        schema: SCHEMA_VERSION,
        document: p.canonical_json(),
        ..pb::Policy::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn carries_the_document_and_refuses_schema_one_readers() {
        let p = Policy::from_value(
            &json!({"security_level": "paranoid", "permissions": {"deny": ["Bash"]}}),
        )
        .unwrap()
        .policy;
        let pb = policy(&p);
        assert_eq!(pb.schema, SCHEMA_VERSION);
        assert_eq!(Policy::from_wire(pb.schema, &pb.document).unwrap(), p);
        assert_eq!(pb.security_level, pb::SecurityLevel::Unspecified as i32);
        assert!(pb.blocked_tools.is_empty());
    }
}
