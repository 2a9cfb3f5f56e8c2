//! What the toolstack says about a running domain: its state, why it shut
//! down, what its configuration does about that, and its line in a list.
//!
//! Everything here reads `getdomaininfo` records
//! ([`XenDomctlGetdomaininfo`]); nothing makes a hypercall.

use alloc::format;
use core::fmt;

use abi::domctl::{
    XenDomctlGetdomaininfo, XEN_DOMINF_BLOCKED, XEN_DOMINF_DYING, XEN_DOMINF_PAUSED, XEN_DOMINF_RUNNING,
    XEN_DOMINF_SHUTDOWN, XEN_DOMINF_SHUTDOWNMASK, XEN_DOMINF_SHUTDOWNSHIFT,
};
use abi::sched::ShutdownReason;

use crate::config::{Action, DomainConfig};

/// A domain's state, from its `XEN_DOMINF_*` flags. Where several flags
/// are set, the first of these wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainState {
    /// Being destroyed: it holds resources someone still references.
    Dying,
    /// Shut down for this reason (`SHUTDOWN_*`), waiting for the toolstack.
    Shutdown(u32),
    /// Paused by the toolstack.
    Paused,
    /// A vCPU is running now.
    Running,
    /// Every vCPU is blocked, waiting for an event.
    Blocked,
    /// Ready to run, waiting for a CPU.
    Runnable,
}

impl DomainState {
    /// The state `flags` (`getdomaininfo.flags`) describe.
    pub const fn from_flags(flags: u32) -> DomainState {
        if flags & XEN_DOMINF_DYING != 0 {
            DomainState::Dying
        } else if flags & XEN_DOMINF_SHUTDOWN != 0 {
            DomainState::Shutdown((flags >> XEN_DOMINF_SHUTDOWNSHIFT) & XEN_DOMINF_SHUTDOWNMASK)
        } else if flags & XEN_DOMINF_PAUSED != 0 {
            DomainState::Paused
        } else if flags & XEN_DOMINF_RUNNING != 0 {
            DomainState::Running
        } else if flags & XEN_DOMINF_BLOCKED != 0 {
            DomainState::Blocked
        } else {
            DomainState::Runnable
        }
    }
}

impl fmt::Display for DomainState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            DomainState::Dying => "dying",
            DomainState::Shutdown(reason) => return f.pad(&format!("shutdown({})", Reason(*reason))),
            DomainState::Paused => "paused",
            DomainState::Running => "running",
            DomainState::Blocked => "blocked",
            DomainState::Runnable => "runnable",
        };
        f.pad(text)
    }
}

/// A shutdown reason's name (`SHUTDOWN_*` in lower case: `poweroff`,
/// `reboot`, `suspend`, `crash`, `watchdog`, `soft_reset`), or its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reason(pub u32);

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match ShutdownReason::try_from(self.0) {
            Ok(ShutdownReason::Poweroff) => f.write_str("poweroff"),
            Ok(ShutdownReason::Reboot) => f.write_str("reboot"),
            Ok(ShutdownReason::Suspend) => f.write_str("suspend"),
            Ok(ShutdownReason::Crash) => f.write_str("crash"),
            Ok(ShutdownReason::Watchdog) => f.write_str("watchdog"),
            Ok(ShutdownReason::SoftReset) => f.write_str("soft_reset"),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}

/// What `config` says to do with its domain once it has shut down for
/// `reason`: `on_reboot` for a reboot, `on_crash` for a crash or an
/// expired watchdog (xl's `on_watchdog` defaults to the same), and
/// `on_poweroff` for everything else (a power-off, and the reasons this
/// toolstack has no key for: suspend, soft reset, unknown numbers).
pub fn action_for(config: &DomainConfig, reason: u32) -> Action {
    match ShutdownReason::try_from(reason) {
        Ok(ShutdownReason::Reboot) => config.on_reboot,
        Ok(ShutdownReason::Crash | ShutdownReason::Watchdog) => config.on_crash,
        _ => config.on_poweroff,
    }
}

/// The heading of a domain list; [`ListRow`]s line up under it.
pub const LIST_HEADER: &str = "ID    NAME              STATE                MEM(MiB)    CPU(s)";

