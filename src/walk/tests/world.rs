//! A fixed synthetic process for the walk tests: an "app" object and a "libc"
//! object with named functions, and a helper to lay frames out on a fake stack.

use super::cfi::{self, Cfi, Expression, Func};
use super::fake::{CountedObjects, FakeObjects, FakeStack};
use super::isa::{RA, SAVED, SP};
use crate::arch::{self, Context};
use crate::walk::cache::recipes::RecipeCache;
use crate::walk::cache::rows::RowCache;
use crate::walk::walker::{Caches, find_exit_slot_cached};
use crate::walk::{ExitSlot, Frame, MAX_FRAMES, StackTops, WalkError, find_exit_slot};
use core::ops::Range;

/// The app's code.
pub(super) const APP: Range<u64> = 0x1_0000..0x2_0000;
/// libc's code.
pub(super) const LIBC: Range<u64> = 0x5_0000..0x6_0000;

/// An app function the walk starts in.
pub(super) const INNER: u64 = 0x1_0000;
/// Another app function.
pub(super) const MIDDLE: u64 = 0x1_0100;
/// The thread start routine (or `main`).
pub(super) const START: u64 = 0x1_0200;
/// `_start`: return address undefined.
pub(super) const ENTRY: u64 = 0x1_0300;
/// A signal handler (0x80 bytes, then a gap without FDE).
pub(super) const HANDLER: u64 = 0x1_0400;
/// A function interrupted by a signal at its first instruction.
pub(super) const INTERRUPTED: u64 = 0x1_0500;
/// A self-recursive function.
pub(super) const RECUR: u64 = 0x1_0600;
/// App code without an FDE.
pub(super) const NO_FDE: u64 = 0x1_0f00;

/// libc's `start_thread`.
pub(super) const START_THREAD: u64 = 0x5_0000;
/// libc's `clone3`: return address undefined.
pub(super) const CLONE: u64 = 0x5_0100;
/// libc's `__libc_start_call_main`.
pub(super) const CALL_MAIN: u64 = 0x5_0200;
/// libc's `__libc_start_main_impl`.
pub(super) const START_MAIN: u64 = 0x5_0300;
/// libc's `__call_tls_dtors`.
pub(super) const TLS_DTORS: u64 = 0x5_0400;
/// libc's `__restore_rt`; like glibc's, its FDE starts one byte early.
pub(super) const RESTORER: u64 = 0x5_0500;

/// The fake stack's base address.
pub(super) const STACK: u64 = 0x7000_0000;

/// A return address inside function `f`.
pub(super) const fn ret(f: u64) -> u64 {
    f + 0x40
}

/// A frame of 16 bytes: CFA = sp + 16, return address at CFA - 8.
pub(super) fn frame16() -> Vec<Cfi> {
    vec![Cfi::Cfa(SP, 16)]
}

/// glibc's `__restore_rt` CFI (`sysdeps/unix/sysv/linux/x86_64/libc_sigaction.c`):
/// CFA = *(sp + 160); sp, the return address and SAVED saved at sp + 160, 168, 128
/// (used as a synthetic signal frame on aarch64 too).
pub(super) fn restorer_rules() -> Vec<Cfi> {
    let breg = |n: i64| {
        let mut e = Expression::new();
        e.op_breg(SP, n);
        e
    };
    let mut cfa = breg(160);
    cfa.op_deref();
    vec![
        Cfi::CfaExpression(cfa),
        Cfi::Expression(SAVED, breg(128)),
        Cfi::Expression(SP, breg(160)),
        Cfi::Expression(RA, breg(168)),
    ]
}

