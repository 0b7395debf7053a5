//! The `.eh_frame` bytes of one trampoline copy: one CIE, one FDE covering the copy
//! from its pad byte, and the 4-byte zero that ends an `.eh_frame` for libgcc.
//!
//! x86_64, pad `0x1000`, original return `0x7f00_1234_5678` (the `decodes_to_the_
//! documented_bytes` test checks exactly these):
//!
//! ```text
//! CIE
//!   0c 00 00 00           length 12
//!   00 00 00 00           CIE id 0 (.eh_frame)
//!   01                    version 1
//!   00                    augmentation "" (absptr FDE addresses, no personality)
//!   01                    code alignment factor 1 (uleb128)
//!   78                    data alignment factor -8 (sleb128)
//!   10                    return-address column 16 (rip)
//!   0c 07 00              DW_CFA_def_cfa: rsp (7) + 0
//! FDE
//!   2c 00 00 00           length 44
//!   14 00 00 00           CIE pointer: 20 bytes back, to the CIE
//!   00 10 00 00 00 00 00 00   pc_begin 0x1000 (absptr: the pad byte)
//!   10 00 00 00 00 00 00 00   pc_range 16 (TRAMPOLINE_LEN)
//!   16 10 08              DW_CFA_val_expression: rip (16) = the value of an 8-byte expression:
//!   10 f8 ac d1 91 81 e0 1f  DW_OP_constu 0x7f00_1234_5678 (uleb128)
//!   42                    DW_CFA_advance_loc 2    (pad + 2, after `push rax`)
//!   0e 08                 DW_CFA_def_cfa_offset 8
//!   41                    DW_CFA_advance_loc 1    (pad + 3, after `push rdx`)
//!   0e 10                 DW_CFA_def_cfa_offset 16
//!   46                    DW_CFA_advance_loc 6    (pad + 9, after `pop rdx`)
//!   0e 08                 DW_CFA_def_cfa_offset 8
//!   41                    DW_CFA_advance_loc 1    (pad + 10, after `pop rax`)
//!   0e 00                 DW_CFA_def_cfa_offset 0
//!   00                    DW_CFA_nop (pads the FDE to a multiple of 8)
//! terminator
//!   00 00 00 00
//! ```
//!
//! aarch64, same pad and address: the CIE has code alignment factor `04`, return
//! address column `1e` (x30) and `0c 1f 00` (`DW_CFA_def_cfa: sp (31) + 0`); the
//! FDE has pc_range `20` (32), `16 1e 08 ..` (`DW_CFA_val_expression: x30 = ..`),
//! then `42 0e 10` (advance 2 x 4 bytes to pad + 8, after `stp`; CFA = sp + 16),
//! `42 0e 00` (pad + 16, after `ldp`; CFA = sp + 0) and seven `DW_CFA_nop`s. No
//! `RA_SIGN_STATE` rule: the constant return address is not signed.
//!
//! The return address is a *value* rule (`DW_CFA_val_expression`, DWARF 5
//! §6.4.2.3): the caller's pc is the constant itself, not a load from the stack,
//! because the hijacked slot no longer holds it. Registers without a rule keep
//! their value ("same value"), which is right: the trampoline preserves every
//! register its caller could rely on.

use gimli::write::{
    Address, CallFrameInstruction, CommonInformationEntry, EhFrame, EndianVec, Expression,
    FrameDescriptionEntry, FrameTable,
};
use gimli::{Encoding, Format, NativeEndian};

use super::UnwindInfoError;
use crate::arch;

/// Length of the zero word that ends an `.eh_frame` for libgcc's `__register_frame`.
const TERMINATOR_LEN: usize = 4;

/// Builds the zero-terminated `.eh_frame` of the copy whose pad byte is at `pad`
/// and which continues at `original_return`.
pub(super) fn build(pad: usize, original_return: usize) -> Result<Vec<u8>, UnwindInfoError> {
    // `.eh_frame` CIEs are always version 1 and 32-bit DWARF.
    let encoding =
        Encoding { format: Format::Dwarf32, version: 1, address_size: arch::ADDRESS_SIZE };
    let mut cie =
        CommonInformationEntry::new(encoding, arch::CODE_ALIGNMENT, arch::DATA_ALIGNMENT, arch::RA);
    // `fde_address_encoding` stays absptr: gdb reads the JIT object's copy of these
    // bytes at another address, so pc-relative addresses would be wrong there.
    let mut cfa_offset = 0;
    cie.add_instruction(CallFrameInstruction::Cfa(arch::SP, cfa_offset));

    let len = u32::try_from(arch::TRAMPOLINE_LEN).map_err(|_| UnwindInfoError::Encode)?;
    let mut fde = FrameDescriptionEntry::new(Address::Constant(pad as u64), len);
    let mut ra = Expression::new();
    ra.op_constu(original_return as u64);
    fde.add_instruction(0, CallFrameInstruction::ValExpression(arch::RA, ra));
    for &(offset, cfa) in arch::TRAMPOLINE_CFA_ROWS {
        let cfa = i32::try_from(cfa).map_err(|_| UnwindInfoError::Encode)?;
        if cfa != cfa_offset {
            fde.add_instruction(offset, CallFrameInstruction::CfaOffset(cfa));
            cfa_offset = cfa;
        }
    }

    let mut table = FrameTable::default();
    let cie = table.add_cie(cie);
    table.add_fde(cie, fde);
    let mut section = EhFrame(EndianVec::new(NativeEndian));
    table.write_eh_frame(&mut section).map_err(|_| UnwindInfoError::Encode)?;
    let mut bytes = section.0.into_vec();
    bytes.extend_from_slice(&[0; TERMINATOR_LEN]);
    Ok(bytes)
}

