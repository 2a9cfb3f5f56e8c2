//! ELF64 parsing for 64-bit PV kernels: header, program and section headers.
//!
//! [`Elf::parse`] checks the header and the bounds of both header tables once,
//! and every `PT_LOAD` segment the loader will use; after that, iteration
//! cannot fail. Nothing is ever sliced without a bounds check, so a hostile
//! image gets an [`ElfError`], never a panic.
//!
//! What is accepted: class 64, little-endian, version 1, machine x86_64 (62),
//! type `ET_EXEC` or `ET_DYN` (Xen's loader never looks at `e_type`; both are
//! loaded identically, at their physical addresses), 56-byte program headers
//! and 64-byte section headers. A `PT_LOAD` segment with none of `PF_R`,
//! `PF_W`, `PF_X` is not loadable and is ignored, as Xen ignores it.

use core::fmt;

/// `e_machine` of x86_64.
pub const EM_X86_64: u16 = 62;
/// `e_type` of an executable.
pub const ET_EXEC: u16 = 2;
/// `e_type` of a shared object (position-independent executable).
pub const ET_DYN: u16 = 3;
/// Program header type of a loadable segment.
pub const PT_LOAD: u32 = 1;
/// Program header type of a note segment.
pub const PT_NOTE: u32 = 4;
/// Section type of a note section.
pub const SHT_NOTE: u32 = 7;
/// Section type of a section with no file data (`.bss`).
pub const SHT_NOBITS: u32 = 8;
/// Segment flag: executable.
pub const PF_X: u32 = 1;
/// Segment flag: writable.
pub const PF_W: u32 = 2;
/// Segment flag: readable.
pub const PF_R: u32 = 4;
/// Size of the ELF64 file header.
pub const EHDR_SIZE: usize = 64;
/// Size of an ELF64 program header.
pub const PHDR_SIZE: usize = 56;
/// Size of an ELF64 section header.
pub const SHDR_SIZE: usize = 64;

const MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ELFDATA2MSB: u8 = 2;
const EV_CURRENT: u32 = 1;

