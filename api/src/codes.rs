//! Every machine-readable code the service gives, in one table.
//!
//! A code is what clients match on: a problem document's `code`, a field's
//! code in `validation_failed`, a mailbox's `status_detail.code`, the outcome
//! of the OAuth callback, a connection-check step's `code`, a verification's
//! `code`, an audit row's `outcome`. Each row names the code, where it is used,
//! its HTTP status when it is a problem document's, what it means in English,
//! the English hint where the hint does not depend on the case, and the Czech
//! message and hint where the callback page shows it in Czech. The problem
//! mapping reads the status from here, the callback page its texts, the
//! connection check the hints of its token step; a test holds the README's
//! code lists to this table. The file is long because the table is.
//!
//! In the spec and the SDK a code stays a string, so a new code does not
//! break an older client.

use serde::{Deserialize, Serialize};

/// Where a code is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// The `code` of a problem document (with its HTTP status).
    Problem,
    /// The code of one field of a `validation_failed` problem.
    Field,
    /// A mailbox's `status_detail.code`, an app credential's `problem.code`.
    Detail,
    /// What the OAuth callback page says (and the return URL's `outcome`).
    Outcome,
    /// The `code` of a failed connection-check step.
    Check,
    /// The `code` of an app-credential verification.
    Verify,
    /// An audit row's `outcome`.
    Audit,
    /// Why a webhook was disabled, or an e-mail alert could not be sent.
    Delivery,
}

/// What the table says about a code.
#[derive(Debug, Clone, Copy)]
pub struct Info {
    /// The HTTP status of a problem document with this code.
    pub status: Option<u16>,
    pub uses: &'static [Use],
    /// What it means, in English (lower case, no full stop).
    pub en: &'static str,
    /// What to do, in English, where it does not depend on the case.
    pub hint: Option<&'static str>,
    /// The Czech message and hint of the callback page.
    pub cs: Option<(&'static str, &'static str)>,
}

const NONE: Info = Info {
    status: None,
    uses: &[],
    en: "",
    hint: None,
    cs: None,
};

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident $text:literal => $info:expr ),+ $(,)?) => {
        /// A machine-readable code (see the module documentation).
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum Code {
            $( $(#[$doc])* $variant, )+
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $text,)+ }
            }

            pub fn parse(text: &str) -> Option<Code> {
                match text { $($text => Some(Code::$variant),)+ _ => None }
            }

            pub const fn info(self) -> Info {
                match self { $(Code::$variant => $info,)+ }
            }
        }
    };
}

use Use::*;

const AGAIN: &str = "Start again with Refresh.";
const SIGN_IN_AGAIN: &str = "Sign in again with Refresh.";
const CS_AGAIN: &str = "Spusťte znovu akci Obnovit.";
const CS_SIGN_IN_AGAIN: &str = "Přihlaste se znovu přes akci Obnovit.";
const CS_CLOSE: &str = "Okno můžete zavřít.";

