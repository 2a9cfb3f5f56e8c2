//! Line input on a serial console: typed bytes in, echo out, one line at a
//! time.
//!
//! [`LineEditor::feed`] takes the bytes `console_io(CONSOLEIO_read)` returns,
//! one at a time, and says what to echo. It keeps printable ASCII (a tab
//! becomes a space), up to `N` bytes (more rings the bell); Enter (`\r` or
//! `\n`; `\r\n` is one Enter) ends the line; Backspace or Delete erases
//! the last byte, Ctrl-U the whole line, Ctrl-C abandons it (`^C`).
//! Terminal escape sequences (arrow keys: `ESC [ ... final`, `ESC O x`)
//! and other control bytes are dropped without echo.

/// What a byte finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Enter: [`LineEditor::line`] holds the line until [`LineEditor::clear`].
    Line,
    /// Ctrl-C: the line was dropped.
    Cancel,
}

/// Where in an escape sequence the editor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escape {
    /// Not in one.
    None,
    /// After `ESC`.
    Start,
    /// After `ESC [`: parameters until a final byte (0x40..=0x7e).
    Csi,
    /// After `ESC O`: one more byte.
    Ss3,
}

/// Erases one character on a terminal: back, blank, back.
const ERASE: &[u8] = b"\x08 \x08";

/// A line being typed, of at most `N` bytes.
#[derive(Clone, Debug)]
pub struct LineEditor<const N: usize = 256> {
    buf: [u8; N],
    len: usize,
    escape: Escape,
    /// The last byte was `\r` (so a `\n` right after it is the same Enter).
    after_cr: bool,
}

impl<const N: usize> Default for LineEditor<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineEditor<N> {
    /// An empty line.
    pub const fn new() -> Self {
        LineEditor { buf: [0; N], len: 0, escape: Escape::None, after_cr: false }
    }

    /// The line so far (printable ASCII only).
    pub fn line(&self) -> &str {
        // Only bytes 0x20..=0x7e are ever stored.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Empties the line (after [`Input::Line`]).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Takes one typed byte, calls `echo` with what the terminal should
    /// show for it (if anything), and says whether it ended the line.
    pub fn feed(&mut self, byte: u8, mut echo: impl FnMut(&[u8])) -> Option<Input> {
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        match self.escape {
            Escape::None => {}
            Escape::Start => {
                self.escape = match byte {
                    b'[' => Escape::Csi,
                    b'O' => Escape::Ss3,
                    _ => Escape::None,
                };
                return None;
            }
            Escape::Csi => {
                if (0x40..=0x7e).contains(&byte) {
                    self.escape = Escape::None;
                }
                return None;
            }
            Escape::Ss3 => {
                self.escape = Escape::None;
                return None;
            }
        }
        match byte {
            b'\n' if after_cr => None,
            b'\r' | b'\n' => {
                echo(b"\n");
                Some(Input::Line)
            }
            0x08 | 0x7f => {
                if self.len > 0 {
                    self.len -= 1;
                    echo(ERASE);
                }
                None
            }
            0x15 => {
                for _ in 0..self.len {
                    echo(ERASE);
                }
                self.len = 0;
                None
            }
            0x03 => {
                self.len = 0;
                echo(b"^C\n");
                Some(Input::Cancel)
            }
            0x1b => {
                self.escape = Escape::Start;
                None
            }
            b'\t' | 0x20..=0x7e => {
                if self.len == N {
                    echo(b"\x07");
                    return None;
                }
                let b = if byte == b'\t' { b' ' } else { byte };
                self.buf[self.len] = b;
                self.len += 1;
                echo(&[b]);
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input`; returns the echo and each finished line (or `^C`).
    fn typed<const N: usize>(input: &[u8]) -> (String, Vec<String>) {
        let mut ed = LineEditor::<N>::new();
        let (mut echo, mut done) = (Vec::new(), Vec::new());
        for &b in input {
            match ed.feed(b, |e| echo.extend_from_slice(e)) {
                Some(Input::Line) => {
                    done.push(ed.line().to_string());
                    ed.clear();
                }
                Some(Input::Cancel) => done.push("^C".to_string()),
                None => {}
            }
        }
        (String::from_utf8(echo).unwrap(), done)
    }

    #[test]
    fn echoes_and_ends_lines_at_enter() {
        assert_eq!(typed::<64>(b"list\r"), ("list\n".into(), vec!["list".into()]));
        assert_eq!(
            typed::<64>(b"a\nb\r\nc\r\r"),
            ("a\nb\nc\n\n".into(), vec!["a".into(), "b".into(), "c".into(), "".into()])
        );
        assert_eq!(typed::<64>(b"x\ty").1, Vec::<String>::new(), "no Enter, no line");
        assert_eq!(typed::<64>(b"x\ty\n").1, ["x y"]);
    }

    #[test]
    fn backspace_and_kill() {
        let (echo, lines) = typed::<64>(b"lsx\x7f\x7ft\x08\x08\x08\x08list\n");
        assert_eq!(lines, ["list"]);
        assert_eq!(echo, "lsx\x08 \x08\x08 \x08t\x08 \x08\x08 \x08list\n", "no erase past the start");
        let (echo, lines) = typed::<64>(b"ab\x15c\n");
        assert_eq!(lines, ["c"]);
        assert_eq!(echo, "ab\x08 \x08\x08 \x08c\n");
    }

    #[test]
    fn ctrl_c_abandons_the_line() {
        let (echo, lines) = typed::<64>(b"destroy 1\x03list\n");
        assert_eq!(lines, ["^C", "list"]);
        assert_eq!(echo, "destroy 1^C\nlist\n");
    }

    #[test]
    fn escape_sequences_and_control_bytes_are_dropped() {
        let (echo, lines) = typed::<64>(b"l\x1b[A\x1b[1;5Ci\x1bOPs\x1bxt\x00\x1d\x07\xff\n");
        assert_eq!(lines, ["list"]);
        assert_eq!(echo, "list\n");
    }

    #[test]
    fn a_full_line_rings_the_bell() {
        let (echo, lines) = typed::<4>(b"abcdef\x7fg\n");
        assert_eq!(lines, ["abcg"]);
        assert_eq!(echo, "abcd\x07\x07\x08 \x08g\n");
    }
}
