//! glibc symbols that may be absent or are `GLIBC_PRIVATE`, looked up at run time
//! so the crate keeps no link-time dependency on a glibc symbol version: with
//! `dlsym` in the global scope, and in a `+crt-static` build, where `dlsym` knows
//! no symbol, from the weak link-time table (`arch/*/static_symbols.rs`).
//! NOTES.md, "Static glibc", says which symbol is taken how.

use core::ffi::{CStr, c_void};

/// The address of the symbol `name` in the process's global scope (or, in a
/// statically linked build, as the static link defined it), or `None`.
pub(crate) fn find(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name has no
    // preconditions.
    let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    if !address.is_null() {
        return Some(address);
    }
    linked(name)
}

/// The weak link-time address of `name` (a `+crt-static` build only).
#[cfg(target_feature = "crt-static")]
fn linked(name: &CStr) -> Option<*mut c_void> {
    crate::arch::static_symbol(name).map(|address| address as *mut c_void)
}

/// Dynamic builds have no link-time table: `dlsym` is the only source.
#[cfg(not(target_feature = "crt-static"))]
fn linked(_name: &CStr) -> Option<*mut c_void> {
    None
}
