//! An object's program headers read from memory, without the loader lock (for
//! the `_dl_find_object` path, which reports no headers): the main program's from
//! the auxiliary vector (`AT_PHDR`, `AT_PHNUM`), any other object's from the ELF
//! header at the start of its mapping, checked before use.

use super::segments::Segments;
use crate::walk::WalkError;
use core::sync::atomic::{AtomicUsize, Ordering};
use libc::{Elf64_Ehdr, Elf64_Phdr, PF_R, PT_LOAD, PT_PHDR};

/// Bytes at the start of a mapping that are surely mapped with its first segment:
/// the smallest page size of x86_64 and aarch64 Linux.
const FIRST_PAGE: u64 = 4096;

/// `AT_PHDR` once read (0: not yet).
static MAIN_PHDR: AtomicUsize = AtomicUsize::new(0);
/// `AT_PHNUM` once read.
static MAIN_PHNUM: AtomicUsize = AtomicUsize::new(0);

/// The main program's segments. Its headers are where the kernel's `AT_PHDR`
/// says (glibc's `main_map->l_phdr` is the same), its bias `AT_PHDR` minus
/// `PT_PHDR`'s address (glibc's rtld.c computes `l_addr` so), or without
/// `PT_PHDR` from its ELF header ([`bias_from_elf_header`]). Read from the
/// auxiliary vector once; no lock, no system call.
pub(super) fn main_program() -> Option<Segments> {
    // Acquire: a nonzero `MAIN_PHDR` was stored after `MAIN_PHNUM`.
    let mut phdr = MAIN_PHDR.load(Ordering::Acquire);
    if phdr == 0 {
        // SAFETY: getauxval only reads the auxiliary vector glibc saved.
        let (at_phdr, at_phnum) =
            unsafe { (libc::getauxval(libc::AT_PHDR), libc::getauxval(libc::AT_PHNUM)) };
        // Racing first calls store the same values.
        MAIN_PHNUM.store(at_phnum as usize, Ordering::Relaxed);
        MAIN_PHDR.store(at_phdr as usize, Ordering::Release);
        phdr = at_phdr as usize;
    }
    let phnum = MAIN_PHNUM.load(Ordering::Relaxed);
    if phdr == 0 || !phdr.is_multiple_of(align_of::<Elf64_Phdr>()) {
        return None;
    }
    // SAFETY: the kernel's `AT_PHDR` and `AT_PHNUM` describe the main program's
    // program headers, mapped readable (glibc itself reads them there) for the
    // life of the process.
    let headers = unsafe { headers_at(phdr as u64, phnum) };
    let bias = match headers.iter().find(|h| h.p_type == PT_PHDR) {
        Some(h) => (phdr as u64).wrapping_sub(h.p_vaddr),
        None => bias_from_elf_header(phdr as u64, phnum, headers).unwrap_or(0),
    };
    Some(Segments::from_headers(bias, headers))
}

/// The load bias of a main program without `PT_PHDR` (a static-pie linked by GNU
/// ld; a fixed-address executable gives 0), from its ELF header: linkers put the
/// program headers right after it (`e_phoff` = 64), in the first `PT_LOAD`,
/// mapped from file offset 0. The header is read only where it lies in the page
/// that holds the program headers (so it is mapped), and used only if it is an
/// ELF header whose `e_phoff`, `e_phentsize` and `e_phnum` describe exactly the
/// headers the kernel reported; otherwise `None`.
fn bias_from_elf_header(phdr: u64, phnum: usize, headers: &[Elf64_Phdr]) -> Option<u64> {
    const EHDR_SIZE: u64 = size_of::<Elf64_Ehdr>() as u64;
    let ehdr = phdr.checked_sub(EHDR_SIZE)?;
    if ehdr / FIRST_PAGE != phdr / FIRST_PAGE || !ehdr.is_multiple_of(8) {
        return None;
    }
    // SAFETY: `ehdr` is in the same page as the program headers, which are mapped
    // readable (the kernel's `AT_PHDR`); aligned for the header just above.
    let header = unsafe { (ehdr as *const Elf64_Ehdr).read() };
    let fits = header.e_ident[..4] == *b"\x7fELF"
        && header.e_phoff == EHDR_SIZE
        && usize::from(header.e_phentsize) == size_of::<Elf64_Phdr>()
        && usize::from(header.e_phnum) == phnum;
    let first = headers.iter().find(|h| h.p_type == PT_LOAD && h.p_offset == 0)?;
    fits.then(|| ehdr.wrapping_sub(first.p_vaddr))
}

/// Whether `address` lies in one of the main program's loaded segments (from
/// `AT_PHDR`: also in a statically linked program, where `dladdr` knows nothing).
pub(crate) fn in_main_program(address: u64) -> bool {
    main_program().is_some_and(|main| main.contains(address))
}