codes! {
    // Outcomes that are no failure.
    Ok "ok" => Info { uses: &[Audit], en: "the action succeeded", ..NONE },
    Verified "verified" => Info { uses: &[Verify], en: "Microsoft accepted the client id, tenant and secret", ..NONE },
    SignedIn "signed_in" => Info {
        uses: &[Outcome], en: "the mailbox is connected",
        cs: Some(("Schránka je připojena.", CS_CLOSE)), ..NONE
    },
    AdminConsentGranted "admin_consent_granted" => Info {
        uses: &[Outcome], en: "admin consent was granted (verify confirms it)",
        cs: Some(("Souhlas správce byl udělen; Inboxlink ho potvrdí při příštím ověření přihlašovacích údajů aplikace.", CS_CLOSE)),
        ..NONE
    },
    Reported "reported" => Info { uses: &[Audit], en: "admin consent was reported by the browser", ..NONE },

    // Reading the request.
    MalformedJson "malformed_json" => Info { status: Some(400), uses: &[Problem], en: "the body is not JSON", ..NONE },
    MalformedBody "malformed_body" => Info { status: Some(400), uses: &[Problem], en: "the body cannot be read", ..NONE },
    InvalidId "invalid_id" => Info { status: Some(400), uses: &[Problem], en: "the id in the path is not a UUID", ..NONE },
    InvalidQuery "invalid_query" => Info { status: Some(400), uses: &[Problem], en: "a query parameter is invalid", ..NONE },
    MissingToken "missing_token" => Info { status: Some(401), uses: &[Problem], en: "no bearer token was sent", ..NONE },
    InvalidToken "invalid_token" => Info { status: Some(401), uses: &[Problem], en: "the bearer token fails verification (`detail` says why)", ..NONE },
    Forbidden "forbidden" => Info { status: Some(403), uses: &[Problem, Audit], en: "the token's roles do not allow the operation", ..NONE },
    NotFound "not_found" => Info { status: Some(404), uses: &[Problem], en: "no such resource in your organisation", ..NONE },
    RouteNotFound "route_not_found" => Info { status: Some(404), uses: &[Problem], en: "no such operation", ..NONE },
    MetricsDisabled "metrics_disabled" => Info { status: Some(404), uses: &[Problem], en: "`/metrics` is not served on this listener (the detail says how to enable it)", ..NONE },
    MethodNotAllowed "method_not_allowed" => Info { status: Some(405), uses: &[Problem], en: "the path exists, the method does not", ..NONE },
    PayloadTooLarge "payload_too_large" => Info { status: Some(413), uses: &[Problem], en: "the body is over 64 KiB", ..NONE },
    UnsupportedMediaType "unsupported_media_type" => Info { status: Some(415), uses: &[Problem], en: "the body is not `application/json`", ..NONE },
    ValidationFailed "validation_failed" => Info { status: Some(422), uses: &[Problem], en: "invalid values (each field in `errors` with its own code)", ..NONE },
    InvalidBody "invalid_body" => Info { status: Some(422), uses: &[Problem], en: "unknown fields or wrong JSON types", ..NONE },
    RateLimited "rate_limited" => Info { status: Some(429), uses: &[Problem], en: "too many calls of one costly kind by this caller; `Retry-After` says how many seconds to wait", ..NONE },
    Internal "internal" => Info {
        status: Some(500), uses: &[Problem, Outcome], en: "a bug; details go to the log only",
        hint: Some("Try again; if it persists, contact the administrator."),
        cs: Some(("Na straně služby Inboxlink došlo k chybě.", "Zkuste to znovu; pokud potíže trvají, obraťte se na správce služby.")),
    },
    Unavailable "unavailable" => Info {
        status: Some(503), uses: &[Problem, Check], en: "the database does not answer, or Microsoft is unavailable after the retries",
        hint: Some("Microsoft is busy or unreachable; try again later."), ..NONE
    },

    // Conflicts with what is stored.
    AppCredentialInUse "app_credential_in_use" => Info { status: Some(409), uses: &[Problem], en: "mailboxes use the app credential (`mailboxes` lists them)", ..NONE },
    MailboxExists "mailbox_exists" => Info { status: Some(409), uses: &[Problem], en: "a mailbox of the organisation has this address", ..NONE },
    MailboxNotAuthorized "mailbox_not_authorized" => Info {
        status: Some(409), uses: &[Problem, Check], en: "the mailbox has not been authorized yet",
        hint: Some("Authorize the mailbox first: use Refresh and sign in."), ..NONE
    },
    ReauthRequired "reauth_required" => Info {
        status: Some(409), uses: &[Problem, Check], en: "the mailbox must be signed in again",
        hint: Some("Sign in again with Refresh."), ..NONE
    },
    AppCredentialInvalid "app_credential_invalid" => Info {
        status: Some(409), uses: &[Problem, Check], en: "Microsoft refused the app credential",
        hint: Some("Fix the app credential (see its verify and setup views), then try again."), ..NONE
    },
    SignInSetup "sign_in_setup" => Info { status: Some(409), uses: &[Problem, Check], en: "the tenant's set-up refused the token request (consent, policy)", hint: Some("See the mailbox's status detail."), ..NONE },
    SettingsChanged "settings_changed" => Info {
        status: Some(409), uses: &[Problem, Outcome], en: "the mailbox's settings changed while a sign-in or token request for the old ones was under way",
        hint: Some(AGAIN), cs: Some(("Nastavení schránky se během přihlášení změnilo; přihlášení nebylo použito.", CS_AGAIN)),
    },
    CertificateMissing "certificate_missing" => Info {
        status: Some(409), uses: &[Problem, Detail, Outcome], en: "the app credential is of type `certificate` and has no certificate yet",
        hint: Some("Make one with POST /app-credentials/{id}/certificate (or upload one), and add it to the app registration."),
        cs: Some(("Přihlašovací údaje aplikace typu certifikát zatím nemají certifikát.", "Vytvořte ho (POST /app-credentials/{id}/certificate) nebo nahrajte a přidejte ho k registraci aplikace."))
    },
    GraphNotEnabled "graph_not_enabled" => Info {
        status: Some(409), uses: &[Problem, Check], en: "a Graph token for a delegated mailbox whose app credential does not ask for Microsoft Graph at sign-in",
        hint: Some("Set graph: true on the app credential, add Graph's delegated Mail.ReadWrite and Mail.Send to the app registration, and sign the mailbox in again."),
        cs: Some(("Přihlašovací údaje aplikace schránky nežádají při přihlášení o Microsoft Graph.", "Nastavte u přihlašovacích údajů aplikace graph: true, přidejte k registraci aplikace delegovaná oprávnění Graphu Mail.ReadWrite a Mail.Send a schránku znovu přihlaste."))
    },
    DeviceCodeExpired "device_code_expired" => Info {
        uses: &[Detail, Audit], en: "a device-code sign-in ended without anyone signing in within the code's lifetime",
        hint: Some("Start again with Refresh and flow device_code."),
        cs: Some(("Platnost kódu pro přihlášení zařízení vypršela dřív, než se s ním někdo přihlásil.", "Začněte znovu: Refresh s flow device_code.")), ..NONE
    },
    PublicClientFlowsDisabled "public_client_flows_disabled" => Info {
        uses: &[Detail, Audit], en: "a device-code sign-in the app registration does not allow (AADSTS7000218: public client flows are off)",
        hint: Some("In Entra ID, App registrations > the app > Authentication > Advanced settings, set \"Allow public client flows\" to Yes; then start again."),
        cs: Some(("Registrace aplikace nepovoluje přihlášení kódem zařízení (veřejné klientské toky jsou vypnuté).", "V Entra ID v registraci aplikace > Authentication > Advanced settings zapněte „Allow public client flows“ a začněte znovu.")), ..NONE
    },
    MailboxAddressInvalid "mailbox_address_invalid" => Info {
        status: Some(409), uses: &[Problem, Check], en: "the mailbox's stored address (or its authorized account) is not a bare address",
        hint: Some("Correct the address and sign in again."), ..NONE
    },

    // Fields of a request.
    InvalidEmail "invalid_email" => Info { uses: &[Field], en: "not a bare mailbox address", ..NONE },
    InvalidClientId "invalid_client_id" => Info { uses: &[Field], en: "not the Application (client) ID, a GUID", ..NONE },
    InvalidTenantId "invalid_tenant_id" => Info { uses: &[Field], en: "not a Directory (tenant) ID or a verified domain", ..NONE },
    ClientSecretIsSecretId "client_secret_is_secret_id" => Info { uses: &[Field], en: "the secret's ID was pasted instead of its Value", ..NONE },
    InvalidName "invalid_name" => Info { uses: &[Field], en: "a name must be 1-200 characters without control characters", ..NONE },
    InvalidDate "invalid_date" => Info { uses: &[Field], en: "a date outside 2000-2999", ..NONE },
    InvalidCertificate "invalid_certificate" => Info { uses: &[Field], en: "not a PEM certificate with its RSA key (2048 bits or more), unexpired, for a credential of type `certificate`", ..NONE },
    UnknownAppCredential "unknown_app_credential" => Info { uses: &[Field], en: "no app credential of the organisation has this id", ..NONE },
    ReturnUrlNotAllowed "return_url_not_allowed" => Info { uses: &[Field], en: "the return URL is not in `INBOXLINK_RETURN_URL_ALLOWLIST`", ..NONE },
    InvalidLimit "invalid_limit" => Info { uses: &[Field], en: "a page limit outside 1-200", ..NONE },
    InvalidCursor "invalid_cursor" => Info { uses: &[Field], en: "not a cursor returned by this API", ..NONE },
    InvalidOrg "invalid_org" => Info { uses: &[Field], en: "the organisation claim is not 1-128 printable characters", ..NONE },
    InvalidUrl "invalid_url" => Info { uses: &[Field], en: "not an absolute http(s) URL of at most 2,000 characters", ..NONE },
    InvalidEventType "invalid_event_type" => Info { uses: &[Field], en: "not an event type (the README lists them)", ..NONE },
    InvalidDescription "invalid_description" => Info { uses: &[Field], en: "a description must be at most 500 characters without control characters", ..NONE },
    InvalidRecipients "invalid_recipients" => Info { uses: &[Field], en: "give 1-20 recipient addresses", ..NONE },
    UnknownMailbox "unknown_mailbox" => Info { uses: &[Field], en: "no mailbox of the organisation has this id", ..NONE },
    InvalidExpiry "invalid_expiry" => Info { uses: &[Field], en: "an expiry time must lie in the future (and before 3000)", ..NONE },

    // Webhooks and e-mail alerts.
    WebhookUrlNotAllowed "webhook_url_not_allowed" => Info {
        status: Some(422), uses: &[Problem, Delivery],
        en: "webhook URLs must be https:// and reach a public address (not loopback, private, link-local or metadata)",
        hint: Some("Use a public https:// URL; a private receiver needs INBOXLINK_WEBHOOK_ALLOW_PRIVATE=true."), ..NONE
    },
    WebhookDisabled "webhook_disabled" => Info {
        status: Some(409), uses: &[Problem], en: "the webhook is disabled",
        hint: Some("Enable it first: PATCH the webhook with enabled: true."), ..NONE
    },
    WebhookGone "webhook_gone" => Info {
        uses: &[Delivery], en: "the receiver answered 410 Gone, so the webhook was disabled",
        hint: Some("Fix the receiver, then PATCH the webhook with enabled: true."), ..NONE
    },
    WebhookFailing "webhook_failing" => Info {
        uses: &[Delivery], en: "every delivery to the receiver failed for 5 days, so the webhook was disabled",
        hint: Some("See GET /webhooks/{id}/deliveries, fix the receiver, then PATCH the webhook with enabled: true."), ..NONE
    },
    AlertNotSent "alert_not_sent" => Info {
        uses: &[Delivery], en: "the sender mailbox could not send the alert (the message says why)",
        hint: Some("Check the sender mailbox (POST /mailboxes/{id}/check with send_test_message) or choose another sender."), ..NONE
    },

    // Where a mailbox stands, and what Microsoft answered (idp::explain).
    NotAuthorized "not_authorized" => Info { uses: &[Detail], en: "the mailbox has not been authorized yet (or its settings changed)", ..NONE },
    InvalidAddress "invalid_address" => Info { uses: &[Detail, Check], en: "the stored address is not a bare mailbox address (an older version accepted it)", ..NONE },
    RefreshTokenExpired "refresh_token_expired" => Info {
        uses: &[Detail, Outcome], en: "the refresh token has expired (it was not used for 90 days)", hint: Some(SIGN_IN_AGAIN),
        cs: Some(("Platnost obnovovacího tokenu vypršela (nebyl použit 90 dní).", CS_SIGN_IN_AGAIN)), ..NONE
    },
    CodeExpired "code_expired" => Info {
        uses: &[Detail, Outcome], en: "the sign-in took too long and its code expired",
        hint: Some("Start again with Refresh and finish the sign-in within a few minutes."),
        cs: Some(("Přihlášení trvalo příliš dlouho a jeho kód vypršel.", "Spusťte znovu akci Obnovit a dokončete přihlášení během několika minut.")), ..NONE
    },
    GrantRevoked "grant_revoked" => Info {
        uses: &[Detail, Outcome], en: "the authorization was revoked (for example after a password reset)", hint: Some(SIGN_IN_AGAIN),
        cs: Some(("Oprávnění k přístupu bylo odvoláno (například po resetování hesla).", CS_SIGN_IN_AGAIN)), ..NONE
    },
    SignInRequired "sign_in_required" => Info {
        uses: &[Detail, Outcome], en: "the tenant requires a new sign-in or multi-factor authentication",
        hint: Some("Sign in again with Refresh, completing multi-factor authentication."),
        cs: Some(("Tenant vyžaduje nové přihlášení nebo vícefaktorové ověření.", "Přihlaste se znovu přes akci Obnovit a dokončete vícefaktorové ověření.")), ..NONE
    },
    BlockedByConditionalAccess "blocked_by_conditional_access" => Info {
        uses: &[Detail, Outcome], en: "a Conditional Access policy of the tenant blocked the sign-in",
        hint: Some("A tenant administrator must allow this app in the Conditional Access policies."),
        cs: Some(("Přihlášení zablokovaly zásady podmíněného přístupu (Conditional Access) tenantu.", "Správce tenantu musí této aplikaci povolit přihlášení v zásadách podmíněného přístupu.")), ..NONE
    },
    ConsentRequired "consent_required" => Info {
        uses: &[Detail, Outcome], en: "the permissions have not been consented to",
        hint: Some("A tenant administrator must grant admin consent (an admin gets a consent link from the app credential's admin-consent operation)."),
        cs: Some(("Chybí souhlas s oprávněními aplikace.", "Správce tenantu musí udělit souhlas správce (admin consent) – použijte odkaz pro souhlas správce z nastavení přihlašovacích údajů aplikace.")), ..NONE
    },
    ConsentDeclined "consent_declined" => Info {
        uses: &[Detail, Outcome], en: "the user declined to consent",
        hint: Some("Start again with Refresh and accept the requested permissions."),
        cs: Some(("Souhlas s oprávněními nebyl udělen.", "Spusťte znovu akci Obnovit a požadovaná oprávnění přijměte.")), ..NONE
    },
    AccessDenied "access_denied" => Info {
        uses: &[Detail, Outcome, Audit], en: "the sign-in or the consent was refused",
        hint: Some("Start again with Refresh; if it persists, ask a tenant administrator."),
        cs: Some(("Souhlas nebo přihlášení bylo odmítnuto.", "Spusťte znovu akci Obnovit; pokud se to opakuje, obraťte se na správce tenantu.")), ..NONE
    },
    RedirectUriMismatch "redirect_uri_mismatch" => Info {
        uses: &[Detail, Outcome], en: "the redirect URI is not registered on the app",
        hint: Some("Register the exact redirect URI shown by the app credential (platform Web) in Entra ID."),
        cs: Some(("Adresa pro přesměrování (redirect URI) není v aplikaci zaregistrována.", "V Entra ID zaregistrujte přesně tu adresu pro přesměrování, kterou uvádějí přihlašovací údaje aplikace (platforma Web).")), ..NONE
    },
    AppNotFound "app_not_found" => Info {
        uses: &[Detail, Outcome], en: "the app was not found in the tenant",
        hint: Some("Check the client id (Application ID) and the tenant id (Directory ID) of the app credential."),
        cs: Some(("Aplikace nebyla v tenantu nalezena.", "Zkontrolujte ID klienta (Application ID) a ID tenantu (Directory ID) v přihlašovacích údajích aplikace.")), ..NONE
    },
    InvalidClientSecret "invalid_client_secret" => Info {
        uses: &[Field, Detail, Outcome], en: "the client secret is invalid",
        hint: Some("Paste the secret's Value (shown once when it is created), not its Secret ID."),
        cs: Some(("Tajný kód klienta (client secret) je neplatný.", "Vložte hodnotu tajného kódu (Value – zobrazí se jen jednou, při vytvoření), ne jeho ID (Secret ID).")), ..NONE
    },
    CertificateNotAccepted "certificate_not_accepted" => Info {
        uses: &[Detail, Outcome], en: "Microsoft did not accept the client assertion: the app registration does not have this certificate",
        hint: Some("Upload the certificate (certificate_pem) to the app registration under Certificates & secrets > Certificates; its thumbprint must match."),
        cs: Some(("Microsoft nepřijal podpis certifikátem: registrace aplikace tento certifikát nemá.", "Nahrajte certifikát (certificate_pem) k registraci aplikace v části Certificates & secrets > Certificates; otisk se musí shodovat.")), ..NONE
    },
    ClientSecretExpired "client_secret_expired" => Info {
        uses: &[Detail, Outcome], en: "the client secret has expired",
        hint: Some("Create a new client secret in Entra ID and update the app credential."),
        cs: Some(("Platnost tajného kódu klienta vypršela.", "V Entra ID vytvořte nový tajný kód klienta a uložte ho do přihlašovacích údajů aplikace.")), ..NONE
    },
    TenantNotFound "tenant_not_found" => Info {
        uses: &[Detail, Outcome], en: "the tenant was not found",
        hint: Some("Check the tenant id: the Directory (tenant) ID GUID or a verified domain."),
        cs: Some(("Tenant nebyl nalezen.", "Zkontrolujte ID tenantu: identifikátor GUID (Directory (tenant) ID) nebo ověřenou doménu.")), ..NONE
    },
    CodeAlreadyRedeemed "code_already_redeemed" => Info {
        uses: &[Detail, Outcome], en: "the sign-in code was already used", hint: Some(AGAIN),
        cs: Some(("Kód přihlášení už byl použit.", CS_AGAIN)), ..NONE
    },
    PkceMismatch "pkce_mismatch" => Info {
        uses: &[Detail, Outcome], en: "the sign-in could not be verified (PKCE)", hint: Some(AGAIN),
        cs: Some(("Přihlášení se nepodařilo ověřit (PKCE).", CS_AGAIN)), ..NONE
    },
    InvalidGrant "invalid_grant" => Info {
        uses: &[Detail, Outcome], en: "the authorization can no longer be used", hint: Some(SIGN_IN_AGAIN),
        cs: Some(("Oprávnění k přístupu už nelze použít.", CS_SIGN_IN_AGAIN)), ..NONE
    },
    InvalidClient "invalid_client" => Info {
        uses: &[Detail, Outcome], en: "the app credential was not accepted",
        hint: Some("Check the client id, tenant id and client secret of the app credential."),
        cs: Some(("Microsoft nepřijal přihlašovací údaje aplikace.", "Zkontrolujte ID klienta, ID tenantu a tajný kód klienta v přihlašovacích údajích aplikace.")), ..NONE
    },
    SignInFailed "sign_in_failed" => Info {
        uses: &[Detail, Outcome], en: "the sign-in failed",
        hint: Some("Check the app registration against the app credential's setup view."),
        cs: Some(("Přihlášení u Microsoftu se nezdařilo.", "Porovnejte registraci aplikace v Entra ID s pokyny v nastavení přihlašovacích údajů aplikace.")), ..NONE
    },
    MicrosoftUnavailable "microsoft_unavailable" => Info {
        uses: &[Detail, Outcome], en: "Microsoft is busy or unavailable",
        hint: Some("Nothing to do: the service retries with back-off."),
        cs: Some(("Microsoft je momentálně přetížený nebo nedostupný.", "Počkejte několik minut a spusťte znovu akci Obnovit.")), ..NONE
    },
    MicrosoftUnreachable "microsoft_unreachable" => Info {
        uses: &[Detail, Outcome], en: "Microsoft could not be reached",
        hint: Some("Nothing to do: the service retries with back-off; check the network if it persists."),
        cs: Some(("Nepodařilo se spojit se servery Microsoftu.", "Zkuste to za chvíli znovu; pokud potíže trvají, zkontrolujte síťové připojení serveru.")), ..NONE
    },

    // The callback's own outcomes.
    InvalidState "invalid_state" => Info {
        uses: &[Outcome], en: "the sign-in answer has no state", hint: Some(AGAIN),
        cs: Some(("Odpověď na přihlášení neobsahuje identifikátor přihlášení (state).", CS_AGAIN)), ..NONE
    },
    StateExpired "state_expired" => Info {
        uses: &[Outcome], en: "the sign-in expired (it is valid for 10 minutes)", hint: Some(AGAIN),
        cs: Some(("Platnost přihlášení vypršela (platí 10 minut).", CS_AGAIN)), ..NONE
    },
    StateUnknown "state_unknown" => Info {
        uses: &[Outcome], en: "the sign-in is unknown or was already used",
        hint: Some("Start again with Refresh; each sign-in link works once."),
        cs: Some(("Toto přihlášení je neznámé nebo již bylo použito.", "Spusťte znovu akci Obnovit; každý odkaz pro přihlášení platí jen jednou.")), ..NONE
    },
    InvalidCallback "invalid_callback" => Info {
        uses: &[Outcome, Detail], en: "the sign-in answer has neither a code nor an error", hint: Some(AGAIN),
        cs: Some(("Odpověď na přihlášení neobsahuje kód ani chybu.", CS_AGAIN)), ..NONE
    },
    IdTokenInvalid "id_token_invalid" => Info {
        uses: &[Outcome, Detail], en: "the sign-in could not be verified (the id_token)", hint: Some(AGAIN),
        cs: Some(("Přihlášení se nepodařilo ověřit: token identity (id_token) od Microsoftu neprošel kontrolou.", CS_AGAIN)), ..NONE
    },
    IdentityMismatch "identity_mismatch" => Info {
        uses: &[Outcome, Detail], en: "another account than the mailbox's signed in",
        hint: Some("Start again with Refresh and choose the mailbox's own account."),
        cs: Some(("Přihlásili jste se jiným účtem, než je účet schránky.", "Spusťte znovu akci Obnovit a vyberte účet této schránky.")), ..NONE
    },
    IdentityChanged "identity_changed" => Info {
        uses: &[Outcome, Detail], en: "not the Entra ID object (or tenant) the mailbox was connected with",
        hint: Some("If the account was replaced on purpose, delete the mailbox and add it again; otherwise sign in with the original account."),
        cs: Some(("Tento účet není ten, se kterým byla schránka připojena (jiný objekt nebo tenant v Entra ID).", "Pokud byl účet záměrně nahrazen, schránku odstraňte a přidejte znovu; jinak se přihlaste původním účtem.")), ..NONE
    },
    NoRefreshToken "no_refresh_token" => Info {
        uses: &[Outcome, Detail], en: "Microsoft returned no refresh token (offline access was not granted)",
        hint: Some("Grant the offline_access permission (admin consent) and start again with Refresh."),
        cs: Some(("Microsoft nevrátil obnovovací token (nebyl udělen offline přístup).", "Udělte oprávnění offline_access (souhlasem správce) a spusťte znovu akci Obnovit.")), ..NONE
    },
    ConsentTenantMismatch "consent_tenant_mismatch" => Info {
        uses: &[Outcome, Audit], en: "the consent answer names another tenant than the app credential's",
        hint: Some("Open the admin-consent link as an administrator of the app credential's own tenant."),
        cs: Some(("Odpověď na souhlas správce uvádí jiný tenant, než je tenant přihlašovacích údajů aplikace.", "Otevřete odkaz pro souhlas správce jako správce vlastního tenantu těchto přihlašovacích údajů aplikace.")), ..NONE
    },

    // The connection check (mail).
    Unreachable "unreachable" => Info { uses: &[Check], en: "the host does not answer: endpoint, DNS, firewall", ..NONE },
    Timeout "timeout" => Info { uses: &[Check], en: "the server did not answer within the step timeout", ..NONE },
    InvalidEndpoint "invalid_endpoint" => Info { uses: &[Check], en: "the configured endpoint cannot be used as a TLS name", ..NONE },
    TlsCertificateUntrusted "tls_certificate_untrusted" => Info { uses: &[Check], en: "the certificate is not trusted; no credentials were sent", ..NONE },
    TlsNameMismatch "tls_name_mismatch" => Info { uses: &[Check], en: "the certificate is not for that name; no credentials were sent", ..NONE },
    TlsFailed "tls_failed" => Info { uses: &[Check], en: "the TLS handshake failed; no credentials were sent", ..NONE },
    ImapNoGreeting "imap_no_greeting" => Info { uses: &[Check], en: "the IMAP server sent no greeting", ..NONE },
    ImapAuthFailed "imap_auth_failed" => Info { uses: &[Check, Detail], en: "IMAP refused the token (IMAP disabled, a missing permission, or the Exchange service principal or mailbox permission of app-only access)", ..NONE },
    ImapUnavailable "imap_unavailable" => Info { uses: &[Check], en: "IMAP is temporarily unavailable (`NO [UNAVAILABLE]`): try later", ..NONE },
    ImapThrottled "imap_throttled" => Info { uses: &[Check], en: "Microsoft throttles IMAP for the mailbox: wait as the hint says", ..NONE },
    ImapError "imap_error" => Info { uses: &[Check], en: "the IMAP server answered an error", ..NONE },
    SmtpStarttlsUnavailable "smtp_starttls_unavailable" => Info { uses: &[Check], en: "the server offers no STARTTLS: use the submission endpoint", ..NONE },
    SmtpAuthDisabled "smtp_auth_disabled" => Info { uses: &[Check, Detail], en: "`535 5.7.139`: SMTP AUTH is disabled for the mailbox or tenant", ..NONE },
    SmtpSendAsDenied "smtp_send_as_denied" => Info { uses: &[Check, Detail], en: "`535 5.7.3`, `554 5.2.252 SendAsDenied`: the account may not send as the mailbox", ..NONE },
    SmtpAuthFailed "smtp_auth_failed" => Info { uses: &[Check, Detail], en: "another `535`: the token lacks `SMTP.Send` (or `SMTP.SendAsApp` and the Exchange set-up)", ..NONE },
    SmtpThrottled "smtp_throttled" => Info { uses: &[Check], en: "Microsoft limits the sender: wait as the hint says", ..NONE },
    SmtpUnavailable "smtp_unavailable" => Info { uses: &[Check], en: "`454` and other temporary answers", ..NONE },
    SmtpError "smtp_error" => Info { uses: &[Check], en: "the SMTP server answered an error", ..NONE },
    InvalidMessage "invalid_message" => Info { uses: &[Check], en: "the test message could not be built", ..NONE },
    GraphAccessDenied "graph_access_denied" => Info { uses: &[Check], en: "Graph answered `403` (`ErrorAccessDenied`, `Authorization_RequestDenied`): a missing permission, an application access policy or an RBAC management scope", ..NONE },
    GraphMailboxNotFound "graph_mailbox_not_found" => Info { uses: &[Check], en: "Graph answered `404` (`ErrorInvalidUser`, `MailboxNotEnabledForRESTAPI`): no such mailbox in the tenant, or none on Exchange Online", ..NONE },
    GraphThrottled "graph_throttled" => Info { uses: &[Check], en: "Graph answered `429`: wait as its `Retry-After` says", ..NONE },
    GraphUnavailable "graph_unavailable" => Info { uses: &[Check], en: "Graph answered `5xx`: temporary, try later", ..NONE },
    GraphError "graph_error" => Info { uses: &[Check], en: "Graph answered another error (its code and message are in `response`)", ..NONE },
    BridgeLoginFailed "bridge_login_failed" => Info { uses: &[Check], en: "a login through the bridge's own IMAP listener failed (the response is the bridge's answer)", ..NONE },
}

