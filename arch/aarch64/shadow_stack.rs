//! Detects the arm64 Guarded Control Stack, under which the hijack must not run:
//! the start routine's `ret` to the trampoline would not match the GCS entry.

use core::sync::atomic::{AtomicBool, Ordering};

/// `prctl` request that reads the shadow-stack status (Linux 6.13+,
/// `include/uapi/linux/prctl.h`).
const PR_GET_SHADOW_STACK_STATUS: libc::c_int = 74;

/// Bit 0 of the status: the shadow stack is enabled for this thread.
const PR_SHADOW_STACK_ENABLE: u64 = 1;

/// Set once the kernel answered `EINVAL`: it does not know the request (before
/// Linux 6.13) or the system has no GCS, so no thread of this process can ever
/// have one and the syscall is skipped from then on. Any other answer is asked
/// again: the kernel enables GCS per thread.
static UNKNOWN_REQUEST: AtomicBool = AtomicBool::new(false);

/// The thread's shadow-stack status word, or `None` if the kernel does not know
/// the request (older kernels: no GCS can be enabled) or refuses it.
pub(crate) fn shadow_stack_status() -> Option<u64> {
    if UNKNOWN_REQUEST.load(Ordering::Relaxed) {
        return None;
    }
    let mut status: u64 = 0;
    // SAFETY: the request writes one u64 through the pointer, which is valid.
    let rc = unsafe { libc::prctl(PR_GET_SHADOW_STACK_STATUS, &mut status as *mut u64, 0, 0, 0) };
    if rc == 0 {
        return Some(status);
    }
    if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        UNKNOWN_REQUEST.store(true, Ordering::Relaxed);
    }
    None
}

/// Whether a status word from [`shadow_stack_status`] says the shadow stack is on.
pub(crate) fn shadow_stack_enabled(status: Option<u64>) -> bool {
    status.is_some_and(|bits| bits & PR_SHADOW_STACK_ENABLE != 0)
}

/// `AT_HWCAP` bit: the CPU implements GCS and the kernel supports it (Linux
/// 6.13+, `arch/arm64/include/uapi/asm/hwcap.h`, `HWCAP_GCS`; older kernels never
/// set it).
const HWCAP_GCS: u64 = 1 << 32;

/// Whether a kernel release (`uname -r`, e.g. `6.13.2-arch1`) is at least
/// `major.minor`; `false` if it does not parse.
fn release_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let (Some(Ok(have_major)), Some(Ok(have_minor))) =
        (parts.next().map(str::parse::<u32>), parts.next().map(str::parse::<u32>))
    else {
        return false;
    };
    (have_major, have_minor) >= (major, minor)
}

/// One line for `cargo run --example doctor`: the Guarded Control Stack state of
/// this thread, and, where there is none, whether the CPU or the kernel
/// (`kernel`, its release as `uname` gives it) lacks it.
pub(crate) fn shadow_stack_state(kernel: &str) -> String {
    match shadow_stack_status() {
        None if !release_at_least(kernel, 6, 13) => {
            format!("not available: the kernel (Linux {kernel}) has no GCS control (Linux < 6.13)")
        }
        None => {
            // SAFETY: `getauxval` has no preconditions; it returns 0 for an absent entry.
            let hwcap = unsafe { libc::getauxval(libc::AT_HWCAP) };
            if hwcap & HWCAP_GCS == 0 {
                format!(
                    "not available: the CPU has no GCS, or the kernel (Linux {kernel}) was \
                     built without CONFIG_ARM64_GCS (HWCAP_GCS clear)"
                )
            } else {
                format!("not available: the kernel (Linux {kernel}) refuses the GCS status")
            }
        }
        Some(bits) if shadow_stack_enabled(Some(bits)) => {
            "enabled for this thread: the hijack is refused (fallback: shadow stack)".to_owned()
        }
        Some(_) => "available, disabled for this thread".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words() {
        assert!(!shadow_stack_enabled(None));
        assert!(!shadow_stack_enabled(Some(0)));
        assert!(!shadow_stack_enabled(Some(0b10)), "write enable alone is not GCS");
        assert!(shadow_stack_enabled(Some(1)));
    }

    #[test]
    fn kernel_releases() {
        assert!(release_at_least("6.13.0", 6, 13));
        assert!(release_at_least("6.18.44-fc-v1147", 6, 13));
        assert!(release_at_least("7.0", 6, 13));
        assert!(!release_at_least("6.12.9-arch1", 6, 13));
        assert!(!release_at_least("5.15.0", 6, 13));
        assert!(!release_at_least("garbage", 6, 13));
    }
}
