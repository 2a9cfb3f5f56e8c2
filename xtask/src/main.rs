//! `cargo xtask`: build the images, boot them in QEMU, and run every test.
//!
//! ```text
//! cargo xtask run     build everything and boot it in QEMU (Ctrl-A X quits)
//! cargo xtask test    build everything and run every test (host and QEMU)
//! cargo xtask build   build the images into target/images/
//! cargo xtask lint    rustfmt and clippy, for the host and the bare-metal target
//! cargo xtask bench   the guest's benchmarks on real Xen 4.17 and on hv, under -icount
//! cargo xtask setup   install what the above need (QEMU >= 8, libxen-dev, the Rust target)
//! ```

mod bench;
mod setup;

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Bare-metal target of the hypervisor and guest kernels.
const BARE_TARGET: &str = "x86_64-unknown-none";

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, boot and test the hypervisor", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the images and boot the hypervisor in QEMU on this terminal.
    Run(RunArgs),
    /// Build the images and run every test: lints, host tests, QEMU tests.
    Test {
        /// Skip rustfmt and clippy.
        #[arg(long)]
        no_lint: bool,
        /// Only run tests whose name contains this.
        filter: Option<String>,
    },
    /// Build the images into target/images/.
    Build {
        /// Build without optimizations.
        #[arg(long)]
        debug: bool,
    },
    /// Check formatting and run clippy with warnings as errors.
    Lint,
    /// Install what the other commands need, saying what it installs.
    Setup,
    /// Boot the guest kernel's benchmarks on real Xen 4.17 and on hv under
    /// -icount; write a table and target/bench/report.{json,md}.
    Bench,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Hypervisor command line (e.g. "loglvl=debug").
    #[arg(long, default_value = "")]
    cmdline: String,
    /// A multiboot module: "FILE [ARGS]"; repeat for more. The first is
    /// dom0. Without any, dom0 is the guest kernel's shell, with the guest
    /// kernel as its ramdisk (the image `create` builds) and a demo domain.
    #[arg(long = "module", value_name = "FILE [ARGS]")]
    modules: Vec<String>,
    /// Where the control port (the second serial line, which dom0's shell
    /// serves for `hvctl --socket PATH`) listens, as a Unix socket.
    #[arg(long, value_name = "PATH", default_value = "target/hv-control.sock", conflicts_with = "batch")]
    socket: PathBuf,
    /// Run these dom0 shell commands (separated by ';') instead of an
    /// interactive shell, print the output, and exit with their status.
    #[arg(long, value_name = "COMMANDS", conflicts_with_all = ["modules", "no_dom0"])]
    batch: Option<String>,
    /// Boot the hypervisor alone, with no dom0.
    #[arg(long, conflicts_with = "modules")]
    no_dom0: bool,
    /// Guest RAM in MiB.
    #[arg(long, default_value_t = 1024)]
    memory: u32,
    /// Build without optimizations.
    #[arg(long)]
    debug: bool,
    /// Extra QEMU arguments, after `--`.
    #[arg(last = true)]
    qemu_args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Run(args) => run(args),
        Cmd::Test { no_lint, filter } => test(no_lint, filter.as_deref()),
        Cmd::Build { debug } => setup::ensure(&[setup::Need::RustTarget]).and_then(|()| build(!debug).map(|_| ())),
        Cmd::Lint => setup::ensure(&[setup::Need::RustTarget]).and_then(|()| lint()),
        Cmd::Setup => setup::ensure(setup::Need::ALL),
        Cmd::Bench => bench::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Message(m)) => {
            eprintln!("xtask: {m}");
            ExitCode::FAILURE
        }
        Err(Failure::Status(code)) => ExitCode::from(code),
    }
}

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// Something went wrong: one line saying what.
    Message(String),
    /// A child (QEMU) exited with this status, passed through.
    Status(u8),
}

impl From<String> for Failure {
    fn from(m: String) -> Self {
        Failure::Message(m)
    }
}

type Result<T = ()> = std::result::Result<T, Failure>;

