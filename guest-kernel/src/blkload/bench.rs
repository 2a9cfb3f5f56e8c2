//! `blk-bench`: what the PV block device costs, for `cargo xtask bench`.
//!
//! Each figure is one line, `BLKBENCH <name> bytes=<b> instr=<i> ns=<n>
//! requests=<r>`: bytes moved, TSC ticks (executed instructions under
//! `-icount shift=0,sleep=off`, all domains and the hypervisor included:
//! dom0's backend runs in them) and pvclock nanoseconds.
//!
//! - `seq_write_4k`, `seq_read_4k`: the whole disk in 4 KiB requests,
//!   [`DEPTH`](super::DEPTH) in flight;
//! - `seq_write_64k`, `seq_read_64k`: the whole disk in 64 KiB I/Os, each
//!   two requests (44 KiB, the protocol's 11 pages, then 20 KiB);
//! - `ring_rtt`: one request with no data (a cache flush) pushed, notified,
//!   answered and taken back; median of [`RTT_RUNS`];
//! - `memcpy_4k`, `memcpy_64k`: a plain copy of as many bytes between two
//!   of this domain's buffers, the physical limit; median of
//!   [`MEMCPY_RUNS`].

use alloc::vec;

use abi::blkif::{BlkifRequest, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_OKAY};
use guest_kernel::println;
use guest_kernel::text::Msg;
use guest_kernel::time::{now_ns, rdtsc};

use guest_kernel::ensure;

use super::{finish, one, open, sweep, Disk};

/// Round trips measured.
pub const RTT_RUNS: usize = 201;
/// Copies measured.
pub const MEMCPY_RUNS: usize = 101;

fn line(name: &str, bytes: u64, instr: u64, ns: u64, requests: u64) {
    println!("BLKBENCH {name} bytes={bytes} instr={instr} ns={ns} requests={requests}");
}

/// The median of `runs` measurements of `op`: `(ticks, ns)`.
fn median(runs: usize, mut op: impl FnMut() -> Result<(), Msg>) -> Result<(u64, u64), Msg> {
    let mut ticks = vec![0u64; runs];
    let mut ns = vec![0u64; runs];
    for (t, n) in ticks.iter_mut().zip(&mut ns) {
        let (t0, n0) = (rdtsc(), now_ns());
        op()?;
        (*t, *n) = (rdtsc() - t0, now_ns() - n0);
    }
    ticks.sort_unstable();
    ns.sort_unstable();
    Ok((ticks[runs / 2], ns[runs / 2]))
}

fn memcpy(bytes: usize) -> Result<(), Msg> {
    let from = vec![0x5au8; bytes];
    let mut to = vec![0u8; bytes];
    let (instr, ns) = median(MEMCPY_RUNS, || {
        to.copy_from_slice(core::hint::black_box(&from));
        core::hint::black_box(&mut to);
        Ok(())
    })?;
    line(&alloc::format!("memcpy_{}k", bytes / 1024), bytes as u64, instr, ns, 0);
    Ok(())
}

fn ring_rtt(disk: &mut Disk) -> Result<(), Msg> {
    let flush = BlkifRequest { operation: BLKIF_OP_FLUSH_DISKCACHE, id: 7, ..BlkifRequest::default() };
    let (instr, ns) = median(RTT_RUNS, || {
        let status = one(disk, flush)?;
        ensure!(status == BLKIF_RSP_OKAY, "flush: status {status}");
        Ok(())
    })?;
    line("ring_rtt", 0, instr, ns, 1);
    Ok(())
}

fn sequential(disk: &mut Disk) -> Result<(), Msg> {
    let bytes = disk.front.sectors * 512;
    for (name, op, sizes) in [
        ("seq_write_4k", BLKIF_OP_WRITE, &[8u64][..]),
        ("seq_read_4k", BLKIF_OP_READ, &[8]),
        ("seq_write_64k", BLKIF_OP_WRITE, &[88, 40]),
        ("seq_read_64k", BLKIF_OP_READ, &[88, 40]),
    ] {
        let (t0, n0) = (rdtsc(), now_ns());
        let pass = sweep(disk, op, sizes, None)?;
        line(name, bytes, rdtsc() - t0, now_ns() - n0, pass.requests);
    }
    Ok(())
}

/// `blk-bench`.
pub fn run() -> ! {
    let r = open("blk-bench").and_then(|mut disk| {
        memcpy(4096)?;
        memcpy(65536)?;
        ring_rtt(&mut disk)?;
        sequential(&mut disk)
    });
    finish(r, "BLKBENCH done")
}
