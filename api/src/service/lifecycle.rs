//! One place for every state change.
//!
//! A mailbox's status, status detail and token version change only through
//! [`transition`], and an app credential's problem only through
//! [`transition_credential`]. Each reads the current state, asks the state
//! machine ([`plan`], pure) what the change makes of it - or whether it is
//! allowed at all -, writes the new state and the audit row in the caller's
//! transaction, and tells what happened. The events of a status change
//! (`mailbox.status_changed`) and of a problem flagged or cleared
//! (`app_credential.problem_changed`) are written here too, in the same
//! transaction ([`super::events::record`]): no change happens without its
//! event, and a change that does not happen (a hundred refreshes refused
//! the same way) has none.
//!
//! The file is long because it is that one place: every change, the state
//! machine that plans it and the machine's tests are read together.

use chrono::NaiveDateTime;

use super::audit::Audit;
use super::events::{self, Event};
use crate::codes::Code;
use crate::domain::{AccessMode, AppCredentialId, MailboxId, MailboxStatus, OrgId, Resource};
use crate::error::{Error, Result};
use crate::idp::Class;
use crate::store::mailboxes::StateWrite;
use crate::store::tokens::{self, TokenRow};
use crate::store::{AnyConnection, app_credentials, authorizations, mailboxes, now};

/// What a status detail says: a code, what happened, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Detail {
    pub code: Code,
    pub message: String,
    pub hint: String,
}

impl Detail {
    pub fn new(code: Code, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// New tokens, sealed for the mailbox's row.
#[derive(Debug, Clone)]
pub(crate) struct SealedTokens {
    /// What the access token is for: its columns.
    pub resource: Resource,
    pub access_token: String,
    pub access_token_expires_at: NaiveDateTime,
    /// `None` keeps the stored refresh token (a response without one never erases it).
    pub refresh_token: Option<String>,
    pub at: NaiveDateTime,
}

/// The Entra ID identity a delegated sign-in is pinned to.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub username: String,
    pub oid: String,
    pub tid: String,
}

/// A change of a mailbox's state.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// Tokens from a sign-in or an app-only request, onto the token version
    /// `expected`: the mailbox is `active`, its detail cleared, a delegated
    /// one pinned to who signed in.
    Authorized {
        expected: i64,
        tokens: SealedTokens,
        identity: Option<Identity>,
    },
    /// A refresh's tokens, onto `expected`; a mailbox in `error` is `active` again.
    Refreshed { expected: i64, tokens: SealedTokens },
    /// The token endpoint refused a new sign-in or app-only token: the detail
    /// says so; working tokens stay (an `active` or `inactive` mailbox keeps
    /// its status) unless the app credential itself was refused.
    SignInRefused { class: Class, detail: Detail },
    /// The token endpoint refused a refresh: `reauth_required`, or `error`.
    RefreshRefused { class: Class, detail: Detail },
    /// Microsoft was busy or unreachable: the last error is recorded, the
    /// status stays.
    Transient { detail: Detail, at: NaiveDateTime },
    /// What came through the browser: the detail records the attempt, nothing else.
    Attempt { detail: Detail },
    /// The settings changed: the grant ends (`inactive`, tokens and pin
    /// dropped, token version moved on, pending sign-ins cancelled).
    GrantEnded { mode: AccessMode },
    /// Its app credential was refused: an `active` mailbox turns `error`.
    CredentialRefused { detail: Detail },
    /// Its app credential was accepted again: a mailbox in `error` for that
    /// very problem, with a grant, is `active` again.
    CredentialAccepted { code: Code },
    /// The mailbox's IMAP or SMTP server refused its token at a bridge
    /// login: an `active` mailbox turns `error`, the detail names the
    /// server's answer and the fix. The tokens stay (Microsoft still
    /// issues them; the server is what refuses).
    UpstreamRefused { detail: Detail },
    /// The mailbox's server accepted its token (a bridge login, a passing
    /// check): a mailbox in `error` because a server refused it is
    /// `active` again.
    UpstreamAccepted,
    /// The stored address does not parse (an older version stored it).
    AddressInvalid,
}

impl Change {
    /// The token version a token write is for.
    fn expected(&self) -> Option<i64> {
        match self {
            Change::Authorized { expected, .. } | Change::Refreshed { expected, .. } => {
                Some(*expected)
            }
            _ => None,
        }
    }
}

