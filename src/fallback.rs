//! The portable fallback: a TLS destructor that runs the exit sequence.
//!
//! It is armed for every record, hijacked or not, as the safety net for threads
//! that never return through the trampoline (`pthread_exit`, cancellation). A std
//! `thread_local!` destructor is used first; once that has run (a record created
//! during TLS teardown), a pthread key destructor, which glibc runs after all
//! `thread_local!` destructors and repeats while keys are set again.

use core::ffi::c_void;
use std::sync::OnceLock;

use crate::status::Destructor;

/// Runs the exit sequence when the thread's `thread_local!` destructors run.
struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        crate::exit::run();
    }
}

thread_local! {
    static GUARD: ExitGuard = const { ExitGuard };
}

/// Makes sure a TLS destructor will run this thread's exit sequence.
pub(crate) fn arm() -> Destructor {
    // Touching GUARD registers its destructor; it fails once that has run.
    if GUARD.try_with(|_| ()).is_ok() {
        return Destructor::ThreadLocal;
    }
    match exit_key() {
        Some(key) => {
            // Any non-null value makes glibc call the destructor at thread exit.
            let marker = core::ptr::dangling_mut::<c_void>();
            // SAFETY: `key` was created by pthread_key_create and is never deleted.
            let rc = unsafe { libc::pthread_setspecific(key, marker) };
            if rc == 0 { Destructor::PthreadKey } else { Destructor::Unarmed }
        }
        None => Destructor::Unarmed,
    }
}

/// The process-wide pthread key whose destructor runs the exit sequence.
fn exit_key() -> Option<libc::pthread_key_t> {
    static KEY: OnceLock<Option<libc::pthread_key_t>> = OnceLock::new();
    *KEY.get_or_init(|| {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is a valid out-pointer; the destructor is a plain extern fn.
        let rc = unsafe { libc::pthread_key_create(&mut key, Some(run_from_key)) };
        (rc == 0).then_some(key)
    })
}

extern "C" fn run_from_key(_marker: *mut c_void) {
    crate::exit::run();
}
