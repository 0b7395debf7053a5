//! The stack hijack: finds this thread's bottom return slot with the CFI walk and
//! points it at an exit trampoline copy; the trampoline runs the exit sequence and
//! continues at the original return address.

use core::cell::Cell;
use core::sync::atomic::Ordering;

use crate::arch;
use crate::status::{FallbackReason, Status, UnwindInfoFailure, WalkFailure};
use crate::{unwind_info, walk};

/// A live hijack of this thread's bottom return address.
pub(crate) struct Hijack {
    slot: ReturnSlot,
    /// The original return address, stripped of any pointer-authentication bits.
    original_return: usize,
    /// The slot's original word (signed, if the frame signs its return address).
    stored_original: usize,
    /// The trampoline entry.
    trampoline: usize,
    /// The word written to the slot: the entry, signed like the original.
    stored_trampoline: usize,
}

/// The stack word holding the target frame's return address. Only this thread
/// reads or writes it, and only while the frame that owns it is live.
#[derive(Clone, Copy)]
struct ReturnSlot(usize);

impl ReturnSlot {
    fn read(self) -> usize {
        // SAFETY: the walk proved the slot lies inside this thread's stack, is
        // 8-aligned, and belongs to an outer frame that is live while this thread
        // runs anything above it (a `ReturnSlot` is only used on its own thread
        // before the trampoline fires).
        unsafe { (self.0 as *const usize).read_volatile() }
    }

    fn write(self, value: usize) {
        // SAFETY: as in `read`; the word is a return address no Rust reference
        // points at, read only by the owning frame's `ret`.
        unsafe { (self.0 as *mut usize).write_volatile(value) }
    }
}

thread_local! {
    /// Set once the trampoline fired on this thread: its slot is gone, and records
    /// created later (TLS destructors) must use the fallback.
    static FIRED: Cell<bool> = const { Cell::new(false) };
}

impl Hijack {
    /// The public view.
    pub(crate) fn status(&self) -> Status {
        Status::Hijacked {
            slot: self.slot.0,
            original_return: self.original_return,
            trampoline: self.trampoline,
        }
    }

    /// Puts the original return address back, if the trampoline has not fired and
    /// the slot still points at it.
    pub(crate) fn restore(self) {
        if !FIRED.with(Cell::get) && self.slot.read() == self.stored_trampoline {
            self.slot.write(self.stored_original);
        }
    }
}

/// Hijacks this thread's bottom return address.
pub(crate) fn arm() -> Result<Hijack, FallbackReason> {
    if FIRED.with(Cell::get) {
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
    if !crate::pin::trampolines_pinned() {
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
    let slot = ReturnSlot(found.slot as usize);
    if slot.read() != stored_original {
        return Err(FallbackReason::StackWalk(WalkFailure(walk::WalkError::SlotMismatch)));
    }
    slot.write(stored_trampoline);
    crate::forced_unwind::arm();
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
    mark_fired();
    crate::forced_unwind::disarm();
    crate::exit::run(crate::status::ExitTrigger::Trampoline);
}

/// Sets this thread's `FIRED` flag: it is past its start routine, so no more
/// hijacks and no restores.
pub(crate) fn mark_fired() {
    FIRED.with(|fired| fired.set(true));
}
