//! Selftest checks of grant tables (version 1) on one domain: the domain
//! sets up its table, maps its frame, and grants frames to itself, which
//! Xen allows; then it maps them read-write and read-only, copies through
//! them, and checks the statuses Xen 4.17 gives for misuse
//! (`common/grant_table.c`), and that a batch running off mapped memory
//! stops with `EFAULT` after the ops before it were done.
//!
//! They run after the memory and event checks (they take frames and
//! scratch pages, and find the domain's id through an event channel).
//! `grant_setup` comes first; if it fails, the rest are failed unrun. Each
//! check gives back the frames and mappings it took, and leaves the
//! entries it used invalid.

use super::{Check, TrapCheck};
use crate::probe;
use abi::grant_table::*;
use abi::mm::DOMID_SELF;
use abi::Errno;
use alloc::vec;
use core::sync::atomic::{AtomicU32, Ordering::SeqCst};
use guest_kernel::ensure;
use guest_kernel::hypercall::hv;
use guest_kernel::layout::{PAGE_SIZE, SCRATCH_BASE};
use guest_kernel::mm::{self, Frame};
use guest_kernel::pagetable::{entry_mfn, Prot};
use guest_kernel::text::Msg;
use guest_kernel::{msg, println};

/// The checks, in order (`grant_setup` first).
pub const CHECKS: [TrapCheck; 6] = [
    ("grant_setup", check_setup),
    ("grant_map_rw", check_map_rw),
    ("grant_map_ro", check_map_ro),
    ("grant_copy", check_copy),
    ("grant_errors", check_errors),
    ("grant_batch_efault", check_batch),
];

/// Where the table's first frame is mapped, and where grants are mapped
/// (the scratch region's L1, past the memory checks' pages).
const TABLE_VA: u64 = SCRATCH_BASE + 64 * PAGE_SIZE;
const GRANT_VA: u64 = SCRATCH_BASE + 65 * PAGE_SIZE;
const GRANT_VA2: u64 = SCRATCH_BASE + 66 * PAGE_SIZE;
/// A page for a batch whose next page is unmapped.
const BATCH_VA: u64 = SCRATCH_BASE + 68 * PAGE_SIZE;
/// An address with no L1 table (nothing is mapped in its 512 GiB).
const NO_L1: u64 = 0x0000_1234_5600_0000;
/// A domain id that names no domain.
const NO_SUCH_DOMAIN: u16 = 0x7fef;
/// The grant references the checks use.
const REF_RW: u32 = 10;
const REF_RO: u32 = 11;
const REF_BAD: u32 = 12;

/// Our domain id.
static OWN_DOMID: AtomicU32 = AtomicU32::new(0);
/// Entries in our table (after `grant_setup`).
static NR_ENTRIES: AtomicU32 = AtomicU32::new(0);

fn own() -> u16 {
    OWN_DOMID.load(SeqCst) as u16
}

/// Writes entry `gref` (in the first table frame) the way a granter must:
/// frame and domain first, then the flags that make it valid.
fn write_entry(gref: u32, flags: u16, domid: u16, frame: u64) {
    let at = TABLE_VA + 8 * u64::from(gref);
    // SAFETY: the table frame is mapped read-write at TABLE_VA; gref < 512.
    unsafe { ((at + 4) as *mut u32).write_volatile(frame as u32) };
    core::sync::atomic::fence(SeqCst);
    // SAFETY: as above.
    unsafe { (at as *mut u32).write_volatile(u32::from(flags) | u32::from(domid) << 16) };
}

/// Entry `gref`'s flags, as the hypervisor left them.
fn flags(gref: u32) -> u16 {
    // SAFETY: as in `write_entry`.
    unsafe { ((TABLE_VA + 8 * u64::from(gref)) as *const u16).read_volatile() }
}

fn map_op(gref: u32, dom: u16, flags: u32, host_addr: u64) -> GnttabMapGrantRef {
    GnttabMapGrantRef { host_addr, flags, ref_: gref, dom, ..GnttabMapGrantRef::default() }
}

/// Maps one grant: the op as the hypervisor wrote it back.
fn map1(op: GnttabMapGrantRef) -> Result<GnttabMapGrantRef, Msg> {
    let mut ops = [op];
    // SAFETY: the host addresses the checks use are scratch pages nothing
    // else references.
    let r = unsafe { hv().gnttab_map_grant_ref(&mut ops) };
    ensure!(r == Ok(0), "map_grant_ref of ref {} gave {r:?}", op.ref_);
    Ok(ops[0])
}

