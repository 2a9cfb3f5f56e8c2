//! Page types and reference counts: the rules that keep PV page tables safe.
//!
//! A PV guest writes its own page tables, so the hypervisor must make sure
//! no guest ever holds a writable mapping of a page table, and that every
//! entry of a table the CPU may walk names memory the guest may use. Xen
//! does this with *page types* (`get_page_type`/`put_page_type` in
//! `xen/arch/x86/mm.c`); this module is the same mechanism, with the same
//! guest-visible rules, over the [`FrameTable`] and a [`GuestFrames`]
//! window onto frame contents (the direct map on the machine, vectors in
//! tests).
//!
//! # The model
//!
//! Every frame has an owner ([`FrameUse`]), a *general reference count* and
//! one [`PageType`] with a *type count* (its [`TypeState`]). The general
//! count says how many things name the frame (mappings, table entries,
//! pins, base pointers): a frame with references cannot be freed
//! ([`FrameTable::can_release`]). The type count says how many of them rely
//! on the current type; every type reference comes with a general one.
//! A frame changes type only when its type count is 0, so:
//!
//! - a frame mapped writable by a guest L1 entry holds a [`PageType::Writable`]
//!   reference per such entry and can't become a page table or descriptor
//!   page until the last writable mapping is gone;
//! - a page table ([`PageType::L1`]..[`PageType::L4`]) or descriptor page
//!   ([`PageType::SegDesc`]) with references can never be mapped writable.
//!
//! A page-table type is *validated* when taken at type count 0: every
//! present entry is checked and takes the references it needs, recursively.
//! When its type count drops back to 0 the table loses its validation and
//! every entry drops what it held.
//!
//! # Rules for an entry of a level-N table (Xen 4.17's, for 64-bit PV)
//!
//! - Non-present entries are not looked at (the guest may store anything).
//! - L4 slots 256–271 ([`FIRST_RESERVED_L4_SLOT`]..=[`LAST_RESERVED_L4_SLOT`])
//!   are the hypervisor's: skipped by validation, overwritten with
//!   [`Policy::reserved_l4`] when the L4 is validated, and refused to
//!   [`PageTypes::mod_entry`].
//! - Flags: P, RW, U, A, D, the available bits 9–11 and 52–62 (Xen's
//!   `AVAIL` and `AVAIL_HIGH`), and NX when the CPU has it
//!   ([`Policy::nx`]); G at L1 only. Everything else is refused: PS at L2/L3
//!   ([`PtError::Superpage`]: no superpages), PS at L4 and the cache
//!   attributes PWT, PCD and (at L1) PAT ([`PtError::BadFlags`]). Xen lets a
//!   domain with I/O capabilities set cache attributes at L1 and then
//!   changes its own direct map to match; we have no I/O domains yet, so
//!   the simplest safe choice is to refuse them at every level, as Xen does
//!   for every other PV domain.
//! - The target frame must belong to the table's domain
//!   ([`PtError::NotOwned`]): hypervisor, module, free, absent and other
//!   domains' frames never appear in a guest entry, except at L1 a frame
//!   of the one foreign owner an operation allows
//!   ([`PageTypes::allow_foreign`]: the control domain's foreign mappings,
//!   and the single entry a grant mapping writes, `crate::grant`) or one
//!   [`GuestFrames::granted`] allows.
//! - L1: a writable entry takes a general and a `Writable` type reference
//!   (refused for page tables and descriptor pages with references,
//!   [`PtError::WrongType`]); a read-only entry takes only a general one.
//! - L2–L4: the target becomes (or already is) a validated table of level
//!   N−1, taking a general and a type reference. The exception is a
//!   *linear* entry, to a table of the same level N: allowed only read-only
//!   and only to an already validated table ([`PtError::LinearNotAllowed`]);
//!   a table pointing at itself takes no reference at all, another one
//!   takes a general and a level-N type reference. As Xen since XSA-240, a
//!   table with linear entries can't be the target of one, and a target
//!   can't hold one, so dropping references never chains through linear
//!   entries. An entry to a table of any other level is a type conflict
//!   ([`PtError::WrongType`]): cross-level linear entries are refused.
//! - Present entries of validated tables are made user-accessible (and L4
//!   entries accessed), as Xen's `adjust_guest_l*e` does for 64-bit PV: the
//!   guest kernel runs in ring 3.
//!
//! # All or nothing
//!
//! Operations take references in order; when a step fails, everything
//! already taken is put back in reverse order, which restores every count
//! exactly. Nothing is written to a frame until the whole operation has
//! succeeded ([`PageTypes`]'s "settle" step). A failed operation leaves two
//! traces only, neither visible to the guest: TLB flushes it asked for
//! ([`GuestFrames::flush_before_retype`]) and the remembered last type of
//! frames with type count 0.
//!
//! # Bounds
//!
//! Validation recurses at most four levels (an L4 validates L3s, which
//! validate L2s, which validate L1s, whose entries take `Writable`
//! references without recursing; linear entries never validate anything).
//! Devalidation goes down one level per step, plus at most one linear hop
//! before each (a linear target holds no linear entries), so it is bounded
//! too. Every loop over a table runs over its 512 entries once.
//!
//! # Concurrency
//!
//! The engine assumes exclusive access to the frame table and to the frames
//! it reads (the caller holds the lock). Tables being validated or devalidated
//! are not writable by the guest (that is the point of the types), so their
//! entries read the same when the engine reads them again to undo.

use super::frame::{DomId, FrameTable, FrameUse};
use super::pagetable::{index, pte};
use super::Mfn;
pub use crate::layout::RESERVED_L4_SLOTS;
use crate::layout::{FIRST_RESERVED_L4_SLOT, LAST_RESERVED_L4_SLOT};
use abi::errno::Errno;

/// Entries per page-table frame.
const ENTRIES: usize = 512;

/// Software-available bits 9–11.
const AVAIL: u64 = 7 << 9;
/// Software-available bits 52–62 (protection keys are never enabled for
/// PV guests, so the CPU ignores them).
const AVAIL_HIGH: u64 = 0x7ff << 52;
/// Flags an entry of any level may carry, NX aside.
const COMMON_FLAGS: u64 = pte::P | pte::RW | pte::U | pte::A | pte::D | AVAIL | AVAIL_HIGH;

/// What a frame is used as. Only [`PageType::None`] is never requested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum PageType {
    /// No type: nothing relies on the frame's contents.
    #[default]
    None,
    /// A level-1 page table (page table proper).
    L1,
    /// A level-2 page table (page directory).
    L2,
    /// A level-3 page table (page-directory pointer table).
    L3,
    /// A level-4 page table (the root, loaded into CR3).
    L4,
    /// A GDT or LDT frame: its descriptors were checked.
    SegDesc,
    /// Mapped writable by the guest.
    Writable,
}

impl PageType {
    /// The page-table level (1–4), or 0 for the other types.
    pub const fn level(self) -> usize {
        match self {
            PageType::L1 => 1,
            PageType::L2 => 2,
            PageType::L3 => 3,
            PageType::L4 => 4,
            _ => 0,
        }
    }

    /// The page-table type of `level` (1–4).
    const fn table(level: usize) -> PageType {
        match level {
            1 => PageType::L1,
            2 => PageType::L2,
            3 => PageType::L3,
            4 => PageType::L4,
            _ => PageType::None,
        }
    }

    /// Whether this is a page-table type.
    pub const fn is_table(self) -> bool {
        self.level() != 0
    }
}

/// A page-table level, for pinning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// L1 (`MMUEXT_PIN_L1_TABLE`).
    L1,
    /// L2 (`MMUEXT_PIN_L2_TABLE`).
    L2,
    /// L3 (`MMUEXT_PIN_L3_TABLE`).
    L3,
    /// L4 (`MMUEXT_PIN_L4_TABLE`).
    L4,
}

impl From<Level> for PageType {
    fn from(l: Level) -> PageType {
        match l {
            Level::L1 => PageType::L1,
            Level::L2 => PageType::L2,
            Level::L3 => PageType::L3,
            Level::L4 => PageType::L4,
        }
    }
}

/// The page-type and reference state of one frame, kept in its
/// [`PageInfo`](super::frame::PageInfo). Only this module changes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TypeState {
    /// General references.
    refs: u32,
    /// Type references.
    count: u32,
    /// The type while `count > 0`; afterwards the last type the frame had,
    /// which decides whether taking a new one needs a TLB flush.
    ty: PageType,
    /// A page table whose entries hold their references (or a non-table
    /// type that is taken). Only ever set while `count > 0`.
    validated: bool,
    /// Pinned by the guest (holds one general and one type reference).
    pinned: bool,
    /// Validated by the operation in progress; its entries still need the
    /// adjustments the settle step writes.
    fresh: bool,
    /// Linear page-table bookkeeping (Xen's `linear_pt_count`): > 0, the
    /// number of linear entries this table holds; < 0, minus the number of
    /// linear entries naming it. Never both.
    linear: i16,
}

impl TypeState {
    /// General references.
    pub const fn refs(&self) -> u32 {
        self.refs
    }

    /// Type references.
    pub const fn type_count(&self) -> u32 {
        self.count
    }

    /// The type held, or [`PageType::None`] when the type count is 0.
    pub const fn page_type(&self) -> PageType {
        if self.count > 0 {
            self.ty
        } else {
            PageType::None
        }
    }

    /// Whether the frame is a validated page table (or a taken non-table
    /// type).
    pub const fn is_validated(&self) -> bool {
        self.validated
    }

    /// Whether the guest pinned the frame.
    pub const fn is_pinned(&self) -> bool {
        self.pinned
    }

    /// Whether nothing references the frame.
    pub(super) const fn is_unused(&self) -> bool {
        self.refs == 0 && self.count == 0
    }
}

/// Why a page-type operation was refused. Every refusal changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtError {
    /// An entry index beyond 511.
    BadIndex(usize),
    /// The frame does not belong to the domain (hypervisor, module, free,
    /// absent, or another domain's and not granted).
    NotOwned(Mfn),
    /// The frame has references under another type, or the type cannot be
    /// requested (a page table mapped writable, a writable frame used as a
    /// page table, an entry naming a table of the wrong level).
    WrongType(Mfn),
    /// The frame is in use as a page table or descriptor page, so it cannot
    /// be mapped writable (Xen's `-EBUSY`).
    Busy(Mfn),
    /// The entry carries a flag its level does not allow.
    BadFlags(u64),
    /// A superpage (PS) entry at L2 or L3.
    Superpage(u64),
    /// A linear (same-level) entry that is writable, names a table not yet
    /// validated, or would chain linear entries (XSA-240).
    LinearNotAllowed(Mfn),
    /// An update of a hypervisor-reserved L4 slot (256–271).
    ReservedSlot(usize),
    /// The frame to update is not a validated page table.
    NotPageTable(Mfn),
    /// The frame is already pinned.
    Pinned(Mfn),
    /// The frame is not pinned.
    NotPinned(Mfn),
    /// A descriptor page holds a descriptor the guest may not use.
    BadDescriptors(Mfn),
    /// A count would overflow.
    Overflow(Mfn),
}

