//! The shared page itself: [`Sring`], a typed view of ring memory, and
//! [`RingPage`], an owned page to hold one.
//!
//! This is the only part of the ring API that touches shared memory, and it
//! does so only through atomics: the four header indices as `AtomicU32`,
//! every other byte as `AtomicU8`. No `&`/`&mut` to plain data in the page is
//! ever formed, so a peer writing anything at any time cannot cause undefined
//! behaviour here; it can only make us read meaningless values, which the
//! [`FrontRing`](super::FrontRing) and [`BackRing`](super::BackRing) bound.
#![allow(unsafe_code)]

use core::fmt;
use core::marker::PhantomData;
use core::mem::{align_of, offset_of, size_of, MaybeUninit};
use core::ptr::NonNull;
use core::slice;
use core::sync::atomic::{fence, AtomicU32, AtomicU8, Ordering};

use super::{ring_size, RingIdx, SringHeader, SRING_HEADER_SIZE};

/// Plain data that can cross a shared ring: a request or response struct.
///
/// Entries are copied byte by byte out of memory the other end may be
/// writing, and everything written is visible to the other end.
///
/// # Safety
///
/// Implement this only for `Copy` types where
/// - every bit pattern of `size_of::<Self>()` bytes is a valid value (no
///   `bool`, `char`, Rust enums, references or `NonZero*` fields), and
/// - no byte is padding: every byte belongs to a field (spell the padding C
///   leaves implicit as explicit fields), so writing a value to the ring never
///   copies uninitialised bytes.
///
/// To be binary-compatible with a C peer the type must also be `#[repr(C)]`
/// with the layout of the protocol's C struct; that is needed for
/// correctness, not for safety.
pub unsafe trait RingEntry: Copy {}

macro_rules! ring_entry_for_integers {
    ($($t:ty),*) => {
        $(
            // SAFETY: an integer has no padding and every bit pattern is valid.
            unsafe impl RingEntry for $t {}
        )*
    };
}

ring_entry_for_integers!(u8, u16, u32, u64, i8, i16, i32, i64);

// SAFETY: an array's size is `N * size_of::<T>()` with no padding between
// elements, and each element is valid for any bytes because `T` is.
unsafe impl<T: RingEntry, const N: usize> RingEntry for [T; N] {}

/// Bytes in a [`RingPage`] (Xen's page size, `XEN_PAGE_SIZE`).
const PAGE_BYTES: usize = 4096;

/// One page-aligned, zeroed page of memory to hold a shared ring.
///
/// A frontend can keep its ring in one of these (a `static` works:
/// `RingPage::new` is `const`) and grant its frame to the backend; host tests
/// share one between threads. Its bytes are only reachable through
/// [`Sring::new`], so they are only ever accessed atomically.
#[repr(C, align(4096))]
pub struct RingPage([AtomicU8; PAGE_BYTES]);

impl RingPage {
    /// Size of the page in bytes.
    pub const SIZE: usize = PAGE_BYTES;

    /// A zeroed page. Initialise the ring in it with [`Sring::init`] (or
    /// [`FrontRing::new`](super::FrontRing::new)).
    pub const fn new() -> Self {
        RingPage([const { AtomicU8::new(0) }; PAGE_BYTES])
    }

    /// The page's address, to grant it or to build views of it. Writes
    /// through it must be atomic, as [`Sring::from_raw`] requires.
    pub fn as_ptr(&self) -> NonNull<u8> {
        NonNull::from(self).cast()
    }
}

impl Default for RingPage {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RingPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingPage").field("addr", &self.as_ptr()).finish_non_exhaustive()
    }
}

/// Offsets of the four indices in the header.
const REQ_PROD: usize = offset_of!(SringHeader, req_prod);
const REQ_EVENT: usize = offset_of!(SringHeader, req_event);
const RSP_PROD: usize = offset_of!(SringHeader, rsp_prod);
const RSP_EVENT: usize = offset_of!(SringHeader, rsp_event);
/// The first byte after the indices (`pvt`, then padding).
const PVT: usize = offset_of!(SringHeader, pvt);

