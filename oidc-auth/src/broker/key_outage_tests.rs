//! The signing keys while the store hangs (SECURITY.md G6): a database that stops answering
//! costs each request at most one store call, however many come at once, and the keys are
//! read again once it answers, after the backoff. Also the keys when the clock is set back, and
//! across instances whose clocks disagree within the leeway.
//!
//! Tokio's clock is paused: a hanging call takes its full time without the test waiting for it,
//! and the times measured are exact.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::Broker;
use super::cipher::AtRest;
use super::keys::{Signer, thumbprint};
use crate::auth::OidcAuth;
use crate::clock::{Clock, ManualClock, SystemClock};
use crate::store::memory::MemoryStore;
use crate::store::{
    RefreshRecord, RotateOutcome, Session, Store, StoreError, StoreFuture, StoredKey,
};

/// How long a call to the hanging store takes before it fails: the stores' bound of one call.
const HANG: Duration = crate::store::OPERATION_TIMEOUT;
/// The longest any request may take while the store hangs (G6).
const LIMIT: Duration = Duration::from_secs(5);
/// Past the age at which the key ring is read again.
const STALE: i64 = 61;

/// A [`MemoryStore`] whose key calls, while it hangs, answer only after [`HANG`], and then as
/// unavailable: a database behind a black hole, as the stores' own timeouts report it.
/// With `slow_ms` set, every key call answers correctly after that many milliseconds: a
/// database that is slow but working.
#[derive(Default)]
struct HangingStore {
    inner: MemoryStore,
    hanging: AtomicBool,
    slow_ms: AtomicU64,
    key_reads: AtomicUsize,
}

impl HangingStore {
    fn unless_hanging<'a, T: Send + 'a>(&'a self, call: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        let slow = self.slow_ms.load(Ordering::SeqCst);
        if slow > 0 {
            return Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(slow)).await;
                call.await
            });
        }
        if !self.hanging.load(Ordering::SeqCst) {
            return call;
        }
        Box::pin(async {
            tokio::time::sleep(HANG).await;
            Err(StoreError::Unavailable("no answer in time".into()))
        })
    }

    fn key_reads(&self) -> usize {
        self.key_reads.load(Ordering::SeqCst)
    }
}

macro_rules! unless_hanging {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> StoreFuture<'_, $out> {
            self.unless_hanging(self.inner.$name($($arg),*))
        })*
    };
}

impl Store for HangingStore {
    delegate! {
        migrate() -> ();
        put_session(session: &Session) -> ();
        update_session(session: &Session, now: i64) -> bool;
        get_session(id: &str, now: i64) -> Option<Session>;
        delete_session(id: &str) -> Option<Session>;
        insert_refresh(record: &RefreshRecord) -> ();
        rotate_refresh(old: &[u8; 32], new: &[u8; 32], now: i64) -> RotateOutcome;
        revoke_family(family: &str) -> ();
        put_peer_jwks(issuer: &str, jwks: &str, fetched_at: i64) -> ();
        get_peer_jwks(issuer: &str) -> Option<(String, i64)>;
        is_consumed(key: &[u8; 32], now: i64) -> bool;
        purge_expired(now: i64) -> u64;
    }

    unless_hanging! {
        insert_first_key(key: &StoredKey, now: i64) -> bool;
        insert_key(key: &StoredKey) -> ();
        delete_key(kid: &str) -> ();
        consume_once(key: &[u8; 32], expires_at: i64, now: i64) -> bool;
    }

    fn list_keys(&self) -> StoreFuture<'_, Vec<StoredKey>> {
        self.key_reads.fetch_add(1, Ordering::SeqCst);
        self.unless_hanging(self.inner.list_keys())
    }
}

/// A broker on `store` and `clock`, its store untouched.
fn fresh_broker_on(store: Arc<HangingStore>, clock: ManualClock) -> (OidcAuth, Arc<Broker>) {
    let auth = OidcAuth::builder(super::test_config())
        .store(store)
        .clock(clock)
        .build();
    let broker = auth.broker().cloned().expect("broker mode");
    (auth, broker)
}

/// A broker on `store` and `clock` with its first key created.
async fn broker_on(store: Arc<HangingStore>, clock: ManualClock) -> (OidcAuth, Arc<Broker>) {
    let (auth, broker) = fresh_broker_on(store, clock);
    assert!(
        auth.jwks_endpoint().await.is_ok(),
        "the first key is created"
    );
    (auth, broker)
}

