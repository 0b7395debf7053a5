//! Every API call from inside `with` closures, `Drop` impls and at-exit handlers.

mod common;

use common::{Log, Tracked, on_thread};
use hijack_tls::{Key, Status};

fn tracked_name(t: &Tracked) -> String {
    t.name.clone()
}

#[test]
fn del_of_the_borrowed_value_inside_with() {
    let log = Log::default();
    let log2 = log.clone();
    on_thread(move || {
        hijack_tls::set("k", Tracked::new("v", &log2));
        let removed = hijack_tls::with(&"k", |v: &Tracked| {
            let removed = hijack_tls::del(&"k").expect("present");
            assert!(hijack_tls::get::<_, u8>(&"k").is_none(), "left the map at once");
            assert!(hijack_tls::with(&"k", tracked_name).is_none());
            assert_eq!(v.name, "v", "borrow still valid");
            // Still borrowed: it cannot be moved out yet.
            let removed = removed.downcast::<Tracked>().expect_err("borrowed");
            assert!(log2.events().is_empty());
            removed
        })
        .expect("present");
        assert!(log2.events().is_empty(), "the Value handle keeps it alive");
        let value = removed.downcast::<Tracked>().expect("borrow ended");
        drop(value);
        assert_eq!(log2.events(), ["drop v"]);
    });
    assert_eq!(log.count("drop v"), 1);
}

#[test]
fn dropping_the_del_handle_inside_with_defers_the_drop() {
    let log = Log::default();
    let log2 = log.clone();
    on_thread(move || {
        hijack_tls::set("k", Tracked::new("v", &log2));
        hijack_tls::with(&"k", |v: &Tracked| {
            drop(hijack_tls::del(&"k"));
            assert!(log2.events().is_empty());
            assert_eq!(v.name, "v");
        });
        assert_eq!(log2.events(), ["drop v"]);
    });
}

#[test]
fn set_of_the_borrowed_key_inside_with() {
    let log = Log::default();
    let log2 = log.clone();
    on_thread(move || {
        hijack_tls::set("k", Tracked::new("old", &log2));
        hijack_tls::with(&"k", |v: &Tracked| {
            hijack_tls::set("k", Tracked::new("new", &log2));
            assert_eq!(hijack_tls::with(&"k", tracked_name).as_deref(), Some("new"));
            assert_eq!(v.name, "old");
            assert!(log2.events().is_empty());
        });
        assert_eq!(log2.events(), ["drop old"]);
    });
    assert_eq!(log.events(), ["drop old", "drop new"]);
}

#[test]
fn reset_and_unload_inside_with() {
    for unload in [false, true] {
        let log = Log::default();
        let log2 = log.clone();
        on_thread(move || {
            hijack_tls::set("k", Tracked::new("v", &log2));
            hijack_tls::set("other", Tracked::new("other", &log2));
            hijack_tls::with(&"k", |v: &Tracked| {
                if unload {
                    hijack_tls::unload();
                    assert_eq!(hijack_tls::status(), Status::Inactive);
                } else {
                    hijack_tls::reset();
                }
                assert_eq!(log2.events(), ["drop other"]);
                assert_eq!(v.name, "v");
            });
            assert_eq!(log2.events(), ["drop other", "drop v"]);
        });
        assert_eq!(log.events(), ["drop other", "drop v"]);
    }
}

#[test]
fn everything_else_inside_with() {
    let log = Log::default();
    let log2 = log.clone();
    on_thread(move || {
        hijack_tls::set("k", 1_u32);
        let id = hijack_tls::id();
        hijack_tls::with(&"k", |v: &u32| {
            assert_eq!(hijack_tls::id(), id);
            assert_ne!(hijack_tls::status(), Status::Inactive);
            let nested = hijack_tls::with(&"k", |w: &u32| *w + *v);
            assert_eq!(nested, Some(2));
            hijack_tls::set("other", 5_u8);
            let log = log2.clone();
            hijack_tls::at_exit(move || log.push("handler"));
        });
        assert_eq!(hijack_tls::get::<_, u8>(&"other"), Some(5));
    });
    assert_eq!(log.events(), ["handler"]);
}

