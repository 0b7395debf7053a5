//! An object's unwind tables as found by the loader: raw addresses, turned into
//! byte slices for gimli, each bounded to the readable segments that contain its
//! start (`segments.rs`), so no table entry can lead the walk into a hole.

use super::segments::Segments;
use crate::arch;
use crate::walk::{ObjectInfo, WalkError};
use gimli::{BaseAddresses, EhFrameHdr, NativeEndian};

/// A loaded object's `.eh_frame_hdr` and `.eh_frame`, with the end of the
/// readable memory each starts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Mapped {
    /// Lowest mapped address of the object.
    start: u64,
    /// End of the range the object was found with (see [`covers`](Self::covers)).
    found_end: u64,
    /// `.eh_frame_hdr`'s address.
    eh_frame_hdr: u64,
    /// End of the readable run holding `.eh_frame_hdr`.
    eh_frame_hdr_end: u64,
    /// `.eh_frame`'s address, from the header's `eh_frame_ptr`.
    eh_frame: u64,
    /// End of the readable run holding `.eh_frame`.
    eh_frame_end: u64,
}

impl Mapped {
    /// Checks and records an object whose `.eh_frame_hdr` is at `hdr`, found as
    /// `[start, found_end)`, with the loaded `segments`. Each section's slice runs
    /// to the end of the readable segments containing its start; a header or an
    /// `eh_frame_ptr` outside every readable segment is an error. `pc` is only for
    /// error messages.
    ///
    /// # Safety
    /// The readable segments of `segments` must be readable memory of a loaded
    /// object that stays loaded and unchanged while the returned value (and slices
    /// made from it) is in use.
    pub(super) unsafe fn new(
        pc: u64,
        (start, found_end): (u64, u64),
        segments: &Segments,
        hdr: u64,
    ) -> Result<Self, WalkError> {
        let (_, eh_frame_hdr_end) =
            segments.readable_run(hdr).ok_or(WalkError::NoEhFrameHdr { pc })?;
        // SAFETY: `[hdr, eh_frame_hdr_end)` is readable per the contract.
        let bytes = unsafe { slice(hdr, eh_frame_hdr_end) };
        let eh_frame =
            eh_frame_address(bytes, hdr).map_err(|error| WalkError::BadCfi { pc, error })?;
        let (_, eh_frame_end) =
            segments.readable_run(eh_frame).ok_or(WalkError::EhFrameOutside { pc })?;
        Ok(Mapped { start, found_end, eh_frame_hdr: hdr, eh_frame_hdr_end, eh_frame, eh_frame_end })
    }

    /// The slices gimli reads. Each runs to the end of the readable memory holding
    /// its start, since neither section's length is recorded in memory.
    pub(super) fn info(&self, is_libc: bool) -> ObjectInfo<'_> {
        ObjectInfo {
            start: self.start,
            // SAFETY: `new` found both runs among the readable segments its caller
            // vouched for.
            eh_frame_hdr: unsafe { slice(self.eh_frame_hdr, self.eh_frame_hdr_end) },
            eh_frame_hdr_addr: self.eh_frame_hdr,
            // SAFETY: as above.
            eh_frame: unsafe { slice(self.eh_frame, self.eh_frame_end) },
            eh_frame_addr: self.eh_frame,
            is_libc,
        }
    }

    /// Whether `pc` lies in the range this object was found with. For
    /// `_dl_find_object`'s whole-mapping range that makes `pc` this object's.
    pub(super) fn covers(&self, pc: u64) -> bool {
        self.start <= pc && pc < self.found_end
    }

    /// Identity of the object: its `.eh_frame_hdr` address.
    pub(super) fn id(&self) -> u64 {
        self.eh_frame_hdr
    }
}

/// The header every linker writes: version 1, `eh_frame_ptr` pcrel|sdata4, FDE
/// count udata4, table datarel|sdata4.
const USUAL_HEADER: [u8; 4] = [1, 0x1b, 0x03, 0x3b];

/// The address of `.eh_frame` from the header `bytes` mapped at `hdr`. The usual
/// header is read directly (gimli's parse, run for every frame of every walk,
/// cost about as much as a row-cache hit); any other goes through gimli.
fn eh_frame_address(bytes: &[u8], hdr: u64) -> Result<u64, gimli::Error> {
    if bytes.get(..4) == Some(&USUAL_HEADER[..])
        && let Some(&[a, b, c, d]) = bytes.get(4..8)
        && bytes.len() >= 12
    {
        // pcrel: relative to the pointer's own address, `hdr + 4`. gimli's
        // parse would succeed on these 12 bytes too, and give the same.
        let rel = i32::from_le_bytes([a, b, c, d]);
        return Ok((hdr + 4).wrapping_add_signed(i64::from(rel)));
    }
    let bases = BaseAddresses::default().set_eh_frame_hdr(hdr);
    EhFrameHdr::new(bytes, NativeEndian).parse(&bases, arch::ADDRESS_SIZE)?.eh_frame_ptr().direct()
}

