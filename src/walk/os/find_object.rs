//! glibc's `_dl_find_object` (glibc 2.35+): the object containing an address and
//! its `PT_GNU_EH_FRAME`, without the loader lock. glibc documents it as
//! async-signal-safe; libgcc's unwinder uses it the same way.

use super::headers;
use super::mapped::Mapped;
use crate::walk::WalkError;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicUsize, Ordering};

/// glibc's `struct dl_find_object` (`<dlfcn.h>`) for x86_64 and aarch64, where
/// `bits/dl_find_object.h` sets neither `DLFO_STRUCT_HAS_EH_DBASE` nor
/// `DLFO_STRUCT_HAS_EH_COUNT`, so no field sits between `dlfo_eh_frame` and the
/// reserved words.
#[repr(C)]
pub(crate) struct DlFindObject {
    /// `unsigned long long dlfo_flags`: no flags are defined yet.
    dlfo_flags: u64,
    /// Beginning of the object's mapping.
    dlfo_map_start: *mut c_void,
    /// End of the object's mapping.
    dlfo_map_end: *mut c_void,
    /// The object's `struct link_map`.
    dlfo_link_map: *mut c_void,
    /// Start of `PT_GNU_EH_FRAME`, that is `.eh_frame_hdr`; null if none.
    dlfo_eh_frame: *mut c_void,
    /// `__dflo_reserved[7]` (glibc's spelling).
    reserved: [u64; 7],
}

/// The C signature of `_dl_find_object`.
pub(super) type FindObjectFn = unsafe extern "C" fn(*mut c_void, *mut DlFindObject) -> c_int;

/// Not looked up yet.
const UNRESOLVED: usize = 0;
/// Looked up and absent (glibc before 2.35).
const ABSENT: usize = 1;

/// The resolved `_dl_find_object`, `ABSENT`, or `UNRESOLVED`.
static FIND_OBJECT: AtomicUsize = AtomicUsize::new(UNRESOLVED);

/// `_dl_find_object`, looked up on first call (`dlsym(RTLD_DEFAULT, ..)`, or the
/// static link's weak table: `crate::libc_symbol`). Not linked directly: a strong
/// reference would make every dynamic program need glibc 2.35.
///
/// The first call is not async-signal-safe (`dlsym`); later calls only load an
/// atomic. Racing first calls resolve the same address, so `Relaxed` suffices.
pub(super) fn resolve() -> Option<FindObjectFn> {
    let mut addr = FIND_OBJECT.load(Ordering::Relaxed);
    if addr == UNRESOLVED {
        let sym = crate::libc_symbol::find(c"_dl_find_object");
        addr = sym.map_or(ABSENT, |sym| sym as usize);
        FIND_OBJECT.store(addr, Ordering::Relaxed);
    }
    if addr == ABSENT {
        return None;
    }
    // SAFETY: `addr` is the address glibc exports as `_dl_find_object`, whose C
    // prototype `int _dl_find_object(void *, struct dl_find_object *)` is exactly
    // `FindObjectFn` with the struct above.
    Some(unsafe { core::mem::transmute::<usize, FindObjectFn>(addr) })
}

/// Where the segments of an object found by `_dl_find_object` were read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SegmentSource {
    /// The main program's headers, from the auxiliary vector (`_dl_find_object`
    /// gives one range per segment for a main program with gaps).
    MainProgram,
    /// The ELF header at the start of the object's mapping.
    MappingStart,
}

/// What `_dl_find_object` and the headers in memory say about the object holding
/// a pc: the range glibc reported, the segments, where they came from, and
/// `.eh_frame_hdr`'s address.
pub(super) struct Located {
    /// `[dlfo_map_start, dlfo_map_end)`.
    pub(super) range: (u64, u64),
    /// The object's loaded segments.
    pub(super) segments: super::segments::Segments,
    /// Where [`segments`](Self::segments) were read from.
    pub(super) source: SegmentSource,
    /// `dlfo_eh_frame`, never null.
    pub(super) eh_frame_hdr: u64,
}

/// The object containing `pc`, found with `find`.
pub(super) fn find(find: FindObjectFn, pc: u64) -> Result<Mapped, WalkError> {
    let found = locate(find, pc)?;
    // SAFETY: the segments are the object's loaded `PT_LOAD`s, read from the
    // headers the loader mapped them by; readable ones are mapped `PROT_READ`.
    unsafe { Mapped::new(pc, found.range, &found.segments, found.eh_frame_hdr) }
}

/// The range, segments and `.eh_frame_hdr` of the object containing `pc`.
pub(super) fn locate(find: FindObjectFn, pc: u64) -> Result<Located, WalkError> {
    let mut dlfo = DlFindObject {
        dlfo_flags: 0,
        dlfo_map_start: core::ptr::null_mut(),
        dlfo_map_end: core::ptr::null_mut(),
        dlfo_link_map: core::ptr::null_mut(),
        dlfo_eh_frame: core::ptr::null_mut(),
        reserved: [0; 7],
    };
    // SAFETY: `find` is glibc's `_dl_find_object` (see `resolve`); it only looks
    // the address up and writes the struct, which is a valid local.
    let rc = unsafe { find(pc as usize as *mut c_void, &mut dlfo) };
    if rc != 0 {
        return Err(WalkError::NoObject { pc });
    }
    if dlfo.dlfo_eh_frame.is_null() {
        return Err(WalkError::NoEhFrameHdr { pc });
    }
    let start = dlfo.dlfo_map_start as u64;
    let end = dlfo.dlfo_map_end as u64;
    // `_dl_find_object` reports the whole span of a shared object, holes between
    // its segments included (elf/dl-find_object.c), and no program headers: they
    // come from memory, and bound every slice to readable segments.
    let (segments, source) = match headers::main_program().filter(|main| main.contains(pc)) {
        Some(main) => (main, SegmentSource::MainProgram),
        None if dlfo.dlfo_link_map.is_null() => return Err(WalkError::BadProgramHeaders { pc }),
        None => {
            // SAFETY: `dlfo_link_map` is the object's `struct link_map`, whose first
            // member is the public `ElfW(Addr) l_addr` (<link.h>), its load bias.
            let bias = unsafe { dlfo.dlfo_link_map.cast::<u64>().read() };
            // SAFETY: glibc reports `[map_start, map_end)` of a loaded object, which
            // stays loaded while it has frames on this stack; `map_start` is its
            // `l_map_start`, where its first segment is mapped.
            (unsafe { headers::shared_object(pc, start, bias)? }, SegmentSource::MappingStart)
        }
    };
    Ok(Located { range: (start, end), segments, source, eh_frame_hdr: dlfo.dlfo_eh_frame as u64 })
}
