//! Bridge passwords: created (shown once, stored as an Argon2id hash),
//! listed without the password, revoked at once; the bridge's login check
//! (unknown, wrong, expired, revoked; `last_used_at`; an audit row per new
//! source address); the user name when two organisations have the address
//! (through the IMAP listener, each password reaching its own mailbox:
//! `bridge_imap.rs`).

use std::net::IpAddr;

use inboxlink::service::bridge_passwords::{BridgeLogin, BridgeRefusal};
use serde_json::{Value, json};

use crate::helpers::{
    Answer, Api, ORG, TestApp, TestAppBuilder, app_credential_body, backend_tests, mailbox_body,
    new_secret,
};

const SCANNER: &str = "scanner@contoso.cz";

fn peer(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

fn passwords_path(mailbox: impl std::fmt::Display) -> String {
    format!("/mailboxes/{mailbox}/bridge-passwords")
}

/// A new bridge password of `mailbox`, created by `org`'s operator: the answer.
pub async fn new_password_of(
    app: &TestApp,
    org: &str,
    mailbox: impl std::fmt::Display,
    name: &str,
) -> Value {
    let token = app.token(org, &["operator"]);
    let body = json!({ "name": name });
    let answer = app
        .call_as(&token, "POST", &passwords_path(&mailbox), Some(&body))
        .await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    // The Location names the new password, which reads back without its secret.
    let location = answer.headers["location"].to_str().expect("a Location");
    let id = answer.body["id"].as_str().expect("id");
    assert!(
        location.ends_with(&format!("{}/{id}", passwords_path(&mailbox))),
        "{location}"
    );
    let path = format!("{}/{id}", passwords_path(&mailbox));
    let read = app.call_as(&token, "GET", &path, None).await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    let mut shown = answer.body.clone();
    shown.as_object_mut().expect("an object").remove("password");
    assert_eq!(read.body, shown);
    answer.body
}

async fn login(
    app: &TestApp,
    username: &str,
    password: &str,
    from: &str,
) -> Result<BridgeLogin, BridgeRefusal> {
    app.bridge_login(username, password, peer(from)).await
}

async fn list(app: &TestApp, mailbox: uuid::Uuid) -> Vec<Value> {
    let answer = app.admin_call("GET", &passwords_path(mailbox), None).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["items"].as_array().expect("items").clone()
}

/// The audit rows of `action`, newest first.
pub(crate) async fn audited(app: &TestApp, action: &str) -> Vec<Value> {
    let answer = app.admin_call("GET", "/audit-events?limit=200", None).await;
    assert_eq!(answer.status, 200);
    let items = answer.body["items"].as_array().expect("items").clone();
    items
        .into_iter()
        .filter(|r| r["action"] == action)
        .collect()
}

backend_tests!(a_password_is_shown_once_and_revoked_at_once);
async fn a_password_is_shown_once_and_revoked_at_once(app: TestAppBuilder) {
    let app = app.with_app_credential().start().await;
    let mailbox = app.new_mailbox(SCANNER).await;
    let created = new_password_of(&app, ORG, mailbox, "Scanner, 2nd floor").await;
    let password = created["password"].as_str().expect("password").to_owned();
    let password_id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["name"], "Scanner, 2nd floor");
    assert_eq!(created["username"], SCANNER, "the address is unambiguous");
    assert!(created["expires_at"].is_null() && created["last_used_at"].is_null());
    // Typeable: groups of four lower-case letters and digits, 140 bits of secret.
    assert_eq!(password.split('-').count(), 9, "{password}");
    assert!(
        password
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_lowercase() || b.is_ascii_digit()),
        "{password}"
    );
    let second = new_password_of(&app, ORG, mailbox, "ERP").await;
    assert_ne!(second["password"], created["password"]);

    // Listed, never with the password; stored only as an Argon2id hash.
    let items = list(&app, mailbox).await;
    assert_eq!(items.len(), 2);
    assert!(
        items.iter().all(|i| i.get("password").is_none()),
        "{items:?}"
    );
    assert_eq!(items[0]["id"], created["id"]);
    assert_eq!(items[0]["username"], SCANNER);
    let stored = app.stored_bridge_passwords().await;
    let bare = password.replace('-', "");
    assert!(stored.contains("$argon2id$"), "{stored}");
    assert!(
        !stored.contains(&bare[8..]) && !stored.contains(&password),
        "{stored}"
    );

    // The bridge's login: typed as shown, in capitals or with spaces.
    let ok = login(&app, SCANNER, &password, "192.0.2.10")
        .await
        .expect("accepted");
    assert_eq!((ok.org.as_str(), ok.mailbox_id.as_uuid()), (ORG, mailbox));
    assert_eq!(
        ok.password_id.map(|p| p.to_string()),
        Some(password_id.clone())
    );
    let typed = password.to_uppercase().replace('-', " ");
    login(&app, "Scanner@Contoso.cz", &typed, "192.0.2.10")
        .await
        .expect("case and spacing do not matter");
    let used = list(&app, mailbox).await;
    assert!(used[0]["last_used_at"].is_string(), "{used:?}");
    assert!(used[1]["last_used_at"].is_null(), "only the one used");
    // One audit row per new source address, never with the password.
    assert_eq!(
        audited(&app, "mailbox.bridge_login_from_new_address")
            .await
            .len(),
        1
    );
    login(&app, SCANNER, &password, "2001:db8::7")
        .await
        .expect("accepted");
    let from = audited(&app, "mailbox.bridge_login_from_new_address").await;
    assert_eq!(from.len(), 2);
    assert_eq!(from[0]["detail"]["from"], "2001:db8::7");
    assert_eq!(from[0]["actor"], "system:bridge");
    assert_eq!(from[0]["target_id"], json!(mailbox));
    // Back at the first address, and again the same day: nothing more.
    for _ in 0..2 {
        login(&app, SCANNER, &password, "192.0.2.10")
            .await
            .expect("accepted");
    }
    assert_eq!(
        audited(&app, "mailbox.bridge_login_from_new_address")
            .await
            .len(),
        2
    );
    assert!(audited(&app, "mailbox.bridge_login").await.is_empty());
    // The next day, the first login from each address is audited, once.
    app.execute("UPDATE bridge_logins SET last_audited_at = '2001-01-01 12:00:00'")
        .await;
    for _ in 0..2 {
        login(&app, SCANNER, &password, "192.0.2.10")
            .await
            .expect("accepted");
    }
    let daily = audited(&app, "mailbox.bridge_login").await;
    assert_eq!(daily.len(), 1, "{daily:?}");
    assert_eq!(daily[0]["detail"]["from"], "192.0.2.10");
    assert_eq!(daily[0]["detail"]["bridge_password_id"], json!(password_id));

    // Refusals: each told apart for the listeners.
    let other = second["password"].as_str().expect("password");
    let mut wrong = bare.clone();
    wrong.replace_range(8.., &other.replace('-', "")[8..]);
    let cases = [
        (SCANNER, wrong.as_str(), BridgeRefusal::Wrong),
        (SCANNER, "hunter2", BridgeRefusal::Unknown),
        (
            "nobody@contoso.cz",
            password.as_str(),
            BridgeRefusal::Unknown,
        ),
        (
            "scanner@contoso.cz#00000000",
            password.as_str(),
            BridgeRefusal::Unknown,
        ),
    ];
    for (user, pass, refusal) in cases {
        let got = login(&app, user, pass, "192.0.2.10").await;
        assert_eq!(got.map(|l| l.mailbox_id), Err(refusal), "{user}");
    }

    // Revoked at once: gone from the list, refused at the next login.
    let path = format!("{}/{password_id}", passwords_path(mailbox));
    let revoked = app
        .call_as(&app.token(ORG, &["operator"]), "DELETE", &path, None)
        .await;
    assert_eq!(revoked.status, 204, "{:?}", revoked.body);
    let left = list(&app, mailbox).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], second["id"]);
    let got = login(&app, SCANNER, &password, "192.0.2.10").await;
    assert_eq!(got.map(|l| l.mailbox_id), Err(BridgeRefusal::Revoked));
    let again = app.admin_call("DELETE", &path, None).await;
    assert_eq!((again.status, again.code()), (404, Some("not_found")));
    let read = app.admin_call("GET", &path, None).await;
    assert_eq!(
        (read.status, read.code()),
        (404, Some("not_found")),
        "revoked is gone"
    );

    // Audited, created and revoked, never with a password.
    let created_rows = audited(&app, "mailbox.bridge_password_created").await;
    assert_eq!(created_rows.len(), 2);
    assert_eq!(
        created_rows[1]["detail"]["bridge_password_id"],
        created["id"]
    );
    let revoked_rows = audited(&app, "mailbox.bridge_password_revoked").await;
    assert_eq!(revoked_rows.len(), 1);
    assert_eq!(revoked_rows[0]["detail"]["name"], "Scanner, 2nd floor");
    let log = app.admin_call("GET", "/audit-events?limit=200", None).await;
    let text = log.body.to_string();
    assert!(!text.contains(&bare[8..]) && !text.contains(&password));
}

