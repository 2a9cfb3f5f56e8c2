//! `hvctl`: the dom0 shell's commands from the host, over its control port.
//!
//! ```text
//! cargo xtask run --socket /tmp/hv.sock        # in one terminal
//! cargo run -p hvctl -- --socket /tmp/hv.sock list
//! cargo run -p hvctl -- --socket /tmp/hv.sock --json list
//! cargo run -p hvctl -- --socket /tmp/hv.sock create name=web memory=16 'cmdline="spin until_ms=60000"'
//! cargo run -p hvctl -- --socket /tmp/hv.sock create --kernel my-kernel.elf name=mine memory=32
//! cargo run -p hvctl -- --socket /tmp/hv.sock create --disk disk.img name=db memory=16 'cmdline="blk seed=1"'
//! cargo run -p hvctl -- --socket /tmp/hv.sock console web   # Ctrl-] Enter, or Ctrl-D, detaches
//! ```
//!
//! Each invocation sends one shell command and prints its reply; the exit
//! status is 0 if the command succeeded, 1 if the shell reported an
//! error, 2 if the shell could not be reached or the arguments were bad.
//! `create --kernel FILE` first uploads FILE (as its file name, with a
//! progress bar on a terminal), then creates the domain from it;
//! `--disk FILE` likewise uploads a disk image and gives it to the domain
//! as `disk=<file name>` (the shell makes a disk of it the first time that
//! name is used; later domains given the name share what was written).

use clap::Parser;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Runs one dom0 shell command on a running system and prints the reply.
#[derive(Parser)]
#[command(name = "hvctl", version)]
struct Cli {
    /// The control port's socket (`cargo xtask run --socket PATH`).
    #[arg(long, default_value = "target/hv-control.sock")]
    socket: PathBuf,
    /// Print the reply as JSON (`list`: an array of domains).
    #[arg(long)]
    json: bool,
    /// Seconds to wait for a reply (an upload waits this long per chunk).
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// The shell command and its arguments: list, create [--kernel FILE]
    /// [--disk FILE] KEY=VALUE..., disks, mkdisk NAME MIB, destroy ID, pause ID, unpause ID, shutdown ID,
    /// reboot ID, console ID, info, dmesg, images, help.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hvctl: {e}");
            ExitCode::from(2)
        }
    }
}

/// The files `create` uploads first: `(--kernel, --disk)`.
type Uploads = [Option<PathBuf>; 2];

/// `create --kernel FILE --disk FILE rest...`: the files and the rest.
fn split_uploads(words: &[String]) -> Result<(Uploads, Vec<String>), String> {
    let mut files: Uploads = [None, None];
    let mut rest = Vec::new();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let slot = UPLOAD_FLAGS.iter().position(|(flag, _)| w == flag || w.starts_with(&format!("{flag}=")));
        let Some(slot) = slot else {
            rest.push(w.clone());
            continue;
        };
        let flag = UPLOAD_FLAGS[slot].0;
        let file = match w.strip_prefix(&format!("{flag}=")) {
            Some(file) => file,
            None => it.next().ok_or_else(|| format!("create: {flag} needs a file"))?,
        };
        files[slot] = Some(PathBuf::from(file));
    }
    Ok((files, rest))
}

/// `create`'s upload flags and the key each sets.
const UPLOAD_FLAGS: [(&str, &str); 2] = [("--kernel", "kernel"), ("--disk", "disk")];

fn run(cli: &Cli) -> Result<ExitCode, String> {
    let timeout = Duration::from_secs(cli.timeout);
    let verb = cli.command[0].as_str();
    if verb == "exit" {
        return Err("'exit' would power the machine off; use it from the console itself".into());
    }
    if verb == "upload" {
        return Err("upload images with 'create --kernel FILE ...'".into());
    }
    let mut words = cli.command.clone();
    let mut images = Vec::new();
    if verb == "create" {
        let (files, rest) = split_uploads(&words[1..])?;
        words = std::iter::once("create".to_string()).chain(rest).collect();
        for ((flag, key), path) in UPLOAD_FLAGS.into_iter().zip(files) {
            let Some(path) = path else { continue };
            let bytes = std::fs::read(&path).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
            let name = hvctl::image_name(&path);
            if words.iter().any(|w| w.starts_with(&format!("{key}="))) {
                return Err(format!("create: give the {key} either as {flag} FILE or as {key}=NAME, not both"));
            }
            words.push(format!("{key}={name}"));
            images.push((name, bytes));
        }
    }
    let socket = cli.socket.display();
    let mut session = hvctl::Session::connect(&cli.socket, timeout).map_err(|e| format!("{socket}: {e}"))?;
    for (name, bytes) in images {
        let bar = std::io::stderr().is_terminal();
        let total = bytes.len();
        let reply = session
            .upload(&name, &bytes, timeout, &mut |done| {
                if bar {
                    eprint!("\r{}", hvctl::progress_bar(&name, done, total));
                }
            })
            .map_err(|e| format!("{socket}: {e}"))?;
        if bar {
            eprintln!();
        }
        if reply.status != 0 {
            return Ok(report(cli, "upload", &reply));
        }
        if !cli.json {
            for l in &reply.lines {
                println!("{l}");
            }
        }
    }
    if verb == "console" && words.len() == 2 && !cli.json {
        let status = session
            .attach(&words[1], std::io::stdin(), &mut std::io::stdout())
            .map_err(|e| format!("{socket}: {e}"))?;
        return Ok(if status == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    let line = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
    let reply = session.run(&line, timeout).map_err(|e| format!("{socket}: {e}"))?;
    Ok(report(cli, &line, &reply))
}

/// Prints a reply (as JSON with `--json`); the exit status it means.
fn report(cli: &Cli, line: &str, reply: &hvctl::Reply) -> ExitCode {
    if cli.json {
        println!("{}", hvctl::to_json(line, reply));
    } else {
        for l in &reply.lines {
            println!("{l}");
        }
    }
    if reply.status == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// A word as the shell reads it back: `key=value` with spaces or quotes
/// in the value gets the value quoted (the shell's own quoting, which the
/// host shell took off).
fn quote(word: &str) -> String {
    let needs = |s: &str| s.is_empty() || s.contains([' ', '\t', '"', ';']);
    match word.split_once('=') {
        _ if word.starts_with('"') => word.to_string(),
        Some((key, value)) if needs(value) && !value.starts_with('"') => {
            format!("{key}=\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
        }
        None if needs(word) => format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\"")),
        _ => word.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn create_takes_a_kernel_and_a_disk_to_upload() {
        let ([kernel, disk], rest) = split_uploads(&words("--kernel k.elf name=a --disk=d.img memory=8")).unwrap();
        assert_eq!(kernel, Some(PathBuf::from("k.elf")));
        assert_eq!(disk, Some(PathBuf::from("d.img")));
        assert_eq!(rest, words("name=a memory=8"));
        let ([kernel, disk], rest) = split_uploads(&words("name=a")).unwrap();
        assert_eq!((kernel, disk, rest), (None, None, words("name=a")));
        assert_eq!(split_uploads(&words("name=a --disk")).unwrap_err(), "create: --disk needs a file");
    }
}