/// Unmaps one grant: its status.
fn unmap1(handle: u32, host_addr: u64, dev_bus_addr: u64) -> Result<i16, Msg> {
    let mut ops = [GnttabUnmapGrantRef { host_addr, dev_bus_addr, handle, ..GnttabUnmapGrantRef::default() }];
    // SAFETY: as for the map.
    let r = unsafe { hv().gnttab_unmap_grant_ref(&mut ops) };
    ensure!(r == Ok(0), "unmap_grant_ref of handle {handle} gave {r:?}");
    Ok(ops[0].status)
}

/// Maps `op`, which must succeed: its handle.
fn map_ok(op: GnttabMapGrantRef, what: &str) -> Result<u32, Msg> {
    let out = map1(op)?;
    ensure!(out.status == GNTST_OKAY, "{what}: status {}", out.status);
    Ok(out.handle)
}

/// Copies with `op`: its status.
fn copy1(op: GnttabCopy) -> Result<i16, Msg> {
    let mut ops = [op];
    // SAFETY: the destinations the checks name are frames they own and
    // reference nowhere else.
    let r = unsafe { hv().gnttab_copy(&mut ops) };
    ensure!(r == Ok(0), "copy gave {r:?}");
    Ok(ops[0].status)
}

fn copy_ptr(u: u64, domid: u16, offset: u16) -> GnttabCopyPtr {
    GnttabCopyPtr { u, domid, offset, _pad0: 0 }
}

fn copy_op(source: GnttabCopyPtr, dest: GnttabCopyPtr, len: u16, flags: u16) -> GnttabCopy {
    GnttabCopy { source, dest, len, flags, status: 0, _pad0: 0 }
}

/// The L1 entry mapping `va` in the kernel's tables (0: none).
fn pte_of(va: u64) -> u64 {
    mm::lookup_in(mm::kernel_space().root, va).ok().flatten().unwrap_or(0)
}

