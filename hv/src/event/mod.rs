//! Event channels: per-domain port tables, the 2-level pending/mask protocol, VIRQs.
//!
//! An event channel is a port number in a domain. It is bound to something
//! that raises it: another domain's port (interdomain), a VIRQ the
//! hypervisor raises, or an IPI from the domain itself. Raising a port sets
//! its bit in the domain's shared-info page by the 2-level rules of
//! [`two_level`], which may ask for a vCPU to be kicked.
//!
//! The semantics and errnos are Xen 4.17's (`common/event_channel.c`,
//! `common/event_2l.c`) for the 2-level ABI: 4096 ports, port 0 reserved,
//! lowest free port first. Physical IRQs and Xen-attached channels are not
//! supported.
//!
//! Layout:
//! - [`EventChannels`] (`channels.rs`): one domain's table and the
//!   operations that touch only it (`bind_virq`, `bind_ipi`, `bind_vcpu`,
//!   `status`, `unmask`, VIRQ raising);
//! - the free functions here: one per `EVTCHNOP_*`, over every domain
//!   through the [`Domains`] trait, since binding, sending, closing and
//!   resetting can touch two domains;
//! - [`two_level`]: the bit protocol over the shared-info page.
//!
//! Every operation checks all its arguments before it changes anything, so
//! an error leaves every table and page as it was. Operations that touch two
//! domains borrow them one after the other; that is sound because the
//! hypervisor runs on one CPU with no guest running (see [`two_level`] for
//! what SMP would need).

mod channels;
pub mod two_level;

#[cfg(test)]
mod tests;

pub use channels::EventChannels;
pub use two_level::{Delivery, EventState, EventWords};

use crate::mm::frame::DomId;
use abi::errno::Errno;
use abi::event_channel::{EvtchnStatus, EvtchnStatusKind};
use abi::mm::{DOMID_FIRST_RESERVED, DOMID_SELF};
use abi::sched::{VIRQ_DEBUG, VIRQ_TIMER, VIRQ_XENOPROF, VIRQ_XENPMU};

/// Ports in the 2-level ABI ([`abi::shared_info::EVTCHN_2L_NR_CHANNELS`]).
pub const NR_PORTS: u32 = abi::shared_info::EVTCHN_2L_NR_CHANNELS as u32;

/// Ports become valid in blocks of this many (Xen's `EVTCHNS_PER_BUCKET`:
/// a page of 64-byte `struct evtchn`).
pub const PORTS_PER_BUCKET: u32 = 64;

/// vCPUs a table can describe: those with a `vcpu_info` slot in the
/// shared-info page.
pub const MAX_VCPUS: usize = abi::shared_info::MAX_VIRT_CPUS;

/// An event-channel port number: always below [`NR_PORTS`].
///
/// Whether it is valid in a given domain is a separate question
/// ([`EventChannels::lookup`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(u16);

impl Port {
    /// `raw` as a port, if below [`NR_PORTS`].
    pub const fn new(raw: u32) -> Option<Port> {
        if raw < NR_PORTS {
            Some(Port(raw as u16))
        } else {
            None
        }
    }

    /// The port number.
    pub const fn get(self) -> u32 {
        self.0 as u32
    }

    const fn index(self) -> usize {
        self.0 as usize
    }
}

/// What a port is bound to (Xen's `ECS_*` states, without PIRQs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// Not in use (`ECS_FREE`).
    Free,
    /// Port 0, never used (`ECS_RESERVED`).
    Reserved,
    /// Allocated, waiting for domain `remote` to bind to it (`ECS_UNBOUND`).
    Unbound {
        /// The only domain allowed to bind.
        remote: DomId,
    },
    /// Connected to `port` of domain `remote` (`ECS_INTERDOMAIN`); that port
    /// is connected back to this one.
    Interdomain {
        /// The peer domain (possibly this one: a loopback).
        remote: DomId,
        /// The peer's port.
        port: Port,
    },
    /// Bound to a VIRQ (`ECS_VIRQ`); `u16` as in Xen's `struct evtchn`.
    Virq {
        /// The `VIRQ_*` number.
        virq: u16,
    },
    /// An inter-processor interrupt within the domain (`ECS_IPI`).
    Ipi,
}

