//! SPEC §3.11–3.12: a thousand domains at once. Dom0's `many` workload
//! builds 1,000 domains of 4 MiB from its ramdisk (the guest kernel,
//! running `block`), keeps them all alive, then destroys them; the
//! hypervisor's state for each is allocated when it is created and freed
//! when it is destroyed, and running out of memory is a clean `-ENOMEM`.

use hv::exit::Exit;
use hvtest::{image, Outcome, Qemu};
use std::time::Duration;

/// About 80 s under TCG on the development machine; generous for slow CI.
const TIMEOUT: Duration = Duration::from_secs(600);

fn boot(memory_mib: u32, count: u32) -> Outcome {
    let guest = image("guest-kernel.elf").unwrap_or_else(|e| panic!("{e}"));
    Qemu::hypervisor()
        .unwrap_or_else(|e| panic!("{e}"))
        .memory_mib(memory_mib)
        .module(&guest, &format!("many memory_mib=4 count={count} -- block"))
        .module(&guest, "")
        .run(TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The `MANY k=...` lines: (k, fields).
fn per_domain(o: &Outcome) -> Vec<(u64, Vec<(String, String)>)> {
    o.serial
        .lines()
        .filter_map(|l| l.strip_prefix("MANY k="))
        .filter(|rest| rest.contains(" tsc="))
        .map(|rest| {
            let fields: Vec<(String, String)> = format!("k={rest}")
                .split_whitespace()
                .filter_map(|f| f.split_once('=').map(|(a, b)| (a.to_string(), b.to_string())))
                .collect();
            let k = fields[0].1.parse().unwrap_or_else(|e| panic!("k in '{rest}': {e}"));
            (k, fields)
        })
        .collect()
}

fn field(fields: &[(String, String)], key: &str) -> u64 {
    let v = fields.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no {key} in {fields:?}"));
    v.1.parse().unwrap_or_else(|e| panic!("{key}={}: {e}", v.1))
}

fn done_line(o: &Outcome) -> (u64, u64, u64) {
    let done = o.serial.lines().find(|l| l.starts_with("MANY done ")).unwrap_or_else(|| panic!("{}", o.report()));
    let f: Vec<(String, String)> = done
        .split_whitespace()
        .skip(2)
        .filter_map(|f| f.split_once('=').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect();
    (field(&f, "count"), field(&f, "free_before"), field(&f, "free_after"))
}

/// 1,000 domains run at once (each has had the CPU and blocked, none
/// stopped); the hypervisor's memory per domain is a few frames and the
/// same for the first domain and the thousandth; after destroying them
/// every frame is back. 5 GiB of RAM: 1,000 × 4 MiB is more than 4 GiB.
#[test]
fn a_thousand_domains_run_at_once_and_every_frame_comes_back() {
    let o = boot(5120, 1000);
    let doms = per_domain(&o);
    assert_eq!(doms.len(), 1000, "{}", o.report());
    assert!(doms.iter().enumerate().all(|(i, (k, _))| *k == i as u64 + 1), "{}", o.report());
    let hv_dom: Vec<u64> = doms.iter().map(|(_, f)| field(f, "hv_dom")).collect();
    // The domain's state and its shared-info frame: a few frames, not a
    // cost that grows with the number of domains.
    assert!(hv_dom.iter().all(|&n| (1..=16).contains(&n)), "hypervisor frames per domain: {hv_dom:?}");
    assert_eq!(hv_dom.first(), hv_dom.last());
    assert!(
        o.serial.lines().any(|l| l == "MANY ran count=1000 ran=1000 blocked=1000 stopped=0"),
        "not every domain ran and blocked\n{}",
        o.report()
    );
    let (count, before, after) = done_line(&o);
    assert_eq!((count, after), (1000, before), "{}", o.report());
    assert!(o.serial.lines().any(|l| l == "MANY pass"), "{}", o.report());
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
}

/// Building domains until memory runs out: the builder refuses the one
/// that does not fit and leaves nothing behind; below the builder,
/// `createdomain` fails with `-ENOMEM` once the hypervisor cannot allocate
/// a domain's state, `populate_physmap` stops short, and destroying it all
/// gives every frame back.
#[test]
fn running_out_of_memory_fails_cleanly_with_enomem() {
    let o = boot(512, 1000);
    let built = per_domain(&o).len() as u64;
    assert!(built > 10, "{}", o.report());
    let fail = o.serial.lines().find(|l| l.starts_with("MANY FAIL k=")).unwrap_or_else(|| panic!("{}", o.report()));
    assert!(fail.starts_with(&format!("MANY FAIL k={} memory: ", built + 1)), "{fail}");
    for line in ["MANY build failed clean free=", "MANY createdomain ENOMEM after=", "MANY exhaust clean free="] {
        assert!(o.serial.lines().any(|l| l.starts_with(line)), "no '{line}'\n{}", o.report());
    }
    let short =
        o.serial.lines().find(|l| l.starts_with("MANY populate short ")).unwrap_or_else(|| panic!("{}", o.report()));
    let f: Vec<(String, String)> = short
        .split_whitespace()
        .skip(3)
        .filter_map(|f| f.split_once('=').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect();
    assert!(field(&f, "done") < field(&f, "asked"), "{short}");
    assert!(!o.serial.lines().any(|l| l.starts_with("MANY FAIL exhaust")), "{}", o.report());
    assert!(
        o.serial.lines().any(|l| l == format!("MANY ran count={built} ran={built} blocked={built} stopped=0")),
        "{}",
        o.report()
    );
    let (count, before, after) = done_line(&o);
    assert_eq!((count, after), (built, before), "{}", o.report());
    assert_eq!(o.exit(), Some(Exit::Dom0Crash), "the workload reports the refused build\n{}", o.report());
}
