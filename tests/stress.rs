//! A threaded stress program for Miri and the sanitizers (`harness = false`, so it
//! owns the main thread): waves of threads each store keyed and typed values,
//! replace, read, `del`, `reset` or `unload` them, register at-exit handlers, store
//! from `Drop` impls, and pass values to and from the main thread over channels.
//! Every value and handler made is counted, and so is every drop and handler run;
//! the totals are checked exactly after the last join.
//!
//! The main thread ends with a record created inside one of its own `thread_local!`
//! destructors after the crate's own destructor ran: the fallback arms that late
//! record with `atexit` (`Destructor::ProcessExit`).
//!
//! `HIJACK_TLS_STRESS_THREADS` sets the number of worker threads (default 64, 8
//! under Miri); at most [`WAVE`] are alive at once.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};

use hijack_tls::{Destructor, Key, Status};

/// Values and handler guards made.
static CREATED: AtomicUsize = AtomicUsize::new(0);
/// Values and handler guards dropped.
static DROPPED: AtomicUsize = AtomicUsize::new(0);
/// At-exit handlers that ran (on worker threads).
static HANDLERS_RUN: AtomicUsize = AtomicUsize::new(0);
/// Workers whose first record was hijacked (the rest fell back).
static HIJACKED: AtomicUsize = AtomicUsize::new(0);
/// Hijacked workers (not unloaded) that registered a handler checking [`WITNESS`].
static WITNESS_EXPECTED: AtomicUsize = AtomicUsize::new(0);
/// Those whose handler found their [`WITNESS`] still alive.
static WITNESS_ALIVE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// First touched after the worker's first use of the crate, so it is
    /// registered later and a fallback (glibc runs TLS destructors last
    /// registered first) would destroy it before the handlers run: alive inside
    /// them only if the hijack ran them first.
    static WITNESS: Cell<bool> = const { Cell::new(false) };
}

/// How many worker threads are alive at once.
const WAVE: usize = 16;
/// Read-and-replace rounds per worker.
const ROUNDS: u64 = if cfg!(miri) { 4 } else { 64 };

static SLOT: Key<Counted> = Key::new();
static ORDINAL: Key<u64> = Key::new();
static NAME: Key<String> = Key::new();

/// A value whose creation and drop are counted.
#[derive(Debug)]
struct Counted;

impl Counted {
    fn new() -> Self {
        CREATED.fetch_add(1, Ordering::Relaxed);
        Self
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// A value whose drop calls the API: it reads, stores a new value and registers a
/// handler (kept by `reset`, on a fresh record after `unload`, in a later round of
/// the exit sequence).
struct StoresOnDrop;

impl Drop for StoresOnDrop {
    fn drop(&mut self) {
        assert_eq!(hijack_tls::get::<_, u64>(&"missing"), None);
        hijack_tls::set("stored-by-a-drop", Counted::new());
        counted_handler(|| {});
    }
}

/// Registers a handler that runs `check`, is counted, and owns a [`Counted`] guard
/// (so a handler discarded by `unload` is counted as dropped too).
fn counted_handler(check: impl FnOnce() + 'static) {
    let guard = Counted::new();
    hijack_tls::at_exit(move || {
        check();
        HANDLERS_RUN.fetch_add(1, Ordering::Relaxed);
        drop(guard);
    });
}

/// What a worker does after storing its values.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Nothing more: everything runs at thread exit.
    Plain,
    /// `reset`: values drop now, handlers run at exit.
    Reset,
    /// `unload`: values drop now, handlers are discarded; a fresh record follows.
    Unload,
    /// `del` of a value, which is sent back to the main thread.
    Del,
}

impl Mode {
    fn of(ordinal: usize) -> Self {
        [Self::Plain, Self::Reset, Self::Unload, Self::Del][ordinal % 4]
    }

