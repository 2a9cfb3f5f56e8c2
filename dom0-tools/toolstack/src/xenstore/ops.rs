//! The node operations, over a [`View`]: the same code runs on the store
//! and inside a transaction.
//!
//! Each operation first reads everything it needs and checks it (including
//! the transaction limit, [`View::check`]); only then does it change
//! anything, so a refused operation leaves no trace. Permission rules are
//! xenstored's: reading needs read access to the node, changing it write
//! access, changing its permissions ownership; creating a node needs write
//! access to the nearest existing ancestor, and the new nodes inherit that
//! ancestor's permissions, owned by their creator unless it is privileged.
//! Asking about a node that does not exist is `ENOENT` where the asker may
//! do the same to the nearest existing ancestor, else `EACCES`, so a domain
//! cannot probe where it may not look.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use abi::errno::Errno;
use abi::xenstore::XENSTORE_PAYLOAD_MAX;

use super::path::{base, join, parent};
use super::perms::{Perms, Rights};
use super::quota::Quotas;
use super::store::{Node, View};
use crate::builder::DomId;

/// Who asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The asking domain.
    pub domid: DomId,
    /// Whether it bypasses permissions and quotas (dom0).
    pub privileged: bool,
}

impl Caller {
    /// Domain `domid`; dom0 is privileged.
    pub fn of(domid: DomId) -> Caller {
        Caller { domid, privileged: domid == 0 }
    }

    /// What it may do to a node with `perms`.
    pub fn rights(self, perms: &Perms) -> Rights {
        perms.rights(self.domid, self.privileged)
    }
}

/// What an operation needs of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    /// Read access.
    Read,
    /// Write access.
    Write,
    /// Ownership (and write access).
    Own,
}

impl Need {
    /// Whether `rights` meet it.
    fn met_by(self, rights: Rights) -> bool {
        match self {
            Need::Read => rights.read,
            Need::Write => rights.write,
            Need::Own => rights.write && rights.owner,
        }
    }
}

/// A change that fires watches: at or above `path` with `path`, and, if
/// `recursive` (a removal), under it with the watch's own path. A
/// connection hears of it only if `perms` let it read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    /// The changed node.
    pub path: String,
    /// The permissions that decide who hears of it.
    pub perms: Perms,
    /// Whether a subtree went (watches below fire too).
    pub recursive: bool,
}

/// Calls `f` on the node at `path` if `caller` may do `need` to it.
fn with_node<T>(
    v: &mut dyn View,
    caller: Caller,
    path: &str,
    need: Need,
    f: impl FnOnce(&Node) -> T,
) -> Result<T, Errno> {
    match v.node(path) {
        Some(node) if need.met_by(caller.rights(&node.perms)) => Ok(f(node)),
        Some(_) => Err(Errno::EACCES),
        None => Err(missing(v, caller, path, need)),
    }
}

/// The error for a node that is not there: `ENOENT` if `caller` may do
/// `need` to its nearest existing ancestor, else `EACCES`.
fn missing(v: &mut dyn View, caller: Caller, path: &str, need: Need) -> Errno {
    let mut p = path;
    while let Some(up) = parent(p) {
        if let Some(node) = v.node(up) {
            return if need.met_by(caller.rights(&node.perms)) { Errno::ENOENT } else { Errno::EACCES };
        }
        p = up;
    }
    Errno::ENOENT
}

/// `XS_READ`: the node's value.
pub(crate) fn read(v: &mut dyn View, caller: Caller, path: &str) -> Result<Vec<u8>, Errno> {
    let value = with_node(v, caller, path, Need::Read, |n| n.value.clone())?;
    v.check()?;
    Ok(value)
}

/// `XS_GET_PERMS`: the node's permissions.
pub(crate) fn get_perms(v: &mut dyn View, caller: Caller, path: &str) -> Result<Perms, Errno> {
    let perms = with_node(v, caller, path, Need::Read, |n| n.perms.clone())?;
    v.check()?;
    Ok(perms)
}

