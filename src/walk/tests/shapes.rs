//! Synthetic walks: which frame is the target, which stack shapes are accepted,
//! and the structural errors (missing unwind info, bounds, CFA, depth).

use super::cfi::{self, Cfi};
use super::fake::{FakeObjects, FakeStack};
use super::isa::{RA, SP};
use super::world::*;
use crate::arch::{self, Context};
use crate::walk::{ExitSlot, MAX_FRAMES, RuleKind, WalkError};

/// The std/C thread shape: start routine → start_thread → clone3.
const THREAD: [u64; 5] = [ret(INNER), ret(MIDDLE), ret(START), ret(START_THREAD), ret(CLONE)];

#[test]
fn thread_shape_finds_start_routine_slot() {
    let (result, frames) = walk_chain(&THREAD, &[]);
    assert_eq!(
        result,
        Ok(ExitSlot {
            slot: Chain::slot(2),
            return_address: ret(START_THREAD),
            cfa: Chain::sp(3),
            ra_signed: false,
            frames: 5,
        })
    );
    let pcs: Vec<u64> = frames.iter().map(|f| f.pc).collect();
    assert_eq!(pcs, THREAD);
    let libc: Vec<bool> = frames.iter().map(|f| f.is_libc).collect();
    assert_eq!(libc, [false, false, false, true, true]);
    assert_eq!(frames[3].object_start, LIBC.start);
    assert_eq!(frames[0].object_start, APP.start);
    assert!(frames.iter().enumerate().all(|(i, f)| f.index == i));
    assert!(frames.windows(2).all(|w| w[0].cfa < w[1].cfa));
}

#[test]
fn main_thread_shape_is_accepted() {
    let pcs = [ret(INNER), ret(START), ret(CALL_MAIN), ret(START_MAIN), ret(ENTRY)];
    let (result, _) = walk_chain(&pcs, &[]);
    let found = result.expect("main shape");
    assert_eq!(found.slot, Chain::slot(1));
    assert_eq!(found.return_address, ret(CALL_MAIN));
    assert_eq!(found.frames, 5);
}

#[test]
fn tls_destructor_shape_is_rejected() {
    // run_dtors → __call_tls_dtors → start_thread → clone3: three libc frames.
    let pcs = [ret(INNER), ret(START), ret(TLS_DTORS), ret(START_THREAD), ret(CLONE)];
    let (result, _) = walk_chain(&pcs, &[]);
    assert_eq!(result, Err(WalkError::NotThreadStart { libc_frames: 3, other_frames: 0 }));
}

#[test]
fn constructor_shape_is_rejected() {
    // An ELF constructor returns into __libc_start_main_impl (call_init inlined).
    let pcs = [ret(INNER), ret(START), ret(START_MAIN), ret(ENTRY)];
    let (result, _) = walk_chain(&pcs, &[]);
    assert_eq!(result, Err(WalkError::NotThreadStart { libc_frames: 1, other_frames: 1 }));
}

#[test]
fn two_frames_after_libc_are_rejected() {
    let pcs = [ret(INNER), ret(START), ret(CALL_MAIN), ret(START_MAIN), ret(MIDDLE), ret(ENTRY)];
    let (result, _) = walk_chain(&pcs, &[]);
    assert_eq!(result, Err(WalkError::NotThreadStart { libc_frames: 2, other_frames: 2 }));
}

#[test]
fn undefined_return_address_before_libc_finds_no_target() {
    let (result, frames) = walk_chain(&[ret(INNER), ret(MIDDLE), ret(ENTRY)], &[]);
    assert_eq!(result, Err(WalkError::TargetNotFound));
    assert_eq!(frames.len(), 3);
}

#[test]
fn absent_return_address_rule_ends_the_walk() {
    // gimli reports no rule at all when the CIE never gives the return address one.
    let mut chain = Chain::new(&THREAD);
    let mut objects = objects(&[]);
    let libc_funcs = [
        cfi::Func::new(START_THREAD, 0x100, frame16()),
        cfi::Func::new(CLONE, 0x100, vec![]).no_ra(),
    ];
    objects.0[1] = cfi::object(LIBC, true, &libc_funcs);
    let (result, frames) = walk(&chain.ctx.clone(), &mut chain.stack, &mut objects);
    assert_eq!(result.map(|s| s.slot), Ok(Chain::slot(2)));
    assert_eq!(frames.len(), 5);
}

#[test]
fn target_is_the_outermost_candidate() {
    // INNER returns into libc too (a callback called by libc), but START is
    // further out.
    let pcs = [ret(INNER), ret(CALL_MAIN), ret(START), ret(START_THREAD), ret(CLONE)];
    let (result, _) = walk_chain(&pcs, &[]);
    assert_eq!(result.map(|s| s.slot), Ok(Chain::slot(2)));
}

