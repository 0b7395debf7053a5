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

/// The loaded object holding an address, as the walk's lookup sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectExtent {
    /// The lookup the walk uses here: `_dl_find_object` or `dl_iterate_phdr`.
    pub lookup: &'static str,
    /// `[start, end)` as that lookup reported it (for `_dl_find_object`, one
    /// segment of a main program with gaps, the whole span of a shared object).
    pub reported: (usize, usize),
    /// Where the segments were read from.
    pub segments_from: &'static str,
    /// The `PT_LOAD` segments: `[start, end)` and whether each is readable.
    pub segments: Vec<(usize, usize, bool)>,
    /// `.eh_frame_hdr`'s address (`PT_GNU_EH_FRAME`), if the object has one.
    pub eh_frame_hdr: Option<usize>,
}

/// The object holding `address` and the extent the walk would use for it, or why
/// the walk could not use it.
pub fn object_extent(address: usize) -> Result<ObjectExtent, FallbackReason> {
    imp::object_extent(address)
}

/// Which object the walk takes for libc, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LibcChoice {
    /// The address of libc's own `pthread_create` (libc is the object holding it).
    pub pthread_create: usize,
    /// The rule that found it.
    pub rule: &'static str,
}

/// Which object the walk takes for libc, and by which rule; `None` where the
/// hijack is not built.
pub fn libc_choice() -> Option<LibcChoice> {
    imp::libc_choice()
}

/// Control-flow protections of this thread that the hijack must respect, one line
/// each: pointer authentication, branch target identification, shadow stack.
pub fn protections() -> [(&'static str, String); 3] {
    imp::protections()
}

/// The running kernel's release, as `uname -r` prints it (`?` if `uname` fails).
pub fn kernel_release() -> String {
    // SAFETY: an all-zero `utsname` is a valid out-value.
    let mut name: libc::utsname = unsafe { core::mem::zeroed() };
    // SAFETY: `uname` only writes the struct it is given.
    if unsafe { libc::uname(&mut name) } != 0 {
        return "?".to_owned();
    }
    // SAFETY: the kernel NUL-terminates `release` within its 65 bytes.
    let release = unsafe { core::ffi::CStr::from_ptr(name.release.as_ptr()) };
    release.to_string_lossy().into_owned()
}

#[cfg(hijack_supported)]
mod imp {
    use super::{LibcChoice, ObjectExtent, ReturnSlot, StackBoundsSource, WalkedFrame};
    use crate::status::{FallbackReason, WalkFailure};
    use crate::{arch, walk};

    pub(super) fn object_extent(address: usize) -> Result<ObjectExtent, FallbackReason> {
        let extent = walk::extent_of(address as u64)
            .map_err(|error| FallbackReason::StackWalk(WalkFailure(error)))?;
        Ok(ObjectExtent {
            lookup: extent.lookup,
            reported: (extent.reported.0 as usize, extent.reported.1 as usize),
            segments_from: extent.source,
            segments: extent
                .segments
                .loads()
                .iter()
                .map(|s| (s.start as usize, s.end as usize, s.readable))
                .collect(),
            eh_frame_hdr: extent.segments.eh_frame_hdr().map(|a| a as usize),
        })
    }

    pub(super) fn libc_choice() -> Option<LibcChoice> {
        let (address, rule) = walk::libc_choice();
        let rule = match rule {
            walk::LibcRule::LocalScope(name) if name == c"libc.so.6" => {
                "dlsym in the local scope of the loaded libc.so.6 (dlopen RTLD_NOLOAD)"
            }
            walk::LibcRule::LocalScope(_) => {
                "dlsym in the local scope of the loaded libpthread.so.0 (no libc.so.6 loaded)"
            }
            walk::LibcRule::GlobalScope => {
                "the global scope's pthread_create (neither libc.so.6 nor libpthread.so.0 loaded)"
            }
        };
        Some(LibcChoice { pthread_create: address as usize, rule })
    }

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

    pub(super) fn protections() -> [(&'static str, String); 3] {
        [
            ("pointer authentication", arch::pointer_auth_state().to_owned()),
            ("branch target identification", arch::branch_target_state().to_owned()),
            ("shadow stack", arch::shadow_stack_state(&super::kernel_release())),
        ]
    }
}

#[cfg(not(hijack_supported))]
mod imp {
    use super::{LibcChoice, ObjectExtent, ReturnSlot, StackBoundsSource, WalkedFrame};
    use crate::status::FallbackReason;

    /// Why nothing is walked in this build.
    fn not_built() -> FallbackReason {
        if cfg!(feature = "hijack") {
            FallbackReason::UnsupportedTarget
        } else {
            FallbackReason::FeatureDisabled
        }
    }

    pub(super) fn object_extent(_address: usize) -> Result<ObjectExtent, FallbackReason> {
        Err(not_built())
    }

    pub(super) fn libc_choice() -> Option<LibcChoice> {
        None
    }

    pub(super) fn walk_this_thread() -> (Vec<WalkedFrame>, Result<ReturnSlot, FallbackReason>) {
        (Vec::new(), Err(not_built()))
    }

    pub(super) fn unwinders_aware() -> Vec<&'static str> {
        Vec::new()
    }

    pub(super) fn stack_bounds_source() -> StackBoundsSource {
        StackBoundsSource::NotBuilt
    }

    pub(super) fn protections() -> [(&'static str, String); 3] {
        let unknown = || "not inspected (the hijack is not built for this target)".to_owned();
        [
            ("pointer authentication", unknown()),
            ("branch target identification", unknown()),
            ("shadow stack", unknown()),
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
