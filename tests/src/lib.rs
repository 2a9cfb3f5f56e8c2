//! The QEMU harness: locate the built images, boot them with a timeout, and
//! read what they print on the serial port.
//!
//! `cargo xtask run` and the integration tests in `tests/tests/` boot
//! through the same [`Qemu`] builder, so what a test checks is what a
//! person runs. Tests decide by QEMU's exit status (see [`hv::exit::Exit`])
//! and by structured serial lines, never by timing.

use hv::exit::Exit;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod xen;

/// Every check the guest kernel's selftest runs, in order. Tests on both
/// hypervisors require each by name (`TEST <name> ok`), so the selftest
/// cannot lose a check unnoticed, and the two lists cannot drift apart.
pub const SELFTEST_CHECKS: &[&str] = &[
    "start_info",
    "hypercall_page",
    "raw_syscall",
    "console_write",
    "console_read",
    "bad_pointers_efault",
    "xen_version",
    "extraversion",
    "capabilities",
    "platform_parameters",
    "get_features",
    "pagesize",
    "sched_yield",
    "trap_table",
    "callbacks",
    "stack_switch",
    "segment_base",
    "shared_info",
    "time",
    "trap_ud",
    "trap_bp",
    "trap_de",
    "trap_gp",
    "trap_pf",
    "int_dpl3_direct",
    "int_dpl0_gp",
    "bounce_frame",
    "iret_registers",
    "m2p",
    "read_cr2",
    "read_cr3",
    "cpuid_forced",
    "lgdt_gp",
    "mov_cr0_gp",
    "wrmsr_gp",
    "mm_init",
    "map_unmap",
    "protect",
    "pin_new_tree",
    "m2p_read",
    "mmu_update_done",
    "long_batch",
    "decrease_increase",
    "heap",
    "user_syscall",
    "user_fault",
    "frames_returned",
    "events_init",
    "pvclock_monotonic",
    "evtchn_loopback",
    "upcall_frame",
    "evtchn_status",
    "evtchn_ipi",
    "evtchn_mask_unmask",
    "evtchn_close_send",
    "evtchn_bad_ports",
    "evtchn_bind_virq_errors",
    "evtchn_interdomain_errors",
    "evtchn_bind_vcpu",
    "virq_timer",
    "singleshot_timer",
    "sched_poll",
    "sched_block_wakes",
    "threads",
    "pingpong_loopback",
    "register_vcpu_info",
    "evtchn_reset",
    "grant_setup",
    "grant_map_rw",
    "grant_map_ro",
    "grant_copy",
    "grant_errors",
    "grant_batch_efault",
    "shutdown_code",
];

/// The QEMU binary we drive.
pub const QEMU: &str = "qemu-system-x86_64";

/// Where `cargo xtask` puts the bootable images.
pub fn images_dir() -> PathBuf {
    workspace_root().join("target").join("images")
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The path of image `name` (e.g. `hv.elf`), or an error saying how to
/// build it.
pub fn image(name: &str) -> Result<PathBuf, String> {
    let path = images_dir().join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{} is missing: build the images with `cargo xtask test` (or `cargo xtask build`)", path.display()))
    }
}

