//! Selftest checks of events, timers and threads: event channels (a
//! loopback channel to ourselves, IPIs, VIRQ_TIMER) delivered through the
//! event upcall, masking, status, the errnos Xen 4.17 gives for misuse
//! (`common/event_channel.c`), the one-shot timer through `set_timer_op`
//! and `vcpu_op`, `SCHEDOP_poll` and `SCHEDOP_block`, the kernel's
//! cooperative threads, `VCPUOP_register_vcpu_info` and `EVTCHNOP_reset`.
//!
//! They run after the memory checks (threads take their stacks from the
//! heap) with upcalls masked, as the kernel starts: a check opens the
//! mask where it means to take upcalls ([`take_upcalls`]) and leaves it
//! masked. Every wait is bounded: `SCHEDOP_poll` with a timeout, or a
//! one-shot timer armed as a backstop, so a hypervisor that never delivers
//! fails a check rather than hanging the selftest. `events_init` comes
//! first; if it fails, the rest are failed unrun. `register_vcpu_info` and
//! `evtchn_reset` come last: they change the domain for good.

use super::{Check, TrapCheck};
use crate::pingpong;
use abi::event_channel::{
    EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_IPI, EVTCHNSTAT_UNBOUND, EVTCHNSTAT_VIRQ,
};
use abi::mm::DOMID_SELF;
use abi::sched::{VcpuRegisterVcpuInfo, NR_VIRQS, VCPU_SSHOTTMR_FUTURE, VIRQ_DOM_EXC, VIRQ_TIMER};
use abi::Errno;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use guest_kernel::ensure;
use guest_kernel::event::{self, Port};
use guest_kernel::frame::RFLAGS_IF;
use guest_kernel::hypercall::{self, hv};
use guest_kernel::time::{self, now_ns, NS_PER_MS};
use guest_kernel::{entry, mm, msg, println, shared, thread};

/// The checks, in order (`events_init` first).
pub const CHECKS: [TrapCheck; 20] = [
    ("events_init", check_events_init),
    ("pvclock_monotonic", check_pvclock_monotonic),
    ("evtchn_loopback", check_loopback),
    ("upcall_frame", check_upcall_frame),
    ("evtchn_status", check_status),
    ("evtchn_ipi", check_ipi),
    ("evtchn_mask_unmask", check_mask_unmask),
    ("evtchn_close_send", check_close_send),
    ("evtchn_bad_ports", check_bad_ports),
    ("evtchn_bind_virq_errors", check_bind_virq_errors),
    ("evtchn_interdomain_errors", check_interdomain_errors),
    ("evtchn_bind_vcpu", check_bind_vcpu),
    ("virq_timer", check_virq_timer),
    ("singleshot_timer", check_singleshot_timer),
    ("sched_poll", check_sched_poll),
    ("sched_block_wakes", check_sched_block),
    ("threads", check_threads),
    ("pingpong_loopback", check_pingpong_loopback),
    ("register_vcpu_info", check_register_vcpu_info),
    ("evtchn_reset", check_reset),
];

/// A port at the 2-level limit, and one far past it.
const PAST_LIMIT: [Port; 2] = [4096, 100_000];
/// A domain id that names no domain.
const NO_SUCH_DOMAIN: u16 = 0x7fef;
/// How long a check waits for an event that should come at once.
const PROMPTLY_NS: u64 = 500 * NS_PER_MS;

/// Our domain id, as the hypervisor reports it (status of a port we
/// allocated for `DOMID_SELF`).
static OWN_DOMID: AtomicU32 = AtomicU32::new(0);
/// The loopback channel's ends (`evtchn_loopback`).
static LOOP_A: AtomicU32 = AtomicU32::new(0);
static LOOP_B: AtomicU32 = AtomicU32::new(0);

/// Events handled per port (ports below 128; the checks use small ones).
static SEEN: [AtomicU64; 128] = [const { AtomicU64::new(0) }; 128];

fn count_event(port: Port) {
    if let Some(c) = SEEN.get(port as usize) {
        c.fetch_add(1, SeqCst);
    }
}

fn seen(port: Port) -> u64 {
    SEEN.get(port as usize).map_or(0, |c| c.load(SeqCst))
}

fn loopback() -> (Port, Port) {
    (LOOP_A.load(SeqCst), LOOP_B.load(SeqCst))
}

/// Opens the upcall mask and closes it again: any pending upcall is
/// delivered in between.
fn take_upcalls() {
    event::unmask_upcalls();
    event::mask_upcalls();
}

/// Takes upcalls until `cond` holds or system time reaches `deadline`,
/// sleeping in `SCHEDOP_poll` on `ports` (with upcalls masked, so only
/// those ports or the deadline end it). Whether `cond` held.
fn wait_for(ports: &[Port], deadline: u64, mut cond: impl FnMut() -> bool) -> bool {
    loop {
        take_upcalls();
        if cond() {
            return true;
        }
        if now_ns() >= deadline {
            return false;
        }
        let _ = hv().sched_poll(ports, deadline);
    }
}

