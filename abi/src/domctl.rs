//! `domctl`: the toolstack's domain control (create, pause, size, inspect and destroy domains).
//!
//! One hypercall (`domctl`, number 36) carries every operation: its single
//! argument points to a [`XenDomctl`], whose `cmd` names the operation
//! (`XEN_DOMCTL_*`), `domain` the domain it acts on, and whose union `u`
//! holds the operation's own struct. Xen copies the whole struct in, acts,
//! and for operations with OUT fields copies it back out. Build a call with
//! a constructor named after the command ([`XenDomctl::createdomain`],
//! [`XenDomctl::max_mem`], ...) and read results with the `u_*` accessors
//! ([`XenDomctl::u_getdomaininfo`], ...).
//!
//! # Who may call, and how it fails
//!
//! - Only a privileged domain (the control domain, dom0) may use `domctl`;
//!   Xen's default policy answers anyone else `-EPERM`.
//! - `interface_version` must be [`XEN_DOMCTL_INTERFACE_VERSION`]: the
//!   layouts below change between Xen releases, so any other value is
//!   refused with `-EACCES` before anything else is looked at.
//! - Except for `createdomain` and `getdomaininfo`, `domain` must name an
//!   existing domain (`-ESRCH`). An unknown command is `-ENOSYS`.
//!
//! # The operations a toolstack uses (Xen 4.17)
//!
//! - `createdomain` ([`XenDomctlCreatedomain`]): makes an empty domain. IN:
//!   its configuration, and in `domain` the id wanted (0 or anything at or
//!   above `DOMID_FIRST_RESERVED` asks Xen to pick one). OUT: the new id in
//!   `domain`. The domain starts paused by the toolstack, with no memory and
//!   no vCPUs.
//! - `max_vcpus` ([`XenDomctlMaxVcpus`]): allocates vCPUs `0..max`; `max`
//!   must equal the `max_vcpus` given at creation (`-EINVAL`).
//! - `max_mem` ([`XenDomctlMaxMem`]): sets the most memory the domain may
//!   hold (`max_memkb / 4` pages). Lowering it below what the domain holds
//!   frees nothing; allocations fail until the domain gives pages back.
//! - `hypercall_init` ([`XenDomctlHypercallInit`]): writes the hypercall page
//!   into the domain's frame `gmfn` (`-EINVAL` if the frame is not the
//!   domain's, `-EPERM` if it cannot be made writable, e.g. a page table).
//! - `setvcpucontext` / `getvcpucontext` ([`XenDomctlVcpucontext`]): load or
//!   read a vCPU's whole register state through a guest handle to a
//!   [`crate::arch::VcpuGuestContext`]. A null handle to `setvcpucontext`
//!   resets the vCPU. Neither works on the caller's own domain or vCPU, or
//!   on a vCPU the domain does not have (`-EINVAL`); `getvcpucontext` on a
//!   vCPU never initialised is `-ENODATA`.
//! - `getvcpuinfo` ([`XenDomctlGetvcpuinfo`]): whether a vCPU is online,
//!   blocked or running, its CPU time and physical CPU.
//! - `unpausedomain`: undoes one `pausedomain`, or the pause a new domain
//!   starts with (the first unpause completes its creation); `-EINVAL` if
//!   the toolstack has not paused it. `pausedomain`: stops all its vCPUs
//!   until unpaused (pauses nest); pausing the caller's own domain is
//!   `-EINVAL`. Neither has a payload.
//! - `getdomaininfo` ([`XenDomctlGetdomaininfo`]): state, memory and vCPU
//!   counts of a domain. In Xen 4.17 it reports the first existing domain
//!   whose id is *at or above* `domain` and writes that id back into
//!   `domain` (so a caller asking about one domain checks the id it got);
//!   `-ESRCH` if there is none. (Xen 4.18 made it exact.)
//! - `destroydomain`: kills the domain and releases its memory and
//!   resources; it may take several hypercall continuations. No payload.
//!
//! The other command numbers are listed for completeness; their payloads
//! are not defined here. The sysctl that lists many domains at once is
//! [`crate::sysctl::XenSysctlGetdomaininfolist`].

use crate::arch;

/// The `interface_version` every [`XenDomctl`] must carry (Xen 4.17).
pub const XEN_DOMCTL_INTERFACE_VERSION: u32 = 0x15;

// ---- commands --------------------------------------------------------------