#[test]
fn missing_fde_is_an_error() {
    let (result, _) = walk_chain(&[ret(INNER), ret(NO_FDE)], &[]);
    assert_eq!(result, Err(WalkError::NoFde { pc: ret(NO_FDE) - 1 }));
}

#[test]
fn pc_outside_every_object_is_an_error() {
    let (result, _) = walk_chain(&[ret(INNER), 0x9_0040], &[]);
    assert_eq!(result, Err(WalkError::NoObject { pc: 0x9_003f }));
}

#[test]
fn header_without_search_table_is_an_error() {
    let mut chain = Chain::new(&THREAD);
    let funcs = [cfi::Func::new(INNER, 0x100, frame16())];
    let mut objects = FakeObjects(vec![cfi::object_without_table(APP, &funcs)]);
    let (result, _) = walk(&chain.ctx.clone(), &mut chain.stack, &mut objects);
    assert_eq!(result, Err(WalkError::NoSearchTable { pc: ret(INNER) - 1 }));
}

#[test]
fn read_past_the_stack_top_is_an_error() {
    let mut stack = FakeStack::new(STACK, 4);
    let mut ctx = Context::new();
    // sp at the last word: the return address would be at the top itself.
    ctx.set(arch::SP, stack.top() - 8);
    ctx.set_pc(ret(INNER));
    let (result, _) = walk(&ctx, &mut stack, &mut objects(&[]));
    assert_eq!(result, Err(WalkError::OutOfBounds { addr: stack.top() }));
}

#[test]
fn misaligned_read_is_an_error() {
    let overrides = [(INNER, vec![Cfi::Cfa(SP, 13)])];
    let (result, _) = walk_chain(&THREAD, &overrides);
    assert_eq!(result, Err(WalkError::Misaligned { addr: Chain::sp(0) + 5 }));
}

#[test]
fn cfa_that_does_not_grow_is_an_error() {
    // MIDDLE claims CFA = sp + 0, equal to INNER's CFA.
    let overrides = [(MIDDLE, vec![Cfi::Cfa(SP, 0)])];
    let (result, _) = walk_chain(&THREAD, &overrides);
    assert_eq!(
        result,
        Err(WalkError::CfaNotGrowing { frame: 1, cfa: Chain::sp(1), previous: Chain::sp(1) })
    );
}

#[test]
fn slot_rule_must_be_offset() {
    let mut at_cfa_minus_8 = cfi::Expression::new();
    at_cfa_minus_8.op_breg(SP, 8);
    let overrides = [(START, vec![Cfi::Cfa(SP, 16), Cfi::Expression(RA, at_cfa_minus_8)])];
    let (result, _) = walk_chain(&THREAD, &overrides);
    assert_eq!(result, Err(WalkError::SlotRuleNotOffset { rule: RuleKind::Expression }));
}

#[test]
fn slot_that_changes_is_a_mismatch() {
    let mut chain = Chain::new(&THREAD);
    chain.stack.tamper = Some((Chain::slot(2), 0xdead));
    let (result, _) = walk(&chain.ctx.clone(), &mut chain.stack, &mut objects(&[]));
    assert_eq!(result, Err(WalkError::SlotMismatch));
}

#[test]
fn unknown_pc_is_an_error() {
    let mut chain = Chain::new(&THREAD);
    let mut ctx = Context::new();
    ctx.set(arch::SP, Chain::sp(0));
    let (result, _) = walk(&ctx, &mut chain.stack, &mut objects(&[]));
    assert_eq!(result, Err(WalkError::UnknownPc { frame: 0 }));
}

#[test]
fn endless_recursion_hits_the_frame_limit() {
    let frames = MAX_FRAMES + 10;
    let mut stack = FakeStack::new(STACK, 2 * frames + 8);
    let mut ctx = Context::new();
    ctx.set(arch::SP, STACK);
    ctx.set_pc(ret(RECUR));
    for i in 0..frames as u64 {
        stack.put(STACK + 16 * i + 8, ret(RECUR));
    }
    let (result, visited) = walk(&ctx, &mut stack, &mut objects(&[]));
    assert_eq!(result, Err(WalkError::TooManyFrames { limit: MAX_FRAMES }));
    assert_eq!(visited.len(), MAX_FRAMES);
}

