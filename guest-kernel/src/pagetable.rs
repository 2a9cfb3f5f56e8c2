//! Four-level page tables changed only through the hypervisor: the walks,
//! entries and update batches of a PV kernel's virtual memory, written
//! against [`PageTables`] so they run on the host against a fake.
//!
//! A PV guest reads its page tables through read-only mappings and never
//! writes them. A new table is a zeroed frame whose own mapping has been
//! made read-only, pinned at its level (`MMUEXT_PIN_Lx_TABLE`), and only
//! then linked into its parent with `mmu_update(MMU_NORMAL_PT_UPDATE)`,
//! `ptr` being the machine address of the parent's entry. Leaf entries are
//! written the same way, except that changing or removing a mapping in the
//! tables the CPU is using goes through `update_va_mapping` with
//! `UVMF_INVLPG`, which also flushes the old translation.

use crate::layout::{pte, table_index, PAGE_SIZE};
use abi::guest::BatchError;
use abi::mm::{MmuUpdate, MMU_NORMAL_PT_UPDATE};
use abi::Errno;
use core::fmt;

/// Entries per table.
pub const ENTRIES: usize = 512;

/// The L4 slots the hypervisor owns (`0xFFFF800000000000` to
/// `0xFFFF880000000000`): a guest's entries there are ignored.
pub const HYPERVISOR_SLOTS: core::ops::Range<usize> = 256..272;

/// Most requests [`map_range`] sends in one `mmu_update`.
pub const MAX_BATCH: usize = 128;

/// A page-table level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Maps 4 KiB pages.
    L1 = 1,
    /// Points to L1 tables.
    L2 = 2,
    /// Points to L2 tables.
    L3 = 3,
    /// The root.
    L4 = 4,
}

impl Level {
    /// From the root down.
    pub const TOP_DOWN: [Level; 4] = [Level::L4, Level::L3, Level::L2, Level::L1];

    /// The level of the tables this level's entries point to.
    pub const fn below(self) -> Option<Level> {
        match self {
            Level::L4 => Some(Level::L3),
            Level::L3 => Some(Level::L2),
            Level::L2 => Some(Level::L1),
            Level::L1 => None,
        }
    }

    /// The level as a number (1..=4).
    pub const fn number(self) -> u32 {
        self as u32
    }
}

/// Why a page-table operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmError {
    /// The address is not page-aligned.
    Misaligned(u64),
    /// The address is non-canonical or in the hypervisor's L4 slots.
    NotGuestVa(u64),
    /// Something is already mapped at the address.
    AlreadyMapped(u64),
    /// Nothing is mapped at the address.
    NotMapped(u64),
    /// A large-page entry on the way to the address (PV guests have none).
    LargePage(u64),
    /// A table frame the kernel cannot read: not one of its frames.
    UnknownTable(u64),
    /// No free frame.
    OutOfFrames,
    /// Not initialised, or a region is full.
    Unavailable(&'static str),
    /// A hypercall failed: which, why, and how many requests of its batch
    /// were applied.
    Hypercall(&'static str, Errno, u32),
}

impl MmError {
    /// The error of hypercall `what` that stopped as `e` says.
    pub const fn batch(what: &'static str, e: BatchError) -> MmError {
        MmError::Hypercall(what, e.errno, e.done)
    }
}

impl fmt::Display for MmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MmError::Misaligned(va) => write!(f, "{va:#x} is not page-aligned"),
            MmError::NotGuestVa(va) => write!(f, "{va:#x} is not a guest address"),
            MmError::AlreadyMapped(va) => write!(f, "{va:#x} is already mapped"),
            MmError::NotMapped(va) => write!(f, "{va:#x} is not mapped"),
            MmError::LargePage(va) => write!(f, "a large page covers {va:#x}"),
            MmError::UnknownTable(mfn) => write!(f, "table frame {mfn:#x} is not one of ours"),
            MmError::OutOfFrames => write!(f, "out of frames"),
            MmError::Unavailable(why) => write!(f, "{why}"),
            MmError::Hypercall(what, e, done) => write!(f, "{what}: {e} ({done} done)"),
        }
    }
}

