//! Scheduling and per-vCPU services: `sched_op`, `vcpu_op`, `xen_version`, `console_io`, VIRQs.

// ---- sched_op --------------------------------------------------------------

/// `sched_op`: give up the CPU voluntarily.
pub const SCHEDOP_YIELD: u32 = 0;
/// `sched_op`: unmask events and sleep until one is pending.
pub const SCHEDOP_BLOCK: u32 = 1;
/// `sched_op`: shut the domain down ([`SchedShutdown`]).
pub const SCHEDOP_SHUTDOWN: u32 = 2;
/// `sched_op`: sleep until one of a set of ports is pending ([`SchedPoll`]).
pub const SCHEDOP_POLL: u32 = 3;
/// `sched_op`: shut another domain down ([`SchedRemoteShutdown`]).
pub const SCHEDOP_REMOTE_SHUTDOWN: u32 = 4;
/// `sched_op`: record a shutdown reason without shutting down
/// ([`SchedShutdown`]).
pub const SCHEDOP_SHUTDOWN_CODE: u32 = 5;
/// `sched_op`: set up or kick a domain watchdog.
pub const SCHEDOP_WATCHDOG: u32 = 6;
/// `sched_op`: temporarily pin the vCPU to a physical CPU (dom0).
pub const SCHEDOP_PIN_OVERRIDE: u32 = 7;

/// Shutdown reason: the domain exited normally.
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// Shutdown reason: restart the domain.
pub const SHUTDOWN_REBOOT: u32 = 1;
/// Shutdown reason: the domain suspended itself.
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// Shutdown reason: the domain crashed.
pub const SHUTDOWN_CRASH: u32 = 3;
/// Shutdown reason: the watchdog expired.
pub const SHUTDOWN_WATCHDOG: u32 = 4;
/// Shutdown reason: soft reset (kexec-style restart in place).
pub const SHUTDOWN_SOFT_RESET: u32 = 5;
/// The highest valid shutdown reason.
pub const SHUTDOWN_MAX: u32 = 5;

abi_enum! {
    /// Why a domain shut down (`SHUTDOWN_*`).
    pub enum ShutdownReason: u32 {
        /// [`SHUTDOWN_POWEROFF`].
        Poweroff = SHUTDOWN_POWEROFF,
        /// [`SHUTDOWN_REBOOT`].
        Reboot = SHUTDOWN_REBOOT,
        /// [`SHUTDOWN_SUSPEND`].
        Suspend = SHUTDOWN_SUSPEND,
        /// [`SHUTDOWN_CRASH`].
        Crash = SHUTDOWN_CRASH,
        /// [`SHUTDOWN_WATCHDOG`].
        Watchdog = SHUTDOWN_WATCHDOG,
        /// [`SHUTDOWN_SOFT_RESET`].
        SoftReset = SHUTDOWN_SOFT_RESET,
    }
}

/// `struct sched_shutdown` (4 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SchedShutdown {
    /// IN: `SHUTDOWN_*`.
    pub reason: u32,
}

assert_layout!(SchedShutdown, size = 4, align = 4, { reason @ 0 });

/// `struct sched_poll` (24 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SchedPoll {
    /// IN: guest handle of an array of `u32` ports.
    pub ports: u64,
    /// IN: number of ports.
    pub nr_ports: u32,
    /// Padding (implicit in C).
    pub _pad0: u32,
    /// IN: absolute system-time timeout in ns (0: none).
    pub timeout: u64,
}

assert_layout!(SchedPoll, size = 24, align = 8, {
    ports @ 0, nr_ports @ 8, _pad0 @ 12, timeout @ 16,
});

/// `struct sched_remote_shutdown` (8 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SchedRemoteShutdown {
    /// IN: domain to shut down.
    pub domain_id: u16,
    /// Padding (implicit in C).
    pub _pad0: u16,
    /// IN: `SHUTDOWN_*`.
    pub reason: u32,
}

assert_layout!(SchedRemoteShutdown, size = 8, align = 4, {
    domain_id @ 0, _pad0 @ 2, reason @ 4,
});

// ---- vcpu_op ---------------------------------------------------------------

