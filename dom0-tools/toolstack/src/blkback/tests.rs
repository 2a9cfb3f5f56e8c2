//! The backend against a frontend on the same ring page, over a disk and
//! granted pages in memory.

use std::collections::BTreeMap;

use abi::grant_table::GNTST_BAD_GNTREF;
use abi::ring::{FrontRing, RingPage, Sring};

use super::*;

type Front<'a> = FrontRing<'a, BlkifRequest, BlkifResponse>;

/// The disk and the frontend's granted pages, in memory. It also checks
/// every copy it is given keeps to [`Copy`](struct@Copy)'s promises.
struct FakeCopier {
    disk: Vec<[u8; PAGE_BYTES]>,
    grants: BTreeMap<u32, [u8; PAGE_BYTES]>,
}

impl FakeCopier {
    fn new(disk_sectors: u64) -> Self {
        let pages = disk_sectors.div_ceil(8) as usize;
        FakeCopier { disk: vec![[0; PAGE_BYTES]; pages], grants: BTreeMap::new() }
    }

    fn info(&self, read_only: bool) -> DiskInfo {
        DiskInfo { sectors: self.disk.len() as u64 * 8, read_only }
    }

    fn disk_bytes(&self) -> Vec<u8> {
        self.disk.concat()
    }
}

impl Copier for FakeCopier {
    fn copy(&mut self, direction: Direction, copies: &[Copy]) -> Result<(), i16> {
        // Like one GNTTABOP_copy batch failing on its bad entry, but all or
        // nothing, which keeps the tests' expectations simple.
        if copies.iter().any(|c| !self.grants.contains_key(&c.gref)) {
            return Err(GNTST_BAD_GNTREF);
        }
        for c in copies {
            let (len, goff) = (usize::from(c.len), usize::from(c.grant_offset));
            let (page, doff) = ((c.disk_offset / 4096) as usize, (c.disk_offset % 4096) as usize);
            assert!(len > 0 && len % 512 == 0 && goff % 512 == 0, "{c:?}");
            assert!(goff + len <= PAGE_BYTES && doff + len <= PAGE_BYTES, "copy crosses a page: {c:?}");
            let disk = &mut self.disk[page][doff..doff + len];
            let grant = &mut self.grants.get_mut(&c.gref).unwrap()[goff..goff + len];
            match direction {
                Direction::FromDisk => grant.copy_from_slice(disk),
                Direction::ToDisk => disk.copy_from_slice(grant),
            }
        }
        Ok(())
    }
}

fn seg(gref: u32, first_sect: u8, last_sect: u8) -> BlkifRequestSegment {
    BlkifRequestSegment { gref, first_sect, last_sect, _pad0: [0; 2] }
}

/// A request of `operation` at `sector_number` over `segs`; `nr_segments`
/// is their count.
fn req(operation: u8, id: u64, sector_number: u64, segs: &[BlkifRequestSegment]) -> BlkifRequest {
    let mut r = BlkifRequest { operation, nr_segments: segs.len() as u8, id, sector_number, ..Default::default() };
    r.seg[..segs.len()].copy_from_slice(segs);
    r
}

/// Publishes `reqs`; whether the backend must be notified.
fn submit(front: &mut Front<'_>, reqs: &[BlkifRequest]) -> bool {
    for r in reqs {
        front.push_request(*r).unwrap();
    }
    front.push_requests_and_check_notify()
}

/// Pops every published response.
fn responses(front: &mut Front<'_>) -> Vec<BlkifResponse> {
    core::iter::from_fn(|| front.pop_response()).collect()
}

/// Submits one request, serves it, and returns its status.
fn one(front: &mut Front<'_>, back: &mut Blkback<'_>, copier: &mut FakeCopier, r: BlkifRequest) -> i16 {
    submit(front, &[r]);
    let served = back.serve(copier, 32).unwrap();
    assert_eq!(served.answered, 1);
    let rsps = responses(front);
    assert_eq!(rsps.len(), 1);
    assert_eq!((rsps[0].id, rsps[0].operation), (r.id, r.operation));
    rsps[0].status
}

