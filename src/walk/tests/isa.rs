//! The registers of the synthetic walks, named by role, so the same fake processes
//! exercise the walker of either ISA.
//!
//! The synthetic CIE is the same on both: `CFA = sp + 8`, return address saved at
//! `CFA - 8` (x86_64's real CIE; on aarch64 only a shape, which the walker does not
//! care about). aarch64's real CIE and prologues are in the `aarch64` tests.

use gimli::Register;
use gimli::constants::DwOp;

#[cfg(target_arch = "x86_64")]
mod imp {
    use gimli::constants::{self as dw, DwOp};
    use gimli::{Register, X86_64};

    pub(in super::super) const SP: Register = X86_64::RSP;
    pub(in super::super) const RA: Register = X86_64::RA;
    pub(in super::super) const SAVED: Register = X86_64::RBX;
    pub(in super::super) const SAVED_2: Register = X86_64::R12;
    pub(in super::super) const SCRATCH: Register = X86_64::RAX;
    /// xmm0.
    pub(in super::super) const OUTSIDE: Register = Register(17);
    pub(in super::super) const BREG_SP: DwOp = dw::DW_OP_breg7;
    pub(in super::super) const CODE_ALIGNMENT: u8 = 1;
}

#[cfg(target_arch = "aarch64")]
mod imp {
    use gimli::constants::{self as dw, DwOp};
    use gimli::{AArch64, Register};

    pub(in super::super) const SP: Register = AArch64::SP;
    pub(in super::super) const RA: Register = AArch64::X30;
    pub(in super::super) const SAVED: Register = AArch64::X19;
    pub(in super::super) const SAVED_2: Register = AArch64::X20;
    pub(in super::super) const SCRATCH: Register = AArch64::X0;
    /// v0.
    pub(in super::super) const OUTSIDE: Register = AArch64::V0;
    pub(in super::super) const BREG_SP: DwOp = dw::DW_OP_breg31;
    pub(in super::super) const CODE_ALIGNMENT: u8 = 4;
}

/// The stack pointer.
pub(super) const SP: Register = imp::SP;
/// The return-address column.
pub(super) const RA: Register = imp::RA;
/// A callee-saved register (rbx, x19).
pub(super) const SAVED: Register = imp::SAVED;
/// Another callee-saved register (r12, x20).
pub(super) const SAVED_2: Register = imp::SAVED_2;
/// A caller-saved register, clobbered by every call (rax, x0).
pub(super) const SCRATCH: Register = imp::SCRATCH;
/// A register outside the walker's register file (a vector register), below 128
/// so its ULEB128 number is one byte.
pub(super) const OUTSIDE: Register = imp::OUTSIDE;
/// `DW_OP_breg<n>` for the stack pointer.
pub(super) const BREG_SP: DwOp = imp::BREG_SP;
/// The CIE's code alignment factor.
pub(super) const CODE_ALIGNMENT: u8 = imp::CODE_ALIGNMENT;
