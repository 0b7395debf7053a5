//! Hostile exits: hooks and drops that never stop registering, cancellation and
//! `pthread_exit` acting inside hooks and drops, signal handlers reading while the
//! exit sequence holds the record, and first uses where the process is already
//! tearing down. Each case runs in a child process under a timeout, so an abort
//! or a hang is a failure this test reports, with and without the hijack.

mod common;
#[path = "fixtures/support.rs"]
mod support;

use std::cell::Cell;
use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::unwinding::{pthread_exit, pthread_testcancel};
use common::{child_lines as lines, is_child, run_child_timeout};
use hijack_tls::Key;
use support::{join_raw, say_to, spawn_raw};

/// A child gets this long; the cases take well under a second when they work.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Both settings of the kill switch: the hijack, and the fallback alone.
const MODES: [&[(&str, &str)]; 2] = [&[], &[("HIJACK_TLS", "off")]];

/// Runs `case` in a child in each mode; returns the stdout and stderr of each,
/// after checking it exited 0 before the timeout.
fn run_in_both_modes(case: &str) -> Vec<(String, String)> {
    MODES
        .iter()
        .map(|env| {
            let (code, out, err) = run_child_timeout(case, env, TIMEOUT);
            assert_eq!(
                code,
                Some(0),
                "{case} {env:?}: exit {code:?}\nstdout:\n{out}\nstderr:\n{err}"
            );
            (out, err)
        })
        .collect()
}

/// Counts the child's stdout lines equal to `line`.
fn count(out: &str, line: &str) -> usize {
    lines(out).filter(|l| *l == line).count()
}

fn say(text: &str) {
    say_to(1, text);
}

// ---- hooks that never stop registering -------------------------------------

/// Registers a copy of itself every time it runs.
fn self_registering() {
    say("self-registering hook ran");
    hijack_tls::at_exit(self_registering);
}

/// Registers two copies of itself every time it runs.
fn doubling() {
    say("doubling hook ran");
    hijack_tls::at_exit(doubling);
    hijack_tls::at_exit(doubling);
}

#[test]
fn a_hook_that_registers_itself_ends_and_is_reported() {
    if is_child("a_hook_that_registers_itself_ends_and_is_reported") {
        std::thread::spawn(|| hijack_tls::at_exit(self_registering)).join().unwrap();
        std::thread::spawn(|| hijack_tls::at_exit(doubling)).join().unwrap();
        say("threads joined");
        return;
    }
    let bound = hijack_tls::MAX_ROUNDS;
    for (out, err) in run_in_both_modes("a_hook_that_registers_itself_ends_and_is_reported") {
        assert_eq!(count(&out, "threads joined"), 1, "{out}");
        // Generation 0 is the hook registered by the thread, then one per level.
        assert_eq!(count(&out, "self-registering hook ran"), bound + 1, "{out}");
        assert_eq!(count(&out, "doubling hook ran"), (1 << (bound + 1)) - 1, "{out}");
        let refused: Vec<&str> = err.lines().filter(|l| l.contains("refused")).collect();
        assert_eq!(refused.len(), 2, "one report per thread:\n{err}");
        assert!(refused[0].contains(" 1 "), "the self-registering copy: {}", refused[0]);
        assert!(refused[1].contains(&format!(" {} ", 1 << (bound + 1))), "{}", refused[1]);
    }
}

/// A value whose drop stores a new one like it, forever.
struct Replicating(usize);

impl Drop for Replicating {
    fn drop(&mut self) {
        say("replicating value dropped");
        hijack_tls::set(("replica", self.0 + 1), Replicating(self.0 + 1));
        hijack_tls::at_exit(|| say("hook from a drop ran"));
    }
}

