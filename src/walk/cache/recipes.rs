//! A per-process cache of [`Recipe`]s by pc, valid while no object is loaded or
//! unloaded: a walk through a stack shape seen before then skips the object
//! lookup, the row cache's byte comparisons and the generic row evaluation.
//!
//! An entry holds the pc, the loader's generation (its load and unload counts)
//! when it was made, and the packed recipe. It is used only under the same
//! generation: the pc was inside a loaded object then, no object has been
//! unloaded since, so the same object, with the same unwind tables, is still
//! there. (A load alone could not change what a pc maps to, but glibc's unload
//! count is only exact together with its load count: see `phdr::load_counts`.)
//!
//! Readers never write: each entry is a sequence lock (an even count while
//! stable, odd while written) over atomic words, which a reader copies and keeps
//! only if the count did not move meanwhile. A writer takes an entry by moving
//! its count from even to odd with one compare-and-swap and gives up if that
//! fails, so the table never makes anyone wait (a signal handler's walk
//! included), and the lines of entries in use stay shared between cores. Reading
//! the generation does take the loader's recursive lock (`phdr::load_counts`).

use super::pc_hash::pc_hash;
use crate::walk::cfi::recipe::{Recipe, WORDS};
use core::sync::atomic::{AtomicU64, Ordering, fence};

/// Sets in the table.
const SETS: usize = 128;

/// Entries per set: a pc may be in any entry of its set. With 2, a debug build's
/// 22-frame walk lost one of its own recipes to a set that three of its pcs hashed
/// to; with 4 that takes five in one set.
const WAYS: usize = 4;

const _: () = assert!(SETS.is_power_of_two());

/// Index of the pc in an entry's words.
const PC: usize = 0;
/// Index of the generation's high half, then its low half.
const GENERATION: usize = 1;
/// Index of the packed recipe's first word.
const RECIPE: usize = 3;
/// Words of an entry besides its sequence count.
const ENTRY_WORDS: usize = RECIPE + WORDS;

/// One entry: its sequence count and its words. An unused entry's pc is 0, which
/// is never cached nor looked up.
#[repr(align(64))]
struct Entry {
    /// Even while the words are stable, odd while a writer changes them.
    seq: AtomicU64,
    /// pc, generation, packed recipe.
    words: [AtomicU64; ENTRY_WORDS],
}

impl Entry {
    /// An unused entry.
    const fn empty() -> Entry {
        Entry { seq: AtomicU64::new(0), words: [const { AtomicU64::new(0) }; ENTRY_WORDS] }
    }

    /// Loads the recipe for `pc` under `generation` into `into`, if this entry
    /// holds it and no writer changed it while it was read. `into` is left
    /// meaningless otherwise.
    fn read(&self, pc: u64, generation: u128, into: &mut Recipe) -> bool {
        let before = self.seq.load(Ordering::Acquire);
        if before & 1 != 0 || self.words[PC].load(Ordering::Relaxed) != pc {
            return false;
        }
        let same_generation = self.generation() == generation;
        // Only the words in use: the head, the object's start and the rules.
        let words = into.words_mut();
        words[0] = self.words[RECIPE].load(Ordering::Relaxed);
        let used = Recipe::used_words(words[0]);
        for (word, stored) in words[1..used].iter_mut().zip(&self.words[RECIPE + 1..]) {
            *word = stored.load(Ordering::Relaxed);
        }
        // Orders the loads above before the re-read of the count: if any of them
        // saw a writer's store, the re-read sees that writer's odd count (or later).
        fence(Ordering::Acquire);
        self.seq.load(Ordering::Relaxed) == before && same_generation && into.is_valid()
    }

