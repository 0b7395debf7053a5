//! Messages on stderr, written without std's stderr lock so they work in any state
//! of thread teardown.

use core::any::Any;
use core::fmt;
use std::panic::{self, AssertUnwindSafe};

/// Writes `hijack-tls: <message>\n` to stderr in one `write`.
pub(crate) fn line(message: fmt::Arguments<'_>) {
    let text = format!("hijack-tls: {message}\n");
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        // SAFETY: `rest` is a valid readable buffer of `rest.len()` bytes.
        let written = unsafe { libc::write(libc::STDERR_FILENO, rest.as_ptr().cast(), rest.len()) };
        if written <= 0 {
            return;
        }
        rest = &rest[written as usize..];
    }
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

/// Drops a panic payload, whose own `Drop` may panic again: such a second payload
/// is leaked rather than risk unwinding out of the exit sequence.
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(|| drop(payload))) {
        core::mem::forget(again);
    }
}