#[test]
fn drops_that_store_and_register_forever_end() {
    if is_child("drops_that_store_and_register_forever_end") {
        std::thread::spawn(|| hijack_tls::set(("replica", 0), Replicating(0))).join().unwrap();
        say("thread joined");
        return;
    }
    for (out, err) in run_in_both_modes("drops_that_store_and_register_forever_end") {
        assert_eq!(count(&out, "thread joined"), 1, "{out}");
        let drops = count(&out, "replicating value dropped");
        let hooks = count(&out, "hook from a drop ran");
        assert!(drops <= hijack_tls::MAX_ROUNDS + 1, "{drops} drops");
        assert_eq!(hooks + 1, drops, "every drop's hook but the last ran");
        assert!(err.contains("refused"), "{err}");
    }
}

#[test]
fn many_hooks_registered_before_exit_all_run() {
    if is_child("many_hooks_registered_before_exit_all_run") {
        static RAN: AtomicUsize = AtomicUsize::new(0);
        std::thread::spawn(|| {
            for _ in 0..200_000 {
                hijack_tls::at_exit(|| {
                    RAN.fetch_add(1, Ordering::Relaxed);
                });
            }
        })
        .join()
        .unwrap();
        say(&format!("ran {}", RAN.load(Ordering::Relaxed)));
        return;
    }
    for (out, err) in run_in_both_modes("many_hooks_registered_before_exit_all_run") {
        assert_eq!(count(&out, "ran 200000"), 1, "{out}");
        assert!(!err.contains("refused"), "{err}");
    }
}

// ---- cancellation and pthread_exit inside hooks and drops ------------------

/// `PTHREAD_CANCEL_ASYNCHRONOUS` from `<pthread.h>` (the `libc` crate has no
/// binding for the cancel-type calls).
const PTHREAD_CANCEL_ASYNCHRONOUS: c_int = 1;

unsafe extern "C" {
    fn pthread_setcanceltype(kind: c_int, old: *mut c_int) -> c_int;
}

/// How the thread under test ends the hook or drop it is in.
#[derive(Clone, Copy)]
enum Ender {
    /// `pthread_exit` called in the hook.
    PthreadExit,
    /// A deferred cancel, pending before the hook, reaching `usleep`.
    DeferredCancel,
    /// An asynchronous cancel arriving while the hook spins.
    AsyncCancel,
}

impl Ender {
    fn end(self) {
        match self {
            Ender::PthreadExit => {
                // SAFETY: ends this raw pthread; every frame up to the crate's is
                // a Rust frame that may be unwound.
                unsafe { pthread_exit(1) }
            }
            Ender::DeferredCancel => {
                // SAFETY: the thread cancels itself; deferred cancellation acts at
                // a cancellation point only.
                unsafe { libc::pthread_cancel(libc::pthread_self()) };
                // SAFETY: no preconditions; a cancellation point.
                unsafe { libc::usleep(1000) };
                // SAFETY: a cancellation point.
                unsafe { pthread_testcancel() };
            }
            Ender::AsyncCancel => {
                // SAFETY: switches this thread to asynchronous cancellation and
                // cancels it; the spin below holds no lock and allocates nothing.
                unsafe {
                    pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, std::ptr::null_mut());
                    libc::pthread_cancel(libc::pthread_self());
                }
                let spin = Cell::new(0_u64);
                for _ in 0..10_000_000 {
                    spin.set(std::hint::black_box(spin.get() + 1));
                }
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Ender::PthreadExit => "pthread_exit",
            Ender::DeferredCancel => "deferred cancel",
            Ender::AsyncCancel => "async cancel",
        }
    }
}

/// A stored value that ends the thread's hook or drop from its own drop.
struct EndsInDrop(Ender);

impl Drop for EndsInDrop {
    fn drop(&mut self) {
        say("ending drop starts");
        self.0.end();
        say("ending drop went on");
    }
}

/// Runs a raw pthread whose exit sequence meets `ender` in a hook (or, with
/// `in_drop`, in a value's drop), with hooks and values on both sides of it.
fn thread_ended_inside_exit(ender: Ender, in_drop: bool) {
    let thread = spawn_raw(move || {
        hijack_tls::set("older", support::Said("older value dropped"));
        hijack_tls::at_exit(|| say("hook registered first ran"));
        if in_drop {
            hijack_tls::set("ender", EndsInDrop(ender));
        } else {
            hijack_tls::at_exit(move || {
                say("ending hook starts");
                ender.end();
                say("ending hook went on");
            });
        }
        hijack_tls::at_exit(|| say("hook registered last ran"));
        hijack_tls::set("newer", support::Said("newer value dropped"));
        0
    });
    join_raw(thread);
}

