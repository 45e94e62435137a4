//! Broker mode end to end on both frameworks against the mock provider: minted tokens, the
//! JWKS, rotating refresh tokens with reuse detection, the provider refresh behind them,
//! device sessions, token exchange and key rotation (SECURITY.md groups E and F).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_auth::store::Store;
use oidc_auth::store::memory::MemoryStore;
use oidc_auth::testing::{Endpoint, Fault, MockProvider, SigningAlg};
use oidc_auth::{Algorithm, Clock, ManualClock, OidcAuth, OidcConfigBuilder, SystemClock};
use oidc_auth_tests::broker::{
    BROKER_AUDIENCE, JWKS, REVOKE, TOKEN, concurrent_refreshes, exchange, exchange_form, field,
    jwt, login, provider, refresh, serve_broker,
};
use oidc_auth_tests::{
    AUDIENCE, FRAMEWORKS, Framework, Harness, LOOPBACK, Reply, assert_invalid_token, base_config,
    browser_login, client_token_call,
};
use serde_json::{Value, json};

/// The encryption key of instances that share one store (32 bytes, base64).
const SHARED_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// One of several instances sharing `store` (and [`SHARED_KEY`]), on `idp`.
async fn sharing(idp: &MockProvider, store: Arc<dyn Store>) -> Harness {
    serve_broker(idp.clone(), store, |c| c.encryption_key(SHARED_KEY), None).await
}

/// The key [`SHARED_KEY`] is changed to.
const NEW_KEY: &str = "bmV3LWtleS1uZXcta2V5LW5ldy1rZXktbmV3LWtleSE=";

/// An instance on `store` with encryption key `key`, and `previous` listed as previous keys.
async fn keyed(idp: &MockProvider, store: Arc<dyn Store>, key: &str, previous: &str) -> Harness {
    serve_broker(
        idp.clone(),
        store,
        |c| {
            c.encryption_key(key)
                .previous_encryption_keys([previous.to_owned()])
        },
        None,
    )
    .await
}

/// An encryption key configured for a deployment that ran without one: its signing key is
/// stored in plain text, which an instance with a key neither signs nor verifies with (anyone
/// who can write the store could have put it there). A sealed replacement signs from then on:
/// logins succeed at once instead of answering 503 until the old key retires (up to 30 days),
/// the old key is no longer published, so its tokens are refused (their clients refresh), and
/// each instance's tokens are accepted by the others sharing the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_stored_before_the_encryption_key_is_replaced() {
    let idp = provider().await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let before = serve_broker(idp.clone(), store.clone(), |c| c, None).await;
    let old = login(&before, Framework::Axum).await;
    assert_eq!(old.status, 200, "{}", old.raw_body);
    let old_token = field(&old, "access_token").to_owned();
    let (old_header, _) = jwt(&old_token);
    let first = sharing(&idp, store.clone()).await;
    let second = sharing(&idp, store.clone()).await;
    let mut minted = Vec::new();
    for (h, fw) in [(&first, Framework::Axum), (&second, Framework::Actix)] {
        let reply = login(h, fw).await;
        assert_eq!(reply.status, 200, "{fw:?}: {}", reply.raw_body);
        let (header, _) = jwt(field(&reply, "access_token"));
        assert_ne!(
            header["kid"], old_header["kid"],
            "{fw:?}: signed with the plain key"
        );
        minted.push(field(&reply, "access_token").to_owned());
        let me = h.bearer(fw, "/me", &old_token).await;
        assert_invalid_token(&me);
        let published = h.get(fw, JWKS, None).await;
        assert_eq!(published.status, 200, "{fw:?}");
        assert!(
            !published
                .raw_body
                .contains(old_header["kid"].as_str().unwrap_or("-")),
            "{fw:?}: {}",
            published.raw_body
        );
    }
    for (h, token) in [(&first, &minted[1]), (&second, &minted[0])] {
        let me = h.bearer(Framework::Axum, "/me", token).await;
        assert_eq!(
            me.status, 200,
            "the other instance's token: {}",
            me.raw_body
        );
    }
}

/// Someone who can write the database but lacks the encryption key cannot add a key that
/// verifies: the public key used is the one the row's sealed private key implies, so a row
/// whose public JWK was swapped keeps verifying only the real key's tokens, and a row of their
/// own (private key in plain text, or not sealed with the configured key) is neither published
/// nor taken for any token. Each case meets an instance that reads the store afresh, on both
/// frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_written_into_the_database_verifies_nothing() {
    let idp = provider().await;
    // The intruder's own key, made by a broker without an encryption key.
    let theirs_store = Arc::new(MemoryStore::new());
    let theirs_broker = serve_broker(idp.clone(), theirs_store.clone(), |c| c, None).await;
    login(&theirs_broker, Framework::Axum).await;
    let theirs = theirs_store.list_keys().await.expect("keys").remove(0);
    drop(theirs_broker);

    let store = Arc::new(MemoryStore::new());
    let genuine_instance = sharing(&idp, store.clone()).await;
    let genuine = field(
        &login(&genuine_instance, Framework::Axum).await,
        "access_token",
    )
    .to_owned();
    let (header, claims) = jwt(&genuine);
    let kid = header["kid"].as_str().expect("kid").to_owned();
    let mut forged_claims = claims.clone();
    forged_claims["sub"] = json!("mallory");
    forged_claims["roles"] = json!(["admins"]);
    let real = store.list_keys().await.expect("keys").remove(0);
    assert_eq!(real.kid, kid);
    let n_of = |jwk: &str| -> String {
        let jwk: Value = serde_json::from_str(jwk).unwrap_or_default();
        jwk["n"].as_str().unwrap_or_default().to_owned()
    };

    // 1. The real row with the intruder's public key in it.
    store.delete_key(&kid).await.expect("delete");
    store
        .insert_key(&oidc_auth::store::StoredKey {
            public_jwk: theirs.public_jwk.clone(),
            ..real.clone()
        })
        .await
        .expect("insert");
    let forged = forge_with_header(
        &theirs,
        &json!({"alg": "RS256", "typ": "at+jwt", "kid": kid}),
        &forged_claims,
    );
    let fresh = sharing(&idp, store.clone()).await;
    for fw in FRAMEWORKS {
        assert_invalid_token(&fresh.bearer(fw, "/me", &forged).await);
        let me = fresh.bearer(fw, "/me", &genuine).await;
        assert_eq!(me.status, 200, "{fw:?}: {}", me.raw_body);
        let published: Value =
            serde_json::from_str(&fresh.get(fw, JWKS, None).await.raw_body).unwrap_or_default();
        let key = published["keys"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["kid"] == kid.as_str()))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            key["n"].as_str(),
            Some(n_of(&real.public_jwk).as_str()),
            "{fw:?}"
        );
        assert_ne!(n_of(&real.public_jwk), n_of(&theirs.public_jwk));
    }

    // 2. A row of the intruder's own, its private key in plain text or sealed with another key.
    let sealed_elsewhere = {
        let mut sealed = vec![1u8];
        sealed.extend_from_slice(&[7u8; 60]);
        sealed
    };
    for private_key in [theirs.private_key.clone(), sealed_elsewhere] {
        store.delete_key(&theirs.kid).await.expect("delete");
        store
            .insert_key(&oidc_auth::store::StoredKey {
                private_key,
                published_at: 0,
                active_from: i64::MAX / 2,
                retire_at: i64::MAX / 2,
                remove_at: i64::MAX / 2,
                ..theirs.clone()
            })
            .await
            .expect("insert");
        let forged = forge_with(&theirs, &forged_claims);
        let fresh = sharing(&idp, store.clone()).await;
        for fw in FRAMEWORKS {
            assert_invalid_token(&fresh.bearer(fw, "/me", &forged).await);
            let published = fresh.get(fw, JWKS, None).await;
            assert_eq!(published.status, 200, "{fw:?}");
            assert!(
                published.raw_body.contains(&kid),
                "{fw:?}: {}",
                published.raw_body
            );
            assert!(
                !published.raw_body.contains(&theirs.kid),
                "{fw:?}: {}",
                published.raw_body
            );
        }
    }
}

struct Broker {
    h: Harness,
    store: Arc<MemoryStore>,
}

async fn broker_with(
    adjust: impl FnOnce(OidcConfigBuilder) -> OidcConfigBuilder,
    clock: Option<ManualClock>,
) -> Broker {
    let store = Arc::new(MemoryStore::new());
    let h = serve_broker(provider().await, store.clone(), adjust, clock).await;
    Broker { h, store }
}

async fn broker() -> Broker {
    broker_with(|b| b, None).await
}

/// Deliver 1: login answers with tokens this server signed (RS256 by default, `typ` at+jwt,
/// the claims of DESIGN.md section 7); the provider's tokens never reach the client; the guards
/// of both frameworks accept the minted token, and policies see its flattened roles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_answers_with_minted_tokens_the_guards_accept() {
    let b = broker().await;
    let h = &b.h;
    for fw in FRAMEWORKS {
        let reply = login(h, fw).await;
        let access = field(&reply, "access_token");
        let (header, claims) = jwt(access);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["typ"], "at+jwt");
        assert!(header["kid"].is_string());
        assert_eq!(
            claims["iss"], BROKER_AUDIENCE,
            "no proxy: iss is the audience"
        );
        assert_eq!(claims["aud"], BROKER_AUDIENCE);
        assert_eq!(claims["client_id"], "test-client", "RFC 9068 section 2.2");
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["preferred_username"], "alice");
        assert_eq!(claims["email"], "alice@example.com");
        assert_eq!(claims["roles"], json!(["editor", "admins"]));
        for name in ["jti", "sid", "scope"] {
            assert!(claims[name].is_string(), "{name}: {claims}");
        }
        for name in ["iat", "exp"] {
            assert!(claims[name].is_i64(), "{name}: {claims}");
        }
        assert!(reply.body.get("id_token").is_none(), "{}", reply.raw_body);
        let refresh_token = field(&reply, "refresh_token");
        assert!(!refresh_token.is_empty() && !refresh_token.contains('.'));
        assert_ne!(refresh_token, access);
        let me = h.bearer_both("/me", access).await;
        assert_eq!((me.status, me.body["sub"].as_str()), (200, Some("alice")));
        // The provider's own access token is still accepted too.
        let idp_token = h.idp.token().audience(AUDIENCE).sign();
        assert_eq!(h.bearer_both("/me", &idp_token).await.status, 200);
    }
}

/// Minted `roles` take from `resource_access` only the roles of this server's client, of the
/// audience its access tokens must carry, and of the minted audience. A user who is `admin` of an unrelated client of the same provider is
/// not `admin` to the services that trust the minted token (before: every client's roles were
/// flattened in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_roles_leave_out_the_roles_of_unrelated_clients() {
    let b = broker().await;
    let h = &b.h;
    h.idp.set_user(
        "alice",
        json!({
            "preferred_username": "alice",
            "roles": ["viewer"],
            "realm_access": {"roles": ["user"]},
            "resource_access": {
                "test-client": {"roles": ["editor"]},
                BROKER_AUDIENCE: {"roles": ["auditor"]},
                AUDIENCE: {"roles": ["operator"]},
                "billing": {"roles": ["admin"]},
                "account": {"roles": ["manage-account"]},
            },
        }),
    );
    for fw in FRAMEWORKS {
        let reply = login(h, fw).await;
        let (_, claims) = jwt(field(&reply, "access_token"));
        let roles = claims["roles"].as_array().cloned().unwrap_or_default();
        for held in ["viewer", "user", "editor", "auditor", "operator"] {
            assert!(roles.contains(&json!(held)), "{fw:?}: {held} in {roles:?}");
        }
        for foreign in ["admin", "manage-account"] {
            assert!(
                !roles.contains(&json!(foreign)),
                "{fw:?}: {foreign} in {roles:?}"
            );
        }
    }
    // Token exchange mints from the subject token the same way.
    let subject = h
        .idp
        .token()
        .audience(AUDIENCE)
        .claim(
            "resource_access",
            json!({"test-client": {"roles": ["editor"]}, "billing": {"roles": ["admin"]}}),
        )
        .sign();
    for fw in FRAMEWORKS {
        let reply = exchange(h, fw, &exchange_form(&subject, &[]), true).await;
        assert_eq!(reply.status, 200, "{fw:?}: {}", reply.raw_body);
        let (_, claims) = jwt(field(&reply, "access_token"));
        let roles = claims["roles"].as_array().cloned().unwrap_or_default();
        assert!(roles.contains(&json!("editor")), "{fw:?}: {roles:?}");
        assert!(!roles.contains(&json!("admin")), "{fw:?}: {roles:?}");
    }
}

/// A user in hundreds of groups: the minted token, which carries them, would be over the bearer
/// limit, so every route would refuse it (401) and each refresh would mint it again. The login
/// fails clearly instead (502, the provider's claims are too large), and with a limit raised
/// to fit, it succeeds and the token is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minted_token_over_the_bearer_limit_fails_the_login_clearly() {
    let groups: Vec<String> = (0..300)
        .map(|i| format!("/department-{i:03}/team-members-with-a-long-name"))
        .collect();
    let claims = json!({"preferred_username": "alice", "groups": groups});
    let small = broker().await;
    small.h.idp.set_user("alice", claims.clone());
    let large = broker_with(|b| b.max_token_bytes(64 * 1024), None).await;
    large.h.idp.set_user("alice", claims);
    for fw in FRAMEWORKS {
        let refused = oidc_auth_tests::client_code_flow(&small.h, fw).await;
        assert_eq!(refused.status, 502, "{fw:?}: {}", refused.raw_body);
        assert!(refused.body.get("access_token").is_none());

        let reply = login(&large.h, fw).await;
        let access = field(&reply, "access_token");
        assert!(access.len() > 8 * 1024, "{} bytes", access.len());
        let me = large.h.bearer_both("/me", access).await;
        assert_eq!(me.status, 200, "{fw:?}: {}", me.raw_body);
    }
}

/// Deliver 1 and 3: ES256 and EdDSA are selectable; the JWKS publishes public parameters only,
/// and the key that signed the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broker_algorithm_mints_and_publishes_public_keys_only() {
    for (alg, kty) in [
        (Algorithm::RS256, "RSA"),
        (Algorithm::ES256, "EC"),
        (Algorithm::EdDSA, "OKP"),
    ] {
        let b = broker_with(|c| c.broker_signing_algorithm(alg), None).await;
        let h = &b.h;
        let reply = login(h, Framework::Axum).await;
        let (header, _) = jwt(field(&reply, "access_token"));
        assert_eq!(header["alg"], alg.as_str());
        for fw in FRAMEWORKS {
            let jwks = h.get(fw, JWKS, None).await;
            assert_eq!(jwks.status, 200);
            let keys = jwks.body["keys"].as_array().cloned().unwrap_or_default();
            assert_eq!(keys.len(), 1, "{}", jwks.raw_body);
            assert_eq!(keys[0]["kid"], header["kid"]);
            assert_eq!(keys[0]["kty"], kty);
            assert_eq!(keys[0]["alg"], alg.as_str());
            assert_eq!(keys[0]["use"], "sig");
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(keys[0].get(private).is_none(), "{private} published");
            }
        }
        assert_eq!(
            h.bearer_both("/me", field(&reply, "access_token"))
                .await
                .status,
            200
        );
    }
}

/// A change someone who can write the database makes to a session row.
type SessionChange = fn(&mut oidc_auth::store::Session);

