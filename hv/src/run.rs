//! Running guests: the running domain, and what happens on each entry
//! from it (a hypercall or an exception).

use crate::arch::{cpu, serial, traps};
use crate::console;
use crate::setup::FRAMES;
use abi::arch::SegmentBase;
use abi::errno::Errno;
use abi::sched::ShutdownReason;
use abi::shared_info::SharedInfo;
use hv::domain::{Domain, Stopped};
use hv::exit::Exit;
use hv::guest::{Fault, GuestMemory, GuestPtr};
use hv::hypercall::{self, Action, Ctx, Platform};
use hv::layout::{DIRECTMAP_START, PAGE_SIZE};
use hv::mm::frame::{DomId, FrameUse};
use hv::mm::pagetype::{GuestFrames, PageTypes};
use hv::mm::Mfn;
use hv::regs::{Regs, SYSCALL_VECTOR};
use hv::sync::SpinLock;
use hv::trap::{self, Exception};

/// A domain ready to run on this CPU.
#[derive(Debug)]
pub struct Guest {
    /// The domain.
    pub domain: Domain,
    /// Its shared-info frame.
    pub shared_info: Mfn,
}

/// The guest running on this CPU.
static CURRENT: SpinLock<Option<Guest>> = SpinLock::new(None);

/// The shared-info page of frame `mfn`, through the direct map.
fn shared_info(mfn: Mfn) -> *mut SharedInfo {
    (DIRECTMAP_START + mfn * PAGE_SIZE) as *mut SharedInfo
}

/// Starts `guest` with registers `regs` on page tables `cr3`.
pub fn start(guest: Guest, regs: &Regs) -> ! {
    let cr3 = guest.domain.vcpu.cr3();
    log::info!("d{}: starting at rip {:#x}", guest.domain.id, regs.rip);
    *CURRENT.lock() = Some(guest);
    // SAFETY: the builder made `cr3` a complete address space whose
    // hypervisor slots are the hypervisor's own, so this code, its stack and
    // the direct map stay mapped.
    unsafe { cpu::write_cr3(cr3) };
    traps::resume_guest(regs)
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

/// The hardware, as hypercall handlers see it.
struct Machine;

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
}

impl Platform for Machine {
    fn console_write(&mut self, domain: DomId, bytes: &[u8]) {
        // Dom0 writes straight to the console, as on Xen.
        let _ = domain;
        serial::write_bytes(bytes);
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
        match which {
            // SAFETY: the handler checked the value is canonical; these MSRs
            // only affect guest segments, which the hypervisor does not use.
            SegmentBase::Fs => unsafe { cpu::wrmsr(cpu::MSR_FS_BASE, value) },
            // SAFETY: as above.
            SegmentBase::GsKernel => unsafe { cpu::wrmsr(cpu::MSR_GS_BASE, value) },
            // SAFETY: as above.
            SegmentBase::GsUser => unsafe { cpu::wrmsr(cpu::MSR_SHADOW_GS_BASE, value) },
            // SAFETY: the handler allows only the null and flat data selectors.
            SegmentBase::GsUserSel => unsafe { cpu::load_user_gs_selector(value as u16) },
        }
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
        crate::arch::gdt::load_guest_entries(descriptors);
    }

