//! Minting and hashing bearer secrets (SCIM tokens, enrollment tokens, device credentials):
//! 256 bits from the OS generator, a recognisable prefix, and SHA-256 for storage.

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new secret: `prefix` followed by 32 random bytes in URL-safe base64.
pub(crate) fn mint_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// What the store keeps of a secret. A fast hash is right here: the secret has 256 bits of
/// entropy, so there is nothing to brute-force.
pub(crate) fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The non-secret prefix shown in listings: the type prefix plus six characters.
pub(crate) fn shown_prefix(secret: &str, type_prefix: &str) -> String {
    secret.chars().take(type_prefix.len() + 6).collect()
}

/// Whether an operator's `id-or-prefix` argument names this credential: its id, a start of its
/// shown prefix (at least 6 characters), or a longer string that starts with the prefix (such as
/// the whole secret, pasted from a leak report).
pub(crate) fn names_credential(id: &str, prefix: &str, given: &str) -> bool {
    given == id || (given.len() >= 6 && (prefix.starts_with(given) || given.starts_with(prefix)))
}

/// The one credential among `candidates` that `given` names (see [`names_credential`]):
/// `NotFound` when none does, `Ambiguous` when several do.
pub(crate) fn pick_credential<T>(
    candidates: Vec<T>,
    given: &str,
    id_and_prefix: impl Fn(&T) -> (&str, &str),
) -> super::StoreResult<T> {
    let mut matches: Vec<T> = candidates
        .into_iter()
        .filter(|t| {
            let (id, prefix) = id_and_prefix(t);
            names_credential(id, prefix, given)
        })
        .collect();
    match matches.len() {
        0 => Err(super::StoreError::NotFound),
        1 => matches.pop().ok_or(super::StoreError::NotFound),
        n => Err(super::StoreError::Ambiguous(format!(
            "{n} tokens match {given:?}; give the id"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_prefixes() {
        let s = mint_secret("pal_x_");
        assert!(s.starts_with("pal_x_") && s.len() == 6 + 43);
        assert_ne!(s, mint_secret("pal_x_"));
        let p = shown_prefix(&s, "pal_x_");
        assert_eq!(p.len(), 12);
        assert!(names_credential("id1", &p, "id1"));
        assert!(names_credential("id1", &p, &p[..8]));
        assert!(names_credential("id1", &p, &s));
        assert!(!names_credential("id1", &p, "pal_x"));
        assert!(!names_credential("id1", &p, "pal_y_abcdef"));
        assert_eq!(sha256_hex("a").len(), 64);
    }
}
