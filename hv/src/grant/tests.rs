//! Host tests of grant tables (SPEC §3.14), over the fake machine of the
//! hypercall tests: a real frame table and page-type engine, domain 1 as
//! the mapper (with a validated page-table tree mapping [`VA`]) and domain
//! 7 as the granter, unless a test says otherwise.

use super::*;
use crate::guest::{self, GuestPtr};
use crate::hypercall::testing::{World, MEM_BASE};
use crate::hypercall::Platform;
use crate::mm::pagetype::Level;
use crate::testing::kernel_tree::{world, L1, VA};
use abi::errno::Errno;
use abi::hypercall::{GRANT_TABLE_OP, MMU_UPDATE, UPDATE_VA_MAPPING};

/// Another address in the fixture's L1 (the mapper maps grants at
/// [`VA`] and here).
const VA2: u64 = VA + 0x1000;
/// The mapper.
const MAPPER: DomId = 1;
/// The granter (owns frames 80..96).
const GRANTER: DomId = 7;
/// Frames of the granter's it grants.
const DATA: Mfn = 85;
const DATA2: Mfn = 86;
/// A frame of the mapper's own.
const OWN: Mfn = 40;

fn granter() -> Domain {
    Domain::new(GRANTER, false)
}

/// Gives `d` a table of `frames` frames; returns them.
fn setup(w: &mut World, d: &Domain, frames: u32) -> Vec<Mfn> {
    let f = setup_table(&mut w.platform, d, DOMID_SELF, frames).expect("setup_table");
    f[..frames as usize].to_vec()
}

/// Writes entry `gref` of the table in `frames` as the granter would.
fn write_entry(w: &mut World, frames: &[Mfn], gref: u32, flags: u16, domid: DomId, frame: Mfn) {
    let shared = frames[(gref / ENTRIES_PER_FRAME) as usize];
    w.platform.mem.entries(shared)[(gref % ENTRIES_PER_FRAME) as usize] =
        u64::from(flags) | u64::from(domid) << 16 | frame << 32;
}

fn entry(w: &mut World, frames: &[Mfn], gref: u32) -> u64 {
    let shared = frames[(gref / ENTRIES_PER_FRAME) as usize];
    w.platform.mem.entries(shared)[(gref % ENTRIES_PER_FRAME) as usize]
}

fn entry_flags(w: &mut World, frames: &[Mfn], gref: u32) -> u16 {
    entry(w, frames, gref) as u16
}

/// The granter's table with `gref` granting `frame` to the mapper.
fn granted(w: &mut World, gref: u32, frame: Mfn, flags: u16) -> Vec<Mfn> {
    let frames = setup(w, &granter(), 1);
    write_entry(w, &frames, gref, GTF_PERMIT_ACCESS | flags, MAPPER, frame);
    frames
}

fn req(gref: u32, dom: DomId, flags: u32, host_addr: u64) -> MapRequest {
    MapRequest { host_addr, flags, gref, dom }
}

fn map_as(w: &mut World, r: MapRequest) -> Result<Mapped, GrantError> {
    map(&mut w.platform, &w.domain, &r)
}

fn unmap_as(w: &mut World, handle: u32, host_addr: u64) -> Result<(), GrantError> {
    unmap(&mut w.platform, &w.domain, handle, host_addr)
}

fn l1e(w: &mut World, va: u64) -> u64 {
    w.platform.mem.entries(L1)[index(va, 1)]
}

fn refs(w: &World, mfn: Mfn) -> (u32, u32, PageType) {
    let t = w.platform.frames.types(mfn);
    (t.refs(), t.type_count(), t.page_type())
}

fn hv_frames(w: &World) -> u64 {
    w.platform.frames.stats().hypervisor
}

/// Byte `i` of frame `mfn`.
fn byte(w: &mut World, mfn: Mfn, i: usize) -> u8 {
    w.platform.mem.entries(mfn)[i / 8].to_le_bytes()[i % 8]
}

fn fill(w: &mut World, mfn: Mfn, seed: u64) {
    for (i, x) in w.platform.mem.entries(mfn).iter_mut().enumerate() {
        *x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64;
    }
}

// ---- setup_table, query_size, set_version --------------------------------

#[test]
fn a_table_starts_with_one_empty_frame_and_grows_to_four() {
    let mut w = world();
    let g = granter();
    assert_eq!(query_size(&mut w.platform, &g, DOMID_SELF), Ok((1, MAX_FRAMES)));
    let hv_before = hv_frames(&w);
    assert_eq!(setup_table(&mut w.platform, &g, DOMID_SELF, 0), Ok([0; 4]), "nothing asked, nothing made");
    assert_eq!(hv_frames(&w), hv_before);
    let one = setup(&mut w, &g, 1);
    assert_eq!(query_size(&mut w.platform, &g, DOMID_SELF), Ok((1, MAX_FRAMES)));
    let four = setup(&mut w, &g, 4);
    assert_eq!(four[0], one[0], "growing keeps the first frame");
    assert_eq!(query_size(&mut w.platform, &g, GRANTER), Ok((4, MAX_FRAMES)));
    assert_eq!(setup(&mut w, &g, 2), four[..2], "asking for fewer returns the first ones");
    // Root, and one active frame per shared frame.
    assert_eq!(hv_frames(&w), hv_before + 1 + 4);
    for &f in &four {
        assert_eq!(w.platform.frames.usage(f), FrameUse::Domain(GRANTER));
        assert_eq!(refs(&w, f), (1, 1, PageType::Writable), "the table's reference on {f}");
        assert_eq!(w.platform.mem.entries(f), &[0; 512], "a new table frame is zeroed");
        assert_eq!(Platform::release_domain_frame(&mut w.platform, GRANTER, f), Err(Errno::EINVAL));
        let pinned = with_page_types(&mut w.platform, Ok(()), |pt| pt.pin(GRANTER, f, Level::L1));
        assert!(pinned.is_err(), "a table frame never becomes a page table");
    }
    assert_eq!(setup_table(&mut w.platform, &g, DOMID_SELF, MAX_FRAMES + 1), Err(GrantError::General));
    assert_eq!(query_size(&mut w.platform, &g, DOMID_SELF), Ok((4, MAX_FRAMES)), "a refusal changes nothing");
}

#[test]
fn another_domains_table_needs_privilege_and_existence() {
    let mut w = world();
    let me = w.domain.clone();
    assert_eq!(query_size(&mut w.platform, &me, GRANTER), Err(GrantError::PermissionDenied));
    assert_eq!(setup_table(&mut w.platform, &me, GRANTER, 1), Err(GrantError::PermissionDenied));
    assert_eq!(query_size(&mut w.platform, &me, 5), Err(GrantError::BadDomain));
    assert_eq!(query_size(&mut w.platform, &me, MAPPER), Ok((1, MAX_FRAMES)), "its own id is itself");
    let dom0 = Domain::new(0, true);
    assert!(setup_table(&mut w.platform, &dom0, GRANTER, 1).is_ok());
    assert_eq!(query_size(&mut w.platform, &me, DOMID_SELF), Ok((1, MAX_FRAMES)));
    assert_eq!(query_size(&mut w.platform, &dom0, 5), Err(GrantError::BadDomain));
}

#[test]
fn out_of_memory_is_a_status_and_leaks_nothing() {
    let mut w = world();
    let g = granter();
    let stats = w.platform.frames.stats();
    w.platform.grants.hv_frames_left = Some(2);
    // Root and one active frame fit, the second active frame does not.
    assert_eq!(setup_table(&mut w.platform, &g, DOMID_SELF, 2), Err(GrantError::General));
    assert_eq!(query_size(&mut w.platform, &g, DOMID_SELF), Ok((1, MAX_FRAMES)));
    assert_eq!(w.platform.frames.stats().domain, stats.domain, "no shared frame kept");
    assert_eq!(hv_frames(&w), stats.hypervisor + 1, "only the (empty) root is kept");
    w.platform.grants.hv_frames_left = Some(0);
    assert_eq!(map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)), Err(GrantError::NoDeviceSpace));
    w.platform.grants.hv_frames_left = None;
    release_domain(&mut w.platform, GRANTER);
    assert_eq!(w.platform.frames.stats(), stats);
}

