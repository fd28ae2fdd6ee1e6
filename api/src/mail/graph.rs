//! Microsoft Graph's mail API, for mailboxes whose transport is `graph`:
//! the check's `graph_mailbox` (`GET /v1.0/users/{address}/mailFolders/inbox`,
//! the message count) and `graph_send` (`POST /v1.0/users/{address}/sendMail`,
//! a test message to itself, answered `202`). Each failure is explained
//! from Graph's status and error code, as the IMAP and SMTP steps explain
//! their servers' answers; `429` with `Retry-After` is throttling, temporary.

use std::time::Duration;

use reqwest::StatusCode;
use secrecy::ExposeSecret;
use url::Url;

use super::{Login, StepFailure, Steps};
use crate::codes::Code;
use crate::domain::{AccessMode, CheckStepName as Step};

/// Where Graph is, and how it is reached.
#[derive(Clone)]
pub struct GraphApi {
    /// The base URL, like `https://graph.microsoft.com`.
    pub base: Url,
    pub http: reqwest::Client,
    pub step_timeout: Duration,
}

/// Graph's error body: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Default, serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Debug, Default, serde::Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The part of a mail folder the check reads.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct MailFolder {
    total_item_count: Option<u64>,
}

impl GraphApi {
    /// `graph_mailbox`, then `graph_send` when asked; stops at the first failure.
    pub async fn check(&self, steps: &mut Steps<'_>, login: &Login<'_>, send_test_message: bool) {
        let timeout = self.step_timeout;
        steps
            .run(Step::GraphMailbox, timeout, self.inbox(login))
            .await;
        if send_test_message {
            steps
                .run(Step::GraphSend, timeout, self.send_test(login))
                .await;
        }
    }

    /// `{base}/v1.0/users/{address}/{path...}`, the address one encoded segment.
    fn url(&self, address: &str, path: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("the Graph endpoint is an http(s) URL")
            .pop_if_empty()
            .extend(["v1.0", "users", address])
            .extend(path);
        url
    }

    async fn inbox(&self, login: &Login<'_>) -> Result<((), Option<String>), StepFailure> {
        let url = self.url(login.mailbox, &["mailFolders", "inbox"]);
        let response = self
            .http
            .get(url)
            .bearer_auth(login.token.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport_failure)?;
        let status = response.status();
        if !status.is_success() {
            return Err(refusal(response, login).await);
        }
        let folder: MailFolder = response.json().await.map_err(|e| {
            StepFailure::new(
                Code::GraphError,
                Some(format!("{status}: not a mail folder ({e})")),
                "Graph answered something that is not a mail folder; check INBOXLINK_GRAPH_ENDPOINT.",
            )
        })?;
        let count = folder
            .total_item_count
            .map_or_else(|| "inbox".to_owned(), |n| format!("inbox: {n} messages"));
        Ok(((), Some(format!("{} {count}", status.as_u16()))))
    }

