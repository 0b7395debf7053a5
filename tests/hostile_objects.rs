//! Hostile objects: a plugin whose segments have unreadable gaps between them
//! (`-z max-page-size=0x200000 -z separate-code`: the loader leaves the holes
//! `PROT_NONE`, and `_dl_find_object` reports the whole span, holes included), with
//! its `.eh_frame_hdr` search table patched to send every FDE pointer into a hole;
//! and a plugin with no `.eh_frame_hdr` at all. A thread whose start routine is in
//! the plugin does its first use: the walk must look up a pc there, and must fall
//! back with the exact reason, never read the hole.
//!
//! Plugins are C (`tests/fixtures/hostile/plugin.c`), built with gcc
//! (`aarch64-linux-gnu-gcc` for aarch64; `HIJACK_TLS_TEST_CC` overrides) into
//! `CARGO_TARGET_TMPDIR`. Each case runs in a child test process with a timeout,
//! since the failure it guards against is a SIGSEGV.

mod common;

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::{EXPECT_HIJACK, is_child, run_child_timeout};

/// The variable that passes a plugin's path to the child test process.
const PLUGIN_VAR: &str = "HIJACK_TLS_TEST_PLUGIN";
/// The variable that passes the patched FDE target (an object-relative address).
const TARGET_VAR: &str = "HIJACK_TLS_TEST_GAP_TARGET";

/// The C compiler for the target.
fn compiler() -> String {
    std::env::var("HIJACK_TLS_TEST_CC").unwrap_or_else(|_| {
        if cfg!(target_arch = "aarch64") { "aarch64-linux-gnu-gcc" } else { "gcc" }.to_owned()
    })
}

/// Builds the plugin with the extra linker flags `flags` into `name`.
fn build_plugin(name: &str, flags: &[&str]) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile/plugin.c");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let status = Command::new(compiler())
        .args(["-shared", "-fPIC", "-O1", "-pthread", "-fasynchronous-unwind-tables", "-o"])
        .arg(&out)
        .arg(&source)
        .args(flags)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {} (set HIJACK_TLS_TEST_CC): {e}", compiler()));
    assert!(status.success(), "building {name}");
    out
}

/// Linker flags that leave unreadable gaps between the plugin's segments.
const GAPPED: [&str; 2] = ["-Wl,-z,max-page-size=0x200000", "-Wl,-z,separate-code"];

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap())
}
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// `(file offset, address, size)` of the section named `wanted` of a 64-bit
/// little-endian ELF file.
fn section(elf: &[u8], wanted: &str) -> Option<(usize, u64, u64)> {
    assert_eq!(&elf[..6], b"\x7fELF\x02\x01", "64-bit little-endian ELF");
    let (shoff, shentsize) = (u64_at(elf, 0x28) as usize, usize::from(u16_at(elf, 0x3a)));
    let (shnum, shstrndx) = (usize::from(u16_at(elf, 0x3c)), usize::from(u16_at(elf, 0x3e)));
    let header = |i: usize| shoff + i * shentsize;
    let names = u64_at(elf, header(shstrndx) + 0x18) as usize;
    (0..shnum).map(header).find_map(|h| {
        let name = &elf[names + u32_at(elf, h) as usize..];
        let name = &name[..name.iter().position(|&b| b == 0)?];
        (name == wanted.as_bytes())
            .then(|| (u64_at(elf, h + 0x18) as usize, u64_at(elf, h + 0x10), u64_at(elf, h + 0x20)))
    })
}

/// `[start, end)` addresses of the `PT_LOAD` segments of a 64-bit ELF file.
fn loads(elf: &[u8]) -> Vec<(u64, u64)> {
    let (phoff, phentsize) = (u64_at(elf, 0x20) as usize, usize::from(u16_at(elf, 0x36)));
    let phnum = usize::from(u16_at(elf, 0x38));
    let mut loads: Vec<(u64, u64)> = (0..phnum)
        .map(|i| phoff + i * phentsize)
        .filter(|&p| u32_at(elf, p) == 1) // PT_LOAD
        .map(|p| (u64_at(elf, p + 0x10), u64_at(elf, p + 0x10) + u64_at(elf, p + 0x28)))
        .collect();
    loads.sort();
    loads
}

/// Rewrites every `.eh_frame_hdr` search-table entry of the plugin at `path` to
/// point at an address inside the hole after the segment holding the header;
/// returns that address (relative to the object's load address).
fn patch_table_into_gap(path: &Path) -> u64 {
    let mut elf = std::fs::read(path).unwrap();
    let (offset, address, _) = section(&elf, ".eh_frame_hdr").expect(".eh_frame_hdr");
    // version 1, eh_frame_ptr pcrel|sdata4, count udata4, table datarel|sdata4.
    assert_eq!(elf[offset..offset + 4], [1, 0x1b, 0x03, 0x3b], "the usual header");
    let count = u32_at(&elf, offset + 8) as usize;
    assert!(count > 0, "a search table");
    let loads = loads(&elf);
    let holder = loads.iter().position(|&(lo, hi)| lo <= address && address < hi).unwrap();
    let (_, end) = loads[holder];
    let next = loads.get(holder + 1).expect("a segment after the header's").0;
    // 64 KiB steps: a page on every kernel configuration.
    let (hole_start, hole_end) = ((end + 0xffff) & !0xffff, next & !0xffff);
    assert!(hole_end >= hole_start + 0x10000, "a hole of at least 64 KiB: {loads:x?}");
    let target = hole_start + 0x100;
    let relative = i32::try_from(target - address).unwrap();
    for entry in 0..count {
        let fde = offset + 12 + entry * 8 + 4;
        elf[fde..fde + 4].copy_from_slice(&relative.to_le_bytes());
    }
    std::fs::write(path, &elf).unwrap();
    target
}

