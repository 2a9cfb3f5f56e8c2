//! `event_channel_op`: creating, binding, signalling and closing event channels.
//!
//! The 2-level pending and mask bitmaps live in
//! [`crate::shared_info::SharedInfo`]; VIRQ numbers are in [`crate::sched`].

use crate::raw;

/// Bind to a port another domain allocated ([`EvtchnBindInterdomain`]).
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
/// Bind a VIRQ to a new port ([`EvtchnBindVirq`]).
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
/// Bind a physical IRQ to a new port ([`EvtchnBindPirq`]).
pub const EVTCHNOP_BIND_PIRQ: u32 = 2;
/// Close a port ([`EvtchnClose`]).
pub const EVTCHNOP_CLOSE: u32 = 3;
/// Signal a port's remote end ([`EvtchnSend`]).
pub const EVTCHNOP_SEND: u32 = 4;
/// Query a port ([`EvtchnStatus`]).
pub const EVTCHNOP_STATUS: u32 = 5;
/// Allocate a port another domain may bind to ([`EvtchnAllocUnbound`]).
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
/// Bind a new IPI port ([`EvtchnBindIpi`]).
pub const EVTCHNOP_BIND_IPI: u32 = 7;
/// Deliver a port's events to another vCPU ([`EvtchnBindVcpu`]).
pub const EVTCHNOP_BIND_VCPU: u32 = 8;
/// Unmask a port, re-raising it if pending ([`EvtchnUnmask`]).
pub const EVTCHNOP_UNMASK: u32 = 9;
/// Close all of a domain's ports ([`EvtchnReset`]).
pub const EVTCHNOP_RESET: u32 = 10;
/// FIFO ABI: register a control block.
pub const EVTCHNOP_INIT_CONTROL: u32 = 11;
/// FIFO ABI: add an event-array page.
pub const EVTCHNOP_EXPAND_ARRAY: u32 = 12;
/// FIFO ABI: set a port's priority.
pub const EVTCHNOP_SET_PRIORITY: u32 = 13;

/// `evtchn_bind_pirq.flags`: the PIRQ may be shared.
pub const BIND_PIRQ_WILL_SHARE: u32 = 1;

/// Port status: not in use.
pub const EVTCHNSTAT_CLOSED: u32 = 0;
/// Port status: waiting for an interdomain connection.
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
/// Port status: connected to a remote domain.
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
/// Port status: bound to a physical IRQ.
pub const EVTCHNSTAT_PIRQ: u32 = 3;
/// Port status: bound to a VIRQ.
pub const EVTCHNSTAT_VIRQ: u32 = 4;
/// Port status: bound to an IPI.
pub const EVTCHNSTAT_IPI: u32 = 5;

abi_enum! {
    /// What a port is bound to (`EVTCHNSTAT_*`).
    pub enum EvtchnStatusKind: u32 {
        /// [`EVTCHNSTAT_CLOSED`].
        Closed = EVTCHNSTAT_CLOSED,
        /// [`EVTCHNSTAT_UNBOUND`].
        Unbound = EVTCHNSTAT_UNBOUND,
        /// [`EVTCHNSTAT_INTERDOMAIN`].
        Interdomain = EVTCHNSTAT_INTERDOMAIN,
        /// [`EVTCHNSTAT_PIRQ`].
        Pirq = EVTCHNSTAT_PIRQ,
        /// [`EVTCHNSTAT_VIRQ`].
        Virq = EVTCHNSTAT_VIRQ,
        /// [`EVTCHNSTAT_IPI`].
        Ipi = EVTCHNSTAT_IPI,
    }
}

/// `struct evtchn_alloc_unbound` (8 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EvtchnAllocUnbound {
    /// IN: domain the port is allocated in.
    pub dom: u16,
    /// IN: domain allowed to bind to it.
    pub remote_dom: u16,
    /// OUT: the new port.
    pub port: u32,
}

assert_layout!(EvtchnAllocUnbound, size = 8, align = 4, { dom @ 0, remote_dom @ 2, port @ 4 });

/// `struct evtchn_bind_interdomain` (12 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EvtchnBindInterdomain {
    /// IN: remote domain.
    pub remote_dom: u16,
    /// Padding (implicit in C).
    pub _pad0: u16,
    /// IN: remote port (allocated unbound for this domain).
    pub remote_port: u32,
    /// OUT: the new local port.
    pub local_port: u32,
}

assert_layout!(EvtchnBindInterdomain, size = 12, align = 4, {
    remote_dom @ 0, _pad0 @ 2, remote_port @ 4, local_port @ 8,
});

/// `struct evtchn_bind_virq` (12 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EvtchnBindVirq {
    /// IN: `VIRQ_*`.
    pub virq: u32,
    /// IN: vCPU to deliver to.
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: u32,
}

assert_layout!(EvtchnBindVirq, size = 12, align = 4, { virq @ 0, vcpu @ 4, port @ 8 });

/// `struct evtchn_bind_pirq` (12 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EvtchnBindPirq {
    /// IN: physical IRQ.
    pub pirq: u32,
    /// IN: `BIND_PIRQ_*`.
    pub flags: u32,
    /// OUT: the new port.
    pub port: u32,
}

assert_layout!(EvtchnBindPirq, size = 12, align = 4, { pirq @ 0, flags @ 4, port @ 8 });

/// `struct evtchn_bind_ipi` (8 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EvtchnBindIpi {
    /// IN: vCPU to deliver to.
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: u32,
}

assert_layout!(EvtchnBindIpi, size = 8, align = 4, { vcpu @ 0, port @ 4 });

