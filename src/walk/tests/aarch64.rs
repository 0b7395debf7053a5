//! aarch64 only: the return-address signing state (`DW_CFA_AARCH64_negate_ra_state`
//! and the `RA_SIGN_STATE` pseudo-register), frames laid out as GCC and glibc lay
//! them out, and a real thread whose start routine signs its return address.

use super::cfi::{self, Cfi, Expression};
use super::fake::FakeStack;
use super::real::walk_here;
use super::world::*;
use crate::arch::{self, Context};
use crate::walk::{ExitSlot, LoadedObjects, Objects, Strategy, WalkError};
use core::ffi::c_void;
use gimli::AArch64;
use std::sync::Mutex;

/// A 16-byte frame as LLVM builds it, signed with `paciasp` first:
/// `paciasp; stp x29, x30, [sp, #-16]!`, so x29 at CFA - 16, x30 at CFA - 8.
fn signed_frame16() -> Vec<Cfi> {
    vec![
        Cfi::NegateRaState,
        Cfi::Cfa(AArch64::SP, 16),
        Cfi::Offset(AArch64::X29, -16),
        Cfi::Offset(AArch64::X30, -8),
    ]
}

/// glibc's clone child `thread_start`: CIE `CFA = sp + 0`, `cfi_undefined x30`.
fn thread_start_rules() -> Vec<Cfi> {
    vec![Cfi::Cfa(AArch64::SP, 0), Cfi::Undefined(AArch64::X30)]
}

/// The thread shape (start routine → start_thread → thread_start) with START's
/// rules `start` and its slot holding `stored`.
fn walk_thread(start: Vec<Cfi>, stored: u64) -> Result<ExitSlot, WalkError> {
    let pcs = [ret(INNER), ret(MIDDLE), ret(START), ret(START_THREAD), ret(CLONE)];
    let mut chain = Chain::new(&pcs);
    chain.stack.put(Chain::slot(2), stored);
    let overrides = [(START, start), (CLONE, thread_start_rules())];
    walk(&chain.ctx.clone(), &mut chain.stack, &mut objects(&overrides)).0
}

#[test]
fn negate_ra_state_marks_the_return_address_signed() {
    // START's CFA is the sp of start_thread's frame, which is what `paciasp` used.
    let cfa = Chain::sp(3);
    let signed = arch::sign_return_address(ret(START_THREAD), cfa);
    let found = walk_thread(signed_frame16(), signed).expect("walk");
    assert_eq!(
        found,
        ExitSlot { slot: Chain::slot(2), return_address: signed, cfa, ra_signed: true, frames: 5 }
    );
    assert_eq!(arch::strip_return_address(found.return_address, true), ret(START_THREAD));
}

#[test]
fn negating_twice_is_unsigned() {
    let mut rules = signed_frame16();
    rules.push(Cfi::NegateRaState);
    let found = walk_thread(rules, ret(START_THREAD)).expect("walk");
    assert!(!found.ra_signed);
    assert_eq!(found.return_address, ret(START_THREAD));
}

#[test]
fn a_frame_without_the_state_is_unsigned() {
    let found = walk_thread(frame16(), ret(START_THREAD)).expect("walk");
    assert!(!found.ra_signed);
}

#[test]
fn sign_state_from_an_expression_is_refused() {
    // The ABI also allows RA_SIGN_STATE = DW_CFA_val_expression; the walker only
    // understands the constants gimli keeps for `negate_ra_state`.
    let mut one = Expression::new();
    one.op_constu(1);
    let mut rules = frame16();
    rules.push(Cfi::ValExpression(AArch64::RA_SIGN_STATE, one));
    assert_eq!(
        walk_thread(rules, ret(START_THREAD)),
        Err(WalkError::BadSignState { pc: ret(START) - 1 })
    );
}

