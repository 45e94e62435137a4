//! The conformance suite every [`Store`] backend passes (feature `testing`).
//!
//! [`run`] exercises every method of the trait with concrete assertions and panics, like a
//! failed `assert!`, at the first difference from the documented semantics. Run it on your own
//! backend from a test:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use oidc_auth::store::{conformance, memory::MemoryStore};
//!
//! // Your backend here; `run` calls `migrate` itself.
//! let store = MemoryStore::new();
//! conformance::run(&store).await;
//! # }
//! ```
//!
//! Each case is also a function of its own (listed below), to pinpoint a failure or to run a
//! single case while writing a backend.
//!
//! To run it against a real server without touching its data, `PostgresScratch` (feature
//! `postgres`) and `MysqlScratch` (feature `mysql`) create a schema or database of its own,
//! `oidc_conf_<random>`, and drop it afterwards.
//!
//! # What the suite requires
//!
//! - Every case uses ids with a random suffix, so leftovers of earlier runs in a shared database
//!   do not matter. Two cases look at *every* row, though:
//!   [`purge_expired_counts_what_it_removes`] deletes everything that expired before its time,
//!   and the first-key cases count every live signing key. So no one else may write to the
//!   store while the suite runs: give it a scratch database or schema, never a production one.
//! - Times are nanoseconds since the Unix epoch (about 1.8 × 10¹⁸), strictly increasing from case
//!   to case and from run to run, so the rows of earlier runs are always "in the past". A
//!   backend must store any `i64`.
//! - Values are large (a 1 MiB sealed token, a 256 KiB userinfo) and hostile: every byte value,
//!   SQL and query-operator syntax, look-alike ids that differ only by case, a trailing space or
//!   Unicode normalization, and NUL characters.
//!
//! # The semantics it checks
//!
//! - A thing with expiry `e` is alive at `now < e` and gone at `now >= e` (sessions, refresh
//!   tokens, one-time markers; keys are removed by [`Store::purge_expired`] at `remove_at` and
//!   count as live for [`Store::insert_first_key`] while `retire_at > now`).
//! - [`Store::rotate_refresh`]: a live token rotates once; a *spent* token presented again is
//!   [`RotateOutcome::Spent`] with its record and changes nothing; unknown, expired or revoked
//!   tokens (spent or not) are [`RotateOutcome::NotFound`]. So of 20 concurrent rotations of one
//!   token exactly one is `Rotated` and the other 19 are `Spent`, and the winner's successor
//!   stays live. [`Store::revoke_family`] ends every token of a family.
//! - Storing a refresh token hash or a key id that is already stored is
//!   [`StoreError::Rejected`]; a rotation into a taken hash is rejected and leaves the old token
//!   live.
//! - Identifiers (session ids, token families, key ids, algorithm names, peer issuers) of up to
//!   [`MAX_IDENTIFIER_BYTES`] bytes are stored, longer ones are [`StoreError::Rejected`];
//!   looking one up answers "absent" (`Ok(None)`), deleting or revoking one does nothing.
//! - A string with a NUL character is stored verbatim or [`StoreError::Rejected`], never
//!   truncated, never [`StoreError::Corrupt`].

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::Poll;

use super::{RefreshRecord, RotateOutcome, Session, Store, StoreError, StoreFuture, StoredKey};

pub use super::MAX_IDENTIFIER_BYTES;

/// The width of the time band each case works in: offsets within a case stay far below it.
const BAND: i64 = 1_000_000;

/// Runs every case, in order, on `store`, starting with [`migrate_is_idempotent`]. Panics at
/// the first failed assertion with a message naming the case and what differed.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = oidc_auth::store::memory::MemoryStore::new();
/// oidc_auth::store::conformance::run(&store).await;
/// # }
/// ```
pub async fn run(store: &dyn Store) {
    macro_rules! cases {
        ($($case:ident),* $(,)?) => {
            $(
                tracing::info!(case = stringify!($case), "store conformance");
                $case(store).await;
            )*
        };
    }
    cases!(
        migrate_is_idempotent,
        sessions_round_trip,
        sessions_expire,
        update_session_changes_only_a_live_session,
        delete_session_removes_its_refresh_tokens,
        refresh_rotation_and_reuse,
        refresh_expiry_and_revocation,
        spent_tokens_stay_on_record_for_a_while,
        refresh_conflicts_are_rejected,
        concurrent_rotations_have_one_winner,
        revocation_during_a_rotation_leaves_no_live_token,
        signing_keys_round_trip,
        first_key_only_without_a_live_key,
        concurrent_first_keys_have_one_winner,
        peer_jwks_round_trip,
        consume_once_is_once_until_expiry,
        purge_expired_counts_what_it_removes,
        hostile_identifiers,
        hostile_strings_round_trip,
        nul_characters_round_trip_or_are_rejected,
    );
}

/// [`Store::migrate`] twice in a row and twice at once succeeds and keeps stored data.
pub async fn migrate_is_idempotent(store: &dyn Store) {
    const CASE: &str = "migrate_is_idempotent";
    ok(CASE, "the first migrate", store.migrate().await);
    let now = fresh_now();
    let session = session(&unique("migrate"), now + 1_000);
    ok(CASE, "put_session", store.put_session(&session).await);
    ok(CASE, "a second migrate", store.migrate().await);
    let (a, b) = tokio::join!(store.migrate(), store.migrate());
    ok(CASE, "a concurrent migrate", a);
    ok(CASE, "a concurrent migrate", b);
    assert_eq!(
        ok(
            CASE,
            "get_session",
            store.get_session(&session.id, now).await
        ),
        Some(session),
        "{CASE}: migrating again lost a session"
    );
}

/// Sessions come back byte for byte: every byte value in the sealed token, Unicode userinfo,
/// empty and large values; `put_session` replaces; look-alike ids stay apart.
pub async fn sessions_round_trip(store: &dyn Store) {
    const CASE: &str = "sessions_round_trip";
    let now = fresh_now();
    let base = unique("session");

    let mut every_byte = session(&format!("{base}-bytes"), now + 1_000);
    every_byte.provider_refresh_token = (0..=255u8).chain([0xff, 0x00, 0x00]).collect();
    every_byte.subject = "sub \u{1F511} Zoë".into();
    every_byte.userinfo =
        "{\"name\":\"Zoë \\u0000\",\"emoji\":\"😀\",\"rtl\":\"\u{202e}abc\",\"bom\":\"\u{feff}\"}"
            .into();
    let empty = Session {
        id: format!("{base}-empty"),
        subject: String::new(),
        provider_refresh_token: Vec::new(),
        userinfo: String::new(),
        expires_at: now + 1_000,
    };
    let mut large = session(&format!("{base}-large"), now + 1_000);
    large.provider_refresh_token = random_vec(1 << 20);
    large.userinfo = "é😀\"'\\".repeat(256 * 1024 / 9 + 1);
    for session in [&every_byte, &empty, &large] {
        ok(CASE, "put_session", store.put_session(session).await);
    }
    for session in [&every_byte, &empty, &large] {
        assert_eq!(
            ok(
                CASE,
                "get_session",
                store.get_session(&session.id, now).await
            )
            .as_ref(),
            Some(session),
            "{CASE}: session {:?} did not come back byte for byte",
            session.id
        );
    }

    // Replacing keeps one session with the new values.
    let mut replaced = every_byte.clone();
    replaced.subject = "another subject".into();
    replaced.provider_refresh_token = vec![0xff; 7];
    replaced.userinfo = "{}".into();
    replaced.expires_at = now + 2_000;
    ok(
        CASE,
        "put_session again",
        store.put_session(&replaced).await,
    );
    assert_eq!(
        ok(
            CASE,
            "get_session",
            store.get_session(&replaced.id, now).await
        ),
        Some(replaced),
        "{CASE}: put_session did not replace the session"
    );

    // Ids that a case-insensitive, space-padding, normalizing or pattern-matching comparison
    // would confuse are distinct.
    let lookalike_ids = [
        format!("{base}-id"),
        format!("{base}-id "),
        format!("{base}-ID"),
        format!("{base}-i%"),
        format!("{base}-i_"),
        format!("{base}-\u{e9}"),
        format!("{base}-e\u{301}"),
    ];
    for (i, id) in lookalike_ids.iter().enumerate() {
        let mut session = session(id, now + 1_000);
        session.subject = format!("subject {i}");
        ok(CASE, "put_session", store.put_session(&session).await);
    }
    for (i, id) in lookalike_ids.iter().enumerate() {
        let found = ok(CASE, "get_session", store.get_session(id, now).await);
        assert_eq!(
            found.map(|s| (s.id, s.subject)),
            Some((id.clone(), format!("subject {i}"))),
            "{CASE}: session id {id:?} found another session"
        );
    }
    for absent in [
        format!("{base}-i"),
        format!("{base}-%"),
        format!("{base}-id%"),
        format!("{base}-e"),
    ] {
        assert_eq!(
            ok(CASE, "get_session", store.get_session(&absent, now).await),
            None,
            "{CASE}: session id {absent:?} was never stored but was found"
        );
    }
}

