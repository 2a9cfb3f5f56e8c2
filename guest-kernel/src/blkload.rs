//! The block-device workloads: a domain with `disk=<name>` in its
//! configuration uses its PV disk `xvda` through
//! [`guest_kernel::blkfront`].
//!
//! - `blk seed=<n>`: writes a pattern made from `n` over the whole disk,
//!   [`DEPTH`] requests of up to 11 pages in flight at once, reads it back
//!   the same way and checks it, then checks that requests beyond the end
//!   (and an unsupported operation) are refused with an error response.
//!   The pattern stays on the disk. Lines: `BLK connected sectors=<n>
//!   backend=d<id>`, `BLK write ok ...`, `BLK read ok ...`, `BLK refused
//!   ok ...`, then `BLK pass seed=<n>` and power off, or `BLK FAIL: <why>`
//!   and crash.
//! - `blk-verify seed=<n>`: reads the whole disk and checks it holds `n`'s
//!   pattern: `BLK verify ok seed=<n> sectors=<n>`, or `BLK FAIL: ...`.
//! - `blk-hostile`: see [`hostile`].
//! - `blk-bench`: see [`bench`].

use alloc::vec::Vec;

use abi::blkif::{
    BlkifRequest, BlkifRequestSegment, BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_DISCARD, BLKIF_OP_READ, BLKIF_OP_WRITE,
    BLKIF_RING_SIZE, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
};
use abi::sched::ShutdownReason;
use guest_kernel::blkfront::Blkfront;
use guest_kernel::ensure;
use guest_kernel::grant::GrantRef;
use guest_kernel::mm::{self, Frame};
use guest_kernel::runtime::shutdown;
use guest_kernel::text::Msg;
use guest_kernel::xenbus::Xenbus;
use guest_kernel::{msg, println};
use toolstack::xenstore::XVDA;

use crate::loads::init_events;

pub mod bench;
pub mod hostile;

/// Requests in flight at once.
pub const DEPTH: usize = 8;
/// Pages per request: the protocol's most segments.
pub const PAGES: usize = BLKIF_MAX_SEGMENTS_PER_REQUEST as usize;
/// 512-byte sectors in a page.
const SECTORS_PER_PAGE: u64 = 8;
/// Words in a sector.
const WORDS: u64 = 64;

/// The pages of one request slot, granted to the backend.
pub struct Slot {
    pub frames: [Frame; PAGES],
    pub grefs: [GrantRef; PAGES],
    /// The sectors the request in flight covers.
    pub at: u64,
    pub sectors: u64,
}

/// A connected disk and [`DEPTH`] slots of granted pages.
pub struct Disk {
    pub front: Blkfront,
    pub slots: Vec<Slot>,
}

/// Connects to `xvda` and grants the slots' pages, or says why not.
pub fn open(workload: &str) -> Result<Disk, Msg> {
    init_events(workload);
    mm::init().map_err(|e| msg!("mm::init: {e}"))?;
    let mut xs = Xenbus::open().map_err(|e| msg!("no xenstore ring: {e}"))?;
    let front = Blkfront::connect(&mut xs, XVDA).map_err(|e| msg!("connecting xvda: {e}"))?;
    println!(
        "BLK connected sectors={} sector_size={} backend=d{} ring={}",
        front.sectors, front.sector_size, front.backend_id, BLKIF_RING_SIZE
    );
    let mut slots = Vec::new();
    for _ in 0..DEPTH {
        let mut frames = [Frame { pfn: 0, mfn: 0 }; PAGES];
        let mut grefs = [0; PAGES];
        for (f, g) in frames.iter_mut().zip(&mut grefs) {
            *f = mm::alloc_frame().map_err(|e| msg!("alloc_frame: {e}"))?;
            *g = front.grant_page(f, false).map_err(|e| msg!("granting a page: {e}"))?;
        }
        slots.push(Slot { frames, grefs, at: 0, sectors: 0 });
    }
    Ok(Disk { front, slots })
}

/// Word `w` of sector `s` of `seed`'s pattern.
fn pattern(seed: u64, s: u64, w: u64) -> u64 {
    let mut x = (seed << 40) ^ (s * WORDS + w) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 29;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^ (x >> 32)
}

