//! The Microsoft identity platform (Entra ID), through the `oauth2` crate over
//! the service's one reqwest client: authorization URLs with PKCE, code
//! redemption, refresh, client credentials, admin consent. Every call has a
//! timeout; 429, 5xx and connection failures are classified as transient and
//! retried (bounded, exponential back-off with jitter, honouring `Retry-After`)
//! where retrying is safe.

// Failures are rare and carry their explanation; boxing them buys nothing.
#![allow(clippy::result_large_err)]

pub mod explain;
pub(crate) mod transport;

use crate::codes::Code;
use crate::domain::{Cloud, Resource};
use std::sync::Arc;
use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    DeviceAuthorizationUrl, EndpointNotSet, EndpointSet, ErrorResponseType, ExtraTokenFields,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    StandardDeviceAuthorizationResponse, StandardErrorResponse, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use url::Url;

pub use explain::{Class, Explanation, explain};
use transport::{HttpAdapter, Transport};

/// The shortest and longest access-token lifetime believed, whatever
/// `expires_in` says (Microsoft's are 60-90 minutes).
pub const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(1);
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Extra fields of Microsoft's token response.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MsExtraFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl ExtraTokenFields for MsExtraFields {}

pub(crate) type MsTokenResponse = StandardTokenResponse<MsExtraFields, BasicTokenType>;
type MsClient = oauth2::Client<
    BasicErrorResponse,
    MsTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// What an app credential contributes to a token request.
pub struct AppIdentity<'a> {
    /// Decides the authority (unless `INBOXLINK_MS_AUTHORITY` is set) and
    /// the scopes' resource.
    pub cloud: Cloud,
    pub client_id: &'a str,
    pub tenant: &'a str,
    pub credential: ClientCredential<'a>,
    pub redirect_uri: &'a str,
    /// Sign-ins also ask for Graph's mail permissions (consent for both
    /// resources at once; each token is for one of them).
    pub graph: bool,
}

/// How the app proves itself at the token endpoint.
pub enum ClientCredential<'a> {
    /// `client_secret` in the request body.
    Secret(&'a SecretString),
    /// A client assertion signed with the certificate's private key (PEM),
    /// carrying its `x5t#S256`.
    Certificate {
        /// `None`: no certificate set yet.
        current: Option<SigningKey>,
        /// The certificate the current one replaced, while the current one
        /// has not been seen to work: tried when Microsoft does not know
        /// the current one (AADSTS700027).
        previous: Option<SigningKey>,
    },
}

/// A certificate's private key (PEM) and its `x5t#S256`.
pub struct SigningKey {
    pub key: SecretString,
    pub x5t: String,
}

/// Which key a certificate credential's token request was signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signer {
    Current,
    Previous,
}

/// `client_assertion_type` of a certificate credential's requests.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A token request with the client assertion, if the credential makes one
/// (each of oauth2's request types has its own `add_extra_param`).
macro_rules! with_assertion {
    ($request:expr, $assertion:expr) => {
        match $assertion {
            Some(assertion) => $request
                .add_extra_param("client_assertion_type", CLIENT_ASSERTION_TYPE)
                .add_extra_param("client_assertion", assertion),
            None => $request,
        }
    };
}

impl AppIdentity<'_> {
    /// The delegated scopes of a token for `resource`, in the app's cloud
    /// (one resource per token request, with `offline_access` and the
    /// OpenID Connect scopes).
    fn delegated_scopes(&self, resource: Resource) -> impl Iterator<Item = Scope> {
        let cloud = self.cloud.endpoints();
        let scopes = match resource {
            Resource::Outlook => cloud.delegated_scopes(),
            Resource::Graph => {
                let mut s = cloud.graph_delegated_scopes();
                s.push("offline_access".to_owned());
                s
            }
        };
        scopes.into_iter().map(Scope::new)
    }

    /// What a sign-in asks consent for: Exchange Online's scopes, and
    /// Graph's too for a `graph` app credential (the code is redeemed for
    /// Exchange Online; Graph tokens come from the refresh token).
    fn sign_in_scopes(&self) -> impl Iterator<Item = Scope> {
        let graph = if self.graph {
            self.cloud.endpoints().graph_delegated_scopes()
        } else {
            Vec::new()
        };
        self.delegated_scopes(Resource::Outlook)
            .chain(graph.into_iter().map(Scope::new))
    }

    /// The client-credentials scope of a token for `resource`.
    fn app_only_scope(&self, resource: Resource) -> Scope {
        let cloud = self.cloud.endpoints();
        Scope::new(match resource {
            Resource::Outlook => cloud.app_only_scope(),
            Resource::Graph => cloud.graph_app_only_scope(),
        })
    }
}

