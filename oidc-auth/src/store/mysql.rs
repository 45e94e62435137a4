//! The MySQL / MariaDB [`Store`] backend (feature `mysql`), on the `mysql_async` driver.
//!
//! Its own SQL and its own versioned migrations: the table `oidc_auth_schema` records which
//! steps ran, and [`Store::migrate`] applies the missing ones while holding a named lock
//! (`GET_LOCK`, one per database), so several instances starting at once migrate exactly once.
//! MySQL commits every `CREATE TABLE` on its own, so a migration cannot be one transaction
//! here; instead every step is idempotent (`IF NOT EXISTS`, `INSERT IGNORE`) and its version is
//! recorded after it, so a step interrupted half-way simply runs again.
//!
//! Every value goes to the server as a bound parameter of a prepared statement and comes back
//! byte for byte: identifiers (session ids, token families, key ids, algorithm names, issuers)
//! are `VARBINARY`, compared byte by byte — not `utf8mb4_bin`, which is a `PAD SPACE` collation
//! in MariaDB and would find `"a "` when asked for `"a"` — and at most [`MAX_IDENTIFIER_BYTES`]
//! long; other text is `LONGTEXT` in `utf8mb4`, secrets are `LONGBLOB`. A write whose values do
//! not fit into the server's `max_allowed_packet` (16 MiB by default on MariaDB) is refused with
//! [`StoreError::Rejected`] before it is sent; lengths are checked here, so a server without
//! strict mode never truncates anything silently.
//!
//! Writes that must be atomic are transactions on row locks: a rotation locks the old token
//! (`SELECT … FOR UPDATE`), the first signing key locks a row of `oidc_auth_locks`, and a
//! transaction that loses a deadlock or a lock wait is run again (up to three times).
//!
//! Every store waits at most [`ACQUIRE_TIMEOUT`] for a connection from its pool, so a stopped
//! database answers [`StoreError::Unavailable`] within that time; the pool opens new
//! connections on its own once the database is back. Every operation, its wait for a
//! connection included, is bounded by a deadline of 4.5 seconds (sixty for migrations). A
//! connection that an operation leaves in an unknown state — the deadline struck
//! mid-exchange, a transaction could not be rolled back, a named lock could not be released —
//! is closed instead of going back to the pool, so the server rolls back and releases whatever
//! it held.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable as _;
use mysql_async::{
    Conn, DriverError, Opts, OptsBuilder, Params, Pool, PoolConstraints, Row, UrlError, Value,
};
use tokio::sync::OnceCell;

use super::{
    FoundRefresh, RefreshRecord, RotateOutcome, RotationStep, Session, Store, StoreError,
    StoreFuture, StoredKey, rotation_step,
};

pub use super::MAX_IDENTIFIER_BYTES;

/// How long every operation waits for a pooled connection before it answers
/// [`StoreError::Unavailable`].
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(4);

const MIGRATION_TIMEOUT: Duration = Duration::from_secs(60);
/// How long closing a connection in an unknown state may take before its socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// The pool [`MysqlStore::connect`] builds: at least one, at most ten connections.
const POOL_CONSTRAINTS: PoolConstraints = match PoolConstraints::new(1, 10) {
    Some(constraints) => constraints,
    None => panic!("invalid pool constraints"),
};
/// How long a connection above the pool minimum may idle before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// TCP keepalive of [`MysqlStore::connect`]'s connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// Run on each new connection of [`MysqlStore::connect`]: a statement waits for a row lock
/// (50 s by default) or a table's metadata lock (a year, as during a backup's
/// `FLUSH TABLES WITH READ LOCK`) at most 3 s, below the 4.5 s within which every store call
/// answers: the server stops waiting (and holding the row locks the transaction has) soon
/// after the store has given up, and a lock wait timeout (1205) can be retried within the
/// call.
const SESSION_LIMITS: [&str; 2] = [
    "SET SESSION innodb_lock_wait_timeout = 3",
    "SET SESSION lock_wait_timeout = 3",
];
/// Attempts of a transaction that lost a deadlock or a lock wait. Between two, a pause of a
/// few random milliseconds: transactions that deadlocked together and retried at once would
/// meet again (a family revocation scanning the family's index against rotations inserting
/// into it), and under load three such meetings in a row happen.
const ATTEMPTS: usize = 6;
/// What a statement needs besides its values (header, parameter types and lengths).
const PACKET_OVERHEAD: usize = 16 * 1024;
/// The row of `oidc_auth_locks` that serializes [`Store::insert_first_key`].
const FIRST_KEY_LOCK: &[u8] = b"first_key";
/// Error numbers of a lost deadlock (`ER_LOCK_DEADLOCK`) and a lock wait timeout
/// (`ER_LOCK_WAIT_TIMEOUT`).
const RETRYABLE: [u16; 2] = [1213, 1205];

/// One schema version: the statements that bring the schema from the previous version to it.
/// Each statement is idempotent, because MySQL cannot roll DDL back.
struct Migration {
    version: i64,
    statements: &'static [&'static str],
}

/// The ordered migrations; a new version appends a step, never edits one.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    statements: &[
        "CREATE TABLE IF NOT EXISTS oidc_auth_sessions (
            id VARBINARY(1024) NOT NULL PRIMARY KEY,
            subject LONGTEXT NOT NULL,
            provider_refresh_token LONGBLOB NOT NULL,
            userinfo LONGTEXT NOT NULL,
            expires_at BIGINT NOT NULL,
            KEY oidc_auth_sessions_expires_at (expires_at)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC",
        "CREATE TABLE IF NOT EXISTS oidc_auth_refresh_tokens (
            hash BINARY(32) NOT NULL PRIMARY KEY,
            family VARBINARY(1024) NOT NULL,
            session_id VARBINARY(1024) NOT NULL,
            expires_at BIGINT NOT NULL,
            spent TINYINT(1) NOT NULL DEFAULT 0,
            revoked TINYINT(1) NOT NULL DEFAULT 0,
            KEY oidc_auth_refresh_tokens_family (family),
            KEY oidc_auth_refresh_tokens_session_id (session_id),
            KEY oidc_auth_refresh_tokens_expires_at (expires_at)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC",
        "CREATE TABLE IF NOT EXISTS oidc_auth_signing_keys (
            kid VARBINARY(1024) NOT NULL PRIMARY KEY,
            alg VARBINARY(1024) NOT NULL,
            private_key LONGBLOB NOT NULL,
            public_jwk LONGTEXT NOT NULL,
            published_at BIGINT NOT NULL,
            active_from BIGINT NOT NULL,
            retire_at BIGINT NOT NULL,
            remove_at BIGINT NOT NULL
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC",
        "CREATE TABLE IF NOT EXISTS oidc_auth_peer_jwks (
            issuer VARBINARY(1024) NOT NULL PRIMARY KEY,
            jwks LONGTEXT NOT NULL,
            fetched_at BIGINT NOT NULL
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC",
        "CREATE TABLE IF NOT EXISTS oidc_auth_once (
            marker BINARY(32) NOT NULL PRIMARY KEY,
            expires_at BIGINT NOT NULL,
            KEY oidc_auth_once_expires_at (expires_at)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC",
        "CREATE TABLE IF NOT EXISTS oidc_auth_locks (
            name VARBINARY(64) NOT NULL PRIMARY KEY
        ) ENGINE=InnoDB",
        "INSERT IGNORE INTO oidc_auth_locks (name) VALUES ('first_key')",
    ],
}];

