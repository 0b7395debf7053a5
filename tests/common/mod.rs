//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod libgcc;
pub mod tls_probe;
#[path = "../fixtures/unwinding.rs"]
pub mod unwinding;

use std::process::Command;
use std::sync::{Arc, Mutex};

/// Whether the target is one the hijack supports.
pub const HIJACK_TARGET: bool = cfg!(all(
    target_os = "linux",
    target_env = "gnu",
    any(target_arch = "x86_64", target_arch = "aarch64")
));

/// Whether this build and target hijack threads (so the tests must see it).
pub const EXPECT_HIJACK: bool = cfg!(feature = "hijack") && HIJACK_TARGET;

/// An ordered log of events, shareable across threads.
#[derive(Clone, Debug, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, event: impl Into<String>) {
        self.0.lock().unwrap().push(event.into());
    }

    pub fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn count(&self, event: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|e| *e == event).count()
    }
}

/// A value that logs `drop <name>` when dropped.
#[derive(Debug)]
pub struct Tracked {
    pub name: String,
    pub log: Log,
}

impl Tracked {
    pub fn new(name: &str, log: &Log) -> Self {
        Self { name: name.to_owned(), log: log.clone() }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.log.push(format!("drop {}", self.name));
    }
}

/// Calls `f` from `depth` frames deeper than the caller (each frame kept by
/// `black_box`), and returns `depth`.
#[inline(never)]
pub fn recurse_then(depth: usize, f: &mut dyn FnMut()) -> usize {
    if depth == 0 {
        f();
        return 0;
    }
    1 + std::hint::black_box(recurse_then(depth - 1, f))
}

/// Runs `f` on a fresh std thread and waits for it to exit.
pub fn on_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::spawn(f).join().expect("thread panicked")
}

/// Whether this process is a child started by [`run_child`] for `case`.
pub fn is_child(case: &str) -> bool {
    std::env::var("HIJACK_TLS_TEST_CHILD").as_deref() == Ok(case)
}

/// A command that runs this test executable again: through cargo's target runner
/// when one is set (`qemu-aarch64 -cpu max` when cross-testing aarch64; the
/// emulated process cannot `exec` a foreign binary itself, and qemu passes the
/// environment, this variable included, on to the guest).
pub fn rerun_self() -> Command {
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

/// This test binary again, running only the test `case` as the child of `case`,
/// with `env` added.
fn child_command(case: &str, env: &[(&str, &str)]) -> Command {
    let mut command = rerun_self();
    command.args([case, "--exact", "--nocapture", "--test-threads=1"]);
    command.env("HIJACK_TLS_TEST_CHILD", case);
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Runs the test named `case` of this test binary in a child process and returns
/// (exit success, stdout, stderr). The child test body must start with
/// `if !is_child("case") { return; }`.
pub fn run_child(case: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = child_command(case, env);
    let output = command.output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// [`run_child`] bounded by `timeout`: returns (exit code, stdout, stderr), the code
/// `None` when the child was killed on timeout (or ended by a signal). The child
/// leads a process group of its own, and a timeout kills the whole group, so a
/// hung grandchild (a `fork` child) cannot keep the output pipes open.
pub fn run_child_timeout(
    case: &str,
    env: &[(&str, &str)],
    timeout: std::time::Duration,
) -> (Option<i32>, String, String) {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    let mut command = child_command(case, env);
    command.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = command.spawn().unwrap();
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = std::time::Instant::now() + timeout;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if std::time::Instant::now() > deadline {
            // SAFETY: signals the process group this function created.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    (code, stdout.join().unwrap(), stderr.join().unwrap())
}

/// A child's own stdout lines: the first may share a line with libtest's
/// `test <name> ... `, which is cut off.
pub fn child_lines(out: &str) -> impl Iterator<Item = &str> {
    out.lines().map(|line| match line.split_once(" ... ") {
        Some((head, rest)) if head.starts_with("test ") => rest,
        _ => line,
    })
}
