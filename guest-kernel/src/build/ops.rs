//! [`ControlOps`] with real hypercalls: the control domain's side of building a domain.
//!
//! Each method is the one hypercall the trait names, made for the domain
//! being built (never for dom0 itself: [`Dom0Ops`] refuses domain 0 and the
//! reserved ids with `EINVAL`, so no call here can take away what this
//! kernel runs on):
//!
//! | method | hypercall |
//! |---|---|
//! | `xen_features` | `xen_version(XENVER_get_features)`, submap 0 |
//! | `free_pages` | `sysctl(XEN_SYSCTL_physinfo).free_pages` |
//! | `create_domain` | `domctl(createdomain)` (PV, grant tables up to version 1), then `domctl(max_vcpus)` |
//! | `set_max_mem` | `domctl(max_mem)` |
//! | `set_sched_credit` | `domctl(scheduler_op)`, credit `putinfo` (see below) |
//! | `alloc_unbound` | `event_channel_op(EVTCHNOP_alloc_unbound)`, `dom` the new domain |
//! | `populate_physmap` | `memory_op(XENMEM_populate_physmap)` with the new domain's id |
//! | `set_m2p` | `mmu_update(MMU_MACHPHYS_UPDATE, foreigndom = domid)` |
//! | `shared_info_frame` | `domctl(getdomaininfo).shared_info_frame` |
//! | `write_frame` | `update_va_mapping_otherdomain`, a copy, `update_va_mapping` |
//! | `hypercall_init` | `domctl(hypercall_init)` |
//! | `pin_l4` | `mmuext_op(MMUEXT_PIN_L4_TABLE, foreigndom = domid)` |
//! | `set_vcpu_context` | `domctl(setvcpucontext)`, vCPU 0, a handle to the context in dom0's memory |
//! | `destroy_domain` | `domctl(destroydomain)` |
//!
//! **Foreign frames** are written through one scratch page, [`SCRATCH_VA`],
//! whose L1 table [`Dom0Ops::new`] makes once: `write_frame` maps the
//! domain's machine frame there writable with
//! `update_va_mapping_otherdomain(va, pte, UVMF_INVLPG, domid)` (the
//! hypervisor checks that `domid` owns the frame and that it may be
//! writable: not a page table already validated), copies the bytes, and
//! unmaps it with `update_va_mapping(va, 0, UVMF_INVLPG)`, so no mapping of
//! another domain's memory outlives the call (it would hold a reference
//! that keeps a destroyed domain from dying). This is what libxenguest does
//! with privcmd's foreign mappings.
//!
//! **vCPUs**: Xen 4.17's `createdomain` only records `max_vcpus`; the
//! vCPUs themselves come from `XEN_DOMCTL_max_vcpus`, which libxl issues
//! in `libxl__build_pre` and without which `setvcpucontext` finds no vCPU 0
//! (`EINVAL`). [`ControlOps`] has no step for it, so `create_domain` makes
//! both calls (and destroys the domain if the second fails).
//!
//! **Scheduler parameters**: `set_sched_credit` is a credit scheduler
//! `putinfo`. Xen refuses it (`EINVAL`) when another scheduler runs (Xen
//! 4.17's default is credit2, whose parameters have another layout);
//! then the credit scheduler's defaults (weight 256, no cap) are taken
//! as met, since a new domain has its scheduler's defaults anyway, and
//! anything else is refused with that `EINVAL`.

use core::sync::atomic::{AtomicBool, Ordering};

use abi::arch::VcpuGuestContext;
use abi::boot::pagetables::MAX_MFN;
use abi::domctl::{
    xen_domctl_grant_version, XenDomctl, XenDomctlCreatedomain, XenDomctlGetdomaininfo, XenDomctlSchedCredit,
    XEN_DOMCTL_SCHEDOP_PUTINFO,
};
use abi::guest::BatchError;
use abi::mm::{MmuUpdate, MmuextOp, DOMID_FIRST_RESERVED, MMUEXT_PIN_L4_TABLE, MMU_MACHPHYS_UPDATE, UVMF_INVLPG};
use abi::start_info::SIF_INITDOMAIN;
use abi::sysctl::{XenSysctl, XenSysctlPhysinfo};
use abi::Errno;
use guest_kernel::hypercall::hv;
use guest_kernel::layout::{PAGE_SIZE, SCRATCH_BASE};
use guest_kernel::mm;
use guest_kernel::pagetable::{leaf_entry, MmError, Prot};
use guest_kernel::runtime::start_info;
use toolstack::builder::{ControlOps, CreateDomain, DomId};
use toolstack::config::DEFAULT_WEIGHT;

