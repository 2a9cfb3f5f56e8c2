//! The hypervisor console: `log` records and fatal reports on the serial port.
//!
//! Every line starts with `(HV) `, as Xen's start with `(XEN) `. Normal
//! output takes a lock so lines from different CPUs do not interleave; the
//! emergency path used by fatal reports does not, so a fault taken while the
//! lock is held still gets reported.

use crate::arch::serial;
use core::fmt::{self, Write};
use hv::conring::ConsoleRing;
use hv::sync::SpinLock;

/// Serializes normal console output.
static LOCK: SpinLock<()> = SpinLock::new(());

/// Bytes of console output kept for the control domain (Xen's default
/// `conring_size`).
pub const CONRING_BYTES: usize = 16 * 1024;

/// The recent console output (`sysctl` `readconsole`).
pub static CONRING: SpinLock<ConsoleRing<CONRING_BYTES>> = SpinLock::new(ConsoleRing::new());

/// Writes `bytes` to the serial port and keeps them in [`CONRING`]. A
/// fatal report that interrupted a holder of the ring's lock still
/// reaches the serial port.
pub fn output(bytes: &[u8]) {
    serial::write_bytes(bytes);
    if let Some(mut ring) = CONRING.try_lock() {
        ring.push(bytes);
    }
}

/// A `fmt::Write` sink for the console.
struct Serial;

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        output(s.as_bytes());
        Ok(())
    }
}

fn write_line(prefix: &str, args: fmt::Arguments<'_>) {
    let _ = writeln!(Serial, "(HV) {prefix}{args}");
}

/// Prints a line regardless of the log level (the banner).
pub fn print(args: fmt::Arguments<'_>) {
    let _guard = LOCK.lock();
    write_line("", args);
}

/// Prints a fatal report without taking the console lock. `args` should end
/// with a newline.
pub fn emergency(args: fmt::Arguments<'_>) {
    let _ = write!(Serial, "(HV) {args}");
}

/// Writes the prefix that starts each line of domain `dom`'s console
/// output (`(d1) `, as Xen marks guest output); with `ring_only`, into the
/// console ring alone.
pub fn guest_prefix(dom: u16, ring_only: bool) {
    if ring_only {
        let _ = write!(RingOnly, "(d{dom}) ");
    } else {
        let _ = write!(Serial, "(d{dom}) ");
    }
}

/// Writes a domain's console output: to the serial port and the ring, or
/// with `ring_only` to the ring alone (dom0 serves it).
pub fn guest_output(bytes: &[u8], ring_only: bool) {
    if ring_only {
        CONRING.lock().push(bytes);
    } else {
        output(bytes);
    }
}

/// A `fmt::Write` sink for the console ring alone.
struct RingOnly;

impl Write for RingOnly {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        CONRING.lock().push(s.as_bytes());
        Ok(())
    }
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let prefix = match record.level() {
            log::Level::Error => "error: ",
            log::Level::Warn => "warning: ",
            log::Level::Info => "",
            log::Level::Debug => "debug: ",
            log::Level::Trace => "trace: ",
        };
        let _guard = LOCK.lock();
        write_line(prefix, *record.args());
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Routes `log` records to the serial console at level `info` until the
/// command line says otherwise.
pub fn init() {
    // Only fails if a logger is already set, and this is the only call.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}
