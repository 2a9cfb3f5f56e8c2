//! Grant tables, version 1: one domain lets another map or copy its pages.
//!
//! A domain (the *granter*) writes `grant_entry_v1 {flags, domid, frame}`
//! entries into its grant table, frames the hypervisor allocated and
//! shares with it (`GNTTABOP_setup_table` returns their numbers, the guest
//! maps them). Another domain (the *mapper*, possibly the granter itself)
//! names an entry by `(domid, ref)` to map the frame into its address
//! space (`map_grant_ref`, which returns a *handle*), to unmap it again
//! (`unmap_grant_ref`), or to copy to or from it (`copy`). The semantics,
//! status codes (`GNTST_*`, in each op's `status`) and order of checks are
//! Xen 4.17's (`common/grant_table.c`, `arch/x86/pv/grant_table.c`) for
//! 64-bit PV domains, host mappings only.
//!
//! # State, and where it lives
//!
//! Nothing is kept per domain slot but the platform's record of one frame
//! number ([`Platform::grant_root`]), set when a domain first uses grant
//! tables. That *root* frame (a hypervisor frame) holds the table's size,
//! a few counters and the numbers of the other frames:
//!
//! - the **shared frames** (up to [`MAX_FRAMES`], 512 entries each): frames
//!   owned by the domain, so that it can map them, on which the hypervisor
//!   holds a writable-type reference for the table's life (so they can
//!   never become page tables or be given back);
//! - one **active frame** per shared frame: per entry, the frame it
//!   granted when first pinned, the one domain mapping it, and how many
//!   read-only and writable pins it has (Xen's `active_grant_entry`);
//! - up to [`MAX_MAPTRACK_FRAMES`] **maptrack frames**: the handles of the
//!   mappings this domain made (granter, ref, address, the L1 holding the
//!   entry), with a free list through the unused ones.
//!
//! A domain that never used grant tables has no root; it still has the one
//! all-zero table frame Xen gives every domain (so `query_size` reports one
//! frame and refs below 512 exist but grant nothing).
//!
//! # References
//!
//! A grant mapping is an L1 entry written through the page-type engine
//! with the granter as the allowed foreign owner, so the entry holds the
//! general (and, if writable, writable-type) reference on the frame as any
//! L1 entry does: while it is mapped the granter cannot give the frame back
//! or make it a page table, and the frame is not freed. As in Xen, the
//! entry owns those references: a mapper that overwrites its grant mapping
//! through `mmu_update` drops them, and its later `unmap_grant_ref` fails
//! (`GNTST_general_error`) because the entry no longer names the frame.
//!
//! # The granter's entries
//!
//! The granter may rewrite its entries at any time, so they are only read
//! and updated through the platform's atomic accessors, and the reading and
//! writing flags are set with a compare-and-exchange of the `flags, domid`
//! word that succeeds only if the entry still says what was checked (at
//! most five attempts, then `GNTST_general_error`, as Xen bounds it). The
//! frame number is read once, when an entry is first pinned; later pins
//! use the active entry's copy.
//!
//! # Teardown
//!
//! [`release_domain`] runs when a domain is destroyed: its own mappings are
//! removed (entries cleared, references dropped, the granters' flags and
//! pins updated), then its table is freed, unless another domain still maps
//! one of its grants. Then the state stays, marked dying, until the last
//! such mapping goes ([`unmap`] or that domain's own teardown), at which
//! point it is freed and the platform reclaims the dead domain's frames
//! ([`Platform::reclaim_domain`]).

#[cfg(test)]
mod tests;

use crate::domain::Domain;
use crate::guest::range_ok;
use crate::hypercall::{with_page_types, Platform};
use crate::mm::frame::{DomId, FrameUse};
use crate::mm::pagetable::{index, pte};
use crate::mm::pagetype::{GuestFrames, PageType, PageTypes};
use crate::mm::Mfn;
use abi::grant_table::*;
use abi::mm::DOMID_SELF;

/// Most shared frames a domain's grant table may have.
pub const MAX_FRAMES: u32 = 4;
/// Version-1 entries per shared frame (4096 / 8).
pub const ENTRIES_PER_FRAME: u32 = 512;
/// Most grant references a table may have.
pub const MAX_ENTRIES: u32 = MAX_FRAMES * ENTRIES_PER_FRAME;
/// Mapping handles per maptrack frame (32-byte records).
pub const MAPTRACK_PER_FRAME: u32 = 128;
/// Most maptrack frames a domain may have.
pub const MAX_MAPTRACK_FRAMES: u32 = 8;
/// Most grant mappings one domain may hold at once.
pub const MAX_HANDLES: u32 = MAPTRACK_PER_FRAME * MAX_MAPTRACK_FRAMES;
/// The only grant-table version offered.
pub const VERSION: u32 = 1;
/// A pin count at or above this refuses another pin (Xen's overflow check
/// of `pin & 0x80808080`).
const PIN_LIMIT: u8 = 0x80;
/// Compare-and-exchange attempts on a granter's entry before giving up.
const CMPXCHG_ATTEMPTS: u32 = 5;

