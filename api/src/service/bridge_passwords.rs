//! Bridge passwords (admin, operator): a mailbox's logins for legacy IMAP
//! and SMTP clients, each shown once when created, stored only as an
//! Argon2id hash, revoked at once; and the bridge's check of a login
//! ([`Services::bridge_login`]), which the listeners call.
//!
//! The user name a client types is the mailbox's address when no other
//! organisation has a mailbox with it, otherwise `address#<8 hex digits of
//! the mailbox id>` (the answer gives it). Either form is accepted: the
//! password's selector finds its row, so a mailbox with the same address
//! added elsewhere later never breaks a configured client.
//!
//! The file is long because the login check is the use case that matters
//! most for security here (a hash whatever the outcome, the token and the
//! upstream connection prepared meanwhile, the bookkeeping), and it stays
//! beside the passwords it checks.

use std::net::IpAddr;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audit::Audit;
use super::{PageRequest, Services, page_type, utc};
use crate::auth::{Permission, Principal};
use crate::codes::Code;
use crate::domain::{
    Actor, AuditAction, BridgePasswordId, BridgeSecret, Cloud, DisplayName, Invalid, MailboxId,
    OrgId, verify_nothing,
};
use crate::error::{Error, Result, Validator};
use crate::store::bridge_passwords::{self as store, BridgePasswordRow, LoginNews};
use crate::store::{mailboxes, now};

/// The audit log's actor for what the bridge's listeners do.
pub const BRIDGE_ACTOR: &str = "system:bridge";
/// Verifications (Argon2id, ~20 ms of CPU each) running at once per instance.
const HASHING_AT_ONCE: usize = 4;

/// A bridge password (never the password itself).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BridgePassword {
    #[schema(value_type = Uuid)]
    pub id: BridgePasswordId,
    /// Which client it is for, as its creator named it.
    pub name: String,
    /// The user name the client logs in with.
    pub username: String,
    pub created_at: DateTime<Utc>,
    /// After this the password is refused (`null`: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// The last login with it (`null`: never used).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A new bridge password, the only answer that shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BridgePasswordWithSecret {
    #[serde(flatten)]
    pub bridge_password: BridgePassword,
    /// The password, in groups of four (dashes, spaces and case do not
    /// matter when typed). Shown only here: store it in the client now.
    pub password: String,
}

page_type!(
    /// One page of a mailbox's bridge passwords, oldest first.
    BridgePasswordPage of BridgePassword
);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BridgePasswordCreate {
    /// Which client it is for (e.g. "Scanner, 2nd floor").
    pub name: String,
    /// When it stops working; leave out for never.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why the bridge refused a login (the listeners answer each the same to
/// the client; the log and the metrics tell them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeRefusal {
    /// No such user name and password (also: not a bridge password at all).
    Unknown,
    /// The user name's password, but not this one.
    Wrong,
    Expired,
    Revoked,
    /// The database did not answer.
    Unavailable,
}

impl BridgeRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Wrong => "wrong",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Unavailable => "unavailable",
        }
    }
}

/// A login the bridge accepted: the mailbox to act as.
#[derive(Debug, Clone)]
pub struct BridgeLogin {
    pub org: OrgId,
    pub mailbox_id: MailboxId,
    /// The bridge password used (`None`: the check's one-time login).
    pub password_id: Option<BridgePasswordId>,
    /// The cloud of the mailbox's app credential: where the upstream is.
    pub cloud: Cloud,
}

/// The user name's suffix naming the mailbox: the last 8 hex digits of its
/// id (the random part of a UUID v7).
fn mailbox_tag(id: MailboxId) -> String {
    let hex = id.as_uuid().simple().to_string();
    hex[hex.len() - 8..].to_owned()
}

/// The user name that names the mailbox whatever other organisations hold
/// (shown where the address alone is ambiguous; the check's one-time login
/// always uses it).
pub(crate) fn probe_username(address: &str, mailbox: MailboxId) -> String {
    format!("{address}#{}", mailbox_tag(mailbox))
}

