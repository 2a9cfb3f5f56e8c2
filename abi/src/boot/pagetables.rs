//! The bootstrap page tables of a [`Layout`], produced as data.
//!
//! [`build`] calls a sink with `(pt_index, slot, entry)` for every non-zero
//! entry of the page-table pages at [`Layout::page_tables`]: `pt_index` 0 is
//! the L4, then the L3s, L2s and L1s in the order [`Layout::page_tables`]
//! describes (page `pt_index` is guest pfn `page_tables().pfn + pt_index`).
//! Every entry not reported is zero. The flags are libxenguest's:
//!
//! - L4, L3 and L2 entries: `P|RW|A|D|U` ([`UPPER_PROT`], `0x67`);
//! - L1 entries: `P|RW|A` ([`L1_PROT`], `0x23`), except that the L1 entries
//!   mapping the page-table pages themselves are read-only, `P|A`
//!   ([`L1_PROT_RO`]), so the guest can never write its own page tables.
//!
//! What the caller (the hypervisor or the domain builder) still does, and
//! this module deliberately does not: writing the entries into the frames;
//! filling the hypervisor's L4 slots [`RESERVED_L4_SLOTS`] (256..=271, the
//! range `0xffff800000000000..0xffff880000000000`) — no entry is ever
//! emitted for them, since [`Layout::compute`] keeps the mapping out of that
//! range; and, in the hypervisor, its own L1 adjustment when it validates
//! the tables (forcing `U` on present L1 entries, as Xen does for 64-bit PV
//! guests, whose kernel runs in ring 3).

use core::fmt;
use core::ops::RangeInclusive;

use super::layout::{Layout, PAGE_SHIFT};

/// PTE bit: present.
pub const PTE_PRESENT: u64 = 1 << 0;
/// PTE bit: writable.
pub const PTE_RW: u64 = 1 << 1;
/// PTE bit: user-accessible.
pub const PTE_USER: u64 = 1 << 2;
/// PTE bit: accessed.
pub const PTE_ACCESSED: u64 = 1 << 5;
/// PTE bit: dirty.
pub const PTE_DIRTY: u64 = 1 << 6;
/// Flags of L4, L3 and L2 entries: `P|RW|A|D|U`.
pub const UPPER_PROT: u64 = PTE_PRESENT | PTE_RW | PTE_ACCESSED | PTE_DIRTY | PTE_USER;
/// Flags of L1 entries: `P|RW|A`.
pub const L1_PROT: u64 = PTE_PRESENT | PTE_RW | PTE_ACCESSED;
/// Flags of L1 entries mapping a page-table page: `P|A` (read-only).
pub const L1_PROT_RO: u64 = PTE_PRESENT | PTE_ACCESSED;
/// L4 slots that belong to the hypervisor; never emitted.
pub const RESERVED_L4_SLOTS: RangeInclusive<usize> = 256..=271;
/// The largest machine frame number an entry can hold (52-bit addresses).
pub const MAX_MFN: u64 = (1 << 40) - 1;

/// Entries per page-table page.
const ENTRIES: u64 = 512;

/// Why the page tables cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageTableError {
    /// The p2m lookup gave a frame number too large for a PTE.
    MfnTooLarge {
        /// The guest pfn.
        pfn: u64,
        /// What the lookup returned.
        mfn: u64,
    },
}

impl fmt::Display for PageTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PageTableError::MfnTooLarge { pfn, mfn } => {
                write!(f, "pfn {pfn:#x} maps to mfn {mfn:#x}, beyond the largest mfn a page table can hold")
            }
        }
    }
}

