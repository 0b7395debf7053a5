//! Runtime unwind info for the exit trampoline copies, so every stack walker sees
//! the true stack through a hijacked frame: the in-process unwinder (libgcc or LLVM
//! libunwind: panics, `std::backtrace`) through `__register_frame`, and gdb through
//! its JIT interface.
//!
//! A copy's FDE names its original return address as a constant (a DWARF
//! expression cannot read thread-local storage), so each copy is announced once,
//! for one address, when first claimed. Nothing is ever deregistered or freed.

mod eh_frame;
mod error;
mod gdb_jit;
mod jit_object;
mod leak;
mod process_lock;
mod registry;

#[cfg(test)]
mod gdb_test;

use core::sync::atomic::{AtomicUsize, Ordering};

pub(crate) use error::UnwindInfoError;

use crate::arch;
use process_lock::ProcessLock;

/// What was done for one copy.
#[derive(Clone, Copy)]
struct Announced {
    /// The original return address the copy's FDE names.
    original_return: usize,
    /// The outcome, repeated to later callers.
    outcome: Result<(), UnwindInfoError>,
}

/// Per copy: whether it was announced, for which address, with what outcome.
static ANNOUNCED: ProcessLock<[Option<Announced>; arch::TRAMPOLINE_COPIES]> =
    ProcessLock::new([None; arch::TRAMPOLINE_COPIES]);

/// The original return address of each copy whose announcement succeeded (0: not
/// yet), the lock-free fast path of [`announce`].
static READY: [AtomicUsize; arch::TRAMPOLINE_COPIES] =
    [const { AtomicUsize::new(0) }; arch::TRAMPOLINE_COPIES];

/// Makes trampoline copy `copy` (pad byte at `pad`, continuing at
/// `original_return`) known to the in-process unwinder and to gdb.
///
/// Call it before any return slot points at the copy. Idempotent: later calls for
/// the same copy and address return the first outcome at the cost of a lock; a
/// call with another address is a [`UnwindInfoError::Conflict`]. On error the
/// copy's walkers may not see through it, so do not hijack with it.
pub(crate) fn announce(
    copy: usize,
    pad: usize,
    original_return: usize,
) -> Result<(), UnwindInfoError> {
    if copy >= arch::TRAMPOLINE_COPIES {
        return Err(UnwindInfoError::CopyOutOfRange);
    }
    // Lock-free once a copy is known: every thread's first use passes here, and a
    // fork child must not wait on a lock another parent thread held at the fork.
    if original_return != 0 && READY[copy].load(Ordering::Acquire) == original_return {
        return Ok(());
    }
    // A fork child that copied the lock held cannot know how far the parent's
    // announcement got: that copy, and any other not announced yet, are refused.
    let mut announced = ANNOUNCED.lock().map_err(|_| UnwindInfoError::ForkedMidAnnounce)?;
    if let Some(done) = announced[copy] {
        if done.original_return != original_return {
            return Err(UnwindInfoError::Conflict);
        }
        return done.outcome;
    }
    let outcome = make_known(copy, pad, original_return);
    announced[copy] = Some(Announced { original_return, outcome });
    if outcome.is_ok() {
        READY[copy].store(original_return, Ordering::Release);
    }
    outcome
}

/// Builds the copy's `.eh_frame` and ELF object, then registers both.
fn make_known(copy: usize, pad: usize, original_return: usize) -> Result<(), UnwindInfoError> {
    let eh_frame = leak::leak_aligned(&eh_frame::build(pad, original_return)?);
    // Built before anything is registered, so an error leaves no half-done state.
    let object = jit_object::build(copy, pad, eh_frame, eh_frame.as_ptr() as usize)?;
    let object = leak::leak_aligned(&object);
    registry::register(eh_frame, pad)?;
    gdb_jit::announce(object);
    Ok(())
}

