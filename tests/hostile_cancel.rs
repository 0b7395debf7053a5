//! Review attacks on the cancellation and forced-unwind handling of the exit
//! sequence (`src/exit/cancel/`, `src/exit/mod.rs`, `src/exit/forced_unwind.rs`). Each case runs
//! in a child under a timeout, in both modes (hijack, and `HIJACK_TLS=off`).

mod common;
#[path = "fixtures/support.rs"]
mod support;

use std::ffi::c_int;
use std::time::Duration;

use common::unwinding::pthread_exit;
use common::{is_child, run_child_timeout};
use support::{join_raw, say_to, spawn_raw};

/// A child gets this long; the cases take well under a second when they work.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Both settings of the kill switch: the hijack, and the fallback alone.
const MODES: [&[(&str, &str)]; 2] = [&[], &[("HIJACK_TLS", "off")]];

fn say(text: &str) {
    say_to(1, text);
}

/// The child's own stdout lines (the first may follow libtest's `test x ... `).
fn lines(out: &str) -> Vec<&str> {
    out.lines()
        .map(|line| match line.split_once(" ... ") {
            Some((head, rest)) if head.starts_with("test ") => rest,
            _ => line,
        })
        .collect()
}

/// Runs `case` in a child in each mode; returns (mode, exit code, stdout, stderr).
fn run_in_both_modes(case: &str) -> Vec<(String, Option<i32>, String, String)> {
    MODES
        .iter()
        .map(|env| {
            let (code, out, err) = run_child_timeout(case, env, TIMEOUT);
            (format!("{env:?}"), code, out, err)
        })
        .collect()
}

// ---- the value pthread_join reports ------------------------------------------

