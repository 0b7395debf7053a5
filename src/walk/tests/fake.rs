//! Fake stack memory and fake loaded objects for synthetic walks.

use crate::walk::memory::check_word;
use crate::walk::{Memory, ObjectInfo, Objects, WalkError};
use core::ops::Range;

/// A fake stack: 8-byte words starting at `base`.
#[derive(Clone, Debug)]
pub(super) struct FakeStack {
    /// Address of `words[0]`.
    pub(super) base: u64,
    /// The stack's contents.
    pub(super) words: Vec<u64>,
    /// Value to return on the second read of an address (tests slot re-reads).
    pub(super) tamper: Option<(u64, u64)>,
    /// Times the tampered address was read.
    tampered_reads: usize,
}

impl FakeStack {
    /// `len` zero words at `base`.
    pub(super) fn new(base: u64, len: usize) -> Self {
        FakeStack { base, words: vec![0; len], tamper: None, tampered_reads: 0 }
    }

    /// Stores `value` at `addr`.
    pub(super) fn put(&mut self, addr: u64, value: u64) {
        let index = usize::try_from((addr - self.base) / 8).unwrap();
        assert_eq!(addr % 8, 0);
        self.words[index] = value;
    }

    /// One past the last address.
    pub(super) fn top(&self) -> u64 {
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
}

/// One fake object: a code range and its unwind sections.
#[derive(Clone, Debug)]
pub(super) struct FakeObject {
    /// Code addresses the object covers.
    pub(super) text: Range<u64>,
    /// `.eh_frame_hdr` bytes.
    pub(super) eh_frame_hdr: Vec<u8>,
    /// Where `.eh_frame_hdr` is "mapped".
    pub(super) eh_frame_hdr_addr: u64,
    /// `.eh_frame` bytes.
    pub(super) eh_frame: Vec<u8>,
    /// Where `.eh_frame` is "mapped".
    pub(super) eh_frame_addr: u64,
    /// Whether the object plays libc.
    pub(super) is_libc: bool,
}

/// A set of fake objects.
#[derive(Clone, Debug, Default)]
pub(super) struct FakeObjects(pub(super) Vec<FakeObject>);

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
