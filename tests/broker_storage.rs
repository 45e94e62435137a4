//! What broker mode leaves in its database (SECURITY.md F6 and F7): a dump holds no plaintext
//! provider refresh token, no plaintext private key when an encryption key is configured, and
//! the broker's own refresh tokens only as their SHA-256. Runs on
//! SQLite always, on PostgreSQL and MariaDB when `OIDC_AUTH_TEST_POSTGRES_URL` /
//! `OIDC_AUTH_TEST_MYSQL_URL` are set.

use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_auth::store::{self, Store};
use oidc_auth_tests::Framework;
use oidc_auth_tests::broker::{
    JWKS, drop_postgres_schema, field, hex, login, mysql_command, postgres_schema, provider,
    refresh, run, serve_broker, unique,
};

/// 32 bytes, base64.
const ENCRYPTION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether `secret` is in `dump` as raw bytes or as hex (PostgreSQL `bytea` and `mysqldump
/// --hex-blob` write binary columns in hex).
fn leaks(dump: &[u8], secret: &[u8]) -> bool {
    let lower = hex(secret);
    contains(dump, secret)
        || contains(dump, lower.as_bytes())
        || contains(dump, lower.to_uppercase().as_bytes())
}

/// Logs in through a broker on `store`, takes `dump()`, then learns the provider refresh token
/// that was stored at login (it travels to the provider at the next refresh) and the raw RSA
/// modulus of the signing key. Returns (dump, provider refresh token, modulus) after checking
/// that the broker refresh token of the login is in the dump only as its SHA-256 (F7).
async fn login_and_dump(
    store: Arc<dyn Store>,
    encrypt: bool,
    dump: impl Fn() -> Vec<u8>,
) -> (Vec<u8>, String, Vec<u8>) {
    let h = serve_broker(
        provider().await,
        store,
        |c| {
            if encrypt {
                c.encryption_key(ENCRYPTION_KEY)
            } else {
                c
            }
        },
        None,
    )
    .await;
    let reply = login(&h, Framework::Axum).await;
    let dumped = dump();
    assert!(!dumped.is_empty(), "the dump is empty");
    let broker_refresh = field(&reply, "refresh_token");
    assert!(
        !leaks(&dumped, broker_refresh.as_bytes()),
        "a broker refresh token in the dump"
    );
    let hashed = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, broker_refresh.as_bytes());
    assert!(
        leaks(&dumped, hashed.as_ref()),
        "the refresh token's hash is not in the dump"
    );
    let refreshed = refresh(&h, Framework::Axum, field(&reply, "refresh_token")).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.raw_body);
    let sent = h.idp.last_token_request().unwrap_or_default();
    let provider_refresh = sent.get("refresh_token").cloned().unwrap_or_default();
    assert!(provider_refresh.len() >= 16, "{sent:?}");
    let jwks = h.get(Framework::Axum, JWKS, None).await;
    let n = jwks.body["keys"][0]["n"].as_str().unwrap_or_default();
    let modulus = URL_SAFE_NO_PAD.decode(n).unwrap_or_default();
    assert!(modulus.len() >= 256, "RSA modulus: {}", jwks.raw_body);
    (dumped, provider_refresh, modulus)
}

fn assert_dump(
    dump: &[u8],
    provider_refresh: &str,
    modulus: &[u8],
    encrypted_keys: bool,
    what: &str,
) {
    assert!(
        !leaks(dump, provider_refresh.as_bytes()),
        "{what}: the provider refresh token is in the dump"
    );
    assert_eq!(
        leaks(dump, modulus),
        !encrypted_keys,
        "{what}: private key material {} the dump",
        if encrypted_keys {
            "is in"
        } else {
            "is not in (the check cannot see it)"
        }
    );
}

fn sqlite_files(path: &std::path::Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap_or_default();
    for suffix in ["-wal", "-journal"] {
        let mut other = path.as_os_str().to_owned();
        other.push(suffix);
        bytes.extend(std::fs::read(std::path::PathBuf::from(other)).unwrap_or_default());
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_holds_no_plaintext_secrets() {
    for encrypt in [true, false] {
        let dir =
            std::env::temp_dir().join(format!("oidc-auth-dump-{}-{}", std::process::id(), encrypt));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("broker.sqlite3");
        let store = store::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("sqlite store");
        let (dump, token, modulus) = login_and_dump(store, encrypt, || sqlite_files(&path)).await;
        assert_dump(&dump, &token, &modulus, encrypt, "sqlite");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dump_holds_no_plaintext_secrets() {
    let Ok(url) = std::env::var("OIDC_AUTH_TEST_POSTGRES_URL") else {
        println!("skipped: OIDC_AUTH_TEST_POSTGRES_URL not set");
        return;
    };
    for encrypt in [true, false] {
        let (schema, store_url) = postgres_schema(&url, "oidc_dump");
        let store = store::connect(&store_url).await.expect("postgres store");
        let dump = || run(Command::new("pg_dump").args([url.as_str(), "-n", &schema]));
        let (dumped, token, modulus) = login_and_dump(store, encrypt, dump).await;
        drop_postgres_schema(&url, &schema);
        assert_dump(&dumped, &token, &modulus, encrypt, "postgres");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_dump_holds_no_plaintext_secrets() {
    let Ok(url) = std::env::var("OIDC_AUTH_TEST_MYSQL_URL") else {
        println!("skipped: OIDC_AUTH_TEST_MYSQL_URL not set");
        return;
    };
    let parsed = url::Url::parse(&url).expect("a mysql:// URL");
    let client = |tool: &str| mysql_command(&parsed, tool);
    for encrypt in [true, false] {
        let database = unique("oidc_dump");
        run(client("mysql").args(["-e", &format!("CREATE DATABASE {database}")]));
        let mut store_url = parsed.clone();
        store_url.set_path(&format!("/{database}"));
        let store = store::connect(store_url.as_str())
            .await
            .expect("mysql store");
        let dump = || run(client("mysqldump").args(["--hex-blob", &database]));
        let (dumped, token, modulus) = login_and_dump(store, encrypt, dump).await;
        run(client("mysql").args(["-e", &format!("DROP DATABASE {database}")]));
        assert_dump(&dumped, &token, &modulus, encrypt, "mariadb");
    }
}
