//! This domain's grant table (version 1), for frontends: granting pages
//! to another domain and taking the grants back; and, for backends,
//! mapping a page another domain granted.
//!
//! [`init`] asks for [`TABLE_FRAMES`] frames (`GNTTABOP_setup_table`) and
//! maps them at [`GRANT_TABLE_VA`]; entries `GNTTAB_NR_RESERVED_ENTRIES`
//! and up are handed out by [`grant_access`], which writes the frame and
//! domain first and the flags last, as a granter must. [`end_access`]
//! takes a grant back only if the grantee has it mapped no more (it clears
//! the flags with a compare-and-swap that fails while `GTF_READING` or
//! `GTF_WRITING` is set), so a page is never reused under a mapping.
//!
//! [`map_foreign`] maps a granted page at a page of
//! [`GRANT_MAP_BASE`]..(`+ GRANT_MAP_SLOTS` pages) and [`unmap_foreign`]
//! removes it.

use core::sync::atomic::{fence, AtomicU16, AtomicU32, Ordering};

use abi::grant_table::{
    GnttabMapGrantRef, GnttabUnmapGrantRef, GNTMAP_HOST_MAP, GNTMAP_READONLY, GNTST_OKAY, GNTTAB_NR_RESERVED_ENTRIES,
    GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_WRITING,
};
use abi::mm::DOMID_SELF;
use abi::Errno;

use crate::frame_alloc::FrameBitmap;
use crate::hypercall::hv;
use crate::layout::{PAGE_SIZE, SCRATCH_BASE};
use crate::lock::Lock;
use crate::mm;
use crate::pagetable::Prot;

/// A grant reference: an entry of a domain's grant table.
pub type GrantRef = u32;

/// Frames of grant table this domain asks for (fewer if the hypervisor
/// allows fewer): 1,024 entries.
pub const TABLE_FRAMES: usize = 2;
/// Entries in one table frame (8 bytes each).
const ENTRIES_PER_FRAME: u32 = 512;
/// Most entries this module hands out.
const MAX_ENTRIES: usize = TABLE_FRAMES * ENTRIES_PER_FRAME as usize;

/// Where the table's frames are mapped (1 GiB into the scratch region).
pub const GRANT_TABLE_VA: u64 = SCRATCH_BASE + (1 << 30);
/// Where [`map_foreign`] maps granted pages (2 GiB into the scratch
/// region, past the table).
pub const GRANT_MAP_BASE: u64 = SCRATCH_BASE + (2 << 30);
/// Pages at [`GRANT_MAP_BASE`]: one L1 table's worth.
pub const GRANT_MAP_SLOTS: u64 = 512;

/// The table once set up.
struct Table {
    /// Entries usable (frames set up × 512).
    entries: u32,
    /// The entries not handed out, from the first unreserved one.
    free: FrameBitmap<{ MAX_ENTRIES / 64 }>,
}

static TABLE: Lock<Option<Table>> = Lock::new(None);

/// Sets up and maps the table (once; later calls do nothing): how many
/// entries it has.
pub fn init() -> Result<u32, Errno> {
    let mut table = TABLE.lock();
    if let Some(t) = table.as_ref() {
        return Ok(t.entries);
    }
    let (r, version) = hv().gnttab_set_version(1);
    if r.is_err() && version != 1 {
        return Err(r.err().unwrap_or(Errno::EINVAL));
    }
    let max = hv().gnttab_query_size(DOMID_SELF)?.max_nr_frames as usize;
    let n = TABLE_FRAMES.min(max).max(1);
    let mut frames = [0u64; TABLE_FRAMES];
    let status = hv().gnttab_setup_table(DOMID_SELF, &mut frames[..n])?;
    if status != GNTST_OKAY {
        return Err(Errno::EIO);
    }
    for (i, &mfn) in (0u64..).zip(&frames[..n]) {
        mm::map(GRANT_TABLE_VA + i * PAGE_SIZE, mfn, Prot::KERNEL_RW).map_err(|_| Errno::ENOMEM)?;
    }
    let entries = n as u32 * ENTRIES_PER_FRAME;
    let mut free = FrameBitmap::empty();
    free.reset(u64::from(GNTTAB_NR_RESERVED_ENTRIES), u64::from(entries));
    *table = Some(Table { entries, free });
    Ok(entries)
}

/// Entry `gref`'s flags word, as an atomic.
fn flags(gref: GrantRef) -> &'static AtomicU16 {
    // SAFETY: callers pass a ref below the table's entries, whose frames
    // are mapped read-write at GRANT_TABLE_VA for the domain's life; the
    // hypervisor updates the flags concurrently, hence the atomic.
    unsafe { &*((GRANT_TABLE_VA + 8 * u64::from(gref)) as *const AtomicU16) }
}

/// Entry `gref`'s `domid` and `frame` words.
fn domid_and_frame(gref: GrantRef) -> (&'static AtomicU16, &'static AtomicU32) {
    let at = GRANT_TABLE_VA + 8 * u64::from(gref);
    // SAFETY: as in `flags`: the entry's bytes 2..4 and 4..8.
    let domid = unsafe { &*((at + 2) as *const AtomicU16) };
    // SAFETY: as above.
    let frame = unsafe { &*((at + 4) as *const AtomicU32) };
    (domid, frame)
}

