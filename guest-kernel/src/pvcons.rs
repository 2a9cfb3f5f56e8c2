//! Xen's PV console ring (`struct xencons_interface`, [`abi::console`]):
//! both ends of its two byte rings, over a page another party writes too.
//!
//! The guest (frontend) produces `out` and consumes `in`; the backend (the
//! console daemon, here dom0's shell) does the opposite. Each side reads
//! the other's index with acquire ordering, copies the bytes, and
//! publishes its own index with release ordering (Xen's `mb`/`wmb` pairs),
//! then notifies the console event channel. Indices are free-running and
//! masked by the ring size; a ring whose indices claim more than its size
//! is corrupt and is treated as full (for a producer) or empty (for a
//! consumer), so a hostile peer can neither make a side loop nor read or
//! write outside the page.

use abi::console::{mask_xencons_idx, XenconsInterface, XENCONS_IN_SIZE, XENCONS_OUT_SIZE};
use core::mem::offset_of;
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

/// One end's view of a console ring page.
#[derive(Clone, Copy, Debug)]
pub struct Ring {
    page: *mut u8,
}

/// One of the page's two byte rings.
#[derive(Clone, Copy)]
struct Half {
    data: usize,
    size: usize,
    cons: usize,
    prod: usize,
}

const OUT: Half = Half {
    data: offset_of!(XenconsInterface, out),
    size: XENCONS_OUT_SIZE,
    cons: offset_of!(XenconsInterface, out_cons),
    prod: offset_of!(XenconsInterface, out_prod),
};

const IN: Half = Half {
    data: offset_of!(XenconsInterface, in_),
    size: XENCONS_IN_SIZE,
    cons: offset_of!(XenconsInterface, in_cons),
    prod: offset_of!(XenconsInterface, in_prod),
};

impl Ring {
    /// The ring at `page`.
    ///
    /// # Safety
    ///
    /// `page` points to a `XenconsInterface` (4-aligned, 3088 bytes) that
    /// stays mapped read-write while the returned value is used; other
    /// parties change it only as the protocol says (each index by one
    /// side), and no Rust reference points into it.
    pub const unsafe fn new(page: *mut u8) -> Ring {
        Ring { page }
    }

    fn index(&self, offset: usize) -> &AtomicU32 {
        let at = self.page.wrapping_add(offset).cast::<u32>();
        // SAFETY: `offset` is one of the page's aligned u32 index fields
        // (`new`'s promise); atomics have the layout of u32, and every
        // access to the field by this side goes through atomics.
        unsafe { AtomicU32::from_ptr(at) }
    }

    fn byte(&self, half: Half, idx: u32) -> &AtomicU8 {
        let at = self.page.wrapping_add(half.data + mask_xencons_idx(idx, half.size));
        // SAFETY: the masked index lies inside the half's data array in
        // the page (`new`'s promise); byte atomics make the other side's
        // concurrent accesses harmless.
        unsafe { AtomicU8::from_ptr(at) }
    }

    /// Copies as much of `bytes` as fits into `half`; how many went.
    fn produce(&self, half: Half, bytes: &[u8]) -> usize {
        let cons = self.index(half.cons).load(Ordering::Acquire);
        let prod = self.index(half.prod).load(Ordering::Relaxed);
        let used = prod.wrapping_sub(cons) as usize;
        let room = half.size.saturating_sub(used);
        let n = room.min(bytes.len());
        for (k, &b) in bytes[..n].iter().enumerate() {
            self.byte(half, prod.wrapping_add(k as u32)).store(b, Ordering::Relaxed);
        }
        if n > 0 {
            self.index(half.prod).store(prod.wrapping_add(n as u32), Ordering::Release);
        }
        n
    }

    /// Moves what `half` holds into `buf`; how many bytes came.
    fn consume(&self, half: Half, buf: &mut [u8]) -> usize {
        let prod = self.index(half.prod).load(Ordering::Acquire);
        let cons = self.index(half.cons).load(Ordering::Relaxed);
        let avail = prod.wrapping_sub(cons) as usize;
        if avail > half.size {
            return 0;
        }
        let n = avail.min(buf.len());
        for (k, slot) in buf[..n].iter_mut().enumerate() {
            *slot = self.byte(half, cons.wrapping_add(k as u32)).load(Ordering::Relaxed);
        }
        if n > 0 {
            self.index(half.cons).store(cons.wrapping_add(n as u32), Ordering::Release);
        }
        n
    }

