//! The control domain's command language: what one line typed at dom0's
//! shell asks for, checked before anything is done.
//!
//! A line is words separated by spaces or tabs. Double quotes group a
//! word's characters (`cmdline="sleep ms=5"` is one word), `\"` and `\\`
//! inside quotes stand for `"` and `\`, and the quotes themselves are not
//! part of the word. A line that is blank or starts with `#` is no command.
//! A script is lines separated by `;` outside quotes ([`split_script`]).
//!
//! The first word names the command ([`Verb`]); the rest are its arguments:
//!
//! - a domain (`destroy 3`, `console web`): an id if the word is all
//!   digits, below `DOMID_FIRST_RESERVED`; else a name ([`DomainRef`]);
//! - `create`'s `key=value` words: the keys of a [`DomainConfig`], each
//!   applied as a [`DomainConfig::apply_override`], so every check and
//!   error is the configuration's. A value written without quotes is an
//!   integer if it is all digits (with an optional `-`) and a string
//!   otherwise; a quoted value is always a string (`name=web`,
//!   `memory=16`, `name="42"`). `name` and `memory` are required;
//!   `kernel` defaults to [`DEFAULT_KERNEL`], and every other key has the
//!   configuration's default (`on_reboot` restarts, the others destroy).
//! - `xenstore-ls [PATH]`, `xenstore-read PATH`, `xenstore-write PATH
//!   VALUE`: xenstore paths and a value, each one word, taken as typed
//!   (the store checks them).
//!
//! [`parse`] returns a [`Command`] or one [`CommandError`], whose `Display`
//! is one line that names the command.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::ops::RangeInclusive;

use abi::mm::DOMID_FIRST_RESERVED;

use crate::builder::DomId;
use crate::config::{ConfigError, ConfigErrorKind, DomainConfig, Location};

/// The `kernel` of a domain `create` builds when none is given: the one
/// image the control domain has, the kernel it received as its ramdisk.
pub const DEFAULT_KERNEL: &str = "ramdisk";

/// The name the control domain goes by.
pub const DOM0_NAME: &str = "Domain-0";

/// A command's name, usage and one-line description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// `help`.
    Help,
    /// `list`.
    List,
    /// `create`.
    Create,
    /// `destroy`.
    Destroy,
    /// `pause`.
    Pause,
    /// `unpause`.
    Unpause,
    /// `shutdown`.
    Shutdown,
    /// `reboot`.
    Reboot,
    /// `console`.
    Console,
    /// `info`.
    Info,
    /// `dmesg`.
    Dmesg,
    /// `images`.
    Images,
    /// `upload`.
    Upload,
    /// `disks`.
    Disks,
    /// `mkdisk`.
    Mkdisk,
    /// `xenstore-ls`.
    XenstoreLs,
    /// `xenstore-read`.
    XenstoreRead,
    /// `xenstore-write`.
    XenstoreWrite,
    /// `exit`.
    Exit,
}

impl Verb {
    /// Every command, in the order `help` lists them.
    pub const ALL: [Verb; 19] = [
        Verb::Help,
        Verb::List,
        Verb::Create,
        Verb::Destroy,
        Verb::Pause,
        Verb::Unpause,
        Verb::Shutdown,
        Verb::Reboot,
        Verb::Console,
        Verb::Info,
        Verb::Dmesg,
        Verb::Images,
        Verb::Upload,
        Verb::Disks,
        Verb::Mkdisk,
        Verb::XenstoreLs,
        Verb::XenstoreRead,
        Verb::XenstoreWrite,
        Verb::Exit,
    ];

