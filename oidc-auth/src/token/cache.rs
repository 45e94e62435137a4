//! The validated-token cache: bounded, never serving an entry past the token's expiry, and
//! never holding a usable token.
//!
//! An entry is found by the SHA-256 of the token's signature segment and holds the token's
//! signed part (`header.payload`, which is no credential without the signature) to compare. A
//! hit therefore means the same signed part and, short of a SHA-256 collision, the same
//! signature: byte for byte the token that was validated. Hashing the signature alone (342
//! characters for RS256) instead of the whole token (often over 1 KB) is most of what a hit
//! costs.
//!
//! When a refresh finds a published key withdrawn, every entry made before is dropped at its
//! next lookup (see [`Withdrawals`]): a provider withdraws a key to stop its tokens, and the
//! cache must not keep them alive.

use std::sync::Arc;

use aws_lc_rs::digest;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::provider::Withdrawals;
use crate::token::IdToken;

/// What a hit reads. Shared, so that a lookup (which hands out a copy of the value) costs one
/// reference count and not a copy of the signed part.
struct Entry {
    signed: Box<[u8]>,
    token: IdToken,
    valid_until: i64,
    /// [`Withdrawals::current`] when the validation began.
    withdrawals: u64,
    /// See [`EntryWeight`].
    weight: u64,
}

/// The memory an entry is taken to hold, in bytes, per byte of its signed part: the part
/// itself, and its claims parsed (a JSON map takes two to three times its text).
const BYTES_PER_SIGNED_BYTE: u64 = 4;
/// Bytes an entry holds besides that (key, reference counts, the map's own slots).
const ENTRY_OVERHEAD: u64 = 256;
/// The memory one unit of the cache's capacity stands for.
const WEIGHT_UNIT: u64 = 8 * 1024;

/// An entry weighs one unit per [`WEIGHT_UNIT`] of memory it holds, at least one: ordinary
/// tokens (a signed part under about 2 KB) count one each, so the capacity is their number,
/// and large ones count for the memory they take, so that the cache stays within about
/// capacity x 8 KiB whatever `max_token_bytes` allows.
#[derive(Clone)]
struct EntryWeight;

impl Weighter<[u8; 32], Arc<Entry>> for EntryWeight {
    fn weight(&self, _key: &[u8; 32], entry: &Arc<Entry>) -> u64 {
        entry.weight
    }
}

fn weight_of(signed: &[u8]) -> u64 {
    let bytes = (signed.len() as u64)
        .saturating_mul(BYTES_PER_SIGNED_BYTE)
        .saturating_add(ENTRY_OVERHEAD);
    bytes.div_ceil(WEIGHT_UNIT).max(1)
}

/// A bounded map from token to validated claims.
pub(crate) struct TokenCache {
    entries: Cache<[u8; 32], Arc<Entry>, EntryWeight>,
    ttl: i64,
    withdrawals: Withdrawals,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.entries.len())
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// Where a token is cached: the hash of its signature and its signed part.
pub(crate) struct Key<'a> {
    hash: [u8; 32],
    signed: &'a [u8],
}

/// The cache key of `token`; `None` for a token without a signature segment, which cannot
/// have been validated.
pub(crate) fn key(token: &str) -> Option<Key<'_>> {
    let dot = memchr::memrchr(b'.', token.as_bytes())?;
    let d = digest::digest(&digest::SHA256, &token.as_bytes()[dot + 1..]);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(d.as_ref());
    Some(Key {
        hash,
        signed: &token.as_bytes()[..dot],
    })
}

impl TokenCache {
    pub(crate) fn new(capacity: usize, ttl_secs: i64, withdrawals: Withdrawals) -> Option<Self> {
        (capacity > 0 && ttl_secs > 0).then(|| Self {
            entries: Cache::with_weighter(capacity, capacity as u64, EntryWeight),
            ttl: ttl_secs,
            withdrawals,
        })
    }

    /// The withdrawal count to hand to [`insert`](Self::insert), read before the keys are.
    pub(crate) fn withdrawals(&self) -> u64 {
        self.withdrawals.current()
    }

    pub(crate) fn get(&self, key: &Key<'_>, now: i64) -> Option<IdToken> {
        let entry = self.entries.get(&key.hash)?;
        if *entry.signed != *key.signed {
            return None;
        }
        if now < entry.valid_until && entry.withdrawals == self.withdrawals.current() {
            Some(entry.token.clone())
        } else {
            self.entries.remove(&key.hash);
            None
        }
    }