/// The [`Store`] on MySQL 8 or MariaDB 10.6 and later.
///
/// Cloning is cheap and shares the pool.
///
/// ```no_run
/// # async fn demo() -> Result<(), oidc_auth::store::StoreError> {
/// use std::sync::Arc;
/// use oidc_auth::store::{Store, mysql::MysqlStore};
///
/// let store = MysqlStore::connect("mysql://broker:secret@db.internal/broker").await?;
/// store.migrate().await?;
/// let store: Arc<dyn Store> = Arc::new(store);
/// # drop(store);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MysqlStore {
    pool: Pool,
    /// The server's `max_allowed_packet` less the statement overhead, read once.
    max_payload: Arc<OnceCell<usize>>,
}

impl std::fmt::Debug for MysqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::sync::atomic::Ordering::Relaxed;
        let metrics = self.pool.metrics();
        f.debug_struct("MysqlStore")
            .field("size", &metrics.connection_count.load(Relaxed))
            .field("idle", &metrics.connections_in_pool.load(Relaxed))
            .finish_non_exhaustive()
    }
}

impl MysqlStore {
    /// Connects to `url` (`mysql://user:password@host:port/database?options`; `mariadb://` is
    /// accepted as a synonym) with a pool of one to ten connections.
    ///
    /// Unless the URL says otherwise (the options are `mysql_async`'s: `pool_min`, `pool_max`,
    /// `inactive_connection_ttl`, `prefer_socket`, `reset_connection`, `tcp_keepalive`,
    /// `require_ssl`, …), connections above the first are closed after a minute idle, go
    /// exactly where the URL points (no switch to the server's Unix socket), are not reset
    /// between operations (the store leaves no session state behind: a connection whose state
    /// is unknown is closed) and use TCP keepalive. Their statements wait for a lock at most 3 s
    /// (`innodb_lock_wait_timeout` and `lock_wait_timeout`), within the time of one store call.
    ///
    /// One connection is opened right away, so a wrong URL or an unreachable server shows at
    /// start: an unparsable URL, a refused login or an unreachable server is
    /// [`StoreError::Unavailable`] (the error never repeats the URL or its password). Run
    /// [`Store::migrate`] before first use. To start while the database is still down, build a
    /// pool yourself and use [`MysqlStore::from_pool`]; `mysql_async` pools connect lazily.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), oidc_auth::store::StoreError> {
    /// let store = oidc_auth::store::mysql::MysqlStore::connect("mysql://root@127.0.0.1:3306/broker").await?;
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let opts = options(url)?;
        let store = Self::from_pool(Pool::new(opts));
        // The connection goes back to the pool right away, as its first idle one.
        store.lease().await.map_err(Fault::into_store)?;
        Ok(store)
    }

    /// A store on a pool the application built itself (its own size, TLS or timeouts).
    ///
    /// Whatever the pool's settings, every operation waits at most [`ACQUIRE_TIMEOUT`] for a
    /// connection. Keep the connection character set `utf8mb4` (`mysql_async` always asks for
    /// it) and mind that `mysql_async` switches a connection to `127.0.0.1` over to the
    /// server's Unix socket unless `prefer_socket` is off.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use mysql_async::{Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
    /// use oidc_auth::store::mysql::MysqlStore;
    ///
    /// let constraints = PoolConstraints::new(2, 20).ok_or("invalid pool size")?;
    /// let opts = OptsBuilder::from_opts(Opts::from_url("mysql://broker:secret@127.0.0.1/broker")?)
    ///     .prefer_socket(false)
    ///     .pool_opts(PoolOpts::default().with_constraints(constraints));
    /// let store = MysqlStore::from_pool(Pool::new(opts));
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_pool(pool: Pool) -> Self {
        Self {
            pool,
            max_payload: Arc::new(OnceCell::new()),
        }
    }

    /// The pool this store uses, for health checks or closing it on shutdown.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = oidc_auth::store::mysql::MysqlStore::connect("mysql://broker:secret@127.0.0.1/broker").await?;
    /// store.pool().clone().disconnect().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A connection from the pool, within [`ACQUIRE_TIMEOUT`].
    async fn lease(&self) -> Result<Lease, Fault> {
        match tokio::time::timeout(ACQUIRE_TIMEOUT, self.pool.get_conn()).await {
            Ok(Ok(conn)) => Ok(Lease::new(conn)),
            Ok(Err(error)) => Err(Fault::Db(error)),
            // Dropping the pending `get_conn` gives its slot in the pool back.
            Err(_) => Err(Fault::Store(StoreError::Unavailable(format!(
                "no MySQL connection within {} s",
                ACQUIRE_TIMEOUT.as_secs()
            )))),
        }
    }

    /// Refuses a write whose values add up to more than the server accepts in one packet.
    async fn check_payload(&self, lease: &mut Lease, bytes: usize) -> Result<(), Fault> {
        let limit = *self
            .max_payload
            .get_or_try_init(|| async {
                let mut row = lease
                    .exec_first("SELECT CAST(@@max_allowed_packet AS SIGNED)", Params::Empty)
                    .await?
                    .ok_or_else(unreadable)?;
                let packet: i64 = column(&mut row, 0)?;
                Ok::<_, Fault>(
                    usize::try_from(packet)
                        .unwrap_or(0)
                        .saturating_sub(PACKET_OVERHEAD),
                )
            })
            .await?;
        if bytes > limit {
            return Err(Fault::Store(StoreError::Rejected(format!(
                "the values are {bytes} bytes long; this MySQL server accepts at most {limit} per statement (max_allowed_packet)"
            ))));
        }
        Ok(())
    }

    async fn migrate_now(&self) -> Result<(), Fault> {
        let mut lease = self.lease().await?;
        // Named locks belong to the session and are server-wide: the name carries a digest of
        // the database, so instances of other databases on the same server do not wait.
        lease.holds_lock = true;
        let mut row = lease
            .exec_first(
                "SELECT GET_LOCK(CONCAT('oidc_auth_migrate_', SHA1(COALESCE(DATABASE(), ''))), 10)",
                Params::Empty,
            )
            .await?
            .ok_or_else(unreadable)?;
        let locked: Option<i64> = column(&mut row, 0)?;
        if locked != Some(1) {
            lease.holds_lock = false;
            return Err(Fault::Store(StoreError::Unavailable(
                "another instance has been migrating the MySQL schema for more than 10 s".into(),
            )));
        }
        let result = migrate_locked(&mut lease).await;
        // Should the release fail, the lease closes the connection, which releases the lock.
        if lease
            .exec_first(
                "SELECT RELEASE_LOCK(CONCAT('oidc_auth_migrate_', SHA1(COALESCE(DATABASE(), ''))))",
                Params::Empty,
            )
            .await
            .is_ok()
        {
            lease.holds_lock = false;
        }
        result
    }
}

