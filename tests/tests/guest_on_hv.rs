//! SPEC §3.7, §3.8, §4, §7: the guest kernel boots as dom0 on this
//! hypervisor and passes its selftest; dom0's way of stopping decides the
//! machine's exit status.

use hv::exit::Exit;
use hvtest::{image, Outcome, Qemu};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

fn boot_guest(args: &str, hv_cmdline: &str) -> Outcome {
    let guest = image("guest-kernel.elf").unwrap_or_else(|e| panic!("{e}"));
    let q = Qemu::hypervisor().unwrap_or_else(|e| panic!("{e}")).cmdline(hv_cmdline).module(&guest, args);
    q.run(TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

/// The `SELFTEST pass=N fail=M` line.
fn selftest_counts(o: &Outcome) -> Option<(u32, u32)> {
    let line = o.serial.lines().find(|l| l.starts_with("SELFTEST "))?;
    let mut pass = None;
    let mut fail = None;
    for w in line.split_whitespace() {
        if let Some(v) = w.strip_prefix("pass=") {
            pass = v.parse().ok();
        } else if let Some(v) = w.strip_prefix("fail=") {
            fail = v.parse().ok();
        }
    }
    Some((pass?, fail?))
}

#[test]
fn selftest_passes_on_this_hypervisor() {
    let o = boot_guest("selftest", "");
    let failed: Vec<&str> = o.serial.lines().filter(|l| l.starts_with("TEST ") && !l.ends_with(" ok")).collect();
    assert!(failed.is_empty(), "failing checks: {failed:#?}\n{}", o.report());
    let tests = o.serial.lines().filter(|l| l.starts_with("TEST ")).count() as u32;
    let (pass, fail) = selftest_counts(&o).unwrap_or_else(|| panic!("no SELFTEST line\n{}", o.report()));
    assert_eq!((pass, fail), (tests, 0), "{}", o.report());
    for name in hvtest::SELFTEST_CHECKS {
        assert!(o.serial.lines().any(|l| l == format!("TEST {name} ok")), "check {name} missing\n{}", o.report());
    }
    assert!(o.hv_lines().any(|l| l == "d0: shut down (Poweroff)"), "{}", o.report());
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
}

#[test]
fn dom0_memory_follows_dom0_mem() {
    let o = boot_guest("selftest", "dom0_mem=32M");
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
    assert!(o.serial.lines().any(|l| l.starts_with("INFO start_info nr_pages=8192 ")), "{}", o.report());
}

/// §3.7: dom0's shutdown reason decides the machine's exit status.
#[test]
fn dom0_reboot_and_crash_have_their_own_statuses() {
    let o = boot_guest("reboot", "");
    assert!(o.hv_lines().any(|l| l == "d0: shut down (Reboot)"), "{}", o.report());
    assert_eq!(o.exit(), Some(Exit::Dom0Reboot), "{}", o.report());
    let o = boot_guest("crash", "");
    assert!(o.hv_lines().any(|l| l == "d0: shut down (Crash)"), "{}", o.report());
    assert_eq!(o.exit(), Some(Exit::Dom0Crash), "{}", o.report());
}

/// §3.8: a fault the guest cannot take crashes the domain with a line
/// naming domain, vector, rip and reason; the hypervisor itself does not
/// fault (its own fault status would be 33).
#[test]
fn undeliverable_faults_crash_the_domain_not_the_hypervisor() {
    for (workload, reason) in
        [("fault-no-handler", "no handler registered"), ("fault-bad-stack", "guest kernel stack is not writable")]
    {
        let o = boot_guest(workload, "");
        let line = o
            .hv_lines()
            .find(|l| l.starts_with("error: d0: crashed: #UD (vector 6) at rip 0x"))
            .unwrap_or_else(|| panic!("{workload}: no crash line\n{}", o.report()));
        assert!(line.ends_with(&format!(": {reason}")), "{workload}: {line}");
        assert!(!o.serial.contains("FATAL"), "{workload}: the hypervisor faulted\n{}", o.report());
        assert_eq!(o.exit(), Some(Exit::Dom0Crash), "{workload}\n{}", o.report());
    }
}

/// §8: the minimal example guest, written with `abi` alone, boots and
/// powers off.
#[test]
fn minimal_example_guest_runs() {
    let guest = image("minimal-guest.elf").unwrap_or_else(|e| panic!("{e}"));
    let q = Qemu::hypervisor().unwrap_or_else(|e| panic!("{e}")).module(&guest, "");
    let o = q.run(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(o.serial.lines().any(|l| l == "minimal-guest: hello from a PV guest on Xen 4.17"), "{}", o.report());
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
}

/// §3.8: privileged instructions, port I/O included, reach a ring-3
/// kernel as `#GP(0)` (Xen emulates port I/O for its dom0, so this runs
/// here only).
#[test]
fn privileged_instructions_reach_the_guest_as_gp() {
    let o = boot_guest("privileged", "");
    let failed: Vec<&str> = o.serial.lines().filter(|l| l.starts_with("TEST ") && !l.ends_with(" ok")).collect();
    assert!(failed.is_empty(), "failing checks: {failed:#?}\n{}", o.report());
    for name in ["cli", "hlt", "in", "out", "wrmsr", "lgdt", "mov_cr0", "mov_cr3"] {
        assert!(o.serial.lines().any(|l| l == format!("TEST {name}_gp ok")), "{name} missing\n{}", o.report());
    }
    assert!(o.serial.lines().any(|l| l == "PRIVILEGED pass=12 fail=0"), "{}", o.report());
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
}