/// A request of `op` for `sectors` sectors at `at`, in `slot`'s pages from
/// the first, `id` its slot's index.
pub fn request(op: u8, id: usize, slot: &Slot, at: u64, sectors: u64) -> BlkifRequest {
    let mut req = BlkifRequest { operation: op, id: id as u64, sector_number: at, ..BlkifRequest::default() };
    let mut left = sectors;
    for (seg, &gref) in req.seg.iter_mut().zip(&slot.grefs) {
        if left == 0 {
            break;
        }
        let n = left.min(SECTORS_PER_PAGE);
        *seg = BlkifRequestSegment { gref, first_sect: 0, last_sect: (n - 1) as u8, _pad0: [0; 2] };
        req.nr_segments += 1;
        left -= n;
    }
    req
}

/// The 8-byte word `i` of `frame`.
fn word(frame: &Frame, i: u64) -> u64 {
    // SAFETY: our frame, mapped in the direct map; the backend writes it
    // only while a request naming it is in flight, and none is.
    unsafe { (frame.va() as *const u64).wrapping_add(i as usize).read_volatile() }
}

fn set_word(frame: &Frame, i: u64, v: u64) {
    // SAFETY: as in `word`.
    unsafe { (frame.va() as *mut u64).wrapping_add(i as usize).write_volatile(v) }
}

/// Fills `slot`'s pages with the pattern of its sectors.
fn fill(slot: &Slot, seed: u64) {
    for s in 0..slot.sectors {
        let f = &slot.frames[(s / SECTORS_PER_PAGE) as usize];
        for w in 0..WORDS {
            set_word(f, (s % SECTORS_PER_PAGE) * WORDS + w, pattern(seed, slot.at + s, w));
        }
    }
}

/// The first sector of `slot` that does not hold the pattern.
fn check(slot: &Slot, seed: u64) -> Result<(), Msg> {
    for s in 0..slot.sectors {
        let f = &slot.frames[(s / SECTORS_PER_PAGE) as usize];
        for w in 0..WORDS {
            let (got, want) = (word(f, (s % SECTORS_PER_PAGE) * WORDS + w), pattern(seed, slot.at + s, w));
            ensure!(got == want, "sector {} word {w} reads {got:#x}, want {want:#x}", slot.at + s);
        }
    }
    Ok(())
}

/// How a pass over the disk went.
pub struct Pass {
    pub requests: u64,
    pub max_in_flight: u32,
}

/// Moves the whole disk with `op`, up to [`DEPTH`] requests in flight:
/// writes fill each slot with `seed`'s pattern first, reads check it (if
/// `seed` is given).
pub fn pass(disk: &mut Disk, op: u8, seed: Option<u64>) -> Result<Pass, Msg> {
    sweep(disk, op, &[PAGES as u64 * SECTORS_PER_PAGE], seed)
}

/// [`pass`] with requests of `sizes[0]`, `sizes[1]`, ... sectors in turn
/// (each at most a request's 88).
pub fn sweep(disk: &mut Disk, op: u8, sizes: &[u64], seed: Option<u64>) -> Result<Pass, Msg> {
    let (start, end) = (0, disk.front.sectors);
    let mut size = sizes.iter().copied().cycle();
    let mut free: Vec<usize> = (0..disk.slots.len()).collect();
    let (mut next, mut in_flight) = (start, 0usize);
    let mut out = Pass { requests: 0, max_in_flight: 0 };
    loop {
        while next < end && disk.front.free_slots() > 0 {
            let Some(id) = free.pop() else { break };
            let slot = &mut disk.slots[id];
            let per_request = size.next().unwrap_or(SECTORS_PER_PAGE).min(PAGES as u64 * SECTORS_PER_PAGE);
            (slot.at, slot.sectors) = (next, per_request.min(end - next));
            if let (BLKIF_OP_WRITE, Some(seed)) = (op, seed) {
                fill(slot, seed);
            }
            let req = request(op, id, slot, slot.at, slot.sectors);
            disk.front.push(req).map_err(|_| msg!("the ring is full"))?;
            next += slot.sectors;
            in_flight += 1;
            out.requests += 1;
        }
        disk.front.kick().map_err(|e| msg!("notifying the backend: {e}"))?;
        out.max_in_flight = out.max_in_flight.max(disk.front.in_flight());
        if in_flight == 0 {
            return Ok(out);
        }
        let rsp = disk.front.next_response().map_err(|e| msg!("waiting for a response: {e}"))?;
        let id = usize::try_from(rsp.id).ok().filter(|&id| id < disk.slots.len() && !free.contains(&id));
        let Some(id) = id else { return Err(msg!("a response for no request in flight: id {}", rsp.id)) };
        let slot = &disk.slots[id];
        ensure!(rsp.status == BLKIF_RSP_OKAY, "{} sectors at {}: status {}", slot.sectors, slot.at, rsp.status);
        ensure!(rsp.operation == op, "response operation {}, want {op}", rsp.operation);
        if let (BLKIF_OP_READ, Some(seed)) = (op, seed) {
            check(slot, seed)?;
        }
        free.push(id);
        in_flight -= 1;
    }
}

