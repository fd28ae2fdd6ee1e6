//! Named fixtures: the fake app registration, request bodies built with the
//! SDK's builder types (so a new optional field never breaks a test), and
//! the calls tests make again and again, each answering what the test needs.

use inboxlink_sdk::types::{self, builder};
use inboxlink_sdk::{Client, Error};
use uuid::Uuid;

use super::{Page, TestApp, TestAppBuilder, follow};

/// The fake Entra ID's app registration: tenant, client id, secret Value.
pub const TENANT: &str = "6f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c";
pub const CLIENT_ID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
pub const SECRET: &str = "Xy7~secret.value_for-the_fake";
/// A verified domain of [`TENANT`].
pub const TENANT_DOMAIN: &str = "contoso.cz";
/// The mailbox of `with_mailbox`.
pub const MAILBOX: &str = "podatelna@contoso.cz";
pub type SdkResult<T> = Result<T, Error<types::Problem>>;

/// A unique, realistic client secret Value.
pub fn new_secret() -> String {
    format!("Q8x~{}", Uuid::new_v4().simple())
}

/// The client id of the placeholder app (no identity provider knows it).
pub const PLACEHOLDER_CLIENT_ID: &str = "5f4d7e3c-1b2a-4c5d-8e9f-0a1b2c3d4e5f";

/// A valid app credential of the placeholder app, named `name`, with `secret`.
pub fn app_credential_body(name: &str, secret: &str) -> builder::AppCredentialCreate {
    builder::AppCredentialCreate::default()
        .name(name)
        .client_id(PLACEHOLDER_CLIENT_ID)
        .tenant_id("contoso.onmicrosoft.com")
        .client_secret(secret.to_owned())
}

/// The fake's app registration as an app credential, its secret expiring in 200 days.
pub fn fake_app_credential_body(name: &str) -> builder::AppCredentialCreate {
    builder::AppCredentialCreate::default()
        .name(name)
        .client_id(CLIENT_ID)
        .tenant_id(TENANT)
        .client_secret(SECRET.to_owned())
        .secret_expires_at(chrono::Utc::now().date_naive() + chrono::Days::new(200))
}

/// A delegated, unshared mailbox body.
pub fn mailbox_body(email: &str, app_credential_id: Uuid) -> builder::MailboxCreate {
    builder::MailboxCreate::default()
        .email(email)
        .app_credential_id(app_credential_id)
}

/// The calls tests make most, on any client; each expects success unless it
/// answers a `Result`.
pub trait Api {
    async fn create_app_credential(&self, body: builder::AppCredentialCreate) -> Uuid;
    async fn create_mailbox(&self, body: builder::MailboxCreate) -> Uuid;
    async fn mailbox(&self, id: Uuid) -> types::Mailbox;
    /// The first page of mailboxes, of one status or all.
    async fn mailboxes(&self, status: Option<types::MailboxStatus>) -> Vec<types::Mailbox>;
    async fn app_credential(&self, id: Uuid) -> types::AppCredential;
    async fn update_mailbox(
        &self,
        id: Uuid,
        edit: impl FnOnce(builder::MailboxUpdate) -> builder::MailboxUpdate,
    ) -> SdkResult<types::Mailbox>;
    async fn update_app_credential(
        &self,
        id: Uuid,
        edit: impl FnOnce(builder::AppCredentialUpdate) -> builder::AppCredentialUpdate,
    ) -> SdkResult<types::AppCredential>;
    /// `mailbox_refresh` with an empty body.
    async fn refresh(&self, id: Uuid) -> SdkResult<types::RefreshResult> {
        self.refresh_to(id, None).await
    }
    /// `mailbox_refresh`, sending the browser back to `return_url` afterwards.
    async fn refresh_to(
        &self,
        id: Uuid,
        return_url: Option<&str>,
    ) -> SdkResult<types::RefreshResult>;
    /// The sign-in URL of a new refresh.
    async fn sign_in_url(&self, id: Uuid) -> String;
    async fn access_token(&self, id: Uuid) -> SdkResult<types::AccessTokenResponse>;
    async fn check(&self, id: Uuid, send_test_message: bool) -> types::CheckReport;
    async fn verify(&self, app_credential: Uuid) -> types::VerifyResult;
    async fn setup(&self, app_credential: Uuid) -> types::AppCredentialSetup;
    /// The URL of a new admin-consent link.
    async fn consent_url(&self, app_credential: Uuid) -> SdkResult<String>;
    /// The newest 200 audit events.
    async fn audit(&self) -> Vec<types::AuditEvent>;
}

