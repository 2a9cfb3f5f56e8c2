//! `memory_op` (the queries, until reservations can be changed safely)
//! and `vm_assist`.

use super::{Action, Ctx};
use crate::guest::{self, GuestPtr};
use crate::layout::PAGE_SIZE;
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
        c if c == u64::from(XENMEM_CURRENT_RESERVATION) => reservation(ctx, arg, |d| d.nr_pages),
        c if c == u64::from(XENMEM_MAXIMUM_RESERVATION) => reservation(ctx, arg, |d| d.max_pages),
        c if c == u64::from(XENMEM_MACHPHYS_MFN_LIST) => machphys_mfn_list(ctx, arg),
        c if c == u64::from(XENMEM_MEMORY_MAP) => memory_map(ctx, arg),
        _ => Err(Errno::ENOSYS),
    })
}

/// `current_reservation` / `maximum_reservation`: the argument names a
/// domain; only the caller itself for now (other domains arrive with the
/// toolstack).
fn reservation(ctx: &mut Ctx<'_>, arg: GuestPtr, value: fn(&crate::domain::Domain) -> u64) -> Result<u64, Errno> {
    let domid: u16 = guest::read_obj(ctx.mem, arg).map_err(|_| Errno::EFAULT)?;
    if domid != DOMID_SELF && domid != ctx.domain.id {
        return Err(Errno::ESRCH);
    }
    Ok(value(ctx.domain))
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
    entry[8..16].copy_from_slice(&(ctx.domain.max_pages * PAGE_SIZE).to_le_bytes());
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
        assert_eq!(op(&mut w, XENMEM_POPULATE_PHYSMAP, MEM_BASE), Errno::ENOSYS.as_ret());
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
}
