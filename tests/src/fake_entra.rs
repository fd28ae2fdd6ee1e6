//! A fake Microsoft identity platform (Entra ID, v2.0 endpoints) for tests.
//!
//! [`FakeEntra::start`] serves HTTP on `127.0.0.1` (random port) and answers
//! like `login.microsoftonline.com` does, closely enough for the service's
//! end-to-end tests:
//!
//! | endpoint | path |
//! |---|---|
//! | authorize | `GET {authority}/{tenant}/oauth2/v2.0/authorize` |
//! | token | `POST {authority}/{tenant}/oauth2/v2.0/token` |
//! | admin consent | `GET {authority}/{tenant}/v2.0/adminconsent` |
//! | introspection (for Dovecot) | `POST {authority}/introspect` |
//! | Microsoft Graph mail (see `graph`) | `{authority}/v1.0/users/{address}/...` |
//!
//! `{tenant}` is a registered tenant id (GUID) or a verified domain added
//! with [`FakeEntra::add_domain`]; `common` and `organizations` are accepted
//! where Microsoft accepts them (not for client credentials).
//!
//! Behaviour worth knowing:
//! - There is no sign-in page. The authorize endpoint answers at once with a
//!   redirect, using the next queued [`SignIn`] outcome, or approving as the
//!   `login_hint` when the queue is empty.
//! - Errors look like Microsoft's: token errors are JSON with `error`,
//!   `error_description` (starting with `AADSTSnnnn:`), `error_codes`,
//!   `timestamp`, `trace_id` and `correlation_id`; authorize errors that cannot
//!   be sent to the client are a `400` HTML page naming the `AADSTS` code.
//! - PKCE with `S256` is required on every authorization request.
//! - `refresh_token` is issued only when `offline_access` was requested and
//!   `id_token` only when `openid` was requested, like Microsoft.
//! - Every refresh returns a new refresh token; the old one stays valid
//!   (Microsoft does not revoke it). Refresh tokens live 90 days (sliding:
//!   each new one gets 90 days). Use [`FakeEntra::advance_time`] to age them.
//! - Scopes of two resources in one token request (for example Outlook and
//!   Graph `User.Read`) fail with `invalid_scope` `AADSTS28000`.
//!
//! The server stops when the last clone of its [`FakeEntra`] is dropped.

mod assertion;
pub mod client;
mod device;
mod endpoints;
mod graph;
mod support;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use uuid::Uuid;

pub use support::{id_token_claims, pkce_s256};

/// Lifetime of an authorization code.
const CODE_TTL: Duration = Duration::from_secs(10 * 60);
/// Lifetime of a refresh token (Microsoft: 90 days, sliding).
const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(90 * 24 * 60 * 60);
/// Lifetime of an `id_token` (`exp - iat`).
const ID_TOKEN_TTL_SECS: u64 = 3600;
/// Shortest access token the fake hands out, whatever [`FakeEntra::set_token_length`] says.
const MIN_TOKEN_LENGTH: usize = 16;

/// Outcome of the next (simulated) interactive sign-in at the authorize
/// endpoint, queued with [`FakeEntra::next_sign_in`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// The user signs in as this account (an email address / UPN) and
    /// consents; the client gets a code. The account need not match
    /// `login_hint`, which is how "the wrong account signed in" is tested.
    As(String),
    /// The sign-in ends with an error that is sent to the redirect URI as
    /// `error` and `error_description`, for example `access_denied` with
    /// `"AADSTS65004: User declined to consent to access the app."`.
    Error {
        /// OAuth error code, e.g. `access_denied`, `consent_required`, `interaction_required`.
        error: String,
        /// Description, normally starting with `AADSTSnnnn:`.
        description: String,
    },
}

