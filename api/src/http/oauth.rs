//! `GET /oauth/callback`: where Microsoft sends the browser back. Answers a
//! small self-contained page (Czech or English by Accept-Language) or a 303 to
//! the allow-listed return URL with the mailbox id and the outcome code.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::service::Services;
use crate::service::signin::{CallbackOutcome, CallbackParams};

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

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Czech texts for the outcomes people meet most; others show the English explanation.
fn czech(code: &str) -> Option<(&'static str, &'static str)> {
    Some(match code {
        "signed_in" => ("Schránka je připojena.", "Okno můžete zavřít."),
        "admin_consent_granted" => ("Souhlas správce byl udělen.", "Okno můžete zavřít."),
        "identity_mismatch" => (
            "Přihlásili jste se jiným účtem, než je účet schránky.",
            "Spusťte znovu Obnovit a vyberte účet schránky.",
        ),
        "state_unknown" => (
            "Toto přihlášení je neznámé nebo již bylo použito.",
            "Spusťte znovu Obnovit; každý odkaz platí jednou.",
        ),
        "state_expired" => (
            "Platnost přihlášení vypršela (10 minut).",
            "Spusťte znovu Obnovit.",
        ),
        "consent_declined" | "access_denied" => (
            "Souhlas s oprávněními nebyl udělen.",
            "Spusťte znovu Obnovit a oprávnění přijměte.",
        ),
        "consent_required" => (
            "Chybí souhlas správce.",
            "Správce tenantu musí udělit souhlas (admin consent).",
        ),
        _ => return None,
    })
}

fn page(outcome: &CallbackOutcome, cs: bool) -> String {
    let (lang, title) = match (cs, outcome.ok) {
        (true, true) => ("cs", "Hotovo"),
        (true, false) => ("cs", "Připojení se nezdařilo"),
        (false, true) => ("en", "Done"),
        (false, false) => ("en", "The connection failed"),
    };
    let (message, hint) = match czech(&outcome.code).filter(|_| cs) {
        Some((m, h)) => (m.to_owned(), Some(h.to_owned())),
        None => (outcome.message.clone(), outcome.hint.clone()),
    };
    let hint_label = if cs { "Co dělat" } else { "What to do" };
    let code_label = if cs { "Kód" } else { "Code" };
    let mailbox = outcome
        .email
        .as_deref()
        .map(|e| format!("<p class=\"m\">{}</p>", escape(e)))
        .unwrap_or_default();
    let hint = hint
        .map(|h| format!("<p><strong>{hint_label}:</strong> {}</p>", escape(&h)))
        .unwrap_or_default();
    let color = if outcome.ok { "#1a7f37" } else { "#b42318" };
    format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
<title>Inboxlink: {title}</title><style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1f2328}}\
h1{{color:{color};font-size:1.5rem}}.m{{color:#57606a}}code{{background:#f6f8fa;padding:.1rem .3rem}}</style></head>\
<body><h1>{title}</h1>{mailbox}<p>{}</p>{hint}<p class=\"m\">{code_label}: <code>{}</code></p></body></html>",
        escape(&message),
        escape(&outcome.code),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
