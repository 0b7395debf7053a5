//! Applies one unwind row to a frame's registers: computes the frame's CFA and its
//! caller's registers, and records how the return address is saved.

use super::expr::{self, Purpose};
use super::fde::Located;
use super::recipe::{Recipe, SimpleRule};
use crate::arch::{self, Context};
use crate::walk::{Memory, RuleKind, WalkError};
use gimli::{CfaRule, Register, RegisterRule};

/// The result of unwinding one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Step {
    /// The frame's canonical frame address (its caller's sp at the call).
    pub(crate) cfa: u64,
    /// Whether the return-address rule is undefined or absent: this is the
    /// outermost frame, and it has no caller's registers.
    pub(crate) outermost: bool,
    /// The kind of the return-address rule.
    pub(crate) ra_rule: RuleKind,
    /// The stack address holding the return address, when the rule is `Offset(n)`.
    pub(crate) ra_slot: Option<u64>,
    /// The return address as stored (signed, where the ISA signs it); 0 when the
    /// frame is the outermost one.
    pub(crate) return_address: u64,
    /// Whether the return address is signed (pointer authentication).
    pub(crate) ra_signed: bool,
    /// The caller's stack pointer as the rules restore it (the CFA unless a rule
    /// for sp says otherwise); `None` for the outermost frame or an unknown sp.
    pub(crate) caller_sp: Option<u64>,
    /// Where the frame saves the ISA's frame-record register (x29 on aarch64),
    /// when its rule is `Offset(n)`; always `None` on an ISA without one.
    pub(crate) fp_slot: Option<u64>,
}

impl Step {
    /// The step of a frame with CFA `cfa` whose return-address rule is of kind
    /// `ra_rule`, if that makes it the outermost frame: no rule, or undefined.
    /// (gimli keeps an explicit `DW_CFA_undefined` as `Undefined` but drops it
    /// from CIE initial rules, so "absent" means the same; glibc marks `clone3`'s
    /// child and `_start` with `cfi_undefined rip`.)
    fn outermost(cfa: u64, ra_rule: RuleKind, ra_signed: bool) -> Option<Self> {
        matches!(ra_rule, RuleKind::Absent | RuleKind::Undefined).then_some(Step {
            cfa,
            outermost: true,
            ra_rule,
            ra_slot: None,
            return_address: 0,
            ra_signed,
            caller_sp: None,
            fp_slot: None,
        })
    }

    /// The step of a frame with a caller, once `caller` holds the caller's
    /// registers: the return address is the caller's RA column, and the caller's
    /// pc is that address with any signature stripped.
    fn with_caller(
        pc: u64,
        cfa: u64,
        caller: &mut Context,
        ra: SavedRa,
        fp_slot: Option<u64>,
    ) -> Result<Self, WalkError> {
        let SavedRa { rule: ra_rule, slot: ra_slot, signed: ra_signed } = ra;
        let return_address =
            caller.get(arch::RA).ok_or(WalkError::UnknownRegister { pc, register: arch::RA.0 })?;
        let caller_sp = caller.get(arch::SP);
        caller.set_pc(arch::strip_return_address(return_address, ra_signed));
        Ok(Step {
            cfa,
            outermost: false,
            ra_rule,
            ra_slot,
            return_address,
            ra_signed,
            caller_sp,
            fp_slot,
        })
    }
}

/// How a frame saves its return address.
#[derive(Clone, Copy, Debug)]
struct SavedRa {
    /// The kind of the rule.
    rule: RuleKind,
    /// The slot, for an `Offset(n)` rule.
    slot: Option<u64>,
    /// Whether it is signed.
    signed: bool,
}

/// The slot at CFA + `offset` when `rule` is `Offset(offset)`.
fn offset_slot<T: gimli::ReaderOffset>(cfa: u64, rule: Option<&RegisterRule<T>>) -> Option<u64> {
    match rule {
        Some(RegisterRule::Offset(n)) => Some(cfa.wrapping_add_signed(*n)),
        _ => None,
    }
}

/// Unwinds the frame with registers `regs` using its row `loc`, writing the
/// caller's registers into `caller` unless the frame is the outermost one.
pub(crate) fn unwind(
    loc: &Located<'_, '_>,
    regs: &Context,
    caller: &mut Context,
    mem: &mut impl Memory,
) -> Result<Step, WalkError> {
    let pc = loc.pc;
    if loc.ra_column != arch::RA {
        return Err(WalkError::RaColumn { pc, register: loc.ra_column.0 });
    }
    let cfa = cfa(loc, regs, mem)?;
    let ra_signed = ra_signed(loc)?;

    let ra_rule = loc.rules.register(arch::RA);
    let ra_kind = ra_rule.as_ref().map_or(RuleKind::Absent, RuleKind::from);
    if let Some(step) = Step::outermost(cfa, ra_kind, ra_signed) {
        return Ok(step);
    }
    let ra_slot = offset_slot(cfa, ra_rule.as_ref());
    let fp_slot =
        arch::FRAME_RECORD_FP.and_then(|fp| offset_slot(cfa, loc.rules.register(fp).as_ref()));

    *caller = Context::new();
    for reg in Context::REGISTERS {
        let value = if reg == arch::SP && loc.rules.register(reg).is_none() {
            // The CFA is by definition the caller's sp at the call site. A signal
            // frame has no call site: the interrupted sp must come from a rule
            // (Linux's arm64 vDSO `__kernel_rt_sigreturn` describes only x29/x30).
            if loc.signal_trampoline {
                return Err(WalkError::SignalFrameWithoutSp { pc });
            }
            Some(cfa)
        } else {
            register(loc, reg, cfa, regs, mem)?
        };
        if let Some(value) = value {
            caller.set(reg, value);
        }
    }
    let ra = SavedRa { rule: ra_kind, slot: ra_slot, signed: ra_signed };
    Step::with_caller(pc, cfa, caller, ra, fp_slot)
}

