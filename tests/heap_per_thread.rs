//! The heap a thread's first use keeps: the record and whatever glibc allocates
//! for it (a TLS-destructor node, a `dlerror` buffer from a failed `dlsym`...),
//! measured with `mallinfo2` in a child whose malloc has no per-thread cache, so
//! freed chunks count as free. README's budget is 256 bytes; the `compare`
//! example prints the same row. A lookup asked on every first use that leaves a
//! buffer behind (session 6: `dlsym("main")`, 112 bytes per thread) fails here.

mod common;

use common::{is_child, run_child};

/// README's per-thread heap budget, in bytes.
const BUDGET: usize = 256;

/// Bytes in use on the heap now (small chunks and mmapped ones).
fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 has no preconditions.
    let info = unsafe { libc::mallinfo2() };
    info.uordblks + info.hblkhd
}

/// The heap a fresh thread's first use leaves allocated.
fn retained_by_a_first_use() -> usize {
    std::thread::spawn(|| {
        drop(Box::new([0_u8; 64])); // this thread's malloc arena is attached
        let before = heap_in_use();
        hijack_tls::id();
        heap_in_use().saturating_sub(before)
    })
    .join()
    .unwrap()
}

#[test]
fn child_first_use_heap() {
    if !is_child("child_first_use_heap") {
        return;
    }
    // Process-wide first-use work (unwind info, symbol lookups) is done once.
    std::thread::spawn(hijack_tls::id).join().unwrap();
    let retained = (0..8).map(|_| retained_by_a_first_use()).min().unwrap();
    println!("retained {retained}");
}

#[test]
fn a_first_use_keeps_at_most_the_budget_on_the_heap() {
    for mode in [&[][..], &[("HIJACK_TLS", "off")][..]] {
        let mut env = vec![("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0")];
        env.extend_from_slice(mode);
        let (ok, out, err) = run_child("child_first_use_heap", &env);
        assert!(ok, "{out}\n{err}");
        let retained: usize = out
            .lines()
            .find_map(|l| l.split("retained ").nth(1))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no measurement: {out}"));
        assert!(retained <= BUDGET, "{mode:?}: a first use keeps {retained} B (budget {BUDGET})");
    }
}
