//! The per-thread record: ID, values, at-exit handlers and how the exit is armed.
//!
//! The record is a heap allocation reached through one `const`-initialised
//! thread-local with no destructor, so it stays reachable during TLS teardown. It is
//! only ever borrowed for short stretches that run no user code except a key's `Eq`;
//! user code (drops, handlers, `with` closures) always runs with no borrow of the
//! record alive, which is what makes every re-entrant call sound. NOTES.md ("Record
//! layout") has the reasoning.
//!
//! While the record is current and *not* borrowed, the same thread-local holds a
//! read-only view of it (its ID and typed slot table) for the fast paths, which
//! then need no borrow at all: the view is emptied when a borrow starts and rebuilt
//! when it ends, so it never describes a record that someone is changing.
//!
//! The same thread-local also mirrors the value addresses of the current record's
//! first [`MIRRORED_SLOTS`] typed slots, so a read of one of the first keys is one
//! `%fs`-relative load and the value's. The mirror stays valid through borrows: it
//! changes only where a slot's value does (see [`Record::mirror`]).

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering, compiler_fence};

pub(crate) mod arming;
mod keyed;
mod slots;
mod value;

use crate::status::{ExitTrigger, Status};
use arming::Arming;
pub(crate) use keyed::hash_of;
use keyed::{KeyedMap, Location, StoredKey};
use slots::{Slot, Slots};
pub use value::Value;
pub(crate) use value::{Displaced, Pinned, Shared, pin as pin_value};

/// Generations of handlers and values the exit sequence runs before it refuses
/// new ones, and of records it runs after an `unload` in a handler. What exists
/// when the sequence starts is generation 0; what a handler or drop of generation
/// `k` registers is generation `k + 1`; past this bound it is refused (leaked,
/// not run) and counted on stderr.
pub const MAX_ROUNDS: usize = 8;

/// An at-exit handler.
pub(crate) type Handler = Box<dyn FnOnce()>;

/// A registered handler and its generation: 0 if registered before the exit
/// sequence started, `k + 1` if registered while the sequence ran an item (a
/// handler or a drop) of generation `k`.
pub(crate) struct Hook {
    run: Handler,
    generation: u8,
}

/// One thread's state.
pub(crate) struct Record {
    /// Nonzero, never reused.
    id: u64,
    /// Values stored under hashed keys.
    keyed: KeyedMap,
    /// Values stored under typed [`Key`](crate::Key)s, indexed by key index.
    /// Changed only through methods that call [`mirror`](Self::mirror).
    slots: Slots,
    /// At-exit handlers, run last-in first-out.
    handlers: Vec<Hook>,
    /// Sequence number for the next stored value; values drop newest first.
    next_seq: u64,
    /// How the exit sequence is armed.
    arming: Arming,
    /// The exit sequence is running on this record (it owns the freeing).
    exiting: bool,
    /// While `exiting`: the generation of the handler or drop running now. What it
    /// registers is one generation later; past [`MAX_ROUNDS`] it is refused.
    generation: u8,
    /// How many values and handlers were refused (past the generation bound, or
    /// with nothing armed to run them).
    refused: usize,
}

/// A value taken out of the record, with its key; dropped once the record is released.
pub(crate) struct Detached {
    _value: Shared,
    _key: Option<StoredKey>,
}

/// Everything `unload` takes out of a record, to drop after the record is gone.
pub(crate) struct Contents {
    /// The handlers, not to be run.
    pub(crate) handlers: Vec<Hook>,
    /// Newest first.
    pub(crate) values: Vec<Detached>,
}

impl Record {
    /// This record's thread ID: nonzero, never reused.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The sequence number the next stored value gets: every value stored so
    /// far is below it.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// How many values and handlers this record refused.
    pub(crate) fn refused(&self) -> usize {
        self.refused
    }

    /// Whether the return address was hijacked for this record.
    pub(crate) fn is_hijacked(&self) -> bool {
        self.arming.is_hijacked()
    }