/// One of the header's indices; which end writes it is in [`SringHeader`].
#[derive(Clone, Copy, Debug)]
pub(super) enum Index {
    ReqProd = REQ_PROD as isize,
    ReqEvent = REQ_EVENT as isize,
    RspProd = RSP_PROD as isize,
    RspEvent = RSP_EVENT as isize,
}

/// Whether a producer that moved its index from `old` to `new` must notify a
/// consumer whose event index is `event`: `event` lies in `(old, new]`, in
/// wrapping arithmetic (`io/ring.h`'s `(RING_IDX)(new - event) <
/// (RING_IDX)(new - old)`).
fn needs_notify(old: RingIdx, new: RingIdx, event: RingIdx) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

/// Bytes in the C union of a `Req` and a `Rsp`: the larger size rounded up
/// to the larger alignment ([`Sring::ENTRY_SIZE`], which also checks it).
const fn union_size<Req, Rsp>() -> usize {
    let size = if size_of::<Req>() > size_of::<Rsp>() { size_of::<Req>() } else { size_of::<Rsp>() };
    let align = if align_of::<Req>() > align_of::<Rsp>() { align_of::<Req>() } else { align_of::<Rsp>() };
    size.div_ceil(align) * align
}

/// A view of a shared ring in memory (`struct NAME_sring` from
/// `DEFINE_RING_TYPES(NAME, Req, Rsp)`): the 64-byte [`SringHeader`], then
/// [`size`](Sring::size) entries of [`ENTRY_SIZE`](Sring::ENTRY_SIZE) bytes,
/// each the C union of a `Req` and a `Rsp`.
///
/// A view is like a `&'a` reference to the ring memory: cheap to copy, and
/// usable from several threads, since every access through it is atomic. It
/// holds no indices of its own; wrap it in a [`FrontRing`](super::FrontRing)
/// or [`BackRing`](super::BackRing) to use the protocol.
pub struct Sring<'a, Req, Rsp> {
    /// Start of the header; 4-byte aligned.
    base: NonNull<u8>,
    /// Entries in the ring: a power of two, at least 1, and `ENTRY_OFFSET +
    /// size * ENTRY_SIZE` bytes from `base` are valid for `'a`.
    size: RingIdx,
    memory: PhantomData<&'a [AtomicU8]>,
    entries: PhantomData<fn() -> (Req, Rsp)>,
}

// SAFETY: an `Sring` is equivalent to a `&'a [AtomicU8]` over the ring
// memory (its constructors require that all of this program's accesses to
// it be atomic): it owns nothing, and every access through it is an atomic
// operation, so moving it to or sharing it with another thread cannot cause a
// data race.
unsafe impl<Req, Rsp> Send for Sring<'_, Req, Rsp> {}
// SAFETY: as for `Send`.
unsafe impl<Req, Rsp> Sync for Sring<'_, Req, Rsp> {}

impl<Req, Rsp> Clone for Sring<'_, Req, Rsp> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Req, Rsp> Copy for Sring<'_, Req, Rsp> {}

impl<Req, Rsp> fmt::Debug for Sring<'_, Req, Rsp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sring").field("base", &self.base).field("size", &self.size).finish()
    }
}

impl<'a, Req: RingEntry, Rsp: RingEntry> Sring<'a, Req, Rsp> {
    /// Offset of the first entry from the start of the ring
    /// (`offsetof(struct NAME_sring, ring)`).
    pub const ENTRY_OFFSET: usize = {
        // C places the entry array at the header size rounded up to the
        // union's alignment; that is the header size only up to 64.
        assert!(align_of::<Req>() <= SRING_HEADER_SIZE && align_of::<Rsp>() <= SRING_HEADER_SIZE);
        SRING_HEADER_SIZE
    };

    /// Bytes per entry (`sizeof(union NAME_sring_entry)`): the larger of the
    /// two sizes, rounded up to the larger of the two alignments, as C lays
    /// out a union.
    pub const ENTRY_SIZE: usize = {
        let entry = union_size::<Req, Rsp>();
        assert!(entry > 0, "a ring needs a non-empty request or response type");
        assert!(entry <= u32::MAX as usize);
        entry
    };

