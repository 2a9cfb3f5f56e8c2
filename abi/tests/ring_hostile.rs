//! `abi::ring` facing a hostile peer: whatever the other end writes into the
//! shared page, an end consumes at most what the ring can hold, never loops
//! without bound, and keeps its own indices consistent.
//!
//! The hostile peer writes the page the way another domain could: at any
//! time, any value, into the indices and the entries. Here it does so through
//! the same atomic accesses `abi::ring` uses (`AtomicU32` for the four
//! indices, `AtomicU8` for every other byte), as `Sring::from_raw` requires
//! of anything in the same program.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use abi::ring::{BackRing, FrontRing, RingIdx, RingPage, Sring};

const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;

/// Stores `value` into the header index at `offset`, as a peer would.
fn poke_index(page: &RingPage, offset: usize, value: RingIdx) {
    let ptr = page.as_ptr().as_ptr().wrapping_add(offset).cast::<u32>();
    // SAFETY: `offset` is one of the four 4-byte aligned header indices in
    // the page, which `abi::ring` accesses only as `AtomicU32`.
    unsafe { AtomicU32::from_ptr(ptr) }.store(value, Ordering::Relaxed);
}

/// Stores `value` into byte `offset` (past the indices), as a peer would.
fn poke_byte(page: &RingPage, offset: usize, value: u8) {
    assert!((16..RingPage::SIZE).contains(&offset));
    let ptr = page.as_ptr().as_ptr().wrapping_add(offset);
    // SAFETY: `offset` is inside the page and past the indices, where
    // `abi::ring` accesses only single bytes as `AtomicU8`.
    unsafe { AtomicU8::from_ptr(ptr) }.store(value, Ordering::Relaxed);
}

/// A small xorshift generator for the scribbler.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Pops until `None`, failing if that takes more than the ring size.
fn drain(back: &mut BackRing<'_, u64, u64>) -> u32 {
    let mut n = 0;
    while back.pop_request().is_some() {
        n += 1;
        assert!(n <= back.size(), "consumed more than the ring holds");
    }
    n
}

#[test]
fn ring_hostile_req_prod_far_ahead_is_bounded() {
    let page = RingPage::new();
    let front = FrontRing::new(Sring::<u64, u64>::new(&page));
    let mut back = BackRing::new(front.sring());
    let size = back.size();
    assert_eq!(size, 256);
    poke_index(&page, REQ_PROD, 0x8000_0000);
    assert!(back.request_prod_overflow());
    assert_eq!(back.unconsumed_requests(), size);
    // At most one ring's worth until responses make room, then one more.
    for round in 1..=3u32 {
        assert_eq!(drain(&mut back), size, "round {round}");
        assert_eq!(back.unconsumed_requests(), 0);
        assert!(!back.final_check_for_requests(), "no room: nothing may be consumed");
        for _ in 0..size {
            back.push_response(0).unwrap();
        }
        back.push_responses();
        assert_eq!(back.req_cons(), round * size);
        assert_eq!(back.rsp_prod_pvt(), round * size);
    }
    // Answering only part of the ring makes room for only that part.
    drain(&mut back);
    for _ in 0..10 {
        back.push_response(0).unwrap();
    }
    assert_eq!(drain(&mut back), 10);
}

#[test]
fn ring_hostile_req_prod_behind_or_wrapped_is_bounded() {
    let page = RingPage::new();
    FrontRing::new(Sring::<u64, u64>::new(&page));
    let mut back = BackRing::attach(Sring::<u64, u64>::new(&page), 1000);
    // Behind the consumer: `req_prod - req_cons` wraps to nearly 2^32.
    for req_prod in [999, 0, 1000 - 256, u32::MAX] {
        poke_index(&page, REQ_PROD, req_prod);
        assert_eq!(back.unconsumed_requests(), back.size(), "req_prod {req_prod}");
    }
    assert_eq!(drain(&mut back), back.size());
    assert!(back.request_cons_overflow(back.req_cons()));

    // A legitimate wrap is not mistaken for a hostile one.
    let mut back = BackRing::attach(Sring::<u64, u64>::new(&page), u32::MAX - 9);
    poke_index(&page, REQ_PROD, 6);
    assert!(!back.request_prod_overflow());
    assert_eq!(back.unconsumed_requests(), 16);
    assert_eq!(drain(&mut back), 16);
    assert_eq!(back.req_cons(), 6);
}

