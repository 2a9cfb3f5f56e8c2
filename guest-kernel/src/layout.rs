//! Where the kernel lives and how pages are described: link address, page
//! size, page-table entry bits, pfn arithmetic, the address-space map.
//!
//! The image is linked at [`VIRT_BASE`] with `PADDR_OFFSET` 0, so the domain
//! builder places it at guest pfn 0 and guest pfn `n` is mapped at
//! `VIRT_BASE + n * PAGE_SIZE` in the initial mapping (Xen's start of day).
//! `mm` keeps that rule for every guest frame (the *direct map*), so each
//! frame, page tables included, has one kernel address, [`va_of_pfn`].
//!
//! | L4 slot | range | what |
//! |---|---|---|
//! | 0 | [`USER_CODE`], [`USER_STACK`] | the user task (its own L4 only) |
//! | 256..272 | `0xFFFF800000000000`.. | the hypervisor's (M2P first) |
//! | 509 | [`SCRATCH_BASE`].. | mappings the selftest makes and removes |
//! | 510 | [`HEAP_BASE`].. | the kernel heap, [`HEAP_MAX`] at most |
//! | 511 | [`VIRT_BASE`].. | image, boot items, then the direct map |

/// The kernel's link address and `VIRT_BASE` note: the top 2 GiB, where the
/// kernel code model works (keep in sync with `linker.ld`).
pub const VIRT_BASE: u64 = 0xFFFF_FFFF_8000_0000;

/// `PADDR_OFFSET` note: `virt_offset = VIRT_BASE - PADDR_OFFSET` maps the
/// image's `p_paddr` (= `p_vaddr - VIRT_BASE`) back to its link address.
pub const PADDR_OFFSET: u64 = 0;

/// Bytes per page.
pub const PAGE_SIZE: u64 = 4096;

/// A p2m entry for a pfn without a frame.
pub const INVALID_P2M_ENTRY: u64 = u64::MAX;

/// x86-64 page-table entry bits.
pub mod pte {
    /// Present.
    pub const PRESENT: u64 = 1 << 0;
    /// Writable.
    pub const RW: u64 = 1 << 1;
    /// User-accessible (forced on for PV guests by the hypervisor).
    pub const USER: u64 = 1 << 2;
    /// Accessed.
    pub const ACCESSED: u64 = 1 << 5;
    /// Dirty.
    pub const DIRTY: u64 = 1 << 6;
    /// Large page (at L2/L3; a PV guest may not set it).
    pub const PSE: u64 = 1 << 7;
    /// The frame-address bits of an entry (bits 12..52).
    pub const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
}

/// Most guest frames the direct map can hold: the top 2 GiB, from
/// [`VIRT_BASE`] to the end of the address space.
pub const MAX_DIRECT_PFNS: u64 = VIRT_BASE.wrapping_neg() / PAGE_SIZE;

/// Where the kernel heap starts (L4 slot 510).
pub const HEAP_BASE: u64 = 0xFFFF_FF00_0000_0000;

/// The most bytes the heap maps.
pub const HEAP_MAX: u64 = 64 << 20;

/// A region for mappings made and removed on purpose (L4 slot 509).
pub const SCRATCH_BASE: u64 = 0xFFFF_FE80_0000_0000;

/// The user task's code page (mapped read-only, user).
pub const USER_CODE: u64 = 0x0000_0000_0040_0000;

/// The user task's stack page (mapped writable, user); the stack starts
/// at its top.
pub const USER_STACK: u64 = 0x0000_0000_0080_0000;

/// Whether `addr` is a multiple of the page size.
pub const fn is_page_aligned(addr: u64) -> bool {
    addr.is_multiple_of(PAGE_SIZE)
}

/// The guest pfn of an address in the initial mapping, if it is inside it.
pub const fn pfn_of(va: u64) -> Option<u64> {
    if va >= VIRT_BASE {
        Some((va - VIRT_BASE) / PAGE_SIZE)
    } else {
        None
    }
}

/// The virtual address of guest pfn `pfn` in the initial mapping.
pub const fn va_of_pfn(pfn: u64) -> u64 {
    VIRT_BASE.wrapping_add(pfn.wrapping_mul(PAGE_SIZE))
}

/// The index of `va` in a level-`level` page table (1 = L1 ... 4 = L4).
pub const fn table_index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * (level - 1))) & 511) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pfns_round_trip() {
        assert_eq!(pfn_of(VIRT_BASE), Some(0));
        assert_eq!(pfn_of(VIRT_BASE + 5 * PAGE_SIZE + 7), Some(5));
        assert_eq!(pfn_of(0x1000), None);
        assert_eq!(va_of_pfn(3), VIRT_BASE + 0x3000);
    }

    #[test]
    fn regions_sit_in_their_slots() {
        assert_eq!(MAX_DIRECT_PFNS, 1 << 19);
        assert_eq!(table_index(HEAP_BASE, 4), 510);
        assert_eq!(table_index(HEAP_BASE + HEAP_MAX - 1, 4), 510);
        assert_eq!(table_index(SCRATCH_BASE, 4), 509);
        assert_eq!(table_index(USER_CODE, 4), 0);
        assert_ne!(table_index(USER_CODE, 2), table_index(USER_STACK, 2));
    }

    #[test]
    fn the_kernel_sits_in_the_last_l4_slot() {
        assert_eq!(table_index(VIRT_BASE, 4), 511);
        assert_eq!(table_index(VIRT_BASE, 3), 510);
        assert_eq!(table_index(VIRT_BASE, 2), 0);
        assert_eq!(table_index(VIRT_BASE + 0x20_1000, 1), 1);
    }
}