/// The user name shown for a mailbox's passwords.
fn username(address: &str, mailbox: MailboxId, same_address: i64) -> String {
    if same_address <= 1 {
        address.to_owned()
    } else {
        probe_username(address, mailbox)
    }
}

/// Whether `typed` names the mailbox: its address, or the address with its tag.
fn names_mailbox(typed: &str, address: &str, mailbox: MailboxId) -> bool {
    let typed = typed.trim().to_ascii_lowercase();
    match typed.split_once('#') {
        None => typed == address,
        Some((a, tag)) => a == address && tag == mailbox_tag(mailbox),
    }
}

fn view(row: BridgePasswordRow, username: String) -> BridgePassword {
    BridgePassword {
        id: row.id,
        name: row.name,
        username,
        created_at: utc(row.created_at),
        expires_at: row.expires_at.map(utc),
        last_used_at: row.last_used_at.map(utc),
    }
}

fn expiry(
    v: &mut Validator,
    at: Option<DateTime<Utc>>,
    now: NaiveDateTime,
) -> Option<NaiveDateTime> {
    let at = at?.naive_utc();
    let latest = chrono::NaiveDate::from_ymd_opt(3000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a date");
    if at <= now || at >= latest {
        v.push(
            "expires_at",
            Invalid::new(
                Code::InvalidExpiry,
                "expires_at must lie in the future (and before 3000); leave it out for a password that does not expire",
            ),
        );
        return None;
    }
    Some(at)
}

/// Runs CPU work (a password hash, a key pair) on the blocking pool, a few
/// at a time, so it neither stalls the async workers nor holds a database
/// connection.
#[expect(
    clippy::disallowed_methods,
    reason = "hashing and key generation are CPU work, not database work: they must not hold a pooled connection"
)]
pub(crate) async fn cpu_work<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHING_AT_ONCE);
    let _slot = SLOTS.acquire().await.ok()?;
    tokio::task::spawn_blocking(f).await.ok()
}

impl Services {
    /// The user name of a mailbox's passwords (its address, or with its tag).
    async fn bridge_username(&self, address: String, mailbox: MailboxId) -> Result<String> {
        let lookup = address.clone();
        let same = self
            .store
            .query(move |c| store::mailboxes_with_address(c, &lookup))
            .await?;
        Ok(username(&address, mailbox, same))
    }

