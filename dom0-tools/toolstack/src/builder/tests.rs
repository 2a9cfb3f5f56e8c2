//! The builder against the fake hypervisor: what a built domain holds, what every failure leaves behind.
//!
//! The oracle reads the domain the way its kernel will: from the L4 the
//! vCPU's `cr3` names, through the page tables the builder wrote, at the
//! addresses `start_info` gives, and checks `start_info` at the byte offsets
//! of the ABI fact sheet (`xen-pv-abi.md` §1), not through the builder's own
//! serializer.

use abi::boot::layout::PAGE_SIZE;
use abi::boot::pagetables::{L1_PROT, L1_PROT_RO, PTE_PRESENT, UPPER_PROT};
use abi::boot::testimage::{Load, NotesIn, TestElf, TestNote, LINUX_ENTRY};
use abi::boot::{Elf, Item, Kernel, Role};
use abi::elfnote::*;
use abi::sched::{XENFEAT_DOM0, XENFEAT_PAE_PGDIR_ABOVE_4GB};
use abi::Errno;

use super::fake::{Fake, Fault, ADDR_MASK};
use super::*;
use crate::config::DomainConfig;

/// What this project's hypervisor offers a domU (`hv::hypercall::version::features`).
const FEATURES: u32 = 1 << XENFEAT_PAE_PGDIR_ABOVE_4GB;

fn config(memory_mib: u32) -> DomainConfig {
    DomainConfig::parse(&format!(
        "name = \"guest\"\nkernel = \"guest.elf\"\nmemory = {memory_mib}\nvcpus = 2\n\
         cmdline = \"console=hvc0 selftest\"\nweight = 512\ncap = 150\n"
    ))
    .unwrap()
}

fn options() -> BuildOptions<'static> {
    BuildOptions::default()
}

fn minimal() -> Vec<u8> {
    TestElf::minimal().build()
}

/// Linux-shaped, without `!writable_page_tables`, which is not offered.
fn linux_like() -> TestElf {
    let mut t = TestElf::linux_like();
    t.notes.retain(|n| n.note_type != XEN_ELFNOTE_FEATURES);
    t
}

/// Reads the guest's memory through the page tables under `l4`.
struct Guest<'f> {
    fake: &'f Fake,
    l4: u64,
}

impl Guest<'_> {
    fn entry(&self, mfn: u64, slot: u64) -> u64 {
        let data = &self.fake.frame(mfn).data();
        let at = slot as usize * 8;
        u64::from_le_bytes(data[at..at + 8].try_into().unwrap())
    }

    /// `(mfn, L1 flags)` mapping `va`, or `None` if unmapped.
    fn translate(&self, va: u64) -> Option<(u64, u64)> {
        let mut table = self.l4;
        for shift in [39, 30, 21] {
            let e = self.entry(table, (va >> shift) & 511);
            if e & PTE_PRESENT == 0 {
                return None;
            }
            assert_eq!(e & !ADDR_MASK, UPPER_PROT, "upper-level flags on the way to {va:#x}");
            table = (e & ADDR_MASK) >> 12;
        }
        let e = self.entry(table, (va >> 12) & 511);
        (e & PTE_PRESENT != 0).then_some(((e & ADDR_MASK) >> 12, e & !ADDR_MASK))
    }

    fn read(&self, va: u64, len: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len as usize);
        let mut at = va;
        while at < va + len {
            let (mfn, _) = self.translate(at).unwrap_or_else(|| panic!("{at:#x} is not mapped"));
            let off = (at % PAGE_SIZE) as usize;
            let n = ((PAGE_SIZE as usize) - off).min((va + len - at) as usize);
            out.extend_from_slice(&self.fake.frame(mfn).data()[off..off + n]);
            at += n as u64;
        }
        out
    }

    fn u64_at(&self, va: u64) -> u64 {
        u64::from_le_bytes(self.read(va, 8).try_into().unwrap())
    }

    fn u32_at(&self, va: u64) -> u32 {
        u32::from_le_bytes(self.read(va, 4).try_into().unwrap())
    }
}

