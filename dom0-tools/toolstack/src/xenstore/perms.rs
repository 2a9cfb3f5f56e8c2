//! Node permissions, as xenstored keeps and checks them.
//!
//! A node's permissions are a list of `(domid, access)` entries. The first
//! names the node's owner, and its access is what every domain not listed
//! gets. The owner and privileged domains (dom0) may do anything; another
//! domain gets the access of its own entry, or the first entry's. On the
//! wire each entry is a letter (`n` none, `r` read, `w` write, `b` both)
//! and a decimal domid, nul-terminated: `n0\0r5\0`.

use alloc::vec::Vec;
use core::fmt;

use abi::errno::Errno;

use super::path::parse_domid;
use crate::builder::DomId;

/// What one permission entry allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `n`: nothing.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    /// The wire letter.
    pub const fn letter(self) -> char {
        match self {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        }
    }

    /// The access a wire letter stands for.
    pub const fn from_letter(letter: u8) -> Option<Access> {
        match letter {
            b'n' => Some(Access::None),
            b'r' => Some(Access::Read),
            b'w' => Some(Access::Write),
            b'b' => Some(Access::Both),
            _ => None,
        }
    }

    /// Whether it allows reading.
    pub const fn read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }

    /// Whether it allows writing.
    pub const fn write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

/// One permission entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    /// The domain it is about.
    pub domid: DomId,
    /// What that domain may do.
    pub access: Access,
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.access.letter(), self.domid)
    }
}

/// What a domain may do to one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rights {
    /// May read it.
    pub read: bool,
    /// May write it (and create under it, and remove it).
    pub write: bool,
    /// Owns it, or is privileged: may change its permissions.
    pub owner: bool,
}

/// A node's permission list: never empty, the owner first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Perms {
    /// The entries; `list[0]` is the owner and the default.
    list: Vec<Perm>,
}

impl Perms {
    /// `n<owner>`: `owner` may do anything, nobody else (but dom0) anything.
    pub fn owned_by(owner: DomId) -> Perms {
        Perms { list: alloc::vec![Perm { domid: owner, access: Access::None }] }
    }

    /// The list `entries`, or `None` if it is empty.
    pub fn new(entries: Vec<Perm>) -> Option<Perms> {
        if entries.is_empty() {
            None
        } else {
            Some(Perms { list: entries })
        }
    }

    /// The entries, the owner's first.
    pub fn entries(&self) -> &[Perm] {
        &self.list
    }

    /// The owning domain.
    pub fn owner(&self) -> DomId {
        self.list.first().map_or(0, |p| p.domid)
    }

    /// The same list with the owner entry's domain set to `owner` (what a
    /// node created by an unprivileged domain gets from its parent).
    pub fn with_owner(&self, owner: DomId) -> Perms {
        let mut list = self.list.clone();
        if let Some(first) = list.first_mut() {
            first.domid = owner;
        }
        Perms { list }
    }

    /// What `domid` may do (`privileged`: it is dom0).
    pub fn rights(&self, domid: DomId, privileged: bool) -> Rights {
        if privileged || self.owner() == domid {
            return Rights { read: true, write: true, owner: true };
        }
        let access = self
            .list
            .iter()
            .skip(1)
            .find(|p| p.domid == domid)
            .or(self.list.first())
            .map_or(Access::None, |p| p.access);
        Rights { read: access.read(), write: access.write(), owner: false }
    }

    /// Parses the nul-terminated entries of an `XS_SET_PERMS` request
    /// (`n0\0r5\0`). Anything else, or no entry, is `EINVAL`.
    pub fn parse(wire: &[u8]) -> Result<Perms, Errno> {
        let body = wire.strip_suffix(&[0]).ok_or(Errno::EINVAL)?;
        let mut list = Vec::new();
        for entry in body.split(|&b| b == 0) {
            let (&letter, domid) = entry.split_first().ok_or(Errno::EINVAL)?;
            let access = Access::from_letter(letter).ok_or(Errno::EINVAL)?;
            list.push(Perm { domid: parse_domid(domid)?, access });
        }
        Perms::new(list).ok_or(Errno::EINVAL)
    }

    /// The wire form: each entry nul-terminated.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.list {
            out.extend_from_slice(alloc::format!("{p}").as_bytes());
            out.push(0);
        }
        out
    }
}

impl fmt::Display for Perms {
    /// `n0,r5`, as `xenstore-ls -p` shows them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.list.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn the_first_entry_owns_and_is_the_default() {
        let p = Perms::parse(b"r1\0w2\0n3\0").unwrap();
        assert_eq!(p.owner(), 1);
        assert_eq!(p.rights(1, false), Rights { read: true, write: true, owner: true });
        assert_eq!(p.rights(2, false), Rights { read: false, write: true, owner: false });
        assert_eq!(p.rights(3, false), Rights { read: false, write: false, owner: false });
        assert_eq!(p.rights(4, false), Rights { read: true, write: false, owner: false }, "the default is r");
        assert_eq!(p.rights(4, true), Rights { read: true, write: true, owner: true }, "dom0 bypasses");
        assert_eq!(p.to_wire(), b"r1\0w2\0n3\0");
        assert_eq!(p.to_string(), "r1,w2,n3");
        assert_eq!(p.with_owner(7).to_string(), "r7,w2,n3");
    }

    #[test]
    fn malformed_lists_are_einval() {
        for bad in [&b""[..], b"\0", b"r1", b"x1\0", b"r\0", b"r1a\0", b"r70000\0", b"r1\0\0", b"r-1\0"] {
            assert_eq!(Perms::parse(bad), Err(Errno::EINVAL), "{bad:?}");
        }
        assert_eq!(Perms::parse(b"b65535\0").unwrap().to_string(), "b65535");
    }
}
