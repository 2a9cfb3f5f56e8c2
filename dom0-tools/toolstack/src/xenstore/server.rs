//! The daemon: connections, the request loop, watches, transactions and
//! the domains xenstore knows.
//!
//! [`Xenstored`] owns the store and one [`Connection`] per client. The
//! platform feeds each connection the bytes its client sent
//! ([`Xenstored::feed`], or [`super::ring::pump`] for a domain's ring) and
//! sends on what [`Xenstored::drain_output`] gives: replies, in request
//! order, and watch events, which any connection's request may queue on
//! any other.

use alloc::collections::btree_map::Entry;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use abi::errno::Errno;
use abi::xenstore::*;

use super::ops::{self, Caller, Change};
use super::path::{self, domain_path, is_at_or_under, parse_decimal, parse_domid, Resolved};
use super::path::{INTRODUCE_DOMAIN, RELEASE_DOMAIN};
use super::perms::Perms;
use super::quota::Quotas;
use super::store::{Store, View};
use super::transaction::Transaction;
use super::wire::{args, decode_header, encode, error_payload, first_arg, one_arg, HEADER_LEN};
use crate::builder::DomId;

/// The payload of a plain success reply.
const OK: &[u8] = b"OK\0";

/// A connection's handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(u32);

/// Why a connection stopped: it is dead until reset (ring reconnection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnError {
    /// There is no such connection.
    NoSuchConnection,
    /// A header announced a payload over [`XENSTORE_PAYLOAD_MAX`].
    Protocol,
    /// The ring's indices were inconsistent.
    RingIndex,
}

impl ConnError {
    /// The `XENSTORE_ERROR_*` a ring page shows for it.
    pub const fn ring_error(self) -> u32 {
        match self {
            ConnError::NoSuchConnection => XENSTORE_ERROR_COMM,
            ConnError::Protocol => XENSTORE_ERROR_PROTO,
            ConnError::RingIndex => XENSTORE_ERROR_RINGIDX,
        }
    }
}

/// Where an introduced domain's ring is (as `XS_INTRODUCE` gave it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingInfo {
    /// The guest frame of its `xenstore_domain_interface` page.
    pub gfn: u64,
    /// Its event channel port (in the domain).
    pub port: u32,
}

/// One watch of one connection.
#[derive(Clone, Debug)]
struct Watch {
    /// The watched name, as resolved, and how to give names back.
    path: Resolved,
    /// The client's token, echoed in each event.
    token: Vec<u8>,
}

/// One client: a domain's ring, or a local client of dom0.
#[derive(Debug)]
pub struct Connection {
    /// The client's domain.
    domid: DomId,
    /// The introduced domain's ring, if this is one.
    ring: Option<RingInfo>,
    /// The message being received: at most a header and a payload.
    input: Vec<u8>,
    /// Bytes for the client.
    output: VecDeque<u8>,
    /// Its watches.
    watches: Vec<Watch>,
    /// Its open transactions, by id.
    transactions: BTreeMap<u32, Transaction>,
    /// The last transaction id handed out.
    last_tx: u32,
    /// Why it stopped, if it did.
    error: Option<ConnError>,
    /// Watch events dropped because its output was full.
    dropped_events: u64,
}

impl Connection {
    /// A fresh connection.
    fn new(domid: DomId, ring: Option<RingInfo>) -> Connection {
        Connection {
            domid,
            ring,
            input: Vec::new(),
            output: VecDeque::new(),
            watches: Vec::new(),
            transactions: BTreeMap::new(),
            last_tx: 0,
            error: None,
            dropped_events: 0,
        }
    }

    /// Forgets everything in flight: input, output, watches, transactions.
    fn clear(&mut self) {
        self.input = Vec::new();
        self.output = VecDeque::new();
        self.watches = Vec::new();
        self.transactions = BTreeMap::new();
    }

    /// The client's domain.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// Who its requests come from.
    fn caller(&self) -> Caller {
        Caller::of(self.domid)
    }

    /// The ring of an introduced domain.
    pub fn ring(&self) -> Option<RingInfo> {
        self.ring
    }

