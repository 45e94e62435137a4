//! Server-side state of broker mode: sessions, rotating refresh tokens, signing keys, peer key
//! sets and one-time markers, behind one object-safe [`Store`] trait with a backend per
//! database.
//!
//! The store keeps bytes and strings verbatim and uses bound parameters only; encryption of
//! secrets at rest happens before anything reaches it, so a backend never sees a plaintext
//! provider refresh token or private key when an encryption key is configured.

use std::future::Future;
use std::pin::Pin;

#[cfg(feature = "testing")]
pub mod conformance;
pub mod memory;
#[cfg(feature = "mongodb")]
pub mod mongodb;
#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// The longest identifier (session id, token family, key id, algorithm name, peer issuer), in
/// bytes, that every backend stores; longer ones are [`StoreError::Rejected`] (and, looked up,
/// simply absent), because identifiers are index keys.
pub const MAX_IDENTIFIER_BYTES: usize = 1024;

/// Whether `value` fits an identifier column.
#[cfg_attr(not(any(feature = "sqlite", feature = "mongodb")), allow(dead_code))]
pub(crate) fn storable_identifier(value: &str) -> bool {
    value.len() <= MAX_IDENTIFIER_BYTES
}

/// [`StoreError::Rejected`] for an identifier longer than [`MAX_IDENTIFIER_BYTES`].
pub(crate) fn check_identifier(field: &str, value: &str) -> Result<(), StoreError> {
    if storable_identifier(value) {
        Ok(())
    } else {
        Err(StoreError::Rejected(format!(
            "{field} is {} bytes long; at most {MAX_IDENTIFIER_BYTES} are stored",
            value.len()
        )))
    }
}

/// Refuses a schema at a version newer than `latest`, the last one this library knows.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mongodb")),
    allow(dead_code)
)]
pub(crate) fn check_version(database: &str, current: i64, latest: i64) -> Result<(), StoreError> {
    if current > latest {
        return Err(StoreError::Corrupt(format!(
            "the {database} schema is at version {current}, newer than version {latest} this library knows"
        )));
    }
    Ok(())
}

/// How long one store call may take in all, its wait for a connection included. A database
/// that stops answering mid-operation costs a request at most this long, so its 503 arrives
/// within 5 s with the request's own handling.
pub(crate) const OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(4_500);

/// How long the revocation of a refresh family may take: it repeats until no live token of the
/// family is left, which may take longer than one call under contention. The broker runs it in
/// a task of its own, so a request that stops waiting does not cut it short.
#[cfg(any(
    feature = "postgres",
    feature = "sqlite",
    feature = "mysql",
    feature = "mongodb"
))]
pub(crate) const REVOCATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Rows one purge statement deletes at most. Each batch commits on its own, so a purge of a
/// large backlog keeps its progress when its deadline strikes, and holds its locks (SQLite's
/// whole database, InnoDB's rows and gaps) only for one batch at a time.
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "mongodb"
    )),
    allow(dead_code)
)]
pub(crate) const PURGE_BATCH: u64 = 500;

/// Runs `batch` with each of `statements` (one per table, each deleting at most
/// [`PURGE_BATCH`] expired rows) until it deletes fewer than a batch; the rows deleted in all.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) async fn purge_in_batches<E, F, Fut>(
    statements: [&'static str; 4],
    mut batch: F,
) -> Result<u64, E>
where
    F: FnMut(&'static str) -> Fut,
    Fut: Future<Output = Result<u64, E>>,
{
    let mut removed = 0;
    for statement in statements {
        loop {
            let deleted = batch(statement).await?;
            removed += deleted;
            if deleted < PURGE_BATCH {
                break;
            }
        }
    }
    Ok(removed)
}

/// How long a purge may take in all. It runs in the background, batch after batch, so it may
/// take longer than a request's store call; what it deleted before this stays deleted.
#[cfg(any(
    feature = "postgres",
    feature = "sqlite",
    feature = "mysql",
    feature = "mongodb"
))]
pub(crate) const PURGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Bounds `operation` by `limit`: a database that stops answering mid-operation becomes
/// [`StoreError::Unavailable`] instead of a hang.
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "mongodb"
    )),
    allow(dead_code)
)]
pub(crate) async fn bounded<T>(
    database: &str,
    limit: std::time::Duration,
    operation: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, operation).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable(format!(
            "{database} did not answer within {:.1} s",
            limit.as_secs_f64()
        ))),
    }
}

