//! Booting a 64-bit PV kernel: from an ELF image to its first instruction.
//!
//! Shared by the hypervisor (dom0 from a multiboot module) and the toolstack's
//! domain builder. Pure, allocation-free, panic-free: a broken or hostile
//! image gets an error naming the check that failed.
//!
//! 1. [`Elf::parse`] checks the ELF64 x86_64 header, tables and segments.
//! 2. [`XenNotes::find`] reads the `"Xen"` notes (`PT_NOTE`, else `SHT_NOTE`),
//!    [`XenNotes::check`] applies Xen's rules and the caller's features, and
//!    [`XenNotes::placement`] puts the kernel at `p_paddr + VIRT_BASE -
//!    PADDR_OFFSET`. [`Kernel::parse`] does all three.
//! 3. [`Layout::compute`]: from `VIRT_BASE` up, kernel, ramdisk, p2m,
//!    start_info, xenstore, console, page tables, boot stack.
//! 4. [`pagetables::build`] emits every bootstrap page-table entry.
//! 5. [`start_info`] fills the `start_info` page; [`initial_regs`] gives vCPU
//!    0's `rip`, `rsp`, `rsi`. The caller copies each segment to
//!    [`Placement::segment_va`], fills the p2m, writes the tables and pins the
//!    L4. Guest authors: [`layout`] and [`start_of_day`] describe the entry state.

pub mod elf;
pub mod layout;
pub mod notes;
pub mod pagetables;
pub mod start_of_day;

#[cfg(any(test, feature = "testimage"))]
pub mod testimage;
#[cfg(test)]
pub(crate) mod tests;

use core::fmt;

pub use elf::{Elf, ElfError, Segment};
pub use layout::{Item, Layout, LayoutError, LayoutParams, Region};
pub use notes::{FeatureSet, NoteError, Placement, Role, XenNotes};
pub use pagetables::PageTableError;
pub use start_of_day::{initial_regs, start_info, BuiltStartInfo, InitialRegs, StartInfoParams};

/// A parsed, checked and placed PV kernel.
#[derive(Clone, Copy, Debug)]
pub struct Kernel<'a> {
    /// The ELF image.
    pub elf: Elf<'a>,
    /// Its Xen notes.
    pub notes: XenNotes<'a>,
    /// Where it goes.
    pub placement: Placement,
}

impl<'a> Kernel<'a> {
    /// Parses `image`, finds and checks its notes (refusing required features
    /// outside `supported_features`, a bitmap of `XENFEAT_*` bits, and
    /// applying `role`'s rules), and places it.
    pub fn parse(image: &'a [u8], supported_features: u32, role: Role) -> Result<Self, BootError> {
        let elf = Elf::parse(image)?;
        let notes = XenNotes::find(&elf)?;
        notes.check(supported_features, role)?;
        let placement = notes.placement(&elf)?;
        Ok(Kernel { elf, notes, placement })
    }

    /// Layout parameters for this kernel in a domain of `nr_pages` pages.
    pub fn layout_params(&self, nr_pages: u64, ramdisk_len: Option<u64>) -> LayoutParams {
        LayoutParams::new(&self.placement, nr_pages, ramdisk_len)
    }
}

/// Any error of the boot path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// The image is not a usable ELF64 x86_64 executable.
    Elf(ElfError),
    /// The Xen notes are missing, malformed or refuse this loader.
    Notes(NoteError),
    /// No start-of-day layout fits.
    Layout(LayoutError),
    /// The page tables cannot be built.
    PageTables(PageTableError),
}

impl From<ElfError> for BootError {
    fn from(e: ElfError) -> Self {
        BootError::Elf(e)
    }
}

impl From<NoteError> for BootError {
    fn from(e: NoteError) -> Self {
        match e {
            NoteError::Elf(e) => BootError::Elf(e),
            e => BootError::Notes(e),
        }
    }
}

impl From<LayoutError> for BootError {
    fn from(e: LayoutError) -> Self {
        BootError::Layout(e)
    }
}

impl From<PageTableError> for BootError {
    fn from(e: PageTableError) -> Self {
        BootError::PageTables(e)
    }
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::Elf(e) => e.fmt(f),
            BootError::Notes(e) => e.fmt(f),
            BootError::Layout(e) => e.fmt(f),
            BootError::PageTables(e) => e.fmt(f),
        }
    }
}
