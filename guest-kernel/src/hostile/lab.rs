//! The hostile suite's workbench: the frames and tables attacks aim at,
//! the hypercalls they make (each answer kept as the errno's name), the
//! verdict, and the checks that an attack left no trace and the kernel
//! still works.
//!
//! Every attack runs in the scratch region (L4 slot 509): its first L1
//! holds [`TARGET_VA`], [`DATA_VA`], [`ALIVE_VA`] and [`LIST_VA`]; entries
//! [`FREE_L2_INDEX`], [`FREE_L3_INDEX`] and [`FREE_L4_SLOT`] of the scratch
//! tables and the kernel L4 are empty, for entries attacks try to add.

use crate::probe;
use abi::arch::MACH2PHYS_VIRT_START;
use abi::guest::BatchError;
use abi::hypercall::{MEMORY_OP, MMUEXT_OP, MMU_UPDATE};
use abi::mm::{
    MmuUpdate, MmuextOp, XenMachphysMfnList, DOMID_SELF, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE,
    MMUEXT_PIN_L4_TABLE, MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_UNPIN_TABLE, UVMF_INVLPG, UVMF_LOCAL, XENMEM_MACHPHYS_MFN_LIST,
};
use abi::Errno;
use core::fmt;
use guest_kernel::hypercall::hv;
use guest_kernel::layout::{table_index, INVALID_P2M_ENTRY, PAGE_SIZE, SCRATCH_BASE};
use guest_kernel::mm::{self, Frame};
use guest_kernel::pagetable::{entry_mfn, is_present, leaf_entry, pt_update, Level, Prot, ENTRIES};
use guest_kernel::runtime::start_info;
use guest_kernel::text::Msg;
use guest_kernel::{msg, println};

/// Where attacks try to map what they should not: unmapped between
/// attacks (entry 0 of the scratch L1).
pub const TARGET_VA: u64 = SCRATCH_BASE;
/// Where an attack maps a frame of its own when it needs one mapped.
pub const DATA_VA: u64 = SCRATCH_BASE + PAGE_SIZE;
/// Where the after-attack check maps, writes and unmaps a page.
pub const ALIVE_VA: u64 = SCRATCH_BASE + 2 * PAGE_SIZE;
/// A page attacks map for request lists; the page after it stays unmapped.
pub const LIST_VA: u64 = SCRATCH_BASE + 16 * PAGE_SIZE;
/// An empty entry of the scratch L2.
pub const FREE_L2_INDEX: usize = 100;
/// The scratch L2 entry a pinned L1 is linked at by the give-back attack.
pub const LINKED_L2_INDEX: usize = 102;
/// An empty entry of the scratch L3.
pub const FREE_L3_INDEX: usize = 100;
/// An empty slot of the kernel L4, outside the hypervisor's.
pub const FREE_L4_SLOT: usize = 300;
/// The L4 slot of the hypervisor's M2P (the first reserved slot).
pub const M2P_SLOT: usize = 256;
/// The L4 slot of the hypervisor's image (`XEN_VIRT_START`).
pub const IMAGE_SLOT: usize = 261;
/// A domain id no domain has.
pub const NO_SUCH_DOMAIN: u16 = 0x1234;

/// Page-table bits the kernel's layout has no name for.
pub mod bits {
    /// Write-through.
    pub const PWT: u64 = 1 << 3;
    /// Cache disable.
    pub const PCD: u64 = 1 << 4;
    /// Page size at L2/L3; the PAT bit at L1.
    pub const PSE_OR_PAT: u64 = 1 << 7;
}

/// What an attack came to.
#[derive(Debug)]
pub enum Verdict {
    /// The hypervisor refused it, or it had no effect: how.
    Refused(Msg),
    /// It had an effect: what.
    Succeeded(Msg),
}

/// One attack: `Err` when it could not even be set up.
pub type Attack = fn(&Lab) -> Result<Verdict, Msg>;

