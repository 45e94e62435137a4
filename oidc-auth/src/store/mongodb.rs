//! The MongoDB [`Store`] backend (feature `mongodb`).
//!
//! Five collections, all prefixed `oidc_auth_`: `oidc_auth_sessions`, `oidc_auth_refresh_tokens`,
//! `oidc_auth_signing_keys`, `oidc_auth_peer_jwks` and `oidc_auth_once`. Every document keeps its
//! identifier in `_id` (session id, token hash, key id, issuer, marker), so MongoDB's built-in
//! unique `_id_` index is the unique key id / token hash / marker constraint. The collection
//! `oidc_auth_schema` records which versioned migrations ran; [`Store::migrate`] applies the
//! missing ones. A migration step only creates indexes under fixed names, which is idempotent,
//! and its version is recorded after it, so several instances migrating at once, or a step
//! interrupted half-way, simply run the step again. Expiry is plain `i64` Unix seconds with
//! ordinary (not TTL) indexes: [`Store::purge_expired`] deletes, the server never does on its
//! own.
//!
//! No operation needs a multi-document transaction, so a standalone server works as well as a
//! replica set or a sharded cluster:
//!
//! * [`Store::rotate_refresh`] spends the old token with one conditional `findAndModify` (only
//!   a live token matches), so exactly one of concurrent rotations wins; the others find the
//!   token spent, which is reuse, and revoke the family.
//! * [`Store::insert_first_key`] inserts the key with a `first_key_slot` field that a unique
//!   partial index allows on one key only (details on [`MongoStore`]).
//! * [`Store::consume_once`] is one upsert on the marker's `_id` whose filter only matches an
//!   expired marker: a live one makes the upsert collide on `_id` (false).
//!
//! Values are stored verbatim: strings as BSON strings (compared byte by byte; a NUL character
//! round-trips, BSON strings are length-prefixed), bytes as BSON binary (generic subtype), times
//! as 64-bit integers, and every value travels as a value, never as part of a query operator.
//! Identifiers (session ids, token families, key ids, algorithm names, issuers) longer than
//! [`MAX_IDENTIFIER_BYTES`] are refused with [`StoreError::Rejected`] (looked up, they are simply
//! absent), and so is a document larger than MongoDB's 16 MiB limit.
//!
//! [`MongoStore::connect`] waits at most [`SERVER_SELECTION_TIMEOUT`] for a server, so a
//! stopped database answers [`StoreError::Unavailable`] within that time; the driver reconnects
//! on its own once the database is back. Every operation, its wait for a server included, is
//! bounded by a deadline of 4.5 seconds (sixty for migrations). Error messages never quote the
//! connection string, a server message or a stored value.

use std::time::Duration;

use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{
    ClientOptions, CollectionOptions, ConnectionString, IndexOptions, ReadPreference,
    SelectionCriteria,
};
use mongodb::{Client, Collection, Database, IndexModel};

use super::{RefreshRecord, RotateOutcome, Session, Store, StoreError, StoreFuture, StoredKey};

pub use super::MAX_IDENTIFIER_BYTES;

/// The largest document MongoDB stores (16 MiB); a session, key or peer JWKS whose document
/// would be larger is [`StoreError::Rejected`].
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// The database [`MongoStore::connect`] uses when the connection string names none.
pub const DEFAULT_DATABASE: &str = "oidc_auth";

/// How long [`MongoStore::connect`]'s client waits for a suitable server before it answers
/// [`StoreError::Unavailable`], unless the connection string sets `serverSelectionTimeoutMS`.
pub const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(4);

/// How long [`MongoStore::connect`]'s client waits for a TCP (and TLS) connection, unless the
/// connection string sets `connectTimeoutMS`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);

const MIGRATION_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts of a migration that lost a race against another instance's identical one, and of a
/// rotation that found its token live again after a concurrent, failed rotation undid itself.
const ATTEMPTS: usize = 3;

const SCHEMA: &str = "oidc_auth_schema";
const SESSIONS: &str = "oidc_auth_sessions";
const REFRESH_TOKENS: &str = "oidc_auth_refresh_tokens";
const SIGNING_KEYS: &str = "oidc_auth_signing_keys";
const PEER_JWKS: &str = "oidc_auth_peer_jwks";
const ONCE: &str = "oidc_auth_once";

/// The field of the signing key that [`Store::insert_first_key`] inserted and that is still
/// active, and the unique partial index on it.
const FIRST_KEY_SLOT: &str = "first_key_slot";
const FIRST_KEY_SLOT_INDEX: &str = "oidc_auth_signing_keys_first_key_slot";

// Server error codes (https://github.com/mongodb/mongo/blob/master/src/mongo/base/error_codes.yml).
const BAD_VALUE: i32 = 2;
const INVALID_BSON: i32 = 22;
const NAMESPACE_EXISTS: i32 = 48;
const INDEX_OPTIONS_CONFLICT: i32 = 85;
const INDEX_KEY_SPECS_CONFLICT: i32 = 86;
const WRITE_CONFLICT: i32 = 112;
const INDEX_BUILD_ALREADY_IN_PROGRESS: i32 = 276;
const BSON_OBJECT_TOO_LARGE: i32 = 10334;
const DUPLICATE_KEY: i32 = 11000;
const DUPLICATE_KEY_LEGACY: i32 = 11001;
const DUPLICATE_KEY_MONGOS: i32 = 12582;
const KEY_TOO_LONG: i32 = 17280;
const UPDATED_DOCUMENT_TOO_LARGE: i32 = 17419;

/// One schema version: the indexes that bring the schema from the previous version to it.
struct Migration {
    version: i64,
    indexes: fn() -> Vec<(&'static str, IndexModel)>,
}

/// The ordered migrations; a new version appends a step, never edits one.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    indexes: version_1,
}];

fn index(name: &str, keys: Document) -> IndexModel {
    IndexModel::builder()
        .keys(keys)
        .options(IndexOptions::builder().name(name.to_owned()).build())
        .build()
}

fn version_1() -> Vec<(&'static str, IndexModel)> {
    vec![
        (
            SESSIONS,
            index("oidc_auth_sessions_expires_at", doc! { "expires_at": 1 }),
        ),
        (
            REFRESH_TOKENS,
            index("oidc_auth_refresh_tokens_family", doc! { "family": 1 }),
        ),
        (
            REFRESH_TOKENS,
            index(
                "oidc_auth_refresh_tokens_session_id",
                doc! { "session_id": 1 },
            ),
        ),
        (
            REFRESH_TOKENS,
            index(
                "oidc_auth_refresh_tokens_expires_at",
                doc! { "expires_at": 1 },
            ),
        ),
        (
            SIGNING_KEYS,
            IndexModel::builder()
                .keys(doc! { FIRST_KEY_SLOT: 1 })
                .options(
                    IndexOptions::builder()
                        .name(FIRST_KEY_SLOT_INDEX.to_owned())
                        .unique(true)
                        .partial_filter_expression(doc! { FIRST_KEY_SLOT: { "$exists": true } })
                        .build(),
                )
                .build(),
        ),
        (
            ONCE,
            index("oidc_auth_once_expires_at", doc! { "expires_at": 1 }),
        ),
    ]
}

/// The [`Store`] on MongoDB.
///
/// Cloning is cheap and shares the client's connection pool.
///
/// ```no_run
/// # async fn demo() -> Result<(), oidc_auth::store::StoreError> {
/// use std::sync::Arc;
/// use oidc_auth::store::{Store, mongodb::MongoStore};
///
/// let store = MongoStore::connect("mongodb://broker:password@db.internal/broker").await?;
/// store.migrate().await?;
/// let store: Arc<dyn Store> = Arc::new(store);
/// # drop(store);
/// # Ok(())
/// # }
/// ```
///
/// # The first signing key
///
/// [`Store::insert_first_key`] must let exactly one of several instances starting at once
/// insert its key. Without a transaction this is done with a unique index: the key is inserted
/// with `first_key_slot: 1`, and a unique index restricted to documents that have this field
/// admits one such key at a time, so of concurrent inserts exactly one succeeds and the others
/// collide (false). Before inserting, the call answers false if any key is active at `now`
/// (`retire_at > now`, as in every backend), and removes the field from a slot holder that has
/// retired by `now`, which frees the slot for the next first key; a holder that is still active
/// is never touched, and deleting or purging a key frees its slot with it.
#[derive(Clone)]
pub struct MongoStore {
    database: Database,
}