/// The pool options for `url`: the URL's own, with this backend's defaults where it is silent.
fn options(url: &str) -> Result<Opts, StoreError> {
    let url = match url.split_at_checked("mariadb:".len()) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("mariadb:") => format!("mysql:{rest}"),
        _ => url.to_owned(),
    };
    let opts = Opts::from_url(&url).map_err(|e| url_error(&e))?;
    // Which options the URL sets itself (mysql_async has parsed it, so it is a valid URL).
    let given: Vec<String> = url::Url::parse(&url)
        .map(|u| u.query_pairs().map(|(k, _)| k.into_owned()).collect())
        .unwrap_or_default();
    let given = |key: &str| given.iter().any(|k| k == key);

    let mut pool_opts = opts.pool_opts().clone();
    if !given("pool_min") && !given("pool_max") {
        pool_opts = pool_opts.with_constraints(POOL_CONSTRAINTS);
    }
    if !given("inactive_connection_ttl") {
        pool_opts = pool_opts.with_inactive_connection_ttl(IDLE_TIMEOUT);
    }
    if !given("reset_connection") {
        pool_opts = pool_opts.with_reset_connection(false);
    }
    let mut builder = OptsBuilder::from_opts(opts).pool_opts(pool_opts);
    if !given("prefer_socket") {
        builder = builder.prefer_socket(false);
    }
    if !given("tcp_keepalive") {
        builder = builder.tcp_keepalive(Some(TCP_KEEPALIVE));
    }
    Ok(builder.init(SESSION_LIMITS.to_vec()).into())
}

/// Describes a URL error without repeating the URL or any value of it.
fn url_error(error: &UrlError) -> StoreError {
    let detail = match error {
        UrlError::UnsupportedScheme { scheme } => {
            format!("the scheme {scheme:?} is neither mysql nor mariadb")
        }
        UrlError::UnknownParameter { param } => format!("unknown option {param:?}"),
        UrlError::InvalidParamValue { param, .. } => format!("invalid value of option {param:?}"),
        UrlError::FeatureRequired { param, .. } => {
            format!("option {param:?} is not supported by this build")
        }
        UrlError::InvalidPoolConstraints { min, max } => {
            format!("pool_min ({min}) is larger than pool_max ({max})")
        }
        UrlError::Parse(error) => error.to_string(),
        UrlError::Invalid => "it is incomplete".into(),
    };
    StoreError::Unavailable(format!("the MySQL connection URL is invalid: {detail}"))
}

/// Applies the missing migrations; the caller holds the migration lock.
async fn migrate_locked(lease: &mut Lease) -> Result<(), Fault> {
    lease
        .query_drop(
            "CREATE TABLE IF NOT EXISTS oidc_auth_schema (version BIGINT NOT NULL PRIMARY KEY) ENGINE=InnoDB",
        )
        .await?;
    let mut row = lease
        .exec_first(
            "SELECT CAST(COALESCE(MAX(version), 0) AS SIGNED) FROM oidc_auth_schema",
            Params::Empty,
        )
        .await?
        .ok_or_else(unreadable)?;
    let current: i64 = column(&mut row, 0)?;
    let latest = MIGRATIONS.last().map_or(0, |m| m.version);
    if current > latest {
        return Err(Fault::Store(StoreError::Corrupt(format!(
            "the MySQL schema is at version {current}, newer than version {latest} this library knows"
        ))));
    }
    for step in MIGRATIONS.iter().filter(|m| m.version > current) {
        for statement in step.statements {
            lease.query_drop(statement).await?;
        }
        lease
            .exec_drop(
                "INSERT IGNORE INTO oidc_auth_schema (version) VALUES (?)",
                params(vec![Value::Int(step.version)]),
            )
            .await?;
    }
    Ok(())
}

/// A failure inside this backend: a driver error (whose number decides about a retry) or an
/// answer already decided.
enum Fault {
    Db(mysql_async::Error),
    Store(StoreError),
}

impl From<mysql_async::Error> for Fault {
    fn from(error: mysql_async::Error) -> Self {
        Self::Db(error)
    }
}

impl From<StoreError> for Fault {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl Fault {
    fn into_store(self) -> StoreError {
        match self {
            Self::Db(error) => map_error(&error),
            Self::Store(error) => error,
        }
    }

    fn server_code(&self) -> Option<u16> {
        match self {
            Self::Db(mysql_async::Error::Server(error)) => Some(error.code),
            _ => None,
        }
    }

