use super::super::testing::{World, MEM_BASE};
use super::*;
use abi::hypercall::{DOMCTL, SYSCTL};

fn domctl(w: &mut World, op: &XenDomctl) -> (Action, XenDomctl) {
    guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), op).unwrap();
    let a = w.call(DOMCTL, &[MEM_BASE]);
    (a, guest::read_obj(&mut w.mem, GuestPtr(MEM_BASE)).unwrap())
}

fn sysctl(w: &mut World, op: &XenSysctl) -> (Action, XenSysctl) {
    guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), op).unwrap();
    let a = w.call(SYSCTL, &[MEM_BASE]);
    (a, guest::read_obj(&mut w.mem, GuestPtr(MEM_BASE)).unwrap())
}

fn ret(r: Result<u64, Errno>) -> Action {
    Action::Return(r)
}

#[test]
fn version_then_privilege_then_command_as_in_xen() {
    let mut w = World::new(false);
    let mut op = XenDomctl::getdomaininfo(0);
    op.interface_version -= 1;
    assert_eq!(domctl(&mut w, &op).0, ret(Err(Errno::EACCES)), "the version first, even for a domU");
    assert_eq!(domctl(&mut w, &XenDomctl::getdomaininfo(0)).0, ret(Err(Errno::EPERM)));
    assert_eq!(sysctl(&mut w, &XenSysctl::physinfo()).0, ret(Err(Errno::EPERM)));
    assert_eq!(w.call(DOMCTL, &[0]), ret(Err(Errno::EFAULT)));
    let mut w = World::new(true);
    assert_eq!(domctl(&mut w, &XenDomctl::new(XEN_DOMCTL_SHADOW_OP, 1)).0, ret(Err(Errno::ENOSYS)));
    assert_eq!(sysctl(&mut w, &XenSysctl::new(9999)).0, ret(Err(Errno::ENOSYS)));
    let mut op = XenSysctl::physinfo();
    op.interface_version = 0;
    assert_eq!(sysctl(&mut w, &op).0, ret(Err(Errno::EACCES)));
}

#[test]
fn getdomaininfo_reports_the_first_domain_at_or_above() {
    let mut w = World::new(true);
    w.domain.nr_pages = 100;
    w.domain.max_pages = 200;
    let (a, op) = domctl(&mut w, &XenDomctl::getdomaininfo(0));
    assert_eq!(a, ret(Ok(0)));
    let i = op.u_getdomaininfo();
    assert_eq!((op.domain, i.domain, i.tot_pages, i.max_pages), (0, 0, 100, 200), "itself");
    assert_eq!(i.flags & XEN_DOMINF_RUNNING, XEN_DOMINF_RUNNING);
    let (_, op) = domctl(&mut w, &XenDomctl::getdomaininfo(3));
    assert_eq!(op.domain, 7, "Xen 4.17: the next domain up");
    assert_eq!(domctl(&mut w, &XenDomctl::getdomaininfo(8)).0, ret(Err(Errno::ESRCH)));
}

#[test]
fn shutdown_reasons_are_in_the_flags() {
    let info = crate::domain::DomainInfo {
        id: 3,
        stopped: Some(Stopped::Shutdown(abi::sched::ShutdownReason::Reboot)),
        paused: true,
        ..Default::default()
    };
    let r = getdomaininfo_of(&info);
    assert_eq!(r.flags & XEN_DOMINF_SHUTDOWN, XEN_DOMINF_SHUTDOWN);
    assert_eq!(r.flags & XEN_DOMINF_PAUSED, XEN_DOMINF_PAUSED);
    assert_eq!(r.shutdown_reason(), abi::sched::SHUTDOWN_REBOOT);
    let crashed = getdomaininfo_of(&crate::domain::DomainInfo { stopped: Some(Stopped::Crashed), ..info });
    assert_eq!(crashed.shutdown_reason(), abi::sched::SHUTDOWN_CRASH);
}

