//! Conversions between domain policy types and the generated `palisade.v1` types. Generated
//! types go no further into the control plane than this module and `service.rs`.

use palisade_proto::v1 as pb;

use crate::policy::{EffectivePolicy, SecurityLevel};
use crate::store::OfflineRule;

pub fn security_level(level: SecurityLevel) -> pb::SecurityLevel {
    match level {
        SecurityLevel::Minimal => pb::SecurityLevel::Minimal,
        SecurityLevel::Moderate => pb::SecurityLevel::Moderate,
        SecurityLevel::Strict => pb::SecurityLevel::Strict,
        SecurityLevel::Paranoid => pb::SecurityLevel::Paranoid,
    }
}

pub fn offline_rule(rule: OfflineRule) -> pb::OfflineRule {
    match rule {
        OfflineRule::KeepLast => pb::OfflineRule::KeepLast,
        OfflineRule::Lockdown => pb::OfflineRule::Lockdown,
    }
}

pub fn policy(p: &EffectivePolicy) -> pb::Policy {
    let list = |s: &std::collections::BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>();
    pb::Policy {
        blocked_tools: list(&p.blocked_tools),
        security_level: security_level(p.security_level) as i32,
        blocked_write_paths: list(&p.blocked_write_paths),
        allowed_skills: p
            .allowed_skills
            .as_ref()
            .map(|s| pb::StringList { values: list(s) }),
        blocked_mcp_servers: list(&p.blocked_mcp_servers),
        allowed_web_domains: p
            .allowed_web_domains
            .as_ref()
            .map(|s| pb::StringList { values: list(s) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_every_field() {
        let p = EffectivePolicy {
            blocked_tools: ["Bash".to_string()].into(),
            security_level: SecurityLevel::Paranoid,
            blocked_write_paths: ["/etc".to_string()].into(),
            allowed_skills: Some(Default::default()),
            blocked_mcp_servers: ["github".to_string()].into(),
            allowed_web_domains: None,
        };
        let pb = policy(&p);
        assert_eq!(pb.blocked_tools, vec!["Bash"]);
        assert_eq!(pb.security_level, pb::SecurityLevel::Paranoid as i32);
        assert_eq!(pb.allowed_skills, Some(pb::StringList { values: vec![] }));
        assert_eq!(pb.allowed_web_domains, None);
        assert_eq!(pb.blocked_mcp_servers, vec!["github"]);
    }
}
