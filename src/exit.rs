//! The exit sequence, shared by the trampoline and the fallback destructors.
//!
//! 1. At-exit handlers run last-in first-out while every value is readable; a
//!    handler registered by a handler runs too.
//! 2. Values drop newest first, one at a time, so a `Drop` can still read older ones.
//! 3. Whatever steps 1-2 added is processed in further rounds, at most
//!    [`MAX_ROUNDS`]; then the record is closed: one last round runs what is
//!    pending, anything registered after that is refused (leaked, not run) and
//!    counted on stderr.
//! 4. The record is freed; its ID is never handed out again. A record created
//!    meanwhile (after an `unload`) gets its own sequence right after, up to
//!    [`MAX_ROUNDS`] generations.
//!
//! Panics in handlers and drops are caught; the rest still run; one line on
//! stderr reports them.

use core::any::Any;
use std::panic::{self, AssertUnwindSafe};

use crate::record::{self, Record};
use crate::report;

/// Rounds of handlers and drops before the record stops accepting new ones.
pub const MAX_ROUNDS: usize = 8;

/// Which record a value-dropping loop works on.
#[derive(Clone, Copy)]
pub(crate) enum Target {
    /// The thread's current record, as long as it is the one with this ID
    /// (a `Drop` may `unload` it or replace it with a fresh one).
    Current { id: u64 },
    /// A record whose exit sequence is running: `unload` does not free it.
    Exiting(*mut Record),
}

impl Target {
    /// Borrows the target record for `f`, or `None` if it is gone.
    fn borrow<R>(self, f: impl FnOnce(&mut Record) -> R) -> Option<R> {
        match self {
            Self::Current { id } => record::with_current(|r| (r.id == id).then(|| f(r)))?,
            // SAFETY: an exiting record is freed only by the exit sequence that owns
            // this Target, after it stops using it.
            Self::Exiting(record) => Some(unsafe { record::borrow(record, f) }),
        }
    }
}

/// Drops the target's values stored before `bound`, newest first, each outside any
/// borrow of the record. Every panic payload is passed to `on_panic`.
pub(crate) fn drop_values(
    target: Target,
    bound: u64,
    on_panic: &mut dyn FnMut(Box<dyn Any + Send>),
) {
    let Some(list) = target.borrow(|r| r.values_below(bound)) else { return };
    for (seq, location) in list {
        // `None` from borrow: the record is gone, nothing more to drop here.
        let Some(detached) = target.borrow(|r| r.detach(seq, location)) else { return };
        if let Some(detached) = detached {
            guarded(|| drop(detached), on_panic);
        }
    }
}

/// Runs `f`, handing a panic's payload to `on_panic`.
pub(crate) fn guarded(f: impl FnOnce(), on_panic: &mut dyn FnMut(Box<dyn Any + Send>)) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(f)) {
        on_panic(payload);
    }
}

/// Runs this thread's exit sequence, if it has a record whose sequence is not
/// already running; then that of any record created meanwhile (a handler or drop
/// that called `unload` and stored again), up to [`MAX_ROUNDS`] generations, while
/// the thread's other thread-locals are still as alive as they were for the first.
/// Never unwinds.
pub(crate) fn run() {
    for _generation in 0..=MAX_ROUNDS {
        let record = record::current_ptr();
        if record.is_null() || !run_record(record) {
            return;
        }
    }
    if !record::current_ptr().is_null() {
        report::line(format_args!(
            "exit sequence: records kept being re-created past {MAX_ROUNDS} generations; \
             the newest is left to its TLS destructor"
        ));
    }
}

/// Runs the exit sequence of `record`, this thread's current record, and frees it.
/// Returns `false` if its sequence was already running (a nested call).
fn run_record(record: *mut Record) -> bool {
    // SAFETY: the caller passes this thread's live CURRENT record.
    let (id, already) =
        unsafe { record::borrow(record, |r| (r.id, core::mem::replace(&mut r.exiting, true))) };
    if already {
        return false;
    }
    let target = Target::Exiting(record);
    let mut panics = PanicTally::default();
    let mut on_panic = |payload| panics.add(payload);
    for round in 1.. {
        if round > MAX_ROUNDS {
            target.borrow(|r| r.closed = true);
        }
        while let Some(Some(handler)) = target.borrow(|r| r.handlers.pop()) {
            guarded(handler, &mut on_panic);
        }
        let bound = target.borrow(|r| r.next_seq).unwrap_or(0);
        drop_values(target, bound, &mut on_panic);
        let more = target.borrow(|r| r.has_work()).unwrap_or(false);
        if !more || round > MAX_ROUNDS {
            break;
        }
    }
    let refused = target.borrow(|r| r.refused).unwrap_or(0);
    if record::current_ptr() == record {
        record::set_current(core::ptr::null_mut());
    }
    // SAFETY: the record is no longer CURRENT, this sequence owns it (`exiting`),
    // and it is empty: handlers were popped, values detached, and it is closed or
    // nothing was left.
    unsafe { record::free(record) };
    if refused > 0 {
        report::line(format_args!(
            "thread {id}: exit sequence still busy after {MAX_ROUNDS} rounds; \
             {refused} value(s)/handler(s) registered after that were leaked, not run"
        ));
    }
    panics.report(id);
    true
}

/// Counts caught panics and keeps the first message.
#[derive(Default)]
pub(crate) struct PanicTally {
    count: usize,
    first: Option<String>,
}

impl PanicTally {
    pub(crate) fn add(&mut self, payload: Box<dyn Any + Send>) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(report::panic_message(&*payload));
        }
        report::drop_payload(payload);
    }

    fn report(&self, id: u64) {
        if let Some(first) = &self.first {
            let count = self.count;
            report::line(format_args!(
                "thread {id}: {count} panic(s) caught in at-exit handlers or value drops \
                 (the rest still ran); first: {first}"
            ));
        }
    }
}
