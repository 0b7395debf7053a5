//! The one selection point for ISA-specific code: every supported ISA exports
//! the same names from `arch/<isa>/mod.rs`.

#[cfg(all(hijack_supported, target_arch = "x86_64"))]
#[path = "../arch/x86_64/mod.rs"]
mod imp;

#[cfg(all(hijack_supported, target_arch = "aarch64"))]
#[path = "../arch/aarch64/mod.rs"]
mod imp;

#[cfg(hijack_supported)]
pub(crate) use imp::*;
