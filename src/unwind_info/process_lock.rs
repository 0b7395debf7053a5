//! The lock that serializes trampoline announcements. It records which process
//! took it, so a fork child that copied it held (another thread of the parent was
//! announcing at the fork, and does not exist in the child) gives up at once
//! instead of waiting forever for a release that never comes.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

/// A value behind a lock whose word holds the pid of the process that holds it
/// (0 when free).
pub(crate) struct ProcessLock<T> {
    holder: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a `Guard`, of which at most one exists
// at a time in a process (the holder word's `Acquire` CAS and `Release` store order
// the accesses), so sharing the lock between threads only moves the value.
unsafe impl<T: Send> Sync for ProcessLock<T> {}

/// The lock was copied held by a fork: the parent thread that held it does not
/// exist in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeldAtFork;

impl<T> ProcessLock<T> {
    /// A free lock around `value`.
    pub(crate) const fn new(value: T) -> Self {
        Self { holder: AtomicU32::new(0), value: UnsafeCell::new(value) }
    }

    /// The value, once no other thread of this process holds it (yielding the CPU
    /// meanwhile: holders only announce, a few hundred µs at most). Fails if the
    /// holder is another process: this one is a fork child that copied it held.
    pub(crate) fn lock(&self) -> Result<Guard<'_, T>, HeldAtFork> {
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() } as u32;
        loop {
            match self.holder.compare_exchange(0, pid, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(Guard { lock: self }),
                Err(holder) if holder != pid => return Err(HeldAtFork),
                Err(_) => std::thread::yield_now(),
            }
        }
    }
}

/// Access to the value; releases the lock when dropped (also while unwinding).
pub(crate) struct Guard<'a, T> {
    lock: &'a ProcessLock<T>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one in the process (see `Sync` above).
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this borrow unique.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.lock.holder.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    // The fork case is tested through `announce` (unwind_info's tests).
    #[test]
    fn excludes_threads_of_one_process() {
        let lock = Arc::new(ProcessLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = Arc::clone(&lock);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        let mut value = lock.lock().expect("same process");
                        // A torn increment would lose counts if two held it at once.
                        let seen = *value;
                        std::hint::black_box(&mut *value);
                        *value = seen + 1;
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().expect("thread"));
        assert_eq!(*lock.lock().expect("free"), 40_000);
    }
}
