//! Attacks on frame ownership and page types: giving back frames still in
//! use, pinning and unpinning what should not be, loading base pointers
//! that are not validated L4s, clearing and copying pages the hypervisor
//! must not let the guest write or read.

use super::lab::{
    data_frame, entries, entry, ext, fill, flush_tlb, free, give_back, holds, info, judge, judge_call, l1_index,
    m2p_run, m2p_window, make_ro, make_rw, mapped, mm_err, mmu, need, pin_cmd, pinned_table, read_cr3, readonly_frame,
    release_table, replace_lost_frame, reservation, try_entry, uvm, Call, Lab, Verdict, DATA_VA, FREE_L4_SLOT,
    LINKED_L2_INDEX, TARGET_VA,
};
use crate::probe;
use abi::mm::{
    MMUEXT_CLEAR_PAGE, MMUEXT_COPY_PAGE, MMUEXT_NEW_BASEPTR, MMUEXT_NEW_USER_BASEPTR, MMUEXT_UNPIN_TABLE, UVMF_INVLPG,
};
use guest_kernel::hypercall::hv;
use guest_kernel::layout::{pte, SCRATCH_BASE};
use guest_kernel::mm::{self, Frame};
use guest_kernel::msg;
use guest_kernel::pagetable::{leaf_entry, pt_update, table_entry, Level, Prot, ENTRIES, HYPERVISOR_SLOTS};
use guest_kernel::text::Msg;

/// The address the L1 linked at [`LINKED_L2_INDEX`] maps first.
const LINKED_VA: u64 = SCRATCH_BASE + (LINKED_L2_INDEX as u64) * (2 << 20);

/// After `decrease_reservation` of a frame still in use answered `r`:
/// the verdict, judged by whether the domain's reservation dropped while
/// the frame was still in use (`in_use` says whether it still works as
/// before). Xen answers such a request with success but keeps the frame
/// (allocated to the domain, off its books only once the last reference
/// goes); that is no effect, and `deferred` is true.
fn give_back_verdict(r: &Call, before: u64, after: u64, in_use: bool) -> (Verdict, bool) {
    match r {
        _ if after != before => (
            Verdict::Succeeded(msg!("the reservation dropped from {before} to {after} while the frame was in use")),
            false,
        ),
        _ if !in_use => (Verdict::Succeeded(msg!("the frame stopped working as before ({r:?})")), false),
        Err(how) => (Verdict::Refused(*how), false),
        Ok(n) => {
            (Verdict::Refused(msg!("deferred (returned {n} extent; the frame stays the domain's while in use)")), true)
        }
    }
}

/// After a deferred give-back, once the frame is unused: it is gone; the
/// reservation must have dropped by one. Gives its pfn a new frame.
fn settle_deferred(f: Frame, before: u64) -> Result<(), Msg> {
    let now = reservation()?;
    info(format_args!("after the last reference went, the reservation is {now} (was {before})"));
    need!(now + 1 == before, "the reservation is {now} once the frame was unused, want {}", before - 1);
    replace_lost_frame(f.pfn)
}

/// `decrease_reservation` of a frame mapped writable (at [`TARGET_VA`] and
/// in the direct map).
pub fn give_back_mapped(_: &Lab) -> Result<Verdict, Msg> {
    let f = data_frame()?;
    fill(f, 21);
    mm::map(TARGET_VA, f.mfn, Prot::KERNEL_RW).map_err(mm_err("mapping the frame"))?;
    let before = reservation()?;
    let r = give_back(f.mfn);
    let after = reservation()?;
    let in_use = holds(TARGET_VA, 21) && holds(f.va(), 21);
    let (verdict, deferred) = give_back_verdict(&r, before, after, in_use);
    // SAFETY: nothing references the page.
    unsafe { mm::unmap(TARGET_VA) }.map_err(mm_err("unmapping the frame"))?;
    if deferred {
        uvm(f.va(), 0).map_err(|e| msg!("unmapping the frame from the direct map: {e}"))?;
        settle_deferred(f, before)?;
    } else {
        free(f)?;
    }
    Ok(verdict)
}