/// A failure the token endpoint returns instead of processing the request,
/// queued with [`FakeEntra::inject`]. One fault is consumed per call to the
/// token endpoint, after the call was counted and the latency applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// A Microsoft-style JSON error with this HTTP status, e.g. `400`,
    /// `invalid_grant`, `50076`, `"Due to a configuration change ... you must use multi-factor authentication"`.
    /// `description` gets the `AADSTS{aadsts}: ` prefix unless it already starts with `AADSTS`.
    Error {
        /// HTTP status code.
        status: u16,
        /// OAuth error code (`error` field).
        error: String,
        /// The `AADSTS` number (`error_codes` field and description prefix).
        aadsts: u32,
        /// Human text of `error_description`.
        description: String,
    },
    /// `429 Too Many Requests` with a `Retry-After` header (seconds) and a
    /// `temporarily_unavailable` JSON error.
    TooManyRequests {
        /// Value of the `Retry-After` header.
        retry_after_secs: u64,
    },
    /// `500 Internal Server Error` with a `server_error` JSON error.
    ServerError,
    /// Sleep this long, then process the request normally (for client timeouts).
    Delay(Duration),
    /// A redirect (307 or 308 re-POST the form) to `location`.
    Redirect {
        /// HTTP status code, e.g. `307`.
        status: u16,
        /// Value of the `Location` header.
        location: String,
    },
}

/// A running fake Entra ID server. Cheap to clone; all clones share the state.
///
/// ```no_run
/// # async fn demo() {
/// use inboxlink_tests::fake_entra::FakeEntra;
/// let entra = FakeEntra::start().await;
/// entra.register_app("0b5f1f7e-8a8e-4c6a-9a43-1d9e2c0f6a11", "app-client-id", "secret-value");
/// entra.add_domain("0b5f1f7e-8a8e-4c6a-9a43-1d9e2c0f6a11", "contoso.example");
/// let authority = entra.authority(); // configure the service with this
/// # }
/// ```
#[derive(Clone)]
pub struct FakeEntra {
    state: Arc<Mutex<State>>,
    authority: String,
    _server: Arc<StopOnDrop>,
}

impl fmt::Debug for FakeEntra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeEntra")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

/// Stops the HTTP server when the last [`FakeEntra`] clone goes away.
struct StopOnDrop(ServerHandle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        // `stop` sends the command eagerly; the returned future only waits for completion.
        drop(self.0.stop(false));
    }
}

