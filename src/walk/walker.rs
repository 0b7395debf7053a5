//! The walk: from captured registers, unwind frame after frame to the end of the
//! stack and report the slot holding the thread start routine's return address.

use super::cache::recipes::{RECIPES, RecipeCache};
use super::cache::rows::{self, ROWS, RowCache};
use super::cfi::fde::Located;
use super::cfi::recipe::Recipe;
use super::cfi::rules::Rules;
use super::cfi::step::{self, Step};
use super::cfi::storage::UnwindCtx;
use super::target::{ExitSlot, Target};
use super::{LoadedObjects, Memory, Objects, StackMemory, WalkError};
use crate::arch::{self, Context};

/// Most frames a walk visits. First use may happen 10,000 frames deep.
pub(crate) const MAX_FRAMES: usize = 100_000;

/// One frame as the walk saw it, for diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    /// 0 for the captured frame, counting outwards.
    pub(crate) index: usize,
    /// The frame's pc: the captured pc, a return address, or (after a signal
    /// frame) the interrupted instruction.
    pub(crate) pc: u64,
    /// The frame's canonical frame address.
    pub(crate) cfa: u64,
    /// Whether the pc is in libc.
    pub(crate) is_libc: bool,
    /// Lowest mapped address of the object containing the pc.
    pub(crate) object_start: u64,
    /// Whether the frame is a signal trampoline (CIE augmentation `S`).
    pub(crate) signal_trampoline: bool,
}

/// Walks this thread's own stack from here, through its real memory and loaded
/// objects: [`find_exit_slot`] on the registers of the caller.
pub(crate) fn walk_this_thread(visit: &mut impl FnMut(&Frame)) -> Result<ExitSlot, WalkError> {
    let bounds = StackMemory::room()?;
    arch::with_context(|ctx| {
        let mut memory = StackMemory::on_stack(ctx, bounds)?;
        let mut objects = LoadedObjects::new();
        find_exit_slot(ctx, &mut memory, &mut objects, visit)
    })
}

/// Walks the stack described by `ctx` to its end and returns the exit slot: the
/// return-address slot of the outermost frame outside libc that returns into
/// libc, provided only a thread start's frames lie below it. `visit` sees every
/// frame, innermost first. Unwind rules come from the process's recipe and row
/// caches where they have them.
pub(crate) fn find_exit_slot(
    ctx: &Context,
    mem: &mut impl Memory,
    objects: &mut impl Objects,
    visit: &mut impl FnMut(&Frame),
) -> Result<ExitSlot, WalkError> {
    find_exit_slot_cached(
        Caches { rows: &ROWS, recipes: &RECIPES },
        MAX_FRAMES,
        ctx,
        mem,
        objects,
        visit,
    )
}

/// The caches a walk reads and fills.
#[derive(Clone, Copy)]
pub(crate) struct Caches<'a> {
    /// Rules by pc, checked against the object's bytes.
    pub(crate) rows: &'a RowCache,
    /// Compiled rows by pc, valid while no object is loaded or unloaded.
    pub(crate) recipes: &'a RecipeCache,
}

