//! What Microsoft's answers mean, in plain words: each AADSTS code (and
//! OAuth error) maps to a class (what the service does) and a stable code,
//! message and hint (what the user is told). Source: ../shared/FACTS.md and
//! Microsoft's error reference. The file is long because the table is (and
//! its tests, which hold real answers of Microsoft's to it).
use crate::codes::Code;

/// What the service does about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The grant is unusable: the mailbox needs a new sign-in.
    Reauth,
    /// The app credential is wrong: its mailboxes cannot work until it is fixed.
    AppCredential,
    /// A tenant set-up problem an administrator must fix (consent, policy, redirect URI).
    Setup,
    /// Microsoft is busy or unreachable: retry later, the mailbox is unchanged.
    Transient,
}

/// A classified, explained failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub class: Class,
    /// Stable machine code, e.g. `refresh_token_expired`.
    pub code: Code,
    pub message: String,
    pub hint: &'static str,
}

/// An AADSTS number: its code (whose meaning and hint the catalogue holds)
/// and what the service does about it.
struct Entry {
    aadsts: &'static [u32],
    class: Class,
    code: Code,
}

const TABLE: &[Entry] = &[
    Entry {
        aadsts: &[700082],
        class: Class::Reauth,
        code: Code::RefreshTokenExpired,
    },
    Entry {
        aadsts: &[70008],
        class: Class::Reauth,
        code: Code::CodeExpired,
    },
    Entry {
        aadsts: &[50173],
        class: Class::Reauth,
        code: Code::GrantRevoked,
    },
    Entry {
        aadsts: &[70043, 50076, 50079],
        class: Class::Reauth,
        code: Code::SignInRequired,
    },
    Entry {
        aadsts: &[53003],
        class: Class::Setup,
        code: Code::BlockedByConditionalAccess,
    },
    Entry {
        aadsts: &[65001, 90094],
        class: Class::Setup,
        code: Code::ConsentRequired,
    },
    Entry {
        aadsts: &[65004],
        class: Class::Setup,
        code: Code::ConsentDeclined,
    },
    Entry {
        aadsts: &[50011, 500117],
        class: Class::Setup,
        code: Code::RedirectUriMismatch,
    },
    Entry {
        aadsts: &[700016],
        class: Class::AppCredential,
        code: Code::AppNotFound,
    },
    Entry {
        aadsts: &[7000215],
        class: Class::AppCredential,
        code: Code::InvalidClientSecret,
    },
    Entry {
        aadsts: &[700027],
        class: Class::AppCredential,
        code: Code::CertificateNotAccepted,
    },
    Entry {
        aadsts: &[7000222],
        class: Class::AppCredential,
        code: Code::ClientSecretExpired,
    },
    Entry {
        aadsts: &[90002],
        class: Class::AppCredential,
        code: Code::TenantNotFound,
    },
    Entry {
        aadsts: &[54005],
        class: Class::Reauth,
        code: Code::CodeAlreadyRedeemed,
    },
    Entry {
        aadsts: &[501481],
        class: Class::Reauth,
        code: Code::PkceMismatch,
    },
];

/// An OAuth `error` without an AADSTS number in the table. `meaning` and
/// `hint` replace the catalogue's where the error alone says less than the
/// AADSTS number would (`interaction_required` may also mean a new sign-in).
struct Generic {
    errors: &'static [&'static str],
    class: Class,
    code: Code,
    meaning: Option<(&'static str, &'static str)>,
}

const GENERIC: &[Generic] = &[
    Generic {
        errors: &["invalid_grant"],
        class: Class::Reauth,
        code: Code::InvalidGrant,
        meaning: None,
    },
    Generic {
        errors: &["invalid_client", "unauthorized_client"],
        class: Class::AppCredential,
        code: Code::InvalidClient,
        meaning: None,
    },
    Generic {
        errors: &["access_denied"],
        class: Class::Setup,
        code: Code::AccessDenied,
        meaning: None,
    },
    Generic {
        errors: &["consent_required", "interaction_required"],
        class: Class::Setup,
        code: Code::ConsentRequired,
        meaning: Some((
            "consent or a new sign-in is required",
            "A tenant administrator must grant admin consent.",
        )),
    },
];

/// Any other error.
const FALLBACK: Generic = Generic {
    errors: &[],
    class: Class::Setup,
    code: Code::SignInFailed,
    meaning: None,
};

/// The code of a 429 / 5xx answer, `temporarily_unavailable` or `server_error`.
const UNAVAILABLE: Code = Code::MicrosoftUnavailable;

/// The hint for a stable code (for a problem stored by its code).
pub fn hint_for(code: Code) -> Option<&'static str> {
    code.hint()
}

fn meaning_and_hint(code: Code) -> (&'static str, &'static str) {
    (code.info().en, code.hint().unwrap_or_default())
}

