//! Reliability: every way a thread or process can leave, each exactly once.
//!
//! Covered elsewhere and not repeated here: normal return (`tests/threads.rs`,
//! `tests/hijack.rs`), `pthread_exit` from a nested frame and deferred
//! `pthread_cancel` (`tests/forced_unwind.rs`, `tests/main_thread.rs`), a panic
//! caught inside the thread or at the std thread boundary (`tests/backtrace.rs`).
//! Here: `fork`, `exec`, raw `SYS_exit`, `unload` followed by each exit, and
//! records re-created during teardown.

mod common;
#[path = "fixtures/support.rs"]
mod support;

use std::io::Read;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{EXPECT_HIJACK, is_child, run_child};
use hijack_tls::Status;
use support::{join_raw, pid, run_probe, say_to, spawn_raw};

/// The pipe's write end the fork tests log to (one line per event).
static LOG_FD: AtomicI32 = AtomicI32::new(-1);
/// The pid of the test process, to tell the fork child from the parent.
static PARENT_PID: AtomicI32 = AtomicI32::new(0);

fn role() -> &'static str {
    if pid() == PARENT_PID.load(Ordering::SeqCst) { "parent" } else { "child" }
}

fn log(event: &str) {
    say_to(LOG_FD.load(Ordering::SeqCst), &format!("{event} {}", role()));
}

/// A stored value that logs its drop with the process role.
struct Logged(&'static str);

impl Drop for Logged {
    fn drop(&mut self) {
        log(&format!("drop {}", self.0));
    }
}

fn assert_hijacked(status: Status) {
    if EXPECT_HIJACK {
        assert!(matches!(status, Status::Hijacked { .. }), "{status}");
    }
}

/// Waits for `child` for at most 20 s (killing it then); returns its wait status.
fn wait_child(child: libc::pid_t) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child without blocking.
        let rc = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
        if rc == child {
            return status;
        }
        assert_eq!(rc, 0, "waitpid");
        if Instant::now() > deadline {
            // SAFETY: our own child.
            unsafe { libc::kill(child, libc::SIGKILL) };
            panic!("fork child hung");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `body` on a raw pthread that forks, with a pipe for the log; returns the
/// log lines of both processes and the child's wait status. `body(true)` runs
/// before the fork, `body(false)` after it in both processes.
fn fork_case(before: fn(), after_in_child: fn(), after_in_parent: fn()) -> (Vec<String>, i32) {
    let mut fds = [0; 2];
    // SAFETY: a valid out-array for two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    LOG_FD.store(fds[1], Ordering::SeqCst);
    PARENT_PID.store(pid(), Ordering::SeqCst);
    let thread = spawn_raw(move || {
        before();
        // SAFETY: the child runs only this thread's code, which writes to a pipe,
        // frees memory (glibc's malloc is fork-safe) and returns.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork");
        if child == 0 {
            after_in_child();
            return 0; // the child's only thread returns from its start routine
        }
        after_in_parent();
        wait_child(child) as usize
    });
    let status = join_raw(thread) as i32;
    // SAFETY: the write end is ours; closing it lets the read below see EOF.
    unsafe { libc::close(fds[1]) };
    let mut text = String::new();
    // SAFETY: the read end is ours and owned by the File from here on.
    unsafe { std::fs::File::from_raw_fd(fds[0]) }.read_to_string(&mut text).unwrap();
    (text.lines().map(str::to_owned).collect(), status)
}

fn lines_of<'a>(lines: &'a [String], role: &str) -> Vec<&'a str> {
    lines.iter().filter(|l| l.ends_with(role)).map(String::as_str).collect()
}

/// Forks from a hijacked raw thread: each process runs its copy of the record.
fn fork_with_a_record() {
    let (lines, status) = fork_case(
        || {
            hijack_tls::set("v", Logged("inherited"));
            hijack_tls::at_exit(|| log("handler inherited"));
            assert_hijacked(hijack_tls::status());
        },
        || hijack_tls::at_exit(|| log("handler child-only")),
        || {},
    );
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child status {status:#x}");
    assert_eq!(
        lines_of(&lines, "child"),
        ["handler child-only child", "handler inherited child", "drop inherited child"],
        "{lines:?}"
    );
    assert_eq!(
        lines_of(&lines, "parent"),
        ["handler inherited parent", "drop inherited parent"],
        "{lines:?}"
    );
}

/// Forks from a thread with no record; both processes then use the crate first.
fn fork_then_first_use() {
    fn after() {
        hijack_tls::set("v", Logged("late"));
        hijack_tls::at_exit(|| log("handler late"));
        // The child's walk runs on a copy of the parent's stack.
        assert_hijacked(hijack_tls::status());
    }
    let (lines, status) = fork_case(|| {}, after, after);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child status {status:#x}");
    for role in ["child", "parent"] {
        assert_eq!(
            lines_of(&lines, role),
            [format!("handler late {role}"), format!("drop late {role}")],
            "{lines:?}"
        );
    }
}

#[test]
fn child_fork_from_threads() {
    if !is_child("child_fork_from_threads") {
        return;
    }
    fork_with_a_record();
    fork_then_first_use();
    println!("fork cases ok");
}

/// In a child process of its own: a fork child may only use what no other thread
/// of the parent held locked at the fork (std mutexes are not reset by `fork`), and
/// this binary's other tests run threads that use the crate concurrently.
#[test]
fn fork_from_a_hijacked_thread_runs_each_processs_sequence_once() {
    let (ok, stdout, stderr) = run_child("child_fork_from_threads", &[]);
    assert!(ok && stdout.contains("fork cases ok"), "{stdout}\n{stderr}");
}

/// The probe's output lines starting with `prefix`.
fn starting<'a>(lines: &'a [String], prefix: &str) -> Vec<&'a str> {
    lines.iter().filter(|l| l.starts_with(prefix)).map(String::as_str).collect()
}

