//! The login transaction, sealed into the last segment of `state`.
//!
//! py-oidc-auth put the PKCE verifier in plain text into `state`. Here the last `|` segment is an
//! AES-256-GCM sealed handle: it carries the verifier, the nonce, the redirect URI and an expiry,
//! it cannot be read or forged without the server's key, and it is redeemed once, whatever the
//! outcome (a code the provider accepts or refuses, an error callback). The client
//! sends it back as `code_verifier`; the server opens it and sends the real verifier to the
//! provider.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::Mutex;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{AuthError, ErrorKind};
use crate::secret::Secret;

const VERSION: u8 = 2;
/// Handles the provider accepted a code for, remembered at most (about 5 MB) until they expire.
/// When this many are, further redemptions wait (503) rather than forget one: a forgotten
/// handle could be redeemed again. Filling it takes real sign-ins.
const MAX_REMEMBERED: usize = 200_000;
/// Handles spent without an accepted exchange (an error callback, a code the provider refused,
/// a provider that could not be reached), remembered at most (about 5 MB). Anyone can make these
/// without credentials, so a full set forgets the one closest to expiry instead of refusing
/// sign-ins. Replaying a forgotten one asks the provider for a code it has already refused, or
/// shows the error again.
const MAX_REMEMBERED_FAILED: usize = 200_000;
/// The longest handle [`Sealer::open`] accepts. [`Sealer::seal`] refuses a transaction whose
/// handle would be longer, so a login that could never complete is refused before the user signs
/// in at the provider.
pub(crate) const MAX_HANDLE_LEN: usize = 4096;
/// The AES-256-GCM tag appended to the sealed bytes.
const TAG_LEN: usize = 16;

#[derive(Clone)]
pub(crate) struct Transaction {
    pub(crate) id: [u8; 16],
    pub(crate) expires_at: i64,
    /// The PKCE verifier the server generated; empty when the client brought its own challenge.
    pub(crate) verifier: Secret,
    /// The client's own S256 challenge, when it brought one.
    pub(crate) client_challenge: Option<Secret>,
    pub(crate) nonce: Secret,
    pub(crate) redirect_uri: String,
    /// The scope asked of the provider: what a broker session may claim when the provider's
    /// answer names none.
    pub(crate) scope: String,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("expires_at", &self.expires_at)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// Seals and opens transactions, and remembers which ones were redeemed.
pub(crate) struct Sealer {
    key: LessSafeKey,
    used: Mutex<Used>,
}

/// Spent handles that have not expired, by id and by expiry, so that the expired ones leave in
/// order (each at O(log n)), and the one closest to expiry can be found.
#[derive(Default)]
struct Spent {
    ids: HashSet<[u8; 16]>,
    by_expiry: BinaryHeap<Reverse<(i64, [u8; 16])>>,
}

impl Spent {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn contains(&self, id: &[u8; 16]) -> bool {
        self.ids.contains(id)
    }

    fn insert(&mut self, id: [u8; 16], expires_at: i64) {
        if self.ids.insert(id) {
            self.by_expiry.push(Reverse((expires_at, id)));
        }
    }

    /// The earliest expiry.
    fn next_expiry(&self) -> Option<i64> {
        self.by_expiry.peek().map(|Reverse((expiry, _))| *expiry)
    }

    /// Forgets the handle closest to expiry.
    fn forget_earliest(&mut self) {
        if let Some(Reverse((_, id))) = self.by_expiry.pop() {
            self.ids.remove(&id);
        }
    }

