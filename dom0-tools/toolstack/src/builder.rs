//! The PV domain builder: a kernel image and a [`DomainConfig`] in, a paused domain ready to run out.
//!
//! This is what Xen's toolstack does from dom0 when `xl create` starts a PV
//! guest (libxl driving libxenguest's `xc_dom_*`), written against a small
//! trait, [`ControlOps`], that stands for the hypercalls involved. The dom0
//! kernel implements it with real `domctl`, `memory_op`, `mmu_update`,
//! `mmuext_op` and `event_channel_op` calls and foreign mappings; the tests
//! implement it with a fake hypervisor. Everything about the start-of-day
//! layout comes from [`abi::boot`], the same pure code the hypervisor uses
//! for dom0, parsed with [`Role::DomU`].
//!
//! # Steps
//!
//! [`build`] is [`ControlOps::xen_features`], then [`plan`], then
//! [`Plan::execute`]. Each step, and what does the same in Xen 4.17:
//!
//! | # | here | Xen 4.17 |
//! |---|---|---|
//! | 1 | [`ControlOps::xen_features`] | `xc_dom_boot_xen_init` (`xen_version`) |
//! | 2 | [`plan`]: the config is re-checked, [`Kernel::parse`] (ELF, notes, features, placement), overlapping segments refused, [`Layout::compute`] | `xc_dom_parse_image`, `xc_dom_mem_init`; libxl's config checks |
//! | 3 | [`ControlOps::free_pages`]: enough free memory? | libxl `freemem()` |
//! | 4 | [`ControlOps::create_domain`] (paused; vCPU, port and grant limits) | `libxl__domain_make` → `xc_domain_create` |
//! | 5 | [`ControlOps::set_max_mem`], [`ControlOps::set_sched_credit`] | `libxl__build_pre`: `xc_domain_setmaxmem`, `libxl__sched_set_params` |
//! | 6 | [`ControlOps::alloc_unbound`] twice: the xenstore and console ports, remote end the backend domains | `libxl__build_pre`: `xc_evtchn_alloc_unbound` |
//! | 7 | [`ControlOps::populate_physmap`] for pfns `0..nr_pages` (the p2m), then [`ControlOps::set_m2p`] for each | `xc_dom_boot_mem_init` → `meminit_pv` |
//! | 8 | [`ControlOps::shared_info_frame`] | `xc_domain_getinfo` in `xc_dom_boot_image` |
//! | 9 | [`ControlOps::write_frame`], page by page: the kernel (segments placed by `p_paddr`, the rest zero), the ramdisk, the p2m list, the bootstrap page tables ([`boot::pagetables::build`]), `start_info` ([`boot::start_info`], flags [`DOMU_START_INFO_FLAGS`]), zeroed xenstore and console pages, a zeroed boot stack | `xc_dom_build_image` (`xc_dom_load_elf_kernel`, `alloc_p2m_list_x86_64`, `alloc_magic_pages_pv`, `alloc_pgtables_x86_64`), then `setup_pgtables_x86_64` and `start_info_x86_64` |
//! | 10 | [`ControlOps::hypercall_init`] on the `HYPERCALL_PAGE` frame | `setup_hypercall_page` |
//! | 11 | [`ControlOps::pin_l4`], then the shared-info page zeroed with every vCPU's `evtchn_upcall_mask` set | `bootlate_pv`, `shared_info_x86_64` |
//! | 12 | [`ControlOps::set_vcpu_context`] for vCPU 0 ([`initial_context`]) | `vcpu_x86_64` |
//!
//! The domain is left paused: the caller introduces it to xenstore and the
//! console daemon ([`Built`] has the frames and ports) and then unpauses it,
//! as libxl does once its devices are attached.
//!
//! # Validate, then act
//!
//! Every check on the image and the configuration happens in [`plan`],
//! before the first hypercall that changes anything. If a step after
//! [`ControlOps::create_domain`] fails, the builder destroys the domain
//! (which frees its frames and closes its ports) and returns one
//! [`BuildError`] naming the step and the cause; if even that fails, the
//! error says which domain was left behind.
//!
//! # Where this differs from Xen's toolstack
//!
//! - The image is parsed and laid out before the domain is created; libxl
//!   creates the domain first and parses the image inside the build.
//! - `set_max_mem` is the configured memory exactly; libxl adds 1 MiB of
//!   slack (`LIBXL_MAXMEM_CONSTANT`).
//! - The M2P is written explicitly, one [`ControlOps::set_m2p`]
//!   (`MMU_MACHPHYS_UPDATE`) per frame. Xen's `populate_physmap` already
//!   records the M2P for a PV domain, so there this is a harmless repeat;
//!   libxenguest only issues `MMU_MACHPHYS_UPDATE` when it moves a frame.
//! - Memory is populated in order-0 extents, [`POPULATE_BATCH`] at a time;
//!   libxenguest tries 2 MiB superpages first and batches up to 2^20.
//! - Not done: `XEN_DOMCTL_set_address_size` (this builder only knows
//!   64-bit guests), claims, vNUMA, the e820 limit, CPUID and TSC policy,
//!   seeding the grant table's reserved console and xenstore entries
//!   (`xc_dom_gnttab_seed`), and writing the domain's xenstore entries.
//! - The kernel's `INIT_P2M`, `MOD_START_PFN` and `BSD_SYMTAB` requests are
//!   not honoured (see [`abi::boot::layout`]); the p2m list is always in the
//!   initial mapping, which the ABI allows.