/// The future every [`Store`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store failure. Nothing secret is ever part of it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached, or did not answer in time: callers answer 503.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The input cannot be stored (too long, or not representable by the backend): 400.
    #[error("the value cannot be stored: {0}")]
    Rejected(String),
    /// The store holds something it cannot read back (a schema from a newer version).
    #[error("the store is inconsistent: {0}")]
    Corrupt(String),
}

/// A broker session: the provider-side identity behind the tokens this server minted.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// Session id (the `sid` of minted tokens).
    pub id: String,
    /// The provider's subject.
    pub subject: String,
    /// The provider refresh token, sealed (AEAD, with the session's id, subject, userinfo and
    /// expiry as associated data, so that a row whose subject, claims or expiry were changed
    /// does not open).
    pub provider_refresh_token: Vec<u8>,
    /// Cached userinfo / claims, JSON.
    pub userinfo: String,
    /// Unix seconds after which the session is gone.
    pub expires_at: i64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("subject", &self.subject)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// One broker refresh token, stored by the SHA-256 of its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshRecord {
    /// SHA-256 of the token.
    pub hash: [u8; 32],
    /// The rotation chain it belongs to; reuse of a spent token revokes the whole family.
    pub family: String,
    /// The session it refreshes.
    pub session_id: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// What [`Store::rotate_refresh`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The old token was live; it is now spent and the new one is stored. Carries the old record.
    Rotated(RefreshRecord),
    /// The old token was already spent; nothing changed. Carries its record. Whether this is
    /// reuse, which revokes the family ([`Store::revoke_family`]), or a request concurrent with
    /// the rotation that spent it, the caller decides.
    Spent(RefreshRecord),
    /// Unknown, expired or revoked.
    NotFound,
}

/// A refresh token as a rotation finds it (the row locked by the backend).
pub(crate) struct FoundRefresh {
    pub(crate) record: RefreshRecord,
    pub(crate) spent: bool,
    pub(crate) revoked: bool,
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl FoundRefresh {
    /// The token under hash `old` as an sqlx backend reads it: the columns `family`,
    /// `session_id`, `expires_at`, `spent` and `revoked` of its row.
    pub(crate) fn from_row<R>(old: &[u8; 32], row: &R) -> Result<Self, sqlx::Error>
    where
        R: sqlx::Row,
        for<'c> &'c str: sqlx::ColumnIndex<R>,
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        Ok(Self {
            record: RefreshRecord {
                hash: *old,
                family: row.try_get("family")?,
                session_id: row.try_get("session_id")?,
                expires_at: row.try_get("expires_at")?,
            },
            spent: row.try_get("spent")?,
            revoked: row.try_get("revoked")?,
        })
    }
}

/// How long, in seconds, a spent refresh token stays on record after its rotation: long
/// enough for a request concurrent with the rotation, or the retry of one whose answer was
/// lost, to be told it was spent. After that a spent token is simply not found, and a purge
/// deletes it, so a session keeps a few rows however often it is refreshed instead of one per
/// refresh for its whole lifetime. More than the longest a rotation's answer can take (the
/// provider call is bounded by a timeout of at most 300 seconds).
pub const SPENT_REFRESH_KEPT: i64 = 3600;

/// How far a stored peer key set may be dated after a later write's `fetched_at` and still be
/// kept over it (see [`Store::put_peer_jwks`]): the longest clock leeway.
pub const PEER_JWKS_AHEAD_SECS: i64 = 300;

/// Until when a token expiring at `expires_at` and spent at `now` stays on record: see
/// [`SPENT_REFRESH_KEPT`].
pub fn spent_until(expires_at: i64, now: i64) -> i64 {
    expires_at.min(now.saturating_add(SPENT_REFRESH_KEPT))
}

