//! The doctor lines the aarch64 port reports for pointer authentication, BTI and
//! its Guarded Control Stack, as they stand on x86_64.

use super::shadow_stack::{shadow_stack_enabled, shadow_stack_status};

/// One line for `cargo run --example doctor`: x86_64 has no pointer authentication.
pub(crate) fn pointer_auth_state() -> &'static str {
    "not applicable (x86_64 has no pointer authentication)"
}

/// One line for `cargo run --example doctor`: Linux enables no user-space IBT.
pub(crate) fn branch_target_state() -> &'static str {
    "not applicable (Linux does not enable user-space CET indirect branch tracking)"
}

/// One line for `cargo run --example doctor`: the CET shadow stack of this thread.
pub(crate) fn shadow_stack_state() -> &'static str {
    match shadow_stack_status() {
        None => "not available (the kernel has no CET shadow-stack control, Linux < 6.6)",
        Some(bits) if shadow_stack_enabled(Some(bits)) => {
            "enabled for this thread: the hijack is refused (fallback: shadow stack)"
        }
        Some(_) => "available, disabled for this thread",
    }
}
