//! The tree of nodes, and the [`View`] operations work through.
//!
//! Nodes are kept by absolute path; each also lists its children's names,
//! so that a parent changes when a child comes or goes (which is what makes
//! a transaction that listed a directory conflict with one that added to
//! it). Every stored change gives the node a new generation number, which
//! is how a transaction's commit sees whether what it read has changed.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use abi::errno::Errno;

use super::perms::Perms;
use crate::builder::DomId;

/// One node: a value, permissions and children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The value, any bytes.
    pub(crate) value: Vec<u8>,
    /// Who may do what.
    pub(crate) perms: Perms,
    /// The children's names (last path components).
    pub(crate) children: BTreeSet<String>,
    /// When it last changed in the store (0 inside a transaction until the
    /// commit).
    pub(crate) generation: u64,
}

impl Node {
    /// A node with no children.
    pub(crate) fn new(value: Vec<u8>, perms: Perms) -> Node {
        Node { value, perms, children: BTreeSet::new(), generation: 0 }
    }

    /// The value.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The permissions.
    pub fn perms(&self) -> &Perms {
        &self.perms
    }

    /// The children's names, in byte order.
    pub fn children(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.children.iter().map(String::as_str)
    }

    /// The store generation of its last change.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// The committed tree, and how many nodes each domain owns.
#[derive(Clone, Debug)]
pub struct Store {
    /// Every node, by absolute path.
    nodes: BTreeMap<String, Node>,
    /// Nodes owned, by owner (domains owning none are absent).
    owned: BTreeMap<DomId, u32>,
    /// The last generation handed out.
    generation: u64,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    /// A store holding only `/`, owned by dom0 and closed to others (`n0`).
    pub fn new() -> Store {
        let mut store = Store { nodes: BTreeMap::new(), owned: BTreeMap::new(), generation: 0 };
        store.put_node("/", Node::new(Vec::new(), Perms::owned_by(0)));
        store
    }

    /// The node at absolute `path`.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Every node with its path, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(p, n)| (p.as_str(), n))
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are none (never: `/` stays).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// How many nodes `domid` owns.
    pub fn owned_by(&self, domid: DomId) -> u32 {
        self.owned.get(&domid).copied().unwrap_or(0)
    }

    /// Stores `node` at `path` with a new generation.
    pub(crate) fn put_node(&mut self, path: &str, mut node: Node) {
        self.generation = self.generation.wrapping_add(1);
        node.generation = self.generation;
        let owner = node.perms.owner();
        if let Some(old) = self.nodes.insert(String::from(path), node) {
            self.count(old.perms.owner(), false);
        }
        self.count(owner, true);
    }

    /// Removes the node at `path` (not its children).
    pub(crate) fn remove_node(&mut self, path: &str) {
        if let Some(old) = self.nodes.remove(path) {
            self.count(old.perms.owner(), false);
        }
    }

    /// Counts one node more or less for `owner`.
    fn count(&mut self, owner: DomId, more: bool) {
        let n = self.owned.entry(owner).or_insert(0);
        *n = if more { n.saturating_add(1) } else { n.saturating_sub(1) };
        if *n == 0 {
            self.owned.remove(&owner);
        }
    }
}

/// What operations see and change: the store itself, or a transaction's
/// private view of it.
pub(crate) trait View {
    /// The node at `path`, if any (in a transaction, recording the read).
    fn node(&mut self, path: &str) -> Option<&Node>;
    /// Stores `node` at `path`, replacing what was there.
    fn put(&mut self, path: &str, node: Node);
    /// Removes the node at `path` (not its children).
    fn remove(&mut self, path: &str);
    /// How many nodes `domid` owns in this view.
    fn owned_by(&self, domid: DomId) -> u64;
    /// `ENOSPC` if a transaction has touched more nodes than allowed; an
    /// operation asks after its reads and before its first change.
    fn check(&self) -> Result<(), Errno> {
        Ok(())
    }
}

impl View for Store {
    fn node(&mut self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    fn put(&mut self, path: &str, node: Node) {
        self.put_node(path, node);
    }

    fn remove(&mut self, path: &str) {
        self.remove_node(path);
    }

    fn owned_by(&self, domid: DomId) -> u64 {
        u64::from(Store::owned_by(self, domid))
    }
}
