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
//! destroydomain, pausedomain, unpausedomain, getdomaininfo, max_mem,
//! max_vcpus, hypercall_init, setvcpucontext and getvcpucontext.

use super::{Action, Ctx};
use crate::domain::{Callback, DomainInfo, Stopped, Vcpu};
use crate::guest::{self, GuestPtr, Pod};
use crate::layout::PAGE_SIZE;
use crate::mm::frame::DomId;
use crate::mm::pagetype::{PageType, PtError};
use crate::mm::Mfn;
use crate::regs::{Regs, GUEST_CS64, GUEST_SS};
use abi::arch::{
    TrapInfo, VcpuGuestContext, VGCF_FAILSAFE_DISABLES_EVENTS, VGCF_IN_KERNEL, VGCF_ONLINE,
    VGCF_SYSCALL_DISABLES_EVENTS,
};
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
        XEN_DOMCTL_SCHEDULER_OP => scheduler_op(ctx, &mut op),
        XEN_DOMCTL_HYPERCALL_INIT => hypercall_init(ctx, op.domain, op.u_hypercall_init().gmfn),
        XEN_DOMCTL_SETVCPUCONTEXT => setvcpucontext(ctx, &op),
        XEN_DOMCTL_GETVCPUCONTEXT => getvcpucontext(ctx, &op),
        XEN_DOMCTL_MAX_VCPUS => {
            // Every domain has exactly its one vCPU: asking for that one is
            // a no-op, anything else is more than it was created with.
            let max = op.u_max_vcpus().max;
            if max != MAX_VCPUS_PER_DOMAIN {
                Err(Errno::EINVAL)
            } else if op.domain == ctx.domain.id {
                Ok(())
            } else {
                ctx.platform.domain_pages(op.domain).map(drop)
            }
        }
        _ => Err(Errno::ENOSYS),
    };
    match result {
        Ok(()) if matches!(op.cmd, XEN_DOMCTL_CREATEDOMAIN | XEN_DOMCTL_GETDOMAININFO | XEN_DOMCTL_SCHEDULER_OP) => {
            // OUT fields; as in Xen, a failed copy-out is -EFAULT though
            // the operation took effect.
            Action::Return(guest::write_obj(ctx.mem, at, &op).map(|()| 0).map_err(|_| Errno::EFAULT))
        }
        r => Action::Return(r.map(|()| 0)),
    }
}