/// The machine address of entry `index` of the table in frame `mfn`: the
/// `ptr` of an `mmu_update` request that writes it.
pub const fn entry_maddr(table_mfn: u64, index: usize) -> u64 {
    (table_mfn << 12) + (index as u64) * 8
}

/// The machine frame an entry points to.
pub const fn entry_mfn(entry: u64) -> u64 {
    (entry & pte::ADDR_MASK) >> 12
}

/// Whether an entry is present.
pub const fn is_present(entry: u64) -> bool {
    entry & pte::PRESENT != 0
}

/// Flags of an entry that links a lower table: present, writable, user,
/// accessed, dirty (as Xen's domain builder writes them; the leaf decides
/// what is really allowed).
pub const TABLE_FLAGS: u64 = pte::PRESENT | pte::RW | pte::USER | pte::ACCESSED | pte::DIRTY;

/// The entry linking the table in frame `mfn`.
pub const fn table_entry(mfn: u64) -> u64 {
    (mfn << 12) | TABLE_FLAGS
}

/// What a mapping allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prot {
    /// Writes allowed.
    pub writable: bool,
    /// User mode may use it (the hypervisor sets this on every present L1
    /// entry of a 64-bit PV guest anyway; user mode only ever runs on the
    /// user task's own tables).
    pub user: bool,
}

impl Prot {
    /// Kernel, read-only.
    pub const KERNEL_RO: Prot = Prot { writable: false, user: false };
    /// Kernel, read-write.
    pub const KERNEL_RW: Prot = Prot { writable: true, user: false };
    /// User, read-only (and executable).
    pub const USER_RO: Prot = Prot { writable: false, user: true };
    /// User, read-write.
    pub const USER_RW: Prot = Prot { writable: true, user: true };
}

/// The L1 entry mapping frame `mfn` with `prot` (accessed set, and dirty
/// when writable, so the CPU need not set them).
pub const fn leaf_entry(mfn: u64, prot: Prot) -> u64 {
    let mut e = (mfn << 12) | pte::PRESENT | pte::ACCESSED;
    if prot.writable {
        e |= pte::RW | pte::DIRTY;
    }
    if prot.user {
        e |= pte::USER;
    }
    e
}

/// What an L1 entry allows.
pub const fn entry_prot(entry: u64) -> Prot {
    Prot { writable: entry & pte::RW != 0, user: entry & pte::USER != 0 }
}

/// Whether a guest may map `va`: canonical and outside the hypervisor's
/// slots.
pub const fn is_guest_va(va: u64) -> bool {
    let canonical = (((va as i64) << 16) >> 16) as u64 == va;
    let slot = table_index(va, 4);
    canonical && !(slot >= HYPERVISOR_SLOTS.start && slot < HYPERVISOR_SLOTS.end)
}

fn check_va(va: u64) -> Result<(), MmError> {
    if !va.is_multiple_of(PAGE_SIZE) {
        return Err(MmError::Misaligned(va));
    }
    if !is_guest_va(va) {
        return Err(MmError::NotGuestVa(va));
    }
    Ok(())
}

/// The request writing `val` into entry `index` of table `table_mfn`.
pub const fn pt_update(table_mfn: u64, index: usize, val: u64) -> MmuUpdate {
    MmuUpdate { ptr: entry_maddr(table_mfn, index) | MMU_NORMAL_PT_UPDATE, val }
}

/// The hypervisor operations the algorithms here need.
pub trait PageTables {
    /// Entry `index` of the table in machine frame `table_mfn`, read
    /// through its read-only mapping.
    fn read(&self, table_mfn: u64, index: usize) -> Result<u64, MmError>;

    /// A new table for `level`: a zeroed frame, mapped read-only, pinned.
    /// Returns its machine frame.
    fn new_table(&mut self, level: Level) -> Result<u64, MmError>;

    /// Undoes [`PageTables::new_table`] for a table linked nowhere.
    fn release_table(&mut self, table_mfn: u64) -> Result<(), MmError>;

    /// One `mmu_update` batch.
    fn update(&mut self, reqs: &[MmuUpdate]) -> Result<(), MmError>;

    /// Rewrites the L1 entry for `va` in the tables the CPU is using and
    /// flushes `va` from the TLB (`update_va_mapping` with `UVMF_INVLPG`).
    fn update_current(&mut self, va: u64, entry: u64) -> Result<(), MmError>;
}

