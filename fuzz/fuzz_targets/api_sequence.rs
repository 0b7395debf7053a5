//! Fuzz target: arbitrary sequences of API calls, nested inside `with` closures,
//! value drops and at-exit handlers, run on a fresh thread; the real event log must
//! equal the model's, and the real run must leak exactly what the model leaks.

#![no_main]

#[path = "api_sequence/model.rs"]
mod model;
#[path = "api_sequence/ops.rs"]
mod ops;
#[path = "api_sequence/real.rs"]
mod real;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: Vec<ops::Op>| {
    static KEYS: std::sync::Once = std::sync::Once::new();
    KEYS.call_once(real::assign_key_indices);
    let mut ops = input;
    ops::bound(&mut ops);
    let log = Arc::new(Mutex::new(Vec::new()));
    let live_before = real::LIVE.load(Ordering::SeqCst);
    let (thread_log, thread_ops) = (log.clone(), ops.clone());
    let hijacked = std::thread::spawn(move || real::Exec::new(thread_log).run_top(&thread_ops))
        .join()
        .expect("the real run panicked");
    let mut actual = log.lock().unwrap().clone();
    let model = model::Model::run_thread(&ops, hijacked);
    let mut expected = model.events.clone();
    ops::normalise(&mut actual);
    ops::normalise(&mut expected);
    assert_eq!(actual, expected, "event logs differ (hijacked: {hijacked}) for {ops:#?}");
    let leaked = real::LIVE.load(Ordering::SeqCst) - live_before;
    assert_eq!(leaked, model.leaked as isize, "leaked values differ for {ops:#?}");
});
