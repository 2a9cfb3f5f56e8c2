//! Page-table hypercalls: `mmu_update`, `update_va_mapping`, `mmuext_op`.
//!
//! Every change goes through the page-type engine (`hv::mm::pagetype`):
//! an entry is validated, and takes its references, before the old one is
//! dropped, so a guest's page tables and descriptor pages are never
//! writable by it and only ever reference its own frames.

use super::{with_page_types, Action, Ctx, BATCH_BUDGET};
use crate::guest::{self, range_ok, GuestPtr, Pod};
use crate::mm::frame::{DomId, FrameUse};
use crate::mm::pagetable::index;
use crate::mm::pagetype::{GuestFrames, Level, PageType, PageTypes, PtError};
use abi::errno::Errno;
use abi::mm::*;

/// `UVMF_*` low bits: 1 = flush the TLB, 2 = invalidate one page.
const UVMF_FLUSHTYPE_MASK: u64 = 3;

/// Runs `op` on the engine ([`with_page_types`]).
fn with_engine<T>(ctx: &mut Ctx<'_>, default: T, op: impl FnMut(&mut PageTypes<'_, '_, dyn GuestFrames>) -> T) -> T {
    with_page_types(ctx.platform, default, op)
}

/// `update_va_mapping(va, val, flags)`: rewrites the L1 entry that maps
/// `va` in the current page tables (`-EINVAL` if there is none).
pub(super) fn update_va_mapping(ctx: &mut Ctx<'_>, [va, val, flags, ..]: [u64; 5]) -> Action {
    let dom = ctx.domain.id;
    map_va(ctx, va, val, flags, dom)
}

/// `update_va_mapping` whose new entry may map frames of `owner` (the
/// caller itself, or the domain a privileged caller named).
fn map_va(ctx: &mut Ctx<'_>, va: u64, val: u64, flags: u64, owner: DomId) -> Action {
    let (Some(l4), true) = (ctx.domain.vcpu.kernel_table, range_ok(va, 1)) else {
        return Action::Return(Err(Errno::EINVAL));
    };
    let dom = ctx.domain.id;
    let r = with_engine(ctx, Err(Errno::EINVAL), |pt| {
        let l1 = pt.l1_for(dom, l4, va).ok_or(Errno::EINVAL)?;
        pt.allow_foreign((owner != dom).then_some(owner));
        pt.mod_entry(dom, l1, index(va, 1), val, false).map(drop).map_err(PtError::errno)
    });
    if r.is_ok() {
        match flags & UVMF_FLUSHTYPE_MASK {
            1 => ctx.platform.flush_tlb(None),
            2 => ctx.platform.flush_tlb(Some(va)),
            _ => {}
        }
    }
    Action::Return(r.map(|()| 0))
}

/// `update_va_mapping_otherdomain(va, val, flags, domid)`: for a
/// privileged caller, maps a frame of domain `domid` into its own tables
/// (a domain that does not exist is `-ESRCH`).
pub(super) fn update_va_mapping_otherdomain(ctx: &mut Ctx<'_>, [va, val, flags, domid, _]: [u64; 5]) -> Action {
    match pg_owner(ctx, domid) {
        Ok(owner) => map_va(ctx, va, val, flags, owner),
        Err(e) => Action::Return(Err(e)),
    }
}

/// The domain whose frames a batch's requests may name (Xen's
/// `get_pg_owner`): the caller for `DOMID_SELF` or its own id; for a
/// privileged caller, another existing domain (`-ESRCH` if none); for
/// anyone else another domain is `-EPERM`.
fn pg_owner(ctx: &mut Ctx<'_>, foreigndom: u64) -> Result<DomId, Errno> {
    if foreigndom == u64::from(abi::mm::DOMID_SELF) || foreigndom == u64::from(ctx.domain.id) {
        return Ok(ctx.domain.id);
    }
    if !ctx.domain.privileged {
        return Err(Errno::EPERM);
    }
    let dom = DomId::try_from(foreigndom).map_err(|_| Errno::ESRCH)?;
    ctx.platform.domain_pages(dom).map(|_| dom)
}