/// Why an image is not a loadable ELF64 x86_64 executable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// The image is shorter than an ELF64 header.
    TooShort {
        /// Length of the image in bytes.
        len: usize,
    },
    /// The first four bytes are not `\x7fELF`.
    BadMagic,
    /// `EI_CLASS` says 32-bit.
    Class32,
    /// `EI_CLASS` is neither 32- nor 64-bit.
    BadClass(u8),
    /// `EI_DATA` says big-endian.
    BigEndian,
    /// `EI_DATA` is neither little- nor big-endian.
    BadEncoding(u8),
    /// `EI_VERSION` is not 1.
    BadIdentVersion(u8),
    /// `e_version` is not 1.
    BadVersion(u32),
    /// `e_type` is neither `ET_EXEC` nor `ET_DYN`.
    BadType(u16),
    /// `e_machine` is not x86_64.
    BadMachine(u16),
    /// `e_phentsize` is not 56.
    BadPhentsize(u16),
    /// The program header table does not fit in the image.
    PhdrTableOutside {
        /// `e_phoff`.
        offset: u64,
        /// `e_phnum`.
        count: u16,
    },
    /// `e_shentsize` is not 64 (and there are section headers).
    BadShentsize(u16),
    /// The section header table does not fit in the image.
    ShdrTableOutside {
        /// `e_shoff`.
        offset: u64,
        /// `e_shnum`.
        count: u16,
    },
    /// No loadable `PT_LOAD` segment.
    NoLoadableSegments,
    /// A segment's `p_filesz` exceeds its `p_memsz`.
    FileszExceedsMemsz {
        /// Program header index.
        index: usize,
        /// `p_filesz`.
        filesz: u64,
        /// `p_memsz`.
        memsz: u64,
    },
    /// A segment's file bytes lie (partly) outside the image.
    SegmentOutside {
        /// Program header index.
        index: usize,
        /// `p_offset`.
        offset: u64,
        /// `p_filesz`.
        size: u64,
    },
    /// `p_vaddr + p_memsz` overflows.
    VaddrOverflow {
        /// Program header index.
        index: usize,
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_memsz`.
        memsz: u64,
    },
    /// `p_paddr + p_memsz` overflows.
    PaddrOverflow {
        /// Program header index.
        index: usize,
        /// `p_paddr`.
        paddr: u64,
        /// `p_memsz`.
        memsz: u64,
    },
    /// A section's file bytes lie (partly) outside the image.
    SectionOutside {
        /// Section header index.
        index: usize,
        /// `sh_offset`.
        offset: u64,
        /// `sh_size`.
        size: u64,
    },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ElfError::TooShort { len } => {
                write!(f, "image is {len} bytes, too short for an ELF64 header ({EHDR_SIZE} bytes)")
            }
            ElfError::BadMagic => f.write_str("not an ELF file (bad magic)"),
            ElfError::Class32 => f.write_str("ELF is 32-bit; a 64-bit PV kernel is required"),
            ElfError::BadClass(c) => write!(f, "ELF class {c} is invalid (expected 2, 64-bit)"),
            ElfError::BigEndian => f.write_str("ELF is big-endian; an x86_64 kernel must be little-endian"),
            ElfError::BadEncoding(d) => write!(f, "ELF data encoding {d} is invalid (expected 1, little-endian)"),
            ElfError::BadIdentVersion(v) => write!(f, "ELF identification version {v} is not 1 (EV_CURRENT)"),
            ElfError::BadVersion(v) => write!(f, "ELF version {v} is not 1 (EV_CURRENT)"),
            ElfError::BadType(t) => write!(f, "ELF type {t} is not an executable (ET_EXEC 2 or ET_DYN 3)"),
            ElfError::BadMachine(m) => write!(f, "ELF machine {m} is not x86_64 ({EM_X86_64})"),
            ElfError::BadPhentsize(n) => write!(f, "program header size {n} is not {PHDR_SIZE}"),
            ElfError::PhdrTableOutside { offset, count } => {
                write!(f, "program header table at {offset:#x} ({count} entries) lies outside the image")
            }
            ElfError::BadShentsize(n) => write!(f, "section header size {n} is not {SHDR_SIZE}"),
            ElfError::ShdrTableOutside { offset, count } => {
                write!(f, "section header table at {offset:#x} ({count} entries) lies outside the image")
            }
            ElfError::NoLoadableSegments => f.write_str("ELF has no loadable (PT_LOAD) segment"),
            ElfError::FileszExceedsMemsz { index, filesz, memsz } => {
                write!(f, "program header {index}: file size {filesz:#x} exceeds memory size {memsz:#x}")
            }
            ElfError::SegmentOutside { index, offset, size } => {
                write!(f, "program header {index}: file range {offset:#x}+{size:#x} lies outside the image")
            }
            ElfError::VaddrOverflow { index, vaddr, memsz } => {
                write!(f, "program header {index}: virtual range {vaddr:#x}+{memsz:#x} overflows the address space")
            }
            ElfError::PaddrOverflow { index, paddr, memsz } => {
                write!(f, "program header {index}: physical range {paddr:#x}+{memsz:#x} overflows the address space")
            }
            ElfError::SectionOutside { index, offset, size } => {
                write!(f, "section {index}: file range {offset:#x}+{size:#x} lies outside the image")
            }
        }
    }
}

/// The accepted ELF file types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfType {
    /// `ET_EXEC`: a fixed-address executable (every PV kernel seen so far).
    Exec,
    /// `ET_DYN`: a position-independent executable, loaded at its addresses.
    Dyn,
}

/// One program header, as found in the image (any type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramHeader {
    /// Index in the program header table.
    pub index: usize,
    /// `p_type` (`PT_*`).
    pub p_type: u32,
    /// `p_flags` (`PF_*`).
    pub flags: u32,
    /// `p_offset`: file offset of the segment's bytes.
    pub offset: u64,
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_paddr` (what Xen's loader places the segment by).
    pub paddr: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// `p_memsz`.
    pub memsz: u64,
    /// `p_align`.
    pub align: u64,
}

impl ProgramHeader {
    /// Whether Xen would load this segment: `PT_LOAD` with any of R, W, X.
    pub const fn is_loadable(&self) -> bool {
        self.p_type == PT_LOAD && self.flags & (PF_R | PF_W | PF_X) != 0
    }
}

/// A loadable segment, checked by [`Elf::parse`]: `filesz <= memsz`, the file
/// bytes lie inside the image, and neither address range overflows.
///
/// Xen places a segment by `paddr` (at `paddr + virt_offset`, see
/// [`Placement::segment_va`](super::notes::Placement::segment_va)); `vaddr` is
/// informational.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Index in the program header table.
    pub index: usize,
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_paddr`.
    pub paddr: u64,
    /// `p_offset`: file offset of the first byte.
    pub offset: u64,
    /// `p_filesz`: bytes copied from the file.
    pub filesz: u64,
    /// `p_memsz`: bytes occupied in memory (the rest is zeroed).
    pub memsz: u64,
    /// `p_flags` (`PF_*`).
    pub flags: u32,
}

/// One section header, as found in the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionHeader {
    /// Index in the section header table.
    pub index: usize,
    /// `sh_name`: offset of the name in the section-name string table.
    pub name: u32,
    /// `sh_type` (`SHT_*`).
    pub sh_type: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_addr`.
    pub addr: u64,
    /// `sh_offset`: file offset of the section's bytes.
    pub offset: u64,
    /// `sh_size`.
    pub size: u64,
}