    /// The word that names the command.
    pub const fn name(self) -> &'static str {
        match self {
            Verb::Help => "help",
            Verb::List => "list",
            Verb::Create => "create",
            Verb::Destroy => "destroy",
            Verb::Pause => "pause",
            Verb::Unpause => "unpause",
            Verb::Shutdown => "shutdown",
            Verb::Reboot => "reboot",
            Verb::Console => "console",
            Verb::Info => "info",
            Verb::Dmesg => "dmesg",
            Verb::Images => "images",
            Verb::Upload => "upload",
            Verb::Disks => "disks",
            Verb::Mkdisk => "mkdisk",
            Verb::XenstoreLs => "xenstore-ls",
            Verb::XenstoreRead => "xenstore-read",
            Verb::XenstoreWrite => "xenstore-write",
            Verb::Exit => "exit",
        }
    }

    /// The command with its arguments, as `help` shows it.
    pub const fn usage(self) -> &'static str {
        match self {
            Verb::Help => "help",
            Verb::List => "list",
            Verb::Create => "create name=<name> memory=<MiB> [key=value ...]",
            Verb::Destroy => "destroy <id|name>",
            Verb::Pause => "pause <id|name>",
            Verb::Unpause => "unpause <id|name>",
            Verb::Shutdown => "shutdown <id|name>",
            Verb::Reboot => "reboot <id|name>",
            Verb::Console => "console <id|name>",
            Verb::Info => "info",
            Verb::Dmesg => "dmesg",
            Verb::Images => "images",
            Verb::Upload => "upload <name> <bytes>",
            Verb::Disks => "disks",
            Verb::Mkdisk => "mkdisk <name> <MiB>",
            Verb::XenstoreLs => "xenstore-ls [<path>]",
            Verb::XenstoreRead => "xenstore-read <path>",
            Verb::XenstoreWrite => "xenstore-write <path> <value>",
            Verb::Exit => "exit",
        }
    }

    /// What the command does, in one line.
    pub const fn about(self) -> &'static str {
        match self {
            Verb::Help => "this list",
            Verb::List => "every domain: ID NAME STATE MEM(MiB) CPU(s)",
            Verb::Create => "build a domain from a kernel image (kernel=<image>) and start it (keys as in xl.cfg)",
            Verb::Destroy => "destroy a domain at once",
            Verb::Pause => "stop a domain running",
            Verb::Unpause => "let a paused domain run again",
            Verb::Shutdown => "ask a domain to power off",
            Verb::Reboot => "ask a domain to reboot",
            Verb::Console => "show a domain's console output, following it until Ctrl-] or its end",
            Verb::Info => "the host: memory, CPU, number of domains",
            Verb::Dmesg => "the hypervisor's console ring",
            Verb::Images => "the kernel images 'create' can use: the ramdisk and uploaded ones",
            Verb::Upload => "receive a kernel or disk image on the control port (what 'hvctl create --kernel' sends)",
            Verb::Disks => "the disk images domains' disk=<name> is served from: NAME MiB USER",
            Verb::Mkdisk => "make a zeroed disk image of <MiB> MiB",
            Verb::XenstoreLs => "the xenstore tree under a path (default /), as dom0 sees it",
            Verb::XenstoreRead => "a xenstore node's value, read as dom0",
            Verb::XenstoreWrite => "set a xenstore node's value, written as dom0",
            Verb::Exit => "leave the shell and power off",
        }
    }

    /// The command a word names.
    pub fn from_word(word: &str) -> Option<Verb> {
        Verb::ALL.iter().copied().find(|v| v.name() == word)
    }
}

/// The help text: one line per command, usage then description.
pub fn help() -> String {
    let width = Verb::ALL.iter().map(|v| v.usage().len()).max().unwrap_or(0);
    let mut out = String::new();
    for verb in Verb::ALL {
        out.push_str(&format!("{:<width$}  {}\n", verb.usage(), verb.about()));
    }
    out
}

/// A domain as a command names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainRef {
    /// By id (the word was all digits).
    Id(DomId),
    /// By name.
    Name(String),
}

impl DomainRef {
    /// The domain's id, given the names the caller knows (`(id, name)`
    /// pairs): an id as it is; a name that one of `names` has; else a
    /// `d<id>` word (as the shell prints ids) read as that id. `None`: no
    /// such name.
    pub fn resolve<'a>(&self, names: impl IntoIterator<Item = (DomId, &'a str)>) -> Option<DomId> {
        match self {
            DomainRef::Id(id) => Some(*id),
            DomainRef::Name(name) => names
                .into_iter()
                .find(|&(_, n)| n == name)
                .map(|(id, _)| id)
                .or_else(|| name.strip_prefix('d').and_then(domain_id)),
        }
    }
}