    /// Marks the exit sequence as running on this record (from now on it owns
    /// the freeing); returns whether it already was.
    pub(crate) fn begin_exit(&mut self) -> bool {
        core::mem::replace(&mut self.exiting, true)
    }

    /// A pin of the keyed value under `key`, if there is one and it is a `V`.
    #[inline]
    pub(crate) fn pin_keyed<K: Eq + 'static, V: 'static>(
        &self,
        hash: u64,
        key: &K,
    ) -> Option<Pinned<V>> {
        self.keyed.get::<K, V>(hash, key)
    }

    /// Removes the keyed value under `key`; returns its handle and stored key.
    pub(crate) fn remove_keyed<K: Eq + 'static>(
        &mut self,
        hash: u64,
        key: &K,
    ) -> Option<(Shared, StoredKey)> {
        self.keyed.remove(hash, key)
    }

    /// The address of the value in typed slot `index`, if any.
    #[inline]
    pub(crate) fn slot_address(&self, index: usize) -> Option<*const ()> {
        self.slots.get(index)
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// The generation an item registered now belongs to, or `None` if it must be
    /// refused: past [`MAX_ROUNDS`] generations of the exit sequence.
    fn generation_of_new(&self) -> Option<u8> {
        if !self.exiting {
            return Some(0);
        }
        let next = self.generation + 1;
        (usize::from(next) <= MAX_ROUNDS).then_some(next)
    }

    /// Whether new values are refused (see [`generation_of_new`](Self::generation_of_new)).
    fn refuses_values(&self) -> bool {
        self.generation_of_new().is_none()
    }

    /// Stores a keyed value. Returns the new key if an equal one was already
    /// stored, and what the value displaced: both for the caller to drop after the
    /// borrow.
    pub(crate) fn store_keyed<K: Eq + 'static, V: 'static>(
        &mut self,
        hash: u64,
        key: K,
        value: V,
    ) -> (Option<K>, Displaced<V>) {
        if self.refuses_values() {
            self.refuse(value);
            return (Some(key), Displaced::Nothing);
        }
        let seq = self.take_seq();
        self.keyed.store(hash, key, seq, value)
    }

    /// Replaces the keyed value under `key` in place when it is a `V` that nothing
    /// borrows (the common case of `set`, kept small); gives `value` back otherwise
    /// (or if the record refuses new values), for [`store_keyed`](Self::store_keyed).
    #[inline]
    pub(crate) fn replace_keyed<K: Eq + 'static, V: 'static>(
        &mut self,
        hash: u64,
        key: &K,
        value: V,
    ) -> Result<V, V> {
        if self.refuses_values() {
            return Err(value);
        }
        let old = self.keyed.replace(hash, key, self.next_seq, value)?;
        self.next_seq += 1;
        Ok(old)
    }

    /// Stores a value in typed slot `index`; returns what it displaced, for the
    /// caller to drop or hand back after the borrow.
    ///
    /// # Safety
    /// Slot `index` must only ever hold `T`s.
    pub(crate) unsafe fn store_slot<T: 'static>(&mut self, index: usize, value: T) -> Displaced<T> {
        if self.refuses_values() {
            self.refuse(value);
            return Displaced::Nothing;
        }
        let seq = self.take_seq();
        // SAFETY: the caller's guarantee, passed on.
        let displaced = unsafe { self.slots.store(index, seq, value) };
        self.mirror(index);
        displaced
    }

    /// Empties typed slot `index`; returns its value's handle.
    pub(crate) fn take_slot(&mut self, index: usize) -> Option<Shared> {
        let old = self.slots.take(index);
        self.mirror(index);
        old
    }

    /// Copies slot `index`'s value address to the thread-local mirror if this is the
    /// current record and the slot is mirrored. Called after every change to a slot,
    /// before a displaced value can drop, so the mirror never names a freed value.
    fn mirror(&self, index: usize) {
        if ptr::eq(self, current_ptr()) {
            mirror_slot(index, self.slots.get(index).unwrap_or(ptr::null()));
        }
    }

    /// Adds an at-exit handler, or refuses it: past the generation bound, or if
    /// nothing is armed to run the exit sequence (reported at once, then).
    pub(crate) fn push_handler(&mut self, handler: Handler) {
        if !self.arming.runs_exit_sequence() {
            self.refuse(handler);
            if self.refused == 1 {
                let status = self.arming.status();
                crate::report::line(format_args!(
                    "thread {}: at_exit refused: {status}; this and later ones are leaked",
                    self.id
                ));
            }
            return;
        }
        match self.generation_of_new() {
            Some(generation) => self.handlers.push(Hook { run: handler, generation }),
            None => self.refuse(handler),
        }
    }

    /// Takes the newest handler out, for the exit sequence to run; the record's
    /// generation becomes the handler's while it runs.
    pub(crate) fn pop_handler(&mut self) -> Option<Handler> {
        let hook = self.handlers.pop()?;
        self.generation = hook.generation;
        Some(hook.run)
    }

    /// Sets the generation of the exit sequence's drop round: what the drops
    /// register belongs to the next one.
    pub(crate) fn set_drop_generation(&mut self, generation: u8) {
        self.generation = generation;
    }

    /// A refused item is leaked on purpose (dropping it could register yet more)
    /// and counted for the report.
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
                self.mirror(index);
                Some(Detached { _value: value, _key: None })
            }
        }
    }

    /// Takes out every handler and value.
    fn take_contents(&mut self) -> Contents {
        let handlers = core::mem::take(&mut self.handlers);
        let list = self.values_below(u64::MAX);
        let values = list.into_iter().filter_map(|(seq, at)| self.detach(seq, at)).collect();
        Contents { handlers, values }
    }
}

