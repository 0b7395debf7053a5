//! gdb sees through an announced copy, without a live hijack: the test binary is
//! re-run under gdb, announces the last copy with a known "original return"
//! (inside `gdb_target`), and stops; gdb then moves the stopped thread's pc to the
//! copy's entry and must unwind to `gdb_target`, through the JIT object's FDE.
//! A control run without the announcement must not get there.

use std::process::Command;

use super::*;

/// Environment variable selecting the child's role (`announce` or `control`).
const ROLE: &str = "HIJACK_TLS_UNWIND_INFO_GDB";

/// The frame gdb must unwind to: the FDE's constant return address is inside it.
#[inline(never)]
fn gdb_target() -> usize {
    core::hint::black_box(1)
}

/// The child: does nothing unless run by [`gdb_unwinds_through_an_announced_copy`].
#[test]
fn gdb_child() {
    let Ok(role) = std::env::var(ROLE) else { return };
    let copy = arch::TRAMPOLINE_COPIES - 1;
    if role == "announce" {
        let pad = arch::trampoline_pad(copy);
        announce(copy, pad, gdb_target as *const () as usize + 1).unwrap();
    }
    gdb_target();
    // SAFETY: raising a signal has no memory-safety preconditions; under gdb it
    // stops the process here.
    unsafe { libc::raise(libc::SIGTRAP) };
}

/// Runs the child in `role` under gdb and returns gdb's output.
fn run_under_gdb(role: &str) -> Option<String> {
    let copy = arch::TRAMPOLINE_COPIES - 1;
    let entry = format!(
        "set $pc = (char *) &{} + {}",
        jit_object::symbol_name(copy),
        arch::TRAMPOLINE_ENTRY_OFFSET
    );
    let output = Command::new("gdb")
        .args(["-nx", "-batch", "-ex", "set pagination off", "-ex", "run", "-ex", &entry])
        .args(["-ex", "bt 4", "--args"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "unwind_info::gdb_test::gdb_child", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .output()
        .ok()?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Some(text)
}

/// The target runner cargo starts this test binary with, if any (`qemu-aarch64
/// ...` when cross-testing aarch64): the host's gdb cannot run that binary.
fn emulator() -> Option<String> {
    if !cfg!(target_arch = "aarch64") {
        return None;
    }
    std::env::var("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER").ok().filter(|r| !r.is_empty())
}

#[test]
fn gdb_unwinds_through_an_announced_copy() {
    if let Some(runner) = emulator() {
        println!("skipped: this binary runs under `{runner}`, which gdb cannot follow");
        return;
    }
    let Some(announced) = run_under_gdb("announce") else {
        println!("skipped: gdb is not installed");
        return;
    };
    let trampoline = jit_object::symbol_name(arch::TRAMPOLINE_COPIES - 1);
    assert!(announced.contains("SIGTRAP"), "the child did not stop:\n{announced}");
    assert!(announced.contains(&format!(" in {trampoline} ()")), "{announced}");
    assert!(announced.contains("gdb_test::gdb_target"), "no unwind through the copy:\n{announced}");

    let control = run_under_gdb("control").unwrap();
    assert!(control.contains("SIGTRAP"), "the child did not stop:\n{control}");
    assert!(!control.contains("gdb_test::gdb_target"), "control reached the target:\n{control}");
}