#[test]
fn thread_start_may_share_start_threads_cfa() {
    // thread_start keeps `CFA = sp + 0` and calls start_thread with `blr`, which
    // pushes nothing: the outermost CFA equals its callee's.
    let pcs = [ret(INNER), ret(MIDDLE), ret(START), ret(START_THREAD), ret(CLONE)];
    let mut chain = Chain::new(&pcs);
    let overrides = [(CLONE, thread_start_rules())];
    let (result, frames) = walk(&chain.ctx.clone(), &mut chain.stack, &mut objects(&overrides));
    assert_eq!(result.map(|found| found.slot), Ok(Chain::slot(2)));
    assert_eq!(frames[4].cfa, frames[3].cfa);
}

#[test]
fn an_equal_cfa_with_a_caller_is_still_an_error() {
    // The same `CFA = sp + 0` in a frame that has a return address would spin.
    let overrides = [(START_THREAD, vec![Cfi::Cfa(AArch64::SP, 0)])];
    let (result, _) =
        walk_chain(&[ret(INNER), ret(START), ret(START_THREAD), ret(CLONE)], &overrides);
    assert!(matches!(result, Err(WalkError::CfaNotGrowing { frame: 2, .. })), "{result:?}");
}

#[test]
fn gcc_pac_ret_prologue_with_the_frame_record_at_the_bottom() {
    // GCC 12 `-mbranch-protection=pac-ret`, 32-byte frame:
    //   paciasp; .cfi_negate_ra_state
    //   stp x29, x30, [sp, -32]!; .cfi_def_cfa_offset 32
    //   .cfi_offset 29, -32; .cfi_offset 30, -24
    // so x30 is at CFA - 24, not CFA - 8. INNER → START → start_thread →
    // thread_start, the last with the real (GCC) CIE: CFA = sp + 0, no x30 rule.
    let mut stack = FakeStack::new(STACK, 0x1000);
    let inner_sp = STACK + 0x100;
    let start_sp = inner_sp + 16;
    let start_cfa = start_sp + 32;
    let signed = arch::sign_return_address(ret(START_THREAD), start_cfa);
    stack.put(inner_sp + 8, ret(START));
    stack.put(start_sp, 0x5a5a_0000); // x29
    stack.put(start_sp + 8, signed);
    stack.put(start_cfa + 8, ret(CLONE));
    // start_thread's frame (16 bytes) ends at the stack top.
    stack.tops.thread = Some(start_cfa + 16);
    let mut ctx = Context::new();
    ctx.set(AArch64::SP, inner_sp);
    ctx.set_pc(ret(INNER));
    let start_rules = vec![
        Cfi::NegateRaState,
        Cfi::Cfa(AArch64::SP, 32),
        Cfi::Offset(AArch64::X29, -32),
        Cfi::Offset(AArch64::X30, -24),
    ];
    let mut objects = objects(&[(START, start_rules)]);
    let libc_funcs = [
        cfi::Func::new(START_THREAD, 0x100, frame16()),
        cfi::Func::new(CLONE, 0x100, vec![Cfi::Cfa(AArch64::SP, 0)]).no_ra(),
    ];
    objects.0[1] = cfi::object(LIBC, true, &libc_funcs);
    let (result, frames) = walk(&ctx, &mut stack, &mut objects);
    assert_eq!(
        result,
        Ok(ExitSlot {
            slot: start_sp + 8,
            return_address: signed,
            cfa: start_cfa,
            ra_signed: true,
            frames: 4,
        })
    );
    assert_eq!(frames[2].pc, ret(START_THREAD), "the next frame's pc is stripped");
}

/// The walk made inside [`signed_start`].
static SIGNED_WALK: Mutex<Option<Result<ExitSlot, WalkError>>> = Mutex::new(None);

/// Walks from inside the signed start routine. A panic here would abort.
extern "C" fn signed_start_body(arg: *mut c_void) -> *mut c_void {
    let result = walk_here("PAC-signed start routine", Strategy::best());
    if let Ok(mut guard) = SIGNED_WALK.lock() {
        *guard = Some(result);
    }
    arg
}

unsafe extern "C" {
    /// A start routine that signs its return address like `-mbranch-protection=
    /// pac-ret` code, then calls [`signed_start_body`].
    #[link_name = "hijack_tls_test_walk_signed_start"]
    safe fn signed_start(arg: *mut c_void) -> *mut c_void;
}

