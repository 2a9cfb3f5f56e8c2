//! Attacks through page-table entries: mapping what is not ours, mapping
//! our own tables writable, writing the hypervisor's L4 slots, superpages,
//! linear and cross-level entries, forbidden bits.

use super::lab::{
    bits, data_frame, entry, ext, fill, flush_tlb, free, info, judge, l1_index, m2p_va, m2p_window, mapped, mmu,
    mmu_as, need, pin_cmd, readonly_frame, release_table, target_effect, try_entry, uvm, Call, Lab, Verdict,
    FREE_L2_INDEX, FREE_L3_INDEX, FREE_L4_SLOT, M2P_SLOT, TARGET_VA,
};
use crate::probe;
use abi::mm::{DOMID_SELF, DOMID_XEN};
use guest_kernel::layout::{pte, table_index, va_of_pfn, VIRT_BASE};
use guest_kernel::mm;
use guest_kernel::pagetable::{entry_mfn, leaf_entry, pt_update, table_entry, Level, Prot, HYPERVISOR_SLOTS};
use guest_kernel::text::Msg;
use guest_kernel::{frame, msg};

/// How an attack writes an L1 entry.
#[derive(Clone, Copy)]
enum Via {
    /// `update_va_mapping` of the address.
    UpdateVa,
    /// `mmu_update` of the entry, on behalf of this domain or another.
    MmuUpdate(u16),
}

/// Tries to make [`TARGET_VA`] map `val`; undoes it if it worked.
fn try_map(lab: &Lab, val: u64, via: Via) -> Result<Verdict, Msg> {
    need!(mapped(TARGET_VA)?.is_none(), "{TARGET_VA:#x} is mapped before the attack");
    let r = match via {
        Via::UpdateVa => uvm(TARGET_VA, val),
        Via::MmuUpdate(dom) => mmu_as(&[pt_update(lab.l1, l1_index(TARGET_VA), val)], dom),
    };
    Ok(judge(r, target_effect()?))
}

/// Tries to map one of our frames with `extra` bits set in the entry.
fn try_map_own_with(lab: &Lab, extra: u64) -> Result<Verdict, Msg> {
    let f = data_frame()?;
    let v = try_map(lab, leaf_entry(f.mfn, Prot::KERNEL_RW) | extra, Via::UpdateVa);
    free(f)?;
    v
}

/// Frame 0, read-only: low memory, never a guest's here (Xen lets its
/// dom0 map the first MiB as I/O memory).
pub fn map_frame_0(lab: &Lab) -> Result<Verdict, Msg> {
    try_map(lab, leaf_entry(0, Prot::KERNEL_RO), Via::UpdateVa)
}

/// The hypervisor page table behind L4 slot 256, read-only.
pub fn map_hypervisor_table_ro(lab: &Lab) -> Result<Verdict, Msg> {
    try_map(lab, leaf_entry(lab.hv_m2p_table, Prot::KERNEL_RO), Via::UpdateVa)
}

/// The hypervisor page table behind L4 slot 261 (in its image), writable.
pub fn map_hypervisor_image_rw(lab: &Lab) -> Result<Verdict, Msg> {
    try_map(lab, leaf_entry(lab.hv_image_table, Prot::KERNEL_RW), Via::UpdateVa)
}

/// An M2P frame writable, by `update_va_mapping`.
pub fn map_m2p_rw_update_va(lab: &Lab) -> Result<Verdict, Msg> {
    try_map(lab, leaf_entry(lab.m2p, Prot::KERNEL_RW), Via::UpdateVa)
}

/// An M2P frame writable, by `mmu_update`.
pub fn map_m2p_rw_mmu_update(lab: &Lab) -> Result<Verdict, Msg> {
    try_map(lab, leaf_entry(lab.m2p, Prot::KERNEL_RW), Via::MmuUpdate(DOMID_SELF))
}

/// An M2P frame writable, by `mmu_update` naming the hypervisor as the
/// frame's owner (`DOMID_XEN`, which Xen lets a privileged domain use for
/// read-only mappings of what it shares).
pub fn map_m2p_rw_as_domid_xen(lab: &Lab) -> Result<Verdict, Msg> {
    try_map(lab, leaf_entry(lab.m2p, Prot::KERNEL_RW), Via::MmuUpdate(DOMID_XEN))
}

/// A frame with address bits above any physical address width (40–51).
pub fn pte_above_phys_width(lab: &Lab) -> Result<Verdict, Msg> {
    try_map_own_with(lab, 0xfff << 40)
}

/// Our own frame uncached (PCD | PWT). (Xen allows cache attributes to
/// a domain with I/O privileges, as its dom0 has.)
pub fn l1_uncached(lab: &Lab) -> Result<Verdict, Msg> {
    try_map_own_with(lab, bits::PCD | bits::PWT)
}

