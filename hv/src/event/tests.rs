//! Host tests: every operation and errno, the upcall protocol, and a
//! randomized test of the invariants across three domains.

use super::two_level::{self, Delivery};
use super::*;
use abi::event_channel::EvtchnStatus;
use abi::mm::DOMID_IO;
use abi::sched::{NR_VIRQS, VIRQ_ARCH_0, VIRQ_CONSOLE, VIRQ_DOM_EXC, VIRQ_TIMER};
use abi::shared_info::SharedInfo;

// ---------------------------------------------------------------------------
// A fake set of domains.

#[derive(Clone)]
struct TestDomain {
    channels: Box<EventChannels>,
    shared: Box<SharedInfo>,
    privileged: bool,
    paused: bool,
}

#[derive(Clone)]
struct World {
    doms: Vec<TestDomain>,
}

impl Domains for World {
    fn events(&mut self, dom: DomId) -> Option<DomainEvents<'_>> {
        let d = self.doms.get_mut(usize::from(dom))?;
        Some(DomainEvents { channels: &mut d.channels, state: &mut *d.shared })
    }
    fn is_privileged(&self, dom: DomId) -> bool {
        self.doms.get(usize::from(dom)).is_some_and(|d| d.privileged)
    }
    fn is_paused_by_controller(&self, dom: DomId) -> bool {
        self.doms.get(usize::from(dom)).is_some_and(|d| d.paused)
    }
}

impl World {
    /// d0: privileged, 2 vCPUs, no port limit; d1: 3 vCPUs, ports to 1023;
    /// d2: 1 vCPU, ports to `d2_max_port`.
    fn new(d2_max_port: u32) -> World {
        let dom = |id, vcpus, max, privileged| TestDomain {
            channels: Box::new(EventChannels::new(id, vcpus, max)),
            shared: Box::new(SharedInfo::zeroed()),
            privileged,
            paused: false,
        };
        World { doms: vec![dom(0, 2, u32::MAX, true), dom(1, 3, 1023, false), dom(2, 1, d2_max_port, false)] }
    }

    fn ch(&self, dom: DomId) -> &EventChannels {
        &self.doms[usize::from(dom)].channels
    }
    fn shared(&mut self, dom: DomId) -> &mut SharedInfo {
        &mut self.doms[usize::from(dom)].shared
    }
    fn binding(&self, dom: DomId, port: Port) -> Binding {
        self.ch(dom).binding(port)
    }
    fn pending(&self, dom: DomId, port: Port) -> bool {
        two_level::is_pending(&self.doms[usize::from(dom)].shared.evtchn_pending, port)
    }
}

fn p(n: u32) -> Port {
    Port::new(n).unwrap()
}

// ---------------------------------------------------------------------------
// Allocation and permissions.

#[test]
fn port_zero_is_reserved_and_ports_are_allocated_lowest_first() {
    let mut w = World::new(1023);
    assert_eq!(w.binding(1, p(0)), Binding::Reserved);
    assert_eq!(alloc_unbound(&mut w, 1, DOMID_SELF, 0), Ok(p(1)));
    assert_eq!(alloc_unbound(&mut w, 1, DOMID_SELF, 0), Ok(p(2)));
    assert_eq!(bind_ipi(&mut w, 1, 0), Ok(p(3)));
    assert_eq!(close(&mut w, 1, 1), Ok(()));
    assert_eq!(bind_virq(&mut w, 1, VIRQ_TIMER, 0), Ok(p(1)), "the lowest free port is reused");
    assert_eq!(bind_ipi(&mut w, 1, 0), Ok(p(4)));
}

#[test]
fn alloc_unbound_needs_self_or_privilege() {
    let mut w = World::new(1023);
    // The caller's own domain, by DOMID_SELF or by number.
    assert_eq!(alloc_unbound(&mut w, 1, DOMID_SELF, 2), Ok(p(1)));
    assert_eq!(alloc_unbound(&mut w, 1, 1, DOMID_SELF), Ok(p(2)));
    assert_eq!(w.binding(1, p(1)), Binding::Unbound { remote: 2 });
    assert_eq!(w.binding(1, p(2)), Binding::Unbound { remote: 1 }, "DOMID_SELF is the caller");
    // Another domain: only the privileged may.
    assert_eq!(alloc_unbound(&mut w, 1, 2, 1), Err(Errno::EPERM));
    assert_eq!(w.ch(2).bound().count(), 0, "a refused call changes nothing");
    assert_eq!(alloc_unbound(&mut w, 0, 2, DOMID_SELF), Ok(p(1)));
    assert_eq!(w.binding(2, p(1)), Binding::Unbound { remote: 0 }, "DOMID_SELF is the caller, not dom");
    // No such domain; the reserved ids are none.
    assert_eq!(alloc_unbound(&mut w, 0, 3, 0), Err(Errno::ESRCH));
    assert_eq!(alloc_unbound(&mut w, 0, DOMID_IO, 0), Err(Errno::ESRCH));
    // The remote domain is not checked, as in Xen.
    assert_eq!(alloc_unbound(&mut w, 1, DOMID_SELF, 77), Ok(p(3)));
    assert_eq!(w.binding(1, p(3)), Binding::Unbound { remote: 77 });
}

#[test]
fn a_full_table_is_enospc_before_eperm() {
    let mut w = World::new(3);
    for port in 1..=3 {
        assert_eq!(alloc_unbound(&mut w, 2, DOMID_SELF, 0), Ok(p(port)));
    }
    assert_eq!(alloc_unbound(&mut w, 2, DOMID_SELF, 0), Err(Errno::ENOSPC));
    assert_eq!(bind_ipi(&mut w, 2, 0), Err(Errno::ENOSPC));
    assert_eq!(bind_virq(&mut w, 2, VIRQ_TIMER, 0), Err(Errno::ENOSPC));
    assert_eq!(alloc_unbound(&mut w, 1, 2, 1), Err(Errno::ENOSPC), "Xen looks for a port before checking permission");
    assert_eq!(bind_interdomain(&mut w, 2, 1, 1), Err(Errno::ENOSPC));
    assert_eq!(w.ch(2).max_port(), 3);
}