/// What a rotation must do with the token it found: the rule every backend applies, written
/// once; each backend only carries it out in its own statements, in one transaction.
pub(crate) enum RotationStep {
    /// Unknown, revoked or expired: change nothing, answer [`RotateOutcome::NotFound`].
    Refuse,
    /// Spent: change nothing, answer [`RotateOutcome::Spent`] with its record.
    Spent(RefreshRecord),
    /// Live: mark `spent` spent with `spent_until` as its expiry, store `successor` (same
    /// family, session and expiry), answer [`RotateOutcome::Rotated`] with `spent`.
    Rotate {
        spent: RefreshRecord,
        successor: RefreshRecord,
        spent_until: i64,
    },
}

/// The [`RotationStep`] for the token found under the old hash, with `new` as the successor's.
pub(crate) fn rotation_step(found: Option<FoundRefresh>, new: &[u8; 32], now: i64) -> RotationStep {
    let Some(found) = found else {
        return RotationStep::Refuse;
    };
    if found.revoked || found.record.expires_at <= now {
        return RotationStep::Refuse;
    }
    if found.spent {
        return RotationStep::Spent(found.record);
    }
    let successor = RefreshRecord {
        hash: *new,
        ..found.record.clone()
    };
    RotationStep::Rotate {
        spent_until: spent_until(found.record.expires_at, now),
        spent: found.record,
        successor,
    }
}

/// Most statements a family revocation runs. Each revokes the live tokens of the family it
/// sees; a rotation that committed while one waited on its token added a successor that
/// statement could not see (PostgreSQL re-checks only the rows it found, and InnoDB may make
/// one of the two lose a deadlock), and the next statement revokes it. A rotation that comes
/// later finds its token revoked and is refused, so the statements end when one revokes
/// nothing, after two in practice.
#[cfg(any(feature = "postgres", feature = "mysql", feature = "mongodb"))]
pub(crate) const REVOCATION_PASSES: usize = 4;

/// A broker signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Key id, unique.
    pub kid: String,
    /// JOSE algorithm name.
    pub alg: String,
    /// The private key (PKCS#8), sealed when an encryption key is configured.
    pub private_key: Vec<u8>,
    /// The public JWK, JSON: a copy for inspection. What is published and verifies is the
    /// public key that `private_key` implies, so a row whose copy was changed keeps its key.
    pub public_jwk: String,
    /// Published from this time on.
    pub published_at: i64,
    /// Signs from this time on (after it has been published long enough to be fetched).
    pub active_from: i64,
    /// No longer signs after this time.
    pub retire_at: i64,
    /// Removed from the JWKS after this time (the longest token it signed has expired).
    pub remove_at: i64,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("active_from", &self.active_from)
            .field("retire_at", &self.retire_at)
            .field("remove_at", &self.remove_at)
            .finish_non_exhaustive()
    }
}

