//! Installs what the build and the tests need, on Debian 12 or newer.
//!
//! Each missing piece is named in one line before it is installed; when it
//! cannot be installed (not root, no apt-get, a failed download) the command
//! stops with one line saying what is missing and how to get it.

use crate::{Failure, Result};
use std::path::Path;
use std::process::{Command, Stdio};

/// Something a command needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The `x86_64-unknown-none` standard library for this toolchain.
    RustTarget,
    /// `qemu-system-x86_64`, version 8 or newer.
    Qemu,
    /// Xen's public headers (`libxen-dev`), the layout oracle for `abi`.
    XenHeaders,
    /// A C compiler, for the layout oracle.
    CCompiler,
    /// Real Xen 4.17 (Debian's `xen-hypervisor-4.17-amd64`, downloaded and
    /// unpacked into `target/xen-cache/`, not installed), the reference the
    /// guest kernel is checked and benchmarked against.
    RealXen,
}

impl Need {
    /// Everything `cargo xtask test` needs.
    pub const ALL: &'static [Need] = &[Need::RustTarget, Need::Qemu, Need::XenHeaders, Need::CCompiler, Need::RealXen];
}

/// The oldest QEMU we accept: 7.2 reports wrong `#GP` error codes for
/// `int $N` in long mode.
const MIN_QEMU_MAJOR: u32 = 8;

/// Makes sure every need is met, installing what is missing.
pub fn ensure(needs: &[Need]) -> Result {
    let mut apt = Apt::default();
    for need in needs {
        match need {
            Need::RustTarget => ensure_rust_target()?,
            Need::Qemu => match qemu_major() {
                Some(v) if v >= MIN_QEMU_MAJOR => {}
                found => {
                    let found = found.map_or("none found".to_string(), |v| format!("found {v}.x"));
                    apt.install_qemu(&found)?;
                    match qemu_major() {
                        Some(v) if v >= MIN_QEMU_MAJOR => {}
                        _ => {
                            return Err(msg("installed qemu-system-x86, but qemu-system-x86_64 is still older than 8"))
                        }
                    }
                }
            },
            Need::XenHeaders => {
                if !Path::new("/usr/include/xen/xen.h").is_file() {
                    apt.install(&["libxen-dev"], "Xen 4.17's public headers, the layout oracle for abi")?;
                }
            }
            Need::CCompiler => {
                if !works(Command::new("cc").arg("--version")) {
                    apt.install(&["gcc", "libc6-dev"], "a C compiler for the ABI layout test")?;
                }
            }
            Need::RealXen => {
                if hvtest::xen::xen_image().is_err() {
                    fetch_real_xen(&mut apt)?;
                }
            }
        }
    }
    Ok(())
}

fn msg(m: impl Into<String>) -> Failure {
    Failure::Message(m.into())
}

fn works(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ensure_rust_target() -> Result {
    let libdir = output(Command::new("rustc").args(["--print", "target-libdir", "--target", crate::BARE_TARGET]))
        .map(|s| s.trim().to_string());
    let installed = libdir.as_deref().is_some_and(|d| {
        std::fs::read_dir(d)
            .is_ok_and(|mut it| it.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libcore"))))
    });
    if installed {
        return Ok(());
    }
    eprintln!("xtask: installing the Rust target {} (rustup target add)", crate::BARE_TARGET);
    if !works(Command::new("rustup").args(["target", "add", crate::BARE_TARGET])) {
        return Err(msg(format!(
            "cannot install the Rust target {0}: run `rustup target add {0}` (rustup is needed)",
            crate::BARE_TARGET
        )));
    }
    Ok(())
}

/// The major version of `qemu-system-x86_64`, if it runs.
fn qemu_major() -> Option<u32> {
    let out = output(Command::new(hvtest::QEMU).arg("--version"))?;
    // "QEMU emulator version 10.0.2 (Debian ...)"
    let version = out.split_whitespace().skip_while(|w| *w != "version").nth(1)?;
    version.split('.').next()?.parse().ok()
}

/// Debian's release codename, from /etc/os-release.
fn debian_codename() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines().find_map(|l| l.strip_prefix("VERSION_CODENAME=")).map(|s| s.trim_matches('"').to_string())
}

/// apt-get, run at most one `update` per xtask invocation.
#[derive(Default)]
struct Apt {
    updated: bool,
}

const BACKPORTS_LIST: &str = "/etc/apt/sources.list.d/hv-bookworm-backports.list";

impl Apt {
    fn check_can_install(&self, packages: &[&str], why: &str) -> Result {
        let what = packages.join(" ");
        if !works(Command::new("apt-get").arg("--version")) {
            return Err(msg(format!("{why} is missing and there is no apt-get to install {what}: install it by hand")));
        }
        let uid = output(Command::new("id").arg("-u")).map(|s| s.trim().to_string());
        if uid.as_deref() != Some("0") {
            return Err(msg(format!(
                "{why} is missing; installing {what} needs root: run `sudo apt-get install {what}`"
            )));
        }
        Ok(())
    }

    fn run(&mut self, args: &[&str], what: &str) -> Result {
        let log = crate::root().join("target").join("xtask-apt.log");
        if let Some(dir) = log.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| msg(format!("opening {}: {e}", log.display())))?;
        let err = file.try_clone().map_err(|e| msg(e.to_string()))?;
        let ok = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Ok(())
        } else {
            Err(msg(format!("{what} failed; apt-get's output is in {}", log.display())))
        }
    }

    fn update(&mut self) -> Result {
        if !self.updated {
            self.run(&["update", "-q"], "apt-get update")?;
            self.updated = true;
        }
        Ok(())
    }

    fn install(&mut self, packages: &[&str], why: &str) -> Result {
        self.check_can_install(packages, why)?;
        eprintln!("xtask: installing {} ({why})", packages.join(" "));
        self.update()?;
        let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
        args.extend_from_slice(packages);
        self.run(&args, &format!("apt-get install {}", packages.join(" ")))
    }

    /// QEMU >= 8: Debian 12 ships 7.2, so take it from bookworm-backports
    /// there; newer releases ship a new enough one.
    fn install_qemu(&mut self, found: &str) -> Result {
        let why = format!("QEMU {MIN_QEMU_MAJOR} or newer; {found}");
        self.check_can_install(&["qemu-system-x86"], &why)?;
        if debian_codename().as_deref() != Some("bookworm") {
            return self.install(&["qemu-system-x86"], &why);
        }
        eprintln!("xtask: installing qemu-system-x86 from bookworm-backports ({why})");
        if !has_backports() {
            std::fs::write(BACKPORTS_LIST, "deb http://deb.debian.org/debian bookworm-backports main\n")
                .map_err(|e| msg(format!("adding bookworm-backports to apt's sources: {e}")))?;
            self.updated = false;
        }
        self.update()?;
        self.run(
            &["install", "-y", "-q", "--no-install-recommends", "-t", "bookworm-backports", "qemu-system-x86"],
            "apt-get install -t bookworm-backports qemu-system-x86",
        )
    }
}

