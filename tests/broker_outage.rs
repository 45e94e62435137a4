//! Broker mode while its PostgreSQL database is stopped and started again (SECURITY.md G6 and
//! the reliability section): minted tokens keep validating, login, refresh and revocation answer
//! 503 within a few seconds, and everything recovers without a restart of the server.
//!
//! Runs when `OIDC_AUTH_TEST_POSTGRES_URL` is set and stops the local cluster with
//! `pg_ctlcluster --skip-systemctl-redirect <version> main stop`, so it is a test binary of its
//! own: no other test runs while the database is down. The outage of a store in memory, which
//! every call refuses while it is down, needs no database.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oidc_auth::store::memory::MemoryStore;
use oidc_auth::store::postgres::PostgresStore;
use oidc_auth::store::{
    RefreshRecord, RotateOutcome, Session, Store, StoreError, StoreFuture, StoredKey,
};
use oidc_auth::testing::Endpoint;
use oidc_auth_tests::broker::{
    G6_LIMIT, JWKS, REVOKE, field, login, provider, refresh, serve_broker,
};
use oidc_auth_tests::{
    FRAMEWORKS, Framework, LOOPBACK, browser_login, client_code_flow, client_token_call,
    query_param,
};

/// The version of the local `main` cluster, from `pg_lsclusters`.
/// The version of the `main` PostgreSQL cluster, from `pg_lsclusters`.
fn cluster_version() -> Option<String> {
    let output = Command::new("pg_lsclusters").arg("-h").output().ok()?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("main"))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
}