/// A byte pattern that differs by page, by sector and by byte.
/// A frontend that initialised the ring in `page`, and a backend on it
/// serving `disk`.
fn ends(page: &RingPage, disk: DiskInfo) -> (Front<'_>, Blkback<'_>) {
    let front = FrontRing::new(BlkifSring::new(page));
    let back = Blkback::new(front.sring(), disk);
    (front, back)
}

fn pattern(gref: u32, seed: u8) -> [u8; PAGE_BYTES] {
    core::array::from_fn(|i| (i as u8).wrapping_mul(31) ^ (i / 512) as u8 ^ (gref as u8).wrapping_mul(7) ^ seed)
}

#[test]
fn plan_splits_a_segment_at_a_disk_page_boundary() {
    let disk = DiskInfo { sectors: 64, read_only: false };
    let mut out = Vec::new();
    // Sector 7 is the last of disk page 0: a full page splits 1 + 7 sectors.
    let r = req(BLKIF_OP_READ, 1, 7, &[seg(5, 0, 7), seg(6, 3, 5)]);
    assert_eq!(plan(&r, disk, &mut out), Ok(Some(Direction::FromDisk)));
    assert_eq!(
        out,
        [
            Copy { gref: 5, grant_offset: 0, disk_offset: 7 * 512, len: 512 },
            Copy { gref: 5, grant_offset: 512, disk_offset: 4096, len: 3584 },
            Copy { gref: 6, grant_offset: 3 * 512, disk_offset: 15 * 512, len: 512 },
            Copy { gref: 6, grant_offset: 4 * 512, disk_offset: 16 * 512, len: 1024 },
        ]
    );
    // An aligned page is one copy; a refusal leaves the plan empty.
    let r = req(BLKIF_OP_WRITE, 2, 8, &[seg(1, 0, 7)]);
    assert_eq!(plan(&r, disk, &mut out), Ok(Some(Direction::ToDisk)));
    assert_eq!(out, [Copy { gref: 1, grant_offset: 0, disk_offset: 4096, len: 4096 }]);
    let r = req(BLKIF_OP_WRITE, 3, 0, &[seg(1, 0, 7), seg(2, 5, 4)]);
    assert_eq!(plan(&r, disk, &mut out), Err(BLKIF_RSP_ERROR));
    assert!(out.is_empty());
}

#[test]
fn plan_refuses_what_the_module_doc_lists() {
    let disk = DiskInfo { sectors: 64, read_only: false };
    let ro = DiskInfo { sectors: 64, read_only: true };
    let mut out = Vec::new();
    let mut check = |r: BlkifRequest, disk: DiskInfo| plan(&r, disk, &mut out);
    let full = seg(1, 0, 7);
    assert_eq!(check(req(BLKIF_OP_READ, 0, 0, &[]), disk), Err(BLKIF_RSP_ERROR));
    let mut twelve = req(BLKIF_OP_READ, 0, 0, &[full; 11]);
    twelve.nr_segments = 12;
    assert_eq!(check(twelve, disk), Err(BLKIF_RSP_ERROR));
    twelve.nr_segments = 255;
    assert_eq!(check(twelve, disk), Err(BLKIF_RSP_ERROR));
    assert_eq!(check(req(BLKIF_OP_READ, 0, 0, &[seg(1, 4, 3)]), disk), Err(BLKIF_RSP_ERROR));
    assert_eq!(check(req(BLKIF_OP_READ, 0, 0, &[seg(1, 0, 8)]), disk), Err(BLKIF_RSP_ERROR));
    assert_eq!(check(req(BLKIF_OP_READ, 0, 0, &[seg(1, 8, 8)]), disk), Err(BLKIF_RSP_ERROR));
    assert_eq!(check(req(BLKIF_OP_READ, 0, 57, &[full]), disk), Err(BLKIF_RSP_ERROR));
    assert_eq!(check(req(BLKIF_OP_READ, 0, 56, &[full]), disk), Ok(Some(Direction::FromDisk)));
    assert_eq!(check(req(BLKIF_OP_READ, 0, u64::MAX - 2, &[full]), disk), Err(BLKIF_RSP_ERROR));
    let huge = DiskInfo { sectors: u64::MAX, read_only: false };
    assert_eq!(check(req(BLKIF_OP_READ, 0, u64::MAX - 8, &[full]), huge), Err(BLKIF_RSP_ERROR));
    assert_eq!(check(req(BLKIF_OP_WRITE, 0, 0, &[full]), ro), Err(BLKIF_RSP_ERROR));
    assert_eq!(check(req(BLKIF_OP_READ, 0, 0, &[full]), ro), Ok(Some(Direction::FromDisk)));
    assert_eq!(check(req(BLKIF_OP_FLUSH_DISKCACHE, 0, 0, &[]), ro), Ok(None));
    assert_eq!(check(req(BLKIF_OP_FLUSH_DISKCACHE, 0, 0, &[full]), disk), Err(BLKIF_RSP_ERROR));
    for op in [BLKIF_OP_WRITE_BARRIER, 4, BLKIF_OP_DISCARD, BLKIF_OP_INDIRECT, 7, 255] {
        assert_eq!(check(req(op, 0, 0, &[full]), disk), Err(BLKIF_RSP_EOPNOTSUPP), "op {op}");
    }
}

