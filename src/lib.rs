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
//! each function's docs give the exact outcome. The one exception: calling into the
//! crate from a key's `Eq` impl is not supported. It panics with a message, except a
//! typed [`Key`] read that needs no borrow (a key among the first 16 to take a slot
//! index in the process), which returns the value.
//!
//! # Kill switch
//! `HIJACK_TLS=off` (also `0`, `false`, `no`) in the environment makes every thread use
//! the fallback. It is read once, when the crate is loaded.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz;
mod arch;
mod arming;
#[cfg(hijack_supported)]
mod config;
pub mod diagnostics;
mod exit;
mod fallback;
#[cfg(hijack_supported)]
mod forced_unwind;
#[cfg(hijack_supported)]
mod hijack;
mod keyed;
mod miri_shims;
#[cfg(hijack_supported)]
mod pin;
mod record;
#[cfg(hijack_supported)]
mod register_file;
mod report;
mod status;
mod typed;
#[cfg(hijack_supported)]
mod unwind_info;
mod value;
#[cfg(hijack_supported)]
mod walk;

use core::any::Any;
use core::hash::Hash;

pub use exit::MAX_ROUNDS;
pub use status::{Destructor, FallbackReason, Status};
#[cfg(hijack_supported)]
pub use status::{UnwindInfoFailure, WalkFailure};
pub use typed::Key;
pub use value::Value;

/// Stores `value` under `key` for this thread, replacing and dropping any old value
/// under the same key (of any type). Creates the thread's record on first use.
///
/// The old value drops after the record is released, so its `Drop` may call anything
/// here. If the old value is borrowed right now by an enclosing [`with`], it is
/// replaced at once and drops when that borrow ends.
pub fn set<K: Hash + Eq + 'static, V: 'static>(key: K, value: V) {
    let hash = keyed::hash_of(&key);
    // A `V` already stored under `key` that nothing borrows is replaced in place,
    // without allocating; whatever is displaced drops after the record is released.
    let value = match record::with_current_or_create(|r| r.replace_keyed(hash, &key, value)) {
        Ok(old) => {
            drop(key);
            drop(old);
            return;
        }
        Err(value) => value,
    };
    let (unused_key, old) = record::with_current_or_create(|r| r.store_keyed(hash, key, value));
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
    let hash = keyed::hash_of(key);
    // A handle of its own (a pin) keeps the value alive while `f` borrows it.
    let pinned = record::with_current(|r| r.keyed.get::<K, V>(hash, key))??;
    Some(f(&pinned))
}

/// Removes this thread's value under `key` and hands it back, so the caller decides
/// when it drops. Never creates a record.
///
/// If an enclosing [`with`] borrows the value right now, it still leaves the map at
/// once; it stays alive until that borrow ends (and [`Value::downcast`] gives the
/// value back only after that).
pub fn del<K: Hash + Eq + 'static>(key: &K) -> Option<Value> {
    let hash = keyed::hash_of(key);
    let (shared, stored_key) = record::with_current(|r| r.keyed.remove(hash, key))??;
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
        0 => record::with_current_or_create(|r| r.id),
        id => id,
    }
}

/// Registers `f` to run when this thread exits, last registered first, while every
/// stored value is still readable. Creates the record.
///
/// Called from a handler during exit, `f` runs in the same exit sequence. Past
/// [`MAX_ROUNDS`] rounds of handlers registering handlers, new ones are refused
/// (leaked, not run) and counted on stderr.
pub fn at_exit(f: impl FnOnce() + 'static) {
    let handler: record::Handler = Box::new(f);
    record::with_current_or_create(|r| r.push_handler(handler));
}

/// Drops all of this thread's values (keyed and in [`Key`]s), newest first; keeps the
/// at-exit handlers and the ID. Does nothing if the thread has no record.
///
/// Values stored by the drops themselves are kept. If a drop panics, the rest are
/// still dropped and the first panic is resumed afterwards.
pub fn reset() {
    let Some((id, bound)) = record::with_current(|r| (r.id, r.next_seq)) else { return };
    let mut first_panic = None;
    exit::drop_values(exit::Target::Current { id }, bound, &mut |payload| {
        keep_first(&mut first_panic, payload)
    });
    resume(first_panic);
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
    let record = record::current_ptr();
    if record.is_null() {
        return;
    }
    // SAFETY: a non-null CURRENT is this thread's live record.
    let (contents, arming, exiting) = unsafe {
        record::borrow(record, |r| {
            let arming = core::mem::replace(&mut r.arming, arming::Arming::None);
            (r.take_contents(), arming, r.exiting)
        })
    };
    record::set_current(core::ptr::null_mut());
    arming.disarm();
    if !exiting {
        // SAFETY: no longer CURRENT, emptied above, and no exit sequence owns it.
        unsafe { record::free(record) };
    }
    let mut first_panic = None;
    let mut on_panic = |payload| keep_first(&mut first_panic, payload);
    for handler in contents.handlers {
        exit::guarded(|| drop(handler), &mut on_panic);
    }
    for value in contents.values {
        exit::guarded(|| drop(value), &mut on_panic);
    }
    resume(first_panic);
}

/// How this thread's exit sequence is armed. Never creates a record.
pub fn status() -> Status {
    record::with_current(|r| r.arming.status()).unwrap_or(Status::Inactive)
}

fn keep_first(first: &mut Option<Box<dyn Any + Send>>, payload: Box<dyn Any + Send>) {
    if first.is_none() {
        *first = Some(payload);
    } else {
        report::drop_payload(payload);
    }
}

fn resume(panic: Option<Box<dyn Any + Send>>) {
    if let Some(payload) = panic {
        std::panic::resume_unwind(payload);
    }
}
