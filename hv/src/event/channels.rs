//! One domain's event-channel table: what each port is bound to.

use super::two_level::{self, Delivery, EventState};
use super::{virq_is_global, Binding, Port, PortStatus, Signal, MAX_VCPUS, NR_PORTS, PORTS_PER_BUCKET};
use crate::mm::frame::DomId;
use abi::errno::Errno;
use abi::sched::NR_VIRQS;

const VIRQS: usize = NR_VIRQS as usize;

/// A port's binding and the vCPU it notifies (Xen's `notify_vcpu_id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Channel {
    binding: Binding,
    vcpu: u16,
}

const FREE: Channel = Channel { binding: Binding::Free, vcpu: 0 };

/// A domain's event channels (Xen's per-domain `evtchn` buckets,
/// `valid_evtchns`, `max_evtchn_port` and each vCPU's `virq_to_evtchn`).
///
/// About 34 KiB: keep it in a static or a frame of its own rather than on
/// the hypervisor stack ([`EventChannels::new`] is `const` for that).
///
/// Invariants (checked by the randomized test): port 0 is
/// [`Binding::Reserved`]; ports at or above [`valid_ports`](Self::valid_ports)
/// are free; a VIRQ port is recorded in the VIRQ map of exactly the vCPU it
/// was bound for (vCPU 0 for a global VIRQ) and nowhere else; free ports
/// notify vCPU 0.
#[derive(Clone, PartialEq, Eq)]
pub struct EventChannels {
    dom: DomId,
    vcpus: u32,
    max_port: u16,
    /// Ports below this are valid (Xen's `valid_evtchns`): a multiple of
    /// [`PORTS_PER_BUCKET`] that only grows.
    valid: u16,
    ports: [Channel; NR_PORTS as usize],
    /// `virqs[vcpu][virq]`: the port bound to a VIRQ.
    virqs: [[Option<Port>; VIRQS]; MAX_VCPUS],
}

const _: () = assert!(core::mem::size_of::<EventChannels>() <= 36 * 1024);

impl core::fmt::Debug for EventChannels {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EventChannels")
            .field("dom", &self.dom)
            .field("vcpus", &self.vcpus)
            .field("max_port", &self.max_port)
            .field("valid", &self.valid)
            .field("bound", &self.bound().count())
            .finish_non_exhaustive()
    }
}

impl EventChannels {
    /// The table of domain `dom` with `vcpus` vCPUs (clamped to
    /// `1..=`[`MAX_VCPUS`]) whose ports may go up to `max_port` (Xen's
    /// `max_evtchn_port`, clamped to 4095; Xen gives dom0 no limit and
    /// domUs 1023 by default). Port 0 is reserved, as in Xen.
    pub const fn new(dom: DomId, vcpus: u32, max_port: u32) -> EventChannels {
        let vcpus = if vcpus == 0 {
            1
        } else if vcpus > MAX_VCPUS as u32 {
            MAX_VCPUS as u32
        } else {
            vcpus
        };
        let max_port = if max_port >= NR_PORTS { NR_PORTS - 1 } else { max_port };
        let mut ports = [FREE; NR_PORTS as usize];
        ports[0].binding = Binding::Reserved;
        EventChannels {
            dom,
            vcpus,
            max_port: max_port as u16,
            valid: PORTS_PER_BUCKET as u16,
            ports,
            virqs: [[None; VIRQS]; MAX_VCPUS],
        }
    }

    /// Makes this table what [`EventChannels::new`] with the same arguments
    /// returns, in place: the table is too big to build on a hypervisor
    /// stack and move.
    pub fn reset(&mut self, dom: DomId, vcpus: u32, max_port: u32) {
        self.dom = dom;
        self.vcpus = vcpus.clamp(1, MAX_VCPUS as u32);
        self.max_port = max_port.min(NR_PORTS - 1) as u16;
        self.valid = PORTS_PER_BUCKET as u16;
        self.ports.fill(FREE);
        self.ports[0].binding = Binding::Reserved;
        for v in self.virqs.iter_mut() {
            v.fill(None);
        }
    }

    /// The domain these channels belong to.
    pub fn domain(&self) -> DomId {
        self.dom
    }

    /// The number of vCPUs: valid vCPU ids are below it.
    pub fn vcpus(&self) -> u32 {
        self.vcpus
    }