/// Offset of the (only) FDE in bytes from [`build`]: just past the CIE, whose
/// first word is its length without that word.
pub(super) fn fde_offset(eh_frame: &[u8]) -> usize {
    let mut length = [0; 4];
    length.copy_from_slice(&eh_frame[..4]);
    4 + u32::from_ne_bytes(length) as usize
}

#[cfg(test)]
mod tests {
    use gimli::{
        BaseAddresses, CfaRule, CieOrFde, Operation, ReaderOffset, Register, RegisterRule,
        UnwindContext, UnwindContextStorage, UnwindSection, UnwindTableRow,
    };

    use super::*;

    const PAD: usize = 0x1000;
    const ORIGINAL: usize = 0x7f00_1234_5678;

    /// In-line storage for gimli's unwind context (the crate uses gimli without
    /// its heap-backed default).
    struct Small;

    impl<T: ReaderOffset> UnwindContextStorage<T> for Small {
        type Rules = [(Register, RegisterRule<T>); 8];
        type Stack = [UnwindTableRow<T, Self>; 2];
    }

    /// The bytes the module documentation decodes, for x86_64.
    #[cfg(target_arch = "x86_64")]
    #[rustfmt::skip]
    const EXPECTED: &[u8] = &[
        // CIE
        0x0c, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x01, 0x78, 0x10, 0x0c, 0x07, 0x00,
        // FDE
        0x2c, 0, 0, 0, 0x14, 0, 0, 0,
        0x00, 0x10, 0, 0, 0, 0, 0, 0,
        0x10, 0, 0, 0, 0, 0, 0, 0,
        0x16, 0x10, 0x08, 0x10, 0xf8, 0xac, 0xd1, 0x91, 0x81, 0xe0, 0x1f,
        0x42, 0x0e, 0x08, 0x41, 0x0e, 0x10, 0x46, 0x0e, 0x08, 0x41, 0x0e, 0x00,
        0x00,
        // terminator
        0, 0, 0, 0,
    ];

    /// The bytes the module documentation decodes, for aarch64.
    #[cfg(target_arch = "aarch64")]
    #[rustfmt::skip]
    const EXPECTED: &[u8] = &[
        // CIE
        0x0c, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x04, 0x78, 0x1e, 0x0c, 0x1f, 0x00,
        // FDE
        0x2c, 0, 0, 0, 0x14, 0, 0, 0,
        0x00, 0x10, 0, 0, 0, 0, 0, 0,
        0x20, 0, 0, 0, 0, 0, 0, 0,
        0x16, 0x1e, 0x08, 0x10, 0xf8, 0xac, 0xd1, 0x91, 0x81, 0xe0, 0x1f,
        0x42, 0x0e, 0x10, 0x42, 0x0e, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        // terminator
        0, 0, 0, 0,
    ];

    #[test]
    fn decodes_to_the_documented_bytes() {
        let bytes = build(PAD, ORIGINAL).unwrap();
        assert_eq!(bytes, EXPECTED, "{bytes:02x?}");
        assert_eq!(fde_offset(&bytes), 16);
    }

    #[test]
    fn rows_parse_back() {
        let bytes = build(PAD, ORIGINAL).unwrap();
        let eh_frame = gimli::EhFrame::new(&bytes, NativeEndian);
        let bases = BaseAddresses::default();
        let mut entries = eh_frame.entries(&bases);
        let mut fdes = Vec::new();
        while let Some(entry) = entries.next().unwrap() {
            if let CieOrFde::Fde(partial) = entry {
                fdes.push(partial.parse(gimli::EhFrame::cie_from_offset).unwrap());
            }
        }
        assert_eq!(fdes.len(), 1, "one FDE, then the terminator ends the section");
        let fde = &fdes[0];
        assert_eq!(fde.initial_address(), PAD as u64);
        assert_eq!(fde.len(), arch::TRAMPOLINE_LEN as u64);

        let mut ctx = UnwindContext::<usize, Small>::new_in();
        let mut expected_cfa = 0;
        for offset in 0..arch::TRAMPOLINE_LEN {
            if let Some(&(_, cfa)) =
                arch::TRAMPOLINE_CFA_ROWS.iter().find(|(at, _)| *at as usize == offset)
            {
                expected_cfa = cfa;
            }
            let address = (PAD + offset) as u64;
            let row = fde.unwind_info_for_address(&eh_frame, &bases, &mut ctx, address).unwrap();
            assert_eq!(
                *row.cfa(),
                CfaRule::RegisterAndOffset { register: arch::SP, offset: i64::from(expected_cfa) },
                "CFA at pad + {offset}"
            );
            let Some(RegisterRule::ValExpression(expression)) = row.register(arch::RA) else {
                panic!("RA rule at pad + {offset}: {:?}", row.register(arch::RA));
            };
            let mut ops = expression.get(&eh_frame).unwrap().0;
            let op = Operation::parse(&mut ops, fde.cie().encoding()).unwrap();
            assert_eq!(op, Operation::UnsignedConstant { value: ORIGINAL as u64 });
            assert!(ops.is_empty(), "one operation");
            let ruled: Vec<Register> = row.registers().map(|(reg, _)| *reg).collect();
            assert_eq!(ruled, [arch::RA], "no rule but the return address's");
        }
        let past = (PAD + arch::TRAMPOLINE_LEN) as u64;
        assert!(fde.unwind_info_for_address(&eh_frame, &bases, &mut ctx, past).is_err());
    }
}
