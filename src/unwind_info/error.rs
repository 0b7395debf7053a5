//! Why a trampoline copy's unwind info could not be made known.

use core::fmt;

/// Why [`announce`](super::announce) failed. The caller should not use the copy:
/// stack walkers could not see through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnwindInfoError {
    /// The copy index is not below `arch::TRAMPOLINE_COPIES`.
    CopyOutOfRange,
    /// The copy was already announced for another original return address (its
    /// FDE names the address as a constant, so it cannot serve two).
    Conflict,
    /// gimli refused to encode the CIE or FDE.
    Encode,
    /// `object` has no ELF machine for `arch::OBJECT_ARCHITECTURE`.
    UnsupportedArchitecture,
    /// `object` refused to write the in-memory ELF object for gdb.
    ObjectWrite,
    /// `_Unwind_Find_FDE` did not return the new FDE after `__register_frame`: the
    /// process's unwinder is not the one registered with (for example a static
    /// libgcc copy next to libgcc_s).
    NotVisible,
    /// This process is a fork child that copied the announcement lock while
    /// another thread of the parent held it: that announcement cannot be finished.
    ForkedMidAnnounce,
}

impl fmt::Display for UnwindInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CopyOutOfRange => "trampoline copy index out of range",
            Self::Conflict => "trampoline copy already announced for another return address",
            Self::Encode => "could not encode the trampoline's CIE/FDE",
            Self::UnsupportedArchitecture => "no ELF machine for this architecture",
            Self::ObjectWrite => "could not write the JIT ELF object for gdb",
            Self::NotVisible => "the unwinder does not find the registered FDE",
            Self::ForkedMidAnnounce => {
                "forked while another thread was announcing a trampoline copy"
            }
        })
    }
}

impl std::error::Error for UnwindInfoError {}
