//! `GET /oauth/callback`: where Microsoft sends the browser back. Answers a
//! small self-contained page (Czech or English by Accept-Language), rendered
//! from `templates/oauth_callback.html` with askama's HTML auto-escaping, or
//! a 303 to the allow-listed return URL with the mailbox id and the outcome code.
//!
//! Over 400 lines with its tests because the Czech text of every outcome
//! code (`czech()`) lives here until the code catalogue takes it over.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::service::Services;
use crate::service::callback::{CallbackOutcome, CallbackParams};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::http::resource("/oauth/callback").route(web::get().to(oauth_callback)));
}

/// OAuth redirect URI
///
/// Microsoft sends the browser here after a sign-in or an admin consent.
/// Answers an HTML page, or 303 to the return URL given to refresh.
#[utoipa::path(
    get, path = "/oauth/callback", tag = "oauth", operation_id = "oauth_callback",
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
                    outcome.mailbox_id.as_deref().unwrap_or_default(),
                )
                .append_pair("outcome", &outcome.code);
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

/// Czech message and hint for each outcome code the callback can show (the
/// callback's own codes and every code of [`crate::idp::explain`]).
fn czech(code: &str) -> Option<(&'static str, &'static str)> {
    const AGAIN: &str = "Spusťte znovu akci Obnovit.";
    const SIGN_IN_AGAIN: &str = "Přihlaste se znovu přes akci Obnovit.";
    Some(match code {
        // The callback's own outcomes (service::signin).
        "signed_in" => ("Schránka je připojena.", "Okno můžete zavřít."),
        "admin_consent_granted" => (
            "Souhlas správce byl udělen; Inboxlink ho potvrdí při příštím ověření přihlašovacích údajů aplikace.",
            "Okno můžete zavřít.",
        ),
        "invalid_state" => (
            "Odpověď na přihlášení neobsahuje identifikátor přihlášení (state).",
            AGAIN,
        ),
        "state_expired" => ("Platnost přihlášení vypršela (platí 10 minut).", AGAIN),
        "state_unknown" => (
            "Toto přihlášení je neznámé nebo již bylo použito.",
            "Spusťte znovu akci Obnovit; každý odkaz pro přihlášení platí jen jednou.",
        ),
        "invalid_callback" => ("Odpověď na přihlášení neobsahuje kód ani chybu.", AGAIN),
        "id_token_invalid" => (
            "Přihlášení se nepodařilo ověřit: token identity (id_token) od Microsoftu neprošel kontrolou.",
            AGAIN,
        ),
        "identity_mismatch" => (
            "Přihlásili jste se jiným účtem, než je účet schránky.",
            "Spusťte znovu akci Obnovit a vyberte účet této schránky.",
        ),
        "identity_changed" => (
            "Tento účet není ten, se kterým byla schránka připojena (jiný objekt nebo tenant v Entra ID).",
            "Pokud byl účet záměrně nahrazen, schránku odstraňte a přidejte znovu; jinak se přihlaste původním účtem.",
        ),
        "settings_changed" => (
            "Nastavení schránky se během přihlášení změnilo; přihlášení nebylo použito.",
            AGAIN,
        ),
        "consent_tenant_mismatch" => (
            "Odpověď na souhlas správce uvádí jiný tenant, než je tenant přihlašovacích údajů aplikace.",
            "Otevřete odkaz pro souhlas správce jako správce vlastního tenantu těchto přihlašovacích údajů aplikace.",
        ),
        "no_refresh_token" => (
            "Microsoft nevrátil obnovovací token (nebyl udělen offline přístup).",
            "Udělte oprávnění offline_access (souhlasem správce) a spusťte znovu akci Obnovit.",
        ),
        "internal" => (
            "Na straně služby Inboxlink došlo k chybě.",
            "Zkuste to znovu; pokud potíže trvají, obraťte se na správce služby.",
        ),
        "microsoft_unreachable" => (
            "Nepodařilo se spojit se servery Microsoftu.",
            "Zkuste to za chvíli znovu; pokud potíže trvají, zkontrolujte síťové připojení serveru.",
        ),
        // Microsoft's answers, as idp::explain classifies them.
        "microsoft_unavailable" => (
            "Microsoft je momentálně přetížený nebo nedostupný.",
            "Počkejte několik minut a spusťte znovu akci Obnovit.",
        ),
        "refresh_token_expired" => (
            "Platnost obnovovacího tokenu vypršela (nebyl použit 90 dní).",
            SIGN_IN_AGAIN,
        ),
        "code_expired" => (
            "Přihlášení trvalo příliš dlouho a jeho kód vypršel.",
            "Spusťte znovu akci Obnovit a dokončete přihlášení během několika minut.",
        ),
        "grant_revoked" => (
            "Oprávnění k přístupu bylo odvoláno (například po resetování hesla).",
            SIGN_IN_AGAIN,
        ),
        "sign_in_required" => (
            "Tenant vyžaduje nové přihlášení nebo vícefaktorové ověření.",
            "Přihlaste se znovu přes akci Obnovit a dokončete vícefaktorové ověření.",
        ),
        "blocked_by_conditional_access" => (
            "Přihlášení zablokovaly zásady podmíněného přístupu (Conditional Access) tenantu.",
            "Správce tenantu musí této aplikaci povolit přihlášení v zásadách podmíněného přístupu.",
        ),
        "consent_required" => (
            "Chybí souhlas s oprávněními aplikace.",
            "Správce tenantu musí udělit souhlas správce (admin consent) – použijte odkaz pro souhlas správce z nastavení přihlašovacích údajů aplikace.",
        ),
        "consent_declined" => (
            "Souhlas s oprávněními nebyl udělen.",
            "Spusťte znovu akci Obnovit a požadovaná oprávnění přijměte.",
        ),
        "access_denied" => (
            "Souhlas nebo přihlášení bylo odmítnuto.",
            "Spusťte znovu akci Obnovit; pokud se to opakuje, obraťte se na správce tenantu.",
        ),
        "redirect_uri_mismatch" => (
            "Adresa pro přesměrování (redirect URI) není v aplikaci zaregistrována.",
            "V Entra ID zaregistrujte přesně tu adresu pro přesměrování, kterou uvádějí přihlašovací údaje aplikace (platforma Web).",
        ),
        "app_not_found" => (
            "Aplikace nebyla v tenantu nalezena.",
            "Zkontrolujte ID klienta (Application ID) a ID tenantu (Directory ID) v přihlašovacích údajích aplikace.",
        ),
        "invalid_client_secret" => (
            "Tajný kód klienta (client secret) je neplatný.",
            "Vložte hodnotu tajného kódu (Value – zobrazí se jen jednou, při vytvoření), ne jeho ID (Secret ID).",
        ),
        "client_secret_expired" => (
            "Platnost tajného kódu klienta vypršela.",
            "V Entra ID vytvořte nový tajný kód klienta a uložte ho do přihlašovacích údajů aplikace.",
        ),
        "tenant_not_found" => (
            "Tenant nebyl nalezen.",
            "Zkontrolujte ID tenantu: identifikátor GUID (Directory (tenant) ID) nebo ověřenou doménu.",
        ),
        "code_already_redeemed" => ("Kód přihlášení už byl použit.", AGAIN),
        "pkce_mismatch" => ("Přihlášení se nepodařilo ověřit (PKCE).", AGAIN),
        "invalid_grant" => ("Oprávnění k přístupu už nelze použít.", SIGN_IN_AGAIN),
        "invalid_client" => (
            "Microsoft nepřijal přihlašovací údaje aplikace.",
            "Zkontrolujte ID klienta, ID tenantu a tajný kód klienta v přihlašovacích údajích aplikace.",
        ),
        "sign_in_failed" => (
            "Přihlášení u Microsoftu se nezdařilo.",
            "Porovnejte registraci aplikace v Entra ID s pokyny v nastavení přihlašovacích údajů aplikace.",
        ),
        _ => return None,
    })
}

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
    let (message, hint, english_label) = match czech(&outcome.code).filter(|_| cs) {
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
        code: &outcome.code,
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
            code: "x".into(),
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
            code: "<i>code</i>".into(),
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
            assert!(html.contains(&escape("<i>code</i>")), "{html}");
        }
    }

    fn outcome(ok: bool, code: &str, message: &str, hint: Option<&str>) -> CallbackOutcome {
        CallbackOutcome {
            ok,
            code: code.into(),
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
                "signed_in",
                "podatelna@mesto.cz is connected (signed in as podatelna@mesto.cz).",
                None,
            ),
            outcome(
                true,
                "admin_consent_granted",
                "Admin consent was granted for the tenant 6f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c; Inboxlink confirms it at the next verify.",
                Some("You can close this window."),
            ),
            outcome(
                false,
                "consent_tenant_mismatch",
                "The consent answer names the tenant 00000000-0000-4000-8000-000000000000, not this app credential's.",
                Some(
                    "Open the admin-consent link as an administrator of the app credential's own tenant.",
                ),
            ),
            outcome(
                false,
                "identity_changed",
                "podatelna@mesto.cz is not the account this mailbox was connected with (another Entra ID object or tenant).",
                Some(
                    "If the account was replaced on purpose, delete the mailbox and add it again; otherwise sign in with the original account.",
                ),
            ),
            outcome(
                false,
                "settings_changed",
                "The mailbox settings changed during the sign-in; the sign-in was not applied.",
                again,
            ),
            outcome(
                false,
                "invalid_state",
                "The sign-in answer has no state.",
                again,
            ),
            outcome(
                false,
                "state_expired",
                "This sign-in has expired (it is valid for 10 minutes).",
                again,
            ),
            outcome(
                false,
                "state_unknown",
                "This sign-in is unknown or was already used.",
                Some("Start again with Refresh; each sign-in link works once."),
            ),
            outcome(
                false,
                "invalid_callback",
                "The sign-in answer has neither a code nor an error.",
                again,
            ),
            outcome(
                false,
                "id_token_invalid",
                "The sign-in could not be verified: the id_token has expired.",
                again,
            ),
            outcome(
                false,
                "identity_mismatch",
                "Signed in as jan@mesto.cz, but this mailbox is podatelna@mesto.cz.",
                Some("Start again with Refresh and choose the mailbox's own account."),
            ),
            outcome(
                false,
                "no_refresh_token",
                "Microsoft returned no refresh token (offline access was not granted).",
                Some(
                    "Grant the offline_access permission (admin consent) and start again with Refresh.",
                ),
            ),
            outcome(
                false,
                "internal",
                "Something went wrong on our side.",
                Some("Try again; if it persists, contact the administrator."),
            ),
            outcome(
                false,
                "microsoft_unreachable",
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
            assert!(czech(&o.code).is_some(), "{} has Czech text", o.code);
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
        let o = outcome(false, "something_new", "Something <new>.", Some("Do this."));
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
