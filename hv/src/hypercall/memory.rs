//! `memory_op` (the queries, until reservations can be changed safely)
//! and `vm_assist`.

use super::{Action, Ctx};
use crate::guest::{self, GuestPtr};
use crate::layout::PAGE_SIZE;
use crate::mm::frame::DomId;
use abi::errno::Errno;
use abi::mm::*;

/// Machine frames per `machphys_mfn_list` extent (2 MiB of M2P).
const M2P_EXTENT_FRAMES: u64 = 512;

/// One entry of the e820-style map `XENMEM_memory_map` returns.
const E820_ENTRY_BYTES: usize = 20;
/// E820 type of RAM.
const E820_RAM: u32 = 1;

/// `memory_op(cmd, arg)`.
pub(super) fn memory_op(ctx: &mut Ctx<'_>, [cmd, arg, ..]: [u64; 5]) -> Action {
    // The low bits are the command; Xen keeps a continuation start extent
    // above them, which a guest must pass as 0.
    let arg = GuestPtr(arg);
    Action::Return(match cmd {
        c if c == u64::from(XENMEM_MAXIMUM_RAM_PAGE) => Ok(ctx.platform.max_mfn()),
        c if c == u64::from(XENMEM_CURRENT_RESERVATION) => reservation(ctx, arg, |(nr, _)| nr),
        c if c == u64::from(XENMEM_MAXIMUM_RESERVATION) => reservation(ctx, arg, |(_, max)| max),
        c if c == u64::from(XENMEM_MACHPHYS_MFN_LIST) => machphys_mfn_list(ctx, arg),
        c if c == u64::from(XENMEM_MEMORY_MAP) => memory_map(ctx, arg),
        c if c == u64::from(XENMEM_INCREASE_RESERVATION) => reserve(ctx, arg, Change::Increase),
        c if c == u64::from(XENMEM_POPULATE_PHYSMAP) => reserve(ctx, arg, Change::Populate),
        c if c == u64::from(XENMEM_DECREASE_RESERVATION) => reserve(ctx, arg, Change::Decrease),
        _ => Err(Errno::ENOSYS),
    })
}

/// How a reservation changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    /// New frames; their machine frame numbers are written to the list.
    Increase,
    /// New frames for the guest frames the list names; the list gets the
    /// machine frames and the M2P records the guest frames.
    Populate,
    /// The listed machine frames go back to the hypervisor.
    Decrease,
}

/// `increase_reservation`, `populate_physmap`, `decrease_reservation`:
/// returns how many extents were done, stopping at the first that cannot
/// be (no memory, the maximum reached, a frame still in use or not the
/// caller's, an unreadable list entry). Single frames only (order 0).
fn reserve(ctx: &mut Ctx<'_>, arg: GuestPtr, change: Change) -> Result<u64, Errno> {
    // As in Xen, an unreadable argument is simply no extents done.
    let Ok(r) = guest::read_obj::<XenMemoryReservation, _>(ctx.mem, arg) else { return Ok(0) };
    let dom = target(ctx, r.domid)?;
    let own = dom == ctx.domain.id;
    let (mut nr_pages, max_pages) =
        if own { (ctx.domain.nr_pages, ctx.domain.max_pages) } else { ctx.platform.domain_pages(dom)? };
    if r.extent_order != 0 {
        return Err(Errno::EINVAL);
    }
    let list = GuestPtr(r.extent_start);
    let mut done = 0;
    while done < r.nr_extents {
        let slot = list.add(done.wrapping_mul(8));
        let ok = match change {
            Change::Decrease => match guest::read_obj::<u64, _>(ctx.mem, slot) {
                Ok(mfn) => ctx.platform.release_domain_frame(dom, mfn).is_ok(),
                Err(_) => false,
            },
            Change::Increase | Change::Populate => {
                let gpfn = match change {
                    Change::Populate => match guest::read_obj::<u64, _>(ctx.mem, slot) {
                        Ok(gpfn) => Some(gpfn),
                        Err(_) => break,
                    },
                    _ => None,
                };
                if nr_pages >= max_pages {
                    break;
                }
                let Some(mfn) = ctx.platform.alloc_domain_frame(dom) else { break };
                if list.0 != 0 && guest::write_obj(ctx.mem, slot, &mfn).is_err() {
                    // Nobody learnt of the frame: take it back at once.
                    let _ = ctx.platform.release_domain_frame(dom, mfn);
                    break;
                }
                if let Some(gpfn) = gpfn {
                    ctx.platform.set_m2p(mfn, gpfn);
                }
                true
            }
        };
        if !ok {
            break;
        }
        match change {
            Change::Decrease => nr_pages = nr_pages.saturating_sub(1),
            _ => nr_pages += 1,
        }
        done += 1;
    }
    if own {
        ctx.domain.nr_pages = nr_pages;
    } else {
        ctx.platform.set_domain_pages(dom, nr_pages)?;
    }
    Ok(done)
}