/// Why a grant operation failed: one `GNTST_*` status each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// `GNTST_general_error`: the entry does not grant this, the address
    /// cannot be mapped, an entry changed under us, a count would overflow.
    General,
    /// `GNTST_bad_domain`: no such domain.
    BadDomain,
    /// `GNTST_bad_gntref`: a reference beyond the table (or no mapping
    /// kind asked for).
    BadGntref,
    /// `GNTST_bad_handle`: no such mapping.
    BadHandle,
    /// `GNTST_no_device_space`: no mapping handle left.
    NoDeviceSpace,
    /// `GNTST_permission_denied`: acting on another domain without privilege.
    PermissionDenied,
    /// `GNTST_bad_page`: the frame is not the domain's.
    BadPage,
    /// `GNTST_bad_copy_arg`: a copy that crosses the end of a page.
    BadCopyArg,
}

impl GrantError {
    /// The status an op reports.
    pub const fn status(self) -> i16 {
        match self {
            GrantError::General => GNTST_GENERAL_ERROR,
            GrantError::BadDomain => GNTST_BAD_DOMAIN,
            GrantError::BadGntref => GNTST_BAD_GNTREF,
            GrantError::BadHandle => GNTST_BAD_HANDLE,
            GrantError::NoDeviceSpace => GNTST_NO_DEVICE_SPACE,
            GrantError::PermissionDenied => GNTST_PERMISSION_DENIED,
            GrantError::BadPage => GNTST_BAD_PAGE,
            GrantError::BadCopyArg => GNTST_BAD_COPY_ARG,
        }
    }
}

/// Word indices of the root frame.
mod root {
    /// Bit 0: the domain was destroyed while its grants were mapped.
    pub const FLAGS: usize = 0;
    /// Shared frames allocated (0..=MAX_FRAMES).
    pub const NR_FRAMES: usize = 1;
    /// Maptrack frames allocated.
    pub const NR_MAPTRACK: usize = 2;
    /// First free maptrack handle, or `NONE`.
    pub const FREE_HEAD: usize = 3;
    /// Active entries with a pin.
    pub const PINNED: usize = 4;
    /// Maptrack entries in use.
    pub const MAPS: usize = 5;
    /// Shared frames, `MAX_FRAMES` words.
    pub const SHARED: usize = 8;
    /// Active frames, `MAX_FRAMES` words.
    pub const ACTIVE: usize = 16;
    /// Maptrack frames, `MAX_MAPTRACK_FRAMES` words.
    pub const MAPTRACK: usize = 24;
    /// `FLAGS` bit: dying.
    pub const DYING: u64 = 1;
    /// The end of a free list.
    pub const NONE: u64 = u64::MAX;
}

/// What the hypervisor knows of one grant entry while it is pinned (Xen's
/// `active_grant_entry`), packed in one word of an active frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Active {
    /// The frame granted, read from the entry when first pinned.
    mfn: u32,
    /// The one domain that may pin it while pinned.
    domid: DomId,
    /// Writable pins (host mappings, and copies in progress).
    write: u8,
    /// Read-only pins.
    read: u8,
}

impl Active {
    fn unpack(w: u64) -> Active {
        Active { mfn: w as u32, domid: (w >> 32) as u16, write: (w >> 48) as u8, read: (w >> 56) as u8 }
    }

    fn pack(self) -> u64 {
        u64::from(self.mfn) | u64::from(self.domid) << 32 | u64::from(self.write) << 48 | u64::from(self.read) << 56
    }

    fn pinned(self) -> bool {
        self.write != 0 || self.read != 0
    }

    /// Another pin of this kind could overflow (checked before any pin,
    /// whatever its kind, as Xen does).
    fn full(self) -> bool {
        self.write >= PIN_LIMIT || self.read >= PIN_LIMIT
    }

    fn pin(&mut self, readonly: bool) {
        if readonly {
            self.read += 1;
        } else {
            self.write += 1;
        }
    }

    fn unpin(&mut self, readonly: bool) {
        if readonly {
            self.read = self.read.saturating_sub(1);
        } else {
            self.write = self.write.saturating_sub(1);
        }
    }
}

/// One mapping a domain made, in its maptrack (32 bytes: four words).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Mapping {
    /// Where it is mapped (the op's `host_addr`).
    host_addr: u64,
    /// `GNTMAP_host_map`, with `GNTMAP_readonly` if read-only; 0: free.
    flags: u32,
    /// The granter.
    domid: DomId,
    /// The grant reference.
    gref: u32,
    /// The L1 table the entry was written into.
    l1: Mfn,
}

impl Mapping {
    fn readonly(&self) -> bool {
        self.flags & GNTMAP_READONLY != 0
    }
}

/// A domain's grant state: its root frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Table {
    root: Mfn,
}

impl Table {
    /// Domain `dom`'s table, if it ever used one.
    fn of(p: &mut dyn Platform, dom: DomId) -> Option<Table> {
        let root = p.grant_root(dom);
        (root != 0).then_some(Table { root })
    }