/// A session is found while `now < expires_at` and hidden from `expires_at` on.
pub async fn sessions_expire(store: &dyn Store) {
    const CASE: &str = "sessions_expire";
    let now = fresh_now();
    let session = session(&unique("expiring"), now + 100);
    ok(CASE, "put_session", store.put_session(&session).await);
    for (at, alive) in [
        (now, true),
        (now + 99, true),
        (now + 100, false),
        (now + 500, false),
    ] {
        let found = ok(
            CASE,
            "get_session",
            store.get_session(&session.id, at).await,
        );
        assert_eq!(
            found.is_some(),
            alive,
            "{CASE}: a session expiring at now+100 looked up at now+{}",
            at - now
        );
    }
    // Reading an expired session does not delete it: it is hidden, not gone.
    assert_eq!(
        ok(
            CASE,
            "get_session",
            store.get_session(&session.id, now).await
        ),
        Some(session),
        "{CASE}: a lookup after expiry deleted the session"
    );
}

/// [`Store::update_session`] replaces the provider refresh token and userinfo of a live
/// session and keeps its subject and expiry; an update to the values already stored still
/// finds the session; a deleted, expired or never stored session is not written.
pub async fn update_session_changes_only_a_live_session(store: &dyn Store) {
    const CASE: &str = "update_session_changes_only_a_live_session";
    let now = fresh_now();
    let stored = session(&unique("update"), now + 100);
    ok(CASE, "put_session", store.put_session(&stored).await);

    let mut update = stored.clone();
    update.provider_refresh_token = vec![0xff, 0x00, 0x42];
    update.userinfo = r#"{"sub":"subject","name":"Zoë 2"}"#.into();
    update.subject = "another subject".into();
    update.expires_at = now + 10_000;
    assert!(
        ok(
            CASE,
            "update_session",
            store.update_session(&update, now).await
        ),
        "{CASE}: a live session was not found"
    );
    let expected = Session {
        provider_refresh_token: update.provider_refresh_token.clone(),
        userinfo: update.userinfo.clone(),
        ..stored.clone()
    };
    assert_eq!(
        ok(
            CASE,
            "get_session",
            store.get_session(&stored.id, now).await
        ),
        Some(expected.clone()),
        "{CASE}: the update did not replace exactly the token and the userinfo"
    );
    assert!(
        ok(
            CASE,
            "the same update again",
            store.update_session(&update, now).await
        ),
        "{CASE}: an update to the values already stored did not find the session"
    );

    assert!(
        !ok(
            CASE,
            "update_session",
            store.update_session(&update, now + 100).await
        ),
        "{CASE}: an expired session was updated"
    );
    ok(
        CASE,
        "delete_session",
        store.delete_session(&stored.id).await,
    );
    assert!(
        !ok(
            CASE,
            "update_session",
            store.update_session(&update, now).await
        ),
        "{CASE}: a deleted session was updated"
    );
    assert_eq!(
        ok(
            CASE,
            "get_session",
            store.get_session(&stored.id, now).await
        ),
        None,
        "{CASE}: updating a deleted session brought it back"
    );
    let never = session(&unique("never-stored"), now + 100);
    assert!(
        !ok(
            CASE,
            "update_session",
            store.update_session(&never, now).await
        ),
        "{CASE}: a session never stored was updated"
    );
    assert_eq!(
        ok(CASE, "get_session", store.get_session(&never.id, now).await),
        None,
        "{CASE}: updating a session never stored created it"
    );
}

/// [`Store::delete_session`] removes the session and every refresh token of it, nothing else,
/// and returns the session as it was (also after an update, and also once expired); deleting an
/// absent session succeeds and returns `None`.
pub async fn delete_session_removes_its_refresh_tokens(store: &dyn Store) {
    const CASE: &str = "delete_session_removes_its_refresh_tokens";
    let now = fresh_now();
    let gone = session(&unique("deleted"), now + 1_000);
    let kept = session(&format!("{}%", unique("kept")), now + 1_000);
    let family = unique("family");
    let tokens = [
        record(&gone.id, &family, now + 1_000),
        record(&gone.id, &unique("family"), now + 1_000),
    ];
    let other = record(&kept.id, &family, now + 1_000);
    ok(CASE, "put_session", store.put_session(&gone).await);
    ok(CASE, "put_session", store.put_session(&kept).await);
    for token in tokens.iter().chain([&other]) {
        ok(CASE, "insert_refresh", store.insert_refresh(token).await);
    }

    let mut updated = gone.clone();
    updated.provider_refresh_token = vec![0x42; 9];
    assert!(ok(
        CASE,
        "update_session",
        store.update_session(&updated, now).await
    ));
    assert_eq!(
        ok(CASE, "delete_session", store.delete_session(&gone.id).await),
        Some(updated),
        "{CASE}: the deletion must return the session as it was"
    );
    assert_eq!(
        ok(CASE, "get_session", store.get_session(&gone.id, now).await),
        None,
        "{CASE}: the deleted session is still found"
    );
    for token in &tokens {
        assert_eq!(
            ok(
                CASE,
                "rotate_refresh",
                store.rotate_refresh(&token.hash, &hash(), now).await
            ),
            RotateOutcome::NotFound,
            "{CASE}: a refresh token of the deleted session still rotates"
        );
    }
    assert_eq!(
        ok(CASE, "get_session", store.get_session(&kept.id, now).await),
        Some(kept.clone()),
        "{CASE}: deleting one session removed another"
    );
    assert_eq!(
        ok(
            CASE,
            "rotate_refresh",
            store.rotate_refresh(&other.hash, &hash(), now).await
        ),
        RotateOutcome::Rotated(other),
        "{CASE}: deleting one session removed another session's refresh token"
    );
    assert_eq!(
        ok(
            CASE,
            "delete_session again",
            store.delete_session(&gone.id).await,
        ),
        None
    );
    assert_eq!(
        ok(
            CASE,
            "delete_session of an unknown id",
            store.delete_session(&unique("never")).await,
        ),
        None
    );
    let expired = session(&unique("expired"), now - 10);
    ok(CASE, "put_session", store.put_session(&expired).await);
    assert_eq!(
        ok(
            CASE,
            "delete_session of an expired session",
            store.delete_session(&expired.id).await,
        ),
        Some(expired),
        "{CASE}: an expired session is returned too, for its provider token"
    );
}