/// The children's names, each nul-terminated, and the node's generation.
fn child_list(v: &mut dyn View, caller: Caller, path: &str) -> Result<(Vec<u8>, u64), Errno> {
    let list = with_node(v, caller, path, Need::Read, |n| {
        let mut out = Vec::new();
        for child in &n.children {
            out.extend_from_slice(child.as_bytes());
            out.push(0);
        }
        (out, n.generation)
    })?;
    v.check()?;
    Ok(list)
}

/// The children's names.
pub(crate) fn children(v: &mut dyn View, caller: Caller, path: &str) -> Result<Vec<String>, Errno> {
    let names = with_node(v, caller, path, Need::Read, |n| n.children.iter().cloned().collect())?;
    v.check()?;
    Ok(names)
}

/// `XS_DIRECTORY`: the children's names, each nul-terminated (`E2BIG` if
/// they do not fit a message; `XS_DIRECTORY_PART` gets them then).
pub(crate) fn directory(v: &mut dyn View, caller: Caller, path: &str) -> Result<Vec<u8>, Errno> {
    let (list, _) = child_list(v, caller, path)?;
    if list.len() > XENSTORE_PAYLOAD_MAX as usize {
        return Err(Errno::E2BIG);
    }
    Ok(list)
}

/// `XS_DIRECTORY_PART`: the node's generation, nul-terminated, then as many
/// whole names from byte `offset` of the child list as fit a message; an
/// extra nul (an empty name) marks the end of the list. As xenstored's.
pub(crate) fn directory_part(v: &mut dyn View, caller: Caller, path: &str, offset: u64) -> Result<Vec<u8>, Errno> {
    let (list, generation) = child_list(v, caller, path)?;
    let mut out = format!("{generation}\0").into_bytes();
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let Some(rest) = list.get(start..).filter(|r| !r.is_empty()) else {
        out.push(0);
        return Ok(out);
    };
    let max = (XENSTORE_PAYLOAD_MAX as usize).saturating_sub(out.len() + 1);
    let mut len = 0;
    while let Some(name_len) = rest.get(len..).and_then(|r| r.iter().position(|&b| b == 0)) {
        if len + name_len >= max {
            break;
        }
        len += name_len + 1;
    }
    out.extend_from_slice(rest.get(..len).unwrap_or_default());
    if len == rest.len() {
        out.push(0);
    }
    Ok(out)
}

/// `XS_WRITE`: sets the node's value, creating it (and missing ancestors).
pub(crate) fn write(
    v: &mut dyn View,
    caller: Caller,
    quotas: &Quotas,
    path: &str,
    value: &[u8],
    changes: &mut Vec<Change>,
) -> Result<(), Errno> {
    if !caller.privileged && value.len() > quotas.max_value {
        return Err(Errno::ENOSPC);
    }
    let existing = match v.node(path) {
        Some(node) if caller.rights(&node.perms).write => Some(node.clone()),
        Some(_) => return Err(Errno::EACCES),
        None => None,
    };
    let perms = match existing {
        Some(mut node) => {
            v.check()?;
            node.value = value.to_vec();
            let perms = node.perms.clone();
            v.put(path, node);
            perms
        }
        None => create(v, caller, quotas, path, value)?,
    };
    changes.push(Change { path: String::from(path), perms, recursive: false });
    Ok(())
}

/// `XS_MKDIR`: creates the node (and missing ancestors) with an empty value;
/// nothing if it exists and may be written.
pub(crate) fn mkdir(
    v: &mut dyn View,
    caller: Caller,
    quotas: &Quotas,
    path: &str,
    changes: &mut Vec<Change>,
) -> Result<(), Errno> {
    match v.node(path) {
        Some(node) if caller.rights(&node.perms).write => v.check(),
        Some(_) => Err(Errno::EACCES),
        None => {
            let perms = create(v, caller, quotas, path, &[])?;
            changes.push(Change { path: String::from(path), perms, recursive: false });
            Ok(())
        }
    }
}

