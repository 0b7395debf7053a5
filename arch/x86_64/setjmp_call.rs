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
//!  | return into caller    |
//!  | saved rbx             |
//!  | saved r12             |
//!  | saved r13             | <- rsp (16-aligned) at both calls: the sp the
//!  +-----------------------+    jmp_buf records, and the callback's CFA
//! ```
//! `longjmp` restores rbx, rbp, r12-r15 and rsp as `sigsetjmp` saw them, so
//! `callback` and `data`, kept in r12/r13 across the first call, are still
//! there; the caller's values of those registers are on the frame, untouched.

/// Words of glibc's `__jmp_buf` on x86_64 (`sysdeps/x86_64/jmpbuf-offsets.h`:
/// rbx, rbp, r12-r15, rsp, pc).
pub(crate) const JMP_BUF_WORDS: usize = 8;

core::arch::global_asm!(
    ".pushsection .text.hijack_tls_call_under_setjmp,\"ax\",@progbits",
    ".globl hijack_tls_call_under_setjmp",
    ".hidden hijack_tls_call_under_setjmp",
    ".type hijack_tls_call_under_setjmp, @function",
    ".p2align 4",
    "hijack_tls_call_under_setjmp:",
    ".cfi_startproc",
    "push rbx",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset rbx, -16",
    "push r12",
    ".cfi_def_cfa_offset 24",
    ".cfi_offset r12, -24",
    "push r13",
    ".cfi_def_cfa_offset 32",
    ".cfi_offset r13, -32",
    // rdi = buf, rsi = sigsetjmp, rdx = callback, rcx = data.
    "mov r12, rdx",
    "mov r13, rcx",
    "mov rax, rsi",
    // sigsetjmp(buf, 0): the signal mask is not saved (glibc's own
    // pthread_cleanup_push does the same).
    "xor esi, esi",
    "call rax",
    // Nonzero: back from a longjmp; eax = 1 is the result.
    "test eax, eax",
    "jnz 2f",
    "mov rdi, r13",
    "call r12",
    "xor eax, eax",
    "2:",
    "pop r13",
    ".cfi_def_cfa_offset 24",
    "pop r12",
    ".cfi_def_cfa_offset 16",
    "pop rbx",
    ".cfi_def_cfa_offset 8",
    "ret",
    ".cfi_endproc",
    ".size hijack_tls_call_under_setjmp, . - hijack_tls_call_under_setjmp",
    ".popsection",
);