/// A token of `broker`, valid for an hour.
async fn minted(broker: &Broker, now: i64) -> Result<String, u16> {
    let profile: Map<String, Value> = [("sub".to_owned(), Value::from("alice"))]
        .into_iter()
        .collect();
    broker
        .mint(&profile, &[], "api", 3600, now)
        .await
        .map(|(token, _)| token)
        .map_err(|e| e.status())
}

/// `token` with its header naming key `kid` instead.
fn naming_kid(token: &str, kid: &str) -> String {
    let mut parts = token.splitn(2, '.');
    let (header, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap_or_default())
            .expect("a JSON header");
    header["kid"] = kid.into();
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
}

/// The key ids of a JWKS answer.
fn published(answer: Result<crate::EndpointResponse, crate::AuthError>) -> Vec<String> {
    match answer {
        Ok(crate::EndpointResponse::Json { body, .. }) => body["keys"]
            .as_array()
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k["kid"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        other => panic!("no JWKS: {other:?}"),
    }
}

/// Past the ring's age, with the store hanging: ten JWKS requests, the validation of a token
/// whose key is unknown and a mint come together. One of them reads the store; none queues
/// behind that read for one of its own, so each answers within one store call, from the keys
/// in memory; the unknown key is 503, since the store could not say whether another instance
/// published it. Within the backoff that follows the store is not read at all, and the unknown
/// key is still 503.
#[tokio::test(start_paused = true)]
async fn a_hanging_store_costs_each_request_at_most_one_store_call() {
    let clock = ManualClock::new(SystemClock.now());
    let store = Arc::new(HangingStore::default());
    let (auth, broker) = broker_on(store.clone(), clock.clone()).await;
    let token = minted(&broker, clock.now()).await.expect("a token");
    let unknown = naming_kid(&token, "not-a-key-of-this-server");
    let kids = published(auth.jwks_endpoint().await);
    clock.advance(STALE);
    store.hanging.store(true, Ordering::SeqCst);
    let reads = store.key_reads();

    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let auth = auth.clone();
        let kids = kids.clone();
        requests.spawn(async move {
            let started = Instant::now();
            assert_eq!(published(auth.jwks_endpoint().await), kids);
            ("jwks", started.elapsed())
        });
    }
    let validation = auth.clone();
    requests.spawn(async move {
        let started = Instant::now();
        let refused = validation.validate(&unknown).await.err();
        assert_eq!(refused.map(|e| e.status()), Some(503));
        ("unknown kid", started.elapsed())
    });
    let (minting, now) = (broker.clone(), clock.now());
    requests.spawn(async move {
        let started = Instant::now();
        assert!(
            minted(&minting, now).await.is_ok(),
            "the key in memory signs"
        );
        ("mint", started.elapsed())
    });
    while let Some(done) = requests.join_next().await {
        let (request, took) = done.expect("the request completes");
        assert!(took <= LIMIT, "{request} took {took:?}");
    }
    assert_eq!(store.key_reads() - reads, 1, "one read for all requests");

    let started = Instant::now();
    assert_eq!(published(auth.jwks_endpoint().await), kids);
    assert!(minted(&broker, clock.now()).await.is_ok());
    assert!(auth.validate(&token).await.is_ok());
    for kid in ["another-unknown-key", "not-a-key-of-this-server"] {
        let refused = auth.validate(&naming_kid(&token, kid)).await.err();
        assert_eq!(refused.map(|e| e.status()), Some(503), "within the backoff");
    }
    assert_eq!(started.elapsed(), Duration::ZERO, "within the backoff");
    assert_eq!(store.key_reads() - reads, 1, "no read within the backoff");
}

