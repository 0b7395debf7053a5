//! Where a thread's first frames must be, from sources the CFI cannot touch: the
//! stack top glibc started the thread on (from its descriptor) or, on the main
//! thread, the entry stack pointer (`__libc_stack_end`). The walk checks that the
//! frames below its target end exactly there (NOTES.md, "Slot checks").

use std::sync::OnceLock;

use crate::arch;
use crate::walk::StackTops;

/// glibc's clone children (x86_64 `clone3.S`: `and $-16, %rsp`; aarch64
/// `clone.S`: `and x1, x1, -16`) align the stack top down to this before calling
/// `start_thread`.
const CLONE_CHILD_SP_ALIGN: u64 = 16;

/// The process-wide glibc facts behind the thread stack top.
#[derive(Clone, Copy, Debug)]
struct LayoutFacts {
    /// `sizeof (struct pthread)`, from libthread_db's `_thread_db_sizeof_pthread`.
    sizeof_pthread: u64,
    /// `__nptl_tls_static_size_for_stack ()`: the static TLS size rounded up to
    /// its alignment, from ld.so's `_dl_get_tls_static_info`.
    tls_static_size: u64,
    /// Byte offset of `start_routine` in `struct pthread`, from libthread_db's
    /// `_thread_db_pthread_start_routine`, if present and a pointer-sized field.
    start_routine_offset: Option<u64>,
}

/// The stack tops of the calling thread, whose stack's live part is `[sp, hi)`.
pub(crate) fn current(sp: u64, hi: u64) -> StackTops {
    let on_stack = |addr: u64| (sp..hi).contains(&addr);
    // SAFETY: pthread_self has no preconditions.
    let descriptor = unsafe { libc::pthread_self() } as u64;
    let thread = layout_facts()
        .filter(|_| on_stack(descriptor))
        .and_then(|facts| {
            arch::glibc_thread_stack_top(descriptor, facts.sizeof_pthread, facts.tls_static_size)
        })
        .map(|top| top & !(CLONE_CHILD_SP_ALIGN - 1));
    let main = stack_end().filter(|&end| on_stack(end)).and_then(arch::main_entry_sp);
    let start_routine = layout_facts()
        .filter(|_| on_stack(descriptor))
        .and_then(|facts| facts.start_routine_offset)
        .and_then(|offset| descriptor.checked_add(offset))
        .filter(|field| field.checked_add(8).is_some_and(|end| end <= hi))
        // SAFETY: the field lies inside the calling thread's live descriptor
        // (checked on its stack just above), which glibc wrote before starting
        // the thread and which lives as long as the thread.
        .map(|field| unsafe { core::ptr::with_exposed_provenance::<u64>(field as usize).read() });
    StackTops { thread, main, start_routine, main_function: main_function() }
}

/// The program's `main`, looked up once: a static link's table knows it, a
/// dynamic program's `main` is usually not exported, and a failed `dlsym` costs a
/// walk of every object's symbol table and leaves this thread a `dlerror`
/// buffer on the heap (112 bytes per thread when it was asked on every first use).
fn main_function() -> Option<u64> {
    static MAIN: OnceLock<Option<u64>> = OnceLock::new();
    *MAIN.get_or_init(|| symbol(c"main").map(|main| main as u64))
}

/// The layout facts, looked up once.
fn layout_facts() -> Option<LayoutFacts> {
    static FACTS: OnceLock<Option<LayoutFacts>> = OnceLock::new();
    *FACTS.get_or_init(|| {
        let sizeof_pthread = symbol(c"_thread_db_sizeof_pthread")?;
        let get_info = symbol(c"_dl_get_tls_static_info")?;
        // SAFETY: glibc defines `_thread_db_sizeof_pthread` as a `const uint32_t`
        // (nptl_db/db_info.c, `DB_SIZEOF`), in libc's read-only data.
        let sizeof_pthread = u64::from(unsafe { sizeof_pthread.cast::<u32>().read() });
        // SAFETY: ld.so's `_dl_get_tls_static_info (size_t *sizep, size_t
        // *alignp)` (elf/dl-tls.c) stores `dl_tls_static_size` and
        // `dl_tls_static_align` through its two pointers, which are valid locals.
        let (size, align) = unsafe {
            let get_info: unsafe extern "C" fn(*mut usize, *mut usize) =
                core::mem::transmute(get_info);
            let (mut size, mut align) = (0usize, 0usize);
            get_info(&mut size, &mut align);
            (size as u64, align as u64)
        };
        let tls_static_size = size.checked_next_multiple_of(align.max(1))?;
        let start_routine_offset = symbol(c"_thread_db_pthread_start_routine")
            // SAFETY: glibc defines it as `const uint32_t [3]` = { size in bits,
            // count, offset } (nptl_db/db_info.c `DESC`, thread_dbP.h
            // `DB_DEFINE_DESC`), in libc's read-only data.
            .map(|desc| unsafe { desc.cast::<[u32; 3]>().read() })
            .filter(|&[bits, count, _]| bits == 64 && count == 1)
            .map(|[_, _, offset]| u64::from(offset))
            .filter(|offset| offset.is_multiple_of(8));
        Some(LayoutFacts { sizeof_pthread, tls_static_size, start_routine_offset })
    })
}

unsafe extern "C" {
    /// ld.so's (libc.a's `dl-support.o` in a static link) `void *__libc_stack_end`
    /// (public, `GLIBC_2.2.5`): the main thread's stack pointer at entry, set by
    /// `_dl_sysdep_start` or, statically linked, by `__libc_start_main` from
    /// `_start`'s argument. Linked directly: `dlsym` knows nothing in a static
    /// program.
    static __libc_stack_end: *mut core::ffi::c_void;
}

/// `__libc_stack_end`'s value, if set.
fn stack_end() -> Option<u64> {
    // SAFETY: set before any user code runs and never written again.
    let end = unsafe { __libc_stack_end } as u64;
    (end != 0).then_some(end)
}

/// The address of the symbol `name` (global scope, or the static link's table).
fn symbol(name: &core::ffi::CStr) -> Option<*const core::ffi::c_void> {
    crate::libc_symbol::find(name).map(<*mut core::ffi::c_void>::cast_const)
}
