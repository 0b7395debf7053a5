//! The calling thread's stack bounds, as `pthread_getattr_np` reports them.
//!
//! `pthread_getattr_np` costs a lock, three allocations and a `sched_getaffinity`
//! call, yet its stack answer comes from three consecutive words of the thread
//! descriptor (glibc's `stackblock`, `stackblock_size`, `guardsize`). The first
//! answers it gives are used to find those words: the descriptor is searched for
//! the one place holding exactly what the answer implies, and a later thread
//! (not the one that searched) confirms it. From then on a thread reads the three words itself. Until then, or
//! where the search fails, `pthread_getattr_np` is asked every time. NOTES.md
//! ("Stack bounds from the thread descriptor") has the reasoning.

use core::cell::Cell;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::diagnostics::StackBoundsSource as Source;
use crate::walk::WalkError;

/// `[lo, hi)`: a thread's stack without its guard area.
pub(crate) type Bounds = (u64, u64);

/// Descriptor words searched for the three fields.
const SEARCH_WORDS: usize = 512;

/// Threads whose search may fail before the search is given up.
const MAX_FAILED_SEARCHES: usize = 8;

/// What is known of the fields' place, packed in one word: a tag in the low two
/// bits and the word offset of `stackblock` above them.
static FIELDS: AtomicUsize = AtomicUsize::new(UNKNOWN);
/// Threads whose search found no single place.
static FAILED_SEARCHES: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread searched its descriptor (and so cannot confirm what it
    /// found).
    static SEARCHED_HERE: Cell<bool> = const { Cell::new(false) };
}

/// Tag: nothing found yet (the whole word is 0).
const UNKNOWN: usize = 0;
/// Tag: the search was given up (the whole word is 1).
const GAVE_UP: usize = 1;
/// Tag: one thread found the offset; another must find its answer there too.
const CANDIDATE: usize = 2;
/// Tag: the offset is confirmed; threads read the fields there.
const CONFIRMED: usize = 3;

/// The current source.
pub(crate) fn source() -> Source {
    let state = FIELDS.load(Ordering::Relaxed);
    match state & 3 {
        CONFIRMED => Source::Descriptor { word: state >> 2 },
        GAVE_UP => Source::GaveUp,
        _ => Source::Searching,
    }
}

/// The calling thread's stack bounds: the descriptor's fields once they are
/// confirmed, else `pthread_getattr_np`.
pub(crate) fn current() -> Result<Bounds, WalkError> {
    let descriptor = self_descriptor();
    if let Some(bounds) = from_descriptor(descriptor) {
        return Ok(bounds);
    }
    let bounds = from_getattr()?;
    let state = FIELDS.load(Ordering::Relaxed);
    if state & 3 != CONFIRMED && state != GAVE_UP {
        learn(descriptor, bounds);
    }
    Ok(bounds)
}

/// The bounds the fields of the calling thread's descriptor (at `descriptor`)
/// describe, once their place is confirmed and if they pass the checks.
fn from_descriptor(descriptor: u64) -> Option<Bounds> {
    let state = FIELDS.load(Ordering::Relaxed);
    if state & 3 != CONFIRMED {
        return None;
    }
    // SAFETY: a confirmed offset is glibc's `stackblock` field: the real fields
    // always satisfy the search (they are what `pthread_getattr_np` computed its
    // answer from) and lie inside the searched words (word 210 on x86_64, 146 on
    // aarch64, glibc 2.36), so a place found alone is them; a later thread found
    // its own answer there again. Every thread's descriptor, the main thread's
    // included, is a whole `struct pthread`.
    let fields = unsafe { read_fields(descriptor, state >> 2) };
    bounds_from_fields(fields, descriptor)
}

/// The bounds `pthread_getattr_np` reports for the calling thread.
pub(crate) fn from_getattr() -> Result<Bounds, WalkError> {
    let mut attr = core::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
    // SAFETY: `attr` is valid for writes; on success it is initialised and must be
    // destroyed, which the code below does on every path.
    if unsafe { libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) } != 0 {
        return Err(WalkError::StackBounds);
    }
    let mut addr = core::ptr::null_mut();
    let mut size = 0;
    // SAFETY: `attr` was initialised by `pthread_getattr_np`; the out-pointers are
    // valid locals.
    let rc = unsafe { libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size) };
    // SAFETY: `attr` is initialised and destroyed exactly once.
    unsafe { libc::pthread_attr_destroy(attr.as_mut_ptr()) };
    if rc != 0 {
        return Err(WalkError::StackBounds);
    }
    let lo = addr as u64;
    let hi = lo.checked_add(size as u64).ok_or(WalkError::StackBounds)?;
    Ok((lo, hi))
}

/// The calling thread's descriptor address (`pthread_self()`).
fn self_descriptor() -> u64 {
    // SAFETY: pthread_self has no preconditions.
    (unsafe { libc::pthread_self() }) as u64
}

