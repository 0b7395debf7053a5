//! Reliability: code that goes away or is there twice. hijack-tls inside a
//! `cdylib` (the fixture in `tests/fixtures/plugin`) that is `dlclose`d under a
//! hijacked thread, and two copies of the crate in one process (this test binary
//! and the cdylib, or two cdylibs): each works or falls back with a reason, and
//! every handler runs exactly once. Each case runs in a child process, so a crash
//! fails one test with its signal instead of the whole binary.

mod common;
#[path = "fixtures/support.rs"]
mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};

use common::{EXPECT_HIJACK, is_child, run_child};
use hijack_tls::Status;
use support::{Library, fixture, join_raw, object_of, spawn_raw};

/// The fixture's `Counters` (same `repr(C)` layout).
#[repr(C)]
struct Counters {
    handlers: AtomicUsize,
    drops: AtomicUsize,
}

impl Counters {
    const fn new() -> Self {
        Self { handlers: AtomicUsize::new(0), drops: AtomicUsize::new(0) }
    }

    fn get(&self) -> (usize, usize) {
        (self.handlers.load(Ordering::SeqCst), self.drops.load(Ordering::SeqCst))
    }
}

/// The fixture's C API, resolved from one loaded copy.
#[derive(Clone, Copy)]
struct Plugin {
    use_: unsafe extern "C" fn(*const Counters) -> u32,
    status_text: unsafe extern "C" fn(*mut u8, usize) -> usize,
    trampoline: extern "C" fn() -> usize,
}

impl Plugin {
    fn load(library: &Library) -> Self {
        // SAFETY: the fixture defines these symbols with exactly these signatures.
        unsafe {
            Self {
                use_: library.function("fixture_use"),
                status_text: library.function("fixture_status_text"),
                trampoline: library.function("fixture_trampoline"),
            }
        }
    }

    /// First use on this thread: 2 values and 2 handlers counting into `counters`;
    /// returns this copy's status text.
    fn use_on_this_thread(self, counters: &'static Counters) -> String {
        // SAFETY: `counters` is a static, alive for the rest of the process.
        unsafe { (self.use_)(counters) };
        self.status()
    }