/// The status the plugin thread's first use saw, as text.
static SEEN: Mutex<String> = Mutex::new(String::new());

/// The plugin thread's first use.
extern "C" fn first_use() {
    hijack_tls::id();
    *SEEN.lock().unwrap() = hijack_tls::status().to_string();
}

/// The permissions `/proc/self/maps` lists for `address` (`None`: unmapped).
fn permissions_at(address: u64) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().find_map(|line| {
        let (range, rest) = line.split_once(' ')?;
        let (lo, hi) = range.split_once('-')?;
        let (lo, hi) = (u64::from_str_radix(lo, 16).ok()?, u64::from_str_radix(hi, 16).ok()?);
        (lo <= address && address < hi).then(|| rest[..4].to_owned())
    })
}

/// Child body: loads the plugin named by `PLUGIN_VAR`, checks that the patched
/// target (if any) is unreadable, runs its thread and prints `status: <status>`.
fn run_plugin_thread() {
    let path = CString::new(std::env::var(PLUGIN_VAR).unwrap()).unwrap();
    // SAFETY: a NUL-terminated path to a plugin whose only constructors are gcc's.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "dlopen");
    // SAFETY: a live handle and a NUL-terminated name.
    let run = unsafe { libc::dlsym(handle, c"plugin_run".as_ptr()) };
    assert!(!run.is_null(), "plugin_run");
    if let Ok(target) = std::env::var(TARGET_VAR) {
        // SAFETY: an all-zero Dl_info is a valid out-value; dladdr only reads.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: dladdr only reads loader state and writes `info`.
        assert_ne!(unsafe { libc::dladdr(run, &mut info) }, 0);
        let address = info.dli_fbase as u64 + target.parse::<u64>().unwrap();
        let permissions = permissions_at(address);
        println!("patched target {address:#x}: {permissions:?}");
        assert!(!permissions.is_some_and(|p| p.starts_with('r')), "the target must be unreadable");
    }
    // SAFETY: `plugin_run` is `int plugin_run(void (*)(void))` (plugin.c).
    let run: extern "C" fn(extern "C" fn()) -> i32 = unsafe { std::mem::transmute(run) };
    assert_eq!(run(first_use), 0, "plugin_run");
    println!("status: {}", SEEN.lock().unwrap());
}

/// Runs `case` in a child with the plugin at `plugin` and returns its stdout
/// after checking it exited 0.
fn run_case(case: &str, plugin: &Path, target: Option<u64>) -> String {
    let plugin = plugin.to_str().unwrap().to_owned();
    let target = target.map(|t| t.to_string());
    let mut env = vec![(PLUGIN_VAR, plugin.as_str())];
    if let Some(target) = &target {
        env.push((TARGET_VAR, target.as_str()));
    }
    let (code, out, err) = run_child_timeout(case, &env, Duration::from_secs(60));
    assert_eq!(code, Some(0), "case {case}\nstdout:\n{out}\nstderr:\n{err}");
    out
}

/// The status line a child printed.
fn status_line(out: &str) -> &str {
    out.lines().find_map(|l| l.split_once("status: ").map(|(_, s)| s)).expect("a status line")
}

/// The gapped plugin, unpatched: its thread is hijacked (the walk through an
/// object with holes works, so the cases below fail for their own reason).
#[test]
fn gapped_plugin_thread_is_hijacked() {
    const CASE: &str = "gapped_plugin_thread_is_hijacked";
    if is_child(CASE) {
        return run_plugin_thread();
    }
    let plugin = build_plugin("hostile-gapped.so", &GAPPED);
    let out = run_case(CASE, &plugin, None);
    if EXPECT_HIJACK {
        assert!(status_line(&out).starts_with("hijacked"), "{out}");
    }
}

/// The gapped plugin with every search-table entry pointing into a hole: the
/// first use falls back naming the bad table, and does not crash.
#[test]
fn search_table_entry_into_a_hole_falls_back() {
    const CASE: &str = "search_table_entry_into_a_hole_falls_back";
    if is_child(CASE) {
        return run_plugin_thread();
    }
    let plugin = build_plugin("hostile-table-into-hole.so", &GAPPED);
    let target = patch_table_into_gap(&plugin);
    let out = run_case(CASE, &plugin, Some(target));
    if EXPECT_HIJACK {
        let status = status_line(&out);
        assert!(status.contains("search table"), "{out}");
        assert!(status.contains("points outside .eh_frame"), "{out}");
    }
}

/// A plugin linked without `.eh_frame_hdr`: a clean fallback naming it.
#[test]
fn plugin_without_eh_frame_hdr_falls_back() {
    const CASE: &str = "plugin_without_eh_frame_hdr_falls_back";
    if is_child(CASE) {
        return run_plugin_thread();
    }
    let plugin = build_plugin("hostile-no-eh-frame-hdr.so", &["-Wl,--no-eh-frame-hdr"]);
    assert!(section(&std::fs::read(&plugin).unwrap(), ".eh_frame_hdr").is_none());
    let out = run_case(CASE, &plugin, None);
    if EXPECT_HIJACK {
        assert!(status_line(&out).contains("has no .eh_frame_hdr"), "{out}");
    }
}
