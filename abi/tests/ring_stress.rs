//! `abi::ring` under load: a frontend thread and a backend thread share one
//! page and run the whole protocol, notification suppression included.
//!
//! Notifications go through a simulated event channel (a latched counter and
//! a condvar) and each end sleeps only after a final check says there is no
//! work, exactly as a guest would block on its event channel. If the
//! notification rule or the final checks lost a wakeup, an end would sleep
//! forever; every wait has a deadline, so the test fails instead of hanging.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use abi::ring::{BackRing, FrontRing, RingEntry, RingIdx, RingPage, Sring};

/// A request: a sequence number, two operands and a checksum over them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Req {
    seq: u64,
    a: u32,
    b: u32,
    check: u32,
    pad: u32,
}

/// A response: the request's sequence number, the sum, and a checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Rsp {
    seq: u64,
    sum: u32,
    check: u32,
}

// SAFETY: integers only, no padding (24 bytes of fields, 24 bytes in all).
unsafe impl RingEntry for Req {}
// SAFETY: integers only, no padding (16 bytes of fields, 16 bytes in all).
unsafe impl RingEntry for Rsp {}

const _: () = assert!(size_of::<Req>() == 24 && size_of::<Rsp>() == 16);

fn mix(mut x: u64) -> u32 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    (x ^ (x >> 33)) as u32
}

fn request(seq: u64) -> Req {
    let (a, b) = (mix(seq), mix(seq.wrapping_add(0x9e37_79b9)));
    Req { seq, a, b, check: mix(seq ^ u64::from(a) ^ (u64::from(b) << 32)), pad: 0 }
}

fn response(req: &Req) -> Rsp {
    Rsp { seq: req.seq, sum: req.a.wrapping_add(req.b), check: mix(req.seq ^ u64::from(req.check)) }
}

/// A simulated event channel: notifications are counted (latched) and a
/// waiter sleeps until the count moves past what it saw.
#[derive(Debug, Default)]
struct Event {
    count: Mutex<u64>,
    cv: Condvar,
    sends: AtomicU64,
}

impl Event {
    fn notify(&self) {
        self.sends.fetch_add(1, Ordering::Relaxed);
        *self.count.lock().unwrap() += 1;
        self.cv.notify_one();
    }

    fn seen(&self) -> u64 {
        *self.count.lock().unwrap()
    }

    /// Sleeps until a notification after `seen`; fails at the deadline or
    /// when the other end has failed.
    fn wait(&self, seen: u64, deadline: Instant, abort: &AtomicBool, who: &str) -> Result<(), String> {
        let mut count = self.count.lock().unwrap();
        while *count == seen {
            if abort.load(Ordering::Relaxed) {
                return Err(format!("{who}: the other end failed"));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!("{who}: timed out waiting for a notification (a lost wakeup?)"));
            }
            let slice = (deadline - now).min(Duration::from_millis(20));
            count = self.cv.wait_timeout(count, slice).unwrap().0;
        }
        Ok(())
    }
}

/// How the frontend behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Front {
    /// Follows the protocol.
    Correct,
    /// Publishes requests but never notifies: the backend must starve.
    NeverNotifies,
}

#[derive(Debug)]
struct Stats {
    to_back: u64,
    to_front: u64,
    front_waits: u64,
    back_waits: u64,
}

/// Moves a freshly initialised ring to index `start` (producers at `start`,
/// events at `start + 1`), so a run can begin anywhere in the index space,
/// e.g. just before the wrap.
fn start_ring_at(page: &RingPage, start: RingIdx) {
    let base = page.as_ptr().as_ptr();
    for (offset, value) in [(0, start), (4, start.wrapping_add(1)), (8, start), (12, start.wrapping_add(1))] {
        // SAFETY: offsets 0, 4, 8 and 12 are the header's four indices,
        // 4-byte aligned inside the page, which `abi::ring` also accesses
        // only as `AtomicU32`; no other thread runs yet.
        unsafe { AtomicU32::from_ptr(base.wrapping_add(offset).cast()) }.store(value, Ordering::Relaxed);
    }
}

fn run_frontend(
    mut front: FrontRing<'_, Req, Rsp>,
    n: u64,
    mode: Front,
    events: (&Event, &Event),
    deadline: Instant,
    abort: &AtomicBool,
) -> Result<u64, String> {
    let (to_back, to_front) = events;
    let (mut sent, mut received, mut waits) = (0u64, 0u64, 0u64);
    if mode == Front::NeverNotifies {
        // Let the backend find the ring empty and go to sleep first.
        std::thread::sleep(Duration::from_millis(200));
    }
    loop {
        let seen = to_front.seen();
        while sent < n && !front.is_full() {
            front.push_request(request(sent)).map_err(|_| "push_request refused below full".to_owned())?;
            sent += 1;
        }
        if front.push_requests_and_check_notify() && mode == Front::Correct {
            to_back.notify();
        }
        while let Some(rsp) = front.pop_response() {
            let want = response(&request(received));
            if rsp != want {
                return Err(format!("frontend: response {received} is {rsp:?}, want {want:?}"));
            }
            received += 1;
        }
        if received == n {
            return Ok(waits);
        }
        if sent < n && !front.is_full() {
            continue;
        }
        if front.final_check_for_responses() {
            continue;
        }
        waits += 1;
        to_front.wait(seen, deadline, abort, "frontend")?;
    }
}

