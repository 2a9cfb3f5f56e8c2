//! The start-of-day virtual layout of a 64-bit PV guest, as a pure function.
//!
//! Everything lives in one mapping starting at `virt_base`, where guest pfn
//! `n` is at `virt_base + n * 4096`. In order, each page-aligned and directly
//! after the previous one:
//!
//! 1. the kernel, `[kernel_start, kernel_end)` (pfns between `virt_base` and
//!    the kernel are mapped but unused);
//! 2. the ramdisk, if any;
//! 3. the p2m array (`mfn_list`): `nr_pages` × 8 bytes, rounded up to pages;
//! 4. the `start_info` page, 5. the xenstore page, 6. the console page;
//! 7. the bootstrap page tables: one L4, then the L3s, L2s and L1s needed to
//!    map the whole mapping, themselves included;
//! 8. one boot-stack page.
//!
//! The mapping then extends to the first 4 MiB boundary at least 512 KiB
//! past the stack. The page-table count and the mapping's end depend on each
//! other; like Xen, this takes the smallest count that suffices (found by
//! iterating from below, which reaches it in a few steps). The whole mapping
//! must be backed by the domain's memory (`end - virt_base <= nr_pages *
//! 4096`), lie in one canonical half and stay out of the hypervisor's range.
//!
//! This is libxenguest's domU layout (Xen's own dom0 builder leaves out the
//! xenstore and console pages, except for the PV shim); the layout does not
//! honour `INIT_P2M`, `MOD_START_PFN` or `BSD_SYMTAB`.

use core::fmt;

use crate::arch::{HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START};

/// Size of a page.
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;
/// The mapping ends on a multiple of this (4 MiB).
pub const MAPPING_ALIGN: u64 = 4 << 20;
/// At least this much of the mapping is left free after the boot stack.
pub const MAPPING_SLACK: u64 = 512 << 10;
/// End of the lower canonical half (exclusive).
pub const LOWER_HALF_END: u64 = 0x0000_8000_0000_0000;

/// A page-aligned run of pages in the initial mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Virtual address of the first page.
    pub va: u64,
    /// Guest pfn of the first page (`(va - virt_base) >> 12`).
    pub pfn: u64,
    /// Number of pages.
    pub pages: u64,
}

impl Region {
    /// Size in bytes.
    pub const fn bytes(&self) -> u64 {
        self.pages.saturating_mul(PAGE_SIZE)
    }

    /// First address past the region.
    pub const fn end(&self) -> u64 {
        self.va.saturating_add(self.bytes())
    }

    /// First pfn past the region.
    pub const fn end_pfn(&self) -> u64 {
        self.pfn.saturating_add(self.pages)
    }

    /// Whether `va` lies in the region.
    pub const fn contains(&self, va: u64) -> bool {
        va >= self.va && va < self.end()
    }
}

/// The items of the layout, in address order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    /// The kernel image.
    Kernel,
    /// The initial ramdisk (module).
    Ramdisk,
    /// The p2m array (`mfn_list`).
    P2m,
    /// The `start_info` page.
    StartInfo,
    /// The xenstore ring page.
    Xenstore,
    /// The console ring page.
    Console,
    /// The bootstrap page tables.
    PageTables,
    /// The boot stack page.
    BootStack,
}

impl Item {
    /// Every item, in address order.
    pub const ALL: [Item; 8] = [
        Item::Kernel,
        Item::Ramdisk,
        Item::P2m,
        Item::StartInfo,
        Item::Xenstore,
        Item::Console,
        Item::PageTables,
        Item::BootStack,
    ];

