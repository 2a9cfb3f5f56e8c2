//! The toolstack's domain builder on real Xen 4.17: dom0 (the guest
//! kernel's `build` workload) gets a PV kernel image as its ramdisk, builds
//! a domU from it with `toolstack::builder` over real hypercalls, runs it
//! until it shuts down, destroys it and checks every frame came back.
//!
//! A domU's `console_io` output is dropped by Xen's release build, so what
//! the domU did shows in its shutdown reason, which dom0 reports in
//! `BUILD` lines (see `guest-kernel/src/build.rs`).

use hvtest::xen::{self, Dom0End};
use hvtest::{image, workspace_root, Ending, Outcome};
use std::time::Duration;

/// Xen boots in about two seconds under TCG, and building a 16 MiB domain
/// takes less; leave room for a loaded host.
const TIMEOUT: Duration = Duration::from_secs(180);

/// Boots Xen with dom0 `guest-kernel.elf <args>` and `ramdisk` as its ramdisk.
fn build_on_xen(args: &str, ramdisk: &std::path::Path) -> Outcome {
    let kernel = image("guest-kernel.elf").unwrap_or_else(|e| panic!("{e}"));
    let q = xen::dom0_with_ramdisk(&kernel, args, ramdisk).unwrap_or_else(|e| panic!("{e}"));
    let o = q.run_until(TIMEOUT, xen::dom0_ended).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(o.ending, Ending::TimedOut, "Xen did not report the end of dom0 in {TIMEOUT:?}\n{}", o.report());
    o
}

/// Dom0's `BUILD ...` lines, without the prefix.
fn build_lines(o: &Outcome) -> Vec<&str> {
    xen::guest_lines(o).filter_map(|l| l.strip_prefix("BUILD ")).collect()
}

/// Checks that `lines` are `rounds` successful rounds of a domain of
/// `pages` pages shutting down for `reason`, then the summary.
fn assert_rounds(o: &Outcome, rounds: usize, pages: u64, reason: &str) {
    let lines = build_lines(o);
    assert_eq!(lines.len(), 3 * rounds + 1, "want {rounds} rounds of 3 BUILD lines and a summary\n{}", o.report());
    let mut free = None;
    for round in lines.chunks(3).take(rounds) {
        let (built, down, returned) = (round[0], round[1], round[2]);
        let (domid, rest) = built
            .strip_prefix('d')
            .and_then(|r| r.split_once(' '))
            .unwrap_or_else(|| panic!("not a 'built' line: {built}\n{}", o.report()));
        assert!(domid.parse::<u16>().is_ok_and(|d| d > 0), "bad domain id in: {built}");
        assert!(
            rest.starts_with(&format!("built ({pages} pages, entry 0x")) && rest.ends_with(')'),
            "not a 'built' line for {pages} pages: {built}\n{}",
            o.report()
        );
        assert_eq!(down, format!("d{domid} shut down reason={reason}"), "{}", o.report());
        let n = returned
            .strip_prefix("memory returned free=")
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("not a 'memory returned' line: {returned}\n{}", o.report()));
        // Every round starts from, and must come back to, the same free memory.
        assert_eq!(*free.get_or_insert(n), n, "free memory differs between rounds\n{}", o.report());
    }
    assert_eq!(lines.last().copied(), Some(format!("pass={rounds} fail=0").as_str()), "{}", o.report());
    assert_eq!(xen::dom0_end(&o.serial), Some(Dom0End::Halted), "dom0 did not power off\n{}", o.report());
}

/// The minimal example guest, built three times: each time the domain is
/// built (16 MiB: 4096 pages), runs, powers itself off, is destroyed, and
/// Xen's free memory is back to what it was before building.
#[test]
fn dom0_builds_the_minimal_guest_and_gets_its_memory_back_on_xen() {
    let guest = image("minimal-guest.elf").unwrap_or_else(|e| panic!("{e}"));
    let o = build_on_xen("build count=3", &guest);
    assert_rounds(&o, 3, 4096, "poweroff");
}

/// The guest kernel as the domU, with the command line after `--`:
/// `reboot` is a workload that shuts down with reason reboot, which it can
/// only do if its `start_info.cmd_line` arrived; this image also has a
/// hypercall page, so `hypercall_init` is exercised.
#[test]
fn a_built_domain_gets_its_command_line_on_xen() {
    let guest = image("guest-kernel.elf").unwrap_or_else(|e| panic!("{e}"));
    let o = build_on_xen("build memory_mib=32 -- reboot", &guest);
    assert_rounds(&o, 1, 8192, "reboot");
}

/// A domU that crashes fails the round, and dom0 crashes to say so.
#[test]
fn a_crashing_domain_fails_the_round_on_xen() {
    let guest = image("guest-kernel.elf").unwrap_or_else(|e| panic!("{e}"));
    let o = build_on_xen("build -- crash", &guest);
    let lines = build_lines(&o);
    assert!(lines.iter().any(|l| l.ends_with(" shut down reason=crash")), "{}", o.report());
    assert!(lines.iter().any(|l| l.starts_with("memory returned free=")), "{}", o.report());
    assert!(lines.iter().any(|l| l.starts_with("FAIL d") && l.ends_with(" crashed")), "{}", o.report());
    assert_eq!(lines.last().copied(), Some("pass=0 fail=1"), "{}", o.report());
    assert_eq!(xen::dom0_end(&o.serial), Some(Dom0End::Crashed), "{}", o.report());
}

/// An image that is not a kernel is refused by the builder before any
/// domain exists: its one-line error, then a failed summary.
#[test]
fn a_ramdisk_that_is_not_a_kernel_is_one_fail_line_on_xen() {
    let not_elf = workspace_root().join("Cargo.toml");
    let o = build_on_xen("build", &not_elf);
    assert_eq!(build_lines(&o), ["FAIL kernel: not an ELF file (bad magic)", "pass=0 fail=1"], "{}", o.report());
    assert_eq!(xen::dom0_end(&o.serial), Some(Dom0End::Crashed), "{}", o.report());
}

/// The same dom0 shell and toolstack on real Xen 4.17: create a domain,
/// list it, destroy it, and check Xen's own accounting agrees (the domain
/// is gone and free memory came back).
#[test]
fn the_dom0_shell_creates_lists_and_destroys_a_domu_on_xen() {
    let kernel = image("guest-kernel.elf").unwrap_or_else(|e| panic!("{e}"));
    let script = "info; create name=web memory=16 cmdline=block; list; destroy web; list; info; exit";
    let q = xen::dom0_with_ramdisk(&kernel, &format!("shell -- {script}"), &kernel).unwrap_or_else(|e| panic!("{e}"));
    let o = q.run_until(TIMEOUT, xen::dom0_ended).unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<&str> = xen::guest_lines(&o).collect();
    let created = lines.iter().find(|l| l.starts_with("created d") && l.ends_with(" 'web'"));
    let created = created.unwrap_or_else(|| panic!("no 'created' line\n{}", o.report()));
    let id = created.trim_start_matches("created d").split(' ').next().unwrap_or("?");
    let row = format!("{id:<6}web ");
    assert_eq!(lines.iter().filter(|l| l.starts_with(&row)).count(), 1, "listed once, then gone\n{}", o.report());
    assert!(lines.contains(&format!("destroyed d{id} 'web'").as_str()), "{}", o.report());
    let free: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix("free_memory  : ")).collect();
    assert_eq!(free.len(), 2, "{}", o.report());
    assert_eq!(free[0], free[1], "free memory came back\n{}", o.report());
    assert!(lines.contains(&"dom0: exit status=0"), "{}", o.report());
}