/// `vcpu_op`: set up a vCPU's initial context ([`crate::arch::VcpuGuestContext`]).
pub const VCPUOP_INITIALISE: u32 = 0;
/// `vcpu_op`: bring a vCPU up.
pub const VCPUOP_UP: u32 = 1;
/// `vcpu_op`: take a vCPU down.
pub const VCPUOP_DOWN: u32 = 2;
/// `vcpu_op`: returns 1 if the vCPU is up.
pub const VCPUOP_IS_UP: u32 = 3;
/// `vcpu_op`: read the vCPU's runstate ([`VcpuRunstateInfo`]).
pub const VCPUOP_GET_RUNSTATE_INFO: u32 = 4;
/// `vcpu_op`: register a guest area kept updated with the runstate
/// ([`VcpuRegisterRunstateMemoryArea`]).
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u32 = 5;
/// `vcpu_op`: start a periodic timer ([`VcpuSetPeriodicTimer`]).
pub const VCPUOP_SET_PERIODIC_TIMER: u32 = 6;
/// `vcpu_op`: stop the periodic timer.
pub const VCPUOP_STOP_PERIODIC_TIMER: u32 = 7;
/// `vcpu_op`: arm the one-shot timer ([`VcpuSetSingleshotTimer`]).
pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
/// `vcpu_op`: stop the one-shot timer.
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9;
/// `vcpu_op`: move the vCPU's `vcpu_info` into a guest page
/// ([`VcpuRegisterVcpuInfo`]).
pub const VCPUOP_REGISTER_VCPU_INFO: u32 = 10;
/// `vcpu_op`: send an NMI to the vCPU.
pub const VCPUOP_SEND_NMI: u32 = 11;
/// `vcpu_op`: the physical CPU id (dom0).
pub const VCPUOP_GET_PHYSID: u32 = 12;
/// `vcpu_op`: register a guest area kept updated with the vCPU's time
/// ([`VcpuRegisterTimeMemoryArea`]).
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u32 = 13;

/// Runstate: running on a physical CPU.
pub const RUNSTATE_RUNNING: i32 = 0;
/// Runstate: runnable but not running.
pub const RUNSTATE_RUNNABLE: i32 = 1;
/// Runstate: blocked (idle).
pub const RUNSTATE_BLOCKED: i32 = 2;
/// Runstate: offline (down, or paused by the toolstack).
pub const RUNSTATE_OFFLINE: i32 = 3;
/// Set in `state_entry_time` while a registered runstate area is being
/// updated (with `VMASST_TYPE_RUNSTATE_UPDATE_FLAG`).
pub const XEN_RUNSTATE_UPDATE: u64 = 1 << 63;

/// `VcpuSetSingleshotTimer.flags`: originally "fail with `-ETIME` if the
/// timeout is in the past"; Xen 4.17.x ignores it (a past timeout fires at
/// once), and so does this hypervisor.
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1 << 0;

/// `struct vcpu_runstate_info` (48 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct VcpuRunstateInfo {
    /// OUT: current `RUNSTATE_*`.
    pub state: i32,
    /// Padding (implicit in C).
    pub _pad0: u32,
    /// OUT: system time (ns) the current state was entered.
    pub state_entry_time: u64,
    /// OUT: ns spent in each `RUNSTATE_*`.
    pub time: [u64; 4],
}

assert_layout!(VcpuRunstateInfo, size = 48, align = 8, {
    state @ 0, _pad0 @ 4, state_entry_time @ 8, time @ 16,
});

/// `struct vcpu_register_runstate_memory_area` (8 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct VcpuRegisterRunstateMemoryArea {
    /// IN: guest virtual address of a [`VcpuRunstateInfo`].
    pub addr: u64,
}

assert_layout!(VcpuRegisterRunstateMemoryArea, size = 8, align = 8, { addr @ 0 });

/// `struct vcpu_set_periodic_timer` (8 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct VcpuSetPeriodicTimer {
    /// IN: period in ns.
    pub period_ns: u64,
}

assert_layout!(VcpuSetPeriodicTimer, size = 8, align = 8, { period_ns @ 0 });

/// `struct vcpu_set_singleshot_timer` (16 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct VcpuSetSingleshotTimer {
    /// IN: absolute system time of expiry, in ns.
    pub timeout_abs_ns: u64,
    /// IN: `VCPU_SSHOTTMR_*`.
    pub flags: u32,
    /// Padding (implicit in C).
    pub _pad0: u32,
}