    /// Writes `words` unless someone else is writing this entry right now.
    fn write(&self, words: &[u64; ENTRY_WORDS]) {
        let before = self.seq.load(Ordering::Relaxed);
        if before & 1 != 0
            || self
                .seq
                .compare_exchange(before, before + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // Orders the odd count before the word stores: a reader that sees one of
        // them also sees the odd count on its re-read.
        fence(Ordering::Release);
        for (word, value) in self.words.iter().zip(words) {
            word.store(*value, Ordering::Relaxed);
        }
        self.seq.store(before + 2, Ordering::Release);
    }

    /// The generation it holds (racy outside [`read`](Self::read)'s checks).
    fn generation(&self) -> u128 {
        let high = self.words[GENERATION].load(Ordering::Relaxed);
        let low = self.words[GENERATION + 1].load(Ordering::Relaxed);
        u128::from(high) << 64 | u128::from(low)
    }

    /// The pc and generation it holds (racy: only to pick an entry to replace).
    fn key(&self) -> (u64, u128) {
        (self.words[PC].load(Ordering::Relaxed), self.generation())
    }
}

/// A table of recipes. The walk uses [`RECIPES`]; tests and the fuzz target use
/// their own.
pub(crate) struct RecipeCache {
    /// `SETS` sets of `WAYS` entries each.
    entries: [Entry; SETS * WAYS],
}

/// The process's recipe cache.
pub(crate) static RECIPES: RecipeCache = RecipeCache::new();

impl RecipeCache {
    /// An empty table.
    pub(crate) const fn new() -> Self {
        RecipeCache { entries: [const { Entry::empty() }; SETS * WAYS] }
    }

    /// The entries of `pc`'s set.
    fn set(&self, pc: u64) -> &[Entry] {
        &self.entries[pc_hash(pc, SETS) * WAYS..][..WAYS]
    }

    /// Loads the recipe cached for `pc` under the load generation `generation` into
    /// `into`, if there is one. `into` is left meaningless otherwise.
    #[inline]
    pub(crate) fn get(&self, pc: u64, generation: u128, into: &mut Recipe) -> bool {
        pc != 0 && self.set(pc).iter().any(|entry| entry.read(pc, generation, into))
    }

    /// The recipe cached for `pc` under `generation` (tests).
    #[cfg(test)]
    pub(crate) fn find(&self, pc: u64, generation: u128) -> Option<Recipe> {
        let mut recipe = Recipe::EMPTY;
        self.get(pc, generation, &mut recipe).then_some(recipe)
    }

    /// Caches `recipe` for `pc` under `generation`: in place of an entry for the
    /// same pc, else of an unused or outdated one, else of the entry `pc` picks.
    /// Does nothing if that entry is being written, or for pc 0 (an unused entry's).
    pub(crate) fn put(&self, pc: u64, generation: u128, recipe: &Recipe) {
        if pc == 0 {
            return;
        }
        let set = self.set(pc);
        let keys: [(u64, u128); WAYS] = core::array::from_fn(|way| set[way].key());
        let way = keys
            .iter()
            .position(|&(old_pc, _)| old_pc == pc)
            .or_else(|| keys.iter().position(|&(old_pc, old)| old_pc == 0 || old != generation))
            .unwrap_or((pc >> 4) as usize % WAYS);
        let mut words = [0; ENTRY_WORDS];
        words[PC] = pc;
        words[GENERATION] = (generation >> 64) as u64;
        words[GENERATION + 1] = generation as u64;
        words[RECIPE..].copy_from_slice(recipe.words());
        set[way].write(&words);
    }

