//! Where x86_64 code leaves a return address, and where glibc 2.36 starts a
//! thread's and the main thread's first frames: the facts the stack walk checks
//! the target frame's CFI against (NOTES.md, "The CFI stack walk", "Slot checks").

/// The return-address slot relative to the CFA that every call leaves: a `call`
/// pushes the return address right below the caller's `rsp`, which the psABI
/// (§3.2.2, §3.7) defines as the CFA, so the slot is CFA - 8.
pub(crate) const CALL_RETURN_SLOT: Option<i64> = Some(-8);

/// The register an ISA's frame record pairs with the return address (none here:
/// the psABI has no frame record; `push rbp` is a convention).
pub(crate) const FRAME_RECORD_FP: Option<gimli::Register> = None;

/// The stack top glibc gives a thread whose descriptor (`pthread_self()`) is at
/// `descriptor`: `allocate_stack` (nptl/allocatestack.c, `TLS_TCB_AT_TP`) puts
/// it at `(char *) (pd + 1) - __nptl_tls_static_size_for_stack ()`, the static
/// TLS block and the descriptor being above it. `None` on overflow.
pub(crate) fn glibc_thread_stack_top(
    descriptor: u64,
    sizeof_pthread: u64,
    tls_static_size: u64,
) -> Option<u64> {
    descriptor.checked_add(sizeof_pthread)?.checked_sub(tls_static_size)
}

/// The stack pointer `_start` (sysdeps/x86_64/start.S) calls
/// `__libc_start_main` with, which is that function's CFA, given
/// `__libc_stack_end` (the entry sp, pointing at argc): `_start` pops argc,
/// aligns `rsp` down to 16 and pushes two words (`rax`, `rsp`).
pub(crate) fn main_entry_sp(stack_end: u64) -> Option<u64> {
    (stack_end.checked_add(8)? & !15).checked_sub(16)
}
