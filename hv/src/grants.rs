//! Grant tables, machine side: what `hv::grant` needs from this machine.
//!
//! The logic (tables, pins, mappings, teardown) is the library's
//! `hv::grant`; `run.rs`'s `Platform` implementation delegates its grant
//! methods here. Per domain this keeps one word, the frame number of its
//! grant state (0 until it first uses grant tables); the state itself
//! lives in hypervisor frames from the frame table, reached through the
//! direct map, and is freed when the domain is destroyed. A granter's
//! entries are read and updated with atomic operations on the direct map,
//! since its guest may write them at any time. Reclaiming a destroyed
//! domain whose grants were still mapped also lives here: its frames go
//! back to the free pool once the last mapping is gone, and its id with
//! them ([`domains::ZOMBIES`]).

use crate::domains::{self, DOMAINS};
use crate::setup::FRAMES;
use abi::errno::Errno;
use core::sync::atomic::{AtomicU32, Ordering};
use hv::layout::PAGE_SIZE;
use hv::mm::frame::{DomId, FrameUse};
use hv::mm::Mfn;
use hv::sync::SpinLock;

/// Each domain's grant-state frame, by id (0: none).
static ROOTS: SpinLock<[Mfn; domains::MAX_DOMAINS]> = SpinLock::new([0; domains::MAX_DOMAINS]);

/// Domain `dom`'s grant-state frame (0: none).
pub fn root(dom: DomId) -> Mfn {
    ROOTS.lock().get(usize::from(dom)).copied().unwrap_or(0)
}

/// Records domain `dom`'s grant-state frame (`-ENOMEM` for an id with no
/// slot).
pub fn set_root(dom: DomId, root: Mfn) -> Result<(), Errno> {
    *ROOTS.lock().get_mut(usize::from(dom)).ok_or(Errno::ENOMEM)? = root;
    Ok(())
}

/// A zeroed hypervisor frame for grant state.
pub fn alloc_frame() -> Option<Mfn> {
    let mfn = FRAMES.lock().as_mut()?.alloc(FrameUse::Hypervisor)?;
    // SAFETY: just allocated: nobody else has the frame.
    unsafe { crate::memory::zero_frame(mfn) };
    Some(mfn)
}

/// Frees a grant-state frame (only a hypervisor frame: anything else is
/// left alone).
pub fn free_frame(mfn: Mfn) {
    if let Some(t) = FRAMES.lock().as_mut() {
        if t.usage(mfn) == FrameUse::Hypervisor {
            let _ = t.free(mfn);
        }
    }
}

/// The words of grant-state frame `mfn`, borrowed for as long as the
/// platform that asks (`_platform`) is: the grant code holds one such
/// borrow at a time.
pub fn state_frame<T: ?Sized>(_platform: &mut T, mfn: Mfn) -> &mut [u64; 512] {
    debug_assert!(FRAMES.try_lock().is_none_or(|t| t.as_ref().is_none_or(|t| t.usage(mfn) == FrameUse::Hypervisor)));
    // SAFETY: `mfn` is a frame `alloc_frame` gave the grant code (which
    // keeps those numbers in such frames only, out of any guest's reach):
    // RAM the direct map covers, used by nothing else. The borrow is tied
    // to the caller's exclusive borrow of the platform, so no two overlap.
    unsafe { &mut *crate::memory::frame_ptr(mfn).cast::<[u64; 512]>() }
}

/// 32-bit word `word` of domain frame `mfn` (a grant-table frame), as an
/// atomic: its guest may write it at any time.
fn word(mfn: Mfn, word: usize) -> &'static AtomicU32 {
    let at = crate::memory::frame_ptr(mfn).wrapping_add((word % 1024) * 4);
    // SAFETY: the grant code passes frames of a grant table, which the
    // table's reference keeps allocated and direct-mapped; the word is
    // aligned and inside the frame. Guests reach it only as memory, and
    // the hypervisor only through atomics, so sharing it is sound.
    unsafe { AtomicU32::from_ptr(at.cast()) }
}

/// Atomic read of a granter's word.
pub fn load32(mfn: Mfn, w: usize) -> u32 {
    word(mfn, w).load(Ordering::Acquire)
}

/// Compare-and-exchange of a granter's word.
pub fn cmpxchg32(mfn: Mfn, w: usize, old: u32, new: u32) -> Result<u32, u32> {
    word(mfn, w).compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
}

/// Atomic AND into a granter's word.
pub fn and32(mfn: Mfn, w: usize, mask: u32) {
    word(mfn, w).fetch_and(mask, Ordering::AcqRel);
}

/// Copies `len` bytes between domain frames (a grant copy; the grant code
/// holds references on both and checked the ranges, which are checked
/// again here).
pub fn copy_bytes(dst: Mfn, dst_off: usize, src: Mfn, src_off: usize, len: usize) {
    let page = PAGE_SIZE as usize;
    if dst_off.saturating_add(len) > page || src_off.saturating_add(len) > page {
        return;
    }
    let from = crate::memory::frame_ptr(src).wrapping_add(src_off);
    let to = crate::memory::frame_ptr(dst).wrapping_add(dst_off);
    // SAFETY: both ranges lie inside direct-mapped domain frames the grant
    // code holds; `copy` allows overlap (the same frame at both ends).
    unsafe { core::ptr::copy(from, to, len) };
}

/// Whether domain `dom` exists: its slot holds a domain, or is held (by
/// the entry running it).
pub fn domain_exists(dom: DomId) -> bool {
    DOMAINS.get(usize::from(dom)).is_some_and(|l| l.try_lock().is_none_or(|g| g.is_some()))
}

/// Frees the frames of destroyed domain `dom` that nothing references any
/// more; once none is left, its id can be given out again.
pub fn reclaim(dom: DomId) {
    if domain_exists(dom) {
        return;
    }
    let (freed, left) = crate::memory::free_unreferenced(dom);
    if left == 0 {
        if let Some(z) = domains::ZOMBIES.get(usize::from(dom)) {
            z.store(false, Ordering::Relaxed);
        }
    }
    log::info!("d{dom}: last grant mapping gone; {freed} frames returned, {left} still referenced");
}