    /// Frontend: writes what fits of `bytes` to `out`; how many went.
    pub fn write_out(&self, bytes: &[u8]) -> usize {
        self.produce(OUT, bytes)
    }

    /// Backend: takes what `out` holds into `buf`; how many came.
    pub fn read_out(&self, buf: &mut [u8]) -> usize {
        self.consume(OUT, buf)
    }

    /// Backend: writes what fits of `bytes` to `in`; how many went.
    pub fn write_in(&self, bytes: &[u8]) -> usize {
        self.produce(IN, bytes)
    }

    /// Frontend: takes what `in` holds into `buf`; how many came.
    pub fn read_in(&self, buf: &mut [u8]) -> usize {
        self.consume(IN, buf)
    }

    /// Bytes in `in` the frontend has not read yet (0 if its indices are
    /// corrupt).
    pub fn in_unread(&self) -> usize {
        let prod = self.index(IN.prod).load(Ordering::Acquire);
        let cons = self.index(IN.cons).load(Ordering::Acquire);
        Some(prod.wrapping_sub(cons) as usize).filter(|&n| n <= IN.size).unwrap_or(0)
    }

    /// `out_cons`: how far the backend has read (a frontend waiting for
    /// room watches it move).
    pub fn out_cons(&self) -> u32 {
        self.index(OUT.cons).load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Box<XenconsInterface> {
        Box::new(XenconsInterface::zeroed())
    }

    fn ring(p: &mut XenconsInterface) -> Ring {
        // SAFETY: `p` is a whole interface, alive and otherwise unused
        // for the test.
        unsafe { Ring::new((p as *mut XenconsInterface).cast()) }
    }

    #[test]
    fn output_goes_from_frontend_to_backend() {
        let mut p = page();
        let r = ring(&mut p);
        assert_eq!(r.write_out(b"hello\n"), 6);
        let mut buf = [0u8; 16];
        assert_eq!(r.read_out(&mut buf), 6);
        assert_eq!(&buf[..6], b"hello\n");
        assert_eq!(r.read_out(&mut buf), 0);
        assert_eq!((p.out_prod, p.out_cons), (6, 6));
    }

    #[test]
    fn input_goes_from_backend_to_frontend() {
        let mut p = page();
        let r = ring(&mut p);
        assert_eq!(r.write_in(b"ls\r"), 3);
        let mut buf = [0u8; 2];
        assert_eq!(r.read_in(&mut buf), 2);
        assert_eq!(&buf, b"ls");
        assert_eq!(r.in_unread(), 1);
        assert_eq!(r.read_in(&mut buf), 1);
        assert_eq!(buf[0], b'\r');
        assert_eq!(r.in_unread(), 0);
    }

    #[test]
    fn a_full_ring_takes_no_more_and_wraps_after_reading() {
        let mut p = page();
        let r = ring(&mut p);
        let big = vec![7u8; XENCONS_OUT_SIZE + 10];
        assert_eq!(r.write_out(&big), XENCONS_OUT_SIZE);
        assert_eq!(r.write_out(b"x"), 0);
        let mut buf = vec![0u8; 100];
        assert_eq!(r.read_out(&mut buf), 100);
        assert_eq!(r.write_out(b"abc"), 3);
        let mut all = vec![0u8; 4096];
        assert_eq!(r.read_out(&mut all), XENCONS_OUT_SIZE - 100 + 3);
        assert_eq!(&all[XENCONS_OUT_SIZE - 100..XENCONS_OUT_SIZE - 97], b"abc");
    }

    #[test]
    fn indices_run_free_across_u32_wrap() {
        let mut p = page();
        p.out_prod = u32::MAX - 1;
        p.out_cons = u32::MAX - 1;
        let r = ring(&mut p);
        assert_eq!(r.write_out(b"wxyz"), 4);
        let mut buf = [0u8; 8];
        assert_eq!(r.read_out(&mut buf), 4);
        assert_eq!(&buf[..4], b"wxyz");
        assert_eq!(p.out_cons, 2);
    }

    #[test]
    fn corrupt_indices_read_as_empty_and_full() {
        let mut p = page();
        p.in_prod = 5000;
        p.out_prod = 9999;
        let r = ring(&mut p);
        let mut buf = [0u8; 8];
        assert_eq!(r.read_in(&mut buf), 0);
        assert_eq!(r.write_out(b"x"), 0);
    }
}
