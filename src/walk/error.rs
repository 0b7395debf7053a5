//! Why a stack walk gave up. Every variant names the one check that failed, so the
//! crate can show it to users as the reason the thread fell back.

use core::fmt;

/// A failed stack walk. Small and `Copy`: it is stored in a fallback reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WalkError {
    /// `pthread_getattr_np` / `pthread_attr_getstack` failed for this thread.
    StackBounds,
    /// Less stack is left below the capture point than the walk may use.
    LowStack {
        /// Bytes between the captured stack pointer and the stack's low end.
        left: u64,
        /// Bytes the walk may use below the capture point (the stack memory's
        /// `WALK_STACK_NEED`), carried here so the message needs no reader.
        need: u64,
    },
    /// A stack read fell outside this thread's stack (or overflowed).
    OutOfBounds {
        /// The address the walk tried to read.
        addr: u64,
    },
    /// A stack read was not aligned to 8 bytes.
    Misaligned {
        /// The address the walk tried to read.
        addr: u64,
    },
    /// A frame's pc (return address) is not known after unwinding its callee.
    UnknownPc {
        /// Index of the frame, 0 being the captured one.
        frame: usize,
    },
    /// No loaded object contains the pc.
    NoObject {
        /// The address looked up.
        pc: u64,
    },
    /// The object containing the pc has no `.eh_frame_hdr` (`PT_GNU_EH_FRAME`).
    NoEhFrameHdr {
        /// The address looked up.
        pc: u64,
    },
    /// The object's `.eh_frame_hdr` has no binary search table.
    NoSearchTable {
        /// The address looked up.
        pc: u64,
    },
    /// The header's `eh_frame_ptr` points outside the object's readable range.
    EhFrameOutside {
        /// The address looked up.
        pc: u64,
    },
    /// The object's program headers could not be read from memory: no valid ELF
    /// header with its program headers at the start of its mapping.
    BadProgramHeaders {
        /// The address looked up.
        pc: u64,
    },
    /// The search table points outside `.eh_frame`.
    BadSearchTable {
        /// The address looked up.
        pc: u64,
    },
    /// The CIE's return-address column is not this ISA's return-address register.
    RaColumn {
        /// The address looked up.
        pc: u64,
        /// The CIE's return-address column.
        register: u16,
    },
    /// No FDE in the object covers the pc.
    NoFde {
        /// The address looked up.
        pc: u64,
    },
    /// The CFI for the pc is malformed or uses something gimli does not support.
    BadCfi {
        /// The address looked up.
        pc: u64,
        /// gimli's description of the problem.
        error: gimli::Error,
    },
    /// A CFA or register rule the walker does not evaluate.
    UnsupportedRule {
        /// The address looked up.
        pc: u64,
        /// DWARF number of the register the rule is for.
        register: u16,
        /// The kind of rule.
        rule: RuleKind,
    },
    /// A rule needs a register whose value is unknown in this frame.
    UnknownRegister {
        /// The address looked up.
        pc: u64,
        /// DWARF number of the register.
        register: u16,
    },
    /// A DWARF expression in the CFI cannot be evaluated.
    Expression {
        /// The address looked up.
        pc: u64,
        /// What the expression needed or did.
        issue: ExprIssue,
    },
    /// The return-address signing state is neither 0 nor 1.
    BadSignState {
        /// The address looked up.
        pc: u64,
    },
    /// A signal frame's CFI does not say where the interrupted sp is, so the
    /// interrupted frame's CFA cannot be trusted.
    SignalFrameWithoutSp {
        /// The address looked up.
        pc: u64,
    },
    /// A frame's CFA is not above its callee's (the outermost frame's may equal
    /// it): the stack would not shrink.
    CfaNotGrowing {
        /// Index of the frame.
        frame: usize,
        /// Its CFA.
        cfa: u64,
        /// The callee's CFA.
        previous: u64,
    },
    /// More frames than the walk allows; the stack is too deep or loops.
    TooManyFrames {
        /// The limit.
        limit: usize,
    },
    /// No frame outside libc returns into libc: no thread start routine found.
    TargetNotFound,
    /// The frames below the outermost return into libc are not exactly two libc
    /// frames (`start_thread`, `clone3`, or `__libc_start_call_main`,
    /// `__libc_start_main_impl`) and at most `_start`: for example a TLS
    /// destructor or an ELF constructor is running.
    NotThreadStart {
        /// libc frames seen below the start routine.
        libc_frames: usize,
        /// Non-libc frames seen below them.
        other_frames: usize,
    },
    /// The start routine's return address is not saved at CFA + n.
    SlotRuleNotOffset {
        /// The rule found instead.
        rule: RuleKind,
    },
    /// The slot does not hold the return address the walk computed.
    SlotMismatch,
    /// This is a fork child whose parent may have had another thread inside
    /// `dl_iterate_phdr` (whose lock `fork` does not reset), and this glibc has no
    /// lock-free `_dl_find_object` (before 2.35) to find objects without it.
    LoaderLockAfterFork,
    /// The start routine's return address is not where the ISA's call leaves it
    /// (x86_64: CFA - 8).
    SlotNotAtCall {
        /// The slot's offset from the CFA.
        offset: i64,
        /// Where a call leaves it.
        expected: i64,
    },
    /// The start routine's return-address slot is outside its frame (not between
    /// its stack pointer and its CFA).
    SlotOutsideFrame {
        /// The slot's offset from the CFA.
        offset: i64,
        /// The frame's size: its CFA minus its stack pointer.
        frame_size: u64,
    },
    /// The start routine saves the frame pointer and the return address, but not
    /// as one frame record (aarch64: x30 right above x29).
    SplitFrameRecord {
        /// The frame pointer's slot, from the CFA.
        fp_offset: i64,
        /// The return address's slot, from the CFA.
        ra_offset: i64,
    },
    /// The start routine's CFI restores its caller's stack pointer to something
    /// other than its CFA.
    CallerSpNotCfa {
        /// The restored stack pointer, if known.
        sp: Option<u64>,
        /// The CFA.
        cfa: u64,
    },
    /// Where this thread's start frames must end is unknown: glibc's layout facts
    /// (`_thread_db_sizeof_pthread`, `_dl_get_tls_static_info`) or
    /// `__libc_stack_end` were not found, or the thread's descriptor or entry
    /// stack pointer is not on its stack.
    StackTopUnknown,
    /// The libc frames below the start routine do not end where glibc started the
    /// thread: the CFI moved the frames.
    NotAtStackTop {
        /// The CFA of `start_thread` (or the main thread's `__libc_start_main`).
        cfa: u64,
        /// The stack pointer glibc called it with.
        top: u64,
    },
    /// libc is the executable (a statically linked program), and the thread's
    /// start routine (from its descriptor) or `main` is not known, so the thread
    /// start's frames cannot be told from the other frames.
    StartFunctionUnknown,
    /// libc is the executable, and the frame above the thread start's frames is
    /// not in the function glibc starts there (the start routine, or `main`): a
    /// TLS destructor or an ELF constructor is running, or the CFI moved frames.
    NotStartFunction {
        /// The start of the function the frame is in.
        function: u64,
        /// The start routine (or `main`).
        expected: u64,
    },
    /// The start routine's return address is signed (aarch64 PAC), but not with
    /// its CFA as the modifier, as the frame's own `paciasp` signs it: the slot
    /// holds a word signed for another frame, or the CFA is not the real one.
    SignedForAnotherCfa {
        /// The CFA the walk computed for the frame.
        cfa: u64,
    },
}

