//! Text helpers: a line-buffered writer and NUL-terminated strings.

use core::fmt;

/// A `fmt::Write` that collects text in a fixed buffer and hands it to
/// `sink` a line at a time (or when the buffer fills), so each console
/// write is one whole line. Lives on the caller's stack: no shared state,
/// so a trap handler can print while the code it interrupted was printing.
pub struct LineWriter<F: FnMut(&[u8]), const N: usize = 256> {
    buf: [u8; N],
    len: usize,
    sink: F,
}

impl<F: FnMut(&[u8]), const N: usize> LineWriter<F, N> {
    /// An empty writer that flushes into `sink`.
    pub const fn new(sink: F) -> Self {
        LineWriter { buf: [0; N], len: 0, sink }
    }

    /// Hands whatever is buffered to the sink.
    pub fn flush(&mut self) {
        if self.len > 0 {
            (self.sink)(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl<F: FnMut(&[u8]), const N: usize> fmt::Write for LineWriter<F, N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == N {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

impl<F: FnMut(&[u8]), const N: usize> Drop for LineWriter<F, N> {
    fn drop(&mut self) {
        self.flush();
    }
}

impl<F: FnMut(&[u8]), const N: usize> fmt::Debug for LineWriter<F, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineWriter").field("buffered", &self.len).finish()
    }
}

/// The bytes of a NUL-terminated buffer up to its NUL (all of it if none).
pub fn c_bytes(raw: &[u8]) -> &[u8] {
    raw.iter().position(|&b| b == 0).map_or(raw, |n| &raw[..n])
}

/// Whether `raw` holds a NUL-terminated string of printable ASCII.
pub fn is_printable_c_string(raw: &[u8]) -> bool {
    raw.contains(&0) && c_bytes(raw).iter().all(|b| (0x20..0x7f).contains(b))
}

/// Shows bytes as text, escaping anything that is not printable ASCII.
#[derive(Clone, Copy)]
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            if (0x20..0x7f).contains(&b) && b != b'\\' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A short message in a fixed buffer (longer text is cut off): a reason a
/// check failed, built without an allocator.
#[derive(Clone, Copy)]
pub struct Msg {
    buf: [u8; MSG_LEN],
    len: u8,
}

/// Bytes a [`Msg`] holds (small enough to return in a `Result` freely).
pub const MSG_LEN: usize = 120;

impl Msg {
    /// An empty message.
    pub const fn new() -> Msg {
        Msg { buf: [0; MSG_LEN], len: 0 }
    }

    /// The message text.
    pub fn as_str(&self) -> &str {
        // Only whole `str`s are appended, but a cut may split a character.
        let len = usize::from(self.len);
        match core::str::from_utf8(&self.buf[..len]) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&self.buf[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl Default for Msg {
    fn default() -> Self {
        Msg::new()
    }
}

impl fmt::Write for Msg {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let len = usize::from(self.len);
        let n = s.len().min(MSG_LEN - len);
        self.buf[len..len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len = (len + n) as u8;
        Ok(())
    }
}

impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// Formats a [`Msg`].
#[macro_export]
macro_rules! msg {
    ($($arg:tt)*) => {{
        let mut m = $crate::text::Msg::new();
        let _ = core::fmt::Write::write_fmt(&mut m, format_args!($($arg)*));
        m
    }};
}

/// Returns `Err(msg!(...))` from the enclosing function unless `cond`
/// holds: `ensure!(n == 3, "got {n}")`.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($why:tt)*) => {
        if !$cond {
            return Err($crate::msg!($($why)*));
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn flushes_whole_lines() {
        let mut out: Vec<Vec<u8>> = Vec::new();
        {
            let mut w = LineWriter::<_, 8>::new(|b: &[u8]| out.push(b.to_vec()));
            write!(w, "ab\ncd").unwrap();
            write!(w, "e\n0123456789").unwrap();
        }
        let lines: Vec<&[u8]> = out.iter().map(|v| v.as_slice()).collect();
        assert_eq!(lines, [&b"ab\n"[..], b"cde\n", b"01234567", b"89"]);
    }

    #[test]
    fn c_strings() {
        assert_eq!(c_bytes(b".7\0\0junk"), b".7");
        assert_eq!(c_bytes(b"abc"), b"abc");
        assert!(is_printable_c_string(b"xen-3.0-x86_64 hvm-3.0-x86_32\0\0"));
        assert!(!is_printable_c_string(b"no terminator"));
        assert!(!is_printable_c_string(b"bad\x01\0"));
        assert!(contains(b"xen-3.0-x86_64 xen-3.0-x86_32p", b"xen-3.0-x86_64"));
        assert!(!contains(b"xen-3.0-x86_32p", b"xen-3.0-x86_64"));
        assert_eq!(format!("{}", Escaped(b"a\x01\\")), "a\\x01\\x5c");
    }

    #[test]
    fn messages_are_cut_not_overflowed() {
        let m = crate::msg!("{} {:#x}", "cr2", 0xdead_0000u64);
        assert_eq!(m.as_str(), "cr2 0xdead0000");
        let long = crate::msg!("{}", "é".repeat(100));
        assert_eq!(long.as_str().len(), MSG_LEN);
    }
}
