//! `build [memory_mib=<N>] [count=<K>] [-- <domU command line>]`: dom0
//! builds a domain with the toolstack's builder, runs it, and takes it down.
//!
//! Dom0 boots with a PV kernel image as its ramdisk (the multiboot module
//! after dom0's kernel; `start_info.mod_start` and `mod_len`). `count`
//! times (default 1), the workload:
//!
//! 1. notes the free memory (`sysctl physinfo`);
//! 2. builds a paused domain of `memory_mib` MiB (default 16) from the
//!    image with [`toolstack::builder::build`] over [`ops::Dom0Ops`], the
//!    real hypercalls, its command line the text after `--` (empty
//!    without it): `BUILD d<id> built (<pages> pages, entry <addr>)`, or
//!    `BUILD FAIL <the builder's one-line error>`;
//! 3. unpauses it and waits, for at most [`SHUTDOWN_TIMEOUT_MS`], until
//!    `getdomaininfo` reports it shut down: `BUILD d<id> shut down
//!    reason=<poweroff|reboot|suspend|crash|watchdog|soft_reset>`;
//! 4. destroys it and waits, for at most [`RETURN_TIMEOUT_MS`], until it
//!    is gone and the free memory is what it was before step 2: `BUILD
//!    memory returned free=<pages>`, or a `BUILD FAIL` line with both
//!    figures;
//!
//! then prints `BUILD pass=<n> fail=<m>` and powers off (crashes if a
//! round failed). A round passes when the domain was built, shut down by
//! itself for a reason other than a crash (a crash is what a builder
//! mistake usually ends in), and every frame came back. Any other problem
//! is one `BUILD FAIL <why>` line.
//!
//! Waiting sleeps on `VIRQ_DOM_EXC`, which the hypervisor raises in the
//! control domain when a domain shuts down or dies, with `SCHEDOP_poll`
//! and a timeout, so that `getdomaininfo` is asked again every
//! [`POLL_MS`] at the least; a hypervisor that does not offer the VIRQ
//! gets `getdomaininfo` between `SCHEDOP_yield`s instead.
//!
//! # The domain
//!
//! Any PV kernel the builder accepts. The tests use the minimal example
//! guest (`minimal-guest.elf`, which prints one line and powers off) and
//! this kernel (`guest-kernel.elf -- reboot`, whose shutdown reason shows
//! its command line arrived). Xen's release builds drop a domU's
//! `console_io` output, so the shutdown reason is the verdict.
//!
//! Nothing stands behind the domain's console and xenstore ports (there
//! is no xenstored nor console daemon), and its configuration's
//! `on_poweroff`/`on_reboot`/`on_crash` are not acted on: every domain is
//! destroyed once it has shut down.

pub(crate) mod ops;

use alloc::format;
use alloc::string::{String, ToString};

use abi::domctl::{XenDomctlGetdomaininfo, XEN_DOMINF_SHUTDOWN};
use abi::sched::{ShutdownReason, VIRQ_DOM_EXC};
use abi::start_info::{SIF_INITDOMAIN, SIF_MOD_START_PFN, SIF_PRIVILEGED};
use guest_kernel::cmdline::passed_on;
use guest_kernel::hypercall::hv;
use guest_kernel::layout::{pfn_of, va_of_pfn};
use guest_kernel::runtime::{shutdown, start_info};
use guest_kernel::time::rdtsc;
use guest_kernel::time::{self, NS_PER_MS};
use guest_kernel::{entry, event, mm, println};
use toolstack::builder::{self, BuildOptions, DomId};
use toolstack::config::{Action, DomainConfig, DEFAULT_WEIGHT};
use toolstack::status::Reason;

use ops::Dom0Ops;

/// Longest wait for a built domain to shut down, in ms of system time.
pub const SHUTDOWN_TIMEOUT_MS: u64 = 30_000;
/// Longest wait, after destroying a domain, for it to disappear and its
/// memory to come back, in ms.
pub const RETURN_TIMEOUT_MS: u64 = 10_000;
/// Longest sleep between two looks at the domain, in ms.
pub const POLL_MS: u64 = 5;

/// What every round needs.
struct Env {
    ops: Dom0Ops,
    /// The domain's kernel image: dom0's ramdisk.
    image: &'static [u8],
    /// Its command line: what follows `--` on ours.
    cmdline: &'static str,
    memory_mib: u32,
    /// The `VIRQ_DOM_EXC` port, if the hypervisor offers that VIRQ.
    dom_exc: Option<u32>,
}

