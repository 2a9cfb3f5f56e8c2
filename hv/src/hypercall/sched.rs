//! `sched_op`: yield, block, shut down.

use super::{Action, Ctx};
use crate::guest::{self, GuestPtr};
use abi::errno::Errno;
use abi::sched::*;

/// `sched_op(cmd, arg)`.
pub(super) fn sched_op(ctx: &mut Ctx<'_>, [cmd, arg, ..]: [u64; 5]) -> Action {
    let Ok(cmd) = u32::try_from(cmd) else { return Action::Return(Err(Errno::ENOSYS)) };
    match cmd {
        // One vCPU on one CPU: nothing else to run.
        SCHEDOP_YIELD => Action::Return(Ok(0)),
        // Block unmasks events and waits for one. There are no event
        // sources yet, so it returns at once: a spurious wakeup, which the
        // ABI allows.
        SCHEDOP_BLOCK => {
            ctx.vinfo.evtchn_upcall_mask = 0;
            Action::Return(Ok(0))
        }
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
        _ => Action::Return(Err(Errno::ENOSYS)),
    }
}

fn reason(ctx: &mut Ctx<'_>, arg: u64) -> Result<ShutdownReason, Errno> {
    let s: SchedShutdown = guest::read_obj(ctx.mem, GuestPtr(arg)).map_err(|_| Errno::EFAULT)?;
    ShutdownReason::try_from(s.reason).map_err(|_| Errno::EINVAL)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{World, MEM_BASE};
    use super::*;
    use abi::hypercall::SCHED_OP;

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
    fn yield_and_block_return() {
        let mut w = World::new(false);
        w.vinfo.evtchn_upcall_mask = 1;
        assert_eq!(w.call(SCHED_OP, &[SCHEDOP_YIELD.into()]), Action::Return(Ok(0)));
        assert_eq!(w.call(SCHED_OP, &[SCHEDOP_BLOCK.into()]), Action::Return(Ok(0)));
        assert_eq!(w.vinfo.evtchn_upcall_mask, 0, "block unmasks events");
        assert_eq!(w.call(SCHED_OP, &[SCHEDOP_POLL.into()]), Action::Return(Err(Errno::ENOSYS)));
    }
}
