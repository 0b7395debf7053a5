//! The uncached lookup of a pc's unwind rules: the object's `.eh_frame_hdr` search
//! table gives the FDE, gimli runs the CIE and FDE programs up to the pc, and the
//! row's rules go into a [`Rules`]; with the gimli types the rest of the walk
//! names. The row cache in front of it, and the policy of when to ask it, are
//! `cache/rows.rs` (`locate`).

use super::rules::Rules;
use super::storage::UnwindCtx;
use crate::arch;
use crate::walk::{ObjectInfo, WalkError};
use gimli::{
    BaseAddresses, EhFrame, EhFrameHdr, EhFrameOffset, EndianSlice, NativeEndian, Register,
    UnwindSection,
};

/// The reader type for mapped unwind sections.
pub(crate) type Slice<'a> = EndianSlice<'a, NativeEndian>;

/// A parsed FDE of a mapped `.eh_frame`.
type Fde<'a> = gimli::FrameDescriptionEntry<Slice<'a>, usize>;

/// What the CIE and FDE say about a pc besides its rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    /// The CIE's encoding, for evaluating expressions.
    pub(crate) encoding: gimli::Encoding,
    /// The CIE's return-address column.
    pub(crate) ra_column: Register,
    /// Whether the CIE has augmentation `S`: a signal trampoline, whose caller's
    /// pc is an interrupted instruction rather than a return address.
    pub(crate) signal_trampoline: bool,
}

impl Meta {
    /// An ordinary frame's CIE facts: 64-bit addresses, DWARF32, version 1, the
    /// ISA's return-address column, no signal frame (tests build rows without a
    /// CIE).
    #[cfg(test)]
    pub(crate) fn ordinary() -> Self {
        Meta {
            encoding: gimli::Encoding {
                address_size: 8,
                format: gimli::Format::Dwarf32,
                version: 1,
            },
            ra_column: arch::RA,
            signal_trampoline: false,
        }
    }
}

/// Where a row's CIE and FDE are: `(offset in .eh_frame, length)`, the length as
/// the entry's length field gives it (the field itself not included).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin {
    /// The CIE.
    pub(crate) cie: (usize, usize),
    /// The FDE.
    pub(crate) fde: (usize, usize),
}

/// The unwind rules that cover a pc, with what evaluating them needs.
#[derive(Clone, Debug)]
pub(crate) struct Located<'a, 'r> {
    /// The row's CFA rule and register rules at the pc.
    pub(crate) rules: &'r Rules,
    /// The section the rules' expressions point into.
    pub(crate) eh_frame: EhFrame<Slice<'a>>,
    /// The CIE's encoding, for evaluating expressions.
    pub(crate) encoding: gimli::Encoding,
    /// The CIE's return-address column.
    pub(crate) ra_column: Register,
    /// Whether the CIE has augmentation `S`.
    pub(crate) signal_trampoline: bool,
    /// The address the row was looked up at (for error messages).
    pub(crate) pc: u64,
}

impl<'a, 'r> Located<'a, 'r> {
    /// The rules `rules` and `meta` found for `pc` in `object`.
    pub(crate) fn new(object: &ObjectInfo<'a>, pc: u64, rules: &'r Rules, meta: Meta) -> Self {
        let Meta { encoding, ra_column, signal_trampoline } = meta;
        Located { rules, eh_frame: section(object), encoding, ra_column, signal_trampoline, pc }
    }
}

/// `object`'s `.eh_frame` as gimli reads it.
pub(crate) fn section<'a>(object: &ObjectInfo<'a>) -> EhFrame<Slice<'a>> {
    let mut eh_frame = EhFrame::new(object.eh_frame, NativeEndian);
    eh_frame.set_address_size(arch::ADDRESS_SIZE);
    eh_frame.set_vendor(arch::vendor());
    eh_frame
}

/// The uncached lookup: the FDE from the search table, the row from gimli (run in
/// `ctx`), its rules into `rules`.
pub(crate) fn evaluate(
    object: &ObjectInfo<'_>,
    pc: u64,
    ctx: &mut UnwindCtx,
    rules: &mut Rules,
) -> Result<(Meta, Origin), WalkError> {
    let bad = bad_cfi(pc);
    let (eh_frame, bases, fde) = fde_for(object, pc)?;
    let cie = fde.cie();
    let meta = Meta {
        encoding: cie.encoding(),
        ra_column: cie.return_address_register(),
        signal_trampoline: fde.is_signal_trampoline(),
    };
    let origin =
        Origin { cie: (cie.offset(), cie.entry_len()), fde: (fde.offset(), fde.entry_len()) };
    let row = fde.unwind_info_for_address(&eh_frame, &bases, ctx, pc).map_err(bad)?;
    rules.set_from(row);
    Ok((meta, origin))
}

/// The first address of the function whose FDE covers `pc` (its
/// `initial_location`).
pub(crate) fn function_start(object: &ObjectInfo<'_>, pc: u64) -> Result<u64, WalkError> {
    Ok(fde_for(object, pc)?.2.initial_address())
}

/// A gimli error for `pc` as a walk error.
fn bad_cfi(pc: u64) -> impl Fn(gimli::Error) -> WalkError + Copy {
    move |error| match error {
        gimli::Error::NoUnwindInfoForAddress => WalkError::NoFde { pc },
        error => WalkError::BadCfi { pc, error },
    }
}

/// The FDE covering `pc`, found with the object's search table, with the section
/// and bases it was parsed with.
fn fde_for<'a>(
    object: &ObjectInfo<'a>,
    pc: u64,
) -> Result<(EhFrame<Slice<'a>>, BaseAddresses, Fde<'a>), WalkError> {
    let bad = bad_cfi(pc);
    let bases = BaseAddresses::default()
        .set_eh_frame_hdr(object.eh_frame_hdr_addr)
        .set_eh_frame(object.eh_frame_addr);
    let hdr = EhFrameHdr::new(object.eh_frame_hdr, NativeEndian)
        .parse(&bases, arch::ADDRESS_SIZE)
        .map_err(bad)?;
    let table = hdr.table().ok_or(WalkError::NoSearchTable { pc })?;
    if !table_fits(object.eh_frame_hdr, table.iter(&bases).size_hint().1) {
        return Err(WalkError::BadSearchTable { pc });
    }
    let eh_frame = section(object);

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
    Ok((eh_frame, bases, fde))
}

/// Whether a search table of `count` entries fits in the header's bytes. gimli's
/// `lookup` computes `count / 2 * entry size` unchecked, which a corrupt count
/// overflows (a panic in debug builds); within the header's length it cannot.
fn table_fits(eh_frame_hdr: &[u8], count: Option<usize>) -> bool {
    use gimli::constants as dw;
    // The fourth byte is the table's encoding; an entry is two values in it.
    let Some(&encoding) = eh_frame_hdr.get(3) else { return false };
    let value = match gimli::DwEhPe(encoding).format() {
        dw::DW_EH_PE_udata2 | dw::DW_EH_PE_sdata2 => 2,
        dw::DW_EH_PE_udata4 | dw::DW_EH_PE_sdata4 => 4,
        dw::DW_EH_PE_udata8 | dw::DW_EH_PE_sdata8 => 8,
        // gimli refuses any other encoding before computing anything.
        _ => return true,
    };
    count
        .and_then(|count| count.checked_mul(2 * value))
        .is_some_and(|bytes| bytes <= eh_frame_hdr.len())
}
