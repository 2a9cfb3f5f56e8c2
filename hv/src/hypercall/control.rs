//! `domctl` and `sysctl`: the control domain's view of the machine and of
//! other domains (Xen 4.17's interface version 0x15).
//!
//! Both copy the whole request in (`-EFAULT`), check its interface version
//! (`-EACCES`), then the caller's privilege (`-EPERM`, Xen's default XSM
//! policy), in that order, as Xen does. Commands not listed here are
//! `-ENOSYS`.
//!
//! Implemented: `sysctl` physinfo and readconsole; `domctl` createdomain
//! (an empty, paused PV domain with one vCPU, not yet initialised),
//! destroydomain, pausedomain, unpausedomain, getdomaininfo, max_mem and
//! max_vcpus. Populating a new domain's memory, mapping its frames and
//! loading its vCPU context (what a domain builder needs) are not here yet.

use super::{Action, Ctx};
use crate::domain::{DomainInfo, Stopped};
use crate::guest::{self, GuestPtr, Pod};
use crate::layout::PAGE_SIZE;
use crate::mm::frame::DomId;
use abi::domctl::*;
use abi::errno::Errno;
use abi::mm::DOMID_FIRST_RESERVED;
use abi::sysctl::*;

// SAFETY: integers only, padding named (abi's layout asserts).
unsafe impl Pod for XenDomctl {}
// SAFETY: as above.
unsafe impl Pod for XenSysctl {}

/// The vCPUs a domain may have here.
pub const MAX_VCPUS_PER_DOMAIN: u32 = 1;

/// What a new domain asks for (`XEN_DOMCTL_createdomain`), checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewDomain {
    /// The id wanted, or `None` for the lowest free one.
    pub id: Option<DomId>,
    /// Highest event-channel port it may use.
    pub max_evtchn_port: u32,
    /// Its handle (a UUID the toolstack chooses).
    pub handle: [u8; 16],
}

/// `domctl(op)`.
pub(super) fn domctl(ctx: &mut Ctx<'_>, [arg, ..]: [u64; 5]) -> Action {
    let at = GuestPtr(arg);
    let Ok(mut op) = guest::read_obj::<XenDomctl, _>(ctx.mem, at) else {
        return Action::Return(Err(Errno::EFAULT));
    };
    if op.interface_version != XEN_DOMCTL_INTERFACE_VERSION {
        return Action::Return(Err(Errno::EACCES));
    }
    if !ctx.domain.privileged {
        return Action::Return(Err(Errno::EPERM));
    }
    let result = match op.cmd {
        XEN_DOMCTL_CREATEDOMAIN => createdomain(ctx, &mut op),
        XEN_DOMCTL_GETDOMAININFO => getdomaininfo(ctx, &mut op),
        XEN_DOMCTL_DESTROYDOMAIN => other_domain(ctx, op.domain).and_then(|d| ctx.platform.destroy_domain(d)),
        XEN_DOMCTL_PAUSEDOMAIN => other_domain(ctx, op.domain).and_then(|d| ctx.platform.pause_domain(d)),
        XEN_DOMCTL_UNPAUSEDOMAIN => other_domain(ctx, op.domain).and_then(|d| ctx.platform.unpause_domain(d)),
        XEN_DOMCTL_MAX_MEM => {
            let pages = op.u_max_mem().max_memkb / (PAGE_SIZE / 1024);
            if op.domain == ctx.domain.id {
                ctx.domain.max_pages = pages;
                Ok(())
            } else {
                ctx.platform.set_max_pages(op.domain, pages)
            }
        }
        XEN_DOMCTL_MAX_VCPUS => {
            // Every domain has exactly its one vCPU: asking for that one is
            // a no-op, anything else is more than it was created with.
            let max = op.u_max_vcpus().max;
            if max != MAX_VCPUS_PER_DOMAIN {
                Err(Errno::EINVAL)
            } else if op.domain == ctx.domain.id
                || ctx.platform.domain_info(op.domain, ctx.domain).is_some_and(|i| i.id == op.domain)
            {
                Ok(())
            } else {
                Err(Errno::ESRCH)
            }
        }
        _ => Err(Errno::ENOSYS),
    };
    match result {
        Ok(()) if matches!(op.cmd, XEN_DOMCTL_CREATEDOMAIN | XEN_DOMCTL_GETDOMAININFO) => {
            // OUT fields; as in Xen, a failed copy-out is -EFAULT though
            // the operation took effect.
            Action::Return(guest::write_obj(ctx.mem, at, &op).map(|()| 0).map_err(|_| Errno::EFAULT))
        }
        r => Action::Return(r.map(|()| 0)),
    }
}

/// A domain other than the caller (pausing or destroying oneself is
/// `-EINVAL`, as in Xen).
fn other_domain(ctx: &Ctx<'_>, dom: u16) -> Result<DomId, Errno> {
    if dom == ctx.domain.id {
        Err(Errno::EINVAL)
    } else {
        Ok(dom)
    }
}