/// Create a domain ([`XenDomctlCreatedomain`]; `domain` is IN/OUT).
pub const XEN_DOMCTL_CREATEDOMAIN: u32 = 1;
/// Destroy a domain (no payload).
pub const XEN_DOMCTL_DESTROYDOMAIN: u32 = 2;
/// Pause a domain (no payload).
pub const XEN_DOMCTL_PAUSEDOMAIN: u32 = 3;
/// Unpause a domain (no payload).
pub const XEN_DOMCTL_UNPAUSEDOMAIN: u32 = 4;
/// Read a domain's state ([`XenDomctlGetdomaininfo`]; `domain` is IN/OUT).
pub const XEN_DOMCTL_GETDOMAININFO: u32 = 5;
/// Set a vCPU's hard/soft CPU affinity.
pub const XEN_DOMCTL_SETVCPUAFFINITY: u32 = 9;
/// Shadow paging and log-dirty control.
pub const XEN_DOMCTL_SHADOW_OP: u32 = 10;
/// Set the domain's memory limit ([`XenDomctlMaxMem`]).
pub const XEN_DOMCTL_MAX_MEM: u32 = 11;
/// Load a vCPU's register state ([`XenDomctlVcpucontext`]).
pub const XEN_DOMCTL_SETVCPUCONTEXT: u32 = 12;
/// Read a vCPU's register state ([`XenDomctlVcpucontext`]).
pub const XEN_DOMCTL_GETVCPUCONTEXT: u32 = 13;
/// Read a vCPU's run state ([`XenDomctlGetvcpuinfo`]).
pub const XEN_DOMCTL_GETVCPUINFO: u32 = 14;
/// Allocate the domain's vCPUs ([`XenDomctlMaxVcpus`]).
pub const XEN_DOMCTL_MAX_VCPUS: u32 = 15;
/// Read or set scheduler parameters.
pub const XEN_DOMCTL_SCHEDULER_OP: u32 = 16;
/// Set the domain's handle (UUID).
pub const XEN_DOMCTL_SETDOMAINHANDLE: u32 = 17;
/// Turn debugging of the domain on or off.
pub const XEN_DOMCTL_SETDEBUGGING: u32 = 18;
/// Grant or revoke access to a physical IRQ.
pub const XEN_DOMCTL_IRQ_PERMISSION: u32 = 19;
/// Grant or revoke access to a range of machine frames (MMIO).
pub const XEN_DOMCTL_IOMEM_PERMISSION: u32 = 20;
/// Grant or revoke access to a range of I/O ports.
pub const XEN_DOMCTL_IOPORT_PERMISSION: u32 = 21;
/// Write the hypercall page into a frame of the domain
/// ([`XenDomctlHypercallInit`]).
pub const XEN_DOMCTL_HYPERCALL_INIT: u32 = 22;
/// Set the domain's wall-clock offset.
pub const XEN_DOMCTL_SETTIMEOFFSET: u32 = 24;
/// Read a vCPU's hard/soft CPU affinity.
pub const XEN_DOMCTL_GETVCPUAFFINITY: u32 = 25;
/// Obsolete (PowerPC only).
pub const XEN_DOMCTL_REAL_MODE_AREA: u32 = 26;
/// Resume a domain after a suspend.
pub const XEN_DOMCTL_RESUMEDOMAIN: u32 = 27;
/// Send a virtual NMI, reset, INIT, power or sleep trigger.
pub const XEN_DOMCTL_SENDTRIGGER: u32 = 28;
/// Name the event channel notified when the domain suspends.
pub const XEN_DOMCTL_SUBSCRIBE: u32 = 29;
/// Read an HVM domain's saved state.
pub const XEN_DOMCTL_GETHVMCONTEXT: u32 = 33;
/// Load an HVM domain's saved state.
pub const XEN_DOMCTL_SETHVMCONTEXT: u32 = 34;
/// Set a PV domain's address size (32 or 64 bits).
pub const XEN_DOMCTL_SET_ADDRESS_SIZE: u32 = 35;
/// Read a PV domain's address size.
pub const XEN_DOMCTL_GET_ADDRESS_SIZE: u32 = 36;
/// Assign a passthrough device.
pub const XEN_DOMCTL_ASSIGN_DEVICE: u32 = 37;
/// Bind a passthrough IRQ.
pub const XEN_DOMCTL_BIND_PT_IRQ: u32 = 38;
/// Map machine frames into an HVM domain's physical address space.
pub const XEN_DOMCTL_MEMORY_MAPPING: u32 = 39;
/// Map I/O ports into an HVM domain.
pub const XEN_DOMCTL_IOPORT_MAPPING: u32 = 40;
/// Load a vCPU's extended state.
pub const XEN_DOMCTL_SET_EXT_VCPUCONTEXT: u32 = 42;
/// Read a vCPU's extended state.
pub const XEN_DOMCTL_GET_EXT_VCPUCONTEXT: u32 = 43;
/// Obsolete (IA-64 only).
pub const XEN_DOMCTL_SET_OPT_FEATURE: u32 = 44;
/// Test whether a device may be assigned.
pub const XEN_DOMCTL_TEST_ASSIGN_DEVICE: u32 = 45;
/// Let the domain control a target domain (device model stub domains).
pub const XEN_DOMCTL_SET_TARGET: u32 = 46;
/// Take a passthrough device back.
pub const XEN_DOMCTL_DEASSIGN_DEVICE: u32 = 47;
/// Unbind a passthrough IRQ.
pub const XEN_DOMCTL_UNBIND_PT_IRQ: u32 = 48;
/// List the devices sharing an IOMMU group with a device.
pub const XEN_DOMCTL_GET_DEVICE_GROUP: u32 = 50;
/// Debugger single-step control.
pub const XEN_DOMCTL_DEBUG_OP: u32 = 54;
/// Read part of an HVM domain's saved state.
pub const XEN_DOMCTL_GETHVMCONTEXT_PARTIAL: u32 = 55;
/// VM event (introspection) control.
pub const XEN_DOMCTL_VM_EVENT_OP: u32 = 56;
/// Memory sharing control.
pub const XEN_DOMCTL_MEM_SHARING_OP: u32 = 57;
/// Read the domain's TSC mode.
pub const XEN_DOMCTL_GETTSCINFO: u32 = 59;
/// Set the domain's TSC mode.
pub const XEN_DOMCTL_SETTSCINFO: u32 = 60;
/// Read the type of a batch of the domain's frames.
pub const XEN_DOMCTL_GETPAGEFRAMEINFO3: u32 = 61;
/// Load a vCPU's XSAVE state.
pub const XEN_DOMCTL_SETVCPUEXTSTATE: u32 = 62;
/// Read a vCPU's XSAVE state.
pub const XEN_DOMCTL_GETVCPUEXTSTATE: u32 = 63;
/// Require a VM-event listener for memory access events.
pub const XEN_DOMCTL_SET_ACCESS_REQUIRED: u32 = 64;
/// Audit the domain's physical-to-machine map.
pub const XEN_DOMCTL_AUDIT_P2M: u32 = 65;
/// Route a global VIRQ to the domain.
pub const XEN_DOMCTL_SET_VIRQ_HANDLER: u32 = 66;
/// Mark a page of the domain broken.
pub const XEN_DOMCTL_SET_BROKEN_PAGE_P2M: u32 = 67;
/// Set the domain's NUMA node affinity.
pub const XEN_DOMCTL_SETNODEAFFINITY: u32 = 68;
/// Read the domain's NUMA node affinity.
pub const XEN_DOMCTL_GETNODEAFFINITY: u32 = 69;
/// Flush the cache for a range of the domain's frames (Arm).
pub const XEN_DOMCTL_CACHEFLUSH: u32 = 71;
/// Read a vCPU's MSRs.
pub const XEN_DOMCTL_GET_VCPU_MSRS: u32 = 72;
/// Load a vCPU's MSRs.
pub const XEN_DOMCTL_SET_VCPU_MSRS: u32 = 73;
/// Set the domain's virtual NUMA topology.
pub const XEN_DOMCTL_SETVNUMAINFO: u32 = 74;
/// Cache monitoring (Intel PSR CMT).
pub const XEN_DOMCTL_PSR_CMT_OP: u32 = 75;
/// Monitor (introspection) control.
pub const XEN_DOMCTL_MONITOR_OP: u32 = 77;
/// Cache allocation (Intel PSR CAT/MBA).
pub const XEN_DOMCTL_PSR_ALLOC: u32 = 78;
/// Reset the domain in place (kexec).
pub const XEN_DOMCTL_SOFT_RESET: u32 = 79;
/// Virtual UART control (Arm).
pub const XEN_DOMCTL_VUART_OP: u32 = 81;
/// Read the domain's CPUID and MSR policy.
pub const XEN_DOMCTL_GET_CPU_POLICY: u32 = 82;
/// Set the domain's CPUID and MSR policy.
pub const XEN_DOMCTL_SET_CPU_POLICY: u32 = 83;
/// Processor trace control.
pub const XEN_DOMCTL_VMTRACE_OP: u32 = 84;
/// Read the size of the domain's paging memory pool.
pub const XEN_DOMCTL_GET_PAGING_MEMPOOL_SIZE: u32 = 85;
/// Set the size of the domain's paging memory pool.
pub const XEN_DOMCTL_SET_PAGING_MEMPOOL_SIZE: u32 = 86;
/// gdbsx: read or write the domain's memory.
pub const XEN_DOMCTL_GDBSX_GUESTMEMIO: u32 = 1000;
/// gdbsx: pause a vCPU.
pub const XEN_DOMCTL_GDBSX_PAUSEVCPU: u32 = 1001;
/// gdbsx: unpause a vCPU.
pub const XEN_DOMCTL_GDBSX_UNPAUSEVCPU: u32 = 1002;
/// gdbsx: read the domain's debug status.
pub const XEN_DOMCTL_GDBSX_DOMSTATUS: u32 = 1003;

