// The Rust blocks of sdk/README.md, verbatim: tests/tests/generated.rs
// compares them (INBOXLINK_BLESS=1 rewrites this file from the README).

use std::time::Duration;

use inboxlink_sdk::types::RefreshRequest;
use inboxlink_sdk::uuid::Uuid;
use inboxlink_sdk::{Client, ProblemExt, wait_until_active};

pub async fn connect(app_credential_id: Uuid) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::with_token("http://127.0.0.1:8080", "<admin or operator token>")?;

    // Add a mailbox and start its sign-in.
    let mailbox = client
        .mailbox_create()
        .body_map(|b| {
            b.email("podatelna@contoso.cz")
                .app_credential_id(app_credential_id)
        })
        .send()
        .await?;
    let started = client
        .mailbox_refresh()
        .id(mailbox.id)
        .body(RefreshRequest::default())
        .send()
        .await?;
    println!(
        "open {}",
        started.authorization_url.as_deref().unwrap_or_default()
    );

    // Wait until the person signed in, then check the connection.
    let mailbox = wait_until_active(&client, mailbox.id, Duration::from_secs(600)).await?;
    let report = client
        .mailbox_check()
        .id(mailbox.id)
        .body_map(|b| b.send_test_message(false))
        .send()
        .await?;
    for step in &report.steps {
        println!("{} {} {:?}", step.name, step.status, step.code);
    }

    // Errors carry the problem code.
    match client.mailbox_get().id(Uuid::nil()).send().await {
        Err(e) if e.code() == Some("not_found") => println!("no such mailbox"),
        other => {
            other?;
        }
    }
    Ok(())
}

/// The SASL XOAUTH2 initial response for IMAP (before base64), from a fresh token.
pub async fn imap_xoauth2(
    service: &Client,
    mailbox_id: Uuid,
) -> Result<String, Box<dyn std::error::Error>> {
    let token = service.mailbox_access_token().id(mailbox_id).send().await?;
    // SMTP authenticates as `smtp_user` (the delegate, for a shared mailbox).
    Ok(format!(
        "user={}\x01auth=Bearer {}\x01\x01",
        token.imap_user, token.access_token
    ))
}

use std::collections::HashSet;

use inboxlink_sdk::webhooks::{self, HeaderMap, VerifyError};

/// Handles one delivery. `Ok`: answer 2xx (a repeated one too); `Err`: answer 401.
pub fn on_delivery(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    handled: &mut HashSet<String>,
) -> Result<(), VerifyError> {
    let event = webhooks::verify(secret, headers, body)?;
    if !handled.insert(event.id.clone()) {
        return Ok(()); // delivered again: done already
    }
    match event.event_type.as_str() {
        "mailbox.status_changed" => println!(
            "{} is now {} ({})",
            event.data["email"], event.data["to"], event.data["status_code"]
        ),
        "mailbox.check_failed" => {
            println!("{}: {} failed", event.data["email"], event.data["step"]);
        }
        _ => {} // other types, and those a newer version adds
    }
    Ok(())
}
