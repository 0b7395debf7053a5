//! The CFI core: from one object's `.eh_frame` and a frame's registers, the
//! caller's registers. Pure computation over byte slices and the
//! [`Memory`](super::Memory) seam, so no `unsafe` (forbidden here): the OS
//! reads live in `os/`, the caches in `cache/`.
//!
//! - [`storage`]: fixed-capacity storage for gimli, so nothing allocates.
//! - [`fde`]: the FDE for a pc from the search table, and its row (uncached).
//! - [`rules`]: the compacted, `Copy` rules of a row that a step reads.
//! - [`recipe`]: a row compiled for the fast path.
//! - [`step`]: one row applied to a frame's registers.
//! - [`expr`]: the DWARF expressions CFI may hold.

#![forbid(unsafe_code)]

pub(super) mod expr;
pub(super) mod fde;
pub(super) mod recipe;
pub(super) mod rules;
pub(super) mod step;
pub(super) mod storage;