backend_tests!(an_expired_password_is_refused);
async fn an_expired_password_is_refused(app: TestAppBuilder) {
    let app = app.with_app_credential().start().await;
    let mailbox = app.new_mailbox(SCANNER).await;
    let soon = chrono::Utc::now() + chrono::Duration::hours(1);
    let body = json!({ "name": "Monitoring", "expires_at": soon });
    let created = app
        .admin_call("POST", &passwords_path(mailbox), Some(&body))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let shown =
        chrono::DateTime::parse_from_rfc3339(created.body["expires_at"].as_str().expect("at"));
    assert_eq!(shown.expect("a time").timestamp(), soon.timestamp());
    let password = created.body["password"]
        .as_str()
        .expect("password")
        .to_owned();
    login(&app, SCANNER, &password, "192.0.2.1")
        .await
        .expect("not expired yet");
    app.execute("UPDATE bridge_passwords SET expires_at = '2001-01-01 00:00:00'")
        .await;
    let got = login(&app, SCANNER, &password, "192.0.2.1").await;
    assert_eq!(got.map(|l| l.mailbox_id), Err(BridgeRefusal::Expired));
}

backend_tests!(bad_input_changes_nothing);
async fn bad_input_changes_nothing(app: TestAppBuilder) {
    let app = app.with_app_credential().start().await;
    let mailbox = app.new_mailbox(SCANNER).await;
    let path = passwords_path(mailbox);
    let past = chrono::Utc::now() - chrono::Duration::minutes(1);
    let field = |a: &Answer| {
        a.body["errors"].as_array().map(|e| {
            e.iter()
                .map(|f| (f["field"].clone(), f["code"].clone()))
                .collect::<Vec<_>>()
        })
    };
    let answer = app
        .admin_call(
            "POST",
            &path,
            Some(&json!({ "name": " ", "expires_at": past })),
        )
        .await;
    assert_eq!(
        (answer.status, answer.code()),
        (422, Some("validation_failed"))
    );
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(
        field(&answer),
        Some(vec![
            (json!("name"), json!("invalid_name")),
            (json!("expires_at"), json!("invalid_expiry"))
        ])
    );
    let unknown = app
        .admin_call(
            "POST",
            &path,
            Some(&json!({ "name": "x", "password": "mine" })),
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (422, Some("invalid_body"))
    );
    let nowhere = passwords_path(uuid::Uuid::now_v7());
    let missing = app
        .admin_call("POST", &nowhere, Some(&json!({ "name": "x" })))
        .await;
    assert_eq!((missing.status, missing.code()), (404, Some("not_found")));
    let listed = app.admin_call("GET", &nowhere, None).await;
    assert_eq!(listed.status, 404);
    let bad_id = app
        .admin_call("DELETE", &format!("{path}/not-a-uuid"), None)
        .await;
    assert_eq!((bad_id.status, bad_id.code()), (400, Some("invalid_id")));
    // A viewer and a service may not see or make them.
    for role in ["viewer", "service"] {
        let token = app.token(ORG, &[role]);
        let answer = app.call_as(&token, "GET", &path, None).await;
        assert_eq!(answer.status, 403, "{role}");
    }
    assert!(list(&app, mailbox).await.is_empty(), "nothing was created");
    assert!(
        audited(&app, "mailbox.bridge_password_created")
            .await
            .is_empty()
    );
}

