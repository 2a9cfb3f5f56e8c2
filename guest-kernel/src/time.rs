//! Time: the TSC, system time from the pvclock, and sleeping on
//! `VIRQ_TIMER`.
//!
//! System time is nanoseconds since the hypervisor booted, the scale of
//! every timer hypercall. vCPU 0's `vcpu_time_info` (in its `vcpu_info`)
//! gives a TSC reading and the system time at it; [`now_ns`] scales the TSC
//! since then, reading the record under its version protocol (odd while
//! the hypervisor updates it; retry until the same even version brackets
//! the read, TSC included).
//!
//! The timer is the vCPU's one-shot timer (`set_timer_op`), whose expiry
//! raises `VIRQ_TIMER`. [`timer_port`] binds that VIRQ once and stops
//! Xen's default 100 Hz periodic ticker, so every timer event is a deadline
//! someone set. [`sleep_until`] records the caller's deadline, arms the
//! timer for the earliest deadline of all sleeping threads, and waits
//! (threads run meanwhile; with none runnable the vCPU blocks) until system
//! time has passed its own.

use crate::event::{self, Port};
use crate::hypercall::hv;
use crate::shared;
use crate::thread::{self, MAX_THREADS};
use abi::sched::VIRQ_TIMER;
use abi::shared_info::VcpuTimeInfo;
use abi::Errno;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

/// Nanoseconds per millisecond.
pub const NS_PER_MS: u64 = 1_000_000;

/// Reads the TSC.
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc is allowed at CPL 3 unless the hypervisor sets
    // CR4.TSD, which neither hypervisor does for PV guests.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Reads a `T` at `at`, volatile (the hypervisor updates it).
fn read<T: Copy>(at: *const u8) -> T {
    // SAFETY: callers pass an aligned field of type T inside the live
    // vcpu_time_info, which stays mapped for the domain's life.
    unsafe { at.cast::<T>().read_volatile() }
}

/// A consistent `vcpu_time_info` and the TSC read inside it, or `None`
/// before shared_info is mapped (or if the record never settles).
pub fn time_record() -> Option<(VcpuTimeInfo, u64)> {
    let base = (shared::vcpu0_info_addr()? as *const u8).wrapping_add(offset_of!(abi::shared_info::VcpuInfo, time));
    let version = base.wrapping_add(offset_of!(VcpuTimeInfo, version));
    for _ in 0..1_000_000 {
        let first: u32 = read(version);
        core::sync::atomic::fence(SeqCst);
        let record: VcpuTimeInfo = read(base);
        let tsc = rdtsc();
        core::sync::atomic::fence(SeqCst);
        let again: u32 = read(version);
        if first.is_multiple_of(2) && first == again {
            return Some((record, tsc));
        }
        core::hint::spin_loop();
    }
    None
}

/// System time now, in ns since boot (0 before shared_info is mapped).
pub fn now_ns() -> u64 {
    time_record().map_or(0, |(t, tsc)| t.system_time_at(tsc))
}

// ---- the timer ------------------------------------------------------------------

/// The `VIRQ_TIMER` port, once bound (0: not bound; port 0 is never one).
static TIMER_PORT: AtomicU32 = AtomicU32::new(0);
/// Timer events taken.
static TIMER_EVENTS: AtomicU64 = AtomicU64::new(0);
/// System time when the last timer event was handled.
static LAST_TIMER_NS: AtomicU64 = AtomicU64::new(0);
/// Each thread's deadline while it sleeps (0: not sleeping).
static DEADLINES: [AtomicU64; MAX_THREADS + 1] = [const { AtomicU64::new(0) }; MAX_THREADS + 1];

fn on_timer(_: Port) {
    LAST_TIMER_NS.store(now_ns(), SeqCst);
    TIMER_EVENTS.fetch_add(1, SeqCst);
}

/// The port `VIRQ_TIMER` of vCPU 0 arrives on, binding it (and stopping
/// the periodic ticker) the first time. Needs [`event::init`].
pub fn timer_port() -> Result<Port, Errno> {
    match TIMER_PORT.load(SeqCst) {
        0 => {
            hv().vcpu_stop_periodic_timer(0)?;
            let port = hv().evtchn_bind_virq(VIRQ_TIMER, 0)?;
            event::set_handler(port, Some(on_timer));
            TIMER_PORT.store(port, SeqCst);
            Ok(port)
        }
        port => Ok(port),
    }
}

/// Forgets the timer port (after `EVTCHNOP_reset` closed it); the next
/// [`timer_port`] binds again.
pub fn forget_timer_port() {
    TIMER_PORT.store(0, SeqCst);
}

/// Timer events handled so far.
pub fn timer_events() -> u64 {
    TIMER_EVENTS.load(SeqCst)
}

/// System time at the last timer event.
pub fn last_timer_ns() -> u64 {
    LAST_TIMER_NS.load(SeqCst)
}

/// Returns once system time is at least `deadline_ns` (at once if it is
/// already), letting other threads run meanwhile.
pub fn sleep_until(deadline_ns: u64) -> Result<(), Errno> {
    sleep_until_or(deadline_ns, || false).map(drop)
}

/// As [`sleep_until`], but returns early once `done` holds (it is checked
/// after every upcall, with upcalls masked, and must not wait): whether it
/// did.
pub fn sleep_until_or(deadline_ns: u64, mut done: impl FnMut() -> bool) -> Result<bool, Errno> {
    timer_port()?;
    let me = &DEADLINES[thread::current()];
    me.store(deadline_ns, SeqCst);
    let mut armed = Ok(0);
    let mut woken = false;
    event::wait_until(|| {
        if done() {
            woken = true;
            return true;
        }
        if now_ns() >= deadline_ns {
            return true;
        }
        // The earliest deadline of every sleeper: whoever arms last arms
        // for all. A timer that fires for someone else wakes us too, and we
        // re-arm here.
        let next = DEADLINES.iter().map(|d| d.load(SeqCst)).filter(|&d| d != 0).min().unwrap_or(deadline_ns);
        armed = hv().set_timer_op(next);
        armed.is_err()
    });
    me.store(0, SeqCst);
    armed.map(|_| woken)
}

/// Sleeps for `ns` nanoseconds of system time.
pub fn sleep_ns(ns: u64) -> Result<(), Errno> {
    sleep_until(now_ns().saturating_add(ns))
}
