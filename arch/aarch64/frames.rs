//! Where aarch64 code keeps a return address, and where glibc 2.36 starts a
//! thread's and the main thread's first frames: the facts the stack walk checks
//! the target frame's CFI against (NOTES.md, "The CFI stack walk", "Slot checks").

use gimli::AArch64;

/// The return-address slot relative to the CFA that every call leaves: none, as
/// `bl`/`blr` leave the return address in x30 and the callee decides where (if
/// anywhere) to store it.
pub(crate) const CALL_RETURN_SLOT: Option<i64> = None;

/// The frame pointer of AAPCS64's frame record (§6.4.6, "The Frame Pointer"): a
/// frame that saves x29 and x30 saves them as one record, x29 in the lower word
/// and x30 (the return address) right above it, as `stp x29, x30, [sp, #-n]!`
/// stores them; GCC and LLVM pair them whenever both are saved.
pub(crate) const FRAME_RECORD_FP: Option<gimli::Register> = Some(AArch64::X29);

/// The stack top glibc gives a thread whose descriptor (`pthread_self()`) is at
/// `descriptor`: `allocate_stack` (nptl/allocatestack.c, `TLS_DTV_AT_TP`) puts
/// it at `(char *) (pd - 1)`, one `struct pthread` below the descriptor, the
/// static TLS block being above the descriptor. `None` on overflow.
pub(crate) fn glibc_thread_stack_top(
    descriptor: u64,
    sizeof_pthread: u64,
    _tls_static_size: u64,
) -> Option<u64> {
    descriptor.checked_sub(sizeof_pthread)
}

/// The stack pointer `_start` (sysdeps/aarch64/start.S) calls
/// `__libc_start_main` with, which is that function's CFA, given
/// `__libc_stack_end` (the entry sp, pointing at argc): `_start` leaves sp as
/// the kernel set it (`mov x6, sp` passes it as the stack end).
pub(crate) fn main_entry_sp(stack_end: u64) -> Option<u64> {
    Some(stack_end)
}
