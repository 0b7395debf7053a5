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
