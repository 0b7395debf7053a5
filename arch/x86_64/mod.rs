//! x86_64 (System V ABI): register capture for the stack walk, the exit trampoline
//! and shadow-stack detection.

mod capture;
mod protection;
mod regs;
mod shadow_stack;
mod trampoline;

pub(crate) use capture::*;
#[allow(unused_imports)] // The doctor lines, for examples/doctor.rs.
pub(crate) use protection::*;
pub(crate) use regs::*;
pub(crate) use shadow_stack::*;
pub(crate) use trampoline::*;