fn assert_probe_hijacked(lines: &[String]) {
    for line in starting(lines, "status ") {
        assert!(!EXPECT_HIJACK || line.contains(" hijacked: "), "{line}");
    }
}

#[test]
fn fork_from_the_hijacked_main_thread_runs_each_processs_sequence_once() {
    let (status, lines) = run_probe("fork", &[]);
    assert!(status.success(), "{status} {lines:?}");
    assert_probe_hijacked(&lines);
    let events: Vec<_> = lines.iter().filter(|l| !l.starts_with("status ")).collect();
    assert_eq!(
        events,
        [
            "child returns from main",
            "handler main child",
            "drop main child",
            "child exit status 0",
            "handler main parent",
            "drop main parent"
        ],
        "the child returns from main through the trampoline, then the parent does"
    );
}

#[test]
fn exec_from_a_hijacked_thread_or_main_runs_the_new_image_and_nothing_of_ours() {
    for case in ["exec", "exec-thread"] {
        let (status, lines) = run_probe(case, &[]);
        assert!(status.success(), "{case}: {status} {lines:?}");
        assert_probe_hijacked(&lines);
        let events: Vec<_> = lines.iter().filter(|l| !l.starts_with("status ")).collect();
        assert_eq!(events, ["exec target runs"], "{case}: no handler or drop may run");
    }
}

static SYS_EXIT_HANDLERS: AtomicUsize = AtomicUsize::new(0);
static SYS_EXIT_DROPS: AtomicUsize = AtomicUsize::new(0);
static LATER_HANDLERS: AtomicUsize = AtomicUsize::new(0);
static LATER_DROPS: AtomicUsize = AtomicUsize::new(0);

