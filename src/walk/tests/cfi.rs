//! Builds synthetic `.eh_frame` (with `gimli::write`) and a matching
//! `.eh_frame_hdr` with a binary search table, laid out as GNU ld does: header
//! pointers `pcrel|sdata4` and table entries `datarel|sdata4`.

use super::fake::FakeObject;
use super::isa;
use core::ops::Range;
use gimli::constants::{
    DW_EH_PE_datarel, DW_EH_PE_omit, DW_EH_PE_pcrel, DW_EH_PE_sdata4, DW_EH_PE_udata4,
};
use gimli::write::{
    Address, CallFrameInstruction, CommonInformationEntry, EndianVec, FrameDescriptionEntry,
    FrameTable,
};
use gimli::{BaseAddresses, CieOrFde, Encoding, Format, LittleEndian, UnwindSection};

pub(super) use gimli::write::CallFrameInstruction as Cfi;
pub(super) use gimli::write::Expression;

/// One synthetic function: its code range and the CFI rules valid throughout.
#[derive(Clone, Debug)]
pub(super) struct Func {
    /// First code address.
    pub(super) start: u64,
    /// Code length.
    pub(super) len: u32,
    /// Whether its CIE has augmentation `S`.
    pub(super) signal: bool,
    /// Whether its CIE omits the return-address rule.
    pub(super) no_ra: bool,
    /// Instructions applied at the function's first byte, after the CIE's
    /// initial `CFA = sp + 8; return address at CFA - 8`.
    pub(super) rules: Vec<CallFrameInstruction>,
}

impl Func {
    /// A function at `start..start + len` with `rules`.
    pub(super) fn new(start: u64, len: u32, rules: Vec<CallFrameInstruction>) -> Self {
        Func { start, len, signal: false, no_ra: false, rules }
    }

    /// The same function marked as a signal trampoline.
    pub(super) fn signal(mut self) -> Self {
        self.signal = true;
        self
    }

    /// The same function under a CIE that gives the return address no rule.
    pub(super) fn no_ra(mut self) -> Self {
        self.no_ra = true;
        self
    }
}

/// The synthetic CIE: x86_64's as GCC emits it (without the return-address rule
/// if `!ra`), with the ISA's registers and code alignment.
fn cie(signal: bool, ra: bool) -> CommonInformationEntry {
    let encoding = Encoding { address_size: 8, format: Format::Dwarf32, version: 1 };
    let mut cie = CommonInformationEntry::new(encoding, isa::CODE_ALIGNMENT, -8, isa::RA);
    cie.fde_address_encoding = DW_EH_PE_pcrel | DW_EH_PE_sdata4;
    cie.signal_trampoline = signal;
    cie.add_instruction(CallFrameInstruction::Cfa(isa::SP, 8));
    if ra {
        cie.add_instruction(CallFrameInstruction::Offset(isa::RA, -8));
    }
    cie
}

/// A fake object covering `text` whose FDEs describe `funcs`. Its sections are
/// "mapped" just above the text.
pub(super) fn object(text: Range<u64>, is_libc: bool, funcs: &[Func]) -> FakeObject {
    build(text, is_libc, funcs, true)
}

/// Like [`object`] but the `.eh_frame_hdr` has no search table.
pub(super) fn object_without_table(text: Range<u64>, funcs: &[Func]) -> FakeObject {
    build(text, false, funcs, false)
}

/// Writes the sections.
fn build(text: Range<u64>, is_libc: bool, funcs: &[Func], with_table: bool) -> FakeObject {
    let eh_frame_hdr_addr = text.end + 0x1000;
    let eh_frame_addr = text.end + 0x2000;
    let (eh_frame_hdr, eh_frame) = sections(funcs, eh_frame_hdr_addr, eh_frame_addr, with_table);
    FakeObject { text, eh_frame_hdr, eh_frame_hdr_addr, eh_frame, eh_frame_addr, is_libc }
}

/// `.eh_frame_hdr` and `.eh_frame` describing `funcs`, for the given addresses.
pub(super) fn sections(
    funcs: &[Func],
    eh_frame_hdr_addr: u64,
    eh_frame_addr: u64,
    with_table: bool,
) -> (Vec<u8>, Vec<u8>) {
    let mut table = FrameTable::default();
    let plain = table.add_cie(cie(false, true));
    let signal = table.add_cie(cie(true, true));
    let no_ra = table.add_cie(cie(false, false));
    for func in funcs {
        // pcrel: gimli writes `value - offset in section`, so the value is the
        // target's distance from the section start.
        let address = Address::Constant(func.start.wrapping_sub(eh_frame_addr));
        let mut fde = FrameDescriptionEntry::new(address, func.len);
        for rule in &func.rules {
            fde.add_instruction(0, rule.clone());
        }
        let cie = match (func.signal, func.no_ra) {
            (true, _) => signal,
            (false, true) => no_ra,
            (false, false) => plain,
        };
        table.add_fde(cie, fde);
    }
    let mut section = gimli::write::EhFrame(EndianVec::new(LittleEndian));
    table.write_eh_frame(&mut section).unwrap();
    let mut eh_frame = section.0.into_vec();
    eh_frame.extend_from_slice(&[0; 4]); // zero terminator

    // Find each FDE's offset and initial address by reading the section back.
    let reader = gimli::EhFrame::new(&eh_frame, LittleEndian);
    let bases = BaseAddresses::default().set_eh_frame(eh_frame_addr);
    let mut entries = reader.entries(&bases);
    let mut rows = Vec::new();
    while let Some(entry) = entries.next().unwrap() {
        if let CieOrFde::Fde(partial) = entry {
            let fde = partial.parse(gimli::EhFrame::cie_from_offset).unwrap();
            rows.push((fde.initial_address(), eh_frame_addr + fde.offset() as u64));
        }
    }
    rows.sort();

    let rel = |addr: u64, base: u64| (addr.wrapping_sub(base) as i64 as i32).to_le_bytes();
    let mut hdr = vec![
        1,
        (DW_EH_PE_pcrel | DW_EH_PE_sdata4).0,
        if with_table { DW_EH_PE_udata4.0 } else { DW_EH_PE_omit.0 },
        if with_table { (DW_EH_PE_datarel | DW_EH_PE_sdata4).0 } else { DW_EH_PE_omit.0 },
    ];
    hdr.extend_from_slice(&rel(eh_frame_addr, eh_frame_hdr_addr + 4));
    if with_table {
        hdr.extend_from_slice(&(rows.len() as u32).to_le_bytes());
        for (initial, fde) in rows {
            hdr.extend_from_slice(&rel(initial, eh_frame_hdr_addr));
            hdr.extend_from_slice(&rel(fde, eh_frame_hdr_addr));
        }
    }
    (hdr, eh_frame)
}
