//! The kernel's memory on a PV hypervisor: guest frames over the p2m, the
//! direct map, page tables changed through hypercalls, and the heap.
//!
//! - **Frames.** The pseudo-physical frames after the boot layout (from the
//!   page after the boot stack to `nr_pages`) go to a lowest-first
//!   allocator ([`crate::frame_alloc`]). A frame's machine frame is its
//!   p2m entry (`start_info.mfn_list`); the M2P at `0xFFFF800000000000`
//!   maps back.
//! - **Direct map.** Guest frame `pfn` is at `VIRT_BASE + pfn * 4096`, as
//!   in the boot mapping; [`init`] extends that mapping from where the
//!   domain builder stopped to the last frame. Every free frame is mapped
//!   there read-write; a frame in use as a page table is mapped there
//!   read-only (which is how the kernel reads tables).
//! - **Page tables.** [`crate::pagetable`]'s algorithms over `Hv`: new
//!   tables are zeroed through the direct map, made read-only with
//!   `update_va_mapping`, pinned with `mmuext_op`, and linked with
//!   `mmu_update`.
//! - **Heap.** The global allocator: a [`FreeList`] over pages mapped at
//!   [`HEAP_BASE`], grown a few pages at a time.
//!
//! Nothing here runs before [`init`]; until then (or if it failed) every
//! operation is `MmError::Unavailable` and the heap is empty.

use crate::frame_alloc::FrameBitmap;
use crate::heap::FreeList;
use crate::hypercall::hv;
use crate::layout::{pfn_of, va_of_pfn, HEAP_BASE, HEAP_MAX, INVALID_P2M_ENTRY, MAX_DIRECT_PFNS, PAGE_SIZE};
use crate::lock::Lock;
use crate::pagetable::{self, leaf_entry, Level, MmError, PageTables, Prot, Space, ENTRIES, HYPERVISOR_SLOTS};
use crate::runtime::start_info;
use abi::arch::MACH2PHYS_VIRT_START;
use abi::mm::{
    MmuUpdate, MmuextOp, MMUEXT_NEW_BASEPTR, MMUEXT_NEW_USER_BASEPTR, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE,
    MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE, MMUEXT_UNPIN_TABLE, MMU_MACHPHYS_UPDATE, UVMF_INVLPG, UVMF_LOCAL,
};
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

/// Words of the frame bitmap: one bit for every frame the direct map can
/// hold (64 KiB).
const BITMAP_WORDS: usize = (MAX_DIRECT_PFNS / 64) as usize;

/// Pages the heap maps at a time, at least.
const HEAP_GROW_PAGES: u64 = 16;

/// What [`init`] found and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Info {
    /// `start_info.nr_pages`.
    pub nr_pages: u64,
    /// The first frame after the boot layout (after the boot stack page).
    pub first_free_pfn: u64,
    /// Where the domain builder's mapping ended: frames from here on were
    /// not mapped at boot.
    pub boot_mapped_pfns: u64,
    /// The frames the direct map covers (`nr_pages`, at most
    /// [`MAX_DIRECT_PFNS`]).
    pub usable_pfns: u64,
    /// Page tables made to extend the direct map.
    pub tables_made: u64,
    /// The boot L4's machine frame.
    pub kernel_root: u64,
}

/// A guest frame: its pseudo-physical and machine frame numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Pseudo-physical frame number.
    pub pfn: u64,
    /// Machine frame number (its p2m entry).
    pub mfn: u64,
}

impl Frame {
    /// The frame's address in the direct map.
    pub const fn va(&self) -> u64 {
        va_of_pfn(self.pfn)
    }

    /// Fills the frame with zeroes through the direct map.
    ///
    /// # Safety
    ///
    /// The frame is the caller's, mapped read-write in the direct map (as
    /// every frame from [`alloc_frame`] is), and no reference points into
    /// it.
    pub unsafe fn zero(&self) {
        // SAFETY: the caller's promise.
        unsafe { core::ptr::write_bytes(self.va() as *mut u8, 0, PAGE_SIZE as usize) };
    }
}