/// An address space: a pinned L4 and whether the CPU is using it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space {
    /// The L4's machine frame.
    pub root: u64,
    /// Whether it is the current base pointer (then changes to existing
    /// mappings also flush the TLB).
    pub current: bool,
}

/// The frame of the L1 table covering `va`, if the tables down to it
/// exist.
pub fn l1_of<P: PageTables + ?Sized>(pt: &P, root: u64, va: u64) -> Result<Option<u64>, MmError> {
    if !is_guest_va(va) {
        return Err(MmError::NotGuestVa(va));
    }
    let mut table = root;
    for level in [Level::L4, Level::L3, Level::L2] {
        let e = pt.read(table, table_index(va, level.number()))?;
        if !is_present(e) {
            return Ok(None);
        }
        if level != Level::L4 && e & pte::PSE != 0 {
            return Err(MmError::LargePage(va));
        }
        table = entry_mfn(e);
    }
    Ok(Some(table))
}

/// The present L1 entry mapping `va`, if any.
pub fn lookup<P: PageTables + ?Sized>(pt: &P, root: u64, va: u64) -> Result<Option<u64>, MmError> {
    let Some(l1) = l1_of(pt, root, va)? else {
        return Ok(None);
    };
    let e = pt.read(l1, table_index(va, 1))?;
    Ok(is_present(e).then_some(e))
}

/// The L1 table covering `va`, creating the missing tables on the way: each
/// new one from [`PageTables::new_table`] (zeroed, read-only, pinned), then
/// linked into its parent by one `mmu_update`.
pub fn ensure_l1<P: PageTables + ?Sized>(pt: &mut P, root: u64, va: u64) -> Result<u64, MmError> {
    if !is_guest_va(va) {
        return Err(MmError::NotGuestVa(va));
    }
    let mut table = root;
    for level in [Level::L4, Level::L3, Level::L2] {
        let index = table_index(va, level.number());
        let e = pt.read(table, index)?;
        table = if is_present(e) {
            if level != Level::L4 && e & pte::PSE != 0 {
                return Err(MmError::LargePage(va));
            }
            entry_mfn(e)
        } else {
            let below = level.below().unwrap_or(Level::L1);
            let child = pt.new_table(below)?;
            if let Err(err) = pt.update(&[pt_update(table, index, table_entry(child))]) {
                // Best effort: the link failed, so nothing refers to it.
                let _ = pt.release_table(child);
                return Err(err);
            }
            child
        };
    }
    Ok(table)
}

/// Maps frame `mfn` at `va` (which must be unmapped) in `space`.
pub fn map<P: PageTables + ?Sized>(pt: &mut P, space: Space, va: u64, mfn: u64, prot: Prot) -> Result<(), MmError> {
    check_va(va)?;
    let l1 = ensure_l1(pt, space.root, va)?;
    let index = table_index(va, 1);
    if is_present(pt.read(l1, index)?) {
        return Err(MmError::AlreadyMapped(va));
    }
    // A new entry: no translation of it can be cached, so no flush.
    pt.update(&[pt_update(l1, index, leaf_entry(mfn, prot))])
}

/// Maps `count` pages from `va` (all unmapped) in `space`, page `i` to
/// frame `mfn_of(i)`, in batches of at most [`MAX_BATCH`] requests, one L1
/// table at a time.
pub fn map_range<P: PageTables + ?Sized>(
    pt: &mut P,
    space: Space,
    va: u64,
    count: u64,
    mut mfn_of: impl FnMut(u64) -> u64,
    prot: Prot,
) -> Result<(), MmError> {
    check_va(va)?;
    let mut reqs = [MmuUpdate::default(); MAX_BATCH];
    let mut i = 0;
    while i < count {
        let at = va + i * PAGE_SIZE;
        check_va(at)?;
        let l1 = ensure_l1(pt, space.root, at)?;
        let first = table_index(at, 1);
        let run = (count - i).min((ENTRIES - first) as u64).min(MAX_BATCH as u64) as usize;
        for (k, req) in reqs[..run].iter_mut().enumerate() {
            if is_present(pt.read(l1, first + k)?) {
                return Err(MmError::AlreadyMapped(at + k as u64 * PAGE_SIZE));
            }
            *req = pt_update(l1, first + k, leaf_entry(mfn_of(i + k as u64), prot));
        }
        pt.update(&reqs[..run])?;
        i += run as u64;
    }
    Ok(())
}

