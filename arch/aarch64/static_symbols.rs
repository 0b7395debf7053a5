//! Weak link-time references to the glibc symbols a statically linked program
//! cannot look up (`dlsym(RTLD_DEFAULT, ..)` knows no symbol there): one table of
//! addresses in `.data.rel.ro`, each entry 0 where the link did not define the
//! symbol. Built only with `+crt-static`: in a dynamic link a weak reference to a
//! `GLIBC_PRIVATE` (or `GLIBC_2.35`) symbol would bind the program to that
//! version node, so those builds keep `dlsym` (`src/libc_symbol.rs`).
//!
//! A weak undefined reference does not pull an archive member out of `libc.a`:
//! an entry is non-zero only where something else linked the member in
//! (`pthread_create.o` holds `_thread_db_*` and comes with `pthread_create`;
//! `dl-tls.o`, `dl-find_object.o` come with static TLS and libgcc's unwinder).
//! NOTES.md, "Static glibc".

/// The symbols of the table, in its order: entry `i` is the address of
/// `STATIC_SYMBOL_NAMES[i]`.
pub(crate) const STATIC_SYMBOL_NAMES: [&core::ffi::CStr; 6] = [
    c"_dl_find_object",
    c"_thread_db_sizeof_pthread",
    c"_thread_db_pthread_start_routine",
    c"_dl_get_tls_static_info",
    c"main",
    c"__cxa_thread_atexit_impl",
];

// aarch64: `.quad` (= `.8byte`) is an 8-byte absolute address, resolved by the
// static link (static-pie: made relative, applied by `_dl_relocate_static_pie`
// before any Rust code runs); a weak symbol the link leaves undefined resolves
// to 0.
core::arch::global_asm!(
    ".pushsection .data.rel.ro.hijack_tls_static_symbols,\"aw\",%progbits",
    ".p2align 3",
    ".hidden hijack_tls_static_symbols",
    ".globl hijack_tls_static_symbols",
    ".type hijack_tls_static_symbols, %object",
    "hijack_tls_static_symbols:",
    ".weak _dl_find_object",
    ".quad _dl_find_object",
    ".weak _thread_db_sizeof_pthread",
    ".quad _thread_db_sizeof_pthread",
    ".weak _thread_db_pthread_start_routine",
    ".quad _thread_db_pthread_start_routine",
    ".weak _dl_get_tls_static_info",
    ".quad _dl_get_tls_static_info",
    ".weak main",
    ".quad main",
    ".weak __cxa_thread_atexit_impl",
    ".quad __cxa_thread_atexit_impl",
    ".size hijack_tls_static_symbols, . - hijack_tls_static_symbols",
    ".popsection",
);

unsafe extern "C" {
    /// The table above: one address per name, 0 for a symbol the link left
    /// undefined.
    static hijack_tls_static_symbols: [usize; STATIC_SYMBOL_NAMES.len()];
}

/// The link-time address of the symbol `name`, if it is in the table and the
/// static link defined it.
pub(crate) fn static_symbol(name: &core::ffi::CStr) -> Option<usize> {
    let index = STATIC_SYMBOL_NAMES.iter().position(|known| *known == name)?;
    // SAFETY: the table is read-only data of this object, written by the linker
    // (and by the static-pie self-relocation, which runs before any Rust code).
    let address = unsafe { hijack_tls_static_symbols[index] };
    (address != 0).then_some(address)
}