/// Where [`Dom0Ops`] maps the foreign frame it writes: a page of the
/// scratch region (L4 slot 509) 128 MiB in, clear of what the selftest,
/// the benchmarks and the hostile lab use there.
pub const SCRATCH_VA: u64 = SCRATCH_BASE + 64 * (2 << 20);

/// Whether a [`Dom0Ops`] exists (it owns [`SCRATCH_VA`]).
static SCRATCH_TAKEN: AtomicBool = AtomicBool::new(false);

/// The grant-table version a built domain may use, at most: version 1, the
/// one a PV kernel needs for its console and xenstore rings (libxl asks
/// for the highest the hypervisor offers).
const MAX_GRANT_VERSION: u32 = 1;

/// The builder's hypercalls, made by the initial domain.
///
/// At most one exists at a time: it owns the scratch page [`SCRATCH_VA`].
#[derive(Debug)]
pub struct Dom0Ops {
    _owns_scratch: (),
}

impl Dom0Ops {
    /// Takes the scratch page, making its L1 table. Needs [`mm::init`] and
    /// the initial domain (`SIF_INITDOMAIN`: domain 0, the one id every
    /// operation here refuses to act on).
    pub fn new() -> Result<Dom0Ops, MmError> {
        if start_info().flags & SIF_INITDOMAIN == 0 {
            return Err(MmError::Unavailable("not the initial domain"));
        }
        if SCRATCH_TAKEN.swap(true, Ordering::SeqCst) {
            return Err(MmError::Unavailable("the scratch page for foreign frames is taken"));
        }
        let ready = mm::l1_table(SCRATCH_VA).and_then(|_| match mm::lookup_in(mm::kernel_space().root, SCRATCH_VA)? {
            Some(_) => Err(MmError::AlreadyMapped(SCRATCH_VA)),
            None => Ok(()),
        });
        match ready {
            Ok(()) => Ok(Dom0Ops { _owns_scratch: () }),
            Err(e) => {
                SCRATCH_TAKEN.store(false, Ordering::SeqCst);
                Err(e)
            }
        }
    }
}

impl Dom0Ops {
    /// Maps `domid`'s machine frame `mfn` writable at [`SCRATCH_VA`],
    /// hands its address to `f`, and unmaps it (so, as with `write_frame`,
    /// no mapping of another domain's memory outlives the call). The
    /// domain may change the frame meanwhile: `f` must treat it as shared
    /// memory (raw or atomic accesses, no references).
    pub fn with_foreign_frame<R>(&mut self, domid: DomId, mfn: u64, f: impl FnOnce(*mut u8) -> R) -> Result<R, Errno> {
        let domid = other(domid)?;
        if mfn > MAX_MFN {
            return Err(Errno::EINVAL);
        }
        let pte = leaf_entry(mfn, Prot::KERNEL_RW);
        // SAFETY: the scratch page is this value's alone (`new`), nothing
        // points into it, and it is unmapped below before returning.
        unsafe { hv().update_va_mapping_otherdomain(SCRATCH_VA, pte, UVMF_INVLPG, domid) }?;
        let r = f(SCRATCH_VA as *mut u8);
        // SAFETY: `f` is done and kept no reference into the page.
        unsafe { hv().update_va_mapping(SCRATCH_VA, 0, UVMF_INVLPG) }?;
        Ok(r)
    }
}

impl Drop for Dom0Ops {
    fn drop(&mut self) {
        SCRATCH_TAKEN.store(false, Ordering::SeqCst);
    }
}

/// `domid` if it names another domain dom0 may build: not itself (0),
/// not a reserved id (`DOMID_SELF` and above).
fn other(domid: DomId) -> Result<DomId, Errno> {
    if domid == 0 || domid >= DOMID_FIRST_RESERVED {
        Err(Errno::EINVAL)
    } else {
        Ok(domid)
    }
}

