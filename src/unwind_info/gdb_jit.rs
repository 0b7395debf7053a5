//! gdb's JIT compilation interface (gdb manual, "JIT Compilation Interface"): a
//! global descriptor heading a list of in-memory object files, and a function gdb
//! puts a breakpoint on. Registering = link an entry, set the action, call it.
//!
//! The two symbols have fixed names, so the process may hold only one definition:
//! another JIT with its own (LLVM ORC, wasmtime, a second copy of this crate in
//! another shared object) makes linking fail, or interposes so that two locks
//! guard one list. gdb also needs the names in the binary's symbol table: a
//! stripped binary keeps working but gdb no longer sees the objects.

use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering, compiler_fence};
use std::sync::{Mutex, PoisonError};

/// `jit_actions_t`: nothing to do.
const JIT_NOACTION: u32 = 0;

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

/// The descriptor with interior mutability, laid out exactly as the C struct.
#[repr(transparent)]
struct SharedDescriptor(UnsafeCell<Descriptor>);

// SAFETY: this process touches the descriptor only while holding `LOCK`; gdb reads
// it only while the process is stopped.
unsafe impl Sync for SharedDescriptor {}

/// The descriptor gdb looks up by name.
// SAFETY: the symbol name is the one gdb documents, and this is the only definition
// in the crate (a clash with another JIT is named in the module doc).
#[unsafe(export_name = "__jit_debug_descriptor")]
static DESCRIPTOR: SharedDescriptor = SharedDescriptor(UnsafeCell::new(Descriptor {
    version: 1,
    action_flag: JIT_NOACTION,
    relevant_entry: ptr::null_mut(),
    first_entry: ptr::null_mut(),
}));

/// Serializes descriptor updates, as the interface requires.
static LOCK: Mutex<()> = Mutex::new(());

/// Objects announced so far.
static ANNOUNCED: AtomicUsize = AtomicUsize::new(0);

/// The function gdb breaks on to read `relevant_entry`. Never inlined, and it
/// passes the descriptor to an opaque barrier, so the compiler must assume the call
/// reads it: the stores before the call cannot be sunk past it.
// SAFETY: as for `DESCRIPTOR`: gdb's documented name, defined once in the crate.
#[unsafe(export_name = "__jit_debug_register_code")]
#[inline(never)]
extern "C" fn jit_debug_register_code() {
    core::hint::black_box(DESCRIPTOR.0.get());
}

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
    let descriptor = DESCRIPTOR.0.get();
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
    jit_debug_register_code();
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
            let descriptor = &*DESCRIPTOR.0.get();
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
