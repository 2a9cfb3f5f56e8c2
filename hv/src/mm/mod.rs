//! Memory management: the physical memory map, machine frames and their
//! page types.

pub mod frame;
pub mod memmap;
pub mod pagetable;
pub mod pagetype;

/// A machine frame number (physical address >> 12).
pub type Mfn = u64;