/// Sets a flag when dropped, so a scribbler thread stops even if the test's
/// main thread panics (a scoped thread left spinning would hang the test).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A hostile frontend rewrites the whole page as fast as it can while the
/// backend runs round after round, each round bounded by the ring size as
/// `BackRing`'s documentation asks of a backend that answers as it goes;
/// the backend's indices stay consistent and every round ends.
#[test]
fn ring_hostile_concurrent_scribbler_cannot_unbound_the_backend() {
    const ROUNDS: u64 = 5_000;
    let page = Box::new(RingPage::new());
    FrontRing::new(Sring::<u64, u64>::new(&page));
    let mut back = BackRing::new(Sring::<u64, u64>::new(&page));
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (rounds, consumed) = std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = 0x2545_f491_4f6c_dd1d_u64;
            while !stop.load(Ordering::Relaxed) {
                let r = next(&mut rng);
                match r % 4 {
                    0 => poke_index(&page, [REQ_PROD, REQ_EVENT, RSP_PROD, RSP_EVENT][(r >> 8) as usize % 4], r as u32),
                    // Far ahead of wherever the backend is.
                    1 => poke_index(&page, REQ_PROD, back_index_hint(&page).wrapping_add((r >> 32) as u32)),
                    _ => poke_byte(&page, 16 + (r >> 16) as usize % (RingPage::SIZE - 16), (r >> 40) as u8),
                }
            }
        });
        let _stop = StopOnDrop(&stop);
        // Start once the scribbler is running.
        while back_index_hint(&page) == 0 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        let (mut rounds, mut consumed) = (0u64, 0u64);
        while rounds < ROUNDS && Instant::now() < deadline {
            let before = back.req_cons();
            let mut batch = 0;
            while batch < back.size() {
                let Some(req) = back.pop_request() else { break };
                batch += 1;
                // Answer every other request now, the rest in a later round.
                if req & 1 == 0 {
                    back.push_response(!req).unwrap();
                }
                assert!(back.unanswered_requests() <= back.size());
            }
            if back.unanswered_requests() == back.size() || rounds % 7 == 0 {
                while back.push_response(0).is_ok() {}
            }
            let _ = back.push_responses_and_check_notify();
            let _ = back.final_check_for_requests();
            assert_eq!(back.req_cons().wrapping_sub(before), batch);
            consumed += u64::from(batch);
            rounds += 1;
        }
        (rounds, consumed)
    });
    println!("{rounds} rounds, {consumed} requests consumed from a hostile frontend");
    assert_eq!(rounds, ROUNDS, "the backend did not finish its rounds in time");
    assert!(consumed > 0, "the scribbler never got a request consumed");
}

/// The backend's `rsp_prod`, which it publishes, as a hostile frontend
/// would use it to aim `req_prod` just ahead.
fn back_index_hint(page: &RingPage) -> RingIdx {
    let ptr = page.as_ptr().as_ptr().wrapping_add(RSP_PROD).cast::<u32>();
    // SAFETY: as in `poke_index`.
    unsafe { AtomicU32::from_ptr(ptr) }.load(Ordering::Relaxed)
}

/// A hostile backend rewrites the page while the frontend pushes and pops:
/// the frontend never counts more responses than requests outstanding, so
/// its free-slot count stays within the ring.
#[test]
fn ring_hostile_backend_cannot_overfill_the_frontend() {
    let page = Box::new(RingPage::new());
    let mut front = FrontRing::new(Sring::<u64, u64>::new(&page));
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| {
            let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
            while !stop.load(Ordering::Relaxed) {
                let r = next(&mut rng);
                poke_index(&page, if r & 1 == 0 { RSP_PROD } else { RSP_EVENT }, (r >> 20) as u32);
            }
        });
        for i in 0..200_000u64 {
            if front.push_request(i).is_ok() {
                let _ = front.push_requests_and_check_notify();
            }
            let outstanding = front.req_prod_pvt().wrapping_sub(front.rsp_cons());
            assert!(front.unconsumed_responses() <= outstanding);
            let _ = front.pop_response();
            let _ = front.final_check_for_responses();
            assert!(front.free_requests() <= front.size());
        }
    });
}
