//! An object's loaded segments from its program headers: its `PT_LOAD`s (their
//! addresses and whether they are readable) and its `PT_GNU_EH_FRAME`. Every
//! slice handed to gimli is bounded by [`Segments::readable_run`], so a pointer in
//! a corrupt table that leads into a hole between segments is refused, not read.
//!
//! Pure logic on addresses; where the headers come from is the callers' business
//! (`phdr.rs`: `dl_iterate_phdr`; `headers.rs`: the object's image in memory).

use libc::{Elf64_Phdr, PF_R, PT_GNU_EH_FRAME, PT_LOAD};

/// Most `PT_LOAD`s kept; linkers emit 2-5. Later ones are ignored, which can only
/// make fewer addresses readable, never more.
pub(crate) const MAX_LOADS: usize = 16;

/// One `PT_LOAD` as loaded: `[start, end)` and whether it is mapped readable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Segment {
    /// First address.
    pub(crate) start: u64,
    /// One past the last address (`p_vaddr + p_memsz`, biased).
    pub(crate) end: u64,
    /// Whether the segment has `PF_R` (glibc maps it `PROT_READ`).
    pub(crate) readable: bool,
}

/// The loaded segments of one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segments {
    /// The `PT_LOAD`s, in program-header order; the first `count` are used.
    loads: [Segment; MAX_LOADS],
    /// How many of `loads` are used.
    count: usize,
    /// The biased address of `PT_GNU_EH_FRAME` (`.eh_frame_hdr`), if any.
    eh_frame_hdr: Option<u64>,
}

impl Segments {
    /// The segments described by `headers` for an object loaded with `bias`.
    /// Wrapping arithmetic: a corrupt header gives nonsense ranges, never a panic
    /// (an empty or wrapped range contains nothing).
    pub(crate) fn from_headers(bias: u64, headers: &[Elf64_Phdr]) -> Self {
        let mut segments =
            Segments { loads: [Segment::default(); MAX_LOADS], count: 0, eh_frame_hdr: None };
        for header in headers {
            let start = bias.wrapping_add(header.p_vaddr);
            match header.p_type {
                PT_LOAD if segments.count < MAX_LOADS => {
                    segments.loads[segments.count] = Segment {
                        start,
                        end: start.wrapping_add(header.p_memsz),
                        readable: header.p_flags & PF_R != 0,
                    };
                    segments.count += 1;
                }
                PT_GNU_EH_FRAME if segments.eh_frame_hdr.is_none() => {
                    segments.eh_frame_hdr = Some(start);
                }
                _ => {}
            }
        }
        segments
    }

    /// The `PT_LOAD` segments.
    pub(crate) fn loads(&self) -> &[Segment] {
        &self.loads[..self.count]
    }

    /// `.eh_frame_hdr`'s address, from `PT_GNU_EH_FRAME`.
    pub(crate) fn eh_frame_hdr(&self) -> Option<u64> {
        self.eh_frame_hdr
    }

    /// `[lowest start, highest end)` of the `PT_LOAD`s, if there is one.
    pub(crate) fn extent(&self) -> Option<(u64, u64)> {
        let start = self.loads().iter().map(|s| s.start).min()?;
        let end = self.loads().iter().map(|s| s.end).max()?;
        Some((start, end))
    }

    /// Whether a `PT_LOAD` (readable or not) contains `address`.
    pub(crate) fn contains(&self, address: u64) -> bool {
        self.loads().iter().any(|s| s.start <= address && address < s.end)
    }