#[test]
fn create_pause_unpause_destroy() {
    let mut w = World::new(true);
    let cfg = XenDomctlCreatedomain { max_vcpus: 1, max_evtchn_port: 1023, handle: [7; 16], ..Default::default() };
    let (a, op) = domctl(&mut w, &XenDomctl::createdomain(0, &cfg));
    assert_eq!(a, ret(Ok(0)));
    assert_eq!(op.domain, 3, "the lowest free id");
    let (_, info) = domctl(&mut w, &XenDomctl::getdomaininfo(3));
    assert_eq!(info.u_getdomaininfo().flags & XEN_DOMINF_PAUSED, XEN_DOMINF_PAUSED, "created paused");
    assert_eq!(info.u_getdomaininfo().handle, [7; 16]);
    assert_eq!(domctl(&mut w, &XenDomctl::createdomain(3, &cfg)).0, ret(Err(Errno::EEXIST)));
    assert_eq!(domctl(&mut w, &XenDomctl::unpausedomain(3)).0, ret(Ok(0)));
    assert_eq!(domctl(&mut w, &XenDomctl::unpausedomain(3)).0, ret(Err(Errno::EINVAL)), "not paused");
    assert_eq!(domctl(&mut w, &XenDomctl::pausedomain(3)).0, ret(Ok(0)));
    assert_eq!(domctl(&mut w, &XenDomctl::max_mem(3, 8192)).0, ret(Ok(0)));
    assert_eq!(w.platform.infos.iter().find(|i| i.id == 3).unwrap().max_pages, 2048);
    assert_eq!(domctl(&mut w, &XenDomctl::max_vcpus(3, 1)).0, ret(Ok(0)));
    assert_eq!(domctl(&mut w, &XenDomctl::max_vcpus(3, 2)).0, ret(Err(Errno::EINVAL)), "one vCPU only");
    assert_eq!(domctl(&mut w, &XenDomctl::destroydomain(3)).0, ret(Ok(0)));
    assert_eq!(domctl(&mut w, &XenDomctl::destroydomain(3)).0, ret(Err(Errno::ESRCH)));
    assert_eq!(domctl(&mut w, &XenDomctl::max_vcpus(3, 1)).0, ret(Err(Errno::ESRCH)));
}

#[test]
fn createdomain_refuses_what_this_hypervisor_lacks() {
    let mut w = World::new(true);
    for (flags, vcpus) in [(XEN_DOMCTL_CDF_HVM, 1), (XEN_DOMCTL_CDF_HAP, 1), (XEN_DOMCTL_CDF_IOMMU, 1), (0, 2), (0, 0)]
    {
        let cfg = XenDomctlCreatedomain { flags, max_vcpus: vcpus, ..Default::default() };
        assert_eq!(domctl(&mut w, &XenDomctl::createdomain(0, &cfg)).0, ret(Err(Errno::EINVAL)), "{flags:#x} {vcpus}");
    }
    assert_eq!(w.platform.infos.len(), 3, "nothing created");
}

#[test]
fn the_caller_cannot_pause_or_destroy_itself() {
    let mut w = World::new(true);
    assert_eq!(domctl(&mut w, &XenDomctl::pausedomain(0)).0, ret(Err(Errno::EINVAL)));
    assert_eq!(domctl(&mut w, &XenDomctl::destroydomain(0)).0, ret(Err(Errno::EINVAL)));
    assert_eq!(domctl(&mut w, &XenDomctl::max_mem(0, 4096)).0, ret(Ok(0)));
    assert_eq!(w.domain.max_pages, 1024, "its own limit, from its own record");
}

#[test]
fn physinfo() {
    let mut w = World::new(true);
    let (a, op) = sysctl(&mut w, &XenSysctl::physinfo());
    assert_eq!(a, ret(Ok(0)));
    let p = op.u_physinfo();
    assert_eq!((p.total_pages, p.free_pages, p.nr_cpus, p.cpu_khz), (128, 32, 1, 2_000_000));
    assert_eq!(p.capabilities, XEN_SYSCTL_PHYSCAP_PV);
}

fn readconsole(w: &mut World, rc: XenSysctlReadconsole) -> (Action, XenSysctlReadconsole, Vec<u8>) {
    let (a, op) = sysctl(w, &XenSysctl::readconsole(&rc));
    let mut buf = vec![0u8; rc.count as usize];
    if rc.count > 0 && a == ret(Ok(0)) {
        guest::read(&mut w.mem, GuestPtr(rc.buffer), &mut buf).unwrap();
    }
    let out = op.u_readconsole();
    buf.truncate(out.count as usize);
    (a, out, buf)
}

#[test]
fn readconsole_copies_the_ring_and_clears() {
    let mut w = World::new(true);
    w.platform.conring.push(b"(HV) hello\n");
    let buffer = MEM_BASE + 0x1000;
    let rc = XenSysctlReadconsole { count: 100, buffer, ..Default::default() };
    let (a, out, text) = readconsole(&mut w, rc);
    assert_eq!(a, ret(Ok(0)));
    assert_eq!(text, b"(HV) hello\n");
    assert_eq!(out.index, 11);
    w.platform.conring.push(b"more");
    let (_, _, text) = readconsole(&mut w, XenSysctlReadconsole { incremental: 1, index: 11, ..rc });
    assert_eq!(text, b"more", "incremental");
    let (_, _, text) = readconsole(&mut w, XenSysctlReadconsole { clear: 1, ..rc });
    assert_eq!(text, b"(HV) hello\nmore");
    assert!(w.platform.conring.is_empty(), "cleared");
}

