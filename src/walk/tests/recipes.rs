//! The recipe cache in whole walks: a real thread's second walk comes from
//! recipes alone and matches the first; recipes are filed under the load
//! generation and never used under another; the loader's generation moves on
//! `dlopen` and `dlclose`. (Every
//! synthetic walk of the other tests is also checked against recipes: see
//! `world::walk`.)

use super::cfi::Cfi;
use super::fake::CountedObjects;
use super::isa::SP;
use super::world::*;
use crate::arch::with_context;
use crate::walk::cache::RowCache;
use crate::walk::recipe_cache::RecipeCache;
use crate::walk::walker::{Caches, find_exit_slot_cached};
use crate::walk::{ExitSlot, Frame, LoadedObjects, MAX_FRAMES, Objects, StackMemory, WalkError};

/// The std/C thread shape: start routine → start_thread → clone3.
const THREAD: [u64; 5] = [ret(INNER), ret(MIDDLE), ret(START), ret(START_THREAD), ret(CLONE)];

/// Walks `THREAD` with `caches` through `objects`.
fn walk_counted(
    caches: Caches<'_>,
    objects: &mut CountedObjects,
) -> (Result<ExitSlot, WalkError>, Vec<Frame>) {
    let mut chain = Chain::new(&THREAD);
    let mut frames = Vec::new();
    let ctx = chain.ctx;
    let result =
        find_exit_slot_cached(caches, MAX_FRAMES, &ctx, &mut chain.stack, objects, &mut |f| {
            frames.push(*f)
        });
    (result, frames)
}

#[test]
fn recipes_of_unloaded_code_are_never_used() {
    let recipes = Box::new(RecipeCache::new());
    let rows = RowCache::new();
    let caches = Caches { rows: &rows, recipes: &recipes };
    // MIDDLE's frame is 16 bytes; in the "reloaded" objects at the same addresses
    // it is 32, which moves every outer frame's CFA.
    let mut before = CountedObjects { objects: objects(&[]), generation: 5 };
    let old = walk_counted(caches, &mut before);
    assert!(old.0.is_ok(), "{old:?}");
    assert!(THREAD.iter().all(|&pc| recipes.find(pc - 1, 5).is_some()), "every frame filed");

    let reloaded = objects(&[(MIDDLE, vec![Cfi::Cfa(SP, 32)])]);
    let expected = walk_chain(&THREAD, &[(MIDDLE, vec![Cfi::Cfa(SP, 32)])]);
    assert_ne!(expected.1, old.1, "the new CFI changes the walk");
    // After an unload the generation moved: the old recipes are not used.
    let mut after = CountedObjects { objects: reloaded.clone(), generation: 6 };
    assert_eq!(walk_counted(caches, &mut after), expected);
    // The generation is the only guard: under the old one the old recipes win,
    // which is why a real walk takes it from the loader before any lookup.
    let mut stale = CountedObjects { objects: reloaded, generation: 5 };
    recipes.clear();
    assert_eq!(walk_counted(caches, &mut before), old);
    assert_eq!(walk_counted(caches, &mut stale), old);
}

#[test]
fn real_thread_walks_again_from_recipes_alone() {
    std::thread::spawn(|| {
        let recipes = Box::new(RecipeCache::new());
        let rows = RowCache::new();
        let caches = Caches { rows: &rows, recipes: &recipes };
        let walk = || {
            let mut frames: Vec<Frame> = Vec::new();
            let result = with_context(|ctx| {
                let mut mem = StackMemory::current_thread(ctx)?;
                let mut objects = LoadedObjects::new();
                find_exit_slot_cached(caches, MAX_FRAMES, ctx, &mut mem, &mut objects, &mut |f| {
                    frames.push(*f)
                })
            });
            (result, frames)
        };
        let generation = || LoadedObjects::new().load_generation().expect("glibc reports it");
        // Another test loads and unloads a library meanwhile: a round whose
        // generation moved is tried again.
        for _round in 0..100 {
            let before = generation();
            // Both walks from the same call site, so they see the same frames.
            let mut walks = Vec::new();
            for pass in 0..2 {
                walks.push(walk());
                if pass == 0 {
                    let (result, frames) = &walks[0];
                    assert!(result.is_ok(), "{result:?}");
                    // Every frame of the first walk was filed before the second
                    // one starts, so the second takes them all from recipes.
                    for frame in frames.iter().filter(|_| generation() == before) {
                        assert!(
                            recipes.find(frame.pc - 1, before).is_some(),
                            "frame {frame:?} has no recipe"
                        );
                    }
                }
            }
            if generation() != before {
                continue;
            }
            assert_eq!(walks[1], walks[0]);
            return;
        }
        panic!("the load generation moved in every round");
    })
    .join()
    .expect("walk thread");
}

#[test]
fn load_generation_moves_on_dlopen_and_dlclose() {
    let generation = || LoadedObjects::new().load_generation().expect("glibc reports it");
    let before = generation();
    // A glibc library a test binary does not load by itself (glibc ships it on
    // every Linux target; since 2.34 it is a stub).
    // SAFETY: dlopen with a NUL-terminated name; the library runs no code of
    // interest, and the handle is closed below.
    let handle =
        unsafe { libc::dlopen(c"libanl.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "dlopen libanl.so.1");
    let loaded = generation();
    assert!(loaded >> 64 > before >> 64, "a load raises dlpi_adds");
    assert_eq!(loaded as u64, before as u64, "loading unloads nothing");
    // SAFETY: `handle` came from dlopen and is closed once.
    assert_eq!(unsafe { libc::dlclose(handle) }, 0);
    let unloaded = generation();
    assert_eq!(unloaded >> 64, loaded >> 64);
    assert!(unloaded as u64 > loaded as u64, "dlclose raises dlpi_subs");
}