/// Runs the rounds and powers off (crashes if one failed).
pub fn run(memory_mib: u64, count: u64) -> ! {
    let (mut pass, mut fail) = (0u64, 0u64);
    match set_up(memory_mib) {
        Ok(mut env) => {
            println!(
                "INFO build image_bytes={} memory_mib={} count={count} cmdline=\"{}\" dom_exc={}",
                env.image.len(),
                env.memory_mib,
                env.cmdline,
                if env.dom_exc.is_some() { "bound" } else { "unavailable" },
            );
            for n in 1..=count {
                match round(&mut env, n) {
                    Ok(()) => pass += 1,
                    Err(why) => {
                        fail += 1;
                        println!("BUILD FAIL {why}");
                    }
                }
            }
            drop(env);
        }
        Err(why) => {
            fail += 1;
            println!("BUILD FAIL {why}");
        }
    }
    println!("BUILD pass={pass} fail={fail}");
    shutdown(if fail == 0 { ShutdownReason::Poweroff } else { ShutdownReason::Crash })
}

/// Checks that this is the control domain, sets up memory, events and the
/// builder's hypercalls, and finds the image.
fn set_up(memory_mib: u64) -> Result<Env, String> {
    set_up_control_domain()?;
    let memory_mib = u32::try_from(memory_mib).map_err(|_| format!("memory_mib={memory_mib} is too large"))?;
    if time::now_ns() == 0 {
        return Err("no system time from the pvclock".to_string());
    }
    let image = ramdisk()?;
    let cmdline = domu_cmdline()?;
    let ops = Dom0Ops::new().map_err(|e| format!("the scratch page for foreign frames: {e}"))?;
    let dom_exc = match hv().evtchn_bind_virq(VIRQ_DOM_EXC, 0) {
        Ok(port) => Some(port),
        Err(e) => {
            println!("INFO build: VIRQ_DOM_EXC: {e}; polling getdomaininfo between yields");
            None
        }
    };
    Ok(Env { ops, image, cmdline, memory_mib, dom_exc })
}

/// Checks that this is the initial, privileged domain and sets up memory
/// and events: what every workload of the control domain does first.
pub(crate) fn set_up_control_domain() -> Result<(), String> {
    let flags = start_info().flags;
    if flags & (SIF_INITDOMAIN | SIF_PRIVILEGED) != SIF_INITDOMAIN | SIF_PRIVILEGED {
        return Err(format!("not the initial, privileged domain (start_info.flags {flags:#x})"));
    }
    mm::init().map_err(|e| format!("mm::init: {e}"))?;
    event::init().map_err(|e| format!("event::init: {e}"))?;
    Ok(())
}

/// The command line for the domains: the text after `--` on ours (empty
/// without it).
pub(crate) fn domu_cmdline() -> Result<&'static str, String> {
    let cmdline = passed_on(&start_info().cmd_line).unwrap_or(b"");
    core::str::from_utf8(cmdline).map_err(|_| "the command line after -- is not UTF-8".to_string())
}

/// Dom0's ramdisk: `mod_len` bytes at `mod_start` (a virtual address, or a
/// pfn with `SIF_MOD_START_PFN`), which must lie in the boot layout after
/// the kernel image and before the frames the kernel allocates from.
pub(crate) fn ramdisk() -> Result<&'static [u8], String> {
    let si = start_info();
    if si.mod_start == 0 || si.mod_len == 0 {
        return Err("no kernel image: boot dom0 with the domain's kernel as its ramdisk (the next module)".to_string());
    }
    let va = if si.flags & SIF_MOD_START_PFN != 0 { va_of_pfn(si.mod_start) } else { si.mod_start };
    let first_free = mm::info().map_or(0, |i| i.first_free_pfn);
    let (_, image_end) = entry::image_range();
    let end = va.checked_add(si.mod_len);
    let inside = va >= image_end && end.and_then(|e| pfn_of(e.saturating_sub(1))).is_some_and(|last| last < first_free);
    let len = usize::try_from(si.mod_len).ok().filter(|_| inside).ok_or_else(|| {
        format!(
            "the ramdisk ({:#x}+{:#x}, flags {:#x}) is not in the boot layout between the kernel and pfn {first_free:#x}",
            si.mod_start, si.mod_len, si.flags
        )
    })?;
    // SAFETY: the range lies in the boot mapping (checked above), which the
    // domain builder maps for the domain's life; it is below the first
    // frame `mm` hands out, so nothing in this kernel writes it.
    Ok(unsafe { core::slice::from_raw_parts(va as *const u8, len) })
}

/// A one-vCPU domain called `name` of `memory_mib` MiB, built from dom0's
/// ramdisk with command line `cmdline`, destroyed whatever way it ends.
pub(crate) fn ramdisk_config(name: String, memory_mib: u32, cmdline: &str) -> DomainConfig {
    DomainConfig {
        name,
        kernel: "dom0-ramdisk".to_string(),
        memory_mib,
        vcpus: 1,
        cmdline: cmdline.to_string(),
        weight: DEFAULT_WEIGHT,
        cap: 0,
        on_poweroff: Action::Destroy,
        on_reboot: Action::Destroy,
        on_crash: Action::Destroy,
        disk: None,
    }
}