/// The session id (`sid`) of a login's access token.
fn sid_of(reply: &oidc_auth_tests::Reply) -> String {
    jwt(field(reply, "access_token")).1["sid"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Changes the stored session of a login's tokens with `change`, as someone who can write the
/// database would; its id.
async fn change_session(
    store: &MemoryStore,
    reply: &oidc_auth_tests::Reply,
    change: impl FnOnce(&mut oidc_auth::store::Session),
) -> String {
    let sid = sid_of(reply);
    let mut session = store
        .get_session(&sid, SystemClock.now())
        .await
        .ok()
        .flatten()
        .expect("session");
    change(&mut session);
    store.put_session(&session).await.expect("write");
    sid
}

/// A session row whose subject, stored claims or expiry were changed in the database (roles
/// added, another user's subject, a year more) does not refresh into a token carrying them: the
/// sealed provider refresh token is bound to all three, so it does not open and the session
/// ends (401 `invalid_grant`, the row gone), on both frameworks. An untouched session
/// refreshes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_changed_in_the_database_ends_instead_of_minting_its_claims() {
    let b = broker().await;
    let h = &b.h;
    for fw in FRAMEWORKS {
        let tampered: [(&str, SessionChange); 3] = [
            ("roles added", |session| {
                let mut info: Value = serde_json::from_str(&session.userinfo).unwrap_or_default();
                info["roles"] = json!(["admins", "root"]);
                session.userinfo = info.to_string();
            }),
            ("another subject", |session| {
                session.subject = "bob".into();
                let mut info: Value = serde_json::from_str(&session.userinfo).unwrap_or_default();
                info["sub"] = json!("bob");
                session.userinfo = info.to_string();
            }),
            ("a longer life", |session| {
                session.expires_at += 365 * 86_400
            }),
        ];
        for (case, tamper) in tampered {
            let reply = login(h, fw).await;
            let sid = change_session(&b.store, &reply, tamper).await;
            let now = SystemClock.now();
            let refreshed = refresh(h, fw, field(&reply, "refresh_token")).await;
            assert_eq!(
                (refreshed.status, refreshed.error()),
                (401, Some("invalid_grant")),
                "{fw:?}, {case}: {}",
                refreshed.raw_body
            );
            assert!(
                b.store
                    .get_session(&sid, now)
                    .await
                    .ok()
                    .flatten()
                    .is_none(),
                "{fw:?}, {case}: the session is still there"
            );
        }
        let untouched = login(h, fw).await;
        let refreshed = refresh(h, fw, field(&untouched, "refresh_token")).await;
        assert_eq!(refreshed.status, 200, "{fw:?}: {}", refreshed.raw_body);
        let claims = jwt(field(&refreshed, "access_token")).1;
        assert_eq!(
            (&claims["sub"], &claims["roles"]),
            (&json!("alice"), &json!(["editor", "admins"]))
        );
    }
}

/// Someone who can write the database cannot refresh into another user's session. A refresh
/// record changed to name the victim's session is refused (the token names its own session,
/// under a tag made with a key the store does not hold), and the victim's session goes on.
/// A made-up token naming the victim's session is refused without a store lookup of its
/// record (no rotation is asked of the store). And the
/// answer to a refresh concurrent with its rotation (here: the "answered" marker deleted, so a
/// replayed spent token takes that path) opens the session's sealed token before minting, so
/// claims written into one's own session end it instead of being minted. Both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_records_and_markers_written_into_the_database_mint_nothing() {
    let probe = Arc::new(ProbeStore::new());
    let h = serve_broker(provider().await, probe.clone(), |c| c, None).await;
    let alice = json!({"preferred_username": "alice", "groups": ["admins"]});
    let mallory = json!({"preferred_username": "mallory", "groups": []});
    for fw in FRAMEWORKS {
        h.idp.set_user("alice", alice.clone());
        let victim = login(&h, fw).await;
        let victim_sid = sid_of(&victim);
        h.idp.set_user("mallory", mallory.clone());
        let own = login(&h, fw).await;

        // 1. The record of mallory's token changed to name alice's session.
        *probe.records_name.lock().unwrap_or_else(|p| p.into_inner()) = Some(victim_sid.clone());
        let taken = refresh(&h, fw, field(&own, "refresh_token")).await;
        *probe.records_name.lock().unwrap_or_else(|p| p.into_inner()) = None;
        assert_eq!(
            (taken.status, taken.error()),
            (400, Some("invalid_grant")),
            "{fw:?}: {}",
            taken.raw_body
        );
        // 2. A token of mallory's making that names alice's session.
        let forged = format!("{victim_sid}{}", &field(&own, "refresh_token")[22..]);
        let rotations = || probe.rotations.load(std::sync::atomic::Ordering::SeqCst);
        let before = rotations();
        let refused = refresh(&h, fw, &forged).await;
        assert_eq!(
            (refused.status, refused.error()),
            (400, Some("invalid_grant")),
            "{fw:?}"
        );
        assert_eq!(rotations(), before, "{fw:?}: the store was asked");
        let still = refresh(&h, fw, field(&victim, "refresh_token")).await;
        assert_eq!(still.status, 200, "{fw:?}: {}", still.raw_body);
        assert_eq!(jwt(field(&still, "access_token")).1["sub"], "alice");

        // 3. Mallory's own session given alice's groups, replayed through the concurrent path.
        h.idp.set_user("mallory", mallory.clone());
        let own = login(&h, fw).await;
        let first = refresh(&h, fw, field(&own, "refresh_token")).await;
        assert_eq!(first.status, 200, "{fw:?}: {}", first.raw_body);
        change_session(&probe.inner, &own, |session| {
            let mut info: Value = serde_json::from_str(&session.userinfo).unwrap_or_default();
            info["roles"] = json!(["admins"]);
            session.userinfo = info.to_string();
        })
        .await;
        probe
            .forget_markers
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let replayed = refresh(&h, fw, field(&own, "refresh_token")).await;
        probe
            .forget_markers
            .store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            (replayed.status, replayed.error()),
            (401, Some("invalid_grant")),
            "{fw:?}: {}",
            replayed.raw_body
        );
    }
}

/// A spent refresh token stays on record for `SPENT_REFRESH_KEPT` after its rotation, then a
/// purge deletes it: a session refreshed all day keeps a few rows, not two per refresh. A
/// replay after that window is reuse all the same (the token's tag names its session): the
/// session ends, successor included. Within the window, the answer to a replay concurrent with
/// the rotation (its "answered" marker missing) still carries the session's own expiry, not
/// the spent record's shortened one. Both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_refresh_tokens_stay_on_record_for_a_while_and_their_late_replay_ends_the_session() {
    use oidc_auth::store::SPENT_REFRESH_KEPT;
    for fw in FRAMEWORKS {
        // Rows: a day of refreshes every 30 minutes, then the purge that runs hourly. On a
        // store of its own, which the count at the end empties, and with a clock of its own:
        // the provider signs with the real time, so each login needs a clock not yet advanced.
        let clock = ManualClock::new(SystemClock.now());
        let rows = Arc::new(ProbeStore::new());
        let counted =
            serve_broker(provider().await, rows.clone(), |c| c, Some(clock.clone())).await;
        let first = login(&counted, fw).await;
        let expires = first.body["refresh_expires"].clone();
        let mut current = field(&first, "refresh_token").to_owned();
        for _ in 0..48 {
            clock.advance(1800);
            let next = refresh(&counted, fw, &current).await;
            assert_eq!(next.status, 200, "{fw:?}: {}", next.raw_body);
            assert_eq!(next.body["refresh_expires"], expires, "{fw:?}");
            current = field(&next, "refresh_token").to_owned();
        }
        rows.inner.purge_expired(clock.now()).await.expect("purge");
        // What is left: the session, its live token, the two tokens spent within the last
        // hour with their markers, and the signing key or two. Without the window, 48 spent
        // tokens and 48 markers would stay for the session's 30 days.
        let left = rows.inner.purge_expired(i64::MAX - 1).await.expect("count");
        assert!(
            left <= 10,
            "{fw:?}: {left} rows left after a day of refreshes"
        );
        assert!(
            left >= 4,
            "{fw:?}: {left} rows: the count missed the session's"
        );

        let clock = ManualClock::new(SystemClock.now());
        let probe = Arc::new(ProbeStore::new());
        let h = serve_broker(provider().await, probe.clone(), |c| c, Some(clock.clone())).await;
        let first = login(&h, fw).await;
        let spent_token = field(&first, "refresh_token").to_owned();
        let second = refresh(&h, fw, &spent_token).await;
        assert_eq!(second.status, 200, "{fw:?}: {}", second.raw_body);

        // Within the window, a replay without its marker is answered as a concurrent one, with
        // the session's expiry.
        clock.advance(SPENT_REFRESH_KEPT - 60);
        probe
            .forget_markers
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let concurrent = refresh(&h, fw, &spent_token).await;
        probe
            .forget_markers
            .store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(concurrent.status, 200, "{fw:?}: {}", concurrent.raw_body);
        assert_eq!(
            concurrent.body["refresh_expires"], first.body["refresh_expires"],
            "{fw:?}"
        );
        assert_eq!(
            field(&concurrent, "refresh_token"),
            field(&second, "refresh_token"),
            "{fw:?}"
        );

        // After the window the spent token is not on record, and its replay ends the session.
        clock.advance(61);
        let late = refresh(&h, fw, &spent_token).await;
        assert_eq!(
            (late.status, late.error()),
            (400, Some("invalid_grant")),
            "{fw:?}: {}",
            late.raw_body
        );
        let successor = refresh(&h, fw, field(&second, "refresh_token")).await;
        assert_eq!(
            (successor.status, successor.error()),
            (400, Some("invalid_grant")),
            "{fw:?}: the successor must end with the session: {}",
            successor.raw_body
        );
        assert_eq!(
            probe.inner.get_session(&sid_of(&first), 0).await.ok(),
            Some(None),
            "{fw:?}"
        );
    }
}

/// A token live again although its rotation was answered to a request (MongoDB undoes a spend
/// whose successor it could not store, after another instance may have answered with that
/// successor; or a row written back into the store) is reuse, as a spent one is: 400
/// `invalid_grant` and the session ends, instead of a second rotation that would keep the token
/// on record longer than its "answered" marker. Both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_live_again_after_its_answer_is_reuse() {
    let probe = Arc::new(ProbeStore::new());
    let h = serve_broker(provider().await, probe.clone(), |c| c, None).await;
    for fw in FRAMEWORKS {
        let first = login(&h, fw).await;
        let token = field(&first, "refresh_token").to_owned();
        let answered = refresh(&h, fw, &token).await;
        assert_eq!(answered.status, 200, "{fw:?}: {}", answered.raw_body);
        probe
            .relive_spent
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let again = refresh(&h, fw, &token).await;
        probe
            .relive_spent
            .store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            (again.status, again.error()),
            (400, Some("invalid_grant")),
            "{fw:?}: {}",
            again.raw_body
        );
        let successor = refresh(&h, fw, field(&answered, "refresh_token")).await;
        assert_eq!(
            (successor.status, successor.error()),
            (400, Some("invalid_grant")),
            "{fw:?}: the session must have ended: {}",
            successor.raw_body
        );
    }
}

/// Deliver 3: without broker mode there is no JWKS route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_route_exists_only_in_broker_mode() {
    let idp = MockProvider::start().await.expect("provider");
    let h = Harness::with(idp, |b| b, None).await;
    for fw in FRAMEWORKS {
        assert_eq!(h.get(fw, JWKS, None).await.status, 404);
    }
}

/// The provider's next revocation request after `earlier` (the last one seen before), waited
/// for up to 2 s: broker mode revokes at the provider in the background.
async fn next_provider_revocation(
    h: &Harness,
    earlier: Option<&HashMap<String, String>>,
) -> Option<HashMap<String, String>> {
    for _ in 0..100 {
        let form = h
            .idp
            .last_revocation_request()
            .filter(|f| Some(f) != earlier);
        if form.is_some() {
            return form;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Deliver 4 and E3: a refresh token is single use; the successor works; presenting the spent
/// one again is 400 `invalid_grant` and revokes the family, so the successor fails too. The
/// session row with the provider's sealed tokens is deleted and the provider's refresh token is
/// revoked at the provider, as for a revocation by the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let b = broker().await;
    let h = &b.h;
    for fw in FRAMEWORKS {
        let first = login(h, fw).await;
        let spent = field(&first, "refresh_token").to_owned();
        let second = refresh(h, fw, &spent).await;
        assert_eq!(second.status, 200, "{}", second.raw_body);
        let successor = field(&second, "refresh_token").to_owned();
        assert_ne!(successor, spent);
        assert_eq!(
            second.body["refresh_expires"], first.body["refresh_expires"],
            "a rotation never extends the session"
        );
        let (_, claims) = jwt(field(&second, "access_token"));
        let (_, first_claims) = jwt(field(&first, "access_token"));
        assert_eq!(claims["sid"], first_claims["sid"]);
        assert_ne!(claims["jti"], first_claims["jti"]);
        assert_eq!(
            h.bearer_both("/me", field(&second, "access_token"))
                .await
                .status,
            200
        );

        let sid = claims["sid"].as_str().unwrap_or_default().to_owned();
        assert!(b.store.get_session(&sid, 0).await.ok().flatten().is_some());
        let earlier = h.idp.last_revocation_request();
        let reuse = refresh(h, fw, &spent).await;
        assert_eq!((reuse.status, reuse.error()), (400, Some("invalid_grant")));
        let after = refresh(h, fw, &successor).await;
        assert_eq!((after.status, after.error()), (400, Some("invalid_grant")));
        // Neither the access token nor a refresh token was echoed.
        assert!(!reuse.raw_body.contains(&spent));
        assert!(
            b.store.get_session(&sid, 0).await.ok().flatten().is_none(),
            "{fw:?}: reuse deleted the session"
        );
        let form = next_provider_revocation(h, earlier.as_ref())
            .await
            .expect("reuse revoked the provider's refresh token");
        assert_eq!(form["token_type_hint"], "refresh_token", "{fw:?}");
    }
}

/// Revocation (RFC 7009): revoking a refresh token ends its session on both frameworks, so
/// neither it nor a successor refreshes any more, the session row with the provider's sealed
/// tokens is gone, and the provider's refresh token is revoked at the provider. Revoking a spent token revokes its family too. Unknown tokens get the same
/// 200, an access token is 400 `unsupported_token_type`, no token is 400 `invalid_request`,
/// and nothing is echoed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_ends_the_broker_session() {
    let b = broker().await;
    let h = &b.h;
    for fw in FRAMEWORKS {
        let first = login(h, fw).await;
        let token = field(&first, "refresh_token").to_owned();
        let access = field(&first, "access_token").to_owned();
        let sid = jwt(&access).1["sid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(b.store.get_session(&sid, 0).await.ok().flatten().is_some());
        let successor = field(&refresh(h, fw, &token).await, "refresh_token").to_owned();

        let earlier = h.idp.last_revocation_request();
        let revoked = h.post_form(fw, REVOKE, &[("token", &successor)]).await;
        assert_eq!(revoked.status, 200, "{fw:?}: {}", revoked.raw_body);
        assert_eq!(revoked.body, json!({}));
        let after = refresh(h, fw, &successor).await;
        assert_eq!((after.status, after.error()), (400, Some("invalid_grant")));
        assert!(b.store.get_session(&sid, 0).await.ok().flatten().is_none());
        let again = h.post_form(fw, REVOKE, &[("token", &successor)]).await;
        assert_eq!(
            (again.status, &again.body),
            (200, &json!({})),
            "revoked twice"
        );
        // The provider's refresh token of the session is revoked at the provider too (in the
        // background), so it no longer refreshes there either.
        let form = next_provider_revocation(h, earlier.as_ref())
            .await
            .expect("the provider was asked to revoke");
        assert_eq!(form["token_type_hint"], "refresh_token");
        assert_eq!(form["client_id"], "test-client");
        let provider_refresh = h
            .client()
            .post(h.idp.endpoint_url(Endpoint::Token))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", form["token"].as_str()),
                ("client_id", "test-client"),
            ])
            .send()
            .await
            .expect("answer");
        assert_eq!(
            provider_refresh.status().as_u16(),
            400,
            "revoked at the provider"
        );
        // A provider that cannot be reached does not hold up the revocation here.
        h.idp.set_fault(Endpoint::Revocation, Fault::Down);
        let third = field(&login(h, fw).await, "refresh_token").to_owned();
        let started = std::time::Instant::now();
        let revoked = h.post_form(fw, REVOKE, &[("token", &third)]).await;
        assert_eq!(revoked.status, 200, "{fw:?}: {}", revoked.raw_body);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(refresh(h, fw, &third).await.error(), Some("invalid_grant"));
        h.idp.set_fault(Endpoint::Revocation, Fault::None);

        // A spent token: its family (and so its live successor) is revoked too.
        let second = login(h, fw).await;
        let spent = field(&second, "refresh_token").to_owned();
        let live = field(&refresh(h, fw, &spent).await, "refresh_token").to_owned();
        let hint = [
            ("token", spent.as_str()),
            ("token_type_hint", "refresh_token"),
        ];
        assert_eq!(h.post_form(fw, REVOKE, &hint).await.status, 200);
        let after = refresh(h, fw, &live).await;
        assert_eq!((after.status, after.error()), (400, Some("invalid_grant")));

        let unknown = h.post_form(fw, REVOKE, &[("token", "no-such-token")]).await;
        assert_eq!((unknown.status, &unknown.body), (200, &json!({})));
        let jwt_token = h.post_form(fw, REVOKE, &[("token", &access)]).await;
        assert_eq!(
            (jwt_token.status, jwt_token.error()),
            (400, Some("unsupported_token_type"))
        );
        assert!(!jwt_token.raw_body.contains(&access));
        let none = h
            .post_form(fw, REVOKE, &[("token_type_hint", "refresh_token")])
            .await;
        assert_eq!((none.status, none.error()), (400, Some("invalid_request")));
        let get = h.get(fw, REVOKE, None).await;
        assert_eq!(get.status, 405, "{fw:?}: POST only");
    }
}

