//! The Xen 4.17 x86_64 PV guest ABI: numbers, layouts and protocols.
//!
//! This crate is the contract between the hypervisor, its guests and the
//! toolstack. Every number and every layout in it is Xen 4.17's, as found in
//! Xen's public headers (`xen/include/public/`, installed by Debian's
//! `libxen-dev` at `/usr/include/xen`); the definitions are this project's
//! own Rust, written from those facts.
//!
//! # Conventions
//!
//! - Names follow Xen's, upper-cased where Xen mixes case
//!   (`CALLBACKF_mask_events` becomes [`callback::CALLBACKF_MASK_EVENTS`]).
//!   Struct fields keep Xen's names; the Rust keywords `type`, `ref` and `in`
//!   become `type_`, `ref_` and `in_`.
//! - Struct fields are marked **IN** (the guest supplies it) or **OUT** (the
//!   hypervisor writes it), as Xen's headers do.
//! - ABI structs are `#[repr(C)]` with fixed-width fields only. Padding that C
//!   leaves implicit is an explicit `_pad*` field here, so a struct copied to a
//!   guest never carries stray bytes.
//! - C unions are raw storage (bytes, or a `u64` where the union sets the
//!   alignment) with accessor methods for each member, so no `unsafe` is
//!   needed to read them.
//! - Every struct is followed by compile-time size, alignment and offset
//!   assertions, and `tests/xen_layout.rs` compares every struct, field and
//!   constant with Xen's C headers.
//!
//! # Modules
//!
//! [`version`] (what this crate and the hypervisor claim), [`hypercall`]
//! (numbers), [`errno`], [`start_info`], [`shared_info`], [`arch`] (x86_64
//! selectors, address space, register frames), [`callback`], [`mm`],
//! [`sched`] (also vCPU ops, `xen_version`, `console_io` and VIRQs),
//! [`event_channel`], [`grant_table`], [`console`], [`ring`], [`xenstore`], [`blkif`],
//! [`elfnote`], [`hypercall_page`]; for the toolstack in a privileged domain,
//! [`domctl`] and [`sysctl`].
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(test, feature = "testimage"))]
extern crate alloc;

#[macro_use]
mod macros;
mod raw;

pub mod arch;
pub mod blkif;
pub mod boot;
pub mod callback;
pub mod console;
pub mod domctl;
pub mod elfnote;
pub mod errno;
pub mod event_channel;
pub mod grant_table;
#[cfg(feature = "guest")]
pub mod guest;
pub mod hypercall;
pub mod hypercall_page;
pub mod mm;
pub mod physdev;
pub mod ring;
pub mod sched;
pub mod shared_info;
pub mod start_info;
pub mod sysctl;
pub mod version;
pub mod xenstore;

pub use errno::Errno;

/// A number that names nothing in the ABI (the error of every `TryFrom`
/// conversion in this crate). It carries the rejected value; the caller picks
/// the errno, since Xen's answer differs by operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownValue(pub u64);

impl core::fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unknown ABI value {:#x}", self.0)
    }
}