/// `struct evtchn_close` (4 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EvtchnClose {
    /// IN: port to close.
    pub port: u32,
}

assert_layout!(EvtchnClose, size = 4, align = 4, { port @ 0 });

/// `struct evtchn_send` (4 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EvtchnSend {
    /// IN: local port whose remote end is signalled.
    pub port: u32,
}

assert_layout!(EvtchnSend, size = 4, align = 4, { port @ 0 });

/// `struct evtchn_status` (24 bytes).
///
/// `u` is C's union `{unbound {dom}, interdomain {dom, port}, pirq, virq}`,
/// selected by `status`; read it with the `u_*` accessors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EvtchnStatus {
    /// IN: domain owning the port.
    pub dom: u16,
    /// Padding (implicit in C).
    pub _pad0: u16,
    /// IN: port queried.
    pub port: u32,
    /// OUT: `EVTCHNSTAT_*`.
    pub status: u32,
    /// OUT: vCPU the port delivers to.
    pub vcpu: u32,
    /// OUT: binding details, by `status`.
    pub u: [u8; 8],
}

assert_layout!(EvtchnStatus, size = 24, align = 4, {
    dom @ 0, _pad0 @ 2, port @ 4, status @ 8, vcpu @ 12, u @ 16,
});

impl EvtchnStatus {
    /// `u.unbound.dom`: the domain allowed to bind (`EVTCHNSTAT_unbound`).
    pub const fn u_unbound_dom(&self) -> u16 {
        raw::read_u16(&self.u, 0)
    }

    /// `u.interdomain.dom`: the remote domain (`EVTCHNSTAT_interdomain`).
    pub const fn u_interdomain_dom(&self) -> u16 {
        raw::read_u16(&self.u, 0)
    }

    /// `u.interdomain.port`: the remote port (`EVTCHNSTAT_interdomain`).
    pub const fn u_interdomain_port(&self) -> u32 {
        raw::read_u32(&self.u, 4)
    }

    /// `u.pirq` (`EVTCHNSTAT_pirq`).
    pub const fn u_pirq(&self) -> u32 {
        raw::read_u32(&self.u, 0)
    }

    /// `u.virq` (`EVTCHNSTAT_virq`).
    pub const fn u_virq(&self) -> u32 {
        raw::read_u32(&self.u, 0)
    }

    /// Sets `u.unbound.dom`.
    pub fn set_u_unbound_dom(&mut self, dom: u16) {
        raw::write_u16(&mut self.u, 0, dom);
    }

    /// Sets `u.interdomain.dom`.
    pub fn set_u_interdomain_dom(&mut self, dom: u16) {
        raw::write_u16(&mut self.u, 0, dom);
    }

    /// Sets `u.interdomain.port`.
    pub fn set_u_interdomain_port(&mut self, port: u32) {
        raw::write_u32(&mut self.u, 4, port);
    }

    /// Sets `u.pirq`.
    pub fn set_u_pirq(&mut self, pirq: u32) {
        raw::write_u32(&mut self.u, 0, pirq);
    }

    /// Sets `u.virq`.
    pub fn set_u_virq(&mut self, virq: u32) {
        raw::write_u32(&mut self.u, 0, virq);
    }
}

/// `struct evtchn_bind_vcpu` (8 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EvtchnBindVcpu {
    /// IN: port to rebind.
    pub port: u32,
    /// IN: vCPU to deliver to.
    pub vcpu: u32,
}

assert_layout!(EvtchnBindVcpu, size = 8, align = 4, { port @ 0, vcpu @ 4 });

/// `struct evtchn_unmask` (4 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EvtchnUnmask {
    /// IN: port to unmask.
    pub port: u32,
}

assert_layout!(EvtchnUnmask, size = 4, align = 4, { port @ 0 });

/// `struct evtchn_reset` (2 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EvtchnReset {
    /// IN: domain whose ports are closed (`DOMID_SELF` or a controlled one).
    pub dom: u16,
}

assert_layout!(EvtchnReset, size = 2, align = 2, { dom @ 0 });

/// `struct evtchn_op`: the argument of the old `event_channel_op_compat`
/// hypercall (28 bytes).
///
/// `u` is C's union of the per-command structs (`EvtchnAllocUnbound` ...
/// `EvtchnUnmask`, the largest being [`EvtchnStatus`]); a handler decodes
/// `u` as the struct `cmd` names and writes its OUT fields back into `u`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EvtchnOp {
    /// IN: `EVTCHNOP_*`.
    pub cmd: u32,
    /// IN/OUT: the command's struct, as raw bytes.
    pub u: [u8; 24],
}

assert_layout!(EvtchnOp, size = 28, align = 4, { cmd @ 0, u @ 4 });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_kind_conversion() {
        assert_eq!(EvtchnStatusKind::try_from(4), Ok(EvtchnStatusKind::Virq));
        assert!(EvtchnStatusKind::try_from(6).is_err());
        for &k in EvtchnStatusKind::ALL {
            assert_eq!(EvtchnStatusKind::try_from(u32::from(k)), Ok(k));
        }
    }

    #[test]
    fn status_union_views() {
        let mut s = EvtchnStatus::default();
        s.set_u_interdomain_dom(7);
        s.set_u_interdomain_port(42);
        assert_eq!(s.u_interdomain_dom(), 7);
        assert_eq!(s.u_unbound_dom(), 7);
        assert_eq!(s.u_interdomain_port(), 42);
        s.set_u_virq(3);
        assert_eq!(s.u_virq(), 3);
        assert_eq!(s.u_pirq(), 3);
    }
}