// ---- the call --------------------------------------------------------------

/// `struct xen_domctl`: the argument of every `domctl` (144 bytes).
///
/// `u` is C's union of the per-command structs, padded to 128 bytes and
/// 8-aligned; read and write it with the `u_*` / `set_u_*` accessors for the
/// struct `cmd` names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenDomctl {
    /// IN: `XEN_DOMCTL_*`.
    pub cmd: u32,
    /// IN: must be [`XEN_DOMCTL_INTERFACE_VERSION`] (else `-EACCES`).
    pub interface_version: u32,
    /// IN: the domain acted on; OUT as well for `createdomain` (the new id)
    /// and `getdomaininfo` (the id reported).
    pub domain: u16,
    /// Padding (named in C).
    pub _pad: [u16; 3],
    /// IN/OUT: the command's struct, as raw storage.
    pub u: [u64; 16],
}

assert_layout!(XenDomctl, size = 144, align = 8, {
    cmd @ 0, interface_version @ 4, domain @ 8, _pad @ 10, u @ 16,
});

impl XenDomctl {
    /// A call of command `cmd` on `domain` at this crate's interface
    /// version, with `u` zeroed.
    pub const fn new(cmd: u32, domain: u16) -> XenDomctl {
        XenDomctl { cmd, interface_version: XEN_DOMCTL_INTERFACE_VERSION, domain, _pad: [0; 3], u: [0; 16] }
    }

    /// `XEN_DOMCTL_createdomain` with `config`; `domain` is the id wanted
    /// (0: let Xen pick).
    pub fn createdomain(domain: u16, config: &XenDomctlCreatedomain) -> XenDomctl {
        let mut op = XenDomctl::new(XEN_DOMCTL_CREATEDOMAIN, domain);
        op.set_u_createdomain(config);
        op
    }

    /// `XEN_DOMCTL_destroydomain`.
    pub const fn destroydomain(domain: u16) -> XenDomctl {
        XenDomctl::new(XEN_DOMCTL_DESTROYDOMAIN, domain)
    }

    /// `XEN_DOMCTL_pausedomain`.
    pub const fn pausedomain(domain: u16) -> XenDomctl {
        XenDomctl::new(XEN_DOMCTL_PAUSEDOMAIN, domain)
    }

    /// `XEN_DOMCTL_unpausedomain`.
    pub const fn unpausedomain(domain: u16) -> XenDomctl {
        XenDomctl::new(XEN_DOMCTL_UNPAUSEDOMAIN, domain)
    }

    /// `XEN_DOMCTL_getdomaininfo` for the first domain at or above `domain`
    /// (see the module docs); the answer is [`XenDomctl::u_getdomaininfo`].
    pub const fn getdomaininfo(domain: u16) -> XenDomctl {
        XenDomctl::new(XEN_DOMCTL_GETDOMAININFO, domain)
    }

    /// `XEN_DOMCTL_max_mem`: at most `max_memkb` KiB for `domain`.
    pub fn max_mem(domain: u16, max_memkb: u64) -> XenDomctl {
        let mut op = XenDomctl::new(XEN_DOMCTL_MAX_MEM, domain);
        op.set_u_max_mem(&XenDomctlMaxMem { max_memkb });
        op
    }

    /// `XEN_DOMCTL_setvcpucontext`: load vCPU `vcpu` from the
    /// [`crate::arch::VcpuGuestContext`] at guest handle `ctxt` (0: reset
    /// the vCPU).
    pub fn setvcpucontext(domain: u16, vcpu: u32, ctxt: u64) -> XenDomctl {
        let mut op = XenDomctl::new(XEN_DOMCTL_SETVCPUCONTEXT, domain);
        op.set_u_vcpucontext(&XenDomctlVcpucontext { vcpu, _pad0: 0, ctxt });
        op
    }