#[test]
fn valid_ports_grow_in_buckets_of_64() {
    let mut w = World::new(1023);
    assert_eq!(w.ch(1).valid_ports(), 64);
    assert_eq!(status(&mut w, 1, DOMID_SELF, 63).map(|s| s.binding), Ok(Binding::Free), "valid and free: closed");
    assert_eq!(status(&mut w, 1, DOMID_SELF, 64), Err(Errno::EINVAL), "beyond the valid ports");
    for _ in 1..64 {
        bind_ipi(&mut w, 1, 0).unwrap();
    }
    assert_eq!(w.ch(1).valid_ports(), 64);
    assert_eq!(bind_ipi(&mut w, 1, 0), Ok(p(64)));
    assert_eq!(w.ch(1).valid_ports(), 128);
    assert_eq!(status(&mut w, 1, DOMID_SELF, 127).map(|s| s.kind()), Ok(EvtchnStatusKind::Closed));
    assert_eq!(close(&mut w, 1, 64), Ok(()));
    assert_eq!(w.ch(1).valid_ports(), 128, "never shrinks");
}

// ---------------------------------------------------------------------------
// Interdomain channels.

/// d1 offers a port to d2 and d2 binds it: (d1's port, d2's port).
fn connect(w: &mut World) -> (Port, Port) {
    let offered = alloc_unbound(w, 1, DOMID_SELF, 2).unwrap();
    let (local, _) = bind_interdomain(w, 2, 1, offered.get()).unwrap();
    (offered, local)
}

#[test]
fn bind_interdomain_links_both_ends_and_raises_the_new_port() {
    let mut w = World::new(1023);
    bind_ipi(&mut w, 2, 0).unwrap(); // d2's next port is 2
    let offered = alloc_unbound(&mut w, 1, DOMID_SELF, 2).unwrap();
    bind_vcpu(&mut w, 1, offered.get(), 2).unwrap();
    let (local, signal) = bind_interdomain(&mut w, 2, 1, offered.get()).unwrap();
    assert_eq!(local, p(2));
    assert_eq!(w.binding(2, local), Binding::Interdomain { remote: 1, port: offered });
    assert_eq!(w.binding(1, offered), Binding::Interdomain { remote: 2, port: local });
    assert_eq!(w.ch(1).notify_vcpu(offered), 2, "the remote port keeps its vCPU");
    assert_eq!(w.ch(2).notify_vcpu(local), 0);
    // Xen raises the new local port: events sent while unbound were lost.
    assert_eq!(signal, Some(Signal { dom: 2, vcpu: 0, port: local, upcall: true }));
    assert!(w.pending(2, local));
    assert!(!w.pending(1, offered));
}

#[test]
fn bind_interdomain_errors() {
    let mut w = World::new(1023);
    let to_d2 = alloc_unbound(&mut w, 1, DOMID_SELF, 2).unwrap();
    let virq = bind_virq(&mut w, 1, VIRQ_TIMER, 0).unwrap();
    let before = w.clone();
    assert_eq!(bind_interdomain(&mut w, 2, 5, 1), Err(Errno::ESRCH), "no such domain");
    assert_eq!(bind_interdomain(&mut w, 2, DOMID_IO, 1), Err(Errno::ESRCH));
    assert_eq!(bind_interdomain(&mut w, 0, 1, to_d2.get()), Err(Errno::EINVAL), "offered to someone else");
    assert_eq!(bind_interdomain(&mut w, 2, 1, 0), Err(Errno::EINVAL), "reserved port");
    assert_eq!(bind_interdomain(&mut w, 2, 1, 40), Err(Errno::EINVAL), "free port");
    assert_eq!(bind_interdomain(&mut w, 2, 1, 64), Err(Errno::EINVAL), "beyond the valid ports");
    assert_eq!(bind_interdomain(&mut w, 2, 1, u32::MAX), Err(Errno::EINVAL));
    assert_eq!(bind_interdomain(&mut w, 2, 1, virq.get()), Err(Errno::EINVAL), "not unbound");
    assert!(w.doms.iter().zip(&before.doms).all(|(a, b)| a.channels == b.channels && a.shared == b.shared));
    // Once bound, it cannot be bound again.
    bind_interdomain(&mut w, 2, 1, to_d2.get()).unwrap();
    assert_eq!(bind_interdomain(&mut w, 2, 1, to_d2.get()), Err(Errno::EINVAL));
}

#[test]
fn loopback_binds_within_one_domain() {
    let mut w = World::new(1023);
    let offered = alloc_unbound(&mut w, 1, DOMID_SELF, DOMID_SELF).unwrap();
    let (local, _) = bind_interdomain(&mut w, 1, DOMID_SELF, offered.get()).unwrap();
    assert_eq!((offered, local), (p(1), p(2)));
    assert_eq!(w.binding(1, p(1)), Binding::Interdomain { remote: 1, port: p(2) });
    assert_eq!(w.binding(1, p(2)), Binding::Interdomain { remote: 1, port: p(1) });
    w.shared(1).evtchn_pending = [0; 64];
    let s = send(&mut w, 1, 2).unwrap().unwrap();
    assert_eq!((s.dom, s.port), (1, p(1)));
    close(&mut w, 1, 1).unwrap();
    assert_eq!(w.binding(1, p(2)), Binding::Unbound { remote: 1 });
}

