//! Keyed thread-local storage, never-reused thread IDs and at-exit hooks for any
//! thread: std threads, threads made by C code with `pthread_create`, pool threads
//! and the main thread.
//!
//! The at-exit hooks run the moment the thread's start routine returns, *before*
//! any `thread_local!` or pthread-key destructor of the thread, so every other
//! thread-local is still alive inside them. On first use the crate walks the
//! thread's stack with DWARF unwind tables to its bottom return frame and points
//! that return address at an exit trampoline (the `hijack` feature, on by default,
//! on Linux/glibc x86_64 and aarch64). Where that is impossible or unsafe, the exit
//! sequence is armed by a TLS destructor instead, so the API works everywhere;
//! [`status()`] says which one a thread got and why.
//!
//! ```
//! hijack_tls::set("request-id", 42_u64);
//! assert_eq!(hijack_tls::get::<_, u64>(&"request-id"), Some(42));
//! hijack_tls::at_exit(|| {
//!     // Runs when this thread exits; every value is still readable here.
//!     let _ = hijack_tls::get::<_, u64>(&"request-id");
//! });
//! ```
//!
//! # Re-entrancy
//! Every function here may be called from inside [`with`] closures, `Drop` impls of
//! stored values and at-exit handlers. User code never runs while the crate holds a
//! borrow of the thread's record, so no call deadlocks or panics for re-entrancy;
//! each function's docs give the exact outcome. The one exception is code that
//! interrupts the crate while it holds that borrow: a key's `Eq` impl, or a signal
//! handler (the crate's own exit sequence borrows the record too, so a program
//! cannot shield every such moment). There, reads answer without a borrow: [`id`]
//! and [`status()`](fn@status) as always, [`get`], [`with`] and [`Key`] reads the value or
//! `None` (`None` for a keyed value, and for a `Key` past the first 16 to take a
//! slot index in the process); a call that changes the record panics with a
//! message.
//!
//! # Cancellation and `pthread_exit`
//! The exit sequence runs with cancellation disabled; a cancel requested meanwhile
//! acts after it, at the thread's next cancellation point (an asynchronous cancel
//! type is left deferred). A `pthread_exit` (or a cancellation a hook re-enabled)
//! inside an at-exit hook or a value's drop during the sequence ends only that
//! hook or drop: the sequence goes on, then the thread's exit; `pthread_join`
//! reports the last `pthread_exit` value, except for a hijacked thread whose start
//! routine returned (its own result). Inside a drop run by [`reset`] or [`unload`],
//! the other values still drop and then the thread's exit goes on from that call.
//! A thread's first use defers cancellation until its record is armed. (glibc on
//! x86_64 and aarch64; elsewhere a forced unwind inside a hook is not caught, and
//! meets the `catch_unwind` around it.)
//!
//! # Kill switch
//! `HIJACK_TLS=off` (also `0`, `false`, `no`) in the environment makes every thread use
//! the fallback. It is read once, when the crate is loaded.
//!
//! # Map of the crate
//! The floors, top to bottom (each file imports only from floors below it, but
//! for the two upward references named below; `.ci/import_cycles.py` checks it):
//! 1. This file and `key.rs`: the public API, free of `unsafe`.
//! 2. `exit/arm.rs`: a thread's first use, record creation and arming (the
//!    stack walk, through `exit/hijack.rs`, or the fallback alone).
//! 3. The triggers, each starting the exit sequence (`exit::run`):
//!    - `exit/hijack.rs` `on_trampoline`, called from the exit trampoline when a
//!      hijacked start routine (or `main`) returns: `arch/x86_64/trampoline.rs`
//!      and `arch/aarch64/trampoline.rs` name it with `sym`;
//!    - `exit/forced_unwind.rs` `on_forced_unwind`: glibc's cleanup buffer on
//!      `pthread_exit` and `pthread_cancel`;
//!    - `exit/fallback.rs` `ExitGuard::drop` (a `thread_local!` destructor),
//!      `run_from_key` (a pthread-key destructor) and `run_at_process_exit`
//!      (`atexit`, the main thread's records where its `thread_local!`
//!      destructors never run).
//!
//!    [`reset`] and [`unload`] drop values with the sequence's own
//!    `exit::drop_values` and `exit::guarded`, but do not start it.
//! 4. `exit/mod.rs`: the sequence (handlers, drops, generations, freeing), with
//!    `exit/cancel/` holding cancellation off and catching forced unwinds.
//! 5. `record/`: per-thread state behind private fields (`mod.rs`: the record,
//!    the thread-local view and mirror, borrow/create/free; `slots.rs`,
//!    `keyed.rs`, `value.rs`; `arming.rs`: how it is armed, the hijack handle,
//!    the `FIRED` flag).
//! 6. `status.rs`, `diagnostics.rs`, `report.rs`: what the crate reports.
//! 7. `walk/` (the CFI stack walk) and `unwind_info/` (the trampolines' unwind
//!    registration).
//! 8. `arch.rs`, the one selection point of `arch/<isa>/`.
//!
//! The two upward references: the trampolines' `sym on_trampoline` (a
//! trampoline entered by `ret` has no register to carry a callback), and the
//! walker's stack-bounds code naming `diagnostics::StackBoundsSource` (cheaper
//! than a twin enum). `.ci/import_cycles.allow` lists them.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz;
mod arch;
pub mod diagnostics;
mod exit;
mod key;
#[cfg(glibc_cancel_catch)]
mod libc_symbol;
mod miri_shims;
mod record;
mod report;
mod status;
#[cfg(hijack_supported)]
mod unwind_info;
#[cfg(hijack_supported)]
mod walk;

use core::hash::Hash;

