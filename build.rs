//! Sets `hijack_supported` when the `hijack` feature is on and the target is one
//! the stack hijack knows (Linux/glibc on x86_64 or aarch64). Every hijack-only
//! definition is gated on that one cfg, so there is a single selection point.
//!
//! Sets `glibc_cancel_catch` on Linux/glibc x86_64 and aarch64 whatever the
//! features: the exit sequence's catch of forced unwinds (`src/exit/cancel/`) needs
//! only glibc's cancel-buffer ABI and one small assembly routine per ISA.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(hijack_supported)");
    println!("cargo::rustc-check-cfg=cfg(glibc_cancel_catch)");
    println!("cargo::rerun-if-changed=build.rs");
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    let feature_on = std::env::var_os("CARGO_FEATURE_HIJACK").is_some();
    let os_ok = env("CARGO_CFG_TARGET_OS") == "linux" && env("CARGO_CFG_TARGET_ENV") == "gnu";
    let arch_ok = matches!(env("CARGO_CFG_TARGET_ARCH").as_str(), "x86_64" | "aarch64");
    if os_ok && arch_ok {
        println!("cargo::rustc-cfg=glibc_cancel_catch");
    }
    if feature_on && os_ok && arch_ok {
        println!("cargo::rustc-cfg=hijack_supported");
    }
}
