//! x86_64 (System V ABI): register capture for the stack walk, the exit trampoline
//! and shadow-stack detection.

mod capture;
mod frames;
mod jit_symbols;
mod protection;
mod regs;
mod shadow_stack;
mod trampoline;

pub(crate) use capture::*;
pub(crate) use frames::*;
pub(crate) use protection::*;
pub(crate) use regs::*;
pub(crate) use shadow_stack::*;
pub(crate) use trampoline::*;
