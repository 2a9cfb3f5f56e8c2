//! Multiboot 1 boot information: what the loader tells us about the machine.
//!
//! The loader leaves a `multiboot_info` structure in memory and its physical
//! address in `%ebx`. [`BootInfo::parse`] reads it through a [`PhysMemory`]
//! (the direct map on the machine, a byte array in tests), checks every
//! pointer and length, and copies what we keep (command line, memory map,
//! modules) into a self-contained value, so the memory it came from can be
//! reused afterwards.

use crate::fixed::{FixedStr, FixedVec};
use crate::mm::memmap::{MemoryMap, Region, RegionKind};

/// The value a multiboot 1 loader leaves in `%eax`.
pub const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;

/// Flags in `multiboot_info.flags` saying which fields are valid.
mod flags {
    pub const MEMORY: u32 = 1 << 0;
    pub const CMDLINE: u32 = 1 << 2;
    pub const MODS: u32 = 1 << 3;
    pub const MMAP: u32 = 1 << 6;
    pub const LOADER_NAME: u32 = 1 << 9;
}

/// Most modules we accept.
pub const MAX_MODULES: usize = 16;
/// Longest command line we keep (Xen's limit for guest command lines).
pub const MAX_CMDLINE: usize = 1024;
/// Longest module string kept, as Xen's command lines; longer ones are cut
/// (and the boot log says so).
pub const MAX_MODULE_STRING: usize = 1024;
/// Longest string we read, bounding the scan for a missing NUL.
const MAX_STRING_SCAN: usize = 4096;

/// Read access to physical memory.
pub trait PhysMemory {
    /// Copies `buf.len()` bytes from physical address `paddr`, or fails if
    /// any of them is not readable.
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), BootInfoError>;
}

/// A multiboot module: a file the loader put in memory for us.
#[derive(Clone, Copy, Debug, Default)]
pub struct Module {
    /// First byte (physical).
    pub start: u64,
    /// One past the last byte (physical).
    pub end: u64,
    /// The module's string: its path, then its arguments (at most
    /// [`MAX_MODULE_STRING`] bytes are kept).
    pub string: FixedStr<MAX_MODULE_STRING>,
}

impl Module {
    /// Size in bytes.
    pub const fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the module is empty.
    pub const fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Everything we keep from the loader.
#[derive(Clone, Debug)]
pub struct BootInfo {
    /// The hypervisor's command line (may start with the image path).
    pub cmdline: FixedStr<MAX_CMDLINE>,
    /// The loader's name, if it gave one.
    pub loader: FixedStr<64>,
    /// The physical memory map.
    pub memory: MemoryMap,
    /// Modules, in the order given.
    pub modules: FixedVec<Module, MAX_MODULES>,
}

/// Why the boot information cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// `%eax` did not hold the multiboot 1 magic.
    BadMagic(u32),
    /// A structure lies at an address we cannot read.
    Unreadable(u64),
    /// The loader gave neither a memory map nor memory sizes.
    NoMemoryInfo,
    /// More memory-map entries than we keep.
    TooManyRegions,
    /// More modules than we keep.
    TooManyModules(u32),
    /// A module whose end lies before its start.
    BadModule(usize),
}

impl core::fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootInfoError::BadMagic(m) => {
                write!(f, "not started by a multiboot 1 loader (magic {m:#x}, expected {BOOTLOADER_MAGIC:#x})")
            }
            BootInfoError::Unreadable(a) => write!(f, "boot information at {a:#x} is not readable"),
            BootInfoError::NoMemoryInfo => f.write_str("the loader gave no memory map"),
            BootInfoError::TooManyRegions => f.write_str("the memory map has too many entries"),
            BootInfoError::TooManyModules(n) => {
                write!(f, "{n} modules given, at most {MAX_MODULES} supported")
            }
            BootInfoError::BadModule(i) => write!(f, "module {i} ends before it starts"),
        }
    }
}