    /// Caches `token` until the earlier of its expiry (with leeway) and the cache TTL, unless
    /// a key was withdrawn since `withdrawals` was read: the token may have been verified with
    /// that key.
    pub(crate) fn insert(
        &self,
        key: &Key<'_>,
        token: IdToken,
        now: i64,
        leeway: i64,
        withdrawals: u64,
    ) {
        let valid_until =
            (token.expires_at().saturating_add(leeway)).min(now.saturating_add(self.ttl));
        if valid_until > now && withdrawals == self.withdrawals.current() {
            let entry = Arc::new(Entry {
                signed: key.signed.into(),
                token,
                valid_until,
                withdrawals,
                weight: weight_of(key.signed),
            });
            self.entries.insert(key.hash, entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(sub: &str) -> IdToken {
        let claims = serde_json::json!({"iss": "https://idp", "sub": sub, "exp": 2_000});
        let serde_json::Value::Object(claims) = claims else {
            panic!("an object");
        };
        IdToken::new(claims, (2_000, None, None)).unwrap_or_else(|| panic!("valid claims"))
    }

    /// A hit needs the very token: the same signature with another signed part, or the same
    /// signed part with another signature, misses.
    #[test]
    fn only_the_same_token_hits() {
        let cache =
            TokenCache::new(16, 3600, Withdrawals::default()).unwrap_or_else(|| panic!("enabled"));
        let original = "aGVhZGVy.cGF5bG9hZA.c2lnbmF0dXJl";
        let cached = key(original).unwrap_or_else(|| panic!("has a signature"));
        cache.insert(&cached, token("alice"), 1_000, 0, 0);
        let hit = cache.get(&cached, 1_000).map(|t| t.sub().to_owned());
        assert_eq!(hit.as_deref(), Some("alice"));
        for other in [
            "aGVhZGVy.cGF5bG9hZB.c2lnbmF0dXJl",
            "aGVhZGVy.cGF5bG9hZA.c2lnbmF0dXJm",
            "cGF5bG9hZA.c2lnbmF0dXJl",
            "c2lnbmF0dXJl",
        ] {
            let hit = key(other).and_then(|k| cache.get(&k, 1_000));
            assert!(hit.is_none(), "{other}");
        }
        assert!(key("no-dots").is_none());
    }

    /// Entries end at the token's expiry plus leeway, or at the cache TTL if that is sooner.
    #[test]
    fn entries_end_at_expiry_or_ttl() {
        let cache =
            TokenCache::new(16, 600, Withdrawals::default()).unwrap_or_else(|| panic!("enabled"));
        let cached = key("a.b.c").unwrap_or_else(|| panic!("has a signature"));
        cache.insert(&cached, token("alice"), 1_000, 60, 0);
        assert!(cache.get(&cached, 1_599).is_some());
        assert!(cache.get(&cached, 1_600).is_none());
        cache.insert(&cached, token("alice"), 1_900, 60, 0);
        assert!(cache.get(&cached, 2_059).is_some());
        assert!(cache.get(&cached, 2_060).is_none());
    }

    /// The capacity counts ordinary tokens one each, and large ones by the memory they take:
    /// the cache's weight never exceeds its capacity, and a token too large for the whole
    /// cache is not kept.
    #[test]
    fn large_tokens_count_for_the_memory_they_take() {
        let cache =
            TokenCache::new(16, 600, Withdrawals::default()).unwrap_or_else(|| panic!("enabled"));
        let signed = |n: usize, fill: u8| vec![fill; n];
        let with_signature =
            |signed: &[u8], i: usize| format!("{}.sig{i}", String::from_utf8_lossy(signed));
        // Sixteen ordinary tokens fill it, one unit each.
        let ordinary = signed(1_500, b'a');
        let ordinary_tokens: Vec<String> = (0..16).map(|i| with_signature(&ordinary, i)).collect();
        for raw in &ordinary_tokens {
            let k = key(raw).unwrap_or_else(|| panic!("has a signature"));
            cache.insert(&k, token("alice"), 1_000, 0, 0);
        }
        assert_eq!(cache.entries.weight(), 16);
        assert_eq!(weight_of(&ordinary), 1);
        // A 16 KiB signed part weighs 9 units; several of them never take it past 16.
        let large = signed(16 * 1024, b'b');
        assert_eq!(weight_of(&large), 9);
        for i in 0..4 {
            let raw = with_signature(&large, i);
            let k = key(&raw).unwrap_or_else(|| panic!("has a signature"));
            cache.insert(&k, token("bob"), 1_000, 0, 0);
            assert!(cache.entries.weight() <= 16, "{}", cache.entries.weight());
        }
        // With a capacity of the default size, a large token is kept like any other.
        let roomy = TokenCache::new(10_000, 600, Withdrawals::default())
            .unwrap_or_else(|| panic!("enabled"));
        let raw = with_signature(&large, 9);
        let k = key(&raw).unwrap_or_else(|| panic!("has a signature"));
        roomy.insert(&k, token("bob"), 1_000, 0, 0);
        assert!(roomy.get(&k, 1_001).is_some());
        // One larger than the whole capacity is not kept.
        let huge = with_signature(&signed(64 * 1024, b'c'), 0);
        let k = key(&huge).unwrap_or_else(|| panic!("has a signature"));
        cache.insert(&k, token("carol"), 1_000, 0, 0);
        assert!(cache.get(&k, 1_001).is_none());
        assert!(cache.entries.weight() <= 16);
    }

    /// A withdrawal drops the entries made before it, and keeps out a validation that was
    /// under way when it happened.
    #[test]
    fn a_withdrawn_key_ends_earlier_entries() {
        let withdrawals = Withdrawals::default();
        let cache =
            TokenCache::new(16, 600, withdrawals.clone()).unwrap_or_else(|| panic!("enabled"));
        let cached = key("a.b.c").unwrap_or_else(|| panic!("has a signature"));
        let started = cache.withdrawals();
        cache.insert(&cached, token("alice"), 1_000, 0, started);
        assert!(cache.get(&cached, 1_001).is_some());
        withdrawals.record();
        assert!(cache.get(&cached, 1_001).is_none());
        cache.insert(&cached, token("alice"), 1_000, 0, started);
        assert!(
            cache.get(&cached, 1_001).is_none(),
            "begun before the withdrawal"
        );
        cache.insert(&cached, token("alice"), 1_000, 0, cache.withdrawals());
        assert!(cache.get(&cached, 1_001).is_some());
    }
}