    fn set_gdt_entry(&mut self, index: usize, descriptor: u64) {
        crate::arch::gdt::set_guest_entry(index, descriptor);
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
}

/// Handles an entry from the running guest; on return the frame says where
/// it resumes.
pub fn from_guest(regs: &mut Regs) {
    handle(regs);
    // The one way back to a guest is `iretq`, which faults in the
    // hypervisor on a non-canonical `rip`. Handlers validate every address
    // they install, but emulation steps `rip` past an instruction, which
    // can cross the top of the lower half: never let that reach `iretq`.
    if !hv::layout::is_canonical(regs.rip) {
        let mut current = CURRENT.lock();
        if let Some(guest) = current.as_mut() {
            crash(guest, regs, "resumed at a non-canonical rip");
        }
    }
}

fn handle(regs: &mut Regs) {
    let mut current = CURRENT.lock();
    let Some(guest) = current.as_mut() else {
        console::emergency(format_args!(
            "FATAL: {} from ring 3 at rip {:#x} with no guest running\n",
            traps::vector_name(regs.vector),
            regs.rip
        ));
        traps::stop_with(Exit::HypervisorFault)
    };
    // SAFETY: the shared-info frame belongs to this domain for its whole
    // life and the hypervisor is the only other user; nothing else holds a
    // reference while the guest is not running.
    let vinfo = unsafe { &mut (*shared_info(guest.shared_info)).vcpu_info[0] };
    if regs.vector == SYSCALL_VECTOR && !guest.domain.vcpu.kernel_mode {
        if let Err(c) = trap::user_syscall(regs, &mut guest.domain.vcpu, vinfo, &mut CurrentSpace, &mut Machine) {
            report_crash(guest, c);
        }
        return;
    }
    if regs.vector == SYSCALL_VECTOR {
        let mut ctx = Ctx { regs, domain: &mut guest.domain, vinfo, mem: &mut CurrentSpace, platform: &mut Machine };
        let action = hypercall::dispatch(&mut ctx);
        match hypercall::complete(regs, action) {
            None => {}
            Some(Action::Shutdown(reason)) => shut_down(guest, reason),
            Some(Action::Crash(why)) => crash(guest, regs, why),
            // complete() passes on only shutdowns and crashes; should that
            // ever change, stopping the guest is safe where a panic is not.
            Some(other) => {
                log::error!("d{}: unexpected hypercall outcome {other:?}", guest.domain.id);
                crash(guest, regs, "unexpected hypercall outcome")
            }
        }
        return;
    }
    let Ok(vector) = u8::try_from(regs.vector) else { return };
    if vector >= 32 {
        // A spurious interrupt while the guest ran (all lines are masked).
        return;
    }
    let exc = Exception { vector, cr2: cpu::read_cr2() };
    if let Err(c) = trap::guest_exception(regs, &mut guest.domain.vcpu, vinfo, &mut CurrentSpace, exc, &mut Machine) {
        report_crash(guest, c);
    }
}

fn report_crash(guest: &mut Guest, c: trap::Crash) -> ! {
    log::error!(
        "d{}: crashed: {} (vector {}) at rip {:#x}: {}",
        guest.domain.id,
        traps::vector_name(c.vector),
        c.vector,
        c.rip,
        c.reason
    );
    stop(guest, Stopped::Crashed)
}

fn crash(guest: &mut Guest, regs: &Regs, why: &str) -> ! {
    log::error!("d{}: crashed at rip {:#x}: {why}", guest.domain.id, regs.rip);
    stop(guest, Stopped::Crashed)
}

fn shut_down(guest: &mut Guest, reason: ShutdownReason) -> ! {
    log::info!("d{}: shut down ({reason:?})", guest.domain.id);
    stop(guest, Stopped::Shutdown(reason))
}

/// Stops a domain. Dom0 is the only domain so far: when it stops, so
/// does the machine, with a status that says how.
fn stop(guest: &mut Guest, how: Stopped) -> ! {
    // A code recorded with SCHEDOP_shutdown_code replaces the reason.
    let how = match (how, guest.domain.shutdown_code) {
        (Stopped::Shutdown(_) | Stopped::Crashed, Some(code)) => Stopped::Shutdown(code),
        _ => how,
    };
    guest.domain.stopped = Some(how);
    let exit = match how {
        Stopped::Shutdown(ShutdownReason::Poweroff) => Exit::PowerOff,
        Stopped::Shutdown(ShutdownReason::Reboot) => Exit::Dom0Reboot,
        Stopped::Shutdown(_) | Stopped::Crashed => Exit::Dom0Crash,
    };
    traps::stop_with(exit)
}
