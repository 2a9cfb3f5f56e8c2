//! Dom0's xenstore: one [`Xenstored`] serving the domains the shell
//! builds over their store rings (`xenstored`'s job on Xen).
//!
//! [`Store::new`] writes dom0's own entries (`/local/domain/0/name` is
//! `Domain-0`). [`Store::connect`] writes a new domain's entries
//! ([`create_domain_entries`]), binds dom0's end of its store port
//! (`EVTCHNOP_bind_interdomain`: the builder made it unbound with dom0 as
//! its remote), introduces it, and readies its ring page. Each
//! [`Store::poll`] maps a domain's store frame through
//! [`Dom0Ops::with_foreign_frame`] for the moment, [`pump`]s it and
//! notifies the domain if anything moved; the shell polls every store on
//! each of its polls, so an event on the port needs no handler.
//! [`Store::disconnect`] releases the domain and removes its entries.

use alloc::format;
use alloc::string::String;
use core::mem::offset_of;
use core::ptr;
use core::sync::atomic::{fence, Ordering};

use abi::xenstore::{XenstoreDomainInterface, XENSTORE_RING_SIZE};
use abi::Errno;
use guest_kernel::event::Port;
use guest_kernel::hypercall::hv;
use toolstack::builder::DomId;
use toolstack::command::DOM0_NAME;
use toolstack::xenstore::{
    create_domain_entries, init_page, list, pump, remove_domain_entries, ConnId, RingField, RingPage, Xenstored,
};

use crate::build::ops::Dom0Ops;

/// A domain's store ring, dom0's end.
#[derive(Debug)]
pub struct StoreRing {
    domid: DomId,
    mfn: u64,
    /// Dom0's port, bound to the domain's store port.
    port: Port,
    conn: ConnId,
}

impl Drop for StoreRing {
    fn drop(&mut self) {
        guest_kernel::event::set_handler(self.port, None);
        let _ = hv().evtchn_close(self.port);
    }
}

/// The xenstore the shell keeps.
#[derive(Debug)]
pub struct Store {
    xs: Xenstored,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    /// A store holding dom0's entries.
    pub fn new() -> Store {
        let mut xs = Xenstored::new();
        // Only fails on a full store, and this one is empty.
        let _ = create_domain_entries(&mut xs, 0, DOM0_NAME);
        Store { xs }
    }

    /// Serves `domid`, called `name`, whose ring is machine frame `mfn`
    /// and whose store port is `remote_port`.
    pub fn connect(
        &mut self,
        ops: &mut Dom0Ops,
        domid: DomId,
        name: &str,
        mfn: u64,
        remote_port: u32,
    ) -> Result<StoreRing, String> {
        create_domain_entries(&mut self.xs, domid, name).map_err(|e| format!("xenstore entries of d{domid}: {e}"))?;
        let port = hv().evtchn_bind_interdomain(domid, remote_port).map_err(|e| format!("bind store port: {e}"))?;
        let conn = match self.xs.introduce(domid, mfn, remote_port) {
            Ok(conn) => conn,
            Err(e) => {
                let _ = hv().evtchn_close(port);
                return Err(format!("introduce d{domid}: {e}"));
            }
        };
        // Requests wake the shell from its idle sleep.
        guest_kernel::event::set_handler(port, Some(super::wake));
        let ring = StoreRing { domid, mfn, port, conn };
        let ready = ops.with_foreign_frame(domid, mfn, |page| {
            // SAFETY: `page` is the domain's store frame, mapped read-write
            // until this closure returns.
            init_page(&mut unsafe { Mapped::new(page) });
        });
        if let Err(e) = ready {
            self.disconnect(domid);
            return Err(format!("map store ring of d{domid}: {e}"));
        }
        Ok(ring)
    }

    /// Moves `ring`'s requests and replies; notifies the domain if any
    /// moved. A bad ring stops only that domain's connection.
    pub fn poll(&mut self, ops: &mut Dom0Ops, ring: &StoreRing) -> Result<(), Errno> {
        let xs = &mut self.xs;
        let pumped = ops.with_foreign_frame(ring.domid, ring.mfn, |page| {
            // SAFETY: as in `connect`.
            pump(xs, ring.conn, &mut unsafe { Mapped::new(page) })
        })?;
        if pumped.is_ok_and(|p| p.notify()) {
            hv().evtchn_send(ring.port)?;
        }
        Ok(())
    }

    /// Stops serving `domid` and removes its entries.
    pub fn disconnect(&mut self, domid: DomId) {
        let _ = self.xs.release(domid);
        let _ = remove_domain_entries(&mut self.xs, domid);
    }

    /// The daemon itself, for the toolstack's entries.
    pub fn xenstored(&mut self) -> &mut Xenstored {
        &mut self.xs
    }

    /// `xenstore-ls` of `path` (default `/`).
    pub fn ls(&self, path: Option<&str>) -> Result<String, Errno> {
        list(self.xs.store(), path.unwrap_or("/"), false)
    }

    /// A node's value, read as dom0.
    pub fn read(&mut self, path: &str) -> Result<alloc::vec::Vec<u8>, Errno> {
        self.xs.read(0, path)
    }

    /// Sets a node's value, as dom0.
    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<(), Errno> {
        self.xs.write(0, path, value)
    }
}

/// A store ring page mapped in dom0, accessed with volatile reads and
/// writes (the domain changes it concurrently).
struct Mapped(*mut u8);

impl Mapped {
    /// # Safety
    /// `page` is a mapped, writable page for as long as the value lives.
    unsafe fn new(page: *mut u8) -> Mapped {
        Mapped(page)
    }

    fn offset(field: RingField) -> usize {
        match field {
            RingField::ReqCons => offset_of!(XenstoreDomainInterface, req_cons),
            RingField::ReqProd => offset_of!(XenstoreDomainInterface, req_prod),
            RingField::RspCons => offset_of!(XenstoreDomainInterface, rsp_cons),
            RingField::RspProd => offset_of!(XenstoreDomainInterface, rsp_prod),
            RingField::ServerFeatures => offset_of!(XenstoreDomainInterface, server_features),
            RingField::Connection => offset_of!(XenstoreDomainInterface, connection),
            RingField::Error => offset_of!(XenstoreDomainInterface, error),
        }
    }
}

impl RingPage for Mapped {
    fn read(&self, field: RingField) -> u32 {
        // SAFETY: a 4-byte aligned field inside the page (`new`'s contract).
        unsafe { ptr::read_volatile(self.0.wrapping_add(Self::offset(field)).cast::<u32>()) }
    }

    fn write(&mut self, field: RingField, value: u32) {
        // SAFETY: as in `read`.
        unsafe { ptr::write_volatile(self.0.wrapping_add(Self::offset(field)).cast::<u32>(), value) }
    }

    fn req_byte(&self, offset: usize) -> u8 {
        let at = offset_of!(XenstoreDomainInterface, req) + offset % XENSTORE_RING_SIZE;
        // SAFETY: inside the page's `req` ring.
        unsafe { ptr::read_volatile(self.0.wrapping_add(at)) }
    }

    fn set_rsp_byte(&mut self, offset: usize, value: u8) {
        let at = offset_of!(XenstoreDomainInterface, rsp) + offset % XENSTORE_RING_SIZE;
        // SAFETY: inside the page's `rsp` ring.
        unsafe { ptr::write_volatile(self.0.wrapping_add(at), value) }
    }

    fn barrier(&self) {
        fence(Ordering::SeqCst);
    }
}
