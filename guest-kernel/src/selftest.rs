//! The `selftest` workload: checks the PV ABI the kernel relies on, one
//! `TEST <name> ok` or `TEST <name> FAIL <why>` line each, then
//! `SELFTEST pass=<n> fail=<m>`, and shuts down with `poweroff` when all
//! passed, `crash` otherwise.
//!
//! The checks run in dependency order: start of day and plain hypercalls
//! first, then the trap table (without which a trap would kill the
//! domain, so the trap checks are failed rather than run), then traps,
//! then memory management and user mode ([`memory`]), then event
//! channels, timers and kernel threads ([`events`]), then grant tables
//! ([`grants`]).

use crate::probe::{self, probe, Probe, Seen};
use abi::arch::{SegmentBase, FLAT_KERNEL_CS, FLAT_KERNEL_SS, HYPERVISOR_VIRT_START, MACH2PHYS_VIRT_START};
use abi::guest::Hypercalls;
use abi::hypercall::XEN_VERSION;
use abi::hypercall_page::{write_hypercall_page, HYPERCALL_PAGE_ENTRY_SIZE};
use abi::sched::{ShutdownReason, XENFEAT_AUTO_TRANSLATED_PHYSMAP, XEN_CAPABILITIES_INFO_LEN, XEN_EXTRAVERSION_LEN};
use abi::version::XEN_VERSION_PACKED;
use abi::Errno;
use core::sync::atomic::{AtomicU64, Ordering};
use guest_kernel::ensure;
use guest_kernel::frame::{SoftwareVector, BP, DE, GP, GP_ERROR_IDT, PF, RFLAGS_IF, UD};
use guest_kernel::hypercall::{self, hv};
use guest_kernel::layout::{pte, table_index, INVALID_P2M_ENTRY, PAGE_SIZE, VIRT_BASE};
use guest_kernel::runtime::{self, shutdown, start_info};
use guest_kernel::text::{c_bytes, contains, is_printable_c_string, Escaped, Msg};
use guest_kernel::{entry, msg, println, shared, traps};

/// A check's verdict: `Err` says why it failed.
pub type Check = Result<(), Msg>;

