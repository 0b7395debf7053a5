//! The facts the doctor (`examples/doctor.rs`) prints come from
//! `hijack_tls::diagnostics`: here each is checked against an independent source
//! on this machine (procfs, `dladdr`, CPUID).

mod common;

use hijack_tls::diagnostics;

#[test]
fn kernel_release_is_the_running_kernels() {
    let procfs = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(diagnostics::kernel_release(), procfs.trim_end());
}

/// The object `dladdr` names for `address`.
fn file_of(address: usize) -> String {
    // SAFETY: an all-zero `Dl_info` is a valid out-value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads loader state and writes `info`.
    assert_ne!(unsafe { libc::dladdr(address as *const _, &mut info) }, 0);
    // SAFETY: a non-null `dli_fname` is a NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }.to_string_lossy().into_owned()
}

#[test]
fn libc_is_found_in_libc_so_6_by_its_local_scope() {
    assert_eq!(diagnostics::libc_choice().is_some(), common::EXPECT_HIJACK);
    let Some(choice) = diagnostics::libc_choice() else { return };
    assert!(file_of(choice.pthread_create).ends_with("/libc.so.6"));
    assert!(choice.rule.contains("local scope of the loaded libc.so.6"), "{}", choice.rule);
}

#[test]
fn libc_extent_holds_its_pthread_create_and_eh_frame_hdr() {
    let Some(choice) = diagnostics::libc_choice() else { return };
    let extent = diagnostics::object_extent(choice.pthread_create).expect("libc's extent");
    let inside = |address: usize| {
        extent
            .segments
            .iter()
            .any(|&(start, end, readable)| readable && start <= address && address < end)
    };
    assert!(inside(choice.pthread_create), "{extent:x?}");
    assert!(inside(extent.eh_frame_hdr.expect("libc has PT_GNU_EH_FRAME")), "{extent:x?}");
    let (start, end) = extent.reported;
    assert!(start <= choice.pthread_create && choice.pthread_create < end, "{extent:x?}");
}

/// The shadow-stack line names the CPU when CPUID leaf 7 ECX bit 7 is clear, and
/// never blames the CPU when it is set; an absent one names the kernel release.
#[cfg(target_arch = "x86_64")]
#[test]
fn shadow_stack_line_names_what_is_missing() {
    if !common::EXPECT_HIJACK {
        return;
    }
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    #[allow(unused_unsafe)]
    // SAFETY: cpuid exists on every x86_64 CPU and has no side effects.
    let cpu_has = unsafe { __cpuid(0).eax >= 7 && __cpuid_count(7, 0).ecx & (1 << 7) != 0 };
    let [.., (name, line)] = diagnostics::protections();
    assert_eq!(name, "shadow stack");
    let blames_cpu = line.contains("the CPU has no CET shadow stack");
    assert_eq!(blames_cpu, !cpu_has, "{line}");
    if line.starts_with("not available") {
        assert!(line.contains(&format!("Linux {}", diagnostics::kernel_release())), "{line}");
    }
}
