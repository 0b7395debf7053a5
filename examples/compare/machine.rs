//! The table's header: machine, kernel, C library and build.

use std::ffi::CStr;

/// One line describing where the table was measured.
pub fn describe() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("model name"))?;
            Some(line.split_once(':')?.1.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let profile = if cfg!(debug_assertions) { "debug build (use --release)" } else { "release" };
    format!(
        "{cpu}, {cores} cores, {} {} {}, glibc {}, {profile}",
        uname(|u| &u.sysname),
        uname(|u| &u.release),
        std::env::consts::ARCH,
        glibc_version()
    )
}

fn uname(field: impl Fn(&libc::utsname) -> &[libc::c_char; 65]) -> String {
    // SAFETY: utsname is plain old data; all-zero is a valid value.
    let mut name: libc::utsname = unsafe { core::mem::zeroed() };
    // SAFETY: `name` is a valid out-pointer.
    if unsafe { libc::uname(&mut name) } != 0 {
        return "?".to_owned();
    }
    // SAFETY: uname NUL-terminates every field it fills.
    unsafe { CStr::from_ptr(field(&name).as_ptr()) }.to_string_lossy().into_owned()
}

fn glibc_version() -> String {
    // SAFETY: returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(libc::gnu_get_libc_version()) }.to_string_lossy().into_owned()
}
