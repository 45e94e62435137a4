//! The PostgreSQL [`Store`] backend (feature `postgres`).
//!
//! Its own SQL and its own versioned migrations: the table `oidc_auth_schema` records which
//! steps ran, and [`Store::migrate`] applies the missing ones in one transaction under
//! `pg_advisory_xact_lock`, so several instances starting at once migrate exactly once.
//!
//! Every value goes to the server as a bound parameter and comes back byte for byte. PostgreSQL
//! `TEXT` cannot hold a NUL character, so a string containing one is refused with
//! [`StoreError::Rejected`] (looked up, it is simply absent); identifiers (session ids, token
//! families, key ids, algorithm names, issuers) longer than [`MAX_IDENTIFIER_BYTES`] are refused
//! the same way, because they are index keys.
//!
//! The pool [`PostgresStore::connect`] builds waits at most four seconds for a connection, so a
//! stopped database answers [`StoreError::Unavailable`] within that time; the pool reconnects
//! on its own once the database is back. Every operation, its wait for a connection
//! included, is bounded by a deadline of 4.5 seconds (sixty for migrations).

use std::future::Future;
use std::time::Duration;

use sqlx::Row as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};

use super::{
    FoundRefresh, RefreshRecord, RotateOutcome, RotationStep, Session, Store, StoreError,
    StoreFuture, StoredKey, rotation_step,
};

pub use super::MAX_IDENTIFIER_BYTES;

/// How long [`PostgresStore::connect`]'s pool waits for a connection before it answers
/// [`StoreError::Unavailable`].
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(4);

const MIGRATION_TIMEOUT: Duration = Duration::from_secs(60);
/// The server-side limits of [`PostgresStore::connect`]'s connections (see [`with_limits`]).
const SESSION_LIMITS: [(&str, &str); 4] = [
    // Below the 4.5 s within which every store call answers: the server gives up on a
    // statement when the store does, instead of working on (and holding a pooled connection,
    // which sqlx waits for) after the caller was told 503.
    ("statement_timeout", "4000"),
    // A statement waiting for a lock (an administrator's `LOCK TABLE` or `ALTER TABLE`) gives
    // up sooner still, so that one table held does not take the pool's every connection.
    ("lock_timeout", "3000"),
    ("idle_in_transaction_session_timeout", "10000"),
    // Whatever the server's or the role's default: the store's transactions are written for
    // READ COMMITTED (a lock, then a read that sees what the lock's last holder committed).
    ("default_transaction_isolation", "read\\ committed"),
];
const MAX_CONNECTIONS: u32 = 10;
/// Attempts of a transaction that failed with a deadlock or a serialization failure.
const ATTEMPTS: usize = 3;

/// `pg_advisory_xact_lock` keys ("oidcmigr", "oidckey1" as big-endian ASCII).
const MIGRATION_LOCK: i64 = 0x6f69_6463_6d69_6772;
const FIRST_KEY_LOCK: i64 = 0x6f69_6463_6b65_7931;

/// One schema version: the statements that bring the schema from the previous version to it.
struct Migration {
    version: i64,
    statements: &'static [&'static str],
}

/// The ordered migrations; a new version appends a step, never edits one.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    statements: &[
        r#"CREATE TABLE oidc_auth_sessions (
            id TEXT COLLATE "C" PRIMARY KEY,
            subject TEXT NOT NULL,
            provider_refresh_token BYTEA NOT NULL,
            userinfo TEXT NOT NULL,
            expires_at BIGINT NOT NULL
        )"#,
        "CREATE INDEX oidc_auth_sessions_expires_at ON oidc_auth_sessions (expires_at)",
        r#"CREATE TABLE oidc_auth_refresh_tokens (
            hash BYTEA PRIMARY KEY CHECK (octet_length(hash) = 32),
            family TEXT COLLATE "C" NOT NULL,
            session_id TEXT COLLATE "C" NOT NULL,
            expires_at BIGINT NOT NULL,
            spent BOOLEAN NOT NULL DEFAULT FALSE,
            revoked BOOLEAN NOT NULL DEFAULT FALSE
        )"#,
        "CREATE INDEX oidc_auth_refresh_tokens_family ON oidc_auth_refresh_tokens (family)",
        "CREATE INDEX oidc_auth_refresh_tokens_session_id ON oidc_auth_refresh_tokens (session_id)",
        "CREATE INDEX oidc_auth_refresh_tokens_expires_at ON oidc_auth_refresh_tokens (expires_at)",
        r#"CREATE TABLE oidc_auth_signing_keys (
            kid TEXT COLLATE "C" PRIMARY KEY,
            alg TEXT NOT NULL,
            private_key BYTEA NOT NULL,
            public_jwk TEXT NOT NULL,
            published_at BIGINT NOT NULL,
            active_from BIGINT NOT NULL,
            retire_at BIGINT NOT NULL,
            remove_at BIGINT NOT NULL
        )"#,
        r#"CREATE TABLE oidc_auth_peer_jwks (
            issuer TEXT COLLATE "C" PRIMARY KEY,
            jwks TEXT NOT NULL,
            fetched_at BIGINT NOT NULL
        )"#,
        r#"CREATE TABLE oidc_auth_once (
            marker BYTEA PRIMARY KEY CHECK (octet_length(marker) = 32),
            expires_at BIGINT NOT NULL
        )"#,
        "CREATE INDEX oidc_auth_once_expires_at ON oidc_auth_once (expires_at)",
    ],
}];

