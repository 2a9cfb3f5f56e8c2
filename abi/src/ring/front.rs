//! The frontend's end of a shared ring: it produces requests and consumes
//! responses.

use core::fmt;
use core::sync::atomic::Ordering;

use super::shared::Index;
use super::{RingEntry, RingIdx, Sring};

/// The frontend's end of a shared ring (`struct NAME_front_ring`): the
/// private indices `req_prod_pvt` (requests written) and `rsp_cons`
/// (responses consumed) over an [`Sring`].
///
/// A frontend round:
/// 1. [`push_request`](Self::push_request) while not [full](Self::is_full);
/// 2. [`push_requests_and_check_notify`](Self::push_requests_and_check_notify),
///    and if it says so, notify the backend's event channel;
/// 3. on an event, [`pop_response`](Self::pop_response) until `None`, then
///    [`final_check_for_responses`](Self::final_check_for_responses): if it
///    is `true`, go back to popping, else wait for the next event.
///
/// Responses are trusted no further than the ring allows: the frontend never
/// consumes more responses than requests it has written, whatever `rsp_prod`
/// the backend publishes.
pub struct FrontRing<'a, Req, Rsp> {
    sring: Sring<'a, Req, Rsp>,
    /// Requests written; `req_prod_pvt - rsp_cons <= size` always.
    req_prod_pvt: RingIdx,
    /// Responses consumed.
    rsp_cons: RingIdx,
}

impl<Req, Rsp> fmt::Debug for FrontRing<'_, Req, Rsp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontRing")
            .field("sring", &self.sring)
            .field("req_prod_pvt", &self.req_prod_pvt)
            .field("rsp_cons", &self.rsp_cons)
            .finish()
    }
}

impl<'a, Req: RingEntry, Rsp: RingEntry> FrontRing<'a, Req, Rsp> {
    /// Initialises the shared ring and starts at index 0
    /// (`XEN_FRONT_RING_INIT`: `SHARED_RING_INIT` then `FRONT_RING_INIT`).
    /// The usual start for a frontend that owns a fresh ring page.
    pub fn new(sring: Sring<'a, Req, Rsp>) -> Self {
        sring.init();
        Self::attach(sring, 0)
    }

    /// Attaches to an already initialised ring with both private indices at
    /// `start` (`FRONT_RING_ATTACH`), leaving the shared header alone.
    pub fn attach(sring: Sring<'a, Req, Rsp>, start: RingIdx) -> Self {
        FrontRing { sring, req_prod_pvt: start, rsp_cons: start }
    }

