//! The kernel command line (`start_info.cmd_line`): which workload to run,
//! and its parameters.
//!
//! Words are separated by whitespace. The first plain word (no `=`) names
//! the workload; `key=value` words before it, and every word after it of a
//! workload that takes no parameters, are left to others (Xen may append
//! options such as `noapic` or `acpi=off` to dom0's line). A first word
//! that looks like an image path (contains `/` or ends in `.elf`) is
//! skipped, for loaders that pass the module's name along.
//!
//! A workload that takes parameters ([`Workload::params`]) reads the
//! `key=value` words after its name: each key must be one of its own, given
//! once, with a decimal (or `0x` hexadecimal) value in range; one it
//! requires must be there; plain words are ignored. Anything else is a
//! [`CmdlineError`], which says what is wrong in one line.
//!
//! A `--` word after the workload's name ends its parameters: the rest of
//! the line is not parsed, but left to the workload as it is
//! ([`passed_on`]; `build` gives it to the domain it builds, `shell` runs
//! it as commands).

use crate::text::Escaped;
use core::fmt;

/// What the kernel does after it has set itself up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Check the PV ABI and report `TEST` lines (the default).
    Selftest,
    /// Measure hypercall and trap costs and report `BENCH` lines.
    Bench,
    /// Shut down asking for a reboot.
    Reboot,
    /// Shut down reporting a crash.
    Crash,
    /// Clear the trap table, then fault: the hypervisor must crash us.
    FaultNoHandler,
    /// Fault with the stack pointer on an unmapped page: the hypervisor
    /// cannot write the bounce frame and must crash us.
    FaultBadStack,
    /// Check that privileged instructions, port I/O included, raise `#GP`.
    Privileged,
    /// Attack the hypervisor's memory model and report `ATTACK` lines.
    Hostile,
    /// Find the port `peer` offered, then time `count` event round trips.
    Ping,
    /// Offer `peer` a port, then answer `count` events.
    Pong,
    /// Count iterations of a CPU-bound loop until system time `until_ms`.
    Spin,
    /// Sleep `ms` milliseconds on `VIRQ_TIMER`, `rounds` times, reporting
    /// how late each wakeup was.
    Sleep,
    /// Block forever with nothing bound (nothing should ever wake it).
    Block,
    /// Yield forever.
    YieldSpin,
    /// Time `count` `SCHEDOP_yield` calls.
    BenchYield,
    /// Use the control hypercalls (`domctl`, `sysctl`): `count`
    /// create/destroy cycles and their errors.
    Control,
    /// Build a domain of `memory_mib` MiB from the kernel image in the
    /// ramdisk with the toolstack's domain builder, run it until it shuts
    /// down, destroy it; `count` times.
    Build,
    /// Build `count` domains of `memory_mib` MiB from the kernel image in
    /// the ramdisk and keep them all alive at once, timing each creation
    /// and measuring the hypervisor's memory per domain; then destroy them
    /// all and check that every frame came back.
    Many,
    /// Run the control domain's interactive shell on the console; the text
    /// after `--` holds commands, separated by `;`, to run first.
    Shell,
    /// Read lines from the PV console ring and print each back as
    /// `echo: <line>`.
    Echo,
    /// Talk to xenstore over the domain's store ring: read its name and
    /// id, write a node, try a node that is dom0's.
    Xenstore,
    /// Use the PV block device `xvda`: write a pattern from `seed` over the
    /// whole disk with many requests in flight, read it back, check that
    /// requests beyond the disk fail. The pattern stays on the disk.
    Blk,
    /// Read the whole disk and check it holds `seed`'s pattern (what an
    /// earlier `blk seed=<seed>` left).
    BlkVerify,
    /// Time the block device: sequential 4 KiB and 64 KiB reads and
    /// writes, and a ring round trip.
    BlkBench,
    /// A block frontend that misbehaves: bad grant references, bad
    /// segments, garbage requests, then a producer index far ahead.
    BlkHostile,
}

