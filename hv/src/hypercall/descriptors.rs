//! `set_gdt` and `update_descriptor`: the guest's own segment descriptors.
//!
//! GDT frames take a segment-descriptor type reference, so the guest can
//! never map them writable; the hypervisor copies their checked descriptors
//! into the CPU's GDT below its reserved entries. `update_descriptor` is
//! the only way to change such a frame, and updates the copy with it.

use super::{Action, Ctx};
use crate::descriptor::check_descriptor;
use crate::domain::MAX_GDT_FRAMES;
use crate::guest::{self, GuestPtr};
use crate::mm::frame::FrameUse;
use crate::mm::pagetype::{PageType, PtError};
use crate::mm::Mfn;
use abi::errno::Errno;

/// Entries available to a guest GDT (below the hypervisor's, at 7168).
const MAX_GDT_ENTRIES: u64 = (MAX_GDT_FRAMES * 512) as u64;

/// `set_gdt(frames, entries)`: installs a GDT of `entries` descriptors
/// held in the machine frames listed at `frames`; 0 entries removes it.
pub(super) fn set_gdt(ctx: &mut Ctx<'_>, [list, entries, ..]: [u64; 5]) -> Action {
    Action::Return(set(ctx, GuestPtr(list), entries).map(|()| 0))
}

fn set(ctx: &mut Ctx<'_>, list: GuestPtr, entries: u64) -> Result<(), Errno> {
    if entries > MAX_GDT_ENTRIES {
        return Err(Errno::EINVAL);
    }
    let count = entries.div_ceil(512) as usize;
    let mut frames = [0 as Mfn; MAX_GDT_FRAMES];
    for (i, f) in frames.iter_mut().enumerate().take(count) {
        *f = guest::read_obj(ctx.mem, list.add(8 * i as u64)).map_err(|_| Errno::EFAULT)?;
    }
    let dom = ctx.domain.id;
    let old = ctx.domain.vcpu.gdt_frames;
    let old_count = (ctx.domain.vcpu.gdt_entries as u64).div_ceil(512) as usize;
    let mut copy = [[0u64; 512]; MAX_GDT_FRAMES];
    let mut r: Result<(), PtError> = Ok(());
    ctx.platform.page_types(&mut |pt| {
        // Take every new reference first; on failure give back those taken.
        for i in 0..count {
            if let Err(e) = pt.get_page_and_type(dom, frames[i], PageType::SegDesc) {
                for f in &frames[..i] {
                    pt.put_page_and_type(*f);
                }
                r = Err(e);
                return;
            }
            copy[i] = *pt.memory().entries(frames[i]);
        }
        for f in &old[..old_count] {
            pt.put_page_and_type(*f);
        }
        r = Ok(());
    });
    r.map_err(PtError::errno)?;
    let installed = copy.iter().take(count).flatten().take(entries as usize);
    // The frames validated, so every descriptor passes the check.
    ctx.platform.load_gdt(&mut installed.map(|&d| check_descriptor(d).unwrap_or(0)));
    ctx.domain.vcpu.gdt_frames = frames;
    ctx.domain.vcpu.gdt_entries = entries as u32;
    Ok(())
}

