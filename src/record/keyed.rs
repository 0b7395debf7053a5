//! Values stored under hashed keys of any `Hash + Eq + 'static` type.
//!
//! Keys of different types never collide: the key's `TypeId` is part of the hash
//! and equality first checks the type. `&'static str` and `String` keys, the common
//! case, hash their bytes directly and compare by address before comparing bytes.

use core::any::{Any, TypeId};
use core::hash::{Hash, Hasher};
use hashbrown::HashTable;

use super::value::{self, Displaced, Pinned, Shared};

/// A key stored type-erased; its type is checked before it is compared.
pub(crate) trait ErasedKey {
    /// `TypeId` of the concrete key type.
    fn key_type(&self) -> TypeId;
}

impl<K: Any> ErasedKey for K {
    fn key_type(&self) -> TypeId {
        TypeId::of::<K>()
    }
}

/// A stored key; it is handed out of the record before it drops, since its
/// `Drop` is user code.
pub(crate) type StoredKey = Box<dyn ErasedKey>;

struct Entry {
    hash: u64,
    key: StoredKey,
    seq: u64,
    value: Shared,
}

/// Hashes `key` together with its type. Called before the record is borrowed, so
/// the user's `Hash` impl never runs while it is.
#[inline]
pub(crate) fn hash_of<K: Hash + 'static>(key: &K) -> u64 {
    // Each branch is resolved at compile time (the `TypeId`s are constants). Both
    // string types hash their bytes only, each with its own seed.
    let any: &dyn Any = key;
    if let Some(text) = any.downcast_ref::<&'static str>() {
        return hash_bytes(SEEDS[2], text.as_bytes());
    }
    if let Some(text) = any.downcast_ref::<String>() {
        return hash_bytes(SEEDS[3], text.as_bytes());
    }
    let mut hasher = FoldHasher::default();
    TypeId::of::<K>().hash(&mut hasher);
    key.hash(&mut hasher);
    hasher.finish()
}

/// Whether `stored` equals `key`; strings equal by address are equal.
#[inline]
fn keys_equal<K: Eq + 'static>(stored: &K, key: &K) -> bool {
    let (a, b): (&dyn Any, &dyn Any) = (stored, key);
    if let (Some(a), Some(b)) = (a.downcast_ref::<&'static str>(), b.downcast_ref::<&'static str>())
    {
        return (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b;
    }
    stored == key
}

/// Whether `entry` is stored under `key` (with hash `hash`).
#[inline]
fn matches<K: Eq + 'static>(hash: u64, key: &K, entry: &Entry) -> bool {
    if entry.hash != hash || (*entry.key).key_type() != TypeId::of::<K>() {
        return false;
    }
    let stored: *const dyn ErasedKey = &*entry.key;
    // SAFETY: the stored key's concrete type was just checked to be K.
    let stored = unsafe { &*stored.cast::<K>() };
    keys_equal(stored, key)
}

/// The keyed values of one thread.
pub(crate) struct KeyedMap {
    table: HashTable<Entry>,
}

impl KeyedMap {
    pub(crate) const fn new() -> Self {
        Self { table: HashTable::new() }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// A pinned handle to the value under `key`, if it is a `V`.
    #[inline]
    pub(crate) fn get<K: Eq + 'static, V: 'static>(&self, hash: u64, key: &K) -> Option<Pinned<V>> {
        let entry = self.table.find(hash, |entry| matches(hash, key, entry))?;
        if !entry.value.is::<V>() {
            return None;
        }
        // SAFETY: the entry's live Shared holds a V (checked just above); the caller
        // drops the handle when its `with` ends.
        Some(unsafe { value::pin(entry.value.address()) })
    }

    /// Stores `value` under `key`: in place, without allocating, when the stored
    /// value is a `V` that nothing borrows. Returns the new key when an equal one
    /// was already stored, and what the value displaced (both for the caller to
    /// drop after the borrow).
    #[inline]
    pub(crate) fn store<K: Eq + 'static, V: 'static>(
        &mut self,
        hash: u64,
        key: K,
        seq: u64,
        value: V,
    ) -> (Option<K>, Displaced<V>) {
        let Some(entry) = self.table.find_mut(hash, |entry| matches(hash, &key, entry)) else {
            self.insert_new(hash, key, seq, value);
            return (None, Displaced::Nothing);
        };
        entry.seq = seq;
        let displaced = match entry.value.get_mut::<V>() {
            Some(stored) => Displaced::InPlace(core::mem::replace(stored, value)),
            None => Displaced::Handle(replace_handle(&mut entry.value, value)),
        };
        (Some(key), displaced)
    }

    /// Replaces the value under `key` in place, without allocating, when it is a
    /// `V` that nothing borrows; returns the old value, or gives `value` back.
    #[inline]
    pub(crate) fn replace<K: Eq + 'static, V: 'static>(
        &mut self,
        hash: u64,
        key: &K,
        seq: u64,
        value: V,
    ) -> Result<V, V> {
        let found = self.table.find_mut(hash, |entry| matches(hash, key, entry));
        let Some(entry) = found else { return Err(value) };
        let Some(stored) = entry.value.get_mut::<V>() else { return Err(value) };
        entry.seq = seq;
        Ok(core::mem::replace(stored, value))
    }

    /// Adds an entry for a key not stored yet (allocates: kept out of line so the
    /// in-place path of [`store`](Self::store) stays small).
    #[cold]
    #[inline(never)]
    fn insert_new<K: Eq + 'static, V: 'static>(&mut self, hash: u64, key: K, seq: u64, value: V) {
        let entry = Entry { hash, key: Box::new(key), seq, value: value::share(value) };
        self.table.insert_unique(hash, entry, |entry| entry.hash);
    }

    /// Removes and returns the value under `key`, with the stored key.
    pub(crate) fn remove<K: Eq + 'static>(
        &mut self,
        hash: u64,
        key: &K,
    ) -> Option<(Shared, StoredKey)> {
        let entry = self.table.find_entry(hash, |entry| matches(hash, key, entry)).ok()?;
        let (entry, _) = entry.remove();
        Some((entry.value, entry.key))
    }