    /// Forgets the handles that have expired: they cannot be opened any more.
    fn forget_expired(&mut self, now: i64) {
        while self.next_expiry().is_some_and(|expiry| expiry <= now) {
            self.forget_earliest();
        }
    }
}

/// The handles that cannot be redeemed now: the spent ones that have not expired, and the ones
/// whose exchange is under way.
///
/// Every redemption spends its handle, whatever its outcome (SECURITY D2, D5). The ones whose
/// code the provider accepted are kept strictly; the others, which anyone can make without
/// credentials (a login, then an error callback or a made-up code), in a set of their own that
/// forgets its oldest when full, so that they can never fill the strict one and lock every
/// user out.
struct Used {
    /// Accepted by the provider: never forgotten before expiry.
    accepted: Spent,
    /// Spent without an accepted exchange, at most [`MAX_REMEMBERED_FAILED`].
    failed: Spent,
    /// Reserved for an exchange in progress. A reservation ends within one provider request
    /// (or when its request is dropped), so these count against the capacity but need no expiry.
    in_flight: HashSet<[u8; 16]>,
    /// Reserved for a redemption that can only fail (an error callback) while the broker store
    /// records it. Refused to any other use meanwhile, like the ones in flight, but outside the
    /// capacity: they can never join the accepted ones, so a full accepted set must not turn an
    /// error callback into a 503 that clears nothing (SECURITY D5).
    failing: HashSet<[u8; 16]>,
    capacity: usize,
    failed_capacity: usize,
}

impl Used {
    fn new(capacity: usize, failed_capacity: usize) -> Self {
        Self {
            accepted: Spent::default(),
            failed: Spent::default(),
            in_flight: HashSet::new(),
            failing: HashSet::new(),
            capacity,
            failed_capacity,
        }
    }

    /// Whether `id` cannot be redeemed at `now`: spent and unexpired, or reserved.
    fn taken(&mut self, id: &[u8; 16], now: i64) -> bool {
        self.accepted.forget_expired(now);
        self.failed.forget_expired(now);
        self.accepted.contains(id)
            || self.failed.contains(id)
            || self.in_flight.contains(id)
            || self.failing.contains(id)
    }

    /// Reserves `id` for one redemption; false if it is spent or already reserved. When the
    /// accepted ones and the exchanges under way fill the capacity, it refuses with 503 until
    /// the earliest accepted one expires, rather than forget one early and let it be replayed.
    fn reserve(&mut self, id: [u8; 16], now: i64) -> Result<bool, AuthError> {
        if self.taken(&id, now) {
            return Ok(false);
        }
        if self.accepted.len() + self.in_flight.len() >= self.capacity {
            let wait = self
                .accepted
                .next_expiry()
                .map_or(1, |expiry| expiry.saturating_sub(now));
            tracing::warn!(
                remembered = self.accepted.len(),
                in_flight = self.in_flight.len(),
                "too many unexpired login states were redeemed; refusing more until the oldest expire"
            );
            return Err(
                AuthError::unavailable("too many sign-ins at once; try again later")
                    .with_retry_after(u64::try_from(wait).unwrap_or(1)),
            );
        }
        self.in_flight.insert(id);
        Ok(true)
    }

    /// Reserves `id` for a redemption that can only fail; false if it is spent or already
    /// reserved. No capacity applies: it ends among the failed ones, which make room for it.
    fn reserve_failing(&mut self, id: [u8; 16], now: i64) -> bool {
        if self.taken(&id, now) {
            return false;
        }
        self.failing.insert(id);
        true
    }

    /// The redemption of a reserved `id` ended without an accepted exchange: it is spent until
    /// `expires_at`, among the failed ones, which forget the one closest to expiry when full.
    fn fail(&mut self, id: [u8; 16], expires_at: i64) {
        if self.in_flight.remove(&id) || self.failing.remove(&id) {
            if self.failed.len() >= self.failed_capacity {
                self.failed.forget_earliest();
            }
            self.failed.insert(id, expires_at);
        }
    }

    /// The provider accepted the code of a reserved `id`: it is spent until `expires_at`. A
    /// reservation made to fail has no exchange to accept, and is spent as a failed one: it was
    /// never counted against the capacity, so it must not enter the accepted ones.
    fn confirm(&mut self, id: [u8; 16], expires_at: i64) {
        if self.in_flight.remove(&id) {
            self.accepted.insert(id, expires_at);
        } else {
            self.fail(id, expires_at);
        }
    }

