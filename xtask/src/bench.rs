//! `cargo xtask bench`: the guest kernel's `bench` workload on real Xen
//! 4.17 and on this hypervisor, side by side.
//!
//! Both boots run under `-icount shift=0,sleep=off`, where the guest's TSC
//! advances one tick per executed instruction, so every figure is an exact,
//! repeatable instruction count (guest, hypervisor and the transitions
//! between them). The guest prints `BENCH <name> <instructions>` lines; a
//! hypervisor that prints none gets an "unavailable" column with the last
//! line it printed, and the bench still succeeds. Benchmarks are not tests:
//! nothing here judges the figures.
//!
//! Then dom0 builds 1,000 domains on this hypervisor and keeps them
//! alive ([`scaling`]): the instructions to create the k-th and the
//! hypervisor memory each costs.
//!
//! Last, a domain reads and writes a disk dom0 serves over the PV block
//! device ([`block`]).
//!
//! Output: a table on stdout, `target/bench/report.json`,
//! `target/bench/report.md` and `target/bench/domain_scaling.svg`.

mod block;
mod scaling;

use crate::setup::{self, Need};
use crate::{Failure, Result};
use hvtest::{xen, Outcome, Qemu};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// How long one hypervisor gets to boot and finish the benchmarks.
const TIMEOUT: Duration = Duration::from_secs(300);

/// What each benchmark measures, in the guest's words.
const DESCRIPTIONS: &[(&str, &str)] = &[
    ("rdtsc_pair", "two back-to-back rdtsc (the measurement's own cost, subtracted from the others)"),
    ("hypercall_null", "xen_version(XENVER_version, NULL) through the hypercall page, round trip"),
    ("hypercall_null_syscall", "the same hypercall by a raw syscall"),
    ("console_write_64", "console_io(CONSOLEIO_write) of 64 bytes"),
    ("trap_bounce_ud2", "ud2 bounced to the guest's #UD handler, which returns with the iret hypercall"),
    (
        "mmu_update_512_batch",
        "one mmu_update of 512 requests mapping 512 frames read-write into one empty L1 (unmapping between runs not counted)",
    ),
    ("mmu_update_512_per_entry", "mmu_update_512_batch divided by 512"),
    (
        "pin_unpin_4level",
        "MMUEXT_PIN_L4_TABLE then MMUEXT_UNPIN_TABLE (two hypercalls) of an L4+L3+L2+L1 tree, one entry per table",
    ),
    ("update_va_mapping_invlpg", "update_va_mapping with UVMF_INVLPG, switching one address between two frames"),
    (
        "evtchn_loopback_send",
        "EVTCHNOP_send on a loopback channel to the domain itself, upcalls unmasked: send, upcall into the event callback, handler, iret",
    ),
    ("memcpy_4k", "a plain copy of 4096 bytes between two of the domain's frames (the physical limit)"),
    ("grant_copy_4k", "one GNTTABOP_copy of 4096 bytes from a page granted to the domain itself into a frame of its own"),
    ("grant_copy_4k_batch16_per_page", "one GNTTABOP_copy call of 16 such copies, divided by 16"),
    ("grant_map_unmap_4k", "GNTTABOP_map_grant_ref (read-write host mapping) then GNTTABOP_unmap_grant_ref of one page"),
    ("grant_map_unmap_4k_batch16_per_page", "a map call and an unmap call of 16 pages each, divided by 16"),
    ("grant_map_touch_unmap_4k", "the map, a copy of the 4096 bytes through the mapping, then the unmap"),
    (
        "domain_build",
        "dom0 builds a 16 MiB domain of the minimal guest with the toolstack's builder (create, populate, write kernel/p2m/start_info/page tables, pin, hypercall page, vCPU context)",
    ),
    (
        "domain_build_run_destroy",
        "the same build, then unpause; the guest prints its line and powers off; dom0 wakes on VIRQ_DOM_EXC and destroys it",
    ),
    (
        "evtchn_pingpong_rtt",
        "two domUs bounce an event over an interdomain channel: one round trip (send, switch, upcall, reply, switch, upcall), mean of 2,000",
    ),
    (
        "yield_switch",
        "two domUs both calling SCHEDOP_yield: one call, which switches to the other domain and back (two switches, two yields); median of batches",
    ),
];

