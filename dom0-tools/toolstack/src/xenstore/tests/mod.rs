//! Host tests of the xenstore daemon, through its wire protocol.
//!
//! Each file is one area of Xen's `docs/misc/xenstore.txt` and
//! `xenstore-ring.txt`: the node operations and their permissions, watches,
//! transactions, framing and quotas, the ring, and a randomized run.

mod framing;
mod fuzz;
mod ops;
mod ring;
mod transactions;
mod watches;

use std::collections::BTreeMap;
use std::string::{String, ToString};
use std::vec::Vec;

use abi::errno::Errno;
use abi::xenstore::*;

use super::path::{base, parent};
use super::*;

/// `s` and a nul.
fn z(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// Each of `parts` nul-terminated.
fn zz(parts: &[&str]) -> Vec<u8> {
    parts.iter().flat_map(|p| z(p)).collect()
}

/// A watch event: the path and the token.
type Event = (String, String);

/// A daemon and what its clients have been sent.
struct H {
    xs: Xenstored,
    /// Watch events received, by connection, not yet looked at.
    events: BTreeMap<ConnId, Vec<Event>>,
    /// The last request id used.
    req: u32,
}

impl H {
    fn new() -> H {
        H::with(Quotas::DEFAULT)
    }

    fn with(quotas: Quotas) -> H {
        H { xs: Xenstored::with_quotas(quotas), events: BTreeMap::new(), req: 100 }
    }

    /// A local dom0 connection.
    fn dom0(&mut self) -> ConnId {
        self.xs.connect(0)
    }

    /// Domain `domid`, with its standard entries, introduced.
    fn domu(&mut self, domid: u16) -> ConnId {
        create_domain_entries(&mut self.xs, domid, &format!("d{domid}")).unwrap();
        self.xs.introduce(domid, 0x1000 + u64::from(domid), 1).unwrap()
    }

    /// All output waiting for `id`.
    fn drain(&mut self, id: ConnId) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 777];
        loop {
            let n = self.xs.drain_output(id, &mut buf);
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// Splits `out` into messages, keeping watch events; returns the rest.
    fn sort(&mut self, id: ConnId, out: &[u8]) -> Vec<(XsdSockmsg, Vec<u8>)> {
        let mut rest = Vec::new();
        for (h, p) in MessageReader::new().push(out).unwrap() {
            if h.type_ == XS_WATCH_EVENT {
                assert_eq!((h.req_id, h.tx_id), (0, 0), "events are not linked to requests");
                let parts: Vec<&[u8]> = p.split(|&b| b == 0).collect();
                assert_eq!(parts.len(), 3, "path\\0token\\0: {p:?}");
                assert_eq!(parts[2], b"");
                let s = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
                self.events.entry(id).or_default().push((s(parts[0]), s(parts[1])));
            } else {
                rest.push((h, p));
            }
        }
        rest
    }

    /// Sends one request in transaction `tx` and returns its reply payload
    /// or error.
    fn raw(&mut self, id: ConnId, type_: u32, tx: u32, payload: &[u8]) -> Result<Vec<u8>, Errno> {
        self.req += 1;
        let msg = encode(type_, self.req, tx, payload);
        assert_eq!(self.xs.feed(id, &msg), Ok(msg.len()));
        let out = self.drain(id);
        let replies = self.sort(id, &out);
        assert_eq!(replies.len(), 1, "one reply per request: {replies:?}");
        let (h, p) = replies.into_iter().next().unwrap();
        assert_eq!((h.req_id, h.tx_id), (self.req, tx), "the header is echoed");
        assert!(p.len() <= XENSTORE_PAYLOAD_MAX as usize);
        if h.type_ == XS_ERROR {
            Err(parse_error(&p).unwrap_or_else(|| panic!("not an xsd_errors name: {p:?}")))
        } else {
            assert_eq!(h.type_, type_);
            Ok(p)
        }
    }

    fn call(&mut self, id: ConnId, type_: u32, payload: &[u8]) -> Result<Vec<u8>, Errno> {
        self.raw(id, type_, 0, payload)
    }

    fn read(&mut self, id: ConnId, path: &str) -> Result<String, Errno> {
        self.call(id, XS_READ, &z(path)).map(|v| String::from_utf8(v).unwrap())
    }

    fn write(&mut self, id: ConnId, path: &str, value: &str) -> Result<(), Errno> {
        let mut p = z(path);
        p.extend_from_slice(value.as_bytes());
        self.call(id, XS_WRITE, &p).map(|r| assert_eq!(r, b"OK\0"))
    }

    fn perms(&mut self, id: ConnId, path: &str) -> Result<String, Errno> {
        let p = self.call(id, XS_GET_PERMS, &z(path))?;
        assert_eq!(p.last(), Some(&0));
        Ok(String::from_utf8(p[..p.len() - 1].to_vec()).unwrap().replace('\0', ","))
    }

    fn set_perms(&mut self, id: ConnId, path: &str, perms: &[&str]) -> Result<(), Errno> {
        let mut p = z(path);
        p.extend(zz(perms));
        self.call(id, XS_SET_PERMS, &p).map(|r| assert_eq!(r, b"OK\0"))
    }

    fn dir(&mut self, id: ConnId, path: &str) -> Result<Vec<String>, Errno> {
        let p = self.call(id, XS_DIRECTORY, &z(path))?;
        if p.is_empty() {
            return Ok(Vec::new());
        }
        assert_eq!(p.last(), Some(&0));
        Ok(p[..p.len() - 1].split(|&b| b == 0).map(|s| String::from_utf8(s.to_vec()).unwrap()).collect())
    }

    fn watch(&mut self, id: ConnId, path: &str, token: &str) -> Result<(), Errno> {
        self.call(id, XS_WATCH, &zz(&[path, token])).map(|r| assert_eq!(r, b"OK\0"))
    }

    /// The watch events `id` has received since last asked.
    fn events(&mut self, id: ConnId) -> Vec<Event> {
        let out = self.drain(id);
        let rest = self.sort(id, &out);
        assert!(rest.is_empty(), "only events were waiting: {rest:?}");
        self.events.remove(&id).unwrap_or_default()
    }

    fn tx_start(&mut self, id: ConnId) -> u32 {
        let r = self.call(id, XS_TRANSACTION_START, b"\0").unwrap();
        assert_eq!(r.last(), Some(&0));
        std::str::from_utf8(&r[..r.len() - 1]).unwrap().parse().unwrap()
    }

    fn tx_end(&mut self, id: ConnId, tx: u32, commit: bool) -> Result<(), Errno> {
        self.raw(id, XS_TRANSACTION_END, tx, if commit { b"T\0" } else { b"F\0" }).map(|r| assert_eq!(r, b"OK\0"))
    }
}

/// Events as `(path, token)` string pairs, for comparisons.
fn ev(list: &[(&str, &str)]) -> Vec<Event> {
    list.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect()
}

/// The store's invariants: every node's parent lists it, every listed
/// child exists, and the per-owner counts are right.
fn check_store(store: &Store) {
    let mut owners: BTreeMap<u16, u32> = BTreeMap::new();
    for (p, node) in store.iter() {
        *owners.entry(node.perms().owner()).or_default() += 1;
        if let Some(up) = parent(p) {
            let up_node = store.get(up).unwrap_or_else(|| panic!("{p}: no parent"));
            assert!(up_node.children().any(|c| c == base(p)), "{up} does not list {p}");
        } else {
            assert_eq!(p, "/");
        }
        for c in node.children() {
            let child = path::join(p, c);
            assert!(store.get(&child).is_some(), "{p} lists missing {c}");
        }
    }
    for (&owner, &n) in &owners {
        assert_eq!(store.owned_by(owner), n, "nodes owned by {owner}");
    }
    assert!(store.get("/").is_some());
}
