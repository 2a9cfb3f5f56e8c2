//! Which guest pseudo-physical frames are free: a bitmap over a range of
//! pfns, lowest first.
//!
//! The kernel hands it the frames the boot layout does not use (from the
//! page after the boot stack to `nr_pages`); `mm` turns pfns into machine
//! frames through the p2m. Lowest-first matters: while `mm` extends the
//! kernel's mapping of guest memory upwards, the frames it takes for new
//! page tables come from below the part still unmapped.

use core::fmt;

/// Why a frame could not be freed or taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The pfn is outside the allocator's range.
    OutOfRange(u64),
    /// Freeing a frame that is already free.
    AlreadyFree(u64),
    /// Taking a frame that is already in use.
    InUse(u64),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::OutOfRange(pfn) => write!(f, "pfn {pfn:#x} is outside the frame allocator"),
            FrameError::AlreadyFree(pfn) => write!(f, "pfn {pfn:#x} freed twice"),
            FrameError::InUse(pfn) => write!(f, "pfn {pfn:#x} is in use"),
        }
    }
}

/// A free-frame bitmap for pfns in `[start, end)`, where `end - start`
/// is at most `64 * WORDS` (a set bit is a free frame).
#[derive(Clone)]
pub struct FrameBitmap<const WORDS: usize> {
    free: [u64; WORDS],
    start: u64,
    end: u64,
    free_count: u64,
    /// No free frame lies below `start + 64 * hint` words.
    hint: usize,
}

impl<const WORDS: usize> FrameBitmap<WORDS> {
    /// Most frames a bitmap of this size covers.
    pub const CAPACITY: u64 = 64 * WORDS as u64;

    /// An allocator with no frames.
    pub const fn empty() -> Self {
        FrameBitmap { free: [0; WORDS], start: 0, end: 0, free_count: 0, hint: 0 }
    }

    /// Covers `[start, end)`, every frame free; a range longer than
    /// [`Self::CAPACITY`] is cut to it. Returns the end actually covered.
    pub fn reset(&mut self, start: u64, end: u64) -> u64 {
        let end = end.max(start).min(start.saturating_add(Self::CAPACITY));
        self.free = [0; WORDS];
        self.start = start;
        self.end = end;
        self.free_count = 0;
        self.hint = 0;
        for pfn in start..end {
            self.set(pfn, true);
        }
        self.free_count = end - start;
        end
    }

    /// The covered range.
    pub const fn range(&self) -> (u64, u64) {
        (self.start, self.end)
    }

    /// Frames free now.
    pub const fn free_count(&self) -> u64 {
        self.free_count
    }

    fn slot(&self, pfn: u64) -> Result<(usize, u64), FrameError> {
        if pfn < self.start || pfn >= self.end {
            return Err(FrameError::OutOfRange(pfn));
        }
        let i = pfn - self.start;
        Ok(((i / 64) as usize, 1 << (i % 64)))
    }

    fn set(&mut self, pfn: u64, free: bool) {
        if let Ok((w, bit)) = self.slot(pfn) {
            if free {
                self.free[w] |= bit;
            } else {
                self.free[w] &= !bit;
            }
        }
    }

    /// Whether `pfn` is free (false outside the range).
    pub fn is_free(&self, pfn: u64) -> bool {
        self.slot(pfn).is_ok_and(|(w, bit)| self.free[w] & bit != 0)
    }

    /// Takes the lowest free frame.
    pub fn alloc(&mut self) -> Option<u64> {
        let words = ((self.end - self.start).div_ceil(64)) as usize;
        for w in self.hint..words {
            let bits = self.free[w];
            if bits != 0 {
                self.hint = w;
                let pfn = self.start + 64 * w as u64 + u64::from(bits.trailing_zeros());
                self.free[w] &= !(1 << bits.trailing_zeros());
                self.free_count -= 1;
                return Some(pfn);
            }
        }
        self.hint = words;
        None
    }

    /// Takes `pfn`, which must be free.
    pub fn take(&mut self, pfn: u64) -> Result<(), FrameError> {
        let (w, bit) = self.slot(pfn)?;
        if self.free[w] & bit == 0 {
            return Err(FrameError::InUse(pfn));
        }
        self.free[w] &= !bit;
        self.free_count -= 1;
        Ok(())
    }

    /// Gives `pfn` back.
    pub fn free(&mut self, pfn: u64) -> Result<(), FrameError> {
        let (w, bit) = self.slot(pfn)?;
        if self.free[w] & bit != 0 {
            return Err(FrameError::AlreadyFree(pfn));
        }
        self.free[w] |= bit;
        self.free_count += 1;
        self.hint = self.hint.min(w);
        Ok(())
    }
}

impl<const WORDS: usize> fmt::Debug for FrameBitmap<WORDS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameBitmap")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("free", &self.free_count)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_first_then_reuse() {
        let mut b = FrameBitmap::<4>::empty();
        assert_eq!(b.alloc(), None);
        assert_eq!(b.reset(100, 200), 200);
        assert_eq!(b.free_count(), 100);
        assert_eq!((b.alloc(), b.alloc(), b.alloc()), (Some(100), Some(101), Some(102)));
        b.free(101).unwrap();
        assert_eq!(b.alloc(), Some(101));
        assert_eq!(b.alloc(), Some(103));
        assert_eq!(b.free_count(), 96);
    }

    #[test]
    fn exhaustion_and_capacity() {
        let mut b = FrameBitmap::<2>::empty();
        // 128 frames at most: the range is cut.
        assert_eq!(b.reset(10, 1000), 138);
        let got: Vec<u64> = core::iter::from_fn(|| b.alloc()).collect();
        assert_eq!(got, (10..138).collect::<Vec<_>>());
        assert_eq!(b.alloc(), None);
        b.free(77).unwrap();
        assert_eq!(b.alloc(), Some(77));
    }

    #[test]
    fn misuse_is_refused() {
        let mut b = FrameBitmap::<1>::empty();
        b.reset(0, 10);
        assert_eq!(b.free(3), Err(FrameError::AlreadyFree(3)));
        assert_eq!(b.free(10), Err(FrameError::OutOfRange(10)));
        b.take(5).unwrap();
        assert_eq!(b.take(5), Err(FrameError::InUse(5)));
        assert!(!b.is_free(5) && b.is_free(6) && !b.is_free(99));
        let all: Vec<u64> = core::iter::from_fn(|| b.alloc()).collect();
        assert_eq!(all, [0, 1, 2, 3, 4, 6, 7, 8, 9]);
        b.free(5).unwrap();
        assert_eq!(b.free_count(), 1);
    }

    #[test]
    fn random_alloc_free_keeps_count() {
        let mut b = FrameBitmap::<8>::empty();
        b.reset(1000, 1500);
        let mut held = Vec::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if !x.is_multiple_of(3) {
                if let Some(p) = b.alloc() {
                    assert!(!held.contains(&p));
                    held.push(p);
                }
            } else if !held.is_empty() {
                let p = held.swap_remove((x as usize / 3) % held.len());
                b.free(p).unwrap();
            }
            assert_eq!(b.free_count() + held.len() as u64, 500);
        }
    }
}
