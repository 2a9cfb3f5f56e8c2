//! `sysctl`: the toolstack's whole-host operations (console ring, host facts, domain list).
//!
//! One hypercall (`sysctl`, number 35) carries every operation: its single
//! argument points to a [`XenSysctl`], whose `cmd` names the operation
//! (`XEN_SYSCTL_*`) and whose union `u` holds the operation's own struct.
//! Xen copies the whole struct in, acts, and copies it back out. Build a
//! call with a constructor named after the command ([`XenSysctl::physinfo`],
//! ...) and read results with the `u_*` accessors.
//!
//! # Who may call, and how it fails
//!
//! - Only a privileged domain (the control domain, dom0) may use `sysctl`;
//!   Xen's default policy answers anyone else `-EPERM`.
//! - `interface_version` must be [`XEN_SYSCTL_INTERFACE_VERSION`]; any other
//!   value is refused with `-EACCES` before anything else is looked at.
//! - An unknown command is `-ENOSYS`.
//!
//! # The operations a toolstack uses (Xen 4.17)
//!
//! - `readconsole` ([`XenSysctlReadconsole`]): copies the hypervisor's
//!   console ring (its log) into a guest buffer: from the oldest byte still
//!   held, or with `incremental` from `index` if that is still in the ring.
//!   OUT: `count` bytes written and the `index` to continue from; with
//!   `clear` the bytes read are dropped from the ring.
//! - `physinfo` ([`XenSysctlPhysinfo`]): the host's CPU topology, memory
//!   totals and capabilities (`XEN_SYSCTL_PHYSCAP_*`). No input.
//! - `getdomaininfolist` ([`XenSysctlGetdomaininfolist`]): writes up to
//!   `max_domains` [`crate::domctl::XenDomctlGetdomaininfo`] records, one
//!   per domain whose id is at or above `first_domain`, in id order, into a
//!   guest array. OUT: how many it wrote.
//!
//! The other command numbers are listed for completeness; their payloads
//! are not defined here.

use crate::domctl::{read_union, wire_struct, write_union};

/// The `interface_version` every [`XenSysctl`] must carry (Xen 4.17).
pub const XEN_SYSCTL_INTERFACE_VERSION: u32 = 0x15;

// ---- commands --------------------------------------------------------------

/// Read the hypervisor's console ring ([`XenSysctlReadconsole`]).
pub const XEN_SYSCTL_READCONSOLE: u32 = 1;
/// Trace buffer control.
pub const XEN_SYSCTL_TBUF_OP: u32 = 2;
/// Read the host's physical facts ([`XenSysctlPhysinfo`]).
pub const XEN_SYSCTL_PHYSINFO: u32 = 3;
/// Read the id of the default scheduler.
pub const XEN_SYSCTL_SCHED_ID: u32 = 4;
/// Software performance counters.
pub const XEN_SYSCTL_PERFC_OP: u32 = 5;
/// List domains ([`XenSysctlGetdomaininfolist`]).
pub const XEN_SYSCTL_GETDOMAININFOLIST: u32 = 6;
/// Inject debug keys (as typed on the hypervisor console).
pub const XEN_SYSCTL_DEBUG_KEYS: u32 = 7;
/// Per-physical-CPU idle time.
pub const XEN_SYSCTL_GETCPUINFO: u32 = 8;
/// Free memory by NUMA node and zone.
pub const XEN_SYSCTL_AVAILHEAP: u32 = 9;
/// Power-management statistics.
pub const XEN_SYSCTL_GET_PMSTAT: u32 = 10;
/// Bring physical CPUs on or off line.
pub const XEN_SYSCTL_CPU_HOTPLUG: u32 = 11;
/// Power-management control (cpufreq, C-states).
pub const XEN_SYSCTL_PM_OP: u32 = 12;
/// Take machine pages off line.
pub const XEN_SYSCTL_PAGE_OFFLINE_OP: u32 = 14;
/// Lock profiling.
pub const XEN_SYSCTL_LOCKPROF_OP: u32 = 15;
/// Physical CPU topology.
pub const XEN_SYSCTL_CPUTOPOINFO: u32 = 16;
/// NUMA topology.
pub const XEN_SYSCTL_NUMAINFO: u32 = 17;
/// CPU pool management.
pub const XEN_SYSCTL_CPUPOOL_OP: u32 = 18;
/// Scheduler-wide parameters.
pub const XEN_SYSCTL_SCHEDULER_OP: u32 = 19;
/// Code coverage (gcov).
pub const XEN_SYSCTL_COVERAGE_OP: u32 = 20;
/// Cache monitoring (Intel PSR CMT).
pub const XEN_SYSCTL_PSR_CMT_OP: u32 = 21;
/// PCI device topology.
pub const XEN_SYSCTL_PCITOPOINFO: u32 = 22;
/// Cache allocation (Intel PSR CAT/MBA).
pub const XEN_SYSCTL_PSR_ALLOC: u32 = 23;
/// CPUID levelling capabilities.
pub const XEN_SYSCTL_GET_CPU_LEVELLING_CAPS: u32 = 25;
/// A CPUID featureset.
pub const XEN_SYSCTL_GET_CPU_FEATURESET: u32 = 26;
/// Live patching.
pub const XEN_SYSCTL_LIVEPATCH_OP: u32 = 27;
/// A system CPUID and MSR policy.
pub const XEN_SYSCTL_GET_CPU_POLICY: u32 = 29;