#[test]
fn send_raises_the_peer_on_its_vcpu() {
    let mut w = World::new(1023);
    let (d1_port, d2_port) = connect(&mut w);
    bind_vcpu(&mut w, 1, d1_port.get(), 1).unwrap();
    let s = send(&mut w, 2, d2_port.get()).unwrap();
    assert_eq!(s, Some(Signal { dom: 1, vcpu: 1, port: d1_port, upcall: true }));
    assert!(w.pending(1, d1_port));
    assert_eq!(w.shared(1).vcpu_info[1].evtchn_upcall_pending, 1);
    assert_eq!(w.shared(1).vcpu_info[0].evtchn_upcall_pending, 0);
    assert_eq!(send(&mut w, 2, d2_port.get()), Ok(None), "already pending: nothing new");
    // The other way.
    w.shared(2).evtchn_pending = [0; 64];
    assert_eq!(send(&mut w, 1, d1_port.get()).unwrap().map(|s| (s.dom, s.port)), Some((2, d2_port)));
}

#[test]
fn send_by_binding() {
    let mut w = World::new(1023);
    let unbound = alloc_unbound(&mut w, 1, DOMID_SELF, 2).unwrap();
    let ipi = bind_ipi(&mut w, 1, 2).unwrap();
    let virq = bind_virq(&mut w, 1, VIRQ_TIMER, 0).unwrap();
    assert_eq!(send(&mut w, 1, unbound.get()), Ok(None), "unbound: dropped silently");
    assert!(!w.pending(1, unbound));
    assert_eq!(send(&mut w, 1, ipi.get()), Ok(Some(Signal { dom: 1, vcpu: 2, port: ipi, upcall: true })));
    assert_eq!(send(&mut w, 1, virq.get()), Err(Errno::EINVAL), "a VIRQ port cannot be sent on");
    assert_eq!(send(&mut w, 1, 0), Err(Errno::EINVAL), "reserved");
    assert_eq!(send(&mut w, 1, 10), Err(Errno::EINVAL), "free");
    assert_eq!(send(&mut w, 1, 64), Err(Errno::EINVAL), "beyond the valid ports");
    assert_eq!(send(&mut w, 1, 4096), Err(Errno::EINVAL));
}

#[test]
fn close_turns_the_peer_unbound_and_clears_pending() {
    let mut w = World::new(1023);
    let (d1_port, d2_port) = connect(&mut w);
    assert!(w.pending(2, d2_port));
    w.shared(2).evtchn_mask[0] |= 1 << d2_port.get();
    assert_eq!(close(&mut w, 2, d2_port.get()), Ok(()));
    assert_eq!(w.binding(2, d2_port), Binding::Free);
    assert!(!w.pending(2, d2_port), "a closed port is not pending");
    assert!(two_level::is_masked(&w.shared(2).evtchn_mask, d2_port), "the mask is the guest's");
    assert_eq!(w.binding(1, d1_port), Binding::Unbound { remote: 2 }, "offered back to the closer");
    assert_eq!(close(&mut w, 2, d2_port.get()), Err(Errno::EINVAL), "closing twice");
    // The closer can bind again.
    let (again, _) = bind_interdomain(&mut w, 2, 1, d1_port.get()).unwrap();
    assert_eq!(again, d2_port);
    // Closing the other end: now d2's port is offered to d1.
    assert_eq!(close(&mut w, 1, d1_port.get()), Ok(()));
    assert_eq!(w.binding(2, d2_port), Binding::Unbound { remote: 1 });
}

#[test]
fn close_errors() {
    let mut w = World::new(1023);
    assert_eq!(close(&mut w, 1, 0), Err(Errno::EINVAL), "reserved port 0");
    assert_eq!(close(&mut w, 1, 5), Err(Errno::EINVAL), "free port");
    assert_eq!(close(&mut w, 1, 64), Err(Errno::EINVAL), "beyond the valid ports");
    assert_eq!(close(&mut w, 1, 4096), Err(Errno::EINVAL));
    assert_eq!(close(&mut w, 1, u32::MAX), Err(Errno::EINVAL));
    let ipi = bind_ipi(&mut w, 1, 0).unwrap();
    assert_eq!(close(&mut w, 1, ipi.get()), Ok(()));
    assert_eq!(close(&mut w, 1, ipi.get()), Err(Errno::EINVAL));
}

// ---------------------------------------------------------------------------
// VIRQs, IPIs, vCPUs.

#[test]
fn bind_virq_errors_in_xens_order() {
    let mut w = World::new(1023);
    assert_eq!(bind_virq(&mut w, 1, NR_VIRQS, 0), Err(Errno::EINVAL), "no such VIRQ");
    assert_eq!(bind_virq(&mut w, 1, u32::MAX, 0), Err(Errno::EINVAL));
    assert_eq!(bind_virq(&mut w, 1, VIRQ_DOM_EXC, 1), Err(Errno::EINVAL), "a global VIRQ only on vCPU 0");
    assert_eq!(bind_virq(&mut w, 1, VIRQ_DOM_EXC, 9), Err(Errno::EINVAL), "EINVAL before ENOENT");
    assert_eq!(bind_virq(&mut w, 1, VIRQ_TIMER, 3), Err(Errno::ENOENT), "no vCPU 3");
    assert_eq!(bind_virq(&mut w, 1, VIRQ_TIMER, 0), Ok(p(1)));
    assert_eq!(bind_virq(&mut w, 1, VIRQ_TIMER, 1), Ok(p(2)), "per vCPU: one each");
    assert_eq!(bind_virq(&mut w, 1, VIRQ_TIMER, 0), Err(Errno::EEXIST));
    assert_eq!(bind_virq(&mut w, 1, VIRQ_DOM_EXC, 0), Ok(p(3)));
    assert_eq!(bind_virq(&mut w, 1, VIRQ_DOM_EXC, 0), Err(Errno::EEXIST));
    assert_eq!(bind_virq(&mut w, 1, VIRQ_ARCH_0, 0), Ok(p(4)), "any number below NR_VIRQS");
    assert_eq!(w.ch(1).virq_port(VIRQ_TIMER, 1), Some(p(2)));
    close(&mut w, 1, 1).unwrap();
    assert_eq!(w.ch(1).virq_port(VIRQ_TIMER, 0), None);
    assert_eq!(bind_virq(&mut w, 1, VIRQ_TIMER, 0), Ok(p(1)), "unbound by close");
}

