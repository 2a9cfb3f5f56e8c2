//! Xen's shared I/O ring (`io/ring.h`): the page layout and a generic,
//! `no_std` front/back API that is binary-compatible with Xen's macros.
//!
//! # The protocol, for guest authors
//!
//! A split driver (blkif, netif, ...) talks over one shared page (or a few
//! contiguous pages). The page starts with a 64-byte [`SringHeader`], then
//! holds [`ring_size`] entries. Each entry is a C union of the protocol's
//! request and response structs, so a slot first carries a request from the
//! **frontend** (usually the guest) to the **backend** (the driver domain)
//! and is then overwritten in place by the response.
//!
//! Four free-running `u32` indices ([`RingIdx`]) in the header drive it; they
//! only ever grow, wrap at 2^32 and are masked by `size - 1` to find a slot:
//!
//! | index | written by | meaning |
//! | --- | --- | --- |
//! | `req_prod`  | frontend | requests published so far |
//! | `rsp_prod`  | backend  | responses published so far |
//! | `req_event` | backend  | "notify me when `req_prod` passes this" |
//! | `rsp_event` | frontend | "notify me when `rsp_prod` passes this" |
//!
//! Each end also keeps two private indices: the frontend's `req_prod_pvt`
//! (requests written but maybe not yet published) and `rsp_cons` (responses
//! consumed), the backend's `req_cons` and `rsp_prod_pvt`. These live in
//! [`FrontRing`] and [`BackRing`], never in shared memory.
//!
//! A producer writes entries, then publishes its index (a write barrier
//! first, so the other end never sees an index before the entries it
//! covers), then decides whether to send an event-channel notification:
//! after moving the index from `old` to `new` it notifies only if the
//! consumer's event index lies in `(old, new]`, i.e. `(new - event) < (new -
//! old)` in wrapping arithmetic (a full barrier between publishing and
//! reading the event index). A consumer drains entries, then calls the
//! *final check*: it re-arms its event index at `cons + 1` and looks again,
//! so a request published in between is either seen now or notified later.
//! Only when the final check finds nothing may it sleep until the next event.
//! That pairing is what makes notification suppression lose no wakeups.
//!
//! Neither end trusts the other's indices: [`BackRing`] never consumes more
//! requests than free slots the ring can have (Xen's `min(req_prod -
//! req_cons, size - (req_cons - rsp_prod_pvt))`), and [`FrontRing`] never
//! consumes more responses than requests it has sent. Entries are copied out
//! exactly once, so a value read is never re-read from shared memory.
//!
//! # Mapping to `io/ring.h`
//!
//! | `io/ring.h` | here |
//! | --- | --- |
//! | `DEFINE_RING_TYPES(name, req, rsp)` | [`Sring<Req, Rsp>`] with `Req, Rsp:` [`RingEntry`] |
//! | `SHARED_RING_INIT` | [`Sring::init`] |
//! | `XEN_FRONT_RING_INIT` / `FRONT_RING_ATTACH` | [`FrontRing::new`] / [`FrontRing::attach`] |
//! | `BACK_RING_INIT` / `BACK_RING_ATTACH` | [`BackRing::new`] / [`BackRing::attach`] |
//! | `RING_SIZE`, `RING_FREE_REQUESTS`, `RING_FULL` | `size`, [`FrontRing::free_requests`], [`FrontRing::is_full`] |
//! | `RING_GET_REQUEST` + `req_prod_pvt++` | [`FrontRing::push_request`] |
//! | `RING_PUSH_REQUESTS[_AND_CHECK_NOTIFY]` | [`FrontRing::push_requests`], [`FrontRing::push_requests_and_check_notify`] |
//! | `RING_HAS_UNCONSUMED_RESPONSES` | [`FrontRing::unconsumed_responses`] |
//! | `RING_COPY_RESPONSE` + `rsp_cons++` | [`FrontRing::pop_response`] |
//! | `RING_FINAL_CHECK_FOR_RESPONSES` | [`FrontRing::final_check_for_responses`] |
//! | `RING_HAS_UNCONSUMED_REQUESTS` | [`BackRing::unconsumed_requests`] |
//! | `RING_COPY_REQUEST` + `req_cons++` | [`BackRing::pop_request`] |
//! | `RING_REQUEST_CONS_OVERFLOW`, `RING_REQUEST_PROD_OVERFLOW` | [`BackRing::request_cons_overflow`], [`BackRing::request_prod_overflow`] |
//! | `RING_GET_RESPONSE` + `rsp_prod_pvt++` | [`BackRing::push_response`] |
//! | `RING_PUSH_RESPONSES[_AND_CHECK_NOTIFY]` | [`BackRing::push_responses`], [`BackRing::push_responses_and_check_notify`] |
//! | `RING_FINAL_CHECK_FOR_REQUESTS` | [`BackRing::final_check_for_requests`] |
//! | `RING_RESPONSE_PROD_OVERFLOW` | [`FrontRing::response_prod_overflow`] |
//!
//! Barriers: `xen_wmb()` before publishing a producer index is a release
//! store, `xen_mb()` between publishing and reading an event index is a
//! sequentially consistent fence, and the `xen_rmb()` a consumer issues after
//! reading a producer index is an acquire load. Shared memory is only ever
//! touched through `AtomicU32` (the four indices) and `AtomicU8` (entry
//! bytes), never through a plain `&`/`&mut` reference, so a concurrent or
//! hostile peer cannot cause undefined behaviour on this side.
//!
//! # Example
//!
//! A frontend and a backend over one page, as two domains would use it
//! (here in one thread; the notifications would be event-channel sends):
//!
//! ```
//! use abi::ring::{BackRing, FrontRing, RingEntry, RingPage, Sring};
//!
//! #[derive(Clone, Copy, Debug, PartialEq)]
//! #[repr(C)]
//! struct EchoReq { id: u64, value: u32, _pad: u32 }
//! #[derive(Clone, Copy, Debug, PartialEq)]
//! #[repr(C)]
//! struct EchoRsp { id: u64, doubled: u32, _pad: u32 }
//! // SAFETY: plain integers, no padding: every byte pattern is a valid value.
//! unsafe impl RingEntry for EchoReq {}
//! // SAFETY: as EchoReq.
//! unsafe impl RingEntry for EchoRsp {}
//!
//! let page = RingPage::new();
//! // The frontend initialises the shared page (SHARED_RING_INIT) and would
//! // grant it to the backend's domain.
//! let mut front = FrontRing::new(Sring::<EchoReq, EchoRsp>::new(&page));
//! // The backend maps the granted page and attaches.
//! let mut back = BackRing::new(Sring::<EchoReq, EchoRsp>::new(&page));
//! assert_eq!(front.size(), 128); // (4096 - 64) / 16 rounded down to 2^n
//!
//! for id in 0..3 {
//!     front.push_request(EchoReq { id, value: 10 * id as u32, _pad: 0 }).unwrap();
//! }
//! // SHARED_RING_INIT set req_event = 1, so the first push must notify.
//! assert!(front.push_requests_and_check_notify());
//!
//! // Backend: drain, answer, publish; then the final check before sleeping.
//! // (Facing an untrusted frontend, bound this loop: see BackRing.)
//! while let Some(req) = back.pop_request() {
//!     back.push_response(EchoRsp { id: req.id, doubled: 2 * req.value, _pad: 0 }).unwrap();
//! }
//! let notify_front = back.push_responses_and_check_notify();
//! assert!(notify_front);
//! assert!(!back.final_check_for_requests()); // nothing more: may sleep
//!
//! // Frontend: drain responses, then re-arm rsp_event and check again.
//! let doubled: Vec<u32> = core::iter::from_fn(|| front.pop_response()).map(|r| r.doubled).collect();
//! assert_eq!(doubled, [0, 20, 40]);
//! assert!(!front.final_check_for_responses());
//! ```

