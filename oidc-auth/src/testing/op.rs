//! The mutable state behind the mock provider's OpenID flows: the user and client, the switches
//! tests flip, and the codes, tokens and device grants handed out so far.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use aws_lc_rs::rand;
use serde_json::{Map, Value, json};

use super::keys::b64;

/// Changes a JSON object (ID token claims, the token endpoint's answer) just before the
/// [`MockProvider`](super::MockProvider) signs or sends it.
///
/// ```no_run
/// use std::sync::Arc;
/// use oidc_auth::testing::{JsonTweak, MockProvider};
///
/// # async fn f(provider: MockProvider) {
/// let wrong_nonce: JsonTweak = Arc::new(|claims| {
///     claims.insert("nonce".into(), "not-the-one-you-sent".into());
/// });
/// provider.set_id_token_tweak(Some(wrong_nonce));
/// # }
/// ```
pub type JsonTweak = Arc<dyn Fn(&mut Map<String, Value>) + Send + Sync>;

/// Changes the query parameters of the authorization response (the redirect from `/authorize`)
/// just before it is sent; see
/// [`MockProvider::set_authorize_response_tweak`](super::MockProvider::set_authorize_response_tweak).
///
/// ```no_run
/// use std::sync::Arc;
/// use oidc_auth::testing::{MockProvider, QueryTweak};
///
/// # async fn f(provider: MockProvider) {
/// // RFC 9207: `iss` missing although discovery says it is supported.
/// let drop_iss: QueryTweak = Arc::new(|pairs| pairs.retain(|(name, _)| name != "iss"));
/// provider.set_authorize_response_tweak(Some(drop_iss));
/// # }
/// ```
pub type QueryTweak = Arc<dyn Fn(&mut Vec<(String, String)>) + Send + Sync>;

/// The grant type name of the device flow (RFC 8628).
pub(super) const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Claims that stay out of access tokens, so a relying party has to ask `/userinfo` for them.
const NAME_PARTS: [&str; 4] = ["name", "given_name", "family_name", "middle_name"];

/// The end user: logged in automatically at `/authorize` and approving device grants.
#[derive(Clone, Debug)]
pub(super) struct User {
    pub(super) sub: String,
    /// Everything but `sub`.
    pub(super) claims: Map<String, Value>,
}

impl User {
    pub(super) fn new(sub: &str, claims: Value) -> Self {
        let mut claims = match claims {
            Value::Object(claims) => claims,
            _ => Map::new(),
        };
        claims.remove("sub");
        Self {
            sub: sub.to_owned(),
            claims,
        }
    }

    /// The claims with `sub`: the `/userinfo` answer.
    pub(super) fn userinfo(&self) -> Value {
        let mut all = self.claims.clone();
        all.insert("sub".into(), Value::from(self.sub.as_str()));
        Value::Object(all)
    }

    /// The claims an access token carries besides the registered ones.
    pub(super) fn access_token_claims(&self) -> Map<String, Value> {
        let mut claims = self.claims.clone();
        for name in NAME_PARTS {
            claims.remove(name);
        }
        claims
    }
}

impl Default for User {
    fn default() -> Self {
        User::new(
            "alice",
            json!({
                "preferred_username": "alice",
                "given_name": "Alice",
                "family_name": "van der Berg",
                "name": "Alice van der Berg",
                "email": "alice@example.com",
                "email_verified": true,
            }),
        )
    }
}

/// The client the token endpoint expects.
#[derive(Clone, Debug)]
pub(super) struct Client {
    pub(super) id: String,
    pub(super) secret: Option<String>,
}

/// What a code, refresh token or approved device grant entitles its holder to.
#[derive(Clone, Debug)]
pub(super) struct Grant {
    pub(super) client_id: String,
    pub(super) scope: String,
    pub(super) user: User,
    pub(super) nonce: Option<String>,
    pub(super) auth_time: i64,
}

/// An authorization code and what it was issued for.
#[derive(Debug)]
pub(super) struct CodeEntry {
    pub(super) grant: Grant,
    pub(super) redirect_uri: String,
    pub(super) code_challenge: Option<String>,
    pub(super) used: bool,
    /// The refresh token family its redemption started; revoked if the code is replayed.
    pub(super) family: Option<u64>,
}

/// A refresh token: one link of a rotation chain (its family).
#[derive(Debug)]
pub(super) struct RefreshEntry {
    pub(super) family: u64,
    pub(super) spent: bool,
    pub(super) grant: Grant,
    pub(super) expires_at: Option<Instant>,
}

/// Where a device authorization stands.
#[derive(Debug)]
pub(super) enum DeviceStatus {
    Pending,
    Approved(User),
    Denied,
    /// Tokens were handed out; the device code is spent.
    Used,
}

