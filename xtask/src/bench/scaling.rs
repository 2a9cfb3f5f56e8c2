//! Domain scaling: dom0's `many` workload builds 1,000 domains on this
//! hypervisor under `-icount shift=0,sleep=off` and keeps them all alive
//! (SPEC §3.12.1). For each k it reports the instructions to build and
//! unpause the k-th domain and the hypervisor frames it cost; this module
//! reads those lines and draws them (`target/bench/domain_scaling.svg`,
//! a hand-written SVG line plot) and sums them up for the report.

use hvtest::{Outcome, Qemu};
use std::fmt::Write as _;
use std::time::Duration;

/// Domains built.
pub const COUNT: u64 = 1000;
/// Guest RAM: 1,000 domains of 4 MiB need more than 4 GiB.
pub const MEMORY_MIB: u32 = 5120;
/// The whole run under `-icount` (about 80 s under plain TCG).
const TIMEOUT: Duration = Duration::from_secs(1200);

/// One `MANY k=...` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Point {
    /// The domain's rank, from 1.
    pub k: u64,
    /// Instructions (TSC ticks under `-icount shift=0`) to build and
    /// unpause it.
    pub instructions: u64,
    /// Hypervisor frames it cost (its state and its shared-info frame).
    pub hv_frames: u64,
}

/// Boots the hypervisor with dom0 running `many count=COUNT -- block`
/// under `-icount` and returns its points, or why there are none.
pub fn measure(guest: &std::path::Path, icount: impl Fn(Qemu) -> Qemu) -> Result<Vec<Point>, String> {
    let q = Qemu::hypervisor()?
        .memory_mib(MEMORY_MIB)
        .module(guest, &format!("many memory_mib=4 count={COUNT} -- block"))
        .module(guest, "");
    let o = icount(q).run(TIMEOUT)?;
    let points = parse(&o.serial);
    if points.len() as u64 != COUNT || !o.serial.lines().any(|l| l == "MANY pass") {
        return Err(format!("many: {} of {COUNT} domains; last line: {}", points.len(), last_line(&o)));
    }
    Ok(points)
}

fn last_line(o: &Outcome) -> &str {
    o.serial.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("(no output)")
}

/// The `MANY k=<k> d=<id> tsc=<n> hv_dom=<n> ...` lines of `serial`.
pub fn parse(serial: &str) -> Vec<Point> {
    serial
        .lines()
        .filter(|l| l.starts_with("MANY k="))
        .filter_map(|l| {
            let get = |key: &str| hvtest::field(l, key);
            Some(Point { k: get("k")?, instructions: get("tsc")?, hv_frames: get("hv_dom")? })
        })
        .collect()
}

/// The median of `v` (0 for none).
fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Figures for the report: (name, value, unit).
pub fn summary(points: &[Point]) -> Vec<(String, u64, &'static str)> {
    let at = |k: u64| points.iter().find(|p| p.k == k).map(|p| p.instructions);
    let mut out = Vec::new();
    for k in [1, 10, 100, 500, 1000] {
        if let Some(n) = at(k) {
            out.push((format!("create_domain_k{k}"), n, "instructions"));
        }
    }
    out.push(("create_domain_median".into(), median(points.iter().map(|p| p.instructions).collect()), "instructions"));
    out.push(("hv_frames_per_domain_median".into(), median(points.iter().map(|p| p.hv_frames).collect()), "frames"));
    out.push(("hv_frames_total".into(), points.iter().map(|p| p.hv_frames).sum(), "frames"));
    out.push(("domains".into(), points.len() as u64, "domains"));
    out
}

