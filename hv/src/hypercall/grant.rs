//! `grant_table_op(cmd, uop, count)`: the guest's interface to
//! [`crate::grant`].
//!
//! As in Xen 4.17's `do_grant_table_op`: `cmd` and `count` are C
//! `unsigned int`s (the registers' upper halves are ignored); a `count`
//! with the top bit set is `-EINVAL`, as are bits above the command number
//! (Xen's continuation argument) for any command but `cache_flush`. The
//! batched commands (`map_grant_ref`, `unmap_grant_ref`, `copy`) first
//! check that the whole array lies in guest space (`-EFAULT` otherwise),
//! then copy each op in, run it, and copy its result out, in order; an op
//! that cannot be read or written back ends the batch with `-EFAULT`,
//! the ones before it done. Each op's outcome is its `status` (`GNTST_*`);
//! the call itself returns 0. `map_grant_ref` writes the whole op back,
//! the others only its `status`. `setup_table` and `query_size` take
//! `count == 1` only (else `-EINVAL`); `set_version` ignores `count`.
//! Every other command (`transfer`, `unmap_and_replace`, `dump_table`,
//! the version-2 ones, `swap_grant_ref`, `cache_flush`) is `-ENOSYS`.
//! A batch longer than [`BATCH_BUDGET`] continues after that many ops
//! with `uop` and `count` moved on past them, as Xen's continuation does.

use super::{Action, Ctx, BATCH_BUDGET};
use crate::grant::{self, GrantError, MapRequest};
use crate::guest::{self, range_ok, GuestPtr, Pod};
use abi::errno::Errno;
use abi::grant_table::*;

// SAFETY: for this and all below: abi structs, repr(C) and made only of
// integers with explicit padding (abi's layout assertions check sizes and
// offsets), so every bit pattern is valid and no byte is padding.
unsafe impl Pod for GnttabMapGrantRef {}
// SAFETY: as above.
unsafe impl Pod for GnttabUnmapGrantRef {}
// SAFETY: as above.
unsafe impl Pod for GnttabSetupTable {}
// SAFETY: as above.
unsafe impl Pod for GnttabCopy {}
// SAFETY: as above.
unsafe impl Pod for GnttabQuerySize {}
// SAFETY: as above.
unsafe impl Pod for GnttabSetVersion {}

/// The command bits of `cmd` (Xen's `GNTTABOP_CMD_MASK`); the bits above
/// carry a continuation argument only `cache_flush` may have.
const CMD_MASK: u32 = (1 << 12) - 1;

/// Byte offsets of the `status` fields the batched commands write back.
const UNMAP_STATUS: u64 = core::mem::offset_of!(GnttabUnmapGrantRef, status) as u64;
const COPY_STATUS: u64 = core::mem::offset_of!(GnttabCopy, status) as u64;
const SETUP_STATUS: u64 = core::mem::offset_of!(GnttabSetupTable, status) as u64;

/// `grant_table_op(cmd, uop, count)`.
pub(super) fn grant_table_op(ctx: &mut Ctx<'_>, [cmd, uop, count, ..]: [u64; 5]) -> Action {
    let (cmd, count, uop) = (cmd as u32, count as u32, GuestPtr(uop));
    if count > i32::MAX as u32 || (cmd & !CMD_MASK != 0 && cmd & CMD_MASK != GNTTABOP_CACHE_FLUSH) {
        return Action::Return(Err(Errno::EINVAL));
    }
    let done = match cmd {
        GNTTABOP_MAP_GRANT_REF => batch(ctx, uop, count, map_one),
        GNTTABOP_UNMAP_GRANT_REF => batch(ctx, uop, count, unmap_one),
        GNTTABOP_COPY => batch(ctx, uop, count, copy_one),
        _ => return Action::Return(single(ctx, cmd, uop, count)),
    };
    match done {
        Ok(Some(next)) => Action::Continue([cmd.into(), next.0, u64::from(count) - BATCH_BUDGET, 0, 0]),
        Ok(None) => Action::Return(Ok(0)),
        Err(e) => Action::Return(Err(e)),
    }
}

/// The commands that are not batches.
fn single(ctx: &mut Ctx<'_>, cmd: u32, uop: GuestPtr, count: u32) -> Result<u64, Errno> {
    match cmd {
        GNTTABOP_SETUP_TABLE if count != 1 => Err(Errno::EINVAL),
        GNTTABOP_SETUP_TABLE => setup_table(ctx, uop),
        GNTTABOP_QUERY_SIZE if count != 1 => Err(Errno::EINVAL),
        GNTTABOP_QUERY_SIZE => query_size(ctx, uop),
        GNTTABOP_SET_VERSION => set_version(ctx, uop),
        _ => Err(Errno::ENOSYS),
    }
}

