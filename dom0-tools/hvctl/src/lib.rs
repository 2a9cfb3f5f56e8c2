//! Talking to the dom0 shell over its control port: one command, its reply.
//!
//! The control port is the machine's second serial line (COM2), which
//! `cargo xtask run --socket PATH` makes a Unix socket; dom0's shell
//! serves it beside its console, with the framing of
//! [`toolstack::ctlport`]: a command line goes in, its output comes back
//! followed by an end line carrying the number of `error:` lines. Nothing
//! else shares the line (the hypervisor's log stays on the console), so a
//! reply is exactly the command's output.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};
use toolstack::ctlport::{self, ACK, CHUNK, DETACH};

/// How long [`Session::sync`] waits for an answer before asking again.
pub const SYNC_EVERY: Duration = Duration::from_millis(500);

/// Upload chunks sent ahead of dom0's acknowledgements.
pub const WINDOW: usize = 4;

/// A connection to the dom0 shell's control port.
#[derive(Debug)]
pub struct Session {
    stream: UnixStream,
    /// Bytes received and not yet taken.
    pending: Vec<u8>,
}

/// What a command printed and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// Its output lines.
    pub lines: Vec<String>,
    /// Its `error:` lines (0: it succeeded).
    pub status: u64,
}

/// What went wrong talking to the shell.
#[derive(Debug)]
pub enum Error {
    /// The socket could not be used.
    Io(std::io::Error),
    /// No reply came in time.
    Timeout(Duration, String),
    /// An uploaded image arrived different from what was sent.
    Corrupt(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Timeout(t, tail) => {
                write!(f, "no reply within {t:?} (is dom0 running the shell?); last output: {tail:?}")
            }
            Error::Corrupt(what) => write!(f, "upload corrupted: {what}"),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl Session {
    /// Connects to the control port's socket at `path` and waits until
    /// the shell answers ([`Session::sync`]).
    pub fn connect(path: &Path, timeout: Duration) -> Result<Session, Error> {
        let stream = UnixStream::connect(path)?;
        let mut s = Session { stream, pending: Vec::new() };
        s.sync(timeout)?;
        Ok(s)
    }

    /// Gets in step with the shell: sends numbered comments (which the
    /// control port echoes) every [`SYNC_EVERY`] until one comes back,
    /// then takes the replies to the ones after it, and drops whatever
    /// came before. Lines sent before dom0 set the port up are lost (the
    /// UART's FIFO is reset), so one is not enough; once one is answered,
    /// every later one will be.
    pub fn sync(&mut self, timeout: Duration) -> Result<(), Error> {
        let start = Instant::now();
        let tag = format!("# hvctl sync {}-", std::process::id());
        let mut sent = 0u32;
        loop {
            self.stream.write_all(format!("{tag}{sent}\n").as_bytes())?;
            sent += 1;
            let reply = match self.reply(SYNC_EVERY, &mut |_| {}) {
                Ok(reply) => reply,
                Err(Error::Timeout(..)) if start.elapsed() < timeout => continue,
                Err(e) => return Err(e),
            };
            let answered = reply.lines.iter().find_map(|l| l.strip_prefix(&tag)?.parse::<u32>().ok());
            if let Some(k) = answered {
                for _ in k + 1..sent {
                    self.reply(timeout, &mut |_| {})?;
                }
                return Ok(());
            }
        }
    }

    /// Sends `line` and returns the shell's reply.
    pub fn run(&mut self, line: &str, timeout: Duration) -> Result<Reply, Error> {
        self.stream.write_all(line.as_bytes())?;
        self.stream.write_all(b"\n")?;
        self.reply(timeout, &mut |_| {})
    }

    /// Attaches to domain `domain`'s console, types `input` into it,
    /// detaches (Ctrl-]) and returns what the console showed.
    pub fn console(&mut self, domain: &str, input: &str, timeout: Duration) -> Result<Reply, Error> {
        self.stream.write_all(format!("console {domain}\n{input}").as_bytes())?;
        self.stream.write_all(&[DETACH])?;
        self.reply(timeout, &mut |_| {})
    }

    /// Attaches to domain `domain`'s console: what it prints goes to `out`
    /// as it comes, what `input` yields goes to the domain, and the end of
    /// `input` (or a Ctrl-] in it) detaches. Returns the reply's status.
    pub fn attach(
        &mut self,
        domain: &str,
        mut input: impl Read + Send + 'static,
        out: &mut dyn Write,
    ) -> Result<u64, Error> {
        self.stream.write_all(format!("console {domain}\n").as_bytes())?;
        let mut typist = self.stream.try_clone()?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = input.read(&mut buf) {
                if n == 0 || typist.write_all(&buf[..n]).is_err() || buf[..n].contains(&DETACH) {
                    break;
                }
            }
            let _ = typist.write_all(&[DETACH]);
        });
        let reply = self.reply(Duration::MAX, &mut |line| {
            let _ = out.write_all(line.as_bytes());
            let _ = out.write_all(b"\n");
            let _ = out.flush();
        })?;
        Ok(reply.status)
    }

