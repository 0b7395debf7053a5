//! Programs linked statically against glibc (`-C target-feature=+crt-static`), as
//! static-pie (Rust's default for it) and as static non-PIE (`-C
//! relocation-model=static`): the executable is libc there, `dladdr` and
//! `dlsym(RTLD_DEFAULT, ..)` know no symbol, and still the main thread, a std
//! thread and raw pthreads must be hijacked, their handlers run once while a
//! `thread_local!` is alive, `pthread_exit` and `pthread_cancel` included; a first
//! use in a TLS destructor or an ELF constructor must still be refused.
//!
//! The program is `tests/fixtures/static`, built once per variant into
//! `CARGO_TARGET_TMPDIR`; under qemu for aarch64 (needs the cross `libc.a`).

mod common;
#[path = "fixtures/support.rs"]
mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::EXPECT_HIJACK;

/// How long one case may run before it counts as hung.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// The two static layouts.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// `+crt-static`: a static-pie (relocates itself, `_dl_relocate_static_pie`).
    Pie,
    /// `+crt-static` with `-C relocation-model=static`: a fixed-address executable.
    NoPie,
    /// A static-pie linked by GNU ld (`-fuse-ld=bfd`), which emits no `PT_PHDR`:
    /// the load bias must come from the ELF header.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    PieGnuLd,
}

impl Layout {
    /// The flags added to the build's `RUSTFLAGS`.
    fn rustflags(self) -> &'static str {
        match self {
            Layout::Pie => "-C target-feature=+crt-static",
            Layout::NoPie => "-C target-feature=+crt-static -C relocation-model=static",
            Layout::PieGnuLd => "-C target-feature=+crt-static -C link-arg=-fuse-ld=bfd",
        }
    }

    /// The build's directory name under `CARGO_TARGET_TMPDIR`.
    fn name(self) -> &'static str {
        match self {
            Layout::Pie => "static-pie",
            Layout::NoPie => "static-nopie",
            Layout::PieGnuLd => "static-pie-bfd",
        }
    }
}

/// The static `libc.a` the target's linker uses, if it is installed (x86_64:
/// Debian's `libc6-dev`; aarch64: `libc6-dev-arm64-cross`).
fn static_libc() -> Option<&'static Path> {
    let path = if cfg!(target_arch = "aarch64") {
        "/usr/aarch64-linux-gnu/lib/libc.a"
    } else {
        "/usr/lib/x86_64-linux-gnu/libc.a"
    };
    Path::new(path).exists().then_some(Path::new(path))
}