use alloc::vec;
use alloc::vec::Vec;
use core::mem::{offset_of, size_of};

use abi::arch::{VcpuGuestContext, FLAT_KERNEL_DS, VGCF_IN_KERNEL, VGCF_ONLINE};
use abi::boot::layout::{PAGE_SHIFT, PAGE_SIZE};
use abi::boot::pagetables::MAX_MFN;
use abi::boot::{self, Item, Kernel, Layout, LayoutError, Role, StartInfoParams};
use abi::shared_info::{SharedInfo, VcpuInfo, MAX_VIRT_CPUS};
use abi::start_info::{StartInfo, SIF_VIRT_P2M_4TOOLS};
use abi::Errno;

use crate::config::DomainConfig;

mod error;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

pub use error::{BuildError, Cause, Failure, ImageError, MemoryProblem, Step, Target};

/// A domain id (Xen's `domid_t`).
pub type DomId = u16;

/// Bytes in a page, as a `usize`.
const PAGE: usize = PAGE_SIZE as usize;
/// Pages in a MiB.
const PAGES_PER_MIB: u64 = (1 << 20) / PAGE_SIZE;
/// Page-table entries in a page.
const ENTRIES: usize = PAGE / 8;

/// Extents (pages) asked of [`ControlOps::populate_physmap`] per call: one
/// page of frame numbers, so dom0's hypercall buffer is a single page.
pub const POPULATE_BATCH: usize = 512;

/// `start_info.flags` of a domU: not privileged, not the initial domain;
/// [`SIF_VIRT_P2M_4TOOLS`], as `xc_dom_allocate` sets for every domain it
/// builds (the toolstack does not need the guest's 3-level p2m frame list).
pub const DOMU_START_INFO_FLAGS: u32 = SIF_VIRT_P2M_4TOOLS;

/// `debugreg[6]` of a new vCPU: DR6's reset value (Xen's `X86_DR6_DEFAULT`).
pub const X86_DR6_DEFAULT: u64 = 0xffff_0ff0;
/// `debugreg[7]` of a new vCPU: DR7's reset value (Xen's `X86_DR7_DEFAULT`).
pub const X86_DR7_DEFAULT: u64 = 0x0000_0400;

/// The `cr3` value (`vcpu_guest_context.ctrlreg[3]`) of an L4 at machine
/// frame `mfn`: Xen's `xen_pfn_to_cr3` for x86_64, the frame's address.
pub const fn xen_pfn_to_cr3(mfn: u64) -> u64 {
    mfn << PAGE_SHIFT
}

/// The hypercalls the builder needs, as the control domain makes them.
///
/// Every method is one privileged operation of Xen's toolstack interface.
/// Errors are the hypervisor's errno. The dom0 kernel implements this with
/// real hypercalls; the tests with a fake hypervisor.
pub trait ControlOps {
    /// `xen_version(XENVER_get_features)`, submap 0: the `XENFEAT_*` bits
    /// the hypervisor offers. A kernel requiring any other is refused.
    fn xen_features(&mut self) -> Result<u32, Errno>;

