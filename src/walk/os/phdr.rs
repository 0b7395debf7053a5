//! `dl_iterate_phdr` fallback for glibc without `_dl_find_object` (before 2.35):
//! scans the loaded objects' program headers for the `PT_LOAD` holding the pc
//! and the object's `PT_GNU_EH_FRAME`. Takes the loader lock, so it is not
//! async-signal-safe.

use super::mapped::Mapped;
use super::segments::Segments;
use crate::walk::WalkError;
use core::ffi::{c_int, c_void};
use libc::dl_phdr_info;

/// The search state passed through `dl_iterate_phdr`.
struct Search {
    /// The address looked up.
    pc: u64,
    /// Set by the callback for the object containing `pc`.
    found: Option<Result<Mapped, WalkError>>,
    /// That object's segments, set with `found`.
    segments: Option<Segments>,
}

/// The object containing `pc`.
pub(super) fn find(pc: u64) -> Result<Mapped, WalkError> {
    search(pc).found.unwrap_or(Err(WalkError::NoObject { pc }))
}

/// The segments of the object containing `pc`, as [`find`] sees them (for the
/// doctor).
pub(super) fn segments_of(pc: u64) -> Option<Segments> {
    search(pc).segments
}

/// Runs the search for `pc` over every loaded object.
fn search(pc: u64) -> Search {
    let mut search = Search { pc, found: None, segments: None };
    // SAFETY: `callback` matches the expected signature and only uses `data` as
    // the `Search` passed here, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(callback), (&raw mut search).cast()) };
    search
}

/// The loader's counts of objects loaded and unloaded so far, `dlpi_adds` in the
/// high half and `dlpi_subs` in the low one (glibc 2.3.4+), if it reports them:
/// read from the first object `dl_iterate_phdr` visits, under the loader lock.
///
/// Both, because glibc computes `dlpi_subs` as `dlpi_adds` minus the objects
/// loaded now, and counts the objects of a `dlmopen` namespace once per object
/// in it: a load there lowers `dlpi_subs`, so alone it can come back to an old
/// value after an unload. `dlpi_adds` grows with every load, and while it stands
/// still any unload raises `dlpi_subs`. So the pair is unchanged only if nothing
/// was loaded or unloaded.
pub(super) fn load_counts() -> Option<u128> {
    let mut count: Option<u128> = None;
    // SAFETY: `count_callback` matches the expected signature and only uses `data`
    // as the `Option<u128>` passed here, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(count_callback), (&raw mut count).cast()) };
    count
}

/// Stores the load counts of the `dl_phdr_info` it gets and stops the iteration.
///
/// # Safety
/// `info` must point to a valid `dl_phdr_info` of `size` bytes and `data` to an
/// `Option<u128>`, as `dl_iterate_phdr` guarantees for the call in [`load_counts`].
unsafe extern "C" fn count_callback(
    info: *mut dl_phdr_info,
    size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: per this function's contract.
    let count = unsafe { &mut *data.cast::<Option<u128>>() };
    // Older loaders pass a shorter struct without the counts: only `size` bytes
    // are read, through the raw pointer, with no reference to the whole struct.
    let has_counts = size >= core::mem::offset_of!(dl_phdr_info, dlpi_subs) + size_of::<u64>();
    *count = has_counts.then(|| {
        // SAFETY: both fields lie within the `size` valid bytes checked above.
        let (adds, subs) = unsafe { ((*info).dlpi_adds, (*info).dlpi_subs) };
        u128::from(adds) << 64 | u128::from(subs)
    });
    1
}

/// Examines one object; stops the iteration (returns 1) at the one holding the pc.
///
/// # Safety
/// `info` must point to a valid `dl_phdr_info` and `data` to a `Search`, as
/// `dl_iterate_phdr` guarantees for the call made in [`find`].
unsafe extern "C" fn callback(info: *mut dl_phdr_info, _size: usize, data: *mut c_void) -> c_int {
    // SAFETY: per this function's contract.
    let (info, search) = unsafe { (&*info, &mut *data.cast::<Search>()) };
    if info.dlpi_phdr.is_null() {
        return 0;
    }
    // SAFETY: glibc's `dlpi_phdr` points to `dlpi_phnum` program headers that
    // stay valid during the callback.
    let phdrs =
        unsafe { core::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    let segments = Segments::from_headers(info.dlpi_addr, phdrs);
    let pc = search.pc;
    if !segments.contains(pc) {
        return 0;
    }
    let found = segments.extent().unwrap_or((0, 0));
    search.segments = Some(segments);
    search.found = Some(match segments.eh_frame_hdr() {
        None => Err(WalkError::NoEhFrameHdr { pc }),
        // SAFETY: a loaded object's readable `PT_LOAD` segment is mapped readable
        // for its whole `p_memsz` (past `p_filesz` it is zero-filled), and the
        // object stays loaded while it has frames on this stack.
        Some(hdr) => unsafe { Mapped::new(pc, found, &segments, hdr) },
    });
    1
}
