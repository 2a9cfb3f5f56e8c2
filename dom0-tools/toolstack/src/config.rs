//! Domain configuration: a subset of Xen's `xl.cfg`, parsed, validated and rendered.
//!
//! A configuration is text with one `key = value` per line:
//!
//! ```text
//! # comment
//! name = "web1"
//! kernel = "guest-kernel.elf"
//! memory = 64            # MiB
//! vcpus = 1
//! cmdline = "selftest"   # alias: extra
//! weight = 256
//! cap = 0
//! on_poweroff = "destroy"
//! on_reboot = "restart"
//! on_crash = "destroy"
//! disk = "disk0.img"
//! ```
//!
//! A value is a double-quoted string (escapes: `\"` and `\\` only; no
//! control characters) or a decimal integer (optional `-`, no leading zeros,
//! since `xl` would read them as octal). `#` starts a comment outside
//! strings. `name`, `kernel` and `memory` are required; every other key has
//! the default documented on its [`DomainConfig`] field.
//!
//! The file ([`DomainConfig::parse`]) and command-line overrides
//! ([`DomainConfig::apply_override`]) share one lexer (`lex_line`), one
//! per-key check (`assign`) and one cross-key check (`check_cap`), so the
//! two paths cannot disagree about what is valid.

use alloc::string::{String, ToString};
use core::fmt::{self, Write as _};
use core::str::FromStr;

/// Longest domain name, in characters.
pub const MAX_NAME_LEN: usize = 64;
/// Largest `memory`, in MiB.
pub const MAX_MEMORY_MIB: u32 = 65536;
/// Most vCPUs a PV domain may have: `XEN_LEGACY_MAX_VCPUS`, the number of
/// `vcpu_info` slots in the shared info page.
pub const MAX_VCPUS: u32 = 32;
/// Longest `cmdline`, in bytes: `start_info.cmd_line` is 1024 bytes
/// including its terminating NUL.
pub const MAX_CMDLINE_BYTES: usize = 1023;
/// Scheduler weight used when the configuration does not set one.
pub const DEFAULT_WEIGHT: u16 = 256;
/// The `cap` limit per vCPU: 100 percent of one physical CPU.
pub const CAP_PERCENT_PER_VCPU: u32 = 100;

/// What to do with a domain when it shuts down for a given reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Tear the domain down and free its resources.
    Destroy,
    /// Destroy the domain and build it again from the same configuration.
    Restart,
    /// Leave the shut-down domain in place for inspection.
    Preserve,
}

impl Action {
    /// The spelling used in configuration files: `destroy`, `restart` or `preserve`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Destroy => "destroy",
            Action::Restart => "restart",
            Action::Preserve => "preserve",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = ParseActionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "destroy" => Ok(Action::Destroy),
            "restart" => Ok(Action::Restart),
            "preserve" => Ok(Action::Preserve),
            _ => Err(ParseActionError),
        }
    }
}

/// The error from parsing an [`Action`]: the text was not one of the three spellings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseActionError;

impl fmt::Display for ParseActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected \"destroy\", \"restart\" or \"preserve\"")
    }
}

impl core::error::Error for ParseActionError {}

/// A validated domain configuration.
///
/// Values returned by [`DomainConfig::parse`] and kept by
/// [`DomainConfig::apply_override`] always satisfy the limits documented
/// on each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    /// `name`, required: 1 to [`MAX_NAME_LEN`] characters of `A-Z a-z 0-9 _ . -`.
    pub name: String,
    /// `kernel`, required: path of the guest kernel image, not empty.
    pub kernel: String,
    /// `memory`, required: guest memory in MiB, 1 to [`MAX_MEMORY_MIB`].
    pub memory_mib: u32,
    /// `vcpus`: number of virtual CPUs, 1 to [`MAX_VCPUS`]; default 1.
    pub vcpus: u32,
    /// `cmdline` (alias `extra`): guest command line, at most
    /// [`MAX_CMDLINE_BYTES`] bytes, no control characters; default empty.
    pub cmdline: String,
    /// `weight`: credit scheduler weight, 1 to 65535; default [`DEFAULT_WEIGHT`].
    pub weight: u16,
    /// `cap`: CPU cap in percent of one physical CPU, 0 (no cap) to
    /// [`CAP_PERCENT_PER_VCPU`] times `vcpus`; default 0.
    pub cap: u16,
    /// `on_poweroff`: action when the guest powers off; default destroy.
    pub on_poweroff: Action,
    /// `on_reboot`: action when the guest reboots; default restart.
    pub on_reboot: Action,
    /// `on_crash`: action when the guest crashes; default destroy.
    pub on_crash: Action,
    /// `disk`: path of the guest's disk image, not empty; default none.
    pub disk: Option<String>,
}

