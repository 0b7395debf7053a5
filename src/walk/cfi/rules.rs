//! The part of an unwind row that a step reads, compacted: the CFA rule and the
//! rules of the registers the walker tracks, in an array indexed by DWARF register
//! number. gimli's row holds up to 32 `(register, rule)` pairs searched linearly
//! (~800 bytes) and its rules are `Clone` only; this is `Copy`, what the row cache
//! stores and hands out, and each lookup is one index.

use super::storage::Row;
use crate::arch::{self, Context};
use gimli::{CfaRule, Register, RegisterRule, UnwindExpression};

/// Registers with a slot: those of the walker's register file.
const TRACKED: usize = Context::REGISTERS.len();

// The slots are indexed by register number, so the register file must be the
// registers 0, 1, .. in order (it is on both ISAs).
const _: () = {
    let mut n = 0;
    while n < TRACKED {
        assert!(Context::REGISTERS[n].0 as usize == n);
        n += 1;
    }
};

/// The rules of one row that unwinding a frame can read.
///
/// "No rule" is a bit clear in `present` rather than an `Option`, so that
/// [`Rules::NONE`] is all zero bytes (or padding) and the row cache's table
/// starts out in `.bss` instead of taking room in the binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rules {
    /// The CFA rule.
    cfa: Cfa,
    /// The rule of each tracked register; meaningful where `present` has its bit.
    registers: [Rule; TRACKED],
    /// The rule of the return-address signing-state pseudo-register, if the ISA
    /// has one; meaningful where `present` has bit [`SIGN_STATE_BIT`].
    sign_state: Rule,
    /// Bit `n` set when register `n` has a rule, bit [`SIGN_STATE_BIT`] when the
    /// signing state has one.
    present: u64,
}

/// The `present` bit of the signing state.
const SIGN_STATE_BIT: usize = TRACKED;

const _: () = assert!(SIGN_STATE_BIT < 64);

impl Rules {
    /// No rule for anything (and a CFA rule that is never read): a walk's buffer
    /// before its first frame, and an unused cache entry's.
    pub(crate) const NONE: Rules = Rules {
        cfa: Cfa::RegisterAndOffset { register: Register(0), offset: 0 },
        registers: [Rule::Undefined; TRACKED],
        sign_state: Rule::Undefined,
        present: 0,
    };

    /// Becomes the rules of `row` for the tracked registers and the signing state
    /// (in place: a walk keeps one `Rules` for all its frames). Rules of other
    /// registers (vector, x87, ..) are dropped: no step reads them.
    pub(crate) fn set_from(&mut self, row: &Row) {
        self.set(row.cfa(), row.registers());
    }

    /// Becomes the rules `cfa` and `registers` (tests build rows without gimli).
    #[cfg(test)]
    pub(crate) fn set_for_test(
        &mut self,
        cfa: CfaRule<usize>,
        registers: &[(Register, RegisterRule<usize>)],
    ) {
        self.set(&cfa, registers.iter());
    }

    /// Becomes the CFA rule `cfa` and the rules of `registers`, in the same
    /// order; the first rule given for a register is the one kept.
    fn set<'r>(
        &mut self,
        cfa: &CfaRule<usize>,
        registers: impl Iterator<Item = &'r (Register, RegisterRule<usize>)>,
    ) {
        self.cfa = Cfa::from(cfa);
        self.present = 0;
        for (reg, rule) in registers {
            let Some(bit) = Self::bit(*reg) else { continue };
            // gimli keeps one rule per register; were there two, its `register`
            // would answer the first, and so does this.
            if self.present & (1 << bit) != 0 {
                continue;
            }
            self.present |= 1 << bit;
            *self.registers.get_mut(bit).unwrap_or(&mut self.sign_state) = Rule::from(rule);
        }
    }

    /// The `present` bit of `reg`, if it is tracked or the signing state.
    fn bit(reg: Register) -> Option<usize> {
        if Some(reg) == arch::RA_SIGN_STATE {
            return Some(SIGN_STATE_BIT);
        }
        let n = usize::from(reg.0);
        (n < TRACKED).then_some(n)
    }

    /// The CFA rule.
    pub(crate) fn cfa(&self) -> CfaRule<usize> {
        match self.cfa {
            Cfa::RegisterAndOffset { register, offset } => {
                CfaRule::RegisterAndOffset { register, offset }
            }
            Cfa::Expression(expr) => CfaRule::Expression(expr),
        }
    }

    /// Whether the row's saved return address is signed, from the signing-state
    /// pseudo-register's rule: absent or the constant 0 (no), the constant 1
    /// (yes); `None` for any other rule, which the walk does not understand. Never
    /// signed on an ISA without the pseudo-register.
    pub(crate) fn ra_signed(&self) -> Option<bool> {
        let Some(state) = arch::RA_SIGN_STATE else { return Some(false) };
        match self.register(state) {
            None | Some(RegisterRule::Constant(0)) => Some(false),
            Some(RegisterRule::Constant(1)) => Some(true),
            Some(_) => None,
        }
    }

    /// The rule of `reg`, `None` if it has none (as gimli's `register`). A register
    /// outside the tracked ones and the signing state never has one here.
    pub(crate) fn register(&self, reg: Register) -> Option<RegisterRule<usize>> {
        let bit = Self::bit(reg).filter(|bit| self.present & (1 << bit) != 0)?;
        Some(self.registers.get(bit).unwrap_or(&self.sign_state).to_gimli())
    }
}

