//! End-to-end tests of the boot path, and a fuzz-style robustness test.

use super::testimage::{TestElf, LINUX_ENTRY, LINUX_HYPERCALL_PAGE, LINUX_VIRT_BASE};
use super::*;
use crate::sched::XENFEAT_WRITABLE_PAGE_TABLES;
use crate::start_info::{SIF_INITDOMAIN, SIF_PRIVILEGED};

/// A tiny xorshift64* PRNG, so the tests need no crates and are repeatable.
#[derive(Clone, Debug)]
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SUPPORTED: u32 = 1 << XENFEAT_WRITABLE_PAGE_TABLES;

#[test]
fn linux_like_kernel_end_to_end() {
    let t = TestElf::linux_like();
    let img = t.build();
    let k = Kernel::parse(&img, SUPPORTED, Role::Dom0).unwrap();
    assert_eq!(k.placement.entry, LINUX_ENTRY);
    assert_eq!(k.placement.hypercall_page, Some(LINUX_HYPERCALL_PAGE));
    let l = Layout::compute(&k.layout_params(16384, Some(0x1000))).unwrap();
    assert_eq!(l.virt_base(), LINUX_VIRT_BASE);
    // The kernel is 16 MiB above VIRT_BASE: pfns 0..0x1000 are mapped but
    // unused, the kernel is pfns 0x1000..0x1005.
    assert_eq!(l.kernel(), Region { va: 0xffff_ffff_8100_0000, pfn: 0x1000, pages: 5 });
    assert_eq!(l.ramdisk().unwrap().pfn, 0x1005);
    assert_eq!(l.end(), LINUX_VIRT_BASE + 0x140_0000);
    for seg in k.elf.segments() {
        let va = k.placement.segment_va(&seg);
        assert!(l.kernel().contains(va) && va + seg.memsz <= l.kernel().end());
    }
    let regs = initial_regs(&l, k.placement.entry);
    assert_eq!((regs.rip, regs.rsp, regs.rsi), (LINUX_ENTRY, l.stack_top(), l.start_info().va));
    let params = StartInfoParams {
        shared_info_maddr: 0x4000,
        flags: SIF_PRIVILEGED | SIF_INITDOMAIN,
        store_mfn: 0,
        store_evtchn: 0,
        console_mfn: 0,
        console_evtchn: 0,
        cmdline: b"console=hvc0",
    };
    let si = start_info(&l, &params).start_info;
    assert_eq!(si.mod_start, l.ramdisk().unwrap().va);
    let mut n = 0;
    pagetables::build(&l, |pfn| pfn + 0x10_0000, |_, _, _| n += 1).unwrap();
    assert_eq!(n as u64, l.mapped_pages() + l.pt_counts().l3 + l.pt_counts().l2 + l.pt_counts().l1);
}

#[test]
fn errors_flatten_and_display_one_line() {
    let mut img = TestElf::linux_like().build();
    img[4] = 1;
    let e = Kernel::parse(&img, SUPPORTED, Role::Dom0).unwrap_err();
    assert_eq!(e, BootError::Elf(ElfError::Class32));
    assert_eq!(e.to_string(), "ELF is 32-bit; a 64-bit PV kernel is required");
    let img = TestElf::linux_like().build();
    let e = Kernel::parse(&img, 0, Role::DomU).unwrap_err();
    assert_eq!(
        e.to_string(),
        "kernel requires feature \"writable_page_tables\", which this hypervisor does not support"
    );
    assert_eq!(BootError::from(NoteError::Elf(ElfError::BadMagic)), BootError::Elf(ElfError::BadMagic));
}

/// Runs the whole pure boot path on `image`; any outcome but a panic is fine.
fn boot_path(image: &[u8], nr_pages: u64, tables: bool) -> Result<u64, BootError> {
    let k = Kernel::parse(image, SUPPORTED, Role::DomU)?;
    // Walk everything a loader would touch.
    for seg in k.elf.segments() {
        let _ = k.elf.segment_data(&seg)?;
        let _ = k.placement.segment_va(&seg);
    }
    for sh in k.elf.section_headers() {
        let _ = k.elf.section_name(&sh);
        let _ = k.elf.section_data(&sh);
    }
    let l = Layout::compute(&k.layout_params(nr_pages, Some(image.len() as u64)))?;
    let _ = start_info(
        &l,
        &StartInfoParams {
            shared_info_maddr: 0,
            flags: 0,
            store_mfn: 0,
            store_evtchn: 0,
            console_mfn: 0,
            console_evtchn: 0,
            cmdline: image,
        },
    );
    let _ = initial_regs(&l, k.placement.entry);
    let mut sum = 0u64;
    if tables {
        pagetables::build(&l, |pfn| pfn, |i, s, e| sum = sum.wrapping_add(e ^ (i as u64) ^ (s as u64)))?;
    }
    Ok(sum)
}

/// Random byte mutations and truncations of valid images: parsing, notes,
/// layout and page tables return errors but never panic.
#[test]
fn fuzz_mutations_never_panic() {
    let seeds = [TestElf::linux_like(), TestElf::minimal()];
    let mut rng = XorShift::new(0x5eed_f00d);
    let mut outcomes = [0u32; 2];
    for round in 0..20_000u32 {
        let base = seeds[round as usize % seeds.len()].build();
        let mut img = base.clone();
        match rng.below(4) {
            // Flip a few random bytes anywhere.
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(img.len() as u64) as usize;
                    img[i] = rng.next() as u8;
                }
            }
            // Hit the headers, where the interesting fields are.
            1 => {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(64 + 56 * 3) as usize;
                    img[i] = match rng.below(3) {
                        0 => 0,
                        1 => 0xff,
                        _ => rng.next() as u8,
                    };
                }
            }
            // Overwrite an aligned word with an extreme value.
            2 => {
                let i = (rng.below(img.len() as u64 / 8) * 8) as usize;
                let v = [0, u64::MAX, u64::MAX / 2, 1 << 63, rng.next(), img.len() as u64][rng.below(6) as usize];
                img[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            // Truncate.
            _ => img.truncate(rng.below(img.len() as u64 + 1) as usize),
        }
        let nr_pages = [1, 1024, 2048, 16384][rng.below(4) as usize];
        let ok = boot_path(&img, nr_pages, round % 16 == 0).is_ok();
        outcomes[usize::from(ok)] += 1;
    }
    // Both outcomes must be common, or the mutations are too weak/strong.
    assert!(outcomes[0] > 1000 && outcomes[1] > 1000, "{outcomes:?}");
}

/// Every prefix of a valid image is handled.
#[test]
fn every_truncation_is_an_error_or_ok() {
    let img = TestElf::linux_like().build();
    for len in 0..img.len() {
        let _ = boot_path(&img[..len], 16384, false);
    }
}
