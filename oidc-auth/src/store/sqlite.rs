//! The SQLite [`Store`] backend (feature `sqlite`), the embedded default of broker mode.
//!
//! Its own SQL and its own versioned migrations: the table `oidc_auth_schema` records which
//! steps ran, and [`Store::migrate`] applies the missing ones in one `BEGIN IMMEDIATE`
//! transaction (SQLite DDL is transactional), so several processes starting at once on the
//! same file migrate exactly once.
//!
//! The database runs in WAL mode (readers never wait for the writer) with `synchronous=FULL`
//! (a rotation that answered survives a power cut) and a busy timeout of [`BUSY_TIMEOUT`].
//! Every write that reads first (refresh rotation, the first signing key, session deletion,
//! purging) is one `BEGIN IMMEDIATE` transaction, which takes the database's write lock before
//! it reads: concurrent rotations of one token, from tasks of one process or from several
//! processes sharing the file, have exactly one winner.
//!
//! Every value is a bound parameter and comes back byte for byte, NUL characters included;
//! tables are `STRICT` and text is compared byte by byte (SQLite's `BINARY` collation), so
//! `"a "` is not `"a"`. Identifiers (session ids, token families, key ids, algorithm names,
//! issuers) longer than [`MAX_IDENTIFIER_BYTES`] are [`StoreError::Rejected`], as in every
//! backend.
//!
//! A file the store creates, and the directories leading to it, are readable by the owner
//! only (on Unix): it holds the broker's signing keys. Every operation is bounded by a deadline
//! of five seconds (sixty for migrations).

use std::future::Future;
use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::Row as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};

use super::{
    FoundRefresh, RefreshRecord, RotateOutcome, RotationStep, Session, Store, StoreError,
    StoreFuture, StoredKey, rotation_step,
};

pub use super::MAX_IDENTIFIER_BYTES;

/// How long a statement waits for another connection's write lock before it answers
/// [`StoreError::Unavailable`]: well within the deadline of a whole call, so a statement gives
/// up on its own instead of being cut off while its write may still go through.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the pool waits for a free connection before it answers
/// [`StoreError::Unavailable`].
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(4);

const MIGRATION_TIMEOUT: Duration = Duration::from_secs(60);
/// Readers run in parallel in WAL mode; writers take turns whatever the pool size.
const MAX_CONNECTIONS: u32 = 8;
/// Attempts of a transaction that found the database busy.
const ATTEMPTS: usize = 5;
/// The statement that starts every read-then-write transaction: take the write lock first.
const BEGIN_IMMEDIATE: &str = "BEGIN IMMEDIATE";

/// One schema version: the statements that bring the schema from the previous version to it.
struct Migration {
    version: i64,
    statements: &'static [&'static str],
}

/// The ordered migrations; a new version appends a step, never edits one.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    statements: &[
        "CREATE TABLE oidc_auth_sessions (
            id TEXT NOT NULL PRIMARY KEY,
            subject TEXT NOT NULL,
            provider_refresh_token BLOB NOT NULL,
            userinfo TEXT NOT NULL,
            expires_at INTEGER NOT NULL
        ) STRICT",
        "CREATE INDEX oidc_auth_sessions_expires_at ON oidc_auth_sessions (expires_at)",
        "CREATE TABLE oidc_auth_refresh_tokens (
            hash BLOB NOT NULL PRIMARY KEY CHECK (length(hash) = 32),
            family TEXT NOT NULL,
            session_id TEXT NOT NULL,
            expires_at INTEGER NOT NULL,
            spent INTEGER NOT NULL DEFAULT 0,
            revoked INTEGER NOT NULL DEFAULT 0
        ) STRICT",
        "CREATE INDEX oidc_auth_refresh_tokens_family ON oidc_auth_refresh_tokens (family)",
        "CREATE INDEX oidc_auth_refresh_tokens_session_id ON oidc_auth_refresh_tokens (session_id)",
        "CREATE INDEX oidc_auth_refresh_tokens_expires_at ON oidc_auth_refresh_tokens (expires_at)",
        "CREATE TABLE oidc_auth_signing_keys (
            kid TEXT NOT NULL PRIMARY KEY,
            alg TEXT NOT NULL,
            private_key BLOB NOT NULL,
            public_jwk TEXT NOT NULL,
            published_at INTEGER NOT NULL,
            active_from INTEGER NOT NULL,
            retire_at INTEGER NOT NULL,
            remove_at INTEGER NOT NULL
        ) STRICT",
        "CREATE TABLE oidc_auth_peer_jwks (
            issuer TEXT NOT NULL PRIMARY KEY,
            jwks TEXT NOT NULL,
            fetched_at INTEGER NOT NULL
        ) STRICT",
        "CREATE TABLE oidc_auth_once (
            marker BLOB NOT NULL PRIMARY KEY CHECK (length(marker) = 32),
            expires_at INTEGER NOT NULL
        ) STRICT",
        "CREATE INDEX oidc_auth_once_expires_at ON oidc_auth_once (expires_at)",
    ],
}];

