//! The walk's two seams, which the real process (`os/`) and the fakes (`fake.rs`)
//! implement: [`Objects`] (which loaded object a pc belongs to, and where its
//! unwind tables are) and [`Memory`] (bounds-checked reads of the stack being
//! walked, and where its first frames must be, [`StackTops`]).

use super::WalkError;

/// The unwind tables of one loaded object, as mapped in memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ObjectInfo<'a> {
    /// Lowest mapped address of the object (for diagnostics and identity).
    pub(crate) start: u64,
    /// The bytes of `.eh_frame_hdr`, starting at its first byte. May run past the
    /// section's end (up to the end of the mapping that contains it).
    pub(crate) eh_frame_hdr: &'a [u8],
    /// Address `.eh_frame_hdr` is mapped at (base for its pc- and data-relative
    /// pointers).
    pub(crate) eh_frame_hdr_addr: u64,
    /// The bytes of `.eh_frame`, starting at its first byte. Its length is not
    /// recorded anywhere, so this runs to the end of the mapping that contains it.
    pub(crate) eh_frame: &'a [u8],
    /// Address `.eh_frame` is mapped at (base for its pc-relative pointers).
    pub(crate) eh_frame_addr: u64,
    /// Whether this object is the C library (the one defining `pthread_create` and
    /// `start_thread`; see `os/libc_object.rs`).
    pub(crate) is_libc: bool,
}

/// Finds the object containing a code address.
pub(crate) trait Objects {
    /// The object containing `pc`, with its unwind tables.
    fn find(&mut self, pc: u64) -> Result<ObjectInfo<'_>, WalkError>;

    /// A value that changes whenever an object is loaded or unloaded, if this
    /// source keeps one: what [`find`](Self::find) said of a pc stays true while it
    /// holds, so recipes cached under it may be reused. `None` (the default) turns
    /// the recipe cache off for the walk.
    fn load_generation(&mut self) -> Option<u128> {
        None
    }

    /// Whether libc is the executable itself (a statically linked program): every
    /// frame is then in libc, and the walk tells the thread start's frames apart
    /// by other means (`target.rs`). `false` by default.
    fn libc_is_executable(&self) -> bool {
        false
    }
}

/// Reads 8-byte words of stack memory, refusing anything outside its bounds.
pub(crate) trait Memory {
    /// Reads the word at `addr`, which must be 8-byte aligned and in bounds.
    fn read_u64(&mut self, addr: u64) -> Result<u64, WalkError>;

    /// Where this stack's thread-start frames must be, from outside the CFI.
    fn stack_tops(&self) -> StackTops;
}

/// Checks that the 8-byte word at `addr` lies inside `[lo, hi)` and is aligned.
pub(crate) fn check_word(addr: u64, lo: u64, hi: u64) -> Result<(), WalkError> {
    if !addr.is_multiple_of(8) {
        return Err(WalkError::Misaligned { addr });
    }
    match addr.checked_add(8) {
        Some(end) if addr >= lo && end <= hi => Ok(()),
        _ => Err(WalkError::OutOfBounds { addr }),
    }
}

/// The CFAs a thread start's libc frames must have, where they are known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StackTops {
    /// `start_thread`'s CFA: the stack pointer glibc's clone child calls it with.
    /// `None` when the thread's descriptor is not on its stack (the main thread)
    /// or glibc's layout facts are not found.
    pub(crate) thread: Option<u64>,
    /// `__libc_start_main`'s CFA on the main thread: the stack pointer `_start`
    /// calls it with. `None` on other threads (`__libc_stack_end` is not on their
    /// stack).
    pub(crate) main: Option<u64>,
    /// The thread's start routine as `pthread_create` recorded it in the thread's
    /// descriptor (`struct pthread`'s `start_routine`, at the offset glibc gives
    /// libthread_db). `None` on the main thread or where that offset is unknown.
    pub(crate) start_routine: Option<u64>,
    /// The program's `main`, where the link-time table has it (a statically
    /// linked program: `arch/*/static_symbols.rs`).
    pub(crate) main_function: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_word_bounds() {
        assert_eq!(check_word(0x1000, 0x1000, 0x1010), Ok(()));
        assert_eq!(check_word(0x1008, 0x1000, 0x1010), Ok(()));
        assert_eq!(
            check_word(0x1010, 0x1000, 0x1010),
            Err(WalkError::OutOfBounds { addr: 0x1010 })
        );
        assert_eq!(check_word(0xff8, 0x1000, 0x1010), Err(WalkError::OutOfBounds { addr: 0xff8 }));
        assert_eq!(check_word(0x1004, 0x1000, 0x1010), Err(WalkError::Misaligned { addr: 0x1004 }));
        let top = u64::MAX - 7;
        assert_eq!(check_word(top, 0, u64::MAX), Err(WalkError::OutOfBounds { addr: top }));
    }
}
