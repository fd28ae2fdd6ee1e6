//! The relying party's side of the fake, for tests that need what the
//! service sends: the authorize request with PKCE, and the redemption of the
//! code it returns.

use super::pkce_s256;

/// The redirect URI test clients register and send.
pub const REDIRECT_URI: &str = "http://localhost:8080/oauth/callback";
/// The delegated scopes the service asks for.
pub const DELEGATED_SCOPE: &str = "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access openid profile email";
/// The PKCE verifier test clients use.
pub const VERIFIER: &str = "a-code-verifier-that-is-long-enough-0123456789abcdef";

/// The authorize query as the service sends it (state `state-123`, nonce
/// `nonce-456`, the S256 challenge of [`VERIFIER`]).
pub fn authorize_query(client_id: &str, login_hint: &str) -> Vec<(String, String)> {
    let challenge = pkce_s256(VERIFIER);
    [
        ("client_id", client_id),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT_URI),
        ("response_mode", "query"),
        ("scope", DELEGATED_SCOPE),
        ("state", "state-123"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("nonce", "nonce-456"),
        ("prompt", "select_account"),
        ("login_hint", login_hint),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// The form of the code redemption as the service sends it.
pub fn redeem_form<'a>(
    client_id: &'a str,
    secret: &'a str,
    code: &'a str,
) -> Vec<(&'static str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("client_secret", secret),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
    ]
}
