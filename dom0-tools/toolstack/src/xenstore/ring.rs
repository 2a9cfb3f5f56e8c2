//! Moving bytes between a domain's xenstore ring page and its connection
//! (`docs/misc/xenstore-ring.txt`).
//!
//! The page ([`XenstoreDomainInterface`]) holds two 1 KiB byte rings with
//! free-running `u32` indices: the guest produces requests (`req_prod`) and
//! consumes replies (`rsp_cons`), the daemon the other two. Every index is
//! in guest-writable memory, so each is read once per pass and checked:
//! a ring claiming more than [`XENSTORE_RING_SIZE`] bytes stops the
//! connection with `XENSTORE_ERROR_RINGIDX` in the page's `error` field.
//! The page is reached through [`RingPage`], so the pump runs on the host
//! against a plain [`XenstoreDomainInterface`].

use abi::xenstore::*;

use super::server::{ConnError, ConnId, Xenstored};

/// The index mask of a ring.
const MASK: u32 = XENSTORE_RING_SIZE as u32 - 1;

/// Passes [`pump`] makes at most, so a guest refilling its ring as fast as
/// it is emptied cannot keep the daemon in one call.
pub const MAX_PASSES: usize = 4;

/// A `u32` field of the ring page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingField {
    /// `req_cons`: requests the daemon consumed.
    ReqCons,
    /// `req_prod`: requests the guest produced.
    ReqProd,
    /// `rsp_cons`: replies the guest consumed.
    RspCons,
    /// `rsp_prod`: replies the daemon produced.
    RspProd,
    /// `server_features`: `XENSTORE_SERVER_FEATURE_*`.
    ServerFeatures,
    /// `connection`: `XENSTORE_CONNECTED` or `XENSTORE_RECONNECT`.
    Connection,
    /// `error`: `XENSTORE_ERROR_*`.
    Error,
}

/// Access to one xenstore ring page. A real mapping reads and writes the
/// shared page with volatile accesses and makes [`RingPage::barrier`] a
/// full memory barrier; a plain [`XenstoreDomainInterface`] is one too.
pub trait RingPage {
    /// Reads a `u32` field.
    fn read(&self, field: RingField) -> u32;
    /// Writes a `u32` field.
    fn write(&mut self, field: RingField, value: u32);
    /// Reads byte `offset` (below [`XENSTORE_RING_SIZE`]) of the request ring.
    fn req_byte(&self, offset: usize) -> u8;
    /// Writes byte `offset` (below [`XENSTORE_RING_SIZE`]) of the reply ring.
    fn set_rsp_byte(&mut self, offset: usize, value: u8);
    /// Orders the accesses before it against those after it.
    fn barrier(&self) {}
}

impl RingPage for XenstoreDomainInterface {
    fn read(&self, field: RingField) -> u32 {
        match field {
            RingField::ReqCons => self.req_cons,
            RingField::ReqProd => self.req_prod,
            RingField::RspCons => self.rsp_cons,
            RingField::RspProd => self.rsp_prod,
            RingField::ServerFeatures => self.server_features,
            RingField::Connection => self.connection,
            RingField::Error => self.error,
        }
    }

    fn write(&mut self, field: RingField, value: u32) {
        let slot = match field {
            RingField::ReqCons => &mut self.req_cons,
            RingField::ReqProd => &mut self.req_prod,
            RingField::RspCons => &mut self.rsp_cons,
            RingField::RspProd => &mut self.rsp_prod,
            RingField::ServerFeatures => &mut self.server_features,
            RingField::Connection => &mut self.connection,
            RingField::Error => &mut self.error,
        };
        *slot = value;
    }

    fn req_byte(&self, offset: usize) -> u8 {
        self.req.get(offset).copied().unwrap_or(0)
    }

    fn set_rsp_byte(&mut self, offset: usize, value: u8) {
        if let Some(slot) = self.rsp.get_mut(offset) {
            *slot = value;
        }
    }
}

/// What one [`pump`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pumped {
    /// Request bytes consumed.
    pub consumed: usize,
    /// Reply bytes produced.
    pub produced: usize,
    /// Whether the guest's reconnection request was carried out.
    pub reconnected: bool,
}

impl Pumped {
    /// Whether the guest should be sent an event.
    pub fn notify(&self) -> bool {
        self.consumed > 0 || self.produced > 0 || self.reconnected
    }
}

