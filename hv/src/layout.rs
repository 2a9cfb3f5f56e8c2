//! The hypervisor's virtual address layout.
//!
//! The hypervisor lives entirely in L4 slots 256–271
//! (`0xFFFF800000000000`–`0xFFFF87FFFFFFFFFF`), which every guest address
//! space shares; the rest of every address space belongs to guests. Within
//! it we follow Xen 4.17's map where guests can see the difference (the
//! read-only M2P at the start of slot 256) and keep Xen's choices elsewhere
//! so that addresses in our logs read like Xen's.
//!
//! | slot | range | use |
//! |------|-------|-----|
//! | 256 | `0xFFFF800000000000`… | read-only machine-to-phys table (guest-visible) |
//! | 261 | `0xFFFF82D080000000`… | hypervisor image (`XEN_VIRT_START`) |
//! | 262–271 | `0xFFFF830000000000`… | direct map of all RAM |

/// First byte of the hypervisor's reserved range (L4 slot 256).
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// One past the last byte of the hypervisor's reserved range (L4 slot 272).
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000;
/// First reserved L4 slot.
pub const FIRST_RESERVED_L4_SLOT: usize = l4_slot(HYPERVISOR_VIRT_START);
/// Last reserved L4 slot (inclusive).
pub const LAST_RESERVED_L4_SLOT: usize = l4_slot(HYPERVISOR_VIRT_END - 1);
/// Number of reserved L4 slots, which every guest L4 shares.
pub const RESERVED_L4_SLOTS: usize = LAST_RESERVED_L4_SLOT - FIRST_RESERVED_L4_SLOT + 1;

/// Start of the guest-readable machine-to-physical table.
pub const MACH2PHYS_VIRT_START: u64 = HYPERVISOR_VIRT_START;
/// End of the machine-to-physical table (256 GiB of 8-byte entries).
pub const MACH2PHYS_VIRT_END: u64 = 0xFFFF_8040_0000_0000;

/// Where the image is linked: virtual address = physical address + this.
/// Must match `VIRT_OFFSET` in `hv/linker.ld` and the boot code.
pub const IMAGE_VIRT_OFFSET: u64 = 0xFFFF_82D0_8000_0000;
/// Physical address the multiboot loader puts the image at.
pub const IMAGE_PHYS_START: u64 = 0x10_0000;

/// Start of the direct map: physical address `p` is at `DIRECTMAP_START + p`.
pub const DIRECTMAP_START: u64 = 0xFFFF_8300_0000_0000;
/// End of the direct map (exclusive); it can cover 5 TiB of RAM.
pub const DIRECTMAP_END: u64 = HYPERVISOR_VIRT_END;
/// How much RAM the boot page tables map in the direct map (8 GiB, 2 MiB
/// pages, one page directory per GiB, so a whole number of GiB); RAM above
/// this is not used yet.
pub const BOOT_DIRECTMAP_BYTES: u64 = 8 << 30;
const _: () = assert!(BOOT_DIRECTMAP_BYTES.is_multiple_of(1 << 30) && BOOT_DIRECTMAP_BYTES <= 512 << 30);

/// Page size in bytes.
pub const PAGE_SIZE: u64 = 4096;
/// log2 of the page size.
pub const PAGE_SHIFT: u32 = 12;

/// The L4 slot (0–511) that translates `va`.
pub const fn l4_slot(va: u64) -> usize {
    ((va >> 39) & 511) as usize
}

/// Whether `va` is canonical (bits 63:47 all equal).
pub const fn is_canonical(va: u64) -> bool {
    let top = va >> 47;
    top == 0 || top == 0x1_ffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_range_is_slots_256_to_271() {
        assert_eq!(FIRST_RESERVED_L4_SLOT, 256);
        assert_eq!(LAST_RESERVED_L4_SLOT, 271);
    }

    #[test]
    fn hypervisor_regions_lie_in_the_reserved_slots() {
        for va in [MACH2PHYS_VIRT_START, MACH2PHYS_VIRT_END - 1, IMAGE_VIRT_OFFSET, DIRECTMAP_START, DIRECTMAP_END - 1]
        {
            let slot = l4_slot(va);
            assert!((256..=271).contains(&slot), "{va:#x} is in slot {slot}");
            assert!(is_canonical(va));
        }
        assert_eq!(l4_slot(IMAGE_VIRT_OFFSET), 261);
        assert_eq!(l4_slot(DIRECTMAP_START), 262);
    }

    #[test]
    fn canonical_addresses() {
        assert!(is_canonical(0x0000_7fff_ffff_ffff));
        assert!(!is_canonical(0x0000_8000_0000_0000));
        assert!(!is_canonical(0xffff_7fff_ffff_ffff));
        assert!(is_canonical(0xffff_8000_0000_0000));
    }
}
