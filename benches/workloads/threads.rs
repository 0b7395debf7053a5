//! Workloads that start threads: first use on a fresh thread, the exit sequence,
//! and keyed lookups on several threads at once.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

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
/// threads (what this measures) still shows as stalled cycles. Several threads
/// are bound to distinct CPUs, so they cannot take turns on one (which would show
/// no contention whatever they share), start their loops together from a spin,
/// and file how much the loops overlapped (see [`take_overlap`]).
pub fn on_threads(threads: usize, iters: u64, op: fn(usize) -> Option<u64>) -> Duration {
    let ready = Arc::new(AtomicUsize::new(0));
    let cpus = super::cpus::allowed();
    let workers: Vec<_> = (0..threads)
        .map(|n| {
            let ready = Arc::clone(&ready);
            let cpu = (threads > 1 && cpus.len() >= threads).then(|| cpus[n]);
            thread::spawn(move || {
                if let Some(cpu) = cpu {
                    // Unbound if this fails, which the overlap then shows.
                    let _ = super::cpus::bind_to(cpu);
                }
                super::fill_thread();
                // A spin, not a futex wait: the loops start within a cache-line
                // transfer of each other rather than a wake-up apart.
                ready.fetch_add(1, Ordering::AcqRel);
                while ready.load(Ordering::Acquire) < threads {
                    std::hint::spin_loop();
                }
                let (start, wall_start) = (thread_cpu_time(), Instant::now());
                for i in 0..iters {
                    black_box(op(black_box(i as usize)));
                }
                (thread_cpu_time().saturating_sub(start), wall_start, Instant::now())
            })
        })
        .collect();
    let runs: Vec<_> = workers.into_iter().map(|w| w.join().expect("thread")).collect();
    if threads > 1 {
        OVERLAPS.lock().unwrap_or_else(|e| e.into_inner()).push(overlap(&runs));
    }
    let total: Duration = runs.iter().map(|run| run.0).sum();
    total / u32::try_from(threads).expect("a few threads")
}

/// For each multi-thread [`on_threads`] run since the last [`take_overlap`]: the
/// wall time all its threads were in their loops, and its longest loop's.
static OVERLAPS: Mutex<Vec<(Duration, Duration)>> = Mutex::new(Vec::new());

/// The share of the multi-thread [`on_threads`] runs since the last call during
/// which all their threads were in their loops: overlapped time over the longest
/// loops' time, summed over the runs (so calibration's tiny runs weigh nothing).
/// `None` if there was no such run.
pub fn take_overlap() -> Option<f64> {
    let runs = std::mem::take(&mut *OVERLAPS.lock().unwrap_or_else(|e| e.into_inner()));
    let overlapped: Duration = runs.iter().map(|run| run.0).sum();
    let longest: Duration = runs.iter().map(|run| run.1).sum();
    (!longest.is_zero()).then(|| overlapped.as_secs_f64() / longest.as_secs_f64())
}

/// The wall time during which all loops ran, and the longest loop's.
fn overlap(runs: &[(Duration, Instant, Instant)]) -> (Duration, Duration) {
    let latest_start = runs.iter().map(|run| run.1).max().expect("threads");
    let earliest_end = runs.iter().map(|run| run.2).min().expect("threads");
    let longest = runs.iter().map(|run| run.2 - run.1).max().expect("threads");
    (earliest_end.saturating_duration_since(latest_start), longest)
}

/// CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid out-pointer; the clock always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}
