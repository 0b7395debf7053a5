//! Exit-sequence behaviour that shows on stderr or in the process outcome, checked
//! in child processes: caught panics, the round bound, the kill switch.

mod common;

use common::{is_child, run_child};
use hijack_tls::{FallbackReason, Status};

#[test]
fn child_panics_in_handlers_and_drops() {
    if !is_child("child_panics_in_handlers_and_drops") {
        return;
    }
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("drop boom");
        }
    }
    std::thread::spawn(|| {
        hijack_tls::set("a", 1_u8);
        hijack_tls::at_exit(|| println!("first handler ran"));
        hijack_tls::set("b", PanicOnDrop);
        hijack_tls::at_exit(|| panic!("handler boom"));
        hijack_tls::at_exit(|| println!("last handler ran"));
        hijack_tls::at_exit(|| {
            hijack_tls::at_exit(|| println!("nested handler ran"));
        });
    })
    .join()
    .expect("the thread itself ends normally");
    println!("joined");
}

#[test]
fn panics_are_contained_and_reported_once() {
    let (ok, out, err) = run_child("child_panics_in_handlers_and_drops", &[]);
    assert!(ok, "process must not abort\n{out}\n{err}");
    for line in ["nested handler ran", "last handler ran", "first handler ran", "joined"] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    let reports: Vec<_> = err.lines().filter(|l| l.starts_with("hijack-tls:")).collect();
    assert_eq!(reports.len(), 1, "{err}");
    assert!(reports[0].contains("2 panic(s)") && reports[0].contains("handler boom"), "{err}");
}

#[test]
fn child_endless_registration() {
    if !is_child("child_endless_registration") {
        return;
    }
    struct Respawn(u32);
    impl Drop for Respawn {
        fn drop(&mut self) {
            println!("drop {}", self.0);
            hijack_tls::set("again", Respawn(self.0 + 1));
        }
    }
    std::thread::spawn(|| hijack_tls::set("again", Respawn(1))).join().unwrap();
    println!("joined");
}

#[test]
fn the_round_bound_stops_endless_registration_with_a_message() {
    let (ok, out, err) = run_child("child_endless_registration", &[]);
    assert!(ok, "{out}\n{err}");
    let rounds = hijack_tls::MAX_ROUNDS as u32;
    // One drop per round, plus the last round after the record closed.
    for n in 1..=rounds + 1 {
        assert!(out.contains(&format!("drop {n}\n")), "missing drop {n}\n{out}");
    }
    assert!(!out.contains(&format!("drop {}\n", rounds + 2)), "{out}");
    assert!(out.contains("joined"));
    assert!(err.contains("leaked, not run") && err.contains("1 value(s)"), "{err}");
}

#[test]
fn child_kill_switch() {
    if !is_child("child_kill_switch") {
        return;
    }
    let status = std::thread::spawn(|| {
        hijack_tls::set(1, 1);
        hijack_tls::status()
    })
    .join()
    .unwrap();
    println!("{status:?}");
    let expected = if cfg!(feature = "hijack") {
        if common::HIJACK_TARGET {
            FallbackReason::DisabledByEnvironment
        } else {
            FallbackReason::UnsupportedTarget
        }
    } else {
        FallbackReason::FeatureDisabled
    };
    assert!(matches!(status, Status::Fallback { reason, .. } if reason == expected));
}

#[test]
fn hijack_tls_off_forces_the_fallback() {
    for value in ["off", "OFF", "0"] {
        let (ok, out, err) = run_child("child_kill_switch", &[("HIJACK_TLS", value)]);
        assert!(ok, "{value}: {out}\n{err}");
    }
}
