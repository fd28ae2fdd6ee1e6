//! Encryption at rest for every secret value (client secrets, tokens, PKCE verifiers).
//!
//! AES-256-GCM with a random 96-bit nonce per value. A stored value reads
//! `v1.<key id>.<base64url(nonce || ciphertext || tag)>`; the associated data
//! binds it to its table, column and row id, so a ciphertext copied to another
//! row or column fails to decrypt. Several keys may be configured: the first
//! encrypts, all decrypt, so keys can be rotated.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{SecretBox, SecretString};
use sha2::{Digest, Sha256};

const VERSION: &str = "v1";
const NONCE_LEN: usize = 12;

/// One 32-byte master key; its id is derived from the key itself.
pub struct MasterKey {
    id: String,
    key: SecretBox<[u8; 32]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"inboxlink key id\0")
            .chain_update(bytes)
            .finalize();
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            id,
            key: SecretBox::new(Box::new(bytes)),
        }
    }

    /// The key id written into every value this key encrypts.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Where a value is stored: the associated data of its ciphertext.
#[derive(Debug, Clone, Copy)]
pub struct Slot<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub row_id: &'a str,
}

impl Slot<'_> {
    fn aad(&self) -> String {
        format!("inboxlink/{}/{}/{}", self.table, self.column, self.row_id)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the stored value is not in the expected format")]
    Malformed,
    #[error("the stored value was encrypted with key {0}, which is not configured")]
    UnknownKey(String),
    #[error("the stored value does not decrypt (wrong key, tampered, or moved from another row)")]
    Invalid,
}

/// The configured keys, each set up once at start-up.
pub struct Cipher {
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|(id, _)| id))
            .finish()
    }
}

impl Cipher {
    /// # Panics
    /// When `keys` is empty (configuration refuses that earlier).
    pub fn new(keys: &[MasterKey]) -> Self {
        assert!(!keys.is_empty(), "at least one master key");
        let keys = keys
            .iter()
            .map(|k| {
                use secrecy::ExposeSecret;
                let cipher = Aes256Gcm::new(k.key.expose_secret().into());
                (k.id.clone(), cipher)
            })
            .collect();
        Self { keys }
    }

    /// Id of the key that new values are encrypted with.
    pub fn current_key_id(&self) -> &str {
        &self.keys[0].0
    }

    pub fn encrypt(&self, plaintext: &[u8], slot: Slot<'_>) -> String {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = slot.aad();
        let sealed = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory value cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{VERSION}.{id}.{}", URL_SAFE_NO_PAD.encode(out))
    }

    pub fn encrypt_str(&self, plaintext: &str, slot: Slot<'_>) -> String {
        self.encrypt(plaintext.as_bytes(), slot)
    }

    pub fn decrypt(&self, stored: &str, slot: Slot<'_>) -> Result<SecretBox<Vec<u8>>, CryptoError> {
        let mut parts = stored.splitn(3, '.');
        let (Some(VERSION), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::Malformed);
        };
        let cipher = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, c)| c)
            .ok_or_else(|| CryptoError::UnknownKey(id.to_owned()))?;
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| CryptoError::Malformed)?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Malformed)?;
        let aad = slot.aad();
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map(|v| SecretBox::new(Box::new(v)))
            .map_err(|_| CryptoError::Invalid)
    }

    pub fn decrypt_string(
        &self,
        stored: &str,
        slot: Slot<'_>,
    ) -> Result<SecretString, CryptoError> {
        use secrecy::ExposeSecret;
        let bytes = self.decrypt(stored, slot)?;
        let text = std::str::from_utf8(bytes.expose_secret()).map_err(|_| CryptoError::Invalid)?;
        Ok(SecretString::from(text.to_owned()))
    }

    /// The key id a stored value names, if it is well-formed.
    pub fn key_id_of(stored: &str) -> Option<&str> {
        let mut parts = stored.splitn(3, '.');
        (parts.next() == Some(VERSION))
            .then(|| parts.next())
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn key(b: u8) -> MasterKey {
        MasterKey::new([b; 32])
    }

    const SLOT: Slot<'static> = Slot {
        table: "app_credentials",
        column: "client_secret",
        row_id: "r1",
    };

    #[test]
    fn round_trip_with_fresh_nonce() {
        let c = Cipher::new(&[key(1)]);
        let a = c.encrypt(b"secret value", SLOT);
        let b = c.encrypt(b"secret value", SLOT);
        assert_ne!(a, b, "a fresh nonce per value");
        assert!(!a.contains("secret"));
        assert_eq!(
            c.decrypt(&a, SLOT).unwrap().expose_secret(),
            b"secret value"
        );
    }

    #[test]
    fn bound_to_row_and_column() {
        let c = Cipher::new(&[key(1)]);
        let v = c.encrypt(b"x", SLOT);
        assert_eq!(
            c.decrypt(
                &v,
                Slot {
                    row_id: "r2",
                    ..SLOT
                }
            )
            .unwrap_err(),
            CryptoError::Invalid
        );
        assert_eq!(
            c.decrypt(
                &v,
                Slot {
                    column: "other",
                    ..SLOT
                }
            )
            .unwrap_err(),
            CryptoError::Invalid
        );
    }

    #[test]
    fn rotation_old_keys_still_decrypt() {
        let old = Cipher::new(&[key(1)]);
        let v = old.encrypt(b"x", SLOT);
        let rotated = Cipher::new(&[key(2), key(1)]);
        assert_eq!(rotated.decrypt(&v, SLOT).unwrap().expose_secret(), b"x");
        assert_eq!(
            Cipher::key_id_of(&rotated.encrypt(b"x", SLOT)),
            Some(key(2).id())
        );
        let without = Cipher::new(&[key(2)]);
        assert!(matches!(
            without.decrypt(&v, SLOT),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn tampering_is_detected() {
        let c = Cipher::new(&[key(1)]);
        let v = c.encrypt(b"secret value", SLOT);
        let mut bytes = v.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(c.decrypt(&tampered, SLOT).is_err());
        assert_eq!(
            c.decrypt("garbage", SLOT).unwrap_err(),
            CryptoError::Malformed
        );
    }
}