fn root() -> PathBuf {
    hvtest::workspace_root()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

/// Runs `cmd`, failing with one line naming `what` if it does not succeed.
fn status(mut cmd: Command, what: &str) -> Result {
    let s = cmd.status().map_err(|e| format!("{what}: cannot start: {e}"))?;
    if s.success() {
        Ok(())
    } else {
        Err(Failure::Message(format!("{what} failed ({s})")))
    }
}

/// The bare-metal images: (cargo package, binary, image file name).
const IMAGES: &[(&str, &str, &str)] = &[
    ("hv", "hv", "hv.elf"),
    ("guest-kernel", "guest-kernel", "guest-kernel.elf"),
    ("minimal-guest", "minimal-guest", "minimal-guest.elf"),
];

/// Builds every bare-metal image and copies it to target/images/.
fn build(release: bool) -> Result<Vec<PathBuf>> {
    let mut cmd = cargo();
    cmd.args(["build", "--target", BARE_TARGET]);
    if release {
        cmd.arg("--release");
    }
    for (package, bin, _) in IMAGES {
        cmd.args(["-p", package, "--bin", bin]);
    }
    status(cmd, "building the images")?;
    let profile = if release { "release" } else { "debug" };
    let out = hvtest::images_dir();
    std::fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let mut built = Vec::new();
    for (_, bin, image) in IMAGES {
        let from = root().join("target").join(BARE_TARGET).join(profile).join(bin);
        let to = out.join(image);
        std::fs::copy(&from, &to).map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))?;
        built.push(to);
    }
    Ok(built)
}

fn run(args: RunArgs) -> Result {
    setup::ensure(&[setup::Need::RustTarget, setup::Need::Qemu])?;
    build(!args.debug)?;
    let guest = hvtest::images_dir().join("guest-kernel.elf").display().to_string();
    if let Some(commands) = &args.batch {
        return run_batch(&args, &guest, commands);
    }
    let mut q = hvtest::Qemu::hypervisor()?.memory_mib(args.memory).cmdline(&args.cmdline);
    let default_modules = [format!("{guest} shell -- {DEMO_COMMANDS}"), guest.clone()];
    let modules: &[String] = match (&args.modules[..], args.no_dom0) {
        (_, true) => &[],
        ([], false) => &default_modules,
        (given, false) => given,
    };
    for m in modules {
        let (file, rest) = m.split_once(' ').unwrap_or((m, ""));
        if !Path::new(file).is_file() {
            return Err(Failure::Message(format!("module '{file}' is not a file")));
        }
        q = q.module(Path::new(file), rest);
    }
    q = q.args(args.qemu_args);
    let mut qemu_args = q.base_args()?;
    let path = &args.socket;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("--socket {}: {e}", path.display()))?;
    }
    let _ = std::fs::remove_file(path);
    // COM1: the console, here; COM2: the control port, on the socket.
    qemu_args.extend(["-serial", "mon:stdio"].map(String::from));
    qemu_args.extend(["-serial".into(), format!("unix:{},server=on,wait=off", path.display())]);
    eprintln!("xtask: booting target/images/hv.elf in QEMU ({} MiB); Ctrl-A X quits", args.memory);
    if args.modules.is_empty() && !args.no_dom0 {
        eprintln!("xtask: dom0 is a shell: type 'help' at the 'dom0>' prompt ('list', 'create name=web memory=16 cmdline=\"spin until_ms=60000\"', 'console web', 'destroy web')");
        eprintln!("xtask: from another terminal, hvctl drives the same shell over the control port:");
        eprintln!("xtask:   cargo run -p hvctl -- --socket {0} list", path.display());
        eprintln!("xtask:   cargo run -p hvctl -- --socket {0} create --kernel target/images/minimal-guest.elf name=mini memory=8", path.display());
        eprintln!("xtask: or run commands without a prompt: cargo xtask run --batch \"list; info\"");
    }
    let s = Command::new(hvtest::QEMU)
        .args(&qemu_args)
        .status()
        .map_err(|e| format!("cannot start {}: {e}", hvtest::QEMU))?;
    qemu_status(s.code())
}

/// What the default dom0 shell runs first: a demo domain to look at.
const DEMO_COMMANDS: &str = "create name=demo memory=16 cmdline=\"sleep ms=1000 rounds=100000\"; list";

