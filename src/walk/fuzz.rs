//! The fuzz target's way into the walker (feature `fuzzing`, `fuzz/walker_cfi`):
//! one walk over a fake stack and fake objects whose unwind sections are arbitrary
//! bytes, checked against two more walks of the same input: one that unwinds from
//! the recipes the first one compiled, one that takes its rules from the row cache
//! the first one filled.
//!
//! The fake process: code at [`TEXT`], its lower half an "app" and its upper half
//! "libc" (so the target search sees both), both described by one `.eh_frame` at
//! [`EH_FRAME_ADDR`] and one `.eh_frame_hdr` at [`EH_FRAME_HDR_ADDR`].
//!
//! [`walk_input`] reads one fuzz input (all integers little-endian):
//!
//! | bytes | meaning |
//! |---|---|
//! | 0 | mode: 0 header and `.eh_frame` from the input; 1 `.eh_frame` from the input and a header built from it ([`eh_frame_hdr_for`]); 2 the same bytes as both |
//! | 1 | number of registers `n` |
//! | 2..4 | header length (mode 0) |
//! | 4..6 | `.eh_frame` length |
//! | 6..14 | the stack's base address |
//! | then | `n` u64 registers (see [`walk_fake`]), the header, `.eh_frame`, and the stack: the rest |
//!
//! Short inputs are read as far as they go (missing parts are empty).

use super::cache::recipes::RecipeCache;
use super::cache::rows::RowCache;
use super::fake::{CountedObjects, FakeObject, FakeObjects, FakeStack};
use super::walker::{Caches, Frame, find_exit_slot_cached};
use super::{ExitSlot, Objects, WalkError};
use crate::arch::Context;
use core::ops::Range;

/// The fake code: `[TEXT.start, LIBC)` is the app, `[LIBC, TEXT.end)` libc.
pub const TEXT: Range<u64> = 0x1_0000..0x3_0000;

/// Where the fake libc's code starts.
pub const LIBC: u64 = 0x2_0000;

/// Where the fake `.eh_frame_hdr` is "mapped".
pub const EH_FRAME_HDR_ADDR: u64 = 0x4_0000;

/// Where the fake `.eh_frame` is "mapped".
pub const EH_FRAME_ADDR: u64 = 0x5_0000;

/// Most frames a fuzz walk visits: the walk's loop is the same as with the real
/// limit (100,000), whose inputs cost ~50 ms each (a frame whose return address
/// never changes walks without reading memory), and with 2,000 the inputs whose
/// every frame has a new pc and long CFI still ran at 3,000 a second.
pub const MAX_FRAMES: usize = 256;

/// The fuzz walks' own row cache, emptied before each input so runs repeat.
static ROWS: RowCache = RowCache::new();

/// The fuzz walks' own recipe cache, emptied before each input.
static RECIPES: RecipeCache = RecipeCache::new();

/// Walks the fake process with `regs` over `stack` (mapped at `stack_base`),
/// three times: with empty caches, then from the recipes the first walk compiled,
/// then (with no unload count, so no recipes) from the rows it cached. Returns the
/// walk's error as text. Panics only if the walks differ (a cache or recipe bug);
/// any panic inside the walker is a bug too.
///
/// `regs[0]` is the pc, `regs[1]` the stack pointer, `regs[2 + n]` DWARF register
/// `n`; registers not given are unknown.
pub fn walk_fake(
    eh_frame: &[u8],
    eh_frame_hdr: &[u8],
    stack: &[u8],
    stack_base: u64,
    regs: &[u64],
) -> Result<(), String> {
    let object = |text: Range<u64>, is_libc| FakeObject {
        text,
        eh_frame_hdr: eh_frame_hdr.to_vec(),
        eh_frame_hdr_addr: EH_FRAME_HDR_ADDR,
        eh_frame: eh_frame.to_vec(),
        eh_frame_addr: EH_FRAME_ADDR,
        is_libc,
    };
    let mut objects = CountedObjects {
        objects: FakeObjects(vec![object(TEXT.start..LIBC, false), object(LIBC..TEXT.end, true)]),
        generation: 1,
    };
    let stack = FakeStack::from_bytes(stack_base, stack).ok_or("the stack ends past 2^64")?;
    let ctx = context(regs);
    ROWS.clear();
    RECIPES.clear();
    let caches = Caches { rows: &ROWS, recipes: &RECIPES };
    let cold = walk_once(caches, &ctx, stack.clone(), &mut objects);
    let from_recipes = walk_once(caches, &ctx, stack.clone(), &mut objects);
    assert_eq!(cold, from_recipes, "a walk from recipes differs from the uncached walk");
    let from_rows = walk_once(caches, &ctx, stack, &mut objects.objects);
    assert_eq!(cold, from_rows, "a walk from cached rows differs from the uncached walk");
    cold.0.map(drop).map_err(|error| error.to_string())
}

/// One walk with `caches`: its result and the frames it visited.
fn walk_once(
    caches: Caches<'_>,
    ctx: &Context,
    mut stack: FakeStack,
    objects: &mut impl Objects,
) -> (Result<ExitSlot, WalkError>, Vec<Frame>) {
    let mut frames = Vec::new();
    let found = find_exit_slot_cached(caches, MAX_FRAMES, ctx, &mut stack, objects, &mut |frame| {
        frames.push(*frame)
    });
    (found, frames)
}

