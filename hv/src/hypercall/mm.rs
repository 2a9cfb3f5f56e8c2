//! Page-table updates: `update_va_mapping`, until full PV page-type
//! tracking lands.
//!
//! The safety rule PV rests on is that a guest never holds a writable
//! mapping of a page table. Without type tracking, the page tables a guest
//! can have are exactly its bootstrap tables (nothing else can install
//! one), so this handler allows an L1 update only if the new entry maps a
//! frame the domain owns, with allowed flags, and is not writable when the
//! frame is one of those tables.

use super::{Action, Ctx};
use crate::guest::range_ok;
use crate::mm::frame::FrameUse;
use crate::mm::pagetable::{index, pte};
use abi::errno::Errno;

/// Flags a guest L1 entry may carry: P, RW, U, A, D, G, the three
/// available bits, and NX.
const L1_ALLOWED: u64 = pte::P | pte::RW | pte::U | pte::A | pte::D | pte::G | (7 << 9) | pte::NX;
/// `UVMF_*` low bits: 1 = flush the TLB, 2 = invalidate one page.
const UVMF_FLUSHTYPE_MASK: u64 = 3;

/// `update_va_mapping(va, val, flags)`: rewrites the L1 entry that maps
/// `va` in the current page tables.
pub(super) fn update_va_mapping(ctx: &mut Ctx<'_>, [va, val, flags, ..]: [u64; 5]) -> Action {
    Action::Return(update(ctx, va, val, flags).map(|()| 0))
}

fn update(ctx: &mut Ctx<'_>, va: u64, val: u64, flags: u64) -> Result<(), Errno> {
    if !range_ok(va, 1) {
        return Err(Errno::EINVAL);
    }
    let me = FrameUse::Domain(ctx.domain.id);
    // Decode: the new entry.
    if val & pte::P != 0 {
        if val & !(L1_ALLOWED | pte::ADDR) != 0 {
            return Err(Errno::EINVAL);
        }
        let mfn = (val & pte::ADDR) >> 12;
        if ctx.platform.frame_owner(mfn) != me {
            return Err(Errno::EINVAL);
        }
        let frames = ctx.domain.page_table_frames;
        if val & pte::RW != 0 && (frames.start..frames.end).contains(&mfn) {
            return Err(Errno::EINVAL);
        }
    }
    // Find the L1 table through the current tables.
    let mut table = ctx.domain.vcpu.cr3 >> 12;
    for level in [4, 3, 2] {
        if ctx.platform.frame_owner(table) != me {
            return Err(Errno::EINVAL);
        }
        let entry = ctx.platform.page_table(table).ok_or(Errno::EINVAL)?[index(va, level)];
        if entry & pte::P == 0 || entry & pte::PS != 0 {
            return Err(Errno::EINVAL);
        }
        table = (entry & pte::ADDR) >> 12;
    }
    if ctx.platform.frame_owner(table) != me {
        return Err(Errno::EINVAL);
    }
    // Act: every present L1 entry of a PV guest is user-accessible.
    let new = if val & pte::P != 0 { val | pte::U } else { val };
    ctx.platform.page_table(table).ok_or(Errno::EINVAL)?[index(va, 1)] = new;
    match flags & UVMF_FLUSHTYPE_MASK {
        1 => ctx.platform.flush_tlb(None),
        2 => ctx.platform.flush_tlb(Some(va)),
        _ => {}
    }
    Ok(())
}

/// `mmuext_op(ops, count, done, foreigndom)`: extended MMU operations, in
/// order, stopping at the first failure; `*done` (if not null) gets how
/// many succeeded. Only the TLB operations exist until page-type tracking
/// lands; the rest are `-ENOSYS`. With one CPU, the `MULTI` and `ALL`
/// variants are the local ones.
pub(super) fn mmuext_op(ctx: &mut Ctx<'_>, [ops, count, done_ptr, foreigndom, ..]: [u64; 5]) -> Action {
    use crate::guest::{self, GuestPtr};
    use abi::mm::*;
    if foreigndom != u64::from(DOMID_SELF) && foreigndom != u64::from(ctx.domain.id) {
        return Action::Return(Err(Errno::EPERM));
    }
    let mut done = 0u64;
    let mut result = Ok(0);
    while done < count {
        let Ok(op) = guest::read_obj::<MmuextOp, _>(ctx.mem, GuestPtr(ops).add(done.wrapping_mul(24))) else {
            result = Err(Errno::EFAULT);
            break;
        };
        let r = match op.cmd {
            MMUEXT_TLB_FLUSH_LOCAL | MMUEXT_TLB_FLUSH_MULTI | MMUEXT_TLB_FLUSH_ALL => {
                ctx.platform.flush_tlb(None);
                Ok(())
            }
            MMUEXT_INVLPG_LOCAL | MMUEXT_INVLPG_MULTI | MMUEXT_INVLPG_ALL if range_ok(op.arg1, 1) => {
                ctx.platform.flush_tlb(Some(op.arg1));
                Ok(())
            }
            MMUEXT_INVLPG_LOCAL | MMUEXT_INVLPG_MULTI | MMUEXT_INVLPG_ALL => Err(Errno::EINVAL),
            _ => Err(Errno::ENOSYS),
        };
        if let Err(e) = r {
            result = Err(e);
            break;
        }
        done += 1;
    }
    if done_ptr != 0 && guest::write_obj(ctx.mem, GuestPtr(done_ptr), &done).is_err() {
        return Action::Return(Err(Errno::EFAULT));
    }
    Action::Return(result)
}

#[cfg(test)]
mod tests {
    use super::super::testing::World;
    use super::*;
    use crate::mm::memmap::FrameRange;
    use abi::hypercall::UPDATE_VA_MAPPING;

