//! The real [`Memory`]: bounds-checked reads of this thread's live stack. Every word
//! the walker reads from the stack goes through it, never through a raw dereference
//! of an unchecked address.

use crate::arch::Context;
use crate::walk::source::check_word;
use crate::walk::{Memory, StackTops, WalkError};

/// Stack the walk may use below its capture point: the measured peak of a first use
/// (about 27 KiB unoptimised, 11 KiB optimised, mostly gimli's fixed-size unwind
/// context and the walk's frame) with a margin.
pub(crate) const WALK_STACK_NEED: u64 = if cfg!(debug_assertions) { 32 << 10 } else { 16 << 10 };

/// The live part of the current thread's stack: from the walk's first captured
/// stack pointer up to the top of the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StackMemory {
    /// Lowest readable address.
    lo: u64,
    /// One past the highest readable address.
    hi: u64,
    /// Where the thread's start frames are.
    tops: StackTops,
}

/// `sp` must be inside `[lo, hi)` with at least [`WALK_STACK_NEED`] bytes below it.
fn check_room(sp: u64, lo: u64, hi: u64) -> Result<(), WalkError> {
    if sp < lo || sp >= hi {
        return Err(WalkError::StackBounds);
    }
    if sp - lo < WALK_STACK_NEED {
        return Err(WalkError::LowStack { left: sp - lo, need: WALK_STACK_NEED });
    }
    Ok(())
}

impl StackMemory {
    /// The current thread's stack above `ctx`'s stack pointer.
    ///
    /// The lower bound is the captured sp, not the stack's own low end: every
    /// frame the walk visits lies above it, and the low end may include the guard
    /// page. The captured frame must belong to the current thread and still be
    /// live (as it is inside [`with_context`](crate::arch::with_context)).
    ///
    /// Not async-signal-safe: `pthread_getattr_np`, which the bounds come from
    /// until the descriptor's stack fields are located and always on the main
    /// thread, allocates, and for the main thread it reads `/proc/self/maps`.
    ///
    /// Fails with [`WalkError::LowStack`] when less than [`WALK_STACK_NEED`] bytes of
    /// stack are left below `ctx`'s stack pointer: the walk would overflow the
    /// stack, so the thread falls back instead.
    #[cfg(test)]
    pub(crate) fn current_thread(ctx: &Context) -> Result<Self, WalkError> {
        Self::on_stack(ctx, super::thread_stack::current()?)
    }

    /// The current thread's stack above `ctx`'s stack pointer, within the bounds
    /// [`room`](Self::room) returned (the checks of `current_thread` above).
    pub(crate) fn on_stack(ctx: &Context, (lo, hi): (u64, u64)) -> Result<Self, WalkError> {
        let sp = ctx.sp().ok_or(WalkError::StackBounds)?;
        check_room(sp, lo, hi)?;
        Ok(StackMemory { lo: sp, hi, tops: super::stack_top::current(sp, hi) })
    }
    /// The current thread's stack bounds, checked from the caller's frame: fails
    /// with [`WalkError::LowStack`] if less than [`WALK_STACK_NEED`] bytes are
    /// left below it. [`walk_this_thread`](crate::walk::walk_this_thread) asks first
    /// thing, from a shallow frame: the register capture and the walk's closures
    /// add about 1.5 KiB in a debug build, and on a `PTHREAD_STACK_MIN` stack
    /// they overflowed before the check in [`on_stack`](Self::on_stack) ran.
    ///
    /// The sp is the captured register, not a local's address: under
    /// AddressSanitizer's use-after-return detection a local whose address is
    /// taken lives on a "fake stack" on the heap, and every walk failed here.
    #[inline(never)]
    pub(crate) fn room() -> Result<(u64, u64), WalkError> {
        let sp = crate::arch::with_context(|ctx| ctx.sp()).ok_or(WalkError::StackBounds)?;
        let (lo, hi) = super::thread_stack::current()?;
        check_room(sp, lo, hi)?;
        Ok((lo, hi))
    }

    /// The bounds `[lo, hi)` this reader allows.
    #[cfg(test)]
    pub(crate) fn bounds(&self) -> (u64, u64) {
        (self.lo, self.hi)
    }
}

impl Memory for StackMemory {
    fn read_u64(&mut self, addr: u64) -> Result<u64, WalkError> {
        check_word(addr, self.lo, self.hi)?;
        let ptr = core::ptr::with_exposed_provenance::<u64>(addr as usize);
        // SAFETY: `[lo, hi)` lies inside this thread's stack mapping, between the
        // walk's own captured frame and the stack top, which is mapped, readable
        // and live while the walk runs (the walk executes below `lo`).
        // `check_word` proved the 8 bytes at `addr` are inside it and aligned.
        // The read is volatile because these bytes belong to other live frames.
        Ok(unsafe { ptr.read_volatile() })
    }

    fn stack_tops(&self) -> StackTops {
        self.tops
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_stack_names_what_is_left_and_what_the_walk_needs() {
        let (lo, hi) = (0x10_0000, 0x20_0000);
        let sp = lo + WALK_STACK_NEED - 8;
        let error = check_room(sp, lo, hi).expect_err("too little room");
        assert_eq!(error, WalkError::LowStack { left: WALK_STACK_NEED - 8, need: WALK_STACK_NEED });
        assert_eq!(
            error.to_string(),
            format!(
                "only {} bytes of stack left, the walk may need {WALK_STACK_NEED}",
                WALK_STACK_NEED - 8
            )
        );
        assert_eq!(check_room(lo + WALK_STACK_NEED, lo, hi), Ok(()));
    }

    #[test]
    fn reads_own_stack() {
        let word: u64 = 0x1122_3344_5566_7788;
        let addr = &word as *const u64 as u64;
        crate::arch::with_context(|ctx| {
            let mut mem = StackMemory::current_thread(ctx).expect("stack bounds");
            let (lo, hi) = mem.bounds();
            assert!(lo < addr && addr < hi);
            assert_eq!(mem.read_u64(addr), Ok(word));
            assert_eq!(mem.read_u64(hi), Err(WalkError::OutOfBounds { addr: hi }));
            assert!(mem.read_u64(lo - 8).is_err());
        });
    }
}