/// Reads the three words at `word` words into the descriptor at `descriptor`.
///
/// # Safety
/// The 24 bytes must lie inside the calling thread's descriptor (or other memory
/// mapped while it runs).
unsafe fn read_fields(descriptor: u64, word: usize) -> [u64; 3] {
    let base = core::ptr::with_exposed_provenance::<u64>(descriptor as usize);
    let mut fields = [0; 3];
    // A plain loop, not `array::map`: in a debug build the closures of `map` took
    // 900 bytes of stack here, on the way to the walk's stack check.
    for (i, field) in fields.iter_mut().enumerate() {
        // SAFETY: the caller guarantees the words are mapped. Volatile: the
        // descriptor belongs to the C library, which may write other words of it
        // concurrently.
        *field = unsafe { base.add(word + i).read_volatile() };
    }
    fields
}

/// `pthread_getattr_np`'s computation from the fields: the stack without its
/// guard area, `[stackblock + guardsize, stackblock + stackblock_size)`. `None` for
/// a thread without a stack block (the main thread) or fields that do not describe
/// a block holding its own descriptor, as every glibc-created thread's does.
fn bounds_from_fields([block, block_size, guard]: [u64; 3], descriptor: u64) -> Option<Bounds> {
    if block == 0 || guard >= block_size {
        return None;
    }
    let hi = block.checked_add(block_size)?;
    (block..hi).contains(&descriptor).then_some((block + guard, hi))
}

