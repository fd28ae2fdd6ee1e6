//! What a step may report of a server's answer: never the token, in any of
//! the forms a server could echo it (see [`secret_forms`]), then one line,
//! bounded.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::xoauth2;

/// The most characters of a server answer that a step reports.
const MAX_RESPONSE_CHARS: usize = 300;

const REDACTED: &str = "[REDACTED]";

/// A server answer fit to show: never the token (see [`secret_forms`]), then
/// one line, bounded. Redacting comes first so that cutting cannot leave part
/// of a token behind.
pub fn sanitize(text: &str, secret: &str, users: &[&str]) -> String {
    redact(text, &secret_forms(secret, users))
        .replace(['\r', '\n'], " ")
        .trim()
        .chars()
        .take(MAX_RESPONSE_CHARS)
        .collect()
}

/// The forms in which a server could echo the token: the token itself, its
/// base64, the base64 of the XOAUTH2 response for each of `users`, and, for a
/// response with any other user, the part of its base64 that encodes the
/// token alone (base64 works in groups of 3 bytes, so that part is the base64
/// of the token without its first 0, 1 or 2 bytes, cut to whole groups).
fn secret_forms(secret: &str, users: &[&str]) -> Vec<String> {
    if secret.is_empty() {
        return Vec::new();
    }
    let mut forms = vec![secret.to_owned()];
    // Shorter forms (under 8 characters) would redact ordinary words.
    if secret.len() >= 6 {
        forms.push(STANDARD.encode(secret));
    }
    forms.extend(users.iter().map(|u| STANDARD.encode(xoauth2(u, secret))));
    let bytes = secret.as_bytes();
    for skip in 0..3 {
        let rest = bytes.get(skip..).unwrap_or_default();
        let whole = rest.len() / 3 * 3;
        if whole >= 6 {
            forms.push(STANDARD.encode(&rest[..whole]));
        }
    }
    forms
}

/// `text` with every occurrence of any of `forms` replaced by `[REDACTED]`
/// (overlapping or adjacent occurrences become one).
fn redact(text: &str, forms: &[String]) -> String {
    let mut found: Vec<(usize, usize)> = forms
        .iter()
        .filter(|f| !f.is_empty())
        .flat_map(|f| {
            text.match_indices(f.as_str())
                .map(|(at, m)| (at, at + m.len()))
        })
        .collect();
    if found.is_empty() {
        return text.to_owned();
    }
    found.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(found.len());
    for (start, end) in found {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in merged {
        out.push_str(&text[at..start]);
        out.push_str(REDACTED);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::codes::Code;
    use crate::domain::CheckStepName;
    use crate::mail::{StepFailure, Steps, script};

    const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL291dGxvb2sub2ZmaWNlLmNvbSJ9.c2lnbmF0dXJl";

    /// Whether any `n` consecutive characters of `secret` appear in `text`.
    fn leaks(text: &str, secret: &str, n: usize) -> bool {
        let chars: Vec<char> = secret.chars().collect();
        chars
            .windows(n)
            .any(|w| text.contains(&w.iter().collect::<String>()))
    }

    #[test]
    fn a_long_echo_is_redacted_before_it_is_cut() {
        // The token straddles the 300th character: cutting first left its start.
        let text = format!("{} {TOKEN} and more", "x".repeat(280));
        let clean = sanitize(&text, TOKEN, &[]);
        assert!(!leaks(&clean, TOKEN, 6), "{clean}");
        assert!(clean.ends_with("[REDACTED] and more"), "{clean}");
        assert!(clean.chars().count() <= MAX_RESPONSE_CHARS);

        let long = format!("{}{TOKEN}", "y".repeat(295));
        let clean = sanitize(&long, TOKEN, &[]);
        assert!(!leaks(&clean, TOKEN, 4), "{clean}");
        assert_eq!(clean.chars().count(), MAX_RESPONSE_CHARS);
    }

    #[test]
    fn the_base64_forms_of_the_token_are_redacted() {
        let b64 = STANDARD.encode(TOKEN);
        let clean = sanitize(&format!("535 echo {b64} end"), TOKEN, &[]);
        assert_eq!(clean, "535 echo [REDACTED] end");

        // The XOAUTH2 response of a user in play: gone whole.
        let response = STANDARD.encode(xoauth2(script::MAILBOX, TOKEN));
        let clean = sanitize(
            &format!("NO [{response}]"),
            TOKEN,
            &[script::MAILBOX, "other@x"],
        );
        assert_eq!(clean, "NO [[REDACTED]]");
    }

    #[test]
    fn the_xoauth2_response_of_any_user_is_redacted() {
        // Users of every length modulo 3, so the token starts at each base64 alignment.
        for user in ["a@b.c", "ab@b.c", "abc@b.c", "delegate@contoso.example"] {
            let prefix = format!("user={user}\x01auth=Bearer ");
            let response = STANDARD.encode(xoauth2(user, TOKEN));
            let clean = sanitize(&format!("echo {response} end"), TOKEN, &[]);
            let inner = clean
                .strip_prefix("echo ")
                .and_then(|c| c.strip_suffix(" end"))
                .expect("framing kept");
            let (before, after) = inner.split_once(REDACTED).expect("redacted");
            // What is left around the mark encodes the user and at most two
            // bytes of the token on each side.
            assert!(before.len() <= prefix.len() / 3 * 4 + 4, "{user}: {clean}");
            assert!(after.len() <= 8, "{user}: {clean}");
        }
    }

    #[test]
    fn sanitize_keeps_ordinary_answers() {
        assert_eq!(
            sanitize("  535 5.7.3 Authentication\r\n unsuccessful ", TOKEN, &[]),
            "535 5.7.3 Authentication   unsuccessful"
        );
        assert_eq!(sanitize("token abc here", "", &[]), "token abc here");
        // A short secret is redacted as itself, never as short base64 forms.
        assert_eq!(sanitize("abc YWJj", "abc", &[]), "[REDACTED] YWJj");
        let long = "z".repeat(400);
        assert_eq!(sanitize(&long, TOKEN, &[]).len(), MAX_RESPONSE_CHARS);
    }

    #[test]
    fn overlapping_forms_are_one_redaction() {
        let forms = vec!["abcdef".to_owned(), "defghi".to_owned(), "xyz".to_owned()];
        assert_eq!(
            redact("1abcdefghi2 xyz3", &forms),
            "1[REDACTED]2 [REDACTED]3"
        );
        assert_eq!(redact("plain", &forms), "plain");
    }

    #[tokio::test]
    async fn steps_redact_what_the_server_echoes() {
        let secret = TOKEN;
        let mut steps = Steps::new(secret);
        steps.sends_as(&["shared@contoso.example"]);
        let echoed = STANDARD.encode(xoauth2("shared@contoso.example", secret));
        let echo = echoed.clone();
        steps
            .run::<(), _>(
                CheckStepName::SmtpAuth,
                Duration::from_secs(5),
                async move {
                    Err(StepFailure::new(
                        Code::SmtpAuthFailed,
                        Some(format!("535 5.7.8 {}{echo}", "p".repeat(290))),
                        "hint",
                    ))
                },
            )
            .await;
        let response = steps.steps[0].response.clone().expect("response");
        assert!(!leaks(&response, &echoed, 4), "{response}");
        assert!(!leaks(&response, secret, 4), "{response}");
        assert!(steps.failed());
    }
}