    /// Empties the table (fuzzing: each input starts from the same state).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn clear(&self) {
        for entry in &self.entries {
            entry.write(&[0; ENTRY_WORDS]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::walk::cfi::recipe::SimpleRule;

    fn recipe(offset: i32) -> Recipe {
        let mut rules = crate::walk::cfi::rules::Rules::NONE;
        rules.set_for_test(
            gimli::CfaRule::RegisterAndOffset { register: crate::arch::SP, offset: offset.into() },
            &[(crate::arch::RA, gimli::RegisterRule::Offset(-i64::from(offset)))],
        );
        let meta = crate::walk::cfi::fde::Meta::ordinary();
        // Every word depends on `offset`, so a torn copy matches no recipe.
        Recipe::compile(&rules, &meta, false, 0x1000 * offset as u64).expect("simple")
    }

    #[test]
    fn hit_only_under_the_same_generation() {
        let cache = RecipeCache::new();
        assert_eq!(cache.find(0x4000, 7), None);
        cache.put(0x4000, 7, &recipe(16));
        assert_eq!(cache.find(0x4000, 7), Some(recipe(16)));
        assert_eq!(cache.find(0x4000, 8), None, "an object was unloaded since");
        assert_eq!(cache.find(0x4000, 7 | 1 << 64), None, "the high half counts too");
        assert_eq!(cache.find(0x4001, 7), None);
        cache.put(0x4000, 8, &recipe(32));
        assert_eq!(cache.find(0x4000, 8), Some(recipe(32)));
        assert_eq!(cache.find(0x4000, 7), None, "replaced in place");
        assert_eq!(recipe(32).rule(crate::arch::RA), Some(SimpleRule::Offset(-32)));
    }

    #[test]
    fn an_entry_being_written_is_a_miss_and_not_overwritten() {
        let cache = RecipeCache::new();
        cache.put(0x4000, 1, &recipe(16));
        let entry = cache.set(0x4000).iter().find(|e| e.key().0 == 0x4000).unwrap();
        let seq = entry.seq.load(Ordering::Relaxed);
        entry.seq.store(seq + 1, Ordering::Relaxed); // a writer is inside
        assert_eq!(cache.find(0x4000, 1), None);
        cache.put(0x4000, 1, &recipe(48));
        entry.seq.store(seq, Ordering::Relaxed);
        assert_eq!(cache.find(0x4000, 1), Some(recipe(16)), "the busy entry was left alone");
    }

    #[test]
    fn pc_zero_is_never_cached() {
        let cache = RecipeCache::new();
        // An unused entry holds pc 0 and generation 0.
        assert_eq!(cache.find(0, 0), None);
        cache.put(0, 3, &recipe(16));
        assert_eq!(cache.find(0, 3), None);
    }

    #[test]
    fn a_full_set_keeps_working() {
        let cache = RecipeCache::new();
        // pcs that share a set: more than it has ways.
        let pcs: Vec<u64> = (1..u64::MAX)
            .map(|n| n * 16)
            .filter(|&pc| core::ptr::eq(cache.set(pc), cache.set(16)))
            .take(WAYS + 3)
            .collect();
        for (n, &pc) in pcs.iter().enumerate() {
            cache.put(pc, 1, &recipe(16 + 16 * n as i32));
            assert_eq!(cache.find(pc, 1), Some(recipe(16 + 16 * n as i32)));
        }
        let hits = pcs.iter().filter(|&&pc| cache.find(pc, 1).is_some()).count();
        assert_eq!(hits, WAYS);
    }

    #[test]
    fn concurrent_readers_never_see_a_torn_recipe() {
        let cache = RecipeCache::new();
        let (a, b) = (recipe(16), recipe(1 << 20));
        let writing = core::sync::atomic::AtomicBool::new(true);
        let hits = std::thread::scope(|scope| {
            scope.spawn(|| {
                for n in 0..200_000 {
                    cache.put(0x4000, 1, if n % 2 == 0 { &a } else { &b });
                }
                writing.store(false, Ordering::Release);
            });
            // Reads for as long as the writer writes.
            let mut hits = 0_u64;
            while writing.load(Ordering::Acquire) || hits == 0 {
                if let Some(found) = cache.find(0x4000, 1) {
                    assert!(found == a || found == b, "torn: {found:?}");
                    hits += 1;
                }
            }
            hits
        });
        assert!(hits > 0);
    }
}