/// A parsed ELF64 x86_64 executable borrowing its image.
#[derive(Clone, Copy)]
pub struct Elf<'a> {
    image: &'a [u8],
    elf_type: ElfType,
    entry: u64,
    phoff: usize,
    phnum: usize,
    shoff: usize,
    shnum: usize,
    shstrndx: usize,
    paddr_start: u64,
    paddr_end: u64,
}

impl fmt::Debug for Elf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Elf")
            .field("image_len", &self.image.len())
            .field("elf_type", &self.elf_type)
            .field("entry", &format_args!("{:#x}", self.entry))
            .field("phnum", &self.phnum)
            .field("shnum", &self.shnum)
            .field("paddr", &format_args!("{:#x}..{:#x}", self.paddr_start, self.paddr_end))
            .finish()
    }
}

pub(crate) fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    b.get(off..off.checked_add(2)?)?.try_into().ok().map(u16::from_le_bytes)
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off.checked_add(4)?)?.try_into().ok().map(u32::from_le_bytes)
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    b.get(off..off.checked_add(8)?)?.try_into().ok().map(u64::from_le_bytes)
}

/// `image[offset..offset + size]`, or `None` if any of it is outside.
fn range(image: &[u8], offset: u64, size: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let len = usize::try_from(size).ok()?;
    image.get(start..start.checked_add(len)?)
}

/// Checks that a table of `count` entries of `entsize` bytes at `offset` lies
/// inside the image, and returns the offset as a `usize`.
fn table(image: &[u8], offset: u64, count: u16, entsize: usize) -> Option<usize> {
    let len = usize::from(count).checked_mul(entsize)?;
    range(image, offset, len as u64)?;
    usize::try_from(offset).ok()
}

