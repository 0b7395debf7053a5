//! Which loaded object a pc belongs to, and where its unwind tables are.

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
    /// `start_thread`; see `libc_object`).
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

    /// The first address of the function containing `pc` (its FDE's
    /// `initial_location`).
    fn function_start(&mut self, pc: u64) -> Result<u64, WalkError> {
        let object = self.find(pc)?;
        super::cfi::fde::function_start(&object, pc)
    }
}
