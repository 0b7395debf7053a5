//! A C host (gcc, pthreads) that links hijack-tls as a Rust `staticlib`
//! (`tests/fixtures/hosts/host.c` with `tests/fixtures/plugin`'s archive): a
//! joined, a detached, a `pthread_exit`ing and a cancelled thread, then the main
//! thread, each hijacked, its at-exit hook run before its TLS destructors with a
//! `thread_local!` still alive. Then the same host under gcc's
//! `-fsanitize=address` and `-fsanitize=thread`, whose runtimes intercept
//! `pthread_create` with a start routine of their own.
//!
//! Every run is checked against its control: the same binary with
//! `HIJACK_TLS=off` must show the fallback's order, which the checks reject.

mod common;
#[path = "fixtures/hosts/support.rs"]
mod hosts;
#[path = "fixtures/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hosts::Expect;

/// The threads `host.c` uses the crate on.
const THREADS: [&str; 5] = ["joinable", "detached", "pthread_exit", "pthread_cancel", "main"];

/// Builds `host.c` linked with the staticlib, with `flags`, into `name`.
fn build_host(name: &str, flags: &[&str]) -> PathBuf {
    let mut all: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
    all.extend(hosts::staticlib_link_flags());
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    hosts::build_c(&hosts::source("host.c"), name, &all)
}

/// The host as the toolchain builds it by default.
fn plain_host() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_host("hosts-c-staticlib", &[]))
}

/// Runs `host` and checks its report, then its `HIJACK_TLS=off` control.
fn check_host(host: &Path, env: &[(String, String)]) {
    let lines = hosts::run(host, &[], env);
    hosts::assert_report(&lines, &THREADS, Expect::for_build());
    let mut off = env.to_vec();
    off.push(("HIJACK_TLS".to_owned(), "off".to_owned()));
    hosts::assert_report(&hosts::run(host, &[], &off), &THREADS, Expect::Fallback);
}

#[test]
fn c_host_linking_a_staticlib_is_hijacked_on_every_thread() {
    check_host(plain_host(), &[]);
}

/// The host built with gcc's `-fsanitize=<name>` (x86_64 only: the cross
/// toolchain's sanitizer runtimes do not run under qemu-user).
fn sanitized_host(name: &str) -> Option<PathBuf> {
    if !cfg!(target_arch = "x86_64") {
        println!("skipped: gcc's -fsanitize={name} runtime does not run under qemu-user");
        return None;
    }
    let flag = format!("-fsanitize={name}");
    Some(build_host(&format!("hosts-c-staticlib-{name}"), &[&flag, "-g"]))
}

#[test]
fn c_staticlib_host_under_address_sanitizer_is_hijacked() {
    let Some(host) = sanitized_host("address") else { return };
    // The crate keeps some records for the life of the process on purpose.
    check_host(&host, &[("ASAN_OPTIONS".to_owned(), "detect_leaks=0".to_owned())]);
}

#[test]
fn c_staticlib_host_under_thread_sanitizer_is_hijacked() {
    let Some(host) = sanitized_host("thread") else { return };
    check_host(&host, &[]);
}