/// Runs `count` ops of type `T` from `uop`, in order: each is read, run by
/// `one` (which writes its result back, `Err` only if it cannot), and the
/// batch stops with `-EFAULT` at the first op that cannot be read or
/// written back. After [`BATCH_BUDGET`] ops with more to come, returns
/// where the rest starts.
fn batch<T: Pod>(
    ctx: &mut Ctx<'_>,
    uop: GuestPtr,
    count: u32,
    one: fn(&mut Ctx<'_>, GuestPtr, T) -> Result<(), Errno>,
) -> Result<Option<GuestPtr>, Errno> {
    let size = core::mem::size_of::<T>() as u64;
    if !range_ok(uop.0, u64::from(count) * size) {
        return Err(Errno::EFAULT);
    }
    for i in 0..u64::from(count) {
        let at = uop.add(i * size);
        if i == BATCH_BUDGET {
            return Ok(Some(at));
        }
        let op: T = guest::read_obj(ctx.mem, at).map_err(|_| Errno::EFAULT)?;
        one(ctx, at, op)?;
    }
    Ok(None)
}

/// A `GNTST_*` status from an op's outcome.
fn status<T>(r: &Result<T, GrantError>) -> i16 {
    match r {
        Ok(_) => GNTST_OKAY,
        Err(e) => e.status(),
    }
}

/// Writes `status` into the `i16` at `at + offset` (`-EFAULT` if it cannot).
fn write_status(ctx: &mut Ctx<'_>, at: GuestPtr, offset: u64, status: i16) -> Result<(), Errno> {
    guest::write(ctx.mem, at.add(offset), &status.to_le_bytes()).map_err(|_| Errno::EFAULT)
}

fn map_one(ctx: &mut Ctx<'_>, at: GuestPtr, mut op: GnttabMapGrantRef) -> Result<(), Errno> {
    let req = MapRequest { host_addr: op.host_addr, flags: op.flags, gref: op.ref_, dom: op.dom };
    let r = grant::map(ctx.platform, ctx.domain, &req);
    op.status = status(&r);
    if let Ok(m) = r {
        op.handle = m.handle;
        op.dev_bus_addr = m.dev_bus_addr;
    }
    guest::write_obj(ctx.mem, at, &op).map_err(|_| Errno::EFAULT)
}

fn unmap_one(ctx: &mut Ctx<'_>, at: GuestPtr, op: GnttabUnmapGrantRef) -> Result<(), Errno> {
    let r = grant::unmap(ctx.platform, ctx.domain, op.handle, op.host_addr);
    write_status(ctx, at, UNMAP_STATUS, status(&r))
}

fn copy_one(ctx: &mut Ctx<'_>, at: GuestPtr, op: GnttabCopy) -> Result<(), Errno> {
    let r = grant::copy(ctx.platform, ctx.domain, &op);
    write_status(ctx, at, COPY_STATUS, status(&r))
}

/// `GNTTABOP_setup_table`: the frame list must lie in guest space
/// (`-EFAULT`, nothing done); a frame number it cannot take makes the
/// status `GNTST_bad_virt_addr` (the others are still written, as in Xen).
/// Only `status` is written back.
fn setup_table(ctx: &mut Ctx<'_>, uop: GuestPtr) -> Result<u64, Errno> {
    let op: GnttabSetupTable = guest::read_obj(ctx.mem, uop).map_err(|_| Errno::EFAULT)?;
    let list = GuestPtr(op.frame_list);
    if !range_ok(list.0, u64::from(op.nr_frames) * 8) {
        return Err(Errno::EFAULT);
    }
    let mut st = GNTST_OKAY;
    match grant::setup_table(ctx.platform, ctx.domain, op.dom, op.nr_frames) {
        Ok(frames) => {
            for (i, mfn) in frames.iter().enumerate().take(op.nr_frames as usize) {
                if guest::write_obj(ctx.mem, list.add(i as u64 * 8), mfn).is_err() {
                    st = GNTST_BAD_VIRT_ADDR;
                }
            }
        }
        Err(e) => st = e.status(),
    }
    write_status(ctx, uop, SETUP_STATUS, st)?;
    Ok(0)
}

/// `GNTTABOP_query_size`: the whole struct is written back.
fn query_size(ctx: &mut Ctx<'_>, uop: GuestPtr) -> Result<u64, Errno> {
    let mut op: GnttabQuerySize = guest::read_obj(ctx.mem, uop).map_err(|_| Errno::EFAULT)?;
    match grant::query_size(ctx.platform, ctx.domain, op.dom) {
        Ok((nr, max)) => {
            op.nr_frames = nr;
            op.max_nr_frames = max;
            op.status = GNTST_OKAY;
        }
        Err(e) => op.status = e.status(),
    }
    guest::write_obj(ctx.mem, uop, &op).map_err(|_| Errno::EFAULT)?;
    Ok(0)
}

/// `GNTTABOP_set_version`: the version in effect is written back whatever
/// the answer.
fn set_version(ctx: &mut Ctx<'_>, uop: GuestPtr) -> Result<u64, Errno> {
    let op: GnttabSetVersion = guest::read_obj(ctx.mem, uop).map_err(|_| Errno::EFAULT)?;
    let (r, version) = grant::set_version(op.version);
    guest::write_obj(ctx.mem, uop, &GnttabSetVersion { version }).map_err(|_| Errno::EFAULT)?;
    r.map(|()| 0)
}
