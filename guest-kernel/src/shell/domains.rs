//! The domains the shell created: building them, and acting on their
//! configuration when they shut down.
//!
//! Each entry keeps the [`DomainConfig`] the domain was built from. When
//! [`Domains::check`] finds one shut down (`XEN_DOMINF_SHUTDOWN`), it
//! applies the configuration's action for the reason
//! ([`toolstack::status::action_for`]): `destroy` destroys it and forgets
//! it, `preserve` leaves it (reported once), `restart` destroys it and
//! builds it again from the same configuration, under a new id. A domain
//! that keeps shutting down within [`QUICK_NS`] of starting is destroyed
//! instead of a [`MAX_QUICK_RESTARTS`]th restart in a row, so a kernel
//! that crashes at boot cannot keep the shell busy rebuilding it.
//!
//! The shell's xenstore ([`Store`]) lives here too: each domain built is
//! given its entries and served on its store ring; each domain forgotten
//! (destroyed, gone, restarted under a new id) is released and its
//! entries removed. A preserved domain keeps them, as under `xl`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use abi::domctl::{XenDomctl, XenDomctlGetdomaininfo, XEN_DOMINF_DYING, XEN_DOMINF_SHUTDOWN};
use abi::mm::DOMID_FIRST_RESERVED;
use abi::Errno;
use guest_kernel::hypercall::hv;
use guest_kernel::println;
use guest_kernel::time::{self, NS_PER_MS};
use toolstack::builder::{self, BuildOptions, DomId};
use toolstack::command::DOM0_NAME;
use toolstack::config::{Action, DomainConfig};
use toolstack::status::{action_for, Reason};

use super::disks::{Disks, Vbd};
use super::images::Images;
use super::pvconsole::PvConsole;
use super::store::{Store, StoreRing};
use crate::build::ops::{self, Dom0Ops};

/// A domain that shuts down sooner than this after it was built counts as
/// a quick restart.
pub const QUICK_NS: u64 = 2_000 * NS_PER_MS;
/// Quick restarts in a row after which the domain is destroyed instead.
pub const MAX_QUICK_RESTARTS: u32 = 5;

/// One domain the shell built.
#[derive(Debug)]
struct Managed {
    domid: DomId,
    config: DomainConfig,
    /// System time when it was built.
    started_ns: u64,
    /// Restarts in a row that came within [`QUICK_NS`] of a start.
    quick_restarts: u32,
    /// Shut down and preserved: reported already, left alone.
    preserved: bool,
    /// Dom0's end of its PV console (`None` if binding its port failed:
    /// then only its `console_io` output, in the hypervisor's ring, is
    /// seen).
    console: Option<PvConsole>,
    /// Dom0's end of its xenstore ring (`None` if connecting failed: the
    /// domain then gets no answers, and the failure was printed).
    store: Option<StoreRing>,
    /// Its disk's backend, if its configuration names a disk.
    vbd: Option<Vbd>,
}

/// The domains the shell built, in the order it built them.
#[derive(Debug, Default)]
pub struct Domains {
    list: Vec<Managed>,
    /// The xenstore the domains are served from.
    store: Store,
    /// The disk images their disks are served from.
    disks: Disks,
}

impl Domains {
    /// `(id, name)` of every domain with a name: Domain-0 and the shell's.
    pub fn names(&self) -> impl Iterator<Item = (DomId, &str)> {
        core::iter::once((0, DOM0_NAME)).chain(self.list.iter().map(|m| (m.domid, m.config.name.as_str())))
    }

    /// `domid`'s name: `Domain-0`, one the shell gave, or `-`.
    pub fn name_of(&self, domid: DomId) -> &str {
        self.names().find(|&(id, _)| id == domid).map_or("-", |(_, name)| name)
    }

    /// Builds a domain from `config` with `image`, lets it run, and keeps
    /// it. Fails, leaving nothing behind, if the shell has a domain of that
    /// name, if the builder fails (it destroys what it made), or if the
    /// domain cannot be unpaused (it is destroyed).
    /// A configuration's `disk=` names a disk image (made from the
    /// uploaded image of that name the first time, see [`Disks`]).
    pub fn create(&mut self, ops: &mut Dom0Ops, images: &Images, config: DomainConfig) -> Result<DomId, String> {
        self.build(ops, images, config, 0)
    }

