//! The CFI stack walker: from the current registers, unwind this thread's frames
//! with `.eh_frame` (via gimli) to the bottom of the stack, and report the slot
//! holding the thread start routine's return address.
//!
//! Anything the walker does not fully understand is a [`WalkError`], never a
//! guess: the caller then falls back to a safe mechanism. Stack memory is read
//! only through a bounds-checked [`Memory`]; code objects are found through
//! [`Objects`]. Both are traits so the walk is tested on fake stacks with
//! synthetic CFI.

mod after_fork;
mod cache;
mod error;
mod expr;
mod extent;
#[cfg(any(test, feature = "fuzzing"))]
mod fake;
mod find_object;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz;
mod headers;
mod libc_object;
mod loaded;
mod mapped;
mod memory;
mod objects;
mod phdr;
mod recipe;
mod recipe_cache;
mod row;
mod rules;
mod segments;
mod stack_top;
mod step;
mod storage;
mod target;
mod thread_stack;
mod try_lock;
mod walker;

#[cfg(test)]
mod tests;

pub(crate) use error::{ExprIssue, RuleKind, WalkError};
pub(crate) use extent::{extent_of, libc_choice};
pub(crate) use headers::in_main_program;
pub(crate) use libc_object::LibcRule;
pub(crate) use loaded::LoadedObjects;
// Interface for diagnostics and tests; not every build path names them.
#[allow(unused_imports)]
pub(crate) use loaded::Strategy;
pub(crate) use memory::{Memory, StackMemory};
pub(crate) use objects::{ObjectInfo, Objects};
pub(crate) use stack_top::StackTops;
#[allow(unused_imports)]
pub(crate) use target::ExitSlot;
pub(crate) use thread_stack::source as stack_bounds_source;
pub(crate) use walker::walk_this_thread;
#[allow(unused_imports)]
pub(crate) use walker::{Frame, MAX_FRAMES, find_exit_slot};
