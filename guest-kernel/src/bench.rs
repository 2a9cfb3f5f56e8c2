//! The `bench` workload: what a hypercall, a trap bounce and the memory
//! hypercalls cost, in TSC ticks, which under QEMU's
//! `-icount shift=0,sleep=off` are executed instructions (guest,
//! hypervisor and the round trip between them).
//!
//! Each benchmark runs [`WARMUP`] times unmeasured, then [`ITERATIONS`]
//! times between two `rdtsc`s (fewer for the costly ones); it reports the
//! median less the median of an empty measurement, as
//! `BENCH <name> <instructions>`. Then the domain powers off.
//!
//! The memory benchmarks (after `mm::init`, in the scratch region):
//! - `mmu_update_512_batch`: one `mmu_update` of 512 requests mapping 512
//!   frames read-write into one empty L1 (the unmapping batch and TLB
//!   flush between runs are not measured); `mmu_update_512_per_entry` is
//!   that divided by 512.
//! - `pin_unpin_4level`: `MMUEXT_PIN_L4_TABLE` then `MMUEXT_UNPIN_TABLE`
//!   (two hypercalls) of a read-only tree of one L4, L3, L2 and L1, each
//!   with one entry, the L1 mapping a page read-write: validating and
//!   devalidating four tables.
//! - `update_va_mapping_invlpg`: `update_va_mapping` with `UVMF_INVLPG`,
//!   switching one address between two frames.
//!
//! The grant-table benchmarks (after those, see [`grants`]), each per
//! 4 KiB page: `memcpy_4k` (a plain copy, for scale), `grant_copy_4k` and
//! `grant_copy_4k_batch16_per_page` (`GNTTABOP_copy` from a page granted
//! to ourselves into our own frame, alone or 16 in one call),
//! `grant_map_unmap_4k` and `grant_map_unmap_4k_batch16_per_page`
//! (`GNTTABOP_map_grant_ref` then `GNTTABOP_unmap_grant_ref`, alone or 16
//! per call) and `grant_map_touch_unmap_4k` (the map, a copy of the page
//! out through the mapping, the unmap).
//!
//! Last, `evtchn_loopback_send`: `EVTCHNOP_send` on one end of a loopback
//! channel (to ourselves) with upcalls unmasked, so the hypervisor
//! delivers the upcall as the hypercall returns: the send, the bounce into
//! the event callback, the handler and the `iret` back.
//!
//! The `bench-yield count=<N>` workload ([`yield_switch`]) is separate: it
//! times `SCHEDOP_yield`, which only switches when another domain runs it
//! too.

mod grants;

use crate::probe::{self, probe};
use abi::guest::Hypercalls;
use abi::mm::DOMID_SELF;
use abi::mm::{
    MmuUpdate, MmuextOp, MMUEXT_PIN_L4_TABLE, MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_UNPIN_TABLE, UVMF_INVLPG, UVMF_LOCAL,
};
use abi::sched::ShutdownReason;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use guest_kernel::event::{self, Port};
use guest_kernel::hypercall::{self, hv};
use guest_kernel::layout::SCRATCH_BASE;
use guest_kernel::mm::{self, Frame};
use guest_kernel::pagetable::{leaf_entry, pt_update, table_entry, Prot, ENTRIES};
use guest_kernel::runtime::shutdown;
use guest_kernel::text::Msg;
use guest_kernel::{msg, println, traps};

/// Unmeasured runs before measuring.
const WARMUP: usize = 100;
/// Measured runs per benchmark.
const ITERATIONS: usize = 1000;
/// Measured runs of the console benchmark, whose every run prints a line.
const CONSOLE_ITERATIONS: usize = 200;
/// Measured runs of the 512-entry batch and the pin/unpin pair.
const MEMORY_ITERATIONS: usize = 200;

/// Entries in the `mmu_update` batch benchmark: a whole L1.
const BATCH: usize = ENTRIES;
/// Where the batch benchmark maps (an empty 2 MiB of the scratch region).
const BATCH_VA: u64 = SCRATCH_BASE + 8 * (2 << 20);
/// The address `update_va_mapping_invlpg` remaps (in another 2 MiB).
const REMAP_VA: u64 = SCRATCH_BASE + 9 * (2 << 20);