struct Mm {
    ready: bool,
    frames: FrameBitmap<BITMAP_WORDS>,
    info: Info,
}

static MM: Lock<Mm> = Lock::new(Mm { ready: false, frames: FrameBitmap::empty(), info: Info::new() });

/// `start_info.mfn_list` and `nr_pages`, for the lock-free read paths
/// (table reads, p2m lookups) once [`init`] has set them.
static P2M_VA: AtomicU64 = AtomicU64::new(0);
static NR_PAGES: AtomicU64 = AtomicU64::new(0);
static KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);

impl Info {
    const fn new() -> Info {
        Info { nr_pages: 0, first_free_pfn: 0, boot_mapped_pfns: 0, usable_pfns: 0, tables_made: 0, kernel_root: 0 }
    }
}

// ---- p2m and M2P ---------------------------------------------------------

/// The machine frame of guest frame `pfn` (its p2m entry), if it has one.
pub fn p2m(pfn: u64) -> Option<u64> {
    let base = P2M_VA.load(Ordering::Relaxed);
    if base == 0 || pfn >= NR_PAGES.load(Ordering::Relaxed) {
        return None;
    }
    // SAFETY: `init` checked (through `runtime::check_boot`) that the
    // p2m array of `nr_pages` entries lies in the boot mapping, which
    // maps it read-write for the domain's life; entries are aligned u64s.
    let mfn = unsafe { (base as *const u64).wrapping_add(pfn as usize).read_volatile() };
    (mfn != INVALID_P2M_ENTRY).then_some(mfn)
}

/// Sets guest frame `pfn`'s p2m entry ([`INVALID_P2M_ENTRY`] for none).
fn set_p2m(pfn: u64, mfn: u64) {
    let base = P2M_VA.load(Ordering::Relaxed);
    if base != 0 && pfn < NR_PAGES.load(Ordering::Relaxed) {
        // SAFETY: as in `p2m`; the p2m is the guest's own array, which
        // only this module writes.
        unsafe { (base as *mut u64).wrapping_add(pfn as usize).write_volatile(mfn) };
    }
}

/// `M2P[mfn]`: the guest frame the hypervisor's table names for machine
/// frame `mfn`.
///
/// Only for frames the domain owns (the M2P is mapped as far as the
/// machine's memory goes; past it, the read faults).
pub fn m2p(mfn: u64) -> u64 {
    let at = MACH2PHYS_VIRT_START + mfn.wrapping_mul(8);
    // SAFETY: the hypervisor maps the M2P read-only in every guest L4;
    // the caller names a machine frame of this domain, whose entry exists.
    unsafe { (at as *const u64).read_volatile() }
}

/// The guest frame of machine frame `mfn`, if it is one of ours (the M2P
/// names a pfn whose p2m entry names `mfn` back).
pub fn pfn_of_mfn(mfn: u64) -> Option<u64> {
    let pfn = m2p(mfn);
    (p2m(pfn) == Some(mfn)).then_some(pfn)
}

/// Entry `index` of the page table in machine frame `table_mfn`, read
/// through the table's read-only mapping in the direct map.
pub fn read_table_entry(table_mfn: u64, index: usize) -> Result<u64, MmError> {
    let pfn = pfn_of_mfn(table_mfn).ok_or(MmError::UnknownTable(table_mfn))?;
    if pfn >= MAX_DIRECT_PFNS || index >= ENTRIES {
        return Err(MmError::UnknownTable(table_mfn));
    }
    // SAFETY: every frame of ours below MAX_DIRECT_PFNS is mapped in the
    // direct map once `init` ran (p2m() was Some, so it did); page tables
    // are mapped read-only there and only the hypervisor writes them.
    Ok(unsafe { (va_of_pfn(pfn) as *const u64).wrapping_add(index).read_volatile() })
}

// ---- the hypervisor side of pagetable::PageTables --------------------------

/// Page-table changes through hypercalls, taking table frames from
/// `frames`.
struct Hv<'a> {
    frames: &'a mut FrameBitmap<BITMAP_WORDS>,
    made: u64,
}