/// The [`Store`] on SQLite.
///
/// Cloning is cheap and shares the pool.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), oidc_auth::store::StoreError> {
/// use std::sync::Arc;
/// use oidc_auth::store::{Store, sqlite::SqliteStore};
///
/// let dir = std::env::temp_dir().join(format!("oidc-auth-doc-{}", std::process::id()));
/// let store = SqliteStore::open(dir.join("broker.sqlite3")).await?;
/// store.migrate().await?;
/// let store: Arc<dyn Store> = Arc::new(store);
/// assert_eq!(store.get_peer_jwks("https://peer.example").await?, None);
/// # drop(store);
/// # let _ = std::fs::remove_dir_all(dir);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("size", &self.pool.size())
            .field("idle", &self.pool.num_idle())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the database a URL names: `sqlite://relative/path.sqlite3`,
    /// `sqlite:///absolute/path.sqlite3` (the file and its directories are created when
    /// missing), or `sqlite::memory:` for a private in-memory database that lives as long as
    /// the store. The query parameters SQLite URLs know (`mode`, `cache`, `immutable`, `vfs`)
    /// are honoured.
    ///
    /// A URL that is not `sqlite:` or has unknown parameters is [`StoreError::Rejected`]; a
    /// file that cannot be created or opened is [`StoreError::Unavailable`]. Run
    /// [`Store::migrate`] before first use ([`crate::store::connect`] does both).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), oidc_auth::store::StoreError> {
    /// use oidc_auth::store::{Store, sqlite::SqliteStore};
    ///
    /// let store = SqliteStore::connect("sqlite::memory:").await?;
    /// store.migrate().await?;
    /// assert!(store.consume_once(&[7; 32], 100, 0).await?);
    /// assert!(!store.consume_once(&[7; 32], 100, 1).await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let Some(rest) = url.strip_prefix("sqlite:") else {
            return Err(StoreError::Rejected(
                "a SQLite URL starts with sqlite: (sqlite://path or sqlite::memory:)".into(),
            ));
        };
        let options = SqliteConnectOptions::from_str(url).map_err(|_| {
            StoreError::Rejected(
                "the SQLite URL is invalid; its query parameters may only be mode, cache, \
                 immutable and vfs"
                    .into(),
            )
        })?;
        let database = rest.trim_start_matches("//");
        let database = database.split('?').next().unwrap_or_default();
        let query = rest.split_once('?').map_or("", |(_, query)| query);
        if database == ":memory:" || query.split('&').any(|p| p == "mode=memory") {
            return Self::in_memory(options).await;
        }
        if database.is_empty() {
            return Err(StoreError::Rejected(
                "the SQLite URL names no file; write sqlite://path/to/broker.sqlite3".into(),
            ));
        }
        Self::open_with(options).await
    }

    /// Opens (creating it and its directories when missing) the database file at `path`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), oidc_auth::store::StoreError> {
    /// let path = std::env::temp_dir()
    ///     .join(format!("oidc-auth-doc-open-{}", std::process::id()))
    ///     .join("nested/broker.sqlite3");
    /// let store = oidc_auth::store::sqlite::SqliteStore::open(&path).await?;
    /// assert!(path.exists());
    /// # store.pool().close().await;
    /// # let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(SqliteConnectOptions::new().filename(path.as_ref())).await
    }

    /// A store on a pool the application built itself (its own size, pragmas or encryption
    /// extension). Give it a busy timeout and WAL mode, as [`SqliteStore::open`] does, or
    /// concurrent writers fail with [`StoreError::Unavailable`] instead of taking turns.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    /// use oidc_auth::store::{Store, sqlite::SqliteStore};
    ///
    /// let options = SqliteConnectOptions::new()
    ///     .in_memory(true)
    ///     .busy_timeout(Duration::from_secs(2));
    /// let pool = SqlitePoolOptions::new()
    ///     .max_connections(1)
    ///     .idle_timeout(None)
    ///     .max_lifetime(None)
    ///     .connect_with(options)
    ///     .await?;
    /// let store = SqliteStore::from_pool(pool);
    /// store.migrate().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// The pool this store uses, for health checks or closing it on shutdown.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), oidc_auth::store::StoreError> {
    /// let store = oidc_auth::store::sqlite::SqliteStore::connect("sqlite::memory:").await?;
    /// store.pool().close().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A file database: WAL, full sync, busy timeout, the file created owner-only.
    async fn open_with(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let path = options.get_filename().to_path_buf();
        tokio::task::spawn_blocking(move || prepare_file(&path))
            .await
            .map_err(|_| StoreError::Unavailable("preparing the SQLite file failed".into()))??;
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        // Connections opening a new file at once all switch it to WAL, which needs an
        // exclusive lock; SQLite answers the losers "busy" at once rather than risk a deadlock,
        // so they try again after a pause.
        let deadline = tokio::time::Instant::now() + ACQUIRE_TIMEOUT;
        let mut pause = Duration::from_millis(10);
        loop {
            let pool = SqlitePoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options.clone());
            match tokio::time::timeout_at(deadline, pool).await {
                Ok(Ok(pool)) => return Ok(Self { pool }),
                Ok(Err(error))
                    if is_busy(&error) && tokio::time::Instant::now() + pause < deadline =>
                {
                    tracing::debug!(code = ?result_code(&error), "opening the SQLite file again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(250));
                }
                Ok(Err(error)) => return Err(map_error(&error)),
                Err(_) => {
                    return Err(StoreError::Unavailable(
                        "opening the SQLite database timed out".into(),
                    ));
                }
            }
        }
    }

    /// An in-memory database: one connection that is never closed, since the database
    /// vanishes with its last connection.
    async fn in_memory(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.busy_timeout(BUSY_TIMEOUT));
        Self::bounded_connect(pool).await
    }

    async fn bounded_connect(
        pool: impl Future<Output = Result<SqlitePool, sqlx::Error>>,
    ) -> Result<Self, StoreError> {
        match tokio::time::timeout(ACQUIRE_TIMEOUT + Duration::from_secs(1), pool).await {
            Ok(Ok(pool)) => Ok(Self { pool }),
            Ok(Err(error)) => Err(map_error(&error)),
            Err(_) => Err(StoreError::Unavailable(
                "opening the SQLite database timed out".into(),
            )),
        }
    }

    async fn migrate_now(&self) -> Result<(), StoreError> {
        retrying_within(MIGRATION_TIMEOUT, || migrate_once(&self.pool)).await?
    }
}

