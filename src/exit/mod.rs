//! The exit sequence, shared by the trampoline, the forced-unwind buffer and the
//! fallback destructors.
//!
//! 1. At-exit handlers run last-in first-out while every value is readable; a
//!    handler registered by a handler runs too, right after it.
//! 2. Values drop newest first, one at a time, so a `Drop` can still read older ones.
//! 3. Whatever steps 1-2 added is processed in further rounds. Everything has a
//!    *generation*: what existed before the sequence started is generation 0;
//!    what a handler or drop of generation `k` registers is generation `k + 1`
//!    (the drops of round `r` count as generation `r`). Past [`MAX_ROUNDS`] new
//!    handlers and values are refused (leaked, not run) and counted on stderr,
//!    so a hook that registers itself, or two copies of itself, ends.
//! 4. The record is freed; its ID is never handed out again. A record created
//!    meanwhile (after an `unload`) gets its own sequence right after, up to
//!    [`MAX_ROUNDS`] generations of records.
//!
//! The sequence runs with cancellation disabled, and each handler and drop under
//! a glibc cancel buffer that catches a forced unwind started inside it
//! (`src/exit/cancel/`). Panics in handlers and drops are caught; the rest still run;
//! one line on stderr reports them.

use core::any::Any;
use core::sync::atomic::{AtomicUsize, Ordering};
use std::panic::{self, AssertUnwindSafe};

pub(crate) mod arm;
pub(crate) mod cancel;
#[cfg(hijack_supported)]
mod config;
pub(crate) mod fallback;
mod first_panic;
#[cfg(hijack_supported)]
mod forced_unwind;
#[cfg(hijack_supported)]
pub(crate) mod hijack;
mod main_thread;
#[cfg(hijack_supported)]
mod pin;

pub(crate) use first_panic::FirstPanic;

use crate::record::{self, MAX_ROUNDS, Record};
use crate::report;
use crate::status::{Destructor, ExitTrigger};

/// Hijacked threads whose exit sequence the safety net had to start, but for the
/// main thread's `exit()`.
pub(crate) static MISSED_HIJACKS: AtomicUsize = AtomicUsize::new(0);

/// Which record a value-dropping loop works on.
#[derive(Clone, Copy)]
pub(crate) enum RecordRef {
    /// The thread's current record, as long as it is the one with this ID
    /// (a `Drop` may `unload` it or replace it with a fresh one).
    Current { id: u64 },
    /// A record whose exit sequence is running: `unload` does not free it.
    Exiting(*mut Record),
}

impl RecordRef {
    /// Borrows the target record for `f`, or `None` if it is gone.
    fn borrow<R>(self, f: impl FnOnce(&mut Record) -> R) -> Option<R> {
        match self {
            Self::Current { id } => record::with_current(|r| (r.id() == id).then(|| f(r)))?,
            // SAFETY: an exiting record is freed only by the exit sequence that owns
            // this RecordRef, after it stops using it.
            Self::Exiting(record) => Some(unsafe { record::borrow(record, f) }),
        }
    }
}

/// What happened to the user code one guarded call ran.
pub(crate) trait Outcome {
    /// `f` panicked with `payload`.
    fn panicked(&mut self, payload: Box<dyn Any + Send>);
    /// A forced unwind (`pthread_exit`, a cancellation) ended `f` early.
    fn forced_unwind(&mut self, caught: cancel::CaughtUnwind);
    /// Runs after every guarded call, however it ended.
    fn after_each(&mut self) {}
}

/// Drops the target's values stored before `bound`, newest first, each outside any
/// borrow of the record. Every panic payload is passed to `outcome`.
pub(crate) fn drop_values(target: RecordRef, bound: u64, outcome: &mut dyn Outcome) {
    let Some(list) = target.borrow(|r| r.values_below(bound)) else { return };
    for (seq, location) in list {
        // `None` from borrow: the record is gone, nothing more to drop here.
        let Some(detached) = target.borrow(|r| r.detach(seq, location)) else { return };
        if let Some(detached) = detached {
            guarded(|| drop(detached), outcome);
        }
    }
}