    /// The highest port number that may be allocated.
    pub fn max_port(&self) -> u32 {
        u32::from(self.max_port)
    }

    /// Ports below this are valid (Xen's `valid_evtchns`): a port number at
    /// or above it is `-EINVAL` for every operation. It starts at 64 and
    /// grows in steps of 64 as ports are allocated, never shrinking; a
    /// valid port may be free.
    pub fn valid_ports(&self) -> u32 {
        u32::from(self.valid)
    }

    /// `raw` as a valid port of this table.
    pub fn lookup(&self, raw: u32) -> Option<Port> {
        if raw < self.valid_ports() {
            Port::new(raw)
        } else {
            None
        }
    }

    /// What `port` is bound to.
    pub fn binding(&self, port: Port) -> Binding {
        self.ports[port.index()].binding
    }

    /// The vCPU `port` notifies.
    pub fn notify_vcpu(&self, port: Port) -> u32 {
        u32::from(self.ports[port.index()].vcpu)
    }

    /// The port bound to `virq` on `vcpu` (vCPU 0 for a global VIRQ).
    pub fn virq_port(&self, virq: u32, vcpu: u32) -> Option<Port> {
        let row = self.virqs.get(usize::try_from(vcpu).ok()?)?;
        *row.get(usize::try_from(virq).ok()?)?
    }