/// This thread's state. `const`-initialised with no destructor: every field is
/// readable at any time, TLS teardown included, at the cost of one `%fs`-relative
/// load each.
struct Local {
    /// This thread's record, or null.
    current: Cell<*mut Record>,
    /// Set while the record is borrowed, to catch re-entry from a key's `Eq`.
    borrowed: Cell<bool>,
    /// The view: the current record's typed slot table. `slots_len` is 0 (no view)
    /// while there is no record or it is borrowed.
    slots: Cell<*const Slot>,
    /// Length of the table at `slots`.
    slots_len: Cell<usize>,
    /// The current record's ID, 0 if there is none. Unlike the slot view, kept
    /// while the record is borrowed: an ID never changes, and a signal handler
    /// interrupting a borrow reads it from here.
    id: Cell<u64>,
    /// What [`status()`](fn@crate::status) reports, published whenever it changes so a
    /// read needs no borrow (and works in a signal handler interrupting one).
    status: PublishedStatus,
    /// What started this thread's first exit sequence, once one has: with no
    /// record, the thread then reports [`Status::Exited`] rather than `Inactive`.
    exit_trigger: Cell<Option<ExitTrigger>>,
    /// The value addresses in the current record's first typed slots (null: empty,
    /// or no record). Unlike the view, kept while the record is borrowed.
    mirror: [Cell<*const ()>; MIRRORED_SLOTS],
}

/// A [`Status`] written by this thread and read by it at any moment, a signal
/// handler that interrupts the write included: two copies and the index of the
/// complete one. A write fills the other copy, then flips the index (one byte,
/// which a signal cannot tear), so a read never sees half of each.
struct PublishedStatus {
    copies: [Cell<Status>; 2],
    complete: Cell<u8>,
}

impl PublishedStatus {
    const fn new() -> Self {
        Self {
            copies: [Cell::new(Status::Inactive), Cell::new(Status::Inactive)],
            complete: Cell::new(0),
        }
    }

    fn get(&self) -> Status {
        let index = usize::from(self.complete.get());
        // The copy is read after the index: a handler sees the one it names whole.
        compiler_fence(Ordering::Acquire);
        self.copies[index].get()
    }