/// A port newly raised to a vCPU: the caller wakes the vCPU if `upcall`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signal {
    /// The domain whose port it is.
    pub dom: DomId,
    /// The vCPU notified.
    pub vcpu: u32,
    /// The port.
    pub port: Port,
    /// `evtchn_upcall_pending` went from clear to set: kick the vCPU (Xen's
    /// `vcpu_kick`: unblock it if blocked). When false the port became
    /// pending (a poller on it would wake) but no new upcall is needed.
    pub upcall: bool,
}

/// What `EVTCHNOP_status` reports about a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortStatus {
    /// The binding ([`Binding::Free`] and [`Binding::Reserved`] are both
    /// reported closed).
    pub binding: Binding,
    /// The vCPU the port notifies.
    pub vcpu: u32,
}

impl PortStatus {
    /// The `EVTCHNSTAT_*` value.
    pub fn kind(&self) -> EvtchnStatusKind {
        match self.binding {
            Binding::Free | Binding::Reserved => EvtchnStatusKind::Closed,
            Binding::Unbound { .. } => EvtchnStatusKind::Unbound,
            Binding::Interdomain { .. } => EvtchnStatusKind::Interdomain,
            Binding::Virq { .. } => EvtchnStatusKind::Virq,
            Binding::Ipi => EvtchnStatusKind::Ipi,
        }
    }

    /// Writes the OUT fields the way Xen does: `status`, `vcpu`, and the
    /// union member of the state (`u` is left as the guest passed it for
    /// closed and IPI ports). `dom` and `port` are not touched.
    pub fn write_to(&self, out: &mut EvtchnStatus) {
        out.status = self.kind().into();
        out.vcpu = self.vcpu;
        match self.binding {
            Binding::Unbound { remote } => out.set_u_unbound_dom(remote),
            Binding::Interdomain { remote, port } => {
                out.set_u_interdomain_dom(remote);
                out.set_u_interdomain_port(port.get());
            }
            Binding::Virq { virq } => out.set_u_virq(virq.into()),
            Binding::Free | Binding::Reserved | Binding::Ipi => {}
        }
    }
}

/// Whether `virq` is global (one per domain, bound on vCPU 0, delivered to
/// whichever vCPU its port notifies) rather than per vCPU. Per vCPU:
/// `VIRQ_TIMER`, `VIRQ_DEBUG`, `VIRQ_XENOPROF`, `VIRQ_XENPMU`; everything
/// else, including the x86 architectural VIRQs, is global.
pub fn virq_is_global(virq: u32) -> bool {
    !matches!(virq, VIRQ_TIMER | VIRQ_DEBUG | VIRQ_XENOPROF | VIRQ_XENPMU)
}

/// One domain's event state as the operations see it.
pub struct DomainEvents<'a> {
    /// Its event-channel table.
    pub channels: &'a mut EventChannels,
    /// Its shared-info page (pending and mask bitmaps, `vcpu_info`s).
    pub state: &'a mut dyn EventState,
}

impl core::fmt::Debug for DomainEvents<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DomainEvents").field("channels", &self.channels).finish_non_exhaustive()
    }
}

/// The hypervisor's domains, as the event-channel operations need them.
pub trait Domains {
    /// Domain `dom`'s event state; `None` if there is no such domain.
    /// `channels.domain()` must be `dom`.
    fn events(&mut self, dom: DomId) -> Option<DomainEvents<'_>>;
    /// Whether `dom` is the control domain (Xen's `is_control_domain`): it
    /// may allocate, query and reset other domains' ports.
    fn is_privileged(&self, dom: DomId) -> bool;
    /// Whether `dom` is paused by its controller (Xen's
    /// `controller_pause_count`): another domain may reset its ports only
    /// then.
    fn is_paused_by_controller(&self, dom: DomId) -> bool;
}

/// `dom` as the caller named it: `DOMID_SELF` is the caller.
fn resolve(caller: DomId, dom: u16) -> DomId {
    if dom == DOMID_SELF {
        caller
    } else {
        dom
    }
}

/// Domain `dom`'s events, or `-ESRCH` (also for the reserved ids, which
/// name no domain with event channels).
fn events<D: Domains + ?Sized>(domains: &mut D, dom: DomId) -> Result<DomainEvents<'_>, Errno> {
    if dom >= DOMID_FIRST_RESERVED {
        return Err(Errno::ESRCH);
    }
    let ev = domains.events(dom).ok_or(Errno::ESRCH)?;
    debug_assert_eq!(ev.channels.domain(), dom);
    Ok(ev)
}

