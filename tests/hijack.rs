//! The stack hijack on real threads: hooks run before every TLS destructor, on
//! every kind of thread and from every odd place of first use.

mod common;

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use common::{EXPECT_HIJACK, Log, Tracked, on_thread, recurse_then, tls_probe};
use hijack_tls::{FallbackReason, Status};

fn assert_hijacked(status: Status) {
    if EXPECT_HIJACK {
        assert!(matches!(status, Status::Hijacked { .. }), "expected a hijack, got {status}");
    } else {
        assert!(matches!(status, Status::Fallback { .. }), "{status}");
    }
}

/// Arms the TLS probe's destructor to log into `log`.
fn touch_probe(log: &Log) {
    tls_probe::arm(log);
}

/// The order every thread kind must show: handler (with the thread-local alive),
/// value drop, then the thread-local's destructor.
const EXPECTED_ORDER: [&str; 3] =
    ["handler: thread_local alive = true", "drop value", "thread_local destructor"];

/// Checks the exit order: exact under the hijack; under the fallback (whose order
/// among TLS destructors is not promised) each event exactly once.
fn assert_exit_order(log: &Log) {
    let events = log.events();
    if EXPECT_HIJACK {
        assert_eq!(events, EXPECTED_ORDER);
    } else {
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(log.count("drop value"), 1, "{events:?}");
        assert_eq!(log.count("thread_local destructor"), 1, "{events:?}");
    }
}

/// Stores a value and a handler that checks the TLS probe is still alive.
fn register_value_and_handler(log: &Log) {
    hijack_tls::set("value", Tracked::new("value", log));
    tls_probe::log_alive_at_exit(log);
}

#[test]
fn std_thread_hooks_run_before_tls_destructors_either_registration_order() {
    for probe_first in [true, false] {
        let log = Log::default();
        let inner = log.clone();
        let (result, status) = on_thread(move || {
            if probe_first {
                touch_probe(&inner);
            }
            register_value_and_handler(&inner);
            if !probe_first {
                // Registered after the record: the fallback would destroy it first.
                touch_probe(&inner);
            }
            (0xfeed_u32, hijack_tls::status())
        });
        assert_eq!(result, 0xfeed, "the thread's return value is unchanged");
        assert_hijacked(status);
        if EXPECT_HIJACK || probe_first {
            assert_eq!(log.events(), EXPECTED_ORDER, "probe_first = {probe_first}");
        }
    }
}

static RAW_LOG: std::sync::Mutex<Option<Log>> = std::sync::Mutex::new(None);

extern "C" fn raw_start(arg: *mut c_void) -> *mut c_void {
    let log = RAW_LOG.lock().unwrap().clone().unwrap();
    register_value_and_handler(&log);
    touch_probe(&log);
    assert_hijacked(hijack_tls::status());
    arg.wrapping_add(1)
}

#[test]
fn raw_pthread_hooks_run_before_tls_destructors() {
    let log = Log::default();
    *RAW_LOG.lock().unwrap() = Some(log.clone());
    let mut thread: libc::pthread_t = 0;
    // SAFETY: valid start routine and default attributes.
    let rc = unsafe {
        libc::pthread_create(&mut thread, std::ptr::null(), raw_start, 41 as *mut c_void)
    };
    assert_eq!(rc, 0);
    let mut result = std::ptr::null_mut();
    // SAFETY: joined once.
    assert_eq!(unsafe { libc::pthread_join(thread, &mut result) }, 0);
    assert_eq!(result as usize, 42, "pthread_join sees the start routine's value");
    assert_exit_order(&log);
}

#[test]
fn pool_thread_created_before_first_use() {
    let log = Log::default();
    let (jobs, receive) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
    let pool = std::thread::spawn(move || {
        // The thread is already deep in its own loop when the crate is first used.
        while let Ok(job) = receive.recv() {
            job();
        }
    });
    let (report, statuses) = mpsc::channel();
    let inner = log.clone();
    jobs.send(Box::new(move || {
        register_value_and_handler(&inner);
        touch_probe(&inner);
        report.send(hijack_tls::status()).unwrap();
    }))
    .unwrap();
    assert_hijacked(statuses.recv().unwrap());
    drop(jobs);
    pool.join().unwrap();
    assert_exit_order(&log);
}

#[test]
fn first_use_ten_thousand_frames_deep() {
    let log = Log::default();
    let inner = log.clone();
    let status = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            let mut status = Status::Inactive;
            let depth = recurse_then(10_000, &mut || {
                register_value_and_handler(&inner);
                touch_probe(&inner);
                status = hijack_tls::status();
            });
            assert_eq!(depth, 10_000);
            status
        })
        .unwrap()
        .join()
        .unwrap();
    assert_hijacked(status);
    assert_exit_order(&log);
}

static SIGNAL_STATUS: std::sync::Mutex<Option<Status>> = std::sync::Mutex::new(None);

