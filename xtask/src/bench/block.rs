//! The PV block device under load: dom0's shell makes a disk and serves
//! it to a domain running the guest kernel's `blk-bench`, which prints
//! `BLKBENCH <name> bytes=<b> instr=<i> ns=<n> requests=<r>` lines
//! (guest-kernel/src/blkload/bench.rs).
//!
//! Booted twice: under `-icount shift=0,sleep=off` for instructions, and
//! without it for nanoseconds of pvclock time under TCG on this host (a
//! rough scale: under `-icount` virtual time is the instruction count).

use hvtest::{Outcome, Qemu};
use std::time::Duration;

/// The disk served, in MiB.
pub const DISK_MIB: u32 = 16;
/// How long one boot gets.
const TIMEOUT: Duration = Duration::from_secs(600);

/// One `BLKBENCH` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Figure {
    pub name: String,
    pub bytes: u64,
    pub instr: u64,
    pub ns: u64,
    pub requests: u64,
}

/// A figure measured twice: instructions under `-icount`, time without.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub bytes: u64,
    pub requests: u64,
    pub instr: u64,
    /// From the boot without `-icount`, if it gave this figure.
    pub wall_ns: Option<u64>,
}

impl Row {
    /// MiB moved per million instructions.
    pub fn mib_per_minstr(&self) -> f64 {
        mib(self.bytes) / (self.instr.max(1) as f64 / 1e6)
    }

    /// MiB moved per second of pvclock time without `-icount`.
    pub fn mib_per_s(&self) -> Option<f64> {
        self.wall_ns.filter(|_| self.bytes > 0).map(|ns| mib(self.bytes) / (ns.max(1) as f64 / 1e9))
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

/// The `BLKBENCH` lines of `serial` (the domain's lines come through
/// dom0's `console`, unprefixed).
pub fn parse(serial: &str) -> Vec<Figure> {
    serial
        .lines()
        .filter_map(|l| l.strip_prefix("BLKBENCH "))
        .filter_map(|rest| {
            let (name, fields) = rest.split_once(' ')?;
            let get = |key: &str| hvtest::field(fields, key);
            Some(Figure {
                name: name.to_string(),
                bytes: get("bytes")?,
                instr: get("instr")?,
                ns: get("ns")?,
                requests: get("requests")?,
            })
        })
        .collect()
}

fn boot(guest: &std::path::Path, with: impl Fn(Qemu) -> Qemu) -> Result<Outcome, String> {
    let script =
        format!("mkdisk bench {DISK_MIB}; create name=bb memory=32 disk=bench cmdline=blk-bench; console bb; exit");
    let q = Qemu::hypervisor()?.memory_mib(512).module(guest, &format!("shell -- {script}")).module(guest, "");
    with(q).run(TIMEOUT)
}

/// Runs `blk-bench` with and without `icount`: its rows.
pub fn measure(guest: &std::path::Path, icount: impl Fn(Qemu) -> Qemu) -> Result<Vec<Row>, String> {
    let counted = boot(guest, icount)?;
    let figures = parse(&counted.serial);
    if !counted.serial.lines().any(|l| l == "BLKBENCH done") {
        let last = counted.serial.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("(no output)");
        return Err(format!("blk-bench did not finish; last line: {last}"));
    }
    let timed = boot(guest, |q| q).map(|o| parse(&o.serial)).unwrap_or_default();
    Ok(figures
        .into_iter()
        .map(|f| Row {
            wall_ns: timed.iter().find(|t| t.name == f.name).map(|t| t.ns),
            name: f.name,
            bytes: f.bytes,
            requests: f.requests,
            instr: f.instr,
        })
        .collect())
}

/// The report's section: a table of the rows.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = format!(
        "\n## Block device\n\nA domain reads and writes a {DISK_MIB} MiB disk served by dom0's blkback (grant copies \
         into dom0's frames), 8 requests in flight; 64 KiB I/Os are two requests (11 pages, then 5). Instructions \
         under `-icount` count every domain and the hypervisor; MiB/s is pvclock time without `-icount` (TCG on \
         this host: a rough scale). `memcpy_*` is a plain copy inside the domain, the physical limit; `ring_rtt` \
         is one request without data, there and back. Per-page grant costs are in the table above \
         (`grant_*`, `memcpy_4k`).\n\n| benchmark | bytes | requests | instructions | instructions/request | \
         MiB per M instructions | MiB/s |\n|---|---:|---:|---:|---:|---:|---:|\n"
    );
    for r in rows {
        let per_request = r.instr.checked_div(r.requests).map_or_else(|| "-".into(), |n| n.to_string());
        let rate = r.mib_per_s().map_or_else(|| "-".into(), |v| format!("{v:.1}"));
        let per_minstr = if r.bytes > 0 { format!("{:.3}", r.mib_per_minstr()) } else { "-".into() };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {per_request} | {per_minstr} | {rate} |\n",
            r.name, r.bytes, r.requests, r.instr
        ));
    }
    out
}

/// The rows as a JSON object.
pub fn json(rows: &[Row]) -> String {
    let fields: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "\"{}\": {{\"bytes\": {}, \"requests\": {}, \"instructions\": {}, \"mib_per_minstr\": {:.4}, \
                 \"wall_ns\": {}}}",
                r.name,
                r.bytes,
                r.requests,
                r.instr,
                r.mib_per_minstr(),
                r.wall_ns.map_or_else(|| "null".into(), |n| n.to_string())
            )
        })
        .collect();
    format!("{{{}}}", fields.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed_and_rates_computed() {
        let serial = "BLK connected\nBLKBENCH seq_read_64k bytes=16777216 instr=8000000 ns=5 requests=512\n\
                      BLKBENCH bad bytes=x\nBLKBENCH done\n";
        let f = parse(serial);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].name.as_str(), f[0].bytes, f[0].requests), ("seq_read_64k", 16 << 20, 512));
        let row =
            Row { name: "r".into(), bytes: 16 << 20, requests: 512, instr: 8_000_000, wall_ns: Some(2_000_000_000) };
        assert!((row.mib_per_minstr() - 2.0).abs() < 1e-9);
        assert_eq!(row.mib_per_s(), Some(8.0));
        assert!(markdown(std::slice::from_ref(&row)).contains("| r | 16777216 | 512 | 8000000 | 15625 | 2.000 | 8.0 |"));
        assert!(json(std::slice::from_ref(&row)).contains("\"r\": {\"bytes\": 16777216"));
        assert_eq!(Row { bytes: 0, ..row }.mib_per_s(), None, "no rate for a round trip without data");
    }
}
