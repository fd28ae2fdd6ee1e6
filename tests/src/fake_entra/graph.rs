//! A fake Microsoft Graph mail API on the fake Entra ID's server, checking
//! bearer tokens as Graph does: the token must be one the fake issued,
//! unexpired, unrevoked, and for Graph (its audience); a delegated token
//! needs the delegated permission and reaches the user's own mailbox (or one
//! it was made a delegate of), an app-only token every mailbox unless an
//! application access policy blocks it. Errors carry Graph's JSON
//! (`{"error": {"code", "message"}}`) and status.
//!
//! | endpoint | path |
//! |---|---|
//! | inbox | `GET {authority}/v1.0/users/{address}/mailFolders/inbox` |
//! | send | `POST {authority}/v1.0/users/{address}/sendMail` (answers `202`) |

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::State;
use super::endpoints::{has_scope, resource_of};

type Shared = web::Data<std::sync::Mutex<State>>;

const GRAPH: &str = "https://graph.microsoft.com";

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1.0/users/{user}/mailFolders/inbox", web::get().to(inbox))
        .route("/v1.0/users/{user}/sendMail", web::post().to(send_mail));
}

fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("a valid status"))
        .json(
            json!({ "error": { "code": code, "message": message, "innerError": {
        "request-id": uuid::Uuid::new_v4().to_string(),
    } } }),
        )
}

/// What a request may do, by its permission.
#[derive(Clone, Copy)]
enum Needs {
    Read,
    Send,
}

/// The request's token checked, the mailbox found and reachable: the
/// mailbox's key, or Graph's refusal (a whole response, rarely built).
#[allow(clippy::result_large_err)]
fn authorize(
    st: &mut State,
    req: &HttpRequest,
    user: &str,
    needs: Needs,
) -> Result<String, HttpResponse> {
    st.graph_calls += 1;
    if let Some(retry_after) = st.graph_throttle.pop_front() {
        return Err(HttpResponse::TooManyRequests()
            .insert_header((header::RETRY_AFTER, retry_after.to_string()))
            .json(json!({ "error": {
                "code": "ApplicationThrottled",
                "message": "Application is over its MailboxConcurrency limit."
            } })));
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return Err(error(
            401,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        ));
    };
    let now = st.now();
    let grant = match st.access_tokens.get(token) {
        Some(g) if !g.revoked && now < g.expires => g.clone(),
        _ => {
            return Err(error(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            ));
        }
    };
    let first = grant.scope.split_ascii_whitespace().next().unwrap_or("");
    if resource_of(first).as_deref() != Some("graph") {
        return Err(error(
            401,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.",
        ));
    }
    let key = user.to_ascii_lowercase();
    let Some(mailbox) = st.graph_mailboxes.get(&key) else {
        return Err(error(
            404,
            "ErrorInvalidUser",
            &format!("The requested user '{user}' is invalid."),
        ));
    };
    match &grant.user {
        Some(signed_in) => {
            let permission = match needs {
                Needs::Read => "Mail.ReadWrite",
                Needs::Send => "Mail.Send",
            };
            let own = signed_in.eq_ignore_ascii_case(&key)
                || mailbox
                    .delegates
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(signed_in));
            if !has_scope(&grant.scope, &format!("{GRAPH}/{permission}")) || !own {
                return Err(error(
                    403,
                    "ErrorAccessDenied",
                    "Access is denied. Check credentials and try again.",
                ));
            }
        }
        None if mailbox.app_blocked => {
            return Err(error(
                403,
                "ErrorAccessDenied",
                "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.",
            ));
        }
        None => {}
    }
    Ok(key)
}

async fn inbox(data: Shared, req: HttpRequest, user: web::Path<String>) -> HttpResponse {
    let mut st = super::endpoints::lock(&data);
    let key = match authorize(&mut st, &req, &user, Needs::Read) {
        Ok(k) => k,
        Err(refusal) => return refusal,
    };
    let mailbox = &st.graph_mailboxes[&key];
    HttpResponse::Ok().json(json!({
        "id": "AAMkAGI2TG93AAA=",
        "displayName": "Inbox",
        "parentFolderId": "AAMkAGI2AAEIAAA=",
        "childFolderCount": 0,
        "unreadItemCount": mailbox.messages,
        "totalItemCount": mailbox.messages,
        "isHidden": false,
    }))
}

async fn send_mail(
    data: Shared,
    req: HttpRequest,
    user: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let mut st = super::endpoints::lock(&data);
    let key = match authorize(&mut st, &req, &user, Needs::Send) {
        Ok(k) => k,
        Err(refusal) => return refusal,
    };
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return error(
            400,
            "RequestBodyRead",
            "Unable to read JSON request payload.",
        );
    };
    let recipients: Vec<String> = message
        .pointer("/message/toRecipients")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|r| r.pointer("/emailAddress/address").and_then(Value::as_str))
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default();
    if recipients.is_empty() {
        return error(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient is not valid., Recipient is missing.",
        );
    }
    for to in &recipients {
        if let Some(m) = st.graph_mailboxes.get_mut(to) {
            m.messages += 1;
        }
    }
    if let Some(sender) = st.graph_mailboxes.get_mut(&key) {
        sender.sent.push(message);
    }
    HttpResponse::Accepted().finish()
}