/// The kind of a CFI rule, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RuleKind {
    /// No rule at all (the register's default).
    Absent,
    /// `DW_CFA_undefined`.
    Undefined,
    /// `DW_CFA_same_value`.
    SameValue,
    /// `DW_CFA_offset`: saved at CFA + n.
    Offset,
    /// `DW_CFA_val_offset`: value is CFA + n.
    ValOffset,
    /// `DW_CFA_register`: held in another register.
    Register,
    /// `DW_CFA_expression` (or `DW_CFA_def_cfa_expression` for the CFA).
    Expression,
    /// `DW_CFA_val_expression`.
    ValExpression,
    /// Defined by the augmenter.
    Architectural,
    /// A pseudo-register constant.
    Constant,
}

/// Why a DWARF expression could not be evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExprIssue {
    /// It ran for more than the step bound.
    TooManySteps,
    /// It read memory of a size other than one stack word.
    ReadSize(u8),
    /// It read memory in a target-specific address space.
    AddressSpace,
    /// It used a typed (DWARF 5 base type) value.
    TypedValue,
    /// It asked for the CFA while computing the CFA.
    CfaInCfa,
    /// It asked for thread-local storage.
    Tls,
    /// It asked for something else the walker cannot supply (debug info,
    /// relocations, entry values, WebAssembly state).
    Unsupported,
    /// Its result is not a single plain value or address.
    Result,
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::StackBounds => f.write_str("could not get the bounds of this thread's stack"),
            Self::LowStack { left, need } => {
                write!(f, "only {left} bytes of stack left, the walk may need {need}")
            }
            Self::OutOfBounds { addr } => {
                write!(f, "stack walk read {addr:#x}, outside this thread's stack")
            }
            Self::Misaligned { addr } => write!(f, "stack walk read misaligned address {addr:#x}"),
            Self::UnknownPc { frame } => {
                write!(f, "return address of stack frame {frame} is unknown")
            }
            Self::NoObject { pc } => write!(f, "no loaded object contains pc {pc:#x}"),
            Self::NoEhFrameHdr { pc } => {
                write!(f, "the object containing pc {pc:#x} has no .eh_frame_hdr")
            }
            Self::NoSearchTable { pc } => write!(
                f,
                "the .eh_frame_hdr of the object containing pc {pc:#x} has no search table"
            ),
            Self::EhFrameOutside { pc } => write!(
                f,
                "the .eh_frame of the object containing pc {pc:#x} is outside its mapping"
            ),
            Self::BadProgramHeaders { pc } => write!(
                f,
                "the object containing pc {pc:#x} has no valid ELF and program headers at the \
                 start of its mapping"
            ),
            Self::BadSearchTable { pc } => {
                write!(f, "the .eh_frame_hdr search table for pc {pc:#x} points outside .eh_frame")
            }
            Self::RaColumn { pc, register } => write!(
                f,
                "unwind info at pc {pc:#x} keeps the return address in unexpected column {register}"
            ),
            Self::NoFde { pc } => write!(f, "no unwind info (FDE) covers pc {pc:#x}"),
            Self::BadCfi { pc, error } => write!(f, "bad unwind info for pc {pc:#x}: {error}"),
            Self::UnsupportedRule { pc, register, rule } => {
                write!(f, "unsupported unwind rule {rule} for register {register} at pc {pc:#x}")
            }
            Self::UnknownRegister { pc, register } => write!(
                f,
                "unwind rule at pc {pc:#x} needs register {register}, whose value is unknown"
            ),
            Self::Expression { pc, issue } => {
                write!(f, "unwind expression at pc {pc:#x} not evaluated: {issue}")
            }
            Self::BadSignState { pc } => {
                write!(f, "unwind info at pc {pc:#x} has an invalid return-address signing state")
            }
            Self::SignalFrameWithoutSp { pc } => write!(
                f,
                "the signal frame at pc {pc:#x} does not restore the interrupted stack pointer"
            ),
            Self::CfaNotGrowing { frame, cfa, previous } => write!(
                f,
                "stack frame {frame} has CFA {cfa:#x}, not above its callee's CFA {previous:#x}"
            ),
            Self::TooManyFrames { limit } => write!(f, "stack has more than {limit} frames"),
            Self::TargetNotFound => {
                f.write_str("no frame returns into libc: thread start routine not found")
            }
            Self::NotThreadStart { libc_frames, other_frames } => write!(
                f,
                "the frames below the outermost return into libc ({libc_frames} in libc, \
                 {other_frames} outside) are not a thread start (running in a TLS destructor \
                 or a constructor?)"
            ),
            Self::SlotRuleNotOffset { rule } => {
                write!(f, "the start routine's return address is not saved at CFA+n (rule: {rule})")
            }
            Self::SlotMismatch => {
                f.write_str("the return-address slot does not hold the unwound return address")
            }
            Self::LoaderLockAfterFork => f.write_str(
                "forked from a multi-threaded parent: dl_iterate_phdr's lock may be held \
                 forever (fork does not reset it), and glibc < 2.35 has no lock-free \
                 _dl_find_object",
            ),
            Self::SlotNotAtCall { offset, expected } => write!(
                f,
                "the start routine's return address is saved at CFA{offset:+}, not at \
                 CFA{expected:+} where its call left it"
            ),
            Self::SlotOutsideFrame { offset, frame_size } => write!(
                f,
                "the start routine's return address is saved at CFA{offset:+}, outside its \
                 {frame_size}-byte frame"
            ),
            Self::SplitFrameRecord { fp_offset, ra_offset } => write!(
                f,
                "the start routine saves the frame pointer at CFA{fp_offset:+} and the return \
                 address at CFA{ra_offset:+}: not one frame record"
            ),
            Self::CallerSpNotCfa { sp: Some(sp), cfa } => write!(
                f,
                "the start routine's unwind info restores its caller's sp to {sp:#x}, not its \
                 CFA {cfa:#x}"
            ),
            Self::CallerSpNotCfa { sp: None, cfa } => write!(
                f,
                "the start routine's unwind info leaves its caller's sp unknown (CFA {cfa:#x})"
            ),
            Self::StackTopUnknown => f.write_str(
                "where this thread's start frames must end is unknown (glibc's thread layout \
                 or __libc_stack_end not found)",
            ),
            Self::StartFunctionUnknown => f.write_str(
                "libc is the executable (statically linked) and the thread's start routine or \
                 main is not known (libthread_db's _thread_db_pthread_start_routine, or main, \
                 not linked in), so its start frames cannot be told apart",
            ),
            Self::NotStartFunction { function, expected } => write!(
                f,
                "libc is the executable (statically linked) and the frame above the thread \
                 start is in the function at {function:#x}, not the start routine or main at \
                 {expected:#x} (a TLS destructor or constructor, or CFI that moved the frames)"
            ),
            Self::NotAtStackTop { cfa, top } => write!(
                f,
                "the libc frames below the start routine end at CFA {cfa:#x}, not the stack top \
                 {top:#x} glibc started the thread on"
            ),
            Self::SignedForAnotherCfa { cfa } => write!(
                f,
                "the start routine's signed return address was not signed with its CFA \
                 {cfa:#x}: the slot or the CFA is not the frame's own"
            ),
        }
    }
}