/// `EVTCHNOP_alloc_unbound`: a new port in `dom` that `remote_dom` may bind
/// to. `DOMID_SELF` in either means the caller; `remote_dom` is not checked
/// (as in Xen: a port offered to a domain that does not exist simply
/// cannot be bound yet).
///
/// Errors, in Xen's order: `-ESRCH` if `dom` does not exist; `-ENOSPC`
/// with no free port in `dom`; `-EPERM` if `dom` is not the caller and the
/// caller is not privileged.
pub fn alloc_unbound<D: Domains + ?Sized>(
    domains: &mut D,
    caller: DomId,
    dom: u16,
    remote_dom: u16,
) -> Result<Port, Errno> {
    let dom = resolve(caller, dom);
    let privileged = domains.is_privileged(caller);
    let ev = events(domains, dom)?;
    let port = ev.channels.free_port()?;
    if dom != caller && !privileged {
        return Err(Errno::EPERM);
    }
    ev.channels.install(port, Binding::Unbound { remote: resolve(caller, remote_dom) }, 0);
    Ok(port)
}

/// `EVTCHNOP_bind_interdomain`: connects a new port of the caller to
/// `remote_port` of `remote_dom` (`DOMID_SELF`: the caller, a loopback),
/// which must be unbound and offered to the caller. The new port notifies
/// vCPU 0 and, as in Xen, is raised at once (notifications sent to the
/// unbound remote port were dropped): the [`Signal`] says so.
///
/// Errors, in Xen's order: `-ESRCH` if `remote_dom` does not exist;
/// `-ENOSPC` with no free port in the caller; `-EINVAL` if `remote_port`
/// is not valid in `remote_dom`, not unbound, or offered to another
/// domain.
pub fn bind_interdomain<D: Domains + ?Sized>(
    domains: &mut D,
    caller: DomId,
    remote_dom: u16,
    remote_port: u32,
) -> Result<(Port, Option<Signal>), Errno> {
    let rdom = resolve(caller, remote_dom);
    events(domains, rdom)?;
    let lport = events(domains, caller)?.channels.free_port()?;
    let remote = events(domains, rdom)?;
    let rport = remote.channels.lookup(remote_port).ok_or(Errno::EINVAL)?;
    if remote.channels.binding(rport) != (Binding::Unbound { remote: caller }) {
        return Err(Errno::EINVAL);
    }
    // Checked; now change. In a loopback both ports are in one table, and
    // `lport` is still free: it was free and `rport` was not.
    remote.channels.rebind(rport, Binding::Interdomain { remote: caller, port: lport });
    let local = events(domains, caller)?;
    local.channels.install(lport, Binding::Interdomain { remote: rdom, port: rport }, 0);
    let signal = local.channels.raise(local.state, lport);
    Ok((lport, signal))
}

/// `EVTCHNOP_bind_virq` for the caller: see [`EventChannels::bind_virq`].
pub fn bind_virq<D: Domains + ?Sized>(domains: &mut D, caller: DomId, virq: u32, vcpu: u32) -> Result<Port, Errno> {
    events(domains, caller)?.channels.bind_virq(virq, vcpu)
}

/// `EVTCHNOP_bind_ipi` for the caller: see [`EventChannels::bind_ipi`].
pub fn bind_ipi<D: Domains + ?Sized>(domains: &mut D, caller: DomId, vcpu: u32) -> Result<Port, Errno> {
    events(domains, caller)?.channels.bind_ipi(vcpu)
}

/// `EVTCHNOP_bind_vcpu` for the caller: see [`EventChannels::bind_vcpu`].
pub fn bind_vcpu<D: Domains + ?Sized>(domains: &mut D, caller: DomId, port: u32, vcpu: u32) -> Result<(), Errno> {
    events(domains, caller)?.channels.bind_vcpu(port, vcpu)
}

/// `EVTCHNOP_unmask` for the caller: see [`EventChannels::unmask`].
pub fn unmask<D: Domains + ?Sized>(domains: &mut D, caller: DomId, port: u32) -> Result<Option<Signal>, Errno> {
    let ev = events(domains, caller)?;
    ev.channels.unmask(ev.state, port)
}

/// `EVTCHNOP_close`: frees one of the caller's ports and clears its pending
/// bit. The peer of an interdomain port becomes unbound, offered back to
/// the caller; a VIRQ binding is removed.
///
/// `-EINVAL` for an invalid port, a free one (closing twice) and port 0.
pub fn close<D: Domains + ?Sized>(domains: &mut D, caller: DomId, port: u32) -> Result<(), Errno> {
    close_port(domains, caller, port)
}

