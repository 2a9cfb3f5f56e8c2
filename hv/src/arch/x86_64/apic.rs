//! The local APIC: the hypervisor's one-shot timer interrupt.
//!
//! The APIC is used in xAPIC mode through its MMIO page, reached through
//! the direct map (it sits below 4 GiB, which the boot direct map covers;
//! QEMU does not care about the mapping's cache type, real hardware would
//! want it uncached). Its timer runs one-shot, divide-by-1, on
//! [`TIMER_VECTOR`]; its rate is measured against the calibrated TSC.

use super::clock::rdtsc;
use super::cpu;
use hv::layout::DIRECTMAP_START;
use hv::sync::SpinLock;
use hv::time::NS_PER_SEC;

/// The timer's interrupt vector (Xen's `LOCAL_TIMER_VECTOR` is 0xf9; any
/// vector above the exceptions works, and guests cannot raise it: its gate
/// has DPL 0).
pub const TIMER_VECTOR: u8 = 0xf0;
/// The APIC's spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xff;

const MSR_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;

const REG_TPR: usize = 0x80;
const REG_EOI: usize = 0xb0;
const REG_SVR: usize = 0xf0;
const REG_LVT_TIMER: usize = 0x320;
const REG_INITIAL_COUNT: usize = 0x380;
const REG_CURRENT_COUNT: usize = 0x390;
const REG_DIVIDE: usize = 0x3e0;

const SVR_ENABLE: u32 = 1 << 8;
const LVT_MASKED: u32 = 1 << 16;
const DIVIDE_BY_1: u32 = 0xb;

#[derive(Clone, Copy, Debug)]
struct Apic {
    /// The register page, through the direct map.
    base: u64,
    /// Timer ticks per second.
    hz: u64,
}

static APIC: SpinLock<Option<Apic>> = SpinLock::new(None);

impl Apic {
    fn read(&self, reg: usize) -> u32 {
        // SAFETY: `base` is the APIC's register page in the direct map and
        // `reg` one of its 16-byte-aligned 32-bit registers.
        unsafe { core::ptr::read_volatile((self.base + reg as u64) as *const u32) }
    }

    fn write(&self, reg: usize, value: u32) {
        // SAFETY: as for `read`; writes to these registers only affect the
        // APIC's own state.
        unsafe { core::ptr::write_volatile((self.base + reg as u64) as *mut u32, value) }
    }
}

/// Enables the local APIC and measures its timer against the TSC (which
/// runs at `tsc_hz`). Logs and returns `false` if there is no usable APIC:
/// the hypervisor then has no preemption and no guest timers.
pub fn init(tsc_hz: u64) -> bool {
    let (_, _, _, edx) = cpu::cpuid(1);
    if edx & (1 << 9) == 0 {
        log::error!("apic: the CPU has no local APIC: no timer interrupt");
        return false;
    }
    let msr = cpu::rdmsr(MSR_APIC_BASE);
    let phys = msr & 0x000f_ffff_ffff_f000;
    if phys >= hv::layout::BOOT_DIRECTMAP_BYTES {
        log::error!("apic: registers at {phys:#x}, beyond the direct map: no timer interrupt");
        return false;
    }
    // SAFETY: setting the global enable bit of the APIC base keeps its
    // address; the APIC only raises vectors the IDT handles.
    unsafe { cpu::wrmsr(MSR_APIC_BASE, msr | APIC_BASE_ENABLE) };
    let mut apic = Apic { base: DIRECTMAP_START + phys, hz: 0 };
    apic.write(REG_SVR, SVR_ENABLE | u32::from(SPURIOUS_VECTOR));
    apic.write(REG_TPR, 0);
    apic.write(REG_DIVIDE, DIVIDE_BY_1);
    apic.write(REG_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));

    // Count down from the top for about 10 ms of TSC time.
    apic.write(REG_INITIAL_COUNT, u32::MAX);
    let start_tsc = rdtsc();
    let window = (tsc_hz / 100).max(1);
    while rdtsc().wrapping_sub(start_tsc) < window {
        core::hint::spin_loop();
    }
    let left = apic.read(REG_CURRENT_COUNT);
    let tsc = rdtsc().wrapping_sub(start_tsc);
    apic.write(REG_INITIAL_COUNT, 0);
    let ticks = u64::from(u32::MAX - left);
    if ticks == 0 || tsc == 0 {
        log::error!("apic: the timer did not count: no timer interrupt");
        return false;
    }
    apic.hz = ((u128::from(ticks) * u128::from(tsc_hz)) / u128::from(tsc)) as u64;
    apic.write(REG_LVT_TIMER, u32::from(TIMER_VECTOR));
    log::info!(
        "apic: timer {}.{:03} MHz, one-shot on vector {:#x}",
        apic.hz / 1_000_000,
        (apic.hz / 1000) % 1000,
        TIMER_VECTOR
    );
    *APIC.lock() = Some(apic);
    true
}

/// Arms the one-shot timer to fire `ns` nanoseconds from now (at least one
/// tick; the longest wait the counter holds if `ns` is longer: the caller
/// re-arms when it fires early). Replaces any earlier setting.
pub fn arm(ns: u64) {
    let Some(apic) = *APIC.lock() else { return };
    let ticks = (u128::from(ns) * u128::from(apic.hz) / u128::from(NS_PER_SEC)).clamp(1, u128::from(u32::MAX));
    apic.write(REG_INITIAL_COUNT, ticks as u32);
}

/// Stops the timer.
pub fn disarm() {
    if let Some(apic) = *APIC.lock() {
        apic.write(REG_INITIAL_COUNT, 0);
    }
}

/// Acknowledges the interrupt being handled.
pub fn eoi() {
    if let Some(apic) = *APIC.lock() {
        apic.write(REG_EOI, 0);
    }
}
