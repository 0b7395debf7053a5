//! The stack hijack: finds this thread's bottom return slot with the CFI walk and
//! points it at an exit trampoline copy; the trampoline runs the exit sequence and
//! continues at the original return address.

use core::sync::atomic::Ordering;

use crate::arch;
use crate::record::arming::{self, Hijack, HijackedSlot};
use crate::status::{FallbackReason, UnwindInfoFailure, WalkFailure};
use crate::{unwind_info, walk};

/// Hijacks this thread's bottom return address.
pub(crate) fn arm() -> Result<Hijack, FallbackReason> {
    if arming::has_fired() {
        return Err(FallbackReason::ThreadExiting);
    }
    if arch::shadow_stack_enabled(arch::shadow_stack_status()) {
        return Err(FallbackReason::ShadowStack);
    }
    // The walk first: it refuses a thread with too little stack left before
    // anything deep runs (the pin's first call reads program headers and asks
    // `dladdr`, which overflowed a `PTHREAD_STACK_MIN` stack ahead of the check).
    let found = walk::walk_this_thread(&mut |_| {})
        .map_err(|error| FallbackReason::StackWalk(WalkFailure(error)))?;
    if !super::pin::trampolines_pinned() {
        return Err(FallbackReason::CannotPin);
    }
    let stored_original = found.return_address as usize;
    let original_return =
        arch::strip_return_address(found.return_address, found.ra_signed) as usize;
    let copy = claim_copy(original_return)?;
    let trampoline = arch::trampoline_pad(copy) + arch::TRAMPOLINE_ENTRY_OFFSET;
    // A signed frame authenticates the slot before returning: sign the trampoline
    // with the same key and modifier (the frame's CFA), here on the thread itself.
    let stored_trampoline = if found.ra_signed {
        arch::sign_return_address(trampoline as u64, found.cfa) as usize
    } else {
        trampoline
    };
    let slot = HijackedSlot::from_walk(found.slot as usize);
    if slot.read() != stored_original {
        return Err(FallbackReason::StackWalk(WalkFailure(walk::WalkError::SlotMismatch)));
    }
    slot.write(stored_trampoline);
    super::forced_unwind::arm();
    Ok(Hijack { slot, original_return, stored_original, trampoline, stored_trampoline })
}

/// The trampoline copy serving `original_return`, claiming a free one the first
/// time an address is seen. Its unwind info is announced before any thread uses it
/// (`announce` is serialized and idempotent, so a second thread waits for it).
fn claim_copy(original_return: usize) -> Result<usize, FallbackReason> {
    let copy = (0..arch::TRAMPOLINE_COPIES)
        .find(|&copy| {
            let cell = &arch::ORIGINAL_RETURNS[copy];
            // A load first: a copy already serving this address (every thread after
            // the first) is found without taking its cache line exclusively.
            match cell.load(Ordering::Acquire) {
                0 => {}
                existing => return existing == original_return,
            }
            match cell.compare_exchange(0, original_return, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => true,
                Err(existing) => existing == original_return,
            }
        })
        .ok_or(FallbackReason::TrampolinesExhausted)?;
    if !arch::trampoline_layout_ok(copy) {
        return Err(FallbackReason::TrampolineLayout);
    }
    unwind_info::announce(copy, arch::trampoline_pad(copy), original_return)
        .map_err(|error| FallbackReason::UnwindInfo(UnwindInfoFailure(error)))?;
    Ok(copy)
}

/// Called by the trampoline when a hijacked start routine returns: runs the exit
/// sequence. Never unwinds (the sequence catches every panic).
pub(crate) extern "C" fn on_trampoline() {
    arming::mark_fired();
    super::forced_unwind::disarm();
    super::run(crate::status::ExitTrigger::Trampoline);
}