/// A line plot: x the domain's rank, left axis the instructions to create
/// it (millions), right axis the hypervisor's KiB for it.
pub fn svg(points: &[Point]) -> String {
    const W: f64 = 800.0;
    const H: f64 = 420.0;
    let (l, r, t, b) = (80.0, 80.0, 40.0, 50.0);
    let (pw, ph) = (W - l - r, H - t - b);
    let max_k = points.iter().map(|p| p.k).max().unwrap_or(1).max(1) as f64;
    let max_i = nice(points.iter().map(|p| p.instructions).max().unwrap_or(1) as f64 / 1e6);
    let max_kib = nice(points.iter().map(|p| p.hv_frames * 4).max().unwrap_or(1) as f64);
    let x = |k: u64| l + pw * (k as f64 - 1.0) / (max_k - 1.0).max(1.0);
    let y = |v: f64, max: f64| t + ph * (1.0 - v / max);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" \
         font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(s, "<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">Creating the k-th of {} concurrent \
         domains (-icount shift=0)</text>",
        W / 2.0,
        points.len()
    );
    // Axes and grid.
    let _ = writeln!(s, "<path d=\"M{l},{t} V{} H{} V{t}\" fill=\"none\" stroke=\"black\"/>", t + ph, l + pw);
    for i in 0..=5 {
        let f = f64::from(i) / 5.0;
        let gy = t + ph * (1.0 - f);
        let _ = writeln!(s, "<line x1=\"{l}\" y1=\"{gy}\" x2=\"{}\" y2=\"{gy}\" stroke=\"#ddd\"/>", l + pw);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#1f77b4\">{}</text>",
            l - 6.0,
            gy + 4.0,
            trim(max_i * f)
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" fill=\"#d62728\">{}</text>",
            l + pw + 6.0,
            gy + 4.0,
            trim(max_kib * f)
        );
        let k = 1 + ((max_k - 1.0) * f).round() as u64;
        let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{k}</text>", x(k), t + ph + 16.0);
    }
    let _ =
        writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">k (domains alive)</text>", l + pw / 2.0, H - 10.0);
    let _ = writeln!(
        s,
        "<text transform=\"translate(18,{}) rotate(-90)\" text-anchor=\"middle\" fill=\"#1f77b4\">million \
         instructions to create and start domain k</text>",
        t + ph / 2.0
    );
    let _ = writeln!(
        s,
        "<text transform=\"translate({},{}) rotate(90)\" text-anchor=\"middle\" fill=\"#d62728\">hypervisor KiB \
         for domain k</text>",
        W - 18.0,
        t + ph / 2.0
    );
    let line = |v: &dyn Fn(&Point) -> f64, max: f64| {
        points.iter().map(|p| format!("{:.1},{:.1}", x(p.k), y(v(p), max))).collect::<Vec<_>>().join(" ")
    };
    let _ = writeln!(
        s,
        "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1\" points=\"{}\"/>",
        line(&|p| p.instructions as f64 / 1e6, max_i)
    );
    let _ = writeln!(
        s,
        "<polyline fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" points=\"{}\"/>",
        line(&|p| (p.hv_frames * 4) as f64, max_kib)
    );
    s.push_str("</svg>\n");
    s
}

/// The next of 1, 2, 5 × 10^n at or above `v` (an axis' top).
fn nice(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let base = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * base).find(|&t| t >= v).unwrap_or(10.0 * base)
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_many_lines_and_draws_both_series() {
        let serial = "INFO many image_bytes=1 memory_mib=4 count=3 free=9\n\
                      MANY k=1 d=1 tsc=60000000 hv_dom=12 hv_frames=12 free=8\n\
                      MANY k=2 d=2 tsc=70000000 hv_dom=12 hv_frames=24 free=7\n\
                      MANY k=3 d=3 tsc=90000000 hv_dom=12 hv_frames=36 free=6\n\
                      MANY ran count=3 ran=3 blocked=3 stopped=0\n";
        let p = parse(serial);
        assert_eq!(p.len(), 3);
        assert_eq!(p[2], Point { k: 3, instructions: 90_000_000, hv_frames: 12 });
        let s = summary(&p);
        assert!(s.contains(&("create_domain_k1".to_string(), 60_000_000, "instructions")));
        assert!(s.contains(&("create_domain_median".to_string(), 70_000_000, "instructions")));
        assert!(s.contains(&("hv_frames_per_domain_median".to_string(), 12, "frames")));
        let svg = svg(&p);
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!((nice(0.7), nice(91.0), nice(48.0)), (1.0, 100.0, 50.0));
    }
}