    fn is_retryable(&self) -> bool {
        self.server_code()
            .is_some_and(|code| RETRYABLE.contains(&code))
    }
}

/// A pooled connection that goes back to the pool only in a known state.
///
/// Dropped while an exchange is under way (an operation's deadline struck), after a fatal
/// driver error, inside a transaction or holding a named lock, it closes the connection
/// instead: the server then rolls back and releases every lock, and the pool opens a fresh
/// connection when one is needed.
struct Lease {
    conn: Option<Conn>,
    /// An exchange is under way, or the last one broke the connection.
    busy: bool,
    /// `START TRANSACTION` was sent and neither `COMMIT` nor `ROLLBACK` succeeded since.
    in_transaction: bool,
    /// A named lock may be held.
    holds_lock: bool,
}

impl Lease {
    fn new(conn: Conn) -> Self {
        Self {
            conn: Some(conn),
            busy: false,
            in_transaction: false,
            holds_lock: false,
        }
    }

    /// Executes `sql` with `params` and returns the number of affected rows.
    async fn exec_drop(&mut self, sql: &str, params: Params) -> Result<u64, Fault> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(closed());
        };
        self.busy = true;
        let result = conn.exec_drop(sql, params).await;
        self.busy = matches!(&result, Err(error) if error.is_fatal());
        result?;
        Ok(conn.affected_rows())
    }

    /// The first row `sql` returns, if any.
    async fn exec_first(&mut self, sql: &str, params: Params) -> Result<Option<Row>, Fault> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(closed());
        };
        self.busy = true;
        let result = conn.exec_first::<Row, _, _>(sql, params).await;
        self.busy = matches!(&result, Err(error) if error.is_fatal());
        Ok(result?)
    }

    /// Every row `sql` returns.
    async fn exec_all(&mut self, sql: &str, params: Params) -> Result<Vec<Row>, Fault> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(closed());
        };
        self.busy = true;
        let result = conn.exec::<Row, _, _>(sql, params).await;
        self.busy = matches!(&result, Err(error) if error.is_fatal());
        Ok(result?)
    }

    /// Runs `sql` (no parameters, text protocol).
    async fn query_drop(&mut self, sql: &str) -> Result<(), Fault> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(closed());
        };
        self.busy = true;
        let result = conn.query_drop(sql).await;
        self.busy = matches!(&result, Err(error) if error.is_fatal());
        Ok(result?)
    }

    async fn begin(&mut self) -> Result<(), Fault> {
        self.in_transaction = true;
        self.query_drop("START TRANSACTION").await
    }

    async fn commit(&mut self) -> Result<(), Fault> {
        self.query_drop("COMMIT").await?;
        self.in_transaction = false;
        Ok(())
    }

    async fn rollback(&mut self) -> Result<(), Fault> {
        self.query_drop("ROLLBACK").await?;
        self.in_transaction = false;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !(self.busy || self.in_transaction || self.holds_lock) {
            // Back to the pool.
            return;
        }
        let Some(conn) = self.conn.take() else {
            return;
        };
        // `disconnect` marks the connection closed first, so even when it does not finish in
        // time the pool discards the connection (and its socket) instead of reusing it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.disconnect()).await;
            });
        }
    }
}

fn closed() -> Fault {
    Fault::Db(mysql_async::Error::Driver(DriverError::ConnectionClosed))
}

/// What a transaction body returns: a future borrowing the lease and the body's context.
type TxFuture<'l, T> = Pin<Box<dyn Future<Output = Result<T, Fault>> + Send + 'l>>;

/// Runs `body` with `context` in a transaction on `lease`: committed when it succeeds, rolled
/// back when it fails, and run again when it lost a deadlock or a lock wait.
async fn transaction<C, T, F>(lease: &mut Lease, context: &C, body: F) -> Result<T, Fault>
where
    C: Sync + ?Sized,
    F: for<'l> Fn(&'l mut Lease, &'l C) -> TxFuture<'l, T>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        let attempt = match lease.begin().await {
            Ok(()) => match body(lease, context).await {
                Ok(value) => lease.commit().await.map(|()| value),
                Err(fault) => Err(fault),
            },
            Err(fault) => Err(fault),
        };
        let fault = match attempt {
            Ok(value) => return Ok(value),
            Err(fault) => fault,
        };
        if lease.in_transaction && lease.rollback().await.is_err() {
            // The lease closes the connection; the server rolls back.
            return Err(fault);
        }
        if tries < ATTEMPTS && fault.is_retryable() {
            tracing::debug!(number = ?fault.server_code(), "retrying a MySQL transaction");
            tokio::time::sleep(retry_pause(tries)).await;
            continue;
        }
        return Err(fault);
    }
}

/// The pause before attempt `tries + 1` of a transaction: 1 to 4 ms after the first failure,
/// doubling to at most 16 to 64 ms, random within that range.
fn retry_pause(tries: usize) -> Duration {
    let floor = 1u64 << tries.saturating_sub(1).min(4);
    let mut byte = [0u8; 1];
    let spread = match aws_lc_rs::rand::fill(&mut byte) {
        Ok(()) => u64::from(byte[0]) * 3 * floor / 255,
        Err(_) => floor,
    };
    Duration::from_millis(floor + spread)
}

/// Bounds `operation` by `limit` ([`super::bounded`]), mapping its faults to [`StoreError`].
async fn bounded<T>(
    limit: Duration,
    operation: impl Future<Output = Result<T, Fault>>,
) -> Result<T, StoreError> {
    crate::store::bounded("MySQL", limit, async {
        operation.await.map_err(Fault::into_store)
    })
    .await
}

