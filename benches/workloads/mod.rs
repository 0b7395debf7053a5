//! The workloads, shared by the criterion benches and `examples/compare.rs` so both
//! measure the same code: each operation of the crate next to the alternative a user
//! would write instead, the obvious way.
#![allow(dead_code)] // Each bench target uses only its own rows.

pub mod cpus;
pub mod threads;

use core::any::Any;
use core::cell::{Cell, RefCell};
use core::sync::atomic::{AtomicU64, Ordering};
use std::collections::HashMap;

use hijack_tls::Key;
use thread_local::ThreadLocal;

/// The 16 keys present on a thread for the keyed rows.
pub const KEYS: [&str; 16] = [
    "request-id",
    "user",
    "trace",
    "span",
    "tenant",
    "locale",
    "deadline",
    "retries",
    "shard",
    "region",
    "session",
    "route",
    "client",
    "version",
    "budget",
    "depth",
];

/// The typed key the typed rows read.
pub static TYPED: Key<u64> = Key::new();

thread_local! {
    /// Baseline for typed reads: the native limit, one `%fs`-relative load.
    static CELL: Cell<u64> = const { Cell::new(0) };
    /// Baseline for keyed lookups, written the obvious way.
    static MAP: RefCell<HashMap<&'static str, Box<dyn Any>>> = RefCell::new(HashMap::new());
}

/// The key for iteration `i`: the rows cycle through all 16 so no lookup is constant.
#[inline]
pub fn key(i: usize) -> &'static &'static str {
    &KEYS[i % KEYS.len()]
}

/// Gives this thread a record with `TYPED` and the 16 keyed values, and fills the
/// baselines' storage the same way.
pub fn fill_thread() {
    TYPED.set(7);
    CELL.with(|c| c.set(7));
    for (n, key) in KEYS.iter().enumerate() {
        hijack_tls::set(*key, n as u64);
        MAP.with(|m| m.borrow_mut().insert(*key, Box::new(n as u64)));
    }
}

/// `Key<u64>::get`.
#[inline]
pub fn typed_get() -> Option<u64> {
    TYPED.get()
}

/// `Key<u64>::with`.
#[inline]
pub fn typed_with() -> Option<u64> {
    TYPED.with(|v| *v)
}

/// `Key<u64>::set` of a key that is already set.
#[inline]
pub fn typed_set(v: u64) -> Option<u64> {
    TYPED.set(v)
}

/// `Key<u64>::get` used as a `u64` (0 when absent), the way a caller consumes it:
/// compared with the `Cell` read, which yields a bare `u64`.
#[inline]
pub fn typed_get_value() -> u64 {
    TYPED.get().unwrap_or(0)
}

/// `Key<u64>::with` used as a `u64` (0 when absent).
#[inline]
pub fn typed_with_value() -> u64 {
    TYPED.with(|v| *v).unwrap_or(0)
}

/// std `thread_local!` `const` `Cell<u64>` read.
#[inline]
pub fn cell_get() -> u64 {
    CELL.with(Cell::get)
}

/// std `thread_local!` `const` `Cell<u64>` write.
#[inline]
pub fn cell_set(v: u64) -> u64 {
    CELL.with(|c| c.replace(v))
}

/// Keyed `get` of a `u64`.
#[inline]
pub fn keyed_get(i: usize) -> Option<u64> {
    hijack_tls::get(key(i))
}

/// The baseline map lookup.
#[inline]
pub fn map_get(i: usize) -> Option<u64> {
    MAP.with(|m| m.borrow().get(key(i)).and_then(|v| v.downcast_ref::<u64>()).copied())
}

/// A counter every thread shares: the control that shows what sharing a cache line
/// on the hot path costs when two threads run it at once.
#[inline]
pub fn shared_counter(_: usize) -> Option<u64> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    Some(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Keyed `set` replacing a present `u64`.
#[inline]
pub fn keyed_set(i: usize) {
    hijack_tls::set(*key(i), i as u64);
}

/// The baseline map insert replacing a present value.
#[inline]
pub fn map_set(i: usize) {
    let old = MAP.with(|m| m.borrow_mut().insert(*key(i), Box::new(i as u64)));
    drop(old);
}

/// Keyed `del` of a present value, then `set` to put it back.
#[inline]
pub fn keyed_del_set(i: usize) {
    drop(hijack_tls::del(key(i)));
    hijack_tls::set(*key(i), i as u64);
}

/// The baseline map remove, then insert.
#[inline]
pub fn map_del_set(i: usize) {
    let old = MAP.with(|m| m.borrow_mut().remove(key(i)));
    drop(old);
    map_set(i);
}

/// 16 keyed `set`s, then `reset`.
pub fn keyed_fill_reset() {
    for (n, key) in KEYS.iter().enumerate() {
        hijack_tls::set(*key, n as u64);
    }
    hijack_tls::reset();
}

/// The baseline: 16 map inserts, then `clear`.
pub fn map_fill_clear() {
    for (n, key) in KEYS.iter().enumerate() {
        MAP.with(|m| m.borrow_mut().insert(*key, Box::new(n as u64)));
    }
    MAP.with(|m| m.borrow_mut().clear());
}

/// `hijack_tls::id()` on a thread with a record.
#[inline]
pub fn id() -> u64 {
    hijack_tls::id()
}

/// The std alternative: `std::thread::current().id()`.
#[inline]
pub fn std_thread_id() -> std::thread::ThreadId {
    std::thread::current().id()
}

/// The other per-thread storage a user might pick, set up like `TYPED`.
pub struct Alternatives {
    /// `thread_local` crate: per-object thread-local storage.
    tl: ThreadLocal<Cell<u64>>,
    /// A pthread key holding a pointer to the thread's `u64`.
    pkey: libc::pthread_key_t,
}

impl Alternatives {
    /// Creates the alternatives (call [`fill`](Self::fill) on each measuring thread).
    pub fn new() -> Self {
        let mut pkey = 0;
        // SAFETY: `pkey` is a valid out-pointer; no destructor.
        let rc = unsafe { libc::pthread_key_create(&mut pkey, None) };
        assert_eq!(rc, 0, "pthread_key_create");
        Self { tl: ThreadLocal::new(), pkey }
    }

    /// Stores 7 in both for this thread (the pthread key's `u64` is leaked).
    pub fn fill(&self) {
        self.tl.get_or(|| Cell::new(7));
        let value: &'static u64 = Box::leak(Box::new(7));
        // SAFETY: the key is live; the pointer stays valid forever (leaked).
        let rc = unsafe { libc::pthread_setspecific(self.pkey, (value as *const u64).cast()) };
        assert_eq!(rc, 0, "pthread_setspecific");
    }

    /// `ThreadLocal::get`.
    #[inline]
    pub fn thread_local_get(&self) -> Option<u64> {
        self.tl.get().map(Cell::get)
    }

    /// `pthread_getspecific` and a read through the pointer.
    #[inline]
    pub fn pthread_get(&self) -> Option<u64> {
        // SAFETY: the key is live (never deleted).
        let ptr = unsafe { libc::pthread_getspecific(self.pkey) }.cast::<u64>();
        // SAFETY: a non-null value was set by `fill` and points at a leaked u64.
        (!ptr.is_null()).then(|| unsafe { *ptr })
    }
}

impl Default for Alternatives {
    fn default() -> Self {
        Self::new()
    }
}
