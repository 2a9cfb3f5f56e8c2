//! The portable core of a PV block-device backend: one frontend's blkif ring
//! (the protocol of Xen's `io/blkif.h`) served from a disk, with the data
//! moved by a [`Copier`].
//!
//! A [`Blkback`] pops each request off the shared ring once (a private copy;
//! nothing is re-read from shared memory), checks it with [`plan`], has the
//! [`Copier`] move the data, and answers it with exactly one response that
//! carries the request's `id` and `operation` back. It never maps the
//! frontend's pages: the plan is a list of [`Copy`](struct@Copy)s, each
//! within one granted page and one disk page, which the dom0 glue turns into
//! one `GNTTABOP_copy` batch and host tests carry out in memory.
//!
//! # What the backend accepts
//!
//! - `BLKIF_OP_READ` and `BLKIF_OP_WRITE` with 1 to
//!   [`BLKIF_MAX_SEGMENTS_PER_REQUEST`] segments, each naming sectors
//!   `first_sect..=last_sect` (within `0..=7`) of a granted page. The
//!   segments are consecutive on the disk from `sector_number` (in 512-byte
//!   sectors) and must end within it.
//! - `BLKIF_OP_FLUSH_DISKCACHE` with no segments: it succeeds at once, since
//!   the disk is memory.
//!
//! # What it refuses
//!
//! - Any other operation (barrier, discard, indirect, ...):
//!   `BLKIF_RSP_EOPNOTSUPP`.
//! - A read or write with no segments or more than 11, a segment with
//!   `first_sect > last_sect` or `last_sect > 7`, a sector range that
//!   overflows or runs past the disk, a write to a read-only disk, a flush
//!   with segments: `BLKIF_RSP_ERROR`, with nothing copied.
//! - A request whose copies fail (a bad grant reference, say):
//!   `BLKIF_RSP_ERROR`. The copies are one batch, so part of the data may
//!   have moved, as with Xen's blkback.
//! - A frontend whose `req_prod` runs more than a ring ahead of the
//!   responses: [`serve`](Blkback::serve) gives up on the connection
//!   ([`Broken`]) before popping anything.
//!
//! `handle` is ignored: a connection serves one disk. Each
//! [`serve`](Blkback::serve) answers at most a budget of requests, so a
//! frontend refilling its ring as fast as it is emptied cannot keep dom0
//! busy.

use alloc::vec::Vec;
use core::fmt;

use abi::blkif::*;
use abi::ring::BackRing;

#[cfg(test)]
mod tests;

/// Bytes of a page (the unit grants and disk pages come in).
pub const PAGE_BYTES: usize = 4096;

/// `PAGE_BYTES` for disk-offset arithmetic.
const PAGE: u64 = PAGE_BYTES as u64;
/// `BLKIF_SECTOR_SIZE` for disk-offset arithmetic.
const SECTOR: u64 = BLKIF_SECTOR_SIZE as u64;
/// Most copies one request plans: each segment splits at most once.
const MAX_COPIES: usize = 2 * BLKIF_MAX_SEGMENTS_PER_REQUEST as usize;

/// Which way a request moves data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Disk to the frontend's pages (`BLKIF_OP_READ`).
    FromDisk,
    /// The frontend's pages to disk (`BLKIF_OP_WRITE`).
    ToDisk,
}

/// One grant copy between a frontend's granted page and the disk; neither
/// side crosses a page boundary (`grant_offset + len <= 4096`, and
/// `disk_offset / 4096 == (disk_offset + len - 1) / 4096`). `len` is a
/// non-zero multiple of 512.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Copy {
    /// The frontend's grant reference for the page.
    pub gref: u32,
    /// Byte offset in the granted page.
    pub grant_offset: u16,
    /// Byte offset on the disk.
    pub disk_offset: u64,
    /// Bytes to copy.
    pub len: u16,
}

