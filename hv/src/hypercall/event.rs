//! `event_channel_op`: the guest's interface to [`crate::event`].
//!
//! Each command copies its argument struct in (`-EFAULT` if it cannot),
//! runs the matching [`crate::event`] operation over every domain's event
//! state (`Platform::with_domains`), passes any port it raised to
//! `Platform::notify`, and copies the struct back out for the commands
//! with OUT fields. As in Xen, a copy-out that fails after the operation
//! succeeded returns `-EFAULT` without undoing it.
//!
//! Unsupported commands, as Xen answers them for a domain without the
//! feature:
//! - `bind_pirq`: no domain here may use a physical IRQ: `-EPERM` (Xen's
//!   answer to a PV domain binding a PIRQ it has no access to), after the
//!   argument is copied in (`-EFAULT` first, as in Xen).
//! - `init_control`, `expand_array`, `set_priority` (the FIFO ABI): `-ENOSYS`,
//!   as from a Xen built without FIFO events. Linux takes any error from
//!   `init_control` as "no FIFO ABI" and uses the 2-level ABI.
//! - anything else: `-ENOSYS`.

use super::{Action, Ctx};
use crate::event::{self, Domains, Signal};
use crate::guest::{self, GuestPtr, Pod};
use crate::mm::frame::DomId;
use abi::errno::Errno;
use abi::event_channel::*;

// SAFETY: for this and all below: abi structs, repr(C) and made only of
// integers with explicit padding (abi's layout assertions check sizes and
// offsets), so every bit pattern is valid and no byte is padding.
unsafe impl Pod for EvtchnAllocUnbound {}
// SAFETY: as above.
unsafe impl Pod for EvtchnBindInterdomain {}
// SAFETY: as above.
unsafe impl Pod for EvtchnBindVirq {}
// SAFETY: as above.
unsafe impl Pod for EvtchnBindPirq {}
// SAFETY: as above.
unsafe impl Pod for EvtchnBindIpi {}
// SAFETY: as above.
unsafe impl Pod for EvtchnClose {}
// SAFETY: as above.
unsafe impl Pod for EvtchnSend {}
// SAFETY: as above.
unsafe impl Pod for EvtchnStatus {}
// SAFETY: as above.
unsafe impl Pod for EvtchnBindVcpu {}
// SAFETY: as above.
unsafe impl Pod for EvtchnUnmask {}
// SAFETY: as above.
unsafe impl Pod for EvtchnReset {}

/// `event_channel_op(cmd, arg)`.
pub(super) fn event_channel_op(ctx: &mut Ctx<'_>, [cmd, arg, ..]: [u64; 5]) -> Action {
    let Ok(cmd) = u32::try_from(cmd) else { return Action::Return(Err(Errno::ENOSYS)) };
    let arg = GuestPtr(arg);
    let result = match cmd {
        EVTCHNOP_ALLOC_UNBOUND => run(ctx, arg, Out::Copy, |d, caller, a: &mut EvtchnAllocUnbound| {
            a.port = event::alloc_unbound(d, caller, a.dom, a.remote_dom)?.get();
            Ok(None)
        }),
        EVTCHNOP_BIND_INTERDOMAIN => run(ctx, arg, Out::Copy, |d, caller, a: &mut EvtchnBindInterdomain| {
            let (port, signal) = event::bind_interdomain(d, caller, a.remote_dom, a.remote_port)?;
            a.local_port = port.get();
            Ok(signal)
        }),
        EVTCHNOP_BIND_VIRQ => run(ctx, arg, Out::Copy, |d, caller, a: &mut EvtchnBindVirq| {
            a.port = event::bind_virq(d, caller, a.virq, a.vcpu)?.get();
            Ok(None)
        }),
        EVTCHNOP_BIND_IPI => run(ctx, arg, Out::Copy, |d, caller, a: &mut EvtchnBindIpi| {
            a.port = event::bind_ipi(d, caller, a.vcpu)?.get();
            Ok(None)
        }),
        EVTCHNOP_BIND_PIRQ => run(ctx, arg, Out::Skip, |_, _, _: &mut EvtchnBindPirq| Err(Errno::EPERM)),
        EVTCHNOP_CLOSE => {
            run(ctx, arg, Out::Skip, |d, caller, a: &mut EvtchnClose| event::close(d, caller, a.port).map(|()| None))
        }
        EVTCHNOP_SEND => run(ctx, arg, Out::Skip, |d, caller, a: &mut EvtchnSend| event::send(d, caller, a.port)),
        EVTCHNOP_STATUS => run(ctx, arg, Out::Copy, |d, caller, a: &mut EvtchnStatus| {
            event::status(d, caller, a.dom, a.port)?.write_to(a);
            Ok(None)
        }),
        EVTCHNOP_BIND_VCPU => run(ctx, arg, Out::Skip, |d, caller, a: &mut EvtchnBindVcpu| {
            event::bind_vcpu(d, caller, a.port, a.vcpu).map(|()| None)
        }),
        EVTCHNOP_UNMASK => run(ctx, arg, Out::Skip, |d, caller, a: &mut EvtchnUnmask| event::unmask(d, caller, a.port)),
        EVTCHNOP_RESET => {
            run(ctx, arg, Out::Skip, |d, caller, a: &mut EvtchnReset| event::reset(d, caller, a.dom).map(|()| None))
        }
        // The FIFO ABI, and commands Xen does not have.
        _ => Err(Errno::ENOSYS),
    };
    Action::Return(result)
}