impl<'a> Elf<'a> {
    /// Checks the header, the header tables and every loadable segment.
    pub fn parse(image: &'a [u8]) -> Result<Self, ElfError> {
        if image.len() >= MAGIC.len() && image[..MAGIC.len()] != MAGIC {
            return Err(ElfError::BadMagic);
        }
        let ident = match image.get(..16) {
            Some(ident) if image.len() >= EHDR_SIZE => ident,
            _ => return Err(ElfError::TooShort { len: image.len() }),
        };
        if ident[..4] != MAGIC {
            return Err(ElfError::BadMagic);
        }
        match ident[4] {
            ELFCLASS64 => {}
            ELFCLASS32 => return Err(ElfError::Class32),
            c => return Err(ElfError::BadClass(c)),
        }
        match ident[5] {
            ELFDATA2LSB => {}
            ELFDATA2MSB => return Err(ElfError::BigEndian),
            d => return Err(ElfError::BadEncoding(d)),
        }
        if u32::from(ident[6]) != EV_CURRENT {
            return Err(ElfError::BadIdentVersion(ident[6]));
        }
        let too_short = ElfError::TooShort { len: image.len() };
        let field16 = |off| u16_at(image, off).ok_or(too_short);
        let field64 = |off| u64_at(image, off).ok_or(too_short);

        let elf_type = match field16(16)? {
            ET_EXEC => ElfType::Exec,
            ET_DYN => ElfType::Dyn,
            t => return Err(ElfError::BadType(t)),
        };
        let machine = field16(18)?;
        if machine != EM_X86_64 {
            return Err(ElfError::BadMachine(machine));
        }
        let version = u32_at(image, 20).ok_or(too_short)?;
        if version != EV_CURRENT {
            return Err(ElfError::BadVersion(version));
        }
        let entry = field64(24)?;
        let phoff = field64(32)?;
        let shoff = field64(40)?;
        let phentsize = field16(54)?;
        let phnum = field16(56)?;
        let shentsize = field16(58)?;
        let shnum = field16(60)?;
        let shstrndx = field16(62)?;

        if phnum != 0 && usize::from(phentsize) != PHDR_SIZE {
            return Err(ElfError::BadPhentsize(phentsize));
        }
        let phoff_usize =
            table(image, phoff, phnum, PHDR_SIZE).ok_or(ElfError::PhdrTableOutside { offset: phoff, count: phnum })?;
        let (shoff_usize, shnum) = if shnum == 0 {
            (0, 0)
        } else {
            if usize::from(shentsize) != SHDR_SIZE {
                return Err(ElfError::BadShentsize(shentsize));
            }
            let off = table(image, shoff, shnum, SHDR_SIZE)
                .ok_or(ElfError::ShdrTableOutside { offset: shoff, count: shnum })?;
            (off, usize::from(shnum))
        };

        let mut elf = Elf {
            image,
            elf_type,
            entry,
            phoff: phoff_usize,
            phnum: usize::from(phnum),
            shoff: shoff_usize,
            shnum,
            shstrndx: usize::from(shstrndx),
            paddr_start: u64::MAX,
            paddr_end: 0,
        };

        let mut any = false;
        for ph in elf.program_headers().filter(ProgramHeader::is_loadable) {
            let index = ph.index;
            if ph.filesz > ph.memsz {
                return Err(ElfError::FileszExceedsMemsz { index, filesz: ph.filesz, memsz: ph.memsz });
            }
            if range(image, ph.offset, ph.filesz).is_none() {
                return Err(ElfError::SegmentOutside { index, offset: ph.offset, size: ph.filesz });
            }
            if ph.vaddr.checked_add(ph.memsz).is_none() {
                return Err(ElfError::VaddrOverflow { index, vaddr: ph.vaddr, memsz: ph.memsz });
            }
            let Some(pend) = ph.paddr.checked_add(ph.memsz) else {
                return Err(ElfError::PaddrOverflow { index, paddr: ph.paddr, memsz: ph.memsz });
            };
            any = true;
            elf.paddr_start = elf.paddr_start.min(ph.paddr);
            elf.paddr_end = elf.paddr_end.max(pend);
        }
        if !any {
            return Err(ElfError::NoLoadableSegments);
        }
        Ok(elf)
    }