/// One parameter a workload takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    /// The key (`count` in `count=10`).
    pub key: &'static str,
    /// The value when the key is absent; `None`: the key is required.
    pub default: Option<u64>,
    /// The largest value allowed.
    pub max: u64,
}

/// A domain id a peer may have: below `DOMID_FIRST_RESERVED`.
const MAX_PEER: u64 = 0x7fef;

const PEER_COUNT: &[Param] =
    &[Param { key: "peer", default: None, max: MAX_PEER }, Param { key: "count", default: None, max: u32::MAX as u64 }];
const SPIN: &[Param] = &[Param { key: "until_ms", default: None, max: u64::MAX / 1_000_000 }];
const SLEEP: &[Param] = &[
    Param { key: "ms", default: Some(10), max: 3_600_000 },
    Param { key: "rounds", default: Some(20), max: 1_000_000 },
];
const BENCH_YIELD: &[Param] = &[Param { key: "count", default: Some(10_000), max: u32::MAX as u64 }];
const CONTROL: &[Param] = &[Param { key: "count", default: Some(1_000), max: u32::MAX as u64 }];
const BUILD: &[Param] =
    &[Param { key: "memory_mib", default: Some(16), max: 1024 }, Param { key: "count", default: Some(1), max: 1000 }];
const BLK: &[Param] = &[Param { key: "seed", default: Some(1), max: u32::MAX as u64 }];
const MANY: &[Param] =
    &[Param { key: "memory_mib", default: Some(4), max: 1024 }, Param { key: "count", default: Some(1000), max: 4096 }];

/// Most parameters a workload takes.
pub const MAX_PARAMS: usize = 2;

impl Workload {
    /// Every workload, for messages.
    pub const ALL: &'static [Workload] = &[
        Workload::Selftest,
        Workload::Bench,
        Workload::Reboot,
        Workload::Crash,
        Workload::FaultNoHandler,
        Workload::FaultBadStack,
        Workload::Privileged,
        Workload::Hostile,
        Workload::Ping,
        Workload::Pong,
        Workload::Spin,
        Workload::Sleep,
        Workload::Block,
        Workload::YieldSpin,
        Workload::BenchYield,
        Workload::Control,
        Workload::Build,
        Workload::Many,
        Workload::Shell,
        Workload::Echo,
        Workload::Xenstore,
        Workload::Blk,
        Workload::BlkVerify,
        Workload::BlkBench,
        Workload::BlkHostile,
    ];

    /// The workload's command-line name.
    pub const fn name(self) -> &'static str {
        match self {
            Workload::Selftest => "selftest",
            Workload::Bench => "bench",
            Workload::Reboot => "reboot",
            Workload::Crash => "crash",
            Workload::FaultNoHandler => "fault-no-handler",
            Workload::FaultBadStack => "fault-bad-stack",
            Workload::Privileged => "privileged",
            Workload::Hostile => "hostile",
            Workload::Ping => "ping",
            Workload::Pong => "pong",
            Workload::Spin => "spin",
            Workload::Sleep => "sleep",
            Workload::Block => "block",
            Workload::YieldSpin => "yield-spin",
            Workload::BenchYield => "bench-yield",
            Workload::Control => "control",
            Workload::Build => "build",
            Workload::Many => "many",
            Workload::Shell => "shell",
            Workload::Echo => "echo",
            Workload::Xenstore => "xenstore",
            Workload::Blk => "blk",
            Workload::BlkVerify => "blk-verify",
            Workload::BlkBench => "blk-bench",
            Workload::BlkHostile => "blk-hostile",
        }
    }

    /// The parameters the workload takes (none for most).
    pub const fn params(self) -> &'static [Param] {
        match self {
            Workload::Ping | Workload::Pong => PEER_COUNT,
            Workload::Spin => SPIN,
            Workload::Sleep => SLEEP,
            Workload::BenchYield => BENCH_YIELD,
            Workload::Control => CONTROL,
            Workload::Build => BUILD,
            Workload::Many => MANY,
            Workload::Blk | Workload::BlkVerify => BLK,
            _ => &[],
        }
    }
}

