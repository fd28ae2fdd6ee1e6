//! Connects a mailbox end to end: app credential, mailbox, sign-in, wait until
//! active, check, access token.
//!
//! Against the sandbox (`scripts/sandbox.sh` prints the values):
//!
//! ```sh
//! INBOXLINK_URL=http://127.0.0.1:8080 INBOXLINK_TOKEN=<admin token> \
//! INBOXLINK_SERVICE_TOKEN=<service token> \
//! ENTRA_TENANT_ID=<tenant> ENTRA_CLIENT_ID=<client id> ENTRA_CLIENT_SECRET=<secret> \
//! MAILBOX=podatelna@sandbox.example \
//! cargo run -p inboxlink-sdk --example connect_mailbox -- --open-sign-in-url
//! ```
//!
//! With a real tenant, leave out `--open-sign-in-url` and open the printed URL
//! in a browser: the example waits until the sign-in completed.

use std::time::Duration;

use base64::Engine;
use inboxlink_sdk::types::{RefreshRequest, builder};
use inboxlink_sdk::{Client, ProblemExt, wait_until_active};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = env("INBOXLINK_URL")?;
    let admin = Client::with_token(&base, &env("INBOXLINK_TOKEN")?)?;
    let mailbox_address = env("MAILBOX")?;

    // 1. The Entra ID app registration. Bodies are built with the builder
    // types: fields left out (`provider`, `secret_expires_at`) keep their
    // defaults, and optional fields added later do not break this code.
    let body = builder::AppCredentialCreate::default()
        .name("E-filing office")
        .client_id(env("ENTRA_CLIENT_ID")?)
        .tenant_id(env("ENTRA_TENANT_ID")?)
        .client_secret(env("ENTRA_CLIENT_SECRET")?);
    let credential = admin.app_credential_create().body(body).send().await?;
    println!(
        "app credential {} (register {} as its redirect URI)",
        credential.id, credential.redirect_uri
    );
    let verified = admin
        .app_credential_verify()
        .id(credential.id)
        .send()
        .await?;
    println!("verify: {} ({})", verified.code, verified.message);

    // 2. The mailbox, reusing it if it exists already.
    let created = admin
        .mailbox_create()
        .body_map(|b| {
            b.email(mailbox_address.clone())
                .app_credential_id(credential.id)
        })
        .send()
        .await;
    let mailbox_id = match created {
        Ok(m) => m.id,
        Err(e) if e.code() == Some("mailbox_exists") => {
            let page = admin.mailbox_list().limit(200).send().await?;
            page.items
                .iter()
                .find(|m| m.email == mailbox_address)
                .map(|m| m.id)
                .ok_or("mailbox not found")?
        }
        Err(e) => return Err(e.into()),
    };

    // 3. Sign in once ("Refresh").
    let started = admin
        .mailbox_refresh()
        .id(mailbox_id)
        .body(RefreshRequest::default())
        .send()
        .await?;
    let url = started
        .authorization_url
        .clone()
        .ok_or("no sign-in URL (app-only mailbox?)")?;
    println!("sign in as {mailbox_address}: {url}");
    if std::env::args().any(|a| a == "--open-sign-in-url") {
        // The sandbox's fake Microsoft sign-in approves at once: follow it like a browser.
        let page = reqwest::get(&url).await?.text().await?;
        println!(
            "callback page: {}",
            if page.contains("connected") {
                "connected"
            } else {
                "failed"
            }
        );
    }
    let mailbox = wait_until_active(&admin, mailbox_id, Duration::from_secs(300)).await?;
    println!(
        "{} is {} for {} days",
        mailbox.email,
        mailbox.status,
        mailbox.validity_days.unwrap_or_default()
    );

    // 4. Check the connection: token, IMAP, SMTP.
    let report = admin
        .mailbox_check()
        .id(mailbox_id)
        .body_map(|b| b.send_test_message(true))
        .send()
        .await?;
    for step in &report.steps {
        println!(
            "  {:<14} {:<8} {:>5} ms  {}",
            step.name,
            step.status.to_string(),
            step.duration_ms,
            step.code
                .as_deref()
                .map(|c| format!("{c}: {}", step.hint.clone().unwrap_or_default()))
                .unwrap_or_default()
        );
    }
    println!("check: {}", if report.ok { "ok" } else { "FAILED" });

    // 5. What an integrating system does: get a token and authenticate IMAP with it.
    let service = Client::with_token(&base, &env("INBOXLINK_SERVICE_TOKEN")?)?;
    let token = service.mailbox_access_token().id(mailbox_id).send().await?;
    let sasl = format!(
        "user={}\x01auth=Bearer {}\x01\x01",
        token.imap_user, token.access_token
    );
    let initial_response = base64::engine::general_purpose::STANDARD.encode(sasl);
    println!(
        "IMAP: AUTHENTICATE XOAUTH2 with a {}-byte initial response as {}; token valid until {}",
        initial_response.len(),
        token.imap_user,
        token.expires_at
    );
    if !report.ok {
        return Err("the check failed".into());
    }
    Ok(())
}