/// A refresh waiting on the provider while its client signs out: the sign-out deleted the
/// session, and the refresh does not bring it back. It answers that the session ended, and
/// the provider refresh token rotated meanwhile is revoked at the provider like the one the
/// sign-out found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_racing_a_sign_out_does_not_bring_the_session_back() {
    let b = broker().await;
    let h = &b.h;
    for fw in FRAMEWORKS {
        let first = login(h, fw).await;
        let token = field(&first, "refresh_token").to_owned();
        let sid = jwt(field(&first, "access_token")).1["sid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        // The provider rotates its refresh token at once and answers 800 ms later.
        h.idp
            .set_fault(Endpoint::Token, Fault::Late(Duration::from_millis(800)));
        let refreshing = refresh(h, fw, &token);
        let signing_out = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            h.post_form(fw, REVOKE, &[("token", &token)]).await
        };
        let earlier = h.idp.last_revocation_request();
        let mut revoked_at_provider = std::collections::HashSet::new();
        let watching = async {
            for _ in 0..150 {
                if let Some(form) = h.idp.last_revocation_request()
                    && Some(&form) != earlier.as_ref()
                {
                    revoked_at_provider.insert(form["token"].clone());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let (refreshed, signed_out, ()) = tokio::join!(refreshing, signing_out, watching);
        h.idp.set_fault(Endpoint::Token, Fault::None);
        assert_eq!(signed_out.status, 200, "{}", signed_out.raw_body);
        assert_eq!(
            (refreshed.status, refreshed.error()),
            (401, Some("invalid_grant")),
            "{fw:?}: {}",
            refreshed.raw_body
        );
        assert_eq!(
            b.store.get_session(&sid, 0).await.ok(),
            Some(None),
            "{fw:?}: the session came back"
        );
        assert_eq!(
            revoked_at_provider.len(),
            2,
            "{fw:?}: the provider refresh tokens before and after the rotation are revoked"
        );
    }
}

/// E1: two concurrent refreshes of one session cause one provider refresh, and both succeed
/// with the same rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_cause_one_provider_refresh() {
    let b = broker().await;
    let h = &b.h;
    for fw in FRAMEWORKS {
        let first = login(h, fw).await;
        let token = field(&first, "refresh_token").to_owned();
        let before = h.idp.refresh_count();
        h.idp
            .set_fault(Endpoint::Token, Fault::Slow(Duration::from_millis(400)));
        let (a, c) = tokio::join!(refresh(h, fw, &token), refresh(h, fw, &token));
        h.idp.set_fault(Endpoint::Token, Fault::None);
        assert_eq!((a.status, c.status), (200, 200), "{a:?} / {c:?}");
        assert_eq!(h.idp.refresh_count(), before + 1);
        assert_eq!(field(&a, "refresh_token"), field(&c, "refresh_token"));
        let next = refresh(h, fw, field(&a, "refresh_token")).await;
        assert_eq!(next.status, 200, "the shared successor is live");
    }
}

/// E1 across instances: two brokers sharing a store and an encryption key get concurrent
/// refreshes of one token. The provider sees one refresh, both answer 200 with the same
/// successor (the loser of the rotation answers in the winner's place, from the stored
/// claims), and both access tokens work. Once answered, presenting the token again is still
/// reuse (E3): 400 `invalid_grant`, and the family is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_across_instances_share_one_rotation() {
    let idp = provider().await;
    let store = Arc::new(MemoryStore::new());
    let a = sharing(&idp, store.clone()).await;
    let b = sharing(&idp, store.clone()).await;
    for (fa, fb) in [
        (Framework::Axum, Framework::Actix),
        (Framework::Actix, Framework::Axum),
    ] {
        let first = login(&a, fa).await;
        let token = field(&first, "refresh_token").to_owned();
        let before = idp.refresh_count();
        idp.set_fault(Endpoint::Token, Fault::Slow(Duration::from_millis(400)));
        let (on_a, on_b) = tokio::join!(refresh(&a, fa, &token), refresh(&b, fb, &token));
        idp.set_fault(Endpoint::Token, Fault::None);
        assert_eq!(
            (on_a.status, on_b.status),
            (200, 200),
            "{on_a:?} / {on_b:?}"
        );
        assert_eq!(idp.refresh_count(), before + 1, "one provider refresh");
        let successor = field(&on_a, "refresh_token").to_owned();
        assert_eq!(successor, field(&on_b, "refresh_token"));
        assert_ne!(successor, token);
        for (h, reply) in [(&a, &on_a), (&b, &on_b)] {
            let access = field(reply, "access_token");
            assert_eq!(h.bearer_both("/me", access).await.status, 200);
            let (_, claims) = jwt(access);
            assert_eq!(claims["preferred_username"], "alice");
        }
        let reuse = refresh(&b, fb, &token).await;
        assert_eq!((reuse.status, reuse.error()), (400, Some("invalid_grant")));
        let after = refresh(&a, fa, &successor).await;
        assert_eq!(
            (after.status, after.error()),
            (400, Some("invalid_grant")),
            "reuse revoked the family"
        );
    }
}

/// E1 across three instances: each gets the same token at once, on a database slow enough
/// (300 ms per rotation) that all three come in before any answer. One rotates; the other two
/// both answer in its place. All three answer 200 with the same successor, the provider sees
/// one refresh, and the successor works afterwards. Once answered, the token again is reuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_on_three_instances_all_succeed() {
    let idp = provider().await;
    let shared = Arc::new(MemoryStore::new());
    let mut stores = Vec::new();
    let mut instances = Vec::new();
    for _ in 0..3 {
        let store = Arc::new(ProbeStore::over(shared.clone()));
        instances.push(sharing(&idp, store.clone()).await);
        stores.push(store);
    }
    let [a, b, c] = &instances[..] else {
        unreachable!("three instances")
    };
    let slow = |ms: u64| {
        for store in &stores {
            store
                .rotation_delay_ms
                .store(ms, std::sync::atomic::Ordering::SeqCst);
        }
    };
    for (fa, fb, fc) in [
        (Framework::Axum, Framework::Actix, Framework::Axum),
        (Framework::Actix, Framework::Axum, Framework::Actix),
    ] {
        let token = field(&login(a, fa).await, "refresh_token").to_owned();
        let before = idp.refresh_count();
        slow(300);
        let (on_a, on_b, on_c) = tokio::join!(
            refresh(a, fa, &token),
            refresh(b, fb, &token),
            refresh(c, fc, &token)
        );
        slow(0);
        for reply in [&on_a, &on_b, &on_c] {
            assert_eq!(reply.status, 200, "{on_a:?} / {on_b:?} / {on_c:?}");
        }
        assert_eq!(idp.refresh_count(), before + 1, "one provider refresh");
        let successor = field(&on_a, "refresh_token").to_owned();
        assert_eq!(field(&on_b, "refresh_token"), successor);
        assert_eq!(field(&on_c, "refresh_token"), successor);
        let reuse = refresh(c, fc, &token).await;
        assert_eq!((reuse.status, reuse.error()), (400, Some("invalid_grant")));
        let after = refresh(b, fb, &successor).await;
        assert_eq!(
            after.error(),
            Some("invalid_grant"),
            "reuse revoked the family"
        );
    }
}

/// E1 across instances, when the rotation answers first: B's request came in before A's
/// rotation was answered, but B's database is slow, so A has answered (and marked the token
/// answered) by the time B finds the token spent. B still answers in A's place: what counts
/// is whether an answer had reached a request when B's request came in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_came_in_before_the_answer_is_not_reuse() {
    let idp = provider().await;
    let shared = Arc::new(MemoryStore::new());
    let slow = Arc::new(ProbeStore::over(shared.clone()));
    let a = sharing(&idp, shared.clone()).await;
    let b = sharing(&idp, slow.clone()).await;
    for (fa, fb) in [
        (Framework::Axum, Framework::Actix),
        (Framework::Actix, Framework::Axum),
    ] {
        let token = field(&login(&a, fa).await, "refresh_token").to_owned();
        slow.rotation_delay_ms
            .store(600, std::sync::atomic::Ordering::SeqCst);
        let late = async {
            // B's request comes in first; its rotation reaches the database 600 ms later.
            refresh(&b, fb, &token).await
        };
        let early = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            refresh(&a, fa, &token).await
        };
        let (on_b, on_a) = tokio::join!(late, early);
        slow.rotation_delay_ms
            .store(0, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            (on_a.status, on_b.status),
            (200, 200),
            "{on_a:?} / {on_b:?}"
        );
        let successor = field(&on_a, "refresh_token").to_owned();
        assert_eq!(field(&on_b, "refresh_token"), successor);
        assert_eq!(refresh(&a, fa, &successor).await.status, 200);
    }
}

/// E2: the provider refuses the stored refresh token: the session ends (401 `invalid_grant`)
/// and its refresh tokens are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_invalid_grant_ends_the_session() {
    let b = broker().await;
    let h = &b.h;
    for fw in FRAMEWORKS {
        let first = login(h, fw).await;
        let (_, claims) = jwt(field(&first, "access_token"));
        let sid = claims["sid"].as_str().unwrap_or_default().to_owned();
        h.idp.revoke_refresh_tokens();
        let refused = refresh(h, fw, field(&first, "refresh_token")).await;
        assert_eq!(
            (refused.status, refused.error()),
            (401, Some("invalid_grant")),
            "{}",
            refused.raw_body
        );
        let now = SystemClock.now();
        assert_eq!(b.store.get_session(&sid, now).await.ok(), Some(None));
        // The refresh token is dead too, and so is the provider's: presenting it again is
        // refused without a word to the provider.
        h.idp.reset_hits();
        let again = refresh(h, fw, field(&first, "refresh_token")).await;
        assert_eq!(again.error(), Some("invalid_grant"), "{}", again.raw_body);
        assert!(matches!(again.status, 400 | 401), "{}", again.raw_body);
        assert_eq!(h.idp.hits(Endpoint::Token), 0);
    }
}

/// G6 on a cold start: with the database unreachable before the store was ever connected,
/// concurrent requests answer 503 together, not one connection attempt after another, and
/// within the retry pause a request answers 503 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_at_start_is_503_for_everyone_at_once() {
    let idp = provider().await;
    let token = oidc_auth_tests::broker::issued_refresh_token(&idp).await;
    let config = oidc_auth_tests::broker::broker_config(&idp)
        .broker_store_url("postgres://oidc@127.0.0.1:1/unreachable")
        .encryption_key(oidc_auth_tests::broker::ISSUING_KEY)
        .build()
        .expect("config");
    let h = Harness::serve(idp, OidcAuth::builder(config).build(), None).await;
    let started = std::time::Instant::now();
    for answer in concurrent_refreshes(&h, 8, &token).await {
        assert_eq!(answer, (503, true));
    }
    assert!(
        started.elapsed() < oidc_auth_tests::broker::G6_LIMIT,
        "8 concurrent requests took {:?}",
        started.elapsed()
    );
    let again = std::time::Instant::now();
    for fw in FRAMEWORKS {
        assert_eq!(refresh(&h, fw, &token).await.status, 503);
    }
    assert!(
        again.elapsed() < Duration::from_secs(1),
        "{:?}",
        again.elapsed()
    );
}

/// The scope of a minted token is never wider than what the login asked of the provider, nor
/// than what is configured: when the provider's answer names no scope and its access token
/// tells none (opaque), the session takes the requested scopes that are configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_session_never_claims_more_scope_than_was_asked() {
    let b = broker_with(|c| c.scopes("openid profile admin"), None).await;
    let h = &b.h;
    h.idp
        .set_token_response_tweak(Some(Arc::new(|answer: &mut serde_json::Map<_, _>| {
            answer.remove("scope");
            answer.insert("access_token".into(), json!("an-opaque-token"));
        })));
    for (fw, asked, minted) in [
        (Framework::Axum, "openid", "openid"),
        (Framework::Actix, "openid", "openid"),
        (Framework::Axum, "openid superuser", "openid"),
        (Framework::Actix, "openid admin superuser", "openid admin"),
    ] {
        let query = serde_urlencoded::to_string([("redirect_uri", LOOPBACK), ("scope", asked)])
            .unwrap_or_default();
        let login = format!("/api/auth/v2/login?{query}");
        let authorize = oidc_auth_tests::location(h, &h.url(fw, &login)).await;
        let callback = oidc_auth_tests::location(h, authorize.as_str()).await;
        let reply = client_token_call(h, fw, &callback).await;
        assert_eq!(reply.status, 200, "{fw:?}: {}", reply.raw_body);
        let (_, claims) = jwt(field(&reply, "access_token"));
        assert_eq!(claims["scope"], minted, "{fw:?}, asked {asked}");
    }
}

/// A broker refresh takes the user's claims as the provider now states them, as a login does:
/// from a JWT access token, and from the refresh answer's ID token when the access token is
/// opaque (Google, Auth0 without an audience). A group the user lost at the provider leaves the
/// minted token at the next refresh instead of at the end of the session. An ID token naming
/// another subject changes nothing. Both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_takes_the_users_current_claims_even_with_opaque_access_tokens() {
    let b = broker().await;
    let h = &b.h;
    let with_admins = json!({"preferred_username": "alice", "groups": ["admins"],
                             "realm_access": {"roles": ["editor"]}});
    let without = json!({"preferred_username": "alice", "groups": [],
                         "realm_access": {"roles": ["editor"]}});
    let roles =
        |reply: &oidc_auth_tests::Reply| jwt(field(reply, "access_token")).1["roles"].clone();
    for opaque in [false, true] {
        h.idp.set_token_response_tweak(opaque.then(|| {
            Arc::new(|answer: &mut serde_json::Map<String, Value>| {
                answer.insert("access_token".into(), json!("an-opaque-token"));
            }) as oidc_auth::testing::JsonTweak
        }));
        for fw in FRAMEWORKS {
            h.idp.set_user("alice", with_admins.clone());
            let first = login(h, fw).await;
            assert_eq!(
                roles(&first),
                json!(["editor", "admins"]),
                "{fw:?}, opaque {opaque}"
            );
            h.idp.set_user("alice", without.clone());
            let refreshed = refresh(h, fw, field(&first, "refresh_token")).await;
            assert_eq!(refreshed.status, 200, "{fw:?}: {}", refreshed.raw_body);
            assert_eq!(
                roles(&refreshed),
                json!(["editor"]),
                "{fw:?}, opaque {opaque}"
            );

            // An ID token of another subject (and, opaque, no access token claims): kept.
            h.idp.set_user("alice", with_admins.clone());
            h.idp.set_id_token_tweak(Some(Arc::new(|claims| {
                claims.insert("sub".into(), json!("mallory"));
            })));
            let again = refresh(h, fw, field(&refreshed, "refresh_token")).await;
            h.idp.set_id_token_tweak(None);
            assert_eq!(again.status, 200, "{fw:?}: {}", again.raw_body);
            let expected = if opaque {
                json!(["editor"])
            } else {
                json!(["editor", "admins"])
            };
            assert_eq!(roles(&again), expected, "{fw:?}, opaque {opaque}");
        }
    }
}

/// A provider access token that validates here but names another subject than the ID token
/// (Azure AD's per-application subjects) adds nothing to the session: its roles would be
/// dropped at the first refresh, which takes an access token's claims only for the session's
/// subject. The minted token is the ID token's user's, on both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_of_another_subject_adds_nothing_to_a_session() {
    let b = broker().await;
    let h = &b.h;
    let other = h
        .idp
        .token()
        .audience(AUDIENCE)
        .sub("pairwise-other")
        .claim(
            "resource_access",
            json!({"test-client": {"roles": ["access-only"]}}),
        )
        .expires_in(300)
        .sign();
    h.idp.set_token_response_tweak(Some(Arc::new(
        move |answer: &mut serde_json::Map<String, Value>| {
            answer.insert("access_token".into(), json!(other));
        },
    )));
    for fw in FRAMEWORKS {
        let reply = login(h, fw).await;
        let claims = jwt(field(&reply, "access_token")).1;
        assert_eq!(claims["sub"], "alice", "{fw:?}");
        assert_eq!(claims["roles"], json!(["editor", "admins"]), "{fw:?}");
    }
}

/// A device login reads the user's claims as a code login and a refresh do: from the ID token
/// when it validates (without a nonce, which a device grant does not have), not from userinfo,
/// which may say less (here: no groups). So a device session's groups do not change at its
/// first refresh. Provider access tokens that do not validate here, both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_login_reads_claims_as_a_code_login_does() {
    let b = broker().await;
    let h = &b.h;
    h.idp.set_device_interval(Some(0));
    // Access tokens for another API: valid at the provider's userinfo, of no use here.
    h.idp.set_access_token_audience("another-api");
    h.idp
        .set_userinfo_override(Some(json!({"sub": "alice", "preferred_username": "alice"})));
    let roles =
        |reply: &oidc_auth_tests::Reply| jwt(field(reply, "access_token")).1["roles"].clone();
    for fw in FRAMEWORKS {
        let start = h.post_form(fw, "/api/auth/v2/device", &[]).await;
        assert_eq!(start.status, 200, "{}", start.raw_body);
        assert!(h.idp.approve_device(field(&start, "user_code")));
        let done = h
            .post_form(fw, TOKEN, &[("device-code", field(&start, "device_code"))])
            .await;
        assert_eq!(done.status, 200, "{fw:?}: {}", done.raw_body);
        assert_eq!(roles(&done), json!(["editor", "admins"]), "{fw:?}");
        let refreshed = refresh(h, fw, field(&done, "refresh_token")).await;
        assert_eq!(refreshed.status, 200, "{fw:?}: {}", refreshed.raw_body);
        assert_eq!(roles(&refreshed), roles(&done), "{fw:?}");
    }
}

/// A device login whose user only the provider's userinfo can name (an access token for
/// another API, an ID token whose key the provider never published), while that userinfo
/// cannot be asked (down, busy): 503, a passing outage, not the 502 of a provider that names
/// nobody, which a userinfo answer without `sub` still is. py-oidc-auth-client, polling, then
/// signs in with the browser instead of giving up. No session is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_login_whose_userinfo_cannot_be_asked_is_503() {
    let b = broker().await;
    let h = &b.h;
    h.idp.set_device_interval(Some(0));
    h.idp.set_access_token_audience("another-api");
    h.idp.set_id_token_kid(Some("never-published".into()));
    let cases = [
        (Fault::Down, 503),
        (Fault::Status(503), 503),
        (
            Fault::Json(200, json!({"preferred_username": "alice"})),
            502,
        ),
    ];
    for fw in FRAMEWORKS {
        for (fault, expected) in &cases {
            let start = h.post_form(fw, "/api/auth/v2/device", &[]).await;
            assert!(h.idp.approve_device(field(&start, "user_code")));
            h.idp.set_fault(Endpoint::Userinfo, fault.clone());
            let done = h
                .post_form(fw, TOKEN, &[("device-code", field(&start, "device_code"))])
                .await;
            h.idp.set_fault(Endpoint::Userinfo, Fault::None);
            assert_eq!(
                done.status, *expected,
                "{fw:?} {fault:?}: {}",
                done.raw_body
            );
            assert!(done.body.get("access_token").is_none(), "{fault:?}");
        }
    }
    let store = format!("{:?}", b.store);
    assert!(
        store.contains("sessions: 0, refresh_tokens: 0"),
        "no session is left: {store}"
    );
}

