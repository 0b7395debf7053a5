//! The exit sequence on real threads of every kind: std, raw `pthread_create`,
//! `pthread_exit`, and many threads at once.

mod common;

use std::collections::HashSet;
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};

use hijack_tls::Key;

/// Spawns a raw pthread running `start(arg)` and joins it; returns the thread's result.
fn run_pthread(start: extern "C-unwind" fn(*mut c_void) -> *mut c_void, arg: *mut c_void) -> usize {
    let mut thread: libc::pthread_t = 0;
    // SAFETY: `start` is a valid start routine; the default attributes are used.
    let rc = unsafe {
        libc::pthread_create(
            &mut thread,
            std::ptr::null(),
            // SAFETY: "C-unwind" and "C" have the same calling convention; glibc's
            // forced unwind (pthread_exit) is what may cross this frame.
            std::mem::transmute::<
                extern "C-unwind" fn(*mut c_void) -> *mut c_void,
                extern "C" fn(*mut c_void) -> *mut c_void,
            >(start),
            arg,
        )
    };
    assert_eq!(rc, 0, "pthread_create");
    let mut result = std::ptr::null_mut();
    // SAFETY: `thread` was created above and is joined once.
    assert_eq!(unsafe { libc::pthread_join(thread, &mut result) }, 0);
    result as usize
}

struct Counted(&'static AtomicUsize);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

static RAW_HANDLERS: AtomicUsize = AtomicUsize::new(0);
static RAW_DROPS: AtomicUsize = AtomicUsize::new(0);

extern "C-unwind" fn raw_start(arg: *mut c_void) -> *mut c_void {
    hijack_tls::set("raw", Counted(&RAW_DROPS));
    hijack_tls::at_exit(|| {
        assert!(hijack_tls::with(&"raw", |_: &Counted| ()).is_some());
        RAW_HANDLERS.fetch_add(1, Ordering::SeqCst);
    });
    arg
}

#[test]
fn raw_pthread_create_thread_runs_the_exit_sequence() {
    let result = run_pthread(raw_start, 0x1234 as *mut c_void);
    assert_eq!(result, 0x1234, "return value unchanged");
    assert_eq!(RAW_HANDLERS.load(Ordering::SeqCst), 1);
    assert_eq!(RAW_DROPS.load(Ordering::SeqCst), 1);
}

static EXIT_HANDLERS: AtomicUsize = AtomicUsize::new(0);
static EXIT_DROPS: AtomicUsize = AtomicUsize::new(0);

#[inline(never)]
extern "C-unwind" fn exit_from_nested_frame(depth: usize) {
    if depth == 0 {
        // SAFETY: ends this raw pthread; the frames it unwinds hold no live borrows.
        unsafe { common::unwinding::pthread_exit(0x99) };
    }
    exit_from_nested_frame(depth - 1);
}

extern "C-unwind" fn exiting_start(_: *mut c_void) -> *mut c_void {
    hijack_tls::set("exiting", Counted(&EXIT_DROPS));
    hijack_tls::at_exit(|| {
        EXIT_HANDLERS.fetch_add(1, Ordering::SeqCst);
    });
    exit_from_nested_frame(5);
    std::ptr::null_mut()
}

#[test]
fn pthread_exit_from_a_nested_frame_runs_the_exit_sequence_once() {
    let result = run_pthread(exiting_start, std::ptr::null_mut());
    assert_eq!(result, 0x99);
    assert_eq!(EXIT_HANDLERS.load(Ordering::SeqCst), 1);
    assert_eq!(EXIT_DROPS.load(Ordering::SeqCst), 1);
}

#[test]
fn a_thousand_threads_count_every_handler_and_drop_once() {
    static HANDLERS: AtomicUsize = AtomicUsize::new(0);
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static TYPED: Key<Counted> = Key::new();
    const THREADS: usize = 1000;
    const PER_THREAD: usize = 3;
    let mut ids = HashSet::new();
    for batch in 0..THREADS / 50 {
        let handles: Vec<_> = (0..50)
            .map(|n| {
                std::thread::spawn(move || {
                    for k in 0..PER_THREAD {
                        hijack_tls::set((batch, n, k), Counted(&DROPS));
                        hijack_tls::at_exit(|| {
                            HANDLERS.fetch_add(1, Ordering::SeqCst);
                        });
                    }
                    TYPED.set(Counted(&DROPS));
                    hijack_tls::id()
                })
            })
            .collect();
        ids.extend(handles.into_iter().map(|h| h.join().unwrap()));
    }
    assert_eq!(ids.len(), THREADS);
    assert_eq!(HANDLERS.load(Ordering::SeqCst), THREADS * PER_THREAD);
    assert_eq!(DROPS.load(Ordering::SeqCst), THREADS * (PER_THREAD + 1));
}

#[test]
fn ids_are_unique_across_ten_thousand_threads() {
    let mut ids = HashSet::new();
    for _ in 0..100 {
        let handles: Vec<_> = (0..100).map(|_| std::thread::spawn(hijack_tls::id)).collect();
        for handle in handles {
            let id = handle.join().unwrap();
            assert_ne!(id, 0);
            assert!(ids.insert(id), "id {id} handed out twice");
        }
    }
    assert_eq!(ids.len(), 10_000);
}