    fn set(&self, status: Status) {
        let other = 1 - self.complete.get();
        self.copies[usize::from(other)].set(status);
        // The copy is complete before the index names it.
        compiler_fence(Ordering::Release);
        self.complete.set(other);
    }
}

/// Typed slots whose value addresses [`Local`] mirrors: keys with a lower index
/// are read without the view. 16 words of static TLS per thread.
pub(crate) const MIRRORED_SLOTS: usize = 16;

thread_local! {
    /// This thread's [`Local`] state.
    static LOCAL: Local = const {
        Local {
            current: Cell::new(ptr::null_mut()),
            borrowed: Cell::new(false),
            slots: Cell::new(ptr::null()),
            slots_len: Cell::new(0),
            id: Cell::new(0),
            status: PublishedStatus::new(),
            exit_trigger: Cell::new(None),
            mirror: [const { Cell::new(ptr::null()) }; MIRRORED_SLOTS],
        }
    };
}

impl Local {
    /// Rebuilds the slot view from the current record, or empties it if the
    /// record is absent or borrowed.
    #[inline]
    fn refresh_view(&self) {
        let record = self.current.get();
        let (slots, slots_len) = if record.is_null() || self.borrowed.get() {
            (ptr::null(), 0)
        } else {
            // SAFETY: a non-null CURRENT is this thread's live record, and it is not
            // borrowed, so no mutable reference to it exists while this one lives.
            unsafe { &*record }.slots.view()
        };
        self.slots.set(slots);
        self.slots_len.set(slots_len);
    }
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
    LOCAL.with(|local| local.current.get())
}

/// Replaces the current record pointer. Not called while a record is borrowed.
pub(crate) fn set_current(record: *mut Record) {
    LOCAL.with(|local| {
        local.current.set(record);
        // SAFETY: a non-null `record` is this thread's live record, not borrowed
        // (the caller's guarantee).
        local.id.set(if record.is_null() { 0 } else { unsafe { (*record).id } });
        for (index, cell) in local.mirror.iter().enumerate() {
            let address = if record.is_null() {
                ptr::null()
            } else {
                // SAFETY: `record` is this thread's live record and no borrow of it
                // is active (the caller's guarantee), so a shared reference is sound.
                unsafe { &*record }.slots.get(index).unwrap_or(ptr::null())
            };
            cell.set(address);
        }
        local.refresh_view();
    });
}

/// The value address in the current record's typed slot `index`, or null if the
/// slot is empty or there is no record. Valid until the next change to that slot.
///
/// # Panics
/// If `index` is not below [`MIRRORED_SLOTS`].
#[inline]
pub(crate) fn mirrored_slot(index: usize) -> *const () {
    LOCAL.with(|local| local.mirror[index].get())
}

/// Sets the mirror of the current record's slot `index`, if it is mirrored.
fn mirror_slot(index: usize, address: *const ()) {
    LOCAL.with(|local| {
        if let Some(cell) = local.mirror.get(index) {
            cell.set(address);
        }
    });
}

/// The value address in the current record's typed slot `index` as the view
/// has it (null: the slot is empty), or `None` if the view cannot answer: no
/// record, the record is borrowed, or `index` is past the table. Valid until the
/// thread next borrows the record.
#[inline]
pub(crate) fn viewed_slot(index: usize) -> Option<*const ()> {
    let (slots, len) = LOCAL.with(|local| (local.slots.get(), local.slots_len.get()));
    if index >= len {
        return None;
    }
    // SAFETY: a non-empty view describes the slot table of this thread's live,
    // unborrowed record, and `index` is inside it.
    Some(unsafe { Slot::address_at(slots, index) })
}

/// The current record's ID, or 0 if the thread has none. Needs no borrow.
#[inline]
pub(crate) fn current_id() -> u64 {
    LOCAL.with(|local| local.id.get())
}

/// The status published for [`status()`](fn@crate::status). Needs no borrow.
pub(crate) fn published_status() -> Status {
    LOCAL.with(|local| local.status.get())
}

/// Publishes what [`status()`](fn@crate::status) reports from now on.
pub(crate) fn publish_status(status: Status) {
    LOCAL.with(|local| local.status.set(status));
}

