//! The one status model of a thread: not used yet, armed by the hijack, armed by
//! the fallback (and why the hijack was not used), or its exit sequence started
//! (and by what).

use core::fmt;

/// How this thread's exit sequence is armed, or what started it (see
/// [`status`](fn@crate::status)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// The thread has no record: nothing is stored and nothing will run at exit.
    Inactive,
    /// The thread's bottom return address was replaced with the exit trampoline:
    /// the exit sequence runs the moment the start routine returns, before every
    /// TLS destructor of the thread.
    ///
    /// This is what happens *when the start routine returns*. A thread that leaves
    /// by `pthread_exit` or cancellation runs the sequence from its cleanup buffer,
    /// also before its TLS destructors. The main thread calling `exit()` or
    /// [`std::process::exit`] before `main` returns skips the trampoline: glibc's
    /// `exit` runs the thread's TLS destructors first, last registered first, and
    /// the safety net the first use registered runs the sequence among them. TLS
    /// destructors registered after that first use run before the hooks (and still
    /// read `Hijacked`); those registered before it run after the hooks, which then
    /// report [`ExitTrigger::Destructor`] with `hijack_missed: true`.
    Hijacked {
        /// Stack address of the return-address slot that now points at the trampoline.
        slot: usize,
        /// The return address the slot held before (where the thread continues after
        /// the exit sequence), with any pointer-authentication bits stripped.
        original_return: usize,
        /// The trampoline entry the slot points at.
        trampoline: usize,
    },
    /// The exit sequence is armed by a TLS destructor instead.
    Fallback {
        /// Why the hijack was not used.
        reason: FallbackReason,
        /// Which destructor runs the exit sequence.
        destructor: Destructor,
    },
    /// The thread's exit sequence has started: what a hook, a drop during the
    /// sequence, or a TLS destructor that runs after it sees. (A record created
    /// after that reports its own arming.)
    Exited {
        /// What started the sequence.
        trigger: ExitTrigger,
    },
}

/// What started a thread's exit sequence (see [`Status::Exited`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitTrigger {
    /// The hijacked start routine returned into the exit trampoline.
    Trampoline,
    /// `pthread_exit` or a cancellation on a hijacked thread: glibc ran the
    /// crate's cleanup buffer at the end of its forced unwind.
    ForcedUnwind,
    /// The safety net: a TLS destructor.
    Destructor {
        /// Which one.
        destructor: Destructor,
        /// The thread was hijacked, yet the trampoline never ran. On the main
        /// thread this means `exit()` was called before `main` returned; on
        /// another thread, the hijacked slot was not the one the thread returned
        /// through, or the thread left by a path that skips both the return and
        /// the forced-unwind buffer. Counted in
        /// [`diagnostics::missed_hijacks`](crate::diagnostics::missed_hijacks)
        /// and reported on stderr (but for the main thread's `exit()`).
        hijack_missed: bool,
    },
}

/// The TLS destructor that runs a fallback thread's exit sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Destructor {
    /// A std `thread_local!` destructor (glibc `__cxa_thread_atexit_impl`): runs among
    /// the thread's other `thread_local!` destructors, in an order std does not promise.
    ThreadLocal,
    /// A pthread key destructor: used when the record is created after the
    /// `thread_local!` destructor has already run; runs after all `thread_local!`
    /// destructors, and never on the main thread.
    PthreadKey,
    /// An `atexit` handler: a record created on the main thread after its
    /// `thread_local!` destructors ran (inside `exit()`); runs after them.
    ProcessExit,
    /// No destructor could be registered (the `thread_local!` one had already run and
    /// no pthread key was available): the exit sequence will not run for this record.
    Unarmed,
    /// The record was created after the last destructor that could run it: on
    /// the main thread, after `exit()` ran its `atexit` handlers (a first use in a
    /// late `.fini_array` function, say). The exit sequence will not run for this
    /// record; `at_exit` refuses hooks (counted on stderr) and its values leak.
    TooLate,
}

