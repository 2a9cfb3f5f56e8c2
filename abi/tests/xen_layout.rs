//! The layout oracle: every struct, field and constant of `abi` against Xen 4.17's C headers.
//!
//! This is the enforcement of SPEC.md §2 (Versioning): Xen's numbers and
//! layouts are Xen 4.17's.
//!
//! The test writes a C program that includes Xen's public headers from
//! `/usr/include/xen` (Debian's `libxen-dev`), prints `sizeof`, `_Alignof`,
//! `offsetof` and field sizes for every struct this crate defines and the
//! value of every constant, compiles it with `cc`, runs it, and compares each
//! line with the Rust side. All mismatches are reported at once.
//!
//! Each table row names both sides, so a field or constant cannot be added to
//! one without the other: the struct patterns in `layouts!` fail to compile
//! if a Rust field is left out, and `every_public_item_is_in_a_table` fails if
//! a `pub const` or `pub struct` in `abi/src` is in no table.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use abi::*;

const XEN_INCLUDE: &str = "/usr/include/xen";

// ---------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------

/// A struct: its Rust and C names and its Rust layout.
#[derive(Clone, Debug)]
struct Layout {
    rust: &'static str,
    c: &'static str,
    /// C expression for the size, when it is not `sizeof(c)`.
    c_size: Option<&'static str>,
    size: usize,
    align: usize,
    fields: Vec<Field>,
}

/// A field: its Rust name, its C name (`None` for Rust-only padding) and
/// its Rust offset and size.
#[derive(Clone, Debug)]
struct Field {
    rust: &'static str,
    c: Option<&'static str>,
    offset: usize,
    size: usize,
}

/// A numeric constant (or a value computed from the crate) and the C
/// expression it must equal.
#[derive(Clone, Debug)]
struct Const {
    rust: &'static str,
    value: i64,
    c: &'static str,
}

/// A string constant and the C string expression it must equal.
#[derive(Clone, Debug)]
struct StrConst {
    rust: &'static str,
    value: String,
    c: &'static str,
}

/// A C union member read and written through a Rust accessor pair on raw
/// union storage. `get` builds the Rust struct from an image of the union
/// storage and reads the member; `set` writes the member into zeroed storage
/// and returns its image.
#[derive(Clone, Debug)]
struct View {
    rust: &'static str,
    c_struct: &'static str,
    c_union: &'static str,
    c_member: &'static str,
    storage_len: usize,
    get: fn(&[u8]) -> u64,
    set: fn(u64) -> Vec<u8>,
}

#[derive(Clone, Debug)]
struct Tables {
    layouts: Vec<Layout>,
    consts: Vec<Const>,
    strs: Vec<StrConst>,
    views: Vec<View>,
}

fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    std::mem::size_of::<F>()
}

macro_rules! c_field {
    ($f:ident) => {
        Some(stringify!($f))
    };
    ($f:ident pad) => {
        None
    };
    ($f:ident $c:literal) => {
        Some($c)
    };
}

/// `Type => "struct c_name" [size "C expr"] { field [= "c_name" | = pad], ... }`
macro_rules! layouts {
    ($( $ty:path => $c:literal $(size $csize:literal)? { $( $f:ident $(= $cf:tt)? ),* $(,)? } )*) => {
        fn layouts() -> Vec<Layout> {
            vec![$({
                // Fails to compile if a Rust field is missing from the row.
                #[allow(dead_code)]
                fn exhaustive(v: &$ty) {
                    let $ty { $($f: _),* } = v;
                }
                Layout {
                    rust: stringify!($ty),
                    c: $c,
                    c_size: None $(.or(Some($csize)))?,
                    size: std::mem::size_of::<$ty>(),
                    align: std::mem::align_of::<$ty>(),
                    fields: vec![$(Field {
                        rust: stringify!($f),
                        c: c_field!($f $($cf)?),
                        offset: std::mem::offset_of!($ty, $f),
                        size: field_size::<$ty, _>(|v| &v.$f),
                    }),*],
                }
            }),*]
        }
    };
}

/// `rust expression => "C expression"`.
macro_rules! consts {
    ($( $e:expr => $c:literal ),* $(,)?) => {
        fn consts() -> Vec<Const> {
            vec![$(Const { rust: stringify!($e), value: ($e) as i64, c: $c }),*]
        }
    };
}

/// `Type, "struct c", storage_field: bytes|u64, "c.member.path", getter, setter`.
macro_rules! view {
    ($ty:path, $c:literal, $u:ident: bytes, $m:literal, $get:ident, $set:ident) => {
        View {
            rust: concat!(stringify!($ty), "::", stringify!($get)),
            c_struct: $c,
            c_union: stringify!($u),
            c_member: $m,
            storage_len: field_size::<$ty, _>(|v| &v.$u),
            get: |img| {
                let mut s = <$ty as Default>::default();
                s.$u.copy_from_slice(img);
                s.$get() as u64
            },
            set: |value| {
                let mut s = <$ty as Default>::default();
                s.$set(value as _);
                s.$u.to_vec()
            },
        }
    };
    ($ty:path, $c:literal, $u:ident: u64, $m:literal, $get:ident, $set:ident) => {
        View {
            rust: concat!(stringify!($ty), "::", stringify!($get)),
            c_struct: $c,
            c_union: stringify!($u),
            c_member: $m,
            storage_len: 8,
            get: |img| {
                let mut s = <$ty as Default>::default();
                s.$u = u64::from_le_bytes(img.try_into().unwrap());
                s.$get() as u64
            },
            set: |value| {
                let mut s = <$ty as Default>::default();
                s.$set(value as _);
                s.$u.to_le_bytes().to_vec()
            },
        }
    };
}

/// A value's bits as the oracle compares them: zero-extended, so a signed
/// field holding the sentinel reads back as the same bytes.
trait Bits {
    fn bits(self) -> u64;
}

macro_rules! bits {
    ($($t:ty => $u:ty),*) => {$(
        impl Bits for $t {
            fn bits(self) -> u64 {
                self as $u as u64
            }
        }
    )*};
}

bits!(u8 => u8, u16 => u16, u32 => u32, u64 => u64, i32 => u32, i64 => u64);

/// Union storage kept as `[u64; 16]`, from and to its bytes.
fn words(img: &[u8]) -> [u64; 16] {
    std::array::from_fn(|i| u64::from_le_bytes(img[i * 8..i * 8 + 8].try_into().unwrap()))
}