#[test]
fn typed_take_and_set_inside_typed_with() {
    static KEY: Key<Tracked> = Key::new();
    let log = Log::default();
    let log2 = log.clone();
    on_thread(move || {
        KEY.set(Tracked::new("first", &log2));
        KEY.with(|v| {
            assert!(KEY.take().is_none(), "borrowed: cannot be moved out");
            assert!(KEY.with(|_| ()).is_none(), "but it left the slot");
            assert_eq!(v.name, "first");
            assert!(log2.events().is_empty());
        });
        assert_eq!(log2.events(), ["drop first"]);
        KEY.set(Tracked::new("second", &log2));
        KEY.with(|v| {
            assert!(KEY.set(Tracked::new("third", &log2)).is_none());
            assert_eq!(KEY.with(tracked_name).as_deref(), Some("third"));
            assert_eq!(v.name, "second");
        });
        assert_eq!(log2.events(), ["drop first", "drop second"]);
        let third = KEY.take().expect("not borrowed now");
        assert_eq!(third.name, "third");
    });
    assert_eq!(log.events(), ["drop first", "drop second", "drop third"]);
}

/// A value whose `Drop` runs an arbitrary API call.
struct OnDrop(Option<Box<dyn FnOnce()>>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

fn on_drop(f: impl FnOnce() + 'static) -> OnDrop {
    OnDrop(Some(Box::new(f)))
}

#[test]
fn api_calls_from_a_drop_during_set_replacement() {
    let log = Log::default();
    let log2 = log.clone();
    on_thread(move || {
        let log = log2.clone();
        hijack_tls::set("older", 3_u8);
        hijack_tls::set(
            "k",
            on_drop(move || {
                // The replacement is already stored when the old value drops.
                log.push(format!("new = {:?}", hijack_tls::get::<_, u32>(&"k")));
                hijack_tls::set("from drop", 1_u8);
                log.push(format!("older = {:?}", hijack_tls::get::<_, u8>(&"older")));
                let gone = hijack_tls::del(&"older").and_then(|v| v.downcast::<u8>().ok());
                log.push(format!("del older = {gone:?}"));
                log.push(format!("id {}", hijack_tls::id() != 0));
            }),
        );
        hijack_tls::set("k", 7_u32);
        assert_eq!(hijack_tls::get::<_, u8>(&"from drop"), Some(1));
    });
    assert_eq!(
        log.events(),
        ["new = Some(7)", "older = Some(3)", "del older = Some(3)", "id true"]
    );
}

#[test]
fn reset_and_unload_from_a_drop() {
    for unload in [false, true] {
        let log = Log::default();
        let log2 = log.clone();
        on_thread(move || {
            hijack_tls::set("a", Tracked::new("a", &log2));
            hijack_tls::set(
                "b",
                on_drop(move || if unload { hijack_tls::unload() } else { hijack_tls::reset() }),
            );
            hijack_tls::set("c", Tracked::new("c", &log2));
            hijack_tls::set("b", 0_u8); // drops the OnDrop: it resets/unloads
            if unload {
                assert_eq!(hijack_tls::status(), Status::Inactive);
            } else {
                assert_eq!(hijack_tls::get::<_, u8>(&"b"), None, "reset dropped the new one too");
            }
        });
        assert_eq!(log.events(), ["drop c", "drop a"], "unload = {unload}");
    }
}

#[test]
fn drops_during_reset_may_store_and_reset_again() {
    let log = Log::default();
    let log2 = log.clone();
    on_thread(move || {
        let log = log2.clone();
        hijack_tls::set("a", Tracked::new("a", &log2));
        hijack_tls::set(
            "b",
            on_drop(move || {
                hijack_tls::set("stored by drop", Tracked::new("late", &log));
                hijack_tls::reset(); // nested reset drops only what predates it
            }),
        );
        hijack_tls::reset();
        assert_eq!(log2.events(), ["drop late", "drop a"]);
    });
}

#[test]
fn drops_during_exit_may_store_values_and_handlers() {
    let log = Log::default();
    let log2 = log.clone();
    on_thread(move || {
        let log = log2.clone();
        hijack_tls::set(
            "k",
            on_drop(move || {
                let log2 = log.clone();
                hijack_tls::set("second round", Tracked::new("late value", &log));
                hijack_tls::at_exit(move || log2.push("late handler"));
            }),
        );
    });
    assert_eq!(log.events(), ["late handler", "drop late value"]);
}

#[test]
fn handlers_may_call_everything() {
    static KEY: Key<u32> = Key::new();
    let log = Log::default();
    let log2 = log.clone();
    on_thread(move || {
        hijack_tls::set("v", Tracked::new("v", &log2));
        KEY.set(4);
        let log = log2.clone();
        let id = hijack_tls::id();
        hijack_tls::at_exit(move || {
            log.push(format!("same id {}", hijack_tls::id() == id));
            log.push(format!("key {:?}", KEY.get()));
            let log3 = log.clone();
            hijack_tls::at_exit(move || log3.push("nested handler"));
            hijack_tls::set("added", Tracked::new("added", &log));
            let v = hijack_tls::del(&"v").expect("present");
            log.push("deleted v");
            drop(v);
            hijack_tls::reset();
            log.push(format!("key after reset {:?}", KEY.get()));
        });
    });
    assert_eq!(
        log.events(),
        [
            "same id true",
            "key Some(4)",
            "deleted v",
            "drop v",
            "drop added",
            "key after reset None",
            "nested handler"
        ]
    );
}

#[test]
fn unload_in_a_handler_stops_the_sequence() {
    let log = Log::default();
    let log2 = log.clone();
    on_thread(move || {
        hijack_tls::set("v", Tracked::new("v", &log2));
        let log = log2.clone();
        hijack_tls::at_exit(move || log.push("never: discarded by unload"));
        let log = log2.clone();
        hijack_tls::at_exit(move || {
            log.push("unloading");
            hijack_tls::unload();
            // A fresh record: its own exit sequence runs later, by the fallback.
            let log2 = log.clone();
            hijack_tls::at_exit(move || log2.push("fresh record handler"));
        });
    });
    assert_eq!(log.events(), ["unloading", "drop v", "fresh record handler"]);
}

#[test]
fn reentry_from_a_key_eq_reads_or_panics_cleanly() {
    // Reads inside a key's Eq answer without a borrow (the ID as it is, a keyed
    // value as absent); a call that would change the record panics with a message.
    static ID_SEEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    struct Reads(u8);
    impl std::hash::Hash for Reads {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.0.hash(state);
        }
    }
    impl PartialEq for Reads {
        fn eq(&self, other: &Self) -> bool {
            ID_SEEN.store(hijack_tls::id(), std::sync::atomic::Ordering::SeqCst);
            assert_eq!(hijack_tls::get::<_, u8>(&"after"), None, "borrowed: reads as absent");
            self.0 == other.0
        }
    }
    impl Eq for Reads {}
    struct Writes(u8);
    impl std::hash::Hash for Writes {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.0.hash(state);
        }
    }
    impl PartialEq for Writes {
        fn eq(&self, other: &Self) -> bool {
            hijack_tls::set("inside eq", 0_u8);
            self.0 == other.0
        }
    }
    impl Eq for Writes {}
    on_thread(|| {
        hijack_tls::set(Reads(1), 1_u8);
        assert_eq!(hijack_tls::get::<_, u8>(&Reads(1)), Some(1));
        assert_eq!(ID_SEEN.load(std::sync::atomic::Ordering::SeqCst), hijack_tls::id());
        hijack_tls::set(Writes(1), 1_u8);
        let caught = std::panic::catch_unwind(|| hijack_tls::get::<_, u8>(&Writes(1)));
        let message = caught.expect_err("must panic");
        let text = message.downcast_ref::<&str>().copied().unwrap_or_default();
        assert!(text.contains("Eq impl"), "{text}");
        // The record is intact afterwards.
        hijack_tls::set("after", 2_u8);
        assert_eq!(hijack_tls::get::<_, u8>(&"after"), Some(2));
    });
}