#[test]
fn set_version_offers_version_1_only() {
    let mut w = world();
    for (ask, ret) in
        [(1u32, 0i64), (2, Errno::ENOSYS.as_ret()), (0, Errno::EINVAL.as_ret()), (3, Errno::EINVAL.as_ret())]
    {
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &ask).unwrap();
        w.call(GRANT_TABLE_OP, &[GNTTABOP_SET_VERSION.into(), MEM_BASE, 1]);
        assert_eq!(w.ret(), ret, "version {ask}");
        assert_eq!(guest::read_obj::<u32, _>(&mut w.mem, GuestPtr(MEM_BASE)).unwrap(), 1, "version in effect");
    }
}

// ---- map_grant_ref and unmap_grant_ref -----------------------------------

#[test]
fn a_writable_mapping_sets_both_flags_and_holds_the_frame() {
    let mut w = world();
    let t = granted(&mut w, 3, DATA, 0);
    let m = map_as(&mut w, req(3, GRANTER, GNTMAP_HOST_MAP, VA)).unwrap();
    assert_eq!(m.dev_bus_addr, DATA << 12);
    assert_eq!(entry_flags(&mut w, &t, 3), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
    let e = l1e(&mut w, VA);
    assert_eq!(e & (pte::ADDR | pte::P | pte::RW | pte::U), (DATA << 12) | pte::P | pte::RW | pte::U);
    assert_eq!(refs(&w, DATA), (1, 1, PageType::Writable));
    assert_eq!(pins(&mut w.platform, GRANTER, 3), Some((MAPPER, 1, 0, DATA)));
    // While mapped: not given back, not made a page table.
    assert_eq!(Platform::release_domain_frame(&mut w.platform, GRANTER, DATA), Err(Errno::EINVAL));
    assert!(with_page_types(&mut w.platform, Ok(()), |pt| pt.pin(GRANTER, DATA, Level::L1)).is_err());
    assert_eq!(mappings(&mut w.platform, MAPPER), 1);

    assert_eq!(unmap_as(&mut w, m.handle, VA), Ok(()));
    assert_eq!(l1e(&mut w, VA), 0);
    assert_eq!(entry_flags(&mut w, &t, 3), GTF_PERMIT_ACCESS, "both flags cleared, the rest kept");
    assert_eq!(refs(&w, DATA), (0, 0, PageType::None));
    assert_eq!(pins(&mut w.platform, GRANTER, 3), None);
    assert!(w.platform.flushes.contains(&Some(VA)), "the unmapped address is flushed");
    assert_eq!(unmap_as(&mut w, m.handle, VA), Err(GrantError::BadHandle), "a handle is used once");
    assert_eq!(Platform::release_domain_frame(&mut w.platform, GRANTER, DATA), Ok(()));
}

#[test]
fn read_only_grants_map_read_only() {
    let mut w = world();
    let t = granted(&mut w, 4, DATA, GTF_READONLY);
    assert_eq!(map_as(&mut w, req(4, GRANTER, GNTMAP_HOST_MAP, VA)), Err(GrantError::General), "RW of an RO grant");
    assert_eq!(entry_flags(&mut w, &t, 4), GTF_PERMIT_ACCESS | GTF_READONLY, "nothing left set");
    let m = map_as(&mut w, req(4, GRANTER, GNTMAP_HOST_MAP | GNTMAP_READONLY, VA)).unwrap();
    assert_eq!(entry_flags(&mut w, &t, 4), GTF_PERMIT_ACCESS | GTF_READONLY | GTF_READING);
    assert_eq!(l1e(&mut w, VA) & (pte::P | pte::RW), pte::P);
    assert_eq!(refs(&w, DATA), (1, 0, PageType::None), "a read-only mapping takes no writable type");
    // Pinned now, the entry's flags are not looked at again except for
    // a writable pin of a read-only grant.
    assert_eq!(map_as(&mut w, req(4, GRANTER, GNTMAP_HOST_MAP, VA2)), Err(GrantError::General));
    assert_eq!(pins(&mut w.platform, GRANTER, 4), Some((MAPPER, 0, 1, DATA)));
    assert_eq!(unmap_as(&mut w, m.handle, VA), Ok(()));
    assert_eq!(entry_flags(&mut w, &t, 4), GTF_PERMIT_ACCESS | GTF_READONLY);
}

#[test]
fn read_only_and_writable_pins_count_separately() {
    let mut w = world();
    let t = granted(&mut w, 5, DATA, 0);
    let ro = map_as(&mut w, req(5, GRANTER, GNTMAP_HOST_MAP | GNTMAP_READONLY, VA)).unwrap();
    assert_eq!(entry_flags(&mut w, &t, 5), GTF_PERMIT_ACCESS | GTF_READING);
    let rw = map_as(&mut w, req(5, GRANTER, GNTMAP_HOST_MAP, VA2)).unwrap();
    assert_eq!(entry_flags(&mut w, &t, 5), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
    assert_ne!(ro.handle, rw.handle);
    assert_eq!(pins(&mut w.platform, GRANTER, 5), Some((MAPPER, 1, 1, DATA)));
    assert_eq!(refs(&w, DATA), (2, 1, PageType::Writable));
    assert_eq!(unmap_as(&mut w, rw.handle, VA2), Ok(()));
    assert_eq!(entry_flags(&mut w, &t, 5), GTF_PERMIT_ACCESS | GTF_READING, "writing goes with the last RW pin");
    assert_eq!(unmap_as(&mut w, ro.handle, VA), Ok(()));
    assert_eq!(entry_flags(&mut w, &t, 5), GTF_PERMIT_ACCESS);
    assert_eq!(refs(&w, DATA), (0, 0, PageType::None));
}

#[test]
fn the_entry_must_grant_the_mapper_this_access() {
    let mut w = world();
    let t = setup(&mut w, &granter(), 1);
    let cases: [(&str, u16, DomId); 6] = [
        ("invalid", GTF_INVALID, MAPPER),
        ("accept_transfer", GTF_ACCEPT_TRANSFER, MAPPER),
        ("transitive", GTF_TRANSITIVE, MAPPER),
        ("sub_page", GTF_PERMIT_ACCESS | GTF_SUB_PAGE, MAPPER),
        ("granted to domain 2", GTF_PERMIT_ACCESS, 2),
        ("granted to DOMID_SELF", GTF_PERMIT_ACCESS, DOMID_SELF),
    ];
    for (i, (what, flags, domid)) in cases.into_iter().enumerate() {
        let gref = 10 + i as u32;
        write_entry(&mut w, &t, gref, flags, domid, DATA);
        assert_eq!(map_as(&mut w, req(gref, GRANTER, GNTMAP_HOST_MAP, VA)), Err(GrantError::General), "{what}");
        assert_eq!(entry_flags(&mut w, &t, gref), flags, "{what}: flags untouched");
    }
    assert_eq!(l1e(&mut w, VA), 0);
    assert_eq!(refs(&w, DATA), (0, 0, PageType::None));
}

#[test]
fn references_beyond_the_table_are_bad_gntref() {
    let mut w = world();
    // No table yet: one empty frame, so 0..512 exist but grant nothing.
    assert_eq!(map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)), Err(GrantError::General));
    assert_eq!(map_as(&mut w, req(511, GRANTER, GNTMAP_HOST_MAP, VA)), Err(GrantError::General));
    assert_eq!(map_as(&mut w, req(512, GRANTER, GNTMAP_HOST_MAP, VA)), Err(GrantError::BadGntref));
    let t = setup(&mut w, &granter(), 2);
    write_entry(&mut w, &t, 1023, GTF_PERMIT_ACCESS, MAPPER, DATA);
    let m = map_as(&mut w, req(1023, GRANTER, GNTMAP_HOST_MAP, VA)).unwrap();
    assert_eq!(map_as(&mut w, req(1024, GRANTER, GNTMAP_HOST_MAP, VA2)), Err(GrantError::BadGntref));
    assert_eq!(map_as(&mut w, req(u32::MAX, GRANTER, GNTMAP_HOST_MAP, VA2)), Err(GrantError::BadGntref));
    assert_eq!(unmap_as(&mut w, m.handle, VA), Ok(()));
}