/// Checks everything a PV kernel expects of the domain `built`, built from
/// `image` with `config` and `ramdisk`.
fn check_domain(fake: &Fake, built: &Built, image: &[u8], config: &DomainConfig, ramdisk: &[u8]) {
    let dom = fake.domain(built.domid);
    let l = &built.layout;
    let nr_pages = u64::from(config.memory_mib) * 256;

    // The domain itself.
    assert!(dom.paused, "the builder must not unpause");
    assert_eq!(
        dom.create,
        CreateDomain {
            max_vcpus: config.vcpus,
            max_evtchn_port: 1023,
            max_grant_frames: 64,
            max_maptrack_frames: 1024
        }
    );
    assert_eq!(dom.max_kib, Some(u64::from(config.memory_mib) * 1024));
    assert_eq!(dom.sched, Some((config.weight, config.cap)));
    assert_eq!(dom.ports, vec![(1, 0), (2, 0)], "xenstore then console, both to dom0");
    assert_eq!(dom.pages.len() as u64, nr_pages);
    assert_eq!(l.nr_pages(), nr_pages);

    // vCPU 0, against literal values (Xen's vcpu_x86_64).
    let ctx = dom.vcpu0.as_deref().expect("vCPU 0 context set");
    let mut want = VcpuGuestContext::zeroed();
    want.flags = (1 << 2) | (1 << 5);
    want.user_regs.rip = built.entry;
    want.user_regs.rsp = l.boot_stack().va + 4096;
    want.user_regs.rsi = l.start_info().va;
    want.user_regs.rflags = 0x200;
    want.user_regs.cs = 0xe033;
    want.user_regs.ss = 0xe02b;
    want.kernel_ss = 0xe02b;
    want.kernel_sp = l.boot_stack().va + 4096;
    want.ctrlreg[3] = built.l4_mfn << 12;
    want.debugreg[6] = 0xffff_0ff0;
    want.debugreg[7] = 0x400;
    assert_eq!(*ctx, want);
    assert_eq!(dom.pinned_l4, Some(built.l4_mfn));

    // start_info at rsi, at the fact sheet's offsets.
    let g = Guest { fake, l4: ctx.ctrlreg[3] >> 12 };
    let si = ctx.user_regs.rsi;
    assert_eq!(&g.read(si, 32)[..], b"xen-3.0-x86_64\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
    assert_eq!(g.u64_at(si + 0x20), nr_pages, "nr_pages");
    assert_eq!(g.u64_at(si + 0x28), dom.shared_info << 12, "shared_info");
    assert_eq!(g.u32_at(si + 0x30), 1 << 4, "flags: SIF_VIRT_P2M_4TOOLS only, not privileged");
    let mfn_list = g.u64_at(si + 0x68);
    assert_eq!(mfn_list, l.p2m().va);
    let p2m: Vec<u64> =
        g.read(mfn_list, nr_pages * 8).chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(p2m, dom.pages, "p2m list = the frames populated, in pfn order");
    assert_eq!((g.u64_at(si + 0x38), g.u32_at(si + 0x40)), (p2m[l.xenstore().pfn as usize], 1), "store");
    assert_eq!((g.u64_at(si + 0x48), g.u32_at(si + 0x50)), (p2m[l.console().pfn as usize], 2), "console.domU");
    assert_eq!((built.store_mfn, built.store_evtchn), (g.u64_at(si + 0x38), 1));
    assert_eq!((built.console_mfn, built.console_evtchn), (g.u64_at(si + 0x48), 2));
    assert_eq!(g.u64_at(si + 0x58), l.page_tables().va, "pt_base");
    assert_eq!(g.u64_at(si + 0x60), l.page_tables().pages, "nr_pt_frames");
    let (mod_start, mod_len) = (g.u64_at(si + 0x70), g.u64_at(si + 0x78));
    let cmdline = g.read(si + 0x80, 1024);
    let len = config.cmdline.len();
    assert_eq!(&cmdline[..len], config.cmdline.as_bytes());
    assert!(cmdline[len..].iter().all(|&b| b == 0));
    assert_eq!((g.u64_at(si + 0x480), g.u64_at(si + 0x488)), (0, 0), "first_p2m_pfn, nr_p2m_frames");
    assert!(g.read(si + 1168, 4096 - 1168).iter().all(|&b| b == 0), "start_info page tail");

    // The M2P knows every frame.
    for (pfn, &mfn) in p2m.iter().enumerate() {
        assert_eq!(fake.m2p(mfn), Some(pfn as u64), "M2P of mfn {mfn:#x}");
    }

    // Page tables: every pfn of the mapping at its VA, the tables read-only,
    // nothing mapped outside.
    assert_eq!(built.l4_mfn, p2m[l.page_tables().pfn as usize]);
    for pfn in 0..l.mapped_pages() {
        let va = l.virt_base() + pfn * PAGE_SIZE;
        let prot = if l.page_tables().contains(va) { L1_PROT_RO } else { L1_PROT };
        assert_eq!(g.translate(va), Some((p2m[pfn as usize], prot)), "pfn {pfn} at {va:#x}");
    }
    assert_eq!(g.translate(l.end()), None);
    if l.virt_base() > 0 {
        assert_eq!(g.translate(l.virt_base() - PAGE_SIZE), None);
    }

    // The kernel: each segment's bytes at p_paddr + virt_offset, zero past
    // p_filesz; except the hypercall page, which the hypervisor wrote.
    let kernel = Kernel::parse(image, FEATURES, Role::DomU).unwrap();
    let hc = kernel.placement.hypercall_page;
    for seg in kernel.elf.segments() {
        let va = kernel.placement.segment_va(&seg);
        let data = kernel.elf.segment_data(&seg).unwrap();
        let got = g.read(va, seg.memsz);
        for (i, &b) in got.iter().enumerate() {
            let at = va + i as u64;
            if hc.is_some_and(|h| (h..h + PAGE_SIZE).contains(&at)) {
                continue;
            }
            assert_eq!(b, data.get(i).copied().unwrap_or(0), "segment {} byte {i} at {at:#x}", seg.index);
        }
    }
    if let Some(h) = hc {
        let mut page = [0u8; 4096];
        abi::hypercall_page::write_hypercall_page(&mut page);
        assert_eq!(g.read(h, 4096), page.to_vec(), "hypercall page");
        assert_eq!(dom.hypercall_page, Some(p2m[l.pfn_of(h).unwrap() as usize]));
    } else {
        assert_eq!(dom.hypercall_page, None);
    }

    // Ramdisk, zeroed rings, zeroed boot stack.
    match l.ramdisk() {
        Some(r) => {
            assert_eq!((mod_start, mod_len), (r.va, ramdisk.len() as u64));
            assert_eq!(g.read(r.va, ramdisk.len() as u64), ramdisk);
            assert!(g.read(r.va + ramdisk.len() as u64, r.end() - r.va - ramdisk.len() as u64).iter().all(|&b| b == 0));
        }
        None => assert_eq!((mod_start, mod_len), (0, 0)),
    }
    for item in [Item::Xenstore, Item::Console, Item::BootStack] {
        let r = l.region(item).unwrap();
        assert!(g.read(r.va, 4096).iter().all(|&b| b == 0), "{item} page is zero");
    }

    // Shared info: zero, every vCPU's upcalls masked.
    let shared = fake.frame(dom.shared_info).data();
    for (i, &b) in shared.iter().enumerate() {
        let want = u8::from(i < 32 * 64 && i % 64 == 1);
        assert_eq!(b, want, "shared info byte {i:#x}");
    }

    // Every page from the kernel to the boot stack was written in full (so
    // nothing depends on frames arriving zeroed); nothing else was written.
    let written = l.kernel().pfn..l.boot_stack().end_pfn();
    for (pfn, &mfn) in (0u64..).zip(&p2m) {
        let bytes = fake.frame(mfn).written_bytes();
        if written.contains(&pfn) {
            assert_eq!(bytes, 4096, "pfn {pfn} written in full");
        } else {
            assert_eq!(bytes, 0, "pfn {pfn} not written");
        }
    }
}

/// Builds with a fresh fake of `frames` frames and returns both.
fn build_with(frames: usize, image: &[u8], config: &DomainConfig) -> (Fake, Result<Built, BuildError>) {
    let mut fake = Fake::new(frames, FEATURES);
    let result = build(&mut fake, image, config, &options());
    (fake, result)
}

// --- Good images --------------------------------------------------------------

#[test]
fn minimal_kernel_gets_xens_start_of_day() {
    let image = minimal();
    let cfg = config(8);
    let (fake, built) = build_with(4096, &image, &cfg);
    let built = built.unwrap();
    assert_eq!(built.domid, 1);
    assert_eq!(built.entry, 0);
    check_domain(&fake, &built, &image, &cfg, &[]);
}

#[test]
fn linux_shaped_kernel_high_in_the_address_space() {
    let t = linux_like();
    let image = t.build();
    let cfg = config(24);
    let (fake, built) = build_with(8192, &image, &cfg);
    let built = built.unwrap();
    assert_eq!(built.entry, LINUX_ENTRY);
    assert_eq!(built.layout.kernel().pfn, 0x1000, "16 MiB of unused pfns below the kernel");
    check_domain(&fake, &built, &image, &cfg, &[]);
}

#[test]
fn ramdisk_follows_the_kernel() {
    let image = minimal();
    let cfg = config(8);
    let ramdisk: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
    let opts = BuildOptions { ramdisk: Some(&ramdisk), ..options() };
    let mut fake = Fake::new(4096, FEATURES);
    let built = build(&mut fake, &image, &cfg, &opts).unwrap();
    let r = built.layout.ramdisk().unwrap();
    assert_eq!((r.pfn, r.pages), (built.layout.kernel().end_pfn(), 3));
    check_domain(&fake, &built, &image, &cfg, &ramdisk);
}

#[test]
fn segments_sharing_pages_and_unaligned_segments() {
    // Three segments: one ending mid-page, one starting in that page, one
    // starting at an odd address with bss; all in four pages.
    let mut t = TestElf::minimal();
    let data = |len: usize, seed: u8| (0..len).map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed)).collect();
    t.loads = vec![
        Load { vaddr: 0, paddr: 0, data: data(0x1100, 1), memsz: 0x1200, flags: 5 },
        Load { vaddr: 0x1200, paddr: 0x1200, data: data(0x900, 2), memsz: 0x900, flags: 6 },
        Load { vaddr: 0x2b03, paddr: 0x2b03, data: data(0x10, 3), memsz: 0x1000, flags: 6 },
    ];
    t.notes.retain(|n| n.note_type != XEN_ELFNOTE_HYPERCALL_PAGE);
    let image = t.build();
    let cfg = config(4);
    let (fake, built) = build_with(2048, &image, &cfg);
    let built = built.unwrap();
    assert_eq!(built.layout.kernel().pages, 4);
    check_domain(&fake, &built, &image, &cfg, &[]);
}

