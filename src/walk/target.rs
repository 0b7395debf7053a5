//! Picks the target frame while the walk goes on: the outermost frame outside libc
//! whose return address is in libc, followed by the shape of a thread start.
//!
//! Shapes on glibc 2.36 x86_64 (frame → caller):
//! - std or C thread: start routine → `start_thread` (libc) → `clone3` (libc) → end
//! - main thread: `main` → `__libc_start_call_main` (libc) →
//!   `__libc_start_main_impl` (libc) → `_start` (executable) → end
//! - TLS destructor: std's TLS `destroy` → `__call_tls_dtors` (libc) →
//!   `start_thread` → `clone3` → end: three libc frames, so rejected.
//! - ELF constructor of the executable: constructor →
//!   `__libc_start_main_impl` (libc; `call_init` is inlined) → `_start` → end:
//!   one libc frame, so rejected (its return is not a thread exit).
//!
//! A signal handler returning into `__restore_rt` is also "outside libc, returning
//! into libc", but never the outermost such frame.

use super::step::Step;
use super::{ExitSlot, Memory, RuleKind, WalkError};

/// Exactly this many libc frames must follow the target: `start_thread` and
/// `clone3`, or `__libc_start_call_main` and `__libc_start_main_impl`.
const LIBC_TAIL: usize = 2;

/// At most this many non-libc frames may follow them (the main thread's `_start`).
const MAX_OTHER_TAIL: usize = 1;

/// What the walk needs to remember of a frame to make it the target later.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    /// The frame's CFA.
    cfa: u64,
    /// Kind of its return-address rule.
    ra_rule: RuleKind,
    /// Where its return address is saved, for an `Offset(n)` rule.
    ra_slot: Option<u64>,
    /// Its return address as stored.
    return_address: u64,
    /// Whether that return address is signed.
    ra_signed: bool,
}

/// The frames seen after the current candidate.
#[derive(Clone, Copy, Debug, Default)]
struct Tail {
    /// libc frames after the candidate.
    libc: usize,
    /// Non-libc frames after those. (A libc frame never follows one: it would
    /// make the non-libc frame before it the new candidate.)
    other: usize,
}

/// The target search, fed one frame at a time from the innermost outwards.
#[derive(Debug, Default)]
pub(crate) struct Target {
    /// The previous frame: whether its pc was in libc, and its unwind step.
    previous: Option<(bool, Candidate)>,
    /// The outermost candidate so far.
    candidate: Option<Candidate>,
    /// The frames after it.
    tail: Tail,
}

impl Target {
    /// Records the next frame out: whether its pc is in libc, and its step.
    pub(crate) fn observe(&mut self, is_libc: bool, step: &Step) {
        if let Some((false, previous)) = self.previous
            && is_libc
        {
            // The previous frame is outside libc and returns into it.
            self.candidate = Some(previous);
            self.tail = Tail::default();
        }
        if self.candidate.is_some() {
            if is_libc {
                self.tail.libc += 1;
            } else {
                self.tail.other += 1;
            }
        }
        let this = Candidate {
            cfa: step.cfa,
            ra_rule: step.ra_rule,
            ra_slot: step.ra_slot,
            return_address: step.return_address,
            ra_signed: step.ra_signed,
        };
        self.previous = Some((is_libc, this));
    }

    /// Ends the search after `frames` frames: checks the tail's shape and the
    /// target's slot, and reads the slot back through `mem`.
    pub(crate) fn finish(
        self,
        frames: usize,
        mem: &mut impl Memory,
    ) -> Result<ExitSlot, WalkError> {
        let target = self.candidate.ok_or(WalkError::TargetNotFound)?;
        let tail = self.tail;
        if tail.libc != LIBC_TAIL || tail.other > MAX_OTHER_TAIL {
            return Err(WalkError::NotThreadStart {
                libc_frames: tail.libc,
                other_frames: tail.other,
            });
        }
        let slot = match (target.ra_rule, target.ra_slot) {
            (RuleKind::Offset, Some(slot)) => slot,
            (rule, _) => return Err(WalkError::SlotRuleNotOffset { rule }),
        };
        if mem.read_u64(slot)? != target.return_address {
            return Err(WalkError::SlotMismatch);
        }
        Ok(ExitSlot {
            slot,
            return_address: target.return_address,
            cfa: target.cfa,
            ra_signed: target.ra_signed,
            frames,
        })
    }
}
