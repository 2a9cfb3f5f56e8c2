//! Boot modules: which domain each multiboot module becomes.
//!
//! Every module string starts with the image's path (as the loader gives
//! it). The first module is dom0 unless it is marked for a domU; the rest
//! of its string is dom0's command line. A module marked `--domu` becomes
//! an unprivileged domain started at boot:
//!
//! ```text
//! PATH --domu [name=NAME] [mem=SIZE] [weight=W] [cap=PCT] [-- GUEST COMMAND LINE]
//! ```
//!
//! - `name=`: a label for logs (default `domU<id>`), at most
//!   [`MAX_NAME`] bytes of letters, digits, `-` and `_`;
//! - `mem=`: memory, a size like `32M` (default [`DEFAULT_DOMU_MEM`], at
//!   least 1 MiB);
//! - `weight=`: the scheduler weight, 1..=65535 (default 256);
//! - `cap=`: the most CPU it may use, in percent, 0 for none (default 0);
//! - everything after `--` is the guest's command line.
//!
//! DomUs get ids 1, 2, ... in module order. With no dom0 module (every
//! module marked `--domu`) the domUs run on their own and the machine
//! powers off when the last of them stops; with a dom0 the machine stops
//! when dom0 does, as on Xen.

use crate::cmdline::parse_size;
use crate::sched::DEFAULT_WEIGHT;

/// A domU's memory when `mem=` is not given.
pub const DEFAULT_DOMU_MEM: u64 = 32 << 20;
/// Longest domU name.
pub const MAX_NAME: usize = 32;
/// The word that marks a module for a domU.
pub const DOMU_MARK: &str = "--domu";

/// What a module string asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleSpec<'a> {
    /// The image's path, for messages.
    pub path: &'a str,
    /// The guest's command line.
    pub cmdline: &'a str,
    /// `Some` for a domU, with its options; `None` for dom0.
    pub domu: Option<DomUOptions<'a>>,
}

/// A domU's settings from its module string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomUOptions<'a> {
    /// Its name (empty: none given).
    pub name: &'a str,
    /// Memory in bytes.
    pub mem_bytes: u64,
    /// Scheduler weight.
    pub weight: u16,
    /// CPU cap in percent (0: none).
    pub cap: u16,
}

/// Why a module string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleError<'a> {
    /// A word that is not `key=value` before `--`.
    NotAnOption(&'a str),
    /// An unknown key.
    UnknownOption(&'a str),
    /// A bad value for a known key.
    BadValue {
        /// The key.
        key: &'a str,
        /// The value given.
        value: &'a str,
        /// What was expected.
        expected: &'static str,
    },
}

impl core::fmt::Display for ModuleError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ModuleError::NotAnOption(w) => {
                write!(f, "'{w}' is not a domU option (key=value); put the guest's command line after '--'")
            }
            ModuleError::UnknownOption(k) => write!(f, "unknown domU option '{k}=' (known: name, mem, weight, cap)"),
            ModuleError::BadValue { key, value, expected } => {
                write!(f, "bad value '{value}' for {key}= (expected {expected})")
            }
        }
    }
}

/// Splits a module string into path, marker, options and command line.
pub fn parse(string: &str) -> Result<ModuleSpec<'_>, ModuleError<'_>> {
    let string = string.trim();
    let (path, rest) = string.split_once(char::is_whitespace).unwrap_or((string, ""));
    let rest = rest.trim_start();
    let Some(after_mark) = strip_word(rest, DOMU_MARK) else {
        return Ok(ModuleSpec { path, cmdline: rest, domu: None });
    };
    let (options, cmdline) = match find_separator(after_mark) {
        Some((options, cmdline)) => (options, cmdline.trim()),
        None => (after_mark, ""),
    };
    let mut o = DomUOptions { name: "", mem_bytes: DEFAULT_DOMU_MEM, weight: DEFAULT_WEIGHT, cap: 0 };
    for word in options.split_whitespace() {
        let Some((key, value)) = word.split_once('=') else { return Err(ModuleError::NotAnOption(word)) };
        let bad = |expected| ModuleError::BadValue { key, value, expected };
        match key {
            "name" => {
                let ok = !value.is_empty()
                    && value.len() <= MAX_NAME
                    && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !ok {
                    return Err(bad("1 to 32 letters, digits, '-' or '_'"));
                }
                o.name = value;
            }
            "mem" => match parse_size(value) {
                Some(bytes) if bytes >= 1 << 20 => o.mem_bytes = bytes,
                _ => return Err(bad("a size of at least 1M, like 32M")),
            },
            "weight" => match value.parse::<u16>() {
                Ok(w) if w > 0 => o.weight = w,
                _ => return Err(bad("a number from 1 to 65535")),
            },
            "cap" => match value.parse::<u16>() {
                Ok(c) if c <= 100 => o.cap = c,
                _ => return Err(bad("a percentage from 0 to 100")),
            },
            _ => return Err(ModuleError::UnknownOption(key)),
        }
    }
    Ok(ModuleSpec { path, cmdline, domu: Some(o) })
}