    /// Why the connection stopped, if it did.
    pub fn error(&self) -> Option<ConnError> {
        self.error
    }

    /// Bytes waiting to go to the client.
    pub fn pending_output(&self) -> usize {
        self.output.len()
    }

    /// Watches registered.
    pub fn watch_count(&self) -> usize {
        self.watches.len()
    }

    /// Transactions open.
    pub fn transaction_count(&self) -> usize {
        self.transactions.len()
    }

    /// Watch events dropped because the client did not read its output.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// Queues a watch event, or drops it if the output is over `max` or
    /// the event would not fit a message (a long name under a watch with a
    /// long token).
    fn event(&mut self, max: usize, name: &str, token: &[u8]) {
        let len = name.len().saturating_add(token.len()).saturating_add(2);
        if self.output.len() >= max || len > XENSTORE_PAYLOAD_MAX as usize {
            self.dropped_events = self.dropped_events.saturating_add(1);
            return;
        }
        let mut payload = Vec::with_capacity(len);
        payload.extend_from_slice(name.as_bytes());
        payload.push(0);
        payload.extend_from_slice(token);
        payload.push(0);
        self.output.extend(encode(XS_WATCH_EVENT, 0, 0, &payload));
    }
}

/// What a request does besides its reply, done after the reply is queued.
#[derive(Debug, Default)]
struct Effects {
    /// Changes whose watches fire.
    changes: Vec<Change>,
    /// Special watches that fire.
    specials: Vec<&'static str>,
    /// The first event of a new watch: its name as given, and its token.
    initial: Option<(String, Vec<u8>)>,
}

/// The xenstore daemon's state (see the [module docs](crate::xenstore)).
#[derive(Debug)]
pub struct Xenstored {
    /// The committed tree.
    store: Store,
    /// The limits.
    quotas: Quotas,
    /// Every connection.
    conns: BTreeMap<ConnId, Connection>,
    /// The last connection id handed out.
    last_conn: u32,
    /// Introduced domains and their ring connection.
    introduced: BTreeMap<DomId, ConnId>,
    /// Who hears `@introduceDomain` (besides dom0).
    introduce_perms: Perms,
    /// Who hears `@releaseDomain` (besides dom0).
    release_perms: Perms,
}

impl Default for Xenstored {
    fn default() -> Self {
        Xenstored::new()
    }
}

impl Xenstored {
    /// A daemon with an empty store, no connections and default quotas.
    pub fn new() -> Xenstored {
        Xenstored::with_quotas(Quotas::DEFAULT)
    }

    /// A daemon with the given quotas.
    pub fn with_quotas(quotas: Quotas) -> Xenstored {
        Xenstored {
            store: Store::new(),
            quotas,
            conns: BTreeMap::new(),
            last_conn: 0,
            introduced: BTreeMap::new(),
            introduce_perms: Perms::owned_by(0),
            release_perms: Perms::owned_by(0),
        }
    }

    /// The committed tree.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The limits.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// The connection `id`.
    pub fn connection(&self, id: ConnId) -> Option<&Connection> {
        self.conns.get(&id)
    }

    /// The ring connection of introduced domain `domid`.
    pub fn domain_connection(&self, domid: DomId) -> Option<ConnId> {
        self.introduced.get(&domid).copied()
    }

    /// Connections with output waiting, to be pumped.
    pub fn connections_with_output(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.conns.iter().filter(|(_, c)| !c.output.is_empty()).map(|(&id, _)| id)
    }

    /// Opens a local connection for `domid` (privileged if 0), not tied to
    /// a ring: how dom0's own clients talk to the daemon.
    pub fn connect(&mut self, domid: DomId) -> ConnId {
        self.add_connection(Connection::new(domid, None))
    }

    /// Closes connection `id`, with its watches and transactions.
    pub fn disconnect(&mut self, id: ConnId) {
        self.conns.remove(&id);
        self.introduced.retain(|_, c| *c != id);
    }

    /// Adds `conn` under a fresh id.
    fn add_connection(&mut self, conn: Connection) -> ConnId {
        loop {
            self.last_conn = self.last_conn.wrapping_add(1);
            let id = ConnId(self.last_conn);
            if let Entry::Vacant(slot) = self.conns.entry(id) {
                slot.insert(conn);
                return id;
            }
        }
    }