/// The [`Store`] on PostgreSQL.
///
/// Cloning is cheap and shares the pool.
///
/// ```no_run
/// # async fn demo() -> Result<(), oidc_auth::store::StoreError> {
/// use std::sync::Arc;
/// use oidc_auth::store::{Store, postgres::PostgresStore};
///
/// let store = PostgresStore::connect("postgres://broker@db.internal/broker").await?;
/// store.migrate().await?;
/// let store: Arc<dyn Store> = Arc::new(store);
/// # drop(store);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("size", &self.pool.size())
            .field("idle", &self.pool.num_idle())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database?options`) with a pool of
    /// up to ten connections that waits at most [`ACQUIRE_TIMEOUT`] for one.
    ///
    /// One connection is opened right away, so a wrong URL or an unreachable server shows at
    /// start: an unparsable URL, a refused login or an unreachable server is
    /// [`StoreError::Unavailable`]. Run [`Store::migrate`] before first use. To start while
    /// the database is still down, build a lazy pool yourself and use
    /// [`PostgresStore::from_pool`].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), oidc_auth::store::StoreError> {
    /// let store = oidc_auth::store::postgres::PostgresStore::connect(
    ///     "postgres://broker@127.0.0.1:5432/broker",
    /// )
    /// .await?;
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Its connections have server-side limits: a statement is cancelled after 4 s and a lock
    /// wait after 3 s (the store answers within 4.5 s either way, and the server stops working
    /// for a caller that was answered), a transaction left idle is ended after 10 s, and
    /// transactions are READ COMMITTED whatever the server's default. These override the same
    /// settings in the URL's `options`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse().map_err(|e| map_error(&e))?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(with_limits(options));
        match tokio::time::timeout(ACQUIRE_TIMEOUT + Duration::from_secs(1), pool).await {
            Ok(Ok(pool)) => Ok(Self { pool }),
            Ok(Err(error)) => Err(map_error(&error)),
            Err(_) => Err(StoreError::Unavailable(
                "connecting to PostgreSQL timed out".into(),
            )),
        }
    }

    /// A store on a pool the application built itself (its own size, timeouts, TLS or
    /// `search_path`). Give the pool an `acquire_timeout` of a few seconds so an outage answers
    /// quickly instead of waiting for the thirty-second default.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), sqlx::Error> {
    /// use std::time::Duration;
    /// use sqlx::postgres::PgPoolOptions;
    /// use oidc_auth::store::postgres::PostgresStore;
    ///
    /// let pool = PgPoolOptions::new()
    ///     .max_connections(20)
    ///     .acquire_timeout(Duration::from_secs(3))
    ///     .connect_lazy("postgres://broker@127.0.0.1/broker")?;
    /// let store = PostgresStore::from_pool(pool);
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool this store uses, for health checks or closing it on shutdown.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), oidc_auth::store::StoreError> {
    /// let store = oidc_auth::store::postgres::PostgresStore::connect("postgres://broker@127.0.0.1/broker").await?;
    /// store.pool().close().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn migrate_now(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| map_error(&e))?;
        let result: Result<(), StoreError> = async {
            // Migrations may wait for another instance's and build indexes on large tables:
            // bounded by MIGRATION_TIMEOUT, not by the limits of ordinary statements. READ
            // COMMITTED, so that the version read after the lock is the last holder's.
            for setting in [
                "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
                "SET LOCAL statement_timeout = 0",
                "SET LOCAL lock_timeout = 0",
            ] {
                sqlx::query(setting)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| map_error(&e))?;
            }
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_error(&e))?;
            sqlx::query("CREATE TABLE IF NOT EXISTS oidc_auth_schema (version BIGINT PRIMARY KEY)")
                .execute(&mut *tx)
                .await
                .map_err(|e| map_error(&e))?;
            let current: i64 =
                sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM oidc_auth_schema")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| map_error(&e))?;
            crate::store::check_version(
                "PostgreSQL",
                current,
                MIGRATIONS.last().map_or(0, |m| m.version),
            )?;
            for step in MIGRATIONS.iter().filter(|m| m.version > current) {
                for statement in step.statements {
                    sqlx::query(statement)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| map_error(&e))?;
                }
                sqlx::query("INSERT INTO oidc_auth_schema (version) VALUES ($1)")
                    .bind(step.version)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| map_error(&e))?;
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => tx.commit().await.map_err(|e| map_error(&e)),
            Err(error) => {
                // Dropping the transaction would roll back too; doing it here frees the lock now.
                let _ = tx.rollback().await;
                Err(error)
            }
        }
    }
}

/// Runs a transaction again when it lost a deadlock or a serialization conflict.
async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if tries < ATTEMPTS && is_retryable(&error) => {
                tracing::debug!(code = ?sqlstate(&error), "retrying a PostgreSQL transaction");
            }
            Err(error) => return Err(map_error(&error)),
        }
    }
}

fn sqlstate(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

fn is_retryable(error: &sqlx::Error) -> bool {
    matches!(sqlstate(error).as_deref(), Some("40001" | "40P01"))
}

/// Maps a driver error to a [`StoreError`]. Only the SQLSTATE travels: server messages can quote
/// the offending value.
/// `options` with [`SESSION_LIMITS`], after (so over) any the URL set.
fn with_limits(options: PgConnectOptions) -> PgConnectOptions {
    options.options(SESSION_LIMITS)
}

fn map_error(error: &sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match error {
        E::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.get(..2) {
                // Data exceptions (too long, bad encoding, NUL), integrity violations (duplicate
                // key), program limits (index row too large).
                Some("22") => {
                    StoreError::Rejected(format!("PostgreSQL refused the value (SQLSTATE {code})"))
                }
                Some("23") => StoreError::Rejected(format!(
                    "the value conflicts with a stored one (SQLSTATE {code})"
                )),
                Some("54") => StoreError::Rejected(format!(
                    "the value is too large for PostgreSQL (SQLSTATE {code})"
                )),
                // Connection exceptions, insufficient resources, operator intervention,
                // transaction rollbacks (after retries), lock timeouts.
                Some("08" | "53" | "57" | "40" | "55" | "58") => {
                    StoreError::Unavailable(format!("PostgreSQL is unavailable (SQLSTATE {code})"))
                }
                // Undefined table or column: the schema is missing or not ours.
                _ if code == "42P01" || code == "42703" => StoreError::Corrupt(format!(
                    "the PostgreSQL schema does not match; run migrate (SQLSTATE {code})"
                )),
                _ => StoreError::Unavailable(format!("PostgreSQL failed (SQLSTATE {code})")),
            }
        }
        E::PoolTimedOut => {
            StoreError::Unavailable("no PostgreSQL connection within the acquire timeout".into())
        }
        E::PoolClosed => StoreError::Unavailable("the PostgreSQL pool is closed".into()),
        E::Io(_) => StoreError::Unavailable("PostgreSQL connection failed (I/O error)".into()),
        E::Tls(_) => StoreError::Unavailable("PostgreSQL TLS failed".into()),
        E::Protocol(_) => StoreError::Unavailable("PostgreSQL protocol error".into()),
        E::WorkerCrashed => {
            StoreError::Unavailable("the PostgreSQL connection worker crashed".into())
        }
        E::Configuration(_) => {
            StoreError::Unavailable("the PostgreSQL connection settings are invalid".into())
        }
        E::RowNotFound
        | E::ColumnNotFound(_)
        | E::ColumnIndexOutOfBounds { .. }
        | E::ColumnDecode { .. }
        | E::Decode(_)
        | E::TypeNotFound { .. } => {
            StoreError::Corrupt("a PostgreSQL row cannot be read back".into())
        }
        _ => StoreError::Unavailable("PostgreSQL failed".into()),
    }
}

/// Whether `value` can be stored as `TEXT` (no NUL character).
fn storable_text(value: &str) -> bool {
    !value.as_bytes().contains(&0)
}

/// Whether `value` can be stored as an identifier (`TEXT`, indexed).
fn storable_identifier(value: &str) -> bool {
    value.len() <= MAX_IDENTIFIER_BYTES && storable_text(value)
}

fn check_text(field: &str, value: &str) -> Result<(), StoreError> {
    if storable_text(value) {
        Ok(())
    } else {
        Err(StoreError::Rejected(format!(
            "{field} contains a NUL character, which PostgreSQL text cannot hold"
        )))
    }
}

fn check_identifier(field: &str, value: &str) -> Result<(), StoreError> {
    check_text(field, value)?;
    crate::store::check_identifier(field, value)
}

fn check_session(session: &Session) -> Result<(), StoreError> {
    check_identifier("the session id", &session.id)?;
    check_text("the subject", &session.subject)?;
    check_text("the userinfo", &session.userinfo)
}

fn check_refresh(record: &RefreshRecord) -> Result<(), StoreError> {
    check_identifier("the token family", &record.family)?;
    check_identifier("the session id", &record.session_id)
}

fn check_key(key: &StoredKey) -> Result<(), StoreError> {
    check_identifier("the key id", &key.kid)?;
    check_identifier("the algorithm", &key.alg)?;
    check_text("the public JWK", &key.public_jwk)
}

fn session_from_row(row: &PgRow) -> Result<Session, sqlx::Error> {
    Ok(Session {
        id: row.try_get("id")?,
        subject: row.try_get("subject")?,
        provider_refresh_token: row.try_get("provider_refresh_token")?,
        userinfo: row.try_get("userinfo")?,
        expires_at: row.try_get("expires_at")?,
    })
}

fn key_from_row(row: &PgRow) -> Result<StoredKey, sqlx::Error> {
    Ok(StoredKey {
        kid: row.try_get("kid")?,
        alg: row.try_get("alg")?,
        private_key: row.try_get("private_key")?,
        public_jwk: row.try_get("public_jwk")?,
        published_at: row.try_get("published_at")?,
        active_from: row.try_get("active_from")?,
        retire_at: row.try_get("retire_at")?,
        remove_at: row.try_get("remove_at")?,
    })
}

async fn insert_refresh_row(
    conn: &mut PgConnection,
    record: &RefreshRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO oidc_auth_refresh_tokens (hash, family, session_id, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&record.hash[..])
    .bind(&record.family)
    .bind(&record.session_id)
    .bind(record.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_key_row(conn: &mut PgConnection, key: &StoredKey) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO oidc_auth_signing_keys \
         (kid, alg, private_key, public_jwk, published_at, active_from, retire_at, remove_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&key.kid)
    .bind(&key.alg)
    .bind(&key.private_key)
    .bind(&key.public_jwk)
    .bind(key.published_at)
    .bind(key.active_from)
    .bind(key.retire_at)
    .bind(key.remove_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// One attempt of [`Store::rotate_refresh`]: lock the old row, decide, write, commit.
async fn rotate_once(
    pool: &PgPool,
    old: &[u8; 32],
    new: &[u8; 32],
    now: i64,
) -> Result<RotateOutcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "SELECT family, session_id, expires_at, spent, revoked FROM oidc_auth_refresh_tokens \
         WHERE hash = $1 FOR UPDATE",
    )
    .bind(&old[..])
    .fetch_optional(&mut *tx)
    .await?;
    let found = row
        .map(|row| FoundRefresh::from_row(old, &row))
        .transpose()?;
    match rotation_step(found, new, now) {
        RotationStep::Refuse => {
            tx.rollback().await?;
            Ok(RotateOutcome::NotFound)
        }
        RotationStep::Spent(record) => {
            tx.rollback().await?;
            Ok(RotateOutcome::Spent(record))
        }
        RotationStep::Rotate {
            spent,
            successor,
            spent_until,
        } => {
            sqlx::query(
                "UPDATE oidc_auth_refresh_tokens SET spent = TRUE, expires_at = $2 WHERE hash = $1",
            )
            .bind(&old[..])
            .bind(spent_until)
            .execute(&mut *tx)
            .await?;
            insert_refresh_row(&mut tx, &successor).await?;
            tx.commit().await?;
            Ok(RotateOutcome::Rotated(spent))
        }
    }
}

/// One attempt of [`Store::insert_first_key`], serialized by an advisory transaction lock.
async fn insert_first_key_once(
    pool: &PgPool,
    key: &StoredKey,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Also on a pool the application built (`from_pool`), whose default may be stricter: under
    // REPEATABLE READ the check below would not see a key another instance inserted while this
    // one waited for the lock, and both would insert a first key.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(FIRST_KEY_LOCK)
        .execute(&mut *tx)
        .await?;
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM oidc_auth_signing_keys WHERE retire_at > $1)",
    )
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    if exists {
        tx.rollback().await?;
        return Ok(false);
    }
    insert_key_row(&mut tx, key).await?;
    tx.commit().await?;
    Ok(true)
}

async fn delete_session_once(pool: &PgPool, id: &str) -> Result<Option<Session>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM oidc_auth_refresh_tokens WHERE session_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let session = sqlx::query(
        "DELETE FROM oidc_auth_sessions WHERE id = $1 \
         RETURNING id, subject, provider_refresh_token, userinfo, expires_at",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .as_ref()
    .map(session_from_row)
    .transpose()?;
    tx.commit().await?;
    Ok(session)
}

/// Deletes what expired at `now`, in batches of at most [`PURGE_BATCH`](crate::store::PURGE_BATCH)
/// rows that commit one by one. The expiry is tested again on the row the delete finds: a row
/// a concurrent write took over after the batch was chosen (a one-time marker renewed, say) is
/// live again and stays, which the row id alone would not tell.
async fn purge(pool: &PgPool, now: i64) -> Result<u64, StoreError> {
    let statements = [
        "DELETE FROM oidc_auth_sessions WHERE expires_at <= $1 AND ctid = ANY(ARRAY(\
         SELECT ctid FROM oidc_auth_sessions WHERE expires_at <= $1 LIMIT $2))",
        "DELETE FROM oidc_auth_refresh_tokens WHERE expires_at <= $1 AND ctid = ANY(ARRAY(\
         SELECT ctid FROM oidc_auth_refresh_tokens WHERE expires_at <= $1 LIMIT $2))",
        "DELETE FROM oidc_auth_signing_keys WHERE remove_at <= $1 AND ctid = ANY(ARRAY(\
         SELECT ctid FROM oidc_auth_signing_keys WHERE remove_at <= $1 LIMIT $2))",
        "DELETE FROM oidc_auth_once WHERE expires_at <= $1 AND ctid = ANY(ARRAY(\
         SELECT ctid FROM oidc_auth_once WHERE expires_at <= $1 LIMIT $2))",
    ];
    crate::store::purge_in_batches(statements, |statement| {
        retrying(move || async move {
            Ok(sqlx::query(statement)
                .bind(now)
                .bind(crate::store::PURGE_BATCH as i64)
                .execute(pool)
                .await?
                .rows_affected())
        })
    })
    .await
}

impl Store for PostgresStore {
    fn migrate(&self) -> StoreFuture<'_, ()> {
        Box::pin(crate::store::bounded(
            "PostgreSQL",
            MIGRATION_TIMEOUT,
            self.migrate_now(),
        ))
    }

    fn put_session(&self, session: &Session) -> StoreFuture<'_, ()> {
        let session = session.clone();
        Box::pin(crate::store::bounded(
            "PostgreSQL",
            crate::store::OPERATION_TIMEOUT,
            async move {
                check_session(&session)?;
                sqlx::query(
                "INSERT INTO oidc_auth_sessions (id, subject, provider_refresh_token, userinfo, expires_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (id) DO UPDATE SET subject = EXCLUDED.subject, \
                 provider_refresh_token = EXCLUDED.provider_refresh_token, \
                 userinfo = EXCLUDED.userinfo, expires_at = EXCLUDED.expires_at",
            )
            .bind(&session.id)
            .bind(&session.subject)
            .bind(&session.provider_refresh_token)
            .bind(&session.userinfo)
            .bind(session.expires_at)
            .execute(&self.pool)
            .await
            .map_err(|e| map_error(&e))?;
                Ok(())
            },
        ))
    }

    fn update_session(&self, session: &Session, now: i64) -> StoreFuture<'_, bool> {
        let session = session.clone();
        Box::pin(crate::store::bounded(
            "PostgreSQL",
            crate::store::OPERATION_TIMEOUT,
            async move {
                if !storable_identifier(&session.id) {
                    return Ok(false);
                }
                check_session(&session)?;
                let updated = sqlx::query(
                    "UPDATE oidc_auth_sessions SET provider_refresh_token = $1, userinfo = $2 \
                     WHERE id = $3 AND expires_at > $4",
                )
                .bind(&session.provider_refresh_token)
                .bind(&session.userinfo)
                .bind(&session.id)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(|e| map_error(&e))?
                .rows_affected();
                Ok(updated > 0)
            },
        ))
    }

    fn get_session(&self, id: &str, now: i64) -> StoreFuture<'_, Option<Session>> {
        let id = id.to_owned();
        Box::pin(crate::store::bounded(
            "PostgreSQL",
            crate::store::OPERATION_TIMEOUT,
            async move {
                if !storable_identifier(&id) {
                    return Ok(None);
                }
                let row = sqlx::query(
                    "SELECT id, subject, provider_refresh_token, userinfo, expires_at \
                 FROM oidc_auth_sessions WHERE id = $1 AND expires_at > $2",
                )
                .bind(&id)
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| map_error(&e))?;
                row.as_ref()
                    .map(session_from_row)
                    .transpose()
                    .map_err(|e| map_error(&e))
            },
        ))
    }

    fn delete_session(&self, id: &str) -> StoreFuture<'_, Option<Session>> {
        let id = id.to_owned();
        Box::pin(crate::store::bounded(
            "PostgreSQL",
            crate::store::OPERATION_TIMEOUT,
            async move {
                if !storable_identifier(&id) {
                    return Ok(None);
                }
                retrying(|| delete_session_once(&self.pool, &id)).await
            },
        ))
    }

    fn insert_refresh(&self, record: &RefreshRecord) -> StoreFuture<'_, ()> {
        let record = record.clone();
        Box::pin(crate::store::bounded(
            "PostgreSQL",
            crate::store::OPERATION_TIMEOUT,
            async move {
                check_refresh(&record)?;
                let mut conn = self.pool.acquire().await.map_err(|e| map_error(&e))?;
                insert_refresh_row(&mut conn, &record)
                    .await
                    .map_err(|e| map_error(&e))
            },
        ))
    }

    fn rotate_refresh(
        &self,
        old: &[u8; 32],
        new: &[u8; 32],
        now: i64,
    ) -> StoreFuture<'_, RotateOutcome> {
        let old = *old;
        let new = *new;
        Box::pin(crate::store::bounded(
            "PostgreSQL",
            crate::store::OPERATION_TIMEOUT,
            async move { retrying(|| rotate_once(&self.pool, &old, &new, now)).await },
        ))
    }

    fn revoke_family(&self, family: &str) -> StoreFuture<'_, ()> {
        let family = family.to_owned();
        Box::pin(crate::store::bounded(
            "PostgreSQL",
            crate::store::REVOCATION_TIMEOUT,
            async move {
                if !storable_identifier(&family) {
                    return Ok(());
                }
                for _ in 0..crate::store::REVOCATION_PASSES {
                    let revoked = retrying(|| {
                        sqlx::query(
                            "UPDATE oidc_auth_refresh_tokens SET revoked = TRUE \
                             WHERE family = $1 AND NOT revoked",
                        )
                        .bind(&family)
                        .execute(&self.pool)
                    })
                    .await?
                    .rows_affected();
                    if revoked == 0 {
                        break;
                    }
                }
                Ok(())
            },
        ))
    }

    fn list_keys(&self) -> StoreFuture<'_, Vec<StoredKey>> {
        Box::pin(crate::store::bounded(
            "PostgreSQL",
            crate::store::OPERATION_TIMEOUT,
            async move {
                let rows = sqlx::query(
                "SELECT kid, alg, private_key, public_jwk, published_at, active_from, retire_at, remove_at \
                 FROM oidc_auth_signing_keys ORDER BY published_at, kid",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(|e| map_error(&e))?;
                rows.iter()
                    .map(key_from_row)
                    .collect::<Result<_, _>>()
                    .map_err(|e| map_error(&e))
            },
        ))
    }

    fn insert_first_key(&self, key: &StoredKey, now: i64) -> StoreFuture<'_, bool> {
        let key = key.clone();
        Box::pin(crate::store::bounded(
            "PostgreSQL",
            crate::store::OPERATION_TIMEOUT,
            async move {
                check_key(&key)?;
                retrying(|| insert_first_key_once(&self.pool, &key, now)).await
            },
        ))
    }

    fn insert_key(&self, key: &StoredKey) -> StoreFuture<'_, ()> {
        let key = key.clone();
        Box::pin(crate::store::bounded(
            "PostgreSQL",
            crate::store::OPERATION_TIMEOUT,
            async move {
                check_key(&key)?;
                let mut conn = self.pool.acquire().await.map_err(|e| map_error(&e))?;
                insert_key_row(&mut conn, &key)
                    .await
                    .map_err(|e| map_error(&e))
            },
        ))
    }

    fn delete_key(&self, kid: &str) -> StoreFuture<'_, ()> {
        let kid = kid.to_owned();
        Box::pin(crate::store::bounded(
            "PostgreSQL",
            crate::store::OPERATION_TIMEOUT,
            async move {
                if !storable_identifier(&kid) {
                    return Ok(());
                }
                sqlx::query("DELETE FROM oidc_auth_signing_keys WHERE kid = $1")
                    .bind(&kid)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| map_error(&e))?;
                Ok(())
            },
        ))
    }

    fn put_peer_jwks(&self, issuer: &str, jwks: &str, fetched_at: i64) -> StoreFuture<'_, ()> {
        let issuer = issuer.to_owned();
        let jwks = jwks.to_owned();
        Box::pin(crate::store::bounded(
            "PostgreSQL",
            crate::store::OPERATION_TIMEOUT,
            async move {
                check_identifier("the issuer", &issuer)?;
                check_text("the JWKS", &jwks)?;
                sqlx::query(
                "INSERT INTO oidc_auth_peer_jwks (issuer, jwks, fetched_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (issuer) DO UPDATE SET jwks = EXCLUDED.jwks, fetched_at = EXCLUDED.fetched_at \
                 WHERE EXCLUDED.fetched_at >= oidc_auth_peer_jwks.fetched_at \
                 OR oidc_auth_peer_jwks.fetched_at > EXCLUDED.fetched_at + $4",
            )
            .bind(&issuer)
            .bind(&jwks)
            .bind(fetched_at)
            .bind(crate::store::PEER_JWKS_AHEAD_SECS)
            .execute(&self.pool)
            .await
            .map_err(|e| map_error(&e))?;
                Ok(())
            },
        ))
    }

    fn get_peer_jwks(&self, issuer: &str) -> StoreFuture<'_, Option<(String, i64)>> {
        let issuer = issuer.to_owned();
        Box::pin(crate::store::bounded(
            "PostgreSQL",
            crate::store::OPERATION_TIMEOUT,
            async move {
                if !storable_identifier(&issuer) {
                    return Ok(None);
                }
                sqlx::query_as::<_, (String, i64)>(
                    "SELECT jwks, fetched_at FROM oidc_auth_peer_jwks WHERE issuer = $1",
                )
                .bind(&issuer)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| map_error(&e))
            },
        ))
    }

    fn consume_once(&self, key: &[u8; 32], expires_at: i64, now: i64) -> StoreFuture<'_, bool> {
        let key = *key;
        Box::pin(crate::store::bounded(
            "PostgreSQL",
            crate::store::OPERATION_TIMEOUT,
            async move {
                // Inserted, or an expired marker taken over: a row comes back. A live marker: none.
                let row = sqlx::query(
                    "INSERT INTO oidc_auth_once (marker, expires_at) VALUES ($1, $2) \
                 ON CONFLICT (marker) DO UPDATE SET expires_at = EXCLUDED.expires_at \
                 WHERE oidc_auth_once.expires_at <= $3 \
                 RETURNING 1",
                )
                .bind(&key[..])
                .bind(expires_at)
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| map_error(&e))?;
                Ok(row.is_some())
            },
        ))
    }

    fn is_consumed(&self, key: &[u8; 32], now: i64) -> StoreFuture<'_, bool> {
        let key = *key;
        Box::pin(crate::store::bounded(
            "PostgreSQL",
            crate::store::OPERATION_TIMEOUT,
            async move {
                let row = sqlx::query(
                    "SELECT 1 FROM oidc_auth_once WHERE marker = $1 AND expires_at > $2",
                )
                .bind(&key[..])
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| map_error(&e))?;
                Ok(row.is_some())
            },
        ))
    }

    fn purge_expired(&self, now: i64) -> StoreFuture<'_, u64> {
        Box::pin(crate::store::bounded(
            "PostgreSQL",
            crate::store::PURGE_TIMEOUT,
            purge(&self.pool, now),
        ))
    }
}

#[cfg(test)]
mod tests {
    //! What the conformance suite (`tests/store_conformance.rs`) cannot check from outside:
    //! outages, a stopped server, a schema from a newer version. Skipped unless
    //! `OIDC_AUTH_TEST_POSTGRES_URL` is set; each test works in a schema of its own, dropped at
    //! the end.

    #![allow(clippy::unwrap_used)]

    use super::*;
    use sqlx::Connection as _;
    use sqlx::Executor as _;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn url() -> Option<String> {
        match std::env::var("OIDC_AUTH_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                eprintln!("skipped: OIDC_AUTH_TEST_POSTGRES_URL is not set");
                None
            }
        }
    }

    /// A store whose connections all use a fresh schema, and a closure-free way to drop it.
    async fn scratch(url: &str) -> (PostgresStore, String) {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let schema = format!(
            "oidc_auth_unit_{}_{}_{}",
            std::process::id(),
            nanos % 1_000_000_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = PgPool::connect(url).await.unwrap();
        admin
            .execute(format!("CREATE SCHEMA {schema}").as_str())
            .await
            .unwrap();
        admin.close().await;
        let search_path = schema.clone();
        let pool = PgPoolOptions::new()
            .max_connections(25)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _| {
                let statement = format!("SET search_path TO {search_path}");
                Box::pin(async move {
                    conn.execute(statement.as_str()).await?;
                    Ok(())
                })
            })
            .connect(url)
            .await
            .unwrap();
        let store = PostgresStore::from_pool(pool);
        store.migrate().await.unwrap();
        (store, schema)
    }

    async fn drop_scratch(url: &str, store: PostgresStore, schema: &str) {
        store.pool.close().await;
        let admin = PgPool::connect(url).await.unwrap();
        admin
            .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
            .await
            .unwrap();
        admin.close().await;
    }

    fn session(id: &str) -> Session {
        Session {
            id: id.into(),
            subject: "subject".into(),
            provider_refresh_token: vec![0, 1, 2, 255],
            userinfo: "{}".into(),
            expires_at: 2_000,
        }
    }

    /// A TCP proxy in front of the database that can be switched off (listener closed, every
    /// open connection reset) and on again at the same address: a database outage without
    /// touching the shared server.
    struct Proxy {
        addr: std::net::SocketAddr,
        upstream: std::net::SocketAddr,
        task: Option<tokio::task::JoinHandle<()>>,
    }

    impl Proxy {
        async fn start(upstream: std::net::SocketAddr) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut proxy = Self {
                addr,
                upstream,
                task: None,
            };
            proxy.serve(listener);
            proxy
        }

        fn serve(&mut self, listener: tokio::net::TcpListener) {
            let upstream = self.upstream;
            self.task = Some(tokio::spawn(async move {
                // Dropped with this task: every proxied connection is cut.
                let mut connections = tokio::task::JoinSet::new();
                while let Ok((mut inbound, _)) = listener.accept().await {
                    connections.spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
            }));
        }

        fn down(&mut self) {
            if let Some(task) = self.task.take() {
                task.abort();
            }
        }

        async fn up(&mut self) {
            let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
            self.serve(listener);
        }
    }

    /// The database's address from a test URL (`scheme://user@host:port/...`).
    fn upstream(url: &str) -> std::net::SocketAddr {
        let parsed = url::Url::parse(url).unwrap();
        let host = parsed.host_str().unwrap();
        let port = parsed.port().unwrap();
        std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .unwrap()
            .next()
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outage_is_unavailable_within_the_acquire_timeout_then_recovers() {
        let Some(url) = url() else { return };
        let (store, schema) = scratch(&url).await;
        let mut proxy = Proxy::start(upstream(&url)).await;
        let mut proxied = url::Url::parse(&url).unwrap();
        proxied.set_port(Some(proxy.addr.port())).unwrap();
        proxied
            .query_pairs_mut()
            .append_pair("options[search_path]", &schema);
        let through = PostgresStore::connect(proxied.as_str()).await.unwrap();
        through.put_session(&session("s")).await.unwrap();

        proxy.down();
        for attempt in 0..2 {
            let started = std::time::Instant::now();
            let read = through.get_session("s", 0).await;
            let write = through.put_session(&session("t")).await;
            let elapsed = started.elapsed();
            eprintln!(
                "database down, attempt {attempt}: read {read:?}, write {write:?}, {elapsed:?}"
            );
            assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
            assert!(
                matches!(write, Err(StoreError::Unavailable(_))),
                "{write:?}"
            );
            assert!(
                elapsed < 2 * ACQUIRE_TIMEOUT + Duration::from_secs(2),
                "{elapsed:?}"
            );
        }

        proxy.up().await;
        let started = std::time::Instant::now();
        let read = through.get_session("s", 0).await;
        eprintln!(
            "database back: {:?} after {:?}",
            read.as_ref().map(Option::is_some),
            started.elapsed()
        );
        assert_eq!(read.unwrap().unwrap().id, "s");
        through.put_session(&session("t")).await.unwrap();
        through.pool.close().await;
        proxy.down();
        drop_scratch(&url, store, &schema).await;
    }

    #[tokio::test]
    async fn a_newer_schema_version_is_corrupt() {
        let Some(url) = url() else { return };
        let (store, schema) = scratch(&url).await;
        sqlx::query("INSERT INTO oidc_auth_schema (version) VALUES (99)")
            .execute(&store.pool)
            .await
            .unwrap();
        assert!(matches!(store.migrate().await, Err(StoreError::Corrupt(_))));
        drop_scratch(&url, store, &schema).await;
    }

    /// `connect` gives every connection the server-side limits and READ COMMITTED, over
    /// settings the URL's `options` asked for.
    #[tokio::test]
    async fn connections_carry_the_server_side_limits_whatever_the_url_says() {
        let Some(url) = url() else { return };
        let separator = if url.contains('?') { '&' } else { '?' };
        let asked = "options=-c%20default_transaction_isolation%3Dserializable%20-c%20statement_timeout%3D0";
        let store = PostgresStore::connect(&format!("{url}{separator}{asked}"))
            .await
            .unwrap();
        for (setting, expected) in [
            ("statement_timeout", "4s"),
            ("lock_timeout", "3s"),
            ("idle_in_transaction_session_timeout", "10s"),
            ("default_transaction_isolation", "read committed"),
        ] {
            let value: String = sqlx::query_scalar(&format!("SHOW {setting}"))
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert_eq!(value, expected, "{setting}");
        }
        store.pool.close().await;
    }

    /// A table held by a lock (an administrator's `LOCK TABLE`) for longer than a store call
    /// may take: the calls that need it (as many as the pool has connections) answer 503
    /// within 5 s, and the server gives up on them too, so their connections come back to the
    /// pool and calls on the other tables go on. Without the server-side limits the cancelled
    /// statements kept waiting for the lock, each holding a pooled connection, and with the
    /// pool's ten taken every call was 503.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_locked_table_costs_only_the_calls_that_need_it() {
        let Some(url) = url() else { return };
        let (scratch_store, schema) = scratch(&url).await;
        let options: PgConnectOptions = url.parse().unwrap();
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(with_limits(options).options([("search_path", schema.as_str())]))
            .await
            .unwrap();
        let store = std::sync::Arc::new(PostgresStore::from_pool(pool));
        store.put_session(&session("s")).await.unwrap();

        let mut admin = PgConnection::connect(&url).await.unwrap();
        admin.execute("BEGIN").await.unwrap();
        admin
            .execute(
                format!("LOCK TABLE {schema}.oidc_auth_sessions IN ACCESS EXCLUSIVE MODE").as_str(),
            )
            .await
            .unwrap();
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..MAX_CONNECTIONS {
            let store = store.clone();
            calls.spawn(async move {
                let started = std::time::Instant::now();
                let result = store.get_session("s", 1_000).await;
                (result, started.elapsed())
            });
        }
        while let Some(done) = calls.join_next().await {
            let (result, took) = done.unwrap();
            assert!(
                matches!(result, Err(StoreError::Unavailable(_))),
                "{result:?}"
            );
            assert!(took < Duration::from_secs(5), "{took:?}");
        }
        // The lock is still held; the signing keys' table is free.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = std::time::Instant::now();
        let keys = store.list_keys().await;
        assert!(keys.is_ok(), "{keys:?} after {:?}", started.elapsed());
        // Well within the acquire timeout, which a pool with no connection to give waits out.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        admin.execute("ROLLBACK").await.unwrap();
        assert!(store.get_session("s", 1_000).await.unwrap().is_some());
        // Bounded: sqlx's close waits for every connection it handed out, and one whose call
        // was cut off at the deadline may never come back.
        let _ = tokio::time::timeout(Duration::from_secs(10), store.pool.close()).await;
        drop_scratch(&url, scratch_store, &schema).await;
    }

    #[tokio::test]
    async fn stopped_server_is_unavailable_quickly() {
        // Nothing listens on port 1: refused connections are retried until the acquire timeout.
        let started = std::time::Instant::now();
        let result = PostgresStore::connect("postgres://postgres@127.0.0.1:1/test").await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(7));
    }
}
