//! The operations a fuzz input is made of, and the events both the real run and
//! the model log.

use arbitrary::Arbitrary;

/// Keyed values use `key % KEYS` as their key, so keys collide often.
pub const KEYS: u8 = 4;
/// At most this many operations per input, nested ones included.
pub const MAX_OPS: usize = 64;
/// At most this nesting depth (bodies of `with` closures, drops and handlers).
pub const MAX_DEPTH: usize = 10;

/// One API call. Bodies run nested: inside a `with` closure, a value's `Drop`, or
/// an at-exit handler.
#[derive(Arbitrary, Clone, Debug)]
pub enum Op {
    /// `set(key, u32)`.
    SetNum { key: u8, value: u32 },
    /// `set(key, Tracked)`; `on_drop` runs inside the value's `Drop`.
    SetTracked { key: u8, on_drop: Vec<Op> },
    /// `get::<_, u32>(&key)`.
    GetNum { key: u8 },
    /// `with(&key, |_: &Tracked| body)`.
    With { key: u8, body: Vec<Op> },
    /// `del(&key)`; the `Value` is kept in a stash (`keep`, outside exit) or dropped.
    Del { key: u8, keep: bool },
    /// `reset()`.
    Reset,
    /// `unload()`.
    Unload,
    /// `at_exit(body)`.
    AtExit { body: Vec<Op> },
    /// `id()`.
    Id,
    /// `status()`: only whether the thread has a record is compared.
    Status,
    /// `Key<u32>::set`.
    KeyNumSet { value: u32 },
    /// `Key<u32>::get`.
    KeyNumGet,
    /// `Key<u32>::take`.
    KeyNumTake,
    /// `Key<Tracked>::set`.
    KeyTrackedSet { on_drop: Vec<Op> },
    /// `Key<Tracked>::with(body)`.
    KeyTrackedWith { body: Vec<Op> },
    /// `Key<Tracked>::take`.
    KeyTrackedTake,
    /// Drops the stashed `Value` at `index % len`.
    StashDrop { index: u8 },
    /// `Value::downcast::<Tracked>()` on the stashed value at `index % len`.
    StashDowncast { index: u8 },
}

/// A value as a result describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A `u32` value.
    Num(u32),
    /// A tracked value, by creation serial.
    Tracked(u32),
}

/// What happened, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A tracked value (by creation serial) was dropped.
    Dropped(u32),
    /// A handler (by registration serial) ran.
    HandlerRan(u32),
    /// A handler was dropped without running (`unload`).
    HandlerDiscarded(u32),
    /// `get`/`Key::get` result.
    Got(Option<u32>),
    /// Whether a `with` found its value (logged after the body and the borrow end).
    Withed(bool),
    /// Whether `del` found a value.
    Deleted(bool),
    /// `Key::set`'s old value handed back.
    SetOld(Option<Seen>),
    /// `Key::take`'s result.
    Took(Option<Seen>),
    /// `None`: no stashed value there; `Some(ok)`: the downcast's outcome.
    Downcast(Option<bool>),
    /// An ID, renumbered by first appearance before comparing.
    Id(u64),
    /// Whether the thread had a record.
    Active(bool),
}

/// Cuts `ops` down to [`MAX_OPS`] operations and [`MAX_DEPTH`] levels.
pub fn bound(ops: &mut Vec<Op>) {
    let mut budget = MAX_OPS;
    trim(ops, 0, &mut budget);
}

fn trim(ops: &mut Vec<Op>, depth: usize, budget: &mut usize) {
    ops.truncate(*budget);
    *budget -= ops.len();
    for op in ops.iter_mut() {
        if let Op::SetTracked { on_drop: body, .. }
        | Op::With { body, .. }
        | Op::AtExit { body }
        | Op::KeyTrackedSet { on_drop: body }
        | Op::KeyTrackedWith { body } = op
        {
            if depth + 1 >= MAX_DEPTH {
                body.clear();
            }
            trim(body, depth + 1, budget);
        }
    }
}

/// Renumbers IDs by first appearance, so two logs compare by identity pattern.
pub fn normalise(events: &mut [Event]) {
    let mut seen = Vec::new();
    for event in events {
        if let Event::Id(id) = event {
            let index = seen.iter().position(|s| s == id).unwrap_or_else(|| {
                seen.push(*id);
                seen.len() - 1
            });
            *id = index as u64;
        }
    }
}
