//! Catches a forced unwind (`pthread_exit`, cancellation) started inside one hook
//! or drop, so the exit sequence can go on: glibc's own cancel buffer, the one
//! its `pthread_cleanup_push` macro uses (`<pthread.h>`, the C variant).
//!
//! `__pthread_register_cancel(buf)` makes `buf` the thread's innermost cancel
//! buffer (`self->cleanup_jmp_buf`). A forced unwind (`__pthread_unwind`, glibc
//! `nptl/unwind.c`) takes the innermost buffer as its stop parameter; its stop
//! function `unwind_stop` lets the unwinder run the cleanups (Rust drops) of
//! every frame below the one that called `sigsetjmp(buf)`, then `longjmp`s into
//! `buf` as soon as the unwind reaches that frame's CFA. The frame that calls
//! `sigsetjmp` is assembly (`arch/*/setjmp_call.rs`), since Rust cannot call a
//! function that returns twice; between it and the hook there is only
//! [`call_hook`], an `extern "C-unwind"` frame with nothing to drop. Back from
//! the `longjmp`, the buffer is unregistered (`self->cleanup_jmp_buf` =
//! `buf`'s `prev` again) and the hook counts as ended.
//!
//! A Rust panic from the hook unwinds through the assembly frame (it has CFI)
//! into the caller's `catch_unwind`; the [`Unregister`] guard takes the buffer
//! off glibc's list on that path too.
//!
//! What a caught `pthread_exit` leaves behind: glibc's `__pthread_exit` stored
//! its value (`self->result`) before unwinding, so `pthread_join` reports it,
//! unless the thread's start routine returned into the trampoline, after which
//! `start_thread` stores the routine's own result. glibc's `__do_cancel` has also
//! set the thread's `EXITING_BIT`, so later cancel requests are ignored, as they
//! would be once the thread had ended. On the forced-unwind path the exit
//! sequence then continues the thread's exit itself (`exit::run`,
//! [`CaughtUnwind::resume`]).

use core::ffi::{c_int, c_void};
use core::ptr;

use crate::arch::setjmp_call::JMP_BUF_WORDS;

/// glibc's `__pthread_unwind_buf_t` (`<pthread.h>`): a `__jmp_buf`, the
/// `mask_was_saved` flag, and four words glibc uses for its list (`prev`, the
/// old-style cleanup head, the cancel type: `struct pthread_unwind_buf`,
/// `nptl/descr.h`). `sigsetjmp(.., 0)` writes only the first two.
#[repr(C, align(16))]
struct UnwindBuf {
    jmp_buf: [u64; JMP_BUF_WORDS],
    mask_was_saved: c_int,
    private: [*mut c_void; 4],
}

type SigsetjmpFn = unsafe extern "C" fn(*mut UnwindBuf, c_int) -> c_int;
type CancelFn = unsafe extern "C" fn(*mut UnwindBuf);
type UnwindNextFn = unsafe extern "C-unwind" fn(*mut UnwindBuf) -> !;

/// The glibc functions the catch needs.
#[derive(Clone, Copy)]
struct Api {
    sigsetjmp: SigsetjmpFn,
    register: CancelFn,
    unregister: CancelFn,
    unwind_next: UnwindNextFn,
}

/// A forced unwind that was caught, and can be resumed ([`resume`](Self::resume)):
/// the thread's next outer cancel buffer, as glibc recorded it in ours.
pub(crate) struct CaughtUnwind {
    outer: *mut c_void,
}

impl CaughtUnwind {
    /// Goes on with the thread's exit from here, as glibc's `pthread_cleanup_push`
    /// does after its cleanup routine: `__pthread_unwind_next` starts the forced
    /// unwind again towards the next outer buffer (`start_thread`'s), so every
    /// frame between the caller and it unwinds. The thread's result is the one the
    /// `pthread_exit` (or cancellation) set.
    ///
    /// # Safety
    /// Every frame between the caller and the thread's start must be Rust or
    /// "C-unwind", as for a `pthread_exit` called here.
    pub(crate) unsafe fn resume(self) -> ! {
        let api = api().expect("a caught forced unwind implies glibc's cancel API");
        let mut buf = UnwindBuf::new();
        buf.private[0] = self.outer;
        // SAFETY: `buf` only carries the outer buffer glibc recorded as `prev` when
        // it registered ours, which is all `__pthread_unwind_next` reads; the
        // caller vouches for the frames.
        unsafe { (api.unwind_next)(&mut buf) }
    }
}