/// Explains an OAuth error answer (`error`, and the AADSTS number from `error_description`).
///
/// `error` may come from a browser's query string: only a value that looks
/// like an OAuth error code (`[a-z_]{1,64}`) is used or repeated in the message.
pub fn explain(error: &str, aadsts: Option<u32>, status: Option<u16>) -> Explanation {
    let error = oauth_error(error);
    let answered = match (error, aadsts) {
        (Some(e), Some(n)) => format!("Microsoft answered {e} (AADSTS{n})"),
        (Some(e), None) => format!("Microsoft answered {e}"),
        (None, Some(n)) => format!("Microsoft answered an unrecognised error (AADSTS{n})"),
        (None, None) => "Microsoft answered an unrecognised error".to_owned(),
    };
    if let Some(entry) = aadsts.and_then(|n| TABLE.iter().find(|e| e.aadsts.contains(&n))) {
        let (meaning, hint) = meaning_and_hint(entry.code);
        return Explanation {
            class: entry.class,
            code: entry.code,
            message: format!("{answered}: {meaning}."),
            hint,
        };
    }
    let busy = matches!(status, Some(429) | Some(500..=599))
        || matches!(error, Some("temporarily_unavailable" | "server_error"));
    if busy {
        return Explanation {
            class: Class::Transient,
            code: UNAVAILABLE,
            message: format!("{answered}: it is busy or unavailable."),
            hint: UNAVAILABLE.hint().unwrap_or_default(),
        };
    }
    let generic = error
        .and_then(|e| GENERIC.iter().find(|g| g.errors.contains(&e)))
        .unwrap_or(&FALLBACK);
    let (meaning, hint) = generic
        .meaning
        .unwrap_or_else(|| meaning_and_hint(generic.code));
    Explanation {
        class: generic.class,
        code: generic.code,
        message: format!("{answered}: {meaning}."),
        hint,
    }
}

/// One explanation for every code [`explain`] can give (the first of each), so
/// that translations of the codes can be checked for completeness.
pub fn examples() -> Vec<Explanation> {
    let answers = TABLE
        .iter()
        .map(|e| explain("invalid_grant", e.aadsts.first().copied(), Some(400)))
        .chain([explain("temporarily_unavailable", None, Some(503))])
        .chain(GENERIC.iter().map(|g| {
            explain(
                g.errors.first().copied().unwrap_or_default(),
                None,
                Some(400),
            )
        }))
        .chain([explain("no_such_error", None, Some(400))]);
    let mut out: Vec<Explanation> = Vec::new();
    for x in answers {
        if !out.iter().any(|o| o.code == x.code) {
            out.push(x);
        }
    }
    out
}

/// `error` if it looks like an OAuth error code (`[a-z_]{1,64}`).
fn oauth_error(error: &str) -> Option<&str> {
    let ok = (1..=64).contains(&error.len())
        && error.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    ok.then_some(error)
}

/// The longest text taken from an answer, in characters.
pub const MAX_TEXT_CHARS: usize = 300;

/// Text from outside (a query string, an error answer) made safe to store and
/// show: control characters (NUL included) and bidirectional overrides are
/// dropped, whitespace runs become one space, and at most `max_chars`
/// characters are kept (the cut marked with `…`).
pub fn clean_text(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut chars = 0;
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space = chars > 0;
            continue;
        }
        if c.is_control() || is_bidi_control(c) {
            continue;
        }
        let needed = usize::from(space) + 1;
        if chars + needed > max_chars {
            if chars == max_chars {
                out.pop();
            }
            out.truncate(out.trim_end().len());
            if max_chars > 0 {
                out.push('…');
            }
            return out;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
        chars += needed;
    }
    out
}

