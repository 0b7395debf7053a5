//! Chooses how a new record's exit sequence is armed: the hijack when it is built,
//! supported and allowed, and always the fallback destructor as the safety net.

use crate::status::{Destructor, FallbackReason, Status};

/// How a record's exit sequence is armed.
pub(crate) enum Arming {
    /// Not armed yet (only while the record is being created) or disarmed by `unload`.
    None,
    /// The return address was hijacked; the fallback destructor is the safety net.
    #[cfg(hijack_supported)]
    Hijacked(crate::hijack::Hijack),
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

/// Arms the exit sequence of the record being created on this thread.
pub(crate) fn arm() -> Arming {
    let destructor = crate::fallback::arm();
    match hijack(destructor) {
        Ok(arming) => arming,
        Err(reason) => Arming::Fallback { reason, destructor },
    }
}

#[cfg(hijack_supported)]
fn hijack(_safety_net: Destructor) -> Result<Arming, FallbackReason> {
    if !crate::config::hijack_allowed() {
        return Err(FallbackReason::DisabledByEnvironment);
    }
    crate::hijack::arm().map(Arming::Hijacked)
}

#[cfg(not(hijack_supported))]
fn hijack(_safety_net: Destructor) -> Result<Arming, FallbackReason> {
    if cfg!(feature = "hijack") {
        Err(FallbackReason::UnsupportedTarget)
    } else {
        Err(FallbackReason::FeatureDisabled)
    }
}
