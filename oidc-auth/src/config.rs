//! Configuration: [`OidcConfig`], its builder, and loading from environment variables.

use std::fmt;
use std::time::Duration;

use url::Url;

use crate::algorithm::Algorithm;
use crate::policy::ClaimConstraint;
use crate::provider::ProviderClient;
use crate::secret::{Audience, Issuer, Scope, Secret};

const DISCOVERY_SUFFIX: &str = "/.well-known/openid-configuration";
/// The well-known path of RFC 8414 authorization server metadata: inserted before the issuer's
/// path (RFC 8414 section 3), or appended to it as OpenID's is (as some providers publish it).
const METADATA_PREFIX: &str = "/.well-known/oauth-authorization-server";

/// The largest bearer token limit [`OidcConfigBuilder::max_token_bytes`] accepts: 1 MiB, far
/// above any real token and above the header size HTTP servers accept by default.
const MAX_TOKEN_BYTES_LIMIT: usize = 1024 * 1024;
/// The least `max_token_bytes`: a header, claims and an RS256 signature (342 bytes) need more.
const MIN_TOKEN_BYTES: usize = 1024;
/// The longest provider timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// The least `jwks_max_bytes`: real discovery documents take a few KiB.
const MIN_JWKS_MAX_BYTES: usize = 4 * 1024;
/// The most, 8 MiB, keeps a sealed stored copy of a peer's key set (a third larger) within
/// the 16 MiB a MongoDB document may hold.
const MAX_JWKS_MAX_BYTES: usize = 8 * 1024 * 1024;
/// The most keys read from one key set.
const MAX_JWKS_MAX_KEYS: usize = 1024;

/// An invalid configuration, naming the option at fault: of an [`OidcConfig`], or of the
/// [`AuthRoutes`](crate::AuthRoutes) where the auth endpoints are mounted.
///
/// ```
/// use oidc_auth::OidcConfig;
/// let err = OidcConfig::builder().client_id("app").build().unwrap_err();
/// assert_eq!(err.option(), "discovery_url");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid oidc-auth configuration: `{option}`: {message}")]
pub struct ConfigError {
    option: &'static str,
    message: String,
}

impl ConfigError {
    pub(crate) fn new(option: &'static str, message: impl Into<String>) -> Self {
        Self {
            option,
            message: message.into(),
        }
    }

    /// The name of the option (as in the builder method) that is invalid; `http_client` when
    /// the HTTP client for the provider cannot be built in this environment (its TLS set-up
    /// failed, for one), which no option can fix. For [`AuthRoutes`](crate::AuthRoutes), the
    /// method that refused its value: `prefix` or `path`.
    pub fn option(&self) -> &'static str {
        self.option
    }

    /// What is wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A URL as given (the store URL, and the builder's URL options before they are checked). Its
/// `Debug` shows it with any password (in its user info or a password-like query parameter)
/// masked: a configuration gets logged.
#[derive(Clone)]
pub(crate) struct MaskedUrl(pub(crate) String);

impl fmt::Debug for MaskedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&crate::store::without_password(self.0.clone(), &self.0), f)
    }
}

/// Every setting of the library, validated.
///
/// Build it with [`OidcConfig::builder`] or [`OidcConfig::from_env`]. Defaults are the safe
/// choice: 60 s clock leeway, asymmetric algorithms only, bounded caches, no redirect URI allowed
/// but loopback ones.
///
/// ```
/// use oidc_auth::OidcConfig;
/// let config = OidcConfig::builder()
///     .discovery_url("https://idp.example/realms/main/.well-known/openid-configuration")
///     .client_id("my-api")
///     .audience("my-api")
///     .build()?;
/// assert_eq!(config.leeway().as_secs(), 60);
/// # Ok::<(), oidc_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct OidcConfig {
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<Secret>,
    pub(crate) discovery_url: Url,
    pub(crate) scopes: Vec<Scope>,
    pub(crate) audience: Option<Audience>,
    pub(crate) proxy: Option<Url>,
    pub(crate) claims: Vec<ClaimConstraint>,
    pub(crate) offline_access: bool,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) jwks_uri: Option<Url>,
    pub(crate) issuer: Option<Issuer>,
    pub(crate) expected_issuer: Issuer,
    pub(crate) broker_mode: bool,
    pub(crate) broker_store_url: Option<MaskedUrl>,
    pub(crate) broker_audience: Option<Audience>,
    pub(crate) trusted_issuers: Vec<Issuer>,
    pub(crate) broker_jwks_path: String,
    pub(crate) leeway: Duration,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) token_cache_capacity: usize,
    pub(crate) token_cache_ttl: Duration,
    pub(crate) discovery_ttl: Duration,
    pub(crate) jwks_ttl: Duration,
    pub(crate) jwks_refetch_cooldown: Duration,
    pub(crate) jwks_stale_limit: Duration,
    pub(crate) jwks_max_bytes: usize,
    pub(crate) jwks_max_keys: usize,
    pub(crate) max_token_bytes: usize,
    pub(crate) login_redirect_uris: Vec<Url>,
    pub(crate) logout_redirect_uris: Vec<Url>,
    pub(crate) access_token_lifetime: Duration,
    pub(crate) refresh_token_lifetime: Duration,
    pub(crate) broker_signing_algorithm: Algorithm,
    pub(crate) key_rotation_period: Duration,
    pub(crate) encryption_key: Option<Secret>,
    pub(crate) previous_encryption_keys: Vec<Secret>,
    pub(crate) previous_key_from_client_secret: bool,
    pub(crate) device_session_lifetime: Duration,
    pub(crate) exchange_clients: Vec<(String, Secret)>,
    pub(crate) exchange_audiences: Vec<String>,
    pub(crate) state_key: Option<Secret>,
    pub(crate) realm: Option<String>,
    pub(crate) string_claims_as_lists: bool,
    pub(crate) accept_id_tokens: bool,
    pub(crate) allow_insecure_http: bool,
    /// The client for the provider and trusted peers, built from the timeouts above.
    pub(crate) http: ProviderClient,
}

/// Shown with password-like query parameters (`?api_key=`) masked in the discovery URL,
/// `jwks_uri`, `proxy`, the store URL (and its user info's password; the other URLs cannot have
/// user info) and the redirect URIs: a configuration gets logged, and a `jwks_uri` may carry an
/// API key. The issuers, public values that tokens carry, are shown as they are (a trusted
/// issuer has no query). [`OidcConfigBuilder`]'s `Debug` masks passwords, in user info or the
/// query, in the discovery URL, `jwks_uri`, `proxy`, the store URL and the trusted issuers, but
/// shows the issuer and the redirect URIs as given: they are public values.
impl fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every field by name, so that a field added later must be placed here too.
        let Self {
            client_id,
            client_secret,
            discovery_url,
            scopes,
            audience,
            proxy,
            claims,
            offline_access,
            timeout,
            connect_timeout,
            jwks_uri,
            issuer,
            expected_issuer,
            broker_mode,
            broker_store_url,
            broker_audience,
            trusted_issuers,
            broker_jwks_path,
            leeway,
            algorithms,
            token_cache_capacity,
            token_cache_ttl,
            discovery_ttl,
            jwks_ttl,
            jwks_refetch_cooldown,
            jwks_stale_limit,
            jwks_max_bytes,
            jwks_max_keys,
            max_token_bytes,
            login_redirect_uris,
            logout_redirect_uris,
            access_token_lifetime,
            refresh_token_lifetime,
            broker_signing_algorithm,
            key_rotation_period,
            encryption_key,
            previous_encryption_keys,
            previous_key_from_client_secret,
            device_session_lifetime,
            exchange_clients,
            exchange_audiences,
            state_key,
            realm,
            string_claims_as_lists,
            accept_id_tokens,
            allow_insecure_http,
            http,
        } = self;
        let masked = |url: &Url| MaskedUrl(url.to_string());
        f.debug_struct("OidcConfig")
            .field("client_id", client_id)
            .field("client_secret", client_secret)
            .field("discovery_url", &masked(discovery_url))
            .field("scopes", scopes)
            .field("audience", audience)
            .field("proxy", &proxy.as_ref().map(masked))
            .field("claims", claims)
            .field("offline_access", offline_access)
            .field("timeout", timeout)
            .field("connect_timeout", connect_timeout)
            .field("jwks_uri", &jwks_uri.as_ref().map(masked))
            .field("issuer", issuer)
            .field("expected_issuer", expected_issuer)
            .field("broker_mode", broker_mode)
            .field("broker_store_url", broker_store_url)
            .field("broker_audience", broker_audience)
            .field("trusted_issuers", trusted_issuers)
            .field("broker_jwks_path", broker_jwks_path)
            .field("leeway", leeway)
            .field("algorithms", algorithms)
            .field("token_cache_capacity", token_cache_capacity)
            .field("token_cache_ttl", token_cache_ttl)
            .field("discovery_ttl", discovery_ttl)
            .field("jwks_ttl", jwks_ttl)
            .field("jwks_refetch_cooldown", jwks_refetch_cooldown)
            .field("jwks_stale_limit", jwks_stale_limit)
            .field("jwks_max_bytes", jwks_max_bytes)
            .field("jwks_max_keys", jwks_max_keys)
            .field("max_token_bytes", max_token_bytes)
            .field(
                "login_redirect_uris",
                &login_redirect_uris.iter().map(masked).collect::<Vec<_>>(),
            )
            .field(
                "logout_redirect_uris",
                &logout_redirect_uris.iter().map(masked).collect::<Vec<_>>(),
            )
            .field("access_token_lifetime", access_token_lifetime)
            .field("refresh_token_lifetime", refresh_token_lifetime)
            .field("broker_signing_algorithm", broker_signing_algorithm)
            .field("key_rotation_period", key_rotation_period)
            .field("encryption_key", encryption_key)
            .field("previous_encryption_keys", previous_encryption_keys)
            .field(
                "previous_key_from_client_secret",
                previous_key_from_client_secret,
            )
            .field("device_session_lifetime", device_session_lifetime)
            .field("exchange_clients", exchange_clients)
            .field("exchange_audiences", exchange_audiences)
            .field("state_key", state_key)
            .field("realm", realm)
            .field("string_claims_as_lists", string_claims_as_lists)
            .field("accept_id_tokens", accept_id_tokens)
            .field("allow_insecure_http", allow_insecure_http)
            .field("http", http)
            .finish()
    }
}

impl OidcConfig {
    /// The OAuth client id registered at the provider.
    pub fn client_id(&self) -> &str {
        self.client_id.as_str()
    }

    /// The client secret; `None` for a public client.
    pub fn client_secret(&self) -> Option<&Secret> {
        self.client_secret.as_ref()
    }

    /// The provider's discovery document URL.
    pub fn discovery_url(&self) -> &Url {
        &self.discovery_url
    }

    /// Scopes requested in the device flow, and at login unless the `/login` request's `scope`
    /// parameter replaces them.
    pub fn scopes(&self) -> &[Scope] {
        self.scopes.as_slice()
    }

    /// The audience access tokens must carry, if any.
    pub fn audience(&self) -> Option<&Audience> {
        self.audience.as_ref()
    }

    /// The public base URL of the application.
    pub fn proxy(&self) -> Option<&Url> {
        self.proxy.as_ref()
    }

    /// Claim constraints applied to every protected route.
    pub fn claims(&self) -> &[ClaimConstraint] {
        self.claims.as_slice()
    }

    /// Whether the device flow asks for `offline_access`, and login unless the `/login`
    /// request's `offline_access` parameter decides.
    pub fn offline_access(&self) -> bool {
        self.offline_access
    }

    /// Total timeout of one request to the provider.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Connect timeout of one request to the provider.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// JWKS URL override (else taken from discovery).
    pub fn jwks_uri(&self) -> Option<&Url> {
        self.jwks_uri.as_ref()
    }

    /// The configured issuer, if any (else the one the discovery URL implies; see
    /// [`expected_issuer`](Self::expected_issuer)).
    pub fn issuer(&self) -> Option<&Issuer> {
        self.issuer.as_ref()
    }

    /// Whether broker mode is on.
    pub fn broker_mode(&self) -> bool {
        self.broker_mode
    }

    /// The broker store URL.
    pub fn broker_store_url(&self) -> Option<&str> {
        self.broker_store_url.as_ref().map(|url| url.0.as_str())
    }

    /// The audience of tokens minted in broker mode, and the audience trusted peers' tokens
    /// must carry (else [`audience`](Self::audience)).
    pub fn broker_audience(&self) -> Option<&Audience> {
        self.broker_audience.as_ref()
    }

    /// Issuers of other instances whose minted tokens are accepted.
    pub fn trusted_issuers(&self) -> &[Issuer] {
        self.trusted_issuers.as_slice()
    }

    /// Path of the broker JWKS, relative to a peer's base URL.
    pub fn broker_jwks_path(&self) -> &str {
        self.broker_jwks_path.as_str()
    }

    /// Clock leeway for `exp`, `nbf` and `iat`.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// Accepted signature algorithms.
    pub fn algorithms(&self) -> &[Algorithm] {
        self.algorithms.as_slice()
    }

    /// How many validated tokens of ordinary size are cached (a large token counts one per
    /// 8 KiB of memory it takes).
    pub fn token_cache_capacity(&self) -> usize {
        self.token_cache_capacity
    }

    /// The longest a validated token is served from the cache (never past its `exp`).
    pub fn token_cache_ttl(&self) -> Duration {
        self.token_cache_ttl
    }

    /// How long the discovery document is kept before a refresh.
    pub fn discovery_ttl(&self) -> Duration {
        self.discovery_ttl
    }

    /// How long a JWKS is kept before a background refresh.
    pub fn jwks_ttl(&self) -> Duration {
        self.jwks_ttl
    }

    /// Minimum time between two JWKS fetches caused by unknown key ids.
    pub fn jwks_refetch_cooldown(&self) -> Duration {
        self.jwks_refetch_cooldown
    }

    /// How long the last good JWKS stays usable while the provider is unreachable.
    pub fn jwks_stale_limit(&self) -> Duration {
        self.jwks_stale_limit
    }

    /// Largest accepted JWKS (and discovery) body, in bytes.
    pub fn jwks_max_bytes(&self) -> usize {
        self.jwks_max_bytes
    }

    /// Largest number of usable signing keys loaded from one JWKS.
    pub fn jwks_max_keys(&self) -> usize {
        self.jwks_max_keys
    }

    /// Largest accepted bearer token, in bytes.
    pub fn max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }

    /// Redirect URIs allowed at login besides loopback ones.
    pub fn login_redirect_uris(&self) -> &[Url] {
        self.login_redirect_uris.as_slice()
    }

    /// Redirect URIs allowed after logout.
    pub fn logout_redirect_uris(&self) -> &[Url] {
        self.logout_redirect_uris.as_slice()
    }

    /// Absolute lifetime of a broker session started by the device flow (default 90 days);
    /// refreshing never extends it.
    pub fn device_session_lifetime(&self) -> Duration {
        self.device_session_lifetime
    }

    /// Client ids allowed to use token exchange in broker mode (their secrets stay inside).
    pub fn exchange_client_ids(&self) -> impl Iterator<Item = &str> {
        self.exchange_clients.iter().map(|(id, _)| id.as_str())
    }

    /// Audiences a token exchange may ask for, besides the broker audience.
    pub fn exchange_audiences(&self) -> &[String] {
        &self.exchange_audiences
    }

    /// Lifetime of access tokens minted in broker mode.
    pub fn access_token_lifetime(&self) -> Duration {
        self.access_token_lifetime
    }

    /// Lifetime of refresh tokens minted in broker mode.
    pub fn refresh_token_lifetime(&self) -> Duration {
        self.refresh_token_lifetime
    }

    /// Signing algorithm of broker tokens.
    pub fn broker_signing_algorithm(&self) -> Algorithm {
        self.broker_signing_algorithm
    }

    /// How often broker signing keys rotate.
    pub fn key_rotation_period(&self) -> Duration {
        self.key_rotation_period
    }

    /// Key encrypting stored secrets at rest.
    pub fn encryption_key(&self) -> Option<&Secret> {
        self.encryption_key.as_ref()
    }

    /// Earlier encryption keys: what they sealed still opens, nothing new is sealed with them.
    pub fn previous_encryption_keys(&self) -> &[Secret] {
        &self.previous_encryption_keys
    }

    /// Whether the key derived from the client secret still opens and tags what it did before
    /// the encryption key was set.
    pub fn previous_key_from_client_secret(&self) -> bool {
        self.previous_key_from_client_secret
    }

    /// Key sealing login state, shared by every instance of a deployment.
    pub fn state_key(&self) -> Option<&Secret> {
        self.state_key.as_ref()
    }

    /// The `realm` of `WWW-Authenticate` challenges, if any.
    pub fn realm(&self) -> Option<&str> {
        self.realm.as_deref()
    }

    /// Whether a string claim counts as a one-element list in claim constraints.
    pub fn string_claims_as_lists(&self) -> bool {
        self.string_claims_as_lists
    }

    /// Whether the provider's ID tokens are accepted as bearer tokens.
    pub fn accept_id_tokens(&self) -> bool {
        self.accept_id_tokens
    }

    /// Whether `http://` URLs of hosts other than the loopback ones were allowed for the
    /// provider, its keys, the trusted issuers and the broker's public URL.
    pub fn allow_insecure_http(&self) -> bool {
        self.allow_insecure_http
    }
}

