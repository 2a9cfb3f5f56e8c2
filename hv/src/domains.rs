//! The domains on this machine: their saved state, event channels, timers,
//! and the scheduler that shares the CPU among them.
//!
//! Each kind of state has its own lock so that the code handling an entry
//! from the running domain (which holds that domain's [`DOMAINS`] slot) can
//! still reach every domain's event channels ([`EVENTS`]) and timers
//! ([`TIMERS`]). Wakeups found while a slot is held are queued
//! ([`SIGNALS`]) and handled once it is released. There is one CPU, so the
//! locks never contend; they keep each borrow exclusive.
//!
//! The tables indexed by domain id are small per entry (a pointer, a few
//! words): what a domain needs beyond that (its [`Slot`], its
//! [`EventChannels`]) lives in hypervisor frames taken when it is created
//! and returned when it goes ([`FrameBox`]), so the id space can be large
//! while a machine with few domains pays for few.

use crate::memory::FrameBox;
use abi::shared_info::{SharedInfo, VcpuInfo};
use hv::domain::Domain;
use hv::event::{self, DomainEvents, EventChannels, EventState, EventWords, Signal};
use hv::layout::PAGE_SIZE;
use hv::mm::frame::DomId;
use hv::mm::Mfn;
use hv::regs::Regs;
use hv::sched::Scheduler;
use hv::sync::SpinLock;

/// Domain slots: a domain's id is its slot. As many as the scheduler has.
pub const MAX_DOMAINS: usize = hv::sched::MAX_DOMAINS;

/// A domain's state that only its own entries touch.
#[derive(Debug)]
pub struct Slot {
    /// The domain.
    pub domain: Domain,
    /// Its shared-info frame.
    pub shared_info: Mfn,
    /// Its registers while it is not on the CPU.
    pub regs: Regs,
    /// Its data-segment selectors (`ds, es, fs, gs`) while it is not on the CPU.
    pub selectors: [u16; 4],
    /// Created by the control domain (`domctl`): when it stops it stays,
    /// shut down, until the toolstack destroys it. Boot-time domains, with
    /// no toolstack to decide, are destroyed when they stop.
    pub managed: bool,
}

/// Every domain, by id; each slot in frames of its own.
pub static DOMAINS: [SpinLock<Option<FrameBox<Slot>>>; MAX_DOMAINS] = [const { SpinLock::new(None) }; MAX_DOMAINS];

/// One past the highest id whose slot holds a domain: walks over every
/// domain's per-id state (timers, remote stops, `getdomaininfo`) stop
/// here, so their cost follows the domains there are, not [`MAX_DOMAINS`].
static ID_LIMIT: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// See [`ID_LIMIT`].
pub fn id_limit() -> usize {
    ID_LIMIT.load(core::sync::atomic::Ordering::Relaxed)
}

/// Domain `id` was put in its slot.
pub fn note_installed(id: DomId) {
    ID_LIMIT.fetch_max(usize::from(id) + 1, core::sync::atomic::Ordering::Relaxed);
}

/// A domain's slot was emptied: lowers [`ID_LIMIT`] past the empty slots
/// at the top (a slot held by someone is in use).
pub fn note_removed() {
    let mut top = id_limit();
    while top > 0 && DOMAINS[top - 1].try_lock().is_some_and(|slot| slot.is_none()) {
        top -= 1;
    }
    ID_LIMIT.store(top, core::sync::atomic::Ordering::Relaxed);
}

/// Domains the toolstack created whose console output stays in the
/// console ring (see `domu_console=`).
pub static QUIET_CONSOLE: [core::sync::atomic::AtomicBool; MAX_DOMAINS] =
    [const { core::sync::atomic::AtomicBool::new(false) }; MAX_DOMAINS];

/// Whether `domu_console=serial` was given.
pub static DOMU_CONSOLE_SERIAL: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Ids whose destroyed domain left frames that something else still
/// referenced: they stay owned under the id, so it is not given out again.
pub static ZOMBIES: [core::sync::atomic::AtomicBool; MAX_DOMAINS] =
    [const { core::sync::atomic::AtomicBool::new(false) }; MAX_DOMAINS];

