//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, off by
//! default). Not an API: hidden from the docs and free to change.

#[cfg(hijack_supported)]
pub use crate::walk::fuzz::{
    EH_FRAME_ADDR, EH_FRAME_HDR_ADDR, LIBC, TEXT, eh_frame_hdr_for, encode_input, walk_fake,
    walk_input,
};

/// Without the walker (feature `hijack` off or an unsupported target) there is
/// nothing to fuzz: every input is refused.
#[cfg(not(hijack_supported))]
pub fn walk_input(_data: &[u8]) -> Result<(), String> {
    Err("the stack walker is not built for this target".to_owned())
}