/// Readies a new ring page: advertises reconnection and the error field.
/// Features are only ever added.
pub fn init_page<P: RingPage>(page: &mut P) {
    let features = page.read(RingField::ServerFeatures);
    page.write(
        RingField::ServerFeatures,
        features | XENSTORE_SERVER_FEATURE_RECONNECTION | XENSTORE_SERVER_FEATURE_ERROR,
    );
}

/// Moves requests from `page` into connection `id` of `xs` and replies
/// back, until neither moves or [`MAX_PASSES`] passes are done. Carries out
/// a reconnection the guest asked for. A bad index or message stops the
/// connection, sets the page's `error` and is returned; a stopped
/// connection moves nothing until it reconnects.
pub fn pump<P: RingPage>(xs: &mut Xenstored, id: ConnId, page: &mut P) -> Result<Pumped, ConnError> {
    let mut done = Pumped::default();
    if page.read(RingField::Connection) == XENSTORE_RECONNECT {
        xs.reset(id)?;
        for field in [RingField::ReqCons, RingField::ReqProd, RingField::RspCons, RingField::RspProd] {
            page.write(field, 0);
        }
        page.write(RingField::Error, XENSTORE_ERROR_NONE);
        page.barrier();
        page.write(RingField::Connection, XENSTORE_CONNECTED);
        done.reconnected = true;
        return Ok(done);
    }
    if let Some(e) = xs.connection(id).ok_or(ConnError::NoSuchConnection)?.error() {
        return Err(e);
    }
    let mut buf = [0u8; XENSTORE_RING_SIZE];
    for _ in 0..MAX_PASSES {
        let consumed = requests(xs, id, page, &mut buf).map_err(|e| stop(xs, id, page, e))?;
        let produced = replies(xs, id, page, &mut buf).map_err(|e| stop(xs, id, page, e))?;
        done.consumed += consumed;
        done.produced += produced;
        if consumed == 0 && produced == 0 {
            break;
        }
    }
    Ok(done)
}

/// Stops connection `id` for `e` and says why in the page.
fn stop<P: RingPage>(xs: &mut Xenstored, id: ConnId, page: &mut P, e: ConnError) -> ConnError {
    xs.fail(id, e);
    page.write(RingField::Error, e.ring_error());
    e
}

/// Feeds the requests waiting in the ring; returns the bytes consumed.
fn requests<P: RingPage>(xs: &mut Xenstored, id: ConnId, page: &mut P, buf: &mut [u8]) -> Result<usize, ConnError> {
    let cons = page.read(RingField::ReqCons);
    let prod = page.read(RingField::ReqProd);
    page.barrier();
    let avail = prod.wrapping_sub(cons);
    if avail > XENSTORE_RING_SIZE as u32 {
        return Err(ConnError::RingIndex);
    }
    let bytes = buf.get_mut(..avail as usize).ok_or(ConnError::RingIndex)?;
    for (i, slot) in (0u32..).zip(bytes.iter_mut()) {
        *slot = page.req_byte((cons.wrapping_add(i) & MASK) as usize);
    }
    let taken = xs.feed(id, bytes)?;
    if taken > 0 {
        page.barrier();
        page.write(RingField::ReqCons, cons.wrapping_add(taken as u32));
    }
    Ok(taken)
}

/// Writes waiting output into the ring's free space; returns the bytes
/// produced.
fn replies<P: RingPage>(xs: &mut Xenstored, id: ConnId, page: &mut P, buf: &mut [u8]) -> Result<usize, ConnError> {
    let cons = page.read(RingField::RspCons);
    let prod = page.read(RingField::RspProd);
    page.barrier();
    let used = prod.wrapping_sub(cons);
    if used > XENSTORE_RING_SIZE as u32 {
        return Err(ConnError::RingIndex);
    }
    let free = XENSTORE_RING_SIZE - used as usize;
    let space = buf.get_mut(..free).ok_or(ConnError::RingIndex)?;
    let n = xs.drain_output(id, space);
    for (i, &byte) in (0u32..).zip(space.iter().take(n)) {
        page.set_rsp_byte((prod.wrapping_add(i) & MASK) as usize, byte);
    }
    if n > 0 {
        page.barrier();
        page.write(RingField::RspProd, prod.wrapping_add(n as u32));
    }
    Ok(n)
}
