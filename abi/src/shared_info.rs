//! The shared-info page: per-vCPU event and time state, event bitmaps, wallclock.
//!
//! The hypervisor writes it; the guest maps it (by the machine address in
//! `start_info.shared_info`) and reads it, and also writes the event-mask
//! fields.

/// vCPUs with a `vcpu_info` slot in the shared-info page
/// (`XEN_LEGACY_MAX_VCPUS`).
pub const MAX_VIRT_CPUS: usize = 32;

/// Event-channel ports in the 2-level ABI: 64 × 64 bits.
pub const EVTCHN_2L_NR_CHANNELS: usize = 4096;

/// `vcpu_time_info.flags`: the TSC is stable across vCPUs.
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
/// `vcpu_time_info.flags`: the guest was stopped (for watchdogs).
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;

/// `struct vcpu_time_info`: a vCPU's view of system time (32 bytes).
///
/// The hypervisor increments `version` before and after each update, so an
/// odd `version` means an update is in progress; a reader retries until it
/// sees the same even `version` before and after reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct VcpuTimeInfo {
    /// OUT: update counter (odd while updating).
    pub version: u32,
    /// Padding.
    pub pad0: u32,
    /// OUT: TSC at the last update.
    pub tsc_timestamp: u64,
    /// OUT: system time (ns since boot) at `tsc_timestamp`.
    pub system_time: u64,
    /// OUT: TSC-to-ns multiplier, a 32.32 fixed-point fraction.
    pub tsc_to_system_mul: u32,
    /// OUT: shift applied to a TSC delta before multiplying (negative: right).
    pub tsc_shift: i8,
    /// OUT: `XEN_PVCLOCK_*` flags.
    pub flags: u8,
    /// Padding.
    pub pad1: [u8; 2],
}

assert_layout!(VcpuTimeInfo, size = 32, align = 8, {
    version @ 0, pad0 @ 4, tsc_timestamp @ 8, system_time @ 16,
    tsc_to_system_mul @ 24, tsc_shift @ 28, flags @ 29, pad1 @ 30,
});

impl VcpuTimeInfo {
    /// System time in ns at TSC value `tsc`:
    /// `system_time + ((((tsc - tsc_timestamp) << tsc_shift) * mul) >> 32)`,
    /// shifting right when `tsc_shift` is negative. Wraps rather than panics.
    pub const fn system_time_at(&self, tsc: u64) -> u64 {
        let delta = tsc.wrapping_sub(self.tsc_timestamp);
        let shift = self.tsc_shift as i32;
        let shifted = if shift >= 0 {
            if shift >= 64 {
                0
            } else {
                delta << shift
            }
        } else if shift <= -64 {
            0
        } else {
            delta >> -shift
        };
        let scaled = ((shifted as u128 * self.tsc_to_system_mul as u128) >> 32) as u64;
        self.system_time.wrapping_add(scaled)
    }
}

/// `struct arch_vcpu_info` (x86_64): per-vCPU architectural state (16 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ArchVcpuInfo {
    /// OUT: the faulting address of the last `#PF` bounced to the guest.
    pub cr2: u64,
    /// Padding (`sizeof(vcpu_info) == 64`).
    pub pad: u64,
}

assert_layout!(ArchVcpuInfo, size = 16, align = 8, { cr2 @ 0, pad @ 8 });

/// `struct vcpu_info`: one vCPU's event and time state (64 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct VcpuInfo {
    /// OUT (guest clears): non-zero when an upcall is pending.
    pub evtchn_upcall_pending: u8,
    /// IN: non-zero masks upcalls (the virtual interrupt flag, inverted).
    pub evtchn_upcall_mask: u8,
    /// Padding (C names its first byte `pad0` only when there is no mask).
    pub _pad0: [u8; 6],
    /// OUT (guest clears): selector of `evtchn_pending` words to scan.
    pub evtchn_pending_sel: u64,
    /// OUT: architectural state.
    pub arch: ArchVcpuInfo,
    /// OUT: time state.
    pub time: VcpuTimeInfo,
}

assert_layout!(VcpuInfo, size = 64, align = 8, {
    evtchn_upcall_pending @ 0, evtchn_upcall_mask @ 1, _pad0 @ 2,
    evtchn_pending_sel @ 8, arch @ 16, time @ 32,
});

