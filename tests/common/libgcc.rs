//! libgcc's own walk of the calling thread's stack (`_Unwind_Backtrace`), to check
//! what the system unwinder sees through a hijacked stack.

use std::ffi::{c_int, c_void};

/// `_URC_NO_REASON`: keep walking.
const URC_NO_REASON: c_int = 0;
/// `_URC_END_OF_STACK`: the walk reached the outermost frame.
pub const URC_END_OF_STACK: c_int = 5;

type TraceFn = extern "C" fn(context: *mut c_void, arg: *mut c_void) -> c_int;

unsafe extern "C" {
    fn _Unwind_Backtrace(trace: TraceFn, arg: *mut c_void) -> c_int;
    fn _Unwind_GetIP(context: *mut c_void) -> usize;
}

extern "C" fn collect(context: *mut c_void, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `&mut Vec<usize>` passed by `ips`, alive and not
    // otherwise borrowed during the walk; `context` is the unwinder's live one.
    unsafe { (*arg.cast::<Vec<usize>>()).push(_Unwind_GetIP(context)) };
    URC_NO_REASON
}

/// The ips libgcc finds from here, and why its walk stopped.
pub fn ips() -> (Vec<usize>, c_int) {
    let mut ips: Vec<usize> = Vec::with_capacity(256);
    // SAFETY: `collect` matches `_Unwind_Trace_Fn` and treats `arg` as this Vec.
    let reason = unsafe { _Unwind_Backtrace(collect, (&raw mut ips).cast()) };
    (ips, reason)
}

/// On a fresh thread: gives it a record, then checks that the unwinder's walk ends
/// at the stack's end and steps from the trampoline to the original return address
/// (when the thread is hijacked, which it must be where the hijack is expected).
pub fn check_steps_through_the_trampoline() {
    std::thread::spawn(|| {
        hijack_tls::set("x", 1_u32);
        let status = hijack_tls::status();
        let (ips, reason) = ips();
        assert_eq!(reason, URC_END_OF_STACK, "{ips:x?}");
        if let hijack_tls::Status::Hijacked { original_return, trampoline, .. } = status {
            let at = ips.iter().position(|&ip| ip == trampoline);
            let at = at.unwrap_or_else(|| panic!("no trampoline {trampoline:#x} in {ips:x?}"));
            assert_eq!(ips.get(at + 1), Some(&original_return), "{ips:x?}");
        } else if super::EXPECT_HIJACK {
            panic!("the thread was not hijacked: {status}");
        }
    })
    .join()
    .unwrap();
}
