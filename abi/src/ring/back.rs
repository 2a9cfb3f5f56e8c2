//! The backend's end of a shared ring: it consumes requests and produces
//! responses, trusting nothing the frontend writes.

use core::fmt;
use core::sync::atomic::Ordering;

use super::shared::Index;
use super::{RingEntry, RingIdx, Sring};

/// The backend's end of a shared ring (`struct NAME_back_ring`): the private
/// indices `req_cons` (requests consumed) and `rsp_prod_pvt` (responses
/// written) over an [`Sring`].
///
/// A backend round, on an event from the frontend:
/// 1. [`pop_request`](Self::pop_request) until `None`, answering each with
///    [`push_response`](Self::push_response) (now or later);
/// 2. [`push_responses_and_check_notify`](Self::push_responses_and_check_notify),
///    and if it says so, notify the frontend's event channel;
/// 3. [`final_check_for_requests`](Self::final_check_for_requests): if it is
///    `true`, go back to 1, else wait for the next event.
///
/// Everything in shared memory is the frontend's to scribble on. `req_prod`
/// is read once per check and never believed beyond the ring: at most `size`
/// requests are ever consumed and not yet answered, so a `req_prod` running
/// ahead (or behind, or wrapping) cannot make the backend read outside the
/// ring or take on more than a ring of work. Each request is copied out
/// once, so its fields cannot change between check and use.
///
/// What the guard cannot do is tell a frontend claiming requests it never
/// wrote from a busy one: each response frees a slot the frontend may claim
/// again. A backend that answers inside its pop loop must therefore bound
/// each round, e.g. to [`size`](Self::size) requests or a budget, and then
/// let the final check and the next event bring it back:
///
/// ```
/// # use abi::ring::{BackRing, FrontRing, RingPage, Sring};
/// # let page = RingPage::new();
/// # let mut front = FrontRing::new(Sring::<u64, u64>::new(&page));
/// # front.push_request(1).unwrap();
/// # front.push_requests();
/// # let mut back = BackRing::new(front.sring());
/// let mut budget = back.size();
/// while budget > 0 {
///     let Some(req) = back.pop_request() else { break };
///     budget -= 1;
///     back.push_response(req + 1).unwrap();
/// }
/// let notify = back.push_responses_and_check_notify();
/// let more = back.final_check_for_requests(); // true: run another round later
/// # assert!(notify && !more);
/// ```
pub struct BackRing<'a, Req, Rsp> {
    sring: Sring<'a, Req, Rsp>,
    /// Responses written; `req_cons - rsp_prod_pvt <= size` always.
    rsp_prod_pvt: RingIdx,
    /// Requests consumed.
    req_cons: RingIdx,
}

impl<Req, Rsp> fmt::Debug for BackRing<'_, Req, Rsp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackRing")
            .field("sring", &self.sring)
            .field("rsp_prod_pvt", &self.rsp_prod_pvt)
            .field("req_cons", &self.req_cons)
            .finish()
    }
}

impl<'a, Req: RingEntry, Rsp: RingEntry> BackRing<'a, Req, Rsp> {
    /// Attaches at index 0 to a ring the frontend initialised
    /// (`BACK_RING_INIT`); the shared header is left alone.
    pub fn new(sring: Sring<'a, Req, Rsp>) -> Self {
        Self::attach(sring, 0)
    }

    /// Attaches with both private indices at `start` (`BACK_RING_ATTACH`),
    /// e.g. to resume a ring whose indices were saved.
    pub fn attach(sring: Sring<'a, Req, Rsp>, start: RingIdx) -> Self {
        BackRing { sring, rsp_prod_pvt: start, req_cons: start }
    }

