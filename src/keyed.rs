//! Values stored under hashed keys of any `Hash + Eq + 'static` type.
//!
//! Keys of different types never collide: the key's `TypeId` is part of the hash
//! and equality first checks the type.

use core::any::{Any, TypeId};
use core::hash::{Hash, Hasher};

use hashbrown::HashTable;

use crate::value::Shared;

/// A key stored type-erased, compared through `Any`.
pub(crate) trait ErasedKey {
    fn as_any(&self) -> &dyn Any;
}

impl<K: Any> ErasedKey for K {
    fn as_any(&self) -> &dyn Any {
        self
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
pub(crate) fn hash_of<K: Hash + 'static>(key: &K) -> u64 {
    let mut hasher = FoldHasher::default();
    TypeId::of::<K>().hash(&mut hasher);
    key.hash(&mut hasher);
    hasher.finish()
}

/// Whether `entry` is stored under `key` (with hash `hash`).
fn matches<K: Eq + 'static>(hash: u64, key: &K, entry: &Entry) -> bool {
    entry.hash == hash
        && (*entry.key).as_any().downcast_ref::<K>().is_some_and(|stored| stored == key)
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

    /// The stored value under `key`, as a new reference.
    pub(crate) fn get<K: Eq + 'static>(&self, hash: u64, key: &K) -> Option<Shared> {
        let entry = self.table.find(hash, |entry| matches(hash, key, entry))?;
        Some(entry.value.clone())
    }

    /// Stores `value` under `key`. Returns the value it replaces, and the key when
    /// an equal one was already stored (both to be dropped by the caller).
    pub(crate) fn insert<K: Eq + 'static>(
        &mut self,
        hash: u64,
        key: K,
        seq: u64,
        value: Shared,
    ) -> (Option<Shared>, Option<K>) {
        match self.table.find_mut(hash, |entry| matches(hash, &key, entry)) {
            Some(entry) => {
                entry.seq = seq;
                (Some(core::mem::replace(&mut entry.value, value)), Some(key))
            }
            None => {
                let entry = Entry { hash, key: Box::new(key), seq, value };
                self.table.insert_unique(hash, entry, |entry| entry.hash);
                (None, None)
            }
        }
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

/// Where a value is stored, for removing values in sequence order.
#[derive(Clone, Copy)]
pub(crate) enum Location {
    /// Under a hashed key with this hash.
    Keyed(u64),
    /// In the typed slot with this index.
    Slot(usize),
}

/// A small, fast, non-cryptographic hasher (a multiply-fold in the style of FxHash).
/// Thread-local keys are chosen by the program, not by an attacker, so flooding
/// resistance buys nothing here and would cost most of a lookup.
#[derive(Default)]
struct FoldHasher {
    state: u64,
}

const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

impl FoldHasher {
    fn add(&mut self, word: u64) {
        self.state = (self.state.rotate_left(5) ^ word).wrapping_mul(MULTIPLIER);
    }
}

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // A final avalanche so the top bits hashbrown uses for its tags are mixed.
        let x = self.state;
        (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ (x >> 32)
    }
}
