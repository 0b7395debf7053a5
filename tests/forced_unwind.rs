//! `pthread_exit` and `pthread_cancel` on hijacked threads: glibc's forced unwind
//! skips the trampoline, and the exit sequence must still run exactly once, after
//! the thread's frames unwound and while its thread-locals are alive.

mod common;

use std::ffi::c_void;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use common::unwinding::{pthread_exit, pthread_testcancel};
use common::{EXPECT_HIJACK, Log, Tracked, tls_probe};
use hijack_tls::Status;

/// `PTHREAD_CANCELED` from `<pthread.h>`: `((void *) -1)`.
const PTHREAD_CANCELED: *mut c_void = usize::MAX as *mut c_void;

/// A local whose drop shows when the forced unwind passes the start routine.
struct FrameLocal(Log);

impl Drop for FrameLocal {
    fn drop(&mut self) {
        self.0.push("frame local dropped");
    }
}

/// Registers a value and a handler, then arms the TLS probe *after* the record (so only
/// the hijack's mechanism, not the fallback destructor, sees it alive).
fn register(log: &Log) -> Status {
    hijack_tls::set("value", Tracked::new("value", log));
    tls_probe::log_alive_at_exit(log);
    tls_probe::arm(log);
    hijack_tls::status()
}

fn check(log: &Log, status: Status) {
    let events = log.events();
    assert_eq!(log.count("drop value"), 1, "{events:?}");
    assert_eq!(log.count("thread_local destructor"), 1, "{events:?}");
    assert_eq!(events.iter().filter(|e| e.starts_with("handler")).count(), 1, "{events:?}");
    if EXPECT_HIJACK {
        assert!(matches!(status, Status::Hijacked { .. }), "{status}");
        assert_eq!(
            events,
            [
                "frame local dropped",
                "handler: thread_local alive = true",
                "drop value",
                "thread_local destructor"
            ]
        );
    }
}

struct Job {
    log: Log,
    status: Mutex<Option<Status>>,
    cancel_ready: AtomicBool,
}

fn spawn_raw(
    start: extern "C-unwind" fn(*mut c_void) -> *mut c_void,
    job: &Job,
) -> libc::pthread_t {
    let mut thread: libc::pthread_t = 0;
    // SAFETY: "C-unwind" and "C" share the calling convention; the forced unwind
    // that may cross this frame is what "C-unwind" permits.
    let start = unsafe {
        std::mem::transmute::<
            extern "C-unwind" fn(*mut c_void) -> *mut c_void,
            extern "C" fn(*mut c_void) -> *mut c_void,
        >(start)
    };
    let arg = job as *const Job as *mut c_void;
    // SAFETY: valid start routine; `job` outlives the thread (joined by the caller).
    assert_eq!(unsafe { libc::pthread_create(&mut thread, std::ptr::null(), start, arg) }, 0);
    thread
}

fn join(thread: libc::pthread_t) -> *mut c_void {
    let mut result = std::ptr::null_mut();
    // SAFETY: joined once.
    assert_eq!(unsafe { libc::pthread_join(thread, &mut result) }, 0);
    result
}

#[inline(never)]
extern "C-unwind" fn nested_exit(depth: u32) {
    if depth == 0 {
        // SAFETY: ends this raw pthread; the frames it unwinds are "C-unwind" or Rust.
        unsafe { pthread_exit(0x51) };
    }
    nested_exit(depth - 1);
    std::hint::black_box(depth);
}

extern "C-unwind" fn exit_start(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the `&Job` passed by spawn_raw, alive until join.
    let job = unsafe { &*(arg as *const Job) };
    let _local = FrameLocal(job.log.clone());
    *job.status.lock().unwrap() = Some(register(&job.log));
    nested_exit(3);
    std::ptr::null_mut()
}

#[test]
fn pthread_exit_from_a_nested_frame() {
    let job = Job { log: Log::default(), status: Mutex::new(None), cancel_ready: false.into() };
    let result = join(spawn_raw(exit_start, &job));
    assert_eq!(result as usize, 0x51);
    check(&job.log, job.status.lock().unwrap().take().unwrap());
}

extern "C-unwind" fn cancel_start(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the `&Job` passed by spawn_raw, alive until join.
    let job = unsafe { &*(arg as *const Job) };
    let _local = FrameLocal(job.log.clone());
    *job.status.lock().unwrap() = Some(register(&job.log));
    job.cancel_ready.store(true, Ordering::SeqCst);
    loop {
        // A deferred cancellation point.
        // SAFETY: no preconditions.
        unsafe { pthread_testcancel() };
        std::thread::yield_now();
    }
}

#[test]
fn pthread_cancel_deferred() {
    let job = Job { log: Log::default(), status: Mutex::new(None), cancel_ready: false.into() };
    let thread = spawn_raw(cancel_start, &job);
    while !job.cancel_ready.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    // SAFETY: the thread exists until joined below.
    assert_eq!(unsafe { libc::pthread_cancel(thread) }, 0);
    assert_eq!(join(thread), PTHREAD_CANCELED);
    check(&job.log, job.status.lock().unwrap().take().unwrap());
}

extern "C-unwind" fn panicking_handler_start(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the `&Job` passed by spawn_raw, alive until join.
    let job = unsafe { &*(arg as *const Job) };
    let log = job.log.clone();
    hijack_tls::at_exit(move || log.push("second handler"));
    hijack_tls::at_exit(|| panic!("handler panics during a forced unwind"));
    nested_exit(1);
    std::ptr::null_mut()
}

#[test]
fn a_panicking_handler_during_pthread_exit_is_contained() {
    let job = Job { log: Log::default(), status: Mutex::new(None), cancel_ready: false.into() };
    assert_eq!(join(spawn_raw(panicking_handler_start, &job)) as usize, 0x51);
    assert_eq!(job.log.events(), ["second handler"]);
}