unsafe extern "C" {
    /// `<setjmp.h>`: `sigsetjmp` is a macro for it.
    fn __sigsetjmp(buf: *mut UnwindBuf, save_mask: c_int) -> c_int;
    /// `<pthread.h>`: makes `buf` the thread's innermost cancel buffer.
    fn __pthread_register_cancel(buf: *mut UnwindBuf);
    /// `<pthread.h>`: restores the cancel buffer before `buf`.
    fn __pthread_unregister_cancel(buf: *mut UnwindBuf);
}

unsafe extern "C-unwind" {
    /// `<pthread.h>`: goes on with a forced unwind towards `buf`'s outer buffer.
    fn __pthread_unwind_next(buf: *mut UnwindBuf) -> !;
}

/// glibc's functions, linked directly: public in every glibc the crate supports
/// (libc.so.6 `GLIBC_2.34` / `GLIBC_2.2.5`, and libc.a), where `dlsym` would
/// find nothing in a statically linked program. `None` under Miri, which has no
/// cancellation (and no shims for them): the hook then just runs.
fn api() -> Option<Api> {
    if cfg!(miri) {
        return None;
    }
    Some(Api {
        sigsetjmp: __sigsetjmp,
        register: __pthread_register_cancel,
        unregister: __pthread_unregister_cancel,
        unwind_next: __pthread_unwind_next,
    })
}

unsafe extern "C-unwind" {
    /// `arch/*/setjmp_call.rs`: `sigsetjmp(buf, 0)`, then `callback(data)`;
    /// returns 0, or 1 when a `longjmp` into `buf` came back.
    fn hijack_tls_call_under_setjmp(
        buf: *mut UnwindBuf,
        sigsetjmp: SigsetjmpFn,
        callback: extern "C-unwind" fn(*mut c_void),
        data: *mut c_void,
    ) -> c_int;
}

impl UnwindBuf {
    fn new() -> Self {
        Self { jmp_buf: [0; JMP_BUF_WORDS], mask_was_saved: 0, private: [ptr::null_mut(); 4] }
    }
}

/// Runs `f`; returns the forced unwind that ended it early, if one did (after the
/// cleanups of `f`'s own frames ran). Panics pass through to the caller. Without
/// glibc's cancel-buffer API, just runs `f`.
pub(crate) fn catch_forced_unwind(f: &mut dyn FnMut()) -> Option<CaughtUnwind> {
    let Some(api) = api() else {
        f();
        return None;
    };
    let mut buf = UnwindBuf::new();
    let buf = &raw mut buf;
    let mut hook: &mut dyn FnMut() = f;
    // SAFETY: `buf` is a live local, registered before the setjmp fills it and
    // unregistered by the guard before it goes out of scope on every path
    // (return, longjmp, panic). No forced unwind can start between the two:
    // nothing runs in between.
    unsafe { (api.register)(buf) };
    let _unregister = Unregister { api, buf };
    // SAFETY: `call_hook` gets a pointer to `hook`, live for the whole call. The
    // routine preserves every callee-saved register and the stack. A longjmp into
    // `buf` returns into the routine's own frame, which is live: the routine is
    // still running.
    let jumped = unsafe {
        hijack_tls_call_under_setjmp(buf, api.sigsetjmp, call_hook, (&raw mut hook).cast())
    };
    // SAFETY: `buf` is live; glibc wrote `prev` when it registered it.
    (jumped != 0).then(|| CaughtUnwind { outer: unsafe { (*buf).private[0] } })
}

/// Calls the hook `data` points at. Owns nothing that needs dropping: the frame
/// a forced unwind stops at must have no cleanup of its own to skip.
extern "C-unwind" fn call_hook(data: *mut c_void) {
    // SAFETY: `catch_forced_unwind` passes a pointer to its live `&mut dyn FnMut()`.
    let hook = unsafe { &mut *data.cast::<&mut dyn FnMut()>() };
    hook();
}

/// Takes the buffer off glibc's list when dropped.
struct Unregister {
    api: Api,
    buf: *mut UnwindBuf,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        // SAFETY: `buf` was registered by this thread and is still live; glibc
        // restores the previous innermost buffer, which is idempotent if a forced
        // unwind got here first.
        unsafe { (self.api.unregister)(self.buf) };
    }
}
