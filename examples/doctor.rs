//! `cargo run --example doctor`: what hijack-tls can do on this machine.

use std::cell::Cell;
use std::ffi::CStr;
use std::sync::mpsc;

use hijack_tls::diagnostics;

thread_local! {
    /// A std thread-local with a destructor, read from an at-exit handler.
    static NATIVE: Native = const { Native(Cell::new(0)) };
}

struct Native(Cell<u32>);

impl Drop for Native {
    fn drop(&mut self) {
        println!("  [thread] std thread_local! destructor runs");
    }
}

fn main() {
    println!("hijack-tls doctor");
    println!("  target:        {}-{}", std::env::consts::ARCH, std::env::consts::OS);
    println!("  libc:          {}", libc_version());
    println!("  hijack built:  {}", cfg!(feature = "hijack"));
    let switch = std::env::var("HIJACK_TLS").unwrap_or_else(|_| "(unset)".into());
    println!("  HIJACK_TLS:    {switch}");
    for (name, state) in diagnostics::protections() {
        println!("  {name}: {state}");
    }

    let (sender, receiver) = mpsc::channel();
    let (go, wait) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        report_walk();
        hijack_tls::set("greeting", String::from("hello from a stored value"));
        NATIVE.with(|n| n.0.set(7));
        hijack_tls::at_exit(|| {
            let greeting: Option<String> = hijack_tls::get(&"greeting");
            println!("  [thread] at-exit handler runs; stored value: {greeting:?}");
            println!("  [thread] status in the handler: {}", hijack_tls::status());
            match NATIVE.try_with(|n| n.0.get()) {
                Ok(v) => println!("  [thread] std thread_local! still alive in the handler: {v}"),
                Err(_) => {
                    println!("  [thread] std thread_local! already destroyed (fallback order)")
                }
            }
        });
        sender.send((hijack_tls::id(), hijack_tls::status(), backtrace_here())).unwrap();
        wait.recv().unwrap();
        "thread result"
    });
    let (id, status, backtrace) = receiver.recv().unwrap();
    println!("  new thread:    id {id}");
    println!("  arming:        {status}");
    let aware = diagnostics::unwinders_aware();
    let aware = if aware.is_empty() { "none".to_owned() } else { aware.join("; ") };
    println!("  unwinders told about the trampoline: {aware}");
    println!("  backtrace taken inside the hijacked thread:");
    for line in backtrace.lines() {
        println!("    {line}");
    }
    println!("  demonstration (the thread now returns):");
    go.send(()).unwrap();
    let result = thread.join().unwrap();
    println!("  joined; the thread returned {result:?}");
    println!(
        "  hijacked threads whose trampoline never ran (safety net instead): {}",
        diagnostics::missed_hijacks()
    );
    // A second thread's first use confirms the stack fields the first one located.
    std::thread::spawn(hijack_tls::id).join().unwrap();
    println!("  stack bounds of new threads from: {}", diagnostics::stack_bounds_source());
}

/// Prints every frame the CFI walk visits on this thread, and the slot it picks.
fn report_walk() {
    let (frames, slot) = diagnostics::walk_this_thread();
    println!("  stack walk of a fresh thread ({} frames):", frames.len());
    for (index, frame) in frames.iter().enumerate() {
        let libc = if frame.in_libc { " [libc]" } else { "" };
        let signal = if frame.signal_frame { " [signal frame]" } else { "" };
        let name = symbol_name(frame.pc);
        println!(
            "    #{index:<2} pc {:#014x} cfa {:#014x}{libc}{signal} {name}",
            frame.pc, frame.cfa
        );
    }
    match slot {
        Ok(slot) => println!(
            "  chosen slot:   {:#x} holding {:#x} (returns into {}){}",
            slot.slot,
            slot.original_return,
            symbol_name(slot.original_return),
            if slot.signed { ", signed (PAC)" } else { "" }
        ),
        Err(reason) => println!("  no slot:       {reason}"),
    }
}

/// A std backtrace from inside the thread, trimmed to frame names.
fn backtrace_here() -> String {
    let text = std::backtrace::Backtrace::force_capture().to_string();
    text.lines().filter(|line| !line.trim_start().starts_with("at ")).collect::<Vec<_>>().join("\n")
}

/// The symbol containing `pc` (from debug info and `.symtab` through the `backtrace`
/// crate), with the object `dladdr` names.
fn symbol_name(pc: usize) -> String {
    let mut name = None;
    backtrace::resolve((pc - 1) as *mut libc::c_void, |symbol| {
        if name.is_none() {
            name = symbol.name().map(|n| format!("{n:#}"));
        }
    });
    let object = object_name(pc);
    match name {
        Some(name) => format!("{name} ({object})"),
        None => format!("({object})"),
    }
}

/// The object containing `pc`, as `dladdr` reports it.
fn object_name(pc: usize) -> String {
    // SAFETY: dladdr only reads loader data structures and writes `info`.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid out-pointer; any pc value is allowed.
    let found = unsafe { libc::dladdr(pc as *const libc::c_void, &mut info) } != 0;
    if !found || info.dli_fname.is_null() {
        return "?".to_owned();
    }
    // SAFETY: dladdr returned a NUL-terminated object path.
    let path = unsafe { CStr::from_ptr(info.dli_fname) }.to_string_lossy();
    path.rsplit('/').next().unwrap_or_default().to_owned()
}

fn libc_version() -> String {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
        let version = unsafe { CStr::from_ptr(libc::gnu_get_libc_version()) };
        format!("glibc {}", version.to_string_lossy())
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        "not glibc".to_owned()
    }
}