impl Code {
    /// The HTTP status of a problem document with this code (500 for a code
    /// that is never one: a bug).
    pub fn status(self) -> u16 {
        self.info().status.unwrap_or(500)
    }

    pub fn is(self, use_: Use) -> bool {
        self.info().uses.contains(&use_)
    }

    /// The English hint, where the table has one.
    pub fn hint(self) -> Option<&'static str> {
        self.info().hint
    }

    /// The Czech message and hint of the callback page.
    pub fn czech(self) -> Option<(&'static str, &'static str)> {
        self.info().cs
    }

    /// The codes of one use, in table order.
    pub fn of(use_: Use) -> impl Iterator<Item = Code> {
        Self::ALL.iter().copied().filter(move |c| c.is(use_))
    }
}

crate::domain::sql::text_column!(Code);

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code equals its text (handy in tests and at the edges).
impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<Code> for String {
    fn from(code: Code) -> String {
        code.as_str().to_owned()
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Code::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("unknown code `{text}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once_and_parses_back() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert_eq!(Code::parse(code.as_str()), Some(*code));
            let info = code.info();
            assert!(!info.uses.is_empty(), "{code} is used somewhere");
            assert!(!info.en.is_empty(), "{code} says what it means");
            assert_eq!(
                info.status.is_some(),
                code.is(Use::Problem),
                "{code}: a status exactly when it is a problem's code"
            );
            let snake = code
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_');
            assert!(snake, "{code}");
        }
    }

    #[test]
    fn every_outcome_of_the_callback_page_has_czech_text() {
        for code in Code::of(Use::Outcome) {
            assert!(code.czech().is_some(), "{code}");
        }
    }
}
