//! Builder of small ELF64 PV kernel images, for tests (feature `testimage`).
#![allow(missing_docs)]

use alloc::{vec, vec::Vec};

use super::elf::{PF_R, PF_W, PF_X, PT_LOAD, PT_NOTE, SHT_NOTE};
use crate::elfnote::*;
use crate::sched::{XENFEAT_DOM0, XENFEAT_LINUX_RSDP_UNRESTRICTED, XENFEAT_WRITABLE_PAGE_TABLES};

/// A `PT_LOAD` segment: `data` is its file contents.
#[derive(Clone, Debug)]
pub struct Load {
    pub vaddr: u64,
    pub paddr: u64,
    pub data: Vec<u8>,
    pub memsz: u64,
    pub flags: u32,
}

/// One ELF note.
#[derive(Clone, Debug)]
pub struct TestNote {
    pub name: Vec<u8>,
    pub note_type: u32,
    pub desc: Vec<u8>,
}

impl TestNote {
    pub fn xen(note_type: u32, desc: &[u8]) -> Self {
        TestNote { name: b"Xen\0".to_vec(), note_type, desc: desc.to_vec() }
    }
    pub fn xen_str(note_type: u32, s: &str) -> Self {
        let mut desc = s.as_bytes().to_vec();
        desc.push(0);
        Self::xen(note_type, &desc)
    }
    pub fn xen_u64(note_type: u32, v: u64) -> Self {
        Self::xen(note_type, &v.to_le_bytes())
    }
}

/// Where the notes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotesIn {
    Segment,
    Section,
    Both,
}

/// An ELF image under construction.
#[derive(Clone, Debug)]
pub struct TestElf {
    pub e_type: u16,
    pub entry: u64,
    pub loads: Vec<Load>,
    pub notes: Vec<TestNote>,
    pub notes_in: NotesIn,
    /// Contents of a `__xen_guest` section, if any.
    pub xen_guest: Option<Vec<u8>>,
}

pub const LINUX_VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
pub const LINUX_ENTRY: u64 = 0xffff_ffff_8100_0040;
pub const LINUX_HYPERCALL_PAGE: u64 = 0xffff_ffff_8100_1000;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

impl TestElf {
    /// Shaped like Linux's vmlinux: notes in a PT_NOTE segment and a
    /// `.note.Xen` section, text at paddr 16 MiB, VIRT_BASE
    /// 0xffffffff80000000, PADDR_OFFSET 0.
    pub fn linux_like() -> Self {
        let supported =
            (1u32 << XENFEAT_WRITABLE_PAGE_TABLES) | (1 << XENFEAT_DOM0) | (1 << XENFEAT_LINUX_RSDP_UNRESTRICTED);
        let mut l1_mfn_valid = 1u64.to_le_bytes().to_vec();
        l1_mfn_valid.extend_from_slice(&1u64.to_le_bytes());
        TestElf {
            e_type: 2,
            entry: LINUX_ENTRY,
            loads: vec![
                Load {
                    vaddr: 0xffff_ffff_8100_0000,
                    paddr: 0x100_0000,
                    data: pattern(0x2000, 1),
                    memsz: 0x2000,
                    flags: PF_R | PF_X,
                },
                Load {
                    vaddr: 0xffff_ffff_8100_2000,
                    paddr: 0x100_2000,
                    data: pattern(0x800, 2),
                    memsz: 0x3000,
                    flags: PF_R | PF_W,
                },
            ],
            notes: vec![
                TestNote { name: b"GNU\0".to_vec(), note_type: 3, desc: pattern(20, 9) },
                TestNote::xen_str(XEN_ELFNOTE_GUEST_OS, "linux"),
                TestNote::xen_str(XEN_ELFNOTE_GUEST_VERSION, "2.6"),
                TestNote::xen_str(XEN_ELFNOTE_XEN_VERSION, "xen-3.0"),
                TestNote::xen_u64(XEN_ELFNOTE_VIRT_BASE, LINUX_VIRT_BASE),
                TestNote::xen_u64(XEN_ELFNOTE_INIT_P2M, 0x80_0000_0000),
                TestNote::xen_u64(XEN_ELFNOTE_ENTRY, LINUX_ENTRY),
                // `.ascii`, as Linux writes it: no NUL, the note padding ends it.
                TestNote::xen(XEN_ELFNOTE_FEATURES, b"!writable_page_tables"),
                TestNote::xen_str(XEN_ELFNOTE_PAE_MODE, "yes"),
                TestNote::xen(XEN_ELFNOTE_L1_MFN_VALID, &l1_mfn_valid),
                TestNote::xen(XEN_ELFNOTE_MOD_START_PFN, &1u32.to_le_bytes()),
                TestNote::xen_u64(XEN_ELFNOTE_PADDR_OFFSET, 0),
                TestNote::xen(XEN_ELFNOTE_SUPPORTED_FEATURES, &supported.to_le_bytes()),
                TestNote::xen_u64(XEN_ELFNOTE_HYPERCALL_PAGE, LINUX_HYPERCALL_PAGE),
                TestNote::xen_str(XEN_ELFNOTE_LOADER, "generic"),
            ],
            notes_in: NotesIn::Both,
            xen_guest: None,
        }
    }