/// The segments of the shared object (or vDSO) whose mapping starts at
/// `map_start` and whose load bias is `bias` (`link_map::l_addr`). `pc` is only
/// for the error.
///
/// The ELF header must be at `map_start` with the program headers in the same
/// first page, and the first `PT_LOAD` must be the readable one mapped there from
/// file offset 0: what every linker emits, and where glibc points `l_phdr`
/// (elf/dl-map-segments.h). Anything else is `BadProgramHeaders`.
///
/// # Safety
/// `map_start` must be the start of a loaded object's mapping (glibc's
/// `l_map_start`: its first segment, mapped readable from file offset 0 by every
/// linker's layout) that stays loaded while the result is used.
pub(super) unsafe fn shared_object(
    pc: u64,
    map_start: u64,
    bias: u64,
) -> Result<Segments, WalkError> {
    let bad = WalkError::BadProgramHeaders { pc };
    if !map_start.is_multiple_of(FIRST_PAGE) {
        return Err(bad);
    }
    // SAFETY: the header is within the first page of the mapping, readable per
    // this function's contract; an unaligned read, as nothing promises alignment
    // to the type.
    let ehdr = unsafe {
        core::ptr::with_exposed_provenance::<Elf64_Ehdr>(map_start as usize).read_unaligned()
    };
    let native_data = if cfg!(target_endian = "little") { 1 } else { 2 };
    let table_bytes = u64::from(ehdr.e_phnum) * size_of::<Elf64_Phdr>() as u64;
    let fits = ehdr.e_phoff.checked_add(table_bytes).is_some_and(|end| end <= FIRST_PAGE);
    if ehdr.e_ident[..4] != *b"\x7fELF"
        || ehdr.e_ident[4] != 2 // ELFCLASS64
        || ehdr.e_ident[5] != native_data
        || usize::from(ehdr.e_phentsize) != size_of::<Elf64_Phdr>()
        || !ehdr.e_phoff.is_multiple_of(align_of::<Elf64_Phdr>() as u64)
        || !fits
    {
        return Err(bad);
    }
    // SAFETY: checked just above: the table lies within the first page.
    let headers = unsafe { headers_at(map_start + ehdr.e_phoff, usize::from(ehdr.e_phnum)) };
    let first = headers.iter().filter(|h| h.p_type == PT_LOAD).min_by_key(|h| h.p_vaddr);
    let consistent = first.is_some_and(|first| {
        first.p_offset == 0
            && first.p_flags & PF_R != 0
            && bias.wrapping_add(first.p_vaddr) == map_start
            && ehdr.e_phoff.saturating_add(table_bytes) <= first.p_filesz
    });
    if !consistent {
        return Err(bad);
    }
    Ok(Segments::from_headers(bias, headers))
}

/// The `count` program headers at `address`.
///
/// # Safety
/// `address` must be aligned and `count` headers there readable and unchanged
/// for `'a`.
unsafe fn headers_at<'a>(address: u64, count: usize) -> &'a [Elf64_Phdr] {
    let ptr = core::ptr::with_exposed_provenance::<Elf64_Phdr>(address as usize);
    // SAFETY: per this function's contract.
    unsafe { core::slice::from_raw_parts(ptr, count) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page-aligned page standing in for a mapping's first page.
    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    #[test]
    fn main_program_segments_hold_its_code() {
        let main = main_program().expect("AT_PHDR");
        let here = main_program_segments_hold_its_code as *const () as u64;
        assert!(main.contains(here));
        assert!(main.eh_frame_hdr().is_some_and(|hdr| main.readable_run(hdr).is_some()));
    }

    #[test]
    fn a_mapping_without_valid_headers_is_refused() {
        let mut page = Box::new(Page([0; 4096]));
        let start = page.0.as_ptr() as u64;
        // SAFETY: the page is readable and alive for each call.
        let read = |page: &Page| unsafe { shared_object(1, page.0.as_ptr() as u64, start) };
        assert_eq!(read(&page), Err(WalkError::BadProgramHeaders { pc: 1 }), "zeros");
        // A valid ELF header whose table runs past the first page.
        let ehdr = Elf64_Ehdr {
            e_ident: *b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0",
            e_type: 3,
            e_machine: 0,
            e_version: 1,
            e_entry: 0,
            e_phoff: 64,
            e_shoff: 0,
            e_flags: 0,
            e_ehsize: 64,
            e_phentsize: 56,
            e_phnum: 100,
            e_shentsize: 0,
            e_shnum: 0,
            e_shstrndx: 0,
        };
        // SAFETY: the page has room for the header at its start.
        unsafe { page.0.as_mut_ptr().cast::<Elf64_Ehdr>().write_unaligned(ehdr) };
        assert_eq!(read(&page), Err(WalkError::BadProgramHeaders { pc: 1 }), "phnum too big");
        // One PT_LOAD at offset 0 that does not start the mapping (wrong bias).
        let ehdr = Elf64_Ehdr { e_phnum: 1, ..ehdr };
        let load = Elf64_Phdr {
            p_type: PT_LOAD,
            p_flags: PF_R,
            p_offset: 0,
            p_vaddr: 0x1000,
            p_paddr: 0,
            p_filesz: 0x1000,
            p_memsz: 0x1000,
            p_align: 0x1000,
        };
        // SAFETY: header and one program header fit in the page.
        unsafe {
            page.0.as_mut_ptr().cast::<Elf64_Ehdr>().write_unaligned(ehdr);
            page.0.as_mut_ptr().add(64).cast::<Elf64_Phdr>().write_unaligned(load);
        }
        assert_eq!(read(&page), Err(WalkError::BadProgramHeaders { pc: 1 }), "wrong bias");
        // With the bias that puts it at the mapping's start, it is accepted.
        // SAFETY: as above.
        let good = unsafe { shared_object(1, start, start - 0x1000) }.expect("valid headers");
        assert_eq!(good.readable_run(start + 8), Some((start, start + 0x1000)));
    }
}