    /// `sysctl(XEN_SYSCTL_physinfo).free_pages`: frames free to give a new domain.
    fn free_pages(&mut self) -> Result<u64, Errno>;

    /// `domctl(XEN_DOMCTL_createdomain)`: a new PV domain, paused, with no
    /// memory yet. Returns its id.
    fn create_domain(&mut self, params: &CreateDomain) -> Result<DomId, Errno>;

    /// `domctl(XEN_DOMCTL_max_mem)`: the most memory `domid` may hold, in KiB.
    fn set_max_mem(&mut self, domid: DomId, max_kib: u64) -> Result<(), Errno>;

    /// `domctl(XEN_DOMCTL_scheduler_op, putinfo)` for the credit scheduler:
    /// `weight` (1-65535) and `cap` (percent of a CPU, 0 for none).
    fn set_sched_credit(&mut self, domid: DomId, weight: u16, cap: u16) -> Result<(), Errno>;

    /// `event_channel_op(EVTCHNOP_alloc_unbound)`: a port of `domid` that
    /// domain `remote` may bind. Returns the port.
    fn alloc_unbound(&mut self, domid: DomId, remote: DomId) -> Result<u32, Errno>;

    /// `memory_op(XENMEM_populate_physmap)`, order 0, for `domid`: on entry
    /// `extents` holds guest pfns; for a PV domain the hypervisor replaces
    /// each populated one with the machine frame now backing it. Returns how
    /// many extents it populated, from the front (fewer than asked means it
    /// ran out of memory or hit the domain's maximum). Frames come zeroed.
    fn populate_physmap(&mut self, domid: DomId, extents: &mut [u64]) -> Result<usize, Errno>;

    /// `mmu_update(MMU_MACHPHYS_UPDATE, foreigndom = domid)`: records in the
    /// M2P that machine frame `mfn` (owned by `domid`) is guest pfn `pfn`.
    fn set_m2p(&mut self, domid: DomId, mfn: u64, pfn: u64) -> Result<(), Errno>;

    /// `domctl(XEN_DOMCTL_getdomaininfo).shared_info_frame`: the machine
    /// frame of `domid`'s shared-info page.
    fn shared_info_frame(&mut self, domid: DomId) -> Result<u64, Errno>;

    /// Writes `bytes` at `offset` (`offset + bytes.len() <= 4096`) into
    /// machine frame `mfn`, which `domid` owns (its memory or its
    /// shared-info frame). A real dom0 maps the foreign frame writable
    /// (`mmap` of privcmd / `mmu_update` with `foreigndom`), copies and
    /// unmaps, so no writable mapping outlives the call.
    fn write_frame(&mut self, domid: DomId, mfn: u64, offset: usize, bytes: &[u8]) -> Result<(), Errno>;

    /// `domctl(XEN_DOMCTL_hypercall_init)`: the hypervisor writes its
    /// hypercall page into `domid`'s frame `gmfn`.
    fn hypercall_init(&mut self, domid: DomId, gmfn: u64) -> Result<(), Errno>;

    /// `mmuext_op(MMUEXT_PIN_L4_TABLE, mfn, foreigndom = domid)`: validates
    /// the page tables below the L4 at `mfn` and pins it.
    fn pin_l4(&mut self, domid: DomId, mfn: u64) -> Result<(), Errno>;

    /// `domctl(XEN_DOMCTL_setvcpucontext)` for vCPU 0 of `domid`.
    fn set_vcpu_context(&mut self, domid: DomId, ctx: &VcpuGuestContext) -> Result<(), Errno>;

    /// `domctl(XEN_DOMCTL_destroydomain)`: tears `domid` down, freeing its
    /// frames and closing its ports.
    fn destroy_domain(&mut self, domid: DomId) -> Result<(), Errno>;
}

/// What [`ControlOps::create_domain`] is asked for (a subset of Xen's
/// `xen_domctl_createdomain`; the rest is zero: a PV domain, no flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateDomain {
    /// `max_vcpus`: the configuration's `vcpus`.
    pub max_vcpus: u32,
    /// `max_evtchn_port`: the highest event-channel port the domain may use.
    pub max_evtchn_port: u32,
    /// `max_grant_frames`: grant-table frames the domain may have.
    pub max_grant_frames: u32,
    /// `max_maptrack_frames`: maptrack frames (for grants it maps).
    pub max_maptrack_frames: u32,
}