/// `decrease_reservation` of a pinned L1 that is linked into the kernel's
/// tables and maps a page.
pub fn give_back_pinned_table(lab: &Lab) -> Result<Verdict, Msg> {
    let data = data_frame()?;
    fill(data, 22);
    let t = pinned_table(Level::L1, |i| if i == 0 { leaf_entry(data.mfn, Prot::KERNEL_RO) } else { 0 })?;
    if let Err(e) = mmu(&[pt_update(lab.l2, LINKED_L2_INDEX, table_entry(t.mfn))]) {
        release_table(t)?;
        free(data)?;
        return Err(msg!("linking the pinned L1: {e}"));
    }
    let worked = holds(LINKED_VA, 22);
    let before = reservation()?;
    let r = give_back(t.mfn);
    let after = reservation()?;
    let in_use = worked && holds(LINKED_VA, 22) && entry(lab.l2, LINKED_L2_INDEX)? == table_entry(t.mfn) | pte::USER;
    let (verdict, deferred) = give_back_verdict(&r, before, after, in_use);
    mmu(&[pt_update(lab.l2, LINKED_L2_INDEX, 0)]).map_err(|e| msg!("unlinking the L1: {e}"))?;
    flush_tlb()?;
    let unpinned = ext(MMUEXT_UNPIN_TABLE, t.mfn, 0);
    if deferred {
        info(format_args!("give_back_pinned_table: unpinning after the give-back gave {unpinned:?}"));
        uvm(t.va(), 0).map_err(|e| msg!("unmapping the table from the direct map: {e}"))?;
        settle_deferred(t, before)?;
    } else {
        unpinned.map_err(|e| msg!("unpinning the L1: {e}"))?;
        make_rw(t)?;
        free(t)?;
    }
    free(data)?;
    Ok(verdict)
}

/// `decrease_reservation` of a frame of the M2P.
pub fn give_back_hypervisor_frame(lab: &Lab) -> Result<Verdict, Msg> {
    let before = reservation()?;
    let m2p = m2p_window(lab);
    let r = give_back(lab.m2p);
    let after = reservation()?;
    let effect = if after != before {
        Some(msg!("the reservation went from {before} to {after}"))
    } else if m2p_window(lab) != m2p {
        Some(msg!("the M2P changed"))
    } else {
        r.is_ok().then(|| msg!("the hypervisor took back its own frame"))
    };
    Ok(judge(r, effect))
}

/// `decrease_reservation` of the shared-info frame, which the hypervisor
/// keeps writing (event and time state): giving it back would let the
/// frame be reused while the hypervisor still writes into it. It runs last:
/// it leaves shared info unmapped.
pub fn give_back_shared_info(_: &Lab) -> Result<Verdict, Msg> {
    let maddr = guest_kernel::runtime::start_info().shared_info;
    // Drop our own mapping first, so only the hypervisor's use remains.
    // SAFETY: the window is reserved for shared info; nothing else points
    // into it, and it is mapped again below.
    unsafe { hv().update_va_mapping(guest_kernel::entry::shared_info_window(), 0, UVMF_INVLPG) }
        .map_err(|e| msg!("unmapping shared info: {e}"))?;
    let before = reservation()?;
    let r = give_back(maddr >> 12);
    let after = reservation()?;
    let effect = if after != before {
        Some(msg!("the reservation went from {before} to {after}"))
    } else {
        r.is_ok().then(|| msg!("the shared-info frame was given back"))
    };
    Ok(judge(r, effect))
}

/// `MMUEXT_UNPIN_TABLE` of a frame never pinned.
pub fn unpin_not_pinned(_: &Lab) -> Result<Verdict, Msg> {
    let f = data_frame()?;
    let r = ext(MMUEXT_UNPIN_TABLE, f.mfn, 0);
    let still = probe::write_u64(f.va(), 7).is_ok();
    free(f)?;
    let effect = (!still).then(|| msg!("the frame is no longer writable"));
    Ok(judge_or(r, effect, "unpinned a frame never pinned"))
}

/// `MMUEXT_PIN_L1_TABLE` of a frame mapped writable (in the direct map).
pub fn pin_writable_frame(_: &Lab) -> Result<Verdict, Msg> {
    let f = data_frame()?;
    let r = ext(pin_cmd(Level::L1), f.mfn, 0);
    if r.is_ok() {
        let _ = ext(MMUEXT_UNPIN_TABLE, f.mfn, 0);
    }
    let still = probe::write_u64(f.va(), 7).is_ok();
    free(f)?;
    let effect = (!still).then(|| msg!("the frame is no longer writable"));
    Ok(judge_or(r, effect, "pinned a frame mapped writable"))
}

/// Like [`judge`], with a successful call itself an effect.
fn judge_or(r: Call, effect: Option<Msg>, what: &str) -> Verdict {
    match effect {
        Some(e) => Verdict::Succeeded(e),
        None => judge_call(r, what),
    }
}