// ---- the call --------------------------------------------------------------

/// `struct xen_sysctl`: the argument of every `sysctl` (136 bytes).
///
/// `u` is C's union of the per-command structs, padded to 128 bytes and
/// 8-aligned; read and write it with the `u_*` / `set_u_*` accessors for the
/// struct `cmd` names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenSysctl {
    /// IN: `XEN_SYSCTL_*`.
    pub cmd: u32,
    /// IN: must be [`XEN_SYSCTL_INTERFACE_VERSION`] (else `-EACCES`).
    pub interface_version: u32,
    /// IN/OUT: the command's struct, as raw storage.
    pub u: [u64; 16],
}

assert_layout!(XenSysctl, size = 136, align = 8, { cmd @ 0, interface_version @ 4, u @ 8 });

impl XenSysctl {
    /// A call of command `cmd` at this crate's interface version, with `u`
    /// zeroed.
    pub const fn new(cmd: u32) -> XenSysctl {
        XenSysctl { cmd, interface_version: XEN_SYSCTL_INTERFACE_VERSION, u: [0; 16] }
    }

    /// `XEN_SYSCTL_readconsole` with `op` (buffer, size, start index,
    /// flags); the answer is [`XenSysctl::u_readconsole`].
    pub fn readconsole(op: &XenSysctlReadconsole) -> XenSysctl {
        let mut s = XenSysctl::new(XEN_SYSCTL_READCONSOLE);
        s.set_u_readconsole(op);
        s
    }

    /// `XEN_SYSCTL_physinfo`; the answer is [`XenSysctl::u_physinfo`].
    pub const fn physinfo() -> XenSysctl {
        XenSysctl::new(XEN_SYSCTL_PHYSINFO)
    }

    /// `XEN_SYSCTL_getdomaininfolist`: up to `max_domains` records, from
    /// domain `first_domain` up, into the array of
    /// [`crate::domctl::XenDomctlGetdomaininfo`] at guest handle `buffer`;
    /// the count is [`XenSysctl::u_getdomaininfolist`]`.num_domains`.
    pub fn getdomaininfolist(first_domain: u16, max_domains: u32, buffer: u64) -> XenSysctl {
        let mut s = XenSysctl::new(XEN_SYSCTL_GETDOMAININFOLIST);
        s.set_u_getdomaininfolist(&XenSysctlGetdomaininfolist {
            first_domain,
            _pad0: 0,
            max_domains,
            buffer,
            num_domains: 0,
            _pad1: 0,
        });
        s
    }

    /// `u.readconsole`.
    pub fn u_readconsole(&self) -> XenSysctlReadconsole {
        read_union(&self.u)
    }

    /// Sets `u.readconsole`.
    pub fn set_u_readconsole(&mut self, v: &XenSysctlReadconsole) {
        write_union(&mut self.u, v);
    }

    /// `u.physinfo`.
    pub fn u_physinfo(&self) -> XenSysctlPhysinfo {
        read_union(&self.u)
    }

    /// Sets `u.physinfo`.
    pub fn set_u_physinfo(&mut self, v: &XenSysctlPhysinfo) {
        write_union(&mut self.u, v);
    }

