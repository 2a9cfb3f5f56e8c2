//! How the hypervisor ends the machine, and the QEMU exit status of each way.
//!
//! A clean power-off goes through the chipset's ACPI power-off, which QEMU
//! reports as exit status 0. Every failure writes a code to the
//! `isa-debug-exit` device (port 0xf4), which QEMU turns into exit status
//! `(code << 1) | 1`, so scripts and tests can tell failures apart without
//! reading the log. The statuses are part of the user interface: SPEC.md §3.5
//! lists them, and they never change meaning.

/// A reason for stopping the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Orderly power-off (QEMU exit status 0).
    PowerOff,
    /// An exception taken inside the hypervisor.
    HypervisorFault,
    /// A Rust panic inside the hypervisor.
    HypervisorPanic,
    /// The boot environment is unusable (not multiboot, no memory map, no
    /// long mode, not enough RAM).
    BadBoot,
    /// The dom0 module is not a PV kernel we can build, or there is none to
    /// build yet.
    BadDom0,
    /// Dom0 shut down asking for a reboot.
    Dom0Reboot,
    /// Dom0 crashed.
    Dom0Crash,
}

impl Exit {
    /// The value written to the debug-exit port, or `None` for the ACPI
    /// power-off.
    pub const fn debug_exit_code(self) -> Option<u8> {
        match self {
            Exit::PowerOff => None,
            Exit::HypervisorFault => Some(0x10),
            Exit::HypervisorPanic => Some(0x11),
            Exit::BadBoot => Some(0x12),
            Exit::BadDom0 => Some(0x13),
            Exit::Dom0Reboot => Some(0x14),
            Exit::Dom0Crash => Some(0x15),
        }
    }

    /// The exit status QEMU reports for this way of stopping.
    pub const fn qemu_status(self) -> i32 {
        match self.debug_exit_code() {
            None => 0,
            Some(code) => ((code as i32) << 1) | 1,
        }
    }

    /// Every way of stopping, for tables and tests.
    pub const ALL: [Exit; 7] = [
        Exit::PowerOff,
        Exit::HypervisorFault,
        Exit::HypervisorPanic,
        Exit::BadBoot,
        Exit::BadDom0,
        Exit::Dom0Reboot,
        Exit::Dom0Crash,
    ];

    /// Which way of stopping QEMU's exit status `status` means, if any.
    pub fn from_qemu_status(status: i32) -> Option<Exit> {
        Exit::ALL.into_iter().find(|e| e.qemu_status() == status)
    }

    /// A short description for logs.
    pub const fn describe(self) -> &'static str {
        match self {
            Exit::PowerOff => "power off",
            Exit::HypervisorFault => "fault in the hypervisor",
            Exit::HypervisorPanic => "hypervisor panic",
            Exit::BadBoot => "unusable boot environment",
            Exit::BadDom0 => "cannot build dom0",
            Exit::Dom0Reboot => "dom0 asked for a reboot",
            Exit::Dom0Crash => "dom0 crashed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_distinct_and_round_trip() {
        for (i, a) in Exit::ALL.iter().enumerate() {
            assert_eq!(Exit::from_qemu_status(a.qemu_status()), Some(*a));
            for b in &Exit::ALL[i + 1..] {
                assert_ne!(a.qemu_status(), b.qemu_status(), "{a:?} vs {b:?}");
            }
        }
        assert_eq!(Exit::PowerOff.qemu_status(), 0);
        assert_eq!(Exit::HypervisorFault.qemu_status(), 33);
        // QEMU's own failure status (1) and a triple-fault reset (0 with
        // -no-reboot) must not be mistaken for ours.
        assert_eq!(Exit::from_qemu_status(1), None);
    }
}