/// Server-side state of broker mode. Object safe: `Arc<dyn Store>` is what the broker holds.
///
/// Every backend passes the same conformance suite. Writes that must be atomic (refresh
/// rotation, the first signing key, one-time markers) are atomic in every backend, also across
/// several server instances sharing a database.
pub trait Store: Send + Sync + 'static {
    /// Creates or upgrades the schema (versioned migrations); idempotent.
    fn migrate(&self) -> StoreFuture<'_, ()>;

    /// Inserts or replaces a session.
    fn put_session(&self, session: &Session) -> StoreFuture<'_, ()>;
    /// Replaces the provider refresh token and userinfo of the stored session `session.id`
    /// if it is alive at `now`; its subject and expiry stay. False when it is gone or expired,
    /// and then nothing is written: a refresh that ran while a logout or a revocation deleted
    /// the session must not bring it back.
    fn update_session(&self, session: &Session, now: i64) -> StoreFuture<'_, bool>;
    /// A session by id, if present and not expired at `now`.
    fn get_session(&self, id: &str, now: i64) -> StoreFuture<'_, Option<Session>>;
    /// Deletes a session and every refresh token of it, and returns the session as it was when
    /// deleted (expired or not), `None` when there was none. Whoever ends a session revokes the
    /// provider refresh token the deletion found: one read before it could miss a token that a
    /// concurrent refresh wrote in between.
    fn delete_session(&self, id: &str) -> StoreFuture<'_, Option<Session>>;

    /// Stores a new refresh token (the first of a family, or after a rotation).
    fn insert_refresh(&self, record: &RefreshRecord) -> StoreFuture<'_, ()>;
    /// Atomically spends the live token with hash `old` and stores its successor with hash `new`
    /// in the same family, for the same session, with the same expiry (a rotation never extends
    /// a session). A token already spent changes nothing and is [`RotateOutcome::Spent`]: of
    /// concurrent rotations of one token exactly one wins, and the others learn it was spent.
    ///
    /// The spent token stays on record only until [`spent_until`] of its expiry and `now` (its
    /// stored expiry becomes that time, and [`RotateOutcome::Spent`] carries it); from then on
    /// it is not found and a purge deletes it. [`RotateOutcome::Rotated`] carries the record as
    /// it was before the rotation.
    fn rotate_refresh(
        &self,
        old: &[u8; 32],
        new: &[u8; 32],
        now: i64,
    ) -> StoreFuture<'_, RotateOutcome>;
    /// Revokes every token of `family`.
    fn revoke_family(&self, family: &str) -> StoreFuture<'_, ()>;

    /// Every stored signing key.
    fn list_keys(&self) -> StoreFuture<'_, Vec<StoredKey>>;
    /// Inserts `key` only if no key is active at `now` or later; true when it was inserted.
    /// Concurrent first starts of several instances thereby agree on one key.
    fn insert_first_key(&self, key: &StoredKey, now: i64) -> StoreFuture<'_, bool>;
    /// Inserts a key (a rotation's successor).
    fn insert_key(&self, key: &StoredKey) -> StoreFuture<'_, ()>;
    /// Deletes a key.
    fn delete_key(&self, kid: &str) -> StoreFuture<'_, ()>;

    /// Stores the JWKS last fetched from a trusted peer issuer: the document, or with an
    /// encryption key configured, the document sealed with it (base64). A set fetched earlier
    /// than the one stored (`fetched_at` below it: another instance's later fetch landed first)
    /// changes nothing, unless the stored one is dated more than [`PEER_JWKS_AHEAD_SECS`] after
    /// it (a clock set back since, or a row edited), which no fetch could otherwise replace.
    fn put_peer_jwks(&self, issuer: &str, jwks: &str, fetched_at: i64) -> StoreFuture<'_, ()>;
    /// The JWKS of a peer issuer and when it was fetched.
    fn get_peer_jwks(&self, issuer: &str) -> StoreFuture<'_, Option<(String, i64)>>;

    /// Records `key` as used until `expires_at`; false if it already was (and has not expired
    /// at `now`). An expired marker is taken over as if absent.
    fn consume_once(&self, key: &[u8; 32], expires_at: i64, now: i64) -> StoreFuture<'_, bool>;
    /// Whether `key` is recorded as used and has not expired at `now`. Only reads: a request
    /// nobody authenticated may ask it.
    fn is_consumed(&self, key: &[u8; 32], now: i64) -> StoreFuture<'_, bool>;

    /// Deletes expired sessions, refresh tokens, keys past `remove_at` and one-time markers;
    /// returns how many rows went.
    fn purge_expired(&self, now: i64) -> StoreFuture<'_, u64>;
}

