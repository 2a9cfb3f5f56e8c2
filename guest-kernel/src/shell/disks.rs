//! Disk images and the block backends the shell runs for them, as
//! `blkback` does in a Linux dom0 (the protocol's core is portable,
//! [`toolstack::blkback`]).
//!
//! A disk image is a run of dom0's own frames: made zeroed by `mkdisk`, or
//! copied from an uploaded image the first time a configuration's `disk=`
//! names it. It lives as long as dom0, so what one boot of a domain
//! writes, the next reads. A disk serves one domain at a time.
//!
//! A domain built with `disk=<name>` gets a [`Vbd`]: its xenstore
//! directories ([`create_vbd_entries`], device `xvda`), the disk's size
//! published and the backend in `InitWait`. Each poll then steps it on:
//! once the frontend is `Initialised` the backend maps its ring page
//! (`GNTTABOP_map_grant_ref`), binds its port and goes to `Connected`;
//! from then on each poll answers up to [`BUDGET`] requests, moving data
//! with one `GNTTABOP_copy` batch per request between the frontend's
//! granted pages and the disk's frames (dom0 never maps the data pages).
//! A frontend that breaks the ring protocol, or whose ring cannot be
//! mapped, is disconnected with one log line (`blkback: d<id>: ...`) and
//! the backend goes to `Closed`; other domains are not affected.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;

use abi::blkif::{BlkifSring, XenbusState, BLKIF_PROTOCOL_X86_64, BLKIF_SECTOR_SIZE};
use abi::grant_table::{GnttabCopy, GnttabCopyPtr, GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GNTST_OKAY};
use abi::mm::DOMID_SELF;
use abi::Errno;
use guest_kernel::event::{self, Port};
use guest_kernel::grant::{self, ForeignMapping};
use guest_kernel::hypercall::hv;
use guest_kernel::layout::PAGE_SIZE;
use guest_kernel::mm::{self, Frame};
use guest_kernel::println;
use toolstack::blkback::{Blkback, Copier, Copy, Direction, DiskInfo, Stats, PAGE_BYTES};
use toolstack::builder::DomId;
use toolstack::xenstore::{create_vbd_entries, remove_vbd_entries, VbdPaths, XVDA};

use super::store::Store;

/// Requests one poll answers per device, at most.
pub const BUDGET: u32 = 64;

/// One disk image.
struct Disk {
    name: String,
    /// Its pages, in order.
    frames: Vec<Frame>,
    /// The domain using it, if any.
    user: Option<DomId>,
}

impl Disk {
    fn sectors(&self) -> u64 {
        self.frames.len() as u64 * (PAGE_SIZE / u64::from(BLKIF_SECTOR_SIZE))
    }
}

/// Every disk image.
#[derive(Default)]
pub struct Disks {
    list: Vec<Disk>,
}

impl core::fmt::Debug for Disks {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.list.iter().map(|d| &d.name)).finish()
    }
}

/// `n` zeroed frames of dom0's, or why not (none kept).
fn zeroed_frames(n: usize) -> Result<Vec<Frame>, String> {
    let mut frames = Vec::new();
    frames.try_reserve_exact(n).map_err(|_| format!("no memory for {n} frames"))?;
    for _ in 0..n {
        match mm::alloc_frame() {
            Ok(f) => {
                // SAFETY: a fresh frame of ours, in the direct map, which
                // nothing references yet.
                unsafe { f.zero() };
                frames.push(f);
            }
            Err(e) => {
                free_frames(&frames);
                return Err(format!("dom0 has less than {} MiB free ({e})", n / 256));
            }
        }
    }
    Ok(frames)
}

fn free_frames(frames: &[Frame]) {
    for &f in frames {
        let _ = mm::free_frame(f);
    }
}

impl Disks {
    /// Makes a zeroed disk of `mib` MiB called `name`.
    pub fn make(&mut self, name: &str, mib: u32) -> Result<(), String> {
        if self.list.iter().any(|d| d.name == name) {
            return Err(format!("a disk named '{name}' exists"));
        }
        let frames = zeroed_frames(mib as usize * 256)?;
        self.list.push(Disk { name: String::from(name), frames, user: None });
        Ok(())
    }

    /// Makes disk `name` from `image`'s bytes (padded with zeros to a
    /// whole page).
    pub fn add_image(&mut self, name: &str, image: &[u8]) -> Result<(), String> {
        let frames = zeroed_frames(image.len().div_ceil(PAGE_BYTES))?;
        for (f, chunk) in frames.iter().zip(image.chunks(PAGE_BYTES)) {
            // SAFETY: our frame, mapped in the direct map, referenced
            // nowhere else; `chunk` is at most a page.
            unsafe { core::ptr::copy_nonoverlapping(chunk.as_ptr(), f.va() as *mut u8, chunk.len()) };
        }
        self.list.push(Disk { name: String::from(name), frames, user: None });
        Ok(())
    }