fn run_backend(
    mut back: BackRing<'_, Req, Rsp>,
    n: u64,
    events: (&Event, &Event),
    deadline: Instant,
    abort: &AtomicBool,
) -> Result<u64, String> {
    let (to_back, to_front) = events;
    let (mut expect, mut waits) = (0u64, 0u64);
    loop {
        let seen = to_back.seen();
        let mut batch = 0;
        while let Some(req) = back.pop_request() {
            batch += 1;
            if req != request(expect) {
                return Err(format!("backend: request {expect} is {req:?}, want {:?}", request(expect)));
            }
            expect += 1;
            back.push_response(response(&req)).map_err(|_| "push_response refused".to_owned())?;
        }
        if batch > back.size() {
            return Err(format!("backend: consumed {batch} requests in one round from a ring of {}", back.size()));
        }
        if back.push_responses_and_check_notify() {
            to_front.notify();
        }
        if expect == n {
            return Ok(waits);
        }
        if back.final_check_for_requests() {
            continue;
        }
        waits += 1;
        to_back.wait(seen, deadline, abort, "backend")?;
    }
}

/// Runs `n` requests through a one-page ring whose indices start at `start`.
fn run(n: u64, start: RingIdx, mode: Front, timeout: Duration) -> Result<Stats, String> {
    let page = Box::new(RingPage::new());
    let front = FrontRing::new(Sring::<Req, Rsp>::new(&page));
    start_ring_at(&page, start);
    let front = FrontRing::attach(front.sring(), start);
    let back = BackRing::attach(Sring::<Req, Rsp>::new(&page), start);
    let (to_back, to_front) = (Event::default(), Event::default());
    let abort = AtomicBool::new(false);
    let deadline = Instant::now() + timeout;
    let (front_result, back_result) = std::thread::scope(|s| {
        let events = (&to_back, &to_front);
        let abort = &abort;
        let fail = move |r: Result<u64, String>| {
            if r.is_err() {
                abort.store(true, Ordering::Relaxed);
            }
            r
        };
        let f = s.spawn(move || fail(run_frontend(front, n, mode, events, deadline, abort)));
        let b = s.spawn(move || fail(run_backend(back, n, events, deadline, abort)));
        (f.join().unwrap(), b.join().unwrap())
    });
    let (front_waits, back_waits) = match (front_result, back_result) {
        (Ok(f), Ok(b)) => (f, b),
        (f, b) => return Err(format!("frontend: {f:?}; backend: {b:?}")),
    };
    Ok(Stats {
        to_back: to_back.sends.load(Ordering::Relaxed),
        to_front: to_front.sends.load(Ordering::Relaxed),
        front_waits,
        back_waits,
    })
}

#[test]
fn ring_stress_one_million_requests_in_order() {
    const N: u64 = 1_000_000;
    let stats = run(N, 0, Front::Correct, Duration::from_secs(120)).unwrap();
    println!("{N} requests: {stats:?}");
    // Suppression works: far fewer notifications than requests.
    assert!(stats.to_back < N / 2 && stats.to_front < N / 2, "{stats:?}");
    // Both ends really slept and were woken, so the wakeup path was tested.
    assert!(stats.front_waits > 0 && stats.back_waits > 0, "{stats:?}");
}

#[test]
fn ring_stress_across_the_index_wrap() {
    let stats = run(200_000, u32::MAX - 70_000, Front::Correct, Duration::from_secs(60)).unwrap();
    println!("across the wrap: {stats:?}");
    assert!(stats.front_waits > 0 && stats.back_waits > 0, "{stats:?}");
}

#[test]
fn ring_stress_starts_right_at_the_wrap() {
    for start in [u32::MAX, u32::MAX - 1, u32::MAX - 63] {
        run(1000, start, Front::Correct, Duration::from_secs(30)).unwrap();
    }
}

/// The harness can fail: a frontend that never notifies leaves the backend
/// asleep, and the run times out instead of hanging or passing.
#[test]
fn ring_stress_a_lost_wakeup_fails_the_run() {
    let err = run(1000, 0, Front::NeverNotifies, Duration::from_millis(500)).unwrap_err();
    assert!(err.contains("timed out"), "{err}");
}