/// Our own frame with the PAT bit.
pub fn l1_pat(lab: &Lab) -> Result<Verdict, Msg> {
    try_map_own_with(lab, bits::PSE_OR_PAT)
}

/// The direct map's read-only mapping of our scratch L1 made writable.
pub fn own_l1_rw_update_va(lab: &Lab) -> Result<Verdict, Msg> {
    let pfn = mm::pfn_of_mfn(lab.l1).ok_or_else(|| msg!("the scratch L1 is not ours"))?;
    let va = va_of_pfn(pfn);
    let r = uvm(va, leaf_entry(lab.l1, Prot::KERNEL_RW));
    let now = mapped(va)?.unwrap_or(0);
    let effect = (now & pte::RW != 0).then(|| {
        let _ = uvm(va, leaf_entry(lab.l1, Prot::KERNEL_RO));
        msg!("the L1 is mapped writable at {va:#x} ({now:#x})")
    });
    Ok(judge(r, effect))
}

/// Our (current, pinned) L4 mapped writable at [`TARGET_VA`].
pub fn own_l4_rw_mmu_update(lab: &Lab) -> Result<Verdict, Msg> {
    try_map(lab, leaf_entry(lab.root, Prot::KERNEL_RW), Via::MmuUpdate(DOMID_SELF))
}

/// A plain store into our scratch L1, through its read-only mapping, of
/// an entry mapping the L1 itself writable. (Xen emulates such stores,
/// validating the entry as `mmu_update` would; a store of a valid entry is
/// reported as an `INFO` line, not as an attack.)
pub fn write_pte_through_ro_mapping(lab: &Lab) -> Result<Verdict, Msg> {
    let pfn = mm::pfn_of_mfn(lab.l1).ok_or_else(|| msg!("the scratch L1 is not ours"))?;
    let at = va_of_pfn(pfn) + 8 * l1_index(TARGET_VA) as u64;
    let r = store(at, leaf_entry(lab.l1, Prot::KERNEL_RW));
    let now = entry(lab.l1, l1_index(TARGET_VA))?;
    let effect = (now != 0).then(|| {
        let _ = uvm(TARGET_VA, 0);
        msg!("the L1 entry became {now:#x}")
    });
    // The same with an entry mapping a frame of ours: not an attack.
    let f = data_frame()?;
    let benign = store(at, leaf_entry(f.mfn, Prot::KERNEL_RW));
    let now = entry(lab.l1, l1_index(TARGET_VA))?;
    if now != 0 {
        uvm(TARGET_VA, 0).map_err(|e| msg!("unmapping the entry stored: {e}"))?;
    }
    free(f)?;
    info(format_args!(
        "a valid entry stored through the L1's read-only mapping: {}, the entry became {now:#x}",
        match benign {
            Ok(_) => msg!("no fault (the store was emulated)"),
            Err(how) => how,
        }
    ));
    Ok(judge(r, effect))
}

/// A store of `val` at `at`: `Ok` if it did not fault, else the trap.
fn store(at: u64, val: u64) -> Call {
    match probe::write_u64(at, val) {
        Ok(()) => Ok(0),
        Err(p) => Err(match p.seen {
            Some(s) if s.vector == u64::from(frame::PF) => msg!("#PF error code {:#x}", s.error_code),
            Some(s) => msg!("vector {} error code {:#x}", s.vector, s.error_code),
            None => msg!("no trap?"),
        }),
    }
}

/// A frame we map writable (in the direct map) linked as an L1.
pub fn writable_frame_as_l1(lab: &Lab) -> Result<Verdict, Msg> {
    let f = data_frame()?;
    let v = try_entry(lab.l2, FREE_L2_INDEX + 1, table_entry(f.mfn));
    free(f)?;
    v
}

/// A 2 MiB page (PS) at L2.
pub fn superpage_l2(lab: &Lab) -> Result<Verdict, Msg> {
    let f = data_frame()?;
    let val = ((f.mfn & !0x1ff) << 12) | pte::PRESENT | pte::RW | pte::ACCESSED | pte::DIRTY | pte::PSE;
    let v = try_entry(lab.l2, FREE_L2_INDEX, val);
    free(f)?;
    v
}

/// A 1 GiB page (PS) at L3.
pub fn superpage_l3(lab: &Lab) -> Result<Verdict, Msg> {
    let f = data_frame()?;
    let val = ((f.mfn & !0x3_ffff) << 12) | pte::PRESENT | pte::RW | pte::ACCESSED | pte::DIRTY | pte::PSE;
    let v = try_entry(lab.l3, FREE_L3_INDEX, val);
    free(f)?;
    v
}