/// Grants `domid` access to machine frame `mfn` (read-only if
/// `readonly`): the reference to give it. `ENOSPC` when every entry is in
/// use, `ENODEV` before [`init`], `EINVAL` for a frame above 2^32.
pub fn grant_access(domid: u16, mfn: u64, readonly: bool) -> Result<GrantRef, Errno> {
    let frame = u32::try_from(mfn).map_err(|_| Errno::EINVAL)?;
    let mut table = TABLE.lock();
    let t = table.as_mut().ok_or(Errno::ENODEV)?;
    // Below `entries`, a u32.
    let gref = t.free.alloc().ok_or(Errno::ENOSPC)? as GrantRef;
    let (d, f) = domid_and_frame(gref);
    d.store(domid, Ordering::Relaxed);
    f.store(frame, Ordering::Relaxed);
    fence(Ordering::SeqCst);
    flags(gref).store(GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 }, Ordering::SeqCst);
    Ok(gref)
}

/// Takes grant `gref` back: `EBUSY` (and the grant stays) while the
/// grantee has it mapped, `EINVAL` for a reference not handed out.
pub fn end_access(gref: GrantRef) -> Result<(), Errno> {
    let mut table = TABLE.lock();
    let t = table.as_mut().ok_or(Errno::ENODEV)?;
    if gref >= t.entries || gref < GNTTAB_NR_RESERVED_ENTRIES || t.free.is_free(u64::from(gref)) {
        return Err(Errno::EINVAL);
    }
    let word = flags(gref);
    let mut now = word.load(Ordering::SeqCst);
    loop {
        if now & (GTF_READING | GTF_WRITING) != 0 {
            return Err(Errno::EBUSY);
        }
        match word.compare_exchange(now, 0, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => break,
            Err(seen) => now = seen,
        }
    }
    t.free.free(u64::from(gref)).map_err(|_| Errno::EINVAL)
}

/// A granted page mapped here.
#[derive(Debug)]
pub struct ForeignMapping {
    /// Where it is mapped.
    pub va: u64,
    handle: u32,
}

/// Slots of [`GRANT_MAP_BASE`] in use.
static MAP_SLOTS: Lock<Option<FrameBitmap<{ GRANT_MAP_SLOTS as usize / 64 }>>> = Lock::new(None);

/// A free slot of [`GRANT_MAP_BASE`], taken.
fn take_slot() -> Option<u64> {
    let mut slots = MAP_SLOTS.lock();
    slots
        .get_or_insert_with(|| {
            let mut all = FrameBitmap::empty();
            all.reset(0, GRANT_MAP_SLOTS);
            all
        })
        .alloc()
}

/// Gives slot `slot` back.
fn release_slot(slot: u64) {
    if let Some(slots) = MAP_SLOTS.lock().as_mut() {
        let _ = slots.free(slot);
    }
}

/// Maps the page `domid` granted as `gref` (read-only if `readonly`) at a
/// free slot: the mapping. The hypervisor's `GNTST_*` failure reads as
/// `EACCES` (permission), `ENOENT` (bad reference or domain) or `EIO`.
pub fn map_foreign(domid: u16, gref: GrantRef, readonly: bool) -> Result<ForeignMapping, Errno> {
    let slot = take_slot().ok_or(Errno::ENOSPC)?;
    let va = GRANT_MAP_BASE + slot * PAGE_SIZE;
    let release = || release_slot(slot);
    // The hypervisor writes the entry into the L1 that must exist.
    if mm::l1_table(va).is_err() {
        release();
        return Err(Errno::ENOMEM);
    }
    let flags = GNTMAP_HOST_MAP | if readonly { GNTMAP_READONLY } else { 0 };
    let mut op = [GnttabMapGrantRef { host_addr: va, flags, ref_: gref, dom: domid, ..GnttabMapGrantRef::default() }];
    // SAFETY: `va` is a slot of the grant-map region this module hands out
    // one at a time; nothing else maps or references it.
    let r = unsafe { hv().gnttab_map_grant_ref(&mut op) };
    match (r, op[0].status) {
        (Ok(_), GNTST_OKAY) => Ok(ForeignMapping { va, handle: op[0].handle }),
        (Err(e), _) => {
            release();
            Err(e)
        }
        (Ok(_), status) => {
            release();
            Err(gntst_errno(status))
        }
    }
}

/// Removes `mapping`; the page at its address is gone afterwards.
pub fn unmap_foreign(mapping: ForeignMapping) -> Result<(), Errno> {
    let mut op = [GnttabUnmapGrantRef { host_addr: mapping.va, handle: mapping.handle, ..Default::default() }];
    // SAFETY: the caller gives up the mapping (it is moved in), so nothing
    // uses the page after this.
    let r = unsafe { hv().gnttab_unmap_grant_ref(&mut op) };
    r?;
    if op[0].status != GNTST_OKAY {
        return Err(gntst_errno(op[0].status));
    }
    release_slot((mapping.va - GRANT_MAP_BASE) / PAGE_SIZE);
    Ok(())
}

/// The errno that best says what a `GNTST_*` status means.
pub fn gntst_errno(status: i16) -> Errno {
    use abi::grant_table::*;
    match status {
        GNTST_PERMISSION_DENIED => Errno::EACCES,
        GNTST_BAD_GNTREF | GNTST_BAD_DOMAIN | GNTST_BAD_HANDLE => Errno::ENOENT,
        GNTST_NO_DEVICE_SPACE => Errno::ENOSPC,
        GNTST_BAD_VIRT_ADDR | GNTST_BAD_DEV_ADDR | GNTST_BAD_COPY_ARG | GNTST_BAD_PAGE => Errno::EINVAL,
        _ => Errno::EIO,
    }
}