/// A check that needs the trap table.
pub type TrapCheck = (&'static str, fn() -> Check);

mod events;
mod grants;
mod memory;

/// The software vector delivered directly (trap-table DPL 3).
const INT_DPL3: u8 = 0x80;
/// The software vector whose trap-table DPL 0 makes `int` a `#GP`.
const INT_DPL0: u8 = 0x81;

/// An address in the lower half that the boot mapping leaves unmapped.
const UNMAPPED: u64 = 0x0000_0000_dead_b000;

/// Counts checks and prints one `TEST` line per check.
#[derive(Debug, Default)]
pub struct Report {
    /// Checks that passed.
    pub pass: u32,
    /// Checks that failed.
    pub fail: u32,
}

impl Report {
    /// Records and prints one check's result.
    pub fn check(&mut self, name: &str, result: Check) {
        match result {
            Ok(()) => {
                self.pass += 1;
                println!("TEST {name} ok");
            }
            Err(why) => {
                self.fail += 1;
                println!("TEST {name} FAIL {why}");
            }
        }
    }
}

/// Runs every check and shuts down.
pub fn run() -> ! {
    let mut r = Report::default();
    r.check("start_info", check_start_info());
    r.check("hypercall_page", check_hypercall_page());
    r.check("raw_syscall", check_raw_syscall());
    r.check("console_write", check_console_write());
    r.check("console_read", check_console_read());
    r.check("bad_pointers_efault", check_bad_pointers());
    r.check("xen_version", check_xen_version());
    r.check("extraversion", check_extraversion());
    r.check("capabilities", check_capabilities());
    r.check("platform_parameters", check_platform_parameters());
    r.check("get_features", check_get_features());
    r.check("pagesize", check_pagesize());
    r.check("sched_yield", hv().sched_yield().map(drop).map_err(|e| msg!("sched_op(yield): {e}")));

    let table = check_trap_table();
    let traps_ok = table.is_ok();
    r.check("trap_table", table);
    r.check("callbacks", check_callbacks());
    r.check("stack_switch", traps::set_user_entry_stack().map(drop).map_err(|e| msg!("stack_switch: {e}")));
    r.check("segment_base", check_segment_base());
    r.check("shared_info", check_shared_info());
    r.check("time", check_time());

    let trap_checks: [TrapCheck; 16] = [
        ("trap_ud", check_ud),
        ("trap_bp", check_bp),
        ("trap_de", check_de),
        ("trap_gp", check_gp),
        ("trap_pf", check_pf),
        ("int_dpl3_direct", check_int_dpl3),
        ("int_dpl0_gp", check_int_dpl0),
        ("bounce_frame", check_bounce_frame),
        ("iret_registers", check_iret_registers),
        ("m2p", check_m2p),
        ("read_cr2", check_read_cr2),
        ("read_cr3", check_read_cr3),
        ("cpuid_forced", check_cpuid_forced),
        ("lgdt_gp", || expect_gp(probe!("lgdt [{p}]", p = in(reg) [0u8; 10].as_ptr()), "lgdt")),
        ("mov_cr0_gp", || expect_gp(probe!("mov cr0, {v}", v = in(reg) 0u64), "mov to %cr0")),
        ("wrmsr_gp", || expect_gp(probe!("wrmsr", in("ecx") 0x1234_5678u32, in("eax") 0u32, in("edx") 0u32), "wrmsr")),
    ];
    for (name, check) in trap_checks {
        r.check(name, if traps_ok { check() } else { Err(msg!("skipped: no trap table")) });
    }

    // Memory management and user mode: mm_init first, the rest need it.
    let mut mm_ok = false;
    for (i, (name, check)) in memory::CHECKS.into_iter().enumerate() {
        let result = match (traps_ok, i == 0 || mm_ok) {
            (false, _) => Err(msg!("skipped: no trap table")),
            (true, false) => Err(msg!("skipped: mm_init failed")),
            (true, true) => check(),
        };
        if i == 0 {
            mm_ok = result.is_ok();
        }
        r.check(name, result);
    }

    // Events, timers and threads: events_init first, the rest need it;
    // threads take their stacks from the heap, so all of them need mm.
    let mut events_ok = false;
    for (i, (name, check)) in events::CHECKS.into_iter().enumerate() {
        let result = match (traps_ok, mm_ok, i == 0 || events_ok) {
            (false, _, _) => Err(msg!("skipped: no trap table")),
            (true, false, _) => Err(msg!("skipped: mm_init failed")),
            (true, true, false) => Err(msg!("skipped: events_init failed")),
            (true, true, true) => check(),
        };
        if i == 0 {
            events_ok = result.is_ok();
        }
        r.check(name, result);
    }

    // Grant tables: grant_setup first, the rest need it; all take frames.
    let mut grants_ok = false;
    for (i, (name, check)) in grants::CHECKS.into_iter().enumerate() {
        let result = match (traps_ok, mm_ok, i == 0 || grants_ok) {
            (false, _, _) => Err(msg!("skipped: no trap table")),
            (true, false, _) => Err(msg!("skipped: mm_init failed")),
            (true, true, false) => Err(msg!("skipped: grant_setup failed")),
            (true, true, true) => check(),
        };
        if i == 0 {
            grants_ok = result.is_ok();
        }
        r.check(name, result);
    }

    // Last, because the recorded code overrides the reason of any later
    // shutdown: record the verdict we are about to shut down with.
    let reason = if r.fail == 0 { ShutdownReason::Poweroff } else { ShutdownReason::Crash };
    r.check(
        "shutdown_code",
        hv().sched_shutdown_code(reason).map(drop).map_err(|e| msg!("sched_op(shutdown_code): {e}")),
    );
    let reason = if r.fail == 0 { ShutdownReason::Poweroff } else { ShutdownReason::Crash };
    println!("SELFTEST pass={} fail={}", r.pass, r.fail);
    shutdown(reason)
}

fn check_start_info() -> Check {
    runtime::check_boot().map_err(|why| msg!("{why}"))?;
    let si = start_info();
    // The L4 is readable (page tables are mapped read-only) and maps the
    // kernel's slot.
    let slot = (si.pt_base as *const u64).wrapping_add(table_index(VIRT_BASE, 4));
    // SAFETY: check_boot verified pt_base is a page inside the boot
    // mapping; the slot is an aligned u64 in it.
    let l4e = unsafe { slot.read_volatile() };
    ensure!(l4e & pte::PRESENT != 0, "L4[{}] at pt_base {:#x} is not present", table_index(VIRT_BASE, 4), si.pt_base);
    // SAFETY: check_boot verified the p2m array lies inside the mapping.
    let p2m = unsafe { core::slice::from_raw_parts(si.mfn_list as *const u64, si.nr_pages as usize) };
    if let Some(pfn) = p2m.iter().position(|&m| m == INVALID_P2M_ENTRY) {
        return Err(msg!("p2m[{pfn}] is invalid although pfn < nr_pages"));
    }
    println!(
        "INFO start_info nr_pages={} flags={:#x} shared_info={:#x} pt_base={:#x} nr_pt_frames={} mfn_list={:#x} cmdline={:?}",
        si.nr_pages,
        si.flags,
        si.shared_info,
        si.pt_base,
        si.nr_pt_frames,
        si.mfn_list,
        Escaped(c_bytes(&si.cmd_line))
    );
    Ok(())
}

fn check_hypercall_page() -> Check {
    ensure!(hypercall::page_is_filled(), "the hypervisor did not fill the page (hypercalls fall back to syscall)");
    let page = entry::hypercall_page_bytes();
    let mut want = [0u8; 4096];
    write_hypercall_page(&mut want);
    let e = XEN_VERSION as usize * HYPERCALL_PAGE_ENTRY_SIZE;
    ensure!(
        page[e..e + HYPERCALL_PAGE_ENTRY_SIZE] == want[e..e + HYPERCALL_PAGE_ENTRY_SIZE],
        "entry 17 is {:02x?}",
        &page[e..e + 14]
    );
    let i = 23 * HYPERCALL_PAGE_ENTRY_SIZE;
    ensure!(page[i..i + 11] == want[i..i + 11], "entry 23 (iret) is {:02x?}", &page[i..i + 11]);
    ensure!(hypercall::uses_page(), "the page is filled but not in use");
    Ok(())
}

fn check_raw_syscall() -> Check {
    let raw =
        Hypercalls::new(hypercall::raw_syscall()).xen_version().map_err(|e| msg!("xen_version by syscall: {e}"))?;
    let page = match hypercall::page() {
        Some(p) => Hypercalls::new(p).xen_version().map_err(|e| msg!("xen_version by page: {e}"))?,
        None => raw,
    };
    ensure!(raw == page, "syscall says {raw:#x}, the page says {page:#x}");
    Ok(())
}

fn check_console_write() -> Check {
    let r = hv().console_write(b"selftest: console_io write\n").map_err(|e| msg!("console_io(write): {e}"))?;
    ensure!(r == 0, "console_io(write) returned {r}, not 0");
    Ok(())
}

/// Guest pointers that are unmapped, odd-sized, or in the hypervisor's
/// range give `-EFAULT`, and the hypervisor keeps running.
fn check_bad_pointers() -> Check {
    use abi::sched::{CONSOLEIO_WRITE, XENVER_EXTRAVERSION, XENVER_PLATFORM_PARAMETERS};
    let cases: [(&str, u64, [u64; 5]); 5] = [
        (
            "console_io write of 5 unmapped bytes",
            abi::hypercall::CONSOLE_IO,
            [CONSOLEIO_WRITE.into(), 5, UNMAPPED, 0, 0],
        ),
        (
            "console_io write of 21 unmapped bytes",
            abi::hypercall::CONSOLE_IO,
            [CONSOLEIO_WRITE.into(), 21, UNMAPPED, 0, 0],
        ),
        ("extraversion to an unmapped page", XEN_VERSION, [XENVER_EXTRAVERSION.into(), UNMAPPED, 0, 0, 0]),
        (
            "platform_parameters into the M2P",
            XEN_VERSION,
            [XENVER_PLATFORM_PARAMETERS.into(), MACH2PHYS_VIRT_START, 0, 0, 0],
        ),
        (
            "extraversion into the hypervisor",
            XEN_VERSION,
            [XENVER_EXTRAVERSION.into(), HYPERVISOR_VIRT_START + 0x2d0_8000_0000, 0, 0, 0],
        ),
    ];
    for (what, nr, args) in cases {
        // SAFETY: every pointer is one the hypervisor must refuse before
        // it touches memory; this kernel's own memory is not involved.
        let r = unsafe { hv().call(nr, args) };
        ensure!(r == Err(Errno::EFAULT), "{what}: {r:?}, want EFAULT");
    }
    Ok(())
}

fn check_console_read() -> Check {
    let mut buf = [0u8; 16];
    let n = hv().console_read(&mut buf).map_err(|e| msg!("console_io(read): {e}"))?;
    ensure!(n <= buf.len() as u64, "console_io(read) returned {n} for a {}-byte buffer", buf.len());
    Ok(())
}

fn check_xen_version() -> Check {
    let v = hv().xen_version().map_err(|e| msg!("xen_version(version): {e}"))?;
    println!("INFO xen_version {}.{}", v >> 16, v & 0xffff);
    ensure!(v == u64::from(XEN_VERSION_PACKED), "version {}.{}, want 4.17", v >> 16, v & 0xffff);
    Ok(())
}

fn check_extraversion() -> Check {
    let mut extra = [0xffu8; XEN_EXTRAVERSION_LEN];
    hv().xen_extraversion(&mut extra).map_err(|e| msg!("xen_version(extraversion): {e}"))?;
    println!("INFO extraversion {:?}", Escaped(c_bytes(&extra)));
    ensure!(is_printable_c_string(&extra), "not a NUL-terminated printable string: {:?}", Escaped(&extra));
    Ok(())
}

fn check_capabilities() -> Check {
    let mut caps = [0xffu8; XEN_CAPABILITIES_INFO_LEN];
    hv().xen_capabilities(&mut caps).map_err(|e| msg!("xen_version(capabilities): {e}"))?;
    println!("INFO capabilities {:?}", Escaped(c_bytes(&caps)));
    ensure!(is_printable_c_string(&caps), "not a NUL-terminated printable string");
    ensure!(contains(c_bytes(&caps), b"xen-3.0-x86_64"), "no xen-3.0-x86_64 in {:?}", Escaped(c_bytes(&caps)));
    Ok(())
}

fn check_platform_parameters() -> Check {
    let p = hv().xen_platform_parameters().map_err(|e| msg!("xen_version(platform_parameters): {e}"))?;
    ensure!(p.virt_start == HYPERVISOR_VIRT_START, "virt_start {:#x}, want {:#x}", p.virt_start, HYPERVISOR_VIRT_START);
    Ok(())
}

fn check_get_features() -> Check {
    let map = hv().xen_get_features(0).map_err(|e| msg!("xen_version(get_features, 0): {e}"))?;
    println!("INFO features[0] {map:#010x}");
    ensure!(map & (1 << XENFEAT_AUTO_TRANSLATED_PHYSMAP) == 0, "auto_translated_physmap is set for a PV guest");
    let past = hv().xen_get_features(1);
    ensure!(past == Err(Errno::EINVAL), "submap 1 (past XENFEAT_NR_SUBMAPS) gave {past:?}, want EINVAL");
    Ok(())
}

fn check_pagesize() -> Check {
    let size = hv().xen_pagesize().map_err(|e| msg!("xen_version(pagesize): {e}"))?;
    ensure!(size == PAGE_SIZE, "page size {size}");
    Ok(())
}

fn check_trap_table() -> Check {
    guest_kernel::traps::set_handler(probe::handler);
    let extra = [SoftwareVector { vector: INT_DPL3, dpl: 3 }, SoftwareVector { vector: INT_DPL0, dpl: 0 }];
    traps::install(&extra).map_err(|e| msg!("set_trap_table: {e}"))?;
    Ok(())
}

fn check_callbacks() -> Check {
    traps::register_callbacks().map_err(|(which, e)| msg!("callback_op(register, {which}): {e}"))?;
    traps::set_callbacks().map_err(|e| msg!("set_callbacks: {e}"))?;
    Ok(())
}

/// What `fs:[0]` reads once the FS base points here.
static FS_MARKER: AtomicU64 = AtomicU64::new(0x5e6b_a5e0_f5f5_f5f5);

fn check_segment_base() -> Check {
    let marker = FS_MARKER.as_ptr() as u64;
    // SAFETY: nothing in this kernel uses the FS base (no thread-local
    // storage); it is set back to 0 below.
    unsafe { hv().set_segment_base(SegmentBase::Fs, marker) }.map_err(|e| msg!("set_segment_base(FS): {e}"))?;
    let seen: u64;
    // SAFETY: fs:[0] reads FS_MARKER, which the FS base now points at.
    unsafe { core::arch::asm!("mov {v}, qword ptr fs:[0]", v = out(reg) seen, options(nostack, readonly)) };
    // SAFETY: as above.
    unsafe { hv().set_segment_base(SegmentBase::Fs, 0) }.map_err(|e| msg!("set_segment_base(FS, 0): {e}"))?;
    let want = FS_MARKER.load(Ordering::Relaxed);
    ensure!(seen == want, "fs:[0] read {seen:#x}, want {want:#x}");
    let bad = 0x8000_0000_0000_0000;
    // SAFETY: a non-canonical base must be refused, changing nothing.
    let r = unsafe { hv().set_segment_base(SegmentBase::Fs, bad) };
    ensure!(r == Err(Errno::EINVAL), "a non-canonical FS base gave {r:?}, want EINVAL");
    Ok(())
}

fn check_shared_info() -> Check {
    let maddr = start_info().shared_info;
    shared::map(maddr).map_err(|e| msg!("update_va_mapping(shared_info at {maddr:#x}): {e}"))?;
    let mask = shared::vcpu0_upcall_mask().unwrap_or(0);
    ensure!(mask == 1, "vcpu_info[0].evtchn_upcall_mask is {mask}, want 1 (events masked at start)");
    Ok(())
}

/// The pvclock and wall clock in shared_info: a consistent record whose
/// system time advances with the TSC, and a wall clock after 2020.
fn check_time() -> Check {
    let t = shared::vcpu0_time().ok_or_else(|| msg!("vcpu_info[0].time is not readable (or never settles)"))?;
    ensure!(t.tsc_to_system_mul != 0, "tsc_to_system_mul is 0: time was never published");
    let tsc = || {
        // SAFETY: rdtsc is allowed at CPL 3 unless the hypervisor sets
        // CR4.TSD, which neither hypervisor does for PV guests.
        unsafe { core::arch::x86_64::_rdtsc() }
    };
    let before = t.system_time_at(tsc());
    for _ in 0..100_000 {
        core::hint::spin_loop();
    }
    let after = t.system_time_at(tsc());
    ensure!(after > before, "system time does not advance ({before} then {after} ns)");
    let wc = shared::wallclock_seconds().ok_or_else(|| msg!("the wall clock never settles"))?;
    // 2020-01-01T00:00:00Z.
    ensure!(wc >= 1_577_836_800, "wall clock {wc} s is before 2020");
    println!("INFO time: system time {} ms since boot, wall clock at boot {wc} s", after / 1_000_000);
    Ok(())
}

/// The trap a probe took, or why not.
fn took(p: &Probe, what: &str) -> Result<Seen, Msg> {
    p.seen.ok_or_else(|| msg!("{what}: no trap arrived"))
}

fn expect(s: &Seen, vector: u8, error_code: u64, rip: u64) -> Check {
    ensure!(s.vector == u64::from(vector), "vector {}, want {vector}", s.vector);
    ensure!(s.error_code == error_code, "error code {:#x}, want {error_code:#x}", s.error_code);
    ensure!(s.rip == rip, "rip {:#x}, want {rip:#x}", s.rip);
    Ok(())
}

fn check_ud() -> Check {
    let p = probe!("ud2");
    expect(&took(&p, "ud2")?, UD, 0, p.at)
}

fn check_bp() -> Check {
    let p = probe!("int3");
    // A trap: rip is after the instruction.
    expect(&took(&p, "int3")?, BP, 0, p.next)
}

fn check_de() -> Check {
    let p = probe!("div ecx", inout("eax") 1u32 => _, inout("edx") 0u32 => _, in("ecx") 0u32);
    expect(&took(&p, "div by zero")?, DE, 0, p.at)
}

fn check_gp() -> Check {
    // cli at CPL 3 with IOPL 0.
    let p = probe!("cli");
    expect(&took(&p, "cli")?, GP, 0, p.at)
}

fn check_pf() -> Check {
    let p = match probe::read_u64(UNMAPPED) {
        Ok(v) => return Err(msg!("reading {UNMAPPED:#x} gave {v:#x}, no fault")),
        Err(p) => p,
    };
    let s = took(&p, "read of an unmapped page")?;
    // Not present, read, kernel mode: error code 0.
    expect(&s, PF, 0, p.at)?;
    match s.cr2 {
        None => Err(msg!("shared_info is not mapped: cannot read vcpu_info.arch.cr2")),
        Some(cr2) if cr2 != UNMAPPED => Err(msg!("vcpu_info.arch.cr2 {cr2:#x}, want {UNMAPPED:#x}")),
        Some(_) => Ok(()),
    }
}

/// A privileged instruction in guest kernel mode must reach the guest as
/// `#GP(0)` at the instruction.
pub fn expect_gp(p: Probe, what: &str) -> Check {
    expect(&took(&p, what)?, GP, 0, p.at)
}

/// Reading `%cr2` is emulated: it gives the last page fault's address
/// (`trap_pf` ran before).
fn check_read_cr2() -> Check {
    let cr2: u64;
    let p = probe!("mov {v}, cr2", v = out(reg) cr2);
    ensure!(p.seen.is_none(), "mov from %cr2 raised vector {}", p.seen.map_or(0, |s| s.vector));
    ensure!(cr2 == UNMAPPED, "%cr2 reads {cr2:#x}, want the last fault's {UNMAPPED:#x}");
    Ok(())
}

/// Reading `%cr3` is emulated: the machine address of the current L4,
/// which is the bootstrap L4 at `pt_base`.
fn check_read_cr3() -> Check {
    let cr3: u64;
    let p = probe!("mov {v}, cr3", v = out(reg) cr3);
    ensure!(p.seen.is_none(), "mov from %cr3 raised vector {}", p.seen.map_or(0, |s| s.vector));
    let si = start_info();
    // SAFETY: check_start_info verified the p2m array lies in the mapping.
    let p2m = unsafe { core::slice::from_raw_parts(si.mfn_list as *const u64, si.nr_pages as usize) };
    let l4_mfn = p2m.get(((si.pt_base - VIRT_BASE) / PAGE_SIZE) as usize).copied().unwrap_or(INVALID_P2M_ENTRY);
    ensure!(cr3 >> 12 == l4_mfn, "%cr3 reads {cr3:#x}, want the L4's machine frame {l4_mfn:#x}");
    Ok(())
}

/// CPUID behind Xen's forced-emulation prefix (`ud2; .ascii "xen"`) runs
/// CPUID for the guest: leaf 0 names the same vendor as plain CPUID.
fn check_cpuid_forced() -> Check {
    let (rbx, ecx, edx): (u64, u32, u32);
    // SAFETY: rbx is saved and restored around CPUID (LLVM reserves it);
    // if the prefix were not emulated, the #UD would reach the probe
    // handler unarmed and crash the domain, failing the selftest.
    unsafe {
        core::arch::asm!(
            "mov {b}, rbx",
            ".byte 0x0f, 0x0b, 0x78, 0x65, 0x6e",
            "cpuid",
            "xchg {b}, rbx",
            b = out(reg) rbx,
            inout("eax") 0u32 => _,
            inout("ecx") 0u32 => ecx,
            out("edx") edx,
        );
    }
    let native = core::arch::x86_64::__cpuid(0);
    ensure!(
        (rbx as u32, edx, ecx) == (native.ebx, native.edx, native.ecx),
        "vendor {:#x}/{edx:#x}/{ecx:#x}, plain CPUID says {:#x}/{:#x}/{:#x}",
        rbx as u32,
        native.ebx,
        native.edx,
        native.ecx
    );
    Ok(())
}

fn check_int_dpl3() -> Check {
    let p = probe!("int 0x80");
    // Delivered to its own vector, as a trap, with no error code.
    expect(&took(&p, "int 0x80")?, INT_DPL3, 0, p.next)
}

fn check_int_dpl0() -> Check {
    let p = probe!("int 0x81");
    // The gate's DPL is too low: #GP at the int, naming the IDT entry.
    expect(&took(&p, "int 0x81")?, GP, (u64::from(INT_DPL0) << 3) | GP_ERROR_IDT, p.at)
}

fn check_bounce_frame() -> Check {
    let p = probe::ud2_recording_rsp();
    let s = took(&p, "ud2")?;
    let rsp = probe::RSP_BEFORE.load(Ordering::SeqCst);
    ensure!(
        s.cs & 0xffff == u64::from(FLAT_KERNEL_CS & !3),
        "cs {:#x}, want selector {:#x} (RPL 0: kernel mode)",
        s.cs,
        FLAT_KERNEL_CS & !3
    );
    ensure!((s.cs >> 32) & 0xff == 1, "saved upcall mask (cs bits 32..40) {}, want 1", (s.cs >> 32) & 0xff);
    ensure!(s.rflags & RFLAGS_IF == 0, "rflags {:#x} has IF although events were masked", s.rflags);
    ensure!(s.ss == u64::from(FLAT_KERNEL_SS), "ss {:#x}, want {FLAT_KERNEL_SS:#x}", s.ss);
    ensure!(s.rsp == rsp, "rsp {:#x}, want {rsp:#x}", s.rsp);
    Ok(())
}

fn check_iret_registers() -> Check {
    let (seen, got) = probe::ud2_with_patterns();
    let s = seen.ok_or_else(|| msg!("ud2: no trap arrived"))?;
    ensure!(s.vector == u64::from(UD), "vector {}, want {UD}", s.vector);
    const NAMES: [&str; 15] =
        ["rax", "rbx", "rcx", "rdx", "rsi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi"];
    for ((name, want), got) in NAMES.iter().zip(probe::REGISTER_PATTERNS).zip(got) {
        ensure!(got == want, "{name} came back {got:#x}, want {want:#x}");
    }
    Ok(())
}

fn check_m2p() -> Check {
    let si = start_info();
    // SAFETY: check_start_info verified the p2m array lies in the mapping.
    let p2m = unsafe { core::slice::from_raw_parts(si.mfn_list as *const u64, si.nr_pages as usize) };
    for (pfn, &mfn) in p2m.iter().enumerate() {
        let Some(at) = mfn.checked_mul(8).and_then(|o| o.checked_add(MACH2PHYS_VIRT_START)) else {
            return Err(msg!("p2m[{pfn}] = {mfn:#x} is past the M2P"));
        };
        match probe::read_u64(at) {
            Ok(back) if back == pfn as u64 => {}
            Ok(back) => return Err(msg!("m2p[p2m[{pfn}] = {mfn:#x}] = {back:#x}")),
            Err(p) => {
                let cr2 = p.seen.and_then(|s| s.cr2).unwrap_or(0);
                return Err(msg!("reading the M2P at {at:#x} faulted (cr2 {cr2:#x}): it is not mapped"));
            }
        }
    }
    Ok(())
}
