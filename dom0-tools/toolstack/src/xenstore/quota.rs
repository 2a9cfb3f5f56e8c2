//! The limits that keep a hostile domain from exhausting the control
//! domain's memory through xenstore.

use abi::xenstore::XENSTORE_PAYLOAD_MAX;

/// Per-domain and per-connection limits (xenstored's quotas).
///
/// The node, value and permission limits bind unprivileged domains only, as
/// in xenstored; the watch, transaction and output limits bind every
/// connection. Exceeding one is `ENOSPC`, except the watch limit (`E2BIG`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Nodes a domain may own (xenstored's `quota_nb_entry_per_domain`).
    pub max_nodes: u32,
    /// Bytes in one node's value.
    pub max_value: usize,
    /// Entries in one node's permission list (`quota_nb_perms_per_node`).
    pub max_perms: usize,
    /// Watches per connection (`quota_nb_watch_per_domain`).
    pub max_watches: usize,
    /// Open transactions per connection (`quota_max_transaction`).
    pub max_transactions: usize,
    /// Nodes one transaction may read or write (`quota_trans_nodes`).
    pub max_transaction_nodes: usize,
    /// Bytes (paths, values, child names) of the nodes one transaction may
    /// hold changed; the request that goes over still completes, later ones
    /// fail.
    pub max_transaction_bytes: usize,
    /// Bytes queued for a connection beyond which watch events for it are
    /// dropped. Requests are not taken from a connection while its queue
    /// holds [`Quotas::output_high_water`] bytes, so replies stay below
    /// that plus one message.
    pub max_output: usize,
    /// Bytes queued for a connection at which its requests wait.
    pub output_high_water: usize,
}

impl Quotas {
    /// xenstored's defaults, with values limited to a message payload.
    pub const DEFAULT: Quotas = Quotas {
        max_nodes: 1000,
        max_value: XENSTORE_PAYLOAD_MAX as usize,
        max_perms: 5,
        max_watches: 128,
        max_transactions: 10,
        max_transaction_nodes: 1024,
        max_transaction_bytes: 256 * 1024,
        max_output: 64 * 1024,
        output_high_water: 8 * 1024,
    };
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas::DEFAULT
    }
}
