//! The doctor lines the aarch64 port reports for pointer authentication, BTI and
//! its Guarded Control Stack, as they stand on x86_64.

use super::shadow_stack::{cpu_has_shadow_stack, kernel_answer, shadow_stack_enabled};

/// One line for `cargo run --example doctor`: x86_64 has no pointer authentication.
pub(crate) fn pointer_auth_state() -> &'static str {
    "not applicable (x86_64 has no pointer authentication)"
}

/// One line for `cargo run --example doctor`: Linux enables no user-space IBT.
pub(crate) fn branch_target_state() -> &'static str {
    "not applicable (Linux does not enable user-space CET indirect branch tracking)"
}

/// One line for `cargo run --example doctor`: the CET shadow stack of this
/// thread, and, where there is none, whether the CPU or the kernel (`kernel`, its
/// release as `uname` gives it) lacks it.
pub(crate) fn shadow_stack_state(kernel: &str) -> String {
    if !cpu_has_shadow_stack() {
        return format!(
            "not available: the CPU has no CET shadow stack (CPUID leaf 7 ECX bit 7 \
             clear; kernel Linux {kernel})"
        );
    }
    match kernel_answer() {
        Err(libc::EINVAL) => format!(
            "not available: the CPU has CET shadow stacks (CPUID leaf 7 ECX bit 7), but the \
             kernel (Linux {kernel}) does not know ARCH_SHSTK_STATUS (EINVAL: Linux < 6.6, or \
             built without CONFIG_X86_USER_SHADOW_STACK)"
        ),
        Err(errno) => format!(
            "not available: the CPU has CET shadow stacks, but the kernel (Linux {kernel}) \
             refuses ARCH_SHSTK_STATUS ({})",
            std::io::Error::from_raw_os_error(errno)
        ),
        Ok(bits) if shadow_stack_enabled(Some(bits)) => {
            "enabled for this thread: the hijack is refused (fallback: shadow stack)".to_owned()
        }
        Ok(_) => "available, disabled for this thread".to_owned(),
    }
}