/// README / catch.rs: glibc's `pthread_exit` stores its value before unwinding,
/// so the last one wins, but on a hijacked thread that returns: `start_thread`
/// stores the start routine's result after the trampoline. A raw thread that
/// returns 7, whose hook calls `pthread_exit(99)`: 7 hijacked, 99 in fallback
/// (where `start_thread` stored 7 before the TLS destructors ran).
#[test]
fn pthread_exit_in_a_hook_after_a_return_gives_the_documented_result() {
    let case = "pthread_exit_in_a_hook_after_a_return_gives_the_documented_result";
    if is_child(case) {
        let thread = spawn_raw(|| {
            hijack_tls::at_exit(|| {
                // SAFETY: every frame up to the crate's cancel buffer is Rust.
                unsafe { pthread_exit(99) }
            });
            7
        });
        say(&format!("joined {}", join_raw(thread)));
        return;
    }
    let mut failures = Vec::new();
    for (index, (mode, code, out, err)) in run_in_both_modes(case).into_iter().enumerate() {
        let expected = if common::EXPECT_HIJACK && index == 0 { "joined 7" } else { "joined 99" };
        if code != Some(0) || !lines(&out).contains(&expected) {
            failures.push(format!("{mode}: expected {expected}, exit {code:?}\n{out}\n{err}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

/// A thread leaving by `pthread_exit(5)` whose hook calls `pthread_exit(99)`:
/// the last value wins, `pthread_join` says 99 in both modes.
#[test]
fn pthread_exit_in_a_hook_during_pthread_exit_gives_the_last_value() {
    let case = "pthread_exit_in_a_hook_during_pthread_exit_gives_the_last_value";
    if is_child(case) {
        let thread = spawn_raw(|| {
            hijack_tls::at_exit(|| {
                // SAFETY: every frame up to the crate's cancel buffer is Rust.
                unsafe { pthread_exit(99) }
            });
            // SAFETY: every frame up to the raw thread's start routine is Rust.
            unsafe { pthread_exit(5) }
        });
        say(&format!("joined {}", join_raw(thread)));
        return;
    }
    let mut failures = Vec::new();
    for (mode, code, out, err) in run_in_both_modes(case) {
        if code != Some(0) || !lines(&out).contains(&"joined 99") {
            failures.push(format!("{mode}: exit {code:?}\n{out}\n{err}"));
        }
    }
    assert!(failures.is_empty(), "expected `joined 99`:\n{}", failures.join("\n---\n"));
}

// ---- a hook that re-enables cancellation --------------------------------------

/// `PTHREAD_CANCEL_ENABLE` from `<pthread.h>`.
const PTHREAD_CANCEL_ENABLE: c_int = 0;

unsafe extern "C" {
    fn pthread_setcancelstate(state: c_int, old: *mut c_int) -> c_int;
}

/// Registers a copy of itself every time it runs, so the sequence ends by
/// refusing one, which the crate reports with a `write(2)` of its own.
fn self_registering() {
    hijack_tls::at_exit(self_registering);
}

/// A hook that turns cancellation back on (deferred, no cancellation point) and
/// leaves a cancel pending, then returns normally. The crate's own report line
/// at the end of the sequence is a `write`: a cancellation point outside any
/// cancel buffer. The thread must still end and be joined; the process must not
/// abort.
#[test]
fn a_hook_that_leaves_cancellation_enabled_does_not_abort_the_process() {
    let case = "a_hook_that_leaves_cancellation_enabled_does_not_abort_the_process";
    if is_child(case) {
        let thread = spawn_raw(|| {
            hijack_tls::at_exit(self_registering);
            hijack_tls::at_exit(|| {
                // SAFETY: the thread cancels itself while the sequence holds
                // cancellation off (only marks it pending), then enables it,
                // deferred: no cancellation point is reached here (not even a
                // `write`).
                unsafe {
                    libc::pthread_cancel(libc::pthread_self());
                    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, std::ptr::null_mut());
                }
            });
            7
        });
        let value = join_raw(thread);
        say(&format!("joined {}", if value == usize::MAX { "cancelled" } else { "returned" }));
        return;
    }
    let mut failures = Vec::new();
    for (mode, code, out, err) in run_in_both_modes(case) {
        let joined = lines(&out).iter().any(|l| l.starts_with("joined "));
        if code != Some(0) || !joined {
            failures.push(format!("{mode}: exit {code:?}\n{out}\n{err}"));
        }
    }
    assert!(failures.is_empty(), "the process must survive:\n{}", failures.join("\n---\n"));
}

// ---- an asynchronous cancel signal that arrives after the disable ------------

/// `PTHREAD_CANCEL_ASYNCHRONOUS` from `<pthread.h>`.
const PTHREAD_CANCEL_ASYNCHRONOUS: c_int = 1;
/// glibc's `SIGCANCEL` (`__SIGRTMIN`, nptl/pthreadP.h).
const SIGCANCEL: c_int = 32;

unsafe extern "C" {
    fn pthread_setcanceltype(kind: c_int, old: *mut c_int) -> c_int;
}

/// What `pthread_cancel` does to an asynchronous thread when it read the state
/// as enabled just before the thread disabled it: the signal arrives while the
/// crate holds cancellation off. glibc 2.36's handler acts on the type bit alone
/// (nptl/pthread_cancel.c `sigcancel_handler`), so unless the crate made the type
/// deferred, the forced unwind starts inside its exit sequence (here: inside a
/// hook, cutting it short), or inside a first use holding a loader lock (the
/// hang `hostile_first_use`'s asynchronous-cancel stress found). The thread sets
/// the asynchronous type and returns; its hook sends itself `SIGCANCEL` with
/// `tgkill` (as `pthread_cancel` does, `SI_TKILL`) and must run to its end; the
/// thread then leaves normally (the cancel stays pending: it exits anyway).
#[test]
fn a_cancel_signal_after_the_disable_does_not_act_inside_the_exit_sequence() {
    let case = "a_cancel_signal_after_the_disable_does_not_act_inside_the_exit_sequence";
    if is_child(case) {
        // glibc installs its SIGCANCEL handler at the first `pthread_cancel` of
        // a live thread; without it the signal would end the process.
        let waiting = spawn_raw(|| {
            loop {
                // SAFETY: a cancellation point.
                unsafe { libc::usleep(1000) };
            }
        });
        // SAFETY: a live, joinable thread, joined right after.
        unsafe { libc::pthread_cancel(waiting) };
        join_raw(waiting);
        let thread = spawn_raw(|| {
            hijack_tls::at_exit(|| {
                say("hook starts");
                // SAFETY: tgkill on this thread of this process; glibc's handler
                // for SIGCANCEL is installed (above).
                unsafe {
                    libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), SIGCANCEL)
                };
                say("hook ends");
            });
            // SAFETY: a valid type; nothing in this frame needs unwinding.
            unsafe { pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, std::ptr::null_mut()) };
            3
        });
        say(&format!("joined {}", join_raw(thread)));
        return;
    }
    let mut failures = Vec::new();
    for (mode, code, out, err) in run_in_both_modes(case) {
        let lines = lines(&out);
        if code != Some(0)
            || !lines.contains(&"hook ends")
            || !lines.iter().any(|l| l.starts_with("joined"))
        {
            failures.push(format!("{mode}: exit {code:?}\n{out}\n{err}"));
        }
    }
    assert!(failures.is_empty(), "the hook was cut short:\n{}", failures.join("\n---\n"));
}