    /// `XEN_DOMCTL_getvcpucontext`: write vCPU `vcpu`'s state into the
    /// [`crate::arch::VcpuGuestContext`] at guest handle `ctxt`.
    pub fn getvcpucontext(domain: u16, vcpu: u32, ctxt: u64) -> XenDomctl {
        let mut op = XenDomctl::new(XEN_DOMCTL_GETVCPUCONTEXT, domain);
        op.set_u_vcpucontext(&XenDomctlVcpucontext { vcpu, _pad0: 0, ctxt });
        op
    }

    /// `XEN_DOMCTL_getvcpuinfo` for vCPU `vcpu`; the answer is
    /// [`XenDomctl::u_getvcpuinfo`].
    pub fn getvcpuinfo(domain: u16, vcpu: u32) -> XenDomctl {
        let mut op = XenDomctl::new(XEN_DOMCTL_GETVCPUINFO, domain);
        op.set_u_getvcpuinfo(&XenDomctlGetvcpuinfo { vcpu, ..XenDomctlGetvcpuinfo::default() });
        op
    }

    /// `XEN_DOMCTL_max_vcpus`: allocate vCPUs `0..max`.
    pub fn max_vcpus(domain: u16, max: u32) -> XenDomctl {
        let mut op = XenDomctl::new(XEN_DOMCTL_MAX_VCPUS, domain);
        op.set_u_max_vcpus(&XenDomctlMaxVcpus { max });
        op
    }

    /// `XEN_DOMCTL_hypercall_init`: write the hypercall page into frame
    /// `gmfn` of `domain`.
    pub fn hypercall_init(domain: u16, gmfn: u64) -> XenDomctl {
        let mut op = XenDomctl::new(XEN_DOMCTL_HYPERCALL_INIT, domain);
        op.set_u_hypercall_init(&XenDomctlHypercallInit { gmfn });
        op
    }

    /// `u.createdomain`.
    pub fn u_createdomain(&self) -> XenDomctlCreatedomain {
        read_union(&self.u)
    }

    /// Sets `u.createdomain`.
    pub fn set_u_createdomain(&mut self, v: &XenDomctlCreatedomain) {
        write_union(&mut self.u, v);
    }

    /// `u.getdomaininfo`.
    pub fn u_getdomaininfo(&self) -> XenDomctlGetdomaininfo {
        read_union(&self.u)
    }

    /// Sets `u.getdomaininfo`.
    pub fn set_u_getdomaininfo(&mut self, v: &XenDomctlGetdomaininfo) {
        write_union(&mut self.u, v);
    }

    /// `u.max_mem`.
    pub fn u_max_mem(&self) -> XenDomctlMaxMem {
        read_union(&self.u)
    }

    /// Sets `u.max_mem`.
    pub fn set_u_max_mem(&mut self, v: &XenDomctlMaxMem) {
        write_union(&mut self.u, v);
    }

    /// `u.vcpucontext` (`setvcpucontext`, `getvcpucontext`).
    pub fn u_vcpucontext(&self) -> XenDomctlVcpucontext {
        read_union(&self.u)
    }

    /// Sets `u.vcpucontext`.
    pub fn set_u_vcpucontext(&mut self, v: &XenDomctlVcpucontext) {
        write_union(&mut self.u, v);
    }

    /// `u.getvcpuinfo`.
    pub fn u_getvcpuinfo(&self) -> XenDomctlGetvcpuinfo {
        read_union(&self.u)
    }

    /// Sets `u.getvcpuinfo`.
    pub fn set_u_getvcpuinfo(&mut self, v: &XenDomctlGetvcpuinfo) {
        write_union(&mut self.u, v);
    }

    /// `u.max_vcpus`.
    pub fn u_max_vcpus(&self) -> XenDomctlMaxVcpus {
        read_union(&self.u)
    }

    /// Sets `u.max_vcpus`.
    pub fn set_u_max_vcpus(&mut self, v: &XenDomctlMaxVcpus) {
        write_union(&mut self.u, v);
    }

    /// `XEN_DOMCTL_scheduler_op` with the credit scheduler: `cmd` is
    /// `XEN_DOMCTL_SCHEDOP_putinfo` (with `credit`) or `getinfo`.
    pub fn sched_credit(domain: u16, cmd: u32, credit: XenDomctlSchedCredit) -> XenDomctl {
        let mut op = XenDomctl::new(XEN_DOMCTL_SCHEDULER_OP, domain);
        let mut s = XenDomctlSchedulerOp { sched_id: XEN_SCHEDULER_CREDIT, cmd, u: [0; 2] };
        s.set_credit(credit);
        op.set_u_scheduler_op(&s);
        op
    }

    /// `u.scheduler_op`.
    pub fn u_scheduler_op(&self) -> XenDomctlSchedulerOp {
        read_union(&self.u)
    }

    /// Sets `u.scheduler_op`.
    pub fn set_u_scheduler_op(&mut self, v: &XenDomctlSchedulerOp) {
        write_union(&mut self.u, v);
    }

    /// `u.hypercall_init`.
    pub fn u_hypercall_init(&self) -> XenDomctlHypercallInit {
        read_union(&self.u)
    }

    /// Sets `u.hypercall_init`.
    pub fn set_u_hypercall_init(&mut self, v: &XenDomctlHypercallInit) {
        write_union(&mut self.u, v);
    }
}

// ---- createdomain ----------------------------------------------------------