/// E2's boundary: only the provider's own `invalid_grant` ends a session. A 4xx without a
/// well-formed error code (a gateway's 404 or 403, a provider's capitalised code) says nothing
/// about the grant: the refresh mints from the stored claims and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_refusal_without_an_error_code_keeps_the_session() {
    let b = broker().await;
    let h = &b.h;
    for fw in FRAMEWORKS {
        for (status, body) in [
            (404, json!({"error": "Realm does not exist"})),
            (403, json!({"message": "Forbidden"})),
            (400, json!({"error": "Invalid_Grant"})),
        ] {
            let first = login(h, fw).await;
            h.idp
                .set_fault(Endpoint::Token, Fault::Json(status, body.clone()));
            let during = refresh(h, fw, field(&first, "refresh_token")).await;
            h.idp.set_fault(Endpoint::Token, Fault::None);
            assert_eq!(during.status, 200, "{status} {body}: {}", during.raw_body);
            let after = refresh(h, fw, field(&during, "refresh_token")).await;
            assert_eq!(after.status, 200, "{status} {body}: {}", after.raw_body);
        }
    }
}

/// Deliver 4: a provider outage during refresh does not end the session: the new token is
/// minted from the session's stored claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_survives_a_provider_outage_from_stored_claims() {
    let b = broker().await;
    let h = &b.h;
    for fw in FRAMEWORKS {
        let first = login(h, fw).await;
        h.idp.set_fault(Endpoint::Token, Fault::Down);
        let second = refresh(h, fw, field(&first, "refresh_token")).await;
        h.idp.set_fault(Endpoint::Token, Fault::None);
        assert_eq!(second.status, 200, "{}", second.raw_body);
        let (_, claims) = jwt(field(&second, "access_token"));
        assert_eq!(claims["preferred_username"], "alice");
        assert_eq!(claims["roles"], json!(["editor", "admins"]));
    }
}

/// Deliver 4: a device session keeps its longer lifetime across refreshes; E6: polling faster
/// than the interval is `slow_down` without asking the provider; E8: a redeemed device code is
/// `invalid_grant` the second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_sessions_keep_their_lifetime_and_polls_are_paced() {
    let device_days = 90;
    let b = broker_with(
        |c| c.refresh_token_lifetime(Duration::from_secs(24 * 3600)),
        None,
    )
    .await;
    let h = &b.h;
    for fw in FRAMEWORKS {
        h.idp.set_device_interval(Some(5));
        let start = h.post_form(fw, "/api/auth/v2/device", &[]).await;
        assert_eq!(start.status, 200, "{}", start.raw_body);
        let device_code = field(&start, "device_code").to_owned();
        let first_poll = h
            .post_form(fw, TOKEN, &[("device-code", &device_code)])
            .await;
        assert!(
            matches!(
                first_poll.error(),
                Some("authorization_pending" | "slow_down")
            ),
            "{}",
            first_poll.raw_body
        );
        let hits = h.idp.hits(Endpoint::Token);
        let fast = h
            .post_form(fw, TOKEN, &[("device-code", &device_code)])
            .await;
        assert_eq!((fast.status, fast.error()), (400, Some("slow_down")));
        assert_eq!(
            h.idp.hits(Endpoint::Token),
            hits,
            "slow_down is answered here"
        );
        h.idp.set_device_interval(Some(0));

        // A second device login with no pacing to finish quickly.
        let start = h.post_form(fw, "/api/auth/v2/device", &[]).await;
        let device_code = field(&start, "device_code").to_owned();
        assert!(h.idp.approve_device(field(&start, "user_code")));
        let done = h
            .post_form(fw, TOKEN, &[("device-code", &device_code)])
            .await;
        assert_eq!(done.status, 200, "{}", done.raw_body);
        let now = SystemClock.now();
        let expires = done.body["refresh_expires"].as_i64().unwrap_or(0);
        assert!(
            expires > now + (device_days - 1) * 24 * 3600,
            "device session lifetime: {expires}"
        );
        let again = h
            .post_form(fw, TOKEN, &[("device-code", &device_code)])
            .await;
        assert_eq!(again.error(), Some("invalid_grant"), "{}", again.raw_body);
        let refreshed = refresh(h, fw, field(&done, "refresh_token")).await;
        assert_eq!(refreshed.status, 200, "{}", refreshed.raw_body);
        assert_eq!(refreshed.body["refresh_expires"], expires);
    }
}

/// A token exchanged for another audience carries that audience's roles
/// (`resource_access.<audience>`), the realm's and the groups, not this API's: neither its
/// clients' `resource_access` roles nor the subject token's top-level `roles`, which are roles
/// at this API, become roles at the service the new token is for. Exchanged for this server's
/// own audience, the token keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_for_another_audience_carries_that_audiences_roles_only() {
    let b = broker_with(|c| c.exchange_audiences(["downstream".to_owned()]), None).await;
    let h = &b.h;
    let subject = h
        .idp
        .token()
        .audience(AUDIENCE)
        .claim("roles", json!(["api-admin"]))
        .claim("realm_access", json!({"roles": ["staff"]}))
        .claim(
            "resource_access",
            json!({
                "test-client": {"roles": ["editor"]},
                AUDIENCE: {"roles": ["operator"]},
                "downstream": {"roles": ["reader"]},
            }),
        )
        .claim("groups", json!(["team"]))
        .sign();
    let roles_of = |reply: &Reply| {
        let (_, claims) = jwt(field(reply, "access_token"));
        claims["roles"].clone()
    };
    for fw in FRAMEWORKS {
        let form = exchange_form(&subject, &[("audience", "downstream")]);
        let downstream = exchange(h, fw, &form, true).await;
        assert_eq!(downstream.status, 200, "{fw:?}: {}", downstream.raw_body);
        assert_eq!(
            roles_of(&downstream),
            json!(["staff", "reader", "team"]),
            "{fw:?}"
        );
        let own = exchange(h, fw, &exchange_form(&subject, &[]), true).await;
        assert_eq!(own.status, 200, "{fw:?}: {}", own.raw_body);
        let mut own_roles: Vec<String> = serde_json::from_value(roles_of(&own)).unwrap_or_default();
        own_roles.sort();
        assert_eq!(
            own_roles,
            ["api-admin", "editor", "operator", "staff", "team"],
            "{fw:?}"
        );
    }
}

/// E10 with claim constraints configured (`tenant` must list `acme`): a subject token that no
/// route of this server would let in (another tenant, or none) is not exchanged for a token of
/// another service, where the constraint is not checked: 400 `invalid_request`. One that meets
/// it is exchanged. Before, both were, and the minted token dropped `tenant`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_applies_the_configured_claim_constraints_to_its_subject() {
    let b = broker_with(
        |c| {
            c.exchange_audiences(["downstream".to_owned()])
                .claims([oidc_auth::ClaimConstraint::new("tenant", ["acme"])])
        },
        None,
    )
    .await;
    let h = &b.h;
    let subject = |tenant: Option<&str>| {
        let token = h.idp.token().audience(AUDIENCE);
        match tenant {
            Some(tenant) => token.claim("tenant", json!([tenant])).sign(),
            None => token.sign(),
        }
    };
    for fw in FRAMEWORKS {
        for tenant in [Some("other"), None] {
            let token = subject(tenant);
            let form = exchange_form(&token, &[("audience", "downstream")]);
            let refused = exchange(h, fw, &form, true).await;
            assert_eq!(
                (refused.status, refused.error()),
                (400, Some("invalid_request")),
                "{fw:?} {tenant:?}: {}",
                refused.raw_body
            );
        }
        let token = subject(Some("acme"));
        let form = exchange_form(&token, &[("audience", "downstream")]);
        let exchanged = exchange(h, fw, &form, true).await;
        assert_eq!(exchanged.status, 200, "{fw:?}: {}", exchanged.raw_body);
    }
}

/// Deliver 5 and E9-E12: token exchange needs client authentication and `subject_token_type`,
/// refuses untrusted subject tokens and unlisted audiences, never widens the scope, and names
/// `issued_token_type`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_exchange_follows_rfc_8693() {
    let b = broker_with(|c| c.exchange_audiences(["downstream".to_owned()]), None).await;
    let h = &b.h;
    let subject = h
        .idp
        .token()
        .audience(AUDIENCE)
        .scope("openid profile")
        .sign();
    for fw in FRAMEWORKS {
        let ok = exchange(
            h,
            fw,
            &exchange_form(&subject, &[("audience", "downstream")]),
            true,
        )
        .await;
        assert_eq!(ok.status, 200, "{}", ok.raw_body);
        assert_eq!(
            ok.body["issued_token_type"],
            "urn:ietf:params:oauth:token-type:access_token"
        );
        assert_eq!(ok.body["token_type"], "Bearer");
        // The Token JSON shape, with no refresh token: its fields are empty and zero.
        assert_eq!(ok.body["refresh_token"], "");
        assert_eq!(ok.body["refresh_expires"], 0);
        assert_eq!(ok.body["refresh_expires_in"], 0);
        assert!(ok.body["expires_in"].as_i64().is_some_and(|s| s > 0));
        let (_, claims) = jwt(field(&ok, "access_token"));
        assert_eq!(claims["aud"], "downstream");
        assert_eq!(claims["scope"], "openid profile");
        assert_eq!(claims["client_id"], "svc");

        // A minted token of this server is a valid subject token too.
        let minted = login(h, fw).await;
        let again = exchange(
            h,
            fw,
            &exchange_form(field(&minted, "access_token"), &[]),
            true,
        )
        .await;
        assert_eq!(again.status, 200, "{}", again.raw_body);

        // E12: no client authentication, or a wrong secret.
        let anonymous = exchange(h, fw, &exchange_form(&subject, &[]), false).await;
        assert_eq!(
            (anonymous.status, anonymous.error()),
            (401, Some("invalid_client"))
        );
        assert!(
            anonymous
                .challenge
                .as_deref()
                .unwrap_or("")
                .starts_with("Basic")
        );
        let wrong = h
            .client()
            .post(h.url(fw, TOKEN))
            .basic_auth("svc", Some("guess"))
            .form(&exchange_form(&subject, &[]))
            .send()
            .await
            .expect("answer");
        assert_eq!(wrong.status().as_u16(), 401);

        // E9: no subject_token_type.
        let untyped = exchange(
            h,
            fw,
            &[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", &subject),
            ],
            true,
        )
        .await;
        assert_eq!(
            (untyped.status, untyped.error()),
            (400, Some("invalid_request"))
        );

        // E10: a subject token from an untrusted issuer.
        let foreign = MockProvider::start().await.expect("provider");
        let foreign_token = foreign.token().audience(AUDIENCE).sign();
        let hits = foreign.hits(Endpoint::Jwks) + foreign.hits(Endpoint::Discovery);
        let untrusted = exchange(h, fw, &exchange_form(&foreign_token, &[]), true).await;
        assert_eq!(
            (untrusted.status, untrusted.error()),
            (400, Some("invalid_request"))
        );
        assert_eq!(
            foreign.hits(Endpoint::Jwks) + foreign.hits(Endpoint::Discovery),
            hits
        );

        // E11: an audience that is not allowed.
        let target = exchange(
            h,
            fw,
            &exchange_form(&subject, &[("audience", "elsewhere")]),
            true,
        )
        .await;
        assert_eq!(
            (target.status, target.error()),
            (400, Some("invalid_target"))
        );

        // E12: the scope is never widened.
        let wider = exchange(
            h,
            fw,
            &exchange_form(&subject, &[("scope", "openid admin")]),
            true,
        )
        .await;
        assert_eq!((wider.status, wider.error()), (400, Some("invalid_scope")));
        let narrower = exchange(
            h,
            fw,
            &exchange_form(&subject, &[("scope", "openid")]),
            true,
        )
        .await;
        assert_eq!(narrower.body["scope"], "openid");
    }
}

/// Key rotation every 4 hours, on a manual clock.
const ROTATION_PERIOD: i64 = 4 * 3600;

/// A broker on a manual clock whose keys rotate every [`ROTATION_PERIOD`] and whose access
/// tokens live 30 minutes (no token cache), and a provider token good for ten days to exchange
/// for its tokens.
async fn rotating_broker() -> (ManualClock, Broker, String) {
    let clock = ManualClock::new(SystemClock.now());
    let b = broker_with(
        |c| {
            c.key_rotation_period(Duration::from_secs(ROTATION_PERIOD as u64))
                .access_token_lifetime(Duration::from_secs(1800))
                .token_cache_capacity(0)
        },
        Some(clock.clone()),
    )
    .await;
    let subject =
        b.h.idp
            .token()
            .audience(AUDIENCE)
            .expires_in(10 * 24 * 3600)
            .sign();
    (clock, b, subject)
}

/// An access token of the broker, minted now by exchanging `subject`.
async fn minted_now(h: &Harness, subject: &str) -> String {
    let reply = exchange(h, Framework::Axum, &exchange_form(subject, &[]), true).await;
    assert_eq!(reply.status, 200, "{}", reply.raw_body);
    field(&reply, "access_token").to_owned()
}

