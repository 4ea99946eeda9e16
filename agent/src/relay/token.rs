//! The local token: what the developer's account holds instead of the organisation's key.
//!
//! `pal_local_` + HMAC-SHA256(secret, device id and developer), hex. The secret is 32 random
//! bytes in the root-only state directory, replaced at every wipe, so a token is worthless on
//! any other machine, for any other developer, and after deprovisioning. The agent hands the
//! token to its developer only, through the developer's key file (readable by that account
//! alone: see [`crate::credentials::keyfile`]).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::state::{StateDir, StateError};

/// Prefix of every local token (also what tells the relay a request carries one).
pub const LOCAL_TOKEN_PREFIX: &str = "pal_local_";
/// What the wipe leaves in the developer's key file with proxy delivery: not a token (it
/// verifies against no secret) but a marker on which the helper fails with "your access was
/// removed by your organisation" — Claude Code shows a failing helper at once and its stderr
/// says why, where a refused request would be retried for minutes.
pub const REVOKED_TOKEN: &str = "pal_local_revoked";
/// The state file holding the secret (hex).
pub const RELAY_SECRET_FILE: &str = "relay-secret";

/// Where the relay proves that it is this computer's agent (see [`relay_proof`]).
pub const PROOF_PATH: &str = "/palisade/relay-proof";

type HmacSha256 = Hmac<Sha256>;

/// The relay's answer to the helper's challenge `nonce`: HMAC-SHA256 keyed with the local
/// token. Only the agent (which derives the token) and the developer (who holds it) can compute
/// it, so a process of another account that took the relay's port while the agent was down
/// cannot answer, and the helper then hands it nothing. Answering reveals nothing about the
/// token.
pub fn relay_proof(token: &str, nonce: &str) -> String {
    #[allow(clippy::expect_used)] // HMAC takes keys of every length
    let mut mac = <HmacSha256 as Mac>::new_from_slice(token.as_bytes())
        .expect("HMAC takes keys of every length");
    mac.update(b"palisade-relay-proof\n");
    mac.update(nonce.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether a challenge is one the relay answers: 32 to 128 hex digits.
pub fn valid_nonce(nonce: &str) -> bool {
    (32..=128).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The secret that local tokens are derived from.
#[derive(Clone)]
pub struct TokenSecret([u8; 32]);

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret(..)")
    }
}

impl TokenSecret {
    /// A fresh random secret.
    pub fn random() -> TokenSecret {
        TokenSecret(rand::random())
    }

    /// The stored secret, or a new one saved in its place when there is none (or it is bad).
    pub fn load_or_create(state: &StateDir) -> Result<TokenSecret, StateError> {
        if let Ok(text) = std::fs::read_to_string(state.path(RELAY_SECRET_FILE)) {
            if let Ok(bytes) = hex::decode(text.trim()) {
                if let Ok(arr) = <[u8; 32]>::try_from(bytes.as_slice()) {
                    return Ok(TokenSecret(arr));
                }
            }
        }
        TokenSecret::rotate(state)
    }

    /// Replaces the stored secret with a new one (every token issued before stops working).
    pub fn rotate(state: &StateDir) -> Result<TokenSecret, StateError> {
        let secret = TokenSecret::random();
        state.write_bytes(RELAY_SECRET_FILE, hex::encode(secret.0).as_bytes())?;
        Ok(secret)
    }

    fn mac(&self, device_id: &str, developer: &str) -> HmacSha256 {
        #[allow(clippy::expect_used)] // HMAC takes keys of every length
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of every length");
        mac.update(b"palisade-relay-token\n");
        mac.update(device_id.as_bytes());
        mac.update(b"\n");
        mac.update(developer.as_bytes());
        mac
    }

    /// The token of `developer` (an OS account: uid or SID) on device `device_id`.
    pub fn token(&self, device_id: &str, developer: &str) -> String {
        let tag = self.mac(device_id, developer).finalize().into_bytes();
        format!("{LOCAL_TOKEN_PREFIX}{}", hex::encode(tag))
    }

    /// Whether `presented` is that token (compared in constant time).
    pub fn verify(&self, presented: &str, device_id: &str, developer: &str) -> bool {
        let Some(hex_tag) = presented.strip_prefix(LOCAL_TOKEN_PREFIX) else {
            return false;
        };
        let Ok(tag) = hex::decode(hex_tag) else {
            return false;
        };
        self.mac(device_id, developer).verify_slice(&tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_device_developer_and_secret() {
        let s = TokenSecret::random();
        let t = s.token("dev-1", "1000");
        assert!(t.starts_with(LOCAL_TOKEN_PREFIX));
        assert!(s.verify(&t, "dev-1", "1000"));
        assert!(!s.verify(&t, "dev-2", "1000"));
        assert!(!s.verify(&t, "dev-1", "1001"));
        assert!(!TokenSecret::random().verify(&t, "dev-1", "1000"));
        assert!(!s.verify("sk-ant-api03-x", "dev-1", "1000"));
        assert!(!s.verify("pal_local_zz", "dev-1", "1000"));
        assert!(!s.verify(&t[..t.len() - 2], "dev-1", "1000"));
    }

    #[test]
    fn proofs_need_the_token() {
        let s = TokenSecret::random();
        let t = s.token("dev-1", "1000");
        let nonce = "00".repeat(16);
        assert!(valid_nonce(&nonce));
        assert!(!valid_nonce("00"));
        assert!(!valid_nonce(&"zz".repeat(16)));
        assert_eq!(relay_proof(&t, &nonce), relay_proof(&t, &nonce));
        assert_ne!(relay_proof(&t, &nonce), relay_proof(&t, &"01".repeat(16)));
        assert_ne!(
            relay_proof(&t, &nonce),
            relay_proof(&s.token("dev-1", "1001"), &nonce)
        );
    }

    #[test]
    fn the_secret_survives_restarts_and_rotates_on_demand() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path());
        let a = TokenSecret::load_or_create(&state).unwrap();
        let b = TokenSecret::load_or_create(&state).unwrap();
        assert_eq!(a.token("d", "u"), b.token("d", "u"));
        let c = TokenSecret::rotate(&state).unwrap();
        assert_ne!(a.token("d", "u"), c.token("d", "u"));
        std::fs::write(state.path(RELAY_SECRET_FILE), "garbage").unwrap();
        let d = TokenSecret::load_or_create(&state).unwrap();
        assert_ne!(c.token("d", "u"), d.token("d", "u"));
    }
}