/// Creates the directories leading to `path` and the file itself, owner-only, when missing.
/// SQLite takes an empty file for an empty database.
fn prepare_file(path: &Path) -> Result<(), StoreError> {
    let unavailable = |what: &str, path: &Path, error: std::io::Error| {
        StoreError::Unavailable(format!(
            "cannot {what} {}: {}",
            path.display(),
            error.kind()
        ))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(parent)
            .map_err(|e| unavailable("create the directory", parent, e))?;
    }
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    match file.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(unavailable("create the database file", path, error)),
    }
}

/// One attempt of [`Store::migrate`]: the inner result is the verdict on the schema, the outer
/// one the database's (retried when busy).
async fn migrate_once(pool: &SqlitePool) -> Result<Result<(), StoreError>, sqlx::Error> {
    let mut tx = pool.begin_with(BEGIN_IMMEDIATE).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS oidc_auth_schema (version INTEGER NOT NULL PRIMARY KEY) STRICT",
    )
    .execute(&mut *tx)
    .await?;
    let current: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM oidc_auth_schema")
        .fetch_one(&mut *tx)
        .await?;
    if let Err(error) = crate::store::check_version(
        "SQLite",
        current,
        MIGRATIONS.last().map_or(0, |m| m.version),
    ) {
        tx.rollback().await?;
        return Ok(Err(error));
    }
    for step in MIGRATIONS.iter().filter(|m| m.version > current) {
        for statement in step.statements {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO oidc_auth_schema (version) VALUES (?1)")
            .bind(step.version)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Ok(()))
}

