//! Time: turning TSC ticks into nanoseconds, and publishing time to guests.
//!
//! Guests compute system time from their `vcpu_time_info` as
//! `system_time + (((tsc - tsc_timestamp) << shift) * mul) >> 32` (a right
//! shift when `shift` is negative). [`Scale::for_frequency`] finds the
//! `mul`/`shift` pair for a TSC frequency as Xen does: the largest
//! precision whose multiplier still fits 32 bits. Updates follow the
//! version protocol: the version is odd while the record changes and even
//! when it is consistent, so a guest retries a read that straddles one.

use abi::shared_info::{SharedInfo, VcpuTimeInfo};

/// Nanoseconds per second.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// A TSC-to-nanoseconds conversion in the pvclock form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    /// 32.32 fixed-point multiplier.
    pub mul: u32,
    /// Binary shift applied to the TSC delta first.
    pub shift: i8,
}

impl Scale {
    /// The scale for a TSC running at `hz` ticks per second (`hz > 0`).
    pub fn for_frequency(hz: u64) -> Scale {
        // Want mul / 2^32 * 2^shift = NS_PER_SEC / hz, with mul < 2^32.
        let hz = hz.max(1);
        let mut shift: i32 = 0;
        let mut num = NS_PER_SEC;
        let mut den = hz;
        // Bring the ratio into [0.5, 1) so the multiplier uses all 32 bits.
        while num >= den {
            if den <= u64::MAX / 2 {
                den *= 2;
            } else {
                num /= 2;
            }
            shift += 1;
        }
        while num * 2 < den {
            num *= 2;
            shift -= 1;
        }
        let mul = ((u128::from(num) << 32) / u128::from(den)) as u32;
        Scale { mul, shift: shift.clamp(-31, 31) as i8 }
    }

    /// Nanoseconds for `ticks` TSC ticks, as a guest computes them.
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        let shifted = if self.shift >= 0 { ticks << self.shift } else { ticks >> -self.shift };
        ((u128::from(shifted) * u128::from(self.mul)) >> 32) as u64
    }
}

/// Publishes a consistent time record: `system_time` nanoseconds at TSC
/// `tsc`, under the version protocol.
pub fn publish(info: &mut VcpuTimeInfo, scale: Scale, tsc: u64, system_time: u64) {
    info.version = info.version.wrapping_add(1) | 1;
    info.tsc_timestamp = tsc;
    info.system_time = system_time;
    info.tsc_to_system_mul = scale.mul;
    info.tsc_shift = scale.shift;
    info.version = info.version.wrapping_add(1);
}

/// Publishes the wall clock: the time of day at system time 0, as seconds
/// and nanoseconds since the Unix epoch, under the version protocol.
pub fn publish_wallclock(shared: &mut SharedInfo, boot_unix_ns: u64) {
    shared.wc_version = shared.wc_version.wrapping_add(1) | 1;
    let secs = boot_unix_ns / NS_PER_SEC;
    shared.wc_sec = secs as u32;
    shared.wc_sec_hi = (secs >> 32) as u32;
    shared.wc_nsec = (boot_unix_ns % NS_PER_SEC) as u32;
    shared.wc_version = shared.wc_version.wrapping_add(1);
}

/// A calendar date and time (UTC), as the RTC reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    /// Full year, e.g. 2026.
    pub year: u32,
    /// 1–12.
    pub month: u32,
    /// 1–31.
    pub day: u32,
    /// 0–23.
    pub hour: u32,
    /// 0–59.
    pub minute: u32,
    /// 0–59.
    pub second: u32,
}

impl DateTime {
    /// Seconds since 1970-01-01T00:00:00Z, or `None` for an impossible
    /// date (a broken RTC must not become a wild wall clock).
    pub fn unix_seconds(&self) -> Option<u64> {
        let d = *self;
        if !(1970..=9999).contains(&d.year)
            || !(1..=12).contains(&d.month)
            || !(1..=31).contains(&d.day)
            || d.hour > 23
            || d.minute > 59
            || d.second > 59
        {
            return None;
        }
        // Days from the civil date (Howard Hinnant's algorithm).
        let (y, m) = if d.month <= 2 { (i64::from(d.year) - 1, d.month + 9) } else { (i64::from(d.year), d.month - 3) };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * i64::from(m) + 2) / 5 + i64::from(d.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        u64::try_from(days * 86_400 + i64::from(d.hour * 3600 + d.minute * 60 + d.second)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_match_the_guests_formula() {
        for hz in [1_000_000u64, 100_000_000, 1_000_000_000, 2_893_000_000, 3_000_000_000, 5_123_456_789] {
            let s = Scale::for_frequency(hz);
            let mut info = VcpuTimeInfo::default();
            publish(&mut info, s, 1000, 5_000);
            for ticks in [0, 1, hz / 1000, hz, 60 * hz] {
                let want = (u128::from(ticks) * u128::from(NS_PER_SEC) / u128::from(hz)) as u64;
                let got = info.system_time_at(1000 + ticks) - 5_000;
                let err = got.abs_diff(want);
                // Within one part in 2^30 plus a nanosecond of rounding.
                assert!(err <= want / (1 << 30) + 1, "{hz} Hz, {ticks} ticks: {got} vs {want}");
                assert_eq!(s.ticks_to_ns(ticks), got);
            }
        }
    }

    #[test]
    fn versions_are_even_after_each_update() {
        let mut info = VcpuTimeInfo::default();
        publish(&mut info, Scale { mul: 1 << 31, shift: 1 }, 10, 20);
        assert_eq!(info.version % 2, 0);
        let v = info.version;
        publish(&mut info, Scale { mul: 1 << 31, shift: 1 }, 11, 21);
        assert_eq!(info.version, v + 2);
        let mut shared = SharedInfo::default();
        publish_wallclock(&mut shared, 1_764_000_000 * NS_PER_SEC + 5);
        assert_eq!((shared.wc_version, shared.wc_sec, shared.wc_nsec, shared.wc_sec_hi), (2, 1_764_000_000, 5, 0));
    }

    #[test]
    fn rtc_dates_become_unix_time() {
        let t = |year, month, day, hour, minute, second| DateTime { year, month, day, hour, minute, second };
        assert_eq!(t(1970, 1, 1, 0, 0, 0).unix_seconds(), Some(0));
        assert_eq!(t(2000, 3, 1, 0, 0, 0).unix_seconds(), Some(951_868_800));
        assert_eq!(t(2026, 11, 24, 20, 13, 0).unix_seconds(), Some(1_795_551_180));
        assert_eq!(t(2026, 13, 1, 0, 0, 0).unix_seconds(), None);
        assert_eq!(t(1969, 12, 31, 23, 59, 59).unix_seconds(), None);
    }
}
