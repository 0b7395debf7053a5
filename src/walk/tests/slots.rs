//! The checks on the target's return-address slot and on where the frames below
//! it end: each test's CFI or stack lies in one way only and passes every other
//! check, so each fails if its check is removed.

use super::cfi::Cfi;
use super::isa::{RA, SP};
use super::world::*;
use crate::arch;
use crate::walk::{ExitSlot, StackTops, WalkError};

/// The thread shape: START is frame 2, start_thread frame 3.
const THREAD: [u64; 5] = [ret(INNER), ret(MIDDLE), ret(START), ret(START_THREAD), ret(CLONE)];
/// The main thread shape: START is frame 1, `__libc_start_main` frame 3.
const MAIN: [u64; 5] = [ret(INNER), ret(START), ret(CALL_MAIN), ret(START_MAIN), ret(ENTRY)];

/// Walks `pcs` laid out as a [`Chain`] with START's rules `start`, after `edit`.
fn walk_edited(
    pcs: &[u64],
    start: Option<Vec<Cfi>>,
    edit: impl FnOnce(&mut Chain),
) -> Result<ExitSlot, WalkError> {
    let mut chain = Chain::new(pcs);
    edit(&mut chain);
    let overrides: Vec<_> = start.into_iter().map(|rules| (START, rules)).collect();
    walk(&chain.ctx.clone(), &mut chain.stack, &mut objects(&overrides)).0
}

#[test]
fn honest_shapes_pass_every_check() {
    assert_eq!(walk_edited(&THREAD, None, |_| {}).map(|s| s.slot), Ok(Chain::slot(2)));
    assert_eq!(walk_edited(&MAIN, None, |_| {}).map(|s| s.slot), Ok(Chain::slot(1)));
}

#[test]
fn slot_naming_a_copy_below_the_return_address() {
    // START pushed a copy of its return address at CFA - 16 and names it.
    let rules = vec![Cfi::Cfa(SP, 16), Cfi::Offset(RA, -16)];
    let result = walk_edited(&THREAD, Some(rules), |chain| {
        chain.stack.put(Chain::sp(2), ret(START_THREAD));
    });
    match arch::CALL_RETURN_SLOT {
        Some(expected) => {
            assert_eq!(result, Err(WalkError::SlotNotAtCall { offset: -16, expected }))
        }
        // aarch64: any slot of the frame may hold x30; this one is the right value.
        None => assert_eq!(result.map(|s| s.slot), Ok(Chain::sp(2))),
    }
}

#[test]
fn slot_at_the_cfa() {
    // The word at the CFA is start_thread's (its sp); it holds a copy of the
    // return address.
    let rules = vec![Cfi::Cfa(SP, 16), Cfi::Offset(RA, 0)];
    let result = walk_edited(&THREAD, Some(rules), |chain| {
        chain.stack.put(Chain::sp(3), ret(START_THREAD));
    });
    let expected = match arch::CALL_RETURN_SLOT {
        Some(expected) => WalkError::SlotNotAtCall { offset: 0, expected },
        None => WalkError::SlotOutsideFrame { offset: 0, frame_size: 16 },
    };
    assert_eq!(result, Err(expected));
}

#[test]
fn slot_below_the_frames_own_sp() {
    // The named slot is 16 below START's sp (MIDDLE's CFA), in MIDDLE's frame,
    // where a copy of the return address is.
    let rules = vec![Cfi::Cfa(SP, 16), Cfi::Offset(RA, -32)];
    let result = walk_edited(&THREAD, Some(rules), |chain| {
        chain.stack.put(Chain::sp(1), ret(START_THREAD));
    });
    let expected = match arch::CALL_RETURN_SLOT {
        Some(expected) => WalkError::SlotNotAtCall { offset: -32, expected },
        None => WalkError::SlotOutsideFrame { offset: -32, frame_size: 16 },
    };
    assert_eq!(result, Err(expected));
}

#[test]
fn caller_sp_other_than_the_cfa() {
    // START's CFI restores start_thread's sp to CFA + 8; the stack holds what
    // start_thread's frame would then read.
    let rules = vec![Cfi::Cfa(SP, 16), Cfi::ValOffset(SP, 8)];
    let result = walk_edited(&THREAD, Some(rules), |chain| {
        chain.stack.put(Chain::sp(4), ret(CLONE));
        chain.stack.tops.thread = Some(Chain::sp(4) + 8);
    });
    let cfa = Chain::sp(3);
    assert_eq!(result, Err(WalkError::CallerSpNotCfa { sp: Some(cfa + 8), cfa }));
}

#[test]
fn frames_moved_into_a_copy_of_the_stack_top() {
    // START's CFA points 0x100 above the real one, at a verbatim copy of the
    // stack's top: every value read there is consistent, only the place is wrong.
    const SHIFT: u64 = 0x100;
    let rules = vec![Cfi::Cfa(SP, 16 + SHIFT as i32)];
    let result = walk_edited(&THREAD, Some(rules), |chain| {
        for addr in (Chain::slot(2)..Chain::sp(6)).step_by(8) {
            let word = chain.stack.words[((addr - STACK) / 8) as usize];
            chain.stack.put(addr + SHIFT, word);
        }
    });
    let (cfa, top) = (Chain::sp(4) + SHIFT, Chain::sp(4));
    assert_eq!(result, Err(WalkError::NotAtStackTop { cfa, top }));
}

