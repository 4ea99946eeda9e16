//! Encryption at rest for API keys: XChaCha20-Poly1305 with a 256-bit key from configuration
//! (`PALISADE_SECRETS_KEY`, base64), a random 192-bit nonce per value.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Errors of the secrets key and of decryption.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the secrets key must be 32 bytes, base64-encoded (generate one with: openssl rand -base64 32)")]
    BadKey,
    #[error("an encrypted value could not be decrypted with the configured secrets key")]
    Undecryptable,
}

/// The configured secrets key.
#[derive(Clone)]
pub struct SecretsKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(..)")
    }
}

/// Format tag of the stored text, so the scheme can change later.
const TAG: &str = "v1:";

impl SecretsKey {
    /// Parses a base64 32-byte key.
    pub fn from_base64(text: &str) -> Result<SecretsKey, CryptoError> {
        let bytes = B64.decode(text.trim()).map_err(|_| CryptoError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| CryptoError::BadKey)?;
        Ok(SecretsKey { cipher })
    }

    /// A fresh random key, base64 (what `from_base64` reads).
    pub fn generate_base64() -> String {
        B64.encode(XChaCha20Poly1305::generate_key(&mut OsRng))
    }

    /// Encrypts a value; the result is text safe to store.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption with a valid key and a fresh nonce cannot fail for in-memory input.
        let ct = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend(ct);
        format!("{TAG}{}", B64.encode(out))
    }

    pub fn decrypt(&self, stored: &str) -> Result<String, CryptoError> {
        let raw = stored.strip_prefix(TAG).ok_or(CryptoError::Undecryptable)?;
        let bytes = B64.decode(raw).map_err(|_| CryptoError::Undecryptable)?;
        if bytes.len() < 24 + 16 {
            return Err(CryptoError::Undecryptable);
        }
        let (nonce, ct) = bytes.split_at(24);
        let pt = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| CryptoError::Undecryptable)?;
        String::from_utf8(pt).map_err(|_| CryptoError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn round_trip_and_tamper() {
        let k = SecretsKey::from_base64(KEY).unwrap();
        let a = k.encrypt("sk-ant-secret");
        let b = k.encrypt("sk-ant-secret");
        assert_ne!(a, b, "nonces differ");
        assert!(!a.contains("sk-ant"));
        assert_eq!(k.decrypt(&a).unwrap(), "sk-ant-secret");
        let mut t = a.clone();
        t.replace_range(t.len() - 2.., "AA");
        assert_eq!(k.decrypt(&t), Err(CryptoError::Undecryptable));
        let other = SecretsKey::from_base64("HwAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .unwrap_or_else(|_| SecretsKey::from_base64(&B64.encode([7u8; 32])).unwrap());
        assert_eq!(other.decrypt(&a), Err(CryptoError::Undecryptable));
        assert_eq!(
            SecretsKey::from_base64("short").unwrap_err(),
            CryptoError::BadKey
        );
    }
}