#[test]
fn raise_virq_finds_the_bound_port() {
    let mut w = World::new(1023);
    let timer1 = bind_virq(&mut w, 1, VIRQ_TIMER, 1).unwrap();
    let exc = bind_virq(&mut w, 1, VIRQ_DOM_EXC, 0).unwrap();
    let d = &mut w.doms[1];
    let s = d.channels.raise_virq(&mut *d.shared, VIRQ_TIMER, 1);
    assert_eq!(s, Some(Signal { dom: 1, vcpu: 1, port: timer1, upcall: true }));
    assert_eq!(d.channels.raise_virq(&mut *d.shared, VIRQ_TIMER, 0), None, "not bound on vCPU 0");
    assert_eq!(d.channels.raise_virq(&mut *d.shared, VIRQ_TIMER, 7), None, "no such vCPU");
    assert_eq!(d.channels.raise_virq(&mut *d.shared, VIRQ_CONSOLE, 0), None, "not bound");
    assert_eq!(d.channels.raise_virq(&mut *d.shared, NR_VIRQS, 0), None);
    // A global VIRQ goes to the vCPU its port notifies, whatever vCPU is named.
    let s = d.channels.raise_virq(&mut *d.shared, VIRQ_DOM_EXC, 2);
    assert_eq!(s, Some(Signal { dom: 1, vcpu: 0, port: exc, upcall: true }));
    assert_eq!(bind_vcpu(&mut w, 1, exc.get(), 2), Ok(()));
    let d = &mut w.doms[1];
    d.shared.evtchn_pending = [0; 64];
    let s = d.channels.raise_virq(&mut *d.shared, VIRQ_DOM_EXC, 0);
    assert_eq!(s, Some(Signal { dom: 1, vcpu: 2, port: exc, upcall: true }));
    assert_eq!(w.ch(1).virq_port(VIRQ_DOM_EXC, 0), Some(exc), "still recorded on vCPU 0");
    close(&mut w, 1, exc.get()).unwrap();
    assert_eq!(w.ch(1).virq_port(VIRQ_DOM_EXC, 0), None);
}

#[test]
fn bind_vcpu_rules() {
    let mut w = World::new(1023);
    let unbound = alloc_unbound(&mut w, 1, DOMID_SELF, 2).unwrap();
    let ipi = bind_ipi(&mut w, 1, 1).unwrap();
    let timer = bind_virq(&mut w, 1, VIRQ_TIMER, 0).unwrap();
    let exc = bind_virq(&mut w, 1, VIRQ_DOM_EXC, 0).unwrap();
    assert_eq!(bind_vcpu(&mut w, 1, 99, 3), Err(Errno::ENOENT), "ENOENT before EINVAL");
    assert_eq!(bind_vcpu(&mut w, 1, 99, 1), Err(Errno::EINVAL), "beyond the valid ports");
    assert_eq!(bind_vcpu(&mut w, 1, 9, 1), Err(Errno::EINVAL), "free");
    assert_eq!(bind_vcpu(&mut w, 1, 0, 1), Err(Errno::EINVAL), "reserved");
    assert_eq!(bind_vcpu(&mut w, 1, ipi.get(), 2), Err(Errno::EINVAL), "IPIs stay put");
    assert_eq!(bind_vcpu(&mut w, 1, timer.get(), 2), Err(Errno::EINVAL), "per-vCPU VIRQs stay put");
    assert_eq!(bind_vcpu(&mut w, 1, exc.get(), 2), Ok(()));
    assert_eq!(bind_vcpu(&mut w, 1, unbound.get(), 2), Ok(()));
    assert_eq!(w.ch(1).notify_vcpu(unbound), 2);
    let (local, _) = bind_interdomain(&mut w, 2, 1, unbound.get()).unwrap();
    assert_eq!(bind_vcpu(&mut w, 2, local.get(), 0), Ok(()), "interdomain");
    assert_eq!(bind_vcpu(&mut w, 2, local.get(), 1), Err(Errno::ENOENT), "d2 has one vCPU");
    // Closing resets the vCPU to 0.
    close(&mut w, 1, unbound.get()).unwrap();
    assert_eq!(w.ch(1).notify_vcpu(unbound), 0);
}

#[test]
fn bind_ipi_errors() {
    let mut w = World::new(1023);
    assert_eq!(bind_ipi(&mut w, 1, 3), Err(Errno::ENOENT));
    assert_eq!(bind_ipi(&mut w, 1, u32::MAX), Err(Errno::ENOENT));
    assert_eq!(bind_ipi(&mut w, 1, 2), Ok(p(1)));
    assert_eq!(w.ch(1).notify_vcpu(p(1)), 2);
}

// ---------------------------------------------------------------------------
// Status and reset.