    /// Domain `dom`'s table, made (with no frames) if it has none.
    fn of_or_new(p: &mut dyn Platform, dom: DomId) -> Option<Table> {
        if let Some(t) = Table::of(p, dom) {
            return Some(t);
        }
        let root = p.alloc_hv_frame()?;
        let t = Table { root };
        t.set(p, root::FREE_HEAD, root::NONE);
        if p.set_grant_root(dom, root).is_err() {
            p.free_hv_frame(root);
            return None;
        }
        Some(t)
    }

    fn get(self, p: &mut dyn Platform, word: usize) -> u64 {
        p.hv_frame(self.root)[word]
    }

    fn set(self, p: &mut dyn Platform, word: usize, value: u64) {
        p.hv_frame(self.root)[word] = value;
    }

    fn nr_frames(self, p: &mut dyn Platform) -> u32 {
        (self.get(p, root::NR_FRAMES) as u32).min(MAX_FRAMES)
    }

    fn is_dying(self, p: &mut dyn Platform) -> bool {
        self.get(p, root::FLAGS) & root::DYING != 0
    }

    fn pinned(self, p: &mut dyn Platform) -> u64 {
        self.get(p, root::PINNED)
    }

    /// Shared frame `i` (allocated: `i < nr_frames`).
    fn shared(self, p: &mut dyn Platform, i: u32) -> Mfn {
        self.get(p, root::SHARED + i as usize)
    }

    /// Where entry `gref`'s `flags, domid` word lives (its `frame` is the
    /// next word), or `None` if its frame was never allocated (the entry
    /// reads as zero).
    fn entry(self, p: &mut dyn Platform, gref: u32) -> Option<(Mfn, usize)> {
        let frame = gref / ENTRIES_PER_FRAME;
        (frame < self.nr_frames(p)).then(|| (self.shared(p, frame), (gref % ENTRIES_PER_FRAME) as usize * 2))
    }

    fn active(self, p: &mut dyn Platform, gref: u32) -> Active {
        let frame = gref / ENTRIES_PER_FRAME;
        if frame >= self.nr_frames(p) {
            return Active::default();
        }
        let mfn = self.get(p, root::ACTIVE + frame as usize);
        Active::unpack(p.hv_frame(mfn)[(gref % ENTRIES_PER_FRAME) as usize])
    }

    /// Replaces entry `gref`'s active state `old` by `new`, counting
    /// entries that become pinned or unpinned. Only for entries whose
    /// frame exists (pins are only taken on those).
    fn set_active(self, p: &mut dyn Platform, gref: u32, old: Active, new: Active) {
        let frame = gref / ENTRIES_PER_FRAME;
        if frame >= self.nr_frames(p) {
            return;
        }
        let mfn = self.get(p, root::ACTIVE + frame as usize);
        p.hv_frame(mfn)[(gref % ENTRIES_PER_FRAME) as usize] = new.pack();
        let pinned = self.pinned(p);
        match (old.pinned(), new.pinned()) {
            (false, true) => self.set(p, root::PINNED, pinned + 1),
            (true, false) => self.set(p, root::PINNED, pinned.saturating_sub(1)),
            _ => {}
        }
    }

    /// Handles below this have a maptrack record.
    fn handle_limit(self, p: &mut dyn Platform) -> u32 {
        (self.get(p, root::NR_MAPTRACK) as u32).min(MAX_MAPTRACK_FRAMES) * MAPTRACK_PER_FRAME
    }

    /// The frame and first word of `handle`'s record (below the limit).
    fn record(self, p: &mut dyn Platform, handle: u32) -> (Mfn, usize) {
        let frame = self.get(p, root::MAPTRACK + (handle / MAPTRACK_PER_FRAME) as usize);
        (frame, (handle % MAPTRACK_PER_FRAME) as usize * 4)
    }

    fn mapping(self, p: &mut dyn Platform, handle: u32) -> Mapping {
        let (frame, at) = self.record(p, handle);
        let w = &p.hv_frame(frame)[at..at + 4];
        Mapping {
            host_addr: w[0],
            flags: w[1] as u16 as u32,
            domid: (w[1] >> 16) as u16,
            gref: (w[1] >> 32) as u32,
            l1: w[2],
        }
    }

    fn set_mapping(self, p: &mut dyn Platform, handle: u32, m: &Mapping) {
        let (frame, at) = self.record(p, handle);
        let w = &mut p.hv_frame(frame)[at..at + 4];
        w[0] = m.host_addr;
        w[1] = u64::from(m.flags) | u64::from(m.domid) << 16 | u64::from(m.gref) << 32;
        w[2] = m.l1;
    }

    /// Makes sure a handle is free, adding a maptrack frame if needed:
    /// `false` when the domain has all it may have, or memory ran out.
    fn reserve_handle(self, p: &mut dyn Platform) -> bool {
        if self.get(p, root::FREE_HEAD) != root::NONE {
            return true;
        }
        let n = self.get(p, root::NR_MAPTRACK) as u32;
        if n >= MAX_MAPTRACK_FRAMES {
            return false;
        }
        let Some(frame) = p.alloc_hv_frame() else { return false };
        // Chain the new records, lowest handle first.
        let first = n * MAPTRACK_PER_FRAME;
        let words = p.hv_frame(frame);
        for i in 0..MAPTRACK_PER_FRAME {
            let next = if i + 1 < MAPTRACK_PER_FRAME { u64::from(first + i + 1) } else { root::NONE };
            words[i as usize * 4 + 3] = next;
        }
        self.set(p, root::MAPTRACK + n as usize, frame);
        self.set(p, root::NR_MAPTRACK, u64::from(n + 1));
        self.set(p, root::FREE_HEAD, u64::from(first));
        true
    }

