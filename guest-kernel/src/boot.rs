//! Start-of-day checks: is the `start_info` page the domain builder left us
//! consistent with Xen's start-of-day layout?
//!
//! The builder lays out, each page-aligned from `VIRT_BASE`: the kernel
//! image, an optional ramdisk, the p2m array at `mfn_list`, the
//! `start_info` page, the xenstore and console pages, the bootstrap page
//! tables at `pt_base` (`nr_pt_frames` of them) and a boot stack page.

use crate::layout::{is_page_aligned, pfn_of, PAGE_SIZE, VIRT_BASE};
use abi::start_info::{
    StartInfo, SIF_INITDOMAIN, SIF_MOD_START_PFN, SIF_MULTIBOOT_MOD, SIF_PM_MASK, SIF_PRIVILEGED, SIF_VIRT_P2M_4TOOLS,
    START_INFO_MAGIC,
};

/// Every `SIF_*` bit Xen 4.17 defines.
const KNOWN_FLAGS: u32 =
    SIF_PRIVILEGED | SIF_INITDOMAIN | SIF_MULTIBOOT_MOD | SIF_MOD_START_PFN | SIF_VIRT_P2M_4TOOLS | SIF_PM_MASK;

/// At most this many pages (1 TiB) is taken as a sane `nr_pages`.
const MAX_SANE_PAGES: u64 = 1 << 28;

/// Checks `si`, found at virtual address `si_va`, for a kernel image that
/// ends (page-aligned, bss included) at `image_end`. Returns the first
/// inconsistency found.
pub fn check_start_info(si: &StartInfo, si_va: u64, image_end: u64) -> Result<(), &'static str> {
    let magic = &si.magic;
    if &magic[..START_INFO_MAGIC.len()] != START_INFO_MAGIC {
        return Err("magic is not xen-3.0-x86_64");
    }
    if !magic[START_INFO_MAGIC.len()..].contains(&0) {
        return Err("magic is not NUL-terminated");
    }
    if si.nr_pages == 0 || si.nr_pages > MAX_SANE_PAGES {
        return Err("nr_pages is 0 or absurd");
    }
    if si.flags & !KNOWN_FLAGS != 0 {
        return Err("flags has unknown bits");
    }
    if si.flags & SIF_INITDOMAIN != 0 && si.flags & SIF_PRIVILEGED == 0 {
        return Err("flags: initial domain but not privileged");
    }
    if si.shared_info == 0 || !is_page_aligned(si.shared_info) {
        return Err("shared_info is not a page-aligned machine address");
    }
    let in_mapping = |va: u64| pfn_of(va).is_some_and(|pfn| pfn < si.nr_pages);
    if !is_page_aligned(si_va) || !in_mapping(si_va) || si_va < image_end {
        return Err("start_info is not a page after the image");
    }
    let p2m_end = si.mfn_list.checked_add(si.nr_pages * 8).ok_or("mfn_list overflows")?;
    if !is_page_aligned(si.mfn_list) || si.mfn_list < image_end || p2m_end > si_va {
        return Err("mfn_list is not between the image and start_info");
    }
    if !is_page_aligned(si.pt_base) || si.pt_base <= si_va {
        return Err("pt_base is not a page after start_info");
    }
    if si.nr_pt_frames < 4 {
        return Err("fewer than 4 bootstrap page-table frames (L4, L3, L2, L1)");
    }
    let pt_end = si.pt_base.checked_add(si.nr_pt_frames * PAGE_SIZE).ok_or("pt_base overflows")?;
    if !in_mapping(pt_end - 1) {
        return Err("bootstrap page tables run past nr_pages");
    }
    if image_end <= VIRT_BASE {
        return Err("image end below VIRT_BASE");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE_END: u64 = VIRT_BASE + 0x40_000;

    /// A start_info laid out as Xen lays out dom0 with 64 MiB.
    fn good() -> (StartInfo, u64) {
        let mut si = StartInfo::new();
        si.nr_pages = 16384;
        si.shared_info = 0x7ff_f000;
        si.flags = SIF_PRIVILEGED | SIF_INITDOMAIN;
        si.mfn_list = IMAGE_END;
        let si_va = IMAGE_END + 0x20_000; // after 128 KiB of p2m
        si.pt_base = si_va + 3 * PAGE_SIZE;
        si.nr_pt_frames = 5;
        (si, si_va)
    }

    #[test]
    fn xens_layout_passes() {
        let (si, va) = good();
        assert_eq!(check_start_info(&si, va, IMAGE_END), Ok(()));
    }

    /// Breaks one thing in a good start_info (and its address).
    type Breaker = fn(&mut StartInfo, &mut u64);

    #[test]
    fn each_inconsistency_is_named() {
        let cases: &[(&str, Breaker)] = &[
            ("magic", |si, _| si.magic[0] = b'X'),
            ("nr_pages", |si, _| si.nr_pages = 0),
            ("unknown bits", |si, _| si.flags |= 1 << 20),
            ("not privileged", |si, _| si.flags = SIF_INITDOMAIN),
            ("shared_info", |si, _| si.shared_info = 0x1234),
            ("start_info", |_, va| *va += 8),
            ("mfn_list", |si, _| si.mfn_list = VIRT_BASE),
            ("pt_base", |si, va| si.pt_base = *va),
            ("fewer than 4", |si, _| si.nr_pt_frames = 3),
            ("past nr_pages", |si, _| si.nr_pt_frames = 20000),
        ];
        for (want, break_it) in cases {
            let (mut si, mut va) = good();
            break_it(&mut si, &mut va);
            let got = check_start_info(&si, va, IMAGE_END).expect_err(want);
            assert!(got.contains(want), "{want}: got '{got}'");
        }
    }
}