/// What does the copies: the dom0 glue turns them into one `GNTTABOP_copy`
/// batch (disk pages are dom0 frames); host tests use pages in memory.
pub trait Copier {
    /// Carries out `copies` in `direction`; `Err(GNTST_*)` if any failed
    /// (e.g. a bad grant reference).
    fn copy(&mut self, direction: Direction, copies: &[Copy]) -> Result<(), i16>;
}

/// The disk's shape as the backend sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskInfo {
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// Whether writes are refused.
    pub read_only: bool,
}

/// Checks one request against the disk and plans its copies into `out`
/// (cleared first, and left empty on refusal).
///
/// Returns the direction, or `None` for a flush (which needs no copies), or
/// the `BLKIF_RSP_*` status to answer with; what is refused and why is in
/// the [module documentation](self). Segment `i` starts on the disk right
/// after segment `i - 1` (the first at `sector_number`) and its data sits at
/// byte `first_sect * 512` of its granted page; a segment crossing a disk
/// page boundary yields two copies, otherwise one.
pub fn plan(req: &BlkifRequest, disk: DiskInfo, out: &mut Vec<Copy>) -> Result<Option<Direction>, i16> {
    out.clear();
    let direction = match req.operation {
        BLKIF_OP_READ => Direction::FromDisk,
        BLKIF_OP_WRITE if disk.read_only => return Err(BLKIF_RSP_ERROR),
        BLKIF_OP_WRITE => Direction::ToDisk,
        BLKIF_OP_FLUSH_DISKCACHE if req.nr_segments == 0 => return Ok(None),
        BLKIF_OP_FLUSH_DISKCACHE => return Err(BLKIF_RSP_ERROR),
        _ => return Err(BLKIF_RSP_EOPNOTSUPP),
    };
    let planned = plan_segments(req, disk, out);
    if planned.is_none() {
        out.clear();
    }
    planned.map(|()| Some(direction)).ok_or(BLKIF_RSP_ERROR)
}

/// Plans a read's or write's segments into `out`; `None` if one is bad.
fn plan_segments(req: &BlkifRequest, disk: DiskInfo, out: &mut Vec<Copy>) -> Option<()> {
    let segs = req.seg.get(..usize::from(req.nr_segments)).filter(|segs| !segs.is_empty())?;
    let mut sector = req.sector_number;
    for seg in segs {
        if seg.first_sect > seg.last_sect || seg.last_sect >= BLKIF_SECTORS_PER_PAGE {
            return None;
        }
        let count = u64::from(seg.last_sect - seg.first_sect) + 1;
        let end = sector.checked_add(count).filter(|&end| end <= disk.sectors)?;
        // Byte range [start, stop) on the disk; start <= stop, so only the
        // end can overflow.
        let stop = end.checked_mul(SECTOR)?;
        let mut start = sector * SECTOR;
        let mut grant_offset = u64::from(seg.first_sect) * SECTOR;
        while start < stop {
            // Both at most one page (a segment is at most 8 sectors).
            let len = (stop - start).min(PAGE - start % PAGE);
            out.push(Copy {
                gref: seg.gref,
                grant_offset: u16::try_from(grant_offset).ok()?,
                disk_offset: start,
                len: u16::try_from(len).ok()?,
            });
            start += len;
            grant_offset += len;
        }
        sector = end;
    }
    Some(())
}

/// Why a connection was given up (the glue logs it as one line and closes
/// the device).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broken {
    /// `req_prod` is more than a ring ahead of what was answered
    /// (`RING_REQUEST_PROD_OVERFLOW`).
    ProducerAhead {
        /// The frontend's `req_prod`.
        req_prod: u32,
        /// The responses published so far.
        rsp_prod: u32,
    },
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Broken::ProducerAhead { req_prod, rsp_prod } => {
                write!(f, "the frontend's req_prod {req_prod} is more than a ring ahead of rsp_prod {rsp_prod}")
            }
        }
    }
}

/// What one [`serve`](Blkback::serve) call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Served {
    /// Requests answered.
    pub answered: u32,
    /// Of those, answered with an error status.
    pub failed: u32,
    /// Responses were published past `rsp_event`: send an event.
    pub notify: bool,
    /// Requests remain (the budget ran out, or they arrived during the final
    /// check): serve again soon.
    pub more: bool,
}