/// The workloads' names, for messages.
pub const KNOWN: &str = "selftest, bench, reboot, crash, fault-no-handler, fault-bad-stack, privileged, hostile, \
                         ping, pong, spin, sleep, block, yield-spin, bench-yield, control, build, many, shell, echo, xenstore, blk, blk-verify, blk-bench, \
                         blk-hostile";

const _: () = assert!(MAX_PARAMS >= PEER_COUNT.len() && MAX_PARAMS >= SLEEP.len());

/// A workload and the values of its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// The workload.
    pub workload: Workload,
    /// Values in the order of [`Workload::params`].
    values: [u64; MAX_PARAMS],
}

impl Invocation {
    /// The value of parameter `key`. Panics if the workload has no such
    /// parameter (a bug in the caller, not in the command line).
    pub fn get(&self, key: &str) -> u64 {
        match self.workload.params().iter().position(|p| p.key == key) {
            Some(i) => self.values[i],
            None => panic!("workload {} has no parameter {key}", self.workload.name()),
        }
    }
}

/// What is wrong with a command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdlineError<'a> {
    /// The first plain word names no workload.
    UnknownWorkload(&'a [u8]),
    /// A key the workload does not take.
    UnknownParam(Workload, &'a [u8]),
    /// A key given twice.
    Duplicate(Workload, &'static str),
    /// A value that is not a number, or out of range.
    BadValue(Workload, &'static str, &'a [u8]),
    /// A required key is missing.
    Missing(Workload, &'static str),
}

/// Lists a workload's parameter keys (`peer, count`).
struct Keys(Workload);

impl fmt::Display for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.params().iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            match p.default {
                Some(d) => write!(f, "{sep}{}=<0..={}, default {d}>", p.key, p.max)?,
                None => write!(f, "{sep}{}=<0..={}>", p.key, p.max)?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for CmdlineError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CmdlineError::UnknownWorkload(word) => {
                write!(f, "unknown workload '{}' on the command line (known: {KNOWN})", Escaped(word))
            }
            CmdlineError::UnknownParam(w, key) => {
                write!(f, "{}: unknown parameter '{}' (takes {})", w.name(), Escaped(key), Keys(w))
            }
            CmdlineError::Duplicate(w, key) => write!(f, "{}: parameter '{key}' given twice", w.name()),
            CmdlineError::BadValue(w, key, value) => {
                write!(f, "{}: bad value '{}' for {key} (takes {})", w.name(), Escaped(value), Keys(w))
            }
            CmdlineError::Missing(w, key) => write!(f, "{}: missing {key}=<value> (takes {})", w.name(), Keys(w)),
        }
    }
}

/// The bytes of a NUL-terminated command line up to the NUL.
pub fn until_nul(raw: &[u8]) -> &[u8] {
    raw.iter().position(|&b| b == 0).map_or(raw, |n| &raw[..n])
}

/// An unsigned number in decimal or `0x` hexadecimal, at most `max`.
fn number(text: &[u8], max: u64) -> Option<u64> {
    let (digits, radix) = match text.strip_prefix(b"0x") {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        let d = (c as char).to_digit(radix)?;
        v = v.checked_mul(u64::from(radix))?.checked_add(u64::from(d))?;
    }
    (v <= max).then_some(v)
}

/// The workload a command line asks for, with its parameters.
pub fn parse(cmdline: &[u8]) -> Result<Invocation, CmdlineError<'_>> {
    let mut words = until_nul(cmdline).split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()).peekable();
    if words.peek().is_some_and(|w| !w.contains(&b'=') && (w.contains(&b'/') || w.ends_with(b".elf"))) {
        words.next();
    }
    let workload = match words.find(|w| !w.contains(&b'=')) {
        None => Workload::Selftest,
        Some(word) => Workload::ALL
            .iter()
            .copied()
            .find(|w| w.name().as_bytes() == word)
            .ok_or(CmdlineError::UnknownWorkload(word))?,
    };
    let params = workload.params();
    let mut given: [Option<u64>; MAX_PARAMS] = [None; MAX_PARAMS];
    if !params.is_empty() {
        for word in words.take_while(|w| *w != b"--") {
            let Some(eq) = word.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (key, value) = (&word[..eq], &word[eq + 1..]);
            let i =
                params.iter().position(|p| p.key.as_bytes() == key).ok_or(CmdlineError::UnknownParam(workload, key))?;
            if given[i].is_some() {
                return Err(CmdlineError::Duplicate(workload, params[i].key));
            }
            given[i] =
                Some(number(value, params[i].max).ok_or(CmdlineError::BadValue(workload, params[i].key, value))?);
        }
    }
    let mut values = [0; MAX_PARAMS];
    for (i, p) in params.iter().enumerate() {
        values[i] = given[i].or(p.default).ok_or(CmdlineError::Missing(workload, p.key))?;
    }
    Ok(Invocation { workload, values })
}

