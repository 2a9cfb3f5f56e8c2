//! Selftest checks of the kernel's memory management and user mode: frames
//! over the p2m and M2P, page tables changed only through `mmu_update`,
//! `update_va_mapping` and `mmuext_op`, the reservation, the heap, and a
//! user task's system calls and faults.
//!
//! They run after the trap checks (faults are part of what they check) and
//! after `shared_info` is mapped (for `cr2` and the event mask). `mm_init`
//! comes first; if it fails, the rest are failed unrun.

use super::{Check, TrapCheck};
use crate::probe::{self, probe, Probe};
use abi::arch::{FLAT_USER_CS, FLAT_USER_SS};
use abi::guest::BatchError;
use abi::mm::{MmuUpdate, MmuextOp, MMUEXT_TLB_FLUSH_LOCAL, UVMF_INVLPG, UVMF_LOCAL};
use abi::Errno;
use alloc::boxed::Box;
use alloc::vec::Vec;
use guest_kernel::ensure;
use guest_kernel::frame::{PF, RFLAGS_IF};
use guest_kernel::hypercall::hv;
use guest_kernel::layout::{pte, table_index, va_of_pfn, PAGE_SIZE, SCRATCH_BASE, USER_CODE, USER_STACK};
use guest_kernel::mm::{self, Frame};
use guest_kernel::pagetable::{entry_mfn, entry_prot, is_present, leaf_entry, pt_update, Prot};
use guest_kernel::user::{Exit, Program, Task, HELLO, SYS_ADD, SYS_EXIT, SYS_WRITE, USER_FAULT_ADDR};
use guest_kernel::{entry, msg, println, shared};

/// The checks, in order (`mm_init` first).
pub const CHECKS: [TrapCheck; 12] = [
    ("mm_init", check_mm_init),
    ("map_unmap", check_map_unmap),
    ("protect", check_protect),
    ("pin_new_tree", check_pin_new_tree),
    ("m2p_read", check_m2p_read),
    ("mmu_update_done", check_mmu_update_done),
    ("long_batch", check_long_batch),
    ("decrease_increase", check_decrease_increase),
    ("heap", check_heap),
    ("user_syscall", check_user_syscall),
    ("user_fault", check_user_fault),
    ("frames_returned", check_frames_returned),
];

/// Error code of a write to a present read-only page in kernel mode.
const PF_PROTECTION_WRITE: u64 = 0b011;
/// Error code of a read of a not-present page in user mode.
const PF_USER_NOT_PRESENT_READ: u64 = 0b100;

/// Where each check maps its pages (all in the scratch region's first L1).
const MAP_UNMAP_VA: u64 = SCRATCH_BASE;
const PROTECT_VA: u64 = SCRATCH_BASE + PAGE_SIZE;
const BATCH_VA: u64 = SCRATCH_BASE + 16 * PAGE_SIZE;

/// Free frames when `mm_init` finished: `frames_returned` expects them all
/// back.
static FREE_AFTER_INIT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn mm_err(what: &str) -> impl FnOnce(guest_kernel::pagetable::MmError) -> guest_kernel::text::Msg + '_ {
    move |e| msg!("{what}: {e}")
}

/// The fault a probe took, checked to be `#PF` at the probed instruction
/// with `error_code` and `cr2 == addr`.
fn expect_pf(p: &Probe, error_code: u64, addr: u64) -> Check {
    let s = p.seen.ok_or_else(|| msg!("no fault"))?;
    ensure!(s.vector == u64::from(PF), "vector {}, want #PF", s.vector);
    ensure!(s.error_code == error_code, "#PF error code {:#x}, want {error_code:#x}", s.error_code);
    ensure!(s.rip == p.at, "#PF at {:#x}, want {:#x}", s.rip, p.at);
    ensure!(s.cr2 == Some(addr), "cr2 {:?}, want {addr:#x}", s.cr2);
    Ok(())
}