/// Runs a transaction again when the database was busy beyond the busy timeout, or a
/// snapshot went stale, within the deadline of one store call ([`retrying_within`]).
async fn retrying<T, F, Fut>(attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    retrying_within(crate::store::OPERATION_TIMEOUT, attempt).await
}

/// Runs a transaction again when the database was busy beyond the busy timeout, or a
/// snapshot went stale, as long as another attempt's busy wait still ends within `limit`, the
/// deadline of the call: an attempt cut off by the deadline might yet commit after its caller
/// was told it failed. (The wait for a pool connection comes on top; it is bounded too.)
async fn retrying_within<T, F, Fut>(limit: Duration, mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let started = std::time::Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error)
                if tries < ATTEMPTS
                    && is_busy(&error)
                    && started.elapsed() + BUSY_TIMEOUT + Duration::from_millis(20 << tries)
                        < limit =>
            {
                // Busy without waiting means SQLite broke a lock cycle (or the busy timeout
                // passed): pause, growing, before the next attempt.
                tracing::debug!(code = ?result_code(&error), "retrying a SQLite transaction");
                tokio::time::sleep(Duration::from_millis(20 << tries)).await;
            }
            Err(error) => return Err(map_error(&error)),
        }
    }
}

/// The extended SQLite result code of a database error.
fn result_code(error: &sqlx::Error) -> Option<i32> {
    match error {
        sqlx::Error::Database(db) => db.code().and_then(|code| code.parse().ok()),
        _ => None,
    }
}

/// `SQLITE_BUSY` or `SQLITE_LOCKED`, with any extended code.
fn is_busy(error: &sqlx::Error) -> bool {
    matches!(result_code(error).map(|code| code & 0xff), Some(5 | 6))
}

/// Maps a driver error to a [`StoreError`]. Only the result code travels: SQLite messages can
/// name the file or quote SQL.
fn map_error(error: &sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match error {
        E::Database(db) => {
            let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
            match code & 0xff {
                // SQLITE_CONSTRAINT: a duplicate key, or a value a CHECK or STRICT type refuses.
                19 if matches!(code, 1555 | 2067) => StoreError::Rejected(format!(
                    "the value conflicts with a stored one (SQLite code {code})"
                )),
                19 | 20 | 25 => {
                    StoreError::Rejected(format!("SQLite refused the value (SQLite code {code})"))
                }
                // SQLITE_TOOBIG.
                18 => StoreError::Rejected(format!(
                    "the value is too large for SQLite (SQLite code {code})"
                )),
                5 | 6 => StoreError::Unavailable(format!(
                    "the SQLite database stayed locked by another writer (SQLite code {code})"
                )),
                // SQLITE_CORRUPT, SQLITE_NOTADB.
                11 | 26 => StoreError::Corrupt(format!(
                    "the SQLite file is damaged or not a database (SQLite code {code})"
                )),
                // SQLITE_ERROR for a missing table or column: the schema is missing or not ours.
                1 if db.message().starts_with("no such table")
                    || db.message().starts_with("no such column")
                    || db.message().contains("has no column named") =>
                {
                    StoreError::Corrupt(format!(
                        "the SQLite schema does not match; run migrate (SQLite code {code})"
                    ))
                }
                // Permissions, read-only file, I/O, full disk, cannot open, out of memory.
                _ => StoreError::Unavailable(format!("SQLite failed (SQLite code {code})")),
            }
        }
        E::PoolTimedOut => {
            StoreError::Unavailable("no SQLite connection within the acquire timeout".into())
        }
        E::PoolClosed => StoreError::Unavailable("the SQLite pool is closed".into()),
        E::Io(error) => StoreError::Unavailable(format!("SQLite I/O failed: {}", error.kind())),
        E::WorkerCrashed => StoreError::Unavailable("the SQLite connection worker crashed".into()),
        E::Configuration(_) => {
            StoreError::Rejected("the SQLite connection settings are invalid".into())
        }
        E::RowNotFound
        | E::ColumnNotFound(_)
        | E::ColumnIndexOutOfBounds { .. }
        | E::ColumnDecode { .. }
        | E::Decode(_)
        | E::TypeNotFound { .. } => StoreError::Corrupt("a SQLite row cannot be read back".into()),
        _ => StoreError::Unavailable("SQLite failed".into()),
    }
}

