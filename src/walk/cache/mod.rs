//! Caches that make a repeated walk cheap, each keyed so that it never hands out
//! stale rules, and none of which the walk ever waits for.
//!
//! - [`rows`]: unwind rules by pc, checked against the object's CIE and FDE bytes.
//! - [`recipes`]: compiled rows by pc, valid while no object is loaded or unloaded.
//! - [`pc_hash`]: the hash both pick a pc's set with.
//! - [`try_lock`]: the never-waiting lock of the row cache's sets (the only
//!   `unsafe` here; the rest of the folder denies it).

#![deny(unsafe_code)]

pub(super) mod pc_hash;
pub(super) mod recipes;
pub(super) mod rows;
#[allow(unsafe_code)]
pub(super) mod try_lock;
