//! The guest kernel image: the PV runtime plus its workloads, chosen by the
//! command line (`selftest`, the default, `bench`, one of the misbehaving
//! workloads in `hostile`, the attack suite among them, the event-channel
//! pair in `pingpong`, the scheduling loads in `loads`, the control
//! hypercalls in `control`, building a domain in `build`, a thousand at
//! once in `many`, or the control
//! domain's interactive `shell`, or `xenstore`, a client of the shell's
//! xenstore, or `blk*`, users of a PV disk).
//!
//! On the host this file builds to a program that says it is an image.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod bench;
#[cfg(target_os = "none")]
mod blkload;
#[cfg(target_os = "none")]
mod build;
#[cfg(target_os = "none")]
mod control;
#[cfg(target_os = "none")]
mod echo;
#[cfg(target_os = "none")]
mod hostile;
#[cfg(target_os = "none")]
mod loads;
#[cfg(target_os = "none")]
mod many;
#[cfg(target_os = "none")]
mod pingpong;
#[cfg(target_os = "none")]
mod privileged;
#[cfg(target_os = "none")]
mod probe;
#[cfg(target_os = "none")]
mod selftest;
#[cfg(target_os = "none")]
mod shell;
#[cfg(target_os = "none")]
mod xsclient;

#[cfg(target_os = "none")]
guest_kernel::entry!(main);

#[cfg(target_os = "none")]
fn main() -> ! {
    use guest_kernel::cmdline::{self, Workload};
    use guest_kernel::hypercall::{self, hv};
    use guest_kernel::println;
    use guest_kernel::runtime::{shutdown, start_info};
    use guest_kernel::text::{c_bytes, Escaped};

    let si = start_info();
    let version = hv().xen_version().unwrap_or(0);
    let mut extra = [0u8; 16];
    let _ = hv().xen_extraversion(&mut extra);
    println!(
        "guest-kernel {}: PV guest on Xen {}.{}{} ({} pages, hypercalls by {})",
        env!("CARGO_PKG_VERSION"),
        version >> 16,
        version & 0xffff,
        Escaped(c_bytes(&extra)),
        si.nr_pages,
        if hypercall::uses_page() { "hypercall page" } else { "syscall" },
    );
    // Every exception has a handler from here on: by default it reports
    // the trap and crashes the domain; workloads may install their own.
    if let Err(e) = guest_kernel::traps::install(&[]) {
        println!("FATAL: set_trap_table: {e}");
        shutdown(abi::sched::ShutdownReason::Crash)
    }
    let inv = match cmdline::parse(&si.cmd_line) {
        Ok(inv) => inv,
        Err(e) => {
            println!("{e}");
            shutdown(abi::sched::ShutdownReason::Crash)
        }
    };
    match inv.workload {
        Workload::Selftest => selftest::run(),
        Workload::Bench => bench::run(),
        Workload::Reboot => shutdown(abi::sched::ShutdownReason::Reboot),
        Workload::Crash => shutdown(abi::sched::ShutdownReason::Crash),
        Workload::FaultNoHandler => hostile::fault_no_handler(),
        Workload::FaultBadStack => hostile::fault_bad_stack(),
        Workload::Privileged => privileged::run(),
        Workload::Hostile => hostile::run(),
        Workload::Ping => pingpong::ping(inv.get("peer") as u16, inv.get("count")),
        Workload::Pong => pingpong::pong(inv.get("peer") as u16, inv.get("count")),
        Workload::Spin => loads::spin(inv.get("until_ms")),
        Workload::Sleep => loads::sleep(inv.get("ms"), inv.get("rounds")),
        Workload::Block => loads::block(),
        Workload::YieldSpin => loads::yield_spin(),
        Workload::BenchYield => bench::yield_switch(inv.get("count")),
        Workload::Control => control::run(inv.get("count")),
        Workload::Build => build::run(inv.get("memory_mib"), inv.get("count")),
        Workload::Many => many::run(inv.get("memory_mib"), inv.get("count")),
        Workload::Shell => shell::run(),
        Workload::Echo => echo::run(),
        Workload::Xenstore => xsclient::run(),
        Workload::Blk => blkload::run(inv.get("seed")),
        Workload::BlkVerify => blkload::verify(inv.get("seed")),
        Workload::BlkBench => blkload::bench::run(),
        Workload::BlkHostile => blkload::hostile::run(),
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("guest-kernel is a PV kernel image for x86_64-unknown-none; boot it with `cargo xtask test` or `cargo xtask bench`");
    std::process::exit(2);
}