    /// The disk images.
    pub fn disks(&mut self) -> &mut Disks {
        &mut self.disks
    }

    fn build(&mut self, ops: &mut Dom0Ops, images: &Images, config: DomainConfig, quick: u32) -> Result<DomId, String> {
        let Some(image) = images.get(&config.kernel) else {
            return Err(format!(
                "no kernel image '{}' (see 'images'; hvctl create --kernel FILE uploads one)",
                config.kernel.escape_debug()
            ));
        };
        if let Some(m) = self.list.iter().find(|m| m.config.name == config.name) {
            return Err(format!("a domain named '{}' exists (d{})", config.name, m.domid));
        }
        let built = builder::build(ops, image, &config, &BuildOptions::default()).map_err(|e| e.to_string())?;
        let d = built.domid;
        let console = PvConsole::connect(d, built.console_mfn, built.console_evtchn).ok();
        let store = match self.store.connect(ops, d, &config.name, built.store_mfn, built.store_evtchn) {
            Ok(ring) => Some(ring),
            Err(e) => {
                println!("xenstore: d{d}: {e}");
                None
            }
        };
        let vbd = match &config.disk {
            Some(disk) => match Vbd::attach(&mut self.store, &mut self.disks, d, disk, images.get(disk)) {
                Ok(vbd) => Some(vbd),
                Err(e) => {
                    drop(console);
                    drop(store);
                    self.store.disconnect(d);
                    return Err(match ops::destroy(d) {
                        Ok(()) => e,
                        Err(e2) => format!("{e}; destroydomain: {e2}: d{d} is left behind"),
                    });
                }
            },
            None => None,
        };
        if let Err(e) = ops::unpause(d) {
            drop(console);
            drop(store);
            if let Some(vbd) = vbd {
                vbd.detach(&mut self.store, &mut self.disks);
            }
            self.store.disconnect(d);
            return Err(match ops::destroy(d) {
                Ok(()) => format!("unpausedomain d{d}: {e}"),
                Err(e2) => format!("unpausedomain d{d}: {e}; destroydomain: {e2}: d{d} is left behind"),
            });
        }
        let started_ns = time::now_ns();
        self.list.push(Managed {
            domid: d,
            config,
            started_ns,
            quick_restarts: quick,
            preserved: false,
            console,
            store,
            vbd,
        });
        Ok(d)
    }

    /// Takes every PV console's new output and delivers its input (errors
    /// are left for the next poll: a domain being destroyed has no frame
    /// to map).
    pub fn poll_consoles(&mut self, ops: &mut Dom0Ops) {
        for console in self.list.iter_mut().filter_map(|m| m.console.as_mut()) {
            let _ = console.poll(ops);
        }
    }

    /// Serves every domain's xenstore ring (errors are left for the next
    /// poll, as with the consoles).
    pub fn poll_stores(&mut self, ops: &mut Dom0Ops) {
        for ring in self.list.iter().filter_map(|m| m.store.as_ref()) {
            let _ = self.store.poll(ops, ring);
        }
    }

    /// Serves every domain's disk; whether requests remain (poll again
    /// without idling).
    pub fn poll_disks(&mut self) -> bool {
        let mut more = false;
        for vbd in self.list.iter_mut().filter_map(|m| m.vbd.as_mut()) {
            more |= vbd.poll(&mut self.store, &mut self.disks);
        }
        more
    }

    /// `domid`'s disk backend, if it has one.
    pub fn vbd_of(&self, domid: DomId) -> Option<&Vbd> {
        self.list.iter().find(|m| m.domid == domid).and_then(|m| m.vbd.as_ref())
    }

    /// The shell's xenstore.
    pub fn store(&mut self) -> &mut Store {
        &mut self.store
    }