#[test]
fn write_then_read_back_the_whole_disk() {
    const SECTORS: u64 = 64;
    let page = RingPage::new();
    let mut copier = FakeCopier::new(SECTORS);
    let (mut front, mut back) = ends(&page, copier.info(false));
    // Segment shapes, cycled: partial pages, single sectors, full pages.
    const SHAPES: [(u8, u8); 6] = [(3, 5), (0, 7), (7, 7), (2, 6), (0, 0), (1, 7)];

    // Covers the disk with requests of 1..=11 segments; returns the
    // requests and, for each segment, its gref, first sector and length.
    let cover = |op: u8, gref_base: u32, shift: usize| {
        let mut reqs = Vec::new();
        let (mut sector, mut n, mut id) = (0u64, shift, 0u64);
        while sector < SECTORS {
            let start = sector;
            let mut segs = Vec::new();
            while segs.len() < 1 + (id as usize + shift) % 11 && sector < SECTORS {
                let (first, mut last) = SHAPES[n % SHAPES.len()];
                last = last.min(first + (SECTORS - sector - 1) as u8);
                segs.push(seg(gref_base + n as u32, first, last));
                sector += u64::from(last - first) + 1;
                n += 1;
            }
            reqs.push(req(op, id, start, &segs));
            id += 1;
        }
        reqs
    };

    // Write: each segment's page holds its own pattern.
    let writes = cover(BLKIF_OP_WRITE, 100, 0);
    assert!(writes.iter().any(|r| r.sector_number % 8 != 0), "some requests start mid-page");
    let mut expected = Vec::new();
    for r in &writes {
        for s in &r.seg[..r.nr_segments as usize] {
            let data = pattern(s.gref, 0x5a);
            copier.grants.insert(s.gref, data);
            expected.extend_from_slice(&data[s.first_sect as usize * 512..(s.last_sect as usize + 1) * 512]);
        }
    }
    assert_eq!(expected.len() as u64, SECTORS * 512);
    for chunk in writes.chunks(8) {
        submit(&mut front, chunk);
        let served = back.serve(&mut copier, 32).unwrap();
        assert_eq!((served.answered, served.failed), (chunk.len() as u32, 0));
        let rsps = responses(&mut front);
        assert_eq!(
            rsps.iter().map(|r| (r.id, r.status)).collect::<Vec<_>>(),
            chunk.iter().map(|r| (r.id, 0)).collect::<Vec<_>>()
        );
    }
    assert_eq!(copier.disk_bytes(), expected);

    // Read back with another segmentation into pages full of 0xee: the
    // sectors outside first_sect..=last_sect are left alone.
    let reads = cover(BLKIF_OP_READ, 500, 3);
    for r in &reads {
        for s in &r.seg[..r.nr_segments as usize] {
            copier.grants.insert(s.gref, [0xee; PAGE_BYTES]);
        }
    }
    for chunk in reads.chunks(5) {
        submit(&mut front, chunk);
        let served = back.serve(&mut copier, 32).unwrap();
        assert_eq!((served.answered, served.failed), (chunk.len() as u32, 0));
        assert!(responses(&mut front).iter().all(|r| r.status == BLKIF_RSP_OKAY && r.operation == BLKIF_OP_READ));
    }
    let mut read = Vec::new();
    for r in &reads {
        for s in &r.seg[..r.nr_segments as usize] {
            let page = &copier.grants[&s.gref];
            let (lo, hi) = (s.first_sect as usize * 512, (s.last_sect as usize + 1) * 512);
            assert!(page[..lo].iter().chain(&page[hi..]).all(|&b| b == 0xee), "gref {}", s.gref);
            read.extend_from_slice(&page[lo..hi]);
        }
    }
    assert_eq!(read, expected);
    let stats = back.stats();
    assert_eq!((stats.sectors_written, stats.sectors_read, stats.errors), (SECTORS, SECTORS, 0));
    assert_eq!(stats.requests, (writes.len() + reads.len()) as u64);
}