/// Maps a driver error to a [`StoreError`]. Only the error number travels: server messages
/// quote the offending value (`Duplicate entry '…'`).
fn map_error(error: &mysql_async::Error) -> StoreError {
    use mysql_async::Error as E;
    match error {
        E::Server(server) => {
            let number = server.code;
            let state = server.state.as_str();
            match number {
                // Duplicate key, data too long, bad string value, packet too large, out of
                // range, NULL, bad character set, foreign key.
                1062 | 1406 | 1366 | 1153 | 1264 | 1048 | 1300 | 1452 | 1451 => {
                    StoreError::Rejected(format!("MySQL refused the value (error {number})"))
                }
                // No such table, unknown column: the schema is missing or not ours.
                1146 | 1054 => StoreError::Corrupt(format!(
                    "the MySQL schema does not match; run migrate (error {number})"
                )),
                // Access denied (user, database), unknown database.
                1045 | 1044 | 1049 | 1698 => StoreError::Unavailable(format!(
                    "MySQL refused the login or the database (error {number})"
                )),
                _ if state.starts_with("22") || state.starts_with("23") => StoreError::Rejected(
                    format!("MySQL refused the value (error {number}, SQLSTATE {state})"),
                ),
                _ => StoreError::Unavailable(format!(
                    "MySQL failed (error {number}, SQLSTATE {state})"
                )),
            }
        }
        E::Io(mysql_async::IoError::Io(_)) => {
            StoreError::Unavailable("MySQL connection failed (I/O error)".into())
        }
        E::Io(_) => StoreError::Unavailable("MySQL TLS failed".into()),
        E::Url(error) => url_error(error),
        E::Driver(driver) => match driver {
            DriverError::PoolDisconnected => {
                StoreError::Unavailable("the MySQL pool is closed".into())
            }
            DriverError::ConnectionClosed => {
                StoreError::Unavailable("the MySQL connection is closed".into())
            }
            DriverError::PacketTooLarge => StoreError::Rejected(
                "the values are too large for this MySQL server (max_allowed_packet)".into(),
            ),
            DriverError::FromValue { .. } | DriverError::FromRow { .. } => {
                StoreError::Corrupt("a MySQL row cannot be read back".into())
            }
            DriverError::UnknownAuthPlugin { .. }
            | DriverError::MysqlOldPasswordDisabled
            | DriverError::CleartextPluginDisabled
            | DriverError::NoClientSslFlagFromServer => StoreError::Unavailable(
                "the MySQL login needs something this client does not do (authentication plugin or TLS)"
                    .into(),
            ),
            _ => StoreError::Unavailable("MySQL protocol error".into()),
        },
        _ => StoreError::Unavailable("MySQL failed".into()),
    }
}

fn unreadable() -> Fault {
    Fault::Store(StoreError::Corrupt(
        "a MySQL row cannot be read back".into(),
    ))
}

/// Column `index` of `row`.
fn column<T: mysql_async::prelude::FromValue>(row: &mut Row, index: usize) -> Result<T, Fault> {
    match row.take_opt(index) {
        Some(Ok(value)) => Ok(value),
        _ => Err(unreadable()),
    }
}

/// A text column, read as bytes (binary columns and collations come as bytes) and checked.
fn text(row: &mut Row, index: usize) -> Result<String, Fault> {
    String::from_utf8(column(row, index)?).map_err(|_| unreadable())
}

fn params(values: Vec<Value>) -> Params {
    Params::Positional(values)
}

fn bytes(value: &[u8]) -> Value {
    Value::Bytes(value.to_vec())
}

fn check_identifier(field: &str, value: &str) -> Result<(), Fault> {
    crate::store::check_identifier(field, value).map_err(Fault::Store)
}

fn storable_identifier(value: &str) -> bool {
    value.len() <= MAX_IDENTIFIER_BYTES
}

fn session_from_row(mut row: Row) -> Result<Session, Fault> {
    Ok(Session {
        id: text(&mut row, 0)?,
        subject: text(&mut row, 1)?,
        provider_refresh_token: column(&mut row, 2)?,
        userinfo: text(&mut row, 3)?,
        expires_at: column(&mut row, 4)?,
    })
}

fn key_from_row(mut row: Row) -> Result<StoredKey, Fault> {
    Ok(StoredKey {
        kid: text(&mut row, 0)?,
        alg: text(&mut row, 1)?,
        private_key: column(&mut row, 2)?,
        public_jwk: text(&mut row, 3)?,
        published_at: column(&mut row, 4)?,
        active_from: column(&mut row, 5)?,
        retire_at: column(&mut row, 6)?,
        remove_at: column(&mut row, 7)?,
    })
}

fn session_bytes(session: &Session) -> usize {
    session.id.len()
        + session.subject.len()
        + session.provider_refresh_token.len()
        + session.userinfo.len()
}

fn key_bytes(key: &StoredKey) -> usize {
    key.kid.len() + key.alg.len() + key.private_key.len() + key.public_jwk.len()
}

fn check_refresh(record: &RefreshRecord) -> Result<(), Fault> {
    check_identifier("the token family", &record.family)?;
    check_identifier("the session id", &record.session_id)
}

fn check_key(key: &StoredKey) -> Result<(), Fault> {
    check_identifier("the key id", &key.kid)?;
    check_identifier("the algorithm", &key.alg)
}

async fn insert_refresh_row(lease: &mut Lease, record: &RefreshRecord) -> Result<(), Fault> {
    lease
        .exec_drop(
            "INSERT INTO oidc_auth_refresh_tokens (hash, family, session_id, expires_at) VALUES (?, ?, ?, ?)",
            params(vec![
                bytes(&record.hash),
                bytes(record.family.as_bytes()),
                bytes(record.session_id.as_bytes()),
                Value::Int(record.expires_at),
            ]),
        )
        .await?;
    Ok(())
}

async fn insert_key_row(lease: &mut Lease, key: &StoredKey) -> Result<(), Fault> {
    lease
        .exec_drop(
            "INSERT INTO oidc_auth_signing_keys \
             (kid, alg, private_key, public_jwk, published_at, active_from, retire_at, remove_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            params(vec![
                bytes(key.kid.as_bytes()),
                bytes(key.alg.as_bytes()),
                bytes(&key.private_key),
                bytes(key.public_jwk.as_bytes()),
                Value::Int(key.published_at),
                Value::Int(key.active_from),
                Value::Int(key.retire_at),
                Value::Int(key.remove_at),
            ]),
        )
        .await?;
    Ok(())
}

/// The body of [`Store::rotate_refresh`]'s transaction: lock the old row, decide, write.
async fn rotate_locked(
    lease: &mut Lease,
    old: &[u8; 32],
    new: &[u8; 32],
    now: i64,
) -> Result<RotateOutcome, Fault> {
    let row = lease
        .exec_first(
            "SELECT family, session_id, expires_at, spent, revoked FROM oidc_auth_refresh_tokens \
             WHERE hash = ? FOR UPDATE",
            params(vec![bytes(old)]),
        )
        .await?;
    let found = match row {
        Some(mut row) => Some(FoundRefresh {
            record: RefreshRecord {
                hash: *old,
                family: text(&mut row, 0)?,
                session_id: text(&mut row, 1)?,
                expires_at: column(&mut row, 2)?,
            },
            spent: column(&mut row, 3)?,
            revoked: column(&mut row, 4)?,
        }),
        None => None,
    };
    match rotation_step(found, new, now) {
        RotationStep::Refuse => Ok(RotateOutcome::NotFound),
        RotationStep::Spent(record) => Ok(RotateOutcome::Spent(record)),
        RotationStep::Rotate {
            spent,
            successor,
            spent_until,
        } => {
            lease
                .exec_drop(
                    "UPDATE oidc_auth_refresh_tokens SET spent = 1, expires_at = ? WHERE hash = ?",
                    params(vec![spent_until.into(), bytes(old)]),
                )
                .await?;
            insert_refresh_row(lease, &successor).await?;
            Ok(RotateOutcome::Rotated(spent))
        }
    }
}