backend_tests!(two_organisations_with_one_address_each_reach_their_own);
async fn two_organisations_with_one_address_each_reach_their_own(app: TestAppBuilder) {
    let app = app.with_app_credential().start().await;
    let acme_mailbox = app.new_mailbox(SCANNER).await;
    let acme = new_password_of(&app, ORG, acme_mailbox, "Scanner").await;
    assert_eq!(acme["username"], SCANNER);

    let globex = app.admin_of("globex");
    let cred = globex
        .create_app_credential(app_credential_body("Globex", &new_secret()))
        .await;
    let globex_mailbox = globex.create_mailbox(mailbox_body(SCANNER, cred)).await;
    let theirs = new_password_of(&app, "globex", globex_mailbox, "Scanner").await;
    let tag = |id: uuid::Uuid| id.simple().to_string()[24..].to_owned();
    assert_eq!(
        theirs["username"],
        format!("{SCANNER}#{}", tag(globex_mailbox))
    );
    // Now ambiguous for acme too: its list gives the tagged form.
    let acme_now = list(&app, acme_mailbox).await;
    assert_eq!(
        acme_now[0]["username"],
        format!("{SCANNER}#{}", tag(acme_mailbox))
    );

    // Each password reaches its own mailbox, with the address alone (as
    // configured before) or the tagged form; never the other's.
    for (answer, org, mailbox) in [
        (&acme, ORG, acme_mailbox),
        (&theirs, "globex", globex_mailbox),
    ] {
        let password = answer["password"].as_str().expect("password");
        for user in [SCANNER.to_owned(), format!("{SCANNER}#{}", tag(mailbox))] {
            let ok = login(&app, &user, password, "192.0.2.5")
                .await
                .expect("accepted");
            assert_eq!((ok.org.as_str(), ok.mailbox_id.as_uuid()), (org, mailbox));
        }
    }
    let acme_password = acme["password"].as_str().expect("password");
    let crossed = format!("{SCANNER}#{}", tag(globex_mailbox));
    let got = login(&app, &crossed, acme_password, "192.0.2.5").await;
    assert_eq!(got.map(|l| l.mailbox_id), Err(BridgeRefusal::Unknown));
    // Another organisation cannot revoke acme's password, nor list it.
    let path = format!(
        "{}/{}",
        passwords_path(acme_mailbox),
        acme["id"].as_str().expect("id")
    );
    let denied = app
        .call_as(&app.token("globex", &["admin"]), "DELETE", &path, None)
        .await;
    assert_eq!(denied.status, 404);
    login(&app, SCANNER, acme_password, "192.0.2.5")
        .await
        .expect("still valid");
}