#[test]
fn a_full_ring_is_answered_in_order_and_notifies_sanely() {
    let page = RingPage::new();
    let mut copier = FakeCopier::new(64);
    copier.grants.insert(1, [0; PAGE_BYTES]);
    let (mut front, mut back) = ends(&page, copier.info(false));
    let reqs: Vec<_> = (0..32).map(|i| req(BLKIF_OP_READ, 1000 + i, i, &[seg(1, 0, 0)])).collect();
    // SHARED_RING_INIT armed req_event = 1.
    assert!(submit(&mut front, &reqs));
    assert!(front.is_full());
    let served = back.serve(&mut copier, 100).unwrap();
    // rsp_event = 1 lies among the 32 new responses.
    assert_eq!(served, Served { answered: 32, failed: 0, notify: true, more: false });
    let ids: Vec<u64> = responses(&mut front).iter().map(|r| r.id).collect();
    assert_eq!(ids, (1000..1032).collect::<Vec<_>>());

    // The backend's final check re-armed req_event; the frontend re-arms
    // rsp_event before sleeping: the next round notifies both ways.
    assert!(!front.final_check_for_responses());
    assert!(submit(&mut front, &[req(BLKIF_OP_READ, 7, 0, &[seg(1, 0, 0)])]));
    assert_eq!(back.serve(&mut copier, 100).unwrap(), Served { answered: 1, failed: 0, notify: true, more: false });
    assert_eq!(responses(&mut front).len(), 1);
    // A frontend that did not re-arm rsp_event is not notified again.
    assert!(submit(&mut front, &[req(BLKIF_OP_READ, 8, 0, &[seg(1, 0, 0)])]));
    assert_eq!(back.serve(&mut copier, 100).unwrap(), Served { answered: 1, failed: 0, notify: false, more: false });
    assert_eq!(responses(&mut front)[0].id, 8);
    // Nothing to do: nothing answered, nothing to notify.
    assert_eq!(back.serve(&mut copier, 100).unwrap(), Served::default());
}

#[test]
fn out_of_range_requests_fail_and_leave_the_disk_alone() {
    let page = RingPage::new();
    let mut copier = FakeCopier::new(64);
    copier.grants.insert(1, [0xab; PAGE_BYTES]);
    let (mut front, mut back) = ends(&page, copier.info(false));
    let full = seg(1, 0, 7);
    for sector in [57, 63, 64, 1 << 40, u64::MAX / 512 + 1, u64::MAX - 7, u64::MAX] {
        let status = one(&mut front, &mut back, &mut copier, req(BLKIF_OP_WRITE, sector, sector, &[full]));
        assert_eq!(status, BLKIF_RSP_ERROR, "sector {sector}");
    }
    // The range is the whole request's: the second segment runs past.
    let status = one(&mut front, &mut back, &mut copier, req(BLKIF_OP_WRITE, 1, 50, &[full, full]));
    assert_eq!(status, BLKIF_RSP_ERROR);
    assert!(copier.disk_bytes().iter().all(|&b| b == 0));
    // The last sector itself is in range.
    assert_eq!(one(&mut front, &mut back, &mut copier, req(BLKIF_OP_WRITE, 2, 63, &[seg(1, 7, 7)])), 0);
    assert!(copier.disk_bytes()[63 * 512..].iter().all(|&b| b == 0xab));
    assert_eq!(back.stats(), Stats { requests: 9, errors: 8, sectors_read: 0, sectors_written: 1 });
}