    /// The whole image.
    pub fn image(&self) -> &'a [u8] {
        self.image
    }

    /// `e_type`.
    pub fn elf_type(&self) -> ElfType {
        self.elf_type
    }

    /// `e_entry` (the entry point unless an `ENTRY` note overrides it).
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// `[pstart, pend)`: the lowest `p_paddr` and the highest `p_paddr +
    /// p_memsz` over the loadable segments (Xen's `elf->pstart/pend`).
    pub fn paddr_extent(&self) -> (u64, u64) {
        (self.paddr_start, self.paddr_end)
    }

    /// Number of program headers.
    pub fn program_header_count(&self) -> usize {
        self.phnum
    }

    /// Program header `index`, or `None` past the end.
    pub fn program_header(&self, index: usize) -> Option<ProgramHeader> {
        if index >= self.phnum {
            return None;
        }
        let b = self.image.get(self.phoff.checked_add(index.checked_mul(PHDR_SIZE)?)?..)?;
        Some(ProgramHeader {
            index,
            p_type: u32_at(b, 0)?,
            flags: u32_at(b, 4)?,
            offset: u64_at(b, 8)?,
            vaddr: u64_at(b, 16)?,
            paddr: u64_at(b, 24)?,
            filesz: u64_at(b, 32)?,
            memsz: u64_at(b, 40)?,
            align: u64_at(b, 48)?,
        })
    }

    /// Every program header, in table order.
    pub fn program_headers(&self) -> ProgramHeaders<'a> {
        ProgramHeaders { elf: *self, next: 0 }
    }

    /// The loadable segments (checked by [`Elf::parse`]), in table order.
    pub fn segments(&self) -> Segments<'a> {
        Segments { headers: self.program_headers() }
    }

    /// The file bytes of a segment (`filesz` bytes at `offset`).
    pub fn segment_data(&self, seg: &Segment) -> Result<&'a [u8], ElfError> {
        range(self.image, seg.offset, seg.filesz).ok_or(ElfError::SegmentOutside {
            index: seg.index,
            offset: seg.offset,
            size: seg.filesz,
        })
    }

    /// The file bytes of any program header (`filesz` bytes at `offset`).
    pub fn program_header_data(&self, ph: &ProgramHeader) -> Result<&'a [u8], ElfError> {
        range(self.image, ph.offset, ph.filesz).ok_or(ElfError::SegmentOutside {
            index: ph.index,
            offset: ph.offset,
            size: ph.filesz,
        })
    }

    /// Number of section headers.
    pub fn section_header_count(&self) -> usize {
        self.shnum
    }

    /// Section header `index`, or `None` past the end.
    pub fn section_header(&self, index: usize) -> Option<SectionHeader> {
        if index >= self.shnum {
            return None;
        }
        let b = self.image.get(self.shoff.checked_add(index.checked_mul(SHDR_SIZE)?)?..)?;
        Some(SectionHeader {
            index,
            name: u32_at(b, 0)?,
            sh_type: u32_at(b, 4)?,
            flags: u64_at(b, 8)?,
            addr: u64_at(b, 16)?,
            offset: u64_at(b, 24)?,
            size: u64_at(b, 32)?,
        })
    }

    /// Every section header, in table order (including the null section 0).
    pub fn section_headers(&self) -> SectionHeaders<'a> {
        SectionHeaders { elf: *self, next: 0 }
    }

    /// The file bytes of a section (empty for `SHT_NOBITS`).
    pub fn section_data(&self, sh: &SectionHeader) -> Result<&'a [u8], ElfError> {
        if sh.sh_type == SHT_NOBITS {
            return Ok(&[]);
        }
        range(self.image, sh.offset, sh.size).ok_or(ElfError::SectionOutside {
            index: sh.index,
            offset: sh.offset,
            size: sh.size,
        })
    }

    /// A section's name from the section-name string table (without the
    /// NUL), or `None` if there is no usable string table or name.
    pub fn section_name(&self, sh: &SectionHeader) -> Option<&'a [u8]> {
        let strtab = self.section_header(self.shstrndx)?;
        let strings = self.section_data(&strtab).ok()?;
        let name = strings.get(usize::try_from(sh.name).ok()?..)?;
        let len = name.iter().position(|&b| b == 0)?;
        name.get(..len)
    }

    /// The first section called `name`, if any.
    pub fn section_by_name(&self, name: &[u8]) -> Option<SectionHeader> {
        self.section_headers().find(|sh| self.section_name(sh) == Some(name))
    }
}

/// Iterator over program headers; see [`Elf::program_headers`].
#[derive(Clone, Debug)]
pub struct ProgramHeaders<'a> {
    elf: Elf<'a>,
    next: usize,
}

impl Iterator for ProgramHeaders<'_> {
    type Item = ProgramHeader;

    fn next(&mut self) -> Option<ProgramHeader> {
        let ph = self.elf.program_header(self.next)?;
        self.next += 1;
        Some(ph)
    }
}

