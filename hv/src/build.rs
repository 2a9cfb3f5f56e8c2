//! Building a PV domain from a kernel image: Xen's start of day.
//!
//! [`build_pv`] takes an ELF kernel and a run of machine frames and lays the
//! domain out exactly as Xen's builder does (`abi::boot` computes the layout;
//! this module writes it): kernel segments, the p2m list, `start_info`,
//! zeroed xenstore and console pages, bootstrap page tables (mapped
//! read-only, the hypervisor's L4 slots filled in, present L1 entries
//! user-accessible as for every PV guest), a boot stack, and the hypercall
//! page. It returns the domain and its initial registers. Every check on
//! the image happens before the first frame is written.

use crate::domain::Domain;
use crate::guest::bytes_of;
use crate::layout::{FIRST_RESERVED_L4_SLOT, PAGE_SIZE, RESERVED_L4_SLOTS};
use crate::mm::frame::DomId;
use crate::mm::memmap::FrameRange;
use crate::mm::pagetable::pte;
use crate::mm::Mfn;
use crate::regs::Regs;
use abi::boot::{self, BootError, Kernel, Layout, Role, StartInfoParams};
use abi::start_info::{SIF_INITDOMAIN, SIF_PRIVILEGED};

/// Write access to machine frames.
pub trait MachineFrames {
    /// The bytes of frame `mfn`.
    fn frame(&mut self, mfn: Mfn) -> &mut [u8; 4096];
}

/// What to build.
#[derive(Clone, Copy, Debug)]
pub struct PvDomainSpec<'a> {
    /// The kernel: an ELF64 image with Xen notes.
    pub image: &'a [u8],
    /// Its command line (`start_info.cmd_line`, truncated to 1023 bytes).
    pub cmdline: &'a str,
    /// Its initial ramdisk (a module): loaded after the kernel and named by
    /// `start_info.mod_start` (its address) and `mod_len`, as Xen does.
    pub ramdisk: Option<&'a [u8]>,
    /// The new domain's id.
    pub domid: DomId,
    /// Build the control domain (privileged, `SIF_INITDOMAIN`).
    pub initial_domain: bool,
    /// The domain's memory: guest frame `i` is machine frame `start + i`.
    pub memory: FrameRange,
    /// The domain's shared-info frame (zeroed and prepared by the caller).
    pub shared_info: Mfn,
    /// The hypervisor's entries for L4 slots 256–271.
    pub hypervisor_l4: [u64; RESERVED_L4_SLOTS],
}

/// A built domain, ready to run.
#[derive(Clone, Debug)]
pub struct Built {
    /// The domain, with no page-table base yet: the caller validates the
    /// bootstrap tables (pins `l4` and makes it the base) with the page-type
    /// engine.
    pub domain: Domain,
    /// The bootstrap L4.
    pub l4: Mfn,
    /// Initial registers (Xen's: `rip` = entry, `rsp` = boot stack top,
    /// `rsi` = `start_info`, `rflags` = 0x200, `cs` 0xe033, `ss` 0xe02b).
    pub regs: Regs,
    /// The layout it was built with.
    pub layout: Layout,
    /// Whether the command line was cut to fit `start_info`.
    pub cmdline_truncated: bool,
}

/// Why a domain could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The image or its layout is unusable.
    Boot(BootError),
    /// A kernel segment lies outside the domain's memory.
    SegmentOutsideMemory,
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BuildError::Boot(e) => write!(f, "{e}"),
            BuildError::SegmentOutsideMemory => f.write_str("a kernel segment lies outside the domain's memory"),
        }
    }
}

impl From<BootError> for BuildError {
    fn from(e: BootError) -> Self {
        BuildError::Boot(e)
    }
}

/// Parses and lays out `spec.image` without writing anything: the checks
/// [`build_pv`] makes before it touches memory.
pub fn plan<'a>(spec: &PvDomainSpec<'a>) -> Result<(Kernel<'a>, Layout), BuildError> {
    let role = if spec.initial_domain { Role::Dom0 } else { Role::DomU };
    let kernel = Kernel::parse(spec.image, crate::hypercall::features(spec.initial_domain), role)?;
    let ramdisk_len = spec.ramdisk.map(|r| r.len() as u64);
    let layout = Layout::compute(&kernel.layout_params(spec.memory.len(), ramdisk_len)).map_err(BootError::from)?;
    for seg in kernel.elf.segments() {
        let va = kernel.placement.segment_va(&seg);
        let last = va.checked_add(seg.memsz.max(1) - 1).ok_or(BuildError::SegmentOutsideMemory)?;
        if layout.pfn_of(va).is_none() || layout.pfn_of(last).is_none() {
            return Err(BuildError::SegmentOutsideMemory);
        }
        kernel.elf.segment_data(&seg).map_err(BootError::from)?;
    }
    Ok((kernel, layout))
}