/// Runs `f`, telling `outcome` how it ended if not by returning.
pub(crate) fn guarded(f: impl FnOnce(), outcome: &mut dyn Outcome) {
    let mut f = Some(f);
    let mut run = || {
        if let Some(f) = f.take() {
            f();
        }
    };
    // Panics are caught outside the cancel buffer: a forced unwind must meet the
    // buffer before any `catch_unwind`, which would swallow it (glibc aborts).
    match panic::catch_unwind(AssertUnwindSafe(|| cancel::catch_forced_unwind(&mut run))) {
        Ok(None) => {}
        Ok(Some(caught)) => outcome.forced_unwind(caught),
        Err(payload) => outcome.panicked(payload),
    }
    outcome.after_each();
}

/// Runs this thread's exit sequence, started by `trigger`, if it has a record
/// whose sequence is not already running; then that of any record created
/// meanwhile (a handler or drop that called `unload` and stored again), up to
/// [`MAX_ROUNDS`] generations, while the thread's other thread-locals are still
/// as alive as they were for the first. Never unwinds.
pub(crate) fn run(trigger: ExitTrigger) {
    if record::current_ptr().is_null() {
        return;
    }
    if record::is_borrowed() {
        // No sequence can be running here: every trigger comes after the frames
        // that borrow the record, so this borrow will never end.
        let id = record::abandon_borrowed();
        report::line(format_args!(
            "thread {id}: left while the crate was changing its record (an asynchronous \
             cancel, or exit/pthread_exit inside a key's Eq); the record was leaked and its \
             exit sequence not run"
        ));
        return;
    }
    let no_cancel = cancel::Hold::new();
    let caught = run_generations(trigger);
    drop(no_cancel);
    // Started by glibc's forced unwind, the sequence may run at its first step
    // (the main thread, a `dlopen`ed copy), and glibc's unwind goes on after it.
    // A hook's own `pthread_exit` reused the thread's one unwind state
    // (`self->exc`), whose stop argument now names the hook's dead cancel buffer:
    // returning would resume from it. So the thread's exit goes on from here
    // instead, towards the buffer the hook's unwind would have reached next.
    if trigger == ExitTrigger::ForcedUnwind
        && let Some(caught) = caught
    {
        // SAFETY: every frame between here and the thread's start is glibc's
        // unwinder (C with unwind tables), `forced_unwind::on_forced_unwind`
        // ("C-unwind") and the frames the outer unwind was already unwinding.
        unsafe { caught.resume() }
    }
}

/// The sequences of the current record and of records re-created during it, up
/// to [`MAX_ROUNDS`] generations; returns the first forced unwind a handler or
/// drop ended with, if any.
fn run_generations(trigger: ExitTrigger) -> Option<cancel::CaughtUnwind> {
    let mut caught = None;
    for _generation in 0..=MAX_ROUNDS {
        let record = record::current_ptr();
        if record.is_null() || !run_record(record, trigger, &mut caught) {
            return caught;
        }
    }
    if !record::current_ptr().is_null() {
        report::line(format_args!(
            "exit sequence: records kept being re-created past {MAX_ROUNDS} generations; \
             the newest is left to its TLS destructor"
        ));
    }
    caught
}