#[test]
fn status_reports_each_binding_as_xen_does() {
    let mut w = World::new(1023);
    let (d1_port, d2_port) = connect(&mut w);
    let unbound = alloc_unbound(&mut w, 1, DOMID_SELF, 0).unwrap();
    let virq = bind_virq(&mut w, 1, VIRQ_TIMER, 1).unwrap();
    let ipi = bind_ipi(&mut w, 1, 2).unwrap();
    let query = |w: &mut World, caller, dom, port: u32| {
        let mut out = EvtchnStatus { dom, port, u: [0xAA; 8], ..EvtchnStatus::default() };
        status(w, caller, dom, port).map(|s| {
            s.write_to(&mut out);
            out
        })
    };
    let s = query(&mut w, 1, DOMID_SELF, d1_port.get()).unwrap();
    assert_eq!((s.status, s.vcpu, s.u_interdomain_dom(), s.u_interdomain_port()), (2, 0, 2, d2_port.get()));
    assert_eq!((s.dom, s.port), (DOMID_SELF, d1_port.get()), "IN fields untouched");
    let s = query(&mut w, 1, DOMID_SELF, unbound.get()).unwrap();
    assert_eq!((s.status, s.u_unbound_dom()), (1, 0));
    let s = query(&mut w, 1, 1, virq.get()).unwrap();
    assert_eq!((s.status, s.vcpu, s.u_virq()), (4, 1, VIRQ_TIMER));
    let s = query(&mut w, 1, DOMID_SELF, ipi.get()).unwrap();
    assert_eq!((s.status, s.vcpu, s.u), (5, 2, [0xAA; 8]), "u untouched for an IPI");
    let s = query(&mut w, 1, DOMID_SELF, 0).unwrap();
    assert_eq!((s.status, s.vcpu, s.u), (0, 0, [0xAA; 8]), "port 0 is closed");
    let s = query(&mut w, 1, DOMID_SELF, 30).unwrap();
    assert_eq!(s.status, 0, "a valid free port is closed");
    // Other domains.
    assert_eq!(query(&mut w, 0, 1, ipi.get()).map(|s| s.status), Ok(5), "the privileged may look");
    assert_eq!(query(&mut w, 1, 2, d2_port.get()), Err(Errno::EPERM));
    assert_eq!(query(&mut w, 1, 2, 64), Err(Errno::EINVAL), "EINVAL before EPERM");
    assert_eq!(query(&mut w, 1, 9, 1), Err(Errno::ESRCH));
    assert_eq!(query(&mut w, 1, DOMID_SELF, 64), Err(Errno::EINVAL));
}

#[test]
fn reset_closes_everything_of_a_domain() {
    let mut w = World::new(1023);
    let (d1_port, _) = connect(&mut w);
    let (d1_port2, _) = connect(&mut w);
    bind_virq(&mut w, 2, VIRQ_TIMER, 0).unwrap();
    let ipi = bind_ipi(&mut w, 2, 0).unwrap();
    alloc_unbound(&mut w, 2, DOMID_SELF, 0).unwrap();
    send(&mut w, 2, ipi.get()).unwrap();
    assert!(w.pending(2, ipi));
    // Permission: self, or privileged and the target paused.
    assert_eq!(reset(&mut w, 1, 2), Err(Errno::EPERM));
    assert_eq!(reset(&mut w, 0, 2), Err(Errno::EINVAL), "not paused");
    assert_eq!(reset(&mut w, 0, 8), Err(Errno::ESRCH));
    assert_eq!(w.ch(2).bound().count(), 5, "refusals changed nothing");
    assert_eq!(reset(&mut w, 2, DOMID_SELF), Ok(()));
    assert_eq!(w.ch(2).bound().count(), 0);
    assert_eq!(w.binding(2, p(0)), Binding::Reserved);
    assert_eq!(w.shared(2).evtchn_pending, [0; 64], "closed ports are not pending");
    assert_eq!(w.binding(1, d1_port), Binding::Unbound { remote: 2 });
    assert_eq!(w.binding(1, d1_port2), Binding::Unbound { remote: 2 });
    assert_eq!(bind_virq(&mut w, 2, VIRQ_TIMER, 0), Ok(p(1)), "VIRQs unbound too");
    // The privileged domain resets a paused one.
    w.doms[1].paused = true;
    assert_eq!(reset(&mut w, 0, 1), Ok(()));
    assert_eq!(w.ch(1).bound().count(), 0);
}

// ---------------------------------------------------------------------------
// The 2-level protocol.

#[test]
fn set_pending_sets_the_selector_and_the_upcall_once() {
    let mut s = SharedInfo::zeroed();
    assert_eq!(two_level::set_pending(s.words(1), p(130)), Delivery::Upcall);
    assert_eq!(s.evtchn_pending[2], 1 << 2);
    assert_eq!(s.vcpu_info[1].evtchn_pending_sel, 1 << 2, "selector bit port / 64");
    assert_eq!(s.vcpu_info[1].evtchn_upcall_pending, 1);
    assert_eq!(s.vcpu_info[0], Default::default(), "only the notified vCPU");
    let snapshot = s;
    assert_eq!(two_level::set_pending(s.words(1), p(130)), Delivery::None, "already pending: no second kick");
    assert_eq!(s, snapshot);
    assert_eq!(two_level::set_pending(s.words(1), p(131)), Delivery::Pending, "selector already set");
    assert_eq!(s.evtchn_pending[2], 0b1100);
    assert_eq!(two_level::set_pending(s.words(1), p(5)), Delivery::Pending, "upcall already pending");
    assert_eq!(s.vcpu_info[1].evtchn_pending_sel, 0b101);
    // The guest handles its events; the next one kicks again.
    s.vcpu_info[1].evtchn_upcall_pending = 0;
    s.vcpu_info[1].evtchn_pending_sel = 0;
    s.evtchn_pending = [0; 64];
    assert_eq!(two_level::set_pending(s.words(1), p(4095)), Delivery::Upcall);
    assert_eq!(s.vcpu_info[1].evtchn_pending_sel, 1 << 63);
}

