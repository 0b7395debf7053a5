//! The portable fallback: a TLS destructor that runs the exit sequence.
//!
//! It is armed for every record, hijacked or not, as the safety net for threads
//! that never return through the trampoline. A std `thread_local!` destructor runs
//! first; a pthread-key destructor, which glibc runs after all `thread_local!`
//! destructors and repeats while keys are set again, catches records created after
//! that; on the main thread, an `atexit` handler does.

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
///
/// The pthread key is set for every record, not only once the `thread_local!`
/// guard is gone: a record first created inside a pthread-key destructor finds the
/// guard untouched and registers it, but glibc has already run its `thread_local!`
/// destructors by then and never runs that one. Whichever destructor runs first
/// takes the record; the other finds none. On the main thread, whose pthread-key
/// destructors never run, a record created after the guard was destroyed (inside
/// `exit()`'s TLS destructors) is run by an `atexit` handler instead, which `exit()`
/// calls after the TLS destructors.
pub(crate) fn arm() -> Destructor {
    let key_set = set_exit_key();
    // Touching GUARD registers its destructor; it fails once that has run.
    if GUARD.try_with(|_| ()).is_ok() {
        return Destructor::ThreadLocal;
    }
    if is_main_thread() {
        return if register_at_process_exit() {
            Destructor::ProcessExit
        } else {
            Destructor::Unarmed
        };
    }
    if key_set { Destructor::PthreadKey } else { Destructor::Unarmed }
}

/// Sets this thread's value of the exit key, so its destructor runs at thread exit.
fn set_exit_key() -> bool {
    let Some(key) = exit_key() else { return false };
    // Any non-null value makes glibc call the destructor at thread exit.
    let marker = core::ptr::dangling_mut::<c_void>();
    // SAFETY: `key` was created by pthread_key_create and is never deleted.
    unsafe { libc::pthread_setspecific(key, marker) == 0 }
}

/// Whether this is the process's main thread (its thread ID is the process ID).
#[cfg(target_os = "linux")]
fn is_main_thread() -> bool {
    // SAFETY: gettid and getpid have no preconditions.
    unsafe { libc::gettid() == libc::getpid() }
}

/// Elsewhere the main thread is not told apart: its late records use the pthread key.
#[cfg(not(target_os = "linux"))]
fn is_main_thread() -> bool {
    false
}

/// Registers [`run_at_process_exit`] with `atexit`, once per process.
fn register_at_process_exit() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    // SAFETY: registers a plain extern "C" function, which stays loaded: the crate's
    // object is never unloaded while it has TLS destructors registered.
    *REGISTERED.get_or_init(|| unsafe { crate::miri_shims::atexit(run_at_process_exit) } == 0)
}

extern "C" fn run_at_process_exit() {
    crate::exit::run();
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
