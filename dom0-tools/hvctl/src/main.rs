//! `hvctl`: the dom0 shell's commands from the host, over its control port.
//!
//! ```text
//! cargo xtask run --socket /tmp/hv.sock        # in one terminal
//! cargo run -p hvctl -- --socket /tmp/hv.sock list
//! cargo run -p hvctl -- --socket /tmp/hv.sock --json list
//! cargo run -p hvctl -- --socket /tmp/hv.sock create name=web memory=16 'cmdline="spin until_ms=60000"'
//! cargo run -p hvctl -- --socket /tmp/hv.sock create --kernel my-kernel.elf name=mine memory=32
//! cargo run -p hvctl -- --socket /tmp/hv.sock console web   # Ctrl-] Enter, or Ctrl-D, detaches
//! ```
//!
//! Each invocation sends one shell command and prints its reply; the exit
//! status is 0 if the command succeeded, 1 if the shell reported an
//! error, 2 if the shell could not be reached or the arguments were bad.
//! `create --kernel FILE` first uploads FILE (as its file name, with a
//! progress bar on a terminal), then creates the domain from it.

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
    /// KEY=VALUE..., destroy ID, pause ID, unpause ID, shutdown ID,
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

/// `create --kernel FILE rest...`: the file and the rest.
fn split_kernel(words: &[String]) -> Result<(Option<PathBuf>, Vec<String>), String> {
    let mut kernel = None;
    let mut rest = Vec::new();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if w == "--kernel" {
            let file = it.next().ok_or("create: --kernel needs a file")?;
            kernel = Some(PathBuf::from(file));
        } else if let Some(file) = w.strip_prefix("--kernel=") {
            kernel = Some(PathBuf::from(file));
        } else {
            rest.push(w.clone());
        }
    }
    Ok((kernel, rest))
}

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
    let mut image = None;
    if verb == "create" {
        let (kernel, rest) = split_kernel(&words[1..])?;
        if let Some(path) = kernel {
            let bytes = std::fs::read(&path).map_err(|e| format!("--kernel {}: {e}", path.display()))?;
            let name = hvctl::image_name(&path);
            if rest.iter().any(|w| w.starts_with("kernel=")) {
                return Err("create: give the kernel either as --kernel FILE or as kernel=NAME, not both".into());
            }
            words = std::iter::once("create".to_string()).chain(rest).collect();
            words.push(format!("kernel={name}"));
            image = Some((name, bytes));
        }
    }
    let socket = cli.socket.display();
    let mut session = hvctl::Session::connect(&cli.socket, timeout).map_err(|e| format!("{socket}: {e}"))?;
    if let Some((name, bytes)) = image {
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