#[test]
fn flags_and_domains_are_checked_in_xens_order() {
    let mut w = world();
    granted(&mut w, 0, DATA, 0);
    assert_eq!(map_as(&mut w, req(0, GRANTER, 0, VA)), Err(GrantError::BadGntref), "no kind of mapping");
    assert_eq!(map_as(&mut w, req(0, GRANTER, GNTMAP_READONLY, VA)), Err(GrantError::BadGntref));
    assert_eq!(map_as(&mut w, req(0, DOMID_SELF, GNTMAP_HOST_MAP, VA)), Err(GrantError::BadDomain));
    assert_eq!(map_as(&mut w, req(0, 5, GNTMAP_HOST_MAP, VA)), Err(GrantError::BadDomain));
    assert_eq!(map_as(&mut w, req(0, 5, 0, VA)), Err(GrantError::BadGntref), "flags before the domain");
    for flags in [GNTMAP_DEVICE_MAP, GNTMAP_HOST_MAP | GNTMAP_DEVICE_MAP, GNTMAP_HOST_MAP | GNTMAP_CONTAINS_PTE] {
        assert_eq!(map_as(&mut w, req(0, GRANTER, flags, VA)), Err(GrantError::General), "flags {flags:#x}");
    }
    assert_eq!(pins(&mut w.platform, GRANTER, 0), None);
    // Application mappings are user mappings anyway; the guest's bits go
    // into the entry's available bits.
    let flags = GNTMAP_HOST_MAP | GNTMAP_APPLICATION_MAP | (5 << GNTMAP_GUEST_AVAIL0);
    let m = map_as(&mut w, req(0, GRANTER, flags, VA)).unwrap();
    assert_eq!(l1e(&mut w, VA) & (7 << 9), 5 << 9);
    assert_eq!(unmap_as(&mut w, m.handle, VA), Ok(()));
}

#[test]
fn the_address_must_have_an_l1_of_the_mapper() {
    let mut w = world();
    let t = granted(&mut w, 0, DATA, 0);
    let no_l1 = VA + (4 << 21);
    for va in [no_l1, 0xffff_8300_0000_0000, 0x0000_8000_0000_0000, !0xfff] {
        assert_eq!(map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, va)), Err(GrantError::General), "{va:#x}");
        assert_eq!(entry_flags(&mut w, &t, 0), GTF_PERMIT_ACCESS, "{va:#x}: flags undone");
        assert_eq!(pins(&mut w.platform, GRANTER, 0), None);
    }
    // A domain with no page tables maps nothing.
    w.domain.vcpu.kernel_table = None;
    assert_eq!(map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)), Err(GrantError::General));
    assert_eq!(refs(&w, DATA), (0, 0, PageType::None));
}

#[test]
fn the_granted_frame_must_be_the_granters() {
    let mut w = world();
    let t = setup(&mut w, &granter(), 1);
    for (gref, frame) in [(0, OWN), (1, 3), (2, 100), (3, 200), (4, 1 << 31)] {
        write_entry(&mut w, &t, gref, GTF_PERMIT_ACCESS, MAPPER, frame);
        assert_eq!(map_as(&mut w, req(gref, GRANTER, GNTMAP_HOST_MAP, VA)), Err(GrantError::BadPage), "{frame}");
        assert_eq!(entry_flags(&mut w, &t, gref), GTF_PERMIT_ACCESS, "frame {frame}: flags undone");
    }
    assert_eq!(l1e(&mut w, VA), 0);
}

#[test]
fn a_page_table_is_granted_read_only_at_most() {
    let mut w = world();
    w.platform.page_types(&mut |pt| pt.pin(GRANTER, DATA, Level::L1).unwrap());
    let t = granted(&mut w, 0, DATA, 0);
    assert_eq!(map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)), Err(GrantError::General));
    assert_eq!(entry_flags(&mut w, &t, 0), GTF_PERMIT_ACCESS, "undone");
    assert_eq!(pins(&mut w.platform, GRANTER, 0), None);
    let m = map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP | GNTMAP_READONLY, VA)).unwrap();
    assert_eq!(unmap_as(&mut w, m.handle, VA), Ok(()));
}

#[test]
fn a_domain_may_map_its_own_grant() {
    let mut w = world();
    let me = w.domain.clone();
    let t = setup(&mut w, &me, 1);
    write_entry(&mut w, &t, 2, GTF_PERMIT_ACCESS, MAPPER, OWN);
    let m = map_as(&mut w, req(2, MAPPER, GNTMAP_HOST_MAP, VA)).unwrap();
    assert_eq!(entry_flags(&mut w, &t, 2), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
    assert_eq!(l1e(&mut w, VA) & pte::ADDR, OWN << 12);
    assert_eq!(unmap_as(&mut w, m.handle, VA), Ok(()));
    // Its own grant-table frame, too.
    write_entry(&mut w, &t, 3, GTF_PERMIT_ACCESS, MAPPER, t[0]);
    let m = map_as(&mut w, req(3, MAPPER, GNTMAP_HOST_MAP, VA)).unwrap();
    assert_eq!(unmap_as(&mut w, m.handle, VA), Ok(()));
    assert_eq!(refs(&w, t[0]), (1, 1, PageType::Writable), "only the table's own reference is left");
}

#[test]
fn a_pinned_entry_belongs_to_one_mapper() {
    let mut w = world();
    let t = granted(&mut w, 0, DATA, 0);
    let m = map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)).unwrap();
    // The granter re-grants the entry to domain 2 while domain 1 maps it.
    write_entry(&mut w, &t, 0, GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING, 2, DATA);
    let two = Domain::new(2, false);
    assert_eq!(map(&mut w.platform, &two, &req(0, GRANTER, GNTMAP_HOST_MAP, VA)), Err(GrantError::General));
    assert_eq!(unmap_as(&mut w, m.handle, VA), Ok(()));
}

#[test]
fn pin_counts_stop_before_they_overflow() {
    let mut w = world();
    granted(&mut w, 0, DATA, 0);
    // Each map replaces the last at the same address (dropping its
    // references), but every one is a pin and a handle.
    for i in 0..u32::from(PIN_LIMIT) {
        assert!(map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)).is_ok(), "map {i}");
    }
    assert_eq!(pins(&mut w.platform, GRANTER, 0), Some((MAPPER, PIN_LIMIT, 0, DATA)));
    assert_eq!(map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA2)), Err(GrantError::General));
    assert_eq!(
        map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP | GNTMAP_READONLY, VA2)),
        Err(GrantError::General),
        "any pin, once one count is full"
    );
    assert_eq!(refs(&w, DATA), (1, 1, PageType::Writable), "one entry maps it");
    release_domain(&mut w.platform, MAPPER);
    assert_eq!(pins(&mut w.platform, GRANTER, 0), None);
    assert_eq!(refs(&w, DATA), (0, 0, PageType::None));
}

#[test]
fn handles_are_reused_and_bounded() {
    let mut w = world();
    granted(&mut w, 0, DATA, 0);
    let hv = hv_frames(&w);
    for _ in 0..2 * MAPTRACK_PER_FRAME {
        let m = map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)).unwrap();
        assert_eq!(m.handle, 0, "the freed handle comes back");
        assert_eq!(unmap_as(&mut w, m.handle, VA), Ok(()));
    }
    assert_eq!(hv_frames(&w), hv + 2, "the mapper's root and one maptrack frame");
    // Fill every handle: 9 entries with 127 pins at most each.
    let t = setup(&mut w, &granter(), 1);
    for gref in 1..10 {
        write_entry(&mut w, &t, gref, GTF_PERMIT_ACCESS, MAPPER, DATA);
    }
    let mut n = 0;
    for gref in 0..10 {
        while n < MAX_HANDLES && map_as(&mut w, req(gref, GRANTER, GNTMAP_HOST_MAP, VA)).is_ok() {
            n += 1;
        }
    }
    assert_eq!(n, MAX_HANDLES);
    assert_eq!(map_as(&mut w, req(9, GRANTER, GNTMAP_HOST_MAP, VA)), Err(GrantError::NoDeviceSpace));
    assert_eq!(hv_frames(&w), hv + 1 + u64::from(MAX_MAPTRACK_FRAMES));
    assert_eq!(mappings(&mut w.platform, MAPPER), u64::from(MAX_HANDLES));
    release_domain(&mut w.platform, MAPPER);
    assert_eq!(hv_frames(&w), hv, "the mapper's state is gone");
    assert_eq!(refs(&w, DATA), (0, 0, PageType::None));
    for gref in 0..10 {
        assert_eq!(entry_flags(&mut w, &t, gref), GTF_PERMIT_ACCESS, "entry {gref}");
    }
}

