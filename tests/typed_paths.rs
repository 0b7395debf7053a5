//! Typed keys on both read paths: the first keys set in the process are read from
//! the thread-local mirror of their value addresses, later ones through the view of
//! the slot table. Eighty keys here, so both paths are exercised whatever order the
//! tests run in; every check runs over all of them.

mod common;

use common::{Log, Tracked, on_thread};
use hijack_tls::Key;

/// More keys than the mirror holds (16).
const KEYS: usize = 40;

static NUMBERS: [Key<u64>; KEYS] = [const { Key::new() }; KEYS];
static TRACKED: [Key<Tracked>; KEYS] = [const { Key::new() }; KEYS];

/// Gives every key an index before any test uses them, the two arrays interleaved:
/// the first 8 of each are mirrored, the rest are read through the view.
fn assign_all() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        on_thread(|| {
            let scratch = Log::default();
            for (number, tracked) in NUMBERS.iter().zip(&TRACKED) {
                number.set(0);
                tracked.set(Tracked::new("scratch", &scratch));
            }
        });
    });
}

#[test]
fn every_key_sets_reads_replaces_and_takes_its_own_value() {
    assign_all();
    on_thread(|| {
        for (n, key) in NUMBERS.iter().enumerate() {
            assert_eq!(key.get(), None, "key {n} before set");
            assert_eq!(key.set(n as u64), None);
        }
        for (n, key) in NUMBERS.iter().enumerate() {
            assert_eq!(key.get(), Some(n as u64), "key {n}");
            assert_eq!(key.with(|v| v * 2), Some(2 * n as u64), "key {n}");
            assert_eq!(key.set(n as u64 + 100), Some(n as u64), "key {n}");
        }
        for (n, key) in NUMBERS.iter().enumerate().step_by(3) {
            assert_eq!(key.take(), Some(n as u64 + 100), "key {n}");
        }
        for (n, key) in NUMBERS.iter().enumerate() {
            let expected = (n % 3 != 0).then_some(n as u64 + 100);
            assert_eq!(key.get(), expected, "key {n} after takes");
        }
    });
}

#[test]
fn reset_and_unload_empty_both_paths() {
    assign_all();
    on_thread(|| {
        for key in &NUMBERS {
            key.set(1);
        }
        hijack_tls::reset();
        assert!(NUMBERS.iter().all(|key| key.get().is_none()), "after reset");
        for key in &NUMBERS {
            key.set(2);
        }
        hijack_tls::unload();
        assert!(NUMBERS.iter().all(|key| key.get().is_none()), "after unload");
        NUMBERS[0].set(3);
        NUMBERS[KEYS - 1].set(4);
        assert_eq!((NUMBERS[0].get(), NUMBERS[1].get()), (Some(3), None));
        assert_eq!(NUMBERS[KEYS - 1].get(), Some(4));
    });
}

#[test]
fn a_fresh_thread_sees_no_values_of_another() {
    assign_all();
    on_thread(|| {
        for key in &NUMBERS {
            key.set(9);
        }
        let seen = on_thread(|| NUMBERS.iter().filter(|key| key.get().is_some()).count());
        assert_eq!(seen, 0);
    });
}

#[test]
fn replacing_a_borrowed_value_keeps_the_borrow_on_both_paths() {
    assign_all();
    let log = Log::default();
    let inner = log.clone();
    on_thread(move || {
        for (n, key) in TRACKED.iter().enumerate() {
            key.set(Tracked::new(&format!("old {n}"), &inner));
            let seen = key.with(|old| {
                // The old value is displaced while borrowed: `set` gives it back as
                // `None` and it drops when this borrow ends.
                assert!(key.set(Tracked::new(&format!("new {n}"), &inner)).is_none());
                assert_eq!(key.with(|new| new.name.clone()).as_deref(), Some(&*format!("new {n}")));
                old.name.clone()
            });
            assert_eq!(seen, Some(format!("old {n}")));
            assert_eq!(inner.events().last().map(String::as_str), Some(&*format!("drop old {n}")));
        }
    });
    let drops = log.events().iter().filter(|e| e.starts_with("drop new")).count();
    assert_eq!(drops, KEYS, "every new value dropped at exit");
}

#[test]
fn drops_at_exit_read_the_values_not_yet_dropped() {
    assign_all();
    static READER: Key<Reader> = Key::new();
    /// Reads every number key when dropped.
    struct Reader(std::sync::mpsc::Sender<Vec<Option<u64>>>);
    impl Drop for Reader {
        fn drop(&mut self) {
            let _ = self.0.send(NUMBERS.iter().map(Key::get).collect());
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    on_thread(move || {
        // Set first, so dropped last (values drop newest first): the numbers are
        // gone by the time the reader drops.
        READER.set(Reader(tx.clone()));
        for key in &NUMBERS {
            key.set(5);
        }
        // A handler runs before any drop: it sees every number.
        hijack_tls::at_exit(move || {
            let _ = tx.send(NUMBERS.iter().map(Key::get).collect());
        });
    });
    let in_handler = rx.recv().expect("handler ran");
    assert!(in_handler.iter().all(|v| *v == Some(5)), "{in_handler:?}");
    let in_drop = rx.recv().expect("reader dropped");
    assert!(in_drop.iter().all(Option::is_none), "{in_drop:?}");
}