/// gimli's `CfaRule<usize>`, made `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cfa {
    /// `CfaRule::RegisterAndOffset`.
    RegisterAndOffset {
        /// The base register.
        register: Register,
        /// Added to it.
        offset: i64,
    },
    /// `CfaRule::Expression`.
    Expression(UnwindExpression<usize>),
}

impl From<&CfaRule<usize>> for Cfa {
    fn from(rule: &CfaRule<usize>) -> Self {
        match *rule {
            CfaRule::RegisterAndOffset { register, offset } => {
                Cfa::RegisterAndOffset { register, offset }
            }
            CfaRule::Expression(expr) => Cfa::Expression(expr),
        }
    }
}

/// gimli's `RegisterRule<usize>`, made `Copy`. Both conversions list every
/// variant with no wildcard, so a rule kind a future gimli adds is a compile
/// error here, as in `step`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    /// `RegisterRule::Undefined`.
    Undefined,
    /// `RegisterRule::SameValue`.
    SameValue,
    /// `RegisterRule::Offset`.
    Offset(i64),
    /// `RegisterRule::ValOffset`.
    ValOffset(i64),
    /// `RegisterRule::Register`.
    Register(Register),
    /// `RegisterRule::Expression`.
    Expression(UnwindExpression<usize>),
    /// `RegisterRule::ValExpression`.
    ValExpression(UnwindExpression<usize>),
    /// `RegisterRule::Architectural`.
    Architectural,
    /// `RegisterRule::Constant`.
    Constant(u64),
}

impl From<&RegisterRule<usize>> for Rule {
    fn from(rule: &RegisterRule<usize>) -> Self {
        match *rule {
            RegisterRule::Undefined => Rule::Undefined,
            RegisterRule::SameValue => Rule::SameValue,
            RegisterRule::Offset(n) => Rule::Offset(n),
            RegisterRule::ValOffset(n) => Rule::ValOffset(n),
            RegisterRule::Register(reg) => Rule::Register(reg),
            RegisterRule::Expression(expr) => Rule::Expression(expr),
            RegisterRule::ValExpression(expr) => Rule::ValExpression(expr),
            RegisterRule::Architectural => Rule::Architectural,
            RegisterRule::Constant(value) => Rule::Constant(value),
        }
    }
}

impl Rule {
    /// The gimli rule this was made from.
    fn to_gimli(self) -> RegisterRule<usize> {
        match self {
            Rule::Undefined => RegisterRule::Undefined,
            Rule::SameValue => RegisterRule::SameValue,
            Rule::Offset(n) => RegisterRule::Offset(n),
            Rule::ValOffset(n) => RegisterRule::ValOffset(n),
            Rule::Register(reg) => RegisterRule::Register(reg),
            Rule::Expression(expr) => RegisterRule::Expression(expr),
            Rule::ValExpression(expr) => RegisterRule::ValExpression(expr),
            Rule::Architectural => RegisterRule::Architectural,
            Rule::Constant(value) => RegisterRule::Constant(value),
        }
    }
}