/// A domain's event channels and where its event state lives.
#[derive(Debug)]
pub struct EventSlot {
    /// Whether a domain uses this slot.
    pub live: bool,
    /// The port table, in frames of its own while the domain is live.
    pub channels: Option<FrameBox<EventChannels>>,
    /// The shared-info frame (pending and mask bitmaps; `vcpu_info` 0 by default).
    pub shared_info: Mfn,
    /// vCPU 0's `vcpu_info` if the guest moved it (frame, offset).
    pub vcpu_info_at: Option<(Mfn, u32)>,
    /// May act on other domains' ports.
    pub privileged: bool,
}

/// Every domain's event channels, by id.
pub static EVENTS: SpinLock<[EventSlot; MAX_DOMAINS]> = SpinLock::new(
    [const { EventSlot { live: false, channels: None, shared_info: 0, vcpu_info_at: None, privileged: false } };
        MAX_DOMAINS],
);

/// An empty port table to copy new ones from: a table is too big to build
/// on the hypervisor's stack, so it is copied frame to frame and reset in
/// place.
static EMPTY_CHANNELS: EventChannels = EventChannels::new(0, 1, 0);

/// A new port table for domain `dom` with ports up to `max_port`, none
/// bound; `None` when memory is exhausted.
pub fn new_channels(dom: DomId, max_port: u32) -> Option<FrameBox<EventChannels>> {
    // SAFETY: `new_with` passes frames claimed for a table (aligned, ours
    // alone), which cannot overlap the static.
    let init = |p: *mut EventChannels| unsafe { core::ptr::copy_nonoverlapping(&EMPTY_CHANNELS, p, 1) };
    // SAFETY: the copy of a valid table is a valid table (it is plain
    // data: no pointers, nothing to drop).
    let mut table = unsafe { FrameBox::new_with(init) }?;
    table.reset(dom, 1, max_port);
    Some(table)
}

impl EventSlot {
    /// Puts domain `dom` in this slot with `channels`, no ports bound.
    pub fn start(&mut self, channels: FrameBox<EventChannels>, shared_info: Mfn, privileged: bool) {
        self.channels = Some(channels);
        self.shared_info = shared_info;
        self.vcpu_info_at = None;
        self.privileged = privileged;
        self.live = true;
    }
}

/// A vCPU's timers, in system time (ns).
#[derive(Clone, Copy, Debug, Default)]
pub struct Timers {
    /// The single-shot timer (`set_timer_op`, `VCPUOP_set_singleshot_timer`).
    pub singleshot: Option<u64>,
    /// The end of a `SCHEDOP_poll` with a timeout.
    pub poll: Option<u64>,
}

impl Timers {
    /// The earlier deadline.
    pub fn next(&self) -> Option<u64> {
        match (self.singleshot, self.poll) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Every domain's vCPU timers, by id.
pub static TIMERS: SpinLock<[Timers; MAX_DOMAINS]> =
    SpinLock::new([Timers { singleshot: None, poll: None }; MAX_DOMAINS]);

/// Wakeups waiting to be acted on.
#[derive(Debug)]
pub struct Signals {
    queue: [Option<Signal>; 64],
    len: usize,
    /// Signals were dropped because the queue was full: check every
    /// waiting vCPU.
    pub overflowed: bool,
}

impl Signals {
    /// Queues `s`.
    pub fn push(&mut self, s: Signal) {
        match self.queue.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(s);
                self.len += 1;
            }
            None => self.overflowed = true,
        }
    }

    /// Takes the oldest queued signal.
    pub fn pop(&mut self) -> Option<Signal> {
        if self.len == 0 {
            return None;
        }
        let s = self.queue[0].take();
        self.queue.copy_within(1..self.len, 0);
        self.len -= 1;
        self.queue[self.len] = None;
        s
    }
}

/// Wakeups raised while a domain slot was held.
pub static SIGNALS: SpinLock<Signals> = SpinLock::new(Signals { queue: [None; 64], len: 0, overflowed: false });

/// The scheduler (set up at boot).
/// Built in place by the `const` constructor: it is too big for the
/// hypervisor's stack.
pub static SCHED: SpinLock<Option<Scheduler>> = SpinLock::new(Some(Scheduler::new()));

