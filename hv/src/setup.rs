//! Start of day on the boot CPU: from the boot stub to a running system.

use crate::arch::{self, traps::stop_with};
use crate::console;
use core::fmt;
use hv::cmdline::{CmdLine, DebugFault};
use hv::exit::Exit;
use hv::layout::{BOOT_DIRECTMAP_BYTES, DIRECTMAP_START, IMAGE_PHYS_START, IMAGE_VIRT_OFFSET, PAGE_SIZE};
use hv::mm::frame::{find_free_run, FrameStats, FrameTable, FrameUse, PageInfo};
use hv::mm::memmap::FrameRange;
use hv::multiboot::{BootInfo, BootInfoError, PhysMemory};
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

    if let Some(fault) = cmdline.debug_fault {
        log::warn!("debug_fault: faulting deliberately ({fault:?})");
        trigger(fault);
    }

    match info.modules.as_slice().first() {
        None => {
            log::info!("no dom0 module given: nothing to run");
            stop_with(Exit::PowerOff)
        }
        Some(dom0) => {
            log::error!("dom0 '{}': building PV domains is not implemented yet", dom0.string);
            stop_with(Exit::BadDom0)
        }
    }
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
