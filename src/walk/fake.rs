//! Fake stack memory and fake loaded objects, for walks over synthetic CFI: the
//! unit tests' and the fuzz target's (`walk::fuzz`). Safe code only: a read
//! outside the fakes is an error or a panic, never a stray load.

use super::source::check_word;
use super::{Memory, ObjectInfo, Objects, StackTops, WalkError};
use core::ops::Range;

/// A fake stack: 8-byte words starting at `base`.
#[derive(Clone, Debug)]
pub(crate) struct FakeStack {
    /// Address of `words[0]`.
    pub(crate) base: u64,
    /// The stack's contents.
    pub(crate) words: Vec<u64>,
    /// Value to return on the second read of an address (tests slot re-reads).
    pub(crate) tamper: Option<(u64, u64)>,
    /// Times the tampered address was read.
    tampered_reads: usize,
    /// Where the thread-start frames must be (none known unless a test says).
    pub(crate) tops: StackTops,
}

impl FakeStack {
    /// `len` zero words at `base`.
    #[cfg(test)]
    pub(crate) fn new(base: u64, len: usize) -> Self {
        Self::with_words(base, vec![0; len])
    }

    /// The words of `bytes` (native-endian; a last partial word is dropped) at
    /// `base`, if the stack's end does not overflow the address space.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn from_bytes(base: u64, bytes: &[u8]) -> Option<Self> {
        let words: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|word| u64::from_ne_bytes(word.try_into().unwrap_or_default()))
            .collect();
        base.checked_add(u64::try_from(words.len()).ok()?.checked_mul(8)?)?;
        Some(Self::with_words(base, words))
    }

    /// `words` at `base`.
    fn with_words(base: u64, words: Vec<u64>) -> Self {
        FakeStack { base, words, tamper: None, tampered_reads: 0, tops: StackTops::default() }
    }

    /// Stores `value` at `addr`.
    #[cfg(test)]
    pub(crate) fn put(&mut self, addr: u64, value: u64) {
        let index = usize::try_from((addr - self.base) / 8).unwrap();
        assert_eq!(addr % 8, 0);
        self.words[index] = value;
    }

    /// One past the last address.
    pub(crate) fn top(&self) -> u64 {
        self.base + 8 * self.words.len() as u64
    }
}

impl Memory for FakeStack {
    fn read_u64(&mut self, addr: u64) -> Result<u64, WalkError> {
        check_word(addr, self.base, self.top())?;
        let value = self.words[((addr - self.base) / 8) as usize];
        match self.tamper {
            Some((at, other)) if at == addr => {
                self.tampered_reads += 1;
                Ok(if self.tampered_reads > 1 { other } else { value })
            }
            _ => Ok(value),
        }
    }

    fn stack_tops(&self) -> StackTops {
        self.tops
    }
}

/// One fake object: a code range and its unwind sections.
#[derive(Clone, Debug)]
pub(crate) struct FakeObject {
    /// Code addresses the object covers.
    pub(crate) text: Range<u64>,
    /// `.eh_frame_hdr` bytes.
    pub(crate) eh_frame_hdr: Vec<u8>,
    /// Where `.eh_frame_hdr` is "mapped".
    pub(crate) eh_frame_hdr_addr: u64,
    /// `.eh_frame` bytes.
    pub(crate) eh_frame: Vec<u8>,
    /// Where `.eh_frame` is "mapped".
    pub(crate) eh_frame_addr: u64,
    /// Whether the object plays libc.
    pub(crate) is_libc: bool,
}

/// Fake objects that report a load generation, so a walk over them uses and fills
/// the recipe cache like a walk over the loaded objects.
#[derive(Clone, Debug)]
pub(crate) struct CountedObjects {
    /// The objects.
    pub(crate) objects: FakeObjects,
    /// What [`Objects::load_generation`] answers.
    pub(crate) generation: u128,
}

impl Objects for CountedObjects {
    fn find(&mut self, pc: u64) -> Result<ObjectInfo<'_>, WalkError> {
        self.objects.find(pc)
    }

    fn load_generation(&mut self) -> Option<u128> {
        Some(self.generation)
    }
}

/// A set of fake objects.
#[derive(Clone, Debug, Default)]
pub(crate) struct FakeObjects(pub(crate) Vec<FakeObject>);

impl Objects for FakeObjects {
    fn find(&mut self, pc: u64) -> Result<ObjectInfo<'_>, WalkError> {
        let object =
            self.0.iter().find(|o| o.text.contains(&pc)).ok_or(WalkError::NoObject { pc })?;
        Ok(ObjectInfo {
            start: object.text.start,
            eh_frame_hdr: &object.eh_frame_hdr,
            eh_frame_hdr_addr: object.eh_frame_hdr_addr,
            eh_frame: &object.eh_frame,
            eh_frame_addr: object.eh_frame_addr,
            is_libc: object.is_libc,
        })
    }
}