fn close_port<D: Domains + ?Sized>(domains: &mut D, dom: DomId, raw: u32) -> Result<(), Errno> {
    let ev = events(domains, dom)?;
    let port = ev.channels.lookup(raw).ok_or(Errno::EINVAL)?;
    let peer = match ev.channels.binding(port) {
        Binding::Free | Binding::Reserved => return Err(Errno::EINVAL),
        Binding::Interdomain { remote, port } => Some((remote, port)),
        Binding::Unbound { .. } | Binding::Virq { .. } | Binding::Ipi => None,
    };
    ev.channels.release(port);
    two_level::clear_pending(ev.state.words(0).pending, port);
    if let Some((remote, rport)) = peer {
        let peer = domains.events(remote);
        debug_assert!(peer.is_some(), "d{dom} port {raw}: interdomain peer d{remote} is gone");
        if let Some(peer) = peer {
            debug_assert_eq!(peer.channels.binding(rport), Binding::Interdomain { remote: dom, port });
            peer.channels.rebind(rport, Binding::Unbound { remote: dom });
        }
    }
    Ok(())
}

/// `EVTCHNOP_send` on one of the caller's ports: an interdomain port raises
/// its peer (in the peer's domain, to the vCPU the peer port notifies), an
/// IPI port raises itself, an unbound port drops the event silently.
///
/// `-EINVAL` for an invalid port, a free one, port 0 and a VIRQ port.
pub fn send<D: Domains + ?Sized>(domains: &mut D, caller: DomId, port: u32) -> Result<Option<Signal>, Errno> {
    let ev = events(domains, caller)?;
    let port = ev.channels.lookup(port).ok_or(Errno::EINVAL)?;
    match ev.channels.binding(port) {
        Binding::Interdomain { remote, port: rport } => {
            let peer = domains.events(remote);
            debug_assert!(peer.is_some(), "d{caller}: interdomain peer d{remote} is gone");
            Ok(peer.and_then(|p| p.channels.raise(p.state, rport)))
        }
        Binding::Ipi => Ok(ev.channels.raise(ev.state, port)),
        Binding::Unbound { .. } => Ok(None),
        Binding::Free | Binding::Reserved | Binding::Virq { .. } => Err(Errno::EINVAL),
    }
}

/// `EVTCHNOP_status`: what `port` of `dom` (`DOMID_SELF`: the caller) is
/// bound to.
///
/// Errors, in Xen's order: `-ESRCH` if `dom` does not exist; `-EINVAL` if
/// the port is not valid there; `-EPERM` if `dom` is not the caller and the
/// caller is not privileged.
pub fn status<D: Domains + ?Sized>(domains: &mut D, caller: DomId, dom: u16, port: u32) -> Result<PortStatus, Errno> {
    let dom = resolve(caller, dom);
    let privileged = domains.is_privileged(caller);
    let status = events(domains, dom)?.channels.status(port)?;
    if dom != caller && !privileged {
        return Err(Errno::EPERM);
    }
    Ok(status)
}

/// `EVTCHNOP_reset`: closes every port of `dom` (`DOMID_SELF`: the caller),
/// as [`close`] would one by one.
///
/// Errors, in Xen's order: `-ESRCH` if `dom` does not exist; `-EPERM` if
/// it is not the caller and the caller is not privileged; `-EINVAL` if it
/// is not the caller and not paused by its controller.
pub fn reset<D: Domains + ?Sized>(domains: &mut D, caller: DomId, dom: u16) -> Result<(), Errno> {
    let dom = resolve(caller, dom);
    events(domains, dom)?;
    if dom != caller {
        if !domains.is_privileged(caller) {
            return Err(Errno::EPERM);
        }
        if !domains.is_paused_by_controller(dom) {
            return Err(Errno::EINVAL);
        }
    }
    close_all(domains, dom);
    Ok(())
}

/// Closes every port of `dom` (reset, and domain destruction: a domain's
/// ports must be closed before it leaves [`Domains`], so that no peer is
/// left pointing at it). Does nothing if `dom` does not exist.
pub fn close_all<D: Domains + ?Sized>(domains: &mut D, dom: DomId) {
    let Ok(ev) = events(domains, dom) else { return };
    let valid = ev.channels.valid_ports();
    for port in 1..valid {
        // Free ports answer -EINVAL: nothing to do for them.
        let _ = close_port(domains, dom, port);
    }
}
