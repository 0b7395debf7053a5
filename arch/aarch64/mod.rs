//! aarch64 (AAPCS64): not ported yet; build.rs does not enable the hijack on aarch64.