assert_layout!(VcpuSetSingleshotTimer, size = 16, align = 8, {
    timeout_abs_ns @ 0, flags @ 8, _pad0 @ 12,
});

/// `struct vcpu_register_vcpu_info` (16 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct VcpuRegisterVcpuInfo {
    /// IN: frame of the page to hold the `vcpu_info`.
    pub mfn: u64,
    /// IN: offset of the `vcpu_info` within the page.
    pub offset: u32,
    /// Reserved.
    pub rsvd: u32,
}

assert_layout!(VcpuRegisterVcpuInfo, size = 16, align = 8, { mfn @ 0, offset @ 8, rsvd @ 12 });

/// `struct vcpu_register_time_memory_area` (8 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct VcpuRegisterTimeMemoryArea {
    /// IN: guest virtual address of a [`crate::shared_info::VcpuTimeInfo`].
    pub addr: u64,
}

assert_layout!(VcpuRegisterTimeMemoryArea, size = 8, align = 8, { addr @ 0 });

// ---- xen_version -----------------------------------------------------------

/// `xen_version`: returns `major << 16 | minor`.
pub const XENVER_VERSION: u32 = 0;
/// `xen_version`: copies out the extra version (`char[16]`).
pub const XENVER_EXTRAVERSION: u32 = 1;
/// `xen_version`: copies out compile information.
pub const XENVER_COMPILE_INFO: u32 = 2;
/// `xen_version`: copies out the capabilities string (`char[1024]`).
pub const XENVER_CAPABILITIES: u32 = 3;
/// `xen_version`: copies out the changeset (`char[64]`).
pub const XENVER_CHANGESET: u32 = 4;
/// `xen_version`: copies out [`XenPlatformParameters`].
pub const XENVER_PLATFORM_PARAMETERS: u32 = 5;
/// `xen_version`: fills in [`XenFeatureInfo`].
pub const XENVER_GET_FEATURES: u32 = 6;
/// `xen_version`: returns the page size.
pub const XENVER_PAGESIZE: u32 = 7;
/// `xen_version`: copies out the domain handle (UUID).
pub const XENVER_GUEST_HANDLE: u32 = 8;
/// `xen_version`: copies out the hypervisor command line (`char[1024]`).
pub const XENVER_COMMANDLINE: u32 = 9;
/// `xen_version`: copies out the build id.
pub const XENVER_BUILD_ID: u32 = 10;

/// Length of the `XENVER_extraversion` buffer.
pub const XEN_EXTRAVERSION_LEN: usize = 16;
/// Length of the `XENVER_capabilities` buffer.
pub const XEN_CAPABILITIES_INFO_LEN: usize = 1024;
/// Length of the `XENVER_changeset` buffer.
pub const XEN_CHANGESET_INFO_LEN: usize = 64;

/// `struct xen_platform_parameters` (8 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenPlatformParameters {
    /// OUT: start of the hypervisor's virtual range.
    pub virt_start: u64,
}

assert_layout!(XenPlatformParameters, size = 8, align = 8, { virt_start @ 0 });

/// `struct xen_feature_info` (8 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenFeatureInfo {
    /// IN: which 32-bit submap to return.
    pub submap_idx: u32,
    /// OUT: the submap (bit `n` is feature `32 * submap_idx + n`).
    pub submap: u32,
}

assert_layout!(XenFeatureInfo, size = 8, align = 4, { submap_idx @ 0, submap @ 4 });

