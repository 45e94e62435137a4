//! The store conformance suite (`oidc_auth::store::conformance`) on every backend, and
//! `oidc_auth::store::connect`. Its hostile-input cases are SECURITY.md F5: SQL fragments, `%`
//! and `_`, NUL, a 1 MB value and long Unicode are stored verbatim or refused, never interpreted.
//!
//! The in-memory store and SQLite always run. PostgreSQL, MySQL/MariaDB and MongoDB run when
//! `OIDC_AUTH_TEST_POSTGRES_URL`, `OIDC_AUTH_TEST_MYSQL_URL` or `OIDC_AUTH_TEST_MONGODB_URL`
//! (MongoDB also needs this crate's `mongodb` feature) name a server; each run works in a
//! schema or database of its own, `oidc_conf_<random>`, dropped at the end. Without the
//! variable the test prints that it was skipped.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use oidc_auth::store::conformance::{self, MysqlScratch, PostgresScratch};
use oidc_auth::store::memory::MemoryStore;
use oidc_auth::store::mysql::MysqlStore;
use oidc_auth::store::postgres::PostgresStore;
use oidc_auth::store::sqlite::SqliteStore;
use oidc_auth::store::{self, Store, StoreError, StoredKey};

/// The server URL in `variable`, or `None` after printing that the test is skipped.
fn server(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("skipped: {variable} not set");
            None
        }
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A directory under the system temp directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "oidc-auth-store-{}-{}",
            std::process::id(),
            random_hex()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

fn signing_key(kid: String, now: i64) -> StoredKey {
    StoredKey {
        kid,
        alg: "ES256".into(),
        private_key: vec![0x30, 0x00, 0xff],
        public_jwk: r#"{"kty":"EC","crv":"P-256"}"#.into(),
        published_at: now,
        active_from: now,
        retire_at: now + 86_400,
        remove_at: now + 2 * 86_400,
    }
}