fn createdomain(ctx: &mut Ctx<'_>, op: &mut XenDomctl) -> Result<(), Errno> {
    let c = op.u_createdomain();
    // PV only: HVM, HAP, IOMMU, nested virtualization and vPMU are
    // features this hypervisor does not have.
    if c.flags & !(XEN_DOMCTL_CDF_OOS_OFF | XEN_DOMCTL_CDF_XS_DOMAIN | XEN_DOMCTL_CDF_S3_INTEGRITY) != 0
        || c.max_vcpus != MAX_VCPUS_PER_DOMAIN
    {
        return Err(Errno::EINVAL);
    }
    let id = match op.domain {
        0 => None,
        d if d >= DOMID_FIRST_RESERVED => None,
        d => Some(d),
    };
    let max_evtchn_port = c.max_evtchn_port.min(crate::event::NR_PORTS - 1);
    let new = ctx.platform.create_domain(&NewDomain { id, max_evtchn_port, handle: c.handle })?;
    op.domain = new;
    Ok(())
}

fn getdomaininfo(ctx: &mut Ctx<'_>, op: &mut XenDomctl) -> Result<(), Errno> {
    let info = ctx.platform.domain_info(op.domain, ctx.domain).ok_or(Errno::ESRCH)?;
    op.domain = info.id;
    op.set_u_getdomaininfo(&getdomaininfo_of(&info));
    Ok(())
}

/// Xen's `getdomaininfo` record of `info`.
pub fn getdomaininfo_of(info: &DomainInfo) -> XenDomctlGetdomaininfo {
    let mut flags = 0;
    if info.paused {
        flags |= XEN_DOMINF_PAUSED;
    }
    if info.blocked {
        flags |= XEN_DOMINF_BLOCKED;
    }
    if info.running {
        flags |= XEN_DOMINF_RUNNING;
    }
    if let Some(how) = info.stopped {
        let reason = match how {
            Stopped::Shutdown(r) => r as u32,
            Stopped::Crashed => abi::sched::SHUTDOWN_CRASH,
        };
        flags |= XEN_DOMINF_SHUTDOWN | (reason & XEN_DOMINF_SHUTDOWNMASK) << XEN_DOMINF_SHUTDOWNSHIFT;
    }
    XenDomctlGetdomaininfo {
        domain: info.id,
        flags,
        tot_pages: info.tot_pages,
        max_pages: info.max_pages,
        shared_info_frame: info.shared_info,
        cpu_time: info.cpu_time_ns,
        nr_online_vcpus: u32::from(info.vcpu_online),
        max_vcpu_id: 0,
        handle: info.handle,
        gpaddr_bits: 52,
        ..XenDomctlGetdomaininfo::default()
    }
}

/// `sysctl(op)`.
pub(super) fn sysctl(ctx: &mut Ctx<'_>, [arg, ..]: [u64; 5]) -> Action {
    let at = GuestPtr(arg);
    let Ok(mut op) = guest::read_obj::<XenSysctl, _>(ctx.mem, at) else {
        return Action::Return(Err(Errno::EFAULT));
    };
    if op.interface_version != XEN_SYSCTL_INTERFACE_VERSION {
        return Action::Return(Err(Errno::EACCES));
    }
    if !ctx.domain.privileged {
        return Action::Return(Err(Errno::EPERM));
    }
    let result = match op.cmd {
        XEN_SYSCTL_PHYSINFO => {
            let p = ctx.platform.physinfo();
            op.set_u_physinfo(&XenSysctlPhysinfo {
                threads_per_core: 1,
                cores_per_socket: 1,
                nr_cpus: 1,
                max_cpu_id: 0,
                nr_nodes: 1,
                max_node_id: 0,
                cpu_khz: p.cpu_khz,
                capabilities: XEN_SYSCTL_PHYSCAP_PV,
                total_pages: p.total_pages,
                free_pages: p.free_pages,
                max_mfn: p.max_mfn,
                ..XenSysctlPhysinfo::default()
            });
            Ok(())
        }
        XEN_SYSCTL_READCONSOLE => readconsole(ctx, &mut op),
        _ => Err(Errno::ENOSYS),
    };
    match result {
        Ok(()) => Action::Return(guest::write_obj(ctx.mem, at, &op).map(|()| 0).map_err(|_| Errno::EFAULT)),
        Err(e) => Action::Return(Err(e)),
    }
}

fn readconsole(ctx: &mut Ctx<'_>, op: &mut XenSysctl) -> Result<(), Errno> {
    let mut rc = op.u_readconsole();
    let buffer = GuestPtr(rc.buffer);
    // Checked whole first, so the copy below fails only on a fault.
    if !guest::range_ok(buffer.0, u64::from(rc.count)) {
        return Err(Errno::EFAULT);
    }
    let incremental = (rc.incremental != 0).then_some(rc.index);
    let mem = &mut *ctx.mem;
    let out = ctx.platform.read_console(incremental, rc.count, rc.clear != 0, &mut |offset, bytes| {
        guest::write(mem, buffer.add(u64::from(offset)), bytes).map_err(|_| Errno::EFAULT)
    })?;
    rc.count = out.count;
    rc.index = out.index;
    op.set_u_readconsole(&rc);
    Ok(())
}

#[cfg(test)]
mod tests;
