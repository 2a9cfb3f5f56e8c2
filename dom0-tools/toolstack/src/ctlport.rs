//! The control port: how `hvctl` on the host talks to the dom0 shell.
//!
//! Dom0's console is for a person; the control port is a serial line of
//! its own (the machine's second UART, COM2, which `cargo xtask run
//! --socket PATH` makes a Unix socket) for programs. Its protocol is the
//! shell's command language with framing around it:
//!
//! - The host sends a command line ending in `\n`.
//! - Dom0 answers with what the command prints (the same text the console
//!   would show), then one end line: [`END`] (ASCII RS, which never
//!   appears in the text before it: dom0 replaces it with `?`), then
//!   `status=N` and `\n`, where N counts the command's `error:` lines.
//! - A comment line (`# ...`) is answered with itself: the host sends
//!   numbered ones until one comes back to get in step (lines sent before
//!   dom0 set the UART up are lost).
//! - `console <id>` streams the domain's output until the host sends
//!   [`DETACH`] (Ctrl-]) or the domain ends; what the host sends before
//!   that is the domain's input.
//! - `upload <name> <bytes>` ([`crate::command::Command::Upload`]) sends a
//!   kernel image: dom0 answers [`ACK`] when it is ready (or with an error
//!   and the end line), then the host sends the image in [`CHUNK`]-byte
//!   pieces, each answered by an [`ACK`] once dom0 has it (so the host
//!   can show true progress; it may send a few ahead, the serial line's
//!   flow control holds them), and dom0 ends with `uploaded <name>: <bytes>
//!   bytes, crc32 <hex>` and the end line. The host compares the CRC with
//!   its own. An upload that stops for [`UPLOAD_IDLE_MS`] is abandoned.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Starts the end line of a reply.
pub const END: u8 = 0x1e;
/// Dom0 is ready for (the next chunk of) an upload.
pub const ACK: u8 = 0x06;
/// Ctrl-]: detaches from a console.
pub const DETACH: u8 = 0x1d;
/// Bytes of an upload between two acknowledgements.
pub const CHUNK: usize = 4096;
/// Silence after which dom0 abandons an upload, in ms.
pub const UPLOAD_IDLE_MS: u64 = 10_000;
/// The longest command line dom0 takes on the control port.
pub const MAX_LINE: usize = 4096;

/// The end line of a reply whose command had `failures` `error:` lines.
pub fn end_line(failures: u64) -> String {
    format!("{}status={failures}\n", END as char)
}

/// The status an end line carries (`line` without its `\n`), if it is one.
pub fn parse_end(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(&[END])?.strip_prefix(b"status=")?;
    core::str::from_utf8(rest).ok()?.parse().ok()
}

/// `bytes` as they may go out before the end line: [`END`] becomes `?`.
pub fn escape(bytes: &[u8]) -> impl Iterator<Item = u8> + '_ {
    bytes.iter().map(|&b| if b == END { b'?' } else { b })
}

/// Collects command lines from the bytes that arrive.
#[derive(Debug, Default)]
pub struct LineReader {
    line: Vec<u8>,
    /// The current line grew past [`MAX_LINE`]: it is dropped up to its end.
    overlong: bool,
}

/// What [`LineReader::push`] made of a byte.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line (without its `\n` or `\r`).
    Complete(String),
    /// A line longer than [`MAX_LINE`] or not UTF-8 ended: one error.
    Bad(&'static str),
}

impl LineReader {
    /// A reader with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one byte; a line when it ends one.
    pub fn push(&mut self, byte: u8) -> Option<Line> {
        match byte {
            b'\n' => {
                let line = core::mem::take(&mut self.line);
                if core::mem::take(&mut self.overlong) {
                    return Some(Line::Bad("command line too long"));
                }
                match String::from_utf8(line) {
                    Ok(text) => Some(Line::Complete(text)),
                    Err(_) => Some(Line::Bad("command line is not UTF-8")),
                }
            }
            b'\r' => None,
            _ if self.overlong => None,
            _ if self.line.len() >= MAX_LINE => {
                self.line.clear();
                self.overlong = true;
                None
            }
            _ => {
                self.line.push(byte);
                None
            }
        }
    }

    /// Whether part of a line is waiting.
    pub fn is_empty(&self) -> bool {
        self.line.is_empty() && !self.overlong
    }
}

