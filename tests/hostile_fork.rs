//! Hostile fork: the parent forks while another of its threads is inside
//! `dl_iterate_phdr`, holding the loader's write lock (`_dl_load_write_lock`),
//! which glibc's `fork` does not reset (posix/fork.c resets `dl_load_lock` and
//! `dl_load_tls_lock` only). The child's first use must finish, and be hijacked
//! where that is sound (glibc 2.35+, `_dl_find_object`).
//!
//! Each case runs in a child test process under a timeout (a hang fails the test,
//! never CI); inside it, the fork child has an `alarm` of its own and is waited
//! for with a deadline.

mod common;
#[path = "fixtures/support.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{EXPECT_HIJACK, is_child, run_child_timeout};
use hijack_tls::Status;
use support::{join_raw, say_to, spawn_raw};

/// Set by the holder thread once it is inside `dl_iterate_phdr`'s callback.
static HOLDING: AtomicBool = AtomicBool::new(false);
/// Tells the holder thread to leave the callback (and release the lock).
static RELEASE: AtomicBool = AtomicBool::new(false);

/// Stays in the first callback, with the loader's write lock held, until released.
unsafe extern "C" fn hold_loader_lock(
    _info: *mut libc::dl_phdr_info,
    _size: usize,
    _data: *mut libc::c_void,
) -> libc::c_int {
    HOLDING.store(true, Ordering::SeqCst);
    while !RELEASE.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    1
}

/// What the fork child reports as its exit code.
const CHILD_HIJACKED: i32 = 0;
/// The fork child's first use finished with a fallback.
const CHILD_FELL_BACK: i32 = 1;

/// Waits for the fork child `child` at most `limit`, killing it then; its exit
/// code, or `None` if it was killed or died of a signal.
fn wait_bounded(child: libc::pid_t, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child without blocking.
        let rc = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
        if rc == child {
            return libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        }
        assert_eq!(rc, 0, "waitpid");
        if Instant::now() > deadline {
            // SAFETY: our own child.
            unsafe { libc::kill(child, libc::SIGKILL) };
            // SAFETY: reaps it.
            unsafe { libc::waitpid(child, &mut status, 0) };
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// In this process: a thread holds the loader's write lock, a fresh raw thread
/// (no record yet) forks, and the fork child's only thread does its first use,
/// prints `child status: <status>` to stdout and exits with `CHILD_HIJACKED` or
/// `CHILD_FELL_BACK`. Returns the fork child's exit code (`None`: hung, killed).
fn fork_while_loader_lock_held() -> Option<i32> {
    let holder = std::thread::spawn(|| {
        // SAFETY: the callback matches the expected signature and ignores `data`.
        unsafe { libc::dl_iterate_phdr(Some(hold_loader_lock), std::ptr::null_mut()) }
    });
    while !HOLDING.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let forker = spawn_raw(|| {
        // SAFETY: the child only calls the crate, writes with write(2) and _exits;
        // it never touches std's stdout lock or anything else another thread held.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork");
        if child == 0 {
            // SAFETY: a safety net: SIGALRM's default action ends a hung child.
            unsafe { libc::alarm(20) };
            let id = hijack_tls::id();
            let status = hijack_tls::status();
            say_to(1, &format!("child status: {status} (id {id})"));
            let code = match status {
                Status::Hijacked { .. } => CHILD_HIJACKED,
                _ => CHILD_FELL_BACK,
            };
            // SAFETY: ends the child at once, running nothing of the parent's.
            unsafe { libc::_exit(code) };
        }
        wait_bounded(child, Duration::from_secs(10)).map_or(usize::MAX, |code| code as usize)
    });
    let code = join_raw(forker);
    RELEASE.store(true, Ordering::SeqCst);
    holder.join().unwrap();
    (code != usize::MAX).then_some(code as i32)
}

/// The case body: runs the fork and turns its outcome into this process's exit.
fn child_case(expect_hijack: bool) {
    match fork_while_loader_lock_held() {
        None => {
            say_to(1, "fork child hung");
            std::process::exit(2);
        }
        Some(code) => {
            let expected = if expect_hijack { CHILD_HIJACKED } else { CHILD_FELL_BACK };
            std::process::exit(if code == expected { 0 } else { 3 });
        }
    }
}

/// Runs `case` in a child test process under a 60 s bound and checks it passed.
fn run_case(case: &str, env: &[(&str, &str)]) {
    let (code, out, err) = run_child_timeout(case, env, Duration::from_secs(60));
    assert_eq!(code, Some(0), "case {case}\nstdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("child status: "), "stdout:\n{out}");
}

/// The fork child's first use finishes, and is hijacked: `_dl_find_object` finds
/// objects without the loader lock, and no `dl_iterate_phdr` runs in the child.
#[test]
fn first_use_in_fork_child_while_loader_lock_held() {
    const CASE: &str = "first_use_in_fork_child_while_loader_lock_held";
    if !is_child(CASE) {
        return run_case(CASE, &[]);
    }
    child_case(EXPECT_HIJACK);
}

/// The control: the same fork with the hijack off finishes (so a hang above is
/// the crate's, not the scaffolding's).
#[test]
fn first_use_in_fork_child_while_loader_lock_held_hijack_off() {
    const CASE: &str = "first_use_in_fork_child_while_loader_lock_held_hijack_off";
    if !is_child(CASE) {
        return run_case(CASE, &[("HIJACK_TLS", "off")]);
    }
    child_case(false);
}
