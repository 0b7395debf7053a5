//! The `HIJACK_TLS` kill switch, read once per process.

use core::sync::atomic::{AtomicU8, Ordering};

const UNREAD: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;

static HIJACK: AtomicU8 = AtomicU8::new(UNREAD);

/// Whether the environment allows the stack hijack (`HIJACK_TLS` is not `off`).
///
/// The variable is read the first time this is asked (or at load time, through the
/// constructor below) and never again, so later `setenv` calls change nothing.
pub(crate) fn hijack_allowed() -> bool {
    match HIJACK.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => read_environment(),
    }
}

/// Reads `HIJACK_TLS` and caches the answer. `getenv` is used rather than
/// `std::env::var` because it takes no lock, so a first use from a signal
/// handler cannot deadlock on std's environment lock.
fn read_environment() -> bool {
    // SAFETY: the name is a NUL-terminated literal; getenv returns NULL or a pointer
    // to a NUL-terminated string owned by the environment, read at once below.
    let value = unsafe { libc::getenv(c"HIJACK_TLS".as_ptr()) };
    let off = !value.is_null() && {
        // SAFETY: non-null result of getenv: a valid NUL-terminated C string.
        let bytes = unsafe { core::ffi::CStr::from_ptr(value) }.to_bytes();
        is_off(bytes)
    };
    let state = if off { OFF } else { ON };
    // The first reader wins, so every thread sees the same answer.
    match HIJACK.compare_exchange(UNREAD, state, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => state == ON,
        Err(existing) => existing == ON,
    }
}

/// The values that turn the hijack off, compared without regard to case.
fn is_off(value: &[u8]) -> bool {
    ["off", "0", "false", "no"].iter().any(|word| value.eq_ignore_ascii_case(word.as_bytes()))
}

/// Reads the switch while the program loads, before any thread can call into the
/// crate, so the answer never depends on a `setenv` racing with the first use.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static READ_AT_LOAD: extern "C" fn() = {
    extern "C" fn read_at_load() {
        read_environment();
    }
    read_at_load
};

#[cfg(test)]
mod tests {
    use super::is_off;

    #[test]
    fn off_words() {
        for word in ["off", "OFF", "Off", "0", "false", "no"] {
            assert!(is_off(word.as_bytes()), "{word}");
        }
        for word in ["on", "", "1", "offf", "yes"] {
            assert!(!is_off(word.as_bytes()), "{word}");
        }
    }
}
