//! The console ring: the hypervisor's recent console output, kept for the
//! control domain (`sysctl` `readconsole`, a toolstack's `dmesg`).
//!
//! Xen's `conring` semantics (`drivers/char/console.c`): a power-of-two
//! byte ring with free-running 32-bit producer and consumer indices. When
//! the producer laps the consumer, the oldest bytes are lost and the
//! consumer moves up. A read copies from the consumer (or, incrementally,
//! from an index the reader kept from its last read, if that index is
//! still in the ring) to the producer, and `clear` moves the consumer past
//! what was read.

/// A console ring of `N` bytes (a power of two).
#[derive(Clone)]
pub struct ConsoleRing<const N: usize> {
    buf: [u8; N],
    /// Next byte to write (free-running).
    prod: u32,
    /// Oldest byte kept (free-running).
    cons: u32,
}

impl<const N: usize> core::fmt::Debug for ConsoleRing<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ConsoleRing").field("prod", &self.prod).field("cons", &self.cons).finish_non_exhaustive()
    }
}

/// What a read took from the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadOut {
    /// Bytes copied.
    pub count: u32,
    /// The index after the last byte copied: pass it back for an
    /// incremental read.
    pub index: u32,
}

impl<const N: usize> Default for ConsoleRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ConsoleRing<N> {
    const SIZE: u32 = {
        assert!(N.is_power_of_two() && N <= 1 << 31, "a console ring is a power of two up to 2 GiB");
        N as u32
    };

    /// An empty ring.
    pub const fn new() -> Self {
        let _ = Self::SIZE;
        ConsoleRing { buf: [0; N], prod: 0, cons: 0 }
    }

    /// Appends `bytes`, dropping the oldest if the ring is full.
    pub fn push(&mut self, bytes: &[u8]) {
        // Only the last `N` bytes can stay; copy them in at most two runs.
        let keep = &bytes[bytes.len().saturating_sub(N)..];
        let skipped = (bytes.len() - keep.len()) as u32;
        self.prod = self.prod.wrapping_add(skipped);
        let at = (self.prod % Self::SIZE) as usize;
        let first = keep.len().min(N - at);
        self.buf[at..at + first].copy_from_slice(&keep[..first]);
        self.buf[..keep.len() - first].copy_from_slice(&keep[first..]);
        self.prod = self.prod.wrapping_add(keep.len() as u32);
        if self.prod.wrapping_sub(self.cons) > Self::SIZE {
            self.cons = self.prod.wrapping_sub(Self::SIZE);
        }
    }

    /// Bytes held.
    pub fn len(&self) -> u32 {
        self.prod.wrapping_sub(self.cons)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies up to `max` bytes to `sink(offset, bytes)` (in at most two
    /// pieces, where the ring wraps), from the oldest byte or, with
    /// `incremental`, from that index if it still lies in the ring. With
    /// `clear`, what was read is dropped. A `sink` error stops the read and
    /// changes nothing.
    pub fn read<E>(
        &mut self,
        incremental: Option<u32>,
        max: u32,
        clear: bool,
        mut sink: impl FnMut(u32, &[u8]) -> Result<(), E>,
    ) -> Result<ReadOut, E> {
        let (mut c, p) = (self.cons, self.prod);
        if let Some(i) = incremental {
            // `i` in (c, p], read as free-running indices.
            if i.wrapping_sub(c) <= p.wrapping_sub(c) && i != c {
                c = i;
            }
        }
        let mut sofar = 0u32;
        while c != p && sofar < max {
            let idx = c % Self::SIZE;
            let len = p.wrapping_sub(c).min(Self::SIZE - idx).min(max - sofar);
            sink(sofar, &self.buf[idx as usize..(idx + len) as usize])?;
            sofar += len;
            c = c.wrapping_add(len);
        }
        if clear {
            self.cons = c;
        }
        Ok(ReadOut { count: sofar, index: c })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all<const N: usize>(r: &mut ConsoleRing<N>, inc: Option<u32>, max: u32, clear: bool) -> (Vec<u8>, ReadOut) {
        let mut out = Vec::new();
        let o = r
            .read::<()>(inc, max, clear, |off, b| {
                assert_eq!(off as usize, out.len());
                out.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
        (out, o)
    }

    #[test]
    fn reads_what_was_written() {
        let mut r = ConsoleRing::<16>::new();
        r.push(b"hello ");
        r.push(b"world");
        let (out, o) = read_all(&mut r, None, 100, false);
        assert_eq!(out, b"hello world");
        assert_eq!(o, ReadOut { count: 11, index: 11 });
        let (out, _) = read_all(&mut r, None, 5, false);
        assert_eq!(out, b"hello", "max bounds the read");
        assert_eq!(r.len(), 11, "no clear: all kept");
    }

    #[test]
    fn the_oldest_bytes_go_when_full() {
        let mut r = ConsoleRing::<8>::new();
        r.push(b"0123456789ab");
        assert_eq!(r.len(), 8);
        let (out, o) = read_all(&mut r, None, 100, false);
        assert_eq!(out, b"456789ab", "in order across the wrap");
        assert_eq!(o.index, 12);
    }

    #[test]
    fn incremental_reads_and_clear() {
        let mut r = ConsoleRing::<8>::new();
        r.push(b"abc");
        let (_, o) = read_all(&mut r, None, 100, false);
        r.push(b"de");
        let (out, o2) = read_all(&mut r, Some(o.index), 100, false);
        assert_eq!(out, b"de", "only what came since");
        assert_eq!(o2.index, 5);
        // An index that fell out of the ring reads from the oldest byte.
        r.push(b"fghijk");
        let (out, _) = read_all(&mut r, Some(1), 100, false);
        assert_eq!(out, b"defghijk");
        let (out, _) = read_all(&mut r, None, 3, true);
        assert_eq!(out, b"def");
        assert_eq!(read_all(&mut r, None, 100, false).0, b"ghijk", "clear dropped what was read");
    }

    /// Pushing in pieces of any size keeps the same last bytes as pushing
    /// them one at a time.
    #[test]
    fn pushes_of_any_size_agree_with_single_bytes() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 7 % 251) as u8).collect();
        for piece in [1, 3, 7, 8, 9, 20, 200] {
            let (mut a, mut b) = (ConsoleRing::<16>::new(), ConsoleRing::<16>::new());
            for chunk in data.chunks(piece) {
                a.push(chunk);
            }
            for &byte in &data {
                b.push(&[byte]);
            }
            assert_eq!(read_all(&mut a, None, 100, false), read_all(&mut b, None, 100, false), "pieces of {piece}");
        }
    }

    #[test]
    fn a_failing_sink_changes_nothing() {
        let mut r = ConsoleRing::<8>::new();
        r.push(b"abcdef");
        assert_eq!(r.read(None, 100, true, |_, _| Err("fault")), Err("fault"));
        assert_eq!(r.len(), 6);
    }

    #[test]
    fn indices_wrap_around_u32() {
        let mut r = ConsoleRing::<8> { buf: [0; 8], prod: u32::MAX - 2, cons: u32::MAX - 2 };
        r.push(b"abcdef");
        assert_eq!(r.len(), 6);
        let (out, o) = read_all(&mut r, None, 100, false);
        assert_eq!(out, b"abcdef");
        assert_eq!(o.index, 3);
        let (out, _) = read_all(&mut r, Some(u32::MAX), 100, false);
        assert_eq!(out, b"cdef");
    }
}