impl std::fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoStore")
            .field("database", &self.database.name())
            .finish_non_exhaustive()
    }
}

impl MongoStore {
    /// Connects to `url` (`mongodb://user:password@host:port/database?options`, or
    /// `mongodb+srv://…`, which looks the servers up in DNS) and uses the database named in its
    /// path, [`DEFAULT_DATABASE`] when there is none. As always with MongoDB, that database is
    /// also where the user is authenticated unless the URL sets `authSource`.
    ///
    /// The client waits at most [`SERVER_SELECTION_TIMEOUT`] for a server and
    /// [`CONNECT_TIMEOUT`] for a connection unless the URL sets `serverSelectionTimeoutMS` or
    /// `connectTimeoutMS`. The server is pinged right away, so a wrong URL or an unreachable
    /// server shows at start: an unparsable URL, a failed DNS lookup, a refused login or an
    /// unreachable server is [`StoreError::Unavailable`], whose message never contains the URL.
    /// Run [`Store::migrate`] before first use. To start while the database is still down,
    /// build a client yourself and use [`MongoStore::from_database`].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), oidc_auth::store::StoreError> {
    /// let store = oidc_auth::store::mongodb::MongoStore::connect(
    ///     "mongodb://broker:password@127.0.0.1:27017/broker?authSource=admin",
    /// )
    /// .await?;
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        crate::store::bounded("MongoDB", crate::store::OPERATION_TIMEOUT, async {
            let connection_string = ConnectionString::parse(url).map_err(|_| invalid_url())?;
            let name = database_name(&connection_string);
            let mut options = ClientOptions::parse(connection_string)
                .await
                .map_err(|error| match error.kind.as_ref() {
                    ErrorKind::DnsResolve { .. } => StoreError::Unavailable(
                        "the DNS lookup of the MongoDB servers failed".into(),
                    ),
                    _ => invalid_url(),
                })?;
            options
                .server_selection_timeout
                .get_or_insert(SERVER_SELECTION_TIMEOUT);
            options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
            options.app_name.get_or_insert_with(|| "oidc-auth".into());
            let client = Client::with_options(options).map_err(|_| invalid_url())?;
            let database = client.database(&name);
            database
                .run_command(doc! { "ping": 1 })
                .await
                .map_err(|e| map_error(&e))?;
            Ok(Self { database })
        })
        .await
    }

    /// A store on a database of a client the application built itself (its own pool size,
    /// timeouts, TLS, read and write concerns). Give the client a `server_selection_timeout` of
    /// a few seconds so an outage answers quickly instead of waiting for the thirty-second
    /// default; every operation of the store is bounded by 4.5 seconds regardless.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), mongodb::error::Error> {
    /// use std::time::Duration;
    /// use mongodb::{Client, options::ClientOptions};
    /// use oidc_auth::store::mongodb::MongoStore;
    ///
    /// let mut options = ClientOptions::parse("mongodb://127.0.0.1:27017").await?;
    /// options.server_selection_timeout = Some(Duration::from_secs(3));
    /// let client = Client::with_options(options)?;
    /// let store = MongoStore::from_database(client.database("broker"));
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_database(database: Database) -> Self {
        Self { database }
    }

    /// The database this store uses, for health checks, or for dropping a scratch database in
    /// tests.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = oidc_auth::store::mongodb::MongoStore::connect("mongodb://127.0.0.1/broker").await?;
    /// store.database().run_command(mongodb::bson::doc! { "ping": 1 }).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The collection `name`, read from the primary whatever the client's read preference: a
    /// lagging secondary could miss a session, a rotation or a mark just written, and a
    /// refresh right after a login would then end the session it cannot find.
    fn collection(&self, name: &str) -> Collection<Document> {
        self.database.collection_with_options(
            name,
            CollectionOptions::builder()
                .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
                .build(),
        )
    }

    async fn migrate_now(&self) -> Result<(), StoreError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.migrate_once().await {
                Ok(()) => return Ok(()),
                Err(Failure::Driver(error)) if tries < ATTEMPTS && is_ddl_race(&error) => {
                    tracing::debug!(
                        code = ?server_code(&error),
                        "retrying a MongoDB migration that raced another instance"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(failure) => return Err(failure.into()),
            }
        }
    }

    async fn migrate_once(&self) -> Result<(), Failure> {
        let schema = self.collection(SCHEMA);
        let newest = schema.find_one(doc! {}).sort(doc! { "_id": -1 }).await?;
        let current = match newest {
            None => 0,
            Some(document) => match document.get("_id") {
                Some(Bson::Int64(version)) => *version,
                Some(Bson::Int32(version)) => i64::from(*version),
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "{SCHEMA} holds a version that is not an integer"
                    ))
                    .into());
                }
            },
        };
        crate::store::check_version(
            "MongoDB",
            current,
            MIGRATIONS.last().map_or(0, |m| m.version),
        )?;
        for step in MIGRATIONS.iter().filter(|m| m.version > current) {
            for (collection, model) in (step.indexes)() {
                self.collection(collection).create_index(model).await?;
            }
            match schema.insert_one(doc! { "_id": step.version }).await {
                Ok(_) => {}
                // Another instance finished the same step first.
                Err(error) if is_duplicate_key(&error) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// [`Store::rotate_refresh`] without a transaction: read the old token (a spent, revoked,
    /// expired or unknown one is answered from that), check the successor is free, spend the
    /// old token conditionally, store the successor. Should the deadline cut this off between
    /// the spend and the insert (and the undo fail too), the old token stays spent without a
    /// successor. Presented again before any answer was marked, it is answered with that
    /// successor, which is not on record: the successor's first refresh ends the session, and
    /// the user signs in again. That errs on the safe side (no token outlives its family), at
    /// the cost of one session; the SQL backends, with their transaction, never get there.
    async fn rotate_now(
        &self,
        old: &[u8; 32],
        new: &[u8; 32],
        now: i64,
    ) -> Result<RotateOutcome, StoreError> {
        let tokens = self.collection(REFRESH_TOKENS);
        let mut successor_seen = false;
        for _ in 0..ATTEMPTS {
            // The old token's state first, as the other backends read it: a client retrying a
            // refresh presents the same token, the broker asks for the same successor, and that
            // successor is stored by now. The token must still be answered as spent (with its
            // record, so the broker can tell a retry from reuse), not refused as a conflict.
            let Some(document) = tokens
                .find_one(doc! { "_id": binary(old) })
                .await
                .map_err(|e| map_error(&e))?
            else {
                return Ok(RotateOutcome::NotFound);
            };
            let record = RefreshRecord {
                hash: *old,
                ..refresh_from_document(&document)?
            };
            if get_bool(&document, "revoked")? || record.expires_at <= now {
                return Ok(RotateOutcome::NotFound);
            }
            if get_bool(&document, "spent")? {
                return Ok(RotateOutcome::Spent(record));
            }
            // A successor that collides is refused before the old token changes. Read once more
            // first: a concurrent rotation of the same token (which asks for the same successor)
            // may have stored it since the old token was read, and this one is then spent.
            let taken = tokens
                .find_one(doc! { "_id": binary(new) })
                .projection(doc! { "_id": 1 })
                .await
                .map_err(|e| map_error(&e))?;
            if taken.is_some() {
                if successor_seen {
                    return Err(StoreError::Rejected(
                        "the new refresh token conflicts with a stored one".into(),
                    ));
                }
                successor_seen = true;
                continue;
            }
            // Only a live token matches, and a document is updated by one writer at a time: of
            // concurrent rotations exactly one gets the token back.
            let live = tokens
                .find_one_and_update(
                    doc! {
                        "_id": binary(old),
                        "spent": false,
                        "revoked": false,
                        "expires_at": { "$gt": now },
                    },
                    doc! {
                        "$set": { "spent": true },
                        "$min": { "expires_at": now.saturating_add(crate::store::SPENT_REFRESH_KEPT) },
                    },
                )
                .await
                .map_err(|e| map_error(&e))?;
            let Some(document) = live else {
                // A concurrent rotation or revocation changed it since it was read: the next
                // pass reads what that left (every loser of a race is told it was spent).
                continue;
            };
            let spent = RefreshRecord {
                hash: *old,
                ..refresh_from_document(&document)?
            };
            let successor = RefreshRecord {
                hash: *new,
                ..spent.clone()
            };
            if let Err(error) = tokens.insert_one(refresh_document(&successor)).await {
                // Undo the spend so the client may present the old token again. Should this
                // fail too, presenting it again is reuse: the family goes, which is the safe
                // side.
                let _ = tokens
                    .update_one(
                        doc! { "_id": binary(old), "spent": true },
                        doc! { "$set": { "spent": false, "expires_at": spent.expires_at } },
                    )
                    .await;
                return Err(map_error(&error));
            }
            // A concurrent revocation of the family (reuse found elsewhere) may have run before
            // the successor was inserted and missed it: if the old token is revoked by now, the
            // family is revoked again, successor included.
            let revoked = tokens
                .find_one(doc! { "_id": binary(old), "revoked": true })
                .projection(doc! { "_id": 1 })
                .await
                .map_err(|e| map_error(&e))?;
            if revoked.is_some() {
                revoke(&tokens, &spent.family).await?;
            }
            return Ok(RotateOutcome::Rotated(spent));
        }
        Err(StoreError::Unavailable(
            "the refresh token kept changing during its rotation".into(),
        ))
    }

    /// [`Store::insert_first_key`], serialized by the unique slot index (see [`MongoStore`]).
    async fn insert_first_key_now(&self, key: &StoredKey, now: i64) -> Result<bool, StoreError> {
        let keys = self.collection(SIGNING_KEYS);
        let mut document = key_document(key)?;
        let active = keys
            .find_one(doc! { "retire_at": { "$gt": now } })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(|e| map_error(&e))?;
        if active.is_some() {
            return Ok(false);
        }
        // Free the slot of a first key that has retired by `now` (never of an active one).
        keys.update_many(
            doc! { FIRST_KEY_SLOT: { "$exists": true }, "retire_at": { "$lte": now } },
            doc! { "$unset": { FIRST_KEY_SLOT: "" } },
        )
        .await
        .map_err(|e| map_error(&e))?;
        document.insert(FIRST_KEY_SLOT, 1_i32);
        match keys.insert_one(document).await {
            Ok(_) => Ok(true),
            Err(error) if is_duplicate_key(&error) => {
                // The slot is taken (another instance won), or the key id exists.
                let slot = duplicate_key_message(&error)
                    .is_some_and(|message| message.contains(FIRST_KEY_SLOT_INDEX));
                if slot {
                    return Ok(false);
                }
                let same_kid = keys
                    .find_one(doc! { "_id": &key.kid })
                    .projection(doc! { "_id": 1 })
                    .await
                    .map_err(|e| map_error(&e))?;
                if same_kid.is_some() {
                    Err(map_error(&error))
                } else {
                    Ok(false)
                }
            }
            Err(error) => Err(map_error(&error)),
        }
    }

    /// Deletes what expired at `now`, collection by collection, in batches of at most
    /// [`PURGE_BATCH`](crate::store::PURGE_BATCH) documents (their ids read first, then deleted
    /// by id), as the SQL backends do: a large backlog goes a batch at a time, and what a purge
    /// cut short by its deadline deleted stays deleted.
    async fn purge_now(&self, now: i64) -> Result<u64, StoreError> {
        let mut removed = 0;
        for (collection, field) in [
            (SESSIONS, "expires_at"),
            (REFRESH_TOKENS, "expires_at"),
            (SIGNING_KEYS, "remove_at"),
            (ONCE, "expires_at"),
        ] {
            let documents = self.collection(collection);
            loop {
                let mut cursor = documents
                    .find(doc! { field: { "$lte": now } })
                    .projection(doc! { "_id": 1 })
                    .limit(crate::store::PURGE_BATCH as i64)
                    .await
                    .map_err(|e| map_error(&e))?;
                let mut ids = Vec::new();
                while cursor.advance().await.map_err(|e| map_error(&e))? {
                    let document = cursor.deserialize_current().map_err(|e| map_error(&e))?;
                    if let Some(id) = document.get("_id") {
                        ids.push(id.clone());
                    }
                }
                if ids.is_empty() {
                    break;
                }
                let found = ids.len() as u64;
                removed += documents
                    .delete_many(doc! { "_id": { "$in": ids }, field: { "$lte": now } })
                    .await
                    .map_err(|e| map_error(&e))?
                    .deleted_count;
                if found < crate::store::PURGE_BATCH {
                    break;
                }
            }
        }
        Ok(removed)
    }
}

/// A migration failure: the driver's (perhaps retried), or a decision of ours.
enum Failure {
    Driver(mongodb::error::Error),
    Store(StoreError),
}

impl From<mongodb::error::Error> for Failure {
    fn from(error: mongodb::error::Error) -> Self {
        Self::Driver(error)
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl From<Failure> for StoreError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Driver(error) => map_error(&error),
            Failure::Store(error) => error,
        }
    }
}

