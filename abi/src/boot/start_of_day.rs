//! The `start_info` page and the initial registers of a [`Layout`].
//!
//! What Xen 4.17 puts in `start_info` for a 64-bit PV guest whose p2m is in
//! the initial mapping (this layout never maps it separately):
//! `magic = "xen-3.0-x86_64"`, `nr_pages`, `shared_info` (machine address),
//! `flags`, the xenstore and console frames and event channels, `pt_base` and
//! `nr_pt_frames`, `mfn_list` (the p2m's VA), `mod_start` (the ramdisk's VA)
//! and `mod_len`, the command line, and `first_p2m_pfn = nr_p2m_frames = 0`:
//! both are only set when the kernel asked for a separately mapped p2m
//! (`INIT_P2M`), which guests detect by `mfn_list` lying below the kernel.

use super::layout::Layout;
use crate::arch::{FLAT_KERNEL_CS, FLAT_KERNEL_SS};
use crate::start_info::{StartInfo, MAX_GUEST_CMDLINE};

/// `rflags` of the initial vCPU: only IF.
pub const INITIAL_RFLAGS: u64 = 1 << 9;

/// What `start_info` needs beyond the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartInfoParams<'c> {
    /// Machine address of the shared-info page.
    pub shared_info_maddr: u64,
    /// `SIF_*` flags (a domU gets 0; dom0 `SIF_PRIVILEGED | SIF_INITDOMAIN`).
    pub flags: u32,
    /// Machine frame of the xenstore page (for a domU built with this
    /// layout, `mfn_of(layout.xenstore().pfn)`).
    pub store_mfn: u64,
    /// Event channel of xenstore.
    pub store_evtchn: u32,
    /// Machine frame of the console page (`mfn_of(layout.console().pfn)`).
    pub console_mfn: u64,
    /// Event channel of the console.
    pub console_evtchn: u32,
    /// The kernel command line (bytes up to the first NUL are used).
    pub cmdline: &'c [u8],
}

/// A filled `start_info`, and whether the command line had to be cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuiltStartInfo {
    /// The page contents (copy them to the start-info page).
    pub start_info: StartInfo,
    /// The command line was longer than 1023 bytes and was truncated.
    pub cmdline_truncated: bool,
}

/// Fills `start_info` for `layout` (see the module documentation).
pub fn start_info(layout: &Layout, params: &StartInfoParams<'_>) -> BuiltStartInfo {
    let mut si = StartInfo::new();
    si.nr_pages = layout.nr_pages();
    si.shared_info = params.shared_info_maddr;
    si.flags = params.flags;
    si.store_mfn = params.store_mfn;
    si.store_evtchn = params.store_evtchn;
    si.set_console_domu_mfn(params.console_mfn);
    si.set_console_domu_evtchn(params.console_evtchn);
    si.pt_base = layout.page_tables().va;
    si.nr_pt_frames = layout.page_tables().pages;
    si.mfn_list = layout.p2m().va;
    if let Some(ramdisk) = layout.ramdisk() {
        si.mod_start = ramdisk.va;
        si.mod_len = layout.ramdisk_len();
    }
    si.first_p2m_pfn = 0;
    si.nr_p2m_frames = 0;

    let cmdline = params.cmdline;
    let len = cmdline.iter().position(|&b| b == 0).unwrap_or(cmdline.len());
    let kept = len.min(MAX_GUEST_CMDLINE - 1);
    si.cmd_line[..kept].copy_from_slice(&cmdline[..kept]);
    BuiltStartInfo { start_info: si, cmdline_truncated: len > kept }
}

/// The initial register values of vCPU 0 (the rest are zero; `ds`, `es`,
/// `fs`, `gs` are the null selector).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitialRegs {
    /// The entry point.
    pub rip: u64,
    /// Top of the boot-stack page.
    pub rsp: u64,
    /// VA of the `start_info` page.
    pub rsi: u64,
    /// [`INITIAL_RFLAGS`] (IF set).
    pub rflags: u64,
    /// `FLAT_KERNEL_CS` (0xe033).
    pub cs: u16,
    /// `FLAT_KERNEL_SS` (0xe02b).
    pub ss: u16,
}

