//! `vcpu_op`: per-vCPU timers and state, and moving the `vcpu_info`.
//!
//! Each domain has one vCPU, so every vCPU id but 0 is `-ENOENT` (checked
//! first, as in Xen). The semantics are Xen 4.17's (`common/domain.c`
//! `do_vcpu_op`, `map_vcpu_info`; `arch/x86/domain.c` `arch_do_vcpu_op`)
//! for a PV guest, with these commands answered as follows:
//!
//! - `initialise`: the vCPU is initialised already: `-EEXIST` (after
//!   `-EFAULT` if the context is unreadable), as in Xen.
//! - `up` returns 0 (it is up); `is_up` returns 1; `down` on the only vCPU
//!   shuts the domain down (poweroff, or the recorded shutdown code), as
//!   Xen does for the last vCPU going down.
//! - `stop_periodic_timer` returns 0: no periodic timer ever runs here
//!   (Xen's default for a PV vCPU is a 10 ms tick, which Linux stops first
//!   thing; one that never started is already stopped).
//! - `get_physid`: `-EINVAL`, Xen's answer for a vCPU not pinned by a
//!   hardware domain (none is here).
//! - Not provided, `-ENOSYS` (as from a Xen without them):
//!   `get_runstate_info`, `register_runstate_memory_area`,
//!   `set_periodic_timer`, `send_nmi`, `register_vcpu_time_memory_area`,
//!   and unknown commands.

use super::sched::arm_timer;
use super::{Action, Ctx};
use crate::guest::{self, GuestPtr, Pod};
use crate::mm::pagetype::PageType;
use crate::mm::Mfn;
use abi::arch::VcpuGuestContext;
use abi::errno::Errno;
use abi::sched::*;
use abi::shared_info::VcpuInfo;

// SAFETY: for this and the next: abi structs, repr(C) and made only of
// integers with explicit padding (abi's layout assertions check it), so
// every bit pattern is valid and no byte is padding.
unsafe impl Pod for VcpuSetSingleshotTimer {}
// SAFETY: as above.
unsafe impl Pod for VcpuRegisterVcpuInfo {}

/// Bytes in a page.
const PAGE_SIZE: u64 = 4096;

/// `vcpu_op(cmd, vcpuid, arg)`.
pub(super) fn vcpu_op(ctx: &mut Ctx<'_>, [cmd, vcpuid, arg, ..]: [u64; 5]) -> Action {
    if vcpuid != 0 {
        return Action::Return(Err(Errno::ENOENT));
    }
    let Ok(cmd) = u32::try_from(cmd) else { return Action::Return(Err(Errno::ENOSYS)) };
    let arg = GuestPtr(arg);
    let result = match cmd {
        VCPUOP_INITIALISE => initialise(ctx, arg),
        VCPUOP_UP => Ok(0),
        VCPUOP_DOWN => return Action::Shutdown(ctx.domain.shutdown_code.unwrap_or(ShutdownReason::Poweroff)),
        VCPUOP_IS_UP => Ok(1),
        VCPUOP_STOP_PERIODIC_TIMER => Ok(0),
        VCPUOP_SET_SINGLESHOT_TIMER => set_singleshot_timer(ctx, arg),
        VCPUOP_STOP_SINGLESHOT_TIMER => {
            arm_timer(ctx, None);
            Ok(0)
        }
        VCPUOP_REGISTER_VCPU_INFO => register_vcpu_info(ctx, arg),
        VCPUOP_GET_PHYSID => Err(Errno::EINVAL),
        _ => Err(Errno::ENOSYS),
    };
    Action::Return(result)
}

/// `VCPUOP_initialise` on a vCPU that runs: Xen copies the context in,
/// then refuses it.
fn initialise(ctx: &mut Ctx<'_>, arg: GuestPtr) -> Result<u64, Errno> {
    const CHUNK: usize = 256;
    let size = core::mem::size_of::<VcpuGuestContext>() as u64;
    let mut buf = [0u8; CHUNK];
    let mut done = 0;
    while done < size {
        let n = (size - done).min(CHUNK as u64) as usize;
        guest::read(ctx.mem, arg.add(done), &mut buf[..n]).map_err(|_| Errno::EFAULT)?;
        done += n as u64;
    }
    Err(Errno::EEXIST)
}