impl FakeEntra {
    /// Starts the server on `127.0.0.1` with a random free port, on the
    /// current Tokio runtime (works inside `#[tokio::test(flavor = "multi_thread")]`).
    ///
    /// # Panics
    /// If no local port can be bound.
    pub async fn start() -> FakeEntra {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("fake Entra: bind 127.0.0.1 on a free port");
        let port = listener
            .local_addr()
            .expect("fake Entra: local address of the bound listener")
            .port();
        let authority = format!("http://127.0.0.1:{port}");
        let state = Arc::new(Mutex::new(State::new(authority.clone())));
        let data = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .configure(endpoints::routes)
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .expect("fake Entra: listen on the bound socket")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        FakeEntra {
            state,
            authority,
            _server: Arc::new(StopOnDrop(handle)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The authority to configure the service with: `http://127.0.0.1:PORT`
    /// (no trailing slash). Endpoints are `{authority}/{tenant}/oauth2/v2.0/...`.
    pub fn authority(&self) -> String {
        self.authority.clone()
    }

    /// URL of the token introspection endpoint, `{authority}/introspect`
    /// (for Dovecot's `passdb { driver = oauth2 }` with `introspection_mode = post`).
    pub fn introspection_url(&self) -> String {
        format!("{}/introspect", self.authority)
    }

    /// Registers an app (client) in a tenant with a client secret. The tenant
    /// is created on first use. Calling it again for the same tenant and
    /// client adds another valid secret (secret rotation with overlap).
    /// The same `client_id` may be registered in several tenants (multi-tenant app).
    ///
    /// # Panics
    /// If `tenant_id` is not a GUID.
    pub fn register_app(&self, tenant_id: &str, client_id: &str, secret: &str) {
        let mut st = self.lock();
        let app = st.app_entry(tenant_id, client_id);
        if !app.secrets.iter().any(|s| s.value == secret) {
            app.secrets.push(Secret {
                value: secret.to_owned(),
                expired: false,
            });
        }
    }

    /// Uploads a certificate (PEM) to an app, as under *Certificates &
    /// secrets*: client assertions signed with its key are accepted from
    /// then on. Registers the app in the tenant if it is not yet.
    ///
    /// # Panics
    /// If `tenant_id` is not a GUID or `certificate_pem` holds no certificate.
    pub fn add_certificate(&self, tenant_id: &str, client_id: &str, certificate_pem: &str) {
        let (_, pem) = x509_parser::pem::parse_x509_pem(certificate_pem.trim().as_bytes())
            .expect("a PEM certificate");
        let mut st = self.lock();
        let app = st.app_entry(tenant_id, client_id);
        if !app.certificates.contains(&pem.contents) {
            app.certificates.push(pem.contents);
        }
    }

    /// A new RSA 2048 key and a self-signed certificate for it, PEM each
    /// (certificate, key): what an administrator would upload.
    pub fn new_certificate() -> (String, String) {
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .expect("RSA key");
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// Marks a client secret as expired: using it at the token endpoint then
    /// fails with `401 invalid_client` `AADSTS7000222`.
    pub fn expire_secret(&self, client_id: &str, secret: &str) {
        let mut st = self.lock();
        for tenant in st.tenants.values_mut() {
            if let Some(app) = tenant.apps.get_mut(client_id) {
                for s in app.secrets.iter_mut().filter(|s| s.value == secret) {
                    s.expired = true;
                }
            }
        }
    }

    /// Adds a verified domain (e.g. `contoso.com`) to a tenant, so that
    /// `{authority}/contoso.com/oauth2/v2.0/...` routes to it. Domains are
    /// case-insensitive. The tenant is created on first use.
    ///
    /// # Panics
    /// If `tenant_id` is not a GUID.
    pub fn add_domain(&self, tenant_id: &str, domain: &str) {
        let tenant = canonical_tenant(tenant_id);
        let mut st = self.lock();
        st.tenants.entry(tenant.clone()).or_default();
        st.domains.insert(domain.to_ascii_lowercase(), tenant);
    }

    /// Registers a redirect URI for a client explicitly. Without any, the
    /// first `redirect_uri` the authorize endpoint (and, separately, the admin
    /// consent endpoint) sees for a client is remembered and later different
    /// ones fail with `AADSTS50011`. Once at least one URI was added here,
    /// only the added URIs are accepted, at both endpoints.
    pub fn add_redirect_uri(&self, client_id: &str, redirect_uri: &str) {
        self.lock()
            .registered_redirects
            .entry(client_id.to_owned())
            .or_default()
            .insert(redirect_uri.to_owned());
    }

    /// Queues the outcome of the next sign-in at the authorize endpoint.
    /// With an empty queue the authorize endpoint approves as the
    /// `login_hint` (and answers a `400` page if there is none).
    /// A queued [`SignIn::Error`] at the front of the queue is also used by
    /// the admin consent endpoint (the admin declines).
    pub fn next_sign_in(&self, outcome: SignIn) {
        self.lock().sign_ins.push_back(outcome);
    }

    /// Queues a fault for the token endpoint; faults are consumed one per
    /// token call, before normal processing.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// An outage of the token endpoint: until [`Self::end_outage`], every
    /// call is answered with the next of `faults` in turn (round robin),
    /// e.g. 429 with `Retry-After`, 500, 503 and a delay past the client's
    /// timeout. An empty list ends it.
    pub fn start_outage(&self, faults: Vec<Fault>) {
        let mut st = self.lock();
        st.outage = faults;
        st.outage_next = 0;
    }

    /// Ends an outage of [`Self::start_outage`].
    pub fn end_outage(&self) {
        self.start_outage(Vec::new());
    }

    /// Refresh tokens that were redeemed successfully more than once, and
    /// how many redemptions those were beyond the first. Entra ID accepts an
    /// earlier refresh token again while it lives; the fake does too, and
    /// counts each such reuse, so a test can tell a client that rotates
    /// strictly (every refresh with the token the last answer gave) from one
    /// that replays an old one.
    pub fn refresh_token_reuses(&self) -> (usize, usize) {
        let st = self.lock();
        let reused = st.refresh_token_uses.values().filter(|n| **n > 1);
        let tokens = reused.clone().count();
        (tokens, reused.map(|n| n - 1).sum())
    }

    /// Refreshes with a refresh token whose successor (the token its own
    /// refresh gave) had been used already: the client wrote an older token
    /// over a newer one, the hazard of refresh-token rotation.
    pub fn refresh_token_successor_reuses(&self) -> usize {
        self.lock().refresh_token_successor_reuses
    }

    /// Successful refresh-token redemptions since the fake started.
    pub fn refresh_token_redemptions(&self) -> usize {
        self.lock().refresh_token_uses.values().sum()
    }

    /// Latency added to every token endpoint call (before any fault).
    pub fn set_latency(&self, d: Duration) {
        self.lock().latency = d;
    }

    /// `expires_in` (seconds) of access tokens issued from now on; default 3600.
    /// Introspection reports a token inactive once this time has passed.
    pub fn set_access_token_ttl(&self, secs: u64) {
        self.lock().access_token_ttl = secs;
    }

    /// Makes every token answer state `expires_in` = `secs` (the tokens
    /// themselves keep their real lifetime); `None` stops it.
    pub fn report_expires_in(&self, secs: Option<u64>) {
        self.lock().reported_expires_in = secs;
    }

    /// Length in characters of access tokens issued from now on (default 40,
    /// minimum 16). Real Exchange Online tokens are 1.5-2.5 KB; use ~2000 to
    /// test that long tokens survive (e.g. SMTP line limits).
    pub fn set_token_length(&self, n: usize) {
        self.lock().token_length = n.max(MIN_TOKEN_LENGTH);
    }

    /// Number of calls that reached the token endpoint with this
    /// `grant_type` (`"authorization_code"`, `"refresh_token"`,
    /// `"client_credentials"`), including calls answered with a fault or an error.
    pub fn token_calls(&self, grant_type: &str) -> usize {
        self.lock().calls.get(grant_type).copied().unwrap_or(0)
    }

    /// The most calls to the token endpoint that were in flight at once
    /// (from being counted to being answered, latency and faults included),
    /// since the fake started.
    pub fn max_token_calls_in_flight(&self) -> usize {
        self.lock().max_in_flight
    }

    /// Like [`Self::max_token_calls_in_flight`], but a call counts only for
    /// the first `client_timeout` of it: a client that waits at most that
    /// long has given up on a slower call, which (as at a real server) goes
    /// on here without it. What a client's own cap on calls in flight can be
    /// held to. Finished calls only.
    pub fn max_token_calls_in_flight_within(&self, client_timeout: Duration) -> usize {
        let st = self.lock();
        let mut edges: Vec<(Instant, i32)> = Vec::with_capacity(st.token_call_spans.len() * 2);
        for (start, end) in &st.token_call_spans {
            edges.push((*start, 1));
            edges.push(((*end).min(*start + client_timeout), -1));
        }
        // An end before a start at the same instant.
        edges.sort_by_key(|(at, delta)| (*at, *delta));
        let (mut now, mut max) = (0i32, 0i32);
        for (_, delta) in edges {
            now += delta;
            max = max.max(now);
        }
        usize::try_from(max).unwrap_or(0)
    }

    /// Revokes all grants of a user (as after a password reset or "revoke
    /// sessions"): their existing refresh tokens fail with `invalid_grant`
    /// `AADSTS50173` and their access tokens become inactive in introspection.
    /// A later sign-in issues fresh, valid tokens. Case-insensitive.
    pub fn revoke_user(&self, email: &str) {
        let email = email.to_ascii_lowercase();
        let mut st = self.lock();
        for rt in st.refresh_tokens.values_mut() {
            if rt.user.eq_ignore_ascii_case(&email) {
                rt.revoked = true;
            }
        }
        for at in st.access_tokens.values_mut() {
            if at
                .user
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(&email))
            {
                at.revoked = true;
            }
        }
    }

    /// Number of refresh tokens that would currently be accepted (not
    /// revoked, not older than 90 days).
    pub fn refresh_token_count_valid(&self) -> usize {
        let st = self.lock();
        let now = st.now();
        st.refresh_tokens
            .values()
            .filter(|rt| !rt.revoked && now.saturating_sub(rt.issued) <= REFRESH_TOKEN_TTL)
            .count()
    }

    /// Query parameters of the last authorize request (first value of each
    /// name), so tests can assert what the service sent (PKCE, state, prompt, ...).
    pub fn last_authorize_query(&self) -> Option<HashMap<String, String>> {
        self.lock().last_authorize_query.clone()
    }

    /// Query parameters of the last admin consent request.
    pub fn last_admin_consent_query(&self) -> Option<HashMap<String, String>> {
        self.lock().last_admin_consent_query.clone()
    }

    /// The stable object id (`oid`, a GUID) the fake uses for this user in
    /// `id_token`s and introspection (`sub`). Case-insensitive.
    pub fn user_oid(&self, email: &str) -> String {
        self.lock().oid_of(email).to_string()
    }

    /// Gives the user a new object id, as when an account is deleted and
    /// another one is created with the same user name; returns it.
    pub fn recreate_user(&self, email: &str) -> String {
        let oid = Uuid::new_v4();
        self.lock().users.insert(email.to_ascii_lowercase(), oid);
        oid.to_string()
    }

    /// Microsoft Graph's base URL to configure the service with
    /// (`INBOXLINK_GRAPH_ENDPOINT`): the fake serves Graph too.
    pub fn graph_endpoint(&self) -> String {
        self.authority.clone()
    }

    /// Makes the fake Graph serve a mailbox with `messages` in its inbox.
    pub fn add_graph_mailbox(&self, address: &str, messages: u64) {
        self.lock().graph_mailboxes.insert(
            address.to_ascii_lowercase(),
            GraphMailbox {
                messages,
                ..GraphMailbox::default()
            },
        );
    }

    /// Lets `user`'s delegated tokens reach the Graph mailbox `address`.
    pub fn add_graph_delegate(&self, address: &str, user: &str) {
        if let Some(m) = self
            .lock()
            .graph_mailboxes
            .get_mut(&address.to_ascii_lowercase())
        {
            m.delegates.push(user.to_ascii_lowercase());
        }
    }

    /// An application access policy that blocks app-only Graph tokens from
    /// the mailbox (`403 ErrorAccessDenied` ... `[RAOP]`).
    pub fn block_graph_app(&self, address: &str) {
        if let Some(m) = self
            .lock()
            .graph_mailboxes
            .get_mut(&address.to_ascii_lowercase())
        {
            m.app_blocked = true;
        }
    }

    /// The next Graph request is answered `429` with this `Retry-After`.
    pub fn throttle_graph(&self, retry_after_secs: u64) {
        self.lock().graph_throttle.push_back(retry_after_secs);
    }

    /// The `sendMail` bodies the Graph mailbox sent.
    pub fn graph_sent(&self, address: &str) -> Vec<serde_json::Value> {
        self.lock()
            .graph_mailboxes
            .get(&address.to_ascii_lowercase())
            .map(|m| m.sent.clone())
            .unwrap_or_default()
    }

    /// Requests that reached the fake Graph.
    pub fn graph_calls(&self) -> usize {
        self.lock().graph_calls
    }

    /// The scope an access token was issued for, if the fake issued it.
    pub fn access_token_scope(&self, token: &str) -> Option<String> {
        self.lock()
            .access_tokens
            .get(token)
            .map(|g| g.scope.clone())
    }

    /// Ticks "Allow public client flows" on the app registration: its
    /// device-code polls are accepted without a secret.
    pub fn allow_public_client_flows(&self, client_id: &str) {
        self.lock().public_clients.insert(client_id.to_owned());
    }

    /// The `interval` (seconds) of device codes issued from now on (default 5).
    pub fn set_device_code_interval(&self, secs: u64) {
        self.lock().device_interval = secs;
    }

    fn device_code(&self, user_code: &str, change: impl FnOnce(&mut DeviceGrant)) {
        let mut st = self.lock();
        let grant = st
            .device_codes
            .values_mut()
            .find(|g| g.user_code == user_code)
            .expect("fake Entra: no device code with this user code");
        change(grant);
    }

    /// `user` signs in with the code at the device login page.
    pub fn approve_device_code(&self, user_code: &str, user: &str) {
        let user = user.to_ascii_lowercase();
        self.device_code(user_code, |g| g.approved_by = Some(user));
    }

    /// The code expires now: the next poll answers `expired_token`.
    pub fn expire_device_code(&self, user_code: &str) {
        self.device_code(user_code, |g| g.expired = true);
    }

    /// The next poll with the code answers `slow_down`.
    pub fn slow_down_device_code(&self, user_code: &str) {
        self.device_code(user_code, |g| g.slow_down = true);
    }

    /// When the polls with the code came, on the fake's clock.
    pub fn device_code_polls(&self, user_code: &str) -> Vec<Duration> {
        let mut polls = Vec::new();
        self.device_code(user_code, |g| polls = g.polls.clone());
        polls
    }

    /// Moves the fake's clock forward. It affects only expiry inside the
    /// fake: authorization codes (10 min), refresh tokens (90 days) and
    /// access tokens in introspection. `iat`/`exp` of new `id_token`s stay on
    /// the real clock, because the service validates them against its own.
    pub fn advance_time(&self, d: Duration) {
        self.lock().clock_offset += d;
    }
}

fn canonical_tenant(tenant_id: &str) -> String {
    Uuid::parse_str(tenant_id)
        .expect("fake Entra: tenant_id must be a GUID")
        .hyphenated()
        .to_string()
}

/// Everything the fake knows; shared between the handle and the handlers.
pub(crate) struct State {
    authority: String,
    jwt_secret: [u8; 32],
    /// Tenant GUID (lowercase, hyphenated) -> tenant.
    tenants: HashMap<String, Tenant>,
    /// Lowercase domain -> tenant GUID.
    domains: HashMap<String, String>,
    /// client_id -> redirect URIs added with `add_redirect_uri`.
    registered_redirects: HashMap<String, HashSet<String>>,
    /// (client_id, endpoint) -> first redirect URI seen.
    first_redirects: HashMap<(String, RedirectUse), String>,
    sign_ins: VecDeque<SignIn>,
    faults: VecDeque<Fault>,
    /// While not empty, every token call gets the next of these faults in
    /// turn (an outage), before the queued ones.
    outage: Vec<Fault>,
    outage_next: usize,
    /// Refresh token -> how many times a refresh with it succeeded.
    refresh_token_uses: HashMap<String, usize>,
    /// Refresh token -> the refresh token its (last) refresh issued.
    refresh_token_successor: HashMap<String, String>,
    /// Refreshes with a token whose successor had been used already.
    refresh_token_successor_reuses: usize,
    latency: Duration,
    access_token_ttl: u64,
    /// When set, the `expires_in` every token answer states, whatever the token's lifetime is.
    reported_expires_in: Option<u64>,
    token_length: usize,
    calls: HashMap<String, usize>,
    /// Token calls being answered now, and the most there ever were.
    in_flight: usize,
    max_in_flight: usize,
    /// Every finished token call: when it came, when it was answered.
    token_call_spans: Vec<(Instant, Instant)>,
    codes: HashMap<String, AuthCode>,
    refresh_tokens: HashMap<String, RefreshGrant>,
    access_tokens: HashMap<String, AccessGrant>,
    /// Lowercase email -> oid.
    users: HashMap<String, Uuid>,
    last_authorize_query: Option<HashMap<String, String>>,
    last_admin_consent_query: Option<HashMap<String, String>>,
    started: Instant,
    clock_offset: Duration,
    /// Every client assertion's `jti` seen: each is good for one request.
    assertion_ids: HashSet<String>,
    /// Lowercase address -> a mailbox the fake Graph serves.
    graph_mailboxes: HashMap<String, GraphMailbox>,
    /// `Retry-After` seconds of the next Graph answers: 429 each.
    graph_throttle: VecDeque<u64>,
    /// Requests that reached the fake Graph.
    graph_calls: usize,
    /// Device codes issued, by `device_code`.
    device_codes: HashMap<String, DeviceGrant>,
    /// Apps whose registration allows public client flows.
    public_clients: HashSet<String>,
    /// The `interval` the device-code endpoint answers (seconds).
    device_interval: u64,
}

/// A device code issued by the fake.
#[derive(Clone)]
struct DeviceGrant {
    client_id: String,
    tenant: String,
    /// The scopes asked for (the consent of an approval).
    scope: String,
    user_code: String,
    issued: Duration,
    /// Who signed in with it, once someone did.
    approved_by: Option<String>,
    expired: bool,
    /// The next poll answers `slow_down`.
    slow_down: bool,
    used: bool,
    /// When each poll came (the fake's clock).
    polls: Vec<Duration>,
}

/// A mailbox of the fake Graph.
#[derive(Default)]
struct GraphMailbox {
    /// Its inbox's `totalItemCount`; a message sent to it adds one.
    messages: u64,
    /// Users whose delegated tokens reach it (a shared mailbox's delegates).
    delegates: Vec<String>,
    /// An application access policy blocks app-only tokens.
    app_blocked: bool,
    /// The `sendMail` bodies it sent.
    sent: Vec<serde_json::Value>,
}

#[derive(Default)]
struct Tenant {
    apps: HashMap<String, AppRegistration>,
}

#[derive(Default)]
struct AppRegistration {
    secrets: Vec<Secret>,
    /// Certificates uploaded for client assertions (DER).
    certificates: Vec<Vec<u8>>,
}

struct Secret {
    value: String,
    expired: bool,
}

/// Which endpoint a remembered redirect URI was first seen at.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum RedirectUse {
    Authorize,
    AdminConsent,
}

#[derive(Clone)]
struct AuthCode {
    client_id: String,
    tenant: String,
    redirect_uri: String,
    code_challenge: String,
    scope: String,
    nonce: Option<String>,
    user: String,
    issued: Duration,
    used: bool,
}

#[derive(Clone)]
struct RefreshGrant {
    client_id: String,
    tenant: String,
    user: String,
    scope: String,
    issued: Duration,
    revoked: bool,
}

#[derive(Clone)]
struct AccessGrant {
    client_id: String,
    tenant: String,
    /// `None` for app-only (client credentials) tokens.
    user: Option<String>,
    scope: String,
    expires: Duration,
    /// Unix time of expiry, for introspection's `exp`.
    expires_unix: u64,
    revoked: bool,
}

/// What a `{tenant}` path segment names.
enum TenantPath {
    /// A registered tenant (GUID).
    Id(String),
    /// `common` or `organizations`: the tenant comes from the user or the grant.
    Multi,
    /// Neither a registered tenant GUID nor a registered domain.
    Unknown,
}

impl State {
    fn new(authority: String) -> State {
        State {
            authority,
            jwt_secret: rand::random(),
            tenants: HashMap::new(),
            domains: HashMap::new(),
            registered_redirects: HashMap::new(),
            first_redirects: HashMap::new(),
            sign_ins: VecDeque::new(),
            faults: VecDeque::new(),
            outage: Vec::new(),
            outage_next: 0,
            refresh_token_uses: HashMap::new(),
            refresh_token_successor: HashMap::new(),
            refresh_token_successor_reuses: 0,
            latency: Duration::ZERO,
            access_token_ttl: 3600,
            reported_expires_in: None,
            token_length: 40,
            calls: HashMap::new(),
            in_flight: 0,
            max_in_flight: 0,
            token_call_spans: Vec::new(),
            codes: HashMap::new(),
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            users: HashMap::new(),
            last_authorize_query: None,
            last_admin_consent_query: None,
            started: Instant::now(),
            clock_offset: Duration::ZERO,
            assertion_ids: HashSet::new(),
            graph_mailboxes: HashMap::new(),
            graph_throttle: VecDeque::new(),
            graph_calls: 0,
            device_codes: HashMap::new(),
            public_clients: HashSet::new(),
            device_interval: 5,
        }
    }

    /// The app's registration in the tenant, made on first use.
    fn app_entry(&mut self, tenant_id: &str, client_id: &str) -> &mut AppRegistration {
        self.tenants
            .entry(canonical_tenant(tenant_id))
            .or_default()
            .apps
            .entry(client_id.to_owned())
            .or_default()
    }

    /// The fake's clock: time since start plus `advance_time` offsets.
    fn now(&self) -> Duration {
        self.started.elapsed() + self.clock_offset
    }

    fn resolve_tenant(&self, segment: &str) -> TenantPath {
        let lower = segment.to_ascii_lowercase();
        if lower == "common" || lower == "organizations" {
            return TenantPath::Multi;
        }
        if let Ok(id) = Uuid::parse_str(&lower) {
            let id = id.hyphenated().to_string();
            if self.tenants.contains_key(&id) {
                return TenantPath::Id(id);
            }
            return TenantPath::Unknown;
        }
        match self.domains.get(&lower) {
            Some(id) => TenantPath::Id(id.clone()),
            None => TenantPath::Unknown,
        }
    }

    fn app(&self, tenant: &str, client_id: &str) -> Option<&AppRegistration> {
        self.tenants.get(tenant)?.apps.get(client_id)
    }

    /// Tenants (sorted) in which `client_id` is registered.
    fn tenants_of_client(&self, client_id: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .tenants
            .iter()
            .filter(|(_, t)| t.apps.contains_key(client_id))
            .map(|(id, _)| id.clone())
            .collect();
        v.sort();
        v
    }

    fn oid_of(&mut self, email: &str) -> Uuid {
        *self
            .users
            .entry(email.to_ascii_lowercase())
            .or_insert_with(Uuid::new_v4)
    }

    /// Remembers `redirect_uri` as the first one seen for `client_id` at `usage`
    /// (no effect if one is remembered already).
    fn remember_redirect(&mut self, client_id: &str, usage: RedirectUse, redirect_uri: &str) {
        self.first_redirects
            .entry((client_id.to_owned(), usage))
            .or_insert_with(|| redirect_uri.to_owned());
    }

    /// Whether the redirect URI is accepted for `client_id` at `usage`
    /// (explicitly added ones, else the first one seen, else any).
    fn redirect_allowed(&self, client_id: &str, usage: RedirectUse, redirect_uri: &str) -> bool {
        if let Some(set) = self.registered_redirects.get(client_id)
            && !set.is_empty()
        {
            return set.contains(redirect_uri);
        }
        self.first_redirects
            .get(&(client_id.to_owned(), usage))
            .is_none_or(|first| first == redirect_uri)
    }
}
