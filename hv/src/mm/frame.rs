//! Machine frames: who uses each one, and the allocator.
//!
//! Every frame of RAM has one [`FrameUse`] at all times, recorded in a
//! [`PageInfo`] per frame (the frame table, like Xen's `frame_table`). Free
//! frames are threaded on a singly linked list through their `PageInfo`, so
//! allocation and freeing are O(1), and per-use counters make the summary
//! ([`FrameStats`]) free to compute. The counters always add up to the RAM
//! total: that is the invariant the randomized test checks.
//!
//! Each `PageInfo` also carries the frame's page-type and reference state
//! ([`TypeState`]), which only [`super::pagetype`] changes; a frame anything
//! still references cannot be freed.

use super::memmap::FrameRange;
use super::pagetype::TypeState;
use super::Mfn;

/// A domain identifier.
pub type DomId = u16;

/// Who uses a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameUse {
    /// Not RAM (a hole, firmware, a device): never handed out.
    Absent,
    /// On the free list.
    Free,
    /// The hypervisor's own (image, frame table, page tables, stacks).
    Hypervisor,
    /// A multiboot module, until whoever consumes it releases it.
    Module,
    /// Memory of the given domain.
    Domain(DomId),
}

/// Per-frame bookkeeping: 24 bytes per frame of RAM.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PageInfo {
    /// [`FrameUse`], encoded by [`encode`].
    owner: u32,
    /// Next frame on the free list, or [`NIL`].
    next: u32,
    /// Page type and reference counts, owned by [`super::pagetype`].
    types: TypeState,
}

const _: () = assert!(core::mem::size_of::<PageInfo>() == 24);

const NIL: u32 = u32::MAX;
const OWNER_ABSENT: u32 = 0;
const OWNER_FREE: u32 = 1;
const OWNER_HYPERVISOR: u32 = 2;
const OWNER_MODULE: u32 = 3;
const OWNER_DOMAIN: u32 = 1 << 16;

const fn encode(u: FrameUse) -> u32 {
    match u {
        FrameUse::Absent => OWNER_ABSENT,
        FrameUse::Free => OWNER_FREE,
        FrameUse::Hypervisor => OWNER_HYPERVISOR,
        FrameUse::Module => OWNER_MODULE,
        FrameUse::Domain(d) => OWNER_DOMAIN | d as u32,
    }
}

const fn decode(v: u32) -> FrameUse {
    match v {
        OWNER_FREE => FrameUse::Free,
        OWNER_HYPERVISOR => FrameUse::Hypervisor,
        OWNER_MODULE => FrameUse::Module,
        v if v & OWNER_DOMAIN != 0 => FrameUse::Domain(v as u16),
        _ => FrameUse::Absent,
    }
}

/// Frame counts by use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// All RAM frames (the sum of the others).
    pub ram: u64,
    /// On the free list.
    pub free: u64,
    /// Used by the hypervisor.
    pub hypervisor: u64,
    /// Held by multiboot modules.
    pub module: u64,
    /// Owned by domains.
    pub domain: u64,
}

impl FrameStats {
    fn counter(&mut self, u: FrameUse) -> Option<&mut u64> {
        match u {
            FrameUse::Absent => None,
            FrameUse::Free => Some(&mut self.free),
            FrameUse::Hypervisor => Some(&mut self.hypervisor),
            FrameUse::Module => Some(&mut self.module),
            FrameUse::Domain(_) => Some(&mut self.domain),
        }
    }

    fn add(&mut self, u: FrameUse, n: u64) {
        if let Some(c) = self.counter(u) {
            *c += n;
        }
    }

    fn sub(&mut self, u: FrameUse, n: u64) {
        if let Some(c) = self.counter(u) {
            *c -= n;
        }
    }

    /// Whether the per-use counts add up to the RAM total.
    pub const fn is_consistent(&self) -> bool {
        self.free + self.hypervisor + self.module + self.domain == self.ram
    }
}

/// A misuse of the frame table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The frame is beyond the table or not RAM.
    NotRam(Mfn),
    /// A claim covers a frame another claim already took.
    AlreadyClaimed(Mfn),
    /// Freeing a frame that is not allocated.
    NotAllocated(Mfn),
    /// Freeing a frame that still has references or a type count.
    InUse(Mfn),
    /// The table has more frames than a `u32` link can name.
    TooLarge,
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::NotRam(m) => write!(f, "frame {m:#x} is not RAM"),
            FrameError::AlreadyClaimed(m) => write!(f, "frame {m:#x} is claimed twice"),
            FrameError::NotAllocated(m) => write!(f, "frame {m:#x} is not allocated"),
            FrameError::InUse(m) => write!(f, "frame {m:#x} is still referenced"),
            FrameError::TooLarge => f.write_str("too many frames for the frame table"),
        }
    }
}