/// The two objects, each function with its default rules unless `overrides`
/// gives other ones.
pub(super) fn objects(overrides: &[(u64, Vec<Cfi>)]) -> FakeObjects {
    let rules = |f: u64, default: Vec<Cfi>| {
        overrides.iter().find(|(g, _)| *g == f).map_or(default, |(_, r)| r.clone())
    };
    let app = [
        Func::new(INNER, 0x100, rules(INNER, frame16())),
        Func::new(MIDDLE, 0x100, rules(MIDDLE, frame16())),
        Func::new(START, 0x100, rules(START, frame16())),
        Func::new(ENTRY, 0x100, rules(ENTRY, vec![Cfi::Undefined(RA)])),
        Func::new(HANDLER, 0x80, rules(HANDLER, frame16())),
        Func::new(INTERRUPTED, 0x100, rules(INTERRUPTED, vec![])),
        Func::new(RECUR, 0x100, rules(RECUR, frame16())),
    ];
    let libc = [
        Func::new(START_THREAD, 0x100, rules(START_THREAD, frame16())),
        Func::new(CLONE, 0x100, rules(CLONE, vec![Cfi::Undefined(RA)])),
        Func::new(CALL_MAIN, 0x100, rules(CALL_MAIN, frame16())),
        Func::new(START_MAIN, 0x100, rules(START_MAIN, frame16())),
        Func::new(TLS_DTORS, 0x100, rules(TLS_DTORS, frame16())),
        Func::new(RESTORER - 1, 0x11, rules(RESTORER, restorer_rules())).signal(),
    ];
    FakeObjects(vec![cfi::object(APP, false, &app), cfi::object(LIBC, true, &libc)])
}

/// Frames laid out for 16-byte frames: frame `i` has pc `pcs[i]`, sp
/// `STACK + 0x100 + 16 i`, and its return address (`pcs[i + 1]`) at sp + 8. The
/// stack's [`StackTops`] are where the outermost START_THREAD and START_MAIN
/// frames' CFAs are in this layout, as glibc's thread descriptor and
/// `__libc_stack_end` would say.
pub(super) struct Chain {
    /// The fake stack.
    pub(super) stack: FakeStack,
    /// The captured registers of frame 0.
    pub(super) ctx: Context,
}

impl Chain {
    /// Lays out `pcs` (frame 0 first).
    pub(super) fn new(pcs: &[u64]) -> Self {
        let mut stack = FakeStack::new(STACK, 0x1000);
        let mut ctx = Context::new();
        ctx.set(arch::SP, Self::sp(0));
        ctx.set_pc(pcs[0]);
        for (i, pc) in pcs.iter().enumerate().skip(1) {
            stack.put(Self::slot(i - 1), *pc);
        }
        let cfa_of =
            |f: u64| pcs.iter().rposition(|&pc| pc == ret(f)).map(|i| Self::sp(i as u64 + 1));
        stack.tops = StackTops {
            thread: cfa_of(START_THREAD),
            main: cfa_of(START_MAIN),
            ..StackTops::default()
        };
        Chain { stack, ctx }
    }

    /// Stack pointer of frame `i`.
    pub(super) const fn sp(i: u64) -> u64 {
        STACK + 0x100 + 16 * i
    }

    /// Return-address slot of frame `i`.
    pub(super) const fn slot(i: usize) -> u64 {
        Self::sp(i as u64) + 8
    }
}

/// Runs the walk and collects the frames it visited.
///
/// Every synthetic walk also runs twice more on copies of the stack, with an
/// unload count and a recipe cache of its own: once filling the cache, once
/// unwinding from the recipes it holds. Both must give the same result and
/// frames, so every rule, shape and error these tests cover checks the recipes.
pub(super) fn walk(
    ctx: &Context,
    stack: &mut FakeStack,
    objects: &mut FakeObjects,
) -> (Result<ExitSlot, WalkError>, Vec<Frame>) {
    let copies = [stack.clone(), stack.clone()];
    let mut frames = Vec::new();
    let result = find_exit_slot(ctx, stack, objects, &mut |f| frames.push(*f));
    let walked = (result, frames);
    let recipes = Box::new(RecipeCache::new());
    let rows = RowCache::new();
    let caches = Caches { rows: &rows, recipes: &recipes };
    let mut counted = CountedObjects { objects: objects.clone(), generation: 1 };
    for (pass, mut copy) in copies.into_iter().enumerate() {
        let mut frames = Vec::new();
        let result =
            find_exit_slot_cached(caches, MAX_FRAMES, ctx, &mut copy, &mut counted, &mut |f| {
                frames.push(*f)
            });
        let what = ["filling the recipe cache", "from recipes"][pass];
        assert_eq!((result, frames), walked, "the walk {what} differs");
    }
    walked
}

/// Walks a [`Chain`] of `pcs` through the default objects with `overrides`.
pub(super) fn walk_chain(
    pcs: &[u64],
    overrides: &[(u64, Vec<Cfi>)],
) -> (Result<ExitSlot, WalkError>, Vec<Frame>) {
    let mut chain = Chain::new(pcs);
    walk(&chain.ctx.clone(), &mut chain.stack, &mut objects(overrides))
}
