//! Keeps the object that holds the trampolines loaded for the life of the process.
//!
//! A hijacked thread returns into the trampoline whenever its start routine ends,
//! so the code must never be unmapped under it: if this crate lives in a shared
//! object that is `dlclose`d, that object is first marked `RTLD_NODELETE`.

use core::ffi::c_void;
use std::sync::OnceLock;

/// Whether the trampolines' object can no longer be unloaded (computed once).
pub(crate) fn trampolines_pinned() -> bool {
    static PINNED: OnceLock<bool> = OnceLock::new();
    *PINNED.get_or_init(pin)
}

fn pin() -> bool {
    // Any address in the object that holds the trampolines: their first pad.
    let ours = crate::arch::trampoline_pad(0) as *const c_void;
    // The main program is never unloaded. Decided by its loaded segments
    // (`AT_PHDR`), not by `dladdr`, which answers nothing in a statically linked
    // program (glibc's static `dladdr` knows only `dlopen`ed objects).
    if crate::walk::in_main_program(ours as u64) {
        return true;
    }
    let Some(path) = object_path(ours) else { return false };
    // RTLD_NOLOAD: only find the already-loaded object; RTLD_NODELETE: never unload it.
    let flags = libc::RTLD_LAZY | libc::RTLD_NOLOAD | libc::RTLD_NODELETE;
    // SAFETY: `path` is the NUL-terminated name dladdr reported for a loaded object;
    // with RTLD_NOLOAD nothing new is loaded. The handle is kept on purpose.
    let handle = unsafe { libc::dlopen(path, flags) };
    !handle.is_null()
}

/// The file name of the loaded object containing `address`.
fn object_path(address: *const c_void) -> Option<*const libc::c_char> {
    // SAFETY: an all-zero Dl_info is a valid out-value for dladdr.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    // SAFETY: dladdr only reads loader state and writes `info`.
    let found = unsafe { libc::dladdr(address, &mut info) } != 0;
    (found && !info.dli_fname.is_null()).then_some(info.dli_fname)
}