    fn status(self) -> String {
        let mut buf = [0_u8; 512];
        // SAFETY: a writable buffer of the given length.
        let n = unsafe { (self.status_text)(buf.as_mut_ptr(), buf.len()) };
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

/// Whether the fixture was built with the hijack (it mirrors this build).
const FIXTURE_HIJACKS: bool = EXPECT_HIJACK;

fn run_case(case: &str) -> String {
    let (ok, stdout, stderr) = run_child(case, &[]);
    assert!(ok, "child {case} failed (crash or assertion):\n{stdout}\n{stderr}");
    for line in stdout.lines().filter(|l| l.contains("observed:")) {
        println!("{line}");
    }
    stdout
}

static DLCLOSE: Counters = Counters::new();

#[test]
fn child_dlclose_under_a_hijacked_thread() {
    if !is_child("child_dlclose_under_a_hijacked_thread") {
        return;
    }
    let path = fixture().cdylib.clone();
    let library = Library::open(&path, libc::RTLD_NOW | libc::RTLD_LOCAL);
    let copy = Plugin::load(&library);
    let (report, reported) = mpsc::channel();
    let release = Arc::new(Barrier::new(2));
    let thread_release = release.clone();
    let thread = spawn_raw(move || {
        report.send((copy.use_on_this_thread(&DLCLOSE), (copy.trampoline)())).unwrap();
        // The library is dlclosed while this thread waits; then it returns, into
        // the library's trampoline if it hijacked the thread.
        thread_release.wait();
        0
    });
    let (status, trampoline) = reported.recv().unwrap();
    assert_eq!(status.contains("hijacked"), FIXTURE_HIJACKS, "{status}");
    assert_eq!(library.close(), 0, "dlclose");
    let mapped = trampoline == 0 || object_of(trampoline).is_some();
    println!("observed: after dlclose, trampoline still mapped = {mapped}");
    release.wait();
    join_raw(thread);
    assert_eq!(DLCLOSE.get(), (2, 2), "every handler and drop once");
    // Load and close it once more: an unpinned library is unmapped now.
    Library::open(&path, libc::RTLD_NOW | libc::RTLD_LOCAL).close();
    println!(
        "observed: after the thread exited, library still loaded = {}",
        Library::is_loaded(&path)
    );
    println!("dlclose case ok");
}

#[test]
fn dlclose_under_a_hijacked_thread_never_unmaps_its_trampoline() {
    let stdout = run_case("child_dlclose_under_a_hijacked_thread");
    assert!(stdout.contains("dlclose case ok"), "{stdout}");
    assert!(stdout.contains("trampoline still mapped = true"), "{stdout}");
}

/// Records this test binary's own copy on this thread: 1 value, 1 handler.
static OURS: Counters = Counters::new();
static THEIRS: Counters = Counters::new();

struct CountedOurs;

impl Drop for CountedOurs {
    fn drop(&mut self) {
        OURS.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn use_our_copy() -> Status {
    hijack_tls::set("ours", CountedOurs);
    hijack_tls::at_exit(|| {
        OURS.handlers.fetch_add(1, Ordering::SeqCst);
    });
    hijack_tls::status()
}

/// Uses two copies on one thread (`first` then `second`), returning their status
/// texts; each entry of `uses` runs one copy's first use.
fn two_copies_on_one_thread(
    first: impl FnOnce() -> String + Send + 'static,
    second: impl FnOnce() -> String + Send + 'static,
) -> (String, String) {
    let result = Arc::new(Mutex::new(None));
    let inner = result.clone();
    join_raw(spawn_raw(move || {
        let a = first();
        let b = second();
        *inner.lock().unwrap() = Some((a, b));
        0
    }));
    result.lock().unwrap().take().unwrap()
}

/// The second copy on a thread must fall back (its walk cannot see through the
/// first copy's trampoline), with a reason, never hijack on top of it.
fn check_pair(first: &str, second: &str) {
    println!("observed: first copy: {first}; second copy: {second}");
    if FIXTURE_HIJACKS {
        assert!(first.starts_with("hijacked"), "{first}");
        assert!(second.starts_with("fallback") && second.contains(':'), "{second}");
    }
}

#[test]
fn child_this_binary_and_a_cdylib() {
    if !is_child("child_this_binary_and_a_cdylib") {
        return;
    }
    let library = Library::open(&fixture().cdylib, libc::RTLD_NOW | libc::RTLD_LOCAL);
    let copy = Plugin::load(&library);
    // Ours first, then the cdylib's; then the other order.
    let (first, second) = two_copies_on_one_thread(
        || use_our_copy().to_string(),
        move || copy.use_on_this_thread(&THEIRS),
    );
    check_pair(&first, &second);
    let (first, second) = two_copies_on_one_thread(
        move || copy.use_on_this_thread(&THEIRS),
        || use_our_copy().to_string(),
    );
    check_pair(&first, &second);
    // On separate threads both copies hijack.
    let (a, b) = (
        common::on_thread(|| use_our_copy().to_string()),
        common::on_thread(move || copy.use_on_this_thread(&THEIRS)),
    );
    assert_eq!(
        a.starts_with("hijacked") && b.starts_with("hijacked"),
        FIXTURE_HIJACKS,
        "{a} / {b}"
    );
    assert_eq!(OURS.get(), (3, 3));
    assert_eq!(THEIRS.get(), (6, 6));
    println!("two copies ok");
}

#[test]
fn this_binary_and_a_cdylib_each_run_once_and_the_second_falls_back() {
    let stdout = run_case("child_this_binary_and_a_cdylib");
    assert!(stdout.contains("two copies ok"), "{stdout}");
}

static SECOND: Counters = Counters::new();

/// A second file with the fixture's contents: a distinct object to the loader.
fn second_cdylib() -> PathBuf {
    let source = &fixture().cdylib;
    let copy = source.with_file_name("libhijack_tls_fixture_second.so");
    std::fs::copy(source, &copy).expect("copy the cdylib");
    copy
}

/// `struct jit_descriptor` / `struct jit_code_entry` from gdb's JIT interface.
#[repr(C)]
struct JitDescriptor {
    version: u32,
    action_flag: u32,
    relevant_entry: *const JitEntry,
    first_entry: *const JitEntry,
}

#[repr(C)]
struct JitEntry {
    next_entry: *const JitEntry,
    prev_entry: *const JitEntry,
    symfile_addr: *const u8,
    symfile_size: u64,
}

/// The number of entries in `descriptor`'s list, checking it is well linked.
///
/// # Safety
/// `descriptor` must be a live JIT descriptor not being changed right now.
unsafe fn jit_entries(descriptor: *const JitDescriptor) -> usize {
    let mut count = 0;
    let mut previous: *const JitEntry = std::ptr::null();
    // SAFETY: the caller guarantees a live descriptor; entries are never freed.
    let mut entry = unsafe { (*descriptor).first_entry };
    while !entry.is_null() {
        // SAFETY: as above.
        let e = unsafe { &*entry };
        assert_eq!(e.prev_entry, previous, "doubly linked");
        assert!(!e.symfile_addr.is_null() && e.symfile_size > 0);
        count += 1;
        previous = entry;
        entry = e.next_entry;
    }
    count
}

#[test]
fn child_two_cdylibs() {
    if !is_child("child_two_cdylibs") {
        return;
    }
    let mode = std::env::var("RELIABILITY_DLOPEN_MODE").unwrap();
    let flags =
        libc::RTLD_NOW | if mode == "global" { libc::RTLD_GLOBAL } else { libc::RTLD_LOCAL };
    let first = Library::open(&fixture().cdylib, flags);
    let second = Library::open(&second_cdylib(), flags);
    let (a, b) = (Plugin::load(&first), Plugin::load(&second));
    // Each copy alone on a thread: both hijack (and announce their trampolines).
    let alone_a = common::on_thread(move || a.use_on_this_thread(&THEIRS));
    let alone_b = common::on_thread(move || b.use_on_this_thread(&SECOND));
    assert_eq!(alone_a.starts_with("hijacked") && alone_b.starts_with("hijacked"), FIXTURE_HIJACKS);
    // Both on one thread, both orders.
    let (x, y) = two_copies_on_one_thread(
        move || a.use_on_this_thread(&THEIRS),
        move || b.use_on_this_thread(&SECOND),
    );
    check_pair(&x, &y);
    let (x, y) = two_copies_on_one_thread(
        move || b.use_on_this_thread(&SECOND),
        move || a.use_on_this_thread(&THEIRS),
    );
    check_pair(&x, &y);
    assert_eq!(THEIRS.get(), (6, 6));
    assert_eq!(SECOND.get(), (6, 6));
    // The GDB JIT descriptors: does each copy link into its own, or did one
    // interpose on the other (the symbols are exported by both)?
    let descriptors =
        [first.symbol("__jit_debug_descriptor"), second.symbol("__jit_debug_descriptor")];
    if descriptors.iter().any(|d| d.is_null()) {
        // Built without the hijack: no GDB JIT interface.
        println!("two cdylibs ok");
        return;
    }
    // SAFETY: both are live descriptors; no thread announces anything now.
    let counts = descriptors.map(|d| unsafe { jit_entries(d.cast()) });
    println!(
        "observed: RTLD_{} : JIT descriptor entries first copy {}, second copy {} (distinct symbols: {})",
        mode.to_uppercase(),
        counts[0],
        counts[1],
        descriptors[0] != descriptors[1]
    );
    println!("two cdylibs ok");
}

#[test]
fn two_cdylibs_each_run_once_and_the_second_on_a_thread_falls_back() {
    for mode in ["local", "global"] {
        let (ok, stdout, stderr) =
            run_child("child_two_cdylibs", &[("RELIABILITY_DLOPEN_MODE", mode)]);
        assert!(ok && stdout.contains("two cdylibs ok"), "{mode}:\n{stdout}\n{stderr}");
        for line in stdout.lines().filter(|l| l.contains("observed:")) {
            println!("{line}");
        }
    }
}

static EXITING: Counters = Counters::new();
static HANDLERS_WHEN_FRAME_DROPPED: AtomicUsize = AtomicUsize::new(usize::MAX);

/// A frame local: records how many handlers had run when the unwind dropped it.
struct FrameLocal;

impl Drop for FrameLocal {
    fn drop(&mut self) {
        HANDLERS_WHEN_FRAME_DROPPED
            .store(EXITING.handlers.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

#[test]
fn child_pthread_exit_with_the_cdylib_copy() {
    if !is_child("child_pthread_exit_with_the_cdylib_copy") {
        return;
    }
    let library = Library::open(&fixture().cdylib, libc::RTLD_NOW | libc::RTLD_LOCAL);
    let copy = Plugin::load(&library);
    join_raw(spawn_raw(move || {
        let _local = FrameLocal;
        let status = copy.use_on_this_thread(&EXITING);
        assert_eq!(status.starts_with("hijacked"), FIXTURE_HIJACKS, "{status}");
        // SAFETY: ends this raw pthread; the frames unwound are Rust or "C-unwind".
        unsafe { common::unwinding::pthread_exit(0) }
    }));
    assert_eq!(EXITING.get(), (2, 2), "exactly once through pthread_exit");
    // The copy's cleanup buffer lives in the cdylib's dynamic TLS (heap), not in
    // static TLS above the stack, so glibc may run it before the frames unwind.
    let seen = HANDLERS_WHEN_FRAME_DROPPED.load(Ordering::SeqCst);
    println!("observed: handlers already run when the start routine's local dropped: {seen} of 2");
    println!("pthread_exit case ok");
}

#[test]
fn pthread_exit_on_a_thread_hijacked_by_a_cdylib_runs_once() {
    let stdout = run_case("child_pthread_exit_with_the_cdylib_copy");
    assert!(stdout.contains("pthread_exit case ok"), "{stdout}");
}