    /// Takes the first free handle (one was reserved) for `m`.
    fn take_handle(self, p: &mut dyn Platform, m: &Mapping) -> Option<u32> {
        let head = self.get(p, root::FREE_HEAD);
        let handle = u32::try_from(head).ok().filter(|&h| h < self.handle_limit(p))?;
        let (frame, at) = self.record(p, handle);
        let next = p.hv_frame(frame)[at + 3];
        self.set(p, root::FREE_HEAD, next);
        self.set_mapping(p, handle, m);
        let maps = self.get(p, root::MAPS);
        self.set(p, root::MAPS, maps + 1);
        Some(handle)
    }

    /// Frees `handle` (in use).
    fn put_handle(self, p: &mut dyn Platform, handle: u32) {
        self.set_mapping(p, handle, &Mapping::default());
        let head = self.get(p, root::FREE_HEAD);
        let (frame, at) = self.record(p, handle);
        p.hv_frame(frame)[at + 3] = head;
        self.set(p, root::FREE_HEAD, u64::from(handle));
        let maps = self.get(p, root::MAPS);
        self.set(p, root::MAPS, maps.saturating_sub(1));
    }
}

/// Whether machine frame `mfn` belongs to domain `dom`.
fn owned_by(p: &mut dyn Platform, mfn: u64, dom: DomId) -> bool {
    with_page_types(p, false, |pt| pt.frames().usage(mfn) == FrameUse::Domain(dom))
}

/// The domain a table operation or copy names: the caller for
/// `DOMID_SELF`, else any domain that exists (Xen's
/// `rcu_lock_domain_by_any_id`).
fn any_domain(p: &mut dyn Platform, caller: &Domain, dom: u16) -> Result<DomId, GrantError> {
    if dom == DOMID_SELF {
        Ok(caller.id)
    } else {
        existing(p, caller, dom)
    }
}

/// A domain named by its id (`DOMID_SELF` names none, as for Xen's
/// `rcu_lock_domain_by_id`).
fn existing(p: &mut dyn Platform, caller: &Domain, dom: u16) -> Result<DomId, GrantError> {
    if dom == caller.id || (dom != DOMID_SELF && p.domain_exists(dom)) {
        Ok(dom)
    } else {
        Err(GrantError::BadDomain)
    }
}

/// The table `dom` names, for `setup_table` and `query_size`: the caller's
/// own, or for a privileged caller any domain's.
fn table_target(p: &mut dyn Platform, caller: &Domain, dom: u16) -> Result<DomId, GrantError> {
    let d = any_domain(p, caller, dom)?;
    if d != caller.id && !caller.privileged {
        return Err(GrantError::PermissionDenied);
    }
    Ok(d)
}

/// `GNTTABOP_query_size`: the table's frames and most frames. A table
/// never set up reports the one (empty) frame every domain starts with.
pub fn query_size(p: &mut dyn Platform, caller: &Domain, dom: u16) -> Result<(u32, u32), GrantError> {
    let d = table_target(p, caller, dom)?;
    let frames = Table::of(p, d).map_or(0, |t| t.nr_frames(p));
    Ok((frames.max(1), MAX_FRAMES))
}

/// `GNTTABOP_setup_table`: grows domain `dom`'s table to at least
/// `nr_frames` frames and returns its frames (the first `nr_frames` of
/// the array are meaningful). More than [`MAX_FRAMES`], or no memory for
/// them, is `General` and changes nothing.
pub fn setup_table(
    p: &mut dyn Platform,
    caller: &Domain,
    dom: u16,
    nr_frames: u32,
) -> Result<[Mfn; MAX_FRAMES as usize], GrantError> {
    let d = table_target(p, caller, dom)?;
    if nr_frames > MAX_FRAMES {
        return Err(GrantError::General);
    }
    let mut frames = [0; MAX_FRAMES as usize];
    if nr_frames == 0 {
        return Ok(frames);
    }
    let t = Table::of_or_new(p, d).ok_or(GrantError::General)?;
    grow(p, t, d, nr_frames)?;
    for (i, f) in frames.iter_mut().enumerate().take(nr_frames as usize) {
        *f = t.shared(p, i as u32);
    }
    Ok(frames)
}