impl DomainConfig {
    /// Parses configuration text, checking every rule in the [module docs](self).
    ///
    /// Returns the first error in line order; a missing required key is
    /// reported after every line has been read.
    pub fn parse(text: &str) -> Result<DomainConfig, ConfigError> {
        // The required fields start with placeholders; `seen` proves each
        // was assigned before the value is returned.
        let mut config = DomainConfig {
            name: String::new(),
            kernel: String::new(),
            memory_mib: 0,
            vcpus: 1,
            cmdline: String::new(),
            weight: DEFAULT_WEIGHT,
            cap: 0,
            on_poweroff: Action::Destroy,
            on_reboot: Action::Restart,
            on_crash: Action::Destroy,
            disk: None,
        };
        // For each field: the line that set it and the key spelling used.
        let mut seen: [Option<(usize, &'static str)>; Field::COUNT] = [None; Field::COUNT];

        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let at = |kind| ConfigError { location: Location::Line(number), kind };
            let Some(assignment) = lex_line(line).map_err(at)? else {
                continue;
            };
            let (field, key) = lookup(assignment.key)
                .ok_or_else(|| at(ConfigErrorKind::UnknownKey { key: assignment.key.to_string() }))?;
            if let Some((first_line, first_key)) = seen[field as usize] {
                return Err(at(ConfigErrorKind::DuplicateKey { key, first_key, first_line }));
            }
            seen[field as usize] = Some((number, key));
            assign(&mut config, key, field, assignment.value).map_err(at)?;
        }

        for field in [Field::Name, Field::Kernel, Field::Memory] {
            if seen[field as usize].is_none() {
                return Err(ConfigError {
                    location: Location::Config,
                    kind: ConfigErrorKind::MissingKey { key: field.key() },
                });
            }
        }
        check_cap(&config).map_err(|kind| ConfigError {
            // `cap` defaults to 0, which never fails, so a failure has a line.
            location: seen[Field::Cap as usize].map_or(Location::Config, |(line, _)| Location::Line(line)),
            kind,
        })?;
        Ok(config)
    }

    /// Applies one `key=value` override, as given on a command line.
    ///
    /// The override has the syntax of one configuration line (so strings are
    /// quoted: `name="web2"`), replaces the key's current value instead of
    /// counting as a duplicate, and passes the same checks as a file. On
    /// error `self` is unchanged.
    pub fn apply_override(&mut self, text: &str) -> Result<(), ConfigError> {
        let at = |kind| ConfigError { location: Location::Override(text.to_string()), kind };
        let assignment = lex_line(text).map_err(at)?.ok_or_else(|| at(ConfigErrorKind::EmptyOverride))?;
        let (field, key) = lookup(assignment.key)
            .ok_or_else(|| at(ConfigErrorKind::UnknownKey { key: assignment.key.to_string() }))?;
        let mut next = self.clone();
        assign(&mut next, key, field, assignment.value).map_err(at)?;
        check_cap(&next).map_err(at)?;
        *self = next;
        Ok(())
    }

    /// Renders the configuration as text that [`DomainConfig::parse`] turns
    /// back into an equal value.
    ///
    /// Every key is written, defaults included, in a fixed order; `disk`
    /// only when set. A value built by hand that breaks a field's limits
    /// renders as text that `parse` rejects.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        push_string(&mut out, "name", &self.name);
        push_string(&mut out, "kernel", &self.kernel);
        push_integer(&mut out, "memory", self.memory_mib);
        push_integer(&mut out, "vcpus", self.vcpus);
        push_string(&mut out, "cmdline", &self.cmdline);
        push_integer(&mut out, "weight", self.weight.into());
        push_integer(&mut out, "cap", self.cap.into());
        push_string(&mut out, "on_poweroff", self.on_poweroff.as_str());
        push_string(&mut out, "on_reboot", self.on_reboot.as_str());
        push_string(&mut out, "on_crash", self.on_crash.as_str());
        if let Some(disk) = &self.disk {
            push_string(&mut out, "disk", disk);
        }
        out
    }
}

/// Appends `key = value` with `value` as a decimal integer.
fn push_integer(out: &mut String, key: &str, value: u32) {
    out.push_str(key);
    out.push_str(" = ");
    out.push_str(&value.to_string());
    out.push('\n');
}

/// Appends `key = "value"`, escaping `"` and `\`.
fn push_string(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push_str(" = \"");
    for ch in value.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push_str("\"\n");
}

/// Where in the input a [`ConfigError`] was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A line of configuration text, numbered from 1.
    Line(usize),
    /// A command-line override; holds the override's text.
    Override(String),
    /// The configuration as a whole (a required key is missing).
    Config,
}

/// Why a configuration or override was rejected, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the problem is.
    pub location: Location,
    /// What the problem is.
    pub kind: ConfigErrorKind,
}

impl ConfigError {
    /// The 1-based line number, if the error is on a line of a file.
    pub fn line(&self) -> Option<usize> {
        match self.location {
            Location::Line(line) => Some(line),
            Location::Override(_) | Location::Config => None,
        }
    }
}

impl fmt::Display for ConfigError {
    /// One line: `line N: ...`, `in override '...': ...` or just the problem.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::Line(line) => write!(f, "line {line}: {}", self.kind),
            Location::Override(text) => {
                write!(f, "in override '{}': {}", Snippet(text), self.kind)
            }
            Location::Config => write!(f, "{}", self.kind),
        }
    }
}

impl core::error::Error for ConfigError {}

/// What was wrong with a configuration line or override.
///
/// `Display` gives one line without the location; text copied from the
/// input is escaped and shortened so it cannot break that line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The line does not start with a key name.
    ExpectedKey {
        /// The character found instead.
        found: char,
    },
    /// The key is not followed by `=`.
    ExpectedEquals {
        /// The key as written.
        key: String,
    },
    /// `=` is not followed by a quoted string or a decimal integer.
    ExpectedValue {
        /// The key as written.
        key: String,
    },
    /// A string has no closing `"` on its line.
    UnterminatedString,
    /// A string holds a `\` escape other than `\"` or `\\`.
    InvalidEscape {
        /// The character after the backslash.
        found: char,
    },
    /// A string holds a control character.
    ControlCharacter {
        /// The control character.
        found: char,
    },
    /// An integer other than `0` starts with `0` (`xl` would read it as octal).
    LeadingZero {
        /// The digits as written.
        digits: String,
    },
    /// An integer does not fit in 64 signed bits.
    IntegerOverflow {
        /// The integer as written.
        digits: String,
    },
    /// Something other than a comment follows the value.
    TrailingGarbage {
        /// The rest of the line.
        text: String,
    },
    /// The key is not one this configuration knows.
    UnknownKey {
        /// The key as written.
        key: String,
    },
    /// A key (or its alias) appears twice in one file.
    DuplicateKey {
        /// The key as written the second time.
        key: &'static str,
        /// The key as written the first time.
        first_key: &'static str,
        /// The line of the first time.
        first_line: usize,
    },
    /// A key that takes a string was given an integer.
    ExpectedString {
        /// The key as written.
        key: &'static str,
        /// The integer given.
        got: i64,
    },
    /// A key that takes an integer was given a string.
    ExpectedInteger {
        /// The key as written.
        key: &'static str,
        /// The string given.
        got: String,
    },
    /// An integer is outside its key's range.
    OutOfRange {
        /// The key as written.
        key: &'static str,
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
        /// The value given.
        got: i64,
    },
    /// `name` is empty or longer than [`MAX_NAME_LEN`] characters.
    NameLength {
        /// The name's length in characters.
        len: usize,
    },
    /// `name` holds a character outside `A-Z a-z 0-9 _ . -`.
    NameCharacter {
        /// The first such character.
        found: char,
    },
    /// A string key that must not be empty (`kernel`, `disk`) is empty.
    EmptyString {
        /// The key as written.
        key: &'static str,
    },
    /// `cmdline` is longer than [`MAX_CMDLINE_BYTES`].
    CmdlineTooLong {
        /// The key as written (`cmdline` or `extra`).
        key: &'static str,
        /// The command line's length in bytes.
        len: usize,
    },
    /// An `on_*` key is not `destroy`, `restart` or `preserve`.
    InvalidAction {
        /// The key as written.
        key: &'static str,
        /// The string given.
        got: String,
    },
    /// `cap` is more than [`CAP_PERCENT_PER_VCPU`] times `vcpus`.
    CapExceedsVcpus {
        /// The cap, in percent.
        cap: u16,
        /// The number of vCPUs.
        vcpus: u32,
    },
    /// A required key is absent.
    MissingKey {
        /// The key.
        key: &'static str,
    },
    /// An override is blank or only a comment.
    EmptyOverride,
}

