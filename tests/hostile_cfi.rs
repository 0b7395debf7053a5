//! Start routines whose CFI lies about where their return address is, on real
//! threads made with `pthread_create`: each must be hijacked at its real
//! return-address slot or fall back with an exact reason, and its at-exit hook
//! must run exactly once. The lying routines are written in `global_asm!` below
//! (x86_64); each stores its entry stack pointer (the real slot: a `call` leaves
//! the return address at the callee's entry sp) into the case before it calls
//! [`first_use`].

mod common;

#[cfg(target_arch = "x86_64")]
mod x86_64 {
    use super::common::{EXPECT_HIJACK, Log, tls_probe};
    use core::ffi::c_void;
    use hijack_tls::Status;
    use std::cell::UnsafeCell;
    use std::sync::Mutex;

    /// What a lying start routine and its test share; the routine gets a pointer
    /// to it as its argument.
    #[repr(C)]
    struct Case {
        /// Written by the routine: its stack pointer at entry, the real slot.
        entry_sp: u64,
        /// Read by `other_stack`: an address in another thread's stack.
        other_stack: u64,
        /// The status the routine saw after its first use of the crate.
        status: Mutex<Option<Status>>,
        /// What the at-exit hook logged.
        log: Log,
    }

    /// Called by every lying routine: first use of the crate on its thread (an
    /// at-exit hook), then a probe armed after it, then the status.
    extern "C" fn first_use(case: *const Case) {
        // SAFETY: `case` is the `Case` the test passed to pthread_create; it
        // outlives the thread (joined before the case is dropped).
        let case = unsafe { &*case };
        tls_probe::log_alive_at_exit(&case.log);
        tls_probe::arm(&case.log);
        *case.status.lock().unwrap() = Some(hijack_tls::status());
    }

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
        safe fn hijack_tls_test_pushed_copy(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_tail_copy(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_above_cfa(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_cfa_below_sp(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_misaligned(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_other_stack(case: *mut c_void) -> *mut c_void;
        safe fn hijack_tls_test_tls_copy(case: *mut c_void) -> *mut c_void;
    }

    /// A start routine.
    type Start = extern "C" fn(*mut c_void) -> *mut c_void;

    /// What a lying thread did: the status after its first use, its real slot,
    /// and its hook's log.
    struct Ran {
        status: Status,
        entry_sp: u64,
        events: Vec<String>,
    }

    /// Runs `start` on a new pthread and collects what it did.
    fn run(start: Start) -> Ran {
        let here = 0u64;
        let case = Case {
            entry_sp: 0,
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
        Ran { status, entry_sp: case.entry_sp, events: case.log.events() }
    }

    /// The common verdict: the hook ran exactly once; a hijack is at the real
    /// slot and fired before the TLS destructors; a fallback names `reason`.
    fn check(ran: &Ran, reason: &str) {
        let handler = ran.events.iter().filter(|e| e.starts_with("handler:")).count();
        assert_eq!(handler, 1, "the hook must run exactly once: {:?}", ran.events);
        match ran.status {
            Status::Hijacked { slot, .. } => {
                assert_eq!(slot as u64, ran.entry_sp, "hijacked a slot that is not the real one");
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
    fn assert_falls_back(start: Start, reason: &str) {
        let ran = run(start);
        check(&ran, reason);
        if EXPECT_HIJACK {
            assert!(
                matches!(ran.status, Status::Fallback { .. }),
                "the lie was believed: {} (real slot {:#x})",
                ran.status,
                ran.entry_sp
            );
        }
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
