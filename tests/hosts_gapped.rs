//! Main programs laid out with unreadable gaps between their segments
//! (`-z max-page-size=0x200000 -z separate-code`): the C host of `hosts_c.rs`
//! linking the crate as a staticlib, and a Rust program
//! (`tests/fixtures/plugin/gapped.rs`). For a main program with gaps,
//! `_dl_find_object` reports one range per segment (glibc elf/dl-find_object.c,
//! `_dlfo_process_initial`), and the walk takes its extent from the program
//! headers (`headers::main_program`); `dl_iterate_phdr` reports all segments at
//! once. Both lookups must hijack every thread: the second is forced with
//! `tests/fixtures/hosts/no_find_object.c`, which hides `_dl_find_object` as
//! glibc 2.34 (which lacks it) would, and is the end-to-end test of that path.

mod common;
#[path = "fixtures/hosts/support.rs"]
mod hosts;
#[path = "fixtures/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hosts::Expect;

/// The threads `host.c` uses the crate on.
const C_THREADS: [&str; 5] = ["joinable", "detached", "pthread_exit", "pthread_cancel", "main"];
/// The threads `gapped.rs` uses the crate on.
const RUST_THREADS: [&str; 2] = ["thread", "main"];

/// `host.c` linked with the staticlib and with gaps between its segments.
fn gapped_c_host() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut flags: Vec<String> = hosts::GAPPED.map(str::to_owned).to_vec();
        flags.extend(hosts::staticlib_link_flags());
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let host = hosts::build_c(&hosts::source("host.c"), "hosts-c-gapped", &flags);
        hosts::assert_gapped(&host);
        host
    })
}

/// The Rust program with gaps between its segments.
fn gapped_rust_program() -> &'static Path {
    let program = &support::fixture().gapped;
    hosts::assert_gapped(program);
    program
}

/// Runs `program` with `_dl_find_object` as this glibc has it, checks the report.
fn check_with_find_object(program: &Path, who: &[&str]) {
    let lines = hosts::run(program, &[], &[]);
    hosts::assert_report(&lines, who, Expect::for_build());
}

/// Runs `program` with `_dl_find_object` hidden, checks the report and that the
/// crate asked for it and was told it is missing (so it used `dl_iterate_phdr`);
/// then the `HIJACK_TLS=off` control, which the report check must reject.
fn check_with_iterate_phdr(program: &Path, who: &[&str]) {
    let preload = hosts::preload_env(hosts::no_find_object());
    let lines = hosts::run(program, &[], std::slice::from_ref(&preload));
    hosts::assert_report(&lines, who, Expect::for_build());
    if common::EXPECT_HIJACK {
        assert!(hosts::hidden_find_object_lookups(&lines) >= 1, "{}", lines.join("\n"));
    }
    let off = [preload, ("HIJACK_TLS".to_owned(), "off".to_owned())];
    hosts::assert_report(&hosts::run(program, &[], &off), who, Expect::Fallback);
}

#[test]
fn gapped_c_host_is_hijacked_with_dl_find_object() {
    check_with_find_object(gapped_c_host(), &C_THREADS);
}

#[test]
fn gapped_c_host_is_hijacked_with_dl_iterate_phdr() {
    check_with_iterate_phdr(gapped_c_host(), &C_THREADS);
}

#[test]
fn gapped_rust_program_is_hijacked_with_dl_find_object() {
    check_with_find_object(gapped_rust_program(), &RUST_THREADS);
}

#[test]
fn gapped_rust_program_is_hijacked_with_dl_iterate_phdr() {
    check_with_iterate_phdr(gapped_rust_program(), &RUST_THREADS);
}
