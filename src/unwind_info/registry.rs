//! Registration with the process's in-process unwinder through `__register_frame`,
//! which libgcc and LLVM libunwind both export with different arguments: libgcc
//! takes the start of a zero-terminated `.eh_frame` (it walks CIEs and FDEs up to
//! the zero word), libunwind takes one FDE (wasmtime's `sys/unix/unwind.rs` tells
//! them apart the same way: only libunwind has `__unw_add_dynamic_fde`).

use core::ffi::c_void;
use core::fmt;
use std::sync::OnceLock;

use super::{UnwindInfoError, eh_frame};

/// Which unwinder implementation `__register_frame` belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unwinder {
    /// GCC's libgcc_s / libgcc_eh (what Rust binaries on glibc link).
    Libgcc,
    /// LLVM's libunwind.
    LlvmLibunwind,
}

impl Unwinder {
    /// A fixed line naming the unwinder and what its `__register_frame` is given.
    pub(crate) fn description(self) -> &'static str {
        match self {
            Self::Libgcc => "libgcc frame registry (__register_frame, whole .eh_frame)",
            Self::LlvmLibunwind => "LLVM libunwind (__register_frame, one FDE)",
        }
    }
}

impl fmt::Display for Unwinder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// `struct dwarf_eh_bases` of libgcc's `unwind-dw2-fde.h` (libunwind has the same).
#[repr(C)]
struct DwarfEhBases {
    tbase: *mut c_void,
    dbase: *mut c_void,
    func: *mut c_void,
}

unsafe extern "C" {
    /// libgcc: registers every FDE of the zero-terminated `.eh_frame` at `begin`;
    /// LLVM libunwind: registers the one FDE at `begin`. Keeps the pointer.
    fn __register_frame(begin: *const u8);

    /// The FDE covering `pc` (registered ones first, then loaded objects), with
    /// `bases.func` set to its start; null if none.
    fn _Unwind_Find_FDE(pc: *mut c_void, bases: *mut DwarfEhBases) -> *const c_void;
}

/// The unwinder this process links, detected once.
pub(crate) fn unwinder() -> Unwinder {
    static DETECTED: OnceLock<Unwinder> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks the
        // symbol up; the result is compared with null, never called.
        let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__unw_add_dynamic_fde".as_ptr()) };
        if found.is_null() { Unwinder::Libgcc } else { Unwinder::LlvmLibunwind }
    })
}

/// Registers the `.eh_frame` from [`eh_frame::build`] whose FDE starts at `pad`,
/// then checks that the unwinder finds it there.
pub(super) fn register(eh_frame: &'static [u8], pad: usize) -> Result<Unwinder, UnwindInfoError> {
    let unwinder = unwinder();
    let begin = match unwinder {
        Unwinder::Libgcc => eh_frame.as_ptr(),
        Unwinder::LlvmLibunwind => eh_frame[eh_frame::fde_offset(eh_frame)..].as_ptr(),
    };
    // SAFETY: `begin` is what this unwinder's `__register_frame` expects (see the
    // module doc); the bytes are well-formed (built by gimli) and `'static`, so they
    // outlive the registration, which is never undone.
    unsafe { __register_frame(begin) };
    if function_start(pad) == Some(pad) { Ok(unwinder) } else { Err(UnwindInfoError::NotVisible) }
}

/// The start of the function whose FDE the unwinder finds for `pc`, if any.
pub(super) fn function_start(pc: usize) -> Option<usize> {
    let mut bases = DwarfEhBases {
        tbase: core::ptr::null_mut(),
        dbase: core::ptr::null_mut(),
        func: core::ptr::null_mut(),
    };
    // SAFETY: `_Unwind_Find_FDE` only reads unwind tables and writes `bases`, a
    // valid exclusive pointer; `pc` is used as a number, never dereferenced.
    let fde = unsafe { _Unwind_Find_FDE(pc as *mut c_void, &mut bases) };
    (!fde.is_null()).then_some(bases.func as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch;
    use crate::unwind_info::leak::leak_aligned;

    /// Fake code bytes: an address range no loaded object has an FDE for.
    static FAKE_CODE: [u8; 64] = [0; 64];

    #[test]
    fn this_process_uses_libgcc() {
        assert_eq!(unwinder(), Unwinder::Libgcc);
    }

    #[test]
    fn unwinder_finds_the_registered_fde() {
        let pad = FAKE_CODE.as_ptr() as usize + 16;
        assert_eq!(function_start(pad), None, "nothing covers the fake code yet");
        let bytes = leak_aligned(&eh_frame::build(pad, 0x1234_5678).unwrap());
        assert_eq!(register(bytes, pad), Ok(Unwinder::Libgcc));
        // `ra - 1` while the start routine runs (ra = entry = pad + 1), and the last byte.
        assert_eq!(function_start(pad + arch::TRAMPOLINE_ENTRY_OFFSET - 1), Some(pad));
        assert_eq!(function_start(pad + arch::TRAMPOLINE_LEN - 1), Some(pad));
        assert_eq!(function_start(pad - 1), None);
        assert_eq!(function_start(pad + arch::TRAMPOLINE_LEN), None);
    }
}
