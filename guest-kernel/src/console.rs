//! Console output through `console_io`: `print!` and `println!`.

use crate::hypercall::hv;
use crate::text::LineWriter;
use core::fmt::{self, Write};

/// Writes `bytes` to the hypervisor console as they are (errors are
/// dropped: there is nowhere else to report them).
pub fn write_bytes(bytes: &[u8]) {
    let _ = hv().console_write(bytes);
}

/// Formats `args` and writes the text a line at a time.
pub fn print_args(args: fmt::Arguments<'_>) {
    let mut w = LineWriter::<_, 256>::new(write_bytes);
    let _ = w.write_fmt(args);
}

/// Prints to the hypervisor console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print_args(format_args!($($arg)*)) };
}

/// Prints a line to the hypervisor console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::write_bytes(b"\n") };
    ($($arg:tt)*) => { $crate::console::print_args(format_args!("{}\n", format_args!($($arg)*))) };
}