    /// The redemption of a reserved `id` never took place: it is usable again.
    fn release(&mut self, id: &[u8; 16]) {
        self.in_flight.remove(id);
        self.failing.remove(id);
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer { .. }")
    }
}

/// A login transaction reserved for its redemption: while it lives, any other use of the handle
/// is refused, so concurrent replays lose. [`Reservation::confirm`] records the handle among the
/// ones the provider accepted; dropped without it (an error callback, a code the provider
/// refused, a provider that could not be reached, an abandoned request), the handle is spent
/// all the same, among the failed ones (see [`Used`]). [`Reservation::release`] spends nothing,
/// for a redemption that never took place.
#[must_use = "a reservation dropped unconfirmed spends the handle as a failed redemption"]
pub(crate) struct Reservation<'a> {
    used: &'a Mutex<Used>,
    id: [u8; 16],
    expires_at: i64,
    /// Confirmed or released: nothing is left for the drop to record.
    settled: bool,
}

impl Reservation<'_> {
    /// The provider accepted the code: the handle is spent until it expires.
    pub(crate) fn confirm(mut self) {
        lock(self.used).confirm(self.id, self.expires_at);
        self.settled = true;
    }

    /// The redemption did not take place (the broker store could not record it, so the
    /// provider was not asked): the handle is usable again, as the 503 that follows invites a
    /// retry. Only for a redemption nothing has been sent for; anything else spends the handle.
    pub(crate) fn release(mut self) {
        lock(self.used).release(&self.id);
        self.settled = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.settled {
            lock(self.used).fail(self.id, self.expires_at);
        }
    }
}

/// The set of used handles, also after a panic elsewhere: each change to it is a single step
/// that leaves it consistent.
fn lock(used: &Mutex<Used>) -> std::sync::MutexGuard<'_, Used> {
    used.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a request answers when the system random number generator fails: 500, and no value
/// made without it. A zero key, verifier or nonce would be predictable.
fn random_failed() -> AuthError {
    tracing::error!("the system random number generator failed");
    AuthError::new(
        ErrorKind::Misconfigured,
        "the server could not generate random values",
    )
}

/// `N` bytes from the system random number generator, or a 500 [`AuthError`] when it fails, so
/// that the request stops instead of going on with a predictable value.
pub(crate) fn try_random<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut out = [0u8; N];
    rand::fill(&mut out).map_err(|_| random_failed())?;
    Ok(out)
}

/// `N` bytes from the system random number generator, for callers with no error to answer
/// (start-up, key generation). Panics when the generator fails: a predictable key or nonce is
/// worse than none. Request paths use [`try_random`].
pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    assert!(
        rand::fill(&mut out).is_ok(),
        "the system random number generator failed"
    );
    out
}

fn invalid() -> AuthError {
    AuthError::oauth(
        "invalid_grant",
        "the login state is invalid, expired or already used",
    )
}

/// What a login answers when sealing its transaction fails: 500, and no handle. The plaintext
/// would carry the verifier and the nonce where anyone on the redirect path can read them.
fn seal_failed() -> AuthError {
    tracing::error!("sealing the login state failed");
    AuthError::new(
        ErrorKind::Misconfigured,
        "the server could not seal the login state",
    )
}

/// A login whose handle would be longer than [`MAX_HANDLE_LEN`]: 400 before the user is sent to
/// the provider, rather than at the callback after signing in.
fn too_long() -> AuthError {
    AuthError::oauth(
        "invalid_request",
        "redirect_uri and scope are too long together to fit in the login state",
    )
}

/// The fields of a transaction after its fixed part, in sealed order.
fn fields(tx: &Transaction) -> [&str; 5] {
    [
        tx.verifier.expose(),
        tx.client_challenge.as_ref().map_or("", Secret::expose),
        tx.nonce.expose(),
        tx.redirect_uri.as_str(),
        tx.scope.as_str(),
    ]
}

