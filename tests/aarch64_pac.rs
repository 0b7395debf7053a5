//! aarch64 pointer authentication: a start routine whose frame signs its return
//! address (`paciasp` ... `autiasp`, as `-mbranch-protection=pac-ret` code does)
//! is hijacked like any other. Its slot gets the trampoline signed with the frame's
//! CFA, so the routine's own `autiasp` accepts it, libgcc (which authenticates with
//! `autia1716` and the CFA) walks through it, the at-exit handler runs before the
//! TLS destructors, and the thread exits cleanly with its return value. A routine
//! that does not sign keeps an unsigned slot.
//!
//! Run under `qemu-aarch64 -cpu max` (PAC with FPAC: a wrong signature is SIGILL at
//! `autiasp`) and `-cpu neoverse-v1` (PAC without FPAC: SIGSEGV at `ret`).
#![cfg(target_arch = "aarch64")]

mod common;

use std::ffi::{c_int, c_void};
use std::sync::Mutex;

use common::{EXPECT_HIJACK, Log, Tracked, libgcc, tls_probe};
use hijack_tls::Status;

/// Whether the CPU signs for real (`HWCAP_PACA`); without it `paciasp` is a NOP.
fn pac_enabled() -> bool {
    // SAFETY: `getauxval` has no preconditions.
    unsafe { libc::getauxval(libc::AT_HWCAP) & libc::HWCAP_PACA != 0 }
}

/// `addr` with its PAC field removed (`xpaclri`, a NOP without PAC).
fn strip(addr: usize) -> usize {
    let mut lr = addr;
    // SAFETY: `hint #7` is XPACLRI: it only rewrites x30.
    unsafe {
        std::arch::asm!("hint #7", inout("x30") lr, options(nomem, nostack, preserves_flags))
    };
    lr
}

/// What a start routine's body saw, for the test thread to check.
#[derive(Debug, Default)]
struct Seen {
    status: Option<Status>,
    /// The slot's word right after the hijack.
    slot_word: usize,
    /// libgcc's walk from the body: its ips and why it stopped.
    libgcc: (Vec<usize>, c_int),
}

/// One test's shared state, passed to the start routine as its argument.
struct Job {
    log: Log,
    seen: Mutex<Seen>,
    /// Leave with `pthread_exit` (a forced unwind through the routine's frame).
    exit: bool,
}

/// The body both assembly start routines call: registers a value, a handler and
/// the probe, records what it sees, and returns `arg + 1` (or calls
/// `pthread_exit` with it). "C-unwind": the forced unwind crosses this frame.
extern "C-unwind" fn body(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the `Job` passed by `run`, alive until the thread is joined.
    let job = unsafe { &*arg.cast::<Job>() };
    hijack_tls::set("value", Tracked::new("value", &job.log));
    tls_probe::log_alive_at_exit(&job.log);
    tls_probe::arm(&job.log);
    let status = hijack_tls::status();
    let slot_word = match status {
        // SAFETY: the slot is a word of this thread's own live stack (from status).
        Status::Hijacked { slot, .. } => unsafe { (slot as *const usize).read_volatile() },
        _ => 0,
    };
    *job.seen.lock().unwrap() = Seen { status: Some(status), slot_word, libgcc: libgcc::ips() };
    let result = arg.wrapping_add(1);
    if job.exit {
        // SAFETY: ends this raw pthread; the frames it unwinds are "C-unwind", Rust
        // or assembly with CFI.
        unsafe { common::unwinding::pthread_exit(result as usize) };
    }
    result
}

unsafe extern "C" {
    /// Signs its return address like pac-ret code, then calls [`body`].
    #[link_name = "hijack_tls_test_pac_signed_start"]
    safe fn signed_start(arg: *mut c_void) -> *mut c_void;
    /// The same routine without `paciasp`/`autiasp`.
    #[link_name = "hijack_tls_test_pac_unsigned_start"]
    safe fn unsigned_start(arg: *mut c_void) -> *mut c_void;
}