/// The key ids of a JWKS answer.
fn kids(jwks: &Reply) -> Vec<String> {
    jwks.body["keys"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .filter_map(|k| k["kid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The key id in a token's header.
fn kid_of(token: &str) -> String {
    jwt(token).0["kid"].as_str().unwrap_or_default().to_owned()
}

/// Deliver 2 and F1: rotation with overlap; kids are unique (RFC 7638 thumbprints). The successor is published before it signs; a token
/// of the retired key keeps validating until it expires, with both keys in the JWKS; after the
/// window the old key is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_with_overlap() {
    let (clock, b, subject) = rotating_broker().await;
    let h = &b.h;
    let period = ROTATION_PERIOD;
    let mint = || minted_now(h, &subject);
    let old_kid = kid_of(&mint().await);
    // Shortly before retirement: the successor is published, but the old key still signs.
    clock.advance(period - 600);
    let late_token = mint().await;
    assert_eq!(jwt(&late_token).0["kid"], old_kid.as_str());
    let jwks = h.get(Framework::Axum, JWKS, None).await;
    let published = kids(&jwks);
    assert_eq!(
        published.len(),
        2,
        "successor published before use: {published:?}"
    );
    let new_kid = published
        .iter()
        .find(|k| **k != old_kid)
        .cloned()
        .unwrap_or_default();
    // After retirement: the successor signs; the old key's token still validates.
    clock.advance(900);
    let new_token = mint().await;
    assert_eq!(jwt(&new_token).0["kid"], new_kid.as_str());
    assert_eq!(h.bearer_both("/me", &late_token).await.status, 200);
    assert_eq!(h.bearer_both("/me", &new_token).await.status, 200);
    for fw in FRAMEWORKS {
        assert_eq!(kids(&h.get(fw, JWKS, None).await).len(), 2);
    }
    // A token of the old key that outlives the window (made with its stored private key, as
    // only a leaked key could): valid while the key is published, refused once it is removed,
    // although its own `exp` is days away.
    let stored = b.store.list_keys().await.unwrap_or_default();
    let old_key = stored
        .iter()
        .find(|k| k.kid == old_kid)
        .expect("the old key is stored");
    let (_, mut claims) = jwt(&late_token);
    claims["exp"] = json!(clock.now() + 10 * 24 * 3600);
    let long_lived = forge_with(old_key, &claims);
    assert_eq!(h.bearer_both("/me", &long_lived).await.status, 200);
    // Past retirement + longest lifetime + leeway: the old key is gone from the JWKS.
    clock.advance(1800 + 60 + 60);
    let jwks = h.get(Framework::Axum, JWKS, None).await;
    assert_eq!(kids(&jwks), vec![new_kid.clone()]);
    assert_eq!(h.bearer_both("/me", &late_token).await.status, 401);
    assert_invalid_token(&h.bearer_both("/me", &long_lived).await);
    assert_eq!(b.store.list_keys().await.map(|k| k.len()).unwrap_or(0), 2);
    // Kids are unique: two keys, two kids, neither reused.
    let stored = b.store.list_keys().await.unwrap_or_default();
    assert_ne!(stored[0].kid, stored[1].kid);
}

/// F1 on a server idle through the whole day before its key retires, when the successor is
/// published: no request came, and the key has retired when the next one does, `idle` seconds
/// after. The successor is published then and signs only two minutes later, or when the
/// retired key's tokens could no longer end before it leaves the JWKS (30 minutes of access
/// token lifetime after retirement), if that is sooner; meanwhile the retired key signs on, and
/// its tokens validate. Some key signs at every moment. The successor used to be created and
/// sign in the same second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_after_an_idle_lead_window_the_successor_is_published_before_it_signs() {
    // (idle seconds after retirement, seconds until the successor signs)
    for (idle, wait) in [(1, 120), (180, 120), (1790, 10)] {
        let (clock, b, subject) = rotating_broker().await;
        let h = &b.h;
        let retire_at = clock.now() + ROTATION_PERIOD;
        let old_kid = kid_of(&minted_now(h, &subject).await);
        clock.advance(ROTATION_PERIOD + idle);
        let late = minted_now(h, &subject).await;
        assert_eq!(
            kid_of(&late),
            old_kid,
            "idle {idle}: the retired key signs on"
        );
        let exp = jwt(&late).1["exp"].as_i64().unwrap_or_default();
        assert!(
            exp <= retire_at + 1800,
            "idle {idle}: a late token ends before its key leaves the JWKS (less the leeway)"
        );
        let published = kids(&h.get(Framework::Axum, JWKS, None).await);
        let new_kid = published
            .iter()
            .find(|k| **k != old_kid)
            .cloned()
            .unwrap_or_else(|| panic!("idle {idle}: the successor is published: {published:?}"));
        clock.advance(wait - 1);
        let still = minted_now(h, &subject).await;
        assert_eq!(
            kid_of(&still),
            old_kid,
            "idle {idle}: not yet the successor"
        );
        clock.advance(1);
        let new = minted_now(h, &subject).await;
        assert_eq!(
            kid_of(&new),
            new_kid,
            "idle {idle}: then the successor signs"
        );
        for token in [&late, &still, &new] {
            assert_eq!(h.bearer_both("/me", token).await.status, 200, "idle {idle}");
        }
    }
    // Idle past that: the retired key can sign nothing that would end before it is removed,
    // so a new key signs at once, as the very first one does.
    let (clock, b, subject) = rotating_broker().await;
    let old_kid = kid_of(&minted_now(&b.h, &subject).await);
    clock.advance(ROTATION_PERIOD + 1800);
    let fresh = minted_now(&b.h, &subject).await;
    assert_ne!(kid_of(&fresh), old_kid);
    assert_eq!(b.h.bearer_both("/me", &fresh).await.status, 200);
}

/// F1 after a configuration change: the first key is created while access tokens live 30
/// minutes; the server restarts with 2 hours. A token the old key signs shortly before it
/// retires expires no later than the key leaves the JWKS (less the leeway), so it is valid for
/// as long as it says: the answer's `expires` is its `exp`, and it is 200 just before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_never_outlives_the_key_that_signed_it() {
    let clock = ManualClock::new(SystemClock.now());
    let period: i64 = 4 * 3600;
    let store = Arc::new(MemoryStore::new());
    let configured = |lifetime: u64| {
        move |c: OidcConfigBuilder| {
            c.key_rotation_period(Duration::from_secs(period as u64))
                .access_token_lifetime(Duration::from_secs(lifetime))
                .token_cache_capacity(0)
        }
    };
    let before = serve_broker(
        provider().await,
        store.clone(),
        configured(1800),
        Some(clock.clone()),
    )
    .await;
    let subject = before
        .idp
        .token()
        .audience(AUDIENCE)
        .expires_in(10 * 24 * 3600)
        .sign();
    let form = exchange_form(&subject, &[]);
    assert_eq!(
        exchange(&before, Framework::Axum, &form, true).await.status,
        200
    );
    let key = store.list_keys().await.unwrap_or_default().remove(0);
    clock.advance(key.retire_at - clock.now() - 600);
    let after = serve_broker(
        before.idp.clone(),
        store.clone(),
        configured(7200),
        Some(clock.clone()),
    )
    .await;
    let minted = exchange(&after, Framework::Axum, &form, true).await;
    assert_eq!(minted.status, 200, "{}", minted.raw_body);
    let (header, claims) = jwt(field(&minted, "access_token"));
    assert_eq!(header["kid"], key.kid.as_str(), "the old key still signs");
    let exp = claims["exp"].as_i64().unwrap_or_default();
    assert!(
        exp <= key.remove_at - 60,
        "exp {exp} past the key's removal {}",
        key.remove_at
    );
    assert_eq!(minted.body["expires"], exp);
    assert_eq!(minted.body["expires_in"], exp - clock.now());
    clock.advance(exp - clock.now() - 1);
    for h in [&before, &after] {
        assert_eq!(
            h.bearer_both("/me", field(&minted, "access_token"))
                .await
                .status,
            200
        );
    }
}

/// One broker instance served by axum at a URL known before it starts (its `iss`), counting
/// the requests it receives.
struct Instance {
    url: String,
    store: Arc<MemoryStore>,
    hits: Arc<std::sync::atomic::AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

const FEDERATION_AUDIENCE: &str = "federation";
const PEER_JWKS_PATH: &str = "/api/auth/v2/.well-known/jwks.json";

fn federated(idp: &MockProvider, url: &str, trusted: &[&str]) -> OidcConfigBuilder {
    base_config(idp)
        .client_id("test-client")
        .broker_mode(true)
        .broker_audience(FEDERATION_AUDIENCE)
        .proxy(url)
        .trusted_issuers(trusted.iter().map(|s| (*s).to_owned()))
        .broker_jwks_path(PEER_JWKS_PATH)
        .exchange_client("svc", "svc-secret")
}

async fn instance(idp: &MockProvider, trusted: &[&str]) -> Instance {
    instance_on(idp, trusted, Arc::new(MemoryStore::new())).await
}

async fn instance_on(idp: &MockProvider, trusted: &[&str], store: Arc<MemoryStore>) -> Instance {
    instance_with(idp, trusted, store, |c| c).await
}

async fn instance_with(
    idp: &MockProvider,
    trusted: &[&str],
    store: Arc<MemoryStore>,
    adjust: impl FnOnce(OidcConfigBuilder) -> OidcConfigBuilder,
) -> Instance {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let config = adjust(federated(idp, &url, trusted))
        .build()
        .expect("config");
    let auth = OidcAuth::builder(config).store(store.clone()).build();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let router = oidc_auth_tests::apps::axum_app::router(auth).layer(
        tower::util::MapRequestLayer::new(move |request: axum::extract::Request| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            request
        }),
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Instance {
        url,
        store,
        hits,
        server,
    }
}

/// A token of `instance`, by token exchange of a provider token.
async fn minted_by(instance: &Instance, idp: &MockProvider) -> String {
    let subject = idp.token().audience(AUDIENCE).sign();
    let response = reqwest::Client::new()
        .post(format!("{}{TOKEN}", instance.url))
        .basic_auth("svc", Some("svc-secret"))
        .form(&exchange_form(&subject, &[]))
        .send()
        .await
        .expect("answer");
    let reply = oidc_auth_tests::into_reply(response).await;
    assert_eq!(reply.status, 200, "{}", reply.raw_body);
    field(&reply, "access_token").to_owned()
}

/// Signs `claims` with the RS256 key `instance` stored.
async fn forge_with_key_of(instance: &Instance, claims: &Value) -> String {
    let keys = instance.store.list_keys().await.unwrap_or_default();
    forge_with(keys.first().expect("the instance has a key"), claims)
}

/// Signs `claims` with a stored RS256 `key` (no encryption key: plain PKCS#8 after a one-byte
/// marker), under its kid.
fn forge_with(key: &oidc_auth::store::StoredKey, claims: &Value) -> String {
    forge_with_header(
        key,
        &json!({"alg": "RS256", "typ": "at+jwt", "kid": key.kid}),
        claims,
    )
}

/// Signs `claims` with a stored RS256 `key` under `header`.
fn forge_with_header(key: &oidc_auth::store::StoredKey, header: &Value, claims: &Value) -> String {
    let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&key.private_key[1..]).expect("plain PKCS#8");
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .expect("sign");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Deliver 7 and F3: a token minted by A is accepted by B when B trusts A (both frameworks),
/// refused by C which does not (401 with no request to A), and refused when signed with B's key while
/// claiming A's `iss`. B's copy of A's keys survives a restart of B while A is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_federate() {
    let idp = MockProvider::start().await.expect("provider");
    idp.set_access_token_audience(AUDIENCE);
    let a = instance(&idp, &[]).await;
    let b_store = Arc::new(MemoryStore::new());
    let b = Harness::serve(
        MockProvider::start().await.expect("provider"),
        OidcAuth::builder(
            federated(&idp, "https://b.invalid", &[&a.url])
                .build()
                .expect("config"),
        )
        .store(b_store.clone())
        .build(),
        None,
    )
    .await;
    let c = instance(&idp, &[]).await;

    let token = minted_by(&a, &idp).await;
    assert_eq!(jwt(&token).1["iss"], a.url.as_str());
    for fw in FRAMEWORKS {
        let reply = b.bearer(fw, "/me", &token).await;
        assert_eq!(reply.status, 200, "{fw:?}: {}", reply.raw_body);
    }

    // C does not trust A: 401, and A was not asked for anything.
    let before = a.hits.load(std::sync::atomic::Ordering::SeqCst);
    let refused = reqwest::Client::new()
        .get(format!("{}/me", c.url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status().as_u16(), 401);
    let challenge = refused
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_eq!(a.hits.load(std::sync::atomic::Ordering::SeqCst), before);

    // Signed by C's key (C publishes it) while claiming A's issuer: refused by B.
    let _ = minted_by(&c, &idp).await;
    let mut claims = jwt(&token).1;
    claims["jti"] = json!("forged");
    let forged = forge_with_key_of(&c, &claims).await;
    for fw in FRAMEWORKS {
        assert_invalid_token(&b.bearer(fw, "/me", &forged).await);
    }
    // The same forgery re-signed by A's own key is accepted: the key decides, not the claims.
    let genuine = forge_with_key_of(&a, &claims).await;
    assert_eq!(b.bearer(Framework::Axum, "/me", &genuine).await.status, 200);

    // B persisted A's keys; a fresh B on the same store accepts A's token while A is down.
    stored_copy(&b_store, &a.url).await;
    a.server.abort();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let restarted = instance_on(&idp, &[&a.url], b_store).await;
    let reply = reqwest::Client::new()
        .get(format!("{}/me", restarted.url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answer");
    assert_eq!(reply.status().as_u16(), 200);
}

/// The copy of `issuer`'s keys in `store` and its fetch time, once the background write
/// that follows a fetch has landed (within 2 s).
async fn stored_copy(store: &MemoryStore, issuer: &str) -> (String, i64) {
    for _ in 0..100 {
        if let Some(copy) = store.get_peer_jwks(issuer).await.ok().flatten() {
            return copy;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no copy of {issuer}'s keys was stored");
}

/// An instance that only validates (no broker mode) and trusts a peer checks the peer's tokens
/// against the shared broker audience, as a broker does, else against its own `audience`: the
/// peer's tokens for the federation are accepted on both frameworks, and a token the peer
/// exchanged for another service (`downstream`) is refused. Before, the first were refused with
/// another `audience` set, and the second accepted without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validating_instance_checks_peer_tokens_against_the_broker_audience() {
    let idp = MockProvider::start().await.expect("provider");
    idp.set_access_token_audience(AUDIENCE);
    let a = instance_with(&idp, &[], Arc::new(MemoryStore::new()), |c| {
        c.exchange_audiences(["downstream".to_owned()])
    })
    .await;
    let token = minted_by(&a, &idp).await;
    let subject = idp.token().audience(AUDIENCE).sign();
    let downstream = reqwest::Client::new()
        .post(format!("{}{TOKEN}", a.url))
        .basic_auth("svc", Some("svc-secret"))
        .form(&exchange_form(&subject, &[("audience", "downstream")]))
        .send()
        .await
        .expect("answer");
    let downstream = oidc_auth_tests::into_reply(downstream).await;
    assert_eq!(downstream.status, 200, "{}", downstream.raw_body);
    let downstream = field(&downstream, "access_token").to_owned();
    assert_eq!(jwt(&downstream).1["aud"], "downstream");
    // (audience, broker audience): without a broker audience, the instance's own audience is
    // the one the peers' tokens must carry.
    for (audience, broker_audience) in [
        (Some(AUDIENCE), Some(FEDERATION_AUDIENCE)),
        (None, Some(FEDERATION_AUDIENCE)),
        (Some(FEDERATION_AUDIENCE), None),
    ] {
        let mut config = oidc_auth::OidcConfig::builder()
            .discovery_url(idp.discovery_url())
            .client_id("test-client")
            .trusted_issuers([a.url.clone()])
            .broker_jwks_path(PEER_JWKS_PATH);
        if let Some(audience) = audience {
            config = config.audience(audience);
        }
        if let Some(broker_audience) = broker_audience {
            config = config.broker_audience(broker_audience);
        }
        let h = Harness::serve(
            idp.clone(),
            OidcAuth::builder(config.build().expect("config")).build(),
            None,
        )
        .await;
        for fw in FRAMEWORKS {
            let reply = h.bearer(fw, "/me", &token).await;
            assert_eq!(
                reply.status, 200,
                "{audience:?} {broker_audience:?} {fw:?}: {}",
                reply.raw_body
            );
            assert_invalid_token(&h.bearer(fw, "/me", &downstream).await);
        }
    }
}

/// A broker with an encryption key, trusting `peer`, on `store`, served by both frameworks.
async fn sealing_peer_of(idp: &MockProvider, peer: &str, store: Arc<MemoryStore>) -> Harness {
    let config = federated(idp, "https://b.invalid", &[peer])
        .encryption_key(SHARED_KEY)
        .build()
        .expect("config");
    Harness::serve(
        idp.clone(),
        OidcAuth::builder(config).store(store).build(),
        None,
    )
    .await
}

/// With an encryption key the copy of a peer's keys in the store is sealed, bound to the
/// peer's issuer and to its fetch time: a fresh instance restores it while the peer is down,
/// but not a copy someone wrote into the database (another instance's keys, in plain text or
/// under the wrong issuer) nor the real copy with its fetch time moved (which would stretch
/// the stale limit). Either way the peer's tokens are 503 until the peer answers, and a token
/// signed with the substituted keys is never accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_copy_of_a_peers_keys_is_sealed_and_bound_to_its_issuer_and_time() {
    let idp = MockProvider::start().await.expect("provider");
    idp.set_access_token_audience(AUDIENCE);
    let a = instance(&idp, &[]).await;
    let c = instance(&idp, &[]).await;
    let token = minted_by(&a, &idp).await;
    let _ = minted_by(&c, &idp).await;
    let mut claims = jwt(&token).1;
    claims["sub"] = json!("mallory");
    let forged = forge_with_key_of(&c, &claims).await;
    let c_keys = reqwest::get(format!("{}{PEER_JWKS_PATH}", c.url))
        .await
        .expect("answer")
        .text()
        .await
        .expect("body");
    assert!(c_keys.starts_with('{'), "{c_keys}");

    let store = Arc::new(MemoryStore::new());
    let b = sealing_peer_of(&idp, &a.url, store.clone()).await;
    assert_eq!(b.bearer_both("/me", &token).await.status, 200);
    let (sealed, fetched_at) = stored_copy(&store, &a.url).await;
    let a_kid = jwt(&token).0["kid"].as_str().unwrap_or("-").to_owned();
    assert!(
        !sealed.starts_with('{') && !sealed.contains(&a_kid),
        "{sealed}"
    );
    a.server.abort();
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The sealed copy restores A's keys on a fresh instance.
    let fresh = sealing_peer_of(&idp, &a.url, store.clone()).await;
    for fw in FRAMEWORKS {
        let reply = fresh.bearer(fw, "/me", &token).await;
        assert_eq!(reply.status, 200, "{fw:?}: {}", reply.raw_body);
        // C's key id is not among A's keys, and A cannot be asked for new ones.
        let reply = fresh.bearer(fw, "/me", &forged).await;
        assert_eq!(reply.status, 503, "{fw:?}: {}", reply.raw_body);
    }

    // Copies that must not restore anything.
    let elsewhere = {
        let other = Arc::new(MemoryStore::new());
        let other_b = sealing_peer_of(&idp, &c.url, other.clone()).await;
        assert_eq!(
            other_b.bearer(Framework::Axum, "/me", &forged).await.status,
            401
        );
        let _ = other_b
            .bearer(Framework::Axum, "/me", &minted_by(&c, &idp).await)
            .await;
        stored_copy(&other, &c.url).await
    };
    for (case, text, at) in [
        (
            "another instance's keys in plain text",
            c_keys.clone(),
            fetched_at,
        ),
        (
            "the real copy, fetched later",
            sealed.clone(),
            fetched_at + 1,
        ),
        (
            "the real copy, fetched earlier",
            sealed.clone(),
            fetched_at - 1,
        ),
        ("a copy sealed for another issuer", elsewhere.0, elsewhere.1),
    ] {
        // Each copy in a store of its own: a store keeps the copy fetched latest.
        let store = Arc::new(MemoryStore::new());
        store.put_peer_jwks(&a.url, &text, at).await.expect("write");
        assert_eq!(
            stored_copy(&store, &a.url).await,
            (text.clone(), at),
            "{case}"
        );
        let fresh = sealing_peer_of(&idp, &a.url, store.clone()).await;
        for fw in FRAMEWORKS {
            for t in [&token, &forged] {
                let reply = fresh.bearer(fw, "/me", t).await;
                assert_eq!(reply.status, 503, "{case}, {fw:?}: {}", reply.raw_body);
            }
        }
    }
}

/// A10 for broker and peer tokens: a token of this server's own ring must name its key, so
/// a kid-less token signed with the instance's own key is refused by that instance (401). A
/// trusted peer's token without a kid is verified like a provider's (A9): accepted when the
/// peer publishes exactly one fitting key and that key signed it, refused when another key
/// did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kid_less_tokens_of_the_own_ring_are_refused_and_of_a_peer_need_its_one_key() {
    let idp = MockProvider::start().await.expect("provider");
    idp.set_access_token_audience(AUDIENCE);
    let a = instance(&idp, &[]).await;
    let c = instance(&idp, &[]).await;
    let b = instance(&idp, &[&a.url]).await;
    let token = minted_by(&a, &idp).await;
    let _ = minted_by(&c, &idp).await;
    let claims = jwt(&token).1;
    let header = json!({"alg": "RS256", "typ": "at+jwt"});
    let a_keys = a.store.list_keys().await.unwrap_or_default();
    assert_eq!(a_keys.len(), 1, "A publishes one key");
    let kid_less = forge_with_header(&a_keys[0], &header, &claims);
    let c_keys = c.store.list_keys().await.unwrap_or_default();
    let kid_less_by_c = forge_with_header(c_keys.first().expect("C has a key"), &header, &claims);
    let status = |instance: &Instance, token: &str| {
        let request = reqwest::Client::new()
            .get(format!("{}/me", instance.url))
            .bearer_auth(token);
        async move { request.send().await.expect("answer").status().as_u16() }
    };
    assert_eq!(status(&a, &token).await, 200, "control: A's own token at A");
    assert_eq!(status(&a, &kid_less).await, 401, "kid-less own token at A");
    assert_eq!(status(&b, &kid_less).await, 200, "kid-less peer token at B");
    assert_eq!(
        status(&b, &kid_less_by_c).await,
        401,
        "kid-less, C's key, at B"
    );
}

/// A trusted peer that withdraws a key: its tokens already in the validated-token cache stop
/// validating once a refresh of that peer's keys finds the key gone, on both frameworks. The
/// peer here is a mock provider, whose key set is at `<issuer>/jwks`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_key_withdrawn_ends_its_cached_tokens() {
    for fw in FRAMEWORKS {
        let idp = MockProvider::start().await.expect("provider");
        let peer = MockProvider::start().await.expect("peer");
        let config = federated(&idp, "https://b.invalid", &[&peer.issuer()])
            .broker_jwks_path("/jwks")
            .build()
            .expect("config");
        let auth = OidcAuth::builder(config)
            .store(Arc::new(MemoryStore::new()))
            .build();
        let h = Harness::serve(idp, auth, None).await;
        let withdrawn = peer.current_kid();
        let old = peer.token().audience(FEDERATION_AUDIENCE).sign();
        assert_eq!(h.bearer(fw, "/me", &old).await.status, 200, "{fw:?}");
        assert_eq!(h.bearer(fw, "/me", &old).await.status, 200, "a cache hit");
        peer.rotate_key(SigningAlg::ES256);
        peer.retire_key(&withdrawn);
        let new = peer.token().audience(FEDERATION_AUDIENCE).sign();
        assert_eq!(h.bearer(fw, "/me", &new).await.status, 200, "refetched");
        let refused = h.bearer(fw, "/me", &old).await;
        assert_eq!(refused.status, 401, "{fw:?}: {}", refused.raw_body);
        assert_eq!(h.bearer(fw, "/me", &new).await.status, 200);
    }
}

/// Bounded staleness for trusted peers: while a peer is unreachable, its keys (in memory, or
/// restored from the store on a start) validate until the stale limit counted from their
/// fetch, and not after: 503, never 200. Keys restored from an older copy are refused too, and
/// so is a copy dated further ahead of the clock than the leeway, or at `i64::MIN`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_peers_keys_go_stale() {
    const STALE: i64 = 6 * 3600;
    let clock = ManualClock::new(SystemClock.now());
    let idp = MockProvider::start().await.expect("provider");
    let peer = MockProvider::start().await.expect("peer");
    let store = Arc::new(MemoryStore::new());
    let serve = |store: Arc<MemoryStore>| {
        let config = federated(&idp, "https://b.invalid", &[&peer.issuer()])
            .broker_jwks_path("/jwks")
            .jwks_stale_limit(Duration::from_secs(STALE as u64))
            .token_cache_capacity(0)
            .build()
            .expect("config");
        let auth = OidcAuth::builder(config)
            .store(store)
            .clock(clock.clone())
            .build();
        Harness::serve(idp.clone(), auth, Some(clock.clone()))
    };
    let token = || {
        peer.token()
            .audience(FEDERATION_AUDIENCE)
            .issued_at(clock.now())
            .sign()
    };
    let h = serve(store.clone()).await;
    assert_eq!(h.bearer_both("/me", &token()).await.status, 200);
    for _ in 0..100 {
        if store
            .get_peer_jwks(&peer.issuer())
            .await
            .ok()
            .flatten()
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fetched = clock.now();
    peer.set_fault(Endpoint::Jwks, Fault::Down);
    // Within the limit, with background refreshes failing every TTL: still 200.
    while clock.now() < fetched + STALE - 1800 {
        clock.advance(1800);
        assert_eq!(h.bearer_both("/me", &token()).await.status, 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A fresh start on the same store restores the copy, aging from its fetch.
    let restarted = serve(store.clone()).await;
    assert_eq!(restarted.bearer_both("/me", &token()).await.status, 200);
    clock.advance(3600);
    for (h, which) in [(&h, "running"), (&restarted, "restarted")] {
        let reply = h.bearer(Framework::Axum, "/me", &token()).await;
        assert_eq!(reply.status, 503, "{which}: {}", reply.raw_body);
        let reply = h.bearer(Framework::Actix, "/me", &token()).await;
        assert_eq!(reply.status, 503, "{which}: {}", reply.raw_body);
    }
    // A start after the limit does not take the old copy.
    let late = serve(store.clone()).await;
    assert_eq!(late.bearer_both("/me", &token()).await.status, 503);
    // Nor a copy dated ahead of the clock (it would never age) or at the earliest time (its
    // age would overflow): a damaged row, or a clock set back.
    let (jwks, _) = store
        .get_peer_jwks(&peer.issuer())
        .await
        .ok()
        .flatten()
        .expect("the copy is stored");
    // Past the 60-second leeway, that is; a copy written by an instance whose clock is a
    // little fast is restored.
    for (fetched_at, status) in [
        (clock.now() + 30, 200),
        (clock.now() + 61, 503),
        (clock.now() + 10 * 365 * 86_400, 503),
        (i64::MIN, 503),
    ] {
        let copy = Arc::new(MemoryStore::new());
        copy.put_peer_jwks(&peer.issuer(), &jwks, fetched_at)
            .await
            .expect("stored");
        let h = serve(copy).await;
        assert_eq!(
            h.bearer_both("/me", &token()).await.status,
            status,
            "{fetched_at}"
        );
    }
}

/// A trusted peer unreachable from the start, with no stored copy of its keys: every request
/// naming it is 503, and the store is asked for a copy once every ten seconds, not once per
/// request, while the outage lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_peer_without_a_stored_copy_is_looked_up_once_per_ten_seconds() {
    let clock = ManualClock::new(SystemClock.now());
    let idp = MockProvider::start().await.expect("provider");
    let peer = MockProvider::start().await.expect("peer");
    peer.set_fault(Endpoint::Jwks, Fault::Down);
    let store = Arc::new(ProbeStore::new());
    let config = federated(&idp, "https://b.invalid", &[&peer.issuer()])
        .broker_jwks_path("/jwks")
        .token_cache_capacity(0)
        .build()
        .expect("config");
    let auth = OidcAuth::builder(config)
        .store(store.clone())
        .clock(clock.clone())
        .build();
    let h = Harness::serve(idp.clone(), auth, Some(clock.clone())).await;
    let token = peer
        .token()
        .audience(FEDERATION_AUDIENCE)
        .issued_at(clock.now())
        .sign();
    let reads = || store.peer_reads.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..20 {
        assert_eq!(h.bearer_both("/me", &token).await.status, 503);
    }
    assert_eq!(reads(), 1, "one look in the store");
    clock.advance(11);
    for _ in 0..5 {
        assert_eq!(h.bearer_both("/me", &token).await.status, 503);
    }
    assert_eq!(reads(), 2, "one more ten seconds later");
}

/// Changing the encryption key. With the old key listed in `previous_encryption_keys`, an
/// instance on the new key signs with the signing key the old one sealed and resumes the
/// sessions it sealed, on both frameworks. Without it, that signing key cannot sign: a login
/// is 503, and nothing was changed by the attempt, so listing the old key afterwards works.
/// Setting a key where there was none keeps the sessions sealed with the key derived from the
/// client secret when `previous_key_from_client_secret` says so; otherwise their refresh tokens
/// are refused (400), without changing anything, so setting it afterwards still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_encryption_key_keeps_keys_and_sessions_with_the_previous_one_listed() {
    let idp = provider().await;
    let store = Arc::new(MemoryStore::new());
    let old = serve_broker(
        idp.clone(),
        store.clone(),
        |c| c.encryption_key(SHARED_KEY),
        None,
    )
    .await;
    let mut held = Vec::new();
    for fw in FRAMEWORKS {
        let first = login(&old, fw).await;
        held.push((fw, field(&first, "refresh_token").to_owned()));
    }
    let without = serve_broker(
        idp.clone(),
        store.clone(),
        |c| c.encryption_key(NEW_KEY),
        None,
    )
    .await;
    let refused = oidc_auth_tests::client_code_flow(&without, Framework::Axum).await;
    assert_eq!(refused.status, 503, "{}", refused.raw_body);
    let new = keyed(&idp, store.clone(), NEW_KEY, SHARED_KEY).await;
    for (fw, token) in &held {
        let refreshed = refresh(&new, *fw, token).await;
        assert_eq!(refreshed.status, 200, "{fw:?}: {}", refreshed.raw_body);
        let again = login(&new, *fw).await;
        let access = field(&again, "access_token");
        assert_eq!(new.bearer(*fw, "/me", access).await.status, 200, "{fw:?}");
    }
    // From no key to a key: sessions sealed with the key derived from the client secret.
    const SECRET: &str = "the-client-secret-of-the-broker";
    idp.set_client("test-client", Some(SECRET));
    let store = Arc::new(MemoryStore::new());
    let keyless = serve_broker(
        idp.clone(),
        store.clone(),
        |c| c.client_secret(SECRET),
        None,
    )
    .await;
    let first = login(&keyless, Framework::Actix).await;
    // Unless the deployer keeps the key derived from the secret, those sessions end.
    let strict = serve_broker(
        idp.clone(),
        store.clone(),
        |c| c.client_secret(SECRET).encryption_key(NEW_KEY),
        None,
    )
    .await;
    let refused = refresh(&strict, Framework::Actix, field(&first, "refresh_token")).await;
    assert_eq!(refused.status, 400, "{}", refused.raw_body);
    assert_eq!(
        refused.error(),
        Some("invalid_grant"),
        "{}",
        refused.raw_body
    );
    let keyed = serve_broker(
        idp,
        store,
        |c| {
            c.client_secret(SECRET)
                .encryption_key(NEW_KEY)
                .previous_key_from_client_secret(true)
        },
        None,
    )
    .await;
    let refreshed = refresh(&keyed, Framework::Actix, field(&first, "refresh_token")).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.raw_body);
}

/// The README's key change, in two rounds over instances that share a store: once every
/// instance lists the new key as a previous one, an instance that has made it its key and one
/// that has not yet take each other's access tokens, sessions and refresh tokens, and sessions
/// from before the change go on, on both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_change_in_two_rounds_keeps_tokens_and_sessions_across_instances() {
    let idp = provider().await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let before = sharing(&idp, store.clone()).await;
    let early = login(&before, Framework::Axum).await;
    // First round done: the old key, the new one listed as previous.
    let first = keyed(&idp, store.clone(), SHARED_KEY, NEW_KEY).await;
    // Second round under way: the new key, the old one listed as previous.
    let second = keyed(&idp, store.clone(), NEW_KEY, SHARED_KEY).await;
    let mut held = field(&early, "refresh_token").to_owned();
    for fw in FRAMEWORKS {
        for (from, to) in [(&first, &second), (&second, &first)] {
            let reply = login(from, fw).await;
            let access = field(&reply, "access_token");
            assert_eq!(to.bearer(fw, "/me", access).await.status, 200, "{fw:?}");
            let refreshed = refresh(to, fw, field(&reply, "refresh_token")).await;
            assert_eq!(refreshed.status, 200, "{fw:?}: {}", refreshed.raw_body);
            let again = refresh(from, fw, field(&refreshed, "refresh_token")).await;
            assert_eq!(again.status, 200, "{fw:?}: {}", again.raw_body);
            let old = refresh(to, fw, &held).await;
            assert_eq!(old.status, 200, "{fw:?}: {}", old.raw_body);
            held = field(&old, "refresh_token").to_owned();
        }
    }
}