/// The frame table and allocator.
#[derive(Debug)]
pub struct FrameTable<'a> {
    pages: &'a mut [PageInfo],
    free_head: u32,
    stats: FrameStats,
}

impl<'a> FrameTable<'a> {
    /// Bytes of [`PageInfo`] needed to describe frames `0..frames`.
    pub const fn table_bytes(frames: u64) -> u64 {
        frames * core::mem::size_of::<PageInfo>() as u64
    }

    /// Builds the table over `pages` (frames `0..pages.len()`): frames in
    /// `ram` become free except those in `claims`, which get the claimed
    /// use; RAM beyond the table is left out. Fails without side effects
    /// visible to anyone else if a claim is not RAM or overlaps another.
    pub fn new(
        pages: &'a mut [PageInfo],
        ram: &[FrameRange],
        claims: &[(FrameRange, FrameUse)],
    ) -> Result<FrameTable<'a>, FrameError> {
        if pages.len() >= NIL as usize {
            return Err(FrameError::TooLarge);
        }
        pages.fill(PageInfo { owner: OWNER_ABSENT, next: NIL, types: TypeState::default() });
        let limit = pages.len() as u64;
        let mut table = FrameTable { pages, free_head: NIL, stats: FrameStats::default() };
        for r in ram {
            for mfn in r.start.min(limit)..r.end.min(limit) {
                table.pages[mfn as usize].owner = OWNER_FREE;
                table.stats.ram += 1;
            }
        }
        for &(range, usage) in claims {
            for mfn in range.start..range.end {
                match table.usage(mfn) {
                    FrameUse::Free => table.pages[mfn as usize].owner = encode(usage),
                    FrameUse::Absent => return Err(FrameError::NotRam(mfn)),
                    _ => return Err(FrameError::AlreadyClaimed(mfn)),
                }
                table.stats.add(usage, 1);
            }
        }
        table.stats.free = table.stats.ram - table.stats.hypervisor - table.stats.module - table.stats.domain;
        // The free list runs lowest frame first.
        table.rebuild_free_list();
        Ok(table)
    }

    /// Who uses frame `mfn` (frames beyond the table are [`FrameUse::Absent`]).
    pub fn usage(&self, mfn: Mfn) -> FrameUse {
        self.page(mfn).map_or(FrameUse::Absent, |p| decode(p.owner))
    }

    /// The page-type state of frame `mfn` (all zero beyond the table).
    pub fn types(&self, mfn: Mfn) -> TypeState {
        self.page(mfn).map_or(TypeState::default(), |p| p.types)
    }

    /// The page-type state of frame `mfn`, for [`super::pagetype`] to change.
    pub(super) fn types_mut(&mut self, mfn: Mfn) -> Option<&mut TypeState> {
        usize::try_from(mfn).ok().and_then(|i| self.pages.get_mut(i)).map(|p| &mut p.types)
    }

    /// Whether frame `mfn` may leave its owner: no general references and
    /// no type references (so no mapping, page-table entry, pin or base
    /// pointer names it). `decrease_reservation` and domain teardown check
    /// this before [`FrameTable::free`], which refuses otherwise.
    pub fn can_release(&self, mfn: Mfn) -> bool {
        self.types(mfn).is_unused()
    }

    fn page(&self, mfn: Mfn) -> Option<&PageInfo> {
        usize::try_from(mfn).ok().and_then(|i| self.pages.get(i))
    }

    /// Takes a free frame for `owner`, or `None` when memory is exhausted.
    /// `owner` must be a user (hypervisor, module or domain).
    pub fn alloc(&mut self, owner: FrameUse) -> Option<Mfn> {
        debug_assert!(!matches!(owner, FrameUse::Free | FrameUse::Absent));
        if self.free_head == NIL {
            return None;
        }
        let mfn = self.free_head;
        let page = &mut self.pages[mfn as usize];
        self.free_head = page.next;
        page.next = NIL;
        page.owner = encode(owner);
        self.stats.free -= 1;
        self.stats.add(owner, 1);
        Some(mfn.into())
    }

    /// Returns frame `mfn` to the free list. Refused while anything holds a
    /// reference to it (see [`FrameTable::can_release`]).
    pub fn free(&mut self, mfn: Mfn) -> Result<(), FrameError> {
        let usage = self.usage(mfn);
        match usage {
            FrameUse::Absent => return Err(FrameError::NotRam(mfn)),
            FrameUse::Free => return Err(FrameError::NotAllocated(mfn)),
            _ => {}
        }
        if !self.can_release(mfn) {
            return Err(FrameError::InUse(mfn));
        }
        // The type state stays: a frame with no references keeps only the
        // memory of its last type, which decides whether retyping it later
        // needs a TLB flush.
        let page = &mut self.pages[mfn as usize];
        page.owner = OWNER_FREE;
        page.next = self.free_head;
        self.free_head = mfn as u32;
        self.stats.sub(usage, 1);
        self.stats.free += 1;
        Ok(())
    }

    /// Takes `count` contiguous free frames in `[min, max)` for `owner`,
    /// lowest first. Costs one pass over the table: meant for building
    /// domains and boot-time structures, not for hot paths.
    pub fn claim_run(&mut self, count: u64, owner: FrameUse, min: Mfn, max: Mfn) -> Option<FrameRange> {
        debug_assert!(!matches!(owner, FrameUse::Free | FrameUse::Absent));
        if count == 0 {
            return None;
        }
        let max = max.min(self.frames());
        let (mut start, mut len) = (min, 0);
        let mut found = None;
        for mfn in min..max {
            if self.pages[mfn as usize].owner == OWNER_FREE {
                if len == 0 {
                    start = mfn;
                }
                len += 1;
                if len == count {
                    found = Some(FrameRange { start, end: start + count });
                    break;
                }
            } else {
                len = 0;
            }
        }
        let run = found?;
        for mfn in run.start..run.end {
            self.pages[mfn as usize].owner = encode(owner);
        }
        self.stats.free -= count;
        self.stats.add(owner, count);
        self.rebuild_free_list();
        Some(run)
    }

    fn rebuild_free_list(&mut self) {
        self.free_head = NIL;
        for mfn in (0..self.pages.len()).rev() {
            if self.pages[mfn].owner == OWNER_FREE {
                self.pages[mfn].next = self.free_head;
                self.free_head = mfn as u32;
            } else {
                self.pages[mfn].next = NIL;
            }
        }
    }

    /// Frame counts by use.
    pub const fn stats(&self) -> FrameStats {
        self.stats
    }

    /// Number of frames the table describes (RAM or not).
    pub const fn frames(&self) -> u64 {
        self.pages.len() as u64
    }
}

