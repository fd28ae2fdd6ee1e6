//! Device-code sign-in (RFC 8628): `POST /mailboxes/{id}/refresh` with
//! `{"flow": "device_code"}` answers a code to type at Microsoft's device
//! login page; the service polls the fake Entra ID's token endpoint at the
//! interval it gave through `authorization_pending` and `slow_down`, and
//! the mailbox becomes `active` as after the callback, its identity pinned
//! the same way; an expired code and an app without public client flows
//! are explained on the mailbox.

use std::time::Duration;

use inboxlink_sdk::types::MailboxStatus;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Answer, Api, CLIENT_ID, ORG, TestApp, TestAppBuilder, backend_tests};

async fn start_device_sign_in(app: &TestApp, id: Uuid) -> Answer {
    let token = app.token(ORG, &["admin"]);
    let path = format!("/mailboxes/{id}/refresh");
    let body = json!({ "flow": "device_code" });
    app.call_as(&token, "POST", &path, Some(&body)).await
}

/// Waits until the mailbox meets `done`, for at most `within`.
async fn wait_for(
    app: &TestApp,
    id: Uuid,
    within: Duration,
    done: impl Fn(&inboxlink_sdk::types::Mailbox) -> bool,
) -> inboxlink_sdk::types::Mailbox {
    let until = std::time::Instant::now() + within;
    loop {
        let mailbox = app.mailbox(id).await;
        if done(&mailbox) || std::time::Instant::now() > until {
            return mailbox;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn detail_code(mailbox: &inboxlink_sdk::types::Mailbox) -> Option<String> {
    mailbox.status_detail.as_ref().map(|d| d.code.clone())
}

backend_tests!(a_device_code_sign_in_polls_until_the_person_signs_in);
async fn a_device_code_sign_in_polls_until_the_person_signs_in(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_mailbox().start().await;
    let (fake, id) = (app.fake(), app.mailbox_id());
    fake.allow_public_client_flows(CLIENT_ID);
    fake.set_device_code_interval(1);

    let started = start_device_sign_in(&app, id).await;
    assert_eq!(started.status, 200, "{:?}", started.body);
    let user_code = started.body["user_code"]
        .as_str()
        .expect("a user code")
        .to_owned();
    assert_eq!(
        started.body["verification_uri"],
        "https://microsoft.com/devicelogin"
    );
    assert_eq!(started.body["expires_in"], 900);
    assert!(started.body["authorization_url"].is_null());
    assert_eq!(started.body["mailbox"]["status"], "inactive");

    // Nobody has signed in: the service keeps polling, at the interval given.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let polls = fake.device_code_polls(&user_code);
    assert!(polls.len() >= 2, "polled: {polls:?}");
    for pair in polls.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(900), "{polls:?}");
    }
    assert_eq!(app.mailbox(id).await.status, MailboxStatus::Inactive);

    // Microsoft asks to slow down: the next poll comes 5 s later than before.
    fake.slow_down_device_code(&user_code);
    let before = fake.device_code_polls(&user_code).len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let slowed = fake.device_code_polls(&user_code);
    assert_eq!(slowed.len(), before + 1, "the slow_down poll: {slowed:?}");

    fake.approve_device_code(&user_code, crate::helpers::MAILBOX);
    let mailbox = wait_for(&app, id, Duration::from_secs(15), |m| {
        m.status == MailboxStatus::Active
    })
    .await;
    assert_eq!(mailbox.status, MailboxStatus::Active, "{mailbox:?}");
    assert_eq!(
        mailbox.authorized_as.as_deref(),
        Some(crate::helpers::MAILBOX)
    );
    let polls = fake.device_code_polls(&user_code);
    let gap = polls[polls.len() - 1] - polls[polls.len() - 2];
    assert!(gap >= Duration::from_secs(6), "after slow_down: {polls:?}");
    // The tokens work as after a browser sign-in.
    app.service().access_token(id).await.expect("a token");
    let audit = app.admin().audit().await;
    let signed_in = audit
        .iter()
        .find(|a| a.action == "mailbox.signed_in")
        .expect("the sign-in is audited");
    assert_eq!(signed_in.target_id, Some(id.to_string()));
}

backend_tests!(a_device_code_is_held_to_the_mailbox_and_its_failures_are_explained);
async fn a_device_code_is_held_to_the_mailbox_and_its_failures_are_explained(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_mailbox().start().await;
    let (fake, id) = (app.fake(), app.mailbox_id());
    fake.set_device_code_interval(1);

    // Public client flows are off: explained, the app credential untouched.
    let started = start_device_sign_in(&app, id).await;
    assert_eq!(started.status, 200, "{:?}", started.body);
    let mailbox = wait_for(&app, id, Duration::from_secs(10), |m| {
        detail_code(m).as_deref() == Some("public_client_flows_disabled")
    })
    .await;
    assert_eq!(
        detail_code(&mailbox).as_deref(),
        Some("public_client_flows_disabled"),
        "{mailbox:?}"
    );
    assert_eq!(mailbox.status, MailboxStatus::Inactive);
    let cred = app.admin().app_credential(app.app_credential_id()).await;
    assert!(cred.problem.is_none(), "{:?}", cred.problem);

    // Signed in with another account: refused as the callback refuses it.
    fake.allow_public_client_flows(CLIENT_ID);
    let started = start_device_sign_in(&app, id).await;
    let user_code = started.body["user_code"].as_str().expect("code").to_owned();
    fake.approve_device_code(&user_code, "someone.else@contoso.cz");
    let mailbox = wait_for(&app, id, Duration::from_secs(10), |m| {
        detail_code(m).as_deref() == Some("identity_mismatch")
    })
    .await;
    assert_eq!(detail_code(&mailbox).as_deref(), Some("identity_mismatch"));
    assert_ne!(mailbox.status, MailboxStatus::Active);

    // The code expires before anyone signs in.
    let started = start_device_sign_in(&app, id).await;
    let user_code = started.body["user_code"].as_str().expect("code").to_owned();
    fake.expire_device_code(&user_code);
    let mailbox = wait_for(&app, id, Duration::from_secs(10), |m| {
        detail_code(m).as_deref() == Some("device_code_expired")
    })
    .await;
    assert_eq!(
        detail_code(&mailbox).as_deref(),
        Some("device_code_expired")
    );
    assert!(mailbox.authorized_as.is_none());

    // A settings change during the sign-in wins: the code's tokens are not applied.
    let started = start_device_sign_in(&app, id).await;
    let user_code = started.body["user_code"].as_str().expect("code").to_owned();
    let moved = app
        .admin()
        .update_mailbox(id, |b| b.shared(true))
        .await
        .expect("update");
    assert_eq!(moved.status, MailboxStatus::Inactive);
    fake.approve_device_code(&user_code, crate::helpers::MAILBOX);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        fake.device_code_polls(&user_code).len() >= 2,
        "the approved code was redeemed"
    );
    let mailbox = app.mailbox(id).await;
    assert_eq!(mailbox.status, MailboxStatus::Inactive, "{mailbox:?}");
    assert!(mailbox.authorized_as.is_none());
}