/// Benchmarks that need several domains: boot-module lists (`--domu`
/// modules of the guest kernel) run on this hypervisor only, since Xen
/// needs a toolstack to start a second domain.
const MULTI_DOMAIN: &[&[&str]] = &[
    &["--domu name=ping mem=16M -- ping peer=2 count=2000", "--domu name=pong mem=16M -- pong peer=1 count=2000"],
    &["--domu name=y1 mem=16M -- bench-yield count=20000", "--domu name=y2 mem=16M -- bench-yield count=20000"],
];

/// One hypervisor's column.
#[derive(Debug)]
enum Column {
    /// `BENCH` figures in the order the guest printed them.
    Figures(Vec<(String, u64)>),
    /// No figures, and why.
    Unavailable(String),
}

/// Runs the benchmarks on both hypervisors and writes the reports.
pub fn run() -> Result {
    setup::ensure(&[Need::RustTarget, Need::Qemu, Need::RealXen])?;
    crate::build(true)?;
    let guest = hvtest::image("guest-kernel.elf")?;

    let minimal = hvtest::image("minimal-guest.elf")?;
    eprintln!("xtask: bench on real Xen 4.17 (-icount shift=0,sleep=off)");
    let mut xen_col = match xen::dom0(&guest, "bench") {
        Ok(q) => collect(icount(q), true),
        Err(e) => Column::Unavailable(e),
    };
    eprintln!("xtask: bench on real Xen 4.17: dom0 builds, runs and destroys a domain");
    let built = match xen::dom0_with_ramdisk(&guest, "build", &minimal) {
        Ok(q) => collect(icount(q), true),
        Err(e) => Column::Unavailable(e),
    };
    xen_col = xen_col.merge(built);
    eprintln!("xtask: bench on hv (-icount shift=0,sleep=off)");
    let mut hv_col = match Qemu::hypervisor() {
        Ok(q) => collect(icount(q.memory_mib(xen::XEN_MEMORY_MIB).module(&guest, "bench")), false),
        Err(e) => Column::Unavailable(e),
    };
    eprintln!("xtask: bench on hv: dom0 builds, runs and destroys a domain");
    let built = match Qemu::hypervisor() {
        Ok(q) => collect(icount(q.memory_mib(xen::XEN_MEMORY_MIB).module(&guest, "build").module(&minimal, "")), false),
        Err(e) => Column::Unavailable(e),
    };
    hv_col = hv_col.merge(built);
    for modules in MULTI_DOMAIN {
        eprintln!("xtask: bench on hv with {} domUs (-icount shift=0,sleep=off)", modules.len());
        let more = match Qemu::hypervisor() {
            Ok(q) => {
                let q = modules.iter().fold(q.memory_mib(xen::XEN_MEMORY_MIB), |q, m| q.module(&guest, m));
                collect(icount(q), false)
            }
            Err(e) => Column::Unavailable(e),
        };
        hv_col = hv_col.merge(more);
    }
    let columns = [("xen-4.17", xen_col), ("hv", hv_col)];

    // Wall time of the same domain life, without -icount: pvclock
    // nanoseconds under TCG on this host, so only a rough scale.
    eprintln!("xtask: wall time of a domain's life on both (no -icount)");
    let wall_of = |q: std::result::Result<Qemu, String>, on_xen: bool| match q {
        Ok(q) => {
            let o = if on_xen { q.run_until(TIMEOUT, xen::dom0_ended) } else { q.run(TIMEOUT) };
            o.map_or_else(Column::Unavailable, |o| figures_tagged(&o, "WALL "))
        }
        Err(e) => Column::Unavailable(e),
    };
    let wall = [
        ("xen-4.17", wall_of(xen::dom0_with_ramdisk(&guest, "build", &minimal), true)),
        (
            "hv",
            wall_of(
                Qemu::hypervisor()
                    .map(|q| q.memory_mib(xen::XEN_MEMORY_MIB).module(&guest, "build").module(&minimal, "")),
                false,
            ),
        ),
    ];

    eprintln!("xtask: domain scaling on hv: {} domains alive at once (-icount shift=0,sleep=off)", scaling::COUNT);
    let scaled = scaling::measure(&guest, icount);

    eprintln!("xtask: the PV block device on hv, with and without -icount");
    let blocks = block::measure(&guest, icount);

    let dir = crate::root().join("target").join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut report = json(&columns);
    report.truncate(report.trim_end().len().saturating_sub(1));
    let wall_json = json_of(&wall, "ns", "pvclock time of one build and of one build-run-destroy, no -icount (TCG)");
    let _ = writeln!(report, "  ,\"wall\": {}", wall_json.trim_end());
    let mut scaling_md = format!(
        "\n## Domain scaling\n\nDom0's `many` workload on hv builds {} domains of 4 MiB (the guest kernel running \
         `block`) and keeps them all alive: instructions to build and unpause the k-th, and the hypervisor frames \
         each costs (its state and shared-info frame). Plot: `domain_scaling.svg`.\n\n",
        scaling::COUNT
    );
    match &scaled {
        Ok(points) => {
            write(&dir.join("domain_scaling.svg"), &scaling::svg(points))?;
            let figures = scaling::summary(points);
            let fields: Vec<String> = figures
                .iter()
                .map(|(name, n, unit)| {
                    format!("{}: {{\"value\": {n}, \"unit\": {}}}", json_string(name), json_string(unit))
                })
                .collect();
            let _ = writeln!(report, "  ,\"domain_scaling\": {{{}}}", fields.join(", "));
            scaling_md.push_str("| figure | value |\n|---|---|\n");
            for (name, n, unit) in &figures {
                let _ = writeln!(scaling_md, "| {name} | {n} {unit} |");
            }
        }
        Err(why) => {
            let _ = writeln!(report, "  ,\"domain_scaling\": {{\"unavailable\": {}}}", json_string(why));
            let _ = writeln!(scaling_md, "Unavailable: {why}");
        }
    }
    match &blocks {
        Ok(rows) => {
            let _ = writeln!(report, "  ,\"block\": {}", block::json(rows));
        }
        Err(why) => {
            let _ = writeln!(report, "  ,\"block\": {{\"unavailable\": {}}}", json_string(why));
        }
    }
    report.push_str("}\n");
    write(&dir.join("report.json"), &report)?;
    let mut md = markdown(&columns);
    md.push_str("\n## Wall time\n\nThe domain's life again, without `-icount`: nanoseconds of pvclock time under TCG on this host, a rough scale only.\n\n");
    md.push_str(&table_titled(&wall, "ns of pvclock time, no -icount"));
    md.push_str(&scaling_md);
    match &blocks {
        Ok(rows) => md.push_str(&block::markdown(rows)),
        Err(why) => {
            let _ = write!(md, "\n## Block device\n\nUnavailable: {why}\n");
        }
    }
    write(&dir.join("report.md"), &md)?;
    print!("{}", table(&columns));
    print!("{}", table_titled(&wall, "wall time, ns of pvclock (no -icount; TCG on this host: a rough scale)"));
    match &scaled {
        Ok(points) => {
            for (name, n, unit) in scaling::summary(points) {
                println!("domain scaling: {name} = {n} {unit}");
            }
        }
        Err(why) => println!("domain scaling: unavailable: {why}"),
    }
    match &blocks {
        Ok(rows) => {
            for r in rows {
                if r.bytes == 0 {
                    println!("block: {} = {} instructions", r.name, r.instr);
                    continue;
                }
                let rate = r.mib_per_s().map_or_else(|| "-".into(), |v| format!("{v:.1} MiB/s"));
                println!(
                    "block: {} = {} instructions, {:.3} MiB per M instructions, {rate}",
                    r.name,
                    r.instr,
                    r.mib_per_minstr()
                );
            }
        }
        Err(why) => println!("block: unavailable: {why}"),
    }
    eprintln!("xtask: wrote target/bench/report.json, report.md and domain_scaling.svg");
    Ok(())
}

