//! The guest kernel on real Xen 4.17: the same binary that must run on our
//! hypervisor passes its selftest as Xen's dom0, the minimal example guest
//! prints its line, and the failure path (an unknown workload) crashes the
//! domain as it should. Xen is Debian's build, fetched by `cargo xtask`
//! into `target/xen-cache/` (`hvtest::xen`).

use hvtest::xen::{self, Dom0End};
use hvtest::{image, Ending, Outcome};
use std::time::Duration;

/// Xen boots in about two seconds under TCG; leave room for a loaded host.
const TIMEOUT: Duration = Duration::from_secs(120);

fn boot_on_xen(image_name: &str, args: &str) -> Outcome {
    let kernel = image(image_name).unwrap_or_else(|e| panic!("{e}"));
    let q = xen::dom0(&kernel, args).unwrap_or_else(|e| panic!("{e}"));
    let o = q.run_until(TIMEOUT, xen::dom0_ended).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(o.ending, Ending::TimedOut, "Xen did not report the end of dom0 in {TIMEOUT:?}\n{}", o.report());
    o
}

/// `TEST <name> ok` / `TEST <name> FAIL <why>` lines: (name, ok, why).
fn test_lines(o: &Outcome) -> Vec<(&str, bool, &str)> {
    xen::guest_lines(o)
        .filter_map(|l| l.strip_prefix("TEST "))
        .map(|rest| {
            let (name, verdict) = rest.split_once(' ').unwrap_or((rest, ""));
            match verdict.strip_prefix("FAIL") {
                Some(why) => (name, false, why.trim()),
                None => (name, verdict == "ok", verdict),
            }
        })
        .collect()
}

#[test]
fn guest_kernel_selftest_passes_on_xen() {
    let o = boot_on_xen("guest-kernel.elf", "selftest");
    let tests = test_lines(&o);
    let failed: Vec<String> = tests.iter().filter(|t| !t.1).map(|(name, _, why)| format!("{name}: {why}")).collect();
    assert!(failed.is_empty(), "selftest checks failed on Xen 4.17:\n  {}\n{}", failed.join("\n  "), o.report());
    for name in hvtest::SELFTEST_CHECKS {
        assert!(tests.iter().any(|t| t.0 == *name), "no 'TEST {name}' line\n{}", o.report());
    }
    let summary = xen::guest_lines(&o)
        .find_map(|l| l.strip_prefix("SELFTEST "))
        .unwrap_or_else(|| panic!("no SELFTEST line\n{}", o.report()));
    let n = tests.len();
    assert_eq!(summary, format!("pass={n} fail=0"), "{}", o.report());
    assert!(n >= hvtest::SELFTEST_CHECKS.len(), "only {n} checks ran\n{}", o.report());
    assert_eq!(xen::dom0_end(&o.serial), Some(Dom0End::Halted), "dom0 did not power off\n{}", o.report());
}

#[test]
fn minimal_guest_says_hello_on_xen() {
    let o = boot_on_xen("minimal-guest.elf", "");
    assert!(
        xen::guest_lines(&o).any(|l| l == "minimal-guest: hello from a PV guest on Xen 4.17"),
        "no hello line\n{}",
        o.report()
    );
    assert_eq!(xen::dom0_end(&o.serial), Some(Dom0End::Halted), "dom0 did not power off\n{}", o.report());
}

/// The bench workload's report has every benchmark (figures are not
/// checked: without -icount they mean nothing, and benchmarks are not
/// tests).
#[test]
fn bench_workload_reports_every_benchmark_on_xen() {
    let o = boot_on_xen("guest-kernel.elf", "bench");
    let names: Vec<&str> = xen::guest_lines(&o)
        .filter_map(|l| l.strip_prefix("BENCH "))
        .filter_map(|rest| rest.split_once(' '))
        .filter(|(_, n)| n.parse::<u64>().is_ok())
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        names,
        [
            "rdtsc_pair",
            "hypercall_null",
            "hypercall_null_syscall",
            "console_write_64",
            "trap_bounce_ud2",
            "mmu_update_512_batch",
            "mmu_update_512_per_entry",
            "pin_unpin_4level",
            "update_va_mapping_invlpg",
            "memcpy_4k",
            "grant_copy_4k",
            "grant_copy_4k_batch16_per_page",
            "grant_map_unmap_4k",
            "grant_map_unmap_4k_batch16_per_page",
            "grant_map_touch_unmap_4k",
            "evtchn_loopback_send",
        ],
        "{}",
        o.report()
    );
    assert_eq!(xen::dom0_end(&o.serial), Some(Dom0End::Halted), "{}", o.report());
}

#[test]
fn unknown_workload_crashes_the_domain_on_xen() {
    let o = boot_on_xen("guest-kernel.elf", "frobnicate");
    assert!(
        xen::guest_lines(&o).any(|l| l.starts_with("unknown workload 'frobnicate'")),
        "no complaint about the workload\n{}",
        o.report()
    );
    assert_eq!(xen::dom0_end(&o.serial), Some(Dom0End::Crashed), "{}", o.report());
}