/// A rotation spends the old token, carries its record, and stores a successor that inherits
/// family, session and expiry; a spent token presented again is `Spent` and changes nothing,
/// and revoking its family then ends the family's live token too.
pub async fn refresh_rotation_and_reuse(store: &dyn Store) {
    const CASE: &str = "refresh_rotation_and_reuse";
    let now = fresh_now();
    let first = record(&unique("session"), &unique("family"), now + 1_000);
    ok(CASE, "insert_refresh", store.insert_refresh(&first).await);

    let second = hash();
    assert_eq!(
        ok(
            CASE,
            "rotate_refresh",
            store.rotate_refresh(&first.hash, &second, now).await
        ),
        RotateOutcome::Rotated(first.clone()),
        "{CASE}: a live token must rotate and carry its own record"
    );
    // The successor has the same family, session and expiry (a rotation never extends).
    let third = hash();
    assert_eq!(
        ok(
            CASE,
            "rotate_refresh",
            store.rotate_refresh(&second, &third, now + 1).await
        ),
        RotateOutcome::Rotated(RefreshRecord {
            hash: second,
            ..first.clone()
        }),
        "{CASE}: the successor must inherit family, session_id and expires_at"
    );

    // The spent first token presented again with the successor its rotation stored, as a
    // broker's retry asks for (the successor is derived from the token): spent, carrying its
    // record, and not refused as a conflict of hashes, or reuse would go unnoticed.
    assert_eq!(
        ok(
            CASE,
            "rotate_refresh",
            store.rotate_refresh(&first.hash, &second, now + 2).await
        ),
        RotateOutcome::Spent(first.clone()),
        "{CASE}: a spent token presented again with its own successor must be spent"
    );
    // The spent first token presented again: spent, carrying its record, and nothing changes.
    let after_reuse = hash();
    assert_eq!(
        ok(
            CASE,
            "rotate_refresh",
            store
                .rotate_refresh(&first.hash, &after_reuse, now + 2)
                .await
        ),
        RotateOutcome::Spent(first.clone()),
        "{CASE}: a spent token presented again must be spent, with its record"
    );
    assert_eq!(
        ok(
            CASE,
            "rotate_refresh",
            store.rotate_refresh(&after_reuse, &hash(), now + 3).await
        ),
        RotateOutcome::NotFound,
        "{CASE}: a spent token's rotation must not store the presented successor"
    );
    // Reuse revokes the family: its live third token with it, and the spent ones are then
    // not found.
    ok(
        CASE,
        "revoke_family",
        store.revoke_family(&first.family).await,
    );
    for (token, which) in [(&third, "live"), (&second, "spent"), (&first.hash, "first")] {
        assert_eq!(
            ok(
                CASE,
                "rotate_refresh",
                store.rotate_refresh(token, &hash(), now + 4).await
            ),
            RotateOutcome::NotFound,
            "{CASE}: the {which} token of a revoked family must be not found"
        );
    }
    assert_eq!(
        ok(
            CASE,
            "rotate_refresh",
            store.rotate_refresh(&hash(), &hash(), now).await
        ),
        RotateOutcome::NotFound,
        "{CASE}: an unknown token must be not found"
    );
}

/// A spent token stays on record until [`spent_until`](super::spent_until) of its expiry and
/// the rotation's time: presented again before then it is spent, carrying that time as its
/// expiry; from then on it is not found and a purge deletes it, while its successor keeps the
/// family's expiry. A token expiring sooner keeps its own expiry.
pub async fn spent_tokens_stay_on_record_for_a_while(store: &dyn Store) {
    const CASE: &str = "spent_tokens_stay_on_record_for_a_while";
    let kept = super::SPENT_REFRESH_KEPT;
    let now = fresh_now();
    let first = record(&unique("session"), &unique("family"), now + 100 * kept);
    ok(CASE, "insert_refresh", store.insert_refresh(&first).await);
    let second = hash();
    assert_eq!(
        ok(
            CASE,
            "rotate_refresh",
            store.rotate_refresh(&first.hash, &second, now).await
        ),
        RotateOutcome::Rotated(first.clone()),
        "{CASE}: a rotation must carry the record as it was"
    );
    assert_eq!(
        ok(
            CASE,
            "rotate_refresh",
            store
                .rotate_refresh(&first.hash, &hash(), now + kept - 1)
                .await
        ),
        RotateOutcome::Spent(RefreshRecord {
            expires_at: now + kept,
            ..first.clone()
        }),
        "{CASE}: a spent token must stay on record until SPENT_REFRESH_KEPT after its rotation"
    );
    assert_eq!(
        ok(
            CASE,
            "rotate_refresh",
            store.rotate_refresh(&first.hash, &hash(), now + kept).await
        ),
        RotateOutcome::NotFound,
        "{CASE}: a spent token must not be found once SPENT_REFRESH_KEPT has passed"
    );
    ok(
        CASE,
        "purge_expired of older rows",
        store.purge_expired(now + kept - 1).await,
    );
    assert_eq!(
        ok(CASE, "purge_expired", store.purge_expired(now + kept).await),
        1,
        "{CASE}: the purge must delete the spent token, and only it"
    );
    assert_eq!(
        ok(
            CASE,
            "rotate_refresh",
            store.rotate_refresh(&second, &hash(), now + kept).await
        ),
        RotateOutcome::Rotated(RefreshRecord {
            hash: second,
            ..first.clone()
        }),
        "{CASE}: the successor must keep the family's expiry"
    );

    let soon = record(&unique("session"), &unique("family"), now + 10);
    ok(CASE, "insert_refresh", store.insert_refresh(&soon).await);
    ok(
        CASE,
        "rotate_refresh",
        store.rotate_refresh(&soon.hash, &hash(), now).await,
    );
    assert_eq!(
        ok(
            CASE,
            "rotate_refresh",
            store.rotate_refresh(&soon.hash, &hash(), now + 9).await
        ),
        RotateOutcome::Spent(soon.clone()),
        "{CASE}: a spent token expiring sooner must keep its own expiry"
    );
}

/// Expired tokens (from `expires_at` on) and tokens of a revoked family do not rotate; revoking
/// one family leaves others alone.
pub async fn refresh_expiry_and_revocation(store: &dyn Store) {
    const CASE: &str = "refresh_expiry_and_revocation";
    let now = fresh_now();
    let session_id = unique("session");
    let expiring = record(&session_id, &unique("family"), now + 100);
    ok(
        CASE,
        "insert_refresh",
        store.insert_refresh(&expiring).await,
    );
    for at in [now + 100, now + 101] {
        assert_eq!(
            ok(
                CASE,
                "rotate_refresh",
                store.rotate_refresh(&expiring.hash, &hash(), at).await
            ),
            RotateOutcome::NotFound,
            "{CASE}: a token expiring at now+100 rotated at now+{}",
            at - now
        );
    }
    // The refused attempts changed nothing: just before its expiry it still rotates.
    assert_eq!(
        ok(
            CASE,
            "rotate_refresh",
            store
                .rotate_refresh(&expiring.hash, &hash(), now + 99)
                .await
        ),
        RotateOutcome::Rotated(expiring.clone()),
        "{CASE}: a token must rotate until just before its expiry"
    );
    assert_eq!(
        ok(
            CASE,
            "rotate_refresh",
            store
                .rotate_refresh(&expiring.hash, &hash(), now + 100)
                .await
        ),
        RotateOutcome::NotFound,
        "{CASE}: a spent token past its expiry must be not found, not spent"
    );

    // `%` must not work as a wildcard when revoking.
    let family = format!("{}%", unique("revoked"));
    let revoked = [
        record(&session_id, &family, now + 1_000),
        record(&session_id, &family, now + 1_000),
    ];
    let bystander = record(&session_id, &family.replace('%', "x"), now + 1_000);
    for token in revoked.iter().chain([&bystander]) {
        ok(CASE, "insert_refresh", store.insert_refresh(token).await);
    }
    ok(CASE, "revoke_family", store.revoke_family(&family).await);
    for token in &revoked {
        assert_eq!(
            ok(
                CASE,
                "rotate_refresh",
                store.rotate_refresh(&token.hash, &hash(), now).await
            ),
            RotateOutcome::NotFound,
            "{CASE}: a token of a revoked family rotated"
        );
    }
    assert_eq!(
        ok(
            CASE,
            "rotate_refresh",
            store.rotate_refresh(&bystander.hash, &hash(), now).await
        ),
        RotateOutcome::Rotated(bystander),
        "{CASE}: revoking one family revoked another"
    );
    ok(
        CASE,
        "revoke_family of an unknown family",
        store.revoke_family(&unique("never")).await,
    );
}

