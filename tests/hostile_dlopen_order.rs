//! The documented exception to "after the thread's frames unwound" (README, "How a
//! thread's exit sequence runs"): the crate's old-style cleanup buffer
//! (`src/exit/forced_unwind.rs`) is a `thread_local!`; in a `dlopen`ed copy of the
//! crate that is dynamic TLS (`R_X86_64_DTPMOD64`, allocated by `__tls_get_addr`
//! with `malloc`, below the thread's stack), so glibc's `unwind_stop` finds it
//! "left" (`FRAME_LEFT`) at the first step of the unwind, as on the main thread:
//! the sequence runs once, before the thread's own frames drop their locals (and
//! still before every TLS destructor). Found by the session-5 review.

mod common;
#[path = "fixtures/support.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::unwinding::pthread_exit;
use support::{Library, fixture, join_raw, spawn_raw};

/// The fixture's `Counters` (`tests/fixtures/plugin/lib.rs`).
#[repr(C)]
struct Counters {
    handlers: AtomicUsize,
    drops: AtomicUsize,
}

static COUNTERS: Counters = Counters { handlers: AtomicUsize::new(0), drops: AtomicUsize::new(0) };

/// Handlers that had run when the thread's local was dropped.
static HANDLERS_AT_LOCAL_DROP: AtomicUsize = AtomicUsize::new(usize::MAX);

/// A start-routine local: records how many hooks ran before it dropped.
struct Local;

impl Drop for Local {
    fn drop(&mut self) {
        HANDLERS_AT_LOCAL_DROP.store(COUNTERS.handlers.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

type UseFn = unsafe extern "C" fn(*const Counters) -> u32;

#[test]
fn pthread_exit_in_a_dlopened_copy_runs_hooks_once_before_the_frames_unwind() {
    let library = Library::open(&fixture().cdylib, libc::RTLD_NOW | libc::RTLD_LOCAL);
    // SAFETY: the fixture defines `fixture_use` with exactly this signature.
    let use_: UseFn = unsafe { library.function("fixture_use") };
    let use_ = use_ as usize;
    let kind = join_raw(spawn_raw(move || {
        // SAFETY: the function pointer read above, alive while the library is.
        let use_ = unsafe { std::mem::transmute::<usize, UseFn>(use_) };
        let _local = Local;
        // SAFETY: COUNTERS is a static.
        let kind = unsafe { use_(&COUNTERS) };
        if kind != 1 {
            return kind as usize;
        }
        // SAFETY: every frame up to the raw thread's start routine is Rust.
        unsafe { pthread_exit(1) }
    }));
    if kind != 1 && kind != 0 {
        eprintln!("not hijacked (kind {kind}); nothing to check");
        return;
    }
    assert_eq!(COUNTERS.handlers.load(Ordering::SeqCst), 2, "both handlers ran");
    // Documented: where glibc puts the copy's TLS below the stack (dynamic TLS,
    // x86_64 here), the hooks run at the unwind's first step, before the local
    // drops; where it gives the copy static TLS from its surplus (aarch64 with
    // TLS descriptors here), at the last step, after it. Never in between.
    let at_drop = HANDLERS_AT_LOCAL_DROP.load(Ordering::SeqCst);
    assert!(at_drop == 2 || at_drop == 0, "{at_drop} of 2 hooks had run when the local dropped");
    if cfg!(target_arch = "x86_64") {
        assert_eq!(at_drop, 2, "x86_64: the copy's TLS is dynamic, below the stack");
    }
}