    /// Entries in a ring that fills one [`RingPage`]
    /// (`__CONST_RING_SIZE(NAME, 4096)`). Using it with types too large for
    /// one entry to fit in a page fails to compile.
    pub const PAGE_RING_SIZE: RingIdx = {
        let n = ring_size(PAGE_BYTES as u32, Self::ENTRY_SIZE as u32);
        assert!(n > 0, "ring entries too large for one page");
        n
    };

    /// A view of a ring filling `page`. It does not initialise the ring: the
    /// frontend does, with [`init`](Self::init) or
    /// [`FrontRing::new`](super::FrontRing::new).
    pub fn new(page: &'a RingPage) -> Self {
        let _ = Self::ENTRY_OFFSET;
        Sring { base: page.as_ptr(), size: Self::PAGE_RING_SIZE, memory: PhantomData, entries: PhantomData }
    }

    /// A view of a ring of `bytes` bytes at `base` (a page, or several
    /// contiguous pages, mapped from another domain or process), with as
    /// many entries as fit rounded down to a power of two (`__RING_SIZE`).
    ///
    /// Returns `None` if `base` is not 4-byte aligned or not even one entry
    /// fits. It does not initialise the ring.
    ///
    /// # Safety
    ///
    /// For all of `'a`:
    /// - the `bytes` bytes at `base` must stay valid for reads and writes
    ///   (mapped, not freed);
    /// - every access this program makes to them must be atomic and
    ///   match this module's: the four header indices as `AtomicU32`, all
    ///   other bytes as `AtomicU8` (other `Sring` views and [`RingPage`] do
    ///   this). In particular nothing may hold a `&`/`&mut` to plain data in
    ///   that memory. Accesses from outside the program (another domain or
    ///   process mapping the same frames) are allowed and may be arbitrary.
    pub unsafe fn from_raw(base: NonNull<u8>, bytes: usize) -> Option<Self> {
        let _ = Self::ENTRY_OFFSET;
        if !base.cast::<u32>().is_aligned() {
            return None;
        }
        let size = ring_size(u32::try_from(bytes).unwrap_or(u32::MAX), Self::ENTRY_SIZE as u32);
        (size > 0).then_some(Sring { base, size, memory: PhantomData, entries: PhantomData })
    }
}

