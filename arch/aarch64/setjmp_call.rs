//! A call under a `setjmp` point: the one piece of the cancel-buffer catch
//! (`src/exit/cancel/catch.rs`) that must be assembly, because a function that
//! returns twice cannot be called from Rust.
//!
//! `hijack_tls_call_under_setjmp(buf, sigsetjmp, callback, data)` calls
//! `sigsetjmp(buf, 0)`; on its first return it calls `callback(data)` and returns
//! 0; when a `longjmp` into `buf` makes `sigsetjmp` return again (glibc's
//! forced-unwind stop function does this, `nptl/unwind.c`), it returns 1.
//!
//! ```text
//!  | caller's frame        |
//!  +-----------------------+ <- CFA
//!  | saved x20             |
//!  | saved x19             |
//!  | saved x30             |
//!  | saved x29             | <- sp = x29 (16-aligned) at both calls
//!  +-----------------------+
//! ```
//! `longjmp` restores x19-x30 and sp as `sigsetjmp` saw them, so `callback` and
//! `data`, kept in x19/x20 across the first call, are still there. It comes back
//! with an indirect branch (`br`), which in a BTI-guarded page must land on a
//! `bti j`: one follows the call (a no-op hint elsewhere).

/// Words of glibc's `__jmp_buf` on aarch64 (`sysdeps/aarch64/bits/setjmp.h`:
/// 22 `unsigned long long`: x19-x30, sp, d8-d15 and spare words).
pub(crate) const JMP_BUF_WORDS: usize = 22;

core::arch::global_asm!(
    ".pushsection .text.hijack_tls_call_under_setjmp,\"ax\",@progbits",
    ".globl hijack_tls_call_under_setjmp",
    ".hidden hijack_tls_call_under_setjmp",
    ".type hijack_tls_call_under_setjmp, %function",
    ".p2align 4",
    "hijack_tls_call_under_setjmp:",
    ".cfi_startproc",
    // bti c: the call into here may be indirect in a BTI-guarded build.
    "hint #34",
    "stp x29, x30, [sp, #-32]!",
    ".cfi_def_cfa_offset 32",
    ".cfi_offset x29, -32",
    ".cfi_offset x30, -24",
    "mov x29, sp",
    "stp x19, x20, [sp, #16]",
    ".cfi_offset x19, -16",
    ".cfi_offset x20, -8",
    // x0 = buf, x1 = sigsetjmp, x2 = callback, x3 = data.
    "mov x19, x2",
    "mov x20, x3",
    "mov x9, x1",
    // sigsetjmp(buf, 0): the signal mask is not saved (glibc's own
    // pthread_cleanup_push does the same).
    "mov w1, #0",
    "blr x9",
    // bti j: longjmp returns here with `br`.
    "hint #36",
    // Nonzero: back from a longjmp; w0 = 1 is the result.
    "cbnz w0, 2f",
    "mov x0, x20",
    "blr x19",
    "mov w0, #0",
    "2:",
    "ldp x19, x20, [sp, #16]",
    ".cfi_restore x19",
    ".cfi_restore x20",
    "ldp x29, x30, [sp], #32",
    ".cfi_restore x29",
    ".cfi_restore x30",
    ".cfi_def_cfa_offset 0",
    "ret",
    ".cfi_endproc",
    ".size hijack_tls_call_under_setjmp, . - hijack_tls_call_under_setjmp",
    ".popsection",
);