/// The body of [`Store::insert_first_key`]'s transaction, serialized by a lock row; `None`
/// when the lock row is missing.
async fn insert_first_key_locked(
    lease: &mut Lease,
    key: &StoredKey,
    now: i64,
) -> Result<Option<bool>, Fault> {
    let lock = lease
        .exec_first(
            "SELECT name FROM oidc_auth_locks WHERE name = ? FOR UPDATE",
            params(vec![bytes(FIRST_KEY_LOCK)]),
        )
        .await?;
    if lock.is_none() {
        // Without the lock row (written by migrate) the check below could race.
        return Ok(None);
    }
    // A locking read sees the latest committed keys, whatever snapshot the transaction has.
    let live = lease
        .exec_first(
            "SELECT kid FROM oidc_auth_signing_keys WHERE retire_at > ? LIMIT 1 FOR UPDATE",
            params(vec![Value::Int(now)]),
        )
        .await?;
    if live.is_some() {
        return Ok(Some(false));
    }
    insert_key_row(lease, key).await?;
    Ok(Some(true))
}

/// The body of the transaction that takes over an existing one-time marker if it has expired;
/// `None` when the marker is gone (purged meanwhile).
async fn take_over_marker(
    lease: &mut Lease,
    key: &[u8; 32],
    expires_at: i64,
    now: i64,
) -> Result<Option<bool>, Fault> {
    let row = lease
        .exec_first(
            "SELECT expires_at FROM oidc_auth_once WHERE marker = ? FOR UPDATE",
            params(vec![bytes(key)]),
        )
        .await?;
    let Some(mut row) = row else {
        return Ok(None);
    };
    let current: i64 = column(&mut row, 0)?;
    if current > now {
        return Ok(Some(false));
    }
    lease
        .exec_drop(
            "UPDATE oidc_auth_once SET expires_at = ? WHERE marker = ?",
            params(vec![Value::Int(expires_at), bytes(key)]),
        )
        .await?;
    Ok(Some(true))
}

