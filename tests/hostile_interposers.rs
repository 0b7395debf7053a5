//! Interposers between the program and libc's `pthread_create`: an `LD_PRELOAD`
//! library that wraps it (forwarding only, or with a start routine of its own, as
//! profilers, tracers and the sanitizers' interceptors do), and a non-PIE
//! executable whose non-PIC code takes `&pthread_create`, which makes its PLT stub
//! the function's canonical address in every object. Neither may make the walk
//! mistake another object for libc: threads and the main thread must be hijacked,
//! the handlers run once, before the TLS destructors.
//!
//! The preload libraries and the C host (`tests/fixtures/interposers/`) are built
//! with gcc (`aarch64-linux-gnu-gcc` for aarch64; `HIJACK_TLS_TEST_CC` overrides)
//! into `CARGO_TARGET_TMPDIR`; the host loads `tests/fixtures/plugin`'s cdylib.
//! Under qemu the preload is passed with `QEMU_SET_ENV`, so only the guest gets it.

mod common;
#[path = "fixtures/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::{EXPECT_HIJACK, Log, is_child, run_child_timeout, tls_probe};

/// The variable that tells the child which preload library it runs under.
const PRELOAD_VAR: &str = "HIJACK_TLS_TEST_PRELOAD";

/// The C compiler for the target.
fn compiler() -> String {
    std::env::var("HIJACK_TLS_TEST_CC").unwrap_or_else(|_| {
        if cfg!(target_arch = "aarch64") { "aarch64-linux-gnu-gcc" } else { "gcc" }.to_owned()
    })
}

/// Compiles `source` (under `tests/fixtures/interposers/`) with `flags` into `name`.
fn build(source: &str, name: &str, flags: &[&str]) -> PathBuf {
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/interposers").join(source);
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let output = Command::new(compiler())
        .args(["-O1", "-pthread", "-fasynchronous-unwind-tables", "-Wall", "-o"])
        .arg(&out)
        .arg(&source)
        .args(flags)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (set HIJACK_TLS_TEST_CC): {e}", compiler()));
    assert!(
        output.status.success(),
        "building {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// The preload library that only forwards `pthread_create`.
fn forwarding_preload() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build("preload.c", "interposer-forward.so", &["-shared", "-fPIC"]))
}

/// The preload library that also runs its own start routine.
fn wrapping_preload() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        build("preload.c", "interposer-wrap.so", &["-shared", "-fPIC", "-DWRAP_START"])
    })
}

/// The C host as a position-independent executable (the toolchain's default).
fn pie_host() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build("host.c", "interposer-host-pie", &["-fPIE", "-pie"]))
}

/// The C host as a non-PIE executable of non-PIC code.
fn non_pie_host() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build("host.c", "interposer-host-nopie", &["-fno-pic", "-no-pie"]))
}

/// The environment that preloads `library` into the program run (and, under
/// qemu, into the guest only).
fn preload_env(library: &Path) -> (&'static str, String) {
    let path = library.display().to_string();
    match support::emulator() {
        Some(_) => ("QEMU_SET_ENV", format!("LD_PRELOAD={path}")),
        None => ("LD_PRELOAD", path),
    }
}

/// Runs the C host (through the emulator if there is one) with `env`; returns its
/// stdout lines after checking it succeeded within a minute.
fn run_host(host: &Path, env: &[(&str, String)]) -> Vec<String> {
    let mut command = match support::emulator() {
        Some(words) => {
            let mut command = Command::new(&words[0]);
            command.args(&words[1..]).arg(host);
            command
        }
        None => Command::new(host),
    };
    command.arg(&support::fixture().cdylib);
    command.envs(env.iter().map(|(name, value)| (name, value)));
    let output = command.output().expect("run the host");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "host failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}

/// Checks a status text: hijacked where the build hijacks, a fallback elsewhere.
fn assert_expected_status(who: &str, status: &str) {
    let expected = if EXPECT_HIJACK { "hijacked" } else { "fallback" };
    assert!(status.starts_with(expected), "{who}: {status}");
}

/// Checks the host's report: the line about where `pthread_create` resolves, then
/// for the thread and the main thread the expected status, and both threads'
/// handlers done by the time their first TLS destructor ran (where hijacked).
fn assert_host_report(lines: &[String], pthread_create_in: &str) {
    let report = lines.join("\n");
    let line = |prefix: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in:\n{report}"))
    };
    let resolved = line("pthread_create (global scope) is in: ");
    assert!(resolved.contains(pthread_create_in), "precondition, pthread_create in {resolved}");
    assert_expected_status("thread", line("thread status: "));
    assert_expected_status("main", line("main status: "));
    assert_eq!(line("thread: "), "2 handlers ran", "{report}");
    let at_destructors: Vec<_> =
        lines.iter().filter_map(|l| l.strip_prefix("tls destructor: ")).collect();
    assert_eq!(at_destructors.len(), 2, "{report}");
    if EXPECT_HIJACK {
        assert!(at_destructors.iter().all(|l| *l == "2 handlers ran"), "{report}");
    }
}

