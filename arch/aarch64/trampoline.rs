//! The exit trampoline: where a hijacked thread's start routine returns to.
//!
//! [`TRAMPOLINE_COPIES`] identical copies, one per distinct original return
//! address (see the x86_64 file and NOTES.md for why). The start routine's epilogue
//! loads x30 from the hijacked slot (authenticating it with `autiasp` first when the
//! frame is PAC-signed: the slot then holds the trampoline signed by
//! `sign_return_address`) and `ret`s to the entry, so x30 = entry and sp = the start
//! routine's CFA on arrival.
//!
//! ```text
//!  at entry                           during the call into Rust
//!  | start_thread's frame |           | start_thread's frame |
//!  +----------------------+ <- sp     +----------------------+ <- CFA
//!                                     | saved x1             |
//!                                     | saved x0             | <- sp (16-aligned)
//! ```
//!
//! | offset | instruction                              | CFA after it |
//! |--------|------------------------------------------|--------------|
//! | 0      | `nop` (pad: unwinders look up ra - 1)    | sp + 0       |
//! | 4      | `stp x0, x1, [sp, #-16]!` (entry)        | sp + 16      |
//! | 8      | `bl` the exit sequence                   | sp + 16      |
//! | 12     | `ldp x0, x1, [sp], #16`                  | sp + 0       |
//! | 16     | `adrp x16, original`                     | sp + 0       |
//! | 20     | `ldr x30, [x16, :lo12:original]`         | sp + 0       |
//! | 24     | `ret` (through x30: no BTI landing pad)   | —            |
//! | 28     | `brk #0` (padding, never reached)         | —            |
//!
//! x0/x1 carry the start routine's return value; x19-x29 were restored by the start
//! routine's epilogue and the Rust callee preserves them. The original address is
//! stored stripped of any PAC signature and returned to with a plain `ret`, which
//! does not authenticate.

use core::sync::atomic::AtomicUsize;

/// Number of trampoline copies, so distinct original return addresses supported.
pub(crate) const TRAMPOLINE_COPIES: usize = 8;

/// Bytes from a copy's pad label to its end (the FDE's length).
pub(crate) const TRAMPOLINE_LEN: usize = 32;

/// Bytes from the pad label to the entry the hijacked slot points at.
pub(crate) const TRAMPOLINE_ENTRY_OFFSET: usize = 4;

/// The CFA rows of a copy: from `offset` (bytes from the pad label) on, the CFA is
/// `sp + cfa_offset`.
pub(crate) const TRAMPOLINE_CFA_ROWS: &[(u32, u32)] = &[(0, 0), (8, 16), (16, 0)];

/// Code alignment factor of the runtime CIE (AArch64 instructions are 4 bytes).
pub(crate) const CODE_ALIGNMENT: u8 = 4;

/// Data alignment factor of the runtime CIE.
pub(crate) const DATA_ALIGNMENT: i8 = -8;

/// ELF machine of the in-memory object announced to gdb.
pub(crate) const OBJECT_ARCHITECTURE: object::Architecture = object::Architecture::Aarch64;

/// The original return address each copy continues at (0: copy unused).
pub(crate) static ORIGINAL_RETURNS: [AtomicUsize; TRAMPOLINE_COPIES] =
    [const { AtomicUsize::new(0) }; TRAMPOLINE_COPIES];

/// Each instruction word of a copy, with the relocated ones (`bl`, `adrp`, `ldr`)
/// checked only by opcode: `(mask, value)` pairs.
const EXPECTED_CODE: [(u32, u32); 8] = [
    (0xffff_ffff, 0xd503_201f), // nop
    (0xffff_ffff, 0xa9bf_07e0), // stp x0, x1, [sp, #-16]!
    (0xfc00_0000, 0x9400_0000), // bl <imm26>
    (0xffff_ffff, 0xa8c1_07e0), // ldp x0, x1, [sp], #16
    (0x9f00_001f, 0x9000_0010), // adrp x16, <page>
    (0xffc0_03ff, 0xf940_021e), // ldr x30, [x16, #<imm12>]
    (0xffff_ffff, 0xd65f_03c0), // ret
    (0xffff_ffff, 0xd420_0000), // brk #0 (padding)
];