/// `what` gave `got`; the check wants `want`.
fn expect_err<T: core::fmt::Debug>(what: impl core::fmt::Display, got: Result<T, Errno>, want: Errno) -> Check {
    match got {
        Err(e) if e == want => Ok(()),
        other => Err(msg!("{what}: {other:?}, want {want}")),
    }
}

fn status(port: Port) -> Result<abi::event_channel::EvtchnStatus, guest_kernel::text::Msg> {
    hv().evtchn_status(DOMID_SELF, port).map_err(|e| msg!("status of port {port}: {e}"))
}

/// A loopback pair: `(unbound end, bound end)`, the bound end's
/// conservative pending event dropped, both counting into [`SEEN`].
fn new_loopback() -> Result<(Port, Port), guest_kernel::text::Msg> {
    let a = hv().evtchn_alloc_unbound(DOMID_SELF, DOMID_SELF).map_err(|e| msg!("alloc_unbound(self, self): {e}"))?;
    let b = hv().evtchn_bind_interdomain(DOMID_SELF, a).map_err(|e| msg!("bind_interdomain(self, {a}): {e}"))?;
    event::clear_pending(b);
    for p in [a, b] {
        event::set_handler(p, Some(count_event));
    }
    Ok((a, b))
}

fn close(port: Port) -> Check {
    event::set_handler(port, None);
    hv().evtchn_close(port).map(drop).map_err(|e| msg!("close({port}): {e}"))
}

/// Shared info mapped, callbacks registered, `VIRQ_TIMER` bound; upcalls
/// still masked.
fn check_events_init() -> Check {
    event::init().map_err(|e| msg!("{e}"))?;
    ensure!(event::upcalls_masked(), "upcalls are not masked after event::init");
    let port = time::timer_port().map_err(|e| msg!("binding VIRQ_TIMER (and stopping the periodic timer): {e}"))?;
    ensure!(port != 0, "VIRQ_TIMER bound to port 0");
    Ok(())
}

/// System time from the pvclock advances and never goes backwards under
/// one record; when the hypervisor publishes a new record, the step back
/// (if any) is under a microsecond.
fn check_pvclock_monotonic() -> Check {
    let read = || time::time_record().map(|(t, tsc)| (t.version, t.flags, t.system_time_at(tsc)));
    let (mut version, flags, first) = read().ok_or_else(|| msg!("no time record"))?;
    let (mut last, mut records) = (first, 1);
    for _ in 0..10_000 {
        let (v, _, t) = read().ok_or_else(|| msg!("the time record never settles"))?;
        if v == version {
            ensure!(t >= last, "system time went back from {last} to {t} ns under record version {v}");
        } else {
            ensure!(t + 1000 >= last, "a new record (version {v}) put system time back from {last} to {t} ns");
            (version, records) = (v, records + 1);
        }
        last = t;
    }
    ensure!(last > first, "system time stood still at {first} ns over 10000 reads");
    println!("INFO pvclock: flags {flags:#x}, {records} record version(s) over 10000 reads");
    Ok(())
}

/// `alloc_unbound(self, remote self)` and `bind_interdomain(self, it)`
/// make a loopback channel; a send on either end runs the other end's
/// handler in the upcall.
fn check_loopback() -> Check {
    let a = hv().evtchn_alloc_unbound(DOMID_SELF, DOMID_SELF).map_err(|e| msg!("alloc_unbound(self, self): {e}"))?;
    let b = hv().evtchn_bind_interdomain(DOMID_SELF, a).map_err(|e| msg!("bind_interdomain(self, {a}): {e}"))?;
    ensure!(a != b && a != 0 && b != 0, "ports {a} and {b}");
    ensure!(usize::try_from(b).is_ok_and(|b| b < SEEN.len()), "port {b} is beyond what the check counts");
    // Xen marks the new local end pending (a send to the unbound port may
    // have been lost); masked, it is still there.
    ensure!(event::clear_pending(b), "the newly bound port {b} is not pending");
    event::set_handler(a, Some(count_event));
    event::set_handler(b, Some(count_event));
    LOOP_A.store(a, SeqCst);
    LOOP_B.store(b, SeqCst);
    take_upcalls();
    let (sa, sb) = (seen(a), seen(b));
    event::send(b).map_err(|e| msg!("send({b}): {e}"))?;
    ensure!(seen(a) == sa, "the handler ran while upcalls were masked");
    ensure!(event::is_pending(a), "send on {b} left {a} not pending");
    let upcalls = event::upcalls();
    take_upcalls();
    ensure!(event::upcalls() > upcalls, "no upcall after unmasking");
    ensure!(
        (seen(a), seen(b)) == (sa + 1, sb),
        "send on {b}: handled {} on {a}, {} on {b}",
        seen(a) - sa,
        seen(b) - sb
    );
    event::send(a).map_err(|e| msg!("send({a}): {e}"))?;
    take_upcalls();
    ensure!(
        (seen(a), seen(b)) == (sa + 1, sb + 1),
        "send on {a}: handled {} on {a}, {} on {b}",
        seen(a) - sa - 1,
        seen(b) - sb
    );
    ensure!(!event::is_pending(a) && !event::is_pending(b), "a port stayed pending after its handler ran");
    Ok(())
}