    /// Uploads `image` as `name` ([`toolstack::ctlport`]): `progress` is
    /// told the bytes dom0 has acknowledged after each chunk. Checks the
    /// CRC dom0 reports against the image's.
    pub fn upload(
        &mut self,
        name: &str,
        image: &[u8],
        timeout: Duration,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Reply, Error> {
        self.stream.write_all(format!("upload {name} {}\n", image.len()).as_bytes())?;
        // ACK: go on; anything else is the start of a refusal.
        if self.next_byte(timeout)? != ACK {
            return self.reply(timeout, &mut |_| {});
        }
        // Up to WINDOW chunks in flight, so that dom0 never waits for
        // the next one.
        let chunks: Vec<&[u8]> = image.chunks(CHUNK).collect();
        let (mut sent, mut acked) = (0, 0);
        while acked < chunks.len() {
            while sent < chunks.len() && sent < acked + WINDOW {
                self.stream.write_all(chunks[sent])?;
                sent += 1;
            }
            match self.next_byte(timeout)? {
                ACK => {
                    acked += 1;
                    progress((acked * CHUNK).min(image.len()));
                }
                _ => return self.reply(timeout, &mut |_| {}),
            }
        }
        let reply = self.reply(timeout, &mut |_| {})?;
        let want = ctlport::uploaded_line(name, image);
        if reply.status == 0 && !reply.lines.contains(&want) {
            return Err(Error::Corrupt(format!("dom0 said {:?}, expected {want:?}", reply.lines)));
        }
        Ok(reply)
    }

    /// Waits for the next byte; an end of reply puts it back.
    fn next_byte(&mut self, timeout: Duration) -> Result<u8, Error> {
        self.fill(timeout, |p| !p.is_empty())?;
        let b = self.pending[0];
        if b == ACK {
            self.pending.remove(0);
        }
        Ok(b)
    }

    /// Reads the output up to the end line; each complete line also goes
    /// to `each` as it arrives.
    fn reply(&mut self, timeout: Duration, each: &mut dyn FnMut(&str)) -> Result<Reply, Error> {
        let mut lines = Vec::new();
        loop {
            self.fill(timeout, |p| p.contains(&b'\n'))?;
            while let Some(at) = self.pending.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.pending.drain(..=at).collect();
                let raw = &raw[..at];
                if let Some(status) = ctlport::parse_end(raw) {
                    return Ok(Reply { lines, status });
                }
                let line = String::from_utf8_lossy(raw).trim_end_matches('\r').to_string();
                each(&line);
                lines.push(line);
            }
        }
    }