impl fmt::Display for DomainRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainRef::Id(id) => write!(f, "{id}"),
            DomainRef::Name(name) => write!(f, "named '{}'", name.escape_debug()),
        }
    }
}

/// One command, its arguments checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// List the commands.
    Help,
    /// List the domains.
    List,
    /// Build a domain from this configuration and start it.
    Create(DomainConfig),
    /// Destroy a domain.
    Destroy(DomainRef),
    /// Pause a domain.
    Pause(DomainRef),
    /// Unpause a domain.
    Unpause(DomainRef),
    /// Ask a domain to power off.
    Shutdown(DomainRef),
    /// Ask a domain to reboot.
    Reboot(DomainRef),
    /// Follow a domain's console output.
    Console(DomainRef),
    /// Describe the host.
    Info,
    /// Print the hypervisor's console ring.
    Dmesg,
    /// List the kernel images.
    Images,
    /// Receive a kernel image of `size` bytes, to be known as `name`.
    Upload {
        /// What `create kernel=<name>` calls it.
        name: String,
        /// Its length in bytes.
        size: usize,
    },
    /// List the disk images.
    Disks,
    /// Make a zeroed disk image.
    Mkdisk {
        /// What `create disk=<name>` calls it.
        name: String,
        /// Its size in MiB.
        mib: u32,
    },
    /// List the xenstore tree under a path (`None`: the root).
    XenstoreLs(Option<String>),
    /// Read a xenstore node.
    XenstoreRead(String),
    /// Write a xenstore node.
    XenstoreWrite {
        /// The node.
        path: String,
        /// Its new value.
        value: String,
    },
    /// Leave the shell.
    Exit,
}

impl Command {
    /// The command's verb.
    pub fn verb(&self) -> Verb {
        match self {
            Command::Help => Verb::Help,
            Command::List => Verb::List,
            Command::Create(_) => Verb::Create,
            Command::Destroy(_) => Verb::Destroy,
            Command::Pause(_) => Verb::Pause,
            Command::Unpause(_) => Verb::Unpause,
            Command::Shutdown(_) => Verb::Shutdown,
            Command::Reboot(_) => Verb::Reboot,
            Command::Console(_) => Verb::Console,
            Command::Info => Verb::Info,
            Command::Dmesg => Verb::Dmesg,
            Command::Images => Verb::Images,
            Command::Upload { .. } => Verb::Upload,
            Command::Disks => Verb::Disks,
            Command::Mkdisk { .. } => Verb::Mkdisk,
            Command::XenstoreLs(_) => Verb::XenstoreLs,
            Command::XenstoreRead(_) => Verb::XenstoreRead,
            Command::XenstoreWrite { .. } => Verb::XenstoreWrite,
            Command::Exit => Verb::Exit,
        }
    }
}

/// Why a line is not a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// A `"` is not closed.
    UnterminatedQuote,
    /// The first word names no command.
    UnknownCommand(String),
    /// The wrong number of arguments.
    Usage(Verb),
    /// A domain id out of range.
    BadDomainId(Verb, String),
    /// A `create` argument without `=`.
    NotKeyValue(String),
    /// A `create` configuration problem.
    Config(ConfigError),
    /// An `upload` image name that is not `[A-Za-z0-9._-]{1,64}`, or is
    /// the ramdisk's.
    BadImageName(Verb, String),
    /// An `upload` size that is not a number from 1 to [`MAX_IMAGE_BYTES`].
    BadImageSize(String),
    /// A `mkdisk` size that is not a number of MiB from 1 to [`MAX_DISK_MIB`].
    BadDiskSize(String),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::UnterminatedQuote => f.write_str("unterminated '\"'"),
            CommandError::UnknownCommand(word) => {
                write!(f, "unknown command '{}' (try 'help')", word.escape_debug())
            }
            CommandError::Usage(verb) => write!(f, "{}: usage: {}", verb.name(), verb.usage()),
            CommandError::BadDomainId(verb, word) => write!(
                f,
                "{}: bad domain id '{}' (ids are 0 to {})",
                verb.name(),
                word.escape_debug(),
                DOMID_FIRST_RESERVED - 1
            ),
            CommandError::NotKeyValue(word) => {
                write!(f, "create: expected key=value, got '{}'", word.escape_debug())
            }
            CommandError::Config(e) => write!(f, "create: {e}"),
            CommandError::BadImageName(verb, name) => write!(
                f,
                "{}: bad image name '{}' (1 to {MAX_IMAGE_NAME} of A-Z a-z 0-9 . _ -, not '{DEFAULT_KERNEL}')",
                verb.name(),
                name.escape_debug()
            ),
            CommandError::BadDiskSize(size) => {
                write!(f, "mkdisk: bad size '{}' (1 to {MAX_DISK_MIB} MiB)", size.escape_debug())
            }
            CommandError::BadImageSize(size) => {
                write!(f, "upload: bad size '{}' (1 to {MAX_IMAGE_BYTES} bytes)", size.escape_debug())
            }
        }
    }
}

