//! The hypervisor's clock: system time (nanoseconds since boot, from the
//! calibrated TSC) and the wall clock (from the RTC).

use crate::arch::clock;
use hv::sync::SpinLock;
use hv::time::{self, Scale, NS_PER_SEC};

/// Used when calibration fails: any frequency keeps time monotonic.
const FALLBACK_TSC_HZ: u64 = 1_000_000_000;

/// What the clock knows once calibrated.
#[derive(Clone, Copy, Debug)]
struct Clock {
    /// TSC ticks per second.
    hz: u64,
    scale: Scale,
    boot_tsc: u64,
    /// Unix time (ns) at system time 0.
    boot_unix_ns: u64,
}

static CLOCK: SpinLock<Option<Clock>> = SpinLock::new(None);

/// Calibrates the TSC and reads the RTC; logs what it found.
pub fn init() {
    let boot_tsc = clock::rdtsc();
    let hz = clock::calibrate_tsc().unwrap_or_else(|| {
        log::warn!("time: the PIT did not answer; assuming a {} MHz TSC", FALLBACK_TSC_HZ / 1_000_000);
        FALLBACK_TSC_HZ
    });
    let scale = Scale::for_frequency(hz);
    let since_boot = scale.ticks_to_ns(clock::rdtsc().wrapping_sub(boot_tsc));
    let rtc = clock::read_rtc();
    let unix = rtc.and_then(|d| d.unix_seconds());
    let boot_unix_ns = unix.map_or(0, |s| (s * NS_PER_SEC).saturating_sub(since_boot));
    match (rtc, unix) {
        (Some(d), Some(_)) => log::info!(
            "time: TSC {}.{:03} MHz (calibrated against the PIT); wall clock {:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            hz / 1_000_000,
            (hz / 1000) % 1000,
            d.year,
            d.month,
            d.day,
            d.hour,
            d.minute,
            d.second
        ),
        _ => log::warn!("time: TSC {} MHz; the RTC gave no valid date, wall clock starts at 1970", hz / 1_000_000),
    }
    *CLOCK.lock() = Some(Clock { hz, scale, boot_tsc, boot_unix_ns });
    crate::arch::apic::init(hz);
}

/// The TSC's frequency in kHz (0 before calibration).
pub fn tsc_khz() -> u32 {
    CLOCK.lock().map_or(0, |c| u32::try_from(c.hz / 1000).unwrap_or(u32::MAX))
}

/// System time: nanoseconds since boot.
pub fn now() -> u64 {
    let Some(c) = *CLOCK.lock() else { return 0 };
    c.scale.ticks_to_ns(clock::rdtsc().wrapping_sub(c.boot_tsc))
}

/// Brings a vCPU's time record up to date (the version protocol is
/// [`time::publish`]'s).
pub fn publish_vcpu(info: &mut abi::shared_info::VcpuTimeInfo) {
    let Some(c) = *CLOCK.lock() else { return };
    let tsc = clock::rdtsc();
    time::publish(info, c.scale, tsc, c.scale.ticks_to_ns(tsc.wrapping_sub(c.boot_tsc)));
}

/// Publishes time to a domain's shared-info page: the wall clock and vCPU
/// 0's time record, current as of now.
pub fn publish_to(shared: &mut abi::shared_info::SharedInfo) {
    let Some(c) = *CLOCK.lock() else { return };
    let tsc = clock::rdtsc();
    let now = c.scale.ticks_to_ns(tsc.wrapping_sub(c.boot_tsc));
    time::publish_wallclock(shared, c.boot_unix_ns);
    time::publish(&mut shared.vcpu_info[0].time, c.scale, tsc, now);
}