    /// Reads until `ready(pending)` or `timeout` (counted from now).
    fn fill(&mut self, timeout: Duration, ready: impl Fn(&[u8]) -> bool) -> Result<(), Error> {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while !ready(&self.pending) {
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                let tail =
                    String::from_utf8_lossy(&self.pending[self.pending.len().saturating_sub(200)..]).into_owned();
                return Err(Error::Timeout(timeout, tail));
            }
            self.stream.set_read_timeout(Some(left.min(Duration::from_millis(200))))?;
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// The name an image file is uploaded under: its file name, with every
/// character `upload` does not take replaced by `_` (at most 64).
pub fn image_name(path: &Path) -> String {
    let base = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut name: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' })
        .take(toolstack::command::MAX_IMAGE_NAME)
        .collect();
    if !toolstack::command::image_name_ok(&name) {
        name = format!("{}.img", name.chars().take(toolstack::command::MAX_IMAGE_NAME - 4).collect::<String>());
    }
    name
}

/// A progress bar for `done` of `total` bytes, 30 cells wide.
pub fn progress_bar(name: &str, done: usize, total: usize) -> String {
    let cells = (done * 30).checked_div(total).unwrap_or(30);
    format!(
        "upload {name} [{}{}] {:>3}% {}/{} KiB",
        "#".repeat(cells),
        ".".repeat(30 - cells),
        (done * 100).checked_div(total).unwrap_or(100),
        done.div_ceil(1024),
        total.div_ceil(1024)
    )
}

/// A row of `list`.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Domain id.
    pub id: u32,
    /// Its name (`-` if the shell did not create it).
    pub name: String,
    /// running, blocked, paused, shutdown(reason)...
    pub state: String,
    /// Memory in MiB.
    pub mem_mib: u64,
    /// CPU time in seconds.
    pub cpu_s: f64,
}

/// Parses `list`'s table (the header line, then one row per domain).
pub fn parse_list(reply: &Reply) -> Vec<Row> {
    reply
        .lines
        .iter()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let [id, name, state, mem, cpu] = w[..] else { return None };
            Some(Row {
                id: id.parse().ok()?,
                name: name.to_string(),
                state: state.to_string(),
                mem_mib: mem.parse().ok()?,
                cpu_s: cpu.parse().ok()?,
            })
        })
        .collect()
}

/// `s` as a JSON string.
pub fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `--json` form of a reply: `list` as an array of domains, anything
/// else as `{"ok": …, "output": [lines]}`.
pub fn to_json(command: &str, reply: &Reply) -> String {
    if command.split_whitespace().next() == Some("list") && reply.status == 0 {
        let rows: Vec<String> = parse_list(reply)
            .iter()
            .map(|r| {
                format!(
                    "{{\"id\":{},\"name\":{},\"state\":{},\"mem_mib\":{},\"cpu_s\":{}}}",
                    r.id,
                    json_string(&r.name),
                    json_string(&r.state),
                    r.mem_mib,
                    r.cpu_s
                )
            })
            .collect();
        return format!("[{}]", rows.join(","));
    }
    let lines: Vec<String> = reply.lines.iter().map(|l| json_string(l)).collect();
    format!("{{\"ok\":{},\"output\":[{}]}}", reply.status == 0, lines.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(text: &str, status: u64) -> Reply {
        Reply { lines: text.lines().map(String::from).collect(), status }
    }

    const LIST: &str = "ID    NAME              STATE                MEM(MiB)    CPU(s)\n\
        0     Domain-0          running                    64       0.1\n\
        1     web               blocked                    16       0.0\n";

    #[test]
    fn list_parses_and_renders_json() {
        let r = reply(LIST, 0);
        let rows = parse_list(&r);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1], Row { id: 1, name: "web".into(), state: "blocked".into(), mem_mib: 16, cpu_s: 0.0 });
        assert_eq!(
            to_json("list", &r),
            "[{\"id\":0,\"name\":\"Domain-0\",\"state\":\"running\",\"mem_mib\":64,\"cpu_s\":0.1},\
             {\"id\":1,\"name\":\"web\",\"state\":\"blocked\",\"mem_mib\":16,\"cpu_s\":0}]"
        );
        let e = reply("error: destroy: no domain 7", 1);
        assert_eq!(to_json("destroy 7", &e), "{\"ok\":false,\"output\":[\"error: destroy: no domain 7\"]}");
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    #[test]
    fn image_names_are_what_upload_takes() {
        assert_eq!(image_name(Path::new("/x/guest-kernel.elf")), "guest-kernel.elf");
        assert_eq!(image_name(Path::new("my kernel (2)")), "my_kernel__2_");
        assert_eq!(image_name(Path::new("/x/ramdisk")), "ramdisk.img");
        assert_eq!(image_name(Path::new(&"k".repeat(100))).len(), 64);
        assert_eq!(image_name(Path::new("/")), ".img");
    }

    #[test]
    fn the_progress_bar_fills() {
        assert_eq!(progress_bar("k", 0, 2048), format!("upload k [{}]   0% 0/2 KiB", ".".repeat(30)));
        assert_eq!(
            progress_bar("k", 1024, 2048),
            format!("upload k [{}{}]  50% 1/2 KiB", "#".repeat(15), ".".repeat(15))
        );
        assert_eq!(progress_bar("k", 2048, 2048), format!("upload k [{}] 100% 2/2 KiB", "#".repeat(30)));
    }
}