/// Gives table `t` of domain `dom` at least `want` shared frames (each
/// with its active frame), all or nothing.
fn grow(p: &mut dyn Platform, t: Table, dom: DomId, want: u32) -> Result<(), GrantError> {
    let have = t.nr_frames(p);
    let mut new = [(0, 0); MAX_FRAMES as usize];
    let mut made = 0;
    let mut ok = true;
    for slot in new.iter_mut().take(want.saturating_sub(have) as usize) {
        let Some(active) = p.alloc_hv_frame() else {
            ok = false;
            break;
        };
        let Some(shared) = p.alloc_domain_frame(dom) else {
            p.free_hv_frame(active);
            ok = false;
            break;
        };
        // The table's reference: the frame is the domain's to map, but
        // never a page table (the hypervisor writes flags into it) and
        // never given back while the table lives.
        if !with_page_types(p, false, |pt| pt.get_page_and_type(dom, shared, PageType::Writable).is_ok()) {
            let _ = p.release_domain_frame(dom, shared);
            p.free_hv_frame(active);
            ok = false;
            break;
        }
        *slot = (shared, active);
        made += 1;
    }
    if !ok {
        for &(shared, active) in &new[..made] {
            with_page_types(p, (), |pt| pt.put_page_and_type(shared));
            let _ = p.release_domain_frame(dom, shared);
            p.free_hv_frame(active);
        }
        return Err(GrantError::General);
    }
    for (i, &(shared, active)) in new[..made].iter().enumerate() {
        let at = have as usize + i;
        t.set(p, root::SHARED + at, shared);
        t.set(p, root::ACTIVE + at, active);
    }
    t.set(p, root::NR_FRAMES, u64::from(have + made as u32));
    Ok(())
}

/// `GNTTABOP_set_version`: only version 1 exists here. Returns the version
/// in effect, which the guest gets back whatever the result: 2 is refused
/// as by a Xen built without it (`-ENOSYS`), others are `-EINVAL`.
pub fn set_version(version: u32) -> (Result<(), abi::errno::Errno>, u32) {
    let r = match version {
        VERSION => Ok(()),
        2 => Err(abi::errno::Errno::ENOSYS),
        _ => Err(abi::errno::Errno::EINVAL),
    };
    (r, VERSION)
}

/// Sets the reading (and, unless `readonly`, writing) flag of entry `gref`
/// of `t`, granted to `ldom`, if it still grants that: the `flags, domid`
/// word is checked and updated by compare-and-exchange, retried a few times
/// if the granter changes it meanwhile. An entry that is already `pinned`
/// is not checked again except for a writable pin of a read-only grant.
/// `map`: sub-page grants are refused (they can only be copied).
fn set_status(
    p: &mut dyn Platform,
    t: Table,
    gref: u32,
    ldom: DomId,
    readonly: bool,
    pinned: bool,
    map: bool,
) -> Result<(), GrantError> {
    let (mfn, word) = t.entry(p, gref).ok_or(GrantError::General)?;
    let mask = if map { GTF_TYPE_MASK | GTF_SUB_PAGE } else { GTF_TYPE_MASK };
    let mut seen = p.frame_load32(mfn, word);
    for _ in 0..CMPXCHG_ATTEMPTS {
        let (flags, domid) = (seen as u16, (seen >> 16) as u16);
        if !pinned && (flags & mask != GTF_PERMIT_ACCESS || domid != ldom) {
            return Err(GrantError::General);
        }
        let mut new = flags | GTF_READING;
        if !readonly {
            if flags & GTF_READONLY != 0 {
                return Err(GrantError::General);
            }
            new |= GTF_WRITING;
        }
        match p.frame_cmpxchg32(mfn, word, seen, (seen & 0xffff_0000) | u32::from(new)) {
            Ok(_) => return Ok(()),
            Err(now) => seen = now,
        }
    }
    Err(GrantError::General)
}

/// Clears what a pin no longer justifies after entry `gref`'s pins became
/// `act` (Xen's `reduce_status_for_pin`): writing when no writable pin is
/// left (if the pin taken or dropped was writable), reading when none at
/// all.
fn clear_status(p: &mut dyn Platform, t: Table, gref: u32, act: Active, readonly: bool) {
    let mut clear = 0;
    if !readonly && act.write == 0 {
        clear |= GTF_WRITING;
    }
    if !act.pinned() {
        clear |= GTF_READING;
    }
    if clear != 0 {
        if let Some((mfn, word)) = t.entry(p, gref) {
            p.frame_and32(mfn, word, !u32::from(clear));
        }
    }
}