/// Builds the domain described by `spec` into `mem`.
pub fn build_pv(spec: &PvDomainSpec<'_>, mem: &mut impl MachineFrames) -> Result<Built, BuildError> {
    let (kernel, layout) = plan(spec)?;
    let first = spec.memory.start;
    let mfn_of = |pfn: u64| first + pfn;

    // Mapped-page tables are checked by `pagetables::build` before it emits
    // anything; run it first into a dry sink so a failure writes nothing.
    boot::pagetables::build(&layout, mfn_of, |_, _, _| {}).map_err(BootError::from)?;

    for mfn in spec.memory.start..spec.memory.end {
        mem.frame(mfn).fill(0);
    }
    let mut write = |va: u64, bytes: &[u8]| {
        let mut done = 0;
        while done < bytes.len() {
            let at = va + done as u64;
            // `plan` checked every segment lies in the mapping.
            let pfn = layout.pfn_of(at).expect("checked by plan()");
            let off = (at % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - off).min(bytes.len() - done);
            mem.frame(mfn_of(pfn))[off..off + n].copy_from_slice(&bytes[done..done + n]);
            done += n;
        }
    };

    for seg in kernel.elf.segments() {
        let data = kernel.elf.segment_data(&seg).map_err(BootError::from)?;
        write(kernel.placement.segment_va(&seg), data);
    }

    if let (Some(ramdisk), Some(region)) = (spec.ramdisk, layout.ramdisk()) {
        write(region.va, ramdisk);
    }

    let p2m = layout.p2m();
    for pfn in 0..layout.nr_pages() {
        write(p2m.va + 8 * pfn, &mfn_of(pfn).to_le_bytes());
    }

    let flags = if spec.initial_domain { SIF_PRIVILEGED | SIF_INITDOMAIN } else { 0 };
    // Dom0 gets no xenstore or console ring from a builder: it starts them.
    let si = boot::start_info(
        &layout,
        &StartInfoParams {
            shared_info_maddr: spec.shared_info * PAGE_SIZE,
            flags,
            store_mfn: 0,
            store_evtchn: 0,
            console_mfn: 0,
            console_evtchn: 0,
            cmdline: spec.cmdline.as_bytes(),
        },
    );
    write(layout.start_info().va, bytes_of(&si.start_info));

    let pt = layout.page_tables();
    let counts = layout.pt_counts();
    let first_l1 = 1 + counts.l3 + counts.l2;
    boot::pagetables::build(&layout, mfn_of, |table, slot, entry| {
        // Every present L1 entry of a 64-bit PV guest is user-accessible:
        // its kernel runs in ring 3 too.
        let entry = if table as u64 >= first_l1 && entry & pte::P != 0 { entry | pte::U } else { entry };
        let frame = mem.frame(mfn_of(pt.pfn + table as u64));
        frame[slot * 8..slot * 8 + 8].copy_from_slice(&entry.to_le_bytes());
    })
    .map_err(BootError::from)?;
    let l4 = mfn_of(pt.pfn);
    let l4_frame = mem.frame(l4);
    for (i, e) in spec.hypervisor_l4.iter().enumerate() {
        let slot = FIRST_RESERVED_L4_SLOT + i;
        l4_frame[slot * 8..slot * 8 + 8].copy_from_slice(&e.to_le_bytes());
    }

    if let Some(va) = kernel.placement.hypercall_page {
        let pfn = layout.pfn_of(va).expect("abi::boot checked the hypercall page lies in the kernel");
        abi::hypercall_page::write_hypercall_page(mem.frame(mfn_of(pfn)));
    }

    let init = boot::initial_regs(&layout, kernel.placement.entry);
    let regs = Regs {
        rip: init.rip,
        rsp: init.rsp,
        rsi: init.rsi,
        rflags: init.rflags,
        cs: init.cs.into(),
        ss: init.ss.into(),
        ..Regs::default()
    };
    let mut domain = Domain::new(spec.domid, spec.initial_domain);
    // The initial domain drives the devices the hypervisor does not.
    domain.vcpu.io_ports = spec.initial_domain;
    domain.nr_pages = spec.memory.len();
    domain.max_pages = spec.memory.len();
    Ok(Built { domain, l4, regs, layout, cmdline_truncated: si.cmdline_truncated })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::pagetable::{lookup, TableMemory};
    use abi::boot::testimage::TestElf;
    use abi::start_info::StartInfo;

    /// Machine memory: frames `0..n` in a vector, stored as words so that
    /// they are aligned for page-table access.
    struct Machine(Vec<[u64; 512]>);

    impl MachineFrames for Machine {
        fn frame(&mut self, mfn: Mfn) -> &mut [u8; 4096] {
            let words = &mut self.0[mfn as usize];
            // SAFETY: same size; u8 has no alignment requirement and every
            // byte of a u64 array is initialised.
            unsafe { &mut *(words as *mut [u64; 512]).cast::<[u8; 4096]>() }
        }
    }

    impl TableMemory for Machine {
        fn table(&mut self, mfn: Mfn) -> &mut [u64; 512] {
            &mut self.0[mfn as usize]
        }
        fn alloc_table(&mut self) -> Option<Mfn> {
            None
        }
    }

    const FIRST: u64 = 0x100;
    const HV_SLOTS: [u64; RESERVED_L4_SLOTS] = {
        let mut s = [0; RESERVED_L4_SLOTS];
        s[0] = 0xabc_0000 | 7;
        s[6] = 0xdef_0000 | 3;
        s
    };

    fn spec(image: &[u8], pages: u64) -> PvDomainSpec<'_> {
        PvDomainSpec {
            image,
            cmdline: "selftest loglvl=all",
            ramdisk: None,
            domid: 0,
            initial_domain: true,
            memory: FrameRange { start: FIRST, end: FIRST + pages },
            shared_info: 0x42,
            hypervisor_l4: HV_SLOTS,
        }
    }

    /// The Linux-shaped test kernel without its `!writable_page_tables`
    /// requirement, which this hypervisor does not offer.
    fn linux_like() -> Vec<u8> {
        let mut t = TestElf::linux_like();
        t.notes.retain(|n| n.note_type != abi::elfnote::XEN_ELFNOTE_FEATURES);
        t.build()
    }

    fn machine(frames: u64) -> Machine {
        Machine(vec![[0; 512]; frames as usize])
    }

    fn read_u64(m: &mut Machine, mfn: Mfn, off: usize) -> u64 {
        u64::from_le_bytes(m.frame(mfn)[off..off + 8].try_into().unwrap())
    }

    #[test]
    fn builds_xens_start_of_day() {
        let image = linux_like();
        let pages = 8192;
        let mut m = machine(FIRST + pages);
        m.frame(FIRST + 5000)[0] = 0xff; // stale data must be scrubbed
        let s = spec(&image, pages);
        let b = build_pv(&s, &mut m).unwrap();
        let l = b.layout;

        // start_info.
        let si_mfn = FIRST + l.start_info().pfn;
        let si: StartInfo = read_start_info(&mut m, si_mfn);
        assert_eq!(&si.magic[..15], b"xen-3.0-x86_64\0");
        assert_eq!(si.nr_pages, pages);
        assert_eq!(si.shared_info, 0x42 * 4096);
        assert_eq!(si.flags, SIF_PRIVILEGED | SIF_INITDOMAIN);
        assert_eq!((si.pt_base, si.nr_pt_frames), (l.page_tables().va, l.page_tables().pages));
        assert_eq!(si.mfn_list, l.p2m().va);
        assert_eq!(&si.cmd_line[..20], b"selftest loglvl=all\0");

        // Registers.
        assert_eq!(b.regs.rip, abi::boot::testimage::LINUX_ENTRY);
        assert_eq!((b.regs.rsi, b.regs.rsp), (l.start_info().va, l.stack_top()));
        assert_eq!((b.regs.cs, b.regs.ss, b.regs.rflags), (0xe033, 0xe02b, 0x200));
        assert_eq!(b.l4, FIRST + l.page_tables().pfn);
        assert!(b.domain.privileged);

        // p2m.
        let p2m_mfn = FIRST + l.p2m().pfn;
        assert_eq!(read_u64(&mut m, p2m_mfn, 0), FIRST);
        assert_eq!(read_u64(&mut m, p2m_mfn, 8 * 100), FIRST + 100);

        // Page tables: every mapped page translates, user-accessible; the
        // page tables are read-only; the hypervisor slots are ours.
        let l4 = FIRST + l.page_tables().pfn;
        let base = abi::boot::testimage::LINUX_VIRT_BASE;
        for pfn in 0..l.mapped_pages() {
            let e = lookup(&mut m, l4, base + pfn * 4096).unwrap_or_else(|| panic!("pfn {pfn} unmapped"));
            assert_eq!((e & pte::ADDR) >> 12, FIRST + pfn);
            assert_eq!(e & (pte::P | pte::U), pte::P | pte::U);
            let is_pt = (l.page_tables().pfn..l.page_tables().pfn + l.page_tables().pages).contains(&pfn);
            assert_eq!(e & pte::RW == 0, is_pt, "pfn {pfn}");
        }
        assert_eq!(lookup(&mut m, l4, base + l.mapped_pages() * 4096), None);
        let l4t = *m.table(l4);
        assert_eq!(&l4t[256..272], &HV_SLOTS);

        // Kernel bytes, hypercall page, scrubbing.
        let hc_pfn = l.pfn_of(abi::boot::testimage::LINUX_HYPERCALL_PAGE).unwrap();
        assert_eq!(&m.frame(FIRST + hc_pfn)[17 * 32..17 * 32 + 4], &[0x51, 0x41, 0x53, 0xb8]);
        assert_eq!(m.frame(FIRST + 5000)[0], 0);
        let kernel_pfn = l.pfn_of(0xffff_ffff_8100_0000).unwrap();
        assert_eq!(m.frame(FIRST + kernel_pfn)[1], 31u8.wrapping_add(1), "segment data copied");
    }

    /// Reads a StartInfo out of a frame.
    fn read_start_info(m: &mut Machine, mfn: Mfn) -> StartInfo {
        let bytes = m.frame(mfn)[..core::mem::size_of::<StartInfo>()].to_vec();
        let mut fake = crate::guest::fake::FakeMemory::new(0x1000, bytes.len());
        fake.bytes = bytes;
        crate::guest::read_obj(&mut fake, crate::guest::GuestPtr(0x1000)).unwrap()
    }

    /// Dom0's ramdisk module is loaded after the kernel and named in
    /// `start_info`, as Xen does.
    #[test]
    fn the_ramdisk_is_loaded_and_named_in_start_info() {
        let image = TestElf::minimal().build();
        let ramdisk: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut m = machine(FIRST + 1024);
        let s = PvDomainSpec { ramdisk: Some(&ramdisk), ..spec(&image, 1024) };
        let b = build_pv(&s, &mut m).unwrap();
        let region = b.layout.ramdisk().expect("a ramdisk region");
        let si = read_start_info(&mut m, FIRST + b.layout.start_info().pfn);
        assert_eq!((si.mod_start, si.mod_len), (region.va, 10_000));
        let mut back = Vec::new();
        for page in 0..region.pages {
            back.extend_from_slice(m.frame(FIRST + region.pfn + page));
        }
        assert_eq!(&back[..10_000], &ramdisk[..]);
        assert!(back[10_000..].iter().all(|&b| b == 0), "the rest of its last page is zero");
    }

    #[test]
    fn domus_get_no_privilege_flags() {
        let image = TestElf::minimal().build();
        let mut m = machine(FIRST + 1024);
        let s = PvDomainSpec { initial_domain: false, domid: 3, ..spec(&image, 1024) };
        let b = build_pv(&s, &mut m).unwrap();
        let si = read_start_info(&mut m, FIRST + b.layout.start_info().pfn);
        assert_eq!(si.flags, 0);
        assert!(!b.domain.privileged);
        assert_eq!(b.domain.id, 3);
    }

    #[test]
    fn bad_images_and_small_memory_fail_before_writing() {
        let mut m = machine(FIRST + 64);
        m.frame(FIRST)[0] = 0x77;
        let junk = vec![0x7f; 100];
        let e = build_pv(&spec(&junk, 64), &mut m).unwrap_err();
        assert!(matches!(e, BuildError::Boot(_)), "{e:?}");
        assert!(e.to_string().contains("ELF"), "{e}");
        let image = linux_like();
        let e = build_pv(&spec(&image, 64), &mut m).unwrap_err();
        assert!(matches!(e, BuildError::Boot(BootError::Layout(_))), "{e:?}");
        // A kernel that requires a feature we do not offer is refused.
        let e = build_pv(&spec(&TestElf::linux_like().build(), 8192), &mut m).unwrap_err();
        assert!(e.to_string().contains("writable_page_tables"), "{e}");
        assert_eq!(m.frame(FIRST)[0], 0x77, "nothing written");
    }
}
