//! The hypervisor's own page tables (the boot tables, for now).

extern "C" {
    /// The boot L4 (boot.rs).
    static mut boot_pml4: [u64; 512];
    /// The boot L3 of the image mapping (boot.rs).
    static boot_pdpt_img: [u64; 512];
    /// The page below the hypervisor stack (boot.rs).
    static boot_stack_guard: [u8; 4096];
}

/// The image mapping's L3 table (its machine frame) and the index of the
/// entry that maps the image.
pub fn image_l3() -> (u64, usize) {
    let mfn = (&raw const boot_pdpt_img as u64 - hv::layout::IMAGE_VIRT_OFFSET) >> 12;
    let index = ((hv::layout::IMAGE_VIRT_OFFSET >> 30) % 512) as usize;
    (mfn, index)
}

/// The address of the page below the hypervisor stack.
pub fn stack_guard_va() -> u64 {
    &raw const boot_stack_guard as u64
}

/// Removes the boot identity map of the low 4 GiB, leaving the lower half
/// of the address space empty for guests.
pub fn drop_identity_map() {
    let l4 = &raw mut boot_pml4;
    // SAFETY: the boot L4 is only touched by the boot CPU, here, with
    // nothing else referring to it; we run from the image mapping (slot
    // 261) on a stack in it, so nothing in use goes through slot 0.
    unsafe { (*l4)[0] = 0 };
    super::cpu::flush_tlb();
}

/// The machine frame of the hypervisor's own (idle) L4.
pub fn idle_l4_mfn() -> u64 {
    (&raw const boot_pml4 as u64 - hv::layout::IMAGE_VIRT_OFFSET) >> 12
}
