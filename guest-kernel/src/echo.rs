//! `echo`: a domU that reads its PV console's input a line at a time and
//! prints each line back as `echo: <line>`, proving the input path (dom0's
//! shell forwards what is typed while attached with `console`).
//!
//! It prints `ECHO ready` first, takes `\r` or `\n` as the end of a line
//! (an empty line is not echoed), keeps at most [`MAX_LINE`] bytes of a
//! line, and sleeps [`IDLE_MS`] between empty reads. Without a PV console
//! ring (dom0, or a domain built without one) it says so and crashes.

use abi::sched::ShutdownReason;
use guest_kernel::console;
use guest_kernel::hypercall::hv;
use guest_kernel::println;
use guest_kernel::runtime::shutdown;
use guest_kernel::time::{self, NS_PER_MS};

use crate::loads::init_events;

/// Longest line kept; the rest of a longer line is dropped.
pub const MAX_LINE: usize = 256;
/// Sleep between two empty reads, in ms.
pub const IDLE_MS: u64 = 10;

/// Echoes console input forever.
pub fn run() -> ! {
    if !console::has_ring() {
        println!("echo: FATAL: no PV console ring (start_info.console.domU.mfn is 0, or this is dom0)");
        shutdown(ShutdownReason::Crash);
    }
    init_events("echo");
    println!("ECHO ready");
    // `echo: `, the line, `\n`: written at once (no heap: mm is not set up).
    const PREFIX: &[u8] = b"echo: ";
    let mut out = [0u8; PREFIX.len() + MAX_LINE + 1];
    out[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut len = 0;
    loop {
        let mut buf = [0u8; 64];
        let n = console::read(&mut buf);
        for &b in &buf[..n] {
            match b {
                b'\r' | b'\n' if len > 0 => {
                    out[PREFIX.len() + len] = b'\n';
                    console::write_bytes(&out[..PREFIX.len() + len + 1]);
                    len = 0;
                }
                b'\r' | b'\n' => {}
                _ if len < MAX_LINE => {
                    out[PREFIX.len() + len] = b;
                    len += 1;
                }
                _ => {}
            }
        }
        if n == 0 && time::sleep_ns(IDLE_MS * NS_PER_MS).is_err() {
            let _ = hv().sched_yield();
        }
    }
}