#[test]
fn unmapping_needs_the_handle_the_address_and_the_mapping() {
    let mut w = world();
    granted(&mut w, 0, DATA, 0);
    let m = map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)).unwrap();
    for h in [m.handle + 1, MAPTRACK_PER_FRAME, MAX_HANDLES, u32::MAX] {
        assert_eq!(unmap_as(&mut w, h, VA), Err(GrantError::BadHandle), "handle {h}");
    }
    assert_eq!(unmap_as(&mut w, m.handle, VA2), Err(GrantError::General), "another address");
    assert_eq!(unmap_as(&mut w, m.handle, 0), Ok(()), "no address: nothing done, as Xen");
    assert_eq!(l1e(&mut w, VA) & pte::ADDR, DATA << 12, "still mapped");
    let other = Domain::new(2, false);
    assert_eq!(unmap(&mut w.platform, &other, m.handle, VA), Err(GrantError::BadHandle), "not its handle");
    // A device address is ignored for a host mapping, as by Xen 4.17.
    let op = GnttabUnmapGrantRef { host_addr: VA, dev_bus_addr: 0x1000, handle: m.handle, ..Default::default() };
    guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &op).unwrap();
    w.call(GRANT_TABLE_OP, &[GNTTABOP_UNMAP_GRANT_REF.into(), MEM_BASE, 1]);
    assert_eq!(w.ret(), 0);
    let back: GnttabUnmapGrantRef = guest::read_obj(&mut w.mem, GuestPtr(MEM_BASE)).unwrap();
    assert_eq!(back, GnttabUnmapGrantRef { status: GNTST_OKAY, ..op }, "only the status is written");
    assert_eq!(l1e(&mut w, VA), 0);
}

#[test]
fn a_grant_mapping_the_guest_overwrote_cannot_be_unmapped_by_handle() {
    let mut w = world();
    let t = granted(&mut w, 0, DATA, 0);
    let m = map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)).unwrap();
    // The guest clears the entry itself: the references go with it.
    w.call(UPDATE_VA_MAPPING, &[VA, 0, 0]);
    assert_eq!(w.ret(), 0);
    assert_eq!(refs(&w, DATA), (0, 0, PageType::None));
    assert_eq!(unmap_as(&mut w, m.handle, VA), Err(GrantError::General));
    // Nor can it put the granted frame back by hand.
    w.call(UPDATE_VA_MAPPING, &[VA, (DATA << 12) | pte::P, 0]);
    assert_eq!(w.ret(), Errno::EINVAL.as_ret());
    let req_ = abi::mm::MmuUpdate { ptr: (L1 << 12) + 8 * index(VA, 1) as u64, val: (DATA << 12) | pte::P };
    guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &req_).unwrap();
    w.call(MMU_UPDATE, &[MEM_BASE, 1, 0, DOMID_SELF.into()]);
    assert_eq!(w.ret(), Errno::EINVAL.as_ret());
    // The pin and flags stay until the mapper goes, as in Xen.
    assert_eq!(entry_flags(&mut w, &t, 0), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
    release_domain(&mut w.platform, MAPPER);
    assert_eq!(entry_flags(&mut w, &t, 0), GTF_PERMIT_ACCESS);
    assert_eq!(pins(&mut w.platform, GRANTER, 0), None);
}

#[test]
fn mapping_over_an_old_mapping_drops_its_references_and_flushes() {
    let mut w = world();
    let t = granted(&mut w, 0, DATA, 0);
    write_entry(&mut w, &t, 1, GTF_PERMIT_ACCESS, MAPPER, DATA2);
    let a = map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)).unwrap();
    w.platform.flushes.clear();
    let b = map_as(&mut w, req(1, GRANTER, GNTMAP_HOST_MAP, VA)).unwrap();
    assert_eq!(w.platform.flushes, [Some(VA)]);
    assert_eq!(refs(&w, DATA), (0, 0, PageType::None));
    assert_eq!(refs(&w, DATA2), (1, 1, PageType::Writable));
    assert_eq!(unmap_as(&mut w, a.handle, VA), Err(GrantError::General), "its entry is gone");
    assert_eq!(unmap_as(&mut w, b.handle, VA), Ok(()));
}

// ---- a hostile granter -----------------------------------------------------

#[test]
fn an_entry_that_keeps_changing_is_given_up_on() {
    let mut w = world();
    let t = granted(&mut w, 0, DATA, 0);
    // The granter flips a harmless bit before each of five attempts.
    w.platform.grants.races.extend([u32::from(GTF_PWT); 5]);
    assert_eq!(map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)), Err(GrantError::General));
    assert_eq!(entry_flags(&mut w, &t, 0) & (GTF_READING | GTF_WRITING), 0);
    assert_eq!(pins(&mut w.platform, GRANTER, 0), None);
    assert_eq!(l1e(&mut w, VA), 0);
    // Four times: the fifth attempt sees it settled and succeeds.
    write_entry(&mut w, &t, 0, GTF_PERMIT_ACCESS, MAPPER, DATA);
    w.platform.grants.races.extend([u32::from(GTF_PWT); 4]);
    let m = map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)).unwrap();
    assert_eq!(entry_flags(&mut w, &t, 0), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
    assert_eq!(unmap_as(&mut w, m.handle, VA), Ok(()));
}

#[test]
fn an_entry_changed_during_the_check_is_checked_again() {
    let mut w = world();
    let t = granted(&mut w, 0, DATA, 0);
    // Made read-only just before the update: a writable map is refused.
    w.platform.grants.races.push_back(u32::from(GTF_READONLY));
    assert_eq!(map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)), Err(GrantError::General));
    assert_eq!(entry_flags(&mut w, &t, 0), GTF_PERMIT_ACCESS | GTF_READONLY);
    // Re-granted to another domain just before the update.
    write_entry(&mut w, &t, 0, GTF_PERMIT_ACCESS, MAPPER, DATA);
    w.platform.grants.races.push_back(u32::from(MAPPER ^ 2) << 16);
    assert_eq!(map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)), Err(GrantError::General));
    // Revoked just before the update.
    write_entry(&mut w, &t, 0, GTF_PERMIT_ACCESS, MAPPER, DATA);
    w.platform.grants.races.push_back(u32::from(GTF_PERMIT_ACCESS));
    assert_eq!(map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)), Err(GrantError::General));
    assert_eq!(entry_flags(&mut w, &t, 0), 0, "nothing set");
    assert_eq!(pins(&mut w.platform, GRANTER, 0), None);
}

#[test]
fn rewriting_a_mapped_entry_changes_nothing_mapped() {
    let mut w = world();
    let t = granted(&mut w, 0, DATA, 0);
    let a = map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)).unwrap();
    // The granter points the entry elsewhere and revokes it, keeping a
    // bit of its own.
    write_entry(&mut w, &t, 0, GTF_PCD | GTF_READING | GTF_WRITING, MAPPER, DATA2);
    // More pins of the same entry use the frame pinned first.
    let b = map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA2)).unwrap();
    assert_eq!(b.dev_bus_addr, DATA << 12);
    assert_eq!(l1e(&mut w, VA2) & pte::ADDR, DATA << 12);
    assert_eq!(refs(&w, DATA2), (0, 0, PageType::None));
    assert_eq!(unmap_as(&mut w, a.handle, VA), Ok(()));
    assert_eq!(unmap_as(&mut w, b.handle, VA2), Ok(()));
    assert_eq!(refs(&w, DATA), (0, 0, PageType::None));
    assert_eq!(
        entry(&mut w, &t, 0),
        u64::from(GTF_PCD) | u64::from(MAPPER) << 16 | DATA2 << 32,
        "only our flags cleared"
    );
    // Unpinned again, the revoked entry grants nothing.
    assert_eq!(map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)), Err(GrantError::General));
}