/// Tokens from the token endpoint.
pub struct TokenSet {
    pub access_token: SecretString,
    pub expires_in: Duration,
    pub refresh_token: Option<SecretString>,
    pub id_token: Option<SecretString>,
    /// Signed with a rolled certificate's previous key (Microsoft did not
    /// know the current one yet).
    pub signed_with_previous: bool,
}

/// A failed request to the identity provider, classified and explained.
#[derive(Debug, Clone)]
pub struct IdpError {
    /// The OAuth `error` (`invalid_grant`, ...) or `transport` / `timeout`.
    pub error: String,
    pub aadsts: Option<u32>,
    /// The first line of Microsoft's `error_description`.
    pub description: Option<String>,
    pub status: Option<u16>,
    pub retry_after: Option<Duration>,
    pub explanation: Explanation,
}

impl std::fmt::Display for IdpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.explanation.message, self.error)
    }
}

impl IdpError {
    /// A certificate credential that cannot make a client assertion.
    fn certificate_missing(detail: &str) -> Self {
        let code = Code::CertificateMissing;
        Self {
            error: code.as_str().to_owned(),
            aadsts: None,
            description: Some(detail.to_owned()),
            status: None,
            retry_after: None,
            explanation: Explanation {
                class: Class::AppCredential,
                code,
                message: format!("No client assertion could be made: {detail}."),
                hint: code.hint().unwrap_or_default(),
            },
        }
    }

    pub(crate) fn new(
        error: String,
        description: Option<String>,
        status: Option<u16>,
        retry_after: Option<Duration>,
    ) -> Self {
        let aadsts = description.as_deref().and_then(explain::aadsts_number);
        let explanation = explain(&error, aadsts, status);
        let description = description.as_deref().map(explain::first_line);
        Self {
            error,
            aadsts,
            description,
            status,
            retry_after,
            explanation,
        }
    }

    fn transport(what: &str) -> Self {
        Self::new(what.to_owned(), None, None, None).into_transient()
    }

    fn into_transient(mut self) -> Self {
        self.explanation = Explanation {
            class: Class::Transient,
            code: Code::MicrosoftUnreachable,
            message: format!("Microsoft could not be reached ({}).", self.error),
            hint: "Nothing to do: the service retries with back-off; check the network if it persists.",
        };
        self
    }

    pub fn class(&self) -> Class {
        self.explanation.class
    }
}

/// Retry policy for requests that are safe to repeat.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub base: Duration,
    pub max_wait: Duration,
    /// The whole call, its attempts and the waits between them: past it the
    /// caller gets the last transient failure (a 503), not a longer wait. A
    /// `Retry-After` that ends later is not waited for.
    pub budget: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 3,
            base: Duration::from_millis(400),
            max_wait: Duration::from_secs(30),
            budget: Duration::from_secs(20),
        }
    }
}

/// The Microsoft identity platform: each app credential's cloud's
/// authority, or one configured for every cloud.
#[derive(Clone)]
pub struct Microsoft {
    /// `INBOXLINK_MS_AUTHORITY`, for every cloud; `None`: the cloud's own.
    authority: Option<Url>,
    http: HttpAdapter,
    retry: Retry,
}

/// Default cap on requests to the identity provider in flight at once
/// (`INBOXLINK_IDP_MAX_CONCURRENCY`).
pub const DEFAULT_MAX_CONCURRENCY: usize = 32;

impl Microsoft {
    pub fn new(authority: Option<Url>, http: reqwest::Client) -> Self {
        Self {
            authority,
            http: HttpAdapter {
                http,
                timeout: Duration::from_secs(15),
                runtime: tokio::runtime::Handle::current(),
                permits: Arc::new(Semaphore::new(DEFAULT_MAX_CONCURRENCY)),
            },
            retry: Retry::default(),
        }
    }

