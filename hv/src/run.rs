//! Running guests: what happens on each entry from the running domain (a
//! hypercall, an exception, the timer interrupt), and sharing the CPU
//! among domains.
//!
//! An entry is handled in two steps. [`handle`] works on the running
//! domain alone, holding its slot, and says what should happen next
//! ([`Next`]). [`after`] then acts on every domain: it wakes vCPUs whose
//! events arrived, fires expired timers, asks the scheduler what runs next
//! and switches to it (or idles), re-arms the timer interrupt, and finally
//! delivers a due event upcall to whichever vCPU is about to run.

use crate::arch::{apic, cpu, gdt, serial, traps};
use crate::console;
use crate::domains::{self, AllEvents, Slot, DOMAINS, EVENTS, SCHED, SIGNALS, TIMERS};
use crate::setup::FRAMES;
use abi::arch::SegmentBase;
use abi::errno::Errno;
use abi::sched::{ShutdownReason, VIRQ_DOM_EXC, VIRQ_TIMER};
use abi::shared_info::VcpuInfo;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use hv::conring::ReadOut;
use hv::domain::DomainInfo;
use hv::domain::Stopped;
use hv::event::Signal;
use hv::exit::Exit;
use hv::guest::{Fault, GuestMemory, GuestPtr};
use hv::hypercall::control::{NewDomain, VcpuInit};
use hv::hypercall::{self, Action, Ctx, Platform};
use hv::hypercall::{ConsoleSink, PhysInfo};
use hv::mm::frame::{DomId, FrameUse};
use hv::mm::pagetype::{GuestFrames, PageTypes};
use hv::mm::Mfn;
use hv::regs::{Regs, SYSCALL_VECTOR};
use hv::sched::{VcpuId, VcpuState, NO_DEADLINE};
use hv::sync::SpinLock;
use hv::trap::{self, Exception};

/// No domain is on the CPU.
const NONE: u32 = u32::MAX;

/// The domain on the CPU ([`NONE`] while idle).
static CURRENT: AtomicU32 = AtomicU32::new(NONE);
/// Whether dom0 exists: the machine stops with it. Without one, the
/// machine powers off when the last domain stops.
static HAVE_DOM0: AtomicBool = AtomicBool::new(false);
/// A timer deadline changed since the timer interrupt was armed.
static TIMERS_CHANGED: AtomicBool = AtomicBool::new(false);
/// When the scheduler's last decision ends (system time; `u64::MAX`: only
/// an event changes it).
static DECISION_ENDS: AtomicU64 = AtomicU64::new(u64::MAX);
/// Domains the control domain asked to shut down (`SCHEDOP_remote_shutdown`),
/// stopped on the way out of its entry.
static REMOTE_STOPS: SpinLock<[Option<ShutdownReason>; domains::MAX_DOMAINS]> =
    SpinLock::new([None; domains::MAX_DOMAINS]);
/// A control operation (unpausing a domain) may have changed what should
/// run.
static RESCHEDULE: AtomicBool = AtomicBool::new(false);
/// Signals were queued since [`SIGNALS`] was last drained.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

/// Whether each domain's console output is at the start of a line.
static AT_LINE_START: [AtomicBool; domains::MAX_DOMAINS] = [const { AtomicBool::new(true) }; domains::MAX_DOMAINS];

/// vCPU 0 of `dom`, as the scheduler names it.
fn vcpu0(dom: DomId) -> VcpuId {
    VcpuId::new(dom, 0)
}

/// Starts running the domains in [`DOMAINS`]: the scheduler picks the
/// first. `dom0` says whether domain 0 is among them.
pub fn start(dom0: bool) -> ! {
    HAVE_DOM0.store(dom0, Ordering::Relaxed);
    let mut regs = Regs::default();
    schedule(&mut regs, true);
    let next = deliver_upcall(&mut regs);
    if next != Next::Resume {
        after(&mut regs, CURRENT.load(Ordering::Relaxed) as DomId, next);
    }
    let cur = CURRENT.load(Ordering::Relaxed);
    log::info!("d{cur}: starting at rip {:#x}", regs.rip);
    traps::resume_guest(&regs)
}

/// The running guest's address space, through its own page tables.
struct CurrentSpace;

impl GuestMemory for CurrentSpace {
    fn read_raw(&mut self, src: GuestPtr, buf: &mut [u8]) -> Result<(), Fault> {
        // SAFETY: `buf` is ours; the guest range was checked by `hv::guest`.
        unsafe { traps::copy_guest(buf.as_mut_ptr(), src.0 as *const u8, buf.len()) }
            .map_err(|()| Fault { addr: src.0 })
    }

    fn write_raw(&mut self, dst: GuestPtr, data: &[u8]) -> Result<(), Fault> {
        // SAFETY: as above, the other way round.
        unsafe { traps::copy_guest(dst.0 as *mut u8, data.as_ptr(), data.len()) }.map_err(|()| Fault { addr: dst.0 })
    }
}

/// The hardware, as hypercall handlers see it, on behalf of domain `dom`.
struct Machine {
    dom: DomId,
}

impl hv::ioport::PortBus for Machine {
    fn read(&mut self, port: u16, size: u8) -> u32 {
        cpu::port_in(port, size)
    }

    fn write(&mut self, port: u16, size: u8, value: u32) {
        cpu::port_out(port, size, value);
    }
}

impl trap::GuestCpu for Machine {
    fn cpuid(&mut self, leaf: u32, subleaf: u32) -> [u32; 4] {
        let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
        [r.eax, r.ebx, r.ecx, r.edx]
    }