/// The registers of `regs` as [`walk_fake`] documents them.
fn context(regs: &[u64]) -> Context {
    let mut ctx = Context::new();
    for (reg, value) in Context::REGISTERS.iter().zip(regs.iter().skip(2)) {
        ctx.set(*reg, *value);
    }
    if let Some(sp) = regs.get(1) {
        ctx.set(crate::arch::SP, *sp);
    }
    if let Some(pc) = regs.first() {
        ctx.set_pc(*pc);
    }
    ctx
}

/// Reads one fuzz input (format in the module docs) and walks it.
pub fn walk_input(data: &[u8]) -> Result<(), String> {
    let mut input = Input(data);
    let mode = input.bytes(1).first().copied().unwrap_or(0) % 3;
    let count = input.bytes(1).first().copied().map_or(0, usize::from);
    let hdr_len = usize::from(input.u16());
    let eh_frame_len = usize::from(input.u16());
    let stack_base = input.u64();
    let regs: Vec<u64> = (0..count).map(|_| input.u64()).collect();
    let given_hdr = input.bytes(if mode == 0 { hdr_len } else { 0 });
    let eh_frame = input.bytes(eh_frame_len);
    let stack = input.0;
    match mode {
        0 => walk_fake(eh_frame, given_hdr, stack, stack_base, &regs),
        1 => walk_fake(eh_frame, &eh_frame_hdr_for(eh_frame), stack, stack_base, &regs),
        _ => walk_fake(eh_frame, eh_frame, stack, stack_base, &regs),
    }
}

/// Writes one fuzz input: the inverse of [`walk_input`] for modes 0 and 1 (an
/// empty `eh_frame_hdr` selects mode 1).
pub fn encode_input(
    eh_frame: &[u8],
    eh_frame_hdr: &[u8],
    stack: &[u8],
    stack_base: u64,
    regs: &[u64],
) -> Vec<u8> {
    let len16 = |bytes: &[u8]| u16::try_from(bytes.len()).expect("section under 64 KiB");
    let mut out = vec![u8::from(eh_frame_hdr.is_empty())];
    out.push(u8::try_from(regs.len()).expect("under 256 registers"));
    out.extend_from_slice(&len16(eh_frame_hdr).to_le_bytes());
    out.extend_from_slice(&len16(eh_frame).to_le_bytes());
    out.extend_from_slice(&stack_base.to_le_bytes());
    regs.iter().for_each(|reg| out.extend_from_slice(&reg.to_le_bytes()));
    out.extend_from_slice(eh_frame_hdr);
    out.extend_from_slice(eh_frame);
    out.extend_from_slice(stack);
    out
}

/// A header for `eh_frame` as mapped at [`EH_FRAME_ADDR`], with a sorted search
/// table of the FDEs found by a plain scan: each entry's length field, its CIE
/// pointer (nonzero: an FDE), and its first address read as pcrel|sdata4, the
/// encoding GCC and LLVM use. Garbage in, a table of garbage out.
pub fn eh_frame_hdr_for(eh_frame: &[u8]) -> Vec<u8> {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(eh_frame.get(at..at.checked_add(4)?)?.try_into().ok()?))
    };
    let mut fdes = Vec::new();
    let mut offset = 0usize;
    while let Some(len) = word(offset).filter(|&len| len != 0 && len < 0xffff_fff0) {
        if word(offset + 4).is_some_and(|cie| cie != 0)
            && let Some(rel) = word(offset + 8)
        {
            let field = EH_FRAME_ADDR + offset as u64 + 8;
            fdes.push((field.wrapping_add_signed(i64::from(rel as i32)), offset as u64));
        }
        let Some(next) = offset.checked_add(4 + len as usize) else { break };
        offset = next;
    }
    fdes.sort_unstable();
    let rel = |addr: u64| (addr.wrapping_sub(EH_FRAME_HDR_ADDR) as i32).to_le_bytes();
    // Version 1; eh_frame_ptr pcrel|sdata4, count udata4, table datarel|sdata4.
    let mut hdr = vec![1, 0x1b, 0x03, 0x3b];
    hdr.extend_from_slice(
        &(EH_FRAME_ADDR.wrapping_sub(EH_FRAME_HDR_ADDR + 4) as i32).to_le_bytes(),
    );
    hdr.extend_from_slice(&(fdes.len() as u32).to_le_bytes());
    for (initial, offset) in fdes {
        hdr.extend_from_slice(&rel(initial));
        hdr.extend_from_slice(&rel(EH_FRAME_ADDR + offset));
    }
    hdr
}

/// The unread rest of an input.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    /// The next `len` bytes, or as many as are left.
    fn bytes(&mut self, len: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        taken
    }

    /// The next u16 (missing bytes read as 0).
    fn u16(&mut self) -> u16 {
        let mut word = [0; 2];
        let taken = self.bytes(2);
        word[..taken.len()].copy_from_slice(taken);
        u16::from_le_bytes(word)
    }

    /// The next u64 (missing bytes read as 0).
    fn u64(&mut self) -> u64 {
        let mut word = [0; 8];
        let taken = self.bytes(8);
        word[..taken.len()].copy_from_slice(taken);
        u64::from_le_bytes(word)
    }
}
