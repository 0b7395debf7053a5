//! Synthetic walks exercising each CFA and register rule kind, and the rejected
//! rules and expressions.
//!
//! Layout: INNER (sp = R) has a rule for SAVED (rbx, x19); START computes its CFA
//! from the SAVED it gets back (CFA = SAVED + 16), so the walk finds START's slot
//! only when the rule was evaluated right. Then start_thread and clone3.

use super::cfi::{Cfi, Expression};
use super::fake::FakeStack;
use super::isa::{BREG_SP, OUTSIDE, SAVED, SAVED_2, SCRATCH, SP};
use super::world::*;
use crate::arch::{self, Context};
use crate::walk::{ExitSlot, ExprIssue, WalkError};
use gimli::constants as dw;

/// INNER's stack pointer.
const R: u64 = STACK + 0x100;
/// INNER's CFA with its default rule `CFA = sp + 32`.
const CFA0: u64 = R + 32;
/// The SAVED value START must get back: its CFA is B + 16, its slot B + 8.
const B: u64 = R + 64;

/// Stack and registers for the layout; `setup` adds what the rule reads.
fn layout(setup: impl FnOnce(&mut FakeStack, &mut Context)) -> (FakeStack, Context) {
    let mut stack = FakeStack::new(STACK, 0x1000);
    let mut ctx = Context::new();
    ctx.set(arch::SP, R);
    ctx.set_pc(ret(INNER));
    stack.put(CFA0 - 8, ret(START));
    stack.put(B + 8, ret(START_THREAD));
    stack.put(B + 24, ret(CLONE));
    stack.tops.thread = Some(B + 32);
    setup(&mut stack, &mut ctx);
    (stack, ctx)
}

/// Walks the layout with INNER's `inner` rules (after `CFA = sp + 32`).
fn run(
    inner: Vec<Cfi>,
    setup: impl FnOnce(&mut FakeStack, &mut Context),
) -> Result<ExitSlot, WalkError> {
    let (mut stack, ctx) = layout(setup);
    let mut rules = vec![Cfi::Cfa(SP, 32)];
    rules.extend(inner);
    let overrides = [(INNER, rules), (START, vec![Cfi::Cfa(SAVED, 16)])];
    walk(&ctx, &mut stack, &mut objects(&overrides)).0
}

/// Asserts the walk found START's slot.
fn assert_found(result: Result<ExitSlot, WalkError>) {
    let found = result.expect("walk");
    assert_eq!(found.slot, B + 8);
    assert_eq!(found.cfa, B + 16);
    assert_eq!(found.return_address, ret(START_THREAD));
}

/// An expression `DW_OP_breg<sp> + offset`.
fn sp_plus(offset: i64) -> Expression {
    let mut e = Expression::new();
    e.op_breg(SP, offset);
    e
}

#[test]
fn offset_rule() {
    assert_found(run(vec![Cfi::Offset(SAVED, -16)], |s, _| s.put(CFA0 - 16, B)));
}

#[test]
fn val_offset_rule() {
    assert_found(run(vec![Cfi::ValOffset(SAVED, 32)], |_, _| {}));
}

#[test]
fn register_rule() {
    assert_found(run(vec![Cfi::Register(SAVED, SAVED_2)], |_, c| c.set(SAVED_2, B)));
}

#[test]
fn same_value_rule() {
    assert_found(run(vec![Cfi::SameValue(SAVED)], |_, c| c.set(SAVED, B)));
}

#[test]
fn absent_rule_keeps_callee_saved_register() {
    assert_found(run(vec![], |_, c| c.set(SAVED, B)));
}

#[test]
fn absent_rule_loses_caller_saved_register() {
    // START's CFA from SCRATCH (rax, x0), which the call clobbered: unknown in START.
    let (mut stack, mut ctx) = layout(|_, _| {});
    ctx.set(SCRATCH, B);
    let overrides = [(INNER, vec![Cfi::Cfa(SP, 32)]), (START, vec![Cfi::Cfa(SCRATCH, 16)])];
    let (result, _) = walk(&ctx, &mut stack, &mut objects(&overrides));
    assert_eq!(result, Err(WalkError::UnknownRegister { pc: ret(START) - 1, register: SCRATCH.0 }));
}

#[test]
fn expression_rule() {
    assert_found(run(vec![Cfi::Expression(SAVED, sp_plus(8))], |s, _| s.put(R + 8, B)));
}

