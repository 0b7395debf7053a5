//! In-process unwinders see the true stack of a hijacked thread: libgcc's
//! `_Unwind_Backtrace`, `std::backtrace` and the `backtrace` crate, taken inside
//! the thread and inside an at-exit handler; panics behave as without the hijack.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{EXPECT_HIJACK, libgcc};
use hijack_tls::Status;

/// Frame names of a `std::backtrace::Backtrace`, innermost first.
fn std_frames() -> Vec<String> {
    let text = std::backtrace::Backtrace::force_capture().to_string();
    text.lines()
        .filter_map(|line| {
            let (index, name) = line.trim_start().split_once(": ")?;
            index.parse::<usize>().ok().map(|_| name.trim().to_owned())
        })
        .collect()
}

/// Frame names from the `backtrace` crate, innermost first.
fn crate_frames() -> Vec<String> {
    let mut names = Vec::new();
    backtrace::trace(|frame| {
        let mut name = String::from("<unknown>");
        backtrace::resolve_frame(frame, |symbol| {
            if let Some(n) = symbol.name() {
                name = n.to_string();
            }
        });
        names.push(name);
        true
    });
    names
}

/// The frames from `marker` outwards (the marker itself included).
fn from_marker(frames: &[String], marker: &str) -> Vec<String> {
    let at = frames.iter().position(|f| f.contains(marker));
    let at = at.unwrap_or_else(|| panic!("no {marker} in {frames:#?}"));
    frames[at..].to_vec()
}

fn is_trampoline(name: &str) -> bool {
    name.contains("hijack_tls_trampoline_")
}

/// Both capture methods, taken from inside a named marker frame.
#[inline(never)]
fn marker_in_thread() -> (Vec<String>, Vec<String>) {
    let frames = (std_frames(), crate_frames());
    std::hint::black_box(&frames);
    frames
}

#[test]
fn backtraces_below_user_code_match_an_unhijacked_thread() {
    std::thread::spawn(|| {
        hijack_tls::set("x", 1);
        let hijacked = hijack_tls::status();
        let (std_hijacked, crate_hijacked) = marker_in_thread();
        hijack_tls::unload(); // restores the original return address
        let (std_plain, crate_plain) = marker_in_thread();

        for (hijacked_frames, plain_frames) in
            [(std_hijacked, std_plain), (crate_hijacked, crate_plain)]
        {
            let with = from_marker(&hijacked_frames, "marker_in_thread");
            let without = from_marker(&plain_frames, "marker_in_thread");
            let tail = without.iter().rev().take(2).collect::<Vec<_>>();
            // x86_64 glibc ends in `clone3`; aarch64 glibc 2.36 in `clone`'s child
            // label `thread_start` (named from libc6-dbg's symbols).
            assert!(
                tail.iter().any(|f| f.contains("clone3")
                    || f.contains("clone")
                    || f.as_str() == "thread_start"),
                "the plain stack ends in clone3/thread_start: {without:#?}"
            );
            let trampolines = with.iter().filter(|f| is_trampoline(f)).count();
            let expected_trampolines = usize::from(matches!(hijacked, Status::Hijacked { .. }));
            assert_eq!(trampolines, expected_trampolines, "{with:#?}");
            let unnamed = with.iter().filter(|f| f.contains("<unknown>")).count();
            assert_eq!(unnamed, without.iter().filter(|f| f.contains("<unknown>")).count());
            let with_less: Vec<_> = with.iter().filter(|f| !is_trampoline(f)).cloned().collect();
            assert_eq!(with_less, without, "same frames but for one trampoline frame");
        }
        if EXPECT_HIJACK {
            assert!(matches!(hijacked, Status::Hijacked { .. }), "{hijacked}");
        }
    })
    .join()
    .unwrap();
}

#[test]
fn libgcc_steps_from_the_trampoline_to_the_original_return_address() {
    libgcc::check_steps_through_the_trampoline();
}

#[test]
fn backtrace_inside_an_at_exit_handler_reaches_the_stack_end() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let reason = Arc::new(AtomicUsize::new(0));
    let (seen2, reason2) = (seen.clone(), reason.clone());
    std::thread::spawn(move || {
        hijack_tls::at_exit(move || {
            *seen2.lock().unwrap() = std_frames();
            reason2.store(libgcc::ips().1 as usize, Ordering::SeqCst);
        });
    })
    .join()
    .unwrap();
    let frames = seen.lock().unwrap().clone();
    assert_eq!(reason.load(Ordering::SeqCst), libgcc::URC_END_OF_STACK as usize, "{frames:#?}");
    assert!(frames.iter().any(|f| f.contains("start_thread")), "{frames:#?}");
    if EXPECT_HIJACK {
        assert!(frames.iter().any(|f| f.contains("on_trampoline")), "{frames:#?}");
        assert_eq!(frames.iter().filter(|f| is_trampoline(f)).count(), 1, "{frames:#?}");
    }
}

#[test]
fn a_caught_panic_behaves_as_without_the_hijack() {
    let handled = Arc::new(AtomicUsize::new(0));
    let handled2 = handled.clone();
    let result = std::thread::spawn(move || {
        hijack_tls::at_exit(move || {
            handled2.fetch_add(1, Ordering::SeqCst);
        });
        let caught = std::panic::catch_unwind(|| panic!("inner"));
        assert!(caught.is_err());
        hijack_tls::set("after", 1_u8);
        7
    })
    .join()
    .unwrap();
    assert_eq!(result, 7);
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

#[test]
fn a_panic_escaping_the_thread_still_runs_the_exit_sequence_once() {
    let handled = Arc::new(AtomicUsize::new(0));
    let handled2 = handled.clone();
    let joined = std::thread::spawn(move || {
        hijack_tls::at_exit(move || {
            handled2.fetch_add(1, Ordering::SeqCst);
        });
        std::panic::panic_any(42_u32);
    })
    .join();
    let payload = joined.expect_err("the panic reaches join");
    assert_eq!(payload.downcast_ref::<u32>(), Some(&42));
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}
