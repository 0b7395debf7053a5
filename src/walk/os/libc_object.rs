//! Which loaded object is libc: an address of libc's own `pthread_create`, looked
//! up in libc's own symbol scope, where no interposer can stand in for it.
//!
//! The global scope's `pthread_create` (a GOT entry, `dlsym(RTLD_DEFAULT, ..)`)
//! is not libc's when an `LD_PRELOAD` library or a sanitizer runtime in the
//! executable defines one, or when a non-PIE executable's non-PIC code takes its
//! address (its PLT stub is then the canonical address every GOT holds).
//! `dlsym` on a handle searches that object's local scope, the object and its own
//! dependencies (glibc elf/dl-sym.c `do_sym`: `map->l_local_scope`), never the
//! executable or a preloaded library. NOTES.md, "Which object is libc".

use core::ffi::{CStr, c_void};

/// The objects that may define glibc's `pthread_create`, by `DT_SONAME`, in the
/// order asked: libc since glibc 2.34, libpthread before (whose local scope
/// reaches libc's definition on 2.34+ too).
const THREAD_LIBRARIES: [&CStr; 2] = [c"libc.so.6", c"libpthread.so.0"];

/// The rule by which [`pthread_create_source`] found libc's `pthread_create`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LibcRule {
    /// In the local scope of the loaded object with this `DT_SONAME` (one of
    /// [`THREAD_LIBRARIES`]).
    LocalScope(&'static CStr),
    /// No such object is loaded: the global scope's (a statically linked
    /// program, whose executable is the C library).
    GlobalScope,
}

/// The address of `pthread_create` as the C library itself defines it, or the
/// global scope's where no object named as in [`THREAD_LIBRARIES`] is loaded (a
/// statically linked program, whose executable is the C library).
///
/// Not async-signal-safe (`dlopen`, `dlsym`); takes `_dl_load_lock` only, which
/// glibc's `fork` resets in the child (posix/fork.c).
pub(super) fn pthread_create_address() -> u64 {
    pthread_create_source().0
}

/// [`pthread_create_address`] and the rule that found it.
pub(crate) fn pthread_create_source() -> (u64, LibcRule) {
    THREAD_LIBRARIES
        .iter()
        .find_map(|name| Some((own_symbol(name, c"pthread_create")?, LibcRule::LocalScope(name))))
        .unwrap_or((libc::pthread_create as *const () as u64, LibcRule::GlobalScope))
}

/// The address of `symbol` in the local scope of the loaded object `object`, or
/// `None` if that object is not loaded or its scope does not define the symbol.
fn own_symbol(object: &CStr, symbol: &CStr) -> Option<u64> {
    // SAFETY: a NUL-terminated name; RTLD_NOLOAD never loads (so runs no
    // constructor), it only returns a reference to an object already loaded.
    let handle = unsafe { libc::dlopen(object.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
    if handle.is_null() {
        return None;
    }
    // SAFETY: a live handle and a NUL-terminated name.
    let address: *mut c_void = unsafe { libc::dlsym(handle, symbol.as_ptr()) };
    // SAFETY: gives back the reference `dlopen` took; the object stays loaded
    // through the reference its loader holds (it was loaded before this call).
    unsafe { libc::dlclose(handle) };
    (!address.is_null()).then_some(address as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file `dladdr` names for `address`.
    fn file_of(address: u64) -> String {
        // SAFETY: an all-zero `Dl_info` is a valid out-value.
        let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
        // SAFETY: dladdr only reads loader state and writes `info`.
        let found = unsafe { libc::dladdr(address as *const c_void, &mut info) } != 0;
        assert!(found && !info.dli_fname.is_null(), "{address:#x} is in no object");
        // SAFETY: a non-null `dli_fname` is a NUL-terminated string.
        unsafe { CStr::from_ptr(info.dli_fname) }.to_string_lossy().into_owned()
    }

    #[test]
    fn pthread_create_is_libcs_own() {
        let file = file_of(pthread_create_address());
        assert!(file.ends_with("/libc.so.6"), "{file}");
    }

    #[test]
    fn a_missing_object_or_symbol_is_none() {
        assert_eq!(own_symbol(c"libhijack-tls-no-such-object.so", c"pthread_create"), None);
        assert_eq!(own_symbol(c"libc.so.6", c"hijack_tls_no_such_symbol"), None);
        let address = own_symbol(c"libc.so.6", c"pthread_create").expect("libc's pthread_create");
        assert_eq!(address, pthread_create_address());
    }
}
