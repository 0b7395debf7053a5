//! A plain model of the documented semantics (README, rustdoc, NOTES "Exit
//! sequence"), written without the crate: records, reference-counted values,
//! handlers, the exit sequence's rounds, and glibc's teardown order.

use std::collections::BTreeMap;

use crate::ops::{Event, KEYS, Op, Seen};

const MAX_ROUNDS: usize = hijack_tls::MAX_ROUNDS;
/// glibc's `PTHREAD_DESTRUCTOR_ITERATIONS`: rounds of pthread-key destructors.
const KEY_ROUNDS: usize = 4;

/// What a value is.
#[derive(Clone)]
enum Kind {
    Num(u32),
    Tracked { serial: u32, on_drop: Vec<Op> },
}

/// A stored value and how many holders keep it alive (record, `with`s, stash).
struct Val {
    kind: Kind,
    holders: usize,
}

/// A registered handler: its serial, body and generation.
struct HandlerDesc {
    serial: u32,
    body: Vec<Op>,
    generation: u8,
}

/// Where a value sits in a record.
#[derive(Clone, Copy)]
enum Loc {
    Keyed(u8),
    /// 0: `Key<u32>`, 1: `Key<Tracked>`.
    Slot(usize),
}

/// A record: keyed values, the two typed slots, handlers, exit state.
#[derive(Default)]
struct Rec {
    generation: u64,
    keyed: BTreeMap<u8, (u64, usize)>,
    slots: [Option<(u64, usize)>; 2],
    handlers: Vec<HandlerDesc>,
    next_seq: u64,
    exiting: bool,
    /// While exiting: the generation of the handler or drop round running now.
    running: u8,
}

impl Rec {
    /// `(seq, location)` of every value stored before `bound`, newest first.
    fn below(&self, bound: u64) -> Vec<(u64, Loc)> {
        let mut list: Vec<_> = self.keyed.iter().map(|(k, (s, _))| (*s, Loc::Keyed(*k))).collect();
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some((s, _)) = slot {
                list.push((*s, Loc::Slot(i)));
            }
        }
        list.retain(|(s, _)| *s < bound);
        list.sort_by(|a, b| b.0.cmp(&a.0));
        list
    }

    /// Removes the value at `loc` if it still has sequence number `seq`.
    fn detach(&mut self, seq: u64, loc: Loc) -> Option<usize> {
        let entry = match loc {
            Loc::Keyed(k) => self.keyed.get(&k).copied(),
            Loc::Slot(i) => self.slots[i],
        };
        let (stored, vid) = entry?;
        if stored != seq {
            return None;
        }
        match loc {
            Loc::Keyed(k) => self.keyed.remove(&k),
            Loc::Slot(i) => self.slots[i].take(),
        };
        Some(vid)
    }

    /// The generation of an item registered now, or `None` if it is refused
    /// (past `MAX_ROUNDS` generations of the exit sequence).
    fn new_generation(&self) -> Option<u8> {
        if !self.exiting {
            return Some(0);
        }
        let next = self.running + 1;
        (usize::from(next) <= MAX_ROUNDS).then_some(next)
    }

    fn has_work(&self) -> bool {
        !self.handlers.is_empty()
            || !self.keyed.is_empty()
            || self.slots.iter().any(Option::is_some)
    }
}

/// The model thread: its records, values, stash and the events it predicts.
#[derive(Default)]
pub struct Model {
    /// What the real run must log, in order.
    pub events: Vec<Event>,
    /// Tracked values never dropped (refused past the round bound, or in a record
    /// whose sequence never runs).
    pub leaked: usize,
    vals: Vec<Val>,
    recs: Vec<Rec>,
    current: Option<usize>,
    stash: Vec<Option<usize>>,
    main: bool,
    /// An exit sequence has started on the thread.
    exit_started: bool,
    value_serials: u32,
    handler_serials: u32,
}