/// Unwinds the frame with registers `regs`, looked up at `pc`, using its compiled
/// row `recipe`: the same result as [`unwind`] with the row it was compiled from
/// (the fuzz target and `walk/tests/recipes.rs` check it), without the generic
/// rule evaluation.
pub(crate) fn unwind_recipe(
    recipe: &Recipe,
    pc: u64,
    regs: &Context,
    caller: &mut Context,
    mem: &mut impl Memory,
) -> Result<Step, WalkError> {
    let cfa_register = recipe.cfa_register();
    let cfa = regs
        .get(cfa_register)
        .map(|base| base.wrapping_add_signed(recipe.cfa_offset().into()))
        .ok_or(WalkError::UnknownRegister { pc, register: cfa_register.0 })?;
    let ra_signed = recipe.ra_signed();
    let ra_rule = recipe.ra_rule();
    let ra_kind = ra_rule.map_or(RuleKind::Absent, SimpleRule::kind);
    if let Some(step) = Step::outermost(cfa, ra_kind, ra_signed) {
        return Ok(step);
    }
    let simple_slot = |rule: Option<SimpleRule>| match rule {
        Some(SimpleRule::Offset(n)) => Some(cfa.wrapping_add_signed(n.into())),
        _ => None,
    };
    let ra_slot = simple_slot(ra_rule);
    let fp_slot = arch::FRAME_RECORD_FP.and_then(|fp| {
        simple_slot(recipe.rules().find_map(|(reg, rule)| (reg == fp).then_some(rule)))
    });

    // The registers without a rule first (the ABI defaults, as in `unwind`), then
    // the rules in increasing register order, as `unwind` evaluates them: the
    // first read that fails is the same one.
    caller.inherit_callee_saved(regs);
    caller.set(arch::SP, cfa);
    for (reg, rule) in recipe.rules() {
        let value = match rule {
            SimpleRule::Undefined => None,
            SimpleRule::SameValue => regs.get(reg),
            SimpleRule::Offset(n) => Some(mem.read_u64(cfa.wrapping_add_signed(n.into()))?),
            SimpleRule::ValOffset(n) => Some(cfa.wrapping_add_signed(n.into())),
            SimpleRule::Register(other) => regs.get(other),
        };
        match value {
            Some(value) => caller.set(reg, value),
            None => caller.forget(reg),
        }
    }
    let ra = SavedRa { rule: ra_kind, slot: ra_slot, signed: ra_signed };
    Step::with_caller(pc, cfa, caller, ra, fp_slot)
}

/// The frame's CFA from the row's CFA rule.
fn cfa(loc: &Located<'_, '_>, regs: &Context, mem: &mut impl Memory) -> Result<u64, WalkError> {
    match loc.rules.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => regs
            .get(register)
            .map(|base| base.wrapping_add_signed(offset))
            .ok_or(WalkError::UnknownRegister { pc: loc.pc, register: register.0 }),
        CfaRule::Expression(expr) => expr::evaluate(loc, expr, Purpose::Cfa, regs, mem),
    }
}

/// Whether the return address is signed: the signing-state pseudo-register's
/// rule must be absent (unsigned) or the constant 0 or 1.
fn ra_signed(loc: &Located<'_, '_>) -> Result<bool, WalkError> {
    loc.rules.ra_signed().ok_or(WalkError::BadSignState { pc: loc.pc })
}

/// The caller's value of `reg`, or `None` when it is unknown there.
///
/// The match is exhaustive on purpose: `RegisterRule` is not `#[non_exhaustive]`,
/// so a rule kind added by a future gimli is a compile error, never a guess.
fn register(
    loc: &Located<'_, '_>,
    reg: Register,
    cfa: u64,
    regs: &Context,
    mem: &mut impl Memory,
) -> Result<Option<u64>, WalkError> {
    let Some(rule) = loc.rules.register(reg) else {
        // No rule: the ABI default. Callee-saved registers keep their value;
        // the others are clobbered by the call and unknown in the caller.
        return Ok(arch::is_callee_saved(reg).then(|| regs.get(reg)).flatten());
    };
    let unsupported = |rule: &RegisterRule<usize>| WalkError::UnsupportedRule {
        pc: loc.pc,
        register: reg.0,
        rule: RuleKind::from(rule),
    };
    let purpose = Purpose::Register { cfa };
    Ok(match rule {
        RegisterRule::Undefined => None,
        RegisterRule::SameValue => regs.get(reg),
        RegisterRule::Offset(n) => Some(mem.read_u64(cfa.wrapping_add_signed(n))?),
        RegisterRule::ValOffset(n) => Some(cfa.wrapping_add_signed(n)),
        RegisterRule::Register(other) => regs.get(other),
        RegisterRule::Expression(expr) => {
            let addr = expr::evaluate(loc, expr, purpose, regs, mem)?;
            Some(mem.read_u64(addr)?)
        }
        RegisterRule::ValExpression(expr) => Some(expr::evaluate(loc, expr, purpose, regs, mem)?),
        // A real register with an augmenter-defined rule, or a constant where only
        // pseudo-registers may have one: not understood, so not guessed.
        RegisterRule::Architectural | RegisterRule::Constant(_) => {
            return Err(unsupported(&rule));
        }
    })
}