/// Characters that reorder the text around them when it is shown.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The AADSTS number at the start of an `error_description` ("AADSTS700082: ...").
pub fn aadsts_number(description: &str) -> Option<u32> {
    let rest = description.trim_start().strip_prefix("AADSTS")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The first line of an `error_description`, without Microsoft's trace and
/// correlation ids, cleaned with [`clean_text`].
pub fn first_line(description: &str) -> String {
    clean_text(
        description.lines().next().unwrap_or_default(),
        MAX_TEXT_CHARS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aadsts_numbers_are_read() {
        assert_eq!(
            aadsts_number("AADSTS700082: The refresh token has expired\r\nTrace ID: x"),
            Some(700082)
        );
        assert_eq!(aadsts_number("something else"), None);
    }

    #[test]
    fn classes() {
        assert_eq!(
            explain("invalid_grant", Some(700082), Some(400)).class,
            Class::Reauth
        );
        assert_eq!(
            explain("invalid_client", Some(7000215), Some(401)).code,
            Code::InvalidClientSecret
        );
        assert_eq!(
            explain("invalid_client", Some(7000222), Some(401)).class,
            Class::AppCredential
        );
        assert_eq!(
            explain("temporarily_unavailable", None, Some(429)).class,
            Class::Transient
        );
        assert_eq!(
            explain("server_error", None, Some(500)).class,
            Class::Transient
        );
        assert_eq!(
            explain("invalid_grant", Some(1), Some(400)).code,
            Code::InvalidGrant
        );
        assert!(
            explain("invalid_grant", Some(700082), None)
                .message
                .contains("AADSTS700082")
        );
    }

    #[test]
    fn messages_carry_the_error_the_number_and_the_meaning() {
        assert_eq!(
            explain("invalid_grant", Some(700082), Some(400)).message,
            "Microsoft answered invalid_grant (AADSTS700082): the refresh token has expired (it was not used for 90 days)."
        );
        assert_eq!(
            explain("access_denied", Some(65004), None).message,
            "Microsoft answered access_denied (AADSTS65004): the user declined to consent."
        );
        assert_eq!(
            explain("invalid_grant", Some(1), Some(400)).message,
            "Microsoft answered invalid_grant (AADSTS1): the authorization can no longer be used."
        );
        assert_eq!(
            explain("temporarily_unavailable", None, None).message,
            "Microsoft answered temporarily_unavailable: it is busy or unavailable."
        );
        assert_eq!(
            explain("unsupported_response_type", None, None).message,
            "Microsoft answered unsupported_response_type: the sign-in failed."
        );
    }

    #[test]
    fn an_error_that_is_no_oauth_code_is_not_repeated() {
        for error in [
            "<script>alert(1)</script>",
            "invalid_grant\0",
            "invalid_grant; DROP TABLE mailboxes",
            "Invalid_Grant",
            "invalid grant",
            "invalid_grant\r\nSet-Cookie: x=1",
            "",
            "a".repeat(65).as_str(),
            "x".repeat(100_000).as_str(),
        ] {
            let x = explain(error, None, None);
            assert_eq!(x.code, Code::SignInFailed, "{error:?}");
            assert_eq!(
                x.message,
                "Microsoft answered an unrecognised error: the sign-in failed."
            );
        }
        let x = explain("<b>x</b>", Some(700082), None);
        assert_eq!(x.code, Code::RefreshTokenExpired);
        assert!(
            x.message
                .starts_with("Microsoft answered an unrecognised error (AADSTS700082): "),
            "{}",
            x.message
        );
        assert_eq!(
            explain(&"a".repeat(64), None, None).code,
            Code::SignInFailed
        );
        assert!(
            explain(&"a".repeat(64), None, None)
                .message
                .contains(&"a".repeat(64))
        );
    }

    #[test]
    fn text_is_cleaned() {
        assert_eq!(
            clean_text("AADSTS50011:\0 bad\0 uri\u{7f}", 300),
            "AADSTS50011: bad uri"
        );
        assert_eq!(clean_text("  a \t\r\n  b\u{a0}\u{2028}c  ", 300), "a b c");
        assert_eq!(clean_text("abc\u{202e}fed\u{2066}", 300), "abcfed");
        assert_eq!(clean_text("\0\u{1b}[31m", 300), "[31m");
        assert_eq!(clean_text("", 300), "");
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let cut = clean_text(&"ž".repeat(10_000), MAX_TEXT_CHARS);
        assert_eq!(cut.chars().count(), MAX_TEXT_CHARS);
        assert!(cut.ends_with("ž…"));
        let cut = clean_text(&"word ".repeat(1_000), 10);
        assert_eq!(cut, "word word…");
        assert_eq!(clean_text("exactly10!", 10), "exactly10!");
        assert_eq!(clean_text("exactly10! ", 10), "exactly10!");
        assert_eq!(clean_text("exactly11!!", 10), "exactly11…");
        assert_eq!(clean_text("abc", 0), "");
        let line = first_line(&format!(
            "AADSTS700082: {}\0\r\nTrace ID: x",
            "é".repeat(1_000)
        ));
        assert_eq!(line.chars().count(), MAX_TEXT_CHARS);
        assert!(!line.contains('\0') && !line.contains("Trace"));
    }

    #[test]
    fn examples_cover_every_code() {
        let codes: Vec<Code> = examples().iter().map(|x| x.code).collect();
        let expected = TABLE
            .iter()
            .map(|e| e.code)
            .chain(GENERIC.iter().map(|g| g.code))
            .chain([UNAVAILABLE, FALLBACK.code]);
        for code in expected {
            assert!(codes.contains(&code), "{code} in {codes:?}");
        }
        for (i, code) in codes.iter().enumerate() {
            assert!(!codes[..i].contains(code), "{code} once");
        }
    }
}
