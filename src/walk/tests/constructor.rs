//! A walk from an ELF constructor of this test executable, run in a child
//! process: the constructor returns into `__libc_start_main_impl`, which is not
//! a thread start, so the walk must refuse it.

use super::real::walk_here;
use crate::walk::Strategy;
use std::process::Command;

/// Set in the child's environment to make the constructor walk.
const ENV: &str = "HIJACK_TLS_TEST_WALK_IN_CONSTRUCTOR";

/// Runs before `main`; walks and exits when [`ENV`] is set, else does nothing.
extern "C" fn walk_in_constructor() {
    if std::env::var_os(ENV).is_none() {
        return;
    }
    let result = walk_here("ELF constructor (main thread)", Strategy::best());
    println!("constructor walk: {result:?}");
    std::process::exit(0);
}

/// Registers [`walk_in_constructor`] as an ELF constructor.
#[used]
#[unsafe(link_section = ".init_array")]
static CONSTRUCTOR: extern "C" fn() = walk_in_constructor;

/// A command running this test executable again: through cargo's target runner
/// when one is set (`qemu-aarch64 ...`: the emulated process cannot `exec` a
/// foreign binary itself, and qemu passes the environment on to the guest).
fn rerun_self() -> Command {
    let exe = std::env::current_exe().unwrap();
    let runner = if cfg!(target_arch = "aarch64") {
        std::env::var("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER").unwrap_or_default()
    } else {
        String::new()
    };
    let mut words = runner.split_whitespace();
    let Some(program) = words.next() else { return Command::new(exe) };
    let mut command = Command::new(program);
    command.args(words).arg(exe);
    command
}

#[test]
fn constructor_is_not_a_thread_start() {
    let out = rerun_self().env(ENV, "1").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        stdout
            .contains("constructor walk: Err(NotThreadStart { libc_frames: 1, other_frames: 1 })"),
        "{stdout}"
    );
}
