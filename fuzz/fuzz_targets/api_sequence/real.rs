//! Runs the operations against the real crate on the calling thread, logging events.
//!
//! The log and the stash live in an `Rc<Exec>` that values and handlers hold, not
//! in thread-locals: they must work in every stage of thread teardown.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Arc, Mutex};

use hijack_tls::{Key, Status, Value};

use crate::ops::{Event, KEYS, Op, Seen};

/// Tracked values alive in the process (created minus dropped).
pub static LIVE: AtomicIsize = AtomicIsize::new(0);

static NUM: Key<u32> = Key::new();
static TRACKED: Key<Tracked> = Key::new();

/// Keys set once between `NUM` and `TRACKED` so that the two take different read
/// paths: `NUM` the thread-local mirror of the first 16 slots, `TRACKED` the view.
static FILLERS: [Key<u8>; 16] = [const { Key::new() }; 16];

/// Gives `NUM` the first slot index and `TRACKED` one past the mirror, on a
/// scratch thread that keeps nothing. Call once before the first run.
pub fn assign_key_indices() {
    std::thread::spawn(|| {
        NUM.set(0);
        for filler in &FILLERS {
            filler.set(0);
        }
        TRACKED.set(Exec::new(Arc::default()).tracked(&[]));
        hijack_tls::unload();
    })
    .join()
    .expect("assigning key indices");
}

/// The executor's state, shared by every value and handler it creates.
pub struct Exec {
    log: Arc<Mutex<Vec<Event>>>,
    stash: RefCell<Vec<Option<Value>>>,
    values: Cell<u32>,
    handlers: Cell<u32>,
    /// Still running the top-level operations (a kept `del` goes to the stash).
    main: Cell<bool>,
}

/// A value whose drop is logged and runs a body.
pub struct Tracked {
    serial: u32,
    on_drop: Vec<Op>,
    exec: Rc<Exec>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
        self.exec.log(Event::Dropped(self.serial));
        let body = std::mem::take(&mut self.on_drop);
        self.exec.run(&body);
    }
}

/// An at-exit handler's state: logs whether it ran or was discarded.
struct Handler {
    serial: u32,
    body: Vec<Op>,
    exec: Rc<Exec>,
    ran: bool,
}

impl Handler {
    fn run(mut self) {
        self.ran = true;
        self.exec.log(Event::HandlerRan(self.serial));
        let body = std::mem::take(&mut self.body);
        self.exec.run(&body);
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        if !self.ran {
            self.exec.log(Event::HandlerDiscarded(self.serial));
        }
    }
}

fn seen_num(value: Option<u32>) -> Option<Seen> {
    value.map(Seen::Num)
}

impl Exec {
    /// An executor logging into `log`.
    pub fn new(log: Arc<Mutex<Vec<Event>>>) -> Rc<Self> {
        Rc::new(Self {
            log,
            stash: RefCell::new(Vec::new()),
            values: Cell::new(0),
            handlers: Cell::new(0),
            main: Cell::new(true),
        })
    }

    fn log(&self, event: Event) {
        self.log.lock().unwrap().push(event);
    }

    fn tracked(self: &Rc<Self>, on_drop: &[Op]) -> Tracked {
        let serial = self.values.get();
        self.values.set(serial + 1);
        LIVE.fetch_add(1, Ordering::SeqCst);
        Tracked { serial, on_drop: on_drop.to_vec(), exec: self.clone() }
    }

    /// The top level: runs `ops`, then drops the stash in order (both before the
    /// thread's start routine returns). Returns whether the thread is hijacked.
    pub fn run_top(self: &Rc<Self>, ops: &[Op]) -> bool {
        self.run(ops);
        self.main.set(false);
        let len = self.stash.borrow().len();
        for i in 0..len {
            let value = self.stash.borrow_mut()[i].take();
            drop(value);
        }
        matches!(hijack_tls::status(), Status::Hijacked { .. })
    }

    /// Runs `ops` in order.
    pub fn run(self: &Rc<Self>, ops: &[Op]) {
        for op in ops {
            self.step(op);
        }
    }

    fn step(self: &Rc<Self>, op: &Op) {
        match op {
            Op::SetNum { key, value } => hijack_tls::set(key % KEYS, *value),
            Op::SetTracked { key, on_drop } => hijack_tls::set(key % KEYS, self.tracked(on_drop)),
            Op::GetNum { key } => self.log(Event::Got(hijack_tls::get::<u8, u32>(&(key % KEYS)))),
            Op::With { key, body } => {
                let found = hijack_tls::with(&(key % KEYS), |_: &Tracked| self.run(body));
                self.log(Event::Withed(found.is_some()));
            }
            Op::Del { key, keep } => {
                let value = hijack_tls::del(&(key % KEYS));
                self.log(Event::Deleted(value.is_some()));
                if *keep && self.main.get() {
                    self.stash.borrow_mut().push(value);
                } else {
                    drop(value);
                }
            }
            Op::Reset => hijack_tls::reset(),
            Op::Unload => hijack_tls::unload(),
            Op::AtExit { body } => {
                let serial = self.handlers.get();
                self.handlers.set(serial + 1);
                let handler =
                    Handler { serial, body: body.clone(), exec: self.clone(), ran: false };
                hijack_tls::at_exit(move || handler.run());
            }
            Op::Id => self.log(Event::Id(hijack_tls::id())),
            Op::Status => self.log(Event::Active(hijack_tls::status() != Status::Inactive)),
            Op::KeyNumSet { value } => self.log(Event::SetOld(seen_num(NUM.set(*value)))),
            Op::KeyNumGet => self.log(Event::Got(NUM.get())),
            Op::KeyNumTake => self.log(Event::Took(seen_num(NUM.take()))),
            Op::KeyTrackedSet { on_drop } => {
                let old = TRACKED.set(self.tracked(on_drop));
                self.log(Event::SetOld(old.as_ref().map(|t| Seen::Tracked(t.serial))));
                drop(old);
            }
            Op::KeyTrackedWith { body } => {
                let found = TRACKED.with(|_| self.run(body));
                self.log(Event::Withed(found.is_some()));
            }
            Op::KeyTrackedTake => {
                let old = TRACKED.take();
                self.log(Event::Took(old.as_ref().map(|t| Seen::Tracked(t.serial))));
                drop(old);
            }
            Op::StashDrop { index } => {
                let value = self.take_stashed(*index);
                drop(value);
            }
            Op::StashDowncast { index } => {
                let Some(value) = self.take_stashed(*index) else {
                    self.log(Event::Downcast(None));
                    return;
                };
                match value.downcast::<Tracked>() {
                    Ok(tracked) => {
                        self.log(Event::Downcast(Some(true)));
                        drop(tracked);
                    }
                    Err(value) => {
                        self.log(Event::Downcast(Some(false)));
                        let len = self.stash.borrow().len();
                        self.stash.borrow_mut()[*index as usize % len] = Some(value);
                    }
                }
            }
        }
    }

    /// Takes the stashed value at `index % len` out (the borrow ends before the
    /// caller drops it: a drop may use the stash again).
    fn take_stashed(&self, index: u8) -> Option<Value> {
        let mut stash = self.stash.borrow_mut();
        let len = stash.len();
        if len == 0 {
            return None;
        }
        stash[index as usize % len].take()
    }
}
