//! Workloads that start threads: first use on a fresh thread, the exit sequence,
//! and keyed lookups on several threads at once.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

/// Baseline: spawn a thread running an empty closure and join it.
pub fn spawn_join() {
    thread::spawn(|| black_box(())).join().expect("thread");
}

/// Spawn a thread that stores a value and registers a handler (its first use of the
/// crate: record, arming, exit sequence) and join it.
pub fn spawn_first_use() {
    thread::spawn(|| {
        hijack_tls::set("first-use", 1_u64);
        hijack_tls::at_exit(|| black_box(()));
    })
    .join()
    .expect("thread");
}

/// Spawn a thread that registers `handlers` at-exit handlers (each runs in its
/// exit sequence) and join it.
pub fn spawn_handlers(handlers: usize) {
    thread::spawn(move || {
        hijack_tls::id();
        for n in 0..handlers {
            hijack_tls::at_exit(move || {
                black_box(n);
            });
        }
    })
    .join()
    .expect("thread");
}

/// Runs `op` `iters` times on each of `threads` threads started together (after
/// [`fill_thread`](super::fill_thread) on each), and returns the mean CPU time one
/// thread spent on its `iters` operations, spawning and filling excluded.
///
/// CPU time, not wall time: on a loaded machine a thread that waits for a core
/// would otherwise count the wait, while cache-line contention between the
/// threads (what this measures) still shows as stalled cycles.
pub fn on_threads(threads: usize, iters: u64, op: fn(usize) -> Option<u64>) -> Duration {
    let barrier = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                super::fill_thread();
                barrier.wait();
                let start = thread_cpu_time();
                for i in 0..iters {
                    black_box(op(black_box(i as usize)));
                }
                thread_cpu_time().saturating_sub(start)
            })
        })
        .collect();
    let total: Duration = workers.into_iter().map(|w| w.join().expect("thread")).sum();
    total / u32::try_from(threads).expect("a few threads")
}

/// CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid out-pointer; the clock always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}
