//! Xen's ELF notes: finding them, parsing them into [`XenNotes`], checking
//! them as Xen's loader does, and placing the kernel ([`Placement`]).
//!
//! Where notes are looked for, in Xen's order: every `PT_NOTE` segment (one
//! with `p_offset == 0` is skipped, as Xen skips it: old binutils wrote
//! that); if none of them holds a note owned by `"Xen"`, every `SHT_NOTE`
//! section. The legacy `__xen_guest` string section is recognised only to
//! refuse it ([`NoteError::LegacyXenGuest`]).
//!
//! A note is Xen's when its name is exactly `"Xen\0"` (`namesz` 4). Notes of
//! other owners are skipped; a note of another owner running past the end of
//! its area ends that area silently (as in Xen), a truncated Xen note is an
//! error. Numbers are little-endian with `descsz` 1, 2, 4 or 8; strings end
//! at the first NUL or at the end of the descriptor (Linux writes
//! `FEATURES` with `.ascii`, relying on the note padding for the NUL). When
//! a note type appears twice the last one wins, except `FEATURES` and
//! `SUPPORTED_FEATURES`, which accumulate, as in Xen.

use core::fmt;

use super::elf::{Elf, ElfError, PT_NOTE, SHT_NOTE};
use crate::elfnote::*;
use crate::sched::{
    XENFEAT_AUTO_TRANSLATED_PHYSMAP, XENFEAT_DOM0, XENFEAT_HVM_CALLBACK_VECTOR, XENFEAT_PAE_PGDIR_ABOVE_4GB,
    XENFEAT_SUPERVISOR_MODE_KERNEL, XENFEAT_WRITABLE_DESCRIPTOR_TABLES, XENFEAT_WRITABLE_PAGE_TABLES,
};

/// The most notes (of any owner) examined in one image; more is an error,
/// so a hostile image cannot make the parser work for long.
pub const MAX_NOTES: usize = 65536;

/// The feature names the `FEATURES` note may use, with their `XENFEAT_*`
/// bits: exactly the names Xen 4.17's parser knows. An unknown name is
/// ignored, or refused if marked required with `!`.
pub const FEATURE_NAMES: [(&str, u32); 7] = [
    ("writable_page_tables", XENFEAT_WRITABLE_PAGE_TABLES),
    ("writable_descriptor_tables", XENFEAT_WRITABLE_DESCRIPTOR_TABLES),
    ("auto_translated_physmap", XENFEAT_AUTO_TRANSLATED_PHYSMAP),
    ("supervisor_mode_kernel", XENFEAT_SUPERVISOR_MODE_KERNEL),
    ("pae_pgdir_above_4gb", XENFEAT_PAE_PGDIR_ABOVE_4GB),
    ("hvm_callback_vector", XENFEAT_HVM_CALLBACK_VECTOR),
    ("dom0", XENFEAT_DOM0),
];

/// The `XENFEAT_*` bit of a feature name from [`FEATURE_NAMES`].
pub fn feature_bit(name: &str) -> Option<u32> {
    FEATURE_NAMES.iter().find(|(n, _)| *n == name).map(|&(_, bit)| bit)
}

/// The name of a `XENFEAT_*` bit, if the `FEATURES` note can name it.
pub fn feature_name(bit: u32) -> Option<&'static str> {
    FEATURE_NAMES.iter().find(|&&(_, b)| b == bit).map(|&(n, _)| n)
}

/// Xen's name of a note type (`"ENTRY"`, ...), or `"unknown"`.
pub fn note_type_name(note_type: u32) -> &'static str {
    match note_type {
        XEN_ELFNOTE_INFO => "INFO",
        XEN_ELFNOTE_ENTRY => "ENTRY",
        XEN_ELFNOTE_HYPERCALL_PAGE => "HYPERCALL_PAGE",
        XEN_ELFNOTE_VIRT_BASE => "VIRT_BASE",
        XEN_ELFNOTE_PADDR_OFFSET => "PADDR_OFFSET",
        XEN_ELFNOTE_XEN_VERSION => "XEN_VERSION",
        XEN_ELFNOTE_GUEST_OS => "GUEST_OS",
        XEN_ELFNOTE_GUEST_VERSION => "GUEST_VERSION",
        XEN_ELFNOTE_LOADER => "LOADER",
        XEN_ELFNOTE_PAE_MODE => "PAE_MODE",
        XEN_ELFNOTE_FEATURES => "FEATURES",
        XEN_ELFNOTE_BSD_SYMTAB => "BSD_SYMTAB",
        XEN_ELFNOTE_HV_START_LOW => "HV_START_LOW",
        XEN_ELFNOTE_L1_MFN_VALID => "L1_MFN_VALID",
        XEN_ELFNOTE_SUSPEND_CANCEL => "SUSPEND_CANCEL",
        XEN_ELFNOTE_INIT_P2M => "INIT_P2M",
        XEN_ELFNOTE_MOD_START_PFN => "MOD_START_PFN",
        XEN_ELFNOTE_SUPPORTED_FEATURES => "SUPPORTED_FEATURES",
        XEN_ELFNOTE_PHYS32_ENTRY => "PHYS32_ENTRY",
        _ => "unknown",
    }
}

/// A short copy of text from a note, for error messages (at most 32 bytes;
/// longer text is cut and shown with `...`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NoteText {
    bytes: [u8; 32],
    len: u8,
    cut: bool,
}

impl NoteText {
    /// Copies (a prefix of) `s`.
    pub fn new(s: &str) -> Self {
        let mut bytes = [0u8; 32];
        let len = s.len().min(bytes.len());
        bytes[..len].copy_from_slice(&s.as_bytes()[..len]);
        NoteText { bytes, len: len as u8, cut: s.len() > len }
    }

    /// The copied bytes (possibly cut inside a UTF-8 sequence).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Whether the text was longer than what was kept.
    pub fn is_cut(&self) -> bool {
        self.cut
    }
}

impl fmt::Display for NoteText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}{}\"", self.as_bytes().escape_ascii(), if self.cut { "..." } else { "" })
    }
}

impl fmt::Debug for NoteText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Displays an optional note string: quoted, or `absent`.
struct Shown(Option<NoteText>);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(t) => t.fmt(f),
            None => f.write_str("absent"),
        }
    }
}

/// Where a note area is in the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteArea {
    /// A `PT_NOTE` segment (program header index).
    Segment(usize),
    /// A `SHT_NOTE` section (section header index).
    Section(usize),
}

