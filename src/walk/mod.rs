//! The CFI stack walker: from the current registers, unwind this thread's frames
//! with `.eh_frame` (via gimli) to the bottom of the stack, and report the slot
//! holding the thread start routine's return address.
//!
//! Anything the walker does not fully understand is a [`WalkError`], never a
//! guess: the caller then falls back to a safe mechanism. Stack memory is read
//! only through a bounds-checked [`Memory`]; code objects are found through
//! [`Objects`]. Both are traits so the walk is tested on fake stacks with
//! synthetic CFI.
//!
//! The map, top to bottom (each file depends only on files below it or in its
//! own folder; `.ci/import_cycles.py` checks there is no circle):
//!
//! - [`walker`]: the walk's loop, frame by frame, with the caches in front.
//! - [`target`]: which frame is the thread start routine's, checked, and its
//!   [`ExitSlot`].
//! - `cache/`: the row and recipe caches, never waited for.
//! - `cfi/`: the CFI core (FDE lookup, rules, recipes, one step, expressions);
//!   `#![forbid(unsafe_code)]`.
//! - [`source`]: the two seams the core reads through, [`Memory`] and
//!   [`Objects`], with what they hand out ([`ObjectInfo`], [`StackTops`]).
//! - `os/`: the real seams, the live stack and the loaded objects: all of the
//!   walk's `unsafe`. One upward reference: `os/thread_stack.rs` names
//!   `diagnostics::StackBoundsSource` (cheaper than a twin enum).
//! - [`error`]: [`WalkError`], which every file may return.
//! - `fake.rs` (fake stacks and objects for tests and fuzzing), `fuzz.rs` (the
//!   fuzz entry points behind `crate::__fuzz`), `tests/`.

mod cache;
mod cfi;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
mod fake;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz;
mod os;
mod source;
mod target;
mod walker;

#[cfg(test)]
mod tests;

pub(crate) use error::{ExprIssue, RuleKind, WalkError};
pub(crate) use os::extent::{extent_of, libc_choice};
pub(crate) use os::headers::in_main_program;
pub(crate) use os::libc_object::LibcRule;
pub(crate) use os::loaded::LoadedObjects;
// Interface for diagnostics and tests; not every build path names them.
#[allow(unused_imports)]
pub(crate) use os::loaded::Strategy;
pub(crate) use os::stack_memory::StackMemory;
pub(crate) use os::thread_stack::source as stack_bounds_source;
pub(crate) use source::{Memory, ObjectInfo, Objects, StackTops};
#[allow(unused_imports)]
pub(crate) use target::ExitSlot;
pub(crate) use walker::walk_this_thread;
#[allow(unused_imports)]
pub(crate) use walker::{Frame, MAX_FRAMES, find_exit_slot};