/// Which stack walkers have been told about at least one trampoline copy, one
/// fixed line each; empty before the first copy is claimed.
pub(crate) fn describe() -> Vec<&'static str> {
    // READY holds exactly the copies whose announcement succeeded; no lock needed.
    let registered = READY.iter().any(|ready| ready.load(Ordering::Acquire) != 0);
    let mut lines = Vec::new();
    if registered {
        lines.push(registry::unwinder().description());
    }
    if gdb_jit::announced() > 0 {
        lines.push("GDB JIT interface (__jit_debug_descriptor)");
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_copy_is_refused() {
        assert_eq!(announce(arch::TRAMPOLINE_COPIES, 0, 0), Err(UnwindInfoError::CopyOutOfRange));
    }

    #[test]
    fn announce_registers_once_per_copy() {
        // The last copy: the hijack claims copies from 0 and never gets this far in
        // the unit tests.
        let copy = arch::TRAMPOLINE_COPIES - 1;
        let pad = arch::trampoline_pad(copy);
        let original = out_of_range_copy_is_refused as *const () as usize + 1;
        assert_eq!(announce(copy, pad, original), Ok(()));
        assert_eq!(announce(copy, pad, original), Ok(()), "idempotent");
        assert_eq!(announce(copy, pad, original + 1), Err(UnwindInfoError::Conflict));
        assert_eq!(registry::function_start(pad), Some(pad));
        let lines = describe();
        assert!(lines.contains(&registry::unwinder().description()), "{lines:?}");
        assert!(lines.contains(&"GDB JIT interface (__jit_debug_descriptor)"), "{lines:?}");
    }

    #[test]
    fn a_fork_child_refuses_what_a_parent_thread_was_announcing() {
        // Not the last copy, which `announce_registers_once_per_copy` announces.
        let copy = arch::TRAMPOLINE_COPIES - 2;
        let pad = arch::trampoline_pad(copy);
        let original =
            a_fork_child_refuses_what_a_parent_thread_was_announcing as *const () as usize + 1;
        // As if another thread were half-way through an announcement at the fork.
        let held = ANNOUNCED.lock().expect("this process");
        // SAFETY: the child only runs `announce` up to its lock (a getpid and a
        // CAS), alarm and _exit.
        match unsafe { libc::fork() } {
            0 => {
                // SAFETY: alarm and _exit have no preconditions.
                unsafe { libc::alarm(10) };
                let refused =
                    announce(copy, pad, original) == Err(UnwindInfoError::ForkedMidAnnounce);
                // SAFETY: as above.
                unsafe { libc::_exit(if refused { 0 } else { 1 }) }
            }
            -1 => panic!("fork failed"),
            child => {
                let mut status = 0;
                // SAFETY: `child` is our child; `status` is a valid out-pointer.
                assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
                assert!(libc::WIFEXITED(status), "child died (a hang?): status {status:#x}");
                assert_eq!(libc::WEXITSTATUS(status), 0, "the child did not refuse");
            }
        }
        drop(held);
    }

    #[test]
    fn no_static_fde_ends_where_copy_0_is_looked_up() {
        // Unwinders look a copy up at its return address - 1. Where that is the
        // pad itself (x86_64), an FDE of the code before copy 0 ending exactly
        // there would win in LLVM libunwind 14: the byte before must be uncovered.
        let pad = arch::trampoline_pad(0);
        if arch::TRAMPOLINE_ENTRY_OFFSET == 1 {
            assert_eq!(registry::function_start(pad - 1), None);
            // Whatever the layout of this build: the gap in front is there.
            // SAFETY: the 16 bytes before copy 0 are the gap in its own section.
            let gap = unsafe { core::slice::from_raw_parts((pad - 16) as *const u8, 16) };
            assert!(gap.iter().all(|&byte| byte == 0xcc), "{gap:02x?}");
        }
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            UnwindInfoError::Conflict.to_string(),
            "trampoline copy already announced for another return address"
        );
    }
}