/// Searches this thread's descriptor for the fields behind `bounds` (its answer
/// from `pthread_getattr_np`), or confirms a candidate offset found on an
/// earlier thread.
fn learn(descriptor: u64, bounds: Bounds) {
    let (lo, hi) = bounds;
    // The search reads only inside the stack block, which holds the descriptor of
    // every thread glibc created; not the main thread's.
    if !(lo..hi).contains(&descriptor) {
        return;
    }
    let words = (((hi - descriptor) / 8) as usize).min(SEARCH_WORDS);
    let state = FIELDS.load(Ordering::Relaxed);
    let searched_here = SEARCHED_HERE.with(|searched| searched.replace(true));
    if state & 3 == CANDIDATE {
        // The thread that found the candidate would only read the same words again.
        if searched_here {
            return;
        }
        let word = state >> 2;
        // SAFETY: the 24 bytes are inside `[descriptor, hi)`, this thread's stack
        // block, mapped while it runs.
        let confirmed = word + 3 <= words
            && bounds_from_fields(unsafe { read_fields(descriptor, word) }, descriptor)
                == Some(bounds);
        let next = if confirmed { word << 2 | CONFIRMED } else { GAVE_UP };
        let _ = FIELDS.compare_exchange(state, next, Ordering::Relaxed, Ordering::Relaxed);
        return;
    }
    let base = core::ptr::with_exposed_provenance::<u64>(descriptor as usize);
    // SAFETY: `[descriptor, descriptor + 8 * words)` is inside `[descriptor, hi)`,
    // this thread's stack block. Volatile, as in `read_fields`.
    let read = |i: usize| unsafe { base.add(i).read_volatile() };
    match find_fields(read, words, descriptor, bounds) {
        Some(word) => {
            let _ = FIELDS.compare_exchange(
                UNKNOWN,
                word << 2 | CANDIDATE,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        None => {
            if FAILED_SEARCHES.fetch_add(1, Ordering::Relaxed) + 1 >= MAX_FAILED_SEARCHES {
                // Only while nothing was found: a candidate another thread found
                // meanwhile is confirmed or refused on its own.
                let _ =
                    FIELDS.compare_exchange(UNKNOWN, GAVE_UP, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    }
}

/// The one word offset `i < words` whose three words `read(i..i + 3)` describe
/// exactly `bounds`; `None` if there is none or more than one.
fn find_fields(
    read: impl Fn(usize) -> u64,
    words: usize,
    descriptor: u64,
    bounds: Bounds,
) -> Option<usize> {
    let mut found = None;
    for word in 0..words.saturating_sub(2) {
        let fields = [read(word), read(word + 1), read(word + 2)];
        if bounds_from_fields(fields, descriptor) == Some(bounds) {
            if found.is_some() {
                return None;
            }
            found = Some(word);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: u64 = 0x7f00_0000_0000;
    const SIZE: u64 = 0x20_0000;
    const GUARD: u64 = 0x1000;
    const DESCRIPTOR: u64 = BLOCK + SIZE - 0x900;
    const BOUNDS: Bounds = (BLOCK + GUARD, BLOCK + SIZE);

    fn search(words: &[u64]) -> Option<usize> {
        find_fields(|i| words[i], words.len(), DESCRIPTOR, BOUNDS)
    }

    #[test]
    fn fields_give_getattrs_bounds() {
        assert_eq!(bounds_from_fields([BLOCK, SIZE, GUARD], DESCRIPTOR), Some(BOUNDS));
        // The main thread has no stack block.
        assert_eq!(bounds_from_fields([0, 0, 0], DESCRIPTOR), None);
        // A guard as large as the block, a block that wraps, a descriptor elsewhere.
        assert_eq!(bounds_from_fields([BLOCK, SIZE, SIZE], DESCRIPTOR), None);
        assert_eq!(bounds_from_fields([u64::MAX - 8, SIZE, 0], DESCRIPTOR), None);
        assert_eq!(bounds_from_fields([BLOCK, SIZE, GUARD], BLOCK + SIZE), None);
    }

    #[test]
    fn search_finds_the_one_place() {
        let mut words = vec![0u64; 300];
        words[7] = BLOCK + SIZE;
        words[211..214].copy_from_slice(&[BLOCK, SIZE, GUARD]);
        assert_eq!(search(&words), Some(211));
        // At the very end of the searched words.
        let end = words.len() - 3;
        words[211] = 0;
        words[end..].copy_from_slice(&[BLOCK, SIZE, GUARD]);
        assert_eq!(search(&words), Some(end));
    }

    #[test]
    fn search_refuses_none_two_or_near_misses() {
        let mut words = vec![0u64; 300];
        assert_eq!(search(&words), None);
        // Other guard sizes describe other bounds.
        words[40..43].copy_from_slice(&[BLOCK, SIZE, 0]);
        words[50..53].copy_from_slice(&[BLOCK, SIZE + 0x1000, GUARD]);
        assert_eq!(search(&words), None);
        words[211..214].copy_from_slice(&[BLOCK, SIZE, GUARD]);
        words[100..103].copy_from_slice(&[BLOCK, SIZE, GUARD]);
        assert_eq!(search(&words), None, "two places: neither is trusted");
        // Cut off by the window.
        assert_eq!(find_fields(|i| words[i], 213, DESCRIPTOR, BOUNDS), Some(100));
    }

    /// What a thread sees: its bounds, `pthread_getattr_np`'s, the source after,
    /// and its descriptor fields' bounds.
    type Seen = (Result<Bounds, WalkError>, Result<Bounds, WalkError>, Source, Option<Bounds>);

    /// `current()`, `pthread_getattr_np`, the source, and what this thread's own
    /// fields say (`current()`'s fast path, which must not quietly fall back).
    fn look() -> Seen {
        let (ours, getattr, source) = (current(), from_getattr(), source());
        (ours, getattr, source, from_descriptor(self_descriptor()))
    }

    fn assert_same(seen: Seen) -> Source {
        let (ours, getattr, source, from_fields) = seen;
        assert!(ours.is_ok(), "{ours:?}");
        assert_eq!(ours, getattr);
        if matches!(source, Source::Descriptor { .. }) {
            assert_eq!(from_fields.map(Ok), Some(getattr), "the fields read directly");
        }
        source
    }

    /// On real threads: the fields are found and confirmed, and from then on give
    /// exactly what `pthread_getattr_np` gives, for default stacks, other sizes and
    /// a caller-provided stack.
    #[test]
    fn descriptor_bounds_match_getattr_on_real_threads() {
        for _ in 0..3 {
            assert_same(std::thread::spawn(look).join().expect("thread"));
        }
        assert!(
            matches!(source(), Source::Descriptor { .. }),
            "glibc's stack fields were not located: {:?}",
            source()
        );
        for size in [64 << 10, 1 << 20, (9 << 20) + 4096] {
            let thread = std::thread::Builder::new().stack_size(size).spawn(look);
            let source = assert_same(thread.expect("spawn").join().expect("thread"));
            assert!(matches!(source, Source::Descriptor { .. }), "{source:?}");
        }
        let source = assert_same(run_on_caller_stack(look));
        assert!(matches!(source, Source::Descriptor { .. }), "{source:?}");
    }

    /// Runs `f` on a pthread whose stack the caller allocated
    /// (`pthread_attr_setstack`), with a stack top that is not page-aligned.
    fn run_on_caller_stack(f: fn() -> Seen) -> Seen {
        extern "C" fn start(arg: *mut libc::c_void) -> *mut libc::c_void {
            // SAFETY: `arg` is the `fn() -> Seen` passed to pthread_create below.
            let f: fn() -> Seen = unsafe { core::mem::transmute(arg) };
            Box::into_raw(Box::new(f())).cast()
        }
        let mut stack = vec![0u8; (256 << 10) + 64];
        let stack_addr = stack.as_mut_ptr().wrapping_add(24);
        let stack_size = stack.len() - 40;
        // SAFETY: `attr` is initialised before use and destroyed after; the stack is
        // writable memory that outlives the thread (joined below); `start` returns
        // the `Box<Seen>` taken back after the join.
        unsafe {
            let mut attr = core::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
            assert_eq!(libc::pthread_attr_init(attr.as_mut_ptr()), 0);
            assert_eq!(
                libc::pthread_attr_setstack(attr.as_mut_ptr(), stack_addr.cast(), stack_size),
                0
            );
            let mut thread = 0;
            let arg = f as *mut libc::c_void;
            assert_eq!(libc::pthread_create(&mut thread, attr.as_ptr(), start, arg), 0);
            let mut result = core::ptr::null_mut();
            assert_eq!(libc::pthread_join(thread, &mut result), 0);
            libc::pthread_attr_destroy(attr.as_mut_ptr());
            drop(stack);
            *Box::from_raw(result.cast::<Seen>())
        }
    }
}
