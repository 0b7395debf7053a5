//! Runs the exit sequence on `pthread_exit` and `pthread_cancel`, where the
//! trampoline never runs.
//!
//! glibc's forced unwind stops at `start_thread`'s (or `__libc_start_call_main`'s)
//! `setjmp` buffer and `longjmp`s there, skipping the hijacked return. Just before
//! that `longjmp`, its stop function runs the thread's *old-style* cleanup buffers
//! (`_pthread_cleanup_push`, linked directly) that the unwind has left (glibc `nptl/unwind.c`,
//! `unwind_stop`). We push one such buffer per hijacked thread. In the executable
//! (or an object loaded with it) it lives in static TLS, which glibc places above
//! the thread's stack frames, so glibc considers it "left" only at the final
//! step: the exit sequence then runs after every frame has been unwound and
//! before any TLS destructor. On the main thread, and in a `dlopen`ed copy of the
//! crate whose TLS glibc allocates dynamically below the stack (x86_64; on aarch64
//! glibc served it from static TLS here), it is "left" at the first step: the
//! sequence runs before the frames unwind. NOTES.md ("pthread_exit and
//! pthread_cancel") has the analysis and the hazards.

use core::cell::{Cell, UnsafeCell};
use core::ffi::{c_int, c_void};
use core::ptr;

/// glibc's `struct _pthread_cleanup_buffer` (`<pthread.h>`).
#[repr(C)]
struct CleanupBuffer {
    routine: Option<unsafe extern "C-unwind" fn(*mut c_void)>,
    arg: *mut c_void,
    cancel_type: c_int,
    prev: *mut CleanupBuffer,
}

impl CleanupBuffer {
    const EMPTY: Self =
        Self { routine: None, arg: ptr::null_mut(), cancel_type: 0, prev: ptr::null_mut() };
}

unsafe extern "C" {
    /// glibc's `_pthread_cleanup_push` (nptl/cleanup_compat.c): links `buffer` at
    /// the head of this thread's old-style cleanup list. Public in every glibc
    /// the crate supports (libc.so.6 `GLIBC_2.34`, and libc.a), so it is linked
    /// directly: `dlsym` finds nothing in a statically linked program.
    fn _pthread_cleanup_push(
        buffer: *mut CleanupBuffer,
        routine: unsafe extern "C-unwind" fn(*mut c_void),
        arg: *mut c_void,
    );
    /// glibc's `_pthread_cleanup_pop`: sets the list head to `buffer`'s `prev`,
    /// running its routine if `execute` is non-zero.
    fn _pthread_cleanup_pop(buffer: *mut CleanupBuffer, execute: c_int);
}

thread_local! {
    /// This thread's cleanup buffer: TLS, so it outlives every use by glibc.
    static BUFFER: UnsafeCell<CleanupBuffer> = const { UnsafeCell::new(CleanupBuffer::EMPTY) };
    /// Whether BUFFER is (or was once) on glibc's list: it is never pushed twice.
    static PUSHED: Cell<bool> = const { Cell::new(false) };
}

/// Pushes this thread's cleanup buffer, once per thread.
pub(crate) fn arm() {
    if PUSHED.with(|pushed| pushed.replace(true)) {
        return;
    }
    let buffer = BUFFER.with(UnsafeCell::get);
    // SAFETY: `buffer` is this thread's static-TLS buffer, valid until the thread's
    // TLS is freed after every cleanup ran; it is pushed once and only glibc writes it.
    unsafe { _pthread_cleanup_push(buffer, on_forced_unwind, ptr::null_mut()) };
}

/// Takes this thread's buffer off glibc's list if it is the newest entry (the
/// trampoline calls this once the start routine has returned normally).
pub(crate) fn disarm() {
    if !PUSHED.with(Cell::get) {
        return;
    }
    let buffer = BUFFER.with(UnsafeCell::get);
    // Read the list head by pushing a probe: glibc stores the head in `prev`.
    let mut probe = CleanupBuffer::EMPTY;
    // SAFETY: the probe is a live local, popped again below before it goes out
    // of scope; only glibc writes it meanwhile.
    unsafe { _pthread_cleanup_push(&mut probe, on_forced_unwind, ptr::null_mut()) };
    let head = probe.prev;
    // SAFETY: the probe is the list head (pushed just above); popping it with
    // execute = 0 runs nothing and restores the head to `head`.
    unsafe { _pthread_cleanup_pop(&mut probe, 0) };
    if head == buffer {
        // SAFETY: `buffer` is this thread's pushed static-TLS buffer and the list
        // head (checked just above); execute = 0 runs nothing.
        unsafe { _pthread_cleanup_pop(buffer, 0) };
    }
}

/// Called by glibc's forced-unwind stop function at the last step before it
/// `longjmp`s into `start_thread` (at the first step on the main thread and in a
/// `dlopen`ed copy). "C-unwind": when a handler's own `pthread_exit` was caught,
/// the exit sequence continues the thread's exit from inside this call (see
/// `exit::run`); nothing else unwinds out of it.
extern "C-unwind" fn on_forced_unwind(_arg: *mut c_void) {
    crate::record::arming::mark_fired();
    super::run(crate::status::ExitTrigger::ForcedUnwind);
}
