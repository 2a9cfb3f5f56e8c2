//! Xenstore: the configuration database every domain reaches over its
//! xenstore ring, served by the control domain (a `xenstored`'s portable
//! core).
//!
//! The store is a tree of nodes, each with a value and permissions
//! (Xen's `docs/misc/xenstore.txt`). Clients speak the wire protocol of
//! `io/xs_wire.h`: a [`abi::xenstore::XsdSockmsg`] header and a payload of
//! nul-terminated strings; errors come back as `XS_ERROR` with an errno
//! name from [`abi::xenstore::XSD_ERRORS`]. What is here, top down:
//!
//! - [`Xenstored`]: the daemon's state. One [`Connection`] per client is
//!   fed raw request bytes ([`Xenstored::feed`]) and yields reply and
//!   watch-event bytes ([`Xenstored::drain_output`]). It answers
//!   `XS_READ`, `XS_WRITE`, `XS_MKDIR`, `XS_RM`, `XS_DIRECTORY`,
//!   `XS_DIRECTORY_PART`, `XS_GET_PERMS`, `XS_SET_PERMS`, `XS_WATCH`,
//!   `XS_UNWATCH`, `XS_RESET_WATCHES`, `XS_TRANSACTION_START`,
//!   `XS_TRANSACTION_END`, `XS_GET_DOMAIN_PATH` and, from dom0,
//!   `XS_INTRODUCE`, `XS_RELEASE`, `XS_IS_DOMAIN_INTRODUCED`, `XS_RESUME`;
//!   the toolstack also calls [`Xenstored::introduce`],
//!   [`Xenstored::release`] and the node operations directly.
//! - [`pump`]: moves bytes between a domain's [`RingPage`] and its
//!   connection, treating every index the guest can write as hostile.
//! - [`list`]: a `xenstore-ls` listing; [`create_domain_entries`] and
//!   [`remove_domain_entries`]: a domain's standard nodes.
//!
//! Underneath: names are resolved and checked in `path` (relative ones
//! against `/local/domain/<domid>`), permissions are [`Perms`], the tree is
//! a [`Store`], operations run once over either the store or a
//! transaction's private view (`ops`, `transaction`), and [`Quotas`] bound
//! what any unprivileged domain can make the daemon hold.
//!
//! Nothing here trusts a client: a malformed request gets an `XS_ERROR`
//! reply, an oversized one stops its connection, and no input panics.

mod domain;
mod ls;
mod ops;
mod path;
mod perms;
mod quota;
mod ring;
mod server;
mod store;
mod transaction;
mod wire;

#[cfg(test)]
mod tests;

pub use domain::{
    create_domain_entries, create_vbd_entries, remove_domain_entries, remove_vbd_entries, VbdPaths, XVDA,
};
pub use ls::list;
pub use path::{domain_path, INTRODUCE_DOMAIN, LOCAL_DOMAIN, RELEASE_DOMAIN};
pub use perms::{Access, Perm, Perms, Rights};
pub use quota::Quotas;
pub use ring::{init_page, pump, Pumped, RingField, RingPage, MAX_PASSES};
pub use server::{ConnError, ConnId, Connection, RingInfo, Xenstored};
pub use store::{Node, Store};
pub use wire::{decode_header, encode, error_payload, parse_error, MessageReader, HEADER_LEN};
