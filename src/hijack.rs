//! The stack hijack: finds the thread's bottom return slot and points it at the
//! exit trampoline.

use crate::status::{FallbackReason, Status};

/// A live hijack of this thread's bottom return address.
pub(crate) struct Hijack {
    slot: usize,
    original_return: usize,
    trampoline: usize,
}

impl Hijack {
    pub(crate) fn status(&self) -> Status {
        Status::Hijacked {
            slot: self.slot,
            original_return: self.original_return,
            trampoline: self.trampoline,
        }
    }

    /// Puts the original return address back.
    pub(crate) fn restore(self) {}
}

/// Hijacks this thread's bottom return address.
pub(crate) fn arm() -> Result<Hijack, FallbackReason> {
    Err(FallbackReason::UnsupportedTarget)
}
