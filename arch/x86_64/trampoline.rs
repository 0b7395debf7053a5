//! The exit trampoline: where a hijacked thread's start routine returns to.
//!
//! There are [`TRAMPOLINE_COPIES`] identical copies. Each serves one original
//! return address (in practice two are used: `start_thread` for every thread and
//! `__libc_start_call_main` for the main thread), because the copy's runtime FDE
//! must name its original return address as a constant: a DWARF expression cannot
//! read thread-local storage. Copy `k` reads its return address from
//! `ORIGINAL_RETURNS[k]`.
//!
//! ```text
//!  at entry (start routine's `ret` popped the slot)  during the call into Rust
//!  | start_thread's frame |                          | start_thread's frame |
//!  +----------------------+ <- rsp (16-aligned)      +----------------------+ <- CFA
//!                                                    | saved rax            |
//!                                                    | saved rdx            | <- rsp (16-aligned)
//!                                                    | return into copy k   |
//! ```
//!
//! Copy layout (offsets from the pad label, where the FDE starts):
//!
//! | offset | instruction                         | CFA after it |
//! |--------|-------------------------------------|--------------|
//! | 0      | `nop` (pad: unwinders look up ra-1) | rsp + 0      |
//! | 1      | `push rax` (entry)                  | rsp + 8      |
//! | 2      | `push rdx`                          | rsp + 16     |
//! | 3      | `call` the exit sequence (5 bytes)  | rsp + 16     |
//! | 8      | `pop rdx`                           | rsp + 8      |
//! | 9      | `pop rax`                           | rsp + 0      |
//! | 10     | `jmp [rip + original]` (6 bytes)    | —            |
//!
//! rax and rdx carry the start routine's return value (`main`'s exit status is in
//! eax); callee-saved registers were restored by the start routine's epilogue and
//! the Rust callee preserves them. The stack pointer is back to its entry value
//! when the `jmp` continues in the original caller, exactly as after a plain `ret`.

use core::sync::atomic::AtomicUsize;

/// Number of trampoline copies, so distinct original return addresses supported.
pub(crate) const TRAMPOLINE_COPIES: usize = 8;

/// Bytes from a copy's pad label to its end (the FDE's length).
pub(crate) const TRAMPOLINE_LEN: usize = 16;

/// Bytes from the pad label to the entry the hijacked slot points at.
pub(crate) const TRAMPOLINE_ENTRY_OFFSET: usize = 1;

/// The CFA rows of a copy: from `offset` (bytes from the pad label) on, the CFA is
/// `sp + cfa_offset`. The return address and every other register keep the rule
/// the FDE's initial instructions give them.
pub(crate) const TRAMPOLINE_CFA_ROWS: &[(u32, u32)] = &[(0, 0), (2, 8), (3, 16), (9, 8), (10, 0)];

/// Code alignment factor of the trampoline's runtime CIE (x86_64 instructions are
/// byte-aligned).
pub(crate) const CODE_ALIGNMENT: u8 = 1;

/// Data alignment factor of the trampoline's runtime CIE (stack slots are 8 bytes).
pub(crate) const DATA_ALIGNMENT: i8 = -8;

/// ELF machine of the in-memory object announced to gdb.
pub(crate) const OBJECT_ARCHITECTURE: object::Architecture = object::Architecture::X86_64;

/// The original return address each copy continues at (0: copy unused).
pub(crate) static ORIGINAL_RETURNS: [AtomicUsize; TRAMPOLINE_COPIES] =
    [const { AtomicUsize::new(0) }; TRAMPOLINE_COPIES];

/// The bytes every copy must consist of, with the `call` and `jmp` displacements
/// masked out (`None`): checked before a copy is first used, so a toolchain that
/// assembles it differently makes the crate fall back instead of mis-describing
/// the stack.
const EXPECTED_CODE: [Option<u8>; TRAMPOLINE_LEN] = [
    Some(0x90), // nop
    Some(0x50), // push rax
    Some(0x52), // push rdx
    Some(0xe8), // call rel32
    None,
    None,
    None,
    None,
    Some(0x5a), // pop rdx
    Some(0x58), // pop rax
    Some(0xff), // jmp [rip + disp32]: opcode ff /4,
    Some(0x25), //   ModRM 0x25 (mod 00, reg 4, rm 101 = rip-relative)
    None,
    None,
    None,
    None,
];

unsafe extern "C" {
    /// The copies' pad labels, in order (a table in `.data.rel.ro`).
    #[link_name = "hijack_tls_trampoline_table"]
    static TRAMPOLINE_TABLE: [usize; TRAMPOLINE_COPIES];
}

/// The address of copy `copy`'s pad byte, where its FDE starts.
pub(crate) fn trampoline_pad(copy: usize) -> usize {
    // SAFETY: the table is immutable data defined in the assembly below.
    unsafe { TRAMPOLINE_TABLE[copy] }
}

/// Whether copy `copy` was assembled exactly as [`TRAMPOLINE_CFA_ROWS`] describes.
pub(crate) fn trampoline_layout_ok(copy: usize) -> bool {
    let pad = trampoline_pad(copy) as *const u8;
    EXPECTED_CODE.iter().enumerate().all(|(i, expected)| {
        // SAFETY: the copy is TRAMPOLINE_LEN bytes of mapped, readable code.
        let byte = unsafe { pad.add(i).read() };
        expected.is_none_or(|e| e == byte)
    })
}

// Each copy: global hidden labels so backtraces and gdb name the frame; no CFI
// directives (its unwind info is registered at run time, with the original return
// address filled in). `int3` padding keeps a stray jump into the gap from running on.
core::arch::global_asm!(
    ".pushsection .text.hijack_tls_trampolines,\"ax\",@progbits",
    ".p2align 4, 0xcc",
    // A gap no FDE covers, so no static FDE ends where copy 0 starts: LLVM
    // libunwind 14 resolves a pc equal to the end of the nearest static FDE below
    // it to that FDE, and unwinders look copy 0 up at exactly its first byte
    // (ra - 1). NOTES.md, "Runtime unwind info".
    ".fill 16, 1, 0xcc",
    ".irp k, 0,1,2,3,4,5,6,7",
    ".globl hijack_tls_trampoline_\\k",
    ".hidden hijack_tls_trampoline_\\k",
    ".type hijack_tls_trampoline_\\k, @function",
    "hijack_tls_trampoline_\\k:",
    "nop",
    "push rax",
    "push rdx",
    "call {exit}",
    "pop rdx",
    "pop rax",
    "jmp qword ptr [rip + {originals} + 8 * \\k]",
    ".size hijack_tls_trampoline_\\k, . - hijack_tls_trampoline_\\k",
    ".p2align 4, 0xcc",
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