impl fmt::Display for NoteArea {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoteArea::Segment(i) => write!(f, "program header {i}"),
            NoteArea::Section(i) => write!(f, "section {i}"),
        }
    }
}

/// Where the Xen notes were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteSource {
    /// In `PT_NOTE` segments (the normal case).
    Segments,
    /// In `SHT_NOTE` sections (the fallback).
    Sections,
}

/// The role a kernel is being loaded for; some notes only matter for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The initial, privileged domain, built by the hypervisor.
    Dom0,
    /// An unprivileged domain, built by the toolstack.
    DomU,
}

/// Why the Xen notes refuse (or fail to describe) a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteError {
    /// The ELF structure around the notes is broken.
    Elf(ElfError),
    /// A Xen note runs past the end of its note area.
    TruncatedXenNote {
        /// The note area.
        area: NoteArea,
        /// Offset of the note within the area.
        offset: usize,
    },
    /// More than [`MAX_NOTES`] notes.
    TooManyNotes,
    /// A numeric note's descriptor has a size Xen cannot read as a number.
    BadNumber {
        /// The note type.
        note_type: u32,
        /// The descriptor size.
        size: usize,
    },
    /// A string note is not valid UTF-8.
    BadString {
        /// The note type.
        note_type: u32,
    },
    /// `FEATURES` marks as required (`!`) a feature Xen does not know.
    UnknownRequiredFeature(NoteText),
    /// `FEATURES` marks as required a feature the caller does not support.
    UnsupportedRequiredFeature(&'static str),
    /// The image uses the legacy `__xen_guest` section instead of notes.
    LegacyXenGuest,
    /// The image has no Xen notes.
    NoXenNotes,
    /// `XEN_VERSION` is missing or does not start with `xen-3.0`.
    BadXenVersion(Option<NoteText>),
    /// `LOADER` is not `generic` and `GUEST_OS` does not start with `linux`.
    BadLoader {
        /// `LOADER`, if present.
        loader: Option<NoteText>,
        /// `GUEST_OS`, if present.
        guest_os: Option<NoteText>,
    },
    /// Loading as dom0, but `SUPPORTED_FEATURES` lacks `XENFEAT_dom0`.
    NotDom0Capable,
    /// Loading as a domU, but the kernel requires `dom0`.
    Dom0Only,
    /// `PADDR_OFFSET` is given but `VIRT_BASE` is not.
    PaddrOffsetWithoutVirtBase,
    /// `pend + virt_offset` wrapped below `pstart + virt_offset`.
    KernelExtentInverted {
        /// Start of the kernel (virtual).
        start: u64,
        /// End of the kernel (virtual, exclusive).
        end: u64,
    },
    /// `VIRT_BASE` lies above the kernel's first byte.
    VirtBaseAboveKernel {
        /// `VIRT_BASE`.
        virt_base: u64,
        /// Start of the kernel (virtual).
        kernel_start: u64,
    },
    /// The entry point lies outside `[start, end]`.
    EntryOutsideKernel {
        /// The entry point.
        entry: u64,
        /// Start of the kernel (virtual).
        start: u64,
        /// End of the kernel (virtual, exclusive).
        end: u64,
    },
    /// `INIT_P2M` lies inside the kernel.
    P2mBaseInsideKernel {
        /// `INIT_P2M`.
        p2m_base: u64,
        /// Start of the kernel (virtual).
        start: u64,
        /// End of the kernel (virtual, exclusive).
        end: u64,
    },
    /// `HYPERCALL_PAGE` lies outside the kernel.
    HypercallPageOutsideKernel {
        /// `HYPERCALL_PAGE`.
        va: u64,
        /// Start of the kernel (virtual).
        start: u64,
        /// End of the kernel (virtual, exclusive).
        end: u64,
    },
    /// `HYPERCALL_PAGE` is not page-aligned.
    HypercallPageMisaligned(u64),
}

impl From<ElfError> for NoteError {
    fn from(e: ElfError) -> Self {
        NoteError::Elf(e)
    }
}

impl fmt::Display for NoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NoteError::Elf(e) => e.fmt(f),
            NoteError::TruncatedXenNote { area, offset } => {
                write!(f, "{area}: Xen note at offset {offset:#x} runs past the end of the note data")
            }
            NoteError::TooManyNotes => write!(f, "more than {MAX_NOTES} ELF notes; refusing to examine more"),
            NoteError::BadNumber { note_type, size } => {
                let name = note_type_name(note_type);
                match note_type {
                    XEN_ELFNOTE_L1_MFN_VALID => {
                        write!(f, "note {name}: {size} bytes is not a pair of 4- or 8-byte numbers")
                    }
                    XEN_ELFNOTE_SUPPORTED_FEATURES => {
                        write!(f, "note {name}: {size} bytes is not a whole number of 4-byte feature maps")
                    }
                    _ => write!(f, "note {name}: a {size}-byte value is not a 1-, 2-, 4- or 8-byte number"),
                }
            }
            NoteError::BadString { note_type } => {
                write!(f, "note {}: string is not valid UTF-8", note_type_name(note_type))
            }
            NoteError::UnknownRequiredFeature(name) => write!(f, "kernel requires feature {name}, which is unknown"),
            NoteError::UnsupportedRequiredFeature(name) => {
                write!(f, "kernel requires feature \"{name}\", which this hypervisor does not support")
            }
            NoteError::LegacyXenGuest => {
                f.write_str("legacy __xen_guest section is not supported (the kernel needs Xen ELF notes)")
            }
            NoteError::NoXenNotes => f.write_str("no Xen ELF notes found; not a Xen PV kernel"),
            NoteError::BadXenVersion(v) => {
                write!(f, "XEN_VERSION note is {}; it must start with \"xen-3.0\"", Shown(v))
            }
            NoteError::BadLoader { loader, guest_os } => write!(
                f,
                "LOADER note is {} and GUEST_OS note is {}; LOADER must be \"generic\" unless GUEST_OS starts \
                 with \"linux\"",
                Shown(loader),
                Shown(guest_os)
            ),
            NoteError::NotDom0Capable => {
                f.write_str("kernel cannot run as dom0 (its SUPPORTED_FEATURES note lacks XENFEAT_dom0)")
            }
            NoteError::Dom0Only => {
                f.write_str("kernel requires feature \"dom0\" and cannot run as an unprivileged domain")
            }
            NoteError::PaddrOffsetWithoutVirtBase => f.write_str("PADDR_OFFSET note given without VIRT_BASE"),
            NoteError::KernelExtentInverted { start, end } => {
                write!(f, "kernel placement wraps around the address space (start {start:#x}, end {end:#x})")
            }
            NoteError::VirtBaseAboveKernel { virt_base, kernel_start } => {
                write!(f, "VIRT_BASE {virt_base:#x} lies above the kernel's start {kernel_start:#x}")
            }
            NoteError::EntryOutsideKernel { entry, start, end } => {
                write!(f, "entry point {entry:#x} lies outside the kernel {start:#x}..{end:#x}")
            }
            NoteError::P2mBaseInsideKernel { p2m_base, start, end } => {
                write!(f, "INIT_P2M {p2m_base:#x} lies inside the kernel {start:#x}..{end:#x}")
            }
            NoteError::HypercallPageOutsideKernel { va, start, end } => {
                write!(f, "HYPERCALL_PAGE {va:#x} lies outside the kernel {start:#x}..{end:#x}")
            }
            NoteError::HypercallPageMisaligned(va) => write!(f, "HYPERCALL_PAGE {va:#x} is not page-aligned"),
        }
    }
}