#[test]
fn a_typed_key_read_from_a_key_eq_needs_no_borrow() {
    // One of the first keys set in this process (the mirror holds 16).
    static SEEN: Key<u32> = Key::new();
    struct Reader(u8);
    impl std::hash::Hash for Reader {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.0.hash(state);
        }
    }
    static EQ_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    impl PartialEq for Reader {
        fn eq(&self, other: &Self) -> bool {
            EQ_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            assert_eq!(SEEN.get(), Some(7), "read inside Eq");
            self.0 == other.0
        }
    }
    impl Eq for Reader {}
    on_thread(|| {
        SEEN.set(7);
        hijack_tls::set(Reader(1), 1_u8);
        assert_eq!(hijack_tls::get::<_, u8>(&Reader(1)), Some(1));
    });
    assert!(EQ_CALLS.load(std::sync::atomic::Ordering::SeqCst) > 0, "Eq never ran");
}

#[test]
fn a_key_hash_may_call_into_the_crate() {
    #[derive(PartialEq, Eq)]
    struct Chatty(u8);
    impl std::hash::Hash for Chatty {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            // Hashing runs before the record is borrowed: every call is allowed.
            hijack_tls::set("hashed", self.0);
            self.0.hash(state);
        }
    }
    on_thread(|| {
        hijack_tls::set(Chatty(3), 30_u8);
        assert_eq!(hijack_tls::get::<_, u8>(&Chatty(3)), Some(30));
        assert_eq!(hijack_tls::get::<_, u8>(&"hashed"), Some(3));
        assert!(hijack_tls::del(&Chatty(3)).is_some());
    });
}