/// [`find_exit_slot`] with the caches `caches`, giving up after `max_frames`
/// frames (the fuzz target walks fewer than [`MAX_FRAMES`] to stay fast).
///
/// A frame whose pc has a recipe under the objects' current load generation is
/// unwound from it alone; any other goes through the object lookup and the row
/// cache (or `.eh_frame`), and its row is compiled into a recipe if it can be.
pub(crate) fn find_exit_slot_cached(
    caches: Caches<'_>,
    max_frames: usize,
    ctx: &Context,
    mem: &mut impl Memory,
    objects: &mut impl Objects,
    visit: &mut impl FnMut(&Frame),
) -> Result<ExitSlot, WalkError> {
    // The current frame's registers and its caller's, alternating: a step writes
    // the caller's in place, and they become the current ones without a copy.
    let mut contexts = [*ctx, Context::new()];
    let mut current = 0;
    // The captured pc is a return address (see arch capture), so the first frame
    // is looked up at pc - 1 like the others; only the frame interrupted by a
    // signal is looked up at its exact pc.
    let mut exact_pc = false;
    let mut previous_cfa: Option<u64> = None;
    let mut target = Target::default();
    // Read before any lookup: recipes made in this walk are filed under it.
    let generation = objects.load_generation();
    // The current frame's recipe, when it has one (loaded in place, not moved).
    let mut recipe = Recipe::EMPTY;
    for index in 0..max_frames {
        let [first, second] = &mut contexts;
        let (regs, caller) = if current == 0 { (&*first, second) } else { (&*second, first) };
        let pc = regs.pc().ok_or(WalkError::UnknownPc { frame: index })?;
        // A return address follows its call: pc - 1 is inside the caller's call
        // instruction, and so inside the right FDE even for a noreturn call.
        let lookup = if exact_pc { pc } else { pc.wrapping_sub(1) };
        let cached = generation
            .is_some_and(|generation| caches.recipes.get(lookup, generation, &mut recipe));
        let Unwound { step, is_libc, object_start, signal_trampoline } = if cached {
            Unwound {
                step: step::unwind_recipe(&recipe, lookup, regs, caller, mem)?,
                is_libc: recipe.is_libc(),
                object_start: recipe.object_start(),
                signal_trampoline: false,
            }
        } else {
            unwind_uncached(caches, generation, objects, lookup, regs, caller, mem)?
        };
        // Every frame with a caller must have a CFA strictly above its callee's,
        // or the walk could spin. The outermost frame may share its callee's CFA:
        // aarch64 glibc's clone child `thread_start` and `_start` keep the CIE's
        // `CFA = sp + 0` and call with `blr`/`bl`, which pushes nothing.
        if let Some(previous) = previous_cfa
            && (step.cfa < previous || (step.cfa == previous && !step.outermost))
        {
            return Err(WalkError::CfaNotGrowing { frame: index, cfa: step.cfa, previous });
        }
        visit(&Frame { index, pc, cfa: step.cfa, is_libc, object_start, signal_trampoline });
        target.observe(is_libc, &step, previous_cfa, lookup);
        previous_cfa = Some(step.cfa);
        exact_pc = signal_trampoline;
        if step.outermost {
            return target.finish(index + 1, mem, objects);
        }
        current ^= 1;
    }
    Err(WalkError::TooManyFrames { limit: max_frames })
}

/// One frame unwound, with what the walk reports of its object.
struct Unwound {
    /// The step.
    step: Step,
    /// Whether the frame's object is libc.
    is_libc: bool,
    /// Lowest mapped address of the frame's object.
    object_start: u64,
    /// Whether the frame is a signal trampoline.
    signal_trampoline: bool,
}

/// Unwinds a frame that has no recipe: looks its object up, takes its rules from
/// the row cache or computes them, and files them as a recipe when it can.
///
/// Never inlined: gimli's unwind state (a few KB) lives in this frame, so a walk
/// whose every frame has a recipe neither sets it up nor touches that stack.
#[inline(never)]
fn unwind_uncached(
    caches: Caches<'_>,
    generation: Option<u128>,
    objects: &mut impl Objects,
    lookup: u64,
    regs: &Context,
    caller: &mut Context,
    mem: &mut impl Memory,
) -> Result<Unwound, WalkError> {
    let mut unwind_ctx = UnwindCtx::new_in();
    let mut rules = Rules::NONE;
    let object = objects.find(lookup)?;
    let (is_libc, object_start) = (object.is_libc, object.start);
    let meta = rows::locate(&object, lookup, caches.rows, &mut unwind_ctx, &mut rules)?;
    if let Some(generation) = generation
        && let Some(recipe) = Recipe::compile(&rules, &meta, is_libc, object_start)
    {
        caches.recipes.put(lookup, generation, &recipe);
    }
    let located = Located::new(&object, lookup, &rules, meta);
    let step = step::unwind(&located, regs, caller, mem)?;
    Ok(Unwound { step, is_libc, object_start, signal_trampoline: located.signal_trampoline })
}
