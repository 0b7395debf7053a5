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
//!
//! The target's slot comes from CFI, which may lie; before it is trusted it must
//! be where the ISA's calls and frames keep a return address, and the libc frames
//! below it must end exactly where glibc started the thread, a place known from
//! outside the CFI ([`StackTops`](super::StackTops)). NOTES.md, "Slot checks".

use super::cfi::fde;
use super::cfi::step::Step;
use super::{Memory, Objects, RuleKind, WalkError};
use crate::arch;

/// Exactly this many libc frames must follow the target: `start_thread` and
/// `clone3`, or `__libc_start_call_main` and `__libc_start_main_impl`.
const LIBC_TAIL: usize = 2;

/// At most this many non-libc frames may follow them (the main thread's `_start`).
const MAX_OTHER_TAIL: usize = 1;

/// The outermost frames kept for a statically linked program, where every frame
/// is in libc: the main thread's `main`, `__libc_start_call_main`,
/// `__libc_start_main` and `_start`.
const STATIC_TAIL: usize = 4;

/// Where the thread start routine's return address lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ExitSlot {
    /// Stack address holding the target frame's return address.
    pub(crate) slot: u64,
    /// The return address found there (as stored: signed where the ISA signs).
    pub(crate) return_address: u64,
    /// The target frame's CFA.
    pub(crate) cfa: u64,
    /// Whether the return address is signed (always false on x86_64).
    pub(crate) ra_signed: bool,
    /// Number of frames walked, the target and the frames below it included.
    pub(crate) frames: usize,
}

/// What the walk needs to remember of a frame to make it the target later.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    /// The address the frame's rules were looked up at (inside its function).
    pc: u64,
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
    /// The frame's own stack pointer: its callee's CFA (`None` for the first
    /// frame, which is never a thread's start routine).
    sp: Option<u64>,
    /// The caller's stack pointer as the frame's rules restore it.
    caller_sp: Option<u64>,
    /// Where the frame saves its frame-record register, if it does.
    fp_slot: Option<u64>,
}

/// The frames seen after the current candidate.
#[derive(Clone, Copy, Debug, Default)]
struct Tail {
    /// libc frames after the candidate.
    libc: usize,
    /// Non-libc frames after those. (A libc frame never follows one: it would
    /// make the non-libc frame before it the new candidate.)
    other: usize,
    /// The CFAs of the first [`LIBC_TAIL`] libc frames after the candidate.
    libc_cfas: [u64; LIBC_TAIL],
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
    /// The last [`STATIC_TAIL`] frames, outermost last (for a statically linked
    /// program).
    recent: [Option<Candidate>; STATIC_TAIL],
}

impl Target {
    /// Records the next frame out: whether its pc is in libc, its step, its stack
    /// pointer (its callee's CFA, `None` for the first frame), and the address
    /// its rules were looked up at.
    pub(crate) fn observe(&mut self, is_libc: bool, step: &Step, sp: Option<u64>, pc: u64) {
        if let Some((false, previous)) = self.previous
            && is_libc
        {
            // The previous frame is outside libc and returns into it.
            self.candidate = Some(previous);
            self.tail = Tail::default();
        }
        if self.candidate.is_some() {
            if is_libc {
                if let Some(cfa) = self.tail.libc_cfas.get_mut(self.tail.libc) {
                    *cfa = step.cfa;
                }
                self.tail.libc += 1;
            } else {
                self.tail.other += 1;
            }
        }
        let this = Candidate {
            pc,
            cfa: step.cfa,
            ra_rule: step.ra_rule,
            ra_slot: step.ra_slot,
            return_address: step.return_address,
            ra_signed: step.ra_signed,
            sp,
            caller_sp: step.caller_sp,
            fp_slot: step.fp_slot,
        };
        self.previous = Some((is_libc, this));
        self.recent.rotate_left(1);
        self.recent[STATIC_TAIL - 1] = Some(this);
    }