/// `mmuext_op` with one op; `what` names it in errors.
fn mmuext(what: &'static str, cmd: u32, arg1: u64) -> Result<(), MmError> {
    let op = MmuextOp { cmd, _pad0: 0, arg1, arg2: 0 };
    // SAFETY: the ops this module issues (pin, unpin, base pointers) keep
    // the kernel mapped: pinning only validates, unpinning only drops a
    // reference, and callers of the base-pointer ops promise the new
    // tables map the kernel.
    unsafe { hv().mmuext_op(&[op]) }.map(drop).map_err(|e| MmError::batch(what, e))
}

/// `update_va_mapping(va, entry, UVMF_INVLPG | UVMF_LOCAL)`.
///
/// # Safety
///
/// No reference points into the page at `va` that the change invalidates.
unsafe fn update_va(va: u64, entry: u64) -> Result<(), MmError> {
    // SAFETY: forwarded to the caller.
    unsafe { hv().update_va_mapping(va, entry, UVMF_INVLPG | UVMF_LOCAL) }
        .map(drop)
        .map_err(|e| MmError::Hypercall("update_va_mapping", e, 0))
}

const fn pin_cmd(level: Level) -> u32 {
    match level {
        Level::L1 => MMUEXT_PIN_L1_TABLE,
        Level::L2 => MMUEXT_PIN_L2_TABLE,
        Level::L3 => MMUEXT_PIN_L3_TABLE,
        Level::L4 => MMUEXT_PIN_L4_TABLE,
    }
}

/// Makes the free frame `pfn` a pinned table of `level` whose entries are
/// `fill` (zero for a new table): writes them through the direct map,
/// maps the frame read-only there, pins it. Returns its machine frame; on
/// failure the frame is writable and free to reuse again.
fn make_table(pfn: u64, level: Level, fill: impl Fn(usize) -> u64) -> Result<u64, MmError> {
    let mfn = p2m(pfn).ok_or(MmError::OutOfFrames)?;
    let va = va_of_pfn(pfn);
    let root = KERNEL_ROOT.load(Ordering::Relaxed);
    if pagetable::lookup(&Reader, root, va)?.is_none_or(|e| e & crate::layout::pte::RW == 0) {
        return Err(MmError::Unavailable("a frame for a page table is not mapped writable yet"));
    }
    let table = va as *mut u64;
    for i in 0..ENTRIES {
        // SAFETY: the frame is free, so it is ours alone, and mapped
        // read-write at `va` (checked above).
        unsafe { table.wrapping_add(i).write_volatile(fill(i)) };
    }
    // SAFETY: nothing references the frame; it only loses write access.
    unsafe { update_va(va, leaf_entry(mfn, Prot::KERNEL_RO)) }?;
    if let Err(e) = mmuext("mmuext_op(pin)", pin_cmd(level), mfn) {
        // SAFETY: as above; the frame gets its write access back.
        let _ = unsafe { update_va(va, leaf_entry(mfn, Prot::KERNEL_RW)) };
        return Err(e);
    }
    Ok(mfn)
}

/// Undoes [`make_table`] for a table nothing links to any more: unpins it
/// and maps it read-write again. Returns its pfn.
fn unmake_table(mfn: u64) -> Result<u64, MmError> {
    let pfn = pfn_of_mfn(mfn).ok_or(MmError::UnknownTable(mfn))?;
    mmuext("mmuext_op(unpin)", MMUEXT_UNPIN_TABLE, mfn)?;
    // SAFETY: no Rust reference points into a page table.
    unsafe { update_va(va_of_pfn(pfn), leaf_entry(mfn, Prot::KERNEL_RW)) }?;
    Ok(pfn)
}

/// Reads tables; makes no changes (the lock-free half of [`Hv`]).
struct Reader;

impl PageTables for Reader {
    fn read(&self, table_mfn: u64, index: usize) -> Result<u64, MmError> {
        read_table_entry(table_mfn, index)
    }
    fn new_table(&mut self, _: Level) -> Result<u64, MmError> {
        Err(MmError::Unavailable("read-only walk"))
    }
    fn release_table(&mut self, _: u64) -> Result<(), MmError> {
        Err(MmError::Unavailable("read-only walk"))
    }
    fn update(&mut self, _: &[MmuUpdate]) -> Result<(), MmError> {
        Err(MmError::Unavailable("read-only walk"))
    }
    fn update_current(&mut self, _: u64, _: u64) -> Result<(), MmError> {
        Err(MmError::Unavailable("read-only walk"))
    }
}