impl OidcConfig {
    /// A builder with every option at its default.
    pub fn builder() -> OidcConfigBuilder {
        OidcConfigBuilder::default()
    }

    /// Reads the configuration from `OIDC_*` environment variables.
    ///
    /// | variable | option |
    /// |---|---|
    /// | `OIDC_DISCOVERY_URL` | [`discovery_url`](OidcConfigBuilder::discovery_url) (required) |
    /// | `OIDC_CLIENT_ID` | [`client_id`](OidcConfigBuilder::client_id) (required) |
    /// | `OIDC_CLIENT_SECRET` | [`client_secret`](OidcConfigBuilder::client_secret) |
    /// | `OIDC_SCOPES` | [`scopes`](OidcConfigBuilder::scopes), space separated |
    /// | `OIDC_AUDIENCE` | [`audience`](OidcConfigBuilder::audience) |
    /// | `OIDC_PROXY` | [`proxy`](OidcConfigBuilder::proxy) |
    /// | `OIDC_ISSUER` | [`issuer`](OidcConfigBuilder::issuer) |
    /// | `OIDC_JWKS_URI` | [`jwks_uri`](OidcConfigBuilder::jwks_uri) |
    /// | `OIDC_ALLOW_INSECURE_HTTP` | [`allow_insecure_http`](OidcConfigBuilder::allow_insecure_http), `true` or `false` |
    /// | `OIDC_LEEWAY_SECS` | [`leeway`](OidcConfigBuilder::leeway) |
    /// | `OIDC_TIMEOUT_SECS` | [`timeout`](OidcConfigBuilder::timeout) |
    /// | `OIDC_OFFLINE_ACCESS` | [`offline_access`](OidcConfigBuilder::offline_access) (`true`/`false`) |
    /// | `OIDC_LOGIN_REDIRECT_URIS` | [`login_redirect_uris`](OidcConfigBuilder::login_redirect_uris), comma separated |
    /// | `OIDC_LOGOUT_REDIRECT_URIS` | [`logout_redirect_uris`](OidcConfigBuilder::logout_redirect_uris), comma separated |
    /// | `OIDC_STATE_KEY` | [`state_key`](OidcConfigBuilder::state_key) |
    /// | `OIDC_TOKEN_CACHE_CAPACITY` | [`token_cache_capacity`](OidcConfigBuilder::token_cache_capacity) (0 disables the cache) |
    /// | `OIDC_MAX_TOKEN_BYTES` | [`max_token_bytes`](OidcConfigBuilder::max_token_bytes) |
    /// | `OIDC_STRING_CLAIMS_AS_LISTS` | [`string_claims_as_lists`](OidcConfigBuilder::string_claims_as_lists) (`true`/`false`) |
    /// | `OIDC_ACCEPT_ID_TOKENS` | [`accept_id_tokens`](OidcConfigBuilder::accept_id_tokens) (`true`/`false`) |
    /// | `OIDC_BROKER_MODE` | [`broker_mode`](OidcConfigBuilder::broker_mode) (`true`/`false`) |
    /// | `OIDC_BROKER_STORE_URL` | [`broker_store_url`](OidcConfigBuilder::broker_store_url) |
    /// | `OIDC_BROKER_AUDIENCE` | [`broker_audience`](OidcConfigBuilder::broker_audience) |
    /// | `OIDC_TRUSTED_ISSUERS` | [`trusted_issuers`](OidcConfigBuilder::trusted_issuers), comma separated |
    /// | `OIDC_BROKER_JWKS_PATH` | [`broker_jwks_path`](OidcConfigBuilder::broker_jwks_path) |
    /// | `OIDC_BROKER_ENCRYPTION_KEY` | [`encryption_key`](OidcConfigBuilder::encryption_key) |
    /// | `OIDC_BROKER_PREVIOUS_ENCRYPTION_KEYS` | [`previous_encryption_keys`](OidcConfigBuilder::previous_encryption_keys), comma separated |
    /// | `OIDC_BROKER_PREVIOUS_KEY_FROM_CLIENT_SECRET` | [`previous_key_from_client_secret`](OidcConfigBuilder::previous_key_from_client_secret) (`true`/`false`) |
    /// | `OIDC_BROKER_SIGNING_ALGORITHM` | [`broker_signing_algorithm`](OidcConfigBuilder::broker_signing_algorithm) |
    /// | `OIDC_BROKER_EXCHANGE_CLIENTS` | [`exchange_client`](OidcConfigBuilder::exchange_client), comma list of `id:secret` |
    /// | `OIDC_BROKER_EXCHANGE_AUDIENCES` | [`exchange_audiences`](OidcConfigBuilder::exchange_audiences), comma separated |
    ///
    /// Every value is trimmed of surrounding whitespace (a secret file ends in a newline), and
    /// so is each item of a comma list and each side of an `id:secret` pair. A variable that is
    /// set must have a value: one that is empty or only whitespace is a [`ConfigError`] naming
    /// it, never read as unset (an empty `OIDC_AUDIENCE` would otherwise turn the audience check
    /// off), and a comma list must list something (`,` is refused). Unset a variable to leave
    /// its option at the default. An error of an option read from a variable names the
    /// variable in its [`message`](ConfigError::message).
    ///
    /// ```no_run
    /// let config = oidc_auth::OidcConfig::from_env()?;
    /// # Ok::<(), oidc_auth::ConfigError>(())
    /// ```
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| env_value(name, std::env::var(name)))
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    ///
    /// ```
    /// let config = oidc_auth::OidcConfig::from_lookup(|name| match name {
    ///     "OIDC_DISCOVERY_URL" => Some("https://idp.example/.well-known/openid-configuration".into()),
    ///     "OIDC_CLIENT_ID" => Some("app".into()),
    ///     "OIDC_LEEWAY_SECS" => Some("5".into()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(config.leeway().as_secs(), 5);
    /// # Ok::<(), oidc_auth::ConfigError>(())
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_vars(|name| Ok(lookup(name)))
    }

    /// [`from_lookup`](Self::from_lookup) over a lookup that may itself fail, as reading the
    /// environment does for a value that is not UTF-8.
    fn from_vars(
        lookup: impl Fn(&str) -> Result<Option<String>, ConfigError>,
    ) -> Result<Self, ConfigError> {
        // Every value is trimmed here, once: a secret file or a here-doc leaves a trailing
        // newline, which would otherwise make a secret fail with `invalid_client`, a token fail
        // its audience check, a scope fail validation or a SQLite store open a file whose name
        // ends in a newline. A variable that is set but empty (or only whitespace) is refused
        // rather than read as unset: an empty OIDC_AUDIENCE would turn the audience check off,
        // an empty OIDC_CLIENT_SECRET would make a confidential client public, and an empty
        // OIDC_BROKER_ENCRYPTION_KEY would store signing keys unencrypted, all silently.
        let get = |name: &str| match lookup(name)? {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Err(ConfigError::new(
                option_set_by(name),
                format!("{name} is set but empty; give it a value or unset it"),
            )),
            Some(v) => Ok(Some(v.trim().to_owned())),
        };
        let mut b = OidcConfig::builder();
        if let Some(v) = get("OIDC_DISCOVERY_URL")? {
            b = b.discovery_url(v);
        }
        if let Some(v) = get("OIDC_CLIENT_ID")? {
            b = b.client_id(v);
        }
        if let Some(v) = get("OIDC_CLIENT_SECRET")? {
            b = b.client_secret(v);
        }
        if let Some(v) = get("OIDC_SCOPES")? {
            b = b.scopes(v);
        }
        if let Some(v) = get("OIDC_AUDIENCE")? {
            b = b.audience(v);
        }
        if let Some(v) = get("OIDC_PROXY")? {
            b = b.proxy(v);
        }
        if let Some(v) = get("OIDC_ISSUER")? {
            b = b.issuer(v);
        }
        if let Some(v) = get("OIDC_JWKS_URI")? {
            b = b.jwks_uri(v);
        }
        if let Some(v) = get("OIDC_LEEWAY_SECS")? {
            let secs = parse_secs("leeway", "OIDC_LEEWAY_SECS", &v)?;
            b = b.leeway(Duration::from_secs(secs));
        }
        if let Some(v) = get("OIDC_TIMEOUT_SECS")? {
            let secs = parse_secs("timeout", "OIDC_TIMEOUT_SECS", &v)?;
            b = b.timeout(Duration::from_secs(secs));
        }
        // A list that is set holds at least one item: `,` or `${OLD_KEY},` with the variable
        // unset is the same mistake as an empty value.
        let list = |name: &str| -> Result<Option<Vec<String>>, ConfigError> {
            let Some(v) = get(name)? else {
                return Ok(None);
            };
            let items: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if items.is_empty() {
                return Err(ConfigError::new(
                    option_set_by(name),
                    format!("{name} is set but lists nothing; give it a value or unset it"),
                ));
            }
            Ok(Some(items))
        };
        if let Some(v) = list("OIDC_LOGIN_REDIRECT_URIS")? {
            b = b.login_redirect_uris(v);
        }
        if let Some(v) = list("OIDC_LOGOUT_REDIRECT_URIS")? {
            b = b.logout_redirect_uris(v);
        }
        if let Some(v) = get("OIDC_STATE_KEY")? {
            b = b.state_key(v);
        }
        if let Some(v) = get("OIDC_OFFLINE_ACCESS")? {
            b = b.offline_access(parse_bool("offline_access", "OIDC_OFFLINE_ACCESS", &v)?);
        }
        if let Some(v) = get("OIDC_ALLOW_INSECURE_HTTP")? {
            b = b.allow_insecure_http(parse_bool(
                "allow_insecure_http",
                "OIDC_ALLOW_INSECURE_HTTP",
                &v,
            )?);
        }
        if let Some(v) = get("OIDC_TOKEN_CACHE_CAPACITY")? {
            let capacity = v.parse().map_err(|_| {
                ConfigError::new(
                    "token_cache_capacity",
                    "OIDC_TOKEN_CACHE_CAPACITY must be a whole number",
                )
            })?;
            b = b.token_cache_capacity(capacity);
        }
        if let Some(v) = get("OIDC_MAX_TOKEN_BYTES")? {
            let bytes = v.parse().map_err(|_| {
                ConfigError::new(
                    "max_token_bytes",
                    "OIDC_MAX_TOKEN_BYTES must be a whole number",
                )
            })?;
            b = b.max_token_bytes(bytes);
        }
        if let Some(v) = get("OIDC_STRING_CLAIMS_AS_LISTS")? {
            b = b.string_claims_as_lists(parse_bool(
                "string_claims_as_lists",
                "OIDC_STRING_CLAIMS_AS_LISTS",
                &v,
            )?);
        }
        if let Some(v) = get("OIDC_ACCEPT_ID_TOKENS")? {
            b = b.accept_id_tokens(parse_bool("accept_id_tokens", "OIDC_ACCEPT_ID_TOKENS", &v)?);
        }
        if let Some(v) = get("OIDC_BROKER_MODE")? {
            b = b.broker_mode(parse_bool("broker_mode", "OIDC_BROKER_MODE", &v)?);
        }
        if let Some(v) = get("OIDC_BROKER_STORE_URL")? {
            b = b.broker_store_url(v);
        }
        if let Some(v) = get("OIDC_BROKER_AUDIENCE")? {
            b = b.broker_audience(v);
        }
        if let Some(v) = list("OIDC_TRUSTED_ISSUERS")? {
            b = b.trusted_issuers(v);
        }
        if let Some(v) = get("OIDC_BROKER_JWKS_PATH")? {
            b = b.broker_jwks_path(v);
        }
        if let Some(v) = get("OIDC_BROKER_ENCRYPTION_KEY")? {
            b = b.encryption_key(v);
        }
        if let Some(v) = list("OIDC_BROKER_PREVIOUS_ENCRYPTION_KEYS")? {
            b = b.previous_encryption_keys(v);
        }
        if let Some(v) = get("OIDC_BROKER_PREVIOUS_KEY_FROM_CLIENT_SECRET")? {
            b = b.previous_key_from_client_secret(parse_bool(
                "previous_key_from_client_secret",
                "OIDC_BROKER_PREVIOUS_KEY_FROM_CLIENT_SECRET",
                &v,
            )?);
        }
        if let Some(v) = get("OIDC_BROKER_SIGNING_ALGORITHM")? {
            let alg = v.parse().map_err(|_| {
                ConfigError::new(
                    "broker_signing_algorithm",
                    "OIDC_BROKER_SIGNING_ALGORITHM must be RS256, ES256 or EdDSA",
                )
            })?;
            b = b.broker_signing_algorithm(alg);
        }
        if let Some(v) = list("OIDC_BROKER_EXCHANGE_CLIENTS")? {
            for entry in v {
                let (id, secret) = entry.split_once(':').ok_or_else(|| {
                    ConfigError::new(
                        "exchange_client",
                        "OIDC_BROKER_EXCHANGE_CLIENTS must be a comma list of id:secret",
                    )
                })?;
                // Spaces around the `:` are layout, not part of the id or the secret (the list
                // already trims around each item).
                b = b.exchange_client(id.trim(), secret.trim());
            }
        }
        if let Some(v) = list("OIDC_BROKER_EXCHANGE_AUDIENCES")? {
            b = b.exchange_audiences(v);
        }
        // The builder's checks name its options; a deployment knows the variables.
        b.build().map_err(
            |e| match VARIABLES.iter().find(|(_, option)| *option == e.option) {
                Some((name, _)) if !e.message.contains(name) => {
                    ConfigError::new(e.option, format!("{} (variable {name})", e.message))
                }
                _ => e,
            },
        )
    }

    /// The issuer tokens must name, and the discovery document must name: the configured one,
    /// else the one the discovery URL implies (see
    /// [`OidcConfigBuilder::discovery_url`]). Always known: the discovery document's value is
    /// only checked against it, never adopted. An issuer ending in `/` has the same discovery
    /// URL as the one without, so it must be configured.
    pub fn expected_issuer(&self) -> &Issuer {
        &self.expected_issuer
    }
}

/// Each environment variable [`OidcConfig::from_lookup`] reads, and the option it sets: what
/// an error of that option names.
const VARIABLES: [(&str, &str); 30] = [
    ("OIDC_DISCOVERY_URL", "discovery_url"),
    ("OIDC_CLIENT_ID", "client_id"),
    ("OIDC_CLIENT_SECRET", "client_secret"),
    ("OIDC_SCOPES", "scopes"),
    ("OIDC_AUDIENCE", "audience"),
    ("OIDC_PROXY", "proxy"),
    ("OIDC_ISSUER", "issuer"),
    ("OIDC_JWKS_URI", "jwks_uri"),
    ("OIDC_LEEWAY_SECS", "leeway"),
    ("OIDC_TIMEOUT_SECS", "timeout"),
    ("OIDC_LOGIN_REDIRECT_URIS", "login_redirect_uris"),
    ("OIDC_LOGOUT_REDIRECT_URIS", "logout_redirect_uris"),
    ("OIDC_STATE_KEY", "state_key"),
    ("OIDC_OFFLINE_ACCESS", "offline_access"),
    ("OIDC_ALLOW_INSECURE_HTTP", "allow_insecure_http"),
    ("OIDC_TOKEN_CACHE_CAPACITY", "token_cache_capacity"),
    ("OIDC_MAX_TOKEN_BYTES", "max_token_bytes"),
    ("OIDC_STRING_CLAIMS_AS_LISTS", "string_claims_as_lists"),
    ("OIDC_ACCEPT_ID_TOKENS", "accept_id_tokens"),
    ("OIDC_BROKER_MODE", "broker_mode"),
    ("OIDC_BROKER_STORE_URL", "broker_store_url"),
    ("OIDC_BROKER_AUDIENCE", "broker_audience"),
    ("OIDC_TRUSTED_ISSUERS", "trusted_issuers"),
    ("OIDC_BROKER_JWKS_PATH", "broker_jwks_path"),
    ("OIDC_BROKER_ENCRYPTION_KEY", "encryption_key"),
    (
        "OIDC_BROKER_PREVIOUS_ENCRYPTION_KEYS",
        "previous_encryption_keys",
    ),
    (
        "OIDC_BROKER_PREVIOUS_KEY_FROM_CLIENT_SECRET",
        "previous_key_from_client_secret",
    ),
    ("OIDC_BROKER_SIGNING_ALGORITHM", "broker_signing_algorithm"),
    ("OIDC_BROKER_EXCHANGE_CLIENTS", "exchange_client"),
    ("OIDC_BROKER_EXCHANGE_AUDIENCES", "exchange_audiences"),
];

