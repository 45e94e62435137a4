//! Property test over what the broker's store gives back: for one request, one store call
//! fails (before or after it took effect, as a connection lost before the statement or
//! before its answer), or reads back a row that is not what was written (another subject, a
//! sealed token that is not one, a changed expiry, a refresh record of another family or
//! session, a vanished row, a marker already taken). The requests are the broker's: a login,
//! a refresh, a revocation and a device poll, on both frameworks.
//!
//! For every case:
//! - the answer comes within a time bound and is never a 500: a store that cannot be reached
//!   or read is 503, and any other answer is below 500;
//! - every error has the JSON error body and every answer `Cache-Control: no-store`;
//! - a refresh that succeeds answers for the session's own subject, whatever the store read;
//! - a revocation that answers 200 has revoked: the token no longer refreshes;
//! - an outage loses nothing: once the store answers again after a refresh it interrupted,
//!   the refresh token the client holds (the one it sent, or the successor it was given)
//!   still refreshes.
//!
//! 10 000 cases unless `PROPTEST_CASES` says otherwise (CI sets it to 10 000).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use oidc_auth::store::memory::MemoryStore;
use oidc_auth::store::{
    RefreshRecord, RotateOutcome, Session, Store, StoreError, StoreFuture, StoredKey,
};
use oidc_auth_tests::broker::{TOKEN, jwt, provider, serve_broker};
use oidc_auth_tests::{
    FRAMEWORKS, Framework, Harness, Reply, assert_error_body_and_no_store, assert_frameworks_agree,
    client_code_flow, property_runtime, proptest_config,
};
use proptest::prelude::*;

/// The longest one request may take: a store call is bounded well below it.
const CASE_BOUND: Duration = Duration::from_secs(15);

/// The store calls a case can make misbehave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    PutSession,
    UpdateSession,
    GetSession,
    DeleteSession,
    InsertRefresh,
    RotateRefresh,
    RevokeFamily,
    ConsumeOnce,
    IsConsumed,
    PurgeExpired,
}

const CALLS: [Call; 10] = [
    Call::PutSession,
    Call::UpdateSession,
    Call::GetSession,
    Call::DeleteSession,
    Call::InsertRefresh,
    Call::RotateRefresh,
    Call::RevokeFamily,
    Call::ConsumeOnce,
    Call::IsConsumed,
    Call::PurgeExpired,
];

/// A field of a session row as read back.
#[derive(Clone, Debug)]
enum SessionField {
    Id(String),
    Subject(String),
    Sealed(Vec<u8>),
    Userinfo(String),
    ExpiresAt(i64),
}

/// A field of a refresh record as read back.
#[derive(Clone, Debug)]
enum RecordField {
    Family(String),
    SessionId(String),
    ExpiresAt(i64),
}

/// How the call misbehaves.
#[derive(Clone, Debug)]
enum Twist {
    /// The connection is lost before the statement: nothing happens.
    Unavailable,
    /// The statement takes effect, and the connection is lost before its answer.
    UnavailableAfter,
    /// The store holds something it cannot read back.
    Corrupt,
    /// The store refuses the value.
    Rejected,
    /// A session read back (by `get_session` or `delete_session`) with this field changed.
    Session(SessionField),
    /// The row is not found (a read), or nothing was changed (an update).
    Gone,
    /// A rotation's record read back with this field changed, or found spent, or not found.
    Record(RecordField),
    Spent,
    NotFound,
    /// A marker that was free reads as taken (`consume_once` false, `is_consumed` true).
    Taken,
}

impl Twist {
    fn is_outage(&self) -> bool {
        matches!(self, Twist::Unavailable | Twist::UnavailableAfter)
    }
}

/// The request of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Request {
    Login,
    Refresh,
    Revoke,
    DevicePoll,
}

#[derive(Clone, Debug)]
struct Case {
    request: Request,
    call: Call,
    twist: Twist,
}

/// What the store does next: the case's twist, for the first call of its kind; for every
/// marker call (`consume_once`) while the request runs, since such a call may also come from
/// the background, where a broker retries a mark an earlier case made fail, and would take a
/// twist meant for the request.
#[derive(Default)]
struct Plan(Mutex<Option<(Call, Twist)>>);

impl Plan {
    fn arm(&self, call: Call, twist: Twist) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((call, twist));
    }

    fn disarm(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The twist for `call`: taken, so that only one call of a request misbehaves, except
    /// for marker calls.
    fn take(&self, call: Call) -> Option<Twist> {
        let mut plan = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match plan.as_ref() {
            Some((Call::ConsumeOnce, twist)) if call == Call::ConsumeOnce => Some(twist.clone()),
            Some((planned, _)) if *planned == call => plan.take().map(|(_, twist)| twist),
            _ => None,
        }
    }
}