fn check_ended(out: &str, in_drop: bool) {
    for line in [
        "hook registered last ran",
        "hook registered first ran",
        "newer value dropped",
        "older value dropped",
        if in_drop { "ending drop starts" } else { "ending hook starts" },
    ] {
        assert_eq!(count(out, line), 1, "{line:?} once:\n{out}");
    }
    assert_eq!(count(out, "thread joined"), 1, "{out}");
}

macro_rules! ender_cases {
    ($($name:ident: $ender:expr, $in_drop:expr;)*) => {$(
        #[test]
        fn $name() {
            if is_child(stringify!($name)) {
                thread_ended_inside_exit($ender, $in_drop);
                say("thread joined");
                return;
            }
            for (out, err) in run_in_both_modes(stringify!($name)) {
                check_ended(&out, $in_drop);
                assert!(!err.contains("FATAL"), "{} aborted:\n{err}", $ender.name());
            }
        }
    )*};
}

ender_cases! {
    pthread_exit_in_a_hook_ends_only_that_hook: Ender::PthreadExit, false;
    deferred_cancel_in_a_hook_does_not_act: Ender::DeferredCancel, false;
    async_cancel_in_a_hook_does_not_act: Ender::AsyncCancel, false;
    pthread_exit_in_a_drop_ends_only_that_drop: Ender::PthreadExit, true;
    deferred_cancel_in_a_drop_does_not_act: Ender::DeferredCancel, true;
}

#[test]
fn a_cancel_left_pending_by_the_exit_sequence_still_ends_the_thread() {
    // A deferred cancel that arrives during the hooks is held off while they run,
    // and the thread (already leaving) still ends as cancelled: pthread_join
    // reports PTHREAD_CANCELED or the start routine's value, never a hang.
    if is_child("a_cancel_left_pending_by_the_exit_sequence_still_ends_the_thread") {
        let thread = spawn_raw(|| {
            hijack_tls::at_exit(|| {
                // SAFETY: the thread cancels itself (deferred).
                unsafe { libc::pthread_cancel(libc::pthread_self()) };
                say("hook after the cancel request ran");
            });
            hijack_tls::at_exit(|| {
                // SAFETY: a cancellation point.
                unsafe { libc::usleep(100) };
                say("hook with a cancellation point ran");
            });
            7
        });
        let value = join_raw(thread);
        say(&format!("joined {}", if value == usize::MAX { "cancelled" } else { "returned" }));
        return;
    }
    for (out, _) in
        run_in_both_modes("a_cancel_left_pending_by_the_exit_sequence_still_ends_the_thread")
    {
        assert_eq!(count(&out, "hook with a cancellation point ran"), 1, "{out}");
        assert_eq!(count(&out, "hook after the cancel request ran"), 1, "{out}");
        assert_eq!(lines(&out).filter(|l| l.starts_with("joined ")).count(), 1, "{out}");
    }
}

// ---- signal handlers reading while the exit sequence holds the record ------

/// Keys past the first 16 read through the slow path; the first ones through the
/// mirror. Both are read from the handler.
static KEYS: [Key<u64>; 24] = [const { Key::new() }; 24];

static HANDLER_READS: AtomicUsize = AtomicUsize::new(0);

/// Set while the target thread has a record, so the handler's `id()` never
/// creates one: that allocates, and a handler interrupting `free` in the thread's
/// teardown would deadlock in malloc, crate or not.
static RECORD_ALIVE: AtomicBool = AtomicBool::new(false);

