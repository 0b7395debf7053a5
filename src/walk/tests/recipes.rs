//! The recipe cache in whole walks: a real thread's second walk comes from
//! recipes alone and matches the first; recipes are filed under the load
//! generation and never used under another; the loader's generation moves on
//! `dlopen` and `dlclose`; and one step from a recipe equals the step from the
//! row it was compiled from, on random rows, registers and stacks. (Every
//! synthetic walk of the other tests is also checked against recipes: see
//! `world::walk`.)

use super::cfi::Cfi;
use super::fake::CountedObjects;
use super::fake::FakeStack;
use super::isa::SP;
use super::world::*;
use crate::arch::{self, Context, with_context};
use crate::walk::cache::recipes::RecipeCache;
use crate::walk::cache::rows::RowCache;
use crate::walk::cfi::fde::{Located, Meta};
use crate::walk::cfi::recipe::{MAX_RULES, Recipe};
use crate::walk::cfi::rules::Rules;
use crate::walk::cfi::step;
use crate::walk::walker::{Caches, find_exit_slot_cached};
use crate::walk::{
    ExitSlot, Frame, LoadedObjects, MAX_FRAMES, ObjectInfo, Objects, StackMemory, WalkError,
};
use gimli::{CfaRule, Register, RegisterRule};

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
            // Both walks from the same call site, so they see the same frames (an
            // opaque bound keeps an optimised build from unrolling the loop into
            // two call sites).
            let mut walks = Vec::new();
            for pass in 0..std::hint::black_box(2) {
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

/// A small deterministic generator (xorshift64*), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A register: usually one of the file, sometimes one outside it.
    fn register(&mut self) -> Register {
        let count = Context::REGISTERS.len() as u64;
        Register(if self.below(8) == 0 {
            (count + self.below(40)) as u16
        } else {
            self.below(count) as u16
        })
    }

    /// A stack-sized offset, sometimes misaligned or far off.
    fn offset(&mut self) -> i64 {
        match self.below(8) {
            0 => self.below(1 << 12) as i64 - (1 << 11),
            1 => i64::from(i32::MAX) - self.below(64) as i64,
            _ => (self.below(32) as i64 - 16) * 8,
        }
    }
}

#[test]
fn unwind_recipe_matches_unwind_on_random_rows() {
    const BASE: u64 = 0x7000_0000;
    const WORDS: usize = 64;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let object = ObjectInfo {
        start: 0,
        eh_frame_hdr: &[],
        eh_frame_hdr_addr: 0,
        eh_frame: &[],
        eh_frame_addr: 0,
        is_libc: false,
    };
    let meta = Meta::ordinary();
    let mut compiled = 0;
    for case in 0..30_000 {
        let mut registers = Vec::new();
        for reg in Context::REGISTERS {
            let rule = match rng.below(8) {
                0 => RegisterRule::Undefined,
                1 => RegisterRule::SameValue,
                2 | 3 => RegisterRule::Offset(rng.offset()),
                4 => RegisterRule::ValOffset(rng.offset()),
                5 => RegisterRule::Register(rng.register()),
                _ => continue,
            };
            registers.push((reg, rule));
        }
        if let Some(state) = arch::RA_SIGN_STATE {
            match rng.below(3) {
                0 => registers.push((state, RegisterRule::Constant(rng.below(2)))),
                1 => registers.push((state, RegisterRule::Constant(rng.below(3)))),
                _ => {}
            }
        }
        // Drop rules at random until a recipe could hold them, most of the time.
        while registers.len() > MAX_RULES && rng.below(16) != 0 {
            registers.remove(rng.below(registers.len() as u64) as usize);
        }
        let cfa = CfaRule::RegisterAndOffset { register: rng.register(), offset: rng.offset() };
        let mut rules = Rules::NONE;
        rules.set_for_test(cfa, &registers);
        let Some(recipe) = Recipe::compile(&rules, &meta, false, 0) else { continue };
        compiled += 1;

        let mut regs = Context::new();
        for reg in Context::REGISTERS {
            if rng.below(4) != 0 {
                let value = BASE + rng.below(WORDS as u64 * 8 + 64) - 32;
                regs.set(reg, value);
            }
        }
        let mut stack = FakeStack::new(BASE, WORDS);
        for n in 0..WORDS as u64 {
            stack.put(BASE + 8 * n, rng.next());
        }
        let pc = 0x1_0000 + case;
        let located = Located::new(&object, pc, &rules, meta);
        // Callers reused from an earlier step, as the walker's are: every register
        // known with a stale value, which the step must overwrite or forget.
        let mut stale = Context::new();
        for reg in Context::REGISTERS {
            stale.set(reg, 0xdead_0000 + u64::from(reg.0));
        }
        let (mut by_rules, mut by_recipe) = (stale, stale);
        let expected = step::unwind(&located, &regs, &mut by_rules, &mut stack.clone());
        let got = step::unwind_recipe(&recipe, pc, &regs, &mut by_recipe, &mut stack.clone());
        assert_eq!(got, expected, "case {case}: {rules:?}");
        if matches!(expected, Ok(step) if !step.outermost) {
            for reg in (0..80).map(Register) {
                assert_eq!(
                    by_recipe.get(reg),
                    by_rules.get(reg),
                    "case {case}, register {}",
                    reg.0
                );
            }
            assert_eq!(by_recipe.pc(), by_rules.pc(), "case {case}");
        }
    }
    assert!(compiled > 10_000, "only {compiled} rows compiled");
}
