//! The OpenAPI document, generated from the handlers and types.
//!
//! utoipa emits OpenAPI 3.1 (`openapi/inboxlink.json`); the SDK generator
//! reads 3.0 only, so [`downgrade_to_30`] derives `openapi/inboxlink-3.0.json`.
//! Both files are committed; a test regenerates and compares them. The
//! operations are collected from the same registration that serves them
//! ([`crate::http::api`]); this module adds what is common to all of them.

use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use crate::http::problem;
use crate::service;

mod downgrade;

pub use downgrade::downgrade_to_30;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Inboxlink API",
        description = "Connects organisation mailboxes on Microsoft 365 to the applications that use them, over OAuth 2.0.\n\n\
            Authenticate with `Authorization: Bearer <JWT>`. Errors are RFC 9457 problem documents with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    // Relative: the spec is served by the service itself (`/openapi.json`),
    // so this is its own origin in every deployment.
    servers((
        url = "/",
        description = "This Inboxlink: the root of the origin that serves this document (`INBOXLINK_PUBLIC_URL`)"
    )),
    components(schemas(problem::Problem, problem::ProblemField, service::mailboxes::CheckStepStatus)),
    modifiers(&Security),
    tags(
        (name = "app-credentials", description = "Entra ID app registrations that mailboxes sign in with"),
        (name = "mailboxes", description = "Mailboxes, their authorization and status"),
        (name = "oauth", description = "The redirect URI Microsoft sends the browser back to"),
        (name = "audit", description = "Who did what"),
        (name = "events", description = "What changed that a person or a system may have to act on"),
        (name = "webhooks", description = "Signed deliveries of the events to receivers (Standard Webhooks)"),
        (name = "email-alerts", description = "The events as messages to people"),
        (name = "bridge", description = "Password logins for legacy IMAP and SMTP clients, relayed to the mailbox with OAuth"),
        (name = "operations", description = "Health and readiness"),
    )
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
        let mut metrics = Http::new(HttpAuthScheme::Bearer);
        metrics.description = Some(
            "The operator's metrics token (`INBOXLINK_METRICS_TOKEN`), not an API token".into(),
        );
        components.add_security_scheme("metrics_token", SecurityScheme::Http(metrics));
    }
}

/// The document: [`ApiDoc`] with the operations of [`crate::http::api`].
pub fn spec() -> utoipa::openapi::OpenApi {
    use utoipa_actix_web::AppExt;
    let (_, spec) = actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(crate::http::api)
        .split_for_parts();
    spec
}

/// The paths of the operations, in actix's pattern syntax (the same as the spec's).
pub fn paths() -> Vec<String> {
    spec().paths.paths.keys().cloned().collect()
}

/// The 3.1 document as committed in `openapi/inboxlink.json` (built once).
pub fn spec_json() -> String {
    static SPEC: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mut value = serde_json::to_value(spec()).expect("the spec serializes");
        add_error_responses(&mut value);
        list_known_codes(&mut value);
        let mut text = serde_json::to_string_pretty(&value).expect("the spec serializes");
        text.push('\n');
        text
    });
    SPEC.clone()
}

/// The 3.0 form as committed in `openapi/inboxlink-3.0.json`.
pub fn spec_30_json() -> String {
    let value: Value = serde_json::from_str(&spec_json()).expect("valid JSON");
    let mut text =
        serde_json::to_string_pretty(&downgrade_to_30(value)).expect("the spec serializes");
    text.push('\n');
    text
}

/// Answers of the HTTP server itself (actix-web) to any request, before an
/// operation runs: no body, so no media type.
pub const SERVER_RESPONSES: [(&str, &str); 1] = [(
    "431",
    "Request Header Fields Too Large: too many header fields or too large a request head; \
     refused by the HTTP server before the operation runs, without a body",
)];

/// Lists the known values of each `code` field in its description (the
/// field stays a string, so a new code does not break an older client).
fn list_known_codes(spec: &mut Value) {
    use crate::codes::{Code, Use};
    let fields: [(&str, &str, &[Use]); 6] = [
        ("Problem", "code", &[Use::Problem]),
        ("ProblemField", "code", &[Use::Field]),
        ("StatusDetail", "code", &[Use::Detail]),
        ("LastError", "code", &[Use::Detail]),
        ("CheckStep", "code", &[Use::Check]),
        ("VerifyResult", "code", &[Use::Verify, Use::Detail]),
    ];
    for (schema, field, uses) in fields {
        let Some(property) = spec
            .pointer_mut(&format!("/components/schemas/{schema}/properties/{field}"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let known: Vec<String> = Code::ALL
            .iter()
            .filter(|c| uses.iter().any(|u| c.is(*u)))
            .map(|c| format!("`{c}`"))
            .collect();
        let before = property
            .get("description")
            .and_then(Value::as_str)
            .map(|d| format!("{d}\n\n"))
            .unwrap_or_default();
        property.insert(
            "description".into(),
            Value::String(format!(
                "{before}Known values (more may come; treat an unknown one as a failure of its kind): {}.",
                known.join(", ")
            )),
        );
    }
}

/// Adds the problem responses every operation can give, derived from what it
/// is: authenticated (401, 403), addressing an `{id}` (400, 404), taking a body
/// (400, 413, 415, 422), and 500 / 503 everywhere; and the HTTP server's own
/// body-less answers ([`SERVER_RESPONSES`]) to every operation, browser pages
/// included. Declared ones are kept.
fn add_error_responses(spec: &mut Value) {
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (_method, op) in item.iter_mut() {
            let secured = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| {
                    s.iter()
                        .any(|r| r.as_object().is_some_and(|o| !o.is_empty()))
                });
            let has_body = op.get("requestBody").is_some();
            let mut codes: Vec<(&str, &str)> = Vec::new();
            if secured {
                codes.push((
                    "401",
                    "Missing or invalid bearer token (`missing_token`, `invalid_token`)",
                ));
            }
            // Roles come with API tokens (JWTs) only.
            let with_roles = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            if with_roles {
                codes.push(("403", "The token's roles do not allow this (`forbidden`)"));
            }
            let has_query = op
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            if path.contains('{') {
                codes.push(("400", "Malformed request (`invalid_id`, `malformed_json`)"));
                codes.push((
                    "404",
                    "No such resource in the caller's organisation (`not_found`)",
                ));
            } else if has_body || has_query {
                codes.push((
                    "400",
                    "Malformed request (`malformed_json`, `invalid_query`)",
                ));
            }
            if has_body {
                codes.push(("413", "The body is too large (`payload_too_large`)"));
                codes.push(("415", "The body is not JSON (`unsupported_media_type`)"));
            }
            if has_body || has_query {
                codes.push((
                    "422",
                    "Invalid fields (`validation_failed`, `invalid_body`)",
                ));
            }
            codes.push(("500", "Unexpected error (`internal`)"));
            codes.push(("503", "The database is not available (`unavailable`)"));
            // Browser-facing pages document their own (HTML) answers.
            let html = op["responses"]
                .as_object()
                .is_some_and(|r| r.values().any(|r| r["content"].get("text/html").is_some()));
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            if html {
                codes.clear();
            }
            for (code, description) in codes {
                responses.entry(code).or_insert_with(|| {
                    json!({
                        "description": description,
                        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
                    })
                });
            }
            for (code, description) in SERVER_RESPONSES {
                responses
                    .entry(code)
                    .or_insert_with(|| json!({ "description": description }));
            }
            let mut sorted: Vec<_> = std::mem::take(responses).into_iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            responses.extend(sorted);
        }
    }
}
