//! Real Xen 4.17, the reference our guests are checked against: where
//! `cargo xtask` keeps it, how to boot a PV kernel on it as dom0 under
//! QEMU, and how to tell how dom0 ended.
//!
//! The image is Debian's `xen-hypervisor-4.17-amd64` (`/boot/xen-4.17-amd64.gz`),
//! which `cargo xtask` fetches with `apt-get download`, unpacks with
//! `dpkg -x` and gunzips into `target/xen-cache/` (`Need::RealXen`); it is
//! never installed. Xen is a multiboot image: QEMU's `-kernel` boots it,
//! and the first `-initrd` module (with its command line after a space)
//! becomes dom0, the second (if any) dom0's ramdisk. Dom0's `console_io`
//! output reaches the serial port as it is; Xen's own lines start with
//! `(XEN) `.

use crate::{workspace_root, Outcome, Qemu};
use std::path::{Path, PathBuf};

/// The file name of the unpacked hypervisor in [`cache_dir`].
pub const XEN_IMAGE: &str = "xen-4.17-amd64";

/// The Debian package it comes from.
pub const XEN_PACKAGE: &str = "xen-hypervisor-4.17-amd64";

/// Xen's command line: everything on the serial port, dom0 small and
/// single-vCPU.
pub const XEN_CMDLINE: &str = "console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all dom0_mem=64M dom0_max_vcpus=1";

/// Guest RAM for a Xen boot, in MiB.
pub const XEN_MEMORY_MIB: u32 = 1024;

/// The CPU model for Xen under `-icount`: QEMU 10 aborts with "Bad icount
/// read" when Xen uses the x2APIC there, so benchmarks hide it (both
/// hypervisors get the same model).
pub const ICOUNT_CPU: &str = "max,-x2apic";

/// Where `cargo xtask` keeps the unpacked Xen.
pub fn cache_dir() -> PathBuf {
    workspace_root().join("target").join("xen-cache")
}

/// The path of the unpacked Xen 4.17, or an error saying how to get it.
pub fn xen_image() -> Result<PathBuf, String> {
    let path = cache_dir().join(XEN_IMAGE);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: run `cargo xtask test` (it fetches Debian's {XEN_PACKAGE} with apt-get download)",
            path.display()
        ))
    }
}

/// A QEMU command line that boots real Xen with `kernel` (a PV kernel
/// image) as dom0, `args` as its command line.
pub fn dom0(kernel: &Path, args: &str) -> Result<Qemu, String> {
    Ok(Qemu::new(xen_image()?).cmdline(XEN_CMDLINE).memory_mib(XEN_MEMORY_MIB).module(kernel, args))
}

/// As [`dom0`], with `ramdisk` as dom0's initial ramdisk: the module after
/// dom0's kernel, which Xen loads after the kernel in dom0's initial
/// mapping (`start_info.mod_start`, `mod_len`).
pub fn dom0_with_ramdisk(kernel: &Path, args: &str, ramdisk: &Path) -> Result<Qemu, String> {
    Ok(dom0(kernel, args)?.module(ramdisk, ""))
}

/// How Xen reported the end of dom0 (or of itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dom0End {
    /// `SHUTDOWN_poweroff`: "Hardware Dom0 halted: halting machine".
    Halted,
    /// `SHUTDOWN_crash`, or Xen crashed the domain: "Hardware Dom0 crashed".
    Crashed,
    /// Any other shutdown reason ("Hardware Dom0 shutdown...").
    Shutdown,
    /// Xen itself panicked ("Panic on CPU").
    XenPanic,
}

/// How dom0 ended, judged from Xen's lines in `serial`, if it has.
pub fn dom0_end(serial: &str) -> Option<Dom0End> {
    serial.lines().find_map(|l| {
        let l = l.strip_prefix("(XEN) ")?;
        if l.starts_with("Hardware Dom0 halted") {
            Some(Dom0End::Halted)
        } else if l.starts_with("Hardware Dom0 crashed") {
            Some(Dom0End::Crashed)
        } else if l.starts_with("Hardware Dom0 shutdown") {
            Some(Dom0End::Shutdown)
        } else if l.starts_with("Panic on CPU") {
            Some(Dom0End::XenPanic)
        } else {
            None
        }
    })
}

/// Whether dom0 has ended (the condition to stop QEMU on: Xen halts rather
/// than powering the machine off).
pub fn dom0_ended(serial: &str) -> bool {
    dom0_end(serial).is_some()
}

/// The lines dom0 printed (everything that is not Xen's own `(XEN)` line).
pub fn guest_lines(o: &Outcome) -> impl Iterator<Item = &str> {
    o.serial.lines().filter(|l| !l.starts_with("(XEN)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dom0_endings_are_recognised() {
        assert_eq!(dom0_end("x\n(XEN) Hardware Dom0 halted: halting machine\n"), Some(Dom0End::Halted));
        assert_eq!(dom0_end("(XEN) Hardware Dom0 crashed: rebooting machine in 5 seconds.\n"), Some(Dom0End::Crashed));
        assert_eq!(dom0_end("(XEN) Hardware Dom0 shutdown: rebooting machine\n"), Some(Dom0End::Shutdown));
        assert_eq!(dom0_end("(XEN) Panic on CPU 0:\n"), Some(Dom0End::XenPanic));
        assert_eq!(dom0_end("Hardware Dom0 halted\n(XEN) Freed 1024kB\n"), None);
    }
}