    /// `u.getdomaininfolist`.
    pub fn u_getdomaininfolist(&self) -> XenSysctlGetdomaininfolist {
        read_union(&self.u)
    }

    /// Sets `u.getdomaininfolist`.
    pub fn set_u_getdomaininfolist(&mut self, v: &XenSysctlGetdomaininfolist) {
        write_union(&mut self.u, v);
    }
}

// ---- readconsole -----------------------------------------------------------

/// `struct xen_sysctl_readconsole` (24 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenSysctlReadconsole {
    /// IN: non-zero: drop what was read from the ring.
    pub clear: u8,
    /// IN: non-zero: start at `index`.
    pub incremental: u8,
    /// Padding (named in C).
    pub pad0: u8,
    /// Padding (named in C).
    pub pad1: u8,
    /// IN: where to start (with `incremental`); OUT: where to continue.
    pub index: u32,
    /// IN: guest handle of the buffer that receives the bytes.
    pub buffer: u64,
    /// IN: size of the buffer; OUT: bytes written to it.
    pub count: u32,
    /// Padding (implicit in C).
    pub _pad2: u32,
}

assert_layout!(XenSysctlReadconsole, size = 24, align = 8, {
    clear @ 0, incremental @ 1, pad0 @ 2, pad1 @ 3, index @ 4, buffer @ 8, count @ 16, _pad2 @ 20,
});
wire_struct!(XenSysctlReadconsole, { clear, incremental, pad0, pad1, index, buffer, count, _pad2 });

// ---- physinfo --------------------------------------------------------------

/// `physinfo.capabilities`: the host can run HVM guests.
pub const XEN_SYSCTL_PHYSCAP_HVM: u32 = 1 << 0;
/// `physinfo.capabilities`: the host can run PV guests.
pub const XEN_SYSCTL_PHYSCAP_PV: u32 = 1 << 1;
/// `physinfo.capabilities`: device passthrough through an IOMMU.
pub const XEN_SYSCTL_PHYSCAP_DIRECTIO: u32 = 1 << 2;
/// `physinfo.capabilities`: hardware-assisted paging.
pub const XEN_SYSCTL_PHYSCAP_HAP: u32 = 1 << 3;
/// `physinfo.capabilities`: shadow paging.
pub const XEN_SYSCTL_PHYSCAP_SHADOW: u32 = 1 << 4;
/// `physinfo.capabilities`: HAP page tables can be shared with the IOMMU.
pub const XEN_SYSCTL_PHYSCAP_IOMMU_HAP_PT_SHARE: u32 = 1 << 5;
/// `physinfo.capabilities`: processor trace for guests.
pub const XEN_SYSCTL_PHYSCAP_VMTRACE: u32 = 1 << 6;
/// `physinfo.capabilities`: a virtual PMU for guests.
pub const XEN_SYSCTL_PHYSCAP_VPMU: u32 = 1 << 7;
/// `physinfo.capabilities`: grant tables version 1.
pub const XEN_SYSCTL_PHYSCAP_GNTTAB_V1: u32 = 1 << 8;
/// `physinfo.capabilities`: grant tables version 2.
pub const XEN_SYSCTL_PHYSCAP_GNTTAB_V2: u32 = 1 << 9;
/// The highest `XEN_SYSCTL_PHYSCAP_*` flag.
pub const XEN_SYSCTL_PHYSCAP_MAX: u32 = XEN_SYSCTL_PHYSCAP_GNTTAB_V2;

/// `struct xen_sysctl_physinfo` (112 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenSysctlPhysinfo {
    /// OUT: hardware threads per core.
    pub threads_per_core: u32,
    /// OUT: cores per socket.
    pub cores_per_socket: u32,
    /// OUT: CPUs online now.
    pub nr_cpus: u32,
    /// OUT: the highest possible CPU id.
    pub max_cpu_id: u32,
    /// OUT: NUMA nodes online now.
    pub nr_nodes: u32,
    /// OUT: the highest possible node id.
    pub max_node_id: u32,
    /// OUT: CPU frequency in kHz.
    pub cpu_khz: u32,
    /// OUT: `XEN_SYSCTL_PHYSCAP_*`.
    pub capabilities: u32,
    /// OUT: architecture-specific capabilities (none defined for x86 in
    /// Xen 4.17).
    pub arch_capabilities: u32,
    /// Padding (named in C).
    pub pad: u32,
    /// OUT: pages of RAM the hypervisor manages.
    pub total_pages: u64,
    /// OUT: pages free.
    pub free_pages: u64,
    /// OUT: free pages still to be scrubbed.
    pub scrub_pages: u64,
    /// OUT: pages claimed by domains but not yet allocated.
    pub outstanding_pages: u64,
    /// OUT: the highest possible machine frame number.
    pub max_mfn: u64,
    /// OUT: CPUID feature words of the boot CPU.
    pub hw_cap: [u32; 8],
}