/// An upcall that interrupts the kernel with upcalls unmasked: kernel
/// mode, saved mask 0 (IF set), masked inside the handler, unmasked again
/// after `iret`; it arrives as the `send` hypercall returns.
fn check_upcall_frame() -> Check {
    let (a, b) = loopback();
    let sa = seen(a);
    event::unmask_upcalls();
    let r = event::send(b);
    let masked_after = event::upcalls_masked();
    event::mask_upcalls();
    r.map_err(|e| msg!("send({b}): {e}"))?;
    ensure!(seen(a) == sa + 1, "no upcall as send returned");
    ensure!(!masked_after, "upcalls were masked after the upcall's iret");
    let f = event::last_upcall().ok_or_else(|| msg!("no upcall recorded"))?;
    ensure!(f.cs & 3 == 0, "cs {:#x}: RPL {}, want 0 (kernel mode interrupted)", f.cs, f.cs & 3);
    ensure!((f.cs >> 32) & 0xff == 0, "saved upcall mask (cs bits 32..40) {}, want 0", (f.cs >> 32) & 0xff);
    ensure!(f.rflags & RFLAGS_IF != 0, "rflags {:#x} lacks IF although upcalls were unmasked", f.rflags);
    ensure!(f.mask_in_handler == 1, "evtchn_upcall_mask was {} in the handler, want 1", f.mask_in_handler);
    if hypercall::uses_page() {
        let page = entry::hypercall_page_addr();
        ensure!(
            (page..page + 4096).contains(&f.rip),
            "rip {:#x} is not in the hypercall page at {page:#x} (the upcall should come as send returns)",
            f.rip
        );
    }
    Ok(())
}

/// `EVTCHNOP_status` for unbound, interdomain, VIRQ, IPI and closed ports.
fn check_status() -> Check {
    let u = hv().evtchn_alloc_unbound(DOMID_SELF, DOMID_SELF).map_err(|e| msg!("alloc_unbound(self, self): {e}"))?;
    let s = status(u)?;
    ensure!(s.status == EVTCHNSTAT_UNBOUND, "unbound port {u}: status {}", s.status);
    let own = s.u_unbound_dom();
    OWN_DOMID.store(u32::from(own), SeqCst);
    ensure!(own < DOMID_SELF, "unbound port {u}: remote dom {own:#x}, want our own id for DOMID_SELF");
    println!("INFO evtchn: our domain id is {own}");
    let (a, b) = loopback();
    for (port, other) in [(a, b), (b, a)] {
        let s = status(port)?;
        ensure!(
            (s.status, s.u_interdomain_dom(), s.u_interdomain_port(), s.vcpu)
                == (EVTCHNSTAT_INTERDOMAIN, own, other, 0),
            "loopback port {port}: status {} dom {} port {} vcpu {}, want 2 {own} {other} 0",
            s.status,
            s.u_interdomain_dom(),
            s.u_interdomain_port(),
            s.vcpu
        );
    }
    let t = time::timer_port().map_err(|e| msg!("VIRQ_TIMER: {e}"))?;
    let s = status(t)?;
    ensure!(
        (s.status, s.u_virq(), s.vcpu) == (EVTCHNSTAT_VIRQ, VIRQ_TIMER, 0),
        "timer port {t}: status {} virq {} vcpu {}",
        s.status,
        s.u_virq(),
        s.vcpu
    );
    let i = hv().evtchn_bind_ipi(0).map_err(|e| msg!("bind_ipi(0): {e}"))?;
    let s = status(i)?;
    ensure!((s.status, s.vcpu) == (EVTCHNSTAT_IPI, 0), "IPI port {i}: status {} vcpu {}", s.status, s.vcpu);
    close(i)?;
    close(u)?;
    let s = status(u)?;
    ensure!(s.status == EVTCHNSTAT_CLOSED, "closed port {u}: status {}", s.status);
    expect_err("status in a domain that does not exist", hv().evtchn_status(NO_SUCH_DOMAIN, a), Errno::ESRCH)
}

