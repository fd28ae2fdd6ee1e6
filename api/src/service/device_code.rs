//! Device-code sign-in (RFC 8628), for a delegate who cannot reach the
//! redirect URI: `POST /mailboxes/{id}/refresh` with
//! `{"flow": "device_code"}` answers the `user_code` to type at the
//! `verification_uri`; this instance then polls Microsoft's token endpoint
//! at the interval Microsoft gave (longer after each `slow_down`), and the
//! tokens go through the callback's own steps (verify the id_token, pin the
//! identity, check the refresh token, commit onto the token version the
//! sign-in started with), so the mailbox ends exactly as after a browser
//! sign-in. The poll lives in this instance's memory: a restart ends it
//! (start again).

use chrono::Utc;
use oauth2::StandardDeviceAuthorizationResponse;

use super::Services;
use super::audit::Audit;
use super::callback::{Effect, Refusal, Step};
use super::mailboxes::Mailbox;
use super::signin::RefreshResult;
use crate::auth::Principal;
use crate::codes::Code;
use crate::domain::{AccessMode, AuditAction, AuthorizationId, AuthorizationKind, OrgId};
use crate::error::Result;
use crate::idp::{AppIdentity, IdpError};
use crate::store::authorizations::AuthorizationRow;
use crate::store::{mailboxes, now};

impl Services {
    /// Starts a device-code sign-in of a delegated mailbox and its poll.
    pub(crate) async fn refresh_device_code(
        &self,
        who: &Principal,
        mailbox: Mailbox,
        identity: &AppIdentity<'_>,
    ) -> Result<RefreshResult> {
        let (org, id) = (who.org.clone(), mailbox.id);
        let details = self
            .idp
            .device_authorization(identity)
            .await
            .map_err(|e| super::keeper::token_error(&e))?;
        let version = self.token_version(&org, id).await?;
        let at = now();
        let expires_in = details.expires_in();
        let expires_at =
            at + chrono::Duration::from_std(expires_in).unwrap_or(chrono::Duration::minutes(15));
        // The sign-in in progress, as the callback knows one: for this
        // mailbox and app credential, onto this token version. Not stored:
        // no browser brings a state back.
        let auth = AuthorizationRow {
            id: AuthorizationId::new(),
            org: org.clone(),
            kind: AuthorizationKind::SignIn,
            mailbox_id: Some(id),
            app_credential_id: mailbox.app_credential_id,
            state_hash: String::new(),
            pkce_verifier: None,
            nonce: None,
            return_url: None,
            actor: who.subject.clone(),
            expires_at,
            created_at: at,
            token_version: Some(version),
        };
        let actor = who.actor();
        self.store
            .run({
                let org = org.clone();
                move |c| {
                    Audit::mailbox(&org, actor, AuditAction::SignInStarted, id)
                        .detail(serde_json::json!({ "flow": "device_code" }))
                        .record(c)
                }
            })
            .await?;
        let result = RefreshResult {
            authorization_url: None,
            expires_at: Some(expires_at.and_utc()),
            user_code: Some(details.user_code().secret().to_owned()),
            verification_uri: Some(details.verification_uri().to_string()),
            expires_in: Some(expires_in.as_secs()),
            mailbox,
        };
        let services = self.clone();
        let poll = async move { services.poll_device_sign_in(&org, &auth, &details).await };
        tokio::spawn(tracing::Instrument::in_current_span(poll));
        Ok(result)
    }

    /// Polls until the sign-in ends, and records how it ended.
    async fn poll_device_sign_in(
        &self,
        org: &OrgId,
        auth: &AuthorizationRow,
        details: &StandardDeviceAuthorizationResponse,
    ) {
        let Some(id) = auth.mailbox_id else { return };
        let ended = async {
            let (app, secret) = self
                .app_credential_with_secret(org, auth.app_credential_id)
                .await?;
            let identity = self.identity(&app, &secret);
            let set = self
                .idp
                .poll_device_code(&identity, details)
                .await
                .map_err(|e| Step::from(refusal_of(&e)))?;
            self.certificate_seen(org, &app, &secret, &set).await;
            let org2 = org.clone();
            let mailbox = self
                .store
                .run(move |c| mailboxes::get(c, &org2, id))
                .await
                .map_err(crate::error::Error::from)?;
            if mailbox.access_mode != AccessMode::Delegated {
                return Err(Step::from(Refusal::new(
                    Code::SettingsChanged,
                    "The mailbox settings changed during the sign-in; the sign-in was not applied.",
                    "Start again with Refresh.",
                    Effect::Nothing,
                )));
            }
            self.finish_sign_in(org, auth, &mailbox, &app, &set).await
        };
        match ended.await {
            Ok(who) => {
                tracing::info!(mailbox_id = %id, signed_in_as = %who, "mailbox signed in with a device code")
            }
            Err(Step::Refused(refusal)) => {
                tracing::warn!(mailbox_id = %id, code = refusal.code.as_str(), "device-code sign-in refused");
                if let Err(e) = self.refuse(org, auth, id, &refusal).await {
                    tracing::error!(mailbox_id = %id, error = %e, "recording a refused device-code sign-in failed");
                }
            }
            Err(Step::Failed(e)) => {
                tracing::error!(mailbox_id = %id, error = %e, "device-code sign-in failed");
            }
        }
    }
}

/// What the token endpoint's answer to a poll means for the sign-in: an
/// expired code concerns this attempt only; anything else as classified.
fn refusal_of(e: &IdpError) -> Refusal {
    if e.error == "expired_token" {
        return Refusal::new(
            Code::DeviceCodeExpired,
            format!(
                "The device code expired before anyone signed in with it ({}).",
                Utc::now().format("%H:%M UTC")
            ),
            "Start again with Refresh and flow device_code, then enter the new code at the address shown within its lifetime.",
            Effect::Attempt,
        );
    }
    if e.aadsts == Some(7_000_218) {
        // The app registration is a confidential client without public
        // client flows: not a fault of the credential, which works elsewhere.
        return Refusal::new(
            Code::PublicClientFlowsDisabled,
            "Microsoft refused the device-code sign-in: the app registration does not allow public client flows (AADSTS7000218).",
            Code::PublicClientFlowsDisabled.hint().unwrap_or_default(),
            Effect::Attempt,
        );
    }
    let x = &e.explanation;
    Refusal::new(
        x.code,
        x.message.clone(),
        x.hint,
        Effect::Classified(x.class),
    )
}
