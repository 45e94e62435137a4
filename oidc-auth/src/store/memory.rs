//! The in-memory [`Store`]: the reference implementation of the trait's semantics, for tests
//! and for a single broker instance that may forget everything on restart.
//!
//! One mutex guards all maps and every method takes it once, so each operation is atomic,
//! including refresh rotation, the first signing key and one-time markers. It enforces the
//! same identifier limit as the database backends ([`MAX_IDENTIFIER_BYTES`]), so code tested
//! against it does not meet a surprise in production; any other string, NUL characters
//! included, is stored verbatim.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{
    FoundRefresh, RefreshRecord, RotateOutcome, RotationStep, Session, Store, StoreError,
    StoreFuture, StoredKey, rotation_step,
};

pub use super::MAX_IDENTIFIER_BYTES;

/// The [`Store`] in process memory.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), oidc_auth::store::StoreError> {
/// use std::sync::Arc;
/// use oidc_auth::store::{Session, Store, memory::MemoryStore};
///
/// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
/// store.migrate().await?;
/// let session = Session {
///     id: "sid-1".into(),
///     subject: "alice".into(),
///     provider_refresh_token: vec![0, 1, 2],
///     userinfo: "{}".into(),
///     expires_at: 2_000,
/// };
/// store.put_session(&session).await?;
/// assert_eq!(store.get_session("sid-1", 1_000).await?, Some(session));
/// assert_eq!(store.get_session("sid-1", 2_000).await?, None);
/// # Ok(())
/// # }
/// ```
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("MemoryStore")
            .field("sessions", &state.sessions.len())
            .field("refresh_tokens", &state.refresh.len())
            .field("keys", &state.keys.len())
            .field("peer_jwks", &state.peers.len())
            .field("once", &state.once.len())
            .finish()
    }
}

#[derive(Default)]
struct State {
    sessions: HashMap<String, Session>,
    refresh: HashMap<[u8; 32], Refresh>,
    keys: BTreeMap<String, StoredKey>,
    peers: HashMap<String, (String, i64)>,
    once: HashMap<[u8; 32], i64>,
}

struct Refresh {
    record: RefreshRecord,
    spent: bool,
    revoked: bool,
}

impl MemoryStore {
    /// An empty store.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), oidc_auth::store::StoreError> {
    /// use oidc_auth::store::{Store, memory::MemoryStore};
    ///
    /// let store = MemoryStore::new();
    /// assert!(store.list_keys().await?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The state; a panic elsewhere while holding the lock cannot leave it half-written, since
    /// every operation checks its input before it changes anything.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `operation` on the state when the returned future is polled.
    fn with<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&mut State) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        Box::pin(async move { operation(&mut self.lock()) })
    }
}

fn check_refresh(record: &RefreshRecord) -> Result<(), StoreError> {
    crate::store::check_identifier("the token family", &record.family)?;
    crate::store::check_identifier("the session id", &record.session_id)
}

fn check_key(key: &StoredKey) -> Result<(), StoreError> {
    crate::store::check_identifier("the key id", &key.kid)?;
    crate::store::check_identifier("the algorithm", &key.alg)
}

fn duplicate_hash() -> StoreError {
    StoreError::Rejected("a refresh token with this hash is already stored".into())
}

impl State {
    fn insert_key(&mut self, key: StoredKey) -> Result<(), StoreError> {
        if self.keys.contains_key(&key.kid) {
            return Err(StoreError::Rejected(
                "a signing key with this key id is already stored".into(),
            ));
        }
        self.keys.insert(key.kid.clone(), key);
        Ok(())
    }