// The start routine, as GCC emits it for pac-ret with a 16-byte frame record.
core::arch::global_asm!(
    ".pushsection .text.hijack_tls_test_walk_signed_start,\"ax\",@progbits",
    ".p2align 2",
    ".globl hijack_tls_test_walk_signed_start",
    ".hidden hijack_tls_test_walk_signed_start",
    ".type hijack_tls_test_walk_signed_start, %function",
    "hijack_tls_test_walk_signed_start:",
    ".cfi_startproc",
    // paciasp: sign x30 with key IA and sp (= this frame's CFA).
    "hint #25",
    ".cfi_negate_ra_state",
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
    // autiasp: check x30 against sp, which is the CFA again.
    "hint #29",
    ".cfi_negate_ra_state",
    "ret",
    ".cfi_endproc",
    ".size hijack_tls_test_walk_signed_start, . - hijack_tls_test_walk_signed_start",
    ".popsection",
    body = sym signed_start_body,
);

#[test]
fn real_signed_start_routine() {
    let mut thread: libc::pthread_t = 0;
    // SAFETY: `signed_start` has the C start-routine signature (it returns its
    // argument through the body); `thread` is a valid out-pointer.
    let rc = unsafe {
        libc::pthread_create(&mut thread, core::ptr::null(), signed_start, 7 as *mut c_void)
    };
    assert_eq!(rc, 0);
    let mut value = core::ptr::null_mut();
    // SAFETY: `thread` is joinable and joined once.
    assert_eq!(unsafe { libc::pthread_join(thread, &mut value) }, 0);
    assert_eq!(value as usize, 7, "the signed routine returned normally");
    let found = SIGNED_WALK.lock().unwrap().take().expect("thread ran").expect("walk");
    assert!(found.ra_signed, "{found:x?}");
    assert_eq!(found.slot + 8, found.cfa, "x30 at CFA - 8 in this routine");
    let original = arch::strip_return_address(found.return_address, true);
    let mut objects = LoadedObjects::new();
    assert!(objects.find(original - 1).expect("object").is_libc, "{original:#x}");
    if arch::pointer_auth_supported() {
        assert_ne!(found.return_address, original, "the slot holds a signed address");
        // Linux keeps the keys per process, so this thread reproduces the
        // signature the start routine's `paciasp` made.
        assert_eq!(arch::sign_return_address(original, found.cfa), found.return_address);
    } else {
        assert_eq!(found.return_address, original);
    }
}

#[test]
fn return_address_apart_from_the_frame_pointer_is_refused() {
    // x29 and x30 both saved, x30 at CFA - 16 and x29 above it at CFA - 8: not
    // AAPCS64's frame record (x30 right above x29), which GCC and LLVM always
    // store when they save both.
    let rules = vec![
        Cfi::Cfa(AArch64::SP, 16),
        Cfi::Offset(AArch64::X29, -8),
        Cfi::Offset(AArch64::X30, -16),
    ];
    let pcs = [ret(INNER), ret(MIDDLE), ret(START), ret(START_THREAD), ret(CLONE)];
    let mut chain = Chain::new(&pcs);
    chain.stack.put(Chain::sp(2), ret(START_THREAD));
    let overrides = [(START, rules), (CLONE, thread_start_rules())];
    let result = walk(&chain.ctx.clone(), &mut chain.stack, &mut objects(&overrides)).0;
    assert_eq!(result, Err(WalkError::SplitFrameRecord { fp_offset: -8, ra_offset: -16 }));
    // The same frame with the record in order is accepted.
    let rules = vec![
        Cfi::Cfa(AArch64::SP, 16),
        Cfi::Offset(AArch64::X29, -16),
        Cfi::Offset(AArch64::X30, -8),
    ];
    let mut chain = Chain::new(&pcs);
    let overrides = [(START, rules), (CLONE, thread_start_rules())];
    let result = walk(&chain.ctx.clone(), &mut chain.stack, &mut objects(&overrides)).0;
    assert_eq!(result.map(|s| s.slot), Ok(Chain::slot(2)));
}