impl fmt::Display for RuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Absent => "none",
            Self::Undefined => "undefined",
            Self::SameValue => "same value",
            Self::Offset => "offset(N)",
            Self::ValOffset => "val_offset(N)",
            Self::Register => "register(R)",
            Self::Expression => "expression",
            Self::ValExpression => "val_expression",
            Self::Architectural => "architectural",
            Self::Constant => "constant",
        })
    }
}

impl fmt::Display for ExprIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooManySteps => f.write_str("too many steps"),
            Self::ReadSize(size) => write!(f, "reads {size} bytes, not one stack word"),
            Self::AddressSpace => f.write_str("reads from an address space"),
            Self::TypedValue => f.write_str("uses a typed value"),
            Self::CfaInCfa => f.write_str("needs the CFA to compute the CFA"),
            Self::Tls => f.write_str("needs thread-local storage"),
            Self::Unsupported => f.write_str("needs data the stack walk does not have"),
            Self::Result => f.write_str("result is not a single value"),
        }
    }
}

/// The match is exhaustive on purpose: `RegisterRule` is not `#[non_exhaustive]`,
/// so a rule kind added by a future gimli is a compile error here, not a silent miss.
impl<T: gimli::ReaderOffset> From<&gimli::RegisterRule<T>> for RuleKind {
    fn from(rule: &gimli::RegisterRule<T>) -> Self {
        use gimli::RegisterRule as R;
        match rule {
            R::Undefined => Self::Undefined,
            R::SameValue => Self::SameValue,
            R::Offset(_) => Self::Offset,
            R::ValOffset(_) => Self::ValOffset,
            R::Register(_) => Self::Register,
            R::Expression(_) => Self::Expression,
            R::ValExpression(_) => Self::ValExpression,
            R::Architectural => Self::Architectural,
            R::Constant(_) => Self::Constant,
        }
    }
}