/// `bind_ipi` to our vCPU and a send to ourselves; a vCPU we lack is
/// `ENOENT`.
fn check_ipi() -> Check {
    let p = hv().evtchn_bind_ipi(0).map_err(|e| msg!("bind_ipi(0): {e}"))?;
    event::set_handler(p, Some(count_event));
    let before = seen(p);
    let sent = event::send(p);
    take_upcalls();
    let got = seen(p) - before;
    close(p)?;
    sent.map_err(|e| msg!("send on IPI port {p}: {e}"))?;
    ensure!(got == 1, "IPI port {p}: handled {got} events, want 1");
    expect_err("bind_ipi(vcpu 1) with one vCPU", hv().evtchn_bind_ipi(1), Errno::ENOENT)
}

/// A masked port keeps its event pending without an upcall;
/// `EVTCHNOP_unmask` delivers it.
fn check_mask_unmask() -> Check {
    let (a, b) = loopback();
    let before = seen(a);
    event::mask_port(a);
    ensure!(event::is_masked(a), "port {a} did not stay masked");
    let sent = event::send(b);
    take_upcalls();
    let while_masked = seen(a) - before;
    let pending = event::is_pending(a);
    let unmasked = event::unmask_port(a);
    take_upcalls();
    sent.map_err(|e| msg!("send({b}): {e}"))?;
    unmasked.map_err(|e| msg!("unmask({a}): {e}"))?;
    ensure!(while_masked == 0, "masked port {a} was handled {while_masked} times");
    ensure!(pending, "masked port {a} is not pending after a send");
    ensure!(!event::is_masked(a), "port {a} is still masked after EVTCHNOP_unmask");
    ensure!(seen(a) - before == 1, "unmasking delivered {} events, want 1", seen(a) - before);
    Ok(())
}

/// Closing one end leaves the other unbound (a send there is dropped);
/// a closed port is `EINVAL` to send and close, `closed` to status, and
/// may still be unmasked.
fn check_close_send() -> Check {
    let (c, d) = new_loopback()?;
    close(d)?;
    let s = status(c)?;
    let own = OWN_DOMID.load(SeqCst) as u16;
    ensure!(
        (s.status, s.u_unbound_dom()) == (EVTCHNSTAT_UNBOUND, own),
        "port {c} after closing its peer: status {} dom {}",
        s.status,
        s.u_unbound_dom()
    );
    expect_err("send on the closed port", event::send(d), Errno::EINVAL)?;
    let before = seen(c);
    let dropped = event::send(c);
    take_upcalls();
    ensure!(dropped == Ok(0), "send on unbound port {c}: {dropped:?}, want 0 (dropped)");
    ensure!(seen(c) == before, "a send on unbound port {c} was delivered");
    close(c)?;
    expect_err("close of a closed port", hv().evtchn_close(c), Errno::EINVAL)?;
    expect_err("send on a closed port", event::send(c), Errno::EINVAL)?;
    let s = status(c)?;
    ensure!(s.status == EVTCHNSTAT_CLOSED, "closed port {c}: status {}", s.status);
    ensure!(event::unmask_port(c) == Ok(0), "unmask of free port {c}: {:?}, want 0", event::unmask_port(c));
    Ok(())
}

/// Ports past the limit are `EINVAL` to every operation; reserved port 0
/// cannot be sent on or closed and reports `closed`.
fn check_bad_ports() -> Check {
    for p in PAST_LIMIT {
        expect_err(msg!("send({p})"), event::send(p), Errno::EINVAL)?;
        expect_err(msg!("close({p})"), hv().evtchn_close(p), Errno::EINVAL)?;
        expect_err(msg!("unmask({p})"), hv().evtchn_unmask(p), Errno::EINVAL)?;
        expect_err(msg!("status({p})"), hv().evtchn_status(DOMID_SELF, p), Errno::EINVAL)?;
        expect_err(msg!("bind_vcpu({p}, 0)"), hv().evtchn_bind_vcpu(p, 0), Errno::EINVAL)?;
    }
    expect_err("send(0)", event::send(0), Errno::EINVAL)?;
    expect_err("close(0)", hv().evtchn_close(0), Errno::EINVAL)?;
    let s = status(0)?;
    ensure!(s.status == EVTCHNSTAT_CLOSED, "reserved port 0: status {}", s.status);
    Ok(())
}

/// A VIRQ bound twice on one vCPU is `EEXIST`; past `NR_VIRQS`, or a
/// global VIRQ on vCPU 1, `EINVAL`; a vCPU we lack `ENOENT`.
fn check_bind_virq_errors() -> Check {
    time::timer_port().map_err(|e| msg!("VIRQ_TIMER: {e}"))?;
    expect_err("VIRQ_TIMER bound again", hv().evtchn_bind_virq(VIRQ_TIMER, 0), Errno::EEXIST)?;
    expect_err("VIRQ NR_VIRQS", hv().evtchn_bind_virq(NR_VIRQS, 0), Errno::EINVAL)?;
    expect_err("global VIRQ_DOM_EXC on vCPU 1", hv().evtchn_bind_virq(VIRQ_DOM_EXC, 1), Errno::EINVAL)?;
    expect_err("VIRQ_TIMER on vCPU 1", hv().evtchn_bind_virq(VIRQ_TIMER, 1), Errno::ENOENT)
}