/// Storing a hash twice is rejected; a rotation into a taken hash is rejected and leaves the
/// old token live.
pub async fn refresh_conflicts_are_rejected(store: &dyn Store) {
    const CASE: &str = "refresh_conflicts_are_rejected";
    let now = fresh_now();
    let session_id = unique("session");
    let taken = record(&session_id, &unique("family"), now + 1_000);
    let live = record(&session_id, &unique("family"), now + 1_000);
    ok(CASE, "insert_refresh", store.insert_refresh(&taken).await);
    ok(CASE, "insert_refresh", store.insert_refresh(&live).await);
    let duplicate = RefreshRecord {
        family: unique("family"),
        ..taken.clone()
    };
    rejected(
        CASE,
        "insert_refresh of a stored hash",
        store.insert_refresh(&duplicate).await,
    );
    rejected(
        CASE,
        "rotate_refresh into a stored hash",
        store.rotate_refresh(&live.hash, &taken.hash, now).await,
    );
    assert_eq!(
        ok(
            CASE,
            "rotate_refresh",
            store.rotate_refresh(&live.hash, &hash(), now).await
        ),
        RotateOutcome::Rotated(live),
        "{CASE}: a rejected rotation must leave the old token live"
    );
    assert_eq!(
        ok(
            CASE,
            "rotate_refresh",
            store.rotate_refresh(&taken.hash, &hash(), now).await
        ),
        RotateOutcome::Rotated(taken),
        "{CASE}: a rejected duplicate must leave the stored token as it was"
    );
}

/// 20 concurrent rotations of one token: exactly one `Rotated`, 19 `Spent`; the winner's
/// successor is live and no loser's successor is stored.
pub async fn concurrent_rotations_have_one_winner(store: &dyn Store) {
    const CASE: &str = "concurrent_rotations_have_one_winner";
    let now = fresh_now();
    let root = record(&unique("session"), &unique("family"), now + 1_000);
    ok(CASE, "insert_refresh", store.insert_refresh(&root).await);
    let successors: Vec<[u8; 32]> = (0..20).map(|_| hash()).collect();
    let outcomes = join_all(
        successors
            .iter()
            .map(|new| store.rotate_refresh(&root.hash, new, now))
            .collect(),
    )
    .await;
    let mut winner = None;
    let mut spent = 0;
    for (i, outcome) in outcomes.into_iter().enumerate() {
        match ok(CASE, "a concurrent rotate_refresh", outcome) {
            RotateOutcome::Rotated(record) => {
                assert_eq!(record, root, "{CASE}: the winner must carry the old record");
                assert!(
                    winner.is_none(),
                    "{CASE}: two concurrent rotations both won"
                );
                winner = Some(i);
            }
            RotateOutcome::Spent(record) => {
                assert_eq!(record, root, "{CASE}: a loser must carry the spent record");
                spent += 1;
            }
            RotateOutcome::NotFound => {
                panic!("{CASE}: a losing rotation must see the spent token")
            }
        }
    }
    let Some(winner) = winner else {
        panic!("{CASE}: no rotation won");
    };
    assert_eq!(
        spent, 19,
        "{CASE}: every loser must be told the token was spent"
    );
    for (i, successor) in successors.iter().enumerate() {
        let expected = if i == winner {
            RotateOutcome::Rotated(RefreshRecord {
                hash: *successor,
                ..root.clone()
            })
        } else {
            RotateOutcome::NotFound
        };
        assert_eq!(
            ok(
                CASE,
                "rotate_refresh",
                store.rotate_refresh(successor, &hash(), now).await
            ),
            expected,
            "{CASE}: successor {i} (winner: {winner}) must be live for the winner only"
        );
    }
}

/// A family revoked while one of its tokens rotates keeps no live token, whichever comes
/// first: the rotation is refused, or its successor is revoked too. Reuse is found while the
/// legitimate client may be refreshing, and a successor that escaped the revocation would keep
/// the stolen family alive.
pub async fn revocation_during_a_rotation_leaves_no_live_token(store: &dyn Store) {
    const CASE: &str = "revocation_during_a_rotation_leaves_no_live_token";
    let now = fresh_now();
    for round in 0..40 {
        let family = unique("family");
        let live = record(&unique("session"), &family, now + 1_000);
        ok(CASE, "insert_refresh", store.insert_refresh(&live).await);
        let successor = hash();
        let rotation: StoreFuture<'_, Option<RotateOutcome>> = Box::pin(async {
            store
                .rotate_refresh(&live.hash, &successor, now)
                .await
                .map(Some)
        });
        let revocation: StoreFuture<'_, Option<RotateOutcome>> =
            Box::pin(async { store.revoke_family(&family).await.map(|()| None) });
        // Alternate which one is polled first.
        let both = if round % 2 == 0 {
            vec![rotation, revocation]
        } else {
            vec![revocation, rotation]
        };
        for result in join_all(both).await {
            ok(CASE, "a concurrent rotation or revocation", result);
        }
        for (token, which) in [(&successor, "successor"), (&live.hash, "old token")] {
            assert_eq!(
                ok(
                    CASE,
                    "rotate_refresh",
                    store.rotate_refresh(token, &hash(), now).await
                ),
                RotateOutcome::NotFound,
                "{CASE}: round {round}: the {which} outlived its family's revocation"
            );
        }
    }
}

/// Keys round trip through [`Store::insert_key`] and [`Store::list_keys`]; a duplicate kid is
/// rejected; [`Store::delete_key`] deletes exactly the named key.
pub async fn signing_keys_round_trip(store: &dyn Store) {
    const CASE: &str = "signing_keys_round_trip";
    let now = fresh_now();
    let base = unique("kid");
    let mut plain = key(&base, now);
    plain.private_key = (0..=255u8).rev().chain([0, 0xff]).collect();
    let mut percent = key(&format!("{base}%"), now + 1);
    percent.alg = "EdDSA".into();
    percent.public_jwk = r#"{"kty":"OKP","crv":"Ed25519","x":"ü'\"--"}"#.into();
    percent.private_key = Vec::new();
    ok(CASE, "insert_key", store.insert_key(&plain).await);
    ok(CASE, "insert_key", store.insert_key(&percent).await);
    assert_eq!(
        mine(ok(CASE, "list_keys", store.list_keys().await), &base),
        vec![plain.clone(), percent.clone()],
        "{CASE}: keys must come back byte for byte"
    );

    let duplicate = key(&base, now + 5);
    rejected(
        CASE,
        "insert_key of a stored kid",
        store.insert_key(&duplicate).await,
    );
    ok(
        CASE,
        "delete_key of a look-alike",
        store.delete_key(&format!("{base}_")).await,
    );
    ok(CASE, "delete_key", store.delete_key(&base).await);
    assert_eq!(
        mine(ok(CASE, "list_keys", store.list_keys().await), &base),
        vec![percent],
        "{CASE}: delete_key must delete exactly the named key"
    );
    ok(CASE, "delete_key again", store.delete_key(&base).await);
    ok(
        CASE,
        "delete_key of an unknown kid",
        store.delete_key(&unique("never")).await,
    );
}

/// [`Store::insert_first_key`] inserts only while no key has `retire_at > now`.
pub async fn first_key_only_without_a_live_key(store: &dyn Store) {
    const CASE: &str = "first_key_only_without_a_live_key";
    let now = fresh_now();
    let base = unique("first");
    let mut first = key(&format!("{base}-1"), now);
    first.retire_at = now + 100;
    let mut second = key(&format!("{base}-2"), now);
    second.retire_at = now + 200;
    assert!(
        ok(
            CASE,
            "insert_first_key",
            store.insert_first_key(&first, now).await
        ),
        "{CASE}: the first key must be inserted when no key is live"
    );
    for at in [now, now + 99] {
        assert!(
            !ok(
                CASE,
                "insert_first_key",
                store.insert_first_key(&second, at).await
            ),
            "{CASE}: a key retiring at now+100 must block a first key at now+{}",
            at - now
        );
    }
    assert!(
        ok(
            CASE,
            "insert_first_key",
            store.insert_first_key(&second, now + 100).await
        ),
        "{CASE}: a retired key (retire_at == now) must not block a first key"
    );
    assert_eq!(
        mine(ok(CASE, "list_keys", store.list_keys().await), &base),
        vec![first, second],
        "{CASE}: both keys must be stored, byte for byte"
    );
}