/// A signal delivered at INTERRUPTED's first instruction, with HANDLER running:
/// HANDLER → RESTORER (signal frame) → INTERRUPTED → START → start_thread → clone3.
fn signal_stack() -> (FakeStack, Context, u64) {
    let mut stack = FakeStack::new(STACK, 0x1000);
    let handler_sp = STACK + 0x100;
    let restorer_sp = handler_sp + 16;
    let interrupted_sp = restorer_sp + 0x200;
    stack.put(handler_sp + 8, RESTORER);
    stack.put(restorer_sp + 128, 0x1234); // saved SAVED
    stack.put(restorer_sp + 160, interrupted_sp); // saved sp
    stack.put(restorer_sp + 168, INTERRUPTED); // saved pc: not a return address
    stack.put(interrupted_sp, ret(START)); // INTERRUPTED's own return address
    stack.put(interrupted_sp + 16, ret(START_THREAD));
    stack.put(interrupted_sp + 32, ret(CLONE));
    // start_thread's frame: sp = interrupted_sp + 24, CFA 16 above.
    stack.tops.thread = Some(interrupted_sp + 40);
    let mut ctx = Context::new();
    ctx.set(arch::SP, handler_sp);
    ctx.set_pc(ret(HANDLER));
    (stack, ctx, interrupted_sp)
}

#[test]
fn signal_frame_is_walked_through() {
    let (mut stack, ctx, interrupted_sp) = signal_stack();
    let (result, frames) = walk(&ctx, &mut stack, &mut objects(&[]));
    let pcs: Vec<u64> = frames.iter().map(|f| f.pc).collect();
    assert_eq!(
        pcs,
        [ret(HANDLER), RESTORER, INTERRUPTED, ret(START), ret(START_THREAD), ret(CLONE)]
    );
    assert!(frames[1].signal_trampoline);
    assert_eq!(frames[1].cfa, interrupted_sp);
    // The handler returns into libc too, but START is the outermost such frame.
    let found = result.expect("walk through the signal frame");
    assert_eq!(found.slot, interrupted_sp + 16);
    assert_eq!(found.return_address, ret(START_THREAD));
    assert_eq!(found.frames, 6);
}

#[test]
fn interrupted_pc_is_looked_up_exactly_only_after_a_signal_frame() {
    // Without augmentation `S` the interrupted pc is taken for a return
    // address and looked up at pc - 1: the gap before INTERRUPTED.
    let (mut stack, ctx, _) = signal_stack();
    let mut objects = objects(&[]);
    let plain = cfi::Func::new(RESTORER - 1, 0x11, restorer_rules());
    let libc_funcs = [
        plain,
        cfi::Func::new(START_THREAD, 0x100, frame16()),
        cfi::Func::new(CLONE, 0x100, vec![Cfi::Undefined(RA)]),
    ];
    objects.0[1] = cfi::object(LIBC, true, &libc_funcs);
    let (result, _) = walk(&ctx, &mut stack, &mut objects);
    assert_eq!(result, Err(WalkError::NoFde { pc: INTERRUPTED - 1 }));
}

#[test]
fn signal_frame_without_an_sp_rule_is_refused() {
    // Like Linux's arm64 vDSO `__kernel_rt_sigreturn`: only the frame record
    // (x29, x30) is described, so the interrupted sp, and with it every CFA
    // further out, would be a guess.
    let (mut stack, ctx, _) = signal_stack();
    let mut objects = objects(&[]);
    let mut rules = restorer_rules();
    rules.retain(|rule| !matches!(rule, Cfi::Expression(reg, _) if *reg == SP));
    let libc_funcs = [
        cfi::Func::new(RESTORER - 1, 0x11, rules).signal(),
        cfi::Func::new(START_THREAD, 0x100, frame16()),
        cfi::Func::new(CLONE, 0x100, vec![Cfi::Undefined(RA)]),
    ];
    objects.0[1] = cfi::object(LIBC, true, &libc_funcs);
    let (result, frames) = walk(&ctx, &mut stack, &mut objects);
    assert_eq!(result, Err(WalkError::SignalFrameWithoutSp { pc: RESTORER - 1 }));
    assert_eq!(frames.len(), 1, "only the handler was walked");
}

#[test]
fn search_table_count_past_the_header_is_refused() {
    // Found by fuzzing (`fuzz/walker_cfi`): an 8-byte FDE count of 2^64 - 1 made
    // gimli's binary search overflow `count / 2 * 8` (a panic in debug builds).
    let mut chain = Chain::new(&THREAD);
    let mut objects = objects(&[]);
    let app = &mut objects.0[0];
    let mut hdr = vec![1, 0x1b, 0x04, 0x3b]; // count udata8
    hdr.extend_from_slice(&app.eh_frame_hdr[4..8]);
    hdr.extend_from_slice(&u64::MAX.to_le_bytes());
    hdr.extend_from_slice(&app.eh_frame_hdr[12..]);
    app.eh_frame_hdr = hdr;
    let (result, _) = walk(&chain.ctx.clone(), &mut chain.stack, &mut objects);
    assert_eq!(result, Err(WalkError::BadSearchTable { pc: ret(INNER) - 1 }));
}
