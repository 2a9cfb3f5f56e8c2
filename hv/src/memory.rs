//! The machine's memory as the hypervisor manages it: the frame table, the
//! hypervisor's own page tables, and the machine-to-phys table.

use crate::arch::{cpu, paging};
use crate::setup::FRAMES;
use hv::layout::{
    DIRECTMAP_START, FIRST_RESERVED_L4_SLOT, LAST_RESERVED_L4_SLOT, MACH2PHYS_VIRT_START, PAGE_SIZE, RESERVED_L4_SLOTS,
};
use hv::mm::frame::{DomId, FrameUse};
use hv::mm::pagetable::{self, pte, MapError, TableMemory};
use hv::mm::pagetype::{GuestFrames, PageTypes, Policy};
use hv::mm::Mfn;
use hv::sync::SpinLock;

/// The direct-map address of frame `mfn` (RAM below the direct map's end).
pub fn frame_ptr(mfn: Mfn) -> *mut u8 {
    (DIRECTMAP_START + mfn * PAGE_SIZE) as *mut u8
}

/// Zeroes frame `mfn`.
///
/// # Safety
/// The frame must be RAM the caller owns and nobody else is using.
pub unsafe fn zero_frame(mfn: Mfn) {
    // SAFETY: the caller owns the frame; the direct map covers it.
    unsafe { core::ptr::write_bytes(frame_ptr(mfn), 0, PAGE_SIZE as usize) };
}

/// Page tables in machine frames, reached through the direct map; new
/// tables are hypervisor frames from the frame table.
pub struct DirectTables;

impl TableMemory for DirectTables {
    fn table(&mut self, mfn: Mfn) -> &mut [u64; 512] {
        // SAFETY: callers only pass frames the hypervisor owns and uses as
        // tables of u64s (the idle page tables, the M2P), which the direct
        // map covers and nothing else references while they are edited.
        unsafe { &mut *frame_ptr(mfn).cast::<[u64; 512]>() }
    }

    fn alloc_table(&mut self) -> Option<Mfn> {
        let mfn = FRAMES.lock().as_mut()?.alloc(FrameUse::Hypervisor)?;
        // SAFETY: freshly allocated, so ours alone.
        unsafe { zero_frame(mfn) };
        Some(mfn)
    }
}

/// The machine-to-phys table: `(first frame, entries)`.
static M2P: SpinLock<Option<(Mfn, u64)>> = SpinLock::new(None);

/// An M2P entry for a frame no guest owns.
pub const INVALID_M2P_ENTRY: u64 = u64::MAX;

/// Allocates the M2P for `frames` machine frames, marks every entry invalid,
/// and maps it read-only for guests at `MACH2PHYS_VIRT_START`.
pub fn init_m2p(frames: u64) -> Result<(), &'static str> {
    let pages = (frames * 8).div_ceil(PAGE_SIZE);
    let run = FRAMES
        .lock()
        .as_mut()
        .and_then(|t| t.claim_run(pages, FrameUse::Hypervisor, 0x100, t.frames()))
        .ok_or("no room for the machine-to-phys table")?;
    let l4 = paging::idle_l4_mfn();
    for (i, mfn) in (run.start..run.end).enumerate() {
        DirectTables.table(mfn).fill(INVALID_M2P_ENTRY);
        let va = MACH2PHYS_VIRT_START + i as u64 * PAGE_SIZE;
        pagetable::map_4k(
            &mut DirectTables,
            l4,
            va,
            (mfn << 12) | pte::P | pte::U | pte::NX,
            pte::P | pte::RW | pte::U,
        )
        .map_err(|e| match e {
            MapError::OutOfMemory => "no memory for the M2P's page tables",
            MapError::LargePage => "the M2P range is covered by a large page",
        })?;
    }
    *M2P.lock() = Some((run.start, frames));
    cpu::flush_tlb();
    log::debug!("m2p: {} frames at {:#x}, mapped at {:#x}", pages, run.start << 12, MACH2PHYS_VIRT_START);
    Ok(())
}

/// Guest frames through the direct map, for the page-type engine.
struct DirectGuestFrames;

impl GuestFrames for DirectGuestFrames {
    fn entries(&mut self, mfn: Mfn) -> &mut [u64; 512] {
        // SAFETY: the engine only asks for frames of a domain (RAM, so
        // direct-mapped), under the frame table's lock, and the guest
        // cannot write them while they are page tables (mapped read-only).
        unsafe { &mut *frame_ptr(mfn).cast::<[u64; 512]>() }
    }

