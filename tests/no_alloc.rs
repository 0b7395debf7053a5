//! The hot paths allocate nothing after first use: every operation below runs
//! under a global allocator that counts this thread's allocations.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::on_thread;
use hijack_tls::Key;

/// Counts allocations made by the current thread, then defers to `System`.
struct Counting;

thread_local! {
    /// This thread's allocations so far. `const` with no destructor, so reading it
    /// from inside the allocator never allocates or fails.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    ALLOCATIONS.with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is `System.alloc_zeroed`'s.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is `System.realloc`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is `System.dealloc`'s.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations this thread makes while running `f`.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

static TYPED: Key<u64> = Key::new();
static NAME: Key<String> = Key::new();
const KEYS: [&str; 4] = ["request-id", "user", "trace", "a-key-longer-than-sixteen-bytes"];

/// Every hot-path operation once, on values stored by [`first_use`].
fn hot_paths(round: u64) {
    assert_eq!(TYPED.get(), Some(round));
    assert_eq!(TYPED.with(|v| *v + 1), Some(round + 1));
    assert_eq!(TYPED.set(round + 1), Some(round), "replaced in place");
    assert_eq!(NAME.with(String::len), Some(6));
    for key in KEYS {
        assert_eq!(hijack_tls::get::<_, u64>(&key), Some(round));
        assert_eq!(hijack_tls::with(&key, |v: &u64| *v), Some(round));
        hijack_tls::set(key, round + 1); // replaced in place
    }
    assert_eq!(hijack_tls::with(&"name", |v: &String| v.len()), Some(6));
    assert_eq!(hijack_tls::get::<_, u32>(&"request-id"), None, "another type");
    assert_eq!(hijack_tls::get::<_, u64>(&"missing"), None);
    assert_ne!(hijack_tls::id(), 0);
    assert_ne!(hijack_tls::status(), hijack_tls::Status::Inactive);
}

fn first_use() {
    TYPED.set(0);
    NAME.set(String::from("worker"));
    for key in KEYS {
        hijack_tls::set(key, 0_u64);
    }
    hijack_tls::set("name", String::from("worker"));
}

#[test]
fn hot_paths_do_not_allocate_after_first_use() {
    on_thread(|| {
        let first = allocations_in(first_use);
        assert!(first > 0, "the counter works: first use allocates the record and values");
        for round in 0..if cfg!(miri) { 20 } else { 1000 } {
            let n = allocations_in(|| hot_paths(round));
            assert_eq!(n, 0, "round {round}: {n} allocation(s) on a hot path");
        }
    });
}

#[test]
fn nested_reads_do_not_allocate() {
    on_thread(|| {
        first_use();
        let n = allocations_in(|| {
            let sum = TYPED.with(|a| {
                let inner = hijack_tls::with(&"request-id", |b: &u64| TYPED.get().unwrap() + *b);
                *a + inner.unwrap()
            });
            assert_eq!(sum, Some(0));
        });
        assert_eq!(n, 0);
    });
}

#[test]
fn replacing_a_borrowed_value_allocates_a_new_one() {
    // The counter's control: a value borrowed by `with` cannot be replaced in place.
    on_thread(|| {
        first_use();
        let n = allocations_in(|| {
            TYPED.with(|_| assert_eq!(TYPED.set(5), None, "borrowed: not moved out"));
        });
        assert_eq!(n, 1, "one allocation for the new value");
        assert_eq!(TYPED.get(), Some(5));
    });
}