// ---- copy ------------------------------------------------------------------

fn copy_ptr(u: u64, domid: u16, offset: u16) -> GnttabCopyPtr {
    GnttabCopyPtr { u, domid, offset, _pad0: 0 }
}

fn copy_op(source: GnttabCopyPtr, dest: GnttabCopyPtr, len: u16, flags: u16) -> GnttabCopy {
    GnttabCopy { source, dest, len, flags, status: 0, _pad0: 0 }
}

fn copy_as(w: &mut World, op: GnttabCopy) -> Result<(), GrantError> {
    copy(&mut w.platform, &w.domain, &op)
}

#[test]
fn copies_between_grants_and_own_frames() {
    let mut w = world();
    let t = granted(&mut w, 0, DATA, 0);
    write_entry(&mut w, &t, 1, GTF_PERMIT_ACCESS, MAPPER, DATA2);
    fill(&mut w, DATA, 1);
    fill(&mut w, OWN, 2);
    // Grant to own frame.
    let op = copy_op(copy_ptr(0, GRANTER, 100), copy_ptr(OWN, DOMID_SELF, 7), 300, GNTCOPY_SOURCE_GREF);
    assert_eq!(copy_as(&mut w, op), Ok(()));
    for i in 0..300 {
        assert_eq!(byte(&mut w, OWN, 7 + i), byte(&mut w, DATA, 100 + i), "byte {i}");
    }
    assert_ne!(byte(&mut w, OWN, 6), byte(&mut w, DATA, 99));
    // Own frame to grant, and grant to grant (the whole page).
    let op = copy_op(copy_ptr(OWN, DOMID_SELF, 0), copy_ptr(1, GRANTER, 0), 4096, GNTCOPY_DEST_GREF);
    assert_eq!(copy_as(&mut w, op), Ok(()));
    let own = *w.platform.mem.entries(OWN);
    assert_eq!(*w.platform.mem.entries(DATA2), own);
    fill(&mut w, DATA, 3);
    let op = copy_op(copy_ptr(0, GRANTER, 0), copy_ptr(1, GRANTER, 0), 4096, GNTCOPY_SOURCE_GREF | GNTCOPY_DEST_GREF);
    assert_eq!(copy_as(&mut w, op), Ok(()));
    let data = *w.platform.mem.entries(DATA);
    assert_eq!(*w.platform.mem.entries(DATA2), data);
    // Nothing stays pinned or flagged, no reference is kept.
    for gref in [0, 1] {
        assert_eq!(entry_flags(&mut w, &t, gref), GTF_PERMIT_ACCESS, "entry {gref}");
        assert_eq!(pins(&mut w.platform, GRANTER, gref), None);
    }
    for f in [DATA, DATA2, OWN] {
        assert_eq!(refs(&w, f), (0, 0, PageType::None), "frame {f}");
    }
    // Overlapping copies within one frame.
    fill(&mut w, OWN, 4);
    let before: Vec<u8> = (0..4096).map(|i| byte(&mut w, OWN, i)).collect();
    let op = copy_op(copy_ptr(OWN, DOMID_SELF, 0), copy_ptr(OWN, DOMID_SELF, 8), 100, 0);
    assert_eq!(copy_as(&mut w, op), Ok(()));
    assert_eq!((0..100).map(|i| byte(&mut w, OWN, 8 + i)).collect::<Vec<_>>(), before[..100]);
}

#[test]
fn a_copy_leaves_existing_pins_alone() {
    let mut w = world();
    let t = granted(&mut w, 0, DATA, 0);
    let m = map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP | GNTMAP_READONLY, VA)).unwrap();
    let op = copy_op(copy_ptr(OWN, DOMID_SELF, 0), copy_ptr(0, GRANTER, 0), 8, GNTCOPY_DEST_GREF);
    assert_eq!(copy_as(&mut w, op), Ok(()));
    assert_eq!(entry_flags(&mut w, &t, 0), GTF_PERMIT_ACCESS | GTF_READING, "writing cleared, reading kept");
    assert_eq!(pins(&mut w.platform, GRANTER, 0), Some((MAPPER, 0, 1, DATA)));
    assert_eq!(unmap_as(&mut w, m.handle, VA), Ok(()));
}

#[test]
fn copy_errors_are_per_op_statuses() {
    let mut w = world();
    let t = granted(&mut w, 0, DATA, 0);
    write_entry(&mut w, &t, 1, GTF_PERMIT_ACCESS | GTF_READONLY, MAPPER, DATA2);
    w.platform.page_types(&mut |pt| pt.pin(MAPPER, 41, Level::L1).unwrap());
    let own = |off| copy_ptr(OWN, DOMID_SELF, off);
    let g = |gref, off| copy_ptr(gref, GRANTER, off);
    let (s, d) = (GNTCOPY_SOURCE_GREF, GNTCOPY_DEST_GREF);
    let cases: [(&str, GnttabCopy, GrantError); 12] = [
        ("frame of own numeric id", copy_op(copy_ptr(OWN, MAPPER, 0), own(0), 8, 0), GrantError::PermissionDenied),
        (
            "dest frame of another domain",
            copy_op(own(0), copy_ptr(DATA, GRANTER, 0), 8, 0),
            GrantError::PermissionDenied,
        ),
        ("no such domain", copy_op(copy_ptr(0, 5, 0), own(0), 8, s), GrantError::BadDomain),
        ("bad reference", copy_op(g(512, 0), own(0), 8, s), GrantError::BadGntref),
        ("bad reference before bad length", copy_op(g(512, 4000), own(0), 200, s), GrantError::BadGntref),
        ("frame not its own", copy_op(copy_ptr(DATA, DOMID_SELF, 0), own(0), 8, 0), GrantError::BadPage),
        ("hypervisor frame", copy_op(own(0), copy_ptr(3, DOMID_SELF, 0), 8, 0), GrantError::BadPage),
        ("read-only grant as destination", copy_op(own(0), g(1, 0), 8, d), GrantError::General),
        ("page table as destination", copy_op(own(0), copy_ptr(41, DOMID_SELF, 0), 8, 0), GrantError::General),
        ("source past the page", copy_op(g(0, 4000), own(0), 97, s), GrantError::BadCopyArg),
        ("dest past the page", copy_op(g(0, 0), own(4095), 2, s), GrantError::BadCopyArg),
        ("length past the page", copy_op(g(0, 0), own(0), 4097, s), GrantError::BadCopyArg),
    ];
    for (what, op, want) in cases {
        assert_eq!(copy_as(&mut w, op), Err(want), "{what}");
        for gref in [0, 1] {
            assert_eq!(pins(&mut w.platform, GRANTER, gref), None, "{what}: entry {gref} left pinned");
        }
        assert_eq!(entry_flags(&mut w, &t, 0), GTF_PERMIT_ACCESS, "{what}");
        assert_eq!(entry_flags(&mut w, &t, 1), GTF_PERMIT_ACCESS | GTF_READONLY, "{what}");
        for f in [OWN, DATA, DATA2] {
            assert_eq!(refs(&w, f), (0, 0, PageType::None), "{what}: frame {f}");
        }
    }
    // A read-only grant is a fine source, and an empty copy is a copy.
    assert_eq!(copy_as(&mut w, copy_op(g(1, 0), own(0), 8, s)), Ok(()));
    assert_eq!(copy_as(&mut w, copy_op(g(0, 4096), own(4096), 0, s)), Ok(()));
}

// ---- teardown --------------------------------------------------------------