    /// At most `n` requests to the identity provider in flight at once, over
    /// every caller of this client (and its clones); the others wait.
    pub fn with_max_concurrency(mut self, n: usize) -> Self {
        self.http.permits = Arc::new(Semaphore::new(n.max(1)));
        self
    }

    /// The sign-in authority of `cloud`: its own, or the configured one.
    pub fn authority(&self, cloud: Cloud) -> &str {
        let base = match &self.authority {
            Some(url) => url.as_str(),
            None => cloud.endpoints().authority,
        };
        base.trim_end_matches('/')
    }

    fn endpoint(&self, app: &AppIdentity<'_>, tenant: &str, path: &str) -> Url {
        let base = self.authority(app.cloud);
        Url::parse(&format!("{base}/{tenant}/{path}")).expect("authority is a valid URL")
    }

    /// The client assertion of a token request, for a certificate
    /// credential (a new one per request: its `jti` is never reused).
    fn assertion(&self, app: &AppIdentity<'_>, signer: Signer) -> Result<Option<String>, IdpError> {
        let signing = match (&app.credential, signer) {
            (ClientCredential::Secret(_), _) => return Ok(None),
            (ClientCredential::Certificate { current, .. }, Signer::Current) => current,
            (ClientCredential::Certificate { previous, .. }, Signer::Previous) => previous,
        };
        let Some(SigningKey { key, x5t }) = signing else {
            return Err(IdpError::certificate_missing(
                "the app credential has no certificate yet",
            ));
        };
        let endpoint = self.endpoint(app, app.tenant, "oauth2/v2.0/token");
        crate::certificate::assertion(key, x5t, app.client_id, endpoint.as_str())
            .map(Some)
            .map_err(|e| {
                IdpError::certificate_missing(&format!("the stored private key cannot sign: {e}"))
            })
    }

