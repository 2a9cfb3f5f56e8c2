//! The xenstore ring page and wire header (`io/xs_wire.h`).

use crate::errno::Errno;

/// Size of each xenstore ring.
pub const XENSTORE_RING_SIZE: usize = 1024;
/// Largest payload of one message.
pub const XENSTORE_PAYLOAD_MAX: u32 = 4096;
/// Longest absolute path.
pub const XENSTORE_ABS_PATH_MAX: u32 = 3072;
/// Longest relative path.
pub const XENSTORE_REL_PATH_MAX: u32 = 2048;

/// `server_features`: the server supports reconnection.
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
/// `server_features`: the page has the `error` field.
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;
/// `connection`: steady state.
pub const XENSTORE_CONNECTED: u32 = 0;
/// `connection`: reconnect in progress.
pub const XENSTORE_RECONNECT: u32 = 1;
/// `error`: none.
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `error`: communication problem.
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `error`: invalid ring index.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `error`: protocol violation (payload too long).
pub const XENSTORE_ERROR_PROTO: u32 = 3;

/// Message type: control (also `XS_DEBUG`).
pub const XS_CONTROL: u32 = 0;
/// Message type: list a directory.
pub const XS_DIRECTORY: u32 = 1;
/// Message type: read a node.
pub const XS_READ: u32 = 2;
/// Message type: get a node's permissions.
pub const XS_GET_PERMS: u32 = 3;
/// Message type: watch a path.
pub const XS_WATCH: u32 = 4;
/// Message type: remove a watch.
pub const XS_UNWATCH: u32 = 5;
/// Message type: start a transaction.
pub const XS_TRANSACTION_START: u32 = 6;
/// Message type: end a transaction.
pub const XS_TRANSACTION_END: u32 = 7;
/// Message type: introduce a domain (dom0).
pub const XS_INTRODUCE: u32 = 8;
/// Message type: release a domain (dom0).
pub const XS_RELEASE: u32 = 9;
/// Message type: get a domain's home path.
pub const XS_GET_DOMAIN_PATH: u32 = 10;
/// Message type: write a node.
pub const XS_WRITE: u32 = 11;
/// Message type: make a directory.
pub const XS_MKDIR: u32 = 12;
/// Message type: remove a node.
pub const XS_RM: u32 = 13;
/// Message type: set a node's permissions.
pub const XS_SET_PERMS: u32 = 14;
/// Message type: a watch fired (server to client).
pub const XS_WATCH_EVENT: u32 = 15;
/// Message type: error reply.
pub const XS_ERROR: u32 = 16;
/// Message type: is a domain introduced?
pub const XS_IS_DOMAIN_INTRODUCED: u32 = 17;
/// Message type: resume a domain.
pub const XS_RESUME: u32 = 18;
/// Message type: set a domain's target.
pub const XS_SET_TARGET: u32 = 19;
/// Message type: reset all watches (20 was `XS_RESTRICT`, removed).
pub const XS_RESET_WATCHES: u32 = 21;
/// Message type: list part of a large directory.
pub const XS_DIRECTORY_PART: u32 = 22;
/// Number of valid message types.
pub const XS_TYPE_COUNT: u32 = 23;
/// A type guaranteed to stay invalid.
pub const XS_INVALID: u32 = 0xffff;

/// `xsd_errors`: the errnos an `XS_ERROR` reply may name, in the header's
/// order (new ones are only ever appended). The reply's payload is the
/// errno's name ([`Errno::name`], `"ENOENT"`) and a nul; a daemon sends
/// `EINVAL` for an errno not in the list.
pub const XSD_ERRORS: [Errno; 16] = [
    Errno::EINVAL,
    Errno::EACCES,
    Errno::EEXIST,
    Errno::EISDIR,
    Errno::ENOENT,
    Errno::ENOMEM,
    Errno::ENOSPC,
    Errno::EIO,
    Errno::ENOTEMPTY,
    Errno::ENOSYS,
    Errno::EROFS,
    Errno::EBUSY,
    Errno::EAGAIN,
    Errno::EISCONN,
    Errno::E2BIG,
    Errno::EPERM,
];

/// Watch-event payload: index of the path string.
pub const XS_WATCH_PATH: u32 = 0;
/// Watch-event payload: index of the token string.
pub const XS_WATCH_TOKEN: u32 = 1;

/// `struct xsd_sockmsg`: the header of every xenstore message (16 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XsdSockmsg {
    /// `XS_*`.
    pub type_: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id (0: none).
    pub tx_id: u32,
    /// Length of the payload that follows.
    pub len: u32,
}

assert_layout!(XsdSockmsg, size = 16, align = 4, { type_ @ 0, req_id @ 4, tx_id @ 8, len @ 12 });

/// `struct xenstore_domain_interface`: the xenstore ring page (2076 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct XenstoreDomainInterface {
    /// Guest writes: requests to the daemon.
    pub req: [u8; XENSTORE_RING_SIZE],
    /// Daemon writes: replies and watch events.
    pub rsp: [u8; XENSTORE_RING_SIZE],
    /// Daemon: requests consumed.
    pub req_cons: u32,
    /// Guest: requests produced.
    pub req_prod: u32,
    /// Guest: responses consumed.
    pub rsp_cons: u32,
    /// Daemon: responses produced.
    pub rsp_prod: u32,
    /// Daemon: `XENSTORE_SERVER_FEATURE_*`.
    pub server_features: u32,
    /// `XENSTORE_CONNECTED` / `XENSTORE_RECONNECT`.
    pub connection: u32,
    /// Daemon: `XENSTORE_ERROR_*`.
    pub error: u32,
}

assert_layout!(XenstoreDomainInterface, size = 2076, align = 4, {
    req @ 0, rsp @ 1024, req_cons @ 2048, req_prod @ 2052, rsp_cons @ 2056,
    rsp_prod @ 2060, server_features @ 2064, connection @ 2068, error @ 2072,
});

impl XenstoreDomainInterface {
    /// An empty xenstore page.
    pub const fn zeroed() -> Self {
        XenstoreDomainInterface {
            req: [0; XENSTORE_RING_SIZE],
            rsp: [0; XENSTORE_RING_SIZE],
            req_cons: 0,
            req_prod: 0,
            rsp_cons: 0,
            rsp_prod: 0,
            server_features: 0,
            connection: 0,
            error: 0,
        }
    }
}

impl Default for XenstoreDomainInterface {
    fn default() -> Self {
        Self::zeroed()
    }
}