/// Four instances starting at once, each connecting (and migrating) through
/// [`store::connect`] and then racing for the first signing key: exactly one inserts, and all
/// four read back that one key.
async fn first_starts_agree_on_one_key(url: &str) {
    let now = unix_now();
    let starts: Vec<_> = (0..4)
        .map(|instance| {
            let url = url.to_owned();
            tokio::spawn(async move {
                let store = store::connect(&url).await.unwrap();
                let key = signing_key(format!("instance-{instance}"), now);
                let inserted = store.insert_first_key(&key, now).await.unwrap();
                (store, inserted)
            })
        })
        .collect();
    let mut stores = Vec::new();
    let mut inserted = 0;
    for start in starts {
        let (store, first) = start.await.unwrap();
        inserted += usize::from(first);
        stores.push(store);
    }
    assert_eq!(
        inserted, 1,
        "exactly one instance must insert the first key"
    );
    let mut seen = Vec::new();
    for store in &stores {
        let kids: Vec<String> = store
            .list_keys()
            .await
            .unwrap()
            .into_iter()
            .map(|key| key.kid)
            .collect();
        assert_eq!(kids.len(), 1, "{kids:?}");
        seen.push(kids);
    }
    seen.dedup();
    assert_eq!(seen.len(), 1, "the instances disagree on the key: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    conformance::run(&MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_store_conforms() {
    let dir = TempDir::new();
    let store = SqliteStore::open(dir.path().join("nested/dirs/broker.sqlite3"))
        .await
        .unwrap();
    conformance::run(&store).await;
    store.pool().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_in_memory_store_conforms() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    conformance::run(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_conforms() {
    let Some(url) = server("OIDC_AUTH_TEST_POSTGRES_URL") else {
        return;
    };
    let scratch = PostgresScratch::create(&url).await.unwrap();
    let store = PostgresStore::connect(scratch.url()).await.unwrap();
    conformance::run(&store).await;
    store.pool().close().await;
    scratch.remove().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_store_conforms() {
    let Some(url) = server("OIDC_AUTH_TEST_MYSQL_URL") else {
        return;
    };
    let scratch = MysqlScratch::create(&url).await.unwrap();
    let store = MysqlStore::connect(scratch.url()).await.unwrap();
    conformance::run(&store).await;
    drop(store);
    scratch.remove().await.unwrap();
}

#[cfg(feature = "mongodb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mongodb_store_conforms() {
    use oidc_auth::store::mongodb::MongoStore;

    let Some(url) = server("OIDC_AUTH_TEST_MONGODB_URL") else {
        return;
    };
    let mut scoped = url::Url::parse(&url).unwrap();
    scoped.set_path(&format!("/oidc_conf_{}", random_hex()));
    let store = MongoStore::connect(scoped.as_str()).await.unwrap();
    conformance::run(&store).await;
    store.database().drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_starts_on_one_sqlite_file_agree_on_one_key() {
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.path().join("shared.sqlite3").display());
    first_starts_agree_on_one_key(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_starts_on_one_postgres_schema_agree_on_one_key() {
    let Some(url) = server("OIDC_AUTH_TEST_POSTGRES_URL") else {
        return;
    };
    let scratch = PostgresScratch::create(&url).await.unwrap();
    first_starts_agree_on_one_key(scratch.url()).await;
    scratch.remove().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_starts_on_one_mysql_database_agree_on_one_key() {
    let Some(url) = server("OIDC_AUTH_TEST_MYSQL_URL") else {
        return;
    };
    let scratch = MysqlScratch::create(&url).await.unwrap();
    first_starts_agree_on_one_key(scratch.url()).await;
    scratch.remove().await.unwrap();
}

#[tokio::test]
async fn connect_creates_and_migrates_a_sqlite_file() {
    let dir = TempDir::new();
    let path = dir.path().join("a/b/broker.sqlite3");
    let store = store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert!(path.is_file(), "the database file must be created");
    // Migrated: the tables exist.
    assert!(store.list_keys().await.unwrap().is_empty());
    assert!(store.consume_once(&[1; 32], 10, 0).await.unwrap());

    // Reopened, the data is still there.
    drop(store);
    let again = store::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    assert!(!again.consume_once(&[1; 32], 10, 5).await.unwrap());
}

#[tokio::test]
async fn connect_opens_an_in_memory_sqlite_database() {
    let store = store::connect("sqlite::memory:").await.unwrap();
    assert_eq!(store.get_peer_jwks("https://peer").await.unwrap(), None);
}

#[tokio::test]
async fn connect_rejects_unknown_schemes_without_echoing_the_url() {
    for url in [
        "redis://broker:hunter2@cache.internal/0",
        "ftp://hunter2@files.internal/",
        "hunter2",
        "",
    ] {
        let error = store::connect(url).await.err().unwrap();
        assert!(matches!(error, StoreError::Rejected(_)), "{url}: {error}");
        assert!(!error.to_string().contains("hunter2"), "{url}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_never_echoes_a_password() {
    // Nothing listens on port 1: each backend fails to connect (all at once, as each waits out
    // its connect timeout).
    let attempts: Vec<_> = [
        "postgres://broker:s3cr3t-pa55@127.0.0.1:1/broker",
        "postgresql://broker:s3cr3t-pa55@127.0.0.1:1/broker?sslmode=disable",
        "mysql://broker:s3cr3t-pa55@127.0.0.1:1/broker",
        "mariadb://broker:s3cr3t-pa55@127.0.0.1:1/broker",
        "postgres://broker:s3cr3t-pa55@[::1/broker",
        "mysql://broker:s3cr3t-pa55@127.0.0.1:1/broker?unknown_option=s3cr3t-pa55",
        "sqlite://broker.sqlite3?password=s3cr3t-pa55",
    ]
    .into_iter()
    .map(|url| tokio::spawn(async move { (url, store::connect(url).await.err()) }))
    .collect();
    for attempt in attempts {
        let (url, error) = attempt.await.unwrap();
        let error = error.unwrap();
        assert!(
            matches!(error, StoreError::Unavailable(_) | StoreError::Rejected(_)),
            "{url}: {error}"
        );
        assert!(!error.to_string().contains("s3cr3t"), "{url}: {error}");
        assert!(!format!("{error:?}").contains("s3cr3t"), "{url}: {error:?}");
    }
}

#[cfg(not(feature = "mongodb"))]
#[tokio::test]
async fn connect_names_the_feature_a_scheme_needs() {
    let error = store::connect("mongodb://broker:hunter2@127.0.0.1:1/broker")
        .await
        .err()
        .unwrap();
    assert!(matches!(error, StoreError::Rejected(_)), "{error}");
    assert!(error.to_string().contains("`mongodb` feature"), "{error}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

/// The suite's store handle is `Arc<dyn Store>` in the broker: `connect`'s result runs it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_sqlite_store_conforms_as_a_trait_object() {
    let dir = TempDir::new();
    let store: Arc<dyn Store> = store::connect(&format!(
        "sqlite://{}",
        dir.path().join("dyn.sqlite3").display()
    ))
    .await
    .unwrap();
    conformance::run(&*store).await;
}