    /// Removes entry `i`, releasing its domain from xenstore.
    fn remove(&mut self, i: usize) -> Managed {
        let mut m = self.list.remove(i);
        if let Some(vbd) = m.vbd.take() {
            vbd.detach(&mut self.store, &mut self.disks);
        }
        self.store.disconnect(m.domid);
        m
    }

    /// `domid`'s PV console, if the shell has one for it.
    pub fn console_of(&mut self, domid: DomId) -> Option<&mut PvConsole> {
        self.list.iter_mut().find(|m| m.domid == domid).and_then(|m| m.console.as_mut())
    }

    /// Forgets `domid` (destroyed by a command).
    pub fn forget(&mut self, domid: DomId) {
        if let Some(i) = self.list.iter().position(|m| m.domid == domid) {
            self.remove(i);
        }
    }

    /// Looks at every domain the shell keeps and acts on those that shut
    /// down or vanished, adding one line per event to `out`:
    /// `d<id> '<name>' shut down (<reason>): <action>`, `created d<id>
    /// '<name>'` after a restart, or what failed.
    pub fn check(&mut self, ops: &mut Dom0Ops, images: &Images, out: &mut Vec<String>) {
        let mut i = 0;
        while i < self.list.len() {
            let m = &self.list[i];
            let (d, name) = (m.domid, m.config.name.as_str());
            let info = match ops::domain_info(d) {
                Ok(info) => info,
                Err(e) => {
                    out.push(format!("d{d} '{name}': getdomaininfo: {e}"));
                    i += 1;
                    continue;
                }
            };
            let Some(info) = info else {
                out.push(format!("d{d} '{name}' is gone"));
                self.remove(i);
                continue;
            };
            if m.preserved || info.flags & XEN_DOMINF_DYING != 0 || info.flags & XEN_DOMINF_SHUTDOWN == 0 {
                i += 1;
                continue;
            }
            let reason = info.shutdown_reason();
            let mut action = action_for(&m.config, reason);
            let quick = if time::now_ns().saturating_sub(m.started_ns) < QUICK_NS { m.quick_restarts + 1 } else { 0 };
            let mut note = String::new();
            if action == Action::Restart && quick >= MAX_QUICK_RESTARTS {
                action = Action::Destroy;
                note = format!(" (shut down {quick} times in a row within {} ms of starting)", QUICK_NS / NS_PER_MS);
            }
            out.push(format!("d{d} '{name}' shut down ({}): {action}{note}", Reason(reason)));
            if action == Action::Preserve {
                self.list[i].preserved = true;
                i += 1;
                continue;
            }
            let mut m = self.remove(i);
            // Its last words, into the kept output before it goes.
            if let Some(console) = m.console.as_mut() {
                let _ = console.poll(ops);
            }
            if let Err(e) = ops::destroy(d) {
                out.push(format!("d{d} '{}': destroydomain: {e}: it is left behind", m.config.name));
                continue;
            }
            if action == Action::Restart {
                let name = m.config.name.clone();
                match self.build(ops, images, m.config, quick) {
                    Ok(new) => out.push(format!("created d{new} '{name}'")),
                    Err(e) => out.push(format!("d{d} '{name}' restart failed: {e}")),
                }
            }
        }
    }
}

/// Every domain, in id order: `getdomaininfo` from id 0, each time from
/// one past the last id reported (Xen 4.17 reports the first domain at or
/// above the id asked for, `ESRCH` past the last).
pub fn all() -> Result<Vec<XenDomctlGetdomaininfo>, Errno> {
    let mut out = Vec::new();
    let mut next: DomId = 0;
    while next < DOMID_FIRST_RESERVED {
        let mut op = XenDomctl::getdomaininfo(next);
        // SAFETY: getdomaininfo carries no guest handle and changes nothing.
        match unsafe { hv().domctl(&mut op) } {
            Ok(_) if op.domain >= next => {
                let mut info = op.u_getdomaininfo();
                info.domain = op.domain;
                out.push(info);
                next = op.domain + 1;
            }
            Ok(_) => return Err(Errno::EIO),
            Err(Errno::ESRCH) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
