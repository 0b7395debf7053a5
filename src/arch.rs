//! The one selection point for ISA-specific code: every supported ISA exports
//! the same names from `arch/<isa>/mod.rs`, each listed there by name:
//!
//! - registers (`regs.rs`): `Context` (an `arch/register_file.rs` instance),
//!   `RA`, `SP`, `RA_SIGN_STATE`, `ADDRESS_SIZE`, `CAPTURED`, `FULL_SAVE_RULES`,
//!   `vendor`, `is_callee_saved`, and the return-address signing
//!   `strip_return_address` / `sign_return_address` (identity on x86_64);
//! - capture (`capture.rs`): `capture_registers`, wrapped by [`with_context`];
//! - frames (`frames.rs`): `CALL_RETURN_SLOT`, `FRAME_RECORD_FP`,
//!   `glibc_thread_stack_top`, `main_entry_sp`;
//! - protections: `shadow_stack_status`, `shadow_stack_enabled`,
//!   `shadow_stack_state`, `pointer_auth_state`, `branch_target_state`;
//! - the exit trampoline (`trampoline.rs`): `TRAMPOLINE_COPIES`, `TRAMPOLINE_LEN`,
//!   `TRAMPOLINE_ENTRY_OFFSET`, `TRAMPOLINE_CFA_ROWS`, `CODE_ALIGNMENT`,
//!   `DATA_ALIGNMENT`, `OBJECT_ARCHITECTURE`, `ORIGINAL_RETURNS`,
//!   `trampoline_pad`, `trampoline_layout_ok`.
//!
//! The one upward reference of `arch/`: each trampoline names
//! `sym crate::exit::hijack::on_trampoline` (entered by `ret`, it has no register
//! to carry a callback), listed in `.ci/import_cycles.allow`.

#[cfg(all(hijack_supported, target_arch = "x86_64"))]
#[path = "../arch/x86_64/mod.rs"]
mod imp;

#[cfg(all(hijack_supported, target_arch = "aarch64"))]
#[path = "../arch/aarch64/mod.rs"]
mod imp;

#[cfg(hijack_supported)]
pub(crate) use imp::*;

/// The register file each ISA's `regs.rs` instantiates with its register numbers.
#[cfg(hijack_supported)]
#[path = "../arch/register_file.rs"]
mod register_file;

/// The call under a `setjmp` point that catches a forced unwind in the exit
/// sequence (`src/exit/cancel/catch.rs`). Built whatever the features: the fallback
/// runs hooks too.
#[cfg(all(glibc_cancel_catch, target_arch = "x86_64"))]
#[path = "../arch/x86_64/setjmp_call.rs"]
pub(crate) mod setjmp_call;

#[cfg(all(glibc_cancel_catch, target_arch = "aarch64"))]
#[path = "../arch/aarch64/setjmp_call.rs"]
pub(crate) mod setjmp_call;

/// The weak link-time table of the glibc symbols `dlsym` cannot find in a
/// statically linked program (`src/libc_symbol.rs`). Built whatever the features:
/// the fallback asks for `__cxa_thread_atexit_impl` too.
#[cfg(all(glibc_cancel_catch, target_feature = "crt-static", target_arch = "x86_64"))]
#[path = "../arch/x86_64/static_symbols.rs"]
mod static_symbols;

#[cfg(all(glibc_cancel_catch, target_feature = "crt-static", target_arch = "aarch64"))]
#[path = "../arch/aarch64/static_symbols.rs"]
mod static_symbols;

#[cfg(all(glibc_cancel_catch, target_feature = "crt-static"))]
pub(crate) use static_symbols::static_symbol;

/// Calls `f` with the registers of the calling frame, captured by the ISA's
/// `capture_registers` routine (its module docs show the frame it describes).
///
/// The first frame described is the one containing this call (after inlining);
/// it stays valid for the whole of `f`, which runs deeper on the same stack.
#[cfg(hijack_supported)]
#[inline(never)]
pub(crate) fn with_context<R>(f: impl FnOnce(&Context) -> R) -> R {
    let mut ctx = Context::new();
    // SAFETY: `ctx` is a live local borrowed exclusively for the call, so it is
    // valid for writes of a whole `Context`; the routine writes nothing else and
    // preserves every callee-saved register.
    unsafe { capture_registers(&mut ctx) };
    ctx.set_known(CAPTURED);
    f(&ctx)
}

#[cfg(all(test, hijack_supported))]
mod tests {
    use super::*;
    use gimli::Register;

    #[test]
    fn callee_saved_view_and_forget() {
        let mut ctx = Context::new();
        for reg in Context::REGISTERS {
            ctx.set(reg, u64::from(reg.0) + 1);
        }
        // Over a context that knew every register: the others become unknown.
        let mut saved = ctx;
        saved.inherit_callee_saved(&ctx);
        for reg in Context::REGISTERS {
            let expected = is_callee_saved(reg).then_some(u64::from(reg.0) + 1);
            assert_eq!(saved.get(reg), expected, "register {}", reg.0);
        }
        ctx.forget(SP);
        assert_eq!(ctx.get(SP), None);
        ctx.forget(Register(200)); // outside the file: ignored
        assert!(!is_callee_saved(Register(200)));
    }
}