/// A writable linear entry: the kernel L4 naming itself read-write.
pub fn linear_rw(lab: &Lab) -> Result<Verdict, Msg> {
    try_entry(lab.root, FREE_L4_SLOT, (lab.root << 12) | pte::PRESENT | pte::RW | pte::USER | pte::ACCESSED)
}

/// A cross-level entry: the kernel L4 naming an L1 (read-only).
pub fn linear_l4_to_l1(lab: &Lab) -> Result<Verdict, Msg> {
    try_entry(lab.root, FREE_L4_SLOT, (lab.l1 << 12) | pte::PRESENT | pte::USER | pte::ACCESSED)
}

/// A cross-level entry: an L2 naming the kernel L4 (read-only).
pub fn linear_l2_to_l4(lab: &Lab) -> Result<Verdict, Msg> {
    try_entry(lab.l2, FREE_L2_INDEX, (lab.root << 12) | pte::PRESENT | pte::USER | pte::ACCESSED)
}

/// The guest's entry for reserved L4 slot `slot` in the attack below: a
/// valid L3 of ours (the kernel image's), so validation would accept it.
fn evil_reserved(lab: &Lab) -> Result<u64, Msg> {
    let image_l3 = entry_mfn(entry(lab.root, table_index(VIRT_BASE, 4))?);
    Ok(table_entry(image_l3))
}

/// `mmu_update` of reserved slot 256 of the kernel L4, pointing it at an
/// L3 of ours.
pub fn reserved_slot_redirect(lab: &Lab) -> Result<Verdict, Msg> {
    try_reserved(lab, evil_reserved(lab)?)
}

/// `mmu_update` clearing reserved slot 256 (the M2P) of the kernel L4.
pub fn reserved_slot_clear(lab: &Lab) -> Result<Verdict, Msg> {
    try_reserved(lab, 0)
}

fn try_reserved(lab: &Lab, val: u64) -> Result<Verdict, Msg> {
    let before = entry(lab.root, M2P_SLOT)?;
    let r = mmu(&[pt_update(lab.root, M2P_SLOT, val)]);
    let now = entry(lab.root, M2P_SLOT)?;
    let effect = (now != before).then(|| {
        let _ = mmu(&[pt_update(lab.root, M2P_SLOT, before)]);
        let _ = flush_tlb();
        msg!("slot {M2P_SLOT} changed from {before:#x} to {now:#x}")
    });
    Ok(judge(r, effect))
}

/// Pins an L4 whose slots 256–271 the guest filled with an L3 of its own:
/// the hypervisor must put its own entries there (Xen overwrites them).
pub fn pin_l4_with_reserved_slots(lab: &Lab) -> Result<Verdict, Msg> {
    let evil = evil_reserved(lab)?;
    let f = readonly_frame(|i| if HYPERVISOR_SLOTS.contains(&i) { evil } else { 0 })?;
    let r = ext(pin_cmd(Level::L4), f.mfn, 0);
    let mut kept = 0;
    let mut differ = Msg::new();
    for i in HYPERVISOR_SLOTS {
        let (e, kernel) = (entry(f.mfn, i)?, entry(lab.root, i)?);
        kept += u32::from(e == evil);
        if e != kernel {
            let _ = core::fmt::Write::write_fmt(&mut differ, format_args!(" {i}: {e:#x} (kernel L4: {kernel:#x})"));
        }
    }
    release_table(f)?;
    info(format_args!(
        "pin_l4_with_reserved_slots: pin gave {r:?}; {kept} reserved slots hold the guest's entry; differing from the kernel L4:{differ}"
    ));
    let effect = (kept > 0).then(|| msg!("{kept} of the reserved slots kept the guest's entry"));
    Ok(match (effect, r) {
        (Some(what), _) => Verdict::Succeeded(what),
        (None, Err(how)) => Verdict::Refused(how),
        (None, Ok(_)) => Verdict::Refused(msg!("overwritten (pinned; slots 256-271 hold the hypervisor's entries)")),
    })
}

/// `update_va_mapping` of an address in the hypervisor's range (the M2P
/// page holding the kernel L4's entry).
pub fn update_va_mapping_hypervisor_va(lab: &Lab) -> Result<Verdict, Msg> {
    let va = m2p_va(lab.root) & !0xfff;
    let before = m2p_window(lab);
    let f = data_frame()?;
    fill(f, 5);
    let r = uvm(va, leaf_entry(f.mfn, Prot::KERNEL_RW));
    let after = m2p_window(lab);
    free(f)?;
    let effect = (after != before).then(|| msg!("the M2P at {va:#x} now reads {:#x}", after[0]));
    Ok(judge(r, effect))
}
