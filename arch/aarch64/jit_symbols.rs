//! The two symbols of gdb's JIT interface, defined *weak* and *hidden*: a program
//! that also links another JIT (LLVM ORC, wasmtime) with strong definitions still
//! links, and the crate then shares that one descriptor; and two copies of the
//! crate in two shared objects never bind to each other's (gdb reads each object's
//! own pair from its symbol table). aarch64: `bti c` (a hint, a no-op without BTI) then `ret`.
//!
//! `__jit_debug_descriptor` is `struct jit_descriptor { uint32_t version = 1;
//! uint32_t action_flag; jit_code_entry *relevant_entry; jit_code_entry
//! *first_entry; }` (gdb manual, "JIT Compilation Interface"); gdb breaks on
//! `__jit_debug_register_code`, which therefore must be a real, empty function.

core::arch::global_asm!(
    ".pushsection .data.hijack_tls_jit_descriptor,\"aw\",%progbits",
    ".p2align 3",
    ".weak __jit_debug_descriptor",
    ".hidden __jit_debug_descriptor",
    ".type __jit_debug_descriptor, %object",
    "__jit_debug_descriptor:",
    ".long 1", // version
    ".long 0", // action_flag: JIT_NOACTION
    ".quad 0", // relevant_entry
    ".quad 0", // first_entry
    ".size __jit_debug_descriptor, . - __jit_debug_descriptor",
    ".popsection",
    ".pushsection .text.hijack_tls_jit_register_code,\"ax\",%progbits",
    ".p2align 2",
    ".weak __jit_debug_register_code",
    ".hidden __jit_debug_register_code",
    ".type __jit_debug_register_code, %function",
    "__jit_debug_register_code:",
    "hint #34", // bti c: a landing pad, should the call go through a PLT stub's `br`
    "ret",
    ".size __jit_debug_register_code, . - __jit_debug_register_code",
    ".popsection",
);
