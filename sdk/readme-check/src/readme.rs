// The Rust blocks of README.md, section `## The SDK`, verbatim: tests/tests/generated.rs
// compares them (INBOXLINK_BLESS=1 rewrites this file from the README).

use inboxlink_sdk::types::MailboxCreate;
use inboxlink_sdk::uuid::Uuid;
use inboxlink_sdk::{Client, ProblemExt};

pub async fn add_mailbox(
    token: &str,
    app_credential_id: Uuid,
) -> Result<Uuid, Box<dyn std::error::Error>> {
    let client = Client::with_token("http://127.0.0.1:8080", token)?;
    let body = MailboxCreate::builder()
        .email("podatelna@contoso.cz")
        .app_credential_id(app_credential_id);
    let mailbox = client.mailbox_create().body(body).send().await?;
    match client.mailbox_get().id(mailbox.id).send().await {
        Err(e) if e.code() == Some("not_found") => { /* … */ }
        other => {
            other?;
        }
    }
    Ok(mailbox.id)
}
