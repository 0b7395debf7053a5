//! tmp skeleton
#![deny(unsafe_op_in_unsafe_fn)]

mod arch;
#[cfg(hijack_supported)]
mod walk;