/// Why a thread's exit sequence is armed by the fallback and not by the hijack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FallbackReason {
    /// The crate was built without its `hijack` feature.
    FeatureDisabled,
    /// The hijack does not support this target (it needs Linux/glibc on x86_64 or aarch64).
    UnsupportedTarget,
    /// The environment variable `HIJACK_TLS` is `off`.
    DisabledByEnvironment,
    /// The thread runs with a CET or GCS shadow stack, which the trampoline's
    /// return path would violate.
    ShadowStack,
    /// The trampoline fired on this thread already: the record was created during
    /// its TLS teardown.
    ThreadExiting,
    /// The stack walk did not find a return slot it fully understood.
    #[cfg(hijack_supported)]
    StackWalk(WalkFailure),
    /// The trampoline was not assembled as its unwind description says.
    TrampolineLayout,
    /// The trampoline's unwind info could not be made known to the unwinder.
    #[cfg(hijack_supported)]
    UnwindInfo(UnwindInfoFailure),
    /// More distinct original return addresses than trampoline copies.
    TrampolinesExhausted,
    /// The shared object holding the trampolines could not be pinned in memory
    /// (`RTLD_NODELETE`), so a `dlclose` could unmap it under a hijacked thread.
    CannotPin,
}

/// Why the stack walk gave up (shown through [`FallbackReason::StackWalk`]).
#[cfg(hijack_supported)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkFailure(pub(crate) crate::walk::WalkError);

/// Why the trampoline's unwind info could not be registered (shown through
/// [`FallbackReason::UnwindInfo`]).
#[cfg(hijack_supported)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnwindInfoFailure(pub(crate) crate::unwind_info::UnwindInfoError);

#[cfg(hijack_supported)]
impl fmt::Display for UnwindInfoFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(hijack_supported)]
impl fmt::Display for WalkFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for FallbackReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::FeatureDisabled => "the `hijack` feature is not enabled",
            Self::UnsupportedTarget => "the stack hijack does not support this target",
            Self::DisabledByEnvironment => "disabled by HIJACK_TLS=off",
            Self::ShadowStack => "the thread has a shadow stack (CET/GCS)",
            Self::ThreadExiting => "created during thread teardown, after the exit trampoline ran",
            #[cfg(hijack_supported)]
            Self::StackWalk(failure) => return write!(f, "stack walk failed: {failure}"),
            Self::TrampolineLayout => {
                "the exit trampoline was assembled differently than described"
            }
            #[cfg(hijack_supported)]
            Self::UnwindInfo(failure) => return write!(f, "trampoline unwind info: {failure}"),
            Self::TrampolinesExhausted => "all exit trampoline copies are in use",
            Self::CannotPin => "the shared object holding the trampoline could not be pinned",
        };
        f.write_str(text)
    }
}

impl fmt::Display for Destructor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ThreadLocal => "thread_local! destructor",
            Self::PthreadKey => "pthread key destructor",
            Self::ProcessExit => "atexit handler",
            Self::Unarmed => "no destructor: the exit sequence will not run",
            Self::TooLate => {
                "too late: the process already ran its exit handlers; the exit sequence \
                 will not run"
            }
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inactive => f.write_str("inactive (no record)"),
            Self::Hijacked { slot, original_return, trampoline } => {
                write!(f, "hijacked: slot {slot:#x} held {original_return:#x}, now {trampoline:#x}")
            }
            Self::Fallback { reason, destructor } => {
                write!(f, "fallback ({destructor}): {reason}")
            }
            Self::Exited { trigger } => write!(f, "exit sequence started by {trigger}"),
        }
    }
}

impl fmt::Display for ExitTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Trampoline => f.write_str("the exit trampoline"),
            Self::ForcedUnwind => f.write_str("the forced-unwind cleanup buffer"),
            Self::Destructor { destructor, hijack_missed: false } => {
                write!(f, "the safety net ({destructor})")
            }
            Self::Destructor { destructor, hijack_missed: true } => {
                write!(
                    f,
                    "the safety net ({destructor}) on a hijacked thread whose trampoline never ran"
                )
            }
        }
    }
}