impl fmt::Display for ConfigErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConfigErrorKind as K;
        match self {
            K::ExpectedKey { found } => write!(f, "expected a key name, found {found:?}"),
            K::ExpectedEquals { key } => write!(f, "expected '=' after '{}'", Snippet(key)),
            K::ExpectedValue { key } => {
                write!(f, "expected a value for '{}' (a double-quoted string or a decimal integer)", Snippet(key))
            }
            K::UnterminatedString => f.write_str("unterminated string (missing closing '\"')"),
            K::InvalidEscape { found } => {
                write!(f, "invalid escape '\\{}' in string (only \\\" and \\\\ are allowed)", found.escape_debug())
            }
            K::ControlCharacter { found } => {
                write!(f, "control character U+{:04X} in string", u32::from(*found))
            }
            K::LeadingZero { digits } => {
                write!(f, "integer '{}' has a leading zero (only decimal is accepted)", Snippet(digits))
            }
            K::IntegerOverflow { digits } => {
                write!(f, "integer '{}' is too large", Snippet(digits))
            }
            K::TrailingGarbage { text } => {
                write!(f, "unexpected '{}' after the value", Snippet(text))
            }
            K::UnknownKey { key } => write!(f, "unknown key '{}'", Snippet(key)),
            K::DuplicateKey { key, first_key, first_line } => {
                if key == first_key {
                    write!(f, "duplicate key '{key}' (first set on line {first_line})")
                } else {
                    write!(f, "duplicate key '{key}' (already set as '{first_key}' on line {first_line})")
                }
            }
            K::ExpectedString { key, got } => {
                write!(f, "{key} must be a double-quoted string, got {got}")
            }
            K::ExpectedInteger { key, got } => {
                write!(f, "{key} must be a decimal integer, got the string \"{}\"", Snippet(got))
            }
            K::OutOfRange { key, min, max, got } => {
                write!(f, "{key} must be between {min} and {max}{}, got {got}", unit(key))
            }
            K::NameLength { len } => write!(f, "name must be 1 to {MAX_NAME_LEN} characters long, got {len}"),
            K::NameCharacter { found } => {
                write!(f, "name contains {found:?}; only A-Z, a-z, 0-9, '_', '.' and '-' are allowed")
            }
            K::EmptyString { key } => write!(f, "{key} must not be empty"),
            K::CmdlineTooLong { key, len } => write!(f, "{key} must be at most {MAX_CMDLINE_BYTES} bytes, got {len}"),
            K::InvalidAction { key, got } => {
                write!(f, "{key} must be \"destroy\", \"restart\" or \"preserve\", got \"{}\"", Snippet(got))
            }
            K::CapExceedsVcpus { cap, vcpus } => write!(
                f,
                "cap must be between 0 and {} percent for {vcpus} vCPU{}, got {cap}",
                CAP_PERCENT_PER_VCPU * vcpus,
                if *vcpus == 1 { "" } else { "s" }
            ),
            K::MissingKey { key } => write!(f, "missing required key '{key}'"),
            K::EmptyOverride => f.write_str("expected 'key=value'"),
        }
    }
}

/// The unit printed after an integer key's range, with its leading space.
fn unit(key: &str) -> &'static str {
    match key {
        "memory" => " MiB",
        "cap" => " percent",
        _ => "",
    }
}

/// Input text shown in an error: control characters and line-breaking
/// whitespace escaped so it stays on one line, and cut to
/// [`Snippet::MAX_CHARS`] characters.
struct Snippet<'a>(&'a str);

impl Snippet<'_> {
    /// Characters shown before the text is cut with `...`.
    const MAX_CHARS: usize = 40;
}

impl fmt::Display for Snippet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, ch) in self.0.chars().enumerate() {
            if index == Self::MAX_CHARS {
                return f.write_str("...");
            }
            if ch.is_control() || (ch.is_whitespace() && ch != ' ') {
                write!(f, "{}", ch.escape_default())?;
            } else {
                f.write_char(ch)?;
            }
        }
        Ok(())
    }
}

/// The configuration fields, one per key (aliases share a field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Name,
    Kernel,
    Memory,
    Vcpus,
    Cmdline,
    Weight,
    Cap,
    OnPoweroff,
    OnReboot,
    OnCrash,
    Disk,
}

impl Field {
    /// Number of fields, for per-field tables.
    const COUNT: usize = 11;

    /// The field's canonical key.
    fn key(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Kernel => "kernel",
            Field::Memory => "memory",
            Field::Vcpus => "vcpus",
            Field::Cmdline => "cmdline",
            Field::Weight => "weight",
            Field::Cap => "cap",
            Field::OnPoweroff => "on_poweroff",
            Field::OnReboot => "on_reboot",
            Field::OnCrash => "on_crash",
            Field::Disk => "disk",
        }
    }
}

// `COUNT` sizes the per-field tables; it must cover the last variant.
const _: () = assert!(Field::Disk as usize + 1 == Field::COUNT);

/// Every accepted key spelling and the field it sets.
const KEYS: [(&str, Field); Field::COUNT + 1] = [
    ("name", Field::Name),
    ("kernel", Field::Kernel),
    ("memory", Field::Memory),
    ("vcpus", Field::Vcpus),
    ("cmdline", Field::Cmdline),
    ("extra", Field::Cmdline),
    ("weight", Field::Weight),
    ("cap", Field::Cap),
    ("on_poweroff", Field::OnPoweroff),
    ("on_reboot", Field::OnReboot),
    ("on_crash", Field::OnCrash),
    ("disk", Field::Disk),
];

/// Finds the field a key sets, and the key's `'static` spelling.
fn lookup(key: &str) -> Option<(Field, &'static str)> {
    KEYS.iter().find(|(spelling, _)| *spelling == key).map(|&(spelling, field)| (field, spelling))
}

/// A lexed value, not yet checked against its key.
#[derive(Debug)]
enum Value {
    Str(String),
    Int(i64),
}