/// A memory store whose calls misbehave as the plan says.
struct Twisted {
    inner: MemoryStore,
    plan: Arc<Plan>,
}

fn error(twist: &Twist) -> Option<StoreError> {
    match twist {
        Twist::Unavailable | Twist::UnavailableAfter => {
            Some(StoreError::Unavailable("the connection was lost".into()))
        }
        Twist::Corrupt => Some(StoreError::Corrupt("an unreadable row".into())),
        Twist::Rejected => Some(StoreError::Rejected("a refused value".into())),
        _ => None,
    }
}

/// Runs `call` on the inner store under `twist`: an error before it for a lost connection or
/// a refusal, after it for a lost answer or an unreadable row, else `read` applied to its
/// result.
async fn twisted<T>(
    twist: Option<Twist>,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
    read: impl FnOnce(T, &Twist) -> T,
) -> Result<T, StoreError> {
    let Some(twist) = twist else {
        return call.await;
    };
    let before = matches!(twist, Twist::Unavailable | Twist::Rejected);
    match error(&twist) {
        Some(e) if before => Err(e),
        Some(e) => call.await.and(Err(e)),
        None => call.await.map(|result| read(result, &twist)),
    }
}

fn twist_session(mut session: Session, twist: &Twist) -> Session {
    if let Twist::Session(field) = twist {
        match field.clone() {
            SessionField::Id(id) => session.id = id,
            SessionField::Subject(subject) => session.subject = subject,
            SessionField::Sealed(bytes) => session.provider_refresh_token = bytes,
            SessionField::Userinfo(text) => session.userinfo = text,
            SessionField::ExpiresAt(at) => session.expires_at = at,
        }
    }
    session
}

fn twist_found(found: Option<Session>, twist: &Twist) -> Option<Session> {
    match twist {
        Twist::Gone => None,
        _ => found.map(|s| twist_session(s, twist)),
    }
}

fn twist_record(mut record: RefreshRecord, twist: &Twist) -> RefreshRecord {
    if let Twist::Record(field) = twist {
        match field.clone() {
            RecordField::Family(family) => record.family = family,
            RecordField::SessionId(id) => record.session_id = id,
            RecordField::ExpiresAt(at) => record.expires_at = at,
        }
    }
    record
}

impl Store for Twisted {
    fn migrate(&self) -> StoreFuture<'_, ()> {
        self.inner.migrate()
    }

    fn put_session(&self, session: &Session) -> StoreFuture<'_, ()> {
        let twist = self.plan.take(Call::PutSession);
        let session = session.clone();
        Box::pin(async move { twisted(twist, self.inner.put_session(&session), |(), _| ()).await })
    }

    fn update_session(&self, session: &Session, now: i64) -> StoreFuture<'_, bool> {
        let twist = self.plan.take(Call::UpdateSession);
        let session = session.clone();
        Box::pin(async move {
            twisted(
                twist,
                self.inner.update_session(&session, now),
                |live, t| live && !matches!(t, Twist::Gone),
            )
            .await
        })
    }

    fn get_session(&self, id: &str, now: i64) -> StoreFuture<'_, Option<Session>> {
        let twist = self.plan.take(Call::GetSession);
        let id = id.to_owned();
        Box::pin(async move { twisted(twist, self.inner.get_session(&id, now), twist_found).await })
    }

    fn delete_session(&self, id: &str) -> StoreFuture<'_, Option<Session>> {
        let twist = self.plan.take(Call::DeleteSession);
        let id = id.to_owned();
        Box::pin(async move { twisted(twist, self.inner.delete_session(&id), twist_found).await })
    }

    fn insert_refresh(&self, record: &RefreshRecord) -> StoreFuture<'_, ()> {
        let twist = self.plan.take(Call::InsertRefresh);
        let record = record.clone();
        Box::pin(
            async move { twisted(twist, self.inner.insert_refresh(&record), |(), _| ()).await },
        )
    }

    fn rotate_refresh(
        &self,
        old: &[u8; 32],
        new: &[u8; 32],
        now: i64,
    ) -> StoreFuture<'_, RotateOutcome> {
        let twist = self.plan.take(Call::RotateRefresh);
        let (old, new) = (*old, *new);
        Box::pin(async move {
            twisted(
                twist,
                self.inner.rotate_refresh(&old, &new, now),
                |outcome, twist| match (outcome, twist) {
                    (_, Twist::NotFound) => RotateOutcome::NotFound,
                    (RotateOutcome::Rotated(r) | RotateOutcome::Spent(r), Twist::Spent) => {
                        RotateOutcome::Spent(r)
                    }
                    (RotateOutcome::Rotated(r), t) => RotateOutcome::Rotated(twist_record(r, t)),
                    (RotateOutcome::Spent(r), t) => RotateOutcome::Spent(twist_record(r, t)),
                    (RotateOutcome::NotFound, _) => RotateOutcome::NotFound,
                },
            )
            .await
        })
    }

    fn revoke_family(&self, family: &str) -> StoreFuture<'_, ()> {
        let twist = self.plan.take(Call::RevokeFamily);
        let family = family.to_owned();
        Box::pin(async move { twisted(twist, self.inner.revoke_family(&family), |(), _| ()).await })
    }

    fn list_keys(&self) -> StoreFuture<'_, Vec<StoredKey>> {
        self.inner.list_keys()
    }

    fn insert_first_key(&self, key: &StoredKey, now: i64) -> StoreFuture<'_, bool> {
        self.inner.insert_first_key(key, now)
    }

    fn insert_key(&self, key: &StoredKey) -> StoreFuture<'_, ()> {
        self.inner.insert_key(key)
    }

    fn delete_key(&self, kid: &str) -> StoreFuture<'_, ()> {
        self.inner.delete_key(kid)
    }

    fn put_peer_jwks(&self, issuer: &str, jwks: &str, fetched_at: i64) -> StoreFuture<'_, ()> {
        self.inner.put_peer_jwks(issuer, jwks, fetched_at)
    }

    fn get_peer_jwks(&self, issuer: &str) -> StoreFuture<'_, Option<(String, i64)>> {
        self.inner.get_peer_jwks(issuer)
    }

    fn consume_once(&self, key: &[u8; 32], expires_at: i64, now: i64) -> StoreFuture<'_, bool> {
        let twist = self.plan.take(Call::ConsumeOnce);
        let key = *key;
        Box::pin(async move {
            twisted(
                twist,
                self.inner.consume_once(&key, expires_at, now),
                |free, t| free && !matches!(t, Twist::Taken),
            )
            .await
        })
    }

    fn is_consumed(&self, key: &[u8; 32], now: i64) -> StoreFuture<'_, bool> {
        let twist = self.plan.take(Call::IsConsumed);
        let key = *key;
        Box::pin(async move {
            twisted(twist, self.inner.is_consumed(&key, now), |taken, t| {
                taken || matches!(t, Twist::Taken)
            })
            .await
        })
    }

    fn purge_expired(&self, now: i64) -> StoreFuture<'_, u64> {
        let twist = self.plan.take(Call::PurgeExpired);
        Box::pin(async move { twisted(twist, self.inner.purge_expired(now), |n, _| n).await })
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9_-]{1,24}",
        ".{0,40}",
        Just("{\"sub\":\"mallory\",\"groups\":[\"admins\"]}".to_owned()),
    ]
}