/// `createdomain` flag: an HVM guest (clear: PV).
pub const XEN_DOMCTL_CDF_HVM: u32 = 1 << 0;
/// `createdomain` flag: use hardware-assisted paging if available.
pub const XEN_DOMCTL_CDF_HAP: u32 = 1 << 1;
/// `createdomain` flag: tboot verifies the domain's memory across S3.
pub const XEN_DOMCTL_CDF_S3_INTEGRITY: u32 = 1 << 2;
/// `createdomain` flag: no out-of-sync shadow page tables.
pub const XEN_DOMCTL_CDF_OOS_OFF: u32 = 1 << 3;
/// `createdomain` flag: the domain is the xenstore domain.
pub const XEN_DOMCTL_CDF_XS_DOMAIN: u32 = 1 << 4;
/// `createdomain` flag: the domain may use the IOMMU.
pub const XEN_DOMCTL_CDF_IOMMU: u32 = 1 << 5;
/// `createdomain` flag: nested virtualisation.
pub const XEN_DOMCTL_CDF_NESTED_VIRT: u32 = 1 << 6;
/// `createdomain` flag: expose the vPMU.
pub const XEN_DOMCTL_CDF_VPMU: u32 = 1 << 7;
/// The highest `XEN_DOMCTL_CDF_*` flag (Xen refuses higher bits).
pub const XEN_DOMCTL_CDF_MAX: u32 = XEN_DOMCTL_CDF_VPMU;

/// `createdomain.iommu_opts`: do not share page tables with the IOMMU.
pub const XEN_DOMCTL_IOMMU_NO_SHAREPT: u32 = 1 << 0;
/// The highest `XEN_DOMCTL_IOMMU_*` option.
pub const XEN_DOMCTL_IOMMU_MAX: u32 = XEN_DOMCTL_IOMMU_NO_SHAREPT;

/// `createdomain.grant_opts`: the bits holding the highest grant-table
/// version the domain may use.
pub const XEN_DOMCTL_GRANT_VERSION_MASK: u32 = 0xf;

/// `XEN_DOMCTL_GRANT_version(v)`: `grant_opts` allowing grant-table
/// versions up to `v`.
pub const fn xen_domctl_grant_version(v: u32) -> u32 {
    v & XEN_DOMCTL_GRANT_VERSION_MASK
}

/// `arch.emulation_flags` (x86): emulated local APIC.
pub const XEN_X86_EMU_LAPIC: u32 = 1 << 0;
/// `arch.emulation_flags` (x86): emulated HPET.
pub const XEN_X86_EMU_HPET: u32 = 1 << 1;
/// `arch.emulation_flags` (x86): emulated ACPI PM timer and registers.
pub const XEN_X86_EMU_PM: u32 = 1 << 2;
/// `arch.emulation_flags` (x86): emulated RTC.
pub const XEN_X86_EMU_RTC: u32 = 1 << 3;
/// `arch.emulation_flags` (x86): emulated IO-APIC.
pub const XEN_X86_EMU_IOAPIC: u32 = 1 << 4;
/// `arch.emulation_flags` (x86): emulated 8259 PIC.
pub const XEN_X86_EMU_PIC: u32 = 1 << 5;
/// `arch.emulation_flags` (x86): emulated standard VGA.
pub const XEN_X86_EMU_VGA: u32 = 1 << 6;
/// `arch.emulation_flags` (x86): emulated IOMMU.
pub const XEN_X86_EMU_IOMMU: u32 = 1 << 7;
/// `arch.emulation_flags` (x86): emulated 8254 PIT.
pub const XEN_X86_EMU_PIT: u32 = 1 << 8;
/// `arch.emulation_flags` (x86): route interrupts through PIRQs.
pub const XEN_X86_EMU_USE_PIRQ: u32 = 1 << 9;
/// `arch.emulation_flags` (x86): emulated PCI config space.
pub const XEN_X86_EMU_VPCI: u32 = 1 << 10;
/// `arch.emulation_flags` (x86): every emulation. A PV guest has none (or
/// only [`XEN_X86_EMU_PIT`]).
pub const XEN_X86_EMU_ALL: u32 = (1 << 11) - 1;

/// `arch.misc_flags` (x86): accesses to MSRs Xen does not handle are
/// ignored instead of raising `#GP` (the real MSR is never touched).
pub const XEN_X86_MSR_RELAXED: u32 = 1 << 0;
/// The highest `arch.misc_flags` flag.
pub const XEN_X86_MISC_FLAGS_MAX: u32 = XEN_X86_MSR_RELAXED;

/// `struct xen_arch_domainconfig` (x86): what the hypervisor emulates for the
/// domain (8 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenArchDomainconfig {
    /// IN (`createdomain`) / OUT (`getdomaininfo`): `XEN_X86_EMU_*`.
    pub emulation_flags: u32,
    /// IN / OUT: `XEN_X86_MSR_RELAXED`.
    pub misc_flags: u32,
}

assert_layout!(XenArchDomainconfig, size = 8, align = 4, { emulation_flags @ 0, misc_flags @ 4 });
wire_struct!(XenArchDomainconfig, { emulation_flags, misc_flags });

/// `struct xen_domctl_createdomain` (64 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenDomctlCreatedomain {
    /// IN: security label (XSM; 0 without XSM).
    pub ssidref: u32,
    /// IN: the domain's handle (a UUID, opaque to Xen).
    pub handle: [u8; 16],
    /// IN: `XEN_DOMCTL_CDF_*`.
    pub flags: u32,
    /// IN: `XEN_DOMCTL_IOMMU_*`.
    pub iommu_opts: u32,
    /// IN: the number of vCPUs the domain may have.
    pub max_vcpus: u32,
    /// IN: the highest event-channel port the domain may use.
    pub max_evtchn_port: u32,
    /// IN: grant-table frames (negative: Xen's default).
    pub max_grant_frames: i32,
    /// IN: maptrack frames (negative: Xen's default).
    pub max_maptrack_frames: i32,
    /// IN: grant-table options ([`xen_domctl_grant_version`]).
    pub grant_opts: u32,
    /// IN: per-vCPU processor-trace buffer in bytes (0: none).
    pub vmtrace_size: u32,
    /// IN: CPU pool (0: the default pool).
    pub cpupool_id: u32,
    /// IN: x86 emulation and MSR options.
    pub arch: XenArchDomainconfig,
}

assert_layout!(XenDomctlCreatedomain, size = 64, align = 4, {
    ssidref @ 0, handle @ 4, flags @ 20, iommu_opts @ 24, max_vcpus @ 28,
    max_evtchn_port @ 32, max_grant_frames @ 36, max_maptrack_frames @ 40,
    grant_opts @ 44, vmtrace_size @ 48, cpupool_id @ 52, arch @ 56,
});
wire_struct!(XenDomctlCreatedomain, {
    ssidref, handle, flags, iommu_opts, max_vcpus, max_evtchn_port, max_grant_frames,
    max_maptrack_frames, grant_opts, vmtrace_size, cpupool_id, arch,
});

