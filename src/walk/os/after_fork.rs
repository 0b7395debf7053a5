//! Whether this process is a fork child in which the loader's write lock may be
//! held forever.
//!
//! `dl_iterate_phdr` takes glibc's `_dl_load_write_lock` (elf/dl-iteratephdr.c);
//! glibc's `fork` re-initialises `_dl_load_lock` and `_dl_load_tls_lock` in the
//! child, but not that one (posix/fork.c, glibc 2.34-2.36). A child forked while
//! another thread was inside `dl_iterate_phdr` inherits the lock held by a thread
//! that does not exist there, so its first `dl_iterate_phdr` waits forever.
//!
//! A `pthread_atfork` pair registered at load time records, in the prepare
//! handler, whether the parent may have other threads (glibc's own test for "lock
//! state must be preserved": `__libc_single_threaded == 0`), and the child handler
//! turns that into a sticky flag the walk reads with one relaxed load. Children
//! made without the handlers (`_Fork`, a raw `clone`) are not seen: see NOTES.md
//! ("Fork children and the loader's write lock").

use core::sync::atomic::{AtomicBool, Ordering};

unsafe extern "C" {
    /// glibc's `char __libc_single_threaded` (public since glibc 2.32, in libc.so.6
    /// and libc.a): linked directly, as `dlsym` finds nothing in a statically
    /// linked program.
    static __libc_single_threaded: u8;
}

/// Set by the prepare handler: whether the process forking may have more than
/// the forking thread.
static PARENT_MAY_BE_THREADED: AtomicBool = AtomicBool::new(true);

/// Set in a fork child of a parent that may have had other threads, and in a
/// process where the handlers could not be registered: the loader's write lock
/// may be held by a thread that is gone. Never cleared (a grandchild inherits it).
static LOADER_LOCK_MAY_BE_HELD: AtomicBool = AtomicBool::new(false);

/// Whether `dl_iterate_phdr` may wait forever in this process (see the module
/// docs). One relaxed load: the flag only changes in a child's handler, before
/// any code of the child runs.
pub(super) fn loader_lock_may_be_held() -> bool {
    LOADER_LOCK_MAY_BE_HELD.load(Ordering::Relaxed)
}

/// Whether the process may have more than one thread right now.
fn may_be_threaded() -> bool {
    // SAFETY: glibc's one-byte `__libc_single_threaded` lives as long as libc.
    // glibc writes it when a thread is created: while this thread is the only one
    // nobody writes it, and once another exists it is already 0 and only ever
    // written 0 again.
    unsafe { core::ptr::read_volatile(&raw const __libc_single_threaded) == 0 }
}

/// `pthread_atfork` prepare handler: runs in the forking thread, before the fork.
extern "C" fn prepare() {
    PARENT_MAY_BE_THREADED.store(may_be_threaded(), Ordering::Relaxed);
}

/// `pthread_atfork` child handler: runs in the child's only thread, first.
extern "C" fn in_child() {
    if PARENT_MAY_BE_THREADED.load(Ordering::Relaxed) {
        LOADER_LOCK_MAY_BE_HELD.store(true, Ordering::Relaxed);
    }
}

/// Registers the handlers. If they cannot be registered, no fork child could be
/// told apart, so every process counts as one.
fn register() {
    // SAFETY: both handlers are `extern "C" fn()` that only touch atomics; they
    // stay mapped while registered (glibc unregisters an object's handlers when
    // it is unloaded, through the `__dso_handle` libc_nonshared's wrapper passes).
    let rc = unsafe { libc::pthread_atfork(Some(prepare), None, Some(in_child)) };
    if rc != 0 {
        LOADER_LOCK_MAY_BE_HELD.store(true, Ordering::Relaxed);
    }
}

/// Registers the handlers while the object loads, so a fork that happens before
/// the crate's first use is seen too.
#[used]
#[unsafe(link_section = ".init_array")]
static REGISTER_AT_LOAD: extern "C" fn() = {
    extern "C" fn register_at_load() {
        register();
    }
    register_at_load
};