impl<Req, Rsp> Sring<'_, Req, Rsp> {
    /// Entries in the ring (`RING_SIZE`): a power of two.
    pub fn size(&self) -> RingIdx {
        self.size
    }

    /// The ring's first byte (the header's).
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.base
    }

    /// Initialises the shared header (`SHARED_RING_INIT`): both producer
    /// indices 0, both event indices 1, `pvt` and padding zeroed. The
    /// frontend does this once, before it hands the page to the backend (the
    /// hand-over, a grant and a xenstore write or a thread spawn, orders these
    /// stores before the backend's first look).
    pub fn init(&self) {
        self.index(Index::ReqProd).store(0, Ordering::Relaxed);
        self.index(Index::RspProd).store(0, Ordering::Relaxed);
        self.index(Index::ReqEvent).store(1, Ordering::Relaxed);
        self.index(Index::RspEvent).store(1, Ordering::Relaxed);
        for offset in PVT..SRING_HEADER_SIZE {
            self.byte(offset).store(0, Ordering::Relaxed);
        }
    }

    /// A snapshot of the header, each field read once, for diagnostics. The
    /// other end may change it at any moment.
    pub fn header(&self) -> SringHeader {
        let mut h = SringHeader {
            req_prod: self.index(Index::ReqProd).load(Ordering::Relaxed),
            req_event: self.index(Index::ReqEvent).load(Ordering::Relaxed),
            rsp_prod: self.index(Index::RspProd).load(Ordering::Relaxed),
            rsp_event: self.index(Index::RspEvent).load(Ordering::Relaxed),
            pvt: [0; 4],
            pad: [0; 44],
        };
        let pad_at = offset_of!(SringHeader, pad);
        for (i, b) in h.pvt.iter_mut().enumerate() {
            *b = self.byte(PVT + i).load(Ordering::Relaxed);
        }
        for (i, b) in h.pad.iter_mut().enumerate() {
            *b = self.byte(pad_at + i).load(Ordering::Relaxed);
        }
        h
    }

    /// One of the four header indices.
    pub(super) fn index(&self, which: Index) -> &AtomicU32 {
        let ptr = self.base.as_ptr().wrapping_add(which as usize).cast::<u32>();
        // SAFETY: `which` is at offset 0, 4, 8 or 12, inside the ring memory
        // (at least 64 bytes), which is valid for `'a` and so for the borrow
        // of `self`; `base` is 4-byte aligned, so `ptr` is aligned for a u32;
        // the constructors' contracts make every access of this program to
        // these four bytes an `AtomicU32` one.
        unsafe { AtomicU32::from_ptr(ptr) }
    }

    /// The byte at `offset` from the start of the ring, which must not be
    /// one of the four indices.
    fn byte(&self, offset: usize) -> &AtomicU8 {
        assert!(offset >= PVT && offset < SRING_HEADER_SIZE + self.size as usize * union_size::<Req, Rsp>());
        let ptr = self.base.as_ptr().wrapping_add(offset);
        // SAFETY: the assertion keeps `offset` inside the ring memory, which
        // is valid for `'a` and so for the borrow of `self`, and outside the
        // indices; the constructors' contracts make every access of this
        // program to these bytes an `AtomicU8` one. A u8 needs no alignment.
        unsafe { AtomicU8::from_ptr(ptr) }
    }

    /// Offset of the slot for free-running index `idx`.
    fn slot_offset(&self, idx: RingIdx) -> usize {
        SRING_HEADER_SIZE + (idx & (self.size - 1)) as usize * union_size::<Req, Rsp>()
    }

    /// Copies a `T` (the request or the response type) out of the slot for
    /// `idx`, reading each byte exactly once (`RING_COPY_*`).
    fn read_entry<T: RingEntry>(&self, idx: RingIdx) -> T {
        let at = self.slot_offset(idx);
        let mut out = MaybeUninit::<T>::uninit();
        // SAFETY: `out` is `size_of::<T>()` bytes, exclusively borrowed for
        // the slice's life, and any bytes are valid for `MaybeUninit<u8>`.
        let dst = unsafe { slice::from_raw_parts_mut(out.as_mut_ptr().cast::<MaybeUninit<u8>>(), size_of::<T>()) };
        for (i, d) in dst.iter_mut().enumerate() {
            d.write(self.byte(at + i).load(Ordering::Relaxed));
        }
        // SAFETY: every one of `out`'s bytes was written above, and a
        // `RingEntry` is valid for any bytes.
        unsafe { out.assume_init() }
    }

    /// Publishes producer index `prod` as `new`; the entries written
    /// before become visible first (`xen_wmb()`, `RING_PUSH_*`).
    pub(super) fn publish(&self, prod: Index, new: RingIdx) {
        self.index(prod).store(new, Ordering::Release);
    }

    /// Publishes producer index `prod` as `new` and says whether the
    /// consumer, whose event index is `event`, must be notified: whether
    /// `event` lies among the newly published indices
    /// (`RING_PUSH_*_AND_CHECK_NOTIFY`).
    pub(super) fn publish_and_check_notify(&self, prod: Index, event: Index, new: RingIdx) -> bool {
        let prod = self.index(prod);
        let old = prod.load(Ordering::Relaxed);
        // xen_wmb(): the entries before the index.
        prod.store(new, Ordering::Release);
        // xen_mb(): the index before reading the event index.
        fence(Ordering::SeqCst);
        let event = self.index(event).load(Ordering::Relaxed);
        needs_notify(old, new, event)
    }

    /// The middle of a consumer's final check (`RING_FINAL_CHECK_FOR_*`):
    /// asks for an event at the entry after `cons` (`event = cons + 1`),
    /// ordered before the caller looks at the producer index again
    /// (`xen_mb()`).
    pub(super) fn arm_event(&self, event: Index, cons: RingIdx) {
        self.index(event).store(cons.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Copies `value` into the slot for `idx`.
    fn write_entry<T: RingEntry>(&self, idx: RingIdx, value: &T) {
        let at = self.slot_offset(idx);
        // SAFETY: `*value` is `size_of::<T>()` bytes, borrowed for the
        // slice's life, and a `RingEntry` has no padding, so every byte is
        // initialised.
        let src = unsafe { slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) };
        for (i, &b) in src.iter().enumerate() {
            self.byte(at + i).store(b, Ordering::Relaxed);
        }
    }
}