/// One ELF note of any owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note<'a> {
    /// The name field (`namesz` bytes, normally NUL-terminated).
    pub name: &'a [u8],
    /// The note type.
    pub note_type: u32,
    /// The descriptor (`descsz` bytes).
    pub desc: &'a [u8],
    /// Offset of the note's header within its area.
    pub offset: usize,
}

impl Note<'_> {
    /// Whether the owner is Xen (`namesz` 4, name `"Xen\0"`).
    pub fn is_xen(&self) -> bool {
        self.name == XEN_ELFNOTE_OWNER
    }
}

/// A note that runs past the end of its area; see [`NoteIter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TruncatedNote {
    /// Offset of the note's header within its area.
    pub offset: usize,
    /// Whether the (complete) name says the owner is Xen.
    pub xen: bool,
}

/// Iterator over the notes of one area (4-byte aligned, as Xen reads them).
/// Yields `Err` once, for a truncated note, and then stops.
#[derive(Clone, Debug)]
pub struct NoteIter<'a> {
    data: &'a [u8],
    pos: usize,
}

/// Iterates over the notes in `data` (a `PT_NOTE` segment or `SHT_NOTE`
/// section).
pub fn notes(data: &[u8]) -> NoteIter<'_> {
    NoteIter { data, pos: 0 }
}

fn align4(x: usize) -> Option<usize> {
    Some(x.checked_add(3)? & !3)
}

impl<'a> NoteIter<'a> {
    fn parse(&self, offset: usize) -> Result<(Note<'a>, Option<usize>), TruncatedNote> {
        let d = self.data;
        let short = TruncatedNote { offset, xen: false };
        let word = |k: usize| offset.checked_add(4 * k).and_then(|at| super::elf::u32_at(d, at)).ok_or(short);
        let (namesz, descsz, note_type) = (word(0)? as usize, word(1)? as usize, word(2)?);
        let name_start = offset.checked_add(12).ok_or(short)?;
        let name_end = name_start.checked_add(namesz).ok_or(short)?;
        let name = d.get(name_start..name_end).ok_or(short)?;
        let xen = name == XEN_ELFNOTE_OWNER;
        let cut = TruncatedNote { offset, xen };
        let desc_start = align4(name_end).ok_or(cut)?;
        let desc_end = desc_start.checked_add(descsz).ok_or(cut)?;
        let desc = d.get(desc_start..desc_end).ok_or(cut)?;
        Ok((Note { name, note_type, desc, offset }, align4(desc_end)))
    }
}

impl<'a> Iterator for NoteIter<'a> {
    type Item = Result<Note<'a>, TruncatedNote>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.data.len() {
            return None;
        }
        match self.parse(self.pos) {
            Ok((note, next)) => {
                self.pos = next.unwrap_or(usize::MAX);
                Some(Ok(note))
            }
            Err(t) => {
                self.pos = usize::MAX;
                Some(Err(t))
            }
        }
    }
}

/// The `XENFEAT_*` bits (submap 0) a kernel declares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeatureSet {
    /// Features the kernel can use: named in `FEATURES` (with or without
    /// `!`) or set in the `SUPPORTED_FEATURES` bitmap.
    pub supported: u32,
    /// Features the kernel cannot run without (`!name` in `FEATURES`).
    pub required: u32,
}

impl FeatureSet {
    /// Whether the kernel supports feature `bit`.
    pub const fn supports(&self, bit: u32) -> bool {
        bit < 32 && self.supported & (1 << bit) != 0
    }

    /// Whether the kernel requires feature `bit`.
    pub const fn requires(&self, bit: u32) -> bool {
        bit < 32 && self.required & (1 << bit) != 0
    }

    /// Adds the features of a `FEATURES` string (`|`-separated names, `!`
    /// marking a required one). Unknown names are ignored unless required.
    pub fn add_from_str(&mut self, features: &str) -> Result<(), NoteError> {
        for token in features.split('|') {
            match token.strip_prefix('!') {
                Some(name) => {
                    let bit = feature_bit(name).ok_or(NoteError::UnknownRequiredFeature(NoteText::new(name)))?;
                    self.supported |= 1 << bit;
                    self.required |= 1 << bit;
                }
                None => {
                    if let Some(bit) = feature_bit(token) {
                        self.supported |= 1 << bit;
                    }
                }
            }
        }
        Ok(())
    }
}

