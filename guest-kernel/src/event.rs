//! Event channels in the kernel: the upcall, per-port handlers, and the
//! upcall mask.
//!
//! The hypervisor enters the event callback (the trap stub of
//! [`crate::traps::EVENT_CALLBACK_VECTOR`], registered by [`init`]) like an
//! exception without error code: a bounce frame on the kernel stack (`rcx,
//! r11, rip, cs, rflags, rsp, ss`; `cs` bits 32..40 and `!rflags.IF` hold
//! the interrupted upcall mask), with `evtchn_upcall_mask` set to 1. The
//! stub saves every register and calls `upcall`, which consumes the
//! pending ports with the 2-level protocol ([`crate::upcall::Bitmaps::drain`])
//! and calls each port's handler, then leaves with `HYPERVISOR_iret`,
//! which restores the interrupted context and its upcall mask.
//!
//! Handlers run inside the upcall, with upcalls masked, on whatever stack
//! was interrupted: they must be short, must not block or yield, and must
//! not allocate (the interrupted code may hold the heap's lock). They
//! update atomics; whoever waits checks those in [`wait_until`], which
//! every upcall wakes.
//!
//! The upcall mask is the guest's interrupt flag. The kernel starts with it
//! set and clears it only where it means to take upcalls:
//! [`unmask_upcalls`] clears it and, if an upcall became pending meanwhile,
//! makes a null hypercall so the hypervisor delivers it on the way back.
//! To wait without losing a wakeup, mask, check, and block with
//! `SCHEDOP_block`, which clears the mask itself and returns at once if an
//! event is pending: [`wait_until`] does that (through [`crate::thread`],
//! so other kernel threads run meanwhile).

use crate::frame::TrapFrame;
use crate::hypercall::hv;
use crate::runtime::start_info;
use crate::thread::WaitQueue;
use crate::{shared, traps};
use abi::shared_info::EVTCHN_2L_NR_CHANNELS;
use abi::Errno;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering::SeqCst};

/// An event-channel port (`evtchn_port_t`).
pub type Port = u32;

/// What handles events on a port; called in the upcall with the port.
pub type Handler = fn(Port);

/// Each port's handler (null: none; its events are counted and dropped).
static HANDLERS: [AtomicPtr<()>; EVTCHN_2L_NR_CHANNELS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; EVTCHN_2L_NR_CHANNELS];

/// Whether [`init`] succeeded.
static READY: AtomicBool = AtomicBool::new(false);
/// Upcalls taken.
static UPCALLS: AtomicU64 = AtomicU64::new(0);
/// Events consumed on ports without a handler.
static UNCLAIMED: AtomicU64 = AtomicU64::new(0);
/// Woken at the end of every upcall.
static AFTER_UPCALL: WaitQueue = WaitQueue::new();
/// The last upcall's frame: interrupted `rip`, `cs`, `rflags`, and the
/// upcall mask the handler ran with.
static LAST_FRAME: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// What the last upcall saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpcallSeen {
    /// Where the interrupted context resumes.
    pub rip: u64,
    /// Its code selector, with the saved upcall mask in bits 32..40.
    pub cs: u64,
    /// Its flags (`IF` is the inverse of the saved upcall mask).
    pub rflags: u64,
    /// `evtchn_upcall_mask` while the handler ran (the hypervisor sets 1).
    pub mask_in_handler: u8,
}

/// Why [`init`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// Mapping the shared-info page failed.
    SharedInfo(Errno),
    /// Registering a callback (named) failed.
    Callback(&'static str, Errno),
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::SharedInfo(e) => write!(f, "mapping shared_info: {e}"),
            InitError::Callback(which, e) => write!(f, "callback_op(register, {which}): {e}"),
        }
    }
}

/// Makes events usable: maps shared_info (unless mapped already) and
/// registers the event, failsafe and syscall callbacks with `callback_op`.
/// Leaves the upcall mask as it is. Idempotent.
pub fn init() -> Result<(), InitError> {
    if READY.load(SeqCst) {
        return Ok(());
    }
    if !shared::is_mapped() {
        shared::map(start_info().shared_info).map_err(InitError::SharedInfo)?;
    }
    traps::register_callbacks().map_err(|(which, e)| InitError::Callback(which, e))?;
    READY.store(true, SeqCst);
    Ok(())
}

/// Sets (`Some`) or clears (`None`) `port`'s handler. Ports past the
/// 2-level limit are ignored.
pub fn set_handler(port: Port, handler: Option<Handler>) {
    if let Some(slot) = HANDLERS.get(port as usize) {
        slot.store(handler.map_or(core::ptr::null_mut(), |h| h as *mut ()), SeqCst);
    }
}

/// Clears every port's handler (after `EVTCHNOP_reset`, say).
pub fn clear_handlers() {
    for h in &HANDLERS {
        h.store(core::ptr::null_mut(), SeqCst);
    }
}

/// Upcalls taken so far.
pub fn upcalls() -> u64 {
    UPCALLS.load(SeqCst)
}