#[test]
fn the_mappers_teardown_removes_its_mappings() {
    let mut w = world();
    let stats = w.platform.frames.stats();
    let t = granted(&mut w, 0, DATA, 0);
    write_entry(&mut w, &t, 1, GTF_PERMIT_ACCESS | GTF_READONLY, MAPPER, DATA2);
    let hv_granter = hv_frames(&w);
    map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)).unwrap();
    map_as(&mut w, req(1, GRANTER, GNTMAP_HOST_MAP | GNTMAP_READONLY, VA2)).unwrap();
    w.platform.flushes.clear();
    release_domain(&mut w.platform, MAPPER);
    assert_eq!((l1e(&mut w, VA), l1e(&mut w, VA2)), (0, 0), "entries cleared");
    assert_eq!(w.platform.flushes, [None]);
    assert_eq!(entry_flags(&mut w, &t, 0), GTF_PERMIT_ACCESS);
    assert_eq!(entry_flags(&mut w, &t, 1), GTF_PERMIT_ACCESS | GTF_READONLY);
    for f in [DATA, DATA2] {
        assert_eq!(refs(&w, f), (0, 0, PageType::None));
    }
    assert_eq!(hv_frames(&w), hv_granter, "the mapper's state is freed");
    assert_eq!(w.platform.grants.roots.get(&MAPPER), None);
    release_domain(&mut w.platform, MAPPER);
    release_domain(&mut w.platform, GRANTER);
    assert_eq!(hv_frames(&w), stats.hypervisor);
    assert_eq!(w.platform.grants.reclaimed, [], "nobody was dying");
    // The table frames are unreferenced, for the domain's teardown to free.
    assert_eq!(refs(&w, t[0]), (0, 0, PageType::None));
}

#[test]
fn a_destroyed_granters_frames_wait_for_the_last_mapping() {
    let mut w = world();
    let stats = w.platform.frames.stats();
    let t = granted(&mut w, 0, DATA, 0);
    write_entry(&mut w, &t, 1, GTF_PERMIT_ACCESS, MAPPER, DATA2);
    let a = map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)).unwrap();
    let b = map_as(&mut w, req(1, GRANTER, GNTMAP_HOST_MAP, VA2)).unwrap();
    // The granter is destroyed.
    release_domain(&mut w.platform, GRANTER);
    w.platform.infos.retain(|i| i.id != GRANTER);
    assert!(Table::of(&mut w.platform, GRANTER).is_some_and(|t| t.is_dying(&mut w.platform)));
    assert_eq!(refs(&w, t[0]), (1, 1, PageType::Writable), "its table stays");
    assert_eq!(refs(&w, DATA), (1, 1, PageType::Writable), "its frames stay mapped");
    assert_eq!(map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA2)), Err(GrantError::BadDomain));
    assert_eq!(unmap_as(&mut w, a.handle, VA), Ok(()));
    assert_eq!(w.platform.grants.reclaimed, [], "one mapping left");
    assert_eq!(unmap_as(&mut w, b.handle, VA2), Ok(()));
    assert_eq!(w.platform.grants.reclaimed, [GRANTER]);
    assert_eq!(w.platform.grants.roots.get(&GRANTER), None);
    for f in [t[0], DATA, DATA2] {
        assert_eq!(w.platform.frames.usage(f), FrameUse::Free, "frame {f} reclaimed");
    }
    release_domain(&mut w.platform, MAPPER);
    let now = w.platform.frames.stats();
    assert_eq!(now.hypervisor, stats.hypervisor, "no grant state left");
    assert_eq!(now.domain, stats.domain - 16, "all of the granter's frames went back");
}

#[test]
fn a_destroyed_granter_is_freed_when_its_mapper_goes_too() {
    let mut w = world();
    let stats = w.platform.frames.stats();
    let t = granted(&mut w, 0, DATA, 0);
    map_as(&mut w, req(0, GRANTER, GNTMAP_HOST_MAP, VA)).unwrap();
    release_domain(&mut w.platform, GRANTER);
    w.platform.infos.retain(|i| i.id != GRANTER);
    release_domain(&mut w.platform, MAPPER);
    assert_eq!(l1e(&mut w, VA), 0);
    assert_eq!(w.platform.grants.reclaimed, [GRANTER]);
    assert_eq!(w.platform.frames.usage(t[0]), FrameUse::Free);
    assert_eq!(w.platform.frames.usage(DATA), FrameUse::Free);
    assert_eq!(w.platform.frames.stats().hypervisor, stats.hypervisor);
    assert!(w.platform.grants.roots.is_empty());
}

#[test]
fn a_granter_mapping_its_own_grants_tears_down_alone() {
    let mut w = world();
    let stats = w.platform.frames.stats();
    let me = w.domain.clone();
    let t = setup(&mut w, &me, 1);
    write_entry(&mut w, &t, 0, GTF_PERMIT_ACCESS, MAPPER, OWN);
    map_as(&mut w, req(0, MAPPER, GNTMAP_HOST_MAP, VA)).unwrap();
    release_domain(&mut w.platform, MAPPER);
    assert_eq!(l1e(&mut w, VA), 0);
    assert!(w.platform.grants.roots.is_empty(), "not dying: its only mapper was itself");
    assert_eq!(w.platform.frames.stats().hypervisor, stats.hypervisor);
    assert_eq!(refs(&w, OWN), (0, 0, PageType::None));
}

// ---- grant_table_op: batches and arguments ---------------------------------

/// Guest memory for op arrays: `MEM_BASE + OPS`; the fake memory ends at
/// `MEM_BASE + 0x1_0000`.
const OPS: u64 = 0x100;
const MEM_END: u64 = MEM_BASE + 0x1_0000;

fn call(w: &mut World, cmd: u32, uop: u64, count: u64) -> i64 {
    w.call(GRANT_TABLE_OP, &[cmd.into(), uop, count]);
    w.ret()
}

fn map_op(gref: u32, host_addr: u64) -> GnttabMapGrantRef {
    GnttabMapGrantRef { host_addr, flags: GNTMAP_HOST_MAP, ref_: gref, dom: GRANTER, ..Default::default() }
}

#[test]
fn a_batch_is_done_in_order_and_each_op_has_its_status() {
    let mut w = world();
    granted(&mut w, 0, DATA, 0);
    let ops = [map_op(0, VA), map_op(700, VA2), map_op(0, VA2)];
    for (i, op) in ops.iter().enumerate() {
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE + OPS + 32 * i as u64), op).unwrap();
    }
    assert_eq!(call(&mut w, GNTTABOP_MAP_GRANT_REF, MEM_BASE + OPS, 3), 0);
    let out: Vec<GnttabMapGrantRef> =
        (0..3).map(|i| guest::read_obj(&mut w.mem, GuestPtr(MEM_BASE + OPS + 32 * i)).unwrap()).collect();
    assert_eq!(out.iter().map(|o| o.status).collect::<Vec<_>>(), [GNTST_OKAY, GNTST_BAD_GNTREF, GNTST_OKAY]);
    assert_eq!((out[0].dev_bus_addr, out[2].dev_bus_addr), (DATA << 12, DATA << 12));
    assert_eq!(out[1].handle, 0, "a failed op's handle is left as given");
    assert_ne!(out[0].handle, out[2].handle);
    // Unmap both, and one bad handle, in one batch.
    let unmaps = [
        GnttabUnmapGrantRef { host_addr: VA, handle: out[0].handle, ..Default::default() },
        GnttabUnmapGrantRef { host_addr: VA2, handle: 999, ..Default::default() },
        GnttabUnmapGrantRef { host_addr: VA2, handle: out[2].handle, ..Default::default() },
    ];
    for (i, op) in unmaps.iter().enumerate() {
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE + OPS + 24 * i as u64), op).unwrap();
    }
    assert_eq!(call(&mut w, GNTTABOP_UNMAP_GRANT_REF, MEM_BASE + OPS, 3), 0);
    let st: Vec<i16> = (0..3)
        .map(|i| {
            guest::read_obj::<GnttabUnmapGrantRef, _>(&mut w.mem, GuestPtr(MEM_BASE + OPS + 24 * i)).unwrap().status
        })
        .collect();
    assert_eq!(st, [GNTST_OKAY, GNTST_BAD_HANDLE, GNTST_OKAY]);
    assert_eq!(refs(&w, DATA), (0, 0, PageType::None));
    assert_eq!(call(&mut w, GNTTABOP_MAP_GRANT_REF, MEM_BASE + OPS, 0), 0, "an empty batch");
}

