//! SPEC §3.12: the control hypercalls (`domctl`, `sysctl`) from dom0, and
//! their refusal to domUs. The guest kernel's `control` workload makes the
//! calls and reports `CTL` lines.

use hv::exit::Exit;
use hvtest::{image, Outcome, Qemu};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(240);

fn boot(modules: &[&str]) -> Outcome {
    let guest = image("guest-kernel.elf").unwrap_or_else(|e| panic!("{e}"));
    let q = Qemu::hypervisor().unwrap_or_else(|e| panic!("{e}"));
    let q = modules.iter().fold(q, |q, m| q.module(&guest, m));
    q.run(TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

/// physinfo, readconsole, the errnos, a domain's life from creation to
/// destruction, and 1,000 create/destroy cycles after which free memory
/// is exactly what it was; and (§3.14) a domain destroyed while dom0 maps
/// its grant, whose frames and id come back when dom0 unmaps it.
#[test]
fn dom0_creates_and_destroys_domains_and_gets_every_frame_back() {
    let o = boot(&["control count=1000"]);
    for check in ["physinfo", "readconsole", "errors", "lifecycle", "cycles", "grants"] {
        assert!(o.serial.lines().any(|l| l == format!("CTL {check} ok")), "CTL {check} not ok\n{}", o.report());
    }
    assert!(o.serial.lines().any(|l| l == "CTL pass=6 fail=0"), "{}", o.report());
    assert!(
        o.hv_lines().any(|l| l.contains(": last grant mapping gone; ") && l.ends_with(", 0 still referenced")),
        "{}",
        o.report()
    );
    let cycles = o.serial.lines().find(|l| l.starts_with("INFO cycles ")).unwrap_or_else(|| panic!("{}", o.report()));
    assert!(cycles.starts_with("INFO cycles count=1000 "), "{cycles}");
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
}

/// A domU calling domctl or sysctl gets -EPERM, and nothing else happens.
#[test]
fn a_domu_calling_domctl_gets_eperm() {
    let o = boot(&["--domu mem=8M -- control"]);
    assert!(o.dom_lines(1).any(|l| l == "CTL refused ok"), "{}", o.report());
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
}

/// Dom0 builds domUs with the toolstack's builder from the kernel image it
/// got as its ramdisk, runs them to their shutdown, destroys them and gets
/// its memory back; the domU's own console line shows it really ran.
#[test]
fn dom0_builds_runs_and_destroys_domus_from_its_ramdisk() {
    let guest = image("guest-kernel.elf").unwrap_or_else(|e| panic!("{e}"));
    let minimal = image("minimal-guest.elf").unwrap_or_else(|e| panic!("{e}"));
    // The domUs' console lines go to the serial port too, to be seen here.
    let q = Qemu::hypervisor()
        .unwrap_or_else(|e| panic!("{e}"))
        .cmdline("domu_console=serial")
        .module(&guest, "build count=2")
        .module(&minimal, "");
    let o = q.run(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(o.serial.lines().any(|l| l == "BUILD pass=2 fail=0"), "{}", o.report());
    assert_eq!(
        o.serial.lines().filter(|l| l.starts_with("BUILD d") && l.ends_with(" shut down reason=poweroff")).count(),
        2,
        "{}",
        o.report()
    );
    assert_eq!(o.serial.lines().filter(|l| l.starts_with("BUILD memory returned ")).count(), 2, "{}", o.report());
    assert!(o.hv_lines().any(|l| l.starts_with("d0: ramdisk '")), "{}", o.report());
    assert!(o.serial.lines().any(|l| l.starts_with("(d1) minimal-guest: hello")), "{}", o.report());
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
}

/// A built domU is the guest kernel itself: its selftest's clock check
/// needs the wall clock the hypervisor gives a domain when its vCPU is set
/// up (the builder hands over a zeroed shared-info page).
#[test]
fn a_built_domu_has_a_wall_clock() {
    let guest = image("guest-kernel.elf").unwrap_or_else(|e| panic!("{e}"));
    let q = Qemu::hypervisor()
        .unwrap_or_else(|e| panic!("{e}"))
        .cmdline("domu_console=serial")
        .module(&guest, "build memory_mib=32 -- selftest")
        .module(&guest, "");
    let o = q.run(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(o.serial.lines().any(|l| l == "(d1) TEST time ok"), "{}", o.report());
}

/// By default a toolstack-created domain's console output is kept for dom0
/// (the console ring), not printed on the hypervisor's serial console.
#[test]
fn a_created_domains_console_goes_to_the_ring_for_dom0() {
    let guest = image("guest-kernel.elf").unwrap_or_else(|e| panic!("{e}"));
    let minimal = image("minimal-guest.elf").unwrap_or_else(|e| panic!("{e}"));
    let q = Qemu::hypervisor().unwrap_or_else(|e| panic!("{e}")).module(&guest, "build").module(&minimal, "");
    let o = q.run(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(o.serial.lines().any(|l| l == "BUILD pass=1 fail=0"), "{}", o.report());
    assert!(!o.serial.lines().any(|l| l.starts_with("(d1) ")), "printed on the serial port\n{}", o.report());
}