/// Whether apt's sources already name bookworm-backports.
fn has_backports() -> bool {
    let mut files = vec![Path::new("/etc/apt/sources.list").to_path_buf()];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(dir.flatten().map(|e| e.path()));
    }
    files.iter().any(|f| {
        std::fs::read_to_string(f)
            .is_ok_and(|t| t.lines().any(|l| !l.trim_start().starts_with('#') && l.contains("bookworm-backports")))
    })
}

/// Downloads Debian's Xen 4.17 hypervisor package (`apt-get download`, no
/// install), unpacks it (`dpkg -x`) and gunzips the hypervisor into
/// `target/xen-cache/`.
fn fetch_real_xen(apt: &mut Apt) -> Result {
    let pkg = hvtest::xen::XEN_PACKAGE;
    let cache = hvtest::xen::cache_dir();
    let image = cache.join(hvtest::xen::XEN_IMAGE);
    eprintln!("xtask: fetching real Xen 4.17 for the cross-check tests: {pkg} (apt-get download, unpacked into target/xen-cache/, not installed)");
    let missing =
        |tool: &str| msg(format!("fetching {pkg} needs {tool}; or put a gunzipped Xen 4.17 at {}", image.display()));
    if !works(Command::new("apt-get").arg("--version")) {
        return Err(missing("apt-get"));
    }
    let work = cache.join("download");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| msg(format!("creating {}: {e}", work.display())))?;
    let download = || works(Command::new("apt-get").args(["download", "-q", pkg]).current_dir(&work));
    // The package lists may be missing or stale: update once and retry.
    if !download() && (apt.update().is_err() || !download()) {
        return Err(msg(format!(
            "apt-get download {pkg} failed: it needs Debian 12 (bookworm) package lists (`apt-get update` as root)"
        )));
    }
    let deb = std::fs::read_dir(&work)
        .ok()
        .and_then(|d| d.flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "deb")))
        .ok_or_else(|| msg(format!("apt-get download {pkg} left no .deb in {}", work.display())))?;
    let unpacked = work.join("root");
    if !works(Command::new("dpkg").arg("-x").arg(&deb).arg(&unpacked)) {
        return Err(missing("dpkg (dpkg -x failed)"));
    }
    let gz = unpacked.join("boot").join(format!("{}.gz", hvtest::xen::XEN_IMAGE));
    let out = Command::new("gzip").arg("-dc").arg(&gz).stderr(Stdio::null()).output().map_err(|_| missing("gzip"))?;
    if !out.status.success() || out.stdout.is_empty() {
        return Err(msg(format!("cannot gunzip {} from {pkg}", gz.display())));
    }
    let tmp = image.with_extension("tmp");
    std::fs::write(&tmp, &out.stdout)
        .and_then(|()| std::fs::rename(&tmp, &image))
        .map_err(|e| msg(format!("writing {}: {e}", image.display())))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
