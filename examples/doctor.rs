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
    println!("  kernel:        Linux {}", diagnostics::kernel_release());
    println!("  hijack built:  {}", cfg!(feature = "hijack"));
    let switch = std::env::var("HIJACK_TLS").unwrap_or_else(|_| "(unset)".into());
    println!("  HIJACK_TLS:    {switch}");
    for (name, state) in diagnostics::protections() {
        println!("  {name}: {state}");
    }
    report_libc();
    report_extent("this program's code (main)", main as *const () as usize);

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
    // The main thread's first use, to show how it is armed.
    hijack_tls::id();
    let main_status = hijack_tls::status();
    println!("  main thread:   {main_status}");
    if let hijack_tls::Status::Hijacked { .. } = main_status {
        println!(
            "    (runs its hooks when main returns; exit() or std::process::exit before that \
             skips the trampoline: the hooks then run from the safety net, among the main \
             thread's TLS destructors)"
        );
    }
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

/// Which object the walk takes for libc, by which rule, and the extent it uses.
fn report_libc() {
    match diagnostics::libc_choice() {
        Some(choice) => {
            println!(
                "  libc object:   {} (holds libc's own pthread_create at {:#x}; found by {})",
                object_path(choice.pthread_create),
                choice.pthread_create,
                choice.rule
            );
            report_extent("libc", choice.pthread_create);
        }
        None => println!("  libc object:   not looked for (the hijack is not built)"),
    }
}

/// The extent of the object holding `address` as the walk's lookup sees it.
fn report_extent(what: &str, address: usize) {
    match diagnostics::object_extent(address) {
        Ok(extent) => {
            let (start, end) = extent.reported;
            println!(
                "  extent of {what} ({}): {} reports {start:#x}..{end:#x}; segments from {}:",
                object_path(address),
                extent.lookup,
                extent.segments_from
            );
            for (start, end, readable) in extent.segments {
                let access = if readable { "readable" } else { "not readable" };
                println!("    PT_LOAD {start:#014x}..{end:#014x} {access}");
            }
            match extent.eh_frame_hdr {
                Some(hdr) => println!("    PT_GNU_EH_FRAME at {hdr:#x}"),
                None => println!("    no PT_GNU_EH_FRAME"),
            }
        }
        Err(reason) => println!("  extent of {what}: {reason}"),
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

/// The object containing `pc`, as `dladdr` reports it, file name only.
fn object_name(pc: usize) -> String {
    let path = object_path(pc);
    path.rsplit('/').next().unwrap_or_default().to_owned()
}

/// The path of the object containing `pc`, as `dladdr` reports it (the main
/// program's is empty in glibc's answer: shown as `the main program`).
fn object_path(pc: usize) -> String {
    // SAFETY: dladdr only reads loader data structures and writes `info`.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid out-pointer; any pc value is allowed.
    let found = unsafe { libc::dladdr(pc as *const libc::c_void, &mut info) } != 0;
    if !found || info.dli_fname.is_null() {
        return "?".to_owned();
    }
    // SAFETY: dladdr returned a NUL-terminated object path.
    let path = unsafe { CStr::from_ptr(info.dli_fname) }.to_string_lossy().into_owned();
    if path.is_empty() { "the main program".to_owned() } else { path }
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
