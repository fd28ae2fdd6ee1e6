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
pub(crate) fn prefers_czech(accept: Option<&str>) -> bool {
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
pub(crate) fn aadsts_in(message: &str) -> Option<&str> {
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

// The language, the escaping and every outcome's page.
#[cfg(test)]
mod tests;