/// Feature: the guest may write its page tables directly.
pub const XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0;
/// Feature: the guest may write its descriptor tables directly.
pub const XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
/// Feature: the hypervisor translates guest physical addresses.
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
/// Feature: the guest kernel runs in supervisor mode.
pub const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;
/// Feature: PAE page directories may be above 4 GiB.
pub const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
/// Feature: `MMU_PT_UPDATE_PRESERVE_AD` is supported.
pub const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
/// Feature: `MMUEXT_CLEAR_PAGE` / `MMUEXT_COPY_PAGE` are supported.
pub const XENFEAT_HIGHMEM_ASSIST: u32 = 6;
/// Feature: grant mappings may set the PTE's available bits.
pub const XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7;
/// Feature: the HVM callback vector is supported.
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
/// Feature: pvclock is safe on HVM.
pub const XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9;
/// Feature: PIRQs may be used by HVM guests.
pub const XENFEAT_HVM_PIRQS: u32 = 10;
/// Feature: operation as dom0 is supported.
pub const XENFEAT_DOM0: u32 = 11;
/// Feature: `XENMEMF_vnode` is supported. (12, `grant_map_identity`, is
/// deprecated; Xen 4.17's header comments it out.)
pub const XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
/// Feature: the Arm SMC calling convention is supported.
pub const XENFEAT_ARM_SMCCC_SUPPORTED: u32 = 14;
/// Feature: Linux's RSDP location is unrestricted.
pub const XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 15;
/// Feature: the domain is not direct-mapped.
pub const XENFEAT_NOT_DIRECT_MAPPED: u32 = 16;
/// Feature: the domain is direct-mapped.
pub const XENFEAT_DIRECT_MAPPED: u32 = 17;
/// Number of 32-bit feature submaps.
pub const XENFEAT_NR_SUBMAPS: u32 = 1;

// ---- console_io ------------------------------------------------------------

/// `console_io`: write `count` bytes from `buf` to the hypervisor console.
pub const CONSOLEIO_WRITE: u32 = 0;
/// `console_io`: read up to `count` bytes of console input into `buf`.
pub const CONSOLEIO_READ: u32 = 1;

// ---- virtual IRQs ----------------------------------------------------------

/// VIRQ (per vCPU): timer expiry.
pub const VIRQ_TIMER: u32 = 0;
/// VIRQ (per vCPU): request to dump debug information.
pub const VIRQ_DEBUG: u32 = 1;
/// VIRQ (global, dom0): bytes received on the emergency console.
pub const VIRQ_CONSOLE: u32 = 2;
/// VIRQ (global, dom0): exceptional event for some domain.
pub const VIRQ_DOM_EXC: u32 = 3;
/// VIRQ (global, dom0): trace buffer has records.
pub const VIRQ_TBUF: u32 = 4;
/// VIRQ (global, dom0): a domain paused for debugging.
pub const VIRQ_DEBUGGER: u32 = 6;
/// VIRQ (per vCPU): oprofile sample available.
pub const VIRQ_XENOPROF: u32 = 7;
/// VIRQ (global, dom0): bytes received on the console ring.
pub const VIRQ_CON_RING: u32 = 8;
/// VIRQ (global, dom0): physical CPU state changed.
pub const VIRQ_PCPU_STATE: u32 = 9;
/// VIRQ (global, dom0): memory event.
pub const VIRQ_MEM_EVENT: u32 = 10;
/// VIRQ (global): Argo message notification.
pub const VIRQ_ARGO: u32 = 11;
/// VIRQ (global, dom0): hypervisor heap is low.
pub const VIRQ_ENOMEM: u32 = 12;
/// VIRQ (per vCPU): PMU interrupt.
pub const VIRQ_XENPMU: u32 = 13;
/// First architecture-specific VIRQ.
pub const VIRQ_ARCH_0: u32 = 16;
/// Architecture-specific VIRQ 1.
pub const VIRQ_ARCH_1: u32 = 17;
/// Architecture-specific VIRQ 2.
pub const VIRQ_ARCH_2: u32 = 18;
/// Architecture-specific VIRQ 3.
pub const VIRQ_ARCH_3: u32 = 19;
/// Architecture-specific VIRQ 4.
pub const VIRQ_ARCH_4: u32 = 20;
/// Architecture-specific VIRQ 5.
pub const VIRQ_ARCH_5: u32 = 21;
/// Architecture-specific VIRQ 6.
pub const VIRQ_ARCH_6: u32 = 22;
/// Last architecture-specific VIRQ.
pub const VIRQ_ARCH_7: u32 = 23;
/// Number of VIRQs.
pub const NR_VIRQS: u32 = 24;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_reason_conversion() {
        assert_eq!(ShutdownReason::try_from(3), Ok(ShutdownReason::Crash));
        assert_eq!(ShutdownReason::try_from(SHUTDOWN_MAX + 1), Err(crate::UnknownValue(6)));
        assert_eq!(ShutdownReason::ALL.len() as u32, SHUTDOWN_MAX + 1);
        for &r in ShutdownReason::ALL {
            assert_eq!(ShutdownReason::try_from(u32::from(r)), Ok(r));
        }
    }
}
