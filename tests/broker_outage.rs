//! Broker mode while its PostgreSQL database is stopped and started again (SECURITY.md G6 and
//! the reliability section): minted tokens keep validating, login, refresh and revocation answer
//! 503 within a few seconds, and everything recovers without a restart of the server.
//!
//! Runs when `OIDC_AUTH_TEST_POSTGRES_URL` is set and stops the local cluster with
//! `pg_ctlcluster --skip-systemctl-redirect <version> main stop`, so it is a test binary of its
//! own: no other test runs while the database is down.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oidc_auth::store::Store;
use oidc_auth::store::postgres::PostgresStore;
use oidc_auth_tests::broker::{
    G6_LIMIT, JWKS, REVOKE, field, login, provider, refresh, serve_broker,
};
use oidc_auth_tests::{FRAMEWORKS, Framework, LOOPBACK, browser_login, client_token_call};

/// The version of the local `main` cluster, from `pg_lsclusters`.
fn cluster_version() -> String {
    let output = Command::new("pg_lsclusters")
        .arg("-h")
        .output()
        .expect("pg_lsclusters runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("main"))
        .and_then(|l| l.split_whitespace().next())
        .expect("a main cluster")
        .to_owned()
}

fn cluster(action: &str) {
    let status = Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            &cluster_version(),
            "main",
            action,
        ])
        .status()
        .expect("pg_ctlcluster runs");
    assert!(status.success(), "pg_ctlcluster {action} failed");
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
        cluster("start");
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
