//! SPEC §3: the hypervisor boots from multiboot, reports its memory, parses
//! its command line, accounts modules, reports its own faults, and ends
//! QEMU with a status that says how it stopped.

use hv::exit::Exit;
use hvtest::{Ending, Outcome, Qemu};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

fn boot(q: Qemu) -> Outcome {
    q.run(TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

fn hv() -> Qemu {
    Qemu::hypervisor().unwrap_or_else(|e| panic!("{e}"))
}

fn field(o: &Outcome, prefix: &str, key: &str) -> u64 {
    let fields = o.fields(prefix).unwrap_or_else(|| panic!("no '{prefix}' line\n{}", o.report()));
    let v = fields.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no {key}= in '{prefix}'\n{}", o.report()));
    v.1.parse().unwrap_or_else(|e| panic!("{key}={}: {e}", v.1))
}

/// §3.1, §3.4: banner, memory summary whose counts add up, clean power-off.
#[test]
fn boots_reports_memory_and_powers_off() {
    let o = boot(hv().memory_mib(128));
    assert_eq!(o.ending, Ending::Exited(0), "{}", o.report());
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
    let banner = o.hv_lines().next().unwrap_or_default();
    assert!(banner.starts_with("hv ") && banner.contains("Xen 4.17 PV guest ABI"), "{}", o.report());

    let ram = field(&o, "frames:", "ram");
    let parts: u64 = ["free", "hypervisor", "module", "domain"].iter().map(|k| field(&o, "frames:", k)).sum();
    assert_eq!(ram, parts, "frame counts do not add up\n{}", o.report());
    // QEMU's 128 MiB minus firmware holes and reservations.
    let ram_mib = (ram * 4096) >> 20;
    assert!((120..=128).contains(&ram_mib), "{ram_mib} MiB of RAM reported for -m 128\n{}", o.report());
    assert!(field(&o, "frames:", "hypervisor") > 0);
    assert_eq!(field(&o, "frames:", "module"), 0);
    assert!(o.line_starting("no domain module given: nothing to run").is_some(), "{}", o.report());
}

/// §3.4: the RAM total follows the machine's memory size.
#[test]
fn memory_size_follows_the_machine() {
    let o = boot(hv().memory_mib(512));
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
    let ram_mib = (field(&o, "frames:", "ram") * 4096) >> 20;
    assert!((500..=512).contains(&ram_mib), "{ram_mib} MiB of RAM reported for -m 512\n{}", o.report());
}

/// §3.2: `loglvl=` sets the level; unknown options are warned about.
#[test]
fn command_line_sets_log_level_and_warns_about_unknown_options() {
    let o = boot(hv().cmdline("loglvl=debug frobnicate=1 loglvl=loud"));
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
    assert!(o.hv_lines().any(|l| l.starts_with("debug: ")), "no debug lines at loglvl=debug\n{}", o.report());
    assert!(
        o.hv_lines().any(|l| l == "warning: command line: unknown option 'frobnicate=1' ignored"),
        "{}",
        o.report()
    );
    assert!(
        o.hv_lines().any(|l| l.starts_with("warning: command line: bad value 'loud' for loglvl=")),
        "{}",
        o.report()
    );

    let quiet = boot(hv().cmdline("loglvl=error"));
    assert_eq!(quiet.exit(), Some(Exit::PowerOff), "{}", quiet.report());
    assert!(quiet.line_starting("frames:").is_none(), "info lines printed at loglvl=error\n{}", quiet.report());
    assert!(quiet.hv_lines().next().is_some_and(|l| l.starts_with("hv ")), "banner must always print");
}

/// §3.3: modules from `-initrd` are listed and their frames accounted;
/// a first module that is not a PV kernel is refused in one line naming
/// the failed check, with the BadDom0 status.
#[test]
fn modules_are_accounted() {
    let dir = std::env::temp_dir().join(format!("hvtest-modules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = dir.join("a.bin");
    let b = dir.join("b.bin");
    std::fs::write(&a, vec![0x5a; 100_000]).unwrap();
    std::fs::write(&b, vec![0xa5; 4096]).unwrap();
    let o = boot(hv().module(&a, "console=hvc0 quiet").module(&b, ""));
    std::fs::remove_dir_all(&dir).ok();

    assert_eq!(o.exit(), Some(Exit::BadDom0), "{}", o.report());
    let m0 = o.line_starting("module 0:").unwrap_or_else(|| panic!("{}", o.report()));
    assert!(m0.ends_with(&format!("\"{} console=hvc0 quiet\"", a.display())), "{m0}");
    assert!(m0.contains("97 KiB"), "{m0}");
    assert!(o.line_starting("module 1:").is_some_and(|l| l.contains("4096 bytes")), "{}", o.report());
    // 100,000 bytes is 25 frames, 4096 bytes one: modules are page-aligned.
    assert_eq!(field(&o, "frames:", "module"), 26, "{}", o.report());
    let refusal = format!("error: dom0 '{}': not an ELF file (bad magic)", a.display());
    assert!(o.hv_lines().any(|l| l == refusal), "want '{refusal}'\n{}", o.report());
}

/// §3.5: a fault inside the hypervisor prints vector, error code, rip, cr2
/// and registers, then exits with the fault status.
#[test]
fn hypervisor_faults_are_reported_with_their_state() {
    for (kind, vector, name) in [
        ("pf", 14, "#PF"),
        ("gp", 13, "#GP"),
        ("ud", 6, "#UD"),
        ("de", 0, "#DE"),
        ("bp", 3, "#BP"),
        ("stack", 8, "#DF"),
    ] {
        let o = boot(hv().cmdline(&format!("debug_fault={kind}")));
        assert_eq!(o.exit(), Some(Exit::HypervisorFault), "{kind}\n{}", o.report());
        let head = format!("FATAL: {name} (vector {vector}) in the hypervisor, error code ");
        assert!(o.line_starting(&head).is_some(), "{kind}: no '{head}'\n{}", o.report());
        for reg in ["rip", "cs", "rflags", "rsp", "cr2", "cr3", "rax", "r15"] {
            assert!(
                o.hv_lines().any(|l| l
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .windows(2)
                    .any(|w| w[0] == reg && w[1].starts_with("0x"))),
                "{kind}: register {reg} missing\n{}",
                o.report()
            );
        }
        assert!(o.hv_lines().any(|l| l == "stopping: fault in the hypervisor (exit status 33)"), "{}", o.report());
    }
    // The page fault reports the address that faulted.
    let o = boot(hv().cmdline("debug_fault=pf"));
    assert!(o.hv_lines().any(|l| l.contains("cr2 0x00000000dead0000")), "{}", o.report());
}

/// §3.5: a panic is reported and exits with its own status.
#[test]
fn hypervisor_panics_are_reported() {
    let o = boot(hv().cmdline("debug_fault=panic"));
    assert_eq!(o.exit(), Some(Exit::HypervisorPanic), "{}", o.report());
    assert!(o.line_starting("PANIC: ").is_some(), "{}", o.report());
}

/// Days since 1970-01-01 for a civil date (for checking the RTC line).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + (153 * m + 2) / 5 + d - 1;
    era * 146_097 + doe - 719_468
}

/// Issue 5 §3 groundwork: the TSC is calibrated against the PIT and the
/// wall clock comes from the RTC, which QEMU sets from the host's clock.
#[test]
fn time_is_calibrated_and_the_wall_clock_read() {
    let o = boot(hv());
    let line = o.line_starting("time: TSC ").unwrap_or_else(|| panic!("no time line\n{}", o.report()));
    let mhz: f64 = line["time: TSC ".len()..].split_whitespace().next().unwrap().parse().unwrap();
    assert!(mhz > 1.0, "{line}");
    let wall = line.split("wall clock ").nth(1).unwrap_or_else(|| panic!("{line}"));
    let n: Vec<i64> =
        wall.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
    let guest = days_from_civil(n[0], n[1], n[2]) * 86_400 + n[3] * 3600 + n[4] * 60 + n[5];
    let host = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((guest - host).abs() < 600, "RTC says {wall}, host clock is {host}");
}