#[test]
fn bad_requests_get_their_status() {
    let page = RingPage::new();
    let mut copier = FakeCopier::new(64);
    copier.grants.insert(1, [0xab; PAGE_BYTES]);
    let (mut front, mut back) = ends(&page, copier.info(false));
    let full = seg(1, 0, 7);
    let mut twelve = req(BLKIF_OP_WRITE, 0, 0, &[seg(1, 0, 0); 11]);
    twelve.nr_segments = 12;
    let cases = [
        (req(BLKIF_OP_WRITE, 0, 0, &[]), BLKIF_RSP_ERROR),
        (twelve, BLKIF_RSP_ERROR),
        (req(BLKIF_OP_WRITE, 0, 0, &[full, seg(1, 5, 3)]), BLKIF_RSP_ERROR),
        (req(BLKIF_OP_WRITE, 0, 0, &[seg(1, 0, 8)]), BLKIF_RSP_ERROR),
        (req(BLKIF_OP_FLUSH_DISKCACHE, 0, 0, &[full]), BLKIF_RSP_ERROR),
        (req(BLKIF_OP_WRITE_BARRIER, 0, 0, &[full]), BLKIF_RSP_EOPNOTSUPP),
        (req(BLKIF_OP_DISCARD, 0, 0, &[]), BLKIF_RSP_EOPNOTSUPP),
        (req(BLKIF_OP_INDIRECT, 0, 0, &[full]), BLKIF_RSP_EOPNOTSUPP),
        (req(200, 0, 0, &[]), BLKIF_RSP_EOPNOTSUPP),
        (req(BLKIF_OP_FLUSH_DISKCACHE, 0, 0, &[]), BLKIF_RSP_OKAY),
    ];
    let reqs: Vec<_> = cases.iter().enumerate().map(|(i, (r, _))| BlkifRequest { id: i as u64, ..*r }).collect();
    submit(&mut front, &reqs);
    let served = back.serve(&mut copier, 32).unwrap();
    assert_eq!((served.answered, served.failed), (10, 9));
    let got: Vec<_> = responses(&mut front).iter().map(|r| (r.id, r.operation, r.status)).collect();
    let want: Vec<_> = cases.iter().enumerate().map(|(i, (r, s))| (i as u64, r.operation, *s)).collect();
    assert_eq!(got, want);
    assert!(copier.disk_bytes().iter().all(|&b| b == 0));
    assert_eq!(back.stats(), Stats { requests: 10, errors: 9, sectors_read: 0, sectors_written: 0 });
}

#[test]
fn a_read_only_disk_refuses_writes_only() {
    let page = RingPage::new();
    let mut copier = FakeCopier::new(16);
    copier.disk[1] = pattern(9, 1);
    copier.grants.insert(1, [0xab; PAGE_BYTES]);
    let (mut front, mut back) = ends(&page, copier.info(true));
    assert_eq!(one(&mut front, &mut back, &mut copier, req(BLKIF_OP_WRITE, 1, 8, &[seg(1, 0, 7)])), BLKIF_RSP_ERROR);
    assert_eq!(copier.disk[1], pattern(9, 1));
    assert_eq!(one(&mut front, &mut back, &mut copier, req(BLKIF_OP_READ, 2, 8, &[seg(1, 0, 7)])), BLKIF_RSP_OKAY);
    assert_eq!(copier.grants[&1], pattern(9, 1));
    assert_eq!(one(&mut front, &mut back, &mut copier, req(BLKIF_OP_FLUSH_DISKCACHE, 3, 0, &[])), BLKIF_RSP_OKAY);
}

