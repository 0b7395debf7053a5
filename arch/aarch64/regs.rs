//! aarch64 register file for the CFI stack walk, indexed by DWARF register number
//! (AArch64 DWARF ABI supplement, "DWARF register names": x0-x30 = 0-30, sp = 31,
//! pc = 32, the `RA_SIGN_STATE` pseudo-register = 34).
//!
//! Unlike x86_64, the return-address column (x30, the link register) is not the
//! pc: a frame's pc lives in its own slot (32), set from the callee's x30 with any
//! pointer-authentication signature stripped.

use gimli::{AArch64, Register};

/// DWARF number of the return-address column: x30, the link register.
pub(crate) const RA: Register = AArch64::X30;

/// DWARF number of the stack pointer.
pub(crate) const SP: Register = AArch64::SP;

/// DWARF number of the pc, which is not a CFI column on aarch64.
const PC: Register = AArch64::PC;

/// Pseudo-register holding the return-address signing state: bit 0 set when the
/// frame's saved x30 is signed (AArch64 DWARF ABI supplement; toggled by
/// `DW_CFA_AARCH64_negate_ra_state`, which gimli turns into `Constant(0 | 1)`).
pub(crate) const RA_SIGN_STATE: Option<Register> = Some(AArch64::RA_SIGN_STATE);

/// Size of an address (and of a stack slot) in bytes.
pub(crate) const ADDRESS_SIZE: u8 = 8;

/// Number of DWARF registers the context holds: x0..x30 (0..=30), sp (31), pc (32).
/// The vector registers (64..) are never needed to find a return address.
const COUNT: usize = 33;

/// The `known` bits of the registers [`capture`](super::capture) fills in: the
/// callee-saved x19-x28, the frame pointer x29, sp and pc (AAPCS64 §6.1.1: x19-x29
/// are preserved across calls; the caller-saved ones are dead at a call site).
pub(crate) const CAPTURED: u64 = {
    let mut bits = 0;
    let mut n = 19;
    while n <= 29 {
        bits |= 1 << n;
        n += 1;
    }
    bits | bit(SP) | bit(PC)
};

/// The `known` bits of the callee-saved registers x19-x29 (AAPCS64 §6.1.1).
const CALLEE_SAVED: u64 = CAPTURED & !bit(SP) & !bit(PC);

/// Register rules a frame that saves every callee-saved register has: those,
/// the return-address column and the stack pointer.
pub(crate) const FULL_SAVE_RULES: usize = CALLEE_SAVED.count_ones() as usize + 2;

/// The `known` bit of register `reg` (which must be below [`COUNT`]).
const fn bit(reg: Register) -> u64 {
    1 << reg.0
}

/// The gimli vendor whose CFI extensions apply: without it gimli rejects
/// `DW_CFA_AARCH64_negate_ra_state` (opcode 0x2d, which is
/// `DW_CFA_GNU_window_save` on SPARC).
pub(crate) fn vendor() -> gimli::Vendor {
    gimli::Vendor::AArch64
}

/// Whether `reg` is callee-saved (AAPCS64 §6.1.1: x19-x29; also d8-d15, which the
/// walk does not track). A callee-saved register with no CFI rule keeps its value
/// across the call; any other register without a rule is unknown in the caller.
pub(crate) fn is_callee_saved(reg: Register) -> bool {
    usize::from(reg.0) < COUNT && CALLEE_SAVED & bit(reg) != 0
}

/// The registers of one frame, by DWARF number, each with a "known" flag.
pub(crate) type Context =
    crate::arch::register_file::RegisterFile<COUNT, CALLEE_SAVED, { PC.0 }, { SP.0 }>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_set() {
        let mut ctx = Context::new();
        assert_eq!(ctx.get(SP), None);
        ctx.set(SP, 0x1000);
        ctx.set_pc(0x2000);
        ctx.set(RA, 0x3000);
        assert_eq!(ctx.sp(), Some(0x1000));
        assert_eq!(ctx.pc(), Some(0x2000), "the pc is not the RA column");
        assert_eq!(ctx.get(RA), Some(0x3000));
        // Outside the file: the signing state and v0 are ignored, not a panic.
        ctx.set(AArch64::RA_SIGN_STATE, 1);
        ctx.set(AArch64::V0, 1);
        assert_eq!(ctx.get(AArch64::RA_SIGN_STATE), None);
        assert_eq!(ctx.get(AArch64::V0), None);
    }

    #[test]
    fn callee_saved_set() {
        let saved: Vec<u16> =
            Context::REGISTERS.iter().filter(|r| is_callee_saved(**r)).map(|r| r.0).collect();
        assert_eq!(saved, (19..=29).collect::<Vec<u16>>());
        assert!(!is_callee_saved(RA), "x30 is the return-address column, not preserved");
        // x19-x29, sp and pc.
        assert_eq!(CAPTURED.count_ones(), 13);
    }
}
