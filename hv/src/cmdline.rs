//! The hypervisor command line: `loglvl=info debug_fault=pf ...`.
//!
//! Options are whitespace-separated `name` or `name=value` words. The first
//! word is dropped when it looks like the image path that multiboot loaders
//! (QEMU, GRUB) put in front. Unknown options and bad values are collected
//! as [`Warning`]s for the caller to log once logging is up: nothing is
//! ignored silently.

use crate::fixed::FixedVec;

/// Log verbosity, as `loglvl=` names it (Xen's names plus Rust's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Nothing but the banner and fatal reports.
    None,
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warning,
    /// The default: boot progress and summaries.
    Info,
    /// Details useful when debugging the hypervisor.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// Parses a `loglvl=` value.
    pub fn parse(value: &str) -> Option<LogLevel> {
        Some(match value {
            "none" | "off" => LogLevel::None,
            "error" | "err" => LogLevel::Error,
            "warning" | "warn" => LogLevel::Warning,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" | "all" => LogLevel::Trace,
            _ => return None,
        })
    }

    /// The matching `log` crate filter.
    pub const fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::None => log::LevelFilter::Off,
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warning => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// A deliberate fault for testing the hypervisor's own fault path
/// (`debug_fault=`). Never set in normal use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugFault {
    /// Divide by zero (`#DE`, vector 0).
    DivideError,
    /// `int3` (`#BP`, vector 3).
    Breakpoint,
    /// `ud2` (`#UD`, vector 6).
    InvalidOpcode,
    /// Load through a non-canonical address (`#GP`, vector 13).
    GeneralProtection,
    /// Read an unmapped address (`#PF`, vector 14).
    PageFault,
    /// A Rust panic.
    Panic,
    /// Unbounded recursion: the stack's guard page turns the overflow into
    /// a `#PF` that cannot be delivered, so a `#DF` (vector 8).
    StackOverflow,
}

impl DebugFault {
    /// Parses a `debug_fault=` value.
    pub fn parse(value: &str) -> Option<DebugFault> {
        Some(match value {
            "de" => DebugFault::DivideError,
            "bp" => DebugFault::Breakpoint,
            "ud" => DebugFault::InvalidOpcode,
            "gp" => DebugFault::GeneralProtection,
            "pf" => DebugFault::PageFault,
            "panic" => DebugFault::Panic,
            "stack" => DebugFault::StackOverflow,
            _ => return None,
        })
    }
}

/// Something wrong with the command line, reported once logging is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Warning<'a> {
    /// An option we do not know.
    UnknownOption(&'a str),
    /// A known option with a value we cannot use.
    BadValue {
        /// The option's name.
        option: &'a str,
        /// The value given.
        value: &'a str,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// More problems than we keep; the rest were dropped.
    TooMany,
}

impl core::fmt::Display for Warning<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Warning::UnknownOption(word) => write!(f, "unknown option '{word}' ignored"),
            Warning::BadValue { option, value, expected } => {
                write!(f, "bad value '{value}' for {option}= (expected {expected}); ignored")
            }
            Warning::TooMany => f.write_str("more command-line problems than shown"),
        }
    }
}

/// The parsed command line.
#[derive(Clone, Debug)]
pub struct CmdLine<'a> {
    /// `loglvl=`: how much to log (default [`LogLevel::Info`]).
    pub log_level: LogLevel,
    /// `debug_fault=`: fault deliberately after boot (testing only).
    pub debug_fault: Option<DebugFault>,
    /// `dom0_mem=`: dom0's memory in bytes (default [`DEFAULT_DOM0_MEM`]).
    pub dom0_mem: u64,
    /// `domu_console=ring|serial`: where the console output of domains the
    /// toolstack created goes: only to the console ring, for dom0 to serve
    /// (`ring`, the default), or also to the serial port with a `(dN)`
    /// prefix (`serial`). Boot-time domUs, which no toolstack serves,
    /// always print to the serial port.
    pub domu_console_serial: bool,
    /// Problems found while parsing.
    warnings: FixedVec<Option<Warning<'a>>, 8>,
}

/// Dom0's memory when `dom0_mem=` is not given.
pub const DEFAULT_DOM0_MEM: u64 = 64 << 20;