    /// The shared ring.
    pub fn sring(&self) -> Sring<'a, Req, Rsp> {
        self.sring
    }

    /// Entries in the ring (`RING_SIZE`).
    pub fn size(&self) -> RingIdx {
        self.sring.size()
    }

    /// Requests written so far, published or not (`req_prod_pvt`).
    pub fn req_prod_pvt(&self) -> RingIdx {
        self.req_prod_pvt
    }

    /// Responses consumed so far (`rsp_cons`).
    pub fn rsp_cons(&self) -> RingIdx {
        self.rsp_cons
    }

    /// Slots free for new requests (`RING_FREE_REQUESTS`): the ring size less
    /// the requests whose responses are not yet consumed.
    pub fn free_requests(&self) -> RingIdx {
        self.size() - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Whether no slot is free for a request (`RING_FULL`).
    pub fn is_full(&self) -> bool {
        self.free_requests() == 0
    }

    /// Writes `req` into the next free slot (`*RING_GET_REQUEST(r,
    /// req_prod_pvt++) = req`), without publishing it; hands it back if the
    /// ring is full.
    pub fn push_request(&mut self, req: Req) -> Result<(), Req> {
        if self.is_full() {
            return Err(req);
        }
        self.sring.write_request(self.req_prod_pvt, &req);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes the requests written so far (`RING_PUSH_REQUESTS`): the
    /// entries become visible before the new `req_prod`.
    pub fn push_requests(&mut self) {
        self.sring.publish(Index::ReqProd, self.req_prod_pvt);
    }

    /// Publishes the requests written so far and says whether the backend
    /// must be notified (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`): `true` if
    /// the backend's `req_event` lies among the newly published indices.
    pub fn push_requests_and_check_notify(&mut self) -> bool {
        self.sring.publish_and_check_notify(Index::ReqProd, Index::ReqEvent, self.req_prod_pvt)
    }

    /// Responses published and not yet consumed
    /// (`RING_HAS_UNCONSUMED_RESPONSES`), at most the requests outstanding:
    /// a backend publishing a `rsp_prod` beyond them is not believed. Reading
    /// `rsp_prod` orders the entries after it (`xen_rmb()`).
    pub fn unconsumed_responses(&self) -> RingIdx {
        let rsp_prod = self.sring.index(Index::RspProd).load(Ordering::Acquire);
        let outstanding = self.req_prod_pvt.wrapping_sub(self.rsp_cons);
        rsp_prod.wrapping_sub(self.rsp_cons).min(outstanding)
    }

    /// Copies out the next response (`RING_COPY_RESPONSE(r, rsp_cons++)`),
    /// or `None` if none is published.
    pub fn pop_response(&mut self) -> Option<Rsp> {
        if self.unconsumed_responses() == 0 {
            return None;
        }
        let rsp = self.sring.read_response(self.rsp_cons);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Some(rsp)
    }

    /// The check before waiting for an event
    /// (`RING_FINAL_CHECK_FOR_RESPONSES`): `true` if responses are waiting;
    /// otherwise asks for an event at the next response (`rsp_event =
    /// rsp_cons + 1`) and looks once more, so a response published meanwhile
    /// is either found here or notified. Only after `false` may the frontend
    /// sleep.
    pub fn final_check_for_responses(&mut self) -> bool {
        if self.unconsumed_responses() > 0 {
            return true;
        }
        self.sring.arm_event(Index::RspEvent, self.rsp_cons);
        self.unconsumed_responses() > 0
    }

    /// Whether the backend has published more responses than the ring holds
    /// (`RING_RESPONSE_PROD_OVERFLOW` on the current `rsp_prod`): a broken or
    /// hostile backend, which a frontend may disconnect from.
    pub fn response_prod_overflow(&self) -> bool {
        let rsp_prod = self.sring.index(Index::RspProd).load(Ordering::Relaxed);
        rsp_prod.wrapping_sub(self.rsp_cons) > self.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{BackRing, RingPage};

    #[test]
    fn fills_up_and_refuses() {
        let page = RingPage::new();
        let mut front = FrontRing::new(Sring::<[u8; 1000], u8>::new(&page));
        assert_eq!(front.size(), 4);
        for i in 0..4 {
            assert_eq!(front.free_requests(), 4 - i);
            front.push_request([i as u8; 1000]).unwrap();
        }
        assert!(front.is_full());
        assert_eq!(front.push_request([9; 1000]), Err([9; 1000]));
        assert_eq!(front.req_prod_pvt(), 4);
        // Nothing is visible until published.
        assert_eq!(front.sring().header().req_prod, 0);
        front.push_requests();
        assert_eq!(front.sring().header().req_prod, 4);
    }

    #[test]
    fn hostile_rsp_prod_is_clamped_to_outstanding_requests() {
        let page = RingPage::new();
        let mut front = FrontRing::new(Sring::<u32, u32>::new(&page));
        let mut back = BackRing::new(front.sring());
        front.push_request(7).unwrap();
        front.push_requests();
        assert_eq!(back.pop_request(), Some(7));
        back.push_response(8).unwrap();
        back.push_responses();
        // The backend claims far more responses than requests.
        front.sring().index(Index::RspProd).store(1000, Ordering::Relaxed);
        assert!(front.response_prod_overflow());
        assert_eq!(front.unconsumed_responses(), 1);
        assert_eq!(front.pop_response(), Some(8));
        assert_eq!(front.pop_response(), None);
        assert_eq!(front.free_requests(), front.size());
    }
}