/// Connects to the store `url` names and brings its schema up to date ([`Store::migrate`]).
///
/// The scheme picks the backend, each behind its cargo feature:
///
/// | URL | backend | feature |
/// |---|---|---|
/// | `sqlite://path/to/file.sqlite3`, `sqlite:///absolute/path`, `sqlite::memory:` | `sqlite::SqliteStore` | `sqlite` |
/// | `postgres://…`, `postgresql://…` | `postgres::PostgresStore` | `postgres` |
/// | `mysql://…`, `mariadb://…` | `mysql::MysqlStore` | `mysql` |
/// | `mongodb://…`, `mongodb+srv://…` | `mongodb::MongoStore` | `mongodb` |
/// | `memory:` | [`memory::MemoryStore`] (this process only; lost at restart) | — |
///
/// A scheme whose feature is off, or one this crate does not know, is
/// [`StoreError::Rejected`] with the fix in the message; a database that cannot be reached is
/// [`StoreError::Unavailable`]. No error ever contains the URL's password.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use oidc_auth::store::{self, StoreError};
///
/// let Err(error) = store::connect("redis://broker:hunter2@cache.internal/0").await else {
///     panic!("redis is no store backend");
/// };
/// assert!(matches!(error, StoreError::Rejected(_)));
/// assert!(!error.to_string().contains("hunter2"));
/// # }
/// ```
///
/// With the `sqlite` feature, a file (and its directory) is created when missing:
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), oidc_auth::store::StoreError> {
/// let store = oidc_auth::store::connect("sqlite:///var/lib/broker/broker.sqlite3").await?;
/// println!("{} signing keys", store.list_keys().await?.len());
/// # Ok(())
/// # }
/// ```
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    let store = connect_backend(url).await;
    let store = match store {
        Ok(store) => store.migrate().await.map(|()| store),
        Err(error) => Err(error),
    };
    store.map_err(|error| redact(error, url))
}

/// Whether `url` names a backend this build can connect to, without connecting (the check a
/// configuration makes at build): its scheme, lower-cased, and the rest after its `:`. The
/// error never shows the URL.
pub(crate) fn check_url(url: &str) -> Result<(String, &str), StoreError> {
    let (scheme, rest) = scheme_of(url)?;
    let usable = match scheme.as_str() {
        "memory" => Ok(()),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(()),
        #[cfg(not(feature = "sqlite"))]
        "sqlite" => Err(feature_off("SQLite", "sqlite")),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(()),
        #[cfg(not(feature = "postgres"))]
        "postgres" | "postgresql" => Err(feature_off("PostgreSQL", "postgres")),
        #[cfg(feature = "mysql")]
        "mysql" | "mariadb" => Ok(()),
        #[cfg(not(feature = "mysql"))]
        "mysql" | "mariadb" => Err(feature_off("MySQL / MariaDB", "mysql")),
        #[cfg(feature = "mongodb")]
        "mongodb" | "mongodb+srv" => Ok(()),
        #[cfg(not(feature = "mongodb"))]
        "mongodb" | "mongodb+srv" => Err(feature_off("MongoDB", "mongodb")),
        _ => Err(unsupported_scheme()),
    };
    usable.map(|()| (scheme, rest))
}

fn unsupported_scheme() -> StoreError {
    StoreError::Rejected(
        "the store URL's scheme is not supported; write sqlite://path, postgres://…, \
         mysql://…, mariadb://… or mongodb://…"
            .into(),
    )
}

/// The scheme of a store URL, lower-cased, and the rest after its `:`.
fn scheme_of(url: &str) -> Result<(String, &str), StoreError> {
    // Only a scheme made of scheme characters counts: whatever precedes the first `:` of a
    // malformed URL may be a password, so it is never echoed.
    match url.split_once(':') {
        Some((scheme, rest))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            Ok((scheme.to_ascii_lowercase(), rest))
        }
        _ => Err(StoreError::Rejected(
            "the store URL has no scheme; write sqlite://path, postgres://…, mysql://…, \
             mariadb://… or mongodb://…"
                .into(),
        )),
    }
}

/// The backend `url` names, connected but not migrated.
async fn connect_backend(url: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    // Refuses what this build cannot connect to: the arms below are the compiled-in backends.
    let (scheme, rest) = check_url(url)?;
    #[cfg_attr(
        not(any(
            feature = "sqlite",
            feature = "postgres",
            feature = "mysql",
            feature = "mongodb"
        )),
        allow(unused_variables)
    )]
    let normalized = |scheme: &str| format!("{scheme}:{rest}");
    match scheme.as_str() {
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(std::sync::Arc::new(
            sqlite::SqliteStore::connect(&normalized("sqlite")).await?,
        )),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(std::sync::Arc::new(
            postgres::PostgresStore::connect(&normalized(&scheme)).await?,
        )),
        #[cfg(feature = "mysql")]
        "mysql" | "mariadb" => Ok(std::sync::Arc::new(
            mysql::MysqlStore::connect(&normalized("mysql")).await?,
        )),
        #[cfg(feature = "mongodb")]
        "mongodb" | "mongodb+srv" => Ok(std::sync::Arc::new(
            mongodb::MongoStore::connect(&normalized(&scheme)).await?,
        )),
        // In-process only: lost at restart and not shared between instances.
        "memory" => {
            tracing::warn!(
                "broker state is kept in memory (store URL `memory:`): sessions and signing keys \
                 are lost at restart and not shared between instances; use it for tests only"
            );
            Ok(std::sync::Arc::new(memory::MemoryStore::new()))
        }
        _ => Err(unsupported_scheme()),
    }
}