    pub async fn bridge_password_create(
        &self,
        who: &Principal,
        mailbox: MailboxId,
        input: BridgePasswordCreate,
    ) -> Result<BridgePasswordWithSecret> {
        let org = who.require(Permission::BridgePasswords)?.clone();
        let at = now();
        let mut v = Validator::default();
        let name = v.check("name", DisplayName::parse(&input.name));
        let expires_at = expiry(&mut v, input.expires_at, at);
        v.finish()?;
        let name = name.expect("validated");
        let secret = BridgeSecret::generate();
        let selector = secret.selector().to_owned();
        let (secret, hash) = cpu_work(move || {
            let hash = secret.hash();
            (secret, hash)
        })
        .await
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("the password hash did not complete")))?;
        let row = BridgePasswordRow {
            id: BridgePasswordId::new(),
            org: org.clone(),
            mailbox_id: mailbox,
            name: name.as_str().to_owned(),
            selector,
            hash,
            created_at: at,
            expires_at,
            revoked_at: None,
            last_used_at: None,
            last_used_from: None,
        };
        let actor = who.actor();
        let (row, address) = self
            .store
            .write(move |c| {
                let mailbox_row = mailboxes::get(c, &org, mailbox)?;
                store::insert(c, &row)?;
                Audit::mailbox(&org, actor, AuditAction::BridgePasswordCreated, mailbox)
                    .detail(serde_json::json!({ "bridge_password_id": row.id, "name": row.name }))
                    .record(c)?;
                Ok::<_, Error>((row, mailbox_row.email))
            })
            .await?;
        tracing::info!(mailbox_id = %mailbox, bridge_password_id = %row.id, "bridge password created");
        let username = self.bridge_username(address, mailbox).await?;
        Ok(BridgePasswordWithSecret {
            bridge_password: view(row, username),
            password: secret.shown(),
        })
    }

    pub async fn bridge_password_get(
        &self,
        who: &Principal,
        mailbox: MailboxId,
        id: BridgePasswordId,
    ) -> Result<BridgePassword> {
        let org = who.require(Permission::BridgePasswords)?.clone();
        let (row, address) = self
            .store
            .query(move |c| {
                let mailbox_row = mailboxes::get(c, &org, mailbox)?;
                Ok((store::get(c, &org, mailbox, id)?, mailbox_row.email))
            })
            .await?;
        let username = self.bridge_username(address, mailbox).await?;
        Ok(view(row, username))
    }

    pub async fn bridge_password_list(
        &self,
        who: &Principal,
        mailbox: MailboxId,
        page: &PageRequest,
    ) -> Result<BridgePasswordPage> {
        let org = who.require(Permission::BridgePasswords)?.clone();
        let (limit, after) = page.resolve::<BridgePasswordId>()?;
        let (rows, address) = self
            .store
            .query(move |c| {
                let mailbox_row = mailboxes::get(c, &org, mailbox)?;
                Ok((
                    store::list(c, &org, mailbox, after, limit)?,
                    mailbox_row.email,
                ))
            })
            .await?;
        let username = self.bridge_username(address, mailbox).await?;
        Ok(BridgePasswordPage::new(
            rows.into_iter()
                .map(|r| view(r, username.clone()))
                .collect(),
            limit,
        ))
    }

    /// Revokes a password at once: the next login with it is refused.
    pub async fn bridge_password_revoke(
        &self,
        who: &Principal,
        mailbox: MailboxId,
        id: BridgePasswordId,
    ) -> Result<()> {
        let org = who.require(Permission::BridgePasswords)?.clone();
        let actor = who.actor();
        self.store
            .write(move |c| {
                let row = store::revoke(c, &org, mailbox, id, now())?;
                Audit::mailbox(&org, actor, AuditAction::BridgePasswordRevoked, mailbox)
                    .detail(serde_json::json!({ "bridge_password_id": id, "name": row.name }))
                    .record(c)
            })
            .await?;
        tracing::info!(mailbox_id = %mailbox, bridge_password_id = %id, "bridge password revoked");
        Ok(())
    }

    /// Whether an open session's password still stands (`None`: the
    /// database did not answer; the session goes on).
    pub async fn bridge_password_usable(&self, id: BridgePasswordId) -> Option<bool> {
        self.store
            .query(move |c| store::usable(c, id, now()))
            .await
            .ok()
    }

    /// Checks a bridge login: the mailbox to act as, or why not. One hash
    /// is verified whatever the outcome (an unknown user name takes as long
    /// as a wrong password), and only the right password learns that it is
    /// revoked or expired. A login records `last_used_at`, and an audit
    /// row the first time the password logs in from an address
    /// (`mailbox.bridge_login_from_new_address`), then once per address
    /// and UTC day (`mailbox.bridge_login`): not once per session.
    pub async fn bridge_login(
        &self,
        username: &str,
        password: &str,
        peer: IpAddr,
    ) -> std::result::Result<BridgeLogin, BridgeRefusal> {
        self.bridge_login_with(username, password, peer, |_| async {})
            .await
            .map(|(login, ())| login)
    }

    /// [`Self::bridge_login`], running `warm` (the listener's upstream
    /// connection) alongside the password's hash once the user name and the
    /// password's selector name a stored password, so the two waits overlap.
    /// Nothing is warmed for a user name or selector that is not stored, and
    /// a wrong password drops `warm` as soon as its hash is known, so a
    /// refusal takes as long as before.
    pub async fn bridge_login_with<W, F>(
        &self,
        username: &str,
        password: &str,
        peer: IpAddr,
        warm: W,
    ) -> std::result::Result<(BridgeLogin, F::Output), BridgeRefusal>
    where
        W: FnOnce(&BridgeLogin) -> F,
        F: std::future::Future,
    {
        if let Some((org, mailbox_id, cloud)) = self.bridge.probes.take(username, password) {
            let login = BridgeLogin {
                org,
                mailbox_id,
                password_id: None,
                cloud,
            };
            let warmed = warm(&login).await;
            return Ok((login, warmed));
        }
        let secret = BridgeSecret::parse(password);
        let found = match &secret {
            Some(s) => {
                let selector = s.selector().to_owned();
                self.store
                    .query(move |c| store::by_selector(c, &selector))
                    .await
                    .map_err(|_| BridgeRefusal::Unavailable)?
            }
            None => None,
        };
        let candidate =
            found.filter(|(row, address, _)| names_mailbox(username, address, row.mailbox_id));
        let (Some(secret), Some((row, _, cloud))) = (secret, candidate) else {
            let typed = password.to_owned();
            cpu_work(move || verify_nothing(&typed)).await;
            return Err(BridgeRefusal::Unknown);
        };
        let login = BridgeLogin {
            org: row.org.clone(),
            mailbox_id: row.mailbox_id,
            password_id: Some(row.id),
            cloud,
        };
        let mut warming = std::pin::pin!(warm(&login));
        let mut warmed = None;
        let phc = row.hash.clone();
        let mut verify = std::pin::pin!(cpu_work(move || secret.verify(&phc)));
        let right = loop {
            tokio::select! {
                right = &mut verify => break right.unwrap_or(false),
                done = &mut warming, if warmed.is_none() => warmed = Some(done),
            }
        };
        if !right {
            return Err(BridgeRefusal::Wrong);
        }
        let at = now();
        if row.revoked_at.is_some() {
            return Err(BridgeRefusal::Revoked);
        }
        if row.expires_at.is_some_and(|e| e <= at) {
            return Err(BridgeRefusal::Expired);
        }
        let from = peer.to_string();
        let record = move |c: &mut crate::store::AnyConnection| {
            store::record_use(c, row.id, at, &from)?;
            let action = match store::note_login(c, row.id, &from, at)? {
                LoginNews::NewAddress => AuditAction::BridgePasswordUsedFromNewAddress,
                LoginNews::FirstToday => AuditAction::BridgeLogin,
                LoginNews::Known => return Ok(()),
            };
            Audit::mailbox(
                &row.org,
                Actor::Caller(BRIDGE_ACTOR.to_owned()),
                action,
                row.mailbox_id,
            )
            .detail(serde_json::json!({
                "bridge_password_id": row.id,
                "name": row.name,
                "from": from,
            }))
            .record(c)
        };
        let recording = async {
            // Two first logins from one address at once (a client opening
            // several connections): the one that loses the insert tries again
            // and finds the row.
            if self.store.write(record.clone()).await.is_ok() {
                return Ok(());
            }
            self.store
                .write(record)
                .await
                .map_err(|_: Error| BridgeRefusal::Unavailable)
        };
        let rest = async {
            match warmed {
                Some(done) => done,
                None => warming.await,
            }
        };
        let (recorded, warmed) = tokio::join!(recording, rest);
        recorded?;
        Ok((login, warmed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_name_is_the_address_unless_another_mailbox_has_it() {
        let id: MailboxId = "0195f6c2-5c2e-7d3a-9b1f-2a4c6e8f0a1b".parse().expect("id");
        assert_eq!(username("a@contoso.cz", id, 1), "a@contoso.cz");
        assert_eq!(username("a@contoso.cz", id, 2), "a@contoso.cz#6e8f0a1b");
        for typed in ["a@contoso.cz", "A@Contoso.CZ ", "a@contoso.cz#6e8f0a1b"] {
            assert!(names_mailbox(typed, "a@contoso.cz", id), "{typed}");
        }
        for typed in [
            "b@contoso.cz",
            "a@contoso.cz#00000000",
            "a@contoso.cz#",
            "#6e8f0a1b",
        ] {
            assert!(!names_mailbox(typed, "a@contoso.cz", id), "{typed}");
        }
    }
}
