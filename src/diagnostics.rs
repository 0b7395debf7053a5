//! What the hijack sees on this thread, for diagnostics tools such as
//! `cargo run --example doctor`. Nothing here changes the thread.

use core::fmt;

use crate::status::FallbackReason;

/// One frame of this thread's stack as the CFI walk saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkedFrame {
    /// The frame's pc (a return address, or the interrupted pc after a signal frame).
    pub pc: usize,
    /// The frame's canonical frame address.
    pub cfa: usize,
    /// Whether the pc is in libc.
    pub in_libc: bool,
    /// Whether the frame is a signal trampoline.
    pub signal_frame: bool,
}

/// The return slot the hijack would use on this thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReturnSlot {
    /// Stack address of the slot.
    pub slot: usize,
    /// The return address in it, pointer-authentication bits stripped.
    pub original_return: usize,
    /// Whether the frame signs its return address (pointer authentication).
    pub signed: bool,
}

/// Walks this thread's stack the way the hijack does, without hijacking it: every
/// frame, then the chosen slot or why there is none.
pub fn walk_this_thread() -> (Vec<WalkedFrame>, Result<ReturnSlot, FallbackReason>) {
    imp::walk_this_thread()
}

/// The unwinders that were told about the trampoline's unwind info so far (empty
/// until a first thread was hijacked).
pub fn unwinders_aware() -> Vec<&'static str> {
    imp::unwinders_aware()
}

/// Where the walk takes a new thread's stack bounds from (the main thread always
/// asks `pthread_getattr_np`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StackBoundsSource {
    /// `pthread_getattr_np`, until the descriptor's stack fields are located.
    Searching,
    /// `pthread_getattr_np` for good: the fields were not found in one place.
    GaveUp,
    /// The thread descriptor's stack fields at this word offset, located and
    /// confirmed against `pthread_getattr_np`.
    Descriptor {
        /// Word offset of `stackblock` in the descriptor.
        word: usize,
    },
    /// None: the hijack is not built for this target.
    NotBuilt,
}

impl fmt::Display for StackBoundsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Searching => f.write_str(
                "pthread_getattr_np (the descriptor's stack fields are not located yet)",
            ),
            Self::GaveUp => f.write_str(
                "pthread_getattr_np (the descriptor's stack fields were not found in one place)",
            ),
            Self::Descriptor { word } => write!(
                f,
                "the thread descriptor's stack fields at word {word} (located and confirmed \
                 against pthread_getattr_np)"
            ),
            Self::NotBuilt => f.write_str("none (the hijack is not built for this target)"),
        }
    }
}

/// Where the walk takes a new thread's stack bounds from, now.
pub fn stack_bounds_source() -> StackBoundsSource {
    imp::stack_bounds_source()
}

/// Control-flow protections of this thread that the hijack must respect, one line
/// each: pointer authentication, branch target identification, shadow stack.
pub fn protections() -> [(&'static str, &'static str); 3] {
    imp::protections()
}

#[cfg(hijack_supported)]
mod imp {
    use super::{ReturnSlot, StackBoundsSource, WalkedFrame};
    use crate::status::{FallbackReason, WalkFailure};
    use crate::{arch, walk};

    pub(super) fn walk_this_thread() -> (Vec<WalkedFrame>, Result<ReturnSlot, FallbackReason>) {
        let mut frames = Vec::new();
        let result = walk::walk_this_thread(&mut |frame| {
            frames.push(WalkedFrame {
                pc: frame.pc as usize,
                cfa: frame.cfa as usize,
                in_libc: frame.is_libc,
                signal_frame: frame.signal_trampoline,
            });
        });
        let slot = result
            .map(|found| ReturnSlot {
                slot: found.slot as usize,
                original_return: arch::strip_return_address(found.return_address, found.ra_signed)
                    as usize,
                signed: found.ra_signed,
            })
            .map_err(|error| FallbackReason::StackWalk(WalkFailure(error)));
        (frames, slot)
    }

    pub(super) fn unwinders_aware() -> Vec<&'static str> {
        crate::unwind_info::describe()
    }

    pub(super) fn stack_bounds_source() -> StackBoundsSource {
        walk::stack_bounds_source()
    }

    pub(super) fn protections() -> [(&'static str, &'static str); 3] {
        [
            ("pointer authentication", arch::pointer_auth_state()),
            ("branch target identification", arch::branch_target_state()),
            ("shadow stack", arch::shadow_stack_state()),
        ]
    }
}

#[cfg(not(hijack_supported))]
mod imp {
    use super::{ReturnSlot, StackBoundsSource, WalkedFrame};
    use crate::status::FallbackReason;

    pub(super) fn walk_this_thread() -> (Vec<WalkedFrame>, Result<ReturnSlot, FallbackReason>) {
        let reason = if cfg!(feature = "hijack") {
            FallbackReason::UnsupportedTarget
        } else {
            FallbackReason::FeatureDisabled
        };
        (Vec::new(), Err(reason))
    }

    pub(super) fn unwinders_aware() -> Vec<&'static str> {
        Vec::new()
    }

    pub(super) fn stack_bounds_source() -> StackBoundsSource {
        StackBoundsSource::NotBuilt
    }

    pub(super) fn protections() -> [(&'static str, &'static str); 3] {
        let unknown = "not inspected (the hijack is not built for this target)";
        [
            ("pointer authentication", unknown),
            ("branch target identification", unknown),
            ("shadow stack", unknown),
        ]
    }
}

/// How many hijacked threads of this process had their exit sequence started by
/// the safety net instead of the trampoline (the main thread's `exit()` aside):
/// each was also reported on stderr. Nonzero means a return slot the walk chose
/// was not the one the thread returned through (see
/// [`ExitTrigger::Destructor`](crate::ExitTrigger::Destructor)).
pub fn missed_hijacks() -> usize {
    crate::exit::MISSED_HIJACKS.load(core::sync::atomic::Ordering::Relaxed)
}