    fn switch_guest_mode(&mut self, cr3: u64) {
        cpu::swapgs();
        // SAFETY: `cr3` is a base the domain's page tables were validated
        // for, whose hypervisor slots are the hypervisor's own.
        unsafe { cpu::write_cr3(cr3) };
    }

    fn data_selectors(&mut self) -> trap::DataSelectors {
        let [ds, es, fs, gs] = cpu::data_selectors();
        trap::DataSelectors { ds, es, fs, gs }
    }
}

impl Platform for Machine {
    fn console_write(&mut self, domain: DomId, bytes: &[u8]) {
        // Dom0 writes straight to the console, as on Xen; other domains'
        // lines are prefixed with their id, as Xen's guest console logging
        // does.
        let Some(at_start) = AT_LINE_START.get(usize::from(domain)).filter(|_| domain != 0) else {
            console::output(bytes);
            return;
        };
        // A toolstack-created domain's console is dom0's to serve: its
        // lines go to the ring only (unless `domu_console=serial`).
        let quiet = domains::QUIET_CONSOLE.get(usize::from(domain)).is_some_and(|q| q.load(Ordering::Relaxed));
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            if at_start.load(Ordering::Relaxed) {
                console::guest_prefix(domain, quiet);
            }
            console::guest_output(line, quiet);
            at_start.store(line.ends_with(b"\n"), Ordering::Relaxed);
        }
    }

    fn console_read(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            match serial::read_byte() {
                Some(b) => buf[n] = b,
                None => break,
            }
            n += 1;
        }
        n
    }

    fn load_segment_base(&mut self, which: SegmentBase, value: u64) {
        load_segment_base(which, value);
    }

    fn page_types(&mut self, op: &mut dyn FnMut(&mut PageTypes<'_, '_, dyn GuestFrames>)) {
        crate::memory::with_page_types(|pt| op(pt));
    }

    fn load_cr3(&mut self, cr3: u64) {
        // SAFETY: the engine validated `cr3`'s L4 for the running domain,
        // with the hypervisor's own entries in its reserved slots.
        unsafe { cpu::write_cr3(cr3) };
    }

    fn set_m2p(&mut self, mfn: Mfn, pfn: u64) {
        crate::memory::set_m2p(mfn, pfn);
    }

    fn load_gdt(&mut self, descriptors: &mut dyn Iterator<Item = u64>) {
        gdt::load_guest_entries(descriptors);
    }

    fn set_gdt_entry(&mut self, index: usize, descriptor: u64) {
        gdt::set_guest_entry(index, descriptor);
    }

    fn alloc_domain_frame(&mut self, dom: DomId) -> Option<Mfn> {
        let mfn = FRAMES.lock().as_mut()?.alloc(FrameUse::Domain(dom))?;
        // SAFETY: just allocated: nobody else has the frame. Scrubbing it
        // keeps one domain's (or the hypervisor's) data from another.
        unsafe { crate::memory::zero_frame(mfn) };
        crate::memory::set_m2p(mfn, crate::memory::INVALID_M2P_ENTRY);
        Some(mfn)
    }

    fn release_domain_frame(&mut self, dom: DomId, mfn: Mfn) -> Result<(), Errno> {
        {
            let mut frames = FRAMES.lock();
            let table = frames.as_mut().ok_or(Errno::EINVAL)?;
            if table.usage(mfn) != FrameUse::Domain(dom) || !table.can_release(mfn) {
                return Err(Errno::EINVAL);
            }
            table.free(mfn).map_err(|_| Errno::EINVAL)?;
        }
        crate::memory::set_m2p(mfn, crate::memory::INVALID_M2P_ENTRY);
        // The guest may still hold a stale translation of the frame it
        // unmapped; the frame's next owner must not share it.
        cpu::flush_tlb();
        Ok(())
    }

    fn m2p_frames(&mut self) -> (Mfn, u64) {
        crate::memory::m2p_frames()
    }

    fn max_mfn(&mut self) -> Mfn {
        FRAMES.lock().as_ref().map_or(0, |t| t.frames())
    }

    fn flush_tlb(&mut self, va: Option<u64>) {
        match va {
            Some(va) => cpu::invlpg(va),
            None => cpu::flush_tlb(),
        }
    }

    fn now(&mut self) -> u64 {
        crate::clock::now()
    }

    fn with_domains(&mut self, current: &mut VcpuInfo, op: &mut dyn FnMut(&mut dyn hv::event::Domains)) {
        let mut table = EVENTS.lock();
        op(&mut AllEvents::new(&mut table, Some((self.dom, current))));
    }

    fn notify(&mut self, signal: Signal) {
        // The running vCPU neither blocks nor polls: its upcall, if due,
        // is delivered on the way back to it.
        if signal.dom != self.dom {
            queue_signal(signal);
        }
    }

    fn set_timer(&mut self, deadline: Option<u64>) {
        if let Some(t) = TIMERS.lock().get_mut(usize::from(self.dom)) {
            t.singleshot = deadline;
        }
        TIMERS_CHANGED.store(true, Ordering::Relaxed);
    }

    fn physinfo(&mut self) -> PhysInfo {
        let (total_pages, free_pages, max_mfn) =
            FRAMES.lock().as_ref().map_or((0, 0, 0), |t| (t.stats().ram, t.stats().free, t.frames().saturating_sub(1)));
        PhysInfo { total_pages, free_pages, max_mfn, cpu_khz: crate::clock::tsc_khz() }
    }

    fn read_console(
        &mut self,
        incremental: Option<u32>,
        max: u32,
        clear: bool,
        sink: &mut ConsoleSink<'_>,
    ) -> Result<ReadOut, Errno> {
        console::CONRING.lock().read(incremental, max, clear, sink)
    }

    fn domain_info(&mut self, from: DomId, caller: &hv::domain::Domain) -> Option<DomainInfo> {
        (from..domains::id_limit() as DomId).find_map(|id| {
            if id == caller.id {
                Some(info_of(caller, self.shared_info_of(id)))
            } else {
                let guard = DOMAINS.get(usize::from(id))?.try_lock()?;
                guard.as_ref().map(|slot| info_of(&slot.domain, slot.shared_info))
            }
        })
    }

    fn create_domain(&mut self, new: &NewDomain) -> Result<DomId, Errno> {
        crate::lifecycle::create_empty(new)
    }

    fn destroy_domain(&mut self, dom: DomId) -> Result<(), Errno> {
        if !exists(dom) {
            return Err(Errno::ESRCH);
        }
        retire(dom);
        // The toolstack reports what it destroys; a cycle of creations
        // must not flood the console.
        destroy_domain(dom, log::Level::Debug);
        Ok(())
    }

    fn pause_domain(&mut self, dom: DomId) -> Result<(), Errno> {
        if !exists(dom) {
            return Err(Errno::ESRCH);
        }
        SCHED.lock().as_mut().ok_or(Errno::ESRCH)?.pause_domain(dom).map_err(|e| e.errno())?;
        Ok(())
    }

    fn unpause_domain(&mut self, dom: DomId) -> Result<(), Errno> {
        if !exists(dom) {
            return Err(Errno::ESRCH);
        }
        let preempt = SCHED.lock().as_mut().ok_or(Errno::ESRCH)?.unpause_domain(dom).map_err(|e| e.errno())?;
        if preempt {
            RESCHEDULE.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn set_max_pages(&mut self, dom: DomId, pages: u64) -> Result<(), Errno> {
        with_other(dom, |slot| slot.domain.max_pages = pages)
    }

    fn domain_pages(&mut self, dom: DomId) -> Result<(u64, u64), Errno> {
        with_other(dom, |slot| (slot.domain.nr_pages, slot.domain.max_pages))
    }

    fn set_domain_pages(&mut self, dom: DomId, nr_pages: u64) -> Result<(), Errno> {
        with_other(dom, |slot| slot.domain.nr_pages = nr_pages)
    }

    fn set_vcpu_context(&mut self, dom: DomId, init: &VcpuInit) -> Result<(), Errno> {
        let mut guard = DOMAINS.get(usize::from(dom)).and_then(|l| l.try_lock()).ok_or(Errno::ESRCH)?;
        let slot = guard.as_mut().ok_or(Errno::ESRCH)?;
        let v = &mut slot.domain.vcpu;
        crate::memory::with_page_types(|pt| {
            // The new bases' references first, so a refusal changes nothing.
            let (mut kernel, mut user) = (None, None);
            pt.new_baseptr(dom, &mut kernel, Some(init.kernel_table)).map_err(|_| Errno::EINVAL)?;
            if let Err(_e) = pt.new_baseptr(dom, &mut user, init.user_table) {
                let _ = pt.new_baseptr(dom, &mut kernel, None);
                return Err(Errno::EINVAL);
            }
            // Then the old state goes: bases and GDT (the context has none).
            let _ = pt.new_baseptr(dom, &mut v.kernel_table, None);
            let _ = pt.new_baseptr(dom, &mut v.user_table, None);
            for &mfn in &v.gdt_frames[..v.gdt_frame_count()] {
                pt.put_page_and_type(mfn);
            }
            (v.kernel_table, v.user_table) = (kernel, user);
            Ok(())
        })?;
        let kept = (v.kernel_table, v.user_table, v.vcpu_info_at);
        *v = init.vcpu.clone();
        (v.kernel_table, v.user_table, v.vcpu_info_at) = kept;
        slot.regs = init.regs;
        slot.selectors = init.selectors;
        // The builder wrote a fresh shared-info page: give it the time, as
        // Xen does when a vCPU is initialised.
        // SAFETY: the domain's own shared-info frame; it is not running, and
        // nothing else refers to the page while this handler runs.
        crate::clock::publish_to(unsafe { &mut *domains::shared_info_ptr(slot.shared_info) });
        drop(guard);
        if init.online && sched(|s| s.up(vcpu0(dom))) {
            RESCHEDULE.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn remote_shutdown(&mut self, dom: DomId, reason: ShutdownReason) -> Result<(), Errno> {
        if !exists(dom) {
            return Err(Errno::ESRCH);
        }
        // Stopping a domain touches every slot (the caller's is held now):
        // it happens on the way out of this entry.
        if let Some(slot) = REMOTE_STOPS.lock().get_mut(usize::from(dom)) {
            *slot = Some(reason);
        }
        RESCHEDULE.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn sched_params(&mut self, dom: DomId) -> Result<hv::sched::Params, Errno> {
        SCHED.lock().as_ref().ok_or(Errno::ESRCH)?.params(dom).map_err(|e| e.errno())
    }

    fn set_sched_params(&mut self, dom: DomId, params: hv::sched::Params) -> Result<(), Errno> {
        SCHED.lock().as_mut().ok_or(Errno::ESRCH)?.set_params(dom, params).map_err(|e| e.errno())
    }

    fn vcpu_context(&mut self, dom: DomId) -> Result<Option<abi::arch::VcpuGuestContext>, Errno> {
        with_other(dom, |slot| {
            let v = &slot.domain.vcpu;
            v.kernel_table.map(|_| hv::hypercall::control::context_of(v, &slot.regs, slot.selectors))
        })
    }

    fn place_vcpu_info(&mut self, mfn: Mfn, offset: u32, info: &VcpuInfo) {
        let at = Some((mfn, offset));
        if let Some(slot) = EVENTS.lock().get_mut(usize::from(self.dom)).filter(|s| s.live) {
            // SAFETY: the handler took a writable-type reference on `mfn`
            // for this domain and checked the `vcpu_info` fits in the page.
            unsafe { domains::vcpu_info_ptr(slot.shared_info, at).write(*info) };
            slot.vcpu_info_at = at;
        }
    }

    // ---- grant tables: hv::grant's machine side is crate::grants ----
    fn grant_root(&mut self, dom: DomId) -> Mfn {
        crate::grants::root(dom)
    }
    fn set_grant_root(&mut self, dom: DomId, root: Mfn) -> Result<(), Errno> {
        crate::grants::set_root(dom, root)
    }
    fn alloc_hv_frame(&mut self) -> Option<Mfn> {
        crate::grants::alloc_frame()
    }
    fn free_hv_frame(&mut self, mfn: Mfn) {
        crate::grants::free_frame(mfn)
    }
    fn hv_frame(&mut self, mfn: Mfn) -> &mut [u64; 512] {
        crate::grants::state_frame(self, mfn)
    }
    fn frame_load32(&mut self, mfn: Mfn, word: usize) -> u32 {
        crate::grants::load32(mfn, word)
    }
    fn frame_cmpxchg32(&mut self, mfn: Mfn, word: usize, old: u32, new: u32) -> Result<u32, u32> {
        crate::grants::cmpxchg32(mfn, word, old, new)
    }
    fn frame_and32(&mut self, mfn: Mfn, word: usize, mask: u32) {
        crate::grants::and32(mfn, word, mask)
    }
    fn copy_frame_bytes(&mut self, dst: Mfn, dst_off: usize, src: Mfn, src_off: usize, len: usize) {
        crate::grants::copy_bytes(dst, dst_off, src, src_off, len)
    }
    fn domain_exists(&mut self, dom: DomId) -> bool {
        crate::grants::domain_exists(dom)
    }
    fn reclaim_domain(&mut self, dom: DomId) {
        crate::grants::reclaim(dom)
    }
}

impl Machine {
    fn shared_info_of(&self, dom: DomId) -> Mfn {
        EVENTS.lock().get(usize::from(dom)).filter(|e| e.live).map_or(0, |e| e.shared_info)
    }
}

/// Runs `op` on domain `dom`'s slot: `-ESRCH` if there is no such domain.
/// For domains other than the running one, whose slot its entry holds:
/// asked for that one, this answers `-ESRCH` rather than deadlock.
fn with_other<R>(dom: DomId, op: impl FnOnce(&mut Slot) -> R) -> Result<R, Errno> {
    let mut guard = DOMAINS.get(usize::from(dom)).and_then(|l| l.try_lock()).ok_or(Errno::ESRCH)?;
    guard.as_deref_mut().map(op).ok_or(Errno::ESRCH)
}

/// Whether domain `dom` (not the running one) exists.
fn exists(dom: DomId) -> bool {
    with_other(dom, |_| ()).is_ok()
}

/// What the control domain learns about `d`.
fn info_of(d: &hv::domain::Domain, shared_info: Mfn) -> DomainInfo {
    let v = VcpuId::new(d.id, 0);
    let sched = SCHED.lock();
    let state = sched.as_ref().and_then(|s| s.state(v).ok());
    let paused = sched.as_ref().and_then(|s| s.is_paused(d.id).ok()).unwrap_or(false);
    let cpu_time_ns = sched.as_ref().and_then(|s| s.domain_cpu_time(d.id).ok()).unwrap_or(0);
    DomainInfo {
        id: d.id,
        tot_pages: d.nr_pages,
        max_pages: d.max_pages,
        shared_info,
        cpu_time_ns,
        vcpu_online: !matches!(state, Some(VcpuState::Offline) | None),
        paused,
        blocked: state == Some(VcpuState::Blocked),
        running: state == Some(VcpuState::Running),
        stopped: d.stopped,
        handle: d.handle,
    }
}

fn load_segment_base(which: SegmentBase, value: u64) {
    match which {
        // SAFETY: the value is canonical (checked by the handler or saved
        // from one); these MSRs only affect guest segments, which the
        // hypervisor does not use.
        SegmentBase::Fs => unsafe { cpu::wrmsr(cpu::MSR_FS_BASE, value) },
        // SAFETY: as above.
        SegmentBase::GsKernel => unsafe { cpu::wrmsr(cpu::MSR_GS_BASE, value) },
        // SAFETY: as above.
        SegmentBase::GsUser => unsafe { cpu::wrmsr(cpu::MSR_SHADOW_GS_BASE, value) },
        // SAFETY: the handler allows only the null and flat data selectors.
        SegmentBase::GsUserSel => unsafe { cpu::load_user_gs_selector(value as u16) },
    }
}

/// What the running domain's entry leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Back to it.
    Resume,
    /// The timer interrupt: timers and time slices may have ended.
    Tick,
    /// It yields the CPU.
    Yield,
    /// It waits for an event (block, or poll).
    Wait,
    /// It stopped.
    Stopped(Stopped),
}

/// Handles an entry from the running guest; on return the frame says where
/// to resume (possibly another guest).
pub fn from_guest(regs: &mut Regs) {
    let cur = CURRENT.load(Ordering::Relaxed);
    let next = match DomId::try_from(cur).ok().and_then(|d| DOMAINS.get(usize::from(d))) {
        Some(lock) => match lock.lock().as_mut() {
            Some(slot) => handle(regs, slot),
            None => no_guest(regs),
        },
        None => no_guest(regs),
    };
    let quiet = !TIMERS_CHANGED.load(Ordering::Relaxed)
        && !SIGNALLED.load(Ordering::Relaxed)
        && !RESCHEDULE.load(Ordering::Relaxed);
    if next == Next::Resume && quiet && hv::layout::is_canonical(regs.rip) {
        return;
    }
    after(regs, cur as DomId, next);
}

fn no_guest(regs: &Regs) -> ! {
    console::emergency(format_args!(
        "FATAL: {} from ring 3 at rip {:#x} with no guest running\n",
        traps::vector_name(regs.vector),
        regs.rip
    ));
    traps::stop_with(Exit::HypervisorFault)
}

/// The running domain's `vcpu_info`.
fn vcpu_info(slot: &Slot) -> &'static mut VcpuInfo {
    let at = slot.domain.vcpu.vcpu_info_at;
    // SAFETY: the frame belongs to this domain for its whole life (a
    // registered one holds a type reference) and the hypervisor is the only
    // other user; no guest runs while the hypervisor does, and the callers
    // drop the reference before the event code makes another.
    unsafe { &mut *domains::vcpu_info_ptr(slot.shared_info, at) }
}

/// The running domain's part of an entry. When the domain is to resume,
/// a due upcall is delivered here, while its slot is held.
fn handle(regs: &mut Regs, slot: &mut Slot) -> Next {
    match entry(regs, slot) {
        // Checked here first: this is every hypercall's path back.
        Next::Resume if !hv::event::two_level::upcall_due(vcpu_info(slot)) => Next::Resume,
        Next::Resume => upcall(regs, slot),
        other => other,
    }
}

/// Enters the domain in `slot` (on the CPU, its frame in `regs`) through
/// its event callback if an upcall is due.
fn upcall(regs: &mut Regs, slot: &mut Slot) -> Next {
    let vinfo = vcpu_info(slot);
    let dom = slot.domain.id;
    match trap::deliver_event(regs, &mut slot.domain.vcpu, vinfo, &mut CurrentSpace, &mut Machine { dom }) {
        Ok(_) => Next::Resume,
        Err(c) => report_crash(dom, c),
    }
}

/// What an entry from the running domain asks for.
fn entry(regs: &mut Regs, slot: &mut Slot) -> Next {
    let dom = slot.domain.id;
    let vinfo = vcpu_info(slot);
    if regs.vector == SYSCALL_VECTOR && !slot.domain.vcpu.kernel_mode {
        return match trap::user_syscall(regs, &mut slot.domain.vcpu, vinfo, &mut CurrentSpace, &mut Machine { dom }) {
            Ok(()) => Next::Resume,
            Err(c) => report_crash(dom, c),
        };
    }
    if regs.vector == SYSCALL_VECTOR {
        let mut machine = Machine { dom };
        let mut ctx = Ctx { regs, domain: &mut slot.domain, vinfo, mem: &mut CurrentSpace, platform: &mut machine };
        let action = hypercall::dispatch(&mut ctx);
        return match hypercall::complete(regs, action) {
            None => Next::Resume,
            Some(Action::Yield) => Next::Yield,
            Some(Action::Block | Action::Poll) => Next::Wait,
            Some(Action::Shutdown(reason)) => {
                log::info!("d{dom}: shut down ({reason:?})");
                Next::Stopped(Stopped::Shutdown(reason))
            }
            Some(Action::Crash(why)) => {
                log::error!("d{dom}: crashed at rip {:#x}: {why}", regs.rip);
                Next::Stopped(Stopped::Crashed)
            }
            // complete() passes on nothing else; should that change,
            // stopping the guest is safe where a panic is not.
            Some(other) => {
                log::error!("d{dom}: unexpected hypercall outcome {other:?}");
                Next::Stopped(Stopped::Crashed)
            }
        };
    }
    let Ok(vector) = u8::try_from(regs.vector) else { return Next::Resume };
    if vector == apic::TIMER_VECTOR {
        apic::eoi();
        return Next::Tick;
    }
    if vector >= 32 {
        // Spurious: the PIC's lines are masked, the APIC's spurious vector.
        return Next::Resume;
    }
    let exc = Exception { vector, cr2: cpu::read_cr2() };
    match trap::guest_exception(regs, &mut slot.domain.vcpu, vinfo, &mut CurrentSpace, exc, &mut Machine { dom }) {
        Ok(()) => Next::Resume,
        Err(c) => report_crash(dom, c),
    }
}

fn report_crash(dom: DomId, c: trap::Crash) -> Next {
    log::error!(
        "d{dom}: crashed: {} (vector {}) at rip {:#x}: {}",
        traps::vector_name(c.vector),
        c.vector,
        c.rip,
        c.reason
    );
    Next::Stopped(Stopped::Crashed)
}

/// Everything after the running domain's part: wakeups, timers, the
/// scheduler, and a due upcall. The vCPU switched to may crash on the way
/// back to it (taking its upcall, or resuming at a non-canonical `rip`),
/// and the next one too: each is handled in turn, in a loop, so however
/// many domains crash in a row the hypervisor stack does not grow.
fn after(regs: &mut Regs, mut cur: DomId, mut next: Next) {
    while let Some(follow_up) = settle(regs, cur, next) {
        (cur, next) = follow_up;
    }
}

/// One round of [`after`]: acts on `next` for domain `cur`, then on every
/// domain. Returns the domain now on the CPU and what it needs if it
/// cannot be resumed.
fn settle(regs: &mut Regs, cur: DomId, next: Next) -> Option<(DomId, Next)> {
    let mut resched = false;
    match next {
        Next::Resume => {}
        Next::Tick => resched = true,
        Next::Yield => resched = sched(|s| s.yield_(vcpu0(cur))),
        Next::Wait => {
            if let Some(Some(slot)) = DOMAINS.get(usize::from(cur)).map(|l| l.lock()).as_deref() {
                if let Some(p) = slot.domain.vcpu.poll {
                    TIMERS.lock()[usize::from(cur)].poll = p.deadline;
                    TIMERS_CHANGED.store(true, Ordering::Relaxed);
                }
            }
            resched = sched(|s| s.block(vcpu0(cur)));
        }
        Next::Stopped(how) => {
            stop_domain(cur, how);
            resched = true;
        }
    }
    if next == Next::Tick || TIMERS_CHANGED.load(Ordering::Relaxed) {
        resched |= fire_timers(crate::clock::now());
    }
    resched |= wake_signalled();
    if RESCHEDULE.swap(false, Ordering::Relaxed) {
        resched = true;
        // One request at a time: stopping a domain takes other locks.
        let mut from = 0;
        while let Some((dom, reason)) = take_remote_stop(from) {
            log::info!("d{dom}: shut down by the control domain ({reason:?})");
            stop_domain(dom, Stopped::Shutdown(reason));
            from = usize::from(dom) + 1;
        }
    }
    if resched || TIMERS_CHANGED.load(Ordering::Relaxed) {
        schedule(regs, resched);
        // The vCPU now on the CPU may be another, or have been woken by an
        // event: `handle` delivered the running one's upcall before this.
        let delivered = deliver_upcall(regs);
        if delivered != Next::Resume {
            return Some((CURRENT.load(Ordering::Relaxed) as DomId, delivered));
        }
    }
    // The one way back to a guest is `iretq`, which faults in the
    // hypervisor on a non-canonical `rip`. Handlers validate every address
    // they install, but emulation steps `rip` past an instruction, which
    // can cross the top of the lower half: never let that reach `iretq`.
    if !hv::layout::is_canonical(regs.rip) {
        let now = CURRENT.load(Ordering::Relaxed) as DomId;
        log::error!("d{now}: crashed at rip {:#x}: resumed at a non-canonical rip", regs.rip);
        return Some((now, Next::Stopped(Stopped::Crashed)));
    }
    None
}

/// Takes the first remote shutdown asked for a domain at or above `from`.
fn take_remote_stop(from: usize) -> Option<(DomId, ShutdownReason)> {
    let mut asked = REMOTE_STOPS.lock();
    let live = asked.get_mut(..domains::id_limit())?;
    let (dom, reason) = live.iter_mut().enumerate().skip(from).find_map(|(d, r)| Some((d, r.take()?)))?;
    Some((dom as DomId, reason))
}

/// Runs `op` on the scheduler; `false` if there is none.
fn sched(op: impl FnOnce(&mut hv::sched::Scheduler) -> Result<bool, hv::sched::SchedError>) -> bool {
    SCHED.lock().as_mut().is_some_and(|s| op(s).unwrap_or(false))
}

/// Wakes `dom`'s vCPU for a signal, if it waits for it. `true`: it should
/// preempt the running one.
fn wake_for(dom: DomId, signal: Option<Signal>) -> bool {
    let Some(lock) = DOMAINS.get(usize::from(dom)) else { return false };
    let wake = {
        let mut guard = lock.lock();
        let Some(slot) = guard.as_mut() else { return false };
        if slot.domain.stopped.is_some() {
            return false;
        }
        let vcpu = &mut slot.domain.vcpu;
        let polled = match (vcpu.poll, signal) {
            (Some(p), Some(s)) => s.upcall || p.ports().contains(&(s.port.get() as u16)),
            (Some(_), None) => true,
            (None, Some(s)) => s.upcall,
            // A poll's timeout, or lost signals: a spurious wakeup at worst.
            (None, None) => true,
        };
        if polled && vcpu.poll.take().is_some() {
            TIMERS.lock()[usize::from(dom)].poll = None;
        }
        polled
    };
    wake && sched(|s| s.wake(vcpu0(dom)))
}

/// Queues a wakeup for [`wake_signalled`].
fn queue_signal(signal: Signal) {
    SIGNALS.lock().push(signal);
    SIGNALLED.store(true, Ordering::Relaxed);
}

/// Acts on queued signals. `true`: a woken vCPU should preempt.
fn wake_signalled() -> bool {
    if !SIGNALLED.swap(false, Ordering::Relaxed) {
        return false;
    }
    let mut preempt = false;
    loop {
        let popped = {
            let mut q = SIGNALS.lock();
            match q.pop() {
                Some(s) => Some(s),
                None if q.overflowed => {
                    q.overflowed = false;
                    None
                }
                None => return preempt,
            }
        };
        match popped {
            Some(s) => preempt |= wake_for(s.dom, Some(s)),
            // Some signals were lost: wake every waiting vCPU (a spurious
            // wakeup, which the ABI allows).
            None => {
                for dom in 0..domains::id_limit() as DomId {
                    preempt |= wake_for(dom, None);
                }
            }
        }
    }
}

/// Fires every timer due by `now`: a single-shot timer raises the vCPU's
/// `VIRQ_TIMER`, a poll's timeout wakes it. `true`: a woken vCPU should
/// preempt.
fn fire_timers(now: u64) -> bool {
    let mut preempt = false;
    let mut from = 0;
    // One due domain at a time: acting on it takes other locks.
    while let Some((dom, shot, poll)) = take_due_timers(now, from) {
        if shot {
            raise_virq(dom, VIRQ_TIMER);
        }
        if poll {
            preempt |= wake_for(dom, None);
        }
        from = usize::from(dom) + 1;
    }
    preempt
}

/// Stops the timers due by `now` of the first domain at or above `from`
/// that has any: `(domain, single-shot fired, poll timed out)`.
fn take_due_timers(now: u64, from: usize) -> Option<(DomId, bool, bool)> {
    let mut timers = TIMERS.lock();
    timers.get_mut(..domains::id_limit())?.iter_mut().enumerate().skip(from).find_map(|(dom, t)| {
        let shot = t.singleshot.take_if(|d| *d <= now).is_some();
        let poll = t.poll.take_if(|d| *d <= now).is_some();
        (shot || poll).then_some((dom as DomId, shot, poll))
    })
}

/// Raises `virq` in `dom` (queueing the wakeup).
fn raise_virq(dom: DomId, virq: u32) {
    let signal = {
        let mut table = EVENTS.lock();
        let mut all = AllEvents::new(&mut table, None);
        hv::event::Domains::events(&mut all, dom).and_then(|ev| ev.channels.raise_virq(ev.state, virq, 0))
    };
    if let Some(s) = signal {
        queue_signal(s);
    }
}

/// The earliest timer deadline of any domain.
fn next_timer() -> Option<u64> {
    TIMERS.lock().get(..domains::id_limit())?.iter().filter_map(domains::Timers::next).min()
}

/// Asks the scheduler what runs next, switches to it (idling until
/// something can run), and arms the timer interrupt for the next decision
/// or timer. With `decide` false only the timer is re-armed, for the
/// decision already taken.
fn schedule(regs: &mut Regs, decide: bool) {
    if decide {
        loop {
            let now = crate::clock::now();
            let Some(d) = SCHED.lock().as_mut().map(|s| s.schedule(now)) else { break };
            let end = if d.slice_ns == NO_DEADLINE { u64::MAX } else { now.saturating_add(d.slice_ns) };
            DECISION_ENDS.store(end, Ordering::Relaxed);
            match d.next {
                Some(v) => {
                    if u32::from(v.dom) != CURRENT.load(Ordering::Relaxed) {
                        switch_to(regs, v.dom);
                    }
                    break;
                }
                None => idle(regs),
            }
        }
    }
    TIMERS_CHANGED.store(false, Ordering::Relaxed);
    arm_timer();
}

/// Arms the timer interrupt for the earlier of the end of the scheduler's
/// decision and the next guest timer (or stops it if there is neither).
fn arm_timer() {
    let deadline = next_timer().unwrap_or(u64::MAX).min(DECISION_ENDS.load(Ordering::Relaxed));
    if deadline == u64::MAX {
        apic::disarm();
    } else {
        apic::arm(deadline.saturating_sub(crate::clock::now()));
    }
}

/// Nothing can run: puts the running domain (if any) aside and halts
/// until an interrupt, handling timers and wakeups, until a vCPU woke or
/// the scheduler's decision ended (left for the caller to decide again).
fn idle(regs: &mut Regs) {
    save_current(regs);
    loop {
        arm_timer();
        cpu::wait_for_interrupt();
        let now = crate::clock::now();
        let woke = fire_timers(now) | wake_signalled();
        if woke || now >= DECISION_ENDS.load(Ordering::Relaxed) {
            return;
        }
    }
}

/// Saves the running domain's registers and selectors into its slot;
/// afterwards no domain is current.
fn save_current(regs: &Regs) {
    let cur = CURRENT.swap(NONE, Ordering::Relaxed);
    if let Some(lock) = DomId::try_from(cur).ok().and_then(|d| DOMAINS.get(usize::from(d))) {
        if let Some(slot) = lock.lock().as_mut() {
            slot.regs = *regs;
            slot.selectors = cpu::data_selectors();
        }
    }
}

/// Puts the running domain aside and loads `to`'s state into `regs` and
/// the CPU.
fn switch_to(regs: &mut Regs, to: DomId) {
    save_current(regs);
    let Some(lock) = DOMAINS.get(usize::from(to)) else { return };
    let guard = lock.lock();
    let Some(slot) = guard.as_ref() else { return };
    *regs = slot.regs;
    let v = &slot.domain.vcpu;
    let cr3 = if v.kernel_mode { v.cr3() } else { v.user_cr3().unwrap_or(v.cr3()) };
    // SAFETY: the domain's current base, validated by the page-type engine,
    // with the hypervisor's own entries in its reserved slots.
    unsafe { cpu::write_cr3(cr3) };
    // Guest mappings may be global: none may outlive the switch.
    cpu::flush_tlb();
    let frames = &v.gdt_frames[..v.gdt_entries.div_ceil(512) as usize];
    let mut descriptors = frames
        .iter()
        .flat_map(|&mfn| {
            // SAFETY: the GDT frames hold segment-descriptor type references,
            // so their contents are checked descriptors only the hypervisor
            // changes.
            unsafe { &*crate::memory::frame_ptr(mfn).cast::<[u64; 512]>() }.iter()
        })
        .take(v.gdt_entries as usize)
        .map(|&d| hv::descriptor::check_descriptor(d).unwrap_or(0));
    gdt::load_guest_entries(&mut descriptors);
    // Selectors after the GDT they may refer to; loading one resets its
    // base, so the bases come last.
    cpu::load_data_selectors(slot.selectors);
    load_segment_base(SegmentBase::Fs, v.fs_base);
    let (active, shadow) =
        if v.kernel_mode { (v.gs_base_kernel, v.gs_base_user) } else { (v.gs_base_user, v.gs_base_kernel) };
    load_segment_base(SegmentBase::GsKernel, active);
    load_segment_base(SegmentBase::GsUser, shadow);
    let info = vcpu_info(slot);
    crate::clock::publish_vcpu(&mut info.time);
    CURRENT.store(u32::from(to), Ordering::Relaxed);
}

/// Delivers a due event upcall to the running vCPU (if any): what that
/// leads to for it.
fn deliver_upcall(regs: &mut Regs) -> Next {
    let cur = CURRENT.load(Ordering::Relaxed);
    let Some(lock) = DomId::try_from(cur).ok().and_then(|d| DOMAINS.get(usize::from(d))) else { return Next::Resume };
    let next = match lock.lock().as_mut() {
        Some(slot) => upcall(regs, slot),
        None => Next::Resume,
    };
    next
}

/// Takes domain `dom` out of service: out of the scheduler, its timers
/// stopped, its ports closed (peers see them unbound), and dom0 told
/// through `VIRQ_DOM_EXC`.
fn retire(dom: DomId) {
    sched(|s| s.remove_domain(dom));
    TIMERS.lock()[usize::from(dom)] = domains::Timers::default();
    let channels = {
        let mut table = EVENTS.lock();
        hv::event::close_all(&mut AllEvents::new(&mut table, None), dom);
        table.get_mut(usize::from(dom)).and_then(|e| {
            e.live = false;
            e.channels.take()
        })
    };
    // Its port table's frames go back (outside the lock).
    drop(channels);
    raise_virq(0, VIRQ_DOM_EXC);
}

/// Destroys domain `dom` (not running, [`retire`]d): drops every page
/// reference it holds and frees its frames, so its memory is free again.
/// Frames something else still references (another domain's mapping)
/// stay allocated, with a warning, and the id is not given out again.
fn destroy_domain(dom: DomId, level: log::Level) {
    let Some(mut slot) = DOMAINS.get(usize::from(dom)).and_then(|l| l.lock().take()) else { return };
    // Its grant mappings and table first, while its page tables stand.
    hv::grant::release_domain(&mut Machine { dom }, dom);
    let slot_ref: &mut Slot = &mut slot;
    let still_used = crate::memory::with_page_types(|pt| slot_ref.domain.release_pages(pt, slot_ref.shared_info));
    let (freed, _) = crate::memory::free_unreferenced(dom);
    if let Some(q) = domains::QUIET_CONSOLE.get(usize::from(dom)) {
        q.store(false, Ordering::Relaxed);
    }
    if let Some(a) = AT_LINE_START.get(usize::from(dom)) {
        a.store(true, Ordering::Relaxed);
    }
    if still_used > 0 {
        if let Some(z) = domains::ZOMBIES.get(usize::from(dom)) {
            z.store(true, Ordering::Relaxed);
        }
        log::warn!("d{dom}: destroyed; {freed} frames returned, {still_used} still referenced and kept");
    } else {
        log::log!(level, "d{dom}: destroyed; {freed} frames returned");
    }
    domains::note_removed();
}

/// Stops domain `dom`: out of the scheduler, its ports closed, dom0 told
/// through `VIRQ_DOM_EXC`. Dom0 stopping stops the machine, with a status
/// that says how; so does the last domain when there is no dom0.
fn stop_domain(dom: DomId, how: Stopped) {
    let Some(lock) = DOMAINS.get(usize::from(dom)) else { return };
    let (how, managed) = {
        let mut guard = lock.lock();
        let Some(slot) = guard.as_mut() else { return };
        // A code recorded with SCHEDOP_shutdown_code replaces the reason.
        let how = match (how, slot.domain.shutdown_code) {
            (Stopped::Shutdown(_) | Stopped::Crashed, Some(code)) => Stopped::Shutdown(code),
            _ => how,
        };
        slot.domain.stopped = Some(how);
        slot.domain.vcpu.poll = None;
        (how, slot.managed)
    };
    if dom == 0 && HAVE_DOM0.load(Ordering::Relaxed) {
        let exit = match how {
            Stopped::Shutdown(ShutdownReason::Poweroff) => Exit::PowerOff,
            Stopped::Shutdown(ShutdownReason::Reboot) => Exit::Dom0Reboot,
            Stopped::Shutdown(_) | Stopped::Crashed => Exit::Dom0Crash,
        };
        traps::stop_with(exit)
    }
    retire(dom);
    if CURRENT.load(Ordering::Relaxed) == u32::from(dom) {
        CURRENT.store(NONE, Ordering::Relaxed);
        // Its page tables are about to be freed: run on the hypervisor's.
        // SAFETY: the idle L4 maps the hypervisor and nothing else.
        unsafe { cpu::write_cr3(crate::arch::paging::idle_l4_mfn() << 12) };
    }
    // A domain the toolstack created waits, shut down, for the toolstack
    // to apply its on_poweroff/on_crash policy (getdomaininfo shows how it
    // stopped). A boot-time domU has no toolstack: it is destroyed and its
    // memory returned.
    if !managed {
        destroy_domain(dom, log::Level::Info);
    }
    let running = DOMAINS.iter().filter(|l| l.lock().as_ref().is_some_and(|s| s.domain.stopped.is_none())).count();
    if running == 0 {
        log::info!("all domains have stopped");
        if let Some(t) = FRAMES.lock().as_ref() {
            crate::setup::summarize(&t.stats());
        }
        traps::stop_with(Exit::PowerOff)
    }
}
