//! Start of day on the boot CPU: from the boot stub to a running system.

use crate::arch::{self, traps::stop_with};
use crate::console;
use crate::domains::{self, Slot, SCHED};
use crate::memory::FrameBox;
use core::fmt;
use hv::bootmod;
use hv::build::{self, MachineFrames, PvDomainSpec};
use hv::cmdline::{CmdLine, DebugFault};
use hv::exit::Exit;
use hv::layout::{BOOT_DIRECTMAP_BYTES, DIRECTMAP_START, IMAGE_PHYS_START, IMAGE_VIRT_OFFSET, PAGE_SIZE};
use hv::mm::frame::DomId;
use hv::mm::frame::{find_free_run, FrameStats, FrameTable, FrameUse, PageInfo};
use hv::mm::memmap::FrameRange;
use hv::mm::pagetype::Level;
use hv::mm::Mfn;
use hv::multiboot::{BootInfo, BootInfoError, Module, PhysMemory};
use hv::sched;
use hv::sync::SpinLock;

/// The machine's frames. `None` only until `init_memory` has run.
pub static FRAMES: SpinLock<Option<FrameTable<'static>>> = SpinLock::new(None);

/// What the loader told us (held by the boot path for good).
static BOOT_INFO: SpinLock<BootInfo> = SpinLock::new(BootInfo::empty());

extern "C" {
    /// End of the image including its zeroed data (linker.ld).
    static __image_end: u8;
}

/// Physical memory as the boot direct map shows it (the first
/// `BOOT_DIRECTMAP_BYTES`).
struct DirectMap;

impl PhysMemory for DirectMap {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), BootInfoError> {
        let end = paddr.checked_add(buf.len() as u64).ok_or(BootInfoError::Unreadable(paddr))?;
        if end > BOOT_DIRECTMAP_BYTES {
            return Err(BootInfoError::Unreadable(paddr));
        }
        let src = (DIRECTMAP_START + paddr) as *const u8;
        // SAFETY: [paddr, end) lies below BOOT_DIRECTMAP_BYTES, which the boot page
        // tables map at DIRECTMAP_START; the bytes are plain memory the
        // loader wrote, read once here.
        unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }
}

/// Sizes in the most readable unit.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= 16 << 20 {
            write!(f, "{} MiB", b >> 20)
        } else if b >= 16 << 10 {
            write!(f, "{} KiB", b >> 10)
        } else {
            write!(f, "{b} bytes")
        }
    }
}

/// Entered from `boot.rs` in long mode on the boot stack.
#[no_mangle]
extern "C" fn hv_start64(magic: u32, mbi: u32) -> ! {
    arch::serial::init();
    console::init();
    console::print(format_args!("hv {} - x86_64 paravirtualizing hypervisor, Xen 4.17 PV guest ABI", hv::VERSION));

    // Parsed in place: with its module strings it is too big for the stack.
    let mut boot_info = BOOT_INFO.lock();
    if let Err(e) = boot_info.parse_into(&DirectMap, magic, mbi.into()) {
        log::error!("boot: {e}");
        stop_with(Exit::BadBoot)
    }
    let info: &BootInfo = &boot_info;
    let cmdline = CmdLine::parse(info.cmdline.as_str());
    log::set_max_level(cmdline.log_level.filter());
    log::info!("command line: {}", info.cmdline);
    for warning in cmdline.warnings() {
        log::warn!("command line: {warning}");
    }
    if !info.loader.as_str().is_empty() {
        log::debug!("loaded by {}", info.loader);
    }

    arch::paging::drop_identity_map();
    arch::init_boot_cpu();
    log::debug!("cpu: GDT, TSS, IDT and SYSCALL set up; lower half unmapped");

    init_memory(info);
    if let Err(e) = crate::memory::guard_stack() {
        log::warn!("memory: no guard page below the stack: {e}");
    }
    crate::clock::init();

    if let Some(fault) = cmdline.debug_fault {
        log::warn!("debug_fault: faulting deliberately ({fault:?})");
        trigger(fault);
    }

    let machine_frames = FRAMES.lock().as_ref().map_or(0, |t| t.frames());
    if let Err(e) = crate::memory::init_m2p(machine_frames) {
        log::error!("memory: {e}");
        stop_with(Exit::BadBoot)
    }
    crate::memory::init_policy();

    domains::DOMU_CONSOLE_SERIAL.store(cmdline.domu_console_serial, core::sync::atomic::Ordering::Relaxed);
    let dom0 = start_domains(info.modules.as_slice(), cmdline.dom0_mem);
    crate::run::start(dom0)
}

