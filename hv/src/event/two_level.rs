//! The 2-level event ABI: pending and mask bitmaps, selector words, upcalls.
//!
//! A domain's shared-info page holds one pending and one mask bit per port
//! (64 words of 64 bits); each vCPU's `vcpu_info` holds a selector word
//! (`evtchn_pending_sel`, one bit per bitmap word) and the upcall flags.
//! The rules are Xen's (`event_2l.c`):
//!
//! - **set pending** `p`: if `pending[p]` was already set, stop. Otherwise
//!   set it; if `mask[p]` is clear and the selector bit `p / 64` of the
//!   notified vCPU was clear, set that bit and mark the vCPU's events pending:
//!   set `evtchn_upcall_pending`, and kick the vCPU if that flag was clear.
//! - **unmask** `p`: clear `mask[p]`; if it *was* set, `pending[p]` is set
//!   and the selector bit was clear, set the selector bit and mark events
//!   pending as above.
//! - **upcall due**: `evtchn_upcall_pending && !evtchn_upcall_mask`.
//!
//! # Concurrency
//!
//! The guest writes the same words concurrently: it clears pending bits,
//! selector bits and `evtchn_upcall_pending` as it handles events, and sets
//! and clears mask bits. Xen therefore uses atomic test-and-set operations
//! in a fixed order. This hypervisor runs one CPU and the guest never runs
//! while the hypervisor does, so the plain read-modify-write below is
//! exact. **A change to SMP (a guest vCPU running on another CPU while the
//! hypervisor updates its shared page) must turn every read-modify-write
//! here into an atomic operation, in the same order.**

use super::Port;
use abi::shared_info::{SharedInfo, VcpuInfo};

/// Words of the pending and mask bitmaps (4096 ports / 64).
pub const WORDS: usize = 64;

/// The parts of a domain's event state one operation on one port touches.
#[derive(Debug)]
pub struct EventWords<'a> {
    /// `shared_info.evtchn_pending`.
    pub pending: &'a mut [u64; WORDS],
    /// `shared_info.evtchn_mask`.
    pub mask: &'a mut [u64; WORDS],
    /// The notified vCPU's `vcpu_info`; `None` if it has none (its events
    /// are then only recorded in the bitmaps).
    pub vcpu: Option<&'a mut VcpuInfo>,
}

/// Where a domain's 2-level event state lives.
///
/// The hypervisor implements it over the domain's real shared-info page
/// (and, once `VCPUOP_register_vcpu_info` exists, over vCPU info areas
/// placed elsewhere); [`SharedInfo`] implements it with the `vcpu_info`
/// slots inside the page.
pub trait EventState {
    /// The bitmaps and vCPU `vcpu`'s `vcpu_info`.
    fn words(&mut self, vcpu: u32) -> EventWords<'_>;
}

impl EventState for SharedInfo {
    fn words(&mut self, vcpu: u32) -> EventWords<'_> {
        let SharedInfo { vcpu_info, evtchn_pending, evtchn_mask, .. } = self;
        let vcpu = usize::try_from(vcpu).ok().and_then(|i| vcpu_info.get_mut(i));
        EventWords { pending: evtchn_pending, mask: evtchn_mask, vcpu }
    }
}

/// What raising or unmasking a port did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Nothing the guest can see changed: the port was already pending
    /// ([`set_pending`]), or there was nothing to re-raise ([`unmask`]).
    None,
    /// The port became pending (or was re-raised into its selector word)
    /// without a new upcall: it is masked, its selector bit was already
    /// set, or `evtchn_upcall_pending` already was.
    Pending,
    /// `evtchn_upcall_pending` went from clear to set: kick the vCPU (wake
    /// it if it is blocked).
    Upcall,
}

fn word_and_bit(port: Port) -> (usize, u64) {
    let p = port.get();
    ((p / 64) as usize, 1u64 << (p % 64))
}

/// Marks `vcpu`'s events pending (Xen's `vcpu_mark_events_pending`): sets
/// bit 0 of `evtchn_upcall_pending`; true if it was clear (kick).
fn mark_events_pending(vcpu: &mut VcpuInfo) -> bool {
    if vcpu.evtchn_upcall_pending & 1 != 0 {
        return false;
    }
    vcpu.evtchn_upcall_pending |= 1;
    true
}

/// Sets selector bit `word` of `vcpu` and marks its events pending if the
/// bit was clear.
fn select(vcpu: Option<&mut VcpuInfo>, word: usize) -> Delivery {
    let Some(vcpu) = vcpu else { return Delivery::Pending };
    let sel = 1u64 << word;
    if vcpu.evtchn_pending_sel & sel != 0 {
        return Delivery::Pending;
    }
    vcpu.evtchn_pending_sel |= sel;
    if mark_events_pending(vcpu) {
        Delivery::Upcall
    } else {
        Delivery::Pending
    }
}

/// Marks `port` pending for the vCPU in `w` (Xen's `evtchn_2l_set_pending`).
pub fn set_pending(w: EventWords<'_>, port: Port) -> Delivery {
    let (word, bit) = word_and_bit(port);
    if w.pending[word] & bit != 0 {
        return Delivery::None;
    }
    w.pending[word] |= bit;
    if w.mask[word] & bit != 0 {
        return Delivery::Pending;
    }
    select(w.vcpu, word)
}

/// Clears `port`'s pending bit (done when a port is closed, so a rebound
/// port does not start pending).
pub fn clear_pending(pending: &mut [u64; WORDS], port: Port) {
    let (word, bit) = word_and_bit(port);
    pending[word] &= !bit;
}

/// Unmasks `port` and re-raises it to the vCPU in `w` if it was masked and
/// is pending (Xen's `evtchn_2l_unmask`). Returns [`Delivery::None`] when
/// nothing was re-raised (it was not masked, not pending, or its selector
/// bit was already set).
pub fn unmask(w: EventWords<'_>, port: Port) -> Delivery {
    let (word, bit) = word_and_bit(port);
    let was_masked = w.mask[word] & bit != 0;
    w.mask[word] &= !bit;
    if !was_masked || w.pending[word] & bit == 0 {
        return Delivery::None;
    }
    match w.vcpu {
        Some(v) if v.evtchn_pending_sel & (1u64 << word) == 0 => select(Some(v), word),
        _ => Delivery::None,
    }
}

/// Whether an upcall is delivered on return to the guest:
/// `evtchn_upcall_pending && !evtchn_upcall_mask`.
pub fn upcall_due(vcpu: &VcpuInfo) -> bool {
    vcpu.evtchn_upcall_pending != 0 && vcpu.evtchn_upcall_mask == 0
}

/// Whether `port` is pending in `pending`.
pub fn is_pending(pending: &[u64; WORDS], port: Port) -> bool {
    let (word, bit) = word_and_bit(port);
    pending[word] & bit != 0
}

/// Whether `port` is masked in `mask`.
pub fn is_masked(mask: &[u64; WORDS], port: Port) -> bool {
    let (word, bit) = word_and_bit(port);
    mask[word] & bit != 0
}