/// The database a connection string names, [`DEFAULT_DATABASE`] when it names none.
fn database_name(connection_string: &ConnectionString) -> String {
    connection_string
        .default_database
        .clone()
        .unwrap_or_else(|| DEFAULT_DATABASE.to_owned())
}

/// The driver's parse errors may quote parts of the URL (a password among them): none is kept.
fn invalid_url() -> StoreError {
    StoreError::Unavailable(
        "the MongoDB connection string is invalid (mongodb://user:password@host:port/database?options)"
            .into(),
    )
}

/// The server's error code, if the server answered with one.
fn server_code(error: &mongodb::error::Error) -> Option<i32> {
    match error.kind.as_ref() {
        ErrorKind::Command(e) => Some(e.code),
        ErrorKind::Write(WriteFailure::WriteError(e)) => Some(e.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(e)) => Some(e.code),
        _ => None,
    }
}

fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Command(e) => is_duplicate_key_code(e.code),
        ErrorKind::Write(WriteFailure::WriteError(e)) => is_duplicate_key_code(e.code),
        _ => false,
    }
}

fn is_duplicate_key_code(code: i32) -> bool {
    matches!(
        code,
        DUPLICATE_KEY | DUPLICATE_KEY_LEGACY | DUPLICATE_KEY_MONGOS
    )
}

/// The server's message of a duplicate key error, which names the index (`… index: <name> dup
/// key: …`). Only inspected, never passed on: it quotes the value.
fn duplicate_key_message(error: &mongodb::error::Error) -> Option<&str> {
    match error.kind.as_ref() {
        ErrorKind::Command(e) if is_duplicate_key_code(e.code) => Some(&e.message),
        ErrorKind::Write(WriteFailure::WriteError(e)) if is_duplicate_key_code(e.code) => {
            Some(&e.message)
        }
        _ => None,
    }
}

/// Index builds and implicit collection creation that collided with another instance's.
fn is_ddl_race(error: &mongodb::error::Error) -> bool {
    matches!(
        server_code(error),
        Some(NAMESPACE_EXISTS | WRITE_CONFLICT | INDEX_BUILD_ALREADY_IN_PROGRESS)
    )
}

/// Maps a driver error to a [`StoreError`]. Only error codes travel: server messages can quote
/// the offending value, and driver messages the connection string.
fn map_error(error: &mongodb::error::Error) -> StoreError {
    match error.kind.as_ref() {
        ErrorKind::Command(e) => map_code(e.code),
        ErrorKind::Write(WriteFailure::WriteError(e)) => map_code(e.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(e)) => StoreError::Unavailable(format!(
            "MongoDB did not confirm the write (write concern error {})",
            e.code
        )),
        ErrorKind::Authentication { .. } => {
            StoreError::Unavailable("MongoDB refused the login".into())
        }
        ErrorKind::ServerSelection { .. } => StoreError::Unavailable(
            "no suitable MongoDB server answered within the server selection timeout".into(),
        ),
        ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => {
            StoreError::Unavailable("MongoDB connection failed (I/O error)".into())
        }
        ErrorKind::DnsResolve { .. } => {
            StoreError::Unavailable("the DNS lookup of the MongoDB servers failed".into())
        }
        ErrorKind::InvalidTlsConfig { .. } => {
            StoreError::Unavailable("the MongoDB TLS settings are invalid".into())
        }
        ErrorKind::InvalidResponse { .. } => {
            StoreError::Unavailable("MongoDB sent an invalid reply".into())
        }
        ErrorKind::IncompatibleServer { .. } => {
            StoreError::Unavailable("the MongoDB server is not supported by the driver".into())
        }
        ErrorKind::Shutdown => StoreError::Unavailable("the MongoDB client is shut down".into()),
        ErrorKind::BsonDeserialization(_) => {
            StoreError::Corrupt("a MongoDB document cannot be read back".into())
        }
        ErrorKind::BsonSerialization(_) | ErrorKind::InvalidArgument { .. } => {
            StoreError::Rejected("the MongoDB driver refused the value".into())
        }
        _ => StoreError::Unavailable("MongoDB failed".into()),
    }
}