/// Frames of machine memory, through the direct map, for the builder.
struct DirectFrames;

impl MachineFrames for DirectFrames {
    fn frame(&mut self, mfn: Mfn) -> &mut [u8; 4096] {
        // SAFETY: the builder only asks for frames it was given: the
        // domain's own run and shared-info frame, claimed for it and used
        // by nothing else until it starts.
        unsafe { &mut *crate::memory::frame_ptr(mfn).cast::<[u8; 4096]>() }
    }
}

/// Creates the domains the boot modules ask for (see `hv::bootmod`) and
/// sets up the scheduler. Returns whether there is a dom0; stops the
/// machine if dom0 cannot be built, or if there is nothing to run.
fn start_domains(modules: &[Module], dom0_mem: u64) -> bool {
    // The scheduler is built in place (see `SCHED`), with the default
    // configuration.
    if let Err(e) = sched::Config::DEFAULT.validate() {
        log::error!("sched: {e:?}");
        stop_with(Exit::BadBoot)
    }
    log::info!(
        "domains: up to {} at once, each with {} frames of hypervisor state (slot {} bytes, event channels {} bytes)",
        domains::MAX_DOMAINS,
        FrameBox::<Slot>::FRAMES + FrameBox::<hv::event::EventChannels>::FRAMES,
        core::mem::size_of::<Slot>(),
        core::mem::size_of::<hv::event::EventChannels>(),
    );
    let mut dom0 = false;
    let mut next_id: DomId = 1;
    let mut started = 0;
    // As in Xen, the first unmarked module after dom0's kernel is dom0's
    // ramdisk (`start_info.mod_start`, `mod_len`).
    let is_dom0 = |m: &Module| bootmod::parse(m.string.as_str()).is_ok_and(|s| s.domu.is_none());
    let ramdisk = match modules.first() {
        Some(first) if is_dom0(first) => modules.iter().enumerate().skip(1).find(|(_, m)| is_dom0(m)),
        _ => None,
    };
    for (i, module) in modules.iter().enumerate() {
        if ramdisk.is_some_and(|(r, _)| r == i) {
            continue;
        }
        let spec = match bootmod::parse(module.string.as_str()) {
            Ok(spec) => spec,
            Err(e) => {
                let path = module.string.as_str().split_whitespace().next().unwrap_or("");
                log::error!("domU '{path}': {e}; not started");
                continue;
            }
        };
        let request = match spec.domu {
            None if i == 0 => {
                Request { id: 0, privileged: true, mem_bytes: dom0_mem, params: sched::Params::default(), name: "dom0" }
            }
            None => {
                log::info!(
                    "module {i} '{}': not marked {} and not dom0's ramdisk; left alone",
                    spec.path,
                    bootmod::DOMU_MARK
                );
                continue;
            }
            Some(o) => {
                if usize::from(next_id) >= domains::MAX_DOMAINS {
                    log::error!("domU '{}': at most {} domains; not started", spec.path, domains::MAX_DOMAINS);
                    continue;
                }
                Request {
                    id: next_id,
                    privileged: false,
                    mem_bytes: o.mem_bytes,
                    params: sched::Params { weight: o.weight, cap: o.cap },
                    name: o.name,
                }
            }
        };
        let ramdisk = if request.id == 0 { ramdisk.map(|(_, m)| m) } else { None };
        match create_domain(module, ramdisk, &spec, &request) {
            Ok(()) if request.id == 0 => dom0 = true,
            Ok(()) => next_id += 1,
            // Dom0 is the machine's reason to run.
            Err(()) if request.id == 0 => stop_with(Exit::BadDom0),
            Err(()) => continue,
        }
        started += 1;
    }
    if started == 0 {
        log::info!("no domain module given: nothing to run");
        stop_with(Exit::PowerOff)
    }
    if let Some(t) = FRAMES.lock().as_ref() {
        summarize(&t.stats());
    }
    dom0
}

/// What to build a domain as.
struct Request<'a> {
    id: DomId,
    privileged: bool,
    mem_bytes: u64,
    params: sched::Params,
    name: &'a str,
}