/// The issuer `url` implies when it is a discovery URL of a standard form: the issuer followed by
/// `/.well-known/openid-configuration` (OpenID Connect Discovery section 4) or by
/// `/.well-known/oauth-authorization-server`, or RFC 8414's form with that path inserted before
/// the issuer's path; one trailing `/` is tolerated. A URL with a query, a fragment or user
/// info, or another path, implies none.
fn implied_issuer(url: &Url) -> Option<Issuer> {
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    // Without query and fragment the serialised URL is its origin followed by its path.
    let full = url.as_str();
    let origin = full.strip_suffix(url.path())?;
    let path = url.path();
    let path = path.strip_suffix('/').unwrap_or(path);
    // The OpenID form, and RFC 8414's well-known path appended as OpenID's is (how Okta's
    // custom authorization servers publish it).
    if let Some(issuer_path) = path
        .strip_suffix(DISCOVERY_SUFFIX)
        .or_else(|| path.strip_suffix(METADATA_PREFIX))
    {
        return Some(Issuer::new(format!("{origin}{issuer_path}")));
    }
    let issuer_path = path.strip_prefix(METADATA_PREFIX)?;
    (issuer_path.is_empty() || issuer_path.starts_with('/'))
        .then(|| Issuer::new(format!("{origin}{issuer_path}")))
}

/// The option the environment variable `name` sets (see [`VARIABLES`]).
fn option_set_by(name: &str) -> &'static str {
    VARIABLES
        .iter()
        .find(|(variable, _)| *variable == name)
        .map_or("environment", |(_, option)| option)
}

/// The value of the environment variable `name` as [`OidcConfig::from_env`] reads it: unset is
/// `None`, and a value that is not UTF-8 is an error naming the variable (not its value, which
/// may be a secret). Read as unset, it would leave the option at its default: an unreadable
/// `OIDC_AUDIENCE` would turn the audience check off.
fn env_value(
    name: &str,
    value: Result<String, std::env::VarError>,
) -> Result<Option<String>, ConfigError> {
    match value {
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::new(
            option_set_by(name),
            format!("{name} is not valid UTF-8; give it a UTF-8 value or unset it"),
        )),
    }
}

fn parse_secs(option: &'static str, var: &str, value: &str) -> Result<u64, ConfigError> {
    value
        .parse()
        .map_err(|_| ConfigError::new(option, format!("{var} must be a whole number of seconds")))
}

fn parse_bool(option: &'static str, var: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(
            option,
            format!("{var} must be true or false"),
        )),
    }
}

/// Builds an [`OidcConfig`]; every method sets one option, [`build`](Self::build) validates.
///
/// ```
/// use std::time::Duration;
/// use oidc_auth::{ClaimConstraint, OidcConfig};
/// let config = OidcConfig::builder()
///     .discovery_url("https://idp.example/.well-known/openid-configuration")
///     .client_id("app")
///     .scopes("openid profile email")
///     .claims([ClaimConstraint::new("email_verified", [true])])
///     .leeway(Duration::from_secs(30))
///     .build()?;
/// assert_eq!(config.scopes().len(), 3);
/// # Ok::<(), oidc_auth::ConfigError>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct OidcConfigBuilder {
    client_id: Option<String>,
    client_secret: Option<Secret>,
    discovery_url: Option<MaskedUrl>,
    scopes: String,
    audience: Option<String>,
    proxy: Option<MaskedUrl>,
    claims: Vec<ClaimConstraint>,
    offline_access: bool,
    timeout: Duration,
    connect_timeout: Duration,
    jwks_uri: Option<MaskedUrl>,
    issuer: Option<String>,
    broker_mode: bool,
    broker_store_url: Option<MaskedUrl>,
    broker_audience: Option<String>,
    trusted_issuers: Vec<MaskedUrl>,
    broker_jwks_path: String,
    leeway: Duration,
    algorithms: Vec<Algorithm>,
    token_cache_capacity: usize,
    token_cache_ttl: Duration,
    discovery_ttl: Duration,
    jwks_ttl: Duration,
    jwks_refetch_cooldown: Duration,
    jwks_stale_limit: Duration,
    jwks_max_bytes: usize,
    jwks_max_keys: usize,
    max_token_bytes: usize,
    login_redirect_uris: Vec<String>,
    logout_redirect_uris: Vec<String>,
    access_token_lifetime: Duration,
    refresh_token_lifetime: Duration,
    broker_signing_algorithm: Algorithm,
    key_rotation_period: Duration,
    encryption_key: Option<Secret>,
    previous_encryption_keys: Vec<Secret>,
    previous_key_from_client_secret: bool,
    device_session_lifetime: Duration,
    exchange_clients: Vec<(String, Secret)>,
    exchange_audiences: Vec<String>,
    state_key: Option<Secret>,
    realm: Option<String>,
    string_claims_as_lists: bool,
    accept_id_tokens: bool,
    allow_insecure_http: bool,
}

impl Default for OidcConfigBuilder {
    fn default() -> Self {
        Self {
            client_id: None,
            client_secret: None,
            discovery_url: None,
            scopes: "openid profile email".to_owned(),
            audience: None,
            proxy: None,
            claims: Vec::new(),
            offline_access: false,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            jwks_uri: None,
            issuer: None,
            broker_mode: false,
            broker_store_url: None,
            broker_audience: None,
            trusted_issuers: Vec::new(),
            broker_jwks_path: "/auth/v2/.well-known/jwks.json".to_owned(),
            leeway: Duration::from_secs(60),
            algorithms: Algorithm::ALL.to_vec(),
            token_cache_capacity: 10_000,
            token_cache_ttl: Duration::from_secs(300),
            discovery_ttl: Duration::from_secs(3600),
            jwks_ttl: Duration::from_secs(600),
            jwks_refetch_cooldown: Duration::from_secs(15),
            jwks_stale_limit: Duration::from_secs(24 * 3600),
            jwks_max_bytes: 256 * 1024,
            jwks_max_keys: 64,
            max_token_bytes: 8 * 1024,
            login_redirect_uris: Vec::new(),
            logout_redirect_uris: Vec::new(),
            access_token_lifetime: Duration::from_secs(900),
            refresh_token_lifetime: Duration::from_secs(30 * 24 * 3600),
            broker_signing_algorithm: Algorithm::RS256,
            key_rotation_period: Duration::from_secs(30 * 24 * 3600),
            encryption_key: None,
            previous_encryption_keys: Vec::new(),
            previous_key_from_client_secret: false,
            device_session_lifetime: Duration::from_secs(90 * 24 * 3600),
            exchange_clients: Vec::new(),
            exchange_audiences: Vec::new(),
            state_key: None,
            realm: None,
            string_claims_as_lists: false,
            accept_id_tokens: false,
            allow_insecure_http: false,
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($arg:ident: $ty:ty) => $set:expr;)*) => {
        impl OidcConfigBuilder {
            $(
                $(#[$doc])*
                pub fn $name(mut self, $arg: $ty) -> Self {
                    #[allow(clippy::redundant_closure_call)]
                    ($set)(&mut self, $arg);
                    self
                }
            )*
        }
    };
}

setters! {
    /// The OAuth client id (required).
    client_id(value: impl Into<String>) => |b: &mut Self, v: _| b.client_id = Some(Into::<String>::into(v));
    /// The client secret of a confidential client, as issued: one with surrounding whitespace
    /// (a secret file read as it is) is refused by `build`.
    client_secret(value: impl Into<String>) => |b: &mut Self, v: _| b.client_secret = Some(Secret::new(v));
    /// The provider's discovery URL (required). It implies the expected issuer when it is the
    /// issuer followed by `/.well-known/openid-configuration` or
    /// `/.well-known/oauth-authorization-server`, or the issuer with RFC 8414's
    /// `/.well-known/oauth-authorization-server` inserted before its path (one trailing `/`
    /// tolerated). Any other URL (with a query string, for example) needs
    /// [`issuer`](Self::issuer): the issuer the discovery document names is never adopted.
    discovery_url(value: impl Into<String>) => |b: &mut Self, v: _| b.discovery_url = Some(MaskedUrl(Into::<String>::into(v)));
    /// Default login and device flow scopes, space separated, without commas (default
    /// `openid profile email`); `openid` is asked for whether listed or not. A `scope` parameter
    /// on `/login` replaces them for that login.
    scopes(value: impl Into<String>) => |b: &mut Self, v: _| b.scopes = Into::<String>::into(v);
    /// The audience every access token must carry. Without it `aud` is not checked and a warning
    /// is logged at start-up.
    audience(value: impl Into<String>) => |b: &mut Self, v: _| b.audience = Some(Into::<String>::into(v));
    /// The public base URL of the application, without a query: in broker mode the `iss` of
    /// the tokens it mints (else the broker audience). It may not be the provider's issuer.
    proxy(value: impl Into<String>) => |b: &mut Self, v: _| b.proxy = Some(MaskedUrl(Into::<String>::into(v)));
    /// Whether the device flow asks for `offline_access`, and login unless the `/login`
    /// request's `offline_access` parameter decides (default `false`).
    offline_access(value: bool) => |b: &mut Self, v| b.offline_access = v;
    /// Total timeout of a request to the provider (default 5 s, at most 300 s).
    timeout(value: Duration) => |b: &mut Self, v| b.timeout = v;
    /// Connect timeout of a request to the provider (default 2 s, not zero).
    connect_timeout(value: Duration) => |b: &mut Self, v| b.connect_timeout = v;
    /// JWKS URL, overriding the discovery document's `jwks_uri`.
    jwks_uri(value: impl Into<String>) => |b: &mut Self, v: _| b.jwks_uri = Some(MaskedUrl(Into::<String>::into(v)));
    /// Expected issuer, overriding the one derived from the discovery URL; required when the
    /// discovery URL implies none.
    issuer(value: impl Into<String>) => |b: &mut Self, v: _| b.issuer = Some(Into::<String>::into(v));
    /// Broker mode: the server mints its own tokens. Without it, `build` refuses the options
    /// only the broker reads (`proxy`, the store URL, the encryption keys, the exchange clients
    /// and audiences; the signing algorithm, key rotation period, access token and device
    /// session lifetimes when set away from their defaults) instead of ignoring them.
    broker_mode(value: bool) => |b: &mut Self, v| b.broker_mode = v;
    /// Store URL for broker mode (`sqlite://`, `postgres://`, `mysql://`, ...).
    broker_store_url(value: impl Into<String>) => |b: &mut Self, v: _| b.broker_store_url = Some(MaskedUrl(Into::<String>::into(v)));
    /// Audience of broker-minted tokens, and of trusted peers' tokens (required in broker mode;
    /// with [`trusted_issuers`](Self::trusted_issuers) it or [`audience`](Self::audience) is;
    /// refused with neither, which would leave it unread).
    broker_audience(value: impl Into<String>) => |b: &mut Self, v: _| b.broker_audience = Some(Into::<String>::into(v));
    /// Path of a peer's broker JWKS, relative to its issuer URL (refused when set away from its
    /// default with neither broker mode nor [`trusted_issuers`](Self::trusted_issuers), which
    /// would leave it unread).
    broker_jwks_path(value: impl Into<String>) => |b: &mut Self, v: _| b.broker_jwks_path = Into::<String>::into(v);
    /// Clock leeway for `exp`, `nbf` and `iat` (default 60 s, at most 300 s).
    leeway(value: Duration) => |b: &mut Self, v| b.leeway = v;
    /// Capacity of the validated-token cache (default 10 000; 0 disables it): the number of
    /// ordinary tokens it keeps. A large token counts one per 8 KiB of memory it takes, so the
    /// cache holds about capacity x 8 KiB at most, whatever `max_token_bytes` allows.
    token_cache_capacity(value: usize) => |b: &mut Self, v| b.token_cache_capacity = v;
    /// Longest time a validated token is served from the cache (default 300 s; under 1 s, as
    /// 0, disables the cache).
    token_cache_ttl(value: Duration) => |b: &mut Self, v| b.token_cache_ttl = v;
    /// Time before the discovery document is fetched again (default 1 h, at least 1 s).
    discovery_ttl(value: Duration) => |b: &mut Self, v| b.discovery_ttl = v;
    /// Time before the JWKS is refreshed in the background (default 10 min, at least 1 s and at
    /// most [`jwks_stale_limit`](Self::jwks_stale_limit)).
    jwks_ttl(value: Duration) => |b: &mut Self, v| b.jwks_ttl = v;
    /// Minimum time between JWKS fetches caused by unknown key ids (default 15 s, at least
    /// 1 s).
    jwks_refetch_cooldown(value: Duration) => |b: &mut Self, v| b.jwks_refetch_cooldown = v;
    /// How long the last good JWKS is used while the provider is unreachable (default 24 h, at
    /// least 1 s and at least [`jwks_ttl`](Self::jwks_ttl), so keys never go stale before their
    /// scheduled refresh).
    jwks_stale_limit(value: Duration) => |b: &mut Self, v| b.jwks_stale_limit = v;
    /// Largest accepted JWKS or discovery body (default 256 KiB, from 4 KiB to 8 MiB).
    jwks_max_bytes(value: usize) => |b: &mut Self, v| b.jwks_max_bytes = v;
    /// Most usable signing keys loaded from one JWKS (default 64, from 1 to 1024; in broker mode
    /// it, and `jwks_max_bytes` / 512, must allow at least 3); entries that are not usable
    /// (encryption keys, other algorithms, malformed ones) do not count.
    jwks_max_keys(value: usize) => |b: &mut Self, v| b.jwks_max_keys = v;
    /// Largest accepted bearer token (default 8 KiB, at least 1 KiB, at most 1 MiB).
    max_token_bytes(value: usize) => |b: &mut Self, v| b.max_token_bytes = v;
    /// Lifetime of broker access tokens (default 15 min).
    access_token_lifetime(value: Duration) => |b: &mut Self, v| b.access_token_lifetime = v;
    /// Lifetime of broker refresh tokens (default 30 days, at least 1 s).
    refresh_token_lifetime(value: Duration) => |b: &mut Self, v| b.refresh_token_lifetime = v;
    /// Signing algorithm of broker tokens (default RS256): RS256, ES256 or EdDSA, and in
    /// broker mode one of the accepted [`algorithms`](Self::algorithms).
    broker_signing_algorithm(value: Algorithm) => |b: &mut Self, v| b.broker_signing_algorithm = v;
    /// Broker key rotation period (default 30 days; at least 60 s, at most 100 years, and in
    /// broker mode long enough that the keys published at once fit what peers read:
    /// [`jwks_max_keys`](Self::jwks_max_keys), and `jwks_max_bytes` / 512).
    key_rotation_period(value: Duration) => |b: &mut Self, v| b.key_rotation_period = v;
    /// Key encrypting stored secrets: 32 bytes, base64 (standard or URL-safe).
    encryption_key(value: impl Into<String>) => |b: &mut Self, v: _| b.encryption_key = Some(Secret::new(v));
    /// Absolute lifetime of a broker session started by the device flow (default 90 days, at
    /// least 1 s).
    device_session_lifetime(value: Duration) => |b: &mut Self, v| b.device_session_lifetime = v;
    /// Key sealing login state: 32 bytes, base64; the same on every instance.
    state_key(value: impl Into<String>) => |b: &mut Self, v: _| b.state_key = Some(Secret::new(v));
    /// `realm` for `WWW-Authenticate` challenges.
    realm(value: impl Into<String>) => |b: &mut Self, v: _| b.realm = Some(Into::<String>::into(v));
    /// Let a string claim satisfy a constraint as if it were a one-element list (default off:
    /// `groups: "admins"` does not satisfy `groups = "admins"` unless this is on).
    string_claims_as_lists(value: bool) => |b: &mut Self, v| b.string_claims_as_lists = v;
    /// Accept the provider's ID tokens as bearer tokens (default off). A token with `at_hash`,
    /// `c_hash`, a `typ` claim of `ID` or a `token_use` of `id` is an ID token, refused on the
    /// routes and as a token exchange's subject: where the audience is the client id, its `aud`
    /// matches, and an ID token is not meant for an API (RFC 8725 section 3.11). Turn this on
    /// only for a provider whose access tokens are not JWTs, such as Google, whose ID tokens are
    /// then what clients send.
    accept_id_tokens(value: bool) => |b: &mut Self, v| b.accept_id_tokens = v;
    /// Allow `http://` for the discovery URL, `jwks_uri`, trusted issuers, `proxy` and login
    /// redirect URIs on hosts other than `localhost`, `127.0.0.0/8` and `[::1]` (default off:
    /// the provider's keys, fetched in the clear, could be replaced on the way, and tokens
    /// forged with them; a login's code could be read and redeemed). Only for a network no one
    /// else can reach, such as a container network.
    allow_insecure_http(value: bool) => |b: &mut Self, v| b.allow_insecure_http = v;
}

impl OidcConfigBuilder {
    /// Claim constraints applied to every protected route.
    pub fn claims(mut self, value: impl IntoIterator<Item = ClaimConstraint>) -> Self {
        self.claims = value.into_iter().collect();
        self
    }

