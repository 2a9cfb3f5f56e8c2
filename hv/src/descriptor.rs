//! Guest segment descriptors: which a 64-bit PV guest may install.
//!
//! A guest's GDT (`set_gdt`) and descriptor updates (`update_descriptor`)
//! pass through [`check_descriptor`], following Xen's rules for a 64-bit PV
//! guest: a descriptor that is not present is harmless; code and data
//! descriptors are allowed with their privilege raised to 3 (the guest
//! kernel runs in ring 3); system descriptors (TSS, LDT, gates) are refused,
//! since they could hand ring-0 state or control to the guest.

/// Present.
const P: u64 = 1 << 47;
/// Code/data (as opposed to system).
const S: u64 = 1 << 44;
/// Descriptor privilege level.
const DPL: u64 = 3 << 45;

/// The value to install for guest descriptor `d`, or `None` if it may not
/// be installed.
pub const fn check_descriptor(d: u64) -> Option<u64> {
    if d & P == 0 {
        Some(d)
    } else if d & S == 0 {
        None
    } else {
        Some(d | DPL)
    }
}

/// Whether every descriptor of a page may be installed.
pub fn page_ok(page: &[u64; 512]) -> bool {
    page.iter().all(|&d| check_descriptor(d).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_and_data_get_dpl_3() {
        // Ring-0 flat code and data, as a native kernel would write them.
        assert_eq!(check_descriptor(0x00af_9b00_0000_ffff), Some(0x00af_fb00_0000_ffff));
        assert_eq!(check_descriptor(0x00cf_9300_0000_ffff), Some(0x00cf_f300_0000_ffff));
        assert_eq!(check_descriptor(0x00af_fb00_0000_ffff), Some(0x00af_fb00_0000_ffff));
    }

    #[test]
    fn system_descriptors_are_refused_unless_not_present() {
        assert_eq!(check_descriptor(0x0000_8900_0000_0067), None, "TSS");
        assert_eq!(check_descriptor(0x0000_8200_0000_0fff), None, "LDT");
        assert_eq!(check_descriptor(0xffff_8c00_e008_1000), None, "call gate");
        assert_eq!(check_descriptor(0x0000_0900_0000_0067), Some(0x0000_0900_0000_0067), "not present");
        assert_eq!(check_descriptor(0), Some(0));
        let mut page = [0u64; 512];
        assert!(page_ok(&page));
        page[7] = 0x0000_8900_0000_0067;
        assert!(!page_ok(&page));
    }
}