impl<Req: RingEntry, Rsp: RingEntry> Sring<'_, Req, Rsp> {
    /// Copies the request in the slot for `idx` out of the ring.
    pub(super) fn read_request(&self, idx: RingIdx) -> Req {
        self.read_entry(idx)
    }

    /// Writes `req` into the slot for `idx`.
    pub(super) fn write_request(&self, idx: RingIdx, req: &Req) {
        self.write_entry(idx, req)
    }

    /// Copies the response in the slot for `idx` out of the ring.
    pub(super) fn read_response(&self, idx: RingIdx) -> Rsp {
        self.read_entry(idx)
    }

    /// Writes `rsp` into the slot for `idx`.
    pub(super) fn write_response(&self, idx: RingIdx, rsp: &Rsp) {
        self.write_entry(idx, rsp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct Odd([u8; 13]);
    // SAFETY: bytes only.
    unsafe impl RingEntry for Odd {}

    #[test]
    fn entry_size_is_the_c_union_size() {
        assert_eq!(Sring::<u64, u32>::ENTRY_SIZE, 8);
        assert_eq!(Sring::<[u8; 3], u8>::ENTRY_SIZE, 3);
        // 13 bytes with 8-byte alignment: the union rounds up to 16.
        assert_eq!(Sring::<Odd, u64>::ENTRY_SIZE, 16);
        assert_eq!(Sring::<Odd, u64>::PAGE_RING_SIZE, 128);
        assert_eq!(Sring::<[u32; 28], [u8; 1]>::PAGE_RING_SIZE, 32);
    }

    #[test]
    fn notify_rule_is_ring_h_s() {
        // The event index inside (old, new] notifies; outside does not.
        assert!(needs_notify(0, 1, 1));
        assert!(needs_notify(0, 5, 3));
        assert!(needs_notify(0, 5, 5));
        assert!(!needs_notify(0, 5, 6));
        assert!(!needs_notify(3, 5, 3));
        assert!(!needs_notify(5, 5, 5));
        // Across the wrap.
        assert!(needs_notify(u32::MAX - 1, 2, 0));
        assert!(needs_notify(u32::MAX - 1, 2, u32::MAX));
        assert!(!needs_notify(u32::MAX - 1, 2, u32::MAX - 1));
        assert!(!needs_notify(u32::MAX - 1, 2, 3));
    }

    #[test]
    fn init_and_header_snapshot() {
        let page = RingPage::new();
        let s = Sring::<u64, u64>::new(&page);
        s.write_entry(0, &0x1122_3344_5566_7788_u64);
        s.init();
        assert_eq!(s.header(), SringHeader::new());
        assert_eq!(s.size(), 256);
        assert_eq!(s.read_request(0), 0x1122_3344_5566_7788);
        assert_eq!(s.read_request(256), 0x1122_3344_5566_7788, "indices are masked");
    }

    #[test]
    fn from_raw_checks_alignment_and_size() {
        let page = RingPage::new();
        let base = page.as_ptr();
        // SAFETY: the page outlives the views, and is only accessed atomically.
        let too_small = unsafe { Sring::<u64, u64>::from_raw(base, 64 + 7) };
        assert!(too_small.is_none());
        // SAFETY: as above.
        let one = unsafe { Sring::<u64, u64>::from_raw(base, 64 + 8) };
        assert_eq!(one.map(|s| s.size()), Some(1));
        let odd = NonNull::new(base.as_ptr().wrapping_add(2)).unwrap();
        // SAFETY: as above; the view is refused before any access.
        let misaligned = unsafe { Sring::<u64, u64>::from_raw(odd, 1024) };
        assert!(misaligned.is_none());
    }
}