/// The length of the handle [`Sealer::seal`] makes of `tx`: nonce, version, id, expiry, each
/// field with its two-byte length, the tag; all in unpadded base64url.
fn handle_len(tx: &Transaction) -> usize {
    let plain = 1 + 16 + 8 + fields(tx).iter().map(|f| 2 + f.len()).sum::<usize>();
    (4 * (NONCE_LEN + plain + TAG_LEN)).div_ceil(3)
}

impl Sealer {
    /// A sealer with `key`, or a random key (valid for this process only) when `None`.
    ///
    /// # Panics
    ///
    /// When no key is given and the system random number generator fails: a sealer with a
    /// predictable key would let anyone forge login state.
    pub(crate) fn new(key: Option<[u8; 32]>) -> Self {
        Self::remembering(key, MAX_REMEMBERED)
    }

    fn remembering(key: Option<[u8; 32]>, capacity: usize) -> Self {
        Self::remembering_failed(key, capacity, MAX_REMEMBERED_FAILED)
    }

    fn remembering_failed(key: Option<[u8; 32]>, capacity: usize, failed: usize) -> Self {
        let key = key.unwrap_or_else(random::<32>);
        let key = UnboundKey::new(&AES_256_GCM, &key).expect("AES-256-GCM accepts any 32-byte key");
        Self {
            key: LessSafeKey::new(key),
            used: Mutex::new(Used::new(capacity, failed)),
        }
    }

    /// Seals `tx` into a handle that [`Sealer::open`] accepts. Refused with 400 when the handle
    /// would be over [`MAX_HANDLE_LEN`], and with 500 when no random nonce can be had or sealing
    /// fails: never a handle that is weak or could not be opened.
    pub(crate) fn seal(&self, tx: &Transaction) -> Result<String, AuthError> {
        if handle_len(tx) > MAX_HANDLE_LEN {
            return Err(too_long());
        }
        let mut plain = Vec::with_capacity(64 + tx.redirect_uri.len() + tx.scope.len());
        plain.push(VERSION);
        plain.extend_from_slice(&tx.id);
        plain.extend_from_slice(&tx.expires_at.to_be_bytes());
        for field in fields(tx) {
            // Below MAX_HANDLE_LEN, so every length fits in two bytes.
            let len = u16::try_from(field.len()).map_err(|_| too_long())?;
            plain.extend_from_slice(&len.to_be_bytes());
            plain.extend_from_slice(field.as_bytes());
        }
        let nonce_bytes = try_random::<NONCE_LEN>()?;
        let nonce = Nonce::assume_unique_for_key(nonce_bytes);
        self.key
            .seal_in_place_append_tag(nonce, Aad::empty(), &mut plain)
            .map_err(|_| seal_failed())?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&plain);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a handle without redeeming it.
    pub(crate) fn open(&self, handle: &str, now: i64) -> Result<Transaction, AuthError> {
        if handle.is_empty() || handle.len() > MAX_HANDLE_LEN {
            return Err(invalid());
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(handle).map_err(|_| invalid())?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(invalid());
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[..NONCE_LEN]);
        let sealed = &mut bytes[NONCE_LEN..];
        let plain = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), sealed)
            .map_err(|_| invalid())?;
        let tx = decode(plain).ok_or_else(invalid)?;
        if now >= tx.expires_at {
            return Err(AuthError::oauth(
                "invalid_grant",
                "the login state has expired",
            ));
        }
        Ok(tx)
    }

    /// Reserves a transaction for a code exchange, just before the provider is asked; 400
    /// `invalid_grant` if it is spent or another redemption of it is under way, 503 when the
    /// accepted ones fill the capacity. Requests refused before that (a wrong verifier, a
    /// redirect URI that does not match) spend nothing, so whoever holds a stolen handle cannot
    /// spend it. Every reservation not released spends the handle until its transaction
    /// expires (it cannot be opened after); see [`Reservation`].
    pub(crate) fn reserve(&self, tx: &Transaction, now: i64) -> Result<Reservation<'_>, AuthError> {
        let reserved = lock(&self.used).reserve(tx.id, now)?;
        self.reservation(tx, reserved)
    }

    /// Reserves a transaction whose redemption can only fail (an error callback); 400
    /// `invalid_grant` if it is spent or another redemption of it is under way. Unlike
    /// [`Sealer::reserve`] it never answers 503: the handle ends among the failed ones, which
    /// make room for it, so a full set of accepted ones cannot keep an error callback from
    /// clearing its transaction (SECURITY D5). Dropped, the reservation spends the handle.
    pub(crate) fn reserve_failing(
        &self,
        tx: &Transaction,
        now: i64,
    ) -> Result<Reservation<'_>, AuthError> {
        let reserved = lock(&self.used).reserve_failing(tx.id, now);
        self.reservation(tx, reserved)
    }

    fn reservation(&self, tx: &Transaction, reserved: bool) -> Result<Reservation<'_>, AuthError> {
        if reserved {
            Ok(Reservation {
                used: &self.used,
                id: tx.id,
                expires_at: tx.expires_at,
                settled: false,
            })
        } else {
            Err(invalid())
        }
    }
}

