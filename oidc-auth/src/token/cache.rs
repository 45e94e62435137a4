//! The validated-token cache: bounded, keyed by a SHA-256 of the token, never serving an entry
//! past the token's expiry.

use aws_lc_rs::digest;
use quick_cache::sync::Cache;

use crate::token::IdToken;

#[derive(Clone)]
struct Entry {
    token: IdToken,
    valid_until: i64,
}

/// A bounded map from token hash to validated claims.
pub(crate) struct TokenCache {
    entries: Cache<[u8; 32], Entry>,
    ttl: i64,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.entries.len())
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// The cache key: a hash, so the cache never holds a usable token.
pub(crate) fn key(token: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl TokenCache {
    pub(crate) fn new(capacity: usize, ttl_secs: i64) -> Option<Self> {
        (capacity > 0 && ttl_secs > 0).then(|| Self {
            entries: Cache::new(capacity),
            ttl: ttl_secs,
        })
    }

    pub(crate) fn get(&self, key: &[u8; 32], now: i64) -> Option<IdToken> {
        let entry = self.entries.get(key)?;
        if now < entry.valid_until {
            Some(entry.token)
        } else {
            self.entries.remove(key);
            None
        }
    }

    /// Caches `token` until the earlier of its expiry (with leeway) and the cache TTL.
    pub(crate) fn insert(&self, key: [u8; 32], token: IdToken, now: i64, leeway: i64) {
        let valid_until = (token.expires_at().saturating_add(leeway)).min(now + self.ttl);
        if valid_until > now {
            self.entries.insert(key, Entry { token, valid_until });
        }
    }
}