impl Store for MysqlStore {
    fn migrate(&self) -> StoreFuture<'_, ()> {
        Box::pin(bounded(MIGRATION_TIMEOUT, self.migrate_now()))
    }

    fn put_session(&self, session: &Session) -> StoreFuture<'_, ()> {
        let session = session.clone();
        Box::pin(bounded(crate::store::OPERATION_TIMEOUT, async move {
            check_identifier("the session id", &session.id)?;
            let mut lease = self.lease().await?;
            self.check_payload(&mut lease, session_bytes(&session))
                .await?;
            lease
                .exec_drop(
                    "INSERT INTO oidc_auth_sessions (id, subject, provider_refresh_token, userinfo, expires_at) \
                     VALUES (?, ?, ?, ?, ?) \
                     ON DUPLICATE KEY UPDATE subject = VALUES(subject), \
                     provider_refresh_token = VALUES(provider_refresh_token), \
                     userinfo = VALUES(userinfo), expires_at = VALUES(expires_at)",
                    params(vec![
                        Value::Bytes(session.id.into_bytes()),
                        Value::Bytes(session.subject.into_bytes()),
                        Value::Bytes(session.provider_refresh_token),
                        Value::Bytes(session.userinfo.into_bytes()),
                        Value::Int(session.expires_at),
                    ]),
                )
                .await?;
            Ok(())
        }))
    }

    fn update_session(&self, session: &Session, now: i64) -> StoreFuture<'_, bool> {
        let session = session.clone();
        Box::pin(bounded(crate::store::OPERATION_TIMEOUT, async move {
            if !storable_identifier(&session.id) {
                return Ok(false);
            }
            let mut lease = self.lease().await?;
            self.check_payload(&mut lease, session_bytes(&session))
                .await?;
            let id = bytes(session.id.as_bytes());
            let changed = lease
                .exec_drop(
                    "UPDATE oidc_auth_sessions SET provider_refresh_token = ?, userinfo = ? \
                     WHERE id = ? AND expires_at > ?",
                    params(vec![
                        Value::Bytes(session.provider_refresh_token),
                        Value::Bytes(session.userinfo.into_bytes()),
                        id.clone(),
                        Value::Int(now),
                    ]),
                )
                .await?;
            if changed > 0 {
                return Ok(true);
            }
            // MySQL counts changed rows, not matched ones: an update to the values already
            // stored changes none, and only a lookup tells whether the session is there.
            let found = lease
                .exec_first(
                    "SELECT 1 FROM oidc_auth_sessions WHERE id = ? AND expires_at > ?",
                    params(vec![id, Value::Int(now)]),
                )
                .await?;
            Ok(found.is_some())
        }))
    }

    fn get_session(&self, id: &str, now: i64) -> StoreFuture<'_, Option<Session>> {
        let id = id.to_owned();
        Box::pin(bounded(crate::store::OPERATION_TIMEOUT, async move {
            if !storable_identifier(&id) {
                return Ok(None);
            }
            let mut lease = self.lease().await?;
            let row = lease
                .exec_first(
                    "SELECT id, subject, provider_refresh_token, userinfo, expires_at \
                     FROM oidc_auth_sessions WHERE id = ? AND expires_at > ?",
                    params(vec![bytes(id.as_bytes()), Value::Int(now)]),
                )
                .await?;
            row.map(session_from_row).transpose()
        }))
    }

    fn delete_session(&self, id: &str) -> StoreFuture<'_, Option<Session>> {
        let id = id.to_owned();
        Box::pin(bounded(crate::store::OPERATION_TIMEOUT, async move {
            if !storable_identifier(&id) {
                return Ok(None);
            }
            let mut lease = self.lease().await?;
            transaction(&mut lease, id.as_bytes(), |lease, id| {
                Box::pin(async move {
                    lease
                        .exec_drop(
                            "DELETE FROM oidc_auth_refresh_tokens WHERE session_id = ?",
                            params(vec![bytes(id)]),
                        )
                        .await?;
                    // Read under the row lock the delete then removes: MySQL has no
                    // DELETE ... RETURNING.
                    let session = lease
                        .exec_first(
                            "SELECT id, subject, provider_refresh_token, userinfo, expires_at \
                             FROM oidc_auth_sessions WHERE id = ? FOR UPDATE",
                            params(vec![bytes(id)]),
                        )
                        .await?
                        .map(session_from_row)
                        .transpose()?;
                    lease
                        .exec_drop(
                            "DELETE FROM oidc_auth_sessions WHERE id = ?",
                            params(vec![bytes(id)]),
                        )
                        .await?;
                    Ok(session)
                })
            })
            .await
        }))
    }

    fn insert_refresh(&self, record: &RefreshRecord) -> StoreFuture<'_, ()> {
        let record = record.clone();
        Box::pin(bounded(crate::store::OPERATION_TIMEOUT, async move {
            check_refresh(&record)?;
            let mut lease = self.lease().await?;
            insert_refresh_row(&mut lease, &record).await
        }))
    }

    fn rotate_refresh(
        &self,
        old: &[u8; 32],
        new: &[u8; 32],
        now: i64,
    ) -> StoreFuture<'_, RotateOutcome> {
        let old = *old;
        let new = *new;
        Box::pin(bounded(crate::store::OPERATION_TIMEOUT, async move {
            let mut lease = self.lease().await?;
            transaction(&mut lease, &(old, new, now), |lease, (old, new, now)| {
                Box::pin(rotate_locked(lease, old, new, *now))
            })
            .await
        }))
    }

    fn revoke_family(&self, family: &str) -> StoreFuture<'_, ()> {
        let family = family.to_owned();
        Box::pin(bounded(crate::store::REVOCATION_TIMEOUT, async move {
            if !storable_identifier(&family) {
                return Ok(());
            }
            let mut lease = self.lease().await?;
            for _ in 0..crate::store::REVOCATION_PASSES {
                let revoked = transaction(&mut lease, family.as_str(), |lease, family| {
                    Box::pin(lease.exec_drop(
                        "UPDATE oidc_auth_refresh_tokens SET revoked = 1 \
                         WHERE family = ? AND revoked = 0",
                        params(vec![bytes(family.as_bytes())]),
                    ))
                })
                .await?;
                if revoked == 0 {
                    break;
                }
            }
            Ok(())
        }))
    }

    fn list_keys(&self) -> StoreFuture<'_, Vec<StoredKey>> {
        Box::pin(bounded(crate::store::OPERATION_TIMEOUT, async move {
            let mut lease = self.lease().await?;
            let rows = lease
                .exec_all(
                    "SELECT kid, alg, private_key, public_jwk, published_at, active_from, retire_at, remove_at \
                     FROM oidc_auth_signing_keys ORDER BY published_at, kid",
                    Params::Empty,
                )
                .await?;
            rows.into_iter().map(key_from_row).collect()
        }))
    }

    fn insert_first_key(&self, key: &StoredKey, now: i64) -> StoreFuture<'_, bool> {
        let key = key.clone();
        Box::pin(bounded(crate::store::OPERATION_TIMEOUT, async move {
            check_key(&key)?;
            let mut lease = self.lease().await?;
            self.check_payload(&mut lease, key_bytes(&key)).await?;
            transaction(&mut lease, &(key, now), |lease, (key, now)| {
                Box::pin(insert_first_key_locked(lease, key, *now))
            })
            .await?
            .ok_or_else(|| {
                Fault::Store(StoreError::Corrupt(
                    "the MySQL lock row is missing; run migrate".into(),
                ))
            })
        }))
    }

    fn insert_key(&self, key: &StoredKey) -> StoreFuture<'_, ()> {
        let key = key.clone();
        Box::pin(bounded(crate::store::OPERATION_TIMEOUT, async move {
            check_key(&key)?;
            let mut lease = self.lease().await?;
            self.check_payload(&mut lease, key_bytes(&key)).await?;
            insert_key_row(&mut lease, &key).await
        }))
    }

    fn delete_key(&self, kid: &str) -> StoreFuture<'_, ()> {
        let kid = kid.to_owned();
        Box::pin(bounded(crate::store::OPERATION_TIMEOUT, async move {
            if !storable_identifier(&kid) {
                return Ok(());
            }
            let mut lease = self.lease().await?;
            lease
                .exec_drop(
                    "DELETE FROM oidc_auth_signing_keys WHERE kid = ?",
                    params(vec![bytes(kid.as_bytes())]),
                )
                .await?;
            Ok(())
        }))
    }

    fn put_peer_jwks(&self, issuer: &str, jwks: &str, fetched_at: i64) -> StoreFuture<'_, ()> {
        let issuer = issuer.to_owned();
        let jwks = jwks.to_owned();
        Box::pin(bounded(crate::store::OPERATION_TIMEOUT, async move {
            check_identifier("the issuer", &issuer)?;
            let mut lease = self.lease().await?;
            self.check_payload(&mut lease, issuer.len() + jwks.len())
                .await?;
            lease
                .exec_drop(
                    "INSERT INTO oidc_auth_peer_jwks (issuer, jwks, fetched_at) VALUES (?, ?, ?) \
                     ON DUPLICATE KEY UPDATE \
                     jwks = IF(VALUES(fetched_at) >= fetched_at \
                     OR fetched_at > VALUES(fetched_at) + ?, VALUES(jwks), jwks), \
                     fetched_at = IF(VALUES(fetched_at) >= fetched_at \
                     OR fetched_at > VALUES(fetched_at) + ?, VALUES(fetched_at), fetched_at)",
                    params(vec![
                        Value::Bytes(issuer.into_bytes()),
                        Value::Bytes(jwks.into_bytes()),
                        Value::Int(fetched_at),
                        Value::Int(crate::store::PEER_JWKS_AHEAD_SECS),
                        Value::Int(crate::store::PEER_JWKS_AHEAD_SECS),
                    ]),
                )
                .await?;
            Ok(())
        }))
    }

    fn get_peer_jwks(&self, issuer: &str) -> StoreFuture<'_, Option<(String, i64)>> {
        let issuer = issuer.to_owned();
        Box::pin(bounded(crate::store::OPERATION_TIMEOUT, async move {
            if !storable_identifier(&issuer) {
                return Ok(None);
            }
            let mut lease = self.lease().await?;
            let row = lease
                .exec_first(
                    "SELECT jwks, fetched_at FROM oidc_auth_peer_jwks WHERE issuer = ?",
                    params(vec![bytes(issuer.as_bytes())]),
                )
                .await?;
            row.map(|mut row| Ok((text(&mut row, 0)?, column(&mut row, 1)?)))
                .transpose()
        }))
    }

    fn consume_once(&self, key: &[u8; 32], expires_at: i64, now: i64) -> StoreFuture<'_, bool> {
        let key = *key;
        Box::pin(bounded(crate::store::OPERATION_TIMEOUT, async move {
            let mut lease = self.lease().await?;
            // Twice at most: a marker that expired and was purged between the two steps is
            // free on the second insert.
            for _ in 0..2 {
                let inserted = lease
                    .exec_drop(
                        "INSERT IGNORE INTO oidc_auth_once (marker, expires_at) VALUES (?, ?)",
                        params(vec![bytes(&key), Value::Int(expires_at)]),
                    )
                    .await?;
                if inserted == 1 {
                    return Ok(true);
                }
                // The marker exists: take it over if it has expired, under its row lock, so
                // exactly one of concurrent takers wins (independent of CLIENT_FOUND_ROWS).
                let context = (key, expires_at, now);
                let taken = transaction(&mut lease, &context, |lease, (key, expires_at, now)| {
                    Box::pin(take_over_marker(lease, key, *expires_at, *now))
                })
                .await?;
                if let Some(taken) = taken {
                    return Ok(taken);
                }
            }
            Ok(false)
        }))
    }

    fn is_consumed(&self, key: &[u8; 32], now: i64) -> StoreFuture<'_, bool> {
        let key = *key;
        Box::pin(bounded(crate::store::OPERATION_TIMEOUT, async move {
            let mut lease = self.lease().await?;
            let row = lease
                .exec_first(
                    "SELECT 1 FROM oidc_auth_once WHERE marker = ? AND expires_at > ?",
                    params(vec![bytes(&key), Value::Int(now)]),
                )
                .await?;
            Ok(row.is_some())
        }))
    }

    fn purge_expired(&self, now: i64) -> StoreFuture<'_, u64> {
        // In batches that commit one by one (autocommit): a backlog's progress survives the
        // deadline, and InnoDB holds the locks of one batch at a time.
        Box::pin(bounded(crate::store::PURGE_TIMEOUT, async move {
            // One connection for every batch, so not through `purge_in_batches`, whose batches
            // cannot borrow it in turn.
            let mut lease = self.lease().await?;
            let mut removed = 0;
            for statement in [
                "DELETE FROM oidc_auth_sessions WHERE expires_at <= ? LIMIT ?",
                "DELETE FROM oidc_auth_refresh_tokens WHERE expires_at <= ? LIMIT ?",
                "DELETE FROM oidc_auth_signing_keys WHERE remove_at <= ? LIMIT ?",
                "DELETE FROM oidc_auth_once WHERE expires_at <= ? LIMIT ?",
            ] {
                loop {
                    // Each batch its own transaction, tried again when it loses a deadlock
                    // against a rotation or a revocation.
                    let batch = transaction(&mut lease, &(statement, now), |lease, (sql, now)| {
                        Box::pin(lease.exec_drop(
                            sql,
                            params(vec![
                                Value::Int(*now),
                                Value::UInt(crate::store::PURGE_BATCH),
                            ]),
                        ))
                    })
                    .await?;
                    removed += batch;
                    if batch < crate::store::PURGE_BATCH {
                        break;
                    }
                }
            }
            Ok(removed)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Transactions that deadlocked together do not retry in step, and the pause grows but
    /// stays short next to the call's deadline.
    #[test]
    fn retry_pauses_are_jittered_and_bounded() {
        for (tries, low, high) in [(1, 1, 4), (2, 2, 8), (5, 16, 64), (9, 16, 64)] {
            let pauses: std::collections::HashSet<Duration> =
                (0..200).map(|_| retry_pause(tries)).collect();
            assert!(pauses.len() > 1, "after {tries}: {pauses:?}");
            for pause in &pauses {
                assert!(
                    (Duration::from_millis(low)..=Duration::from_millis(high)).contains(pause),
                    "after {tries}: {pause:?}"
                );
            }
        }
        let worst: Duration = (1..ATTEMPTS)
            .map(|tries| Duration::from_millis(4 << (tries - 1).min(4)))
            .sum();
        assert!(worst < Duration::from_millis(200), "{worst:?}");
    }

    /// `connect`'s connections wait for a lock at most 3 s, row locks and metadata locks
    /// alike (the server defaults are 50 s and a year), and a table held by another session's
    /// `LOCK TABLES` past a call's deadline costs that call a 503 within 5 s, after which the
    /// store works again once the table is free. Needs `OIDC_AUTH_TEST_MYSQL_URL`.
    #[cfg(feature = "testing")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_wait_for_locks_only_as_long_as_a_store_call() {
        let Some(url) = std::env::var("OIDC_AUTH_TEST_MYSQL_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("skipped: OIDC_AUTH_TEST_MYSQL_URL is not set");
            return;
        };
        let scratch = crate::store::conformance::MysqlScratch::create(&url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let store = MysqlStore::connect(scratch.url())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        let mut conn = store
            .pool()
            .get_conn()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let waits: Option<(i64, i64)> = conn
            .query_first("SELECT @@SESSION.innodb_lock_wait_timeout, @@SESSION.lock_wait_timeout")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(waits, Some((3, 3)));
        drop(conn);

        let admin = Pool::new(Opts::from_url(scratch.url()).unwrap_or_else(|e| panic!("{e}")));
        let mut locker = admin.get_conn().await.unwrap_or_else(|e| panic!("{e}"));
        locker
            .query_drop("LOCK TABLES oidc_auth_sessions WRITE")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let started = std::time::Instant::now();
        let read = store.get_session("s", 1_000).await;
        assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        locker
            .query_drop("UNLOCK TABLES")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        drop(locker);
        let _ = admin.disconnect().await;
        assert!(store.get_session("s", 1_000).await.is_ok());
        drop(store);
        scratch.remove().await.unwrap_or_else(|e| panic!("{e}"));
    }
}