/// Pins entry `gref` of domain `rd`'s table for `ldom` (Xen's
/// `acquire_grant_for_copy`, and the pinning half of `map_grant_ref`):
/// checks the entry, sets its flags, and counts one pin of the kind asked.
/// Returns the frame and the entry's state before.
fn acquire(
    p: &mut dyn Platform,
    rd: DomId,
    gref: u32,
    ldom: DomId,
    readonly: bool,
    map: bool,
) -> Result<(Table, u32), GrantError> {
    let t = Table::of(p, rd);
    let nr = t.map_or(ENTRIES_PER_FRAME, |t| t.nr_frames(p).max(1) * ENTRIES_PER_FRAME);
    if gref >= nr {
        return Err(GrantError::BadGntref);
    }
    // A table with no frame: the entry is zero and grants nothing.
    let t = t.ok_or(GrantError::General)?;
    let old = t.active(p, gref);
    if old.pinned() && (old.domid != ldom || old.full()) {
        return Err(GrantError::General);
    }
    let mut act = old;
    if !old.pinned() || (!readonly && old.write == 0) {
        set_status(p, t, gref, ldom, readonly, old.pinned(), map)?;
        if !old.pinned() {
            let frame = t.entry(p, gref).map_or(0, |(mfn, word)| p.frame_load32(mfn, word + 1));
            if !owned_by(p, u64::from(frame), rd) {
                clear_status(p, t, gref, old, readonly);
                return Err(GrantError::BadPage);
            }
            act = Active { mfn: frame, domid: ldom, write: 0, read: 0 };
        }
    } else if !owned_by(p, u64::from(old.mfn), rd) {
        // Pinned, so the frame cannot have left its owner: this would be a
        // bug elsewhere. Refuse rather than touch someone else's frame.
        return Err(GrantError::BadDomain);
    }
    act.pin(readonly);
    t.set_active(p, gref, old, act);
    Ok((t, act.mfn))
}

/// Drops one pin of entry `gref` (the inverse of [`acquire`]), clearing the
/// flags it no longer justifies. A dying table whose last pin this was is
/// freed.
fn release(p: &mut dyn Platform, rd: DomId, t: Table, gref: u32, readonly: bool) {
    let old = t.active(p, gref);
    let mut act = old;
    act.unpin(readonly);
    t.set_active(p, gref, old, act);
    clear_status(p, t, gref, act, readonly);
    if t.is_dying(p) && t.pinned(p) == 0 {
        free_table(p, rd, t);
        p.reclaim_domain(rd);
    }
}

/// `GNTTABOP_map_grant_ref`'s request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapRequest {
    /// Where to map: a virtual address in the caller's current tables.
    pub host_addr: u64,
    /// `GNTMAP_*`.
    pub flags: u32,
    /// The grant reference.
    pub gref: u32,
    /// The granter.
    pub dom: u16,
}

/// A mapping made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapped {
    /// The handle that unmaps it.
    pub handle: u32,
    /// The frame's machine address (Xen reports it for every mapping).
    pub dev_bus_addr: u64,
}

/// `GNTTABOP_map_grant_ref`: maps entry `req.gref` of domain `req.dom` at
/// `req.host_addr` in the caller's current page tables. Only host
/// mappings of whole pages (`GNTMAP_host_map`, optionally
/// `GNTMAP_readonly`; `GNTMAP_application_map` changes nothing since
/// every guest mapping is a user one, and the guest's available bits go
/// into the entry's bits 9–11); device mappings and `GNTMAP_contains_pte`
/// are `General`.
pub fn map(p: &mut dyn Platform, caller: &Domain, req: &MapRequest) -> Result<Mapped, GrantError> {
    if req.flags & (GNTMAP_DEVICE_MAP | GNTMAP_HOST_MAP) == 0 {
        return Err(GrantError::BadGntref);
    }
    let rd = existing(p, caller, req.dom)?;
    if req.flags & (GNTMAP_DEVICE_MAP | GNTMAP_CONTAINS_PTE) != 0 {
        return Err(GrantError::General);
    }
    let ldom = caller.id;
    let lt = Table::of_or_new(p, ldom).ok_or(GrantError::NoDeviceSpace)?;
    if !lt.reserve_handle(p) {
        return Err(GrantError::NoDeviceSpace);
    }
    let readonly = req.flags & GNTMAP_READONLY != 0;
    let (rt, frame) = acquire(p, rd, req.gref, ldom, readonly, true)?;
    let mfn = u64::from(frame);
    let va = req.host_addr;
    let mut entry = (mfn << 12) | pte::P | pte::A | pte::D;
    if !readonly {
        entry |= pte::RW;
    }
    entry |= u64::from((req.flags >> GNTMAP_GUEST_AVAIL0) & 7) << 9;
    let installed = match caller.vcpu.kernel_table {
        Some(l4) if range_ok(va, 1) => with_page_types(p, None, |pt| {
            if pt.policy().nx {
                entry |= pte::NX;
            }
            let l1 = pt.l1_for(ldom, l4, va).filter(|&l1| is_l1_of(pt, l1, ldom))?;
            // The granter's frame is allowed for this one entry, which we
            // built: the engine still checks it is the granter's and takes
            // the references a mapping of it needs.
            pt.allow_foreign((rd != ldom).then_some(rd));
            let r = pt.mod_entry(ldom, l1, index(va, 1), entry, false);
            pt.allow_foreign(None);
            r.ok().map(|old| (l1, old))
        }),
        _ => None,
    };
    let Some((l1, old)) = installed else {
        release(p, rd, rt, req.gref, readonly);
        return Err(GrantError::General);
    };
    if old & pte::P != 0 {
        // It replaced a mapping the TLB may hold.
        p.flush_tlb(Some(va));
    }
    let flags = GNTMAP_HOST_MAP | (req.flags & GNTMAP_READONLY);
    let m = Mapping { host_addr: va, flags, domid: rd, gref: req.gref, l1 };
    // Reserved above, and nothing since can have taken it.
    let handle = lt.take_handle(p, &m).ok_or(GrantError::NoDeviceSpace)?;
    Ok(Mapped { handle, dev_bus_addr: mfn << 12 })
}