/// The bytes `[from, to)` of the address space.
///
/// # Safety
/// `from <= to` and the range must be readable and unchanged for `'a`.
unsafe fn slice<'a>(from: u64, to: u64) -> &'a [u8] {
    let ptr = core::ptr::with_exposed_provenance::<u8>(from as usize);
    // SAFETY: per this function's contract.
    unsafe { core::slice::from_raw_parts(ptr, (to - from) as usize) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What gimli's parse says.
    fn by_gimli(bytes: &[u8], hdr: u64) -> Result<u64, gimli::Error> {
        let bases = BaseAddresses::default().set_eh_frame_hdr(hdr);
        EhFrameHdr::new(bytes, NativeEndian)
            .parse(&bases, arch::ADDRESS_SIZE)?
            .eh_frame_ptr()
            .direct()
    }

    /// Segments made of one readable `PT_LOAD` exactly covering `bytes`.
    fn one_segment(bytes: &[u8]) -> Segments {
        let header = libc::Elf64_Phdr {
            p_type: libc::PT_LOAD,
            p_flags: libc::PF_R,
            p_offset: 0,
            p_vaddr: bytes.as_ptr() as u64,
            p_paddr: 0,
            p_filesz: bytes.len() as u64,
            p_memsz: bytes.len() as u64,
            p_align: 1,
        };
        Segments::from_headers(0, &[header])
    }

    #[test]
    fn slices_end_with_the_readable_segment_and_pointers_outside_are_refused() {
        // A usual header whose eh_frame_ptr points 16 bytes past itself, then room.
        let mut bytes = USUAL_HEADER.to_vec();
        bytes.extend_from_slice(&16_i32.to_le_bytes());
        bytes.extend_from_slice(&0_u32.to_le_bytes());
        bytes.resize(64, 0);
        let hdr = bytes.as_ptr() as u64;
        let segments = one_segment(&bytes);
        // SAFETY: the one readable segment is `bytes`, alive for the test.
        let mapped = unsafe { Mapped::new(1, (hdr, hdr + 64), &segments, hdr) }.unwrap();
        let info = mapped.info(false);
        assert_eq!(info.eh_frame_hdr.len(), 64);
        assert_eq!((info.eh_frame_addr, info.eh_frame.len()), (hdr + 4 + 16, 64 - 20));
        // eh_frame_ptr past the segment (into what may be a hole): refused.
        bytes[4..8].copy_from_slice(&64_i32.to_le_bytes());
        // SAFETY: as above.
        let outside = unsafe { Mapped::new(1, (hdr, hdr + 0x1000), &segments, hdr) };
        assert_eq!(outside, Err(WalkError::EhFrameOutside { pc: 1 }));
        // A header address outside every readable segment: refused, not read.
        // SAFETY: as above; the address is never read.
        let no_header = unsafe { Mapped::new(1, (hdr, hdr + 0x1000), &segments, hdr + 64) };
        assert_eq!(no_header, Err(WalkError::NoEhFrameHdr { pc: 1 }));
    }

    #[test]
    fn usual_header_is_read_as_gimli_reads_it() {
        let hdr = 0x7f00_0000_1000;
        for rel in [0x100_i32, -0x2000, 4, i32::MIN, i32::MAX] {
            let mut bytes = USUAL_HEADER.to_vec();
            bytes.extend_from_slice(&rel.to_le_bytes());
            bytes.extend_from_slice(&3_u32.to_le_bytes());
            assert_eq!(eh_frame_address(&bytes, hdr), by_gimli(&bytes, hdr));
            assert!(eh_frame_address(&bytes, hdr).is_ok());
            // Too short for a count: gimli's answer, whatever it is.
            assert_eq!(eh_frame_address(&bytes[..10], hdr), by_gimli(&bytes[..10], hdr));
        }
        // Another encoding (udata8, absolute) and another version go to gimli.
        let mut bytes = vec![1, 0x04, 0x03, 0x3b];
        bytes.extend_from_slice(&0x5000_u64.to_le_bytes());
        bytes.extend_from_slice(&0_u32.to_le_bytes());
        assert_eq!(eh_frame_address(&bytes, hdr), Ok(0x5000));
        bytes[0] = 2;
        assert_eq!(eh_frame_address(&bytes, hdr), by_gimli(&bytes, hdr));
        assert!(eh_frame_address(&bytes, hdr).is_err());
    }
}