fn icount(q: Qemu) -> Qemu {
    q.cpu(xen::ICOUNT_CPU).icount()
}

fn write(path: &Path, text: &str) -> Result {
    std::fs::write(path, text).map_err(|e| Failure::Message(format!("writing {}: {e}", path.display())))
}

impl Column {
    /// This column's figures followed by `other`'s (the first of several
    /// with one name wins); if either has none, the other, or the first
    /// reason.
    fn merge(self, other: Column) -> Column {
        match (self, other) {
            (Column::Figures(mut a), Column::Figures(b)) => {
                for (name, n) in b {
                    if !a.iter().any(|(m, _)| *m == name) {
                        a.push((name, n));
                    }
                }
                Column::Figures(a)
            }
            (Column::Figures(a), Column::Unavailable(_)) | (Column::Unavailable(_), Column::Figures(a)) => {
                Column::Figures(a)
            }
            (u @ Column::Unavailable(_), Column::Unavailable(_)) => u,
        }
    }
}

/// Boots `q` and reads its `BENCH` lines. Xen halts instead of powering
/// off, so on Xen the boot stops when Xen reports the end of dom0.
fn collect(q: Qemu, on_xen: bool) -> Column {
    let outcome = if on_xen { q.run_until(TIMEOUT, xen::dom0_ended) } else { q.run(TIMEOUT) };
    match outcome {
        Ok(o) => figures(&o),
        Err(e) => Column::Unavailable(e),
    }
}