/// Pins a pinned L1 again.
pub fn double_pin(_: &Lab) -> Result<Verdict, Msg> {
    let t = pinned_table(Level::L1, |_| 0)?;
    let r = ext(pin_cmd(Level::L1), t.mfn, 0);
    let once = ext(MMUEXT_UNPIN_TABLE, t.mfn, 0);
    // One unpin must have dropped every reference: the frame can be
    // mapped writable again.
    let rw = make_rw(t);
    let effect = match (&once, &rw) {
        (Err(e), _) => Some(msg!("the first unpin after it failed: {e}")),
        (Ok(_), Err(_)) => {
            let _ = ext(MMUEXT_UNPIN_TABLE, t.mfn, 0);
            Some(msg!("a second pin reference stayed after one unpin"))
        }
        _ => None,
    };
    if rw.is_err() {
        make_rw(t)?;
    }
    free(t)?;
    Ok(judge_or(r, effect, "pinned twice"))
}

/// `MMUEXT_PIN_L1_TABLE` of the hypervisor's image table.
pub fn pin_hypervisor_frame(lab: &Lab) -> Result<Verdict, Msg> {
    let r = ext(pin_cmd(Level::L1), lab.hv_image_table, 0);
    if r.is_ok() {
        let _ = ext(MMUEXT_UNPIN_TABLE, lab.hv_image_table, 0);
    }
    Ok(judge_call(r, "pinned a hypervisor frame"))
}

/// `MMUEXT_UNPIN_TABLE` of an M2P frame.
pub fn unpin_hypervisor_frame(lab: &Lab) -> Result<Verdict, Msg> {
    Ok(judge_call(ext(MMUEXT_UNPIN_TABLE, lab.m2p, 0), "unpinned a hypervisor frame"))
}

/// Loads `mfn` as the kernel's base pointer; switches back if that worked.
fn try_baseptr(lab: &Lab, mfn: u64) -> Result<Verdict, Msg> {
    let r = ext(MMUEXT_NEW_BASEPTR, mfn, 0);
    let cr3 = read_cr3()?;
    let effect = (cr3 >> 12 != lab.root).then(|| {
        let _ = ext(MMUEXT_NEW_BASEPTR, lab.root, 0);
        msg!("%cr3 became {cr3:#x}")
    });
    Ok(judge_or(r, effect, "loaded"))
}

/// `MMUEXT_NEW_BASEPTR` of a pinned L1.
pub fn baseptr_l1(lab: &Lab) -> Result<Verdict, Msg> {
    let t = pinned_table(Level::L1, |_| 0)?;
    let v = try_baseptr(lab, t.mfn);
    release_table(t)?;
    v
}

/// `MMUEXT_NEW_BASEPTR` of an unpinned, read-only frame whose lower half
/// names frames that are not ours (its upper half is the kernel's, so
/// the kernel would survive the switch).
pub fn baseptr_garbage(lab: &Lab) -> Result<Verdict, Msg> {
    let mut upper = [0u64; ENTRIES];
    for (i, e) in upper.iter_mut().enumerate().skip(HYPERVISOR_SLOTS.end) {
        *e = entry(lab.root, i)?;
    }
    let garbage = |i: usize| match i {
        _ if i < HYPERVISOR_SLOTS.start => ((0x100 + i as u64) << 12) | pte::PRESENT | pte::RW | pte::USER,
        _ => upper[i],
    };
    let f = readonly_frame(garbage)?;
    let v = try_baseptr(lab, f.mfn);
    release_table(f)?;
    v
}

/// `MMUEXT_NEW_BASEPTR` of the hypervisor's M2P table.
pub fn baseptr_hypervisor_frame(lab: &Lab) -> Result<Verdict, Msg> {
    try_baseptr(lab, lab.hv_m2p_table)
}

/// `MMUEXT_NEW_USER_BASEPTR` of a pinned L1 (user mode would run with
/// an L1 as its root).
pub fn user_baseptr_l1(_: &Lab) -> Result<Verdict, Msg> {
    let t = pinned_table(Level::L1, |_| 0)?;
    let r = ext(MMUEXT_NEW_USER_BASEPTR, t.mfn, 0);
    if r.is_ok() {
        let _ = ext(MMUEXT_NEW_USER_BASEPTR, 0, 0);
    }
    release_table(t)?;
    Ok(judge_call(r, "an L1 became the user base pointer"))
}

/// Pins an L2 whose only L1 maps the L2 itself writable.
pub fn pin_table_mapping_itself_rw(_: &Lab) -> Result<Verdict, Msg> {
    let l2 = data_frame()?;
    let l1 = readonly_frame(|i| if i == 0 { leaf_entry(l2.mfn, Prot::KERNEL_RW) } else { 0 });
    let l1 = match l1 {
        Ok(l1) => l1,
        Err(e) => {
            free(l2)?;
            return Err(e);
        }
    };
    // SAFETY: `l2` is ours, mapped read-write in the direct map.
    unsafe { (l2.va() as *mut u64).write_volatile(table_entry(l1.mfn)) };
    make_ro(l2)?;
    let r = ext(pin_cmd(Level::L2), l2.mfn, 0);
    release_table(l2)?;
    release_table(l1)?;
    Ok(judge_call(r, "pinned an L2 that its own L1 maps writable"))
}

