//! Detects an x86 CET shadow stack, under which the hijack must not run: the
//! trampoline's final `jmp` and the start routine's mismatched `ret` would fault
//! (SIGSEGV, SEGV_CPERR).

use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// `arch_prctl` code that reads the shadow-stack feature bits (Linux 6.6+,
/// `arch/x86/include/uapi/asm/prctl.h`).
const ARCH_SHSTK_STATUS: libc::c_long = 0x5005;

/// Bit 0 of the status: the shadow stack is enabled for this thread.
const ARCH_SHSTK_SHSTK: u64 = 1;

/// Set once the kernel answered `EINVAL`: it does not know the request (before
/// Linux 6.6, or built without `CONFIG_X86_USER_SHADOW_STACK`), so no thread of
/// this process can ever have a shadow stack and the syscall (~145 ns) is skipped
/// from then on. Any other answer is asked again: the kernel enables shadow stacks
/// per thread.
static UNKNOWN_REQUEST: AtomicBool = AtomicBool::new(false);

/// The thread's shadow-stack status word, or `None` if the kernel does not know
/// the request (older kernels: no shadow stack can be enabled) or refuses it.
///
/// Without the syscall when the CPU has no shadow stack: the kernel answers the
/// request whenever it was built with support, CET or not (~145 ns a thread).
pub(crate) fn shadow_stack_status() -> Option<u64> {
    if UNKNOWN_REQUEST.load(Ordering::Relaxed) || !cpu_has_shadow_stack() {
        return None;
    }
    match kernel_answer() {
        Ok(status) => Some(status),
        Err(errno) => {
            if errno == libc::EINVAL {
                UNKNOWN_REQUEST.store(true, Ordering::Relaxed);
            }
            None
        }
    }
}

/// The kernel's answer to `ARCH_SHSTK_STATUS`: the status word, or the errno.
pub(crate) fn kernel_answer() -> Result<u64, i32> {
    let mut status: u64 = 0;
    // SAFETY: ARCH_SHSTK_STATUS writes one u64 through the pointer, which is valid.
    let rc =
        unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_SHSTK_STATUS, &mut status as *mut u64) };
    if rc == 0 {
        return Ok(status);
    }
    Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// Whether the CPU implements CET shadow stacks: CPUID leaf 7, subleaf 0, ECX bit
/// 7 (`CET_SS`; Intel SDM vol. 2A, CPUID). Without it neither the kernel nor a
/// thread can turn one on (enabling it sets CR4.CET, which faults on such a CPU),
/// and a hypervisor that hides the bit hides the feature from its guest kernel too.
///
/// Asked once per process: `cpuid` traps to the hypervisor in a virtual machine.
pub(crate) fn cpu_has_shadow_stack() -> bool {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    static ANSWER: AtomicU8 = AtomicU8::new(UNASKED);
    match ANSWER.load(Ordering::Relaxed) {
        UNASKED => {}
        answer => return answer == YES,
    }
    // Leaf 0 gives the highest basic leaf; leaf 7 exists on every x86_64 CPU made
    // since 2013, but is checked for.
    // `unsafe` for toolchains before the intrinsics became safe (the crate's
    // minimum Rust is 1.88).
    #[allow(unused_unsafe)]
    // SAFETY: `cpuid` exists on every x86_64 CPU and has no side effects.
    let has = unsafe { __cpuid(0).eax >= 7 && __cpuid_count(7, 0).ecx & (1 << 7) != 0 };
    ANSWER.store(if has { YES } else { NO }, Ordering::Relaxed);
    has
}

/// [`cpu_has_shadow_stack`]'s cached answers.
const UNASKED: u8 = 0;
/// See [`UNASKED`].
const NO: u8 = 1;
/// See [`UNASKED`].
const YES: u8 = 2;

/// Whether a status word from [`shadow_stack_status`] says the shadow stack is on.
pub(crate) fn shadow_stack_enabled(status: Option<u64>) -> bool {
    status.is_some_and(|bits| bits & ARCH_SHSTK_SHSTK != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words() {
        assert!(!shadow_stack_enabled(None));
        assert!(!shadow_stack_enabled(Some(0)));
        assert!(!shadow_stack_enabled(Some(0b10)), "WRSS alone is not the shadow stack");
        assert!(shadow_stack_enabled(Some(1)));
        assert!(shadow_stack_enabled(Some(0b11)));
    }

    #[test]
    fn no_status_without_cpu_support() {
        if !cpu_has_shadow_stack() {
            assert_eq!(shadow_stack_status(), None);
        }
        // With support, the kernel's answer (or `None` on a kernel without the
        // request) is what `status_is_stable` checks.
        println!("CET shadow stack in CPUID: {}", cpu_has_shadow_stack());
    }

    #[test]
    fn status_is_stable() {
        // Twice the same answer, whether or not the first one was cached.
        assert_eq!(shadow_stack_status(), shadow_stack_status());
    }
}