/// Builds the domain `req` asks for from `module` and hands it to the
/// scheduler. On failure logs one line (`<what> 'PATH': why`), gives back
/// what it took, and returns `Err`.
fn create_domain(
    module: &Module,
    ramdisk: Option<&Module>,
    spec: &bootmod::ModuleSpec<'_>,
    req: &Request<'_>,
) -> Result<(), ()> {
    let path = spec.path;
    let id = req.id;
    let what = if req.privileged { "dom0" } else { "domU" };
    let fail = |why: &dyn fmt::Display| {
        log::error!("{what} '{path}': {why}");
    };
    if module.end > BOOT_DIRECTMAP_BYTES || ramdisk.is_some_and(|r| r.end > BOOT_DIRECTMAP_BYTES) {
        fail(&"module lies beyond the boot direct map");
        return Err(());
    }
    let bytes = |m: &Module| {
        let start = (DIRECTMAP_START + m.start) as *const u8;
        // SAFETY: the module lies in RAM the boot direct map covers (checked above), which
        // the direct map covers, and its frames stay claimed as a module
        // (nothing else writes them) until they are freed below.
        unsafe { core::slice::from_raw_parts(start, m.len() as usize) }
    };
    let image = bytes(module);
    let nr_pages = req.mem_bytes / PAGE_SIZE;
    let mut build_spec = PvDomainSpec {
        image,
        cmdline: spec.cmdline,
        ramdisk: ramdisk.map(bytes),
        domid: id,
        initial_domain: req.privileged,
        memory: FrameRange { start: 0, end: nr_pages },
        shared_info: 0,
        hypervisor_l4: crate::memory::hypervisor_l4_slots(),
    };
    if let Err(e) = build::plan(&build_spec) {
        fail(&e);
        return Err(());
    }
    let (memory, shared_info) = {
        let mut frames = FRAMES.lock();
        let Some(table) = frames.as_mut() else {
            fail(&"no frame table");
            return Err(());
        };
        let Some(run) = table.claim_run(nr_pages, FrameUse::Domain(id), IMAGE_PHYS_START / PAGE_SIZE, table.frames())
        else {
            let option = if req.privileged { "dom0_mem=" } else { "mem=" };
            fail(&format_args!("not enough contiguous free memory for {} ({option})", Size(req.mem_bytes)));
            return Err(());
        };
        let Some(si) = table.alloc(FrameUse::Domain(id)) else {
            for mfn in run.start..run.end {
                let _ = table.free(mfn);
            }
            fail(&"no memory for shared_info");
            return Err(());
        };
        (run, si)
    };
    let give_back = || {
        if let Some(table) = FRAMES.lock().as_mut() {
            for mfn in (memory.start..memory.end).chain([shared_info]) {
                let _ = table.free(mfn);
            }
        }
    };
    crate::lifecycle::prepare_shared_info(shared_info);
    build_spec.memory = memory;
    build_spec.shared_info = shared_info;
    let mut built = match build::build_pv(&build_spec, &mut DirectFrames) {
        Ok(b) => b,
        Err(e) => {
            give_back();
            fail(&e);
            return Err(());
        }
    };
    let mut base = None;
    let validated = crate::memory::with_page_types(|pt| {
        pt.pin(id, built.l4, Level::L4)?;
        pt.new_baseptr(id, &mut base, Some(built.l4))?;
        pt.get_page(id, shared_info)
    });
    if let Err(e) = validated {
        // Validation failed part-way: the engine may hold references on
        // some frames, so they stay the domain's rather than go back free.
        fail(&format_args!("bootstrap page tables failed validation: {e:?}"));
        return Err(());
    }
    built.domain.vcpu.kernel_table = base;
    for pfn in 0..nr_pages {
        crate::memory::set_m2p(memory.start + pfn, pfn);
    }
    if built.cmdline_truncated {
        log::warn!("d{id}: command line truncated to 1023 bytes");
    }
    if let Some(table) = FRAMES.lock().as_mut() {
        for m in core::iter::once(module).chain(ramdisk) {
            let used = FrameRange::covering(m.start, m.end);
            for mfn in used.start..used.end {
                let _ = table.free(mfn);
            }
        }
    }
    let max_port = if req.privileged { hv::event::NR_PORTS - 1 } else { DOMU_MAX_PORT };
    let l = built.layout;
    let slot = Slot { domain: built.domain, shared_info, regs: built.regs, selectors: [0; 4], managed: false };
    let (Some(channels), Some(slot)) = (crate::domains::new_channels(id, max_port), FrameBox::new(slot)) else {
        fail(&"no memory for its hypervisor state");
        return Err(());
    };
    let scheduled = SCHED.lock().as_mut().map(|s| {
        let v = sched::VcpuId::new(id, 0);
        s.add_domain(id).and_then(|()| s.set_params(id, req.params)).and_then(|()| s.add_vcpu(v)).and_then(|()| s.up(v))
    });
    if let Some(Err(e)) = scheduled {
        fail(&format_args!("the scheduler refused it: {e:?}"));
        return Err(());
    }
    crate::lifecycle::install(slot, channels);
    if let (Some(m), Some(r)) = (ramdisk, l.ramdisk()) {
        let path = m.string.as_str().split_whitespace().next().unwrap_or("");
        log::info!("d{id}: ramdisk '{path}' ({}) at {:#x}", Size(m.len()), r.va);
    }
    let name = Name(req.name);
    log::info!(
        "d{id}{name} '{path}': {} at {:#x}-{:#x}, start_info {:#x}, page tables {:#x} ({} frames), stack top {:#x}, weight {}{}",
        Size(req.mem_bytes),
        l.kernel().va,
        l.kernel().va + l.kernel().bytes(),
        l.start_info().va,
        l.page_tables().va,
        l.page_tables().pages,
        l.stack_top(),
        req.params.weight,
        Cap(req.params.cap),
    );
    Ok(())
}