fn pattern(i: u64) -> u64 {
    0x5a5a_0000_0000_0000 ^ (i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Writes the pattern for `seed` over the page at `va`.
///
/// # Safety
///
/// The page at `va` is mapped writable and nothing references it.
unsafe fn fill(va: u64, seed: u64) {
    for i in 0..PAGE_SIZE / 8 {
        // SAFETY: the caller's promise; aligned u64s inside the page.
        unsafe { (va as *mut u64).wrapping_add(i as usize).write_volatile(pattern(seed + i)) };
    }
}

/// Whether the page at `va` holds the pattern for `seed`.
///
/// # Safety
///
/// The page at `va` is mapped readable.
unsafe fn holds(va: u64, seed: u64) -> bool {
    // SAFETY: the caller's promise; aligned u64s inside the page.
    (0..PAGE_SIZE / 8)
        .all(|i| unsafe { (va as *const u64).wrapping_add(i as usize).read_volatile() } == pattern(seed + i))
}

fn check_mm_init() -> Check {
    let i = mm::init().map_err(mm_err("mm::init"))?;
    let free = mm::free_frames();
    FREE_AFTER_INIT.store(free, core::sync::atomic::Ordering::Relaxed);
    println!(
        "INFO mm nr_pages={} first_free_pfn={} boot_mapped_pfns={} usable_pfns={} direct_map_tables={} free_frames={free}",
        i.nr_pages, i.first_free_pfn, i.boot_mapped_pfns, i.usable_pfns, i.tables_made
    );
    ensure!(
        i.boot_mapped_pfns > i.first_free_pfn,
        "the boot mapping ends at pfn {} before the boot layout does",
        i.boot_mapped_pfns
    );
    ensure!(
        free + i.tables_made == i.usable_pfns - i.first_free_pfn,
        "{free} frames free + {} tables != {} frames after the boot layout",
        i.tables_made,
        i.usable_pfns - i.first_free_pfn
    );
    // The direct map reaches the last frame, read-write, and it is that frame.
    let last = i.usable_pfns - 1;
    let e = mm::lookup_in(i.kernel_root, va_of_pfn(last)).map_err(mm_err("walking the direct map"))?;
    let e = e.ok_or_else(|| msg!("the last frame (pfn {last}) is not in the direct map"))?;
    ensure!(
        Some(entry_mfn(e)) == mm::p2m(last),
        "pfn {last} is mapped to mfn {:#x}, p2m says {:?}",
        entry_mfn(e),
        mm::p2m(last)
    );
    ensure!(e & pte::RW != 0, "pfn {last} is mapped read-only");
    Ok(())
}

fn check_map_unmap() -> Check {
    let f = mm::alloc_frame().map_err(mm_err("alloc_frame"))?;
    let r = map_unmap(f);
    if r.is_err() {
        // SAFETY: nothing references the page; best effort on the way out.
        let _ = unsafe { mm::unmap(MAP_UNMAP_VA) };
    }
    mm::free_frame(f).map_err(mm_err("free_frame"))?;
    r
}

fn map_unmap(f: Frame) -> Check {
    let va = MAP_UNMAP_VA;
    mm::map(va, f.mfn, Prot::KERNEL_RW).map_err(mm_err("map"))?;
    let e = mm::lookup_in(mm::kernel_space().root, va).map_err(mm_err("lookup"))?.unwrap_or(0);
    // (The hypervisor adds the user bit to every L1 entry: don't look.)
    ensure!(entry_mfn(e) == f.mfn && entry_prot(e).writable, "{va:#x} maps entry {e:#x}, want mfn {:#x} RW", f.mfn);
    // SAFETY: `va` maps the frame read-write; nothing else uses it.
    unsafe { fill(va, 1) };
    // SAFETY: `va` maps the frame readable.
    let here = unsafe { holds(va, 1) };
    // SAFETY: so does the direct map.
    let there = unsafe { holds(f.va(), 1) };
    ensure!(here && there, "the pattern reads back {here} at {va:#x} and {there} through the direct map");
    // SAFETY: nothing references the page at `va`.
    unsafe { mm::unmap(va) }.map_err(mm_err("unmap"))?;
    ensure!(mm::lookup_in(mm::kernel_space().root, va).ok() == Some(None), "{va:#x} is still mapped");
    match probe::read_u64(va) {
        Ok(v) => Err(msg!("reading {va:#x} after unmap gave {v:#x}, no fault")),
        // Not present, read, kernel mode.
        Err(p) => expect_pf(&p, 0, va),
    }
}

fn check_protect() -> Check {
    let f = mm::alloc_frame().map_err(mm_err("alloc_frame"))?;
    // SAFETY: the frame is new and ours.
    unsafe { fill(f.va(), 2) };
    let r = protect(f);
    // SAFETY: nothing references the page; best effort on the way out.
    let _ = unsafe { mm::unmap(PROTECT_VA) };
    mm::free_frame(f).map_err(mm_err("free_frame"))?;
    r
}

fn protect(f: Frame) -> Check {
    let va = PROTECT_VA;
    mm::map(va, f.mfn, Prot::KERNEL_RO).map_err(mm_err("map read-only"))?;
    // SAFETY: mapped readable.
    ensure!(unsafe { holds(va, 2) }, "the read-only mapping does not show the frame");
    match probe::write_u64(va, 1) {
        Ok(()) => return Err(msg!("writing the read-only {va:#x} did not fault")),
        // Present, write, kernel mode.
        Err(p) => expect_pf(&p, PF_PROTECTION_WRITE, va).map_err(|why| msg!("read-only write: {why}"))?,
    }
    // SAFETY: nothing references the page.
    unsafe { mm::protect(va, Prot::KERNEL_RW) }.map_err(mm_err("protect read-write"))?;
    probe::write_u64(va, 0x77).map_err(|_| msg!("writing {va:#x} after making it writable faulted"))?;
    // SAFETY: the direct map maps the frame readable.
    let back = unsafe { (f.va() as *const u64).read_volatile() };
    ensure!(back == 0x77, "the write through {va:#x} reads back {back:#x} through the direct map");
    // Read-only again: the writable translation must be gone from the TLB.
    // SAFETY: nothing references the page.
    unsafe { mm::protect(va, Prot::KERNEL_RO) }.map_err(mm_err("protect read-only"))?;
    match probe::write_u64(va, 2) {
        Ok(()) => Err(msg!("writing {va:#x} after making it read-only again did not fault (stale TLB?)")),
        Err(p) => expect_pf(&p, PF_PROTECTION_WRITE, va).map_err(|why| msg!("read-only again: {why}")),
    }
}

fn read_cr3() -> Result<u64, guest_kernel::text::Msg> {
    let cr3: u64;
    let p = probe!("mov {v}, cr3", v = out(reg) cr3);
    ensure!(p.seen.is_none(), "mov from %cr3 raised vector {}", p.seen.map_or(0, |s| s.vector));
    Ok(cr3)
}

fn check_pin_new_tree() -> Check {
    let kernel = mm::kernel_space().root;
    // Use the heap first, so its L4 slot is there to copy.
    let warm = core::hint::black_box(Box::new([0x5eed_u64; 64]));
    let new = mm::copy_kernel_root().map_err(mm_err("a pinned copy of the kernel L4"))?;
    let r = on_new_tree(kernel, new, &warm);
    mm::destroy_tree(new, false).map_err(mm_err("unpinning and freeing the new L4"))?;
    r
}

fn on_new_tree(kernel: u64, new: u64, warm: &[u64; 64]) -> Check {
    // A pinned table may not be mapped writable.
    let pfn = mm::pfn_of_mfn(new).ok_or_else(|| msg!("the new L4's M2P entry is not ours"))?;
    // SAFETY: if this succeeded, nothing would reference the page anyway.
    let rw =
        unsafe { hv().update_va_mapping(va_of_pfn(pfn), leaf_entry(new, Prot::KERNEL_RW), UVMF_INVLPG | UVMF_LOCAL) };
    println!("INFO pin_new_tree: mapping the pinned L4 writable gives {rw:?}");
    ensure!(rw == Err(Errno::EBUSY), "mapping the pinned L4 writable gave {rw:?}, want EBUSY");

    // SAFETY: the new L4 has the kernel L4's entries, so it maps the
    // kernel exactly as the current one does.
    unsafe { mm::switch_kernel_root(new) }.map_err(mm_err("new_baseptr to the new L4"))?;
    let on_new = read_cr3();
    // Still running: a hypercall, shared_info, the stack, the heap (old
    // and new blocks), a trap.
    let version = hv().xen_version();
    let boxed = core::hint::black_box(Box::new(0x1234_u64));
    let trap = probe!("ud2").seen.map(|s| s.vector);
    let still = [
        *boxed == 0x1234,
        core::hint::black_box(warm).iter().all(|&x| x == 0x5eed),
        version.is_ok(),
        shared::vcpu0_upcall_mask() == Some(1),
        trap == Some(u64::from(guest_kernel::frame::UD)),
    ];
    drop(boxed);
    // SAFETY: the kernel L4 is the one we started on.
    unsafe { mm::switch_kernel_root(kernel) }.map_err(mm_err("new_baseptr back to the kernel L4"))?;
    let back = read_cr3()?;
    let on_new = on_new?;
    ensure!(on_new >> 12 == new, "%cr3 reads {on_new:#x} on the new L4, want mfn {new:#x}");
    ensure!(still.iter().all(|&ok| ok), "on the new L4: box, heap, hypercall, shared_info, #UD: {still:?}");
    ensure!(back >> 12 == kernel, "%cr3 reads {back:#x} after switching back, want mfn {kernel:#x}");
    Ok(())
}

fn check_m2p_read() -> Check {
    let info = mm::info().ok_or_else(|| msg!("no mm info"))?;
    let mut frames: [Option<Frame>; 16] = [None; 16];
    let mut r = Ok(());
    for slot in frames.iter_mut() {
        match mm::alloc_frame() {
            Ok(f) => *slot = Some(f),
            Err(e) => {
                r = Err(msg!("alloc_frame: {e}"));
                break;
            }
        }
    }
    // The last frame, in the part of the direct map this kernel made.
    let last = info.usable_pfns - 1;
    let last = mm::p2m(last).map(|mfn| Frame { pfn: last, mfn });
    for f in frames.iter().flatten().chain(last.iter()) {
        if r.is_err() {
            break;
        }
        r = m2p_names(f, &info);
    }
    for f in frames.iter().flatten() {
        mm::free_frame(*f).map_err(mm_err("free_frame"))?;
    }
    r
}

fn m2p_names(f: &Frame, info: &mm::Info) -> Check {
    ensure!(
        (info.first_free_pfn..info.usable_pfns).contains(&f.pfn),
        "pfn {} is outside the free frames {}..{}",
        f.pfn,
        info.first_free_pfn,
        info.usable_pfns
    );
    let back = mm::m2p(f.mfn);
    ensure!(back == f.pfn, "M2P[{:#x}] = {back:#x}, want pfn {:#x}", f.mfn, f.pfn);
    ensure!(mm::p2m(f.pfn) == Some(f.mfn), "p2m[{:#x}] = {:?}, want {:#x}", f.pfn, mm::p2m(f.pfn), f.mfn);
    let e = mm::lookup_in(info.kernel_root, f.va()).map_err(mm_err("lookup"))?.unwrap_or(0);
    ensure!(
        entry_mfn(e) == f.mfn,
        "the direct map maps pfn {:#x} to mfn {:#x}, want {:#x}",
        f.pfn,
        entry_mfn(e),
        f.mfn
    );
    Ok(())
}

/// Requests per successful batch.
const BATCH: usize = 8;
/// The index of the bad request in the failing batch (of 5).
const BAD_AT: usize = 2;

fn check_mmu_update_done() -> Check {
    let l1 = mm::l1_table(BATCH_VA).map_err(mm_err("the scratch L1"))?;
    let mut frames = [None::<Frame>; BATCH];
    for slot in frames.iter_mut() {
        *slot = Some(mm::alloc_frame().map_err(mm_err("alloc_frame"))?);
    }
    let frames = frames.map(|f| f.unwrap_or(Frame { pfn: 0, mfn: 0 }));
    let r = batches(l1, &frames);
    // Clean up whatever is left mapped; then the frames can go back.
    let first = table_index(BATCH_VA, 1);
    let clear: [MmuUpdate; BATCH] = core::array::from_fn(|i| pt_update(l1, first + i, 0));
    // SAFETY: the scratch pages are referenced by nothing.
    let _ = unsafe { hv().mmu_update(&clear) };
    flush_tlb()?;
    for f in frames {
        mm::free_frame(f).map_err(mm_err("free_frame"))?;
    }
    r
}

/// A batch far longer than one entry's share (the hypervisor continues
/// it: the call is made again from where it stopped) still does every op
/// once and reports them all.
fn check_long_batch() -> Check {
    const N: usize = 1000;
    let ops = alloc::vec![MmuextOp { cmd: MMUEXT_TLB_FLUSH_LOCAL, ..MmuextOp::default() }; N];
    // SAFETY: TLB flushes change no mapping.
    let r = unsafe { hv().mmuext_op(&ops) };
    ensure!(r == Ok(N as u32), "mmuext_op of {N} TLB flushes gave {r:?}, want Ok({N})");
    Ok(())
}

fn flush_tlb() -> Check {
    let op = MmuextOp { cmd: MMUEXT_TLB_FLUSH_LOCAL, ..MmuextOp::default() };
    // SAFETY: a TLB flush changes no mapping.
    let r = unsafe { hv().mmuext_op(&[op]) };
    ensure!(r == Ok(1), "mmuext_op(tlb_flush_local) gave {r:?}, want Ok(1)");
    Ok(())
}

fn batches(l1: u64, frames: &[Frame; BATCH]) -> Check {
    let first = table_index(BATCH_VA, 1);
    let va = |i: usize| BATCH_VA + i as u64 * PAGE_SIZE;
    let entry = |i: usize| mm::read_table_entry(l1, first + i).unwrap_or(u64::MAX);

    // A whole batch: done = BATCH.
    let map: [MmuUpdate; BATCH] =
        core::array::from_fn(|i| pt_update(l1, first + i, leaf_entry(frames[i].mfn, Prot::KERNEL_RW)));
    // SAFETY: new mappings of our own free frames at unused scratch pages.
    let r = unsafe { hv().mmu_update(&map) };
    ensure!(r == Ok(BATCH as u32), "a batch of {BATCH} mappings gave {r:?}, want Ok({BATCH})");
    for (i, f) in frames.iter().enumerate() {
        // SAFETY: just mapped read-write; ours alone.
        unsafe { fill(va(i), 10 + i as u64) };
        // SAFETY: the direct map maps the frame.
        ensure!(unsafe { holds(f.va(), 10 + i as u64) }, "page {i} of the batch is not its frame");
    }
    let clear: [MmuUpdate; BATCH] = core::array::from_fn(|i| pt_update(l1, first + i, 0));
    // SAFETY: nothing references the scratch pages.
    let r = unsafe { hv().mmu_update(&clear) };
    ensure!(r == Ok(BATCH as u32), "a batch of {BATCH} unmappings gave {r:?}, want Ok({BATCH})");
    flush_tlb()?;
    if let Ok(v) = probe::read_u64(va(0)) {
        return Err(msg!("reading {:#x} after the unmapping batch gave {v:#x}, no fault", va(0)));
    }

    // A batch with a bad request in the middle (a writable mapping of a
    // page table, here the L1 itself): it stops there.
    let bad: [MmuUpdate; 5] = core::array::from_fn(|i| {
        let target = if i == BAD_AT { l1 } else { frames[i].mfn };
        pt_update(l1, first + i, leaf_entry(target, Prot::KERNEL_RW))
    });
    // SAFETY: as for the first batch; the bad request must be refused.
    let r = unsafe { hv().mmu_update(&bad) };
    println!("INFO mmu_update_done: a batch of 5 with a writable page-table mapping at index {BAD_AT} gives {r:?}");
    let want = Err(BatchError { errno: Errno::EBUSY, done: BAD_AT as u32 });
    ensure!(r == want, "the batch with a bad request gave {r:?}, want {want:?}");
    for i in 0..5 {
        let present = is_present(entry(i));
        ensure!(present == (i < BAD_AT), "after the failed batch, entry {i} is {:#x}", entry(i));
    }
    Ok(())
}

fn check_decrease_increase() -> Check {
    let before = hv().current_reservation().map_err(|e| msg!("current_reservation: {e}"))?;
    let f = mm::alloc_frame().map_err(mm_err("alloc_frame"))?;
    // SAFETY: the frame is new; nothing refers to it.
    if let Err(e) = unsafe { mm::release_to_hypervisor(f) } {
        let _ = mm::free_frame(f);
        return Err(msg!("giving a frame back: {e}"));
    }
    let gone = decreased(f, before);
    // Whatever happened, give the pfn its memory back.
    let g = mm::populate(f.pfn).map_err(mm_err("increase_reservation and repopulating"))?;
    println!("INFO decrease_increase: pfn {:#x} gave back mfn {:#x}, got mfn {:#x}", f.pfn, f.mfn, g.mfn);
    let r = gone.and_then(|()| increased(g, before));
    mm::free_frame(g).map_err(mm_err("free_frame"))?;
    r
}

fn decreased(f: Frame, before: u64) -> Check {
    ensure!(mm::p2m(f.pfn).is_none(), "p2m[{:#x}] still names a frame", f.pfn);
    let now = hv().current_reservation().map_err(|e| msg!("current_reservation: {e}"))?;
    ensure!(now + 1 == before, "current_reservation {now} after giving one page back, want {}", before - 1);
    let mapped = mm::lookup_in(mm::kernel_space().root, f.va()).map_err(mm_err("lookup"))?;
    ensure!(mapped.is_none(), "the released pfn is still in the direct map");
    Ok(())
}

fn increased(g: Frame, before: u64) -> Check {
    ensure!(mm::m2p(g.mfn) == g.pfn, "M2P[{:#x}] = {:#x}, want pfn {:#x}", g.mfn, mm::m2p(g.mfn), g.pfn);
    ensure!(mm::p2m(g.pfn) == Some(g.mfn), "p2m[{:#x}] = {:?}, want {:#x}", g.pfn, mm::p2m(g.pfn), g.mfn);
    let now = hv().current_reservation().map_err(|e| msg!("current_reservation: {e}"))?;
    ensure!(now == before, "current_reservation {now} after getting a page back, want {before}");
    // SAFETY: populate mapped the new frame read-write; it is ours alone.
    unsafe { fill(g.va(), 3) };
    // SAFETY: as above.
    ensure!(unsafe { holds(g.va(), 3) }, "the new frame does not hold what was written");
    Ok(())
}

fn check_heap() -> Check {
    const N: u64 = 50_000;
    let mut v: Vec<u64> = Vec::new();
    v.try_reserve(1).map_err(|_| msg!("the heap cannot give 8 bytes"))?;
    let before = mm::heap_mapped_bytes();
    for i in 0..N {
        v.try_reserve(1).map_err(|_| msg!("the heap ran out at {} elements", v.len()))?;
        v.push(i * 3);
    }
    ensure!(v.iter().enumerate().all(|(i, &x)| x == i as u64 * 3), "the vector does not hold what was pushed");
    let b = Box::new([7u8; 1000]);
    ensure!(b.iter().all(|&x| x == 7), "the box does not hold what was put in");
    drop(b);
    drop(v);
    let grown = mm::heap_mapped_bytes();
    ensure!(grown > before && grown >= N * 8, "the heap mapped {before} then {grown} bytes for {N} u64s");
    // Everything was given back: the same again needs no more mapping.
    let mut w: Vec<u64> = Vec::new();
    w.try_reserve_exact(N as usize).map_err(|_| msg!("the freed heap cannot hold {N} u64s again"))?;
    w.extend(0..N);
    ensure!(w[N as usize - 1] == N - 1, "the second vector is wrong");
    drop(w);
    let after = mm::heap_mapped_bytes();
    ensure!(after == grown, "the heap grew from {grown} to {after} bytes for memory it had freed");
    Ok(())
}

fn check_user_syscall() -> Check {
    let task = Task::new().map_err(mm_err("building the user task"))?;
    let r = task.run(Program::Syscalls);
    task.destroy().map_err(mm_err("taking the user task down"))?;
    let (exit, rec) = r.map_err(mm_err("running the user task"))?;
    let seen = rec.syscalls();
    let nrs: Vec<u64> = seen.iter().map(|s| s.nr).collect();
    ensure!(nrs == [SYS_ADD, SYS_WRITE, SYS_EXIT], "system calls {nrs:?}, want add, write, exit");
    ensure!(seen[0].args == [40, 2], "add's arguments {:?}", seen[0].args);
    ensure!(seen[1].args[1] == HELLO.len() as u64, "write's length {}", seen[1].args[1]);
    // add's result came back in rax: the program exits with it (and with
    // BAD_WRITE_STATUS had write's result not been the length).
    ensure!(exit == Exit::Exited(42), "the task ended with {exit:?}, want Exited(42)");
    ensure!(rec.output() == HELLO, "write printed {:?}", guest_kernel::text::Escaped(rec.output()));
    let code = USER_CODE..USER_CODE + PAGE_SIZE;
    for s in seen {
        ensure!(
            s.cs & 0xffff == u64::from(FLAT_USER_CS),
            "syscall frame cs {:#x}, want {FLAT_USER_CS:#x} (RPL 3)",
            s.cs
        );
        ensure!(s.ss & 0xffff == u64::from(FLAT_USER_SS), "syscall frame ss {:#x}, want {FLAT_USER_SS:#x}", s.ss);
        ensure!(code.contains(&s.rip) && s.rcx == s.rip, "syscall frame rip {:#x}, rcx {:#x}", s.rip, s.rcx);
        ensure!(s.rsp == USER_STACK + PAGE_SIZE, "syscall frame rsp {:#x}, want the user stack top", s.rsp);
        ensure!(
            s.rflags & RFLAGS_IF != 0 && s.r11 & RFLAGS_IF != 0,
            "rflags {:#x} r11 {:#x}: user mode had IF",
            s.rflags,
            s.r11
        );
        ensure!(
            s.upcall_mask == Some(1),
            "events in the syscall handler: mask {:?}, want 1 (CALLBACKF_mask_events)",
            s.upcall_mask
        );
        ensure!(
            s.frame_top == entry::user_entry_stack_top(),
            "the syscall frame ends at {:#x}, not kernel_sp {:#x}",
            s.frame_top,
            entry::user_entry_stack_top()
        );
    }
    ensure!(code.contains(&seen[1].args[0]), "write's buffer {:#x} is not in the code page", seen[1].args[0]);
    ensure!(shared::vcpu0_upcall_mask() == Some(1), "events are not masked again after the task");
    Ok(())
}

fn check_user_fault() -> Check {
    let task = Task::new().map_err(mm_err("building the user task"))?;
    let r = task.run(Program::Fault);
    task.destroy().map_err(mm_err("taking the user task down"))?;
    let (exit, rec) = r.map_err(mm_err("running the user task"))?;
    ensure!(rec.count == 0, "{} system calls from the fault program", rec.count);
    let Exit::Trap(t) = exit else {
        return Err(msg!("the task ended with {exit:?}, want a #PF"));
    };
    println!(
        "INFO user_fault: vector {} error code {:#x} rip {:#x} cs {:#x} cr2 {:?}",
        t.vector, t.error_code, t.rip, t.cs, t.cr2
    );
    ensure!(t.vector == PF, "vector {}, want #PF", t.vector);
    ensure!(t.cs & 0xffff == u64::from(FLAT_USER_CS), "cs {:#x}, want {FLAT_USER_CS:#x} (RPL 3)", t.cs);
    ensure!(
        t.error_code == PF_USER_NOT_PRESENT_READ,
        "error code {:#x}, want {PF_USER_NOT_PRESENT_READ:#x} (user, read, not present)",
        t.error_code
    );
    let entry_at = Program::Fault.entry();
    ensure!((entry_at..entry_at + 16).contains(&t.rip), "rip {:#x}, want the program's load at {entry_at:#x}..", t.rip);
    ensure!(t.cr2 == Some(USER_FAULT_ADDR), "cr2 {:?}, want {USER_FAULT_ADDR:#x}", t.cr2);
    let top = entry::user_entry_stack_top();
    ensure!(t.frame_top == top, "the #PF frame ends at {:#x}, not on kernel_sp {top:#x}", t.frame_top);
    ensure!(shared::vcpu0_upcall_mask() == Some(1), "events are not masked again after the task");
    Ok(())
}

/// Every frame the checks took is back (tables included).
fn check_frames_returned() -> Check {
    let want = FREE_AFTER_INIT.load(core::sync::atomic::Ordering::Relaxed);
    let heap_pages = mm::heap_mapped_bytes() / PAGE_SIZE;
    let free = mm::free_frames();
    // The heap keeps its pages; the scratch region keeps its L3, L2 and L1.
    ensure!(
        free + heap_pages + 3 + heap_tables() == want,
        "{free} frames free, {heap_pages} heap pages, want {want} in all"
    );
    Ok(())
}

/// The tables the heap's mapping took (L3, L2 and one L1 per 2 MiB).
fn heap_tables() -> u64 {
    2 + mm::heap_mapped_bytes().div_ceil(2 << 20)
}