/// Whether `l1` is a validated L1 table of `dom` (a walk through linear
/// entries can end on a table of another level, as Xen checks too).
fn is_l1_of(pt: &PageTypes<'_, '_, dyn GuestFrames>, l1: Mfn, dom: DomId) -> bool {
    let t = pt.frames().types(l1);
    pt.frames().usage(l1) == FrameUse::Domain(dom) && t.page_type() == PageType::L1 && t.is_validated()
}

/// Clears the grant mapping of `mfn` that `m` recorded, if its entry
/// still holds it (present, that frame, writable as mapped): `true` if it
/// did.
fn clear_entry(p: &mut dyn Platform, dom: DomId, m: &Mapping, mfn: u64) -> bool {
    with_page_types(p, false, |pt| {
        if !is_l1_of(pt, m.l1, dom) {
            return false;
        }
        let i = index(m.host_addr, 1);
        let e = pt.memory().entries(m.l1)[i];
        let writable = e & pte::RW != 0;
        if e & pte::P == 0 || (e & pte::ADDR) >> 12 != mfn || writable == m.readonly() {
            return false;
        }
        pt.mod_entry(dom, m.l1, i, 0, false).is_ok()
    })
}

/// `GNTTABOP_unmap_grant_ref`: removes the caller's mapping `handle`.
/// `host_addr` must be where it was mapped (0 unmaps nothing and
/// succeeds, as in Xen), and the entry there must still map the frame as
/// it was mapped; otherwise `General`, and the handle stays. The op's
/// `dev_bus_addr` is for device mappings, which there are none of: Xen
/// 4.17 ignores it for a host mapping, and so does this.
pub fn unmap(p: &mut dyn Platform, caller: &Domain, handle: u32, host_addr: u64) -> Result<(), GrantError> {
    let dom = caller.id;
    let lt = Table::of(p, dom).ok_or(GrantError::BadHandle)?;
    if handle >= lt.handle_limit(p) {
        return Err(GrantError::BadHandle);
    }
    let m = lt.mapping(p, handle);
    if m.flags == 0 {
        return Err(GrantError::BadHandle);
    }
    let rt = Table::of(p, m.domid).ok_or(GrantError::BadHandle)?;
    let act = rt.active(p, m.gref);
    if !act.pinned() || act.domid != dom {
        return Err(GrantError::BadHandle);
    }
    let mfn = u64::from(act.mfn);
    if host_addr == 0 {
        return Ok(());
    }
    if host_addr != m.host_addr || !clear_entry(p, dom, &m, mfn) {
        return Err(GrantError::General);
    }
    p.flush_tlb(Some(host_addr));
    lt.put_handle(p, handle);
    release(p, m.domid, rt, m.gref, m.readonly());
    Ok(())
}

/// One end of a copy, claimed.
#[derive(Clone, Copy, Debug)]
struct Claimed {
    /// The frame.
    mfn: Mfn,
    /// Its owner.
    owner: DomId,
    /// The grant pinned for it, if it was named by reference.
    grant: Option<(Table, u32)>,
}

/// Claims one end of a copy (Xen's `gnttab_copy_claim_buf`): a grant of
/// `dom` pinned for the caller, or the caller's own frame; the destination
/// also takes a writable-type reference (refused for page tables and
/// descriptor pages).
fn claim(
    p: &mut dyn Platform,
    caller: &Domain,
    dom: DomId,
    end: &GnttabCopyPtr,
    by_ref: bool,
    readonly: bool,
) -> Result<Claimed, GrantError> {
    let c = if by_ref {
        let (t, frame) = acquire(p, dom, end.gref(), caller.id, readonly, false)?;
        Claimed { mfn: u64::from(frame), owner: dom, grant: Some((t, end.gref())) }
    } else {
        if !owned_by(p, end.gmfn(), dom) {
            return Err(GrantError::BadPage);
        }
        Claimed { mfn: end.gmfn(), owner: dom, grant: None }
    };
    if !readonly && !with_page_types(p, false, |pt| pt.get_page_and_type(c.owner, c.mfn, PageType::Writable).is_ok()) {
        unclaim(p, &c, true, false);
        return Err(GrantError::General);
    }
    Ok(c)
}

/// Undoes [`claim`]: the type reference if `typed`, the grant's pin.
fn unclaim(p: &mut dyn Platform, c: &Claimed, readonly: bool, typed: bool) {
    if typed {
        with_page_types(p, (), |pt| pt.put_page_and_type(c.mfn));
    }
    if let Some((t, gref)) = c.grant {
        release(p, c.owner, t, gref, readonly);
    }
}

/// The domain one end of a copy names (Xen's `gnttab_copy_lock_domain`):
/// a frame only of `DOMID_SELF`, a reference of any existing domain.
fn copy_domain(p: &mut dyn Platform, caller: &Domain, domid: u16, by_ref: bool) -> Result<DomId, GrantError> {
    if domid != DOMID_SELF && !by_ref {
        return Err(GrantError::PermissionDenied);
    }
    any_domain(p, caller, domid)
}