#[test]
fn operations_come_in_xens_order() {
    let image = minimal();
    let (fake, built) = build_with(2048, &image, &config(4));
    let l = built.unwrap().layout;
    let mut runs: Vec<(&str, usize)> = Vec::new();
    for &call in &fake.calls {
        match runs.last_mut() {
            Some((name, n)) if *name == call => *n += 1,
            _ => runs.push((call, 1)),
        }
    }
    let layout_pages = (l.boot_stack().end_pfn() - l.kernel().pfn) as usize;
    assert_eq!(
        runs,
        vec![
            ("xen_features", 1),
            ("free_pages", 1),
            ("create_domain", 1),
            ("set_max_mem", 1),
            ("set_sched_credit", 1),
            ("alloc_unbound", 2),
            ("populate_physmap", 1024 / POPULATE_BATCH),
            ("set_m2p", 1024),
            ("shared_info_frame", 1),
            ("write_frame", layout_pages),
            ("hypercall_init", 1),
            ("pin_l4", 1),
            ("write_frame", 1),
            ("set_vcpu_context", 1),
        ]
    );
}

#[test]
fn backends_and_limits_come_from_the_options() {
    let image = minimal();
    let opts = BuildOptions {
        console_domid: 3,
        xenstore_domid: 2,
        max_evtchn_port: 63,
        max_grant_frames: 4,
        max_maptrack_frames: 8,
        ramdisk: Some(&[]),
    };
    let mut fake = Fake::new(2048, FEATURES);
    let built = build(&mut fake, &image, &config(4), &opts).unwrap();
    let dom = fake.domain(built.domid);
    assert_eq!(dom.ports, vec![(1, 2), (2, 3)]);
    assert_eq!(
        dom.create,
        CreateDomain { max_vcpus: 2, max_evtchn_port: 63, max_grant_frames: 4, max_maptrack_frames: 8 }
    );
    assert_eq!(built.layout.ramdisk(), None, "an empty ramdisk is none");
}

