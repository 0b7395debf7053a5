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
    let ours = crate::hijack::on_trampoline as *const c_void;
    let Some((our_base, path)) = object_of(ours) else { return false };
    // The main program is never unloaded.
    // SAFETY: getauxval has no preconditions; AT_PHDR is the main program's headers.
    let main_headers = unsafe { libc::getauxval(libc::AT_PHDR) } as *const c_void;
    if object_of(main_headers).is_some_and(|(base, _)| base == our_base) {
        return true;
    }
    // RTLD_NOLOAD: only find the already-loaded object; RTLD_NODELETE: never unload it.
    let flags = libc::RTLD_LAZY | libc::RTLD_NOLOAD | libc::RTLD_NODELETE;
    // SAFETY: `path` is the NUL-terminated name dladdr reported for a loaded object;
    // with RTLD_NOLOAD nothing new is loaded. The handle is kept on purpose.
    let handle = unsafe { libc::dlopen(path, flags) };
    !handle.is_null()
}

/// The load base and file name of the object containing `address`.
fn object_of(address: *const c_void) -> Option<(*mut c_void, *const libc::c_char)> {
    // SAFETY: an all-zero Dl_info is a valid out-value for dladdr.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    // SAFETY: dladdr only reads loader state and writes `info`.
    let found = unsafe { libc::dladdr(address, &mut info) } != 0;
    (found && !info.dli_fname.is_null()).then_some((info.dli_fbase, info.dli_fname))
}