fn check_refresh(record: &RefreshRecord) -> Result<(), StoreError> {
    crate::store::check_identifier("the token family", &record.family)?;
    crate::store::check_identifier("the session id", &record.session_id)
}

fn check_key(key: &StoredKey) -> Result<(), StoreError> {
    crate::store::check_identifier("the key id", &key.kid)?;
    crate::store::check_identifier("the algorithm", &key.alg)
}

fn session_from_row(row: &SqliteRow) -> Result<Session, sqlx::Error> {
    Ok(Session {
        id: row.try_get("id")?,
        subject: row.try_get("subject")?,
        provider_refresh_token: row.try_get("provider_refresh_token")?,
        userinfo: row.try_get("userinfo")?,
        expires_at: row.try_get("expires_at")?,
    })
}

fn key_from_row(row: &SqliteRow) -> Result<StoredKey, sqlx::Error> {
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
    conn: &mut SqliteConnection,
    record: &RefreshRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO oidc_auth_refresh_tokens (hash, family, session_id, expires_at) \
         VALUES (?1, ?2, ?3, ?4)",
    )
    .bind(&record.hash[..])
    .bind(&record.family)
    .bind(&record.session_id)
    .bind(record.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_key_row(conn: &mut SqliteConnection, key: &StoredKey) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO oidc_auth_signing_keys \
         (kid, alg, private_key, public_jwk, published_at, active_from, retire_at, remove_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
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

/// One attempt of [`Store::rotate_refresh`]: take the write lock, decide, write, commit.
async fn rotate_once(
    pool: &SqlitePool,
    old: &[u8; 32],
    new: &[u8; 32],
    now: i64,
) -> Result<RotateOutcome, sqlx::Error> {
    let mut tx = pool.begin_with(BEGIN_IMMEDIATE).await?;
    let row = sqlx::query(
        "SELECT family, session_id, expires_at, spent, revoked FROM oidc_auth_refresh_tokens \
         WHERE hash = ?1",
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
                "UPDATE oidc_auth_refresh_tokens SET spent = 1, expires_at = ?2 WHERE hash = ?1",
            )
            .bind(&old[..])
            .bind(spent_until)
            .execute(&mut *tx)
            .await?;
            // A taken successor hash fails here, and dropping the transaction rolls the spend
            // back.
            insert_refresh_row(&mut tx, &successor).await?;
            tx.commit().await?;
            Ok(RotateOutcome::Rotated(spent))
        }
    }
}

/// One attempt of [`Store::insert_first_key`], serialized by the write lock.
async fn insert_first_key_once(
    pool: &SqlitePool,
    key: &StoredKey,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin_with(BEGIN_IMMEDIATE).await?;
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM oidc_auth_signing_keys WHERE retire_at > ?1)",
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