/// Build settings beyond the [`DomainConfig`], with libxl's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildOptions<'a> {
    /// An initial ramdisk, loaded after the kernel (`start_info.mod_start`,
    /// `mod_len`); `None` or empty for none.
    pub ramdisk: Option<&'a [u8]>,
    /// The domain running the console backend (the console port's remote end).
    pub console_domid: DomId,
    /// The domain running xenstored (the xenstore port's remote end).
    pub xenstore_domid: DomId,
    /// [`CreateDomain::max_evtchn_port`]; default 1023 (libxl's `event_channels`).
    pub max_evtchn_port: u32,
    /// [`CreateDomain::max_grant_frames`]; default 64.
    pub max_grant_frames: u32,
    /// [`CreateDomain::max_maptrack_frames`]; default 1024.
    pub max_maptrack_frames: u32,
}

impl Default for BuildOptions<'_> {
    fn default() -> Self {
        BuildOptions {
            ramdisk: None,
            console_domid: 0,
            xenstore_domid: 0,
            max_evtchn_port: 1023,
            max_grant_frames: 64,
            max_maptrack_frames: 1024,
        }
    }
}

/// A built domain: paused, with vCPU 0 ready to enter the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Built {
    /// The new domain.
    pub domid: DomId,
    /// Its start-of-day layout.
    pub layout: Layout,
    /// Machine frame of the pinned bootstrap L4.
    pub l4_mfn: u64,
    /// Machine frame of its shared-info page.
    pub shared_info_mfn: u64,
    /// Machine frame of the xenstore ring (`start_info.store_mfn`), for
    /// introducing the domain to xenstored.
    pub store_mfn: u64,
    /// The xenstore event channel (`start_info.store_evtchn`).
    pub store_evtchn: u32,
    /// Machine frame of the console ring (`start_info.console.domU.mfn`).
    pub console_mfn: u64,
    /// The console event channel (`start_info.console.domU.evtchn`).
    pub console_evtchn: u32,
    /// Where vCPU 0 starts.
    pub entry: u64,
}

/// A loadable segment with bytes to place, at its final address.
#[derive(Clone, Copy, Debug)]
struct Placed<'a> {
    /// Program header index.
    index: usize,
    /// Where it goes (`p_paddr + virt_offset`).
    va: u64,
    /// Bytes it occupies (`p_memsz`, more than 0).
    memsz: u64,
    /// Its file bytes (`p_filesz` of them); the rest of `memsz` is zero.
    data: &'a [u8],
}

impl Placed<'_> {
    /// First address past the segment (cannot overflow: [`place_segments`]
    /// checked it lies in the kernel's pages).
    fn end(&self) -> u64 {
        self.va + self.memsz
    }
}

/// A checked build: everything [`Plan::execute`] needs, decided without
/// touching the hypervisor.
#[derive(Clone, Debug)]
pub struct Plan<'a> {
    kernel: Kernel<'a>,
    /// Loadable segments with `memsz > 0`, by address, not overlapping.
    segments: Vec<Placed<'a>>,
    layout: Layout,
    ramdisk: &'a [u8],
    config: &'a DomainConfig,
    options: BuildOptions<'a>,
}

/// Checks `image`, `config` and `options` and lays the domain out, without
/// any hypercall: `hypervisor_features` is [`ControlOps::xen_features`]'s
/// answer.
///
/// Refuses a configuration outside the limits [`DomainConfig::parse`]
/// enforces (one built by hand), an image [`Kernel::parse`] refuses as a
/// domU, loadable segments that overlap in memory, and a memory size the
/// layout does not fit in.
pub fn plan<'a>(
    image: &'a [u8],
    config: &'a DomainConfig,
    options: &BuildOptions<'a>,
    hypervisor_features: u32,
) -> Result<Plan<'a>, BuildError> {
    // The config's own checks, so the builder and the parser cannot disagree.
    DomainConfig::parse(&config.to_text()).map_err(|e| BuildError::Config(e.kind))?;
    let kernel = Kernel::parse(image, hypervisor_features, Role::DomU).map_err(ImageError::Boot)?;
    let ramdisk = options.ramdisk.unwrap_or(&[]);
    let nr_pages = u64::from(config.memory_mib) * PAGES_PER_MIB;
    let params = kernel.layout_params(nr_pages, Some(ramdisk.len() as u64));
    let layout = Layout::compute(&params).map_err(|e| match e {
        LayoutError::TooSmall { needed, .. } => {
            BuildError::Memory(MemoryProblem::TooSmall { memory_mib: config.memory_mib, needed_pages: needed })
        }
        e => BuildError::Kernel(ImageError::Boot(e.into())),
    })?;
    let segments = place_segments(&kernel, &layout)?;
    if let Some(va) = kernel.placement.hypercall_page {
        if !layout.kernel().contains(va) {
            return Err(ImageError::OutsideKernel { va, len: PAGE_SIZE }.into());
        }
    }
    Ok(Plan { kernel, segments, layout, ramdisk, config, options: *options })
}