fn pattern(seed: u64, i: u64) -> u64 {
    (seed << 48) ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Fills frame `f` through the direct map.
fn fill(f: Frame, seed: u64) {
    for i in 0..PAGE_SIZE / 8 {
        // SAFETY: a frame from alloc_frame, mapped read-write in the direct
        // map and referenced by nothing else.
        unsafe { (f.va() as *mut u64).wrapping_add(i as usize).write_volatile(pattern(seed, i)) };
    }
}

/// Byte `i` of the page at `va`.
fn byte_at(va: u64, i: u64) -> u8 {
    // SAFETY: the checks only read pages they mapped.
    unsafe { ((va + i) as *const u8).read_volatile() }
}

fn check_setup() -> Check {
    let me = guest_kernel::event::own_domid().map_err(|e| msg!("our domain id: {e}"))?;
    OWN_DOMID.store(u32::from(me), SeqCst);
    // Version 2 first, before anything is granted: refused here, perhaps
    // offered by Xen (then back to 1, which must work with nothing mapped).
    let (r2, v2) = hv().gnttab_set_version(2);
    println!("INFO grant: set_version(2) gives {r2:?}, version {v2}");
    match (r2, v2) {
        (Err(Errno::ENOSYS), 1) => {}
        (Ok(_), 2) => {
            let back = hv().gnttab_set_version(1);
            ensure!(back == (Ok(0), 1), "set_version(1) after 2 gave {back:?}");
        }
        other => return Err(msg!("set_version(2) gave {other:?}, want ENOSYS (or Xen switching)")),
    }
    let one = hv().gnttab_set_version(1);
    ensure!(one == (Ok(0), 1), "set_version(1) gave {one:?}, want Ok(0) and version 1");
    for bad in [0, 3] {
        let r = hv().gnttab_set_version(bad);
        ensure!(r == (Err(Errno::EINVAL), 1), "set_version({bad}) gave {r:?}, want EINVAL and version 1");
    }

    let q = hv().gnttab_query_size(DOMID_SELF).map_err(|e| msg!("query_size: {e}"))?;
    println!("INFO grant: query_size nr_frames={} max_nr_frames={} status={}", q.nr_frames, q.max_nr_frames, q.status);
    ensure!(q.status == GNTST_OKAY, "query_size status {}", q.status);
    ensure!(q.nr_frames >= 1 && q.max_nr_frames >= q.nr_frames, "query_size {} of {}", q.nr_frames, q.max_nr_frames);
    let q = hv().gnttab_query_size(NO_SUCH_DOMAIN).map_err(|e| msg!("query_size(no such domain): {e}"))?;
    ensure!(q.status == GNTST_BAD_DOMAIN, "query_size of no domain: status {}", q.status);

    let mut frames = [0u64; 1];
    let st = hv().gnttab_setup_table(DOMID_SELF, &mut frames).map_err(|e| msg!("setup_table: {e}"))?;
    ensure!(st == GNTST_OKAY && frames[0] != 0, "setup_table(1): status {st}, frame {:#x}", frames[0]);
    let max = hv().gnttab_query_size(DOMID_SELF).map_err(|e| msg!("query_size: {e}"))?.max_nr_frames;
    let mut too_many = vec![0u64; max as usize + 1];
    let st = hv().gnttab_setup_table(DOMID_SELF, &mut too_many).map_err(|e| msg!("setup_table(max + 1): {e}"))?;
    ensure!(st == GNTST_GENERAL_ERROR, "setup_table({} frames, max {max}): status {st}", max + 1);
    let st = hv().gnttab_setup_table(NO_SUCH_DOMAIN, &mut [0]).map_err(|e| msg!("setup_table(no domain): {e}"))?;
    ensure!(st == GNTST_BAD_DOMAIN, "setup_table of no domain: status {st}");
    let q = hv().gnttab_query_size(DOMID_SELF).map_err(|e| msg!("query_size: {e}"))?;
    NR_ENTRIES.store(q.nr_frames * 512, SeqCst);

    mm::map(TABLE_VA, frames[0], Prot::KERNEL_RW).map_err(|e| msg!("mapping the table frame {:#x}: {e}", frames[0]))?;
    // The grant mappings' L1 must exist (the hypervisor writes into it).
    mm::l1_table(GRANT_VA).map_err(|e| msg!("the scratch L1: {e}"))?;
    for gref in [REF_RW, REF_RO, REF_BAD] {
        write_entry(gref, GTF_INVALID, 0, 0);
    }
    println!("INFO grant: domain {} table frame {:#x}, {} entries", own(), frames[0], q.nr_frames * 512);
    Ok(())
}

/// A frame granted read-write to ourselves, mapped, used both ways,
/// unmapped.
fn check_map_rw() -> Check {
    let f = mm::alloc_frame().map_err(|e| msg!("alloc_frame: {e}"))?;
    fill(f, 1);
    let r = map_rw(f);
    write_entry(REF_RW, GTF_INVALID, 0, 0);
    mm::free_frame(f).map_err(|e| msg!("free_frame: {e}"))?;
    r
}

fn map_rw(f: Frame) -> Check {
    write_entry(REF_RW, GTF_PERMIT_ACCESS, own(), f.mfn);
    let out = map1(map_op(REF_RW, own(), GNTMAP_HOST_MAP, GRANT_VA))?;
    println!("INFO grant: map rw status={} handle={} dev_bus_addr={:#x}", out.status, out.handle, out.dev_bus_addr);
    ensure!(out.status == GNTST_OKAY, "map: status {}", out.status);
    ensure!(out.dev_bus_addr == f.mfn << 12, "dev_bus_addr {:#x}, want {:#x}", out.dev_bus_addr, f.mfn << 12);
    let fl = flags(REF_RW);
    ensure!(fl == GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING, "flags {fl:#x} while mapped read-write");
    let e = pte_of(GRANT_VA);
    ensure!(entry_mfn(e) == f.mfn && e & 2 != 0, "the entry at {GRANT_VA:#x} is {e:#x}");
    ensure!((0..512).all(|i| byte_at(GRANT_VA, i * 8) == pattern(1, i) as u8), "the mapping does not show the frame");
    probe::write_u64(GRANT_VA + 8, 0x6a6a).map_err(|_| msg!("writing through the mapping faulted"))?;
    // SAFETY: the direct map maps the frame.
    let back = unsafe { ((f.va() + 8) as *const u64).read_volatile() };
    ensure!(back == 0x6a6a, "the write through the mapping reads back {back:#x} in the frame");

    let st = unmap1(out.handle, GRANT_VA, 0)?;
    ensure!(st == GNTST_OKAY, "unmap: status {st}");
    ensure!(flags(REF_RW) == GTF_PERMIT_ACCESS, "flags {:#x} after unmap", flags(REF_RW));
    ensure!(pte_of(GRANT_VA) == 0, "{GRANT_VA:#x} is still mapped: {:#x}", pte_of(GRANT_VA));
    ensure!(probe::read_u64(GRANT_VA).is_err(), "reading {GRANT_VA:#x} after unmap did not fault");
    let st = unmap1(out.handle, GRANT_VA, 0)?;
    ensure!(st == GNTST_BAD_HANDLE, "unmapping the handle again: status {st}");
    Ok(())
}

/// Read-only grants map read-only only; pins of both kinds count apart.
fn check_map_ro() -> Check {
    let f = mm::alloc_frame().map_err(|e| msg!("alloc_frame: {e}"))?;
    fill(f, 2);
    let r = map_ro(f);
    write_entry(REF_RO, GTF_INVALID, 0, 0);
    write_entry(REF_RW, GTF_INVALID, 0, 0);
    mm::free_frame(f).map_err(|e| msg!("free_frame: {e}"))?;
    r
}

fn map_ro(f: Frame) -> Check {
    write_entry(REF_RO, GTF_PERMIT_ACCESS | GTF_READONLY, own(), f.mfn);
    let out = map1(map_op(REF_RO, own(), GNTMAP_HOST_MAP, GRANT_VA))?;
    println!("INFO grant: read-write map of a read-only grant: status {}", out.status);
    ensure!(out.status == GNTST_GENERAL_ERROR, "read-write map of a read-only grant: status {}", out.status);
    ensure!(flags(REF_RO) == GTF_PERMIT_ACCESS | GTF_READONLY, "flags {:#x} after the refusal", flags(REF_RO));
    let h = map_ok(map_op(REF_RO, own(), GNTMAP_HOST_MAP | GNTMAP_READONLY, GRANT_VA), "read-only map")?;
    let fl = flags(REF_RO);
    ensure!(fl == GTF_PERMIT_ACCESS | GTF_READONLY | GTF_READING, "flags {fl:#x} while mapped read-only");
    ensure!(pte_of(GRANT_VA) & 2 == 0, "the read-only mapping's entry {:#x} is writable", pte_of(GRANT_VA));
    ensure!(probe::read_u64(GRANT_VA).ok() == Some(pattern(2, 0)), "reading the read-only mapping");
    ensure!(probe::write_u64(GRANT_VA, 1).is_err(), "writing the read-only mapping did not fault");
    let st = unmap1(h, GRANT_VA, 0)?;
    ensure!(
        st == GNTST_OKAY && flags(REF_RO) == GTF_PERMIT_ACCESS | GTF_READONLY,
        "unmap: {st}, flags {:#x}",
        flags(REF_RO)
    );

    // A read-write grant mapped read-only, then read-write too.
    write_entry(REF_RW, GTF_PERMIT_ACCESS, own(), f.mfn);
    let ro = map_ok(map_op(REF_RW, own(), GNTMAP_HOST_MAP | GNTMAP_READONLY, GRANT_VA), "read-only map")?;
    ensure!(flags(REF_RW) == GTF_PERMIT_ACCESS | GTF_READING, "flags {:#x}, one read-only pin", flags(REF_RW));
    let rw = map_ok(map_op(REF_RW, own(), GNTMAP_HOST_MAP, GRANT_VA2), "read-write map")?;
    let both = GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING;
    ensure!(flags(REF_RW) == both, "flags {:#x}, one pin of each kind", flags(REF_RW));
    let st = unmap1(rw, GRANT_VA2, 0)?;
    ensure!(st == GNTST_OKAY, "unmap of the read-write pin: {st}");
    ensure!(flags(REF_RW) == GTF_PERMIT_ACCESS | GTF_READING, "flags {:#x}: writing stays", flags(REF_RW));
    let st = unmap1(ro, GRANT_VA, 0)?;
    ensure!(st == GNTST_OKAY && flags(REF_RW) == GTF_PERMIT_ACCESS, "last unmap: {st}, flags {:#x}", flags(REF_RW));
    Ok(())
}

/// Copies between a grant and our own frames, and the copy statuses.
fn check_copy() -> Check {
    let a = mm::alloc_frame().map_err(|e| msg!("alloc_frame: {e}"))?;
    let b = match mm::alloc_frame() {
        Ok(b) => b,
        Err(e) => {
            let _ = mm::free_frame(a);
            return Err(msg!("alloc_frame: {e}"));
        }
    };
    fill(a, 3);
    fill(b, 4);
    let r = copies(a, b);
    write_entry(REF_RW, GTF_INVALID, 0, 0);
    write_entry(REF_RO, GTF_INVALID, 0, 0);
    mm::free_frame(a).map_err(|e| msg!("free_frame: {e}"))?;
    mm::free_frame(b).map_err(|e| msg!("free_frame: {e}"))?;
    r
}

fn copies(a: Frame, b: Frame) -> Check {
    write_entry(REF_RW, GTF_PERMIT_ACCESS, own(), a.mfn);
    write_entry(REF_RO, GTF_PERMIT_ACCESS | GTF_READONLY, own(), b.mfn);
    let me = own();
    // Grant to own frame, part of a page.
    let st =
        copy1(copy_op(copy_ptr(REF_RW.into(), me, 100), copy_ptr(b.mfn, DOMID_SELF, 7), 300, GNTCOPY_SOURCE_GREF))?;
    ensure!(st == GNTST_OKAY, "copy from a grant: status {st}");
    ensure!((0..300).all(|i| byte_at(b.va(), 7 + i) == byte_at(a.va(), 100 + i)), "the copied bytes differ");
    ensure!(byte_at(b.va(), 6) == pattern(4, 0).to_le_bytes()[6], "the copy wrote before its offset");
    // Own frame to grant, a whole page; a read-only grant as the source.
    let st = copy1(copy_op(copy_ptr(b.mfn, DOMID_SELF, 0), copy_ptr(REF_RW.into(), me, 0), 4096, GNTCOPY_DEST_GREF))?;
    ensure!(st == GNTST_OKAY, "copy to a grant: status {st}");
    ensure!((0..4096).all(|i| byte_at(a.va(), i) == byte_at(b.va(), i)), "the page copied differs");
    let st = copy1(copy_op(copy_ptr(REF_RO.into(), me, 0), copy_ptr(a.mfn, DOMID_SELF, 0), 8, GNTCOPY_SOURCE_GREF))?;
    ensure!(st == GNTST_OKAY, "copy from a read-only grant: status {st}");
    ensure!(flags(REF_RW) == GTF_PERMIT_ACCESS && flags(REF_RO) == GTF_PERMIT_ACCESS | GTF_READONLY, "flags left set");

    let nr = NR_ENTRIES.load(SeqCst);
    let cases: [(&str, GnttabCopy, i16); 5] = [
        (
            "past the end of the page",
            copy_op(copy_ptr(REF_RW.into(), me, 4000), copy_ptr(b.mfn, DOMID_SELF, 0), 97, GNTCOPY_SOURCE_GREF),
            GNTST_BAD_COPY_ARG,
        ),
        (
            "a reference past the table",
            copy_op(copy_ptr(nr.into(), me, 0), copy_ptr(b.mfn, DOMID_SELF, 0), 8, GNTCOPY_SOURCE_GREF),
            GNTST_BAD_GNTREF,
        ),
        (
            "a frame named by our numeric id",
            copy_op(copy_ptr(a.mfn, me, 0), copy_ptr(b.mfn, DOMID_SELF, 0), 8, 0),
            GNTST_PERMISSION_DENIED,
        ),
        (
            "a read-only grant as the destination",
            copy_op(copy_ptr(a.mfn, DOMID_SELF, 0), copy_ptr(REF_RO.into(), me, 0), 8, GNTCOPY_DEST_GREF),
            GNTST_GENERAL_ERROR,
        ),
        (
            "no such domain",
            copy_op(copy_ptr(REF_RW.into(), NO_SUCH_DOMAIN, 0), copy_ptr(b.mfn, DOMID_SELF, 0), 8, GNTCOPY_SOURCE_GREF),
            GNTST_BAD_DOMAIN,
        ),
    ];
    for (what, op, want) in cases {
        let st = copy1(op)?;
        println!("INFO grant: copy with {what}: status {st}");
        ensure!(st == want, "copy with {what}: status {st}, want {want}");
    }
    ensure!(flags(REF_RW) == GTF_PERMIT_ACCESS && flags(REF_RO) == GTF_PERMIT_ACCESS | GTF_READONLY, "flags left set");
    Ok(())
}

/// The map and unmap statuses for misuse, and `grant_table_op`'s own
/// errnos.
fn check_errors() -> Check {
    let f = mm::alloc_frame().map_err(|e| msg!("alloc_frame: {e}"))?;
    let r = errors(f);
    write_entry(REF_RW, GTF_INVALID, 0, 0);
    write_entry(REF_BAD, GTF_INVALID, 0, 0);
    mm::free_frame(f).map_err(|e| msg!("free_frame: {e}"))?;
    r
}

fn errors(f: Frame) -> Check {
    let me = own();
    let nr = NR_ENTRIES.load(SeqCst);
    write_entry(REF_RW, GTF_PERMIT_ACCESS, me, f.mfn);
    let map_cases: [(&str, GnttabMapGrantRef, i16); 7] = [
        ("no mapping flags", map_op(REF_RW, me, 0, GRANT_VA), GNTST_BAD_GNTREF),
        ("DOMID_SELF as the granter", map_op(REF_RW, DOMID_SELF, GNTMAP_HOST_MAP, GRANT_VA), GNTST_BAD_DOMAIN),
        ("no such domain", map_op(REF_RW, NO_SUCH_DOMAIN, GNTMAP_HOST_MAP, GRANT_VA), GNTST_BAD_DOMAIN),
        ("a reference past the table", map_op(nr, me, GNTMAP_HOST_MAP, GRANT_VA), GNTST_BAD_GNTREF),
        ("an invalid entry", map_op(REF_BAD, me, GNTMAP_HOST_MAP, GRANT_VA), GNTST_GENERAL_ERROR),
        ("an address with no L1", map_op(REF_RW, me, GNTMAP_HOST_MAP, NO_L1), GNTST_GENERAL_ERROR),
        ("a frame not ours", map_op(REF_BAD, me, GNTMAP_HOST_MAP, GRANT_VA), GNTST_BAD_PAGE),
    ];
    for (i, (what, op, want)) in map_cases.into_iter().enumerate() {
        match i {
            4 => write_entry(REF_BAD, GTF_INVALID, me, f.mfn),
            6 => write_entry(REF_BAD, GTF_PERMIT_ACCESS, me, 1),
            _ => {}
        }
        let out = map1(op)?;
        println!("INFO grant: map with {what}: status {}", out.status);
        ensure!(out.status == want, "map with {what}: status {}, want {want}", out.status);
        ensure!(flags(REF_RW) == GTF_PERMIT_ACCESS, "map with {what} left flags {:#x}", flags(REF_RW));
    }
    // Granted to another domain.
    write_entry(REF_BAD, GTF_PERMIT_ACCESS, NO_SUCH_DOMAIN, f.mfn);
    let out = map1(map_op(REF_BAD, me, GNTMAP_HOST_MAP, GRANT_VA))?;
    ensure!(out.status == GNTST_GENERAL_ERROR, "map of an entry for another domain: status {}", out.status);
    ensure!(pte_of(GRANT_VA) == 0, "a refused map left {:#x} mapped", pte_of(GRANT_VA));

    // Unmapping: a bad handle, the wrong address, no address (nothing
    // done, as Xen does), then the right one; a device address does not
    // matter for a host mapping (Xen 4.17 ignores it).
    let h = map_ok(map_op(REF_RW, me, GNTMAP_HOST_MAP, GRANT_VA), "map")?;
    let cases: [(&str, u32, u64, i16); 3] = [
        ("a bad handle", h ^ 0x7ff, GRANT_VA, GNTST_BAD_HANDLE),
        ("another address", h, GRANT_VA2, GNTST_GENERAL_ERROR),
        ("no address", h, 0, GNTST_OKAY),
    ];
    for (what, handle, va, want) in cases {
        let st = unmap1(handle, va, 0)?;
        println!("INFO grant: unmap with {what}: status {st}");
        ensure!(st == want, "unmap with {what}: status {st}, want {want}");
        ensure!(entry_mfn(pte_of(GRANT_VA)) == f.mfn, "unmap with {what} removed the mapping");
    }
    let st = unmap1(h, GRANT_VA, 0x1000)?;
    ensure!(st == GNTST_OKAY && pte_of(GRANT_VA) == 0, "unmap with a device address of 0x1000: status {st}");
    ensure!(flags(REF_RW) == GTF_PERMIT_ACCESS, "flags {:#x} after unmap", flags(REF_RW));

    // grant_table_op itself.
    let mut op = map_op(REF_RW, me, GNTMAP_HOST_MAP, GRANT_VA);
    let uop = &mut op as *mut GnttabMapGrantRef as u64;
    let calls: [(&str, u32, u32, Errno); 4] = [
        ("a negative count", GNTTABOP_MAP_GRANT_REF, 1 << 31, Errno::EINVAL),
        ("bits above the command", GNTTABOP_MAP_GRANT_REF | 1 << 12, 1, Errno::EINVAL),
        ("an unknown command", 13, 1, Errno::ENOSYS),
        ("setup_table with count 2", GNTTABOP_SETUP_TABLE, 2, Errno::EINVAL),
    ];
    for (what, cmd, count, want) in calls {
        // SAFETY: each call must be refused before the op is looked at;
        // were it done, it maps a scratch page.
        let r = unsafe { hv().grant_table_op(cmd, uop, count) };
        ensure!(r == Err(want), "grant_table_op with {what}: {r:?}, want {want}");
    }
    ensure!(pte_of(GRANT_VA) == 0, "a refused call mapped something");
    Ok(())
}

/// A batch of two maps whose second op runs off mapped memory: `EFAULT`,
/// with the first done (and its result written back).
fn check_batch() -> Check {
    let f = mm::alloc_frame().map_err(|e| msg!("alloc_frame: {e}"))?;
    let page = mm::alloc_frame().map_err(|e| msg!("alloc_frame: {e}"));
    let r = page.and_then(|p| {
        let r = mm::map(BATCH_VA, p.mfn, Prot::KERNEL_RW).map_err(|e| msg!("map: {e}")).and_then(|()| batch(f));
        // SAFETY: nothing references the batch page.
        let _ = unsafe { mm::unmap(BATCH_VA) };
        mm::free_frame(p).map_err(|e| msg!("free_frame: {e}"))?;
        r
    });
    write_entry(REF_RW, GTF_INVALID, 0, 0);
    mm::free_frame(f).map_err(|e| msg!("free_frame: {e}"))?;
    r
}

fn batch(f: Frame) -> Check {
    write_entry(REF_RW, GTF_PERMIT_ACCESS, own(), f.mfn);
    let size = core::mem::size_of::<GnttabMapGrantRef>() as u64;
    // The first op fills the page's last 32 bytes but 16; the second starts
    // there and runs onto the unmapped page after it.
    let first = BATCH_VA + PAGE_SIZE - size - 16;
    let op = map_op(REF_RW, own(), GNTMAP_HOST_MAP, GRANT_VA);
    // SAFETY: the batch page is mapped read-write and ours.
    unsafe { (first as *mut GnttabMapGrantRef).write_unaligned(op) };
    ensure!(pte_of(BATCH_VA + PAGE_SIZE) == 0, "the page after the batch page is mapped");
    // SAFETY: the first op maps a scratch page; the second cannot be read.
    let r = unsafe { hv().grant_table_op(GNTTABOP_MAP_GRANT_REF, first, 2) };
    // SAFETY: as above.
    let done = unsafe { (first as *const GnttabMapGrantRef).read_unaligned() };
    println!("INFO grant: a batch of 2 maps running off memory: {r:?}, first status {}", done.status);
    let unmapped = if done.status == GNTST_OKAY { unmap1(done.handle, GRANT_VA, 0)? } else { done.status };
    ensure!(r == Err(Errno::EFAULT), "the batch gave {r:?}, want EFAULT");
    ensure!(done.status == GNTST_OKAY, "the first op's status is {}", done.status);
    ensure!(unmapped == GNTST_OKAY, "unmapping the first op's grant: status {unmapped}");
    ensure!(flags(REF_RW) == GTF_PERMIT_ACCESS, "flags {:#x} after the batch", flags(REF_RW));
    Ok(())
}