mod back;
mod front;
mod shared;

pub use back::BackRing;
pub use front::FrontRing;
pub use shared::{RingEntry, RingPage, Sring};

/// A free-running ring index (`RING_IDX`): counts entries ever produced or
/// consumed, wrapping at 2^32; `index & (size - 1)` is the slot.
pub type RingIdx = u32;

/// Bytes before the first entry of a shared ring.
pub const SRING_HEADER_SIZE: usize = 64;

/// The header of a shared ring page (`struct *_sring` up to `ring`; 64
/// bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct SringHeader {
    /// Frontend: requests produced so far.
    pub req_prod: u32,
    /// Backend: notify the backend when `req_prod` passes this.
    pub req_event: u32,
    /// Backend: responses produced so far.
    pub rsp_prod: u32,
    /// Frontend: notify the frontend when `rsp_prod` passes this.
    pub rsp_event: u32,
    /// Protocol-private bytes (netif `smartpoll_active`, tapif `msg`).
    pub pvt: [u8; 4],
    /// Padding to 64 bytes.
    pub pad: [u8; 44],
}

assert_layout!(SringHeader, size = SRING_HEADER_SIZE, align = 4, {
    req_prod @ 0, req_event @ 4, rsp_prod @ 8, rsp_event @ 12, pvt @ 16, pad @ 20,
});

