//! The grant-table benchmarks of the `bench` workload: what moving one
//! 4 KiB page costs by mapping a grant, by `GNTTABOP_copy`, and, for
//! scale, by a plain copy.
//!
//! The domain grants [`BATCH`] of its own frames to itself (Xen allows
//! it) through [`grant`], read-write, and maps them at fixed addresses of
//! an empty 2 MiB of the scratch region ([`MAP_VA`]). Each figure is per
//! page:
//! - `memcpy_4k`: `copy_nonoverlapping` of 4096 bytes between two frames
//!   of the direct map (measured before the grant table is set up, so it
//!   is printed even where grants are not offered).
//! - `grant_copy_4k`: one `GNTTABOP_copy` of 4096 bytes from a granted
//!   page (by reference) into one of our frames (by machine frame);
//!   `grant_copy_4k_batch16_per_page`: one call of [`BATCH`] such copies,
//!   divided by [`BATCH`].
//! - `grant_map_unmap_4k`: one `GNTTABOP_map_grant_ref` (read-write,
//!   `GNTMAP_HOST_MAP`) then one `GNTTABOP_unmap_grant_ref`;
//!   `grant_map_unmap_4k_batch16_per_page`: a map call and an unmap call
//!   of [`BATCH`] ops each, divided by [`BATCH`].
//! - `grant_map_touch_unmap_4k`: the map, a copy of the 4096 bytes
//!   through the mapping into one of our frames, then the unmap.
//!
//! The grant benchmarks include checking each op's status (and, for the
//! maps, clearing it first, so that a failed call leaves no doubt about
//! which pages are mapped).

use super::{failed, frames, give_back, median_ticks, ITERATIONS, MEMORY_ITERATIONS};
use abi::grant_table::{
    GnttabCopy, GnttabCopyPtr, GnttabMapGrantRef, GnttabUnmapGrantRef, GNTCOPY_SOURCE_GREF, GNTMAP_HOST_MAP, GNTST_OKAY,
};
use abi::mm::DOMID_SELF;
use alloc::vec::Vec;
use core::hint::black_box;
use guest_kernel::grant::{self, GrantRef};
use guest_kernel::hypercall::hv;
use guest_kernel::layout::{PAGE_SIZE, SCRATCH_BASE};
use guest_kernel::mm::{self, Frame};
use guest_kernel::text::Msg;
use guest_kernel::{msg, println};

/// Pages in the batched benchmarks.
const BATCH: usize = 16;
/// Where the map benchmarks map page `i` (`+ i` pages): an empty 2 MiB of
/// the scratch region, past the memory benchmarks'.
const MAP_VA: u64 = SCRATCH_BASE + 10 * (2 << 20);
/// Bytes moved per page.
const PAGE: usize = PAGE_SIZE as usize;
/// A status no `GNTST_*` has: the op was not done.
const NOT_DONE: i16 = i16::MAX;

/// Runs the grant benchmarks (after `mm::init`), giving back every grant,
/// mapping and frame they took.
pub(super) fn run(baseline: u64) -> Result<(), Msg> {
    let src = frames(BATCH)?;
    let dst = match frames(BATCH) {
        Ok(dst) => dst,
        Err(why) => {
            give_back(&src);
            return Err(why);
        }
    };
    for (i, f) in src.iter().enumerate() {
        fill(f, i as u64);
    }
    bench_memcpy(baseline, &src[0], &dst[0]);
    let r = with_grants(&src, |me, grefs| {
        bench_copy(baseline, me, grefs, &dst)?;
        bench_map(baseline, me, grefs, &src, &dst)
    });
    give_back(&dst);
    match r {
        Ok(()) => give_back(&src),
        // A grant still taken leaves its frames out of the allocator.
        Err(Leak::Grants(why)) => return Err(why),
        Err(Leak::Nothing(why)) => {
            give_back(&src);
            return Err(why);
        }
    }
    Ok(())
}

/// Why the grant benchmarks stopped, and whether the granted frames may
/// be reused.
enum Leak {
    /// Every grant was taken back.
    Nothing(Msg),
    /// A grant could not be taken back.
    Grants(Msg),
}

/// Runs `body` with `src` granted read-write to ourselves (our domain id
/// and the references, in order), then ends the grants.
fn with_grants(src: &[Frame], body: impl FnOnce(u16, &[GrantRef]) -> Result<(), Msg>) -> Result<(), Leak> {
    grant::init().map_err(|e| Leak::Nothing(failed("grant::init", e)))?;
    let me = guest_kernel::event::own_domid().map_err(|e| Leak::Nothing(failed("own domid", e)))?;
    let mut grefs = Vec::new();
    grefs.try_reserve_exact(src.len()).map_err(|_| Leak::Nothing(msg!("no heap for {} grants", src.len())))?;
    let mut r = Ok(());
    for f in src {
        match grant::grant_access(me, f.mfn, false) {
            Ok(g) => grefs.push(g),
            Err(e) => {
                r = Err(failed("grant_access", e));
                break;
            }
        }
    }
    if r.is_ok() {
        r = body(me, &grefs);
    }
    let mut leak = None;
    for g in grefs {
        if let Err(e) = grant::end_access(g) {
            leak.get_or_insert(msg!("end_access({g}): {e}"));
        }
    }
    match (r, leak) {
        (_, Some(why)) => Err(Leak::Grants(why)),
        (Err(why), None) => Err(Leak::Nothing(why)),
        (Ok(()), None) => Ok(()),
    }
}