/// `s` without its first word if that word is `word`.
fn strip_word<'a>(s: &'a str, word: &str) -> Option<&'a str> {
    let rest = s.strip_prefix(word)?;
    (rest.is_empty() || rest.starts_with(char::is_whitespace)).then_some(rest)
}

/// Splits at the first word that is exactly `--`.
fn find_separator(s: &str) -> Option<(&str, &str)> {
    s.split_whitespace().find(|w| *w == "--").map(|w| {
        // `split_whitespace` yields subslices of `s`: this is its offset.
        let start = w.as_ptr() as usize - s.as_ptr() as usize;
        (&s[..start], &s[start + w.len()..])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_module_is_dom0_with_the_rest_as_its_command_line() {
        let m = parse("guest.elf selftest loglvl=x").unwrap();
        assert_eq!((m.path, m.cmdline, m.domu), ("guest.elf", "selftest loglvl=x", None));
        let m = parse("guest.elf").unwrap();
        assert_eq!((m.path, m.cmdline), ("guest.elf", ""));
    }

    #[test]
    fn domu_options_and_command_line() {
        let m = parse("/b/guest.elf --domu name=pong mem=16M weight=512 cap=50 -- pong peer=1 count=10").unwrap();
        assert_eq!(m.path, "/b/guest.elf");
        assert_eq!(m.cmdline, "pong peer=1 count=10");
        assert_eq!(m.domu, Some(DomUOptions { name: "pong", mem_bytes: 16 << 20, weight: 512, cap: 50 }));
    }

    #[test]
    fn domu_defaults() {
        let m = parse("g.elf --domu").unwrap();
        assert_eq!(m.domu, Some(DomUOptions { name: "", mem_bytes: DEFAULT_DOMU_MEM, weight: 256, cap: 0 }));
        assert_eq!(m.cmdline, "");
        assert_eq!(parse("g.elf --domu -- spin").unwrap().cmdline, "spin");
        // `--` inside the guest's line is the guest's.
        assert_eq!(parse("g.elf --domu -- a -- b").unwrap().cmdline, "a -- b");
    }

    #[test]
    fn the_mark_must_be_a_whole_word() {
        assert_eq!(parse("g.elf --domuX").unwrap().domu, None);
        assert_eq!(parse("g.elf selftest --domu").unwrap().domu, None, "only right after the path");
    }

    #[test]
    fn bad_options_are_refused_with_what_was_wrong() {
        let err = |s| parse(s).unwrap_err().to_string();
        assert_eq!(
            err("g --domu spin"),
            "'spin' is not a domU option (key=value); put the guest's command line after '--'"
        );
        assert_eq!(err("g --domu vcpus=2"), "unknown domU option 'vcpus=' (known: name, mem, weight, cap)");
        assert_eq!(err("g --domu mem=12"), "bad value '12' for mem= (expected a size of at least 1M, like 32M)");
        assert_eq!(err("g --domu weight=0"), "bad value '0' for weight= (expected a number from 1 to 65535)");
        assert_eq!(err("g --domu weight=70000"), "bad value '70000' for weight= (expected a number from 1 to 65535)");
        assert_eq!(err("g --domu cap=101"), "bad value '101' for cap= (expected a percentage from 0 to 100)");
        assert!(err("g --domu name=a/b").starts_with("bad value 'a/b' for name="));
        assert!(parse(&format!("g --domu name={}", "x".repeat(33))).is_err());
    }
}