/// One `key = value` line, lexed but not yet interpreted.
#[derive(Debug)]
struct Assignment<'a> {
    key: &'a str,
    value: Value,
}

/// Sets one field from a lexed value: the single per-key check shared by
/// files and overrides. `key` is the spelling used, for messages.
fn assign(config: &mut DomainConfig, key: &'static str, field: Field, value: Value) -> Result<(), ConfigErrorKind> {
    match field {
        Field::Name => {
            let name = string(key, value)?;
            let len = name.chars().count();
            if !(1..=MAX_NAME_LEN).contains(&len) {
                return Err(ConfigErrorKind::NameLength { len });
            }
            if let Some(found) = name.chars().find(|&ch| !(ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-')))
            {
                return Err(ConfigErrorKind::NameCharacter { found });
            }
            config.name = name;
        }
        Field::Kernel => config.kernel = non_empty(key, value)?,
        Field::Memory => config.memory_mib = integer(key, value, 1, MAX_MEMORY_MIB)?,
        Field::Vcpus => config.vcpus = integer(key, value, 1, MAX_VCPUS)?,
        Field::Cmdline => {
            let cmdline = string(key, value)?;
            if cmdline.len() > MAX_CMDLINE_BYTES {
                return Err(ConfigErrorKind::CmdlineTooLong { key, len: cmdline.len() });
            }
            config.cmdline = cmdline;
        }
        Field::Weight => config.weight = integer(key, value, 1, u16::MAX)?,
        // The per-vCPU limit depends on `vcpus`, which may come later; the
        // absolute limit here keeps the value in range for `u16`, and
        // `check_cap` applies the rest once every key is known.
        Field::Cap => config.cap = integer(key, value, 0, max_cap(MAX_VCPUS))?,
        Field::OnPoweroff => config.on_poweroff = action(key, value)?,
        Field::OnReboot => config.on_reboot = action(key, value)?,
        Field::OnCrash => config.on_crash = action(key, value)?,
        Field::Disk => config.disk = Some(non_empty(key, value)?),
    }
    Ok(())
}

/// The largest `cap` allowed with `vcpus` vCPUs (at most 3200, so it fits `u16`).
fn max_cap(vcpus: u32) -> u16 {
    u16::try_from(CAP_PERCENT_PER_VCPU * vcpus.min(MAX_VCPUS)).unwrap_or(u16::MAX)
}

/// The cross-key check: `cap` within [`CAP_PERCENT_PER_VCPU`] per vCPU.
fn check_cap(config: &DomainConfig) -> Result<(), ConfigErrorKind> {
    if config.cap > max_cap(config.vcpus) {
        return Err(ConfigErrorKind::CapExceedsVcpus { cap: config.cap, vcpus: config.vcpus });
    }
    Ok(())
}

/// The value as a string, or the error for an integer.
fn string(key: &'static str, value: Value) -> Result<String, ConfigErrorKind> {
    match value {
        Value::Str(s) => Ok(s),
        Value::Int(got) => Err(ConfigErrorKind::ExpectedString { key, got }),
    }
}

/// The value as a non-empty string.
fn non_empty(key: &'static str, value: Value) -> Result<String, ConfigErrorKind> {
    let s = string(key, value)?;
    if s.is_empty() {
        return Err(ConfigErrorKind::EmptyString { key });
    }
    Ok(s)
}

/// The value as an integer in `min..=max`.
fn integer<T>(key: &'static str, value: Value, min: T, max: T) -> Result<T, ConfigErrorKind>
where
    T: Copy + Into<i64> + TryFrom<i64>,
{
    let got = match value {
        Value::Int(got) => got,
        Value::Str(got) => return Err(ConfigErrorKind::ExpectedInteger { key, got }),
    };
    let (min, max) = (min.into(), max.into());
    let out_of_range = ConfigErrorKind::OutOfRange { key, min, max, got };
    if !(min..=max).contains(&got) {
        return Err(out_of_range);
    }
    T::try_from(got).map_err(|_| out_of_range)
}

/// The value as an [`Action`].
fn action(key: &'static str, value: Value) -> Result<Action, ConfigErrorKind> {
    let s = string(key, value)?;
    match s.parse() {
        Ok(action) => Ok(action),
        Err(ParseActionError) => Err(ConfigErrorKind::InvalidAction { key, got: s }),
    }
}

/// Lexes one line: `Ok(None)` if it is blank or only a comment.
///
/// Knows the syntax only, not the keys: the same for files and overrides.
fn lex_line(line: &str) -> Result<Option<Assignment<'_>>, ConfigErrorKind> {
    let mut cursor = Cursor(line);
    cursor.skip_space();
    match cursor.peek() {
        None | Some('#') => return Ok(None),
        Some(_) => {}
    }
    let key = cursor.take_while(|ch| ch.is_ascii_alphanumeric() || ch == '_');
    if key.is_empty() {
        // Not at the end (checked above), so there is a character.
        let found = cursor.peek().unwrap_or('\0');
        return Err(ConfigErrorKind::ExpectedKey { found });
    }
    cursor.skip_space();
    if cursor.bump() != Some('=') {
        return Err(ConfigErrorKind::ExpectedEquals { key: key.to_string() });
    }
    cursor.skip_space();
    let value = match cursor.peek() {
        Some('"') => Value::Str(lex_string(&mut cursor)?),
        Some(ch) if ch == '-' || ch.is_ascii_digit() => match lex_integer(&mut cursor)? {
            Some(n) => Value::Int(n),
            None => return Err(ConfigErrorKind::ExpectedValue { key: key.to_string() }),
        },
        _ => return Err(ConfigErrorKind::ExpectedValue { key: key.to_string() }),
    };
    cursor.skip_space();
    match cursor.peek() {
        None | Some('#') => Ok(Some(Assignment { key, value })),
        Some(_) => Err(ConfigErrorKind::TrailingGarbage { text: cursor.0.to_string() }),
    }
}

/// Lexes a double-quoted string; the cursor is on the opening quote.
fn lex_string(cursor: &mut Cursor<'_>) -> Result<String, ConfigErrorKind> {
    cursor.bump();
    let mut out = String::new();
    loop {
        match cursor.bump() {
            None => return Err(ConfigErrorKind::UnterminatedString),
            Some('"') => return Ok(out),
            Some('\\') => match cursor.bump() {
                None => return Err(ConfigErrorKind::UnterminatedString),
                Some(ch @ ('"' | '\\')) => out.push(ch),
                Some(found) => return Err(ConfigErrorKind::InvalidEscape { found }),
            },
            Some(found) if found.is_control() => return Err(ConfigErrorKind::ControlCharacter { found }),
            Some(ch) => out.push(ch),
        }
    }
}

/// Lexes `-?[0-9]+`; the cursor is on `-` or a digit. `Ok(None)` if a `-`
/// has no digits after it.
fn lex_integer(cursor: &mut Cursor<'_>) -> Result<Option<i64>, ConfigErrorKind> {
    let start = cursor.0;
    let negative = cursor.peek() == Some('-');
    if negative {
        cursor.bump();
    }
    let digits = cursor.take_while(|ch| ch.is_ascii_digit());
    if digits.is_empty() {
        return Ok(None);
    }
    let written = &start[..start.len() - cursor.0.len()];
    if digits.len() > 1 && digits.starts_with('0') {
        return Err(ConfigErrorKind::LeadingZero { digits: written.to_string() });
    }
    let mut value: i64 = 0;
    for digit in digits.bytes() {
        let digit = i64::from(digit - b'0');
        value = value
            .checked_mul(10)
            .and_then(|v| if negative { v.checked_sub(digit) } else { v.checked_add(digit) })
            .ok_or_else(|| ConfigErrorKind::IntegerOverflow { digits: written.to_string() })?;
    }
    Ok(Some(value))
}

/// The unread rest of a line.
struct Cursor<'a>(&'a str);

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.0.chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.0 = &self.0[ch.len_utf8()..];
        Some(ch)
    }

    /// Skips spaces and tabs (and a `\r` left by a CRLF line ending).
    fn skip_space(&mut self) {
        self.take_while(|ch| matches!(ch, ' ' | '\t' | '\r'));
    }

    fn take_while(&mut self, pred: impl Fn(char) -> bool) -> &'a str {
        let end = self.0.find(|ch| !pred(ch)).unwrap_or(self.0.len());
        let (taken, rest) = self.0.split_at(end);
        self.0 = rest;
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec::Vec;

    const EXAMPLE: &str = r#"# comment