/// Runs `pg_ctlcluster <version> main <action>`; whether it succeeded.
fn try_cluster(action: &str) -> Result<(), String> {
    let version = cluster_version().ok_or("no main cluster in pg_lsclusters")?;
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", action])
        .status()
        .map_err(|e| format!("pg_ctlcluster: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("pg_ctlcluster {action}: {status}"))
    }
}

fn cluster(action: &str) {
    if let Err(e) = try_cluster(action) {
        panic!("{e}");
    }
}

/// Stops the cluster; starts it again when dropped, also when the test fails.
struct Stopped;

impl Stopped {
    fn now() -> Self {
        cluster("stop");
        Stopped
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // Never a panic here: one while a failure unwinds would abort the test binary and
        // hide the failure. A cluster that does not start fails the next test that needs it.
        if let Err(e) = try_cluster("start") {
            eprintln!("the PostgreSQL cluster could not be started again: {e}");
        }
    }
}

fn psql(url: &str, sql: &str) -> bool {
    Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_rides_out_a_database_restart() {
    let Ok(url) = std::env::var("OIDC_AUTH_TEST_POSTGRES_URL") else {
        println!("skipped: OIDC_AUTH_TEST_POSTGRES_URL not set");
        return;
    };
    let mut bytes = [0u8; 6];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    let schema = format!(
        "oidc_outage_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    assert!(psql(&url, &format!("CREATE SCHEMA {schema}")));
    let separator = if url.contains('?') { '&' } else { '?' };
    let store_url = format!("{url}{separator}options=-csearch_path%3D{schema}");
    let store = PostgresStore::connect(&store_url).await.expect("postgres");
    store.migrate().await.expect("migrate");
    let store: Arc<dyn Store> = Arc::new(store);
    // No validated-token cache: every validation below really verifies.
    let h = serve_broker(provider().await, store, |c| c.token_cache_capacity(0), None).await;
    let first = login(&h, Framework::Axum).await;
    let access = field(&first, "access_token").to_owned();
    let refresh_token = field(&first, "refresh_token").to_owned();

    {
        let _down = Stopped::now();
        for fw in FRAMEWORKS {
            assert_eq!(h.bearer(fw, "/me", &access).await.status, 200, "{fw:?}");
            assert_eq!(h.get(fw, JWKS, None).await.status, 200, "{fw:?}");

            let started = Instant::now();
            let refused = refresh(&h, fw, &refresh_token).await;
            assert_eq!(refused.status, 503, "{fw:?}: {}", refused.raw_body);
            assert!(refused.retry_after.is_some());
            assert!(started.elapsed() < G6_LIMIT, "{:?}", started.elapsed());
            // Revocation cannot be done either: 503, and the token stays usable afterwards.
            let revoke = h.post_form(fw, REVOKE, &[("token", &refresh_token)]).await;
            assert_eq!(revoke.status, 503, "{fw:?}: {}", revoke.raw_body);
            assert!(revoke.retry_after.is_some());

            let (_, callback) = browser_login(&h, fw, LOOPBACK).await;
            let started = Instant::now();
            let login_reply = client_token_call(&h, fw, &callback).await;
            assert_eq!(login_reply.status, 503, "{fw:?}: {}", login_reply.raw_body);
            assert!(started.elapsed() < G6_LIMIT, "{:?}", started.elapsed());

            // The server-side callback writes the session too.
            let (_, callback) = browser_login(&h, fw, &h.url(fw, "/api/auth/v2/callback")).await;
            let started = Instant::now();
            let reply = h.get_url(&callback).await;
            assert_eq!(reply.status, 503, "{fw:?}: {}", reply.raw_body);
            assert!(reply.retry_after.is_some());
            assert!(started.elapsed() < G6_LIMIT, "{:?}", started.elapsed());
        }
    }

    // The database is back: the refresh token that could not be spent during the outage works,
    // within a bounded number of attempts while the pool reconnects.
    let mut recovered = None;
    for _ in 0..60 {
        let reply = refresh(&h, Framework::Axum, &refresh_token).await;
        if reply.status == 200 {
            recovered = Some(reply);
            break;
        }
        assert_eq!(reply.status, 503, "{}", reply.raw_body);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let recovered = recovered.expect("refresh recovers after the restart");
    assert_eq!(
        h.bearer_both("/me", field(&recovered, "access_token"))
            .await
            .status,
        200
    );
    for fw in FRAMEWORKS {
        assert_eq!(login(&h, fw).await.status, 200);
    }
    let successor = field(&recovered, "refresh_token").to_owned();
    let revoke = h
        .post_form(Framework::Actix, REVOKE, &[("token", &successor)])
        .await;
    assert_eq!(revoke.status, 200, "{}", revoke.raw_body);
    assert_eq!(refresh(&h, Framework::Axum, &successor).await.status, 400);
    assert!(psql(&url, &format!("DROP SCHEMA {schema} CASCADE")));
}

/// A [`MemoryStore`] that refuses every call as unavailable while it is down, as a database
/// that cannot be reached would; or only the writes of refresh records while `refresh_down`,
/// as a database that drops out between a session's two writes would. It remembers the
/// session ids written to it.
#[derive(Default)]
struct OutageStore {
    inner: MemoryStore,
    down: AtomicBool,
    refresh_down: AtomicBool,
    sessions: Mutex<Vec<String>>,
}

macro_rules! unless_down {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> StoreFuture<'_, $out> {
            if self.down.load(Ordering::SeqCst) {
                return Box::pin(async {
                    Err(StoreError::Unavailable("stopped by the test".into()))
                });
            }
            self.inner.$name($($arg),*)
        })*
    };
}

impl Store for OutageStore {
    unless_down! {
        migrate() -> ();
        update_session(session: &Session, now: i64) -> bool;
        get_session(id: &str, now: i64) -> Option<Session>;
        delete_session(id: &str) -> Option<oidc_auth::store::Session>;
        rotate_refresh(old: &[u8; 32], new: &[u8; 32], now: i64) -> RotateOutcome;
        revoke_family(family: &str) -> ();
        list_keys() -> Vec<StoredKey>;
        insert_first_key(key: &StoredKey, now: i64) -> bool;
        insert_key(key: &StoredKey) -> ();
        delete_key(kid: &str) -> ();
        put_peer_jwks(issuer: &str, jwks: &str, fetched_at: i64) -> ();
        get_peer_jwks(issuer: &str) -> Option<(String, i64)>;
        consume_once(key: &[u8; 32], expires_at: i64, now: i64) -> bool;
        is_consumed(key: &[u8; 32], now: i64) -> bool;
        purge_expired(now: i64) -> u64;
    }

    fn put_session(&self, session: &Session) -> StoreFuture<'_, ()> {
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(async { Err(StoreError::Unavailable("stopped by the test".into())) });
        }
        if let Ok(mut ids) = self.sessions.lock() {
            ids.push(session.id.clone());
        }
        self.inner.put_session(session)
    }

    fn insert_refresh(&self, record: &RefreshRecord) -> StoreFuture<'_, ()> {
        if self.down.load(Ordering::SeqCst) || self.refresh_down.load(Ordering::SeqCst) {
            return Box::pin(async { Err(StoreError::Unavailable("stopped by the test".into())) });
        }
        self.inner.insert_refresh(record)
    }
}

/// G7, no partial session: when the store takes the session row but fails the refresh record
/// after it, the login is 503, the row is removed (a client could never refresh or end it),
/// and the provider's refresh token, which nothing holds any more, is revoked at the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_refresh_token_cannot_be_stored_is_removed_and_revoked() {
    let store = Arc::new(OutageStore::default());
    let h = serve_broker(provider().await, store.clone(), |c| c, None).await;
    store.refresh_down.store(true, Ordering::SeqCst);
    for fw in FRAMEWORKS {
        let revocations = h.idp.hits(Endpoint::Revocation);
        let reply = client_code_flow(&h, fw).await;
        assert_eq!(reply.status, 503, "{fw:?}: {}", reply.raw_body);
        assert!(reply.body.get("refresh_token").is_none(), "{fw:?}");
        let id = store
            .sessions
            .lock()
            .ok()
            .and_then(|ids| ids.last().cloned())
            .expect("the session row was written");
        let now = oidc_auth::Clock::now(&oidc_auth::SystemClock);
        let left = store.inner.get_session(&id, now).await.expect("store");
        assert!(left.is_none(), "{fw:?}: the half-made session stayed");
        assert_eq!(
            revocations_reach(&h, revocations + 1).await,
            revocations + 1,
            "{fw:?}"
        );
    }
    store.refresh_down.store(false, Ordering::SeqCst);
    for fw in FRAMEWORKS {
        assert_eq!(login(&h, fw).await.status, 200, "{fw:?}");
    }
}