/// The segments that occupy memory, sorted by address; refuses overlaps.
fn place_segments<'a>(kernel: &Kernel<'a>, layout: &Layout) -> Result<Vec<Placed<'a>>, BuildError> {
    let region = layout.kernel();
    let mut placed = Vec::new();
    for seg in kernel.elf.segments().filter(|s| s.memsz > 0) {
        let data = kernel.elf.segment_data(&seg).map_err(|e| ImageError::Boot(e.into()))?;
        let va = kernel.placement.segment_va(&seg);
        // `abi::boot` places every segment inside the kernel; a broken
        // invariant is an error here, not a write past the kernel's pages.
        if va < region.va || va.checked_add(seg.memsz).is_none_or(|end| end > region.end()) {
            return Err(ImageError::OutsideKernel { va, len: seg.memsz }.into());
        }
        placed.push(Placed { index: seg.index, va, memsz: seg.memsz, data });
    }
    placed.sort_unstable_by_key(|p| p.va);
    for pair in placed.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.end() > b.va {
            let (first, second) = if a.index < b.index { (a, b) } else { (b, a) };
            return Err(ImageError::OverlappingSegments {
                first: first.index,
                first_range: (first.va, first.memsz),
                second: second.index,
                second_range: (second.va, second.memsz),
            }
            .into());
        }
    }
    Ok(placed)
}

/// Builds a paused PV domain from `image` as `config` describes: the whole
/// of the [module documentation](self), steps 1 to 12.
pub fn build<C: ControlOps + ?Sized>(
    ops: &mut C,
    image: &[u8],
    config: &DomainConfig,
    options: &BuildOptions<'_>,
) -> Result<Built, BuildError> {
    let features = ops.xen_features().map_err(|e| Failure::errno(Step::XenFeatures, e))?;
    plan(image, config, options, features)?.execute(ops)
}