fn map_code(code: i32) -> StoreError {
    match code {
        DUPLICATE_KEY | DUPLICATE_KEY_LEGACY | DUPLICATE_KEY_MONGOS => StoreError::Rejected(
            format!("the value conflicts with a stored one (MongoDB error {code})"),
        ),
        BAD_VALUE
        | INVALID_BSON
        | BSON_OBJECT_TOO_LARGE
        | KEY_TOO_LONG
        | UPDATED_DOCUMENT_TOO_LARGE => {
            StoreError::Rejected(format!("MongoDB refused the value (error {code})"))
        }
        INDEX_OPTIONS_CONFLICT | INDEX_KEY_SPECS_CONFLICT => StoreError::Corrupt(format!(
            "the MongoDB indexes do not match this library's (error {code})"
        )),
        _ => StoreError::Unavailable(format!("MongoDB failed (error {code})")),
    }
}

/// Refuses a document MongoDB would not store, before it is sent.
fn check_size(what: &str, document: &Document) -> Result<(), StoreError> {
    let mut encoded = Vec::new();
    document
        .to_writer(&mut encoded)
        .map_err(|_| StoreError::Rejected(format!("{what} cannot be encoded as BSON")))?;
    if encoded.len() > MAX_DOCUMENT_BYTES {
        return Err(StoreError::Rejected(format!(
            "{what} is {} bytes as a document; MongoDB stores at most {MAX_DOCUMENT_BYTES}",
            encoded.len()
        )));
    }
    Ok(())
}

fn binary(bytes: &[u8]) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    })
}

fn missing(field: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "a MongoDB document's field {field} is missing or of the wrong type"
    ))
}

fn get_str(document: &Document, field: &str) -> Result<String, StoreError> {
    match document.get(field) {
        Some(Bson::String(value)) => Ok(value.clone()),
        _ => Err(missing(field)),
    }
}

fn get_i64(document: &Document, field: &str) -> Result<i64, StoreError> {
    match document.get(field) {
        Some(Bson::Int64(value)) => Ok(*value),
        Some(Bson::Int32(value)) => Ok(i64::from(*value)),
        _ => Err(missing(field)),
    }
}

fn get_bool(document: &Document, field: &str) -> Result<bool, StoreError> {
    match document.get(field) {
        Some(Bson::Boolean(value)) => Ok(*value),
        _ => Err(missing(field)),
    }
}

fn get_bytes(document: &Document, field: &str) -> Result<Vec<u8>, StoreError> {
    match document.get(field) {
        Some(Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes,
        })) => Ok(bytes.clone()),
        _ => Err(missing(field)),
    }
}

fn get_hash(document: &Document, field: &str) -> Result<[u8; 32], StoreError> {
    get_bytes(document, field)?
        .try_into()
        .map_err(|_| missing(field))
}

fn session_document(session: &Session) -> Result<Document, StoreError> {
    crate::store::check_identifier("the session id", &session.id)?;
    let document = doc! {
        "_id": &session.id,
        "subject": &session.subject,
        "provider_refresh_token": binary(&session.provider_refresh_token),
        "userinfo": &session.userinfo,
        "expires_at": session.expires_at,
    };
    check_size("the session", &document)?;
    Ok(document)
}

fn session_from_document(document: &Document) -> Result<Session, StoreError> {
    Ok(Session {
        id: get_str(document, "_id")?,
        subject: get_str(document, "subject")?,
        provider_refresh_token: get_bytes(document, "provider_refresh_token")?,
        userinfo: get_str(document, "userinfo")?,
        expires_at: get_i64(document, "expires_at")?,
    })
}

/// A live (neither spent nor revoked) refresh token.
fn refresh_document(record: &RefreshRecord) -> Document {
    doc! {
        "_id": binary(&record.hash),
        "family": &record.family,
        "session_id": &record.session_id,
        "expires_at": record.expires_at,
        "spent": false,
        "revoked": false,
    }
}

fn check_refresh(record: &RefreshRecord) -> Result<(), StoreError> {
    crate::store::check_identifier("the token family", &record.family)?;
    crate::store::check_identifier("the session id", &record.session_id)
}

fn refresh_from_document(document: &Document) -> Result<RefreshRecord, StoreError> {
    Ok(RefreshRecord {
        hash: get_hash(document, "_id")?,
        family: get_str(document, "family")?,
        session_id: get_str(document, "session_id")?,
        expires_at: get_i64(document, "expires_at")?,
    })
}

fn key_document(key: &StoredKey) -> Result<Document, StoreError> {
    crate::store::check_identifier("the key id", &key.kid)?;
    crate::store::check_identifier("the algorithm", &key.alg)?;
    let document = doc! {
        "_id": &key.kid,
        "alg": &key.alg,
        "private_key": binary(&key.private_key),
        "public_jwk": &key.public_jwk,
        "published_at": key.published_at,
        "active_from": key.active_from,
        "retire_at": key.retire_at,
        "remove_at": key.remove_at,
    };
    check_size("the signing key", &document)?;
    Ok(document)
}

fn key_from_document(document: &Document) -> Result<StoredKey, StoreError> {
    Ok(StoredKey {
        kid: get_str(document, "_id")?,
        alg: get_str(document, "alg")?,
        private_key: get_bytes(document, "private_key")?,
        public_jwk: get_str(document, "public_jwk")?,
        published_at: get_i64(document, "published_at")?,
        active_from: get_i64(document, "active_from")?,
        retire_at: get_i64(document, "retire_at")?,
        remove_at: get_i64(document, "remove_at")?,
    })
}

/// Revokes every token of `family`, in passes until one finds no live token left: a
/// rotation whose successor went in while a pass ran (outside that pass's view) is revoked by
/// the next one, as the SQL backends do ([`REVOCATION_PASSES`](super::REVOCATION_PASSES)).
async fn revoke(tokens: &Collection<Document>, family: &str) -> Result<(), StoreError> {
    for _ in 0..super::REVOCATION_PASSES {
        let pass = tokens
            .update_many(
                doc! { "family": family, "revoked": false },
                doc! { "$set": { "revoked": true } },
            )
            .await
            .map_err(|e| map_error(&e))?;
        if pass.modified_count == 0 {
            return Ok(());
        }
    }
    Ok(())
}

/// Inserts or replaces the document with `document`'s `_id`. Servers before 4.2 may answer
/// two concurrent upserts of one new `_id` with a duplicate key error; the loser tries again,
/// and then finds the document to replace.
async fn upsert(collection: &Collection<Document>, document: Document) -> Result<(), StoreError> {
    let id = document.get("_id").cloned().unwrap_or(Bson::Null);
    let mut tries = 0;
    loop {
        tries += 1;
        match collection
            .replace_one(doc! { "_id": id.clone() }, &document)
            .upsert(true)
            .await
        {
            Ok(_) => return Ok(()),
            Err(error) if tries < 2 && is_duplicate_key(&error) => {}
            Err(error) => return Err(map_error(&error)),
        }
    }
}

