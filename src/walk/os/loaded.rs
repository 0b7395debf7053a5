//! The real [`Objects`]: the loaded objects of this process, found with glibc's
//! `_dl_find_object`, or `dl_iterate_phdr` where that is missing.
//!
//! In a fork child whose loader write lock may be held (`after_fork`), nothing
//! here calls `dl_iterate_phdr`: objects are found with `_dl_find_object` only,
//! and there is no load generation, so the walk uses no recipe.

use super::after_fork;
use super::find_object::{self, FindObjectFn};
use super::libc_object;
use super::mapped::Mapped;
use super::phdr;
use crate::walk::{ObjectInfo, Objects, WalkError};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How objects are looked up.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Strategy {
    /// glibc 2.35+ `_dl_find_object`: lock-free and async-signal-safe.
    FindObject(FindObjectFn),
    /// `dl_iterate_phdr`: takes the loader lock.
    IteratePhdr,
}

impl Strategy {
    /// `_dl_find_object` if this glibc has it, else `dl_iterate_phdr`.
    pub(crate) fn best() -> Self {
        find_object::resolve().map_or(Strategy::IteratePhdr, Strategy::FindObject)
    }

    /// Whether lookups take no lock (so they are safe in any fork child).
    fn is_lock_free(self) -> bool {
        matches!(self, Strategy::FindObject(_))
    }

    /// The object containing `pc`.
    fn find(self, pc: u64) -> Result<Mapped, WalkError> {
        match self {
            Strategy::FindObject(f) => find_object::find(f, pc),
            Strategy::IteratePhdr => phdr::find(pc),
        }
    }
}

/// Not determined yet.
const LIBC_UNKNOWN: u64 = 0;
/// Could not be determined: no object counts as libc, so no walk succeeds.
const LIBC_NOT_FOUND: u64 = u64::MAX;

/// The `.eh_frame_hdr` address of libc, `LIBC_UNKNOWN` or `LIBC_NOT_FOUND`.
/// Every strategy reports the same header address, so it is one cache for all.
static LIBC_ID: AtomicU64 = AtomicU64::new(LIBC_UNKNOWN);

/// Whether libc's `pthread_create` lies in the main program's segments: the
/// program is statically linked, and the executable is libc. Stored before
/// `LIBC_ID` (Release there, Acquire when read with it).
static LIBC_IN_EXECUTABLE: AtomicBool = AtomicBool::new(false);

/// The process's loaded objects.
#[derive(Debug)]
pub(crate) struct LoadedObjects {
    /// The lookup used.
    strategy: Strategy,
    /// libc's identity (its `.eh_frame_hdr` address).
    libc: u64,
    /// Whether libc is the executable (statically linked).
    libc_is_executable: bool,
    /// The last object found; `find` hands out slices borrowed from it.
    last: Option<Mapped>,
    /// Whether `dl_iterate_phdr` may wait forever here (a fork child whose parent
    /// may have had another thread inside it): it is then never called.
    loader_lock_may_be_held: bool,
}

impl LoadedObjects {
    /// The best lookup available. The first call in the process resolves
    /// `_dl_find_object` and libc with `dlopen`/`dlsym`/`_dl_find_object`, which is not
    /// async-signal-safe; later calls are.
    pub(crate) fn new() -> Self {
        Self::with_strategy(Strategy::best())
    }

    /// A lookup with the given strategy.
    pub(crate) fn with_strategy(strategy: Strategy) -> Self {
        Self::in_process_state(strategy, after_fork::loader_lock_may_be_held())
    }

    /// A lookup with the given strategy, told whether `dl_iterate_phdr` may wait
    /// forever in this process (tests pass it; the walk reads `after_fork`).
    pub(crate) fn in_process_state(strategy: Strategy, loader_lock_may_be_held: bool) -> Self {
        let mut libc = LIBC_ID.load(Ordering::Acquire);
        let lookup_allowed = !loader_lock_may_be_held || strategy.is_lock_free();
        if libc == LIBC_UNKNOWN && lookup_allowed {
            // libc is the object holding glibc's own `pthread_create` (and
            // `start_thread`), found in libc's scope: no interposer, sanitizer
            // or canonical PLT stub can stand in for it (`libc_object`).
            let marker = libc_object::pthread_create_address();
            libc = strategy.find(marker).map_or(LIBC_NOT_FOUND, |m| m.id());
            LIBC_IN_EXECUTABLE.store(crate::walk::in_main_program(marker), Ordering::Relaxed);
            LIBC_ID.store(libc, Ordering::Release);
        }
        let libc_is_executable = LIBC_IN_EXECUTABLE.load(Ordering::Relaxed);
        LoadedObjects { strategy, libc, libc_is_executable, last: None, loader_lock_may_be_held }
    }
}

impl Objects for LoadedObjects {
    /// Consecutive frames are mostly in one object: with `_dl_find_object`, a pc
    /// inside the last object's mapping skips the loader lookup (the same range the
    /// lookup searches, so the same answer; the object is still loaded, as it has
    /// frames on this stack). Not with `dl_iterate_phdr`, whose range may span
    /// unmapped gaps between segments where another mapping can sit.
    fn find(&mut self, pc: u64) -> Result<ObjectInfo<'_>, WalkError> {
        let reuse = self.strategy.is_lock_free();
        if self.loader_lock_may_be_held && !reuse {
            return Err(WalkError::LoaderLockAfterFork);
        }
        let mapped = match self.last {
            Some(last) if reuse && last.covers(pc) => last,
            _ => self.strategy.find(pc)?,
        };
        let mapped = self.last.insert(mapped);
        Ok(mapped.info(mapped.id() == self.libc))
    }

    /// glibc's counts of loads and unloads, whatever the lookup strategy; none
    /// where reading them could wait forever (no other lock-free source of them
    /// exists: `_dl_find_object`'s own version counter is private to ld.so).
    fn libc_is_executable(&self) -> bool {
        self.libc_is_executable
    }

    fn load_generation(&mut self) -> Option<u128> {
        if self.loader_lock_may_be_held {
            return None;
        }
        phdr::load_counts()
    }
}