/// `mmu_update(reqs, count, done, foreigndom)`: applies `{ptr, val}`
/// requests in order, stopping at the first failure; `*done` (if not null)
/// gets how many succeeded. `ptr & 7` selects the kind: a page-table entry
/// at machine address `ptr` (normal, or keeping the hardware's A/D bits),
/// or an M2P entry for machine frame `ptr >> 12`.
pub(super) fn mmu_update(ctx: &mut Ctx<'_>, args: [u64; 5]) -> Action {
    batch(ctx, args, one_update)
}

/// Set in a continued batch's `count`: the fifth argument holds the
/// requests done by the entries before (Xen keeps that count in `*done`
/// and flags `count` with `MMU_UPDATE_PREEMPTED` instead; a guest never
/// sees either).
const CONTINUED: u64 = 1 << 63;

/// Runs a batch `(list, count, done_ptr, foreigndom)` of requests of type
/// `T` read one by one from `list`, in order, stopping at the first
/// failure (an unreadable request is `-EFAULT`); `*done` gets how many
/// succeeded. After [`BATCH_BUDGET`] requests with more to come, the call
/// continues ([`Action::Continue`]) from the next one.
fn batch<T: Pod>(
    ctx: &mut Ctx<'_>,
    [list, count, done_ptr, foreigndom, before]: [u64; 5],
    mut one: impl FnMut(&mut Ctx<'_>, DomId, T) -> Result<(), Errno>,
) -> Action {
    let owner = match pg_owner(ctx, foreigndom) {
        Ok(owner) => owner,
        Err(e) => return Action::Return(Err(e)),
    };
    let (count, before) = if count & CONTINUED != 0 { (count & !CONTINUED, before) } else { (count, 0) };
    let (list, size) = (GuestPtr(list), core::mem::size_of::<T>() as u64);
    let mut done = 0u64;
    let mut result = Ok(0);
    while done < count {
        if done == BATCH_BUDGET {
            let next = list.add(done.wrapping_mul(size)).0;
            return Action::Continue([next, (count - done) | CONTINUED, done_ptr, foreigndom, before + done]);
        }
        let r = guest::read_obj::<T, _>(ctx.mem, list.add(done.wrapping_mul(size)))
            .map_err(|_| Errno::EFAULT)
            .and_then(|req| one(ctx, owner, req));
        if let Err(e) = r {
            result = Err(e);
            break;
        }
        done += 1;
    }
    write_done(ctx, done_ptr, before.wrapping_add(done));
    Action::Return(result)
}

/// One `mmu_update` request; entries may map frames of `owner`, and M2P
/// updates are for `owner`'s frames.
fn one_update(ctx: &mut Ctx<'_>, owner: DomId, req: MmuUpdate) -> Result<(), Errno> {
    let dom = ctx.domain.id;
    // The kind is the low three bits (the entry is 8 bytes): 4–7 are
    // unknown kinds, not misaligned entries, as in Xen.
    let kind = req.ptr & 7;
    let machine = req.ptr & !7;
    let (mfn, slot) = (machine >> 12, ((machine & 0xfff) >> 3) as usize);
    match kind {
        MMU_NORMAL_PT_UPDATE | MMU_PT_UPDATE_PRESERVE_AD => with_engine(ctx, Err(Errno::EINVAL), |pt| {
            pt.allow_foreign((owner != dom).then_some(owner));
            pt.mod_entry(dom, mfn, slot, req.val, kind == MMU_PT_UPDATE_PRESERVE_AD).map(drop).map_err(PtError::errno)
        }),
        MMU_MACHPHYS_UPDATE => {
            let owned = with_engine(ctx, false, |pt| pt.frames().usage(mfn) == FrameUse::Domain(owner));
            if !owned {
                return Err(Errno::EINVAL);
            }
            ctx.platform.set_m2p(mfn, req.val);
            Ok(())
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// Stores a batch's progress at `done_ptr` (if not null): an `unsigned
/// int` in Xen's ABI, so exactly four bytes. As in Xen, a pointer that
/// cannot be written is ignored: the requests were applied either way.
fn write_done(ctx: &mut Ctx<'_>, done_ptr: u64, done: u64) {
    if done_ptr != 0 {
        let _ = guest::write_obj(ctx.mem, GuestPtr(done_ptr), &(done as u32));
    }
}

/// `mmuext_op(ops, count, done, foreigndom)`: extended MMU operations, in
/// order, stopping at the first failure; `*done` (if not null) gets how
/// many succeeded. With one CPU, the `MULTI` and `ALL` flush variants are
/// the local ones.
pub(super) fn mmuext_op(ctx: &mut Ctx<'_>, args: [u64; 5]) -> Action {
    batch(ctx, args, one_ext_op)
}

/// One `mmuext_op`. Pins and unpins are of `owner`'s tables (how a
/// domain builder pins the tables it wrote for another domain); the other
/// operations act on the caller and refuse a foreign owner (`-EINVAL`).
fn one_ext_op(ctx: &mut Ctx<'_>, owner: DomId, op: MmuextOp) -> Result<(), Errno> {
    let dom = ctx.domain.id;
    let mfn = op.arg1;
    let pin = |ctx: &mut Ctx<'_>, level| {
        with_engine(ctx, Err(Errno::EINVAL), |pt| pt.pin(owner, mfn, level).map_err(PtError::errno))
    };
    let pins = matches!(
        op.cmd,
        MMUEXT_PIN_L1_TABLE | MMUEXT_PIN_L2_TABLE | MMUEXT_PIN_L3_TABLE | MMUEXT_PIN_L4_TABLE | MMUEXT_UNPIN_TABLE
    );
    if owner != dom && !pins {
        return Err(Errno::EINVAL);
    }
    match op.cmd {
        MMUEXT_PIN_L1_TABLE => pin(ctx, Level::L1),
        MMUEXT_PIN_L2_TABLE => pin(ctx, Level::L2),
        MMUEXT_PIN_L3_TABLE => pin(ctx, Level::L3),
        MMUEXT_PIN_L4_TABLE => pin(ctx, Level::L4),
        MMUEXT_UNPIN_TABLE => with_engine(ctx, Err(Errno::EINVAL), |pt| pt.unpin(owner, mfn).map_err(PtError::errno)),
        MMUEXT_NEW_BASEPTR => {
            let mut slot = ctx.domain.vcpu.kernel_table;
            with_engine(ctx, Err(Errno::EINVAL), |pt| {
                pt.new_baseptr(dom, &mut slot, Some(mfn)).map_err(PtError::errno)
            })?;
            ctx.domain.vcpu.kernel_table = slot;
            // Hypercalls come from kernel mode: the new base is live now.
            ctx.platform.load_cr3(mfn << 12);
            Ok(())
        }
        MMUEXT_NEW_USER_BASEPTR => {
            let mut slot = ctx.domain.vcpu.user_table;
            let new = (mfn != 0).then_some(mfn);
            with_engine(ctx, Err(Errno::EINVAL), |pt| pt.new_baseptr(dom, &mut slot, new).map_err(PtError::errno))?;
            ctx.domain.vcpu.user_table = slot;
            Ok(())
        }
        MMUEXT_TLB_FLUSH_LOCAL | MMUEXT_TLB_FLUSH_MULTI | MMUEXT_TLB_FLUSH_ALL => {
            ctx.platform.flush_tlb(None);
            Ok(())
        }
        MMUEXT_INVLPG_LOCAL | MMUEXT_INVLPG_MULTI | MMUEXT_INVLPG_ALL if range_ok(op.arg1, 1) => {
            ctx.platform.flush_tlb(Some(op.arg1));
            Ok(())
        }
        MMUEXT_INVLPG_LOCAL | MMUEXT_INVLPG_MULTI | MMUEXT_INVLPG_ALL => Err(Errno::EINVAL),
        // The hypervisor writes the frame, so it must be one the guest
        // could map writable itself: it takes a writable type reference.
        MMUEXT_CLEAR_PAGE => with_engine(ctx, Err(Errno::EINVAL), |pt| {
            pt.get_page_and_type(dom, mfn, PageType::Writable).map_err(PtError::errno)?;
            pt.memory().entries(mfn).fill(0);
            pt.put_page_and_type(mfn);
            Ok(())
        }),
        MMUEXT_COPY_PAGE => with_engine(ctx, Err(Errno::EINVAL), |pt| {
            let src = op.arg2;
            pt.get_page(dom, src).map_err(PtError::errno)?;
            if let Err(e) = pt.get_page_and_type(dom, mfn, PageType::Writable) {
                pt.put_page(src);
                return Err(e.errno());
            }
            let data = *pt.memory().entries(src);
            *pt.memory().entries(mfn) = data;
            pt.put_page_and_type(mfn);
            pt.put_page(src);
            Ok(())
        }),
        _ => Err(Errno::ENOSYS),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{World, MEM_BASE, OTHER_FRAMES};
    use super::*;
    use crate::mm::pagetable::pte;
    use crate::mm::Mfn;
    use crate::testing::kernel_tree::{world, L1, L2, L3, L4, VA};
    use abi::hypercall::{MMUEXT_OP, MMU_UPDATE, UPDATE_VA_MAPPING};

    /// Frames 20.. are plain pages.
    const PAGE: Mfn = 20;

    fn l1(w: &mut World) -> u64 {
        w.platform.mem.entries(L1)[index(VA, 1)]
    }

    fn mmuext(w: &mut World, ops: &[MmuextOp]) -> (i64, u64) {
        for (i, op) in ops.iter().enumerate() {
            guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE + 24 * i as u64), op).unwrap();
        }
        // `done` is four bytes; the four after it must survive.
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE + 0x1000), &0xaaaa_aaaa_aaaa_aaaau64).unwrap();
        w.call(MMUEXT_OP, &[MEM_BASE, ops.len() as u64, MEM_BASE + 0x1000, DOMID_SELF.into()]);
        let guard: u32 = guest::read_obj(&mut w.mem, GuestPtr(MEM_BASE + 0x1004)).unwrap();
        assert_eq!(guard, 0xaaaa_aaaa, "done wrote past its four bytes");
        (w.ret(), guest::read_obj::<u32, _>(&mut w.mem, GuestPtr(MEM_BASE + 0x1000)).unwrap().into())
    }

    fn op(cmd: u32, arg1: u64) -> MmuextOp {
        MmuextOp { cmd, _pad0: 0, arg1, arg2: 0 }
    }

    #[test]
    fn update_va_mapping_maps_owned_frames_user_accessible() {
        let mut w = world();
        w.call(UPDATE_VA_MAPPING, &[VA, (PAGE << 12) | pte::P | pte::RW, 2]);
        assert_eq!(w.ret(), 0);
        assert_eq!(l1(&mut w) & (pte::ADDR | pte::P | pte::RW | pte::U), (PAGE << 12) | pte::P | pte::RW | pte::U);
        assert_eq!(w.platform.flushes, [Some(VA)]);
        w.call(UPDATE_VA_MAPPING, &[VA, 0, 1]);
        assert_eq!((w.ret(), l1(&mut w)), (0, 0));
        assert!(w.platform.frames.can_release(PAGE), "the mapping's reference is gone");
    }

    #[test]
    fn page_tables_never_become_writable() {
        let mut w = world();
        for table in [L4, L3, L2, L1] {
            w.call(UPDATE_VA_MAPPING, &[VA, (table << 12) | pte::P | pte::RW, 0]);
            assert_eq!(w.ret(), Errno::EBUSY.as_ret(), "table {table}");
        }
        w.call(UPDATE_VA_MAPPING, &[VA, (L1 << 12) | pte::P, 0]);
        assert_eq!(w.ret(), 0, "read-only is fine");
        for (val, why) in [
            ((3 << 12) | pte::P, "hypervisor frame"),
            ((OTHER_FRAMES.start << 12) | pte::P, "another domain's frame"),
            ((200 << 12) | pte::P, "not RAM"),
            ((PAGE << 12) | pte::P | (1 << 4), "cache-disable"),
        ] {
            w.call(UPDATE_VA_MAPPING, &[VA, val, 0]);
            assert_eq!(w.ret(), Errno::EINVAL.as_ret(), "{why}");
        }
        for va in [VA + (1 << 21), 0xffff_8000_0000_0000] {
            w.call(UPDATE_VA_MAPPING, &[va, (PAGE << 12) | pte::P, 0]);
            assert_eq!(w.ret(), Errno::EINVAL.as_ret(), "va {va:#x}");
        }
    }

    #[test]
    fn long_batches_continue_and_count_every_request() {
        let mut w = world();
        let n = 3 * BATCH_BUDGET + 10;
        let reqs: Vec<MmuUpdate> =
            (0..n).map(|i| MmuUpdate { ptr: (PAGE << 12) | MMU_MACHPHYS_UPDATE, val: i }).collect();
        for (i, r) in reqs.iter().enumerate() {
            guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE + 16 * i as u64), r).unwrap();
        }
        let done = MEM_BASE + 0x8000;
        let (action, continued) = w.call_to_end(MMU_UPDATE, &[MEM_BASE, n, done, DOMID_SELF.into()]);
        assert_eq!((action, continued), (Action::Return(Ok(0)), 3));
        assert_eq!(guest::read_obj::<u32, _>(&mut w.mem, GuestPtr(done)).unwrap(), n as u32);
        assert_eq!(w.platform.m2p.get(&PAGE), Some(&(n - 1)), "all of them, in order");
        // A failure after a continuation counts the requests of every entry.
        let bad = MmuUpdate { ptr: (PAGE << 12) | 5, val: 0 };
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE + 16 * (BATCH_BUDGET + 3)), &bad).unwrap();
        let (action, _) = w.call_to_end(MMU_UPDATE, &[MEM_BASE, n, done, DOMID_SELF.into()]);
        assert_eq!(action, Action::Return(Err(Errno::ENOSYS)));
        assert_eq!(guest::read_obj::<u32, _>(&mut w.mem, GuestPtr(done)).unwrap(), BATCH_BUDGET as u32 + 3);
    }

    #[test]
    fn mmu_update_applies_in_order_and_reports_done() {
        let mut w = world();
        let slot = |i: u64| (L1 << 12) + 8 * i;
        let reqs = [
            MmuUpdate { ptr: slot(0), val: (PAGE << 12) | pte::P | pte::RW },
            MmuUpdate { ptr: slot(1) | MMU_PT_UPDATE_PRESERVE_AD, val: ((PAGE + 1) << 12) | pte::P },
            MmuUpdate { ptr: (PAGE << 12) | MMU_MACHPHYS_UPDATE, val: 42 },
            MmuUpdate { ptr: slot(2), val: (L4 << 12) | pte::P | pte::RW },
            MmuUpdate { ptr: slot(3), val: (PAGE << 12) | pte::P },
        ];
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &reqs).unwrap();
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE + 0x1000), &u64::MAX).unwrap();
        w.call(MMU_UPDATE, &[MEM_BASE, 5, MEM_BASE + 0x1000, DOMID_SELF.into()]);
        assert_eq!(w.ret(), Errno::EBUSY.as_ret(), "the writable L4 mapping is refused");
        assert_eq!(guest::read_obj::<u64, _>(&mut w.mem, GuestPtr(MEM_BASE + 0x1000)).unwrap(), 0xffff_ffff_0000_0003);
        assert_eq!(w.platform.mem.entries(L1)[0] >> 12 & 0xff_ffff, PAGE);
        assert_eq!(w.platform.mem.entries(L1)[3], 0, "not reached");
        assert_eq!(w.platform.m2p.get(&PAGE), Some(&42));
        // A direct write to a page that is not a page table is refused.
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &MmuUpdate { ptr: (PAGE << 12) + 8, val: 0 }).unwrap();
        w.call(MMU_UPDATE, &[MEM_BASE, 1, 0, DOMID_SELF.into()]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret());
        // M2P updates only for the caller's own frames.
        let other = OTHER_FRAMES.start << 12 | MMU_MACHPHYS_UPDATE;
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &MmuUpdate { ptr: other, val: 1 }).unwrap();
        w.call(MMU_UPDATE, &[MEM_BASE, 1, 0, DOMID_SELF.into()]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret());
        w.call(MMU_UPDATE, &[MEM_BASE, 1, 0, 7]);
        assert_eq!(w.ret(), Errno::EPERM.as_ret(), "foreigndom needs privilege");
    }

    #[test]
    fn pin_new_baseptr_and_unpin() {
        let mut w = world();
        // A second L4 (frame 30) sharing the L3: pin it, switch to it.
        let e = w.platform.mem.entries(L4)[index(VA, 4)];
        w.platform.mem.entries(30)[index(VA, 4)] = e;
        assert_eq!(mmuext(&mut w, &[op(MMUEXT_PIN_L4_TABLE, 30), op(MMUEXT_NEW_BASEPTR, 30)]), (0, 2));
        assert_eq!(w.domain.vcpu.kernel_table, Some(30));
        assert_eq!(w.platform.cr3_loads, [30 << 12]);
        assert_eq!(mmuext(&mut w, &[op(MMUEXT_PIN_L4_TABLE, 30)]).0, Errno::EINVAL.as_ret(), "already pinned");
        // A pinned table cannot be mapped writable, nor can a plain page
        // be pinned as a table while it is mapped writable.
        w.call(UPDATE_VA_MAPPING, &[VA, (30 << 12) | pte::P | pte::RW, 0]);
        assert_eq!(w.ret(), Errno::EBUSY.as_ret());
        w.call(UPDATE_VA_MAPPING, &[VA, (PAGE << 12) | pte::P | pte::RW, 0]);
        assert_eq!(mmuext(&mut w, &[op(MMUEXT_PIN_L1_TABLE, PAGE)]).0, Errno::EINVAL.as_ret());
        assert_eq!(mmuext(&mut w, &[op(MMUEXT_NEW_BASEPTR, L4), op(MMUEXT_UNPIN_TABLE, 30)]), (0, 2));
        assert_eq!(mmuext(&mut w, &[op(MMUEXT_UNPIN_TABLE, 30)]).0, Errno::EINVAL.as_ret(), "not pinned");
        assert_eq!(mmuext(&mut w, &[op(MMUEXT_PIN_L4_TABLE, OTHER_FRAMES.start)]).0, Errno::EINVAL.as_ret());
    }

    #[test]
    fn user_baseptr_clear_and_copy_page() {
        let mut w = world();
        w.platform.mem.entries(31)[index(0x40_0000, 4)] = 0;
        assert_eq!(mmuext(&mut w, &[op(MMUEXT_PIN_L4_TABLE, 31), op(MMUEXT_NEW_USER_BASEPTR, 31)]), (0, 2));
        assert_eq!(w.domain.vcpu.user_table, Some(31));
        assert_eq!(mmuext(&mut w, &[op(MMUEXT_NEW_USER_BASEPTR, 0)]), (0, 1));
        assert_eq!(w.domain.vcpu.user_table, None);

        w.platform.mem.entries(PAGE + 1)[5] = 0x1234;
        let copy = MmuextOp { cmd: MMUEXT_COPY_PAGE, _pad0: 0, arg1: PAGE, arg2: PAGE + 1 };
        assert_eq!(mmuext(&mut w, &[copy]), (0, 1));
        assert_eq!(w.platform.mem.entries(PAGE)[5], 0x1234);
        assert_eq!(mmuext(&mut w, &[op(MMUEXT_CLEAR_PAGE, PAGE)]), (0, 1));
        assert_eq!(w.platform.mem.entries(PAGE)[5], 0);
        assert_eq!(mmuext(&mut w, &[op(MMUEXT_CLEAR_PAGE, L1)]).0, Errno::EBUSY.as_ret(), "a page table");
        assert_eq!(mmuext(&mut w, &[op(MMUEXT_CLEAR_PAGE, 3)]).0, Errno::EINVAL.as_ret(), "a hypervisor frame");
    }

    #[test]
    fn tlb_ops_run_in_order_and_stop_at_the_first_failure() {
        let mut w = world();
        let ops = [
            op(MMUEXT_TLB_FLUSH_LOCAL, 0),
            op(MMUEXT_INVLPG_ALL, 0x5000),
            op(MMUEXT_INVLPG_LOCAL, 0xffff_8000_0000_0000),
            op(MMUEXT_TLB_FLUSH_ALL, 0),
        ];
        assert_eq!(mmuext(&mut w, &ops), (Errno::EINVAL.as_ret(), 2));
        assert_eq!(w.platform.flushes, [None, Some(0x5000)]);
        assert_eq!(mmuext(&mut w, &[op(MMUEXT_SET_LDT, 0)]).0, Errno::ENOSYS.as_ret());
        w.call(MMUEXT_OP, &[MEM_BASE, 1, 0, 3]);
        assert_eq!(w.ret(), Errno::EPERM.as_ret());
    }

    #[test]
    fn otherdomain_is_privileged_and_needs_the_domain() {
        use abi::hypercall::UPDATE_VA_MAPPING_OTHERDOMAIN as OTHER;
        let mut w = world();
        w.call(OTHER, &[VA, (PAGE << 12) | pte::P, 0, DOMID_SELF.into()]);
        assert_eq!(w.ret(), Errno::EPERM.as_ret(), "unprivileged caller");
        w.domain.privileged = true;
        w.call(OTHER, &[VA, (PAGE << 12) | pte::P, 0, 5]);
        assert_eq!(w.ret(), Errno::ESRCH.as_ret());
        w.call(OTHER, &[VA, (PAGE << 12) | pte::P, 0, DOMID_SELF.into()]);
        assert_eq!(w.ret(), 0);
    }

    /// A privileged caller with `foreigndom` maps another domain's frame
    /// (and only then), sets its M2P entry, and pins its tables.
    #[test]
    fn the_control_domain_maps_sets_and_pins_another_domains_frames() {
        use abi::hypercall::UPDATE_VA_MAPPING_OTHERDOMAIN;
        let mut w = world();
        w.domain.privileged = true;
        let theirs = OTHER_FRAMES.start; // domain 7's
        let map = MmuUpdate { ptr: (L1 << 12) + 8 * index(VA, 1) as u64, val: (theirs << 12) | pte::P | pte::RW };
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &map).unwrap();
        w.call(MMU_UPDATE, &[MEM_BASE, 1, 0, DOMID_SELF.into()]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret(), "not without foreigndom");
        w.call(MMU_UPDATE, &[MEM_BASE, 1, 0, 40]);
        assert_eq!(w.ret(), Errno::ESRCH.as_ret(), "no domain 40");
        w.call(MMU_UPDATE, &[MEM_BASE, 1, 0, 7]);
        assert_eq!(w.ret(), 0);
        assert_eq!(l1(&mut w) >> 12 & 0xff_ffff, theirs);
        assert!(!w.platform.frames.can_release(theirs), "held by the mapping");
        let m2p = MmuUpdate { ptr: (theirs << 12) | MMU_MACHPHYS_UPDATE, val: 5 };
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &m2p).unwrap();
        w.call(MMU_UPDATE, &[MEM_BASE, 1, 0, 7]);
        assert_eq!((w.ret(), w.platform.m2p.get(&theirs)), (0, Some(&5)));
        // Unmap it again through update_va_mapping_otherdomain.
        w.call(UPDATE_VA_MAPPING_OTHERDOMAIN, &[VA, 0, 0, 7]);
        assert_eq!(w.ret(), 0);
        assert!(w.platform.frames.can_release(theirs));
        // Pin one of its frames as an (empty) L1 of domain 7, then unpin.
        let ops = [op(MMUEXT_PIN_L1_TABLE, theirs + 1), op(MMUEXT_UNPIN_TABLE, theirs + 1)];
        for (i, o) in ops.iter().enumerate() {
            guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE + 24 * i as u64), o).unwrap();
        }
        w.call(MMUEXT_OP, &[MEM_BASE, 1, 0, 7]);
        assert_eq!(w.ret(), 0);
        assert!(w.platform.frames.types(theirs + 1).is_pinned(), "pinned as domain 7's");
        w.call(MMUEXT_OP, &[MEM_BASE + 24, 1, 0, 7]);
        assert_eq!(w.ret(), 0);
        assert!(w.platform.frames.can_release(theirs + 1));
        // Other extended ops do not take a foreign owner.
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &op(MMUEXT_TLB_FLUSH_LOCAL, 0)).unwrap();
        w.call(MMUEXT_OP, &[MEM_BASE, 1, 0, 7]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret());
    }

    #[test]
    fn mmu_update_kinds_are_the_low_three_bits() {
        let mut w = world();
        for ptr in [(L1 << 12) + 4, (L1 << 12) | 5, (L1 << 12) | 7] {
            guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &MmuUpdate { ptr, val: (PAGE << 12) | pte::P }).unwrap();
            w.call(MMU_UPDATE, &[MEM_BASE, 1, 0, DOMID_SELF.into()]);
            assert_eq!(w.ret(), Errno::ENOSYS.as_ret(), "ptr {ptr:#x}");
        }
        assert_eq!(w.platform.mem.entries(L1)[0], 0, "nothing written");
        assert!(w.platform.m2p.is_empty(), "no M2P update");
    }
}