/// Binding what was not offered to us: no such domain `ESRCH`; a port
/// offered to another domain, a bound port, a port past the limit
/// `EINVAL`.
fn check_interdomain_errors() -> Check {
    expect_err("bind_interdomain(no such domain)", hv().evtchn_bind_interdomain(NO_SUCH_DOMAIN, 1), Errno::ESRCH)?;
    expect_err("alloc_unbound in no such domain", hv().evtchn_alloc_unbound(NO_SUCH_DOMAIN, DOMID_SELF), Errno::ESRCH)?;
    let other = (OWN_DOMID.load(SeqCst) as u16 + 1) % NO_SUCH_DOMAIN;
    let x = hv().evtchn_alloc_unbound(DOMID_SELF, other).map_err(|e| msg!("alloc_unbound(self, {other}): {e}"))?;
    let r = hv().evtchn_bind_interdomain(DOMID_SELF, x);
    close(x)?;
    expect_err(msg!("bind to port {x}, offered to dom{other}"), r, Errno::EINVAL)?;
    let (a, _) = loopback();
    expect_err("bind to an interdomain port", hv().evtchn_bind_interdomain(DOMID_SELF, a), Errno::EINVAL)?;
    let t = time::timer_port().map_err(|e| msg!("VIRQ_TIMER: {e}"))?;
    expect_err("bind to the VIRQ port", hv().evtchn_bind_interdomain(DOMID_SELF, t), Errno::EINVAL)?;
    expect_err("bind to port 4096", hv().evtchn_bind_interdomain(DOMID_SELF, 4096), Errno::EINVAL)
}

/// `bind_vcpu` moves interdomain ports, not per-vCPU VIRQs or IPIs.
fn check_bind_vcpu() -> Check {
    let (a, _) = loopback();
    ensure!(hv().evtchn_bind_vcpu(a, 0) == Ok(0), "bind_vcpu(interdomain {a}, 0): {:?}", hv().evtchn_bind_vcpu(a, 0));
    let t = time::timer_port().map_err(|e| msg!("VIRQ_TIMER: {e}"))?;
    expect_err("bind_vcpu(VIRQ_TIMER port, 0)", hv().evtchn_bind_vcpu(t, 0), Errno::EINVAL)?;
    let i = hv().evtchn_bind_ipi(0).map_err(|e| msg!("bind_ipi(0): {e}"))?;
    let r = hv().evtchn_bind_vcpu(i, 0);
    close(i)?;
    expect_err("bind_vcpu(IPI port, 0)", r, Errno::EINVAL)?;
    expect_err("bind_vcpu(a free port, 0)", hv().evtchn_bind_vcpu(i, 0), Errno::EINVAL)?;
    expect_err("bind_vcpu(interdomain, vCPU 1)", hv().evtchn_bind_vcpu(a, 1), Errno::ENOENT)
}

/// Waits for a timer event after `before`, up to a second past `deadline`.
fn timer_fired(port: Port, before: u64, deadline: u64) -> Check {
    let came = wait_for(&[port], deadline + 1000 * NS_PER_MS, || time::timer_events() > before);
    ensure!(came, "no VIRQ_TIMER within 1 s of the deadline");
    let at = time::last_timer_ns();
    ensure!(at >= deadline, "VIRQ_TIMER came {} ns before its deadline", deadline - at);
    Ok(())
}

/// No timer event after `before` for 20 ms.
fn timer_quiet(port: Port, before: u64) -> Check {
    let fired = wait_for(&[port], now_ns() + 20 * NS_PER_MS, || time::timer_events() > before);
    ensure!(!fired, "a cancelled timer fired");
    Ok(())
}

/// `set_timer_op(deadline)` raises VIRQ_TIMER after the deadline;
/// `set_timer_op(0)` cancels.
fn check_virq_timer() -> Check {
    let port = time::timer_port().map_err(|e| msg!("VIRQ_TIMER: {e}"))?;
    take_upcalls();
    let before = time::timer_events();
    let deadline = now_ns() + 5 * NS_PER_MS;
    hv().set_timer_op(deadline).map_err(|e| msg!("set_timer_op: {e}"))?;
    timer_fired(port, before, deadline)?;
    let before = time::timer_events();
    hv().set_timer_op(now_ns() + 3 * NS_PER_MS).map_err(|e| msg!("set_timer_op: {e}"))?;
    hv().set_timer_op(0).map_err(|e| msg!("set_timer_op(0): {e}"))?;
    timer_quiet(port, before)
}