    /// A short lower-case name (`"page tables"`).
    pub const fn name(self) -> &'static str {
        match self {
            Item::Kernel => "kernel",
            Item::Ramdisk => "ramdisk",
            Item::P2m => "p2m",
            Item::StartInfo => "start info",
            Item::Xenstore => "xenstore",
            Item::Console => "console",
            Item::PageTables => "page tables",
            Item::BootStack => "boot stack",
        }
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the layout is computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayoutParams {
    /// VA of guest pfn 0 (`VIRT_BASE`); must be page-aligned.
    pub virt_base: u64,
    /// First byte of the kernel ([`Placement::kernel_start`]).
    ///
    /// [`Placement::kernel_start`]: super::notes::Placement::kernel_start
    pub kernel_start: u64,
    /// End of the kernel, exclusive ([`Placement::kernel_end`]).
    ///
    /// [`Placement::kernel_end`]: super::notes::Placement::kernel_end
    pub kernel_end: u64,
    /// The domain's memory in pages (also the p2m's length).
    pub nr_pages: u64,
    /// Length of the ramdisk in bytes; `None` or `Some(0)` for none.
    pub ramdisk_len: Option<u64>,
}

impl LayoutParams {
    /// Parameters for a kernel placed by [`XenNotes::placement`].
    ///
    /// [`XenNotes::placement`]: super::notes::XenNotes::placement
    pub fn new(placement: &super::notes::Placement, nr_pages: u64, ramdisk_len: Option<u64>) -> Self {
        LayoutParams {
            virt_base: placement.virt_base,
            kernel_start: placement.kernel_start,
            kernel_end: placement.kernel_end,
            nr_pages,
            ramdisk_len,
        }
    }
}

/// Why no layout fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// `virt_base` is not page-aligned.
    VirtBaseMisaligned(u64),
    /// The kernel starts below `virt_base`.
    KernelBelowVirtBase {
        /// `virt_base`.
        virt_base: u64,
        /// Start of the kernel.
        kernel_start: u64,
    },
    /// The kernel ends before it starts.
    KernelExtentInverted {
        /// Start of the kernel.
        start: u64,
        /// End of the kernel.
        end: u64,
    },
    /// An item would end beyond the top of the address space.
    Overflow(Item),
    /// The mapping does not lie within one canonical half.
    NonCanonical {
        /// Start of the mapping.
        start: u64,
        /// End of the mapping (exclusive; 0 if it would wrap).
        end: u64,
    },
    /// The mapping reaches into the hypervisor's reserved range.
    HypervisorHole {
        /// Start of the mapping.
        start: u64,
        /// End of the mapping (exclusive).
        end: u64,
    },
    /// The mapping needs more pages than the domain has.
    TooSmall {
        /// Pages needed (a lower bound if the layout was abandoned early).
        needed: u64,
        /// Pages the domain has.
        nr_pages: u64,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LayoutError::VirtBaseMisaligned(va) => write!(f, "VIRT_BASE {va:#x} is not page-aligned"),
            LayoutError::KernelBelowVirtBase { virt_base, kernel_start } => {
                write!(f, "kernel start {kernel_start:#x} lies below VIRT_BASE {virt_base:#x}")
            }
            LayoutError::KernelExtentInverted { start, end } => {
                write!(f, "kernel end {end:#x} lies below its start {start:#x}")
            }
            LayoutError::Overflow(item) => {
                write!(f, "the initial mapping's {item} would end beyond the top of the address space")
            }
            LayoutError::NonCanonical { start, end } => {
                write!(f, "initial mapping {start:#x}..{end:#x} does not lie within one canonical half")
            }
            LayoutError::HypervisorHole { start, end } => write!(
                f,
                "initial mapping {start:#x}..{end:#x} reaches into the hypervisor's range \
                 {HYPERVISOR_VIRT_START:#x}..{HYPERVISOR_VIRT_END:#x}"
            ),
            LayoutError::TooSmall { needed, nr_pages } => {
                write!(f, "initial mapping needs {needed} pages but the domain has only {nr_pages}")
            }
        }
    }
}

/// How many page-table pages of each level the bootstrap tables use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtCounts {
    /// L3 tables (one per 512 GiB region touched).
    pub l3: u64,
    /// L2 tables (one per 1 GiB region touched).
    pub l2: u64,
    /// L1 tables (one per 2 MiB region touched).
    pub l1: u64,
}

impl PtCounts {
    /// Counts the tables mapping `[start, end)` (`end > start`), as Xen does.
    pub const fn for_range(start: u64, end: u64) -> Self {
        let last = end - 1;
        PtCounts {
            l3: (last >> 39) - (start >> 39) + 1,
            l2: (last >> 30) - (start >> 30) + 1,
            l1: (last >> 21) - (start >> 21) + 1,
        }
    }

    /// All page-table pages: the L4 plus the L3s, L2s and L1s.
    pub const fn total(&self) -> u64 {
        1 + self.l3 + self.l2 + self.l1
    }
}

