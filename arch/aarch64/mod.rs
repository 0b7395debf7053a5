//! aarch64 (AAPCS64, Linux): register capture for the stack walk, pointer
//! authentication of return addresses, the exit trampoline, and the BTI and
//! Guarded Control Stack checks.

mod bti;
mod capture;
mod frames;
mod jit_symbols;
mod pauth;
mod regs;
mod shadow_stack;
mod trampoline;

pub(crate) use bti::*;
pub(crate) use capture::*;
pub(crate) use frames::*;
pub(crate) use pauth::*;
pub(crate) use regs::*;
pub(crate) use shadow_stack::*;
pub(crate) use trampoline::*;
