//! Attacks through hypercall arguments: `mmu_update` requests aimed at
//! frames that are not page tables of ours, M2P updates for frames that
//! are not ours, other domains, descriptor hypercalls, pointers into the
//! hypervisor's range, and batches whose list runs into unmapped memory.

use super::lab::{
    batch_raw, data_frame, entry, ext_as, free, judge, judge_call, l1_index, m2p_run, m2p_va, m2p_window, make_ro,
    make_rw, mapped, mm_err, mmu, mmu_as, reservation, target_effect, uvm, Lab, Verdict, DATA_VA, LIST_VA,
    NO_SUCH_DOMAIN, TARGET_VA,
};
use abi::hypercall::{
    MEMORY_OP, MMUEXT_OP, MMU_UPDATE, MULTICALL, SET_GDT, SET_TRAP_TABLE, UPDATE_DESCRIPTOR, UPDATE_VA_MAPPING,
    UPDATE_VA_MAPPING_OTHERDOMAIN, XEN_VERSION,
};
use abi::mm::{
    MmuUpdate, MmuextOp, MulticallEntry, XenMemoryReservation, DOMID_SELF, MMUEXT_PIN_L1_TABLE, MMUEXT_TLB_FLUSH_LOCAL,
    MMUEXT_UNPIN_TABLE, MMU_MACHPHYS_UPDATE, MMU_NORMAL_PT_UPDATE, UVMF_INVLPG, XENMEM_INCREASE_RESERVATION,
};
use abi::sched::XENVER_EXTRAVERSION;
use guest_kernel::hypercall::hv;
use guest_kernel::layout::{pte, PAGE_SIZE};
use guest_kernel::mm::{self, Frame};
use guest_kernel::pagetable::{leaf_entry, pt_update, Prot};
use guest_kernel::text::Msg;
use guest_kernel::{msg, traps};

/// A 64-bit TSS descriptor's low half (a system descriptor, present).
const TSS_DESCRIPTOR: u64 = 0x0000_8900_0000_0067;
/// A flat data descriptor with DPL 3 (one a guest may use).
const DATA_DESCRIPTOR: u64 = 0x00cf_f300_0000_ffff;

/// Runs `attack` and judges it by whether the M2P entries around the
/// kernel L4's changed.
fn m2p_must_stay(lab: &Lab, attack: impl FnOnce() -> super::lab::Call) -> Verdict {
    let before = m2p_window(lab);
    let r = attack();
    let after = m2p_window(lab);
    let effect = (after != before).then(|| {
        let i = (0..8).find(|&i| after[i] != before[i]).unwrap_or(0);
        msg!("M2P[{:#x}] went from {:#x} to {:#x}", lab.root - 4 + i as u64, before[i], after[i])
    });
    judge(r, effect)
}

/// `MMU_MACHPHYS_UPDATE` for a frame of the M2P itself.
pub fn machphys_update_foreign(lab: &Lab) -> Result<Verdict, Msg> {
    let [before] = m2p_run(lab.m2p);
    let r = mmu(&[MmuUpdate { ptr: (lab.m2p << 12) | MMU_MACHPHYS_UPDATE, val: 0x1234 }]);
    let [after] = m2p_run(lab.m2p);
    let effect = (after != before).then(|| msg!("M2P[{:#x}] went from {before:#x} to {after:#x}", lab.m2p));
    Ok(judge(r, effect))
}

/// `mmu_update` whose `ptr` is an entry of the M2P frame.
pub fn mmu_update_into_m2p(lab: &Lab) -> Result<Verdict, Msg> {
    let ptr = (lab.m2p << 12) + 8 * (lab.root & 511);
    Ok(m2p_must_stay(lab, || mmu(&[MmuUpdate { ptr: ptr | MMU_NORMAL_PT_UPDATE, val: 0 }])))
}

