//! Walks of real threads of this test process: std threads, raw
//! `pthread_create` threads, deep recursion, and a TLS destructor. Run with
//! `--nocapture` to see each frame (object, libc or not, symbol).

use crate::arch::{self, with_context};
use crate::walk::{
    ExitSlot, Frame, LoadedObjects, Objects, StackMemory, Strategy, WalkError, find_exit_slot,
};
use std::ffi::CStr;
use std::fmt::Write as _;
use std::sync::Mutex;

/// The symbol and object file containing `pc`, from `dladdr`.
fn describe(pc: u64) -> String {
    // SAFETY: `Dl_info` is pointers only; all-zero (null) is a valid value.
    let mut info = unsafe { std::mem::zeroed::<libc::Dl_info>() };
    // SAFETY: `dladdr` only reads the address and fills `info`.
    if unsafe { libc::dladdr(pc as *const libc::c_void, &mut info) } == 0 {
        return "?".into();
    }
    let text = |p: *const libc::c_char| {
        // SAFETY: `dladdr` returns NUL-terminated strings or null.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    };
    let object = text(info.dli_fname).unwrap_or_default();
    let object = object.rsplit('/').next().unwrap_or_default().to_owned();
    let symbol = text(info.dli_sname).unwrap_or_else(|| "?".into());
    format!("{object}: {symbol}")
}

/// Walks the calling thread's stack with `strategy` and prints its frames.
#[inline(never)]
pub(super) fn walk_here(label: &str, strategy: Strategy) -> Result<ExitSlot, WalkError> {
    walk_here_frames(label, strategy).0
}

/// As [`walk_here`], also returning the frames.
#[inline(never)]
fn walk_here_frames(label: &str, strategy: Strategy) -> (Result<ExitSlot, WalkError>, Vec<Frame>) {
    let mut frames: Vec<Frame> = Vec::new();
    let result = with_context(|ctx| {
        let mut mem = StackMemory::current_thread(ctx)?;
        let mut objects = LoadedObjects::with_strategy(strategy);
        find_exit_slot(ctx, &mut mem, &mut objects, &mut |f| frames.push(*f))
    });
    let mut out = format!("== {label}: {result:?}\n");
    let total = frames.len();
    for f in frames.iter().filter(|f| f.index < 4 || f.index + 6 >= total) {
        let libc = if f.is_libc { "libc" } else { "    " };
        let signal = if f.signal_trampoline { " [signal]" } else { "" };
        let name = describe(f.pc.wrapping_sub(1));
        let _ = writeln!(
            out,
            "  #{:<5} {libc} pc={:#x} cfa={:#x} {name}{signal}",
            f.index, f.pc, f.cfa
        );
        if f.index == 3 && total > 10 {
            let _ = writeln!(out, "  ...");
        }
    }
    print!("{out}");
    (result, frames)
}

/// Asserts `found` returns into libc (without reading the slot, whose frame
/// may be gone).
fn assert_into_libc_value(found: &ExitSlot) {
    let original = arch::strip_return_address(found.return_address, found.ra_signed);
    if !found.ra_signed {
        assert_eq!(original, found.return_address, "an unsigned address is left alone");
    }
    let mut objects = LoadedObjects::new();
    let object = objects.find(original - 1).expect("object");
    assert!(object.is_libc, "{original:#x} is not in libc");
    assert_slot_in_frame(found);
}

/// Asserts the slot lies where the ISA's calling convention puts a return
/// address: x86_64's `call` pushes it just below the caller's sp (= the CFA);
/// an aarch64 prologue stores x30 anywhere in its frame record, below the CFA.
fn assert_slot_in_frame(found: &ExitSlot) {
    if cfg!(target_arch = "x86_64") {
        assert_eq!(found.cfa, found.slot + 8);
    } else {
        assert!(found.slot < found.cfa && found.cfa - found.slot <= 4096, "{found:x?}");
    }
}

/// Asserts `found` is a plausible exit slot: its value is a return address
/// into libc.
fn assert_into_libc(found: &ExitSlot) {
    assert_into_libc_value(found);
    // SAFETY: the slot is on this thread's stack, in a live outer frame.
    let value = unsafe { (found.slot as *const u64).read_volatile() };
    assert_eq!(value, found.return_address, "the slot holds the word as stored");
}

#[test]
fn std_thread() {
    std::thread::spawn(|| {
        let found = walk_here("std thread", Strategy::best()).expect("walk");
        assert_into_libc(&found);
        // start routine → start_thread → clone3
        assert!(found.frames >= 3);
    })
    .join()
    .unwrap();
}

#[test]
fn test_thread_itself() {
    let found = walk_here("test thread", Strategy::best()).expect("walk");
    assert_into_libc(&found);
}

#[test]
fn both_strategies_agree() {
    std::thread::spawn(|| {
        let best = walk_here("std thread, best", Strategy::best()).expect("walk");
        let phdr = walk_here("std thread, dl_iterate_phdr", Strategy::IteratePhdr).expect("walk");
        // Same outer frames, called from the same depth of this closure.
        assert_eq!(best.slot, phdr.slot);
        assert_eq!(best.return_address, phdr.return_address);
    })
    .join()
    .unwrap();
}

/// The walk on the raw pthread, and the address of a local of its start routine.
static PTHREAD_RESULT: Mutex<Option<(Result<ExitSlot, WalkError>, u64)>> = Mutex::new(None);

/// A C start routine. It only records: a panic here would abort the process.
extern "C" fn pthread_start(_: *mut libc::c_void) -> *mut libc::c_void {
    let local = 0u8;
    let here = std::hint::black_box(&local) as *const u8 as u64;
    let result = walk_here("pthread_create thread", Strategy::best());
    if let Ok(mut guard) = PTHREAD_RESULT.lock() {
        *guard = Some((result, here));
    }
    core::ptr::null_mut()
}

#[test]
fn raw_pthread() {
    let mut thread: libc::pthread_t = 0;
    // SAFETY: `pthread_start` has the C start-routine signature and ignores its
    // argument; `thread` is a valid out-pointer.
    let rc = unsafe {
        libc::pthread_create(&mut thread, core::ptr::null(), pthread_start, core::ptr::null_mut())
    };
    assert_eq!(rc, 0);
    // SAFETY: `thread` is joinable and joined once.
    assert_eq!(unsafe { libc::pthread_join(thread, core::ptr::null_mut()) }, 0);
    let (result, here) = PTHREAD_RESULT.lock().unwrap().take().expect("thread ran");
    let found = result.expect("walk");
    assert_into_libc_value(&found);
    // The target is the start routine itself: its return slot is just above
    // its locals. Frames: with_context, walk_here(_frames), pthread_start,
    // start_thread, clone3.
    assert!(found.slot > here && found.slot - here < 4096);
    assert!(found.frames >= 5);
}

/// Recurses `depth` times, then walks.
#[inline(never)]
fn recurse(depth: u32) -> Result<ExitSlot, WalkError> {
    if depth == 0 {
        return walk_here("10,000 frames deep", Strategy::best());
    }
    let result = recurse(std::hint::black_box(depth - 1));
    std::hint::black_box(result)
}

#[test]
fn deep_recursion() {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            let found = recurse(10_000).expect("walk");
            assert_into_libc(&found);
            assert!(found.frames > 10_000);
        })
        .unwrap()
        .join()
        .unwrap();
}