/// The `i`th u64 of the pattern in frame `seed`.
fn pattern(seed: u64, i: u64) -> u64 {
    (seed << 48) ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Fills `f` with pattern `seed` through the direct map.
fn fill(f: &Frame, seed: u64) {
    for i in 0..PAGE_SIZE / 8 {
        // SAFETY: a frame of the benchmarks', mapped read-write in the
        // direct map and referenced by nothing else; `i` is inside it.
        unsafe { (f.va() as *mut u64).wrapping_add(i as usize).write_volatile(pattern(seed, i)) };
    }
}

/// Whether the page at `va` holds pattern `seed`.
fn holds(va: u64, seed: u64) -> bool {
    (0..PAGE_SIZE / 8).all(|i| {
        // SAFETY: callers pass a page they have mapped; `i` is inside it.
        let v = unsafe { (va as *const u64).wrapping_add(i as usize).read_volatile() };
        v == pattern(seed, i)
    })
}

/// Copies the page at `from` to the page at `to`.
///
/// # Safety
///
/// Both are distinct mapped pages, `to` writable, and no reference points
/// into `to`.
unsafe fn copy_page(from: u64, to: u64) {
    let (from, to) = (black_box(from as *const u8), black_box(to as *mut u8));
    // SAFETY: the caller's promise.
    unsafe { core::ptr::copy_nonoverlapping(from, to, PAGE) };
    black_box(to);
}

/// `memcpy_4k`: a page copied between two of our frames.
fn bench_memcpy(baseline: u64, src: &Frame, dst: &Frame) {
    let ticks = median_ticks(ITERATIONS, || {
        // SAFETY: two frames of the benchmarks', in the direct map,
        // referenced by nothing else.
        unsafe { copy_page(src.va(), dst.va()) };
    })
    .saturating_sub(baseline);
    println!("BENCH memcpy_4k {ticks}");
}

/// A copy of all of granted page `gref` into our frame `dst`.
fn copy_op(me: u16, gref: GrantRef, dst: &Frame) -> GnttabCopy {
    GnttabCopy {
        source: GnttabCopyPtr { u: gref.into(), domid: me, offset: 0, _pad0: 0 },
        dest: GnttabCopyPtr { u: dst.mfn, domid: DOMID_SELF, offset: 0, _pad0: 0 },
        len: PAGE as u16,
        flags: GNTCOPY_SOURCE_GREF,
        status: 0,
        _pad0: 0,
    }
}

/// Does the copies `ops`: `Err` if the call or an op failed.
fn copy(ops: &mut [GnttabCopy]) -> Result<(), Msg> {
    // SAFETY: the destinations are frames of the benchmarks' that nothing
    // references.
    unsafe { hv().gnttab_copy(ops) }.map_err(|e| failed("gnttab_copy", e))?;
    match ops.iter().find(|op| op.status != GNTST_OKAY) {
        Some(op) => Err(msg!("gnttab_copy: status {}", op.status)),
        None => Ok(()),
    }
}

/// `grant_copy_4k` and `grant_copy_4k_batch16_per_page`.
fn bench_copy(baseline: u64, me: u16, grefs: &[GrantRef], dst: &[Frame]) -> Result<(), Msg> {
    let mut ops: Vec<GnttabCopy> = grefs.iter().zip(dst).map(|(&g, d)| copy_op(me, g, d)).collect();
    // Once unmeasured, to see that the copies copy.
    copy(&mut ops)?;
    for (i, d) in dst.iter().enumerate() {
        if !holds(d.va(), i as u64) {
            return Err(msg!("gnttab_copy of page {i} did not copy it"));
        }
    }
    for (name, n) in [("grant_copy_4k", 1), ("grant_copy_4k_batch16_per_page", BATCH)] {
        let mut bad = None;
        let ticks = median_ticks(MEMORY_ITERATIONS, || {
            if bad.is_none() {
                bad = copy(&mut ops[..n]).err();
            }
        })
        .saturating_sub(baseline);
        if let Some(why) = bad {
            return Err(why);
        }
        println!("BENCH {name} {}", ticks / n as u64);
    }
    Ok(())
}

/// Maps every op of `maps`, copies each page to `touch` if given, then
/// unmaps them (the handles into `unmaps`): `Err` if anything failed,
/// with every page that was mapped unmapped again.
fn map_touch_unmap(
    maps: &mut [GnttabMapGrantRef],
    unmaps: &mut [GnttabUnmapGrantRef],
    touch: Option<u64>,
) -> Result<(), Msg> {
    for m in maps.iter_mut() {
        m.status = NOT_DONE;
    }
    // SAFETY: each op maps a page of ours at its own address at MAP_VA,
    // which nothing else maps or references.
    let r = unsafe { hv().gnttab_map_grant_ref(maps) };
    let mut ok = r.is_ok();
    for (m, u) in maps.iter().zip(unmaps.iter_mut()) {
        ok &= m.status == GNTST_OKAY;
        u.handle = m.handle;
        u.status = NOT_DONE;
    }
    if !ok {
        return Err(undo(maps, r.err()));
    }
    if let Some(to) = touch {
        for m in maps.iter() {
            // SAFETY: `host_addr` maps a granted page just now; `to` is
            // another frame of the benchmarks' that nothing references.
            unsafe { copy_page(m.host_addr, to) };
        }
    }
    // SAFETY: the pages at MAP_VA are referenced by nothing.
    unsafe { hv().gnttab_unmap_grant_ref(unmaps) }.map_err(|e| failed("unmap_grant_ref", e))?;
    match unmaps.iter().find(|u| u.status != GNTST_OKAY) {
        Some(u) => Err(msg!("unmap_grant_ref: status {}", u.status)),
        None => Ok(()),
    }
}

/// Unmaps the ops of a map call that failed (with `e`, or in an op's
/// status) that were done: why it failed.
fn undo(maps: &[GnttabMapGrantRef], e: Option<abi::Errno>) -> Msg {
    for m in maps.iter().filter(|m| m.status == GNTST_OKAY) {
        let mut op = [GnttabUnmapGrantRef { host_addr: m.host_addr, handle: m.handle, ..Default::default() }];
        // SAFETY: as for the unmap in `map_touch_unmap`.
        let _ = unsafe { hv().gnttab_unmap_grant_ref(&mut op) };
    }
    match (e, maps.iter().find(|m| m.status != GNTST_OKAY)) {
        (Some(e), _) => failed("map_grant_ref", e),
        (None, Some(m)) => msg!("map_grant_ref: status {}", m.status),
        (None, None) => msg!("map_grant_ref failed"),
    }
}

/// `grant_map_unmap_4k`, `grant_map_unmap_4k_batch16_per_page` and
/// `grant_map_touch_unmap_4k`.
fn bench_map(baseline: u64, me: u16, grefs: &[GrantRef], src: &[Frame], dst: &[Frame]) -> Result<(), Msg> {
    // The hypervisor writes the mappings into the L1 that must exist.
    mm::l1_table(MAP_VA).map_err(|e| failed("the L1 at MAP_VA", e))?;
    let at = |i: usize| MAP_VA + i as u64 * PAGE_SIZE;
    let mut maps: Vec<GnttabMapGrantRef> = grefs
        .iter()
        .enumerate()
        .map(|(i, &g)| GnttabMapGrantRef {
            host_addr: at(i),
            flags: GNTMAP_HOST_MAP,
            ref_: g,
            dom: me,
            ..Default::default()
        })
        .collect();
    let mut unmaps: Vec<GnttabUnmapGrantRef> =
        (0..grefs.len()).map(|i| GnttabUnmapGrantRef { host_addr: at(i), ..Default::default() }).collect();

    // Once unmeasured, to see that the mappings show the granted pages.
    for d in dst {
        // SAFETY: a frame of the benchmarks', referenced by nothing.
        unsafe { d.zero() };
    }
    for (i, d) in dst.iter().enumerate() {
        map_touch_unmap(&mut maps[i..=i], &mut unmaps[i..=i], Some(d.va()))?;
        if !holds(d.va(), i as u64) {
            return Err(msg!("the mapping of grant {} does not show page {i} ({:#x})", grefs[i], src[i].mfn));
        }
    }

    let to = dst[0].va();
    for (name, n, touch) in [
        ("grant_map_unmap_4k", 1, None),
        ("grant_map_unmap_4k_batch16_per_page", BATCH, None),
        ("grant_map_touch_unmap_4k", 1, Some(to)),
    ] {
        let mut bad = None;
        let ticks = median_ticks(MEMORY_ITERATIONS, || {
            if bad.is_none() {
                bad = map_touch_unmap(&mut maps[..n], &mut unmaps[..n], touch).err();
            }
        })
        .saturating_sub(baseline);
        if let Some(why) = bad {
            return Err(why);
        }
        println!("BENCH {name} {}", ticks / n as u64);
    }
    Ok(())
}
