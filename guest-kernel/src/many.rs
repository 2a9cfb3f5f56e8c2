//! `many [memory_mib=<N>] [count=<K>] [-- <domU command line>]`: dom0
//! builds `count` domains (default 1,000) of `memory_mib` MiB (default 4,
//! the least a PV kernel's 4 MiB-aligned initial mapping fits in)
//! from its ramdisk with the toolstack's builder and keeps them all alive
//! at once; then takes them all down (SPEC §3.12, the scaling figures of
//! `cargo xtask bench`).
//!
//! For the k-th domain (k from 1) it prints
//!
//! `MANY k=<k> d=<id> tsc=<cycles> hv_dom=<frames> hv_frames=<frames> free=<pages>`
//!
//! where `tsc` is the TSC cycles (instructions under `-icount`) of
//! building the domain (createdomain, populate, load, set its context) and
//! unpausing it; `hv_dom` the free pages it cost beyond its own memory
//! (`tot_pages`): the hypervisor's memory for it (its state, its
//! shared-info frame); `hv_frames` the sum of `hv_dom` over the domains so
//! far; `free` the free pages after it. Building stops at the first
//! failure (`MANY FAIL k=<k> <the builder's error>`), after which the free
//! memory must be what it was before that attempt (`MANY build failed
//! clean free=<pages>`). When that failure is the builder finding too
//! little memory, the workload goes on to exhaust it below the builder:
//! it creates empty domains until `createdomain` fails, which must be
//! with `-ENOMEM` (`MANY createdomain ENOMEM after=<n> free=<pages>`);
//! destroys half of them and populates one beyond the free memory, which
//! must stop short (`MANY populate short asked=<n> done=<m>`); destroys
//! them all and checks the free memory is back (`MANY exhaust clean
//! free=<pages>`).
//!
//! Then it waits until every domain has run and blocked (`MANY ran
//! count=<n> blocked=<m>`: `getdomaininfo` shows CPU time used and the
//! vCPU blocked, none shut down or crashed; the domains run the guest
//! kernel's `block` workload when given `-- block`), destroys them all,
//! waits for the memory to come back and prints `MANY done count=<n>
//! free_before=<pages> free_after=<pages>` and `MANY pass` or `MANY FAIL
//! <why>`, then powers off (crashes on failure).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use abi::domctl::{XenDomctl, XEN_DOMINF_BLOCKED, XEN_DOMINF_DYING, XEN_DOMINF_SHUTDOWN};
use abi::errno::Errno;
use abi::sched::ShutdownReason;
use guest_kernel::hypercall::hv;
use guest_kernel::println;
use guest_kernel::runtime::shutdown;
use guest_kernel::time::{self, rdtsc, NS_PER_MS};
use toolstack::builder::{self, BuildOptions, DomId};

use crate::build::ops::{self, Dom0Ops};
use crate::build::{domu_cmdline, ramdisk, ramdisk_config, set_up_control_domain};
use crate::control::create_empty;

/// Longest wait for every domain to have run and blocked, in ms of
/// system time.
pub const RUN_TIMEOUT_MS: u64 = 120_000;
/// Longest wait for the memory to come back after destroying them all.
pub const RETURN_TIMEOUT_MS: u64 = 60_000;

/// Builds, runs and destroys the domains; powers off (crashes on failure).
pub fn run(memory_mib: u64, count: u64) -> ! {
    let verdict = many(memory_mib, count);
    match &verdict {
        Ok(()) => println!("MANY pass"),
        Err(why) => println!("MANY FAIL {why}"),
    }
    shutdown(if verdict.is_ok() { ShutdownReason::Poweroff } else { ShutdownReason::Crash })
}