/// What a transition did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Written; the status went `from` -> `to` (the same when it stayed).
    Applied {
        from: MailboxStatus,
        to: MailboxStatus,
    },
    /// Nothing to do for this mailbox (the change does not concern its state).
    Unchanged,
    /// The tokens moved on since `expected` was read: nothing was written.
    Lost,
}

/// What the state machine makes of a change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub to: MailboxStatus,
    pub write: StateWrite,
    /// Write only onto this token version.
    pub expected: Option<i64>,
    /// Move the token version on.
    pub bump: bool,
}

/// A change the state machine does not allow from the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a mailbox in `{from}` cannot take this change ({what})")]
pub(crate) struct NotAllowed {
    pub from: MailboxStatus,
    pub what: &'static str,
}

fn detail(d: &Detail) -> StateWrite {
    StateWrite {
        status_code: Some(Some(d.code)),
        status_message: Some(Some(d.message.clone())),
        status_hint: Some(Some(d.hint.clone())),
        ..StateWrite::default()
    }
}

fn cleared() -> StateWrite {
    StateWrite {
        status_code: Some(None),
        status_message: Some(None),
        status_hint: Some(None),
        ..StateWrite::default()
    }
}

fn with_tokens(mut w: StateWrite, t: &SealedTokens) -> StateWrite {
    let (token, expires) = (
        Some(Some(t.access_token.clone())),
        Some(Some(t.access_token_expires_at)),
    );
    match t.resource {
        Resource::Outlook => {
            w.access_token = token;
            w.access_token_expires_at = expires;
        }
        Resource::Graph => {
            w.graph_access_token = token;
            w.graph_access_token_expires_at = expires;
        }
    }
    if let Some(rt) = &t.refresh_token {
        w.refresh_token = Some(Some(rt.clone()));
        w.refresh_token_issued_at = Some(Some(t.at));
    }
    w.last_refresh_at = Some(Some(t.at));
    w.refresh_lease_until = Some(None);
    w.last_error_code = Some(None);
    w.last_error_message = Some(None);
    w.last_error_at = Some(None);
    w
}