    const VA: u64 = 0xffff_ffff_8020_3000;

    /// A domain with L4 at frame 1 → L3 2 → L2 3 → L1 4 mapping VA's 2 MiB,
    /// owning frames 1..=9; frame 1–4 are its page tables.
    fn world() -> World {
        let mut w = World::new(false);
        w.domain.vcpu.cr3 = 1 << 12;
        w.domain.page_table_frames = FrameRange { start: 1, end: 5 };
        let mut t = |mfn: u64, idx: usize, next: u64| {
            let mut table = [0u64; 512];
            table[idx] = (next << 12) | pte::P | pte::RW | pte::U;
            w.platform.tables.insert(mfn, table);
        };
        t(1, index(VA, 4), 2);
        t(2, index(VA, 3), 3);
        t(3, index(VA, 2), 4);
        w.platform.tables.insert(4, [0; 512]);
        for mfn in 1..=9 {
            w.platform.owners.insert(mfn, FrameUse::Domain(1));
        }
        w.platform.owners.insert(10, FrameUse::Hypervisor);
        w.platform.owners.insert(11, FrameUse::Domain(7));
        w
    }

    fn l1(w: &World) -> u64 {
        w.platform.tables[&4][index(VA, 1)]
    }

    #[test]
    fn maps_an_owned_frame_user_accessible() {
        let mut w = world();
        w.call(UPDATE_VA_MAPPING, &[VA, (9 << 12) | pte::P | pte::RW | pte::A, 2]);
        assert_eq!(w.ret(), 0);
        assert_eq!(l1(&w), (9 << 12) | pte::P | pte::RW | pte::A | pte::U);
        assert_eq!(w.platform.flushes, [Some(VA)]);
        w.call(UPDATE_VA_MAPPING, &[VA, 0, 1]);
        assert_eq!((w.ret(), l1(&w)), (0, 0));
        assert_eq!(w.platform.flushes[1], None);
    }

    #[test]
    fn page_tables_may_be_mapped_read_only_but_never_writable() {
        let mut w = world();
        w.call(UPDATE_VA_MAPPING, &[VA, (4 << 12) | pte::P, 0]);
        assert_eq!(w.ret(), 0);
        for mfn in 1..=4 {
            w.call(UPDATE_VA_MAPPING, &[VA, (mfn << 12) | pte::P | pte::RW, 0]);
            assert_eq!(w.ret(), Errno::EINVAL.as_ret(), "frame {mfn}");
        }
        assert_eq!(l1(&w), (4 << 12) | pte::P | pte::U, "unchanged");
    }

    #[test]
    fn foreign_frames_bad_flags_and_missing_tables_are_refused() {
        let mut w = world();
        for (val, why) in [
            ((10 << 12) | pte::P, "hypervisor frame"),
            ((11 << 12) | pte::P, "another domain's frame"),
            ((99 << 12) | pte::P, "not RAM"),
            ((9 << 12) | pte::P | pte::PS, "large page bit"),
            ((9 << 12) | pte::P | (1 << 4), "cache-disable"),
            ((9 << 12) | pte::P | (1 << 52), "reserved bit"),
        ] {
            w.call(UPDATE_VA_MAPPING, &[VA, val, 0]);
            assert_eq!(w.ret(), Errno::EINVAL.as_ret(), "{why}");
        }
        for va in [VA + (1 << 21), 0xffff_8000_0000_0000, 0x8000_0000_0000_0000] {
            w.call(UPDATE_VA_MAPPING, &[va, (9 << 12) | pte::P, 0]);
            assert_eq!(w.ret(), Errno::EINVAL.as_ret(), "va {va:#x}");
        }
        assert_eq!(l1(&w), 0);
    }
}

#[cfg(test)]
mod mmuext_tests {
    use super::super::testing::{World, MEM_BASE};
    use crate::guest::{self, GuestPtr};
    use abi::errno::Errno;
    use abi::hypercall::MMUEXT_OP;
    use abi::mm::*;

    fn op(cmd: u32, arg1: u64) -> MmuextOp {
        MmuextOp { cmd, _pad0: 0, arg1, arg2: 0 }
    }

    #[test]
    fn tlb_ops_run_in_order_and_stop_at_the_first_failure() {
        let mut w = World::new(false);
        let ops = [
            op(MMUEXT_TLB_FLUSH_LOCAL, 0),
            op(MMUEXT_INVLPG_ALL, 0x5000),
            op(MMUEXT_INVLPG_LOCAL, 0xffff_8000_0000_0000),
            op(MMUEXT_TLB_FLUSH_ALL, 0),
        ];
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &ops).unwrap();
        w.call(MMUEXT_OP, &[MEM_BASE, 4, MEM_BASE + 0x1000, DOMID_SELF.into()]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret(), "invlpg of a hypervisor address");
        assert_eq!(guest::read_obj::<u64, _>(&mut w.mem, GuestPtr(MEM_BASE + 0x1000)).unwrap(), 2);
        assert_eq!(w.platform.flushes, [None, Some(0x5000)]);
        w.call(MMUEXT_OP, &[MEM_BASE, 2, 0, DOMID_SELF.into()]);
        assert_eq!(w.ret(), 0, "a null done pointer is fine");
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &op(MMUEXT_PIN_L4_TABLE, 0)).unwrap();
        w.call(MMUEXT_OP, &[MEM_BASE, 1, 0, DOMID_SELF.into()]);
        assert_eq!(w.ret(), Errno::ENOSYS.as_ret());
        w.call(MMUEXT_OP, &[MEM_BASE, 1, 0, 3]);
        assert_eq!(w.ret(), Errno::EPERM.as_ret(), "foreign domains need the toolstack");
    }
}
