//! The hypervisor's portable core: everything that does not touch hardware.
//!
//! The bare-metal image (`src/main.rs` and `src/arch/`) is thin glue around
//! these modules; they build for the host too, so `cargo test -p hv` runs
//! their tests. Nothing here may use `cfg(target_arch)` or `cfg(target_os)`.
#![cfg_attr(not(test), no_std)]

pub mod bootmod;
pub mod build;
pub mod cmdline;
pub mod conring;
pub mod descriptor;
pub mod domain;
pub mod event;
pub mod exit;
pub mod fixed;
pub mod grant;
pub mod guest;
pub mod hypercall;
pub mod ioport;
pub mod layout;
pub mod mm;
pub mod multiboot;
pub mod regs;
pub mod sched;
pub mod sync;
#[cfg(test)]
pub(crate) mod testing;
pub mod time;
pub mod trap;

/// The hypervisor's own version, printed in the banner.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