/// `vcpu_op(set_singleshot_timer)` raises VIRQ_TIMER after the deadline,
/// and at once for a past one (even with `VCPU_SSHOTTMR_future`, which
/// Xen 4.17.7 ignores); `stop_singleshot_timer` cancels; another vCPU is
/// `ENOENT`.
fn check_singleshot_timer() -> Check {
    let port = time::timer_port().map_err(|e| msg!("VIRQ_TIMER: {e}"))?;
    take_upcalls();
    let before = time::timer_events();
    let deadline = now_ns() + 5 * NS_PER_MS;
    hv().vcpu_set_singleshot_timer(0, deadline, 0).map_err(|e| msg!("set_singleshot_timer: {e}"))?;
    timer_fired(port, before, deadline)?;
    // Xen 4.17.7 ignores VCPU_SSHOTTMR_future (commit 19c6cbd90965,
    // backported): a timeout already past is accepted and fires at once.
    let before = time::timer_events();
    let past = now_ns() - NS_PER_MS;
    let r = hv().vcpu_set_singleshot_timer(0, past, VCPU_SSHOTTMR_FUTURE);
    ensure!(r == Ok(0), "a past timeout with VCPU_SSHOTTMR_future: {r:?}, want 0 (the flag is ignored)");
    let came = wait_for(&[port], now_ns() + PROMPTLY_NS, || time::timer_events() > before);
    ensure!(came, "a past timeout did not fire at once");
    let before = time::timer_events();
    hv().vcpu_set_singleshot_timer(0, now_ns() + 3 * NS_PER_MS, VCPU_SSHOTTMR_FUTURE)
        .map_err(|e| msg!("set_singleshot_timer(future): {e}"))?;
    hv().vcpu_stop_singleshot_timer(0).map_err(|e| msg!("stop_singleshot_timer: {e}"))?;
    timer_quiet(port, before)?;
    expect_err("set_singleshot_timer on vCPU 1", hv().vcpu_set_singleshot_timer(1, deadline, 0), Errno::ENOENT)
}

/// `SCHEDOP_poll` returns at once on a pending port and when its timeout
/// has passed, sleeps until a future timeout, and refuses more than 128
/// ports or a port past the limit.
fn check_sched_poll() -> Check {
    let (a, b) = loopback();
    take_upcalls();
    event::send(b).map_err(|e| msg!("send({b}): {e}"))?;
    let t0 = now_ns();
    let r = hv().sched_poll(&[a], t0 + 1000 * NS_PER_MS);
    let took = now_ns() - t0;
    take_upcalls();
    ensure!(r == Ok(0), "poll on a pending port: {r:?}");
    ensure!(took < PROMPTLY_NS, "poll on a pending port took {took} ns");
    let t0 = now_ns();
    let r = hv().sched_poll(&[a], t0 - NS_PER_MS);
    let took = now_ns() - t0;
    ensure!(r == Ok(0), "poll with a past timeout: {r:?}");
    ensure!(took < PROMPTLY_NS, "poll with a past timeout took {took} ns");
    let deadline = now_ns() + 5 * NS_PER_MS;
    let r = hv().sched_poll(&[a], deadline);
    let woke = now_ns();
    ensure!(r == Ok(0), "poll with a timeout: {r:?}");
    ensure!(woke >= deadline, "poll woke {} ns before its timeout", deadline - woke);
    let many = [a; 129];
    expect_err("poll on 129 ports", hv().sched_poll(&many, now_ns() + NS_PER_MS), Errno::EINVAL)?;
    expect_err("poll on port 4096", hv().sched_poll(&[4096], now_ns() + NS_PER_MS), Errno::EINVAL)
}

/// With upcalls masked and an event pending, `SCHEDOP_block` returns at
/// once, unmasked, and the upcall has run: mask, check, block loses
/// nothing. (A timer armed a second out ends the block if it does not.)
fn check_sched_block() -> Check {
    let (a, b) = loopback();
    take_upcalls();
    let before = seen(a);
    event::send(b).map_err(|e| msg!("send({b}): {e}"))?;
    ensure!(seen(a) == before, "the handler ran while upcalls were masked");
    hv().set_timer_op(now_ns() + 1000 * NS_PER_MS).map_err(|e| msg!("set_timer_op (backstop): {e}"))?;
    let t0 = now_ns();
    let r = hv().sched_block();
    let took = now_ns() - t0;
    let masked = event::upcalls_masked();
    event::mask_upcalls();
    let _ = hv().set_timer_op(0);
    r.map_err(|e| msg!("sched_block: {e}"))?;
    ensure!(!masked, "upcalls are masked after SCHEDOP_block");
    ensure!(seen(a) == before + 1, "the pending event was not delivered as block returned");
    ensure!(took < PROMPTLY_NS, "SCHEDOP_block with an event pending took {took} ns");
    Ok(())
}