fn time() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        Just(0i64),
        Just(-1i64),
        1_000_000_000i64..4_000_000_000,
    ]
}

fn twist(call: Call) -> BoxedStrategy<Twist> {
    let failures = prop_oneof![
        4 => Just(Twist::Unavailable),
        4 => Just(Twist::UnavailableAfter),
        1 => Just(Twist::Corrupt),
        1 => Just(Twist::Rejected),
    ];
    let session = prop_oneof![
        text().prop_map(SessionField::Id),
        text().prop_map(SessionField::Subject),
        prop::collection::vec(any::<u8>(), 0..80).prop_map(SessionField::Sealed),
        text().prop_map(SessionField::Userinfo),
        time().prop_map(SessionField::ExpiresAt),
    ];
    let record = prop_oneof![
        text().prop_map(RecordField::Family),
        text().prop_map(RecordField::SessionId),
        time().prop_map(RecordField::ExpiresAt),
    ];
    match call {
        Call::GetSession | Call::DeleteSession => prop_oneof![
            2 => failures,
            3 => session.prop_map(Twist::Session),
            1 => Just(Twist::Gone),
        ]
        .boxed(),
        Call::UpdateSession => prop_oneof![2 => failures, 1 => Just(Twist::Gone)].boxed(),
        Call::RotateRefresh => prop_oneof![
            2 => failures,
            3 => record.prop_map(Twist::Record),
            1 => Just(Twist::Spent),
            1 => Just(Twist::NotFound),
        ]
        .boxed(),
        Call::ConsumeOnce | Call::IsConsumed => {
            prop_oneof![2 => failures, 1 => Just(Twist::Taken)].boxed()
        }
        _ => failures.boxed(),
    }
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::sample::select(
            [
                Request::Login,
                Request::Refresh,
                Request::Revoke,
                Request::DevicePoll,
            ]
            .as_slice(),
        ),
        prop::sample::select(CALLS.as_slice()),
    )
        .prop_flat_map(|(request, call)| {
            twist(call).prop_map(move |twist| Case {
                request,
                call,
                twist,
            })
        })
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    h: Harness,
    plan: Arc<Plan>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = property_runtime(2);
        let plan = Arc::new(Plan::default());
        let store = Arc::new(Twisted {
            inner: MemoryStore::new(),
            plan: plan.clone(),
        });
        let h =
            runtime.block_on(async { serve_broker(provider().await, store, |b| b, None).await });
        Fixture { runtime, h, plan }
    })
}

