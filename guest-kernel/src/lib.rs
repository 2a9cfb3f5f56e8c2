//! The PV guest runtime: boots from Xen's `start_info`, asks the hypervisor
//! for everything privileged through hypercalls, and runs unmodified on this
//! hypervisor and on Xen 4.17.
//!
//! Portable parts (host-tested): [`layout`] (link address, pfns, PTE bits),
//! [`boot`] (start_info checks), [`cmdline`] (workload selection),
//! [`frame`] (trap frames, trap table) and [`text`] (line-buffered output).
//!
//! The image parts, built only for `x86_64-unknown-none`: `entry` (ELF
//! notes, `_start`, hypercall page, stacks, trap stubs), `runtime` (start,
//! shutdown, panic, the `entry!` macro), `hypercall` (the transport),
//! `console` (`print!`/`println!`), `traps` (trap table, callbacks,
//! dispatch) and `shared` (mapping shared_info).
//!
//! A workload binary names its `fn main() -> !` with `entry!`.
#![cfg_attr(not(test), no_std)]

pub mod boot;
pub mod cmdline;
pub mod frame;
pub mod layout;
pub mod text;

#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod entry;
#[cfg(target_os = "none")]
pub mod hypercall;
#[cfg(target_os = "none")]
pub mod runtime;
#[cfg(target_os = "none")]
pub mod shared;
#[cfg(target_os = "none")]
pub mod traps;
