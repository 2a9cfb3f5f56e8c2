//! A PV block device frontend (`io/blkif.h`): finds its disk in xenstore,
//! shares a ring page and an event channel with the backend, and moves
//! sectors through pages it grants.
//!
//! [`Blkfront::connect`] does the frontend's half of the xenbus handshake
//! described in [`abi::blkif`]: it waits for the backend to publish the
//! disk (`InitWait`), reads its size, grants a fresh ring page and
//! allocates an unbound port for the backend, writes `ring-ref`,
//! `event-channel` and `protocol`, goes to `Initialised`, waits for the
//! backend to be `Connected` and goes there too. The client has no watches,
//! so it reads the backend's state every millisecond ([`MAX_WAITS`](xenbus::MAX_WAITS) times
//! at most).
//!
//! Requests go on the ring with [`Blkfront::push`] (up to
//! [`BLKIF_RING_SIZE`](abi::blkif::BLKIF_RING_SIZE) in flight), [`Blkfront::kick`] publishes them and
//! notifies the backend if it asked to be, and [`Blkfront::next_response`]
//! takes the next response, blocking on the port (with the final check
//! that loses no wakeup) for at most [`RESPONSE_TIMEOUT_NS`]. The data pages
//! are the caller's, granted with [`Blkfront::grant_page`].

use alloc::format;
use alloc::string::String;
use core::ptr::NonNull;

use abi::blkif::{BlkifRequest, BlkifResponse, XenbusState, BLKIF_PROTOCOL_X86_64, BLKIF_SECTOR_SIZE, VDISK_READONLY};
use abi::mm::DOMID_SELF;
use abi::ring::{FrontRing, Sring};
use abi::Errno;

use crate::event::{self, Port};
use crate::grant::{self, GrantRef};
use crate::hypercall::hv;
use crate::mm::{self, Frame};
use crate::time::{self, NS_PER_MS};
use crate::xenbus::{self, Xenbus};

/// How long [`Blkfront::next_response`] waits for a response.
pub const RESPONSE_TIMEOUT_NS: u64 = 5_000 * NS_PER_MS;

/// The port's handler: it claims the port; the upcall itself is what
/// wakes [`Blkfront::next_response`].
fn on_event(_: Port) {}

/// A connected block device.
pub struct Blkfront {
    ring: FrontRing<'static, BlkifRequest, BlkifResponse>,
    /// The ring's page and grant (kept for the device's life: the ring
    /// lives in it).
    ring_frame: Frame,
    ring_gref: GrantRef,
    port: Port,
    /// The backend's domain.
    pub backend_id: u16,
    /// The disk's size in 512-byte sectors.
    pub sectors: u64,
    /// The backend's `sector-size`.
    pub sector_size: u32,
    /// Whether the disk is read-only (`info` has `VDISK_READONLY`).
    pub read_only: bool,
    /// The frontend's xenstore directory.
    pub path: String,
    /// The backend's xenstore directory.
    pub backend: String,
}