    fn client(&self, app: &AppIdentity<'_>) -> MsClient {
        let client = oauth2::Client::new(ClientId::new(app.client_id.to_owned()));
        let client = match &app.credential {
            ClientCredential::Secret(secret) => {
                client.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()))
            }
            ClientCredential::Certificate { .. } => client,
        };
        client
            .set_auth_uri(AuthUrl::from_url(self.endpoint(
                app,
                app.tenant,
                "oauth2/v2.0/authorize",
            )))
            .set_token_uri(TokenUrl::from_url(self.endpoint(
                app,
                app.tenant,
                "oauth2/v2.0/token",
            )))
            .set_redirect_uri(RedirectUrl::from_url(
                Url::parse(app.redirect_uri).expect("the redirect URI is a valid URL"),
            ))
            .set_auth_type(AuthType::RequestBody)
    }

    /// The URL a user opens to sign in; returns it with the PKCE verifier to keep.
    pub fn authorize_url(
        &self,
        app: &AppIdentity<'_>,
        state: &str,
        nonce: &str,
        login_hint: &str,
    ) -> (Url, PkceCodeVerifier) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = state.to_owned();
        let (url, _) = self
            .client(app)
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(app.sign_in_scopes())
            .set_pkce_challenge(challenge)
            .add_extra_param("response_mode", "query")
            .add_extra_param("nonce", nonce)
            .add_extra_param("prompt", "select_account")
            .add_extra_param("login_hint", login_hint)
            .url();
        (url, verifier)
    }

    /// The admin-consent URL for the app's application permissions.
    pub fn admin_consent_url(&self, app: &AppIdentity<'_>, state: &str) -> Url {
        let mut url = self.endpoint(app, app.tenant, "v2.0/adminconsent");
        url.query_pairs_mut()
            .append_pair("client_id", app.client_id)
            .append_pair("redirect_uri", app.redirect_uri)
            .append_pair("scope", &app.cloud.endpoints().app_only_scope())
            .append_pair("state", state);
        url
    }

    /// Redeems an authorization code (never retried: a code is single use).
    pub async fn redeem_code(
        &self,
        app: &AppIdentity<'_>,
        code: &str,
        verifier: &SecretString,
    ) -> Result<TokenSet, IdpError> {
        let client = &self.client(app);
        self.with_signer(app, |signer| async move {
            let assertion = self.assertion(app, signer)?;
            self.redeem_with(client, app, code, verifier, assertion)
                .await
        })
        .await
    }

    async fn redeem_with(
        &self,
        client: &MsClient,
        app: &AppIdentity<'_>,
        code: &str,
        verifier: &SecretString,
        assertion: Option<String>,
    ) -> Result<TokenSet, IdpError> {
        // The scopes of the one resource the token is for: a sign-in that
        // asked for Graph too named two.
        let scope: Vec<String> = app
            .delegated_scopes(Resource::Outlook)
            .map(|s| s.to_string())
            .collect();
        let request = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose_secret().to_owned()))
            .add_extra_param("scope", scope.join(" "));
        let request = with_assertion!(request, assertion);
        token_set(request.request_async(&self.http).await)
    }

    /// Exchanges a refresh token for new tokens, the access token for
    /// `resource` (retried while Microsoft is busy).
    pub async fn refresh(
        &self,
        app: &AppIdentity<'_>,
        refresh_token: &SecretString,
        resource: Resource,
    ) -> Result<TokenSet, IdpError> {
        let client = &self.client(app);
        self.with_retries(|| async {
            self.with_signer(app, |signer| async move {
                let token = RefreshToken::new(refresh_token.expose_secret().to_owned());
                let assertion = self.assertion(app, signer)?;
                let request = client
                    .exchange_refresh_token(&token)
                    .add_scopes(app.delegated_scopes(resource));
                let request = with_assertion!(request, assertion);
                token_set(request.request_async(&self.http).await)
            })
            .await
        })
        .await
    }

    /// A client-credentials token for Exchange Online or Graph (retried
    /// while Microsoft is busy).
    pub async fn client_credentials(
        &self,
        app: &AppIdentity<'_>,
        resource: Resource,
    ) -> Result<TokenSet, IdpError> {
        let client = &self.client(app);
        self.with_retries(|| async {
            self.with_signer(app, |signer| async move {
                let assertion = self.assertion(app, signer)?;
                let request = client
                    .exchange_client_credentials()
                    .add_scope(app.app_only_scope(resource));
                let request = with_assertion!(request, assertion);
                token_set(request.request_async(&self.http).await)
            })
            .await
        })
        .await
    }

    /// A client without a secret or an assertion: the device-code flow is a
    /// public client flow ("Allow public client flows" on the app
    /// registration), and Microsoft refuses a secret there.
    fn public_client(
        &self,
        app: &AppIdentity<'_>,
    ) -> oauth2::Client<
        BasicErrorResponse,
        MsTokenResponse,
        BasicTokenIntrospectionResponse,
        StandardRevocableToken,
        BasicRevocationErrorResponse,
        EndpointNotSet,
        EndpointSet,
        EndpointNotSet,
        EndpointNotSet,
        EndpointSet,
    > {
        oauth2::Client::new(ClientId::new(app.client_id.to_owned()))
            .set_device_authorization_url(DeviceAuthorizationUrl::from_url(self.endpoint(
                app,
                app.tenant,
                "oauth2/v2.0/devicecode",
            )))
            .set_token_uri(TokenUrl::from_url(self.endpoint(
                app,
                app.tenant,
                "oauth2/v2.0/token",
            )))
            .set_auth_type(AuthType::RequestBody)
    }

    /// Starts a device-code sign-in (RFC 8628) for the sign-in's scopes:
    /// the `user_code` a person types at the `verification_uri`.
    pub async fn device_authorization(
        &self,
        app: &AppIdentity<'_>,
    ) -> Result<StandardDeviceAuthorizationResponse, IdpError> {
        let client = self.public_client(app);
        let request = client
            .exchange_device_code()
            .add_scopes(app.sign_in_scopes());
        request
            .request_async(&self.http)
            .await
            .map_err(|e| match token_set(Err(e)) {
                Err(e) => e,
                Ok(_) => unreachable!("an error stays an error"),
            })
    }

    /// Polls the token endpoint at the interval Microsoft gave (longer after
    /// each `slow_down`) until the person signed in, declined, or the code
    /// expired (`expired_token`); the tokens are Exchange Online's.
    pub async fn poll_device_code(
        &self,
        app: &AppIdentity<'_>,
        details: &StandardDeviceAuthorizationResponse,
    ) -> Result<TokenSet, IdpError> {
        let client = self.public_client(app);
        let scope: Vec<String> = app
            .delegated_scopes(Resource::Outlook)
            .map(|s| s.to_string())
            .collect();
        let request = client
            .exchange_device_access_token(details)
            .add_extra_param("scope", scope.join(" "));
        token_set(
            request
                .request_async(&self.http, tokio::time::sleep, None)
                .await,
        )
    }

    /// A token request signed with the current certificate; if Microsoft
    /// does not know it (AADSTS700027) and a rolled certificate's previous
    /// key is kept, again with that one (nothing was redeemed: the client
    /// is authenticated first).
    async fn with_signer<F, Fut>(
        &self,
        app: &AppIdentity<'_>,
        call: F,
    ) -> Result<TokenSet, IdpError>
    where
        F: Fn(Signer) -> Fut,
        Fut: std::future::Future<Output = Result<TokenSet, IdpError>>,
    {
        let has_previous = matches!(
            &app.credential,
            ClientCredential::Certificate {
                previous: Some(_),
                ..
            }
        );
        match call(Signer::Current).await {
            Err(e) if has_previous && e.aadsts == Some(700_027) => {
                tracing::warn!(
                    "Microsoft does not know the new certificate yet; signing with the previous one"
                );
                let mut set = call(Signer::Previous).await?;
                set.signed_with_previous = true;
                Ok(set)
            }
            other => other,
        }
    }

    async fn with_retries<F, Fut>(&self, mut call: F) -> Result<TokenSet, IdpError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<TokenSet, IdpError>>,
    {
        let deadline = tokio::time::Instant::now() + self.retry.budget;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let answer = tokio::time::timeout_at(deadline, call())
                .await
                .unwrap_or_else(|_| Err(IdpError::transport("timeout")));
            match answer {
                Err(e) if e.class() == Class::Transient && attempt < self.retry.attempts => {
                    let backoff = self.retry.base * 2u32.pow(attempt - 1);
                    let jitter = Duration::from_millis(rand::random_range(
                        0..=backoff.as_millis() as u64 / 2,
                    ));
                    let wait = e
                        .retry_after
                        .unwrap_or(backoff + jitter)
                        .min(self.retry.max_wait);
                    if tokio::time::Instant::now() + wait >= deadline {
                        tracing::warn!(attempt, error = %e, "identity provider busy; no time left to retry");
                        return Err(e);
                    }
                    tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, error = %e, "identity provider busy; retrying");
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }
}