/// One domain's line in a list: id, name, state, memory held in MiB
/// (rounded down) and CPU time used in seconds (one decimal).
#[derive(Clone, Copy, Debug)]
pub struct ListRow<'a> {
    /// The domain's record.
    pub info: &'a XenDomctlGetdomaininfo,
    /// Its name, or `-` when unknown.
    pub name: &'a str,
}

impl fmt::Display for ListRow<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = self.info;
        let mib = i.tot_pages / 256;
        let tenths = i.cpu_time / 100_000_000;
        write!(
            f,
            "{:<5} {:<17} {:<18} {:>10} {:>7}.{}",
            i.domain,
            self.name,
            DomainState::from_flags(i.flags),
            mib,
            tenths / 10,
            tenths % 10
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT, SHUTDOWN_SOFT_RESET, SHUTDOWN_WATCHDOG};

    fn shut(reason: u32) -> u32 {
        XEN_DOMINF_SHUTDOWN | (reason << XEN_DOMINF_SHUTDOWNSHIFT)
    }

    #[test]
    fn states_from_flags_in_priority_order() {
        let s = |flags| DomainState::from_flags(flags).to_string();
        assert_eq!(s(XEN_DOMINF_DYING | shut(SHUTDOWN_CRASH) | XEN_DOMINF_PAUSED), "dying");
        assert_eq!(s(shut(SHUTDOWN_CRASH) | XEN_DOMINF_PAUSED), "shutdown(crash)");
        assert_eq!(s(shut(SHUTDOWN_POWEROFF)), "shutdown(poweroff)");
        assert_eq!(s(shut(SHUTDOWN_SOFT_RESET)), "shutdown(soft_reset)");
        assert_eq!(s(shut(77)), "shutdown(77)");
        assert_eq!(s(XEN_DOMINF_PAUSED | XEN_DOMINF_BLOCKED), "paused");
        assert_eq!(s(XEN_DOMINF_RUNNING | XEN_DOMINF_BLOCKED), "running");
        assert_eq!(s(XEN_DOMINF_BLOCKED), "blocked");
        assert_eq!(s(0), "runnable");
        assert_eq!(DomainState::from_flags(shut(3)), DomainState::Shutdown(3));
        assert_eq!(format!("[{:<9}]", DomainState::Paused), "[paused   ]");
    }

    #[test]
    fn actions_follow_the_reason() {
        let config = DomainConfig::parse(
            "name=\"a\"\nkernel=\"k\"\nmemory=1\non_poweroff=\"preserve\"\non_reboot=\"restart\"\non_crash=\"destroy\"",
        )
        .unwrap();
        assert_eq!(action_for(&config, SHUTDOWN_POWEROFF), Action::Preserve);
        assert_eq!(action_for(&config, SHUTDOWN_REBOOT), Action::Restart);
        assert_eq!(action_for(&config, SHUTDOWN_CRASH), Action::Destroy);
        assert_eq!(action_for(&config, SHUTDOWN_WATCHDOG), Action::Destroy);
        assert_eq!(action_for(&config, SHUTDOWN_SOFT_RESET), Action::Preserve);
        assert_eq!(action_for(&config, 99), Action::Preserve);
        assert_eq!(Reason(SHUTDOWN_WATCHDOG).to_string(), "watchdog");
        assert_eq!(Reason(9).to_string(), "9");
    }

    #[test]
    fn rows_line_up_under_the_header() {
        let info = XenDomctlGetdomaininfo {
            domain: 12,
            flags: XEN_DOMINF_BLOCKED,
            tot_pages: 4096 + 255,
            cpu_time: 2_345_000_000,
            ..Default::default()
        };
        let row = ListRow { info: &info, name: "web" }.to_string();
        assert_eq!(row, "12    web               blocked                    16       2.3");
        assert_eq!(row.len(), LIST_HEADER.len());
        for column in ["NAME", "STATE"] {
            let at = LIST_HEADER.find(column).unwrap();
            assert_eq!(&row[at - 1..at], " ");
            assert_ne!(&row[at..at + 1], " ");
        }
        assert!(LIST_HEADER.ends_with("CPU(s)"));
        let info = XenDomctlGetdomaininfo { flags: shut(SHUTDOWN_REBOOT), cpu_time: 99_999_999, ..info };
        let row = ListRow { info: &info, name: "-" }.to_string();
        assert_eq!(row, "12    -                 shutdown(reboot)           16       0.0");
    }
}