fn figures(o: &Outcome) -> Column {
    figures_tagged(o, "BENCH ")
}

/// The `<tag><name> <number>` lines of `o`, in order.
fn figures_tagged(o: &Outcome, tag: &str) -> Column {
    let figures: Vec<(String, u64)> = o
        .serial
        .lines()
        // A domU's lines carry the hypervisor's `(dN) ` prefix.
        .map(|l| if l.starts_with("(d") { l.split_once(") ").map_or(l, |(_, rest)| rest) } else { l })
        .filter_map(|l| l.strip_prefix(tag))
        .filter_map(|rest| {
            let (name, n) = rest.split_once(' ')?;
            Some((name.to_string(), n.trim().parse().ok()?))
        })
        .collect();
    if !figures.is_empty() {
        return Column::Figures(figures);
    }
    let last = o
        .serial
        .lines()
        .chain(o.stderr.lines())
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map_or_else(|| format!("no output ({:?})", o.ending), str::to_string);
    Column::Unavailable(last)
}

/// Every benchmark name any column has, in first-seen order.
fn names(columns: &[(&str, Column)]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (_, c) in columns {
        if let Column::Figures(f) = c {
            for (n, _) in f {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
    }
    names
}

fn cell(c: &Column, name: &str) -> String {
    match c {
        Column::Figures(f) => f.iter().find(|(n, _)| n == name).map_or("-".into(), |(_, v)| v.to_string()),
        Column::Unavailable(_) => "unavailable".into(),
    }
}

fn table(columns: &[(&str, Column)]) -> String {
    table_titled(columns, "instructions per operation (median; -icount shift=0: one TSC tick per instruction)")
}

fn table_titled(columns: &[(&str, Column)], title: &str) -> String {
    let mut out = format!("{title}\n");
    let _ = write!(out, "{:<24}", "benchmark");
    for (h, _) in columns {
        let _ = write!(out, " {h:>12}");
    }
    out.push('\n');
    for name in names(columns) {
        let _ = write!(out, "{name:<24}");
        for (_, c) in columns {
            let _ = write!(out, " {:>12}", cell(c, &name));
        }
        out.push('\n');
    }
    for (h, c) in columns {
        if let Column::Unavailable(why) = c {
            let _ = writeln!(out, "{h}: unavailable: {why}");
        }
    }
    out
}

fn markdown(columns: &[(&str, Column)]) -> String {
    let mut out = String::from("# Benchmarks: guest-kernel `bench` workload\n\n");
    out.push_str(
        "Instructions per operation: the median `rdtsc` delta over 1000 runs (200 for the console, the \
         512-entry batch and pin/unpin) after 100 warmup runs, less the empty measurement, under QEMU \
         `-icount shift=0,sleep=off -cpu max,-x2apic`, where the TSC advances one tick per executed \
         instruction. Generated by `cargo xtask bench`.\n\n",
    );
    out.push_str("| benchmark |");
    for (h, _) in columns {
        let _ = write!(out, " {h} |");
    }
    out.push_str(" what |\n|---|");
    for _ in columns {
        out.push_str("---:|");
    }
    out.push_str("---|\n");
    for name in names(columns) {
        let _ = write!(out, "| `{name}` |");
        for (_, c) in columns {
            let _ = write!(out, " {} |", cell(c, &name));
        }
        let what = DESCRIPTIONS.iter().find(|(n, _)| *n == name).map_or("", |(_, d)| d);
        let _ = writeln!(out, " {what} |");
    }
    for (h, c) in columns {
        if let Column::Unavailable(why) = c {
            let _ = writeln!(out, "\n{h}: unavailable: `{why}`");
        }
    }
    out
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json(columns: &[(&str, Column)]) -> String {
    json_of(columns, "instructions", "median rdtsc delta less the empty measurement, -icount shift=0,sleep=off")
}

fn json_of(columns: &[(&str, Column)], unit: &str, method: &str) -> String {
    let mut out = format!("{{\n  \"unit\": {},\n", json_string(unit));
    let _ = writeln!(out, "  \"method\": {},", json_string(method));
    out.push_str("  \"hypervisors\": {\n");
    for (i, (h, c)) in columns.iter().enumerate() {
        let _ = write!(out, "    {}: ", json_string(h));
        match c {
            Column::Figures(f) => {
                out.push_str("{\"status\": \"ok\", \"benchmarks\": {");
                let items: Vec<String> = f.iter().map(|(n, v)| format!("{}: {v}", json_string(n))).collect();
                out.push_str(&items.join(", "));
                out.push_str("}}");
            }
            Column::Unavailable(why) => {
                let _ = write!(out, "{{\"status\": \"unavailable\", \"reason\": {}}}", json_string(why));
            }
        }
        out.push_str(if i + 1 < columns.len() { ",\n" } else { "\n" });
    }
    out.push_str("  }\n}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<(&'static str, Column)> {
        vec![
            ("xen-4.17", Column::Figures(vec![("hypercall_null".into(), 304), ("trap_bounce_ud2".into(), 817)])),
            ("hv", Column::Unavailable("(HV) dom0 \"x\": not implemented".into())),
        ]
    }

    #[test]
    fn reports_show_figures_and_why_a_column_is_missing() {
        let c = columns();
        let t = table(&c);
        assert!(t.contains("hypercall_null") && t.contains("304") && t.contains("hv: unavailable: (HV) dom0"));
        let md = markdown(&c);
        assert!(md.contains("| `trap_bounce_ud2` | 817 | unavailable |"));
        let j = json(&c);
        assert!(j.contains("\"hypercall_null\": 304"));
        assert!(j.contains("\"reason\": \"(HV) dom0 \\\"x\\\": not implemented\""));
    }

    #[test]
    fn bench_lines_are_parsed_and_silence_explained() {
        let o = Outcome {
            ending: hvtest::Ending::Stopped,
            serial: "(XEN) boot\nBENCH a 12\nBENCH b x\nBENCH c 7\n".into(),
            stderr: String::new(),
            elapsed: Duration::ZERO,
        };
        match figures(&o) {
            Column::Figures(f) => assert_eq!(f, [("a".to_string(), 12), ("c".to_string(), 7)]),
            c => panic!("{c:?}"),
        }
        let quiet = Outcome { serial: "(HV) hello\n(HV) dom0 cannot be built\n\n".into(), ..o };
        match figures(&quiet) {
            Column::Unavailable(why) => assert_eq!(why, "(HV) dom0 cannot be built"),
            c => panic!("{c:?}"),
        }
    }
}