/// 8 concurrent [`Store::insert_first_key`] calls: exactly one inserts, one key is live.
pub async fn concurrent_first_keys_have_one_winner(store: &dyn Store) {
    const CASE: &str = "concurrent_first_keys_have_one_winner";
    let now = fresh_now();
    let base = unique("racer");
    let keys: Vec<StoredKey> = (0..8).map(|i| key(&format!("{base}-{i}"), now)).collect();
    let inserted = join_all(
        keys.iter()
            .map(|key| store.insert_first_key(key, now))
            .collect(),
    )
    .await;
    let winners: Vec<&StoredKey> = keys
        .iter()
        .zip(inserted)
        .filter_map(|(key, inserted)| {
            ok(CASE, "a concurrent insert_first_key", inserted).then_some(key)
        })
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "{CASE}: exactly one first key must be inserted"
    );
    let live: Vec<StoredKey> = ok(CASE, "list_keys", store.list_keys().await)
        .into_iter()
        .filter(|key| key.retire_at > now)
        .collect();
    assert_eq!(
        live.iter().collect::<Vec<_>>(),
        winners,
        "{CASE}: the one live key must be the winner's"
    );
}

/// Peer JWKS: absent, stored, overwritten by a later fetch but not by an earlier one (two
/// instances' writes landing out of order); issuers that differ by a pattern character stay
/// apart.
pub async fn peer_jwks_round_trip(store: &dyn Store) {
    const CASE: &str = "peer_jwks_round_trip";
    let now = fresh_now();
    let issuer = format!("https://{}.example/realms/a%", unique("peer"));
    let lookalike = issuer.replace('%', "_");
    let first = r#"{"keys":[{"kty":"RSA","kid":"ü'\"; DROP TABLE x;--","n":"AQAB"}]}"#;
    let second = r#"{"keys":[]}"#;
    assert_eq!(
        ok(CASE, "get_peer_jwks", store.get_peer_jwks(&issuer).await),
        None,
        "{CASE}: an unknown issuer must be absent"
    );
    ok(
        CASE,
        "put_peer_jwks",
        store.put_peer_jwks(&issuer, first, now).await,
    );
    assert_eq!(
        ok(CASE, "get_peer_jwks", store.get_peer_jwks(&issuer).await),
        Some((first.to_owned(), now)),
        "{CASE}: the JWKS must come back verbatim"
    );
    ok(
        CASE,
        "put_peer_jwks again",
        store.put_peer_jwks(&issuer, second, now + 5).await,
    );
    assert_eq!(
        ok(CASE, "get_peer_jwks", store.get_peer_jwks(&issuer).await),
        Some((second.to_owned(), now + 5)),
        "{CASE}: put_peer_jwks must overwrite"
    );
    ok(
        CASE,
        "put_peer_jwks fetched earlier",
        store.put_peer_jwks(&issuer, first, now + 2).await,
    );
    assert_eq!(
        ok(CASE, "get_peer_jwks", store.get_peer_jwks(&issuer).await),
        Some((second.to_owned(), now + 5)),
        "{CASE}: a set fetched earlier than the stored one must not replace it"
    );
    ok(
        CASE,
        "put_peer_jwks fetched as late",
        store.put_peer_jwks(&issuer, first, now + 5).await,
    );
    assert_eq!(
        ok(CASE, "get_peer_jwks", store.get_peer_jwks(&issuer).await),
        Some((first.to_owned(), now + 5)),
        "{CASE}: a set fetched in the same second must replace the stored one"
    );
    let ahead = now + 6 + crate::store::PEER_JWKS_AHEAD_SECS + 1;
    ok(
        CASE,
        "put_peer_jwks dated far ahead",
        store.put_peer_jwks(&issuer, second, ahead).await,
    );
    ok(
        CASE,
        "put_peer_jwks after a clock set back",
        store.put_peer_jwks(&issuer, first, now + 6).await,
    );
    assert_eq!(
        ok(CASE, "get_peer_jwks", store.get_peer_jwks(&issuer).await),
        Some((first.to_owned(), now + 6)),
        "{CASE}: a set dated further ahead than the longest leeway must not be kept over a fetch"
    );
    assert_eq!(
        ok(CASE, "get_peer_jwks", store.get_peer_jwks(&lookalike).await),
        None,
        "{CASE}: a look-alike issuer must be absent"
    );
}

/// [`Store::consume_once`]: true once, false while the marker lives (a refused call does not
/// extend it), true again from its expiry on; of 10 concurrent calls exactly one is true; and
/// [`Store::is_consumed`] tells a live marker from an absent or expired one without taking it.
pub async fn consume_once_is_once_until_expiry(store: &dyn Store) {
    const CASE: &str = "consume_once_is_once_until_expiry";
    let now = fresh_now();
    let marker = hash();
    for (expires_at, at, expected) in [
        (now + 100, now, true),
        (now + 100, now + 1, false),
        (now + 500, now + 99, false),
        (now + 300, now + 100, true),
        (now + 400, now + 299, false),
        (now + 400, now + 300, true),
    ] {
        assert_eq!(
            ok(
                CASE,
                "consume_once",
                store.consume_once(&marker, expires_at, at).await
            ),
            expected,
            "{CASE}: consume_once(expires_at: now+{}, now: now+{})",
            expires_at - now,
            at - now
        );
    }
    let other = hash();
    assert!(
        ok(
            CASE,
            "consume_once",
            store.consume_once(&other, now + 100, now).await
        ),
        "{CASE}: markers must be independent"
    );

    // is_consumed reads: false before the marker, true while it lives, false from its expiry
    // on; asking changes nothing.
    let read = hash();
    for _ in 0..2 {
        assert!(
            !ok(CASE, "is_consumed", store.is_consumed(&read, now).await),
            "{CASE}: is_consumed of an absent marker"
        );
    }
    assert!(
        ok(
            CASE,
            "consume_once",
            store.consume_once(&read, now + 100, now).await
        ),
        "{CASE}: is_consumed must not take the marker"
    );
    for (at, expected) in [(now, true), (now + 99, true), (now + 100, false)] {
        assert_eq!(
            ok(CASE, "is_consumed", store.is_consumed(&read, at).await),
            expected,
            "{CASE}: is_consumed at now+{} of a marker until now+100",
            at - now
        );
    }

    let contested = hash();
    let firsts = join_all(
        (0..10)
            .map(|_| store.consume_once(&contested, now + 100, now))
            .collect(),
    )
    .await
    .into_iter()
    .filter(|result| match result {
        Ok(first) => *first,
        Err(error) => panic!("{CASE}: a concurrent consume_once failed: {error}"),
    })
    .count();
    assert_eq!(
        firsts, 1,
        "{CASE}: exactly one concurrent consume_once must be first"
    );
}

