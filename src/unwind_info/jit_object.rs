//! The in-memory ELF object announced to gdb for one trampoline copy.
//!
//! What gdb needs (found by experiment with gdb 13): `e_type` ET_DYN, so symbol
//! values and section addresses are taken as absolute (with ET_REL gdb adds the
//! section address a second time); an `.eh_frame` holding the same CIE/FDE bytes
//! the in-process unwinder got (absptr addresses, so valid at any file address);
//! and a function symbol for the copy. Sections:
//!
//! | # | name        | type     | flags | address            | contents         |
//! |---|-------------|----------|-------|--------------------|------------------|
//! | 1 | `.text`     | NOBITS   | AX    | the pad            | none (16 bytes)  |
//! | 2 | `.eh_frame` | PROGBITS | A     | the registered copy| CIE, FDE, 0 word |
//! | 3 | `.symtab`   | SYMTAB   |       |                    | null, the copy   |
//! | 4 | `.strtab`   | STRTAB   |       |                    | symbol names     |
//! | 5 | `.shstrtab` | STRTAB   |       |                    | section names    |
//!
//! `.text` has no bytes: the code is the host binary's, and gdb reads it from
//! memory (it also prefers the host binary's symbols over the overlapping ones).

use object::elf;
use object::write::elf::{FileHeader, SectionHeader, Sym, Writer};
use object::{Architecture, Endianness};

use super::UnwindInfoError;
use crate::arch;

/// Alignment of the `.eh_frame` data in the file (the FDE address words).
const EH_FRAME_ALIGN: u64 = 8;

/// Alignment recorded for the copy's `.text` (copies are 16-byte aligned).
const TEXT_ALIGN: u64 = 16;

/// The symbol name gdb may show for copy `copy` (the same as the host's label).
pub(super) fn symbol_name(copy: usize) -> String {
    format!("hijack_tls_trampoline_{copy}")
}

/// Builds the ELF object for copy `copy` at `pad`, whose `.eh_frame` bytes are
/// `eh_frame`, registered in-process at `eh_frame_addr`.
pub(super) fn build(
    copy: usize,
    pad: usize,
    eh_frame: &[u8],
    eh_frame_addr: usize,
) -> Result<Vec<u8>, UnwindInfoError> {
    let e_machine = match arch::OBJECT_ARCHITECTURE {
        Architecture::X86_64 => elf::EM_X86_64,
        Architecture::Aarch64 => elf::EM_AARCH64,
        _ => return Err(UnwindInfoError::UnsupportedArchitecture),
    };
    let name = symbol_name(copy);
    let mut out = Vec::new();
    let mut w = Writer::new(Endianness::default(), arch::ADDRESS_SIZE == 8, &mut out);

    // Layout: file header, .eh_frame data, .symtab, .strtab, .shstrtab, headers.
    w.reserve_file_header();
    let text_name = w.add_section_name(b".text");
    let text = w.reserve_section_index();
    let eh_name = w.add_section_name(b".eh_frame");
    w.reserve_section_index();
    let eh_offset = w.reserve(eh_frame.len() as u64, EH_FRAME_ALIGN);
    let sym_name = w.add_string(name.as_bytes());
    w.reserve_symbol_index(Some(text));
    w.reserve_symtab_section_index();
    w.reserve_symtab();
    w.reserve_strtab_section_index();
    w.reserve_strtab().map_err(|_| UnwindInfoError::ObjectWrite)?;
    w.reserve_shstrtab_section_index();
    w.reserve_shstrtab().map_err(|_| UnwindInfoError::ObjectWrite)?;
    w.reserve_section_headers();

    w.write_file_header(&FileHeader {
        os_abi: elf::ELFOSABI_NONE,
        abi_version: 0,
        e_type: elf::ET_DYN,
        e_machine,
        e_entry: 0,
        e_flags: elf::FileFlags(0),
    })
    .map_err(|_| UnwindInfoError::ObjectWrite)?;
    w.write_align(EH_FRAME_ALIGN);
    w.write(eh_frame);
    w.write_null_symbol();
    w.write_symbol(&Sym {
        section: Some(text.0),
        st_name: w.string_offset(Some(sym_name)),
        st_info: elf::SymbolInfo::new(elf::STB_GLOBAL, elf::STT_FUNC),
        st_other: elf::STV_DEFAULT.into(),
        st_shndx: elf::SHN_UNDEF,
        st_value: pad as u64,
        st_size: arch::TRAMPOLINE_LEN as u64,
    });
    w.write_strtab();
    w.write_shstrtab();

    w.write_null_section_header();
    w.write_section_header(&SectionHeader {
        sh_name: w.section_name_offset(Some(text_name)),
        sh_type: elf::SHT_NOBITS,
        sh_flags: elf::SHF_ALLOC | elf::SHF_EXECINSTR,
        sh_addr: pad as u64,
        sh_offset: 0,
        sh_size: arch::TRAMPOLINE_LEN as u64,
        sh_link: 0,
        sh_info: 0,
        sh_addralign: TEXT_ALIGN,
        sh_entsize: 0,
    });
    w.write_section_header(&SectionHeader {
        sh_name: w.section_name_offset(Some(eh_name)),
        sh_type: elf::SHT_PROGBITS,
        sh_flags: elf::SHF_ALLOC,
        sh_addr: eh_frame_addr as u64,
        sh_offset: eh_offset,
        sh_size: eh_frame.len() as u64,
        sh_link: 0,
        sh_info: 0,
        sh_addralign: EH_FRAME_ALIGN,
        sh_entsize: 0,
    });
    // One local symbol: the null one.
    w.write_symtab_section_header(1);
    w.write_strtab_section_header();
    w.write_shstrtab_section_header();
    drop(w);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use object::read::elf::ElfFile64;
    use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

    use super::*;
    use crate::unwind_info::eh_frame;

    #[test]
    fn parses_back() {
        let pad = 0x5555_0000_1230;
        let bytes = eh_frame::build(pad, 0x7f00_0000_0042).unwrap();
        let eh_frame_addr = 0x5555_6666_0000;
        let elf = build(3, pad, &bytes, eh_frame_addr).unwrap();

        let file = ElfFile64::<Endianness>::parse(&*elf).unwrap();
        let header = file.elf_header();
        assert_eq!(header.e_type.get(file.endian()), elf::ET_DYN);
        assert_eq!(file.architecture(), arch::OBJECT_ARCHITECTURE);

        let symbols: Vec<_> = file.symbols().collect();
        assert_eq!(symbols.len(), 1, "the copy's symbol only");
        let symbol = &symbols[0];
        assert_eq!(symbol.name(), Ok("hijack_tls_trampoline_3"));
        assert_eq!(symbol.address(), pad as u64);
        assert_eq!(symbol.size(), arch::TRAMPOLINE_LEN as u64);
        assert_eq!(symbol.kind(), SymbolKind::Text);
        assert!(symbol.is_global());

        let text = file.section_by_name(".text").unwrap();
        assert_eq!(symbol.section_index(), Some(text.index()));
        assert_eq!((text.address(), text.size()), (pad as u64, arch::TRAMPOLINE_LEN as u64));

        let section = file.section_by_name(".eh_frame").unwrap();
        assert_eq!(section.address(), eh_frame_addr as u64);
        assert_eq!(section.data(), Ok(&bytes[..]));
    }
}
