//! The CFI stack walker: from the current registers, unwind this thread's frames
//! with `.eh_frame` (via gimli) to the bottom of the stack, and report the slot
//! holding the thread start routine's return address.
//!
//! Anything the walker does not fully understand is a [`WalkError`], never a
//! guess: the caller then falls back to a safe mechanism. Stack memory is read
//! only through a bounds-checked [`Memory`]; code objects are found through
//! [`Objects`]. Both are traits so the walk is tested on fake stacks with
//! synthetic CFI.

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