impl Api for Client {
    async fn create_app_credential(&self, body: builder::AppCredentialCreate) -> Uuid {
        let created = self.app_credential_create().body(body).send().await;
        created.expect("app credential created").id
    }

    async fn create_mailbox(&self, body: builder::MailboxCreate) -> Uuid {
        let created = self.mailbox_create().body(body).send().await;
        created.expect("mailbox created").id
    }

    async fn mailbox(&self, id: Uuid) -> types::Mailbox {
        let got = self.mailbox_get().id(id).send().await;
        got.expect("mailbox").into_inner()
    }

    async fn mailboxes(&self, status: Option<types::MailboxStatus>) -> Vec<types::Mailbox> {
        let list = match status {
            Some(status) => self.mailbox_list().status(status),
            None => self.mailbox_list(),
        };
        list.send().await.expect("mailbox list").into_inner().items
    }

    async fn app_credential(&self, id: Uuid) -> types::AppCredential {
        let got = self.app_credential_get().id(id).send().await;
        got.expect("app credential").into_inner()
    }

    async fn update_mailbox(
        &self,
        id: Uuid,
        edit: impl FnOnce(builder::MailboxUpdate) -> builder::MailboxUpdate,
    ) -> SdkResult<types::Mailbox> {
        let sent = self.mailbox_update().id(id).body_map(edit).send().await;
        sent.map(|r| r.into_inner())
    }

    async fn update_app_credential(
        &self,
        id: Uuid,
        edit: impl FnOnce(builder::AppCredentialUpdate) -> builder::AppCredentialUpdate,
    ) -> SdkResult<types::AppCredential> {
        let sent = self.app_credential_update().id(id).body_map(edit);
        sent.send().await.map(|r| r.into_inner())
    }

    async fn refresh_to(
        &self,
        id: Uuid,
        return_url: Option<&str>,
    ) -> SdkResult<types::RefreshResult> {
        let mut body = builder::RefreshRequest::default();
        if let Some(url) = return_url {
            body = body.return_url(url.to_owned());
        }
        let body = types::RefreshRequest::try_from(body).expect("a refresh body");
        let sent = self.mailbox_refresh().id(id).body(body).send().await;
        sent.map(|r| r.into_inner())
    }

    async fn sign_in_url(&self, id: Uuid) -> String {
        let started = self.refresh(id).await.expect("refresh");
        started.authorization_url.expect("a sign-in URL")
    }

    async fn access_token(&self, id: Uuid) -> SdkResult<types::AccessTokenResponse> {
        let sent = self.mailbox_access_token().id(id).send().await;
        sent.map(|r| r.into_inner())
    }

    async fn check(&self, id: Uuid, send_test_message: bool) -> types::CheckReport {
        let check = self.mailbox_check().id(id);
        let sent = check.body_map(|b| b.send_test_message(send_test_message));
        sent.send().await.expect("check").into_inner()
    }

    async fn verify(&self, app_credential: Uuid) -> types::VerifyResult {
        let sent = self.app_credential_verify().id(app_credential).send().await;
        sent.expect("verify").into_inner()
    }

    async fn setup(&self, app_credential: Uuid) -> types::AppCredentialSetup {
        let sent = self.app_credential_setup().id(app_credential).send().await;
        sent.expect("setup").into_inner()
    }