fn many(memory_mib: u64, count: u64) -> Result<(), String> {
    set_up_control_domain()?;
    let memory_mib = u32::try_from(memory_mib).map_err(|_| format!("memory_mib={memory_mib} is too large"))?;
    let image = ramdisk()?;
    let cmdline = domu_cmdline()?;
    let mut ops = Dom0Ops::new().map_err(|e| format!("the scratch page for foreign frames: {e}"))?;
    let free = || ops::free_pages().map_err(|e| format!("physinfo: {e}"));
    let free_before = free()?;
    println!("INFO many image_bytes={} memory_mib={memory_mib} count={count} free={free_before}", image.len());

    let mut doms: Vec<DomId> = Vec::with_capacity(count as usize);
    let mut hv_frames = 0u64;
    let mut failed = None;
    for k in 1..=count {
        let before = free()?;
        let config = ramdisk_config(format!("many-{k}"), memory_mib, cmdline);
        let start = rdtsc();
        let built = builder::build(&mut ops, image, &config, &BuildOptions::default())
            .map_err(|e| e.to_string())
            .and_then(|b| ops::unpause(b.domid).map(|()| b.domid).map_err(|e| format!("unpausedomain: {e}")));
        let cycles = rdtsc().wrapping_sub(start);
        let d = match built {
            Ok(d) => d,
            Err(why) => {
                println!("MANY FAIL k={k} {why}");
                // A failed build leaves nothing behind.
                let now = free()?;
                if now == before {
                    println!("MANY build failed clean free={now}");
                } else {
                    println!("MANY FAIL k={k} left {} pages behind", before.abs_diff(now));
                }
                if why.contains("free memory") {
                    if let Err(e) = exhaust() {
                        println!("MANY FAIL exhaust: {e}");
                    }
                }
                failed = Some(format!("domain {k} of {count} not built: {why}"));
                break;
            }
        };
        doms.push(d);
        let after = free()?;
        let info = ops::domain_info(d).map_err(|e| format!("getdomaininfo d{d}: {e}"))?;
        let tot = info.map_or(0, |i| i.tot_pages);
        let hv_dom = before.saturating_sub(after).saturating_sub(tot);
        hv_frames += hv_dom;
        println!("MANY k={k} d={d} tsc={cycles} hv_dom={hv_dom} hv_frames={hv_frames} free={after}");
    }

    // Every domain has had the CPU and waits (blocked), none has stopped.
    let deadline = time::now_ns().saturating_add(RUN_TIMEOUT_MS * NS_PER_MS);
    let (mut ran, mut blocked, mut stopped);
    loop {
        (ran, blocked, stopped) = (0u64, 0u64, 0u64);
        for &d in &doms {
            match ops::domain_info(d).map_err(|e| format!("getdomaininfo d{d}: {e}"))? {
                Some(i) if i.flags & (XEN_DOMINF_SHUTDOWN | XEN_DOMINF_DYING) != 0 => stopped += 1,
                Some(i) => {
                    ran += u64::from(i.cpu_time > 0);
                    blocked += u64::from(i.flags & XEN_DOMINF_BLOCKED != 0);
                }
                None => stopped += 1,
            }
        }
        let n = doms.len() as u64;
        if stopped > 0 || (ran == n && blocked == n) || time::now_ns() >= deadline {
            break;
        }
        let _ = hv().sched_poll(&[], time::now_ns() + 10 * NS_PER_MS);
    }
    println!("MANY ran count={} ran={ran} blocked={blocked} stopped={stopped}", doms.len());

    for &d in &doms {
        ops::destroy(d).map_err(|e| format!("destroydomain d{d}: {e}"))?;
    }
    let deadline = time::now_ns().saturating_add(RETURN_TIMEOUT_MS * NS_PER_MS);
    let mut free_after = free()?;
    while free_after != free_before && time::now_ns() < deadline {
        let _ = hv().sched_poll(&[], time::now_ns() + 10 * NS_PER_MS);
        free_after = free()?;
    }
    println!("MANY done count={} free_before={free_before} free_after={free_after}", doms.len());
    if let Some(why) = failed {
        return Err(why);
    }
    let n = doms.len() as u64;
    if stopped > 0 || ran != n || blocked != n {
        return Err(format!("of {n} domains {ran} ran, {blocked} blocked, {stopped} stopped"));
    }
    if free_after != free_before {
        return Err(format!("memory not returned: free {free_after}, {free_before} before"));
    }
    Ok(())
}

/// With memory nearly gone: `createdomain` until the hypervisor refuses,
/// which must be `-ENOMEM`; a `populate_physmap` beyond the free memory,
/// which must stop short; and every frame back once they are destroyed.
fn exhaust() -> Result<(), String> {
    let free = || ops::free_pages().map_err(|e| format!("physinfo: {e}"));
    let before = free()?;
    let mut extra: Vec<DomId> = Vec::new();
    let refused = loop {
        match create_empty(0, 0) {
            Ok(d) => extra.push(d),
            Err(e) => break e,
        }
        if extra.len() > 4096 {
            return Err("createdomain never refused".to_string());
        }
    };
    let verdict = (|| {
        if refused != Errno::ENOMEM {
            return Err(format!("createdomain refused with {refused:?} after {}, want ENOMEM", extra.len()));
        }
        println!("MANY createdomain ENOMEM after={} free={}", extra.len(), free()?);
        let keep = extra.len() / 2;
        for d in extra.drain(keep..) {
            ops::destroy(d).map_err(|e| format!("destroydomain d{d}: {e}"))?;
        }
        let d = *extra.first().ok_or("no domain was created")?;
        let asked = free()? + 64;
        let mut op = XenDomctl::max_mem(d, asked * 4);
        // SAFETY: max_mem carries no guest handle and acts on another domain.
        unsafe { hv().domctl(&mut op) }.map_err(|e| format!("max_mem d{d}: {e}"))?;
        let mut extents: Vec<u64> = (0..asked).collect();
        let done = hv().populate_physmap(d, &mut extents).map_err(|e| format!("populate_physmap d{d}: {e}"))?;
        println!("MANY populate short asked={asked} done={done}");
        if done >= asked {
            return Err(format!("populate_physmap did {done} of {asked} pages with fewer free"));
        }
        Ok(())
    })();
    for d in extra {
        ops::destroy(d).map_err(|e| format!("destroydomain d{d}: {e}"))?;
    }
    verdict?;
    let after = free()?;
    if after != before {
        return Err(format!("free {after} after destroying them, {before} before"));
    }
    println!("MANY exhaust clean free={after}");
    Ok(())
}
