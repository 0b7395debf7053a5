//! The per-thread record: ID, values, at-exit handlers and how the exit is armed.
//!
//! The record is a heap allocation reached through one `const`-initialised
//! thread-local pointer with no destructor, so it stays reachable during TLS
//! teardown. It is only ever borrowed for short stretches that run no user code
//! except a key's `Eq`; user code (drops, handlers, `with` closures) always runs
//! with no borrow of the record alive, which is what makes every re-entrant call
//! sound. NOTES.md ("Record layout") has the reasoning.

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arming::Arming;
use crate::keyed::{KeyedMap, Location, StoredKey};
use crate::typed::Slots;
use crate::value::Shared;

/// An at-exit handler.
pub(crate) type Handler = Box<dyn FnOnce()>;

/// One thread's state.
pub(crate) struct Record {
    /// Nonzero, never reused.
    pub(crate) id: u64,
    /// Values stored under hashed keys.
    pub(crate) keyed: KeyedMap,
    /// Values stored under typed [`Key`](crate::Key)s, indexed by key index.
    pub(crate) slots: Slots,
    /// At-exit handlers, run last-in first-out.
    pub(crate) handlers: Vec<Handler>,
    /// Sequence number for the next stored value; values drop newest first.
    pub(crate) next_seq: u64,
    /// How the exit sequence is armed.
    pub(crate) arming: Arming,
    /// The exit sequence is running on this record (it owns the freeing).
    pub(crate) exiting: bool,
    /// Past the exit-round bound: new values and handlers are refused.
    pub(crate) closed: bool,
    /// How many values and handlers were refused after `closed` was set.
    pub(crate) refused: usize,
}

/// A value taken out of the record, with its key; dropped once the record is released.
pub(crate) struct Detached {
    _value: Shared,
    _key: Option<StoredKey>,
}

/// Everything `unload` takes out of a record, to drop after the record is gone.
pub(crate) struct Contents {
    pub(crate) handlers: Vec<Handler>,
    /// Newest first.
    pub(crate) values: Vec<Detached>,
}

impl Record {
    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Stores a keyed value; returns what the caller must drop after the borrow.
    pub(crate) fn store_keyed<K: Eq + 'static>(
        &mut self,
        hash: u64,
        key: K,
        value: Shared,
    ) -> (Option<Shared>, Option<K>) {
        if self.closed {
            self.refuse(value);
            return (None, Some(key));
        }
        let seq = self.take_seq();
        self.keyed.insert(hash, key, seq, value)
    }

    /// Stores a value in typed slot `index`; returns the old value.
    pub(crate) fn store_slot(&mut self, index: usize, value: Shared) -> Option<Shared> {
        if self.closed {
            self.refuse(value);
            return None;
        }
        let seq = self.take_seq();
        self.slots.put(index, seq, value)
    }

    /// Adds an at-exit handler.
    pub(crate) fn push_handler(&mut self, handler: Handler) {
        if self.closed {
            self.refuse(handler);
        } else {
            self.handlers.push(handler);
        }
    }

    /// Past the exit-round bound nothing more is accepted: the item is leaked on
    /// purpose (dropping it could register yet more) and counted for the report.
    fn refuse<T>(&mut self, item: T) {
        core::mem::forget(item);
        self.refused += 1;
    }

    /// Whether handlers or values remain.
    pub(crate) fn has_work(&self) -> bool {
        !self.handlers.is_empty() || !self.keyed.is_empty() || !self.slots.is_empty()
    }

    /// Where every value stored before `bound` is, newest first.
    pub(crate) fn values_below(&self, bound: u64) -> Vec<(u64, Location)> {
        let mut list = Vec::new();
        self.keyed.list_below(bound, &mut list);
        self.slots.list_below(bound, &mut list);
        list.sort_unstable_by_key(|&(seq, _)| core::cmp::Reverse(seq));
        list
    }

    /// Takes out the value with sequence number `seq` at `location`, if still there.
    pub(crate) fn detach(&mut self, seq: u64, location: Location) -> Option<Detached> {
        match location {
            Location::Keyed(hash) => {
                let (value, key) = self.keyed.remove_at(hash, seq)?;
                Some(Detached { _value: value, _key: Some(key) })
            }
            Location::Slot(index) => {
                let value = self.slots.take_seq(index, seq)?;
                Some(Detached { _value: value, _key: None })
            }
        }
    }

    /// Takes out every handler and value.
    pub(crate) fn take_contents(&mut self) -> Contents {
        let handlers = core::mem::take(&mut self.handlers);
        let list = self.values_below(u64::MAX);
        let values = list.into_iter().filter_map(|(seq, at)| self.detach(seq, at)).collect();
        Contents { handlers, values }
    }
}