/// The initial registers for `layout`, entering at `entry` (the `ENTRY`
/// note, or `e_entry`: [`Placement::entry`](super::notes::Placement::entry)).
pub fn initial_regs(layout: &Layout, entry: u64) -> InitialRegs {
    InitialRegs {
        rip: entry,
        rsp: layout.stack_top(),
        rsi: layout.start_info().va,
        rflags: INITIAL_RFLAGS,
        cs: FLAT_KERNEL_CS,
        ss: FLAT_KERNEL_SS,
    }
}

#[cfg(test)]
mod tests {
    use super::super::layout::LayoutParams;
    use super::*;
    use crate::start_info::{SIF_INITDOMAIN, SIF_PRIVILEGED, START_INFO_MAGIC};

    const VB: u64 = 0xffff_ffff_8000_0000;

    fn layout(ramdisk_len: Option<u64>) -> Layout {
        Layout::compute(&LayoutParams {
            virt_base: VB,
            kernel_start: VB,
            kernel_end: VB + (2 << 20),
            nr_pages: 16384,
            ramdisk_len,
        })
        .unwrap()
    }

    fn params(cmdline: &[u8]) -> StartInfoParams<'_> {
        StartInfoParams {
            shared_info_maddr: 0x1234_5000,
            flags: SIF_PRIVILEGED | SIF_INITDOMAIN,
            store_mfn: 0x777,
            store_evtchn: 1,
            console_mfn: 0x888,
            console_evtchn: 2,
            cmdline,
        }
    }

    #[test]
    fn fields() {
        let l = layout(None);
        let b = start_info(&l, &params(b"console=hvc0 root=/dev/xvda1"));
        let si = b.start_info;
        assert!(!b.cmdline_truncated);
        assert_eq!(&si.magic[..14], START_INFO_MAGIC);
        assert!(si.magic[14..].iter().all(|&c| c == 0));
        assert_eq!(si.nr_pages, 16384);
        assert_eq!(si.shared_info, 0x1234_5000);
        assert_eq!(si.flags, SIF_PRIVILEGED | SIF_INITDOMAIN);
        assert_eq!((si.store_mfn, si.store_evtchn), (0x777, 1));
        assert_eq!((si.console_domu_mfn(), si.console_domu_evtchn()), (0x888, 2));
        assert_eq!(si.pt_base, VB + 0x22_3000);
        assert_eq!(si.nr_pt_frames, 5);
        assert_eq!(si.mfn_list, VB + 0x20_0000);
        assert_eq!((si.mod_start, si.mod_len), (0, 0));
        assert_eq!((si.first_p2m_pfn, si.nr_p2m_frames), (0, 0));
        assert_eq!(&si.cmd_line[..29], b"console=hvc0 root=/dev/xvda1\0");
        assert!(si.cmd_line.iter().all(|&c| c != 0xff));

        let l = layout(Some(5000));
        let si = start_info(&l, &params(b"")).start_info;
        assert_eq!((si.mod_start, si.mod_len), (VB + 0x20_0000, 5000));
        assert_eq!(si.mfn_list, VB + 0x20_2000);
        assert_eq!(si.cmd_line, [0; 1024]);
    }

    #[test]
    fn cmdline_truncation() {
        let l = layout(None);
        let exact = vec![b'a'; 1023];
        let b = start_info(&l, &params(&exact));
        assert!(!b.cmdline_truncated);
        assert_eq!(&b.start_info.cmd_line[..1023], &exact[..]);
        assert_eq!(b.start_info.cmd_line[1023], 0);

        let long = vec![b'b'; 5000];
        let b = start_info(&l, &params(&long));
        assert!(b.cmdline_truncated);
        assert_eq!(&b.start_info.cmd_line[..1023], &long[..1023]);
        assert_eq!(b.start_info.cmd_line[1023], 0);

        // Bytes after a NUL do not count.
        let mut nul = b"quiet\0".to_vec();
        nul.extend(vec![b'c'; 2000]);
        let b = start_info(&l, &params(&nul));
        assert!(!b.cmdline_truncated);
        assert_eq!(&b.start_info.cmd_line[..6], b"quiet\0");
        assert!(b.start_info.cmd_line[6..].iter().all(|&c| c == 0));
    }

    #[test]
    fn registers() {
        let l = layout(None);
        let r = initial_regs(&l, VB + 0x1000);
        assert_eq!(
            r,
            InitialRegs {
                rip: VB + 0x1000,
                rsp: VB + 0x22_9000,
                rsi: VB + 0x22_0000,
                rflags: 0x200,
                cs: 0xe033,
                ss: 0xe02b
            }
        );
    }
}