/// Iterator over loadable segments; see [`Elf::segments`].
#[derive(Clone, Debug)]
pub struct Segments<'a> {
    headers: ProgramHeaders<'a>,
}

impl Iterator for Segments<'_> {
    type Item = Segment;

    fn next(&mut self) -> Option<Segment> {
        let ph = self.headers.by_ref().find(ProgramHeader::is_loadable)?;
        Some(Segment {
            index: ph.index,
            vaddr: ph.vaddr,
            paddr: ph.paddr,
            offset: ph.offset,
            filesz: ph.filesz,
            memsz: ph.memsz,
            flags: ph.flags,
        })
    }
}

/// Iterator over section headers; see [`Elf::section_headers`].
#[derive(Clone, Debug)]
pub struct SectionHeaders<'a> {
    elf: Elf<'a>,
    next: usize,
}

impl Iterator for SectionHeaders<'_> {
    type Item = SectionHeader;

    fn next(&mut self) -> Option<SectionHeader> {
        let sh = self.elf.section_header(self.next)?;
        self.next += 1;
        Some(sh)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testimage::{Load, TestElf};
    use super::*;

    fn image() -> Vec<u8> {
        TestElf::linux_like().build()
    }

    fn patch(img: &mut [u8], off: usize, bytes: &[u8]) {
        img[off..off + bytes.len()].copy_from_slice(bytes);
    }

    #[test]
    fn parses_a_valid_kernel() {
        let t = TestElf::linux_like();
        let img = t.build();
        let elf = Elf::parse(&img).unwrap();
        assert_eq!(elf.elf_type(), ElfType::Exec);
        assert_eq!(elf.entry(), t.entry);
        let segs: Vec<_> = elf.segments().collect();
        assert_eq!(segs.len(), t.loads.len());
        for (s, l) in segs.iter().zip(&t.loads) {
            assert_eq!((s.vaddr, s.paddr, s.filesz, s.memsz), (l.vaddr, l.paddr, l.data.len() as u64, l.memsz));
            assert_eq!(elf.segment_data(s).unwrap(), &l.data[..]);
        }
        let first = &t.loads[0];
        let last = t.loads.last().unwrap();
        assert_eq!(elf.paddr_extent(), (first.paddr, last.paddr + last.memsz));
        assert!(elf.section_by_name(b".note.Xen").is_some());
        assert!(elf.section_by_name(b"__xen_guest").is_none());
    }

    #[test]
    fn header_checks_each_have_their_own_error() {
        let good = image();
        let cases: &[(usize, &[u8], ElfError)] = &[
            (0, b"\x7fELG", ElfError::BadMagic),
            (4, &[1], ElfError::Class32),
            (4, &[7], ElfError::BadClass(7)),
            (5, &[2], ElfError::BigEndian),
            (5, &[0], ElfError::BadEncoding(0)),
            (6, &[2], ElfError::BadIdentVersion(2)),
            (16, &[1, 0], ElfError::BadType(1)),
            (18, &[3, 0], ElfError::BadMachine(3)),
            (20, &[0, 0, 0, 0], ElfError::BadVersion(0)),
            (54, &[32, 0], ElfError::BadPhentsize(32)),
            (58, &[40, 0], ElfError::BadShentsize(40)),
        ];
        for (off, bytes, want) in cases {
            let mut img = good.clone();
            patch(&mut img, *off, bytes);
            assert_eq!(Elf::parse(&img).unwrap_err(), *want, "patch at {off}");
        }
        let mut dyn_img = good.clone();
        patch(&mut dyn_img, 16, &[3, 0]);
        assert_eq!(Elf::parse(&dyn_img).unwrap().elf_type(), ElfType::Dyn);
    }

    #[test]
    fn short_images() {
        assert_eq!(Elf::parse(&[]).unwrap_err(), ElfError::TooShort { len: 0 });
        assert_eq!(Elf::parse(b"\x7fEL").unwrap_err(), ElfError::TooShort { len: 3 });
        assert_eq!(Elf::parse(b"MZ\x90\x00").unwrap_err(), ElfError::BadMagic);
        let img = image();
        assert_eq!(Elf::parse(&img[..63]).unwrap_err(), ElfError::TooShort { len: 63 });
    }

    #[test]
    fn tables_must_fit() {
        let good = image();
        let mut img = good.clone();
        patch(&mut img, 32, &(good.len() as u64 - 8).to_le_bytes());
        assert!(matches!(Elf::parse(&img), Err(ElfError::PhdrTableOutside { .. })));
        let mut img = good.clone();
        patch(&mut img, 32, &u64::MAX.to_le_bytes());
        assert!(matches!(Elf::parse(&img), Err(ElfError::PhdrTableOutside { .. })));
        let mut img = good.clone();
        patch(&mut img, 40, &(u64::MAX - 10).to_le_bytes());
        assert!(matches!(Elf::parse(&img), Err(ElfError::ShdrTableOutside { .. })));
        // No sections at all is fine.
        let mut img = good.clone();
        patch(&mut img, 60, &[0, 0]);
        let elf = Elf::parse(&img).unwrap();
        assert_eq!(elf.section_headers().count(), 0);
    }

    fn with_load(load: Load) -> Result<(), ElfError> {
        let mut t = TestElf::linux_like();
        t.loads.push(load);
        Elf::parse(&t.build()).map(|_| ())
    }

    #[test]
    fn segment_checks() {
        let base = Load { vaddr: 0x1000, paddr: 0x1000, data: vec![1; 16], memsz: 16, flags: PF_R };
        assert_eq!(with_load(base.clone()), Ok(()));
        let index = TestElf::linux_like().loads.len(); // loads come first
        assert_eq!(
            with_load(Load { memsz: 8, ..base.clone() }),
            Err(ElfError::FileszExceedsMemsz { index, filesz: 16, memsz: 8 })
        );
        assert_eq!(
            with_load(Load { vaddr: u64::MAX - 8, ..base.clone() }),
            Err(ElfError::VaddrOverflow { index, vaddr: u64::MAX - 8, memsz: 16 })
        );
        assert_eq!(
            with_load(Load { paddr: u64::MAX - 8, ..base.clone() }),
            Err(ElfError::PaddrOverflow { index, paddr: u64::MAX - 8, memsz: 16 })
        );
        // A PT_LOAD without R/W/X is not loadable, so not checked either.
        assert_eq!(with_load(Load { memsz: 8, flags: 0, ..base }), Ok(()));
    }

    #[test]
    fn segment_file_range_must_fit() {
        let t = TestElf::linux_like();
        let good = t.build();
        let ph0 = u64_at(&good, 32).unwrap() as usize;
        let mut img = good.clone();
        // Push the first PT_LOAD's p_offset past the end.
        patch(&mut img, ph0 + 8, &(good.len() as u64).to_le_bytes());
        let msg = Elf::parse(&img).unwrap_err().to_string();
        assert!(msg.starts_with("program header 0: file range 0x") && msg.ends_with("lies outside the image"), "{msg}");
    }

    #[test]
    fn no_loadable_segment() {
        let mut t = TestElf::linux_like();
        t.loads.clear();
        assert_eq!(Elf::parse(&t.build()).unwrap_err(), ElfError::NoLoadableSegments);
    }

    #[test]
    fn messages_are_one_line() {
        let errors = [
            ElfError::TooShort { len: 3 },
            ElfError::BadMagic,
            ElfError::Class32,
            ElfError::SegmentOutside { index: 2, offset: 0x1000, size: 0x2000 },
            ElfError::SectionOutside { index: 2, offset: 0x1000, size: 0x2000 },
        ];
        for e in errors {
            let s = e.to_string();
            assert!(!s.contains('\n') && !s.is_empty());
        }
        assert_eq!(ElfError::BadMagic.to_string(), "not an ELF file (bad magic)");
        assert_eq!(ElfError::Class32.to_string(), "ELF is 32-bit; a 64-bit PV kernel is required");
        assert_eq!(
            ElfError::SegmentOutside { index: 2, offset: 0x1000, size: 0x2000 }.to_string(),
            "program header 2: file range 0x1000+0x2000 lies outside the image"
        );
    }
}