fn words_bytes(u: &[u64; 16]) -> Vec<u8> {
    u.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// A field of a typed union payload (`domctl`, `sysctl`), read and written
/// through the payload's accessor pair: `Type, "struct c", getter, setter,
/// "c member", field path`. The path may go into a nested struct or index
/// an array.
macro_rules! payload_view {
    ($ty:ident, $c:literal, $get:ident, $set:ident, $m:literal, $($path:tt)+) => {
        View {
            rust: concat!(stringify!($ty), "::", stringify!($get), "().", stringify!($($path)+)),
            c_struct: $c,
            c_union: "u",
            c_member: concat!("u.", $m, ".", stringify!($($path)+)),
            storage_len: field_size::<$ty, _>(|v| &v.u),
            get: |img| {
                let mut s = <$ty as Default>::default();
                s.u = words(img);
                s.$get().$($path)+.bits()
            },
            set: |value| {
                let mut s = <$ty as Default>::default();
                let mut p = s.$get();
                p.$($path)+ = value as _;
                s.$set(&p);
                words_bytes(&s.u)
            },
        }
    };
}

layouts! {
    start_info::StartInfo => "struct start_info" {
        magic, nr_pages, shared_info, flags, _pad0 = pad, store_mfn, store_evtchn,
        _pad1 = pad, console, pt_base, nr_pt_frames, mfn_list, mod_start, mod_len,
        cmd_line, first_p2m_pfn, nr_p2m_frames,
    }
    shared_info::VcpuTimeInfo => "struct vcpu_time_info" {
        version, pad0, tsc_timestamp, system_time, tsc_to_system_mul, tsc_shift, flags, pad1,
    }
    shared_info::ArchVcpuInfo => "struct arch_vcpu_info" { cr2, pad }
    shared_info::VcpuInfo => "struct vcpu_info" {
        evtchn_upcall_pending, evtchn_upcall_mask, _pad0 = pad, evtchn_pending_sel, arch, time,
    }
    shared_info::ArchSharedInfo => "struct arch_shared_info" {
        max_pfn, pfn_to_mfn_frame_list_list, nmi_reason, p2m_cr3, p2m_vaddr, p2m_generation,
    }
    shared_info::SharedInfo => "struct shared_info" {
        vcpu_info, evtchn_pending, evtchn_mask, wc_version, wc_sec, wc_nsec, wc_sec_hi, arch,
    }
    arch::TrapInfo => "struct trap_info" { vector, flags, cs, _pad0 = pad, address }
    arch::CpuUserRegs => "struct cpu_user_regs" {
        r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi,
        error_code, entry_vector, rip, cs, _pad0, saved_upcall_mask, _pad1, rflags, rsp,
        ss, _pad2, es, _pad3, ds, _pad4, fs, _pad5, gs, _pad6,
    }
    arch::VcpuGuestContext => "struct vcpu_guest_context" {
        fpu_ctxt, flags, user_regs, trap_ctxt, ldt_base, ldt_ents, gdt_frames, gdt_ents,
        kernel_ss, kernel_sp, ctrlreg, debugreg, event_callback_eip, failsafe_callback_eip,
        syscall_callback_eip, vm_assist, fs_base, gs_base_kernel, gs_base_user,
    }
    arch::IretContext => "struct iret_context" { rax, r11, rcx, flags, rip, cs, rflags, rsp, ss }
    callback::CallbackRegister => "struct callback_register" {
        type_ = "type", flags, _pad0 = pad, address,
    }
    callback::CallbackUnregister => "struct callback_unregister" { type_ = "type", _unused }
    mm::MmuUpdate => "struct mmu_update" { ptr, val }
    mm::MmuextOp => "struct mmuext_op" { cmd, _pad0 = pad, arg1, arg2 }
    mm::XenMemoryReservation => "struct xen_memory_reservation" {
        extent_start, nr_extents, extent_order, mem_flags, domid, _pad0 = pad,
    }
    mm::XenMemoryDomain => "struct xen_memory_domain" { domid }
    mm::XenMachphysMfnList => "struct xen_machphys_mfn_list" {
        max_extents, _pad0 = pad, extent_start, nr_extents, _pad1 = pad,
    }
    mm::XenMachphysMapping => "struct xen_machphys_mapping" { v_start, v_end, max_mfn }
    mm::XenAddToPhysmap => "struct xen_add_to_physmap" { domid, size, space, idx, gpfn }
    mm::XenMemoryMap => "struct xen_memory_map" { nr_entries, _pad0 = pad, buffer }
    mm::MulticallEntry => "struct multicall_entry" { op, result, args }
    physdev::PhysdevSetIopl => "struct physdev_set_iopl" { iopl }
    sched::SchedShutdown => "struct sched_shutdown" { reason }
    sched::SchedPoll => "struct sched_poll" { ports, nr_ports, _pad0 = pad, timeout }
    sched::SchedRemoteShutdown => "struct sched_remote_shutdown" {
        domain_id, _pad0 = pad, reason,
    }
    sched::VcpuRunstateInfo => "struct vcpu_runstate_info" {
        state, _pad0 = pad, state_entry_time, time,
    }
    sched::VcpuRegisterRunstateMemoryArea => "struct vcpu_register_runstate_memory_area" { addr }
    sched::VcpuSetPeriodicTimer => "struct vcpu_set_periodic_timer" { period_ns }
    sched::VcpuSetSingleshotTimer => "struct vcpu_set_singleshot_timer" {
        timeout_abs_ns, flags, _pad0 = pad,
    }
    sched::VcpuRegisterVcpuInfo => "struct vcpu_register_vcpu_info" { mfn, offset, rsvd }
    sched::VcpuRegisterTimeMemoryArea => "struct vcpu_register_time_memory_area" { addr }
    sched::XenPlatformParameters => "struct xen_platform_parameters" { virt_start }
    sched::XenFeatureInfo => "struct xen_feature_info" { submap_idx, submap }
    event_channel::EvtchnAllocUnbound => "struct evtchn_alloc_unbound" { dom, remote_dom, port }
    event_channel::EvtchnBindInterdomain => "struct evtchn_bind_interdomain" {
        remote_dom, _pad0 = pad, remote_port, local_port,
    }
    event_channel::EvtchnBindVirq => "struct evtchn_bind_virq" { virq, vcpu, port }
    event_channel::EvtchnBindPirq => "struct evtchn_bind_pirq" { pirq, flags, port }
    event_channel::EvtchnBindIpi => "struct evtchn_bind_ipi" { vcpu, port }
    event_channel::EvtchnClose => "struct evtchn_close" { port }
    event_channel::EvtchnSend => "struct evtchn_send" { port }
    event_channel::EvtchnStatus => "struct evtchn_status" {
        dom, _pad0 = pad, port, status, vcpu, u,
    }
    event_channel::EvtchnBindVcpu => "struct evtchn_bind_vcpu" { port, vcpu }
    event_channel::EvtchnUnmask => "struct evtchn_unmask" { port }
    event_channel::EvtchnReset => "struct evtchn_reset" { dom }
    event_channel::EvtchnOp => "struct evtchn_op" { cmd, u }
    grant_table::GrantEntryV1 => "struct grant_entry_v1" { flags, domid, frame }
    grant_table::GnttabMapGrantRef => "struct gnttab_map_grant_ref" {
        host_addr, flags, ref_ = "ref", dom, status, handle, dev_bus_addr,
    }
    grant_table::GnttabUnmapGrantRef => "struct gnttab_unmap_grant_ref" {
        host_addr, dev_bus_addr, handle, status, _pad0 = pad,
    }
    grant_table::GnttabSetupTable => "struct gnttab_setup_table" {
        dom, _pad0 = pad, nr_frames, status, _pad1 = pad, frame_list,
    }
    grant_table::GnttabCopyPtr => "struct gnttab_copy_ptr" { u, domid, offset, _pad0 = pad }
    grant_table::GnttabCopy => "struct gnttab_copy" {
        source, dest, len, flags, status, _pad0 = pad,
    }
    grant_table::GnttabQuerySize => "struct gnttab_query_size" {
        dom, _pad0 = pad, nr_frames, max_nr_frames, status, _pad1 = pad,
    }
    grant_table::GnttabSetVersion => "struct gnttab_set_version" { version }
    console::XenconsInterface => "struct xencons_interface" {
        in_ = "in", out, in_cons, in_prod, out_cons, out_prod,
    }
    ring::SringHeader => "struct dummy_sring" size "offsetof(struct dummy_sring, ring)" {
        req_prod, req_event, rsp_prod, rsp_event, pvt, pad = "__pad",
    }
    blkif::BlkifRequestSegment => "struct blkif_request_segment" { gref, first_sect, last_sect, _pad0 = pad }
    blkif::BlkifRequest => "struct blkif_request" {
        operation, nr_segments, handle, _pad0 = pad, id, sector_number, seg,
    }
    blkif::BlkifResponse => "struct blkif_response" { id, operation, _pad0 = pad, status, _pad1 = pad }
    xenstore::XsdSockmsg => "struct xsd_sockmsg" { type_ = "type", req_id, tx_id, len }
    xenstore::XenstoreDomainInterface => "struct xenstore_domain_interface" {
        req, rsp, req_cons, req_prod, rsp_cons, rsp_prod, server_features, connection, error,
    }
    domctl::XenDomctl => "struct xen_domctl" { cmd, interface_version, domain, _pad, u }
    domctl::XenArchDomainconfig => "struct xen_arch_domainconfig" { emulation_flags, misc_flags }
    domctl::XenDomctlCreatedomain => "struct xen_domctl_createdomain" {
        ssidref, handle, flags, iommu_opts, max_vcpus, max_evtchn_port, max_grant_frames,
        max_maptrack_frames, grant_opts, vmtrace_size, cpupool_id, arch,
    }
    domctl::XenDomctlGetdomaininfo => "struct xen_domctl_getdomaininfo" {
        domain, pad1, flags, tot_pages, max_pages, outstanding_pages, shr_pages, paged_pages,
        shared_info_frame, cpu_time, nr_online_vcpus, max_vcpu_id, ssidref, handle, cpupool,
        gpaddr_bits, pad2, arch_config,
    }
    domctl::XenDomctlMaxMem => "struct xen_domctl_max_mem" { max_memkb }
    domctl::XenDomctlVcpucontext => "struct xen_domctl_vcpucontext" { vcpu, _pad0 = pad, ctxt }
    domctl::XenDomctlGetvcpuinfo => "struct xen_domctl_getvcpuinfo" {
        vcpu, online, blocked, running, _pad0 = pad, cpu_time, cpu, _pad1 = pad,
    }
    domctl::XenDomctlMaxVcpus => "struct xen_domctl_max_vcpus" { max }
    domctl::XenDomctlHypercallInit => "struct xen_domctl_hypercall_init" { gmfn }
    domctl::XenDomctlSchedCredit => "struct xen_domctl_sched_credit" { weight, cap }
    domctl::XenDomctlSchedulerOp => "struct xen_domctl_scheduler_op" { sched_id, cmd, u }
    sysctl::XenSysctl => "struct xen_sysctl" { cmd, interface_version, u }
    sysctl::XenSysctlReadconsole => "struct xen_sysctl_readconsole" {
        clear, incremental, pad0, pad1, index, buffer, count, _pad2 = pad,
    }
    sysctl::XenSysctlPhysinfo => "struct xen_sysctl_physinfo" {
        threads_per_core, cores_per_socket, nr_cpus, max_cpu_id, nr_nodes, max_node_id, cpu_khz,
        capabilities, arch_capabilities, pad, total_pages, free_pages, scrub_pages,
        outstanding_pages, max_mfn, hw_cap,
    }
    sysctl::XenSysctlGetdomaininfolist => "struct xen_sysctl_getdomaininfolist" {
        first_domain, _pad0 = pad, max_domains, buffer, num_domains, _pad1 = pad,
    }
}

fn views() -> Vec<View> {
    use event_channel::EvtchnStatus;
    use grant_table::GnttabCopyPtr;
    use mm::MmuextOp;
    use start_info::StartInfo;
    let mut v = vec![
        view!(StartInfo, "struct start_info", console: bytes, "console.domU.mfn",
            console_domu_mfn, set_console_domu_mfn),
        view!(StartInfo, "struct start_info", console: bytes, "console.domU.evtchn",
            console_domu_evtchn, set_console_domu_evtchn),
        view!(StartInfo, "struct start_info", console: bytes, "console.dom0.info_off",
            console_dom0_info_off, set_console_dom0_info_off),
        view!(StartInfo, "struct start_info", console: bytes, "console.dom0.info_size",
            console_dom0_info_size, set_console_dom0_info_size),
        view!(EvtchnStatus, "struct evtchn_status", u: bytes, "u.unbound.dom",
            u_unbound_dom, set_u_unbound_dom),
        view!(EvtchnStatus, "struct evtchn_status", u: bytes, "u.interdomain.dom",
            u_interdomain_dom, set_u_interdomain_dom),
        view!(EvtchnStatus, "struct evtchn_status", u: bytes, "u.interdomain.port",
            u_interdomain_port, set_u_interdomain_port),
        view!(EvtchnStatus, "struct evtchn_status", u: bytes, "u.pirq", u_pirq, set_u_pirq),
        view!(EvtchnStatus, "struct evtchn_status", u: bytes, "u.virq", u_virq, set_u_virq),
        view!(GnttabCopyPtr, "struct gnttab_copy_ptr", u: u64, "u.ref", gref, set_gref),
        view!(GnttabCopyPtr, "struct gnttab_copy_ptr", u: u64, "u.gmfn", gmfn, set_gmfn),
        view!(MmuextOp, "struct mmuext_op", arg2: u64, "arg2.nr_ents", nr_ents, set_nr_ents),
    ];
    v.extend(domctl_views());
    v.extend(sysctl_views());
    v
}

/// Every field of every `domctl` payload, through `XenDomctl`'s accessors.
fn domctl_views() -> Vec<View> {
    use domctl::XenDomctl;
    macro_rules! cd {
        ($($path:tt)+) => {
            payload_view!(XenDomctl, "struct xen_domctl", u_createdomain, set_u_createdomain, "createdomain", $($path)+)
        };
    }
    macro_rules! gi {
        ($($path:tt)+) => {
            payload_view!(XenDomctl, "struct xen_domctl", u_getdomaininfo, set_u_getdomaininfo, "getdomaininfo", $($path)+)
        };
    }
    macro_rules! vi {
        ($($path:tt)+) => {
            payload_view!(XenDomctl, "struct xen_domctl", u_getvcpuinfo, set_u_getvcpuinfo, "getvcpuinfo", $($path)+)
        };
    }
    vec![
        cd!(ssidref),
        cd!(handle[0]),
        cd!(handle[15]),
        cd!(flags),
        cd!(iommu_opts),
        cd!(max_vcpus),
        cd!(max_evtchn_port),
        cd!(max_grant_frames),
        cd!(max_maptrack_frames),
        cd!(grant_opts),
        cd!(vmtrace_size),
        cd!(cpupool_id),
        cd!(arch.emulation_flags),
        cd!(arch.misc_flags),
        gi!(domain),
        gi!(pad1),
        gi!(flags),
        gi!(tot_pages),
        gi!(max_pages),
        gi!(outstanding_pages),
        gi!(shr_pages),
        gi!(paged_pages),
        gi!(shared_info_frame),
        gi!(cpu_time),
        gi!(nr_online_vcpus),
        gi!(max_vcpu_id),
        gi!(ssidref),
        gi!(handle[0]),
        gi!(handle[15]),
        gi!(cpupool),
        gi!(gpaddr_bits),
        gi!(pad2[0]),
        gi!(pad2[6]),
        gi!(arch_config.emulation_flags),
        gi!(arch_config.misc_flags),
        payload_view!(XenDomctl, "struct xen_domctl", u_max_mem, set_u_max_mem, "max_mem", max_memkb),
        payload_view!(XenDomctl, "struct xen_domctl", u_vcpucontext, set_u_vcpucontext, "vcpucontext", vcpu),
        payload_view!(XenDomctl, "struct xen_domctl", u_vcpucontext, set_u_vcpucontext, "vcpucontext", ctxt),
        vi!(vcpu),
        vi!(online),
        vi!(blocked),
        vi!(running),
        vi!(cpu_time),
        vi!(cpu),
        payload_view!(XenDomctl, "struct xen_domctl", u_max_vcpus, set_u_max_vcpus, "max_vcpus", max),
        payload_view!(XenDomctl, "struct xen_domctl", u_hypercall_init, set_u_hypercall_init, "hypercall_init", gmfn),
    ]
}

/// Every field of every `sysctl` payload, through `XenSysctl`'s accessors.
fn sysctl_views() -> Vec<View> {
    use sysctl::XenSysctl;
    macro_rules! rc {
        ($($path:tt)+) => {
            payload_view!(XenSysctl, "struct xen_sysctl", u_readconsole, set_u_readconsole, "readconsole", $($path)+)
        };
    }
    macro_rules! pi {
        ($($path:tt)+) => {
            payload_view!(XenSysctl, "struct xen_sysctl", u_physinfo, set_u_physinfo, "physinfo", $($path)+)
        };
    }
    macro_rules! dl {
        ($($path:tt)+) => {
            payload_view!(
                XenSysctl, "struct xen_sysctl", u_getdomaininfolist, set_u_getdomaininfolist, "getdomaininfolist",
                $($path)+
            )
        };
    }
    vec![
        rc!(clear),
        rc!(incremental),
        rc!(pad0),
        rc!(pad1),
        rc!(index),
        rc!(buffer),
        rc!(count),
        pi!(threads_per_core),
        pi!(cores_per_socket),
        pi!(nr_cpus),
        pi!(max_cpu_id),
        pi!(nr_nodes),
        pi!(max_node_id),
        pi!(cpu_khz),
        pi!(capabilities),
        pi!(arch_capabilities),
        pi!(pad),
        pi!(total_pages),
        pi!(free_pages),
        pi!(scrub_pages),
        pi!(outstanding_pages),
        pi!(max_mfn),
        pi!(hw_cap[0]),
        pi!(hw_cap[7]),
        dl!(first_domain),
        dl!(max_domains),
        dl!(buffer),
        dl!(num_domains),
    ]
}

/// String constants the headers define.
fn strs() -> Vec<StrConst> {
    let prefix = arch::XEN_EMULATE_PREFIX.iter().map(|b| format!("{b:#04x}")).collect::<Vec<_>>().join(",");
    let mut strs = vec![StrConst {
        rust: "arch::XEN_EMULATE_PREFIX",
        value: format!(".byte {prefix} ; "),
        c: "XEN_EMULATE_PREFIX",
    }];
    // The names an XS_ERROR reply carries, entry by entry.
    strs.push(StrConst {
        rust: "blkif::BLKIF_PROTOCOL_X86_64",
        value: blkif::BLKIF_PROTOCOL_X86_64.to_owned(),
        c: "XEN_IO_PROTO_ABI_X86_64",
    });
    strs.extend(xenstore::XSD_ERRORS.iter().enumerate().map(|(i, e)| StrConst {
        rust: "xenstore::XSD_ERRORS",
        value: e.name().to_owned(),
        c: String::leak(format!("xsd_errors[{i}].errstring")),
    }));
    strs
}

/// Constants with no counterpart in Xen's public headers, and why.
const NOT_IN_HEADERS: &[(&str, &str)] = &[
    ("version::ABI_VERSION", "this crate's own ABI version"),
    ("version::XEN_VERSION_MAJOR", "Xen's version comes from its build (xen/compile.h), not the public headers"),
    ("version::XEN_VERSION_MINOR", "as XEN_VERSION_MAJOR"),
    ("version::XEN_VERSION_PACKED", "as XEN_VERSION_MAJOR"),
    ("hypercall::NR_HYPERCALLS", "the size of this project's hypercall table (Xen's NR_hypercalls is internal)"),
    ("arch::HYPERVISOR_CS", "Xen-internal selector (asm/desc.h)"),
    ("arch::HYPERVISOR_DS", "Xen-internal selector (asm/desc.h)"),
    ("start_info::START_INFO_MAGIC", "the headers give the magic only in a comment"),
    ("elfnote::XEN_ELFNOTE_OWNER", "the headers give the note owner only in a comment"),
    ("hypercall_page::HYPERCALL_PAGE_ENTRY_SIZE", "the page's layout is Xen-internal (hypercall_page_initialise)"),
    ("hypercall_page::HYPERCALL_PAGE_ENTRIES", "as HYPERCALL_PAGE_ENTRY_SIZE"),
];

/// Public structs that are not ABI layouts.
const NOT_ABI_STRUCTS: &[(&str, &str)] = &[
    ("version::AbiVersion", "a Rust-side version pair, never shared with a guest"),
    ("lib::UnknownValue", "the error of TryFrom conversions"),
    ("guest::Syscall", "guest-side code: the raw `syscall` hypercall transport, not a shared layout"),
    ("guest::HypercallPage", "guest-side code: the address of the hypercall page, not a shared layout"),
    ("guest::Hypercalls", "guest-side code: hypercall wrappers over a transport, not a shared layout"),
    ("guest::BatchError", "guest-side code: how far an mmu_update/mmuext_op batch got, not a shared layout"),
];

/// Errno names that alias another errno's value, and the constants for them.
const ERRNO_ALIASES: &[(&str, i32)] = &[("EWOULDBLOCK", errno::EWOULDBLOCK), ("EDEADLOCK", errno::EDEADLOCK)];

consts! {
    // version
    version::INTERFACE_VERSION => "__XEN_LATEST_INTERFACE_VERSION__",
    // hand-mapped names
    arch::VGCF_I387_VALID => "VGCF_I387_VALID",
    arch::VGCF_IN_KERNEL => "VGCF_IN_KERNEL",
    arch::VGCF_IN_SYSCALL => "VGCF_in_syscall",
    arch::TRAP_INFO_DPL_MASK => "({ struct trap_info t_ = { .flags = 0xff }; TI_GET_DPL(&t_); })",
    arch::TRAP_INFO_MASK_EVENTS => "({ struct trap_info t_ = { .flags = 0xff }; TI_GET_IF(&t_); })",
    console::XENCONS_IN_SIZE => "sizeof(((struct xencons_interface *)0)->in)",
    console::XENCONS_OUT_SIZE => "sizeof(((struct xencons_interface *)0)->out)",
    event_channel::BIND_PIRQ_WILL_SHARE => "BIND_PIRQ__WILL_SHARE",
    ring::SRING_HEADER_SIZE => "offsetof(struct dummy_sring, ring)",
    shared_info::MAX_VIRT_CPUS => "XEN_LEGACY_MAX_VCPUS",
    // ring_size() against Xen's __CONST_RING_SIZE for several entry sizes
    ring::ring_size(4096, 1) => "__CONST_RING_SIZE(r1, 4096)",
    ring::ring_size(4096, 4) => "__CONST_RING_SIZE(r4, 4096)",
    ring::ring_size(4096, 8) => "__CONST_RING_SIZE(r8, 4096)",
    ring::ring_size(4096, 12) => "__CONST_RING_SIZE(r12, 4096)",
    ring::ring_size(4096, 64) => "__CONST_RING_SIZE(r64, 4096)",
    ring::ring_size(4096, 112) => "__CONST_RING_SIZE(r112, 4096)",
    ring::ring_size(4096, 1000) => "__CONST_RING_SIZE(r1000, 4096)",
    ring::ring_size(4096, 4032) => "__CONST_RING_SIZE(r4032, 4096)",
    ring::ring_size(8192, 8) => "__CONST_RING_SIZE(r8, 8192)",
    ring::ring_size(65536, 12) => "__CONST_RING_SIZE(r12, 65536)",
    // arch
    arch::FIRST_RESERVED_GDT_PAGE => "FIRST_RESERVED_GDT_PAGE",
    arch::FIRST_RESERVED_GDT_BYTE => "FIRST_RESERVED_GDT_BYTE",
    arch::FIRST_RESERVED_GDT_ENTRY => "FIRST_RESERVED_GDT_ENTRY",
    arch::FLAT_RING3_CS32 => "FLAT_RING3_CS32",
    arch::FLAT_RING3_CS64 => "FLAT_RING3_CS64",
    arch::FLAT_RING3_DS32 => "FLAT_RING3_DS32",
    arch::FLAT_RING3_DS64 => "FLAT_RING3_DS64",
    arch::FLAT_RING3_SS32 => "FLAT_RING3_SS32",
    arch::FLAT_RING3_SS64 => "FLAT_RING3_SS64",
    arch::FLAT_KERNEL_DS64 => "FLAT_KERNEL_DS64",
    arch::FLAT_KERNEL_DS32 => "FLAT_KERNEL_DS32",
    arch::FLAT_KERNEL_DS => "FLAT_KERNEL_DS",
    arch::FLAT_KERNEL_CS64 => "FLAT_KERNEL_CS64",
    arch::FLAT_KERNEL_CS32 => "FLAT_KERNEL_CS32",
    arch::FLAT_KERNEL_CS => "FLAT_KERNEL_CS",
    arch::FLAT_KERNEL_SS64 => "FLAT_KERNEL_SS64",
    arch::FLAT_KERNEL_SS32 => "FLAT_KERNEL_SS32",
    arch::FLAT_KERNEL_SS => "FLAT_KERNEL_SS",
    arch::FLAT_USER_DS64 => "FLAT_USER_DS64",
    arch::FLAT_USER_DS32 => "FLAT_USER_DS32",
    arch::FLAT_USER_DS => "FLAT_USER_DS",
    arch::FLAT_USER_CS64 => "FLAT_USER_CS64",
    arch::FLAT_USER_CS32 => "FLAT_USER_CS32",
    arch::FLAT_USER_CS => "FLAT_USER_CS",
    arch::FLAT_USER_SS64 => "FLAT_USER_SS64",
    arch::FLAT_USER_SS32 => "FLAT_USER_SS32",
    arch::FLAT_USER_SS => "FLAT_USER_SS",
    arch::HYPERVISOR_VIRT_START => "HYPERVISOR_VIRT_START",
    arch::HYPERVISOR_VIRT_END => "HYPERVISOR_VIRT_END",
    arch::MACH2PHYS_VIRT_START => "MACH2PHYS_VIRT_START",
    arch::MACH2PHYS_VIRT_END => "MACH2PHYS_VIRT_END",
    arch::MACH2PHYS_NR_ENTRIES => "MACH2PHYS_NR_ENTRIES",
    arch::SEGBASE_FS => "SEGBASE_FS",
    arch::SEGBASE_GS_USER => "SEGBASE_GS_USER",
    arch::SEGBASE_GS_KERNEL => "SEGBASE_GS_KERNEL",
    arch::SEGBASE_GS_USER_SEL => "SEGBASE_GS_USER_SEL",
    arch::VGCF_FAILSAFE_DISABLES_EVENTS => "VGCF_failsafe_disables_events",
    arch::VGCF_SYSCALL_DISABLES_EVENTS => "VGCF_syscall_disables_events",
    arch::VGCF_ONLINE => "VGCF_online",
    // callback
    callback::CALLBACKTYPE_EVENT => "CALLBACKTYPE_event",
    callback::CALLBACKTYPE_FAILSAFE => "CALLBACKTYPE_failsafe",
    callback::CALLBACKTYPE_SYSCALL => "CALLBACKTYPE_syscall",
    callback::CALLBACKTYPE_SYSENTER_DEPRECATED => "CALLBACKTYPE_sysenter_deprecated",
    callback::CALLBACKTYPE_NMI => "CALLBACKTYPE_nmi",
    callback::CALLBACKTYPE_SYSENTER => "CALLBACKTYPE_sysenter",
    callback::CALLBACKTYPE_SYSCALL32 => "CALLBACKTYPE_syscall32",
    callback::CALLBACKF_MASK_EVENTS => "CALLBACKF_mask_events",
    callback::CALLBACKOP_REGISTER => "CALLBACKOP_register",
    callback::CALLBACKOP_UNREGISTER => "CALLBACKOP_unregister",
    // elfnote
    elfnote::XEN_ELFNOTE_INFO => "XEN_ELFNOTE_INFO",
    elfnote::XEN_ELFNOTE_ENTRY => "XEN_ELFNOTE_ENTRY",
    elfnote::XEN_ELFNOTE_HYPERCALL_PAGE => "XEN_ELFNOTE_HYPERCALL_PAGE",
    elfnote::XEN_ELFNOTE_VIRT_BASE => "XEN_ELFNOTE_VIRT_BASE",
    elfnote::XEN_ELFNOTE_PADDR_OFFSET => "XEN_ELFNOTE_PADDR_OFFSET",
    elfnote::XEN_ELFNOTE_XEN_VERSION => "XEN_ELFNOTE_XEN_VERSION",
    elfnote::XEN_ELFNOTE_GUEST_OS => "XEN_ELFNOTE_GUEST_OS",
    elfnote::XEN_ELFNOTE_GUEST_VERSION => "XEN_ELFNOTE_GUEST_VERSION",
    elfnote::XEN_ELFNOTE_LOADER => "XEN_ELFNOTE_LOADER",
    elfnote::XEN_ELFNOTE_PAE_MODE => "XEN_ELFNOTE_PAE_MODE",
    elfnote::XEN_ELFNOTE_FEATURES => "XEN_ELFNOTE_FEATURES",
    elfnote::XEN_ELFNOTE_BSD_SYMTAB => "XEN_ELFNOTE_BSD_SYMTAB",
    elfnote::XEN_ELFNOTE_HV_START_LOW => "XEN_ELFNOTE_HV_START_LOW",
    elfnote::XEN_ELFNOTE_L1_MFN_VALID => "XEN_ELFNOTE_L1_MFN_VALID",
    elfnote::XEN_ELFNOTE_SUSPEND_CANCEL => "XEN_ELFNOTE_SUSPEND_CANCEL",
    elfnote::XEN_ELFNOTE_INIT_P2M => "XEN_ELFNOTE_INIT_P2M",
    elfnote::XEN_ELFNOTE_MOD_START_PFN => "XEN_ELFNOTE_MOD_START_PFN",
    elfnote::XEN_ELFNOTE_SUPPORTED_FEATURES => "XEN_ELFNOTE_SUPPORTED_FEATURES",
    elfnote::XEN_ELFNOTE_PHYS32_ENTRY => "XEN_ELFNOTE_PHYS32_ENTRY",
    elfnote::XEN_ELFNOTE_MAX => "XEN_ELFNOTE_MAX",
    elfnote::XEN_ELFNOTE_CRASH_INFO => "XEN_ELFNOTE_CRASH_INFO",
    elfnote::XEN_ELFNOTE_CRASH_REGS => "XEN_ELFNOTE_CRASH_REGS",
    elfnote::XEN_ELFNOTE_DUMPCORE_NONE => "XEN_ELFNOTE_DUMPCORE_NONE",
    elfnote::XEN_ELFNOTE_DUMPCORE_HEADER => "XEN_ELFNOTE_DUMPCORE_HEADER",
    elfnote::XEN_ELFNOTE_DUMPCORE_XEN_VERSION => "XEN_ELFNOTE_DUMPCORE_XEN_VERSION",
    elfnote::XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION => "XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION",
    // errno
    errno::EWOULDBLOCK => "XEN_EWOULDBLOCK",
    errno::EDEADLOCK => "XEN_EDEADLOCK",
    // event_channel
    event_channel::EVTCHNOP_BIND_INTERDOMAIN => "EVTCHNOP_bind_interdomain",
    event_channel::EVTCHNOP_BIND_VIRQ => "EVTCHNOP_bind_virq",
    event_channel::EVTCHNOP_BIND_PIRQ => "EVTCHNOP_bind_pirq",
    event_channel::EVTCHNOP_CLOSE => "EVTCHNOP_close",
    event_channel::EVTCHNOP_SEND => "EVTCHNOP_send",
    event_channel::EVTCHNOP_STATUS => "EVTCHNOP_status",
    event_channel::EVTCHNOP_ALLOC_UNBOUND => "EVTCHNOP_alloc_unbound",
    event_channel::EVTCHNOP_BIND_IPI => "EVTCHNOP_bind_ipi",
    event_channel::EVTCHNOP_BIND_VCPU => "EVTCHNOP_bind_vcpu",
    event_channel::EVTCHNOP_UNMASK => "EVTCHNOP_unmask",
    event_channel::EVTCHNOP_RESET => "EVTCHNOP_reset",
    event_channel::EVTCHNOP_INIT_CONTROL => "EVTCHNOP_init_control",
    event_channel::EVTCHNOP_EXPAND_ARRAY => "EVTCHNOP_expand_array",
    event_channel::EVTCHNOP_SET_PRIORITY => "EVTCHNOP_set_priority",
    event_channel::EVTCHNSTAT_CLOSED => "EVTCHNSTAT_closed",
    event_channel::EVTCHNSTAT_UNBOUND => "EVTCHNSTAT_unbound",
    event_channel::EVTCHNSTAT_INTERDOMAIN => "EVTCHNSTAT_interdomain",
    event_channel::EVTCHNSTAT_PIRQ => "EVTCHNSTAT_pirq",
    event_channel::EVTCHNSTAT_VIRQ => "EVTCHNSTAT_virq",
    event_channel::EVTCHNSTAT_IPI => "EVTCHNSTAT_ipi",
    // grant_table
    grant_table::GNTTAB_NR_RESERVED_ENTRIES => "GNTTAB_NR_RESERVED_ENTRIES",
    grant_table::GNTTAB_RESERVED_CONSOLE => "GNTTAB_RESERVED_CONSOLE",
    grant_table::GNTTAB_RESERVED_XENSTORE => "GNTTAB_RESERVED_XENSTORE",
    grant_table::GTF_INVALID => "GTF_invalid",
    grant_table::GTF_PERMIT_ACCESS => "GTF_permit_access",
    grant_table::GTF_ACCEPT_TRANSFER => "GTF_accept_transfer",
    grant_table::GTF_TRANSITIVE => "GTF_transitive",
    grant_table::GTF_TYPE_MASK => "GTF_type_mask",
    grant_table::GTF_READONLY => "GTF_readonly",
    grant_table::GTF_READING => "GTF_reading",
    grant_table::GTF_WRITING => "GTF_writing",
    grant_table::GTF_PWT => "GTF_PWT",
    grant_table::GTF_PCD => "GTF_PCD",
    grant_table::GTF_PAT => "GTF_PAT",
    grant_table::GTF_SUB_PAGE => "GTF_sub_page",
    grant_table::GTF_TRANSFER_COMMITTED => "GTF_transfer_committed",
    grant_table::GTF_TRANSFER_COMPLETED => "GTF_transfer_completed",
    grant_table::GNTTABOP_MAP_GRANT_REF => "GNTTABOP_map_grant_ref",
    grant_table::GNTTABOP_UNMAP_GRANT_REF => "GNTTABOP_unmap_grant_ref",
    grant_table::GNTTABOP_SETUP_TABLE => "GNTTABOP_setup_table",
    grant_table::GNTTABOP_DUMP_TABLE => "GNTTABOP_dump_table",
    grant_table::GNTTABOP_TRANSFER => "GNTTABOP_transfer",
    grant_table::GNTTABOP_COPY => "GNTTABOP_copy",
    grant_table::GNTTABOP_QUERY_SIZE => "GNTTABOP_query_size",
    grant_table::GNTTABOP_UNMAP_AND_REPLACE => "GNTTABOP_unmap_and_replace",
    grant_table::GNTTABOP_SET_VERSION => "GNTTABOP_set_version",
    grant_table::GNTTABOP_GET_STATUS_FRAMES => "GNTTABOP_get_status_frames",
    grant_table::GNTTABOP_GET_VERSION => "GNTTABOP_get_version",
    grant_table::GNTTABOP_SWAP_GRANT_REF => "GNTTABOP_swap_grant_ref",
    grant_table::GNTTABOP_CACHE_FLUSH => "GNTTABOP_cache_flush",
    grant_table::GNTMAP_DEVICE_MAP => "GNTMAP_device_map",
    grant_table::GNTMAP_HOST_MAP => "GNTMAP_host_map",
    grant_table::GNTMAP_READONLY => "GNTMAP_readonly",
    grant_table::GNTMAP_APPLICATION_MAP => "GNTMAP_application_map",
    grant_table::GNTMAP_CONTAINS_PTE => "GNTMAP_contains_pte",
    grant_table::GNTMAP_GUEST_AVAIL0 => "_GNTMAP_guest_avail0",
    grant_table::GNTMAP_GUEST_AVAIL_MASK => "GNTMAP_guest_avail_mask",
    grant_table::GNTCOPY_SOURCE_GREF => "GNTCOPY_source_gref",
    grant_table::GNTCOPY_DEST_GREF => "GNTCOPY_dest_gref",
    grant_table::GNTST_OKAY => "GNTST_okay",
    grant_table::GNTST_GENERAL_ERROR => "GNTST_general_error",
    grant_table::GNTST_BAD_DOMAIN => "GNTST_bad_domain",
    grant_table::GNTST_BAD_GNTREF => "GNTST_bad_gntref",
    grant_table::GNTST_BAD_HANDLE => "GNTST_bad_handle",
    grant_table::GNTST_BAD_VIRT_ADDR => "GNTST_bad_virt_addr",
    grant_table::GNTST_BAD_DEV_ADDR => "GNTST_bad_dev_addr",
    grant_table::GNTST_NO_DEVICE_SPACE => "GNTST_no_device_space",
    grant_table::GNTST_PERMISSION_DENIED => "GNTST_permission_denied",
    grant_table::GNTST_BAD_PAGE => "GNTST_bad_page",
    grant_table::GNTST_BAD_COPY_ARG => "GNTST_bad_copy_arg",
    grant_table::GNTST_ADDRESS_TOO_BIG => "GNTST_address_too_big",
    grant_table::GNTST_EAGAIN => "GNTST_eagain",
    grant_table::GNTST_NO_SPACE => "GNTST_no_space",
    // hypercall
    hypercall::SET_TRAP_TABLE => "__HYPERVISOR_set_trap_table",
    hypercall::MMU_UPDATE => "__HYPERVISOR_mmu_update",
    hypercall::SET_GDT => "__HYPERVISOR_set_gdt",
    hypercall::STACK_SWITCH => "__HYPERVISOR_stack_switch",
    hypercall::SET_CALLBACKS => "__HYPERVISOR_set_callbacks",
    hypercall::FPU_TASKSWITCH => "__HYPERVISOR_fpu_taskswitch",
    hypercall::SCHED_OP_COMPAT => "__HYPERVISOR_sched_op_compat",
    hypercall::PLATFORM_OP => "__HYPERVISOR_platform_op",
    hypercall::SET_DEBUGREG => "__HYPERVISOR_set_debugreg",
    hypercall::GET_DEBUGREG => "__HYPERVISOR_get_debugreg",
    hypercall::UPDATE_DESCRIPTOR => "__HYPERVISOR_update_descriptor",
    hypercall::MEMORY_OP => "__HYPERVISOR_memory_op",
    hypercall::MULTICALL => "__HYPERVISOR_multicall",
    hypercall::UPDATE_VA_MAPPING => "__HYPERVISOR_update_va_mapping",
    hypercall::SET_TIMER_OP => "__HYPERVISOR_set_timer_op",
    hypercall::EVENT_CHANNEL_OP_COMPAT => "__HYPERVISOR_event_channel_op_compat",
    hypercall::XEN_VERSION => "__HYPERVISOR_xen_version",
    hypercall::CONSOLE_IO => "__HYPERVISOR_console_io",
    hypercall::PHYSDEV_OP_COMPAT => "__HYPERVISOR_physdev_op_compat",
    hypercall::GRANT_TABLE_OP => "__HYPERVISOR_grant_table_op",
    hypercall::VM_ASSIST => "__HYPERVISOR_vm_assist",
    hypercall::UPDATE_VA_MAPPING_OTHERDOMAIN => "__HYPERVISOR_update_va_mapping_otherdomain",
    hypercall::IRET => "__HYPERVISOR_iret",
    hypercall::VCPU_OP => "__HYPERVISOR_vcpu_op",
    hypercall::SET_SEGMENT_BASE => "__HYPERVISOR_set_segment_base",
    hypercall::MMUEXT_OP => "__HYPERVISOR_mmuext_op",
    hypercall::XSM_OP => "__HYPERVISOR_xsm_op",
    hypercall::NMI_OP => "__HYPERVISOR_nmi_op",
    hypercall::SCHED_OP => "__HYPERVISOR_sched_op",
    hypercall::CALLBACK_OP => "__HYPERVISOR_callback_op",
    hypercall::XENOPROF_OP => "__HYPERVISOR_xenoprof_op",
    hypercall::EVENT_CHANNEL_OP => "__HYPERVISOR_event_channel_op",
    hypercall::PHYSDEV_OP => "__HYPERVISOR_physdev_op",
    hypercall::HVM_OP => "__HYPERVISOR_hvm_op",
    hypercall::SYSCTL => "__HYPERVISOR_sysctl",
    hypercall::DOMCTL => "__HYPERVISOR_domctl",
    // mm
    mm::MMU_NORMAL_PT_UPDATE => "MMU_NORMAL_PT_UPDATE",
    mm::MMU_MACHPHYS_UPDATE => "MMU_MACHPHYS_UPDATE",
    mm::MMU_PT_UPDATE_PRESERVE_AD => "MMU_PT_UPDATE_PRESERVE_AD",
    mm::MMU_PT_UPDATE_NO_TRANSLATE => "MMU_PT_UPDATE_NO_TRANSLATE",
    mm::MMUEXT_PIN_L1_TABLE => "MMUEXT_PIN_L1_TABLE",
    mm::MMUEXT_PIN_L2_TABLE => "MMUEXT_PIN_L2_TABLE",
    mm::MMUEXT_PIN_L3_TABLE => "MMUEXT_PIN_L3_TABLE",
    mm::MMUEXT_PIN_L4_TABLE => "MMUEXT_PIN_L4_TABLE",
    mm::MMUEXT_UNPIN_TABLE => "MMUEXT_UNPIN_TABLE",
    mm::MMUEXT_NEW_BASEPTR => "MMUEXT_NEW_BASEPTR",
    mm::MMUEXT_TLB_FLUSH_LOCAL => "MMUEXT_TLB_FLUSH_LOCAL",
    mm::MMUEXT_INVLPG_LOCAL => "MMUEXT_INVLPG_LOCAL",
    mm::MMUEXT_TLB_FLUSH_MULTI => "MMUEXT_TLB_FLUSH_MULTI",
    mm::MMUEXT_INVLPG_MULTI => "MMUEXT_INVLPG_MULTI",
    mm::MMUEXT_TLB_FLUSH_ALL => "MMUEXT_TLB_FLUSH_ALL",
    mm::MMUEXT_INVLPG_ALL => "MMUEXT_INVLPG_ALL",
    mm::MMUEXT_FLUSH_CACHE => "MMUEXT_FLUSH_CACHE",
    mm::MMUEXT_SET_LDT => "MMUEXT_SET_LDT",
    mm::MMUEXT_NEW_USER_BASEPTR => "MMUEXT_NEW_USER_BASEPTR",
    mm::MMUEXT_CLEAR_PAGE => "MMUEXT_CLEAR_PAGE",
    mm::MMUEXT_COPY_PAGE => "MMUEXT_COPY_PAGE",
    mm::MMUEXT_FLUSH_CACHE_GLOBAL => "MMUEXT_FLUSH_CACHE_GLOBAL",
    mm::MMUEXT_MARK_SUPER => "MMUEXT_MARK_SUPER",
    mm::MMUEXT_UNMARK_SUPER => "MMUEXT_UNMARK_SUPER",
    mm::UVMF_NONE => "UVMF_NONE",
    mm::UVMF_TLB_FLUSH => "UVMF_TLB_FLUSH",
    mm::UVMF_INVLPG => "UVMF_INVLPG",
    mm::UVMF_FLUSHTYPE_MASK => "UVMF_FLUSHTYPE_MASK",
    mm::UVMF_MULTI => "UVMF_MULTI",
    mm::UVMF_LOCAL => "UVMF_LOCAL",
    mm::UVMF_ALL => "UVMF_ALL",
    mm::XENMEM_INCREASE_RESERVATION => "XENMEM_increase_reservation",
    mm::XENMEM_DECREASE_RESERVATION => "XENMEM_decrease_reservation",
    mm::XENMEM_MAXIMUM_RAM_PAGE => "XENMEM_maximum_ram_page",
    mm::XENMEM_CURRENT_RESERVATION => "XENMEM_current_reservation",
    mm::XENMEM_MAXIMUM_RESERVATION => "XENMEM_maximum_reservation",
    mm::XENMEM_MACHPHYS_MFN_LIST => "XENMEM_machphys_mfn_list",
    mm::XENMEM_POPULATE_PHYSMAP => "XENMEM_populate_physmap",
    mm::XENMEM_ADD_TO_PHYSMAP => "XENMEM_add_to_physmap",
    mm::XENMEM_MEMORY_MAP => "XENMEM_memory_map",
    mm::XENMEM_MACHINE_MEMORY_MAP => "XENMEM_machine_memory_map",
    mm::XENMEM_EXCHANGE => "XENMEM_exchange",
    mm::XENMEM_MACHPHYS_MAPPING => "XENMEM_machphys_mapping",
    mm::XENMEM_SET_MEMORY_MAP => "XENMEM_set_memory_map",
    mm::XENMEM_MAXIMUM_GPFN => "XENMEM_maximum_gpfn",
    mm::XENMEM_REMOVE_FROM_PHYSMAP => "XENMEM_remove_from_physmap",
    mm::XENMEM_SET_POD_TARGET => "XENMEM_set_pod_target",
    mm::XENMEM_GET_POD_TARGET => "XENMEM_get_pod_target",
    mm::XENMEM_ADD_TO_PHYSMAP_BATCH => "XENMEM_add_to_physmap_batch",
    mm::XENMEM_CLAIM_PAGES => "XENMEM_claim_pages",
    mm::XENMEM_MACHPHYS_COMPAT_MFN_LIST => "XENMEM_machphys_compat_mfn_list",
    mm::XENMEM_GET_VNUMAINFO => "XENMEM_get_vnumainfo",
    mm::XENMEM_RESERVED_DEVICE_MEMORY_MAP => "XENMEM_reserved_device_memory_map",
    mm::XENMEM_ACQUIRE_RESOURCE => "XENMEM_acquire_resource",
    mm::XENMEMF_POPULATE_ON_DEMAND => "XENMEMF_populate_on_demand",
    mm::XENMEMF_EXACT_NODE_REQUEST => "XENMEMF_exact_node_request",
    mm::XENMEMF_VNODE => "XENMEMF_vnode",
    mm::XENMAPSPACE_SHARED_INFO => "XENMAPSPACE_shared_info",
    mm::XENMAPSPACE_GRANT_TABLE => "XENMAPSPACE_grant_table",
    mm::XENMAPSPACE_GMFN => "XENMAPSPACE_gmfn",
    mm::XENMAPSPACE_GMFN_RANGE => "XENMAPSPACE_gmfn_range",
    mm::XENMAPSPACE_GMFN_FOREIGN => "XENMAPSPACE_gmfn_foreign",
    mm::XENMAPSPACE_DEV_MMIO => "XENMAPSPACE_dev_mmio",
    mm::XENMAPIDX_GRANT_TABLE_STATUS => "XENMAPIDX_grant_table_status",
    mm::DOMID_FIRST_RESERVED => "DOMID_FIRST_RESERVED",
    mm::DOMID_SELF => "DOMID_SELF",
    mm::DOMID_IO => "DOMID_IO",
    mm::DOMID_XEN => "DOMID_XEN",
    mm::DOMID_COW => "DOMID_COW",
    mm::DOMID_INVALID => "DOMID_INVALID",
    mm::DOMID_IDLE => "DOMID_IDLE",
    mm::DOMID_MASK => "DOMID_MASK",
    mm::VMASST_CMD_ENABLE => "VMASST_CMD_enable",
    mm::VMASST_CMD_DISABLE => "VMASST_CMD_disable",
    mm::VMASST_TYPE_4GB_SEGMENTS => "VMASST_TYPE_4gb_segments",
    mm::VMASST_TYPE_4GB_SEGMENTS_NOTIFY => "VMASST_TYPE_4gb_segments_notify",
    mm::VMASST_TYPE_WRITABLE_PAGETABLES => "VMASST_TYPE_writable_pagetables",
    mm::VMASST_TYPE_PAE_EXTENDED_CR3 => "VMASST_TYPE_pae_extended_cr3",
    mm::VMASST_TYPE_ARCHITECTURAL_IOPL => "VMASST_TYPE_architectural_iopl",
    mm::VMASST_TYPE_RUNSTATE_UPDATE_FLAG => "VMASST_TYPE_runstate_update_flag",
    mm::VMASST_TYPE_M2P_STRICT => "VMASST_TYPE_m2p_strict",
    physdev::PHYSDEVOP_SET_IOPL => "PHYSDEVOP_set_iopl",
    physdev::PHYSDEVOP_SET_IOBITMAP => "PHYSDEVOP_set_iobitmap",
    // sched
    sched::SCHEDOP_YIELD => "SCHEDOP_yield",
    sched::SCHEDOP_BLOCK => "SCHEDOP_block",
    sched::SCHEDOP_SHUTDOWN => "SCHEDOP_shutdown",
    sched::SCHEDOP_POLL => "SCHEDOP_poll",
    sched::SCHEDOP_REMOTE_SHUTDOWN => "SCHEDOP_remote_shutdown",
    sched::SCHEDOP_SHUTDOWN_CODE => "SCHEDOP_shutdown_code",
    sched::SCHEDOP_WATCHDOG => "SCHEDOP_watchdog",
    sched::SCHEDOP_PIN_OVERRIDE => "SCHEDOP_pin_override",
    sched::SHUTDOWN_POWEROFF => "SHUTDOWN_poweroff",
    sched::SHUTDOWN_REBOOT => "SHUTDOWN_reboot",
    sched::SHUTDOWN_SUSPEND => "SHUTDOWN_suspend",
    sched::SHUTDOWN_CRASH => "SHUTDOWN_crash",
    sched::SHUTDOWN_WATCHDOG => "SHUTDOWN_watchdog",
    sched::SHUTDOWN_SOFT_RESET => "SHUTDOWN_soft_reset",
    sched::SHUTDOWN_MAX => "SHUTDOWN_MAX",
    sched::VCPUOP_INITIALISE => "VCPUOP_initialise",
    sched::VCPUOP_UP => "VCPUOP_up",
    sched::VCPUOP_DOWN => "VCPUOP_down",
    sched::VCPUOP_IS_UP => "VCPUOP_is_up",
    sched::VCPUOP_GET_RUNSTATE_INFO => "VCPUOP_get_runstate_info",
    sched::VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA => "VCPUOP_register_runstate_memory_area",
    sched::VCPUOP_SET_PERIODIC_TIMER => "VCPUOP_set_periodic_timer",
    sched::VCPUOP_STOP_PERIODIC_TIMER => "VCPUOP_stop_periodic_timer",
    sched::VCPUOP_SET_SINGLESHOT_TIMER => "VCPUOP_set_singleshot_timer",
    sched::VCPUOP_STOP_SINGLESHOT_TIMER => "VCPUOP_stop_singleshot_timer",
    sched::VCPUOP_REGISTER_VCPU_INFO => "VCPUOP_register_vcpu_info",
    sched::VCPUOP_SEND_NMI => "VCPUOP_send_nmi",
    sched::VCPUOP_GET_PHYSID => "VCPUOP_get_physid",
    sched::VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA => "VCPUOP_register_vcpu_time_memory_area",
    sched::RUNSTATE_RUNNING => "RUNSTATE_running",
    sched::RUNSTATE_RUNNABLE => "RUNSTATE_runnable",
    sched::RUNSTATE_BLOCKED => "RUNSTATE_blocked",
    sched::RUNSTATE_OFFLINE => "RUNSTATE_offline",
    sched::XEN_RUNSTATE_UPDATE => "XEN_RUNSTATE_UPDATE",
    sched::VCPU_SSHOTTMR_FUTURE => "VCPU_SSHOTTMR_future",
    sched::XENVER_VERSION => "XENVER_version",
    sched::XENVER_EXTRAVERSION => "XENVER_extraversion",
    sched::XENVER_COMPILE_INFO => "XENVER_compile_info",
    sched::XENVER_CAPABILITIES => "XENVER_capabilities",
    sched::XENVER_CHANGESET => "XENVER_changeset",
    sched::XENVER_PLATFORM_PARAMETERS => "XENVER_platform_parameters",
    sched::XENVER_GET_FEATURES => "XENVER_get_features",
    sched::XENVER_PAGESIZE => "XENVER_pagesize",
    sched::XENVER_GUEST_HANDLE => "XENVER_guest_handle",
    sched::XENVER_COMMANDLINE => "XENVER_commandline",
    sched::XENVER_BUILD_ID => "XENVER_build_id",
    sched::XEN_EXTRAVERSION_LEN => "XEN_EXTRAVERSION_LEN",
    sched::XEN_CAPABILITIES_INFO_LEN => "XEN_CAPABILITIES_INFO_LEN",
    sched::XEN_CHANGESET_INFO_LEN => "XEN_CHANGESET_INFO_LEN",
    sched::XENFEAT_WRITABLE_PAGE_TABLES => "XENFEAT_writable_page_tables",
    sched::XENFEAT_WRITABLE_DESCRIPTOR_TABLES => "XENFEAT_writable_descriptor_tables",
    sched::XENFEAT_AUTO_TRANSLATED_PHYSMAP => "XENFEAT_auto_translated_physmap",
    sched::XENFEAT_SUPERVISOR_MODE_KERNEL => "XENFEAT_supervisor_mode_kernel",
    sched::XENFEAT_PAE_PGDIR_ABOVE_4GB => "XENFEAT_pae_pgdir_above_4gb",
    sched::XENFEAT_MMU_PT_UPDATE_PRESERVE_AD => "XENFEAT_mmu_pt_update_preserve_ad",
    sched::XENFEAT_HIGHMEM_ASSIST => "XENFEAT_highmem_assist",
    sched::XENFEAT_GNTTAB_MAP_AVAIL_BITS => "XENFEAT_gnttab_map_avail_bits",
    sched::XENFEAT_HVM_CALLBACK_VECTOR => "XENFEAT_hvm_callback_vector",
    sched::XENFEAT_HVM_SAFE_PVCLOCK => "XENFEAT_hvm_safe_pvclock",
    sched::XENFEAT_HVM_PIRQS => "XENFEAT_hvm_pirqs",
    sched::XENFEAT_DOM0 => "XENFEAT_dom0",
    sched::XENFEAT_MEMORY_OP_VNODE_SUPPORTED => "XENFEAT_memory_op_vnode_supported",
    sched::XENFEAT_ARM_SMCCC_SUPPORTED => "XENFEAT_ARM_SMCCC_supported",
    sched::XENFEAT_LINUX_RSDP_UNRESTRICTED => "XENFEAT_linux_rsdp_unrestricted",
    sched::XENFEAT_NOT_DIRECT_MAPPED => "XENFEAT_not_direct_mapped",
    sched::XENFEAT_DIRECT_MAPPED => "XENFEAT_direct_mapped",
    sched::XENFEAT_NR_SUBMAPS => "XENFEAT_NR_SUBMAPS",
    sched::CONSOLEIO_WRITE => "CONSOLEIO_write",
    sched::CONSOLEIO_READ => "CONSOLEIO_read",
    sched::VIRQ_TIMER => "VIRQ_TIMER",
    sched::VIRQ_DEBUG => "VIRQ_DEBUG",
    sched::VIRQ_CONSOLE => "VIRQ_CONSOLE",
    sched::VIRQ_DOM_EXC => "VIRQ_DOM_EXC",
    sched::VIRQ_TBUF => "VIRQ_TBUF",
    sched::VIRQ_DEBUGGER => "VIRQ_DEBUGGER",
    sched::VIRQ_XENOPROF => "VIRQ_XENOPROF",
    sched::VIRQ_CON_RING => "VIRQ_CON_RING",
    sched::VIRQ_PCPU_STATE => "VIRQ_PCPU_STATE",
    sched::VIRQ_MEM_EVENT => "VIRQ_MEM_EVENT",
    sched::VIRQ_ARGO => "VIRQ_ARGO",
    sched::VIRQ_ENOMEM => "VIRQ_ENOMEM",
    sched::VIRQ_XENPMU => "VIRQ_XENPMU",
    sched::VIRQ_ARCH_0 => "VIRQ_ARCH_0",
    sched::VIRQ_ARCH_1 => "VIRQ_ARCH_1",
    sched::VIRQ_ARCH_2 => "VIRQ_ARCH_2",
    sched::VIRQ_ARCH_3 => "VIRQ_ARCH_3",
    sched::VIRQ_ARCH_4 => "VIRQ_ARCH_4",
    sched::VIRQ_ARCH_5 => "VIRQ_ARCH_5",
    sched::VIRQ_ARCH_6 => "VIRQ_ARCH_6",
    sched::VIRQ_ARCH_7 => "VIRQ_ARCH_7",
    sched::NR_VIRQS => "NR_VIRQS",
    // shared_info
    shared_info::EVTCHN_2L_NR_CHANNELS => "EVTCHN_2L_NR_CHANNELS",
    shared_info::XEN_PVCLOCK_TSC_STABLE_BIT => "XEN_PVCLOCK_TSC_STABLE_BIT",
    shared_info::XEN_PVCLOCK_GUEST_STOPPED => "XEN_PVCLOCK_GUEST_STOPPED",
    // start_info
    start_info::MAX_GUEST_CMDLINE => "MAX_GUEST_CMDLINE",
    start_info::SIF_PRIVILEGED => "SIF_PRIVILEGED",
    start_info::SIF_INITDOMAIN => "SIF_INITDOMAIN",
    start_info::SIF_MULTIBOOT_MOD => "SIF_MULTIBOOT_MOD",
    start_info::SIF_MOD_START_PFN => "SIF_MOD_START_PFN",
    start_info::SIF_VIRT_P2M_4TOOLS => "SIF_VIRT_P2M_4TOOLS",
    start_info::SIF_PM_MASK => "SIF_PM_MASK",
    // blkif
    blkif::BLKIF_OP_READ => "BLKIF_OP_READ",
    blkif::BLKIF_OP_WRITE => "BLKIF_OP_WRITE",
    blkif::BLKIF_OP_WRITE_BARRIER => "BLKIF_OP_WRITE_BARRIER",
    blkif::BLKIF_OP_FLUSH_DISKCACHE => "BLKIF_OP_FLUSH_DISKCACHE",
    blkif::BLKIF_OP_DISCARD => "BLKIF_OP_DISCARD",
    blkif::BLKIF_OP_INDIRECT => "BLKIF_OP_INDIRECT",
    blkif::BLKIF_MAX_SEGMENTS_PER_REQUEST => "BLKIF_MAX_SEGMENTS_PER_REQUEST",
    blkif::BLKIF_RSP_OKAY => "BLKIF_RSP_OKAY",
    blkif::BLKIF_RSP_ERROR => "BLKIF_RSP_ERROR",
    blkif::BLKIF_RSP_EOPNOTSUPP => "BLKIF_RSP_EOPNOTSUPP",
    blkif::VDISK_CDROM => "VDISK_CDROM",
    blkif::VDISK_REMOVABLE => "VDISK_REMOVABLE",
    blkif::VDISK_READONLY => "VDISK_READONLY",
    blkif::BLKIF_SECTOR_SIZE => "512 /* blkif.h: sector_number and first/last_sect count 512-byte units */",
    blkif::BLKIF_SECTORS_PER_PAGE => "(4096 / 512) /* blkif.h: a page is 8 sectors, last_sect <= 7 */",
    blkif::BLKIF_RING_SIZE => "__CONST_RING_SIZE(blkif, 4096)",
    blkif::XenbusState::Unknown => "XenbusStateUnknown",
    blkif::XenbusState::Initialising => "XenbusStateInitialising",
    blkif::XenbusState::InitWait => "XenbusStateInitWait",
    blkif::XenbusState::Initialised => "XenbusStateInitialised",
    blkif::XenbusState::Connected => "XenbusStateConnected",
    blkif::XenbusState::Closing => "XenbusStateClosing",
    blkif::XenbusState::Closed => "XenbusStateClosed",
    blkif::XenbusState::Reconfiguring => "XenbusStateReconfiguring",
    blkif::XenbusState::Reconfigured => "XenbusStateReconfigured",
    // xenstore
    xenstore::XENSTORE_RING_SIZE => "XENSTORE_RING_SIZE",
    xenstore::XENSTORE_PAYLOAD_MAX => "XENSTORE_PAYLOAD_MAX",
    xenstore::XENSTORE_ABS_PATH_MAX => "XENSTORE_ABS_PATH_MAX",
    xenstore::XENSTORE_REL_PATH_MAX => "XENSTORE_REL_PATH_MAX",
    xenstore::XENSTORE_SERVER_FEATURE_RECONNECTION => "XENSTORE_SERVER_FEATURE_RECONNECTION",
    xenstore::XENSTORE_SERVER_FEATURE_ERROR => "XENSTORE_SERVER_FEATURE_ERROR",
    xenstore::XENSTORE_CONNECTED => "XENSTORE_CONNECTED",
    xenstore::XENSTORE_RECONNECT => "XENSTORE_RECONNECT",
    xenstore::XENSTORE_ERROR_NONE => "XENSTORE_ERROR_NONE",
    xenstore::XENSTORE_ERROR_COMM => "XENSTORE_ERROR_COMM",
    xenstore::XENSTORE_ERROR_RINGIDX => "XENSTORE_ERROR_RINGIDX",
    xenstore::XENSTORE_ERROR_PROTO => "XENSTORE_ERROR_PROTO",
    xenstore::XS_CONTROL => "XS_CONTROL",
    xenstore::XS_DIRECTORY => "XS_DIRECTORY",
    xenstore::XS_READ => "XS_READ",
    xenstore::XS_GET_PERMS => "XS_GET_PERMS",
    xenstore::XS_WATCH => "XS_WATCH",
    xenstore::XS_UNWATCH => "XS_UNWATCH",
    xenstore::XS_TRANSACTION_START => "XS_TRANSACTION_START",
    xenstore::XS_TRANSACTION_END => "XS_TRANSACTION_END",
    xenstore::XS_INTRODUCE => "XS_INTRODUCE",
    xenstore::XS_RELEASE => "XS_RELEASE",
    xenstore::XS_GET_DOMAIN_PATH => "XS_GET_DOMAIN_PATH",
    xenstore::XS_WRITE => "XS_WRITE",
    xenstore::XS_MKDIR => "XS_MKDIR",
    xenstore::XS_RM => "XS_RM",
    xenstore::XS_SET_PERMS => "XS_SET_PERMS",
    xenstore::XS_WATCH_EVENT => "XS_WATCH_EVENT",
    xenstore::XS_ERROR => "XS_ERROR",
    xenstore::XS_IS_DOMAIN_INTRODUCED => "XS_IS_DOMAIN_INTRODUCED",
    xenstore::XS_RESUME => "XS_RESUME",
    xenstore::XS_SET_TARGET => "XS_SET_TARGET",
    xenstore::XS_RESET_WATCHES => "XS_RESET_WATCHES",
    xenstore::XS_DIRECTORY_PART => "XS_DIRECTORY_PART",
    xenstore::XS_TYPE_COUNT => "XS_TYPE_COUNT",
    xenstore::XS_INVALID => "XS_INVALID",
    xenstore::XS_WATCH_PATH => "XS_WATCH_PATH",
    xenstore::XS_WATCH_TOKEN => "XS_WATCH_TOKEN",
    xenstore::XSD_ERRORS.len() => "sizeof(xsd_errors) / sizeof(xsd_errors[0])",
    // domctl
    domctl::XEN_DOMCTL_INTERFACE_VERSION => "XEN_DOMCTL_INTERFACE_VERSION",
    domctl::XEN_SCHEDULER_CREDIT => "XEN_SCHEDULER_CREDIT",
    domctl::XEN_SCHEDULER_CREDIT2 => "XEN_SCHEDULER_CREDIT2",
    domctl::XEN_DOMCTL_SCHEDOP_PUTINFO => "XEN_DOMCTL_SCHEDOP_putinfo",
    domctl::XEN_DOMCTL_SCHEDOP_GETINFO => "XEN_DOMCTL_SCHEDOP_getinfo",
    domctl::XEN_DOMCTL_CREATEDOMAIN => "XEN_DOMCTL_createdomain",
    domctl::XEN_DOMCTL_DESTROYDOMAIN => "XEN_DOMCTL_destroydomain",
    domctl::XEN_DOMCTL_PAUSEDOMAIN => "XEN_DOMCTL_pausedomain",
    domctl::XEN_DOMCTL_UNPAUSEDOMAIN => "XEN_DOMCTL_unpausedomain",
    domctl::XEN_DOMCTL_GETDOMAININFO => "XEN_DOMCTL_getdomaininfo",
    domctl::XEN_DOMCTL_SETVCPUAFFINITY => "XEN_DOMCTL_setvcpuaffinity",
    domctl::XEN_DOMCTL_SHADOW_OP => "XEN_DOMCTL_shadow_op",
    domctl::XEN_DOMCTL_MAX_MEM => "XEN_DOMCTL_max_mem",
    domctl::XEN_DOMCTL_SETVCPUCONTEXT => "XEN_DOMCTL_setvcpucontext",
    domctl::XEN_DOMCTL_GETVCPUCONTEXT => "XEN_DOMCTL_getvcpucontext",
    domctl::XEN_DOMCTL_GETVCPUINFO => "XEN_DOMCTL_getvcpuinfo",
    domctl::XEN_DOMCTL_MAX_VCPUS => "XEN_DOMCTL_max_vcpus",
    domctl::XEN_DOMCTL_SCHEDULER_OP => "XEN_DOMCTL_scheduler_op",
    domctl::XEN_DOMCTL_SETDOMAINHANDLE => "XEN_DOMCTL_setdomainhandle",
    domctl::XEN_DOMCTL_SETDEBUGGING => "XEN_DOMCTL_setdebugging",
    domctl::XEN_DOMCTL_IRQ_PERMISSION => "XEN_DOMCTL_irq_permission",
    domctl::XEN_DOMCTL_IOMEM_PERMISSION => "XEN_DOMCTL_iomem_permission",
    domctl::XEN_DOMCTL_IOPORT_PERMISSION => "XEN_DOMCTL_ioport_permission",
    domctl::XEN_DOMCTL_HYPERCALL_INIT => "XEN_DOMCTL_hypercall_init",
    domctl::XEN_DOMCTL_SETTIMEOFFSET => "XEN_DOMCTL_settimeoffset",
    domctl::XEN_DOMCTL_GETVCPUAFFINITY => "XEN_DOMCTL_getvcpuaffinity",
    domctl::XEN_DOMCTL_REAL_MODE_AREA => "XEN_DOMCTL_real_mode_area",
    domctl::XEN_DOMCTL_RESUMEDOMAIN => "XEN_DOMCTL_resumedomain",
    domctl::XEN_DOMCTL_SENDTRIGGER => "XEN_DOMCTL_sendtrigger",
    domctl::XEN_DOMCTL_SUBSCRIBE => "XEN_DOMCTL_subscribe",
    domctl::XEN_DOMCTL_GETHVMCONTEXT => "XEN_DOMCTL_gethvmcontext",
    domctl::XEN_DOMCTL_SETHVMCONTEXT => "XEN_DOMCTL_sethvmcontext",
    domctl::XEN_DOMCTL_SET_ADDRESS_SIZE => "XEN_DOMCTL_set_address_size",
    domctl::XEN_DOMCTL_GET_ADDRESS_SIZE => "XEN_DOMCTL_get_address_size",
    domctl::XEN_DOMCTL_ASSIGN_DEVICE => "XEN_DOMCTL_assign_device",
    domctl::XEN_DOMCTL_BIND_PT_IRQ => "XEN_DOMCTL_bind_pt_irq",
    domctl::XEN_DOMCTL_MEMORY_MAPPING => "XEN_DOMCTL_memory_mapping",
    domctl::XEN_DOMCTL_IOPORT_MAPPING => "XEN_DOMCTL_ioport_mapping",
    domctl::XEN_DOMCTL_SET_EXT_VCPUCONTEXT => "XEN_DOMCTL_set_ext_vcpucontext",
    domctl::XEN_DOMCTL_GET_EXT_VCPUCONTEXT => "XEN_DOMCTL_get_ext_vcpucontext",
    domctl::XEN_DOMCTL_SET_OPT_FEATURE => "XEN_DOMCTL_set_opt_feature",
    domctl::XEN_DOMCTL_TEST_ASSIGN_DEVICE => "XEN_DOMCTL_test_assign_device",
    domctl::XEN_DOMCTL_SET_TARGET => "XEN_DOMCTL_set_target",
    domctl::XEN_DOMCTL_DEASSIGN_DEVICE => "XEN_DOMCTL_deassign_device",
    domctl::XEN_DOMCTL_UNBIND_PT_IRQ => "XEN_DOMCTL_unbind_pt_irq",
    domctl::XEN_DOMCTL_GET_DEVICE_GROUP => "XEN_DOMCTL_get_device_group",
    domctl::XEN_DOMCTL_DEBUG_OP => "XEN_DOMCTL_debug_op",
    domctl::XEN_DOMCTL_GETHVMCONTEXT_PARTIAL => "XEN_DOMCTL_gethvmcontext_partial",
    domctl::XEN_DOMCTL_VM_EVENT_OP => "XEN_DOMCTL_vm_event_op",
    domctl::XEN_DOMCTL_MEM_SHARING_OP => "XEN_DOMCTL_mem_sharing_op",
    domctl::XEN_DOMCTL_GETTSCINFO => "XEN_DOMCTL_gettscinfo",
    domctl::XEN_DOMCTL_SETTSCINFO => "XEN_DOMCTL_settscinfo",
    domctl::XEN_DOMCTL_GETPAGEFRAMEINFO3 => "XEN_DOMCTL_getpageframeinfo3",
    domctl::XEN_DOMCTL_SETVCPUEXTSTATE => "XEN_DOMCTL_setvcpuextstate",
    domctl::XEN_DOMCTL_GETVCPUEXTSTATE => "XEN_DOMCTL_getvcpuextstate",
    domctl::XEN_DOMCTL_SET_ACCESS_REQUIRED => "XEN_DOMCTL_set_access_required",
    domctl::XEN_DOMCTL_AUDIT_P2M => "XEN_DOMCTL_audit_p2m",
    domctl::XEN_DOMCTL_SET_VIRQ_HANDLER => "XEN_DOMCTL_set_virq_handler",
    domctl::XEN_DOMCTL_SET_BROKEN_PAGE_P2M => "XEN_DOMCTL_set_broken_page_p2m",
    domctl::XEN_DOMCTL_SETNODEAFFINITY => "XEN_DOMCTL_setnodeaffinity",
    domctl::XEN_DOMCTL_GETNODEAFFINITY => "XEN_DOMCTL_getnodeaffinity",
    domctl::XEN_DOMCTL_CACHEFLUSH => "XEN_DOMCTL_cacheflush",
    domctl::XEN_DOMCTL_GET_VCPU_MSRS => "XEN_DOMCTL_get_vcpu_msrs",
    domctl::XEN_DOMCTL_SET_VCPU_MSRS => "XEN_DOMCTL_set_vcpu_msrs",
    domctl::XEN_DOMCTL_SETVNUMAINFO => "XEN_DOMCTL_setvnumainfo",
    domctl::XEN_DOMCTL_PSR_CMT_OP => "XEN_DOMCTL_psr_cmt_op",
    domctl::XEN_DOMCTL_MONITOR_OP => "XEN_DOMCTL_monitor_op",
    domctl::XEN_DOMCTL_PSR_ALLOC => "XEN_DOMCTL_psr_alloc",
    domctl::XEN_DOMCTL_SOFT_RESET => "XEN_DOMCTL_soft_reset",
    domctl::XEN_DOMCTL_VUART_OP => "XEN_DOMCTL_vuart_op",
    domctl::XEN_DOMCTL_GET_CPU_POLICY => "XEN_DOMCTL_get_cpu_policy",
    domctl::XEN_DOMCTL_SET_CPU_POLICY => "XEN_DOMCTL_set_cpu_policy",
    domctl::XEN_DOMCTL_VMTRACE_OP => "XEN_DOMCTL_vmtrace_op",
    domctl::XEN_DOMCTL_GET_PAGING_MEMPOOL_SIZE => "XEN_DOMCTL_get_paging_mempool_size",
    domctl::XEN_DOMCTL_SET_PAGING_MEMPOOL_SIZE => "XEN_DOMCTL_set_paging_mempool_size",
    domctl::XEN_DOMCTL_GDBSX_GUESTMEMIO => "XEN_DOMCTL_gdbsx_guestmemio",
    domctl::XEN_DOMCTL_GDBSX_PAUSEVCPU => "XEN_DOMCTL_gdbsx_pausevcpu",
    domctl::XEN_DOMCTL_GDBSX_UNPAUSEVCPU => "XEN_DOMCTL_gdbsx_unpausevcpu",
    domctl::XEN_DOMCTL_GDBSX_DOMSTATUS => "XEN_DOMCTL_gdbsx_domstatus",
    domctl::XEN_DOMCTL_CDF_HVM => "XEN_DOMCTL_CDF_hvm",
    domctl::XEN_DOMCTL_CDF_HAP => "XEN_DOMCTL_CDF_hap",
    domctl::XEN_DOMCTL_CDF_S3_INTEGRITY => "XEN_DOMCTL_CDF_s3_integrity",
    domctl::XEN_DOMCTL_CDF_OOS_OFF => "XEN_DOMCTL_CDF_oos_off",
    domctl::XEN_DOMCTL_CDF_XS_DOMAIN => "XEN_DOMCTL_CDF_xs_domain",
    domctl::XEN_DOMCTL_CDF_IOMMU => "XEN_DOMCTL_CDF_iommu",
    domctl::XEN_DOMCTL_CDF_NESTED_VIRT => "XEN_DOMCTL_CDF_nested_virt",
    domctl::XEN_DOMCTL_CDF_VPMU => "XEN_DOMCTL_CDF_vpmu",
    domctl::XEN_DOMCTL_CDF_MAX => "XEN_DOMCTL_CDF_MAX",
    domctl::XEN_DOMCTL_IOMMU_NO_SHAREPT => "XEN_DOMCTL_IOMMU_no_sharept",
    domctl::XEN_DOMCTL_IOMMU_MAX => "XEN_DOMCTL_IOMMU_MAX",
    domctl::XEN_DOMCTL_GRANT_VERSION_MASK => "XEN_DOMCTL_GRANT_version_mask",
    domctl::XEN_X86_EMU_LAPIC => "XEN_X86_EMU_LAPIC",
    domctl::XEN_X86_EMU_HPET => "XEN_X86_EMU_HPET",
    domctl::XEN_X86_EMU_PM => "XEN_X86_EMU_PM",
    domctl::XEN_X86_EMU_RTC => "XEN_X86_EMU_RTC",
    domctl::XEN_X86_EMU_IOAPIC => "XEN_X86_EMU_IOAPIC",
    domctl::XEN_X86_EMU_PIC => "XEN_X86_EMU_PIC",
    domctl::XEN_X86_EMU_VGA => "XEN_X86_EMU_VGA",
    domctl::XEN_X86_EMU_IOMMU => "XEN_X86_EMU_IOMMU",
    domctl::XEN_X86_EMU_PIT => "XEN_X86_EMU_PIT",
    domctl::XEN_X86_EMU_USE_PIRQ => "XEN_X86_EMU_USE_PIRQ",
    domctl::XEN_X86_EMU_VPCI => "XEN_X86_EMU_VPCI",
    domctl::XEN_X86_EMU_ALL => "XEN_X86_EMU_ALL",
    domctl::XEN_X86_MSR_RELAXED => "XEN_X86_MSR_RELAXED",
    domctl::XEN_X86_MISC_FLAGS_MAX => "XEN_X86_MISC_FLAGS_MAX",
    domctl::XEN_DOMINF_DYING => "XEN_DOMINF_dying",
    domctl::XEN_DOMINF_HVM_GUEST => "XEN_DOMINF_hvm_guest",
    domctl::XEN_DOMINF_SHUTDOWN => "XEN_DOMINF_shutdown",
    domctl::XEN_DOMINF_PAUSED => "XEN_DOMINF_paused",
    domctl::XEN_DOMINF_BLOCKED => "XEN_DOMINF_blocked",
    domctl::XEN_DOMINF_RUNNING => "XEN_DOMINF_running",
    domctl::XEN_DOMINF_DEBUGGED => "XEN_DOMINF_debugged",
    domctl::XEN_DOMINF_XS_DOMAIN => "XEN_DOMINF_xs_domain",
    domctl::XEN_DOMINF_HAP => "XEN_DOMINF_hap",
    domctl::XEN_DOMINF_SHUTDOWNMASK => "XEN_DOMINF_shutdownmask",
    domctl::XEN_DOMINF_SHUTDOWNSHIFT => "XEN_DOMINF_shutdownshift",
    domctl::XEN_INVALID_MAX_VCPU_ID => "XEN_INVALID_MAX_VCPU_ID",
    domctl::xen_domctl_grant_version(0x12) => "XEN_DOMCTL_GRANT_version(0x12)",
    // sysctl
    sysctl::XEN_SYSCTL_INTERFACE_VERSION => "XEN_SYSCTL_INTERFACE_VERSION",
    sysctl::XEN_SYSCTL_READCONSOLE => "XEN_SYSCTL_readconsole",
    sysctl::XEN_SYSCTL_TBUF_OP => "XEN_SYSCTL_tbuf_op",
    sysctl::XEN_SYSCTL_PHYSINFO => "XEN_SYSCTL_physinfo",
    sysctl::XEN_SYSCTL_SCHED_ID => "XEN_SYSCTL_sched_id",
    sysctl::XEN_SYSCTL_PERFC_OP => "XEN_SYSCTL_perfc_op",
    sysctl::XEN_SYSCTL_GETDOMAININFOLIST => "XEN_SYSCTL_getdomaininfolist",
    sysctl::XEN_SYSCTL_DEBUG_KEYS => "XEN_SYSCTL_debug_keys",
    sysctl::XEN_SYSCTL_GETCPUINFO => "XEN_SYSCTL_getcpuinfo",
    sysctl::XEN_SYSCTL_AVAILHEAP => "XEN_SYSCTL_availheap",
    sysctl::XEN_SYSCTL_GET_PMSTAT => "XEN_SYSCTL_get_pmstat",
    sysctl::XEN_SYSCTL_CPU_HOTPLUG => "XEN_SYSCTL_cpu_hotplug",
    sysctl::XEN_SYSCTL_PM_OP => "XEN_SYSCTL_pm_op",
    sysctl::XEN_SYSCTL_PAGE_OFFLINE_OP => "XEN_SYSCTL_page_offline_op",
    sysctl::XEN_SYSCTL_LOCKPROF_OP => "XEN_SYSCTL_lockprof_op",
    sysctl::XEN_SYSCTL_CPUTOPOINFO => "XEN_SYSCTL_cputopoinfo",
    sysctl::XEN_SYSCTL_NUMAINFO => "XEN_SYSCTL_numainfo",
    sysctl::XEN_SYSCTL_CPUPOOL_OP => "XEN_SYSCTL_cpupool_op",
    sysctl::XEN_SYSCTL_SCHEDULER_OP => "XEN_SYSCTL_scheduler_op",
    sysctl::XEN_SYSCTL_COVERAGE_OP => "XEN_SYSCTL_coverage_op",
    sysctl::XEN_SYSCTL_PSR_CMT_OP => "XEN_SYSCTL_psr_cmt_op",
    sysctl::XEN_SYSCTL_PCITOPOINFO => "XEN_SYSCTL_pcitopoinfo",
    sysctl::XEN_SYSCTL_PSR_ALLOC => "XEN_SYSCTL_psr_alloc",
    sysctl::XEN_SYSCTL_GET_CPU_LEVELLING_CAPS => "XEN_SYSCTL_get_cpu_levelling_caps",
    sysctl::XEN_SYSCTL_GET_CPU_FEATURESET => "XEN_SYSCTL_get_cpu_featureset",
    sysctl::XEN_SYSCTL_LIVEPATCH_OP => "XEN_SYSCTL_livepatch_op",
    sysctl::XEN_SYSCTL_GET_CPU_POLICY => "XEN_SYSCTL_get_cpu_policy",
    sysctl::XEN_SYSCTL_PHYSCAP_HVM => "XEN_SYSCTL_PHYSCAP_hvm",
    sysctl::XEN_SYSCTL_PHYSCAP_PV => "XEN_SYSCTL_PHYSCAP_pv",
    sysctl::XEN_SYSCTL_PHYSCAP_DIRECTIO => "XEN_SYSCTL_PHYSCAP_directio",
    sysctl::XEN_SYSCTL_PHYSCAP_HAP => "XEN_SYSCTL_PHYSCAP_hap",
    sysctl::XEN_SYSCTL_PHYSCAP_SHADOW => "XEN_SYSCTL_PHYSCAP_shadow",
    sysctl::XEN_SYSCTL_PHYSCAP_IOMMU_HAP_PT_SHARE => "XEN_SYSCTL_PHYSCAP_iommu_hap_pt_share",
    sysctl::XEN_SYSCTL_PHYSCAP_VMTRACE => "XEN_SYSCTL_PHYSCAP_vmtrace",
    sysctl::XEN_SYSCTL_PHYSCAP_VPMU => "XEN_SYSCTL_PHYSCAP_vpmu",
    sysctl::XEN_SYSCTL_PHYSCAP_GNTTAB_V1 => "XEN_SYSCTL_PHYSCAP_gnttab_v1",
    sysctl::XEN_SYSCTL_PHYSCAP_GNTTAB_V2 => "XEN_SYSCTL_PHYSCAP_gnttab_v2",
    sysctl::XEN_SYSCTL_PHYSCAP_MAX => "XEN_SYSCTL_PHYSCAP_MAX",
}

fn tables() -> Tables {
    Tables { layouts: layouts(), consts: consts(), strs: strs(), views: views() }
}

// ---------------------------------------------------------------------------
// The C side
// ---------------------------------------------------------------------------

/// Entry sizes of the dummy rings `ring_size` is checked against.
const RING_ENTRY_SIZES: &[usize] = &[1, 4, 8, 12, 64, 112, 1000, 4032];

fn c_program(t: &Tables) -> String {
    let mut c = String::new();
    c.push_str(
        "#include <stddef.h>\n\
         #include <stdint.h>\n\
         #include <stdio.h>\n\
         #include <xen/xen.h>\n\
         #include <xen/callback.h>\n\
         #include <xen/domctl.h>\n\
         #include <xen/elfnote.h>\n\
         #include <xen/errno.h>\n\
         #include <xen/event_channel.h>\n\
         #include <xen/features.h>\n\
         #include <xen/grant_table.h>\n\
         #include <xen/memory.h>\n\
         #include <xen/physdev.h>\n\
         #include <xen/sched.h>\n\
         #include <xen/sysctl.h>\n\
         #include <xen/vcpu.h>\n\
         #include <xen/version.h>\n\
         #include <xen/io/console.h>\n\
         #include <xen/io/ring.h>\n\
         #include <errno.h> /* xs_wire.h defines xsd_errors only after it */\n\
         #include <xen/io/xs_wire.h>\n\
         #include <xen/io/blkif.h>\n\
         #include <xen/io/protocols.h>\n\
         #include <xen/io/xenbus.h>\n\
         \n\
         DEFINE_RING_TYPES(dummy, uint32_t, uint32_t);\n",
    );
    for n in RING_ENTRY_SIZES {
        writeln!(c, "struct e{n} {{ char b[{n}]; }};").unwrap();
        writeln!(c, "DEFINE_RING_TYPES(r{n}, struct e{n}, struct e{n});").unwrap();
    }
    // Every errno, including the Xen-internal ones that only __XEN__ sees.
    c.push_str(
        "\nstatic void print_errnos(void)\n{\n\
         #define __XEN__\n\
         #define XEN_ERRNO(name, value) printf(\"errno %s %d\\n\", #name, (int)(value));\n\
         #include <xen/errno.h>\n\
         #undef __XEN__\n\
         }\n\nint main(void)\n{\n",
    );
    for (i, l) in t.layouts.iter().enumerate() {
        let size = l.c_size.map_or_else(|| format!("sizeof({})", l.c), str::to_owned);
        writeln!(c, "    printf(\"layout {i} %zu %zu\\n\", (size_t)({size}), (size_t)_Alignof({}));", l.c).unwrap();
        for (j, f) in l.fields.iter().enumerate() {
            if let Some(cf) = f.c {
                writeln!(
                    c,
                    "    printf(\"field {i} {j} %zu %zu\\n\", offsetof({ty}, {cf}), sizeof((({ty} *)0)->{cf}));",
                    ty = l.c
                )
                .unwrap();
            }
        }
    }
    for (i, k) in t.consts.iter().enumerate() {
        writeln!(c, "    printf(\"const {i} %lld\\n\", (long long)({}));", k.c).unwrap();
    }
    for (i, s) in t.strs.iter().enumerate() {
        writeln!(c, "    printf(\"str {i} [%s]\\n\", {});", s.c).unwrap();
    }
    for (i, v) in t.views.iter().enumerate() {
        writeln!(
            c,
            "    printf(\"view {i} %zu %zu %zu\\n\", offsetof({s}, {m}) - offsetof({s}, {u}), \
             sizeof((({s} *)0)->{m}), sizeof((({s} *)0)->{u}));",
            s = v.c_struct,
            m = v.c_member,
            u = v.c_union
        )
        .unwrap();
    }
    c.push_str("    print_errnos();\n    return 0;\n}\n");
    c
}

/// What the C program printed.
#[derive(Debug, Default)]
struct Oracle {
    layouts: HashMap<usize, (usize, usize)>,
    fields: HashMap<(usize, usize), (usize, usize)>,
    consts: HashMap<usize, i64>,
    strs: HashMap<usize, String>,
    views: HashMap<usize, (usize, usize, usize)>,
    errnos: Vec<(String, i32)>,
}

fn parse(output: &str) -> Oracle {
    let mut o = Oracle::default();
    for line in output.lines() {
        let w: Vec<&str> = line.split(' ').collect();
        let n = |k: usize| -> usize { w[k].parse().unwrap() };
        match w[0] {
            "layout" => {
                o.layouts.insert(n(1), (n(2), n(3)));
            }
            "field" => {
                o.fields.insert((n(1), n(2)), (n(3), n(4)));
            }
            "const" => {
                o.consts.insert(n(1), w[2].parse().unwrap());
            }
            "str" => {
                let s = &line[line.find('[').unwrap() + 1..line.rfind(']').unwrap()];
                o.strs.insert(n(1), s.to_owned());
            }
            "view" => {
                o.views.insert(n(1), (n(2), n(3), n(4)));
            }
            "errno" => o.errnos.push((w[1].to_owned(), w[2].parse().unwrap())),
            _ => panic!("unexpected oracle line: {line}"),
        }
    }
    o
}

fn headers_missing_message() -> String {
    format!(
        "libxen-dev headers not found at {XEN_INCLUDE}: run `cargo xtask test` \
         (it installs them) or apt-get install libxen-dev"
    )
}

/// Compiles and runs the C program once per test process.
fn oracle() -> &'static Oracle {
    static ORACLE: OnceLock<Result<Oracle, String>> = OnceLock::new();
    let result = ORACLE.get_or_init(|| {
        if !Path::new(XEN_INCLUDE).join("xen.h").exists() {
            return Err(headers_missing_message());
        }
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("xen_layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let src = dir.join("xen_layout.c");
        let exe = dir.join("xen_layout");
        std::fs::write(&src, c_program(&tables())).map_err(|e| format!("writing {}: {e}", src.display()))?;
        let cc = Command::new("cc")
            // __XEN_TOOLS__ selects the latest interface (0x00040e00, as the
            // hypervisor implements it) and exposes the toolstack-only numbers.
            .args(["-std=gnu11", "-Wall", "-Wno-unused", "-D__XEN_TOOLS__", "-o"])
            .arg(&exe)
            .arg(&src)
            .output()
            .map_err(|e| format!("running cc: {e}"))?;
        if !cc.status.success() {
            return Err(format!("cc failed on {}:\n{}", src.display(), String::from_utf8_lossy(&cc.stderr)));
        }
        let run = Command::new(&exe).output().map_err(|e| format!("running {}: {e}", exe.display()))?;
        if !run.status.success() {
            return Err(format!("{} failed: {:?}", exe.display(), run.status));
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(parse(&String::from_utf8(run.stdout).unwrap()))
    });
    match result {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    }
}

// ---------------------------------------------------------------------------
// The comparison
// ---------------------------------------------------------------------------

/// Every disagreement between the tables and the oracle, one line each.
fn compare(t: &Tables, o: &Oracle) -> Vec<String> {
    let mut bad = Vec::new();
    for (i, l) in t.layouts.iter().enumerate() {
        let Some(&(size, align)) = o.layouts.get(&i) else {
            bad.push(format!("{}: no C output for {}", l.rust, l.c));
            continue;
        };
        if (l.size, l.align) != (size, align) {
            bad.push(format!("{} vs {}: size/align Rust {}/{} C {size}/{align}", l.rust, l.c, l.size, l.align));
        }
        for (j, f) in l.fields.iter().enumerate() {
            let Some(cf) = f.c else { continue };
            match o.fields.get(&(i, j)) {
                Some(&(off, sz)) if (off, sz) == (f.offset, f.size) => {}
                Some(&(off, sz)) => bad.push(format!(
                    "{}.{} vs {}.{cf}: offset/size Rust {}/{} C {off}/{sz}",
                    l.rust, f.rust, l.c, f.offset, f.size
                )),
                None => bad.push(format!("{}.{}: no C output", l.rust, f.rust)),
            }
        }
    }
    for (i, k) in t.consts.iter().enumerate() {
        match o.consts.get(&i) {
            Some(&v) if v == k.value => {}
            Some(&v) => bad.push(format!("{} = {} ({:#x}) but C {} = {v} ({v:#x})", k.rust, k.value, k.value, k.c)),
            None => bad.push(format!("{}: no C output", k.rust)),
        }
    }
    for (i, s) in t.strs.iter().enumerate() {
        match o.strs.get(&i) {
            Some(v) if *v == s.value => {}
            other => bad.push(format!("{} = {:?} but C {} = {other:?}", s.rust, s.value, s.c)),
        }
    }
    for (i, v) in t.views.iter().enumerate() {
        let Some(&(rel, size, union_size)) = o.views.get(&i) else {
            bad.push(format!("{}: no C output", v.rust));
            continue;
        };
        if union_size != v.storage_len || rel + size > v.storage_len {
            bad.push(format!(
                "{} vs {}.{}: C union is {union_size} bytes, member at {rel}+{size}; Rust storage {}",
                v.rust, v.c_struct, v.c_member, v.storage_len
            ));
            continue;
        }
        // A distinct byte pattern in the member's C bytes.
        let sentinel: Vec<u8> = (0..size as u8).map(|b| 0xa1u8.wrapping_add(b.wrapping_mul(0x11))).collect();
        let mut value_bytes = [0u8; 8];
        value_bytes[..size].copy_from_slice(&sentinel);
        let value = u64::from_le_bytes(value_bytes);
        let mut img = vec![0u8; v.storage_len];
        img[rel..rel + size].copy_from_slice(&sentinel);
        let got = (v.get)(&img);
        if got != value {
            bad.push(format!("{} reads {got:#x} where C's {}.{} holds {value:#x}", v.rust, v.c_struct, v.c_member));
        }
        let written = (v.set)(value);
        if written != img {
            bad.push(format!(
                "{}'s setter writes {written:02x?}, C's {}.{} is {img:02x?}",
                v.rust, v.c_struct, v.c_member
            ));
        }
    }
    bad.extend(compare_errnos(&o.errnos));
    bad
}

/// The header's errno list against [`Errno`] and the alias constants.
fn compare_errnos(header: &[(String, i32)]) -> Vec<String> {
    let mut bad = Vec::new();
    if header.is_empty() {
        bad.push("no errnos printed by the C program".to_owned());
    }
    for (name, value) in header {
        let variant = Errno::ALL.iter().find(|e| e.name() == name);
        let alias = ERRNO_ALIASES.iter().find(|(n, _)| n == name);
        match (variant, alias) {
            (Some(e), _) if *e as i32 == *value => {}
            (Some(e), _) => bad.push(format!("Errno::{name} = {} but C = {value}", *e as i32)),
            (None, Some((_, v))) if v == value => {}
            (None, Some((_, v))) => bad.push(format!("errno::{name} = {v} but C = {value}")),
            (None, None) => bad.push(format!("errno {name} = {value} is missing from Errno")),
        }
    }
    for e in Errno::ALL {
        if !header.iter().any(|(n, _)| n == e.name()) {
            bad.push(format!("Errno::{} is not in xen/errno.h", e.name()));
        }
    }
    bad
}

fn normalize(rust: &str) -> String {
    rust.replace(' ', "")
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn abi_matches_xen_headers() {
    let t = tables();
    let o = oracle();
    let bad = compare(&t, o);
    let fields: usize = t.layouts.iter().map(|l| l.fields.iter().filter(|f| f.c.is_some()).count()).sum();
    println!(
        "checked {} structs, {fields} fields, {} constants, {} strings, {} union views, {} errnos \
         against {XEN_INCLUDE}",
        t.layouts.len(),
        t.consts.len(),
        t.strs.len(),
        t.views.len(),
        o.errnos.len()
    );
    assert!(bad.is_empty(), "{} mismatches with Xen's headers:\n  {}", bad.len(), bad.join("\n  "));
}

/// Every Rust struct is tiled by its fields: no implicit padding, so nothing
/// uninitialised is ever copied to a guest.
#[test]
fn structs_have_no_implicit_padding() {
    let mut bad = Vec::new();
    for l in tables().layouts {
        let mut fields = l.fields.clone();
        fields.sort_by_key(|f| f.offset);
        let mut end = 0;
        for f in &fields {
            if f.offset != end {
                bad.push(format!("{}: gap or overlap before {} at {}", l.rust, f.rust, f.offset));
            }
            end = f.offset + f.size;
        }
        if end != l.size {
            bad.push(format!("{}: fields end at {end}, size {}", l.rust, l.size));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn hypercall_names_match_headers() {
    let mut named = BTreeSet::new();
    for k in consts() {
        if let Some(name) = k.c.strip_prefix("__HYPERVISOR_") {
            assert_eq!(hypercall::name(k.value as u64), Some(name), "{}", k.rust);
            named.insert(k.value as u64);
        }
    }
    for nr in 0..hypercall::NR_HYPERCALLS {
        assert_eq!(hypercall::name(nr).is_some(), named.contains(&nr), "hypercall {nr}: name() and the table disagree");
    }
}

/// Every `pub const` and `pub struct` in `abi/src` is in a table above, or
/// listed with the reason it has no C counterpart.
#[test]
fn every_public_item_is_in_a_table() {
    let covered: BTreeSet<String> = consts()
        .iter()
        .map(|k| normalize(k.rust))
        .chain(strs().iter().map(|s| normalize(s.rust)))
        .chain(NOT_IN_HEADERS.iter().map(|(n, _)| (*n).to_owned()))
        .collect();
    let structs: BTreeSet<String> = layouts()
        .iter()
        .map(|l| normalize(l.rust))
        .chain(NOT_ABI_STRUCTS.iter().map(|(n, _)| (*n).to_owned()))
        .collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut missing = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let module = path.file_stem().unwrap().to_str().unwrap().to_owned();
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            // Only items at the top level of a module; `pub const fn` is code.
            if let Some(rest) = line.strip_prefix("pub const ") {
                if rest.starts_with("fn ") {
                    continue;
                }
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                seen += 1;
                if !covered.contains(&format!("{module}::{name}")) {
                    missing.push(format!("constant {module}::{name}"));
                }
            } else if let Some(rest) = line.strip_prefix("pub struct ") {
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                seen += 1;
                if !structs.contains(&format!("{module}::{name}")) {
                    missing.push(format!("struct {module}::{name}"));
                }
            }
        }
    }
    assert!(seen > 400, "the source scan found only {seen} items; is it reading abi/src?");
    assert!(missing.is_empty(), "not checked against Xen's headers:\n  {}", missing.join("\n  "));
}

/// The comparison can fail: deliberately wrong values go through the same
/// `compare` and must each be reported.
#[test]
fn comparison_catches_mismatches() {
    let o = oracle();
    let mut t = tables();
    assert!(compare(&t, o).is_empty(), "the real tables must pass first");

    t.layouts[0].size += 8;
    t.layouts[0].fields[1].offset += 8;
    t.consts[0].value += 1;
    t.strs[0].value.push('x');
    // A getter reading the wrong union member.
    t.views[1].get = t.views[2].get;
    let bad = compare(&t, o);
    assert_eq!(bad.len(), 5, "expected five mismatches, got:\n{}", bad.join("\n"));
    assert!(bad[0].contains("StartInfo") && bad[0].contains("size/align"));
    assert!(bad[1].contains("nr_pages") && bad[1].contains("offset/size"));
    assert!(bad[2].contains("INTERFACE_VERSION"));
    assert!(bad[3].contains("XEN_EMULATE_PREFIX"));
    assert!(bad[4].contains("console_domu_evtchn"));

    let mut errnos = o.errnos.clone();
    errnos.push(("EFAKE".to_owned(), 200));
    errnos.retain(|(n, _)| n != "EPERM");
    errnos.iter_mut().filter(|(n, _)| n == "EINVAL").for_each(|e| e.1 = 23);
    let bad = compare_errnos(&errnos);
    assert_eq!(bad.len(), 3, "{bad:?}");
}

#[test]
fn missing_headers_message_says_how_to_fix_it() {
    let msg = headers_missing_message();
    assert!(msg.contains("cargo xtask test") && msg.contains("apt-get install libxen-dev"));
}