    /// Issuers of other instances whose minted tokens are accepted: their public base URLs
    /// ([`proxy`](Self::proxy)). Each is kept in the form the URL parser writes, without a
    /// trailing `/` (`https://Peer.example:443/` becomes `https://peer.example`), the form of
    /// the `iss` a peer mints. Not the provider's issuer, and without a query. Their tokens must
    /// carry [`broker_audience`](Self::broker_audience), else [`audience`](Self::audience).
    pub fn trusted_issuers(mut self, value: impl IntoIterator<Item = String>) -> Self {
        self.trusted_issuers = value.into_iter().map(MaskedUrl).collect();
        self
    }

    /// Encryption keys used before [`encryption_key`](Self::encryption_key), each 32 bytes in
    /// base64: what they sealed (signing keys, sessions' provider tokens, peers' key sets) still
    /// opens, refresh tokens they tagged are still taken, and nothing new is sealed with them.
    /// To change the key, first list the new key here on every instance, then make it the key
    /// and list the old one here until the signing keys it sealed have left the JWKS
    /// ([`key_rotation_period`](Self::key_rotation_period) plus the access token lifetime and
    /// the leeway) and every session started before the change has ended (the refresh
    /// lifetimes: their refresh tokens stay under the old key). Without it, those signing keys
    /// neither sign (503) nor verify (401), and those sessions' refresh tokens are refused.
    ///
    /// ```
    /// use oidc_auth::OidcConfig;
    ///
    /// let config = OidcConfig::builder()
    ///     .discovery_url("https://idp.example/.well-known/openid-configuration")
    ///     .client_id("api")
    ///     .broker_mode(true)
    ///     .broker_audience("services")
    ///     .encryption_key("bmV3LWtleS1uZXcta2V5LW5ldy1rZXktbmV3LWtleSE=")
    ///     .previous_encryption_keys(["b2xkLWtleS1vbGQta2V5LW9sZC1rZXktb2xkLWtleSE=".to_owned()])
    ///     .build()?;
    /// assert_eq!(config.previous_encryption_keys().len(), 1);
    /// # Ok::<(), oidc_auth::ConfigError>(())
    /// ```
    pub fn previous_encryption_keys(mut self, value: impl IntoIterator<Item = String>) -> Self {
        self.previous_encryption_keys = value.into_iter().map(Secret::new).collect();
        self
    }

    /// Let the key derived from the client secret, which sealed and tagged a broker's sessions
    /// while it ran without an [`encryption_key`](Self::encryption_key), still open them and
    /// take their refresh tokens (default off; broker mode with an encryption key and a client
    /// secret only). Set it with a first encryption key to keep the sessions started before; each
    /// moves to the encryption key at its next refresh. Unset it once the refresh lifetimes have
    /// passed: while it is set, anyone who knows the client secret (the provider's
    /// administrators, every deployment sharing the client) can make refresh tokens naming a
    /// session, which end it, and with write access to the database can make a session that
    /// mints.
    ///
    /// ```
    /// use oidc_auth::OidcConfig;
    ///
    /// let config = OidcConfig::builder()
    ///     .discovery_url("https://idp.example/.well-known/openid-configuration")
    ///     .client_id("api")
    ///     .client_secret("the-client-secret")
    ///     .broker_mode(true)
    ///     .broker_audience("services")
    ///     .encryption_key("bmV3LWtleS1uZXcta2V5LW5ldy1rZXktbmV3LWtleSE=")
    ///     .previous_key_from_client_secret(true)
    ///     .build()?;
    /// assert!(config.previous_key_from_client_secret());
    /// # Ok::<(), oidc_auth::ConfigError>(())
    /// ```
    pub fn previous_key_from_client_secret(mut self, value: bool) -> Self {
        self.previous_key_from_client_secret = value;
        self
    }

    /// A client allowed to use token exchange (RFC 8693) in broker mode, authenticating with
    /// HTTP Basic or `client_id` / `client_secret` form fields. The application's own client
    /// (`client_id` with its `client_secret`) is always allowed when it has a secret.
    pub fn exchange_client(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.exchange_clients
            .push((id.into(), Secret::new(secret.into())));
        self
    }

    /// Audiences a token exchange may ask for, besides the broker audience (the default
    /// when the request names none).
    pub fn exchange_audiences(mut self, value: impl IntoIterator<Item = String>) -> Self {
        self.exchange_audiences = value.into_iter().collect();
        self
    }

    /// Accepted signature algorithms (default: all asymmetric ones).
    pub fn algorithms(mut self, value: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = value.into_iter().collect();
        self
    }

    /// Redirect URIs allowed at login, besides loopback URIs on any port; without user info or
    /// a fragment (a redirect URI with either is refused at login, so it could never match), in
    /// canonical form, and `https` unless the host is a loopback one or
    /// [`allow_insecure_http`](Self::allow_insecure_http) is on (the login's code and the handle
    /// that redeems it travel in that redirect).
    pub fn login_redirect_uris(mut self, value: impl IntoIterator<Item = String>) -> Self {
        self.login_redirect_uris = value.into_iter().collect();
        self
    }

    /// Redirect URIs allowed after logout (exact match), without user info or a fragment.
    pub fn logout_redirect_uris(mut self, value: impl IntoIterator<Item = String>) -> Self {
        self.logout_redirect_uris = value.into_iter().collect();
        self
    }
}

impl OidcConfigBuilder {
    /// Validates every option and builds the configuration.
    pub fn build(self) -> Result<OidcConfig, ConfigError> {
        let client_id = self
            .client_id
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| ConfigError::new("client_id", "is required"))?;
        // Compared as they are with what tokens carry: one with a stray space would never match.
        for (option, value) in [
            ("client_id", Some(&client_id)),
            ("audience", self.audience.as_ref()),
            ("issuer", self.issuer.as_ref()),
            ("broker_audience", self.broker_audience.as_ref()),
        ] {
            if value.is_some_and(|v| !v.trim().is_empty() && v.trim() != v) {
                return Err(ConfigError::new(
                    option,
                    "has leading or trailing whitespace, so it would never match a token's",
                ));
            }
        }
        // One audience each: `api,account` would be compared as one string and match no token.
        for (option, value) in [
            ("audience", self.audience.as_ref()),
            ("broker_audience", self.broker_audience.as_ref()),
        ] {
            if value.is_some_and(|v| v.contains(',')) {
                return Err(ConfigError::new(
                    option,
                    "holds a comma: it is one audience, which a token's `aud` (a string or a \
                     list) must contain; give the one this server is",
                ));
            }
        }
        // Compared exactly with what a client sends, as the identifiers above.
        if self
            .exchange_audiences
            .iter()
            .any(|a| a.trim().is_empty() || a.trim() != a)
        {
            return Err(ConfigError::new(
                "exchange_audiences",
                "an entry is empty or has leading or trailing whitespace, so it would never \
                 match a requested audience",
            ));
        }
        if self
            .exchange_clients
            .iter()
            .any(|(id, _)| !id.trim().is_empty() && id.trim() != id)
        {
            return Err(ConfigError::new(
                "exchange_client",
                "a client id has leading or trailing whitespace, so it would never match the \
                 one a client sends",
            ));
        }
        let discovery_url = self
            .discovery_url
            .ok_or_else(|| ConfigError::new("discovery_url", "is required"))?;
        let insecure = self.allow_insecure_http;
        let discovery_url = parse_endpoint_url("discovery_url", &discovery_url.0, insecure)?;
        let issuer = nonempty("issuer", self.issuer)?.map(Issuer::new);
        // The issuer tokens are checked against must come from the configuration: taking it from
        // the discovery document would accept whatever issuer the document's host names.
        let expected_issuer = match (&issuer, implied_issuer(&discovery_url)) {
            (Some(issuer), _) => issuer.clone(),
            (None, Some(implied)) => implied,
            (None, None) => {
                return Err(ConfigError::new(
                    "issuer",
                    "the discovery URL does not imply the issuer (it is not the issuer followed \
                     by `/.well-known/openid-configuration` or \
                     `/.well-known/oauth-authorization-server`, or it has a query); set the \
                     issuer the provider's tokens name (`issuer`, OIDC_ISSUER)",
                ));
            }
        };
        let mut scopes = Vec::new();
        for s in self.scopes.split(' ').filter(|s| !s.is_empty()) {
            // RFC 6749 allows a comma in a scope, but `openid,profile` is the list written the
            // way every other list option is, sent to the provider as one unknown scope.
            if s.contains(',') {
                return Err(ConfigError::new(
                    "scopes",
                    format!(
                        "`{s}` holds a comma: scopes are separated by spaces (`{}`)",
                        s.split(',')
                            .filter(|w| !w.is_empty())
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                ));
            }
            if !Scope::is_valid_token(s) {
                return Err(ConfigError::new(
                    "scopes",
                    "contains a character not allowed in a scope",
                ));
            }
            scopes.push(Scope::new(s));
        }
        for c in &self.claims {
            if c.path().is_empty() || c.path().split('.').any(str::is_empty) {
                return Err(ConfigError::new(
                    "claims",
                    "a claim path is empty or has an empty segment",
                ));
            }
            if c.values().is_empty() {
                return Err(ConfigError::new(
                    "claims",
                    format!("`{}` has no accepted value", c.path()),
                ));
            }
            // Claims are compared by JSON type: a null would be satisfied by a null claim, a
            // float only by that exact float, and a list or an object by nothing.
            if let Some(kind) = c.values().iter().find_map(unaccepted_claim_value) {
                return Err(ConfigError::new(
                    "claims",
                    format!(
                        "`{}` accepts {kind}; accepted values are strings, booleans or integers",
                        c.path()
                    ),
                ));
            }
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::new(
                "algorithms",
                "at least one algorithm is required",
            ));
        }
        if self.leeway > Duration::from_secs(300) {
            return Err(ConfigError::new("leeway", "must be at most 300 seconds"));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new("timeout", "must be greater than zero"));
        }
        // Every request that needs the provider may wait this long: a bound of minutes is none.
        if self.timeout > MAX_TIMEOUT {
            return Err(ConfigError::new(
                "timeout",
                format!("must be at most {} seconds", MAX_TIMEOUT.as_secs()),
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::new(
                "connect_timeout",
                "must be greater than zero",
            ));
        }
        if !(MIN_JWKS_MAX_BYTES..=MAX_JWKS_MAX_BYTES).contains(&self.jwks_max_bytes) {
            return Err(ConfigError::new(
                "jwks_max_bytes",
                format!(
                    "must be from {MIN_JWKS_MAX_BYTES} (4 KiB: a smaller limit refuses real \
                     discovery documents) to {MAX_JWKS_MAX_BYTES} (8 MiB)"
                ),
            ));
        }
        if !(1..=MAX_JWKS_MAX_KEYS).contains(&self.jwks_max_keys) {
            return Err(ConfigError::new(
                "jwks_max_keys",
                format!("must be from 1 to {MAX_JWKS_MAX_KEYS}"),
            ));
        }
        // A zero TTL refreshes the key set on every validation, a zero stale limit makes every
        // fetched key set unusable at once, a zero cooldown lets a flood of made-up key ids
        // fetch the key set back to back (SECURITY A8), and a zero discovery TTL fetches the
        // discovery document again for every login and every key fetch.
        for (option, value) in [
            ("discovery_ttl", self.discovery_ttl),
            ("jwks_ttl", self.jwks_ttl),
            ("jwks_stale_limit", self.jwks_stale_limit),
            ("jwks_refetch_cooldown", self.jwks_refetch_cooldown),
        ] {
            if value < Duration::from_secs(1) {
                return Err(ConfigError::new(option, "must be at least one second"));
            }
        }
        // Keys that go stale before their scheduled refresh leave every request between the two
        // without usable keys: each one fetches the key set itself, outside the refetch cooldown.
        if self.jwks_stale_limit < self.jwks_ttl {
            return Err(ConfigError::new(
                "jwks_stale_limit",
                format!(
                    "must be at least `jwks_ttl` ({:?}), else keys become unusable before their \
                     refresh: raise `jwks_stale_limit` ({:?}) or lower `jwks_ttl`",
                    self.jwks_ttl, self.jwks_stale_limit
                ),
            ));
        }
        if self.max_token_bytes < MIN_TOKEN_BYTES {
            return Err(ConfigError::new(
                "max_token_bytes",
                format!(
                    "must be at least {MIN_TOKEN_BYTES}: an RS256 signature alone takes 342 bytes"
                ),
            ));
        }
        // A limit is a bound on the work one request can cause; one near `usize::MAX` is none.
        if self.max_token_bytes > MAX_TOKEN_BYTES_LIMIT {
            return Err(ConfigError::new(
                "max_token_bytes",
                format!("must be at most {MAX_TOKEN_BYTES_LIMIT} (1 MiB)"),
            ));
        }
        // The key itself is never shown: an error message gets logged.
        let previous = self.previous_encryption_keys.iter().enumerate();
        for (option, which, key) in [
            ("encryption_key", None, self.encryption_key.as_ref()),
            ("state_key", None, self.state_key.as_ref()),
        ]
        .into_iter()
        .chain(previous.map(|(i, key)| ("previous_encryption_keys", Some(i + 1), Some(key))))
        {
            if let Some(key) = key
                && decode_key(key.expose()).is_none()
            {
                let which = which.map_or_else(String::new, |n| format!("entry {n} "));
                return Err(ConfigError::new(
                    option,
                    format!(
                        "{which}must be 32 bytes encoded in base64 (`openssl rand -base64 32`; \
                         hex is not read)"
                    ),
                ));
            }
        }
        let no_broker_audience = self
            .broker_audience
            .as_deref()
            .is_none_or(|a| a.trim().is_empty());
        if self.broker_mode && no_broker_audience {
            return Err(ConfigError::new(
                "broker_audience",
                "is required in broker mode (the audience of the tokens the server mints)",
            ));
        }
        // Read only by the broker: set without it, each would be silently ignored, and a
        // deployment that forgot broker mode would hand the provider's tokens to clients.
        if !self.broker_mode {
            let defaults = OidcConfigBuilder::default();
            let broker_only = [
                ("proxy", self.proxy.is_some()),
                ("broker_store_url", self.broker_store_url.is_some()),
                ("encryption_key", self.encryption_key.is_some()),
                (
                    "previous_encryption_keys",
                    !self.previous_encryption_keys.is_empty(),
                ),
                (
                    "previous_key_from_client_secret",
                    self.previous_key_from_client_secret,
                ),
                ("exchange_client", !self.exchange_clients.is_empty()),
                ("exchange_audiences", !self.exchange_audiences.is_empty()),
                // Options with a default: refused when set to anything else.
                (
                    "broker_signing_algorithm",
                    self.broker_signing_algorithm != defaults.broker_signing_algorithm,
                ),
                (
                    "key_rotation_period",
                    self.key_rotation_period != defaults.key_rotation_period,
                ),
                (
                    "access_token_lifetime",
                    self.access_token_lifetime != defaults.access_token_lifetime,
                ),
                (
                    "device_session_lifetime",
                    self.device_session_lifetime != defaults.device_session_lifetime,
                ),
            ];
            if let Some((option, _)) = broker_only.into_iter().find(|(_, set)| *set) {
                return Err(ConfigError::new(
                    option,
                    "is used only in broker mode, which is off: turn it on (`broker_mode`, \
                     OIDC_BROKER_MODE=true) or remove this setting",
                ));
            }
            // Outside broker mode these describe trusted peers' tokens and keys only. (A broker
            // trusting no one may carry the path all its instances share: it is harmless there.)
            let for_peers = [
                ("broker_audience", self.broker_audience.is_some()),
                (
                    "broker_jwks_path",
                    self.broker_jwks_path != defaults.broker_jwks_path,
                ),
            ];
            if self.trusted_issuers.is_empty()
                && let Some((option, _)) = for_peers.into_iter().find(|(_, set)| *set)
            {
                return Err(ConfigError::new(
                    option,
                    "is used only in broker mode or with trusted_issuers, and neither is set: \
                     turn broker mode on (`broker_mode`, OIDC_BROKER_MODE=true), name the peers \
                     (`trusted_issuers`, OIDC_TRUSTED_ISSUERS) or remove this setting",
                ));
            }
        }
        if self.previous_key_from_client_secret {
            if self.encryption_key.is_none() {
                return Err(ConfigError::new(
                    "previous_key_from_client_secret",
                    "needs an encryption_key: without one, the key derived from the client \
                     secret is the key itself",
                ));
            }
            if self.client_secret.is_none() {
                return Err(ConfigError::new(
                    "previous_key_from_client_secret",
                    "needs a client_secret, the key is derived from it",
                ));
            }
        }
        if let Some(url) = &self.broker_store_url {
            crate::store::check_url(&url.0).map_err(|e| {
                let (crate::store::StoreError::Rejected(reason)
                | crate::store::StoreError::Unavailable(reason)
                | crate::store::StoreError::Corrupt(reason)) = e;
                ConfigError::new("broker_store_url", reason)
            })?;
        }
        if !matches!(
            self.broker_signing_algorithm,
            Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA
        ) {
            return Err(ConfigError::new(
                "broker_signing_algorithm",
                "must be RS256, ES256 or EdDSA",
            ));
        }
        if self.key_rotation_period < Duration::from_secs(60) {
            return Err(ConfigError::new(
                "key_rotation_period",
                "must be at least 60 seconds",
            ));
        }
        let century = Duration::from_secs(100 * 365 * 24 * 3600);
        for (option, value) in [
            ("access_token_lifetime", self.access_token_lifetime),
            ("refresh_token_lifetime", self.refresh_token_lifetime),
            ("device_session_lifetime", self.device_session_lifetime),
            ("key_rotation_period", self.key_rotation_period),
        ] {
            if value > century {
                return Err(ConfigError::new(option, "must be at most 100 years"));
            }
        }
        // A session that ends as it starts, or a refresh token dead on arrival, can never work.
        for (option, value) in [
            ("access_token_lifetime", self.access_token_lifetime),
            ("refresh_token_lifetime", self.refresh_token_lifetime),
            ("device_session_lifetime", self.device_session_lifetime),
        ] {
            if value < Duration::from_secs(1) {
                return Err(ConfigError::new(option, "must be at least one second"));
            }
        }
        // A key stays published the longest token lifetime (plus leeway) past its retirement,
        // and its successor comes before it retires: a period much shorter than that lifetime
        // publishes more keys at once than a peer reads. Peers are taken to read as many keys
        // as this instance does: `jwks_max_keys`, and as many as fit `jwks_max_bytes` (a
        // published key takes about 500 bytes).
        let readable =
            u64::try_from(self.jwks_max_keys.min(self.jwks_max_bytes / 512)).unwrap_or(u64::MAX);
        if self.broker_mode {
            if readable < 3 {
                return Err(ConfigError::new(
                    "jwks_max_keys",
                    "must let at least 3 keys be read in broker mode: a peer reads the current \
                     key, its successor and the one before",
                ));
            }
            let overlap = self
                .access_token_lifetime
                .as_secs()
                .saturating_add(self.leeway.as_secs());
            let published =
                2u64.saturating_add(overlap.div_ceil(self.key_rotation_period.as_secs().max(1)));
            if published > readable {
                return Err(ConfigError::new(
                    "key_rotation_period",
                    format!(
                        "must be at least {} seconds with an access token lifetime of {} s: \
                         a shorter one publishes {published} keys at once, more than peers \
                         read ({readable}, by jwks_max_keys and jwks_max_bytes)",
                        overlap.div_ceil(readable - 2),
                        self.access_token_lifetime.as_secs()
                    ),
                ));
            }
        }
        // The broker's own tokens are validated against `algorithms` like any other: one it
        // signs with and does not accept would refuse every token it mints.
        if self.broker_mode && !self.algorithms.contains(&self.broker_signing_algorithm) {
            return Err(ConfigError::new(
                "broker_signing_algorithm",
                "must be one of the accepted `algorithms`, or every token the broker mints is refused",
            ));
        }
        if !self.broker_jwks_path.starts_with('/') {
            return Err(ConfigError::new("broker_jwks_path", "must start with `/`"));
        }
        // A peer's `iss` is its public base URL as the URL parser writes it (lower-case scheme
        // and host, no default port, no trailing `/`): a trusted issuer written any other way
        // would never match it, so each is written the same way.
        let provider_issuer = expected_issuer.as_str().trim_end_matches('/');
        let mut trusted_issuers = Vec::with_capacity(self.trusted_issuers.len());
        for issuer in &self.trusted_issuers {
            let url = parse_base_url("trusted_issuers", &issuer.0, insecure)?;
            let issuer = broker_issuer(&url);
            if issuer == provider_issuer {
                return Err(ConfigError::new(
                    "trusted_issuers",
                    format!(
                        "`{issuer}` is the identity provider's issuer, whose tokens are \
                         accepted already; list only other instances"
                    ),
                ));
            }
            trusted_issuers.push(Issuer::new(issuer));
        }
        let no_audience = self.audience.as_deref().is_none_or(|a| a.trim().is_empty());
        if !trusted_issuers.is_empty() && no_broker_audience && no_audience {
            return Err(ConfigError::new(
                "broker_audience",
                "is required with trusted_issuers (or `audience`): it is the audience the \
                 peers' tokens carry, without which they would be taken for any audience",
            ));
        }
        let proxy = self
            .proxy
            .map(|p| parse_base_url("proxy", &p.0, insecure))
            .transpose()?;
        // The broker's tokens are told from the provider's by their issuer.
        if self.broker_mode {
            let own = match &proxy {
                Some(proxy) => broker_issuer(proxy),
                None => self.broker_audience.clone().unwrap_or_default(),
            };
            if own.trim_end_matches('/') == provider_issuer {
                return Err(ConfigError::new(
                    if proxy.is_some() {
                        "proxy"
                    } else {
                        "broker_audience"
                    },
                    "names the identity provider's issuer, which the broker's own tokens \
                     would then carry: give the broker's public URL (`proxy`)",
                ));
            }
        }
        if self
            .exchange_clients
            .iter()
            .any(|(id, secret)| id.trim().is_empty() || secret.expose().trim().is_empty())
        {
            return Err(ConfigError::new(
                "exchange_client",
                "an exchange client needs an id and a secret",
            ));
        }
        // An empty secret would authenticate anyone who sends an empty one, and would seed the
        // at-rest key with nothing; one of only whitespace is as easy to guess.
        if self
            .client_secret
            .as_ref()
            .is_some_and(|secret| secret.expose().trim().is_empty())
        {
            return Err(ConfigError::new(
                "client_secret",
                "is empty; leave it unset for a public client",
            ));
        }
        // A secret read from a file keeps the file's newline: every code exchange would fail
        // with `invalid_client`, and the at-rest key derived from the client secret would change
        // once the secret is corrected. Refused as the compared options are, without the value.
        let padded = |value: &str| value.trim() != value;
        if self
            .client_secret
            .as_ref()
            .is_some_and(|secret| padded(secret.expose()))
        {
            return Err(ConfigError::new(
                "client_secret",
                "has leading or trailing whitespace (a secret file's newline?); remove it",
            ));
        }
        if self
            .exchange_clients
            .iter()
            .any(|(id, secret)| padded(id) || padded(secret.expose()))
        {
            return Err(ConfigError::new(
                "exchange_client",
                "an id or secret has leading or trailing whitespace, so a client sending it as \
                 issued would never match; remove it",
            ));
        }
        if self
            .realm
            .as_deref()
            .is_some_and(|realm| !crate::error::is_quote_safe(realm))
        {
            return Err(ConfigError::new(
                "realm",
                "must be printable ASCII without quotes or backslashes: it is sent in a header",
            ));
        }
        let http = ProviderClient::new(self.connect_timeout, self.timeout)?;
        Ok(OidcConfig {
            client_id,
            client_secret: self.client_secret,
            discovery_url,
            scopes,
            audience: nonempty("audience", self.audience)?.map(Audience::new),
            proxy,
            claims: self.claims,
            offline_access: self.offline_access,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            jwks_uri: self
                .jwks_uri
                .map(|u| parse_endpoint_url("jwks_uri", &u.0, insecure))
                .transpose()?,
            issuer,
            expected_issuer,
            broker_mode: self.broker_mode,
            broker_store_url: self.broker_store_url,
            broker_audience: nonempty("broker_audience", self.broker_audience)?.map(Audience::new),
            trusted_issuers,
            broker_jwks_path: self.broker_jwks_path,
            leeway: self.leeway,
            algorithms: self.algorithms,
            token_cache_capacity: self.token_cache_capacity,
            token_cache_ttl: self.token_cache_ttl,
            discovery_ttl: self.discovery_ttl,
            jwks_ttl: self.jwks_ttl,
            jwks_refetch_cooldown: self.jwks_refetch_cooldown,
            jwks_stale_limit: self.jwks_stale_limit,
            jwks_max_bytes: self.jwks_max_bytes,
            jwks_max_keys: self.jwks_max_keys,
            max_token_bytes: self.max_token_bytes,
            login_redirect_uris: login_redirect_uris(
                &self.login_redirect_uris,
                self.allow_insecure_http,
            )?,
            logout_redirect_uris: parse_redirect_uris(
                "logout_redirect_uris",
                &self.logout_redirect_uris,
            )?,
            access_token_lifetime: self.access_token_lifetime,
            refresh_token_lifetime: self.refresh_token_lifetime,
            broker_signing_algorithm: self.broker_signing_algorithm,
            key_rotation_period: self.key_rotation_period,
            encryption_key: self.encryption_key,
            previous_encryption_keys: self.previous_encryption_keys,
            previous_key_from_client_secret: self.previous_key_from_client_secret,
            device_session_lifetime: self.device_session_lifetime,
            exchange_clients: self.exchange_clients,
            exchange_audiences: self.exchange_audiences,
            state_key: self.state_key,
            realm: self.realm,
            string_claims_as_lists: self.string_claims_as_lists,
            accept_id_tokens: self.accept_id_tokens,
            allow_insecure_http: insecure,
            http,
        })
    }
}