/// Finds `count` contiguous frames of `ram` in `[min, max)` that no claim
/// touches, for placing boot-time structures such as the frame table itself.
pub fn find_free_run(
    ram: &[FrameRange],
    claims: &[(FrameRange, FrameUse)],
    count: u64,
    min: Mfn,
    max: Mfn,
) -> Option<FrameRange> {
    for r in ram {
        let mut start = r.start.max(min);
        let end = r.end.min(max);
        while start + count <= end {
            let candidate = FrameRange { start, end: start + count };
            match claims
                .iter()
                .map(|c| c.0)
                .filter(|c| c.start < candidate.end && candidate.start < c.end)
                .max_by_key(|c| c.end)
            {
                Some(blocker) => start = blocker.end,
                None => return Some(candidate),
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u64, end: u64) -> FrameRange {
        FrameRange { start, end }
    }

    #[test]
    fn claims_and_ram_are_accounted() {
        let mut pages = vec![PageInfo::default(); 64];
        let ram = [range(0, 10), range(16, 40), range(50, 100)];
        let claims = [(range(16, 20), FrameUse::Hypervisor), (range(30, 33), FrameUse::Module)];
        let t = FrameTable::new(&mut pages, &ram, &claims).unwrap();
        let s = t.stats();
        assert_eq!(s, FrameStats { ram: 10 + 24 + 14, free: 10 + 17 + 14, hypervisor: 4, module: 3, domain: 0 });
        assert!(s.is_consistent());
        assert_eq!(t.usage(12), FrameUse::Absent);
        assert_eq!(t.usage(17), FrameUse::Hypervisor);
        assert_eq!(t.usage(63), FrameUse::Free);
        assert_eq!(t.usage(64), FrameUse::Absent);
    }

    #[test]
    fn bad_claims_are_refused() {
        let mut pages = vec![PageInfo::default(); 16];
        let ram = [range(0, 8)];
        assert_eq!(
            FrameTable::new(&mut pages, &ram, &[(range(6, 10), FrameUse::Module)]).unwrap_err(),
            FrameError::NotRam(8)
        );
        assert_eq!(
            FrameTable::new(&mut pages, &ram, &[(range(0, 4), FrameUse::Module), (range(3, 5), FrameUse::Hypervisor)])
                .unwrap_err(),
            FrameError::AlreadyClaimed(3)
        );
    }

    #[test]
    fn alloc_lowest_first_and_free_reuses() {
        let mut pages = vec![PageInfo::default(); 8];
        let mut t = FrameTable::new(&mut pages, &[range(2, 5)], &[(range(3, 4), FrameUse::Hypervisor)]).unwrap();
        assert_eq!(t.alloc(FrameUse::Domain(1)), Some(2));
        assert_eq!(t.alloc(FrameUse::Hypervisor), Some(4));
        assert_eq!(t.alloc(FrameUse::Hypervisor), None);
        assert_eq!(t.usage(2), FrameUse::Domain(1));
        t.free(2).unwrap();
        assert_eq!(t.free(2), Err(FrameError::NotAllocated(2)));
        assert_eq!(t.free(6), Err(FrameError::NotRam(6)));
        assert_eq!(t.alloc(FrameUse::Domain(7)), Some(2));
        assert!(t.stats().is_consistent());
    }

    #[test]
    fn claimed_module_frames_can_be_released() {
        let mut pages = vec![PageInfo::default(); 8];
        let mut t = FrameTable::new(&mut pages, &[range(0, 8)], &[(range(1, 3), FrameUse::Module)]).unwrap();
        t.free(1).unwrap();
        t.free(2).unwrap();
        assert_eq!(t.stats().module, 0);
        assert_eq!(t.stats().free, 8);
    }

    #[test]
    fn free_run_avoids_claims_and_bounds() {
        let ram = [range(0, 0x9f), range(0x100, 0x1000)];
        let claims = [(range(0x100, 0x180), FrameUse::Hypervisor), (range(0x200, 0x210), FrameUse::Module)];
        assert_eq!(find_free_run(&ram, &claims, 0x10, 0x100, 0x1000), Some(range(0x180, 0x190)));
        assert_eq!(find_free_run(&ram, &claims, 0x90, 0x100, 0x1000), Some(range(0x210, 0x2a0)));
        assert_eq!(find_free_run(&ram, &claims, 0x10, 0, 0x50), Some(range(0, 0x10)));
        assert_eq!(find_free_run(&ram, &claims, 0x1000, 0x100, 0x1000), None);
    }

    #[test]
    fn claim_run_takes_contiguous_free_frames() {
        let mut pages = vec![PageInfo::default(); 64];
        let mut t = FrameTable::new(&mut pages, &[range(0, 64)], &[(range(10, 12), FrameUse::Hypervisor)]).unwrap();
        assert_eq!(t.alloc(FrameUse::Hypervisor), Some(0));
        assert_eq!(t.claim_run(8, FrameUse::Domain(0), 1, 64), Some(range(1, 9)));
        assert_eq!(t.claim_run(8, FrameUse::Domain(0), 1, 64), Some(range(12, 20)), "skips the claimed hole");
        assert_eq!(t.claim_run(64, FrameUse::Domain(0), 0, 64), None);
        assert_eq!(t.alloc(FrameUse::Hypervisor), Some(9), "free list rebuilt, lowest first");
        assert_eq!(t.usage(15), FrameUse::Domain(0));
        assert!(t.stats().is_consistent());
        assert_eq!(t.stats().domain, 16);
    }

    use crate::testing::XorShift;

    #[test]
    fn random_operations_keep_the_books_balanced() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut pages = vec![PageInfo::default(); 512];
        let ram = [range(1, 100), range(120, 300), range(301, 512)];
        let claims = [(range(10, 20), FrameUse::Hypervisor), (range(200, 230), FrameUse::Module)];
        let mut t = FrameTable::new(&mut pages, &ram, &claims).unwrap();
        let initial = t.stats();
        let mut held: Vec<(Mfn, FrameUse)> = Vec::new();
        for step in 0..20_000 {
            let r = rng.next();
            if !r.is_multiple_of(3) || held.is_empty() {
                let owner = match r % 5 {
                    0 => FrameUse::Hypervisor,
                    d => FrameUse::Domain(d as u16),
                };
                match t.alloc(owner) {
                    Some(mfn) => {
                        assert!(!held.iter().any(|h| h.0 == mfn), "step {step}: {mfn} handed out twice");
                        assert_eq!(t.usage(mfn), owner);
                        held.push((mfn, owner));
                    }
                    None => assert_eq!(t.stats().free, 0, "step {step}: alloc failed with free frames"),
                }
            } else {
                let (mfn, owner) = held.swap_remove((r as usize / 3) % held.len());
                assert_eq!(t.usage(mfn), owner);
                t.free(mfn).unwrap();
            }
            let s = t.stats();
            assert!(s.is_consistent(), "step {step}: {s:?}");
            assert_eq!(s.hypervisor + s.domain, initial.hypervisor + held.len() as u64, "step {step}");
        }
        for (mfn, _) in held.drain(..) {
            t.free(mfn).unwrap();
        }
        assert_eq!(t.stats(), initial);
        // Every free frame is reachable on the free list exactly once.
        let mut seen = 0;
        let mut at = t.free_head;
        while at != NIL {
            assert_eq!(t.usage(at.into()), FrameUse::Free);
            seen += 1;
            assert!(seen <= initial.free);
            at = t.pages[at as usize].next;
        }
        assert_eq!(seen, initial.free);
    }
}