/// Deliver 2: several instances starting at once on one store agree on one signing key, and
/// each publishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_starts_agree_on_one_key() {
    let idp = provider().await;
    let store = Arc::new(MemoryStore::new());
    let instances: Vec<OidcAuth> = (0..6)
        .map(|_| {
            let config = oidc_auth_tests::broker::broker_config(&idp)
                .build()
                .expect("config");
            OidcAuth::builder(config).store(store.clone()).build()
        })
        .collect();
    let starts: Vec<_> = instances
        .iter()
        .map(|auth| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.warm_up().await })
        })
        .collect();
    for start in starts {
        let result = start.await.expect("the task finishes");
        assert!(result.is_ok(), "{result:?}");
    }
    let keys = store.list_keys().await.unwrap_or_default();
    assert_eq!(keys.len(), 1, "{keys:?}");
    for auth in &instances {
        let jwks = match auth.jwks_endpoint().await {
            Ok(oidc_auth::EndpointResponse::Json { body, .. }) => body,
            other => panic!("{other:?}"),
        };
        assert_eq!(jwks["keys"][0]["kid"], keys[0].kid.as_str());
    }
}

/// A [`MemoryStore`] that counts `purge_expired` calls, can refuse `get_session`,
/// `update_session`, `delete_session` and `insert_key`, as an outage in the middle of a refresh or a key rotation would, and can delay
/// `rotate_refresh` and `revoke_family`, as a slow database would.
struct ProbeStore {
    inner: Arc<MemoryStore>,
    purges: std::sync::atomic::AtomicUsize,
    /// How many `get_peer_jwks` calls were made.
    peer_reads: std::sync::atomic::AtomicUsize,
    refuse_reads: std::sync::atomic::AtomicBool,
    refuse_session_deletes: std::sync::atomic::AtomicBool,
    /// How many `update_session` calls to refuse before the next one goes through.
    refuse_session_updates: std::sync::atomic::AtomicUsize,
    refuse_key_inserts: std::sync::atomic::AtomicBool,
    rotation_delay_ms: std::sync::atomic::AtomicU64,
    revocation_delay_ms: std::sync::atomic::AtomicU64,
    /// How long a session deletion waits before it reaches the store.
    session_delete_delay_ms: std::sync::atomic::AtomicU64,
    /// When set, every refresh record a rotation finds names this session: a record changed in
    /// the database.
    records_name: std::sync::Mutex<Option<String>>,
    /// When set, no one-time marker is found (`is_consumed` is false): markers deleted from
    /// the database.
    forget_markers: std::sync::atomic::AtomicBool,
    /// How many `rotate_refresh` calls were made.
    rotations: std::sync::atomic::AtomicUsize,
    /// When set, a spent token rotates as a live one would: a spend undone after another
    /// request was answered, or a row written back.
    relive_spent: std::sync::atomic::AtomicBool,
}

impl ProbeStore {
    fn new() -> Self {
        Self::over(Arc::new(MemoryStore::new()))
    }

    /// A probe in front of `inner`, which other instances may share.
    fn over(inner: Arc<MemoryStore>) -> Self {
        Self {
            inner,
            purges: std::sync::atomic::AtomicUsize::new(0),
            peer_reads: std::sync::atomic::AtomicUsize::new(0),
            refuse_reads: std::sync::atomic::AtomicBool::new(false),
            refuse_session_deletes: std::sync::atomic::AtomicBool::new(false),
            refuse_session_updates: std::sync::atomic::AtomicUsize::new(0),
            refuse_key_inserts: std::sync::atomic::AtomicBool::new(false),
            rotation_delay_ms: std::sync::atomic::AtomicU64::new(0),
            revocation_delay_ms: std::sync::atomic::AtomicU64::new(0),
            session_delete_delay_ms: std::sync::atomic::AtomicU64::new(0),
            records_name: std::sync::Mutex::new(None),
            forget_markers: std::sync::atomic::AtomicBool::new(false),
            rotations: std::sync::atomic::AtomicUsize::new(0),
            relive_spent: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

fn refused<T>() -> oidc_auth::store::StoreFuture<'static, T> {
    Box::pin(async {
        Err(oidc_auth::store::StoreError::Unavailable(
            "refused by the test".into(),
        ))
    })
}

macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> oidc_auth::store::StoreFuture<'_, $out> {
            self.inner.$name($($arg),*)
        })*
    };
}

impl Store for ProbeStore {
    delegate! {
        migrate() -> ();
        put_session(session: &oidc_auth::store::Session) -> ();
        insert_refresh(record: &oidc_auth::store::RefreshRecord) -> ();
        list_keys() -> Vec<oidc_auth::store::StoredKey>;
        insert_first_key(key: &oidc_auth::store::StoredKey, now: i64) -> bool;
        delete_key(kid: &str) -> ();
        put_peer_jwks(issuer: &str, jwks: &str, fetched_at: i64) -> ();
        consume_once(key: &[u8; 32], expires_at: i64, now: i64) -> bool;
    }

