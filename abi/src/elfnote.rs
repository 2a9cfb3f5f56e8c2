//! ELF note types a PV kernel uses to describe itself (`elfnote.h`).
//!
//! Notes live in a `PT_NOTE` segment with owner name [`XEN_ELFNOTE_OWNER`].

/// The owner name of Xen's notes (the note's name field, NUL-terminated).
pub const XEN_ELFNOTE_OWNER: &[u8; 4] = b"Xen\0";

/// NAME=VALUE information string (legacy, unused).
pub const XEN_ELFNOTE_INFO: u32 = 0;
/// Entry point virtual address (numeric).
pub const XEN_ELFNOTE_ENTRY: u32 = 1;
/// Virtual address of the hypercall page (numeric).
pub const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2;
/// Virtual address the image is linked for (numeric; default 0).
pub const XEN_ELFNOTE_VIRT_BASE: u32 = 3;
/// `VIRT_BASE - PADDR_OFFSET` is the physical-to-virtual offset (numeric).
pub const XEN_ELFNOTE_PADDR_OFFSET: u32 = 4;
/// Xen version the image targets (string, `"xen-3.0"`).
pub const XEN_ELFNOTE_XEN_VERSION: u32 = 5;
/// Guest OS name (string).
pub const XEN_ELFNOTE_GUEST_OS: u32 = 6;
/// Guest OS version (string).
pub const XEN_ELFNOTE_GUEST_VERSION: u32 = 7;
/// Loader type (string, `"generic"`).
pub const XEN_ELFNOTE_LOADER: u32 = 8;
/// PAE support (string; x86_32 only).
pub const XEN_ELFNOTE_PAE_MODE: u32 = 9;
/// `|`-separated feature list; `!` marks a required feature (string).
pub const XEN_ELFNOTE_FEATURES: u32 = 10;
/// Load a BSD symbol table (string, `"yes"`).
pub const XEN_ELFNOTE_BSD_SYMTAB: u32 = 11;
/// Lowest address the hypervisor may reserve (numeric; x86_32 only).
pub const XEN_ELFNOTE_HV_START_LOW: u32 = 12;
/// Mask and value of L1 entries that hold valid MFNs (numeric pair).
pub const XEN_ELFNOTE_L1_MFN_VALID: u32 = 13;
/// The guest supports suspend cancellation (numeric).
pub const XEN_ELFNOTE_SUSPEND_CANCEL: u32 = 14;
/// Virtual address of the initial p2m list (numeric).
pub const XEN_ELFNOTE_INIT_P2M: u32 = 15;
/// The guest accepts `SIF_MOD_START_PFN` (numeric).
pub const XEN_ELFNOTE_MOD_START_PFN: u32 = 16;
/// Supported-features bitmap (`XENFEAT_*` bits, numeric).
pub const XEN_ELFNOTE_SUPPORTED_FEATURES: u32 = 17;
/// 32-bit physical entry point for PVH (numeric).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// The highest note type in this list.
pub const XEN_ELFNOTE_MAX: u32 = XEN_ELFNOTE_PHYS32_ENTRY;

/// Crash dump: crash information.
pub const XEN_ELFNOTE_CRASH_INFO: u32 = 0x100_0001;
/// Crash dump: crash registers.
pub const XEN_ELFNOTE_CRASH_REGS: u32 = 0x100_0002;
/// Core dump: empty note.
pub const XEN_ELFNOTE_DUMPCORE_NONE: u32 = 0x200_0000;
/// Core dump: header.
pub const XEN_ELFNOTE_DUMPCORE_HEADER: u32 = 0x200_0001;
/// Core dump: Xen version.
pub const XEN_ELFNOTE_DUMPCORE_XEN_VERSION: u32 = 0x200_0002;
/// Core dump: format version.
pub const XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION: u32 = 0x200_0003;