/// `mmu_update` whose `ptr` is an entry of the hypervisor's M2P table,
/// pointing it at a frame of ours.
pub fn mmu_update_into_hypervisor_table(lab: &Lab) -> Result<Verdict, Msg> {
    let f = data_frame()?;
    let v = m2p_must_stay(lab, || {
        mmu(&[MmuUpdate { ptr: lab.hv_m2p_table << 12, val: leaf_entry(f.mfn, Prot::KERNEL_RW) }])
    });
    free(f)?;
    Ok(v)
}

/// `mmu_update` whose `ptr` is 4 bytes into an L1 entry (a write
/// straddling two entries).
pub fn mmu_update_misaligned_ptr(lab: &Lab) -> Result<Verdict, Msg> {
    let f = data_frame()?;
    let k = l1_index(DATA_VA);
    let before = [entry(lab.l1, k)?, entry(lab.l1, k + 1)?];
    let ptr = (lab.l1 << 12) + 8 * k as u64 + 4;
    let r = mmu(&[MmuUpdate { ptr, val: leaf_entry(f.mfn, Prot::KERNEL_RO) }]);
    let after = [entry(lab.l1, k)?, entry(lab.l1, k + 1)?];
    let effect = (after != before).then(|| {
        msg!("entries {k}, {} went from {:#x}, {:#x} to {:#x}, {:#x}", k + 1, before[0], before[1], after[0], after[1])
    });
    for (i, e) in after.iter().enumerate() {
        if *e != before[i] {
            let _ = uvm(DATA_VA + i as u64 * PAGE_SIZE, before[i]);
        }
    }
    free(f)?;
    Ok(match (effect, r) {
        (Some(e), _) => Verdict::Succeeded(e),
        (None, r) => judge_call(r, "accepted a misaligned entry address"),
    })
}

/// The verdict on an attempt to map our frame `f` at [`TARGET_VA`] on
/// behalf of a domain that does not exist; frees `f`.
fn judge_nonexistent_domid(r: super::lab::Call, f: Frame) -> Result<Verdict, Msg> {
    let effect = target_effect()?;
    free(f)?;
    Ok(match effect {
        Some(e) => Verdict::Succeeded(e),
        None => judge_call(r, "acted for a domain that does not exist"),
    })
}

/// `mmu_update` whose `ptr` names a machine frame far beyond memory.
pub fn mmu_update_huge_ptr(_: &Lab) -> Result<Verdict, Msg> {
    let r = mmu(&[MmuUpdate { ptr: 0xFFFF_FFFF_FFFF_F000 | MMU_NORMAL_PT_UPDATE, val: 0 }]);
    Ok(judge_call(r, "accepted an entry in a frame beyond memory"))
}

/// `mmu_update` mapping a frame of ours on behalf of a domain that does
/// not exist.
pub fn mmu_update_nonexistent_domid(lab: &Lab) -> Result<Verdict, Msg> {
    let f = data_frame()?;
    let r = mmu_as(&[pt_update(lab.l1, l1_index(TARGET_VA), leaf_entry(f.mfn, Prot::KERNEL_RW))], NO_SUCH_DOMAIN);
    judge_nonexistent_domid(r, f)
}

/// `mmuext_op` pinning a frame of ours on behalf of a domain that does
/// not exist.
pub fn mmuext_op_nonexistent_domid(_: &Lab) -> Result<Verdict, Msg> {
    let f = data_frame()?;
    make_ro(f)?;
    let r = ext_as(MMUEXT_PIN_L1_TABLE, f.mfn, 0, NO_SUCH_DOMAIN);
    if r.is_ok() {
        let _ = ext_as(MMUEXT_UNPIN_TABLE, f.mfn, 0, DOMID_SELF);
    }
    make_rw(f)?;
    free(f)?;
    Ok(judge_call(r, "acted for a domain that does not exist"))
}

