//! The main thread: at-exit handlers run when `main` returns, before `exit()` runs
//! the main thread's TLS destructors and the `atexit` handlers, and the exit status
//! is unchanged. Runs without libtest (`harness = false`): the parent re-runs this
//! binary as a child and checks its output.

mod common;

use std::cell::Cell;
use std::process::{Command, ExitCode};

const CHILD: &str = "HIJACK_TLS_MAIN_THREAD_CHILD";

/// Writes a line with one `write(2)`, usable in every state of process exit.
fn say(text: &str) {
    let line = format!("{text}\n");
    // SAFETY: valid buffer of the given length.
    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
}

struct Probe(Cell<bool>);

impl Drop for Probe {
    fn drop(&mut self) {
        say("thread_local destructor");
    }
}

thread_local! {
    static PROBE: Probe = const { Probe(Cell::new(false)) };
}

struct Value;

impl Drop for Value {
    fn drop(&mut self) {
        say("drop value");
    }
}

extern "C" fn at_process_exit() {
    say("atexit handler");
}

fn child() -> ExitCode {
    // SAFETY: registers a plain extern "C" function.
    unsafe { libc::atexit(at_process_exit) };
    hijack_tls::set("value", Value);
    hijack_tls::at_exit(|| {
        let alive = PROBE.try_with(|_| ()).is_ok();
        say(&format!("handler: thread_local alive = {alive}"));
    });
    PROBE.with(|p| p.0.set(true));
    say(&format!("status: {}", hijack_tls::status()));
    ExitCode::from(7)
}

fn run_child(env: &[(&str, &str)]) -> (Option<i32>, Vec<String>) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.env(CHILD, "1");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    (output.status.code(), stdout.lines().map(str::to_owned).collect())
}

fn main() -> ExitCode {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let hijack_expected = common::EXPECT_HIJACK;
    let mut failed = 0;
    let mut check = |name: &str, ok: bool, detail: &dyn std::fmt::Debug| {
        if ok {
            println!("test main_thread::{name} ... ok");
        } else {
            println!("test main_thread::{name} ... FAILED: {detail:?}");
            failed += 1;
        }
    };

    let (code, lines) = run_child(&[]);
    check("exit_status_unchanged", code == Some(7), &(code, &lines));
    let status_line = lines.iter().find(|l| l.starts_with("status: ")).cloned().unwrap_or_default();
    check(
        "main_is_hijacked",
        !hijack_expected || status_line.starts_with("status: hijacked"),
        &status_line,
    );
    let events: Vec<_> = lines.iter().filter(|l| !l.starts_with("status: ")).cloned().collect();
    let expected = if hijack_expected {
        vec![
            "handler: thread_local alive = true",
            "drop value",
            "thread_local destructor",
            "atexit handler",
        ]
    } else {
        // The fallback runs among the TLS destructors: PROBE was registered after
        // the record, so it is destroyed first.
        vec![
            "thread_local destructor",
            "handler: thread_local alive = false",
            "drop value",
            "atexit handler",
        ]
    };
    check("handlers_run_before_tls_destructors_and_atexit", events == expected, &events);

    let (code, lines) = run_child(&[("HIJACK_TLS", "off")]);
    let handler_runs = lines.iter().filter(|l| l.starts_with("handler:")).count();
    check("kill_switch_still_runs_the_handler_once", code == Some(7) && handler_runs == 1, &lines);

    let passed = 4 - failed;
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