/// Once the store answers again, the first request after the backoff reads it: a key another
/// instance published meanwhile appears.
#[tokio::test(start_paused = true)]
async fn a_healed_store_is_read_again_after_the_backoff() {
    let clock = ManualClock::new(SystemClock.now());
    let store = Arc::new(HangingStore::default());
    let (auth, _broker) = broker_on(store.clone(), clock.clone()).await;
    let kids = published(auth.jwks_endpoint().await);
    clock.advance(STALE);
    store.hanging.store(true, Ordering::SeqCst);
    assert_eq!(published(auth.jwks_endpoint().await), kids, "from memory");
    store.hanging.store(false, Ordering::SeqCst);

    let current = store.inner.list_keys().await.expect("keys").remove(0);
    let (signer, pkcs8) = Signer::generate(crate::Algorithm::RS256).expect("a key is generated");
    let kid = thumbprint(&signer.public_members());
    let successor = StoredKey {
        private_key: AtRest::new(None)
            .seal(&format!("signing-key:{kid}"), &pkcs8)
            .expect("sealed"),
        public_jwk: Value::Object(signer.public_members()).to_string(),
        alg: "RS256".into(),
        kid: kid.clone(),
        published_at: clock.now(),
        active_from: current.retire_at,
        retire_at: current.retire_at + 3600,
        remove_at: current.retire_at + 7200,
    };
    store.inner.insert_key(&successor).await.expect("stored");

    let reads = store.key_reads();
    assert_eq!(
        published(auth.jwks_endpoint().await),
        kids,
        "within the backoff"
    );
    assert_eq!(store.key_reads(), reads);
    // The longest backoff after a first failure.
    clock.advance(2);
    let now_published = published(auth.jwks_endpoint().await);
    assert_eq!(store.key_reads(), reads + 1);
    assert_eq!(now_published.len(), 2, "{now_published:?}");
    assert!(now_published.contains(&kid), "{now_published:?}");
}

/// A store that is slow but answers (2.5 s a call): the first key, which takes three calls
/// (read, insert, read again), is created all the same, and later requests use it at once.
#[tokio::test(start_paused = true)]
async fn a_slow_store_still_gets_its_first_key() {
    let clock = ManualClock::new(SystemClock.now());
    let store = Arc::new(HangingStore::default());
    store.slow_ms.store(2_500, Ordering::SeqCst);
    let (auth, broker) = fresh_broker_on(store.clone(), clock.clone());
    let started = Instant::now();
    let kids = published(auth.jwks_endpoint().await);
    assert_eq!(kids.len(), 1, "{kids:?}");
    assert!(started.elapsed() >= Duration::from_millis(7_500));
    let started = Instant::now();
    assert!(minted(&broker, clock.now()).await.is_ok());
    assert_eq!(started.elapsed(), Duration::ZERO, "from memory");
}

/// On a store with no key yet, a broker token with an unknown `kid` makes one caller reload
/// the keys (finding none) while a mint comes in: the mint waits for that reload, then creates
/// the first key itself rather than answering that the store is unavailable.
#[tokio::test(start_paused = true)]
async fn a_mint_behind_a_verification_reload_creates_the_first_key() {
    let clock = ManualClock::new(SystemClock.now());
    let other = Arc::new(HangingStore::default());
    let (_, elsewhere) = broker_on(other, clock.clone()).await;
    let foreign = minted(&elsewhere, clock.now()).await.expect("a token");

    let store = Arc::new(HangingStore::default());
    store.slow_ms.store(1_000, Ordering::SeqCst);
    let (auth, broker) = fresh_broker_on(store.clone(), clock.clone());
    let verifying = auth.clone();
    let verification = tokio::spawn(async move { verifying.validate(&foreign).await.err() });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let minting = minted(&broker, clock.now()).await;
    assert!(minting.is_ok(), "{minting:?}");
    let refused = verification.await.expect("the validation completes");
    assert_eq!(refused.map(|e| e.status()), Some(401));
}

