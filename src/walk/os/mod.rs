//! What the walk reads from the OS and the loader, and so all of the walk's
//! `unsafe`: the live stack, its bounds and top, and the loaded objects with
//! their program headers and unwind sections.
//!
//! - Stack: [`stack_memory`] (bounds-checked reads), [`thread_stack`] (bounds),
//!   [`stack_top`] (where the thread's first frames must be).
//! - Objects: [`loaded`] (the real [`Objects`](super::Objects)), found by
//!   [`find_object`] (`_dl_find_object`) or [`phdr`] (`dl_iterate_phdr`),
//!   [`headers`] and [`segments`] (program headers), [`mapped`] (sections as
//!   bounded slices), [`libc_object`] (which object is libc), [`after_fork`]
//!   (whether the loader lock may be held forever), [`extent`] (the doctor's
//!   view of one lookup).

pub(super) mod after_fork;
pub(super) mod extent;
pub(super) mod find_object;
pub(super) mod headers;
pub(super) mod libc_object;
pub(super) mod loaded;
pub(super) mod mapped;
pub(super) mod phdr;
pub(super) mod segments;
pub(super) mod stack_memory;
pub(super) mod stack_top;
pub(super) mod thread_stack;
