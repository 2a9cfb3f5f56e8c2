//! One domain's console output, picked out of the hypervisor's console
//! ring.
//!
//! A domain without a console backend writes its console with `console_io`;
//! the hypervisor prints each of its lines as `(d<id>) <text>` (Xen does the
//! same for a domU in a debug build), and keeps what it prints in its
//! console ring, which the control domain reads with `sysctl readconsole`:
//! bytes numbered by a free-running 32-bit index, from the oldest still held.
//!
//! [`GuestLines`] takes the ring's bytes in order with their indices and
//! hands out the text of each line of one domain, prefix stripped. A line
//! cut short by a gap (output overtook the reader) is left out, and so is
//! whatever lies in a [`Reprints`] range: where the control domain itself
//! printed ring text back to the console (a `dmesg`), which lands in the
//! ring again on a hypervisor that keeps dom0's output there.
//!
//! The prefix is looked for anywhere outside the domain's own lines, since
//! a line of the domain may follow another writer's unfinished one (dom0's
//! prompt). So text that merely contains `(d<id>) ` in another domain's
//! line is taken for the domain's, from there on: the ring does not say
//! who wrote what.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::builder::DomId;

/// Longest piece of a line handed out at once; a longer line comes in
/// pieces of this size, the last with its newline.
pub const MAX_LINE: usize = 512;

/// Most [`Reprints`] ranges kept; older ones fall out first.
pub const MAX_REPRINTS: usize = 8;

/// Ring index ranges that hold the control domain's own copies of ring
/// text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reprints {
    /// `[start, end)` in free-running indices, oldest first.
    ranges: Vec<(u32, u32)>,
}

impl Reprints {
    /// No ranges.
    pub const fn new() -> Reprints {
        Reprints { ranges: Vec::new() }
    }

    /// Records `[start, end)`, forgetting the oldest range if
    /// [`MAX_REPRINTS`] are kept already.
    pub fn record(&mut self, start: u32, end: u32) {
        if start == end {
            return;
        }
        if self.ranges.len() == MAX_REPRINTS {
            self.ranges.remove(0);
        }
        self.ranges.push((start, end));
    }

    /// Whether ring index `index` lies in a recorded range.
    pub fn contains(&self, index: u32) -> bool {
        self.ranges.iter().any(|&(start, end)| index.wrapping_sub(start) < end.wrapping_sub(start))
    }
}

/// Where in the ring [`GuestLines`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Looking for the prefix; this many of its bytes came last.
    Search(usize),
    /// In a line of the domain: `line` holds its text so far.
    Keep,
    /// In a reprint that did not end its line: nothing until a newline.
    Ignore,
}

/// Picks one domain's lines out of console ring bytes (see the
/// [module docs](self)).
#[derive(Clone, Debug)]
pub struct GuestLines {
    /// `(d<id>) `: it starts with the only `(` in it.
    prefix: String,
    /// The index the next bytes should start at; `None` before the first.
    next: Option<u32>,
    state: State,
    line: Vec<u8>,
}

impl GuestLines {
    /// Lines of domain `domid`.
    pub fn new(domid: DomId) -> GuestLines {
        GuestLines { prefix: format!("(d{domid}) "), next: None, state: State::Search(0), line: Vec::new() }
    }

    /// Takes `bytes`, which start at ring index `index`, and calls `emit`
    /// with the text of each complete line of the domain (newline
    /// included), or each [`MAX_LINE`] bytes of a longer one.
    ///
    /// A line of the domain starts where its prefix does, at the start of a
    /// ring line or after another writer's unfinished one (dom0's prompt,
    /// say): the hypervisor writes a domain's prefix and line in one go.
    /// Within the domain's own line, the prefix is text. Bytes that do not
    /// follow the last ones drop the line in progress.
    pub fn feed(&mut self, index: u32, bytes: &[u8], reprints: &Reprints, mut emit: impl FnMut(&[u8])) {
        if self.next != Some(index) {
            self.line.clear();
            self.state = State::Search(0);
        }
        let prefix = self.prefix.as_bytes();
        for (offset, &byte) in bytes.iter().enumerate() {
            if reprints.contains(index.wrapping_add(offset as u32)) {
                self.line.clear();
                self.state = if byte == b'\n' { State::Search(0) } else { State::Ignore };
                continue;
            }
            self.state = match self.state {
                State::Search(matched) if byte == prefix[matched] => {
                    if matched + 1 == prefix.len() {
                        State::Keep
                    } else {
                        State::Search(matched + 1)
                    }
                }
                State::Search(_) => State::Search(usize::from(byte == prefix[0])),
                State::Keep => {
                    self.line.push(byte);
                    if byte == b'\n' || self.line.len() == MAX_LINE {
                        emit(&self.line);
                        self.line.clear();
                    }
                    if byte == b'\n' {
                        State::Search(0)
                    } else {
                        State::Keep
                    }
                }
                State::Ignore if byte == b'\n' => State::Search(0),
                State::Ignore => State::Ignore,
            };
        }
        self.next = Some(index.wrapping_add(bytes.len() as u32));
    }