#[test]
fn readconsole_into_bad_memory_is_efault_and_keeps_the_ring() {
    let mut w = World::new(true);
    w.platform.conring.push(b"text");
    for buffer in [0xffff_8000_0000_0000, 0x10, MEM_BASE + 0x1_0000 - 2] {
        let rc = XenSysctlReadconsole { count: 100, buffer, clear: 1, ..Default::default() };
        assert_eq!(sysctl(&mut w, &XenSysctl::readconsole(&rc)).0, ret(Err(Errno::EFAULT)), "{buffer:#x}");
        assert_eq!(w.platform.conring.len(), 4);
    }
}

#[test]
fn hypercall_init_writes_the_page_into_a_frame_of_the_domain() {
    use crate::hypercall::testing::OTHER_FRAMES;
    use crate::hypercall::Platform;
    use crate::mm::pagetype::GuestFrames;
    let mut w = World::new(true);
    let frame = OTHER_FRAMES.start; // domain 7's
    assert_eq!(domctl(&mut w, &XenDomctl::hypercall_init(7, frame)).0, ret(Ok(0)));
    let mut page = [0u8; 4096];
    abi::hypercall_page::write_hypercall_page(&mut page);
    let words = w.platform.mem.entries(frame);
    assert_eq!(words[0].to_le_bytes(), page[..8], "entry 0 written");
    assert!(w.platform.frames.can_release(frame), "no reference left behind");
    assert_eq!(domctl(&mut w, &XenDomctl::hypercall_init(7, 3)).0, ret(Err(Errno::EINVAL)), "the hypervisor's frame");
    assert_eq!(domctl(&mut w, &XenDomctl::hypercall_init(40, frame)).0, ret(Err(Errno::ESRCH)));
    // A page table of the domain cannot be written.
    w.platform.page_types(&mut |pt| pt.pin(7, frame + 1, crate::mm::pagetype::Level::L1).unwrap());
    assert_eq!(domctl(&mut w, &XenDomctl::hypercall_init(7, frame + 1)).0, ret(Err(Errno::EPERM)));
}

fn context(l4: u64) -> abi::arch::VcpuGuestContext {
    let mut c = abi::arch::VcpuGuestContext::zeroed();
    c.flags = abi::arch::VGCF_IN_KERNEL | abi::arch::VGCF_ONLINE;
    c.user_regs.rip = 0xffff_ffff_8000_1000;
    c.user_regs.rsp = 0xffff_ffff_8040_0000;
    c.user_regs.rsi = 0xffff_ffff_8030_0000;
    c.user_regs.cs = 0xe033;
    c.user_regs.ss = 0xe02b;
    c.user_regs.rflags = 0x200 | (3 << 12);
    c.kernel_ss = 0xe02b;
    c.kernel_sp = 0xffff_ffff_8040_0000;
    c.ctrlreg[3] = l4 << 12;
    c.event_callback_eip = 0xffff_ffff_8000_2000;
    c
}

fn setctx(w: &mut World, dom: u16, c: &abi::arch::VcpuGuestContext) -> Action {
    let at = MEM_BASE + 0x2000;
    guest::write_obj(&mut w.mem, GuestPtr(at), c).unwrap();
    domctl(w, &XenDomctl::setvcpucontext(dom, 0, at)).0
}

#[test]
fn setvcpucontext_installs_a_checked_context_and_getvcpucontext_reads_it_back() {
    use crate::hypercall::testing::OTHER_FRAMES;
    let mut w = World::new(true);
    let l4 = OTHER_FRAMES.start;
    let out = MEM_BASE + 0x4000;
    assert_eq!(domctl(&mut w, &XenDomctl::getvcpucontext(7, 0, out)).0, ret(Err(Errno::ENODATA)), "never set");
    assert_eq!(setctx(&mut w, 7, &context(l4)), ret(Ok(0)));
    assert_eq!(w.platform.frames.types(l4).page_type(), crate::mm::pagetype::PageType::L4, "the base holds an L4 type");
    assert_eq!(domctl(&mut w, &XenDomctl::getvcpucontext(7, 0, out)).0, ret(Ok(0)));
    let got: abi::arch::VcpuGuestContext = guest::read_obj(&mut w.mem, GuestPtr(out)).unwrap();
    assert_eq!(
        (got.user_regs.rip, got.user_regs.rsi, got.ctrlreg[3]),
        (0xffff_ffff_8000_1000, 0xffff_ffff_8030_0000, l4 << 12)
    );
    assert_eq!(got.user_regs.rflags & (3 << 12), 0, "IOPL is not the guest's to set");
    assert_eq!(got.event_callback_eip, 0xffff_ffff_8000_2000);
}