impl SringHeader {
    /// A freshly initialised ring header (`SHARED_RING_INIT`): producers at
    /// 0, both event indices at 1.
    pub const fn new() -> Self {
        SringHeader { req_prod: 0, req_event: 1, rsp_prod: 0, rsp_event: 1, pvt: [0; 4], pad: [0; 44] }
    }
}

impl Default for SringHeader {
    fn default() -> Self {
        Self::new()
    }
}

/// Entries in a ring of `page_bytes` bytes whose entries are `entry_bytes`
/// each: what fits after the header, rounded down to a power of two (Xen's
/// `__RING_SIZE`). Zero if nothing fits or `entry_bytes` is zero.
pub const fn ring_size(page_bytes: u32, entry_bytes: u32) -> u32 {
    if entry_bytes == 0 || page_bytes <= SRING_HEADER_SIZE as u32 {
        return 0;
    }
    let fit = (page_bytes - SRING_HEADER_SIZE as u32) / entry_bytes;
    if fit == 0 {
        0
    } else {
        1 << (31 - fit.leading_zeros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_size_rounds_down_to_a_power_of_two() {
        // (4096 - 64) / 8 = 504 -> 256.
        assert_eq!(ring_size(4096, 8), 256);
        // (4096 - 64) / 4 = 1008 -> 512.
        assert_eq!(ring_size(4096, 4), 512);
        // blkif: 112-byte entries, 36 fit -> 32.
        assert_eq!(ring_size(4096, 112), 32);
        // netif tx: 12-byte entries, 336 fit -> 256.
        assert_eq!(ring_size(4096, 12), 256);
        // Exactly a power of two fits.
        assert_eq!(ring_size(64 + 4 * 16, 16), 4);
        assert_eq!(ring_size(4096, 4032), 1);
        // Multi-page rings.
        assert_eq!(ring_size(8192, 8), 512);
    }

    #[test]
    fn ring_size_degenerate_cases() {
        assert_eq!(ring_size(4096, 0), 0);
        assert_eq!(ring_size(64, 8), 0);
        assert_eq!(ring_size(0, 8), 0);
        assert_eq!(ring_size(4096, 4033), 0);
        assert_eq!(ring_size(u32::MAX, 1), 1 << 31);
    }

    #[test]
    fn new_header_arms_both_events() {
        let h = SringHeader::new();
        assert_eq!((h.req_prod, h.req_event, h.rsp_prod, h.rsp_event), (0, 1, 0, 1));
    }
}