pub(crate) fn token_set<T: ErrorResponseType + AsRef<str> + std::fmt::Display + 'static>(
    response: Result<MsTokenResponse, RequestTokenError<Transport, StandardErrorResponse<T>>>,
) -> Result<TokenSet, IdpError> {
    match response {
        Ok(r) => Ok(TokenSet {
            access_token: SecretString::from(r.access_token().secret().to_owned()),
            // What a remote server says is clamped before it meets a date.
            expires_in: r
                .expires_in()
                .unwrap_or(Duration::from_secs(3600))
                .clamp(MIN_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME),
            refresh_token: r
                .refresh_token()
                .map(|t| SecretString::from(t.secret().to_owned())),
            id_token: r.extra_fields().id_token.clone().map(SecretString::from),
            signed_with_previous: false,
        }),
        Err(RequestTokenError::ServerResponse(e)) => {
            let status = None;
            Err(IdpError::new(
                e.error().as_ref().to_owned(),
                e.error_description().cloned(),
                status,
                None,
            ))
        }
        Err(RequestTokenError::Request(Transport::Busy {
            status,
            retry_after,
            error,
        })) => {
            let (code, description) = error
                .map(|e| (e.error, e.error_description))
                .unwrap_or(("server_busy".into(), None));
            Err(IdpError::new(code, description, Some(status), retry_after))
        }
        Err(RequestTokenError::Request(Transport::Failed(what))) => Err(IdpError::transport(what)),
        Err(RequestTokenError::Parse(_, _)) => {
            Err(IdpError::new("invalid_response".into(), None, None, None))
        }
        Err(RequestTokenError::Other(what)) => {
            tracing::warn!(%what, "unexpected answer from the identity provider");
            Err(IdpError::new("invalid_response".into(), None, None, None))
        }
    }
}