    /// Whether disk `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.list.iter().any(|d| d.name == name)
    }

    /// `(name, MiB, user)` of each disk.
    pub fn list(&self) -> impl Iterator<Item = (&str, u64, Option<DomId>)> {
        self.list.iter().map(|d| (d.name.as_str(), d.frames.len() as u64 / 256, d.user))
    }

    fn find(&mut self, name: &str) -> Option<&mut Disk> {
        self.list.iter_mut().find(|d| d.name == name)
    }
}

/// A connected ring: the mapping outlives the [`Blkback`] over it.
struct Connection {
    back: Option<Blkback<'static>>,
    ring: Option<ForeignMapping>,
    port: Port,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The view of the ring goes before the mapping it points into.
        self.back = None;
        event::set_handler(self.port, None);
        let _ = hv().evtchn_close(self.port);
        if let Some(ring) = self.ring.take() {
            let _ = grant::unmap_foreign(ring);
        }
    }
}

/// A domain's virtual block device, dom0's end.
pub struct Vbd {
    domid: DomId,
    disk: String,
    paths: VbdPaths,
    conn: Option<Connection>,
    /// Disconnected for good (the frontend closed, or broke the protocol).
    closed: bool,
    /// Counters of the connections so far.
    stats: Stats,
    /// The copy ops of a request, kept between requests.
    copies: Vec<GnttabCopy>,
}

impl core::fmt::Debug for Vbd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vbd").field("domid", &self.domid).field("disk", &self.disk).finish_non_exhaustive()
    }
}

/// Writes `key` under the backend's directory.
fn set(store: &mut Store, paths: &VbdPaths, key: &str, value: &str) -> Result<(), Errno> {
    store.write(&format!("{}/{key}", paths.backend), value.as_bytes())
}

/// Reads `key` under the frontend's directory as text.
fn front(store: &mut Store, paths: &VbdPaths, key: &str) -> Result<String, Errno> {
    let v = store.read(&format!("{}/{key}", paths.frontend))?;
    String::from_utf8(v).map_err(|_| Errno::EINVAL)
}

impl Vbd {
    /// Gives `domid` disk `name` (made from the uploaded image `image` if
    /// there is no disk of that name yet) as `xvda`, served by dom0.
    pub fn attach(
        store: &mut Store,
        disks: &mut Disks,
        domid: DomId,
        name: &str,
        image: Option<&[u8]>,
    ) -> Result<Vbd, String> {
        if !disks.has(name) {
            let Some(image) = image else {
                return Err(format!("disk: no disk image '{}' (see 'disks'; 'mkdisk' makes one)", name.escape_debug()));
            };
            disks.add_image(name, image).map_err(|e| format!("disk: {name}: {e}"))?;
        }
        let disk = disks.find(name).ok_or_else(|| format!("disk: no disk '{name}'"))?;
        if let Some(user) = disk.user {
            return Err(format!("disk: '{name}' is in use by d{user}"));
        }
        let sectors = disk.sectors();
        let xs = store.xenstored();
        let paths = create_vbd_entries(xs, domid, XVDA, 0, name, false).map_err(|e| format!("disk: xenstore: {e}"))?;
        let published = [
            ("sectors", format!("{sectors}")),
            ("sector-size", format!("{BLKIF_SECTOR_SIZE}")),
            ("info", String::from("0")),
            ("feature-flush-cache", String::from("1")),
            ("state", String::from(XenbusState::InitWait.value())),
        ];
        for (key, value) in published {
            if let Err(e) = set(store, &paths, key, &value) {
                let _ = remove_vbd_entries(store.xenstored(), domid, 0);
                return Err(format!("disk: xenstore: {key}: {e}"));
            }
        }
        disk.user = Some(domid);
        Ok(Vbd {
            domid,
            disk: String::from(name),
            paths,
            conn: None,
            closed: false,
            stats: Stats::default(),
            copies: Vec::new(),
        })
    }

    /// Gives the disk back and removes the backend's entries.
    pub fn detach(mut self, store: &mut Store, disks: &mut Disks) {
        self.conn = None;
        if let Some(d) = disks.find(&self.disk) {
            d.user = None;
        }
        let _ = remove_vbd_entries(store.xenstored(), self.domid, 0);
    }

    /// Steps the handshake on, or serves the ring: whether requests remain.
    pub fn poll(&mut self, store: &mut Store, disks: &mut Disks) -> bool {
        if self.closed {
            return false;
        }
        let state = front(store, &self.paths, "state").ok().and_then(|s| XenbusState::parse(s.as_bytes()));
        if matches!(state, Some(XenbusState::Closing | XenbusState::Closed)) {
            self.close(store, None);
            return false;
        }
        if self.conn.is_none() {
            if matches!(state, Some(XenbusState::Initialised | XenbusState::Connected)) {
                if let Err(why) = self.connect(store, disks) {
                    self.close(store, Some(&why));
                }
            }
            return false;
        }
        let Some(disk) = disks.find(&self.disk) else {
            self.close(store, Some("its disk is gone"));
            return false;
        };
        let Some((back, port)) = self.conn.as_mut().and_then(|c| Some((c.back.as_mut()?, c.port))) else {
            return false;
        };
        let mut copier = GrantCopier { frontend: self.domid, disk: &disk.frames, ops: &mut self.copies };
        let served = back.serve(&mut copier, BUDGET);
        self.stats = back.stats();
        match served {
            Ok(served) => {
                if served.notify {
                    let _ = hv().evtchn_send(port);
                }
                served.more
            }
            Err(broken) => {
                self.close(store, Some(&format!("{broken}")));
                false
            }
        }
    }

