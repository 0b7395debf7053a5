//! Typed static keys: each [`Key`] is an index into a per-thread slot table.
//!
//! Reads take a fast path that borrows nothing. The first keys to be set (up to
//! `record::MIRRORED_SLOTS`) are read from a thread-local mirror of their value
//! addresses; the others from a view of the record's slot table that the record
//! keeps in thread-local storage while it is not borrowed (`record::slots_view`).
//! Either way the read pins the value with a handle of its own for the length of
//! the caller's closure.

use core::marker::PhantomData;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::keyed::Location;
use crate::record;
use crate::value::{self, Displaced, Shared};

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
        let displaced = record::with_current_or_create(|r| unsafe { r.store_slot(index, value) });
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
            let pinned = unsafe { value::pin::<T>(address) };
            return Some(f(&*pinned));
        }
        let (slots, len) = record::slots_view();
        if index >= len {
            return self.with_slow(index, f);
        }
        // SAFETY: a non-empty view describes the slot table of this thread's live,
        // unborrowed record, and `index` is inside it.
        let address = unsafe { Slot::address_at(slots, index) };
        if address.is_null() {
            return None;
        }
        // SAFETY: slot `index` belongs to this key alone, so its value is a T, and
        // the record's handle keeps it alive until the pin takes its own; the pin
        // is dropped when this call ends.
        let pinned = unsafe { value::pin::<T>(address) };
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
            let address = r.slots.get(index)?;
            // SAFETY: slot `index` belongs to this key alone, so it holds a T, kept
            // alive by the record while the pin takes its own handle; the pin is
            // dropped when this call ends.
            Some(unsafe { value::pin::<T>(address) })
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

/// One typed slot.
pub(crate) struct Slot {
    /// The record's handle to the value; `None` (a null word) when empty. Its
    /// address is the one word the fast path reads.
    shared: Option<Shared>,
    /// The stored value's sequence number.
    seq: u64,
}

impl Slot {
    const EMPTY: Self = Self { shared: None, seq: 0 };

    /// The value address in slot `index` of the table at `slots`; null if empty.
    ///
    /// # Safety
    /// `slots` must point at a live slot table longer than `index` that no one
    /// mutates during the call.
    #[inline]
    unsafe fn address_at(slots: *const Slot, index: usize) -> *const () {
        // SAFETY: the caller guarantees `slots + index` is a live Slot that nothing
        // mutates meanwhile, so a shared reference to its handle is sound.
        let shared = unsafe { &(*slots.add(index)).shared };
        shared.as_ref().map_or(ptr::null(), Shared::address)
    }
}

/// One thread's typed slots.
pub(crate) struct Slots {
    slots: Vec<Slot>,
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

    /// The table's start and length, for the thread-local view the fast path reads.
    /// Valid until the next change to this table.
    #[inline]
    pub(crate) fn view(&self) -> (*const Slot, usize) {
        (self.slots.as_ptr(), self.slots.len())
    }

    /// The address of the value in slot `index`, if any.
    #[inline]
    pub(crate) fn get(&self, index: usize) -> Option<*const ()> {
        Some(self.slots.get(index)?.shared.as_ref()?.address())
    }

    /// Puts `value` with sequence number `seq` in slot `index`: in place, without
    /// allocating, when the slot holds a value nothing borrows; returns what it
    /// displaced.
    ///
    /// # Safety
    /// Slot `index` must only ever hold `T`s.
    pub(crate) unsafe fn store<T: 'static>(
        &mut self,
        index: usize,
        seq: u64,
        value: T,
    ) -> Displaced<T> {
        if index >= self.slots.len() {
            self.slots.resize_with(index + 1, || Slot::EMPTY);
        }
        let slot = &mut self.slots[index];
        slot.seq = seq;
        let Some(shared) = &mut slot.shared else {
            slot.shared = Some(value::share(value));
            self.filled += 1;
            return Displaced::Nothing;
        };
        // SAFETY: the caller guarantees the slot holds a T.
        match unsafe { shared.get_mut_unchecked::<T>() } {
            Some(stored) => Displaced::InPlace(core::mem::replace(stored, value)),
            None => Displaced::Handle(core::mem::replace(shared, value::share(value))),
        }
    }

    /// Empties slot `index`.
    pub(crate) fn take(&mut self, index: usize) -> Option<Shared> {
        let old = self.slots.get_mut(index)?.shared.take()?;
        self.filled -= 1;
        Some(old)
    }

    /// Appends `(seq, slot)` of every value with a sequence number below `bound`.
    pub(crate) fn list_below(&self, bound: u64, out: &mut Vec<(u64, Location)>) {
        for (index, slot) in self.slots.iter().enumerate() {
            if slot.shared.is_some() && slot.seq < bound {
                out.push((slot.seq, Location::Slot(index)));
            }
        }
    }

    /// Empties slot `index` if it holds the value with sequence number `seq`.
    pub(crate) fn take_seq(&mut self, index: usize, seq: u64) -> Option<Shared> {
        match self.slots.get(index) {
            Some(slot) if slot.shared.is_some() && slot.seq == seq => self.take(index),
            _ => None,
        }
    }
}