// ---- getdomaininfo ---------------------------------------------------------

/// `getdomaininfo.flags`: the domain is being destroyed.
pub const XEN_DOMINF_DYING: u32 = 1 << 0;
/// `getdomaininfo.flags`: an HVM guest.
pub const XEN_DOMINF_HVM_GUEST: u32 = 1 << 1;
/// `getdomaininfo.flags`: the guest has shut down (reason in the bits at
/// [`XEN_DOMINF_SHUTDOWNSHIFT`]).
pub const XEN_DOMINF_SHUTDOWN: u32 = 1 << 2;
/// `getdomaininfo.flags`: paused by the toolstack.
pub const XEN_DOMINF_PAUSED: u32 = 1 << 3;
/// `getdomaininfo.flags`: every online vCPU is blocked waiting for an event.
pub const XEN_DOMINF_BLOCKED: u32 = 1 << 4;
/// `getdomaininfo.flags`: a vCPU is running now.
pub const XEN_DOMINF_RUNNING: u32 = 1 << 5;
/// `getdomaininfo.flags`: being debugged.
pub const XEN_DOMINF_DEBUGGED: u32 = 1 << 6;
/// `getdomaininfo.flags`: the xenstore domain.
pub const XEN_DOMINF_XS_DOMAIN: u32 = 1 << 7;
/// `getdomaininfo.flags`: uses hardware-assisted paging.
pub const XEN_DOMINF_HAP: u32 = 1 << 8;
/// `getdomaininfo.flags`: mask of the shutdown reason (`SHUTDOWN_*`), after
/// shifting by [`XEN_DOMINF_SHUTDOWNSHIFT`].
pub const XEN_DOMINF_SHUTDOWNMASK: u32 = 255;
/// `getdomaininfo.flags`: where the shutdown reason starts.
pub const XEN_DOMINF_SHUTDOWNSHIFT: u32 = 16;

/// `getdomaininfo.max_vcpu_id` of a domain with no vCPUs.
pub const XEN_INVALID_MAX_VCPU_ID: u32 = !0;

/// `struct xen_domctl_getdomaininfo`: one domain's state (112 bytes). Also
/// the element of `XEN_SYSCTL_getdomaininfolist`'s buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenDomctlGetdomaininfo {
    /// OUT: the domain's id (also written to `XenDomctl::domain`).
    pub domain: u16,
    /// Padding (named in C).
    pub pad1: u16,
    /// OUT: `XEN_DOMINF_*`, and the shutdown reason.
    pub flags: u32,
    /// OUT: pages the domain holds.
    pub tot_pages: u64,
    /// OUT: the most pages it may hold (`max_mem`).
    pub max_pages: u64,
    /// OUT: pages claimed but not yet allocated.
    pub outstanding_pages: u64,
    /// OUT: pages shared with other domains (memory sharing).
    pub shr_pages: u64,
    /// OUT: pages paged out.
    pub paged_pages: u64,
    /// OUT: frame of the domain's shared-info page.
    pub shared_info_frame: u64,
    /// OUT: CPU time used by all its vCPUs, in ns.
    pub cpu_time: u64,
    /// OUT: vCPUs online now.
    pub nr_online_vcpus: u32,
    /// OUT: the highest vCPU id ([`XEN_INVALID_MAX_VCPU_ID`]: none).
    pub max_vcpu_id: u32,
    /// OUT: security label.
    pub ssidref: u32,
    /// OUT: the domain's handle (UUID).
    pub handle: [u8; 16],
    /// OUT: the CPU pool it runs in.
    pub cpupool: u32,
    /// OUT: size of its guest physical address space, in bits.
    pub gpaddr_bits: u8,
    /// Padding (named in C).
    pub pad2: [u8; 7],
    /// OUT: its emulation options, as given at creation.
    pub arch_config: XenArchDomainconfig,
}

assert_layout!(XenDomctlGetdomaininfo, size = 112, align = 8, {
    domain @ 0, pad1 @ 2, flags @ 4, tot_pages @ 8, max_pages @ 16,
    outstanding_pages @ 24, shr_pages @ 32, paged_pages @ 40,
    shared_info_frame @ 48, cpu_time @ 56, nr_online_vcpus @ 64,
    max_vcpu_id @ 68, ssidref @ 72, handle @ 76, cpupool @ 92,
    gpaddr_bits @ 96, pad2 @ 97, arch_config @ 104,
});
wire_struct!(XenDomctlGetdomaininfo, {
    domain, pad1, flags, tot_pages, max_pages, outstanding_pages, shr_pages, paged_pages,
    shared_info_frame, cpu_time, nr_online_vcpus, max_vcpu_id, ssidref, handle, cpupool,
    gpaddr_bits, pad2, arch_config,
});

impl XenDomctlGetdomaininfo {
    /// The guest's shutdown reason (`SHUTDOWN_*`, meaningful when
    /// [`XEN_DOMINF_SHUTDOWN`] is set).
    pub const fn shutdown_reason(&self) -> u32 {
        (self.flags >> XEN_DOMINF_SHUTDOWNSHIFT) & XEN_DOMINF_SHUTDOWNMASK
    }
}

// ---- small payloads --------------------------------------------------------

/// `struct xen_domctl_max_mem` (8 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenDomctlMaxMem {
    /// IN: the most memory the domain may hold, in KiB.
    pub max_memkb: u64,
}

assert_layout!(XenDomctlMaxMem, size = 8, align = 8, { max_memkb @ 0 });
wire_struct!(XenDomctlMaxMem, { max_memkb });

