//! A minimal xenbus client: one request at a time to xenstore over the
//! domain's store ring (`start_info.store_mfn`, `store_evtchn`), as
//! `docs/misc/xenstore-ring.txt` and `io/xs_wire.h` describe.
//!
//! A request is an [`XsdSockmsg`] header and a payload ([`encode`]); it is
//! copied into the ring's `req` half, the port is notified, and the reply
//! is awaited in `rsp` (sleeping a millisecond at a time, at most
//! [`MAX_WAITS`] times). An `XS_ERROR` reply becomes its errno
//! ([`error_of`]). No heap: callers pass the buffers.
//!
//! The message encoding is portable and tested on the host; the ring is
//! the image's ([`Xenbus`]).

use abi::errno::Errno;
use abi::xenstore::{XsdSockmsg, XSD_ERRORS, XS_ERROR};

/// Bytes of a message header.
pub const HEADER_LEN: usize = core::mem::size_of::<XsdSockmsg>();

/// Writes a message of `type_` with `req_id` whose payload is `parts`
/// concatenated into `out`; its length, or `None` if `out` is too small.
pub fn encode(type_: u32, req_id: u32, parts: &[&[u8]], out: &mut [u8]) -> Option<usize> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let total = HEADER_LEN.checked_add(len)?;
    let dest = out.get_mut(..total)?;
    let header = [type_, req_id, 0, u32::try_from(len).ok()?];
    for (chunk, word) in dest[..HEADER_LEN].chunks_exact_mut(4).zip(header) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    let mut at = HEADER_LEN;
    for part in parts {
        dest[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    Some(total)
}

/// Reads a header from the first [`HEADER_LEN`] bytes of `bytes`.
pub fn decode_header(bytes: &[u8]) -> Option<XsdSockmsg> {
    let word = |i: usize| -> Option<u32> { Some(u32::from_le_bytes(bytes.get(i * 4..i * 4 + 4)?.try_into().ok()?)) };
    Some(XsdSockmsg { type_: word(0)?, req_id: word(1)?, tx_id: word(2)?, len: word(3)? })
}

/// The errno an `XS_ERROR` payload names (`"EACCES\0"`); `EINVAL` for a
/// name not in [`XSD_ERRORS`].
pub fn error_of(payload: &[u8]) -> Errno {
    let name = payload.split(|&b| b == 0).next().unwrap_or(b"");
    XSD_ERRORS.iter().copied().find(|e| e.name().as_bytes() == name).unwrap_or(Errno::EINVAL)
}

/// The reply to a request: its payload's length, or the error it names.
pub fn reply_result(header: &XsdSockmsg, payload: &[u8]) -> Result<usize, Errno> {
    if header.type_ == XS_ERROR {
        return Err(error_of(payload));
    }
    Ok(payload.len())
}

#[cfg(target_os = "none")]
pub use image::{wait, Xenbus};

/// Sleeps of a millisecond a request waits for its reply, at most.
pub const MAX_WAITS: u32 = 5_000;

#[cfg(target_os = "none")]
mod image {
    use core::mem::offset_of;
    use core::ptr;
    use core::sync::atomic::{fence, AtomicU32, Ordering};

    use abi::errno::Errno;
    use abi::start_info::SIF_INITDOMAIN;
    use abi::xenstore::{
        XenstoreDomainInterface, XENSTORE_PAYLOAD_MAX, XENSTORE_RING_SIZE, XS_DIRECTORY, XS_READ, XS_WRITE,
    };

    use super::{decode_header, encode, reply_result, HEADER_LEN, MAX_WAITS};
    use crate::hypercall::hv;
    use crate::layout::va_of_pfn;
    use crate::mm;
    use crate::runtime::start_info;
    use crate::time::{self, NS_PER_MS};

    const MASK: u32 = XENSTORE_RING_SIZE as u32 - 1;
    /// The largest message: a header and the largest payload.
    const MAX_MSG: usize = HEADER_LEN + XENSTORE_PAYLOAD_MAX as usize;

    /// This domain's connection to xenstore.
    #[derive(Debug)]
    pub struct Xenbus {
        /// The ring page in the initial mapping.
        page: *mut u8,
        /// `start_info.store_evtchn`.
        port: u32,
        /// The last request id used.
        req_id: u32,
    }

    impl Xenbus {
        /// The store ring the builder gave this domain: its page found in
        /// the initial mapping (below the bootstrap page tables, where the
        /// builder puts it), as the console page is. `ENODEV` if there is
        /// none (dom0, or a zero `store_mfn`).
        pub fn open() -> Result<Xenbus, Errno> {
            let si = start_info();
            let mfn = si.store_mfn;
            if si.flags & SIF_INITDOMAIN != 0 || mfn == 0 {
                return Err(Errno::ENODEV);
            }
            let pfn = mm::m2p(mfn);
            let va = va_of_pfn(pfn);
            if pfn >= si.nr_pages || va >= si.pt_base {
                return Err(Errno::ENODEV);
            }
            Ok(Xenbus { page: va as *mut u8, port: si.store_evtchn, req_id: 0 })
        }

        fn index(&self, field: usize) -> &AtomicU32 {
            // SAFETY: `field` is the offset of a `u32` field of the page,
            // which is mapped read-write for the domain's life and 4-byte
            // aligned; the backend writes it concurrently, hence atomics.
            unsafe { &*(self.page.wrapping_add(field) as *const AtomicU32) }
        }

        /// Writes `bytes` into the request ring, waiting for space.
        fn send(&self, bytes: &[u8]) -> Result<(), Errno> {
            let base = offset_of!(XenstoreDomainInterface, req);
            let mut rest = bytes;
            let mut waits = 0;
            while !rest.is_empty() {
                let cons = self.index(offset_of!(XenstoreDomainInterface, req_cons)).load(Ordering::Acquire);
                let prod = self.index(offset_of!(XenstoreDomainInterface, req_prod)).load(Ordering::Relaxed);
                let used = prod.wrapping_sub(cons);
                if used > XENSTORE_RING_SIZE as u32 {
                    return Err(Errno::EIO);
                }
                let free = (XENSTORE_RING_SIZE as u32 - used) as usize;
                let n = free.min(rest.len());
                if n == 0 {
                    wait(&mut waits)?;
                    continue;
                }
                for (i, &b) in (0u32..).zip(&rest[..n]) {
                    let at = base + (prod.wrapping_add(i) & MASK) as usize;
                    // SAFETY: `at` is inside the `req` ring of the mapped page.
                    unsafe { ptr::write_volatile(self.page.wrapping_add(at), b) };
                }
                fence(Ordering::SeqCst);
                self.index(offset_of!(XenstoreDomainInterface, req_prod))
                    .store(prod.wrapping_add(n as u32), Ordering::Release);
                let _ = hv().evtchn_send(self.port);
                rest = &rest[n..];
            }
            Ok(())
        }

        /// Takes `out.len()` bytes from the reply ring, waiting for them.
        fn take(&self, out: &mut [u8]) -> Result<(), Errno> {
            let base = offset_of!(XenstoreDomainInterface, rsp);
            let mut got = 0;
            let mut waits = 0;
            while got < out.len() {
                let cons = self.index(offset_of!(XenstoreDomainInterface, rsp_cons)).load(Ordering::Relaxed);
                let prod = self.index(offset_of!(XenstoreDomainInterface, rsp_prod)).load(Ordering::Acquire);
                let avail = prod.wrapping_sub(cons);
                if avail > XENSTORE_RING_SIZE as u32 {
                    return Err(Errno::EIO);
                }
                let n = (avail as usize).min(out.len() - got);
                if n == 0 {
                    wait(&mut waits)?;
                    continue;
                }
                for (i, slot) in (0u32..).zip(&mut out[got..got + n]) {
                    let at = base + (cons.wrapping_add(i) & MASK) as usize;
                    // SAFETY: `at` is inside the `rsp` ring of the mapped page.
                    *slot = unsafe { ptr::read_volatile(self.page.wrapping_add(at)) };
                }
                fence(Ordering::SeqCst);
                self.index(offset_of!(XenstoreDomainInterface, rsp_cons))
                    .store(cons.wrapping_add(n as u32), Ordering::Release);
                let _ = hv().evtchn_send(self.port);
                got += n;
            }
            Ok(())
        }

        /// Sends request `type_` with payload `parts` and waits for its
        /// reply, whose payload goes into `reply` (`E2BIG` if it does not
        /// fit: it is read and dropped). Watch events are skipped.
        pub fn request(&mut self, type_: u32, parts: &[&[u8]], reply: &mut [u8]) -> Result<usize, Errno> {
            let mut msg = [0u8; MAX_MSG];
            self.req_id = self.req_id.wrapping_add(1);
            let len = encode(type_, self.req_id, parts, &mut msg).ok_or(Errno::E2BIG)?;
            self.send(&msg[..len])?;
            loop {
                let mut head = [0u8; HEADER_LEN];
                self.take(&mut head)?;
                let header = decode_header(&head).ok_or(Errno::EIO)?;
                let body = msg.get_mut(..header.len as usize).ok_or(Errno::EIO)?;
                self.take(body)?;
                if header.req_id != self.req_id || header.type_ == abi::xenstore::XS_WATCH_EVENT {
                    continue;
                }
                let n = reply_result(&header, body)?;
                let dest = reply.get_mut(..n).ok_or(Errno::E2BIG)?;
                dest.copy_from_slice(&msg[..n]);
                return Ok(n);
            }
        }

        /// `XS_READ` of `path` into `buf`: the value's length.
        pub fn read(&mut self, path: &str, buf: &mut [u8]) -> Result<usize, Errno> {
            self.request(XS_READ, &[path.as_bytes(), b"\0"], buf)
        }

        /// `XS_WRITE` of `value` to `path`.
        pub fn write(&mut self, path: &str, value: &[u8]) -> Result<(), Errno> {
            let mut ok = [0u8; 8];
            self.request(XS_WRITE, &[path.as_bytes(), b"\0", value], &mut ok).map(|_| ())
        }

        /// `XS_DIRECTORY` of `path` into `buf`: the children's names, each
        /// followed by a nul; their total length.
        pub fn directory(&mut self, path: &str, buf: &mut [u8]) -> Result<usize, Errno> {
            self.request(XS_DIRECTORY, &[path.as_bytes(), b"\0"], buf)
        }
    }

    /// Waits a millisecond (or yields, without a timer); `ETIMEDOUT` after
    /// [`MAX_WAITS`] waits, counted in `waits`.
    pub fn wait(waits: &mut u32) -> Result<(), Errno> {
        *waits += 1;
        if *waits > MAX_WAITS {
            return Err(Errno::ETIMEDOUT);
        }
        if time::sleep_ns(NS_PER_MS).is_err() {
            let _ = hv().sched_yield();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::xenstore::{XS_READ, XS_WRITE};

    #[test]
    fn requests_are_a_header_and_the_parts() {
        let mut out = [0u8; 64];
        let n = encode(XS_WRITE, 7, &[b"data/hello", b"\0", b"world"], &mut out).unwrap();
        assert_eq!(n, HEADER_LEN + 16);
        let h = decode_header(&out).unwrap();
        assert_eq!((h.type_, h.req_id, h.tx_id, h.len), (XS_WRITE, 7, 0, 16));
        assert_eq!(&out[HEADER_LEN..n], b"data/hello\0world");
        assert_eq!(encode(XS_READ, 1, &[&[0u8; 49]], &mut out), None, "too small");
    }

    #[test]
    fn error_replies_name_their_errno() {
        assert_eq!(error_of(b"EACCES\0"), Errno::EACCES);
        assert_eq!(error_of(b"ENOENT\0"), Errno::ENOENT);
        assert_eq!(error_of(b"EWHAT\0"), Errno::EINVAL);
        let h = XsdSockmsg { type_: XS_ERROR, req_id: 1, tx_id: 0, len: 7 };
        assert_eq!(reply_result(&h, b"EACCES\0"), Err(Errno::EACCES));
        let h = XsdSockmsg { type_: XS_READ, ..h };
        assert_eq!(reply_result(&h, b"xs"), Ok(2));
    }
}