#[test]
fn two_domains_side_by_side() {
    let image = minimal();
    let cfg = config(4);
    let mut fake = Fake::new(4096, FEATURES);
    let a = build(&mut fake, &image, &cfg, &options()).unwrap();
    let b = build(&mut fake, &image, &cfg, &options()).unwrap();
    assert_eq!((a.domid, b.domid), (1, 2));
    check_domain(&fake, &a, &image, &cfg, &[]);
    check_domain(&fake, &b, &image, &cfg, &[]);
    fake.destroy_domain(1).unwrap();
    fake.destroy_domain(2).unwrap();
    assert!(fake.is_clean());
}

// --- Failures after creation ----------------------------------------------------

#[test]
fn every_failure_point_destroys_the_domain() {
    let image = minimal();
    let cfg = config(4);
    let (good, built) = build_with(2048, &image, &cfg);
    built.unwrap();
    let errnos = [Errno::ENOMEM, Errno::EINVAL, Errno::EPERM, Errno::EBUSY, Errno::ESRCH, Errno::EFAULT];
    for (k, &name) in good.calls.iter().enumerate() {
        let errno = errnos[k % errnos.len()];
        let mut fake = Fake::new(2048, FEATURES);
        fake.fault = Some((k, Fault::Errno(errno)));
        let err = build(&mut fake, &image, &cfg, &options()).unwrap_err();
        let BuildError::Op(failure) = err else { panic!("call {k} ({name}): {err:?}") };
        assert_eq!(failure.step.name(), name, "call {k}");
        assert_eq!(failure.cause, Cause::Errno(errno));
        assert_eq!(fake.calls.len(), k + 1, "stopped at the failing call");
        assert!(fake.is_clean(), "call {k} ({name}) left something behind");
        let message = err.to_string();
        assert!(message.starts_with(name) && !message.contains('\n'), "{message}");
    }
}

