//! A frame's registers by DWARF number, each with a "known" flag: the register
//! file the stack walk unwinds. Each ISA (`arch/<isa>/regs.rs`) instantiates it
//! with its register count, callee-saved set and the numbers of its pc and sp.

use gimli::Register;

/// The registers `0..COUNT` of one frame. `CALLEE_SAVED` has bit `n` set for each
/// register the ABI preserves across calls; `PC` and `SP` are the DWARF numbers
/// of the program counter and the stack pointer.
///
/// `#[repr(C)]` because the ISA's capture routine writes `regs` by offset. Two
/// register files are equal when they know the same registers with the same
/// values; what an unknown register's slot holds does not matter.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct RegisterFile<
    const COUNT: usize,
    const CALLEE_SAVED: u64,
    const PC: u16,
    const SP: u16,
> {
    /// Register values by DWARF number; meaningful only where `known` has the bit.
    regs: [u64; COUNT],
    /// Bit `n` set when `regs[n]` holds the register's value in this frame.
    known: u64,
}

impl<const COUNT: usize, const CALLEE_SAVED: u64, const PC: u16, const SP: u16>
    RegisterFile<COUNT, CALLEE_SAVED, PC, SP>
{
    /// Every register the file can hold, in DWARF order.
    pub(crate) const REGISTERS: [Register; COUNT] = {
        assert!(COUNT <= 64, "one known bit per register");
        let mut all = [Register(0); COUNT];
        let mut n = 0;
        while n < COUNT {
            all[n] = Register(n as u16);
            n += 1;
        }
        all
    };

    /// Byte offset of register `n`'s slot, for a capture routine that stores it.
    pub(crate) const fn slot_offset(n: u16) -> usize {
        core::mem::offset_of!(Self, regs) + 8 * n as usize
    }

    /// A register file with no known register.
    pub(crate) const fn new() -> Self {
        Self { regs: [0; COUNT], known: 0 }
    }

    /// Marks exactly the registers of `mask` known (after a capture routine wrote
    /// their slots).
    pub(crate) fn set_known(&mut self, mask: u64) {
        self.known = mask;
    }

    /// The value of `reg`, or `None` if it is unknown or not in this file.
    pub(crate) fn get(&self, reg: Register) -> Option<u64> {
        let n = usize::from(reg.0);
        (n < COUNT && self.known & (1 << n) != 0).then(|| self.regs[n])
    }

    /// Sets `reg` to `value` and marks it known. Registers outside this file
    /// (vector registers, pseudo-registers) are ignored: the walk never needs them.
    pub(crate) fn set(&mut self, reg: Register, value: u64) {
        let n = usize::from(reg.0);
        if n < COUNT {
            self.regs[n] = value;
            self.known |= 1 << n;
        }
    }

    /// Marks `reg` unknown (a register outside this file is ignored).
    pub(crate) fn forget(&mut self, reg: Register) {
        let n = usize::from(reg.0);
        if n < COUNT {
            self.known &= !(1 << n);
        }
    }

    /// Makes this the caller's registers as they are before any unwind rule:
    /// `frame`'s known callee-saved registers, every other register unknown.
    /// Copies those registers only (unknown slots keep whatever they held).
    pub(crate) fn inherit_callee_saved(&mut self, frame: &Self) {
        // A constant mask and count: the loop unrolls into one move per register.
        for n in 0..COUNT {
            if CALLEE_SAVED & (1 << n) != 0 {
                self.regs[n] = frame.regs[n];
            }
        }
        self.known = frame.known & CALLEE_SAVED;
    }

    /// The program counter of this frame, if known.
    pub(crate) fn pc(&self) -> Option<u64> {
        self.get(Register(PC))
    }

    /// Sets the program counter.
    pub(crate) fn set_pc(&mut self, pc: u64) {
        self.set(Register(PC), pc);
    }

    /// The stack pointer of this frame, if known.
    pub(crate) fn sp(&self) -> Option<u64> {
        self.get(Register(SP))
    }
}

impl<const COUNT: usize, const CALLEE_SAVED: u64, const PC: u16, const SP: u16> PartialEq
    for RegisterFile<COUNT, CALLEE_SAVED, PC, SP>
{
    fn eq(&self, other: &Self) -> bool {
        self.known == other.known
            && (0..COUNT).all(|n| self.known & (1 << n) == 0 || self.regs[n] == other.regs[n])
    }
}

impl<const COUNT: usize, const CALLEE_SAVED: u64, const PC: u16, const SP: u16> Eq
    for RegisterFile<COUNT, CALLEE_SAVED, PC, SP>
{
}

impl<const COUNT: usize, const CALLEE_SAVED: u64, const PC: u16, const SP: u16> Default
    for RegisterFile<COUNT, CALLEE_SAVED, PC, SP>
{
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Five registers; 1 and 3 callee-saved; the pc is 4, sp 2.
    type Small = RegisterFile<5, 0b01010, 4, 2>;

    #[test]
    fn get_set_forget() {
        let mut regs = Small::new();
        assert_eq!(regs.sp(), None);
        regs.set(Register(2), 0x1000);
        regs.set_pc(0x2000);
        assert_eq!((regs.sp(), regs.pc()), (Some(0x1000), Some(0x2000)));
        // Outside the file: ignored, not a panic.
        regs.set(Register(5), 1);
        assert_eq!(regs.get(Register(5)), None);
        regs.forget(Register(200));
        regs.forget(Register(2));
        assert_eq!(regs.sp(), None);
        assert_eq!(Small::REGISTERS.map(|r| r.0), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn caller_inherits_only_known_callee_saved_registers() {
        let mut frame = Small::new();
        for reg in Small::REGISTERS {
            frame.set(reg, u64::from(reg.0) + 10);
        }
        frame.forget(Register(3));
        let mut caller = Small::new();
        caller.set(Register(0), 99);
        caller.inherit_callee_saved(&frame);
        let seen = Small::REGISTERS.map(|reg| caller.get(reg));
        assert_eq!(seen, [None, Some(11), None, None, None]);
    }

    #[test]
    fn equality_ignores_unknown_slots() {
        let mut a = Small::new();
        a.set(Register(2), 0x1000);
        let mut b = a;
        b.set(Register(4), 0x2000);
        assert_ne!(a, b);
        b.forget(Register(4));
        assert_eq!(a, b, "only the unknown slot differs");
        b.set(Register(2), 0x1008);
        assert_ne!(a, b);
    }
}
