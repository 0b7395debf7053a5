//! Finds the unwind-table row for a pc: the object's `.eh_frame_hdr` search table
//! gives the FDE, and gimli runs the CIE and FDE programs up to the pc.
//!
//! This is a pure function of (object, pc), which is where a per-pc row cache
//! would slot in later.

use super::storage::Fixed;
use super::{ObjectInfo, WalkError};
use crate::arch;
use gimli::{
    BaseAddresses, EhFrame, EhFrameHdr, EhFrameOffset, EndianSlice, NativeEndian, Register,
    UnwindContext, UnwindSection, UnwindTableRow,
};

/// The reader type for mapped unwind sections.
pub(crate) type Slice<'a> = EndianSlice<'a, NativeEndian>;

/// gimli's unwind state, in fixed in-line storage (a few KB on the stack).
pub(crate) type UnwindCtx = UnwindContext<usize, Fixed>;

/// One row of an FDE's unwind table.
pub(crate) type Row = UnwindTableRow<usize, Fixed>;

/// The unwind row that covers a pc, with what evaluating it needs.
pub(crate) struct Located<'a, 'ctx> {
    /// The row: CFA rule and register rules at the pc.
    pub(crate) row: &'ctx Row,
    /// The section the row's expressions point into.
    pub(crate) eh_frame: EhFrame<Slice<'a>>,
    /// The CIE's encoding, for evaluating expressions.
    pub(crate) encoding: gimli::Encoding,
    /// The CIE's return-address column.
    pub(crate) ra_column: Register,
    /// Whether the CIE has augmentation `S`: a signal trampoline, whose caller's
    /// pc is an interrupted instruction rather than a return address.
    pub(crate) signal_trampoline: bool,
    /// The address the row was looked up at (for error messages).
    pub(crate) pc: u64,
}

/// Looks up the row for `pc` in `object`, evaluating CFI into `ctx`.
pub(crate) fn locate<'a, 'ctx>(
    object: &ObjectInfo<'a>,
    pc: u64,
    ctx: &'ctx mut UnwindCtx,
) -> Result<Located<'a, 'ctx>, WalkError> {
    let bad = |error| match error {
        gimli::Error::NoUnwindInfoForAddress => WalkError::NoFde { pc },
        error => WalkError::BadCfi { pc, error },
    };
    let bases = BaseAddresses::default()
        .set_eh_frame_hdr(object.eh_frame_hdr_addr)
        .set_eh_frame(object.eh_frame_addr);
    let hdr = EhFrameHdr::new(object.eh_frame_hdr, NativeEndian)
        .parse(&bases, arch::ADDRESS_SIZE)
        .map_err(bad)?;
    let table = hdr.table().ok_or(WalkError::NoSearchTable { pc })?;
    let mut eh_frame = EhFrame::new(object.eh_frame, NativeEndian);
    eh_frame.set_address_size(arch::ADDRESS_SIZE);
    eh_frame.set_vendor(arch::vendor());

    // The table gives the FDE that starts at or below `pc`; its address is turned
    // into a section offset here (checked, unlike gimli's `pointer_to_offset`),
    // and the FDE must really cover `pc`.
    let fde_addr = table.lookup(pc, &bases).map_err(bad)?.direct().map_err(bad)?;
    let offset = fde_addr
        .checked_sub(object.eh_frame_addr)
        .and_then(|off| usize::try_from(off).ok())
        .filter(|&off| off < object.eh_frame.len())
        .ok_or(WalkError::BadSearchTable { pc })?;
    let fde = eh_frame
        .fde_from_offset(&bases, EhFrameOffset(offset), EhFrame::cie_from_offset)
        .map_err(bad)?;
    if !fde.contains(pc) {
        return Err(WalkError::NoFde { pc });
    }
    let cie = fde.cie();
    let (encoding, ra_column) = (cie.encoding(), cie.return_address_register());
    let signal_trampoline = fde.is_signal_trampoline();
    let row = fde.unwind_info_for_address(&eh_frame, &bases, ctx, pc).map_err(bad)?;
    Ok(Located { row, eh_frame, encoding, ra_column, signal_trampoline, pc })
}