    /// The shared ring.
    pub fn sring(&self) -> Sring<'a, Req, Rsp> {
        self.sring
    }

    /// Entries in the ring (`RING_SIZE`).
    pub fn size(&self) -> RingIdx {
        self.sring.size()
    }

    /// Requests consumed so far (`req_cons`).
    pub fn req_cons(&self) -> RingIdx {
        self.req_cons
    }

    /// Responses written so far, published or not (`rsp_prod_pvt`).
    pub fn rsp_prod_pvt(&self) -> RingIdx {
        self.rsp_prod_pvt
    }

    /// Requests consumed but not yet answered.
    pub fn unanswered_requests(&self) -> RingIdx {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt)
    }

    /// Requests that may be consumed now (`RING_HAS_UNCONSUMED_REQUESTS`):
    /// `min(req_prod - req_cons, size - (req_cons - rsp_prod_pvt))`, so
    /// never more than the slots not holding unanswered requests, whatever
    /// `req_prod` says. Reading `req_prod` orders the entries after it
    /// (`xen_rmb()`).
    pub fn unconsumed_requests(&self) -> RingIdx {
        let req_prod = self.sring.index(Index::ReqProd).load(Ordering::Acquire);
        let published = req_prod.wrapping_sub(self.req_cons);
        let room = self.size() - self.unanswered_requests();
        published.min(room)
    }

    /// Copies out the next request (`RING_COPY_REQUEST(r, req_cons++)`), or
    /// `None` if none may be consumed now (none published, or `size`
    /// requests already await responses).
    pub fn pop_request(&mut self) -> Option<Req> {
        if self.unconsumed_requests() == 0 {
            return None;
        }
        let req = self.sring.read_request(self.req_cons);
        self.req_cons = self.req_cons.wrapping_add(1);
        Some(req)
    }

    /// Whether consuming up to index `cons` would overrun responses not yet
    /// produced (`RING_REQUEST_CONS_OVERFLOW`); for backends that track their
    /// own consumer index. [`pop_request`](Self::pop_request) never does.
    pub fn request_cons_overflow(&self, cons: RingIdx) -> bool {
        cons.wrapping_sub(self.rsp_prod_pvt) >= self.size()
    }

    /// Whether the frontend has published more requests than the ring holds
    /// (`RING_REQUEST_PROD_OVERFLOW` on the current `req_prod`): a broken or
    /// hostile frontend, which a backend may disconnect from.
    pub fn request_prod_overflow(&self) -> bool {
        let req_prod = self.sring.index(Index::ReqProd).load(Ordering::Relaxed);
        req_prod.wrapping_sub(self.rsp_prod_pvt) > self.size()
    }

    /// Writes `rsp` into the slot of the oldest unanswered request
    /// (`*RING_GET_RESPONSE(r, rsp_prod_pvt++) = rsp`), without publishing
    /// it; hands it back if every consumed request is already answered.
    pub fn push_response(&mut self, rsp: Rsp) -> Result<(), Rsp> {
        if self.unanswered_requests() == 0 {
            return Err(rsp);
        }
        self.sring.write_response(self.rsp_prod_pvt, &rsp);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes the responses written so far (`RING_PUSH_RESPONSES`): the
    /// entries become visible before the new `rsp_prod`.
    pub fn push_responses(&mut self) {
        self.sring.publish(Index::RspProd, self.rsp_prod_pvt);
    }

    /// Publishes the responses written so far and says whether the frontend
    /// must be notified (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`): `true` if
    /// the frontend's `rsp_event` lies among the newly published indices.
    pub fn push_responses_and_check_notify(&mut self) -> bool {
        self.sring.publish_and_check_notify(Index::RspProd, Index::RspEvent, self.rsp_prod_pvt)
    }

    /// The check before waiting for an event
    /// (`RING_FINAL_CHECK_FOR_REQUESTS`): `true` if requests may be consumed;
    /// otherwise asks for an event at the next request (`req_event = req_cons
    /// + 1`) and looks once more, so a request published meanwhile is either
    /// found here or notified. Only after `false` may the backend sleep.
    pub fn final_check_for_requests(&mut self) -> bool {
        if self.unconsumed_requests() > 0 {
            return true;
        }
        self.sring.arm_event(Index::ReqEvent, self.req_cons);
        self.unconsumed_requests() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{FrontRing, RingPage};

    #[test]
    fn responses_only_for_consumed_requests() {
        let page = RingPage::new();
        let mut front = FrontRing::new(Sring::<u64, u64>::new(&page));
        let mut back = BackRing::new(front.sring());
        assert_eq!(back.push_response(1), Err(1));
        front.push_request(5).unwrap();
        front.push_request(6).unwrap();
        assert!(front.push_requests_and_check_notify());
        assert_eq!(back.unconsumed_requests(), 2);
        assert_eq!(back.pop_request(), Some(5));
        assert_eq!(back.unanswered_requests(), 1);
        back.push_response(50).unwrap();
        assert_eq!(back.push_response(51), Err(51));
        assert!(back.push_responses_and_check_notify());
        assert_eq!(front.pop_response(), Some(50));
        assert_eq!(back.pop_request(), Some(6));
        assert_eq!(back.pop_request(), None);
    }

    #[test]
    fn final_check_arms_req_event() {
        let page = RingPage::new();
        let mut front = FrontRing::new(Sring::<u64, u64>::new(&page));
        let mut back = BackRing::new(front.sring());
        assert!(!back.final_check_for_requests());
        assert_eq!(front.sring().header().req_event, 1);
        for i in 0..3 {
            front.push_request(i).unwrap();
        }
        // req_event = 1 lies in (0, 3]: notify.
        assert!(front.push_requests_and_check_notify());
        while back.pop_request().is_some() {}
        assert!(!back.final_check_for_requests());
        assert_eq!(front.sring().header().req_event, 4);
        front.push_request(9).unwrap();
        // The backend is not asleep yet (it has not answered), but it asked.
        assert!(front.push_requests_and_check_notify());
        // Without a re-arm, a second batch is not notified.
        front.push_request(10).unwrap();
        assert!(!front.push_requests_and_check_notify());
        assert!(back.final_check_for_requests());
    }

    #[test]
    fn request_cons_overflow_is_ring_h_s() {
        let page = RingPage::new();
        let back = BackRing::attach(Sring::<u64, u64>::new(&page), u32::MAX - 3);
        assert_eq!(back.size(), 256);
        assert!(!back.request_cons_overflow(u32::MAX - 3));
        assert!(!back.request_cons_overflow(251));
        assert!(back.request_cons_overflow(252));
        assert!(back.request_cons_overflow(u32::MAX - 4));
    }
}