#[test]
fn masked_ports_stay_out_of_the_selector_until_unmasked() {
    let mut s = SharedInfo::zeroed();
    s.evtchn_mask[1] = 1 << 3; // port 67
    assert_eq!(two_level::set_pending(s.words(0), p(67)), Delivery::Pending);
    assert_eq!(s.evtchn_pending[1], 1 << 3);
    assert_eq!(s.vcpu_info[0].evtchn_pending_sel, 0, "masked: no selector");
    assert_eq!(s.vcpu_info[0].evtchn_upcall_pending, 0, "masked: no upcall");
    assert_eq!(two_level::unmask(s.words(0), p(67)), Delivery::Upcall, "unmask re-raises");
    assert_eq!(s.evtchn_mask[1], 0);
    assert_eq!(s.vcpu_info[0].evtchn_pending_sel, 1 << 1);
    assert_eq!(s.vcpu_info[0].evtchn_upcall_pending, 1);
    // Unmasking a port that was not masked re-raises nothing (Xen tests and
    // clears the mask bit), even if it is pending and the guest cleared
    // its selector.
    s.vcpu_info[0].evtchn_pending_sel = 0;
    s.vcpu_info[0].evtchn_upcall_pending = 0;
    assert_eq!(two_level::unmask(s.words(0), p(67)), Delivery::None);
    assert_eq!(s.vcpu_info[0].evtchn_pending_sel, 0);
    // Masked but not pending: the mask clears, nothing else.
    s.evtchn_mask[0] = 1;
    assert_eq!(two_level::unmask(s.words(0), p(0)), Delivery::None);
    assert_eq!(s.evtchn_mask[0], 0);
    // Masked and pending, selector already set by another port: no upcall.
    s.evtchn_mask[1] = 1 << 3;
    s.vcpu_info[0].evtchn_pending_sel = 1 << 1;
    assert_eq!(two_level::unmask(s.words(0), p(67)), Delivery::None);
    assert_eq!(s.vcpu_info[0].evtchn_upcall_pending, 0);
}

#[test]
fn upcall_due_needs_pending_and_no_mask() {
    let mut v = abi::shared_info::VcpuInfo::default();
    assert!(!two_level::upcall_due(&v));
    v.evtchn_upcall_pending = 1;
    assert!(two_level::upcall_due(&v));
    v.evtchn_upcall_mask = 1;
    assert!(!two_level::upcall_due(&v));
    v.evtchn_upcall_pending = 0;
    assert!(!two_level::upcall_due(&v));
}

#[test]
fn the_upcall_flag_is_bit_zero() {
    // Xen test-and-sets bit 0 of evtchn_upcall_pending, so a guest-written
    // 2 still gets a kick.
    let mut s = SharedInfo::zeroed();
    s.vcpu_info[0].evtchn_upcall_pending = 2;
    assert_eq!(two_level::set_pending(s.words(0), p(1)), Delivery::Upcall);
    assert_eq!(s.vcpu_info[0].evtchn_upcall_pending, 3);
}

#[test]
fn a_vcpu_without_vcpu_info_only_gets_the_pending_bit() {
    let mut s = SharedInfo::zeroed();
    assert_eq!(two_level::set_pending(s.words(40), p(9)), Delivery::Pending);
    assert_eq!(s.evtchn_pending[0], 1 << 9);
    assert!(s.vcpu_info.iter().all(|v| v.evtchn_pending_sel == 0 && v.evtchn_upcall_pending == 0));
}

#[test]
fn unmask_op_re_raises_on_the_ports_vcpu() {
    let mut w = World::new(1023);
    let ipi = bind_ipi(&mut w, 1, 2).unwrap();
    w.shared(1).evtchn_mask[0] = 1 << ipi.get();
    assert_eq!(send(&mut w, 1, ipi.get()), Ok(Some(Signal { dom: 1, vcpu: 2, port: ipi, upcall: false })));
    assert_eq!(w.shared(1).vcpu_info[2].evtchn_upcall_pending, 0);
    assert_eq!(unmask(&mut w, 1, ipi.get()), Ok(Some(Signal { dom: 1, vcpu: 2, port: ipi, upcall: true })));
    assert_eq!(w.shared(1).vcpu_info[2].evtchn_upcall_pending, 1);
    assert_eq!(unmask(&mut w, 1, 63), Ok(None), "any valid port, even free");
    assert_eq!(unmask(&mut w, 1, 64), Err(Errno::EINVAL));
}

// ---------------------------------------------------------------------------
// Randomized: operations across three domains, invariants after each step.

/// The shared generator, drawing `u32`s for ports and vCPUs.
struct Rng(crate::testing::XorShift);

impl Rng {
    fn below(&mut self, n: u32) -> u32 {
        self.0.below(u64::from(n)) as u32
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        self.0.pick(items)
    }
}

