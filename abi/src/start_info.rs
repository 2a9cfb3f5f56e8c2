//! The `start_info` page a PV guest finds at `rsi` when it first runs.
//!
//! The domain builder fills it (every field is OUT from the guest's point of
//! view). Machine addresses and frame numbers are the hypervisor's; virtual
//! addresses are in the guest's initial mapping.

use crate::raw;

/// The magic a 64-bit PV guest's `start_info` begins with (NUL-padded to 32
/// bytes): `"xen-<version>-<platform>"`, where guests check the `"xen-3.0"`
/// prefix.
pub const START_INFO_MAGIC: &[u8; 14] = b"xen-3.0-x86_64";

/// Size of [`StartInfo::cmd_line`], including the terminating NUL.
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// `flags`: the domain is privileged.
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// `flags`: the domain is the initial control domain (dom0).
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// `flags`: `mod_start` is a multiboot module list.
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// `flags`: `mod_start` is a PFN, not a virtual address.
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
/// `flags`: the toolstack understands a virtually mapped p2m list.
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;
/// `flags`: byte reserved for power-management options.
pub const SIF_PM_MASK: u32 = 0xff << 8;

/// `struct start_info`: the start-of-day information page (1168 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct StartInfo {
    /// OUT: [`START_INFO_MAGIC`], NUL-padded.
    pub magic: [u8; 32],
    /// OUT: total pages allocated to the domain.
    pub nr_pages: u64,
    /// OUT: machine address of the shared-info page.
    pub shared_info: u64,
    /// OUT: `SIF_*` flags.
    pub flags: u32,
    /// Padding (implicit in C).
    pub _pad0: u32,
    /// OUT: machine frame of the xenstore ring page.
    pub store_mfn: u64,
    /// OUT: event channel for xenstore.
    pub store_evtchn: u32,
    /// Padding (implicit in C).
    pub _pad1: u32,
    /// OUT: the `console` union: `domU {mfn: u64, evtchn: u32}` or
    /// `dom0 {info_off: u32, info_size: u32}`. Use the `console_*` accessors.
    pub console: [u8; 16],
    /// OUT: virtual address of the initial L4 page table.
    pub pt_base: u64,
    /// OUT: number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// OUT: virtual address of the p2m array (`nr_pages` MFNs).
    pub mfn_list: u64,
    /// OUT: virtual address (or PFN, see `SIF_MOD_START_PFN`) of the
    /// pre-loaded module (ramdisk), 0 if none.
    pub mod_start: u64,
    /// OUT: size of the module in bytes.
    pub mod_len: u64,
    /// OUT: the kernel command line, NUL-terminated.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// OUT: first PFN of the initial p2m table (if mapped by pfn).
    pub first_p2m_pfn: u64,
    /// OUT: number of PFNs forming the initial p2m table.
    pub nr_p2m_frames: u64,
}

assert_layout!(StartInfo, size = 1168, align = 8, {
    magic @ 0x000, nr_pages @ 0x020, shared_info @ 0x028, flags @ 0x030, _pad0 @ 0x034,
    store_mfn @ 0x038, store_evtchn @ 0x040, _pad1 @ 0x044, console @ 0x048,
    pt_base @ 0x058, nr_pt_frames @ 0x060, mfn_list @ 0x068, mod_start @ 0x070,
    mod_len @ 0x078, cmd_line @ 0x080, first_p2m_pfn @ 0x480, nr_p2m_frames @ 0x488,
});

impl StartInfo {
    /// An all-zero `start_info`.
    pub const fn zeroed() -> Self {
        StartInfo {
            magic: [0; 32],
            nr_pages: 0,
            shared_info: 0,
            flags: 0,
            _pad0: 0,
            store_mfn: 0,
            store_evtchn: 0,
            _pad1: 0,
            console: [0; 16],
            pt_base: 0,
            nr_pt_frames: 0,
            mfn_list: 0,
            mod_start: 0,
            mod_len: 0,
            cmd_line: [0; MAX_GUEST_CMDLINE],
            first_p2m_pfn: 0,
            nr_p2m_frames: 0,
        }
    }

    /// An all-zero `start_info` carrying [`START_INFO_MAGIC`].
    pub const fn new() -> Self {
        let mut si = Self::zeroed();
        let mut i = 0;
        while i < START_INFO_MAGIC.len() {
            si.magic[i] = START_INFO_MAGIC[i];
            i += 1;
        }
        si
    }

    /// `console.domU.mfn`: machine frame of the console ring page (domU).
    pub const fn console_domu_mfn(&self) -> u64 {
        raw::read_u64(&self.console, 0)
    }

    /// `console.domU.evtchn`: event channel of the console ring (domU).
    pub const fn console_domu_evtchn(&self) -> u32 {
        raw::read_u32(&self.console, 8)
    }

    /// `console.dom0.info_off`: offset of the `dom0_vga_console_info`.
    pub const fn console_dom0_info_off(&self) -> u32 {
        raw::read_u32(&self.console, 0)
    }

    /// `console.dom0.info_size`: size of the `dom0_vga_console_info`.
    pub const fn console_dom0_info_size(&self) -> u32 {
        raw::read_u32(&self.console, 4)
    }

    /// Sets `console.domU.mfn`.
    pub fn set_console_domu_mfn(&mut self, mfn: u64) {
        raw::write_u64(&mut self.console, 0, mfn);
    }

    /// Sets `console.domU.evtchn`.
    pub fn set_console_domu_evtchn(&mut self, evtchn: u32) {
        raw::write_u32(&mut self.console, 8, evtchn);
    }

    /// Sets `console.dom0.info_off`.
    pub fn set_console_dom0_info_off(&mut self, off: u32) {
        raw::write_u32(&mut self.console, 0, off);
    }

    /// Sets `console.dom0.info_size`.
    pub fn set_console_dom0_info_size(&mut self, size: u32) {
        raw::write_u32(&mut self.console, 4, size);
    }
}

impl Default for StartInfo {
    fn default() -> Self {
        Self::zeroed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_carries_the_magic() {
        let si = StartInfo::new();
        assert_eq!(&si.magic[..14], START_INFO_MAGIC);
        assert!(si.magic[14..].iter().all(|&b| b == 0));
    }

    #[test]
    fn console_views_share_storage() {
        let mut si = StartInfo::zeroed();
        si.set_console_domu_mfn(0x1122_3344_5566_7788);
        si.set_console_domu_evtchn(9);
        assert_eq!(si.console_domu_mfn(), 0x1122_3344_5566_7788);
        assert_eq!(si.console_domu_evtchn(), 9);
        assert_eq!(si.console_dom0_info_off(), 0x5566_7788);
        assert_eq!(si.console_dom0_info_size(), 0x1122_3344);
    }
}