    /// Every port in use (not free, not reserved), in order, with its
    /// binding and notified vCPU.
    pub fn bound(&self) -> impl Iterator<Item = (Port, Binding, u32)> + '_ {
        self.ports[..self.valid as usize].iter().enumerate().filter_map(|(i, c)| match c.binding {
            Binding::Free | Binding::Reserved => None,
            b => Some((Port(i as u16), b, u32::from(c.vcpu))),
        })
    }

    /// The lowest free port (Xen's `get_free_port`), or `-ENOSPC`.
    pub(super) fn free_port(&self) -> Result<Port, Errno> {
        let end = usize::from(self.max_port) + 1;
        (0..end).find(|&i| self.ports[i].binding == Binding::Free).map(|i| Port(i as u16)).ok_or(Errno::ENOSPC)
    }

    /// Binds free `port`, making its bucket valid.
    pub(super) fn install(&mut self, port: Port, binding: Binding, vcpu: u32) {
        debug_assert_eq!(self.binding(port), Binding::Free);
        let bucket_end = (port.get() / PORTS_PER_BUCKET + 1) * PORTS_PER_BUCKET;
        self.valid = self.valid.max(bucket_end as u16);
        self.ports[port.index()] = Channel { binding, vcpu: vcpu as u16 };
    }

    /// Rebinds `port` keeping its notified vCPU (the interdomain
    /// transitions Unbound ⇄ Interdomain).
    pub(super) fn rebind(&mut self, port: Port, binding: Binding) {
        self.ports[port.index()].binding = binding;
    }

    /// Frees `port` (its pending bit is the caller's to clear): removes it
    /// from the VIRQ map, and resets its vCPU to 0 as Xen does.
    pub(super) fn release(&mut self, port: Port) {
        let c = self.ports[port.index()];
        if let Binding::Virq { virq } = c.binding {
            let vcpu = if virq_is_global(virq.into()) { 0 } else { usize::from(c.vcpu) };
            self.virqs[vcpu][usize::from(virq)] = None;
        }
        self.ports[port.index()] = FREE;
    }

    /// `EVTCHNOP_bind_virq`: binds `virq` to a new port delivering to
    /// `vcpu`.
    ///
    /// Errors, in Xen's order: `-EINVAL` for `virq >= NR_VIRQS` or a global
    /// VIRQ with `vcpu != 0`; `-ENOENT` for a vCPU that does not exist;
    /// `-EEXIST` if `virq` is already bound on `vcpu`; `-ENOSPC` with no
    /// free port.
    pub fn bind_virq(&mut self, virq: u32, vcpu: u32) -> Result<Port, Errno> {
        if virq >= NR_VIRQS || (virq_is_global(virq) && vcpu != 0) {
            return Err(Errno::EINVAL);
        }
        if vcpu >= self.vcpus {
            return Err(Errno::ENOENT);
        }
        if self.virq_port(virq, vcpu).is_some() {
            return Err(Errno::EEXIST);
        }
        let port = self.free_port()?;
        self.install(port, Binding::Virq { virq: virq as u16 }, vcpu);
        self.virqs[vcpu as usize][virq as usize] = Some(port);
        Ok(port)
    }

    /// `EVTCHNOP_bind_ipi`: a new port that [`super::send`] raises on
    /// `vcpu` of this domain. `-ENOENT` for a vCPU that does not exist,
    /// `-ENOSPC` with no free port.
    pub fn bind_ipi(&mut self, vcpu: u32) -> Result<Port, Errno> {
        if vcpu >= self.vcpus {
            return Err(Errno::ENOENT);
        }
        let port = self.free_port()?;
        self.install(port, Binding::Ipi, vcpu);
        Ok(port)
    }

    /// `EVTCHNOP_bind_vcpu`: deliver `port`'s events to `vcpu` from now on.
    ///
    /// Errors, in Xen's order: `-ENOENT` for a vCPU that does not exist;
    /// `-EINVAL` for an invalid port, or one that is not unbound,
    /// interdomain or a global VIRQ (per-vCPU VIRQs and IPIs stay where
    /// they were bound).
    pub fn bind_vcpu(&mut self, port: u32, vcpu: u32) -> Result<(), Errno> {
        if vcpu >= self.vcpus {
            return Err(Errno::ENOENT);
        }
        let port = self.lookup(port).ok_or(Errno::EINVAL)?;
        match self.binding(port) {
            Binding::Unbound { .. } | Binding::Interdomain { .. } => {}
            Binding::Virq { virq } if virq_is_global(virq.into()) => {}
            _ => return Err(Errno::EINVAL),
        }
        self.ports[port.index()].vcpu = vcpu as u16;
        Ok(())
    }

    /// `EVTCHNOP_status` for a port of this table: `-EINVAL` if invalid.
    /// A valid free port, and reserved port 0, are closed.
    pub fn status(&self, port: u32) -> Result<PortStatus, Errno> {
        let port = self.lookup(port).ok_or(Errno::EINVAL)?;
        Ok(PortStatus { binding: self.binding(port), vcpu: self.notify_vcpu(port) })
    }

    /// `EVTCHNOP_unmask`: clears the mask bit of any valid port (whatever
    /// its state, as in Xen) and re-raises it to the port's vCPU if it was
    /// masked and is pending. `-EINVAL` if invalid.
    pub fn unmask(&self, state: &mut dyn EventState, port: u32) -> Result<Option<Signal>, Errno> {
        let port = self.lookup(port).ok_or(Errno::EINVAL)?;
        let vcpu = self.notify_vcpu(port);
        Ok(Signal::new(self.dom, vcpu, port, two_level::unmask(state.words(vcpu), port)))
    }

    /// Marks `port` pending for the vCPU it notifies; a [`Signal`] if that
    /// changed anything.
    pub fn raise(&self, state: &mut dyn EventState, port: Port) -> Option<Signal> {
        self.raise_on(state, port, self.notify_vcpu(port))
    }

    fn raise_on(&self, state: &mut dyn EventState, port: Port, vcpu: u32) -> Option<Signal> {
        Signal::new(self.dom, vcpu, port, two_level::set_pending(state.words(vcpu), port))
    }

    /// Raises `virq` if the domain bound it: a per-vCPU VIRQ on `vcpu`
    /// (Xen's `send_guest_vcpu_virq`), a global one through vCPU 0's binding
    /// to whichever vCPU the port notifies (`send_guest_global_virq`;
    /// `vcpu` is ignored). Nothing happens for an unbound VIRQ, an unknown
    /// VIRQ number or a vCPU that does not exist.
    pub fn raise_virq(&self, state: &mut dyn EventState, virq: u32, vcpu: u32) -> Option<Signal> {
        if virq >= NR_VIRQS {
            return None;
        }
        if virq_is_global(virq) {
            let port = self.virq_port(virq, 0)?;
            self.raise(state, port)
        } else if vcpu < self.vcpus {
            let port = self.virq_port(virq, vcpu)?;
            self.raise_on(state, port, vcpu)
        } else {
            None
        }
    }
}

impl Signal {
    fn new(dom: DomId, vcpu: u32, port: Port, delivery: Delivery) -> Option<Signal> {
        match delivery {
            Delivery::None => None,
            Delivery::Pending => Some(Signal { dom, vcpu, port, upcall: false }),
            Delivery::Upcall => Some(Signal { dom, vcpu, port, upcall: true }),
        }
    }
}