/// The state machine: what `change` makes of the mailbox `row`, or
/// `Ok(None)` when it leaves the mailbox as it is.
pub(crate) fn plan(
    row: &TokenRow,
    change: &Change,
) -> std::result::Result<Option<Plan>, NotAllowed> {
    use MailboxStatus::*;
    let from = row.status;
    if from == Expiring {
        // Shown, never stored.
        return Err(NotAllowed {
            from,
            what: "a stored status",
        });
    }
    let plan = |to, write, expected, bump| {
        Ok(Some(Plan {
            to,
            write,
            expected,
            bump,
        }))
    };
    match change {
        Change::Authorized {
            expected,
            tokens,
            identity,
        } => {
            // A new grant: a Graph token of the one before is not its.
            let mut w = StateWrite {
                graph_access_token: Some(None),
                graph_access_token_expires_at: Some(None),
                ..cleared()
            };
            w = with_tokens(w, tokens);
            w.authorized_as = Some(identity.as_ref().map(|i| i.username.clone()));
            if let Some(i) = identity {
                w.identity_oid = Some(Some(i.oid.clone()));
                w.identity_tid = Some(Some(i.tid.clone()));
            }
            plan(Active, w, Some(*expected), true)
        }
        Change::Refreshed { expected, tokens } => match from {
            Active => plan(
                Active,
                with_tokens(StateWrite::default(), tokens),
                Some(*expected),
                true,
            ),
            // Microsoft gave tokens to a mailbox in `error`: it works again.
            Error => plan(
                Active,
                with_tokens(cleared(), tokens),
                Some(*expected),
                true,
            ),
            Inactive | ReauthRequired | Expiring => Err(NotAllowed {
                from,
                what: "a refresh needs a usable grant",
            }),
        },
        Change::SignInRefused { class, detail: d } => {
            let to = match class {
                Class::Transient => from,
                Class::AppCredential => Error,
                _ if matches!(from, Active | Inactive) => from,
                Class::Reauth => ReauthRequired,
                Class::Setup => Error,
            };
            plan(to, detail(d), None, false)
        }
        Change::RefreshRefused { class, detail: d } => {
            let to = match class {
                Class::Transient => from,
                Class::Reauth => ReauthRequired,
                Class::AppCredential | Class::Setup => Error,
            };
            plan(to, detail(d), None, false)
        }
        Change::Transient { detail: d, at } => {
            let w = StateWrite {
                last_error_code: Some(Some(d.code)),
                last_error_message: Some(Some(d.message.clone())),
                last_error_at: Some(Some(*at)),
                ..StateWrite::default()
            };
            plan(from, w, None, false)
        }
        Change::Attempt { detail: d } => plan(from, detail(d), None, false),
        Change::GrantEnded { mode } => {
            let w = StateWrite {
                status_code: Some(Some(Code::NotAuthorized)),
                status_message: Some(Some(
                    "The mailbox settings changed; it must be authorized again.".into(),
                )),
                status_hint: Some(Some(super::mailboxes::sign_in_hint(*mode).into())),
                authorized_as: Some(None),
                identity_oid: Some(None),
                identity_tid: Some(None),
                access_token: Some(None),
                access_token_expires_at: Some(None),
                graph_access_token: Some(None),
                graph_access_token_expires_at: Some(None),
                refresh_token: Some(None),
                refresh_token_issued_at: Some(None),
                refresh_lease_until: Some(None),
                ..StateWrite::default()
            };
            plan(Inactive, w, None, true)
        }
        Change::CredentialRefused { detail: d } if from == Active => {
            plan(Error, detail(d), None, false)
        }
        Change::CredentialRefused { .. } => Ok(None),
        Change::CredentialAccepted { code }
            if from == Error && row.status_code == Some(*code) && has_tokens(row) =>
        {
            plan(Active, cleared(), None, false)
        }
        Change::CredentialAccepted { .. } => Ok(None),
        Change::UpstreamRefused { detail: d } if from == Active => {
            plan(Error, detail(d), None, false)
        }
        Change::UpstreamRefused { .. } => Ok(None),
        Change::UpstreamAccepted
            if from == Error && row.status_code.is_some_and(upstream_refusal) =>
        {
            plan(Active, cleared(), None, false)
        }
        Change::UpstreamAccepted => Ok(None),
        Change::AddressInvalid => plan(
            Error,
            detail(&Detail::new(
                Code::InvalidAddress,
                "The stored address is not a bare mailbox address (an older version accepted it).",
                "Correct the address (PATCH the mailbox with its plain address, like name@example.org), then sign in again.",
            )),
            None,
            false,
        ),
    }
}

/// The codes of [`Change::UpstreamRefused`]: a mail server refused the token.
pub(crate) fn upstream_refusal(code: Code) -> bool {
    matches!(
        code,
        Code::ImapAuthFailed
            | Code::SmtpAuthFailed
            | Code::SmtpAuthDisabled
            | Code::SmtpSendAsDenied
    )
}

fn has_tokens(row: &TokenRow) -> bool {
    row.refresh_token.is_some() || row.access_token.is_some()
}

/// Applies `change` to the mailbox `id` in the caller's transaction (or
/// alone), with its audit row; see the module documentation.
pub(crate) fn transition(
    c: &mut AnyConnection,
    org: &OrgId,
    id: MailboxId,
    change: Change,
    audit: Option<Audit<'_>>,
) -> Result<Outcome> {
    crate::store::write_transaction(c, |c| {
        let row = tokens::get(c, org, id)?;
        // Tokens written for a version that is gone lose, whatever the state now.
        if change.expected().is_some_and(|v| v != row.token_version) {
            return Ok(Outcome::Lost);
        }
        let Some(mut plan) = plan(&row, &change).map_err(|e| Error::Internal(e.into()))? else {
            return Ok(Outcome::Unchanged);
        };
        plan.write.status = Some(plan.to);
        plan.write.updated_at = Some(now());
        if !mailboxes::write_state(c, org, id, plan.expected, plan.bump, &plan.write)? {
            return Ok(Outcome::Lost);
        }
        if matches!(change, Change::GrantEnded { .. }) {
            // A sign-in started for the old settings must not complete.
            authorizations::delete_for_mailbox(c, org, id)?;
        }
        if let Some(audit) = audit {
            audit.record(c)?;
        }
        if plan.to != row.status {
            let code = match plan.write.status_code {
                Some(code) => code,
                None => row.status_code,
            };
            let changed = Event::StatusChanged {
                id,
                email: row.email.clone(),
                from: row.status,
                to: plan.to,
                code,
            };
            events::record(c, org, &changed)?;
        }
        Ok(Outcome::Applied {
            from: row.status,
            to: plan.to,
        })
    })
}

