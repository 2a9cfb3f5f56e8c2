//! `sched_op` (yield, block, poll, shut down) and `set_timer_op`.
//!
//! Waiting is the run loop's business: a handler that must wait returns
//! [`Action::Yield`], [`Action::Block`] or [`Action::Poll`] once it has
//! checked, as Xen does before it deschedules, that there is something
//! to wait for. The semantics are Xen 4.17's (`common/sched/core.c`).

use super::{Action, Ctx};
use crate::domain::{Poll, MAX_POLL_PORTS};
use crate::event::two_level::{is_pending, upcall_due};
use crate::guest::{self, GuestPtr, Pod};
use abi::errno::Errno;
use abi::sched::*;

// SAFETY: an abi struct, repr(C) and made only of integers with explicit
// padding (abi's layout assertions check it), so every bit pattern is valid
// and no byte is padding.
unsafe impl Pod for SchedPoll {}

/// `sched_op(cmd, arg)`.
pub(super) fn sched_op(ctx: &mut Ctx<'_>, [cmd, arg, ..]: [u64; 5]) -> Action {
    let Ok(cmd) = u32::try_from(cmd) else { return Action::Return(Err(Errno::ENOSYS)) };
    match cmd {
        SCHEDOP_YIELD => Action::Yield,
        SCHEDOP_BLOCK => block(ctx),
        SCHEDOP_POLL => poll(ctx, GuestPtr(arg)),
        SCHEDOP_SHUTDOWN => match reason(ctx, arg) {
            Ok(ShutdownReason::Suspend | ShutdownReason::SoftReset) => Action::Return(Err(Errno::EOPNOTSUPP)),
            // As in Xen, a code recorded by shutdown_code takes precedence.
            Ok(r) => Action::Shutdown(ctx.domain.shutdown_code.unwrap_or(r)),
            Err(e) => Action::Return(Err(e)),
        },
        SCHEDOP_SHUTDOWN_CODE => match reason(ctx, arg) {
            Ok(r) => {
                ctx.domain.shutdown_code = Some(r);
                Action::Return(Ok(0))
            }
            Err(e) => Action::Return(Err(e)),
        },
        SCHEDOP_REMOTE_SHUTDOWN => remote_shutdown(ctx, GuestPtr(arg)),
        // Watchdog and pin_override are not provided.
        _ => Action::Return(Err(Errno::ENOSYS)),
    }
}

// SAFETY: as for `SchedPoll`.
unsafe impl Pod for SchedRemoteShutdown {}

/// `SCHEDOP_remote_shutdown`: the control domain shuts a domain down with
/// a reason (the toolstack's `shutdown`, `reboot`). Xen's order: the
/// argument (`-EFAULT`), the domain (`-ESRCH`), the caller's privilege
/// (`-EPERM`); a reason that is not `SHUTDOWN_*` is `-EINVAL`. Its own id
/// shuts the caller down.
fn remote_shutdown(ctx: &mut Ctx<'_>, arg: GuestPtr) -> Action {
    let Ok(r) = guest::read_obj::<SchedRemoteShutdown, _>(ctx.mem, arg) else {
        return Action::Return(Err(Errno::EFAULT));
    };
    let own = r.domain_id == ctx.domain.id;
    if !own && ctx.platform.domain_pages(r.domain_id).is_err() {
        return Action::Return(Err(Errno::ESRCH));
    }
    if !ctx.domain.privileged {
        return Action::Return(Err(Errno::EPERM));
    }
    let Ok(reason) = ShutdownReason::try_from(r.reason) else { return Action::Return(Err(Errno::EINVAL)) };
    if own {
        return Action::Shutdown(reason);
    }
    Action::Return(ctx.platform.remote_shutdown(r.domain_id, reason).map(|()| 0))
}

fn reason(ctx: &mut Ctx<'_>, arg: u64) -> Result<ShutdownReason, Errno> {
    let s: SchedShutdown = guest::read_obj(ctx.mem, GuestPtr(arg)).map_err(|_| Errno::EFAULT)?;
    ShutdownReason::try_from(s.reason).map_err(|_| Errno::EINVAL)
}