/// A hypercall's answer: its value, or the errno's name (with how many
/// requests of a batch were done before the failure).
pub type Call = Result<u64, Msg>;

/// The verdict on an attack that answered `r` and whose effect, if it
/// had one, `effect` describes.
pub fn judge(r: Call, effect: Option<Msg>) -> Verdict {
    match (effect, r) {
        (Some(what), _) => Verdict::Succeeded(what),
        (None, Err(how)) => Verdict::Refused(how),
        (None, Ok(v)) => Verdict::Refused(msg!("ignored (returned {v}, no effect)")),
    }
}

/// The verdict on an attack for which the hypercall's success is itself
/// the effect.
pub fn judge_call(r: Call, what: &str) -> Verdict {
    match r {
        Ok(v) => Verdict::Succeeded(msg!("{what} (returned {v})")),
        Err(how) => Verdict::Refused(how),
    }
}

/// An errno, by name.
pub fn errno(e: Errno) -> Msg {
    msg!("{}", e.name())
}

fn batch(r: Result<u32, BatchError>) -> Call {
    match r {
        Ok(done) => Ok(u64::from(done)),
        Err(e) if e.done == 0 => Err(errno(e.errno)),
        Err(e) => Err(msg!("{} after {} done", e.errno.name(), e.done)),
    }
}

/// Fails the set-up with a formatted reason unless `cond` holds.
macro_rules! need {
    ($cond:expr, $($why:tt)*) => {
        if !$cond {
            return Err(guest_kernel::msg!($($why)*));
        }
    };
}
pub(crate) use need;

/// Turns an `MmError` into a set-up failure naming `what`.
pub fn mm_err(what: &'static str) -> impl FnOnce(guest_kernel::pagetable::MmError) -> Msg {
    move |e| msg!("{what}: {e}")
}

// ---- hypercalls, answers kept ------------------------------------------------

/// `update_va_mapping(va, val, UVMF_INVLPG)`.
pub fn uvm(va: u64, val: u64) -> Call {
    // SAFETY: attacks change only the scratch region's mappings, the
    // direct map's mappings of frames they own, and (if the hypervisor
    // lets them) what must stay unchanged; no Rust reference points into
    // any of those pages.
    unsafe { hv().update_va_mapping(va, val, UVMF_INVLPG | UVMF_LOCAL) }.map_err(errno)
}

/// `mmu_update(reqs)` for this domain.
pub fn mmu(reqs: &[MmuUpdate]) -> Call {
    // SAFETY: as in `uvm`: the requests touch the attack's own tables and
    // frames, or what the hypervisor must refuse.
    batch(unsafe { hv().mmu_update(reqs) })
}

/// A batch hypercall (`mmu_update` or `mmuext_op`) with every argument
/// chosen: `(result, *done)`.
///
/// # Safety
///
/// `list` and `count` describe requests that change nothing the kernel's
/// Rust code relies on, or that the hypervisor must refuse.
pub unsafe fn batch_raw(nr: u64, list: u64, count: u64, dom: u16) -> (Call, u32) {
    let mut done: u32 = 0;
    let args = [list, count, &mut done as *mut u32 as u64, u64::from(dom), 0];
    // SAFETY: the caller's promise for the list; `done` is a live u32.
    let r = unsafe { hv().call(nr, args) }.map_err(errno);
    (r, done)
}

/// `mmu_update(reqs)` on behalf of domain `dom`.
pub fn mmu_as(reqs: &[MmuUpdate], dom: u16) -> Call {
    // SAFETY: as in `mmu`.
    let (r, done) = unsafe { batch_raw(MMU_UPDATE, reqs.as_ptr() as u64, reqs.len() as u64, dom) };
    r.map(|_| u64::from(done))
}

/// One `mmuext_op` on behalf of domain `dom`.
pub fn ext_as(cmd: u32, arg1: u64, arg2: u64, dom: u16) -> Call {
    let op = MmuextOp { cmd, _pad0: 0, arg1, arg2 };
    // SAFETY: as in `mmu`; the op names the attack's own frames, or what
    // the hypervisor must refuse.
    let (r, done) = unsafe { batch_raw(MMUEXT_OP, &op as *const MmuextOp as u64, 1, dom) };
    r.map(|_| u64::from(done))
}

