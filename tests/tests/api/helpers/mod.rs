//! What the end-to-end tests share: the test app and its builder ([`app`]),
//! tokens and SDK clients ([`tokens`]), named fixtures and calls
//! ([`fixtures`]), the browser's side of a sign-in ([`browser`]), plain HTTP
//! ([`http`]), the captured log ([`logs`]), and the few places that reach into
//! the service's internals ([`internals`]).

mod app;
mod browser;
mod fixtures;
mod hooks;
mod http;
mod internals;
mod logs;
mod postgres;
mod tokens;

pub use app::{TestApp, TestAppBuilder};
pub use browser::{Page, authorize, browser, callback, callback_in, follow, state_of};
pub use fixtures::{
    Api, CLIENT_ID, MAILBOX, PLACEHOLDER_CLIENT_ID, SECRET, TENANT, TENANT_DOMAIN,
    app_credential_body, assert_status, fake_app_credential_body, mailbox_body, new_secret,
};
pub use http::{Answer, http, send};
pub use logs::{LOGS, logged_with, logs};
pub use tokens::{AUDIENCE, ISSUER, METRICS_TOKEN, ORG, claims, random_b64, sign_hs256};

/// Runs each named `async fn name(app: TestAppBuilder)` once on SQLite and once on PostgreSQL.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(crate::helpers::TestApp::new()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(app) = crate::helpers::TestApp::postgres() else { return };
                super::$name(app).await
            }
        }
    )*};
}
pub(crate) use backend_tests;

/// Asserts that a call failed with the HTTP status and problem code.
#[track_caller]
pub fn assert_problem(
    err: &inboxlink_sdk::Error<inboxlink_sdk::types::Problem>,
    status: u16,
    code: &str,
) {
    use inboxlink_sdk::ProblemExt;
    assert_eq!(
        (err.http_status(), err.code()),
        (Some(status), Some(code)),
        "{err:?}"
    );
}