    /// Introduces domain `domid`, whose ring page is guest frame `gfn` and
    /// event channel `port`: gives it a connection and fires
    /// `@introduceDomain`. Introducing it again with the same ring returns
    /// the same connection; with another, `EEXIST`.
    pub fn introduce(&mut self, domid: DomId, gfn: u64, port: u32) -> Result<ConnId, Errno> {
        let (id, new) = self.introduce_quietly(domid, RingInfo { gfn, port })?;
        if new {
            self.fire_special(INTRODUCE_DOMAIN);
        }
        Ok(id)
    }

    /// [`Xenstored::introduce`] without the event; whether it is new.
    fn introduce_quietly(&mut self, domid: DomId, ring: RingInfo) -> Result<(ConnId, bool), Errno> {
        if let Some(&id) = self.introduced.get(&domid) {
            let same = self.conns.get(&id).and_then(|c| c.ring) == Some(ring);
            return if same { Ok((id, false)) } else { Err(Errno::EEXIST) };
        }
        let id = self.add_connection(Connection::new(domid, Some(ring)));
        self.introduced.insert(domid, id);
        Ok((id, true))
    }

    /// Releases domain `domid`: closes its connection (watches and
    /// transactions go) and fires `@releaseDomain`. Its nodes stay; the
    /// toolstack removes them. Dom0 cannot be released (`EINVAL`), a domain
    /// not introduced is `ENOENT`.
    pub fn release(&mut self, domid: DomId) -> Result<(), Errno> {
        self.release_quietly(domid)?;
        self.fire_special(RELEASE_DOMAIN);
        Ok(())
    }

    /// [`Xenstored::release`] without the event.
    fn release_quietly(&mut self, domid: DomId) -> Result<(), Errno> {
        if domid == 0 {
            return Err(Errno::EINVAL);
        }
        let id = self.introduced.remove(&domid).ok_or(Errno::ENOENT)?;
        self.conns.remove(&id);
        Ok(())
    }

    /// Resets connection `id` to a fresh one (the ring reconnection
    /// protocol): input, output, watches, transactions and error go.
    pub fn reset(&mut self, id: ConnId) -> Result<(), ConnError> {
        let conn = self.conns.get_mut(&id).ok_or(ConnError::NoSuchConnection)?;
        conn.clear();
        conn.error = None;
        Ok(())
    }

