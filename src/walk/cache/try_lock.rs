//! A lock that the walk only ever tries and never waits for: the row cache's sets.
//!
//! Unlike `std::sync::Mutex`, releasing it is a plain store (a mutex swaps, to see
//! whether anyone waits), so a cache lookup costs one atomic read-modify-write, not
//! two; and nothing is poisoned, since nothing that runs under it can panic.

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// A value behind a flag that at most one [`Guard`] holds at a time.
pub(crate) struct TryLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a `Guard`, of which at most one exists
// at a time (the flag's `Acquire` swap and `Release` store order the accesses), so
// sharing the lock between threads only ever moves the value between them.
unsafe impl<T: Send> Sync for TryLock<T> {}

impl<T> TryLock<T> {
    /// An unlocked `value`.
    pub(crate) const fn new(value: T) -> Self {
        Self { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    /// The value, if no one holds it right now. Never waits.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<Guard<'_, T>> {
        // Not `then_some`: a guard built for a lock someone else holds would
        // release it when dropped.
        (!self.locked.swap(true, Ordering::Acquire))
            .then(|| Guard { lock: self, _value: PhantomData })
    }

    /// The value, yielding the CPU until it is free (tests and fuzzing only: the
    /// walk itself never waits).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn lock(&self) -> Guard<'_, T> {
        loop {
            if let Some(guard) = self.try_lock() {
                return guard;
            }
            std::thread::yield_now();
        }
    }
}

/// Exclusive access to a [`TryLock`]'s value until dropped.
pub(crate) struct Guard<'a, T> {
    lock: &'a TryLock<T>,
    /// Makes the guard `Sync` only where `T` is, like `&mut T` (it hands out `&T`).
    _value: PhantomData<&'a mut T>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one (see `TryLock`'s `Sync`), so no
        // mutable reference to the value exists while this shared one lives.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard is the only one, and `&mut self` makes this the only
        // reference made through it.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_guard_at_a_time() {
        let lock = TryLock::new(1);
        let mut guard = lock.try_lock().expect("free");
        assert!(lock.try_lock().is_none(), "held");
        *guard += 1;
        drop(guard);
        assert_eq!(*lock.try_lock().expect("free again"), 2);
    }

    #[test]
    fn a_failed_try_leaves_the_holder_holding() {
        let lock = TryLock::new(());
        let held = lock.try_lock().expect("free");
        assert!(lock.try_lock().is_none());
        assert!(lock.try_lock().is_none(), "still held after a failed try");
        drop(held);
        assert!(lock.try_lock().is_some());
    }

    #[test]
    fn threads_take_turns() {
        static LOCK: TryLock<u64> = TryLock::new(0);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..10_000 {
                        *LOCK.lock() += 1;
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(*LOCK.lock(), 40_000);
    }
}