/// `set_gdt` of `frames` holding `entries` descriptors; removes the GDT
/// again if it was installed.
fn try_set_gdt(frames: &[u64], entries: u64) -> super::lab::Call {
    // SAFETY: the kernel loads no selector of a guest GDT, so installing
    // one (if the hypervisor wrongly allowed it) changes nothing it uses;
    // the hypervisor reads `frames.len()` u64s.
    let r = unsafe { hv().call(SET_GDT, [frames.as_ptr() as u64, entries, 0, 0, 0]) }.map_err(super::lab::errno);
    if r.is_ok() {
        // SAFETY: as above; 0 entries removes the GDT.
        let _ = unsafe { hv().call(SET_GDT, [frames.as_ptr() as u64, 0, 0, 0, 0]) };
    }
    r
}

/// `set_gdt` of a read-only frame of ours holding a TSS descriptor.
pub fn set_gdt_tss(_: &Lab) -> Result<Verdict, Msg> {
    let f = data_frame()?;
    write_entries(f, &[(1, TSS_DESCRIPTOR), (2, 0), (3, DATA_DESCRIPTOR)]);
    make_ro(f)?;
    let r = try_set_gdt(&[f.mfn], 4);
    let back = make_rw(f);
    let effect = back.as_ref().err().map(|e| msg!("the frame stayed a descriptor page: {e}"));
    if back.is_err() {
        make_rw(f)?;
    }
    free(f)?;
    Ok(match effect {
        Some(e) => Verdict::Succeeded(e),
        None => judge_call(r, "installed a GDT with a TSS descriptor"),
    })
}

/// `set_gdt` of our scratch L1 (a page table in use).
pub fn set_gdt_page_table(lab: &Lab) -> Result<Verdict, Msg> {
    Ok(judge_call(try_set_gdt(&[lab.l1], 16), "installed a page table as the GDT"))
}

/// Installs a GDT of one read-only frame of ours holding one data
/// descriptor, runs `attack` on the frame, and removes the GDT again.
fn with_gdt(attack: impl FnOnce(Frame) -> Result<Verdict, Msg>) -> Result<Verdict, Msg> {
    let g = data_frame()?;
    write_entries(g, &[(1, DATA_DESCRIPTOR)]);
    make_ro(g)?;
    let v = match try_set_gdt_kept(&[g.mfn], 2) {
        Ok(_) => {
            let v = attack(g);
            // SAFETY: 0 entries removes the GDT, which nothing uses.
            let _ = unsafe { hv().call(SET_GDT, [0, 0, 0, 0, 0]) };
            v
        }
        Err(e) => Err(msg!("set_gdt of a frame of data descriptors: {e}")),
    };
    make_rw(g)?;
    free(g)?;
    v
}

/// `set_gdt(frames, entries)`, kept installed if it works.
fn try_set_gdt_kept(frames: &[u64], entries: u64) -> super::lab::Call {
    // SAFETY: the kernel loads no selector of a guest GDT; the hypervisor
    // reads `frames.len()` u64s.
    unsafe { hv().call(SET_GDT, [frames.as_ptr() as u64, entries, 0, 0, 0]) }.map_err(super::lab::errno)
}

/// The frame of an installed GDT mapped writable.
pub fn gdt_frame_writable(_: &Lab) -> Result<Verdict, Msg> {
    with_gdt(|g| {
        let r = uvm(g.va(), leaf_entry(g.mfn, Prot::KERNEL_RW));
        let now = mapped(g.va())?.unwrap_or(0);
        let effect = (now & pte::RW != 0).then(|| {
            let _ = make_ro(g);
            msg!("the GDT frame is mapped writable ({now:#x})")
        });
        Ok(judge(r, effect))
    })
}

/// `update_descriptor` of a TSS descriptor into an installed GDT frame.
pub fn update_descriptor_installed_gdt(_: &Lab) -> Result<Verdict, Msg> {
    with_gdt(|g| {
        // SAFETY: the write, if the hypervisor wrongly allowed it, lands
        // in a GDT the kernel does not use.
        let r = unsafe { hv().call(UPDATE_DESCRIPTOR, [(g.mfn << 12) + 16, TSS_DESCRIPTOR, 0, 0, 0]) }
            .map_err(super::lab::errno);
        // SAFETY: the frame is mapped read-only in the direct map.
        let now = unsafe { (g.va() as *const u64).wrapping_add(2).read_volatile() };
        Ok(judge(r, (now != 0).then(|| msg!("entry 2 of the GDT holds {now:#x}"))))
    })
}

