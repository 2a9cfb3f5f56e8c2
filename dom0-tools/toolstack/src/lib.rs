//! The control domain's toolstack library: what dom0 uses to describe, build and manage guest domains.
//!
//! This crate runs inside the dom0 guest kernel (it needs only `core` and
//! `alloc`) and is tested on the host with `std`. It is meant to grow into
//! the whole toolstack (a domctl client, the commands a CLI runs). Today it
//! holds:
//!
//! - [`config`]: a domain's configuration, parsed from a subset of Xen's
//!   `xl.cfg` syntax, validated against the limits of the PV ABI, overridden
//!   from a command line and rendered back to text.
//! - [`builder`]: the PV domain builder, libxenguest's `xc_dom_*` steps from
//!   an ELF kernel and a configuration to a paused domain, over a
//!   [`builder::ControlOps`] trait that stands for the hypercalls.
//! - [`command`]: the command language of dom0's shell (`list`, `create
//!   name=web memory=16`, `destroy web`, ...), parsed and checked.
//! - [`status`]: what a `getdomaininfo` record says: a domain's state, its
//!   shutdown reason, what its configuration does about it, its list line.
//! - [`conring`]: one domain's console lines out of the hypervisor's
//!   console ring.
//! - [`xenstore`]: the xenstore daemon's core: the store, the wire
//!   protocol per connection, watches, transactions and the ring pump.
//! - [`ctlport`]: the framing of the control port, the serial line
//!   `hvctl` drives the shell over.
//! - [`blkback`]: the portable core of a PV block-device backend: a blkif
//!   ring served from a disk through grant copies.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod blkback;
pub mod builder;
pub mod command;
pub mod config;
pub mod conring;
pub mod ctlport;
pub mod status;
pub mod xenstore;