impl Store for MongoStore {
    fn migrate(&self) -> StoreFuture<'_, ()> {
        Box::pin(crate::store::bounded(
            "MongoDB",
            MIGRATION_TIMEOUT,
            self.migrate_now(),
        ))
    }

    fn put_session(&self, session: &Session) -> StoreFuture<'_, ()> {
        let session = session.clone();
        Box::pin(crate::store::bounded(
            "MongoDB",
            crate::store::OPERATION_TIMEOUT,
            async move {
                let document = session_document(&session)?;
                upsert(&self.collection(SESSIONS), document).await
            },
        ))
    }

    fn update_session(&self, session: &Session, now: i64) -> StoreFuture<'_, bool> {
        let session = session.clone();
        Box::pin(crate::store::bounded(
            "MongoDB",
            crate::store::OPERATION_TIMEOUT,
            async move {
                if !crate::store::storable_identifier(&session.id) {
                    return Ok(false);
                }
                session_document(&session)?;
                // Matched, not modified: an update to the same values finds the session too.
                let updated = self
                    .collection(SESSIONS)
                    .update_one(
                        doc! { "_id": &session.id, "expires_at": { "$gt": now } },
                        doc! { "$set": {
                            "provider_refresh_token": binary(&session.provider_refresh_token),
                            "userinfo": &session.userinfo,
                        } },
                    )
                    .await
                    .map_err(|e| map_error(&e))?;
                Ok(updated.matched_count > 0)
            },
        ))
    }

    fn get_session(&self, id: &str, now: i64) -> StoreFuture<'_, Option<Session>> {
        let id = id.to_owned();
        Box::pin(crate::store::bounded(
            "MongoDB",
            crate::store::OPERATION_TIMEOUT,
            async move {
                if !crate::store::storable_identifier(&id) {
                    return Ok(None);
                }
                let document = self
                    .collection(SESSIONS)
                    .find_one(doc! { "_id": &id, "expires_at": { "$gt": now } })
                    .await
                    .map_err(|e| map_error(&e))?;
                document.as_ref().map(session_from_document).transpose()
            },
        ))
    }

    fn delete_session(&self, id: &str) -> StoreFuture<'_, Option<Session>> {
        let id = id.to_owned();
        Box::pin(crate::store::bounded(
            "MongoDB",
            crate::store::OPERATION_TIMEOUT,
            async move {
                if !crate::store::storable_identifier(&id) {
                    return Ok(None);
                }
                // The session first: a token a concurrent rotation stores meanwhile is deleted
                // with the others, and a token left over by a failure has no session to refresh.
                let session = self
                    .collection(SESSIONS)
                    .find_one_and_delete(doc! { "_id": &id })
                    .await
                    .map_err(|e| map_error(&e))?;
                self.collection(REFRESH_TOKENS)
                    .delete_many(doc! { "session_id": &id })
                    .await
                    .map_err(|e| map_error(&e))?;
                session.as_ref().map(session_from_document).transpose()
            },
        ))
    }

    fn insert_refresh(&self, record: &RefreshRecord) -> StoreFuture<'_, ()> {
        let record = record.clone();
        Box::pin(crate::store::bounded(
            "MongoDB",
            crate::store::OPERATION_TIMEOUT,
            async move {
                check_refresh(&record)?;
                self.collection(REFRESH_TOKENS)
                    .insert_one(refresh_document(&record))
                    .await
                    .map_err(|e| map_error(&e))?;
                Ok(())
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
            "MongoDB",
            crate::store::OPERATION_TIMEOUT,
            async move { self.rotate_now(&old, &new, now).await },
        ))
    }

    fn revoke_family(&self, family: &str) -> StoreFuture<'_, ()> {
        let family = family.to_owned();
        Box::pin(crate::store::bounded(
            "MongoDB",
            crate::store::REVOCATION_TIMEOUT,
            async move {
                if !crate::store::storable_identifier(&family) {
                    return Ok(());
                }
                revoke(&self.collection(REFRESH_TOKENS), &family).await
            },
        ))
    }

    fn list_keys(&self) -> StoreFuture<'_, Vec<StoredKey>> {
        Box::pin(crate::store::bounded(
            "MongoDB",
            crate::store::OPERATION_TIMEOUT,
            async move {
                let mut cursor = self
                    .collection(SIGNING_KEYS)
                    .find(doc! {})
                    .sort(doc! { "published_at": 1, "_id": 1 })
                    .await
                    .map_err(|e| map_error(&e))?;
                let mut keys = Vec::new();
                while cursor.advance().await.map_err(|e| map_error(&e))? {
                    let document = cursor.deserialize_current().map_err(|e| map_error(&e))?;
                    keys.push(key_from_document(&document)?);
                }
                Ok(keys)
            },
        ))
    }

    fn insert_first_key(&self, key: &StoredKey, now: i64) -> StoreFuture<'_, bool> {
        let key = key.clone();
        Box::pin(crate::store::bounded(
            "MongoDB",
            crate::store::OPERATION_TIMEOUT,
            async move { self.insert_first_key_now(&key, now).await },
        ))
    }

    fn insert_key(&self, key: &StoredKey) -> StoreFuture<'_, ()> {
        let key = key.clone();
        Box::pin(crate::store::bounded(
            "MongoDB",
            crate::store::OPERATION_TIMEOUT,
            async move {
                let document = key_document(&key)?;
                self.collection(SIGNING_KEYS)
                    .insert_one(document)
                    .await
                    .map_err(|e| map_error(&e))?;
                Ok(())
            },
        ))
    }

    fn delete_key(&self, kid: &str) -> StoreFuture<'_, ()> {
        let kid = kid.to_owned();
        Box::pin(crate::store::bounded(
            "MongoDB",
            crate::store::OPERATION_TIMEOUT,
            async move {
                if !crate::store::storable_identifier(&kid) {
                    return Ok(());
                }
                self.collection(SIGNING_KEYS)
                    .delete_one(doc! { "_id": &kid })
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
            "MongoDB",
            crate::store::OPERATION_TIMEOUT,
            async move {
                crate::store::check_identifier("the issuer", &issuer)?;
                let document = doc! { "_id": &issuer, "jwks": &jwks, "fetched_at": fetched_at };
                check_size("the peer JWKS", &document)?;
                // Replaces only a set fetched no later; where a later one is stored, the
                // filter finds nothing and the insert the upsert then tries is a duplicate key.
                // So is a first insert that another instance's beat: tried once more, it finds
                // that one and replaces it if it was fetched no later.
                let ahead = fetched_at.saturating_add(crate::store::PEER_JWKS_AHEAD_SECS);
                let filter = doc! {
                    "_id": &issuer,
                    "$or": [
                        { "fetched_at": { "$lte": fetched_at } },
                        { "fetched_at": { "$gt": ahead } },
                    ],
                };
                let collection = self.collection(PEER_JWKS);
                for _ in 0..2 {
                    match collection
                        .replace_one(filter.clone(), &document)
                        .upsert(true)
                        .await
                    {
                        Ok(_) => return Ok(()),
                        Err(error) if is_duplicate_key(&error) => {}
                        Err(error) => return Err(map_error(&error)),
                    }
                }
                Ok(())
            },
        ))
    }

    fn get_peer_jwks(&self, issuer: &str) -> StoreFuture<'_, Option<(String, i64)>> {
        let issuer = issuer.to_owned();
        Box::pin(crate::store::bounded(
            "MongoDB",
            crate::store::OPERATION_TIMEOUT,
            async move {
                if !crate::store::storable_identifier(&issuer) {
                    return Ok(None);
                }
                let document = self
                    .collection(PEER_JWKS)
                    .find_one(doc! { "_id": &issuer })
                    .await
                    .map_err(|e| map_error(&e))?;
                document
                    .map(|d| Ok((get_str(&d, "jwks")?, get_i64(&d, "fetched_at")?)))
                    .transpose()
            },
        ))
    }

    fn consume_once(&self, key: &[u8; 32], expires_at: i64, now: i64) -> StoreFuture<'_, bool> {
        let key = *key;
        Box::pin(crate::store::bounded(
            "MongoDB",
            crate::store::OPERATION_TIMEOUT,
            async move {
                // One atomic upsert: no marker yet, it is inserted; an expired one, it is taken
                // over; a live one does not match, so the upsert's insert collides on `_id`.
                let result = self
                    .collection(ONCE)
                    .update_one(
                        doc! { "_id": binary(&key), "expires_at": { "$lte": now } },
                        doc! { "$set": { "expires_at": expires_at } },
                    )
                    .upsert(true)
                    .await;
                match result {
                    Ok(result) => Ok(result.matched_count > 0 || result.upserted_id.is_some()),
                    Err(error) if is_duplicate_key(&error) => Ok(false),
                    Err(error) => Err(map_error(&error)),
                }
            },
        ))
    }

    fn is_consumed(&self, key: &[u8; 32], now: i64) -> StoreFuture<'_, bool> {
        let key = *key;
        Box::pin(crate::store::bounded(
            "MongoDB",
            crate::store::OPERATION_TIMEOUT,
            async move {
                // From the primary (see `collection`): a lagging secondary could miss a mark
                // just written, and a stolen token would pass for unused.
                let document = self
                    .collection(ONCE)
                    .find_one(doc! { "_id": binary(&key), "expires_at": { "$gt": now } })
                    .await
                    .map_err(|e| map_error(&e))?;
                Ok(document.is_some())
            },
        ))
    }

    fn purge_expired(&self, now: i64) -> StoreFuture<'_, u64> {
        // A deletion that the deadline cuts keeps what it deleted; it may run as long as the
        // other backends' batches.
        Box::pin(crate::store::bounded(
            "MongoDB",
            crate::store::PURGE_TIMEOUT,
            self.purge_now(now),
        ))
    }
}

