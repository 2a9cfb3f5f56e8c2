//! `xen_version`: which hypervisor this is and what it offers.

use super::{Action, Ctx};
use crate::guest::{self, GuestPtr};
use abi::errno::Errno;
use abi::sched::*;

/// `XENVER_extraversion`: what follows "4.17" in our version string.
pub const EXTRAVERSION: &str = ".0-hv";
/// `XENVER_capabilities`: the guest types we run.
pub const CAPABILITIES: &str = "xen-3.0-x86_64";
/// `XENVER_changeset`.
pub const CHANGESET: &str = concat!("hv ", env!("CARGO_PKG_VERSION"));

/// Feature bits of submap 0 for a domain: what `XENVER_get_features`
/// reports, and what a kernel may require of us.
pub fn features(privileged: bool) -> u32 {
    let mut bits = 1 << XENFEAT_PAE_PGDIR_ABOVE_4GB;
    if privileged {
        bits |= 1 << XENFEAT_DOM0;
    }
    bits
}

/// Copies `text` NUL-padded into an `N`-byte guest buffer.
fn write_str<const N: usize>(ctx: &mut Ctx<'_>, dst: u64, text: &str) -> Action {
    let mut buf = [0u8; N];
    buf[..text.len()].copy_from_slice(text.as_bytes());
    match guest::write(ctx.mem, GuestPtr(dst), &buf) {
        Ok(()) => Action::Return(Ok(0)),
        Err(_) => Action::Return(Err(Errno::EFAULT)),
    }
}

/// `xen_version(cmd, arg)`.
pub(super) fn xen_version(ctx: &mut Ctx<'_>, [cmd, arg, ..]: [u64; 5]) -> Action {
    let Ok(cmd) = u32::try_from(cmd) else { return Action::Return(Err(Errno::ENOSYS)) };
    match cmd {
        XENVER_VERSION => Action::Return(Ok(abi::version::XEN_VERSION_PACKED.into())),
        XENVER_EXTRAVERSION => write_str::<XEN_EXTRAVERSION_LEN>(ctx, arg, EXTRAVERSION),
        XENVER_CAPABILITIES => write_str::<XEN_CAPABILITIES_INFO_LEN>(ctx, arg, CAPABILITIES),
        XENVER_CHANGESET => write_str::<64>(ctx, arg, CHANGESET),
        XENVER_PLATFORM_PARAMETERS => {
            let params = XenPlatformParameters { virt_start: crate::layout::HYPERVISOR_VIRT_START };
            match guest::write_obj(ctx.mem, GuestPtr(arg), &params) {
                Ok(()) => Action::Return(Ok(0)),
                Err(_) => Action::Return(Err(Errno::EFAULT)),
            }
        }
        XENVER_GET_FEATURES => {
            let Ok(mut fi) = guest::read_obj::<XenFeatureInfo, _>(ctx.mem, GuestPtr(arg)) else {
                return Action::Return(Err(Errno::EFAULT));
            };
            if fi.submap_idx >= XENFEAT_NR_SUBMAPS {
                return Action::Return(Err(Errno::EINVAL));
            }
            fi.submap = features(ctx.domain.privileged);
            match guest::write_obj(ctx.mem, GuestPtr(arg), &fi) {
                Ok(()) => Action::Return(Ok(0)),
                Err(_) => Action::Return(Err(Errno::EFAULT)),
            }
        }
        XENVER_PAGESIZE => Action::Return(Ok(crate::layout::PAGE_SIZE)),
        _ => Action::Return(Err(Errno::ENOSYS)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{World, MEM_BASE};
    use super::*;
    use abi::hypercall::XEN_VERSION;

    #[test]
    fn version_and_pagesize() {
        let mut w = World::new(true);
        w.call(XEN_VERSION, &[XENVER_VERSION.into(), 0]);
        assert_eq!(w.ret(), 0x0004_0011);
        w.call(XEN_VERSION, &[XENVER_PAGESIZE.into(), 0]);
        assert_eq!(w.ret(), 4096);
        w.call(XEN_VERSION, &[99, 0]);
        assert_eq!(w.ret(), Errno::ENOSYS.as_ret());
    }

    #[test]
    fn strings_are_nul_padded_and_bad_buffers_efault() {
        let mut w = World::new(true);
        w.mem.bytes[..16].fill(0xff);
        w.call(XEN_VERSION, &[XENVER_EXTRAVERSION.into(), MEM_BASE]);
        assert_eq!(w.ret(), 0);
        assert_eq!(&w.mem.bytes[..6], b".0-hv\0");
        assert!(w.mem.bytes[5..16].iter().all(|&b| b == 0));
        w.call(XEN_VERSION, &[XENVER_CAPABILITIES.into(), MEM_BASE + 0x1000]);
        assert_eq!(&w.mem.bytes[0x1000..0x100f], b"xen-3.0-x86_64\0");
        w.call(XEN_VERSION, &[XENVER_CAPABILITIES.into(), MEM_BASE + 0xfc01]);
        assert_eq!(w.ret(), Errno::EFAULT.as_ret(), "1024 bytes do not fit");
    }

    #[test]
    fn features_and_platform_parameters() {
        let mut w = World::new(true);
        w.call(XEN_VERSION, &[XENVER_GET_FEATURES.into(), MEM_BASE]);
        assert_eq!(w.ret(), 0);
        let fi: XenFeatureInfo = guest::read_obj(&mut w.mem, GuestPtr(MEM_BASE)).unwrap();
        assert_eq!(fi.submap, features(true));
        assert_ne!(fi.submap & (1 << XENFEAT_DOM0), 0);
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &XenFeatureInfo { submap_idx: 1, submap: 0 }).unwrap();
        w.call(XEN_VERSION, &[XENVER_GET_FEATURES.into(), MEM_BASE]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret());
        w.call(XEN_VERSION, &[XENVER_PLATFORM_PARAMETERS.into(), MEM_BASE + 8]);
        let p: u64 = guest::read_obj(&mut w.mem, GuestPtr(MEM_BASE + 8)).unwrap();
        assert_eq!(p, 0xffff_8000_0000_0000);
    }
}
