//! Hardware clocks: the PIT (to calibrate the TSC) and the CMOS RTC.

use super::cpu::{inb, outb};
use hv::time::DateTime;

/// The PIT's input clock.
const PIT_HZ: u64 = 1_193_182;

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects; the hypervisor runs at CPL 0.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Measures the TSC frequency against PIT channel 2 over about 10 ms.
/// `None` if the PIT never signals (no PIT, or a broken one).
pub fn calibrate_tsc() -> Option<u64> {
    const LATCH: u64 = PIT_HZ / 100;
    // Gate channel 2 on, speaker off; mode 0, binary, low then high byte.
    outb(0x61, (inb(0x61) & !0x02) | 0x01);
    outb(0x43, 0xb0);
    outb(0x42, (LATCH & 0xff) as u8);
    outb(0x42, (LATCH >> 8) as u8);
    let start = rdtsc();
    // OUT2 (port 0x61 bit 5) rises when the count reaches zero. Bounded:
    // a missing PIT must not hang the boot.
    for _ in 0..50_000_000u32 {
        if inb(0x61) & 0x20 != 0 {
            let ticks = rdtsc().wrapping_sub(start);
            return (ticks > 0).then(|| ticks * PIT_HZ / LATCH);
        }
    }
    None
}

fn cmos(reg: u8) -> u8 {
    outb(0x70, reg);
    inb(0x71)
}

fn read_raw() -> [u8; 7] {
    [cmos(0x00), cmos(0x02), cmos(0x04), cmos(0x07), cmos(0x08), cmos(0x09), cmos(0x32)]
}

/// Reads the RTC's date and time (UTC, as QEMU keeps it), or `None` if it
/// never settles.
pub fn read_rtc() -> Option<DateTime> {
    // Read until two consecutive reads agree, outside an update cycle.
    let mut last = None;
    for _ in 0..1000 {
        if cmos(0x0a) & 0x80 != 0 {
            continue;
        }
        let now = read_raw();
        if last == Some(now) {
            return Some(decode(now, cmos(0x0b)));
        }
        last = Some(now);
    }
    None
}

/// Decodes CMOS registers: BCD unless status B bit 2; 12-hour unless bit 1.
fn decode([sec, min, hour, day, month, year, century]: [u8; 7], status_b: u8) -> DateTime {
    let binary = status_b & 0x04 != 0;
    let v = |b: u8| u32::from(if binary { b } else { (b & 0x0f) + (b >> 4) * 10 });
    let pm = hour & 0x80 != 0;
    let mut h = v(hour & 0x7f);
    if status_b & 0x02 == 0 {
        h = (h % 12) + if pm { 12 } else { 0 };
    }
    let century = match v(century) {
        c @ 19..=99 => c,
        _ => 20,
    };
    DateTime { year: century * 100 + v(year), month: v(month), day: v(day), hour: h, minute: v(min), second: v(sec) }
}