/// `SCHEDOP_block` (Xen's `vcpu_block_enable_events`): unmask upcalls,
/// then wait for one unless one is due already.
fn block(ctx: &mut Ctx<'_>) -> Action {
    ctx.vinfo.evtchn_upcall_mask = 0;
    if upcall_due(ctx.vinfo) {
        Action::Return(Ok(0))
    } else {
        Action::Block
    }
}

/// `SCHEDOP_poll`: wait until one of the ports is pending, an upcall is
/// due, or the timeout (absolute system time; 0: none) passes. Upcalls
/// stay masked or unmasked as they are.
///
/// Xen's order (`do_poll`): more than 128 ports, `-EINVAL`; ports not
/// readable, `-EFAULT` (all read at once here, where Xen reads one by one
/// as it checks them); an upcall due, 0 at once; then port by port, one
/// beyond the domain's valid ports is `-EINVAL` and a pending one returns
/// 0 at once. A timeout already passed returns 0 at once (Xen arms the
/// poll timer, which fires immediately). Otherwise the vCPU polls
/// ([`crate::domain::Vcpu::poll`]).
fn poll(ctx: &mut Ctx<'_>, arg: GuestPtr) -> Action {
    let Ok(p) = guest::read_obj::<SchedPoll, _>(ctx.mem, arg) else { return Action::Return(Err(Errno::EFAULT)) };
    let count = p.nr_ports as usize;
    if count > MAX_POLL_PORTS {
        return Action::Return(Err(Errno::EINVAL));
    }
    let mut raw = [0u8; 4 * MAX_POLL_PORTS];
    // No ports, no access (the list may then be null, as Xen allows).
    if count > 0 && guest::read(ctx.mem, GuestPtr(p.ports), &mut raw[..4 * count]).is_err() {
        return Action::Return(Err(Errno::EFAULT));
    }
    if upcall_due(ctx.vinfo) {
        return Action::Return(Ok(0));
    }
    let mut ports = [0u16; MAX_POLL_PORTS];
    let caller = ctx.domain.id;
    // `Ok(true)`: a port is pending; `Ok(false)`: every port is valid and
    // none is. Stays `-ESRCH` only if the platform knows no domains.
    let mut verdict = Err(Errno::ESRCH);
    ctx.platform.with_domains(ctx.vinfo, &mut |d| {
        let Some(ev) = d.events(caller) else { return };
        verdict = Ok(false);
        for (slot, bytes) in ports.iter_mut().zip(raw[..4 * count].chunks_exact(4)) {
            let n = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            let Some(port) = ev.channels.lookup(n) else {
                verdict = Err(Errno::EINVAL);
                return;
            };
            if is_pending(ev.state.words(0).pending, port) {
                verdict = Ok(true);
                return;
            }
            // Valid ports are below 4096.
            *slot = port.get() as u16;
        }
    });
    match verdict {
        Err(e) => return Action::Return(Err(e)),
        Ok(true) => return Action::Return(Ok(0)),
        Ok(false) => {}
    }
    let deadline = (p.timeout != 0).then_some(p.timeout);
    let now = system_time(ctx);
    // Xen's timers take signed nanoseconds: beyond i64::MAX is the past.
    let passed = |t: u64| i64::try_from(t).map_or(true, |t| t <= now);
    if deadline.is_some_and(passed) {
        return Action::Return(Ok(0));
    }
    // At most 128 ports.
    ctx.domain.vcpu.poll = Some(Poll { ports, count: count as u8, deadline });
    Action::Poll
}

/// The platform's system time as Xen's signed `s_time_t`.
fn system_time(ctx: &mut Ctx<'_>) -> i64 {
    i64::try_from(ctx.platform.now()).unwrap_or(i64::MAX)
}

/// How far ahead a `set_timer_op` deadline may be (2^50 ns, about 13 days)
/// before Xen takes it for a wrapped value.
const MAX_TIMER_AHEAD: i64 = 1 << 50;

/// What Xen does with a deadline that is negative or too far ahead: fire
/// 100 ms from now.
const HUGE_TIMEOUT_FALLBACK: i64 = 100_000_000;

