//! A std thread-local whose destructor logs `thread_local destructor`: the witness
//! of whether the TLS destructors have run yet.

use super::Log;
use std::cell::Cell;

/// Logs its destructor into the log it was armed with, if any.
struct Probe(Cell<Option<Log>>);

impl Drop for Probe {
    fn drop(&mut self) {
        if let Some(log) = self.0.take() {
            log.push("thread_local destructor");
        }
    }
}

thread_local! {
    static PROBE: Probe = const { Probe(Cell::new(None)) };
}

/// Makes this thread's probe log its destructor into `log`; registers the
/// destructor with std if this is the probe's first use on the thread.
pub fn arm(log: &Log) {
    PROBE.with(|p| p.0.set(Some(log.clone())));
}

/// Whether this thread's probe is still alive (its destructor has not run).
pub fn alive() -> bool {
    PROBE.try_with(|_| ()).is_ok()
}

/// Registers an at-exit handler that logs whether the probe is still alive when it
/// runs: `handler: thread_local alive = <bool>`.
pub fn log_alive_at_exit(log: &Log) {
    let log = log.clone();
    hijack_tls::at_exit(move || log.push(format!("handler: thread_local alive = {}", alive())));
}
