//! Talking to the dom0 shell over its console: one command, its reply.
//!
//! The shell (the guest kernel's `shell` workload, SPEC §3.13) prints a
//! `dom0> ` prompt, echoes what it is sent, and prints a command's output
//! before the next prompt. Its console is the machine's serial port, which
//! `cargo xtask run --socket PATH` makes a Unix socket; the hypervisor's
//! own log lines (`(HV) ...`) share it. A [`Session`] sends one line and
//! collects what came back up to the next prompt.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The shell's prompt.
pub const PROMPT: &str = "dom0> ";

/// A connection to the dom0 shell.
#[derive(Debug)]
pub struct Session {
    stream: UnixStream,
    /// Bytes received after the last prompt.
    pending: Vec<u8>,
}

/// What went wrong talking to the shell.
#[derive(Debug)]
pub enum Error {
    /// The socket could not be used.
    Io(std::io::Error),
    /// No prompt came back in time.
    Timeout(Duration, String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Timeout(t, tail) => {
                write!(f, "no 'dom0>' prompt within {t:?} (is dom0 running the shell?); last output: {tail:?}")
            }
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl Session {
    /// Connects to the console socket at `path` and waits for a prompt
    /// (sending an empty line to get a fresh one).
    pub fn connect(path: &Path, timeout: Duration) -> Result<Session, Error> {
        let stream = UnixStream::connect(path)?;
        let mut s = Session { stream, pending: Vec::new() };
        s.stream.write_all(b"\n")?;
        s.until_prompt(timeout)?;
        Ok(s)
    }

    /// Sends `line` and returns the shell's reply: the lines it printed
    /// before the next prompt, without the echo of `line`.
    pub fn run(&mut self, line: &str, timeout: Duration) -> Result<Vec<String>, Error> {
        self.stream.write_all(line.as_bytes())?;
        self.stream.write_all(b"\n")?;
        let raw = self.until_prompt(timeout)?;
        Ok(reply_lines(&raw, line))
    }

    /// Attaches to domain `domain`'s console, types `input` into it,
    /// detaches (Ctrl-]) and returns what the console showed.
    pub fn console(&mut self, domain: &str, input: &str, timeout: Duration) -> Result<Vec<String>, Error> {
        let line = format!("console {domain}");
        self.stream.write_all(format!("{line}\n{input}\x1d").as_bytes())?;
        let raw = self.until_prompt(timeout)?;
        Ok(reply_lines(&raw, &line))
    }

    /// Reads until the output ends with the prompt; returns what came
    /// before it.
    fn until_prompt(&mut self, timeout: Duration) -> Result<String, Error> {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(at) = find_prompt(&self.pending) {
                let before = String::from_utf8_lossy(&self.pending[..at]).into_owned();
                self.pending.drain(..at + PROMPT.len());
                return Ok(before);
            }
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
    }
}

/// Where the last prompt starts in `bytes`, if they end with one (output
/// that merely contains the prompt text mid-line does not count).
fn find_prompt(bytes: &[u8]) -> Option<usize> {
    let p = PROMPT.as_bytes();
    bytes.ends_with(p).then(|| bytes.len() - p.len())
}

/// The reply to `sent` in `raw`: lines without `\r`, the echo of `sent`
/// dropped, the hypervisor's and other domains' log lines (`(HV) `,
/// `(dN) `) dropped unless the command asked for the log (`dmesg`).
pub fn reply_lines(raw: &str, sent: &str) -> Vec<String> {
    let keep_log = sent.split_whitespace().next() == Some("dmesg");
    let mut lines: Vec<String> = raw.split('\n').map(|l| l.trim_end_matches('\r').to_string()).collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    if let Some(i) = lines.iter().position(|l| l.trim_end() == sent.trim_end()) {
        lines.drain(..=i);
    }
    lines.retain(|l| keep_log || !(l.starts_with("(HV) ") || is_domain_log(l)));
    lines
}

fn is_domain_log(l: &str) -> bool {
    l.strip_prefix("(d").and_then(|r| r.split_once(") ")).is_some_and(|(id, _)| id.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether a reply reports a failure (the shell's `error: ` lines).
pub fn failed(reply: &[String]) -> bool {
    reply.iter().any(|l| l.starts_with("error: "))
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
pub fn parse_list(reply: &[String]) -> Vec<Row> {
    reply
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
pub fn to_json(command: &str, reply: &[String]) -> String {
    if command.split_whitespace().next() == Some("list") && !failed(reply) {
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
    let lines: Vec<String> = reply.iter().map(|l| json_string(l)).collect();
    format!("{{\"ok\":{},\"output\":[{}]}}", !failed(reply), lines.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "list\r\nID    NAME              STATE                MEM(MiB)    CPU(s)\r\n\
        (HV) d2: shut down (Poweroff)\r\n\
        0     Domain-0          running                    64       0.1\r\n\
        1     web               blocked                    16       0.0\r\n";

    #[test]
    fn replies_drop_the_echo_and_log_lines() {
        let r = reply_lines(LIST, "list");
        assert_eq!(r[0], "ID    NAME              STATE                MEM(MiB)    CPU(s)");
        assert_eq!(r.len(), 3, "{r:?}");
        assert!(reply_lines("dmesg\n(HV) hv 0.1.0\n", "dmesg").contains(&"(HV) hv 0.1.0".to_string()));
        assert_eq!(reply_lines("x\n(d3) hello\nerror: unknown command 'x' (try 'help')\n", "x").len(), 1);
    }

    #[test]
    fn list_parses_and_renders_json() {
        let r = reply_lines(LIST, "list");
        let rows = parse_list(&r);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1], Row { id: 1, name: "web".into(), state: "blocked".into(), mem_mib: 16, cpu_s: 0.0 });
        assert_eq!(
            to_json("list", &r),
            "[{\"id\":0,\"name\":\"Domain-0\",\"state\":\"running\",\"mem_mib\":64,\"cpu_s\":0.1},\
             {\"id\":1,\"name\":\"web\",\"state\":\"blocked\",\"mem_mib\":16,\"cpu_s\":0}]"
        );
        let e = vec!["error: destroy: no domain 7".to_string()];
        assert!(failed(&e));
        assert_eq!(to_json("destroy 7", &e), "{\"ok\":false,\"output\":[\"error: destroy: no domain 7\"]}");
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    #[test]
    fn only_a_trailing_prompt_counts() {
        assert_eq!(find_prompt(b"abc\ndom0> "), Some(4));
        assert_eq!(find_prompt(b"dom0> list\nID"), None);
    }
}