/// Checks every invariant of the tables and the event state.
///
/// The simulated guest follows the protocol: it masks ports by setting
/// mask bits, unmasks them only with `EVTCHNOP_unmask`, never sets pending
/// bits, and handles events as Linux does (clear `evtchn_upcall_pending`,
/// take the selector, clear the pending unmasked bits of the selected
/// words). Under those rules the hypervisor guarantees:
///
/// - no lost event: every pending unmasked port has its selector bit set
///   in some vCPU whose `evtchn_upcall_pending` is set;
/// - a set selector word implies `evtchn_upcall_pending` on that vCPU.
///
/// A selector bit whose word has no pending port is allowed (closing a
/// port clears its pending bit, never the selector: the guest scans and
/// finds nothing), so "selector set ⇒ some port pending" is not checked.
///
/// `full` also checks the ports above the valid range (all free).
fn check(w: &World, full: bool) {
    for (id, d) in w.doms.iter().enumerate() {
        let id = id as DomId;
        let t = &*d.channels;
        let s = &*d.shared;
        assert_eq!(t.domain(), id);
        assert_eq!(t.binding(p(0)), Binding::Reserved);
        let valid = t.valid_ports();
        assert!(valid % PORTS_PER_BUCKET == 0 && (64..=NR_PORTS).contains(&valid));
        let mut virq_ports = 0;
        let end = if full { NR_PORTS } else { valid };
        for raw in 0..end {
            let port = p(raw);
            let b = t.binding(port);
            let vcpu = t.notify_vcpu(port);
            assert!(vcpu < t.vcpus(), "d{id} port {raw}: vCPU {vcpu}");
            if b != Binding::Free && b != Binding::Reserved {
                assert!(raw < valid && raw <= t.max_port(), "d{id} port {raw} bound out of range");
            }
            match b {
                Binding::Free => {
                    assert_eq!(vcpu, 0, "d{id} port {raw}: free ports notify vCPU 0");
                    assert!(!two_level::is_pending(&s.evtchn_pending, port), "d{id} port {raw}: free but pending");
                }
                Binding::Reserved => assert_eq!(raw, 0),
                Binding::Unbound { .. } | Binding::Ipi => {}
                Binding::Interdomain { remote, port: rport } => {
                    let peer = &w.doms[usize::from(remote)].channels;
                    assert_eq!(
                        peer.binding(rport),
                        Binding::Interdomain { remote: id, port },
                        "d{id} port {raw} -> d{remote} port {}: not symmetric",
                        rport.get()
                    );
                }
                Binding::Virq { virq } => {
                    virq_ports += 1;
                    let virq = u32::from(virq);
                    let at = if virq_is_global(virq) { 0 } else { vcpu };
                    assert_eq!(t.virq_port(virq, at), Some(port), "d{id} port {raw}: VIRQ {virq} not mapped");
                }
            }
        }
        let mut mapped = 0;
        for vcpu in 0..MAX_VCPUS as u32 {
            for virq in 0..NR_VIRQS {
                if let Some(port) = t.virq_port(virq, vcpu) {
                    mapped += 1;
                    assert_eq!(t.binding(port), Binding::Virq { virq: virq as u16 });
                    if virq_is_global(virq) {
                        assert_eq!(vcpu, 0);
                    } else {
                        assert_eq!(t.notify_vcpu(port), vcpu);
                    }
                }
            }
        }
        assert_eq!(mapped, virq_ports, "d{id}: a VIRQ port mapped twice or not at all");
        // The event state.
        for v in &s.vcpu_info {
            if v.evtchn_pending_sel != 0 {
                assert_eq!(v.evtchn_upcall_pending & 1, 1, "d{id}: selector without upcall");
            }
        }
        for word in 0..64 {
            let live = s.evtchn_pending[word] & !s.evtchn_mask[word];
            if live != 0 {
                let seen = s.vcpu_info[..t.vcpus() as usize]
                    .iter()
                    .any(|v| v.evtchn_pending_sel & (1 << word) != 0 && v.evtchn_upcall_pending & 1 == 1);
                assert!(seen, "d{id}: word {word} has pending unmasked ports {live:#x} but no selector");
            }
        }
    }
}

/// The lowest free port of `t` (what the next allocation must return).
fn lowest_free(t: &EventChannels) -> Option<Port> {
    (0..=t.max_port()).map(p).find(|&port| t.binding(port) == Binding::Free)
}

fn upcall_flags(w: &World) -> Vec<(DomId, u32, bool)> {
    let mut flags = Vec::new();
    for (id, d) in w.doms.iter().enumerate() {
        for v in 0..d.channels.vcpus() {
            flags.push((id as DomId, v, d.shared.vcpu_info[v as usize].evtchn_upcall_pending & 1 == 1));
        }
    }
    flags
}

/// One random step's result, the signal it reported, and the port it
/// allocated (with its domain).
type StepOutcome = (Result<(), Errno>, Option<Signal>, Option<(DomId, Port)>);

