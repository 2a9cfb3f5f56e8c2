//! Memory management: the physical memory map and machine frames.

pub mod frame;
pub mod memmap;
pub mod pagetable;

/// A machine frame number (physical address >> 12).
pub type Mfn = u64;