#[test]
fn thread_stack_top_elsewhere_or_unknown() {
    let moved = walk_edited(&THREAD, None, |chain| chain.stack.tops.thread = Some(Chain::sp(5)));
    assert_eq!(moved, Err(WalkError::NotAtStackTop { cfa: Chain::sp(4), top: Chain::sp(5) }));
    // A thread's end is never checked against the main thread's.
    let unknown = walk_edited(&THREAD, None, |chain| {
        chain.stack.tops =
            StackTops { thread: None, main: Some(Chain::sp(4)), ..StackTops::default() }
    });
    assert_eq!(unknown, Err(WalkError::StackTopUnknown));
}

#[test]
fn main_stack_top_elsewhere_or_unknown() {
    let moved = walk_edited(&MAIN, None, |chain| chain.stack.tops.main = Some(Chain::sp(3)));
    assert_eq!(moved, Err(WalkError::NotAtStackTop { cfa: Chain::sp(4), top: Chain::sp(3) }));
    let unknown = walk_edited(&MAIN, None, |chain| {
        chain.stack.tops =
            StackTops { thread: Some(Chain::sp(4)), main: None, ..StackTops::default() }
    });
    assert_eq!(unknown, Err(WalkError::StackTopUnknown));
}

/// aarch64 pointer authentication: a signed slot is bound to its frame's CFA.
#[cfg(target_arch = "aarch64")]
mod signed {
    use super::super::cfi::{self, Cfi};
    use super::super::fake::FakeStack;
    use super::super::world::*;
    use crate::arch::{self, Context};
    use crate::walk::{ExitSlot, WalkError};
    use gimli::AArch64;

    /// INNER's sp; START's sp is 16 above it.
    const INNER_SP: u64 = STACK + 0x100;
    /// START's sp.
    const START_SP: u64 = INNER_SP + 16;
    /// START's real CFA: a 64-byte frame, its frame record at the top.
    const REAL_CFA: u64 = START_SP + 64;
    /// start_thread's frame pointer: its 32-byte frame's record is at its sp + 16
    /// and its CFA is `x29 + 16`, as glibc's `start_thread` has `x29 + 48`.
    const THREAD_FP: u64 = REAL_CFA + 16;

    /// INNER → START → start_thread → thread_start with START's frame record at
    /// REAL_CFA - 16, signed for REAL_CFA, and a verbatim copy of that record at
    /// START_SP + 16. START's CFI says its CFA is `START_SP + cfa_offset`, with
    /// the record at CFA - 16; start_thread's CFA comes from x29, so both a
    /// truthful and a lying START end the tail at the stack top.
    fn walk_signed(cfa_offset: i32) -> Result<ExitSlot, WalkError> {
        let signed = arch::sign_return_address(ret(START_THREAD), REAL_CFA);
        let mut stack = FakeStack::new(STACK, 0x1000);
        stack.put(INNER_SP + 8, ret(START));
        for record in [REAL_CFA - 16, START_SP + 16] {
            stack.put(record, THREAD_FP);
            stack.put(record + 8, signed);
        }
        stack.put(THREAD_FP, 0);
        stack.put(THREAD_FP + 8, ret(CLONE));
        stack.tops.thread = Some(THREAD_FP + 16);
        let mut ctx = Context::new();
        ctx.set(AArch64::SP, INNER_SP);
        ctx.set_pc(ret(INNER));
        let start_rules = vec![
            Cfi::NegateRaState,
            Cfi::Cfa(AArch64::SP, cfa_offset),
            Cfi::Offset(AArch64::X29, -16),
            Cfi::Offset(AArch64::X30, -8),
        ];
        let mut objects = objects(&[(START, start_rules)]);
        let thread_rules = vec![Cfi::Cfa(AArch64::X29, 16), Cfi::Offset(AArch64::X29, -16)];
        let libc_funcs = [
            cfi::Func::new(START_THREAD, 0x100, thread_rules),
            cfi::Func::new(CLONE, 0x100, vec![Cfi::Cfa(AArch64::SP, 0)]).no_ra(),
        ];
        objects.0[1] = cfi::object(LIBC, true, &libc_funcs);
        walk(&ctx, &mut stack, &mut objects).0
    }

    #[test]
    fn signed_slot_at_its_own_cfa_passes() {
        let found = walk_signed(64).map(|s| (s.slot, s.cfa, s.ra_signed));
        assert_eq!(found, Ok((REAL_CFA - 8, REAL_CFA, true)));
    }

    #[test]
    fn signed_slot_in_a_copied_frame_record_is_refused() {
        // The lie: CFA = START_SP + 32, so the record is the copy at START_SP + 16.
        // x29 read there is start_thread's real one, so the tail ends at the real
        // stack top; only the signature, made for REAL_CFA, gives it away.
        let result = walk_signed(32);
        if arch::pointer_auth_supported() {
            let cfa = START_SP + 32;
            assert_eq!(result, Err(WalkError::SignedForAnotherCfa { cfa }));
        } else {
            // Without PAC nothing is signed and the check is vacuous: the copy
            // is believed (NOTES.md, "Slot checks").
            assert_eq!(result.map(|s| s.slot), Ok(START_SP + 24));
        }
    }
}