#[test]
fn a_bad_grant_fails_its_request_only() {
    let page = RingPage::new();
    let mut copier = FakeCopier::new(64);
    copier.grants.insert(1, pattern(1, 0));
    copier.grants.insert(2, pattern(2, 0));
    let (mut front, mut back) = ends(&page, copier.info(false));
    let reqs = [
        req(BLKIF_OP_WRITE, 10, 0, &[seg(1, 0, 7)]),
        req(BLKIF_OP_WRITE, 11, 8, &[seg(2, 0, 7), seg(99, 0, 7)]),
        req(BLKIF_OP_READ, 12, 0, &[seg(2, 0, 7)]),
    ];
    submit(&mut front, &reqs);
    let served = back.serve(&mut copier, 32).unwrap();
    assert_eq!((served.answered, served.failed), (3, 1));
    let got: Vec<_> = responses(&mut front).iter().map(|r| (r.id, r.status)).collect();
    assert_eq!(got, [(10, BLKIF_RSP_OKAY), (11, BLKIF_RSP_ERROR), (12, BLKIF_RSP_OKAY)]);
    assert_eq!(copier.grants[&2], pattern(1, 0));
    assert_eq!(back.stats(), Stats { requests: 3, errors: 1, sectors_read: 8, sectors_written: 8 });
}

#[test]
fn a_producer_running_ahead_breaks_the_connection() {
    let page = RingPage::new();
    let mut copier = FakeCopier::new(64);
    copier.grants.insert(1, [0; PAGE_BYTES]);
    let (mut front, mut back) = ends(&page, copier.info(false));
    assert_eq!(one(&mut front, &mut back, &mut copier, req(BLKIF_OP_READ, 1, 0, &[seg(1, 0, 0)])), 0);
    // The frontend writes req_prod = rsp_prod + 1000, as another domain
    // could: through a second view attached at that index.
    submit(&mut front, &[req(BLKIF_OP_READ, 2, 0, &[seg(1, 0, 0)])]);
    FrontRing::<BlkifRequest, BlkifResponse>::attach(BlkifSring::new(&page), 1 + 1000).push_requests();
    let broken = back.serve(&mut copier, 32).unwrap_err();
    assert_eq!(broken, Broken::ProducerAhead { req_prod: 1001, rsp_prod: 1 });
    assert_eq!(broken.to_string(), "the frontend's req_prod 1001 is more than a ring ahead of rsp_prod 1");
    assert_eq!(front.sring().header().rsp_prod, 1);
    assert_eq!(front.pop_response(), None);
    assert_eq!(back.stats().requests, 1);
    // So is one running behind what was answered (it wrapped).
    FrontRing::<BlkifRequest, BlkifResponse>::attach(BlkifSring::new(&page), 0).push_requests();
    assert_eq!(back.serve(&mut copier, 32), Err(Broken::ProducerAhead { req_prod: 0, rsp_prod: 1 }));
    // Exactly a ring ahead is busy, not broken.
    FrontRing::<BlkifRequest, BlkifResponse>::attach(BlkifSring::new(&page), 1 + 32).push_requests();
    assert_eq!(back.serve(&mut copier, 32).unwrap().answered, 32);
}

#[test]
fn a_budget_bounds_one_serve() {
    let page = RingPage::new();
    let mut copier = FakeCopier::new(64);
    copier.grants.insert(1, [0; PAGE_BYTES]);
    let (mut front, mut back) = ends(&page, copier.info(false));
    let reqs: Vec<_> = (0..32).map(|i| req(BLKIF_OP_READ, i, i, &[seg(1, 0, 0)])).collect();
    submit(&mut front, &reqs);
    assert_eq!(back.serve(&mut copier, 5).unwrap(), Served { answered: 5, failed: 0, notify: true, more: true });
    assert_eq!(responses(&mut front).len(), 5);
    assert_eq!(back.serve(&mut copier, 0).unwrap(), Served { answered: 0, failed: 0, notify: false, more: true });
    let served = back.serve(&mut copier, 100).unwrap();
    assert_eq!((served.answered, served.more), (27, false));
    assert_eq!(responses(&mut front).iter().map(|r| r.id).collect::<Vec<_>>(), (5..32).collect::<Vec<_>>());
    // A budget used up exactly still leaves req_event armed.
    submit(&mut front, &reqs[..3]);
    assert!(!back.serve(&mut copier, 3).unwrap().more);
    assert!(submit(&mut front, &reqs[..1]));
}

