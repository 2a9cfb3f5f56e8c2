//! Transactions: a private view of the store, committed atomically if
//! nothing it read or wrote changed meanwhile.
//!
//! A transaction keeps the nodes it wrote or removed (its overlay) and the
//! generation of every node it looked at, present or absent, the first
//! time it looked. Commit succeeds only if each of those is still the same
//! in the store, so committed transactions are serialisable; otherwise the
//! client gets `EAGAIN` and retries, as with xenstored.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use abi::errno::Errno;

use super::ops::Change;
use super::quota::Quotas;
use super::store::{Node, Store, View};
use crate::builder::DomId;

/// One open transaction.
#[derive(Clone, Debug, Default)]
pub(crate) struct Transaction {
    /// Nodes written (`Some`) or removed (`None`) by the transaction.
    overlay: BTreeMap<String, Option<Node>>,
    /// The store generation of each node looked at, `None` if absent.
    seen: BTreeMap<String, Option<u64>>,
    /// Change in nodes owned, by owner.
    delta: BTreeMap<DomId, i64>,
    /// Watch events to fire on commit, by path.
    changes: BTreeMap<String, Change>,
    /// The size of the overlay ([`size`]).
    bytes: usize,
}

/// What a node at `path` costs to hold: its path, value and child names.
fn size(path: &str, node: Option<&Node>) -> usize {
    let held = node.map_or(0, |n| n.value.len() + n.children.iter().map(String::len).sum::<usize>());
    path.len().saturating_add(held)
}

impl Transaction {
    /// Records `changes` to fire if the transaction commits.
    pub fn defer(&mut self, changes: Vec<Change>) {
        for c in changes {
            match self.changes.get_mut(&c.path) {
                Some(old) => old.recursive |= c.recursive,
                None => {
                    self.changes.insert(c.path.clone(), c);
                }
            }
        }
    }

    /// Applies the transaction to `store` if nothing it looked at changed
    /// (else `EAGAIN`) and, when `quota` is `Some(max_nodes)`, no owner ends
    /// up with more than `max_nodes` nodes it did not have before (else
    /// `ENOSPC`). Returns the watch events to fire.
    pub fn commit(self, store: &mut Store, quota: Option<u32>) -> Result<Vec<Change>, Errno> {
        for (path, generation) in &self.seen {
            if store.get(path).map(Node::generation) != *generation {
                return Err(Errno::EAGAIN);
            }
        }
        if let Some(max) = quota {
            for (&owner, &delta) in &self.delta {
                if delta > 0 && i64::from(store.owned_by(owner)).saturating_add(delta) > i64::from(max) {
                    return Err(Errno::ENOSPC);
                }
            }
        }
        for (path, node) in self.overlay {
            match node {
                Some(node) => store.put_node(&path, node),
                None => store.remove_node(&path),
            }
        }
        Ok(self.changes.into_values().collect())
    }

    /// The view an operation inside the transaction works through.
    pub fn view<'a>(&'a mut self, store: &'a Store, quotas: &Quotas) -> TxView<'a> {
        TxView { store, tx: self, max_nodes: quotas.max_transaction_nodes, max_bytes: quotas.max_transaction_bytes }
    }

    /// Puts `node` (or its removal) in the overlay, keeping count of its size.
    fn hold(&mut self, path: &str, node: Option<Node>) {
        let new = size(path, node.as_ref());
        let old = self.overlay.insert(String::from(path), node).map(|n| size(path, n.as_ref()));
        self.bytes = self.bytes.saturating_add(new).saturating_sub(old.unwrap_or(0));
    }
}

/// The store as one transaction sees it.
#[derive(Debug)]
pub(crate) struct TxView<'a> {
    /// The committed store, read through.
    store: &'a Store,
    /// The transaction.
    tx: &'a mut Transaction,
    /// Nodes the transaction may look at.
    max_nodes: usize,
    /// Bytes the transaction may hold changed.
    max_bytes: usize,
}

impl TxView<'_> {
    /// Counts one node more or less for `owner`.
    fn count(&mut self, owner: DomId, more: bool) {
        let d = self.tx.delta.entry(owner).or_insert(0);
        *d = if more { d.saturating_add(1) } else { d.saturating_sub(1) };
    }

    /// The owner of the node at `path` in this view.
    fn owner_of(&mut self, path: &str) -> Option<DomId> {
        self.node(path).map(|n| n.perms.owner())
    }
}

impl View for TxView<'_> {
    fn node(&mut self, path: &str) -> Option<&Node> {
        if self.tx.overlay.contains_key(path) {
            return self.tx.overlay.get(path).and_then(Option::as_ref);
        }
        let store: &Store = self.store;
        let found = store.get(path);
        if !self.tx.seen.contains_key(path) {
            self.tx.seen.insert(String::from(path), found.map(Node::generation));
        }
        found
    }

    fn put(&mut self, path: &str, node: Node) {
        if let Some(old) = self.owner_of(path) {
            self.count(old, false);
        }
        self.count(node.perms.owner(), true);
        self.tx.hold(path, Some(node));
    }

    fn remove(&mut self, path: &str) {
        if let Some(old) = self.owner_of(path) {
            self.count(old, false);
        }
        self.tx.hold(path, None);
    }

    fn owned_by(&self, domid: DomId) -> u64 {
        let base = i64::from(self.store.owned_by(domid));
        let delta = self.tx.delta.get(&domid).copied().unwrap_or(0);
        u64::try_from(base.saturating_add(delta)).unwrap_or(0)
    }

    fn check(&self) -> Result<(), Errno> {
        if self.tx.seen.len() > self.max_nodes || self.tx.bytes > self.max_bytes {
            Err(Errno::ENOSPC)
        } else {
            Ok(())
        }
    }
}
