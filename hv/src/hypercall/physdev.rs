//! `physdev_op`: the part a PV kernel needs for I/O ports.
//!
//! Only `PHYSDEVOP_set_iopl` is offered: it sets the calling vCPU's
//! virtual IOPL, which decides whether its `in` and `out` are emulated
//! ([`crate::ioport`]). Any domain may set it, as on Xen: which ports it
//! reaches is decided by what it was given. Everything else (interrupts,
//! PCI, the I/O bitmap) is `-ENOSYS`.

use super::{Action, Ctx};
use crate::guest::{self, GuestPtr};
use abi::errno::Errno;
use abi::physdev::{PhysdevSetIopl, PHYSDEVOP_SET_IOPL};

/// `physdev_op(cmd, arg)`.
pub(super) fn physdev_op(ctx: &mut Ctx<'_>, [cmd, arg, ..]: [u64; 5]) -> Action {
    match u32::try_from(cmd) {
        Ok(PHYSDEVOP_SET_IOPL) => Action::Return(set_iopl(ctx, arg)),
        _ => Action::Return(Err(Errno::ENOSYS)),
    }
}

fn set_iopl(ctx: &mut Ctx<'_>, arg: u64) -> Result<u64, Errno> {
    let op: PhysdevSetIopl = guest::read_obj(ctx.mem, GuestPtr(arg)).map_err(|_| Errno::EFAULT)?;
    let iopl = u8::try_from(op.iopl).ok().filter(|&l| l <= 3).ok_or(Errno::EINVAL)?;
    ctx.domain.vcpu.iopl = iopl;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{World, MEM_BASE};
    use super::*;
    use abi::hypercall::PHYSDEV_OP;

    #[test]
    fn set_iopl_takes_0_to_3() {
        let mut w = World::new(false);
        for (iopl, want) in [(1, 0), (3, 0), (0, 0), (4, Errno::EINVAL.as_ret()), (u32::MAX, Errno::EINVAL.as_ret())] {
            guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &PhysdevSetIopl { iopl }).unwrap();
            w.call(PHYSDEV_OP, &[PHYSDEVOP_SET_IOPL.into(), MEM_BASE]);
            assert_eq!(w.ret(), want, "iopl {iopl}");
        }
        assert_eq!(w.domain.vcpu.iopl, 0, "the last good value stays");
        w.call(PHYSDEV_OP, &[PHYSDEVOP_SET_IOPL.into(), 0x10]);
        assert_eq!(w.ret(), Errno::EFAULT.as_ret());
        w.call(PHYSDEV_OP, &[abi::physdev::PHYSDEVOP_SET_IOBITMAP.into(), MEM_BASE]);
        assert_eq!(w.ret(), Errno::ENOSYS.as_ret());
    }
}