/// The domain a reservation names, with Xen's errors: a domain that does
/// not exist is `-ESRCH`, another domain without privilege `-EPERM`.
fn target(ctx: &mut Ctx<'_>, domid: u16) -> Result<DomId, Errno> {
    match ctx.reservation_target(domid.into()) {
        Err(Errno::EPERM) if ctx.platform.domain_pages(domid).is_err() => Err(Errno::ESRCH),
        other => other,
    }
}

/// `current_reservation` / `maximum_reservation`: the argument names a
/// domain; only the caller itself for now (other domains arrive with the
/// toolstack).
fn reservation(ctx: &mut Ctx<'_>, arg: GuestPtr, value: fn((u64, u64)) -> u64) -> Result<u64, Errno> {
    let domid: u16 = guest::read_obj(ctx.mem, arg).map_err(|_| Errno::EFAULT)?;
    let dom = target(ctx, domid)?;
    if dom == ctx.domain.id {
        Ok(value((ctx.domain.nr_pages, ctx.domain.max_pages)))
    } else {
        ctx.platform.domain_pages(dom).map(value)
    }
}

/// `machphys_mfn_list`: the machine frames that hold the M2P, one per
/// 2 MiB of it.
fn machphys_mfn_list(ctx: &mut Ctx<'_>, arg: GuestPtr) -> Result<u64, Errno> {
    let mut list: XenMachphysMfnList = guest::read_obj(ctx.mem, arg).map_err(|_| Errno::EFAULT)?;
    let (first, frames) = ctx.platform.m2p_frames();
    let extents = frames.div_ceil(M2P_EXTENT_FRAMES).min(u64::from(list.max_extents));
    for i in 0..extents {
        let mfn = first + i * M2P_EXTENT_FRAMES;
        guest::write_obj(ctx.mem, GuestPtr(list.extent_start).add(8 * i), &mfn).map_err(|_| Errno::EFAULT)?;
    }
    list.nr_extents = extents as u32;
    guest::write_obj(ctx.mem, arg, &list).map_err(|_| Errno::EFAULT)?;
    Ok(0)
}

/// `memory_map`: a PV domain's pseudo-physical map, one RAM range over
/// its maximum reservation (what Xen gives a domain whose map nobody set).
fn memory_map(ctx: &mut Ctx<'_>, arg: GuestPtr) -> Result<u64, Errno> {
    let mut map: XenMemoryMap = guest::read_obj(ctx.mem, arg).map_err(|_| Errno::EFAULT)?;
    if map.nr_entries < 1 {
        return Err(Errno::EINVAL);
    }
    let mut entry = [0u8; E820_ENTRY_BYTES];
    // The control domain sets the maximum from a count of KiB: it can
    // exceed what a byte count holds.
    let bytes = ctx.domain.max_pages.saturating_mul(PAGE_SIZE);
    entry[8..16].copy_from_slice(&bytes.to_le_bytes());
    entry[16..20].copy_from_slice(&E820_RAM.to_le_bytes());
    guest::write(ctx.mem, GuestPtr(map.buffer), &entry).map_err(|_| Errno::EFAULT)?;
    map.nr_entries = 1;
    guest::write_obj(ctx.mem, arg, &map).map_err(|_| Errno::EFAULT)?;
    Ok(0)
}

