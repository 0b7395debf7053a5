//! How a record's exit sequence is armed (the state; `exit/arm.rs` chooses it):
//! the [`Hijack`] handle of a hijacked return address, or the fallback
//! destructor alone, and this thread's `FIRED` flag.

#[cfg(hijack_supported)]
use core::cell::Cell;

use crate::status::{Destructor, FallbackReason, Status};

/// How a record's exit sequence is armed.
pub(crate) enum Arming {
    /// Not armed yet (only while the record is being created) or disarmed by `unload`.
    None,
    /// The return address was hijacked; the fallback destructor is the safety net.
    #[cfg(hijack_supported)]
    Hijacked(Hijack),
    /// Only the fallback destructor runs the exit sequence.
    Fallback { reason: FallbackReason, destructor: Destructor },
}

impl Arming {
    /// The public view of this arming.
    pub(crate) fn status(&self) -> Status {
        match self {
            Self::None => Status::Inactive,
            #[cfg(hijack_supported)]
            Self::Hijacked(hijack) => hijack.status(),
            Self::Fallback { reason, destructor } => {
                Status::Fallback { reason: *reason, destructor: *destructor }
            }
        }
    }

    /// Whether something is armed that will run the exit sequence.
    pub(crate) fn runs_exit_sequence(&self) -> bool {
        !matches!(
            self,
            Self::Fallback { destructor: Destructor::Unarmed | Destructor::TooLate, .. }
        )
    }

    /// Whether the return address was hijacked.
    pub(crate) fn is_hijacked(&self) -> bool {
        #[cfg(hijack_supported)]
        if let Self::Hijacked(_) = self {
            return true;
        }
        false
    }

    /// Undoes the hijack, if any (the fallback destructor cannot be unregistered; it
    /// finds no record and does nothing).
    pub(crate) fn disarm(self) {
        #[cfg(hijack_supported)]
        if let Self::Hijacked(hijack) = self {
            hijack.restore();
        }
    }
}

/// A live hijack of this thread's bottom return address (`exit/hijack.rs` makes it).
#[cfg(hijack_supported)]
pub(crate) struct Hijack {
    /// The slot whose word was replaced.
    pub(crate) slot: HijackedSlot,
    /// The original return address, stripped of any pointer-authentication bits.
    pub(crate) original_return: usize,
    /// The slot's original word (signed, if the frame signs its return address).
    pub(crate) stored_original: usize,
    /// The trampoline entry.
    pub(crate) trampoline: usize,
    /// The word written to the slot: the entry, signed like the original.
    pub(crate) stored_trampoline: usize,
}

/// The stack word holding the target frame's return address, as the walk found
/// it. Only this thread reads or writes it, and only while the frame that owns it
/// is live.
#[cfg(hijack_supported)]
#[derive(Clone, Copy)]
pub(crate) struct HijackedSlot(usize);

#[cfg(hijack_supported)]
impl HijackedSlot {
    /// The slot at `address`, which the walk proved to be this thread's bottom
    /// return slot: inside its stack, 8-aligned, in a frame live while the thread
    /// runs anything above it.
    pub(crate) fn from_walk(address: usize) -> Self {
        Self(address)
    }

    /// The slot's address.
    pub(crate) fn address(self) -> usize {
        self.0
    }

    /// Reads the slot's word.
    pub(crate) fn read(self) -> usize {
        // SAFETY: the walk proved the slot lies inside this thread's stack, is
        // 8-aligned, and belongs to an outer frame that is live while this thread
        // runs anything above it (a `HijackedSlot` is only used on its own thread
        // before the trampoline fires).
        unsafe { (self.0 as *const usize).read_volatile() }
    }

    /// Writes the slot's word.
    pub(crate) fn write(self, value: usize) {
        // SAFETY: as in `read`; the word is a return address no Rust reference
        // points at, read only by the owning frame's `ret`.
        unsafe { (self.0 as *mut usize).write_volatile(value) }
    }
}

#[cfg(hijack_supported)]
thread_local! {
    /// Set once the trampoline fired on this thread (or glibc's forced unwind
    /// reached its cleanup buffer): its slot is gone, and records created later
    /// (TLS destructors) must use the fallback.
    static FIRED: Cell<bool> = const { Cell::new(false) };
}

/// Sets this thread's `FIRED` flag: it is past its start routine, so no more
/// hijacks and no restores.
#[cfg(hijack_supported)]
pub(crate) fn mark_fired() {
    FIRED.with(|fired| fired.set(true));
}

/// Whether this thread's `FIRED` flag is set (see [`mark_fired`]).
#[cfg(hijack_supported)]
pub(crate) fn has_fired() -> bool {
    FIRED.with(Cell::get)
}

#[cfg(hijack_supported)]
impl Hijack {
    /// The public view.
    pub(crate) fn status(&self) -> Status {
        Status::Hijacked {
            slot: self.slot.address(),
            original_return: self.original_return,
            trampoline: self.trampoline,
        }
    }

    /// Puts the original return address back, if the trampoline has not fired and
    /// the slot still points at it.
    pub(crate) fn restore(self) {
        if !has_fired() && self.slot.read() == self.stored_trampoline {
            self.slot.write(self.stored_original);
        }
    }
}
