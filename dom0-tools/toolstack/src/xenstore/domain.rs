//! The entries the toolstack keeps for each domain, as libxl's
//! `libxl__domain_make` does in part.
//!
//! A domain's home `/local/domain/<domid>` is owned by the domain (`n<id>`:
//! it may do anything there, other domUs nothing), so it can write its
//! device and control nodes. `name` and `domid` are dom0's, readable by the
//! domain (`n0,r<id>`), so it cannot rename itself. `/vm/<uuid>` is not
//! written: domains have no UUID yet.
//!
//! A virtual block device ([`create_vbd_entries`]) gets the two
//! directories `io/blkif.h` describes, as libxl's device code writes them:
//! the frontend's under the domain's home, owned by the domain and
//! readable by the backend; the backend's under the backend domain's
//! `backend/vbd/<domid>/<devid>`, owned by the backend and readable by
//! the domain. Nodes either end writes later inherit those permissions.

use alloc::format;
use alloc::string::String;
use alloc::vec;

use abi::blkif::XenbusState;
use abi::errno::Errno;

use super::path::domain_path;
use super::perms::{Access, Perm, Perms};
use super::server::Xenstored;
use crate::builder::DomId;

/// `n0,r<domid>`: dom0's, readable by `domid`.
fn read_only_for(domid: DomId) -> Perms {
    owned_by_readable_by(0, domid)
}

/// `n<owner>,r<reader>`.
fn owned_by_readable_by(owner: DomId, reader: DomId) -> Perms {
    let entries = vec![Perm { domid: owner, access: Access::None }, Perm { domid: reader, access: Access::Read }];
    Perms::new(entries).unwrap_or_else(|| Perms::owned_by(owner))
}

/// The device id of the first Xen virtual disk, `xvda` (major 202).
pub const XVDA: u32 = 202 << 8;

/// A virtual block device's two xenstore directories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VbdPaths {
    /// `/local/domain/<domid>/device/vbd/<devid>`.
    pub frontend: String,
    /// `/local/domain/<backend>/backend/vbd/<domid>/<devid>`.
    pub backend: String,
}

impl VbdPaths {
    /// The directories of `domid`'s disk `devid` served by `backend`.
    pub fn new(domid: DomId, devid: u32, backend: DomId) -> VbdPaths {
        VbdPaths {
            frontend: format!("{}/device/vbd/{devid}", domain_path(domid)),
            backend: format!("{}/backend/vbd/{domid}/{devid}", domain_path(backend)),
        }
    }
}

/// Writes the directories of `domid`'s disk `devid`, served by domain
/// `backend` from the image `params` (read-only if `read_only`), both ends
/// in `XenbusStateInitialising`; replaces what an earlier device of that
/// id left.
pub fn create_vbd_entries(
    xs: &mut Xenstored,
    domid: DomId,
    devid: u32,
    backend: DomId,
    params: &str,
    read_only: bool,
) -> Result<VbdPaths, Errno> {
    let paths = VbdPaths::new(domid, devid, backend);
    remove_vbd_entries(xs, domid, backend)?;
    let initialising = format!("{}", XenbusState::Initialising as u32);
    xs.mkdir(0, &paths.frontend)?;
    xs.set_perms(0, &paths.frontend, owned_by_readable_by(domid, backend))?;
    let front = [
        ("backend", paths.backend.clone()),
        ("backend-id", format!("{backend}")),
        ("virtual-device", format!("{devid}")),
        ("device-type", String::from("disk")),
        ("state", initialising.clone()),
    ];
    for (key, value) in front {
        xs.write(0, &format!("{}/{key}", paths.frontend), value.as_bytes())?;
    }
    xs.mkdir(0, &paths.backend)?;
    xs.set_perms(0, &paths.backend, owned_by_readable_by(backend, domid))?;
    let back = [
        ("frontend", paths.frontend.clone()),
        ("frontend-id", format!("{domid}")),
        ("params", String::from(params)),
        ("mode", String::from(if read_only { "r" } else { "w" })),
        ("type", String::from("phy")),
        ("device-type", String::from("disk")),
        ("online", String::from("1")),
        ("removable", String::from("0")),
        ("state", initialising),
    ];
    for (key, value) in back {
        xs.write(0, &format!("{}/{key}", paths.backend), value.as_bytes())?;
    }
    Ok(paths)
}

/// Removes every backend directory `backend` keeps for `domid`'s block
/// devices (the frontend's go with the domain's home).
pub fn remove_vbd_entries(xs: &mut Xenstored, domid: DomId, backend: DomId) -> Result<(), Errno> {
    match xs.rm(0, &format!("{}/backend/vbd/{domid}", domain_path(backend))) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes the standard entries of new domain `domid` called `name`,
/// replacing whatever a previous domain with that id left.
pub fn create_domain_entries(xs: &mut Xenstored, domid: DomId, name: &str) -> Result<(), Errno> {
    remove_domain_entries(xs, domid)?;
    let home = domain_path(domid);
    xs.mkdir(0, &home)?;
    xs.set_perms(0, &home, Perms::owned_by(domid))?;
    for (key, value) in [("name", String::from(name)), ("domid", format!("{domid}"))] {
        let path = format!("{home}/{key}");
        xs.write(0, &path, value.as_bytes())?;
        xs.set_perms(0, &path, read_only_for(domid))?;
    }
    Ok(())
}

/// Removes domain `domid`'s home and everything in it (nothing if there is
/// none).
pub fn remove_domain_entries(xs: &mut Xenstored, domid: DomId) -> Result<(), Errno> {
    match xs.rm(0, &domain_path(domid)) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}