/// The error for a backend that is known but not compiled in.
#[cfg(not(all(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "mongodb"
)))]
fn feature_off(database: &str, feature: &str) -> StoreError {
    StoreError::Rejected(format!(
        "the store URL names {database}, but oidc-auth was built without its `{feature}` \
         feature; enable it: oidc-auth = {{ version = \"…\", features = [\"{feature}\"] }}"
    ))
}

/// `error` with the URL's password (raw and percent-decoded) replaced by `***`, whatever a
/// driver put into its message.
fn redact(error: StoreError, url: &str) -> StoreError {
    match error {
        StoreError::Unavailable(text) => StoreError::Unavailable(without_password(text, url)),
        StoreError::Rejected(text) => StoreError::Rejected(without_password(text, url)),
        StoreError::Corrupt(text) => StoreError::Corrupt(without_password(text, url)),
    }
}

/// `text` with the passwords of `url` (raw and percent-decoded) replaced by `***`; `url` itself
/// is how a store URL is shown.
pub(crate) fn without_password(mut text: String, url: &str) -> String {
    for password in passwords_of(url) {
        // The longer raw form first: the decoded one may be part of it.
        let decoded = percent_decoded(&password);
        for secret in [password, decoded].iter().filter(|s| !s.is_empty()) {
            text = text.replace(secret.as_str(), "***");
        }
    }
    text
}

/// Query parameters that carry a password in the URLs the drivers read (`password` for
/// PostgreSQL and MySQL, spellings other tools use, and MongoDB's `authMechanismProperties`,
/// which can hold an AWS session token).
fn is_password_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "authmechanismproperties",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// The passwords of `url` as written (still percent-encoded): the one of its user info, and the
/// values of password-like query parameters (`?password=`, which the PostgreSQL and MySQL
/// drivers accept). Also when the URL does not parse: then everything between the scheme's
/// `//`, the first `:` and the last `@` counts, and every `name=value` pair after a `?`.
fn passwords_of(url: &str) -> Vec<String> {
    let (userinfo, query) = match url::Url::parse(url) {
        Ok(parsed) => (
            parsed.password().map(str::to_owned),
            parsed.query().map(str::to_owned),
        ),
        Err(_) => {
            let userinfo = url
                .split_once("://")
                .and_then(|(_, rest)| rest.rsplit_once('@'))
                .and_then(|(userinfo, _)| userinfo.split_once(':'))
                .map(|(_, password)| password.to_owned());
            (userinfo, url.split_once('?').map(|(_, q)| q.to_owned()))
        }
    };
    let query = query.unwrap_or_default();
    let from_query = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, value)| is_password_parameter(&percent_decoded(name)) && !value.is_empty())
        .map(|(_, value)| value.to_owned());
    userinfo.into_iter().chain(from_query).collect()
}

/// `text` with its `%XX` escapes decoded (invalid UTF-8 replaced).
fn percent_decoded(text: &str) -> String {
    String::from_utf8_lossy(&crate::percent::decoded_bytes(text)).into_owned()
}

/// Where broker mode keeps its SQLite database when no store URL is configured:
/// `<platform data directory>/oidc-auth/broker.sqlite3` (`~/.local/share/oidc-auth/` on Linux,
/// `~/Library/Application Support/oidc-auth/` on macOS, `%APPDATA%\oidc-auth\data\` on
/// Windows), or `oidc-auth-broker.sqlite3` in the working directory when there is no home
/// directory.
///
/// ```
/// let path = oidc_auth::store::default_sqlite_path();
/// assert!(path.ends_with("broker.sqlite3") || path.ends_with("oidc-auth-broker.sqlite3"));
/// ```
#[cfg(feature = "sqlite")]
pub fn default_sqlite_path() -> std::path::PathBuf {
    directories::ProjectDirs::from("", "", "oidc-auth").map_or_else(
        || std::path::PathBuf::from("oidc-auth-broker.sqlite3"),
        |dirs| dirs.data_dir().join("broker.sqlite3"),
    )
}