fn field(reply: &Reply, name: &str) -> String {
    reply.body[name].as_str().unwrap_or_default().to_owned()
}

fn subject(reply: &Reply) -> String {
    jwt(&field(reply, "access_token")).1["sub"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn refresh(h: &Harness, fw: Framework, token: &str) -> Reply {
    h.post_form(fw, TOKEN, &[("refresh-token", token)]).await
}

/// What one framework saw: the case's answer, the subject and refresh token the client held
/// before it, and the answer of a refresh once the store answers again.
struct Seen {
    reply: Reply,
    subject: String,
    held: String,
    after: Option<Reply>,
}

async fn run_on(f: &Fixture, fw: Framework, case: &Case) -> Seen {
    let h = &f.h;
    let login = client_code_flow(h, fw).await;
    assert_eq!(login.status, 200, "a login on {fw:?}: {login:?}");
    let (subject, held) = (subject(&login), field(&login, "refresh_token"));
    let device_code = if case.request == Request::DevicePoll {
        let started = h.post_form(fw, "/api/auth/v2/device", &[]).await;
        assert!(h.idp.approve_device(&field(&started, "user_code")));
        field(&started, "device_code")
    } else {
        String::new()
    };
    f.plan.arm(case.call, case.twist.clone());
    let started = Instant::now();
    let request = async {
        match case.request {
            Request::Login => client_code_flow(h, fw).await,
            Request::Refresh => refresh(h, fw, &held).await,
            Request::Revoke => {
                h.post_form(
                    fw,
                    "/api/auth/v2/revoke",
                    &[("token", &held), ("token_type_hint", "refresh_token")],
                )
                .await
            }
            Request::DevicePoll => {
                h.post_form(fw, TOKEN, &[("device-code", &device_code)])
                    .await
            }
        }
    };
    let reply = tokio::time::timeout(CASE_BOUND, request).await;
    f.plan.disarm();
    let reply = reply.unwrap_or_else(|_| panic!("no answer within {CASE_BOUND:?} on {fw:?}"));
    assert!(
        started.elapsed() < CASE_BOUND,
        "took {:?}",
        started.elapsed()
    );
    // Once the store answers again, the token the client holds now: the successor of a
    // refresh that succeeded, else the one it sent.
    let after = match case.request {
        Request::Refresh | Request::Revoke => {
            let now_held = if case.request == Request::Refresh && reply.status == 200 {
                field(&reply, "refresh_token")
            } else {
                held.clone()
            };
            Some(refresh(h, fw, &now_held).await)
        }
        Request::Login | Request::DevicePoll => None,
    };
    Seen {
        reply,
        subject,
        held,
        after,
    }
}

fn check(case: &Case, fw: Framework, seen: &Seen) {
    let reply = &seen.reply;
    let shown = || {
        format!(
            "{fw:?} answered {} ({}) to {case:?}",
            reply.status, reply.raw_body
        )
    };
    assert!(reply.status < 500 || reply.status == 503, "{}", shown());
    assert_error_body_and_no_store(reply, &shown());
    if case.request == Request::Refresh && reply.status == 200 {
        assert_eq!(subject(reply), seen.subject, "another subject: {}", shown());
    }
    let Some(after) = &seen.after else {
        return;
    };
    let after_shown = || format!("then {} ({})", after.status, after.raw_body);
    if after.status == 200 {
        assert_eq!(
            subject(after),
            seen.subject,
            "another subject: {}; {}",
            shown(),
            after_shown()
        );
    }
    if case.request == Request::Revoke && reply.status == 200 {
        assert_ne!(
            after.status,
            200,
            "a revoked token still refreshes: {}; {}",
            shown(),
            after_shown()
        );
    } else if case.request == Request::Refresh && case.twist.is_outage() {
        assert_eq!(
            after.status,
            200,
            "an outage lost the session (held {}): {}; {}",
            seen.held.len(),
            shown(),
            after_shown()
        );
    }
}

fn run(case: &Case) {
    let f = fixture();
    let seen: Vec<(Framework, Seen)> = f.runtime.block_on(async {
        let mut seen = Vec::new();
        for fw in FRAMEWORKS {
            seen.push((fw, run_on(f, fw, case).await));
        }
        seen
    });
    for (fw, one) in &seen {
        check(case, *fw, one);
    }
    if let [(_, axum), (_, actix)] = seen.as_slice() {
        assert_frameworks_agree(&axum.reply, &actix.reply, case);
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn whatever_the_store_gives_back_the_broker_answers_cleanly_and_loses_nothing(case in case()) {
        run(&case);
    }
}