/// `domctl(op)` on `op.domain`, which must be another domain ([`other`]),
/// for an operation without guest handles.
fn domctl_other(op: &mut XenDomctl) -> Result<(), Errno> {
    other(op.domain)?;
    // SAFETY: callers pass operations without guest handles (or, for
    // `setvcpucontext`, call `hv().domctl` themselves), and the domain
    // acted on is not this one, so nothing this kernel runs on changes.
    unsafe { hv().domctl(op) }.map(drop)
}

/// `sysctl(XEN_SYSCTL_physinfo)`: the machine's memory and CPUs.
pub fn physinfo() -> Result<XenSysctlPhysinfo, Errno> {
    let mut op = XenSysctl::physinfo();
    // SAFETY: physinfo carries no guest handle.
    unsafe { hv().sysctl(&mut op) }?;
    Ok(op.u_physinfo())
}

/// `sysctl(XEN_SYSCTL_physinfo).free_pages`.
pub fn free_pages() -> Result<u64, Errno> {
    Ok(physinfo()?.free_pages)
}

/// `domctl(getdomaininfo)` for exactly `domid`: `None` if it no longer
/// exists (Xen 4.17 reports the next domain up, or `ESRCH` past the last).
pub fn domain_info(domid: DomId) -> Result<Option<XenDomctlGetdomaininfo>, Errno> {
    let mut op = XenDomctl::getdomaininfo(domid);
    // SAFETY: getdomaininfo carries no guest handle and changes nothing.
    match unsafe { hv().domctl(&mut op) } {
        Ok(_) if op.domain == domid => Ok(Some(op.u_getdomaininfo())),
        Ok(_) | Err(Errno::ESRCH) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `domctl(pausedomain)`: stops a domain running. Pauses nest: each is
/// undone by one `unpausedomain`.
pub fn pause(domid: DomId) -> Result<(), Errno> {
    domctl_other(&mut XenDomctl::pausedomain(domid))
}

/// `domctl(unpausedomain)`: lets a built domain run.
pub fn unpause(domid: DomId) -> Result<(), Errno> {
    domctl_other(&mut XenDomctl::unpausedomain(domid))
}

/// `domctl(destroydomain)`.
pub fn destroy(domid: DomId) -> Result<(), Errno> {
    domctl_other(&mut XenDomctl::destroydomain(domid))
}

/// The errno of a one-request batch that failed.
fn batch_errno(e: BatchError) -> Errno {
    e.errno
}

impl ControlOps for Dom0Ops {
    fn xen_features(&mut self) -> Result<u32, Errno> {
        hv().xen_get_features(0)
    }

    fn free_pages(&mut self) -> Result<u64, Errno> {
        free_pages()
    }

    fn create_domain(&mut self, params: &CreateDomain) -> Result<DomId, Errno> {
        let config = XenDomctlCreatedomain {
            max_vcpus: params.max_vcpus,
            max_evtchn_port: params.max_evtchn_port,
            max_grant_frames: i32::try_from(params.max_grant_frames).map_err(|_| Errno::EINVAL)?,
            max_maptrack_frames: i32::try_from(params.max_maptrack_frames).map_err(|_| Errno::EINVAL)?,
            grant_opts: xen_domctl_grant_version(MAX_GRANT_VERSION),
            ..XenDomctlCreatedomain::default()
        };
        let mut op = XenDomctl::createdomain(0, &config);
        // SAFETY: createdomain carries no guest handle and makes a new
        // domain; it changes nothing of this one.
        unsafe { hv().domctl(&mut op) }?;
        let domid = other(op.domain).map_err(|_| Errno::EIO)?;
        if let Err(e) = domctl_other(&mut XenDomctl::max_vcpus(domid, params.max_vcpus)) {
            return Err(destroy(domid).map_or(Errno::EIO, |()| e));
        }
        Ok(domid)
    }

    fn set_max_mem(&mut self, domid: DomId, max_kib: u64) -> Result<(), Errno> {
        domctl_other(&mut XenDomctl::max_mem(domid, max_kib))
    }

    fn set_sched_credit(&mut self, domid: DomId, weight: u16, cap: u16) -> Result<(), Errno> {
        let mut op =
            XenDomctl::sched_credit(other(domid)?, XEN_DOMCTL_SCHEDOP_PUTINFO, XenDomctlSchedCredit { weight, cap });
        match domctl_other(&mut op) {
            Err(Errno::EINVAL) if (weight, cap) == (DEFAULT_WEIGHT, 0) => Ok(()),
            r => r,
        }
    }

    fn alloc_unbound(&mut self, domid: DomId, remote: DomId) -> Result<u32, Errno> {
        hv().evtchn_alloc_unbound(other(domid)?, remote)
    }

    fn populate_physmap(&mut self, domid: DomId, extents: &mut [u64]) -> Result<usize, Errno> {
        let done = hv().populate_physmap(other(domid)?, extents)?;
        usize::try_from(done).ok().filter(|&n| n <= extents.len()).ok_or(Errno::EIO)
    }

    fn set_m2p(&mut self, domid: DomId, mfn: u64, pfn: u64) -> Result<(), Errno> {
        if mfn > MAX_MFN {
            return Err(Errno::EINVAL);
        }
        let req = MmuUpdate { ptr: (mfn << 12) | MMU_MACHPHYS_UPDATE, val: pfn };
        // SAFETY: an M2P update changes no mapping.
        unsafe { hv().mmu_update_foreign(&[req], other(domid)?) }.map(drop).map_err(batch_errno)
    }

    fn shared_info_frame(&mut self, domid: DomId) -> Result<u64, Errno> {
        Ok(domain_info(other(domid)?)?.ok_or(Errno::ESRCH)?.shared_info_frame)
    }

    fn write_frame(&mut self, domid: DomId, mfn: u64, offset: usize, bytes: &[u8]) -> Result<(), Errno> {
        let domid = other(domid)?;
        if mfn > MAX_MFN || offset.checked_add(bytes.len()).is_none_or(|end| end > PAGE_SIZE as usize) {
            return Err(Errno::EINVAL);
        }
        let pte = leaf_entry(mfn, Prot::KERNEL_RW);
        // SAFETY: the scratch page is this value's alone (`new`), nothing
        // points into it, and it is unmapped below before returning.
        unsafe { hv().update_va_mapping_otherdomain(SCRATCH_VA, pte, UVMF_INVLPG, domid) }?;
        let dst = (SCRATCH_VA as usize + offset) as *mut u8;
        // SAFETY: `dst..dst + len` lies in the scratch page (checked
        // above), now mapped writable to the frame; `bytes` is dom0 memory
        // elsewhere, so the two do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        // SAFETY: the copy is done and nothing points into the page.
        unsafe { hv().update_va_mapping(SCRATCH_VA, 0, UVMF_INVLPG) }.map(drop)
    }

    fn hypercall_init(&mut self, domid: DomId, gmfn: u64) -> Result<(), Errno> {
        domctl_other(&mut XenDomctl::hypercall_init(domid, gmfn))
    }

    fn pin_l4(&mut self, domid: DomId, mfn: u64) -> Result<(), Errno> {
        let op = MmuextOp { cmd: MMUEXT_PIN_L4_TABLE, _pad0: 0, arg1: mfn, arg2: 0 };
        // SAFETY: pinning another domain's table validates and references
        // its frames; no mapping of this kernel changes.
        unsafe { hv().mmuext_op_foreign(&[op], other(domid)?) }.map(drop).map_err(batch_errno)
    }

    fn set_vcpu_context(&mut self, domid: DomId, ctx: &VcpuGuestContext) -> Result<(), Errno> {
        let mut op = XenDomctl::setvcpucontext(other(domid)?, 0, ctx as *const VcpuGuestContext as u64);
        // SAFETY: the handle points to `*ctx`, a whole `VcpuGuestContext`
        // (5168 bytes) that setvcpucontext only reads; the vCPU is another
        // domain's.
        unsafe { hv().domctl(&mut op) }.map(drop)
    }

    fn destroy_domain(&mut self, domid: DomId) -> Result<(), Errno> {
        destroy(domid)
    }
}