impl core::error::Error for CommandError {}

/// A word of a line: its text as typed, and with quotes resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Word<'a> {
    raw: &'a str,
    text: String,
    /// Whether any part was quoted.
    quoted: bool,
}

/// Splits a line into words (see the [module docs](self)).
fn words(line: &str) -> Result<Vec<Word<'_>>, CommandError> {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    loop {
        while chars.next_if(|&(_, ch)| ch == ' ' || ch == '\t').is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            return Ok(out);
        };
        let (mut text, mut quoted, mut in_quotes) = (String::new(), false, false);
        let mut end = line.len();
        while let Some(&(at, ch)) = chars.peek() {
            if !in_quotes && (ch == ' ' || ch == '\t') {
                end = at;
                break;
            }
            chars.next();
            match ch {
                '"' => {
                    in_quotes = !in_quotes;
                    quoted = true;
                }
                '\\' if in_quotes => match chars.next_if(|&(_, c)| c == '"' || c == '\\') {
                    Some((_, escaped)) => text.push(escaped),
                    None => text.push('\\'),
                },
                _ => text.push(ch),
            }
        }
        if in_quotes {
            return Err(CommandError::UnterminatedQuote);
        }
        out.push(Word { raw: &line[start..end], text, quoted });
    }
}

/// Splits a script into its commands at `;` outside double quotes,
/// trimmed, leaving out empty ones.
pub fn split_script(script: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut in_quotes, mut escaped) = (0, false, false);
    for (at, ch) in script.char_indices() {
        match ch {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ';' if !in_quotes => {
                out.push(&script[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    out.push(&script[start..]);
    out.into_iter().map(str::trim).filter(|c| !c.is_empty()).collect()
}

/// A decimal domain id below `DOMID_FIRST_RESERVED`.
fn domain_id(digits: &str) -> Option<DomId> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<DomId>().ok().filter(|&id| id < DOMID_FIRST_RESERVED)
}

/// The one domain argument of `verb`.
fn domain_arg(verb: Verb, args: &[Word<'_>]) -> Result<DomainRef, CommandError> {
    let [word] = args else {
        return Err(CommandError::Usage(verb));
    };
    if !word.quoted && !word.text.is_empty() && word.text.bytes().all(|b| b.is_ascii_digit()) {
        return domain_id(&word.text)
            .map(DomainRef::Id)
            .ok_or_else(|| CommandError::BadDomainId(verb, word.text.clone()));
    }
    Ok(DomainRef::Name(word.text.clone()))
}

/// Whether an unquoted value reads as an integer: `-?[0-9]+`.
fn looks_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The configuration `create`'s arguments describe.
fn create_config(args: &[Word<'_>]) -> Result<DomainConfig, CommandError> {
    if args.is_empty() {
        return Err(CommandError::Usage(Verb::Create));
    }
    // The configuration's own defaults, with placeholders for the required
    // keys that are checked for below.
    let base = format!("name = \"-\"\nkernel = \"{DEFAULT_KERNEL}\"\nmemory = 1\n");
    let mut config = DomainConfig::parse(&base).map_err(CommandError::Config)?;
    let (mut named, mut sized) = (false, false);
    for word in args {
        let Some((key, value)) = word.text.split_once('=') else {
            return Err(CommandError::NotKeyValue(word.raw.to_string()));
        };
        // Only the value can have been quoted: a key is letters, digits
        // and `_`, and anything else makes the override fail.
        let value_quoted = word.raw.split_once('=').is_some_and(|(_, v)| v.contains('"'));
        let line = if !value_quoted && looks_integer(value) {
            format!("{key}={value}")
        } else {
            format!("{key}=\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
        };
        config.apply_override(&line).map_err(|mut e| {
            // Name what was typed, not the line it became.
            e.location = Location::Override(word.raw.to_string());
            CommandError::Config(e)
        })?;
        named |= key == "name";
        sized |= key == "memory";
    }
    for (given, key) in [(named, "name"), (sized, "memory")] {
        if !given {
            return Err(CommandError::Config(ConfigError {
                location: Location::Config,
                kind: ConfigErrorKind::MissingKey { key },
            }));
        }
    }
    Ok(config)
}

/// The longest image name `upload` takes.
pub const MAX_IMAGE_NAME: usize = 64;
/// The largest image `upload` takes (32 MiB).
pub const MAX_IMAGE_BYTES: usize = 32 << 20;

/// The largest disk `mkdisk` makes, in MiB.
pub const MAX_DISK_MIB: u32 = 64;

/// Whether `name` may name an uploaded image.
pub fn image_name_ok(name: &str) -> bool {
    (1..=MAX_IMAGE_NAME).contains(&name.len())
        && name != DEFAULT_KERNEL
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The `<name> <number>` arguments of `upload` and `mkdisk`: the name,
/// checked as an image name, and the number, if it is decimal and within
/// `range`.
fn name_and_number(
    verb: Verb,
    args: &[Word<'_>],
    range: RangeInclusive<usize>,
) -> Result<(String, Option<usize>), CommandError> {
    let [name, number] = args else {
        return Err(CommandError::Usage(verb));
    };
    if !image_name_ok(&name.text) {
        return Err(CommandError::BadImageName(verb, name.text.clone()));
    }
    let n = Some(&number.text)
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<usize>().ok())
        .filter(|n| range.contains(n));
    Ok((name.text.clone(), n))
}

/// `upload`'s arguments.
fn upload_args(args: &[Word<'_>]) -> Result<Command, CommandError> {
    let (name, size) = name_and_number(Verb::Upload, args, 1..=MAX_IMAGE_BYTES)?;
    let size = size.ok_or_else(|| CommandError::BadImageSize(args[1].text.clone()))?;
    Ok(Command::Upload { name, size })
}

/// `mkdisk`'s arguments.
fn mkdisk_args(args: &[Word<'_>]) -> Result<Command, CommandError> {
    let (name, mib) = name_and_number(Verb::Mkdisk, args, 1..=MAX_DISK_MIB as usize)?;
    let mib = mib.and_then(|n| u32::try_from(n).ok()).ok_or_else(|| CommandError::BadDiskSize(args[1].text.clone()))?;
    Ok(Command::Mkdisk { name, mib })
}

/// The command a line asks for; `Ok(None)` for a blank line or a comment.
pub fn parse(line: &str) -> Result<Option<Command>, CommandError> {
    if line.trim_start().starts_with('#') {
        return Ok(None);
    }
    let words = words(line)?;
    let Some((first, args)) = words.split_first() else {
        return Ok(None);
    };
    let verb = Verb::from_word(&first.text).ok_or_else(|| CommandError::UnknownCommand(first.text.clone()))?;
    let none = |command: Command| if args.is_empty() { Ok(command) } else { Err(CommandError::Usage(verb)) };
    let command = match verb {
        Verb::Help => none(Command::Help)?,
        Verb::List => none(Command::List)?,
        Verb::Info => none(Command::Info)?,
        Verb::Dmesg => none(Command::Dmesg)?,
        Verb::Images => none(Command::Images)?,
        Verb::Upload => upload_args(args)?,
        Verb::Disks => none(Command::Disks)?,
        Verb::Mkdisk => mkdisk_args(args)?,
        Verb::XenstoreLs => match args {
            [] => Command::XenstoreLs(None),
            [path] => Command::XenstoreLs(Some(path.text.clone())),
            _ => return Err(CommandError::Usage(verb)),
        },
        Verb::XenstoreRead => match args {
            [path] => Command::XenstoreRead(path.text.clone()),
            _ => return Err(CommandError::Usage(verb)),
        },
        Verb::XenstoreWrite => match args {
            [path, value] => Command::XenstoreWrite { path: path.text.clone(), value: value.text.clone() },
            _ => return Err(CommandError::Usage(verb)),
        },
        Verb::Exit => none(Command::Exit)?,
        Verb::Create => Command::Create(create_config(args)?),
        Verb::Destroy => Command::Destroy(domain_arg(verb, args)?),
        Verb::Pause => Command::Pause(domain_arg(verb, args)?),
        Verb::Unpause => Command::Unpause(domain_arg(verb, args)?),
        Verb::Shutdown => Command::Shutdown(domain_arg(verb, args)?),
        Verb::Reboot => Command::Reboot(domain_arg(verb, args)?),
        Verb::Console => Command::Console(domain_arg(verb, args)?),
    };
    Ok(Some(command))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Action, DEFAULT_WEIGHT};

    fn error(line: &str) -> String {
        parse(line).unwrap_err().to_string()
    }

    fn created(line: &str) -> DomainConfig {
        match parse(line) {
            Ok(Some(Command::Create(config))) => config,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    #[test]
    fn words_split_at_spaces_outside_quotes() {
        let texts = |line| words(line).unwrap().into_iter().map(|w| w.text).collect::<Vec<_>>();
        assert_eq!(texts("  create\tname=a  cmdline=\"x  y\" "), ["create", "name=a", "cmdline=x  y"]);
        assert_eq!(texts(r#"a"b c"d "\"\\\n""#), ["ab cd", "\"\\\\n"]);
        assert_eq!(texts(""), Vec::<String>::new());
        assert_eq!(words("a \"b").unwrap_err(), CommandError::UnterminatedQuote);
        let w = &words(r#"x="a b""#).unwrap()[0];
        assert_eq!((w.raw, w.quoted), (r#"x="a b""#, true));
    }

    #[test]
    fn scripts_split_at_semicolons_outside_quotes() {
        assert_eq!(
            split_script(r#" list;create name=a cmdline="a;b \";\"" ; ;list;exit "#),
            ["list", r#"create name=a cmdline="a;b \";\"""#, "list", "exit"]
        );
        assert_eq!(split_script(""), Vec::<&str>::new());
        assert_eq!(split_script("exit"), ["exit"]);
    }

    #[test]
    fn commands_without_arguments() {
        assert_eq!(parse("list"), Ok(Some(Command::List)));
        assert_eq!(parse("  help "), Ok(Some(Command::Help)));
        assert_eq!(parse("info"), Ok(Some(Command::Info)));
        assert_eq!(parse("dmesg"), Ok(Some(Command::Dmesg)));
        assert_eq!(parse("exit"), Ok(Some(Command::Exit)));
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("   "), Ok(None));
        assert_eq!(parse("  # list"), Ok(None));
        assert_eq!(error("list all"), "list: usage: list");
    }

    #[test]
    fn domain_arguments() {
        assert_eq!(parse("destroy 7"), Ok(Some(Command::Destroy(DomainRef::Id(7)))));
        assert_eq!(parse("pause web"), Ok(Some(Command::Pause(DomainRef::Name("web".into())))));
        assert_eq!(parse("unpause 0"), Ok(Some(Command::Unpause(DomainRef::Id(0)))));
        assert_eq!(parse("shutdown d3"), Ok(Some(Command::Shutdown(DomainRef::Name("d3".into())))));
        assert_eq!(parse("reboot \"42\""), Ok(Some(Command::Reboot(DomainRef::Name("42".into())))));
        assert_eq!(parse("console 32751"), Ok(Some(Command::Console(DomainRef::Id(32751)))));
        assert_eq!(error("console 32752"), "console: bad domain id '32752' (ids are 0 to 32751)");
        assert_eq!(
            error("destroy 99999999999999999999"),
            "destroy: bad domain id '99999999999999999999' (ids are 0 to 32751)"
        );
        assert_eq!(error("destroy"), "destroy: usage: destroy <id|name>");
        assert_eq!(error("destroy a b"), "destroy: usage: destroy <id|name>");
    }

    #[test]
    fn unknown_commands_and_quotes() {
        assert_eq!(error("lst"), "unknown command 'lst' (try 'help')");
        assert_eq!(error("l\u{1}st -l"), "unknown command 'l\\u{1}st' (try 'help')");
        assert_eq!(error("LIST"), "unknown command 'LIST' (try 'help')");
        assert_eq!(error("create name=\"a"), "unterminated '\"'");
    }

    #[test]
    fn names_resolve_to_ids() {
        let names = [(0, DOM0_NAME), (3, "web"), (5, "d9")];
        let r = |word: &str| match parse(&format!("console {word}")) {
            Ok(Some(Command::Console(d))) => d.resolve(names),
            other => panic!("{other:?}"),
        };
        assert_eq!(r("web"), Some(3));
        assert_eq!(r("Domain-0"), Some(0));
        assert_eq!(r("12"), Some(12), "an id is taken as it is");
        assert_eq!(r("d9"), Some(5), "a name before a d<id>");
        assert_eq!(r("d4"), Some(4));
        assert_eq!(r("d"), None);
        assert_eq!(r("d40000"), None);
        assert_eq!(r("db"), None);
        assert_eq!(r("nope"), None);
        assert_eq!(DomainRef::Name("x'y".into()).to_string(), "named 'x\\'y'");
        assert_eq!(DomainRef::Id(7).to_string(), "7");
    }

    #[test]
    fn create_applies_overrides_on_the_defaults() {
        let config = created(r#"create name=web memory=16 cmdline="sleep ms=5 rounds=3" on_crash=restart weight=512"#);
        assert_eq!(
            config,
            DomainConfig {
                name: "web".into(),
                kernel: DEFAULT_KERNEL.into(),
                memory_mib: 16,
                vcpus: 1,
                cmdline: "sleep ms=5 rounds=3".into(),
                weight: 512,
                cap: 0,
                on_poweroff: Action::Destroy,
                on_reboot: Action::Restart,
                on_crash: Action::Restart,
                disk: None,
            }
        );
        let config = created(r#"create memory=8 name="42" extra=reboot memory=9 cmdline="say \"hi\" \\o/""#);
        assert_eq!((config.name.as_str(), config.memory_mib), ("42", 9));
        assert_eq!(config.cmdline, r#"say "hi" \o/"#);
        assert_eq!(created("create name=a memory=1 cmdline=").cmdline, "");
        assert_eq!(created("create name=a memory=1 kernel=other.elf").kernel, "other.elf");
        assert_eq!(created("create name=a memory=1 cap=-0").cap, 0);
        assert_eq!(DEFAULT_WEIGHT, created("create name=a memory=1").weight);
    }

    #[test]
    fn create_errors_are_the_configurations() {
        assert_eq!(error("create"), format!("create: usage: {}", Verb::Create.usage()));
        assert_eq!(error("create name=a"), "create: missing required key 'memory'");
        assert_eq!(error("create memory=16"), "create: missing required key 'name'");
        assert_eq!(error("create name=a memory"), "create: expected key=value, got 'memory'");
        assert_eq!(
            error("create name=a memory=0"),
            "create: in override 'memory=0': memory must be between 1 and 65536 MiB, got 0"
        );
        assert_eq!(
            error("create name=a memory=\"16\""),
            "create: in override 'memory=\"16\"': memory must be a decimal integer, got the string \"16\""
        );
        assert_eq!(
            error("create name=a memory=016"),
            "create: in override 'memory=016': integer '016' has a leading zero (only decimal is accepted)"
        );
        assert_eq!(
            error("create name=42 memory=1"),
            "create: in override 'name=42': name must be a double-quoted string, got 42"
        );
        assert_eq!(
            error("create name=w@b memory=1"),
            "create: in override 'name=w@b': name contains '@'; only A-Z, a-z, 0-9, '_', '.' and '-' are allowed"
        );
        assert_eq!(
            error("create colour=red name=a memory=1"),
            "create: in override 'colour=red': unknown key 'colour'"
        );
        assert_eq!(error("create name=a memory=1 =3"), "create: in override '=3': expected a key name, found '='");
        assert_eq!(
            error("create name=a memory=1 on_crash=explode"),
            "create: in override 'on_crash=explode': on_crash must be \"destroy\", \"restart\" or \"preserve\", got \"explode\""
        );
        assert_eq!(
            error("create name=a memory=1 cmdline=\"a\u{7}\""),
            "create: in override 'cmdline=\"a\\u{7}\"': control character U+0007 in string"
        );
    }

    #[test]
    fn help_lists_every_command_once_a_line() {
        let text = help();
        assert_eq!(text.lines().count(), Verb::ALL.len());
        for (line, verb) in text.lines().zip(Verb::ALL) {
            assert!(line.starts_with(verb.usage()), "{line}");
            assert!(line.ends_with(verb.about()), "{line}");
            assert_eq!(Verb::from_word(verb.name()), Some(verb));
            assert!(verb.usage().starts_with(verb.name()));
        }
        assert_eq!(Verb::from_word("lst"), None);
    }

    #[test]
    fn every_verb_parses_to_itself() {
        for verb in Verb::ALL {
            let line = match verb {
                Verb::Create => "create name=a memory=1".to_string(),
                Verb::Upload => "upload k.elf 10".to_string(),
                Verb::Mkdisk => "mkdisk d 1".to_string(),
                Verb::XenstoreWrite => "xenstore-write a b".to_string(),
                v if v.usage().contains('<') => format!("{} 1", v.name()),
                v => v.name().to_string(),
            };
            assert_eq!(parse(&line).unwrap().unwrap().verb(), verb);
        }
    }

    #[test]
    fn upload_takes_a_name_and_a_size() {
        assert_eq!(
            parse("upload guest-1.2_x.elf 1048576").unwrap(),
            Some(Command::Upload { name: "guest-1.2_x.elf".into(), size: 1 << 20 })
        );
        assert_eq!(error("upload a"), "upload: usage: upload <name> <bytes>");
        assert_eq!(error("upload a 1 2"), "upload: usage: upload <name> <bytes>");
        for bad in ["ramdisk", "a/b", "\"x y\"", &"n".repeat(65)] {
            assert!(error(&format!("upload {bad} 1")).starts_with("upload: bad image name"), "{bad}");
        }
        for bad in ["0", "-1", "1k", "33554433", "99999999999999999999999"] {
            assert_eq!(error(&format!("upload a {bad}")), format!("upload: bad size '{bad}' (1 to 33554432 bytes)"));
        }
        assert!(image_name_ok(&"n".repeat(64)));
    }

    #[test]
    fn mkdisk_takes_a_name_and_mebibytes() {
        assert_eq!(parse("mkdisk disk0 4").unwrap(), Some(Command::Mkdisk { name: "disk0".into(), mib: 4 }));
        assert_eq!(parse("disks").unwrap(), Some(Command::Disks));
        assert_eq!(error("disks x"), "disks: usage: disks");
        assert_eq!(error("mkdisk a"), "mkdisk: usage: mkdisk <name> <MiB>");
        assert!(error("mkdisk a/b 1").starts_with("mkdisk: bad image name 'a/b'"));
        for bad in ["0", "65", "1M", "-1"] {
            assert_eq!(error(&format!("mkdisk a {bad}")), format!("mkdisk: bad size '{bad}' (1 to 64 MiB)"));
        }
    }

    #[test]
    fn xenstore_commands_take_paths() {
        assert_eq!(parse("xenstore-ls"), Ok(Some(Command::XenstoreLs(None))));
        assert_eq!(parse("xenstore-ls /local/domain"), Ok(Some(Command::XenstoreLs(Some("/local/domain".into())))));
        assert_eq!(parse("xenstore-read /a/b"), Ok(Some(Command::XenstoreRead("/a/b".into()))));
        assert_eq!(
            parse("xenstore-write /a \"x y\""),
            Ok(Some(Command::XenstoreWrite { path: "/a".into(), value: "x y".into() }))
        );
        assert_eq!(error("xenstore-ls a b"), "xenstore-ls: usage: xenstore-ls [<path>]");
        assert_eq!(error("xenstore-read"), "xenstore-read: usage: xenstore-read <path>");
        assert_eq!(error("xenstore-write /a"), "xenstore-write: usage: xenstore-write <path> <value>");
    }
}