#[test]
fn expression_rule_starts_with_the_cfa_pushed() {
    // DW_OP_constu 16; DW_OP_minus: address CFA - 16.
    let mut e = Expression::new();
    e.op_constu(16);
    e.op(dw::DW_OP_minus);
    assert_found(run(vec![Cfi::Expression(SAVED, e)], |s, _| s.put(CFA0 - 16, B)));
}

#[test]
fn val_expression_rule() {
    assert_found(run(vec![Cfi::ValExpression(SAVED, sp_plus(64))], |_, _| {}));
}

#[test]
fn val_expression_with_call_frame_cfa() {
    let mut e = Expression::new();
    e.op(dw::DW_OP_call_frame_cfa);
    e.op_plus_uconst(32);
    assert_found(run(vec![Cfi::ValExpression(SAVED, e)], |_, _| {}));
}

#[test]
fn cfa_expression_with_deref() {
    // As glibc's __restore_rt: CFA = *(sp + 0).
    let mut e = sp_plus(0);
    e.op_deref();
    assert_found(run(vec![Cfi::CfaExpression(e), Cfi::ValOffset(SAVED, 32)], |s, _| {
        s.put(R, CFA0)
    }));
}

#[test]
fn undefined_register_is_unknown_in_the_caller() {
    let result = run(vec![Cfi::Undefined(SAVED)], |_, c| c.set(SAVED, B));
    assert_eq!(result, Err(WalkError::UnknownRegister { pc: ret(START) - 1, register: SAVED.0 }));
}

/// Runs INNER with CFA expression `ops` (raw DWARF bytes).
fn run_cfa_expression(ops: Vec<u8>) -> Result<ExitSlot, WalkError> {
    run(vec![Cfi::CfaExpression(Expression::raw(ops))], |_, _| {})
}

/// The expression error for INNER's lookup.
fn expr_error(issue: ExprIssue) -> Result<ExitSlot, WalkError> {
    Err(WalkError::Expression { pc: ret(INNER) - 1, issue })
}

#[test]
fn expression_needing_tls_is_rejected() {
    let ops = vec![dw::DW_OP_lit0.0, dw::DW_OP_form_tls_address.0];
    assert_eq!(run_cfa_expression(ops), expr_error(ExprIssue::Tls));
}

#[test]
fn expression_reading_a_half_word_is_rejected() {
    // DW_OP_breg<sp> 0; DW_OP_deref_size 4.
    let ops = vec![BREG_SP.0, 0, dw::DW_OP_deref_size.0, 4];
    assert_eq!(run_cfa_expression(ops), expr_error(ExprIssue::ReadSize(4)));
}

#[test]
fn cfa_expression_needing_the_cfa_is_rejected() {
    let ops = vec![dw::DW_OP_call_frame_cfa.0];
    assert_eq!(run_cfa_expression(ops), expr_error(ExprIssue::CfaInCfa));
}

#[test]
fn endless_expression_is_cut_off() {
    // DW_OP_skip -3: jumps back onto itself.
    let ops = vec![dw::DW_OP_skip.0, 0xfd, 0xff];
    assert_eq!(run_cfa_expression(ops), expr_error(ExprIssue::TooManySteps));
}

#[test]
fn expression_with_pieces_is_rejected() {
    // DW_OP_breg<sp> 0; DW_OP_piece 8.
    let ops = vec![BREG_SP.0, 0, dw::DW_OP_piece.0, 8];
    assert_eq!(run_cfa_expression(ops), expr_error(ExprIssue::Result));
}

#[test]
fn expression_reading_an_unknown_register_is_rejected() {
    // DW_OP_bregx <vector register> 0.
    let ops = vec![dw::DW_OP_bregx.0, OUTSIDE.0 as u8, 0];
    assert_eq!(
        run_cfa_expression(ops),
        Err(WalkError::UnknownRegister { pc: ret(INNER) - 1, register: OUTSIDE.0 })
    );
}

#[test]
fn expression_reading_outside_the_stack_is_rejected() {
    // DW_OP_const4u 0x1000; DW_OP_deref.
    let ops = vec![dw::DW_OP_const4u.0, 0, 0x10, 0, 0, dw::DW_OP_deref.0];
    assert_eq!(run_cfa_expression(ops), Err(WalkError::OutOfBounds { addr: 0x1000 }));
}

#[test]
fn rules_for_registers_outside_the_file_are_ignored() {
    // A vector register's rule is irrelevant to the walk.
    assert_found(run(vec![Cfi::Offset(OUTSIDE, -24), Cfi::ValOffset(SAVED, 32)], |_, _| {}));
}