name = "web1"
kernel = "guest-kernel.elf"
memory = 64            # MiB
vcpus = 1
cmdline = "selftest"   # alias: extra
weight = 256           # scheduler weight, 1..=65535, default 256
cap = 0                # percent of one CPU, 0 = no cap
on_poweroff = "destroy"   # destroy | restart | preserve
on_reboot = "restart"
on_crash = "destroy"
disk = "disk0.img"     # optional
"#;

    const MINIMAL: &str = "name = \"d\"\nkernel = \"k\"\nmemory = 1\n";

    fn example() -> DomainConfig {
        DomainConfig {
            name: "web1".into(),
            kernel: "guest-kernel.elf".into(),
            memory_mib: 64,
            vcpus: 1,
            cmdline: "selftest".into(),
            weight: 256,
            cap: 0,
            on_poweroff: Action::Destroy,
            on_reboot: Action::Restart,
            on_crash: Action::Destroy,
            disk: Some("disk0.img".into()),
        }
    }

    /// Parses `MINIMAL` plus `extra` lines (so the extra lines start at line 4).
    fn parse_with(extra: &str) -> Result<DomainConfig, ConfigError> {
        DomainConfig::parse(&format!("{MINIMAL}{extra}"))
    }

    /// The `Display` line of the error from parsing `MINIMAL` plus `extra`.
    fn error_with(extra: &str) -> String {
        parse_with(extra).unwrap_err().to_string()
    }

    fn error_of(text: &str) -> String {
        DomainConfig::parse(text).unwrap_err().to_string()
    }

    // --- Syntax -----------------------------------------------------------

    #[test]
    fn example_parses() {
        assert_eq!(DomainConfig::parse(EXAMPLE), Ok(example()));
    }

    #[test]
    fn defaults_apply_to_missing_optional_keys() {
        let config = DomainConfig::parse(MINIMAL).unwrap();
        assert_eq!(
            config,
            DomainConfig {
                name: "d".into(),
                kernel: "k".into(),
                memory_mib: 1,
                vcpus: 1,
                cmdline: String::new(),
                weight: 256,
                cap: 0,
                on_poweroff: Action::Destroy,
                on_reboot: Action::Restart,
                on_crash: Action::Destroy,
                disk: None,
            }
        );
    }

    #[test]
    fn blank_lines_comments_tabs_and_crlf_are_accepted() {
        let text = "\n   \n# c\n\t# indented comment\r\nname\t=\t\"d\"\t# c\r\n\
                    kernel=\"k\"#c\nmemory =1\r\n\n";
        let config = DomainConfig::parse(text).unwrap();
        assert_eq!((config.name.as_str(), config.memory_mib), ("d", 1));
    }

    #[test]
    fn hash_inside_a_string_is_not_a_comment() {
        let config = parse_with("cmdline = \"a # b\" # c\n").unwrap();
        assert_eq!(config.cmdline, "a # b");
    }

    #[test]
    fn string_escapes() {
        let config = parse_with(r#"cmdline = "say \"hi\" \\ bye""#).unwrap();
        assert_eq!(config.cmdline, r#"say "hi" \ bye"#);
        assert_eq!(
            error_with(r#"cmdline = "a\nb""#),
            r#"line 4: invalid escape '\n' in string (only \" and \\ are allowed)"#
        );
    }

    #[test]
    fn unterminated_strings() {
        assert_eq!(error_with("cmdline = \"abc\n"), "line 4: unterminated string (missing closing '\"')");
        // A trailing backslash escapes the would-be closing quote.
        assert_eq!(error_with(r#"cmdline = "abc\""#), "line 4: unterminated string (missing closing '\"')");
        assert_eq!(error_with("cmdline = \"abc\\"), "line 4: unterminated string (missing closing '\"')");
    }

    #[test]
    fn control_characters_in_strings_are_rejected() {
        assert_eq!(error_with("cmdline = \"a\tb\""), "line 4: control character U+0009 in string");
        assert_eq!(error_with("cmdline = \"a\u{7f}\""), "line 4: control character U+007F in string");
    }

    #[test]
    fn non_ascii_strings_are_accepted() {
        let config = parse_with("cmdline = \"café → ünïcode 😀\"").unwrap();
        assert_eq!(config.cmdline, "café → ünïcode 😀");
    }

    #[test]
    fn malformed_lines() {
        assert_eq!(error_with("= 5"), "line 4: expected a key name, found '='");
        assert_eq!(error_with("memory 5"), "line 4: expected '=' after 'memory'");
        assert_eq!(
            error_with("vcpus ="),
            "line 4: expected a value for 'vcpus' (a double-quoted string or a decimal integer)"
        );
        assert_eq!(
            error_with("vcpus = -"),
            "line 4: expected a value for 'vcpus' (a double-quoted string or a decimal integer)"
        );
        assert_eq!(
            error_with("cmdline = 'x'"),
            "line 4: expected a value for 'cmdline' (a double-quoted string or a decimal integer)"
        );
    }

    #[test]
    fn trailing_garbage() {
        assert_eq!(error_with("vcpus = 2MiB"), "line 4: unexpected 'MiB' after the value");
        assert_eq!(error_with("cmdline = \"a\" \"b\""), "line 4: unexpected '\"b\"' after the value");
        assert_eq!(error_with("vcpus = 0x10"), "line 4: unexpected 'x10' after the value");
        // Long garbage is cut so the message stays readable.
        let long = "x".repeat(100);
        assert_eq!(
            error_with(&format!("vcpus = 2 {long}")),
            format!("line 4: unexpected '{}...' after the value", "x".repeat(40))
        );
    }

    #[test]
    fn integers() {
        assert_eq!(
            parse_with("vcpus = 0032").unwrap_err().kind,
            ConfigErrorKind::LeadingZero { digits: "0032".into() }
        );
        assert_eq!(error_with("vcpus = 08"), "line 4: integer '08' has a leading zero (only decimal is accepted)");
        assert_eq!(error_with("vcpus = 99999999999999999999"), "line 4: integer '99999999999999999999' is too large");
        assert_eq!(error_with("vcpus = -99999999999999999999"), "line 4: integer '-99999999999999999999' is too large");
        // The i64 extremes lex, then fail the range check.
        assert_eq!(
            error_with("vcpus = 9223372036854775807"),
            "line 4: vcpus must be between 1 and 32, got 9223372036854775807"
        );
        assert_eq!(
            error_with("vcpus = -9223372036854775808"),
            "line 4: vcpus must be between 1 and 32, got -9223372036854775808"
        );
        assert_eq!(error_with("vcpus = -1"), "line 4: vcpus must be between 1 and 32, got -1");
        // Out of u32 range but within i64: a range error, not a wrap.
        assert_eq!(
            error_of("name = \"d\"\nkernel = \"k\"\nmemory = 4294967297\n"),
            "line 3: memory must be between 1 and 65536 MiB, got 4294967297"
        );
        assert_eq!(parse_with("cap = 0").unwrap().cap, 0);
    }

    // --- Keys ---------------------------------------------------------------

    #[test]
    fn required_keys() {
        assert_eq!(error_of("name = \"d\"\nmemory = 1\n"), "missing required key 'kernel'");
        assert_eq!(error_of(""), "missing required key 'name'");
        assert_eq!(error_of("name = \"d\"\nkernel = \"k\"\n"), "missing required key 'memory'");
        let err = DomainConfig::parse("# nothing\n").unwrap_err();
        assert_eq!(err.location, Location::Config);
        assert_eq!(err.line(), None);
        assert_eq!(err.kind, ConfigErrorKind::MissingKey { key: "name" });
    }

    #[test]
    fn unknown_keys() {
        let text = "name = \"d\"\nkernel = \"k\"\n\n\n\n\nmemroy = 64\n";
        let err = DomainConfig::parse(text).unwrap_err();
        assert_eq!(err.line(), Some(7));
        assert_eq!(err.to_string(), "line 7: unknown key 'memroy'");
        // Keys are case-sensitive, as in xl.
        assert_eq!(error_with("Vcpus = 1"), "line 4: unknown key 'Vcpus'");
        // xl keys this subset leaves out are unknown too.
        assert_eq!(error_with("maxmem = 128"), "line 4: unknown key 'maxmem'");
    }

    #[test]
    fn duplicate_keys() {
        assert_eq!(error_with("memory = 2"), "line 4: duplicate key 'memory' (first set on line 3)");
        assert_eq!(
            error_with("cmdline = \"a\"\nextra = \"b\""),
            "line 5: duplicate key 'extra' (already set as 'cmdline' on line 4)"
        );
    }

    #[test]
    fn extra_is_an_alias_for_cmdline() {
        assert_eq!(parse_with("extra = \"x\"").unwrap().cmdline, "x");
    }

    #[test]
    fn value_types_must_match_keys() {
        assert_eq!(error_with("vcpus = \"2\""), "line 4: vcpus must be a decimal integer, got the string \"2\"");
        assert_eq!(error_of("name = 5\n"), "line 1: name must be a double-quoted string, got 5");
        assert_eq!(error_with("on_crash = 1"), "line 4: on_crash must be a double-quoted string, got 1");
    }

    // --- Limits ---------------------------------------------------------------

    #[test]
    fn name_limits() {
        let ok = "aZ09_.-".repeat(10)[..64].to_string();
        let config = DomainConfig::parse(&format!("name = \"{ok}\"\nkernel = \"k\"\nmemory = 1"));
        assert_eq!(config.unwrap().name, ok);
        let too_long = "a".repeat(65);
        assert_eq!(error_of(&format!("name = \"{too_long}\"")), "line 1: name must be 1 to 64 characters long, got 65");
        assert_eq!(error_of("name = \"\""), "line 1: name must be 1 to 64 characters long, got 0");
        assert_eq!(
            error_of("name = \"web 1\""),
            "line 1: name contains ' '; only A-Z, a-z, 0-9, '_', '.' and '-' are allowed"
        );
        assert_eq!(
            error_of("name = \"wéb\""),
            "line 1: name contains 'é'; only A-Z, a-z, 0-9, '_', '.' and '-' are allowed"
        );
    }

    #[test]
    fn memory_limits() {
        let with = |memory: &str| DomainConfig::parse(&format!("name = \"d\"\nkernel = \"k\"\nmemory = {memory}\n"));
        assert_eq!(with("1").unwrap().memory_mib, 1);
        assert_eq!(with("65536").unwrap().memory_mib, 65536);
        assert_eq!(with("0").unwrap_err().to_string(), "line 3: memory must be between 1 and 65536 MiB, got 0");
        assert_eq!(
            with("65537").unwrap_err().kind,
            ConfigErrorKind::OutOfRange { key: "memory", min: 1, max: 65536, got: 65537 }
        );
    }

    #[test]
    fn vcpus_limits() {
        assert_eq!(parse_with("vcpus = 1").unwrap().vcpus, 1);
        assert_eq!(parse_with("vcpus = 32").unwrap().vcpus, 32);
        assert_eq!(error_with("vcpus = 0"), "line 4: vcpus must be between 1 and 32, got 0");
        assert_eq!(error_with("vcpus = 33"), "line 4: vcpus must be between 1 and 32, got 33");
    }

    #[test]
    fn cmdline_limits() {
        let max = "x".repeat(MAX_CMDLINE_BYTES);
        assert_eq!(parse_with(&format!("cmdline = \"{max}\"")).unwrap().cmdline, max);
        assert_eq!(
            error_with(&format!("cmdline = \"{max}x\"")),
            "line 4: cmdline must be at most 1023 bytes, got 1024"
        );
        // Bytes, not characters: 512 two-byte characters are 1024 bytes.
        assert_eq!(
            error_with(&format!("extra = \"{}\"", "é".repeat(512))),
            "line 4: extra must be at most 1023 bytes, got 1024"
        );
    }

    #[test]
    fn weight_limits() {
        assert_eq!(parse_with("weight = 1").unwrap().weight, 1);
        assert_eq!(parse_with("weight = 65535").unwrap().weight, 65535);
        assert_eq!(error_with("weight = 0"), "line 4: weight must be between 1 and 65535, got 0");
        assert_eq!(error_with("weight = 65536"), "line 4: weight must be between 1 and 65535, got 65536");
    }

    #[test]
    fn cap_limits_depend_on_vcpus_in_either_order() {
        assert_eq!(parse_with("cap = 100").unwrap().cap, 100);
        assert_eq!(parse_with("vcpus = 4\ncap = 400").unwrap().cap, 400);
        assert_eq!(parse_with("cap = 400\nvcpus = 4").unwrap().cap, 400);
        assert_eq!(parse_with("vcpus = 32\ncap = 3200").unwrap().cap, 3200);
        assert_eq!(error_with("cap = 101"), "line 4: cap must be between 0 and 100 percent for 1 vCPU, got 101");
        // Reported on the cap line even when vcpus comes after it.
        assert_eq!(
            error_with("cap = 300\nvcpus = 2"),
            "line 4: cap must be between 0 and 200 percent for 2 vCPUs, got 300"
        );
        assert_eq!(error_with("cap = 3201"), "line 4: cap must be between 0 and 3200 percent, got 3201");
        assert_eq!(error_with("cap = -1"), "line 4: cap must be between 0 and 3200 percent, got -1");
    }

    #[test]
    fn actions() {
        let config = parse_with("on_poweroff = \"preserve\"\non_reboot = \"destroy\"\non_crash = \"restart\"").unwrap();
        assert_eq!(
            (config.on_poweroff, config.on_reboot, config.on_crash),
            (Action::Preserve, Action::Destroy, Action::Restart)
        );
        assert_eq!(
            error_with("on_crash = \"coredump-destroy\""),
            "line 4: on_crash must be \"destroy\", \"restart\" or \"preserve\", got \"coredump-destroy\""
        );
        assert_eq!(
            error_with("on_reboot = \"Restart\""),
            "line 4: on_reboot must be \"destroy\", \"restart\" or \"preserve\", got \"Restart\""
        );
    }

    #[test]
    fn action_from_str_and_display_round_trip() {
        for action in [Action::Destroy, Action::Restart, Action::Preserve] {
            assert_eq!(action.to_string().parse(), Ok(action));
        }
        assert_eq!("DESTROY".parse::<Action>(), Err(ParseActionError));
        assert_eq!(ParseActionError.to_string(), "expected \"destroy\", \"restart\" or \"preserve\"");
    }

    #[test]
    fn kernel_and_disk_must_not_be_empty() {
        assert_eq!(error_of("name = \"d\"\nkernel = \"\"\n"), "line 2: kernel must not be empty");
        assert_eq!(error_with("disk = \"\""), "line 4: disk must not be empty");
        assert_eq!(parse_with("disk = \"d.img\"").unwrap().disk.as_deref(), Some("d.img"));
    }

    #[test]
    fn first_error_in_line_order_wins() {
        assert_eq!(error_of("memory = 0\nbogus = 1\n"), "line 1: memory must be between 1 and 65536 MiB, got 0");
    }

    // --- Rendering ------------------------------------------------------------

    #[test]
    fn to_text_renders_every_key_in_order() {
        assert_eq!(
            example().to_text(),
            "name = \"web1\"\nkernel = \"guest-kernel.elf\"\nmemory = 64\nvcpus = 1\n\
             cmdline = \"selftest\"\nweight = 256\ncap = 0\non_poweroff = \"destroy\"\n\
             on_reboot = \"restart\"\non_crash = \"destroy\"\ndisk = \"disk0.img\"\n"
        );
    }

    #[test]
    fn to_text_round_trips() {
        let mut config = example();
        assert_eq!(DomainConfig::parse(&config.to_text()), Ok(config.clone()));
        config.cmdline = r#"a "quoted" \ # not a comment"#.into();
        config.disk = None;
        assert_eq!(DomainConfig::parse(&config.to_text()), Ok(config));
    }

    // --- Overrides ------------------------------------------------------------

    #[test]
    fn overrides_replace_values() {
        let mut config = example();
        config.apply_override("memory=128").unwrap();
        config.apply_override("name = \"web2\"  # renamed").unwrap();
        config.apply_override("extra=\"quiet\"").unwrap();
        config.apply_override("vcpus=4").unwrap();
        config.apply_override("cap=400").unwrap();
        config.apply_override("on_crash=\"preserve\"").unwrap();
        assert_eq!(
            config,
            DomainConfig {
                name: "web2".into(),
                memory_mib: 128,
                cmdline: "quiet".into(),
                vcpus: 4,
                cap: 400,
                on_crash: Action::Preserve,
                ..example()
            }
        );
    }

    #[test]
    fn override_errors_name_the_override_and_change_nothing() {
        let mut config = example();
        let cases = [
            ("memory=0", "in override 'memory=0': memory must be between 1 and 65536 MiB, got 0"),
            ("memroy=128", "in override 'memroy=128': unknown key 'memroy'"),
            (
                "name=web2",
                "in override 'name=web2': expected a value for 'name' \
                 (a double-quoted string or a decimal integer)",
            ),
            ("", "in override '': expected 'key=value'"),
            ("# just a comment", "in override '# just a comment': expected 'key=value'"),
            ("memory=1\n", "in override 'memory=1\\n': unexpected '\\n' after the value"),
            ("cap=101", "in override 'cap=101': cap must be between 0 and 100 percent for 1 vCPU, got 101"),
        ];
        for (text, message) in cases {
            let err = config.apply_override(text).unwrap_err();
            assert_eq!(err.to_string(), message);
            assert_eq!(err.location, Location::Override(text.into()));
            assert_eq!(err.line(), None);
            assert_eq!(config, example());
        }
    }

    #[test]
    fn override_checks_cap_against_new_vcpus() {
        let mut config = example();
        config.apply_override("vcpus=2").unwrap();
        config.apply_override("cap=150").unwrap();
        assert_eq!(
            config.apply_override("vcpus=1").unwrap_err().to_string(),
            "in override 'vcpus=1': cap must be between 0 and 100 percent for 1 vCPU, got 150"
        );
        assert_eq!(config.vcpus, 2);
    }

    // --- Randomized -----------------------------------------------------------

    /// Marsaglia's xorshift64: small, deterministic, good enough to explore inputs.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        /// A value in `0..n`.
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// A value in `lo..=hi`, choosing an end a quarter of the time.
        fn edgy(&mut self, lo: u32, hi: u32) -> u32 {
            match self.below(8) {
                0 => lo,
                1 => hi,
                _ => lo + (self.next() % u64::from(hi - lo + 1)) as u32,
            }
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
    }

    const NAME_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";
    /// Characters that stress the string syntax, plus multi-byte UTF-8.
    const TRICKY_CHARS: &[char] = &['"', '\\', '#', '=', ' ', 'a', 'z', '0', '9', '/', '.', '\'', 'é', '→', '😀'];
    const ACTIONS: &[Action] = &[Action::Destroy, Action::Restart, Action::Preserve];

    /// A string of at most `max_bytes` bytes from `TRICKY_CHARS` and printable ASCII.
    fn random_text(rng: &mut XorShift, min_bytes: usize, max_bytes: usize) -> String {
        let target = match rng.below(4) {
            0 => max_bytes,
            _ => min_bytes + rng.below(max_bytes.min(64) - min_bytes + 1),
        };
        let mut out = String::new();
        while out.len() < target.max(min_bytes) {
            let ch = if rng.below(2) == 0 { rng.pick(TRICKY_CHARS) } else { char::from(b' ' + rng.below(95) as u8) };
            if out.len() + ch.len_utf8() > max_bytes {
                break;
            }
            out.push(ch);
        }
        out
    }

    fn random_config(rng: &mut XorShift) -> DomainConfig {
        let name_len = rng.edgy(1, MAX_NAME_LEN as u32) as usize;
        let vcpus = rng.edgy(1, MAX_VCPUS);
        DomainConfig {
            name: (0..name_len).map(|_| char::from(rng.pick(NAME_CHARS))).collect(),
            kernel: random_text(rng, 1, 200),
            memory_mib: rng.edgy(1, MAX_MEMORY_MIB),
            vcpus,
            cmdline: random_text(rng, 0, MAX_CMDLINE_BYTES),
            weight: rng.edgy(1, 65535) as u16,
            cap: rng.edgy(0, CAP_PERCENT_PER_VCPU * vcpus) as u16,
            on_poweroff: rng.pick(ACTIONS),
            on_reboot: rng.pick(ACTIONS),
            on_crash: rng.pick(ACTIONS),
            disk: (rng.below(2) == 0).then(|| random_text(rng, 1, 100)),
        }
    }

    /// Bytes likely to change the meaning of a config line.
    const INTERESTING_BYTES: &[u8] = b"\"\\#= \t\n\r-0123456789xe\x00\x7f\xc3\xa9\xff";

    /// Applies 1 to 8 random byte-level edits.
    fn mutate(rng: &mut XorShift, text: &str) -> String {
        let mut bytes = text.as_bytes().to_vec();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(bytes.len() + 1);
            let byte = if rng.below(2) == 0 { rng.pick(INTERESTING_BYTES) } else { rng.next() as u8 };
            match rng.below(5) {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                2 if at < bytes.len() => {
                    bytes.remove(at);
                }
                3 => {
                    // Copy a random span elsewhere (duplicates keys and lines).
                    let start = rng.below(bytes.len() + 1);
                    let end = start + rng.below(bytes.len() - start + 1);
                    let span: Vec<u8> = bytes[start..end].to_vec();
                    bytes.splice(at..at, span);
                }
                _ => bytes.truncate(at),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// An error must render as one non-empty line.
    fn assert_one_line(err: &ConfigError, input: &str) {
        let message = err.to_string();
        assert!(
            !message.is_empty() && !message.contains('\n') && !message.contains('\r'),
            "bad message {message:?} for input {input:?}"
        );
    }

    #[test]
    fn random_valid_configs_round_trip() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let config = random_config(&mut rng);
            let text = config.to_text();
            assert_eq!(DomainConfig::parse(&text), Ok(config), "text:\n{text}");
        }
    }

    #[test]
    fn random_mutations_never_panic_and_accepted_results_are_valid() {
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let (mut accepted, mut rejected) = (0, 0);
        for _ in 0..5000 {
            let valid = random_config(&mut rng).to_text();
            let text = mutate(&mut rng, &valid);
            match DomainConfig::parse(&text) {
                Ok(config) => {
                    accepted += 1;
                    assert_eq!(DomainConfig::parse(&config.to_text()), Ok(config));
                }
                Err(err) => {
                    rejected += 1;
                    assert_one_line(&err, &text);
                }
            }
        }
        // Both outcomes are exercised, or the mutator is too weak or too strong.
        assert!(accepted > 100 && rejected > 100, "{accepted} ok, {rejected} errors");
    }

    #[test]
    fn random_overrides_never_panic_and_keep_the_config_valid() {
        let mut rng = XorShift(0xdead_beef_cafe_f00d);
        for _ in 0..3000 {
            let mut config = random_config(&mut rng);
            let source = random_config(&mut rng).to_text();
            let lines: Vec<&str> = source.lines().collect();
            let line = rng.pick(&lines);
            let text = if rng.below(2) == 0 { line.to_string() } else { mutate(&mut rng, line) };
            let before = config.clone();
            match config.apply_override(&text) {
                Ok(()) => assert_eq!(DomainConfig::parse(&config.to_text()), Ok(config)),
                Err(err) => {
                    assert_one_line(&err, &text);
                    assert_eq!(config, before, "override {text:?} changed the config");
                }
            }
        }
    }
}
