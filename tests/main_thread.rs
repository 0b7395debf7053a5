//! The main thread: at-exit handlers run when `main` returns, before `exit()` runs
//! the main thread's TLS destructors and the `atexit` handlers, and the exit status
//! is unchanged. Runs without libtest (`harness = false`): the parent re-runs this
//! binary as a child and checks its output.

#![no_main]

mod common;

use std::cell::Cell;

use common::unwinding::{pthread_exit, pthread_testcancel};

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

fn child() -> i32 {
    // SAFETY: registers a plain extern "C" function.
    unsafe { libc::atexit(at_process_exit) };
    hijack_tls::set("value", Value);
    hijack_tls::at_exit(|| {
        let alive = PROBE.try_with(|_| ()).is_ok();
        say(&format!("handler: thread_local alive = {alive}"));
    });
    PROBE.with(|p| p.0.set(true));
    say(&format!("status: {}", hijack_tls::status()));
    7
}

/// The main thread leaves through `pthread_exit` (mode "exit") or is cancelled by
/// another thread (mode "cancel") while a second thread keeps the process alive:
/// glibc then never runs the main thread's TLS destructors, so only the hijack's
/// cleanup buffer can run the exit sequence.
fn child_forced(mode: &str) -> i32 {
    hijack_tls::set("value", Value);
    hijack_tls::at_exit(|| {
        let alive = PROBE.try_with(|_| ()).is_ok();
        say(&format!("handler: thread_local alive = {alive}"));
    });
    PROBE.with(|p| p.0.set(true));
    say(&format!("status: {}", hijack_tls::status()));
    // SAFETY: pthread_self has no preconditions.
    let main_thread = unsafe { libc::pthread_self() } as usize;
    let cancel = mode == "cancel";
    std::thread::spawn(move || {
        if cancel {
            // SAFETY: the main thread is alive and looping on cancellation points.
            unsafe { libc::pthread_cancel(main_thread as libc::pthread_t) };
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        say("last thread ends");
    });
    if cancel {
        loop {
            // SAFETY: no preconditions; unwinds when the main thread is cancelled.
            unsafe { pthread_testcancel() };
            std::thread::yield_now();
        }
    }
    // SAFETY: leaves the main thread; the frames unwound hold no borrowed state.
    unsafe { pthread_exit(0) }
}

/// Says its name and what `status()` reports when dropped.
struct Reporter(&'static str);

impl Drop for Reporter {
    fn drop(&mut self) {
        say(&format!("{} destroyed: {}", self.0, hijack_tls::status()));
    }
}

thread_local! {
    static BEFORE_FIRST_USE: Reporter = const { Reporter("registered before the first use") };
    static AFTER_FIRST_USE: Reporter = const { Reporter("registered after the first use") };
}

/// The main thread, hijacked, calls `std::process::exit(9)` instead of returning:
/// the trampoline never runs, glibc's `exit` runs the TLS destructors first
/// (`__run_exit_handlers` → `__call_tls_dtors`, last registered first), and the
/// safety net registered at the first use runs the sequence among them.
fn child_process_exit() -> i32 {
    BEFORE_FIRST_USE.with(|_| ());
    hijack_tls::at_exit(|| say(&format!("handler: {}", hijack_tls::status())));
    say(&format!("status: {}", hijack_tls::status()));
    AFTER_FIRST_USE.with(|_| ());
    std::process::exit(9)
}

fn run_child(env: &[(&str, &str)]) -> (Option<i32>, Vec<String>) {
    let mut command = common::rerun_self();
    command.env(CHILD, "1");
    // A later entry for CHILD (the mode) overrides the default above.
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    (output.status.code(), stdout.lines().map(str::to_owned).collect())
}

/// The C `main` itself (no std `lang_start`): std wraps a Rust `fn main` in
/// `catch_unwind`, which catches glibc's forced unwind and aborts the process
/// ("exception not rethrown"), so `pthread_exit` from a Rust `fn main` cannot work
/// with or without this crate. "C-unwind": the forced unwind crosses this frame.
#[unsafe(no_mangle)]
extern "C-unwind" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    run()
}

fn run() -> i32 {
    match std::env::var(CHILD).as_deref() {
        Ok("1") => return child(),
        Ok("process-exit") => return child_process_exit(),
        Ok(mode) => return child_forced(mode),
        Err(_) => {}
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

    for mode in ["exit", "cancel"] {
        let (code, lines) = run_child(&[(CHILD, mode)]);
        let handlers: Vec<_> = lines.iter().filter(|l| l.starts_with("handler:")).collect();
        let drops = lines.iter().filter(|l| *l == "drop value").count();
        let ok = code == Some(0)
            && lines.last().map(String::as_str) == Some("last thread ends")
            && if hijack_expected {
                handlers == ["handler: thread_local alive = true"] && drops == 1
            } else {
                handlers.len() <= 1 && drops <= 1
            };
        check(&format!("pthread_{mode}_of_the_main_thread_runs_the_sequence_once"), ok, &lines);
    }

    // `exit()` from the main thread: what README and `Status::Hijacked` promise.
    let (code, lines) = run_child(&[(CHILD, "process-exit")]);
    let events: Vec<_> = lines.iter().filter(|l| !l.starts_with("status: ")).cloned().collect();
    let exited = "exit sequence started by the safety net (thread_local! destructor) on a \
                  hijacked thread whose trampoline never ran";
    let expected = if hijack_expected {
        let hijacked = lines.iter().find_map(|l| l.strip_prefix("status: ")).unwrap_or_default();
        vec![
            format!("registered after the first use destroyed: {hijacked}"),
            format!("handler: {exited}"),
            format!("registered before the first use destroyed: {exited}"),
        ]
    } else {
        Vec::new()
    };
    let ok = code == Some(9)
        && if hijack_expected {
            events == expected
        } else {
            events.iter().filter(|l| l.starts_with("handler: ")).count() == 1
        };
    check("process_exit_on_the_main_thread_runs_the_sequence_among_tls_destructors", ok, &lines);

    let passed = 7 - failed;
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    i32::from(failed != 0)
}