impl PtError {
    /// The errno a hypercall returns: `-EINVAL` for every refusal, as Xen
    /// does for pinning, base pointers, bad flags, linear entries, reserved
    /// slots and double pins. (Xen 4.17 returns `-EBUSY` when the refused
    /// entry is an L1 entry of the table being updated or pinned directly,
    /// and `-EPERM` for a non-RAM frame without I/O rights; no guest we know
    /// tells these apart, so we keep one answer.)
    pub const fn errno(self) -> Errno {
        match self {
            PtError::BadIndex(_)
            | PtError::NotOwned(_)
            | PtError::WrongType(_)
            | PtError::BadFlags(_)
            | PtError::Superpage(_)
            | PtError::LinearNotAllowed(_)
            | PtError::ReservedSlot(_)
            | PtError::NotPageTable(_)
            | PtError::Pinned(_)
            | PtError::NotPinned(_)
            | PtError::BadDescriptors(_)
            | PtError::Overflow(_) => Errno::EINVAL,
            PtError::Busy(_) => Errno::EBUSY,
        }
    }
}

/// How the engine reaches the contents of machine frames, and the hooks it
/// needs from the rest of the hypervisor.
pub trait GuestFrames {
    /// The 512 entries of frame `mfn` (only called for frames of a domain).
    fn entries(&mut self, mfn: Mfn) -> &mut [u64; 512];

    /// Whether every descriptor in frame `mfn` is one a guest may load
    /// (Xen's `check_descriptor`), for [`PageType::SegDesc`].
    fn descriptors_ok(&mut self, mfn: Mfn) -> bool;

    /// Called before frame `mfn` takes a new type while TLBs or paging-
    /// structure caches may still hold translations from its previous one
    /// (a writable mapping already removed, or its use as a page table).
    /// The implementation must flush them on every CPU that may hold them.
    fn flush_before_retype(&mut self, mfn: Mfn);

    /// Whether domain `dom` may map `mfn`, which domain `owner` granted it,
    /// from any L1 entry it writes (`writable` or not). No platform allows
    /// this: grant mappings are made by `crate::grant`, one entry at a time
    /// through [`PageTypes::allow_foreign`], never by a guest's own
    /// page-table writes (as in Xen).
    fn granted(&mut self, dom: DomId, mfn: Mfn, owner: DomId, writable: bool) -> bool {
        let _ = (dom, mfn, owner, writable);
        false
    }
}

/// The hypervisor's side of every guest L4 and the CPU's abilities.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The entries of L4 slots 256–271, written into every L4 validated.
    pub reserved_l4: [u64; RESERVED_L4_SLOTS],
    /// Whether NX is usable (`EFER.NXE`); without it bit 63 is reserved
    /// and refused.
    pub nx: bool,
}

/// Writes the hypervisor's entries into slots 256–271 of an L4.
pub fn install_reserved_slots(l4: &mut [u64; 512], entries: &[u64; RESERVED_L4_SLOTS]) {
    l4[FIRST_RESERVED_L4_SLOT..=LAST_RESERVED_L4_SLOT].copy_from_slice(entries);
}

/// Whether entry `index` of a level-`level` table belongs to the hypervisor.
const fn is_reserved(level: usize, index: usize) -> bool {
    level == 4 && index >= FIRST_RESERVED_L4_SLOT && index <= LAST_RESERVED_L4_SLOT
}

/// The frame an entry names.
const fn target(entry: u64) -> Mfn {
    (entry & pte::ADDR) >> 12
}

/// What the hypervisor stores for a present guest entry of `level`: user
/// accessible (the guest kernel runs in ring 3) and, at L4, accessed.
const fn adjust(level: usize, entry: u64) -> u64 {
    if entry & pte::P == 0 {
        entry
    } else if level == 4 {
        entry | pte::U | pte::A
    } else {
        entry | pte::U
    }
}

/// The page-type engine over one frame table and its frames' contents.
#[derive(Debug)]
pub struct PageTypes<'e, 'f, M: ?Sized> {
    frames: &'e mut FrameTable<'f>,
    mem: &'e mut M,
    policy: &'e Policy,
    /// A domain whose frames L1 entries may also map, for this engine's
    /// operations (Xen's `pg_owner`: `mmu_update` with `foreigndom`).
    foreign: Option<DomId>,
}

impl<'e, 'f, M: GuestFrames + ?Sized> PageTypes<'e, 'f, M> {
    /// The engine over `frames`, reaching contents through `mem`.
    pub fn new(frames: &'e mut FrameTable<'f>, mem: &'e mut M, policy: &'e Policy) -> Self {
        PageTypes { frames, mem, policy, foreign: None }
    }

    /// Lets L1 entries installed through this engine map frames of
    /// `owner` too (Xen's `pg_owner`, which only a privileged caller may
    /// name: the caller checks). Only data mappings: page-table entries
    /// above L1 still name the domain's own tables.
    pub fn allow_foreign(&mut self, owner: Option<DomId>) {
        self.foreign = owner;
    }