impl core::fmt::Debug for Blkfront {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Blkfront")
            .field("path", &self.path)
            .field("backend_id", &self.backend_id)
            .field("sectors", &self.sectors)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Reads `path` as a decimal number.
fn read_number(xs: &mut Xenbus, path: &str) -> Result<u64, Errno> {
    let mut buf = [0u8; 24];
    let n = xs.read(path, &mut buf)?;
    core::str::from_utf8(&buf[..n]).ok().and_then(|s| s.trim_end_matches('\0').parse().ok()).ok_or(Errno::EINVAL)
}

/// Reads a device's state node (`EINVAL` if it names no state).
fn read_state(xs: &mut Xenbus, path: &str) -> Result<XenbusState, Errno> {
    let mut buf = [0u8; 8];
    let n = xs.read(path, &mut buf)?;
    XenbusState::parse(&buf[..n]).ok_or(Errno::EINVAL)
}

/// Waits until `path`'s state is at least `want` (`Closed` included):
/// the state. `ENODEV` if it went to `Closing` or beyond before `want`,
/// `ETIMEDOUT` after [`MAX_WAITS`](xenbus::MAX_WAITS) ms.
fn wait_state(xs: &mut Xenbus, path: &str, want: XenbusState) -> Result<XenbusState, Errno> {
    let mut waits = 0;
    loop {
        match read_state(xs, path) {
            Ok(s) if s >= XenbusState::Closing && want < XenbusState::Closing => return Err(Errno::ENODEV),
            Ok(s) if s >= want => return Ok(s),
            Ok(_) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        xenbus::wait(&mut waits)?;
    }
}

impl Blkfront {
    /// Connects to this domain's disk `devid` (`abi::blkif` describes the
    /// handshake). Nothing is left granted or bound if it fails.
    pub fn connect(xs: &mut Xenbus, devid: u32) -> Result<Blkfront, Errno> {
        let path = format!("device/vbd/{devid}");
        let backend_id = u16::try_from(read_number(xs, &format!("{path}/backend-id"))?).map_err(|_| Errno::EINVAL)?;
        let mut buf = [0u8; 128];
        let n = xs.read(&format!("{path}/backend"), &mut buf)?;
        let backend = String::from(core::str::from_utf8(&buf[..n]).map_err(|_| Errno::EINVAL)?);
        wait_state(xs, &format!("{backend}/state"), XenbusState::InitWait)?;
        let sectors = read_number(xs, &format!("{backend}/sectors"))?;
        let sector_size = u32::try_from(read_number(xs, &format!("{backend}/sector-size"))?).unwrap_or(0);
        let info = read_number(xs, &format!("{backend}/info")).unwrap_or(0);
        if sector_size == 0 || sector_size % BLKIF_SECTOR_SIZE != 0 {
            return Err(Errno::EINVAL);
        }

        grant::init()?;
        let ring_frame = mm::alloc_frame().map_err(|_| Errno::ENOMEM)?;
        // SAFETY: a fresh frame of ours, mapped in the direct map; from
        // here on it is touched only through the ring (atomically).
        let sring = unsafe { Sring::from_raw(NonNull::new(ring_frame.va() as *mut u8).ok_or(Errno::EINVAL)?, 4096) };
        let Some(sring) = sring else {
            let _ = mm::free_frame(ring_frame);
            return Err(Errno::EINVAL);
        };
        let ring = FrontRing::new(sring);
        let ring_gref = match grant::grant_access(backend_id, ring_frame.mfn, false) {
            Ok(gref) => gref,
            Err(e) => {
                let _ = mm::free_frame(ring_frame);
                return Err(e);
            }
        };
        let port = match hv().evtchn_alloc_unbound(DOMID_SELF, backend_id) {
            Ok(port) => port,
            Err(e) => {
                let _ = grant::end_access(ring_gref);
                let _ = mm::free_frame(ring_frame);
                return Err(e);
            }
        };
        event::set_handler(port, Some(on_event));
        let front = Blkfront {
            ring,
            ring_frame,
            ring_gref,
            port,
            backend_id,
            sectors,
            sector_size,
            read_only: info & u64::from(VDISK_READONLY) != 0,
            path,
            backend,
        };
        front.handshake(xs)?;
        Ok(front)
    }

    /// Publishes the ring and port, and steps the states to `Connected`.
    fn handshake(&self, xs: &mut Xenbus) -> Result<(), Errno> {
        let path = &self.path;
        xs.write(&format!("{path}/ring-ref"), format!("{}", self.ring_gref).as_bytes())?;
        xs.write(&format!("{path}/event-channel"), format!("{}", self.port).as_bytes())?;
        xs.write(&format!("{path}/protocol"), BLKIF_PROTOCOL_X86_64.as_bytes())?;
        xs.write(&format!("{path}/state"), XenbusState::Initialised.value().as_bytes())?;
        self.wait_backend(xs, XenbusState::Connected)?;
        xs.write(&format!("{path}/state"), XenbusState::Connected.value().as_bytes())
    }

    /// Waits until the backend's state is at least `want` (see
    /// [`wait_state`]): the state.
    pub fn wait_backend(&self, xs: &mut Xenbus, want: XenbusState) -> Result<XenbusState, Errno> {
        wait_state(xs, &format!("{}/state", self.backend), want)
    }

    /// Grants the backend `frame` (read-only if the backend only reads it:
    /// pages written to disk): the reference to name in segments.
    pub fn grant_page(&self, frame: &Frame, backend_reads_only: bool) -> Result<GrantRef, Errno> {
        grant::grant_access(self.backend_id, frame.mfn, backend_reads_only)
    }

    /// Free request slots.
    pub fn free_slots(&self) -> u32 {
        self.ring.free_requests()
    }

    /// Writes `req` into the ring (unpublished): `Err(req)` if it is full.
    pub fn push(&mut self, req: BlkifRequest) -> Result<(), BlkifRequest> {
        self.ring.push_request(req)
    }

    /// Publishes what was pushed and notifies the backend if it asked.
    pub fn kick(&mut self) -> Result<(), Errno> {
        if self.ring.push_requests_and_check_notify() {
            hv().evtchn_send(self.port)?;
        }
        Ok(())
    }

    /// The next response, waiting for it: `ETIMEDOUT` after
    /// [`RESPONSE_TIMEOUT_NS`].
    pub fn next_response(&mut self) -> Result<BlkifResponse, Errno> {
        let deadline = time::now_ns().saturating_add(RESPONSE_TIMEOUT_NS);
        loop {
            if let Some(rsp) = self.ring.pop_response() {
                return Ok(rsp);
            }
            if self.ring.final_check_for_responses() {
                continue;
            }
            if time::now_ns() >= deadline {
                return Err(Errno::ETIMEDOUT);
            }
            let ring = &self.ring;
            let port = self.port;
            time::sleep_until_or(deadline, || ring.unconsumed_responses() > 0 || event::clear_pending(port))?;
        }
    }

    /// Sends an event to the backend whether or not it asked for one.
    pub fn notify(&self) -> Result<(), Errno> {
        hv().evtchn_send(self.port).map(drop)
    }

    /// The shared ring, for code that must write it by hand (a test of a
    /// backend's defences).
    pub fn sring(&self) -> Sring<'static, BlkifRequest, BlkifResponse> {
        self.ring.sring()
    }

    /// Requests written so far (`req_prod_pvt`).
    pub fn req_prod_pvt(&self) -> u32 {
        self.ring.req_prod_pvt()
    }

    /// Requests in flight (pushed and not yet answered).
    pub fn in_flight(&self) -> u32 {
        self.ring.size() - self.ring.free_requests()
    }
}

impl Drop for Blkfront {
    /// Closes the port and, if the backend has unmapped the ring, gives its
    /// grant and page back (a ring still mapped stays granted, and its page
    /// is not reused). The xenstore state is the caller's to set.
    fn drop(&mut self) {
        event::set_handler(self.port, None);
        let _ = hv().evtchn_close(self.port);
        if grant::end_access(self.ring_gref).is_ok() {
            let _ = mm::free_frame(self.ring_frame);
        }
    }
}
