//! aarch64 (AAPCS64, Linux): register capture for the stack walk, pointer
//! authentication of return addresses, the exit trampoline, and the BTI and
//! Guarded Control Stack checks.

mod bti;
mod capture;
mod pauth;
mod regs;
mod shadow_stack;
mod trampoline;

// The doctor lines (`*_state`) are for `examples/doctor.rs`.
#[allow(unused_imports)]
pub(crate) use bti::*;
pub(crate) use capture::*;
#[allow(unused_imports)]
pub(crate) use pauth::*;
pub(crate) use regs::*;
#[allow(unused_imports)]
pub(crate) use shadow_stack::*;
pub(crate) use trampoline::*;