    /// A minimal generic-loader kernel at VIRT_BASE 0 (like Mini-OS).
    pub fn minimal() -> Self {
        TestElf {
            e_type: 2,
            entry: 0,
            loads: vec![Load { vaddr: 0, paddr: 0, data: pattern(0x1800, 3), memsz: 0x1800, flags: PF_R | PF_X }],
            notes: vec![
                TestNote::xen_str(XEN_ELFNOTE_XEN_VERSION, "xen-3.0"),
                TestNote::xen_str(XEN_ELFNOTE_GUEST_OS, "Mini-OS"),
                TestNote::xen_str(XEN_ELFNOTE_LOADER, "generic"),
                TestNote::xen(XEN_ELFNOTE_HYPERCALL_PAGE, &0x1000u32.to_le_bytes()),
            ],
            notes_in: NotesIn::Segment,
            xen_guest: None,
        }
    }

    pub fn note_blob(&self) -> Vec<u8> {
        let mut b = Vec::new();
        for n in &self.notes {
            b.extend_from_slice(&(n.name.len() as u32).to_le_bytes());
            b.extend_from_slice(&(n.desc.len() as u32).to_le_bytes());
            b.extend_from_slice(&n.note_type.to_le_bytes());
            b.extend_from_slice(&n.name);
            pad(&mut b, 4);
            b.extend_from_slice(&n.desc);
            pad(&mut b, 4);
        }
        b
    }

    pub fn build(&self) -> Vec<u8> {
        let note_seg = matches!(self.notes_in, NotesIn::Segment | NotesIn::Both) && !self.notes.is_empty();
        let note_sec = matches!(self.notes_in, NotesIn::Section | NotesIn::Both) && !self.notes.is_empty();
        let phnum = self.loads.len() + usize::from(note_seg);

        let mut img = vec![0u8; 64 + 56 * phnum];
        let notes_off = img.len();
        let blob = self.note_blob();
        img.extend_from_slice(&blob);
        let mut load_offs = Vec::new();
        for l in &self.loads {
            pad(&mut img, 16);
            load_offs.push(img.len());
            img.extend_from_slice(&l.data);
        }
        let guest_off = img.len();
        if let Some(g) = &self.xen_guest {
            img.extend_from_slice(g);
        }

        // Section names.
        let mut shstr = vec![0u8];
        let mut names = Vec::new();
        for name in [".note.Xen", "__xen_guest", ".shstrtab"] {
            names.push(shstr.len() as u32);
            shstr.extend_from_slice(name.as_bytes());
            shstr.push(0);
        }
        let shstr_off = img.len();
        img.extend_from_slice(&shstr);

        // Section headers: null, [.note.Xen], [__xen_guest], .shstrtab.
        let mut shdrs: Vec<[u64; 3]> = Vec::new(); // (name|type<<32, offset, size)
        shdrs.push([0, 0, 0]);
        if note_sec {
            shdrs.push([u64::from(names[0]) | (u64::from(SHT_NOTE) << 32), notes_off as u64, blob.len() as u64]);
        }
        if let Some(g) = &self.xen_guest {
            shdrs.push([u64::from(names[1]) | (1 << 32), guest_off as u64, g.len() as u64]);
        }
        shdrs.push([u64::from(names[2]) | (3 << 32), shstr_off as u64, shstr.len() as u64]);
        pad(&mut img, 8);
        let shoff = img.len();
        for [name_type, off, size] in &shdrs {
            let mut sh = [0u8; 64];
            sh[0..4].copy_from_slice(&(*name_type as u32).to_le_bytes());
            sh[4..8].copy_from_slice(&((*name_type >> 32) as u32).to_le_bytes());
            sh[24..32].copy_from_slice(&off.to_le_bytes());
            sh[32..40].copy_from_slice(&size.to_le_bytes());
            img.extend_from_slice(&sh);
        }

        // ELF header.
        let h = &mut img[..64];
        h[0..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[6] = 1;
        h[16..18].copy_from_slice(&self.e_type.to_le_bytes());
        h[18..20].copy_from_slice(&62u16.to_le_bytes());
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        h[24..32].copy_from_slice(&self.entry.to_le_bytes());
        h[32..40].copy_from_slice(&64u64.to_le_bytes());
        h[40..48].copy_from_slice(&(shoff as u64).to_le_bytes());
        h[52..54].copy_from_slice(&64u16.to_le_bytes());
        h[54..56].copy_from_slice(&56u16.to_le_bytes());
        h[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
        h[58..60].copy_from_slice(&64u16.to_le_bytes());
        h[60..62].copy_from_slice(&(shdrs.len() as u16).to_le_bytes());
        h[62..64].copy_from_slice(&((shdrs.len() - 1) as u16).to_le_bytes());

        // Program headers: the loads, then the PT_NOTE.
        let mut write_ph = |i: usize, p_type: u32, flags: u32, vals: [u64; 6]| {
            let p = &mut img[64 + 56 * i..64 + 56 * (i + 1)];
            p[0..4].copy_from_slice(&p_type.to_le_bytes());
            p[4..8].copy_from_slice(&flags.to_le_bytes());
            for (k, v) in vals.iter().enumerate() {
                p[8 + 8 * k..16 + 8 * k].copy_from_slice(&v.to_le_bytes());
            }
        };
        for (i, l) in self.loads.iter().enumerate() {
            let vals = [load_offs[i] as u64, l.vaddr, l.paddr, l.data.len() as u64, l.memsz, 0x1000];
            write_ph(i, PT_LOAD, l.flags, vals);
        }
        if note_seg {
            let vals = [notes_off as u64, 0, 0, blob.len() as u64, blob.len() as u64, 4];
            write_ph(self.loads.len(), PT_NOTE, PF_R, vals);
        }
        img
    }
}

fn pad(b: &mut Vec<u8>, align: usize) {
    while !b.len().is_multiple_of(align) {
        b.push(0);
    }
}
