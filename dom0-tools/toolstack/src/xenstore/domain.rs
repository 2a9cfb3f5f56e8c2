//! The entries the toolstack keeps for each domain, as libxl's
//! `libxl__domain_make` does in part.
//!
//! A domain's home `/local/domain/<domid>` is owned by the domain (`n<id>`:
//! it may do anything there, other domUs nothing), so it can write its
//! device and control nodes. `name` and `domid` are dom0's, readable by the
//! domain (`n0,r<id>`), so it cannot rename itself. `/vm/<uuid>` is not
//! written: domains have no UUID yet.

use alloc::format;
use alloc::string::String;
use alloc::vec;

use abi::errno::Errno;

use super::path::domain_path;
use super::perms::{Access, Perm, Perms};
use super::server::Xenstored;
use crate::builder::DomId;

/// `n0,r<domid>`: dom0's, readable by `domid`.
fn read_only_for(domid: DomId) -> Perms {
    let entries = vec![Perm { domid: 0, access: Access::None }, Perm { domid, access: Access::Read }];
    Perms::new(entries).unwrap_or_else(|| Perms::owned_by(0))
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
