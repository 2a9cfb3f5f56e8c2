//! The PV guest runtime: boots from Xen's `start_info`, asks the hypervisor
//! for everything privileged through hypercalls, and runs unmodified on this
//! hypervisor and on Xen 4.17.
//!
//! Portable parts (host-tested): [`layout`] (link address, pfns, PTE bits,
//! the address-space map), [`boot`] (start_info checks), [`cmdline`]
//! (workload selection), [`frame`] (trap frames, trap table), [`text`]
//! (line-buffered output), [`lineedit`] (typed console input, a line at a
//! time), [`frame_alloc`] (free guest frames), [`xenbus`] (xenstore
//! messages; its ring client is the image's),
//! [`pagetable`] (page-table walks and updates against a hypervisor trait),
//! [`heap`] (the free list behind the global allocator), [`lock`] and
//! [`upcall`] (the 2-level event protocol's consumer side).
//!
//! The image parts, built only for `x86_64-unknown-none`: `entry` (ELF
//! notes, `_start`, hypercall page, stacks, trap stubs), `runtime` (start,
//! shutdown, panic, the `entry!` macro), `hypercall` (the transport),
//! `console` (`print!`/`println!`), `traps` (trap table, callbacks,
//! dispatch), `shared` (mapping shared_info), `mm` (frames over the p2m,
//! the direct map, page tables through `mmu_update`/`mmuext_op`, the heap),
//! `user` (a user-mode task entered with `iret`), `event` (the event
//! upcall, per-port handlers, the upcall mask), `thread` (cooperative
//! kernel threads and wait queues), `time` (the pvclock, `VIRQ_TIMER`
//! and sleeping) and `uart` (a serial port through emulated port I/O).
//!
//! A workload binary names its `fn main() -> !` with `entry!`.
#![cfg_attr(not(test), no_std)]

#[cfg(target_os = "none")]
extern crate alloc;

pub mod boot;
pub mod cmdline;
pub mod frame;
pub mod frame_alloc;
pub mod heap;
pub mod layout;
pub mod lineedit;
pub mod lock;
pub mod pagetable;
pub mod pvcons;
pub mod text;
pub mod upcall;
pub mod xenbus;

#[cfg(target_os = "none")]
pub mod blkfront;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod entry;
#[cfg(target_os = "none")]
pub mod event;
#[cfg(target_os = "none")]
pub mod grant;
#[cfg(target_os = "none")]
pub mod hypercall;
#[cfg(target_os = "none")]
pub mod mm;
#[cfg(target_os = "none")]
pub mod runtime;
#[cfg(target_os = "none")]
pub mod shared;
#[cfg(target_os = "none")]
pub mod thread;
#[cfg(target_os = "none")]
pub mod time;
#[cfg(target_os = "none")]
pub mod traps;
#[cfg(target_os = "none")]
pub mod uart;
#[cfg(target_os = "none")]
pub mod user;