/// A change of an app credential's problem.
#[derive(Debug, Clone)]
pub(crate) enum CredentialChange {
    /// Microsoft refused the credential: the problem is recorded, and its
    /// `active` mailboxes turn `error` with the same explanation.
    Refused(Detail),
    /// Microsoft accepted it: the problem is cleared, and the mailboxes in
    /// `error` for that problem are `active` again.
    Accepted,
}

/// Applies `change` to the app credential `id` and its mailboxes, in the
/// caller's transaction (or alone). Returns whether the problem changed.
pub(crate) fn transition_credential(
    c: &mut AnyConnection,
    org: &OrgId,
    id: AppCredentialId,
    change: CredentialChange,
) -> Result<bool> {
    crate::store::write_transaction(c, |c| {
        let state = app_credentials::state(c, org, id)?;
        let current = state.problem_code;
        let (problem, per_mailbox) = match &change {
            CredentialChange::Refused(d) => (
                Some((d.code, d.message.as_str())),
                Change::CredentialRefused { detail: d.clone() },
            ),
            CredentialChange::Accepted => match current {
                None => return Ok(false),
                Some(code) => (None, Change::CredentialAccepted { code }),
            },
        };
        app_credentials::write_problem(c, org, id, problem)?;
        for mailbox in mailboxes::ids_using(c, org, id)? {
            transition(c, org, mailbox, per_mailbox.clone(), None)?;
        }
        let to = problem.map(|p| p.0);
        if current != to {
            let changed = Event::ProblemChanged {
                id,
                name: state.name,
                from: current,
                to,
            };
            events::record(c, org, &changed)?;
        }
        Ok(current != to)
    })
}