    /// The frame table (owners and type states).
    pub fn frames(&self) -> &FrameTable<'f> {
        self.frames
    }

    /// The frames' contents.
    pub fn memory(&mut self) -> &mut M {
        self.mem
    }

    /// The rules entries are validated against.
    pub fn policy(&self) -> &Policy {
        self.policy
    }

    /// Whether frame `mfn` has no references left (see
    /// [`FrameTable::can_release`]).
    pub fn can_release(&self, mfn: Mfn) -> bool {
        self.frames.can_release(mfn)
    }

    // ----- General references -----

    /// Takes a general reference on `mfn`, which must belong to `dom`.
    pub fn get_page(&mut self, dom: DomId, mfn: Mfn) -> Result<(), PtError> {
        self.owned_by(dom, mfn)?;
        self.get_ref(mfn)
    }

    /// Drops a general reference taken with [`PageTypes::get_page`]. Like
    /// every `put_*`, only for a reference the caller holds: a frame beyond
    /// the frame table panics, and debug builds assert the count is positive.
    pub fn put_page(&mut self, mfn: Mfn) {
        self.put_ref(mfn);
    }

    // ----- Type references -----

    /// Takes a type reference of `ty` on `mfn` (a domain's frame): counts
    /// one more use of its current type, or, at type count 0, gives it the
    /// type and validates it (for a page table, recursively). The caller
    /// holds a general reference for as long as it holds this one.
    pub fn get_page_type(&mut self, mfn: Mfn, ty: PageType) -> Result<(), PtError> {
        let FrameUse::Domain(dom) = self.frames.usage(mfn) else {
            return Err(PtError::NotOwned(mfn));
        };
        self.get_type(dom, mfn, ty)?;
        self.settle(mfn);
        Ok(())
    }

    /// Drops a type reference; the last one of a page table devalidates it,
    /// dropping every reference its entries held.
    pub fn put_page_type(&mut self, mfn: Mfn) {
        self.put_type(mfn);
    }

    /// [`PageTypes::get_page`] and [`PageTypes::get_page_type`] together,
    /// all or nothing (for pins, base pointers, descriptor tables).
    pub fn get_page_and_type(&mut self, dom: DomId, mfn: Mfn, ty: PageType) -> Result<(), PtError> {
        self.owned_by(dom, mfn)?;
        self.get_ref(mfn)?;
        if let Err(e) = self.get_type(dom, mfn, ty) {
            self.put_ref(mfn);
            return Err(e);
        }
        self.settle(mfn);
        Ok(())
    }

    /// Drops what [`PageTypes::get_page_and_type`] took.
    pub fn put_page_and_type(&mut self, mfn: Mfn) {
        self.put_type(mfn);
        self.put_ref(mfn);
    }

    // ----- Guest operations -----

    /// `MMUEXT_PIN_Lx_TABLE`: validates `mfn` as a table of `level` and
    /// keeps it so until [`PageTypes::unpin`]. Pinning twice is refused.
    pub fn pin(&mut self, dom: DomId, mfn: Mfn, level: Level) -> Result<(), PtError> {
        self.owned_by(dom, mfn)?;
        if self.frames.types(mfn).pinned {
            return Err(PtError::Pinned(mfn));
        }
        self.get_page_and_type(dom, mfn, level.into())?;
        self.state(mfn).pinned = true;
        Ok(())
    }

    /// `MMUEXT_UNPIN_TABLE`: drops the pin's references.
    pub fn unpin(&mut self, dom: DomId, mfn: Mfn) -> Result<(), PtError> {
        self.owned_by(dom, mfn)?;
        if !self.frames.types(mfn).pinned {
            return Err(PtError::NotPinned(mfn));
        }
        self.state(mfn).pinned = false;
        self.put_page_and_type(mfn);
        Ok(())
    }

    /// `MMUEXT_NEW_BASEPTR` (and vCPU teardown with `None`): makes `new`
    /// the L4 in `slot` (a vCPU's base pointer), taking a validated-L4
    /// reference on it before dropping the one the old L4 held. On failure
    /// `slot` and every count are unchanged.
    pub fn new_baseptr(&mut self, dom: DomId, slot: &mut Option<Mfn>, new: Option<Mfn>) -> Result<(), PtError> {
        if let Some(mfn) = new {
            self.get_page_and_type(dom, mfn, PageType::L4)?;
        }
        if let Some(old) = core::mem::replace(slot, new) {
            self.put_page_and_type(old);
        }
        Ok(())
    }

    /// Writes `new` into entry `index` of `table`, a validated page table of
    /// `dom` (the core of `mmu_update` and `update_va_mapping`). The new
    /// entry is checked and takes its references before the old entry's
    /// are dropped, so replacing an entry by one naming the same frame
    /// never devalidates anything. With `preserve_ad` the old entry's A and
    /// D bits are kept (`MMU_PT_UPDATE_PRESERVE_AD`). Returns the old entry.
    pub fn mod_entry(
        &mut self,
        dom: DomId,
        table: Mfn,
        index: usize,
        new: u64,
        preserve_ad: bool,
    ) -> Result<u64, PtError> {
        if index >= ENTRIES {
            return Err(PtError::BadIndex(index));
        }
        self.owned_by(dom, table)?;
        let state = self.frames.types(table);
        let level = state.page_type().level();
        if level == 0 || !state.validated {
            return Err(PtError::NotPageTable(table));
        }
        if is_reserved(level, index) {
            return Err(PtError::ReservedSlot(index));
        }
        let old = self.mem.entries(table)[index];
        self.take_entry(dom, level, table, new)?;
        // Act: nothing below can fail.
        let new = if preserve_ad { new | (old & (pte::A | pte::D)) } else { new };
        self.mem.entries(table)[index] = adjust(level, new);
        if level > 1 && new & pte::P != 0 {
            self.settle(target(new));
        }
        self.drop_entry(level, table, old);
        Ok(old)
    }

    /// The table holding the L1 entry that maps `va` under `dom`'s L4
    /// `l4`, found by following present entries (Xen's `guest_map_l1e`):
    /// `None` if a level is missing, a superpage, or not `dom`'s frame (a
    /// walk through linear entries can reach the hypervisor's L4 slots,
    /// whose tables are not read). What it finds may be a table of
    /// another level, or not validated: the update that follows checks.
    pub fn l1_for(&mut self, dom: DomId, l4: Mfn, va: u64) -> Option<Mfn> {
        let mut table = l4;
        for level in [4, 3, 2] {
            self.owned_by(dom, table).ok()?;
            let entry = self.mem.entries(table)[index(va, level)];
            if entry & pte::P == 0 || entry & pte::PS != 0 {
                return None;
            }
            table = target(entry);
        }
        Some(table)
    }

    /// Domain teardown: unpins every pinned frame of `dom`. The caller has
    /// dropped its vCPUs' base pointers first ([`PageTypes::new_baseptr`]
    /// with `None`). Returns how many of `dom`'s frames still have
    /// references afterwards: 0 unless something outside the domain (a
    /// grant mapping, a hypervisor reference) still holds one, since
    /// page-table references cannot form cycles.
    pub fn release_domain(&mut self, dom: DomId) -> u64 {
        let mine = FrameUse::Domain(dom);
        for mfn in 0..self.frames.frames() {
            if self.frames.usage(mfn) == mine && self.frames.types(mfn).pinned {
                self.state(mfn).pinned = false;
                self.put_page_and_type(mfn);
            }
        }
        (0..self.frames.frames()).filter(|&m| self.frames.usage(m) == mine && !self.frames.can_release(m)).count()
            as u64
    }

    // ----- The mechanism -----

    fn owned_by(&self, dom: DomId, mfn: Mfn) -> Result<(), PtError> {
        if self.frames.usage(mfn) == FrameUse::Domain(dom) {
            Ok(())
        } else {
            Err(PtError::NotOwned(mfn))
        }
    }

    /// The state of a frame known to be in the table (every caller checked
    /// its owner, or found it in a validated entry).
    fn state(&mut self, mfn: Mfn) -> &mut TypeState {
        self.frames.types_mut(mfn).expect("page-type state of a frame outside the frame table")
    }

    fn get_ref(&mut self, mfn: Mfn) -> Result<(), PtError> {
        let s = self.state(mfn);
        s.refs = s.refs.checked_add(1).ok_or(PtError::Overflow(mfn))?;
        Ok(())
    }

    fn put_ref(&mut self, mfn: Mfn) {
        let s = self.state(mfn);
        debug_assert!(s.refs > 0, "general count of {mfn:#x} underflows");
        s.refs = s.refs.saturating_sub(1);
    }

    /// Takes a type reference of `ty` on `mfn`, a frame of `dom`, without
    /// the settle step. All or nothing.
    fn get_type(&mut self, dom: DomId, mfn: Mfn, ty: PageType) -> Result<(), PtError> {
        if ty == PageType::None {
            return Err(PtError::WrongType(mfn));
        }
        let s = self.state(mfn);
        if s.count > 0 {
            // A table being validated further up this very recursion is
            // not validated yet: nothing may rely on it.
            if s.ty != ty || !s.validated {
                // Xen answers a writable request for a typed frame with
                // -EBUSY, any other conflict with -EINVAL.
                return Err(if ty == PageType::Writable { PtError::Busy(mfn) } else { PtError::WrongType(mfn) });
            }
            s.count = s.count.checked_add(1).ok_or(PtError::Overflow(mfn))?;
            return Ok(());
        }
        let previous = s.ty;
        s.ty = ty;
        s.count = 1;
        if previous != ty && previous != PageType::None {
            self.mem.flush_before_retype(mfn);
        }
        let checked = match ty {
            PageType::L1 | PageType::L2 | PageType::L3 | PageType::L4 => self.validate_table(dom, mfn, ty.level()),
            PageType::SegDesc if !self.mem.descriptors_ok(mfn) => Err(PtError::BadDescriptors(mfn)),
            _ => Ok(()),
        };
        let s = self.state(mfn);
        match checked {
            Ok(()) => {
                s.validated = true;
                s.fresh = ty.is_table();
                Ok(())
            }
            Err(e) => {
                s.count = 0;
                Err(e)
            }
        }
    }

    fn put_type(&mut self, mfn: Mfn) {
        let s = self.state(mfn);
        debug_assert!(s.count > 0, "type count of {mfn:#x} underflows");
        if s.count == 0 {
            return;
        }
        s.count -= 1;
        if s.count > 0 {
            return;
        }
        let was_table = s.validated && s.ty.is_table();
        let level = s.ty.level();
        s.validated = false;
        s.fresh = false;
        if was_table {
            self.drop_entries(level, mfn, ENTRIES);
        }
    }

    /// Validates every entry of `table` as level `level`, taking their
    /// references; on failure drops what the earlier entries took.
    fn validate_table(&mut self, dom: DomId, table: Mfn, level: usize) -> Result<(), PtError> {
        // One read of the table (it cannot change meanwhile: it is not
        // writable by the guest and this CPU is in the hypervisor) instead
        // of one indirect call per entry: validation's hot loop.
        let entries = *self.mem.entries(table);
        for (i, &entry) in entries.iter().enumerate() {
            if entry & pte::P == 0 || is_reserved(level, i) {
                continue;
            }
            if let Err(e) = self.take_entry(dom, level, table, entry) {
                self.drop_entries(level, table, i);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Drops the references of entries `0..end` of `table`, last first (the
    /// exact reverse of validation).
    fn drop_entries(&mut self, level: usize, table: Mfn, end: usize) {
        let entries = *self.mem.entries(table);
        for i in (0..end).rev() {
            if entries[i] & pte::P != 0 && !is_reserved(level, i) {
                self.drop_entry(level, table, entries[i]);
            }
        }
    }

    fn check_flags(&self, level: usize, entry: u64) -> Result<(), PtError> {
        let mut allowed = COMMON_FLAGS | pte::ADDR;
        if self.policy.nx {
            allowed |= pte::NX;
        }
        if level == 1 {
            allowed |= pte::G;
        }
        let bad = entry & !allowed;
        if bad == 0 {
            Ok(())
        } else if bad & pte::PS != 0 && (level == 2 || level == 3) {
            Err(PtError::Superpage(entry))
        } else {
            Err(PtError::BadFlags(entry))
        }
    }

    /// Checks `entry` of a level-`level` table `table` of `dom` and takes
    /// the references it needs. All or nothing.
    fn take_entry(&mut self, dom: DomId, level: usize, table: Mfn, entry: u64) -> Result<(), PtError> {
        if entry & pte::P == 0 {
            return Ok(());
        }
        self.check_flags(level, entry)?;
        let mfn = target(entry);
        let writable = entry & pte::RW != 0;
        if level == 1 {
            match self.frames.usage(mfn) {
                FrameUse::Domain(d) if d == dom => {}
                FrameUse::Domain(owner) if Some(owner) == self.foreign => {}
                FrameUse::Domain(owner) if self.mem.granted(dom, mfn, owner, writable) => {}
                _ => return Err(PtError::NotOwned(mfn)),
            }
            self.get_ref(mfn)?;
            if writable {
                if let Err(e) = self.get_type(dom, mfn, PageType::Writable) {
                    self.put_ref(mfn);
                    return Err(e);
                }
            }
            return Ok(());
        }
        self.owned_by(dom, mfn)?;
        if mfn == table {
            // A table naming itself: linear, and it holds no reference on
            // itself (that would keep it validated forever).
            return if writable { Err(PtError::LinearNotAllowed(mfn)) } else { Ok(()) };
        }
        self.get_ref(mfn)?;
        let t = self.frames.types(mfn);
        let taken = if t.count > 0 && t.ty == PageType::table(level) {
            self.take_linear(table, mfn, writable)
        } else {
            self.get_type(dom, mfn, PageType::table(level - 1))
        };
        if taken.is_err() {
            self.put_ref(mfn);
        }
        taken
    }

    /// A linear entry in `holder` naming `target`, a table of the same level
    /// with type references.
    fn take_linear(&mut self, holder: Mfn, target: Mfn, writable: bool) -> Result<(), PtError> {
        let t = self.frames.types(target);
        let h = self.frames.types(holder);
        if writable || !t.validated || h.linear < 0 || t.linear > 0 {
            return Err(PtError::LinearNotAllowed(target));
        }
        if h.linear == i16::MAX || t.linear == i16::MIN || t.count == u32::MAX {
            return Err(PtError::Overflow(target));
        }
        self.state(holder).linear += 1;
        let t = self.state(target);
        t.linear -= 1;
        t.count += 1;
        Ok(())
    }

    /// Drops the references `entry` of level-`level` table `table` holds:
    /// the exact inverse of [`Self::take_entry`].
    fn drop_entry(&mut self, level: usize, table: Mfn, entry: u64) {
        if entry & pte::P == 0 {
            return;
        }
        let mfn = target(entry);
        if level == 1 {
            if entry & pte::RW != 0 {
                self.put_type(mfn);
            }
            self.put_ref(mfn);
            return;
        }
        if mfn == table {
            return;
        }
        // The entry holds a type reference, so the target's type is current:
        // the same level as the holder means a linear entry.
        if self.frames.types(mfn).ty == PageType::table(level) {
            self.state(table).linear -= 1;
            self.state(mfn).linear += 1;
        }
        self.put_type(mfn);
        self.put_ref(mfn);
    }

    /// The act step after a successful operation: writes the adjusted
    /// entries (and, for an L4, the hypervisor's slots) of every table the
    /// operation validated, reached from `mfn`. Cannot fail; each table is
    /// settled once.
    fn settle(&mut self, mfn: Mfn) {
        let s = self.state(mfn);
        if !s.fresh {
            return;
        }
        s.fresh = false;
        let level = s.ty.level();
        let table = self.mem.entries(mfn);
        for (i, e) in table.iter_mut().enumerate() {
            if !is_reserved(level, i) {
                *e = adjust(level, *e);
            }
        }
        if level == 4 {
            install_reserved_slots(table, &self.policy.reserved_l4);
        }
        if level > 1 {
            for i in 0..ENTRIES {
                let entry = self.mem.entries(mfn)[i];
                if !is_reserved(level, i) && entry & pte::P != 0 && target(entry) != mfn {
                    self.settle(target(entry));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::frame::PageInfo;
    use crate::mm::memmap::FrameRange;

    const P: u64 = pte::P;
    const RW: u64 = pte::RW;
    const PRW: u64 = pte::P | pte::RW;
    const PWT: u64 = 1 << 3;
    const PCD: u64 = 1 << 4;
    const PAT: u64 = 1 << 7;

    const D1: DomId = 1;
    const D2: DomId = 2;

    /// Frames 0..96: 0..4 hypervisor, 4..68 domain 1, 68..76 domain 2,
    /// 76..80 a module, 80..88 free, 88..96 not RAM.
    const FRAMES: usize = 96;
    const DOM1: core::ops::Range<Mfn> = 4..68;
    const HV: Mfn = 1;
    const OTHER: Mfn = 70;
    const MODULE: Mfn = 77;
    const FREE: Mfn = 82;
    const ABSENT: Mfn = 90;

    /// The standard tree: L4 10 → L3 11 → L2 12 → L1 13, which maps 20
    /// writable and 21 read-only. Entries as a guest writes them (no U).
    const L4: Mfn = 10;
    const L3: Mfn = 11;
    const L2: Mfn = 12;
    const L1: Mfn = 13;
    const RWDATA: Mfn = 20;
    const RODATA: Mfn = 21;

    /// A descriptor a [`Fake`] refuses.
    const BAD_DESC: u64 = 0xdead_0000_0000_0001;

    /// Frame contents in a vector, recording the engine's requests.
    #[derive(Debug)]
    struct Fake {
        mem: Vec<[u64; 512]>,
        flushes: Vec<Mfn>,
        /// `(grantee, frame, writable)`.
        grants: Vec<(DomId, Mfn, bool)>,
    }

    impl GuestFrames for Fake {
        fn entries(&mut self, mfn: Mfn) -> &mut [u64; 512] {
            &mut self.mem[mfn as usize]
        }
        fn descriptors_ok(&mut self, mfn: Mfn) -> bool {
            !self.mem[mfn as usize].contains(&BAD_DESC)
        }
        fn flush_before_retype(&mut self, mfn: Mfn) {
            self.flushes.push(mfn);
        }
        fn granted(&mut self, dom: DomId, mfn: Mfn, _owner: DomId, writable: bool) -> bool {
            self.grants.iter().any(|&(d, m, w)| d == dom && m == mfn && (w || !writable))
        }
    }

    fn fake() -> Fake {
        Fake { mem: vec![[0; 512]; FRAMES], flushes: Vec::new(), grants: Vec::new() }
    }

    fn policy(nx: bool) -> Policy {
        let mut reserved_l4 = [0; RESERVED_L4_SLOTS];
        for (i, e) in reserved_l4.iter_mut().enumerate() {
            *e = ((HV + i as u64 % 2) << 12) | P | pte::A;
        }
        Policy { reserved_l4, nx }
    }

    fn table(pages: &mut [PageInfo]) -> FrameTable<'_> {
        let r = |start, end| FrameRange { start, end };
        let claims = [
            (r(0, 4), FrameUse::Hypervisor),
            (r(DOM1.start, DOM1.end), FrameUse::Domain(D1)),
            (r(68, 76), FrameUse::Domain(D2)),
            (r(76, 80), FrameUse::Module),
        ];
        FrameTable::new(pages, &[r(0, 88)], &claims).unwrap()
    }

    /// Declares `$e`, an engine over a fresh [`table`] and [`fake`]
    /// (and names the frame table `$ft` when asked).
    macro_rules! engine {
        ($e:ident) => {
            engine!($e, ft, true)
        };
        ($e:ident, $ft:ident) => {
            engine!($e, $ft, true)
        };
        ($e:ident, $ft:ident, $nx:expr) => {
            let mut pages = vec![PageInfo::default(); FRAMES];
            #[allow(unused_mut)]
            let mut $ft = table(&mut pages);
            let mut mem = fake();
            let policy = policy($nx);
            #[allow(unused_mut)]
            let mut $e = PageTypes::new(&mut $ft, &mut mem, &policy);
        };
    }

    type Engine<'e, 'f> = PageTypes<'e, 'f, Fake>;

    const fn ent(mfn: Mfn, flags: u64) -> u64 {
        (mfn << 12) | flags
    }

    /// A guest write through a writable mapping (or before the frame is a
    /// table): no checks.
    fn poke(e: &mut Engine<'_, '_>, mfn: Mfn, index: usize, value: u64) {
        e.memory().mem[mfn as usize][index] = value;
    }

    fn peek(e: &mut Engine<'_, '_>, mfn: Mfn, index: usize) -> u64 {
        e.memory().mem[mfn as usize][index]
    }

    fn st(e: &Engine<'_, '_>, mfn: Mfn) -> TypeState {
        e.frames().types(mfn)
    }

    /// `(refs, type count, type)` of a frame.
    fn counts(e: &Engine<'_, '_>, mfn: Mfn) -> (u32, u32, PageType) {
        let s = st(e, mfn);
        (s.refs(), s.type_count(), s.page_type())
    }

    fn build_tree(e: &mut Engine<'_, '_>) {
        poke(e, L4, 0, ent(L3, PRW));
        poke(e, L3, 0, ent(L2, PRW));
        poke(e, L2, 0, ent(L1, PRW));
        poke(e, L1, 0, ent(RWDATA, PRW));
        poke(e, L1, 1, ent(RODATA, P));
    }

    /// Everything a failed operation must leave as it was: the effective
    /// type state of every frame and every frame's contents.
    type Snapshot = (Vec<(u32, u32, PageType, bool, bool, i16)>, Vec<[u64; 512]>);

    fn snapshot(e: &mut Engine<'_, '_>) -> Snapshot {
        let states = (0..FRAMES as Mfn)
            .map(|m| {
                let s = st(e, m);
                (s.refs, s.count, s.page_type(), s.validated, s.pinned, s.linear)
            })
            .collect();
        (states, e.memory().mem.clone())
    }

    fn all_released(e: &Engine<'_, '_>) -> bool {
        (0..FRAMES as Mfn).all(|m| e.can_release(m) && !st(e, m).pinned && st(e, m).linear == 0)
    }

    /// Domain teardown drops everything a domain's vCPU and the hypervisor
    /// hold: bases, pins, GDT and `vcpu_info` frames, the shared-info
    /// reference; afterwards every frame of the domain can be freed.
    #[test]
    fn a_torn_down_domain_leaves_every_frame_releasable() {
        engine!(e);
        build_tree(&mut e);
        let mut d = crate::domain::Domain::new(D1, false);
        e.pin(D1, L4, Level::L4).unwrap();
        e.new_baseptr(D1, &mut d.vcpu.kernel_table, Some(L4)).unwrap();
        const GDT: Mfn = 30;
        const VINFO: Mfn = 31;
        const SHARED: Mfn = 32;
        e.get_page_and_type(D1, GDT, PageType::SegDesc).unwrap();
        d.vcpu.gdt_frames[0] = GDT;
        d.vcpu.gdt_entries = 16;
        e.get_page_and_type(D1, VINFO, PageType::Writable).unwrap();
        d.vcpu.vcpu_info_at = Some((VINFO, 64));
        e.get_page(D1, SHARED).unwrap();
        assert!(!all_released(&e));
        assert_eq!(d.release_pages(&mut e, SHARED), 0);
        assert!(all_released(&e), "every frame can be freed");
        assert_eq!((d.vcpu.kernel_table, d.vcpu.gdt_entries, d.vcpu.vcpu_info_at), (None, 0, None));
    }

    /// A reference from outside (here another domain's grant mapping of
    /// the data page) survives teardown and is reported.
    #[test]
    fn teardown_reports_frames_still_referenced_from_outside() {
        engine!(e);
        build_tree(&mut e);
        let mut d = crate::domain::Domain::new(D1, false);
        e.pin(D1, L4, Level::L4).unwrap();
        e.get_page(D1, RWDATA).unwrap(); // as a foreign mapping would
        const SHARED: Mfn = 32;
        e.get_page(D1, SHARED).unwrap();
        assert_eq!(d.release_pages(&mut e, SHARED), 1);
        assert!(!e.can_release(RWDATA));
    }

    #[test]
    fn l1_entries_take_general_and_writable_references() {
        engine!(e);
        poke(&mut e, L1, 0, ent(RWDATA, PRW));
        poke(&mut e, L1, 1, ent(RODATA, P));
        poke(&mut e, L1, 2, ent(RODATA, P | pte::A));
        poke(&mut e, L1, 3, 0x1234_5000); // not present: anything goes
        e.pin(D1, L1, Level::L1).unwrap();
        assert_eq!(counts(&e, L1), (1, 1, PageType::L1));
        assert!(st(&e, L1).is_validated() && st(&e, L1).is_pinned());
        assert_eq!(counts(&e, RWDATA), (1, 1, PageType::Writable));
        assert_eq!(counts(&e, RODATA), (2, 0, PageType::None));
        assert_eq!(peek(&mut e, L1, 0), ent(RWDATA, PRW | pte::U), "present entries are made user-accessible");
        assert_eq!(peek(&mut e, L1, 3), 0x1234_5000);
        e.unpin(D1, L1).unwrap();
        assert!(all_released(&e));
    }

    #[test]
    fn pinning_a_tree_validates_every_level_and_unpinning_releases_it() {
        engine!(e);
        build_tree(&mut e);
        e.pin(D1, L4, Level::L4).unwrap();
        for (mfn, ty) in [(L4, PageType::L4), (L3, PageType::L3), (L2, PageType::L2), (L1, PageType::L1)] {
            assert_eq!(counts(&e, mfn), (1, 1, ty), "frame {mfn}");
            assert!(st(&e, mfn).is_validated());
        }
        assert_eq!(counts(&e, RWDATA), (1, 1, PageType::Writable));
        assert_eq!(counts(&e, RODATA), (1, 0, PageType::None));
        assert_eq!(peek(&mut e, L4, 0), ent(L3, PRW | pte::U | pte::A));
        assert_eq!(peek(&mut e, L3, 0), ent(L2, PRW | pte::U));
        assert_eq!(peek(&mut e, L2, 0), ent(L1, PRW | pte::U));
        assert_eq!(peek(&mut e, L1, 1), ent(RODATA, P | pte::U));
        assert!(e.memory().flushes.is_empty(), "nothing had a type before");
        e.unpin(D1, L4).unwrap();
        assert!(all_released(&e));
        for mfn in [L4, L3, L2, L1] {
            assert!(!st(&e, mfn).is_validated());
        }
    }

    #[test]
    fn page_tables_are_never_mapped_writable() {
        engine!(e);
        build_tree(&mut e);
        e.pin(D1, L4, Level::L4).unwrap();
        for table in [L4, L3, L2, L1] {
            let before = snapshot(&mut e);
            assert_eq!(e.mod_entry(D1, L1, 5, ent(table, PRW), false), Err(PtError::Busy(table)));
            assert_eq!(snapshot(&mut e), before, "refused writes change nothing");
            e.mod_entry(D1, L1, 5, ent(table, P), false).unwrap();
            assert_eq!(counts(&e, table).0, 2, "a read-only mapping takes a general reference");
        }
        // A page table with references refuses the writable type outright.
        assert_eq!(e.get_page_and_type(D1, L2, PageType::Writable), Err(PtError::Busy(L2)));
    }

    #[test]
    fn writable_frames_never_become_page_tables_or_descriptors() {
        engine!(e);
        build_tree(&mut e);
        e.pin(D1, L4, Level::L4).unwrap();
        for level in [Level::L1, Level::L2, Level::L3, Level::L4] {
            assert_eq!(e.pin(D1, RWDATA, level), Err(PtError::WrongType(RWDATA)));
        }
        assert_eq!(e.get_page_and_type(D1, RWDATA, PageType::SegDesc), Err(PtError::WrongType(RWDATA)));
        // An L2 entry naming it is refused too.
        assert_eq!(e.mod_entry(D1, L2, 1, ent(RWDATA, PRW), false), Err(PtError::WrongType(RWDATA)));
        assert_eq!(counts(&e, RWDATA), (1, 1, PageType::Writable));
    }

    #[test]
    fn types_change_at_count_zero_after_a_flush() {
        engine!(e);
        build_tree(&mut e);
        e.pin(D1, L4, Level::L4).unwrap();
        // Unmap the writable mapping: the frame may now become a table,
        // and the stale writable translation is flushed first.
        assert_eq!(e.mod_entry(D1, L1, 0, 0, false), Ok(ent(RWDATA, PRW | pte::U)));
        assert_eq!(counts(&e, RWDATA), (0, 0, PageType::None));
        e.pin(D1, RWDATA, Level::L1).unwrap();
        assert_eq!(e.memory().flushes, [RWDATA]);
        // Mapping it writable again is now refused...
        assert_eq!(e.mod_entry(D1, L1, 0, ent(RWDATA, PRW), false), Err(PtError::Busy(RWDATA)));
        // ...and a frame going from writable to writable needs no flush.
        e.mod_entry(D1, L1, 2, ent(30, PRW), false).unwrap();
        e.mod_entry(D1, L1, 2, 0, false).unwrap();
        e.mod_entry(D1, L1, 3, ent(30, PRW), false).unwrap();
        assert_eq!(e.memory().flushes, [RWDATA]);
        // A page table unpinned and pinned at another level is flushed too.
        e.unpin(D1, RWDATA).unwrap();
        e.pin(D1, RWDATA, Level::L2).unwrap();
        assert_eq!(e.memory().flushes, [RWDATA, RWDATA]);
    }

    #[test]
    fn flags_are_checked_per_level() {
        engine!(e);
        build_tree(&mut e);
        e.pin(D1, L4, Level::L4).unwrap();
        let avail = (7 << 9) | (0x7ff << 52);
        let cases: [(Mfn, u64, Option<PtError>); 20] = [
            // L1: G, NX and the available bits are fine; cache attributes are not.
            (L1, ent(30, P | pte::G | pte::NX | avail | pte::A | pte::D), None),
            (L1, ent(30, P | PAT), Some(PtError::BadFlags(ent(30, P | PAT)))),
            (L1, ent(30, P | PWT), Some(PtError::BadFlags(ent(30, P | PWT)))),
            (L1, ent(30, P | PCD), Some(PtError::BadFlags(ent(30, P | PCD)))),
            // L2: no superpages, no G, no cache attributes.
            (L2, ent(31, P | pte::NX | avail), None),
            (L2, ent(31, P | pte::PS), Some(PtError::Superpage(ent(31, P | pte::PS)))),
            (L2, ent(31, PRW | pte::PS | pte::G), Some(PtError::Superpage(ent(31, PRW | pte::PS | pte::G)))),
            (L2, ent(31, P | pte::G), Some(PtError::BadFlags(ent(31, P | pte::G)))),
            (L2, ent(31, P | PWT), Some(PtError::BadFlags(ent(31, P | PWT)))),
            (L2, ent(31, P | PCD), Some(PtError::BadFlags(ent(31, P | PCD)))),
            // L3 alike.
            (L3, ent(32, P | avail), None),
            (L3, ent(32, P | pte::PS), Some(PtError::Superpage(ent(32, P | pte::PS)))),
            (L3, ent(32, P | pte::G), Some(PtError::BadFlags(ent(32, P | pte::G)))),
            (L3, ent(32, P | PCD), Some(PtError::BadFlags(ent(32, P | PCD)))),
            // L4: PS is reserved there.
            (L4, ent(33, P | avail), None),
            (L4, ent(33, P | pte::PS), Some(PtError::BadFlags(ent(33, P | pte::PS)))),
            (L4, ent(33, P | pte::G), Some(PtError::BadFlags(ent(33, P | pte::G)))),
            (L4, ent(33, P | PWT), Some(PtError::BadFlags(ent(33, P | PWT)))),
            // Non-present entries are never checked.
            (L2, ent(HV, pte::PS | PCD | pte::G), None),
            (L4, ent(HV, RW | pte::PS), None),
        ];
        for (i, (table, entry, want)) in cases.into_iter().enumerate() {
            let before = snapshot(&mut e);
            let got = e.mod_entry(D1, table, 7, entry, false);
            match want {
                None => assert!(got.is_ok(), "case {i}: {got:?}"),
                Some(err) => {
                    assert_eq!(got, Err(err), "case {i}");
                    assert_eq!(snapshot(&mut e), before, "case {i}");
                }
            }
        }
    }

    #[test]
    fn nx_needs_the_cpu_to_have_it() {
        engine!(e, ft, false);
        poke(&mut e, L1, 0, ent(RWDATA, P | pte::NX));
        assert_eq!(e.pin(D1, L1, Level::L1), Err(PtError::BadFlags(ent(RWDATA, P | pte::NX))));
        poke(&mut e, L2, 0, ent(L1, P | pte::NX));
        poke(&mut e, L1, 0, 0);
        assert_eq!(e.pin(D1, L2, Level::L2), Err(PtError::BadFlags(ent(L1, P | pte::NX))));
        assert!(all_released(&e));
    }

    #[test]
    fn only_the_domains_own_frames_can_be_referenced() {
        engine!(e);
        build_tree(&mut e);
        e.pin(D1, L4, Level::L4).unwrap();
        let huge = 1 << 39;
        for bad in [HV, 0, OTHER, MODULE, FREE, ABSENT, FRAMES as Mfn, huge] {
            for (table, flags) in [(L1, P), (L1, PRW), (L2, PRW), (L3, P), (L4, PRW)] {
                let before = snapshot(&mut e);
                assert_eq!(e.mod_entry(D1, table, 9, ent(bad, flags), false), Err(PtError::NotOwned(bad)));
                assert_eq!(snapshot(&mut e), before);
            }
            for level in [Level::L1, Level::L4] {
                assert_eq!(e.pin(D1, bad, level), Err(PtError::NotOwned(bad)));
            }
            assert_eq!(e.get_page(D1, bad), Err(PtError::NotOwned(bad)));
            assert_eq!(e.get_page_type(bad, PageType::Writable).is_err(), bad != OTHER);
        }
        // Domain 2 may not touch domain 1's tables either.
        assert_eq!(e.mod_entry(D2, L1, 9, 0, false), Err(PtError::NotOwned(L1)));
        assert_eq!(e.unpin(D2, L4), Err(PtError::NotOwned(L4)));
    }

    /// `mmu_update` with a `foreigndom`: the control domain maps another
    /// domain's frames (data only), which then cannot be freed or become
    /// page tables until unmapped.
    #[test]
    fn a_foreign_owner_s_frames_map_only_when_allowed() {
        engine!(e);
        build_tree(&mut e);
        e.pin(D1, L4, Level::L4).unwrap();
        assert_eq!(e.mod_entry(D1, L1, 9, ent(OTHER, PRW), false), Err(PtError::NotOwned(OTHER)));
        e.allow_foreign(Some(D2));
        e.mod_entry(D1, L1, 9, ent(OTHER, PRW), false).unwrap();
        assert_eq!(counts(&e, OTHER), (1, 1, PageType::Writable));
        assert!(!e.can_release(OTHER), "mapped: not freed under the mapper");
        assert!(e.pin(D2, OTHER, Level::L1).is_err(), "mapped writable: it cannot become a page table");
        assert_eq!(e.mod_entry(D1, L2, 9, ent(OTHER + 1, P), false), Err(PtError::NotOwned(OTHER + 1)), "data only");
        e.mod_entry(D1, L1, 9, 0, false).unwrap();
        assert!(e.can_release(OTHER));
        e.allow_foreign(None);
        e.unpin(D1, L4).unwrap();
        assert!(all_released(&e));
    }

    /// The walk `update_va_mapping` and grant mappings use reads only the
    /// domain's own frames, even through a linear entry that leads into
    /// the hypervisor's L4 slots.
    #[test]
    fn the_walk_to_an_l1_stays_in_the_domains_frames() {
        engine!(e);
        build_tree(&mut e);
        e.pin(D1, L4, Level::L4).unwrap();
        assert_eq!(e.l1_for(D1, L4, 0x1000), Some(L1));
        assert_eq!(e.l1_for(D1, L4, 1 << 39), None, "no L3 there");
        assert_eq!(e.l1_for(D2, L4, 0x1000), None, "not domain 2's tables");
        // L4 slot 5 names the L4 itself; through it, L4 slot 256 (the
        // hypervisor's, naming frame HV) is read as an L3 entry. HV's
        // entry 0 looks like a table, but HV is never read.
        e.mod_entry(D1, L4, 5, ent(L4, P), false).unwrap();
        poke(&mut e, HV, 0, ent(L1, PRW));
        let va = (5 << 39) | ((FIRST_RESERVED_L4_SLOT as u64) << 30);
        assert_eq!(e.l1_for(D1, L4, va), None);
        e.mod_entry(D1, L4, 5, 0, false).unwrap();
        e.unpin(D1, L4).unwrap();
        assert!(all_released(&e));
    }

    #[test]
    fn granted_frames_can_be_mapped_as_granted() {
        engine!(e);
        build_tree(&mut e);
        e.pin(D1, L4, Level::L4).unwrap();
        e.memory().grants.push((D1, OTHER, false));
        assert_eq!(e.mod_entry(D1, L1, 9, ent(OTHER, PRW), false), Err(PtError::NotOwned(OTHER)));
        e.mod_entry(D1, L1, 9, ent(OTHER, P), false).unwrap();
        assert_eq!(counts(&e, OTHER), (1, 0, PageType::None));
        e.memory().grants.push((D1, OTHER + 1, true));
        e.mod_entry(D1, L1, 10, ent(OTHER + 1, PRW), false).unwrap();
        assert_eq!(counts(&e, OTHER + 1), (1, 1, PageType::Writable));
        // Grants are for data: never for a page-table entry above L1.
        assert_eq!(e.mod_entry(D1, L2, 9, ent(OTHER, P), false), Err(PtError::NotOwned(OTHER)));
        e.unpin(D1, L4).unwrap();
        assert!(all_released(&e));
    }

    #[test]
    fn linear_entries_are_read_only_same_level_and_validated() {
        const B: Mfn = 40;
        const C: Mfn = 41;
        engine!(e);
        build_tree(&mut e);
        e.pin(D1, L4, Level::L4).unwrap();
        e.pin(D1, B, Level::L2).unwrap();
        e.pin(D1, C, Level::L2).unwrap();
        // Read-only, to a validated L2: takes a general and an L2 reference.
        e.mod_entry(D1, B, 1, ent(L2, P), false).unwrap();
        assert_eq!(counts(&e, L2), (2, 2, PageType::L2));
        assert_eq!((st(&e, B).linear, st(&e, L2).linear), (1, -1));
        // Writable: refused.
        assert_eq!(e.mod_entry(D1, B, 2, ent(L2, PRW), false), Err(PtError::LinearNotAllowed(L2)));
        // A table naming itself read-only holds no reference on itself.
        e.mod_entry(D1, B, 3, ent(B, P), false).unwrap();
        assert_eq!(counts(&e, B), (1, 1, PageType::L2));
        assert_eq!(e.mod_entry(D1, B, 4, ent(B, PRW), false), Err(PtError::LinearNotAllowed(B)));
        // Cross-level: an L2 entry naming an L4 or L3, an L3 entry naming an L1.
        assert_eq!(e.mod_entry(D1, B, 5, ent(L4, P), false), Err(PtError::WrongType(L4)));
        assert_eq!(e.mod_entry(D1, B, 5, ent(L3, P), false), Err(PtError::WrongType(L3)));
        assert_eq!(e.mod_entry(D1, L3, 5, ent(L1, P), false), Err(PtError::WrongType(L1)));
        assert_eq!(e.mod_entry(D1, L4, 5, ent(L2, P), false), Err(PtError::WrongType(L2)));
        // No chains (XSA-240): B holds a linear entry so it can't be named
        // by one; L2 is named by one so it can't hold one.
        assert_eq!(e.mod_entry(D1, C, 0, ent(B, P), false), Err(PtError::LinearNotAllowed(B)));
        assert_eq!(e.mod_entry(D1, L2, 1, ent(C, P), false), Err(PtError::LinearNotAllowed(C)));
        // At L3 and L4 too.
        e.pin(D1, 42, Level::L4).unwrap();
        e.mod_entry(D1, 42, 0, ent(L4, P), false).unwrap();
        e.mod_entry(D1, L4, 1, ent(L4, P), false).unwrap();
        e.pin(D1, 43, Level::L3).unwrap();
        e.mod_entry(D1, 43, 0, ent(L3, P), false).unwrap();
        assert_eq!(counts(&e, L4), (2, 2, PageType::L4));
        // Dropping the linear entry gives the reference back.
        e.mod_entry(D1, B, 1, 0, false).unwrap();
        assert_eq!(counts(&e, L2), (1, 1, PageType::L2));
        assert_eq!((st(&e, B).linear, st(&e, L2).linear), (0, 0));
        for mfn in [L4, B, C, 42, 43] {
            e.unpin(D1, mfn).unwrap();
        }
        assert!(all_released(&e));
    }

    #[test]
    fn reserved_l4_slots_belong_to_the_hypervisor() {
        engine!(e);
        build_tree(&mut e);
        poke(&mut e, L4, FIRST_RESERVED_L4_SLOT, ent(HV, PRW));
        poke(&mut e, L4, LAST_RESERVED_L4_SLOT, ent(MODULE, PRW | pte::PS));
        e.pin(D1, L4, Level::L4).unwrap();
        let want = policy(true).reserved_l4;
        assert_eq!(&e.memory().mem[L4 as usize][256..272], &want, "written on validation");
        assert_eq!(counts(&e, HV), (0, 0, PageType::None), "and never referenced");
        for slot in [256, 263, 271] {
            assert_eq!(e.mod_entry(D1, L4, slot, 0, false), Err(PtError::ReservedSlot(slot)));
        }
        e.mod_entry(D1, L4, 272, ent(40, P), false).unwrap();
        e.mod_entry(D1, L4, 255, ent(41, P), false).unwrap();
        e.unpin(D1, L4).unwrap();
        assert!(all_released(&e));
        // The helper on its own.
        let mut l4 = [7; 512];
        install_reserved_slots(&mut l4, &want);
        assert_eq!((l4[255], &l4[256..272], l4[272]), (7, &want[..], 7));
    }

    #[test]
    fn only_validated_tables_of_the_domain_can_be_updated() {
        engine!(e);
        build_tree(&mut e);
        assert_eq!(e.mod_entry(D1, L1, 0, 0, false), Err(PtError::NotPageTable(L1)), "not validated");
        e.pin(D1, L4, Level::L4).unwrap();
        assert_eq!(e.mod_entry(D1, RWDATA, 0, 0, false), Err(PtError::NotPageTable(RWDATA)), "writable");
        assert_eq!(e.mod_entry(D1, L1, 512, 0, false), Err(PtError::BadIndex(512)));
        assert_eq!(e.mod_entry(D1, HV, 0, 0, false), Err(PtError::NotOwned(HV)));
        assert_eq!(e.mod_entry(D2, OTHER, 0, 0, false), Err(PtError::NotPageTable(OTHER)));
        e.get_page_and_type(D1, 30, PageType::SegDesc).unwrap();
        assert_eq!(e.mod_entry(D1, 30, 0, 0, false), Err(PtError::NotPageTable(30)), "descriptors");
    }

    #[test]
    fn new_references_are_taken_before_old_ones_are_dropped() {
        const MOVED: Mfn = 50;
        engine!(e);
        build_tree(&mut e);
        e.pin(D1, L4, Level::L4).unwrap();
        // L1 is held only by L2's entry 0. Replacing that entry by one to a
        // table mapping L1 writable must fail: L1 is still a table when the
        // new entry is checked.
        poke(&mut e, MOVED, 0, ent(L1, PRW));
        let before = snapshot(&mut e);
        assert_eq!(e.mod_entry(D1, L2, 0, ent(MOVED, PRW), false), Err(PtError::Busy(L1)));
        assert_eq!(snapshot(&mut e), before);
        // Replacing an entry by one naming the same table keeps it valid:
        // no revalidation (which would flush) and unchanged counts.
        e.mod_entry(D1, L2, 0, ent(L1, P | pte::A), false).unwrap();
        assert_eq!(counts(&e, L1), (1, 1, PageType::L1));
        assert!(e.memory().flushes.is_empty());
        assert_eq!(e.mod_entry(D1, L2, 0, 0, false), Ok(ent(L1, P | pte::A | pte::U)));
        assert_eq!(counts(&e, L1), (0, 0, PageType::None));
        assert_eq!(counts(&e, RWDATA), (0, 0, PageType::None), "devalidation drops what entries held");
    }

    #[test]
    fn preserve_ad_keeps_the_old_accessed_and_dirty_bits() {
        engine!(e);
        build_tree(&mut e);
        e.pin(D1, L4, Level::L4).unwrap();
        e.mod_entry(D1, L1, 4, ent(30, PRW | pte::A | pte::D), false).unwrap();
        let old = e.mod_entry(D1, L1, 4, ent(30, P), true).unwrap();
        assert_eq!(old, ent(30, PRW | pte::A | pte::D | pte::U));
        assert_eq!(peek(&mut e, L1, 4), ent(30, P | pte::A | pte::D | pte::U));
        assert_eq!(counts(&e, 30), (1, 0, PageType::None), "writable reference dropped");
        e.mod_entry(D1, L1, 4, ent(30, P), false).unwrap();
        assert_eq!(peek(&mut e, L1, 4), ent(30, P | pte::U));
    }

    #[test]
    fn a_failed_validation_leaves_nothing_behind() {
        engine!(e);
        // L3 60: entry 0 → L2 61 → L1 62 → 63 writable (all valid), entry 1
        // → L2 64, whose entry 3 names a hypervisor frame.
        poke(&mut e, 60, 0, ent(61, PRW));
        poke(&mut e, 61, 0, ent(62, PRW));
        poke(&mut e, 62, 0, ent(63, PRW));
        poke(&mut e, 62, 1, ent(61, P));
        poke(&mut e, 60, 1, ent(64, PRW));
        poke(&mut e, 64, 0, ent(62, PRW));
        poke(&mut e, 64, 3, ent(HV, PRW));
        let before = snapshot(&mut e);
        assert_eq!(e.pin(D1, 60, Level::L3), Err(PtError::NotOwned(HV)));
        assert_eq!(snapshot(&mut e), before, "no count, type or entry changed");
        assert!(all_released(&e));
        // Fixed, the same tree validates, sharing L1 62 between both L2s.
        poke(&mut e, 64, 3, 0);
        e.pin(D1, 60, Level::L3).unwrap();
        assert_eq!(counts(&e, 62), (2, 2, PageType::L1));
        assert_eq!(counts(&e, 61), (2, 1, PageType::L2), "one table entry, one read-only mapping");
        e.unpin(D1, 60).unwrap();
        assert!(all_released(&e));
    }

    #[test]
    fn pins_are_exclusive_and_owned() {
        engine!(e);
        build_tree(&mut e);
        e.pin(D1, L4, Level::L4).unwrap();
        assert_eq!(e.pin(D1, L4, Level::L4), Err(PtError::Pinned(L4)));
        assert_eq!(e.pin(D1, L3, Level::L2), Err(PtError::WrongType(L3)), "validated as another level");
        e.pin(D1, L3, Level::L3).unwrap();
        assert_eq!(counts(&e, L3), (2, 2, PageType::L3));
        assert_eq!(e.unpin(D1, L2), Err(PtError::NotPinned(L2)));
        assert_eq!(e.unpin(D1, RWDATA), Err(PtError::NotPinned(RWDATA)));
        assert_eq!(e.pin(D1, OTHER, Level::L1), Err(PtError::NotOwned(OTHER)));
        e.unpin(D1, L4).unwrap();
        assert_eq!(counts(&e, L3), (1, 1, PageType::L3), "still pinned itself");
        assert_eq!(e.unpin(D1, L4), Err(PtError::NotPinned(L4)));
        e.unpin(D1, L3).unwrap();
        assert!(all_released(&e));
    }

    #[test]
    fn base_pointers_hold_a_validated_l4() {
        engine!(e);
        build_tree(&mut e);
        let mut cr3 = None;
        e.new_baseptr(D1, &mut cr3, Some(L4)).unwrap();
        assert_eq!((cr3, counts(&e, L4)), (Some(L4), (1, 1, PageType::L4)));
        assert_eq!(e.new_baseptr(D1, &mut cr3, Some(RWDATA)), Err(PtError::WrongType(RWDATA)));
        assert_eq!(e.new_baseptr(D1, &mut cr3, Some(OTHER)), Err(PtError::NotOwned(OTHER)));
        assert_eq!(cr3, Some(L4), "unchanged on failure");
        e.new_baseptr(D1, &mut cr3, Some(L4)).unwrap();
        assert_eq!(counts(&e, L4), (1, 1, PageType::L4), "reloading keeps the tree");
        e.new_baseptr(D1, &mut cr3, Some(45)).unwrap();
        assert_eq!(counts(&e, L4), (0, 0, PageType::None), "the old tree is released");
        assert_eq!(counts(&e, RWDATA), (0, 0, PageType::None));
        e.new_baseptr(D1, &mut cr3, None).unwrap();
        assert_eq!(cr3, None);
        assert!(all_released(&e));
    }

    #[test]
    fn referenced_frames_cannot_be_freed() {
        engine!(e, ft);
        build_tree(&mut e);
        e.pin(D1, L4, Level::L4).unwrap();
        e.get_page(D1, 30).unwrap();
        for mfn in [L4, L1, RWDATA, RODATA, 30] {
            assert!(!e.can_release(mfn), "frame {mfn}");
        }
        assert!(e.can_release(31));
        assert_eq!(ft.free(L1), Err(crate::mm::frame::FrameError::InUse(L1)));
        assert_eq!(ft.free(30), Err(crate::mm::frame::FrameError::InUse(30)));
        assert_eq!(ft.usage(L1), FrameUse::Domain(D1));
        ft.free(31).unwrap();
    }

    #[test]
    fn descriptor_pages_are_checked_and_never_writable() {
        engine!(e);
        build_tree(&mut e);
        e.pin(D1, L4, Level::L4).unwrap();
        poke(&mut e, 30, 0, 0x00cf_fb00_0000_ffff);
        e.get_page_and_type(D1, 30, PageType::SegDesc).unwrap();
        assert_eq!(counts(&e, 30), (1, 1, PageType::SegDesc));
        assert_eq!(e.mod_entry(D1, L1, 4, ent(30, PRW), false), Err(PtError::Busy(30)));
        e.mod_entry(D1, L1, 4, ent(30, P), false).unwrap();
        assert_eq!(e.mod_entry(D1, L2, 4, ent(30, P), false), Err(PtError::WrongType(30)));
        e.put_page_and_type(30);
        poke(&mut e, 31, 9, BAD_DESC);
        let before = snapshot(&mut e);
        assert_eq!(e.get_page_and_type(D1, 31, PageType::SegDesc), Err(PtError::BadDescriptors(31)));
        assert_eq!(snapshot(&mut e), before);
        assert_eq!(e.get_page_and_type(D1, RWDATA, PageType::SegDesc), Err(PtError::WrongType(RWDATA)));
        assert_eq!(e.get_page_and_type(D1, 31, PageType::None), Err(PtError::WrongType(31)));
    }

    #[test]
    fn counts_that_would_overflow_are_refused() {
        engine!(e);
        build_tree(&mut e);
        e.pin(D1, L4, Level::L4).unwrap();
        e.frames.types_mut(30).unwrap().refs = u32::MAX;
        let before = snapshot(&mut e);
        assert_eq!(e.get_page(D1, 30), Err(PtError::Overflow(30)));
        assert_eq!(e.mod_entry(D1, L1, 4, ent(30, P), false), Err(PtError::Overflow(30)));
        assert_eq!(snapshot(&mut e), before);
        e.frames.types_mut(30).unwrap().refs = 0;
        e.mod_entry(D1, L1, 4, ent(30, PRW), false).unwrap();
        e.frames.types_mut(30).unwrap().count = u32::MAX;
        e.frames.types_mut(30).unwrap().refs = 7;
        assert_eq!(e.mod_entry(D1, L1, 5, ent(30, PRW), false), Err(PtError::Overflow(30)));
        assert_eq!(counts(&e, 30), (7, u32::MAX, PageType::Writable));
    }

    #[test]
    fn teardown_returns_every_count_to_zero() {
        engine!(e);
        build_tree(&mut e);
        // A second L4 sharing the L3, a linear L4 entry and L2 entry, pins
        // at every level and two base pointers.
        poke(&mut e, 44, 0, ent(L3, PRW));
        poke(&mut e, 44, 1, ent(L4, P));
        poke(&mut e, 46, 0, ent(L1, P));
        poke(&mut e, L1, 2, ent(46, PRW));
        let (mut cr3a, mut cr3b) = (None, None);
        e.new_baseptr(D1, &mut cr3a, Some(L4)).unwrap();
        e.new_baseptr(D1, &mut cr3b, Some(44)).unwrap();
        e.pin(D1, L1, Level::L1).unwrap();
        e.pin(D1, L2, Level::L2).unwrap();
        e.pin(D1, 47, Level::L2).unwrap();
        e.mod_entry(D1, 47, 0, ent(L2, P), false).unwrap();
        e.pin(D1, 48, Level::L1).unwrap();
        e.mod_entry(D1, L2, 1, ent(48, PRW), false).unwrap();
        e.get_page_and_type(D1, 49, PageType::SegDesc).unwrap();
        assert_eq!(counts(&e, L4), (2, 2, PageType::L4));
        assert_eq!(counts(&e, L3), (2, 2, PageType::L3));
        e.put_page_and_type(49);
        e.new_baseptr(D1, &mut cr3a, None).unwrap();
        e.new_baseptr(D1, &mut cr3b, None).unwrap();
        assert_eq!(e.release_domain(D1), 0);
        assert!(all_released(&e));
        assert_eq!(e.release_domain(D2), 0);
    }

    #[test]
    fn release_reports_references_held_from_outside() {
        engine!(e);
        build_tree(&mut e);
        e.pin(D1, L4, Level::L4).unwrap();
        e.get_page(D1, 30).unwrap();
        assert_eq!(e.release_domain(D1), 1);
        e.put_page(30);
        assert!(all_released(&e));
    }

    #[test]
    fn every_refusal_is_einval() {
        for err in [
            PtError::BadIndex(512),
            PtError::NotOwned(1),
            PtError::WrongType(1),
            PtError::BadFlags(0),
            PtError::Superpage(0),
            PtError::LinearNotAllowed(1),
            PtError::ReservedSlot(256),
            PtError::NotPageTable(1),
            PtError::Pinned(1),
            PtError::NotPinned(1),
            PtError::BadDescriptors(1),
            PtError::Overflow(1),
        ] {
            assert_eq!(err.errno(), Errno::EINVAL, "{err:?}");
        }
    }

    // ----- Randomized -----

    use crate::testing::XorShift;

    /// References the test holds from outside the page tables, as the rest
    /// of the hypervisor would.
    #[derive(Default)]
    struct Outside {
        /// Two vCPUs of domain 1 and one of domain 2.
        cr3: [Option<Mfn>; 3],
        /// `get_page_and_type` references (descriptor tables, writable).
        typed: Vec<Mfn>,
        /// `get_page` references.
        general: Vec<Mfn>,
    }

    impl Outside {
        fn cr3_dom(slot: usize) -> DomId {
            if slot < 2 {
                D1
            } else {
                D2
            }
        }
    }

    /// Recounts every reference from scratch (validated tables, pins, base
    /// pointers, outside references), checks every entry of every validated
    /// table against the rules independently of the engine, and compares.
    fn check_invariants(e: &mut Engine<'_, '_>, out: &Outside, step: usize) {
        let n = FRAMES;
        let mut refs = vec![0u64; n];
        let mut count = vec![0u64; n];
        let mut linear_entries = vec![0i64; n];
        let mut linear_uses = vec![0i64; n];
        for m in &out.typed {
            refs[*m as usize] += 1;
            count[*m as usize] += 1;
        }
        for m in out.general.iter().chain(out.cr3.iter().flatten()) {
            refs[*m as usize] += 1;
        }
        for m in out.cr3.iter().flatten() {
            count[*m as usize] += 1;
            assert_eq!(st(e, *m).page_type(), PageType::L4, "step {step}: base pointer {m}");
        }
        let reserved = policy(true).reserved_l4;
        for m in 0..n as Mfn {
            let s = st(e, m);
            assert!(!s.fresh, "step {step}: {m} left fresh");
            if s.count == 0 {
                assert!(!s.validated && !s.pinned && s.linear == 0, "step {step}: {m}: {s:?}");
                continue;
            }
            assert!(s.validated, "step {step}: {m} typed but not validated");
            let FrameUse::Domain(dom) = e.frames().usage(m) else {
                panic!("step {step}: {m} typed but not a domain's");
            };
            if s.pinned {
                assert!(s.ty.is_table(), "step {step}: pinned {m} is {:?}", s.ty);
                refs[m as usize] += 1;
                count[m as usize] += 1;
            }
            let level = s.ty.level();
            if level == 0 {
                continue;
            }
            let table = e.memory().mem[m as usize];
            if level == 4 {
                assert_eq!(&table[256..272], &reserved, "step {step}: L4 {m} reserved slots");
            }
            for (i, &entry) in table.iter().enumerate() {
                if entry & P == 0 || (level == 4 && (256..272).contains(&i)) {
                    continue;
                }
                // Flags: present entries are user-accessible (and L4 ones
                // accessed), carry no cache attributes, no PS, G only at L1.
                let mut allowed = P | RW | pte::U | pte::A | pte::D | (7 << 9) | (0x7ff << 52) | pte::NX | pte::ADDR;
                if level == 1 {
                    allowed |= pte::G;
                }
                assert_eq!(entry & !allowed, 0, "step {step}: L{level} {m}[{i}] = {entry:#x}");
                assert_ne!(entry & pte::U, 0, "step {step}: {m}[{i}] not user");
                if level == 4 {
                    assert_ne!(entry & pte::A, 0, "step {step}: {m}[{i}] not accessed");
                }
                let t = target(entry);
                let tu = t as usize;
                let tt = st(e, t).page_type();
                match e.frames().usage(t) {
                    FrameUse::Domain(d) if d == dom => {}
                    FrameUse::Domain(d) => assert!(
                        level == 1
                            && e.memory().grants.iter().any(|g| g.0 == dom && g.1 == t && (g.2 || entry & RW == 0)),
                        "step {step}: {m}[{i}] names {t} of domain {d}"
                    ),
                    u => panic!("step {step}: {m}[{i}] names {t}, {u:?}"),
                }
                if level == 1 {
                    refs[tu] += 1;
                    if entry & RW != 0 {
                        count[tu] += 1;
                        // The safety property: nothing mapped writable is a
                        // page table or a descriptor page.
                        assert_eq!(tt, PageType::Writable, "step {step}: {m}[{i}] maps {t} writable");
                    }
                } else if t != m {
                    refs[tu] += 1;
                    count[tu] += 1;
                    if tt == PageType::table(level) {
                        assert_eq!(entry & RW, 0, "step {step}: writable linear entry {m}[{i}]");
                        linear_entries[m as usize] += 1;
                        linear_uses[tu] += 1;
                    } else {
                        assert_eq!(tt, PageType::table(level - 1), "step {step}: {m}[{i}] names {t} of type {tt:?}");
                    }
                } else {
                    assert_eq!(entry & RW, 0, "step {step}: writable self-map {m}[{i}]");
                }
            }
        }
        for m in 0..n {
            let s = st(e, m as Mfn);
            assert_eq!(u64::from(s.refs), refs[m], "step {step}: general count of {m}");
            assert_eq!(u64::from(s.count), count[m], "step {step}: type count of {m}");
            assert!(linear_entries[m] == 0 || linear_uses[m] == 0, "step {step}: {m} in a linear chain");
            assert_eq!(i64::from(s.linear), linear_entries[m] - linear_uses[m], "step {step}: linear count of {m}");
        }
    }

    /// A frame for a random entry: mostly domain 1's, sometimes anything.
    fn random_frame(rng: &mut XorShift) -> Mfn {
        match rng.below(20) {
            0 => rng.pick(&[HV, 0, MODULE, FREE, ABSENT, FRAMES as Mfn + 3, 1 << 39]),
            1 => 68 + rng.below(8),
            // A few frames get most of the traffic, so trees form.
            2..=11 => 4 + rng.below(16),
            _ => rng.below(DOM1.end - DOM1.start) + DOM1.start,
        }
    }

    /// A random entry: mostly plausible, sometimes carrying a refused flag.
    fn random_entry(rng: &mut XorShift) -> u64 {
        if rng.chance(12) {
            // Not present: anything.
            return rng.next() & !P;
        }
        let mut flags = P;
        for (bit, pct) in
            [(RW, 50), (pte::U, 50), (pte::A, 40), (pte::D, 20), (1 << 9, 10), (1 << 58, 5), (pte::NX, 10)]
        {
            if rng.chance(pct) {
                flags |= bit;
            }
        }
        if rng.chance(8) {
            flags |= rng.pick(&[pte::PS, pte::G, PWT, PCD]);
        }
        ent(random_frame(rng), flags)
    }

    const INDEXES: [usize; 9] = [0, 1, 2, 3, 255, 256, 271, 272, 511];

    /// A frame whose contents the guest could be writing now: no type
    /// references, or mapped writable.
    fn guest_writable(e: &Engine<'_, '_>, mfn: Mfn) -> bool {
        matches!(st(e, mfn).page_type(), PageType::None | PageType::Writable)
    }

    fn validated_tables(e: &Engine<'_, '_>, dom: DomId) -> Vec<Mfn> {
        (0..FRAMES as Mfn)
            .filter(|&m| e.frames().usage(m) == FrameUse::Domain(dom) && st(e, m).page_type().is_table())
            .collect()
    }

    /// A deliberate attack on a validated table, with the refusal it must get.
    fn attack(e: &mut Engine<'_, '_>, rng: &mut XorShift) -> Option<(Mfn, usize, u64, PtError)> {
        let tables = validated_tables(e, D1);
        if tables.is_empty() {
            return None;
        }
        let table = rng.pick(&tables);
        let level = st(e, table).ty.level();
        let index = rng.pick(&[0, 1, 2, 3, 255, 272, 511]);
        let others: Vec<Mfn> = tables.iter().copied().filter(|&m| m != table).collect();
        match rng.below(6) {
            // A writable L1 mapping of a table or descriptor page.
            0 if level == 1 => {
                let typed: Vec<Mfn> = DOM1
                    .filter(|&m| {
                        matches!(
                            st(e, m).page_type(),
                            PageType::L1 | PageType::L2 | PageType::L3 | PageType::L4 | PageType::SegDesc
                        )
                    })
                    .collect();
                let t = rng.pick(&typed);
                Some((table, index, ent(t, PRW | pte::A), PtError::Busy(t)))
            }
            // A writable linear entry (to itself or another same-level table).
            1 if level > 1 => {
                let same: Vec<Mfn> = tables.iter().copied().filter(|&m| st(e, m).ty.level() == level).collect();
                let t = rng.pick(&same);
                Some((table, index, ent(t, PRW), PtError::LinearNotAllowed(t)))
            }
            // A cross-level entry.
            2 if level > 1 => {
                let cross: Vec<Mfn> = others
                    .iter()
                    .copied()
                    .filter(|&m| {
                        let l = st(e, m).ty.level();
                        l != level && l != level - 1
                    })
                    .collect();
                if cross.is_empty() {
                    return None;
                }
                let t = rng.pick(&cross);
                Some((table, index, ent(t, P), PtError::WrongType(t)))
            }
            // A superpage.
            3 if level == 2 || level == 3 => {
                let e = ent(4 + rng.below(16), PRW | pte::PS);
                Some((table, index, e, PtError::Superpage(e)))
            }
            // Someone else's frame.
            4 => {
                let t = rng.pick(&[HV, MODULE, FREE, ABSENT, OTHER + 2]);
                Some((table, index, ent(t, P), PtError::NotOwned(t)))
            }
            // The hypervisor's L4 slots.
            5 if level == 4 => {
                let slot = FIRST_RESERVED_L4_SLOT + rng.below(RESERVED_L4_SLOTS as u64) as usize;
                Some((table, slot, 0, PtError::ReservedSlot(slot)))
            }
            _ => None,
        }
    }

    fn random_run(seed: u64, steps: usize) {
        engine!(e);
        let mut rng = XorShift(seed);
        let mut out = Outside::default();
        // Domain 2 granted domain 1 frame 70 read-only and 71 writable.
        e.memory().grants.extend([(D1, OTHER, false), (D1, OTHER + 1, true)]);
        let (mut ok, mut refused) = (0u32, 0u32);
        for step in 0..steps {
            let mut before = snapshot(&mut e);
            let op = rng.below(100);
            let result: Result<(), PtError> = match op {
                // The guest writes a frame it can write.
                0..=24 => {
                    let m = random_frame(&mut rng);
                    if DOM1.contains(&m) && guest_writable(&e, m) {
                        let i = rng.pick(&INDEXES);
                        let v = random_entry(&mut rng);
                        poke(&mut e, m, i, v);
                    }
                    check_invariants(&mut e, &out, step);
                    continue;
                }
                // mmu_update: mostly on validated tables.
                25..=49 => {
                    let tables = validated_tables(&e, D1);
                    let table =
                        if !tables.is_empty() && rng.chance(85) { rng.pick(&tables) } else { random_frame(&mut rng) };
                    let i = rng.pick(&INDEXES);
                    let v = random_entry(&mut rng);
                    let preserve = rng.chance(20);
                    e.mod_entry(D1, table, i, v, preserve).map(|old| {
                        assert_eq!(
                            peek(&mut e, table, i),
                            adjust(st(&e, table).ty.level(), if preserve { v | (old & (pte::A | pte::D)) } else { v })
                        );
                    })
                }
                50..=57 => {
                    if let Some((table, index, entry, want)) = attack(&mut e, &mut rng) {
                        let got = e.mod_entry(D1, table, index, entry, false);
                        assert_eq!(got, Err(want), "step {step}: attack on {table}[{index}] with {entry:#x}");
                        got.map(|_| ())
                    } else {
                        Ok(())
                    }
                }
                58..=69 => {
                    let level = rng.pick(&[Level::L1, Level::L2, Level::L3, Level::L4]);
                    e.pin(D1, random_frame(&mut rng), level)
                }
                70..=77 => {
                    let m = random_frame(&mut rng);
                    e.unpin(D1, m)
                }
                78..=84 => {
                    let slot = rng.below(3) as usize;
                    let dom = Outside::cr3_dom(slot);
                    let new = if rng.chance(15) {
                        None
                    } else if dom == D2 {
                        Some(68 + rng.below(8))
                    } else {
                        Some(random_frame(&mut rng))
                    };
                    e.new_baseptr(dom, &mut out.cr3[slot], new)
                }
                85..=89 => {
                    if !out.typed.is_empty() && rng.chance(50) {
                        let m = out.typed.swap_remove(rng.below(out.typed.len() as u64) as usize);
                        e.put_page_and_type(m);
                        Ok(())
                    } else {
                        let m = random_frame(&mut rng);
                        if DOM1.contains(&m) && guest_writable(&e, m) && rng.chance(5) {
                            poke(&mut e, m, 0, BAD_DESC);
                            before = snapshot(&mut e);
                        }
                        let ty = rng.pick(&[PageType::SegDesc, PageType::Writable]);
                        let r = e.get_page_and_type(D1, m, ty);
                        if r.is_ok() {
                            out.typed.push(m);
                        }
                        r
                    }
                }
                90..=93 => {
                    if !out.general.is_empty() && rng.chance(50) {
                        let m = out.general.swap_remove(rng.below(out.general.len() as u64) as usize);
                        e.put_page(m);
                        Ok(())
                    } else {
                        let m = random_frame(&mut rng);
                        let r = e.get_page(D1, m);
                        if r.is_ok() {
                            out.general.push(m);
                        }
                        r
                    }
                }
                // Domain 2 builds tables of its own and tries domain 1's.
                _ => {
                    let m = 68 + rng.below(8);
                    match rng.below(4) {
                        0 => {
                            if guest_writable(&e, m) {
                                let target = if rng.chance(50) { 68 + rng.below(8) } else { random_frame(&mut rng) };
                                poke(
                                    &mut e,
                                    m,
                                    rng.pick(&INDEXES),
                                    ent(target, P | if rng.chance(50) { RW } else { 0 }),
                                );
                            }
                            Ok(())
                        }
                        1 => e.pin(D2, m, rng.pick(&[Level::L1, Level::L2])),
                        2 => e.unpin(D2, m),
                        _ => e
                            .mod_entry(D2, random_frame(&mut rng), rng.pick(&INDEXES), random_entry(&mut rng), false)
                            .map(|_| ()),
                    }
                }
            };
            match result {
                Ok(()) => ok += 1,
                Err(err) => {
                    refused += 1;
                    let want = if matches!(err, PtError::Busy(_)) { Errno::EBUSY } else { Errno::EINVAL };
                    assert_eq!(err.errno(), want);
                    let after = snapshot(&mut e);
                    assert!(after == before, "step {step}: refused op {op} ({err:?}) changed state");
                }
            }
            check_invariants(&mut e, &out, step);
        }
        assert!(ok > steps as u32 / 10 && refused > steps as u32 / 10, "ok {ok}, refused {refused}");
        // Teardown: the rest of the hypervisor drops its references and base
        // pointers, then each domain's pins go.
        for m in out.typed.drain(..) {
            e.put_page_and_type(m);
        }
        for m in out.general.drain(..) {
            e.put_page(m);
        }
        for slot in 0..3 {
            e.new_baseptr(Outside::cr3_dom(slot), &mut out.cr3[slot], None).unwrap();
        }
        assert_eq!(e.release_domain(D1), 0);
        assert_eq!(e.release_domain(D2), 0);
        check_invariants(&mut e, &out, steps);
        assert!(all_released(&e));
    }

    #[test]
    fn random_operations_keep_page_tables_safe_and_counts_exact() {
        random_run(0x9e37_79b9_7f4a_7c15, 20_000);
    }

    #[test]
    fn random_operations_with_other_seeds() {
        for seed in [1, 0xdead_beef, 0x1234_5678_9abc_def0] {
            random_run(seed, 5_000);
        }
    }
}