/// Sends `req` alone and waits for its response's status.
pub fn one(disk: &mut Disk, req: BlkifRequest) -> Result<i16, Msg> {
    disk.front.push(req).map_err(|_| msg!("the ring is full"))?;
    disk.front.kick().map_err(|e| msg!("notifying the backend: {e}"))?;
    let rsp = disk.front.next_response().map_err(|e| msg!("waiting for a response: {e}"))?;
    ensure!(rsp.id == req.id, "response id {}, want {}", rsp.id, req.id);
    Ok(rsp.status)
}

/// Requests beyond the disk and an unsupported operation get errors.
fn refusals(disk: &mut Disk) -> Result<(), Msg> {
    let sectors = disk.front.sectors;
    let cases = [
        ("read across the end", BLKIF_OP_READ, sectors - 4, 8, BLKIF_RSP_ERROR),
        ("write at the end", BLKIF_OP_WRITE, sectors, 8, BLKIF_RSP_ERROR),
        ("read far beyond", BLKIF_OP_READ, u64::MAX - 3, 8, BLKIF_RSP_ERROR),
        ("discard", BLKIF_OP_DISCARD, 0, 8, BLKIF_RSP_EOPNOTSUPP),
    ];
    for (i, (what, op, at, n, want)) in cases.into_iter().enumerate() {
        let req = request(op, 100 + i, &disk.slots[0], at, n);
        let status = one(disk, req)?;
        ensure!(status == want, "{what}: status {status}, want {want}");
    }
    println!("BLK refused ok beyond_end=error discard=eopnotsupp");
    Ok(())
}

fn check_all(seed: u64) -> Result<(), Msg> {
    let mut disk = open("blk")?;
    let w = pass(&mut disk, BLKIF_OP_WRITE, Some(seed))?;
    println!("BLK write ok sectors={} requests={} max_in_flight={}", disk.front.sectors, w.requests, w.max_in_flight);
    ensure!(w.max_in_flight > 1 || w.requests < 2, "never more than one request in flight");
    let r = pass(&mut disk, BLKIF_OP_READ, Some(seed))?;
    println!("BLK read ok sectors={} requests={} max_in_flight={}", disk.front.sectors, r.requests, r.max_in_flight);
    refusals(&mut disk)?;
    Ok(())
}

/// Reports the outcome: powers off if `r` is fine, else crashes.
fn finish(r: Result<(), Msg>, ok: impl core::fmt::Display) -> ! {
    match r {
        Ok(()) => {
            println!("{ok}");
            shutdown(ShutdownReason::Poweroff)
        }
        Err(why) => {
            println!("BLK FAIL: {why}");
            shutdown(ShutdownReason::Crash)
        }
    }
}

/// `blk seed=<n>`.
pub fn run(seed: u64) -> ! {
    finish(check_all(seed), format_args!("BLK pass seed={seed}"))
}

/// `blk-verify seed=<n>`.
pub fn verify(seed: u64) -> ! {
    let r = open("blk-verify").and_then(|mut disk| {
        pass(&mut disk, BLKIF_OP_READ, Some(seed))?;
        println!("BLK verify ok seed={seed} sectors={}", disk.front.sectors);
        Ok(())
    });
    finish(r, format_args!("BLK pass seed={seed}"))
}