async fn delete_session_once(pool: &SqlitePool, id: &str) -> Result<Option<Session>, sqlx::Error> {
    let mut tx = pool.begin_with(BEGIN_IMMEDIATE).await?;
    sqlx::query("DELETE FROM oidc_auth_refresh_tokens WHERE session_id = ?1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let session = sqlx::query(
        "DELETE FROM oidc_auth_sessions WHERE id = ?1 \
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
/// rows that commit one by one: the database's write lock is taken for one batch at a time,
/// so rotations and logins get their turn in between.
async fn purge(pool: &SqlitePool, now: i64) -> Result<u64, StoreError> {
    let statements = [
        "DELETE FROM oidc_auth_sessions WHERE expires_at <= ?1 AND rowid IN (\
         SELECT rowid FROM oidc_auth_sessions WHERE expires_at <= ?1 LIMIT ?2)",
        "DELETE FROM oidc_auth_refresh_tokens WHERE expires_at <= ?1 AND rowid IN (\
         SELECT rowid FROM oidc_auth_refresh_tokens WHERE expires_at <= ?1 LIMIT ?2)",
        "DELETE FROM oidc_auth_signing_keys WHERE remove_at <= ?1 AND rowid IN (\
         SELECT rowid FROM oidc_auth_signing_keys WHERE remove_at <= ?1 LIMIT ?2)",
        "DELETE FROM oidc_auth_once WHERE expires_at <= ?1 AND rowid IN (\
         SELECT rowid FROM oidc_auth_once WHERE expires_at <= ?1 LIMIT ?2)",
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

impl Store for SqliteStore {
    fn migrate(&self) -> StoreFuture<'_, ()> {
        Box::pin(crate::store::bounded(
            "SQLite",
            MIGRATION_TIMEOUT,
            self.migrate_now(),
        ))
    }

    fn put_session(&self, session: &Session) -> StoreFuture<'_, ()> {
        let session = session.clone();
        Box::pin(crate::store::bounded(
            "SQLite",
            crate::store::OPERATION_TIMEOUT,
            async move {
                crate::store::check_identifier("the session id", &session.id)?;
                retrying(|| {
                    sqlx::query(
                        "INSERT INTO oidc_auth_sessions \
                     (id, subject, provider_refresh_token, userinfo, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (id) DO UPDATE SET subject = excluded.subject, \
                     provider_refresh_token = excluded.provider_refresh_token, \
                     userinfo = excluded.userinfo, expires_at = excluded.expires_at",
                    )
                    .bind(&session.id)
                    .bind(&session.subject)
                    .bind(&session.provider_refresh_token)
                    .bind(&session.userinfo)
                    .bind(session.expires_at)
                    .execute(&self.pool)
                })
                .await?;
                Ok(())
            },
        ))
    }

    fn update_session(&self, session: &Session, now: i64) -> StoreFuture<'_, bool> {
        let session = session.clone();
        Box::pin(crate::store::bounded(
            "SQLite",
            crate::store::OPERATION_TIMEOUT,
            async move {
                if !crate::store::storable_identifier(&session.id) {
                    return Ok(false);
                }
                let updated = retrying(|| {
                    sqlx::query(
                        "UPDATE oidc_auth_sessions \
                         SET provider_refresh_token = ?1, userinfo = ?2 \
                         WHERE id = ?3 AND expires_at > ?4",
                    )
                    .bind(&session.provider_refresh_token)
                    .bind(&session.userinfo)
                    .bind(&session.id)
                    .bind(now)
                    .execute(&self.pool)
                })
                .await?
                .rows_affected();
                Ok(updated > 0)
            },
        ))
    }

    fn get_session(&self, id: &str, now: i64) -> StoreFuture<'_, Option<Session>> {
        let id = id.to_owned();
        Box::pin(crate::store::bounded(
            "SQLite",
            crate::store::OPERATION_TIMEOUT,
            async move {
                if !crate::store::storable_identifier(&id) {
                    return Ok(None);
                }
                let row = sqlx::query(
                    "SELECT id, subject, provider_refresh_token, userinfo, expires_at \
                 FROM oidc_auth_sessions WHERE id = ?1 AND expires_at > ?2",
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
            "SQLite",
            crate::store::OPERATION_TIMEOUT,
            async move {
                if !crate::store::storable_identifier(&id) {
                    return Ok(None);
                }
                retrying(|| delete_session_once(&self.pool, &id)).await
            },
        ))
    }

    fn insert_refresh(&self, record: &RefreshRecord) -> StoreFuture<'_, ()> {
        let record = record.clone();
        Box::pin(crate::store::bounded(
            "SQLite",
            crate::store::OPERATION_TIMEOUT,
            async move {
                check_refresh(&record)?;
                retrying(|| async {
                    let mut conn = self.pool.acquire().await?;
                    insert_refresh_row(&mut conn, &record).await
                })
                .await
            },
        ))
    }

    fn rotate_refresh(
        &self,
        old: &[u8; 32],
        new: &[u8; 32],
        now: i64,
    ) -> StoreFuture<'_, RotateOutcome> {
        let (old, new) = (*old, *new);
        Box::pin(crate::store::bounded(
            "SQLite",
            crate::store::OPERATION_TIMEOUT,
            async move { retrying(|| rotate_once(&self.pool, &old, &new, now)).await },
        ))
    }

    fn revoke_family(&self, family: &str) -> StoreFuture<'_, ()> {
        let family = family.to_owned();
        Box::pin(crate::store::bounded(
            "SQLite",
            crate::store::REVOCATION_TIMEOUT,
            async move {
                if !crate::store::storable_identifier(&family) {
                    return Ok(());
                }
                retrying_within(crate::store::REVOCATION_TIMEOUT, || {
                    sqlx::query("UPDATE oidc_auth_refresh_tokens SET revoked = 1 WHERE family = ?1")
                        .bind(&family)
                        .execute(&self.pool)
                })
                .await?;
                Ok(())
            },
        ))
    }

    fn list_keys(&self) -> StoreFuture<'_, Vec<StoredKey>> {
        Box::pin(crate::store::bounded(
            "SQLite",
            crate::store::OPERATION_TIMEOUT,
            async move {
                let rows = sqlx::query(
                "SELECT kid, alg, private_key, public_jwk, published_at, active_from, retire_at, \
                 remove_at FROM oidc_auth_signing_keys ORDER BY published_at, kid",
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
            "SQLite",
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
            "SQLite",
            crate::store::OPERATION_TIMEOUT,
            async move {
                check_key(&key)?;
                retrying(|| async {
                    let mut conn = self.pool.acquire().await?;
                    insert_key_row(&mut conn, &key).await
                })
                .await
            },
        ))
    }

    fn delete_key(&self, kid: &str) -> StoreFuture<'_, ()> {
        let kid = kid.to_owned();
        Box::pin(crate::store::bounded(
            "SQLite",
            crate::store::OPERATION_TIMEOUT,
            async move {
                if !crate::store::storable_identifier(&kid) {
                    return Ok(());
                }
                retrying(|| {
                    sqlx::query("DELETE FROM oidc_auth_signing_keys WHERE kid = ?1")
                        .bind(&kid)
                        .execute(&self.pool)
                })
                .await?;
                Ok(())
            },
        ))
    }

    fn put_peer_jwks(&self, issuer: &str, jwks: &str, fetched_at: i64) -> StoreFuture<'_, ()> {
        let issuer = issuer.to_owned();
        let jwks = jwks.to_owned();
        Box::pin(crate::store::bounded(
            "SQLite",
            crate::store::OPERATION_TIMEOUT,
            async move {
                crate::store::check_identifier("the issuer", &issuer)?;
                retrying(|| {
                sqlx::query(
                    "INSERT INTO oidc_auth_peer_jwks (issuer, jwks, fetched_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (issuer) DO UPDATE SET jwks = excluded.jwks, \
                     fetched_at = excluded.fetched_at \
                     WHERE excluded.fetched_at >= oidc_auth_peer_jwks.fetched_at \
                     OR oidc_auth_peer_jwks.fetched_at > excluded.fetched_at + ?4",
                )
                .bind(&issuer)
                .bind(&jwks)
                .bind(fetched_at)
                .bind(crate::store::PEER_JWKS_AHEAD_SECS)
                .execute(&self.pool)
            })
            .await?;
                Ok(())
            },
        ))
    }

    fn get_peer_jwks(&self, issuer: &str) -> StoreFuture<'_, Option<(String, i64)>> {
        let issuer = issuer.to_owned();
        Box::pin(crate::store::bounded(
            "SQLite",
            crate::store::OPERATION_TIMEOUT,
            async move {
                if !crate::store::storable_identifier(&issuer) {
                    return Ok(None);
                }
                sqlx::query_as::<_, (String, i64)>(
                    "SELECT jwks, fetched_at FROM oidc_auth_peer_jwks WHERE issuer = ?1",
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
            "SQLite",
            crate::store::OPERATION_TIMEOUT,
            async move {
                // Inserted, or an expired marker taken over: a row comes back. A live marker: none.
                let row = retrying(|| {
                    sqlx::query(
                        "INSERT INTO oidc_auth_once (marker, expires_at) VALUES (?1, ?2) \
                     ON CONFLICT (marker) DO UPDATE SET expires_at = excluded.expires_at \
                     WHERE oidc_auth_once.expires_at <= ?3 \
                     RETURNING 1",
                    )
                    .bind(&key[..])
                    .bind(expires_at)
                    .bind(now)
                    .fetch_optional(&self.pool)
                })
                .await?;
                Ok(row.is_some())
            },
        ))
    }

    fn is_consumed(&self, key: &[u8; 32], now: i64) -> StoreFuture<'_, bool> {
        let key = *key;
        Box::pin(crate::store::bounded(
            "SQLite",
            crate::store::OPERATION_TIMEOUT,
            async move {
                let row = retrying(|| {
                    sqlx::query(
                        "SELECT 1 FROM oidc_auth_once WHERE marker = ?1 AND expires_at > ?2",
                    )
                    .bind(&key[..])
                    .bind(now)
                    .fetch_optional(&self.pool)
                })
                .await?;
                Ok(row.is_some())
            },
        ))
    }

    fn purge_expired(&self, now: i64) -> StoreFuture<'_, u64> {
        Box::pin(crate::store::bounded(
            "SQLite",
            crate::store::PURGE_TIMEOUT,
            purge(&self.pool, now),
        ))
    }
}