    /// The largest `[start, end)` containing `address` made of readable segments
    /// that touch or overlap: the memory a slice starting at `address` may cover.
    /// `None` if no readable segment contains `address`.
    pub(crate) fn readable_run(&self, address: u64) -> Option<(u64, u64)> {
        let readable = || self.loads().iter().filter(|s| s.readable && s.start < s.end);
        let first = readable().find(|s| s.start <= address && address < s.end)?;
        let (mut start, mut end) = (first.start, first.end);
        // Each pass takes in every segment touching the run; at most one pass per
        // segment can still grow it.
        for _ in 0..self.count {
            let mut grew = false;
            for s in readable() {
                if s.start <= end && s.end >= start && (s.start < start || s.end > end) {
                    (start, end) = (start.min(s.start), end.max(s.end));
                    grew = true;
                }
            }
            if !grew {
                break;
            }
        }
        Some((start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A program header of type `p_type` at `vaddr`, `memsz` long, with `flags`.
    fn header(p_type: u32, vaddr: u64, memsz: u64, flags: u32) -> Elf64_Phdr {
        Elf64_Phdr {
            p_type,
            p_flags: flags,
            p_offset: 0,
            p_vaddr: vaddr,
            p_paddr: vaddr,
            p_filesz: memsz,
            p_memsz: memsz,
            p_align: 0x1000,
        }
    }

    const R: u32 = PF_R;
    const RX: u32 = PF_R | libc::PF_X;
    const X: u32 = libc::PF_X;

    /// The layout `-z separate-code -z max-page-size=0x200000` gives: holes
    /// between R, RX, R and RW segments.
    fn gapped() -> Segments {
        Segments::from_headers(
            0x7f00_0000_0000,
            &[
                header(PT_LOAD, 0, 0x500, R),
                header(PT_LOAD, 0x20_0000, 0x150, RX),
                header(PT_LOAD, 0x40_0000, 0xd0, R),
                header(PT_GNU_EH_FRAME, 0x40_0010, 0x30, R),
                header(PT_LOAD, 0x5f_de00, 0x230, R | libc::PF_W),
            ],
        )
    }

    #[test]
    fn runs_stop_at_holes() {
        let s = gapped();
        let base = 0x7f00_0000_0000;
        assert_eq!(s.eh_frame_hdr(), Some(base + 0x40_0010));
        assert_eq!(s.readable_run(base + 0x40_0010), Some((base + 0x40_0000, base + 0x40_00d0)));
        assert_eq!(s.readable_run(base + 0x40_00d0), None, "the hole after the segment");
        assert_eq!(s.readable_run(base + 0x30_0000), None, "the hole before it");
        assert_eq!(s.extent(), Some((base, base + 0x5f_e030)));
        assert!(s.contains(base + 0x20_0010) && !s.contains(base + 0x30_0000));
    }

    #[test]
    fn touching_readable_segments_make_one_run_and_unreadable_ones_none() {
        let s = Segments::from_headers(
            0,
            &[
                header(PT_LOAD, 0x3000, 0x1000, R),
                header(PT_LOAD, 0x1000, 0x1000, RX),
                header(PT_LOAD, 0x2000, 0x1000, R),
                header(PT_LOAD, 0x4000, 0x1000, X),
            ],
        );
        assert_eq!(s.readable_run(0x1800), Some((0x1000, 0x4000)));
        assert_eq!(s.readable_run(0x3fff), Some((0x1000, 0x4000)));
        assert_eq!(s.readable_run(0x4000), None, "execute-only");
        assert_eq!(s.eh_frame_hdr(), None);
    }

    #[test]
    fn corrupt_and_excess_headers_give_no_readable_memory_beyond_them() {
        // A wrapped segment contains nothing; loads past MAX_LOADS are dropped.
        let mut headers = vec![header(PT_LOAD, u64::MAX - 0x10, 0x100, R)];
        headers.extend((0..MAX_LOADS as u64).map(|i| header(PT_LOAD, i * 0x1000, 0x1000, R)));
        let s = Segments::from_headers(0, &headers);
        assert_eq!(s.loads().len(), MAX_LOADS);
        assert_eq!(s.readable_run(u64::MAX - 8), None);
        let last_kept = (MAX_LOADS as u64 - 2) * 0x1000;
        assert_eq!(s.readable_run(0), Some((0, last_kept + 0x1000)));
        assert_eq!(s.readable_run(last_kept + 0x1000), None, "a dropped load");
    }
}