#[test]
fn a_batch_that_runs_off_guest_memory_stops_with_efault_after_the_good_ops() {
    let mut w = world();
    granted(&mut w, 0, DATA, 0);
    // Two whole ops before the end of memory, the third cut off.
    let at = MEM_END - 2 * 32 - 16;
    for (i, va) in [VA, VA2].into_iter().enumerate() {
        guest::write_obj(&mut w.mem, GuestPtr(at + 32 * i as u64), &map_op(0, va)).unwrap();
    }
    assert_eq!(call(&mut w, GNTTABOP_MAP_GRANT_REF, at, 3), Errno::EFAULT.as_ret());
    for i in 0..2 {
        let o: GnttabMapGrantRef = guest::read_obj(&mut w.mem, GuestPtr(at + 32 * i)).unwrap();
        assert_eq!(o.status, GNTST_OKAY, "op {i} was done and written back");
    }
    assert_eq!(pins(&mut w.platform, GRANTER, 0), Some((MAPPER, 2, 0, DATA)));
    // Unmaps and copies the same way: the statuses before the fault are out.
    let h: Vec<u32> = (0..2)
        .map(|i| guest::read_obj::<GnttabMapGrantRef, _>(&mut w.mem, GuestPtr(at + 32 * i)).unwrap().handle)
        .collect();
    let at = MEM_END - 24 - 8;
    let op = GnttabUnmapGrantRef { host_addr: VA, handle: h[0], ..Default::default() };
    guest::write_obj(&mut w.mem, GuestPtr(at), &op).unwrap();
    assert_eq!(call(&mut w, GNTTABOP_UNMAP_GRANT_REF, at, 2), Errno::EFAULT.as_ret());
    assert_eq!(guest::read_obj::<GnttabUnmapGrantRef, _>(&mut w.mem, GuestPtr(at)).unwrap().status, GNTST_OKAY);
    assert_eq!(pins(&mut w.platform, GRANTER, 0), Some((MAPPER, 1, 0, DATA)));
    let at = MEM_END - 40 - 20;
    let op = copy_op(copy_ptr(0, GRANTER, 0), copy_ptr(OWN, DOMID_SELF, 0), 16, GNTCOPY_SOURCE_GREF);
    guest::write_obj(&mut w.mem, GuestPtr(at), &op).unwrap();
    fill(&mut w, DATA, 9);
    assert_eq!(call(&mut w, GNTTABOP_COPY, at, 2), Errno::EFAULT.as_ret());
    assert_eq!(guest::read_obj::<GnttabCopy, _>(&mut w.mem, GuestPtr(at)).unwrap().status, GNTST_OKAY);
    assert_eq!(byte(&mut w, OWN, 3), byte(&mut w, DATA, 3));
    // A status that cannot be written back is -EFAULT too, the op done.
    let at = MEM_BASE + 0x2000;
    let op = GnttabUnmapGrantRef { host_addr: VA2, handle: h[1], ..Default::default() };
    guest::write_obj(&mut w.mem, GuestPtr(at), &op).unwrap();
    w.mem.read_only.push(at);
    assert_eq!(call(&mut w, GNTTABOP_UNMAP_GRANT_REF, at, 1), Errno::EFAULT.as_ret());
    assert_eq!(pins(&mut w.platform, GRANTER, 0), None, "unmapped all the same");
}

#[test]
fn arrays_outside_guest_space_are_refused_before_anything_is_done() {
    let mut w = world();
    granted(&mut w, 0, DATA, 0);
    for uop in [0xffff_8000_0000_0000, 0xffff_7fff_ffff_fff0, u64::MAX - 16] {
        for cmd in [GNTTABOP_MAP_GRANT_REF, GNTTABOP_UNMAP_GRANT_REF, GNTTABOP_COPY] {
            assert_eq!(call(&mut w, cmd, uop, 1), Errno::EFAULT.as_ret(), "cmd {cmd} at {uop:#x}");
        }
    }
    // The whole array is checked first, not just its first op.
    assert_eq!(call(&mut w, GNTTABOP_MAP_GRANT_REF, 0x0000_7fff_ffff_ffe0, 2), Errno::EFAULT.as_ret());
    assert_eq!(pins(&mut w.platform, GRANTER, 0), None);
}

#[test]
fn commands_and_counts_are_checked_as_xen_does() {
    let mut w = world();
    assert_eq!(call(&mut w, GNTTABOP_MAP_GRANT_REF, MEM_BASE, 1 << 31), Errno::EINVAL.as_ret());
    assert_eq!(call(&mut w, GNTTABOP_MAP_GRANT_REF, MEM_BASE, u64::MAX), Errno::EINVAL.as_ret());
    assert_eq!(call(&mut w, GNTTABOP_MAP_GRANT_REF | 1 << 12, MEM_BASE, 0), Errno::EINVAL.as_ret());
    assert_eq!(call(&mut w, GNTTABOP_CACHE_FLUSH | 1 << 12, MEM_BASE, 0), Errno::ENOSYS.as_ret());
    for cmd in
        [GNTTABOP_DUMP_TABLE, GNTTABOP_TRANSFER, GNTTABOP_UNMAP_AND_REPLACE, GNTTABOP_GET_STATUS_FRAMES, 13, 4095]
    {
        assert_eq!(call(&mut w, cmd, MEM_BASE, 1), Errno::ENOSYS.as_ret(), "cmd {cmd}");
    }
    // The upper halves of the registers are not part of the arguments.
    w.call(GRANT_TABLE_OP, &[(1 << 32) | u64::from(GNTTABOP_MAP_GRANT_REF), MEM_BASE, 1 << 32]);
    assert_eq!(w.ret(), 0, "a batch of 0");
    for cmd in [GNTTABOP_SETUP_TABLE, GNTTABOP_QUERY_SIZE] {
        assert_eq!(call(&mut w, cmd, MEM_BASE, 0), Errno::EINVAL.as_ret());
        assert_eq!(call(&mut w, cmd, MEM_BASE, 2), Errno::EINVAL.as_ret());
        assert_eq!(call(&mut w, cmd, 0xdead_0000_0000, 1), Errno::EFAULT.as_ret());
    }
}

#[test]
fn setup_table_writes_frames_and_reports_an_unwritable_list() {
    let mut w = world();
    let list = MEM_BASE + 0x3000;
    let op = GnttabSetupTable { dom: DOMID_SELF, nr_frames: 2, frame_list: list, ..Default::default() };
    guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &op).unwrap();
    assert_eq!(call(&mut w, GNTTABOP_SETUP_TABLE, MEM_BASE, 1), 0);
    let back: GnttabSetupTable = guest::read_obj(&mut w.mem, GuestPtr(MEM_BASE)).unwrap();
    assert_eq!(back, GnttabSetupTable { status: GNTST_OKAY, ..op }, "only the status is written");
    let frames: [u64; 2] = guest::read_obj(&mut w.mem, GuestPtr(list)).unwrap();
    for f in frames {
        assert_eq!(w.platform.frames.usage(f), FrameUse::Domain(MAPPER));
    }
    // A list that cannot be written: the status says so.
    w.mem.read_only.push(list);
    assert_eq!(call(&mut w, GNTTABOP_SETUP_TABLE, MEM_BASE, 1), 0);
    let back: GnttabSetupTable = guest::read_obj(&mut w.mem, GuestPtr(MEM_BASE)).unwrap();
    assert_eq!(back.status, GNTST_BAD_VIRT_ADDR);
    // One outside guest space: -EFAULT, nothing written.
    let op = GnttabSetupTable { frame_list: 0xffff_8000_0000_0000, ..op };
    guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &op).unwrap();
    assert_eq!(call(&mut w, GNTTABOP_SETUP_TABLE, MEM_BASE, 1), Errno::EFAULT.as_ret());
    assert_eq!(guest::read_obj::<GnttabSetupTable, _>(&mut w.mem, GuestPtr(MEM_BASE)).unwrap(), op);
    // Too many frames: a status.
    let op = GnttabSetupTable { nr_frames: MAX_FRAMES + 1, frame_list: list + 0x1000, ..op };
    guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &op).unwrap();
    assert_eq!(call(&mut w, GNTTABOP_SETUP_TABLE, MEM_BASE, 1), 0);
    assert_eq!(
        guest::read_obj::<GnttabSetupTable, _>(&mut w.mem, GuestPtr(MEM_BASE)).unwrap().status,
        GNTST_GENERAL_ERROR
    );
    // query_size writes the whole struct back.
    let q = GnttabQuerySize { dom: DOMID_SELF, nr_frames: 77, ..Default::default() };
    guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &q).unwrap();
    assert_eq!(call(&mut w, GNTTABOP_QUERY_SIZE, MEM_BASE, 1), 0);
    let q: GnttabQuerySize = guest::read_obj(&mut w.mem, GuestPtr(MEM_BASE)).unwrap();
    assert_eq!((q.nr_frames, q.max_nr_frames, q.status), (2, MAX_FRAMES, GNTST_OKAY));
    let q = GnttabQuerySize { dom: 5, ..Default::default() };
    guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE), &q).unwrap();
    assert_eq!(call(&mut w, GNTTABOP_QUERY_SIZE, MEM_BASE, 1), 0);
    assert_eq!(guest::read_obj::<GnttabQuerySize, _>(&mut w.mem, GuestPtr(MEM_BASE)).unwrap().status, GNTST_BAD_DOMAIN);
}

