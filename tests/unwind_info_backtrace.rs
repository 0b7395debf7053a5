//! The in-process unwinder walks through the exit trampoline of a hijacked thread:
//! libgcc's `_Unwind_Backtrace` (what `std::backtrace` and panics use) steps from
//! the trampoline frame to the original return address and on to the stack's end.

use std::ffi::{c_int, c_void};

use hijack_tls::Status;

/// `_URC_NO_REASON`: keep walking.
const URC_NO_REASON: c_int = 0;

/// `_URC_END_OF_STACK`: the walk reached the outermost frame.
const URC_END_OF_STACK: c_int = 5;

/// `_Unwind_Trace_Fn`.
type TraceFn = extern "C" fn(context: *mut c_void, arg: *mut c_void) -> c_int;

unsafe extern "C" {
    fn _Unwind_Backtrace(trace: TraceFn, arg: *mut c_void) -> c_int;
    fn _Unwind_GetIP(context: *mut c_void) -> usize;
}

/// Pushes each frame's ip into the `Vec<usize>` behind `arg`.
extern "C" fn collect(context: *mut c_void, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `&mut Vec<usize>` passed by `backtrace_ips`, alive and
    // not otherwise borrowed during the walk; `context` is the unwinder's live one.
    unsafe {
        let ips = &mut *arg.cast::<Vec<usize>>();
        ips.push(_Unwind_GetIP(context));
    }
    URC_NO_REASON
}

/// The ips libgcc finds from here, and why the walk stopped.
#[inline(never)]
fn backtrace_ips() -> (Vec<usize>, c_int) {
    let mut ips: Vec<usize> = Vec::with_capacity(256);
    // SAFETY: `collect` matches `_Unwind_Trace_Fn` and treats `arg` as this Vec.
    let reason = unsafe { _Unwind_Backtrace(collect, (&raw mut ips).cast()) };
    (ips, reason)
}

#[test]
fn libgcc_walks_through_the_trampoline() {
    std::thread::spawn(|| {
        hijack_tls::set("hijacked", 1_u32);
        let status = hijack_tls::status();
        let Status::Hijacked { original_return, trampoline, .. } = status else {
            panic!("the thread was not hijacked: {status}");
        };
        let (ips, reason) = backtrace_ips();
        let at = ips.iter().position(|&ip| ip == trampoline);
        let at = at.unwrap_or_else(|| panic!("no trampoline frame {trampoline:#x} in {ips:x?}"));
        assert_eq!(ips.get(at + 1), Some(&original_return), "{ips:x?}");
        assert_eq!(reason, URC_END_OF_STACK, "{ips:x?}");

        let text = std::backtrace::Backtrace::force_capture().to_string();
        assert!(text.contains("hijack_tls_trampoline_"), "{text}");
    })
    .join()
    .unwrap();
}
