//! gdb attached to a hijacked thread: its backtrace must pass through the exit
//! trampoline to `start_thread`/`clone3`, which needs the copy's FDE from the
//! GDB JIT interface (without it, gdb ends in `0x0 in ?? ()`).

mod common;

use std::process::Command;

use common::{EXPECT_HIJACK, is_child};

/// This test's child case: the test binary re-run under gdb.
const CASE: &str = "gdb_child";

/// Where the hijacked thread stops for gdb.
#[inline(never)]
fn gdb_marker_in_hijacked_thread() {
    // SAFETY: raising a signal has no memory-safety preconditions; under gdb it
    // stops the process here.
    unsafe { libc::raise(libc::SIGTRAP) };
    core::hint::black_box(());
}

#[test]
fn gdb_child() {
    if !is_child(CASE) {
        return;
    }
    std::thread::spawn(|| {
        hijack_tls::set("hijacked", 1_u32);
        println!("child status: {}", hijack_tls::status());
        gdb_marker_in_hijacked_thread();
    })
    .join()
    .unwrap();
}

/// The first backtrace in gdb's output: the consecutive lines starting with `#`.
fn first_backtrace(output: &str) -> String {
    output
        .lines()
        .skip_while(|line| !line.starts_with("#0 "))
        .take_while(|line| line.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn gdb_backtrace_passes_the_trampoline() {
    if is_child(CASE) {
        return;
    }
    if !EXPECT_HIJACK {
        println!("skipped: this build does not hijack threads");
        return;
    }
    if cfg!(target_arch = "aarch64")
        && std::env::var_os("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER").is_some()
    {
        println!("skipped: this binary runs under an emulator (cargo's target runner)");
        return;
    }
    if Command::new("gdb").arg("--version").output().is_err() {
        println!("skipped: gdb is not installed");
        return;
    }
    let output = Command::new("gdb")
        .args(["-nx", "-batch", "-ex", "set pagination off", "-ex", "run", "-ex", "bt"])
        .args(["-ex", "thread apply all bt", "--args"])
        .arg(std::env::current_exe().unwrap())
        .args([CASE, "--exact", "--nocapture", "--test-threads=1"])
        .env("HIJACK_TLS_TEST_CHILD", CASE)
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));

    assert!(text.contains("child status: hijacked"), "the thread was not hijacked:\n{text}");
    let bt = first_backtrace(&text);
    assert!(bt.contains("gdb_marker_in_hijacked_thread"), "not stopped in the marker:\n{text}");
    assert!(bt.contains(" in hijack_tls_trampoline_"), "no trampoline frame:\n{bt}");
    assert!(
        bt.contains("start_thread") || bt.contains("clone3"),
        "gdb did not unwind through the trampoline:\n{bt}"
    );
    assert!(!bt.contains(" in ?? ()"), "gdb lost the stack:\n{bt}");
}