/// A computed start-of-day layout. Only [`Layout::compute`] makes one, so
/// its invariants hold: items in order, page-aligned, non-overlapping,
/// inside `[virt_base, end)`, which is canonical, outside the hypervisor's
/// range and backed by `nr_pages`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    virt_base: u64,
    nr_pages: u64,
    kernel_start: u64,
    kernel_end: u64,
    kernel: Region,
    ramdisk: Option<Region>,
    ramdisk_len: u64,
    p2m: Region,
    start_info: Region,
    xenstore: Region,
    console: Region,
    page_tables: Region,
    pt_counts: PtCounts,
    boot_stack: Region,
    end: u64,
}

/// Allocates regions one after another from `virt_base`.
struct Cursor {
    virt_base: u64,
    next: u64,
}

impl Cursor {
    fn take(&mut self, pages: u64, item: Item) -> Result<Region, LayoutError> {
        let va = self.next;
        let bytes = pages.checked_mul(PAGE_SIZE).ok_or(LayoutError::Overflow(item))?;
        self.next = va.checked_add(bytes).ok_or(LayoutError::Overflow(item))?;
        Ok(Region { va, pfn: (va - self.virt_base) >> PAGE_SHIFT, pages })
    }
}

const fn pages_for(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE_SIZE)
}

/// The mapping's end for a boot stack ending at `stack_end`: the first 4 MiB
/// boundary leaving at least 512 KiB free.
fn mapping_end(stack_end: u64) -> Option<u64> {
    let rounded = stack_end.checked_next_multiple_of(MAPPING_ALIGN)?;
    if rounded - stack_end < MAPPING_SLACK {
        rounded.checked_add(MAPPING_ALIGN)
    } else {
        Some(rounded)
    }
}

impl Layout {
    /// Computes the layout, or says why none fits.
    pub fn compute(p: &LayoutParams) -> Result<Layout, LayoutError> {
        let virt_base = p.virt_base;
        if !virt_base.is_multiple_of(PAGE_SIZE) {
            return Err(LayoutError::VirtBaseMisaligned(virt_base));
        }
        if p.kernel_start < virt_base {
            return Err(LayoutError::KernelBelowVirtBase { virt_base, kernel_start: p.kernel_start });
        }
        if p.kernel_end < p.kernel_start {
            return Err(LayoutError::KernelExtentInverted { start: p.kernel_start, end: p.kernel_end });
        }
        let too_small = |needed| LayoutError::TooSmall { needed, nr_pages: p.nr_pages };

        let kernel_va = p.kernel_start & !(PAGE_SIZE - 1);
        let kernel_end = p.kernel_end.checked_next_multiple_of(PAGE_SIZE).ok_or(LayoutError::Overflow(Item::Kernel))?;
        let mut cursor = Cursor { virt_base, next: kernel_va };
        let kernel = cursor.take((kernel_end - kernel_va) >> PAGE_SHIFT, Item::Kernel)?;
        let ramdisk_len = p.ramdisk_len.unwrap_or(0);
        let ramdisk = match ramdisk_len {
            0 => None,
            len => Some(cursor.take(pages_for(len), Item::Ramdisk)?),
        };
        let p2m_bytes = p.nr_pages.checked_mul(8).ok_or(LayoutError::Overflow(Item::P2m))?;
        let p2m = cursor.take(pages_for(p2m_bytes), Item::P2m)?;
        let start_info = cursor.take(1, Item::StartInfo)?;
        let xenstore = cursor.take(1, Item::Xenstore)?;
        let console = cursor.take(1, Item::Console)?;

        // Everything so far must fit before the search, which keeps it short.
        let used = (cursor.next - virt_base) >> PAGE_SHIFT;
        if used > p.nr_pages {
            return Err(too_small(used));
        }

        let pt_start = cursor.next;
        let mut nr_pt = 0u64;
        let (pt_counts, end) = loop {
            let stack_end = nr_pt
                .checked_add(1)
                .and_then(|n| n.checked_mul(PAGE_SIZE))
                .and_then(|b| pt_start.checked_add(b))
                .ok_or(LayoutError::Overflow(Item::PageTables))?;
            let end = mapping_end(stack_end).ok_or(LayoutError::Overflow(Item::BootStack))?;
            let mapped = (end - virt_base) >> PAGE_SHIFT;
            if mapped > p.nr_pages {
                return Err(too_small(mapped));
            }
            let counts = PtCounts::for_range(virt_base, end);
            if counts.total() <= nr_pt {
                break (counts, end);
            }
            nr_pt = counts.total();
        };
        let page_tables = cursor.take(nr_pt, Item::PageTables)?;
        let boot_stack = cursor.take(1, Item::BootStack)?;

        let last = end - 1;
        if virt_base < LOWER_HALF_END {
            if last >= LOWER_HALF_END {
                return Err(LayoutError::NonCanonical { start: virt_base, end });
            }
        } else if virt_base < HYPERVISOR_VIRT_START {
            return Err(LayoutError::NonCanonical { start: virt_base, end });
        } else if virt_base < HYPERVISOR_VIRT_END {
            return Err(LayoutError::HypervisorHole { start: virt_base, end });
        }

        Ok(Layout {
            virt_base,
            nr_pages: p.nr_pages,
            kernel_start: p.kernel_start,
            kernel_end: p.kernel_end,
            kernel,
            ramdisk,
            ramdisk_len,
            p2m,
            start_info,
            xenstore,
            console,
            page_tables,
            pt_counts,
            boot_stack,
            end,
        })
    }

