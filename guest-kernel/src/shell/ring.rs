//! The hypervisor's console ring, read with `sysctl readconsole`.
//!
//! A read copies bytes from the oldest still held, or, incrementally, from
//! an index the reader kept, if the ring still holds it (else from the
//! oldest again); the answer says how many bytes came and the index after
//! them. [`read`] turns that into the index the bytes start at, so a reader
//! can tell when it was overtaken.

use alloc::vec;
use alloc::vec::Vec;

use abi::sysctl::{XenSysctl, XenSysctlReadconsole};
use abi::Errno;
use guest_kernel::hypercall::hv;

/// Bytes asked for per `readconsole`.
pub const CHUNK: usize = 4096;

/// Most bytes one [`read_all`] takes: far more than a ring holds (Xen's
/// default is 16 KiB, as is ours), so it only stops a reader that output
/// keeps ahead of.
pub const MAX_READ: usize = 1 << 20;

/// Reads the ring into `buf` from index `from` (`None`: the oldest byte).
/// Returns the index the bytes start at and how many there are.
pub fn read(from: Option<u32>, buf: &mut [u8]) -> Result<(u32, usize), Errno> {
    let count = u32::try_from(buf.len()).map_err(|_| Errno::EINVAL)?;
    let rc = XenSysctlReadconsole {
        incremental: u8::from(from.is_some()),
        index: from.unwrap_or(0),
        buffer: buf.as_mut_ptr() as u64,
        count,
        ..XenSysctlReadconsole::default()
    };
    let mut op = XenSysctl::readconsole(&rc);
    // SAFETY: `buffer` is `buf`, writable for `count` bytes, and nothing
    // else uses it during the call.
    unsafe { hv().sysctl(&mut op) }?;
    let out = op.u_readconsole();
    let n = usize::try_from(out.count).ok().filter(|&n| n <= buf.len()).ok_or(Errno::EIO)?;
    Ok((out.index.wrapping_sub(out.count), n))
}

/// Reads from `from` (`None`: the oldest byte) to the newest, handing each
/// piece to `sink(start index, bytes)`. Returns the index to continue from.
pub fn read_all(from: Option<u32>, mut sink: impl FnMut(u32, &[u8])) -> Result<u32, Errno> {
    let mut buf = vec![0u8; CHUNK];
    let mut from = from;
    let mut total = 0;
    loop {
        let (start, n) = read(from, &mut buf)?;
        let next = start.wrapping_add(n as u32);
        if n == 0 {
            // Nothing new: `next` is where the read started.
            return Ok(from.unwrap_or(next));
        }
        sink(start, &buf[..n]);
        from = Some(next);
        total += n;
        if total >= MAX_READ {
            return Ok(next);
        }
    }
}

/// The whole ring, and the index after its newest byte.
pub fn snapshot() -> Result<(Vec<u8>, u32), Errno> {
    let mut text = Vec::new();
    let end = read_all(None, |_, bytes| text.extend_from_slice(bytes))?;
    Ok((text, end))
}