/// Counters over a connection's life (for a `blk` status line and
/// benchmarks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests answered.
    pub requests: u64,
    /// Of those, answered with an error status.
    pub errors: u64,
    /// Sectors read from the disk by successful reads.
    pub sectors_read: u64,
    /// Sectors written to the disk by successful writes.
    pub sectors_written: u64,
}

/// One backend connection: the ring, the disk's shape, the copy plan
/// buffer, the stats.
#[derive(Debug)]
pub struct Blkback<'a> {
    ring: BackRing<'a, BlkifRequest, BlkifResponse>,
    disk: DiskInfo,
    /// The current request's copies, kept to reuse its allocation.
    copies: Vec<Copy>,
    stats: Stats,
}

impl<'a> Blkback<'a> {
    /// A connection over a ring the frontend initialised (`BACK_RING_INIT`).
    pub fn new(ring: BlkifSring<'a>, disk: DiskInfo) -> Self {
        Blkback { ring: BackRing::new(ring), disk, copies: Vec::with_capacity(MAX_COPIES), stats: Stats::default() }
    }

    /// The disk's shape.
    pub fn disk(&self) -> DiskInfo {
        self.disk
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Answers at most `budget` requests, each with exactly one response
    /// carrying its `id` and `operation` and a status (`BLKIF_RSP_OKAY`, or
    /// what [`plan`] refused it with, or `BLKIF_RSP_ERROR` if the copier
    /// failed); publishes the responses and says whether to notify; then does
    /// the final check for requests, which re-arms `req_event` only if none
    /// remain.
    ///
    /// `Err(Broken)` if `req_prod` is more than a ring ahead of the
    /// responses, checked before popping anything; nothing is answered then.
    pub fn serve(&mut self, copier: &mut impl Copier, budget: u32) -> Result<Served, Broken> {
        // One read of req_prod, so the error reports what was checked.
        let req_prod = self.ring.sring().header().req_prod;
        let rsp_prod = self.ring.rsp_prod_pvt();
        if req_prod.wrapping_sub(rsp_prod) > self.ring.size() {
            return Err(Broken::ProducerAhead { req_prod, rsp_prod });
        }
        let mut served = Served::default();
        while served.answered < budget {
            let Some(req) = self.ring.pop_request() else { break };
            let status = self.answer(&req, copier);
            let rsp = BlkifResponse { id: req.id, operation: req.operation, _pad0: 0, status, _pad1: 0 };
            // Cannot fail: the request was just popped.
            if self.ring.push_response(rsp).is_err() {
                break;
            }
            served.answered += 1;
            if status != BLKIF_RSP_OKAY {
                served.failed += 1;
            }
        }
        served.notify = self.ring.push_responses_and_check_notify();
        served.more = self.ring.final_check_for_requests();
        Ok(served)
    }

    /// Plans and carries out one request, counts it, and returns its status.
    fn answer(&mut self, req: &BlkifRequest, copier: &mut impl Copier) -> i16 {
        let status = match plan(req, self.disk, &mut self.copies) {
            Ok(None) => BLKIF_RSP_OKAY,
            Ok(Some(direction)) => match copier.copy(direction, &self.copies) {
                Ok(()) => {
                    let bytes: u64 = self.copies.iter().map(|c| u64::from(c.len)).sum();
                    let counter = match direction {
                        Direction::FromDisk => &mut self.stats.sectors_read,
                        Direction::ToDisk => &mut self.stats.sectors_written,
                    };
                    *counter = counter.saturating_add(bytes / SECTOR);
                    BLKIF_RSP_OKAY
                }
                Err(_) => BLKIF_RSP_ERROR,
            },
            Err(status) => status,
        };
        self.stats.requests = self.stats.requests.saturating_add(1);
        if status != BLKIF_RSP_OKAY {
            self.stats.errors = self.stats.errors.saturating_add(1);
        }
        status
    }
}