    fn rotate(
        &mut self,
        old: &[u8; 32],
        new: &[u8; 32],
        now: i64,
    ) -> Result<RotateOutcome, StoreError> {
        let found = self.refresh.get(old).map(|token| FoundRefresh {
            record: token.record.clone(),
            spent: token.spent,
            revoked: token.revoked,
        });
        match rotation_step(found, new, now) {
            RotationStep::Refuse => Ok(RotateOutcome::NotFound),
            RotationStep::Spent(record) => Ok(RotateOutcome::Spent(record)),
            RotationStep::Rotate {
                spent,
                successor,
                spent_until,
            } => {
                // A successor whose hash is taken would overwrite another token: refuse
                // before anything changes, as a database's unique key rolls the rotation back.
                if self.refresh.contains_key(new) {
                    return Err(duplicate_hash());
                }
                if let Some(token) = self.refresh.get_mut(old) {
                    token.spent = true;
                    token.record.expires_at = spent_until;
                }
                self.refresh.insert(
                    *new,
                    Refresh {
                        record: successor,
                        spent: false,
                        revoked: false,
                    },
                );
                Ok(RotateOutcome::Rotated(spent))
            }
        }
    }

    fn revoke(&mut self, family: &str) {
        for token in self.refresh.values_mut() {
            if token.record.family == family {
                token.revoked = true;
            }
        }
    }
}