/// Pins an L1 whose entry maps an M2P frame writable.
pub fn pin_l1_mapping_m2p_rw(lab: &Lab) -> Result<Verdict, Msg> {
    let t = readonly_frame(|i| if i == 0 { leaf_entry(lab.m2p, Prot::KERNEL_RW) } else { 0 })?;
    let r = ext(pin_cmd(Level::L1), t.mfn, 0);
    release_table(t)?;
    Ok(judge_call(r, "pinned an L1 mapping the M2P writable"))
}

/// A linear chain (XSA-240): a pinned L4 holds a read-only linear entry
/// to the kernel L4, then the kernel L4 gets one to it.
pub fn linear_chain(lab: &Lab) -> Result<Verdict, Msg> {
    let linear = |mfn: u64| (mfn << 12) | pte::PRESENT | pte::USER | pte::ACCESSED;
    let x = pinned_table(Level::L4, |_| 0)?;
    if let Err(e) = mmu(&[pt_update(x.mfn, FREE_L4_SLOT, linear(lab.root))]) {
        release_table(x)?;
        return Err(msg!("a read-only linear entry to the kernel L4 was refused: {e}"));
    }
    let v = try_entry(lab.root, FREE_L4_SLOT, linear(x.mfn));
    mmu(&[pt_update(x.mfn, FREE_L4_SLOT, 0)]).map_err(|e| msg!("clearing the first linear entry: {e}"))?;
    release_table(x)?;
    v
}

/// `MMUEXT_CLEAR_PAGE` of our scratch L1 (in use, mapping [`DATA_VA`]).
pub fn clear_page_table(lab: &Lab) -> Result<Verdict, Msg> {
    let f = data_frame()?;
    mm::map(DATA_VA, f.mfn, Prot::KERNEL_RO).map_err(mm_err("mapping a page"))?;
    let before = entry(lab.l1, l1_index(DATA_VA))?;
    let r = ext(MMUEXT_CLEAR_PAGE, lab.l1, 0);
    let now = entry(lab.l1, l1_index(DATA_VA))?;
    let effect = (now != before).then(|| msg!("the L1 entry went from {before:#x} to {now:#x}"));
    if mapped(DATA_VA)?.is_some() {
        // SAFETY: nothing references the page.
        unsafe { mm::unmap(DATA_VA) }.map_err(mm_err("unmapping a page"))?;
    } else {
        flush_tlb()?;
    }
    free(f)?;
    Ok(judge_or(r, effect, "cleared a page table"))
}

/// `MMUEXT_CLEAR_PAGE` of the M2P's first frame.
pub fn clear_page_m2p(lab: &Lab) -> Result<Verdict, Msg> {
    let first = lab.root & !511;
    let before: [u64; 512] = m2p_run(first);
    let r = ext(MMUEXT_CLEAR_PAGE, lab.m2p, 0);
    let effect = (m2p_run::<512>(first) != before).then(|| msg!("the M2P changed"));
    Ok(judge_or(r, effect, "cleared an M2P frame"))
}

/// `MMUEXT_COPY_PAGE` into our scratch L1 from a frame of entries that
/// map the L1 itself writable.
pub fn copy_page_into_table(lab: &Lab) -> Result<Verdict, Msg> {
    let src = data_frame()?;
    for i in 0..ENTRIES {
        // SAFETY: `src` is ours, mapped read-write in the direct map.
        unsafe { (src.va() as *mut u64).wrapping_add(i).write_volatile(leaf_entry(lab.l1, Prot::KERNEL_RW)) };
    }
    let before = entries(lab.l1)?;
    let r = ext(MMUEXT_COPY_PAGE, lab.l1, src.mfn);
    let now = entries(lab.l1)?;
    free(src)?;
    let effect = (now != before).then(|| msg!("the L1 changed"));
    Ok(judge_or(r, effect, "copied into a page table"))
}

/// `MMUEXT_COPY_PAGE` into a frame of ours from the hypervisor's image
/// table.
pub fn copy_page_from_hypervisor(lab: &Lab) -> Result<Verdict, Msg> {
    let dst = data_frame()?;
    fill(dst, 44);
    let r = ext(MMUEXT_COPY_PAGE, dst.mfn, lab.hv_image_table);
    let same = holds(dst.va(), 44);
    free(dst)?;
    let effect = (!same).then(|| msg!("our frame now holds a copy of hypervisor memory"));
    Ok(judge_or(r, effect, "copied from a hypervisor frame"))
}
