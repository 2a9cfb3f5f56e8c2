//! SPEC §3.10–§3.12: several domains at boot, event channels between them,
//! timers and the scheduler, seen from the guests. Every domain here is
//! the guest kernel with a workload; domUs come from `--domu` modules.

use hv::exit::Exit;
use hvtest::{image, Outcome, Qemu};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(240);

/// Boots the hypervisor with one guest-kernel module per entry of
/// `modules` (its module arguments), and `memory_mib` of RAM.
fn boot(modules: &[&str], memory_mib: u32) -> Outcome {
    run(qemu(modules, memory_mib))
}

/// As [`boot`], with time counted in instructions (`-icount`): the TSC,
/// and so the pvclock, and the APIC timer advance with the guest's work
/// alone, so a test about time or shares of the CPU is not disturbed by
/// whatever else the host runs.
fn boot_in_instruction_time(modules: &[&str], memory_mib: u32) -> Outcome {
    run(qemu(modules, memory_mib).cpu(hvtest::xen::ICOUNT_CPU).icount())
}

fn qemu(modules: &[&str], memory_mib: u32) -> Qemu {
    let guest = image("guest-kernel.elf").unwrap_or_else(|e| panic!("{e}"));
    let q = Qemu::hypervisor().unwrap_or_else(|e| panic!("{e}")).memory_mib(memory_mib);
    modules.iter().fold(q, |q, m| q.module(&guest, m))
}