/// The object holding the global scope's `pthread_create` (the interposer's).
fn global_pthread_create_object() -> String {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name.
    let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"pthread_create".as_ptr()) };
    support::object_of(address as usize).unwrap_or_default()
}

/// Threads the preloaded interposer has created so far.
fn interposer_creates() -> u64 {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name.
    let counter = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"interposer_creates".as_ptr()) };
    assert!(!counter.is_null(), "the interposer is not loaded");
    // SAFETY: the preload's `volatile unsigned long interposer_creates`.
    unsafe { core::ptr::read_volatile(counter.cast::<u64>()) }
}

/// On this thread: arms the TLS probe, then uses the crate for the first time with
/// a handler that logs whether the probe is alive; returns the status text.
fn first_use(log: &Log) -> String {
    tls_probe::arm(log);
    tls_probe::log_alive_at_exit(log);
    hijack_tls::status().to_string()
}

/// The child: a std thread and a raw pthread, created through the interposer.
fn child_threads() {
    let preload = std::env::var(PRELOAD_VAR).unwrap();
    let object = global_pthread_create_object();
    assert!(object.ends_with(&preload), "precondition: pthread_create is in {object:?}");
    let before = interposer_creates();
    for kind in ["std", "raw"] {
        let log = Log::default();
        let status = match kind {
            "std" => {
                let log = log.clone();
                common::on_thread(move || first_use(&log))
            }
            _ => {
                let log = log.clone();
                let status = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
                let out = status.clone();
                let thread = support::spawn_raw(move || {
                    *out.lock().unwrap() = first_use(&log);
                    0
                });
                support::join_raw(thread);
                status.lock().unwrap().clone()
            }
        };
        println!("{kind} thread: {status}");
        assert_expected_status(kind, &status);
        let events = log.events();
        if EXPECT_HIJACK {
            let expected = ["handler: thread_local alive = true", "thread_local destructor"];
            assert_eq!(events, expected, "{kind} thread");
        } else {
            // The fallback runs the handler from a TLS destructor, in some order
            // with the probe's.
            assert_eq!(events.len(), 2, "{kind} thread: {events:?}");
        }
    }
    assert!(interposer_creates() >= before + 2, "the threads did not go through the interposer");
}

/// Runs [`child_threads`] in a child of this test binary under `preload`.
fn run_preloaded_child(case: &str, preload: &Path) {
    let (name, value) = preload_env(preload);
    let file = preload.file_name().unwrap().to_str().unwrap();
    let env = [(name, value.as_str()), (PRELOAD_VAR, file)];
    let (code, out, err) = run_child_timeout(case, &env, Duration::from_secs(120));
    assert_eq!(code, Some(0), "child {case}:\n{out}\n{err}");
}

#[test]
fn forwarding_preload_threads_are_hijacked() {
    if is_child("forwarding_preload_threads_are_hijacked") {
        return child_threads();
    }
    run_preloaded_child("forwarding_preload_threads_are_hijacked", forwarding_preload());
}

#[test]
fn wrapping_preload_threads_are_hijacked() {
    if is_child("wrapping_preload_threads_are_hijacked") {
        return child_threads();
    }
    run_preloaded_child("wrapping_preload_threads_are_hijacked", wrapping_preload());
}

#[test]
fn forwarding_preload_c_host_main_thread_is_hijacked() {
    let preload = forwarding_preload();
    let lines = run_host(pie_host(), &[preload_env(preload)]);
    assert_host_report(&lines, "interposer-forward.so");
}

#[test]
fn wrapping_preload_c_host_main_thread_is_hijacked() {
    let preload = wrapping_preload();
    let lines = run_host(pie_host(), &[preload_env(preload)]);
    assert_host_report(&lines, "interposer-wrap.so");
}

#[test]
fn non_pie_canonical_pthread_create_is_not_libc() {
    let lines = run_host(non_pie_host(), &[]);
    assert_host_report(&lines, "executable");
}

/// The control: the same PIE host with nothing in between.
#[test]
fn plain_c_host_is_hijacked() {
    let lines = run_host(pie_host(), &[]);
    assert_host_report(&lines, "libc.so.6");
}

/// The C host built with gcc's `-fsanitize=<name>`: the runtime (libasan,
/// libtsan) is loaded first and intercepts `pthread_create` with a start routine
/// of its own. x86_64 only: the cross toolchain's sanitizer runtimes do not run
/// under qemu-user.
#[cfg(target_arch = "x86_64")]
fn sanitized_host(name: &str) -> Vec<String> {
    let flag = format!("-fsanitize={name}");
    let host = build("host.c", &format!("interposer-host-{name}"), &[&flag, "-g"]);
    run_host(&host, &[])
}

#[cfg(target_arch = "x86_64")]
#[test]
fn gcc_address_sanitizer_host_is_hijacked() {
    assert_host_report(&sanitized_host("address"), "libasan.so");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn gcc_thread_sanitizer_host_is_hijacked() {
    assert_host_report(&sanitized_host("thread"), "libtsan.so");
}