/// The index of the `nth` call named `name` in a good build of `image`.
fn call_index(image: &[u8], cfg: &DomainConfig, name: &str, nth: usize) -> usize {
    let (good, built) = build_with(2048, image, cfg);
    built.unwrap();
    good.calls.iter().enumerate().filter(|&(_, &c)| c == name).nth(nth).unwrap().0
}

#[test]
fn failure_messages_name_the_step_and_the_cause() {
    let image = minimal();
    let cfg = config(4);
    let run = |name, nth, fault| {
        let mut fake = Fake::new(2048, FEATURES);
        fake.fault = Some((call_index(&image, &cfg, name, nth), fault));
        let err = build(&mut fake, &image, &cfg, &options()).unwrap_err();
        assert!(fake.is_clean());
        err.to_string()
    };
    let huge = "the hypervisor returned machine frame 0x200000000000, beyond the largest a page table can hold";
    assert_eq!(run("populate_physmap", 0, Fault::Errno(Errno::ENOMEM)), "populate_physmap: out of memory (-ENOMEM)");
    assert_eq!(
        run("populate_physmap", 0, Fault::ShortPopulate),
        "populate_physmap: out of memory (populated 256 of 512 pages)"
    );
    assert_eq!(run("populate_physmap", 1, Fault::HugeMfn), format!("populate_physmap: {huge}"));
    assert_eq!(run("shared_info_frame", 0, Fault::HugeSharedInfo), format!("shared_info_frame: {huge}"));
    assert_eq!(run("write_frame", 0, Fault::Errno(Errno::EFAULT)), "write_frame (kernel): bad address (-EFAULT)");
    assert_eq!(
        run("alloc_unbound", 0, Fault::Errno(Errno::ENOSPC)),
        "alloc_unbound (xenstore): no space left (-ENOSPC)"
    );
    assert_eq!(run("alloc_unbound", 1, Fault::Errno(Errno::EMFILE)), "alloc_unbound (console): failed (-EMFILE)");
    assert_eq!(run("create_domain", 0, Fault::Errno(Errno::EPERM)), "create_domain: operation not permitted (-EPERM)");
    assert_eq!(run("pin_l4", 0, Fault::Errno(Errno::EINVAL)), "pin_l4: invalid argument (-EINVAL)");
    let writes = {
        let (good, _) = build_with(2048, &image, &cfg);
        good.calls.iter().filter(|&&c| c == "write_frame").count()
    };
    let last_write = run("write_frame", writes - 1, Fault::Errno(Errno::EIO));
    assert_eq!(last_write, "write_frame (shared info): I/O error (-EIO)");
}

#[test]
fn free_memory_shrinks_as_domains_are_built() {
    let image = minimal();
    let mut fake = Fake::new(2048, FEATURES);
    // 1024 pages and a shared-info frame.
    let first = build(&mut fake, &image, &config(4), &options()).unwrap();
    let err = build(&mut fake, &image, &config(4), &options()).unwrap_err();
    assert_eq!(err.to_string(), "memory: 4 MiB asked, max is 4092 KiB (the hypervisor's free memory)");
    fake.destroy_domain(first.domid).unwrap();
    assert!(fake.is_clean());
}