impl PageTables for Hv<'_> {
    fn read(&self, table_mfn: u64, index: usize) -> Result<u64, MmError> {
        read_table_entry(table_mfn, index)
    }

    fn new_table(&mut self, level: Level) -> Result<u64, MmError> {
        let pfn = self.frames.alloc().ok_or(MmError::OutOfFrames)?;
        match make_table(pfn, level, |_| 0) {
            Ok(mfn) => {
                self.made += 1;
                Ok(mfn)
            }
            Err(e) => {
                let _ = self.frames.free(pfn);
                Err(e)
            }
        }
    }

    fn release_table(&mut self, table_mfn: u64) -> Result<(), MmError> {
        let pfn = unmake_table(table_mfn)?;
        self.frames.free(pfn).map_err(|_| MmError::UnknownTable(table_mfn))
    }

    fn update(&mut self, reqs: &[MmuUpdate]) -> Result<(), MmError> {
        // SAFETY: the algorithms of `pagetable` only link new tables, add
        // mappings where there were none, and change or remove mappings
        // their callers own.
        match unsafe { hv().mmu_update(reqs) } {
            Ok(done) if done as usize == reqs.len() => Ok(()),
            Ok(done) => Err(MmError::Hypercall("mmu_update", abi::Errno::EIO, done)),
            Err(e) => Err(MmError::batch("mmu_update", e)),
        }
    }

    fn update_current(&mut self, va: u64, entry: u64) -> Result<(), MmError> {
        // SAFETY: as in `update`.
        unsafe { update_va(va, entry) }
    }
}

// ---- set up ----------------------------------------------------------------

/// Sets up the frame allocator and extends the direct map over every
/// frame. Once only; the second call returns the first's [`Info`].
pub fn init() -> Result<Info, MmError> {
    let mut mm = MM.lock();
    if mm.ready {
        return Ok(mm.info);
    }
    crate::runtime::check_boot().map_err(MmError::Unavailable)?;
    let si = start_info();
    NR_PAGES.store(si.nr_pages, Ordering::Relaxed);
    P2M_VA.store(si.mfn_list, Ordering::Relaxed);
    let pt_pfn = pfn_of(si.pt_base).ok_or(MmError::Unavailable("pt_base is below VIRT_BASE"))?;
    let kernel_root = p2m(pt_pfn).ok_or(MmError::Unavailable("pt_base has no machine frame"))?;
    KERNEL_ROOT.store(kernel_root, Ordering::Relaxed);

    // The boot layout ends with the page tables and one stack page.
    let first_free = pt_pfn + si.nr_pt_frames + 1;
    let usable = si.nr_pages.min(MAX_DIRECT_PFNS);
    if (first_free..usable).any(|pfn| p2m(pfn).is_none()) {
        return Err(MmError::Unavailable("the p2m has frames without machine frames"));
    }
    // Where the builder's mapping ends: it maps from VIRT_BASE up, past
    // the boot stack to a 4 MiB boundary.
    let mut boot_end = first_free;
    while boot_end < usable && pagetable::lookup(&Reader, kernel_root, va_of_pfn(boot_end))?.is_some() {
        boot_end += 1;
    }
    let Mm { frames, info, ready } = &mut *mm;
    frames.reset(first_free, usable);
    let mut t = Hv { frames, made: 0 };
    let space = Space { root: kernel_root, current: true };
    // Lowest-first allocation takes the tables from the builder's spare
    // mapped frames, then from frames this loop has already mapped.
    let count = usable.saturating_sub(boot_end);
    pagetable::map_range(
        &mut t,
        space,
        va_of_pfn(boot_end),
        count,
        |i| p2m(boot_end + i).unwrap_or(0),
        Prot::KERNEL_RW,
    )?;
    *info = Info {
        nr_pages: si.nr_pages,
        first_free_pfn: first_free,
        boot_mapped_pfns: boot_end,
        usable_pfns: usable,
        tables_made: t.made,
        kernel_root,
    };
    *ready = true;
    Ok(*info)
}

