//! `xenstore`: a domU that talks to xenstore over its store ring
//! ([`guest_kernel::xenbus`]), proving dom0's shell serves it.
//!
//! It reads `name` and `domid` from its home (relative paths, resolved
//! against `/local/domain/<domid>`), writes `data/hello = world` there,
//! and tries `/local/domain/0/name`, which is dom0's alone, then prints
//! one line and powers off:
//! `XS name=<name> domid=<domid> write=<ok|errno> denied=<errno|no>`.
//! Without a store ring it prints `XS FATAL: ...` and crashes.

use abi::sched::ShutdownReason;
use guest_kernel::println;
use guest_kernel::runtime::shutdown;
use guest_kernel::text::Escaped;
use guest_kernel::xenbus::Xenbus;

use crate::loads::init_events;

/// Does the requests, prints the line, powers off.
pub fn run() -> ! {
    init_events("xenstore");
    let mut xs = match Xenbus::open() {
        Ok(xs) => xs,
        Err(e) => {
            println!("XS FATAL: no xenstore ring: {e}");
            shutdown(ShutdownReason::Crash)
        }
    };
    let (mut name, mut domid) = ([0u8; 64], [0u8; 16]);
    let name = match xs.read("name", &mut name) {
        Ok(n) => &name[..n],
        Err(e) => {
            println!("XS FATAL: read name: {e}");
            shutdown(ShutdownReason::Crash)
        }
    };
    let domid = match xs.read("domid", &mut domid) {
        Ok(n) => &domid[..n],
        Err(e) => {
            println!("XS FATAL: read domid: {e}");
            shutdown(ShutdownReason::Crash)
        }
    };
    let write = match xs.write("data/hello", b"world") {
        Ok(()) => "ok",
        Err(e) => e.name(),
    };
    let mut other = [0u8; 64];
    let denied = match xs.read("/local/domain/0/name", &mut other) {
        Ok(_) => "no",
        Err(e) => e.name(),
    };
    println!("XS name={} domid={} write={write} denied={denied}", Escaped(name), Escaped(domid));
    shutdown(ShutdownReason::Poweroff)
}