/// Produces every non-zero entry of the bootstrap page tables of `layout`.
///
/// `mfn_of(pfn)` is the p2m: the machine frame backing guest pfn `pfn`
/// (called for pfns below [`Layout::mapped_pages`] only). `sink(pt_index,
/// slot, entry)` receives each entry once, level by level from the L4 down,
/// in address order; `slot < 512`. All frame numbers are checked before the
/// sink is first called, so on error nothing has been emitted.
pub fn build(
    layout: &Layout,
    mfn_of: impl Fn(u64) -> u64,
    mut sink: impl FnMut(usize, usize, u64),
) -> Result<(), PageTableError> {
    let mapped = layout.mapped_pages();
    for pfn in 0..mapped {
        let mfn = mfn_of(pfn);
        if mfn > MAX_MFN {
            return Err(PageTableError::MfnTooLarge { pfn, mfn });
        }
    }

    let vb = layout.virt_base();
    let counts = layout.pt_counts();
    let pt = layout.page_tables();
    let table_entry = |index: u64| (mfn_of(pt.pfn + index) << PAGE_SHIFT) | UPPER_PROT;

    // Regions (of 512 GiB, 1 GiB, 2 MiB and 4 KiB) where the mapping starts.
    let (r3, r2, r1, r0) = (vb >> 39, vb >> 30, vb >> 21, vb >> 12);
    let (l3_first, l2_first) = (1, 1 + counts.l3);
    let l1_first = l2_first + counts.l2;

    for k in 0..counts.l3 {
        let region = r3 + k;
        sink(0, (region % ENTRIES) as usize, table_entry(l3_first + k));
    }
    for j in 0..counts.l2 {
        let region = r2 + j;
        let table = l3_first + (region / ENTRIES - r3);
        sink(table as usize, (region % ENTRIES) as usize, table_entry(l2_first + j));
    }
    for i in 0..counts.l1 {
        let region = r1 + i;
        let table = l2_first + (region / ENTRIES - r2);
        sink(table as usize, (region % ENTRIES) as usize, table_entry(l1_first + i));
    }
    for pfn in 0..mapped {
        let page = r0 + pfn;
        let table = l1_first + (page / ENTRIES - r1);
        let prot = if pfn >= pt.pfn && pfn < pt.end_pfn() { L1_PROT_RO } else { L1_PROT };
        sink(table as usize, (page % ENTRIES) as usize, (mfn_of(pfn) << PAGE_SHIFT) | prot);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::layout::{LayoutParams, PAGE_SIZE};
    use super::*;

    const ADDR_MASK: u64 = MAX_MFN << 12;

    /// A scrambled but one-to-one p2m.
    fn mfn_of(pfn: u64) -> u64 {
        0x8_0000 + (pfn ^ 0x2_a5a5)
    }

    /// Builds the tables into fake machine memory (mfn -> page).
    fn build_memory(l: &Layout) -> HashMap<u64, [u64; 512]> {
        let mut mem: HashMap<u64, [u64; 512]> = HashMap::new();
        let pt = l.page_tables();
        for i in 0..pt.pages {
            mem.insert(mfn_of(pt.pfn + i), [0; 512]);
        }
        let mut seen = std::collections::HashSet::new();
        build(l, mfn_of, |index, slot, entry| {
            assert!((index as u64) < pt.pages && slot < 512, "entry outside the tables");
            assert!(seen.insert((index, slot)), "entry ({index}, {slot}) emitted twice");
            assert_ne!(entry, 0);
            if index == 0 {
                assert!(!RESERVED_L4_SLOTS.contains(&slot), "reserved L4 slot {slot} emitted");
            }
            mem.get_mut(&mfn_of(pt.pfn + index as u64)).unwrap()[slot] = entry;
        })
        .unwrap();
        mem
    }

    /// Walks the tables: `Some((mfn, l1 flags))` if `va` is mapped.
    fn walk(mem: &HashMap<u64, [u64; 512]>, l4_mfn: u64, va: u64) -> Option<(u64, u64)> {
        let mut table = mem.get(&l4_mfn).unwrap();
        for shift in [39, 30, 21] {
            let e = table[((va >> shift) & 511) as usize];
            if e == 0 {
                return None;
            }
            assert_eq!(e & !ADDR_MASK, UPPER_PROT, "upper-level flags at {va:#x}");
            table = mem.get(&((e & ADDR_MASK) >> 12)).expect("points at a page-table page");
        }
        let e = table[((va >> 12) & 511) as usize];
        (e != 0).then_some(((e & ADDR_MASK) >> 12, e & !ADDR_MASK))
    }

    pub(crate) fn check_tables(l: &Layout) {
        let mem = build_memory(l);
        let pt = l.page_tables();
        let l4 = mfn_of(pt.pfn);
        let mut present = 0;
        for pfn in 0..l.mapped_pages() {
            let va = l.va_of(pfn).unwrap();
            let (mfn, flags) = walk(&mem, l4, va).unwrap_or_else(|| panic!("{va:#x} not mapped"));
            assert_eq!(mfn, mfn_of(pfn), "{va:#x}");
            let want = if pt.contains(va) { L1_PROT_RO } else { L1_PROT };
            assert_eq!(flags, want, "{va:#x}");
            present += 1;
        }
        // Nothing else is mapped: just outside the mapping, and no stray
        // entries anywhere (entries counted = tables + pages).
        assert_eq!(walk(&mem, l4, l.end()), None);
        assert_eq!(walk(&mem, l4, l.virt_base().wrapping_sub(PAGE_SIZE)), None);
        let entries: u64 = mem.values().map(|t| t.iter().filter(|&&e| e != 0).count() as u64).sum();
        let c = l.pt_counts();
        assert_eq!(entries, c.l3 + c.l2 + c.l1 + present);
        assert_eq!(mem.len() as u64, c.total());
    }

    #[test]
    fn linux_2mib_kernel() {
        let vb = 0xffff_ffff_8000_0000;
        let l = Layout::compute(&LayoutParams {
            virt_base: vb,
            kernel_start: vb,
            kernel_end: vb + (2 << 20),
            nr_pages: 16384,
            ramdisk_len: None,
        })
        .unwrap();
        check_tables(&l);

        // The exact entries of the L4, L3 and L2.
        let mut got = Vec::new();
        build(&l, mfn_of, |i, s, e| {
            if i < 3 {
                got.push((i, s, e))
            }
        })
        .unwrap();
        let pt = l.page_tables().pfn;
        let t = |n: u64| (mfn_of(pt + n) << 12) | 0x67;
        assert_eq!(got, vec![(0, 511, t(1)), (1, 510, t(2)), (2, 0, t(3)), (2, 1, t(4))]);
    }

    #[test]
    fn wide_layouts() {
        for (vb, ks, len, nr_pages) in [
            (0, 0, 0x5000, 2048),
            (0x7f_c000_0000, 0x7f_c000_0000 + 0x3ff0_0000, 0x20_0000, 0x6_0000),
            (0x7f_ffe0_0000, 0x7f_ffe0_0000, 0x10_0000, 0x1000),
            (0xffff_8800_0000_0000, 0xffff_8800_0000_1000, 0x1000, 0x1000),
        ] {
            let p = LayoutParams { virt_base: vb, kernel_start: ks, kernel_end: ks + len, nr_pages, ramdisk_len: None };
            check_tables(&Layout::compute(&p).unwrap());
        }
    }

    #[test]
    fn random_layouts() {
        let mut rng = crate::boot::tests::XorShift::new(77);
        for _ in 0..40 {
            let vb = match rng.below(2) {
                0 => rng.below(1 << 35) << 12,
                _ => 0xffff_8800_0000_0000 + (rng.below(1 << 34) << 12),
            };
            let ks = vb + (rng.below(1 << 12) << 12);
            let p = LayoutParams {
                virt_base: vb,
                kernel_start: ks,
                kernel_end: ks + rng.below(1 << 24),
                nr_pages: 0x2000 + rng.below(1 << 14),
                ramdisk_len: Some(rng.below(1 << 22)),
            };
            if let Ok(l) = Layout::compute(&p) {
                check_tables(&l);
            }
        }
    }

    #[test]
    fn bad_mfn_emits_nothing() {
        let vb = 0xffff_ffff_8000_0000;
        let l = Layout::compute(&LayoutParams {
            virt_base: vb,
            kernel_start: vb,
            kernel_end: vb + 4096,
            nr_pages: 4096,
            ramdisk_len: None,
        })
        .unwrap();
        let mut calls = 0;
        let err = build(&l, |pfn| if pfn == 100 { 1 << 40 } else { pfn }, |_, _, _| calls += 1).unwrap_err();
        assert_eq!(err, PageTableError::MfnTooLarge { pfn: 100, mfn: 1 << 40 });
        assert_eq!(calls, 0);
        assert!(err.to_string().starts_with("pfn 0x64 maps to mfn 0x10000000000"));
    }
}
