//! x86_64 (System V ABI): register capture for the stack walk, the exit trampoline
//! and shadow-stack detection.

mod capture;
mod frames;
mod jit_symbols;
mod protection;
mod regs;
mod shadow_stack;
#[cfg(target_feature = "crt-static")]
mod static_symbols;
mod trampoline;

pub(crate) use capture::*;
pub(crate) use frames::*;
pub(crate) use protection::*;
pub(crate) use regs::*;
pub(crate) use shadow_stack::*;
#[cfg(target_feature = "crt-static")]
pub(crate) use static_symbols::static_symbol;
pub(crate) use trampoline::*;
