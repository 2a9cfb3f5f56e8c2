//! The kernel command line (`start_info.cmd_line`): which workload to run.
//!
//! Words are separated by whitespace. The first plain word (no `=`) names
//! the workload; `key=value` words and later plain words are left to others
//! (Xen appends options such as `noapic` or `acpi=off` to dom0's line). A
//! first word that looks like an image path (contains `/` or ends in
//! `.elf`) is skipped, for loaders that pass the module's name along.

/// What the kernel does after it has set itself up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Check the PV ABI and report `TEST` lines (the default).
    Selftest,
    /// Measure hypercall and trap costs and report `BENCH` lines.
    Bench,
    /// Shut down asking for a reboot.
    Reboot,
    /// Shut down reporting a crash.
    Crash,
    /// Clear the trap table, then fault: the hypervisor must crash us.
    FaultNoHandler,
    /// Fault with the stack pointer on an unmapped page: the hypervisor
    /// cannot write the bounce frame and must crash us.
    FaultBadStack,
    /// Check that privileged instructions, port I/O included, raise `#GP`.
    Privileged,
    /// Attack the hypervisor's memory model and report `ATTACK` lines.
    Hostile,
}

impl Workload {
    /// Every workload, for messages.
    pub const ALL: &'static [Workload] = &[
        Workload::Selftest,
        Workload::Bench,
        Workload::Reboot,
        Workload::Crash,
        Workload::FaultNoHandler,
        Workload::FaultBadStack,
        Workload::Privileged,
        Workload::Hostile,
    ];

    /// The workload's command-line name.
    pub const fn name(self) -> &'static str {
        match self {
            Workload::Selftest => "selftest",
            Workload::Bench => "bench",
            Workload::Reboot => "reboot",
            Workload::Crash => "crash",
            Workload::FaultNoHandler => "fault-no-handler",
            Workload::FaultBadStack => "fault-bad-stack",
            Workload::Privileged => "privileged",
            Workload::Hostile => "hostile",
        }
    }
}

/// The workloads' names, for messages.
pub const KNOWN: &str = "selftest, bench, reboot, crash, fault-no-handler, fault-bad-stack, privileged, hostile";

/// The bytes of a NUL-terminated command line up to the NUL.
pub fn until_nul(raw: &[u8]) -> &[u8] {
    raw.iter().position(|&b| b == 0).map_or(raw, |n| &raw[..n])
}

/// The workload a command line asks for; `Err(word)` for an unknown one.
pub fn workload(cmdline: &[u8]) -> Result<Workload, &[u8]> {
    let mut words = until_nul(cmdline).split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()).peekable();
    if words.peek().is_some_and(|w| !w.contains(&b'=') && (w.contains(&b'/') || w.ends_with(b".elf"))) {
        words.next();
    }
    match words.find(|w| !w.contains(&b'=')) {
        None => Ok(Workload::Selftest),
        Some(word) => Workload::ALL.iter().copied().find(|w| w.name().as_bytes() == word).ok_or(word),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_lists_every_workload() {
        let names: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
        assert_eq!(KNOWN, names.join(", "));
    }

    #[test]
    fn default_is_selftest() {
        assert_eq!(workload(b""), Ok(Workload::Selftest));
        assert_eq!(workload(b"\0bench"), Ok(Workload::Selftest));
        assert_eq!(workload(b"  loglvl=all  "), Ok(Workload::Selftest));
    }

    #[test]
    fn first_plain_word_names_the_workload() {
        assert_eq!(workload(b"bench"), Ok(Workload::Bench));
        assert_eq!(workload(b"x=1 bench noapic acpi=off\0junk"), Ok(Workload::Bench));
        assert_eq!(workload(b"selftest bench"), Ok(Workload::Selftest));
        assert_eq!(workload(b"benchmark"), Err(&b"benchmark"[..]));
        assert_eq!(workload(b"hostile"), Ok(Workload::Hostile));
    }

    #[test]
    fn an_image_path_first_is_skipped() {
        assert_eq!(workload(b"/boot/guest-kernel.elf bench"), Ok(Workload::Bench));
        assert_eq!(workload(b"guest-kernel.elf"), Ok(Workload::Selftest));
    }
}
