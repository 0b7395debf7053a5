//! gdb's JIT compilation interface (gdb manual, "JIT Compilation Interface"): a
//! global descriptor heading a list of in-memory object files, and a function gdb
//! puts a breakpoint on. Registering = link an entry, set the action, call it.
//!
//! Both symbols are defined weak in `arch/*/jit_symbols.rs`, so a program that also
//! links another JIT with strong definitions (LLVM ORC, wasmtime) still links and
//! this crate then uses that one descriptor. Our lock cannot serialize the other
//! JIT's updates: the two registering at the very same moment could interleave
//! (documented in NOTES.md). gdb finds the names in the symbol table: a stripped
//! binary keeps working but gdb no longer sees the objects.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering, compiler_fence};
use std::sync::{Mutex, PoisonError};

/// `jit_actions_t`: `relevant_entry` was just linked in.
const JIT_REGISTER: u32 = 1;

/// `struct jit_code_entry`: one in-memory object file in gdb's list.
#[repr(C)]
struct CodeEntry {
    next_entry: *mut CodeEntry,
    prev_entry: *mut CodeEntry,
    symfile_addr: *const u8,
    symfile_size: u64,
}

/// `struct jit_descriptor`, the list head gdb reads.
#[repr(C)]
struct Descriptor {
    version: u32,
    action_flag: u32,
    relevant_entry: *mut CodeEntry,
    first_entry: *mut CodeEntry,
}

unsafe extern "C" {
    /// The descriptor gdb looks up by name (defined weak in `arch/*/jit_symbols.rs`,
    /// or by another JIT in the program).
    #[link_name = "__jit_debug_descriptor"]
    static mut JIT_DESCRIPTOR: Descriptor;

    /// The function gdb breaks on to read `relevant_entry`: an empty function in
    /// assembly, opaque to the compiler, so stores to the descriptor before the call
    /// cannot be moved past it.
    #[link_name = "__jit_debug_register_code"]
    fn jit_debug_register_code();
}

/// Serializes descriptor updates, as the interface requires.
static LOCK: Mutex<()> = Mutex::new(());

/// Objects announced so far.
static ANNOUNCED: AtomicUsize = AtomicUsize::new(0);

/// Links the ELF object `symfile` into gdb's list and tells an attached gdb. The
/// entry is never unlinked: the object describes code that may run at any time.
pub(super) fn announce(symfile: &'static [u8]) {
    let entry = Box::into_raw(Box::new(CodeEntry {
        next_entry: ptr::null_mut(),
        prev_entry: ptr::null_mut(),
        symfile_addr: symfile.as_ptr(),
        symfile_size: symfile.len() as u64,
    }));
    let _guard = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let descriptor = &raw mut JIT_DESCRIPTOR;
    // SAFETY: `LOCK` is held, so nothing else in this process touches the
    // descriptor or the entries; `entry` is a fresh, leaked allocation and every
    // linked entry is one too, so all pointers are valid for writes.
    unsafe {
        let first = (*descriptor).first_entry;
        (*entry).next_entry = first;
        if !first.is_null() {
            (*first).prev_entry = entry;
        }
        (*descriptor).first_entry = entry;
        (*descriptor).relevant_entry = entry;
        (*descriptor).action_flag = JIT_REGISTER;
    }
    compiler_fence(Ordering::SeqCst);
    // SAFETY: an empty function with the C ABI; `LOCK` is still held.
    unsafe { jit_debug_register_code() };
    ANNOUNCED.fetch_add(1, Ordering::Relaxed);
}

/// Number of objects announced to gdb so far.
pub(super) fn announced() -> usize {
    ANNOUNCED.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announce_links_the_entry_first() {
        static OBJECT: [u8; 4] = *b"\x7fELF";
        announce(&OBJECT);
        let _guard = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        // SAFETY: `LOCK` is held; every entry in the list is a leaked allocation.
        unsafe {
            let descriptor = (&raw const JIT_DESCRIPTOR).as_ref().expect("a static");
            assert_eq!(descriptor.version, 1);
            assert_eq!(descriptor.action_flag, JIT_REGISTER);
            let mut entry = descriptor.first_entry;
            assert!((*entry).prev_entry.is_null());
            let mut found = false;
            while !entry.is_null() {
                found |= (*entry).symfile_addr == OBJECT.as_ptr() && (*entry).symfile_size == 4;
                let next = (*entry).next_entry;
                assert!(next.is_null() || (*next).prev_entry == entry, "doubly linked");
                entry = next;
            }
            assert!(found);
        }
        assert!(announced() >= 1);
    }
}