/// [`Store::purge_expired`] removes exactly the rows expired at `now` (sessions, refresh
/// tokens, markers at their expiry; keys at `remove_at`) and counts them.
///
/// It first purges everything that expired before the case began, so it must not run against
/// a store someone else uses.
pub async fn purge_expired_counts_what_it_removes(store: &dyn Store) {
    const CASE: &str = "purge_expired_counts_what_it_removes";
    let now = fresh_now();
    ok(
        CASE,
        "purge_expired of older rows",
        store.purge_expired(now).await,
    );
    let cut = now + 100;
    let base = unique("purge");

    let expired_sessions = [
        session(&format!("{base}-s1"), now + 50),
        session(&format!("{base}-s2"), cut),
    ];
    let live_session = session(&format!("{base}-s3"), cut + 1);
    for session in expired_sessions.iter().chain([&live_session]) {
        ok(CASE, "put_session", store.put_session(session).await);
    }
    let expired_token = record(&live_session.id, &unique("family"), cut);
    let live_token = record(&live_session.id, &unique("family"), now + 1_000);
    for token in [&expired_token, &live_token] {
        ok(CASE, "insert_refresh", store.insert_refresh(token).await);
    }
    let mut removed_key = key(&format!("{base}-k1"), now);
    removed_key.retire_at = now + 50;
    removed_key.remove_at = cut;
    let kept_key = key(&format!("{base}-k2"), now);
    for key in [&removed_key, &kept_key] {
        ok(CASE, "insert_key", store.insert_key(key).await);
    }
    let (expired_marker, live_marker) = (hash(), hash());
    assert!(ok(
        CASE,
        "consume_once",
        store.consume_once(&expired_marker, now + 60, now).await
    ));
    assert!(ok(
        CASE,
        "consume_once",
        store.consume_once(&live_marker, now + 1_000, now).await
    ));

    // More than two of the batches a backend may purge in: a purge goes on until none is left.
    let backlog = 2 * super::PURGE_BATCH + 1;
    for _ in 0..backlog {
        assert!(ok(
            CASE,
            "consume_once",
            store.consume_once(&hash(), now + 70, now).await
        ));
    }

    assert_eq!(
        ok(CASE, "purge_expired", store.purge_expired(cut).await),
        2 + 1 + 1 + 1 + backlog,
        "{CASE}: two sessions, one refresh token, one key and {} markers expired",
        1 + backlog
    );
    assert_eq!(
        ok(CASE, "purge_expired again", store.purge_expired(cut).await),
        0,
        "{CASE}: a second purge at the same time must find nothing"
    );

    // Gone for good, even looked up at a time they were alive; the rest untouched.
    for session in &expired_sessions {
        assert_eq!(
            ok(
                CASE,
                "get_session",
                store.get_session(&session.id, now).await
            ),
            None,
            "{CASE}: a purged session is still found"
        );
    }
    assert_eq!(
        ok(
            CASE,
            "get_session",
            store.get_session(&live_session.id, now).await
        ),
        Some(live_session),
        "{CASE}: purge removed a live session"
    );
    assert_eq!(
        ok(
            CASE,
            "rotate_refresh",
            store
                .rotate_refresh(&expired_token.hash, &hash(), now)
                .await
        ),
        RotateOutcome::NotFound,
        "{CASE}: a purged refresh token still rotates"
    );
    assert_eq!(
        ok(
            CASE,
            "rotate_refresh",
            store.rotate_refresh(&live_token.hash, &hash(), now).await
        ),
        RotateOutcome::Rotated(live_token),
        "{CASE}: purge removed a live refresh token"
    );
    assert_eq!(
        mine(ok(CASE, "list_keys", store.list_keys().await), &base),
        vec![kept_key],
        "{CASE}: purge must remove exactly the key past remove_at"
    );
    assert!(
        ok(
            CASE,
            "consume_once",
            store.consume_once(&expired_marker, now + 60, now).await
        ),
        "{CASE}: a purged marker must be consumable again"
    );
    assert!(
        !ok(
            CASE,
            "consume_once",
            store.consume_once(&live_marker, now + 1_000, now).await
        ),
        "{CASE}: purge removed a live marker"
    );
}

/// Identifiers of [`MAX_IDENTIFIER_BYTES`] bytes are stored in every position; one byte more
/// (counted in bytes, not characters) is rejected by every write and absent to every read.
pub async fn hostile_identifiers(store: &dyn Store) {
    const CASE: &str = "hostile_identifiers";
    let now = fresh_now();
    let base = unique("long");
    let longest_ascii = pad(&base, 'k', MAX_IDENTIFIER_BYTES);
    let longest_wide = pad(&base, 'é', MAX_IDENTIFIER_BYTES);
    let too_long_ascii = format!("{longest_ascii}k");
    let too_long_wide = format!("{}é", pad(&base, 'é', MAX_IDENTIFIER_BYTES - 1));
    assert_eq!(longest_wide.len(), MAX_IDENTIFIER_BYTES);
    assert_eq!(too_long_wide.len(), MAX_IDENTIFIER_BYTES + 1);

    for id in [&longest_ascii, &longest_wide] {
        let session = session(id, now + 1_000);
        ok(
            CASE,
            "put_session of the longest id",
            store.put_session(&session).await,
        );
        assert_eq!(
            ok(CASE, "get_session", store.get_session(id, now).await),
            Some(session),
            "{CASE}: a session with a {MAX_IDENTIFIER_BYTES}-byte id must round trip"
        );
        let token = record(id, id, now + 1_000);
        ok(
            CASE,
            "insert_refresh of the longest ids",
            store.insert_refresh(&token).await,
        );
        assert_eq!(
            ok(
                CASE,
                "rotate_refresh",
                store.rotate_refresh(&token.hash, &hash(), now).await
            ),
            RotateOutcome::Rotated(token),
            "{CASE}: a refresh token with {MAX_IDENTIFIER_BYTES}-byte ids must round trip"
        );
        let mut key = key(id, now);
        key.alg = id.clone();
        ok(
            CASE,
            "insert_key of the longest ids",
            store.insert_key(&key).await,
        );
        assert_eq!(
            mine(ok(CASE, "list_keys", store.list_keys().await), id),
            vec![key],
            "{CASE}: a key with {MAX_IDENTIFIER_BYTES}-byte kid and alg must round trip"
        );
        ok(
            CASE,
            "put_peer_jwks of the longest issuer",
            store.put_peer_jwks(id, "{}", now).await,
        );
        assert_eq!(
            ok(CASE, "get_peer_jwks", store.get_peer_jwks(id).await),
            Some(("{}".to_owned(), now)),
            "{CASE}: a {MAX_IDENTIFIER_BYTES}-byte issuer must round trip"
        );
    }

    let keys_before = ok(CASE, "list_keys", store.list_keys().await).len();
    for id in [&too_long_ascii, &too_long_wide] {
        let what = |method: &str| format!("{method} with a {}-byte identifier", id.len());
        rejected(
            CASE,
            &what("put_session"),
            store.put_session(&session(id, now + 1_000)).await,
        );
        let token = record(&base, id, now + 1_000);
        rejected(
            CASE,
            &what("insert_refresh (family)"),
            store.insert_refresh(&token).await,
        );
        assert_eq!(
            ok(
                CASE,
                "rotate_refresh",
                store.rotate_refresh(&token.hash, &hash(), now).await
            ),
            RotateOutcome::NotFound,
            "{CASE}: a rejected refresh token was stored"
        );
        let token = record(id, &base, now + 1_000);
        rejected(
            CASE,
            &what("insert_refresh (session_id)"),
            store.insert_refresh(&token).await,
        );
        rejected(
            CASE,
            &what("insert_key (kid)"),
            store.insert_key(&key(id, now)).await,
        );
        let mut long_alg = key(&format!("{base}-alg"), now);
        long_alg.alg = id.clone();
        rejected(
            CASE,
            &what("insert_key (alg)"),
            store.insert_key(&long_alg).await,
        );
        rejected(
            CASE,
            &what("insert_first_key (kid)"),
            store.insert_first_key(&key(id, now), now).await,
        );
        rejected(
            CASE,
            &what("put_peer_jwks"),
            store.put_peer_jwks(id, "{}", now).await,
        );

        // Reads find nothing; deletes do nothing; neither fails.
        assert_eq!(
            ok(CASE, &what("get_session"), store.get_session(id, now).await),
            None
        );
        assert_eq!(
            ok(CASE, &what("get_peer_jwks"), store.get_peer_jwks(id).await),
            None
        );
        ok(
            CASE,
            &what("delete_session"),
            store.delete_session(id).await,
        );
        ok(CASE, &what("revoke_family"), store.revoke_family(id).await);
        ok(CASE, &what("delete_key"), store.delete_key(id).await);
    }
    assert_eq!(
        ok(CASE, "list_keys", store.list_keys().await).len(),
        keys_before,
        "{CASE}: a rejected key was stored"
    );
}