    /// Handlers each worker of this mode runs: its own two and the one its
    /// [`StoresOnDrop`] registers (a fresh one replaces the two `unload` discards).
    fn handlers_run(self) -> usize {
        match self {
            Self::Plain | Self::Reset | Self::Del => 3,
            Self::Unload => 2,
        }
    }
}

/// A message from a worker to the main thread.
enum Message {
    /// Sent by an at-exit handler: the worker's ID.
    Exiting { id: u64 },
    /// A value made on a worker, for the main thread to drop.
    Value(Counted),
}

/// One worker thread's life; `ordinal` is unique, `inbox` brings one value from main.
fn worker(ordinal: usize, outbox: Sender<Message>, inbox: Receiver<Counted>) {
    let mode = Mode::of(ordinal);
    let index = ordinal as u64;
    hijack_tls::set("a", Counted::new());
    hijack_tls::set(index, Counted::new());
    hijack_tls::set(format!("s{ordinal}"), Counted::new());
    assert!(SLOT.set(Counted::new()).is_none());
    assert_eq!(ORDINAL.set(index), None);
    NAME.set(format!("worker {ordinal}"));
    hijack_tls::set("a", Counted::new()); // replaces: the first "a" drops now
    let id = hijack_tls::id();
    if matches!(hijack_tls::status(), Status::Hijacked { .. }) {
        HIJACKED.fetch_add(1, Ordering::Relaxed);
    }
    if matches!(hijack_tls::status(), Status::Hijacked { .. }) && mode != Mode::Unload {
        // `unload` would discard the handler.
        WITNESS_EXPECTED.fetch_add(1, Ordering::Relaxed);
        WITNESS.with(|w| w.set(true));
        hijack_tls::at_exit(|| {
            if WITNESS.try_with(Cell::get) == Ok(true) {
                WITNESS_ALIVE.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    counted_handler(move || {
        // Every value is still readable while handlers run (after `reset`, only
        // the one its drops stored).
        let reset = mode == Mode::Reset;
        assert_eq!(hijack_tls::with(&"a", |_: &Counted| ()).is_none(), reset);
        assert_eq!(ORDINAL.get(), (!reset).then_some(index + ROUNDS));
        assert_eq!(SLOT.with(|_| ()).is_none(), reset);
        assert!(hijack_tls::with(&"stored-by-a-drop", |_: &Counted| ()).is_some() == reset);
    });
    let exiting = outbox.clone();
    counted_handler(move || exiting.send(Message::Exiting { id }).unwrap());
    hijack_tls::set("stores-on-drop", StoresOnDrop);
    hijack_tls::set("from-main", inbox.recv().unwrap());
    outbox.send(Message::Value(Counted::new())).unwrap();
    for round in 0..ROUNDS {
        assert_eq!(ORDINAL.set(index + round + 1), Some(index + round));
        assert_eq!(hijack_tls::with(&index, |_: &Counted| round), Some(round));
        assert_eq!(NAME.with(String::len), Some(format!("worker {ordinal}").len()));
        assert_eq!(hijack_tls::id(), id);
    }
    match mode {
        Mode::Plain => {}
        Mode::Reset => {
            hijack_tls::reset();
            assert!(hijack_tls::with(&"a", |_: &Counted| ()).is_none());
            assert_eq!(ORDINAL.get(), None);
            assert!(hijack_tls::with(&"stored-by-a-drop", |_: &Counted| ()).is_some());
            assert_eq!(hijack_tls::id(), id, "reset keeps the ID");
        }
        Mode::Unload => {
            hijack_tls::unload();
            // The drop of StoresOnDrop made a fresh record with a new ID.
            assert!(hijack_tls::with(&"stored-by-a-drop", |_: &Counted| ()).is_some());
            assert_ne!(hijack_tls::id(), id);
            assert!(SLOT.set(Counted::new()).is_none());
            counted_handler(|| assert!(SLOT.with(|_| ()).is_some()));
        }
        Mode::Del => {
            let value = hijack_tls::del(&index).unwrap();
            outbox.send(Message::Value(value.downcast::<Counted>().unwrap())).unwrap();
            assert!(hijack_tls::del(&index).is_none());
        }
    }
}

/// Runs `threads` workers in waves and checks every count; returns the number of
/// at-exit handlers that ran.
fn stress(threads: usize) -> usize {
    let outstanding = || CREATED.load(Ordering::Relaxed) - DROPPED.load(Ordering::Relaxed);
    let outstanding_before = outstanding();
    let (outbox, messages) = mpsc::channel();
    let mut expected_handlers = 0;
    let mut exiting_ids = Vec::new();
    let mut values_from_workers = 0;
    for wave in (0..threads).step_by(WAVE) {
        let workers: Vec<_> = (wave..threads.min(wave + WAVE))
            .map(|ordinal| {
                let (to_worker, inbox) = mpsc::channel();
                to_worker.send(Counted::new()).unwrap();
                let outbox = outbox.clone();
                expected_handlers += Mode::of(ordinal).handlers_run();
                std::thread::spawn(move || worker(ordinal, outbox, inbox))
            })
            .collect();
        for worker in workers {
            worker.join().expect("worker panicked");
        }
        for message in messages.try_iter() {
            match message {
                Message::Exiting { id } => exiting_ids.push(id),
                Message::Value(value) => {
                    values_from_workers += 1;
                    drop(value);
                }
            }
        }
    }
    let not_unloaded = (0..threads).filter(|&n| Mode::of(n) != Mode::Unload).count();
    let deleted = (0..threads).filter(|&n| Mode::of(n) == Mode::Del).count();
    assert_eq!(values_from_workers, threads + deleted, "values sent to main");
    assert_eq!(exiting_ids.len(), not_unloaded, "exit handlers that sent their ID");
    exiting_ids.sort_unstable();
    exiting_ids.dedup();
    assert_eq!(exiting_ids.len(), not_unloaded, "IDs are distinct");
    assert_eq!(HANDLERS_RUN.load(Ordering::Relaxed), expected_handlers, "handlers run");
    assert_eq!(outstanding(), outstanding_before, "every value and handler guard dropped once");
    expected_handlers
}

/// On the main thread: stores a value and registers a handler from its
/// `thread_local!` destructor when `armed` (set once the crate's own destructor is
/// known to run before this one).
struct LateMainRecord {
    armed: Cell<bool>,
}

impl Drop for LateMainRecord {
    fn drop(&mut self) {
        if self.armed.get() {
            hijack_tls::set("late-main", Counted::new());
            hijack_tls::at_exit(|| println!("stress: the main thread's late record ran"));
            println!("stress: main thread's late record: {}", hijack_tls::status());
        }
    }
}

thread_local! {
    static LATE_MAIN: LateMainRecord = const { LateMainRecord { armed: Cell::new(false) } };
}

fn main() {
    // Registered before the crate's guard, so its destructor runs after it.
    LATE_MAIN.with(|late| late.armed.get());
    hijack_tls::set("main", Counted::new());
    // Only when the main thread's sequence runs from its `thread_local!` destructor
    // does the late record find that destructor gone (the fallback's atexit path).
    let status = hijack_tls::status();
    if matches!(status, Status::Fallback { destructor: Destructor::ThreadLocal, .. }) {
        LATE_MAIN.with(|late| late.armed.set(true));
    }
    let threads = match std::env::var("HIJACK_TLS_STRESS_THREADS") {
        Ok(text) => text.parse().expect("HIJACK_TLS_STRESS_THREADS: a number"),
        Err(_) => {
            if cfg!(miri) {
                8
            } else {
                64
            }
        }
    };
    let handlers = stress(threads);
    let hijacked = HIJACKED.load(Ordering::Relaxed);
    let alive = WITNESS_ALIVE.load(Ordering::Relaxed);
    let expected = WITNESS_EXPECTED.load(Ordering::Relaxed);
    assert_eq!(alive, expected, "hijacked workers whose handler saw their thread_local! alive");
    println!(
        "stress: {threads} threads ({hijacked} hijacked), {handlers} handlers, counts exact, \
         {alive} handlers saw their thread_local! alive"
    );
    println!("stress: main thread: {status}");
}
