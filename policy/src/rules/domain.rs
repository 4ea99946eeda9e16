//! Web domains for the network allow and deny lists: a host name, optionally under a leading
//! `*.` wildcard, lowercase; and the coverage test the intersection of allowlists uses.

use super::quote;

const MAX_DOMAIN_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// A domain (`docs.rs`, `*.example.com`), lowercased. No scheme, port, path or inner wildcard.
pub fn domain(value: &str) -> Result<String, String> {
    let q = quote(value);
    if value.contains("://") {
        return Err(format!("{q}: give the domain only, without a scheme"));
    }
    if value.contains('/') {
        return Err(format!("{q}: give the domain only, without a path"));
    }
    if value.contains(':') {
        return Err(format!("{q}: give the domain only, without a port"));
    }
    let host = value.strip_prefix("*.").unwrap_or(value);
    if host.is_empty() || host.len() > MAX_DOMAIN_LEN {
        return Err(format!("{q}: not a domain name"));
    }
    for label in host.split('.') {
        let ok = !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(format!(
                "{q}: not a domain name (labels of letters, digits and -; \
                 a wildcard only as a leading *.)"
            ));
        }
    }
    Ok(value.to_ascii_lowercase())
}

/// True when the allowed-domain `pattern` lets `domain` through: the same name, or `*.suffix`
/// and a name (or narrower wildcard) strictly under `suffix`. Both are normalized.
pub fn covers(pattern: &str, domain: &str) -> bool {
    if pattern == domain {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => domain
            .strip_suffix(suffix)
            .is_some_and(|head| head.ends_with('.') && head.len() > 1),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_and_refused() {
        for ok in ["docs.rs", "*.example.com", "a-b.c0"] {
            assert!(domain(ok).is_ok(), "{ok}");
        }
        assert_eq!(domain("LOCALHOST").as_deref(), Ok("localhost"));
        for (bad, why) in [
            ("", "not a domain name"),
            ("https://x.com", "without a scheme"),
            ("x.com/a", "without a path"),
            ("x.com:443", "without a port"),
            ("*.", "not a domain name"),
            ("a..b", "not a domain name"),
            ("-a.com", "not a domain name"),
            ("a*.com", "not a domain name"),
            ("*", "not a domain name"),
            ("*.*.com", "not a domain name"),
            ("a_b.com", "not a domain name"),
        ] {
            let e = domain(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn length_limits() {
        let label = "a".repeat(63);
        assert!(domain(&format!("{label}.com")).is_ok());
        assert!(domain(&format!("a{label}.com")).is_err());
        let host = format!("{}.{}", [label.as_str(); 3].join("."), "a".repeat(61));
        assert_eq!(host.len(), 253);
        assert!(domain(&host).is_ok());
        assert!(domain(&format!("a{host}")).is_err());
    }

    #[test]
    fn coverage() {
        assert!(covers("docs.rs", "docs.rs"));
        assert!(covers("*.example.com", "a.example.com"));
        assert!(covers("*.example.com", "a.b.example.com"));
        assert!(covers("*.example.com", "*.b.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "badexample.com"));
        assert!(!covers("a.example.com", "*.example.com"));
        assert!(!covers("*.b.example.com", "*.example.com"));
    }
}