// Two start routines with a 16-byte frame record, as GCC 12 emits them; the signed
// one with `-mbranch-protection=pac-ret`. `.cfi_negate_ra_state`
// (DW_CFA_AARCH64_negate_ra_state, 0x2d) toggles RA_SIGN_STATE: 1 from `paciasp`
// to `autiasp`, which is where the saved x30 is signed.
std::arch::global_asm!(
    ".pushsection .text.hijack_tls_test_pac,\"ax\",@progbits",
    ".p2align 2",
    ".globl hijack_tls_test_pac_signed_start",
    ".hidden hijack_tls_test_pac_signed_start",
    ".type hijack_tls_test_pac_signed_start, %function",
    "hijack_tls_test_pac_signed_start:",
    ".cfi_startproc",
    // paciasp: sign x30 with key IA and sp (= this frame's CFA); also a BTI
    // landing pad for pthread's `blr`.
    "hint #25",
    ".cfi_negate_ra_state",
    "stp x29, x30, [sp, #-16]!",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset 29, -16",
    ".cfi_offset 30, -8",
    "mov x29, sp",
    "bl {body}",
    // x30 = the slot's word: the trampoline entry, signed by the hijack.
    "ldp x29, x30, [sp], #16",
    ".cfi_restore 30",
    ".cfi_restore 29",
    ".cfi_def_cfa_offset 0",
    // autiasp: authenticate x30 against sp, the CFA again; a wrong signature
    // faults here (FPAC) or at the `ret`.
    "hint #29",
    ".cfi_negate_ra_state",
    "ret",
    ".cfi_endproc",
    ".size hijack_tls_test_pac_signed_start, . - hijack_tls_test_pac_signed_start",
    "",
    ".p2align 2",
    ".globl hijack_tls_test_pac_unsigned_start",
    ".hidden hijack_tls_test_pac_unsigned_start",
    ".type hijack_tls_test_pac_unsigned_start, %function",
    "hijack_tls_test_pac_unsigned_start:",
    ".cfi_startproc",
    "stp x29, x30, [sp, #-16]!",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset 29, -16",
    ".cfi_offset 30, -8",
    "mov x29, sp",
    "bl {body}",
    "ldp x29, x30, [sp], #16",
    ".cfi_restore 30",
    ".cfi_restore 29",
    ".cfi_def_cfa_offset 0",
    "ret",
    ".cfi_endproc",
    ".size hijack_tls_test_pac_unsigned_start, . - hijack_tls_test_pac_unsigned_start",
    ".popsection",
    body = sym body,
);

/// Runs `start` on a raw pthread with a fresh job; returns the thread's result,
/// the log and what the body saw.
fn run(start: extern "C" fn(*mut c_void) -> *mut c_void, exit: bool) -> (usize, Log, Seen) {
    let job = Job { log: Log::default(), seen: Mutex::default(), exit };
    let mut thread: libc::pthread_t = 0;
    let arg = &job as *const Job as *mut c_void;
    // SAFETY: valid start routine; `job` outlives the thread, joined below.
    assert_eq!(unsafe { libc::pthread_create(&mut thread, std::ptr::null(), start, arg) }, 0);
    let mut result = std::ptr::null_mut();
    // SAFETY: joined once.
    assert_eq!(unsafe { libc::pthread_join(thread, &mut result) }, 0);
    let result = (result as usize).wrapping_sub(arg as usize);
    let seen = std::mem::take(&mut *job.seen.lock().unwrap());
    (result, job.log, seen)
}

/// The checks every case shares: exit order, return value, libgcc's walk.
fn check(result: usize, log: &Log, seen: &Seen) -> Option<(usize, usize, usize)> {
    assert_eq!(result, 1, "the start routine's return value reaches pthread_join");
    let (ips, reason) = &seen.libgcc;
    assert_eq!(*reason, libgcc::URC_END_OF_STACK, "libgcc walks to the end: {ips:x?}");
    let status = seen.status.expect("body ran");
    let Status::Hijacked { slot, original_return, trampoline } = status else {
        assert!(!EXPECT_HIJACK, "expected a hijack, got {status}");
        return None;
    };
    assert_eq!(
        log.events(),
        ["handler: thread_local alive = true", "drop value", "thread_local destructor"]
    );
    // libgcc authenticated the slot (when signed) and stepped through the copy.
    let at = ips.iter().position(|&ip| ip == trampoline);
    let at = at.unwrap_or_else(|| panic!("no trampoline {trampoline:#x} in {ips:x?}"));
    assert_eq!(ips.get(at + 1), Some(&original_return), "{ips:x?}");
    Some((slot, original_return, trampoline))
}

#[test]
fn signed_start_routine_is_hijacked_with_a_signed_slot() {
    let (result, log, seen) = run(signed_start, false);
    let Some((_, _, trampoline)) = check(result, &log, &seen) else { return };
    assert_eq!(strip(seen.slot_word), trampoline, "the slot holds the trampoline");
    if pac_enabled() {
        assert_ne!(seen.slot_word, trampoline, "signed: {:#x}", seen.slot_word);
    } else {
        assert_eq!(seen.slot_word, trampoline, "without PAC nothing is signed");
    }
}

#[test]
fn unsigned_start_routine_keeps_an_unsigned_slot() {
    let (result, log, seen) = run(unsigned_start, false);
    let Some((_, _, trampoline)) = check(result, &log, &seen) else { return };
    assert_eq!(seen.slot_word, trampoline, "not signed: {:#x}", seen.slot_word);
}

#[test]
fn pthread_exit_unwinds_through_the_signed_frame() {
    // glibc's forced unwind authenticates the signed slot while stepping out of
    // the start routine; the exit sequence then runs once, from the cleanup buffer.
    let (result, log, seen) = run(signed_start, true);
    let events = log.events();
    assert_eq!(result, 1, "pthread_exit's value reaches pthread_join");
    assert_eq!(events.iter().filter(|e| e.starts_with("handler")).count(), 1, "{events:?}");
    assert_eq!(log.count("drop value"), 1, "{events:?}");
    if EXPECT_HIJACK {
        assert!(matches!(seen.status, Some(Status::Hijacked { .. })), "{:?}", seen.status);
        assert_eq!(events[0], "handler: thread_local alive = true", "{events:?}");
    }
}