/// `GNTTABOP_copy`: copies `op.len` bytes from `op.source` to `op.dest`,
/// each a grant reference (`GNTCOPY_source_gref`, `GNTCOPY_dest_gref`) or
/// a frame of the caller's. Both ends are claimed before the bounds are
/// checked, as in Xen, so a bad reference reports before a bad length.
pub fn copy(p: &mut dyn Platform, caller: &Domain, op: &GnttabCopy) -> Result<(), GrantError> {
    let src_by_ref = op.flags & GNTCOPY_SOURCE_GREF != 0;
    let dst_by_ref = op.flags & GNTCOPY_DEST_GREF != 0;
    let sd = copy_domain(p, caller, op.source.domid, src_by_ref)?;
    let dd = copy_domain(p, caller, op.dest.domid, dst_by_ref)?;
    let src = claim(p, caller, sd, &op.source, src_by_ref, true)?;
    let dst = match claim(p, caller, dd, &op.dest, dst_by_ref, false) {
        Ok(d) => d,
        Err(e) => {
            unclaim(p, &src, true, false);
            return Err(e);
        }
    };
    let (so, doff, len) = (usize::from(op.source.offset), usize::from(op.dest.offset), usize::from(op.len));
    let page = crate::layout::PAGE_SIZE as usize;
    let r = if so + len > page || doff + len > page {
        Err(GrantError::BadCopyArg)
    } else {
        p.copy_frame_bytes(dst.mfn, doff, src.mfn, so, len);
        Ok(())
    };
    unclaim(p, &dst, false, true);
    unclaim(p, &src, true, false);
    r
}

/// Frees table `t` of domain `dom`: the table's references on its shared
/// frames (which stay the domain's, to be freed with it), and every
/// hypervisor frame; the domain has no table afterwards.
fn free_table(p: &mut dyn Platform, dom: DomId, t: Table) {
    let n = t.nr_frames(p);
    for i in 0..n {
        let shared = t.shared(p, i);
        with_page_types(p, (), |pt| pt.put_page_and_type(shared));
        let active = t.get(p, root::ACTIVE + i as usize);
        p.free_hv_frame(active);
    }
    let maptrack = (t.get(p, root::NR_MAPTRACK) as u32).min(MAX_MAPTRACK_FRAMES);
    for i in 0..maptrack {
        let frame = t.get(p, root::MAPTRACK + i as usize);
        p.free_hv_frame(frame);
    }
    // Recording "none" cannot fail.
    let _ = p.set_grant_root(dom, 0);
    p.free_hv_frame(t.root);
}

/// Domain teardown (before its page tables go): removes every grant
/// mapping `dom` holds (entries cleared, references dropped, the
/// granters' pins and flags updated, a dying granter freed when this was
/// its last), then frees its table, or, if another domain still maps one
/// of its grants, keeps it, dying, until that mapping goes. Call once per
/// destroyed domain; a domain with no table costs nothing.
pub fn release_domain(p: &mut dyn Platform, dom: DomId) {
    let Some(t) = Table::of(p, dom) else { return };
    let mut cleared = false;
    for handle in 0..t.handle_limit(p) {
        let m = t.mapping(p, handle);
        if m.flags == 0 {
            continue;
        }
        t.put_handle(p, handle);
        let Some(rt) = Table::of(p, m.domid) else { continue };
        let act = rt.active(p, m.gref);
        if !act.pinned() || act.domid != dom {
            continue;
        }
        cleared |= clear_entry(p, dom, &m, u64::from(act.mfn));
        release(p, m.domid, rt, m.gref, m.readonly());
    }
    if cleared {
        p.flush_tlb(None);
    }
    if t.pinned(p) == 0 {
        free_table(p, dom, t);
        return;
    }
    // Others still map its grants: keep the table (not the maptrack,
    // which is empty now) until they unmap.
    let maptrack = (t.get(p, root::NR_MAPTRACK) as u32).min(MAX_MAPTRACK_FRAMES);
    for i in 0..maptrack {
        let frame = t.get(p, root::MAPTRACK + i as usize);
        p.free_hv_frame(frame);
    }
    t.set(p, root::NR_MAPTRACK, 0);
    t.set(p, root::FREE_HEAD, root::NONE);
    t.set(p, root::FLAGS, root::DYING);
}

/// The state of one grant entry, for tests and diagnostics: `(pinned by,
/// writable pins, read-only pins, frame)`, if pinned.
pub fn pins(p: &mut dyn Platform, dom: DomId, gref: u32) -> Option<(DomId, u8, u8, Mfn)> {
    let t = Table::of(p, dom)?;
    let a = t.active(p, gref);
    a.pinned().then_some((a.domid, a.write, a.read, u64::from(a.mfn)))
}

/// How many mappings domain `dom` holds.
pub fn mappings(p: &mut dyn Platform, dom: DomId) -> u64 {
    Table::of(p, dom).map_or(0, |t| t.get(p, root::MAPS))
}