/// `set_timer_op(deadline)`: arms the vCPU's single-shot timer for system
/// time `deadline` (ns), or stops it for 0. As in Xen (`do_set_timer_op`),
/// a deadline that is negative as a signed value, or more than 2^50 ns
/// ahead, is taken as a guest's wrapped arithmetic and fires in 100 ms
/// instead; one in the past fires at once. Always returns 0.
pub(super) fn set_timer_op(ctx: &mut Ctx<'_>, [timeout, ..]: [u64; 5]) -> Action {
    let timeout = timeout as i64;
    let deadline = if timeout == 0 {
        None
    } else {
        let now = system_time(ctx);
        let offset = timeout.wrapping_sub(now);
        if timeout < 0 || offset >= MAX_TIMER_AHEAD {
            Some(now.saturating_add(HUGE_TIMEOUT_FALLBACK) as u64)
        } else {
            Some(timeout as u64)
        }
    };
    arm_timer(ctx, deadline);
    Action::Return(Ok(0))
}

/// Arms (or stops) the running vCPU's single-shot timer, and records the
/// deadline in the vCPU.
pub(super) fn arm_timer(ctx: &mut Ctx<'_>, deadline: Option<u64>) {
    ctx.domain.vcpu.timer = deadline;
    ctx.platform.set_timer(deadline);
}

#[cfg(test)]
mod tests {
    use super::super::testing::{World, MEM_BASE};
    use super::*;
    use abi::hypercall::{SCHED_OP, SET_TIMER_OP};