#[cfg(test)]
mod tests {
    //! The parts that need no server: connection strings, documents, limits and error mapping,
    //! plus how a store without a server fails. A smoke test of the atomic operations runs
    //! against a real server when `OIDC_AUTH_TEST_MONGODB_URL` is set, in a scratch database
    //! dropped at the end.

    #![allow(clippy::unwrap_used)]

    use super::*;
    use mongodb::error::{CommandError, Error, WriteConcernError, WriteError};
    use std::sync::Arc;
    use std::time::Instant;

    const PASSWORD: &str = "hunter2-Secret";

    fn name(url: &str) -> String {
        database_name(&ConnectionString::parse(url).unwrap())
    }

    #[test]
    fn database_name_comes_from_the_path() {
        assert_eq!(name("mongodb://127.0.0.1:27017/broker"), "broker");
        assert_eq!(
            name("mongodb://user:pw@a:1,b:2/broker?replicaSet=rs0&authSource=admin"),
            "broker"
        );
        assert_eq!(name("mongodb://127.0.0.1"), DEFAULT_DATABASE);
        assert_eq!(name("mongodb://127.0.0.1/"), DEFAULT_DATABASE);
        assert_eq!(name("mongodb://127.0.0.1/?appName=x"), DEFAULT_DATABASE);
        assert_eq!(name("mongodb://127.0.0.1/my%2Dbroker"), "my-broker");
        assert_eq!(
            name("mongodb+srv://user:pw@cluster0.example.net/broker?retryWrites=true"),
            "broker"
        );
        assert_eq!(name("mongodb+srv://cluster0.example.net"), DEFAULT_DATABASE);
        assert_eq!(DEFAULT_DATABASE, "oidc_auth");
    }

    fn assert_unavailable_without_password(result: Result<MongoStore, StoreError>) {
        let error = result.unwrap_err();
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        assert!(!error.to_string().contains(PASSWORD), "{error}");
        assert!(!format!("{error:?}").contains(PASSWORD), "{error:?}");
    }

