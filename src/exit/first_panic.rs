//! The outcome of `reset`'s and `unload`'s loops of drops: the first panic (or
//! the first forced unwind, which wins), resumed once the loop is done.

use core::any::Any;

use super::Outcome;
use super::cancel::CaughtUnwind;
use crate::report;

/// Keeps the first panic of a loop of drops (or the first forced unwind, which
/// wins), to resume once the loop is done.
#[derive(Default)]
pub(crate) struct FirstPanic {
    panic: Option<Box<dyn Any + Send>>,
    forced_unwind: Option<CaughtUnwind>,
}

impl Outcome for FirstPanic {
    fn panicked(&mut self, payload: Box<dyn Any + Send>) {
        if self.panic.is_none() {
            self.panic = Some(payload);
        } else {
            report::drop_payload(payload);
        }
    }

    fn forced_unwind(&mut self, caught: CaughtUnwind) {
        // A second one inside the same loop is the same thread exit again.
        self.forced_unwind.get_or_insert(caught);
    }
}

impl FirstPanic {
    /// Resumes the forced unwind (the thread leaves, as the drop asked), or else
    /// the first panic. Called by `reset` and `unload` only.
    pub(crate) fn resume(self) {
        if let Some(caught) = self.forced_unwind {
            if let Some(payload) = self.panic {
                report::drop_payload(payload);
            }
            // SAFETY: `reset` and `unload` are called from Rust code, which a
            // `pthread_exit` in a value's drop would have unwound anyway.
            unsafe { caught.resume() }
        }
        if let Some(payload) = self.panic {
            std::panic::resume_unwind(payload);
        }
    }
}