/// One `mmuext_op` for this domain.
pub fn ext(cmd: u32, arg1: u64, arg2: u64) -> Call {
    ext_as(cmd, arg1, arg2, DOMID_SELF)
}

/// `MMUEXT_TLB_FLUSH_LOCAL`.
pub fn flush_tlb() -> Result<(), Msg> {
    ext(MMUEXT_TLB_FLUSH_LOCAL, 0, 0).map(drop).map_err(|e| msg!("tlb flush: {e}"))
}

/// `memory_op(XENMEM_decrease_reservation)` of one machine frame: the
/// extents given back, `Err` for none.
pub fn give_back(mfn: u64) -> Call {
    // SAFETY: the attacks give back frames they own and still map, or
    // frames that are not theirs; either must not hurt this kernel.
    match unsafe { hv().decrease_reservation(&[mfn], 0) } {
        Ok(0) => Err(msg!("0 of 1 extents")),
        r => r.map_err(errno),
    }
}

/// The pages this domain holds.
pub fn reservation() -> Result<u64, Msg> {
    hv().current_reservation().map_err(|e| msg!("current_reservation: {e}"))
}

/// `%cr3` (emulated): the machine address of the current L4.
pub fn read_cr3() -> Result<u64, Msg> {
    let cr3: u64;
    let p = probe::probe!("mov {v}, cr3", v = out(reg) cr3);
    need!(p.seen.is_none(), "mov from %cr3 raised vector {}", p.seen.map_or(0, |s| s.vector));
    Ok(cr3)
}

// ---- looking ---------------------------------------------------------------------

/// Entry `index` of our table `table` (through its read-only mapping).
pub fn entry(table: u64, index: usize) -> Result<u64, Msg> {
    mm::read_table_entry(table, index).map_err(|e| msg!("reading entry {index} of table {table:#x}: {e}"))
}

/// All 512 entries of our table `table`.
pub fn entries(table: u64) -> Result<[u64; ENTRIES], Msg> {
    let mut all = [0; ENTRIES];
    for (i, e) in all.iter_mut().enumerate() {
        *e = entry(table, i)?;
    }
    Ok(all)
}

/// The L1 entry mapping `va` in the kernel's tables, if present.
pub fn mapped(va: u64) -> Result<Option<u64>, Msg> {
    mm::lookup_in(mm::kernel_space().root, va).map_err(|e| msg!("looking up {va:#x}: {e}"))
}

/// What an attack left mapped at [`TARGET_VA`], as its effect; unmapped
/// again.
pub fn target_effect() -> Result<Option<Msg>, Msg> {
    Ok(mapped(TARGET_VA)?.map(|e| {
        let _ = uvm(TARGET_VA, 0);
        msg!("{TARGET_VA:#x} maps entry {e:#x}")
    }))
}

/// What [`m2p_run`] reads for an entry whose read faulted.
pub const FAULTED: u64 = 0xdead_fa17_dead_fa17;

/// The M2P entries of machine frames `first..first + N`, read through the
/// hypervisor's read-only M2P ([`FAULTED`] where a read faults).
pub fn m2p_run<const N: usize>(first: u64) -> [u64; N] {
    core::array::from_fn(|i| probe::read_u64(m2p_va(first + i as u64)).unwrap_or(FAULTED))
}

/// The address of machine frame `mfn`'s M2P entry.
pub const fn m2p_va(mfn: u64) -> u64 {
    MACH2PHYS_VIRT_START + 8 * mfn
}

/// The M2P entries around the kernel L4's (`lab.root - 4..lab.root + 4`),
/// which live in the M2P frame `lab.m2p`.
pub fn m2p_window(lab: &Lab) -> [u64; 8] {
    m2p_run(lab.root - 4)
}

