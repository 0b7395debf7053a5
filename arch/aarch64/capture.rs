//! Captures the caller's registers so the stack walk can start from a frame of its
//! own stack.
//!
//! `with_context` calls the naked routine `capture_registers` with `bl`, which
//! leaves the return address in x30 and pushes nothing, so the routine sees the
//! caller's sp unchanged:
//!
//! ```text
//!   higher addresses
//!   | ...with_context's frame...  |
//!   +-----------------------------+ <- sp at entry = sp after `ret`: saved as sp
//!   lower addresses                  x30 at entry = return address into
//!                                    with_context: saved as pc
//! ```
//!
//! The captured context is exactly the register state of `with_context` (or of
//! whatever function it was inlined into) right after the `bl`: pc is a genuine
//! return address, so the walker looks its FDE up at `pc - 1` like every other
//! frame's. x30 itself is not captured: the `bl` overwrote the caller's value, and
//! the caller's own CFI says where it saved its return address. The frame stays
//! live, with its saved registers untouched, while `f` runs deeper on the stack.

use super::regs::Context;

/// Stores x19-x29, sp and the return address (as pc) into `*ctx`. Leaf routine
/// that never moves sp and never writes x30: CFA = sp + 0 and the return address
/// in x30 throughout, which is what `.cfi_startproc` alone describes on aarch64
/// (rustc emits no CFI for naked functions). Entered only by `bl`, never
/// indirectly, so it needs no BTI landing pad. The symbol keeps Rust mangling, so
/// it is unique to this crate and version.
///
/// # Safety
/// `ctx` must be valid for writes of a `Context`.
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn capture_registers(ctx: *mut Context) {
    core::arch::naked_asm!(
        ".cfi_startproc",
        // x0 = ctx (first AAPCS64 argument). x19-x29 still hold the caller's
        // values: nothing here writes them. Pairs fit `stp`'s scaled 7-bit
        // offset (at most 504 bytes).
        "stp x19, x20, [x0, #{x19}]",
        "stp x21, x22, [x0, #{x21}]",
        "stp x23, x24, [x0, #{x23}]",
        "stp x25, x26, [x0, #{x25}]",
        "stp x27, x28, [x0, #{x27}]",
        "str x29, [x0, #{x29}]",
        // The caller's sp: `bl` pushed nothing, so it is ours.
        "mov x9, sp",
        "str x9, [x0, #{sp}]",
        // Our return address: the caller's pc right after its `bl`. Never signed:
        // `bl` writes a plain address and this routine does not sign it.
        "str x30, [x0, #{pc}]",
        "ret",
        ".cfi_endproc",
        x19 = const Context::slot_offset(19),
        x21 = const Context::slot_offset(21),
        x23 = const Context::slot_offset(23),
        x25 = const Context::slot_offset(25),
        x27 = const Context::slot_offset(27),
        x29 = const Context::slot_offset(29),
        sp = const Context::slot_offset(31),
        pc = const Context::slot_offset(32),
    )
}

#[cfg(test)]
mod tests {
    use crate::arch::with_context;

    #[test]
    fn captures_plausible_registers() {
        let local = 0u8;
        let here = &local as *const u8 as u64;
        with_context(|ctx| {
            let sp = ctx.sp().expect("sp captured");
            let pc = ctx.pc().expect("pc captured");
            // The captured frame is with_context's, just below this test's frame.
            assert!(sp < here && here - sp < 4096, "sp {sp:#x} near {here:#x}");
            assert_eq!(sp % 16, 0, "AAPCS64 keeps sp 16-byte aligned");
            assert_eq!(pc % 4, 0, "a return address is an instruction address");
            assert!(ctx.get(gimli::AArch64::X29).is_some());
            assert_eq!(ctx.get(gimli::AArch64::X0), None);
            assert_eq!(ctx.get(gimli::AArch64::X30), None);
        });
    }
}