/// The number a structured line gives for `key` (`12` for `requests` in
/// `BLK write ok requests=12 ...`): the first `key=<u64>` word.
pub fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// Boots the hypervisor with dom0's shell running `script` (commands
/// separated by `;`, as after `shell --`), the guest kernel as the image
/// `create` builds from, in 512 MiB; its outcome. Panics if it cannot run.
pub fn shell_session(script: &str, timeout: std::time::Duration) -> Outcome {
    let guest = image("guest-kernel.elf").unwrap_or_else(|e| panic!("{e}"));
    let q = Qemu::hypervisor()
        .unwrap_or_else(|e| panic!("{e}"))
        .memory_mib(512)
        .module(&guest, &format!("shell -- {script}"))
        .module(&guest, "");
    q.run(timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// A QEMU command line for booting the hypervisor.
#[derive(Clone, Debug)]
pub struct Qemu {
    kernel: PathBuf,
    append: String,
    modules: Vec<String>,
    memory_mib: u32,
    cpu: String,
    icount: bool,
    extra: Vec<String>,
}

impl Qemu {
    /// Boots `kernel` (a multiboot image) with default settings.
    pub fn new(kernel: impl Into<PathBuf>) -> Qemu {
        Qemu {
            kernel: kernel.into(),
            append: String::new(),
            modules: Vec::new(),
            memory_mib: 256,
            cpu: "max".to_string(),
            icount: false,
            extra: Vec::new(),
        }
    }

    /// Boots the hypervisor image from `target/images/hv.elf`.
    pub fn hypervisor() -> Result<Qemu, String> {
        Ok(Qemu::new(image("hv.elf")?))
    }

    /// Sets the hypervisor command line.
    pub fn cmdline(mut self, append: &str) -> Qemu {
        self.append = append.to_string();
        self
    }

    /// Adds a multiboot module: a file and its command line.
    pub fn module(mut self, path: &Path, args: &str) -> Qemu {
        let mut m = path.display().to_string();
        if !args.is_empty() {
            m.push(' ');
            m.push_str(args);
        }
        self.modules.push(m);
        self
    }

    /// Sets the guest RAM size.
    pub fn memory_mib(mut self, mib: u32) -> Qemu {
        self.memory_mib = mib;
        self
    }

    /// Sets the CPU model (`-cpu`, default `max`).
    pub fn cpu(mut self, model: &str) -> Qemu {
        self.cpu = model.to_string();
        self
    }

    /// Makes the TSC count executed instructions (`-icount shift=0,sleep=off`).
    pub fn icount(mut self) -> Qemu {
        self.icount = true;
        self
    }

    /// Adds raw QEMU arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Qemu {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }

    /// The full argument list (without the serial/monitor wiring).
    pub fn base_args(&self) -> Result<Vec<String>, String> {
        if let Some(bad) = self.modules.iter().find(|m| m.contains(',')) {
            return Err(format!("module '{bad}': QEMU's -initrd cannot carry a ',' in a module's path or arguments"));
        }
        let mut a: Vec<String> =
            ["-machine", "pc", "-display", "none", "-no-reboot", "-device", "isa-debug-exit,iobase=0xf4,iosize=4"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        a.extend(["-cpu".into(), self.cpu.clone()]);
        a.extend(["-m".into(), self.memory_mib.to_string()]);
        a.extend(["-kernel".into(), self.kernel.display().to_string()]);
        if !self.append.is_empty() {
            a.extend(["-append".into(), self.append.clone()]);
        }
        if !self.modules.is_empty() {
            a.extend(["-initrd".into(), self.modules.join(",")]);
        }
        if self.icount {
            a.extend(["-icount".into(), "shift=0,sleep=off".into()]);
        }
        a.extend(self.extra.iter().cloned());
        Ok(a)
    }

    /// Boots and waits for QEMU to exit, killing it after `timeout`.
    /// Serial output is collected; nothing is read from stdin.
    pub fn run(&self, timeout: Duration) -> Result<Outcome, String> {
        self.run_until(timeout, |_| false)
    }

    /// Boots and waits until `stop` is true of the serial output so far
    /// (then QEMU is killed and the ending is [`Ending::Stopped`]), until
    /// QEMU exits, or until `timeout`. For machines that do not power off
    /// by themselves, such as Xen once dom0 has shut down.
    pub fn run_until(&self, timeout: Duration, stop: impl Fn(&str) -> bool) -> Result<Outcome, String> {
        let mut args = self.base_args()?;
        args.extend(["-serial", "stdio", "-monitor", "none"].map(String::from));
        let child = Command::new(QEMU)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {QEMU}: {e} (run `cargo xtask test`, which installs it)"))?;
        wait_collecting(child, timeout, &stop)
    }
}

/// How a boot ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// QEMU exited with this status.
    Exited(i32),
    /// QEMU was still running at the deadline and was killed.
    TimedOut,
    /// The `run_until` condition was met and QEMU was killed.
    Stopped,
    /// QEMU was killed by a signal.
    Signalled,
}

/// What a boot printed and how it ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// How QEMU ended.
    pub ending: Ending,
    /// Everything the machine wrote to its serial port, `\r` removed.
    pub serial: String,
    /// What QEMU itself wrote to stderr.
    pub stderr: String,
    /// Wall time of the boot (for information only: tests never assert it).
    pub elapsed: Duration,
}

impl Outcome {
    /// The hypervisor's way of stopping, judged from the exit status and,
    /// for status 0, the final power-off line (a triple fault with
    /// `-no-reboot` also exits 0, but prints no such line).
    pub fn exit(&self) -> Option<Exit> {
        match self.ending {
            Ending::Exited(0) => self.serial.lines().any(|l| l == "(HV) power off").then_some(Exit::PowerOff),
            Ending::Exited(s) => Exit::from_qemu_status(s),
            _ => None,
        }
    }

    /// Lines the hypervisor printed (without the `(HV) ` prefix).
    pub fn hv_lines(&self) -> impl Iterator<Item = &str> {
        self.serial.lines().filter_map(|l| l.strip_prefix("(HV) "))
    }

    /// Lines domain `dom` (a domU) printed through its console (without
    /// the `(dN) ` prefix the hypervisor adds).
    pub fn dom_lines(&self, dom: u16) -> impl Iterator<Item = &str> {
        let prefix = format!("(d{dom}) ");
        self.serial.lines().filter_map(move |l| l.strip_prefix(prefix.as_str()))
    }

    /// `key=value` pairs of domain `dom`'s first line starting with `prefix`.
    pub fn dom_fields(&self, dom: u16, prefix: &str) -> Option<Vec<(String, String)>> {
        let line = self.dom_lines(dom).find(|l| l.starts_with(prefix))?;
        Some(
            line[prefix.len()..]
                .split_whitespace()
                .filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                .collect(),
        )
    }

    /// The first hypervisor line starting with `prefix`.
    pub fn line_starting(&self, prefix: &str) -> Option<&str> {
        self.hv_lines().find(|l| l.starts_with(prefix))
    }

    /// Parses `key=value` pairs of the first line starting with `prefix`.
    pub fn fields(&self, prefix: &str) -> Option<Vec<(String, String)>> {
        let line = self.line_starting(prefix)?;
        Some(
            line[prefix.len()..]
                .split_whitespace()
                .filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                .collect(),
        )
    }

    /// A report for failed assertions: the ending and the whole output.
    pub fn report(&self) -> String {
        format!(
            "ending: {:?} ({:?})\n--- serial ---\n{}\n--- qemu stderr ---\n{}",
            self.ending,
            self.exit(),
            self.serial,
            self.stderr
        )
    }
}

fn drain(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().expect("reader lock").extend_from_slice(&buf[..n]);
        }
    })
}

fn wait_collecting(mut child: Child, timeout: Duration, stop: &dyn Fn(&str) -> bool) -> Result<Outcome, String> {
    let start = Instant::now();
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        drain(child.stdout.take().expect("piped stdout"), Arc::clone(&out)),
        drain(child.stderr.take().expect("piped stderr"), Arc::clone(&err)),
    ];
    let ending = loop {
        match child.try_wait().map_err(|e| format!("waiting for QEMU: {e}"))? {
            Some(status) => break status.code().map_or(Ending::Signalled, Ending::Exited),
            None if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break Ending::TimedOut;
            }
            None if stop(&String::from_utf8_lossy(&out.lock().expect("reader lock")).replace('\r', "")) => {
                let _ = child.kill();
                let _ = child.wait();
                break Ending::Stopped;
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let elapsed = start.elapsed();
    for r in readers {
        let _ = r.join();
    }
    let text = |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&b.lock().expect("reader lock")).replace('\r', "");
    Ok(Outcome { ending, serial: text(&out), stderr: text(&err), elapsed })
}