/// An L1 index.
pub const fn l1_index(va: u64) -> usize {
    table_index(va, 1)
}

fn pattern(seed: u64, i: u64) -> u64 {
    0xa5a5_0000_0000_0000 ^ (seed + i).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Writes the pattern for `seed` over our frame `f` (through the direct map).
pub fn fill(f: Frame, seed: u64) {
    for i in 0..PAGE_SIZE / 8 {
        // SAFETY: `f` came from `mm::alloc_frame`, so it is mapped
        // read-write in the direct map and only the attack uses it.
        unsafe { (f.va() as *mut u64).wrapping_add(i as usize).write_volatile(pattern(seed, i)) };
    }
}

/// Whether the page at `va` holds the pattern for `seed` (a fault reads
/// as `false`).
pub fn holds(va: u64, seed: u64) -> bool {
    (0..PAGE_SIZE / 8).all(|i| probe::read_u64(va + 8 * i).is_ok_and(|v| v == pattern(seed, i)))
}

// ---- entries -------------------------------------------------------------------

/// Tries to write `val` into the empty entry `index` of our table
/// `table`; clears it again if that worked.
pub fn try_entry(table: u64, index: usize, val: u64) -> Result<Verdict, Msg> {
    need!(!is_present(entry(table, index)?), "entry {index} of {table:#x} is in use");
    let r = mmu(&[pt_update(table, index, val)]);
    let now = entry(table, index)?;
    let effect = is_present(now).then(|| {
        let _ = mmu(&[pt_update(table, index, 0)]);
        let _ = flush_tlb();
        msg!("entry {index} of {table:#x} became {now:#x}")
    });
    Ok(judge(r, effect))
}

// ---- frames and tables -----------------------------------------------------------

/// A free frame of ours, read-write in the direct map, zeroed.
pub fn data_frame() -> Result<Frame, Msg> {
    let f = mm::alloc_frame().map_err(mm_err("alloc_frame"))?;
    // SAFETY: a free frame: mapped read-write in the direct map, ours alone.
    unsafe { f.zero() };
    Ok(f)
}

/// Gives `f` back to the allocator (it must be read-write in the direct
/// map again and mapped nowhere else).
pub fn free(f: Frame) -> Result<(), Msg> {
    mm::free_frame(f).map_err(mm_err("free_frame"))
}

/// Maps `f` read-only in the direct map.
pub fn make_ro(f: Frame) -> Result<(), Msg> {
    uvm(f.va(), leaf_entry(f.mfn, Prot::KERNEL_RO))
        .map(drop)
        .map_err(|e| msg!("making pfn {:#x} read-only: {e}", f.pfn))
}

/// Maps `f` read-write in the direct map again.
pub fn make_rw(f: Frame) -> Result<(), Msg> {
    uvm(f.va(), leaf_entry(f.mfn, Prot::KERNEL_RW)).map(drop).map_err(|e| msg!("making pfn {:#x} writable: {e}", f.pfn))
}

/// The `MMUEXT_PIN_Lx_TABLE` command for `level`.
pub const fn pin_cmd(level: Level) -> u32 {
    match level {
        Level::L1 => MMUEXT_PIN_L1_TABLE,
        Level::L2 => MMUEXT_PIN_L2_TABLE,
        Level::L3 => MMUEXT_PIN_L3_TABLE,
        Level::L4 => MMUEXT_PIN_L4_TABLE,
    }
}

/// A frame of ours holding `fill(i)` in entry `i`, read-only in the direct
/// map but not pinned (so a hypervisor may give it a table type).
pub fn readonly_frame(fill: impl Fn(usize) -> u64) -> Result<Frame, Msg> {
    let f = data_frame()?;
    for i in 0..ENTRIES {
        // SAFETY: as in `fill`.
        unsafe { (f.va() as *mut u64).wrapping_add(i).write_volatile(fill(i)) };
    }
    if let Err(e) = make_ro(f) {
        let _ = free(f);
        return Err(e);
    }
    Ok(f)
}

/// A pinned table of `level` holding `fill(i)` in entry `i`, read-only in
/// the direct map.
pub fn pinned_table(level: Level, fill: impl Fn(usize) -> u64) -> Result<Frame, Msg> {
    let f = readonly_frame(fill)?;
    if let Err(e) = ext(pin_cmd(level), f.mfn, 0) {
        let _ = make_rw(f).and_then(|()| free(f));
        return Err(msg!("pinning an L{} table: {e}", level.number()));
    }
    Ok(f)
}

/// Undoes [`pinned_table`] (or [`readonly_frame`]): unpins `f` if it is
/// pinned, maps it read-write again and frees it.
pub fn release_table(f: Frame) -> Result<(), Msg> {
    let _ = ext(MMUEXT_UNPIN_TABLE, f.mfn, 0);
    make_rw(f)?;
    free(f)
}

/// Records in the p2m that `pfn` has no memory (its frame went back to
/// the hypervisor behind `mm`'s back, as an attack may make happen), so
/// that `mm::populate` can give it a new one.
pub fn forget_frame(pfn: u64) {
    let si = start_info();
    if pfn < si.nr_pages {
        // SAFETY: the p2m is this kernel's own array of `nr_pages` u64s,
        // mapped read-write for the domain's life (checked at boot by
        // `mm::init`); the pfn's frame is gone, so the entry must say so.
        unsafe { (si.mfn_list as *mut u64).wrapping_add(pfn as usize).write_volatile(INVALID_P2M_ENTRY) };
    }
}

/// After a frame of ours (pfn `pfn`, no longer mapped anywhere) went back
/// to the hypervisor: gives the pfn a new frame and returns it to the
/// allocator.
pub fn replace_lost_frame(pfn: u64) -> Result<(), Msg> {
    forget_frame(pfn);
    let g = mm::populate(pfn).map_err(mm_err("repopulating a pfn whose frame was given back"))?;
    free(g)
}

// ---- the lab -----------------------------------------------------------------------

/// What the attacks aim at.
#[derive(Clone, Copy, Debug)]
pub struct Lab {
    /// The kernel L4 (the current base pointer, pinned).
    pub root: u64,
    /// The scratch L3, L2 and L1 covering [`TARGET_VA`] (validated, in use).
    pub l3: u64,
    /// See `l3`.
    pub l2: u64,
    /// See `l3`.
    pub l1: u64,
    /// The machine frame of the M2P that holds the kernel L4's entry
    /// (from `XENMEM_machphys_mfn_list`).
    pub m2p: u64,
    /// The hypervisor page table the kernel L4's slot 256 names.
    pub hv_m2p_table: u64,
    /// The hypervisor page table the kernel L4's slot 261 names (part of
    /// the hypervisor's image on Xen and here).
    pub hv_image_table: u64,
}

impl fmt::Display for Lab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "root {:#x} scratch l3 {:#x} l2 {:#x} l1 {:#x} m2p frame {:#x} hypervisor tables {:#x} (slot {M2P_SLOT}) {:#x} (slot {IMAGE_SLOT})",
            self.root, self.l3, self.l2, self.l1, self.m2p, self.hv_m2p_table, self.hv_image_table
        )
    }
}