/// Whether a command writes its struct back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Out {
    /// It has OUT fields: copy it back after success.
    Copy,
    /// IN fields only: leave the guest's copy alone.
    Skip,
}

/// Copies a `T` in from `arg`, runs `op` on it over every domain's event
/// state for the calling domain, notifies the port it raised, and copies
/// `T` back out if `out` says so.
fn run<T: Pod>(
    ctx: &mut Ctx<'_>,
    arg: GuestPtr,
    out: Out,
    mut op: impl FnMut(&mut dyn Domains, DomId, &mut T) -> Result<Option<Signal>, Errno>,
) -> Result<u64, Errno> {
    let mut a: T = guest::read_obj(ctx.mem, arg).map_err(|_| Errno::EFAULT)?;
    let caller = ctx.domain.id;
    // Stays so only if the platform did not run `op`: it knows no domains.
    let mut result = Err(Errno::ESRCH);
    ctx.platform.with_domains(ctx.vinfo, &mut |d| result = op(d, caller, &mut a));
    if let Some(signal) = result? {
        ctx.platform.notify(signal);
    }
    if out == Out::Copy && guest::write_obj(ctx.mem, arg, &a).is_err() {
        // As in Xen: the operation stands.
        return Err(Errno::EFAULT);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{World, MEM_BASE};
    use super::super::Platform;
    use super::*;
    use crate::event::two_level;
    use abi::hypercall::EVENT_CHANNEL_OP;
    use abi::mm::DOMID_SELF;
    use abi::sched::{VIRQ_DEBUG, VIRQ_TIMER};

    const ARG: u64 = MEM_BASE + 0x100;

    /// Makes `cmd` with `arg` at [`ARG`]; returns the result and the struct
    /// as the guest sees it afterwards.
    fn op<T: Pod>(w: &mut World, cmd: u32, arg: T) -> (i64, T) {
        guest::write_obj(&mut w.mem, GuestPtr(ARG), &arg).unwrap();
        w.call(EVENT_CHANNEL_OP, &[cmd.into(), ARG]);
        (w.ret(), guest::read_obj(&mut w.mem, GuestPtr(ARG)).unwrap())
    }

    fn port(n: u32) -> event::Port {
        event::Port::new(n).unwrap()
    }

    #[test]
    fn bind_virq_and_ipi_return_their_ports() {
        let mut w = World::new(false);
        let (r, a) = op(&mut w, EVTCHNOP_BIND_VIRQ, EvtchnBindVirq { virq: VIRQ_TIMER, vcpu: 0, port: 0xdead });
        assert_eq!((r, a.port), (0, 1));
        let (r, a) = op(&mut w, EVTCHNOP_BIND_IPI, EvtchnBindIpi { vcpu: 0, port: 0 });
        assert_eq!((r, a.port), (0, 2));
        let (r, a) = op(&mut w, EVTCHNOP_BIND_VIRQ, EvtchnBindVirq { virq: VIRQ_TIMER, vcpu: 0, port: 0xdead });
        assert_eq!((r, a.port), (Errno::EEXIST.as_ret(), 0xdead), "no copy-out on failure");
        let (r, _) = op(&mut w, EVTCHNOP_BIND_VIRQ, EvtchnBindVirq { virq: VIRQ_DEBUG, vcpu: 1, port: 0 });
        assert_eq!(r, Errno::ENOENT.as_ret(), "one vCPU per domain");
        let (r, _) = op(&mut w, EVTCHNOP_BIND_IPI, EvtchnBindIpi { vcpu: 1, port: 0 });
        assert_eq!(r, Errno::ENOENT.as_ret());
        assert_eq!(w.platform.domain(1).channels.binding(port(1)), event::Binding::Virq { virq: VIRQ_TIMER as u16 });
    }

    #[test]
    fn an_interdomain_channel_connects_and_signals_the_peer() {
        // Domain 1 offers a port to domain 2 (done here through the core,
        // as domain 2 would), then binds to a port domain 2 offered it.
        let mut w = World::new(false);
        let (r, a) = op(&mut w, EVTCHNOP_ALLOC_UNBOUND, EvtchnAllocUnbound { dom: DOMID_SELF, remote_dom: 2, port: 0 });
        assert_eq!((r, a.port), (0, 1));
        let mut offered = Err(Errno::ESRCH);
        let mut scratch = abi::shared_info::VcpuInfo::default();
        w.platform.with_domains(&mut scratch, &mut |d| offered = event::alloc_unbound(d, 2, DOMID_SELF, 1));
        let offered = offered.unwrap();
        let (r, a) = op(
            &mut w,
            EVTCHNOP_BIND_INTERDOMAIN,
            EvtchnBindInterdomain { remote_dom: 2, _pad0: 0, remote_port: offered.get(), local_port: 0 },
        );
        assert_eq!((r, a.local_port), (0, 2));
        // Binding raises the new local port at once, in the caller's own
        // vcpu_info (the World's, not the shared page's slot 0).
        assert_eq!(
            w.platform.signals,
            [Signal { dom: 1, vcpu: 0, port: port(2), upcall: true }],
            "the new port is raised, as in Xen"
        );
        assert_eq!(w.vinfo.evtchn_upcall_pending, 1);
        assert_eq!(w.vinfo.evtchn_pending_sel, 1);
        assert_eq!(w.platform.domain(1).shared.vcpu_info[0].evtchn_upcall_pending, 0);
        // Send: domain 2's port becomes pending, in its shared page.
        let (r, _) = op(&mut w, EVTCHNOP_SEND, EvtchnSend { port: 2 });
        assert_eq!(r, 0);
        assert_eq!(w.platform.signals[1], Signal { dom: 2, vcpu: 0, port: offered, upcall: true });
        let peer = w.platform.domain(2);
        assert!(two_level::is_pending(&peer.shared.evtchn_pending, offered));
        assert_eq!(peer.shared.vcpu_info[0].evtchn_upcall_pending, 1);
        // Status from both ends.
        let s = EvtchnStatus { dom: DOMID_SELF, port: 2, ..EvtchnStatus::default() };
        let (r, s) = op(&mut w, EVTCHNOP_STATUS, s);
        assert_eq!(r, 0);
        assert_eq!((s.status, s.vcpu, s.u_interdomain_dom(), s.u_interdomain_port()), (2, 0, 2, offered.get()));
        let (r, _) =
            op(&mut w, EVTCHNOP_STATUS, EvtchnStatus { dom: 2, port: offered.get(), ..EvtchnStatus::default() });
        assert_eq!(r, Errno::EPERM.as_ret(), "another domain's ports are the privileged domain's business");
        // Close: the peer is offered back.
        let (r, _) = op(&mut w, EVTCHNOP_CLOSE, EvtchnClose { port: 2 });
        assert_eq!(r, 0);
        assert_eq!(w.platform.domain(2).channels.binding(offered), event::Binding::Unbound { remote: 1 });
        let (r, _) = op(&mut w, EVTCHNOP_CLOSE, EvtchnClose { port: 2 });
        assert_eq!(r, Errno::EINVAL.as_ret(), "closing twice");
    }

    #[test]
    fn unmask_re_raises_a_pending_port_through_the_callers_vcpu_info() {
        let mut w = World::new(false);
        let (_, a) = op(&mut w, EVTCHNOP_BIND_IPI, EvtchnBindIpi { vcpu: 0, port: 0 });
        let p = port(a.port);
        let d = w.platform.domain(1);
        d.shared.evtchn_mask[0] |= 1 << p.get();
        let (r, _) = op(&mut w, EVTCHNOP_SEND, EvtchnSend { port: p.get() });
        assert_eq!(r, 0);
        assert_eq!(w.platform.signals, [Signal { dom: 1, vcpu: 0, port: p, upcall: false }], "masked: pending only");
        assert_eq!(w.vinfo.evtchn_upcall_pending, 0);
        let (r, _) = op(&mut w, EVTCHNOP_UNMASK, EvtchnUnmask { port: p.get() });
        assert_eq!(r, 0);
        assert_eq!(w.platform.signals[1], Signal { dom: 1, vcpu: 0, port: p, upcall: true });
        assert_eq!((w.vinfo.evtchn_upcall_pending, w.vinfo.evtchn_pending_sel), (1, 1));
        let (r, _) = op(&mut w, EVTCHNOP_UNMASK, EvtchnUnmask { port: 64 });
        assert_eq!(r, Errno::EINVAL.as_ret());
        assert_eq!(w.platform.signals.len(), 2);
    }

    #[test]
    fn bind_vcpu_and_reset() {
        let mut w = World::new(false);
        let (_, a) = op(&mut w, EVTCHNOP_ALLOC_UNBOUND, EvtchnAllocUnbound { dom: DOMID_SELF, remote_dom: 0, port: 0 });
        let (r, _) = op(&mut w, EVTCHNOP_BIND_VCPU, EvtchnBindVcpu { port: a.port, vcpu: 0 });
        assert_eq!(r, 0);
        let (r, _) = op(&mut w, EVTCHNOP_BIND_VCPU, EvtchnBindVcpu { port: a.port, vcpu: 3 });
        assert_eq!(r, Errno::ENOENT.as_ret());
        let (r, _) = op(&mut w, EVTCHNOP_RESET, EvtchnReset { dom: 2 });
        assert_eq!(r, Errno::EPERM.as_ret());
        let (r, _) = op(&mut w, EVTCHNOP_RESET, EvtchnReset { dom: DOMID_SELF });
        assert_eq!(r, 0);
        assert_eq!(w.platform.domain(1).channels.bound().count(), 0);
    }

    #[test]
    fn the_privileged_domain_allocates_for_others() {
        let mut w = World::new(true);
        let (r, a) = op(&mut w, EVTCHNOP_ALLOC_UNBOUND, EvtchnAllocUnbound { dom: 2, remote_dom: 1, port: 0 });
        assert_eq!((r, a.port), (0, 1));
        assert_eq!(w.platform.domain(2).channels.binding(port(1)), event::Binding::Unbound { remote: 1 });
        let (r, _) = op(&mut w, EVTCHNOP_ALLOC_UNBOUND, EvtchnAllocUnbound { dom: 5, remote_dom: 1, port: 0 });
        assert_eq!(r, Errno::ESRCH.as_ret());
        let mut w = World::new(false);
        let (r, _) = op(&mut w, EVTCHNOP_ALLOC_UNBOUND, EvtchnAllocUnbound { dom: 2, remote_dom: 1, port: 0 });
        assert_eq!(r, Errno::EPERM.as_ret());
        assert_eq!(w.platform.domain(2).channels.bound().count(), 0);
    }

    #[test]
    fn bad_arguments_fault_and_a_failed_copy_out_keeps_the_port() {
        let mut w = World::new(false);
        for cmd in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10] {
            for addr in [0, 0xffff_8000_0000_0000, MEM_BASE + 0x1_0000 - 1] {
                w.call(EVENT_CHANNEL_OP, &[cmd, addr]);
                assert_eq!(w.ret(), Errno::EFAULT.as_ret(), "cmd {cmd}, arg {addr:#x}");
            }
        }
        assert_eq!(w.platform.domain(1).channels.bound().count(), 0);
        // Readable but not writable: the port is allocated, the guest gets
        // -EFAULT (Xen: "cleaning up here would be a mess").
        let page = MEM_BASE + 0x3000;
        let a = EvtchnBindIpi { vcpu: 0, port: 0 };
        guest::write_obj(&mut w.mem, GuestPtr(page), &a).unwrap();
        w.mem.read_only.push(page);
        w.call(EVENT_CHANNEL_OP, &[EVTCHNOP_BIND_IPI.into(), page]);
        assert_eq!(w.ret(), Errno::EFAULT.as_ret());
        assert_eq!(w.platform.domain(1).channels.binding(port(1)), event::Binding::Ipi);
    }

    #[test]
    fn unsupported_commands() {
        let mut w = World::new(true);
        let (r, _) = op(&mut w, EVTCHNOP_BIND_PIRQ, EvtchnBindPirq { pirq: 1, flags: 0, port: 0 });
        assert_eq!(r, Errno::EPERM.as_ret(), "no physical IRQs for any domain");
        w.call(EVENT_CHANNEL_OP, &[EVTCHNOP_BIND_PIRQ.into(), 0]);
        assert_eq!(w.ret(), Errno::EFAULT.as_ret());
        for cmd in [EVTCHNOP_INIT_CONTROL, EVTCHNOP_EXPAND_ARRAY, EVTCHNOP_SET_PRIORITY, 14, 99] {
            w.call(EVENT_CHANNEL_OP, &[cmd.into(), ARG]);
            assert_eq!(w.ret(), Errno::ENOSYS.as_ret(), "cmd {cmd}: no FIFO ABI, so 2-level");
        }
        w.call(EVENT_CHANNEL_OP, &[1 << 32, ARG]);
        assert_eq!(w.ret(), Errno::ENOSYS.as_ret());
        assert!(w.platform.signals.is_empty());
    }
}