    /// Maps the frontend's ring, binds its port, goes `Connected`.
    fn connect(&mut self, store: &mut Store, disks: &mut Disks) -> Result<(), String> {
        let number = |store: &mut Store, key: &str| -> Result<u32, String> {
            let v = front(store, &self.paths, key).map_err(|e| format!("{key}: {e}"))?;
            v.trim_end_matches('\0').parse().map_err(|_| format!("{key}: '{}' is not a number", v.escape_debug()))
        };
        let gref = number(store, "ring-ref")?;
        let remote_port = number(store, "event-channel")?;
        match front(store, &self.paths, "protocol") {
            Ok(p) if p.trim_end_matches('\0') != BLKIF_PROTOCOL_X86_64 => {
                return Err(format!("protocol '{}' is not {BLKIF_PROTOCOL_X86_64}", p.escape_debug()));
            }
            _ => {}
        }
        let sectors = disks.find(&self.disk).map(|d| d.sectors()).ok_or("its disk is gone")?;
        let ring = grant::map_foreign(self.domid, gref, false).map_err(|e| format!("mapping ring-ref {gref}: {e}"))?;
        let port = match hv().evtchn_bind_interdomain(self.domid, remote_port) {
            Ok(port) => port,
            Err(e) => {
                let _ = grant::unmap_foreign(ring);
                return Err(format!("binding event-channel {remote_port}: {e}"));
            }
        };
        event::set_handler(port, Some(super::wake));
        let base = NonNull::new(ring.va as *mut u8).ok_or("the ring's address is null")?;
        // SAFETY: `ring` maps the frontend's page read-write at `base`
        // until the `Connection` drops it, after the view (its `Drop`);
        // this program touches the page only through the ring view's
        // atomics (the frontend may write anything, anytime).
        let sring: Option<BlkifSring<'static>> = unsafe { BlkifSring::from_raw(base, PAGE_BYTES) };
        let back = sring.map(|s| Blkback::new(s, DiskInfo { sectors, read_only: false }));
        self.conn = Some(Connection { back, ring: Some(ring), port });
        set(store, &self.paths, "state", XenbusState::Connected.value()).map_err(|e| format!("state: {e}"))?;
        Ok(())
    }

    /// Disconnects for good: `why` is logged if it is a fault.
    fn close(&mut self, store: &mut Store, why: Option<&str>) {
        if let Some(why) = why {
            println!("blkback: d{}: {why}; disconnected", self.domid);
        }
        self.conn = None;
        self.closed = true;
        let _ = set(store, &self.paths, "state", XenbusState::Closed.value());
    }

    /// The counters of its connections, for the `disks` listing.
    pub fn stats(&self) -> Stats {
        self.stats
    }
}

/// Moves a request's data with one `GNTTABOP_copy` batch.
struct GrantCopier<'a> {
    frontend: DomId,
    disk: &'a [Frame],
    ops: &'a mut Vec<GnttabCopy>,
}

impl Copier for GrantCopier<'_> {
    fn copy(&mut self, direction: Direction, copies: &[Copy]) -> Result<(), i16> {
        self.ops.clear();
        for c in copies {
            let page = usize::try_from(c.disk_offset / PAGE_SIZE).map_err(|_| abi::grant_table::GNTST_BAD_COPY_ARG)?;
            let frame = self.disk.get(page).ok_or(abi::grant_table::GNTST_BAD_COPY_ARG)?;
            let local =
                GnttabCopyPtr { u: frame.mfn, domid: DOMID_SELF, offset: (c.disk_offset % PAGE_SIZE) as u16, _pad0: 0 };
            let remote = GnttabCopyPtr { u: u64::from(c.gref), domid: self.frontend, offset: c.grant_offset, _pad0: 0 };
            let (source, dest, flags) = match direction {
                Direction::ToDisk => (remote, local, GNTCOPY_SOURCE_GREF),
                Direction::FromDisk => (local, remote, GNTCOPY_DEST_GREF),
            };
            self.ops.push(GnttabCopy { source, dest, len: c.len, flags, status: 0, _pad0: 0 });
        }
        // SAFETY: the only local frames named are the disk's, which no
        // reference points into; the rest is the frontend's granted pages.
        let r = unsafe { hv().gnttab_copy(self.ops) };
        if r.is_err() {
            return Err(abi::grant_table::GNTST_GENERAL_ERROR);
        }
        match self.ops.iter().find(|op| op.status != GNTST_OKAY) {
            Some(op) => Err(op.status),
            None => Ok(()),
        }
    }
}
