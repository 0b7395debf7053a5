//! Stand-ins for the libc calls of the portable core that Miri cannot run, so
//! `cargo miri test --no-default-features` checks the rest (`.ci/miri`). Outside
//! Miri each name here is the libc function itself; under Miri it is a stand-in
//! that keeps the part of the contract the crate relies on. NOTES.md ("Miri and
//! sanitizers") lists what Miri runs natively and what it does not.

#[cfg(not(miri))]
pub(crate) use libc::atexit;

/// `atexit` under Miri, which has no shim for it (it stops the program when `main`
/// returns and runs no process-exit handlers). Records `handler` and reports
/// success, as glibc does, but never calls it.
///
/// Nothing is lost by that under Miri: the fallback sets its pthread key for every
/// record (`fallback::arm`), and Miri, unlike glibc's `exit()`, runs the main
/// thread's pthread-key destructors after its `thread_local!` ones, which is where
/// glibc would call the handler. So the late main-thread record still runs its
/// exit sequence, from the key's destructor, and Miri checks it.
///
/// # Safety
/// None beyond libc's `atexit`: `handler` must stay callable for the process's life.
#[cfg(miri)]
pub(crate) unsafe extern "C" fn atexit(handler: extern "C" fn()) -> libc::c_int {
    /// Every handler registered, kept reachable (Miri's leak check sees a static).
    static REGISTERED: std::sync::Mutex<Vec<extern "C" fn()>> = std::sync::Mutex::new(Vec::new());
    REGISTERED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(handler);
    0
}

#[cfg(all(unix, not(miri)))]
pub(crate) use cancel_state::{pthread_setcancelstate, pthread_setcanceltype};

/// glibc's cancel-state calls. "C-unwind": enabling cancellation with an
/// asynchronous type and a cancel pending starts the forced unwind inside the
/// call (glibc's `pthread_setcancelstate` calls `__do_cancel`).
#[cfg(all(unix, not(miri)))]
mod cancel_state {
    use core::ffi::c_int;

    unsafe extern "C-unwind" {
        pub(crate) fn pthread_setcancelstate(state: c_int, old: *mut c_int) -> c_int;
        pub(crate) fn pthread_setcanceltype(kind: c_int, old: *mut c_int) -> c_int;
    }
}

/// The cancel-state calls under Miri, which has no thread cancellation (no
/// `pthread_cancel`): the state is always "enabled, deferred", and setting it
/// changes nothing a Miri run could observe.
///
/// # Safety
/// As libc's: `old` is null or valid for a write.
#[cfg(miri)]
pub(crate) unsafe fn pthread_setcancelstate(
    _state: libc::c_int,
    old: *mut libc::c_int,
) -> libc::c_int {
    // SAFETY: the caller's guarantee, passed on.
    unsafe { report_enabled_deferred(old) }
}

/// See [`pthread_setcancelstate`].
///
/// # Safety
/// As libc's: `old` is null or valid for a write.
#[cfg(miri)]
pub(crate) unsafe fn pthread_setcanceltype(
    _kind: libc::c_int,
    old: *mut libc::c_int,
) -> libc::c_int {
    // SAFETY: the caller's guarantee, passed on.
    unsafe { report_enabled_deferred(old) }
}

/// Writes 0 (`PTHREAD_CANCEL_ENABLE`, `PTHREAD_CANCEL_DEFERRED`) to `old` if it is
/// not null; returns 0 (success).
///
/// # Safety
/// `old` is null or valid for a write.
#[cfg(miri)]
unsafe fn report_enabled_deferred(old: *mut libc::c_int) -> libc::c_int {
    if !old.is_null() {
        // SAFETY: the caller's guarantee.
        unsafe { old.write(0) };
    }
    0
}