fn run(q: Qemu) -> Outcome {
    q.run(TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

fn field<T: std::str::FromStr>(fields: &[(String, String)], key: &str) -> Option<T> {
    fields.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.parse().ok())
}

/// Two domUs, no dom0: ping finds the port pong offered it and they bounce
/// 10,000 events; then both power off and so does the machine.
#[test]
fn ping_pong_ten_thousand_round_trips_between_two_domus() {
    let o = boot(
        &["--domu name=ping mem=16M -- ping peer=2 count=10000", "--domu name=pong mem=16M -- pong peer=1 count=10000"],
        256,
    );
    let ping = o.dom_fields(1, "PING done").unwrap_or_else(|| panic!("no PING done line\n{}", o.report()));
    assert_eq!(field::<u64>(&ping, "count"), Some(10_000), "{}", o.report());
    let pong = o.dom_fields(2, "PONG done").unwrap_or_else(|| panic!("no PONG done line\n{}", o.report()));
    assert_eq!(field::<u64>(&pong, "count"), Some(10_000), "{}", o.report());
    assert!(o.hv_lines().any(|l| l == "all domains have stopped"), "{}", o.report());
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
    // Each stopped domU was destroyed and every frame it held came back.
    let frames: Vec<Vec<(String, String)>> = o
        .hv_lines()
        .filter_map(|l| l.strip_prefix("frames: "))
        .map(|l| l.split_whitespace().filter_map(|w| w.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect())
        .collect();
    let [.., built, end] = &frames[..] else { panic!("fewer than two frames: lines\n{}", o.report()) };
    let n = |f: &[(String, String)], k: &str| field::<u64>(f, k).unwrap_or_else(|| panic!("no {k}\n{}", o.report()));
    assert_eq!(n(end, "domain"), 0, "{}", o.report());
    // The hypervisor's state for each domain (its slot and event channels,
    // allocated when it was built) came back with it.
    let per_domain: u64 = o
        .hv_lines()
        .find_map(|l| l.strip_prefix("domains: up to "))
        .and_then(|l| l.split(", each with ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no 'domains: up to' line\n{}", o.report()));
    assert_eq!(n(built, "hypervisor") - n(end, "hypervisor"), 2 * per_domain, "{}", o.report());
    assert_eq!(
        n(end, "free"),
        n(built, "free") + n(built, "domain") + 2 * per_domain,
        "not every frame came back\n{}",
        o.report()
    );
    for d in [1, 2] {
        assert!(o.hv_lines().any(|l| l.starts_with(&format!("d{d}: destroyed; "))), "{}", o.report());
    }
}

/// Three CPU-bound domains with weights 1:2:4 share the CPU within 10% of
/// 1/7, 2/7 and 4/7, measured in loop iterations (guest instructions) over
/// the same stretch of pvclock time.
#[test]
fn spinning_domains_share_the_cpu_by_weight() {
    let until = "until_ms=3000";
    let o = boot_in_instruction_time(
        &[
            &format!("--domu name=w1 weight=256 -- spin {until}"),
            &format!("--domu name=w2 weight=512 -- spin {until}"),
            &format!("--domu name=w4 weight=1024 -- spin {until}"),
        ],
        256,
    );
    let iterations: Vec<f64> = (1..=3)
        .map(|d| {
            let f = o.dom_fields(d, "SPIN done").unwrap_or_else(|| panic!("no SPIN done from d{d}\n{}", o.report()));
            field::<f64>(&f, "iterations").unwrap_or_else(|| panic!("d{d}: no iterations\n{}", o.report()))
        })
        .collect();
    let total: f64 = iterations.iter().sum();
    for (i, (n, weight)) in iterations.iter().zip([1.0, 2.0, 4.0]).enumerate() {
        let (share, ideal) = (n / total, weight / 7.0);
        assert!(
            (share - ideal).abs() <= 0.10 * ideal,
            "d{}: share {share:.4}, ideal {ideal:.4} (iterations {iterations:?})\n{}",
            i + 1,
            o.report()
        );
    }
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
}

/// A 10 ms sleep on VIRQ_TIMER wakes no earlier than its deadline and
/// within 1 ms after it, in pvclock time; another domain spinning at the
/// same time does not change that (the sleeper is woken with a boost).
#[test]
fn sleep_wakes_within_a_millisecond_of_its_deadline() {
    let o = boot_in_instruction_time(&["sleep ms=10 rounds=20", "--domu name=spinner -- spin until_ms=100000"], 256);
    let rounds: Vec<i64> = o
        .serial
        .lines()
        .filter_map(|l| l.strip_prefix("SLEEP round="))
        .filter_map(|l| l.split_once(" late_ns=").and_then(|(_, v)| v.trim().parse().ok()))
        .collect();
    assert_eq!(rounds.len(), 20, "{}", o.report());
    for (i, late) in rounds.iter().enumerate() {
        assert!((0..1_000_000).contains(late), "round {i}: woke {late} ns after the deadline\n{}", o.report());
    }
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
}

/// Domains that crash, fault, block forever or spin yielding do not stop
/// the others: dom0 still completes its ping-pong with a domU and powers
/// the machine off.
#[test]
fn crashing_and_blocked_domains_do_not_stop_the_others() {
    let o = boot(
        &[
            "ping peer=1 count=1000",
            "--domu name=pong mem=16M -- pong peer=0 count=1000",
            "--domu name=crash mem=16M -- crash",
            "--domu name=fault mem=16M -- fault-no-handler",
            "--domu name=block mem=16M -- block",
            "--domu name=yield mem=16M -- yield-spin",
        ],
        384,
    );
    assert!(o.hv_lines().any(|l| l == "d2: shut down (Crash)"), "{}", o.report());
    assert!(o.hv_lines().any(|l| l.starts_with("error: d3: crashed: #UD (vector 6)")), "{}", o.report());
    assert!(o.dom_lines(4).any(|l| l == "BLOCK forever"), "{}", o.report());
    assert!(o.dom_lines(5).any(|l| l == "YIELD spinning"), "{}", o.report());
    let ping =
        o.serial.lines().find(|l| l.starts_with("PING done ")).unwrap_or_else(|| panic!("no PING\n{}", o.report()));
    assert!(ping.contains(" count=1000 "), "{ping}\n{}", o.report());
    // Pong answered all 1,000 (ping counted them); its own last line may
    // not make it out: dom0 powers the machine off on its last reply.
    assert!(o.hv_lines().any(|l| l == "d0: shut down (Poweroff)"), "{}", o.report());
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
}

/// A bad domU module is refused with one line and the others still run.
#[test]
fn a_bad_domu_module_is_refused_and_the_rest_boot() {
    let o = boot(&["--domu name=bad weight=0 -- spin until_ms=10", "--domu name=ok mem=16M -- spin until_ms=50"], 256);
    assert!(
        o.hv_lines().any(|l| l.starts_with("error: domU '")
            && l.ends_with("': bad value '0' for weight= (expected a number from 1 to 65535); not started")),
        "{}",
        o.report()
    );
    assert!(o.dom_lines(1).any(|l| l.starts_with("SPIN done ")), "{}", o.report());
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
}