impl Lab {
    /// Finds the targets and makes the scratch tables; `mm::init` ran.
    pub fn set_up() -> Result<Lab, Msg> {
        let root = mm::kernel_space().root;
        let l1 = mm::l1_table(TARGET_VA).map_err(mm_err("the scratch L1"))?;
        let l3 = entry_mfn(entry(root, table_index(TARGET_VA, 4))?);
        let l2 = entry_mfn(entry(l3, table_index(TARGET_VA, 3))?);
        need!(entry_mfn(entry(l2, table_index(TARGET_VA, 2))?) == l1, "the scratch tables do not lead to their L1");
        for (table, index) in [(l2, FREE_L2_INDEX), (l2, LINKED_L2_INDEX), (l3, FREE_L3_INDEX), (root, FREE_L4_SLOT)] {
            need!(!is_present(entry(table, index)?), "entry {index} of table {table:#x} is in use");
        }
        let hv_slot = |slot: usize| -> Result<u64, Msg> {
            let e = entry(root, slot)?;
            need!(is_present(e), "the kernel L4's slot {slot} is empty");
            Ok(entry_mfn(e))
        };
        Ok(Lab {
            root,
            l3,
            l2,
            l1,
            m2p: m2p_frame_of(root)?,
            hv_m2p_table: hv_slot(M2P_SLOT)?,
            hv_image_table: hv_slot(IMAGE_SLOT)?,
        })
    }
}

