//! `hvctl`: the dom0 shell's commands from the host.
//!
//! ```text
//! cargo xtask run --socket /tmp/hv.sock        # in one terminal
//! cargo run -p hvctl -- --socket /tmp/hv.sock list
//! cargo run -p hvctl -- --socket /tmp/hv.sock --json list
//! cargo run -p hvctl -- --socket /tmp/hv.sock create name=web memory=16 'cmdline="spin until_ms=60000"'
//! ```
//!
//! Each invocation sends one shell command and prints its reply; the exit
//! status is 0 unless the shell answered with an `error:` line or could
//! not be reached.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Runs one dom0 shell command on a running system and prints the reply.
#[derive(Parser)]
#[command(name = "hvctl", version)]
struct Cli {
    /// The console socket `cargo xtask run --socket PATH` opened.
    #[arg(long, default_value = "target/hv-console.sock")]
    socket: PathBuf,
    /// Print the reply as JSON (`list`: an array of domains).
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the reply (`console` waits for the domain to end).
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// The shell command and its arguments: list, create KEY=VALUE...,
    /// destroy ID, pause ID, unpause ID, shutdown ID, reboot ID, console ID,
    /// info, dmesg, help.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let line = cli.command.join(" ");
    if line.trim() == "exit" {
        eprintln!("hvctl: 'exit' would power the machine off; use it from the console itself");
        return ExitCode::from(2);
    }
    let timeout = Duration::from_secs(cli.timeout);
    let reply = hvctl::Session::connect(&cli.socket, timeout).and_then(|mut s| s.run(&line, timeout));
    match reply {
        Ok(reply) => {
            if cli.json {
                println!("{}", hvctl::to_json(&line, &reply));
            } else {
                for l in &reply {
                    println!("{l}");
                }
            }
            if hvctl::failed(&reply) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("hvctl: {}: {e}", cli.socket.display());
            ExitCode::from(2)
        }
    }
}