    /// Ends the search after `frames` frames: checks the tail's shape, the
    /// target's slot against the ISA and the tail's end against `mem`'s
    /// [`StackTops`](super::StackTops), and reads the slot back through `mem`.
    /// Where libc is the executable, the tail is told apart by
    /// [`static_target`] instead, with `objects` for the target's function.
    pub(crate) fn finish(
        self,
        frames: usize,
        mem: &mut impl Memory,
        objects: &mut impl Objects,
    ) -> Result<ExitSlot, WalkError> {
        let target = if objects.libc_is_executable() {
            static_target(&self.recent, mem, objects)?
        } else {
            let target = self.candidate.ok_or(WalkError::TargetNotFound)?;
            let tail = self.tail;
            if tail.libc != LIBC_TAIL || tail.other > MAX_OTHER_TAIL {
                return Err(WalkError::NotThreadStart {
                    libc_frames: tail.libc,
                    other_frames: tail.other,
                });
            }
            check_stack_top(tail, mem)?;
            target
        };
        let slot = match (target.ra_rule, target.ra_slot) {
            (RuleKind::Offset, Some(slot)) => slot,
            (rule, _) => return Err(WalkError::SlotRuleNotOffset { rule }),
        };
        check_slot(&target, slot)?;
        check_signature(&target)?;
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

/// The target in a statically linked program, from the outermost frames
/// `recent` (outermost last). Every frame is in the executable, which is libc, so
/// the thread start is recognised by two facts from outside the CFI: the frame
/// whose CFA is the stack top glibc started the thread on (`start_thread`; the
/// main thread's `__libc_start_main`) sits at its fixed place below the target,
/// and the target's function is the one glibc called there: the start routine
/// `pthread_create` recorded in the thread's descriptor, or `main`. That refuses
/// a TLS destructor (`__call_tls_dtors` is not the start routine) and an ELF
/// constructor (not `main`). NOTES.md, "Static glibc".
fn static_target(
    recent: &[Option<Candidate>; STATIC_TAIL],
    mem: &impl Memory,
    objects: &mut impl Objects,
) -> Result<Candidate, WalkError> {
    let tops = mem.stack_tops();
    // Thread: target, start_thread, the clone child. Main thread: main,
    // __libc_start_call_main, __libc_start_main, _start.
    let (target, start, top, expected) = match (tops.thread, tops.main) {
        (Some(top), _) => (recent[1], recent[2], top, tops.start_routine),
        (None, Some(top)) => (recent[0], recent[2], top, tops.main_function),
        (None, None) => return Err(WalkError::StackTopUnknown),
    };
    let (Some(target), Some(start)) = (target, start) else {
        return Err(WalkError::TargetNotFound);
    };
    if target.sp.is_none() {
        return Err(WalkError::TargetNotFound);
    }
    if start.cfa != top {
        return Err(WalkError::NotAtStackTop { cfa: start.cfa, top });
    }
    let expected = expected.ok_or(WalkError::StartFunctionUnknown)?;
    let function = fde::function_start(&objects.find(target.pc)?, target.pc)?;
    if function != expected {
        return Err(WalkError::NotStartFunction { function, expected });
    }
    Ok(target)
}

/// The slot must be where the ISA keeps a return address: where a call leaves it
/// (x86_64: CFA - 8), inside the frame (between its sp and its CFA), right above
/// the frame pointer when the frame saves one (aarch64's frame record); and the
/// caller's sp must be the CFA, which is what "CFA" means at a call site.
fn check_slot(target: &Candidate, slot: u64) -> Result<(), WalkError> {
    let cfa = target.cfa;
    let offset = slot.wrapping_sub(cfa) as i64;
    if let Some(expected) = arch::CALL_RETURN_SLOT
        && offset != expected
    {
        return Err(WalkError::SlotNotAtCall { offset, expected });
    }
    let below_cfa = slot.checked_add(8).is_some_and(|end| end <= cfa);
    if let Some(sp) = target.sp
        && !(below_cfa && slot >= sp)
    {
        return Err(WalkError::SlotOutsideFrame { offset, frame_size: cfa.wrapping_sub(sp) });
    }
    if let Some(fp_slot) = target.fp_slot
        && fp_slot.checked_add(8) != Some(slot)
    {
        let fp_offset = fp_slot.wrapping_sub(cfa) as i64;
        return Err(WalkError::SplitFrameRecord { fp_offset, ra_offset: offset });
    }
    if target.caller_sp != Some(cfa) {
        return Err(WalkError::CallerSpNotCfa { sp: target.caller_sp, cfa });
    }
    Ok(())
}

/// A signed return address must be signed for this frame: `paciasp` signs x30
/// with the sp at entry, the frame's real CFA, as the modifier, so re-signing
/// the stripped address with the walk's CFA must give the stored word back.
/// Signing uses the calling thread's keys, so this holds only on the thread that
/// owns the frame (the walk runs there). Without PAC both are the plain address
/// and this check passes whatever the CFA (NOTES.md, "Slot checks").
fn check_signature(target: &Candidate) -> Result<(), WalkError> {
    if !target.ra_signed {
        return Ok(());
    }
    let stored = target.return_address;
    let original = arch::strip_return_address(stored, true);
    if arch::sign_return_address(original, target.cfa) != stored {
        return Err(WalkError::SignedForAnotherCfa { cfa: target.cfa });
    }
    Ok(())
}

/// The libc frames below the target must end where glibc started the thread:
/// `start_thread`'s CFA (a thread) or `__libc_start_main`'s (the main thread,
/// whose tail has `_start` too) is the place `mem` knows from outside the CFI.
fn check_stack_top(tail: Tail, mem: &impl Memory) -> Result<(), WalkError> {
    let tops = mem.stack_tops();
    let (found, top) = if tail.other == 0 {
        (tail.libc_cfas[0], tops.thread)
    } else {
        (tail.libc_cfas[1], tops.main)
    };
    let top = top.ok_or(WalkError::StackTopUnknown)?;
    if found != top {
        return Err(WalkError::NotAtStackTop { cfa: found, top });
    }
    Ok(())
}