/// What a kernel's Xen notes say. Strings borrow the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenNotes<'a> {
    /// Where the notes were found.
    pub source: NoteSource,
    /// Number of Xen notes applied.
    pub count: usize,
    /// `ENTRY`: entry point (default `e_entry`).
    pub entry: Option<u64>,
    /// `HYPERCALL_PAGE`: where the hypervisor writes the hypercall page.
    pub hypercall_page: Option<u64>,
    /// `VIRT_BASE`: the VA of guest pfn 0 (default 0).
    pub virt_base: Option<u64>,
    /// `PADDR_OFFSET` (default 0).
    pub paddr_offset: Option<u64>,
    /// `XEN_VERSION`.
    pub xen_version: Option<&'a str>,
    /// `GUEST_OS`.
    pub guest_os: Option<&'a str>,
    /// `GUEST_VERSION`.
    pub guest_version: Option<&'a str>,
    /// `LOADER`.
    pub loader: Option<&'a str>,
    /// `PAE_MODE` (32-bit guests only; kept for information).
    pub pae_mode: Option<&'a str>,
    /// `FEATURES`, as written (the last one, if several).
    pub features_str: Option<&'a str>,
    /// Features from `FEATURES` and `SUPPORTED_FEATURES`.
    pub features: FeatureSet,
    /// `SUPPORTED_FEATURES` submap 0, if the note is present.
    pub supported_features: Option<u32>,
    /// `BSD_SYMTAB` is `"yes"` (not supported by the layout; see
    /// [`layout`](super::layout)).
    pub bsd_symtab: bool,
    /// `HV_START_LOW` (32-bit guests only).
    pub hv_start_low: Option<u64>,
    /// `L1_MFN_VALID`: `(mask, value)`.
    pub l1_mfn_valid: Option<(u64, u64)>,
    /// `SUSPEND_CANCEL`.
    pub suspend_cancel: Option<u64>,
    /// `INIT_P2M`: where the kernel would like the p2m mapped (not honoured:
    /// the p2m is placed in the initial mapping, which the ABI allows).
    pub init_p2m: Option<u64>,
    /// `MOD_START_PFN`: nonzero if the kernel accepts `SIF_MOD_START_PFN`.
    pub mod_start_pfn: Option<u64>,
    /// `PHYS32_ENTRY`: the PVH entry point (unused for PV).
    pub phys32_entry: Option<u64>,
}

fn number(note: &Note<'_>) -> Result<u64, NoteError> {
    let d = note.desc;
    let bad = NoteError::BadNumber { note_type: note.note_type, size: d.len() };
    match d.len() {
        1 => Ok(u64::from(d[0])),
        2 => super::elf::u16_at(d, 0).map(u64::from).ok_or(bad),
        4 => super::elf::u32_at(d, 0).map(u64::from).ok_or(bad),
        8 => super::elf::u64_at(d, 0).ok_or(bad),
        _ => Err(bad),
    }
}

fn string<'a>(note: &Note<'a>) -> Result<&'a str, NoteError> {
    let d = note.desc;
    let len = d.iter().position(|&b| b == 0).unwrap_or(d.len());
    core::str::from_utf8(&d[..len]).map_err(|_| NoteError::BadString { note_type: note.note_type })
}

impl<'a> XenNotes<'a> {
    const fn empty() -> Self {
        XenNotes {
            source: NoteSource::Segments,
            count: 0,
            entry: None,
            hypercall_page: None,
            virt_base: None,
            paddr_offset: None,
            xen_version: None,
            guest_os: None,
            guest_version: None,
            loader: None,
            pae_mode: None,
            features_str: None,
            features: FeatureSet { supported: 0, required: 0 },
            supported_features: None,
            bsd_symtab: false,
            hv_start_low: None,
            l1_mfn_valid: None,
            suspend_cancel: None,
            init_p2m: None,
            mod_start_pfn: None,
            phys32_entry: None,
        }
    }

    /// Finds and parses the Xen notes (segments first, then sections). Fails
    /// on malformed Xen notes, an unknown required feature, a legacy
    /// `__xen_guest` image or no Xen notes at all. Does not [`check`] them.
    ///
    /// [`check`]: XenNotes::check
    pub fn find(elf: &Elf<'a>) -> Result<Self, NoteError> {
        let mut notes = XenNotes::empty();
        let mut seen = 0;
        for ph in elf.program_headers() {
            if ph.p_type != PT_NOTE || ph.offset == 0 {
                continue;
            }
            let data = elf.program_header_data(&ph)?;
            notes.parse_area(data, NoteArea::Segment(ph.index), &mut seen)?;
        }
        if notes.count == 0 {
            notes.source = NoteSource::Sections;
            for sh in elf.section_headers().skip(1) {
                if sh.sh_type != SHT_NOTE {
                    continue;
                }
                let data = elf.section_data(&sh)?;
                notes.parse_area(data, NoteArea::Section(sh.index), &mut seen)?;
            }
        }
        if notes.count == 0 {
            if elf.section_by_name(b"__xen_guest").is_some() {
                return Err(NoteError::LegacyXenGuest);
            }
            return Err(NoteError::NoXenNotes);
        }
        Ok(notes)
    }