    /// Appends `(seq, hash)` of every value with a sequence number below `bound`.
    pub(crate) fn list_below(&self, bound: u64, out: &mut Vec<(u64, Location)>) {
        let live = self.table.iter().filter(|entry| entry.seq < bound);
        out.extend(live.map(|entry| (entry.seq, Location::Keyed(entry.hash))));
    }

    /// Removes the value stored with `seq` under a key hashing to `hash`.
    pub(crate) fn remove_at(&mut self, hash: u64, seq: u64) -> Option<(Shared, StoredKey)> {
        let entry = self.table.find_entry(hash, |entry| entry.seq == seq).ok()?;
        let (entry, _) = entry.remove();
        Some((entry.value, entry.key))
    }
}

/// Puts `value` in a new allocation in place of `handle`; returns the old handle.
#[cold]
#[inline(never)]
fn replace_handle<V: 'static>(handle: &mut Shared, value: V) -> Shared {
    core::mem::replace(handle, value::share(value))
}

/// Where a value is stored, for removing values in sequence order.
#[derive(Clone, Copy)]
pub(crate) enum Location {
    /// Under a hashed key with this hash.
    Keyed(u64),
    /// In the typed slot with this index.
    Slot(usize),
}

/// Arbitrary odd constants (hex digits of pi) that seed and mix the hash.
const SEEDS: [u64; 4] =
    [0x243f_6a88_85a3_08d3, 0x1319_8a2e_0370_7344, 0xa409_3822_299f_31d0, 0x082e_fa98_ec4e_6c89];

/// The 128-bit product of `x` and `y`, its halves xored: every input bit reaches
/// the middle of the output. The mixing step of foldhash and wyhash.
#[inline]
fn fold(x: u64, y: u64) -> u64 {
    let full = u128::from(x) * u128::from(y);
    (full as u64) ^ ((full >> 64) as u64)
}

/// Reads 8 bytes at `at` (little-endian); `at + 8 <= bytes.len()`.
#[inline]
fn read8(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Reads 4 bytes at `at` (little-endian); `at + 4 <= bytes.len()`.
#[inline]
fn read4(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u64::from(u32::from_le_bytes(word))
}

/// Hashes `bytes` with `seed`: inputs up to 16 bytes take two possibly overlapping
/// reads and one multiply, longer ones one multiply per 16 bytes; no call, no copy.
#[inline]
fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let len = bytes.len();
    let mut state = seed ^ len as u64;
    let (a, b) = if len <= 16 {
        if len >= 8 {
            (read8(bytes, 0), read8(bytes, len - 8))
        } else if len >= 4 {
            (read4(bytes, 0), read4(bytes, len - 4))
        } else if len > 0 {
            let spread = u64::from(bytes[0]) << 16 | u64::from(bytes[len / 2]) << 8;
            (spread | u64::from(bytes[len - 1]), 0)
        } else {
            (0, 0)
        }
    } else {
        let mut at = 0;
        while len - at > 16 {
            state = fold(read8(bytes, at) ^ SEEDS[0], read8(bytes, at + 8) ^ state);
            at += 16;
        }
        (read8(bytes, len - 16), read8(bytes, len - 8))
    };
    fold(a ^ SEEDS[1], b ^ state)
}

/// A small, fast, non-cryptographic hasher for keys of any type. Thread-local keys
/// are chosen by the program, not by an attacker, so flooding resistance buys
/// nothing here and would cost most of a lookup.
#[derive(Default)]
struct FoldHasher {
    state: u64,
}

impl FoldHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.state = fold(self.state ^ word, SEEDS[0]);
    }
}

impl Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.add(hash_bytes(SEEDS[1], bytes));
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // A final multiply so the top bits hashbrown uses for its tags are mixed.
        fold(self.state, SEEDS[2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_hashes_differ_by_content_and_length() {
        let words = ["", "a", "b", "ab", "ba", "abc", "abcd", "abcde", "abcdefgh", "abcdefghi"];
        let long = ["x".repeat(16), "x".repeat(17), "x".repeat(33), "y".repeat(33)];
        let mut hashes: Vec<u64> = words.iter().map(hash_of).collect();
        hashes.extend(long.iter().map(|w| hash_bytes(SEEDS[2], w.as_bytes())));
        let mut unique = hashes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), hashes.len(), "{hashes:x?}");
    }

    #[test]
    fn equal_keys_hash_equal_across_copies() {
        let owned = String::from("request-id");
        // A second `&'static str` at another address (not leaked, so Miri's leak check holds).
        let copy: &'static str = &"request-id (another literal)"[..10];
        assert_ne!(copy.as_ptr(), "request-id".as_ptr());
        assert_eq!(hash_of(&"request-id"), hash_of(&copy));
        assert!(keys_equal(&"request-id", &copy));
        assert_eq!(hash_of(&owned), hash_of(&String::from("request-id")));
        assert_ne!(hash_of(&owned), hash_of(&"request-id"), "seeded by type");
        assert_ne!(hash_of(&7_u32), hash_of(&7_u64), "seeded by type");
    }
}