/// Parses a size: a decimal number with an optional `K`, `M` or `G`
/// suffix (bytes without one).
pub fn parse_size(value: &str) -> Option<u64> {
    let (digits, shift) = match value.as_bytes().last()? {
        b'k' | b'K' => (&value[..value.len() - 1], 10),
        b'm' | b'M' => (&value[..value.len() - 1], 20),
        b'g' | b'G' => (&value[..value.len() - 1], 30),
        _ => (value, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// `loglvl=` values, for messages.
const LOGLVL_VALUES: &str = "none|error|warning|info|debug|trace|all";
/// `debug_fault=` values, for messages.
const DEBUG_FAULT_VALUES: &str = "de|bp|ud|gp|pf|panic|stack";

impl<'a> CmdLine<'a> {
    /// Parses a multiboot command line. Never fails: problems become
    /// warnings and the defaults stay.
    pub fn parse(line: &'a str) -> CmdLine<'a> {
        let mut cmd = CmdLine {
            log_level: LogLevel::Info,
            debug_fault: None,
            dom0_mem: DEFAULT_DOM0_MEM,
            domu_console_serial: false,
            warnings: FixedVec::new(),
        };
        let mut words = line.split_ascii_whitespace().peekable();
        let looks_like_path = |w: &&str| !w.contains('=') && (w.contains('/') || w.ends_with(".elf"));
        if words.peek().is_some_and(looks_like_path) {
            words.next();
        }
        for word in words {
            let (option, value) = match word.split_once('=') {
                Some((o, v)) => (o, Some(v)),
                None => (word, None),
            };
            match (option, value) {
                ("loglvl", Some(v)) => match LogLevel::parse(v) {
                    Some(level) => cmd.log_level = level,
                    None => cmd.warn(Warning::BadValue { option, value: v, expected: LOGLVL_VALUES }),
                },
                ("debug_fault", Some(v)) => match DebugFault::parse(v) {
                    Some(fault) => cmd.debug_fault = Some(fault),
                    None => cmd.warn(Warning::BadValue { option, value: v, expected: DEBUG_FAULT_VALUES }),
                },
                ("dom0_mem", Some(v)) => match parse_size(v) {
                    Some(bytes) if bytes >= 1 << 20 => cmd.dom0_mem = bytes,
                    _ => cmd.warn(Warning::BadValue { option, value: v, expected: "a size of at least 1M, like 64M" }),
                },
                ("domu_console", Some("ring")) => cmd.domu_console_serial = false,
                ("domu_console", Some("serial")) => cmd.domu_console_serial = true,
                ("domu_console", Some(v)) => cmd.warn(Warning::BadValue { option, value: v, expected: "ring|serial" }),
                _ => cmd.warn(Warning::UnknownOption(word)),
            }
        }
        cmd
    }

    fn warn(&mut self, warning: Warning<'a>) {
        if self.warnings.push(Some(warning)).is_err() {
            if let Some(last) = self.warnings.as_mut_slice().last_mut() {
                *last = Some(Warning::TooMany);
            }
        }
    }

    /// The problems found, in order.
    pub fn warnings(&self) -> impl Iterator<Item = Warning<'a>> + '_ {
        self.warnings.as_slice().iter().flatten().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(line: &str) -> Vec<String> {
        CmdLine::parse(line).warnings().map(|w| w.to_string()).collect()
    }

    #[test]
    fn defaults() {
        let c = CmdLine::parse("");
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.debug_fault, None);
        assert_eq!(c.warnings().count(), 0);
    }

    #[test]
    fn image_path_is_skipped() {
        let c = CmdLine::parse("target/images/hv.elf loglvl=debug");
        assert_eq!(c.log_level, LogLevel::Debug);
        assert!(warnings("/boot/hv.elf").is_empty());
        assert!(warnings("hv.elf").is_empty());
    }

    #[test]
    fn options_are_parsed() {
        let c = CmdLine::parse("hv.elf  loglvl=all\tdebug_fault=pf");
        assert_eq!(c.log_level, LogLevel::Trace);
        assert_eq!(c.debug_fault, Some(DebugFault::PageFault));
        assert_eq!(CmdLine::parse("loglvl=warn").log_level, LogLevel::Warning);
        assert_eq!(CmdLine::parse("loglvl=none").log_level, LogLevel::None);
    }

    #[test]
    fn later_options_win() {
        assert_eq!(CmdLine::parse("loglvl=error loglvl=debug").log_level, LogLevel::Debug);
    }

    #[test]
    fn unknown_options_and_bad_values_warn() {
        assert_eq!(
            warnings("hv.elf frobnicate=1 quiet loglvl=loud"),
            [
                "unknown option 'frobnicate=1' ignored",
                "unknown option 'quiet' ignored",
                "bad value 'loud' for loglvl= (expected none|error|warning|info|debug|trace|all); ignored",
            ]
        );
        // A bad value leaves the default in place.
        assert_eq!(CmdLine::parse("loglvl=loud").log_level, LogLevel::Info);
        // `loglvl` without a value is not the option.
        assert_eq!(warnings("loglvl"), ["unknown option 'loglvl' ignored"]);
    }

    #[test]
    fn too_many_warnings_are_summarised() {
        let line = "a b c d e f g h i j k";
        let w = warnings(line);
        assert_eq!(w.len(), 8);
        assert_eq!(w[7], "more command-line problems than shown");
    }

    #[test]
    fn domu_console() {
        assert!(!CmdLine::parse("").domu_console_serial);
        assert!(CmdLine::parse("domu_console=serial").domu_console_serial);
        assert!(!CmdLine::parse("domu_console=serial domu_console=ring").domu_console_serial);
        assert_eq!(warnings("domu_console=tty"), ["bad value 'tty' for domu_console= (expected ring|serial); ignored"]);
    }

    #[test]
    fn dom0_mem_sizes() {
        assert_eq!(CmdLine::parse("").dom0_mem, DEFAULT_DOM0_MEM);
        assert_eq!(CmdLine::parse("dom0_mem=128M").dom0_mem, 128 << 20);
        assert_eq!(CmdLine::parse("dom0_mem=1G").dom0_mem, 1 << 30);
        assert_eq!(CmdLine::parse("dom0_mem=65536k").dom0_mem, 64 << 20);
        assert_eq!(parse_size("4096"), Some(4096));
        for bad in ["", "M", "12X", "-1M", "99999999999999999999G", "1.5G"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(
            warnings("dom0_mem=12"),
            ["bad value '12' for dom0_mem= (expected a size of at least 1M, like 64M); ignored"]
        );
    }

    #[test]
    fn level_filters_are_ordered() {
        assert!(LogLevel::Debug.filter() > LogLevel::Info.filter());
        assert_eq!(LogLevel::None.filter(), log::LevelFilter::Off);
    }
}
