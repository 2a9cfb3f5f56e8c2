//! The event-channel pair: `pong` offers a port, `ping` finds it and times
//! round trips over it.
//!
//! - `pong peer=<domid> count=<N>` allocates a port unbound for `peer`
//!   (`EVTCHNOP_alloc_unbound`), prints `PONG port=<p>`, then answers each
//!   event from the peer with one send back; after `N` answers it prints
//!   `PONG done count=<N>` and powers off.
//! - `ping peer=<domid> count=<N>` binds to the peer's offer by trying
//!   `EVTCHNOP_bind_interdomain(peer, p)` for `p` in 1..=64 (only a port
//!   allocated unbound for us binds), yielding and scanning again until one
//!   does; then `N` times: send, and wait for the reply's upcall. It prints
//!   `PING done count=<N> rtt_ns=<mean ns> rtt_tsc=<mean TSC ticks>` (per
//!   round trip, system time and TSC) and powers off.
//!
//! Events on a port coalesce (a second send before the first is handled
//! is lost), so the protocol keeps exactly one event outstanding: ping
//! sends the next only after the reply arrived, pong replies only to an
//! event it handled.

use crate::loads::init_events;
use abi::mm::DOMID_SELF;
use abi::sched::ShutdownReason;
use abi::Errno;
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use guest_kernel::event::{self, Port};
use guest_kernel::hypercall::hv;
use guest_kernel::println;
use guest_kernel::runtime::shutdown;
use guest_kernel::{thread, time};

/// Ports `ping` tries for the peer's offer.
const SCAN: core::ops::RangeInclusive<u32> = 1..=64;

/// Events handled on ping's end of the channel.
static PING_RECEIVED: AtomicU64 = AtomicU64::new(0);
/// Events handled on pong's end of the channel.
static PONG_RECEIVED: AtomicU64 = AtomicU64::new(0);

fn on_ping_port(_: Port) {
    PING_RECEIVED.fetch_add(1, SeqCst);
}

fn on_pong_port(_: Port) {
    PONG_RECEIVED.fetch_add(1, SeqCst);
}

/// What one ping session measured.
#[derive(Clone, Copy, Debug)]
pub struct PingResult {
    /// Our end of the channel.
    pub port: Port,
    /// The peer's port we bound.
    pub remote_port: Port,
    /// Mean system time per round trip, ns.
    pub rtt_ns: u64,
    /// Mean TSC ticks per round trip.
    pub rtt_tsc: u64,
}

/// Ping's side: binds to the port `peer` offered us (scanning, and
/// yielding between scans, until one binds), then `count` round trips.
/// Other threads run while it waits.
pub fn ping_session(peer: u16, count: u64) -> Result<PingResult, Errno> {
    let (remote_port, port) = loop {
        if let Some(found) = SCAN.clone().find_map(|p| hv().evtchn_bind_interdomain(peer, p).ok().map(|l| (p, l))) {
            break found;
        }
        thread::yield_now();
        let _ = hv().sched_yield();
    };
    // Binding leaves our new port pending (Xen's stand-in for anything
    // sent to the unbound port): not a reply, so drop it unhandled.
    let was = event::mask_upcalls();
    event::clear_pending(port);
    PING_RECEIVED.store(0, SeqCst);
    event::set_handler(port, Some(on_ping_port));
    event::restore_upcalls(was);
    // The first round trip waits for pong to reach its loop (it may still
    // be starting up): it is not timed.
    let round = |i: u64| -> Result<(), Errno> {
        event::send(port)?;
        event::wait_until(|| PING_RECEIVED.load(SeqCst) >= i);
        Ok(())
    };
    if count > 0 {
        round(1)?;
    }
    let (t0, c0) = (time::now_ns(), time::rdtsc());
    for i in 2..=count {
        round(i)?;
    }
    let (t1, c1) = (time::now_ns(), time::rdtsc());
    let n = count.saturating_sub(1).max(1);
    Ok(PingResult { port, remote_port, rtt_ns: t1.saturating_sub(t0) / n, rtt_tsc: c1.wrapping_sub(c0) / n })
}

/// Pong's offer: a port unbound for `peer`, with its handler set.
pub fn pong_offer(peer: u16) -> Result<Port, Errno> {
    let port = hv().evtchn_alloc_unbound(DOMID_SELF, peer)?;
    PONG_RECEIVED.store(0, SeqCst);
    event::set_handler(port, Some(on_pong_port));
    Ok(port)
}

/// Pong's answers: one send back on `port` for each of `count` events.
/// Other threads run while it waits.
pub fn pong_answer(port: Port, count: u64) -> Result<(), Errno> {
    for i in 1..=count {
        event::wait_until(|| PONG_RECEIVED.load(SeqCst) >= i);
        event::send(port)?;
    }
    // Let ping see the last answer (and take its final timestamp) before
    // this domain goes on to print and shut down: its teardown is not part
    // of a round trip.
    let _ = hv().sched_yield();
    Ok(())
}

/// Says what failed and crashes.
fn fatal(who: &str, what: &str, e: Errno) -> ! {
    println!("{who}: FATAL: {what}: {e}");
    shutdown(ShutdownReason::Crash)
}

/// `ping peer=<domid> count=<N>`.
pub fn ping(peer: u16, count: u64) -> ! {
    init_events("ping");
    match ping_session(peer, count) {
        Ok(r) => {
            println!("PING done count={count} rtt_ns={} rtt_tsc={}", r.rtt_ns, r.rtt_tsc);
            println!("BENCH evtchn_pingpong_rtt {}", r.rtt_tsc);
        }
        Err(e) => fatal("ping", "EVTCHNOP_send", e),
    }
    shutdown(ShutdownReason::Poweroff)
}

/// `pong peer=<domid> count=<N>`.
pub fn pong(peer: u16, count: u64) -> ! {
    init_events("pong");
    let port = pong_offer(peer).unwrap_or_else(|e| fatal("pong", "EVTCHNOP_alloc_unbound", e));
    println!("PONG port={port}");
    if let Err(e) = pong_answer(port, count) {
        fatal("pong", "EVTCHNOP_send", e);
    }
    println!("PONG done count={count}");
    shutdown(ShutdownReason::Poweroff)
}
