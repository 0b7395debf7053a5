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
        let bases = BaseAddresses::default().set_eh_frame_hdr(hdr);
        let parsed = EhFrameHdr::new(bytes, NativeEndian)
            .parse(&bases, arch::ADDRESS_SIZE)
            .map_err(|error| WalkError::BadCfi { pc, error })?;
        let eh_frame =
            parsed.eh_frame_ptr().direct().map_err(|error| WalkError::BadCfi { pc, error })?;
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

    /// Identity of the object: its `.eh_frame_hdr` address.
    pub(super) fn id(&self) -> u64 {
        self.eh_frame_hdr
    }
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