/// Marsaglia's xorshift64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A request's bytes: noise, or noise nudged towards a valid request.
    fn request(&mut self) -> [u8; 112] {
        let mut b: [u8; 112] = core::array::from_fn(|_| self.next() as u8);
        if self.below(4) > 0 {
            b[0] = [BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_OP_FLUSH_DISKCACHE][self.below(3) as usize];
            b[1] = self.below(13) as u8;
            b[16..24].copy_from_slice(&self.below(80).to_le_bytes());
            for s in 0..11 {
                let at = 24 + 8 * s;
                b[at..at + 4].copy_from_slice(&(self.below(6) as u32).to_le_bytes());
                b[at + 4] = self.below(9) as u8;
                b[at + 5] = b[at + 4].saturating_add(self.below(4) as u8);
            }
        }
        b
    }
}

#[test]
fn random_requests_never_panic_and_each_gets_one_response() {
    let page = RingPage::new();
    // The frontend writes raw bytes; the backend reads blkif requests.
    let mut front = FrontRing::new(Sring::<[u8; 112], BlkifResponse>::new(&page));
    let mut copier = FakeCopier::new(64);
    for gref in 0..5 {
        copier.grants.insert(gref, pattern(gref, 0));
    }
    let mut back = Blkback::new(BlkifSring::new(&page), copier.info(false));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut in_flight = std::collections::VecDeque::new();
    let (mut answered, mut failed) = (0u64, 0u64);
    for _ in 0..3000 {
        for _ in 0..rng.below(u64::from(front.free_requests()) + 1) {
            let bytes = rng.request();
            front.push_request(bytes).unwrap();
            let id = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
            in_flight.push_back((id, bytes[0]));
        }
        front.push_requests();
        let served = back.serve(&mut copier, rng.below(40) as u32).unwrap();
        assert!(served.failed <= served.answered);
        answered += u64::from(served.answered);
        failed += u64::from(served.failed);
        let rsps: Vec<_> = core::iter::from_fn(|| front.pop_response()).collect();
        assert_eq!(rsps.len(), served.answered as usize);
        for rsp in rsps {
            assert_eq!(Some((rsp.id, rsp.operation)), in_flight.pop_front());
            assert!([BLKIF_RSP_OKAY, BLKIF_RSP_ERROR, BLKIF_RSP_EOPNOTSUPP].contains(&rsp.status));
        }
        assert_eq!(served.more, !in_flight.is_empty());
    }
    let stats = back.stats();
    assert_eq!((stats.requests, stats.errors), (answered, failed));
    // The generator reaches both outcomes.
    assert!(failed > 0 && failed < answered, "{failed} of {answered}");
    assert!(stats.sectors_read > 0 && stats.sectors_written > 0);
}

#[test]
fn random_plans_keep_their_promises() {
    let mut rng = Rng(12345);
    let mut out = Vec::new();
    for _ in 0..20_000 {
        let bytes = rng.request();
        let mut r = BlkifRequest {
            operation: bytes[0],
            nr_segments: bytes[1],
            sector_number: u64::from_le_bytes(bytes[16..24].try_into().unwrap()),
            ..Default::default()
        };
        for (s, chunk) in r.seg.iter_mut().zip(bytes[24..].chunks(8)) {
            *s = seg(u32::from_le_bytes(chunk[..4].try_into().unwrap()), chunk[4], chunk[5]);
        }
        let disk = DiskInfo { sectors: rng.below(100), read_only: rng.below(2) == 0 };
        let Ok(Some(_)) = plan(&r, disk, &mut out) else {
            assert!(out.is_empty());
            continue;
        };
        // Contiguous on the disk from sector_number, inside it, each copy
        // inside one grant page and one disk page.
        let mut at = r.sector_number * 512;
        for c in &out {
            assert_eq!(c.disk_offset, at);
            assert!(c.len > 0 && c.len % 512 == 0);
            assert!(usize::from(c.grant_offset) + usize::from(c.len) <= PAGE_BYTES);
            assert_eq!(c.disk_offset / 4096, (c.disk_offset + u64::from(c.len) - 1) / 4096);
            at += u64::from(c.len);
        }
        let sectors: u64 =
            r.seg[..r.nr_segments as usize].iter().map(|s| u64::from(s.last_sect - s.first_sect) + 1).sum();
        assert_eq!(at, (r.sector_number + sectors) * 512);
        assert!(at <= disk.sectors * 512);
    }
}