#[test]
fn setvcpucontext_refusals() {
    use crate::hypercall::testing::OTHER_FRAMES;
    let mut w = World::new(true);
    let l4 = OTHER_FRAMES.start;
    let bad = |f: fn(&mut abi::arch::VcpuGuestContext)| {
        let mut c = context(l4);
        f(&mut c);
        c
    };
    for (what, c) in [
        ("non-canonical rip", bad(|c| c.user_regs.rip = 1 << 63)),
        ("non-canonical callback", bad(|c| c.failsafe_callback_eip = 0x8000_0000_0000_0000)),
        ("a ring-0 code selector", bad(|c| c.user_regs.cs = 0xe008)),
        ("an LDT", bad(|c| c.ldt_ents = 1)),
        ("GDT frames", bad(|c| c.gdt_ents = 16)),
        ("no page tables", bad(|c| c.ctrlreg[3] = 0)),
        ("a data selector from a GDT", bad(|c| c.user_regs.ds = 0x10)),
        ("not an L4 of the domain", bad(|c| c.ctrlreg[3] = 3 << 12)),
    ] {
        assert_eq!(setctx(&mut w, 7, &c), ret(Err(Errno::EINVAL)), "{what}");
    }
    assert_eq!(setctx(&mut w, 0, &context(l4)), ret(Err(Errno::EINVAL)), "itself");
    assert_eq!(setctx(&mut w, 40, &context(l4)), ret(Err(Errno::ESRCH)));
    assert_eq!(domctl(&mut w, &XenDomctl::setvcpucontext(7, 0, 0x10)).0, ret(Err(Errno::EFAULT)));
    assert_eq!(domctl(&mut w, &XenDomctl::setvcpucontext(7, 1, MEM_BASE)).0, ret(Err(Errno::EINVAL)), "vCPU 1");
    assert!(w.platform.contexts.is_empty());
}

#[test]
fn scheduler_op_sets_and_reads_credit_parameters() {
    let mut w = World::new(true);
    let c = |weight, cap| XenDomctlSchedCredit { weight, cap };
    let (a, op) = domctl(&mut w, &XenDomctl::sched_credit(7, XEN_DOMCTL_SCHEDOP_GETINFO, c(0, 0)));
    assert_eq!(a, ret(Ok(0)));
    assert_eq!(op.u_scheduler_op().credit(), c(256, 0), "defaults");
    assert_eq!(domctl(&mut w, &XenDomctl::sched_credit(7, XEN_DOMCTL_SCHEDOP_PUTINFO, c(1024, 50))).0, ret(Ok(0)));
    assert_eq!(domctl(&mut w, &XenDomctl::sched_credit(7, XEN_DOMCTL_SCHEDOP_PUTINFO, c(0, u16::MAX))).0, ret(Ok(0)));
    let (_, op) = domctl(&mut w, &XenDomctl::sched_credit(7, XEN_DOMCTL_SCHEDOP_GETINFO, c(0, 0)));
    assert_eq!(op.u_scheduler_op().credit(), c(1024, 50), "0 and 0xffff leave them");
    assert_eq!(
        domctl(&mut w, &XenDomctl::sched_credit(7, XEN_DOMCTL_SCHEDOP_PUTINFO, c(1, 101))).0,
        ret(Err(Errno::EINVAL))
    );
    let mut other = XenDomctl::sched_credit(7, XEN_DOMCTL_SCHEDOP_GETINFO, c(0, 0));
    let mut s = other.u_scheduler_op();
    s.sched_id = XEN_SCHEDULER_CREDIT2;
    other.set_u_scheduler_op(&s);
    assert_eq!(domctl(&mut w, &other).0, ret(Err(Errno::EINVAL)), "not the running scheduler");
    assert_eq!(
        domctl(&mut w, &XenDomctl::sched_credit(40, XEN_DOMCTL_SCHEDOP_GETINFO, c(0, 0))).0,
        ret(Err(Errno::ESRCH))
    );
}