/// `scheduler_op` for the credit scheduler (the only one): `putinfo` sets
/// the weight (0 leaves it) and the cap (`0xffff` leaves it; more than
/// 100% of the domain's one vCPU is `-EINVAL`), `getinfo` reads them. Any
/// other scheduler id or command is `-EINVAL`, as in Xen.
fn scheduler_op(ctx: &mut Ctx<'_>, op: &mut XenDomctl) -> Result<(), Errno> {
    let mut s = op.u_scheduler_op();
    if s.sched_id != XEN_SCHEDULER_CREDIT {
        return Err(Errno::EINVAL);
    }
    let mut params = ctx.platform.sched_params(op.domain)?;
    match s.cmd {
        XEN_DOMCTL_SCHEDOP_GETINFO => {
            s.set_credit(XenDomctlSchedCredit { weight: params.weight, cap: params.cap });
            op.set_u_scheduler_op(&s);
            Ok(())
        }
        XEN_DOMCTL_SCHEDOP_PUTINFO => {
            let c = s.credit();
            if c.weight != 0 {
                params.weight = c.weight;
            }
            if c.cap != u16::MAX {
                if u32::from(c.cap) > 100 * MAX_VCPUS_PER_DOMAIN {
                    return Err(Errno::EINVAL);
                }
                params.cap = c.cap;
            }
            ctx.platform.set_sched_params(op.domain, params)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// `hypercall_init`: writes the hypercall page into frame `mfn` of domain
/// `dom`, which must be the domain's (`-EINVAL`) and able to be writable
/// (`-EPERM`: not a page table or descriptor page).
fn hypercall_init(ctx: &mut Ctx<'_>, dom: DomId, mfn: Mfn) -> Result<(), Errno> {
    if dom != ctx.domain.id {
        ctx.platform.domain_pages(dom)?;
    }
    let mut r = Err(Errno::EINVAL);
    ctx.platform.page_types(&mut |pt| {
        r = match pt.get_page_and_type(dom, mfn, PageType::Writable) {
            Err(PtError::NotOwned(_)) => Err(Errno::EINVAL),
            Err(_) => Err(Errno::EPERM),
            Ok(()) => {
                let mut page = [0u8; 4096];
                abi::hypercall_page::write_hypercall_page(&mut page);
                for (word, bytes) in pt.memory().entries(mfn).iter_mut().zip(page.chunks_exact(8)) {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(bytes);
                    *word = u64::from_le_bytes(b);
                }
                pt.put_page_and_type(mfn);
                Ok(())
            }
        };
    });
    r
}

/// A vCPU state `setvcpucontext` asked for, checked: everything but the
/// page-table bases is plain data; the platform takes the bases' type
/// references when it installs it.
#[derive(Clone, Debug)]
pub struct VcpuInit {
    /// Registers to start from.
    pub regs: Regs,
    /// `ds, es, fs, gs` (each null or the flat data selector).
    pub selectors: [u16; 4],
    /// The vCPU's fields (trap table, callbacks, stack, segment bases,
    /// mode); its page-table bases are `None` here.
    pub vcpu: Vcpu,
    /// The kernel page-table base (an L4 of the domain).
    pub kernel_table: Mfn,
    /// The user page-table base, if any.
    pub user_table: Option<Mfn>,
    /// Bring the vCPU up (`VGCF_online`).
    pub online: bool,
}

/// Checks a `vcpu_guest_context` for a 64-bit PV vCPU as Xen's
/// `arch_set_info_guest` would, with this hypervisor's limits: no LDT and
/// no GDT frames in the context (`set_gdt` works once it runs), the flat
/// selectors only. Canonical addresses everywhere (`-EINVAL`).
pub fn check_context(c: &VcpuGuestContext) -> Result<VcpuInit, Errno> {
    use crate::layout::is_canonical;
    let u = &c.user_regs;
    let canonical = [u.rip, u.rsp, c.event_callback_eip, c.failsafe_callback_eip, c.syscall_callback_eip]
        .into_iter()
        .chain([c.fs_base, c.gs_base_kernel, c.gs_base_user, c.kernel_sp])
        .chain(c.trap_ctxt.iter().map(|t| t.address))
        .all(is_canonical);
    let selectors = [u.ds, u.es, u.fs, u.gs];
    let flat = |s: u16| s == 0 || u64::from(s) | 3 == GUEST_SS;
    if !canonical
        || c.ldt_ents != 0
        || c.gdt_ents != 0
        || u64::from(u.cs) | 3 != GUEST_CS64
        || u64::from(u.ss) | 3 != GUEST_SS
        || !selectors.into_iter().all(flat)
    {
        return Err(Errno::EINVAL);
    }
    let kernel_table = c.ctrlreg[3] >> 12;
    let user_table = (c.ctrlreg[1] >> 12 != 0).then_some(c.ctrlreg[1] >> 12);
    let kernel_mode = c.flags & VGCF_IN_KERNEL != 0;
    if kernel_table == 0 || (!kernel_mode && user_table.is_none()) {
        return Err(Errno::EINVAL);
    }
    let mut vcpu = Vcpu::new(0);
    for (slot, t) in vcpu.trap_table.iter_mut().zip(c.trap_ctxt.iter()) {
        *slot = TrapInfo { cs: t.cs | 3, ..*t };
    }
    vcpu.event_callback = Callback { address: c.event_callback_eip, mask_events: false };
    vcpu.failsafe_callback =
        Callback { address: c.failsafe_callback_eip, mask_events: c.flags & VGCF_FAILSAFE_DISABLES_EVENTS != 0 };
    vcpu.syscall_callback =
        Callback { address: c.syscall_callback_eip, mask_events: c.flags & VGCF_SYSCALL_DISABLES_EVENTS != 0 };
    vcpu.kernel_ss = c.kernel_ss | 3;
    vcpu.kernel_sp = c.kernel_sp;
    vcpu.kernel_mode = kernel_mode;
    vcpu.fs_base = c.fs_base;
    vcpu.gs_base_kernel = c.gs_base_kernel;
    vcpu.gs_base_user = c.gs_base_user;
    let regs = Regs {
        r15: u.r15,
        r14: u.r14,
        r13: u.r13,
        r12: u.r12,
        rbp: u.rbp,
        rbx: u.rbx,
        r11: u.r11,
        r10: u.r10,
        r9: u.r9,
        r8: u.r8,
        rax: u.rax,
        rcx: u.rcx,
        rdx: u.rdx,
        rsi: u.rsi,
        rdi: u.rdi,
        vector: 0,
        error_code: 0,
        rip: u.rip,
        cs: GUEST_CS64,
        rflags: (u.rflags & !(crate::regs::rflags::IOPL | crate::regs::rflags::VM))
            | crate::regs::rflags::IF
            | crate::regs::rflags::FIXED,
        rsp: u.rsp,
        ss: GUEST_SS,
    };
    Ok(VcpuInit { regs, selectors, vcpu, kernel_table, user_table, online: c.flags & VGCF_ONLINE != 0 })
}

/// The `vcpu_guest_context` of a vCPU (`getvcpucontext`).
pub fn context_of(vcpu: &Vcpu, regs: &Regs, selectors: [u16; 4]) -> VcpuGuestContext {
    let mut c = VcpuGuestContext::zeroed();
    let u = &mut c.user_regs;
    (u.r15, u.r14, u.r13, u.r12, u.rbp, u.rbx) = (regs.r15, regs.r14, regs.r13, regs.r12, regs.rbp, regs.rbx);
    (u.r11, u.r10, u.r9, u.r8, u.rax, u.rcx) = (regs.r11, regs.r10, regs.r9, regs.r8, regs.rax, regs.rcx);
    (u.rdx, u.rsi, u.rdi, u.rip, u.rflags, u.rsp) = (regs.rdx, regs.rsi, regs.rdi, regs.rip, regs.rflags, regs.rsp);
    (u.cs, u.ss) = (regs.cs as u16, regs.ss as u16);
    [u.ds, u.es, u.fs, u.gs] = selectors;
    c.trap_ctxt = vcpu.trap_table;
    c.flags = VGCF_ONLINE
        | if vcpu.kernel_mode { VGCF_IN_KERNEL } else { 0 }
        | if vcpu.failsafe_callback.mask_events { VGCF_FAILSAFE_DISABLES_EVENTS } else { 0 }
        | if vcpu.syscall_callback.mask_events { VGCF_SYSCALL_DISABLES_EVENTS } else { 0 };
    c.gdt_ents = u64::from(vcpu.gdt_entries);
    for (slot, &f) in c.gdt_frames.iter_mut().zip(&vcpu.gdt_frames[..vcpu.gdt_frame_count()]) {
        *slot = f;
    }
    c.kernel_ss = vcpu.kernel_ss;
    c.kernel_sp = vcpu.kernel_sp;
    c.ctrlreg[3] = vcpu.cr3();
    c.ctrlreg[1] = vcpu.user_cr3().unwrap_or(0);
    c.event_callback_eip = vcpu.event_callback.address;
    c.failsafe_callback_eip = vcpu.failsafe_callback.address;
    c.syscall_callback_eip = vcpu.syscall_callback.address;
    c.fs_base = vcpu.fs_base;
    c.gs_base_kernel = vcpu.gs_base_kernel;
    c.gs_base_user = vcpu.gs_base_user;
    c
}

// SAFETY: integers and arrays of them, padding named (abi's layout asserts).
unsafe impl Pod for VcpuGuestContext {}

/// `setvcpucontext`: loads vCPU 0 of another domain from the context at
/// the handle (`-EFAULT`); not the caller's (`-EINVAL`), vCPU 0 only
/// (`-EINVAL`); the context is checked ([`check_context`]) and its
/// page-table bases must be the domain's validated L4s (`-EINVAL`).
fn setvcpucontext(ctx: &mut Ctx<'_>, op: &XenDomctl) -> Result<(), Errno> {
    let v = op.u_vcpucontext();
    let dom = other_domain(ctx, op.domain)?;
    if v.vcpu != 0 {
        return Err(Errno::EINVAL);
    }
    ctx.platform.domain_pages(dom)?;
    if v.ctxt == 0 {
        // Xen resets the vCPU; there is nothing to reset it to here.
        return Err(Errno::EINVAL);
    }
    let c: VcpuGuestContext = guest::read_obj(ctx.mem, GuestPtr(v.ctxt)).map_err(|_| Errno::EFAULT)?;
    let init = check_context(&c)?;
    ctx.platform.set_vcpu_context(dom, &init)
}

/// `getvcpucontext`: vCPU 0 of another domain, written to the handle
/// (`-EFAULT`); `-ENODATA` if it was never given a context.
fn getvcpucontext(ctx: &mut Ctx<'_>, op: &XenDomctl) -> Result<(), Errno> {
    let v = op.u_vcpucontext();
    let dom = other_domain(ctx, op.domain)?;
    if v.vcpu != 0 {
        return Err(Errno::EINVAL);
    }
    let c = ctx.platform.vcpu_context(dom)?.ok_or(Errno::ENODATA)?;
    guest::write_obj(ctx.mem, GuestPtr(v.ctxt), &c).map_err(|_| Errno::EFAULT)
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
