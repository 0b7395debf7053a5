//! Cancellation and forced unwinds while the exit sequence runs.
//!
//! The sequence runs with cancellation disabled ([`Hold`]): a deferred cancel
//! reaching a cancellation point in a hook, or an asynchronous one arriving
//! during it, would otherwise start glibc's forced unwind inside the sequence,
//! where the `catch_unwind` around each hook would catch and swallow it and glibc
//! aborts ("FATAL: exception not rethrown"). A cancel that arrives meanwhile stays
//! pending and acts after the sequence, at the thread's next cancellation point.
//!
//! A forced unwind started inside a hook or drop anyway (`pthread_exit`, or a
//! hook that re-enables cancellation) is caught by a glibc cancel buffer around
//! that hook alone (`catch.rs`): the hook ends, the sequence goes on. Drops run
//! by `reset` and `unload` are caught the same way, and the unwind is resumed
//! once the other values dropped, so the thread still leaves.

#[cfg(glibc_cancel_catch)]
mod catch;
#[cfg(glibc_cancel_catch)]
pub(crate) use catch::{CaughtUnwind, catch_forced_unwind};

/// Elsewhere nothing is caught: `f` just runs.
#[cfg(not(glibc_cancel_catch))]
pub(crate) fn catch_forced_unwind(f: &mut dyn FnMut()) -> Option<CaughtUnwind> {
    f();
    None
}

/// Never made where nothing is caught.
#[cfg(not(glibc_cancel_catch))]
pub(crate) enum CaughtUnwind {}

#[cfg(not(glibc_cancel_catch))]
impl CaughtUnwind {
    /// Cannot be called: there is no value.
    pub(crate) unsafe fn resume(self) -> ! {
        match self {}
    }
}

/// `PTHREAD_CANCEL_ENABLE` / `_DISABLE` and `PTHREAD_CANCEL_DEFERRED` /
/// `_ASYNCHRONOUS` from `<pthread.h>` (the same values on glibc, musl and the
/// BSDs).
#[cfg(unix)]
mod abi {
    use core::ffi::c_int;

    pub(super) const DISABLE: c_int = 1;
    pub(super) const DEFERRED: c_int = 0;
    pub(super) const ASYNCHRONOUS: c_int = 1;

    pub(super) use crate::miri_shims::{pthread_setcancelstate, pthread_setcanceltype};
}

/// A thread's cancellation state and type before [`disable`].
#[derive(Clone, Copy)]
pub(crate) struct Saved {
    /// `PTHREAD_CANCEL_ENABLE` or `_DISABLE`.
    state: core::ffi::c_int,
    /// `PTHREAD_CANCEL_DEFERRED` or `_ASYNCHRONOUS`.
    kind: core::ffi::c_int,
}

/// Disables cancellation on this thread, the type made deferred first; returns
/// what was there before (disabled and deferred where there is no cancellation).
///
/// Disabling the state alone does not stop an asynchronous cancel already on
/// its way: glibc 2.36's `pthread_cancel` decides to send `SIGCANCEL` from the
/// state it read, and the handler (`sigcancel_handler`, nptl/pthread_cancel.c)
/// acts on the *type* bit only, so a signal that arrives after
/// `pthread_setcancelstate(DISABLE)` still starts the forced unwind, anywhere,
/// a loader lock held included (seen: `_dl_load_lock` left held inside
/// `__cxa_thread_atexit_impl`, the next first use hung). With the type
/// deferred first the handler only marks the thread cancelled.
pub(crate) fn disable() -> Saved {
    #[cfg(unix)]
    {
        let mut saved = Saved { state: abi::DISABLE, kind: abi::DEFERRED };
        // SAFETY: a valid type and out-pointer; deferring never acts on a
        // pending cancel.
        unsafe { abi::pthread_setcanceltype(abi::DEFERRED, &mut saved.kind) };
        // SAFETY: a valid state and out-pointer; disabling never acts on a
        // pending cancel.
        unsafe { abi::pthread_setcancelstate(abi::DISABLE, &mut saved.state) };
        saved
    }
    #[cfg(not(unix))]
    Saved { state: 1, kind: 0 }
}

/// Cancellation disabled for as long as this lives; restored when dropped.
pub(crate) struct Hold {
    /// The state and type before, to restore.
    saved: Saved,
}

impl Hold {
    /// Disables cancellation on this thread.
    pub(crate) fn new() -> Self {
        Self { saved: disable() }
    }
}

impl Drop for Hold {
    /// Restores the cancel state, leaving the type deferred: re-enabling an
    /// asynchronous type with a cancel pending would act at once, here, inside
    /// the crate's `extern "C"` frames (the trampoline's, a TLS destructor's),
    /// which a forced unwind must not cross. A thread that was asynchronous stays
    /// deferred: it is leaving, and a pending cancel acts at its next
    /// cancellation point.
    fn drop(&mut self) {
        #[cfg(unix)]
        if self.saved.state != abi::DISABLE {
            // SAFETY: a valid state and a null old-value pointer; the type is
            // deferred (`disable`, and every re-disable in the sequence), so
            // enabling never acts.
            unsafe { abi::pthread_setcancelstate(self.saved.state, core::ptr::null_mut()) };
        }
    }
}

/// Cancellation deferred across a first use (record creation, arming, the stack
/// walk, the unwind-info announcement), then restored exactly, type included.
/// A cancel that arrived meanwhile acts at [`end`](Self::end) if the thread is
/// asynchronous (as it would have at once), or at its next cancellation point:
/// never inside the walk, where an asynchronous cancel could leave a cache's
/// sequence lock or the announcement lock held forever.
pub(crate) struct Deferral {
    /// The state and type before, to restore.
    saved: Saved,
}

impl Deferral {
    /// Disables cancellation on this thread (the type deferred first, see
    /// [`disable`]).
    pub(crate) fn new() -> Self {
        Self { saved: disable() }
    }

    /// Restores the state, then the type. With an asynchronous type and a cancel
    /// pending, the forced unwind starts here (glibc's `pthread_setcanceltype`
    /// tests for it): the caller must be at a point where unwinding out is sound
    /// (its work done and stored).
    pub(crate) fn end(self) {
        #[cfg(unix)]
        {
            if self.saved.state != abi::DISABLE {
                // SAFETY: a valid state and a null old-value pointer; the type is
                // still deferred, so nothing acts here.
                unsafe { abi::pthread_setcancelstate(self.saved.state, core::ptr::null_mut()) };
            }
            if self.saved.kind == abi::ASYNCHRONOUS {
                // SAFETY: a valid type and a null old-value pointer; a forced
                // unwind from inside is declared ("C-unwind") and the caller
                // allows it.
                unsafe { abi::pthread_setcanceltype(abi::ASYNCHRONOUS, core::ptr::null_mut()) };
            }
        }
    }
}
