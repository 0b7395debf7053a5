//! The row cache: misses and hits, entries that went stale (same addresses,
//! other bytes), two threads sharing it, a busy set, and real threads.

use super::cfi::{self, Cfi};
use super::fake::FakeObjects;
use super::isa::SP;
use super::world::*;
use crate::arch::with_context;
use crate::walk::ObjectInfo;
use crate::walk::cache::recipes::RecipeCache;
use crate::walk::cache::rows::RowCache;
use crate::walk::cfi::rules::Rules;
use crate::walk::walker::{Caches, find_exit_slot_cached};
use crate::walk::{ExitSlot, Frame, LoadedObjects, MAX_FRAMES, Objects, StackMemory, WalkError};
use std::sync::mpsc;
use std::time::Duration;

/// The std/C thread shape: start routine → start_thread → clone3.
const THREAD: [u64; 5] = [ret(INNER), ret(MIDDLE), ret(START), ret(START_THREAD), ret(CLONE)];

/// Whether `cache` serves rules for `pc` in `object`.
fn cached(cache: &RowCache, object: &ObjectInfo<'_>, pc: u64) -> bool {
    let mut rules = Rules::NONE;
    cache.get(object, pc, &mut rules).is_some()
}

/// `rows` and a recipe cache of their own (fake objects keep no unload count, so
/// walks over them never use it).
fn caches(rows: &RowCache) -> Caches<'_> {
    static RECIPES: RecipeCache = RecipeCache::new();
    Caches { rows, recipes: &RECIPES }
}

/// Walks `THREAD` through `objects` with `cache`.
fn walk_with(cache: &RowCache, objects: &mut FakeObjects) -> Result<ExitSlot, WalkError> {
    let mut chain = Chain::new(&THREAD);
    find_exit_slot_cached(
        caches(cache),
        MAX_FRAMES,
        &chain.ctx.clone(),
        &mut chain.stack,
        objects,
        &mut |_| {},
    )
}

/// Whether `cache` serves rules for every frame of `THREAD` in `objects`.
fn all_cached(cache: &RowCache, objects: &mut FakeObjects) -> bool {
    THREAD.iter().all(|&pc| {
        let object = objects.find(pc - 1).expect("object");
        cached(cache, &object, pc - 1)
    })
}

/// The default objects, but MIDDLE's frame is 32 bytes: its FDE has other bytes
/// at the same offset (the same instruction with another operand).
fn objects_with_wide_middle() -> FakeObjects {
    objects(&[(MIDDLE, vec![Cfi::Cfa(SP, 32)])])
}

#[test]
fn miss_then_hit() {
    static CACHE: RowCache = RowCache::new();
    let mut objects = objects(&[]);
    let object = objects.find(ret(INNER) - 1).expect("object");
    assert!(!cached(&CACHE, &object, ret(INNER) - 1), "an empty cache misses");
    let cold = walk_with(&CACHE, &mut objects);
    assert_eq!(cold.map(|s| s.slot), Ok(Chain::slot(2)));
    assert!(all_cached(&CACHE, &mut objects), "every frame was cached");
    // A pc the walk did not visit misses, even inside a cached row's range.
    let object = objects.find(ret(INNER)).expect("object");
    assert!(!cached(&CACHE, &object, ret(INNER)));
    assert_eq!(walk_with(&CACHE, &mut objects), cold, "a walk from cached rows");
}

#[test]
fn hit_skips_the_search_table() {
    static CACHE: RowCache = RowCache::new();
    let mut objects = objects(&[]);
    let cold = walk_with(&CACHE, &mut objects);
    // Point every table entry's FDE far outside `.eh_frame`: the uncached lookup
    // fails, so a walk that still succeeds took every row from the cache.
    for object in &mut objects.0 {
        let table = object.eh_frame_hdr.get_mut(12..).expect("table");
        table.chunks_exact_mut(8).for_each(|entry| entry[4..].copy_from_slice(&[0x7f; 4]));
    }
    let pc = ret(INNER) - 1;
    assert_eq!(walk_with(&RowCache::new(), &mut objects), Err(WalkError::BadSearchTable { pc }));
    assert_eq!(walk_with(&CACHE, &mut objects), cold);
}

#[test]
fn stale_entry_is_rejected() {
    static CACHE: RowCache = RowCache::new();
    let mut old = objects(&[]);
    let mut new = objects_with_wide_middle();
    let (old_middle, new_middle) = (&old.0[0], &new.0[0]);
    assert_eq!(old_middle.eh_frame.len(), new_middle.eh_frame.len());
    assert_ne!(old_middle.eh_frame, new_middle.eh_frame);
    let old_result = walk_with(&CACHE, &mut old);
    assert!(all_cached(&CACHE, &mut old));

    // The same pcs, sections at the same addresses, other CFI for MIDDLE.
    let object = new.find(ret(MIDDLE) - 1).expect("object");
    assert!(!cached(&CACHE, &object, ret(MIDDLE) - 1), "other FDE bytes: a miss");
    let object = new.find(ret(INNER) - 1).expect("object");
    assert!(cached(&CACHE, &object, ret(INNER) - 1), "INNER's FDE is the same");
    let uncached = walk_with(&RowCache::new(), &mut new);
    assert_ne!(uncached, old_result, "the test needs CFI that changes the walk");
    assert_eq!(walk_with(&CACHE, &mut new), uncached);
    // And back: the entries the new objects replaced are stale for the old ones.
    assert_eq!(walk_with(&CACHE, &mut old), old_result);
}