assert_layout!(XenSysctlPhysinfo, size = 112, align = 8, {
    threads_per_core @ 0, cores_per_socket @ 4, nr_cpus @ 8, max_cpu_id @ 12,
    nr_nodes @ 16, max_node_id @ 20, cpu_khz @ 24, capabilities @ 28,
    arch_capabilities @ 32, pad @ 36, total_pages @ 40, free_pages @ 48,
    scrub_pages @ 56, outstanding_pages @ 64, max_mfn @ 72, hw_cap @ 80,
});
wire_struct!(XenSysctlPhysinfo, {
    threads_per_core, cores_per_socket, nr_cpus, max_cpu_id, nr_nodes, max_node_id, cpu_khz,
    capabilities, arch_capabilities, pad, total_pages, free_pages, scrub_pages,
    outstanding_pages, max_mfn, hw_cap,
});

// ---- getdomaininfolist -----------------------------------------------------

/// `struct xen_sysctl_getdomaininfolist` (24 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenSysctlGetdomaininfolist {
    /// IN: the lowest domain id to report.
    pub first_domain: u16,
    /// Padding (implicit in C).
    pub _pad0: u16,
    /// IN: the most records to write.
    pub max_domains: u32,
    /// IN: guest handle of an array of `max_domains`
    /// [`crate::domctl::XenDomctlGetdomaininfo`] (112 bytes each).
    pub buffer: u64,
    /// OUT: records written.
    pub num_domains: u32,
    /// Padding (implicit in C).
    pub _pad1: u32,
}

assert_layout!(XenSysctlGetdomaininfolist, size = 24, align = 8, {
    first_domain @ 0, _pad0 @ 2, max_domains @ 4, buffer @ 8, num_domains @ 16, _pad1 @ 20,
});
wire_struct!(XenSysctlGetdomaininfolist, {
    first_domain, _pad0, max_domains, buffer, num_domains, _pad1,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_set_version_command_and_payload() {
        let s = XenSysctl::physinfo();
        assert_eq!((s.cmd, s.interface_version, s.u), (XEN_SYSCTL_PHYSINFO, 0x15, [0; 16]));

        let rc = XenSysctlReadconsole {
            clear: 1,
            incremental: 1,
            index: 77,
            buffer: 0x5000,
            count: 4096,
            ..Default::default()
        };
        let s = XenSysctl::readconsole(&rc);
        assert_eq!(s.cmd, XEN_SYSCTL_READCONSOLE);
        assert_eq!(s.u_readconsole(), rc);
        // clear, incremental, pads, then index in the first word; the
        // handle in the second; count in the third.
        assert_eq!(&s.u[..3], &[0x0000_004d_0000_0101, 0x5000, 4096]);

        let s = XenSysctl::getdomaininfolist(1, 64, 0x9000);
        assert_eq!(s.cmd, XEN_SYSCTL_GETDOMAININFOLIST);
        let l = s.u_getdomaininfolist();
        assert_eq!((l.first_domain, l.max_domains, l.buffer, l.num_domains), (1, 64, 0x9000, 0));
    }

    #[test]
    fn physinfo_round_trips_through_the_union() {
        let info = XenSysctlPhysinfo {
            nr_cpus: 4,
            capabilities: XEN_SYSCTL_PHYSCAP_PV | XEN_SYSCTL_PHYSCAP_GNTTAB_V1,
            total_pages: 0x40000,
            max_mfn: u64::MAX >> 12,
            hw_cap: [1, 2, 3, 4, 5, 6, 7, 8],
            ..Default::default()
        };
        let mut s = XenSysctl::physinfo();
        s.set_u_physinfo(&info);
        assert_eq!(s.u_physinfo(), info);
        // hw_cap[6..8] end the 112-byte struct: word 13.
        assert_eq!(s.u[13], 8 << 32 | 7);
    }
}
