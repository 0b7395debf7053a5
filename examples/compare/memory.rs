//! Heap bytes the crate keeps per thread and per value, measured with glibc's
//! `mallinfo2` (all arenas, glibc's own allocations for the crate included) in a
//! child process whose malloc has no per-thread cache, so freed chunks count as free.

use std::thread;

use hijack_tls::Key;

/// The glibc tunable that turns off malloc's per-thread cache.
pub const NO_TCACHE: (&str, &str) = ("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0");

/// How many values the per-value rows store.
const VALUES: usize = 1024;

/// Bytes in use on the heap now (small chunks and mmapped ones).
fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 has no preconditions.
    let info = unsafe { libc::mallinfo2() };
    info.uordblks + info.hblkhd
}

/// Heap bytes that `f` leaves allocated, measured on a fresh thread after `setup`.
fn retained_on_thread(
    setup: impl FnOnce() + Send + 'static,
    f: impl FnOnce() + Send + 'static,
) -> usize {
    thread::spawn(move || {
        drop(Box::new([0_u8; 64])); // this thread's malloc arena is attached
        setup();
        let before = heap_in_use();
        f();
        heap_in_use().saturating_sub(before)
    })
    .join()
    .expect("thread")
}

/// The memory rows, in bytes: record per thread with no values, then per keyed
/// value, per value in the baseline map, and per `Key<u64>` value.
pub fn measure() -> [f64; 4] {
    // Process-wide first-use work (trampoline unwind info, symbol lookups) is done once.
    thread::spawn(hijack_tls::id).join().expect("thread");
    let record = retained_on_thread(
        || {},
        || {
            hijack_tls::id();
        },
    );
    let keys: &'static [&'static str] =
        (0..VALUES).map(|n| &*String::leak(format!("key-{n}"))).collect::<Vec<_>>().leak();
    let keyed = retained_on_thread(
        || {
            hijack_tls::id();
        },
        move || {
            for (n, key) in keys.iter().enumerate() {
                hijack_tls::set(*key, n as u64);
            }
        },
    );
    let map = retained_on_thread(
        || {},
        move || {
            let mut map = std::collections::HashMap::<&str, Box<dyn core::any::Any>>::new();
            for (n, key) in keys.iter().enumerate() {
                map.insert(*key, Box::new(n as u64));
            }
            std::mem::forget(map);
        },
    );
    let typed_keys: &'static [Key<u64>] =
        (0..VALUES).map(|_| Key::new()).collect::<Vec<_>>().leak();
    let typed = retained_on_thread(
        || {
            hijack_tls::id();
        },
        move || {
            for (n, key) in typed_keys.iter().enumerate() {
                key.set(n as u64);
            }
        },
    );
    let per_value = |bytes: usize| bytes as f64 / VALUES as f64;
    [record as f64, per_value(keyed), per_value(map), per_value(typed)]
}