impl Store for MemoryStore {
    fn migrate(&self) -> StoreFuture<'_, ()> {
        self.with(|_| Ok(()))
    }

    fn put_session(&self, session: &Session) -> StoreFuture<'_, ()> {
        let session = session.clone();
        self.with(move |state| {
            crate::store::check_identifier("the session id", &session.id)?;
            state.sessions.insert(session.id.clone(), session);
            Ok(())
        })
    }

    fn update_session(&self, session: &Session, now: i64) -> StoreFuture<'_, bool> {
        let session = session.clone();
        self.with(move |state| {
            let Some(stored) = state
                .sessions
                .get_mut(&session.id)
                .filter(|stored| stored.expires_at > now)
            else {
                return Ok(false);
            };
            stored.provider_refresh_token = session.provider_refresh_token;
            stored.userinfo = session.userinfo;
            Ok(true)
        })
    }

    fn get_session(&self, id: &str, now: i64) -> StoreFuture<'_, Option<Session>> {
        let id = id.to_owned();
        self.with(move |state| {
            Ok(state
                .sessions
                .get(&id)
                .filter(|session| session.expires_at > now)
                .cloned())
        })
    }

    fn delete_session(&self, id: &str) -> StoreFuture<'_, Option<Session>> {
        let id = id.to_owned();
        self.with(move |state| {
            let session = state.sessions.remove(&id);
            state
                .refresh
                .retain(|_, token| token.record.session_id != id);
            Ok(session)
        })
    }

    fn insert_refresh(&self, record: &RefreshRecord) -> StoreFuture<'_, ()> {
        let record = record.clone();
        self.with(move |state| {
            check_refresh(&record)?;
            if state.refresh.contains_key(&record.hash) {
                return Err(duplicate_hash());
            }
            state.refresh.insert(
                record.hash,
                Refresh {
                    record,
                    spent: false,
                    revoked: false,
                },
            );
            Ok(())
        })
    }

    fn rotate_refresh(
        &self,
        old: &[u8; 32],
        new: &[u8; 32],
        now: i64,
    ) -> StoreFuture<'_, RotateOutcome> {
        let (old, new) = (*old, *new);
        self.with(move |state| state.rotate(&old, &new, now))
    }

    fn revoke_family(&self, family: &str) -> StoreFuture<'_, ()> {
        let family = family.to_owned();
        self.with(move |state| {
            state.revoke(&family);
            Ok(())
        })
    }

    fn list_keys(&self) -> StoreFuture<'_, Vec<StoredKey>> {
        self.with(|state| {
            let mut keys: Vec<StoredKey> = state.keys.values().cloned().collect();
            // The order of the database backends: by publication, then key id.
            keys.sort_by(|a, b| (a.published_at, &a.kid).cmp(&(b.published_at, &b.kid)));
            Ok(keys)
        })
    }

    fn insert_first_key(&self, key: &StoredKey, now: i64) -> StoreFuture<'_, bool> {
        let key = key.clone();
        self.with(move |state| {
            check_key(&key)?;
            if state.keys.values().any(|k| k.retire_at > now) {
                return Ok(false);
            }
            state.insert_key(key)?;
            Ok(true)
        })
    }

    fn insert_key(&self, key: &StoredKey) -> StoreFuture<'_, ()> {
        let key = key.clone();
        self.with(move |state| {
            check_key(&key)?;
            state.insert_key(key)
        })
    }

    fn delete_key(&self, kid: &str) -> StoreFuture<'_, ()> {
        let kid = kid.to_owned();
        self.with(move |state| {
            state.keys.remove(&kid);
            Ok(())
        })
    }

    fn put_peer_jwks(&self, issuer: &str, jwks: &str, fetched_at: i64) -> StoreFuture<'_, ()> {
        let issuer = issuer.to_owned();
        let jwks = jwks.to_owned();
        self.with(move |state| {
            crate::store::check_identifier("the issuer", &issuer)?;
            // As the SQL stores do: a set fetched earlier than the one stored stays out.
            if state.peers.get(&issuer).is_none_or(|(_, stored)| {
                fetched_at >= *stored
                    || *stored > fetched_at.saturating_add(crate::store::PEER_JWKS_AHEAD_SECS)
            }) {
                state.peers.insert(issuer, (jwks, fetched_at));
            }
            Ok(())
        })
    }

    fn get_peer_jwks(&self, issuer: &str) -> StoreFuture<'_, Option<(String, i64)>> {
        let issuer = issuer.to_owned();
        self.with(move |state| Ok(state.peers.get(&issuer).cloned()))
    }

    fn consume_once(&self, key: &[u8; 32], expires_at: i64, now: i64) -> StoreFuture<'_, bool> {
        let key = *key;
        self.with(move |state| {
            // A live marker refuses (and keeps its expiry); an absent or expired one is taken.
            if state.once.get(&key).is_some_and(|&until| until > now) {
                return Ok(false);
            }
            state.once.insert(key, expires_at);
            Ok(true)
        })
    }

    fn is_consumed(&self, key: &[u8; 32], now: i64) -> StoreFuture<'_, bool> {
        let key = *key;
        self.with(move |state| Ok(state.once.get(&key).is_some_and(|&until| until > now)))
    }

    fn purge_expired(&self, now: i64) -> StoreFuture<'_, u64> {
        self.with(move |state| {
            let before =
                state.sessions.len() + state.refresh.len() + state.keys.len() + state.once.len();
            state.sessions.retain(|_, s| s.expires_at > now);
            state.refresh.retain(|_, t| t.record.expires_at > now);
            state.keys.retain(|_, k| k.remove_at > now);
            state.once.retain(|_, &mut until| until > now);
            let after =
                state.sessions.len() + state.refresh.len() + state.keys.len() + state.once.len();
            Ok(u64::try_from(before - after).unwrap_or(u64::MAX))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn rotation_into_a_taken_hash_changes_nothing() {
        let store = MemoryStore::new();
        let record = |hash: u8| RefreshRecord {
            hash: [hash; 32],
            family: "f".into(),
            session_id: "s".into(),
            expires_at: 100,
        };
        store.insert_refresh(&record(1)).await.unwrap();
        store.insert_refresh(&record(2)).await.unwrap();
        assert!(matches!(
            store.rotate_refresh(&[1; 32], &[2; 32], 0).await,
            Err(StoreError::Rejected(_))
        ));
        assert_eq!(
            store.rotate_refresh(&[1; 32], &[3; 32], 0).await.unwrap(),
            RotateOutcome::Rotated(record(1))
        );
    }

    #[tokio::test]
    async fn the_future_does_nothing_until_polled() {
        let store = MemoryStore::new();
        let session = Session {
            id: "s".into(),
            subject: String::new(),
            provider_refresh_token: Vec::new(),
            userinfo: String::new(),
            expires_at: 10,
        };
        drop(store.put_session(&session));
        assert_eq!(store.get_session("s", 0).await.unwrap(), None);
    }
}
