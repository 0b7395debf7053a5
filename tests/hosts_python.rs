//! A Python 3 host (Debian's `python3`, ctypes): `tests/fixtures/hosts/threads.py`
//! loads `tests/fixtures/plugin`'s cdylib; `threading.Thread` threads and the
//! workers of a `concurrent.futures.ThreadPoolExecutor` each use the crate once.
//! Each must be hijacked, its hook run before its TLS destructors with a
//! `thread_local!` alive, and every pool worker must have exited (its TLS
//! destructors run) after the pool's shutdown. Again with `_dl_find_object`
//! hidden (glibc 2.34's lookup), and each against its `HIJACK_TLS=off` control.
//!
//! Native only: under qemu-user the host's python3 is an x86_64 program and cannot
//! load the aarch64 library.

mod common;
#[path = "fixtures/hosts/support.rs"]
mod hosts;
#[path = "fixtures/support.rs"]
mod support;

use std::path::Path;

use hosts::Expect;

/// Debian's interpreter (`.ci/run` installs `python3` where it is missing).
const PYTHON: &str = "/usr/bin/python3";

/// Runs the script with `env`; checks every thread it names against `expect`.
fn check(env: &[(String, String)], expect: Expect) -> Vec<String> {
    assert!(Path::new(PYTHON).exists(), "{PYTHON} is missing (apt-get install python3)");
    let script = hosts::source("threads.py").display().to_string();
    let library = support::fixture().cdylib.display().to_string();
    let lines = hosts::run(Path::new(PYTHON), &[&script, &library], env);
    let report = lines.join("\n");
    let names: Vec<&str> = lines
        .iter()
        .find_map(|l| l.strip_prefix("names: "))
        .unwrap_or_else(|| panic!("no names in:\n{report}"))
        .split(' ')
        .collect();
    assert_eq!(names.len(), 7, "4 threads and 3 pool workers:\n{report}");
    assert!(lines.contains(&"finished: 7".to_owned()), "every thread exited:\n{report}");
    hosts::assert_report(&lines, &names, expect);
    lines
}

/// Whether this test can run here (not under the emulator).
fn native() -> bool {
    let native = support::emulator().is_none();
    if !native {
        println!("skipped: the host's python3 cannot load an aarch64 library under qemu-user");
    }
    native
}

#[test]
fn python_threads_and_pool_workers_are_hijacked() {
    if !native() {
        return;
    }
    check(&[], Expect::for_build());
    check(&[("HIJACK_TLS".to_owned(), "off".to_owned())], Expect::Fallback);
}

#[test]
fn python_threads_are_hijacked_with_dl_iterate_phdr() {
    if !native() {
        return;
    }
    let preload = hosts::preload_env(hosts::no_find_object());
    let lines = check(std::slice::from_ref(&preload), Expect::for_build());
    if common::EXPECT_HIJACK {
        assert!(hosts::hidden_find_object_lookups(&lines) >= 1, "{}", lines.join("\n"));
    }
    let off = [preload, ("HIJACK_TLS".to_owned(), "off".to_owned())];
    check(&off, Expect::Fallback);
}