thread_local! {
    /// This thread's record, or null. No destructor, so it is usable at any time.
    static CURRENT: Cell<*mut Record> = const { Cell::new(ptr::null_mut()) };
    /// Set while the record is borrowed, to catch re-entry from a key's `Eq`.
    static BORROWED: Cell<bool> = const { Cell::new(false) };
}

/// The next thread ID; IDs start at 1 and are never handed out twice.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    // 2^64 IDs cannot be used up in practice; wrapping would break uniqueness, so stop.
    assert_ne!(id, 0, "hijack-tls: thread IDs exhausted");
    id
}

/// The current record pointer (null if the thread has none).
pub(crate) fn current_ptr() -> *mut Record {
    CURRENT.with(Cell::get)
}

/// Replaces the current record pointer.
pub(crate) fn set_current(record: *mut Record) {
    CURRENT.with(|current| current.set(record));
}

/// Borrows the record at `record` for `f`, which must not run user code other than a
/// key's `Eq`/`Hash`.
///
/// # Panics
/// If called while the record is already borrowed, which only a key's `Eq` or `Hash`
/// calling back into this crate can cause.
///
/// # Safety
/// `record` must be a live record of this thread (from [`current_ptr`] or held by the
/// running exit sequence).
pub(crate) unsafe fn borrow<R>(record: *mut Record, f: impl FnOnce(&mut Record) -> R) -> R {
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            BORROWED.with(|b| b.set(false));
        }
    }
    assert!(
        !BORROWED.with(|b| b.replace(true)),
        "hijack-tls was called from a key's Eq or Hash impl; that is not supported"
    );
    let _release = Release;
    // SAFETY: the caller guarantees `record` is live and owned by this thread; the
    // BORROWED flag guarantees no other reference to it exists while `f` runs.
    f(unsafe { &mut *record })
}

/// Runs `f` on this thread's record, or returns `None` if it has none.
pub(crate) fn with_current<R>(f: impl FnOnce(&mut Record) -> R) -> Option<R> {
    let record = current_ptr();
    if record.is_null() {
        return None;
    }
    // SAFETY: a non-null CURRENT always points at this thread's live record.
    Some(unsafe { borrow(record, f) })
}

/// Runs `f` on this thread's record, creating and arming one first if needed.
pub(crate) fn with_current_or_create<R>(f: impl FnOnce(&mut Record) -> R) -> R {
    let mut record = current_ptr();
    if record.is_null() {
        record = create();
    }
    // SAFETY: `record` is this thread's live record: either CURRENT or just created.
    unsafe { borrow(record, f) }
}

/// Creates, arms and installs a new record for this thread.
fn create() -> *mut Record {
    let record = Box::into_raw(Box::new(Record {
        id: next_id(),
        keyed: KeyedMap::new(),
        slots: Slots::new(),
        handlers: Vec::new(),
        next_seq: 0,
        arming: Arming::None,
        exiting: false,
        closed: false,
        refused: 0,
    }));
    set_current(record);
    let arming = crate::arming::arm();
    // SAFETY: just created and installed; no user code ran since.
    unsafe { borrow(record, |r| r.arming = arming) };
    record
}

/// Frees a record that is no longer current and whose contents were taken out.
///
/// # Safety
/// `record` came from [`create`], is not CURRENT, and is not used again.
pub(crate) unsafe fn free(record: *mut Record) {
    // SAFETY: the caller guarantees unique ownership of a pointer from Box::into_raw.
    drop(unsafe { Box::from_raw(record) });
}