/// Rewrites the L1 entry of the mapped page `va`: through
/// `update_va_mapping` (with a flush) in the current space, by
/// `mmu_update` elsewhere. Returns the old entry.
fn rewrite<P: PageTables + ?Sized>(
    pt: &mut P,
    space: Space,
    va: u64,
    new: impl FnOnce(u64) -> u64,
) -> Result<u64, MmError> {
    check_va(va)?;
    let l1 = l1_of(pt, space.root, va)?.ok_or(MmError::NotMapped(va))?;
    let index = table_index(va, 1);
    let old = pt.read(l1, index)?;
    if !is_present(old) {
        return Err(MmError::NotMapped(va));
    }
    let val = new(old);
    if space.current {
        pt.update_current(va, val)?;
    } else {
        pt.update(&[pt_update(l1, index, val)])?;
    }
    Ok(old)
}

/// Unmaps the page at `va`; returns the entry that mapped it.
pub fn unmap<P: PageTables + ?Sized>(pt: &mut P, space: Space, va: u64) -> Result<u64, MmError> {
    rewrite(pt, space, va, |_| 0)
}

/// Changes what the mapping at `va` allows, keeping its frame.
pub fn protect<P: PageTables + ?Sized>(pt: &mut P, space: Space, va: u64, prot: Prot) -> Result<(), MmError> {
    rewrite(pt, space, va, |old| leaf_entry(entry_mfn(old), prot)).map(drop)
}

/// The tables of `root` below the hypervisor's slots (the lower half), as
/// `(level, mfn)`, parents before children; `visit` sees each. For taking
/// down a user address space.
pub fn lower_half_tables<P: PageTables + ?Sized>(
    pt: &P,
    root: u64,
    visit: &mut dyn FnMut(Level, u64) -> Result<(), MmError>,
) -> Result<(), MmError> {
    fn walk<P: PageTables + ?Sized>(
        pt: &P,
        level: Level,
        mfn: u64,
        slots: usize,
        visit: &mut dyn FnMut(Level, u64) -> Result<(), MmError>,
    ) -> Result<(), MmError> {
        visit(level, mfn)?;
        let Some(below) = level.below() else {
            return Ok(());
        };
        for i in 0..slots {
            let e = pt.read(mfn, i)?;
            if is_present(e) {
                if e & pte::PSE != 0 {
                    return Err(MmError::LargePage(0));
                }
                walk(pt, below, entry_mfn(e), ENTRIES, visit)?;
            }
        }
        Ok(())
    }
    walk(pt, Level::L4, root, HYPERVISOR_SLOTS.start, visit)
}

#[cfg(test)]
pub mod fake {
    //! A hypervisor in miniature for the host tests: frames, pinned tables
    //! and the checks Xen makes on `mmu_update`.

    use super::*;
    use abi::mm::MMU_MACHPHYS_UPDATE;
    use std::collections::HashMap;