/// The 64 bytes the console benchmark writes (one line).
const LINE: &[u8; 64] = b"bench: console_io write of exactly sixty-four bytes of text....\n";

fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: rdtsc reads the TSC into edx:eax; the hypervisor lets a PV
    // guest run it (or emulates it).
    unsafe { core::arch::asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// The median TSC delta of `runs` measured runs of `op`, after warmup.
fn median_ticks(runs: usize, op: impl FnMut()) -> u64 {
    median_ticks_after(runs, || {}, op)
}

/// The median TSC delta of `runs` measured runs of `op`, each after an
/// unmeasured run of `prepare`, after warmup.
fn median_ticks_after(runs: usize, mut prepare: impl FnMut(), mut op: impl FnMut()) -> u64 {
    let mut samples = [0u64; ITERATIONS];
    let runs = runs.min(ITERATIONS);
    for _ in 0..WARMUP.min(runs) {
        prepare();
        op();
    }
    for s in samples.iter_mut().take(runs) {
        prepare();
        let t0 = rdtsc();
        op();
        *s = rdtsc().wrapping_sub(t0);
    }
    let samples = &mut samples[..runs];
    samples.sort_unstable();
    samples[runs / 2]
}

fn report(name: &str, runs: usize, baseline: u64, op: impl FnMut()) {
    let ticks = median_ticks(runs, op).saturating_sub(baseline);
    println!("BENCH {name} {ticks}");
}

/// Runs every benchmark and powers off.
pub fn run() -> ! {
    traps::set_handler(probe::handler);
    if let Err(e) = traps::install(&[]) {
        println!("bench: set_trap_table failed: {e}");
        shutdown(ShutdownReason::Crash);
    }
    println!(
        "bench: {ITERATIONS} runs each after {WARMUP} warmup runs (console: {CONSOLE_ITERATIONS}); median TSC ticks, less the empty measurement"
    );
    let baseline = median_ticks(ITERATIONS, || {});
    println!("BENCH rdtsc_pair {baseline}");

    let h = hv();
    report("hypercall_null", ITERATIONS, baseline, || {
        let _ = h.xen_version();
    });
    let raw = Hypercalls::new(hypercall::raw_syscall());
    report("hypercall_null_syscall", ITERATIONS, baseline, || {
        let _ = raw.xen_version();
    });
    report("console_write_64", CONSOLE_ITERATIONS, baseline, || {
        let _ = h.console_write(LINE);
    });
    report("trap_bounce_ud2", ITERATIONS, baseline, || {
        let p = probe!("ud2");
        if p.seen.is_none() {
            println!("bench: ud2 did not trap");
        }
    });

    match mm::init() {
        Ok(_) => {
            for (what, result) in [
                ("mmu_update_512", bench_mmu_update_batch(baseline)),
                ("pin_unpin_4level", bench_pin_unpin(baseline)),
                ("update_va_mapping_invlpg", bench_update_va_mapping(baseline)),
                ("grant", grants::run(baseline)),
            ] {
                if let Err(why) = result {
                    println!("bench: {what}: {why}");
                }
            }
        }
        Err(e) => println!("bench: mm::init: {e}; no memory benchmarks"),
    }
    if let Err(why) = bench_evtchn_loopback(baseline) {
        println!("bench: evtchn_loopback_send: {why}");
    }
    shutdown(ShutdownReason::Poweroff)
}

/// `what` failed with `e`, as a message.
fn failed(what: &str, e: impl core::fmt::Display) -> Msg {
    msg!("{what}: {e}")
}

/// `n` free frames, or none at all.
fn frames(n: usize) -> Result<Vec<Frame>, Msg> {
    let mut got = Vec::new();
    got.try_reserve_exact(n).map_err(|_| msg!("no heap for {n} frames"))?;
    for _ in 0..n {
        match mm::alloc_frame() {
            Ok(f) => got.push(f),
            Err(e) => {
                give_back(&got);
                return Err(failed("alloc_frame", e));
            }
        }
    }
    Ok(got)
}

fn give_back(frames: &[Frame]) {
    for f in frames {
        let _ = mm::free_frame(*f);
    }
}

fn flush_tlb() {
    let op = MmuextOp { cmd: MMUEXT_TLB_FLUSH_LOCAL, ..MmuextOp::default() };
    // SAFETY: a TLB flush changes no mapping.
    let _ = unsafe { hv().mmuext_op(&[op]) };
}

/// `mmu_update` of 512 new read-write mappings into one L1.
fn bench_mmu_update_batch(baseline: u64) -> Result<(), Msg> {
    let l1 = mm::l1_table(BATCH_VA).map_err(|e| failed("the L1", e))?;
    let frames = frames(BATCH)?;
    let map: Vec<MmuUpdate> =
        frames.iter().enumerate().map(|(i, f)| pt_update(l1, i, leaf_entry(f.mfn, Prot::KERNEL_RW))).collect();
    let clear: Vec<MmuUpdate> = (0..BATCH).map(|i| pt_update(l1, i, 0)).collect();
    let bad = core::cell::Cell::new(None);
    let ticks = median_ticks_after(
        MEMORY_ITERATIONS,
        || {
            // SAFETY: the L1's pages are referenced by nothing.
            if let Err(e) = unsafe { hv().mmu_update(&clear) } {
                bad.set(Some(failed("the unmapping batch", e)));
            }
            flush_tlb();
        },
        || {
            // SAFETY: new mappings of free frames of ours at unused addresses.
            if let Err(e) = unsafe { hv().mmu_update(&map) } {
                bad.set(Some(failed("the mapping batch", e)));
            }
        },
    )
    .saturating_sub(baseline);
    // SAFETY: as above.
    let cleared = unsafe { hv().mmu_update(&clear) };
    flush_tlb();
    give_back(&frames);
    if let Some(why) = bad.get() {
        return Err(why);
    }
    cleared.map_err(|e| failed("the last unmapping batch", e))?;
    println!("BENCH mmu_update_512_batch {ticks}");
    println!("BENCH mmu_update_512_per_entry {}", ticks / BATCH as u64);
    Ok(())
}

/// Maps `f` read-only (`ro`) or read-write in the direct map.
fn direct_map(f: &Frame, ro: bool) -> Result<(), Msg> {
    let prot = if ro { Prot::KERNEL_RO } else { Prot::KERNEL_RW };
    // SAFETY: the frame is the benchmark's; no reference points into it.
    unsafe { hv().update_va_mapping(f.va(), leaf_entry(f.mfn, prot), UVMF_INVLPG | UVMF_LOCAL) }
        .map(drop)
        .map_err(|e| failed("update_va_mapping of the direct map", e))
}

/// Pin and unpin of a four-level tree with one entry per table.
fn bench_pin_unpin(baseline: u64) -> Result<(), Msg> {
    let f = frames(5)?;
    let (tables, data) = (&f[..4], &f[4]);
    for (i, t) in tables.iter().enumerate() {
        let e = match tables.get(i + 1) {
            Some(below) => table_entry(below.mfn),
            None => leaf_entry(data.mfn, Prot::KERNEL_RW),
        };
        // SAFETY: a free frame of ours, mapped read-write in the direct map.
        unsafe { t.zero() };
        // SAFETY: as above; entry 0 is inside the page.
        unsafe { (t.va() as *mut u64).write_volatile(e) };
    }
    let r = tables.iter().try_for_each(|t| direct_map(t, true)).and_then(|()| {
        let mut bad = None;
        let pin = MmuextOp { cmd: MMUEXT_PIN_L4_TABLE, _pad0: 0, arg1: tables[0].mfn, arg2: 0 };
        let unpin = MmuextOp { cmd: MMUEXT_UNPIN_TABLE, ..pin };
        let ticks = median_ticks(MEMORY_ITERATIONS, || {
            // SAFETY: pinning validates a tree nothing uses; unpinning
            // drops that again.
            let r = unsafe { hv().mmuext_op(&[pin]) }.and_then(|_| unsafe { hv().mmuext_op(&[unpin]) });
            if let Err(e) = r {
                bad = Some(failed("pin and unpin", e));
            }
        });
        match bad {
            Some(why) => Err(why),
            None => Ok(ticks.saturating_sub(baseline)),
        }
    });
    let back = tables.iter().try_for_each(|t| direct_map(t, false));
    if back.is_ok() {
        // (Frames not writable again stay out of the allocator.)
        give_back(&f);
    }
    let ticks = r?;
    back?;
    println!("BENCH pin_unpin_4level {ticks}");
    Ok(())
}

/// `update_va_mapping` with `UVMF_INVLPG`, between two frames.
fn bench_update_va_mapping(baseline: u64) -> Result<(), Msg> {
    let f = frames(2)?;
    let entries = [leaf_entry(f[0].mfn, Prot::KERNEL_RW), leaf_entry(f[1].mfn, Prot::KERNEL_RW)];
    let r = mm::map(REMAP_VA, f[0].mfn, Prot::KERNEL_RW).map_err(|e| failed("mapping the page", e)).map(|()| {
        let mut bad = None;
        let mut next = 1;
        let ticks = median_ticks(ITERATIONS, || {
            // SAFETY: nothing references the page at REMAP_VA.
            if let Err(e) = unsafe { hv().update_va_mapping(REMAP_VA, entries[next], UVMF_INVLPG | UVMF_LOCAL) } {
                bad = Some(failed("update_va_mapping", e));
            }
            next ^= 1;
        });
        // SAFETY: as above.
        let _ = unsafe { mm::unmap(REMAP_VA) };
        (ticks.saturating_sub(baseline), bad)
    });
    give_back(&f);
    let (ticks, bad) = r?;
    if let Some(why) = bad {
        return Err(why);
    }
    println!("BENCH update_va_mapping_invlpg {ticks}");
    Ok(())
}

/// `bench-yield count=<N>`: `N` `SCHEDOP_yield` calls in batches of 100,
/// reported as `BENCH yield_switch <ticks>`: the median batch's TSC ticks
/// per call; then powers off. With two domains running it, each call is a
/// switch to the other domain and, after its own yield, a switch back. The
/// median keeps out batches that waited for the other domain to boot or
/// ran after it had finished.
pub fn yield_switch(count: u64) -> ! {
    const BATCH: u64 = 100;
    // On the stack: this workload sets up no heap.
    let mut per_call = [0u64; 256];
    let batches = ((count / BATCH) as usize).clamp(1, per_call.len());
    let h = hv();
    for slot in &mut per_call[..batches] {
        let t0 = rdtsc();
        for _ in 0..BATCH {
            let _ = h.sched_yield();
        }
        *slot = rdtsc().wrapping_sub(t0) / BATCH;
    }
    let per_call = &mut per_call[..batches];
    per_call.sort_unstable();
    println!("BENCH yield_switch {}", per_call[batches / 2]);
    shutdown(ShutdownReason::Poweroff)
}

/// Upcalls the loopback benchmark's handler took.
static LOOPBACK_EVENTS: AtomicU64 = AtomicU64::new(0);

fn on_loopback_event(_: Port) {
    LOOPBACK_EVENTS.fetch_add(1, SeqCst);
}

/// A send on a loopback channel, with the upcall it causes.
fn bench_evtchn_loopback(baseline: u64) -> Result<(), Msg> {
    event::init().map_err(|e| failed("event::init", e))?;
    let a = hv().evtchn_alloc_unbound(DOMID_SELF, DOMID_SELF).map_err(|e| failed("alloc_unbound(self, self)", e))?;
    let b = match hv().evtchn_bind_interdomain(DOMID_SELF, a) {
        Ok(b) => b,
        Err(e) => {
            let _ = hv().evtchn_close(a);
            return Err(failed("bind_interdomain(self)", e));
        }
    };
    // Binding leaves `b` pending; that event is not one we sent.
    event::clear_pending(b);
    event::set_handler(a, Some(on_loopback_event));
    let before = LOOPBACK_EVENTS.load(SeqCst);
    let mut bad = None;
    let was = event::mask_upcalls();
    event::unmask_upcalls();
    let ticks = median_ticks(ITERATIONS, || {
        if let Err(e) = event::send(b) {
            bad = Some(failed("send", e));
        }
    })
    .saturating_sub(baseline);
    event::mask_upcalls();
    event::restore_upcalls(was);
    let delivered = LOOPBACK_EVENTS.load(SeqCst) - before;
    event::set_handler(a, None);
    let _ = hv().evtchn_close(b);
    let _ = hv().evtchn_close(a);
    if let Some(why) = bad {
        return Err(why);
    }
    let sends = (WARMUP + ITERATIONS) as u64;
    if delivered != sends {
        return Err(msg!("{sends} sends delivered {delivered} upcalls"));
    }
    println!("BENCH evtchn_loopback_send {ticks}");
    Ok(())
}
