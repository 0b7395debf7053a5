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
        chain.stack.tops = StackTops { thread: None, main: Some(Chain::sp(4)) }
    });
    assert_eq!(unknown, Err(WalkError::StackTopUnknown));
}

#[test]
fn main_stack_top_elsewhere_or_unknown() {
    let moved = walk_edited(&MAIN, None, |chain| chain.stack.tops.main = Some(Chain::sp(3)));
    assert_eq!(moved, Err(WalkError::NotAtStackTop { cfa: Chain::sp(4), top: Chain::sp(3) }));
    let unknown = walk_edited(&MAIN, None, |chain| {
        chain.stack.tops = StackTops { thread: Some(Chain::sp(4)), main: None }
    });
    assert_eq!(unknown, Err(WalkError::StackTopUnknown));
}
