//! The callback page: the language chosen from Accept-Language, everything
//! it shows escaped, and every outcome's words in Czech.

use super::*;
use crate::codes::Code;

/// `text` as the template shows it (askama's HTML escaping).
fn escape(text: &str) -> String {
    let Ok(escaped) = askama::filters::escape(text, askama::filters::Html);
    escaped.to_string()
}

#[test]
fn language_negotiation() {
    assert!(prefers_czech(Some("cs-CZ,cs;q=0.9,en;q=0.8")));
    assert!(!prefers_czech(Some("en-US,en;q=0.9,cs;q=0.8")));
    assert!(prefers_czech(Some("de, cs;q=0.5")));
    assert!(!prefers_czech(None));
}

#[test]
fn pages_escape_what_they_show() {
    let o = CallbackOutcome {
        ok: false,
        code: Code::Internal,
        message: "<script>alert(1)</script>".into(),
        hint: None,
        mailbox_id: None,
        email: None,
        return_url: None,
        status: 400,
    };
    assert!(!page(&o, false).contains("<script>"));
}

#[test]
fn every_shown_value_is_escaped() {
    let o = CallbackOutcome {
        ok: false,
        code: Code::Internal,
        message: "AADSTS65004: <b>message</b>".into(),
        hint: Some("<u>hint</u>".into()),
        mailbox_id: None,
        email: Some("<s>mailbox</s>@example.org".into()),
        return_url: None,
        status: 400,
    };
    for cs in [false, true] {
        let html = page(&o, cs);
        for tag in ["<i>", "<b>", "<u>", "<s>"] {
            assert!(!html.contains(tag), "{tag} in {html}");
        }
        assert!(
            html.contains(&escape("<s>mailbox</s>@example.org")),
            "{html}"
        );
    }
}

fn outcome(ok: bool, code: Code, message: &str, hint: Option<&str>) -> CallbackOutcome {
    CallbackOutcome {
        ok,
        code,
        message: message.into(),
        hint: hint.map(Into::into),
        mailbox_id: None,
        email: Some("podatelna@mesto.cz".into()),
        return_url: None,
        status: 200,
    }
}

/// Every outcome the callback page can show, with its English text:
/// the callback's own (service::signin, idp's unreachable) and every
/// code idp::explain gives.
fn every_outcome() -> Vec<CallbackOutcome> {
    let again = Some("Start again with Refresh.");
    let mut all = vec![
        outcome(
            true,
            Code::SignedIn,
            "podatelna@mesto.cz is connected (signed in as podatelna@mesto.cz).",
            None,
        ),
        outcome(
            true,
            Code::AdminConsentGranted,
            "Admin consent was granted for the tenant 6f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c; Inboxlink confirms it at the next verify.",
            Some("You can close this window."),
        ),
        outcome(
            false,
            Code::ConsentTenantMismatch,
            "The consent answer names the tenant 00000000-0000-4000-8000-000000000000, not this app credential's.",
            Some(
                "Open the admin-consent link as an administrator of the app credential's own tenant.",
            ),
        ),
        outcome(
            false,
            Code::IdentityChanged,
            "podatelna@mesto.cz is not the account this mailbox was connected with (another Entra ID object or tenant).",
            Some(
                "If the account was replaced on purpose, delete the mailbox and add it again; otherwise sign in with the original account.",
            ),
        ),
        outcome(
            false,
            Code::SettingsChanged,
            "The mailbox settings changed during the sign-in; the sign-in was not applied.",
            again,
        ),
        outcome(
            false,
            Code::InvalidState,
            "The sign-in answer has no state.",
            again,
        ),
        outcome(
            false,
            Code::StateExpired,
            "This sign-in has expired (it is valid for 10 minutes).",
            again,
        ),
        outcome(
            false,
            Code::StateUnknown,
            "This sign-in is unknown or was already used.",
            Some("Start again with Refresh; each sign-in link works once."),
        ),
        outcome(
            false,
            Code::InvalidCallback,
            "The sign-in answer has neither a code nor an error.",
            again,
        ),
        outcome(
            false,
            Code::IdTokenInvalid,
            "The sign-in could not be verified: the id_token has expired.",
            again,
        ),
        outcome(
            false,
            Code::IdentityMismatch,
            "Signed in as jan@mesto.cz, but this mailbox is podatelna@mesto.cz.",
            Some("Start again with Refresh and choose the mailbox's own account."),
        ),
        outcome(
            false,
            Code::NoRefreshToken,
            "Microsoft returned no refresh token (offline access was not granted).",
            Some(
                "Grant the offline_access permission (admin consent) and start again with Refresh.",
            ),
        ),
        outcome(
            false,
            Code::Internal,
            "Something went wrong on our side.",
            Some("Try again; if it persists, contact the administrator."),
        ),
        outcome(
            false,
            Code::MicrosoftUnreachable,
            "Microsoft could not be reached (timeout).",
            Some(
                "Nothing to do: the service retries with back-off; check the network if it persists.",
            ),
        ),
    ];
    all.extend(
        crate::idp::explain::examples()
            .into_iter()
            .map(|x| outcome(false, x.code, &x.message, Some(x.hint))),
    );
    all
}

#[test]
fn every_outcome_has_czech_text() {
    for o in every_outcome() {
        let (en, cs) = (page(&o, false), page(&o, true));
        assert!(o.code.czech().is_some(), "{} has Czech text", o.code);
        assert_ne!(cs, en, "{}", o.code);
        assert!(cs.contains("lang=\"cs\"") && en.contains("lang=\"en\""));
        assert!(en.contains(&escape(&o.message)), "{en}");
        assert!(
            !cs.contains(&escape(&o.message)),
            "no English message: {cs}"
        );
        if let Some(hint) = &o.hint {
            assert!(en.contains(&escape(hint)), "{en}");
            assert!(!cs.contains(&escape(hint)), "no English hint: {cs}");
        }
        for english in [
            "anglicky",
            "What to do",
            "Code:",
            "The connection failed",
            "Done",
        ] {
            assert!(!cs.contains(english), "{english} on {cs}");
        }
        assert!(cs.contains(&format!("<code>{}</code>", o.code)), "{cs}");
        assert!(cs.contains("podatelna@mesto.cz"), "{cs}");
    }
}

#[test]
fn czech_pages_keep_the_aadsts_number() {
    let x = crate::idp::explain("access_denied", Some(65004), None);
    let o = outcome(false, x.code, &x.message, Some(x.hint));
    let cs = page(&o, true);
    assert!(cs.contains("Souhlas s oprávněními nebyl udělen."), "{cs}");
    assert!(cs.contains("<code>AADSTS65004</code>"), "{cs}");
    assert_eq!(aadsts_in("no number AADSTS here"), None);
    assert_eq!(aadsts_in("x (AADSTS50011): y"), Some("AADSTS50011"));
    assert_eq!(aadsts_in("AADSTS7"), Some("AADSTS7"));
}

#[test]
fn a_code_without_czech_text_shows_the_english_labelled() {
    let o = outcome(
        false,
        Code::Unreachable,
        "Something <new>.",
        Some("Do this."),
    );
    let cs = page(&o, true);
    assert!(
        cs.contains(&format!(
            "Podrobnosti (anglicky): {}",
            escape("Something <new>.")
        )),
        "{cs}"
    );
    assert!(!cs.contains("<new>"), "{cs}");
    assert!(cs.contains("Do this."), "{cs}");
}
