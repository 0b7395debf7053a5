//! One thread's typed slot table: the values stored under [`Key`](crate::Key)s,
//! indexed by key index. Its mutators are reachable only from the record
//! (`super`), which mirrors every change before a displaced value can drop.

use core::ptr;

use super::keyed::Location;
use super::value::{self, Displaced, Shared};

/// One typed slot.
pub(super) struct Slot {
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
    pub(super) unsafe fn address_at(slots: *const Slot, index: usize) -> *const () {
        // SAFETY: the caller guarantees `slots + index` is a live Slot that nothing
        // mutates meanwhile, so a shared reference to its handle is sound.
        let shared = unsafe { &(*slots.add(index)).shared };
        shared.as_ref().map_or(ptr::null(), Shared::address)
    }
}

/// One thread's typed slots.
pub(super) struct Slots {
    slots: Vec<Slot>,
    /// How many slots hold a value.
    filled: usize,
}

impl Slots {
    pub(super) const fn new() -> Self {
        Self { slots: Vec::new(), filled: 0 }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// The table's start and length, for the thread-local view the fast path reads.
    /// Valid until the next change to this table.
    #[inline]
    pub(super) fn view(&self) -> (*const Slot, usize) {
        (self.slots.as_ptr(), self.slots.len())
    }

    /// The address of the value in slot `index`, if any.
    #[inline]
    pub(super) fn get(&self, index: usize) -> Option<*const ()> {
        Some(self.slots.get(index)?.shared.as_ref()?.address())
    }

    /// Puts `value` with sequence number `seq` in slot `index`: in place, without
    /// allocating, when the slot holds a value nothing borrows; returns what it
    /// displaced.
    ///
    /// # Safety
    /// Slot `index` must only ever hold `T`s.
    pub(super) unsafe fn store<T: 'static>(
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
    pub(super) fn take(&mut self, index: usize) -> Option<Shared> {
        let old = self.slots.get_mut(index)?.shared.take()?;
        self.filled -= 1;
        Some(old)
    }

    /// Appends `(seq, slot)` of every value with a sequence number below `bound`.
    pub(super) fn list_below(&self, bound: u64, out: &mut Vec<(u64, Location)>) {
        for (index, slot) in self.slots.iter().enumerate() {
            if slot.shared.is_some() && slot.seq < bound {
                out.push((slot.seq, Location::Slot(index)));
            }
        }
    }

    /// Empties slot `index` if it holds the value with sequence number `seq`.
    pub(super) fn take_seq(&mut self, index: usize, seq: u64) -> Option<Shared> {
        match self.slots.get(index) {
            Some(slot) if slot.shared.is_some() && slot.seq == seq => self.take(index),
            _ => None,
        }
    }
}