/// Applies pending migrations (blocking); after the one that introduced the
/// strict address parse, marks the mailboxes whose stored address no longer
/// parses ([`Change::AddressInvalid`]), each named in the log. Returns the
/// migrations applied.
pub fn migrate(store: &crate::store::Store) -> anyhow::Result<Vec<String>> {
    use crate::store::addresses;
    let applied = store.migrate()?;
    let strict = applied
        .iter()
        .any(|v| v.replace('-', "") == addresses::STRICT_ADDRESSES_MIGRATION);
    if strict {
        let marked = store
            .blocking(|c| {
                let invalid = addresses::find_invalid(c)?;
                for m in &invalid {
                    transition(c, &m.org, m.mailbox_id, Change::AddressInvalid, None)
                        .map_err(|e| crate::store::StoreError::Other(anyhow::anyhow!("{e}")))?;
                }
                Ok(invalid)
            })
            .map_err(|e| anyhow::anyhow!("checking the stored addresses failed: {e}"))?;
        for m in &marked {
            tracing::warn!(
                org = %m.org,
                mailbox_id = %m.mailbox_id,
                stored = ?m.stored,
                "a stored mailbox address is not valid; the mailbox is marked `invalid_address` until it is corrected"
            );
        }
        if !marked.is_empty() {
            tracing::warn!(
                count = marked.len(),
                "mailboxes with invalid stored addresses"
            );
        }
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: MailboxStatus) -> TokenRow {
        TokenRow {
            id: MailboxId::new(),
            org: OrgId::parse("acme").unwrap(),
            email: "a@contoso.cz".into(),
            app_credential_id: AppCredentialId::new(),
            access_mode: AccessMode::Delegated,
            shared: false,
            status,
            status_code: None,
            authorized_as: None,
            access_token: Some("v1.x".into()),
            access_token_expires_at: None,
            refresh_token: Some("v1.y".into()),
            refresh_token_issued_at: None,
            token_version: 3,
            refresh_lease_until: None,
            last_error_message: None,
            last_error_at: None,
            cloud: crate::domain::Cloud::Global,
            graph_access_token: None,
            graph_access_token_expires_at: None,
            graph: false,
        }
    }

    fn tokens() -> SealedTokens {
        SealedTokens {
            resource: Resource::Outlook,
            access_token: "v1.a".into(),
            access_token_expires_at: now(),
            refresh_token: Some("v1.r".into()),
            at: now(),
        }
    }

    fn d(code: Code) -> Detail {
        Detail::new(code, "m", "h")
    }

    fn to(row: &TokenRow, change: Change) -> Option<MailboxStatus> {
        plan(row, &change).unwrap().map(|p| p.to)
    }

    #[test]
    fn refused_sign_ins_leave_working_tokens_alone() {
        use MailboxStatus::*;
        let refused = |class| Change::SignInRefused {
            class,
            detail: d(Code::ConsentDeclined),
        };
        assert_eq!(to(&row(Active), refused(Class::Setup)), Some(Active));
        assert_eq!(to(&row(Inactive), refused(Class::Reauth)), Some(Inactive));
        assert_eq!(to(&row(ReauthRequired), refused(Class::Setup)), Some(Error));
        assert_eq!(to(&row(Active), refused(Class::AppCredential)), Some(Error));
        assert_eq!(to(&row(Active), refused(Class::Transient)), Some(Active));
    }

    #[test]
    fn refreshes_need_a_usable_grant_and_recover_errors() {
        use MailboxStatus::*;
        let refreshed = || Change::Refreshed {
            expected: 3,
            tokens: tokens(),
        };
        assert_eq!(to(&row(Error), refreshed()), Some(Active));
        let p = plan(&row(Active), &refreshed()).unwrap().unwrap();
        assert_eq!((p.expected, p.bump), (Some(3), true));
        assert!(plan(&row(ReauthRequired), &refreshed()).is_err());
        assert!(plan(&row(Inactive), &refreshed()).is_err());
        assert!(plan(&row(Expiring), &refreshed()).is_err(), "never stored");
    }

    #[test]
    fn a_credential_concerns_only_the_mailboxes_it_broke() {
        use MailboxStatus::*;
        let refused = || Change::CredentialRefused {
            detail: d(Code::ClientSecretExpired),
        };
        assert_eq!(to(&row(Active), refused()), Some(Error));
        assert_eq!(to(&row(ReauthRequired), refused()), None);
        let mut broken = row(Error);
        broken.status_code = Some(Code::ClientSecretExpired);
        let accepted = |code| Change::CredentialAccepted { code };
        assert_eq!(
            to(&broken, accepted(Code::ClientSecretExpired)),
            Some(Active)
        );
        assert_eq!(to(&broken, accepted(Code::AppNotFound)), None);
        broken.refresh_token = None;
        broken.access_token = None;
        assert_eq!(to(&broken, accepted(Code::ClientSecretExpired)), None);
    }

    #[test]
    fn a_servers_refusal_is_cleared_only_by_a_servers_acceptance() {
        use MailboxStatus::*;
        let refused = || Change::UpstreamRefused {
            detail: d(Code::ImapAuthFailed),
        };
        assert_eq!(to(&row(Active), refused()), Some(Error));
        assert_eq!(to(&row(ReauthRequired), refused()), None);
        assert_eq!(to(&row(Inactive), refused()), None);
        let mut refused_row = row(Error);
        refused_row.status_code = Some(Code::ImapAuthFailed);
        assert_eq!(to(&refused_row, Change::UpstreamAccepted), Some(Active));
        let mut other = row(Error);
        other.status_code = Some(Code::ClientSecretExpired);
        assert_eq!(to(&other, Change::UpstreamAccepted), None);
        assert_eq!(to(&row(Active), Change::UpstreamAccepted), None);
    }

    #[test]
    fn ending_a_grant_drops_everything_and_moves_the_version_on() {
        let p = plan(
            &row(MailboxStatus::Active),
            &Change::GrantEnded {
                mode: AccessMode::Delegated,
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.to, MailboxStatus::Inactive);
        assert!(p.bump);
        assert_eq!(p.write.refresh_token, Some(None));
        assert_eq!(p.write.identity_oid, Some(None));
        assert_eq!(p.write.status_code, Some(Some(Code::NotAuthorized)));
    }
}