#[cfg(test)]
mod tests {
    //! What the conformance suite (`tests/store_conformance.rs`) cannot check from outside:
    //! files and directories, concurrent first opens, schema versions, error mapping.

    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A fresh directory under the system temp directory, removed when dropped.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new() -> Self {
            let mut suffix = [0u8; 8];
            aws_lc_rs::rand::fill(&mut suffix).unwrap();
            let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
            let path = std::env::temp_dir().join(format!("oidc-auth-sqlite-{suffix}"));
            Self(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn key(kid: String) -> StoredKey {
        StoredKey {
            kid,
            alg: "EdDSA".into(),
            private_key: vec![1, 2, 3],
            public_jwk: "{}".into(),
            published_at: 0,
            active_from: 0,
            retire_at: 1_000,
            remove_at: 2_000,
        }
    }

    /// Instances opening a file nobody created yet race to switch it to WAL and to migrate it;
    /// all of them must come up, and agree on one first key.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_first_opens_of_a_new_file_all_succeed() {
        for round in 0..20 {
            let dir = Scratch::new();
            let url = format!("sqlite://{}", dir.0.join("db/broker.sqlite3").display());
            let opens: Vec<_> = (0..8)
                .map(|instance| {
                    let url = url.clone();
                    tokio::spawn(async move {
                        let store = SqliteStore::connect(&url).await?;
                        store.migrate().await?;
                        let first = store
                            .insert_first_key(&key(format!("k{instance}")), 0)
                            .await?;
                        Ok::<_, StoreError>((store, first))
                    })
                })
                .collect();
            let mut firsts = 0;
            for open in opens {
                let (store, first) = open.await.unwrap().unwrap();
                firsts += usize::from(first);
                assert_eq!(store.list_keys().await.unwrap().len(), 1, "round {round}");
                store.pool().close().await;
            }
            assert_eq!(firsts, 1, "round {round}");
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_file_and_its_directories_are_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;

        let dir = Scratch::new();
        let path = dir.0.join("a/b/broker.sqlite3");
        let store = SqliteStore::open(&path).await.unwrap();
        store.migrate().await.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&dir.0.join("a")), 0o700);
        store.pool().close().await;
    }

