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

/// The callee-saved registers' numbers, in increasing order.
const CALLEE_SAVED_LIST: [usize; CALLEE_SAVED.count_ones() as usize] =
    crate::arch::bit_positions(CALLEE_SAVED);

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

/// The registers of one frame, each with a "known" flag.
///
/// `#[repr(C)]` because the capture routine writes `regs` by offset. Two contexts
/// are equal when they know the same registers with the same values; what an
/// unknown register's slot holds does not matter.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct Context {
    /// Register values by DWARF number; meaningful only where `known` has the bit.
    pub(super) regs: [u64; COUNT],
    /// Bit `n` set when `regs[n]` holds the register's value in this frame.
    pub(super) known: u64,
}

impl Context {
    /// Every register the context can hold, in DWARF order.
    pub(crate) const REGISTERS: [Register; COUNT] = {
        let mut all = [Register(0); COUNT];
        let mut n = 0;
        while n < COUNT {
            all[n] = Register(n as u16);
            n += 1;
        }
        all
    };

    /// A context with no known register.
    pub(crate) const fn new() -> Self {
        Context { regs: [0; COUNT], known: 0 }
    }

    /// The value of `reg`, or `None` if it is unknown or not in this register file.
    pub(crate) fn get(&self, reg: Register) -> Option<u64> {
        let n = usize::from(reg.0);
        (n < COUNT && self.known & (1 << n) != 0).then(|| self.regs[n])
    }

    /// Sets `reg` to `value` and marks it known. Registers outside this file
    /// (vector registers, the signing-state pseudo-register) are ignored.
    pub(crate) fn set(&mut self, reg: Register, value: u64) {
        let n = usize::from(reg.0);
        if n < COUNT {
            self.regs[n] = value;
            self.known |= 1 << n;
        }
    }

    /// Makes this the caller's registers as they are before any unwind rule:
    /// `frame`'s known callee-saved registers, every other register unknown.
    /// Copies those registers only (unknown slots keep whatever they held).
    pub(crate) fn inherit_callee_saved(&mut self, frame: &Context) {
        for n in CALLEE_SAVED_LIST {
            self.regs[n] = frame.regs[n];
        }
        self.known = frame.known & CALLEE_SAVED;
    }

    /// Marks `reg` unknown (a register outside this file is ignored).
    pub(crate) fn forget(&mut self, reg: Register) {
        let n = usize::from(reg.0);
        if n < COUNT {
            self.known &= !(1 << n);
        }
    }

    /// The program counter of this frame, if known.
    pub(crate) fn pc(&self) -> Option<u64> {
        self.get(PC)
    }

    /// Sets the program counter (a stripped return address, or a captured pc).
    pub(crate) fn set_pc(&mut self, pc: u64) {
        self.set(PC, pc);
    }

    /// The stack pointer of this frame, if known.
    pub(crate) fn sp(&self) -> Option<u64> {
        self.get(SP)
    }
}

impl PartialEq for Context {
    fn eq(&self, other: &Self) -> bool {
        self.known == other.known
            && (0..COUNT).all(|n| self.known & (1 << n) == 0 || self.regs[n] == other.regs[n])
    }
}

impl Eq for Context {}

impl Default for Context {
    fn default() -> Self {
        Self::new()
    }
}

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
