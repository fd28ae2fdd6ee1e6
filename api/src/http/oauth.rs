//! `GET /oauth/callback`: where Microsoft sends the browser back. Answers a
//! small self-contained page (Czech or English by Accept-Language), rendered
//! from `templates/oauth_callback.html` with askama's HTML auto-escaping, or
//! a 303 to the allow-listed return URL with the mailbox id and the outcome code.
//! The Czech text of each outcome comes from the code catalogue
//! ([`crate::codes`]).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use askama::Template;

use crate::service::Services;
use crate::service::callback::{CallbackOutcome, CallbackParams};

/// The operations of this resource.
pub fn services(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(oauth_callback);
}

/// OAuth redirect URI
///
/// Microsoft sends the browser here after a sign-in or an admin consent.
/// Answers an HTML page, or 303 to the return URL given to refresh.
#[utoipa::path(
    tag = "oauth", operation_id = "oauth_callback",
    params(
        ("state" = Option<String>, Query, description = "The state of the sign-in"),
        ("code" = Option<String>, Query, description = "The authorization code"),
        ("error" = Option<String>, Query, description = "Microsoft's error code"),
        ("error_description" = Option<String>, Query, description = "Microsoft's error description (AADSTS...)"),
        ("admin_consent" = Option<String>, Query, description = "`True` after admin consent"),
        ("tenant" = Option<String>, Query, description = "The tenant of an admin consent"),
    ),
    responses(
        (status = 200, description = "The outcome, as an HTML page", content_type = "text/html", body = String),
        (status = 303, description = "To the return URL, with `mailbox_id` and `outcome`"),
        (status = 400, description = "Unknown, used or expired state (HTML page)", content_type = "text/html", body = String),
    ),
    security(())
)]
#[get("/oauth/callback")]
pub async fn oauth_callback(req: HttpRequest, services: web::Data<Services>) -> HttpResponse {
    let params = web::Query::<CallbackParams>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default();
    let outcome = services.oauth_callback(params).await;
    let mut response = match &outcome.return_url {
        Some(url) => {
            let mut target = url::Url::parse(url).expect("stored return URLs are valid");
            target
                .query_pairs_mut()
                .append_pair(
                    "mailbox_id",
                    &outcome
                        .mailbox_id
                        .map(|id| id.to_string())
                        .unwrap_or_default(),
                )
                .append_pair("outcome", outcome.code.as_str());
            let mut r = HttpResponse::SeeOther();
            r.insert_header((header::LOCATION, target.to_string()));
            r
        }
        None => {
            let status = actix_web::http::StatusCode::from_u16(outcome.status)
                .unwrap_or(actix_web::http::StatusCode::OK);
            HttpResponse::build(status)
        }
    };
    response
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if outcome.return_url.is_some() {
        return response.finish();
    }
    let czech = prefers_czech(
        req.headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    response
        .content_type("text/html; charset=utf-8")
        .body(page(&outcome, czech))
}

/// Whether Czech comes before English in Accept-Language.
fn prefers_czech(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let mut best: Option<(f32, bool)> = None;
    for part in accept.split(',') {
        let mut it = part.trim().split(';');
        let lang = it.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = it
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let czech = lang == "cs" || lang.starts_with("cs-");
        let english = lang == "en" || lang.starts_with("en-");
        if (czech || english) && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, czech));
        }
    }
    best.is_some_and(|(_, czech)| czech)
}

/// The page's own words in one language.
struct Words {
    lang: &'static str,
    done: &'static str,
    failed: &'static str,
    what_to_do: &'static str,
    code: &'static str,
    /// Put before Microsoft's English text on a page in another language.
    in_english: Option<&'static str>,
}

const ENGLISH: Words = Words {
    lang: "en",
    done: "Done",
    failed: "The connection failed",
    what_to_do: "What to do",
    code: "Code",
    in_english: None,
};

const CZECH: Words = Words {
    lang: "cs",
    done: "Hotovo",
    failed: "Připojení se nezdařilo",
    what_to_do: "Co dělat",
    code: "Kód",
    in_english: Some("Podrobnosti (anglicky)"),
};

/// The `AADSTSnnnn` number an explained message names, if any.
fn aadsts_in(message: &str) -> Option<&str> {
    let at = message.find("AADSTS")?;
    let rest = &message[at..];
    let end = 6 + rest[6..]
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len() - 6);
    (end > 6).then(|| &rest[..end])
}

/// What the callback page shows; every field is escaped when rendered.
#[derive(Template)]
#[template(path = "oauth_callback.html")]
struct CallbackPage<'a> {
    words: &'static Words,
    title: &'static str,
    ok: bool,
    email: Option<&'a str>,
    /// Set when the message is Microsoft's English text on a Czech page.
    english_label: Option<&'static str>,
    message: &'a str,
    hint: Option<&'a str>,
    code: &'a str,
    aadsts: Option<&'a str>,
}

fn page(outcome: &CallbackOutcome, cs: bool) -> String {
    let words = if cs { &CZECH } else { &ENGLISH };
    let (message, hint, english_label) = match outcome.code.czech().filter(|_| cs) {
        Some((message, hint)) => (message, Some(hint), None),
        // A code without Czech text: Microsoft's English explanation, labelled as such.
        None => (
            outcome.message.as_str(),
            outcome.hint.as_deref(),
            words.in_english,
        ),
    };
    CallbackPage {
        words,
        title: if outcome.ok { words.done } else { words.failed },
        ok: outcome.ok,
        email: outcome.email.as_deref(),
        english_label,
        message,
        hint,
        code: outcome.code.as_str(),
        // The Czech text replaces the English message; keep the number Microsoft answered.
        aadsts: aadsts_in(&outcome.message).filter(|_| cs),
    }
    .render()
    // Only a failing Display impl or filter makes rendering fail; the fields are text.
    .expect("the callback page renders")
}

#[cfg(test)]
mod tests {
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
}