    fn shutdown(w: &mut World, cmd: u32, reason: u32) -> super::Action {
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &SchedShutdown { reason }).unwrap();
        w.call(SCHED_OP, &[cmd.into(), MEM_BASE])
    }

    #[test]
    fn shutdown_reasons() {
        let mut w = World::new(true);
        assert_eq!(shutdown(&mut w, SCHEDOP_SHUTDOWN, SHUTDOWN_POWEROFF), Action::Shutdown(ShutdownReason::Poweroff));
        assert_eq!(shutdown(&mut w, SCHEDOP_SHUTDOWN, SHUTDOWN_CRASH), Action::Shutdown(ShutdownReason::Crash));
        assert_eq!(shutdown(&mut w, SCHEDOP_SHUTDOWN, 77), Action::Return(Err(Errno::EINVAL)));
        assert_eq!(w.call(SCHED_OP, &[SCHEDOP_SHUTDOWN.into(), 0]), Action::Return(Err(Errno::EFAULT)));
        assert_eq!(shutdown(&mut w, SCHEDOP_SHUTDOWN_CODE, SHUTDOWN_REBOOT), Action::Return(Ok(0)));
        assert_eq!(w.domain.shutdown_code, Some(ShutdownReason::Reboot));
        assert_eq!(
            shutdown(&mut w, SCHEDOP_SHUTDOWN, SHUTDOWN_POWEROFF),
            Action::Shutdown(ShutdownReason::Reboot),
            "the recorded code wins"
        );
    }

    #[test]
    fn yield_gives_up_the_cpu() {
        let mut w = World::new(false);
        w.regs.rax = 7;
        assert_eq!(w.call(SCHED_OP, &[SCHEDOP_YIELD.into()]), Action::Yield);
        assert_eq!(w.ret(), 0);
        for cmd in [SCHEDOP_WATCHDOG, SCHEDOP_PIN_OVERRIDE, 99] {
            assert_eq!(w.call(SCHED_OP, &[cmd.into(), MEM_BASE]), Action::Return(Err(Errno::ENOSYS)));
        }
        assert_eq!(w.call(SCHED_OP, &[1 << 32]), Action::Return(Err(Errno::ENOSYS)));
    }

    #[test]
    fn remote_shutdown_in_xens_order() {
        let rs = |w: &mut World, domain_id, reason| {
            guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &SchedRemoteShutdown { domain_id, _pad0: 0, reason })
                .unwrap();
            w.call(SCHED_OP, &[SCHEDOP_REMOTE_SHUTDOWN.into(), MEM_BASE])
        };
        let mut w = World::new(false);
        assert_eq!(rs(&mut w, 40, SHUTDOWN_POWEROFF), Action::Return(Err(Errno::ESRCH)), "no domain 40");
        assert_eq!(rs(&mut w, 2, SHUTDOWN_POWEROFF), Action::Return(Err(Errno::EPERM)), "not privileged");
        let mut w = World::new(true);
        assert_eq!(w.call(SCHED_OP, &[SCHEDOP_REMOTE_SHUTDOWN.into(), 0]), Action::Return(Err(Errno::EFAULT)));
        assert_eq!(rs(&mut w, 2, 77), Action::Return(Err(Errno::EINVAL)));
        assert_eq!(rs(&mut w, 2, SHUTDOWN_REBOOT), Action::Return(Ok(0)));
        assert_eq!(w.platform.remote_shutdowns, [(2, ShutdownReason::Reboot)]);
        assert_eq!(rs(&mut w, 0, SHUTDOWN_POWEROFF), Action::Shutdown(ShutdownReason::Poweroff), "itself");
    }

    #[test]
    fn block_unmasks_and_waits_unless_an_upcall_is_due() {
        let mut w = World::new(false);
        w.vinfo.evtchn_upcall_mask = 1;
        assert_eq!(w.call(SCHED_OP, &[SCHEDOP_BLOCK.into()]), Action::Block);
        assert_eq!(w.vinfo.evtchn_upcall_mask, 0, "block unmasks events");
        // An event arrived while masked: unmasking makes it due.
        w.vinfo.evtchn_upcall_mask = 1;
        w.vinfo.evtchn_upcall_pending = 1;
        assert_eq!(w.call(SCHED_OP, &[SCHEDOP_BLOCK.into()]), Action::Return(Ok(0)));
        assert_eq!(w.vinfo.evtchn_upcall_mask, 0);
    }

    const POLL_ARG: u64 = MEM_BASE + 0x200;
    const PORTS: u64 = MEM_BASE + 0x300;

    /// Polls `ports` with `timeout`.
    fn poll(w: &mut World, ports: &[u32], timeout: u64) -> Action {
        for (i, p) in ports.iter().enumerate() {
            guest::write_obj(&mut w.mem, GuestPtr(PORTS + 4 * i as u64), p).unwrap();
        }
        let arg = SchedPoll { ports: PORTS, nr_ports: ports.len() as u32, _pad0: 0, timeout };
        guest::write_obj(&mut w.mem, GuestPtr(POLL_ARG), &arg).unwrap();
        w.call(SCHED_OP, &[SCHEDOP_POLL.into(), POLL_ARG])
    }

    /// Binds `n` IPI ports in domain 1 (ports 1..=n).
    fn ports(w: &mut World, n: u32) {
        let d = w.platform.domain(1);
        for _ in 0..n {
            d.channels.bind_ipi(0).unwrap();
        }
    }

    fn pend(w: &mut World, port: u32) {
        w.platform.domain(1).shared.evtchn_pending[0] |= 1 << port;
    }

    #[test]
    fn poll_waits_on_valid_ports_with_nothing_pending() {
        let mut w = World::new(false);
        ports(&mut w, 3);
        w.vinfo.evtchn_upcall_mask = 1;
        assert_eq!(poll(&mut w, &[3, 1], 0), Action::Poll);
        let p = w.domain.vcpu.poll.expect("polling");
        assert_eq!((p.ports(), p.deadline), (&[3u16, 1][..], None));
        assert_eq!(w.vinfo.evtchn_upcall_mask, 1, "poll leaves the mask alone");
        // Port 63 is valid (the first bucket) though free.
        let soon = w.platform.now + 5;
        assert_eq!(poll(&mut w, &[63], soon), Action::Poll);
        let p = w.domain.vcpu.poll.unwrap();
        assert_eq!((p.ports(), p.deadline), (&[63u16][..], Some(soon)));
        // No ports at all: wait for an upcall or the deadline.
        assert_eq!(poll(&mut w, &[], 0), Action::Poll);
        assert_eq!(w.domain.vcpu.poll.unwrap().ports(), &[] as &[u16]);
        let arg = SchedPoll { ports: 0, nr_ports: 0, _pad0: 0, timeout: soon };
        guest::write_obj(&mut w.mem, GuestPtr(POLL_ARG), &arg).unwrap();
        assert_eq!(w.call(SCHED_OP, &[SCHEDOP_POLL.into(), POLL_ARG]), Action::Poll, "a null list of no ports");
        assert_eq!(w.domain.vcpu.poll.unwrap().deadline, Some(soon));
    }

    #[test]
    fn poll_returns_at_once_when_something_is_there() {
        let mut w = World::new(false);
        ports(&mut w, 3);
        pend(&mut w, 2);
        assert_eq!(poll(&mut w, &[1, 2, 3], 0), Action::Return(Ok(0)), "a pending port");
        assert_eq!(poll(&mut w, &[1, 2, 999], 0), Action::Return(Ok(0)), "checked in order: 2 before 999");
        assert_eq!(poll(&mut w, &[1, 999, 2], 0), Action::Return(Err(Errno::EINVAL)), "999 before 2");
        assert_eq!(poll(&mut w, &[64], 0), Action::Return(Err(Errno::EINVAL)), "beyond the valid ports");
        assert_eq!(poll(&mut w, &[1 << 20], 0), Action::Return(Err(Errno::EINVAL)));
        let now = w.platform.now;
        assert_eq!(poll(&mut w, &[1], now), Action::Return(Ok(0)), "the deadline is now");
        assert_eq!(poll(&mut w, &[1], now - 1), Action::Return(Ok(0)), "and passed");
        assert_eq!(poll(&mut w, &[1], 1 << 63), Action::Return(Ok(0)), "negative as s_time_t: passed");
        w.vinfo.evtchn_upcall_pending = 1;
        assert_eq!(poll(&mut w, &[1, 999], 0), Action::Return(Ok(0)), "an upcall due comes first");
        assert_eq!(w.domain.vcpu.poll, None, "never polled");
    }

    #[test]
    fn poll_argument_errors_in_xens_order() {
        let mut w = World::new(false);
        ports(&mut w, 1);
        w.vinfo.evtchn_upcall_pending = 1;
        let ports129 = [1u32; 129];
        assert_eq!(poll(&mut w, &ports129, 0), Action::Return(Err(Errno::EINVAL)), "too many, before the upcall");
        assert_eq!(poll(&mut w, &ports129[..128], 0), Action::Return(Ok(0)));
        let arg = SchedPoll { ports: MEM_BASE + 0x1_0000 - 8, nr_ports: 3, _pad0: 0, timeout: 0 };
        guest::write_obj(&mut w.mem, GuestPtr(POLL_ARG), &arg).unwrap();
        assert_eq!(w.call(SCHED_OP, &[SCHEDOP_POLL.into(), POLL_ARG]), Action::Return(Err(Errno::EFAULT)));
        assert_eq!(w.call(SCHED_OP, &[SCHEDOP_POLL.into(), 0]), Action::Return(Err(Errno::EFAULT)));
        assert_eq!(w.domain.vcpu.poll, None);
    }

    #[test]
    fn poll_checks_the_callers_own_pending_bits() {
        let mut w = World::new(false);
        ports(&mut w, 1);
        // The same port pending in another domain does not count.
        w.platform.domain(2).shared.evtchn_pending[0] = !0;
        assert_eq!(poll(&mut w, &[1], 0), Action::Poll);
        assert_eq!(w.domain.vcpu.poll.unwrap().ports(), &[1]);
    }

    fn timer(w: &mut World, deadline: u64) -> Option<u64> {
        assert_eq!(w.call(SET_TIMER_OP, &[deadline]), Action::Return(Ok(0)));
        assert_eq!(w.platform.timers.last().copied(), Some(w.domain.vcpu.timer), "mirrored in the vCPU");
        w.domain.vcpu.timer
    }

    #[test]
    fn set_timer_op_follows_xen() {
        let mut w = World::new(false);
        let now = w.platform.now;
        assert_eq!(timer(&mut w, now + 1000), Some(now + 1000));
        assert_eq!(timer(&mut w, 0), None, "0 stops it");
        assert_eq!(timer(&mut w, 5), Some(5), "in the past: fires at once");
        assert_eq!(timer(&mut w, now + (1 << 50) - 1), Some(now + (1 << 50) - 1));
        assert_eq!(timer(&mut w, now + (1 << 50)), Some(now + 100_000_000), "too far ahead: 100 ms");
        assert_eq!(timer(&mut w, u64::MAX), Some(now + 100_000_000), "negative: 100 ms");
        assert_eq!(timer(&mut w, 1 << 63), Some(now + 100_000_000));
        assert_eq!(w.platform.timers.len(), 7);
    }
}
