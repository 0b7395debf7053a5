//! The trampoline's unwind info under LLVM's libunwind instead of libgcc's
//! unwinder. Each check runs in a child with LLVM's `libunwind.so.1` preloaded, so
//! `__register_frame` and every `_Unwind_*` call resolve to it: the crate must
//! detect it (it takes one FDE, not a section), and its walks must pass the
//! trampoline. glibc's `pthread_exit`/`pthread_cancel` keep the libgcc_s they load
//! themselves, so they are not part of this. Skipped, saying so, where no LLVM
//! libunwind is installed (`.ci/run` installs Debian's `libunwind-14`).

mod common;

use std::ffi::c_void;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::{EXPECT_HIJACK, is_child, libgcc, run_child};

/// An LLVM libunwind for this target: `/usr/lib/llvm-*/lib/libunwind.so.1`.
fn llvm_libunwind() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("llvm-"))
        .map(|entry| entry.path().join("lib/libunwind.so.1"))
        .filter(|path| path.exists())
        .collect();
    found.sort();
    found.pop()
}

/// Runs `check` in a child with LLVM libunwind preloaded (this test's own body
/// when it is that child).
fn under_llvm_libunwind(case: &str, check: impl FnOnce()) {
    if is_child(case) {
        // A preload that ld.so could not load is only a warning on stderr: make
        // sure the walks below are libunwind's.
        let walker = object_of(unwind_backtrace_address());
        assert!(walker.contains("llvm"), "_Unwind_Backtrace comes from {walker}");
        check();
        return;
    }
    if cfg!(target_arch = "aarch64") {
        // The cross-test machine has no arm64 LLVM libunwind.
        println!("skipped: no LLVM libunwind for aarch64 here");
        return;
    }
    let Some(library) = llvm_libunwind() else {
        println!("skipped: no LLVM libunwind installed (Debian: libunwind-14)");
        return;
    };
    let library = library.to_string_lossy().into_owned();
    let (ok, stdout, stderr) = run_child(case, &[("LD_PRELOAD", &library)]);
    assert!(ok, "child under {library} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("checked"), "the child did not run its checks:\n{stdout}\n{stderr}");
}

/// What `libgcc::ips` returns: the ips, and why the walk stopped.
type Walk = (Vec<usize>, std::ffi::c_int);

/// The file of the object holding `address`.
fn object_of(address: usize) -> String {
    // SAFETY: `Dl_info` is plain data; `dladdr` only writes it.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: any address may be asked about; `info` is a valid out-parameter.
    let found = unsafe { libc::dladdr(address as *const c_void, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return String::from("<none>");
    }
    // SAFETY: `dladdr` set a NUL-terminated name that lives as long as the object.
    unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }.to_string_lossy().into_owned()
}

/// The address `_Unwind_Backtrace` resolves to in this process.
fn unwind_backtrace_address() -> usize {
    // SAFETY: a NUL-terminated name; RTLD_DEFAULT searches the global scope.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_Unwind_Backtrace".as_ptr()) as usize }
}

#[test]
fn the_crate_registers_with_llvm_libunwind() {
    under_llvm_libunwind("the_crate_registers_with_llvm_libunwind", || {
        std::thread::spawn(hijack_tls::id).join().unwrap();
        if EXPECT_HIJACK {
            let aware = hijack_tls::diagnostics::unwinders_aware();
            assert!(aware.iter().any(|u| u.contains("LLVM libunwind")), "{aware:?}");
        }
        println!("checked");
    });
}

#[test]
fn llvm_libunwind_steps_from_the_trampoline_to_the_original_return_address() {
    under_llvm_libunwind(
        "llvm_libunwind_steps_from_the_trampoline_to_the_original_return_address",
        || {
            libgcc::check_steps_through_the_trampoline();
            println!("checked");
        },
    );
}

#[test]
fn llvm_libunwind_walks_from_an_at_exit_handler_to_the_stack_end() {
    under_llvm_libunwind("llvm_libunwind_walks_from_an_at_exit_handler_to_the_stack_end", || {
        let seen: Arc<Mutex<Option<Walk>>> = Arc::default();
        let inner = seen.clone();
        std::thread::spawn(move || {
            hijack_tls::at_exit(move || *inner.lock().unwrap() = Some(libgcc::ips()));
        })
        .join()
        .unwrap();
        let (ips, reason) = seen.lock().unwrap().take().expect("the handler ran");
        assert_eq!(reason, libgcc::URC_END_OF_STACK, "{ips:x?}");
        let objects: Vec<String> = ips.iter().map(|&ip| object_of(ip)).collect();
        assert!(objects.last().is_some_and(|o| o.contains("libc")), "{objects:#?}");
        println!("checked");
    });
}

#[test]
fn a_panic_caught_on_a_hijacked_thread_under_llvm_libunwind() {
    under_llvm_libunwind("a_panic_caught_on_a_hijacked_thread_under_llvm_libunwind", || {
        std::thread::spawn(|| {
            hijack_tls::id();
            let caught = std::panic::catch_unwind(|| panic!("inside"));
            assert!(caught.is_err());
            hijack_tls::set("after", 2_u8);
            assert_eq!(hijack_tls::get::<_, u8>(&"after"), Some(2));
        })
        .join()
        .unwrap();
        // A panic that leaves the thread's closure: std catches it at the thread's
        // boundary, and the exit sequence still runs through the trampoline.
        let ran = Arc::new(Mutex::new(false));
        let inner = ran.clone();
        let joined = std::thread::spawn(move || {
            hijack_tls::at_exit(move || *inner.lock().unwrap() = true);
            panic!("escaping");
        })
        .join();
        assert!(joined.is_err());
        assert!(*ran.lock().unwrap(), "the exit sequence ran");
        println!("checked");
    });
}
