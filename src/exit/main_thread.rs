//! Whether the calling thread is the process's main thread: the exit sequence
//! and its fallback triggers treat the main thread's `exit()` apart.

/// Whether this is the process's main thread (its thread ID is the process ID).
#[cfg(target_os = "linux")]
pub(crate) fn is_main_thread() -> bool {
    // SAFETY: gettid and getpid have no preconditions.
    let (tid, pid) = unsafe { (libc::gettid(), libc::getpid()) };
    // Both fail (-1) under a seccomp filter refusing them: then no thread counts
    // as the main one (its late records use the pthread key), rather than all.
    tid > 0 && tid == pid
}

/// Elsewhere the main thread is not told apart: its late records use the pthread key.
#[cfg(not(target_os = "linux"))]
pub(crate) fn is_main_thread() -> bool {
    false
}