/// Kernel threads: two yielding threads alternate; a thread waiting for
/// an event wakes from its handler; of two sleeping threads, each wakes
/// after its own deadline.
fn check_threads() -> Check {
    static LOG: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
    static AT: AtomicU64 = AtomicU64::new(0);
    static WOKE: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
    let spawn = |f: fn()| thread::spawn(f).map_err(|e| msg!("spawn: {e}"));

    // Yielding threads alternate.
    AT.store(0, SeqCst);
    fn yielder(tag: u64) {
        for _ in 0..3 {
            let i = AT.fetch_add(1, SeqCst) as usize;
            if let Some(slot) = LOG.get(i) {
                slot.store(tag, SeqCst);
            }
            thread::yield_now();
        }
    }
    let x = spawn(|| yielder(1))?;
    let y = spawn(|| yielder(2))?;
    x.join();
    y.join();
    let log: Vec<u64> = LOG.iter().take(6).map(|s| s.load(SeqCst)).collect();
    ensure!(AT.load(SeqCst) == 6 && log == [1, 2, 1, 2, 1, 2], "yielding threads ran {log:?}, want [1, 2, 1, 2, 1, 2]");

    // A thread waiting for an event wakes from the event's handler.
    let (a, b) = loopback();
    let target = seen(a) + 1;
    WOKE[0].store(0, SeqCst);
    AT.store(target, SeqCst);
    let w = spawn(|| {
        let a = LOOP_A.load(SeqCst);
        event::wait_until(|| seen(a) >= AT.load(SeqCst));
        WOKE[0].store(1, SeqCst);
    })?;
    thread::yield_now();
    let waited = WOKE[0].load(SeqCst) == 0;
    // The backstop: a timer a second out ends the wait if the event does not.
    hv().set_timer_op(now_ns() + 1000 * NS_PER_MS).map_err(|e| msg!("set_timer_op: {e}"))?;
    let sent = event::send(b);
    w.join();
    let _ = hv().set_timer_op(0);
    sent.map_err(|e| msg!("send({b}): {e}"))?;
    ensure!(waited, "the waiting thread did not wait for its event");
    ensure!(WOKE[0].load(SeqCst) == 1 && seen(a) >= target, "the waiting thread ended without its event");

    // Two sleepers: each wakes after its own deadline, the early one well
    // before the late one's (one timer serves both).
    const EARLY_MS: u64 = 4;
    const LATE_MS: u64 = 50;
    let base = now_ns();
    AT.store(base, SeqCst);
    for w in &WOKE {
        w.store(0, SeqCst);
    }
    fn sleeper(i: usize, after_ms: u64) {
        let deadline = AT.load(SeqCst) + after_ms * NS_PER_MS;
        if time::sleep_until(deadline).is_ok() {
            WOKE[i].store(now_ns(), SeqCst);
        }
    }
    let late = spawn(|| sleeper(0, LATE_MS))?;
    let early = spawn(|| sleeper(1, EARLY_MS))?;
    late.join();
    early.join();
    let (w0, w1) = (WOKE[0].load(SeqCst), WOKE[1].load(SeqCst));
    ensure!(w0 != 0 && w1 != 0, "a sleeping thread failed to sleep");
    ensure!(
        w1 >= base + EARLY_MS * NS_PER_MS && w0 >= base + LATE_MS * NS_PER_MS,
        "a sleeper woke before its deadline"
    );
    ensure!(
        w1 < base + LATE_MS * NS_PER_MS,
        "the {EARLY_MS} ms sleeper woke only at +{} ns, with the {LATE_MS} ms one",
        w1 - base
    );
    Ok(())
}

/// The `ping`/`pong` workloads' sessions as two threads of this domain,
/// over a channel to ourselves: 100 strictly alternating round trips.
fn check_pingpong_loopback() -> Check {
    const ROUNDS: u64 = 100;
    static RESULT: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
    static PONG_PORT: AtomicU32 = AtomicU32::new(0);
    for r in &RESULT {
        r.store(0, SeqCst);
    }
    let own = OWN_DOMID.load(SeqCst) as u16;
    let pong = thread::spawn(move || match pingpong::pong_offer(own) {
        Ok(port) => {
            PONG_PORT.store(port, SeqCst);
            RESULT[3].store(pingpong::pong_answer(port, ROUNDS).is_ok().into(), SeqCst);
        }
        Err(e) => println!("pingpong_loopback: pong's alloc_unbound: {e}"),
    })
    .map_err(|e| msg!("spawn: {e}"))?;
    let ping = thread::spawn(move || match pingpong::ping_session(own, ROUNDS) {
        Ok(r) => {
            RESULT[0].store(u64::from(r.port) | u64::from(r.remote_port) << 32, SeqCst);
            RESULT[1].store(r.rtt_ns, SeqCst);
            RESULT[2].store(r.rtt_tsc, SeqCst);
        }
        Err(e) => println!("pingpong_loopback: ping: {e}"),
    })
    .map_err(|e| msg!("spawn: {e}"))?;
    ping.join();
    pong.join();
    let ports = RESULT[0].load(SeqCst);
    let (ping_port, bound) = (ports as u32, (ports >> 32) as u32);
    let pong_port = PONG_PORT.load(SeqCst);
    let _ = close(ping_port);
    let _ = close(pong_port);
    ensure!(ping_port != 0, "ping did not finish");
    ensure!(RESULT[3].load(SeqCst) == 1, "pong did not answer {ROUNDS} events");
    ensure!(bound == pong_port, "ping bound port {bound}, pong offered {pong_port}");
    println!(
        "INFO pingpong_loopback: {ROUNDS} round trips, rtt {} ns, {} TSC ticks",
        RESULT[1].load(SeqCst),
        RESULT[2].load(SeqCst)
    );
    Ok(())
}