/// Extents of `XENMEM_machphys_mfn_list` asked for (each 2 MiB of M2P,
/// for 1 GiB of machine memory).
const M2P_EXTENTS: usize = 64;

/// The machine frame of the M2P that holds machine frame `mfn`'s entry.
fn m2p_frame_of(mfn: u64) -> Result<u64, Msg> {
    let mut mfns = [0u64; M2P_EXTENTS];
    let mut list = XenMachphysMfnList {
        max_extents: M2P_EXTENTS as u32,
        extent_start: mfns.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: the hypervisor reads and writes `list` and writes at most
    // `M2P_EXTENTS` u64s into `mfns`; nothing else changes.
    let r = unsafe { hv().call(MEMORY_OP, [XENMEM_MACHPHYS_MFN_LIST.into(), &mut list as *mut _ as u64, 0, 0, 0]) };
    r.map_err(|e| msg!("memory_op(machphys_mfn_list): {e}"))?;
    let extent = (mfn >> 18) as usize;
    need!(extent < list.nr_extents as usize, "machphys_mfn_list gave {} extents, want {}", list.nr_extents, extent + 1);
    Ok(mfns[extent] + ((mfn >> 9) & 511))
}

// ---- after each attack -------------------------------------------------------------

/// What must be the same before and after an attack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    /// Frames free in the kernel's allocator.
    pub free_frames: u64,
    /// `current_reservation`.
    pub reservation: u64,
    /// The kernel L4's hypervisor slots 256 and 261.
    pub hv_slots: [u64; 2],
}

impl Counts {
    /// Takes the counts now.
    pub fn now(lab: &Lab) -> Result<Counts, Msg> {
        Ok(Counts {
            free_frames: mm::free_frames(),
            reservation: reservation()?,
            hv_slots: [entry(lab.root, M2P_SLOT)?, entry(lab.root, IMAGE_SLOT)?],
        })
    }
}

/// Checks that an attack left the kernel as it found it, and that it
/// still works: a hypercall, `%cr3`, the counts, nothing at
/// [`TARGET_VA`], and a page mapped, written, read back and unmapped.
pub fn aftermath(lab: &Lab, before: &Counts) -> Result<(), Msg> {
    hv().xen_version().map_err(|e| msg!("xen_version: {e}"))?;
    let cr3 = read_cr3()?;
    need!(cr3 >> 12 == lab.root, "%cr3 is {cr3:#x}, not the kernel L4");
    need!(mapped(TARGET_VA)?.is_none(), "{TARGET_VA:#x} is still mapped");
    let now = Counts::now(lab)?;
    need!(now == *before, "counts changed: {before:?} -> {now:?}");
    let f = data_frame()?;
    let r = (|| {
        mm::map(ALIVE_VA, f.mfn, Prot::KERNEL_RW).map_err(mm_err("mapping a page"))?;
        fill(f, 77);
        let ok = holds(ALIVE_VA, 77);
        // SAFETY: nothing references the page.
        unsafe { mm::unmap(ALIVE_VA) }.map_err(mm_err("unmapping a page"))?;
        need!(ok, "a page mapped after the attack does not read back what was written");
        Ok(())
    })();
    free(f)?;
    r
}

/// Prints an `INFO hostile` line.
pub fn info(what: fmt::Arguments<'_>) {
    println!("INFO hostile: {what}");
}