/// Runs the exit sequence of `record`, this thread's current record, and frees it.
/// Returns `false` if its sequence was already running (a nested call).
fn run_record(
    record: *mut Record,
    trigger: ExitTrigger,
    caught: &mut Option<cancel::CaughtUnwind>,
) -> bool {
    // SAFETY: the caller passes this thread's live CURRENT record.
    let (id, already, hijacked) =
        unsafe { record::borrow(record, |r| (r.id(), r.begin_exit(), r.is_hijacked())) };
    if already {
        return false;
    }
    let trigger = match trigger {
        ExitTrigger::Destructor { destructor, .. } => {
            ExitTrigger::Destructor { destructor, hijack_missed: hijacked }
        }
        other => other,
    };
    record::publish_exit(trigger);
    if let ExitTrigger::Destructor { destructor, hijack_missed: true } = trigger {
        report_missed_hijack(id, destructor);
    }
    let target = RecordRef::Exiting(record);
    let mut outcome = SequenceOutcome::default();
    for round in 0..=MAX_ROUNDS {
        while let Some(Some(handler)) = target.borrow(Record::pop_handler) {
            guarded(handler, &mut outcome);
        }
        let bound = target.borrow(|r| {
            r.set_drop_generation(round as u8);
            r.next_seq()
        });
        drop_values(target, bound.unwrap_or(0), &mut outcome);
        if !target.borrow(|r| r.has_work()).unwrap_or(false) {
            break;
        }
    }
    // Round MAX_ROUNDS ran at the last generation, which registers nothing: any
    // work left was refused, so the record is empty.
    let refused = target.borrow(|r| r.refused()).unwrap_or(0);
    if record::current_ptr() == record {
        record::set_current(core::ptr::null_mut());
    }
    // SAFETY: the record is no longer CURRENT, this sequence owns it (`exiting`),
    // and it is empty: handlers were popped, values detached, and the last round
    // accepted nothing new.
    unsafe { record::free(record) };
    if refused > 0 {
        report::line(format_args!(
            "thread {id}: exit sequence refused {refused} value(s)/handler(s) registered \
             past {MAX_ROUNDS} generations of handlers and drops registering more; they \
             were leaked, not run"
        ));
    }
    outcome.report(id);
    if caught.is_none() {
        *caught = outcome.caught;
    }
    true
}

/// Counts and reports a hijacked thread whose trampoline never ran. The main
/// thread's `exit()` (its TLS destructors run inside `exit()`, before `main`
/// returned to the trampoline) is the expected case and stays quiet.
fn report_missed_hijack(id: u64, destructor: Destructor) {
    if destructor == Destructor::ThreadLocal && main_thread::is_main_thread() {
        return;
    }
    MISSED_HIJACKS.fetch_add(1, Ordering::Relaxed);
    report::line(format_args!(
        "thread {id}: hijacked, but its exit sequence was started by the {destructor}: the \
         trampoline never ran (a wrong return slot, or an exit that skipped both the return \
         and the forced-unwind buffer); its hooks ran after other TLS destructors"
    ));
}

/// What the exit sequence tallies: caught panics (with the first message) and
/// forced unwinds.
#[derive(Default)]
struct SequenceOutcome {
    panics: usize,
    first_panic: Option<String>,
    forced_unwinds: usize,
    /// The first forced unwind, for [`run`] to resume where glibc's own goes on.
    caught: Option<cancel::CaughtUnwind>,
}

impl Outcome for SequenceOutcome {
    fn panicked(&mut self, payload: Box<dyn Any + Send>) {
        self.panics += 1;
        if self.first_panic.is_none() {
            self.first_panic = Some(report::panic_message(&*payload));
        }
        report::drop_payload(payload);
    }

    /// Ends only that handler or drop: the thread is leaving already.
    fn forced_unwind(&mut self, caught: cancel::CaughtUnwind) {
        self.forced_unwinds += 1;
        self.caught.get_or_insert(caught);
    }

    /// A handler may have enabled cancellation again and returned: it is held
    /// off once more before anything else runs (the sequence's own `write` on
    /// stderr is a cancellation point).
    fn after_each(&mut self) {
        cancel::disable();
    }
}

impl SequenceOutcome {
    fn report(&self, id: u64) {
        if let Some(first) = &self.first_panic {
            let count = self.panics;
            report::line(format_args!(
                "thread {id}: {count} panic(s) caught in at-exit handlers or value drops \
                 (the rest still ran); first: {first}"
            ));
        }
        if self.forced_unwinds > 0 {
            let count = self.forced_unwinds;
            report::line(format_args!(
                "thread {id}: {count} at-exit handler(s) or value drop(s) ended by pthread_exit \
                 or a cancellation; the exit sequence went on, then the thread's exit"
            ));
        }
    }
}