fn decode(plain: &[u8]) -> Option<Transaction> {
    let (&version, rest) = plain.split_first()?;
    if version != VERSION || rest.len() < 24 {
        return None;
    }
    let id: [u8; 16] = rest[..16].try_into().ok()?;
    let expires_at = i64::from_be_bytes(rest[16..24].try_into().ok()?);
    let mut rest = &rest[24..];
    let mut fields = Vec::with_capacity(5);
    for _ in 0..5 {
        let len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
        let value = std::str::from_utf8(rest.get(2..2 + len)?).ok()?.to_owned();
        fields.push(value);
        rest = &rest[2 + len..];
    }
    let scope = fields.pop()?;
    let redirect_uri = fields.pop()?;
    let nonce = fields.pop()?;
    let challenge = fields.pop()?;
    let verifier = fields.pop()?;
    Some(Transaction {
        id,
        expires_at,
        verifier: Secret::new(verifier),
        client_challenge: (!challenge.is_empty()).then(|| Secret::new(challenge)),
        nonce: Secret::new(nonce),
        redirect_uri,
        scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx() -> Transaction {
        Transaction {
            id: [7; 16],
            expires_at: 1_000,
            verifier: Secret::new("v".repeat(43)),
            client_challenge: None,
            nonce: Secret::new("n0nce"),
            redirect_uri: "http://localhost:53100/callback".into(),
            scope: "openid profile".into(),
        }
    }

    #[test]
    fn debug_of_a_transaction_shows_no_verifier_nonce_or_challenge() {
        let mut tx = tx();
        tx.client_challenge = Some(Secret::new("ch4llenge"));
        let shown = format!("{tx:?}");
        for secret in ["vvvv", "n0nce", "ch4llenge", "[7, 7"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("http://localhost:53100/callback"), "{shown}");
    }

    #[test]
    fn a_sealed_transaction_opens_to_itself() {
        let sealer = Sealer::new(None);
        let handle = sealer.seal(&tx()).unwrap_or_default();
        let opened = sealer.open(&handle, 999).expect("the handle opens");
        let shown = |t: &Transaction| {
            (
                t.id,
                t.expires_at,
                t.verifier.expose().to_owned(),
                t.client_challenge.as_ref().map(|c| c.expose().to_owned()),
                t.nonce.expose().to_owned(),
                t.redirect_uri.clone(),
                t.scope.clone(),
            )
        };
        assert_eq!(shown(&opened), shown(&tx()));
        assert!(!handle.contains(&"v".repeat(43)));
    }

    #[test]
    fn tampered_foreign_and_expired_handles_are_refused() {
        let sealer = Sealer::new(None);
        let handle = sealer.seal(&tx()).unwrap_or_default();
        let mut bytes = URL_SAFE_NO_PAD.decode(&handle).unwrap_or_default();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(sealer.open(&URL_SAFE_NO_PAD.encode(&bytes), 0).is_err());
        assert!(Sealer::new(None).open(&handle, 0).is_err());
        assert!(sealer.open(&handle, 1_000).is_err());
        assert!(sealer.open("not a handle", 0).is_err());
    }

    /// Reserves and confirms: a redemption the provider accepted.
    fn spend(sealer: &Sealer, tx: &Transaction, now: i64) -> Result<(), AuthError> {
        sealer.reserve(tx, now).map(Reservation::confirm)
    }

    /// The accepted and the failed handles remembered.
    fn remembered(sealer: &Sealer) -> (usize, usize) {
        let used = lock(&sealer.used);
        for spent in [&used.accepted, &used.failed] {
            assert_eq!(spent.ids.len(), spent.by_expiry.len());
        }
        (used.accepted.len(), used.failed.len())
    }

    fn tx_with(id: u8, expires_at: i64) -> Transaction {
        Transaction {
            id: [id; 16],
            expires_at,
            ..tx()
        }
    }

    #[test]
    fn a_confirmed_transaction_is_spent() {
        let sealer = Sealer::new(None);
        assert!(spend(&sealer, &tx(), 0).is_ok());
        assert!(sealer.reserve(&tx(), 0).is_err());
        assert!(
            sealer.reserve(&tx(), 999).is_err(),
            "spent until it expires"
        );
    }

    /// While one exchange of a handle is under way, a second use is refused: concurrent replays
    /// lose even before the provider has answered.
    #[test]
    fn a_reserved_transaction_refuses_a_concurrent_use() {
        let sealer = Sealer::new(None);
        let first = sealer.reserve(&tx(), 0);
        assert!(first.is_ok());
        let second = sealer.reserve(&tx(), 0).err();
        assert_eq!(
            second.as_ref().and_then(AuthError::code),
            Some("invalid_grant")
        );
        assert!(
            sealer.reserve(&tx_with(8, 1_000), 0).is_ok(),
            "other handles are not held up"
        );
        drop(first);
    }

    /// An error callback, a code the provider refused or could not answer, an abandoned
    /// request: the handle is spent all the same (SECURITY D2, D5), among the failed ones, which
    /// do not count against the capacity of the accepted ones.
    #[test]
    fn a_reservation_dropped_unconfirmed_spends_the_transaction() {
        let sealer = Sealer::remembering(None, 1);
        let reservation = sealer.reserve(&tx(), 0);
        assert!(reservation.is_ok());
        drop(reservation);
        let again = sealer.reserve(&tx(), 0).err();
        assert_eq!(
            again.as_ref().and_then(AuthError::code),
            Some("invalid_grant")
        );
        assert_eq!(remembered(&sealer), (0, 1));
        assert!(lock(&sealer.used).in_flight.is_empty());
        assert!(
            spend(&sealer, &tx_with(8, 1_000), 0).is_ok(),
            "failed redemptions leave the accepted ones their capacity"
        );
        assert!(
            sealer.reserve(&tx(), 1_000).is_ok(),
            "forgotten once expired"
        );
    }

    /// The error codes of `results`, in order.
    fn codes<T>(results: &[Result<T, AuthError>]) -> Vec<Option<&str>> {
        results
            .iter()
            .map(|r| r.as_ref().err().and_then(AuthError::code))
            .collect()
    }

    /// A redemption that never took place (the broker store could not record it, so the
    /// provider was not asked) is released: it spends nothing, takes nothing of the capacity,
    /// and the retry its 503 invites goes through.
    #[test]
    fn a_released_reservation_leaves_the_transaction_usable() {
        let sealer = Sealer::remembering(None, 1);
        assert!(sealer.reserve(&tx(), 0).map(Reservation::release).is_ok());
        assert_eq!(remembered(&sealer), (0, 0));
        assert!(
            sealer
                .reserve_failing(&tx(), 0)
                .map(Reservation::release)
                .is_ok()
        );
        assert_eq!(remembered(&sealer), (0, 0));
        {
            let used = lock(&sealer.used);
            assert!(used.in_flight.is_empty() && used.failing.is_empty());
        }
        assert!(
            spend(&sealer, &tx(), 0).is_ok(),
            "usable, within the capacity"
        );
        assert_eq!(remembered(&sealer), (1, 0));
    }

    /// SECURITY D5 with the accepted ones at capacity, where a code exchange waits (503): an
    /// error callback still clears its transaction, among the failed ones, and takes none of
    /// that capacity. While it is recorded, every other use of the handle is refused.
    #[test]
    fn an_error_callback_clears_its_transaction_when_the_accepted_ones_are_full() {
        let sealer = Sealer::remembering_failed(None, 1, 2);
        assert!(spend(&sealer, &tx_with(1, 1_000), 0).is_ok());
        let full = sealer.reserve(&tx(), 0).err();
        assert_eq!(full.as_ref().map(AuthError::status), Some(503));
        let failing = sealer.reserve_failing(&tx(), 0);
        assert!(failing.is_ok(), "{:?}", failing.as_ref().err());
        let meanwhile = [sealer.reserve(&tx(), 0), sealer.reserve_failing(&tx(), 0)];
        assert_eq!(codes(&meanwhile), [Some("invalid_grant"); 2]);
        drop(meanwhile);
        drop(failing);
        assert_eq!(remembered(&sealer), (1, 1));
        let after = [
            sealer.reserve(&tx(), 0),
            sealer.reserve_failing(&tx(), 0),
            sealer.reserve_failing(&tx_with(1, 1_000), 0),
        ];
        assert_eq!(codes(&after), [Some("invalid_grant"); 3], "all spent");
        drop(after);
        assert!(
            sealer
                .reserve_failing(&tx_with(2, 1_000), 0)
                .map(Reservation::confirm)
                .is_ok()
        );
        assert_eq!(
            remembered(&sealer),
            (1, 2),
            "an error callback never joins the accepted ones"
        );
        let used = lock(&sealer.used);
        assert!(used.in_flight.is_empty() && used.failing.is_empty());
    }

    /// Used transactions are forgotten once expired, whatever the order they were redeemed
    /// in: the memory follows the unexpired ones, not every redemption ever made.
    #[test]
    fn used_transactions_are_forgotten_when_they_expire() {
        let sealer = Sealer::remembering(None, 10);
        for (id, expires_at) in [(1, 300), (2, 100), (3, 200)] {
            assert!(spend(&sealer, &tx_with(id, expires_at), 50).is_ok());
        }
        assert_eq!(remembered(&sealer), (3, 0));
        assert!(spend(&sealer, &tx_with(4, 400), 150).is_ok());
        assert_eq!(remembered(&sealer), (3, 0), "2 expired at 100");
        assert!(spend(&sealer, &tx_with(3, 200), 199).is_err(), "3 is live");
        assert!(spend(&sealer, &tx_with(5, 500), 300).is_ok());
        assert_eq!(remembered(&sealer), (2, 0), "1 and 3 expired");
    }

    /// At capacity with every remembered transaction still live, a new redemption is refused
    /// with 503 and Retry-After until the earliest expires; none is forgotten early, so a
    /// replay is still caught. Exchanges under way count too.
    #[test]
    fn a_full_set_of_live_transactions_refuses_instead_of_forgetting() {
        let sealer = Sealer::remembering(None, 3);
        assert!(spend(&sealer, &tx_with(1, 130), 100).is_ok());
        assert!(spend(&sealer, &tx_with(2, 160), 100).is_ok());
        let under_way = sealer.reserve(&tx_with(9, 500), 100);
        assert!(under_way.is_ok());
        let full = sealer.reserve(&tx_with(3, 190), 110).err();
        let full = full.unwrap_or_else(|| panic!("refused when full"));
        assert_eq!(full.status(), 503);
        assert_eq!(full.retry_after(), Some(20));
        assert!(
            sealer.reserve(&tx_with(1, 130), 110).is_err(),
            "a replay is still refused"
        );
        assert!(spend(&sealer, &tx_with(3, 190), 130).is_ok(), "1 expired");
        assert_eq!(remembered(&sealer), (2, 0));
        drop(under_way);
    }

    /// The denial of service this set must not allow: redemptions anyone can make without
    /// credentials (a login, then an error callback or a made-up code) never refuse sign-ins.
    /// Past their own capacity the failed ones forget the one closest to expiry; the accepted
    /// ones keep theirs whole.
    #[test]
    fn failed_redemptions_cannot_lock_out_sign_ins() {
        let sealer = Sealer::remembering_failed(None, 2, 3);
        for id in 0..=200u8 {
            let expires_at = 1_000 + i64::from(id);
            let reservation = sealer.reserve(&tx_with(id, expires_at), 0);
            assert!(reservation.is_ok(), "attempt {id}");
        }
        assert_eq!(remembered(&sealer), (0, 3));
        for id in 198..=200 {
            assert!(
                sealer
                    .reserve(&tx_with(id, 1_000 + i64::from(id)), 0)
                    .is_err(),
                "{id} is remembered"
            );
        }
        assert!(
            sealer.reserve(&tx_with(0, 1_000), 0).is_ok(),
            "the earliest to expire was forgotten"
        );
        assert!(spend(&sealer, &tx_with(201, 1_000), 0).is_ok());
        assert!(spend(&sealer, &tx_with(202, 1_000), 0).is_ok());
        assert_eq!(remembered(&sealer).0, 2);
    }

    /// The sealed length is known before sealing, and a transaction whose handle `open` would
    /// refuse for its length is refused at sealing with 400 `invalid_request`.
    #[test]
    fn a_handle_over_the_open_limit_is_refused_at_sealing() {
        let sealer = Sealer::new(None);
        let with_scope = |extra: usize| Transaction {
            scope: format!("openid {}", "s".repeat(extra)),
            ..tx()
        };
        // 2,923 more scope characters make a handle of exactly MAX_HANDLE_LEN.
        for extra in [0, 1, 2, 3, 2_923] {
            let fits = with_scope(extra);
            let handle = sealer.seal(&fits).unwrap_or_default();
            assert_eq!(handle.len(), handle_len(&fits), "{extra}");
            assert!(sealer.open(&handle, 0).is_ok(), "{extra}");
        }
        assert_eq!(handle_len(&with_scope(2_923)), MAX_HANDLE_LEN);
        let over = sealer.seal(&with_scope(2_924)).err();
        assert_eq!(
            over.as_ref().map(|e| (e.status(), e.code())),
            Some((400, Some("invalid_request")))
        );
        let mut longest = tx();
        longest.redirect_uri = format!("http://localhost/{}", "r".repeat(2_000));
        longest.scope = format!("openid {}", "s".repeat(1_000));
        let refused = sealer.seal(&longest).err();
        assert_eq!(
            refused.as_ref().map(|e| (e.status(), e.code())),
            Some((400, Some("invalid_request")))
        );
    }

    /// A failing random number generator or sealing step stops the request with a 500
    /// `server_error`; neither is reported as a client mistake or a passing outage.
    #[test]
    fn random_and_sealing_failures_are_server_errors() {
        for e in [random_failed(), seal_failed()] {
            assert_eq!((e.status(), e.code()), (500, Some("server_error")));
            assert_eq!(e.retry_after(), None);
        }
        assert!(try_random::<32>().is_ok_and(|r| r != [0; 32]));
    }
}