/// `update_descriptor` of a valid data descriptor into our scratch L1.
pub fn update_descriptor_page_table(lab: &Lab) -> Result<Verdict, Msg> {
    let k = l1_index(TARGET_VA);
    let before = entry(lab.l1, k)?;
    // SAFETY: if the hypervisor wrongly allowed it, the write lands in an
    // unused entry of the scratch L1, undone below.
    let r = unsafe { hv().call(UPDATE_DESCRIPTOR, [(lab.l1 << 12) + 8 * k as u64, DATA_DESCRIPTOR, 0, 0, 0]) }
        .map_err(super::lab::errno);
    let now = entry(lab.l1, k)?;
    let effect = (now != before).then(|| {
        let _ = uvm(TARGET_VA, 0);
        msg!("the L1 entry became {now:#x}")
    });
    Ok(judge(r, effect))
}

/// `update_descriptor` of a TSS descriptor into a writable frame of ours.
pub fn update_descriptor_tss(_: &Lab) -> Result<Verdict, Msg> {
    let f = data_frame()?;
    // SAFETY: the frame is ours and holds nothing the kernel uses.
    let r = unsafe { hv().call(UPDATE_DESCRIPTOR, [(f.mfn << 12) + 8, TSS_DESCRIPTOR, 0, 0, 0]) }
        .map_err(super::lab::errno);
    // SAFETY: `f` is mapped read-write in the direct map.
    let now = unsafe { (f.va() as *const u64).wrapping_add(1).read_volatile() };
    free(f)?;
    let effect = (now != 0).then(|| msg!("the frame holds {now:#x}"));
    Ok(judge(r, effect))
}

fn write_entries(f: Frame, what: &[(usize, u64)]) {
    for &(i, v) in what {
        // SAFETY: `f` is ours, mapped read-write in the direct map.
        unsafe { (f.va() as *mut u64).wrapping_add(i).write_volatile(v) };
    }
}

/// `mmu_update` with its request list in the hypervisor's range (the M2P,
/// which the guest may read but a hypercall must not take arguments from).
pub fn list_in_hypervisor_range(_: &Lab) -> Result<Verdict, Msg> {
    // SAFETY: the hypervisor must refuse the pointer; the M2P's entries
    // as requests would name frames that are not page tables of ours.
    let (r, done) = unsafe { batch_raw(MMU_UPDATE, m2p_va(0), 1, DOMID_SELF) };
    Ok(judge_call(r.map(|_| u64::from(done)), "read requests from the hypervisor's range"))
}

/// `mmu_update` of one harmless request with `*done` in the M2P.
pub fn done_into_m2p(lab: &Lab) -> Result<Verdict, Msg> {
    let f = data_frame()?;
    let req = MmuUpdate { ptr: (f.mfn << 12) | MMU_MACHPHYS_UPDATE, val: f.pfn };
    let args = [&req as *const MmuUpdate as u64, 1, m2p_va(lab.root), u64::from(DOMID_SELF), 0];
    // SAFETY: the request records the frame's own pfn again; `*done`
    // points where the hypervisor must not write.
    let v = m2p_must_stay(lab, || unsafe { hv().call(MMU_UPDATE, args) }.map_err(super::lab::errno));
    free(f)?;
    Ok(v)
}

/// `xen_version(XENVER_extraversion)` writing its 16 bytes into the M2P.
pub fn xen_version_into_m2p(lab: &Lab) -> Result<Verdict, Msg> {
    Ok(m2p_must_stay(lab, || {
        // SAFETY: the output pointer is in the hypervisor's range, which
        // the hypervisor must refuse to write.
        unsafe { hv().call(XEN_VERSION, [XENVER_EXTRAVERSION.into(), m2p_va(lab.root), 0, 0, 0]) }
            .map_err(super::lab::errno)
    }))
}

