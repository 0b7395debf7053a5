//! A per-process cache of unwind rules by pc, so a walk through a stack shape seen
//! before skips the `.eh_frame_hdr` search and the CIE and FDE programs.
//!
//! The rules for a pc are a pure function of the pc, the addresses of `.eh_frame`
//! and `.eh_frame_hdr`, the header, and the bytes of the CIE and FDE the search
//! table picks. An entry keeps copies of those bytes and is used only if the object
//! being walked has the same header at the same address and the same CIE and FDE
//! bytes at the same offsets of an `.eh_frame` at the same address: an object
//! unloaded and another mapped in its place never gets stale rules, and no loader
//! lock or generation count is needed. (The search table itself is not compared: a
//! hit trusts that the FDE which covered the pc still does, as it must in any
//! object whose table agrees with its FDEs.)
//!
//! The table has 64 entries in 8 sets of 8, a pc's set picked by its hash. Each
//! set has its own lock, which the walk only ever `try_lock`s: a walk that finds
//! the set taken (by another thread, or by the walk a signal handler interrupted)
//! treats it as a miss, computes the rules itself and does not store them, so
//! nothing blocks and the walk stays async-signal-safe (no allocation, no
//! waiting).
//!
//! [`locate`] is the walk's one way to the rules of a pc: this cache, else the
//! uncached evaluation of `cfi/fde.rs`, whose result it stores.

use super::pc_hash::pc_hash;
use super::try_lock::{Guard, TryLock};
use crate::walk::cfi::fde::{self, Meta, Origin};
use crate::walk::cfi::rules::Rules;
use crate::walk::cfi::storage::UnwindCtx;
use crate::walk::{ObjectInfo, WalkError};
use gimli::Register;

/// Entries in the table.
const ENTRIES: usize = 64;

/// Entries per set: a pc may be in any entry of the set its hash picks. With
/// fewer (a slot and its neighbour, say), a walk of 10-12 frames evicted one of
/// its own entries in about one run in ten, depending on where ASLR put the code.
const WAYS: usize = 8;

/// Sets in the table, each locked on its own.
const SETS: usize = ENTRIES / WAYS;

const _: () = assert!(SETS.is_power_of_two() && SETS * WAYS == ENTRIES);

/// CIEs longer than this (length field included) are not cached; those seen on
/// real walks (GCC's, LLVM's) are 24-32 bytes.
const CIE_BYTES: usize = 64;

/// FDEs longer than this (length field included) are not cached; those seen on
/// real walks (a std thread of the unit tests, debug and release) are 20-84 bytes.
const FDE_BYTES: usize = 192;

/// Leading `.eh_frame_hdr` bytes compared: the version, the three pointer
/// encodings, `eh_frame_ptr` and the FDE count, in the encodings below.
const HEADER_BYTES: usize = 12;

/// The header encodings a cached object must use, as every linker writes them:
/// `eh_frame_ptr` pcrel|sdata4, FDE count udata4, table datarel|sdata4. Then the
/// [`HEADER_BYTES`] compared are exactly the header's fixed part, and a header
/// without a search table (an error on the uncached path) never matches.
const HEADER_ENCODINGS: [u8; 3] = [0x1b, 0x03, 0x3b];

/// A copy of one CIE or FDE: its offset in `.eh_frame` and its bytes, length
/// field included.
#[derive(Clone, Copy, Debug)]
struct Bytes<const N: usize> {
    /// Offset of the entry's first byte in `.eh_frame`.
    offset: usize,
    /// Bytes used in `bytes`.
    len: usize,
    /// The entry's bytes, then zeros.
    bytes: [u8; N],
}

impl<const N: usize> Bytes<N> {
    /// No entry.
    const EMPTY: Self = Bytes { offset: 0, len: 0, bytes: [0; N] };

    /// The entry at `offset` of `eh_frame` whose length field says `entry_len`,
    /// if it is at most `N` bytes long in all.
    fn copy(eh_frame: &[u8], (offset, entry_len): (usize, usize)) -> Option<Self> {
        // A 32-bit length field is 4 bytes; `0xffff_ffff` there announces a
        // 64-bit one, 12 bytes in all.
        let field = eh_frame.get(offset..offset.checked_add(4)?)?;
        let field_len = if field == [0xff; 4] { 12 } else { 4 };
        let len = entry_len.checked_add(field_len)?;
        let found = eh_frame.get(offset..offset.checked_add(len)?)?;
        let mut bytes = [0; N];
        bytes.get_mut(..len)?.copy_from_slice(found);
        Some(Self { offset, len, bytes })
    }