#[cfg(test)]
mod connect_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn unknown_and_missing_schemes_are_rejected_without_echo() {
        for url in [
            "redis://broker:hunter2@cache.internal/0",
            "hunter2",
            "hunter2@db:5432",
            "sqlite3 hunter2://x",
        ] {
            let error = connect(url).await.err().unwrap();
            assert!(matches!(error, StoreError::Rejected(_)), "{url}: {error}");
            assert!(!error.to_string().contains("hunter2"), "{url}: {error}");
        }
    }

    #[tokio::test]
    async fn disabled_backends_name_their_feature() {
        #[cfg(not(feature = "mongodb"))]
        {
            let error = connect("mongodb+srv://u:hunter2@cluster.example/db")
                .await
                .err()
                .unwrap();
            assert!(error.to_string().contains("`mongodb` feature"), "{error}");
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
        #[cfg(not(feature = "mysql"))]
        {
            let error = connect("MariaDB://u:hunter2@db/x").await.err().unwrap();
            assert!(error.to_string().contains("`mysql` feature"), "{error}");
        }
    }

    #[test]
    fn redaction_removes_raw_and_decoded_passwords() {
        let url = "postgres://u:p%40ss%2Fw0rd@db/x";
        let error = redact(
            StoreError::Unavailable("login failed for p%40ss%2Fw0rd and p@ss/w0rd".into()),
            url,
        );
        assert_eq!(
            error.to_string(),
            "the store is unavailable: login failed for *** and ***"
        );
        // A URL that does not parse still has its password removed.
        let error = redact(
            StoreError::Rejected("bad host in u:pw0rd@[::1".into()),
            "postgres://u:pw0rd@[::1/x",
        );
        assert_eq!(
            error.to_string(),
            "the value cannot be stored: bad host in u:***@[::1"
        );
    }

    /// A password given as a query parameter (`?password=`, which the PostgreSQL and MySQL
    /// drivers read) is masked too, in error texts and in how a store URL is shown, raw and
    /// percent-decoded, also when the URL does not parse.
    #[test]
    fn passwords_in_the_query_are_masked() {
        let url = "postgres://broker@db/broker?sslmode=require&password=hun%40ter2&PassWord=x2";
        assert_eq!(
            without_password(url.to_owned(), url),
            "postgres://broker@db/broker?sslmode=require&password=***&PassWord=***"
        );
        let error = redact(
            StoreError::Unavailable("auth failed for hun@ter2".into()),
            url,
        );
        assert!(!error.to_string().contains("hun@ter2"), "{error}");
        let broken = "mysql://root@[::1/x?password=s3cret";
        assert_eq!(
            without_password(broken.to_owned(), broken),
            "mysql://root@[::1/x?password=***"
        );
        let config = crate::config::MaskedUrl(url.to_owned());
        let shown = format!("{config:?}");
        assert!(!shown.contains("hun") && !shown.contains("x2"), "{shown}");
        assert!(shown.contains("sslmode=require"), "{shown}");
        // MongoDB's AWS authentication takes a session token in `authMechanismProperties`.
        let mongo = "mongodb://AKIA1:s3cret@db/broker?authMechanism=MONGODB-AWS\
                     &authMechanismProperties=AWS_SESSION_TOKEN:FQoGsession";
        let shown = format!("{:?}", crate::config::MaskedUrl(mongo.to_owned()));
        assert!(
            !shown.contains("FQoGsession") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(shown.contains("authMechanism=MONGODB-AWS"), "{shown}");
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn an_unreachable_database_does_not_echo_the_password() {
        let error = connect("postgresql://broker:s3cr3t-pa55@127.0.0.1:1/broker")
            .await
            .err()
            .unwrap();
        assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
        assert!(!error.to_string().contains("s3cr3t-pa55"), "{error}");
    }
}