    fn is_consumed(&self, key: &[u8; 32], now: i64) -> oidc_auth::store::StoreFuture<'_, bool> {
        if self
            .forget_markers
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Box::pin(async { Ok(false) });
        }
        self.inner.is_consumed(key, now)
    }

    fn get_peer_jwks(
        &self,
        issuer: &str,
    ) -> oidc_auth::store::StoreFuture<'_, Option<(String, i64)>> {
        self.peer_reads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.get_peer_jwks(issuer)
    }

    fn update_session(
        &self,
        session: &oidc_auth::store::Session,
        now: i64,
    ) -> oidc_auth::store::StoreFuture<'_, bool> {
        let refuse = self.refuse_session_updates.fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |left| left.checked_sub(1),
        );
        if refuse.is_ok() {
            return refused();
        }
        self.inner.update_session(session, now)
    }

    fn delete_session(
        &self,
        id: &str,
    ) -> oidc_auth::store::StoreFuture<'_, Option<oidc_auth::store::Session>> {
        if self
            .refuse_session_deletes
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return refused();
        }
        let id = id.to_owned();
        let delay = self
            .session_delete_delay_ms
            .load(std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            self.inner.delete_session(&id).await
        })
    }

    fn insert_key(
        &self,
        key: &oidc_auth::store::StoredKey,
    ) -> oidc_auth::store::StoreFuture<'_, ()> {
        if self
            .refuse_key_inserts
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return refused();
        }
        self.inner.insert_key(key)
    }

    fn rotate_refresh(
        &self,
        old: &[u8; 32],
        new: &[u8; 32],
        now: i64,
    ) -> oidc_auth::store::StoreFuture<'_, oidc_auth::store::RotateOutcome> {
        let (old, new) = (*old, *new);
        let delay = self
            .rotation_delay_ms
            .load(std::sync::atomic::Ordering::SeqCst);
        self.rotations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let renamed = self
            .records_name
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let relive = self.relive_spent.load(std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            use oidc_auth::store::RotateOutcome;
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let outcome = match self.inner.rotate_refresh(&old, &new, now).await? {
                RotateOutcome::Spent(record) if relive => RotateOutcome::Rotated(record),
                outcome => outcome,
            };
            Ok(match (outcome, renamed) {
                (RotateOutcome::Rotated(mut record), Some(session)) => {
                    record.session_id = session;
                    RotateOutcome::Rotated(record)
                }
                (RotateOutcome::Spent(mut record), Some(session)) => {
                    record.session_id = session;
                    RotateOutcome::Spent(record)
                }
                (outcome, _) => outcome,
            })
        })
    }

    fn revoke_family(&self, family: &str) -> oidc_auth::store::StoreFuture<'_, ()> {
        let family = family.to_owned();
        let delay = self
            .revocation_delay_ms
            .load(std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            self.inner.revoke_family(&family).await
        })
    }

    fn purge_expired(&self, now: i64) -> oidc_auth::store::StoreFuture<'_, u64> {
        self.purges
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.purge_expired(now)
    }

    fn get_session(
        &self,
        id: &str,
        now: i64,
    ) -> oidc_auth::store::StoreFuture<'_, Option<oidc_auth::store::Session>> {
        if self.refuse_reads.load(std::sync::atomic::Ordering::SeqCst) {
            return refused();
        }
        self.inner.get_session(id, now)
    }
}

/// F1 when the store fails while the successor key is published: the mint that tried still
/// succeeds with the current key, another attempt follows within a minute, and the successor
/// is in the JWKS before it signs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_successor_key_is_published_on_a_later_attempt() {
    let clock = ManualClock::new(SystemClock.now());
    let period: i64 = 4 * 3600;
    let store = Arc::new(ProbeStore::new());
    let h = serve_broker(
        provider().await,
        store.clone(),
        |c| c.key_rotation_period(Duration::from_secs(period as u64)),
        Some(clock.clone()),
    )
    .await;
    let subject = h
        .idp
        .token()
        .audience(AUDIENCE)
        .expires_in(10 * 24 * 3600)
        .sign();
    let mint = || async {
        let reply = exchange(&h, Framework::Axum, &exchange_form(&subject, &[]), true).await;
        assert_eq!(reply.status, 200, "{}", reply.raw_body);
        jwt(field(&reply, "access_token")).0["kid"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let published = || async {
        let jwks = h.get(Framework::Actix, JWKS, None).await;
        jwks.body["keys"]
            .as_array()
            .map(|keys| keys.len())
            .unwrap_or_default()
    };
    let first = mint().await;
    // Within the lead (a quarter period before retirement) with the store refusing the key.
    clock.advance(period - 1800);
    store
        .refuse_key_inserts
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(mint().await, first, "the mint that tried still succeeds");
    store
        .refuse_key_inserts
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(published().await, 1);
    clock.advance(61);
    assert_eq!(mint().await, first);
    assert_eq!(
        published().await,
        2,
        "the later attempt published the successor"
    );
    clock.advance(1800);
    let next = mint().await;
    assert_ne!(next, first, "the successor signs after the retirement");
}

/// A login on `fw`: its refresh token and its session id (the `sid` of its access token).
async fn session_login(h: &Harness, fw: Framework) -> (String, String) {
    let reply = login(h, fw).await;
    let sid = jwt(field(&reply, "access_token")).1["sid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (field(&reply, "refresh_token").to_owned(), sid)
}

/// A logout racing a refresh of the same token, on two instances: the revocation on A has
/// spent the token and is ending its session (the deletion takes 600 ms) when B is asked to
/// refresh it. B finds the token spent, but by the revocation, not by a concurrent refresh: it
/// answers 400 `invalid_grant` rather than minting from the session still there. Before, B
/// answered 200 with a fresh access token, for whoever held the token being revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_racing_the_revocation_of_its_token_is_refused() {
    let idp = provider().await;
    let shared = Arc::new(MemoryStore::new());
    let slow = Arc::new(ProbeStore::over(shared.clone()));
    let a = sharing(&idp, slow.clone()).await;
    let b = sharing(&idp, shared.clone()).await;
    for (fa, fb) in [
        (Framework::Axum, Framework::Actix),
        (Framework::Actix, Framework::Axum),
    ] {
        let (token, sid) = session_login(&a, fa).await;
        slow.session_delete_delay_ms
            .store(600, std::sync::atomic::Ordering::SeqCst);
        let form = [("token", token.as_str())];
        let revocation = a.post_form(fa, REVOKE, &form);
        let rotations = slow.rotations.load(std::sync::atomic::Ordering::SeqCst);
        let racing = async {
            // Once the revocation has spent the token (its rotation on A's store), while its
            // session is still being deleted.
            while slow.rotations.load(std::sync::atomic::Ordering::SeqCst) == rotations {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            refresh(&b, fb, &token).await
        };
        let (revoked, raced) = tokio::join!(revocation, racing);
        slow.session_delete_delay_ms
            .store(0, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(revoked.status, 200, "{fa:?}: {}", revoked.raw_body);
        assert_eq!(
            (raced.status, raced.error()),
            (400, Some("invalid_grant")),
            "{fb:?}: {}",
            raced.raw_body
        );
        let session = shared.get_session(&sid, SystemClock.now()).await;
        assert!(matches!(session, Ok(None)), "the session is gone");
    }
}

/// RFC 7009 revocation whose client gives up: the revocation still completes. The store takes
/// 1 s to revoke a family and the client stops waiting after 200 ms; afterwards the refresh
/// token is refused and its session is gone, on both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_whose_client_gives_up_completes() {
    let store = Arc::new(ProbeStore::new());
    let h = serve_broker(provider().await, store.clone(), |c| c, None).await;
    for fw in FRAMEWORKS {
        let (token, sid) = session_login(&h, fw).await;
        store
            .revocation_delay_ms
            .store(1000, std::sync::atomic::Ordering::SeqCst);
        let gave_up = h
            .client()
            .post(h.url(fw, REVOKE))
            .form(&[("token", token.as_str())])
            .timeout(Duration::from_millis(200))
            .send()
            .await;
        assert!(gave_up.is_err(), "the client gave up: {gave_up:?}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        store
            .revocation_delay_ms
            .store(0, std::sync::atomic::Ordering::SeqCst);
        let refused = refresh(&h, fw, &token).await;
        assert_eq!(
            refused.error(),
            Some("invalid_grant"),
            "{fw:?}: {}",
            refused.raw_body
        );
        let session = store.get_session(&sid, SystemClock.now()).await;
        assert!(matches!(session, Ok(None)), "{fw:?}: the session is gone");
    }
}

/// RFC 7009 revocation slower than a request waits: the store takes 6 s to revoke a family.
/// The request answers 503 with `Retry-After` within 5 s, and the revocation goes on to the
/// end: then the token is refused and its session is gone. A spent token revoked ends its
/// session too. Both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_revocation_answers_503_and_completes() {
    let store = Arc::new(ProbeStore::new());
    let h = serve_broker(provider().await, store.clone(), |c| c, None).await;
    for fw in FRAMEWORKS {
        let (token, sid) = session_login(&h, fw).await;
        store
            .revocation_delay_ms
            .store(6000, std::sync::atomic::Ordering::SeqCst);
        let started = std::time::Instant::now();
        let slow = h.post_form(fw, REVOKE, &[("token", &token)]).await;
        let took = started.elapsed();
        store
            .revocation_delay_ms
            .store(0, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(slow.status, 503, "{fw:?}: {}", slow.raw_body);
        assert!(slow.retry_after.is_some());
        assert!(took < oidc_auth_tests::broker::G6_LIMIT, "{fw:?}: {took:?}");
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert_eq!(refresh(&h, fw, &token).await.error(), Some("invalid_grant"));
        let session = store.get_session(&sid, SystemClock.now()).await;
        assert!(matches!(session, Ok(None)), "{fw:?}: the session is gone");

        // A spent token: its family and its session go.
        let (spent, sid) = session_login(&h, fw).await;
        assert_eq!(refresh(&h, fw, &spent).await.status, 200);
        assert_eq!(
            h.post_form(fw, REVOKE, &[("token", &spent)]).await.status,
            200
        );
        let session = store.get_session(&sid, SystemClock.now()).await;
        assert!(
            matches!(session, Ok(None)),
            "{fw:?}: the spent token's session is gone"
        );
    }
}

/// RFC 7009 revocation whose store fails after the token was spent (deleting the session):
/// 503, and the client's retry finishes the job (200, the session gone, the token refused),
/// rather than finding nothing left to do while the session lives. Both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_that_fails_midway_is_finished_by_the_retry() {
    let store = Arc::new(ProbeStore::new());
    let h = serve_broker(provider().await, store.clone(), |c| c, None).await;
    for fw in FRAMEWORKS {
        let (token, sid) = session_login(&h, fw).await;
        store
            .refuse_session_deletes
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let failed = h.post_form(fw, REVOKE, &[("token", &token)]).await;
        store
            .refuse_session_deletes
            .store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(failed.status, 503, "{fw:?}: {}", failed.raw_body);
        let retried = h.post_form(fw, REVOKE, &[("token", &token)]).await;
        assert_eq!(retried.status, 200, "{fw:?}: {}", retried.raw_body);
        let session = store.get_session(&sid, SystemClock.now()).await;
        assert!(matches!(session, Ok(None)), "{fw:?}: the session is gone");
        assert_eq!(refresh(&h, fw, &token).await.error(), Some("invalid_grant"));
    }
}

/// A refresh whose provider rotated its refresh token but whose session write failed once (a
/// database blip): the write is tried again, so the session keeps the provider's new refresh
/// token and the next refresh works at the provider, which would refuse the spent one and end
/// the session. The client, as py-oidc-auth-client does, tries a 503 again with the same token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_write_that_fails_after_the_provider_rotated_is_tried_again() {
    let store = Arc::new(ProbeStore::new());
    let h = serve_broker(provider().await, store.clone(), |c| c, None).await;
    for fw in FRAMEWORKS {
        let (token, _) = session_login(&h, fw).await;
        let rotations = h.idp.refresh_count();
        store
            .refuse_session_updates
            .store(1, std::sync::atomic::Ordering::SeqCst);
        let mut reply = refresh(&h, fw, &token).await;
        if reply.status == 503 {
            reply = refresh(&h, fw, &token).await;
        }
        assert_eq!(reply.status, 200, "{fw:?}: {}", reply.raw_body);
        assert_eq!(h.idp.refresh_count(), rotations + 1, "{fw:?}");
        let successor = field(&reply, "refresh_token").to_owned();
        let next = refresh(&h, fw, &successor).await;
        assert_eq!(next.status, 200, "{fw:?}: {}", next.raw_body);
        assert_eq!(
            h.idp.refresh_count(),
            rotations + 2,
            "{fw:?}: the provider refreshed with its rotated token"
        );
    }
}

/// E3 when the family revocation outlasts the request (a slow database): the reuse answers
/// 503, but the session's provider refresh token is revoked at the provider all the same. The
/// client's retry finds the session already gone, so nothing later could revoke it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_revokes_the_provider_token_even_when_the_family_revocation_is_slow() {
    let store = Arc::new(ProbeStore::new());
    let h = serve_broker(provider().await, store.clone(), |c| c, None).await;
    for fw in FRAMEWORKS {
        let (token, sid) = session_login(&h, fw).await;
        let successor = refresh(&h, fw, &token).await;
        assert_eq!(successor.status, 200, "{fw:?}: {}", successor.raw_body);
        let earlier = h.idp.last_revocation_request();
        store
            .revocation_delay_ms
            .store(6_000, std::sync::atomic::Ordering::SeqCst);
        let reuse = refresh(&h, fw, &token).await;
        store
            .revocation_delay_ms
            .store(0, std::sync::atomic::Ordering::SeqCst);
        assert!(
            matches!(reuse.status, 400 | 503),
            "{fw:?}: {}",
            reuse.raw_body
        );
        let form = next_provider_revocation(&h, earlier.as_ref())
            .await
            .expect("the provider token was revoked");
        assert_eq!(form["token_type_hint"], "refresh_token", "{fw:?}");
        let session = store.get_session(&sid, SystemClock.now()).await;
        assert!(matches!(session, Ok(None)), "{fw:?}: the session is gone");
    }
}

/// A refresh whose client gives up after `patience`.
async fn refresh_giving_up(
    h: &Harness,
    fw: Framework,
    token: &str,
    patience: Duration,
) -> reqwest::Result<reqwest::Response> {
    h.client()
        .post(h.url(fw, TOKEN))
        .form(&[("refresh-token", token)])
        .timeout(patience)
        .send()
        .await
}

/// E1 when the request that started a refresh goes away: the requests waiting for the same
/// refresh, and the one that went away's retry arriving meanwhile, all get the same answer
/// (200 and one successor), with one provider refresh; the successor then refreshes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_outlive_the_request_that_started_them() {
    let b = broker().await;
    let h = &b.h;
    for fw in FRAMEWORKS {
        let first = login(h, fw).await;
        let token = field(&first, "refresh_token").to_owned();
        let before = h.idp.refresh_count();
        h.idp
            .set_fault(Endpoint::Token, Fault::Slow(Duration::from_millis(900)));
        let starter = refresh_giving_up(h, fw, &token, Duration::from_millis(200));
        let waiting = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            refresh(h, fw, &token).await
        };
        let retry = async {
            tokio::time::sleep(Duration::from_millis(350)).await;
            refresh(h, fw, &token).await
        };
        let (gone, waiting, retry) = tokio::join!(starter, waiting, retry);
        h.idp.set_fault(Endpoint::Token, Fault::None);
        assert!(gone.is_err(), "the starter gave up: {gone:?}");
        assert_eq!(
            (waiting.status, retry.status),
            (200, 200),
            "{fw:?}: {} / {}",
            waiting.raw_body,
            retry.raw_body
        );
        let successor = field(&waiting, "refresh_token");
        assert_eq!(successor, field(&retry, "refresh_token"));
        assert_eq!(h.idp.refresh_count(), before + 1, "one provider refresh");
        assert_eq!(refresh(h, fw, successor).await.status, 200);
    }
}

/// A client that gives up on a refresh while the provider's answer is on its way: the
/// rotation still completes, with the provider's rotated refresh token stored.
///
/// axum drops the handler of a client that went away before it answered: nothing was
/// answered, so the retry with the same token answers with the successor, and that successor
/// refreshes at the provider (the provider's token was kept). actix-web lets the handler
/// finish and writes the answer into the closed connection: the rotation answered, and the
/// same token presented again is reuse, as for any answer lost on its way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_abandoned_by_its_client_completes() {
    let b = broker().await;
    let h = &b.h;
    for fw in FRAMEWORKS {
        let first = login(h, fw).await;
        let token = field(&first, "refresh_token").to_owned();
        let before = h.idp.refresh_count();
        h.idp
            .set_fault(Endpoint::Token, Fault::Late(Duration::from_millis(700)));
        let abandoned = refresh_giving_up(h, fw, &token, Duration::from_millis(250)).await;
        assert!(abandoned.is_err(), "the client gave up: {abandoned:?}");
        tokio::time::sleep(Duration::from_millis(900)).await;
        h.idp.set_fault(Endpoint::Token, Fault::None);
        assert_eq!(h.idp.refresh_count(), before + 1);
        let retry = refresh(h, fw, &token).await;
        match fw {
            Framework::Axum => {
                assert_eq!(retry.status, 200, "{}", retry.raw_body);
                let next = refresh(h, fw, field(&retry, "refresh_token")).await;
                assert_eq!(
                    next.status, 200,
                    "the provider's rotated token was kept: {}",
                    next.raw_body
                );
                assert_eq!(h.idp.refresh_count(), before + 2);
            }
            Framework::Actix => {
                assert_eq!(
                    (retry.status, retry.error()),
                    (400, Some("invalid_grant")),
                    "{}",
                    retry.raw_body
                );
            }
        }
    }
}