use exit::FirstPanic;
use exit::arm::with_current_or_create;

pub use key::Key;
pub use record::{MAX_ROUNDS, Value};
pub use status::{Destructor, ExitTrigger, FallbackReason, Status};
#[cfg(hijack_supported)]
pub use status::{UnwindInfoFailure, WalkFailure};

/// Stores `value` under `key` for this thread, replacing and dropping any old value
/// under the same key (of any type). Creates the thread's record on first use.
///
/// The old value drops after the record is released, so its `Drop` may call anything
/// here. If the old value is borrowed right now by an enclosing [`with`], it is
/// replaced at once and drops when that borrow ends.
pub fn set<K: Hash + Eq + 'static, V: 'static>(key: K, value: V) {
    let hash = record::hash_of(&key);
    // A `V` already stored under `key` that nothing borrows is replaced in place,
    // without allocating; whatever is displaced drops after the record is released.
    let value = match with_current_or_create(|r| r.replace_keyed(hash, &key, value)) {
        Ok(old) => {
            drop(key);
            drop(old);
            return;
        }
        Err(value) => value,
    };
    let (unused_key, old) = with_current_or_create(|r| r.store_keyed(hash, key, value));
    drop(unused_key);
    drop(old);
}

/// A clone of this thread's value under `key`; `None` if there is none **or it is of
/// another type**. Never creates a record.
#[inline]
pub fn get<K: Hash + Eq + 'static, V: Clone + 'static>(key: &K) -> Option<V> {
    with(key, V::clone)
}

/// Borrows this thread's value under `key` for `f`; `None` if there is none or it is
/// of another type. Never creates a record.
///
/// Every call here is allowed inside `f`. If `f` replaces or deletes this very value
/// ([`set`], [`del`], [`reset`], [`unload`]), the borrow stays valid: the value has
/// left the thread's map, and drops when `f` returns (or, after `del`, when both `f`
/// has returned and the returned [`Value`] is dropped).
#[inline]
pub fn with<K: Hash + Eq + 'static, V: 'static, R>(key: &K, f: impl FnOnce(&V) -> R) -> Option<R> {
    let hash = record::hash_of(key);
    // A handle of its own (a pin) keeps the value alive while `f` borrows it.
    let pinned = record::read_current(|r| r.pin_keyed::<K, V>(hash, key))??;
    Some(f(&pinned))
}

/// Removes this thread's value under `key` and hands it back, so the caller decides
/// when it drops. Never creates a record.
///
/// If an enclosing [`with`] borrows the value right now, it still leaves the map at
/// once; it stays alive until that borrow ends (and [`Value::downcast`] gives the
/// value back only after that).
pub fn del<K: Hash + Eq + 'static>(key: &K) -> Option<Value> {
    let hash = record::hash_of(key);
    let (shared, stored_key) = record::with_current(|r| r.remove_keyed(hash, key))??;
    drop(stored_key);
    Some(Value::new(shared))
}

/// This thread's ID: nonzero, unique among all threads for the life of the process,
/// never reused. Stable within a thread until [`unload`], after which the thread gets
/// a new one. Creates the record.
#[inline]
pub fn id() -> u64 {
    // The thread-local view has the ID while a record is current and not borrowed.
    match record::current_id() {
        0 => with_current_or_create(|r| r.id()),
        id => id,
    }
}

/// Registers `f` to run when this thread exits, last registered first, while every
/// stored value is still readable. Creates the record.
///
/// Called from a handler (or a value's drop) during exit, `f` runs in the same
/// exit sequence, one *generation* after the code that registered it. Past
/// [`MAX_ROUNDS`] generations new handlers and values are refused (leaked, not
/// run) and counted on stderr, so a handler that registers itself, or two copies
/// of itself, ends. If nothing can run this thread's exit sequence any more
/// ([`Destructor::Unarmed`], [`Destructor::TooLate`]), `f` is refused the same
/// way and the first refusal is reported at once.
pub fn at_exit(f: impl FnOnce() + 'static) {
    let handler: record::Handler = Box::new(f);
    with_current_or_create(|r| r.push_handler(handler));
}

/// Drops all of this thread's values (keyed and in [`Key`]s), newest first; keeps the
/// at-exit handlers and the ID. Does nothing if the thread has no record.
///
/// Values stored by the drops themselves are kept. If a drop panics, the rest are
/// still dropped and the first panic is resumed afterwards.
pub fn reset() {
    let Some((id, bound)) = record::with_current(|r| (r.id(), r.next_seq())) else { return };
    let mut first_panic = FirstPanic::default();
    exit::drop_values(exit::RecordRef::Current { id }, bound, &mut first_panic);
    first_panic.resume();
}

/// Forgets this thread: drops all values, discards the at-exit handlers *without
/// running them*, disarms the exit hook (restoring a hijacked return address) and
/// frees the record. The next call that needs a record starts fresh, with a new ID.
///
/// The record is detached before anything drops, so a `Drop` that calls into the crate
/// sees a thread with no record. Called during the exit sequence, it stops the rest of
/// that sequence. If a drop panics, the rest are still dropped and the first panic is
/// resumed afterwards.
pub fn unload() {
    let Some(contents) = record::unload_current() else { return };
    let mut first_panic = FirstPanic::default();
    for handler in contents.handlers {
        exit::guarded(|| drop(handler), &mut first_panic);
    }
    for value in contents.values {
        exit::guarded(|| drop(value), &mut first_panic);
    }
    first_panic.resume();
}

/// How this thread's exit sequence is armed, or what started it once it runs
/// ([`Status::Exited`]). Never creates a record; needs no borrow of it, so it
/// also answers in a signal handler.
pub fn status() -> Status {
    record::published_status()
}