    /// VA of guest pfn 0.
    pub const fn virt_base(&self) -> u64 {
        self.virt_base
    }

    /// The domain's memory in pages.
    pub const fn nr_pages(&self) -> u64 {
        self.nr_pages
    }

    /// The kernel's exact extent `[start, end)` (the [`Item::Kernel`] region
    /// is this, rounded out to pages).
    pub const fn kernel_extent(&self) -> (u64, u64) {
        (self.kernel_start, self.kernel_end)
    }

    /// The pages holding the kernel.
    pub const fn kernel(&self) -> Region {
        self.kernel
    }

    /// The pages holding the ramdisk, if any.
    pub const fn ramdisk(&self) -> Option<Region> {
        self.ramdisk
    }

    /// The ramdisk's length in bytes (0 if none).
    pub const fn ramdisk_len(&self) -> u64 {
        self.ramdisk_len
    }

    /// The p2m array (`start_info.mfn_list` is its VA).
    pub const fn p2m(&self) -> Region {
        self.p2m
    }

    /// The `start_info` page (the initial `rsi`).
    pub const fn start_info(&self) -> Region {
        self.start_info
    }

    /// The xenstore ring page.
    pub const fn xenstore(&self) -> Region {
        self.xenstore
    }

    /// The console ring page.
    pub const fn console(&self) -> Region {
        self.console
    }

    /// The bootstrap page tables (`pt_base` is its VA, `nr_pt_frames` its
    /// page count): the L4 first, then [`PtCounts::l3`] L3s, the L2s and the
    /// L1s, each level in address order.
    pub const fn page_tables(&self) -> Region {
        self.page_tables
    }

    /// Page-table pages per level.
    pub const fn pt_counts(&self) -> PtCounts {
        self.pt_counts
    }

    /// The boot stack page.
    pub const fn boot_stack(&self) -> Region {
        self.boot_stack
    }

    /// The initial `rsp`: the top of the boot stack page.
    pub const fn stack_top(&self) -> u64 {
        self.boot_stack.end()
    }

    /// End of the initial mapping (exclusive; a 4 MiB boundary).
    pub const fn end(&self) -> u64 {
        self.end
    }

    /// Pages in the initial mapping (`(end - virt_base) / 4096`); these are
    /// pfns `0..mapped_pages()`.
    pub const fn mapped_pages(&self) -> u64 {
        (self.end - self.virt_base) >> PAGE_SHIFT
    }

    /// An item's region (`None` only for an absent ramdisk).
    pub const fn region(&self, item: Item) -> Option<Region> {
        match item {
            Item::Kernel => Some(self.kernel),
            Item::Ramdisk => self.ramdisk,
            Item::P2m => Some(self.p2m),
            Item::StartInfo => Some(self.start_info),
            Item::Xenstore => Some(self.xenstore),
            Item::Console => Some(self.console),
            Item::PageTables => Some(self.page_tables),
            Item::BootStack => Some(self.boot_stack),
        }
    }

    /// The pfn mapped at `va`, if `va` is in the initial mapping.
    pub const fn pfn_of(&self, va: u64) -> Option<u64> {
        if va >= self.virt_base && va < self.end {
            Some((va - self.virt_base) >> PAGE_SHIFT)
        } else {
            None
        }
    }