    /// Whether `eh_frame` holds the same bytes at the same offset.
    fn still_in(&self, eh_frame: &[u8]) -> bool {
        let end = self.offset.saturating_add(self.len);
        eh_frame.get(self.offset..end) == self.bytes.get(..self.len)
    }
}

/// One cached pc: its rules, and the bytes they were computed from.
#[derive(Clone, Debug)]
struct Entry {
    /// Whether the entry is in use. (Not an `Option<Entry>`: with this flag an
    /// unused entry is all zero bytes, and the table lives in `.bss`.)
    used: bool,
    /// The pc looked up (exactly: a hit needs the same pc).
    pc: u64,
    /// Where `.eh_frame_hdr` was.
    eh_frame_hdr_addr: u64,
    /// Where `.eh_frame` was.
    eh_frame_addr: u64,
    /// The header's fixed part.
    header: [u8; HEADER_BYTES],
    /// The CIE.
    cie: Bytes<CIE_BYTES>,
    /// The FDE.
    fde: Bytes<FDE_BYTES>,
    /// The rules at `pc`.
    rules: Rules,
    /// The CIE's encoding: address size, 64-bit format or not, and version
    /// (`gimli::Format` has no zero value).
    encoding: (u8, bool, u16),
    /// The CIE's return-address column.
    ra_column: Register,
    /// Whether the CIE has augmentation `S`.
    signal_trampoline: bool,
}

impl Entry {
    /// An unused entry.
    const EMPTY: Entry = Entry {
        used: false,
        pc: 0,
        eh_frame_hdr_addr: 0,
        eh_frame_addr: 0,
        header: [0; HEADER_BYTES],
        cie: Bytes::EMPTY,
        fde: Bytes::EMPTY,
        rules: Rules::NONE,
        encoding: (0, false, 0),
        ra_column: Register(0),
        signal_trampoline: false,
    };

    /// The entry for `rules` and `meta` found for `pc` in `object`, if its header
    /// and entries are cacheable.
    fn new(
        object: &ObjectInfo<'_>,
        pc: u64,
        rules: &Rules,
        meta: Meta,
        origin: Origin,
    ) -> Option<Self> {
        Some(Entry {
            used: true,
            pc,
            eh_frame_hdr_addr: object.eh_frame_hdr_addr,
            eh_frame_addr: object.eh_frame_addr,
            header: header(object)?,
            cie: Bytes::copy(object.eh_frame, origin.cie)?,
            fde: Bytes::copy(object.eh_frame, origin.fde)?,
            rules: *rules,
            encoding: {
                let gimli::Encoding { address_size, format, version } = meta.encoding;
                (address_size, format == gimli::Format::Dwarf64, version)
            },
            ra_column: meta.ra_column,
            signal_trampoline: meta.signal_trampoline,
        })
    }

    /// What the CIE and FDE said besides the rules.
    fn meta(&self) -> Meta {
        let (address_size, dwarf64, version) = self.encoding;
        let format = if dwarf64 { gimli::Format::Dwarf64 } else { gimli::Format::Dwarf32 };
        Meta {
            encoding: gimli::Encoding { address_size, format, version },
            ra_column: self.ra_column,
            signal_trampoline: self.signal_trampoline,
        }
    }

    /// Whether `object` still has the sections and bytes this entry came from.
    fn still_valid(&self, object: &ObjectInfo<'_>) -> bool {
        self.eh_frame_hdr_addr == object.eh_frame_hdr_addr
            && self.eh_frame_addr == object.eh_frame_addr
            && header(object) == Some(self.header)
            && self.cie.still_in(object.eh_frame)
            && self.fde.still_in(object.eh_frame)
    }
}

/// The header's fixed part, if the header uses the usual encodings.
fn header(object: &ObjectInfo<'_>) -> Option<[u8; HEADER_BYTES]> {
    let bytes: [u8; HEADER_BYTES] = object.eh_frame_hdr.get(..HEADER_BYTES)?.try_into().ok()?;
    (bytes[1..4] == HEADER_ENCODINGS).then_some(bytes)
}