/// ` NAME` for a named domain, nothing otherwise.
struct Name<'a>(&'a str);

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, " {}", self.0)
        }
    }
}

/// `, cap N%` for a capped domain, nothing otherwise.
struct Cap(u16);

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            c => write!(f, ", cap {c}%"),
        }
    }
}

/// A domU's highest event-channel port: the toolstack default in Xen
/// (`max_event_channels` 1023).
const DOMU_MAX_PORT: u32 = 1023;

fn init_memory(info: &BootInfo) {
    let ram = info.memory.usable_frames();
    let ram = ram.as_slice();
    let Some(last) = ram.last() else {
        log::error!("memory: the memory map has no usable RAM");
        stop_with(Exit::BadBoot)
    };
    let total_bytes: u64 = ram.iter().map(|r| r.len() * PAGE_SIZE).sum();
    log::info!("memory: {} of RAM in {} range(s)", Size(total_bytes), ram.len());
    for r in ram {
        log::debug!("  [{:#014x}, {:#014x}) {}", r.start * PAGE_SIZE, r.end * PAGE_SIZE, Size(r.len() * PAGE_SIZE));
    }

    // The boot direct map covers BOOT_DIRECTMAP_BYTES; RAM above it waits
    // for a later change that maps it.
    let mapped_frames = BOOT_DIRECTMAP_BYTES / PAGE_SIZE;
    let frames = last.end.min(mapped_frames);
    if last.end > mapped_frames {
        let above: u64 = ram.iter().map(|r| r.end.saturating_sub(r.start.max(mapped_frames))).sum();
        log::warn!("memory: {} of RAM above {} is not used yet", Size(above * PAGE_SIZE), Size(BOOT_DIRECTMAP_BYTES));
    }

    let image_end = core::ptr::addr_of!(__image_end) as u64 - IMAGE_VIRT_OFFSET;
    let mut claims = [(FrameRange::default(), FrameUse::Free); 2 + hv::multiboot::MAX_MODULES + 1];
    let mut n = 0;
    // Low memory (BIOS data, the loader's structures, a future AP trampoline).
    claims[n] = (FrameRange { start: 0, end: IMAGE_PHYS_START / PAGE_SIZE }, FrameUse::Hypervisor);
    n += 1;
    claims[n] = (FrameRange::covering(IMAGE_PHYS_START, image_end), FrameUse::Hypervisor);
    n += 1;
    for (i, m) in info.modules.as_slice().iter().enumerate() {
        log::info!("module {i}: [{:#x}, {:#x}) {} \"{}\"", m.start, m.end, Size(m.len()), m.string);
        if m.string.as_str().len() >= hv::multiboot::MAX_MODULE_STRING {
            log::warn!("module {i}: its string was cut to {} bytes", hv::multiboot::MAX_MODULE_STRING);
        }
        claims[n] = (FrameRange::covering(m.start, m.end), FrameUse::Module);
        n += 1;
    }
    // Only claim frames that are RAM: low memory has firmware holes.
    let mut ram_claims = [(FrameRange::default(), FrameUse::Free); 2 * (2 + hv::multiboot::MAX_MODULES + 1)];
    let mut m = 0;
    for &(c, u) in &claims[..n] {
        for r in ram {
            let part = FrameRange { start: c.start.max(r.start), end: c.end.min(r.end) };
            if !part.is_empty() && m < ram_claims.len() {
                ram_claims[m] = (part, u);
                m += 1;
            }
        }
    }

    let table_frames = FrameTable::table_bytes(frames).div_ceil(PAGE_SIZE);
    let Some(table_at) = find_free_run(ram, &ram_claims[..m], table_frames, IMAGE_PHYS_START / PAGE_SIZE, frames)
    else {
        log::error!("memory: no room for the frame table ({} frames)", table_frames);
        stop_with(Exit::BadBoot)
    };
    if m < ram_claims.len() {
        ram_claims[m] = (table_at, FrameUse::Hypervisor);
        m += 1;
    }
    let table_ptr = (DIRECTMAP_START + table_at.start * PAGE_SIZE) as *mut PageInfo;
    // SAFETY: the run is RAM below BOOT_DIRECTMAP_BYTES (so direct-mapped), claimed for the
    // frame table and for nothing else, large enough for `frames` entries,
    // and this is the only reference to it for the rest of time.
    let pages = unsafe { core::slice::from_raw_parts_mut(table_ptr, frames as usize) };
    let table = match FrameTable::new(pages, ram, &ram_claims[..m]) {
        Ok(t) => t,
        Err(e) => {
            log::error!("memory: {e}");
            stop_with(Exit::BadBoot)
        }
    };
    summarize(&table.stats());
    *FRAMES.lock() = Some(table);
}