/// Waits up to 5 s for the provider's revocation endpoint to have been called `expected` times.
async fn revocations_reach(h: &oidc_auth_tests::Harness, expected: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.idp.hits(Endpoint::Revocation) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.idp.hits(Endpoint::Revocation)
}

/// G7: a device code the user approved, whose redemption the store cannot record, is 503 and
/// leaves no live grant behind: the provider's refresh token of that answer, which nothing
/// holds, is revoked at the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_device_code_that_cannot_be_recorded_revokes_the_providers_token() {
    let store = Arc::new(OutageStore::default());
    let h = serve_broker(provider().await, store.clone(), |c| c, None).await;
    h.idp.set_device_interval(Some(0));
    for fw in FRAMEWORKS {
        let start = h.post_form(fw, "/api/auth/v2/device", &[]).await;
        assert_eq!(start.status, 200, "{fw:?}: {}", start.raw_body);
        assert!(h.idp.approve_device(field(&start, "user_code")));
        let revocations = h.idp.hits(Endpoint::Revocation);
        store.down.store(true, Ordering::SeqCst);
        let poll = h
            .post_form(
                fw,
                "/api/auth/v2/token",
                &[("device-code", field(&start, "device_code"))],
            )
            .await;
        store.down.store(false, Ordering::SeqCst);
        assert_eq!(poll.status, 503, "{fw:?}: {}", poll.raw_body);
        assert!(poll.body.get("refresh_token").is_none(), "{fw:?}");
        assert_eq!(
            revocations_reach(&h, revocations + 1).await,
            revocations + 1,
            "{fw:?}"
        );
    }
}

/// SECURITY D2 counts redemptions, not outages: a login whose redemption the store could not
/// record answers 503 with Retry-After without asking the provider, and the retry that invites
/// completes it once the store is back, for the client's code grant and the server-side
/// callback alike. An error callback in the outage is retried the same way and then clears its
/// transaction (D5). Whatever completed is spent afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_refused_during_a_store_outage_completes_on_retry() {
    let store = Arc::new(OutageStore::default());
    let h = serve_broker(provider().await, store.clone(), |c| c, None).await;
    for fw in FRAMEWORKS {
        let server_callback = h.url(fw, "/api/auth/v2/callback");
        let (_, client) = browser_login(&h, fw, LOOPBACK).await;
        let (_, server) = browser_login(&h, fw, &server_callback).await;
        let (_, refused) = browser_login(&h, fw, &server_callback).await;
        let mut denied = refused.clone();
        denied
            .query_pairs_mut()
            .clear()
            .append_pair("error", "access_denied")
            .append_pair("state", &query_param(&refused, "state").unwrap_or_default())
            .append_pair("iss", &query_param(&refused, "iss").unwrap_or_default());
        let hits = h.idp.hits(Endpoint::Token);

        store.down.store(true, Ordering::SeqCst);
        let during = [
            client_token_call(&h, fw, &client).await,
            h.get_url(&server).await,
            h.get_url(&denied).await,
        ];
        store.down.store(false, Ordering::SeqCst);
        for reply in &during {
            assert_eq!(reply.status, 503, "{fw:?}: {}", reply.raw_body);
            assert!(reply.retry_after.is_some(), "{fw:?}");
        }
        assert_eq!(
            h.idp.hits(Endpoint::Token),
            hits,
            "the provider was not asked"
        );

        let retried = client_token_call(&h, fw, &client).await;
        assert_eq!(retried.status, 200, "{fw:?}: {}", retried.raw_body);
        let retried = h.get_url(&server).await;
        assert_eq!(retried.status, 200, "{fw:?}: {}", retried.raw_body);
        let retried = h.get_url(&denied).await;
        assert_eq!(
            (retried.status, retried.error()),
            (400, Some("access_denied")),
            "{fw:?}: {}",
            retried.raw_body
        );

        for replay in [
            client_token_call(&h, fw, &client).await,
            h.get_url(&server).await,
            h.get_url(&refused).await,
        ] {
            assert_eq!(
                (replay.status, replay.error()),
                (400, Some("invalid_grant")),
                "{fw:?}: {}",
                replay.raw_body
            );
        }
    }
}