/// Builds the fixture for `layout` once per test run; `None` (with the reason
/// printed) where no static glibc is installed.
fn program(layout: Layout) -> Option<PathBuf> {
    static BUILT: [OnceLock<Option<PathBuf>>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    BUILT[layout as usize].get_or_init(|| build(layout)).clone()
}

/// The build behind [`program`].
fn build(layout: Layout) -> Option<PathBuf> {
    if static_libc().is_none() {
        println!("skipped: no static glibc (libc.a) for this target is installed");
        return None;
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/static/Cargo.toml");
    let flavour = if cfg!(feature = "hijack") { "hijack" } else { "fallback" };
    let target =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{flavour}", layout.name()));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "--quiet", "--manifest-path"]).arg(&manifest);
    command.arg("--target-dir").arg(&target);
    if !cfg!(feature = "hijack") {
        command.arg("--no-default-features");
    }
    let cross = support::emulator().is_some().then_some("aarch64-unknown-linux-gnu");
    if let Some(triple) = cross {
        command.arg("--target").arg(triple);
    }
    let outer = std::env::var("RUSTFLAGS").unwrap_or_default();
    command.env("RUSTFLAGS", format!("{outer} {}", layout.rustflags()));
    for name in ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR", "CARGO_MAKEFLAGS"] {
        command.env_remove(name);
    }
    let began = Instant::now();
    let output = command.output().expect("run cargo to build the static fixture");
    assert!(
        output.status.success(),
        "building {} ({layout:?}) failed:\n{}",
        manifest.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("built the {layout:?} fixture in {:?}", began.elapsed());
    let dir = match cross {
        Some(triple) => target.join(triple).join("debug"),
        None => target.join("debug"),
    };
    Some(dir.join("hijack-tls-static"))
}

/// Runs `program case` (through the emulator under qemu), killed after
/// [`CASE_TIMEOUT`]; returns its stdout lines. Panics unless it exits with 0.
fn run(program: &Path, case: &str) -> Vec<String> {
    run_with(program, case, &[])
}

/// [`run`] with `env` added to the program's environment.
fn run_with(program: &Path, case: &str, env: &[(&str, &str)]) -> Vec<String> {
    let mut command = match support::emulator() {
        Some(words) => {
            let mut command = Command::new(&words[0]);
            command.args(&words[1..]).arg(program);
            command
        }
        None => Command::new(program),
    };
    command.arg(case).stdout(Stdio::piped()).stderr(Stdio::piped());
    command.envs(env.iter().copied());
    let mut child = command.spawn().expect("start the static program");
    let deadline = Instant::now() + CASE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "{} {case}: {status:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        program.display()
    );
    stdout.lines().map(str::to_owned).collect()
}

/// Checks one thread `who` of a case's output: its status is `hijacked` (or a
/// fallback without the hijack feature), both handlers ran once, last-in first-out,
/// with the `thread_local!` alive, before its destructor.
fn check_thread(lines: &[String], who: &str) {
    let status = format!("status {who} ");
    let status = lines.iter().find(|l| l.starts_with(&status));
    let status = status.unwrap_or_else(|| panic!("no status for {who}: {lines:#?}"));
    let expected = if EXPECT_HIJACK { "hijacked" } else { "fallback" };
    assert!(status.contains(&format!(" {expected}")), "{who}: {status}\n{lines:#?}");
    let position = |line: &str| {
        let all: Vec<usize> = (0..lines.len()).filter(|&i| lines[i] == line).collect();
        assert_eq!(all.len(), 1, "{who}: {line:?} must appear once: {lines:#?}");
        all[0]
    };
    let second = position(&format!("handler {who} 2 tls alive"));
    let first = position(&format!("handler {who} 1 tls alive"));
    assert!(second < first, "{who}: handlers run last-in first-out: {lines:#?}");
    if EXPECT_HIJACK {
        // The hijacked exit runs before every TLS destructor. (A fallback may run
        // after the witness's destructor on the main thread, where the witness
        // is never dropped; the order is only promised for the hijack.)
        let dropped = lines.iter().position(|l| *l == format!("tls {who} dropped"));
        if let Some(dropped) = dropped {
            assert!(first < dropped, "{who}: handlers before the TLS destructor: {lines:#?}");
        }
    }
}

/// The doctor-like summary of `who`: a slot with the hijack, none without, in
/// agreement with its status.
fn check_summary(lines: &[String], who: &str) {
    let prefix = format!("summary {who}: ");
    let summary = lines.iter().find(|l| l.starts_with(&prefix));
    let summary = summary.unwrap_or_else(|| panic!("no summary for {who}: {lines:#?}"));
    assert_eq!(summary.contains(", slot 0x"), EXPECT_HIJACK, "{summary}");
}

/// The status line of `who` says the walk refused the frame because it is not in
/// the start routine (or `main`).
fn check_refused(lines: &[String], who: &str) {
    let prefix = format!("status {who} ");
    let status = lines.iter().find(|l| l.starts_with(&prefix));
    let status = status.unwrap_or_else(|| panic!("no status for {who}: {lines:#?}"));
    if EXPECT_HIJACK {
        assert!(status.contains("not the start routine or main"), "{status}");
    } else {
        assert!(status.contains("fallback"), "{status}");
    }
}

/// Every case of one layout.
fn check_layout(layout: Layout) {
    let Some(program) = program(layout) else { return };
    let lines = run(&program, "main");
    check_summary(&lines, "main");
    check_thread(&lines, "main");
    let lines = run(&program, "threads");
    check_summary(&lines, "std");
    check_thread(&lines, "std");
    check_thread(&lines, "raw");
    check_thread(&run(&program, "exit"), "exit");
    check_thread(&run(&program, "cancel"), "cancel");
    let lines = run(&program, "tls-destructor");
    check_refused(&lines, "late");
    assert!(lines.contains(&"late handler".to_owned()), "{lines:#?}");
    let lines = run(&program, "constructor");
    check_refused(&lines, "constructor");
    assert_runs_once(&lines, "constructor handler");
    // The main thread's `thread_local!` destructors never run in a static
    // program (std's weak `__cxa_thread_atexit_impl` is unlinked, so it keeps
    // them under a pthread key, whose destructors glibc never runs on the main
    // thread): the safety net there must be `atexit`, for a fallback, for
    // `exit()` before `main` returns, and for a first use the walk refused.
    let lines = run_with(&program, "main", &[("HIJACK_TLS", "off")]);
    assert!(
        lines.iter().any(|l| l.starts_with("status main fallback (atexit handler)")),
        "{lines:#?}"
    );
    assert_runs_once(&lines, "handler main 1 tls alive");
    assert_runs_once(&lines, "handler main 2 tls alive");
    let lines = run(&program, "process-exit");
    assert_runs_once(&lines, "handler process-exit 1 tls alive");
    assert_runs_once(&lines, "handler process-exit 2 tls alive");
}

/// `line` is in `lines` exactly once.
fn assert_runs_once(lines: &[String], line: &str) {
    let count = lines.iter().filter(|l| *l == line).count();
    assert_eq!(count, 1, "{line:?} must appear once: {lines:#?}");
}

#[test]
fn static_pie_threads_and_main_are_hijacked() {
    check_layout(Layout::Pie);
}

#[test]
fn static_non_pie_threads_and_main_are_hijacked() {
    check_layout(Layout::NoPie);
}

/// x86_64 only: rustc links with rust-lld there, which emits `PT_PHDR`; the
/// aarch64 build already links with `aarch64-linux-gnu-gcc` (GNU ld) above.
#[test]
#[cfg(target_arch = "x86_64")]
fn static_pie_linked_by_gnu_ld_threads_and_main_are_hijacked() {
    check_layout(Layout::PieGnuLd);
}
