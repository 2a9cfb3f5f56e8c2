//! The `bench` workload: what a hypercall and a trap bounce cost, in TSC
//! ticks, which under QEMU's `-icount shift=0,sleep=off` are executed
//! instructions (guest, hypervisor and the round trip between them).
//!
//! Each benchmark runs [`WARMUP`] times unmeasured, then [`ITERATIONS`]
//! times between two `rdtsc`s; it reports the median less the median of
//! an empty measurement, as `BENCH <name> <instructions>`. Then the domain
//! powers off.

use crate::probe::{self, probe};
use abi::guest::Hypercalls;
use abi::sched::ShutdownReason;
use guest_kernel::hypercall::{self, hv};
use guest_kernel::runtime::shutdown;
use guest_kernel::{println, traps};

/// Unmeasured runs before measuring.
const WARMUP: usize = 100;
/// Measured runs per benchmark.
const ITERATIONS: usize = 1000;
/// Measured runs of the console benchmark, whose every run prints a line.
const CONSOLE_ITERATIONS: usize = 200;

/// The 64 bytes the console benchmark writes (one line).
const LINE: &[u8; 64] = b"bench: console_io write of exactly sixty-four bytes of text....\n";

fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: rdtsc reads the TSC into edx:eax; the hypervisor lets a PV
    // guest run it (or emulates it).
    unsafe { core::arch::asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// The median TSC delta of `runs` measured runs of `op`, after warmup.
fn median_ticks(runs: usize, mut op: impl FnMut()) -> u64 {
    let mut samples = [0u64; ITERATIONS];
    let runs = runs.min(ITERATIONS);
    for _ in 0..WARMUP.min(runs) {
        op();
    }
    for s in samples.iter_mut().take(runs) {
        let t0 = rdtsc();
        op();
        *s = rdtsc().wrapping_sub(t0);
    }
    let samples = &mut samples[..runs];
    samples.sort_unstable();
    samples[runs / 2]
}

fn report(name: &str, runs: usize, baseline: u64, op: impl FnMut()) {
    let ticks = median_ticks(runs, op).saturating_sub(baseline);
    println!("BENCH {name} {ticks}");
}

/// Runs every benchmark and powers off.
pub fn run() -> ! {
    traps::set_handler(probe::handler);
    if let Err(e) = traps::install(&[]) {
        println!("bench: set_trap_table failed: {e}");
        shutdown(ShutdownReason::Crash);
    }
    println!(
        "bench: {ITERATIONS} runs each after {WARMUP} warmup runs (console: {CONSOLE_ITERATIONS}); median TSC ticks, less the empty measurement"
    );
    let baseline = median_ticks(ITERATIONS, || {});
    println!("BENCH rdtsc_pair {baseline}");

    let h = hv();
    report("hypercall_null", ITERATIONS, baseline, || {
        let _ = h.xen_version();
    });
    let raw = Hypercalls::new(hypercall::raw_syscall());
    report("hypercall_null_syscall", ITERATIONS, baseline, || {
        let _ = raw.xen_version();
    });
    report("console_write_64", CONSOLE_ITERATIONS, baseline, || {
        let _ = h.console_write(LINE);
    });
    report("trap_bounce_ud2", ITERATIONS, baseline, || {
        let p = probe!("ud2");
        if p.seen.is_none() {
            println!("bench: ud2 did not trap");
        }
    });
    shutdown(ShutdownReason::Poweroff)
}