/// `memory_op(increase_reservation)` with its argument in the hypervisor's
/// range (its direct map).
pub fn memory_op_arg_in_hypervisor_range(_: &Lab) -> Result<Verdict, Msg> {
    let before = reservation()?;
    // SAFETY: the argument is in the hypervisor's range, which the
    // hypervisor must refuse to read.
    let r = match unsafe { hv().call(MEMORY_OP, [XENMEM_INCREASE_RESERVATION.into(), 0xFFFF_8300_0000_0000, 0, 0, 0]) }
    {
        // Xen answers an unreadable argument with the extents done: none.
        Ok(0) => Err(msg!("0 extents")),
        r => r.map_err(super::lab::errno),
    };
    let after = reservation()?;
    let effect = (after != before).then(|| msg!("the reservation went from {before} to {after}"));
    Ok(match effect {
        Some(e) => Verdict::Succeeded(e),
        None => judge_call(r, "read a reservation from the hypervisor's range"),
    })
}

/// A multicall of one `update_va_mapping` mapping an M2P frame writable.
pub fn multicall_map_m2p_rw(lab: &Lab) -> Result<Verdict, Msg> {
    let mut call = MulticallEntry {
        op: UPDATE_VA_MAPPING,
        result: 0,
        args: [TARGET_VA, leaf_entry(lab.m2p, Prot::KERNEL_RW), UVMF_INVLPG, 0, 0, 0],
    };
    // SAFETY: the one call must be refused; the hypervisor writes its
    // result into `call`.
    let r = unsafe { hv().call(MULTICALL, [&mut call as *mut MulticallEntry as u64, 1, 0, 0, 0]) };
    let effect = target_effect()?;
    let result = call.result as i64;
    Ok(match (effect, r) {
        (Some(e), _) => Verdict::Succeeded(e),
        (None, Err(e)) => Verdict::Refused(msg!("multicall: {}", e.name())),
        (None, Ok(_)) => match abi::Errno::from_ret(result) {
            Some(e) => Verdict::Refused(msg!("{} in the entry", e.name())),
            None => Verdict::Succeeded(msg!("the entry's result is {result:#x}")),
        },
    })
}

/// A multicall whose list is in the hypervisor's range (the M2P, where
/// the results would be written).
pub fn multicall_list_in_hypervisor_range(lab: &Lab) -> Result<Verdict, Msg> {
    Ok(m2p_must_stay(lab, || {
        // SAFETY: the hypervisor must refuse the list; it is not ours.
        unsafe { hv().call(MULTICALL, [m2p_va(lab.root) & !63, 1, 0, 0, 0]) }.map_err(super::lab::errno)
    }))
}

/// `increase_reservation` whose extent list (where the new frames'
/// numbers are written) is in the M2P.
pub fn increase_reservation_list_in_hypervisor_range(lab: &Lab) -> Result<Verdict, Msg> {
    let before = reservation()?;
    let arg = XenMemoryReservation {
        extent_start: m2p_va(lab.root),
        nr_extents: 1,
        extent_order: 0,
        mem_flags: 0,
        domid: DOMID_SELF,
        _pad0: [0; 3],
    };
    let v = m2p_must_stay(lab, || {
        // SAFETY: the hypervisor reads `arg`; the list it points to is
        // where the hypervisor must not write.
        match unsafe { hv().call(MEMORY_OP, [XENMEM_INCREASE_RESERVATION.into(), &arg as *const _ as u64, 0, 0, 0]) } {
            Ok(0) => Err(msg!("0 extents")),
            r => r.map_err(super::lab::errno),
        }
    });
    let after = reservation()?;
    Ok(match v {
        _ if after != before => Verdict::Succeeded(msg!("the reservation went from {before} to {after}")),
        v => v,
    })
}