/// `struct xen_domctl_vcpucontext` (`setvcpucontext`, `getvcpucontext`;
/// 16 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenDomctlVcpucontext {
    /// IN: the vCPU.
    pub vcpu: u32,
    /// Padding (implicit in C).
    pub _pad0: u32,
    /// IN: guest handle of a [`arch::VcpuGuestContext`] (5168 bytes), read
    /// by `setvcpucontext` (0: reset the vCPU) and written by
    /// `getvcpucontext`.
    pub ctxt: u64,
}

assert_layout!(XenDomctlVcpucontext, size = 16, align = 8, { vcpu @ 0, _pad0 @ 4, ctxt @ 8 });
wire_struct!(XenDomctlVcpucontext, { vcpu, _pad0, ctxt });

/// Bytes `getvcpucontext` writes at `ctxt` and `setvcpucontext` reads.
const _: () = assert!(core::mem::size_of::<arch::VcpuGuestContext>() == 5168);

/// `struct xen_domctl_getvcpuinfo` (24 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenDomctlGetvcpuinfo {
    /// IN: the vCPU.
    pub vcpu: u32,
    /// OUT: 1 if the vCPU is up.
    pub online: u8,
    /// OUT: 1 if it is blocked waiting for an event.
    pub blocked: u8,
    /// OUT: 1 if it is running now.
    pub running: u8,
    /// Padding (implicit in C).
    pub _pad0: u8,
    /// OUT: CPU time it has used, in ns.
    pub cpu_time: u64,
    /// OUT: the physical CPU it runs or last ran on.
    pub cpu: u32,
    /// Padding (implicit in C).
    pub _pad1: u32,
}

assert_layout!(XenDomctlGetvcpuinfo, size = 24, align = 8, {
    vcpu @ 0, online @ 4, blocked @ 5, running @ 6, _pad0 @ 7, cpu_time @ 8, cpu @ 16, _pad1 @ 20,
});
wire_struct!(XenDomctlGetvcpuinfo, { vcpu, online, blocked, running, _pad0, cpu_time, cpu, _pad1 });

/// `struct xen_domctl_max_vcpus` (4 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenDomctlMaxVcpus {
    /// IN: the number of vCPUs (must equal `createdomain`'s `max_vcpus`).
    pub max: u32,
}

assert_layout!(XenDomctlMaxVcpus, size = 4, align = 4, { max @ 0 });
wire_struct!(XenDomctlMaxVcpus, { max });

/// `struct xen_domctl_hypercall_init` (8 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenDomctlHypercallInit {
    /// IN: the domain's frame to fill with the hypercall page.
    pub gmfn: u64,
}

assert_layout!(XenDomctlHypercallInit, size = 8, align = 8, { gmfn @ 0 });
wire_struct!(XenDomctlHypercallInit, { gmfn });

/// `scheduler_op`: the credit scheduler ([`XenDomctlSchedulerOp::sched_id`]).
pub const XEN_SCHEDULER_CREDIT: u32 = 5;
/// `scheduler_op`: the credit2 scheduler.
pub const XEN_SCHEDULER_CREDIT2: u32 = 6;
/// `scheduler_op` command: set the domain's parameters.
pub const XEN_DOMCTL_SCHEDOP_PUTINFO: u32 = 0;
/// `scheduler_op` command: read the domain's parameters.
pub const XEN_DOMCTL_SCHEDOP_GETINFO: u32 = 1;

/// `struct xen_domctl_sched_credit` (4 bytes): a domain's share.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenDomctlSchedCredit {
    /// IN/OUT: relative weight, 1..=65535 (default 256).
    pub weight: u16,
    /// IN/OUT: the most CPU in percent of one CPU; 0 for no cap.
    pub cap: u16,
}

assert_layout!(XenDomctlSchedCredit, size = 4, align = 2, { weight @ 0, cap @ 2 });
wire_struct!(XenDomctlSchedCredit, { weight, cap });

/// `struct xen_domctl_scheduler_op` (24 bytes): read or set a domain's
/// scheduling parameters. `sched_id` must be the running scheduler's
/// (`-EINVAL` otherwise). Its union is raw storage: the credit
/// parameters are its first four bytes ([`XenDomctlSchedulerOp::credit`]);
/// the per-vCPU variant (a handle and a count) is not used here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenDomctlSchedulerOp {
    /// IN: `XEN_SCHEDULER_*`.
    pub sched_id: u32,
    /// IN: `XEN_DOMCTL_SCHEDOP_*`.
    pub cmd: u32,
    /// IN/OUT: the parameters, as raw storage.
    pub u: [u64; 2],
}

assert_layout!(XenDomctlSchedulerOp, size = 24, align = 8, { sched_id @ 0, cmd @ 4, u @ 8 });
wire_struct!(XenDomctlSchedulerOp, { sched_id, cmd, u });

impl XenDomctlSchedulerOp {
    /// The credit scheduler's parameters in `u`.
    pub fn credit(&self) -> XenDomctlSchedCredit {
        let w = self.u[0];
        XenDomctlSchedCredit { weight: w as u16, cap: (w >> 16) as u16 }
    }

    /// Sets the credit scheduler's parameters in `u` (the rest of its
    /// first word is cleared).
    pub fn set_credit(&mut self, c: XenDomctlSchedCredit) {
        self.u[0] = u64::from(c.weight) | u64::from(c.cap) << 16;
    }
}

// ---- union storage ---------------------------------------------------------
//
// `domctl` and `sysctl` both end in a 128-byte, 8-aligned union, kept as
// `[u64; 16]`. A payload is copied in and out field by field at its
// `repr(C)` offsets, little-endian (x86_64's order), which is what C's
// union does without needing `unsafe` here.

/// A fixed-layout ABI value that can be copied to and from raw union bytes.
pub(crate) trait Wire: Sized {
    /// Reads the value from the start of `b`.
    fn read(b: &[u8]) -> Self;
    /// Writes the value to the start of `b`.
    fn write(&self, b: &mut [u8]);
}