/// The `iss` of the tokens a broker mints when its public base URL ([`OidcConfig::proxy`]) is
/// `base`: the URL as the parser writes it, without a trailing `/`. Trusted issuers are written
/// the same way, so that a peer listed as `https://Peer.example:443/` matches what it mints.
pub(crate) fn broker_issuer(base: &Url) -> String {
    base.as_str().trim_end_matches('/').to_owned()
}

fn parse_http_url(option: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value.trim())
        .map_err(|e| ConfigError::new(option, format!("is not a valid URL ({e})")))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(ConfigError::new(option, "must be an http or https URL"));
    }
    if url.host_str().is_none() {
        return Err(ConfigError::new(option, "has no host"));
    }
    Ok(url)
}

/// Whether `url` is plain `http` on a host that is not loopback (`localhost`, `127.0.0.0/8`,
/// `[::1]`): what is sent or fetched over it could be read or replaced on the way.
pub(crate) fn is_insecure_http(url: &Url) -> bool {
    let loopback = match url.host() {
        Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    url.scheme() == "http" && !loopback
}

/// A URL this server fetches from or publishes as a token issuer: the provider's discovery
/// document and keys, a trusted peer, the broker's own public URL. No user info (it would be
/// sent along and shown wherever the URL is), no fragment (never sent, so a mistake), and
/// `https` unless the host is a loopback one or `allow_insecure_http` is on: keys fetched in the
/// clear could be replaced on the way.
fn parse_endpoint_url(
    option: &'static str,
    value: &str,
    allow_insecure_http: bool,
) -> Result<Url, ConfigError> {
    let url = parse_http_url(option, value)?;
    if !url.username().is_empty() || url.password().is_some() {
        // Not shown: user info may hold a password.
        return Err(ConfigError::new(
            option,
            "has user info (`user:password@`); give credentials another way",
        ));
    }
    // Shown with password-like query parameters masked: an error gets logged.
    let shown = crate::store::without_password(url.to_string(), url.as_str());
    if url.fragment().is_some() {
        return Err(ConfigError::new(
            option,
            format!("`{shown}` has a fragment, which is never sent; leave it out"),
        ));
    }
    if is_insecure_http(&url) && !allow_insecure_http {
        return Err(ConfigError::new(
            option,
            format!(
                "`{shown}` is plain http on a host that is not loopback: keys or tokens could be \
                 read or replaced on the way; use https, or allow_insecure_http \
                 (OIDC_ALLOW_INSECURE_HTTP=true) for a network no one else can reach"
            ),
        ));
    }
    Ok(url)
}

/// A base URL (a peer's issuer, the broker's public URL) as [`parse_endpoint_url`] checks it,
/// and without a query: an issuer never has one, and a path is appended to it.
fn parse_base_url(
    option: &'static str,
    value: &str,
    allow_insecure_http: bool,
) -> Result<Url, ConfigError> {
    let url = parse_endpoint_url(option, value, allow_insecure_http)?;
    if url.query().is_some() {
        return Err(ConfigError::new(
            option,
            "has a query string; a base URL has none (paths are appended to it)",
        ));
    }
    Ok(url)
}

/// `value` of `option`, refused when it is set but blank.
fn nonempty(option: &'static str, value: Option<String>) -> Result<Option<String>, ConfigError> {
    match value {
        Some(v) if v.trim().is_empty() => Err(ConfigError::new(option, "is empty")),
        v => Ok(v),
    }
}

/// Parses an allow-list of redirect URIs. A URI sent at login or logout is refused unless it
/// is canonical, without user info or a fragment, so an entry with either could never match.
/// The listed login redirect URIs: as [`parse_redirect_uris`], and `https` unless the host is a
/// loopback one or `allow_insecure_http` is on. The login's code and, in the last part of
/// `state`, the handle that redeems it travel in that redirect: over plain http on a network,
/// anyone on the way could redeem them.
fn login_redirect_uris(
    values: &[String],
    allow_insecure_http: bool,
) -> Result<Vec<Url>, ConfigError> {
    let uris = parse_redirect_uris("login_redirect_uris", values)?;
    if !allow_insecure_http && let Some(uri) = uris.iter().find(|u| is_insecure_http(u)) {
        return Err(ConfigError::new(
            "login_redirect_uris",
            format!(
                "`{uri}` is plain http on a host that is not loopback: the login's code and the \
                 handle that redeems it would cross the network in the clear; use https \
                 (or, for a network no one else can reach, allow_insecure_http)"
            ),
        ));
    }
    Ok(uris)
}

fn parse_redirect_uris(option: &'static str, values: &[String]) -> Result<Vec<Url>, ConfigError> {
    values
        .iter()
        .map(|v| {
            let url = parse_http_url(option, v)?;
            if !url.username().is_empty() || url.password().is_some() {
                // Not shown: user info may hold a password.
                return Err(ConfigError::new(
                    option,
                    "an entry has user info; a redirect URI with user info is always refused, \
                     so it could never match",
                ));
            }
            if url.fragment().is_some() {
                return Err(ConfigError::new(
                    option,
                    format!(
                        "`{url}` has a fragment; a redirect URI with a fragment is always \
                         refused, so it could never match"
                    ),
                ));
            }
            // `*` is a valid URL character, so `https://*.example/cb` and `https://app/*` parse;
            // but entries are matched exactly, so such an entry matches only itself.
            if v.contains('*') {
                return Err(ConfigError::new(
                    option,
                    format!(
                        "`{}` has a `*`: redirect URIs are compared exactly, with no wildcards; \
                         list every URI in full",
                        v.trim()
                    ),
                ));
            }
            // Redirect URIs are compared exactly, and only one the login and logout checks take
            // as canonical is ever compared: an entry in another form (no path, a host in
            // capitals, a default port) would be refused when a client sends it as listed.
            let listed = v.trim();
            if crate::flow::redirect::canonical(listed).is_none() {
                let fix = if url.as_str() == listed {
                    "it is longer than a redirect URI may be (2048 bytes)".to_owned()
                } else {
                    format!("list it as `{url}`")
                };
                return Err(ConfigError::new(
                    option,
                    format!(
                        "`{listed}` could never match: redirect URIs are compared exactly, in \
                         the canonical form clients must send them in; {fix}"
                    ),
                ));
            }
            Ok(url)
        })
        .collect()
}

/// What a claim constraint's value is when it is not a string, a boolean or an integer.
fn unaccepted_claim_value(value: &serde_json::Value) -> Option<&'static str> {
    use serde_json::Value;
    match value {
        Value::String(_) | Value::Bool(_) => None,
        Value::Number(n) if n.is_i64() || n.is_u64() => None,
        Value::Number(_) => Some("a number that is not an integer"),
        Value::Null => Some("null"),
        Value::Array(_) => Some("a list"),
        Value::Object(_) => Some("an object"),
    }
}

