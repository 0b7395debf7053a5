//! Captures the caller's registers so the stack walk can start from a frame of its
//! own stack.
//!
//! `with_context` calls the naked routine `capture_registers`, which stores the
//! callee-saved registers, its own return address and the stack pointer its
//! caller will have once it returns:
//!
//! ```text
//!   higher addresses
//!   | ...with_context's frame...  |
//!   +-----------------------------+ <- rsp after `ret`: saved as Context rsp
//!   | return address into         |    (= rsp at entry + 8)
//!   | with_context                | <- rsp at entry: [rsp] saved as Context rip
//!   +-----------------------------+
//!   lower addresses
//! ```
//!
//! The captured context is therefore exactly the register state of `with_context`
//! (or of whatever function it was inlined into) at the instruction right after
//! the call: rip is a genuine return address, so the walker treats the first
//! frame like every other one and looks its FDE up at `rip - 1`, which is inside
//! the `call` and so inside the same function. That frame stays live, and its
//! prologue's register saves stay untouched, while `f` runs deeper on the stack,
//! so the snapshot remains a correct description of it for the whole of `f`.

use super::regs::Context;

/// Stores rbx, rbp, r12-r15, the caller's rsp after return, and the return
/// address (as rip) into `*ctx`. Leaf routine: CFA = rsp + 8 throughout, the
/// return address at CFA - 8, which is the CIE default, so `.cfi_startproc` /
/// `.cfi_endproc` alone describe it (rustc emits no CFI for naked functions).
/// The symbol keeps Rust mangling, so it is unique to this crate and version.
///
/// # Safety
/// `ctx` must be valid for writes of a `Context`.
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn capture_registers(ctx: *mut Context) {
    core::arch::naked_asm!(
        ".cfi_startproc",
        // rdi = ctx (first System V argument). Callee-saved registers still hold
        // the caller's values: nothing here writes them.
        "mov [rdi + {rbx}], rbx",
        "mov [rdi + {rbp}], rbp",
        "mov [rdi + {r12}], r12",
        "mov [rdi + {r13}], r13",
        "mov [rdi + {r14}], r14",
        "mov [rdi + {r15}], r15",
        // The caller's rsp once `ret` has popped the return address.
        "lea rax, [rsp + 8]",
        "mov [rdi + {rsp}], rax",
        // Our return address: the caller's rip right after its `call`.
        "mov rax, [rsp]",
        "mov [rdi + {rip}], rax",
        "ret",
        ".cfi_endproc",
        rbx = const Context::slot_offset(3),
        rbp = const Context::slot_offset(6),
        rsp = const Context::slot_offset(7),
        r12 = const Context::slot_offset(12),
        r13 = const Context::slot_offset(13),
        r14 = const Context::slot_offset(14),
        r15 = const Context::slot_offset(15),
        rip = const Context::slot_offset(16),
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
            let sp = ctx.sp().expect("rsp captured");
            let pc = ctx.pc().expect("rip captured");
            // The captured frame is with_context's, just below this test's frame.
            assert!(sp < here && here - sp < 4096, "sp {sp:#x} near {here:#x}");
            assert_ne!(pc, 0);
            assert_eq!(ctx.get(gimli::X86_64::RAX), None);
        });
    }
}