#[test]
fn a_domain_that_cannot_be_destroyed_is_reported() {
    let image = minimal();
    let cfg = config(4);
    let mut fake = Fake::new(2048, FEATURES);
    fake.fault = Some((call_index(&image, &cfg, "pin_l4", 0), Fault::Errno(Errno::EINVAL)));
    fake.destroy_fails = true;
    let err = build(&mut fake, &image, &cfg, &options()).unwrap_err();
    assert_eq!(err.left_behind(), Some(1));
    assert!(matches!(err, BuildError::LeftBehind { domid: 1, errno: Errno::EBUSY, .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "pin_l4: invalid argument (-EINVAL); destroying domain 1 failed too: busy (-EBUSY); it is left behind"
    );
    assert_eq!(fake.domain_count(), 1);
    fake.destroy_fails = false;
    fake.destroy_domain(1).unwrap();
    assert!(fake.is_clean());
}

// --- Refused before anything is created ------------------------------------------

/// Asserts `image` is refused with only the feature query made.
fn refused(image: &[u8], memory_mib: u32) -> BuildError {
    let (fake, result) = build_with(8192, image, &config(memory_mib));
    let err = result.unwrap_err();
    assert_eq!(fake.calls, ["xen_features"], "{err}");
    assert!(fake.is_clean());
    let message = err.to_string();
    assert!(!message.is_empty() && !message.contains('\n'), "{message:?}");
    err
}

#[test]
fn malformed_images_are_refused_before_anything_is_created() {
    let good = minimal();
    for len in [0, 3, 4, 63, 64, 100, good.len() / 2, good.len() - 1] {
        let err = refused(&good[..len], 8);
        assert!(matches!(err, BuildError::Kernel(ImageError::Boot(_))), "cut at {len}: {err:?}");
    }
    assert_eq!(refused(b"MZ\x90\x00this is not ELF", 8).to_string(), "kernel: not an ELF file (bad magic)");
    let mut class32 = good.clone();
    class32[4] = 1;
    assert_eq!(refused(&class32, 8).to_string(), "kernel: ELF is 32-bit; a 64-bit PV kernel is required");

    let mut t = TestElf::minimal();
    t.notes.clear();
    assert_eq!(refused(&t.build(), 8).to_string(), "kernel: no Xen ELF notes found; not a Xen PV kernel");
    t.xen_guest = Some(b"GUEST_OS=linux,XEN_VER=xen-3.0\0".to_vec());
    assert!(refused(&t.build(), 8).to_string().starts_with("kernel: legacy __xen_guest section"));

    // Features: one the hypervisor lacks, and dom0-only kernels.
    let err = refused(&TestElf::linux_like().build(), 24);
    assert!(err.to_string().contains("requires feature \"writable_page_tables\""), "{err}");
    let mut t = TestElf::minimal();
    t.notes.push(TestNote::xen_str(XEN_ELFNOTE_FEATURES, "!dom0"));
    assert_eq!(
        refused(&t.build(), 8).to_string(),
        "kernel: kernel requires feature \"dom0\" and cannot run as an unprivileged domain"
    );
}

#[test]
fn overlapping_segments_are_refused() {
    let mut t = TestElf::minimal();
    t.loads.push(Load { vaddr: 0x1000, paddr: 0x1000, data: vec![0xee; 0x100], memsz: 0x2000, flags: 6 });
    t.notes.retain(|n| n.note_type != XEN_ELFNOTE_HYPERCALL_PAGE);
    assert_eq!(
        refused(&t.build(), 8).to_string(),
        "kernel: program headers 0 and 1 overlap in memory (0x0+0x1800 and 0x1000+0x2000)"
    );
    // Touching is fine; a non-loadable (no R/W/X) segment does not count.
    let mut t = TestElf::minimal();
    t.loads.push(Load { vaddr: 0x1800, paddr: 0x1800, data: vec![1; 8], memsz: 8, flags: 6 });
    t.loads.push(Load { vaddr: 0x100, paddr: 0x100, data: vec![2; 8], memsz: 8, flags: 0 });
    let image = t.build();
    let cfg = config(4);
    let (fake, built) = build_with(2048, &image, &cfg);
    check_domain(&fake, &built.unwrap(), &image, &cfg, &[]);
}

#[test]
fn absurd_sizes_are_refused() {
    // A 1 TiB bss: no memory size fits.
    let mut t = TestElf::minimal();
    t.loads[0].memsz = 1 << 40;
    let err = refused(&t.build(), 8);
    assert!(matches!(err, BuildError::Memory(MemoryProblem::TooSmall { .. })), "{err:?}");
    assert!(err.to_string().starts_with("memory: 8 MiB is too small for this kernel: its initial mapping needs"));
    // Addresses that overflow, in the ELF and after placement.
    let mut t = TestElf::minimal();
    t.loads[0].paddr = u64::MAX - 0x100;
    assert!(refused(&t.build(), 8).to_string().contains("overflows the address space"));
    let mut t = linux_like();
    t.notes.retain(|n| n.note_type != XEN_ELFNOTE_PADDR_OFFSET);
    t.notes.push(TestNote::xen_u64(XEN_ELFNOTE_PADDR_OFFSET, 0xffff_ffff_8100_2000));
    assert!(matches!(refused(&t.build(), 24), BuildError::Kernel(ImageError::Boot(_))));
    // A kernel in the hypervisor's hole.
    let mut t = TestElf::minimal();
    t.notes.push(TestNote::xen_u64(XEN_ELFNOTE_VIRT_BASE, 0xffff_8000_0000_0000));
    t.notes.push(TestNote::xen_u64(XEN_ELFNOTE_PADDR_OFFSET, 0));
    t.notes.retain(|n| n.note_type != XEN_ELFNOTE_HYPERCALL_PAGE);
    t.entry = 0xffff_8000_0000_0000;
    assert!(refused(&t.build(), 8).to_string().contains("reaches into the hypervisor's range"));
}

#[test]
fn memory_errors() {
    let image = minimal();
    assert_eq!(
        refused(&image, 1).to_string(),
        "memory: 1 MiB is too small for this kernel: its initial mapping needs at least 4 MiB"
    );
    // The free-memory check is the last before creating: two calls, nothing created.
    let (fake, result) = build_with(2048, &image, &config(16));
    assert_eq!(result.unwrap_err().to_string(), "memory: 16 MiB asked, max is 8 MiB (the hypervisor's free memory)");
    assert_eq!(fake.calls, ["xen_features", "free_pages"]);
    assert!(fake.is_clean());
}

#[test]
fn configs_built_by_hand_are_checked_like_parsed_ones() {
    let image = minimal();
    let mut cfg = config(8);
    cfg.vcpus = 0;
    let (fake, result) = build_with(4096, &image, &cfg);
    assert_eq!(result.unwrap_err().to_string(), "config: vcpus must be between 1 and 32, got 0");
    assert!(fake.is_clean());
    let mut cfg = config(8);
    cfg.cmdline = "x".repeat(2000);
    let (_, result) = build_with(4096, &image, &cfg);
    assert_eq!(result.unwrap_err().to_string(), "config: cmdline must be at most 1023 bytes, got 2000");
}

#[test]
fn plan_needs_no_hypervisor() {
    let image = minimal();
    let cfg = config(8);
    let plan = plan(&image, &cfg, &options(), FEATURES).unwrap();
    assert_eq!(plan.layout().nr_pages(), 2048);
    assert_eq!(plan.kernel().placement.entry, 0);
    // A kernel requiring pae_pgdir_above_4gb: fine with it offered, refused without.
    let mut t = TestElf::minimal();
    t.notes.push(TestNote::xen_str(XEN_ELFNOTE_FEATURES, "!pae_pgdir_above_4gb"));
    let needy = t.build();
    assert!(super::plan(&needy, &cfg, &options(), FEATURES).is_ok());
    let err = super::plan(&needy, &cfg, &options(), 0).map(|_| ()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "kernel: kernel requires feature \"pae_pgdir_above_4gb\", which this hypervisor does not support"
    );
    // Offering XENFEAT_dom0 changes nothing for a domU.
    assert!(super::plan(&image, &cfg, &options(), FEATURES | (1 << XENFEAT_DOM0)).is_ok());
}

// --- Randomized -------------------------------------------------------------------

/// Marsaglia's xorshift64.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// A test image with random structural changes, then random byte edits;
/// and whether it started Linux-shaped (it needs about 20 MiB).
fn random_image(rng: &mut XorShift) -> (Vec<u8>, bool) {
    let linux = rng.chance(5);
    let mut t = if linux { linux_like() } else { TestElf::minimal() };
    let base = if linux { 0x100_0000 } else { 0 };
    for _ in 0..rng.below(3) {
        let i = rng.below(t.loads.len() as u64) as usize;
        match rng.below(9) {
            0 => {
                let paddr = base + if rng.chance(2) { rng.below(8) << 12 } else { rng.below(0x8000) };
                let len = rng.below(0x2000) as usize;
                let data = (0..len).map(|_| rng.next() as u8).collect();
                let memsz = len as u64 + rng.below(0x3000);
                t.loads.push(Load { vaddr: paddr, paddr, data, memsz, flags: 6 });
            }
            1 => {
                let extra = [0, 1, 0xfff, 0x1_0000, 1 << 40, u64::MAX / 2][rng.below(6) as usize];
                t.loads[i].memsz = t.loads[i].data.len() as u64 + extra;
            }
            2 => t.loads[i].paddr = t.loads[i].paddr.wrapping_add(rng.below(0x3000)).wrapping_sub(0x1000),
            3 if !t.notes.is_empty() => {
                t.notes.remove(rng.below(t.notes.len() as u64) as usize);
            }
            4 => t.entry = base + rng.below(0x4000),
            5 => {
                t.notes.retain(|n| n.note_type != XEN_ELFNOTE_HYPERCALL_PAGE);
                let va = if linux { 0xffff_ffff_8000_0000 } else { 0 } + base + (rng.below(6) << 12);
                t.notes.push(TestNote::xen_u64(XEN_ELFNOTE_HYPERCALL_PAGE, va));
            }
            6 => t.notes_in = NotesIn::Section,
            7 => t.loads[i].flags = 0,
            _ => t.loads[i].data.truncate(rng.below(0x1000) as usize),
        }
    }
    let mut image = t.build();
    for _ in 0..rng.below(2) {
        let len = image.len() as u64;
        match rng.below(4) {
            0 => {
                let at = rng.below(len.min(512)) as usize;
                image[at] = rng.next() as u8;
            }
            1 => {
                let at = rng.below(len) as usize;
                image[at] ^= 1 << rng.below(8);
            }
            2 => image.truncate(rng.below(len + 1) as usize),
            _ => {}
        }
        if image.is_empty() {
            break;
        }
    }
    (image, linux)
}

/// A valid configuration; its memory mostly fits the image (`linux`: the
/// Linux-shaped one), sometimes not.
fn random_config(rng: &mut XorShift, linux: bool) -> DomainConfig {
    let vcpus = 1 + rng.below(32) as u32;
    let memory_mib = match (rng.chance(8), linux) {
        (true, _) => 1 + rng.below(24),
        (false, true) => 20 + rng.below(5),
        (false, false) => 4 + rng.below(5),
    } as u32;
    let cmdline: String = (0..rng.below(1024)).map(|_| char::from(b' ' + rng.below(95) as u8)).collect();
    DomainConfig {
        name: "fuzz".into(),
        kernel: "fuzz.elf".into(),
        memory_mib,
        vcpus,
        cmdline,
        weight: 1 + rng.below(65535) as u16,
        cap: rng.below(u64::from(vcpus) * 100 + 1) as u16,
        ..config(4)
    }
}

#[test]
fn random_images_configs_and_faults_never_panic_or_leak() {
    let mut rng = XorShift(0x5eed_1234_abcd_9876);
    let (mut built, mut refused_early, mut failed_late) = (0, 0, 0);
    let errnos = [Errno::ENOMEM, Errno::EINVAL, Errno::EPERM, Errno::EFAULT, Errno::EAGAIN];
    for round in 0..3000 {
        let (image, linux) = random_image(&mut rng);
        let cfg = random_config(&mut rng, linux);
        let ramdisk: Vec<u8> = (0..if rng.chance(3) { rng.below(20_000) } else { 0 }).map(|i| i as u8).collect();
        let frames = [2048, 4096, 8192][rng.below(3) as usize];
        let mut fake = Fake::new(frames, FEATURES);
        if rng.chance(2) {
            let fault = match rng.below(6) {
                0 => Fault::ShortPopulate,
                1 => Fault::HugeMfn,
                2 => Fault::HugeSharedInfo,
                _ => Fault::Errno(errnos[rng.below(errnos.len() as u64) as usize]),
            };
            // Somewhere in the build: about memory_mib * 256 + 40 calls.
            let calls = u64::from(cfg.memory_mib) * 256 + 64;
            fake.fault = Some((rng.below(calls) as usize, fault));
        }
        fake.destroy_fails = rng.chance(20);
        let opts = BuildOptions { ramdisk: Some(&ramdisk), ..options() };
        match build(&mut fake, &image, &cfg, &opts) {
            Ok(b) => {
                built += 1;
                check_domain(&fake, &b, &image, &cfg, &ramdisk);
                fake.destroy_fails = false;
                fake.destroy_domain(b.domid).unwrap();
            }
            Err(err) => {
                let message = err.to_string();
                assert!(!message.is_empty() && !message.contains('\n'), "round {round}: {message:?}");
                match err {
                    BuildError::Config(_) | BuildError::Kernel(_) | BuildError::Memory(_) => {
                        assert!(!fake.calls.contains(&"create_domain"), "round {round}: {message}");
                        refused_early += 1;
                    }
                    BuildError::Op(_) => failed_late += 1,
                    BuildError::LeftBehind { domid, .. } => {
                        assert_eq!(fake.domain_count(), 1, "round {round}");
                        fake.destroy_fails = false;
                        fake.destroy_domain(domid).unwrap();
                        failed_late += 1;
                    }
                }
            }
        }
        assert!(fake.is_clean(), "round {round} leaked");
    }
    // Every outcome is exercised, or the generator is too tame or too wild.
    assert!(
        built > 500 && refused_early > 1000 && failed_late > 200,
        "{built} built, {refused_early} refused early, {failed_late} failed late"
    );
}

// --- Pieces --------------------------------------------------------------------------

#[test]
fn pfn_to_cr3_is_the_frame_address() {
    assert_eq!(xen_pfn_to_cr3(0x1234), 0x123_4000);
}

#[test]
fn elf_of_the_test_images_is_what_the_tests_assume() {
    // Guards the assumptions above: minimal is one 6 KiB segment at 0 with
    // its hypercall page at 0x1000.
    let image = minimal();
    let elf = Elf::parse(&image).unwrap();
    let segs: Vec<_> = elf.segments().collect();
    assert_eq!((segs.len(), segs[0].paddr, segs[0].memsz), (1, 0, 0x1800));
    let k = Kernel::parse(&image, FEATURES, Role::DomU).unwrap();
    assert_eq!(k.placement.hypercall_page, Some(0x1000));
}