/// `cargo xtask run --batch`: boots dom0's shell with `commands` then
/// `exit`, shows what it printed, and succeeds only if every command did
/// (the shell's `dom0: exit status=N` line).
fn run_batch(args: &RunArgs, guest: &str, commands: &str) -> Result {
    if commands.contains(',') {
        return Err(Failure::Message(
            "--batch: commands cannot contain ',' (QEMU's -initrd separates modules with it)".into(),
        ));
    }
    let script = format!("{}; exit", commands.trim().trim_end_matches(';'));
    // The hypervisor keeps 1024 bytes of a module string: the image's
    // path, `shell -- `, then the script.
    let room = hv::multiboot::MAX_MODULE_STRING.saturating_sub(guest.len() + " shell -- ".len() + 1);
    if script.len() > room {
        return Err(Failure::Message(format!(
            "--batch: the commands are {} bytes; at most {} fit in dom0's module string (shorten them or run the shell interactively)",
            script.len(),
            room
        )));
    }
    let q = hvtest::Qemu::hypervisor()?
        .memory_mib(args.memory)
        .cmdline(&args.cmdline)
        .module(Path::new(guest), &format!("shell -- {script}"))
        .module(Path::new(guest), "")
        .args(args.qemu_args.clone());
    let o = q.run(std::time::Duration::from_secs(600))?;
    print!("{}", o.serial);
    let status =
        o.serial.lines().find_map(|l| l.strip_prefix("dom0: exit status=")).and_then(|n| n.trim().parse::<u32>().ok());
    match (status, o.exit()) {
        (Some(0), Some(hv::exit::Exit::PowerOff)) => Ok(()),
        (Some(n), _) => {
            eprintln!("xtask: {n} command(s) failed");
            Err(Failure::Status(1))
        }
        (None, _) => {
            eprintln!("xtask: the shell did not finish ({:?})", o.ending);
            Err(Failure::Status(1))
        }
    }
}

fn qemu_status(code: Option<i32>) -> Result {
    match code {
        Some(0) => Ok(()),
        Some(code) => {
            let how = hv::exit::Exit::from_qemu_status(code).map_or("QEMU failed", |e| e.describe());
            eprintln!("xtask: QEMU exited with status {code} ({how})");
            Err(Failure::Status(u8::try_from(code).unwrap_or(1)))
        }
        None => Err(Failure::Message("QEMU was killed by a signal".into())),
    }
}

fn lint() -> Result {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    status(fmt, "cargo fmt --check (run `cargo fmt --all`)")?;
    let mut host = cargo();
    host.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    status(host, "clippy (host)")?;
    let mut bare = cargo();
    bare.args(["clippy", "--target", BARE_TARGET]);
    for (package, bin, _) in IMAGES {
        bare.args(["-p", package, "--bin", bin]);
    }
    bare.args(["--", "-D", "warnings"]);
    status(bare, "clippy (bare-metal images)")
}

fn test(no_lint: bool, filter: Option<&str>) -> Result {
    setup::ensure(setup::Need::ALL)?;
    if !no_lint {
        eprintln!("xtask: lint");
        lint()?;
    }
    eprintln!("xtask: building the images");
    build(true)?;
    eprintln!("xtask: host and QEMU tests");
    let mut t = cargo();
    t.args(["test", "--workspace", "--no-fail-fast"]);
    if let Some(f) = filter {
        t.args(["--", f]);
    }
    run_tests(t)
}

/// Runs `cargo test`, passing its output through, and closes with one
/// summary line over every test binary: `tests: N passed, M failed`.
fn run_tests(mut cmd: Command) -> Result {
    use std::io::{BufRead, BufReader};
    let mut child =
        cmd.stdout(std::process::Stdio::piped()).spawn().map_err(|e| format!("cargo test: cannot start: {e}"))?;
    let (mut passed, mut failed) = (0u64, 0u64);
    let stdout = child.stdout.take().expect("piped stdout");
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading cargo test output: {e}"))?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            passed += count(rest, " passed");
            failed += count(rest, " failed");
        }
    }
    let status = child.wait().map_err(|e| format!("waiting for cargo test: {e}"))?;
    println!("tests: {passed} passed, {failed} failed");
    if status.success() && failed == 0 {
        Ok(())
    } else {
        Err(Failure::Message(format!("cargo test --workspace failed ({status})")))
    }
}

/// The number before `label` in a `test result:` line ("ok. 31 passed; 0 failed; ...").
fn count(summary: &str, label: &str) -> u64 {
    summary
        .split(';')
        .find_map(|part| {
            part.trim().trim_start_matches("ok. ").trim_start_matches("FAILED. ").strip_suffix(label.trim())
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}
