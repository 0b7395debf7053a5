//! Never-freed copies of the bytes handed to unwinders and gdb: a hijacked thread
//! may run through a trampoline copy at any time, so its unwind info must outlive
//! every thread.

/// Copies `bytes` into a never-freed allocation aligned like a `usize`, so the
/// address-sized words in an `.eh_frame` are naturally aligned.
pub(super) fn leak_aligned(bytes: &[u8]) -> &'static [u8] {
    let words = bytes.len().div_ceil(size_of::<usize>());
    let storage: &'static mut [usize] = Box::leak(vec![0; words].into_boxed_slice());
    // SAFETY: `storage` is `words * size_of::<usize>() >= bytes.len()` initialized
    // bytes that nothing else references, `u8` has alignment 1, and the allocation
    // is leaked, so the view is valid and exclusive for `'static`.
    let view =
        unsafe { core::slice::from_raw_parts_mut(storage.as_mut_ptr().cast::<u8>(), bytes.len()) };
    view.copy_from_slice(bytes);
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_and_aligns() {
        let leaked = leak_aligned(&[1, 2, 3]);
        assert_eq!(leaked, [1, 2, 3]);
        assert_eq!(leaked.as_ptr() as usize % align_of::<usize>(), 0);
        assert!(leak_aligned(&[]).is_empty());
    }
}
