//! Start of day on the boot CPU: from the boot stub to a running system.

use crate::arch::{self, traps::stop_with};
use crate::console;
use core::fmt;
use hv::build::{self, MachineFrames, PvDomainSpec};
use hv::cmdline::{CmdLine, DebugFault};
use hv::exit::Exit;
use hv::layout::{BOOT_DIRECTMAP_BYTES, DIRECTMAP_START, IMAGE_PHYS_START, IMAGE_VIRT_OFFSET, PAGE_SIZE};
use hv::mm::frame::{find_free_run, FrameStats, FrameTable, FrameUse, PageInfo};
use hv::mm::memmap::FrameRange;
use hv::mm::pagetype::Level;
use hv::mm::Mfn;
use hv::multiboot::{BootInfo, BootInfoError, Module, PhysMemory};
use hv::sync::SpinLock;

/// The machine's frames. `None` only until `init_memory` has run.
pub static FRAMES: SpinLock<Option<FrameTable<'static>>> = SpinLock::new(None);

extern "C" {
    /// End of the image including its zeroed data (linker.ld).
    static __image_end: u8;
}

/// Physical memory as the boot direct map shows it (the first 4 GiB).
struct DirectMap;

impl PhysMemory for DirectMap {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), BootInfoError> {
        let end = paddr.checked_add(buf.len() as u64).ok_or(BootInfoError::Unreadable(paddr))?;
        if end > BOOT_DIRECTMAP_BYTES {
            return Err(BootInfoError::Unreadable(paddr));
        }
        let src = (DIRECTMAP_START + paddr) as *const u8;
        // SAFETY: [paddr, end) lies in the first 4 GiB, which the boot page
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

    let info = match BootInfo::parse(&DirectMap, magic, mbi.into()) {
        Ok(info) => info,
        Err(e) => {
            log::error!("boot: {e}");
            stop_with(Exit::BadBoot)
        }
    };
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

    init_memory(&info);
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

    match info.modules.as_slice().first() {
        None => {
            log::info!("no dom0 module given: nothing to run");
            stop_with(Exit::PowerOff)
        }
        Some(module) => start_dom0(module, cmdline.dom0_mem),
    }
}

/// Machine frames through the direct map, for the domain builder.
struct DirectFrames;

impl MachineFrames for DirectFrames {
    fn frame(&mut self, mfn: Mfn) -> &mut [u8; 4096] {
        // SAFETY: the builder only asks for frames of the domain being
        // built, which the frame table gave it alone.
        unsafe { &mut *crate::memory::frame_ptr(mfn).cast::<[u8; 4096]>() }
    }
}

