//! What the walk's object lookup sees for one pc, and which object it takes for
//! libc and by which rule: for the doctor (`diagnostics::object_extent`,
//! `diagnostics::libc_choice`). Not on the walk's path; it calls the same
//! functions the walk does, so it reports what the walk uses.

use super::find_object::{self, SegmentSource};
use super::libc_object::{self, LibcRule};
use super::loaded::Strategy;
use super::phdr;
use super::segments::Segments;
use crate::walk::WalkError;

/// The object holding a pc as the walk's lookup finds it.
pub(crate) struct Extent {
    /// The lookup used: `_dl_find_object` or `dl_iterate_phdr`.
    pub(crate) lookup: &'static str,
    /// The range the lookup reported.
    pub(crate) reported: (u64, u64),
    /// Where the segments were read from.
    pub(crate) source: &'static str,
    /// The object's loaded segments and `.eh_frame_hdr`.
    pub(crate) segments: Segments,
}

/// The object holding `pc`, looked up as the walk would look it up now.
pub(crate) fn extent_of(pc: u64) -> Result<Extent, WalkError> {
    match Strategy::best() {
        Strategy::FindObject(find) => {
            let located = find_object::locate(find, pc)?;
            let source = match located.source {
                SegmentSource::MainProgram => {
                    "the main program's headers (AT_PHDR in the auxiliary vector)"
                }
                SegmentSource::MappingStart => "the ELF header at the start of the mapping",
            };
            Ok(Extent {
                lookup: "_dl_find_object",
                reported: located.range,
                source,
                segments: located.segments,
            })
        }
        Strategy::IteratePhdr => {
            let segments = phdr::segments_of(pc).ok_or(WalkError::NoObject { pc })?;
            Ok(Extent {
                lookup: "dl_iterate_phdr",
                reported: segments.extent().unwrap_or((0, 0)),
                source: "the program headers dl_iterate_phdr reports",
                segments,
            })
        }
    }
}

/// The address of libc's own `pthread_create` the walk identifies libc by, and
/// the rule that found it.
pub(crate) fn libc_choice() -> (u64, LibcRule) {
    libc_object::pthread_create_source()
}
