//! Review attack: a `pthread_exit` inside a hook while the main thread's exit
//! sequence runs from glibc's forced-unwind stop function. On the main thread the
//! crate's old-style cleanup buffer lives below the stack, so glibc's
//! `unwind_stop` runs it at the *first* step of the unwind (NOTES.md, "pthread_exit
//! and pthread_cancel"): the outer unwind goes on afterwards, through the main
//! thread's frames. A nested `__pthread_unwind` reuses the thread's one
//! `_Unwind_Exception` (`self->exc`, glibc `nptl/unwind.c`) and overwrites its
//! `private_2` (the stop argument) with the crate's stack cancel buffer; libgcc's
//! `_Unwind_Resume` re-reads it after the next landing pad (`unwind.inc`,
//! `_Unwind_ForcedUnwind_Phase2`), so the outer unwind continues with a dangling
//! stop argument. Runs without libtest (`harness = false`).

#![no_main]

mod common;

use common::unwinding::pthread_exit;

const CHILD: &str = "HIJACK_TLS_ATTACK_MAIN_CHILD";

fn say(text: &str) {
    let line = format!("{text}\n");
    // SAFETY: valid buffer of the given length.
    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
}

/// Says its text when dropped.
struct Said(&'static str);

impl Drop for Said {
    fn drop(&mut self) {
        say(self.0);
    }
}

/// The main thread registers a plain hook (and, with `nested`, one calling
/// `pthread_exit(99)`), keeps the process alive with a second thread, and leaves
/// by `pthread_exit(5)` from a frame with a local to drop.
fn child(nested: bool) -> i32 {
    if nested {
        hijack_tls::at_exit(|| {
            say("nested hook starts");
            // SAFETY: every frame up to the crate's cancel buffer is Rust.
            unsafe { pthread_exit(99) }
        });
    }
    hijack_tls::at_exit(|| say("plain hook ran"));
    say(&format!("status: {}", hijack_tls::status()));
    std::thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_millis(300));
        say("last thread ends");
    });
    leave_with_a_local()
}

#[inline(never)]
fn leave_with_a_local() -> i32 {
    let _local = Said("main local dropped");
    let _second = Said("second local dropped");
    // SAFETY: every frame up to the C main is Rust or "C-unwind".
    unsafe { pthread_exit(5) }
}

fn run_child(mode: &str) -> (Option<i32>, Vec<String>, String) {
    let mut command = common::rerun_self();
    command.env(CHILD, mode);
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    (
        output.status.code(),
        stdout.lines().map(str::to_owned).collect(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The C `main` itself: std's `lang_start` would catch the forced unwind.
#[unsafe(no_mangle)]
extern "C-unwind" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    match std::env::var(CHILD).as_deref() {
        Ok("control") => return child(false),
        Ok("nested") => return child(true),
        _ => {}
    }
    let mut failed = 0;
    for mode in ["control", "nested"] {
        let (code, lines, err) = run_child(mode);
        let ok = code == Some(0)
            && lines.iter().any(|l| l == "plain hook ran")
            && lines.iter().any(|l| l == "main local dropped")
            && lines.iter().any(|l| l == "second local dropped")
            && lines.last().map(String::as_str) == Some("last thread ends");
        if ok {
            println!("test hostile_main_thread::{mode} ... ok");
        } else {
            println!("test hostile_main_thread::{mode} ... FAILED: exit {code:?} {lines:?}\n{err}");
            failed += 1;
        }
    }
    println!("\ntest result: {}", if failed == 0 { "ok" } else { "FAILED" });
    i32::from(failed != 0)
}
