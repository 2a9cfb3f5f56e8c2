//! `multicall`: a batch of hypercalls in one entry.

use super::{call, Action, Ctx, BATCH_BUDGET};
use crate::guest::{self, GuestPtr};
use abi::errno::{encode_result, Errno};
use abi::hypercall as nr;
use abi::mm::MulticallEntry;

/// Size of one `multicall_entry`.
const ENTRY_BYTES: u64 = core::mem::size_of::<MulticallEntry>() as u64;
/// Where an entry's arguments start.
const ARGS_OFFSET: u64 = core::mem::offset_of!(MulticallEntry, args) as u64;

/// `multicall(list, count)`: runs each entry's hypercall with its
/// arguments and stores its result in the entry; a failing entry does not
/// stop the batch. Nested multicalls and `iret` (which would rewrite the
/// caller's frame mid-batch) fail with `-EINVAL` in their entry. A
/// shutdown or crash ends the batch, as it ends the domain.
///
/// A batch is preempted as Xen's is: after [`BATCH_BUDGET`] entries the
/// call continues from the next entry, and an entry whose own call
/// continues has its new arguments written back into it and the batch
/// continues from that entry. A yield, block or poll asked for earlier in
/// a batch that continues is given up, which the guest sees as an early
/// (spurious) wakeup.
pub(super) fn multicall(ctx: &mut Ctx<'_>, [list, count, ..]: [u64; 5]) -> Action {
    let list = GuestPtr(list);
    // As in Xen, yielding or blocking takes effect when the batch ends.
    let mut wait = None;
    for i in 0..count {
        let at = list.add(i.wrapping_mul(ENTRY_BYTES));
        if i == BATCH_BUDGET {
            return Action::Continue([at.0, count - i, 0, 0, 0]);
        }
        let Ok(entry) = guest::read_obj::<MulticallEntry, _>(ctx.mem, at) else {
            return Action::Return(Err(Errno::EFAULT));
        };
        let [a0, a1, a2, a3, a4, _] = entry.args;
        let result = match entry.op {
            nr::MULTICALL | nr::IRET => Err(Errno::EINVAL),
            op => match call(ctx, op, [a0, a1, a2, a3, a4]) {
                Action::Return(r) => r,
                // Only iret resumes a rewritten frame, and it is refused above.
                Action::Resume => Err(Errno::EINVAL),
                stop @ (Action::Shutdown(_) | Action::Crash(_)) => return stop,
                Action::Continue(args) => {
                    let mut rest = entry.args;
                    rest[..5].copy_from_slice(&args);
                    if guest::write_obj(ctx.mem, at.add(ARGS_OFFSET), &rest).is_err() {
                        return Action::Return(Err(Errno::EFAULT));
                    }
                    return Action::Continue([at.0, count - i, 0, 0, 0]);
                }
                w @ (Action::Yield | Action::Block | Action::Poll) => {
                    wait = Some(w);
                    Ok(0)
                }
            },
        };
        if guest::write_obj(ctx.mem, at.add(8), &encode_result(result)).is_err() {
            return Action::Return(Err(Errno::EFAULT));
        }
    }
    wait.unwrap_or(Action::Return(Ok(0)))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{World, MEM_BASE};
    use super::*;
    use abi::sched::{
        SchedShutdown, ShutdownReason, SCHEDOP_BLOCK, SCHEDOP_SHUTDOWN, SCHEDOP_YIELD, XENVER_PAGESIZE, XENVER_VERSION,
    };

    fn entry(op: u64, args: &[u64]) -> MulticallEntry {
        let mut a = [0; 6];
        a[..args.len()].copy_from_slice(args);
        MulticallEntry { op, result: 0xdead, args: a }
    }

    fn result(w: &mut World, i: u64) -> i64 {
        guest::read_obj::<u64, _>(&mut w.mem, GuestPtr(MEM_BASE + i * 64 + 8)).unwrap() as i64
    }

    #[test]
    fn every_entry_runs_and_records_its_result() {
        let mut w = World::new(true);
        let batch = [
            entry(nr::XEN_VERSION, &[XENVER_VERSION.into()]),
            entry(999, &[]),
            entry(nr::XEN_VERSION, &[XENVER_PAGESIZE.into()]),
            entry(nr::MULTICALL, &[MEM_BASE, 1]),
            entry(nr::IRET, &[]),
        ];
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &batch).unwrap();
        assert_eq!(w.call(nr::MULTICALL, &[MEM_BASE, 5]), Action::Return(Ok(0)));
        assert_eq!(result(&mut w, 0), 0x0004_0011);
        assert_eq!(result(&mut w, 1), Errno::ENOSYS.as_ret(), "a failing entry does not stop the batch");
        assert_eq!(result(&mut w, 2), 4096);
        assert_eq!(result(&mut w, 3), Errno::EINVAL.as_ret(), "no nesting");
        assert_eq!(result(&mut w, 4), Errno::EINVAL.as_ret(), "no iret");
    }

    #[test]
    fn a_shutdown_ends_the_batch_and_bad_lists_fault() {
        let mut w = World::new(true);
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE + 0x1000), &SchedShutdown { reason: 0 }).unwrap();
        let batch = [entry(nr::SCHED_OP, &[SCHEDOP_SHUTDOWN.into(), MEM_BASE + 0x1000]), entry(nr::XEN_VERSION, &[0])];
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &batch).unwrap();
        assert_eq!(w.call(nr::MULTICALL, &[MEM_BASE, 2]), Action::Shutdown(ShutdownReason::Poweroff));
        assert_eq!(result(&mut w, 1), 0xdead, "not run");
        assert_eq!(w.call(nr::MULTICALL, &[0xffff_8000_0000_0000, 1]), Action::Return(Err(Errno::EFAULT)));
        assert_eq!(w.call(nr::MULTICALL, &[MEM_BASE + 0xfff0, 1]), Action::Return(Err(Errno::EFAULT)));
        assert_eq!(w.call(nr::MULTICALL, &[0, 0]), Action::Return(Ok(0)), "an empty batch");
    }

    #[test]
    fn waiting_takes_effect_when_the_batch_ends() {
        let mut w = World::new(false);
        let batch = [
            entry(nr::SCHED_OP, &[SCHEDOP_YIELD.into()]),
            entry(nr::XEN_VERSION, &[XENVER_PAGESIZE.into()]),
            entry(nr::SCHED_OP, &[SCHEDOP_BLOCK.into()]),
            entry(nr::XEN_VERSION, &[XENVER_VERSION.into()]),
        ];
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &batch).unwrap();
        w.vinfo.evtchn_upcall_mask = 1;
        assert_eq!(w.call(nr::MULTICALL, &[MEM_BASE, 4]), Action::Block, "the last wait wins");
        assert_eq!(w.ret(), 0);
        assert_eq!(result(&mut w, 0), 0, "yield succeeded");
        assert_eq!(result(&mut w, 1), 4096, "and the batch went on");
        assert_eq!(result(&mut w, 2), 0);
        assert_eq!(result(&mut w, 3), 0x0004_0011);
        assert_eq!(w.vinfo.evtchn_upcall_mask, 0, "block unmasked at once");
        let batch = [entry(nr::SCHED_OP, &[SCHEDOP_YIELD.into()])];
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &batch).unwrap();
        assert_eq!(w.call(nr::MULTICALL, &[MEM_BASE, 1]), Action::Yield);
    }

    #[test]
    fn long_batches_continue_from_the_next_entry() {
        let mut w = World::new(true);
        let n = 2 * BATCH_BUDGET + 5;
        for i in 0..n {
            let e = entry(nr::XEN_VERSION, &[XENVER_PAGESIZE.into()]);
            guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE + i * ENTRY_BYTES), &e).unwrap();
        }
        let (action, continued) = w.call_to_end(nr::MULTICALL, &[MEM_BASE, n]);
        assert_eq!((action, continued), (Action::Return(Ok(0)), 2));
        assert!((0..n).all(|i| result(&mut w, i) == 4096), "every entry ran once");
    }

    #[test]
    fn an_entry_that_continues_keeps_its_place_in_the_batch() {
        // Frame 20 is the fixture domain's own: its M2P entry can be set.
        let mut w = crate::testing::kernel_tree::world();
        let n = BATCH_BUDGET + 7;
        let reqs = MEM_BASE + 0x4000;
        for i in 0..n {
            let r = abi::mm::MmuUpdate { ptr: (20 << 12) | abi::mm::MMU_MACHPHYS_UPDATE, val: i };
            guest::write_obj(&mut w.mem, GuestPtr(reqs + 16 * i), &r).unwrap();
        }
        let done = MEM_BASE + 0x3000;
        let self_ = u64::from(abi::mm::DOMID_SELF);
        let batch = [
            entry(nr::XEN_VERSION, &[XENVER_PAGESIZE.into()]),
            entry(nr::MMU_UPDATE, &[reqs, n, done, self_]),
            entry(nr::XEN_VERSION, &[XENVER_VERSION.into()]),
        ];
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &batch).unwrap();
        let (action, continued) = w.call_to_end(nr::MULTICALL, &[MEM_BASE, 3]);
        assert_eq!((action, continued), (Action::Return(Ok(0)), 1));
        assert_eq!((result(&mut w, 0), result(&mut w, 1), result(&mut w, 2)), (4096, 0, 0x0004_0011));
        assert_eq!(
            guest::read_obj::<u32, _>(&mut w.mem, GuestPtr(done)).unwrap(),
            n as u32,
            "done counts both entries"
        );
        assert_eq!(w.platform.m2p.get(&20), Some(&(n - 1)));
    }
}
