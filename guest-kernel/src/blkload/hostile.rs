//! `blk-hostile`: a block frontend that breaks the protocol, to show the
//! backend in dom0 survives it. It connects as a normal frontend, then:
//!
//! 1. a read naming a grant reference it never granted: an error
//!    response;
//! 2. bad segments (12 of them, `first_sect > last_sect`, `last_sect` 8) and
//!    a request far beyond the disk: error responses;
//! 3. [`GARBAGE`] requests of random bytes: one response each, whatever
//!    they say;
//! 4. a producer index a thousand requests ahead of what it wrote: the
//!    backend disconnects (its state goes to `Closed`) and answers nothing
//!    more.
//!
//! Lines: `BLKH <step> ok ...` for each, then `BLKH done`, and power off;
//! `BLK FAIL: <why>` and crash if the backend did anything else (or
//! nothing: a hung backend times out here).

use abi::blkif::{BlkifRequest, XenbusState, BLKIF_OP_READ, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY};
use abi::ring::FrontRing;
use guest_kernel::msg;
use guest_kernel::println;
use guest_kernel::text::Msg;
use guest_kernel::xenbus::Xenbus;

use guest_kernel::ensure;

use super::{finish, one, open, request, Disk};

/// Garbage requests sent in step 3.
pub const GARBAGE: usize = 200;

/// A reference this domain never granted.
const UNGRANTED: u32 = 1000;

fn bad_grant(disk: &mut Disk) -> Result<(), Msg> {
    let mut req = request(BLKIF_OP_READ, 1, &disk.slots[0], 0, 8);
    req.seg[0].gref = UNGRANTED;
    let status = one(disk, req)?;
    ensure!(status == BLKIF_RSP_ERROR, "a read into ungranted ref {UNGRANTED}: status {status}");
    println!("BLKH bad_grant ok status={status}");
    Ok(())
}

fn bad_segments(disk: &mut Disk) -> Result<(), Msg> {
    let good = request(BLKIF_OP_READ, 2, &disk.slots[0], 0, 8);
    let mut too_many = good;
    too_many.nr_segments = 12;
    let mut reversed = good;
    (reversed.seg[0].first_sect, reversed.seg[0].last_sect) = (5, 2);
    let mut past_page = good;
    past_page.seg[0].last_sect = 8;
    let beyond = request(BLKIF_OP_READ, 2, &disk.slots[0], disk.front.sectors + 1_000_000, 8);
    for (what, req) in
        [("12 segments", too_many), ("first > last", reversed), ("last 8", past_page), ("beyond", beyond)]
    {
        let status = one(disk, req)?;
        ensure!(status == BLKIF_RSP_ERROR, "{what}: status {status}");
    }
    let status = one(disk, good)?;
    ensure!(status == BLKIF_RSP_OKAY, "a good read after the bad ones: status {status}");
    println!("BLKH bad_segments ok");
    Ok(())
}

/// A xorshift for the garbage.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn garbage(disk: &mut Disk) -> Result<(), Msg> {
    let mut x = 0x2545_f491_4f6c_dd1d;
    let mut errors = 0;
    for i in 0..GARBAGE {
        // Random operation, segment count, sector and segments.
        let mut req = BlkifRequest {
            operation: (next(&mut x) % 8) as u8,
            nr_segments: (next(&mut x) % 16) as u8,
            sector_number: next(&mut x) >> (next(&mut x) % 64),
            id: i as u64,
            ..BlkifRequest::default()
        };
        for seg in req.seg.iter_mut() {
            let r = next(&mut x);
            seg.gref = (r % 2048) as u32;
            (seg.first_sect, seg.last_sect) = ((r >> 16) as u8 % 10, (r >> 24) as u8 % 10);
        }
        let status = one(disk, req)?;
        errors += u32::from(status != BLKIF_RSP_OKAY);
    }
    println!("BLKH garbage ok requests={GARBAGE} errors={errors}");
    Ok(())
}

fn producer_ahead(disk: &mut Disk) -> Result<(), Msg> {
    let sring = disk.front.sring();
    let start = disk.front.req_prod_pvt();
    // A second view of the ring, a thousand requests on, publishes a
    // req_prod the backend cannot have been given.
    FrontRing::attach(sring, start.wrapping_add(1000)).push_requests();
    disk.front.notify().map_err(|e| msg!("notify: {e}"))?;
    // The backend must give up on the ring: its state goes to Closed.
    let mut xs = Xenbus::open().map_err(|e| msg!("xenstore: {e}"))?;
    match disk.front.wait_backend(&mut xs, XenbusState::Closed) {
        Ok(XenbusState::Closed) => {
            println!("BLKH producer_ahead ok backend=closed");
            Ok(())
        }
        other => Err(msg!("after req_prod ran 1000 ahead the backend's state is {other:?}, not Closed")),
    }
}

/// `blk-hostile`.
pub fn run() -> ! {
    let r = open("blk-hostile").and_then(|mut disk| {
        bad_grant(&mut disk)?;
        bad_segments(&mut disk)?;
        garbage(&mut disk)?;
        producer_ahead(&mut disk)
    });
    finish(r, "BLKH done")
}