    /// Stops connection `id` for `error`, discarding what was in flight.
    pub fn fail(&mut self, id: ConnId, error: ConnError) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.clear();
            conn.error = Some(error);
        }
    }

    /// Takes bytes the client of `id` sent and answers every whole request
    /// among them. Returns how many bytes it took: fewer than offered while
    /// the connection's output is over [`Quotas::output_high_water`] (the
    /// rest stays with the caller, for later). A header announcing a
    /// payload over [`XENSTORE_PAYLOAD_MAX`] stops the connection
    /// ([`ConnError::Protocol`]).
    pub fn feed(&mut self, id: ConnId, bytes: &[u8]) -> Result<usize, ConnError> {
        let mut used = 0;
        loop {
            let high_water = self.quotas.output_high_water;
            let conn = self.conns.get_mut(&id).ok_or(ConnError::NoSuchConnection)?;
            if let Some(e) = conn.error {
                return Err(e);
            }
            let rest = bytes.get(used..).unwrap_or_default();
            if rest.is_empty() || conn.output.len() >= high_water {
                return Ok(used);
            }
            let want = match decode_header(&conn.input) {
                None => HEADER_LEN.saturating_sub(conn.input.len()),
                Some(h) => (HEADER_LEN + h.len as usize).saturating_sub(conn.input.len()),
            };
            let take = want.min(rest.len());
            if take == 0 {
                return Ok(used);
            }
            conn.input.extend_from_slice(rest.get(..take).unwrap_or_default());
            used += take;
            let Some(h) = decode_header(&conn.input) else { continue };
            if h.len > XENSTORE_PAYLOAD_MAX {
                self.fail(id, ConnError::Protocol);
                return Err(ConnError::Protocol);
            }
            if conn.input.len() == HEADER_LEN + h.len as usize {
                let msg = core::mem::take(&mut conn.input);
                self.dispatch(id, &msg);
            }
        }
    }

    /// Moves up to `buf.len()` bytes of output for `id` into `buf`; returns
    /// how many.
    pub fn drain_output(&mut self, id: ConnId, buf: &mut [u8]) -> usize {
        let Some(conn) = self.conns.get_mut(&id) else { return 0 };
        let n = buf.len().min(conn.output.len());
        for (slot, byte) in buf.iter_mut().zip(conn.output.drain(..n)) {
            *slot = byte;
        }
        n
    }

    /// Bytes of output waiting for `id`.
    pub fn pending_output(&self, id: ConnId) -> usize {
        self.conns.get(&id).map_or(0, |c| c.output.len())
    }

    /// Answers one whole message and does what it set off.
    fn dispatch(&mut self, id: ConnId, msg: &[u8]) {
        let Some(hdr) = decode_header(msg) else { return };
        let payload = msg.get(HEADER_LEN..).unwrap_or_default();
        let mut fx = Effects::default();
        let (type_, body) = match self.handle(id, &hdr, payload, &mut fx) {
            Ok(body) if body.len() <= XENSTORE_PAYLOAD_MAX as usize => (hdr.type_, body),
            Ok(_) => (XS_ERROR, error_payload(Errno::E2BIG)),
            Err(e) => (XS_ERROR, error_payload(e)),
        };
        let max_output = self.quotas.max_output;
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.output.extend(encode(type_, hdr.req_id, hdr.tx_id, &body));
            if let Some((name, token)) = fx.initial {
                conn.event(max_output, &name, &token);
            }
        }
        self.fire(&fx.changes);
        for special in fx.specials {
            self.fire_special(special);
        }
    }

    /// The reply to one request (its payload), or its error.
    fn handle(&mut self, id: ConnId, hdr: &XsdSockmsg, payload: &[u8], fx: &mut Effects) -> Result<Vec<u8>, Errno> {
        let conn = self.conns.get(&id).ok_or(Errno::EINVAL)?;
        let who = conn.caller();
        let quotas = self.quotas;
        let tx = hdr.tx_id;
        match hdr.type_ {
            XS_READ => {
                let p = path::resolve(who.domid, one_arg(payload)?, false)?;
                self.in_view(id, tx, fx, |v, _| ops::read(v, who, &p.path))
            }
            XS_WRITE => {
                let (name, value) = first_arg(payload)?;
                let p = path::resolve(who.domid, name, false)?;
                self.in_view(id, tx, fx, |v, ch| ops::write(v, who, &quotas, &p.path, value, ch))?;
                Ok(OK.to_vec())
            }
            XS_MKDIR => {
                let p = path::resolve(who.domid, one_arg(payload)?, false)?;
                self.in_view(id, tx, fx, |v, ch| ops::mkdir(v, who, &quotas, &p.path, ch))?;
                Ok(OK.to_vec())
            }
            XS_RM => {
                let p = path::resolve(who.domid, one_arg(payload)?, false)?;
                self.in_view(id, tx, fx, |v, ch| ops::rm(v, who, &p.path, ch))?;
                Ok(OK.to_vec())
            }
            XS_DIRECTORY => {
                let p = path::resolve(who.domid, one_arg(payload)?, false)?;
                self.in_view(id, tx, fx, |v, _| ops::directory(v, who, &p.path))
            }
            XS_DIRECTORY_PART => {
                let [name, offset] = args::<2>(payload)?;
                let p = path::resolve(who.domid, name, false)?;
                let offset = parse_decimal(offset).ok_or(Errno::EINVAL)?;
                self.in_view(id, tx, fx, |v, _| ops::directory_part(v, who, &p.path, offset))
            }
            XS_GET_PERMS => {
                let p = path::resolve(who.domid, one_arg(payload)?, true)?;
                if let Some(perms) = self.special_perms(&p.path) {
                    let readable = who.rights(perms).read;
                    return if readable { Ok(perms.to_wire()) } else { Err(Errno::EACCES) };
                }
                self.in_view(id, tx, fx, |v, _| ops::get_perms(v, who, &p.path)).map(|perms| perms.to_wire())
            }
            XS_SET_PERMS => {
                let (name, perms) = first_arg(payload)?;
                let perms = Perms::parse(perms)?;
                let p = path::resolve(who.domid, name, true)?;
                if p.path.starts_with('@') {
                    self.set_special_perms(who, &p.path, perms)?;
                } else {
                    self.in_view(id, tx, fx, |v, ch| ops::set_perms(v, who, &quotas, &p.path, perms, ch))?;
                }
                Ok(OK.to_vec())
            }
            XS_WATCH => self.watch(id, who, payload, fx),
            XS_UNWATCH => self.unwatch(id, who, payload),
            XS_RESET_WATCHES => {
                let conn = self.conns.get_mut(&id).ok_or(Errno::EINVAL)?;
                conn.watches = Vec::new();
                conn.transactions = BTreeMap::new();
                Ok(OK.to_vec())
            }
            XS_TRANSACTION_START => self.transaction_start(id, tx),
            XS_TRANSACTION_END => self.transaction_end(id, who, tx, payload, fx),
            XS_GET_DOMAIN_PATH => {
                let domid = parse_domid(one_arg(payload)?)?;
                Ok(format!("{}\0", domain_path(domid)).into_bytes())
            }
            XS_INTRODUCE => {
                privileged(who)?;
                // `<domid>|<gfn>|<evtchn>|?`: anything after is ignored.
                if payload.iter().filter(|&&b| b == 0).count() < 3 {
                    return Err(Errno::EINVAL);
                }
                let mut parts = payload.split(|&b| b == 0);
                let mut next = || parts.next().unwrap_or_default();
                let domid = parse_domid(next())?;
                let gfn = parse_decimal(next()).ok_or(Errno::EINVAL)?;
                let port = parse_decimal(next()).and_then(|p| u32::try_from(p).ok()).ok_or(Errno::EINVAL)?;
                if self.introduce_quietly(domid, RingInfo { gfn, port })?.1 {
                    fx.specials.push(INTRODUCE_DOMAIN);
                }
                Ok(OK.to_vec())
            }
            XS_RELEASE => {
                privileged(who)?;
                self.release_quietly(parse_domid(one_arg(payload)?)?)?;
                fx.specials.push(RELEASE_DOMAIN);
                Ok(OK.to_vec())
            }
            XS_IS_DOMAIN_INTRODUCED => {
                privileged(who)?;
                let domid = parse_domid(one_arg(payload)?)?;
                let known = domid == 0 || self.introduced.contains_key(&domid);
                Ok(if known { b"T\0".to_vec() } else { b"F\0".to_vec() })
            }
            XS_RESUME => {
                privileged(who)?;
                let domid = parse_domid(one_arg(payload)?)?;
                if self.introduced.contains_key(&domid) {
                    Ok(OK.to_vec())
                } else {
                    Err(Errno::ENOENT)
                }
            }
            XS_CONTROL | XS_SET_TARGET => Err(Errno::ENOSYS),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Runs `f` on the store (transaction 0) or on transaction `tx` of
    /// `id` (`ENOENT` if it has none such). Changes on the store fire after
    /// the reply; a transaction's wait for its commit.
    fn in_view<T>(
        &mut self,
        id: ConnId,
        tx: u32,
        fx: &mut Effects,
        f: impl FnOnce(&mut dyn View, &mut Vec<Change>) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        let mut changes = Vec::new();
        if tx == 0 {
            let result = f(&mut self.store, &mut changes);
            fx.changes.extend(changes);
            return result;
        }
        let t = self.conns.get_mut(&id).and_then(|c| c.transactions.get_mut(&tx)).ok_or(Errno::ENOENT)?;
        let result = f(&mut t.view(&self.store, &self.quotas), &mut changes);
        t.defer(changes);
        result
    }

    /// `XS_WATCH`: `<path>\0<token>\0`.
    fn watch(&mut self, id: ConnId, who: Caller, payload: &[u8], fx: &mut Effects) -> Result<Vec<u8>, Errno> {
        let [name, token] = args::<2>(payload)?;
        let path = path::resolve(who.domid, name, true)?;
        let max = self.quotas.max_watches;
        let conn = self.conns.get_mut(&id).ok_or(Errno::EINVAL)?;
        if conn.watches.iter().any(|w| w.path.path == path.path && w.token == token) {
            return Err(Errno::EEXIST);
        }
        if conn.watches.len() >= max {
            return Err(Errno::E2BIG);
        }
        fx.initial = Some((String::from(path.client_form(&path.path)), token.to_vec()));
        conn.watches.push(Watch { path, token: token.to_vec() });
        Ok(OK.to_vec())
    }

    /// `XS_UNWATCH`: `<path>\0<token>\0`.
    fn unwatch(&mut self, id: ConnId, who: Caller, payload: &[u8]) -> Result<Vec<u8>, Errno> {
        let [name, token] = args::<2>(payload)?;
        let path = path::resolve(who.domid, name, true)?;
        let conn = self.conns.get_mut(&id).ok_or(Errno::EINVAL)?;
        let i = conn.watches.iter().position(|w| w.path.path == path.path && w.token == token).ok_or(Errno::ENOENT)?;
        conn.watches.remove(i);
        Ok(OK.to_vec())
    }

    /// `XS_TRANSACTION_START`: replies the new id, in decimal.
    fn transaction_start(&mut self, id: ConnId, tx: u32) -> Result<Vec<u8>, Errno> {
        if tx != 0 {
            return Err(Errno::EBUSY);
        }
        let max = self.quotas.max_transactions;
        let conn = self.conns.get_mut(&id).ok_or(Errno::EINVAL)?;
        if conn.transactions.len() >= max {
            return Err(Errno::ENOSPC);
        }
        let tx = loop {
            conn.last_tx = conn.last_tx.wrapping_add(1);
            if conn.last_tx != 0 && !conn.transactions.contains_key(&conn.last_tx) {
                break conn.last_tx;
            }
        };
        conn.transactions.insert(tx, Transaction::default());
        Ok(format!("{tx}\0").into_bytes())
    }

    /// `XS_TRANSACTION_END`: `T\0` commits, `F\0` aborts. The transaction
    /// ends either way.
    fn transaction_end(
        &mut self,
        id: ConnId,
        who: Caller,
        tx: u32,
        payload: &[u8],
        fx: &mut Effects,
    ) -> Result<Vec<u8>, Errno> {
        let commit = match one_arg(payload)? {
            b"T" => true,
            b"F" => false,
            _ => return Err(Errno::EINVAL),
        };
        let conn = self.conns.get_mut(&id).ok_or(Errno::EINVAL)?;
        let t = conn.transactions.remove(&tx).ok_or(Errno::ENOENT)?;
        if commit {
            let quota = (!who.privileged).then_some(self.quotas.max_nodes);
            fx.changes.extend(t.commit(&mut self.store, quota)?);
        }
        Ok(OK.to_vec())
    }

    /// The permissions of special node `name`, if it is one.
    fn special_perms(&self, name: &str) -> Option<&Perms> {
        match name {
            INTRODUCE_DOMAIN => Some(&self.introduce_perms),
            RELEASE_DOMAIN => Some(&self.release_perms),
            _ => None,
        }
    }

    /// `XS_SET_PERMS` on a special node: who hears its events.
    fn set_special_perms(&mut self, who: Caller, name: &str, perms: Perms) -> Result<(), Errno> {
        let slot = match name {
            INTRODUCE_DOMAIN => &mut self.introduce_perms,
            RELEASE_DOMAIN => &mut self.release_perms,
            _ => return Err(Errno::ENOENT),
        };
        let rights = who.rights(slot);
        if !(rights.write && rights.owner) {
            return Err(Errno::EACCES);
        }
        if !who.privileged && perms.owner() != slot.owner() {
            return Err(Errno::EPERM);
        }
        *slot = perms;
        Ok(())
    }

    /// Queues the watch events of `changes` on every connection that may
    /// read the changed node.
    fn fire(&mut self, changes: &[Change]) {
        let max = self.quotas.max_output;
        for change in changes {
            for conn in self.conns.values_mut() {
                if conn.error.is_some() || !conn.caller().rights(&change.perms).read {
                    continue;
                }
                let mut events = Vec::new();
                for w in &conn.watches {
                    let name = if is_at_or_under(&change.path, &w.path.path) {
                        &change.path
                    } else if change.recursive && is_at_or_under(&w.path.path, &change.path) {
                        &w.path.path
                    } else {
                        continue;
                    };
                    events.push((String::from(w.path.client_form(name)), w.token.clone()));
                }
                for (name, token) in events {
                    conn.event(max, &name, &token);
                }
            }
        }
    }

    /// Queues the events of the watches on special node `name` on every
    /// connection allowed to hear it.
    fn fire_special(&mut self, name: &'static str) {
        let max = self.quotas.max_output;
        let Some(perms) = self.special_perms(name).cloned() else { return };
        for conn in self.conns.values_mut() {
            if conn.error.is_some() || !conn.caller().rights(&perms).read {
                continue;
            }
            let tokens: Vec<Vec<u8>> =
                conn.watches.iter().filter(|w| w.path.path == name).map(|w| w.token.clone()).collect();
            for token in tokens {
                conn.event(max, name, &token);
            }
        }
    }

    // The toolstack's own access, as domain `domid` (dom0: privileged),
    // outside any transaction. Names resolve as the domain's would; changes
    // fire watches at once.

    /// Reads `path` as `domid`.
    pub fn read(&mut self, domid: DomId, path: &str) -> Result<Vec<u8>, Errno> {
        let p = path::resolve(domid, path.as_bytes(), false)?;
        ops::read(&mut self.store, Caller::of(domid), &p.path)
    }

    /// Writes `value` at `path` as `domid`, creating it if need be.
    pub fn write(&mut self, domid: DomId, path: &str, value: &[u8]) -> Result<(), Errno> {
        let p = path::resolve(domid, path.as_bytes(), false)?;
        let mut changes = Vec::new();
        ops::write(&mut self.store, Caller::of(domid), &self.quotas, &p.path, value, &mut changes)?;
        self.fire(&changes);
        Ok(())
    }

    /// Creates `path` as `domid` if it is not there.
    pub fn mkdir(&mut self, domid: DomId, path: &str) -> Result<(), Errno> {
        let p = path::resolve(domid, path.as_bytes(), false)?;
        let mut changes = Vec::new();
        ops::mkdir(&mut self.store, Caller::of(domid), &self.quotas, &p.path, &mut changes)?;
        self.fire(&changes);
        Ok(())
    }

    /// Removes `path` and everything under it as `domid`.
    pub fn rm(&mut self, domid: DomId, path: &str) -> Result<(), Errno> {
        let p = path::resolve(domid, path.as_bytes(), false)?;
        let mut changes = Vec::new();
        ops::rm(&mut self.store, Caller::of(domid), &p.path, &mut changes)?;
        self.fire(&changes);
        Ok(())
    }

    /// The names of the children of `path`, as `domid` may see them.
    pub fn directory(&mut self, domid: DomId, path: &str) -> Result<Vec<String>, Errno> {
        let p = path::resolve(domid, path.as_bytes(), false)?;
        ops::children(&mut self.store, Caller::of(domid), &p.path)
    }

    /// The permissions of `path`, as `domid` may see them.
    pub fn get_perms(&mut self, domid: DomId, path: &str) -> Result<Perms, Errno> {
        let p = path::resolve(domid, path.as_bytes(), false)?;
        ops::get_perms(&mut self.store, Caller::of(domid), &p.path)
    }

    /// Sets the permissions of `path` as `domid`.
    pub fn set_perms(&mut self, domid: DomId, path: &str, perms: Perms) -> Result<(), Errno> {
        let p = path::resolve(domid, path.as_bytes(), false)?;
        let mut changes = Vec::new();
        ops::set_perms(&mut self.store, Caller::of(domid), &self.quotas, &p.path, perms, &mut changes)?;
        self.fire(&changes);
        Ok(())
    }
}

/// `EACCES` unless `who` is privileged.
fn privileged(who: Caller) -> Result<(), Errno> {
    if who.privileged {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}