    fn descriptors_ok(&mut self, mfn: Mfn) -> bool {
        hv::descriptor::page_ok(self.entries(mfn))
    }

    fn flush_before_retype(&mut self, _mfn: Mfn) {
        // One CPU: flushing this TLB drops every stale writable mapping.
        cpu::flush_tlb();
    }
}

/// The rules every guest page table is validated against.
static POLICY: SpinLock<Option<Policy>> = SpinLock::new(None);

/// Runs `op` with the page-type engine, holding the frame table's lock.
pub fn with_page_types<R>(op: impl FnOnce(&mut PageTypes<'_, '_, dyn GuestFrames>) -> R) -> R {
    // Borrowed, not copied: every page-table update passes here. Only
    // `init_policy`, at boot, takes this lock otherwise.
    let policy = POLICY.lock();
    let policy = policy.as_ref().expect("policy set before any guest exists");
    let mut frames = FRAMES.lock();
    let table = frames.as_mut().expect("frame table set up at boot");
    let mem: &mut dyn GuestFrames = &mut DirectGuestFrames;
    op(&mut PageTypes::new(table, mem, policy))
}

/// Fixes the validation policy once the hypervisor's L4 slots are final
/// (after the M2P is mapped).
pub fn init_policy() {
    let nx = cpu::rdmsr(cpu::msr::EFER) & (1 << 11) != 0;
    *POLICY.lock() = Some(Policy { reserved_l4: hypervisor_l4_slots(), nx });
}

/// The M2P's frames: `(first frame, frames)`.
pub fn m2p_frames() -> (Mfn, u64) {
    match *M2P.lock() {
        Some((base, entries)) => (base, (entries * 8).div_ceil(PAGE_SIZE)),
        None => (0, 0),
    }
}

/// Records that machine frame `mfn` is guest frame `pfn`.
pub fn set_m2p(mfn: Mfn, pfn: u64) {
    let m2p = M2P.lock();
    let Some((base, entries)) = *m2p else { return };
    if mfn < entries {
        // The M2P run is the hypervisor's; guests map it read-only.
        DirectTables.table(base + mfn / 512)[(mfn % 512) as usize] = pfn;
    }
}

/// Frees every frame domain `dom` still owns that nothing references,
/// invalidating its M2P entry, and flushes the TLB so that no stale
/// translation of a freed frame survives; returns `(freed, kept)`, where
/// `kept` frames are still referenced (a foreign or grant mapping).
pub fn free_unreferenced(dom: DomId) -> (u64, u64) {
    let (mut freed, mut kept) = (0u64, 0u64);
    if let Some(table) = FRAMES.lock().as_mut() {
        for mfn in 0..table.frames() {
            if table.usage(mfn) != FrameUse::Domain(dom) {
                continue;
            }
            if table.can_release(mfn) && table.free(mfn).is_ok() {
                set_m2p(mfn, INVALID_M2P_ENTRY);
                freed += 1;
            } else {
                kept += 1;
            }
        }
    }
    cpu::flush_tlb();
    (freed, kept)
}

/// The hypervisor's L4 entries for the reserved slots 256–271, to copy
/// into every guest's L4.
pub fn hypervisor_l4_slots() -> [u64; RESERVED_L4_SLOTS] {
    let mut tables = DirectTables;
    let l4 = tables.table(paging::idle_l4_mfn());
    let mut slots = [0; RESERVED_L4_SLOTS];
    slots.copy_from_slice(&l4[FIRST_RESERVED_L4_SLOT..=LAST_RESERVED_L4_SLOT]);
    slots
}