extern "C" fn first_use_in_handler(_: libc::c_int) {
    hijack_tls::at_exit(|| {});
    *SIGNAL_STATUS.lock().unwrap() = Some(hijack_tls::status());
}

#[test]
fn first_use_from_a_signal_handler() {
    let log = Log::default();
    let inner = log.clone();
    let status = on_thread(move || {
        // SAFETY: installs a plain handler for SIGUSR2 (unused elsewhere in this
        // test binary); the signal is raised synchronously on this thread below.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = first_use_in_handler as extern "C" fn(libc::c_int) as usize;
            assert_eq!(libc::sigaction(libc::SIGUSR2, &action, std::ptr::null_mut()), 0);
            assert_eq!(libc::raise(libc::SIGUSR2), 0);
        }
        register_value_and_handler(&inner);
        touch_probe(&inner);
        SIGNAL_STATUS.lock().unwrap().take().expect("handler ran")
    });
    if cfg!(target_arch = "aarch64") && EXPECT_HIJACK {
        // aarch64 has no libc signal restorer: the handler returns into the
        // kernel's vDSO `__kernel_rt_sigreturn`, whose CFI gives only x29/x30 and
        // not the interrupted sp (qemu-user before 8.1: no unwind info at all), so
        // the walk refuses and the thread falls back (NOTES.md, aarch64 section).
        let Status::Fallback { reason, .. } = status else { panic!("{status}") };
        assert!(reason.to_string().starts_with("stack walk failed"), "{reason}");
        let events = log.events();
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(log.count("drop value"), 1, "{events:?}");
        assert_eq!(log.count("thread_local destructor"), 1, "{events:?}");
        return;
    }
    assert_hijacked(status);
    assert_exit_order(&log);
}

#[test]
fn first_use_inside_a_tls_destructor_falls_back_and_still_runs() {
    static RAN: AtomicUsize = AtomicUsize::new(0);
    static REASON: std::sync::Mutex<Option<Status>> = std::sync::Mutex::new(None);
    struct UsesCrateOnDrop;
    impl Drop for UsesCrateOnDrop {
        fn drop(&mut self) {
            hijack_tls::at_exit(|| {
                RAN.fetch_add(1, Ordering::SeqCst);
            });
            *REASON.lock().unwrap() = Some(hijack_tls::status());
        }
    }
    thread_local! {
        static LATE: UsesCrateOnDrop = const { UsesCrateOnDrop };
    }
    on_thread(|| LATE.with(|_| ()));
    assert_eq!(RAN.load(Ordering::SeqCst), 1, "the handler ran exactly once");
    let status = REASON.lock().unwrap().take().unwrap();
    match status {
        Status::Fallback { reason, .. } if EXPECT_HIJACK => {
            assert!(!matches!(reason, FallbackReason::DisabledByEnvironment), "{reason}");
            println!("first use in a TLS destructor: {status}");
        }
        Status::Fallback { .. } => {}
        other => panic!("a TLS destructor must not be hijacked: {other}"),
    }
}

#[test]
fn unload_restores_the_return_address_and_a_later_set_hijacks_again() {
    on_thread(|| {
        hijack_tls::set("x", 1);
        let first = hijack_tls::status();
        assert_hijacked(first);
        if let Status::Hijacked { slot, original_return, trampoline } = first {
            // SAFETY: the slot is a word of this thread's own live stack (from status).
            let read = || unsafe { (slot as *const usize).read_volatile() };
            assert_eq!(read(), trampoline);
            hijack_tls::unload();
            assert_eq!(read(), original_return, "unload puts the original back");
            hijack_tls::set("x", 2);
            assert_eq!(hijack_tls::status(), first, "same slot, hijacked again");
            assert_eq!(read(), trampoline);
            hijack_tls::unload();
            assert_eq!(read(), original_return);
        }
    });
}

#[test]
fn a_thread_that_unloaded_exits_as_if_never_hijacked() {
    let log = Log::default();
    let inner = log.clone();
    let result = on_thread(move || {
        register_value_and_handler(&inner);
        touch_probe(&inner);
        hijack_tls::unload();
        "done"
    });
    assert_eq!(result, "done");
    assert_eq!(log.events(), ["drop value", "thread_local destructor"]);
}

/// After two threads' first uses, new threads read their stack bounds from the
/// thread descriptor's own fields (the walk's fast path), not `pthread_getattr_np`.
#[test]
fn new_threads_read_their_stack_bounds_from_the_descriptor() {
    use hijack_tls::diagnostics::{StackBoundsSource, stack_bounds_source};
    for _ in 0..2 {
        assert_hijacked(
            std::thread::spawn(|| {
                hijack_tls::id();
                hijack_tls::status()
            })
            .join()
            .unwrap(),
        );
    }
    let source = stack_bounds_source();
    if EXPECT_HIJACK {
        assert!(matches!(source, StackBoundsSource::Descriptor { .. }), "{source}");
    } else {
        assert!(!matches!(source, StackBoundsSource::Descriptor { .. }), "{source}");
    }
}