/// SQL, query-operator and control syntax in every string field round trips verbatim and
/// harms nothing.
pub async fn hostile_strings_round_trip(store: &dyn Store) {
    const CASE: &str = "hostile_strings_round_trip";
    let now = fresh_now();
    let base = unique("hostile");
    let values = [
        "'; DROP TABLE oidc_auth_sessions;--",
        "\" OR \"1\"=\"1",
        "' OR '1'='1",
        "\\'; SELECT 1; --",
        "%",
        "_",
        "$1 ? :name @p1",
        r#"{"$gt": ""}"#,
        "$where",
        "a.b.c",
        "😀 \u{202e}evil\u{202c} \u{feff}",
        "line\nbreak\r\ttab",
        " padded ",
        "\u{7f}\u{1}\u{1b}[0m",
    ];
    for (i, value) in values.iter().enumerate() {
        let id = format!("{base}-{i}-{value}");
        let mut session = session(&id, now + 1_000);
        session.subject = (*value).to_owned();
        session.userinfo = (*value).to_owned();
        session.provider_refresh_token = value.as_bytes().to_vec();
        ok(CASE, "put_session", store.put_session(&session).await);
        assert_eq!(
            ok(CASE, "get_session", store.get_session(&id, now).await),
            Some(session),
            "{CASE}: a session with {value:?} must round trip"
        );

        let token = record(&id, &id, now + 1_000);
        ok(CASE, "insert_refresh", store.insert_refresh(&token).await);
        assert_eq!(
            ok(
                CASE,
                "rotate_refresh",
                store.rotate_refresh(&token.hash, &hash(), now).await
            ),
            RotateOutcome::Rotated(token),
            "{CASE}: a refresh token with {value:?} must round trip"
        );

        let mut key = key(&id, now);
        key.alg = (*value).to_owned();
        key.public_jwk = (*value).to_owned();
        ok(CASE, "insert_key", store.insert_key(&key).await);
        assert_eq!(
            mine(ok(CASE, "list_keys", store.list_keys().await), &id),
            vec![key],
            "{CASE}: a key with {value:?} must round trip"
        );

        ok(
            CASE,
            "put_peer_jwks",
            store.put_peer_jwks(&id, value, now).await,
        );
        assert_eq!(
            ok(CASE, "get_peer_jwks", store.get_peer_jwks(&id).await),
            Some(((*value).to_owned(), now)),
            "{CASE}: a peer JWKS with {value:?} must round trip"
        );
    }
    // The store still works (no table was dropped, nothing else was touched).
    let probe = session(&format!("{base}-probe"), now + 1_000);
    ok(
        CASE,
        "put_session after the hostile values",
        store.put_session(&probe).await,
    );
    assert_eq!(
        ok(CASE, "get_session", store.get_session(&probe.id, now).await),
        Some(probe)
    );
}

/// A NUL character in any string field is stored verbatim (and never truncated) or rejected,
/// never [`StoreError::Corrupt`], and a rejected value is absent.
pub async fn nul_characters_round_trip_or_are_rejected(store: &dyn Store) {
    const CASE: &str = "nul_characters_round_trip_or_are_rejected";
    let now = fresh_now();
    let base = unique("nul");
    let with_nul = |field: &str| format!("{base}-{field}\0after");

    // Session id, subject, userinfo.
    let mut sessions = vec![session(&with_nul("id"), now + 1_000)];
    let mut subject = session(&format!("{base}-subject"), now + 1_000);
    subject.subject = "a\0b".into();
    sessions.push(subject);
    let mut userinfo = session(&format!("{base}-userinfo"), now + 1_000);
    userinfo.userinfo = "{\"a\":\"\0\"}".into();
    sessions.push(userinfo);
    for session in sessions {
        let stored = stored_or_rejected(CASE, "put_session", store.put_session(&session).await);
        let found = ok(
            CASE,
            "get_session",
            store.get_session(&session.id, now).await,
        );
        assert_eq!(
            found,
            stored.then_some(session),
            "{CASE}: a session with a NUL must round trip when accepted, be absent when rejected"
        );
    }
    assert_eq!(
        ok(
            CASE,
            "get_session",
            store.get_session(&format!("{base}-id"), now).await
        ),
        None,
        "{CASE}: a session id must not be cut at its NUL"
    );

    // Refresh token family and session id.
    for token in [
        record(&base, &with_nul("family"), now + 1_000),
        record(&with_nul("session"), &base, now + 1_000),
    ] {
        let stored = stored_or_rejected(CASE, "insert_refresh", store.insert_refresh(&token).await);
        let expected = if stored {
            RotateOutcome::Rotated(token.clone())
        } else {
            RotateOutcome::NotFound
        };
        assert_eq!(
            ok(
                CASE,
                "rotate_refresh",
                store.rotate_refresh(&token.hash, &hash(), now).await
            ),
            expected,
            "{CASE}: a refresh token with a NUL must round trip when accepted"
        );
    }

    // Key id, algorithm, public JWK.
    let mut keys = vec![key(&with_nul("kid"), now)];
    let mut alg = key(&format!("{base}-alg"), now);
    alg.alg = "RS\u{0}256".into();
    keys.push(alg);
    let mut jwk = key(&format!("{base}-jwk"), now);
    jwk.public_jwk = "{\"kty\":\"\0\"}".into();
    keys.push(jwk);
    for key in keys {
        let stored = stored_or_rejected(CASE, "insert_key", store.insert_key(&key).await);
        let found = ok(CASE, "list_keys", store.list_keys().await)
            .into_iter()
            .find(|k| k.kid == key.kid);
        assert_eq!(
            found,
            stored.then_some(key),
            "{CASE}: a key with a NUL must round trip when accepted, be absent when rejected"
        );
    }

    // Peer issuer and JWKS.
    for (issuer, jwks) in [
        (with_nul("issuer"), "{}".to_owned()),
        (format!("{base}-jwks"), "{\"keys\":\"\0\"}".to_owned()),
    ] {
        let stored = stored_or_rejected(
            CASE,
            "put_peer_jwks",
            store.put_peer_jwks(&issuer, &jwks, now).await,
        );
        assert_eq!(
            ok(CASE, "get_peer_jwks", store.get_peer_jwks(&issuer).await),
            stored.then_some((jwks, now)),
            "{CASE}: a peer JWKS with a NUL must round trip when accepted"
        );
    }
}

/// A schema of its own on a PostgreSQL server, `oidc_conf_<random>`, for running the suite (or
/// any test) in isolation; [`PostgresScratch::remove`] drops it with everything in it.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), oidc_auth::store::StoreError> {
/// use oidc_auth::store::{Store, conformance::{self, PostgresScratch}, postgres::PostgresStore};
///
/// let scratch = PostgresScratch::create("postgres://postgres@127.0.0.1:5432/test").await?;
/// let store = PostgresStore::connect(scratch.url()).await?;
/// conformance::run(&store).await;
/// store.pool().close().await;
/// scratch.remove().await?;
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "postgres")]
#[derive(Debug)]
pub struct PostgresScratch {
    admin: super::postgres::PostgresStore,
    schema: String,
    url: String,
}