impl<'a> Plan<'a> {
    /// The start-of-day layout the domain will get.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The parsed kernel.
    pub fn kernel(&self) -> &Kernel<'a> {
        &self.kernel
    }

    /// Creates and fills the domain (steps 3 to 12). On failure after the
    /// domain exists, destroys it.
    pub fn execute<C: ControlOps + ?Sized>(&self, ops: &mut C) -> Result<Built, BuildError> {
        let nr_pages = self.layout.nr_pages();
        let free_pages = ops.free_pages().map_err(|e| Failure::errno(Step::FreePages, e))?;
        if nr_pages > free_pages {
            return Err(BuildError::Memory(MemoryProblem::NotEnoughFree { asked_pages: nr_pages, free_pages }));
        }
        let create = CreateDomain {
            max_vcpus: self.config.vcpus,
            max_evtchn_port: self.options.max_evtchn_port,
            max_grant_frames: self.options.max_grant_frames,
            max_maptrack_frames: self.options.max_maptrack_frames,
        };
        let domid = ops.create_domain(&create).map_err(|e| Failure::errno(Step::CreateDomain, e))?;
        self.fill(ops, domid).map_err(|failure| match ops.destroy_domain(domid) {
            Ok(()) => BuildError::Op(failure),
            Err(errno) => BuildError::LeftBehind { failure, domid, errno },
        })
    }

    /// Steps 5 to 12 on the new domain `domid`.
    fn fill<C: ControlOps + ?Sized>(&self, ops: &mut C, domid: DomId) -> Result<Built, Failure> {
        let config = self.config;
        let layout = &self.layout;
        let at = |step| move |e| Failure::errno(step, e);

        ops.set_max_mem(domid, u64::from(config.memory_mib) * 1024).map_err(at(Step::SetMaxMem))?;
        ops.set_sched_credit(domid, config.weight, config.cap).map_err(at(Step::SetSchedCredit))?;
        let store_evtchn = ops.alloc_unbound(domid, self.options.xenstore_domid).map_err(at(Step::AllocStoreEvtchn))?;
        let console_evtchn =
            ops.alloc_unbound(domid, self.options.console_domid).map_err(at(Step::AllocConsoleEvtchn))?;

        let p2m = populate(ops, domid, layout.nr_pages())?;
        for (pfn, &mfn) in (0u64..).zip(&p2m) {
            ops.set_m2p(domid, mfn, pfn).map_err(at(Step::SetM2p))?;
        }
        let shared_info_mfn = ops.shared_info_frame(domid).map_err(at(Step::SharedInfoFrame))?;
        if shared_info_mfn > MAX_MFN {
            return Err(Failure { step: Step::SharedInfoFrame, cause: Cause::BadMfn(shared_info_mfn) });
        }
        // Every index below is a pfn of the layout, so below `nr_pages`.
        let mfn_of = |pfn: u64| p2m.get(pfn as usize).copied().unwrap_or(u64::MAX);
        let mut frames = Frames { ops: &mut *ops, domid, p2m: &p2m };

        self.write_kernel(&mut frames)?;
        if let Some(region) = layout.ramdisk() {
            frames.write_bytes(region.pfn, region.pages, self.ramdisk, Item::Ramdisk)?;
        }
        self.write_p2m(&mut frames)?;
        self.write_page_tables(&mut frames)?;

        let store_mfn = mfn_of(layout.xenstore().pfn);
        let console_mfn = mfn_of(layout.console().pfn);
        let start_info = boot::start_info(
            layout,
            &StartInfoParams {
                shared_info_maddr: shared_info_mfn << PAGE_SHIFT,
                flags: DOMU_START_INFO_FLAGS,
                store_mfn,
                store_evtchn,
                console_mfn,
                console_evtchn,
                cmdline: config.cmdline.as_bytes(),
            },
        );
        let page = start_info_page(&start_info.start_info);
        frames.write_page(layout.start_info().pfn, &page, Item::StartInfo)?;
        let zero = [0u8; PAGE];
        for item in [Item::Xenstore, Item::Console, Item::BootStack] {
            if let Some(region) = layout.region(item) {
                frames.write_page(region.pfn, &zero, item)?;
            }
        }

        if let Some(va) = self.kernel.placement.hypercall_page {
            // `plan` checked the page lies in the kernel's pages.
            let pfn = layout.pfn_of(va).unwrap_or(u64::MAX);
            ops.hypercall_init(domid, mfn_of(pfn)).map_err(at(Step::HypercallInit))?;
        }
        let l4_mfn = mfn_of(layout.page_tables().pfn);
        ops.pin_l4(domid, l4_mfn).map_err(at(Step::PinL4))?;
        ops.write_frame(domid, shared_info_mfn, 0, &shared_info_page())
            .map_err(|e| Failure::errno(Step::WriteFrame(Target::SharedInfo), e))?;

        let entry = self.kernel.placement.entry;
        ops.set_vcpu_context(domid, &initial_context(layout, entry, l4_mfn)).map_err(at(Step::SetVcpuContext))?;

        Ok(Built {
            domid,
            layout: *layout,
            l4_mfn,
            shared_info_mfn,
            store_mfn,
            store_evtchn,
            console_mfn,
            console_evtchn,
            entry,
        })
    }

    /// The kernel's pages: each segment's file bytes at its address, zero
    /// elsewhere (`bss`, gaps, the ends of partial pages).
    fn write_kernel<C: ControlOps + ?Sized>(&self, frames: &mut Frames<'_, C>) -> Result<(), Failure> {
        let region = self.layout.kernel();
        let segments = &self.segments;
        let mut page = [0u8; PAGE];
        // Segments ending at or before the current page are behind `first`;
        // sorted and disjoint, so each is visited once per page it touches.
        let mut first = 0;
        for i in 0..region.pages {
            let start = region.va + i * PAGE_SIZE;
            let end = start + PAGE_SIZE;
            page.fill(0);
            for seg in segments[first..].iter().take_while(|s| s.va < end) {
                let file_end = seg.va + seg.data.len() as u64;
                let (lo, hi) = (seg.va.max(start), file_end.min(end));
                if lo < hi {
                    let dst = (lo - start) as usize..(hi - start) as usize;
                    let src = (lo - seg.va) as usize..(hi - seg.va) as usize;
                    page[dst].copy_from_slice(&seg.data[src]);
                }
            }
            while segments.get(first).is_some_and(|s| s.end() <= end) {
                first += 1;
            }
            frames.write_page(region.pfn + i, &page, Item::Kernel)?;
        }
        Ok(())
    }

    /// The p2m list: `nr_pages` machine frame numbers, little-endian u64s.
    fn write_p2m<C: ControlOps + ?Sized>(&self, frames: &mut Frames<'_, C>) -> Result<(), Failure> {
        let region = self.layout.p2m();
        let mut page = [0u8; PAGE];
        let mut chunks = frames.p2m.chunks(ENTRIES);
        for i in 0..region.pages {
            page.fill(0);
            for (slot, mfn) in page.chunks_exact_mut(8).zip(chunks.next().unwrap_or(&[])) {
                slot.copy_from_slice(&mfn.to_le_bytes());
            }
            frames.write_page(region.pfn + i, &page, Item::P2m)?;
        }
        Ok(())
    }

    /// The bootstrap page tables, built by [`boot::pagetables::build`].
    fn write_page_tables<C: ControlOps + ?Sized>(&self, frames: &mut Frames<'_, C>) -> Result<(), Failure> {
        let region = self.layout.page_tables();
        let mut tables = vec![[0u64; ENTRIES]; region.pages as usize];
        let p2m = frames.p2m;
        boot::pagetables::build(
            &self.layout,
            |pfn| p2m.get(pfn as usize).copied().unwrap_or(u64::MAX),
            |table, slot, entry| {
                if let Some(e) = tables.get_mut(table).and_then(|t| t.get_mut(slot)) {
                    *e = entry;
                }
            },
        )
        .map_err(|e| {
            let boot::PageTableError::MfnTooLarge { mfn, .. } = e;
            Failure { step: Step::WriteFrame(Target::Layout(Item::PageTables)), cause: Cause::BadMfn(mfn) }
        })?;
        let mut page = [0u8; PAGE];
        for (i, table) in (0u64..).zip(&tables) {
            for (bytes, entry) in page.chunks_exact_mut(8).zip(table) {
                bytes.copy_from_slice(&entry.to_le_bytes());
            }
            frames.write_page(region.pfn + i, &page, Item::PageTables)?;
        }
        Ok(())
    }
}

