//! `cargo run --example doctor`: what hijack-tls can do on this machine.

use std::cell::Cell;
use std::sync::mpsc;

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
    println!(
        "  HIJACK_TLS:    {}",
        std::env::var("HIJACK_TLS").unwrap_or_else(|_| "(unset)".into())
    );

    let (sender, receiver) = mpsc::channel();
    let (go, wait) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        hijack_tls::set("greeting", String::from("hello from a stored value"));
        NATIVE.with(|n| n.0.set(7));
        hijack_tls::at_exit(|| {
            let greeting: Option<String> = hijack_tls::get(&"greeting");
            println!("  [thread] at-exit handler runs; stored value: {greeting:?}");
            match NATIVE.try_with(|n| n.0.get()) {
                Ok(v) => println!("  [thread] std thread_local! still alive in the handler: {v}"),
                Err(_) => {
                    println!("  [thread] std thread_local! already destroyed (fallback order)")
                }
            }
        });
        sender.send((hijack_tls::id(), hijack_tls::status())).unwrap();
        wait.recv().unwrap();
        "thread result"
    });
    let (id, status) = receiver.recv().unwrap();
    println!("  new thread:    id {id}");
    println!("  arming:        {status}");
    println!("  demonstration (the thread now returns):");
    go.send(()).unwrap();
    let result = thread.join().unwrap();
    println!("  joined; the thread returned {result:?}");
}

fn libc_version() -> String {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
        let version = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
        format!("glibc {}", version.to_string_lossy())
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        "not glibc".to_owned()
    }
}