/// What [`init`] found, if it ran and succeeded.
pub fn info() -> Option<Info> {
    let mm = MM.lock();
    mm.ready.then_some(mm.info)
}

/// Frames free now.
pub fn free_frames() -> u64 {
    MM.lock().frames.free_count()
}

/// Runs `f` with the page-table operations, once [`init`] succeeded.
fn with_hv<R>(f: impl FnOnce(&mut Hv<'_>) -> Result<R, MmError>) -> Result<R, MmError> {
    let mut mm = MM.lock();
    if !mm.ready {
        return Err(MmError::Unavailable("mm::init has not succeeded"));
    }
    let mut t = Hv { frames: &mut mm.frames, made: 0 };
    f(&mut t)
}

/// The kernel's address space: the boot L4, in use.
pub fn kernel_space() -> Space {
    Space { root: KERNEL_ROOT.load(Ordering::Relaxed), current: true }
}

// ---- frames ----------------------------------------------------------------

/// A free frame, mapped read-write in the direct map (contents unknown).
pub fn alloc_frame() -> Result<Frame, MmError> {
    with_hv(|t| {
        let pfn = t.frames.alloc().ok_or(MmError::OutOfFrames)?;
        match p2m(pfn) {
            Some(mfn) => Ok(Frame { pfn, mfn }),
            None => Err(MmError::Unavailable("an allocated frame has no machine frame")),
        }
    })
}

/// Gives a frame back to the allocator.
///
/// The frame must be mapped read-write in the direct map again (not a
/// page table, not given to the hypervisor) and mapped nowhere else.
pub fn free_frame(frame: Frame) -> Result<(), MmError> {
    with_hv(|t| t.frames.free(frame.pfn).map_err(|_| MmError::Unavailable("freeing a frame that is not allocated")))
}

// ---- mappings ---------------------------------------------------------------

/// Maps frame `mfn` at the unmapped `va` in `space`, creating the tables
/// on the way.
pub fn map_in(space: Space, va: u64, mfn: u64, prot: Prot) -> Result<(), MmError> {
    with_hv(|t| pagetable::map(t, space, va, mfn, prot))
}

/// Maps frame `mfn` at the unmapped `va` in the kernel's space.
pub fn map(va: u64, mfn: u64, prot: Prot) -> Result<(), MmError> {
    map_in(kernel_space(), va, mfn, prot)
}

/// Unmaps `va` in the kernel's space; returns the entry that mapped it.
///
/// # Safety
///
/// No reference points into the page at `va`.
pub unsafe fn unmap(va: u64) -> Result<u64, MmError> {
    with_hv(|t| pagetable::unmap(t, kernel_space(), va))
}

/// Changes what the mapping at `va` in the kernel's space allows.
///
/// # Safety
///
/// No reference points into the page at `va` that needs what the new
/// protection takes away.
pub unsafe fn protect(va: u64, prot: Prot) -> Result<(), MmError> {
    with_hv(|t| pagetable::protect(t, kernel_space(), va, prot))
}

/// The present L1 entry mapping `va` in `root`'s tables, if any.
pub fn lookup_in(root: u64, va: u64) -> Result<Option<u64>, MmError> {
    pagetable::lookup(&Reader, root, va)
}

/// The L1 table covering `va` in the kernel's space, made if missing.
pub fn l1_table(va: u64) -> Result<u64, MmError> {
    with_hv(|t| pagetable::ensure_l1(t, kernel_space().root, va))
}

// ---- whole trees ------------------------------------------------------------

/// A new pinned L4 whose entries outside the hypervisor's slots are the
/// kernel L4's (so it maps everything the kernel does, through the same
/// L3 tables). Returns its machine frame.
pub fn copy_kernel_root() -> Result<u64, MmError> {
    let root = kernel_space().root;
    with_hv(|t| {
        let pfn = t.frames.alloc().ok_or(MmError::OutOfFrames)?;
        let fill = |i: usize| if HYPERVISOR_SLOTS.contains(&i) { 0 } else { read_table_entry(root, i).unwrap_or(0) };
        make_table(pfn, Level::L4, fill).inspect_err(|_| {
            let _ = t.frames.free(pfn);
        })
    })
}

/// A new address space with nothing mapped (a pinned, empty L4; the
/// hypervisor fills in its own slots).
pub fn new_space() -> Result<Space, MmError> {
    with_hv(|t| Ok(Space { root: t.new_table(Level::L4)?, current: false }))
}

/// Unpins and frees the tables of a tree that nothing uses any more: the
/// L4 at `root` and the tables below it in the lower half (an address
/// space from [`new_space`]), or just the L4 (from [`copy_kernel_root`],
/// whose lower tables are the kernel's). Frames mapped by the tree are
/// the caller's.
pub fn destroy_tree(root: u64, with_lower_half: bool) -> Result<(), MmError> {
    let mut tables = [0u64; 64];
    let mut n = 0;
    if with_lower_half {
        pagetable::lower_half_tables(&Reader, root, &mut |_, mfn| {
            *tables.get_mut(n).ok_or(MmError::Unavailable("too many tables to take down"))? = mfn;
            n += 1;
            Ok(())
        })?;
    } else {
        tables[0] = root;
        n = 1;
    }
    // Unpinning the L4 first drops its references to the L3s, and so on
    // down: after the last unpin, no table has a type any more.
    for &mfn in &tables[..n] {
        mmuext("mmuext_op(unpin)", MMUEXT_UNPIN_TABLE, mfn)?;
    }
    with_hv(|t| {
        for &mfn in &tables[..n] {
            let pfn = pfn_of_mfn(mfn).ok_or(MmError::UnknownTable(mfn))?;
            // SAFETY: no Rust reference points into a page table.
            unsafe { update_va(va_of_pfn(pfn), leaf_entry(mfn, Prot::KERNEL_RW)) }?;
            t.frames.free(pfn).map_err(|_| MmError::UnknownTable(mfn))?;
        }
        Ok(())
    })
}

/// `MMUEXT_NEW_BASEPTR`: the CPU uses the L4 at `mfn` from now on in
/// kernel mode.
///
/// # Safety
///
/// The tables map everything the kernel uses (its image, stacks, heap) as
/// the current ones do.
pub unsafe fn switch_kernel_root(mfn: u64) -> Result<(), MmError> {
    mmuext("mmuext_op(new_baseptr)", MMUEXT_NEW_BASEPTR, mfn)
}

/// `MMUEXT_NEW_USER_BASEPTR`: the L4 used in user mode (0: none).
pub fn set_user_root(mfn: u64) -> Result<(), MmError> {
    mmuext("mmuext_op(new_user_baseptr)", MMUEXT_NEW_USER_BASEPTR, mfn)
}

// ---- reservation -------------------------------------------------------------

/// Gives `frame`'s memory back to the hypervisor: unmaps it from the
/// direct map, `decrease_reservation`s its machine frame, and marks its
/// p2m entry invalid. The pfn stays the caller's, without memory, until
/// [`populate`].
///
/// # Safety
///
/// Nothing refers to the frame's contents.
pub unsafe fn release_to_hypervisor(frame: Frame) -> Result<(), MmError> {
    if p2m(frame.pfn) != Some(frame.mfn) {
        return Err(MmError::Unavailable("the frame's p2m entry does not name it"));
    }
    // SAFETY: the caller's promise.
    unsafe { update_va(frame.va(), 0) }?;
    // SAFETY: unmapped above; the caller promises nothing else uses it.
    match unsafe { hv().decrease_reservation(&[frame.mfn], 0) } {
        Ok(1) => {
            set_p2m(frame.pfn, INVALID_P2M_ENTRY);
            Ok(())
        }
        r => {
            // SAFETY: still our frame; mapped back as it was.
            let _ = unsafe { update_va(frame.va(), leaf_entry(frame.mfn, Prot::KERNEL_RW)) };
            Err(MmError::Hypercall("memory_op(decrease_reservation)", r.err().unwrap_or(abi::Errno::EIO), 0))
        }
    }
}

/// Gives the memoryless `pfn` a new machine frame: `increase_reservation`
/// of one page, `MMU_MACHPHYS_UPDATE` to record `pfn` in the M2P, the p2m
/// entry, and the direct mapping (read-write).
pub fn populate(pfn: u64) -> Result<Frame, MmError> {
    if pfn >= NR_PAGES.load(Ordering::Relaxed) || p2m(pfn).is_some() {
        return Err(MmError::Unavailable("populating a pfn that has memory"));
    }
    let mut got = [0u64; 1];
    match hv().increase_reservation(&mut got, 0) {
        Ok(1) => {}
        r => {
            return Err(MmError::Hypercall("memory_op(increase_reservation)", r.err().unwrap_or(abi::Errno::ENOMEM), 0))
        }
    }
    let mfn = got[0];
    let req = MmuUpdate { ptr: (mfn << 12) | MMU_MACHPHYS_UPDATE, val: pfn };
    // SAFETY: an M2P update changes no mapping.
    unsafe { hv().mmu_update(&[req]) }.map_err(|e| MmError::batch("mmu_update(machphys)", e))?;
    set_p2m(pfn, mfn);
    // SAFETY: the direct-map slot of a memoryless pfn maps nothing.
    unsafe { update_va(va_of_pfn(pfn), leaf_entry(mfn, Prot::KERNEL_RW)) }?;
    Ok(Frame { pfn, mfn })
}

// ---- heap ----------------------------------------------------------------------

struct Heap {
    list: FreeList,
    /// The heap maps `[HEAP_BASE, end)`.
    end: u64,
}

static HEAP: Lock<Heap> = Lock::new(Heap { list: FreeList::new(), end: HEAP_BASE });

/// Bytes the heap has mapped so far.
pub fn heap_mapped_bytes() -> u64 {
    HEAP.lock().end - HEAP_BASE
}

/// Maps at least `bytes` more at the heap's end and gives them to its list.
fn grow(heap: &mut Heap, bytes: u64) -> Result<(), MmError> {
    let pages = bytes.div_ceil(PAGE_SIZE).max(HEAP_GROW_PAGES);
    if heap.end + pages * PAGE_SIZE > HEAP_BASE + HEAP_MAX {
        return Err(MmError::Unavailable("the heap is full"));
    }
    let start = heap.end;
    let mut result = Ok(());
    for _ in 0..pages {
        let mapped = alloc_frame().and_then(|frame| {
            map(heap.end, frame.mfn, Prot::KERNEL_RW).inspect_err(|_| {
                let _ = free_frame(frame);
            })
        });
        if let Err(e) = mapped {
            result = Err(e);
            break;
        }
        heap.end += PAGE_SIZE;
    }
    // Whatever got mapped is the heap's, even if not all of it did.
    if heap.end > start {
        // SAFETY: [start, end) is freshly mapped read-write, used by
        // nothing, and stays mapped for the kernel's life.
        unsafe { heap.list.add_region(start as usize, (heap.end - start) as usize) };
    }
    result
}

/// The kernel's global allocator: the heap at [`HEAP_BASE`]. Empty until
/// [`init`]; a failed allocation returns null (so `Vec::try_reserve`
/// reports it, and infallible allocations panic).
#[derive(Debug)]
pub struct KernelHeap;

// SAFETY: blocks come from the free list, which hands out each byte once
// until it is returned, over memory mapped for the kernel's life; the
// lock keeps the list consistent (re-entry returns null instead).
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(mut heap) = HEAP.try_lock() else {
            return core::ptr::null_mut();
        };
        if let Some(p) = heap.list.alloc(layout) {
            return p.as_ptr();
        }
        let want = (layout.size() + layout.align()) as u64;
        if grow(&mut heap, want).is_err() {
            return core::ptr::null_mut();
        }
        heap.list.alloc(layout).map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc` with
            // this layout.
            unsafe { HEAP.lock().list.dealloc(p, layout) };
        }
    }
}

#[global_allocator]
static ALLOCATOR: KernelHeap = KernelHeap;
