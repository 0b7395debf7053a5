//! x86_64 register file for the CFI stack walk, indexed by DWARF register number
//! (System V psABI, figure 3.36: rax=0 .. r15=15, return address / rip = 16).
//!
//! The walker in `src/walk/` uses only the names exported here (`Context`, `RA`,
//! `SP`, `RA_SIGN_STATE`, `ADDRESS_SIZE`, `vendor`, `is_callee_saved`,
//! `strip_return_address`), so an aarch64 port provides the same names.

use gimli::Register;

/// DWARF number of the return-address column; on x86_64 it is also the pc (rip).
pub(crate) const RA: Register = gimli::X86_64::RA;

/// DWARF number of the stack pointer (rsp).
pub(crate) const SP: Register = gimli::X86_64::RSP;

/// Pseudo-register holding the return-address signing state, if the ISA has one.
/// x86_64 has no pointer authentication, so return addresses are never signed.
pub(crate) const RA_SIGN_STATE: Option<Register> = None;

/// Size of an address (and of a stack slot) in bytes.
pub(crate) const ADDRESS_SIZE: u8 = 8;

/// Number of DWARF registers the context holds: rax..r15 (0..=15) and rip (16).
const COUNT: usize = 17;

/// The `known` bits of the registers [`capture`](super::capture) fills in: the
/// callee-saved registers, rsp and rip. Caller-saved registers are dead at a call
/// site, so their values at the capture point mean nothing to the walk.
pub(crate) const CAPTURED: u64 = bit(gimli::X86_64::RBX)
    | bit(gimli::X86_64::RBP)
    | bit(gimli::X86_64::R12)
    | bit(gimli::X86_64::R13)
    | bit(gimli::X86_64::R14)
    | bit(gimli::X86_64::R15)
    | bit(SP)
    | bit(RA);

/// The `known` bits of the callee-saved registers (psABI 3.2.1: rbx, rbp,
/// r12-r15).
const CALLEE_SAVED: u64 = bit(gimli::X86_64::RBX)
    | bit(gimli::X86_64::RBP)
    | bit(gimli::X86_64::R12)
    | bit(gimli::X86_64::R13)
    | bit(gimli::X86_64::R14)
    | bit(gimli::X86_64::R15);

/// Register rules a frame that saves every callee-saved register has: those,
/// the return-address column and the stack pointer.
pub(crate) const FULL_SAVE_RULES: usize = CALLEE_SAVED.count_ones() as usize + 2;

/// The `known` bit of register `reg` (which must be below [`COUNT`]).
const fn bit(reg: Register) -> u64 {
    1 << reg.0
}

/// The gimli vendor whose CFI extensions apply (none beyond the GNU ones on x86_64).
pub(crate) fn vendor() -> gimli::Vendor {
    gimli::Vendor::Default
}

/// Whether `reg` is callee-saved (psABI 3.2.1: rbx, rbp, r12-r15). A callee-saved
/// register with no CFI rule keeps its value across the call ("same value");
/// any other register without a rule is unknown in the caller.
pub(crate) fn is_callee_saved(reg: Register) -> bool {
    usize::from(reg.0) < COUNT && CALLEE_SAVED & bit(reg) != 0
}

/// The code address inside a return address as stored on the stack. x86_64 stores
/// plain addresses; an ISA with pointer authentication strips the signature here.
pub(crate) fn strip_return_address(ra: u64, _signed: bool) -> u64 {
    ra
}

/// Signs `address` as a return address saved by a frame whose CFA is `modifier`.
/// x86_64 has no pointer authentication; the walk never reports a signed frame.
pub(crate) fn sign_return_address(address: u64, _modifier: u64) -> u64 {
    address
}

/// The registers of one frame, by DWARF number, each with a "known" flag.
pub(crate) type Context =
    crate::arch::register_file::RegisterFile<COUNT, CALLEE_SAVED, { RA.0 }, { SP.0 }>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_set() {
        let mut ctx = Context::new();
        assert_eq!(ctx.get(SP), None);
        ctx.set(SP, 0x1000);
        ctx.set_pc(0x2000);
        assert_eq!(ctx.sp(), Some(0x1000));
        assert_eq!(ctx.pc(), Some(0x2000));
        // A register outside the file is ignored, not a panic.
        ctx.set(Register(17), 1);
        assert_eq!(ctx.get(Register(17)), None);
    }

    #[test]
    fn callee_saved_set() {
        let saved: Vec<u16> =
            Context::REGISTERS.iter().filter(|r| is_callee_saved(**r)).map(|r| r.0).collect();
        assert_eq!(saved, [3, 6, 12, 13, 14, 15]);
        assert_eq!(CAPTURED.count_ones(), 8);
    }
}