/// `VCPUOP_set_singleshot_timer`: arms the single-shot timer (shared with
/// `set_timer_op`) for `timeout_abs_ns`. `VCPU_SSHOTTMR_future` is
/// ignored, as in Xen 4.17.x (commit 19c6cbd90965 stopped refusing past
/// deadlines with `-ETIME`: guests relying on it hung). Unlike
/// `set_timer_op`, any deadline is taken as it is: one in the past, or
/// negative as Xen's signed time, fires at once.
fn set_singleshot_timer(ctx: &mut Ctx<'_>, arg: GuestPtr) -> Result<u64, Errno> {
    let t: VcpuSetSingleshotTimer = guest::read_obj(ctx.mem, arg).map_err(|_| Errno::EFAULT)?;
    let now = ctx.platform.now();
    let deadline = if i64::try_from(t.timeout_abs_ns).is_ok() { t.timeout_abs_ns } else { now };
    arm_timer(ctx, Some(deadline));
    Ok(0)
}

/// `VCPUOP_register_vcpu_info` (Xen's `map_vcpu_info`): moves the vCPU's
/// `vcpu_info` to byte `offset` of frame `mfn`.
///
/// Errors, in Xen 4.17's order: `-EFAULT` for an unreadable argument;
/// `-ENXIO` if the offset is not 8-byte aligned or the `vcpu_info` would
/// not fit in the page; `-EINVAL` if it was moved already, or if the frame is not the domain's or cannot be
/// writable (a page table, a descriptor table). On success the frame
/// holds a general and a writable-type reference for as long as the
/// `vcpu_info` lives there, and the new copy has every selector bit and
/// `evtchn_upcall_pending` set, so that no event is lost in the move
/// (the guest sees a spurious upcall at worst).
fn register_vcpu_info(ctx: &mut Ctx<'_>, arg: GuestPtr) -> Result<u64, Errno> {
    let r: VcpuRegisterVcpuInfo = guest::read_obj(ctx.mem, arg).map_err(|_| Errno::EFAULT)?;
    if u64::from(r.offset) > PAGE_SIZE - core::mem::size_of::<VcpuInfo>() as u64 || !r.offset.is_multiple_of(8) {
        return Err(Errno::ENXIO);
    }
    if ctx.domain.vcpu.vcpu_info_at.is_some() {
        return Err(Errno::EINVAL);
    }
    let mfn: Mfn = r.mfn;
    let dom = ctx.domain.id;
    // Stays so only if the platform did not run the closure.
    let mut taken = Err(Errno::EINVAL);
    // A general reference, then a writable-type one; both or neither.
    ctx.platform.page_types(&mut |pt| {
        taken = pt.get_page_and_type(dom, mfn, PageType::Writable).map_err(|_| Errno::EINVAL);
    });
    taken?;
    let mut info = *ctx.vinfo;
    info.evtchn_pending_sel = !0;
    info.evtchn_upcall_pending |= 1;
    ctx.platform.place_vcpu_info(mfn, r.offset, &info);
    ctx.domain.vcpu.vcpu_info_at = Some((mfn, r.offset));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{World, MEM_BASE, OTHER_FRAMES};
    use super::super::Platform;
    use super::*;
    use abi::hypercall::VCPU_OP;

    const ARG: u64 = MEM_BASE + 0x100;

    fn call<T: Pod>(w: &mut World, cmd: u32, arg: &T) -> Action {
        guest::write_obj(&mut w.mem, GuestPtr(ARG), arg).unwrap();
        w.call(VCPU_OP, &[cmd.into(), 0, ARG])
    }

    #[test]
    fn only_vcpu_0_exists() {
        let mut w = World::new(false);
        for cmd in [VCPUOP_IS_UP, VCPUOP_UP, VCPUOP_DOWN, 99] {
            for vcpu in [1, 31, 1 << 32] {
                assert_eq!(w.call(VCPU_OP, &[cmd.into(), vcpu, ARG]), Action::Return(Err(Errno::ENOENT)));
            }
        }
        assert_eq!(w.call(VCPU_OP, &[VCPUOP_IS_UP.into(), 0, 0]), Action::Return(Ok(1)));
        assert_eq!(w.call(VCPU_OP, &[VCPUOP_UP.into(), 0, 0]), Action::Return(Ok(0)));
    }

    #[test]
    fn state_commands() {
        let mut w = World::new(false);
        assert_eq!(w.call(VCPU_OP, &[VCPUOP_INITIALISE.into(), 0, MEM_BASE]), Action::Return(Err(Errno::EEXIST)));
        assert_eq!(
            w.call(VCPU_OP, &[VCPUOP_INITIALISE.into(), 0, MEM_BASE + 0x1_0000 - 5000]),
            Action::Return(Err(Errno::EFAULT)),
            "the whole context is read"
        );
        assert_eq!(w.call(VCPU_OP, &[VCPUOP_STOP_PERIODIC_TIMER.into(), 0, 0]), Action::Return(Ok(0)));
        assert_eq!(w.call(VCPU_OP, &[VCPUOP_GET_PHYSID.into(), 0, ARG]), Action::Return(Err(Errno::EINVAL)));
        for cmd in [
            VCPUOP_GET_RUNSTATE_INFO,
            VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA,
            VCPUOP_SET_PERIODIC_TIMER,
            VCPUOP_SEND_NMI,
            VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA,
            14,
            u32::MAX,
        ] {
            assert_eq!(w.call(VCPU_OP, &[cmd.into(), 0, ARG]), Action::Return(Err(Errno::ENOSYS)), "cmd {cmd}");
        }
        assert_eq!(w.call(VCPU_OP, &[1 << 32, 0, ARG]), Action::Return(Err(Errno::ENOSYS)));
        assert!(w.platform.timers.is_empty());
    }

    #[test]
    fn down_on_the_last_vcpu_shuts_the_domain_down() {
        let mut w = World::new(false);
        assert_eq!(w.call(VCPU_OP, &[VCPUOP_DOWN.into(), 0, 0]), Action::Shutdown(ShutdownReason::Poweroff));
        w.domain.shutdown_code = Some(ShutdownReason::Reboot);
        assert_eq!(w.call(VCPU_OP, &[VCPUOP_DOWN.into(), 0, 0]), Action::Shutdown(ShutdownReason::Reboot));
    }

    fn sshot(timeout_abs_ns: u64, flags: u32) -> VcpuSetSingleshotTimer {
        VcpuSetSingleshotTimer { timeout_abs_ns, flags, _pad0: 0 }
    }

    #[test]
    fn singleshot_timer() {
        let mut w = World::new(false);
        let now = w.platform.now;
        assert_eq!(
            call(&mut w, VCPUOP_SET_SINGLESHOT_TIMER, &sshot(now + 10, VCPU_SSHOTTMR_FUTURE)),
            Action::Return(Ok(0))
        );
        assert_eq!(w.domain.vcpu.timer, Some(now + 10));
        assert_eq!(
            call(&mut w, VCPUOP_SET_SINGLESHOT_TIMER, &sshot(now - 1, VCPU_SSHOTTMR_FUTURE)),
            Action::Return(Ok(0)),
            "the flag is ignored, as in Xen 4.17.x: a past deadline fires at once"
        );
        assert_eq!(w.domain.vcpu.timer, Some(now - 1));
        assert_eq!(call(&mut w, VCPUOP_SET_SINGLESHOT_TIMER, &sshot(now, VCPU_SSHOTTMR_FUTURE)), Action::Return(Ok(0)));
        assert_eq!(call(&mut w, VCPUOP_SET_SINGLESHOT_TIMER, &sshot(5, 0)), Action::Return(Ok(0)));
        assert_eq!(w.domain.vcpu.timer, Some(5), "in the past without the flag: fires at once");
        assert_eq!(
            call(&mut w, VCPUOP_SET_SINGLESHOT_TIMER, &sshot(u64::MAX, VCPU_SSHOTTMR_FUTURE)),
            Action::Return(Ok(0))
        );
        assert_eq!(w.domain.vcpu.timer, Some(now), "negative as Xen's time: at once");
        assert_eq!(w.call(VCPU_OP, &[VCPUOP_STOP_SINGLESHOT_TIMER.into(), 0, 0]), Action::Return(Ok(0)));
        assert_eq!(w.domain.vcpu.timer, None);
        assert_eq!(w.platform.timers, [Some(now + 10), Some(now - 1), Some(now), Some(5), Some(now), None]);
        assert_eq!(w.call(VCPU_OP, &[VCPUOP_SET_SINGLESHOT_TIMER.into(), 0, 0]), Action::Return(Err(Errno::EFAULT)));
        assert_eq!(w.platform.timers.len(), 6);
    }

    fn register(w: &mut World, mfn: u64, offset: u32) -> Action {
        call(w, VCPUOP_REGISTER_VCPU_INFO, &VcpuRegisterVcpuInfo { mfn, offset, rsvd: 0 })
    }

    fn types(w: &World, mfn: Mfn) -> (u32, u32, PageType) {
        let t = w.platform.frames.types(mfn);
        (t.refs(), t.type_count(), t.page_type())
    }

    #[test]
    fn register_vcpu_info_moves_it_with_everything_pending() {
        let mut w = World::new(false);
        w.vinfo.evtchn_upcall_mask = 1;
        w.vinfo.evtchn_pending_sel = 4;
        w.vinfo.arch.cr2 = 0xabc;
        assert_eq!(register(&mut w, 20, 4096 - 64), Action::Return(Ok(0)));
        assert_eq!(w.domain.vcpu.vcpu_info_at, Some((20, 4032)));
        assert_eq!(types(&w, 20), (1, 1, PageType::Writable));
        let [(mfn, offset, info)] = w.platform.placed[..] else { panic!("placed {:?}", w.platform.placed) };
        assert_eq!((mfn, offset), (20, 4032));
        assert_eq!(
            info,
            VcpuInfo { evtchn_upcall_pending: 1, evtchn_pending_sel: !0, ..w.vinfo },
            "a copy of the current one, with everything marked pending"
        );
        assert_eq!(info.evtchn_upcall_mask, 1, "the mask is kept");
        assert_eq!(register(&mut w, 21, 0), Action::Return(Err(Errno::EINVAL)), "only once");
        assert_eq!(types(&w, 21), (0, 0, PageType::None));
    }

    #[test]
    fn register_vcpu_info_refusals_change_nothing() {
        let mut w = World::new(false);
        assert_eq!(register(&mut w, 20, 4096 - 56), Action::Return(Err(Errno::ENXIO)), "does not fit");
        assert_eq!(register(&mut w, 20, 4), Action::Return(Err(Errno::ENXIO)), "misaligned");
        assert_eq!(register(&mut w, 20, u32::MAX), Action::Return(Err(Errno::ENXIO)));
        assert_eq!(register(&mut w, OTHER_FRAMES.start, 0), Action::Return(Err(Errno::EINVAL)), "another domain's");
        assert_eq!(register(&mut w, 3, 0), Action::Return(Err(Errno::EINVAL)), "the hypervisor's");
        assert_eq!(register(&mut w, 1 << 40, 0), Action::Return(Err(Errno::EINVAL)), "no such frame");
        let dom = w.domain.id;
        w.platform.page_types(&mut |pt| pt.pin(dom, 22, crate::mm::pagetype::Level::L1).unwrap());
        assert_eq!(register(&mut w, 22, 0), Action::Return(Err(Errno::EINVAL)), "a page table");
        assert_eq!(types(&w, 22), (1, 1, PageType::L1), "only the pin's references");
        assert_eq!(w.call(VCPU_OP, &[VCPUOP_REGISTER_VCPU_INFO.into(), 0, 0]), Action::Return(Err(Errno::EFAULT)));
        assert!(w.platform.placed.is_empty());
        assert_eq!(w.domain.vcpu.vcpu_info_at, None);
        assert_eq!(register(&mut w, 23, 0), Action::Return(Ok(0)), "a good frame still works");
    }
}