/// One build, run and teardown.
fn round(env: &mut Env, n: u64) -> Result<(), String> {
    let before = ops::free_pages().map_err(|e| format!("physinfo: {e}"))?;
    let config = ramdisk_config(format!("build-{n}"), env.memory_mib, env.cmdline);
    let (start, start_ns) = (rdtsc(), time::now_ns());
    let built =
        builder::build(&mut env.ops, env.image, &config, &BuildOptions::default()).map_err(|e| e.to_string())?;
    let (built_at, built_ns) = (rdtsc(), time::now_ns());
    let d = built.domid;
    println!("BUILD d{d} built ({} pages, entry {:#x})", built.layout.nr_pages(), built.entry);

    let ran = ops::unpause(d).map_err(|e| format!("unpausedomain d{d}: {e}")).and_then(|()| wait_shutdown(env, d));
    if let Ok(reason) = ran {
        println!("BUILD d{d} shut down reason={}", Reason(reason));
    }
    if let Err(e) = ops::destroy(d) {
        let first = ran.err().map_or(String::new(), |why| format!("{why}; "));
        return Err(format!("{first}destroydomain d{d}: {e}; it is left behind"));
    }
    let (destroyed_at, destroyed_ns) = (rdtsc(), time::now_ns());
    let reason = ran?;
    // Under -icount these are instruction counts (`cargo xtask bench`):
    // building, and the whole life from the first hypercall of the build to
    // the destroy (the domU's own work and dom0's wakeup on VIRQ_DOM_EXC
    // included).
    println!("BENCH domain_build {}", built_at.wrapping_sub(start));
    println!("BENCH domain_build_run_destroy {}", destroyed_at.wrapping_sub(start));
    // The same in pvclock time: wall time when not under -icount.
    println!("WALL domain_build {}", built_ns.saturating_sub(start_ns));
    println!("WALL domain_build_run_destroy {}", destroyed_ns.saturating_sub(start_ns));
    let after = wait_returned(env, d, before)?;
    println!("BUILD memory returned free={after}");
    if reason == u32::from(ShutdownReason::Crash) {
        return Err(format!("d{d} crashed"));
    }
    Ok(())
}

/// Unpaused `d`'s shutdown reason, once `getdomaininfo` reports it shut down.
fn wait_shutdown(env: &Env, d: DomId) -> Result<u32, String> {
    let mut last: Option<XenDomctlGetdomaininfo> = None;
    let down = wait_for(env, SHUTDOWN_TIMEOUT_MS, || {
        last = ops::domain_info(d).map_err(|e| format!("getdomaininfo d{d}: {e}"))?;
        match last {
            Some(info) => Ok(info.flags & XEN_DOMINF_SHUTDOWN != 0),
            None => Err(format!("d{d} disappeared before it shut down")),
        }
    })?;
    match last {
        Some(info) if down => Ok(info.shutdown_reason()),
        info => Err(format!(
            "d{d} did not shut down in {SHUTDOWN_TIMEOUT_MS} ms (flags {:#x}, cpu_time {} ns)",
            info.map_or(0, |i| i.flags),
            info.map_or(0, |i| i.cpu_time)
        )),
    }
}

/// The free memory once destroyed `d` is gone and it is back to `before`.
fn wait_returned(env: &Env, d: DomId, before: u64) -> Result<u64, String> {
    let mut free = 0;
    let mut gone = false;
    let back = wait_for(env, RETURN_TIMEOUT_MS, || {
        gone = ops::domain_info(d).map_err(|e| format!("getdomaininfo d{d}: {e}"))?.is_none();
        free = ops::free_pages().map_err(|e| format!("physinfo: {e}"))?;
        Ok(gone && free == before)
    })?;
    if back {
        return Ok(free);
    }
    let missing = before.abs_diff(free);
    let sign = if free < before { "missing" } else { "extra" };
    Err(format!(
        "memory not returned: free={free}, {before} before building ({missing} {sign}); d{d} {}",
        if gone { "is gone" } else { "still exists" }
    ))
}

/// Checks `done` until it holds or `timeout_ms` of system time pass,
/// sleeping between checks on `VIRQ_DOM_EXC` (at most [`POLL_MS`]) or
/// yielding. Returns whether it held.
fn wait_for(env: &Env, timeout_ms: u64, mut done: impl FnMut() -> Result<bool, String>) -> Result<bool, String> {
    let deadline = time::now_ns().saturating_add(timeout_ms * NS_PER_MS);
    loop {
        // Cleared before the check: an event after it makes the poll
        // return at once.
        if let Some(port) = env.dom_exc {
            event::clear_pending(port);
        }
        if done()? {
            return Ok(true);
        }
        let now = time::now_ns();
        if now >= deadline {
            return Ok(false);
        }
        let r = match env.dom_exc {
            Some(port) => hv().sched_poll(&[port], deadline.min(now + POLL_MS * NS_PER_MS)),
            None => hv().sched_yield(),
        };
        r.map_err(|e| format!("waiting: sched_op: {e}"))?;
    }
}
