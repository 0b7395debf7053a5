//! x86_64 (System V ABI): register capture for the stack walk and the exit trampoline.

mod capture;
mod regs;

pub(crate) use capture::*;
pub(crate) use regs::*;