    /// Hands out the domain's unfinished line, if there is one, with a
    /// newline added (when the reader stops).
    pub fn flush(&mut self, mut emit: impl FnMut(&[u8])) {
        if self.state == State::Keep && !self.line.is_empty() {
            self.line.push(b'\n');
            emit(&self.line);
        }
        self.line.clear();
        self.state = State::Search(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` (index, bytes) and returns what was emitted.
    fn lines(domid: DomId, pieces: &[(u32, &[u8])], reprints: &Reprints) -> Vec<String> {
        let mut g = GuestLines::new(domid);
        let mut out = Vec::new();
        for &(index, bytes) in pieces {
            g.feed(index, bytes, reprints, |l| out.push(String::from_utf8_lossy(l).into_owned()));
        }
        g.flush(|l| out.push(String::from_utf8_lossy(l).into_owned()));
        out
    }

    #[test]
    fn picks_the_domains_lines_and_strips_the_prefix() {
        let ring = b"(HV) hv 0.1\n(d1) one\n(d12) other\n(d1) two\nplain\n(d1)three\n(d1) \n";
        assert_eq!(lines(1, &[(0, ring)], &Reprints::new()), ["one\n", "two\n", "\n"]);
        assert_eq!(lines(12, &[(0, ring)], &Reprints::new()), ["other\n"]);
        assert_eq!(lines(2, &[(0, ring)], &Reprints::new()), Vec::<String>::new());
    }

    #[test]
    fn lines_may_come_in_pieces() {
        let pieces: &[(u32, &[u8])] = &[(0, b"(d"), (2, b"3) he"), (7, b"llo\n(d3"), (14, b") bye")];
        assert_eq!(lines(3, pieces, &Reprints::new()), ["hello\n", "bye\n"], "the last line is flushed");
    }

    #[test]
    fn a_line_may_follow_another_writers_unfinished_one() {
        let ring = b"dom0> (d1) one\ndom0> lis(d1) two\nt\n(d1) a (d1) b\n";
        assert_eq!(lines(1, &[(0, ring)], &Reprints::new()), ["one\n", "two\n", "a (d1) b\n"]);
        // ((d1) : a `(` restarts the match.
        assert_eq!(lines(1, &[(0, b"((d1) x\n(d(d1) y\n")], &Reprints::new()), ["x\n", "y\n"]);
        // The ring cannot say who wrote a prefix in another domain's line.
        assert_eq!(lines(1, &[(0, b"(d2) x (d1) y\n")], &Reprints::new()), ["y\n"]);
    }

    #[test]
    fn a_gap_drops_the_line_in_progress() {
        // The ring wrapped: the first bytes are the middle of a line.
        assert_eq!(lines(1, &[(100, b"ail\n(d1) whole\n")], &Reprints::new()), ["whole\n"]);
        // The reader was overtaken between two reads.
        let pieces: &[(u32, &[u8])] = &[(0, b"(d1) cut "), (50, b"short\n(d1) next\n")];
        assert_eq!(lines(1, pieces, &Reprints::new()), ["next\n"]);
        // Indices that wrap around u32 are contiguous.
        let pieces: &[(u32, &[u8])] = &[(u32::MAX - 3, b"(d1) a"), ((u32::MAX - 3).wrapping_add(6), b"bc\n")];
        assert_eq!(lines(1, pieces, &Reprints::new()), ["abc\n"]);
    }

    #[test]
    fn reprinted_lines_are_left_out() {
        let ring = b"(d1) one\n(d1) two\n(d1) one\n(d1) two\n(d1) three\n";
        let mut reprints = Reprints::new();
        reprints.record(18, 36);
        assert_eq!(lines(1, &[(0, ring)], &reprints), ["one\n", "two\n", "three\n"]);
        assert!(reprints.contains(18) && reprints.contains(35) && !reprints.contains(36) && !reprints.contains(17));
        // A reprint that stops inside a line hides the rest of that line.
        let mut reprints = Reprints::new();
        reprints.record(0, 3);
        assert_eq!(lines(1, &[(0, b"(d1) one\n(d1) two\n")], &reprints), ["two\n"]);
    }

    #[test]
    fn reprint_ranges_wrap_and_age() {
        let mut r = Reprints::new();
        r.record(u32::MAX - 2, 3);
        assert!(r.contains(u32::MAX) && r.contains(0) && r.contains(2) && !r.contains(3));
        r.record(5, 5);
        assert_eq!(r.ranges.len(), 1, "an empty range is not kept");
        for n in 0..MAX_REPRINTS as u32 {
            r.record(100 + 10 * n, 105 + 10 * n);
        }
        assert_eq!(r.ranges.len(), MAX_REPRINTS);
        assert!(!r.contains(0), "the oldest went first");
        assert!(r.contains(100));
    }

    #[test]
    fn long_lines_come_in_pieces() {
        let mut ring = b"(d1) ".to_vec();
        ring.extend(core::iter::repeat_n(b'x', MAX_LINE + 3));
        ring.push(b'\n');
        let out = lines(1, &[(0, &ring)], &Reprints::new());
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), MAX_LINE);
        assert_eq!(out[1], "xxx\n");
    }
}