/// Populates pfns `0..nr_pages` of `domid` and returns the p2m.
fn populate<C: ControlOps + ?Sized>(ops: &mut C, domid: DomId, nr_pages: u64) -> Result<Vec<u64>, Failure> {
    let mut p2m: Vec<u64> = (0..nr_pages).collect();
    for batch in p2m.chunks_mut(POPULATE_BATCH) {
        let asked = batch.len();
        let done = ops.populate_physmap(domid, batch).map_err(|e| Failure::errno(Step::PopulatePhysmap, e))?;
        if done != asked {
            return Err(Failure { step: Step::PopulatePhysmap, cause: Cause::Partial { done, asked } });
        }
        if let Some(&mfn) = batch.iter().find(|&&mfn| mfn > MAX_MFN) {
            return Err(Failure { step: Step::PopulatePhysmap, cause: Cause::BadMfn(mfn) });
        }
    }
    Ok(p2m)
}

/// Writes whole pages of the new domain, by guest pfn.
struct Frames<'o, C: ?Sized> {
    ops: &'o mut C,
    domid: DomId,
    p2m: &'o [u64],
}

impl<C: ControlOps + ?Sized> Frames<'_, C> {
    fn write_page(&mut self, pfn: u64, page: &[u8; PAGE], item: Item) -> Result<(), Failure> {
        let mfn = self.p2m.get(pfn as usize).copied().unwrap_or(u64::MAX);
        self.ops
            .write_frame(self.domid, mfn, 0, page)
            .map_err(|e| Failure::errno(Step::WriteFrame(Target::Layout(item)), e))
    }

    /// Writes `bytes` over `pages` pages from `pfn`, zero-padding the rest.
    fn write_bytes(&mut self, pfn: u64, pages: u64, bytes: &[u8], item: Item) -> Result<(), Failure> {
        let mut chunks = bytes.chunks(PAGE);
        let mut page = [0u8; PAGE];
        for i in 0..pages {
            let chunk = chunks.next().unwrap_or(&[]);
            page.fill(0);
            page[..chunk.len()].copy_from_slice(chunk);
            self.write_page(pfn + i, &page, item)?;
        }
        Ok(())
    }
}