/// `vm_assist(cmd, type)`. None of Xen's assist types is implemented yet
/// (they concern writable page tables, 32-bit guests, IOPL emulation, the
/// runstate area and a strict M2P in user mode), so enabling or disabling
/// any of them is `-EINVAL`, as Xen answers for a type it does not offer.
pub(super) fn vm_assist(_ctx: &mut Ctx<'_>, [cmd, _ty, ..]: [u64; 5]) -> Action {
    match u32::try_from(cmd) {
        Ok(VMASST_CMD_ENABLE | VMASST_CMD_DISABLE) => Action::Return(Err(Errno::EINVAL)),
        _ => Action::Return(Err(Errno::ENOSYS)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{World, MEM_BASE};
    use super::*;
    use crate::hypercall::Platform;
    use abi::hypercall::{MEMORY_OP, VM_ASSIST};

    fn op(w: &mut World, cmd: u32, arg: u64) -> i64 {
        w.call(MEMORY_OP, &[cmd.into(), arg]);
        w.ret()
    }

    #[test]
    fn reservations_and_ram_page() {
        let mut w = World::new(false);
        (w.domain.nr_pages, w.domain.max_pages) = (1000, 2000);
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &DOMID_SELF).unwrap();
        assert_eq!(op(&mut w, XENMEM_CURRENT_RESERVATION, MEM_BASE), 1000);
        assert_eq!(op(&mut w, XENMEM_MAXIMUM_RESERVATION, MEM_BASE), 2000);
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &w.domain.id.clone()).unwrap();
        assert_eq!(op(&mut w, XENMEM_CURRENT_RESERVATION, MEM_BASE), 1000);
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &9u16).unwrap();
        assert_eq!(op(&mut w, XENMEM_CURRENT_RESERVATION, MEM_BASE), Errno::ESRCH.as_ret());
        assert_eq!(op(&mut w, XENMEM_CURRENT_RESERVATION, 0), Errno::EFAULT.as_ret());
        assert_eq!(op(&mut w, XENMEM_MAXIMUM_RAM_PAGE, 0), 0x8_0000);
        assert_eq!(op(&mut w, XENMEM_ADD_TO_PHYSMAP, MEM_BASE), Errno::ENOSYS.as_ret());
    }

    #[test]
    fn machphys_mfn_list_names_each_2mib_of_the_m2p() {
        let mut w = World::new(false);
        let req = XenMachphysMfnList { max_extents: 8, extent_start: MEM_BASE + 0x100, ..Default::default() };
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &req).unwrap();
        assert_eq!(op(&mut w, XENMEM_MACHPHYS_MFN_LIST, MEM_BASE), 0);
        let out: XenMachphysMfnList = guest::read_obj(&mut w.mem, GuestPtr(MEM_BASE)).unwrap();
        assert_eq!(out.nr_extents, 2, "1024 M2P frames are two extents");
        let mfns: [u64; 2] = guest::read_obj(&mut w.mem, GuestPtr(MEM_BASE + 0x100)).unwrap();
        assert_eq!(mfns, [0x300, 0x500]);
        let small = XenMachphysMfnList { max_extents: 1, ..req };
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &small).unwrap();
        op(&mut w, XENMEM_MACHPHYS_MFN_LIST, MEM_BASE);
        let out: XenMachphysMfnList = guest::read_obj(&mut w.mem, GuestPtr(MEM_BASE)).unwrap();
        assert_eq!(out.nr_extents, 1, "bounded by max_extents");
    }

    #[test]
    fn memory_map_is_one_ram_range() {
        let mut w = World::new(false);
        w.domain.max_pages = 0x4000;
        let req = XenMemoryMap { nr_entries: 4, _pad0: 0, buffer: MEM_BASE + 0x40 };
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &req).unwrap();
        assert_eq!(op(&mut w, XENMEM_MEMORY_MAP, MEM_BASE), 0);
        let out: XenMemoryMap = guest::read_obj(&mut w.mem, GuestPtr(MEM_BASE)).unwrap();
        assert_eq!(out.nr_entries, 1);
        let e: [u8; 20] = guest::read_obj(&mut w.mem, GuestPtr(MEM_BASE + 0x40)).unwrap();
        assert_eq!(u64::from_le_bytes(e[8..16].try_into().unwrap()), 0x4000 * 4096);
        assert_eq!(u32::from_le_bytes(e[16..20].try_into().unwrap()), 1);
        // A maximum beyond what bytes can count reports the most there is.
        w.domain.max_pages = u64::MAX / 1024;
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &req).unwrap();
        assert_eq!(op(&mut w, XENMEM_MEMORY_MAP, MEM_BASE), 0);
        let e: [u8; 20] = guest::read_obj(&mut w.mem, GuestPtr(MEM_BASE + 0x40)).unwrap();
        assert_eq!(u64::from_le_bytes(e[8..16].try_into().unwrap()), u64::MAX);
        let none = XenMemoryMap { nr_entries: 0, ..req };
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &none).unwrap();
        assert_eq!(op(&mut w, XENMEM_MEMORY_MAP, MEM_BASE), Errno::EINVAL.as_ret());
    }

    #[test]
    fn vm_assist_refuses_what_is_not_implemented() {
        let mut w = World::new(false);
        for ty in [0, 2, 3, 5, 32, 64, 1 << 40] {
            w.call(VM_ASSIST, &[VMASST_CMD_ENABLE.into(), ty]);
            assert_eq!(w.ret(), Errno::EINVAL.as_ret(), "type {ty}");
        }
        w.call(VM_ASSIST, &[7, 0]);
        assert_eq!(w.ret(), Errno::ENOSYS.as_ret(), "unknown command");
    }

    fn reservation(list: u64, n: u64) -> XenMemoryReservation {
        XenMemoryReservation { extent_start: list, nr_extents: n, domid: DOMID_SELF, ..Default::default() }
    }

    fn list(w: &mut World, n: usize) -> Vec<u64> {
        (0..n)
            .map(|i| guest::read_obj::<u64, _>(&mut w.mem, GuestPtr(MEM_BASE + 0x100 + 8 * i as u64)).unwrap())
            .collect()
    }

    #[test]
    fn frames_come_and_go_within_the_maximum() {
        let mut w = World::new(false);
        (w.domain.nr_pages, w.domain.max_pages) = (64, 66);
        let free_before = w.platform.frames.stats().free;
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &reservation(MEM_BASE + 0x100, 3)).unwrap();
        assert_eq!(op(&mut w, XENMEM_INCREASE_RESERVATION, MEM_BASE), 2, "stops at the maximum");
        assert_eq!(w.domain.nr_pages, 66);
        let got = list(&mut w, 2);
        for mfn in &got {
            assert_eq!(w.platform.frames.usage(*mfn), crate::mm::frame::FrameUse::Domain(1));
            assert_eq!(w.platform.m2p.get(mfn), Some(&u64::MAX), "no guest frame yet");
        }
        // Give both back.
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &reservation(MEM_BASE + 0x100, 2)).unwrap();
        assert_eq!(op(&mut w, XENMEM_DECREASE_RESERVATION, MEM_BASE), 2);
        assert_eq!((w.domain.nr_pages, w.platform.frames.stats().free), (64, free_before));
        // Populate names guest frames and learns machine frames.
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE + 0x100), &[700u64, 701]).unwrap();
        assert_eq!(op(&mut w, XENMEM_POPULATE_PHYSMAP, MEM_BASE), 2);
        let got = list(&mut w, 2);
        assert_eq!((w.platform.m2p.get(&got[0]), w.platform.m2p.get(&got[1])), (Some(&700), Some(&701)));
    }

    #[test]
    fn frames_in_use_or_not_owned_cannot_be_given_back() {
        let mut w = World::new(false);
        w.domain.nr_pages = 64;
        let dom = w.domain.id;
        use super::super::Platform;
        // A pinned table, a hypervisor frame, another domain's, not RAM.
        w.platform.page_types(&mut |pt| pt.pin(dom, 20, crate::mm::pagetype::Level::L1).unwrap());
        for mfn in [20u64, 3, 90, 1 << 40] {
            guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE + 0x100), &mfn).unwrap();
            guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &reservation(MEM_BASE + 0x100, 1)).unwrap();
            assert_eq!(op(&mut w, XENMEM_DECREASE_RESERVATION, MEM_BASE), 0, "frame {mfn:#x}");
        }
        assert_eq!(w.domain.nr_pages, 64);
        let mut r = reservation(MEM_BASE + 0x100, 1);
        r.extent_order = 9;
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &r).unwrap();
        assert_eq!(op(&mut w, XENMEM_INCREASE_RESERVATION, MEM_BASE), Errno::EINVAL.as_ret(), "order 0 only");
        r = XenMemoryReservation { domid: 9, ..reservation(MEM_BASE + 0x100, 1) };
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &r).unwrap();
        assert_eq!(op(&mut w, XENMEM_INCREASE_RESERVATION, MEM_BASE), Errno::ESRCH.as_ret(), "no domain 9");
        r.domid = 2;
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &r).unwrap();
        assert_eq!(op(&mut w, XENMEM_INCREASE_RESERVATION, MEM_BASE), Errno::EPERM.as_ret(), "domain 2, not ours");
    }

    /// The toolstack gives a domain it built its memory.
    #[test]
    fn a_privileged_caller_populates_another_domain() {
        let mut w = World::new(true);
        w.platform
            .create_domain(&crate::hypercall::control::NewDomain {
                id: Some(3),
                max_evtchn_port: 1023,
                handle: [0; 16],
            })
            .unwrap();
        w.platform.set_max_pages(3, 2).unwrap();
        let gpfns = [10u64, 11, 12];
        for (i, g) in gpfns.iter().enumerate() {
            guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE + 0x100 + 8 * i as u64), g).unwrap();
        }
        let r = XenMemoryReservation { domid: 3, ..reservation(MEM_BASE + 0x100, 3) };
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &r).unwrap();
        assert_eq!(op(&mut w, XENMEM_POPULATE_PHYSMAP, MEM_BASE), 2, "up to its maximum");
        assert_eq!(w.platform.domain_pages(3), Ok((2, 2)));
        let mfn: u64 = guest::read_obj(&mut w.mem, GuestPtr(MEM_BASE + 0x100)).unwrap();
        assert_eq!(w.platform.frames.usage(mfn), crate::mm::frame::FrameUse::Domain(3), "the frame is domain 3's");
        assert_eq!(w.platform.m2p.get(&mfn), Some(&10));
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &3u16).unwrap();
        assert_eq!(op(&mut w, XENMEM_CURRENT_RESERVATION, MEM_BASE), 2);
        let r = XenMemoryReservation { domid: 3, ..reservation(MEM_BASE + 0x100, 1) };
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &r).unwrap();
        assert_eq!(op(&mut w, XENMEM_DECREASE_RESERVATION, MEM_BASE), 1, "and takes one back");
        assert_eq!(w.platform.domain_pages(3), Ok((1, 2)));
        assert_eq!(w.platform.frames.usage(mfn), crate::mm::frame::FrameUse::Free);
        let r = XenMemoryReservation { domid: 40, ..reservation(MEM_BASE + 0x100, 1) };
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &r).unwrap();
        assert_eq!(op(&mut w, XENMEM_POPULATE_PHYSMAP, MEM_BASE), Errno::ESRCH.as_ret());
    }
}
