//! Typed static keys, the public half of the typed slots: each [`Key`] is an
//! index into a per-thread slot table (`record/slots.rs`).
//!
//! Reads take a fast path that borrows nothing. The first keys to be set (up to
//! `record::MIRRORED_SLOTS`) are read from a thread-local mirror of their value
//! addresses; the others from a view of the record's slot table that the record
//! keeps in thread-local storage while it is not borrowed (`record::viewed_slot`).
//! Either way the read pins the value with a handle of its own for the length of
//! the caller's closure.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::exit::arm;
use crate::record::{self, Displaced};

/// A typed thread-local key, the fast path: `static COUNTER: Key<u64> = Key::new();`.
///
/// Each `Key` takes an index into every thread's slot table the first time a value
/// is stored in it, and keeps it for the life of the process: indices are never
/// reused, so a slot can never be read as the wrong type. Keys are meant to be
/// `static`s; each `Key` ever set costs one slot index. Values in keys belong to the
/// thread's record like keyed values: [`reset`](crate::reset),
/// [`unload`](crate::unload) and thread exit drop them.
pub struct Key<T: 'static> {
    /// The slot index, or [`UNASSIGNED`] until the first `set`.
    index: AtomicUsize,
    _type: PhantomData<fn() -> T>,
}

/// The index of a key that was never set: past every slot table, so a read of it
/// misses the fast path's bounds check and finds nothing.
const UNASSIGNED: usize = usize::MAX;

/// The next free slot index.
static NEXT_INDEX: AtomicUsize = AtomicUsize::new(0);

impl<T: 'static> Key<T> {
    /// A new key with no slot yet.
    pub const fn new() -> Self {
        Self { index: AtomicUsize::new(UNASSIGNED), _type: PhantomData }
    }

    /// The key's slot index, assigned on first use.
    #[inline]
    fn index(&self) -> usize {
        match self.index.load(Ordering::Relaxed) {
            UNASSIGNED => self.assign_index(),
            index => index,
        }
    }

    #[cold]
    fn assign_index(&self) -> usize {
        let fresh = NEXT_INDEX.fetch_add(1, Ordering::Relaxed);
        assert!(fresh < UNASSIGNED - 1, "hijack-tls: key indices exhausted");
        let exchange = Ordering::Relaxed;
        match self.index.compare_exchange(UNASSIGNED, fresh, exchange, exchange) {
            Ok(_) => fresh,
            // Another thread assigned one first; `fresh` stays unused forever.
            Err(stored) => stored,
        }
    }

    /// Stores `value` in this thread's slot and returns the old value.
    ///
    /// Creates the thread's record on first use. If the old value is borrowed right
    /// now by an enclosing [`with`](Self::with) on this thread it cannot be moved out:
    /// it is removed from the slot at once, `None` is returned, and it drops when that
    /// borrow ends.
    pub fn set(&self, value: T) -> Option<T> {
        let index = self.index();
        // SAFETY: slot `index` belongs to this key alone, so it only ever holds a T.
        let displaced = arm::with_current_or_create(|r| unsafe { r.store_slot(index, value) });
        match displaced {
            Displaced::Nothing => None,
            Displaced::InPlace(old) => Some(old),
            // SAFETY: slot `index` belongs to this key alone, so it only ever holds a T.
            Displaced::Handle(old) => unsafe { old.into_inner_unchecked::<T>() },
        }
    }

    /// A clone of this thread's value, or `None` if it has none. Never creates a record.
    #[inline]
    pub fn get(&self) -> Option<T>
    where
        T: Clone,
    {
        self.with(T::clone)
    }

    /// Borrows this thread's value for `f`; `None` if it has none. Never creates a record.
    ///
    /// Every call into this crate is allowed inside `f`. If `f` replaces or removes this
    /// value, the borrow stays valid: the old value drops when `f` returns.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        let index = self.index.load(Ordering::Relaxed);
        if index < record::MIRRORED_SLOTS {
            let address = record::mirrored_slot(index);
            if address.is_null() {
                return None;
            }
            // SAFETY: slot `index` belongs to this key alone, so its value is a T,
            // and the mirror names it only while the record's handle keeps it alive;
            // the pin takes a handle of its own until this call ends.
            let pinned = unsafe { record::pin_value::<T>(address) };
            return Some(f(&*pinned));
        }
        let Some(address) = record::viewed_slot(index) else {
            return self.with_slow(index, f);
        };
        if address.is_null() {
            return None;
        }
        // SAFETY: slot `index` belongs to this key alone, so its value is a T, and
        // the record's handle keeps it alive until the pin takes its own; the pin
        // is dropped when this call ends.
        let pinned = unsafe { record::pin_value::<T>(address) };
        Some(f(&*pinned))
    }

    /// [`with`](Self::with) when the view cannot answer: the thread has no record,
    /// the record is borrowed (a key's `Eq` or a signal handler calling in: the
    /// answer is `None`), or `index` is past the slot table (the key was never set
    /// here, or is unassigned).
    #[cold]
    #[inline(never)]
    fn with_slow<R>(&self, index: usize, f: impl FnOnce(&T) -> R) -> Option<R> {
        let pinned = record::read_current(|r| {
            let address = r.slot_address(index)?;
            // SAFETY: slot `index` belongs to this key alone, so it holds a T, kept
            // alive by the record while the pin takes its own handle; the pin is
            // dropped when this call ends.
            Some(unsafe { record::pin_value::<T>(address) })
        })??;
        Some(f(&*pinned))
    }

    /// Removes this thread's value and returns it. Never creates a record.
    ///
    /// If the value is borrowed right now by an enclosing [`with`](Self::with), it is
    /// removed at once, `None` is returned and it drops when that borrow ends.
    pub fn take(&self) -> Option<T> {
        let index = self.index.load(Ordering::Relaxed);
        let old = record::with_current(|r| r.take_slot(index))??;
        // SAFETY: slot `index` belongs to this key alone, so it only ever holds a T.
        unsafe { old.into_inner_unchecked::<T>() }
    }
}

impl<T: 'static> Default for Key<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: 'static> core::fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let index = Some(self.index.load(Ordering::Relaxed)).filter(|&i| i != UNASSIGNED);
        f.debug_struct("Key").field("index", &index).finish()
    }
}
