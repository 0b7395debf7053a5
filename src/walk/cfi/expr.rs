//! Evaluates the DWARF expressions found in CFI (`DW_CFA_def_cfa_expression`,
//! `DW_CFA_expression`, `DW_CFA_val_expression`), as glibc's `__restore_rt` uses.
//!
//! Registers come from the frame's [`Context`], memory only through [`Memory`];
//! anything else an expression may ask for (TLS, debug info, typed values) is an
//! error, and the number of operations is bounded.

use super::fde::{Located, Slice};
use super::storage::Fixed;
use crate::arch::{self, Context};
use crate::walk::{ExprIssue, Memory, WalkError};
use gimli::{Evaluation, EvaluationResult, Location, UnitOffset, UnwindExpression, Value};

/// Most DWARF operations one expression may execute.
const MAX_STEPS: u32 = 256;

/// What an expression is evaluated for: the CFA itself (nothing pushed, the CFA
/// not available) or a register rule (the CFA pushed first, DWARF 5 §6.4.2.3).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Purpose {
    /// `DW_CFA_def_cfa_expression`.
    Cfa,
    /// `DW_CFA_expression` / `DW_CFA_val_expression`, with the frame's CFA.
    Register {
        /// The frame's CFA.
        cfa: u64,
    },
}

/// Evaluates `expr` from `loc`'s section and returns the value it computes (an
/// address for `DW_CFA_expression`, the value itself for the others).
pub(crate) fn evaluate(
    loc: &Located<'_, '_>,
    expr: UnwindExpression<usize>,
    purpose: Purpose,
    regs: &Context,
    mem: &mut impl Memory,
) -> Result<u64, WalkError> {
    let pc = loc.pc;
    let fail = |issue| WalkError::Expression { pc, issue };
    let gimli_err = |error| match error {
        gimli::Error::TooManyIterations => fail(ExprIssue::TooManySteps),
        error => WalkError::BadCfi { pc, error },
    };
    let bytecode = expr.get(&loc.eh_frame).map_err(gimli_err)?;
    let mut eval = Evaluation::<Slice<'_>, Fixed>::new_in(bytecode.0, loc.encoding);
    eval.set_max_iterations(MAX_STEPS);
    let cfa = match purpose {
        Purpose::Cfa => None,
        Purpose::Register { cfa } => {
            eval.set_initial_value(cfa);
            Some(cfa)
        }
    };
    let mut state = eval.evaluate().map_err(gimli_err)?;
    loop {
        state = match state {
            EvaluationResult::Complete => break,
            EvaluationResult::RequiresMemory { address, size, space, base_type } => {
                if space.is_some() {
                    return Err(fail(ExprIssue::AddressSpace));
                }
                if base_type != UnitOffset(0) {
                    return Err(fail(ExprIssue::TypedValue));
                }
                if size != arch::ADDRESS_SIZE {
                    return Err(fail(ExprIssue::ReadSize(size)));
                }
                let value = mem.read_u64(address)?;
                eval.resume_with_memory(Value::Generic(value))
            }
            EvaluationResult::RequiresRegister { register, base_type } => {
                if base_type != UnitOffset(0) {
                    return Err(fail(ExprIssue::TypedValue));
                }
                let value = regs
                    .get(register)
                    .ok_or(WalkError::UnknownRegister { pc, register: register.0 })?;
                eval.resume_with_register(Value::Generic(value))
            }
            EvaluationResult::RequiresCallFrameCfa => {
                let cfa = cfa.ok_or(fail(ExprIssue::CfaInCfa))?;
                eval.resume_with_call_frame_cfa(cfa)
            }
            EvaluationResult::RequiresTls(_) => return Err(fail(ExprIssue::Tls)),
            // Frame base, entry values, debug-info references, relocations,
            // WebAssembly state: none exists for CFI on this target.
            _ => return Err(fail(ExprIssue::Unsupported)),
        }
        .map_err(gimli_err)?;
    }
    match eval.as_result() {
        [piece] if piece.size_in_bits.is_none() && piece.bit_offset.is_none() => {
            match piece.location {
                Location::Address { address } => Ok(address),
                Location::Value { value: Value::Generic(value) } => Ok(value),
                Location::Value { .. } => Err(fail(ExprIssue::TypedValue)),
                _ => Err(fail(ExprIssue::Result)),
            }
        }
        _ => Err(fail(ExprIssue::Result)),
    }
}