unsafe extern "C" {
    /// The copies' pad labels, in order (a table in `.data.rel.ro`).
    #[link_name = "hijack_tls_trampoline_table"]
    static TRAMPOLINE_TABLE: [usize; TRAMPOLINE_COPIES];
}

/// The address of copy `copy`'s pad, where its FDE starts.
pub(crate) fn trampoline_pad(copy: usize) -> usize {
    // SAFETY: the table is immutable data defined in the assembly below.
    unsafe { TRAMPOLINE_TABLE[copy] }
}

/// Whether copy `copy` was assembled exactly as [`TRAMPOLINE_CFA_ROWS`] describes.
pub(crate) fn trampoline_layout_ok(copy: usize) -> bool {
    let pad = trampoline_pad(copy) as *const u32;
    EXPECTED_CODE.iter().enumerate().all(|(i, (mask, value))| {
        // SAFETY: the copy is TRAMPOLINE_LEN bytes of mapped, readable, 4-aligned code.
        let word = unsafe { pad.add(i).read() };
        word & mask == *value
    })
}

// Each copy: a global hidden label so backtraces and gdb name the frame; no CFI
// directives (its unwind info is registered at run time, with the original return
// address filled in); `brk #0` pads it to 32 bytes.
core::arch::global_asm!(
    ".pushsection .text.hijack_tls_trampolines,\"ax\",@progbits",
    ".p2align 5",
    ".irp k, 0,1,2,3,4,5,6,7",
    ".globl hijack_tls_trampoline_\\k",
    ".hidden hijack_tls_trampoline_\\k",
    ".type hijack_tls_trampoline_\\k, %function",
    "hijack_tls_trampoline_\\k:",
    // The pad: while the start routine runs, its return address is the entry
    // below, and unwinders look up `entry - 1`, which must be inside this FDE.
    "nop",
    // The entry. x0/x1 hold the start routine's return value (`void *`, or
    // `main`'s int; x1 for a 128-bit one); sp stays 16-byte aligned.
    "stp x0, x1, [sp, #-16]!",
    // Run the exit sequence (a Rust `extern "C"` fn: x19-x29 preserved).
    "bl {exit}",
    "ldp x0, x1, [sp], #16",
    // x30 = ORIGINAL_RETURNS[k], the unsigned original return address; x16 is
    // the intra-procedure scratch register, dead at a return.
    "adrp x16, {originals} + 8 * \\k",
    "ldr x30, [x16, :lo12:{originals} + 8 * \\k]",
    // Continue in the caller exactly as the start routine's own `ret` would have:
    // same sp, same x0/x1, and no indirect branch for BTI to check.
    "ret",
    // Never reached: pads the copy to 32 bytes and traps a stray jump.
    "brk #0",
    ".size hijack_tls_trampoline_\\k, . - hijack_tls_trampoline_\\k",
    ".endr",
    ".popsection",
    ".pushsection .data.rel.ro.hijack_tls_trampoline_table,\"aw\",@progbits",
    ".p2align 3",
    ".globl hijack_tls_trampoline_table",
    ".hidden hijack_tls_trampoline_table",
    "hijack_tls_trampoline_table:",
    ".irp k, 0,1,2,3,4,5,6,7",
    ".quad hijack_tls_trampoline_\\k",
    ".endr",
    ".popsection",
    exit = sym crate::exit::hijack::on_trampoline,
    originals = sym ORIGINAL_RETURNS,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_copy_has_the_described_layout() {
        for copy in 0..TRAMPOLINE_COPIES {
            assert!(trampoline_layout_ok(copy), "copy {copy}");
        }
        assert_eq!(trampoline_pad(1) - trampoline_pad(0), TRAMPOLINE_LEN);
    }
}
