//! Scheduling loads, for a hypervisor running several domains: `spin`
//! (CPU-bound, reports how much work it got done), `sleep` (timer
//! latency), `block` (never runnable) and `yield-spin` (always runnable,
//! always giving the CPU away).
//!
//! Output, one line each, machine-parseable:
//!
//! - `SPIN progress iterations=<n> now_ms=<m>` about every 100 ms of system
//!   time, then `SPIN done iterations=<n>`;
//! - `SLEEP round=<i> late_ns=<woken - deadline>` for rounds 1..=R (after
//!   an unreported warm-up round), then
//!   `SLEEP done rounds=<R> max_late_ns=<..> min_late_ns=<..>`;
//! - `BLOCK forever` (and, should `SCHEDOP_block` ever return,
//!   `BLOCK woke count=<n>` at the 1st, 2nd, 4th, 8th... return);
//! - `YIELD spinning`.
//!
//! `spin` and `sleep` power off when done; `block` and `yield-spin` never
//! end.

use abi::sched::ShutdownReason;
use guest_kernel::event;
use guest_kernel::hypercall::hv;
use guest_kernel::println;
use guest_kernel::runtime::shutdown;
use guest_kernel::time::{self, NS_PER_MS};

/// Makes events usable (shared_info mapped, callbacks registered), or says
/// why not and crashes.
pub fn init_events(workload: &str) {
    if let Err(e) = event::init() {
        println!("{workload}: FATAL: {e}");
        shutdown(ShutdownReason::Crash);
    }
}

/// System time between two `SPIN progress` lines.
const PROGRESS_NS: u64 = 100 * NS_PER_MS;

/// Steps of the xorshift in one iteration of `spin`'s body.
const BODY_STEPS: u32 = 256;

/// One iteration of `spin`'s fixed-cost body: `BODY_STEPS` xorshift steps
/// the compiler cannot drop.
fn body(mut x: u64) -> u64 {
    for _ in 0..BODY_STEPS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    core::hint::black_box(x)
}

/// `spin until_ms=<T>`: runs the body until system time reaches `T` ms.
pub fn spin(until_ms: u64) -> ! {
    init_events("spin");
    let until = until_ms.saturating_mul(NS_PER_MS);
    let mut iterations: u64 = 0;
    let mut x = 0x9e37_79b9_7f4a_7c15;
    let mut next_report = time::now_ns().saturating_add(PROGRESS_NS);
    loop {
        x = body(x);
        iterations += 1;
        let now = time::now_ns();
        if now >= until {
            break;
        }
        if now >= next_report {
            println!("SPIN progress iterations={iterations} now_ms={}", now / NS_PER_MS);
            next_report = now.saturating_add(PROGRESS_NS);
        }
    }
    println!("SPIN done iterations={iterations}");
    shutdown(ShutdownReason::Poweroff)
}

/// Sleeps until `deadline` or crashes.
fn sleep_or_crash(deadline: u64) {
    if let Err(e) = time::sleep_until(deadline) {
        println!("sleep: FATAL: sleeping on VIRQ_TIMER: {e}");
        shutdown(ShutdownReason::Crash);
    }
}

/// `sleep ms=<D> rounds=<R>`: sleeps `D` ms on `VIRQ_TIMER`, `R` times.
/// A first, unreported round binds `VIRQ_TIMER` and runs the whole path
/// once, in the guest and the hypervisor, so no reported round pays for
/// first use (an emulator translating the code, say).
pub fn sleep(ms: u64, rounds: u64) -> ! {
    init_events("sleep");
    let period = ms.saturating_mul(NS_PER_MS);
    sleep_or_crash(time::now_ns().saturating_add(period));
    let (mut max_late, mut min_late) = (i64::MIN, i64::MAX);
    for round in 1..=rounds {
        let deadline = time::now_ns().saturating_add(period);
        sleep_or_crash(deadline);
        let late = time::now_ns() as i64 - deadline as i64;
        println!("SLEEP round={round} late_ns={late}");
        max_late = max_late.max(late);
        min_late = min_late.min(late);
    }
    if rounds == 0 {
        (max_late, min_late) = (0, 0);
    }
    println!("SLEEP done rounds={rounds} max_late_ns={max_late} min_late_ns={min_late}");
    shutdown(ShutdownReason::Poweroff)
}

/// `block`: blocks forever, with no event channel bound.
pub fn block() -> ! {
    init_events("block");
    println!("BLOCK forever");
    let mut woke: u64 = 0;
    loop {
        let _ = hv().sched_block();
        woke += 1;
        if woke.is_power_of_two() {
            println!("BLOCK woke count={woke}");
        }
    }
}

/// `yield-spin`: gives the CPU away forever.
pub fn yield_spin() -> ! {
    println!("YIELD spinning");
    loop {
        let _ = hv().sched_yield();
    }
}