/// Decodes a 32-byte key from standard or URL-safe base64.
pub(crate) fn decode_key(value: &str) -> Option<[u8; 32]> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let value = value.trim();
    [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(value).ok())
        .and_then(|bytes| bytes.try_into().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    const BASE: [(&str, &str); 2] = [
        (
            "OIDC_DISCOVERY_URL",
            "https://idp.example/.well-known/openid-configuration",
        ),
        ("OIDC_CLIENT_ID", "app"),
    ];

    /// SECURITY.md's reliability section and A8: the defaults a deployment gets without
    /// saying anything.
    #[test]
    fn the_defaults_are_the_documented_bounds() {
        let config = OidcConfig::from_lookup(lookup(&BASE)).expect("config");
        assert_eq!(config.connect_timeout(), Duration::from_secs(2));
        assert_eq!(config.timeout(), Duration::from_secs(5));
        let cooldown = config.jwks_refetch_cooldown();
        assert!(
            (Duration::from_secs(10)..=Duration::from_secs(30)).contains(&cooldown),
            "{cooldown:?}"
        );
        assert_eq!(config.jwks_stale_limit(), Duration::from_secs(24 * 3600));
        assert_eq!(config.leeway(), Duration::from_secs(60));
        assert_eq!(config.max_token_bytes(), 8 * 1024);
        assert_eq!(config.jwks_max_keys(), 64);
        assert_eq!(config.jwks_max_bytes(), 256 * 1024);
        assert_eq!(config.token_cache_capacity(), 10_000);
        assert!(!config.string_claims_as_lists());
    }

    fn from_env_with(extra: &[(&str, &str)]) -> Result<OidcConfig, ConfigError> {
        let mut vars = BASE.to_vec();
        vars.extend_from_slice(extra);
        OidcConfig::from_lookup(lookup(&vars))
    }

    fn builder() -> OidcConfigBuilder {
        OidcConfig::builder()
            .discovery_url("https://idp.example/.well-known/openid-configuration")
            .client_id("app")
    }

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    /// A setting only the broker reads, given without broker mode, is refused rather than
    /// ignored: a deployment that forgot `OIDC_BROKER_MODE` would otherwise hand the
    /// provider's tokens to its clients.
    #[test]
    fn broker_settings_without_broker_mode_are_refused() {
        let cases: [(OidcConfigBuilder, &str); 11] = [
            (builder().proxy("https://api.example"), "proxy"),
            (builder().broker_store_url("memory:"), "broker_store_url"),
            (builder().encryption_key(KEY), "encryption_key"),
            (
                builder().previous_encryption_keys([KEY.to_owned()]),
                "previous_encryption_keys",
            ),
            (
                builder().previous_key_from_client_secret(true),
                "previous_key_from_client_secret",
            ),
            (builder().exchange_client("svc", "pw"), "exchange_client"),
            (
                builder().exchange_audiences(["downstream".to_owned()]),
                "exchange_audiences",
            ),
            (
                builder().broker_signing_algorithm(Algorithm::ES256),
                "broker_signing_algorithm",
            ),
            (
                builder().key_rotation_period(Duration::from_secs(3600)),
                "key_rotation_period",
            ),
            (
                builder().access_token_lifetime(Duration::from_secs(300)),
                "access_token_lifetime",
            ),
            (
                builder().device_session_lifetime(Duration::from_secs(3600)),
                "device_session_lifetime",
            ),
        ];
        for (builder, option) in cases {
            let error = builder.build().expect_err(option);
            assert_eq!(error.option(), option);
            assert!(error.message().contains("broker mode"), "{error}");
        }
        for (name, value) in [
            ("OIDC_PROXY", "https://api.example"),
            ("OIDC_BROKER_STORE_URL", "sqlite:///var/lib/broker.sqlite3"),
            ("OIDC_BROKER_ENCRYPTION_KEY", KEY),
            ("OIDC_BROKER_PREVIOUS_ENCRYPTION_KEYS", KEY),
            ("OIDC_BROKER_EXCHANGE_CLIENTS", "svc:pw"),
            ("OIDC_BROKER_EXCHANGE_AUDIENCES", "downstream"),
            ("OIDC_BROKER_SIGNING_ALGORITHM", "ES256"),
        ] {
            let error = from_env_with(&[(name, value)]).expect_err(name);
            let text = error.to_string();
            assert!(text.contains("OIDC_BROKER_MODE=true"), "{text}");
            assert!(text.contains(name), "{text}");
            assert!(!text.contains(KEY), "{text}");
            // With broker mode on, the same setting is taken.
            from_env_with(&[
                (name, value),
                ("OIDC_BROKER_MODE", "true"),
                ("OIDC_BROKER_AUDIENCE", "services"),
            ])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    /// A list variable that is set must list something: `,` or `${OLD_KEY},` with the
    /// variable unset is the same slip as an empty value, and read as no list it would drop a
    /// previous encryption key or every allowed redirect without a word.
    #[test]
    fn a_list_variable_that_lists_nothing_is_refused() {
        for name in [
            "OIDC_LOGIN_REDIRECT_URIS",
            "OIDC_LOGOUT_REDIRECT_URIS",
            "OIDC_TRUSTED_ISSUERS",
            "OIDC_BROKER_PREVIOUS_ENCRYPTION_KEYS",
            "OIDC_BROKER_EXCHANGE_CLIENTS",
            "OIDC_BROKER_EXCHANGE_AUDIENCES",
        ] {
            for value in [",", " , ,"] {
                let error = from_env_with(&[
                    (name, value),
                    ("OIDC_BROKER_MODE", "true"),
                    ("OIDC_BROKER_AUDIENCE", "services"),
                ])
                .expect_err(name);
                assert_eq!(error.option(), option_set_by(name));
                assert!(error.message().contains(name), "{error}");
                assert!(error.message().contains("lists nothing"), "{error}");
            }
        }
    }

    /// Values that read as a list or a pattern, where the option takes one exact value, are
    /// refused at start instead of matching nothing at run time.
    #[test]
    fn lists_and_wildcards_where_one_exact_value_is_taken_are_refused() {
        let error = from_env_with(&[("OIDC_SCOPES", "openid,profile,email")]).expect_err("comma");
        assert_eq!(error.option(), "scopes");
        assert!(
            error.message().contains("`openid profile email`"),
            "{error}"
        );
        from_env_with(&[("OIDC_SCOPES", "openid profile email")]).expect("spaces");
        for (builder, option) in [
            (builder().audience("api,account"), "audience"),
            (
                builder()
                    .broker_mode(true)
                    .broker_audience("services,other"),
                "broker_audience",
            ),
            (
                builder().login_redirect_uris(["https://*.app.example/cb".to_owned()]),
                "login_redirect_uris",
            ),
            (
                builder().login_redirect_uris(["https://app.example/*".to_owned()]),
                "login_redirect_uris",
            ),
            (
                builder().logout_redirect_uris(["https://app.example/bye/*".to_owned()]),
                "logout_redirect_uris",
            ),
        ] {
            let error = builder.build().expect_err(option);
            assert_eq!(error.option(), option, "{error}");
        }
        let broker = || builder().broker_mode(true).broker_audience("services");
        for (builder, option) in [
            (
                broker().exchange_audiences([" downstream".to_owned()]),
                "exchange_audiences",
            ),
            (
                broker().exchange_audiences([String::new()]),
                "exchange_audiences",
            ),
            (broker().exchange_client("svc ", "pw"), "exchange_client"),
        ] {
            let error = builder.build().expect_err(option);
            assert_eq!(error.option(), option, "{error}");
            assert!(error.message().contains("whitespace"), "{error}");
        }
        broker()
            .exchange_audiences(["downstream".to_owned()])
            .exchange_client("svc", "pw")
            .build()
            .expect("exact values");
    }

    /// An error the builder raises for a setting that came from the environment names the
    /// variable, which is what a deployment has in front of it; a bad key is named by its
    /// place in the list and never shown.
    #[test]
    fn errors_of_settings_from_the_environment_name_the_variable() {
        let error = from_env_with(&[("OIDC_LEEWAY_SECS", "600")]).expect_err("leeway");
        assert_eq!(error.option(), "leeway");
        assert!(error.message().contains("OIDC_LEEWAY_SECS"), "{error}");
        let hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        let broker = [
            ("OIDC_BROKER_MODE", "true"),
            ("OIDC_BROKER_AUDIENCE", "services"),
        ];
        let error = from_env_with(&[broker[0], broker[1], ("OIDC_BROKER_ENCRYPTION_KEY", hex)])
            .expect_err("hex");
        let text = error.to_string();
        assert!(text.contains("OIDC_BROKER_ENCRYPTION_KEY"), "{text}");
        assert!(text.contains("hex"), "{text}");
        assert!(!text.contains(hex), "{text}");
        let previous = format!("{KEY}, {hex}");
        let error = from_env_with(&[
            broker[0],
            broker[1],
            ("OIDC_BROKER_PREVIOUS_ENCRYPTION_KEYS", &previous),
        ])
        .expect_err("second key");
        assert!(error.message().contains("entry 2 "), "{error}");
        assert!(!error.to_string().contains(hex), "{error}");
        // A builder message that names its variable already is left as it is.
        let error = OidcConfig::from_lookup(lookup(&[
            ("OIDC_DISCOVERY_URL", "https://idp.example/discovery"),
            ("OIDC_CLIENT_ID", "app"),
        ]))
        .expect_err("no issuer implied");
        assert_eq!(error.option(), "issuer");
        assert_eq!(error.message().matches("OIDC_ISSUER").count(), 1, "{error}");
    }

    /// The table errors are named from is the list of variables `from_lookup` reads.
    #[test]
    fn the_variable_table_is_what_from_lookup_reads() {
        let read = std::sync::Mutex::new(Vec::new());
        let _ = OidcConfig::from_lookup(|name| {
            read.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(name.to_owned());
            None
        });
        let read = read.into_inner().unwrap_or_else(|p| p.into_inner());
        let table: Vec<String> = VARIABLES.iter().map(|(v, _)| (*v).to_owned()).collect();
        assert_eq!(read, table);
    }

    #[test]
    fn validation_switches_come_from_the_environment() {
        type Read = fn(&OidcConfig) -> bool;
        let switches: [(&str, Read); 2] = [
            (
                "OIDC_STRING_CLAIMS_AS_LISTS",
                OidcConfig::string_claims_as_lists,
            ),
            ("OIDC_ACCEPT_ID_TOKENS", OidcConfig::accept_id_tokens),
        ];
        for (variable, read) in switches {
            assert!(!read(
                &OidcConfig::from_lookup(lookup(&BASE)).expect("base")
            ));
            for (value, expected) in [("true", true), ("false", false), (" 1\n", true)] {
                let mut vars = BASE.to_vec();
                vars.push((variable, value));
                let config = OidcConfig::from_lookup(lookup(&vars)).expect(value);
                assert_eq!(read(&config), expected, "{variable}={value:?}");
            }
            let mut vars = BASE.to_vec();
            vars.push((variable, "maybe"));
            let error = OidcConfig::from_lookup(lookup(&vars)).expect_err("not a boolean");
            assert!(error.to_string().contains(variable), "{error}");
        }
    }

    #[test]
    fn broker_options_come_from_the_environment() {
        let mut vars = BASE.to_vec();
        vars.extend([
            ("OIDC_BROKER_MODE", "true"),
            ("OIDC_BROKER_STORE_URL", "sqlite:///var/lib/broker.sqlite3"),
            ("OIDC_BROKER_AUDIENCE", "services"),
            (
                "OIDC_TRUSTED_ISSUERS",
                "https://a.example/, https://b.example",
            ),
            (
                "OIDC_BROKER_JWKS_PATH",
                "/api/auth/v2/.well-known/jwks.json",
            ),
            (
                "OIDC_BROKER_ENCRYPTION_KEY",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            ),
            ("OIDC_BROKER_SIGNING_ALGORITHM", "EdDSA"),
            ("OIDC_BROKER_EXCHANGE_CLIENTS", "svc:s3cret,other:pw"),
            ("OIDC_BROKER_EXCHANGE_AUDIENCES", "downstream"),
        ]);
        let config = OidcConfig::from_lookup(lookup(&vars)).expect("valid");
        assert!(config.broker_mode());
        assert_eq!(
            config.broker_store_url(),
            Some("sqlite:///var/lib/broker.sqlite3")
        );
        assert_eq!(
            config.broker_audience().map(|a| a.as_str()),
            Some("services")
        );
        let issuers: Vec<&str> = config
            .trusted_issuers()
            .iter()
            .map(|i| i.as_str())
            .collect();
        assert_eq!(issuers, ["https://a.example", "https://b.example"]);
        assert_eq!(
            config.broker_jwks_path(),
            "/api/auth/v2/.well-known/jwks.json"
        );
        assert!(config.encryption_key().is_some());
        assert_eq!(config.broker_signing_algorithm(), Algorithm::EdDSA);
        assert_eq!(
            config.exchange_client_ids().collect::<Vec<_>>(),
            ["svc", "other"]
        );
        assert_eq!(config.exchange_audiences(), ["downstream"]);
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    /// Settings that could never work were accepted: a zero connect timeout fails every
    /// request, a zero JWKS size or key limit refuses every key set, a redirect URI with user
    /// info or a fragment is refused when a client sends it, and a claim value that is null, a
    /// float, a list or an object is not a string, boolean or integer as documented.
    #[test]
    fn settings_that_can_never_work_are_refused() {
        let base = || {
            OidcConfig::builder()
                .discovery_url("https://idp.example/.well-known/openid-configuration")
                .issuer("https://idp.example")
                .client_id("app")
        };
        let uris = |uri: &str| vec![uri.to_owned()];
        let claim = |value: serde_json::Value| [ClaimConstraint::new("groups", [value])];
        let broker = || {
            base()
                .broker_mode(true)
                .broker_audience("https://api.example")
        };
        let cases: Vec<(OidcConfigBuilder, &str)> = vec![
            (base().connect_timeout(Duration::ZERO), "connect_timeout"),
            (
                broker()
                    .algorithms([Algorithm::RS256])
                    .broker_signing_algorithm(Algorithm::ES256),
                "broker_signing_algorithm",
            ),
            (
                base().refresh_token_lifetime(Duration::ZERO),
                "refresh_token_lifetime",
            ),
            (
                base().refresh_token_lifetime(Duration::from_millis(999)),
                "refresh_token_lifetime",
            ),
            (
                base().device_session_lifetime(Duration::ZERO),
                "device_session_lifetime",
            ),
            (base().jwks_max_bytes(0), "jwks_max_bytes"),
            (base().jwks_max_bytes(4095), "jwks_max_bytes"),
            (base().jwks_max_bytes(8 * 1024 * 1024 + 1), "jwks_max_bytes"),
            (base().jwks_max_keys(0), "jwks_max_keys"),
            (base().jwks_max_keys(1025), "jwks_max_keys"),
            (broker().jwks_max_keys(2), "jwks_max_keys"),
            (
                broker().access_token_lifetime(Duration::MAX),
                "access_token_lifetime",
            ),
            (base().max_token_bytes(1023), "max_token_bytes"),
            (base().timeout(Duration::from_secs(301)), "timeout"),
            (base().client_id("app "), "client_id"),
            (base().audience(" api"), "audience"),
            (broker().broker_audience("api\n"), "broker_audience"),
            (base().realm("Café"), "realm"),
            (base().realm("a\"b"), "realm"),
            (
                base().broker_store_url("redis://127.0.0.1/0"),
                "broker_store_url",
            ),
            (base().broker_store_url("no scheme"), "broker_store_url"),
            // Peers' tokens are checked against the shared broker audience.
            (
                base().trusted_issuers(uris("https://peer.example")),
                "broker_audience",
            ),
            (
                broker().trusted_issuers(uris("https://peer.example/?x=1")),
                "trusted_issuers",
            ),
            (broker().proxy("https://api.example/?x=1"), "proxy"),
            (
                broker().trusted_issuers(uris("https://idp.example/")),
                "trusted_issuers",
            ),
            (broker().proxy("https://IDP.example"), "proxy"),
            (
                base()
                    .broker_mode(true)
                    .broker_audience("https://idp.example"),
                "broker_audience",
            ),
            // 60 s keys for 4 h tokens: 243 keys published at once.
            (
                broker()
                    .access_token_lifetime(Duration::from_secs(4 * 3600))
                    .key_rotation_period(Duration::from_secs(60)),
                "key_rotation_period",
            ),
            (
                base().login_redirect_uris(uris("https://user@app.example/cb")),
                "login_redirect_uris",
            ),
            (
                base().login_redirect_uris(uris("https://u:pw@app.example/cb")),
                "login_redirect_uris",
            ),
            (
                base().login_redirect_uris(uris("https://app.example/cb#done")),
                "login_redirect_uris",
            ),
            (
                base().logout_redirect_uris(uris("https://user@app.example/bye")),
                "logout_redirect_uris",
            ),
            (
                base().logout_redirect_uris(uris("https://app.example/bye#")),
                "logout_redirect_uris",
            ),
            (
                base().logout_redirect_uris(uris("https://app.example")),
                "logout_redirect_uris",
            ),
            (
                base().login_redirect_uris(uris("https://APP.example/cb")),
                "login_redirect_uris",
            ),
            (
                base().login_redirect_uris(uris("https://app.example:443/cb")),
                "login_redirect_uris",
            ),
            (
                base().login_redirect_uris(uris("https://app.example/a/../cb")),
                "login_redirect_uris",
            ),
            (
                base().login_redirect_uris(uris("http://app.example/cb")),
                "login_redirect_uris",
            ),
            (
                base().login_redirect_uris(uris(&format!(
                    "https://app.example/{}",
                    "a".repeat(2048)
                ))),
                "login_redirect_uris",
            ),
            (base().claims(claim(serde_json::Value::Null)), "claims"),
            (base().claims(claim(1.5.into())), "claims"),
            (base().claims(claim(serde_json::json!(["a"]))), "claims"),
            (base().claims(claim(serde_json::json!({"a": 1}))), "claims"),
        ];
        for (builder, option) in cases {
            let shown = format!("{builder:?}");
            match builder.build() {
                Ok(_) => panic!("accepted: {shown}"),
                Err(e) => {
                    assert_eq!(e.option(), option, "{}", e.message());
                    assert!(!e.message().contains("pw"), "{}", e.message());
                }
            }
        }
        let config = base()
            .connect_timeout(Duration::from_millis(1))
            .timeout(Duration::from_secs(300))
            .jwks_max_bytes(4096)
            .jwks_max_keys(1)
            .max_token_bytes(1024)
            .realm("api v2")
            .login_redirect_uris(uris("https://app.example/cb?x=1"))
            .logout_redirect_uris(uris("https://app.example/bye"))
            .refresh_token_lifetime(Duration::from_secs(1))
            .claims([
                ClaimConstraint::new("groups", ["admins"]),
                ClaimConstraint::new("verified", [true]),
                ClaimConstraint::new("level", [-1_i64]),
                ClaimConstraint::new("id", [u64::MAX]),
            ])
            .build();
        if let Err(e) = config {
            panic!("workable settings were refused: {e}");
        }
        for builder in [
            // 18 keys at once with the default lifetimes.
            broker().key_rotation_period(Duration::from_secs(60)),
            broker()
                .trusted_issuers(uris("https://peer.example/"))
                .proxy("https://api.example/v1/"),
            base()
                .trusted_issuers(uris("https://peer.example"))
                .broker_audience("services"),
            base()
                .trusted_issuers(uris("https://peer.example"))
                .audience("services"),
            // 243 keys at once, which peers reading 1024 take.
            broker()
                .access_token_lifetime(Duration::from_secs(4 * 3600))
                .key_rotation_period(Duration::from_secs(60))
                .jwks_max_keys(1024),
            broker().broker_store_url("memory:"),
            broker().broker_store_url("SQLite://relative.sqlite3"),
        ] {
            let shown = format!("{builder:?}");
            if let Err(e) = builder.build() {
                panic!("refused: {shown}: {e}");
            }
        }
        // Plain http for a login redirect: on a loopback host, or on a network the deployer
        // vouches for; and for a logout redirect, which carries nothing.
        for builder in [
            base().login_redirect_uris(uris("http://127.0.0.1:8000/cb")),
            base().login_redirect_uris(uris("http://localhost/cb")),
            base()
                .login_redirect_uris(uris("http://app.internal/cb"))
                .allow_insecure_http(true),
            base().logout_redirect_uris(uris("http://app.example/bye")),
        ] {
            let shown = format!("{builder:?}");
            if let Err(e) = builder.build() {
                panic!("workable settings were refused: {e}: {shown}");
            }
        }
    }

    /// `max_token_bytes(usize::MAX)` was accepted, and the bearer check's `limit + "Bearer "`
    /// overflowed: a limit is refused above 1 MiB, and 1 MiB itself is accepted.
    #[test]
    fn an_absurd_token_limit_is_refused() {
        let base = || {
            OidcConfig::builder()
                .discovery_url("https://idp.example/.well-known/openid-configuration")
                .issuer("https://idp.example")
                .client_id("app")
        };
        for bytes in [usize::MAX, MAX_TOKEN_BYTES_LIMIT + 1] {
            match base().max_token_bytes(bytes).build() {
                Ok(_) => panic!("a token limit of {bytes} was accepted"),
                Err(e) => assert_eq!(e.option(), "max_token_bytes", "{}", e.message()),
            }
        }
        let config = base()
            .max_token_bytes(1024 * 1024)
            .build()
            .unwrap_or_else(|e| panic!("1 MiB is valid: {e}"));
        assert_eq!(config.max_token_bytes(), 1024 * 1024);
    }

    /// The README tells deployments with long group lists to raise the token limit; one
    /// configured from the environment can, with a whole number, within the builder's bounds.
    #[test]
    fn the_token_limit_comes_from_the_environment() {
        let mut vars = BASE.to_vec();
        vars.push(("OIDC_MAX_TOKEN_BYTES", "65536"));
        let config = OidcConfig::from_lookup(lookup(&vars))
            .unwrap_or_else(|e| panic!("a valid configuration: {e}"));
        assert_eq!(config.max_token_bytes(), 65536);
        for bad in ["64k", "-1", "18446744073709551615", "32"] {
            let mut vars = BASE.to_vec();
            vars.push(("OIDC_MAX_TOKEN_BYTES", bad));
            match OidcConfig::from_lookup(lookup(&vars)) {
                Ok(_) => panic!("OIDC_MAX_TOKEN_BYTES={bad} was accepted"),
                Err(e) => assert_eq!(e.option(), "max_token_bytes", "{bad}: {}", e.message()),
            }
        }
    }

    /// A broker's `iss` is its base URL as the URL parser writes it, but trusted issuers were
    /// kept as written (minus a trailing `/`): a peer listed with a default port or in capitals
    /// never matched, and its tokens were refused. They are now written like a broker's own.
    #[test]
    fn trusted_issuers_are_written_as_a_peer_writes_its_own() {
        for (listed, canonical) in [
            ("https://Peer.example", "https://peer.example"),
            ("https://peer.example:443", "https://peer.example"),
            ("HTTPS://PEER.example:443/", "https://peer.example"),
            (
                "http://peer.example:80/tenant/",
                "http://peer.example/tenant",
            ),
            ("http://127.0.0.1:8082", "http://127.0.0.1:8082"),
        ] {
            let trusting = OidcConfig::builder()
                .discovery_url("https://idp.example/.well-known/openid-configuration")
                .client_id("app")
                .broker_audience("services")
                .allow_insecure_http(true)
                .trusted_issuers([listed.to_owned()])
                .build()
                .unwrap_or_else(|e| panic!("{listed}: {e}"));
            // The peer, configured with the same base URL as it is listed with.
            let peer = OidcConfig::builder()
                .discovery_url("https://idp.example/.well-known/openid-configuration")
                .client_id("app")
                .broker_mode(true)
                .broker_audience("services")
                .allow_insecure_http(true)
                .proxy(listed)
                .build()
                .unwrap_or_else(|e| panic!("{listed}: {e}"));
            let minted = peer.proxy().map(broker_issuer);
            let trusted: Vec<&str> = trusting
                .trusted_issuers()
                .iter()
                .map(Issuer::as_str)
                .collect();
            assert_eq!(trusted, [canonical], "{listed}");
            assert_eq!(minted.as_deref(), Some(canonical), "{listed}");
        }
    }

    /// The store URL's password stays out of `Debug`, raw and percent-decoded, in the builder
    /// and the built configuration; the rest of the URL is still shown. (A PostgreSQL URL
    /// builds only with the `postgres` feature.)
    #[cfg(feature = "postgres")]
    #[test]
    fn debug_masks_the_store_password() {
        let builder = OidcConfig::builder()
            .discovery_url("https://idp.example/.well-known/openid-configuration")
            .client_id("app")
            .broker_mode(true)
            .broker_audience("services")
            .broker_store_url("postgres://app:p%40ss-Word@db.internal/broker");
        let shown = format!("{builder:?}");
        let config = builder
            .build()
            .unwrap_or_else(|e| panic!("a valid configuration: {e}"));
        for shown in [shown, format!("{config:?}")] {
            assert!(
                !shown.contains("p%40ss-Word") && !shown.contains("p@ss-Word"),
                "{shown}"
            );
            assert!(
                shown.contains("postgres://app:***@db.internal/broker"),
                "{shown}"
            );
        }
        assert_eq!(
            config.broker_store_url(),
            Some("postgres://app:p%40ss-Word@db.internal/broker")
        );
    }

    /// A builder shows its URL options with passwords masked, in user info or in a query
    /// parameter named like one: a builder gets logged before `build` refuses such a URL.
    #[test]
    fn builder_debug_masks_passwords_in_urls() {
        let builder = OidcConfig::builder()
            .discovery_url("https://u:disc0very-pw@idp.example/.well-known/openid-configuration")
            .jwks_uri("https://idp.example/keys?api_key=jwks-s3cret")
            .proxy("https://u:pr0xy-pw@api.example")
            .trusted_issuers(["https://u:peer-pw@peer.example".to_owned()]);
        let shown = format!("{builder:?}");
        for secret in ["disc0very-pw", "jwks-s3cret", "pr0xy-pw", "peer-pw"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("idp.example") && shown.contains("peer.example"),
            "{shown}"
        );
    }

    /// A key in the query of `jwks_uri`, the discovery URL or a redirect URI is masked in the
    /// built configuration's `Debug`, and one in `jwks_uri` in the error that refuses it.
    #[test]
    fn config_debug_and_url_errors_mask_passwords_in_urls() {
        let config = OidcConfig::builder()
            .discovery_url("https://idp.example/.well-known/openid-configuration?key=disc-s3cret")
            .jwks_uri("https://idp.example/keys?api_key=jwks-s3cret")
            .issuer("https://idp.example")
            .login_redirect_uris(["https://app.example/cb?token=redir-s3cret".to_owned()])
            .client_id("app")
            .build()
            .unwrap_or_else(|e| panic!("a valid configuration: {e}"));
        let shown = format!("{config:?}");
        for secret in ["disc-s3cret", "jwks-s3cret", "redir-s3cret"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("idp.example/keys") && shown.contains("client_id: \"app\""),
            "{shown}"
        );
        for (url, option) in [
            ("http://idp.example/keys?api_key=jwks-s3cret", "jwks_uri"),
            ("https://idp.example/keys?api_key=jwks-s3cret#x", "jwks_uri"),
        ] {
            let error = OidcConfig::builder()
                .discovery_url("https://idp.example/.well-known/openid-configuration")
                .jwks_uri(url)
                .client_id("app")
                .build()
                .err()
                .unwrap_or_else(|| panic!("{url} was accepted"));
            assert_eq!(error.option(), option);
            assert!(
                !error.to_string().contains("jwks-s3cret") && error.to_string().contains("***"),
                "{error}"
            );
        }
    }

    /// A secret with surrounding whitespace (a secret file's newline) is refused without being
    /// shown: the provider would refuse it, and the at-rest key derived from it would change
    /// once it is corrected. The same for an exchange client's id or secret.
    #[test]
    fn a_secret_with_surrounding_whitespace_is_refused() {
        let base = || {
            OidcConfig::builder()
                .discovery_url("https://idp.example/.well-known/openid-configuration")
                .client_id("app")
        };
        let broker = || base().broker_mode(true).broker_audience("services");
        let cases = [
            (base().client_secret("s3cret\n"), "client_secret"),
            (base().client_secret(" s3cret"), "client_secret"),
            (
                broker().exchange_client("svc", "s3cret "),
                "exchange_client",
            ),
            (
                broker().exchange_client("svc\t", "s3cret"),
                "exchange_client",
            ),
        ];
        for (builder, option) in cases {
            let error = builder
                .build()
                .err()
                .unwrap_or_else(|| panic!("{option} with whitespace was accepted"));
            assert_eq!(error.option(), option, "{error}");
            assert!(!error.to_string().contains("s3cret"), "{error}");
        }
        assert!(base().client_secret("s3cret").build().is_ok());
    }

    /// Outside broker mode, `broker_audience` describes trusted peers' tokens and
    /// Keeping the key derived from the client secret needs a key to keep it beside and a
    /// secret to derive it from; with both it is read, from the builder and the environment.
    #[test]
    fn the_key_from_the_client_secret_is_kept_only_beside_an_encryption_key() {
        let broker = || {
            builder()
                .broker_mode(true)
                .broker_audience("services")
                .previous_key_from_client_secret(true)
        };
        for (builder, needs) in [
            (broker().client_secret("the-secret"), "encryption_key"),
            (broker().encryption_key(KEY), "client_secret"),
        ] {
            let error = builder.build().expect_err(needs);
            assert_eq!(error.option(), "previous_key_from_client_secret");
            assert!(error.message().contains(needs), "{error}");
        }
        let kept = broker()
            .client_secret("the-secret")
            .encryption_key(KEY)
            .build()
            .unwrap_or_else(|e| panic!("a valid configuration: {e}"));
        assert!(kept.previous_key_from_client_secret());
        let vars = [
            ("OIDC_BROKER_PREVIOUS_KEY_FROM_CLIENT_SECRET", "true"),
            ("OIDC_CLIENT_SECRET", "the-secret"),
            ("OIDC_BROKER_ENCRYPTION_KEY", KEY),
            ("OIDC_BROKER_MODE", "true"),
            ("OIDC_BROKER_AUDIENCE", "services"),
        ];
        let outside = from_env_with(&vars[..2]).expect_err("outside broker mode");
        assert_eq!(outside.option(), "previous_key_from_client_secret");
        assert!(
            outside.to_string().contains("OIDC_BROKER_MODE=true"),
            "{outside}"
        );
        let from_env =
            from_env_with(&vars).unwrap_or_else(|e| panic!("a valid configuration: {e}"));
        assert!(from_env.previous_key_from_client_secret());
        let default = broker()
            .previous_key_from_client_secret(false)
            .build()
            .unwrap_or_else(|e| panic!("a valid configuration: {e}"));
        assert!(!default.previous_key_from_client_secret());
    }

    /// `broker_jwks_path` where peers publish their keys: set without trusted issuers, each
    /// would be ignored, so the configuration is refused and names it.
    #[test]
    fn peer_options_without_peers_are_refused() {
        let base = || {
            OidcConfig::builder()
                .discovery_url("https://idp.example/.well-known/openid-configuration")
                .client_id("app")
        };
        let cases = [
            (base().broker_audience("services"), "broker_audience"),
            (base().broker_jwks_path("/keys"), "broker_jwks_path"),
        ];
        for (builder, option) in cases {
            match builder.build() {
                Ok(_) => panic!("{option} without trusted issuers was accepted"),
                Err(e) => {
                    assert_eq!(e.option(), option, "{e}");
                    assert!(e.message().contains("trusted_issuers"), "{e}");
                }
            }
        }
        let vars = [BASE[0], BASE[1], ("OIDC_BROKER_AUDIENCE", "services")];
        let refused = OidcConfig::from_lookup(lookup(&vars)).err();
        assert_eq!(refused.map(|e| e.option()), Some("broker_audience"));
        // With peers named, both are read.
        let peers = || base().trusted_issuers(["https://peer.example".to_owned()]);
        let config = peers()
            .broker_audience("services")
            .broker_jwks_path("/keys")
            .build()
            .unwrap_or_else(|e| panic!("a valid configuration: {e}"));
        assert_eq!(config.broker_jwks_path(), "/keys");
        // A broker trusting no one may carry the path its federating siblings use.
        let broker = base()
            .broker_mode(true)
            .broker_audience("services")
            .broker_jwks_path("/keys")
            .build();
        assert!(broker.is_ok(), "{broker:?}");
    }

    /// A variable set to bytes that are not UTF-8 is an error naming it, never read as unset
    /// (an unreadable `OIDC_AUDIENCE` would turn the audience check off), and the value is not
    /// shown.
    #[cfg(unix)]
    #[test]
    fn a_variable_that_is_not_utf8_is_refused() {
        use std::os::unix::ffi::OsStringExt as _;
        let unreadable = || {
            Err(std::env::VarError::NotUnicode(
                std::ffi::OsString::from_vec(b"\xffs3cret".to_vec()),
            ))
        };
        for (name, option) in [
            ("OIDC_AUDIENCE", "audience"),
            ("OIDC_CLIENT_SECRET", "client_secret"),
            ("OIDC_BROKER_ENCRYPTION_KEY", "encryption_key"),
        ] {
            let error = OidcConfig::from_vars(|variable| {
                if variable == name {
                    env_value(variable, unreadable())
                } else {
                    Ok(lookup(&BASE)(variable))
                }
            })
            .err()
            .unwrap_or_else(|| panic!("{name} not UTF-8 was accepted"));
            assert_eq!(error.option(), option, "{error}");
            assert!(error.message().contains(name), "{error}");
            assert!(!error.message().contains("s3cret"), "{error}");
        }
        assert_eq!(
            env_value("OIDC_AUDIENCE", Err(std::env::VarError::NotPresent)).ok(),
            Some(None)
        );
        assert_eq!(
            env_value("OIDC_AUDIENCE", Ok("api".to_owned())).ok(),
            Some(Some("api".to_owned()))
        );
    }

    /// An empty client secret is a configuration error, not a secret anyone can send.
    #[test]
    fn an_empty_client_secret_is_refused() {
        let built = OidcConfig::builder()
            .discovery_url("https://idp.example/.well-known/openid-configuration")
            .client_id("app")
            .client_secret("")
            .build();
        assert_eq!(built.err().map(|e| e.option()), Some("client_secret"));
    }

    /// A client secret of only whitespace is refused like an empty one.
    #[test]
    fn a_blank_client_secret_is_refused() {
        let built = OidcConfig::builder()
            .discovery_url("https://idp.example/.well-known/openid-configuration")
            .client_id("app")
            .client_secret(" \n\t")
            .build();
        assert_eq!(built.err().map(|e| e.option()), Some("client_secret"));
    }

    /// Values read from the environment are compared or sent verbatim, so a secret file's
    /// trailing newline or a stray space must not reach them.
    #[test]
    fn environment_values_are_trimmed() {
        let vars = [
            (
                "OIDC_DISCOVERY_URL",
                " https://idp.example/.well-known/openid-configuration\n",
            ),
            ("OIDC_CLIENT_ID", " app\n"),
            ("OIDC_CLIENT_SECRET", "s3cret\r\n"),
            ("OIDC_AUDIENCE", "api \n"),
            ("OIDC_ISSUER", "\thttps://idp.example/tenant\n"),
            ("OIDC_BROKER_MODE", "true"),
            ("OIDC_BROKER_AUDIENCE", "services\n"),
        ];
        let config = OidcConfig::from_lookup(lookup(&vars)).expect("valid");
        assert_eq!(config.client_id(), "app");
        assert_eq!(config.client_secret().map(Secret::expose), Some("s3cret"));
        assert_eq!(config.audience().map(|a| a.as_str()), Some("api"));
        assert_eq!(
            config.expected_issuer().as_str(),
            "https://idp.example/tenant"
        );
        assert_eq!(
            config.broker_audience().map(|a| a.as_str()),
            Some("services")
        );
    }

    /// Every variable is trimmed, not only the compared ones: a here-doc's newline after the
    /// scopes would fail scope validation, a leading space would fail the store URL's scheme
    /// check, and a SQLite store would open a file whose name ends in a newline.
    #[test]
    fn every_environment_value_is_trimmed() {
        let mut vars = BASE.to_vec();
        vars.extend([
            ("OIDC_SCOPES", "openid profile\n"),
            (
                "OIDC_BROKER_STORE_URL",
                " sqlite:///var/lib/app/broker.sqlite3\n",
            ),
            ("OIDC_BROKER_JWKS_PATH", " /jwks.json\n"),
            ("OIDC_TRUSTED_ISSUERS", " https://peer.example\n"),
            ("OIDC_BROKER_MODE", " true\n"),
            ("OIDC_BROKER_AUDIENCE", "services"),
        ]);
        let config = OidcConfig::from_lookup(lookup(&vars))
            .unwrap_or_else(|e| panic!("a valid configuration: {e}"));
        let scopes: Vec<&str> = config.scopes().iter().map(|s| s.as_str()).collect();
        assert_eq!(scopes, ["openid", "profile"]);
        assert_eq!(
            config.broker_store_url(),
            Some("sqlite:///var/lib/app/broker.sqlite3")
        );
        assert_eq!(config.broker_jwks_path(), "/jwks.json");
    }

    /// `OIDC_BROKER_EXCHANGE_CLIENTS` is trimmed around each item and around the `:`: a
    /// client sending `svc` and `s3cret` must match `svc : s3cret`.
    #[test]
    fn exchange_clients_are_trimmed_around_items_and_the_colon() {
        let mut vars = BASE.to_vec();
        vars.extend([
            (
                "OIDC_BROKER_EXCHANGE_CLIENTS",
                " svc : s3cret ,\tother:\tpw\n",
            ),
            ("OIDC_BROKER_MODE", "true"),
            ("OIDC_BROKER_AUDIENCE", "services"),
        ]);
        let config = OidcConfig::from_lookup(lookup(&vars))
            .unwrap_or_else(|e| panic!("a valid configuration: {e}"));
        let clients: Vec<(&str, &str)> = config
            .exchange_clients
            .iter()
            .map(|(id, secret)| (id.as_str(), secret.expose()))
            .collect();
        assert_eq!(clients, [("svc", "s3cret"), ("other", "pw")]);
        let mut vars = BASE.to_vec();
        vars.push(("OIDC_BROKER_EXCHANGE_CLIENTS", "svc: "));
        assert_eq!(
            OidcConfig::from_lookup(lookup(&vars))
                .err()
                .map(|e| e.option()),
            Some("exchange_client")
        );
    }

    /// A variable that is set but empty or blank used to count as unset: `OIDC_AUDIENCE=""`
    /// turned the audience check off and `OIDC_CLIENT_SECRET=""` made a public client. Every
    /// `OIDC_*` variable set that way is now refused, naming its option and the variable.
    #[test]
    fn a_blank_environment_variable_is_refused() {
        for (var, option) in VARIABLES {
            for blank in ["", " \n"] {
                let mut set: Vec<(&str, &str)> =
                    BASE.iter().copied().filter(|(k, _)| *k != var).collect();
                set.push((var, blank));
                match OidcConfig::from_lookup(lookup(&set)) {
                    Ok(_) => panic!("{var}={blank:?} was accepted"),
                    Err(e) => {
                        assert_eq!(e.option(), option, "{var}: {}", e.message());
                        assert!(e.message().contains(var), "{var}: {}", e.message());
                    }
                }
            }
        }
    }

    /// SECURITY D10: the issuer the discovery document names is never adopted. A discovery URL
    /// that implies its issuer (the OpenID Connect suffix, also with a trailing `/`, or RFC
    /// 8414's inserted path) gives it; any other one needs the issuer configured, and without it
    /// the configuration is refused naming `issuer` and OIDC_ISSUER, where it used to leave the
    /// expected issuer unknown and take the document's.
    #[test]
    fn a_discovery_url_that_implies_no_issuer_needs_one_configured() {
        let with = |url: &str| {
            OidcConfig::builder()
                .discovery_url(url)
                .client_id("app")
                .build()
        };
        for (url, issuer) in [
            (
                "https://idp.example/realms/main/.well-known/openid-configuration",
                "https://idp.example/realms/main",
            ),
            (
                "https://idp.example/realms/main/.well-known/openid-configuration/",
                "https://idp.example/realms/main",
            ),
            (
                "https://IDP.example:443/.well-known/openid-configuration",
                "https://idp.example",
            ),
            (
                "https://idp.example/.well-known/oauth-authorization-server",
                "https://idp.example",
            ),
            (
                "https://idp.example/.well-known/oauth-authorization-server/tenant",
                "https://idp.example/tenant",
            ),
            (
                "https://org.okta.example/oauth2/default/.well-known/oauth-authorization-server",
                "https://org.okta.example/oauth2/default",
            ),
            (
                "https://idp.example/.well-known/oauth-authorization-server/tenant/",
                "https://idp.example/tenant",
            ),
        ] {
            match with(url) {
                Ok(config) => assert_eq!(config.expected_issuer().as_str(), issuer, "{url}"),
                Err(e) => panic!("{url}: {e}"),
            }
        }
        for url in [
            "https://login.example/tenant/v2.0/.well-known/openid-configuration?p=B2C_1_signin",
            "https://idp.example/discovery.json",
            "https://idp.example/",
            "https://idp.example/.well-known/oauth-authorization-server-x",
        ] {
            match with(url) {
                Ok(config) => panic!(
                    "{url} was accepted, expecting the issuer {}",
                    config.expected_issuer()
                ),
                Err(e) => {
                    assert_eq!(e.option(), "issuer", "{url}: {}", e.message());
                    assert!(e.message().contains("OIDC_ISSUER"), "{}", e.message());
                }
            }
        }
        let url = "https://login.example/tenant/v2.0/.well-known/openid-configuration?p=B2C_1_x";
        let config = OidcConfig::builder()
            .discovery_url(url)
            .client_id("app")
            .issuer("https://login.example/tenant/v2.0/")
            .build()
            .unwrap_or_else(|e| panic!("an explicit issuer is enough: {e}"));
        assert_eq!(
            config.expected_issuer().as_str(),
            "https://login.example/tenant/v2.0/"
        );
        let mut vars = BASE.to_vec();
        vars[0].1 = url;
        assert_eq!(
            OidcConfig::from_lookup(lookup(&vars))
                .err()
                .map(|e| e.option()),
            Some("issuer")
        );
    }

    /// A zero JWKS TTL would refresh the keys on every validation, a zero stale limit would
    /// make every fetched key set unusable at once, and a zero refetch cooldown would let
    /// unknown key ids fetch back to back; all are refused.
    #[test]
    fn key_set_timings_under_a_second_are_refused() {
        let base = || {
            OidcConfig::builder()
                .discovery_url("https://idp.example/.well-known/openid-configuration")
                .issuer("https://idp.example")
                .client_id("app")
        };
        let cases: [(OidcConfigBuilder, &str); 6] = [
            (base().jwks_ttl(Duration::ZERO), "jwks_ttl"),
            (base().jwks_ttl(Duration::from_millis(999)), "jwks_ttl"),
            (base().jwks_stale_limit(Duration::ZERO), "jwks_stale_limit"),
            (
                base().jwks_stale_limit(Duration::from_millis(500)),
                "jwks_stale_limit",
            ),
            (
                base().jwks_refetch_cooldown(Duration::ZERO),
                "jwks_refetch_cooldown",
            ),
            (
                base().jwks_refetch_cooldown(Duration::from_millis(999)),
                "jwks_refetch_cooldown",
            ),
        ];
        for (builder, option) in cases {
            match builder.build() {
                Ok(_) => panic!("{option} under a second was accepted"),
                Err(e) => assert_eq!(e.option(), option, "{}", e.message()),
            }
        }
        let one = Duration::from_secs(1);
        assert!(
            base()
                .jwks_ttl(one)
                .jwks_stale_limit(one)
                .jwks_refetch_cooldown(one)
                .build()
                .is_ok()
        );
        // Longest is "never": accepted, and converted for the clock without wrapping.
        let never = base()
            .jwks_ttl(Duration::MAX)
            .jwks_stale_limit(Duration::MAX)
            .jwks_refetch_cooldown(Duration::MAX)
            .discovery_ttl(Duration::MAX)
            .token_cache_ttl(Duration::MAX)
            .build()
            .expect("the longest timings are valid");
        for value in [
            never.jwks_ttl(),
            never.jwks_stale_limit(),
            never.jwks_refetch_cooldown(),
            never.discovery_ttl(),
            never.token_cache_ttl(),
        ] {
            assert!(crate::clock::secs(value) >= 100 * 365 * 24 * 3600);
        }
    }

    /// A zero discovery TTL would fetch the discovery document for every login and every key
    /// fetch; under a second is refused like the key set timings.
    #[test]
    fn a_discovery_ttl_under_a_second_is_refused() {
        let base = || {
            OidcConfig::builder()
                .discovery_url("https://idp.example/.well-known/openid-configuration")
                .issuer("https://idp.example")
                .client_id("app")
        };
        for ttl in [Duration::ZERO, Duration::from_millis(999)] {
            match base().discovery_ttl(ttl).build() {
                Ok(_) => panic!("a discovery TTL of {ttl:?} was accepted"),
                Err(e) => assert_eq!(e.option(), "discovery_ttl", "{}", e.message()),
            }
        }
        let config = base()
            .discovery_ttl(Duration::from_secs(1))
            .build()
            .unwrap_or_else(|e| panic!("one second is valid: {e}"));
        assert_eq!(config.discovery_ttl(), Duration::from_secs(1));
    }

    /// Keys that go stale before their scheduled refresh would be unusable in between, and
    /// every request would fetch the key set outside the refetch cooldown: a stale limit
    /// shorter than the JWKS TTL is refused, naming both options; an equal one is accepted.
    #[test]
    fn a_stale_limit_shorter_than_the_jwks_ttl_is_refused() {
        let base = || {
            OidcConfig::builder()
                .discovery_url("https://idp.example/.well-known/openid-configuration")
                .issuer("https://idp.example")
                .client_id("app")
        };
        let cases = [
            base().jwks_stale_limit(Duration::from_secs(60)),
            base()
                .jwks_ttl(Duration::from_secs(3600))
                .jwks_stale_limit(Duration::from_secs(3599)),
        ];
        for builder in cases {
            match builder.build() {
                Ok(config) => panic!(
                    "a stale limit of {:?} under a TTL of {:?} was accepted",
                    config.jwks_stale_limit(),
                    config.jwks_ttl()
                ),
                Err(e) => {
                    assert_eq!(e.option(), "jwks_stale_limit");
                    assert!(e.message().contains("`jwks_ttl`"), "{}", e.message());
                    assert!(
                        e.message().contains("`jwks_stale_limit`"),
                        "{}",
                        e.message()
                    );
                }
            }
        }
        let hour = Duration::from_secs(3600);
        assert!(base().jwks_ttl(hour).jwks_stale_limit(hour).build().is_ok());
    }

    #[test]
    fn broker_misconfigurations_name_their_option() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("OIDC_BROKER_MODE", "true")], "broker_audience"),
            (&[("OIDC_BROKER_MODE", "maybe")], "broker_mode"),
            (
                &[("OIDC_BROKER_SIGNING_ALGORITHM", "HS256")],
                "broker_signing_algorithm",
            ),
            (
                &[("OIDC_BROKER_SIGNING_ALGORITHM", "PS256")],
                "broker_signing_algorithm",
            ),
            (&[("OIDC_BROKER_ENCRYPTION_KEY", "short")], "encryption_key"),
            (
                &[(
                    "OIDC_BROKER_PREVIOUS_ENCRYPTION_KEYS",
                    "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=, short",
                )],
                "previous_encryption_keys",
            ),
            (&[("OIDC_TRUSTED_ISSUERS", "not a url")], "trusted_issuers"),
            (
                &[
                    ("OIDC_BROKER_JWKS_PATH", "jwks.json"),
                    ("OIDC_TRUSTED_ISSUERS", "https://peer.example"),
                    ("OIDC_AUDIENCE", "api"),
                ],
                "broker_jwks_path",
            ),
            (
                &[("OIDC_BROKER_EXCHANGE_CLIENTS", "no-secret")],
                "exchange_client",
            ),
        ];
        for (extra, option) in cases {
            let mut vars = BASE.to_vec();
            vars.extend_from_slice(extra);
            match OidcConfig::from_lookup(lookup(&vars)) {
                Ok(_) => panic!("{extra:?} was accepted"),
                Err(e) => assert_eq!(e.option(), *option, "{extra:?}: {}", e.message()),
            }
        }
    }

    /// The URLs fetched from or published as an issuer (discovery, keys, trusted peers, the
    /// broker's public URL) refuse user info (without showing it), fragments and plain http on
    /// a host that is not loopback, unless `allow_insecure_http` is on.
    #[test]
    fn endpoint_urls_refuse_user_info_fragments_and_remote_plain_http() {
        type Set = fn(OidcConfigBuilder, &str) -> OidcConfigBuilder;
        let options: [(&str, Set); 4] = [
            ("discovery_url", |b, v| b.discovery_url(v)),
            ("jwks_uri", |b, v| b.jwks_uri(v)),
            ("trusted_issuers", |b, v| b.trusted_issuers([v.to_owned()])),
            ("proxy", |b, v| b.proxy(v)),
        ];
        let base = || {
            OidcConfig::builder()
                .discovery_url("https://idp.example/.well-known/openid-configuration")
                .issuer("https://idp.example")
                .client_id("app")
                .broker_mode(true)
                .broker_audience("services")
        };
        for (option, set) in options {
            for refused in [
                "https://user:s3cret@idp.example/x",
                "https://user@idp.example/x",
                "https://idp.example/x#part",
                "http://idp.example/x",
                "http://10.0.0.5:8080/x",
                "http://localhost.example/x",
            ] {
                match set(base(), refused).build() {
                    Ok(_) => panic!("{option} = {refused} was accepted"),
                    Err(e) => {
                        assert_eq!(e.option(), option, "{refused}: {}", e.message());
                        assert!(!e.to_string().contains("s3cret"), "{e}");
                    }
                }
            }
            for accepted in [
                "https://idp.example/x",
                "http://127.0.0.1:9/x",
                "http://127.5.0.1:9/x",
                "http://localhost:9/x",
                "http://LOCALHOST/x",
                "http://[::1]:9/x",
            ] {
                let built = set(base(), accepted).build();
                assert!(built.is_ok(), "{option} = {accepted}: {:?}", built.err());
            }
            let allowed = set(base().allow_insecure_http(true), "http://keycloak:8080/x").build();
            assert!(allowed.is_ok_and(|c| c.allow_insecure_http()), "{option}");
        }
        let from_env = |insecure: Option<&str>| {
            let insecure = insecure.map(str::to_owned);
            OidcConfig::from_lookup(move |name| match name {
                "OIDC_DISCOVERY_URL" => {
                    Some("http://keycloak:8080/realms/a/.well-known/openid-configuration".into())
                }
                "OIDC_CLIENT_ID" => Some("app".into()),
                "OIDC_ALLOW_INSECURE_HTTP" => insecure.clone(),
                _ => None,
            })
        };
        assert_eq!(
            from_env(None).err().map(|e| e.option()),
            Some("discovery_url")
        );
        assert!(from_env(Some("true")).is_ok());
        assert_eq!(
            from_env(Some("maybe")).err().map(|e| e.option()),
            Some("allow_insecure_http")
        );
    }

    /// A token-exchange client secret of only whitespace is as easy to guess as none.
    #[test]
    fn a_blank_exchange_client_secret_is_refused() {
        for secret in ["", " ", "\t \n"] {
            let built = OidcConfig::builder()
                .discovery_url("https://idp.example/.well-known/openid-configuration")
                .client_id("app")
                .exchange_client("svc", secret)
                .build();
            assert_eq!(
                built.err().map(|e| e.option()),
                Some("exchange_client"),
                "{secret:?}"
            );
        }
    }
}