/// `struct arch_shared_info` (x86_64): p2m bookkeeping (48 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ArchSharedInfo {
    /// IN: number of valid entries in the p2m.
    pub max_pfn: u64,
    /// IN: frame of the p2m frame-list-list (0 unset, !0 invalid).
    pub pfn_to_mfn_frame_list_list: u64,
    /// OUT: NMI reason bits.
    pub nmi_reason: u64,
    /// IN: cr3 of the address space where `p2m_vaddr` is valid (0: unused).
    pub p2m_cr3: u64,
    /// IN: virtual address of the linear p2m list.
    pub p2m_vaddr: u64,
    /// IN: p2m mapping generation (odd while changing).
    pub p2m_generation: u64,
}

assert_layout!(ArchSharedInfo, size = 48, align = 8, {
    max_pfn @ 0, pfn_to_mfn_frame_list_list @ 8, nmi_reason @ 16,
    p2m_cr3 @ 24, p2m_vaddr @ 32, p2m_generation @ 40,
});

/// `struct shared_info`: the shared-info page's contents (3136 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct SharedInfo {
    /// Per-vCPU state for vCPUs `0..MAX_VIRT_CPUS`.
    pub vcpu_info: [VcpuInfo; MAX_VIRT_CPUS],
    /// OUT (guest clears): one pending bit per event-channel port.
    pub evtchn_pending: [u64; 64],
    /// IN: one mask bit per event-channel port.
    pub evtchn_mask: [u64; 64],
    /// OUT: wallclock update counter (odd while updating).
    pub wc_version: u32,
    /// OUT: wallclock seconds at system time 0 (low 32 bits).
    pub wc_sec: u32,
    /// OUT: wallclock nanoseconds at system time 0.
    pub wc_nsec: u32,
    /// OUT: wallclock seconds, high 32 bits.
    pub wc_sec_hi: u32,
    /// Architectural part.
    pub arch: ArchSharedInfo,
}

assert_layout!(SharedInfo, size = 3136, align = 8, {
    vcpu_info @ 0x000, evtchn_pending @ 0x800, evtchn_mask @ 0xa00,
    wc_version @ 0xc00, wc_sec @ 0xc04, wc_nsec @ 0xc08, wc_sec_hi @ 0xc0c,
    arch @ 0xc10,
});

const _: () = assert!(64 * 64 == EVTCHN_2L_NR_CHANNELS);

impl SharedInfo {
    /// An all-zero shared-info page.
    pub const fn zeroed() -> Self {
        SharedInfo {
            vcpu_info: [VcpuInfo {
                evtchn_upcall_pending: 0,
                evtchn_upcall_mask: 0,
                _pad0: [0; 6],
                evtchn_pending_sel: 0,
                arch: ArchVcpuInfo { cr2: 0, pad: 0 },
                time: VcpuTimeInfo {
                    version: 0,
                    pad0: 0,
                    tsc_timestamp: 0,
                    system_time: 0,
                    tsc_to_system_mul: 0,
                    tsc_shift: 0,
                    flags: 0,
                    pad1: [0; 2],
                },
            }; MAX_VIRT_CPUS],
            evtchn_pending: [0; 64],
            evtchn_mask: [0; 64],
            wc_version: 0,
            wc_sec: 0,
            wc_nsec: 0,
            wc_sec_hi: 0,
            arch: ArchSharedInfo {
                max_pfn: 0,
                pfn_to_mfn_frame_list_list: 0,
                nmi_reason: 0,
                p2m_cr3: 0,
                p2m_vaddr: 0,
                p2m_generation: 0,
            },
        }
    }
}

impl Default for SharedInfo {
    fn default() -> Self {
        Self::zeroed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(tsc_timestamp: u64, system_time: u64, mul: u32, shift: i8) -> VcpuTimeInfo {
        VcpuTimeInfo { tsc_timestamp, system_time, tsc_to_system_mul: mul, tsc_shift: shift, ..VcpuTimeInfo::default() }
    }

    #[test]
    fn system_time_scales_tsc_deltas() {
        // mul = 0.5, shift = +1: one ns per tick.
        let t = time(1000, 5_000, 0x8000_0000, 1);
        assert_eq!(t.system_time_at(1000), 5_000);
        assert_eq!(t.system_time_at(1234), 5_234);
        // mul = 0.5, shift = -1: one ns per four ticks.
        let t = time(0, 0, 0x8000_0000, -1);
        assert_eq!(t.system_time_at(400), 100);
    }

    #[test]
    fn system_time_never_panics() {
        let t = time(u64::MAX, u64::MAX, u32::MAX, 127);
        let _ = t.system_time_at(0);
        let t = time(0, u64::MAX, u32::MAX, -128);
        let _ = t.system_time_at(u64::MAX);
    }
}
