//! CPU affinity for the thread workloads: which CPUs the process may use, binding
//! a thread to one, and running a measurement on one CPU.

/// The calling thread's CPU set, if it can be read.
fn affinity() -> Option<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    (rc == 0).then_some(set)
}

/// Sets the calling thread's CPU set; whether that worked.
fn set_affinity(set: &libc::cpu_set_t) -> bool {
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(set), set) == 0 }
}

/// The CPUs the calling thread may run on.
pub fn allowed() -> Vec<usize> {
    let Some(set) = affinity() else { return Vec::new() };
    // SAFETY: CPU_ISSET reads a bit of the valid set.
    (0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect()
}

/// Binds the calling thread (and the threads it starts later) to `cpu`; whether
/// that worked.
pub fn bind_to(cpu: usize) -> bool {
    // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t; the libc crate's CPU_SET panics rather
    // than write outside it.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    set_affinity(&set)
}

/// Runs `f` with the calling thread, and the threads it starts, bound to the CPU it
/// is on, then restores the thread's CPU set. `None` if the set cannot be changed.
///
/// For the spawn rows: unbound, where the child lands and how deeply the idle CPU
/// sleeps make one spawn+join a mixture of modes tens of µs apart, whose median
/// cannot resolve a µs; bound, the child runs when the parent blocks in `join`,
/// one mode, and a fixed cost in the child shows up as itself (NOTES.md, fourth
/// pass).
pub fn on_one_cpu<R>(f: impl FnOnce() -> R) -> Option<R> {
    let before = affinity()?;
    // SAFETY: sched_getcpu has no preconditions.
    let cpu = usize::try_from(unsafe { libc::sched_getcpu() }).ok()?;
    if !bind_to(cpu) {
        return None;
    }
    let result = f();
    set_affinity(&before);
    Some(result)
}
