//! Every public API item on real threads.

mod common;

use common::{Log, Tracked, on_thread};
use hijack_tls::{Key, Status};

#[test]
fn set_then_get_clones_the_value() {
    on_thread(|| {
        hijack_tls::set("name", String::from("worker"));
        assert_eq!(hijack_tls::get::<_, String>(&"name").as_deref(), Some("worker"));
        assert_eq!(hijack_tls::get::<_, String>(&"name").as_deref(), Some("worker"));
    });
}

#[test]
fn get_of_another_type_is_none() {
    on_thread(|| {
        hijack_tls::set(7_u32, 1_u64);
        assert_eq!(hijack_tls::get::<_, u32>(&7_u32), None);
        assert_eq!(hijack_tls::get::<_, u64>(&7_u32), Some(1));
        // Keys of different types never collide, even with equal bit patterns.
        assert_eq!(hijack_tls::get::<_, u64>(&7_u64), None);
        assert_eq!(hijack_tls::get::<_, u64>(&7_i32), None);
    });
}

#[test]
fn user_struct_keys() {
    #[derive(Hash, PartialEq, Eq)]
    struct Slot {
        shard: u16,
        name: &'static str,
    }
    on_thread(|| {
        hijack_tls::set(Slot { shard: 1, name: "a" }, 10_i32);
        hijack_tls::set(Slot { shard: 2, name: "a" }, 20_i32);
        assert_eq!(hijack_tls::get(&Slot { shard: 1, name: "a" }), Some(10_i32));
        assert_eq!(hijack_tls::get(&Slot { shard: 2, name: "a" }), Some(20_i32));
        assert_eq!(hijack_tls::get::<_, i32>(&Slot { shard: 3, name: "a" }), None);
    });
}

#[test]
fn set_replaces_and_drops_the_old_value_of_any_type() {
    let log = Log::default();
    let log2 = log.clone();
    on_thread(move || {
        hijack_tls::set("k", Tracked::new("first", &log2));
        assert!(log2.events().is_empty());
        hijack_tls::set("k", 5_u8);
        assert_eq!(log2.events(), ["drop first"]);
        assert_eq!(hijack_tls::get::<_, u8>(&"k"), Some(5));
    });
    assert_eq!(log.events(), ["drop first"]);
}

#[test]
fn non_send_values_are_allowed() {
    on_thread(|| {
        let shared = std::rc::Rc::new(3);
        hijack_tls::set("rc", shared.clone());
        assert_eq!(std::rc::Rc::strong_count(&shared), 2);
        hijack_tls::at_exit(move || drop(shared));
    });
}

#[test]
fn reads_never_create_a_record() {
    on_thread(|| {
        static KEY: Key<u8> = Key::new();
        assert_eq!(hijack_tls::status(), Status::Inactive);
        assert_eq!(hijack_tls::get::<_, u8>(&"missing"), None);
        assert_eq!(hijack_tls::with(&"missing", |v: &u8| *v), None);
        assert!(hijack_tls::del(&"missing").is_none());
        assert_eq!(KEY.get(), None);
        assert_eq!(KEY.take(), None);
        hijack_tls::reset();
        hijack_tls::unload();
        assert_eq!(hijack_tls::status(), Status::Inactive);
        hijack_tls::set("x", 1);
        assert_ne!(hijack_tls::status(), Status::Inactive);
    });
}

#[test]
fn with_borrows_without_cloning() {
    on_thread(|| {
        hijack_tls::set("v", vec![1, 2, 3]);
        let sum = hijack_tls::with(&"v", |v: &Vec<i32>| v.iter().sum::<i32>());
        assert_eq!(sum, Some(6));
        assert_eq!(hijack_tls::with(&"v", |v: &String| v.len()), None);
    });
}

#[test]
fn del_hands_the_value_back() {
    let log = Log::default();
    let log2 = log.clone();
    on_thread(move || {
        hijack_tls::set("d", Tracked::new("d", &log2));
        let value = hijack_tls::del(&"d").expect("present");
        assert!(hijack_tls::get::<_, u8>(&"d").is_none());
        assert!(value.is::<Tracked>());
        assert!(!value.is::<u8>());
        assert_eq!(value.downcast_ref::<Tracked>().map(|t| t.name.as_str()), Some("d"));
        let value = value.downcast::<u8>().expect_err("wrong type gives it back");
        assert!(log2.events().is_empty(), "del must not drop");
        let tracked = value.downcast::<Tracked>().expect("right type");
        assert!(log2.events().is_empty());
        drop(tracked);
        assert_eq!(log2.events(), ["drop d"]);
        assert!(hijack_tls::del(&"d").is_none());
    });
    assert_eq!(log.count("drop d"), 1);
}

#[test]
fn id_is_nonzero_stable_and_unique() {
    let (a1, a2) = on_thread(|| (hijack_tls::id(), hijack_tls::id()));
    let b = on_thread(hijack_tls::id);
    assert_ne!(a1, 0);
    assert_eq!(a1, a2);
    assert_ne!(a1, b);
}

#[test]
fn unload_gives_a_new_id() {
    on_thread(|| {
        let first = hijack_tls::id();
        hijack_tls::unload();
        let second = hijack_tls::id();
        assert_ne!(first, second);
        assert_eq!(second, hijack_tls::id());
    });
}