/// The frame of the last upcall, if there was one.
pub fn last_upcall() -> Option<UpcallSeen> {
    let v = |i: usize| LAST_FRAME[i].load(SeqCst);
    (upcalls() > 0).then(|| UpcallSeen { rip: v(0), cs: v(1), rflags: v(2), mask_in_handler: v(3) as u8 })
}

/// Events consumed so far on ports that had no handler.
pub fn unclaimed() -> u64 {
    UNCLAIMED.load(SeqCst)
}

/// The event callback's body: called by the trap entry path with the
/// interrupted context's frame.
pub(crate) fn upcall(frame: &TrapFrame) {
    let Some(bitmaps) = shared::bitmaps() else {
        // Without shared_info nothing can consume the event, and returning
        // would only take the upcall again.
        traps::fatal(frame);
    };
    let mask = shared::vcpu0_upcall_mask_atomic().map_or(0, |m| m.load(SeqCst));
    for (slot, v) in LAST_FRAME.iter().zip([frame.rip, frame.cs, frame.rflags, u64::from(mask)]) {
        slot.store(v, SeqCst);
    }
    UPCALLS.fetch_add(1, SeqCst);
    bitmaps.drain(|port| {
        let h = HANDLERS.get(port as usize).map_or(core::ptr::null_mut(), |h| h.load(SeqCst));
        if h.is_null() {
            UNCLAIMED.fetch_add(1, SeqCst);
        } else {
            // SAFETY: only `set_handler` stores into HANDLERS, always a
            // `Handler` cast to a pointer.
            let handler = unsafe { core::mem::transmute::<*mut (), Handler>(h) };
            handler(port);
        }
    });
    AFTER_UPCALL.wake_all();
}

// ---- the upcall mask ----------------------------------------------------------

/// Whether upcalls are masked (true before shared_info is mapped: the
/// domain builder starts us masked).
pub fn upcalls_masked() -> bool {
    shared::vcpu0_upcall_mask_atomic().is_none_or(|m| m.load(SeqCst) != 0)
}

/// Masks upcalls; returns whether they were masked already.
pub fn mask_upcalls() -> bool {
    shared::vcpu0_upcall_mask_atomic().is_none_or(|m| m.swap(1, SeqCst) != 0)
}

/// Unmasks upcalls and takes any that became pending while they were
/// masked (a null hypercall: the hypervisor delivers pending upcalls on
/// its way back to the guest).
pub fn unmask_upcalls() {
    let Some(mask) = shared::vcpu0_upcall_mask_atomic() else {
        return;
    };
    mask.store(0, SeqCst);
    if shared::bitmaps().is_some_and(|b| b.upcall_pending.load(SeqCst) != 0) {
        let _ = hv().xen_version();
    }
}

/// Puts the mask back as [`mask_upcalls`] found it.
pub fn restore_upcalls(was_masked: bool) {
    if !was_masked {
        unmask_upcalls();
    }
}

/// Waits until `cond` holds, taking upcalls meanwhile: checks it with
/// upcalls masked and, while it is false, blocks the calling thread until
/// the next upcall (the vCPU blocks with `SCHEDOP_block` when no thread can
/// run). Restores the upcall mask on return. `cond` runs with upcalls
/// masked and may make hypercalls (to arm a timer, say), but must not wait.
pub fn wait_until(cond: impl FnMut() -> bool) {
    AFTER_UPCALL.wait_until(cond);
}

// ---- ports --------------------------------------------------------------------

/// Whether `port` is pending.
pub fn is_pending(port: Port) -> bool {
    shared::bitmaps().is_some_and(|b| b.is_pending(port))
}

/// Whether `port` is masked.
pub fn is_masked(port: Port) -> bool {
    shared::bitmaps().is_some_and(|b| b.is_masked(port))
}

/// Drops a pending event on `port` unhandled; whether there was one.
pub fn clear_pending(port: Port) -> bool {
    shared::bitmaps().is_some_and(|b| b.clear_pending(port))
}

/// Masks `port`: its events stay pending without an upcall until
/// [`unmask_port`].
pub fn mask_port(port: Port) {
    if let Some(b) = shared::bitmaps() {
        b.mask_port(port);
    }
}

/// Unmasks `port` with `EVTCHNOP_unmask`, which raises the upcall its
/// pending event missed.
pub fn unmask_port(port: Port) -> Result<u64, Errno> {
    hv().evtchn_unmask(port)
}

/// Sends on `port` (`EVTCHNOP_send`).
pub fn send(port: Port) -> Result<u64, Errno> {
    hv().evtchn_send(port)
}

/// This domain's id, which a PV guest is not told: the remote end the
/// hypervisor reports for a port allocated unbound for `DOMID_SELF` (the
/// port is closed again). `EIO` if the port does not read as unbound.
pub fn own_domid() -> Result<u16, Errno> {
    use abi::event_channel::EVTCHNSTAT_UNBOUND;
    use abi::mm::DOMID_SELF;
    let port = hv().evtchn_alloc_unbound(DOMID_SELF, DOMID_SELF)?;
    let status = hv().evtchn_status(DOMID_SELF, port);
    let _ = hv().evtchn_close(port);
    let status = status?;
    if status.status != EVTCHNSTAT_UNBOUND {
        return Err(Errno::EIO);
    }
    Ok(status.u_unbound_dom())
}
