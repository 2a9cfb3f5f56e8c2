//! Trap and callback registration, kernel stack, segment bases, `iret`.

use super::{Action, Ctx};
use crate::domain::Callback;
use crate::guest::{self, GuestPtr};
use crate::layout::is_canonical;
use crate::regs::{rflags, GUEST_CS64, GUEST_SS};
use crate::trap;
use abi::arch::{IretContext, SegmentBase, TrapInfo, VGCF_IN_SYSCALL};
use abi::callback::*;
use abi::errno::Errno;

const fn ret(r: Result<u64, Errno>) -> Action {
    Action::Return(r)
}

/// Most entries `set_trap_table` reads before it must see the terminator.
const MAX_TRAP_ENTRIES: usize = 256;

/// `set_trap_table(list)`: installs handlers from a list of `trap_info`
/// ended by an entry with address 0; a null list clears the table. The
/// whole list is read and checked before anything changes.
pub(super) fn set_trap_table(ctx: &mut Ctx<'_>, [list, ..]: [u64; 5]) -> Action {
    let list = GuestPtr(list);
    if list.is_null() {
        ctx.domain.vcpu.trap_table = [TrapInfo::default(); 256];
        return ret(Ok(0));
    }
    let mut entries = [TrapInfo::default(); MAX_TRAP_ENTRIES];
    let mut n = 0;
    loop {
        let Ok(e) = guest::read_obj::<TrapInfo, _>(ctx.mem, list.add(16 * n as u64)) else {
            return ret(Err(Errno::EFAULT));
        };
        if e.address == 0 {
            break;
        }
        if !is_canonical(e.address) {
            return ret(Err(Errno::EINVAL));
        }
        if n == MAX_TRAP_ENTRIES {
            return ret(Err(Errno::E2BIG));
        }
        entries[n] = e;
        n += 1;
    }
    for e in &entries[..n] {
        // The guest kernel runs in ring 3: its code selector has RPL 3.
        let fixed = TrapInfo { cs: e.cs | 3, ..*e };
        ctx.domain.vcpu.trap_table[usize::from(e.vector)] = fixed;
    }
    ret(Ok(0))
}

/// `stack_switch(ss, sp)`: the stack for entering guest kernel mode.
pub(super) fn stack_switch(ctx: &mut Ctx<'_>, [ss, sp, ..]: [u64; 5]) -> Action {
    ctx.domain.vcpu.kernel_ss = ss | 3;
    ctx.domain.vcpu.kernel_sp = sp;
    ret(Ok(0))
}

fn callback(address: u64, flags: u16) -> Result<Callback, Errno> {
    if !is_canonical(address) {
        return Err(Errno::EINVAL);
    }
    Ok(Callback { address, mask_events: flags & CALLBACKF_MASK_EVENTS != 0 })
}

/// `set_callbacks(event, failsafe, syscall)`; the syscall entry masks
/// events, as in Xen.
pub(super) fn set_callbacks(ctx: &mut Ctx<'_>, [event, failsafe, syscall, ..]: [u64; 5]) -> Action {
    let (Ok(event), Ok(failsafe), Ok(syscall)) =
        (callback(event, 0), callback(failsafe, 0), callback(syscall, CALLBACKF_MASK_EVENTS))
    else {
        return ret(Err(Errno::EINVAL));
    };
    let v = &mut ctx.domain.vcpu;
    (v.event_callback, v.failsafe_callback, v.syscall_callback) = (event, failsafe, syscall);
    ret(Ok(0))
}

