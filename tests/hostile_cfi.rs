//! Start routines whose CFI lies about where their return address is, on real
//! threads made with `pthread_create`: each must be hijacked at its real
//! return-address slot or fall back with an exact reason, and its at-exit hook
//! must run exactly once. The lying routines are written in `global_asm!` below
//! (x86_64 and aarch64); each stores the address of its real return-address slot
//! (x86_64: its entry stack pointer, where the `call` left the return address;
//! aarch64: where it stored x30) into the case before it calls
//! [`harness::first_use`].

mod common;

/// What every lying routine and its test share, whatever the ISA.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod harness {
    use super::common::{EXPECT_HIJACK, Log, tls_probe};
    use core::ffi::c_void;
    use hijack_tls::Status;
    use std::sync::Mutex;

    /// What a lying start routine and its test share; the routine gets a pointer
    /// to it as its argument.
    #[repr(C)]
    pub(crate) struct Case {
        /// Written by the routine: where it really keeps its return address
        /// (x86_64: its entry sp, where the `call` left it; aarch64: where it
        /// stored x30).
        real_slot: u64,
        /// Read by `other_stack`: an address in another thread's stack.
        other_stack: u64,
        /// The status the routine saw after its first use of the crate.
        status: Mutex<Option<Status>>,
        /// What the at-exit hook logged.
        log: Log,
    }

    /// Called by every lying routine: first use of the crate on its thread (an
    /// at-exit hook), then a probe armed after it, then the status.
    pub(crate) extern "C" fn first_use(case: *const Case) {
        // SAFETY: `case` is the `Case` the test passed to pthread_create; it
        // outlives the thread (joined before the case is dropped).
        let case = unsafe { &*case };
        tls_probe::log_alive_at_exit(&case.log);
        tls_probe::arm(&case.log);
        *case.status.lock().unwrap() = Some(hijack_tls::status());
    }

    /// A start routine.
    pub(crate) type Start = extern "C" fn(*mut c_void) -> *mut c_void;

    /// What a lying thread did: the status after its first use, its real slot,
    /// and its hook's log.
    pub(crate) struct Ran {
        /// The status after the first use.
        pub(crate) status: Status,
        /// The routine's real return-address slot.
        pub(crate) real_slot: u64,
        /// The hook's log.
        pub(crate) events: Vec<String>,
    }

    /// Runs `start` on a new pthread and collects what it did.
    pub(crate) fn run(start: Start) -> Ran {
        let here = 0u64;
        let case = Case {
            real_slot: 0,
            other_stack: core::ptr::addr_of!(here) as u64,
            status: Mutex::new(None),
            log: Log::default(),
        };
        let arg = core::ptr::addr_of!(case).cast_mut().cast::<c_void>();
        let mut thread = 0;
        // SAFETY: `start` is one of the routines above, which takes a `*const
        // Case`; `case` outlives the thread, joined before it is dropped.
        unsafe {
            assert_eq!(libc::pthread_create(&mut thread, core::ptr::null(), start, arg), 0);
            assert_eq!(libc::pthread_join(thread, core::ptr::null_mut()), 0);
        }
        let status = case.status.lock().unwrap().take().expect("the routine ran");
        Ran { status, real_slot: case.real_slot, events: case.log.events() }
    }

    /// The common verdict: the hook ran exactly once; a hijack is at the real
    /// slot and fired before the TLS destructors; a fallback names `reason`.
    pub(crate) fn check(ran: &Ran, reason: &str) {
        let handler = ran.events.iter().filter(|e| e.starts_with("handler:")).count();
        assert_eq!(handler, 1, "the hook must run exactly once: {:?}", ran.events);
        match ran.status {
            Status::Hijacked { slot, .. } => {
                assert_eq!(slot as u64, ran.real_slot, "hijacked a slot that is not the real one");
                assert_eq!(ran.events[0], "handler: thread_local alive = true", "{:?}", ran.events);
            }
            Status::Fallback { .. } => {
                let text = ran.status.to_string();
                // Without the hijack every thread falls back for that reason alone.
                let expected = if EXPECT_HIJACK { reason } else { "not enabled" };
                assert!(text.contains(expected), "fell back for another reason: {text}");
            }
            other => panic!("unexpected status {other}"),
        }
    }

    /// Runs `start` and checks it fell back with `reason` (where the hijack is
    /// expected at all).
    pub(crate) fn assert_falls_back(start: Start, reason: &str) {
        let ran = run(start);
        check(&ran, reason);
        if EXPECT_HIJACK {
            assert!(
                matches!(ran.status, Status::Fallback { .. }),
                "the lie was believed: {} (real slot {:#x})",
                ran.status,
                ran.real_slot
            );
        }
    }

    /// Runs `start` and checks it was hijacked at its real slot (where the hijack
    /// is expected at all): the control for the lying routines.
    pub(crate) fn assert_hijacked(start: Start) {
        let ran = run(start);
        check(&ran, "no fallback expected");
        if EXPECT_HIJACK {
            assert!(matches!(ran.status, Status::Hijacked { .. }), "{}", ran.status);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86_64 {
    use super::harness::{assert_falls_back, assert_hijacked, first_use};
    use core::ffi::c_void;
    use std::cell::UnsafeCell;

    thread_local! {
        /// A buffer in static TLS, which glibc places in the thread's stack block
        /// above the stack top (x86_64: right below the thread descriptor).
        static TLS_BUFFER: UnsafeCell<[u64; 80]> = const { UnsafeCell::new([0; 80]) };
    }

    /// The address of this thread's [`TLS_BUFFER`] (called from assembly).
    extern "C" fn tls_buffer() -> *mut u64 {
        TLS_BUFFER.with(|buffer| buffer.get().cast())
    }

    /// Words of the stack's top a routine copies: 528 bytes, more than the walk
    /// reads of `start_thread`'s and `clone3`'s frames (176 bytes on glibc 2.36).
    const TAIL_WORDS: usize = 66;

    core::arch::global_asm!(
        // ---- 0. The control: honest CFI, rsp realigned for the call.
        ".globl hijack_tls_test_honest",
        ".type hijack_tls_test_honest, @function",
        "hijack_tls_test_honest:",
        ".cfi_startproc",
        "mov [rdi], rsp",
        "sub rsp, 8",
        ".cfi_adjust_cfa_offset 8",
        "call {first_use}",
        "add rsp, 8",
        ".cfi_adjust_cfa_offset -8",
        "xor eax, eax",
        "ret",
        ".cfi_endproc",
        ".size hijack_tls_test_honest, . - hijack_tls_test_honest",
        //
        // ---- 1. `.cfi_offset rip, -16`: names a pushed copy of the return
        // address as its slot, 8 bytes below the real one.
        ".globl hijack_tls_test_pushed_copy",
        ".type hijack_tls_test_pushed_copy, @function",
        "hijack_tls_test_pushed_copy:",
        ".cfi_startproc",
        // The real slot: the entry sp.
        "mov [rdi], rsp",
        // Push a copy of the return address: rsp = entry - 8, 16-aligned.
        "push qword ptr [rsp]",
        ".cfi_adjust_cfa_offset 8",
        // The lie: the return address is at CFA - 16, the copy.
        ".cfi_offset rip, -16",
        "call {first_use}",
        "add rsp, 8",
        ".cfi_adjust_cfa_offset -8",
        ".cfi_offset rip, -8",
        "xor eax, eax",
        "ret",
        ".cfi_endproc",
        ".size hijack_tls_test_pushed_copy, . - hijack_tls_test_pushed_copy",
        //
        // ---- 2. The CFA in a verbatim copy of the stack's top, 528 bytes
        // below the real slot, in the routine's own frame.
        //   entry sp E: the real slot; E - 528: the copy of [E, E + 528);
        //   E - 1032: rsp during the call.
        ".globl hijack_tls_test_tail_copy",
        ".type hijack_tls_test_tail_copy, @function",
        "hijack_tls_test_tail_copy:",
        ".cfi_startproc",
        "mov [rdi], rsp",
        "sub rsp, 1032",
        ".cfi_adjust_cfa_offset 1032",
        // Keep the argument in the frame (rep movsq clobbers rdi).
        "mov [rsp], rdi",
        "lea rsi, [rsp + 1032]",
        "lea rdi, [rsp + 504]",
        "mov ecx, {tail_words}",
        "rep movsq",
        "mov rdi, [rsp]",
        // The lie: CFA = rsp + 512 = (E - 528) + 8, the copy's return address
        // at CFA - 8 as the CIE says.
        ".cfi_def_cfa_offset 512",
        "call {first_use}",
        ".cfi_def_cfa_offset 1040",
        "add rsp, 1032",
        ".cfi_def_cfa_offset 8",
        "xor eax, eax",
        "ret",
        ".cfi_endproc",
        ".size hijack_tls_test_tail_copy, . - hijack_tls_test_tail_copy",
        //
        // ---- 3. The slot above the CFA: `.cfi_offset rip, 8` names a word of
        // start_thread's own frame, which holds a copy of the return address
        // during the call (the word is saved and put back after).
        ".globl hijack_tls_test_above_cfa",
        ".type hijack_tls_test_above_cfa, @function",
        "hijack_tls_test_above_cfa:",
        ".cfi_startproc",
        "mov [rdi], rsp",
        "push rbx",
        ".cfi_adjust_cfa_offset 8",
        ".cfi_offset rbx, -16",
        // entry sp E = rsp + 8; the word at CFA + 8 = E + 16 = rsp + 24.
        "mov rbx, [rsp + 24]",
        "mov rax, [rsp + 8]",
        "mov [rsp + 24], rax",
        ".cfi_offset rip, 8",
        "call {first_use}",
        "mov [rsp + 24], rbx",
        ".cfi_offset rip, -8",
        "pop rbx",
        ".cfi_adjust_cfa_offset -8",
        ".cfi_restore rbx",
        "xor eax, eax",
        "ret",
        ".cfi_endproc",
        ".size hijack_tls_test_above_cfa, . - hijack_tls_test_above_cfa",
        //
        // ---- 4. A CFA below the current sp: CFA = rsp - 64.
        ".globl hijack_tls_test_cfa_below_sp",
        ".type hijack_tls_test_cfa_below_sp, @function",
        "hijack_tls_test_cfa_below_sp:",
        ".cfi_startproc",
        "mov [rdi], rsp",
        "sub rsp, 8",
        ".cfi_def_cfa_offset -64",
        "call {first_use}",
        ".cfi_def_cfa_offset 16",
        "add rsp, 8",
        ".cfi_def_cfa_offset 8",
        "xor eax, eax",
        "ret",
        ".cfi_endproc",
        ".size hijack_tls_test_cfa_below_sp, . - hijack_tls_test_cfa_below_sp",
        //
        // ---- 5. A slot not aligned to 8: CFA = rsp + 20, so the return
        // address (`Offset(-8)`, the CIE's rule) is at rsp + 12. (An `Offset`
        // rule is factored by the CIE's data alignment, -8: only the CFA can
        // misalign it.)
        ".globl hijack_tls_test_misaligned",
        ".type hijack_tls_test_misaligned, @function",
        "hijack_tls_test_misaligned:",
        ".cfi_startproc",
        "mov [rdi], rsp",
        "sub rsp, 8",
        ".cfi_def_cfa_offset 20",
        "call {first_use}",
        ".cfi_def_cfa_offset 16",
        "add rsp, 8",
        ".cfi_def_cfa_offset 8",
        "xor eax, eax",
        "ret",
        ".cfi_endproc",
        ".size hijack_tls_test_misaligned, . - hijack_tls_test_misaligned",
        //
        // ---- 6. The CFA in another thread's stack (the test thread's), through
        // r12: CFA = r12 + 8.
        ".globl hijack_tls_test_other_stack",
        ".type hijack_tls_test_other_stack, @function",
        "hijack_tls_test_other_stack:",
        ".cfi_startproc",
        "mov [rdi], rsp",
        "push r12",
        ".cfi_adjust_cfa_offset 8",
        ".cfi_offset r12, -16",
        "mov r12, [rdi + 8]",
        ".cfi_def_cfa r12, 8",
        "call {first_use}",
        ".cfi_def_cfa rsp, 16",
        "pop r12",
        ".cfi_adjust_cfa_offset -8",
        ".cfi_restore r12",
        "xor eax, eax",
        "ret",
        ".cfi_endproc",
        ".size hijack_tls_test_other_stack, . - hijack_tls_test_other_stack",
        //
        // ---- 7. The CFA in a copy of the stack's top placed in static TLS,
        // which is inside the thread's stack block above its stack top:
        // CFA = r12 + 8, r12 = the copy.
        ".globl hijack_tls_test_tls_copy",
        ".type hijack_tls_test_tls_copy, @function",
        "hijack_tls_test_tls_copy:",
        ".cfi_startproc",
        "mov [rdi], rsp",
        "push rbx",
        ".cfi_adjust_cfa_offset 8",
        ".cfi_offset rbx, -16",
        "push r12",
        ".cfi_adjust_cfa_offset 8",
        ".cfi_offset r12, -24",
        "sub rsp, 8",
        ".cfi_adjust_cfa_offset 8",
        "mov rbx, rdi",
        "call {tls_buffer}",
        "mov r12, rax",
        // Copy from the entry sp, rsp + 24.
        "lea rsi, [rsp + 24]",
        "mov rdi, r12",
        "mov ecx, {tail_words}",
        "rep movsq",
        "mov rdi, rbx",
        ".cfi_def_cfa r12, 8",
        "call {first_use}",
        ".cfi_def_cfa rsp, 32",
        "add rsp, 8",
        ".cfi_adjust_cfa_offset -8",
        "pop r12",
        ".cfi_adjust_cfa_offset -8",
        ".cfi_restore r12",
        "pop rbx",
        ".cfi_adjust_cfa_offset -8",
        ".cfi_restore rbx",
        "xor eax, eax",
        "ret",
        ".cfi_endproc",
        ".size hijack_tls_test_tls_copy, . - hijack_tls_test_tls_copy",
        first_use = sym first_use,
        tls_buffer = sym tls_buffer,
        tail_words = const TAIL_WORDS,
    );

    // `safe`, so pthread_create takes them: each is only ever started by
    // `run`, whose argument is a live `Case`.
    unsafe extern "C" {
        safe fn hijack_tls_test_honest(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_pushed_copy(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_tail_copy(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_above_cfa(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_cfa_below_sp(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_misaligned(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_other_stack(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_tls_copy(case: *mut c_void) -> *mut c_void;
    }

    #[test]
    fn honest_start_routine_is_hijacked_at_its_slot() {
        assert_hijacked(hijack_tls_test_honest);
    }

    #[test]
    fn slot_naming_a_pushed_copy_of_the_return_address_falls_back() {
        assert_falls_back(hijack_tls_test_pushed_copy, "CFA-16, not at CFA-8");
    }

    #[test]
    fn cfa_in_a_copy_of_the_stack_top_falls_back() {
        assert_falls_back(hijack_tls_test_tail_copy, "not the stack top");
    }

    #[test]
    fn slot_above_the_cfa_falls_back() {
        assert_falls_back(hijack_tls_test_above_cfa, "CFA+8, not at CFA-8");
    }

    #[test]
    fn cfa_below_the_stack_pointer_falls_back() {
        assert_falls_back(hijack_tls_test_cfa_below_sp, "not above its callee's CFA");
    }

    #[test]
    fn misaligned_slot_falls_back() {
        assert_falls_back(hijack_tls_test_misaligned, "misaligned");
    }

    #[test]
    fn cfa_in_another_threads_stack_falls_back() {
        assert_falls_back(hijack_tls_test_other_stack, "outside this thread's stack");
    }

    #[test]
    fn cfa_in_a_copy_placed_in_static_tls_falls_back() {
        assert_falls_back(hijack_tls_test_tls_copy, "not the stack top");
    }
}

#[cfg(target_arch = "aarch64")]
mod aarch64 {
    use super::harness::{Start, assert_falls_back, assert_hijacked, first_use};
    use core::ffi::c_void;

    /// Whether the CPU signs for real (`HWCAP_PACA`); without it `paciasp` is a
    /// NOP and a signed frame is an unsigned one.
    fn pac_enabled() -> bool {
        // SAFETY: `getauxval` has no preconditions.
        unsafe { libc::getauxval(libc::AT_HWCAP) & libc::HWCAP_PACA != 0 }
    }

    /// Words of the stack's top a routine copies from its entry sp: 528 bytes,
    /// more than the walk reads of `start_thread`'s and `thread_start`'s frames
    /// (start_thread's frame is 288 bytes on Debian's glibc 2.36).
    const TAIL_WORDS: usize = 66;

    // Every routine gets the `Case` in x0, stores the address of its real x30
    // slot at [x0] and keeps x0 for `first_use`. AAPCS64: sp stays 16-aligned;
    // x9-x12 are scratch. The GCC-style frame record is `stp x29, x30, [sp, #-n]!`
    // (x29 at the lower address). CIE: CFA = sp + 0, data alignment -8.
    // `.cfi_negate_ra_state` (DW_CFA_AARCH64_negate_ra_state, 0x2d) toggles
    // RA_SIGN_STATE; `hint #25` is paciasp (sign x30, key IA, modifier sp),
    // `hint #29` autiasp. The rows that matter are the ones at `bl first_use`,
    // where the walk looks the frame up (its return address - 1).
    core::arch::global_asm!(
        ".pushsection .text.hijack_tls_test_hostile,\"ax\",@progbits",
        // `sign` 1: the frame signs x30 like pac-ret code.
        ".macro hijack_tls_test_sign sign",
        ".if \\sign",
        "hint #25",
        ".cfi_negate_ra_state",
        ".endif",
        ".endm",
        ".macro hijack_tls_test_auth sign",
        ".if \\sign",
        "hint #29",
        ".cfi_negate_ra_state",
        ".endif",
        ".endm",
        // Copies `words` words from x9 up to x10 up (x11, x12 scratch).
        ".macro hijack_tls_test_copy words",
        "mov x11, #\\words",
        "1:",
        "ldr x12, [x9], #8",
        "str x12, [x10], #8",
        "subs x11, x11, #1",
        "b.ne 1b",
        ".endm",
        //
        // ---- 0. The control: an honest 16-byte frame record.
        ".p2align 2",
        ".globl hijack_tls_test_a64_honest",
        ".type hijack_tls_test_a64_honest, %function",
        "hijack_tls_test_a64_honest:",
        ".cfi_startproc",
        "stp x29, x30, [sp, #-16]!",
        ".cfi_def_cfa_offset 16",
        ".cfi_offset 29, -16",
        ".cfi_offset 30, -8",
        "mov x29, sp",
        "add x9, sp, #8",
        "str x9, [x0]",
        "bl {first_use}",
        "ldp x29, x30, [sp], #16",
        ".cfi_restore 30",
        ".cfi_restore 29",
        ".cfi_def_cfa_offset 0",
        "mov x0, #0",
        "ret",
        ".cfi_endproc",
        ".size hijack_tls_test_a64_honest, . - hijack_tls_test_a64_honest",
        //
        // ---- 1. `.cfi_offset x30, -16` names a copy of x30 stored next to the
        // frame record (x29 at CFA - 32, x30 at CFA - 24, the copy at CFA - 16).
        ".p2align 2",
        ".globl hijack_tls_test_a64_pushed_copy",
        ".type hijack_tls_test_a64_pushed_copy, %function",
        "hijack_tls_test_a64_pushed_copy:",
        ".cfi_startproc",
        "stp x29, x30, [sp, #-32]!",
        ".cfi_def_cfa_offset 32",
        ".cfi_offset 29, -32",
        ".cfi_offset 30, -24",
        "mov x29, sp",
        "add x9, sp, #8",
        "str x9, [x0]",
        "str x30, [sp, #16]",
        // The lie.
        ".cfi_offset 30, -16",
        "bl {first_use}",
        ".cfi_offset 30, -24",
        "ldp x29, x30, [sp], #32",
        ".cfi_restore 30",
        ".cfi_restore 29",
        ".cfi_def_cfa_offset 0",
        "mov x0, #0",
        "ret",
        ".cfi_endproc",
        ".size hijack_tls_test_a64_pushed_copy, . - hijack_tls_test_a64_pushed_copy",
        //
        // ---- 2. The CFA in a verbatim copy of the stack's top, no frame record:
        // x29 is never touched, so start_thread's CFA (x29 + 48) stays right.
        //   entry sp E: the real CFA; x30 at E - 8 (the real slot);
        //   E - 544 = sp + 512: the copy of [E, E + 528); x30 again at sp + 504;
        //   sp = E - 1056 during the call.
        ".macro hijack_tls_test_tail_copy name, sign",
        ".p2align 2",
        ".globl \\name",
        ".type \\name, %function",
        "\\name:",
        ".cfi_startproc",
        "hijack_tls_test_sign \\sign",
        "sub sp, sp, #1056",
        ".cfi_def_cfa_offset 1056",
        "str x30, [sp, #1048]",
        ".cfi_offset 30, -8",
        "add x9, sp, #1048",
        "str x9, [x0]",
        "str x0, [sp]",
        "add x9, sp, #1056",
        "add x10, sp, #512",
        "hijack_tls_test_copy {tail_words}",
        "str x30, [sp, #504]",
        "ldr x0, [sp]",
        // The lie: CFA = sp + 512, the copy; x30 at CFA - 8 = sp + 504.
        ".cfi_def_cfa_offset 512",
        "bl {first_use}",
        ".cfi_def_cfa_offset 1056",
        "ldr x30, [sp, #1048]",
        "add sp, sp, #1056",
        ".cfi_def_cfa_offset 0",
        ".cfi_restore 30",
        "hijack_tls_test_auth \\sign",
        "mov x0, #0",
        "ret",
        ".cfi_endproc",
        ".size \\name, . - \\name",
        ".endm",
        "hijack_tls_test_tail_copy hijack_tls_test_a64_tail_copy, 0",
        "hijack_tls_test_tail_copy hijack_tls_test_a64_tail_copy_signed, 1",
        //
        // ---- 3. The same with the routine's frame record copied too: x29 read
        // from the copy is start_thread's real frame pointer.
        //   E - 16: the real record (x30 at E - 8, the real slot);
        //   sp + 496 = E - 560: the copy of [E - 16, E + 528), so the record's
        //   copy is at sp + 496 and the stack top's at sp + 512;
        //   sp = E - 1056 during the call.
        ".macro hijack_tls_test_record_copy name, sign",
        ".p2align 2",
        ".globl \\name",
        ".type \\name, %function",
        "\\name:",
        ".cfi_startproc",
        "hijack_tls_test_sign \\sign",
        "stp x29, x30, [sp, #-16]!",
        ".cfi_def_cfa_offset 16",
        ".cfi_offset 29, -16",
        ".cfi_offset 30, -8",
        "mov x29, sp",
        "add x9, sp, #8",
        "str x9, [x0]",
        "sub sp, sp, #1040",
        ".cfi_def_cfa_offset 1056",
        "str x0, [sp]",
        "add x9, sp, #1040",
        "add x10, sp, #496",
        "hijack_tls_test_copy {record_words}",
        "ldr x0, [sp]",
        // The lie: CFA = sp + 512, the record at CFA - 16 = sp + 496, the copy.
        ".cfi_def_cfa_offset 512",
        "bl {first_use}",
        ".cfi_def_cfa_offset 1056",
        "add sp, sp, #1040",
        ".cfi_def_cfa_offset 16",
        "ldp x29, x30, [sp], #16",
        ".cfi_restore 30",
        ".cfi_restore 29",
        ".cfi_def_cfa_offset 0",
        "hijack_tls_test_auth \\sign",
        "mov x0, #0",
        "ret",
        ".cfi_endproc",
        ".size \\name, . - \\name",
        ".endm",
        "hijack_tls_test_record_copy hijack_tls_test_a64_record_copy, 0",
        "hijack_tls_test_record_copy hijack_tls_test_a64_record_copy_signed, 1",
        //
        // ---- 4. The slot above the CFA: `.cfi_offset x30, 8` names a word of
        // start_thread's frame (E + 8), which holds a copy of x30 during the
        // call (the word is kept in x19 and put back after).
        ".p2align 2",
        ".globl hijack_tls_test_a64_above_cfa",
        ".type hijack_tls_test_a64_above_cfa, %function",
        "hijack_tls_test_a64_above_cfa:",
        ".cfi_startproc",
        "stp x29, x30, [sp, #-32]!",
        ".cfi_def_cfa_offset 32",
        ".cfi_offset 29, -32",
        ".cfi_offset 30, -24",
        "str x19, [sp, #16]",
        ".cfi_offset 19, -16",
        "mov x29, sp",
        "add x9, sp, #8",
        "str x9, [x0]",
        // E + 8 = sp + 40.
        "ldr x19, [sp, #40]",
        "str x30, [sp, #40]",
        ".cfi_offset 30, 8",
        "bl {first_use}",
        "str x19, [sp, #40]",
        ".cfi_offset 30, -24",
        "ldr x19, [sp, #16]",
        ".cfi_restore 19",
        "ldp x29, x30, [sp], #32",
        ".cfi_restore 30",
        ".cfi_restore 29",
        ".cfi_def_cfa_offset 0",
        "mov x0, #0",
        "ret",
        ".cfi_endproc",
        ".size hijack_tls_test_a64_above_cfa, . - hijack_tls_test_a64_above_cfa",
        //
        // ---- 5. A CFA below the current sp: CFA = sp - 64.
        ".p2align 2",
        ".globl hijack_tls_test_a64_cfa_below_sp",
        ".type hijack_tls_test_a64_cfa_below_sp, %function",
        "hijack_tls_test_a64_cfa_below_sp:",
        ".cfi_startproc",
        "stp x29, x30, [sp, #-16]!",
        ".cfi_def_cfa_offset 16",
        ".cfi_offset 29, -16",
        ".cfi_offset 30, -8",
        "add x9, sp, #8",
        "str x9, [x0]",
        ".cfi_def_cfa_offset -64",
        "bl {first_use}",
        ".cfi_def_cfa_offset 16",
        "ldp x29, x30, [sp], #16",
        ".cfi_restore 30",
        ".cfi_restore 29",
        ".cfi_def_cfa_offset 0",
        "mov x0, #0",
        "ret",
        ".cfi_endproc",
        ".size hijack_tls_test_a64_cfa_below_sp, . - hijack_tls_test_a64_cfa_below_sp",
        //
        // ---- 6. A slot not aligned to 8: CFA = sp + 20, so the record named at
        // CFA - 16 is at sp + 4. (An `Offset` rule is factored by the data
        // alignment, -8: only the CFA can misalign it.)
        ".p2align 2",
        ".globl hijack_tls_test_a64_misaligned",
        ".type hijack_tls_test_a64_misaligned, %function",
        "hijack_tls_test_a64_misaligned:",
        ".cfi_startproc",
        "stp x29, x30, [sp, #-16]!",
        ".cfi_def_cfa_offset 16",
        ".cfi_offset 29, -16",
        ".cfi_offset 30, -8",
        "add x9, sp, #8",
        "str x9, [x0]",
        ".cfi_def_cfa_offset 20",
        "bl {first_use}",
        ".cfi_def_cfa_offset 16",
        "ldp x29, x30, [sp], #16",
        ".cfi_restore 30",
        ".cfi_restore 29",
        ".cfi_def_cfa_offset 0",
        "mov x0, #0",
        "ret",
        ".cfi_endproc",
        ".size hijack_tls_test_a64_misaligned, . - hijack_tls_test_a64_misaligned",
        //
        // ---- 7. The CFA in another thread's stack (the test thread's), through
        // x19 = the case's `other_stack`: CFA = x19 + 32.
        ".p2align 2",
        ".globl hijack_tls_test_a64_other_stack",
        ".type hijack_tls_test_a64_other_stack, %function",
        "hijack_tls_test_a64_other_stack:",
        ".cfi_startproc",
        "stp x29, x30, [sp, #-32]!",
        ".cfi_def_cfa_offset 32",
        ".cfi_offset 29, -32",
        ".cfi_offset 30, -24",
        "str x19, [sp, #16]",
        ".cfi_offset 19, -16",
        "add x9, sp, #8",
        "str x9, [x0]",
        "ldr x19, [x0, #8]",
        ".cfi_def_cfa 19, 32",
        "bl {first_use}",
        ".cfi_def_cfa sp, 32",
        "ldr x19, [sp, #16]",
        ".cfi_restore 19",
        "ldp x29, x30, [sp], #32",
        ".cfi_restore 30",
        ".cfi_restore 29",
        ".cfi_def_cfa_offset 0",
        "mov x0, #0",
        "ret",
        ".cfi_endproc",
        ".size hijack_tls_test_a64_other_stack, . - hijack_tls_test_a64_other_stack",
        //
        // ---- 8. Honest CFI for a split record: x30 below x29
        // (`stp x30, x29`), x30 at CFA - 32, x29 at CFA - 24.
        ".p2align 2",
        ".globl hijack_tls_test_a64_split_record",
        ".type hijack_tls_test_a64_split_record, %function",
        "hijack_tls_test_a64_split_record:",
        ".cfi_startproc",
        "stp x30, x29, [sp, #-32]!",
        ".cfi_def_cfa_offset 32",
        ".cfi_offset 30, -32",
        ".cfi_offset 29, -24",
        "mov x9, sp",
        "str x9, [x0]",
        "bl {first_use}",
        "ldp x30, x29, [sp], #32",
        ".cfi_restore 29",
        ".cfi_restore 30",
        ".cfi_def_cfa_offset 0",
        "mov x0, #0",
        "ret",
        ".cfi_endproc",
        ".size hijack_tls_test_a64_split_record, . - hijack_tls_test_a64_split_record",
        ".popsection",
        first_use = sym first_use,
        tail_words = const TAIL_WORDS,
        record_words = const TAIL_WORDS + 2,
    );

    // `safe`, so pthread_create takes them: each is only ever started by the
    // harness's `run`, whose argument is a live `Case`.
    unsafe extern "C" {
        safe fn hijack_tls_test_a64_honest(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_a64_pushed_copy(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_a64_tail_copy(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_a64_tail_copy_signed(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_a64_record_copy(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_a64_record_copy_signed(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_a64_above_cfa(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_a64_cfa_below_sp(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_a64_misaligned(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_a64_other_stack(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_a64_split_record(case: *mut c_void) -> *mut c_void;
    }

    /// The reason a signed frame whose CFA lies falls back for.
    const SIGNED_FOR_ANOTHER_CFA: &str = "was not signed with its CFA";

    /// A signed liar is caught by its signature only where the CPU signs.
    fn assert_signed_liar_falls_back(start: Start) {
        if !pac_enabled() {
            // paciasp is a NOP: the frame is the unsigned twin (see those tests).
            println!("skipped: this CPU does not sign return addresses");
            return;
        }
        assert_falls_back(start, SIGNED_FOR_ANOTHER_CFA);
    }

    #[test]
    fn honest_frame_record_is_hijacked_at_its_slot() {
        assert_hijacked(hijack_tls_test_a64_honest);
    }

    #[test]
    fn slot_naming_a_copy_beside_the_frame_record_falls_back() {
        assert_falls_back(hijack_tls_test_a64_pushed_copy, "not one frame record");
    }

    #[test]
    #[ignore = "open: an unsigned aarch64 frame's CFA is not pinned (NOTES.md, Slot checks)"]
    fn cfa_in_a_copy_of_the_stack_top_falls_back() {
        assert_falls_back(hijack_tls_test_a64_tail_copy, "not the stack top");
    }

    #[test]
    fn signed_cfa_in_a_copy_of_the_stack_top_falls_back() {
        assert_signed_liar_falls_back(hijack_tls_test_a64_tail_copy_signed);
    }

    #[test]
    #[ignore = "open: an unsigned aarch64 frame's CFA is not pinned (NOTES.md, Slot checks)"]
    fn cfa_in_a_copy_of_the_stack_top_and_frame_record_falls_back() {
        assert_falls_back(hijack_tls_test_a64_record_copy, "not the stack top");
    }

    #[test]
    fn signed_cfa_in_a_copy_of_the_stack_top_and_frame_record_falls_back() {
        assert_signed_liar_falls_back(hijack_tls_test_a64_record_copy_signed);
    }

    #[test]
    fn slot_above_the_cfa_falls_back() {
        assert_falls_back(hijack_tls_test_a64_above_cfa, "CFA+8, outside its 32-byte frame");
    }

    #[test]
    fn cfa_below_the_stack_pointer_falls_back() {
        assert_falls_back(hijack_tls_test_a64_cfa_below_sp, "not above its callee's CFA");
    }

    #[test]
    fn misaligned_slot_falls_back() {
        assert_falls_back(hijack_tls_test_a64_misaligned, "misaligned");
    }

    #[test]
    fn cfa_in_another_threads_stack_falls_back() {
        assert_falls_back(hijack_tls_test_a64_other_stack, "outside this thread's stack");
    }

    #[test]
    fn split_frame_record_falls_back() {
        assert_falls_back(hijack_tls_test_a64_split_record, "not one frame record");
    }
}
