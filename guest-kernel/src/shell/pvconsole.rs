//! Dom0's end of a domain's PV console (the backend `xenconsoled` is on
//! Xen): the domain's output kept, its input delivered.
//!
//! [`PvConsole::connect`] binds the domain's console port
//! (`EVTCHNOP_bind_interdomain`; the builder made it unbound with dom0 as
//! its remote). Each [`PvConsole::poll`] maps the console frame through
//! [`Dom0Ops::with_foreign_frame`] (mapped only for the poll, so no
//! mapping outlives the domain), takes what `out` holds into the last
//! [`KEEP`] bytes of output, puts waiting input into `in`, and notifies the
//! domain if either moved. Output is counted from the domain's start, so
//! a reader ([`PvConsole::since`]) can follow it with a cursor.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use abi::Errno;
use guest_kernel::event::Port;
use guest_kernel::hypercall::hv;
use guest_kernel::pvcons::Ring;
use toolstack::builder::DomId;

use crate::build::ops::Dom0Ops;

/// Output kept per domain, in bytes.
pub const KEEP: usize = 16 * 1024;

/// Bytes taken from `out` per poll, at most (the ring holds 2 KiB).
const CHUNK: usize = 2048;

/// A domain's PV console, dom0's end.
#[derive(Debug)]
pub struct PvConsole {
    domid: DomId,
    mfn: u64,
    /// Dom0's port, bound to the domain's console port.
    port: Port,
    /// The last [`KEEP`] bytes of output.
    recent: VecDeque<u8>,
    /// Output bytes taken since the domain started.
    total: u64,
    /// Typed bytes not yet in the domain's `in`.
    input: VecDeque<u8>,
    /// Whether `in` held bytes the domain had not read at the last poll.
    unread: bool,
}

impl PvConsole {
    /// Binds to `domid`'s console port `remote_port`; its ring is in
    /// machine frame `mfn`.
    pub fn connect(domid: DomId, mfn: u64, remote_port: u32) -> Result<PvConsole, Errno> {
        let port = hv().evtchn_bind_interdomain(domid, remote_port)?;
        Ok(PvConsole { domid, mfn, port, recent: VecDeque::new(), total: 0, input: VecDeque::new(), unread: false })
    }

    /// Queues `bytes` as input for the domain (delivered by [`Self::poll`]).
    pub fn send(&mut self, bytes: &[u8]) {
        self.input.extend(bytes);
    }

    /// Takes the domain's new output and delivers queued input.
    pub fn poll(&mut self, ops: &mut Dom0Ops) -> Result<(), Errno> {
        let mut out = [0u8; CHUNK];
        let mut typed = Vec::new();
        typed.extend(self.input.iter().take(CHUNK));
        let (got, sent, unread) = ops.with_foreign_frame(self.domid, self.mfn, |page| {
            // SAFETY: `page` is the domain's console frame, mapped
            // read-write until this closure returns; the ring accessors
            // use atomics only.
            let ring = unsafe { Ring::new(page) };
            let got = ring.read_out(&mut out);
            let sent = ring.write_in(&typed);
            (got, sent, ring.in_unread() > 0)
        })?;
        self.input.drain(..sent);
        self.unread = unread;
        self.keep(&out[..got]);
        if got > 0 || sent > 0 {
            hv().evtchn_send(self.port)?;
        }
        Ok(())
    }

    /// Whether typed input has not all been read by the domain yet (as of
    /// the last poll).
    pub fn input_waiting(&self) -> bool {
        !self.input.is_empty() || self.unread
    }

    fn keep(&mut self, bytes: &[u8]) {
        self.recent.extend(bytes);
        let excess = self.recent.len().saturating_sub(KEEP);
        self.recent.drain(..excess);
        self.total += bytes.len() as u64;
    }

    /// The kept output from cursor `from` on (from the oldest kept, if
    /// `from` is older), and the cursor after it.
    pub fn since(&self, from: u64) -> (Vec<u8>, u64) {
        let oldest = self.total - self.recent.len() as u64;
        let skip = from.clamp(oldest, self.total) - oldest;
        (self.recent.iter().skip(skip as usize).copied().collect(), self.total)
    }
}

impl Drop for PvConsole {
    fn drop(&mut self) {
        let _ = hv().evtchn_close(self.port);
    }
}