/// One device authorization request (RFC 8628).
#[derive(Debug)]
pub(super) struct DeviceEntry {
    pub(super) user_code: String,
    pub(super) client_id: String,
    pub(super) scope: String,
    pub(super) status: DeviceStatus,
    /// `None` when too far in the future to represent: never.
    pub(super) expires_at: Option<Instant>,
    /// The minimum gap between polls, grown by `slow_down`.
    pub(super) interval: Duration,
    /// The previous poll, or the device authorization itself before the first poll.
    pub(super) last_poll: Instant,
}

/// The provider's OpenID state; one lock, never held across an await or while signing.
pub(super) struct OpState {
    pub(super) user: User,
    pub(super) client: Option<Client>,
    pub(super) access_token_audience: Option<String>,
    pub(super) access_token_expires_in: i64,
    pub(super) refresh_expires_in: i64,
    pub(super) iss_in_authorization_response: bool,
    pub(super) device_enabled: bool,
    pub(super) revocation_enabled: bool,
    pub(super) authorize_error: Option<String>,
    pub(super) authorize_response_tweak: Option<QueryTweak>,
    pub(super) check_pkce: bool,
    pub(super) id_token_tweak: Option<JsonTweak>,
    pub(super) id_token_kid: Option<String>,
    pub(super) token_response_tweak: Option<JsonTweak>,
    pub(super) discovery_tweak: Option<JsonTweak>,
    pub(super) device_expires_in: u64,
    pub(super) device_interval: Option<u64>,
    pub(super) userinfo_override: Option<Value>,

    pub(super) last_authorize: Option<HashMap<String, String>>,
    pub(super) last_token: Option<HashMap<String, String>>,
    pub(super) last_revocation: Option<HashMap<String, String>>,
    pub(super) last_end_session: Option<HashMap<String, String>>,
    pub(super) last_device: Option<(String, String)>,

    pub(super) codes: HashMap<String, CodeEntry>,
    pub(super) refresh_tokens: HashMap<String, RefreshEntry>,
    pub(super) revoked_families: HashSet<u64>,
    next_family: u64,
    /// By device code.
    pub(super) devices: HashMap<String, DeviceEntry>,
    /// Access tokens issued by `/token`, with the user `/userinfo` answers for.
    pub(super) access_tokens: HashMap<String, User>,
    pub(super) refresh_count: usize,
}

impl Default for OpState {
    fn default() -> Self {
        Self {
            user: User::default(),
            client: None,
            access_token_audience: None,
            access_token_expires_in: 300,
            refresh_expires_in: 1800,
            iss_in_authorization_response: true,
            device_enabled: true,
            revocation_enabled: true,
            authorize_error: None,
            authorize_response_tweak: None,
            check_pkce: true,
            id_token_tweak: None,
            id_token_kid: None,
            token_response_tweak: None,
            discovery_tweak: None,
            device_expires_in: 600,
            device_interval: Some(5),
            userinfo_override: None,
            last_authorize: None,
            last_token: None,
            last_revocation: None,
            last_end_session: None,
            last_device: None,
            codes: HashMap::new(),
            refresh_tokens: HashMap::new(),
            revoked_families: HashSet::new(),
            next_family: 0,
            devices: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_count: 0,
        }
    }
}

impl OpState {
    /// A fresh refresh token family id.
    pub(super) fn new_family(&mut self) -> u64 {
        self.next_family = self.next_family.wrapping_add(1);
        self.next_family
    }

    /// Finds a device authorization by user code, ignoring case and dashes.
    pub(super) fn device_by_user_code(&mut self, user_code: &str) -> Option<&mut DeviceEntry> {
        let wanted = normalize_user_code(user_code);
        self.devices
            .values_mut()
            .find(|device| normalize_user_code(&device.user_code) == wanted)
    }
}

fn normalize_user_code(code: &str) -> String {
    code.chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// `n` random bytes, base64url: codes, refresh tokens, device codes, `jti`s.
pub(super) fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::fill(&mut bytes).expect("MockProvider: the system random number generator failed");
    b64(&bytes)
}

/// A user code like `BDFG-HJKL`, from the RFC 8628 section 6.1 alphabet (no vowels).
pub(super) fn random_user_code() -> String {
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let mut bytes = [0u8; 8];
    rand::fill(&mut bytes).expect("MockProvider: the system random number generator failed");
    let letters: Vec<char> = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    let (first, second) = letters.split_at(4);
    format!(
        "{}-{}",
        first.iter().collect::<String>(),
        second.iter().collect::<String>()
    )
}

/// The PKCE S256 challenge of `verifier`: `b64url(SHA-256(verifier))`.
pub(super) fn s256(verifier: &str) -> String {
    b64(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref())
}

/// RFC 7636 section 4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
pub(super) fn well_formed_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}