#[cfg(feature = "postgres")]
impl PostgresScratch {
    /// Creates the schema on the server `url` names.
    pub async fn create(url: &str) -> Result<Self, StoreError> {
        let admin = super::postgres::PostgresStore::connect(url).await?;
        let schema = format!("oidc_conf_{}", hex(&random::<8>()));
        sqlx::raw_sql(&format!("CREATE SCHEMA {schema}"))
            .execute(admin.pool())
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("creating the scratch schema failed: {e}"))
            })?;
        let mut scoped = url::Url::parse(url)
            .map_err(|_| StoreError::Rejected("the PostgreSQL URL does not parse".into()))?;
        // Every connection made from this URL starts with the scratch schema as search path.
        scoped
            .query_pairs_mut()
            .append_pair("options", &format!("-csearch_path={schema}"));
        Ok(Self {
            admin,
            schema,
            url: scoped.into(),
        })
    }

    /// The server URL with `options=-csearch_path=<schema>`: every connection made from it
    /// works in the scratch schema.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema's name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Drops the schema and everything in it. Close the pools working in it first.
    pub async fn remove(self) -> Result<(), StoreError> {
        let dropped = sqlx::raw_sql(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .execute(self.admin.pool())
            .await;
        self.admin.pool().close().await;
        dropped.map(drop).map_err(|e| {
            StoreError::Unavailable(format!("dropping the scratch schema failed: {e}"))
        })
    }
}

/// A database of its own on a MySQL or MariaDB server, `oidc_conf_<random>`, for running the
/// suite (or any test) in isolation; [`MysqlScratch::remove`] drops it.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), oidc_auth::store::StoreError> {
/// use oidc_auth::store::{conformance::{self, MysqlScratch}, mysql::MysqlStore};
///
/// let scratch = MysqlScratch::create("mysql://root@127.0.0.1:3306/test").await?;
/// let store = MysqlStore::connect(scratch.url()).await?;
/// conformance::run(&store).await;
/// drop(store);
/// scratch.remove().await?;
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "mysql")]
#[derive(Debug)]
pub struct MysqlScratch {
    admin: mysql_async::Pool,
    database: String,
    url: String,
}

#[cfg(feature = "mysql")]
impl MysqlScratch {
    /// Creates the database on the server `url` (`mysql://` or `mariadb://`) names.
    pub async fn create(url: &str) -> Result<Self, StoreError> {
        let mut scoped = url::Url::parse(url)
            .map_err(|_| StoreError::Rejected("the MySQL URL does not parse".into()))?;
        if scoped.scheme() == "mariadb" {
            scoped
                .set_scheme("mysql")
                .map_err(|()| StoreError::Rejected("the MySQL URL does not parse".into()))?;
        }
        let opts = mysql_async::Opts::from_url(scoped.as_str())
            .map_err(|_| StoreError::Rejected("the MySQL URL is invalid".into()))?;
        let admin = mysql_async::Pool::new(opts);
        let database = format!("oidc_conf_{}", hex(&random::<8>()));
        mysql_statement(
            &admin,
            format!("CREATE DATABASE `{database}` CHARACTER SET utf8mb4"),
        )
        .await?;
        scoped.set_path(&format!("/{database}"));
        Ok(Self {
            admin,
            database,
            url: scoped.into(),
        })
    }

    /// The server URL naming the scratch database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Drops the database and everything in it.
    pub async fn remove(self) -> Result<(), StoreError> {
        let dropped =
            mysql_statement(&self.admin, format!("DROP DATABASE `{}`", self.database)).await;
        let _ = self.admin.disconnect().await;
        dropped
    }
}

/// Runs one administrative statement, within ten seconds.
#[cfg(feature = "mysql")]
async fn mysql_statement(pool: &mysql_async::Pool, statement: String) -> Result<(), StoreError> {
    use mysql_async::prelude::Queryable as _;
    let run = async {
        let mut conn = pool.get_conn().await?;
        conn.query_drop(statement).await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(10), run).await {
        Ok(Ok(())) => Ok(()),
        // Only the server's own message: a driver error may repeat the URL.
        Ok(Err(mysql_async::Error::Server(error))) => Err(StoreError::Unavailable(format!(
            "the scratch database statement failed: {} ({})",
            error.message, error.code
        ))),
        Ok(Err(_)) => Err(StoreError::Unavailable(
            "the MySQL server cannot be reached".into(),
        )),
        Err(_) => Err(StoreError::Unavailable(
            "the MySQL server did not answer within 10 s".into(),
        )),
    }
}

/// The value of a successful call; a failure panics naming the case and the call.
#[track_caller]
fn ok<T>(case: &str, call: &str, result: Result<T, StoreError>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{case}: {call} failed: {error}"),
    }
}

/// Asserts that a call was [`StoreError::Rejected`].
#[track_caller]
fn rejected<T: std::fmt::Debug>(case: &str, call: &str, result: Result<T, StoreError>) {
    match result {
        Err(StoreError::Rejected(_)) => {}
        other => panic!("{case}: {call} must be StoreError::Rejected, was {other:?}"),
    }
}

/// Whether a write of a value with a NUL was stored (true) or rejected (false); anything else
/// fails the case.
#[track_caller]
fn stored_or_rejected(case: &str, call: &str, result: Result<(), StoreError>) -> bool {
    match result {
        Ok(()) => true,
        Err(StoreError::Rejected(_)) => false,
        Err(error) => {
            panic!("{case}: {call} of a value with a NUL must store or reject it: {error}")
        }
    }
}

/// Polls every future until all are done, concurrently, in the calling task: the store sees
/// them in flight at once without needing `'static` futures.
async fn join_all<T>(mut futures: Vec<StoreFuture<'_, T>>) -> Vec<Result<T, StoreError>> {
    let mut results: Vec<Option<Result<T, StoreError>>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, result) in futures.iter_mut().zip(results.iter_mut()) {
            if result.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(done) => *result = Some(done),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

/// A time later than every time handed out before, in this process or (by the wall clock) an
/// earlier one, with [`BAND`] of room after it.
fn fresh_now() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|elapsed| i64::try_from(elapsed.as_nanos()).ok())
        .unwrap_or(0);
    let mut now = 0;
    let _ = LAST.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
        now = wall.max(last + BAND);
        Some(now)
    });
    now
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator failed");
    bytes
}

fn random_vec(len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator failed");
    bytes
}

fn hash() -> [u8; 32] {
    random()
}

/// `label` with a random suffix: unique across runs sharing a database.
fn unique(label: &str) -> String {
    format!("conformance-{label}-{}", hex(&random::<8>()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `prefix` padded with `fill` to exactly `bytes` bytes.
fn pad(prefix: &str, fill: char, bytes: usize) -> String {
    let mut padded = prefix.to_owned();
    while padded.len() + fill.len_utf8() <= bytes {
        padded.push(fill);
    }
    while padded.len() < bytes {
        padded.push('k');
    }
    padded
}

/// The keys whose kid starts with `prefix`, in kid order.
fn mine(keys: Vec<StoredKey>, prefix: &str) -> Vec<StoredKey> {
    let mut mine: Vec<StoredKey> = keys
        .into_iter()
        .filter(|key| key.kid.starts_with(prefix))
        .collect();
    mine.sort_by(|a, b| a.kid.cmp(&b.kid));
    let kids: HashSet<&str> = mine.iter().map(|key| key.kid.as_str()).collect();
    assert_eq!(kids.len(), mine.len(), "list_keys returned a kid twice");
    mine
}

fn session(id: &str, expires_at: i64) -> Session {
    Session {
        id: id.to_owned(),
        subject: "subject".into(),
        provider_refresh_token: vec![0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff],
        userinfo: r#"{"sub":"subject","name":"Zoë"}"#.into(),
        expires_at,
    }
}

fn record(session_id: &str, family: &str, expires_at: i64) -> RefreshRecord {
    RefreshRecord {
        hash: hash(),
        family: family.to_owned(),
        session_id: session_id.to_owned(),
        expires_at,
    }
}

fn key(kid: &str, now: i64) -> StoredKey {
    StoredKey {
        kid: kid.to_owned(),
        alg: "RS256".into(),
        private_key: vec![0x30, 0x82, 0x00, 0xff, 0x00],
        public_jwk: r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#.into(),
        published_at: now,
        active_from: now + 10,
        retire_at: now + 1_000,
        remove_at: now + 2_000,
    }
}