/// The result of the walk inside the TLS destructor.
static DTOR_RESULT: Mutex<Option<Result<ExitSlot, WalkError>>> = Mutex::new(None);

/// Walks in its destructor.
struct WalkOnDrop;

impl Drop for WalkOnDrop {
    fn drop(&mut self) {
        let result = walk_here("thread_local! destructor", Strategy::best());
        if let Ok(mut guard) = DTOR_RESULT.lock() {
            *guard = Some(result);
        }
    }
}

thread_local! {
    static WALK_ON_DROP: WalkOnDrop = const { WalkOnDrop };
}

#[test]
fn tls_destructor_is_not_a_thread_start() {
    std::thread::spawn(|| WALK_ON_DROP.with(|_| {})).join().unwrap();
    let result = DTOR_RESULT.lock().unwrap().take().expect("destructor ran");
    assert!(matches!(result, Err(WalkError::NotThreadStart { libc_frames: 3, .. })), "{result:?}");
}

/// The walk's result and frames inside the signal handler.
type SignalWalk = (Result<ExitSlot, WalkError>, Vec<Frame>);

/// The result of the walk inside the signal handler.
static SIGNAL_RESULT: Mutex<Option<SignalWalk>> = Mutex::new(None);

/// A signal handler that walks (through glibc's `__restore_rt` frame).
extern "C" fn walk_in_handler(_: libc::c_int) {
    let walked = walk_here_frames("signal handler", Strategy::best());
    if let Ok(mut guard) = SIGNAL_RESULT.lock() {
        *guard = Some(walked);
    }
}

#[test]
fn signal_handler_walks_through_restore_rt() {
    std::thread::spawn(|| {
        // SAFETY: a zeroed `sigaction` is valid; the handler has the plain
        // `void (*)(int)` signature, runs on this thread's own stack (no
        // SA_ONSTACK) and the old action is restored afterwards.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = walk_in_handler as *const () as usize;
            let mut old: libc::sigaction = std::mem::zeroed();
            assert_eq!(libc::sigaction(libc::SIGUSR2, &action, &mut old), 0);
            assert_eq!(libc::pthread_kill(libc::pthread_self(), libc::SIGUSR2), 0);
            assert_eq!(libc::sigaction(libc::SIGUSR2, &old, core::ptr::null_mut()), 0);
        }
    })
    .join()
    .unwrap();
    let (result, frames) = SIGNAL_RESULT.lock().unwrap().take().expect("handler ran");
    if cfg!(target_arch = "aarch64")
        && matches!(
            result,
            Err(WalkError::SignalFrameWithoutSp { .. }
                | WalkError::NoFde { .. }
                | WalkError::NoObject { .. })
        )
    {
        // aarch64 has no libc restorer: the handler returns into the kernel's vDSO
        // `__kernel_rt_sigreturn`, whose CFI lacks the interrupted sp (and in some
        // kernels starts after the pad the handler's `pc - 1` falls on), or under
        // qemu-user (before 8.1) into a trampoline page without unwind info. Either
        // way the walk must refuse rather than guess.
        println!("aarch64 signal frame refused: {result:?}");
        return;
    }
    let found = result.expect("walk");
    assert_into_libc_value(&found);
    let signal = frames.iter().position(|f| f.signal_trampoline).expect("a signal frame");
    assert!(frames[signal].is_libc);
    // The handler returned into __restore_rt, but the target is further out.
    assert!(frames[signal].cfa < found.cfa);
}
