//! Typed static keys: each [`Key`] is an index into a per-thread slot table.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::keyed::Location;
use crate::record;
use crate::value::{self, Shared};

/// A typed thread-local key, the fast path: `static COUNTER: Key<u64> = Key::new();`.
///
/// Each `Key` takes an index into every thread's slot table the first time it is
/// used, and keeps it for the life of the process: indices are never reused, so a
/// slot can never be read as the wrong type. Keys are meant to be `static`s; each
/// `Key` ever used costs one slot index. Values in keys belong to the thread's
/// record like keyed values: [`reset`](crate::reset), [`unload`](crate::unload) and
/// thread exit drop them.
pub struct Key<T: 'static> {
    /// `0` until first use, then the slot index plus one.
    index: AtomicUsize,
    _type: PhantomData<fn() -> T>,
}

/// The next free slot index.
static NEXT_INDEX: AtomicUsize = AtomicUsize::new(0);

impl<T: 'static> Key<T> {
    /// A new key with no slot yet.
    pub const fn new() -> Self {
        Self { index: AtomicUsize::new(0), _type: PhantomData }
    }

    /// The key's slot index, assigned on first use.
    #[inline]
    fn index(&self) -> usize {
        match self.index.load(Ordering::Relaxed) {
            0 => self.assign_index(),
            stored => stored - 1,
        }
    }

    #[cold]
    fn assign_index(&self) -> usize {
        let fresh = NEXT_INDEX.fetch_add(1, Ordering::Relaxed);
        assert!(fresh < usize::MAX - 1, "hijack-tls: key indices exhausted");
        match self.index.compare_exchange(0, fresh + 1, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => fresh,
            // Another thread assigned one first; `fresh` stays unused forever.
            Err(stored) => stored - 1,
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
        let shared = value::share(value);
        let old = record::with_current_or_create(|r| r.store_slot(index, shared));
        // SAFETY: slot `index` belongs to this key alone, so it only ever holds a T.
        old.and_then(|old| unsafe { value::into_inner_unchecked::<T>(old) })
    }

    /// A clone of this thread's value, or `None` if it has none. Never creates a record.
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
        let index = self.index();
        let shared = record::with_current(|r| r.slots.get(index))??;
        // SAFETY: slot `index` belongs to this key alone, so it only ever holds a T.
        Some(unsafe { value::with_unchecked(shared, f) })
    }

    /// Removes this thread's value and returns it. Never creates a record.
    ///
    /// If the value is borrowed right now by an enclosing [`with`](Self::with), it is
    /// removed at once, `None` is returned and it drops when that borrow ends.
    pub fn take(&self) -> Option<T> {
        let index = self.index();
        let old = record::with_current(|r| r.slots.take(index))??;
        // SAFETY: slot `index` belongs to this key alone, so it only ever holds a T.
        unsafe { value::into_inner_unchecked::<T>(old) }
    }
}

impl<T: 'static> Default for Key<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: 'static> core::fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let index = self.index.load(Ordering::Relaxed).checked_sub(1);
        f.debug_struct("Key").field("index", &index).finish()
    }
}

/// One thread's typed slots.
pub(crate) struct Slots {
    slots: Vec<Option<(u64, Shared)>>,
    /// How many slots hold a value.
    filled: usize,
}

impl Slots {
    pub(crate) const fn new() -> Self {
        Self { slots: Vec::new(), filled: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// A new reference to the value in slot `index`.
    #[inline]
    pub(crate) fn get(&self, index: usize) -> Option<Shared> {
        match self.slots.get(index) {
            Some(Some((_, shared))) => Some(shared.clone()),
            _ => None,
        }
    }

    /// Puts `value` with sequence number `seq` in slot `index`; returns the old value.
    pub(crate) fn put(&mut self, index: usize, seq: u64, value: Shared) -> Option<Shared> {
        if index >= self.slots.len() {
            self.slots.resize_with(index + 1, || None);
        }
        let old = self.slots[index].replace((seq, value));
        if old.is_none() {
            self.filled += 1;
        }
        old.map(|(_, shared)| shared)
    }

    /// Empties slot `index`.
    pub(crate) fn take(&mut self, index: usize) -> Option<Shared> {
        let old = self.slots.get_mut(index)?.take();
        if old.is_some() {
            self.filled -= 1;
        }
        old.map(|(_, shared)| shared)
    }

    /// Appends `(seq, slot)` of every value with a sequence number below `bound`.
    pub(crate) fn list_below(&self, bound: u64, out: &mut Vec<(u64, Location)>) {
        for (index, slot) in self.slots.iter().enumerate() {
            if let Some((seq, _)) = slot
                && *seq < bound
            {
                out.push((*seq, Location::Slot(index)));
            }
        }
    }

    /// Empties slot `index` if it holds the value with sequence number `seq`.
    pub(crate) fn take_seq(&mut self, index: usize, seq: u64) -> Option<Shared> {
        match self.slots.get(index) {
            Some(Some((stored, _))) if *stored == seq => self.take(index),
            _ => None,
        }
    }
}