fn read_u32(mem: &impl PhysMemory, paddr: u64) -> Result<u32, BootInfoError> {
    let mut b = [0; 4];
    mem.read(paddr, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(mem: &impl PhysMemory, paddr: u64) -> Result<u64, BootInfoError> {
    let mut b = [0; 8];
    mem.read(paddr, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Reads a NUL-terminated string of at most `N` bytes (longer ones are
/// truncated; a string with no NUL within the scan limit ends there).
fn read_cstr<const N: usize>(mem: &impl PhysMemory, paddr: u64) -> Result<FixedStr<N>, BootInfoError> {
    let mut bytes = [0u8; MAX_STRING_SCAN];
    let want = N.min(MAX_STRING_SCAN);
    let mut len = 0;
    while len < want {
        let mut c = [0u8];
        mem.read(paddr + len as u64, &mut c)?;
        if c[0] == 0 {
            break;
        }
        bytes[len] = c[0];
        len += 1;
    }
    Ok(FixedStr::from_bytes(&bytes[..len]))
}

impl BootInfo {
    /// Parses the multiboot information at `mbi` given loader magic `magic`.
    pub fn parse(mem: &impl PhysMemory, magic: u32, mbi: u64) -> Result<BootInfo, BootInfoError> {
        let mut info = BootInfo::empty();
        info.parse_into(mem, magic, mbi)?;
        Ok(info)
    }

    /// Nothing yet: fixed storage for [`BootInfo::parse_into`] (about 18
    /// KiB: keep it in a `static`, not on a stack).
    pub const fn empty() -> BootInfo {
        BootInfo {
            cmdline: FixedStr::new(),
            loader: FixedStr::new(),
            memory: MemoryMap::new(),
            modules: FixedVec::filled_with(Module { start: 0, end: 0, string: FixedStr::new() }),
        }
    }

    /// [`BootInfo::parse`] into `self` (which must be [`BootInfo::empty`]).
    pub fn parse_into(&mut self, mem: &impl PhysMemory, magic: u32, mbi: u64) -> Result<(), BootInfoError> {
        if magic != BOOTLOADER_MAGIC {
            return Err(BootInfoError::BadMagic(magic));
        }
        let flags = read_u32(mem, mbi)?;
        let info = self;
        if flags & flags::CMDLINE != 0 {
            info.cmdline = read_cstr(mem, read_u32(mem, mbi + 16)?.into())?;
        }
        if flags & flags::LOADER_NAME != 0 {
            info.loader = read_cstr(mem, read_u32(mem, mbi + 64)?.into())?;
        }
        if flags & flags::MMAP != 0 {
            let length = read_u32(mem, mbi + 44)?;
            let addr = u64::from(read_u32(mem, mbi + 48)?);
            info.read_mmap(mem, addr, length)?;
        } else if flags & flags::MEMORY != 0 {
            // Only the legacy sizes: conventional memory and memory above 1 MiB.
            let lower_kib = u64::from(read_u32(mem, mbi + 4)?);
            let upper_kib = u64::from(read_u32(mem, mbi + 8)?);
            info.add_region(0, lower_kib << 10, RegionKind::Ram)?;
            info.add_region(1 << 20, upper_kib << 10, RegionKind::Ram)?;
        } else {
            return Err(BootInfoError::NoMemoryInfo);
        }
        if flags & flags::MODS != 0 {
            let count = read_u32(mem, mbi + 20)?;
            let addr = u64::from(read_u32(mem, mbi + 24)?);
            if count as usize > MAX_MODULES {
                return Err(BootInfoError::TooManyModules(count));
            }
            for i in 0..u64::from(count) {
                let entry = addr + i * 16;
                let start = read_u32(mem, entry)?.into();
                let end = read_u32(mem, entry + 4)?.into();
                if end < start {
                    return Err(BootInfoError::BadModule(i as usize));
                }
                let string = read_cstr(mem, read_u32(mem, entry + 8)?.into())?;
                // Cannot overflow: count <= MAX_MODULES was checked above.
                let _ = info.modules.push(Module { start, end, string });
            }
        }
        Ok(())
    }

    /// Walks the `mmap_*` entries: `{u32 size; u64 base; u64 len; u32 type}`
    /// where `size` counts the bytes after itself.
    fn read_mmap(&mut self, mem: &impl PhysMemory, addr: u64, length: u32) -> Result<(), BootInfoError> {
        let end = addr + u64::from(length);
        let mut at = addr;
        while at + 24 <= end {
            let size = read_u32(mem, at)?;
            let base = read_u64(mem, at + 4)?;
            let len = read_u64(mem, at + 12)?;
            let kind = match read_u32(mem, at + 20)? {
                1 => RegionKind::Ram,
                3 => RegionKind::AcpiReclaimable,
                4 => RegionKind::AcpiNvs,
                5 => RegionKind::Bad,
                _ => RegionKind::Reserved,
            };
            self.add_region(base, len, kind)?;
            // A size below the 20 bytes we read would loop or misparse.
            at += 4 + u64::from(size.max(20));
        }
        Ok(())
    }

    fn add_region(&mut self, base: u64, len: u64, kind: RegionKind) -> Result<(), BootInfoError> {
        if len == 0 {
            return Ok(());
        }
        let end = base.saturating_add(len);
        self.memory.push(Region { start: base, end, kind }).map_err(|_| BootInfoError::TooManyRegions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fake physical memory: one buffer at physical address 0.
    struct Mem(Vec<u8>);

    impl PhysMemory for Mem {
        fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), BootInfoError> {
            let start = usize::try_from(paddr).map_err(|_| BootInfoError::Unreadable(paddr))?;
            let src = self.0.get(start..start + buf.len()).ok_or(BootInfoError::Unreadable(paddr))?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    impl Mem {
        fn put(&mut self, at: usize, bytes: &[u8]) {
            self.0[at..at + bytes.len()].copy_from_slice(bytes);
        }
        fn put32(&mut self, at: usize, v: u32) {
            self.put(at, &v.to_le_bytes());
        }
        fn put64(&mut self, at: usize, v: u64) {
            self.put(at, &v.to_le_bytes());
        }
    }

    const MBI: usize = 0x1000;

    /// A layout like QEMU's: mmap with three entries, a command line, two modules.
    fn qemu_like() -> Mem {
        let mut m = Mem(vec![0; 0x4000]);
        m.put32(MBI, flags::MEMORY | flags::CMDLINE | flags::MODS | flags::MMAP | flags::LOADER_NAME);
        m.put32(MBI + 4, 639);
        m.put32(MBI + 8, 130_048);
        m.put32(MBI + 16, 0x2000);
        m.put(0x2000, b"hv.elf loglvl=debug\0");
        m.put32(MBI + 64, 0x2100);
        m.put(0x2100, b"qemu\0");
        // Modules.
        m.put32(MBI + 20, 2);
        m.put32(MBI + 24, 0x2200);
        for (i, (start, end, s)) in
            [(0x20_0000u32, 0x20_1234u32, 0x2300u32), (0x20_2000, 0x20_2000, 0x2400)].into_iter().enumerate()
        {
            m.put32(0x2200 + i * 16, start);
            m.put32(0x2200 + i * 16 + 4, end);
            m.put32(0x2200 + i * 16 + 8, s);
        }
        m.put(0x2300, b"dom0.elf console=hvc0\0");
        m.put(0x2400, b"empty\0");
        // Memory map.
        let entries: [(u64, u64, u32); 3] = [(0, 0x9fc00, 1), (0x9fc00, 0x400, 2), (0x10_0000, 0x7ee_0000, 1)];
        for (i, (base, len, kind)) in entries.into_iter().enumerate() {
            let at = 0x3000 + i * 24;
            m.put32(at, 20);
            m.put64(at + 4, base);
            m.put64(at + 12, len);
            m.put32(at + 20, kind);
        }
        m.put32(MBI + 44, 72);
        m.put32(MBI + 48, 0x3000);
        m
    }

    #[test]
    fn parses_a_qemu_like_layout() {
        let info = BootInfo::parse(&qemu_like(), BOOTLOADER_MAGIC, MBI as u64).unwrap();
        assert_eq!(info.cmdline.as_str(), "hv.elf loglvl=debug");
        assert_eq!(info.loader.as_str(), "qemu");
        let regions = info.memory.regions();
        assert_eq!(regions.len(), 3);
        assert_eq!(regions[2], Region { start: 0x10_0000, end: 0x7fe_0000, kind: RegionKind::Ram });
        assert_eq!(regions[1].kind, RegionKind::Reserved);
        let mods = info.modules.as_slice();
        assert_eq!(mods.len(), 2);
        assert_eq!((mods[0].start, mods[0].len()), (0x20_0000, 0x1234));
        assert_eq!(mods[0].string.as_str(), "dom0.elf console=hvc0");
        assert!(mods[1].is_empty());
    }

    #[test]
    fn wrong_magic_is_refused() {
        let err = BootInfo::parse(&qemu_like(), 0x1234, MBI as u64).unwrap_err();
        assert_eq!(err, BootInfoError::BadMagic(0x1234));
        assert!(err.to_string().contains("multiboot"));
    }

    #[test]
    fn falls_back_to_legacy_sizes() {
        let mut m = qemu_like();
        m.put32(MBI, flags::MEMORY);
        let info = BootInfo::parse(&m, BOOTLOADER_MAGIC, MBI as u64).unwrap();
        let r = info.memory.regions();
        assert_eq!(r[0], Region { start: 0, end: 639 << 10, kind: RegionKind::Ram });
        assert_eq!(r[1], Region { start: 1 << 20, end: (1 << 20) + (130_048 << 10), kind: RegionKind::Ram });
        assert!(info.modules.is_empty());
        assert_eq!(info.cmdline.as_str(), "");
    }

    #[test]
    fn no_memory_information_is_an_error() {
        let mut m = qemu_like();
        m.put32(MBI, flags::CMDLINE);
        assert_eq!(BootInfo::parse(&m, BOOTLOADER_MAGIC, MBI as u64).unwrap_err(), BootInfoError::NoMemoryInfo);
    }

    #[test]
    fn bad_pointers_are_errors_not_crashes() {
        let mut m = qemu_like();
        m.put32(MBI + 24, 0xffff_0000);
        assert!(matches!(BootInfo::parse(&m, BOOTLOADER_MAGIC, MBI as u64), Err(BootInfoError::Unreadable(_))));
        let mut m = qemu_like();
        m.put32(MBI + 20, 1000);
        assert_eq!(BootInfo::parse(&m, BOOTLOADER_MAGIC, MBI as u64).unwrap_err(), BootInfoError::TooManyModules(1000));
        let mut m = qemu_like();
        m.put32(0x2200 + 4, 0x10);
        assert_eq!(BootInfo::parse(&m, BOOTLOADER_MAGIC, MBI as u64).unwrap_err(), BootInfoError::BadModule(0));
    }

    #[test]
    fn mmap_entry_with_tiny_size_does_not_loop() {
        let mut m = qemu_like();
        m.put32(0x3000, 0);
        let info = BootInfo::parse(&m, BOOTLOADER_MAGIC, MBI as u64).unwrap();
        assert_eq!(info.memory.regions().len(), 3);
    }

    #[test]
    fn unterminated_strings_are_bounded() {
        let mut m = qemu_like();
        m.0.resize(0x8000, b'x');
        m.put32(MBI + 16, 0x4000);
        let info = BootInfo::parse(&m, BOOTLOADER_MAGIC, MBI as u64).unwrap();
        assert_eq!(info.cmdline.as_str().len(), MAX_CMDLINE);
    }
}