struct Counted(&'static AtomicUsize);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Registers one value and one handler that count into `handlers` and `drops`.
fn register_counted(handlers: &'static AtomicUsize, drops: &'static AtomicUsize) {
    hijack_tls::set("counted", Counted(drops));
    hijack_tls::at_exit(move || {
        handlers.fetch_add(1, Ordering::SeqCst);
    });
}

#[test]
fn child_sys_exit() {
    if !is_child("child_sys_exit") {
        return;
    }
    let gone = spawn_raw(|| {
        register_counted(&SYS_EXIT_HANDLERS, &SYS_EXIT_DROPS);
        assert_hijacked(hijack_tls::status());
        // SAFETY: ends this thread at once; nothing on its stack is used again.
        unsafe { libc::syscall(libc::SYS_exit, 0) };
        unreachable!()
    });
    // The kernel clears the thread's tid on exit, so the join returns and glibc
    // recycles the stack; its static TLS (our record pointer) is reinitialised.
    join_raw(gone);
    // Later threads reuse that stack; each leaves a different way.
    for n in 0..200_usize {
        let thread = spawn_raw(move || {
            register_counted(&LATER_HANDLERS, &LATER_DROPS);
            assert_hijacked(hijack_tls::status());
            if n % 2 == 1 {
                // SAFETY: ends this raw pthread; its frames hold nothing to drop.
                unsafe { common::unwinding::pthread_exit(0) };
            }
            n
        });
        join_raw(thread);
    }
    let counts = [
        SYS_EXIT_HANDLERS.load(Ordering::SeqCst),
        SYS_EXIT_DROPS.load(Ordering::SeqCst),
        LATER_HANDLERS.load(Ordering::SeqCst),
        LATER_DROPS.load(Ordering::SeqCst),
    ];
    println!("sys_exit counts {counts:?}");
}

#[test]
fn sys_exit_runs_nothing_and_the_process_carries_on() {
    let (ok, stdout, stderr) = run_child("child_sys_exit", &[]);
    assert!(ok, "{stdout}\n{stderr}");
    // SYS_exit skips start_thread's teardown: no handler, no drop (the record and
    // its value are leaked); the 200 threads after it count exactly once each.
    assert!(stdout.contains("sys_exit counts [0, 0, 200, 200]"), "{stdout}\n{stderr}");
}

#[test]
fn sys_exit_of_the_main_thread_leaves_the_other_threads_working() {
    for env in [&[][..], &[("HIJACK_TLS", "off")][..]] {
        let (status, lines) = run_probe("sys-exit-main", env);
        let events: Vec<_> = lines.iter().filter(|l| !l.starts_with("status ")).collect();
        // Same outcome with and without the hijack: the worker's sequence runs once,
        // the main thread's never (it skipped exit()), and the process ends cleanly
        // when the worker, its last thread, exits.
        assert!(status.success(), "{env:?}: {status} {lines:?}");
        assert_eq!(
            events,
            ["worker returns", "handler worker parent", "drop worker parent"],
            "{env:?}"
        );
    }
}

static UNLOAD_HANDLERS: AtomicUsize = AtomicUsize::new(0);
static UNLOAD_DROPS: AtomicUsize = AtomicUsize::new(0);
static DISCARDED_HANDLERS: AtomicUsize = AtomicUsize::new(0);

/// `unload` followed by each exit: a normal return, `pthread_exit`, each with and
/// without a fresh record after the unload.
#[test]
fn unload_then_every_exit_path_runs_exactly_the_new_records_sequence() {
    for (exit_with_pthread_exit, register_again) in
        [(false, false), (false, true), (true, false), (true, true)]
    {
        UNLOAD_HANDLERS.store(0, Ordering::SeqCst);
        UNLOAD_DROPS.store(0, Ordering::SeqCst);
        DISCARDED_HANDLERS.store(0, Ordering::SeqCst);
        let thread = spawn_raw(move || {
            hijack_tls::set("old", Counted(&UNLOAD_DROPS));
            hijack_tls::at_exit(|| {
                DISCARDED_HANDLERS.fetch_add(1, Ordering::SeqCst);
            });
            assert_hijacked(hijack_tls::status());
            hijack_tls::unload();
            assert_eq!(UNLOAD_DROPS.load(Ordering::SeqCst), 1, "unload drops the value");
            if register_again {
                register_counted(&UNLOAD_HANDLERS, &UNLOAD_DROPS);
                assert_hijacked(hijack_tls::status());
            }
            if exit_with_pthread_exit {
                // SAFETY: ends this raw pthread; its frames hold nothing to drop.
                unsafe { common::unwinding::pthread_exit(0) };
            }
            0
        });
        join_raw(thread);
        let case = (exit_with_pthread_exit, register_again);
        let expected = usize::from(register_again);
        assert_eq!(DISCARDED_HANDLERS.load(Ordering::SeqCst), 0, "{case:?}");
        assert_eq!(UNLOAD_HANDLERS.load(Ordering::SeqCst), expected, "{case:?}");
        assert_eq!(UNLOAD_DROPS.load(Ordering::SeqCst), 1 + expected, "{case:?}");
    }
    // The stacks of those threads are recycled by glibc; threads on them still
    // leave through pthread_exit cleanly (no stale cleanup buffer is run).
    for _ in 0..8 {
        join_raw(spawn_raw(|| {
            register_counted(&UNLOAD_HANDLERS, &UNLOAD_DROPS);
            // SAFETY: ends this raw pthread; its frames hold nothing to drop.
            unsafe { common::unwinding::pthread_exit(0) }
        }));
    }
}

static CHAIN_RUNS: AtomicUsize = AtomicUsize::new(0);

/// An at-exit handler that forgets the record and registers the next link on a
/// fresh one, `left` more times.
fn chain(left: usize) {
    CHAIN_RUNS.fetch_add(1, Ordering::SeqCst);
    if left > 0 {
        hijack_tls::unload();
        hijack_tls::at_exit(move || chain(left - 1));
    }
}

/// Runs a chain of `links` records, each created by the previous one's handler
/// after an `unload`, during thread teardown; returns how many handlers ran.
fn chain_runs(links: usize) -> usize {
    CHAIN_RUNS.store(0, Ordering::SeqCst);
    join_raw(spawn_raw(move || {
        hijack_tls::at_exit(move || chain(links - 1));
        0
    }));
    CHAIN_RUNS.load(Ordering::SeqCst)
}

#[test]
fn a_record_recreated_during_teardown_runs_once() {
    // Created during the trampoline's sequence: armed by the thread_local!
    // destructor, which runs later. Created during that: a pthread key destructor.
    for links in 1..=3 {
        assert_eq!(chain_runs(links), links, "{links} records");
    }
}

#[test]
fn records_recreated_during_teardown_all_run_within_the_round_bound() {
    let links = hijack_tls::MAX_ROUNDS;
    assert_eq!(chain_runs(links), links);
}