/// Creates the absent node `path` with `value`, and its absent ancestors
/// empty; returns the new node's permissions.
fn create(v: &mut dyn View, caller: Caller, quotas: &Quotas, path: &str, value: &[u8]) -> Result<Perms, Errno> {
    // Decode: the absent names, deepest first, and the nearest ancestor.
    let mut absent: Vec<&str> = alloc::vec![path];
    let mut top = path;
    let mut ancestor = loop {
        let up = parent(top).ok_or(Errno::ENOENT)?;
        match v.node(up) {
            Some(node) if caller.rights(&node.perms).write => break node.clone(),
            Some(_) => return Err(Errno::EACCES),
            None => {
                absent.push(up);
                top = up;
            }
        }
    };
    let new = u64::try_from(absent.len()).unwrap_or(u64::MAX);
    if !caller.privileged && v.owned_by(caller.domid).saturating_add(new) > u64::from(quotas.max_nodes) {
        return Err(Errno::ENOSPC);
    }
    v.check()?;
    // Invoke: link each new node into its parent, top down.
    let mut ancestor_path = parent(top).unwrap_or("/");
    for &name in absent.iter().rev() {
        let perms = if caller.privileged { ancestor.perms.clone() } else { ancestor.perms.with_owner(caller.domid) };
        ancestor.children.insert(String::from(base(name)));
        v.put(ancestor_path, ancestor);
        let value = if name == path { value.to_vec() } else { Vec::new() };
        ancestor = Node::new(value, perms);
        ancestor_path = name;
    }
    let perms = ancestor.perms.clone();
    v.put(path, ancestor);
    Ok(perms)
}

/// `XS_RM`: removes the node and everything under it. A node already
/// absent under an existing parent is fine, as with xenstored; `/` is
/// `EINVAL`.
pub(crate) fn rm(v: &mut dyn View, caller: Caller, path: &str, changes: &mut Vec<Change>) -> Result<(), Errno> {
    let perms = match with_node(v, caller, path, Need::Write, |n| n.perms.clone()) {
        Ok(perms) => perms,
        Err(Errno::ENOENT) => {
            let parent_exists = parent(path).is_some_and(|up| v.node(up).is_some());
            v.check()?;
            return if parent_exists { Ok(()) } else { Err(Errno::ENOENT) };
        }
        Err(e) => return Err(e),
    };
    let up = parent(path).ok_or(Errno::EINVAL)?;
    // Decode: the whole subtree, and the parent without this child.
    let mut doomed = Vec::new();
    let mut stack = alloc::vec![String::from(path)];
    while let Some(p) = stack.pop() {
        if let Some(node) = v.node(&p) {
            stack.extend(node.children.iter().map(|c| join(&p, c)));
        }
        doomed.push(p);
    }
    let mut parent_node = v.node(up).cloned().ok_or(Errno::ENOENT)?;
    v.check()?;
    // Invoke.
    parent_node.children.remove(base(path));
    v.put(up, parent_node);
    for p in &doomed {
        v.remove(p);
    }
    changes.push(Change { path: String::from(path), perms, recursive: true });
    Ok(())
}

/// `XS_SET_PERMS`: replaces the node's permissions. Only its owner (or
/// dom0) may; an unprivileged owner may not give the node away (`EPERM`).
pub(crate) fn set_perms(
    v: &mut dyn View,
    caller: Caller,
    quotas: &Quotas,
    path: &str,
    perms: Perms,
    changes: &mut Vec<Change>,
) -> Result<(), Errno> {
    if !caller.privileged && perms.entries().len() > quotas.max_perms {
        return Err(Errno::ENOSPC);
    }
    let mut node = with_node(v, caller, path, Need::Own, Node::clone)?;
    if !caller.privileged && perms.owner() != node.perms.owner() {
        return Err(Errno::EPERM);
    }
    v.check()?;
    let old = core::mem::replace(&mut node.perms, perms);
    v.put(path, node);
    // Those who could read it before hear of the change.
    changes.push(Change { path: String::from(path), perms: old, recursive: false });
    Ok(())
}
