//! A thread's first use: creates its record and arms the exit sequence, the hijack
//! when it is built, supported and allowed, and always the fallback destructor as
//! the safety net. The public API (`lib.rs`, `key.rs`) calls this layer; the
//! record only stores the [`Arming`] it is given.

use crate::exit::cancel::Deferral;
use crate::record::arming::Arming;
use crate::record::{self, Record};
use crate::status::{Destructor, FallbackReason};

/// Runs `f` on this thread's record, creating and arming one first if needed.
#[inline]
pub(crate) fn with_current_or_create<R>(f: impl FnOnce(&mut Record) -> R) -> R {
    record::with_current_or(f, create_then)
}

/// The first use: creates, arms and installs a record, then runs `f` on it, all
/// with cancellation deferred ([`Deferral`]): an asynchronous cancel can land
/// neither in the walk nor inside a borrow, where it would leave the record
/// half-changed and the borrow flag set. A cancel that arrived meanwhile acts
/// once both are done.
///
/// This frame holds nothing to drop, and the borrow (with its guard) runs in a
/// frame of its own: an asynchronous cancel that lands here, before the deferral
/// or after it, unwinds a frame without cleanups, which is allowed at any
/// instruction (one with a landing-pad table is unwound only at its calls).
#[cold]
#[inline(never)]
fn create_then<R>(f: impl FnOnce(&mut Record) -> R) -> R {
    let deferral = Deferral::new();
    let result = create_and_borrow(f);
    deferral.end();
    result
}

/// Creates the record and runs `f` on it ([`create_then`]'s deferred part).
#[inline(never)]
fn create_and_borrow<R>(f: impl FnOnce(&mut Record) -> R) -> R {
    create().borrow(f)
}

/// Creates, arms and installs a new record for this thread.
#[cold]
#[inline(never)]
fn create() -> record::Created {
    let created = record::create();
    created.set_arming(arm());
    created
}

/// Arms the exit sequence of the record being created on this thread.
fn arm() -> Arming {
    let destructor = super::fallback::arm();
    match hijack(destructor) {
        Ok(arming) => arming,
        Err(reason) => Arming::Fallback { reason, destructor },
    }
}

#[cfg(hijack_supported)]
fn hijack(_safety_net: Destructor) -> Result<Arming, FallbackReason> {
    if !super::config::hijack_allowed() {
        return Err(FallbackReason::DisabledByEnvironment);
    }
    super::hijack::arm().map(Arming::Hijacked)
}

#[cfg(not(hijack_supported))]
fn hijack(_safety_net: Destructor) -> Result<Arming, FallbackReason> {
    if cfg!(feature = "hijack") {
        Err(FallbackReason::UnsupportedTarget)
    } else {
        Err(FallbackReason::FeatureDisabled)
    }
}