/// A clock set back an hour after a failed store read, and after a reload forced by an unknown
/// key id: neither the backoff nor the cooldown lasts that hour. The next unknown key id reads
/// the store at once (before, the answer was 503 with `Retry-After: 3602`, and then a 401 for
/// every new key id without a look at the store for an hour), and a 503 never asks a client to
/// wait more than about a minute.
#[tokio::test(start_paused = true)]
async fn a_clock_set_back_ends_the_key_rings_backoff_and_cooldown() {
    let clock = ManualClock::new(SystemClock.now());
    let store = Arc::new(HangingStore::default());
    let (auth, broker) = broker_on(store.clone(), clock.clone()).await;
    // Tokens of this hour and of the next, each valid in its own hour.
    let earlier = minted(&broker, clock.now()).await.expect("a token");
    clock.advance(3600);
    let later = minted(&broker, clock.now()).await.expect("a token");
    let unknown = |token: &str, kid: &str| naming_kid(token, kid);

    // A failed read for an unknown key id, then the clock an hour back.
    store.hanging.store(true, Ordering::SeqCst);
    let refused = auth.validate(&unknown(&later, "unknown-1")).await.err();
    let retry_after = refused.as_ref().and_then(|e| e.retry_after());
    assert_eq!(refused.map(|e| e.status()), Some(503));
    assert!(retry_after.is_some_and(|s| s <= 63), "{retry_after:?}");
    store.hanging.store(false, Ordering::SeqCst);
    clock.advance(-3600);
    let reads = store.key_reads();
    let refused = auth.validate(&unknown(&earlier, "unknown-2")).await.err();
    assert_eq!(refused.map(|e| e.status()), Some(401), "the store was read");
    assert_eq!(store.key_reads(), reads + 1);

    // A forced read an hour on, then the clock an hour back: its cooldown is over too.
    clock.advance(3600);
    let refused = auth.validate(&unknown(&later, "unknown-3")).await.err();
    assert_eq!(refused.map(|e| e.status()), Some(401));
    assert_eq!(store.key_reads(), reads + 2);
    clock.advance(-3600);
    let refused = auth.validate(&unknown(&earlier, "unknown-4")).await.err();
    assert_eq!(refused.map(|e| e.status()), Some(401));
    assert_eq!(
        store.key_reads(),
        reads + 3,
        "read again, not held by the cooldown"
    );
    assert!(auth.validate(&earlier).await.is_ok());
}

/// Two instances on one store whose clocks disagree by 5 s: the token the one ahead signs
/// with the first key it has just created verifies on the other, and the other publishes that
/// key and signs with it, as the clock leeway allows. Before, the other refused it (401), left
/// it out of its JWKS and could not sign (503) until its own clock caught up.
#[tokio::test(start_paused = true)]
async fn a_key_published_by_an_instance_whose_clock_is_ahead_verifies_within_the_leeway() {
    let behind = ManualClock::new(SystemClock.now());
    let ahead = ManualClock::new(behind.now() + 5);
    let store = Arc::new(HangingStore::default());
    let (_, first) = broker_on(store.clone(), ahead.clone()).await;
    let token = minted(&first, ahead.now()).await.expect("a token");
    let (other, other_broker) = fresh_broker_on(store.clone(), behind.clone());
    assert!(other.validate(&token).await.is_ok());
    let kid = first.keys.current().keys[0].kid.clone();
    assert_eq!(published(other.jwks_endpoint().await), vec![kid.clone()]);
    // And it signs with that key, rather than answering 503 until its clock catches up.
    let own = minted(&other_broker, behind.now()).await.expect("a token");
    let header = own.split('.').next().unwrap_or_default();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap_or_default())
        .expect("a JSON header");
    assert_eq!(header["kid"], kid.as_str());
    assert_eq!(store.inner.list_keys().await.map(|k| k.len()).ok(), Some(1));
}

/// A signing key whose stored times were written far out of range (a database edited by hand,
/// or by someone who can write it but holds no key) is no reason to panic: the ring is still
/// read and the key still signs.
#[tokio::test(start_paused = true)]
async fn a_key_with_times_out_of_range_does_not_panic_the_ring() {
    let clock = ManualClock::new(SystemClock.now());
    let store = Arc::new(HangingStore::default());
    let (_auth, broker) = broker_on(store.clone(), clock.clone()).await;
    let mut key = store.inner.list_keys().await.expect("keys").remove(0);
    store.inner.delete_key(&key.kid).await.expect("deleted");
    key.retire_at = i64::MIN;
    key.remove_at = clock.now() + 1_000_000;
    store.inner.insert_key(&key).await.expect("stored");
    clock.advance(STALE);
    assert!(minted(&broker, clock.now()).await.is_ok());
}