/// A refresh whose rotation succeeded but which failed before answering (here the store went
/// away before the session was read: 503, and a first retry fails the same way) is answered by
/// the client's next retry with the same token:
/// the successor the failed one would have given, which then works. Once that retry has
/// answered, the token is reuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_failed_after_its_rotation_is_answered_by_the_retry() {
    let store = Arc::new(ProbeStore::new());
    let h = serve_broker(provider().await, store.clone(), |c| c, None).await;
    let refuse = |on: bool| {
        store
            .refuse_reads
            .store(on, std::sync::atomic::Ordering::SeqCst);
    };
    for fw in FRAMEWORKS {
        let first = login(&h, fw).await;
        let token = field(&first, "refresh_token").to_owned();
        refuse(true);
        let failed = refresh(&h, fw, &token).await;
        assert_eq!(failed.status, 503, "{}", failed.raw_body);
        // A retry that fails too (the store still away) answers nothing, and marks nothing.
        let failed_again = refresh(&h, fw, &token).await;
        refuse(false);
        assert_eq!(failed_again.status, 503, "{}", failed_again.raw_body);
        let retry = refresh(&h, fw, &token).await;
        assert_eq!(retry.status, 200, "{}", retry.raw_body);
        let successor = field(&retry, "refresh_token").to_owned();
        assert_eq!(
            h.bearer_both("/me", field(&retry, "access_token"))
                .await
                .status,
            200
        );
        let next = refresh(&h, fw, &successor).await;
        assert_eq!(next.status, 200, "the successor is live: {}", next.raw_body);
        let reuse = refresh(&h, fw, &token).await;
        assert_eq!((reuse.status, reuse.error()), (400, Some("invalid_grant")));
    }
}

/// E5, the server's half (the device client itself is py-oidc-auth-client): after every
/// `slow_down` the gap a poll must keep grows by 5 s, measured from the last poll, with 1 s of
/// grace; a poll that keeps the grown gap is `authorization_pending` and leaves the gap as it
/// is; past `expires_in` the answer is `expired_token`. The first poll after a `slow_down` may
/// keep the gap from before it, as that client sleeps it once more; one too early even for
/// that is slowed down again. The provider is asked only for the polls that keep the pace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e5_every_slow_down_grows_the_polling_gap_by_five_seconds() {
    let clock = ManualClock::new(SystemClock.now());
    let b = broker_with(|c| c, Some(clock.clone())).await;
    let h = &b.h;
    for fw in FRAMEWORKS {
        // The provider does not pace (interval 0, on its real clock); this server then requires
        // the default 5 s, on the manual clock.
        h.idp.set_device_interval(Some(0));
        h.idp.set_device_expires_in(120);
        let start = h.post_form(fw, "/api/auth/v2/device", &[]).await;
        assert_eq!(start.body["interval"], 5, "{}", start.raw_body);
        let code = field(&start, "device_code").to_owned();
        let form = [("device-code", code.as_str())];
        let poll = || h.post_form(fw, TOKEN, &form);
        let provider_polls = || h.idp.hits(Endpoint::Token);

        assert_eq!(poll().await.error(), Some("authorization_pending"));
        // (seconds since the last poll, expected answer): the required gap starts at 5 s and
        // grows by 5 s with every slow_down; a poll up to 1 s early is let through (whole-second
        // clock, client jitter), and the poll right after a slow_down may keep the old gap.
        let steps = [
            (3, "slow_down"),              // gap 5 -> 10
            (2, "slow_down"),              // early even for the old 5: gap 10 -> 15
            (9, "authorization_pending"),  // the old gap, 10, within the grace
            (14, "authorization_pending"), // the grown one, 15, within the grace
            (13, "slow_down"),             // gap 15 -> 20
            (14, "authorization_pending"), // the old gap, 15
            (19, "authorization_pending"), // the grown one, 20
            (18, "slow_down"),             // early for the grown gap, 20
        ];
        for (secs, expected) in steps {
            clock.advance(secs);
            let before = provider_polls();
            let reply = poll().await;
            assert_eq!(
                (reply.status, reply.error()),
                (400, Some(expected)),
                "{secs} s after the last poll: {}",
                reply.raw_body
            );
            let asked = provider_polls() - before;
            assert_eq!(asked, usize::from(expected != "slow_down"), "{expected}");
        }
        clock.advance(120);
        assert_eq!(poll().await.error(), Some("expired_token"));
        h.idp.set_device_expires_in(600);
    }
}

/// A broker on a manual clock whose provider does not pace device polls (interval 0, on its
/// real clock): this server then requires its default 5 s, on the manual clock.
async fn device_broker() -> (ManualClock, Broker) {
    let clock = ManualClock::new(SystemClock.now());
    let b = broker_with(|c| c, Some(clock.clone())).await;
    b.h.idp.set_device_interval(Some(0));
    (clock, b)
}

/// A device authorization started on `fw`: the answer, and its device code.
async fn device_started(h: &Harness, fw: Framework) -> (Reply, String) {
    let start = h.post_form(fw, "/api/auth/v2/device", &[]).await;
    assert_eq!(start.status, 200, "{fw:?}: {}", start.raw_body);
    let code = field(&start, "device_code").to_owned();
    (start, code)
}

/// E5 with a provider that paces too: when it answers `slow_down`, or cannot be asked (503,
/// passed on as `slow_down` so that the client keeps polling), the client's next poll is not
/// passed on before the grown interval has passed. py-oidc-auth-client sleeps the old interval
/// once more: that poll is `authorization_pending` from this server, without a provider call
/// that the provider would take for polling too fast again. The login then completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e5_after_a_providers_slow_down_the_next_poll_waits_for_the_grown_interval() {
    let (clock, b) = device_broker().await;
    let h = &b.h;
    for fw in FRAMEWORKS {
        let start = h.post_form(fw, "/api/auth/v2/device", &[]).await;
        assert_eq!(start.body["interval"], 5, "{}", start.raw_body);
        let code = field(&start, "device_code").to_owned();
        let form = [("device-code", code.as_str())];
        assert_eq!(
            h.post_form(fw, TOKEN, &form).await.error(),
            Some("authorization_pending")
        );
        let slow_down = Fault::Json(400, json!({"error": "slow_down"}));
        for (provider, old, grown) in [(slow_down, 5, 10), (Fault::Status(503), 10, 15)] {
            clock.advance(old);
            h.idp.set_fault(Endpoint::Token, provider.clone());
            let before = h.idp.hits(Endpoint::Token);
            let reply = h.post_form(fw, TOKEN, &form).await;
            assert_eq!(
                reply.error(),
                Some("slow_down"),
                "{provider:?}: {}",
                reply.raw_body
            );
            assert!(h.idp.hits(Endpoint::Token) > before, "{provider:?}: asked");
            h.idp.set_fault(Endpoint::Token, Fault::None);
            // The client sleeps the old interval once more: answered here.
            clock.advance(old);
            let before = h.idp.hits(Endpoint::Token);
            let reply = h.post_form(fw, TOKEN, &form).await;
            assert_eq!(reply.error(), Some("authorization_pending"), "{provider:?}");
            assert_eq!(
                h.idp.hits(Endpoint::Token),
                before,
                "{provider:?}: not asked"
            );
            // Then the grown one: asked again.
            clock.advance(grown);
            let reply = h.post_form(fw, TOKEN, &form).await;
            assert_eq!(reply.error(), Some("authorization_pending"), "{provider:?}");
            assert_eq!(
                h.idp.hits(Endpoint::Token),
                before + 1,
                "{provider:?}: asked"
            );
        }
        // A provider that asks for a minute (429, `Retry-After: 60`): the wait is passed on,
        // and no poll reaches it within that minute, however well the client keeps its
        // (now 20 s) interval.
        clock.advance(15);
        h.idp
            .set_fault(Endpoint::Token, Fault::RetryAfter(429, "60".into()));
        let reply = h.post_form(fw, TOKEN, &form).await;
        h.idp.set_fault(Endpoint::Token, Fault::None);
        assert_eq!(reply.error(), Some("slow_down"), "{}", reply.raw_body);
        assert_eq!(reply.retry_after.as_deref(), Some("60"));
        let before = h.idp.hits(Endpoint::Token);
        for (after, asked) in [(15, 0), (20, 0), (20, 0), (20, 1)] {
            clock.advance(after);
            let reply = h.post_form(fw, TOKEN, &form).await;
            assert_eq!(reply.error(), Some("authorization_pending"), "{after}");
            assert_eq!(h.idp.hits(Endpoint::Token), before + asked, "{after}");
        }
        assert!(h.idp.approve_device(field(&start, "user_code")));
        clock.advance(20);
        let done = h.post_form(fw, TOKEN, &form).await;
        assert_eq!(done.status, 200, "{fw:?}: {}", done.raw_body);
        assert!(done.body["access_token"].is_string(), "{}", done.raw_body);
    }
}

/// E5's pacing when the clock is set back an hour: the next poll is not taken for one made
/// an hour too early (it used to be `slow_down`, and so was every poll until the clock caught
/// up), and a hold after the provider's `slow_down` does not last the extra hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e5_a_clock_set_back_neither_slows_polls_down_nor_holds_them() {
    let (clock, b) = device_broker().await;
    let h = &b.h;
    for fw in FRAMEWORKS {
        let (_, code) = device_started(h, fw).await;
        let form = [("device-code", code.as_str())];
        assert_eq!(
            h.post_form(fw, TOKEN, &form).await.error(),
            Some("authorization_pending")
        );
        clock.advance(-3600);
        let reply = h.post_form(fw, TOKEN, &form).await;
        assert_eq!(reply.error(), Some("authorization_pending"), "{fw:?}");
        // The provider slows the client down; then the clock goes back an hour again.
        clock.advance(5);
        h.idp.set_fault(
            Endpoint::Token,
            Fault::Json(400, json!({"error": "slow_down"})),
        );
        assert_eq!(
            h.post_form(fw, TOKEN, &form).await.error(),
            Some("slow_down")
        );
        h.idp.set_fault(Endpoint::Token, Fault::None);
        clock.advance(-3600);
        let before = h.idp.hits(Endpoint::Token);
        let reply = h.post_form(fw, TOKEN, &form).await;
        assert_eq!(reply.error(), Some("authorization_pending"), "{fw:?}");
        assert_eq!(h.idp.hits(Endpoint::Token), before + 1, "{fw:?}: asked");
        clock.advance(7200);
    }
}

/// E8 and G7: a device poll the provider answers 2xx without an access token (a broken
/// provider, or one that answers `authorization_pending` with 200) is 502 and does not spend the
/// device code, so the login completes at a later poll once the user has approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_poll_answered_without_an_access_token_leaves_the_code_unspent() {
    let (clock, b) = device_broker().await;
    let h = &b.h;
    for fw in FRAMEWORKS {
        let (start, code) = device_started(h, fw).await;
        let form = [("device-code", code.as_str())];
        for answer in [
            json!({}),
            json!({"error": "authorization_pending"}),
            json!({"access_token": "", "token_type": "Bearer"}),
        ] {
            h.idp
                .set_fault(Endpoint::Token, Fault::Json(200, answer.clone()));
            clock.advance(5);
            let reply = h.post_form(fw, TOKEN, &form).await;
            assert_eq!(
                (reply.status, reply.error()),
                (502, Some("server_error")),
                "{fw:?} {answer}: {}",
                reply.raw_body
            );
        }
        h.idp.set_fault(Endpoint::Token, Fault::None);
        assert!(h.idp.approve_device(field(&start, "user_code")));
        clock.advance(5);
        let reply = h.post_form(fw, TOKEN, &form).await;
        assert_eq!(reply.status, 200, "{fw:?}: {}", reply.raw_body);
        assert!(!field(&reply, "refresh_token").is_empty(), "{fw:?}");
    }
}

/// Deliver 6: expired sessions and refresh tokens are purged in the background, at most once
/// an hour, on the back of logins and refreshes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_are_purged() {
    let clock = ManualClock::new(SystemClock.now());
    let store = Arc::new(ProbeStore::new());
    let h = serve_broker(
        provider().await,
        store.clone(),
        |c| c.refresh_token_lifetime(Duration::from_secs(7200)),
        Some(clock.clone()),
    )
    .await;
    let purges = || store.purges.load(std::sync::atomic::Ordering::SeqCst);
    // A browser session (2 h) and a device session (90 days).
    let browser = login(&h, Framework::Axum).await;
    let (_, claims) = jwt(field(&browser, "access_token"));
    let sid = claims["sid"].as_str().unwrap_or_default().to_owned();
    let start = h
        .post_form(Framework::Actix, "/api/auth/v2/device", &[])
        .await;
    assert!(h.idp.approve_device(field(&start, "user_code")));
    let device = h
        .post_form(
            Framework::Actix,
            TOKEN,
            &[("device-code", field(&start, "device_code"))],
        )
        .await;
    assert_eq!(device.status, 200, "{}", device.raw_body);
    // The purge runs in the background: wait for the one the first login started.
    for _ in 0..100 {
        if purges() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after_logins = purges();
    assert_eq!(after_logins, 1, "one purge for the logins within the hour");

    clock.advance(7200 + 3600);
    let refreshed = refresh(&h, Framework::Axum, field(&device, "refresh_token")).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.raw_body);
    for _ in 0..100 {
        if purges() > after_logins {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(purges(), after_logins + 1);
    // The expired browser session is gone even ignoring expiry, and nothing else was expired.
    assert_eq!(store.inner.get_session(&sid, 0).await.ok(), Some(None));
    assert_eq!(store.inner.purge_expired(clock.now()).await.ok(), Some(0));
    let refused = refresh(&h, Framework::Axum, field(&browser, "refresh_token")).await;
    assert_eq!(refused.error(), Some("invalid_grant"));
}

/// F6: a provider refresh token is sealed with its session id as associated data: a ciphertext
/// moved to another session's row does not open, and that session ends (401 `invalid_grant`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f6_a_sealed_token_moved_to_another_session_does_not_open() {
    let b = broker().await;
    let h = &b.h;
    let now = SystemClock.now();
    let first = login(h, Framework::Axum).await;
    let second = login(h, Framework::Actix).await;
    let sid = |reply: &Reply| {
        jwt(field(reply, "access_token")).1["sid"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let (a, c) = (sid(&first), sid(&second));
    let mut victim = b
        .store
        .get_session(&a, now)
        .await
        .ok()
        .flatten()
        .expect("session a");
    let donor = b
        .store
        .get_session(&c, now)
        .await
        .ok()
        .flatten()
        .expect("session c");
    assert_ne!(victim.provider_refresh_token, donor.provider_refresh_token);
    victim.provider_refresh_token = donor.provider_refresh_token.clone();
    b.store.put_session(&victim).await.expect("store");
    let refused = refresh(h, Framework::Axum, field(&first, "refresh_token")).await;
    assert_eq!(
        (refused.status, refused.error()),
        (401, Some("invalid_grant")),
        "{}",
        refused.raw_body
    );
    assert_eq!(b.store.get_session(&a, now).await.ok(), Some(None));
    // The donor's own session is untouched.
    let fine = refresh(h, Framework::Actix, field(&second, "refresh_token")).await;
    assert_eq!(fine.status, 200, "{}", fine.raw_body);
}

/// G7 in broker mode: the provider's token endpoint fails at the exchange, at the server-side
/// `/callback` and at the client's token call: 502/503, no broker session or refresh token is
/// written, and the login's handle is consumed (the same callback afterwards is 400).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g7_a_failed_exchange_leaves_no_broker_session() {
    let b = broker().await;
    let h = &b.h;
    for (fault, expected) in [
        (Fault::Down, 503),
        (Fault::Status(500), 502),
        (Fault::Garbage, 502),
    ] {
        for fw in FRAMEWORKS {
            let server_side = h.url(fw, "/api/auth/v2/callback");
            let (_, at_server) = browser_login(h, fw, &server_side).await;
            let (_, at_client) = browser_login(h, fw, LOOPBACK).await;
            h.idp.set_fault(Endpoint::Token, fault.clone());
            for reply in [
                h.get_url(&at_server).await,
                client_token_call(h, fw, &at_client).await,
            ] {
                assert_eq!(
                    reply.status, expected,
                    "{fault:?} {fw:?}: {}",
                    reply.raw_body
                );
                assert!(reply.body.get("access_token").is_none());
            }
            h.idp.set_fault(Endpoint::Token, Fault::None);
            let store = format!("{:?}", b.store);
            assert!(
                store.contains("sessions: 0, refresh_tokens: 0"),
                "{fault:?} {fw:?}: {store}"
            );
            assert_eq!(h.get_url(&at_server).await.status, 400, "consumed");
            let again = client_token_call(h, fw, &at_client).await;
            assert_eq!(again.status, 400, "consumed");
        }
    }
}