    /// What a fake frame is.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Kind {
        /// Plain memory.
        Data,
        /// A pinned page table.
        Table(Level),
    }

    /// A fake machine with page tables.
    #[derive(Debug)]
    pub struct Fake {
        /// Frame contents and kinds.
        pub frames: HashMap<u64, (Kind, Box<[u64; ENTRIES]>)>,
        /// The next frame `new_table` hands out.
        pub next_mfn: u64,
        /// The L4 the CPU uses.
        pub current_root: u64,
        /// Every call, by name.
        pub log: Vec<String>,
        /// Fail the `n`th `update` call from now (1 = the next).
        pub fail_update: Option<u32>,
    }

    impl Fake {
        /// A machine with one empty, pinned, current L4.
        pub fn new() -> (Fake, Space) {
            let mut f =
                Fake { frames: HashMap::new(), next_mfn: 0x1000, current_root: 0, log: Vec::new(), fail_update: None };
            let root = f.new_table(Level::L4).unwrap();
            f.current_root = root;
            f.log.clear();
            (f, Space { root, current: true })
        }

        /// A data frame.
        pub fn data_frame(&mut self) -> u64 {
            let mfn = self.next_mfn;
            self.next_mfn += 1;
            self.frames.insert(mfn, (Kind::Data, Box::new([0; ENTRIES])));
            mfn
        }

        /// How many calls named `what` were made.
        pub fn count(&self, what: &str) -> usize {
            self.log.iter().filter(|l| l.starts_with(what)).count()
        }

        fn write(&mut self, ptr: u64, val: u64) -> Result<(), Errno> {
            if ptr & 3 == MMU_MACHPHYS_UPDATE {
                return Ok(());
            }
            let (mfn, index) = (ptr >> 12, ((ptr & 0xfff) / 8) as usize);
            let level = match self.frames.get(&mfn) {
                Some((Kind::Table(l), _)) => *l,
                _ => return Err(Errno::EINVAL),
            };
            if level == Level::L4 && HYPERVISOR_SLOTS.contains(&index) {
                return Err(Errno::EINVAL);
            }
            if is_present(val) {
                let target = self.frames.get(&entry_mfn(val)).map(|f| f.0.clone());
                match (level.below(), target) {
                    // A table must point to a table one level down.
                    (Some(below), Some(Kind::Table(l))) if l == below => {}
                    // A leaf may map data, or a table read-only.
                    (None, Some(Kind::Data)) => {}
                    (None, Some(Kind::Table(_))) if val & pte::RW == 0 => {}
                    _ => return Err(Errno::EINVAL),
                }
            }
            self.frames.get_mut(&mfn).unwrap().1[index] = val;
            Ok(())
        }
    }

    impl PageTables for Fake {
        fn read(&self, table_mfn: u64, index: usize) -> Result<u64, MmError> {
            match self.frames.get(&table_mfn) {
                Some((Kind::Table(_), e)) => Ok(e[index]),
                _ => Err(MmError::UnknownTable(table_mfn)),
            }
        }

        fn new_table(&mut self, level: Level) -> Result<u64, MmError> {
            let mfn = self.next_mfn;
            self.next_mfn += 1;
            self.frames.insert(mfn, (Kind::Table(level), Box::new([0; ENTRIES])));
            self.log.push(format!("new_table L{}", level.number()));
            Ok(mfn)
        }

        fn release_table(&mut self, table_mfn: u64) -> Result<(), MmError> {
            self.log.push(format!("release_table {table_mfn:#x}"));
            self.frames.remove(&table_mfn).map(drop).ok_or(MmError::UnknownTable(table_mfn))
        }

        fn update(&mut self, reqs: &[MmuUpdate]) -> Result<(), MmError> {
            self.log.push(format!("update {}", reqs.len()));
            if let Some(n) = self.fail_update.as_mut() {
                *n -= 1;
                if *n == 0 {
                    self.fail_update = None;
                    return Err(MmError::Hypercall("mmu_update", Errno::ENOMEM, 0));
                }
            }
            for (done, r) in reqs.iter().enumerate() {
                self.write(r.ptr, r.val).map_err(|e| MmError::Hypercall("mmu_update", e, done as u32))?;
            }
            Ok(())
        }

        fn update_current(&mut self, va: u64, entry: u64) -> Result<(), MmError> {
            self.log.push(format!("update_current {va:#x}"));
            let root = self.current_root;
            let l1 = l1_of(self, root, va)?.ok_or(MmError::Hypercall("update_va_mapping", Errno::EINVAL, 0))?;
            self.write(entry_maddr(l1, table_index(va, 1)), entry)
                .map_err(|e| MmError::Hypercall("update_va_mapping", e, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{Fake, Kind};
    use super::*;
    use crate::layout::{HEAP_BASE, SCRATCH_BASE, USER_CODE};

    #[test]
    fn entries_and_addresses() {
        assert_eq!(entry_maddr(0x1234, 5), 0x123_4028);
        assert_eq!(entry_mfn(table_entry(0xabcde)), 0xabcde);
        assert_eq!(table_entry(1) & 0xfff, 0x67);
        assert_eq!(leaf_entry(2, Prot::KERNEL_RO), 0x2021);
        assert_eq!(leaf_entry(2, Prot::KERNEL_RW), 0x2063);
        assert_eq!(leaf_entry(2, Prot::USER_RO), 0x2025);
        assert_eq!(entry_prot(leaf_entry(9, Prot::USER_RW)), Prot::USER_RW);
        assert_eq!(pt_update(3, 1, 7), MmuUpdate { ptr: 0x3008, val: 7 });
        assert!(is_guest_va(0) && is_guest_va(0xFFFF_8800_0000_0000) && is_guest_va(0xFFFF_FFFF_FFFF_F000));
        assert!(!is_guest_va(0xFFFF_8000_0000_0000) && !is_guest_va(0xFFFF_87FF_FFFF_F000));
        assert!(!is_guest_va(0x0000_8000_0000_0000));
    }

    #[test]
    fn map_builds_each_missing_level_once_and_pins_before_linking() {
        let (mut f, space) = Fake::new();
        let m = f.data_frame();
        map(&mut f, space, SCRATCH_BASE, m, Prot::KERNEL_RW).unwrap();
        assert_eq!(
            f.log,
            ["new_table L3", "update 1", "new_table L2", "update 1", "new_table L1", "update 1", "update 1"]
        );
        assert_eq!(lookup(&f, space.root, SCRATCH_BASE).unwrap(), Some(leaf_entry(m, Prot::KERNEL_RW)));
        // The same L1 serves the next page; another 2 MiB needs a new L1.
        f.log.clear();
        map(&mut f, space, SCRATCH_BASE + PAGE_SIZE, m, Prot::KERNEL_RO).unwrap();
        assert_eq!(f.log, ["update 1"]);
        f.log.clear();
        map(&mut f, space, SCRATCH_BASE + (2 << 20), m, Prot::KERNEL_RO).unwrap();
        assert_eq!(f.log, ["new_table L1", "update 1", "update 1"]);
        assert_eq!(f.frames.values().filter(|(k, _)| matches!(k, Kind::Table(_))).count(), 5);
    }

    #[test]
    fn mapping_twice_or_outside_the_guest_range_is_refused() {
        let (mut f, space) = Fake::new();
        let m = f.data_frame();
        map(&mut f, space, USER_CODE, m, Prot::USER_RO).unwrap();
        f.log.clear();
        assert_eq!(map(&mut f, space, USER_CODE, m, Prot::USER_RO), Err(MmError::AlreadyMapped(USER_CODE)));
        assert_eq!(
            map(&mut f, space, 0xFFFF_8000_0000_0000, m, Prot::KERNEL_RW),
            Err(MmError::NotGuestVa(0xFFFF_8000_0000_0000))
        );
        assert_eq!(
            map(&mut f, space, 0x0000_8000_0000_0000, m, Prot::KERNEL_RW),
            Err(MmError::NotGuestVa(0x0000_8000_0000_0000))
        );
        assert_eq!(map(&mut f, space, USER_CODE + 8, m, Prot::KERNEL_RW), Err(MmError::Misaligned(USER_CODE + 8)));
        assert_eq!(f.count("update"), 0);
        assert_eq!(unmap(&mut f, space, SCRATCH_BASE), Err(MmError::NotMapped(SCRATCH_BASE)));
        assert_eq!(unmap(&mut f, space, USER_CODE + PAGE_SIZE), Err(MmError::NotMapped(USER_CODE + PAGE_SIZE)));
    }

    #[test]
    fn changes_to_the_current_space_flush_others_do_not() {
        let (mut f, current) = Fake::new();
        let other = Space { root: f.new_table(Level::L4).unwrap(), current: false };
        let m = f.data_frame();
        for s in [current, other] {
            map(&mut f, s, HEAP_BASE, m, Prot::KERNEL_RW).unwrap();
        }
        f.log.clear();
        protect(&mut f, current, HEAP_BASE, Prot::KERNEL_RO).unwrap();
        protect(&mut f, other, HEAP_BASE, Prot::KERNEL_RO).unwrap();
        assert_eq!(f.log, [format!("update_current {HEAP_BASE:#x}"), "update 1".into()]);
        for s in [current, other] {
            assert_eq!(lookup(&f, s.root, HEAP_BASE).unwrap(), Some(leaf_entry(m, Prot::KERNEL_RO)));
        }
        f.log.clear();
        assert_eq!(unmap(&mut f, current, HEAP_BASE), Ok(leaf_entry(m, Prot::KERNEL_RO)));
        assert_eq!(unmap(&mut f, other, HEAP_BASE), Ok(leaf_entry(m, Prot::KERNEL_RO)));
        assert_eq!(f.log, [format!("update_current {HEAP_BASE:#x}"), "update 1".into()]);
        assert_eq!(lookup(&f, current.root, HEAP_BASE).unwrap(), None);
    }

    #[test]
    fn map_range_batches_per_l1_table() {
        let (mut f, space) = Fake::new();
        let base = f.data_frame();
        for _ in 1..700 {
            f.data_frame();
        }
        // Start 12 pages before an L1 boundary.
        let va = SCRATCH_BASE + (2 << 20) - 12 * PAGE_SIZE;
        map_range(&mut f, space, va, 700, |i| base + i, Prot::KERNEL_RW).unwrap();
        let batches: Vec<usize> = f
            .log
            .iter()
            .filter_map(|l| l.strip_prefix("update "))
            .map(|n| n.parse().unwrap())
            .filter(|&n| n > 1) // not the links of new tables
            .collect();
        assert_eq!(batches, [12, 128, 128, 128, 128, 128, 48]);
        for i in 0..700 {
            let e = lookup(&f, space.root, va + i * PAGE_SIZE).unwrap().unwrap();
            assert_eq!(entry_mfn(e), base + i);
        }
        let again = map_range(&mut f, space, va + 699 * PAGE_SIZE, 2, |i| base + i, Prot::KERNEL_RW);
        assert_eq!(again, Err(MmError::AlreadyMapped(va + 699 * PAGE_SIZE)));
    }

    #[test]
    fn a_failed_link_releases_the_new_table() {
        let (mut f, space) = Fake::new();
        let m = f.data_frame();
        f.fail_update = Some(2);
        let r = map(&mut f, space, SCRATCH_BASE, m, Prot::KERNEL_RW);
        assert_eq!(r, Err(MmError::Hypercall("mmu_update", Errno::ENOMEM, 0)));
        assert_eq!(f.count("release_table"), 1);
        // The L3 linked before the failure stays; the L2 is gone.
        assert_eq!(f.frames.values().filter(|(k, _)| matches!(k, Kind::Table(_))).count(), 2);
        map(&mut f, space, SCRATCH_BASE, m, Prot::KERNEL_RW).unwrap();
    }

    #[test]
    fn the_fake_refuses_what_xen_refuses() {
        let (mut f, space) = Fake::new();
        let m = f.data_frame();
        let l1 = ensure_l1(&mut f, space.root, SCRATCH_BASE).unwrap();
        // A writable mapping of a page table stops the batch there.
        let reqs = [
            pt_update(l1, 0, leaf_entry(m, Prot::KERNEL_RW)),
            pt_update(l1, 1, leaf_entry(l1, Prot::KERNEL_RW)),
            pt_update(l1, 2, leaf_entry(m, Prot::KERNEL_RW)),
        ];
        assert_eq!(f.update(&reqs), Err(MmError::Hypercall("mmu_update", Errno::EINVAL, 1)));
        assert!(is_present(f.read(l1, 0).unwrap()) && !is_present(f.read(l1, 2).unwrap()));
        // Read-only is fine.
        f.update(&[pt_update(l1, 1, leaf_entry(l1, Prot::KERNEL_RO))]).unwrap();
    }

    #[test]
    fn lower_half_walk_lists_parents_first() {
        let (mut f, _) = Fake::new();
        let user = Space { root: f.new_table(Level::L4).unwrap(), current: false };
        let m = f.data_frame();
        map(&mut f, user, USER_CODE, m, Prot::USER_RO).unwrap();
        map(&mut f, user, USER_CODE + (2 << 20), m, Prot::USER_RW).unwrap();
        map(&mut f, user, HEAP_BASE, m, Prot::KERNEL_RW).unwrap();
        let mut seen = Vec::new();
        lower_half_tables(&f, user.root, &mut |l, mfn| {
            seen.push((l, mfn));
            Ok(())
        })
        .unwrap();
        let levels: Vec<u32> = seen.iter().map(|(l, _)| l.number()).collect();
        // The heap's tables sit in the upper half and are not listed.
        assert_eq!(levels, [4, 3, 2, 1, 1]);
        assert_eq!(seen[0].1, user.root);
    }
}