#[test]
fn header_without_search_table_never_hits() {
    static CACHE: RowCache = RowCache::new();
    let funcs = [cfi::Func::new(INNER, 0x100, frame16())];
    let mut with_table = FakeObjects(vec![cfi::object(APP, false, &funcs)]);
    let mut without = FakeObjects(vec![cfi::object_without_table(APP, &funcs)]);
    assert_eq!(with_table.0[0].eh_frame, without.0[0].eh_frame);
    let _ = walk_with(&CACHE, &mut with_table);
    let object = with_table.find(ret(INNER) - 1).expect("object");
    assert!(cached(&CACHE, &object, ret(INNER) - 1));
    let pc = ret(INNER) - 1;
    assert_eq!(walk_with(&CACHE, &mut without), Err(WalkError::NoSearchTable { pc }));
}

#[test]
fn two_threads_with_other_cfi_at_the_same_addresses() {
    static CACHE: RowCache = RowCache::new();
    let expected = |objects: &mut FakeObjects| walk_with(&RowCache::new(), objects);
    let (mut a, mut b) = (objects(&[]), objects_with_wide_middle());
    let (want_a, want_b) = (expected(&mut a), expected(&mut b));
    assert_ne!(want_a, want_b);
    let run = |mut objects: FakeObjects, want: Result<ExitSlot, WalkError>| {
        move || {
            for _ in 0..500 {
                assert_eq!(walk_with(&CACHE, &mut objects), want);
            }
        }
    };
    let one = std::thread::spawn(run(a, want_a));
    let two = std::thread::spawn(run(b, want_b));
    one.join().expect("thread one");
    two.join().expect("thread two");
}

#[test]
fn busy_set_falls_back_to_the_uncached_walk() {
    static CACHE: RowCache = RowCache::new();
    let pc = ret(INNER) - 1;
    // Held here as a walk interrupted by a signal handler would hold it.
    let held = CACHE.hold(pc);
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let found = walk_with(&CACHE, &mut objects(&[]));
        done.send(found).expect("send");
    });
    let found =
        result.recv_timeout(Duration::from_secs(60)).expect("the walk waited for a busy set");
    assert_eq!(found.map(|s| s.slot), Ok(Chain::slot(2)));
    drop(held);
    let mut objects = objects(&[]);
    let object = objects.find(pc).expect("object");
    assert!(!cached(&CACHE, &object, pc), "nothing was cached in the busy set");
    let _ = walk_with(&CACHE, &mut objects);
    let object = objects.find(pc).expect("object");
    assert!(cached(&CACHE, &object, pc), "cached once the set is free");
}

#[test]
fn real_thread_walk_is_cached_whole() {
    static CACHE: RowCache = RowCache::new();
    static RECIPES: RecipeCache = RecipeCache::new();
    /// The loaded objects with no load generation: the recipe cache stays off,
    /// so both walks go through the row cache for every frame.
    struct NoGeneration(LoadedObjects);
    impl Objects for NoGeneration {
        fn find(&mut self, pc: u64) -> Result<ObjectInfo<'_>, WalkError> {
            self.0.find(pc)
        }
    }
    std::thread::spawn(|| {
        let mut frames: Vec<Frame> = Vec::new();
        let walk = |frames: &mut Vec<Frame>| {
            frames.clear();
            with_context(|ctx| {
                let mut mem = StackMemory::current_thread(ctx)?;
                let mut objects = NoGeneration(LoadedObjects::new());
                let caches = Caches { rows: &CACHE, recipes: &RECIPES };
                find_exit_slot_cached(caches, MAX_FRAMES, ctx, &mut mem, &mut objects, &mut |f| {
                    frames.push(*f)
                })
            })
        };
        let cold = walk(&mut frames);
        assert!(cold.is_ok(), "{cold:?}");
        let mut objects = LoadedObjects::new();
        let mut exact = false;
        for frame in &frames {
            let lookup = if exact { frame.pc } else { frame.pc - 1 };
            let object = objects.find(lookup).expect("object");
            assert!(cached(&CACHE, &object, lookup), "frame {frame:?} not cached");
            exact = frame.signal_trampoline;
        }
        let warm = walk(&mut frames);
        assert_eq!(warm.map(|s| s.slot), cold.map(|s| s.slot));
    })
    .join()
    .expect("thread");
}

#[test]
fn table_stays_small() {
    let size = size_of::<RowCache>();
    println!("RowCache: {size} bytes");
    // One process-wide static: 64 entries of unwind rows, larger on aarch64 (more
    // registers per row: 75,904 bytes there, under 64 KiB on x86_64).
    assert!(size <= 80 << 10, "{size} bytes");
}