impl Model {
    /// Runs `ops` as the thread's start routine, then its teardown: the trampoline
    /// (if `hijacked`), the `thread_local!` destructor, then up to 4 rounds of
    /// pthread-key destructors. Each stage runs the current record and the records
    /// re-created during it, up to `MAX_ROUNDS` generations; one still left is armed
    /// for the next stage.
    pub fn run_thread(ops: &[Op], hijacked: bool) -> Self {
        let mut m = Self { main: true, ..Self::default() };
        m.run(ops);
        m.main = false;
        for i in 0..m.stash.len() {
            if let Some(vid) = m.stash[i].take() {
                m.release(vid);
            }
        }
        let stages = usize::from(hijacked) + 1 + KEY_ROUNDS;
        'stages: for _ in 0..stages {
            // One stage runs the current record, then each record created during
            // that sequence, up to MAX_ROUNDS generations (`exit::run`).
            for _generation in 0..=MAX_ROUNDS {
                match m.current {
                    Some(rec) if !m.recs[rec].exiting => m.exit(rec),
                    _ => break 'stages,
                }
            }
        }
        if let Some(rec) = m.current.take() {
            // Never run: its values are leaked.
            let list = m.recs[rec].below(u64::MAX);
            for (seq, loc) in list {
                if let Some(vid) = m.recs[rec].detach(seq, loc) {
                    if matches!(m.vals[vid].kind, Kind::Tracked { .. }) {
                        m.leaked += 1;
                    }
                }
            }
        }
        m
    }

    fn run(&mut self, ops: &[Op]) {
        for op in ops {
            self.step(op);
        }
    }

    fn new_val(&mut self, kind: Kind) -> usize {
        self.vals.push(Val { kind, holders: 1 });
        self.vals.len() - 1
    }

    fn tracked(&mut self, on_drop: &[Op]) -> usize {
        let serial = self.value_serials;
        self.value_serials += 1;
        self.new_val(Kind::Tracked { serial, on_drop: on_drop.to_vec() })
    }

    fn seen(&self, vid: usize) -> Seen {
        match &self.vals[vid].kind {
            Kind::Num(n) => Seen::Num(*n),
            Kind::Tracked { serial, .. } => Seen::Tracked(*serial),
        }
    }

    /// One holder lets go; the last one drops the value (and runs its `Drop`).
    fn release(&mut self, vid: usize) {
        self.vals[vid].holders -= 1;
        if self.vals[vid].holders == 0 {
            if let Kind::Tracked { serial, on_drop } = self.vals[vid].kind.clone() {
                self.events.push(Event::Dropped(serial));
                self.run(&on_drop);
            }
        }
    }

    fn leak(&mut self, vid: usize) {
        if matches!(self.vals[vid].kind, Kind::Tracked { .. }) {
            self.leaked += 1;
        }
    }

    fn current_or_create(&mut self) -> usize {
        if let Some(rec) = self.current {
            return rec;
        }
        let generation = self.recs.len() as u64;
        self.recs.push(Rec { generation, ..Rec::default() });
        self.current = Some(self.recs.len() - 1);
        self.recs.len() - 1
    }

    /// Stores `vid` at `loc` of the current record (creating it); returns the old
    /// value's id, or `None` (also when refused: the value is leaked).
    fn store(&mut self, loc: Loc, vid: usize) -> Option<usize> {
        let rec = self.current_or_create();
        let r = &mut self.recs[rec];
        if r.new_generation().is_none() {
            self.leak(vid);
            return None;
        }
        let seq = r.next_seq;
        r.next_seq += 1;
        let old = match loc {
            Loc::Keyed(k) => r.keyed.insert(k, (seq, vid)),
            Loc::Slot(i) => r.slots[i].replace((seq, vid)),
        };
        old.map(|(_, old)| old)
    }

    fn lookup(&self, loc: Loc) -> Option<usize> {
        let r = &self.recs[self.current?];
        match loc {
            Loc::Keyed(k) => r.keyed.get(&k).map(|(_, v)| *v),
            Loc::Slot(i) => r.slots[i].map(|(_, v)| v),
        }
    }

    fn remove(&mut self, loc: Loc) -> Option<usize> {
        let r = &mut self.recs[self.current?];
        match loc {
            Loc::Keyed(k) => r.keyed.remove(&k).map(|(_, v)| v),
            Loc::Slot(i) => r.slots[i].take().map(|(_, v)| v),
        }
    }

    /// `with`: borrows the value for the body if it is tracked.
    fn with(&mut self, loc: Loc, body: &[Op]) {
        match self.lookup(loc) {
            Some(vid) if matches!(self.vals[vid].kind, Kind::Tracked { .. }) => {
                self.vals[vid].holders += 1;
                self.run(body);
                self.release(vid);
                self.events.push(Event::Withed(true));
            }
            _ => self.events.push(Event::Withed(false)),
        }
    }

    /// A typed key's old value handed back: moved out if no `with` borrows it.
    fn hand_back(&mut self, old: Option<usize>) -> Option<Seen> {
        let vid = old?;
        if self.vals[vid].holders == 1 {
            let seen = self.seen(vid);
            Some(seen)
        } else {
            self.vals[vid].holders -= 1;
            None
        }
    }

    fn key_set(&mut self, slot: usize, vid: usize) {
        let old = self.store(Loc::Slot(slot), vid);
        let handed = self.hand_back(old);
        self.events.push(Event::SetOld(handed));
        if handed.is_some() {
            self.release(old.unwrap());
        }
    }

    fn key_take(&mut self, slot: usize) {
        let old = self.remove(Loc::Slot(slot));
        let handed = self.hand_back(old);
        self.events.push(Event::Took(handed));
        if handed.is_some() {
            self.release(old.unwrap());
        }
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::SetNum { key, value } => {
                let vid = self.new_val(Kind::Num(*value));
                if let Some(old) = self.store(Loc::Keyed(key % KEYS), vid) {
                    self.release(old);
                }
            }
            Op::SetTracked { key, on_drop } => {
                let vid = self.tracked(on_drop);
                if let Some(old) = self.store(Loc::Keyed(key % KEYS), vid) {
                    self.release(old);
                }
            }
            Op::GetNum { key } => {
                let got =
                    self.lookup(Loc::Keyed(key % KEYS)).and_then(|v| match self.vals[v].kind {
                        Kind::Num(n) => Some(n),
                        Kind::Tracked { .. } => None,
                    });
                self.events.push(Event::Got(got));
            }
            Op::With { key, body } => self.with(Loc::Keyed(key % KEYS), body),
            Op::Del { key, keep } => {
                let removed = self.remove(Loc::Keyed(key % KEYS));
                self.events.push(Event::Deleted(removed.is_some()));
                if *keep && self.main {
                    self.stash.push(removed);
                } else if let Some(vid) = removed {
                    self.release(vid);
                }
            }
            Op::Reset => self.reset(),
            Op::Unload => self.unload(),
            Op::AtExit { body } => {
                let serial = self.handler_serials;
                self.handler_serials += 1;
                let rec = self.current_or_create();
                // Refused past the generation bound: leaked, never run nor dropped.
                if let Some(generation) = self.recs[rec].new_generation() {
                    let body = body.clone();
                    self.recs[rec].handlers.push(HandlerDesc { serial, body, generation });
                }
            }
            Op::Id => {
                let rec = self.current_or_create();
                self.events.push(Event::Id(self.recs[rec].generation));
            }
            // Once an exit sequence started, a thread without a record reports
            // `Exited`, not `Inactive`.
            Op::Status => {
                self.events.push(Event::Active(self.current.is_some() || self.exit_started))
            }
            Op::KeyNumSet { value } => {
                let vid = self.new_val(Kind::Num(*value));
                self.key_set(0, vid);
            }
            Op::KeyNumGet => {
                let got = self.lookup(Loc::Slot(0)).map(|v| match self.vals[v].kind {
                    Kind::Num(n) => n,
                    Kind::Tracked { .. } => unreachable!("slot 0 holds u32"),
                });
                self.events.push(Event::Got(got));
            }
            Op::KeyNumTake => self.key_take(0),
            Op::KeyTrackedSet { on_drop } => {
                let vid = self.tracked(on_drop);
                self.key_set(1, vid);
            }
            Op::KeyTrackedWith { body } => self.with(Loc::Slot(1), body),
            Op::KeyTrackedTake => self.key_take(1),
            Op::StashDrop { index } => {
                if let Some(vid) = self.take_stashed(*index) {
                    self.release(vid);
                }
            }
            Op::StashDowncast { index } => {
                let len = self.stash.len();
                let Some(vid) = self.take_stashed(*index) else {
                    self.events.push(Event::Downcast(None));
                    return;
                };
                let ok = matches!(self.vals[vid].kind, Kind::Tracked { .. })
                    && self.vals[vid].holders == 1;
                self.events.push(Event::Downcast(Some(ok)));
                if ok {
                    self.release(vid);
                } else {
                    self.stash[*index as usize % len] = Some(vid);
                }
            }
        }
    }

    fn take_stashed(&mut self, index: u8) -> Option<usize> {
        let len = self.stash.len();
        if len == 0 {
            return None;
        }
        self.stash[index as usize % len].take()
    }

    /// `reset`: drops values stored before the call, newest first, while the
    /// thread's record is still the same one.
    fn reset(&mut self) {
        let Some(rec) = self.current else { return };
        let generation = self.recs[rec].generation;
        let list = self.recs[rec].below(self.recs[rec].next_seq);
        for (seq, loc) in list {
            match self.current {
                Some(now) if self.recs[now].generation == generation => {}
                _ => return,
            }
            if let Some(vid) = self.recs[rec].detach(seq, loc) {
                self.release(vid);
            }
        }
    }

    /// `unload`: detach everything, forget the record, discard the handlers in
    /// registration order, then drop the values newest first.
    fn unload(&mut self) {
        let Some(rec) = self.current.take() else { return };
        let handlers = std::mem::take(&mut self.recs[rec].handlers);
        let list = self.recs[rec].below(u64::MAX);
        let vids: Vec<_> =
            list.into_iter().filter_map(|(s, l)| self.recs[rec].detach(s, l)).collect();
        for handler in handlers {
            self.events.push(Event::HandlerDiscarded(handler.serial));
        }
        for vid in vids {
            self.release(vid);
        }
    }

    /// The exit sequence on record `rec` (NOTES, "Exit sequence").
    fn exit(&mut self, rec: usize) {
        self.recs[rec].exiting = true;
        self.exit_started = true;
        // Generations: a handler runs at its own; the drops of round r at r; what
        // either registers is one later, refused past MAX_ROUNDS (src/record/mod.rs).
        for round in 0..=MAX_ROUNDS {
            while let Some(handler) = self.recs[rec].handlers.pop() {
                self.recs[rec].running = handler.generation;
                self.events.push(Event::HandlerRan(handler.serial));
                self.run(&handler.body);
            }
            self.recs[rec].running = round as u8;
            let list = self.recs[rec].below(self.recs[rec].next_seq);
            for (seq, loc) in list {
                if let Some(vid) = self.recs[rec].detach(seq, loc) {
                    self.release(vid);
                }
            }
            if !self.recs[rec].has_work() {
                break;
            }
        }
        if self.current == Some(rec) {
            self.current = None;
        }
    }
}