/// The `start_info` page's bytes: the struct at offset 0, zero after it.
fn start_info_page(si: &StartInfo) -> [u8; PAGE] {
    let mut page = [0u8; PAGE];
    let mut put = |offset: usize, bytes: &[u8]| page[offset..offset + bytes.len()].copy_from_slice(bytes);
    put(offset_of!(StartInfo, magic), &si.magic);
    put(offset_of!(StartInfo, nr_pages), &si.nr_pages.to_le_bytes());
    put(offset_of!(StartInfo, shared_info), &si.shared_info.to_le_bytes());
    put(offset_of!(StartInfo, flags), &si.flags.to_le_bytes());
    put(offset_of!(StartInfo, store_mfn), &si.store_mfn.to_le_bytes());
    put(offset_of!(StartInfo, store_evtchn), &si.store_evtchn.to_le_bytes());
    put(offset_of!(StartInfo, console), &si.console);
    put(offset_of!(StartInfo, pt_base), &si.pt_base.to_le_bytes());
    put(offset_of!(StartInfo, nr_pt_frames), &si.nr_pt_frames.to_le_bytes());
    put(offset_of!(StartInfo, mfn_list), &si.mfn_list.to_le_bytes());
    put(offset_of!(StartInfo, mod_start), &si.mod_start.to_le_bytes());
    put(offset_of!(StartInfo, mod_len), &si.mod_len.to_le_bytes());
    put(offset_of!(StartInfo, cmd_line), &si.cmd_line);
    put(offset_of!(StartInfo, first_p2m_pfn), &si.first_p2m_pfn.to_le_bytes());
    put(offset_of!(StartInfo, nr_p2m_frames), &si.nr_p2m_frames.to_le_bytes());
    page
}

/// The shared-info page of a new domain: zero, with every vCPU's upcalls
/// masked (`shared_info_x86_64`).
fn shared_info_page() -> [u8; PAGE] {
    let mut page = [0u8; PAGE];
    for vcpu in 0..MAX_VIRT_CPUS {
        let at = offset_of!(SharedInfo, vcpu_info) + vcpu * size_of::<VcpuInfo>();
        page[at + offset_of!(VcpuInfo, evtchn_upcall_mask)] = 1;
    }
    page
}

/// vCPU 0's initial context, as Xen's `vcpu_x86_64` sets it: `rip` the
/// entry, `rsp` the boot stack's top, `rsi` the `start_info` VA, `rflags`
/// IF, the flat kernel selectors (data selectors null), `kernel_ss/sp` the
/// same stack, in kernel mode and online, `cr3` the L4 at `l4_mfn`, DR6 and
/// DR7 at their reset values; everything else zero.
pub fn initial_context(layout: &Layout, entry: u64, l4_mfn: u64) -> VcpuGuestContext {
    let regs = boot::initial_regs(layout, entry);
    let mut ctx = VcpuGuestContext::zeroed();
    ctx.flags = VGCF_IN_KERNEL | VGCF_ONLINE;
    ctx.user_regs.rip = regs.rip;
    ctx.user_regs.rsp = regs.rsp;
    ctx.user_regs.rsi = regs.rsi;
    ctx.user_regs.rflags = regs.rflags;
    ctx.user_regs.cs = regs.cs;
    ctx.user_regs.ss = regs.ss;
    ctx.user_regs.ds = FLAT_KERNEL_DS;
    ctx.user_regs.es = FLAT_KERNEL_DS;
    ctx.user_regs.fs = FLAT_KERNEL_DS;
    ctx.user_regs.gs = FLAT_KERNEL_DS;
    ctx.kernel_ss = u64::from(regs.ss);
    ctx.kernel_sp = regs.rsp;
    ctx.ctrlreg[3] = xen_pfn_to_cr3(l4_mfn);
    ctx.debugreg[6] = X86_DR6_DEFAULT;
    ctx.debugreg[7] = X86_DR7_DEFAULT;
    ctx
}