/// `VCPUOP_register_vcpu_info` moves vCPU 0's `vcpu_info` into a page of
/// ours: an offset that would cross the page or is not 8-aligned is
/// `ENXIO`, the move works once (then `EINVAL`), and events, time and the
/// timer keep working from the new place.
fn check_register_vcpu_info() -> Check {
    let frame = mm::alloc_frame().map_err(|e| msg!("alloc_frame: {e}"))?;
    // SAFETY: a free frame of ours, mapped read-write in the direct map.
    unsafe { frame.zero() };
    for offset in [4096 - 32, 4] {
        let bad = VcpuRegisterVcpuInfo { mfn: frame.mfn, offset, rsvd: 0 };
        // SAFETY: the hypervisor must refuse this (the vcpu_info would
        // cross the page, or be misaligned) and change nothing.
        let r = unsafe { hv().vcpu_register_vcpu_info(0, &bad) };
        if r.is_ok() {
            return Err(msg!("offset {offset} was accepted"));
        }
        expect_err(msg!("offset {offset}"), r, Errno::ENXIO)?;
    }
    let before = now_ns();
    let offset = 64;
    let info = VcpuRegisterVcpuInfo { mfn: frame.mfn, offset, rsvd: 0 };
    // SAFETY: the frame is ours and used for nothing else, now or later:
    // it is never freed (it becomes the hypervisor's vcpu_info for good).
    // Upcalls are masked, and the hypervisor copies the mask over.
    unsafe { hv().vcpu_register_vcpu_info(0, &info) }.map_err(|e| msg!("register_vcpu_info: {e}"))?;
    // SAFETY: the hypervisor now keeps vCPU 0's vcpu_info there; the frame
    // stays mapped in the direct map and nothing else uses it.
    unsafe { shared::move_vcpu_info(frame.va() + u64::from(offset)) };
    ensure!(event::upcalls_masked(), "the moved vcpu_info has upcalls unmasked");
    let after = now_ns();
    ensure!(after >= before, "system time from the moved vcpu_info went back from {before} to {after} ns");
    let (a, b) = loopback();
    let sa = seen(a);
    event::send(b).map_err(|e| msg!("send({b}): {e}"))?;
    take_upcalls();
    ensure!(seen(a) == sa + 1, "no event through the moved vcpu_info");
    // SAFETY: must be refused: the vcpu_info has moved already.
    let again = unsafe { hv().vcpu_register_vcpu_info(0, &info) };
    expect_err("a second register_vcpu_info", again, Errno::EINVAL)?;
    let port = time::timer_port().map_err(|e| msg!("VIRQ_TIMER: {e}"))?;
    let before = time::timer_events();
    let deadline = now_ns() + 2 * NS_PER_MS;
    hv().set_timer_op(deadline).map_err(|e| msg!("set_timer_op: {e}"))?;
    timer_fired(port, before, deadline)
}

/// `EVTCHNOP_reset` closes every port; VIRQ_TIMER can be bound again.
fn check_reset() -> Check {
    let (a, b) = loopback();
    let t = time::timer_port().map_err(|e| msg!("VIRQ_TIMER: {e}"))?;
    hv().evtchn_reset(DOMID_SELF).map_err(|e| msg!("reset(self): {e}"))?;
    event::clear_handlers();
    time::forget_timer_port();
    for p in [a, b, t] {
        let s = status(p)?;
        ensure!(s.status == EVTCHNSTAT_CLOSED, "port {p} after reset: status {}", s.status);
    }
    let t = time::timer_port().map_err(|e| msg!("binding VIRQ_TIMER after reset: {e}"))?;
    let s = status(t)?;
    ensure!(s.status == EVTCHNSTAT_VIRQ, "VIRQ_TIMER port {t} after reset: status {}", s.status);
    Ok(())
}
