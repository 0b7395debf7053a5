//! Fixed-capacity storage for gimli's unwind-table and expression state, so a walk
//! never allocates (gimli's default `StoreOnHeap` boxes ~25 KB per context).

use gimli::{
    EvaluationStorage, Piece, Reader, ReaderOffset, Register, RegisterRule, UnwindContextStorage,
    UnwindTableRow, Value,
};

/// Storage held in-line in arrays: no heap, fixed limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fixed;

/// Register rules one unwind row can hold. x86_64 needs at most 17 (glibc's
/// `__restore_rt` describes every general register); aarch64 about 25 (x19-x30,
/// d8-d15, sp, the signing state). More rules is gimli's `TooManyRegisterRules`.
const MAX_RULES: usize = 32;

/// Rows on gimli's row stack: the CIE's initial rules, the current row and two
/// nested `DW_CFA_remember_state`s.
const MAX_ROWS: usize = 4;

/// Depth of a DWARF expression's value stack. CFI expressions use two or three.
const MAX_EXPR_STACK: usize = 16;

impl<T: ReaderOffset> UnwindContextStorage<T> for Fixed {
    type Rules = [(Register, RegisterRule<T>); MAX_RULES];
    type Stack = [UnwindTableRow<T, Self>; MAX_ROWS];
}

impl<R: Reader> EvaluationStorage<R> for Fixed {
    type Stack = [Value; MAX_EXPR_STACK];
    // `DW_OP_call*` needs debug info, which CFI never has: no nesting.
    type ExpressionStack = [(R, R); 0];
    // A CFI expression yields one location; `DW_OP_piece` results are refused.
    type Result = [Piece<R>; 1];
}

/// gimli's unwind state, in fixed in-line storage (a few KB on the stack).
pub(crate) type UnwindCtx = gimli::UnwindContext<usize, Fixed>;

/// One row of an FDE's unwind table.
pub(crate) type Row = gimli::UnwindTableRow<usize, Fixed>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_stays_small() {
        let unwind = size_of::<gimli::UnwindContext<usize, Fixed>>();
        type Eval<'a> = gimli::Evaluation<gimli::EndianSlice<'a, gimli::NativeEndian>, Fixed>;
        let eval = size_of::<Eval<'static>>();
        println!("UnwindContext {unwind} bytes, Evaluation {eval} bytes");
        assert!(unwind + eval < 8 * 1024);
    }
}
