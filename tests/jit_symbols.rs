//! A program that defines gdb's JIT symbols itself (as LLVM ORC or wasmtime do)
//! still links with this crate, whose definitions are weak, and the crate then
//! registers its trampoline objects through the program's descriptor.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::EXPECT_HIJACK;

/// `struct jit_descriptor` of gdb's JIT interface.
#[repr(C)]
struct Descriptor {
    version: u32,
    action_flag: u32,
    relevant_entry: *mut u8,
    first_entry: *mut u8,
}

/// This program's own, strong definition: it wins over the crate's weak one.
#[unsafe(no_mangle)]
static mut __jit_debug_descriptor: Descriptor = Descriptor {
    version: 1,
    action_flag: 0,
    relevant_entry: std::ptr::null_mut(),
    first_entry: std::ptr::null_mut(),
};

static CALLS: AtomicUsize = AtomicUsize::new(0);

/// This program's own registration hook.
#[unsafe(no_mangle)]
#[inline(never)]
extern "C" fn __jit_debug_register_code() {
    CALLS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn the_programs_strong_definitions_win() {
    std::thread::spawn(|| hijack_tls::set("x", 1)).join().unwrap();
    if !EXPECT_HIJACK {
        println!("skipped: this build does not hijack threads");
        return;
    }
    assert!(CALLS.load(Ordering::SeqCst) >= 1, "the crate called the program's hook");
    // SAFETY: the registration finished (the thread was joined); nothing writes the
    // descriptor now.
    let descriptor = unsafe { (&raw const __jit_debug_descriptor).as_ref() }.expect("a static");
    assert_eq!(descriptor.action_flag, 1, "JIT_REGISTER");
    assert!(!descriptor.first_entry.is_null());
    assert_eq!(descriptor.first_entry, descriptor.relevant_entry);
}