    fn parse_area(&mut self, data: &'a [u8], area: NoteArea, seen: &mut usize) -> Result<(), NoteError> {
        for item in notes(data) {
            *seen += 1;
            if *seen > MAX_NOTES {
                return Err(NoteError::TooManyNotes);
            }
            match item {
                Ok(note) if note.is_xen() => {
                    self.apply(&note)?;
                    self.count += 1;
                }
                Ok(_) => {}
                Err(TruncatedNote { offset, xen: true }) => return Err(NoteError::TruncatedXenNote { area, offset }),
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Applies one Xen note. Unknown types are ignored, as Xen ignores them.
    fn apply(&mut self, note: &Note<'a>) -> Result<(), NoteError> {
        match note.note_type {
            XEN_ELFNOTE_ENTRY => self.entry = Some(number(note)?),
            XEN_ELFNOTE_HYPERCALL_PAGE => self.hypercall_page = Some(number(note)?),
            XEN_ELFNOTE_VIRT_BASE => self.virt_base = Some(number(note)?),
            XEN_ELFNOTE_PADDR_OFFSET => self.paddr_offset = Some(number(note)?),
            XEN_ELFNOTE_HV_START_LOW => self.hv_start_low = Some(number(note)?),
            XEN_ELFNOTE_SUSPEND_CANCEL => self.suspend_cancel = Some(number(note)?),
            XEN_ELFNOTE_INIT_P2M => self.init_p2m = Some(number(note)?),
            XEN_ELFNOTE_MOD_START_PFN => self.mod_start_pfn = Some(number(note)?),
            XEN_ELFNOTE_PHYS32_ENTRY => self.phys32_entry = Some(number(note)?),
            XEN_ELFNOTE_XEN_VERSION => self.xen_version = Some(string(note)?),
            XEN_ELFNOTE_GUEST_OS => self.guest_os = Some(string(note)?),
            XEN_ELFNOTE_GUEST_VERSION => self.guest_version = Some(string(note)?),
            XEN_ELFNOTE_LOADER => self.loader = Some(string(note)?),
            XEN_ELFNOTE_PAE_MODE => self.pae_mode = Some(string(note)?),
            XEN_ELFNOTE_BSD_SYMTAB => self.bsd_symtab = string(note)? == "yes",
            XEN_ELFNOTE_FEATURES => {
                let s = string(note)?;
                self.features.add_from_str(s)?;
                self.features_str = Some(s);
            }
            XEN_ELFNOTE_SUPPORTED_FEATURES => {
                let d = note.desc;
                let bad = NoteError::BadNumber { note_type: note.note_type, size: d.len() };
                if d.is_empty() || !d.len().is_multiple_of(4) {
                    return Err(bad);
                }
                // Submap 0 is the only one (XENFEAT_NR_SUBMAPS = 1).
                let map = super::elf::u32_at(d, 0).ok_or(bad)?;
                self.features.supported |= map;
                self.supported_features = Some(self.supported_features.unwrap_or(0) | map);
            }
            XEN_ELFNOTE_L1_MFN_VALID => {
                let d = note.desc;
                let bad = NoteError::BadNumber { note_type: note.note_type, size: d.len() };
                let pair = match d.len() {
                    8 => super::elf::u32_at(d, 0).zip(super::elf::u32_at(d, 4)).map(|(m, v)| (m.into(), v.into())),
                    16 => super::elf::u64_at(d, 0).zip(super::elf::u64_at(d, 8)),
                    _ => None,
                };
                self.l1_mfn_valid = Some(pair.ok_or(bad)?);
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether `MOD_START_PFN` is set (the kernel accepts a module given by
    /// pfn with `SIF_MOD_START_PFN`).
    pub fn accepts_mod_start_pfn(&self) -> bool {
        self.mod_start_pfn.is_some_and(|v| v != 0)
    }

    /// Checks the notes as Xen's loader does for a 64-bit PV kernel:
    /// `LOADER` must start with `generic` unless `GUEST_OS` starts with
    /// `linux`; `XEN_VERSION` must start with `xen-3.0`; every required
    /// feature must be in `supported_features` (a bitmap of `XENFEAT_*`
    /// bits; `XENFEAT_dom0` is decided by `role` instead: a dom0 whose
    /// `SUPPORTED_FEATURES` note lacks it is refused, and so is a domU that
    /// requires it).
    pub fn check(&self, supported_features: u32, role: Role) -> Result<(), NoteError> {
        let generic = self.loader.is_some_and(|l| l.starts_with("generic"));
        let linux = self.guest_os.is_some_and(|g| g.starts_with("linux"));
        if !generic && !linux {
            return Err(NoteError::BadLoader {
                loader: self.loader.map(NoteText::new),
                guest_os: self.guest_os.map(NoteText::new),
            });
        }
        if !self.xen_version.is_some_and(|v| v.starts_with("xen-3.0")) {
            return Err(NoteError::BadXenVersion(self.xen_version.map(NoteText::new)));
        }
        match role {
            Role::Dom0 => {
                if self.supported_features.is_some() && !self.features.supports(XENFEAT_DOM0) {
                    return Err(NoteError::NotDom0Capable);
                }
            }
            Role::DomU => {
                if self.features.requires(XENFEAT_DOM0) {
                    return Err(NoteError::Dom0Only);
                }
            }
        }
        let missing = self.features.required & !supported_features & !(1 << XENFEAT_DOM0);
        if missing != 0 {
            let bit = missing.trailing_zeros();
            return Err(NoteError::UnsupportedRequiredFeature(feature_name(bit).unwrap_or("unknown")));
        }
        Ok(())
    }

    /// Places the kernel as Xen does: `virt_offset = VIRT_BASE -
    /// PADDR_OFFSET` (both default 0; `PADDR_OFFSET` without `VIRT_BASE` is
    /// refused), the kernel occupies `[pstart + virt_offset, pend +
    /// virt_offset)` where `pstart/pend` come from the loadable segments'
    /// `p_paddr`, and the entry is `ENTRY` or `e_entry`. Checks that
    /// `VIRT_BASE <= start <= entry <= end`, that `INIT_P2M` (if given) is
    /// not inside the kernel, and, stricter than Xen, that `HYPERCALL_PAGE`
    /// (if given) is a page-aligned address inside the kernel.
    pub fn placement(&self, elf: &Elf<'_>) -> Result<Placement, NoteError> {
        if self.paddr_offset.is_some() && self.virt_base.is_none() {
            return Err(NoteError::PaddrOffsetWithoutVirtBase);
        }
        let virt_base = self.virt_base.unwrap_or(0);
        let paddr_offset = self.paddr_offset.unwrap_or(0);
        let virt_offset = virt_base.wrapping_sub(paddr_offset);
        let (pstart, pend) = elf.paddr_extent();
        let start = pstart.wrapping_add(virt_offset);
        let end = pend.wrapping_add(virt_offset);
        let entry = self.entry.unwrap_or(elf.entry());
        if start > end {
            return Err(NoteError::KernelExtentInverted { start, end });
        }
        if entry < start || entry > end {
            return Err(NoteError::EntryOutsideKernel { entry, start, end });
        }
        if virt_base > start {
            return Err(NoteError::VirtBaseAboveKernel { virt_base, kernel_start: start });
        }
        if let Some(p2m_base) = self.init_p2m {
            if (start..end).contains(&p2m_base) {
                return Err(NoteError::P2mBaseInsideKernel { p2m_base, start, end });
            }
        }
        if let Some(va) = self.hypercall_page {
            if !va.is_multiple_of(4096) {
                return Err(NoteError::HypercallPageMisaligned(va));
            }
            if !(start..end).contains(&va) {
                return Err(NoteError::HypercallPageOutsideKernel { va, start, end });
            }
        }
        Ok(Placement {
            virt_base,
            paddr_offset,
            virt_offset,
            kernel_start: start,
            kernel_end: end,
            entry,
            hypercall_page: self.hypercall_page,
        })
    }
}

/// Where the kernel goes in the guest's virtual address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// VA of guest pfn 0 (`VIRT_BASE`).
    pub virt_base: u64,
    /// `PADDR_OFFSET`.
    pub paddr_offset: u64,
    /// `virt_base - paddr_offset` (wrapping): added to a segment's `p_paddr`
    /// gives its VA.
    pub virt_offset: u64,
    /// First byte of the kernel (`pstart + virt_offset`).
    pub kernel_start: u64,
    /// End of the kernel, exclusive (`pend + virt_offset`).
    pub kernel_end: u64,
    /// Entry point (`ENTRY` or `e_entry`).
    pub entry: u64,
    /// VA of the hypercall page, if the kernel wants one.
    pub hypercall_page: Option<u64>,
}

impl Placement {
    /// The VA a loadable segment is copied to: `p_paddr + virt_offset` (Xen
    /// places segments by physical address; `p_vaddr` is not used).
    pub const fn segment_va(&self, seg: &super::elf::Segment) -> u64 {
        seg.paddr.wrapping_add(self.virt_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testimage::{NotesIn, TestElf, TestNote, LINUX_ENTRY, LINUX_HYPERCALL_PAGE, LINUX_VIRT_BASE};
    use super::*;
    use crate::sched::{XENFEAT_LINUX_RSDP_UNRESTRICTED, XENFEAT_WRITABLE_PAGE_TABLES};

    const PT: u32 = 1 << XENFEAT_WRITABLE_PAGE_TABLES;

    fn parse(t: &TestElf) -> Result<XenNotes<'static>, NoteError> {
        let img: &'static [u8] = Vec::leak(t.build());
        XenNotes::find(&Elf::parse(img).unwrap())
    }

    fn with_notes(notes: Vec<TestNote>) -> TestElf {
        TestElf { notes, ..TestElf::linux_like() }
    }

    fn replace(t: &mut TestElf, note_type: u32, note: Option<TestNote>) {
        t.notes.retain(|n| n.note_type != note_type || n.name != b"Xen\0");
        t.notes.extend(note);
    }

    #[test]
    fn linux_like_notes() {
        let n = parse(&TestElf::linux_like()).unwrap();
        assert_eq!(n.source, NoteSource::Segments);
        assert_eq!(n.count, 14);
        assert_eq!(n.entry, Some(LINUX_ENTRY));
        assert_eq!(n.hypercall_page, Some(LINUX_HYPERCALL_PAGE));
        assert_eq!(n.virt_base, Some(LINUX_VIRT_BASE));
        assert_eq!(n.paddr_offset, Some(0));
        assert_eq!(n.xen_version, Some("xen-3.0"));
        assert_eq!(n.guest_os, Some("linux"));
        assert_eq!(n.guest_version, Some("2.6"));
        assert_eq!(n.loader, Some("generic"));
        assert_eq!(n.pae_mode, Some("yes"));
        assert_eq!(n.features_str, Some("!writable_page_tables"));
        assert_eq!(n.features.required, PT);
        assert_eq!(n.features.supported, PT | (1 << XENFEAT_DOM0) | (1 << XENFEAT_LINUX_RSDP_UNRESTRICTED));
        assert_eq!(n.l1_mfn_valid, Some((1, 1)));
        assert_eq!(n.init_p2m, Some(0x80_0000_0000));
        assert!(n.accepts_mod_start_pfn());
        assert!(!n.bsd_symtab);
        n.check(PT, Role::Dom0).unwrap();
        n.check(PT, Role::DomU).unwrap();
        assert_eq!(n.check(0, Role::DomU), Err(NoteError::UnsupportedRequiredFeature("writable_page_tables")));
    }

    #[test]
    fn placement_follows_paddr() {
        let t = TestElf::linux_like();
        let img = t.build();
        let elf = Elf::parse(&img).unwrap();
        let p = XenNotes::find(&elf).unwrap().placement(&elf).unwrap();
        assert_eq!(p.virt_offset, LINUX_VIRT_BASE);
        assert_eq!(p.kernel_start, 0xffff_ffff_8100_0000);
        assert_eq!(p.kernel_end, 0xffff_ffff_8100_5000);
        assert_eq!(p.entry, LINUX_ENTRY);
        for (seg, load) in elf.segments().zip(&t.loads) {
            assert_eq!(p.segment_va(&seg), load.vaddr);
        }
    }

    #[test]
    fn placement_ignores_vaddr_and_applies_paddr_offset() {
        // Old-style kernel: p_paddr holds the virtual address, PADDR_OFFSET
        // = VIRT_BASE; p_vaddr is deliberately bogus.
        let mut t = TestElf::minimal();
        for l in &mut t.loads {
            l.paddr = 0xffff_ffff_8020_0000;
            l.vaddr = 0x1234_0000;
        }
        t.entry = 0xffff_ffff_8020_0000;
        t.notes.push(TestNote::xen_u64(XEN_ELFNOTE_VIRT_BASE, 0xffff_ffff_8000_0000));
        t.notes.push(TestNote::xen_u64(XEN_ELFNOTE_PADDR_OFFSET, 0xffff_ffff_8000_0000));
        replace(&mut t, XEN_ELFNOTE_HYPERCALL_PAGE, None);
        let img = t.build();
        let elf = Elf::parse(&img).unwrap();
        let p = XenNotes::find(&elf).unwrap().placement(&elf).unwrap();
        assert_eq!((p.virt_offset, p.kernel_start), (0, 0xffff_ffff_8020_0000));
        assert_eq!(p.kernel_end, 0xffff_ffff_8020_1800);
    }

    fn placement(t: &TestElf) -> Result<Placement, NoteError> {
        let img: &'static [u8] = Vec::leak(t.build());
        let elf = Elf::parse(img).unwrap();
        XenNotes::find(&elf)?.placement(&elf)
    }

    #[test]
    fn placement_checks() {
        let start = 0xffff_ffff_8100_0000;
        let end = 0xffff_ffff_8100_5000;
        let mut t = TestElf::linux_like();
        replace(&mut t, XEN_ELFNOTE_ENTRY, Some(TestNote::xen_u64(XEN_ELFNOTE_ENTRY, end + 1)));
        assert_eq!(placement(&t), Err(NoteError::EntryOutsideKernel { entry: end + 1, start, end }));
        // The end itself is accepted, as in Xen.
        replace(&mut t, XEN_ELFNOTE_ENTRY, Some(TestNote::xen_u64(XEN_ELFNOTE_ENTRY, end)));
        assert!(placement(&t).is_ok());
        // Without ENTRY, e_entry is used.
        replace(&mut t, XEN_ELFNOTE_ENTRY, None);
        t.entry = start - 1;
        assert_eq!(placement(&t), Err(NoteError::EntryOutsideKernel { entry: start - 1, start, end }));

        let mut t = TestElf::linux_like();
        replace(&mut t, XEN_ELFNOTE_VIRT_BASE, None);
        assert_eq!(placement(&t), Err(NoteError::PaddrOffsetWithoutVirtBase));

        // PADDR_OFFSET above pstart puts the kernel below VIRT_BASE.
        let mut t = TestElf::linux_like();
        replace(&mut t, XEN_ELFNOTE_PADDR_OFFSET, Some(TestNote::xen_u64(XEN_ELFNOTE_PADDR_OFFSET, 0x200_0000)));
        replace(&mut t, XEN_ELFNOTE_ENTRY, None);
        replace(&mut t, XEN_ELFNOTE_HYPERCALL_PAGE, None);
        t.entry = LINUX_VIRT_BASE - 0x100_0000;
        assert_eq!(
            placement(&t),
            Err(NoteError::VirtBaseAboveKernel {
                virt_base: LINUX_VIRT_BASE,
                kernel_start: LINUX_VIRT_BASE - 0x100_0000
            })
        );

        let mut t = TestElf::linux_like();
        replace(&mut t, XEN_ELFNOTE_INIT_P2M, Some(TestNote::xen_u64(XEN_ELFNOTE_INIT_P2M, start)));
        assert_eq!(placement(&t), Err(NoteError::P2mBaseInsideKernel { p2m_base: start, start, end }));

        let mut t = TestElf::linux_like();
        replace(&mut t, XEN_ELFNOTE_HYPERCALL_PAGE, Some(TestNote::xen_u64(XEN_ELFNOTE_HYPERCALL_PAGE, end)));
        assert_eq!(placement(&t), Err(NoteError::HypercallPageOutsideKernel { va: end, start, end }));
        let hp = TestNote::xen_u64(XEN_ELFNOTE_HYPERCALL_PAGE, start + 8);
        replace(&mut t, XEN_ELFNOTE_HYPERCALL_PAGE, Some(hp));
        assert_eq!(placement(&t), Err(NoteError::HypercallPageMisaligned(start + 8)));

        // A PADDR_OFFSET pushing pend + virt_offset past 2^64 wraps.
        let mut t = TestElf::linux_like();
        let po = TestNote::xen_u64(XEN_ELFNOTE_PADDR_OFFSET, 0xffff_ffff_8100_2000);
        replace(&mut t, XEN_ELFNOTE_PADDR_OFFSET, Some(po));
        assert!(matches!(placement(&t), Err(NoteError::KernelExtentInverted { .. })));
    }

    #[test]
    fn numeric_sizes() {
        for (bytes, want) in [
            (&[0x12][..], Ok(0x12)),
            (&[0x34, 0x12][..], Ok(0x1234)),
            (&[0x78, 0x56, 0x34, 0x12][..], Ok(0x1234_5678)),
            (&0xffff_ffff_8000_0000u64.to_le_bytes()[..], Ok(0xffff_ffff_8000_0000)),
            (&[1, 2, 3][..], Err(NoteError::BadNumber { note_type: XEN_ELFNOTE_VIRT_BASE, size: 3 })),
            (&[][..], Err(NoteError::BadNumber { note_type: XEN_ELFNOTE_VIRT_BASE, size: 0 })),
        ] {
            let t = with_notes(vec![TestNote::xen(XEN_ELFNOTE_VIRT_BASE, bytes)]);
            assert_eq!(parse(&t).map(|n| n.virt_base.unwrap()), want, "{bytes:?}");
        }
        let t = with_notes(vec![TestNote::xen(XEN_ELFNOTE_L1_MFN_VALID, &[1, 0, 0, 0, 1, 0, 0, 0])]);
        assert_eq!(parse(&t).unwrap().l1_mfn_valid, Some((1, 1)));
        let t = with_notes(vec![TestNote::xen(XEN_ELFNOTE_L1_MFN_VALID, &[1, 0, 0, 0])]);
        assert_eq!(
            parse(&t).unwrap_err().to_string(),
            "note L1_MFN_VALID: 4 bytes is not a pair of 4- or 8-byte numbers"
        );
        let t = with_notes(vec![TestNote::xen(XEN_ELFNOTE_SUPPORTED_FEATURES, &[1, 0, 0])]);
        assert!(matches!(parse(&t), Err(NoteError::BadNumber { size: 3, .. })));
    }

    #[test]
    fn strings_end_at_nul_or_descriptor_end() {
        let t = with_notes(vec![
            TestNote::xen(XEN_ELFNOTE_GUEST_OS, b"linux\0junk"),
            TestNote::xen(XEN_ELFNOTE_LOADER, b"generic"),
        ]);
        let n = parse(&t).unwrap();
        assert_eq!((n.guest_os, n.loader), (Some("linux"), Some("generic")));
        let t = with_notes(vec![TestNote::xen(XEN_ELFNOTE_GUEST_OS, b"\xff\xfe\0")]);
        assert_eq!(parse(&t), Err(NoteError::BadString { note_type: XEN_ELFNOTE_GUEST_OS }));
    }

    #[test]
    fn features() {
        let mut f = FeatureSet::default();
        f.add_from_str("writable_descriptor_tables|!pae_pgdir_above_4gb||no_such_thing|dom0").unwrap();
        assert_eq!(f.required, 1 << XENFEAT_PAE_PGDIR_ABOVE_4GB);
        assert_eq!(
            f.supported,
            (1 << XENFEAT_WRITABLE_DESCRIPTOR_TABLES) | (1 << XENFEAT_PAE_PGDIR_ABOVE_4GB) | (1 << XENFEAT_DOM0)
        );
        let err = FeatureSet::default().add_from_str("dom0|!no_such_thing").unwrap_err();
        assert_eq!(err, NoteError::UnknownRequiredFeature(NoteText::new("no_such_thing")));
        assert_eq!(err.to_string(), "kernel requires feature \"no_such_thing\", which is unknown");
        // Names the headers have but Xen's parser does not are unknown.
        assert!(FeatureSet::default().add_from_str("!gnttab_map_avail_bits").is_err());
        for (name, bit) in FEATURE_NAMES {
            assert_eq!((feature_bit(name), feature_name(bit)), (Some(bit), Some(name)));
        }
        // Found while parsing notes too.
        let t = with_notes(vec![TestNote::xen_str(XEN_ELFNOTE_FEATURES, "!nope")]);
        assert!(matches!(parse(&t), Err(NoteError::UnknownRequiredFeature(_))));
    }

    #[test]
    fn check_rules() {
        let base = || {
            vec![
                TestNote::xen_str(XEN_ELFNOTE_XEN_VERSION, "xen-3.0"),
                TestNote::xen_str(XEN_ELFNOTE_LOADER, "generic"),
            ]
        };
        let check = |notes: Vec<TestNote>| parse(&with_notes(notes)).unwrap().check(0, Role::DomU);
        assert_eq!(check(base()), Ok(()));

        let mut n = base();
        n[0] = TestNote::xen_str(XEN_ELFNOTE_XEN_VERSION, "xen-2.0");
        let err = check(n).unwrap_err();
        assert_eq!(err.to_string(), "XEN_VERSION note is \"xen-2.0\"; it must start with \"xen-3.0\"");
        assert_eq!(check(vec![TestNote::xen_str(XEN_ELFNOTE_LOADER, "generic")]), Err(NoteError::BadXenVersion(None)));

        let mut n = base();
        n[1] = TestNote::xen_str(XEN_ELFNOTE_LOADER, "bsd");
        assert_eq!(
            check(n.clone()).unwrap_err().to_string(),
            "LOADER note is \"bsd\" and GUEST_OS note is absent; LOADER must be \"generic\" unless GUEST_OS \
             starts with \"linux\""
        );
        n.push(TestNote::xen_str(XEN_ELFNOTE_GUEST_OS, "linux-ish"));
        assert_eq!(check(n), Ok(()));

        // dom0 rules.
        let mut n = base();
        n.push(TestNote::xen(XEN_ELFNOTE_SUPPORTED_FEATURES, &0u32.to_le_bytes()));
        let notes = parse(&with_notes(n)).unwrap();
        assert_eq!(notes.check(0, Role::Dom0), Err(NoteError::NotDom0Capable));
        assert_eq!(notes.check(0, Role::DomU), Ok(()));
        let mut n = base();
        n.push(TestNote::xen_str(XEN_ELFNOTE_FEATURES, "!dom0"));
        let notes = parse(&with_notes(n)).unwrap();
        assert_eq!(notes.check(0, Role::Dom0), Ok(()));
        assert_eq!(notes.check(0, Role::DomU), Err(NoteError::Dom0Only));
    }

    #[test]
    fn section_fallback() {
        let mut t = TestElf::linux_like();
        t.notes_in = NotesIn::Section;
        let n = parse(&t).unwrap();
        assert_eq!((n.source, n.count), (NoteSource::Sections, 14));
        assert_eq!(n.entry, Some(LINUX_ENTRY));
    }

    #[test]
    fn segments_win_over_sections() {
        // If the PT_NOTE carries no Xen note, sections are used.
        let t = TestElf::linux_like();
        let mut img = t.build();
        let elf = Elf::parse(&img).unwrap();
        let ph = elf.program_headers().find(|p| p.p_type == PT_NOTE).unwrap();
        // Point the PT_NOTE at the GNU note only.
        let at = 64 + 56 * ph.index;
        img[at + 32..at + 40].copy_from_slice(&(12u64 + 4 + 20).to_le_bytes());
        let n = XenNotes::find(&Elf::parse(&img).unwrap()).unwrap();
        assert_eq!((n.source, n.count), (NoteSource::Sections, 14));
        // A PT_NOTE with p_offset 0 is skipped.
        img[at + 8..at + 16].copy_from_slice(&0u64.to_le_bytes());
        let huge = img.len() as u64 * 2;
        img[at + 32..at + 40].copy_from_slice(&huge.to_le_bytes());
        let n = XenNotes::find(&Elf::parse(&img).unwrap()).unwrap();
        assert_eq!(n.source, NoteSource::Sections);
    }

    #[test]
    fn no_notes_and_legacy() {
        let mut t = TestElf::minimal();
        t.notes.clear();
        assert_eq!(parse(&t), Err(NoteError::NoXenNotes));
        t.notes.push(TestNote { name: b"GNU\0".to_vec(), note_type: 1, desc: vec![0; 16] });
        assert_eq!(parse(&t), Err(NoteError::NoXenNotes));
        t.xen_guest = Some(b"GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0xC0000000\0".to_vec());
        let err = parse(&t).unwrap_err();
        assert_eq!(err, NoteError::LegacyXenGuest);
        assert!(err.to_string().starts_with("legacy __xen_guest section is not supported"));
        // Owner names must be exactly "Xen\0".
        let t = with_notes(vec![TestNote { name: b"Xen".to_vec(), note_type: 5, desc: b"xen-3.0\0".to_vec() }]);
        assert_eq!(parse(&t), Err(NoteError::NoXenNotes));
    }

    #[test]
    fn truncated_notes() {
        let t = TestElf::linux_like();
        let blob = t.note_blob();
        // Cut inside the first Xen note's descriptor: an error.
        let mut cut = blob.clone();
        cut.truncate(36 + 12 + 4 + 3);
        let items: Vec<_> = notes(&cut).collect();
        assert!(items[0].is_ok());
        assert_eq!(items[1], Err(TruncatedNote { offset: 36, xen: true }));
        assert_eq!(items.len(), 2);
        // Cut inside a foreign note: the area just ends.
        let mut cut = blob.clone();
        cut.truncate(20);
        let items: Vec<_> = notes(&cut).collect();
        assert_eq!(items, vec![Err(TruncatedNote { offset: 0, xen: false })]);
        // Huge sizes do not overflow.
        let mut huge = Vec::new();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(notes(&huge).count(), 1);

        let mut xen = XenNotes::empty();
        let mut seen = 0;
        let mut cut = blob.clone();
        cut.truncate(36 + 12 + 4 + 3);
        let err = xen.parse_area(&cut, NoteArea::Segment(2), &mut seen).unwrap_err();
        assert_eq!(err.to_string(), "program header 2: Xen note at offset 0x24 runs past the end of the note data");
    }

    #[test]
    fn too_many_notes() {
        let blob = vec![0u8; 12 * (MAX_NOTES + 1)];
        let mut xen = XenNotes::empty();
        let mut seen = 0;
        assert_eq!(xen.parse_area(&blob, NoteArea::Section(1), &mut seen), Err(NoteError::TooManyNotes));
    }

    #[test]
    fn note_text_is_bounded() {
        let long = "x".repeat(100);
        let t = NoteText::new(&long);
        assert!(t.is_cut() && t.as_bytes().len() == 32);
        assert_eq!(t.to_string(), format!("\"{}...\"", "x".repeat(32)));
        assert_eq!(NoteText::new("a\"b\n").to_string(), "\"a\\\"b\\n\"");
    }
}