/// `callback_op(cmd, arg)`: register or unregister one callback.
pub(super) fn callback_op(ctx: &mut Ctx<'_>, [cmd, arg, ..]: [u64; 5]) -> Action {
    let arg = GuestPtr(arg);
    match u32::try_from(cmd) {
        Ok(CALLBACKOP_REGISTER) => {
            let Ok(reg) = guest::read_obj::<CallbackRegister, _>(ctx.mem, arg) else {
                return ret(Err(Errno::EFAULT));
            };
            let cb = match callback(reg.address, reg.flags) {
                Ok(cb) => cb,
                Err(e) => return ret(Err(e)),
            };
            let v = &mut ctx.domain.vcpu;
            let slot = match reg.type_ {
                CALLBACKTYPE_EVENT => &mut v.event_callback,
                CALLBACKTYPE_FAILSAFE => &mut v.failsafe_callback,
                CALLBACKTYPE_SYSCALL => &mut v.syscall_callback,
                CALLBACKTYPE_NMI => &mut v.nmi_callback,
                // 32-bit entry points: no 32-bit guest code runs here.
                CALLBACKTYPE_SYSCALL32 | CALLBACKTYPE_SYSENTER => return ret(Err(Errno::EOPNOTSUPP)),
                _ => return ret(Err(Errno::ENOSYS)),
            };
            *slot = cb;
            ret(Ok(0))
        }
        Ok(CALLBACKOP_UNREGISTER) => {
            let Ok(unreg) = guest::read_obj::<CallbackUnregister, _>(ctx.mem, arg) else {
                return ret(Err(Errno::EFAULT));
            };
            match unreg.type_ {
                // As in Xen, only the NMI callback can be unregistered.
                CALLBACKTYPE_NMI => {
                    ctx.domain.vcpu.nmi_callback = Callback::default();
                    ret(Ok(0))
                }
                CALLBACKTYPE_EVENT
                | CALLBACKTYPE_FAILSAFE
                | CALLBACKTYPE_SYSCALL
                | CALLBACKTYPE_SYSCALL32
                | CALLBACKTYPE_SYSENTER => ret(Err(Errno::EINVAL)),
                _ => ret(Err(Errno::ENOSYS)),
            }
        }
        _ => ret(Err(Errno::ENOSYS)),
    }
}

/// `set_segment_base(which, value)`.
pub(super) fn set_segment_base(ctx: &mut Ctx<'_>, [which, value, ..]: [u64; 5]) -> Action {
    let Ok(which) = u32::try_from(which).map_err(drop).and_then(|w| SegmentBase::try_from(w).map_err(drop)) else {
        return ret(Err(Errno::EINVAL));
    };
    let v = &mut ctx.domain.vcpu;
    match which {
        SegmentBase::GsUserSel => {
            // Only selectors that exist without a guest GDT: null, or the
            // flat ring-3 data segment. Loading one clears the base.
            if !matches!(value, 0 | 0xe02b) {
                return ret(Err(Errno::EINVAL));
            }
            v.gs_base_user = 0;
        }
        _ if !is_canonical(value) => return ret(Err(Errno::EINVAL)),
        SegmentBase::Fs => v.fs_base = value,
        SegmentBase::GsUser => v.gs_base_user = value,
        SegmentBase::GsKernel => v.gs_base_kernel = value,
    }
    ctx.platform.load_segment_base(which, value);
    ret(Ok(0))
}

/// `iret`: the guest's return from an exception or event handler. The
/// hypercall page's entry 23 pushes `rax, r11, rcx` over the guest's
/// `flags, rip, cs, rflags, rsp, ss`, so an `iret_context` lies at `rsp`.
///
/// A context the CPU would refuse to return to (a code or stack selector
/// other than the flat 64-bit ones, which are all there is without a
/// guest GDT, or a non-canonical `rip`) is, as in Xen, installed anyway
/// and handed to the guest's failsafe callback ([`trap::failsafe`]), as
/// if the hardware `iretq` had faulted; without a failsafe callback the
/// domain crashes. An unreadable context, a return to user mode without
/// user page tables, or a non-canonical `rsp` crash the domain.
pub(super) fn iret(ctx: &mut Ctx<'_>, _: [u64; 5]) -> Action {
    let Ok(c) = guest::read_obj::<IretContext, _>(ctx.mem, GuestPtr(ctx.regs.rsp)) else {
        return Action::Crash("iret: the iret context is not readable");
    };
    // Selectors are 16 bits; a bounce frame's CS carries the saved upcall
    // mask above them, which `iret` ignores. The guest's are always RPL 3.
    let (cs, ss) = ((c.cs & 0xffff) | 3, (c.ss & 0xffff) | 3);
    let to_user = c.cs & 3 == 3;
    if to_user && ctx.domain.vcpu.user_table.is_none() {
        return Action::Crash("iret to guest user mode with no user page tables");
    }
    if !is_canonical(c.rsp) {
        return Action::Crash("iret: non-canonical rsp");
    }
    let refused = if cs != GUEST_CS64 || ss != GUEST_SS {
        Some("iret: bad code or stack selector")
    } else if !is_canonical(c.rip) {
        Some("iret: non-canonical rip")
    } else {
        None
    };
    if let (Some(why), 0) = (refused, ctx.domain.vcpu.failsafe_callback.address) {
        return Action::Crash(why);
    }
    let r = &mut *ctx.regs;
    r.rax = c.rax;
    if c.flags & VGCF_IN_SYSCALL == 0 {
        r.r11 = c.r11;
        r.rcx = c.rcx;
    }
    r.rip = c.rip;
    r.cs = cs;
    r.rflags = (c.rflags & !(rflags::IOPL | rflags::VM)) | rflags::IF | rflags::FIXED;
    r.rsp = c.rsp;
    r.ss = ss;
    ctx.vinfo.evtchn_upcall_mask = u8::from(c.rflags & rflags::IF == 0);
    if let (true, Some(user_cr3)) = (to_user, ctx.domain.vcpu.user_cr3()) {
        ctx.platform.switch_guest_mode(user_cr3);
        ctx.domain.vcpu.kernel_mode = false;
    }
    if refused.is_some() {
        if let Err(crash) = trap::failsafe(ctx.regs, &mut ctx.domain.vcpu, ctx.vinfo, ctx.mem, ctx.platform) {
            return Action::Crash(crash.reason);
        }
    }
    Action::Resume
}