    /// A client that prefers secondaries still reads the store's collections from the
    /// primary, where a session or a mark just written is sure to be.
    #[tokio::test]
    async fn reads_go_to_the_primary_whatever_the_client_prefers() {
        let options =
            ClientOptions::parse("mongodb://127.0.0.1:1/broker?readPreference=secondaryPreferred")
                .await
                .unwrap();
        let client = Client::with_options(options).unwrap();
        let store = MongoStore::from_database(client.database("broker"));
        for name in [SESSIONS, ONCE] {
            assert!(
                matches!(
                    store.collection(name).selection_criteria(),
                    Some(SelectionCriteria::ReadPreference(ReadPreference::Primary))
                ),
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn invalid_urls_are_unavailable_and_never_echo_the_password() {
        for url in [
            format!("postgres://user:{PASSWORD}@127.0.0.1/broker"),
            format!("mongodb://user:{PASSWORD}@127.0.0.1:notaport/broker"),
            format!("mongodb://user:{PASSWORD}@127.0.0.1:99999/broker"),
            format!("mongodb://user:{PASSWORD}%ZZ@127.0.0.1/broker"),
            format!("mongodb://user:{PASSWORD}@127.0.0.1/bad%20name"),
            format!("mongodb://user:{PASSWORD}@127.0.0.1/broker?authMechanism={PASSWORD}"),
            format!("mongodb://user:{PASSWORD}@127.0.0.1/broker?appName&w={PASSWORD}x"),
            format!("mongodb+srv://user:{PASSWORD}@cluster0.example.net:27017/broker"),
            PASSWORD.to_owned(),
            String::new(),
        ] {
            let started = Instant::now();
            assert_unavailable_without_password(MongoStore::connect(&url).await);
            assert!(started.elapsed() < Duration::from_secs(2), "{url}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stopped_server_is_unavailable_quickly() {
        // Nothing listens on port 1: server selection gives up after four seconds.
        let started = Instant::now();
        let result =
            MongoStore::connect(&format!("mongodb://broker:{PASSWORD}@127.0.0.1:1/broker")).await;
        let elapsed = started.elapsed();
        eprintln!("{result:?} after {elapsed:?}");
        assert_unavailable_without_password(result);
        assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    }

    /// A store on a client that points at a closed port and gives up after one second.
    async fn nowhere() -> MongoStore {
        let mut options = ClientOptions::parse(format!(
            "mongodb://broker:{PASSWORD}@127.0.0.1:1/?serverSelectionTimeoutMS=1000"
        ))
        .await
        .unwrap();
        options.connect_timeout = Some(Duration::from_secs(1));
        MongoStore::from_database(Client::with_options(options).unwrap().database("scratch"))
    }

    fn session(id: &str) -> Session {
        Session {
            id: id.into(),
            subject: "subject\0with NUL".into(),
            provider_refresh_token: (0..=255).collect(),
            userinfo: "{\"name\":\"ü\u{1F600}\"}".into(),
            expires_at: -5,
        }
    }

    fn key(kid: &str, alg: &str) -> StoredKey {
        StoredKey {
            kid: kid.into(),
            alg: alg.into(),
            private_key: vec![0, 0xff, b'\'', 0],
            public_jwk: "{\"kty\":\"RSA\"}".into(),
            published_at: 1,
            active_from: 2,
            retire_at: i64::MAX,
            remove_at: i64::MIN,
        }
    }

    fn record(family: &str, session_id: &str) -> RefreshRecord {
        RefreshRecord {
            hash: [0xab; 32],
            family: family.into(),
            session_id: session_id.into(),
            expires_at: 2_000,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_without_server_rejects_early_and_is_unavailable_otherwise() {
        let store = nowhere().await;
        assert_eq!(store.database().name(), "scratch");
        let debug = format!("{store:?}");
        assert!(
            debug.contains("scratch") && !debug.contains(PASSWORD),
            "{debug}"
        );

        // Refused before anything is sent: no waiting for a server.
        let long = "k".repeat(MAX_IDENTIFIER_BYTES + 1);
        let started = Instant::now();
        let rejected = |result: Result<(), StoreError>| {
            assert!(matches!(result, Err(StoreError::Rejected(_))), "{result:?}");
        };
        rejected(store.put_session(&session(&long)).await);
        rejected(store.insert_refresh(&record(&long, "s")).await);
        rejected(store.insert_refresh(&record("f", &long)).await);
        rejected(store.insert_key(&key(&long, "RS256")).await);
        rejected(store.insert_key(&key("k", &long)).await);
        rejected(store.put_peer_jwks(&long, "{}", 1).await);
        let huge = "x".repeat(MAX_DOCUMENT_BYTES);
        rejected(store.put_peer_jwks("https://peer", &huge, 1).await);
        assert!(matches!(
            store.insert_first_key(&key(&long, "RS256"), 0).await,
            Err(StoreError::Rejected(_))
        ));
        // Looked up, an over-long identifier is simply absent.
        assert!(store.get_session(&long, 0).await.unwrap().is_none());
        assert!(store.get_peer_jwks(&long).await.unwrap().is_none());
        store.delete_session(&long).await.unwrap();
        store.delete_key(&long).await.unwrap();
        store.revoke_family(&long).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(500));

        // Everything else waits for a server, briefly.
        let started = Instant::now();
        let result = store.get_session("s", 0).await;
        let elapsed = started.elapsed();
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        assert!(!format!("{result:?}").contains(PASSWORD));
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        let result = store.rotate_refresh(&[1; 32], &[2; 32], 0).await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        let result = store.migrate().await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
    }

    /// Encodes and decodes a document, as the trip to the server and back does.
    fn wire(document: &Document) -> Document {
        let mut encoded = Vec::new();
        document.to_writer(&mut encoded).unwrap();
        Document::from_reader(encoded.as_slice()).unwrap()
    }

    #[test]
    fn documents_round_trip_byte_for_byte() {
        for id in [
            "a",
            "a ",
            "%",
            "_",
            "\0",
            "a\0b",
            "ü\u{1F600}",
            "{\"$gt\":\"\"}",
            "$gt",
        ] {
            let s = Session {
                id: id.into(),
                userinfo: format!("{id}{}", "é".repeat(1000)),
                ..session(id)
            };
            let document = session_document(&s).unwrap();
            assert_eq!(session_from_document(&wire(&document)).unwrap(), s);

            let k = key(id, id);
            let document = key_document(&k).unwrap();
            assert_eq!(key_from_document(&wire(&document)).unwrap(), k);

            let r = RefreshRecord {
                hash: std::array::from_fn(|i| i as u8 ^ 0x80),
                ..record(id, id)
            };
            let document = refresh_document(&r);
            assert_eq!(refresh_from_document(&wire(&document)).unwrap(), r);
            assert!(!get_bool(&document, "spent").unwrap());
            assert!(!get_bool(&document, "revoked").unwrap());
        }
        // Identifiers are plain values, never query operators.
        let document = session_document(&session("$where")).unwrap();
        assert_eq!(document.get("_id"), Some(&Bson::String("$where".into())));
        // Binary fields are generic BSON binary.
        assert!(matches!(
            document.get("provider_refresh_token"),
            Some(Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                ..
            }))
        ));
    }

    #[test]
    fn identifiers_are_bounded_in_bytes() {
        let exact = "k".repeat(MAX_IDENTIFIER_BYTES);
        assert!(session_document(&session(&exact)).is_ok());
        assert!(key_document(&key(&exact, &exact)).is_ok());
        assert!(check_refresh(&record(&exact, &exact)).is_ok());
        // 513 two-byte characters: few characters, too many bytes.
        let long = "é".repeat(MAX_IDENTIFIER_BYTES / 2 + 1);
        assert!(matches!(
            session_document(&session(&long)),
            Err(StoreError::Rejected(_))
        ));
        assert!(matches!(
            key_document(&key(&long, "RS256")),
            Err(StoreError::Rejected(_))
        ));
        assert!(matches!(
            key_document(&key("k", &long)),
            Err(StoreError::Rejected(_))
        ));
        assert!(matches!(
            check_refresh(&record(&long, "s")),
            Err(StoreError::Rejected(_))
        ));
        assert!(matches!(
            check_refresh(&record("f", &long)),
            Err(StoreError::Rejected(_))
        ));
        assert!(crate::store::check_identifier("the issuer", &long).is_err());
    }

    #[test]
    fn documents_over_16_mib_are_rejected() {
        let mut s = session("s");
        s.userinfo = "x".repeat(MAX_DOCUMENT_BYTES / 2);
        s.provider_refresh_token = vec![7; MAX_DOCUMENT_BYTES / 4];
        assert!(session_document(&s).is_ok());
        s.provider_refresh_token = vec![7; MAX_DOCUMENT_BYTES / 2];
        let error = session_document(&s).unwrap_err();
        assert!(matches!(error, StoreError::Rejected(_)), "{error:?}");
        let mut k = key("k", "RS256");
        k.private_key = vec![1; MAX_DOCUMENT_BYTES];
        assert!(matches!(key_document(&k), Err(StoreError::Rejected(_))));
    }

    #[test]
    fn unreadable_documents_are_corrupt() {
        let good = session_document(&session("s")).unwrap();
        for field in [
            "_id",
            "subject",
            "provider_refresh_token",
            "userinfo",
            "expires_at",
        ] {
            let mut document = good.clone();
            document.remove(field);
            assert!(matches!(
                session_from_document(&document),
                Err(StoreError::Corrupt(_))
            ));
            let mut document = good.clone();
            document.insert(field, Bson::Double(1.5));
            assert!(matches!(
                session_from_document(&document),
                Err(StoreError::Corrupt(_))
            ));
        }
        let mut document = good.clone();
        document.insert(
            "provider_refresh_token",
            Binary {
                subtype: BinarySubtype::Uuid,
                bytes: vec![0; 16],
            },
        );
        assert!(matches!(
            session_from_document(&document),
            Err(StoreError::Corrupt(_))
        ));
        // A 32-bit time (written by hand) still reads.
        let mut document = good;
        document.insert("expires_at", 7_i32);
        assert_eq!(session_from_document(&document).unwrap().expires_at, 7);

        let mut document = refresh_document(&record("f", "s"));
        document.insert("_id", binary(&[1; 31]));
        assert!(matches!(
            refresh_from_document(&document),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn migrations_are_ordered_and_named() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
        assert_eq!(MIGRATIONS.first().map(|m| m.version), Some(1));
        let mut names = std::collections::HashSet::new();
        for migration in MIGRATIONS {
            for (collection, model) in (migration.indexes)() {
                assert!(collection.starts_with("oidc_auth_"), "{collection}");
                let name = model.options.as_ref().unwrap().name.clone().unwrap();
                assert!(name.starts_with(collection), "{name}");
                assert!(names.insert(name));
                // Purging is explicit: no TTL index.
                assert!(model.options.as_ref().unwrap().expire_after.is_none());
            }
        }
        assert!(names.contains(FIRST_KEY_SLOT_INDEX));
        crate::store::check_version("MongoDB", 0, MIGRATIONS.last().map_or(0, |m| m.version))
            .unwrap();
        crate::store::check_version("MongoDB", 1, MIGRATIONS.last().map_or(0, |m| m.version))
            .unwrap();
        assert!(matches!(
            crate::store::check_version("MongoDB", 2, MIGRATIONS.last().map_or(0, |m| m.version)),
            Err(StoreError::Corrupt(_))
        ));
    }

    fn command_error(code: i32, message: &str) -> Error {
        let error: CommandError = mongodb::bson::from_document(
            doc! { "code": code, "codeName": "Name", "errmsg": message },
        )
        .unwrap();
        Error::from(ErrorKind::Command(error))
    }

    fn write_error(code: i32, message: &str) -> Error {
        let error: WriteError = mongodb::bson::from_document(
            doc! { "code": code, "codeName": "Name", "errmsg": message },
        )
        .unwrap();
        Error::from(ErrorKind::Write(WriteFailure::WriteError(error)))
    }

    #[test]
    fn errors_map_by_code_and_never_quote_the_server() {
        let secret = "E11000 duplicate key error collection: db.oidc_auth_signing_keys \
                      index: oidc_auth_signing_keys_first_key_slot dup key: { _id: \"secret\" }";
        for error in [command_error(11000, secret), write_error(11000, secret)] {
            assert!(is_duplicate_key(&error));
            assert!(
                duplicate_key_message(&error)
                    .unwrap()
                    .contains(FIRST_KEY_SLOT_INDEX)
            );
            let mapped = map_error(&error);
            assert!(matches!(mapped, StoreError::Rejected(_)), "{mapped:?}");
            assert!(!format!("{mapped:?}").contains("secret"), "{mapped:?}");
        }
        for code in [11001, 12582, 2, 22, 10334, 17280, 17419] {
            let mapped = map_error(&write_error(code, "secret"));
            assert!(
                matches!(mapped, StoreError::Rejected(_)),
                "{code}: {mapped:?}"
            );
            assert!(!mapped.to_string().contains("secret"));
        }
        for code in [85, 86] {
            assert!(matches!(
                map_error(&command_error(code, "secret")),
                StoreError::Corrupt(_)
            ));
        }
        for code in [6, 13, 18, 50, 91, 189, 10107, 11600] {
            let mapped = map_error(&command_error(code, "secret"));
            assert!(
                matches!(mapped, StoreError::Unavailable(_)),
                "{code}: {mapped:?}"
            );
            assert!(!mapped.to_string().contains("secret"));
            assert!(!is_duplicate_key(&command_error(code, "secret")));
        }
        let concern: WriteConcernError = mongodb::bson::from_document(
            doc! { "code": 64, "codeName": "WriteConcernFailed", "errmsg": "secret" },
        )
        .unwrap();
        let mapped = map_error(&Error::from(ErrorKind::Write(
            WriteFailure::WriteConcernError(concern),
        )));
        assert!(matches!(mapped, StoreError::Unavailable(_)), "{mapped:?}");

        let io = Error::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "secret",
        ));
        let mapped = map_error(&io);
        assert!(matches!(mapped, StoreError::Unavailable(_)), "{mapped:?}");
        assert!(!mapped.to_string().contains("secret"));

        let decoding = mongodb::bson::from_document::<CommandError>(doc! {}).unwrap_err();
        assert!(matches!(
            map_error(&Error::from(decoding)),
            StoreError::Corrupt(_)
        ));

        assert!(is_ddl_race(&command_error(276, "")));
        assert!(is_ddl_race(&command_error(48, "")));
        assert!(!is_ddl_race(&command_error(11000, "")));
        assert!(!is_ddl_race(&io));
    }

    // --- Against a real server -----------------------------------------------------------

    fn url() -> Option<String> {
        match std::env::var("OIDC_AUTH_TEST_MONGODB_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                eprintln!("skipped: OIDC_AUTH_TEST_MONGODB_URL is not set");
                None
            }
        }
    }

    /// A migrated store on a fresh database of the server at `url`.
    async fn scratch(url: &str) -> MongoStore {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "oidc_auth_unit_{}_{}",
            std::process::id(),
            nanos % 1_000_000_000
        );
        let store = MongoStore::connect(url).await.unwrap();
        let store = MongoStore::from_database(store.database().client().database(&name));
        // Migrating twice, concurrently, is harmless.
        let (a, b) = tokio::join!(store.migrate(), store.migrate());
        a.unwrap();
        b.unwrap();
        store.migrate().await.unwrap();
        store
    }

    fn first_key(kid: &str, retire_at: i64) -> StoredKey {
        StoredKey {
            retire_at,
            remove_at: retire_at + 100,
            published_at: 0,
            ..key(kid, "RS256")
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn smoke() {
        let Some(url) = url() else { return };
        let store = scratch(&url).await;

        // Verbatim round trips, NUL included; no operators smuggled in through values.
        for id in ["a", "a ", "%", "a\0b", "ü\u{1F600}", "$gt"] {
            let mut s = session(id);
            s.expires_at = 2_000;
            s.provider_refresh_token = vec![7; 1 << 20];
            store.put_session(&s).await.unwrap();
            store.put_session(&s).await.unwrap();
            assert_eq!(store.get_session(id, 1_000).await.unwrap(), Some(s));
        }
        assert!(store.get_session("a", 2_000).await.unwrap().is_none());
        assert!(store.get_session("b", 0).await.unwrap().is_none());

        // Rotation, reuse and family revocation.
        let first = RefreshRecord {
            hash: [1; 32],
            family: "f".into(),
            session_id: "a".into(),
            expires_at: 2_000,
        };
        store.insert_refresh(&first).await.unwrap();
        assert!(matches!(
            store.insert_refresh(&first).await,
            Err(StoreError::Rejected(_))
        ));
        assert_eq!(
            store
                .rotate_refresh(&[1; 32], &[2; 32], 1_000)
                .await
                .unwrap(),
            RotateOutcome::Rotated(first.clone())
        );
        assert_eq!(
            store
                .rotate_refresh(&[1; 32], &[3; 32], 1_000)
                .await
                .unwrap(),
            RotateOutcome::Spent(first.clone())
        );
        store.revoke_family("f").await.unwrap();
        assert_eq!(
            store
                .rotate_refresh(&[2; 32], &[3; 32], 1_000)
                .await
                .unwrap(),
            RotateOutcome::NotFound
        );
        assert_eq!(
            store
                .rotate_refresh(&[9; 32], &[3; 32], 1_000)
                .await
                .unwrap(),
            RotateOutcome::NotFound
        );
        // A colliding successor is refused and leaves the old token live.
        store
            .insert_refresh(&RefreshRecord {
                hash: [4; 32],
                family: "h".into(),
                ..first.clone()
            })
            .await
            .unwrap();
        assert!(matches!(
            store.rotate_refresh(&[4; 32], &[1; 32], 1_000).await,
            Err(StoreError::Rejected(_))
        ));
        assert!(matches!(
            store
                .rotate_refresh(&[4; 32], &[5; 32], 1_999)
                .await
                .unwrap(),
            RotateOutcome::Rotated(_)
        ));
        assert_eq!(
            store
                .rotate_refresh(&[5; 32], &[6; 32], 2_000)
                .await
                .unwrap(),
            RotateOutcome::NotFound
        );

        // 20 concurrent rotations of one token: one Rotated, 19 Spent, the successor live.
        let store = Arc::new(store);
        let root = RefreshRecord {
            hash: [10; 32],
            family: "g".into(),
            session_id: "a".into(),
            expires_at: 2_000,
        };
        store.insert_refresh(&root).await.unwrap();
        let tasks: Vec<_> = (0..20u8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .rotate_refresh(&[10; 32], &[100 + i; 32], 1_000)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let (mut rotated, mut spent, mut successor) = (0, 0, None);
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.unwrap() {
                RotateOutcome::Rotated(_) => {
                    rotated += 1;
                    successor = Some(100 + i as u8);
                }
                RotateOutcome::Spent(_) => spent += 1,
                RotateOutcome::NotFound => panic!("not found"),
            }
        }
        assert_eq!((rotated, spent), (1, 19));
        let successor = successor.unwrap();
        assert_eq!(
            store
                .rotate_refresh(&[successor; 32], &[200; 32], 1_000)
                .await
                .unwrap(),
            RotateOutcome::Rotated(RefreshRecord {
                hash: [successor; 32],
                ..root.clone()
            })
        );

        // 10 concurrent first keys: exactly one inserted.
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .insert_first_key(&first_key(&format!("k{i}"), 5_000), 1_000)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut inserted = 0;
        for task in tasks {
            inserted += usize::from(task.await.unwrap());
        }
        assert_eq!(inserted, 1);
        assert_eq!(store.list_keys().await.unwrap().len(), 1);
        // Once it retired, the next first key goes in; a rotation's key blocks it.
        assert!(
            !store
                .insert_first_key(&first_key("late", 9_000), 4_999)
                .await
                .unwrap()
        );
        assert!(
            store
                .insert_first_key(&first_key("next", 6_000), 5_000)
                .await
                .unwrap()
        );
        store
            .insert_key(&first_key("rotated", 8_000))
            .await
            .unwrap();
        assert!(
            !store
                .insert_first_key(&first_key("x", 9_000), 6_000)
                .await
                .unwrap()
        );
        assert!(matches!(
            store.insert_key(&first_key("rotated", 8_000)).await,
            Err(StoreError::Rejected(_))
        ));
        assert!(matches!(
            store
                .insert_first_key(&first_key("next", 9_000), 8_000)
                .await,
            Err(StoreError::Rejected(_))
        ));
        store.delete_key("rotated").await.unwrap();
        store.delete_key("next").await.unwrap();
        assert!(
            store
                .insert_first_key(&first_key("after", 9_000), 5_500)
                .await
                .unwrap()
        );
        let k = first_key("after", 9_000);
        assert!(store.list_keys().await.unwrap().contains(&k));

        // One-time markers: concurrent, and an expired one may be reused.
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(
                    async move { store.consume_once(&[5; 32], 1_500, 1_000).await.unwrap() },
                )
            })
            .collect();
        let mut firsts = 0;
        for task in tasks {
            firsts += usize::from(task.await.unwrap());
        }
        assert_eq!(firsts, 1);
        assert!(store.consume_once(&[5; 32], 2_500, 1_500).await.unwrap());
        assert!(!store.consume_once(&[5; 32], 2_500, 1_600).await.unwrap());

        // Peer JWKS.
        store
            .put_peer_jwks("https://a/%", "{\"keys\":[]}", 7)
            .await
            .unwrap();
        store
            .put_peer_jwks("https://a/%", "{\"keys\":[1]}", 8)
            .await
            .unwrap();
        assert_eq!(
            store.get_peer_jwks("https://a/%").await.unwrap(),
            Some(("{\"keys\":[1]}".into(), 8))
        );
        assert_eq!(store.get_peer_jwks("https://a/_").await.unwrap(), None);

        // Deleting a session deletes its tokens; purging removes what expired.
        store.delete_session("a").await.unwrap();
        assert!(store.get_session("a", 0).await.unwrap().is_none());
        assert!(store.purge_expired(100_000).await.unwrap() > 0);
        assert!(store.list_keys().await.unwrap().is_empty());

        // A schema from a newer version is refused, not misread.
        store
            .database()
            .collection::<Document>(SCHEMA)
            .insert_one(doc! { "_id": 99 })
            .await
            .unwrap();
        assert!(matches!(store.migrate().await, Err(StoreError::Corrupt(_))));
        store.database().drop().await.unwrap();
    }
}
