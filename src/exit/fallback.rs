//! The portable fallback: a TLS destructor that runs the exit sequence.
//!
//! It is armed for every record, hijacked or not, as the safety net for threads
//! that never return through the trampoline. A std `thread_local!` destructor runs
//! first; a pthread-key destructor, which glibc runs after all `thread_local!`
//! destructors and repeats while keys are set again, catches records created after
//! that; on the main thread, an `atexit` handler does (for every record where
//! the main thread's `thread_local!` destructors never run: a static program).

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use super::main_thread::is_main_thread;
use crate::status::{Destructor, ExitTrigger};

/// Runs the exit sequence when the thread's `thread_local!` destructors run.
struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        super::run(by(Destructor::ThreadLocal));
    }
}

/// The trigger of a sequence the safety net starts.
fn by(destructor: Destructor) -> ExitTrigger {
    ExitTrigger::Destructor { destructor, hijack_missed: false }
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
/// destructors never run, a record created once its `thread_local!` destructors
/// have run or are past the guard (inside `exit()`, known from the guard or from
/// the [`MainSentinel`]) is run by an `atexit` handler instead, which `exit()`
/// calls after the TLS destructors.
pub(crate) fn arm() -> Destructor {
    let key_set = set_exit_key();
    // Where std keeps `thread_local!` destructors under a pthread key (a static
    // program, musl), the main thread's never run: `exit()` runs only atexit's.
    if !thread_locals_destroyed_in_exit() && is_main_thread() {
        return arm_at_process_exit();
    }
    // The flag first: `is_main_thread` costs two system calls, which a first use
    // pays only once the main thread is inside `exit()` or its guard is gone.
    if MAIN_TLS_DESTROYED.load(Ordering::Acquire) && is_main_thread() {
        return arm_at_process_exit();
    }
    // Touching GUARD registers its destructor; it fails once that has run.
    if GUARD.try_with(|_| ()).is_ok() {
        return Destructor::ThreadLocal;
    }
    if is_main_thread() {
        return arm_at_process_exit();
    }
    if key_set { Destructor::PthreadKey } else { Destructor::Unarmed }
}

/// Whether the main thread's `thread_local!` destructors run inside `exit()`.
///
/// std registers each with `__cxa_thread_atexit_impl` if that weak symbol is
/// defined, and glibc's `exit` runs them (`__call_tls_dtors`); otherwise std keeps
/// them in a list under a pthread key, whose destructors glibc runs only when a
/// thread other than the main one exits (std `sys/thread_local/destructors/
/// linux_like.rs`, `guard/key.rs`). The symbol is looked up the same way: `dlsym`
/// in a dynamic program, the weak link-time table in a static one, where it is
/// defined only if some object linked it in (C++ `thread_local`). Asked once, from
/// the `.init_array` function below while the program loads: `dlsym` needs a few
/// KiB of stack, which a first use on a `PTHREAD_STACK_MIN` thread lacks.
fn thread_locals_destroyed_in_exit() -> bool {
    static ANSWER: OnceLock<bool> = OnceLock::new();
    *ANSWER.get_or_init(|| {
        #[cfg(all(glibc_cancel_catch, not(miri)))]
        let defined = crate::libc_symbol::find(c"__cxa_thread_atexit_impl").is_some();
        #[cfg(all(target_os = "linux", not(glibc_cancel_catch), not(miri)))]
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name has no
        // preconditions.
        let defined =
            !unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__cxa_thread_atexit_impl".as_ptr()) }
                .is_null();
        // Elsewhere (and under Miri, which runs the main thread's destructors)
        // the platform's own registration is taken to run them.
        #[cfg(any(not(target_os = "linux"), miri))]
        let defined = true;
        defined
    })
}

/// Set once the main thread's [`MainSentinel`] was destroyed: `exit()` is past
/// the point where a newly registered `thread_local!` destructor would run.
static MAIN_TLS_DESTROYED: AtomicBool = AtomicBool::new(false);

/// A `thread_local!` destructor registered on the main thread while the program
/// loads, before any other this crate registers. glibc runs `thread_local!`
/// destructors last registered first (`__call_tls_dtors`), so this one runs
/// after every destructor registered later, and a first use after it (a later
/// `atexit` handler, a `.fini_array` function) knows its own registration would
/// never run.
struct MainSentinel;

impl Drop for MainSentinel {
    fn drop(&mut self) {
        MAIN_TLS_DESTROYED.store(true, Ordering::Release);
    }
}

thread_local! {
    static MAIN_SENTINEL: MainSentinel = const { MainSentinel };
}

/// Registers the sentinel while the program (or the object holding this crate)
/// loads, if that happens on the main thread, and asks
/// [`thread_locals_destroyed_in_exit`] its one question there.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static REGISTER_MAIN_SENTINEL: extern "C" fn() = {
    extern "C" fn register_main_sentinel() {
        thread_locals_destroyed_in_exit();
        if is_main_thread() {
            // Touching it registers its destructor.
            let _ = MAIN_SENTINEL.try_with(|_| ());
        }
    }
    register_main_sentinel
};

/// The `atexit` arming of a main-thread record: `ProcessExit`, or `TooLate` if
/// `exit()` has already run its last handler (glibc refuses registrations then).
fn arm_at_process_exit() -> Destructor {
    if register_at_process_exit() {
        Destructor::ProcessExit
    } else if MAIN_TLS_DESTROYED.load(Ordering::Acquire) {
        Destructor::TooLate
    } else {
        Destructor::Unarmed
    }
}

/// Sets this thread's value of the exit key, so its destructor runs at thread exit.
fn set_exit_key() -> bool {
    let Some(key) = exit_key() else { return false };
    // Any non-null value makes glibc call the destructor at thread exit.
    let marker = core::ptr::dangling_mut::<c_void>();
    // SAFETY: `key` was created by pthread_key_create and is never deleted.
    unsafe { libc::pthread_setspecific(key, marker) == 0 }
}

/// Whether [`run_at_process_exit`] is registered and has not started yet.
static AT_EXIT_PENDING: AtomicBool = AtomicBool::new(false);

/// Registers [`run_at_process_exit`] with `atexit` unless a registration is still
/// pending. Once it has run, a record created later (by a later `atexit` handler
/// or a `.fini_array` function) registers it again: glibc runs handlers added
/// while `exit()` runs them (`__run_exit_handlers` starts over), until its last
/// one has returned.
fn register_at_process_exit() -> bool {
    if AT_EXIT_PENDING.swap(true, Ordering::AcqRel) {
        return true;
    }
    // SAFETY: registers a plain extern "C" function, which stays loaded: the crate's
    // object is never unloaded while it has TLS destructors registered.
    let registered = unsafe { crate::miri_shims::atexit(run_at_process_exit) } == 0;
    if !registered {
        AT_EXIT_PENDING.store(false, Ordering::Release);
    }
    registered
}

extern "C" fn run_at_process_exit() {
    AT_EXIT_PENDING.store(false, Ordering::Release);
    super::run(by(Destructor::ProcessExit));
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
    super::run(by(Destructor::PthreadKey));
}