/// `set_trap_table` reading its table from the hypervisor's range (the
/// M2P). The kernel's table is installed again afterwards.
pub fn set_trap_table_in_hypervisor_range(_: &Lab) -> Result<Verdict, Msg> {
    // SAFETY: the table must be refused; if it were taken, no trap can
    // happen before the kernel's own table is installed again below.
    let r = unsafe { hv().call(SET_TRAP_TABLE, [m2p_va(0), 0, 0, 0, 0]) }.map_err(super::lab::errno);
    traps::install(&[]).map_err(|e| msg!("installing the kernel's trap table again: {e}"))?;
    Ok(judge_call(r, "installed a trap table from the hypervisor's range"))
}

/// `update_va_mapping_otherdomain` on behalf of a domain that does not
/// exist.
pub fn update_va_mapping_nonexistent_domid(_: &Lab) -> Result<Verdict, Msg> {
    let f = data_frame()?;
    let args = [TARGET_VA, leaf_entry(f.mfn, Prot::KERNEL_RW), UVMF_INVLPG, u64::from(NO_SUCH_DOMAIN), 0];
    // SAFETY: the mapping, if made, is of a frame of ours at the unused
    // TARGET_VA, undone below.
    let r = unsafe { hv().call(UPDATE_VA_MAPPING_OTHERDOMAIN, args) }.map_err(super::lab::errno);
    judge_nonexistent_domid(r, f)
}

/// A batch of `i32::MAX` requests whose list starts with one harmless
/// request at the end of a mapped page, followed by an unmapped page: it
/// must stop with `-EFAULT` after one, not run on or hang.
fn runs_off(nr: u64, write_first: impl FnOnce(u64, Frame), size: u64) -> Result<Verdict, Msg> {
    let page = data_frame()?;
    mm::map(LIST_VA, page.mfn, Prot::KERNEL_RW).map_err(mm_err("mapping the list page"))?;
    let r = if mapped(LIST_VA + PAGE_SIZE)?.is_some() {
        Err(msg!("the page after the list is mapped"))
    } else {
        let list = LIST_VA + PAGE_SIZE - size;
        write_first(list, page);
        // SAFETY: the one readable request changes nothing; the rest of
        // the list is unmapped.
        Ok(unsafe { batch_raw(nr, list, i32::MAX as u64, DOMID_SELF) })
    };
    // SAFETY: nothing references the list page.
    unsafe { mm::unmap(LIST_VA) }.map_err(mm_err("unmapping the list page"))?;
    free(page)?;
    let (r, done) = r?;
    Ok(match r {
        Ok(v) => Verdict::Succeeded(msg!("returned {v} with {done} done")),
        Err(how) if done == 1 => Verdict::Refused(msg!("{how} after 1 done")),
        Err(how) => Verdict::Succeeded(msg!("{how} after {done} done, want 1")),
    })
}

/// `mmu_update` with a huge count whose list runs into an unmapped page.
pub fn mmu_update_runs_off_mapped(_: &Lab) -> Result<Verdict, Msg> {
    runs_off(
        MMU_UPDATE,
        |list, page| {
            let req = MmuUpdate { ptr: (page.mfn << 12) | MMU_MACHPHYS_UPDATE, val: page.pfn };
            // SAFETY: `list` is the last 16 bytes of the page just mapped
            // read-write at LIST_VA.
            unsafe { (list as *mut MmuUpdate).write_volatile(req) };
        },
        16,
    )
}

/// `mmuext_op` with a huge count whose list runs into an unmapped page.
pub fn mmuext_op_runs_off_mapped(_: &Lab) -> Result<Verdict, Msg> {
    runs_off(
        MMUEXT_OP,
        |list, _| {
            let op = MmuextOp { cmd: MMUEXT_TLB_FLUSH_LOCAL, ..MmuextOp::default() };
            // SAFETY: `list` is the last 24 bytes of the page just mapped
            // read-write at LIST_VA.
            unsafe { (list as *mut MmuextOp).write_volatile(op) };
        },
        24,
    )
}
