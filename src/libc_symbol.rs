//! libc functions looked up at run time, so the crate keeps no link-time
//! dependency on a glibc symbol version.

use core::ffi::{CStr, c_void};

/// The address of the function `name` in the process's global scope, or `None`.
pub(crate) fn find(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name has no
    // preconditions.
    let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!address.is_null()).then_some(address)
}