/// Publishes that an exit sequence started by `trigger` runs on this thread.
/// The first trigger is what the thread reports whenever it has no record.
pub(crate) fn publish_exit(trigger: ExitTrigger) {
    LOCAL.with(|local| {
        local.status.set(Status::Exited { trigger });
        if local.exit_trigger.get().is_none() {
            local.exit_trigger.set(Some(trigger));
        }
    });
}

/// Publishes that the thread has no record (after `unload`): `Inactive`, or
/// `Exited` once an exit sequence has started on it.
pub(crate) fn publish_no_record() {
    LOCAL.with(|local| {
        let status = match local.exit_trigger.get() {
            Some(trigger) => Status::Exited { trigger },
            None => Status::Inactive,
        };
        local.status.set(status);
    });
}

/// Whether this thread's record is borrowed right now: only a signal handler
/// interrupting the crate, or a key's `Eq` calling back into it, sees `true`.
#[inline]
pub(crate) fn is_borrowed() -> bool {
    LOCAL.with(|local| local.borrowed.get())
}

/// Forgets a record whose borrow will never end: the thread is leaving from
/// inside it (an asynchronous cancel, or `exit`/`pthread_exit` called from a
/// key's `Eq`), so the record may be half-changed. It is leaked, not run, and the
/// thread starts afresh (a later first use in its teardown gets a new record).
/// Returns the abandoned record's ID.
pub(crate) fn abandon_borrowed() -> u64 {
    let id = current_id();
    LOCAL.with(|local| local.borrowed.set(false));
    set_current(ptr::null_mut());
    publish_no_record();
    id
}

/// Borrows the record at `record` for `f`, which must not run user code other than a
/// key's `Eq`/`Hash`.
///
/// # Panics
/// If called while the record is already borrowed, which only a key's `Eq`, or a
/// signal handler interrupting the crate, calling in to change the record can
/// cause (reads check [`is_borrowed`] first and answer without a borrow).
///
/// # Safety
/// `record` must be a live record of this thread (from [`current_ptr`] or held by the
/// running exit sequence).
pub(crate) unsafe fn borrow<R>(record: *mut Record, f: impl FnOnce(&mut Record) -> R) -> R {
    struct Release;
    impl Drop for Release {
        #[inline]
        fn drop(&mut self) {
            LOCAL.with(|local| {
                local.borrowed.set(false);
                local.refresh_view();
            });
        }
    }
    LOCAL.with(|local| {
        assert!(
            !local.borrowed.replace(true),
            "hijack-tls was re-entered while it held this thread's record, from a key's \
             Eq impl or a signal handler; only reads are supported there"
        );
        // No fast path may read the slot table while `f` may change it.
        local.slots_len.set(0);
    });
    let _release = Release;
    // SAFETY: the caller guarantees `record` is live and owned by this thread; the
    // `borrowed` flag guarantees no other reference to it exists while `f` runs, and
    // the emptied view that no fast path reads it either.
    f(unsafe { &mut *record })
}

/// Runs `f` on this thread's record for a read: `None` if it has none, or if it
/// is borrowed right now (a signal handler interrupting the crate), where a read
/// answers "absent" rather than panic.
#[inline]
pub(crate) fn read_current<R>(f: impl FnOnce(&mut Record) -> R) -> Option<R> {
    if is_borrowed() {
        return None;
    }
    with_current(f)
}

/// Runs `f` on this thread's record, or returns `None` if it has none.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&mut Record) -> R) -> Option<R> {
    let record = current_ptr();
    if record.is_null() {
        return None;
    }
    // SAFETY: a non-null CURRENT always points at this thread's live record.
    Some(unsafe { borrow(record, f) })
}

