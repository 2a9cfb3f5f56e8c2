//! Console output and input: `print!` and `println!` through `console_io`
//! and, in a domU the toolstack gave one, the PV console ring.
//!
//! A domU whose `start_info` names a console page (`console.domU.mfn`,
//! not the initial domain) is a frontend of Xen's console protocol
//! ([`crate::pvcons`]): output goes to the ring's `out` (then
//! `EVTCHNOP_send` on `console.domU.evtchn`), input comes from its `in`
//! ([`read`]). The builder places the page below the bootstrap page
//! tables, so it is in the initial mapping, at the direct-map address of
//! its pfn (the M2P's entry for the frame).
//!
//! When `out` is full the writer yields until the backend takes some, at
//! most [`MAX_FULL_YIELDS`] times; a ring that stays full is *stalled*
//! (no backend reads it, as when dom0's `build` workload runs the domain)
//! and later writes put only what fits until the backend moves again.
//! Every line also goes to `console_io`, as before: the hypervisor keeps
//! it in its console ring (where tests and `dmesg` see it; Xen's release
//! build drops it). Dom0, and a domain without a console page, have
//! `console_io` alone. While a [`redirect`] is set, output goes to its
//! sink instead (dom0's shell answering on its control port).

use crate::hypercall::hv;
use crate::layout::va_of_pfn;
use crate::mm;
use crate::pvcons::Ring;
use crate::runtime::start_info;
use crate::text::LineWriter;
use abi::start_info::SIF_INITDOMAIN;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

/// Yields a full `out` ring waits for the backend before it counts as
/// stalled.
pub const MAX_FULL_YIELDS: u32 = 20_000;

/// [`PV_STATE`]: not looked at yet.
const UNKNOWN: u8 = 0;
/// [`PV_STATE`]: no console page (dom0, or none given).
const ABSENT: u8 = 1;
/// [`PV_STATE`]: the page is at [`PV_PAGE`].
const PRESENT: u8 = 2;

static PV_STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
static PV_PAGE: AtomicU64 = AtomicU64::new(0);
/// The ring's event channel.
static PV_PORT: AtomicU64 = AtomicU64::new(0);
/// `out_cons + 1` when the ring was found stalled (0: not stalled).
static STALLED_AT: AtomicU64 = AtomicU64::new(0);
/// Taken while one writer uses the ring: a writer that finds it taken (an
/// upcall handler printing over a thread) leaves its text to `console_io`.
static WRITING: AtomicBool = AtomicBool::new(false);

/// The PV console ring and its port, if this domain has one.
fn pv_ring() -> Option<(Ring, u32)> {
    match PV_STATE.load(Ordering::Acquire) {
        ABSENT => return None,
        PRESENT => {
            let page = PV_PAGE.load(Ordering::Relaxed) as *mut u8;
            // SAFETY: `find_page` checked that the page is the console page
            // in the initial mapping, mapped read-write for the domain's
            // life; the backend follows the protocol.
            let ring = unsafe { Ring::new(page) };
            return Some((ring, PV_PORT.load(Ordering::Relaxed) as u32));
        }
        _ => {}
    }
    let found = find_page();
    match found {
        Some(va) => {
            PV_PAGE.store(va, Ordering::Relaxed);
            PV_PORT.store(u64::from(start_info().console_domu_evtchn()), Ordering::Relaxed);
            PV_STATE.store(PRESENT, Ordering::Release);
            pv_ring()
        }
        None => {
            PV_STATE.store(ABSENT, Ordering::Release);
            None
        }
    }
}

/// The address of the console page in the initial mapping, if this is a
/// domU with one there: its pfn (the M2P's) below the bootstrap page
/// tables, the builder's place for it.
fn find_page() -> Option<u64> {
    let si = start_info();
    let mfn = si.console_domu_mfn();
    if si.flags & SIF_INITDOMAIN != 0 || mfn == 0 {
        return None;
    }
    let pfn = mm::m2p(mfn);
    let va = va_of_pfn(pfn);
    (pfn < si.nr_pages && va < si.pt_base).then_some(va)
}

/// Writes `bytes` to the PV console ring, waiting while it is full (see
/// the module's notes); whether there is a ring.
fn pv_write(bytes: &[u8]) -> bool {
    let Some((ring, port)) = pv_ring() else {
        return false;
    };
    if WRITING.swap(true, Ordering::Acquire) {
        return true;
    }
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = ring.write_out(rest);
        rest = &rest[n..];
        if n > 0 {
            let _ = hv().evtchn_send(port);
            continue;
        }
        let cons = ring.out_cons();
        if STALLED_AT.load(Ordering::Relaxed) == u64::from(cons) + 1 {
            break;
        }
        let mut moved = false;
        for _ in 0..MAX_FULL_YIELDS {
            let _ = hv().sched_yield();
            if ring.out_cons() != cons {
                moved = true;
                break;
            }
        }
        if !moved {
            STALLED_AT.store(u64::from(cons) + 1, Ordering::Relaxed);
            break;
        }
        STALLED_AT.store(0, Ordering::Relaxed);
    }
    WRITING.store(false, Ordering::Release);
    true
}

/// Reads console input into `buf` from the PV console ring's `in`
/// (notifying the backend when it took some); how many bytes came, 0 if
/// none is waiting or there is no ring. Never blocks.
pub fn read(buf: &mut [u8]) -> usize {
    let Some((ring, port)) = pv_ring() else {
        return 0;
    };
    let n = ring.read_in(buf);
    if n > 0 {
        let _ = hv().evtchn_send(port);
    }
    n
}

/// Whether this domain has a PV console ring ([`read`] can get input).
pub fn has_ring() -> bool {
    pv_ring().is_some()
}

/// Writes `bytes` to the console as they are: the PV ring, if there is
/// one, and `console_io` (errors are dropped: there is nowhere else to
/// report them).
pub fn write_bytes(bytes: &[u8]) {
    // Copied out at once: a sink that prints must not find it taken.
    let sink = SINK.try_lock().and_then(|s| *s);
    if let Some(sink) = sink {
        return sink(bytes);
    }
    pv_write(bytes);
    let _ = hv().console_write(bytes);
}

/// Somewhere else for console output to go.
pub type Sink = fn(&[u8]);

/// Where output goes instead of the console, while set.
static SINK: crate::lock::Lock<Option<Sink>> = crate::lock::Lock::new(None);

/// Sends everything printed to `sink` instead of the console (`None`:
/// back to the console); returns the sink there was.
pub fn redirect(sink: Option<Sink>) -> Option<Sink> {
    core::mem::replace(&mut *SINK.lock(), sink)
}

/// Formats `args` and writes the text a line at a time.
pub fn print_args(args: fmt::Arguments<'_>) {
    let mut w = LineWriter::<_, 256>::new(write_bytes);
    let _ = w.write_fmt(args);
}

/// Prints to the console (see the module notes).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print_args(format_args!($($arg)*)) };
}

/// Prints a line to the console (see the module notes).
#[macro_export]
macro_rules! println {
    () => { $crate::console::write_bytes(b"\n") };
    ($($arg:tt)*) => { $crate::console::print_args(format_args!("{}\n", format_args!($($arg)*))) };
}