/// Logs how memory is used (`memory:` and `frames:` lines).
pub fn summarize(s: &FrameStats) {
    let b = |frames: u64| Size(frames * PAGE_SIZE);
    log::info!(
        "memory: {} free, {} hypervisor, {} modules, {} domains",
        b(s.free),
        b(s.hypervisor),
        b(s.module),
        b(s.domain)
    );
    log::info!(
        "frames: ram={} free={} hypervisor={} module={} domain={}",
        s.ram,
        s.free,
        s.hypervisor,
        s.module,
        s.domain
    );
}

/// Executes `fault` on purpose, to exercise the fatal-fault path.
fn trigger(fault: DebugFault) {
    match fault {
        DebugFault::Panic => panic!("debug_fault=panic"),
        // SAFETY: `div` by zero faults before it changes any state, and the
        // fault handler never returns here.
        DebugFault::DivideError => unsafe {
            core::arch::asm!("div {0:e}", in(reg) 0u32, inout("eax") 1u32 => _, inout("edx") 0u32 => _)
        },
        // SAFETY: as above; `int3` changes nothing.
        DebugFault::Breakpoint => unsafe { core::arch::asm!("int3") },
        // SAFETY: as above; `ud2` changes nothing.
        DebugFault::InvalidOpcode => unsafe { core::arch::asm!("ud2") },
        // SAFETY: a non-canonical address faults before any access.
        DebugFault::GeneralProtection => unsafe {
            core::ptr::read_volatile(0x8000_0000_0000_0000 as *const u64);
        },
        // The guard page below the stack stops the recursion.
        DebugFault::StackOverflow => {
            log::info!("debug_fault: recursed {} times", recurse(0));
        }
        // SAFETY: the lower half is unmapped in the hypervisor's tables, so
        // the read faults before any access.
        DebugFault::PageFault => unsafe {
            core::ptr::read_volatile(0xdead_0000 as *const u64);
        },
    }
    log::error!("debug_fault: {fault:?} did not fault");
}

/// Recurses without bound (for `debug_fault=stack`); the result is used so
/// the recursion is not optimised into a loop.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    let frame = core::hint::black_box([depth; 64]);
    recurse(frame[depth as usize % 64] + 1).wrapping_add(frame[0])
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    console::emergency(format_args!("PANIC: {info}\n"));
    stop_with(Exit::HypervisorPanic)
}