/// Runs `f` on this thread's record, or, if it has none, `first_use(f)` (from
/// `exit::arm`, which creates and arms one). Always inlined: the hot path keeps
/// the frames the stack budget was measured on (a debug build's
/// `PTHREAD_STACK_MIN` thread has no room for more, `reliability_stacks`).
#[inline(always)]
pub(crate) fn with_current_or<R, F: FnOnce(&mut Record) -> R>(
    f: F,
    first_use: impl FnOnce(F) -> R,
) -> R {
    let record = current_ptr();
    if record.is_null() {
        return first_use(f);
    }
    // SAFETY: `record` is this thread's live record.
    unsafe { borrow(record, f) }
}

/// A record just created and installed as this thread's current one, to be
/// armed and then borrowed once; no user code runs in between.
pub(crate) struct Created(*mut Record);

/// Creates and installs a new, not yet armed record for this thread. The stack
/// walk and the rest of the arming are the caller's (`exit::arm`): a storage
/// call never performs the mechanism itself. Always inlined, as are the
/// [`Created`] methods: the first use's frames stay those the stack budget was
/// measured on (`exit/arm.rs`'s `create` and `create_and_borrow`).
#[inline(always)]
pub(crate) fn create() -> Created {
    let record = Box::into_raw(Box::new(Record {
        id: next_id(),
        keyed: KeyedMap::new(),
        slots: Slots::new(),
        handlers: Vec::new(),
        next_seq: 0,
        arming: Arming::None,
        exiting: false,
        generation: 0,
        refused: 0,
    }));
    set_current(record);
    Created(record)
}

impl Created {
    /// Publishes the status of `arming` and stores it in the record.
    #[inline(always)]
    pub(crate) fn set_arming(&self, arming: Arming) {
        publish_status(arming.status());
        // SAFETY: just created and installed (`create`); no user code ran since.
        unsafe { borrow(self.0, |r| r.arming = arming) };
    }

    /// Runs `f` on the record.
    #[inline(always)]
    pub(crate) fn borrow<R>(self, f: impl FnOnce(&mut Record) -> R) -> R {
        // SAFETY: just created and installed as CURRENT; no user code ran since.
        unsafe { borrow(self.0, f) }
    }
}

/// `unload`'s part on the record: detaches this thread's record (no longer
/// current, `Inactive` or `Exited` published), disarms its exit hook, frees it
/// unless an exit sequence owns it, and returns its contents for the caller to
/// drop with no record left. `None` if the thread has no record.
pub(crate) fn unload_current() -> Option<Contents> {
    let record = current_ptr();
    if record.is_null() {
        return None;
    }
    // SAFETY: a non-null CURRENT is this thread's live record.
    let (contents, arming, exiting) = unsafe {
        borrow(record, |r| {
            let arming = core::mem::replace(&mut r.arming, Arming::None);
            (r.take_contents(), arming, r.exiting)
        })
    };
    set_current(ptr::null_mut());
    publish_no_record();
    arming.disarm();
    if !exiting {
        // SAFETY: no longer CURRENT, emptied above, and no exit sequence owns it.
        unsafe { free(record) };
    }
    Some(contents)
}

/// Frees a record that is no longer current and whose contents were taken out.
///
/// # Safety
/// `record` came from [`create`], is not CURRENT, and is not used again.
pub(crate) unsafe fn free(record: *mut Record) {
    // SAFETY: the caller guarantees unique ownership of a pointer from Box::into_raw.
    drop(unsafe { Box::from_raw(record) });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_fits_the_per_thread_budget() {
        // The budget is 256 heap bytes per thread with no values: the record, malloc's
        // chunk header (16) and glibc's entry for the fallback's TLS destructor (48).
        let size = size_of::<Record>();
        println!("Record: {size} bytes");
        assert!(size + 16 + 48 <= 256, "Record grew to {size} bytes");
    }

    #[test]
    fn local_state_sizes() {
        // Static TLS per thread (NOTES, "What status() reports"): printed, and
        // bounded so a growth is a decision.
        println!("Local: {} bytes, Status: {} bytes", size_of::<Local>(), size_of::<Status>());
        assert!(size_of::<Local>() <= 256, "Local grew to {} bytes", size_of::<Local>());
    }
}