    async fn send_test(&self, login: &Login<'_>) -> Result<((), Option<String>), StepFailure> {
        let url = self.url(login.mailbox, &["sendMail"]);
        let body = serde_json::json!({
            "message": {
                "subject": "Inboxlink connection check",
                "body": {
                    "contentType": "Text",
                    "content": "This message was sent by Inboxlink's connection check through Microsoft Graph. It can be deleted."
                },
                "toRecipients": [{ "emailAddress": { "address": login.mailbox } }]
            },
            "saveToSentItems": false
        });
        let response = self
            .http
            .post(url)
            .bearer_auth(login.token.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(transport_failure)?;
        let status = response.status();
        if status != StatusCode::ACCEPTED && !status.is_success() {
            return Err(refusal(response, login).await);
        }
        Ok(((), Some(format!("{} accepted", status.as_u16()))))
    }
}

/// A request that got no answer (described without its URL).
fn transport_failure(e: reqwest::Error) -> StepFailure {
    let hint =
        "Check the network and INBOXLINK_GRAPH_ENDPOINT; Inboxlink reaches Graph over HTTPS.";
    let (timeout, connect) = (e.is_timeout(), e.is_connect());
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if timeout {
        StepFailure::new(Code::Timeout, None, hint)
    } else if connect {
        StepFailure::new(Code::Unreachable, Some(text), hint)
    } else {
        StepFailure::new(Code::GraphError, Some(text), hint)
    }
}

/// Graph's refusal, explained.
async fn refusal(response: reqwest::Response, login: &Login<'_>) -> StepFailure {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body: ErrorBody = response.json().await.unwrap_or_default();
    let ErrorDetail { code, message } = body.error;
    let said = match (code.is_empty(), message.is_empty()) {
        (true, _) => status.to_string(),
        (false, true) => format!("{} {code}", status.as_u16()),
        (false, false) => format!(
            "{} {code}: {}",
            status.as_u16(),
            super::sanitize(&message, "", &[])
        ),
    };
    let (code, hint) = explain(status, &code, &message, retry_after, login);
    StepFailure::new(code, Some(said), hint)
}

/// Microsoft's Graph answers and what to do about each.
fn explain(
    status: StatusCode,
    code: &str,
    message: &str,
    retry_after: Option<u64>,
    login: &Login<'_>,
) -> (Code, String) {
    let app_only = login.access_mode == AccessMode::AppOnly;
    match status.as_u16() {
        401 => (
            Code::GraphAccessDenied,
            "Graph did not accept the token (InvalidAuthenticationToken): check that the app credential's cloud matches the tenant and that the token is for Graph; refresh and check again.".into(),
        ),
        403 if app_only => {
            let policy = message.contains("AccessPolicy") || message.contains("RAOP");
            let mut hint = String::from(
                "The app may not reach this mailbox through Graph. Grant the application permissions Mail.ReadWrite and Mail.Send with admin consent; ",
            );
            if policy {
                hint.push_str("an application access policy blocks it: add the mailbox to the policy's group (Test-ApplicationAccessPolicy -Identity <mailbox> -AppId <client id>), or move to RBAC for Applications; ");
            }
            hint.push_str("with RBAC for Applications, the service principal's management scope must include the mailbox (New-ManagementRoleAssignment -App <service principal> -Role \"Application Mail.ReadWrite\" -CustomResourceScope <scope>; Test-ServicePrincipalAuthorization shows what it may do). The set-up view gives the PowerShell.");
            (Code::GraphAccessDenied, hint)
        }
        403 => (
            Code::GraphAccessDenied,
            format!(
                "The signed-in account may not use this mailbox through Graph: it lacks Mail.ReadWrite / Mail.Send (sign in again after adding them), or, for a shared mailbox, Full Access and Send As{}.",
                if code.is_empty() { String::new() } else { format!(" ({code})") }
            ),
        ),
        404 => (
            Code::GraphMailboxNotFound,
            "Graph knows no such mailbox in the tenant (ErrorInvalidUser), or the mailbox is not on Exchange Online (MailboxNotEnabledForRESTAPI): check the address and the app credential's tenant.".into(),
        ),
        429 => (
            Code::GraphThrottled,
            match retry_after {
                Some(s) => format!("Microsoft throttles Graph for this mailbox or app (about 10,000 requests per 10 minutes, 4 at once per mailbox): wait {s} s (Retry-After), then check again."),
                None => "Microsoft throttles Graph for this mailbox or app (about 10,000 requests per 10 minutes, 4 at once per mailbox): wait a minute, then check again.".into(),
            },
        ),
        500..=599 => (
            Code::GraphUnavailable,
            match retry_after {
                Some(s) => format!("Graph is temporarily unavailable: try again in {s} s."),
                None => "Graph is temporarily unavailable: try again later.".into(),
            },
        ),
        _ => (
            Code::GraphError,
            "Graph refused the request; its code and message are in the response.".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[expect(
        clippy::disallowed_methods,
        reason = "a unit test of URLs and explanations: nothing is sent"
    )]
    fn api(base: &str) -> GraphApi {
        GraphApi {
            base: Url::parse(base).unwrap(),
            http: reqwest::Client::new(),
            step_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_address_is_one_encoded_path_segment() {
        let url = api("https://graph.microsoft.com").url("a/b?c@contoso.cz", &["sendMail"]);
        assert_eq!(
            url.as_str(),
            "https://graph.microsoft.com/v1.0/users/a%2Fb%3Fc@contoso.cz/sendMail"
        );
        let url = api("http://127.0.0.1:9/base/").url("a@b.cz", &["mailFolders", "inbox"]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/base/v1.0/users/a@b.cz/mailFolders/inbox"
        );
    }

    #[test]
    fn answers_are_explained_by_status_and_mode() {
        let token = SecretString::from("t".to_owned());
        let login = |access_mode| Login {
            mailbox: "a@contoso.cz",
            smtp_user: "a@contoso.cz",
            token: &token,
            access_mode,
        };
        let app = login(AccessMode::AppOnly);
        let (code, hint) = explain(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.",
            None,
            &app,
        );
        assert_eq!(code, Code::GraphAccessDenied);
        assert!(hint.contains("Test-ApplicationAccessPolicy"), "{hint}");
        assert!(hint.contains("New-ManagementRoleAssignment"), "{hint}");
        let delegated = login(AccessMode::Delegated);
        let (code, hint) = explain(StatusCode::FORBIDDEN, "", "", None, &delegated);
        assert_eq!(code, Code::GraphAccessDenied);
        assert!(!hint.contains("ApplicationAccessPolicy"), "{hint}");
        let (code, hint) = explain(StatusCode::TOO_MANY_REQUESTS, "", "", Some(7), &delegated);
        assert_eq!(code, Code::GraphThrottled);
        assert!(hint.contains("wait 7 s"), "{hint}");
        assert_eq!(
            explain(StatusCode::NOT_FOUND, "ErrorInvalidUser", "", None, &app).0,
            Code::GraphMailboxNotFound
        );
        assert_eq!(
            explain(StatusCode::BAD_GATEWAY, "", "", None, &app).0,
            Code::GraphUnavailable
        );
        assert_eq!(
            explain(StatusCode::BAD_REQUEST, "", "", None, &app).0,
            Code::GraphError
        );
    }
}