    /// The VA of `pfn`, if it is in the initial mapping.
    pub const fn va_of(&self, pfn: u64) -> Option<u64> {
        if pfn < self.mapped_pages() {
            Some(self.virt_base + (pfn << PAGE_SHIFT))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINUX: u64 = 0xffff_ffff_8000_0000;

    fn params(kernel_bytes: u64, nr_pages: u64) -> LayoutParams {
        LayoutParams {
            virt_base: LINUX,
            kernel_start: LINUX,
            kernel_end: LINUX + kernel_bytes,
            nr_pages,
            ramdisk_len: None,
        }
    }

    fn region(va: u64, pages: u64) -> Region {
        Region { va, pfn: (va - LINUX) >> 12, pages }
    }

    /// A 2 MiB kernel at 0xffffffff80000000 with 16384 pages (64 MiB).
    #[test]
    fn hand_computed_2mib_kernel() {
        let l = Layout::compute(&params(2 << 20, 16384)).unwrap();
        assert_eq!(l.kernel(), region(LINUX, 512));
        assert_eq!(l.ramdisk(), None);
        // 16384 * 8 bytes = 128 KiB = 32 pages.
        assert_eq!(l.p2m(), region(LINUX + 0x20_0000, 32));
        assert_eq!(l.start_info(), region(LINUX + 0x22_0000, 1));
        assert_eq!(l.xenstore(), region(LINUX + 0x22_1000, 1));
        assert_eq!(l.console(), region(LINUX + 0x22_2000, 1));
        // [LINUX, LINUX + 4 MiB): 1 L4, 1 L3, 1 L2, 2 L1s.
        assert_eq!(l.pt_counts(), PtCounts { l3: 1, l2: 1, l1: 2 });
        assert_eq!(l.page_tables(), region(LINUX + 0x22_3000, 5));
        assert_eq!(l.boot_stack(), region(LINUX + 0x22_8000, 1));
        assert_eq!(l.stack_top(), LINUX + 0x22_9000);
        assert_eq!(l.end(), LINUX + 0x40_0000);
        assert_eq!(l.mapped_pages(), 1024);
        assert_eq!(l.page_tables().pfn, 547);
    }

    /// The 512 KiB rule pushes the end to the next 4 MiB boundary.
    #[test]
    fn hand_computed_slack_rule() {
        // Kernel 3.5 MiB: p2m at +0x380000 (32 pages), start info at
        // +0x3a0000, page tables at +0x3a3000. The stack ends at +0x3ab000,
        // only 0x55000 below 4 MiB, so the mapping ends at 8 MiB, which
        // needs 4 L1s: 1 + 1 + 1 + 4 = 7 page-table pages.
        let l = Layout::compute(&params(0x38_0000, 16384)).unwrap();
        assert_eq!(l.page_tables(), region(LINUX + 0x3a_3000, 7));
        assert_eq!(l.pt_counts(), PtCounts { l3: 1, l2: 1, l1: 4 });
        assert_eq!(l.boot_stack(), region(LINUX + 0x3a_a000, 1));
        assert_eq!(l.end(), LINUX + 0x80_0000);

        // Exactly 512 KiB of slack is enough.
        let stack_end = 0x40_0000 - MAPPING_SLACK;
        assert_eq!(mapping_end(stack_end), Some(0x40_0000));
        assert_eq!(mapping_end(stack_end + 1), Some(0x80_0000));
        assert_eq!(mapping_end(0x40_0000), Some(0x80_0000));
    }

    #[test]
    fn hand_computed_ramdisk() {
        let mut p = params(2 << 20, 16384);
        p.ramdisk_len = Some(0x1_0001); // 17 pages
        let l = Layout::compute(&p).unwrap();
        assert_eq!(l.ramdisk(), Some(region(LINUX + 0x20_0000, 17)));
        assert_eq!(l.ramdisk_len(), 0x1_0001);
        assert_eq!(l.p2m(), region(LINUX + 0x21_1000, 32));
        p.ramdisk_len = Some(0);
        assert_eq!(Layout::compute(&p).unwrap().ramdisk(), None);
    }

    #[test]
    fn unaligned_kernel_start_and_gap_below_it() {
        // Kernel 16 MiB above virt_base, starting mid-page (dom0 allows it).
        let p = LayoutParams {
            virt_base: LINUX,
            kernel_start: LINUX + 0x100_0800,
            kernel_end: LINUX + 0x100_2001,
            nr_pages: 16384,
            ramdisk_len: None,
        };
        let l = Layout::compute(&p).unwrap();
        assert_eq!(l.kernel(), region(LINUX + 0x100_0000, 3));
        assert_eq!(l.p2m().va, LINUX + 0x100_3000);
        assert_eq!(l.end(), LINUX + 0x140_0000);
        assert_eq!(l.pt_counts(), PtCounts { l3: 1, l2: 1, l1: 10 });
        check_properties(&l);
    }

    #[test]
    fn many_tables_across_boundaries() {
        // 1.5 GiB of memory, kernel straddling a 1 GiB boundary at a
        // lower-half base: needs 2 L2s and hundreds of L1s.
        let base = 0x7f_c000_0000;
        let p = LayoutParams {
            virt_base: base,
            kernel_start: base + 0x3ff0_0000,
            kernel_end: base + 0x4010_0000,
            nr_pages: 0x6_0000,
            ramdisk_len: Some(64 << 20),
        };
        let l = Layout::compute(&p).unwrap();
        check_properties(&l);
        assert_eq!(l.pt_counts().l2, 2);
        // And across a 512 GiB boundary.
        let p = LayoutParams { virt_base: 0x7f_ffe0_0000, kernel_start: 0x7f_ffe0_0000, ..p };
        let p = LayoutParams { kernel_end: p.kernel_start + 0x10_0000, ..p };
        let l = Layout::compute(&p).unwrap();
        check_properties(&l);
        assert_eq!(l.pt_counts().l3, 2);
    }

    #[test]
    fn errors() {
        let ok = params(2 << 20, 16384);
        let e = |p: LayoutParams| Layout::compute(&p).unwrap_err();
        assert_eq!(e(LayoutParams { virt_base: LINUX + 8, ..ok }), LayoutError::VirtBaseMisaligned(LINUX + 8));
        assert_eq!(
            e(LayoutParams { kernel_start: LINUX - 1, ..ok }),
            LayoutError::KernelBelowVirtBase { virt_base: LINUX, kernel_start: LINUX - 1 }
        );
        assert_eq!(
            e(LayoutParams { kernel_end: LINUX - 1, kernel_start: LINUX, ..ok }),
            LayoutError::KernelExtentInverted { start: LINUX, end: LINUX - 1 }
        );
        // 1023 pages is one short of the 4 MiB mapping.
        assert_eq!(e(params(2 << 20, 1023)), LayoutError::TooSmall { needed: 1024, nr_pages: 1023 });
        // A kernel bigger than memory is refused before the search.
        let big =
            LayoutParams { virt_base: 0, kernel_start: 0, kernel_end: 1 << 40, nr_pages: 1024, ramdisk_len: None };
        assert_eq!(e(big), LayoutError::TooSmall { needed: (1 << 28) + 5, nr_pages: 1024 });
        let e2 = e(big).to_string();
        assert_eq!(e2, "initial mapping needs 268435461 pages but the domain has only 1024");
        // nr_pages so large its p2m overflows.
        assert_eq!(e(params(2 << 20, u64::MAX)), LayoutError::Overflow(Item::P2m));
        assert_eq!(e(params(2 << 20, u64::MAX / 8)), LayoutError::Overflow(Item::P2m));

        // Near the top of the address space.
        let top = LayoutParams {
            virt_base: 0xffff_ffff_ffe0_0000,
            kernel_start: 0xffff_ffff_ffe0_0000,
            kernel_end: 0xffff_ffff_fff0_0000,
            nr_pages: 16384,
            ramdisk_len: None,
        };
        assert!(matches!(e(top), LayoutError::Overflow(_)));
        assert!(matches!(e(LayoutParams { kernel_end: u64::MAX, ..top }), LayoutError::Overflow(Item::Kernel)));
        let r = LayoutParams { ramdisk_len: Some(u64::MAX - 5), ..top };
        assert!(matches!(e(LayoutParams { kernel_end: top.kernel_start, ..r }), LayoutError::Overflow(_)));

        // Lower half running into the non-canonical gap.
        let low = LayoutParams {
            virt_base: 0x7fff_fff0_0000,
            kernel_start: 0x7fff_fff0_0000,
            kernel_end: 0x7fff_fff8_0000,
            nr_pages: 16384,
            ramdisk_len: None,
        };
        assert_eq!(e(low), LayoutError::NonCanonical { start: 0x7fff_fff0_0000, end: 0x8000_0040_0000 });
        // Starting in the gap.
        let gap = LayoutParams { virt_base: 1 << 47, kernel_start: 1 << 47, kernel_end: (1 << 47) + 4096, ..low };
        assert!(matches!(e(gap), LayoutError::NonCanonical { .. }));
        // In the hypervisor's range.
        let hole = LayoutParams {
            virt_base: HYPERVISOR_VIRT_END - 0x20_0000,
            kernel_start: HYPERVISOR_VIRT_END - 0x20_0000,
            kernel_end: HYPERVISOR_VIRT_END - 0x10_0000,
            ..low
        };
        let msg = e(hole).to_string();
        assert!(msg.contains("reaches into the hypervisor's range 0xffff800000000000..0xffff880000000000"), "{msg}");
        // Just above it is fine.
        let above = LayoutParams {
            virt_base: HYPERVISOR_VIRT_END,
            kernel_start: HYPERVISOR_VIRT_END,
            kernel_end: HYPERVISOR_VIRT_END + 0x1000,
            ..low
        };
        check_properties(&Layout::compute(&above).unwrap());
    }

    /// The invariants every layout keeps.
    pub(crate) fn check_properties(l: &Layout) {
        let regions: Vec<(Item, Region)> = Item::ALL.iter().filter_map(|&i| l.region(i).map(|r| (i, r))).collect();
        let mut prev_end = l.virt_base();
        for (item, r) in &regions {
            assert_eq!(r.va % PAGE_SIZE, 0, "{item} not page-aligned");
            assert!(r.va >= prev_end, "{item} overlaps or is out of order");
            assert_eq!(r.pfn, (r.va - l.virt_base()) >> 12, "{item} pfn");
            assert!(r.end_pfn() <= l.nr_pages(), "{item} beyond nr_pages");
            assert!(*item == Item::Kernel || r.va == prev_end, "{item} not contiguous");
            assert!(r.pages > 0 || *item == Item::Kernel, "{item} empty");
            prev_end = r.end();
        }
        let (ks, ke) = l.kernel_extent();
        assert!(l.kernel().va <= ks && ke <= l.kernel().end());
        assert!(l.end() >= l.stack_top() + MAPPING_SLACK);
        assert!(l.end() - MAPPING_ALIGN < l.stack_top() + MAPPING_SLACK, "end is not the first fitting boundary");
        assert_eq!(l.end() % MAPPING_ALIGN, 0);
        assert!(l.mapped_pages() <= l.nr_pages());
        assert_eq!(l.p2m().pages, (l.nr_pages() * 8).div_ceil(4096));
        assert_eq!(l.page_tables().pages, l.pt_counts().total());
        assert_eq!(l.pt_counts(), PtCounts::for_range(l.virt_base(), l.end()));
        // Minimal: one page-table page fewer could not map a mapping ending
        // where that smaller layout would end.
        let smaller_end = mapping_end(l.page_tables().va + l.page_tables().pages * PAGE_SIZE).unwrap();
        assert!(PtCounts::for_range(l.virt_base(), smaller_end).total() > l.page_tables().pages - 1);
        // Canonical and outside the hypervisor's range.
        let last = l.end() - 1;
        assert!(last < LOWER_HALF_END || l.virt_base() >= HYPERVISOR_VIRT_END);
        assert_eq!(l.pfn_of(l.start_info().va), Some(l.start_info().pfn));
        assert_eq!(l.va_of(l.boot_stack().pfn), Some(l.boot_stack().va));
        assert_eq!(l.pfn_of(l.end()), None);
        assert_eq!(l.va_of(l.mapped_pages()), None);
    }

    #[test]
    fn properties_over_many_inputs() {
        let mut rng = crate::boot::tests::XorShift::new(0x1234_5678);
        let mut ok = 0;
        for _ in 0..3000 {
            let base = match rng.below(3) {
                0 => LINUX,
                1 => rng.below(1 << 35) << 12,
                _ => HYPERVISOR_VIRT_END + (rng.below(1 << 30) << 12),
            };
            let gap = rng.below(1 << 26);
            let len = rng.below(1 << 27);
            let p = LayoutParams {
                virt_base: base,
                kernel_start: base + gap,
                kernel_end: base + gap + len,
                nr_pages: rng.below(1 << 20),
                ramdisk_len: if rng.below(2) == 0 { None } else { Some(rng.below(1 << 27)) },
            };
            if let Ok(l) = Layout::compute(&p) {
                check_properties(&l);
                ok += 1;
            }
        }
        assert!(ok > 500, "only {ok} layouts fitted");
    }
}