extern "C" fn read_everything(_signal: libc::c_int) {
    if RECORD_ALIVE.load(Ordering::SeqCst) {
        assert_ne!(hijack_tls::id(), 0);
    }
    for key in &KEYS {
        std::hint::black_box(key.get());
    }
    std::hint::black_box(hijack_tls::get::<_, u64>(&"keyed"));
    std::hint::black_box(hijack_tls::status());
    HANDLER_READS.fetch_add(1, Ordering::Relaxed);
}

/// Stored first, so it drops last: the record is gone right after.
struct LastToDrop;

impl Drop for LastToDrop {
    fn drop(&mut self) {
        RECORD_ALIVE.store(false, Ordering::SeqCst);
    }
}

/// A value whose drop takes a while, so signals land inside the sequence.
struct Slow;

impl Drop for Slow {
    fn drop(&mut self) {
        for _ in 0..200 {
            std::hint::black_box(hijack_tls::get::<_, u64>(&"keyed"));
        }
    }
}

#[test]
fn signal_handlers_read_during_the_exit_sequence() {
    if is_child("signal_handlers_read_during_the_exit_sequence") {
        support::on_signal(libc::SIGUSR1, read_everything);
        // Fewer under the emulator, where each signal costs far more.
        let rounds = if support::emulator().is_some() { 40 } else { 200 };
        for _ in 0..rounds {
            static DONE: AtomicBool = AtomicBool::new(false);
            DONE.store(false, Ordering::SeqCst);
            let target = spawn_raw(|| {
                hijack_tls::set("last", LastToDrop);
                RECORD_ALIVE.store(true, Ordering::SeqCst);
                for (value, key) in KEYS.iter().enumerate() {
                    key.set(value as u64);
                }
                hijack_tls::set("keyed", 1_u64);
                for index in 0..64 {
                    hijack_tls::set(("slow", index), Slow);
                    hijack_tls::at_exit(|| {
                        std::hint::black_box(KEYS[20].get());
                    });
                }
                0
            });
            let target_id = target;
            let storm = std::thread::spawn(move || {
                while !DONE.load(Ordering::SeqCst) {
                    // SAFETY: the target is joined only after DONE is set and
                    // this thread has stopped, so the pthread_t stays valid.
                    if unsafe { libc::pthread_kill(target_id, libc::SIGUSR1) } != 0 {
                        break;
                    }
                }
            });
            // The storm ends when the target is gone (pthread_kill fails) or below.
            std::thread::sleep(Duration::from_millis(2));
            DONE.store(true, Ordering::SeqCst);
            storm.join().unwrap();
            join_raw(target);
        }
        say(&format!("handler reads: {}", HANDLER_READS.load(Ordering::Relaxed) > 0));
        return;
    }
    for (out, err) in run_in_both_modes("signal_handlers_read_during_the_exit_sequence") {
        assert_eq!(count(&out, "handler reads: true"), 1, "{out}\n{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

// ---- first uses where the process is already tearing down ------------------

extern "C" fn first_use_in_atexit() {
    hijack_tls::set("late", support::Said("late value dropped"));
    hijack_tls::at_exit(|| say("late hook ran"));
    say(&format!("late status: {}", hijack_tls::status()));
}

#[test]
fn main_thread_first_use_in_an_atexit_handler() {
    if is_child("main_thread_first_use_in_an_atexit_handler") {
        // SAFETY: registers a plain function that only uses this crate and write(2).
        assert_eq!(unsafe { libc::atexit(first_use_in_atexit) }, 0);
        return;
    }
    for (out, _) in run_in_both_modes("main_thread_first_use_in_an_atexit_handler") {
        let status = lines(&out).find(|l| l.starts_with("late status: ")).expect(&out);
        assert!(status.contains("atexit"), "{status}");
        assert_eq!(count(&out, "late hook ran"), 1, "{out}");
        assert_eq!(count(&out, "late value dropped"), 1, "{out}");
    }
}

/// Runs in every process of this test binary; acts only in the child of the
/// `.fini_array` case.
#[used]
#[unsafe(link_section = ".fini_array")]
static FINI: extern "C" fn() = {
    extern "C" fn fini() {
        if is_child("main_thread_first_use_in_a_fini_array_function") {
            first_use_in_atexit();
        }
    }
    fini
};

#[test]
fn main_thread_first_use_in_a_fini_array_function() {
    if is_child("main_thread_first_use_in_a_fini_array_function") {
        return;
    }
    for (out, _) in run_in_both_modes("main_thread_first_use_in_a_fini_array_function") {
        let status = lines(&out).find(|l| l.starts_with("late status: ")).expect(&out);
        // Either it runs (and says atexit), or it says nothing will run it.
        if count(&out, "late hook ran") == 1 {
            assert!(status.contains("atexit"), "{status}");
            assert_eq!(count(&out, "late value dropped"), 1, "{out}");
        } else {
            assert!(status.contains("will not run"), "{status}\n{out}");
        }
    }
}

// ---- pthread_exit in a drop run by reset or unload ---------------------------

/// A value whose drop ends the thread with `pthread_exit(42)`.
struct ExitsInDrop;

impl Drop for ExitsInDrop {
    fn drop(&mut self) {
        say("exiting drop starts");
        // SAFETY: every frame up to the raw thread's start routine is Rust.
        unsafe { pthread_exit(42) }
    }
}

fn thread_exiting_in_a_drop_of(clear: fn()) -> usize {
    let thread = spawn_raw(move || {
        hijack_tls::at_exit(|| say("hook ran"));
        hijack_tls::set("older", support::Said("older value dropped"));
        hijack_tls::set("exits", ExitsInDrop);
        hijack_tls::set("newer", support::Said("newer value dropped"));
        clear();
        say("went on after the drop");
        0
    });
    join_raw(thread)
}

#[test]
fn pthread_exit_in_a_drop_during_reset_still_ends_the_thread() {
    if is_child("pthread_exit_in_a_drop_during_reset_still_ends_the_thread") {
        say(&format!("joined {}", thread_exiting_in_a_drop_of(hijack_tls::reset)));
        return;
    }
    for (out, err) in run_in_both_modes("pthread_exit_in_a_drop_during_reset_still_ends_the_thread")
    {
        for line in [
            "exiting drop starts",
            "older value dropped",
            "newer value dropped",
            "hook ran",
            "joined 42",
        ] {
            assert_eq!(count(&out, line), 1, "{line:?} once:\n{out}\n{err}");
        }
        assert_eq!(count(&out, "went on after the drop"), 0, "{out}");
    }
}

#[test]
fn pthread_exit_in_a_drop_during_unload_still_ends_the_thread() {
    if is_child("pthread_exit_in_a_drop_during_unload_still_ends_the_thread") {
        say(&format!("joined {}", thread_exiting_in_a_drop_of(hijack_tls::unload)));
        return;
    }
    for (out, err) in
        run_in_both_modes("pthread_exit_in_a_drop_during_unload_still_ends_the_thread")
    {
        for line in
            ["exiting drop starts", "older value dropped", "newer value dropped", "joined 42"]
        {
            assert_eq!(count(&out, line), 1, "{line:?} once:\n{out}\n{err}");
        }
        // unload discards the hook unrun.
        assert_eq!(count(&out, "hook ran"), 0, "{out}");
        assert_eq!(count(&out, "went on after the drop"), 0, "{out}");
    }
}

// ---- what status() says once the sequence has started ------------------------

#[test]
fn status_inside_a_hook_names_what_started_the_sequence() {
    if is_child("status_inside_a_hook_names_what_started_the_sequence") {
        let returns = spawn_raw(|| {
            hijack_tls::at_exit(|| say(&format!("returned: {}", hijack_tls::status())));
            0
        });
        join_raw(returns);
        let exits = spawn_raw(|| {
            hijack_tls::at_exit(|| say(&format!("pthread_exit: {}", hijack_tls::status())));
            // SAFETY: every frame up to the start routine is Rust.
            unsafe { pthread_exit(0) }
        });
        join_raw(exits);
        return;
    }
    let hijack = cfg!(feature = "hijack") && common::HIJACK_TARGET;
    for (index, (out, _)) in
        run_in_both_modes("status_inside_a_hook_names_what_started_the_sequence").iter().enumerate()
    {
        let hijacked = hijack && index == 0;
        let line = |prefix: &str| {
            lines(out).find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{out}")).to_owned()
        };
        let returned = line("returned: ");
        let exited = line("pthread_exit: ");
        if hijacked {
            assert!(
                returned.ends_with("exit sequence started by the exit trampoline"),
                "{returned}"
            );
            assert!(exited.ends_with("started by the forced-unwind cleanup buffer"), "{exited}");
        } else {
            assert!(returned.ends_with("the safety net (thread_local! destructor)"), "{returned}");
            assert!(exited.ends_with("the safety net (thread_local! destructor)"), "{exited}");
        }
    }
}

/// Puts the original return address back in the hijacked slot, as a wrong slot
/// choice would have left it: the trampoline cannot fire.
#[cfg(all(target_arch = "x86_64", feature = "hijack"))]
fn undo_the_hijack_behind_the_crates_back() -> bool {
    match hijack_tls::status() {
        hijack_tls::Status::Hijacked { slot, original_return, .. } => {
            // SAFETY: `slot` is this thread's live return-address slot (the
            // crate's own report); x86_64 stores the plain address there.
            unsafe { (slot as *mut usize).write_volatile(original_return) };
            true
        }
        _ => false,
    }
}

#[cfg(all(target_arch = "x86_64", feature = "hijack"))]
#[test]
fn a_hijack_whose_trampoline_never_runs_is_counted_and_reported() {
    if is_child("a_hijack_whose_trampoline_never_runs_is_counted_and_reported") {
        let thread = spawn_raw(|| {
            hijack_tls::at_exit(|| say(&format!("hook: {}", hijack_tls::status())));
            usize::from(undo_the_hijack_behind_the_crates_back())
        });
        let undone = join_raw(thread) == 1;
        say(&format!("undone {undone}, missed {}", hijack_tls::diagnostics::missed_hijacks()));
        return;
    }
    let (code, out, err) = run_child_timeout(
        "a_hijack_whose_trampoline_never_runs_is_counted_and_reported",
        &[],
        TIMEOUT,
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(count(&out, "undone true, missed 1"), 1, "{out}\n{err}");
    let hook = lines(&out).find(|l| l.starts_with("hook: ")).expect(&out);
    assert!(hook.contains("on a hijacked thread whose trampoline never ran"), "{hook}");
    assert!(err.contains("the trampoline never ran"), "{err}");
}

// ---- leaving from inside a borrow of the record ------------------------------

/// A key whose `Eq` ends the process with `exit(0)`: glibc then runs this
/// thread's TLS destructors while the crate is inside its borrow of the record.
struct ExitingKey(u8);

impl std::hash::Hash for ExitingKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for ExitingKey {
    fn eq(&self, _other: &Self) -> bool {
        say("key's Eq calls exit");
        // SAFETY: ends the process; nothing here is used afterwards.
        unsafe { libc::exit(0) }
    }
}

impl Eq for ExitingKey {}

#[test]
fn exit_inside_a_key_eq_leaks_the_record_and_says_so() {
    if is_child("exit_inside_a_key_eq_leaks_the_record_and_says_so") {
        std::thread::spawn(|| {
            hijack_tls::at_exit(|| say("hook of the abandoned record ran"));
            hijack_tls::set(ExitingKey(1), 1_u8);
            // The probe for an equal key calls Eq, inside the borrow.
            hijack_tls::set(ExitingKey(1), 2_u8);
        })
        .join()
        .unwrap();
        return;
    }
    for (out, err) in run_in_both_modes("exit_inside_a_key_eq_leaks_the_record_and_says_so") {
        assert_eq!(count(&out, "key's Eq calls exit"), 1, "{out}");
        assert_eq!(count(&out, "hook of the abandoned record ran"), 0, "{out}");
        assert!(err.contains("the record was leaked"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
