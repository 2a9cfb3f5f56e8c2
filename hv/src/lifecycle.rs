//! Domains made and unmade at run time, for the control domain's `domctl`.

use crate::domains::{self, Slot, DOMAINS, EVENTS, SCHED};
use crate::memory::FrameBox;
use crate::setup::FRAMES;
use abi::errno::Errno;
use abi::shared_info::SharedInfo;
use hv::domain::Domain;
use hv::event::EventChannels;
use hv::hypercall::control::NewDomain;
use hv::mm::frame::{DomId, FrameUse};
use hv::regs::Regs;
use hv::sched::VcpuId;

/// Whether id `id` can be given to a new domain: no domain has it, and
/// no frame is still owned under it (a destroyed domain's frames that
/// something else still referenced: see [`domains::ZOMBIES`]).
fn id_free(id: DomId) -> bool {
    let i = usize::from(id);
    let slot_free = DOMAINS.get(i).and_then(|l| l.try_lock()).is_some_and(|g| g.is_none());
    let events_free = EVENTS.lock().get(i).is_some_and(|e| !e.live);
    let no_leftovers = domains::ZOMBIES.get(i).is_some_and(|z| !z.load(core::sync::atomic::Ordering::Relaxed));
    slot_free && events_free && no_leftovers
}

/// Creates an empty PV domain (`XEN_DOMCTL_createdomain`): a shared-info
/// frame, an event-channel table, one vCPU that is down until it gets a
/// context, no memory, and paused by its creator, as Xen creates them.
/// `-ENOMEM` when memory runs out, with nothing left behind: the
/// hypervisor's state for it is allocated first and freed on every
/// failure.
pub fn create_empty(new: &NewDomain) -> Result<DomId, Errno> {
    let id = match new.id {
        Some(id) if usize::from(id) >= domains::MAX_DOMAINS => return Err(Errno::EINVAL),
        Some(id) if !id_free(id) => return Err(Errno::EEXIST),
        Some(id) => id,
        None => (1..domains::MAX_DOMAINS as DomId).find(|&id| id_free(id)).ok_or(Errno::ENOMEM)?,
    };
    let channels = domains::new_channels(id, new.max_evtchn_port).ok_or(Errno::ENOMEM)?;
    let shared_info = FRAMES.lock().as_mut().and_then(|t| t.alloc(FrameUse::Domain(id)));
    let Some(shared_info) = shared_info else { return Err(Errno::ENOMEM) };
    let mut domain = Domain::new(id, false);
    domain.handle = new.handle;
    let slot = Slot { domain, shared_info, regs: Regs::default(), selectors: [0; 4], managed: true };
    let Some(slot) = FrameBox::new(slot) else {
        if let Some(t) = FRAMES.lock().as_mut() {
            let _ = t.free(shared_info);
        }
        return Err(Errno::ENOMEM);
    };
    prepare_shared_info(shared_info);
    // The hypervisor's reference on the shared-info frame, dropped at
    // destruction (`Domain::release_pages`). A fresh frame of the domain
    // always takes one.
    let _ = crate::memory::with_page_types(|pt| pt.get_page(id, shared_info));
    let scheduled = SCHED.lock().as_mut().map(|s| {
        let v = VcpuId::new(id, 0);
        s.add_domain(id).and_then(|()| s.pause_domain(id).map(|_| ())).and_then(|()| s.add_vcpu(v))
    });
    if let Some(Err(e)) = scheduled {
        crate::memory::with_page_types(|pt| pt.put_page(shared_info));
        SCHED.lock().as_mut().map(|s| s.remove_domain(id));
        if let Some(t) = FRAMES.lock().as_mut() {
            let _ = t.free(shared_info);
        }
        return Err(e.errno());
    }
    install(slot, channels);
    if let Some(q) = domains::QUIET_CONSOLE.get(usize::from(id)) {
        q.store(
            !domains::DOMU_CONSOLE_SERIAL.load(core::sync::atomic::Ordering::Relaxed),
            core::sync::atomic::Ordering::Relaxed,
        );
    }
    log::debug!("d{id}: created (empty, paused)");
    Ok(id)
}

/// Readies a new domain's shared-info frame `mfn` (its own, not yet seen by
/// any guest): zeroed, upcalls masked on every vCPU, the time published.
pub fn prepare_shared_info(mfn: hv::mm::Mfn) {
    // SAFETY: a frame just allocated for a domain that does not run yet:
    // nothing else refers to it.
    unsafe { crate::memory::zero_frame(mfn) };
    // SAFETY: as above.
    let shared = unsafe { &mut *crate::memory::frame_ptr(mfn).cast::<SharedInfo>() };
    for v in shared.vcpu_info.iter_mut() {
        v.evtchn_upcall_mask = 1;
    }
    crate::clock::publish_to(shared);
}

/// Puts a domain that is ready (in the scheduler, its frames referenced)
/// into the tables: its event table ([`domains::new_channels`]) and its
/// slot. From here it can be found, signalled and run.
pub fn install(slot: FrameBox<Slot>, channels: FrameBox<EventChannels>) {
    let id = slot.domain.id;
    if let Some(events) = EVENTS.lock().get_mut(usize::from(id)) {
        events.start(channels, slot.shared_info, slot.domain.privileged);
    }
    if let Some(lock) = DOMAINS.get(usize::from(id)) {
        *lock.lock() = Some(slot);
        domains::note_installed(id);
    }
}