#[test]
fn grant_table_op_is_open_to_every_domain() {
    let e = crate::hypercall::TABLE[GRANT_TABLE_OP as usize].expect("in the table");
    assert!(!e.privileged);
}

// ---- randomized --------------------------------------------------------------

/// Random maps, unmaps, copies, granter rewrites and races over a few
/// entries; after every step the books balance: each frame's references
/// are exactly those of the mapper's present L1 entries, pins match the
/// live handles, flags match the pins (where the granter left them), and
/// at the end both teardowns leave nothing behind.
#[test]
fn random_operations_keep_pins_flags_and_references_consistent() {
    use crate::testing::XorShift;
    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    let mut w = world();
    let stats = w.platform.frames.stats();
    let t = setup(&mut w, &granter(), 1);
    let frames = [DATA, DATA2, 87, 88];
    let vas: Vec<u64> = (0..6).map(|i| VA + i * 0x1000).collect();
    // Live handles: (handle, gref, va, readonly).
    let mut live: Vec<(u32, u32, u64, bool)> = Vec::new();
    let grant = |w: &mut World, rng: &mut XorShift, gref: u32| {
        let flags = GTF_PERMIT_ACCESS | if rng.chance(30) { GTF_READONLY } else { 0 };
        let keep = entry_flags(w, &t, gref) & (GTF_READING | GTF_WRITING);
        write_entry(w, &t, gref, flags | keep, MAPPER, rng.pick(&frames));
    };
    for gref in 0..4 {
        grant(&mut w, &mut rng, gref);
    }
    let (mut mapped, mut unmapped, mut copied) = (0, 0, 0);
    for step in 0..5_000 {
        let gref = rng.below(4) as u32;
        match rng.below(10) {
            0..=3 => {
                let va = rng.pick(&vas);
                let ro = rng.chance(40);
                let flags = GNTMAP_HOST_MAP | if ro { GNTMAP_READONLY } else { 0 };
                if rng.chance(10) {
                    w.platform.grants.races.push_back(u32::from(GTF_PWT));
                }
                if let Ok(m) = map_as(&mut w, req(gref, GRANTER, flags, va)) {
                    // The entry it replaced is gone for good.
                    live.retain(|l| l.2 != va);
                    live.push((m.handle, gref, va, ro));
                    mapped += 1;
                }
                w.platform.grants.races.clear();
            }
            4..=6 if !live.is_empty() => {
                let (h, _, va, _) = live.swap_remove(rng.below(live.len() as u64) as usize);
                assert_eq!(unmap_as(&mut w, h, va), Ok(()), "step {step}");
                unmapped += 1;
            }
            7 => grant(&mut w, &mut rng, gref),
            8 => {
                let op =
                    copy_op(copy_ptr(gref.into(), GRANTER, 0), copy_ptr(OWN, DOMID_SELF, 0), 64, GNTCOPY_SOURCE_GREF);
                copied += u32::from(copy_as(&mut w, op).is_ok());
            }
            _ => {
                let op =
                    copy_op(copy_ptr(OWN, DOMID_SELF, 0), copy_ptr(gref.into(), GRANTER, 0), 64, GNTCOPY_DEST_GREF);
                copied += u32::from(copy_as(&mut w, op).is_ok());
            }
        }
        // References: what the present entries hold.
        for &f in &frames {
            let (mut general, mut writable) = (0, 0);
            for &va in &vas {
                let e = l1e(&mut w, va);
                if e & pte::P != 0 && (e & pte::ADDR) >> 12 == f {
                    general += 1;
                    writable += u32::from(e & pte::RW != 0);
                }
            }
            let (r, c, _) = refs(&w, f);
            assert_eq!((r, c), (general, writable), "step {step}: frame {f}");
        }
        // Pins: every live handle, and nothing else (a replaced mapping's
        // handle is dead to us but still pins, as in Xen: count it too).
        let maps = mappings(&mut w.platform, MAPPER);
        let mut total = 0u64;
        for g in 0..4 {
            let p = pins(&mut w.platform, GRANTER, g);
            let (wr, rd) = p.map_or((0, 0), |(_, wr, rd, _)| (wr, rd));
            total += u64::from(wr) + u64::from(rd);
            let f = entry_flags(&mut w, &t, g);
            assert_eq!(f & GTF_READING != 0, p.is_some(), "step {step}: entry {g} reading {f:#x}");
            assert_eq!(f & GTF_WRITING != 0, wr > 0, "step {step}: entry {g} writing {f:#x}");
        }
        assert_eq!(total, maps, "step {step}: pins and handles");
        assert!(live.len() as u64 <= maps);
    }
    assert!(mapped > 500 && unmapped > 300 && copied > 300, "{mapped} maps, {unmapped} unmaps, {copied} copies");
    release_domain(&mut w.platform, MAPPER);
    for g in 0..4 {
        assert_eq!(pins(&mut w.platform, GRANTER, g), None);
        assert_eq!(entry_flags(&mut w, &t, g) & (GTF_READING | GTF_WRITING), 0);
    }
    for &f in &frames {
        assert_eq!(refs(&w, f), (0, 0, PageType::None));
    }
    release_domain(&mut w.platform, GRANTER);
    assert_eq!(w.platform.frames.stats().hypervisor, stats.hypervisor);
    assert!(w.platform.grants.roots.is_empty());
}

#[test]
fn a_long_batch_continues_and_every_op_gets_its_status() {
    let mut w = world();
    granted(&mut w, 0, DATA, 0);
    let n = crate::hypercall::BATCH_BUDGET + 10;
    let size = core::mem::size_of::<GnttabCopy>() as u64;
    let mut op = copy_op(copy_ptr(512, GRANTER, 0), copy_ptr(OWN, DOMID_SELF, 0), 8, GNTCOPY_SOURCE_GREF);
    op.status = 1;
    for i in 0..n {
        guest::write_obj(&mut w.mem, GuestPtr(MEM_BASE + i * size), &op).unwrap();
    }
    let (action, continued) = w.call_to_end(GRANT_TABLE_OP, &[GNTTABOP_COPY.into(), MEM_BASE, n]);
    assert_eq!((action, continued), (crate::hypercall::Action::Return(Ok(0)), 1));
    for i in 0..n {
        let status = guest::read_obj::<GnttabCopy, _>(&mut w.mem, GuestPtr(MEM_BASE + i * size)).unwrap().status;
        assert_eq!(status, GNTST_BAD_GNTREF, "op {i}");
    }
}