/// A key another instance has just published, and a slow but working store (500 ms a call):
/// the first validation of a token signed with it is given up after 50 ms (its client went
/// away), while a second waits for that read. The waiting one is told to try again in a second
/// (503, `Retry-After: 1`), not that the key is unknown: nothing was read. A second later the
/// key is found: the read given up at once put the store in no backoff and the key in no 15 s
/// cooldown. Before, the key was 503 for the whole cooldown and the backoff held off signing.
#[tokio::test(start_paused = true)]
async fn a_key_read_given_up_at_once_holds_off_no_one() {
    let clock = ManualClock::new(SystemClock.now());
    let other = Arc::new(HangingStore::default());
    let (_, elsewhere) = broker_on(other.clone(), clock.clone()).await;
    let foreign = minted(&elsewhere, clock.now()).await.expect("a token");

    let store = Arc::new(HangingStore::default());
    let (auth, _broker) = broker_on(store.clone(), clock.clone()).await;
    let published_elsewhere = other.inner.list_keys().await.expect("keys").remove(0);
    store
        .inner
        .insert_key(&published_elsewhere)
        .await
        .expect("stored");
    store.slow_ms.store(500, Ordering::SeqCst);

    let given_up = {
        let auth = auth.clone();
        let foreign = foreign.clone();
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_millis(50), auth.validate(&foreign)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let waiting = {
        let auth = auth.clone();
        let foreign = foreign.clone();
        tokio::spawn(async move { auth.validate(&foreign).await.map_err(|e| e.status()) })
    };
    let given_up = given_up.await.expect("the task ends");
    assert!(given_up.is_err(), "given up before the store answered");
    let waited = waiting.await.expect("the task ends");
    assert_eq!(waited.err(), Some(503), "the waiting validation");
    clock.advance(1);
    let next = auth.validate(&foreign).await.map_err(|e| e.status());
    assert!(next.is_ok(), "the next validation: {next:?}");
}

/// Validations of tokens with ever new unknown key ids, each given up 10 ms after it started
/// (a client that disconnects at once), against a slow store: they cannot read the store at
/// the rate they come in. Within a second one read is made; the others are 503 without a read
/// of their own; the next second allows one more.
#[tokio::test(start_paused = true)]
async fn key_reads_given_up_at_once_are_paced() {
    let clock = ManualClock::new(SystemClock.now());
    let store = Arc::new(HangingStore::default());
    let (auth, broker) = broker_on(store.clone(), clock.clone()).await;
    let token = minted(&broker, clock.now()).await.expect("a token");
    store.slow_ms.store(500, Ordering::SeqCst);
    let reads = store.key_reads();
    for i in 0..20 {
        let unknown = naming_kid(&token, &format!("unknown-{i}"));
        let given_up =
            tokio::time::timeout(Duration::from_millis(10), auth.validate(&unknown)).await;
        if let Ok(answer) = given_up {
            assert_eq!(answer.err().map(|e| e.status()), Some(503), "{i}");
        }
    }
    assert_eq!(store.key_reads() - reads, 1, "one read within the second");
    clock.advance(1);
    let unknown = naming_kid(&token, "unknown-next");
    let _ = tokio::time::timeout(Duration::from_millis(10), auth.validate(&unknown)).await;
    assert_eq!(store.key_reads() - reads, 2, "one more the next second");
}

/// The same read given up only after the store kept it waiting past 2 s: the store is taken to
/// hang, and the next validation is 503 within the backoff, without a store call of its own.
#[tokio::test(start_paused = true)]
async fn a_key_read_given_up_after_a_long_wait_backs_off() {
    let clock = ManualClock::new(SystemClock.now());
    let other = Arc::new(HangingStore::default());
    let (_, elsewhere) = broker_on(other, clock.clone()).await;
    let foreign = minted(&elsewhere, clock.now()).await.expect("a token");
    let store = Arc::new(HangingStore::default());
    let (auth, _broker) = broker_on(store.clone(), clock.clone()).await;
    store.hanging.store(true, Ordering::SeqCst);

    let given_up = {
        let (auth, foreign, clock) = (auth.clone(), foreign.clone(), clock.clone());
        tokio::spawn(async move {
            let validation = auth.validate(&foreign);
            tokio::pin!(validation);
            let given_up = tokio::time::timeout(Duration::from_millis(100), &mut validation).await;
            assert!(given_up.is_err(), "still waiting for the store");
            clock.advance(3);
            // Dropped here, three seconds after the read began.
        })
    };
    given_up.await.expect("the task ends");
    let reads = store.key_reads();
    let refused = auth.validate(&foreign).await.err();
    assert_eq!(refused.map(|e| e.status()), Some(503));
    assert_eq!(store.key_reads(), reads, "no read within the backoff");
}