/// Unmaps the page below the hypervisor stack in the image mapping, so
/// that a stack overflow faults (on the IST stack of `#PF`/`#DF`) rather
/// than silently overwriting the boot page tables below it.
///
/// The image mapping (L4 slot 261) shares its 2 MiB-page directory with
/// the direct map's first GiB; it gets a directory of its own, and the
/// 2 MiB page holding the guard is split into 4 KiB pages. The direct map
/// still maps the guard frame: only the stack's own addresses fault.
pub fn guard_stack() -> Result<(), &'static str> {
    use hv::layout::IMAGE_VIRT_OFFSET;
    let guard_va = paging::stack_guard_va();
    let (l3_mfn, l3_index) = paging::image_l3();
    let mut tables = DirectTables;
    let old_pd = tables.table(l3_mfn)[l3_index];
    if old_pd & pte::P == 0 {
        return Err("the image is not mapped");
    }
    let pd = tables.alloc_table().ok_or("no frame for the image's page directory")?;
    let l1 = tables.alloc_table().ok_or("no frame for the stack guard's page table")?;
    let old: [u64; 512] = *tables.table((old_pd & 0x000f_ffff_ffff_f000) >> 12);
    let l2_index = ((guard_va - IMAGE_VIRT_OFFSET) >> 21) as usize % 512;
    let big = old[l2_index];
    let base = big & 0x000f_ffff_ffe0_0000;
    let guard_index = ((guard_va >> 12) % 512) as usize;
    let small = tables.table(l1);
    for (i, e) in small.iter_mut().enumerate() {
        *e = if i == guard_index { 0 } else { (base + (i as u64) * PAGE_SIZE) | pte::P | pte::RW };
    }
    let new = tables.table(pd);
    *new = old;
    new[l2_index] = (l1 << 12) | pte::P | pte::RW;
    tables.table(l3_mfn)[l3_index] = (pd << 12) | (old_pd & 0xfff);
    crate::arch::cpu::flush_tlb();
    Ok(())
}

/// A `T` in hypervisor-owned frames of its own: the per-domain state that
/// exists only while its domain does (Xen's `xzalloc` of `struct domain`
/// and its event-channel buckets). The frames come from the frame table
/// when it is made and go back when it is dropped, so a machine with no
/// domains holds none of it, and running out of memory is an error the
/// creator sees (`-ENOMEM`) rather than a fixed limit.
///
/// Dropping one takes the frame table's lock: never drop it while holding
/// that lock (inside [`with_page_types`] or a `FRAMES` guard).
pub struct FrameBox<T> {
    ptr: core::ptr::NonNull<T>,
}

// SAFETY: a `FrameBox` owns its `T` as a `Box` would.
unsafe impl<T: Send> Send for FrameBox<T> {}

impl<T> FrameBox<T> {
    /// The frames one takes.
    pub const FRAMES: u64 = (core::mem::size_of::<T>() as u64).div_ceil(PAGE_SIZE);

    /// Claims frames for a `T` and fills them with `init`, which must
    /// write a whole valid `T` through the pointer it gets (without
    /// building one on the hypervisor stack if `T` is big). `None` when
    /// memory is exhausted.
    ///
    /// # Safety
    /// `init` must leave a valid `T` at the pointer.
    pub unsafe fn new_with(init: impl FnOnce(*mut T)) -> Option<FrameBox<T>> {
        const { assert!(core::mem::align_of::<T>() <= PAGE_SIZE as usize) };
        let first = {
            let mut frames = FRAMES.lock();
            let t = frames.as_mut()?;
            if Self::FRAMES == 1 {
                t.alloc(FrameUse::Hypervisor)?
            } else {
                t.claim_run(Self::FRAMES, FrameUse::Hypervisor, 0x100, t.frames())?.start
            }
        };
        let ptr = frame_ptr(first).cast::<T>();
        init(ptr);
        core::ptr::NonNull::new(ptr).map(|ptr| FrameBox { ptr })
    }

    /// `value`, moved into frames of its own; `None` when memory is
    /// exhausted.
    pub fn new(value: T) -> Option<FrameBox<T>> {
        // SAFETY: `new_with` passes frames claimed for a `T` (aligned, ours
        // alone).
        let init = |p: *mut T| unsafe { p.write(value) };
        // SAFETY: `init` leaves `value` there.
        unsafe { Self::new_with(init) }
    }

    fn first_mfn(&self) -> Mfn {
        (self.ptr.as_ptr() as u64 - DIRECTMAP_START) / PAGE_SIZE
    }
}

impl<T> core::ops::Deref for FrameBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the frames hold a valid `T` that this box alone owns.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> core::ops::DerefMut for FrameBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`, and `&mut self` makes the borrow unique.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for FrameBox<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        (**self).fmt(f)
    }
}

impl<T> Drop for FrameBox<T> {
    fn drop(&mut self) {
        // SAFETY: the `T` is valid and nothing uses it after this.
        unsafe { core::ptr::drop_in_place(self.ptr.as_ptr()) };
        let first = self.first_mfn();
        if let Some(t) = FRAMES.lock().as_mut() {
            for mfn in first..first + Self::FRAMES {
                if let Err(e) = t.free(mfn) {
                    log::error!("frame {mfn:#x} of hypervisor state not freed: {e:?}");
                }
            }
        }
    }
}