/// Builds dom0 from the first module and runs it. Any problem with the
/// image is one log line and the `BadDom0` exit.
fn start_dom0(module: &Module, mem_bytes: u64) -> ! {
    let (path, args) = module.string.as_str().split_once(' ').unwrap_or((module.string.as_str(), ""));
    let fail = |what: &dyn fmt::Display| -> ! {
        log::error!("dom0 '{path}': {what}");
        stop_with(Exit::BadDom0)
    };
    if module.end > BOOT_DIRECTMAP_BYTES {
        fail(&"module lies above 4 GiB, beyond the boot direct map");
    }
    let start = (DIRECTMAP_START + module.start) as *const u8;
    // SAFETY: the module's frames are claimed as `Module` in the frame
    // table, so nothing else uses them, and they lie in the direct map.
    let image = unsafe { core::slice::from_raw_parts(start, module.len() as usize) };
    let nr_pages = mem_bytes / PAGE_SIZE;
    let mut spec = PvDomainSpec {
        image,
        cmdline: args.trim_start(),
        domid: 0,
        initial_domain: true,
        memory: FrameRange { start: 0, end: nr_pages },
        shared_info: 0,
        hypervisor_l4: crate::memory::hypervisor_l4_slots(),
    };
    // Every check on the image before any memory is taken.
    if let Err(e) = build::plan(&spec) {
        fail(&e);
    }
    let (memory, shared_info) = {
        let mut frames = FRAMES.lock();
        let Some(table) = frames.as_mut() else { fail(&"no frame table") };
        let Some(run) = table.claim_run(nr_pages, FrameUse::Domain(0), IMAGE_PHYS_START / PAGE_SIZE, table.frames())
        else {
            fail(&format_args!("not enough contiguous free memory for {} (dom0_mem=)", Size(mem_bytes)))
        };
        let Some(si) = table.alloc(FrameUse::Domain(0)) else { fail(&"no memory for shared_info") };
        (run, si)
    };
    // SAFETY: just allocated for this domain.
    unsafe { crate::memory::zero_frame(shared_info) };
    // SAFETY: a zeroed, exclusively owned frame; shared_info fits a page.
    let shared = unsafe { &mut *crate::memory::frame_ptr(shared_info).cast::<abi::shared_info::SharedInfo>() };
    for v in shared.vcpu_info.iter_mut() {
        v.evtchn_upcall_mask = 1;
    }
    crate::clock::publish_to(shared);
    spec.memory = memory;
    spec.shared_info = shared_info;
    let mut built = match build::build_pv(&spec, &mut DirectFrames) {
        Ok(b) => b,
        Err(e) => fail(&e),
    };
    // The bootstrap tables go through the same validation as any guest
    // page table: pin the L4 (as Xen does) and make it the base.
    let mut base = None;
    let validated = crate::memory::with_page_types(|pt| {
        pt.pin(0, built.l4, Level::L4)?;
        pt.new_baseptr(0, &mut base, Some(built.l4))?;
        // The hypervisor writes shared info (events, time, cr2) for the
        // domain's whole life: its own reference keeps the guest from
        // giving the frame back for reuse (Xen keeps it on the Xen heap).
        pt.get_page(0, shared_info)
    });
    if let Err(e) = validated {
        fail(&format_args!("bootstrap page tables failed validation: {e:?}"));
    }
    built.domain.vcpu.kernel_table = base;
    for pfn in 0..nr_pages {
        crate::memory::set_m2p(memory.start + pfn, pfn);
    }
    if built.cmdline_truncated {
        log::warn!("dom0: command line truncated to 1023 bytes");
    }
    // The image has been copied: its frames are free memory again.
    {
        let mut frames = FRAMES.lock();
        if let Some(table) = frames.as_mut() {
            let image = FrameRange::covering(module.start, module.end);
            for mfn in image.start..image.end {
                let _ = table.free(mfn);
            }
        }
    }
    let l = &built.layout;
    log::info!(
        "dom0 '{path}': {} at {:#x}-{:#x}, start_info {:#x}, page tables {:#x} ({} frames), stack top {:#x}",
        Size(mem_bytes),
        l.kernel().va,
        l.kernel().va + l.kernel().bytes(),
        l.start_info().va,
        l.page_tables().va,
        l.page_tables().pages,
        l.stack_top()
    );
    if let Some(t) = FRAMES.lock().as_ref() {
        summarize(&t.stats());
    }
    crate::run::start(crate::run::Guest { domain: built.domain, shared_info }, &built.regs)
}

/// Accounts every frame of RAM and sets up the frame table.
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

    // The boot direct map covers 4 GiB; RAM above it waits for a later
    // change that maps it.
    let mapped_frames = BOOT_DIRECTMAP_BYTES / PAGE_SIZE;
    let frames = last.end.min(mapped_frames);
    if last.end > mapped_frames {
        let above: u64 = ram.iter().map(|r| r.end.saturating_sub(r.start.max(mapped_frames))).sum();
        log::warn!("memory: {} of RAM above 4 GiB is not used yet", Size(above * PAGE_SIZE));
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
    // SAFETY: the run is RAM below 4 GiB (so direct-mapped), claimed for the
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

fn summarize(s: &FrameStats) {
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
        // SAFETY: the lower half is unmapped in the hypervisor's tables, so
        // the read faults before any access.
        DebugFault::PageFault => unsafe {
            core::ptr::read_volatile(0xdead_0000 as *const u64);
        },
    }
    log::error!("debug_fault: {fault:?} did not fault");
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    console::emergency(format_args!("PANIC: {info}\n"));
    stop_with(Exit::HypervisorPanic)
}