#[test]
fn random_operations_keep_the_invariants() {
    let mut w = World::new(20);
    let mut rng = Rng(crate::testing::XorShift(0x9e37_79b9_7f4a_7c15));
    let mut counts = [0u32; 16];
    let mut errors = 0u32;
    let mut seen = std::collections::BTreeSet::new();
    for step in 0..20_000 {
        let caller = rng.below(3) as DomId;
        let dom_arg = |rng: &mut Rng| rng.pick(&[0, 1, 2, 0, 1, 2, DOMID_SELF, DOMID_SELF, 3, DOMID_IO]);
        // A port argument: mostly one of `dom`'s bound or recent ports.
        let port_arg = |rng: &mut Rng, w: &World, dom: u16| -> u32 {
            let d = if dom == DOMID_SELF { caller } else { dom };
            match rng.below(8) {
                0 => rng.pick(&[0, 63, 64, 4095, 4096, u32::MAX]),
                1 => rng.below(140),
                _ => match w.doms.get(usize::from(d)) {
                    Some(td) => {
                        let bound: Vec<u32> = td.channels.bound().map(|(p, _, _)| p.get()).collect();
                        if bound.is_empty() {
                            rng.below(8)
                        } else {
                            rng.pick(&bound)
                        }
                    }
                    None => rng.below(8),
                },
            }
        };
        let before = w.clone();
        let flags_before = upcall_flags(&w);
        let op = rng.below(16);
        let own_port = port_arg(&mut rng, &w, caller);
        counts[op as usize] += 1;
        let (result, signal, allocated): StepOutcome = match op {
            0 | 1 => {
                let dom = dom_arg(&mut rng);
                let remote = dom_arg(&mut rng);
                let r = alloc_unbound(&mut w, caller, dom, remote);
                let target = if dom == DOMID_SELF { caller } else { dom };
                (r.map(|_| ()), None, r.ok().map(|port| (target, port)))
            }
            2 | 3 => {
                let rdom = dom_arg(&mut rng);
                // Prefer a port actually offered to the caller.
                let r = if dom_arg(&mut rng) == 0 { 0 } else { 1 };
                let rd = if rdom == DOMID_SELF { caller } else { rdom };
                let offered: Vec<u32> = w
                    .doms
                    .get(usize::from(rd))
                    .map(|d| {
                        d.channels
                            .bound()
                            .filter(|&(_, b, _)| b == Binding::Unbound { remote: caller })
                            .map(|(p, _, _)| p.get())
                            .collect()
                    })
                    .unwrap_or_default();
                let rport = if r == 1 && !offered.is_empty() { rng.pick(&offered) } else { port_arg(&mut rng, &w, rd) };
                match bind_interdomain(&mut w, caller, rdom, rport) {
                    Ok((port, s)) => (Ok(()), s, Some((caller, port))),
                    Err(e) => (Err(e), None, None),
                }
            }
            4 => {
                let r = bind_virq(&mut w, caller, rng.below(NR_VIRQS + 2), rng.below(4));
                (r.map(|_| ()), None, r.ok().map(|port| (caller, port)))
            }
            5 => {
                let r = bind_ipi(&mut w, caller, rng.below(4));
                (r.map(|_| ()), None, r.ok().map(|port| (caller, port)))
            }
            6 => (close(&mut w, caller, own_port), None, None),
            7 | 8 => match send(&mut w, caller, own_port) {
                Ok(s) => (Ok(()), s, None),
                Err(e) => (Err(e), None, None),
            },
            9 => (bind_vcpu(&mut w, caller, own_port, rng.below(4)), None, None),
            10 => match unmask(&mut w, caller, own_port) {
                Ok(s) => (Ok(()), s, None),
                Err(e) => (Err(e), None, None),
            },
            11 => {
                // The guest masks a port.
                let port = rng.below(140);
                w.shared(caller).evtchn_mask[(port / 64) as usize] |= 1 << (port % 64);
                (Ok(()), None, None)
            }
            12 => {
                // The guest handles its events on one vCPU.
                let d = &mut w.doms[usize::from(caller)];
                let v = rng.below(d.channels.vcpus()) as usize;
                let s = &mut *d.shared;
                s.vcpu_info[v].evtchn_upcall_pending = 0;
                let sel = core::mem::take(&mut s.vcpu_info[v].evtchn_pending_sel);
                for word in (0..64).filter(|&i| sel & (1 << i) != 0) {
                    s.evtchn_pending[word] &= s.evtchn_mask[word];
                }
                (Ok(()), None, None)
            }
            13 => {
                let d = &mut w.doms[usize::from(caller)];
                let (virq, vcpu) = (rng.below(NR_VIRQS + 1), rng.below(4));
                (Ok(()), d.channels.raise_virq(&mut *d.shared, virq, vcpu), None)
            }
            14 => {
                let dom = dom_arg(&mut rng);
                let port = port_arg(&mut rng, &w, dom);
                match status(&mut w, caller, dom, port) {
                    Ok(st) => {
                        let d = if dom == DOMID_SELF { caller } else { dom };
                        let t = w.ch(d);
                        let port = t.lookup(port).unwrap();
                        assert_eq!(st, PortStatus { binding: t.binding(port), vcpu: t.notify_vcpu(port) });
                        (Ok(()), None, None)
                    }
                    Err(e) => (Err(e), None, None),
                }
            }
            _ => {
                // Rarely: reset (the state would otherwise fill up), or
                // toggle a pause.
                if rng.below(8) == 0 {
                    let dom = dom_arg(&mut rng);
                    (reset(&mut w, caller, dom), None, None)
                } else {
                    let d = rng.below(3) as usize;
                    w.doms[d].paused = !w.doms[d].paused;
                    (Ok(()), None, None)
                }
            }
        };
        // An error changes nothing.
        if let Err(e) = result {
            errors += 1;
            seen.insert(e.name());
            for (a, b) in w.doms.iter().zip(&before.doms) {
                assert!(
                    a.channels == b.channels && a.shared == b.shared,
                    "step {step}: op {op} failed but changed state"
                );
            }
        }
        // Allocation takes the lowest free port.
        if let Some((dom, port)) = allocated {
            assert_eq!(Some(port), lowest_free(before.ch(dom)), "step {step}: op {op}");
        }
        // A kick is reported exactly when an upcall flag went 0 -> 1.
        let raised: Vec<(DomId, u32)> =
            flags_before.iter().zip(upcall_flags(&w)).filter(|(a, b)| !a.2 && b.2).map(|(a, _)| (a.0, a.1)).collect();
        let kicked: Vec<(DomId, u32)> = signal.filter(|s| s.upcall).map(|s| (s.dom, s.vcpu)).into_iter().collect();
        assert_eq!(raised, kicked, "step {step}: op {op}");
        // Only the signalled port can have become pending.
        for (id, (a, b)) in w.doms.iter().zip(&before.doms).enumerate() {
            for word in 0..64 {
                let new = a.shared.evtchn_pending[word] & !b.shared.evtchn_pending[word];
                let expected = match signal {
                    Some(s) if usize::from(s.dom) == id && (s.port.get() / 64) as usize == word && new != 0 => {
                        1u64 << (s.port.get() % 64)
                    }
                    _ => 0,
                };
                assert_eq!(new, expected, "step {step}: op {op}: d{id} word {word} became pending unsignalled");
            }
        }
        if let Some(s) = signal {
            let d = &w.doms[usize::from(s.dom)];
            assert!(two_level::is_pending(&d.shared.evtchn_pending, s.port), "step {step}: signalled port not pending");
        }
        check(&w, step % 64 == 0);
    }
    assert!(counts.iter().all(|&c| c > 500), "every operation ran: {counts:?}");
    assert!(errors > 1000 && errors < 15_000, "a mix of failures and successes: {errors} errors");
    let all: std::collections::BTreeSet<_> = ["EEXIST", "EINVAL", "ENOENT", "ENOSPC", "EPERM", "ESRCH"].into();
    assert_eq!(seen, all, "every errno came up");
    // The domains did get busy.
    let interdomain =
        w.doms.iter().flat_map(|d| d.channels.bound()).filter(|(_, b, _)| matches!(b, Binding::Interdomain { .. }));
    assert!(interdomain.count() > 0);
}

#[test]
fn reset_in_place_equals_new() {
    let mut t = Box::new(EventChannels::new(3, 2, 100));
    t.bind_virq(abi::sched::VIRQ_TIMER, 1).unwrap();
    t.reset(5, 1, 5000);
    assert!(*t == EventChannels::new(5, 1, 5000));
    t.reset(6, 0, 7);
    assert!(*t == EventChannels::new(6, 0, 7));
}