/// The shared-info page of frame `mfn`, through the direct map.
pub fn shared_info_ptr(mfn: Mfn) -> *mut SharedInfo {
    crate::memory::frame_ptr(mfn).cast()
}

/// Where vCPU 0's `vcpu_info` of a domain lives, through the direct map.
pub fn vcpu_info_ptr(shared_info: Mfn, at: Option<(Mfn, u32)>) -> *mut VcpuInfo {
    match at {
        // `VCPUOP_register_vcpu_info` checked the offset leaves room.
        Some((mfn, offset)) => (crate::memory::frame_ptr(mfn) as u64 + u64::from(offset) % PAGE_SIZE) as *mut VcpuInfo,
        // SAFETY: only the address of the first slot is computed.
        None => unsafe { core::ptr::addr_of_mut!((*shared_info_ptr(shared_info)).vcpu_info[0]) },
    }
}

/// A domain's 2-level event state in its pages, for the event core.
struct PageState {
    shared: *mut SharedInfo,
    vcpu0: *mut VcpuInfo,
}

impl EventState for PageState {
    fn words(&mut self, vcpu: u32) -> EventWords<'_> {
        let field =
            |offset: usize| self.shared.cast::<u8>().wrapping_add(offset).cast::<[u64; event::two_level::WORDS]>();
        let pending = field(core::mem::offset_of!(SharedInfo, evtchn_pending));
        let mask = field(core::mem::offset_of!(SharedInfo, evtchn_mask));
        // SAFETY: (for all three) the shared-info frame belongs to the domain
        // for its whole life, the hypervisor is its only other user, and no
        // guest runs while the hypervisor does (one CPU). The bitmaps do not
        // overlap each other or the `vcpu_info` slots, and `vcpu0` is either
        // in another frame or the caller's own `vcpu_info`, handed over for
        // this borrow.
        let pending = unsafe { &mut *pending };
        // SAFETY: as above.
        let mask = unsafe { &mut *mask };
        // SAFETY: as above.
        let vcpu = if vcpu == 0 { Some(unsafe { &mut *self.vcpu0 }) } else { None };
        EventWords { pending, mask, vcpu }
    }
}

/// Every domain's event state, as the event core sees it.
pub struct AllEvents<'a> {
    table: &'a mut [EventSlot; MAX_DOMAINS],
    /// The running domain and its `vcpu_info`, borrowed from the caller.
    current: Option<(DomId, *mut VcpuInfo)>,
    scratch: PageState,
}

impl<'a> AllEvents<'a> {
    /// Over `table`; the running domain's `vcpu_info` is `current`'s.
    pub fn new(table: &'a mut [EventSlot; MAX_DOMAINS], current: Option<(DomId, &'a mut VcpuInfo)>) -> Self {
        let current = current.map(|(d, v)| (d, v as *mut VcpuInfo));
        AllEvents { table, current, scratch: PageState { shared: core::ptr::null_mut(), vcpu0: core::ptr::null_mut() } }
    }
}

impl event::Domains for AllEvents<'_> {
    fn events(&mut self, dom: DomId) -> Option<DomainEvents<'_>> {
        let slot = self.table.get_mut(usize::from(dom)).filter(|s| s.live)?;
        let channels = slot.channels.as_deref_mut()?;
        self.scratch.shared = shared_info_ptr(slot.shared_info);
        self.scratch.vcpu0 = match self.current {
            Some((d, v)) if d == dom => v,
            _ => vcpu_info_ptr(slot.shared_info, slot.vcpu_info_at),
        };
        Some(DomainEvents { channels, state: &mut self.scratch })
    }

    fn is_privileged(&self, dom: DomId) -> bool {
        self.table.get(usize::from(dom)).is_some_and(|s| s.live && s.privileged)
    }

    fn is_paused_by_controller(&self, dom: DomId) -> bool {
        // The scheduler's pauses are the controller's: `domctl`'s
        // pausedomain, and the pause a created domain starts with.
        SCHED.lock().as_ref().is_some_and(|s| s.is_paused(dom) == Ok(true))
    }
}