    async fn consent_url(&self, app_credential: Uuid) -> SdkResult<String> {
        let body = types::AdminConsentRequest::default();
        let link = self.app_credential_admin_consent().id(app_credential);
        let sent = link.body(body).send().await;
        sent.map(|r| r.into_inner().admin_consent_url)
    }

    async fn audit(&self) -> Vec<types::AuditEvent> {
        let sent = self.audit_event_list().limit(200u32).send().await;
        sent.expect("audit").into_inner().items
    }
}

impl TestApp {
    /// A new app credential of [`super::ORG`], as `with_app_credential` makes it.
    pub async fn new_app_credential(&self) -> Uuid {
        let body = if self.has_fake() {
            fake_app_credential_body("E-filing")
        } else {
            app_credential_body("Cred", &new_secret())
        };
        self.admin().create_app_credential(body).await
    }

    /// A new delegated, unshared mailbox of [`super::ORG`] on the app credential.
    pub async fn new_mailbox(&self, email: &str) -> Uuid {
        self.new_mailbox_with(email, |b| b).await
    }

    /// Like [`Self::new_mailbox`], with `edit` applied to the body
    /// (e.g. `|b| b.access_mode(AccessMode::AppOnly)`).
    pub async fn new_mailbox_with(
        &self,
        email: &str,
        edit: impl FnOnce(builder::MailboxCreate) -> builder::MailboxCreate,
    ) -> Uuid {
        let body = edit(mailbox_body(email, self.app_credential_id()));
        self.admin().create_mailbox(body).await
    }

    /// The mailbox, read by an admin of [`super::ORG`].
    pub async fn mailbox(&self, id: Uuid) -> types::Mailbox {
        self.admin().mailbox(id).await
    }

    /// A whole sign-in: refresh, the fake's authorize redirect, the callback page.
    pub async fn sign_in(&self, id: Uuid) -> Page {
        follow(&self.admin().sign_in_url(id).await).await
    }

    /// A sign-in whose callback answers 200.
    pub async fn sign_in_ok(&self, id: Uuid) {
        let page = self.sign_in(id).await;
        assert_eq!(page.status, 200, "{page}");
    }

    /// A new mailbox, signed in.
    pub async fn signed_in_mailbox(&self, email: &str) -> Uuid {
        let id = self.new_mailbox(email).await;
        self.sign_in_ok(id).await;
        id
    }

    /// `count` new mailboxes (`box0@contoso.cz`, ...), signed in, their
    /// grants aged `days`.
    pub async fn aged_mailboxes(&self, count: usize, days: i64) -> Vec<Uuid> {
        let mut ids = Vec::new();
        for i in 0..count {
            let id = self.signed_in_mailbox(&format!("box{i}@contoso.cz")).await;
            self.age_grant(id, days).await;
            ids.push(id);
        }
        ids
    }

    /// [`MAILBOX`] signed in with short-lived access tokens, so the next
    /// access-token call refreshes.
    pub async fn signed_in_with_stale_token(&self) -> Uuid {
        self.fake().set_access_token_ttl(60);
        let id = self.signed_in_mailbox(MAILBOX).await;
        self.fake().set_access_token_ttl(3600);
        id
    }
}

impl TestAppBuilder {
    /// Starts with the fake Entra ID and its app credential, and signs in
    /// [`MAILBOX`] with short-lived access tokens: the next access-token call
    /// refreshes. Answers the app and the mailbox.
    pub async fn start_with_stale_token(self) -> (TestApp, Uuid) {
        let app = self.with_fake_entra().with_app_credential().start().await;
        let id = app.signed_in_with_stale_token().await;
        (app, id)
    }
}

/// Asserts a mailbox's status and the code of its `status_detail`.
#[track_caller]
pub fn assert_status(mailbox: &types::Mailbox, status: types::MailboxStatus, code: &str) {
    assert_eq!(mailbox.status, status, "{mailbox:?}");
    let detail = mailbox
        .status_detail
        .as_ref()
        .expect("the mailbox says why");
    assert_eq!(detail.code, code, "{mailbox:?}");
}