/// The text after the first `--` word, without the whitespace around it,
/// if the line has one: what the workload passes on unparsed.
pub fn passed_on(cmdline: &[u8]) -> Option<&[u8]> {
    let line = until_nul(cmdline);
    let mut start = 0;
    while start < line.len() {
        if line[start].is_ascii_whitespace() {
            start += 1;
            continue;
        }
        let end = line[start..].iter().position(u8::is_ascii_whitespace).map_or(line.len(), |n| start + n);
        if &line[start..end] == b"--" {
            return Some(line[end..].trim_ascii());
        }
        start = end;
    }
    None
}

/// The workload a command line asks for; `Err(word)` for an unknown one.
/// (Parameters are not checked: see [`parse`].)
pub fn workload(cmdline: &[u8]) -> Result<Workload, &[u8]> {
    match parse(cmdline) {
        Ok(inv) => Ok(inv.workload),
        Err(CmdlineError::UnknownWorkload(word)) => Err(word),
        Err(
            CmdlineError::UnknownParam(w, _)
            | CmdlineError::Duplicate(w, _)
            | CmdlineError::BadValue(w, _, _)
            | CmdlineError::Missing(w, _),
        ) => Ok(w),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_lists_every_workload() {
        let names: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
        assert_eq!(KNOWN, names.join(", "));
        assert!(Workload::ALL.iter().all(|w| w.params().len() <= MAX_PARAMS));
    }

    #[test]
    fn default_is_selftest() {
        assert_eq!(workload(b""), Ok(Workload::Selftest));
        assert_eq!(workload(b"\0bench"), Ok(Workload::Selftest));
        assert_eq!(workload(b"  loglvl=all  "), Ok(Workload::Selftest));
    }

    #[test]
    fn first_plain_word_names_the_workload() {
        assert_eq!(workload(b"bench"), Ok(Workload::Bench));
        assert_eq!(workload(b"x=1 bench noapic acpi=off\0junk"), Ok(Workload::Bench));
        assert_eq!(workload(b"selftest bench"), Ok(Workload::Selftest));
        assert_eq!(workload(b"benchmark"), Err(&b"benchmark"[..]));
        assert_eq!(workload(b"hostile"), Ok(Workload::Hostile));
        assert_eq!(workload(b"yield-spin"), Ok(Workload::YieldSpin));
    }

    #[test]
    fn an_image_path_first_is_skipped() {
        assert_eq!(workload(b"/boot/guest-kernel.elf bench"), Ok(Workload::Bench));
        assert_eq!(workload(b"guest-kernel.elf"), Ok(Workload::Selftest));
        let inv = parse(b"/images/guest-kernel.elf ping peer=2 count=100").unwrap();
        assert_eq!((inv.workload, inv.get("peer"), inv.get("count")), (Workload::Ping, 2, 100));
    }

    #[test]
    fn parameters_follow_the_name() {
        let inv = parse(b"pong count=0x10 peer=1").unwrap();
        assert_eq!((inv.workload, inv.get("peer"), inv.get("count")), (Workload::Pong, 1, 16));
        let inv = parse(b"spin until_ms=3000").unwrap();
        assert_eq!(inv.get("until_ms"), 3000);
        let inv = parse(b"sleep").unwrap();
        assert_eq!((inv.get("ms"), inv.get("rounds")), (10, 20));
        let inv = parse(b"sleep ms=5 rounds=3 noapic").unwrap();
        assert_eq!((inv.get("ms"), inv.get("rounds")), (5, 3));
        assert_eq!(parse(b"bench-yield").unwrap().get("count"), 10_000);
        // Words before the name are not the workload's.
        assert_eq!(parse(b"count=5 bench-yield count=7").unwrap().get("count"), 7);
        // A workload without parameters ignores what follows.
        assert_eq!(parse(b"block ms=5").unwrap().workload, Workload::Block);
    }

    #[test]
    fn dashes_end_the_parameters() {
        let inv = parse(b"build count=3 -- sleep ms=5 count=9").unwrap();
        assert_eq!((inv.workload, inv.get("memory_mib"), inv.get("count")), (Workload::Build, 16, 3));
        assert_eq!(passed_on(b"build count=3 -- sleep ms=5 count=9\0junk"), Some(&b"sleep ms=5 count=9"[..]));
        assert_eq!(passed_on(b"build --  reboot  "), Some(&b"reboot"[..]));
        assert_eq!(passed_on(b"build --"), Some(&b""[..]));
        assert_eq!(passed_on(b"build memory_mib=8"), None);
        assert_eq!(passed_on(b"build --x -- a--b"), Some(&b"a--b"[..]));
        assert_eq!(workload(b"shell -- list;exit"), Ok(Workload::Shell));
        assert_eq!(
            passed_on(b"shell -- create name=a cmdline=\"x y\";exit"),
            Some(&b"create name=a cmdline=\"x y\";exit"[..])
        );
        // `--` before a workload's name is not a workload.
        assert_eq!(workload(b"-- build"), Err(&b"--"[..]));
    }

    #[test]
    #[should_panic(expected = "no parameter")]
    fn asking_for_a_parameter_the_workload_lacks_is_a_bug() {
        parse(b"block").unwrap().get("count");
    }

    #[test]
    fn bad_parameters_are_one_line_errors() {
        let e = |line: &'static [u8]| parse(line).unwrap_err().to_string();
        assert_eq!(e(b"ping count=5"), "ping: missing peer=<value> (takes peer=<0..=32751>, count=<0..=4294967295>)");
        assert_eq!(
            e(b"ping peer=1 cuont=5"),
            "ping: unknown parameter 'cuont' (takes peer=<0..=32751>, count=<0..=4294967295>)"
        );
        assert_eq!(e(b"pong peer=1 peer=2 count=1"), "pong: parameter 'peer' given twice");
        assert_eq!(
            e(b"sleep ms=ten"),
            "sleep: bad value 'ten' for ms (takes ms=<0..=3600000, default 10>, rounds=<0..=1000000, default 20>)"
        );
        assert!(e(b"ping peer=32752 count=1").starts_with("ping: bad value '32752' for peer"));
        assert!(e(b"spin until_ms=").starts_with("spin: bad value '' for until_ms"));
        assert!(e(b"spin until_ms=99999999999999999999").starts_with("spin: bad value"));
        assert!(e(b"spin until_ms=0x").starts_with("spin: bad value '0x'"));
        assert_eq!(
            e(b"frob\x01nicate"),
            format!("unknown workload 'frob\\x01nicate' on the command line (known: {KNOWN})")
        );
        assert!(e(b"frobnicate").starts_with("unknown workload 'frobnicate' on the command line (known: selftest,"));
        // `workload` still names the workload of a line with bad parameters.
        assert_eq!(workload(b"ping count=5"), Ok(Workload::Ping));
    }
}