/// `update_descriptor(maddr, desc)`: writes descriptor `desc` at machine
/// address `maddr`, in a GDT frame of the caller (checked, and copied into
/// the CPU's GDT if that frame is installed) or in a page it could write
/// itself.
pub(super) fn update_descriptor(ctx: &mut Ctx<'_>, [maddr, desc, ..]: [u64; 5]) -> Action {
    if maddr % 8 != 0 {
        return Action::Return(Err(Errno::EINVAL));
    }
    let Some(fixed) = check_descriptor(desc) else { return Action::Return(Err(Errno::EINVAL)) };
    let (mfn, slot) = (maddr >> 12, ((maddr & 0xfff) / 8) as usize);
    let dom = ctx.domain.id;
    let mut r = Err(Errno::EINVAL);
    ctx.platform.page_types(&mut |pt| {
        if pt.frames().usage(mfn) != FrameUse::Domain(dom) {
            return;
        }
        // A descriptor frame stays one; any other page must be writable.
        let ty = match pt.frames().types(mfn).page_type() {
            PageType::SegDesc => PageType::SegDesc,
            _ => PageType::Writable,
        };
        if pt.get_page_and_type(dom, mfn, ty).is_err() {
            return;
        }
        pt.memory().entries(mfn)[slot] = fixed;
        pt.put_page_and_type(mfn);
        r = Ok(());
    });
    if r.is_ok() {
        let v = &ctx.domain.vcpu;
        let count = (v.gdt_entries as usize).div_ceil(512);
        if let Some(i) = v.gdt_frames[..count].iter().position(|&f| f == mfn) {
            let index = i * 512 + slot;
            if index < v.gdt_entries as usize {
                ctx.platform.set_gdt_entry(index, fixed);
            }
        }
    }
    Action::Return(r.map(|()| 0))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{World, MEM_BASE};
    use super::super::Platform;
    use super::*;
    use crate::mm::pagetype::GuestFrames;
    use abi::hypercall::{SET_GDT, UPDATE_DESCRIPTOR};

    const RING0_CODE: u64 = 0x00af_9b00_0000_ffff;
    const TSS: u64 = 0x0000_8900_0000_0067;

    fn gdt_world() -> World {
        let mut w = World::new(false);
        w.platform.mem.entries(30)[1] = RING0_CODE;
        w.platform.mem.entries(31)[0] = 0x00cf_f300_0000_ffff;
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &[30u64, 31]).unwrap();
        w
    }

    #[test]
    fn set_gdt_installs_checked_copies_and_locks_the_frames() {
        let mut w = gdt_world();
        w.call(SET_GDT, &[MEM_BASE, 513]);
        assert_eq!(w.ret(), 0);
        assert_eq!(w.platform.gdt[1], RING0_CODE | (3 << 45), "DPL raised to 3");
        assert_eq!(w.platform.gdt[512], 0x00cf_f300_0000_ffff);
        assert_eq!(w.domain.vcpu.gdt_entries, 513);
        assert_eq!(w.platform.frames.types(30).page_type(), PageType::SegDesc);
        // Now the frames cannot be mapped writable or given back.
        assert!(!w.platform.frames.can_release(30));
        // Removing the GDT drops the references.
        w.call(SET_GDT, &[0, 0]);
        assert_eq!(w.ret(), 0);
        assert!(w.platform.frames.can_release(30) && w.platform.frames.can_release(31));
        assert!(w.platform.gdt.iter().all(|&d| d == 0));
    }

    #[test]
    fn bad_gdts_change_nothing() {
        let mut w = gdt_world();
        w.platform.mem.entries(31)[5] = TSS;
        w.call(SET_GDT, &[MEM_BASE, 1024]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret(), "a TSS descriptor");
        assert!(w.platform.frames.can_release(30), "the first frame's reference was given back");
        w.call(SET_GDT, &[MEM_BASE, 7169]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret(), "into the hypervisor's entries");
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &[3u64]).unwrap();
        w.call(SET_GDT, &[MEM_BASE, 1]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret(), "a hypervisor frame");
        w.call(SET_GDT, &[0xffff_8000_0000_0000, 1]);
        assert_eq!(w.ret(), Errno::EFAULT.as_ret());
        assert_eq!(w.domain.vcpu.gdt_entries, 0);
    }

    #[test]
    fn update_descriptor_checks_and_updates_the_installed_copy() {
        let mut w = gdt_world();
        w.call(SET_GDT, &[MEM_BASE, 16]);
        w.call(UPDATE_DESCRIPTOR, &[(30 << 12) + 8 * 3, RING0_CODE]);
        assert_eq!(w.ret(), 0);
        assert_eq!(w.platform.mem.entries(30)[3], RING0_CODE | (3 << 45));
        assert_eq!(w.platform.gdt[3], RING0_CODE | (3 << 45));
        w.call(UPDATE_DESCRIPTOR, &[(30 << 12) + 8 * 4, TSS]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret(), "a system descriptor");
        w.call(UPDATE_DESCRIPTOR, &[(30 << 12) + 4, 0]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret(), "misaligned");
        w.call(UPDATE_DESCRIPTOR, &[3 << 12, 0]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret(), "a hypervisor frame");
        // A plain page of the guest's takes a descriptor like any write.
        w.call(UPDATE_DESCRIPTOR, &[40 << 12, RING0_CODE]);
        assert_eq!(w.ret(), 0);
        // A page table does not.
        let dom = w.domain.id;
        w.platform.page_types(&mut |pt| pt.pin(dom, 41, crate::mm::pagetype::Level::L1).unwrap());
        w.call(UPDATE_DESCRIPTOR, &[41 << 12, 0]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret());
    }
}
