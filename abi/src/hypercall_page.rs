//! The hypercall page the hypervisor writes into a 64-bit PV guest.
//!
//! Entry `i` sits at byte `32 * i` and performs hypercall `i`:
//!
//! ```text
//! 51                push %rcx
//! 41 53             push %r11
//! b8 <i as le32>    mov  $i, %eax
//! 0f 05             syscall
//! 41 5b             pop  %r11
//! 59                pop  %rcx
//! c3                ret
//! ```
//!
//! Entry 23 (`iret`) also pushes `rax` and never returns:
//! `51 41 53 50 b8 17 00 00 00 0f 05`. Everything else is `int3` (`0xcc`).

use crate::hypercall::IRET;

/// Bytes per hypercall-page entry.
pub const HYPERCALL_PAGE_ENTRY_SIZE: usize = 32;

/// Entries in the hypercall page (4096 / 32).
pub const HYPERCALL_PAGE_ENTRIES: usize = 4096 / HYPERCALL_PAGE_ENTRY_SIZE;

/// Fills `page` with the 64-bit PV hypercall page.
pub fn write_hypercall_page(page: &mut [u8; 4096]) {
    page.fill(0xcc);
    for (nr, entry) in page.chunks_exact_mut(HYPERCALL_PAGE_ENTRY_SIZE).enumerate() {
        let nr = nr as u32;
        let mov = nr.to_le_bytes();
        if u64::from(nr) == IRET {
            let code = [0x51, 0x41, 0x53, 0x50, 0xb8, mov[0], mov[1], mov[2], mov[3], 0x0f, 0x05];
            entry[..code.len()].copy_from_slice(&code);
        } else {
            let code = [0x51, 0x41, 0x53, 0xb8, mov[0], mov[1], mov[2], mov[3], 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3];
            entry[..code.len()].copy_from_slice(&code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> [u8; 4096] {
        let mut page = [0u8; 4096];
        write_hypercall_page(&mut page);
        page
    }

    #[test]
    fn ordinary_entries() {
        let page = page();
        assert_eq!(
            &page[0..32],
            &[
                0x51, 0x41, 0x53, 0xb8, 0, 0, 0, 0, 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc,
                0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc,
            ]
        );
        // mmu_update (1) and the last entry (127).
        assert_eq!(&page[32..46], &[0x51, 0x41, 0x53, 0xb8, 1, 0, 0, 0, 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3]);
        assert_eq!(
            &page[127 * 32..127 * 32 + 14],
            &[0x51, 0x41, 0x53, 0xb8, 127, 0, 0, 0, 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3]
        );
    }

    #[test]
    fn every_entry_loads_its_own_number() {
        let page = page();
        for i in 0..HYPERCALL_PAGE_ENTRIES {
            let e = &page[i * 32..(i + 1) * 32];
            let imm = if i == 23 { &e[5..9] } else { &e[4..8] };
            assert_eq!(u32::from_le_bytes(imm.try_into().unwrap()), i as u32);
        }
    }

    #[test]
    fn iret_entry() {
        let page = page();
        let e = &page[23 * 32..24 * 32];
        assert_eq!(&e[..11], &[0x51, 0x41, 0x53, 0x50, 0xb8, 0x17, 0, 0, 0, 0x0f, 0x05]);
        assert!(e[11..].iter().all(|&b| b == 0xcc));
    }

    #[test]
    fn padding_is_int3() {
        let page = page();
        for i in 0..HYPERCALL_PAGE_ENTRIES {
            let used = if i == 23 { 11 } else { 14 };
            assert!(page[i * 32 + used..(i + 1) * 32].iter().all(|&b| b == 0xcc));
        }
    }

    #[test]
    fn rewrites_a_dirty_page() {
        let mut dirty = [0x90u8; 4096];
        write_hypercall_page(&mut dirty);
        assert_eq!(dirty, page());
    }
}