macro_rules! wire_int {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            fn read(b: &[u8]) -> Self {
                let mut le = [0; core::mem::size_of::<$t>()];
                le.copy_from_slice(&b[..core::mem::size_of::<$t>()]);
                <$t>::from_le_bytes(le)
            }
            fn write(&self, b: &mut [u8]) {
                b[..core::mem::size_of::<$t>()].copy_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}

wire_int!(u8, u16, u32, u64, i32, i64);

impl<T: Wire, const N: usize> Wire for [T; N] {
    fn read(b: &[u8]) -> Self {
        core::array::from_fn(|i| T::read(&b[i * core::mem::size_of::<T>()..]))
    }
    fn write(&self, b: &mut [u8]) {
        for (i, v) in self.iter().enumerate() {
            v.write(&mut b[i * core::mem::size_of::<T>()..]);
        }
    }
}

/// `impl Wire` for a `repr(C)` struct of `Wire` fields, each at its
/// `offset_of!`: `wire_struct!(T, { field, ... });`. Every field must be
/// listed (the struct literal fails to compile otherwise).
macro_rules! wire_struct {
    ($t:ident, { $($f:ident),* $(,)? }) => {
        impl $crate::domctl::Wire for $t {
            fn read(b: &[u8]) -> Self {
                $t { $($f: $crate::domctl::Wire::read(&b[core::mem::offset_of!($t, $f)..]),)* }
            }
            fn write(&self, b: &mut [u8]) {
                $( $crate::domctl::Wire::write(&self.$f, &mut b[core::mem::offset_of!($t, $f)..]); )*
            }
        }
    };
}
pub(crate) use wire_struct;

/// Size of the `domctl` and `sysctl` unions (C's `uint8_t pad[128]`).
const UNION_SIZE: usize = 128;

/// Reads payload `T` from the start of union storage `u`.
pub(crate) fn read_union<T: Wire>(u: &[u64; 16]) -> T {
    const { assert!(core::mem::size_of::<T>() <= UNION_SIZE) };
    let mut b = [0u8; UNION_SIZE];
    u.write(&mut b);
    T::read(&b)
}

/// Writes payload `v` at the start of union storage `u`, leaving the bytes
/// after it as they were.
pub(crate) fn write_union<T: Wire>(u: &mut [u64; 16], v: &T) {
    const { assert!(core::mem::size_of::<T>() <= UNION_SIZE) };
    let mut b = [0u8; UNION_SIZE];
    u.write(&mut b);
    v.write(&mut b);
    *u = Wire::read(&b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_set_version_command_and_payload() {
        let cfg = XenDomctlCreatedomain { max_vcpus: 2, max_grant_frames: -1, ..Default::default() };
        let op = XenDomctl::createdomain(0, &cfg);
        assert_eq!((op.cmd, op.interface_version, op.domain), (XEN_DOMCTL_CREATEDOMAIN, 0x15, 0));
        assert_eq!(op.u_createdomain(), cfg);

        let op = XenDomctl::setvcpucontext(3, 1, 0x1234_5000);
        assert_eq!((op.cmd, op.domain), (XEN_DOMCTL_SETVCPUCONTEXT, 3));
        assert_eq!(op.u_vcpucontext(), XenDomctlVcpucontext { vcpu: 1, _pad0: 0, ctxt: 0x1234_5000 });
        // vcpu at byte 0, the handle at byte 8: the first two words.
        assert_eq!(&op.u[..2], &[1, 0x1234_5000]);

        assert_eq!(XenDomctl::max_mem(4, 1 << 20).u[0], 1 << 20);
        let s = XenDomctl::sched_credit(3, XEN_DOMCTL_SCHEDOP_PUTINFO, XenDomctlSchedCredit { weight: 512, cap: 50 });
        // C: weight at byte 8 of the scheduler_op, cap at byte 10.
        assert_eq!(s.u[1], 512 | 50 << 16);
        assert_eq!(s.u_scheduler_op().credit(), XenDomctlSchedCredit { weight: 512, cap: 50 });
        assert_eq!(XenDomctl::max_vcpus(4, 8).u[0], 8);
        assert_eq!(XenDomctl::hypercall_init(4, 0x1234).u_hypercall_init().gmfn, 0x1234);
        assert_eq!(XenDomctl::getvcpuinfo(4, 2).u_getvcpuinfo().vcpu, 2);
        for (op, cmd) in [
            (XenDomctl::destroydomain(5), XEN_DOMCTL_DESTROYDOMAIN),
            (XenDomctl::pausedomain(5), XEN_DOMCTL_PAUSEDOMAIN),
            (XenDomctl::unpausedomain(5), XEN_DOMCTL_UNPAUSEDOMAIN),
            (XenDomctl::getdomaininfo(5), XEN_DOMCTL_GETDOMAININFO),
        ] {
            assert_eq!((op.cmd, op.domain, op.u), (cmd, 5, [0; 16]));
        }
    }

    #[test]
    fn payloads_round_trip_through_the_union() {
        let info = XenDomctlGetdomaininfo {
            domain: 7,
            flags: XEN_DOMINF_SHUTDOWN | (3 << XEN_DOMINF_SHUTDOWNSHIFT),
            tot_pages: 0x1111,
            cpu_time: u64::MAX,
            max_vcpu_id: XEN_INVALID_MAX_VCPU_ID,
            handle: [0xab; 16],
            gpaddr_bits: 40,
            arch_config: XenArchDomainconfig { emulation_flags: XEN_X86_EMU_ALL, misc_flags: 1 },
            ..Default::default()
        };
        let mut op = XenDomctl::getdomaininfo(0);
        op.set_u_getdomaininfo(&info);
        assert_eq!(op.u_getdomaininfo(), info);
        assert_eq!(op.u_getdomaininfo().shutdown_reason(), 3);
        // A smaller payload written over it leaves the rest of the union.
        op.set_u_max_vcpus(&XenDomctlMaxVcpus { max: 9 });
        assert_eq!(op.u_max_vcpus().max, 9);
        assert_eq!(op.u_getdomaininfo().tot_pages, 0x1111);
    }

    #[test]
    fn grant_version_keeps_the_low_bits() {
        assert_eq!(xen_domctl_grant_version(2), 2);
        assert_eq!(xen_domctl_grant_version(0x12), 2);
    }
}
