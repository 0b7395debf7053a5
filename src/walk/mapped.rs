//! An object's unwind tables as found by the loader: raw addresses, turned into
//! checked byte slices for gimli.

use super::{ObjectInfo, WalkError};
use crate::arch;
use gimli::{BaseAddresses, EhFrameHdr, NativeEndian};

/// A loaded object's `.eh_frame_hdr` and the readable range around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Mapped {
    /// Lowest mapped address of the object.
    start: u64,
    /// `.eh_frame_hdr`'s address.
    eh_frame_hdr: u64,
    /// `.eh_frame`'s address, from the header's `eh_frame_ptr`.
    eh_frame: u64,
    /// End of the readable range holding both sections.
    end: u64,
}

impl Mapped {
    /// Checks and records an object whose `.eh_frame_hdr` is at `hdr`, inside the
    /// readable range `[lo, end)`. `.eh_frame` must be in the same range (as every
    /// linker lays it out: both in the read-only data segment). `pc` is only for
    /// error messages.
    ///
    /// # Safety
    /// `[lo, end)` must be readable memory of a loaded object that stays loaded and
    /// unchanged while the returned value (and slices made from it) is in use.
    pub(super) unsafe fn new(
        pc: u64,
        start: u64,
        lo: u64,
        hdr: u64,
        end: u64,
    ) -> Result<Self, WalkError> {
        if !(lo <= hdr && hdr < end) {
            return Err(WalkError::NoEhFrameHdr { pc });
        }
        // SAFETY: `[hdr, end)` is inside `[lo, end)`, readable per the contract.
        let bytes = unsafe { slice(hdr, end) };
        let eh_frame =
            eh_frame_address(bytes, hdr).map_err(|error| WalkError::BadCfi { pc, error })?;
        if !(lo <= eh_frame && eh_frame < end) {
            return Err(WalkError::EhFrameOutside { pc });
        }
        Ok(Mapped { start, eh_frame_hdr: hdr, eh_frame, end })
    }

    /// The slices gimli reads. They run to the end of the readable range, since
    /// neither section's length is recorded in memory.
    pub(super) fn info(&self, is_libc: bool) -> ObjectInfo<'_> {
        ObjectInfo {
            start: self.start,
            // SAFETY: `new` checked both addresses lie in the readable range
            // `[lo, end)` its caller vouched for.
            eh_frame_hdr: unsafe { slice(self.eh_frame_hdr, self.end) },
            eh_frame_hdr_addr: self.eh_frame_hdr,
            // SAFETY: as above.
            eh_frame: unsafe { slice(self.eh_frame, self.end) },
            eh_frame_addr: self.eh_frame,
            is_libc,
        }
    }

    /// Whether `pc` lies in the range this object was found with. For
    /// `_dl_find_object`'s whole-mapping range that makes `pc` this object's.
    pub(super) fn covers(&self, pc: u64) -> bool {
        self.start <= pc && pc < self.end
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