/// The set a pc lives in (a multiplicative hash: the top bits of `pc * φ`).
fn set_of(pc: u64) -> usize {
    pc_hash(pc, SETS)
}

/// One set of entries.
#[derive(Debug)]
struct Set {
    /// The entries, in no order.
    entries: [Entry; WAYS],
    /// The entry the next new pc replaces when none is free (round robin).
    victim: usize,
}

impl Set {
    /// No entries.
    const EMPTY: Set = Set { entries: [Entry::EMPTY; WAYS], victim: 0 };
}

/// A table of cached rules. The walk uses [`ROWS`]; tests and the fuzz target
/// use their own.
pub(crate) struct RowCache {
    /// The sets, each locked on its own.
    sets: [TryLock<Set>; SETS],
}

/// The process's row cache.
pub(crate) static ROWS: RowCache = RowCache::new();

impl RowCache {
    /// An empty table.
    pub(crate) const fn new() -> Self {
        RowCache { sets: [const { TryLock::new(Set::EMPTY) }; SETS] }
    }

    /// The set of `pc`, if it is free right now (never waits for it).
    fn try_set(&self, pc: u64) -> Option<Guard<'_, Set>> {
        self.sets[set_of(pc)].try_lock()
    }

    /// Copies the cached rules for `pc` in `object` into `rules` and returns the
    /// rest, if an entry for `pc` is there and still valid for `object`, and its
    /// set is free.
    pub(crate) fn get(&self, object: &ObjectInfo<'_>, pc: u64, rules: &mut Rules) -> Option<Meta> {
        let set = self.try_set(pc)?;
        // A stale entry for `pc` is passed over: `put` replaces it once this walk
        // has computed the rules.
        let entry = set
            .entries
            .iter()
            .find(|entry| entry.used && entry.pc == pc && entry.still_valid(object))?;
        *rules = entry.rules;
        Some(entry.meta())
    }

    /// Remembers `rules` and `meta`, computed for `pc` in `object` from the CIE
    /// and FDE at `origin`, in its pc's set: in place of an entry for the same pc,
    /// else in a free entry, else in place of the set's next victim. Does nothing
    /// if the CIE or FDE is too long, the header unusual, or the set taken.
    ///
    /// Never inlined: the entry it builds (~860 bytes) stays off the walk's frame.
    #[inline(never)]
    pub(crate) fn put(
        &self,
        object: &ObjectInfo<'_>,
        pc: u64,
        rules: &Rules,
        meta: Meta,
        origin: Origin,
    ) {
        let Some(entry) = Entry::new(object, pc, rules, meta, origin) else { return };
        let Some(mut set) = self.try_set(pc) else { return };
        let index = match set.entries.iter().position(|old| old.used && old.pc == pc) {
            Some(index) => index,
            None => match set.entries.iter().position(|old| !old.used) {
                Some(index) => index,
                None => {
                    let victim = set.victim;
                    set.victim = (victim + 1) % WAYS;
                    victim
                }
            },
        };
        set.entries[index] = entry;
    }

    /// Empties the table, waiting for sets in use (fuzzing only).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn clear(&self) {
        for set in &self.sets {
            *set.lock() = Set::EMPTY;
        }
    }

    /// Takes the set of `pc` and holds it until the guard drops (tests only: a
    /// walk meanwhile must neither wait nor cache `pc`).
    #[cfg(test)]
    pub(crate) fn hold(&self, pc: u64) -> impl Sized + '_ {
        self.sets[set_of(pc)].lock()
    }
}

/// Puts the rules for `pc` in `object` into `rules`: from `cache` if it has them,
/// else computed in `ctx` (and cached).
///
/// Always inlined, and the cache's entries never on the stack of this path: a miss
/// nests only the walk, [`evaluate`](fde::evaluate) and gimli, as before the cache (the walk's
/// stack budget, `os::stack_memory::WALK_STACK_NEED`, was measured on that).
#[inline(always)]
pub(crate) fn locate(
    object: &ObjectInfo<'_>,
    pc: u64,
    cache: &RowCache,
    ctx: &mut UnwindCtx,
    rules: &mut Rules,
) -> Result<Meta, WalkError> {
    if let Some(meta) = cache.get(object, pc, rules) {
        return Ok(meta);
    }
    let (meta, origin) = fde::evaluate(object, pc, ctx, rules)?;
    cache.put(object, pc, rules, meta, origin);
    Ok(meta)
}