#[cfg(test)]
mod tests {
    use super::super::testing::{World, MEM_BASE};
    use super::*;
    use abi::hypercall as nr;

    fn trap(vector: u8, flags: u8, address: u64) -> TrapInfo {
        TrapInfo { vector, flags, cs: 0xe030, _pad0: 0, address }
    }

    #[test]
    fn trap_table_is_installed_until_the_terminator() {
        let mut w = World::new(false);
        let list = [trap(0, 0, 0xffff_ffff_8000_1000), trap(0x80, 3, 0xffff_ffff_8000_2000), trap(14, 4, 0)];
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &list).unwrap();
        w.call(nr::SET_TRAP_TABLE, &[MEM_BASE]);
        assert_eq!(w.ret(), 0);
        let t = &w.domain.vcpu.trap_table;
        assert_eq!((t[0].address, t[0].cs), (0xffff_ffff_8000_1000, 0xe033));
        assert_eq!((t[0x80].address, t[0x80].flags), (0xffff_ffff_8000_2000, 3));
        assert_eq!(t[14].address, 0);
        w.call(nr::SET_TRAP_TABLE, &[0]);
        assert_eq!(w.domain.vcpu.trap_table[0].address, 0, "null list clears");
    }

    #[test]
    fn a_bad_trap_table_changes_nothing() {
        let mut w = World::new(false);
        let list = [trap(0, 0, 0xffff_ffff_8000_1000), trap(1, 0, 0x8000_0000_0000_0000), trap(2, 0, 0)];
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &list).unwrap();
        w.call(nr::SET_TRAP_TABLE, &[MEM_BASE]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret());
        assert_eq!(w.domain.vcpu.trap_table[0].address, 0);
        // No terminator before the end of mapped memory.
        for i in 0..256u64 {
            guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE + 0xf000 + 16 * i), &trap(5, 0, 0x1000)).ok();
        }
        w.call(nr::SET_TRAP_TABLE, &[MEM_BASE + 0xf000]);
        assert_eq!(w.ret(), Errno::EFAULT.as_ret());
        // More entries than vectors.
        for i in 0..257u64 {
            guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE + 16 * i), &trap(5, 0, 0x1000)).unwrap();
        }
        w.call(nr::SET_TRAP_TABLE, &[MEM_BASE]);
        assert_eq!(w.ret(), Errno::E2BIG.as_ret());
        assert_eq!(w.domain.vcpu.trap_table[5].address, 0);
    }

    #[test]
    fn callbacks_register_and_validate() {
        let mut w = World::new(false);
        w.call(nr::SET_CALLBACKS, &[0x1000, 0x2000, 0x3000]);
        assert_eq!(w.ret(), 0);
        let v = &w.domain.vcpu;
        assert_eq!(
            (v.event_callback.address, v.failsafe_callback.address, v.syscall_callback.address),
            (0x1000, 0x2000, 0x3000)
        );
        assert!(v.syscall_callback.mask_events);
        w.call(nr::SET_CALLBACKS, &[0x1000, 0x8000_0000_0000_0000, 0x3000]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret());

        let reg =
            CallbackRegister { type_: CALLBACKTYPE_EVENT, flags: CALLBACKF_MASK_EVENTS, _pad0: 0, address: 0x4000 };
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &reg).unwrap();
        w.call(nr::CALLBACK_OP, &[CALLBACKOP_REGISTER.into(), MEM_BASE]);
        assert_eq!(w.ret(), 0);
        assert_eq!(w.domain.vcpu.event_callback, Callback { address: 0x4000, mask_events: true });
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &CallbackRegister { type_: 99, ..reg }).unwrap();
        w.call(nr::CALLBACK_OP, &[CALLBACKOP_REGISTER.into(), MEM_BASE]);
        assert_eq!(w.ret(), Errno::ENOSYS.as_ret());
        w.call(nr::CALLBACK_OP, &[CALLBACKOP_REGISTER.into(), 0xffff_8000_0000_0000]);
        assert_eq!(w.ret(), Errno::EFAULT.as_ret());
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &CallbackUnregister { type_: CALLBACKTYPE_EVENT, _unused: 0 })
            .unwrap();
        w.call(nr::CALLBACK_OP, &[CALLBACKOP_UNREGISTER.into(), MEM_BASE]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret());
    }

    #[test]
    fn segment_bases_are_checked_then_loaded() {
        let mut w = World::new(false);
        w.call(nr::SET_SEGMENT_BASE, &[0, 0x7000_0000]);
        assert_eq!(w.ret(), 0);
        w.call(nr::SET_SEGMENT_BASE, &[2, 0xffff_8000_0000_0000 - 1]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret(), "non-canonical");
        w.call(nr::SET_SEGMENT_BASE, &[3, 0x1234]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret(), "selector with no descriptor");
        w.call(nr::SET_SEGMENT_BASE, &[9, 0]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret());
        assert_eq!(w.platform.segment_loads, [(SegmentBase::Fs, 0x7000_0000)]);
        assert_eq!(w.domain.vcpu.fs_base, 0x7000_0000);
    }

    /// Puts `c` where the hypercall page's `iret` leaves it (at `rsp`) and
    /// calls `iret`.
    fn call_iret(w: &mut World, c: &IretContext) -> Action {
        guest::write_obj(&mut w.mem, GuestPtr(w.regs.rsp), c).unwrap();
        w.call(nr::IRET, &[])
    }

    #[test]
    fn iret_restores_the_context() {
        let mut w = World::new(false);
        let c = IretContext {
            rax: 7,
            r11: 0x11,
            rcx: 0xcc,
            flags: 0,
            rip: 0xffff_ffff_8000_5000,
            cs: 0xe030 | (1 << 32), // as a bounce frame saves it
            rflags: rflags::IOPL | rflags::TF,
            rsp: MEM_BASE + 0x4000,
            ss: 0xe02b,
        };
        assert_eq!(call_iret(&mut w, &c), Action::Resume);
        let r = w.regs;
        assert_eq!((r.rax, r.r11, r.rcx, r.rip, r.rsp), (7, 0x11, 0xcc, 0xffff_ffff_8000_5000, MEM_BASE + 0x4000));
        assert_eq!((r.cs, r.ss), (0xe033, 0xe02b));
        assert_eq!(r.rflags, rflags::IF | rflags::FIXED | rflags::TF, "IOPL dropped, IF forced");
        assert_eq!(w.vinfo.evtchn_upcall_mask, 1, "the context's IF was clear");
    }

    #[test]
    fn bad_iret_contexts_crash_the_domain() {
        let good = IretContext { rip: 0x1000, cs: 0xe030, rsp: 0x2000, ss: 0xe02b, ..IretContext::default() };
        for (c, why) in [
            (IretContext { rip: 0x8000_0000_0000_0000, ..good }, "non-canonical rip"),
            (IretContext { rsp: 0x8000_0000_0000_0000, ..good }, "non-canonical rsp"),
            (IretContext { cs: 0xe008, ..good }, "selector"),
            (IretContext { ss: 0xe010, ..good }, "selector"),
            (IretContext { cs: 0xe030 | 0x100, ..good }, "selector"),
            (IretContext { cs: 0xe033, ..good }, "no user page tables"),
        ] {
            let mut w = World::new(false);
            let a = call_iret(&mut w, &c);
            assert!(matches!(a, Action::Crash(m) if m.contains(why)), "{c:?}: {a:?}");
        }
        let mut w = World::new(false);
        w.regs.rsp = 0xffff_8000_0000_0000;
        assert!(matches!(w.call(nr::IRET, &[]), Action::Crash(_)));
    }

    const FAILSAFE_CB: u64 = 0xffff_ffff_8000_f000;

    fn stack_words(w: &mut World, n: usize) -> Vec<u64> {
        (0..n).map(|i| guest::read_obj::<u64, _>(&mut w.mem, GuestPtr(w.regs.rsp + 8 * i as u64)).unwrap()).collect()
    }

    #[test]
    fn a_refused_iret_enters_the_failsafe_callback() {
        let mut w = World::new(false);
        w.domain.vcpu.failsafe_callback = Callback { address: FAILSAFE_CB, mask_events: false };
        let c = IretContext {
            rax: 7,
            r11: 0x11,
            rcx: 0xcc,
            flags: 0,
            rip: 0xffff_ffff_8000_5000,
            cs: 0xe010 | (1 << 32),
            rflags: rflags::IF,
            rsp: MEM_BASE + 0x4008,
            ss: 0xe02b,
        };
        w.vinfo.evtchn_upcall_mask = 1;
        assert_eq!(call_iret(&mut w, &c), Action::Resume);
        let r = w.regs;
        assert_eq!((r.rip, r.cs, r.ss, r.rax), (FAILSAFE_CB, GUEST_CS64, GUEST_SS, 7));
        assert_eq!(r.rsp, MEM_BASE + 0x4000 - 88, "on the stack iret would have returned to");
        assert_eq!(w.vinfo.evtchn_upcall_mask, 0, "restored from the context; not masked by this callback");
        let s = super::super::testing::SELECTORS;
        assert_eq!(
            stack_words(&mut w, 11),
            [
                0xcc,
                0x11,
                s.ds.into(),
                s.es.into(),
                s.fs.into(),
                s.gs.into(),
                0xffff_ffff_8000_5000,
                0xe010, // the refused selector, RPL cleared: kernel mode; mask 0
                rflags::IF | rflags::FIXED,
                MEM_BASE + 0x4008,
                0xe02b
            ]
        );
    }

    #[test]
    fn a_refused_iret_to_user_mode_fails_safe_on_the_kernel_stack() {
        let mut w = World::new(false);
        w.domain.vcpu.user_table = Some(0x777);
        w.domain.vcpu.kernel_table = Some(0x555);
        w.domain.vcpu.kernel_sp = MEM_BASE + 0x6000;
        w.domain.vcpu.failsafe_callback = Callback { address: FAILSAFE_CB, mask_events: true };
        let c = IretContext {
            rip: 0x8000_0000_0000_0000,
            cs: 0xe033,
            rsp: 0x7000_0000,
            ss: 0xe02b,
            ..IretContext::default()
        };
        assert_eq!(call_iret(&mut w, &c), Action::Resume);
        assert!(w.domain.vcpu.kernel_mode);
        assert_eq!(w.platform.mode_switches, [0x77_7000, 0x55_5000], "into user mode, and back for the callback");
        assert_eq!((w.regs.rip, w.regs.rsp), (FAILSAFE_CB, MEM_BASE + 0x6000 - 88));
        assert_eq!(w.vinfo.evtchn_upcall_mask, 1, "registered with mask_events");
        let f = stack_words(&mut w, 11);
        assert_eq!((f[6], f[7], f[8] & rflags::IF, f[9]), (0x8000_0000_0000_0000, 0xe033 | (1 << 32), 0, 0x7000_0000));
    }

    #[test]
    fn a_failsafe_onto_a_bad_stack_crashes() {
        let mut w = World::new(false);
        w.domain.vcpu.failsafe_callback = Callback { address: FAILSAFE_CB, mask_events: false };
        let c =
            IretContext { rip: 0x1000, cs: 0xe008, rsp: 0xffff_8800_0000_0000, ss: 0xe02b, ..IretContext::default() };
        assert_eq!(call_iret(&mut w, &c), Action::Crash("guest kernel stack is not writable"));
    }

    #[test]
    fn iret_to_user_mode_switches_page_tables() {
        let mut w = World::new(false);
        w.domain.vcpu.user_table = Some(0x777);
        let c = IretContext { rip: 0x40_0000, cs: 0xe033, rsp: 0x7000_0000, ss: 0xe02b, ..IretContext::default() };
        assert_eq!(call_iret(&mut w, &c), Action::Resume);
        assert!(!w.domain.vcpu.kernel_mode);
        assert_eq!(w.platform.mode_switches, [0x77_7000]);
        assert_eq!((w.regs.rip, w.regs.cs, w.regs.rsp), (0x40_0000, 0xe033, 0x7000_0000));
    }
}