    #[tokio::test]
    async fn a_newer_schema_version_is_corrupt() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        sqlx::query("INSERT INTO oidc_auth_schema (version) VALUES (99)")
            .execute(store.pool())
            .await
            .unwrap();
        assert!(matches!(store.migrate().await, Err(StoreError::Corrupt(_))));
    }

    #[tokio::test]
    async fn an_unmigrated_database_is_corrupt_not_unavailable() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        let result = store.get_session("s", 0).await;
        assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    }

    #[tokio::test]
    async fn bad_urls_are_rejected() {
        for url in [
            "postgres://u:p@h/db",
            "sqlite://x.sqlite3?mode=bogus",
            "sqlite://x.sqlite3?password=hunter2",
            "sqlite://",
            "sqlite:",
        ] {
            let result = SqliteStore::connect(url).await;
            assert!(
                matches!(result, Err(StoreError::Rejected(_))),
                "{url}: {result:?}"
            );
            assert!(!format!("{result:?}").contains("hunter2"));
        }
    }

    #[tokio::test]
    async fn a_path_that_cannot_be_created_is_unavailable() {
        let dir = Scratch::new();
        std::fs::create_dir_all(&dir.0).unwrap();
        let blocker = dir.0.join("file");
        std::fs::write(&blocker, b"not a directory").unwrap();
        let result = SqliteStore::open(blocker.join("broker.sqlite3")).await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_is_corrupt() {
        let dir = Scratch::new();
        std::fs::create_dir_all(&dir.0).unwrap();
        let path = dir.0.join("garbage.sqlite3");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let result = match SqliteStore::open(&path).await {
            Ok(store) => store.migrate().await,
            Err(error) => Err(error),
        };
        assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    }
}