/// An image arriving on the control port.
#[derive(Debug)]
pub struct Upload {
    /// What it will be called.
    pub name: String,
    size: usize,
    data: Vec<u8>,
}

impl Upload {
    /// Starts receiving `size` bytes; `None` if the memory for them cannot
    /// be had.
    pub fn new(name: &str, size: usize) -> Option<Upload> {
        let mut data = Vec::new();
        data.try_reserve_exact(size).ok()?;
        Some(Upload { name: name.into(), size, data })
    }

    /// Takes what arrived, up to the image's end; returns how many bytes
    /// it took and how many acknowledgements are due (one per completed
    /// [`CHUNK`], the last one possibly shorter).
    pub fn feed(&mut self, bytes: &[u8]) -> (usize, usize) {
        let take = bytes.len().min(self.size - self.data.len());
        let before = self.data.len();
        self.data.extend_from_slice(&bytes[..take]);
        let chunks = |n: usize| if n == self.size { n.div_ceil(CHUNK) } else { n / CHUNK };
        (take, chunks(self.data.len()) - chunks(before))
    }

    /// Bytes still to come.
    pub fn remaining(&self) -> usize {
        self.size - self.data.len()
    }

    /// The whole image, once [`Upload::remaining`] is 0.
    pub fn finish(self) -> Option<(String, Vec<u8>)> {
        (self.data.len() == self.size).then_some((self.name, self.data))
    }
}

/// The line that closes a good upload.
pub fn uploaded_line(name: &str, image: &[u8]) -> String {
    format!("uploaded {name}: {} bytes, crc32 {:08x}", image.len(), crc32(image))
}

/// The CRC-32 (IEEE 802.3, as `zlib`'s `crc32`) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |c, &b| TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_lines_round_trip_and_text_never_holds_one() {
        let line = end_line(3);
        assert_eq!(line, "\x1estatus=3\n");
        assert_eq!(parse_end(line.trim_end().as_bytes()), Some(3));
        assert_eq!(parse_end(b"status=3"), None);
        assert_eq!(parse_end(b"\x1estatus=x"), None);
        let text: Vec<u8> = escape(b"a\x1estatus=0").collect();
        assert_eq!(text, b"a?status=0");
    }

    #[test]
    fn lines_are_collected_and_bounded() {
        let mut r = LineReader::new();
        let mut got = Vec::new();
        for &b in b"list\r\ninfo\n\xff\n" {
            got.extend(r.push(b));
        }
        assert_eq!(
            got,
            [Line::Complete("list".into()), Line::Complete("info".into()), Line::Bad("command line is not UTF-8")]
        );
        assert!(r.is_empty());
        for _ in 0..MAX_LINE + 10 {
            assert_eq!(r.push(b'x'), None);
        }
        assert!(!r.is_empty());
        assert_eq!(r.push(b'\n'), Some(Line::Bad("command line too long")));
        assert_eq!(r.push(b'\n'), Some(Line::Complete(String::new())), "the next line is fine");
    }

    #[test]
    fn uploads_acknowledge_each_chunk_and_the_short_last_one() {
        let image: Vec<u8> = (0..CHUNK * 2 + 100).map(|i| (i * 7) as u8).collect();
        let mut up = Upload::new("k", image.len()).unwrap();
        let mut acks = 0;
        let mut fed = 0;
        for piece in image.chunks(1000) {
            let (took, a) = up.feed(piece);
            assert_eq!(took, piece.len());
            fed += took;
            acks += a;
            assert_eq!(acks, if fed == image.len() { 3 } else { fed / CHUNK });
        }
        assert_eq!(up.feed(b"extra"), (0, 0), "nothing past the end");
        assert_eq!(up.remaining(), 0);
        let (name, data) = up.finish().unwrap();
        assert_eq!((name.as_str(), data), ("k", image));
        let mut exact = Upload::new("e", CHUNK).unwrap();
        assert_eq!(exact.feed(&[0; CHUNK]), (CHUNK, 1));
        assert!(Upload::new("huge", usize::MAX).is_none(), "refused, not a crash");
        assert!(Upload::new("p", 2).unwrap().finish().is_none(), "not complete");
    }

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(uploaded_line("k", b"123456789"), "uploaded k: 9 bytes, crc32 cbf43926");
    }
}
