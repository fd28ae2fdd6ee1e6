//! A bridge password: what a legacy client types instead of OAuth.
//!
//! 36 characters of a 32-letter alphabet without look-alikes (no `0 1 l o`),
//! shown in groups of four (`k7qm-3xta-…`): the first 8 are the selector
//! (40 bits, stored in the clear, find the row), the other 28 the secret
//! (140 bits). Dashes, spaces and case do not matter when it is typed. Only
//! an Argon2id PHC hash of the whole password is stored.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};

const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
pub const SELECTOR_LEN: usize = 8;
pub const SECRET_LEN: usize = 28;
const LEN: usize = SELECTOR_LEN + SECRET_LEN;
// 5 bits a character: at least 128 bits of secret.
const _: () = assert!(SECRET_LEN * 5 >= 128);

/// Argon2id's memory for a new hash, in KiB (1 pass, 1 lane).
///
/// Far below the 19 MiB OWASP recommends for passwords people choose, on
/// purpose: a bridge password is 140 random bits, so no cost buys anything
/// against guessing it from a stolen hash (2^139 tries on average), while
/// every login pays it on the login's path. 19 MiB cost each login ~20 ms
/// of CPU and left the allocator holding tens of MiB; 1 MiB and 2 passes
/// still took ~0.4 ms of the bridge's login (docs/benchmarks.md). Each hash
/// names its own cost, so hashes stored with another one still verify.
pub const M_COST_KIB: u32 = 64;
const T_COST: u32 = 1;

fn argon2() -> Argon2<'static> {
    let params = Params::new(M_COST_KIB, T_COST, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A bridge password, as typed (normalised). Never printed by `Debug`.
pub struct BridgeSecret(SecretString);

impl std::fmt::Debug for BridgeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BridgeSecret({}…)", self.selector())
    }
}

impl BridgeSecret {
    /// A new random password.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let text: String = (0..LEN)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect();
        Self(SecretString::from(text))
    }

    /// What a client typed, if it can be a bridge password at all.
    pub fn parse(typed: &str) -> Option<Self> {
        let text: String = typed
            .chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        (text.len() == LEN && text.bytes().all(|b| ALPHABET.contains(&b)))
            .then(|| Self(SecretString::from(text)))
    }

    /// The first, non-secret part, which finds the stored row.
    pub fn selector(&self) -> &str {
        &self.0.expose_secret()[..SELECTOR_LEN]
    }

    /// The form shown once to the person who created it: groups of four.
    pub fn shown(&self) -> String {
        let text = self.0.expose_secret().as_bytes();
        text.chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("-")
    }

    /// The Argon2id PHC string to store (a random salt, [`M_COST_KIB`]).
    /// CPU work: call it off the async workers.
    pub fn hash(&self) -> String {
        argon2()
            .hash_password(self.0.expose_secret().as_bytes())
            .map(|h| h.to_string())
            .expect("argon2 with its default parameters hashes")
    }

    /// Whether this is the password of `phc`. CPU work, like [`Self::hash`].
    pub fn verify(&self, phc: &str) -> bool {
        argon2()
            .verify_password(self.0.expose_secret().as_bytes(), phc)
            .is_ok()
    }
}

/// Spends the time of one verification on nothing, so an unknown user name
/// or selector takes as long to refuse as a wrong password.
pub fn verify_nothing(typed: &str) {
    static DUMMY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| BridgeSecret::generate().hash());
    let secret = BridgeSecret::parse(typed).unwrap_or_else(BridgeSecret::generate);
    let _ = secret.verify(&DUMMY);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_hashes_name_their_cost_and_older_costs_still_verify() {
        let secret = BridgeSecret::generate();
        let phc = secret.hash();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(secret.verify(&phc));
        // A hash stored with the crate's default cost (19 MiB) before.
        let older = Argon2::default()
            .hash_password(secret.0.expose_secret().as_bytes())
            .expect("hashed")
            .to_string();
        assert!(older.contains("m=19456"), "{older}");
        assert!(secret.verify(&older));
        assert!(!BridgeSecret::generate().verify(&older));
    }

    #[test]
    fn generated_passwords_are_typeable_and_read_back() {
        let a = BridgeSecret::generate();
        let shown = a.shown();
        assert_eq!(shown.len(), LEN + LEN / 4 - 1);
        assert!(shown.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)));
        let typed = shown.to_uppercase().replace('-', " ");
        let back = BridgeSecret::parse(&typed).expect("what was shown parses");
        assert_eq!(back.0.expose_secret(), a.0.expose_secret());
        assert_eq!(back.selector().len(), SELECTOR_LEN);
        assert!(!format!("{a:?}").contains(&a.0.expose_secret()[SELECTOR_LEN..]));
        assert_ne!(a.shown(), BridgeSecret::generate().shown());
    }

    #[test]
    fn other_text_is_no_password() {
        for typed in [
            "",
            "hunter2",
            "0000-0000-0000-0000-0000-0000-0000-0000-0000",
        ] {
            assert!(BridgeSecret::parse(typed).is_none(), "{typed}");
        }
    }

    #[test]
    fn the_hash_verifies_only_its_password() {
        let a = BridgeSecret::generate();
        let phc = a.hash();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains(a.0.expose_secret()));
        assert!(a.verify(&phc));
        assert!(!BridgeSecret::generate().verify(&phc));
        assert!(!a.verify("not a phc string"));
    }
}