#[test]
fn at_exit_runs_lifo_with_values_readable() {
    let log = Log::default();
    let log2 = log.clone();
    on_thread(move || {
        hijack_tls::set("v", 9_u32);
        for n in 0..3 {
            let log = log2.clone();
            hijack_tls::at_exit(move || {
                let seen = hijack_tls::get::<_, u32>(&"v");
                log.push(format!("handler {n} sees {seen:?}"));
            });
        }
    });
    assert_eq!(
        log.events(),
        ["handler 2 sees Some(9)", "handler 1 sees Some(9)", "handler 0 sees Some(9)"]
    );
}

#[test]
fn handlers_run_before_values_drop_and_values_drop_newest_first() {
    static TYPED: Key<Tracked> = Key::new();
    let log = Log::default();
    let log2 = log.clone();
    on_thread(move || {
        hijack_tls::set("a", Tracked::new("a", &log2));
        TYPED.set(Tracked::new("typed", &log2));
        hijack_tls::set("b", Tracked::new("b", &log2));
        let log = log2.clone();
        hijack_tls::at_exit(move || log.push("handler"));
    });
    assert_eq!(log.events(), ["handler", "drop b", "drop typed", "drop a"]);
}

#[test]
fn a_drop_still_reads_older_values() {
    struct ReadsOlder(Log);
    impl Drop for ReadsOlder {
        fn drop(&mut self) {
            let older = hijack_tls::get::<_, u32>(&"older");
            self.0.push(format!("newer dropped, older = {older:?}"));
        }
    }
    let log = Log::default();
    let log2 = log.clone();
    on_thread(move || {
        hijack_tls::set("older", 1_u32);
        hijack_tls::set("newer", ReadsOlder(log2));
    });
    assert_eq!(log.events(), ["newer dropped, older = Some(1)"]);
}

#[test]
fn reset_drops_values_but_keeps_handlers_and_id() {
    static TYPED: Key<Tracked> = Key::new();
    let log = Log::default();
    let log2 = log.clone();
    on_thread(move || {
        let id = hijack_tls::id();
        hijack_tls::set("a", Tracked::new("a", &log2));
        TYPED.set(Tracked::new("typed", &log2));
        let log = log2.clone();
        hijack_tls::at_exit(move || log.push("handler"));
        hijack_tls::reset();
        assert_eq!(log2.events(), ["drop typed", "drop a"]);
        assert!(TYPED.with(|_| ()).is_none());
        assert_eq!(hijack_tls::id(), id);
    });
    assert_eq!(log.events(), ["drop typed", "drop a", "handler"]);
}

#[test]
fn unload_drops_values_and_discards_handlers() {
    let log = Log::default();
    let log2 = log.clone();
    on_thread(move || {
        hijack_tls::set("a", Tracked::new("a", &log2));
        let log = log2.clone();
        let witness = Tracked::new("handler closure", &log2);
        hijack_tls::at_exit(move || {
            let _keep = &witness;
            log.push("handler ran")
        });
        hijack_tls::unload();
        assert_eq!(hijack_tls::status(), Status::Inactive);
        assert_eq!(hijack_tls::get::<_, u8>(&"a"), None);
    });
    assert_eq!(log.events(), ["drop handler closure", "drop a"]);
}

#[test]
fn typed_key_set_get_with_take() {
    static COUNTER: Key<u64> = Key::new();
    on_thread(|| {
        assert_eq!(COUNTER.set(1), None);
        assert_eq!(COUNTER.set(2), Some(1));
        assert_eq!(COUNTER.get(), Some(2));
        assert_eq!(COUNTER.with(|v| v + 1), Some(3));
        assert_eq!(COUNTER.take(), Some(2));
        assert_eq!(COUNTER.get(), None);
        assert_eq!(COUNTER.take(), None);
    });
}

#[test]
fn typed_keys_are_per_thread_and_per_key() {
    static A: Key<u64> = Key::new();
    static B: Key<u64> = Key::new();
    on_thread(|| {
        A.set(1);
        B.set(2);
        let other = on_thread(|| (A.get(), B.get()));
        assert_eq!(other, (None, None));
        assert_eq!((A.get(), B.get()), (Some(1), Some(2)));
    });
}

#[test]
fn typed_key_values_drop_at_exit() {
    static KEY: Key<Tracked> = Key::new();
    let log = Log::default();
    let log2 = log.clone();
    on_thread(move || {
        KEY.set(Tracked::new("typed", &log2));
    });
    assert_eq!(log.events(), ["drop typed"]);
}

#[test]
fn status_reports_the_arming() {
    let status = on_thread(|| {
        hijack_tls::set(1, 1);
        hijack_tls::status()
    });
    match status {
        Status::Hijacked { slot, original_return, trampoline } => {
            assert!(slot != 0 && original_return != 0 && trampoline != 0);
        }
        Status::Fallback { reason, destructor } => {
            assert!(!reason.to_string().is_empty());
            assert_eq!(destructor, hijack_tls::Destructor::ThreadLocal);
        }
        other => panic!("unexpected {other:?}"),
    }
    if !cfg!(feature = "hijack") {
        assert!(matches!(
            status,
            Status::Fallback { reason: hijack_tls::FallbackReason::FeatureDisabled, .. }
        ));
    }
}
