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

// The arch contract `src/arch.rs` documents, listed name by name.
pub(crate) use bti::branch_target_state;
pub(crate) use capture::capture_registers;
pub(crate) use frames::{CALL_RETURN_SLOT, FRAME_RECORD_FP, glibc_thread_stack_top, main_entry_sp};
pub(crate) use pauth::{pointer_auth_state, sign_return_address, strip_return_address};
// Only the walker's unit tests ask.
#[cfg(test)]
pub(crate) use pauth::pointer_auth_supported;
pub(crate) use regs::{
    ADDRESS_SIZE, CAPTURED, Context, FULL_SAVE_RULES, RA, RA_SIGN_STATE, SP, is_callee_saved,
    vendor,
};
pub(crate) use shadow_stack::{shadow_stack_enabled, shadow_stack_state, shadow_stack_status};
pub(crate) use trampoline::{
    CODE_ALIGNMENT, DATA_ALIGNMENT, OBJECT_ARCHITECTURE, ORIGINAL_RETURNS, TRAMPOLINE_CFA_ROWS,
    TRAMPOLINE_COPIES, TRAMPOLINE_ENTRY_OFFSET, TRAMPOLINE_LEN, trampoline_layout_ok,
    trampoline_pad,
};
