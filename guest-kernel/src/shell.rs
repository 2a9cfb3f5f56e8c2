//! `shell [-- <commands separated by ';'>]`: the control domain's
//! interactive shell on its console.
//!
//! Dom0 prints the prompt `dom0> `, reads what is typed with
//! `console_io(CONSOLEIO_read)` (which never blocks: between empty reads
//! the shell sleeps [`IDLE_MS`] on its timer), echoes it, and runs a
//! command per line ([`guest_kernel::lineedit`] edits the line,
//! [`toolstack::command`] parses it). The commands after `--` on the kernel
//! command line run first, each shown after the prompt as if typed and
//! followed by a typist's pause ([`IDLE_MS`], in which the domains run and
//! their shutdowns are seen). What was typed ahead waits its turn: a line
//! typed while a command runs is the next command.
//!
//! | command | what it does |
//! |---|---|
//! | `help` | the commands, a line each |
//! | `list` | every domain: `ID NAME STATE MEM(MiB) CPU(s)` ([`toolstack::status`]) |
//! | `create <key>=<value> ...` | builds a domain with the toolstack's builder ([`crate::build::ops`]), unpauses it: `created d<id> '<name>'` |
//! | `destroy`, `pause`, `unpause <id\|name>` | `domctl` `destroydomain`, `pausedomain`, `unpausedomain` |
//! | `shutdown`, `reboot <id\|name>` | `sched_op(SCHEDOP_remote_shutdown)`, reason poweroff or reboot |
//! | `console <id\|name>` | the domain's console output (its PV console's, else its lines in the console ring), then new output as it comes, with what is typed as its input, until Ctrl-] or the domain's end: `[detached]` |
//! | `info` | `sysctl physinfo` and the number of domains |
//! | `dmesg` | the hypervisor's console ring |
//! | `images`, `upload <name> <bytes>` | the kernel images; receiving one on the control port |
//! | `xenstore-ls [<path>]` | the xenstore tree under `<path>` (default `/`), `name = "value"` a line, indented by depth |
//! | `xenstore-read <path>`, `xenstore-write <path> <value>` | a node's value, read or written as dom0 |
//! | `exit` | `dom0: exit status=<commands that failed>`, then power off |
//!
//! A command that fails prints one line, `error: <what>`, and counts
//! towards the exit status. Names are the shell's own: dom0 is
//! `Domain-0`, a domain it built has its configuration's name, any other
//! is `-`; a domain may be named by id, by name, or as `d<id>`.
//!
//! # Domains that shut down
//!
//! The hypervisor raises `VIRQ_DOM_EXC` in dom0 when a domain shuts down
//! or dies. The shell binds it and, when it fires (after every command,
//! and between reads while idle), applies the configuration's
//! `on_poweroff`/`on_reboot`/`on_crash` to the domains it built
//! ([`domains`]): `d<id> '<name>' shut down (<reason>): <action>`. Where
//! the VIRQ cannot be bound, it looks every time instead.
//!
//! # Consoles
//!
//! Each domain the shell builds has a PV console (Xen's `io/console.h`
//! ring, the page and port the builder put in its `start_info`), and the
//! shell is its backend, as `xenconsoled` is on Xen ([`pvconsole`]): it
//! binds the domain's console port, and on every poll (between reads
//! while idle, and after every command) maps the console frame for the
//! moment, keeps what `out` holds (the last 16 KiB per domain) and puts
//! waiting input into `in`. `console` prints what is kept, then new output
//! as it comes, and forwards what is typed to the domain's `in`, up to
//! Ctrl-], which detaches (what follows it is for the prompt); input that
//! came with the Ctrl-] is answered first (the shell waits, boundedly, for
//! the domain to read it and go quiet). It also detaches by itself once
//! the domain has shut down or is gone.
//!
//! A domain without a PV console (its port could not be bound, or one the
//! shell did not build) is followed through `console_io` instead, which
//! the hypervisor keeps in its console ring as `(d<id>) <line>` (and, for
//! a domain dom0 built, prints on the serial port only with its
//! `domu_console=serial` option): `console` reads the ring (`sysctl
//! readconsole`, incrementally) and prints that domain's lines without the
//! prefix ([`toolstack::conring`]), the ones the ring still holds, then new
//! ones every [`IDLE_MS`]; what is typed is dropped up to Ctrl-].
//!
//! On this hypervisor dom0's own output goes into the ring too, so the
//! lines `dmesg` prints would come back as a domain's lines: the shell
//! notes where its reprint landed (when the ring holds it verbatim) and
//! `console` leaves it out.
//!
//! # Xenstore
//!
//! The shell is the xenstore daemon of the domains it builds, as
//! `xenstored` is on Xen ([`store`], the portable daemon is
//! [`toolstack::xenstore`]): each gets `/local/domain/<id>` with `name`
//! and `domid` (dom0's, readable by the domain) and is introduced on the
//! store ring and port the builder put in its `start_info`. Every poll
//! (between reads while idle, after every command, and while attached to
//! a console) maps each store frame for the moment and moves requests and
//! replies. A domain destroyed or gone is released and its entries
//! removed. Dom0 itself reaches the store only through the commands.
//!
//! # On Xen 4.17
//!
//! The same hypercalls. The PV console works the same there; a release
//! build of Xen drops a domU's `console_io` output, so a domain without a
//! PV console shows nothing; a debug build keeps it in the ring (and
//! dom0's output only with `console_to_ring`).

mod disks;
mod domains;
mod images;
mod pvconsole;
mod ring;
mod store;

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use abi::domctl::{XEN_DOMINF_DYING, XEN_DOMINF_SHUTDOWN};
use abi::sched::{ShutdownReason, VIRQ_DOM_EXC};
use abi::Errno;
use guest_kernel::cmdline::passed_on;
use guest_kernel::console::write_bytes;
use guest_kernel::event::{self, Port};
use guest_kernel::hypercall::hv;
use guest_kernel::lineedit::{Input, LineEditor};
use guest_kernel::runtime::{shutdown, start_info};
use guest_kernel::time::{self, NS_PER_MS};
use guest_kernel::uart::{Uart, COM2};
use guest_kernel::{console, print, println};
use toolstack::builder::DomId;
use toolstack::command::{self, Command, DomainRef, Verb, DEFAULT_KERNEL};
use toolstack::conring::{GuestLines, Reprints};
use toolstack::ctlport::{self, Line, LineReader, Upload, DETACH};
use toolstack::status::{ListRow, LIST_HEADER};

use crate::build::ops::{self, Dom0Ops};
use crate::build::{ramdisk, set_up_control_domain};
use domains::Domains;
use images::Images;

/// The prompt.
pub const PROMPT: &str = "dom0> ";
/// Sleep between two empty reads of the console, in ms.
pub const IDLE_MS: u64 = 10;
/// Quiet polls (of [`IDLE_MS`]) after which a detaching PV console stops
/// waiting for the domain's answer to its input.
pub const LINGER_QUIET: u32 = 30;
/// Most polls a detaching PV console waits for that answer.
pub const LINGER_MAX: u32 = 500;

/// Set by the `VIRQ_DOM_EXC` handler; cleared by whoever looks.
static DOM_EXC: AtomicBool = AtomicBool::new(false);

fn on_dom_exc(_: Port) {
    DOM_EXC.store(true, Ordering::SeqCst);
}

/// Set when a device's port fires (a block request, a xenstore message):
/// the shell stops idling and polls.
static WOKEN: AtomicBool = AtomicBool::new(false);

/// The handler of every port the shell serves a device on.
fn wake(_: Port) {
    WOKEN.store(true, Ordering::SeqCst);
}

/// Whether a device's port fired since the last call (and forgets it).
fn woken() -> bool {
    WOKEN.swap(false, Ordering::SeqCst)
}

/// Where the command running now was typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// The console.
    Console,
    /// The control port (see [`toolstack::ctlport`]).
    Control,
}

/// Where typed input comes from.
#[derive(Clone, Copy, Debug)]
enum Typist {
    /// `console_io` reads.
    Console,
    /// The control port.
    Control(Uart),
    /// Nowhere.
    Nobody,
}

impl Typist {
    /// Reads what was typed into `buf` (`console_io` errors read as
    /// nothing); how many bytes came.
    fn read(self, buf: &mut [u8]) -> usize {
        match self {
            Typist::Console => {
                hv().console_read(buf).ok().and_then(|n| usize::try_from(n).ok()).map_or(0, |n| n.min(buf.len()))
            }
            Typist::Control(uart) => uart.read(buf),
            Typist::Nobody => 0,
        }
    }
}

/// The control port's UART, once opened.
static CONTROL: guest_kernel::lock::Lock<Option<Uart>> = guest_kernel::lock::Lock::new(None);

/// The console sink while a control-port command runs: its output, with
/// the end-of-reply byte masked.
fn to_control_port(bytes: &[u8]) {
    let uart = CONTROL.try_lock().and_then(|u| *u);
    if let Some(uart) = uart {
        uart.write(ctlport::escape(bytes));
    }
}

/// The shell's state.
struct Shell {
    ops: Dom0Ops,
    /// The kernel images: the ramdisk and uploaded ones.
    images: Images,
    /// The control port's UART and the line arriving on it.
    control: Option<(Uart, LineReader)>,
    /// Where the running command came from.
    source: Source,
    /// The `VIRQ_DOM_EXC` port, if the hypervisor offers the VIRQ.
    dom_exc: Option<Port>,
    domains: Domains,
    /// Where `dmesg` reprinted the ring into the ring.
    reprints: Reprints,
    /// Commands that failed.
    failed: u64,
    editor: LineEditor,
    /// Typed bytes not yet taken: what came after a command's line, or
    /// after Ctrl-] in `console`, belongs to what runs next.
    input: VecDeque<u8>,
}

/// Runs the start-up commands, then the interactive shell; powers off on
/// `exit`.
pub fn run() -> ! {
    let mut shell = match Shell::set_up() {
        Ok(shell) => shell,
        Err(why) => {
            println!("shell: FATAL: {why}");
            shutdown(ShutdownReason::Crash)
        }
    };
    println!(
        "dom0 shell: {} KiB kernel image for 'create', domain events {}, control port {}; type 'help' for the commands",
        shell.images.get(DEFAULT_KERNEL).map_or(0, <[u8]>::len) / 1024,
        if shell.dom_exc.is_some() { "on VIRQ_DOM_EXC" } else { "polled (VIRQ_DOM_EXC unavailable)" },
        if shell.control.is_some() { "on COM2" } else { "absent" },
    );
    let line = passed_on(&start_info().cmd_line).unwrap_or(b"");
    match core::str::from_utf8(line) {
        Ok(script) => {
            for cmd in command::split_script(script) {
                println!("{PROMPT}{cmd}");
                shell.execute(cmd);
                // A pause as a typist's: the domains run meanwhile.
                idle();
                shell.report_events();
            }
        }
        Err(_) => {
            println!("error: the commands after -- are not UTF-8");
            shell.failed += 1;
        }
    }
    shell.interact()
}

/// Sleeps [`IDLE_MS`] on the timer (or, without one, yields), or less if
/// a device's port fires (a block request, a xenstore message).
fn idle() {
    if woken() {
        return;
    }
    let deadline = time::now_ns().saturating_add(IDLE_MS * NS_PER_MS);
    if time::sleep_until_or(deadline, woken).is_err() {
        let _ = hv().sched_yield();
    }
}

impl Shell {
    /// Checks that this is the control domain and sets up memory, events,
    /// the timer, the builder's hypercalls and `VIRQ_DOM_EXC`.
    fn set_up() -> Result<Shell, String> {
        set_up_control_domain()?;
        time::timer_port().map_err(|e| format!("VIRQ_TIMER: {e}"))?;
        let images = Images::new(ramdisk()?);
        let control = match Uart::open(COM2) {
            Ok(uart) => {
                *CONTROL.lock() = Some(uart);
                Some((uart, LineReader::new()))
            }
            Err(why) => {
                println!("shell: no control port on COM2: {why}");
                None
            }
        };
        let ops = Dom0Ops::new().map_err(|e| format!("the scratch page for foreign frames: {e}"))?;
        let dom_exc = match hv().evtchn_bind_virq(VIRQ_DOM_EXC, 0) {
            Ok(port) => {
                event::set_handler(port, Some(on_dom_exc));
                Some(port)
            }
            Err(e) => {
                println!("shell: VIRQ_DOM_EXC: {e}; looking at the domains after every poll instead");
                None
            }
        };
        Ok(Shell {
            ops,
            images,
            control,
            source: Source::Console,
            dom_exc,
            domains: Domains::default(),
            reprints: Reprints::new(),
            failed: 0,
            editor: LineEditor::new(),
            input: VecDeque::new(),
        })
    }

    /// Reads and runs commands forever (until `exit`).
    fn interact(&mut self) -> ! {
        let mut echo: Vec<u8> = Vec::new();
        print!("{PROMPT}");
        loop {
            self.serve_control_port();
            let events = self.domain_events();
            if !events.is_empty() {
                // On lines of their own, then the prompt and what was typed again.
                println!();
                for e in &events {
                    println!("{e}");
                }
                print!("{PROMPT}{}", self.editor.line());
            }
            if !self.fill_input() {
                idle();
                continue;
            }
            while let Some(byte) = self.input.pop_front() {
                let input = self.editor.feed(byte, |e| echo.extend_from_slice(e));
                if input.is_some() || self.input.is_empty() {
                    write_bytes(&echo);
                    echo.clear();
                }
                match input {
                    Some(Input::Line) => {
                        let line = self.editor.line().to_string();
                        self.editor.clear();
                        self.execute(&line);
                        self.report_events();
                        print!("{PROMPT}");
                    }
                    Some(Input::Cancel) => print!("{PROMPT}"),
                    None => {}
                }
            }
        }
    }

    /// Where the running command's typed input comes from.
    fn typist(&self) -> Typist {
        match (self.source, &self.control) {
            (Source::Control, Some((uart, _))) => Typist::Control(*uart),
            (Source::Control, None) => Typist::Nobody,
            (Source::Console, _) => Typist::Console,
        }
    }

    /// [`Typist::read`] for the running command.
    fn read_typed(&self, buf: &mut [u8]) -> usize {
        self.typist().read(buf)
    }

    /// Runs the commands that arrived whole on the control port, each
    /// with its output there and its end line (see [`toolstack::ctlport`]).
    fn serve_control_port(&mut self) {
        loop {
            let Some((uart, reader)) = self.control.as_mut() else { return };
            let mut byte = [0u8; 1];
            if uart.read(&mut byte) == 0 {
                return;
            }
            let Some(line) = reader.push(byte[0]) else { continue };
            let uart = *uart;
            let failed = self.failed;
            let previous = console::redirect(Some(to_control_port));
            self.source = Source::Control;
            match line {
                Line::Complete(line) => {
                    // Comments come back: hvctl syncs with them.
                    if line.starts_with('#') {
                        println!("{line}");
                    }
                    self.execute(&line);
                    self.report_events();
                }
                Line::Bad(why) => {
                    println!("error: {why}");
                    self.failed += 1;
                }
            }
            self.source = Source::Console;
            console::redirect(previous);
            uart.write(ctlport::end_line(self.failed - failed).bytes());
        }
    }

    /// Reads what was typed into [`Shell::input`] if that is empty;
    /// whether there is input.
    fn fill_input(&mut self) -> bool {
        if self.input.is_empty() {
            let mut buf = [0u8; 64];
            let n = self.read_typed(&mut buf);
            self.input.extend(&buf[..n]);
        }
        !self.input.is_empty()
    }

    /// Runs one command line; a failure is one `error:` line.
    fn execute(&mut self, line: &str) {
        let result = match command::parse(line) {
            Ok(None) => Ok(()),
            Ok(Some(Command::Exit)) => {
                println!("dom0: exit status={}", self.failed);
                shutdown(ShutdownReason::Poweroff)
            }
            Ok(Some(command)) => self.perform(command),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            println!("error: {e}");
            self.failed += 1;
        }
    }

    /// Does what `command` asks (all but `exit`).
    fn perform(&mut self, command: Command) -> Result<(), String> {
        let verb = command.verb();
        match command {
            Command::Help => {
                print!("{}", command::help());
                Ok(())
            }
            Command::List => self.list(),
            Command::Create(config) => self.create(config),
            Command::Destroy(d) => {
                let id = self.target(verb, &d)?;
                ops::destroy(id).map_err(|e| format!("destroy: d{id}: destroydomain: {e}"))?;
                println!("destroyed d{id} '{}'", self.domains.name_of(id));
                self.domains.forget(id);
                Ok(())
            }
            Command::Pause(d) => {
                let id = self.target(verb, &d)?;
                ops::pause(id).map_err(|e| format!("pause: d{id}: pausedomain: {e}"))?;
                println!("paused d{id} '{}'", self.domains.name_of(id));
                Ok(())
            }
            Command::Unpause(d) => {
                let id = self.target(verb, &d)?;
                ops::unpause(id).map_err(|e| format!("unpause: d{id}: unpausedomain: {e}"))?;
                println!("unpaused d{id} '{}'", self.domains.name_of(id));
                Ok(())
            }
            Command::Shutdown(d) => self.remote_shutdown(verb, &d, ShutdownReason::Poweroff),
            Command::Reboot(d) => self.remote_shutdown(verb, &d, ShutdownReason::Reboot),
            Command::Console(d) => {
                let id = self.target(verb, &d)?;
                self.console(id)
            }
            Command::Info => self.info(),
            Command::Dmesg => self.dmesg(),
            Command::Images => {
                for (name, bytes) in self.images.list() {
                    println!("{name:<24} {:>8} KiB", bytes.div_ceil(1024));
                }
                Ok(())
            }
            Command::Upload { name, size } => self.upload(&name, size),
            Command::Disks => {
                println!("{:<24} {:>5} {:<6} {:>9} {:>7}", "NAME", "MiB", "USER", "REQUESTS", "ERRORS");
                let disks: Vec<(String, u64, Option<DomId>)> =
                    self.domains.disks().list().map(|(n, mib, user)| (n.to_string(), mib, user)).collect();
                for (name, mib, user) in disks {
                    let stats = user.and_then(|d| self.domains.vbd_of(d)).map(|v| v.stats());
                    let (requests, errors) = stats.map_or((0, 0), |s| (s.requests, s.errors));
                    let user = user.map_or_else(|| "-".to_string(), |d| format!("d{d}"));
                    println!("{name:<24} {mib:>5} {user:<6} {requests:>9} {errors:>7}");
                }
                Ok(())
            }
            Command::Mkdisk { name, mib } => {
                self.domains.disks().make(&name, mib).map_err(|e| format!("mkdisk: {e}"))?;
                println!("made disk '{name}': {mib} MiB");
                Ok(())
            }
            Command::XenstoreLs(path) => {
                let path = path.as_deref().unwrap_or("/");
                let text = self.domains.store().ls(Some(path)).map_err(|e| format!("xenstore-ls: {path}: {e}"))?;
                print!("{text}");
                Ok(())
            }
            Command::XenstoreRead(path) => {
                let value = self.domains.store().read(&path).map_err(|e| format!("xenstore-read: {path}: {e}"))?;
                println!("{}", guest_kernel::text::Escaped(&value));
                Ok(())
            }
            Command::XenstoreWrite { path, value } => {
                self.domains.store().write(&path, value.as_bytes()).map_err(|e| format!("xenstore-write: {path}: {e}"))
            }
            Command::Exit => unreachable!("handled by execute"),
        }
    }

    /// The existing domain other than dom0 that `d` names, for `verb`.
    fn target(&self, verb: Verb, d: &DomainRef) -> Result<DomId, String> {
        let verb = verb.name();
        let id = d.resolve(self.domains.names()).ok_or_else(|| format!("{verb}: no domain {d}"))?;
        if id == 0 {
            return Err(format!("{verb}: refusing Domain-0, the shell's own domain"));
        }
        match ops::domain_info(id) {
            Ok(Some(_)) => Ok(id),
            Ok(None) => Err(format!("{verb}: no domain {id}")),
            Err(e) => Err(format!("{verb}: d{id}: getdomaininfo: {e}")),
        }
    }

    /// Whether a domain shut down or died since the last look (always, if
    /// the VIRQ is not bound). Consumes the event: the handler's flag, or
    /// the port's pending bit if no upcall has taken it yet (upcalls are
    /// masked except while the shell sleeps).
    fn dom_exc_seen(&self) -> bool {
        let Some(port) = self.dom_exc else {
            return true;
        };
        let handled = DOM_EXC.swap(false, Ordering::SeqCst);
        event::clear_pending(port) | handled
    }

    /// Acts on domains that shut down (see [`domains`]); the lines to print.
    fn domain_events(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        self.domains.poll_consoles(&mut self.ops);
        self.poll_devices();
        if self.dom_exc_seen() {
            self.domains.check(&mut self.ops, &self.images, &mut out);
        }
        out
    }

    /// Serves the domains' xenstore rings and disks.
    fn poll_devices(&mut self) {
        self.domains.poll_stores(&mut self.ops);
        if self.domains.poll_disks() {
            // Requests remain: the next idle must not sleep.
            wake(0);
        }
    }

    /// [`Shell::domain_events`], printed.
    fn report_events(&mut self) {
        for e in self.domain_events() {
            println!("{e}");
        }
    }

    fn list(&self) -> Result<(), String> {
        let all = domains::all().map_err(|e| format!("list: getdomaininfo: {e}"))?;
        println!("{LIST_HEADER}");
        for info in &all {
            println!("{}", ListRow { info, name: self.domains.name_of(info.domain) });
        }
        Ok(())
    }

    fn create(&mut self, config: toolstack::config::DomainConfig) -> Result<(), String> {
        let name = config.name.clone();
        let d = self.domains.create(&mut self.ops, &self.images, config).map_err(|e| format!("create: {e}"))?;
        println!("created d{d} '{name}'");
        Ok(())
    }

    /// Receives an image on the control port (see [`toolstack::ctlport`]):
    /// an acknowledgement when ready and after every chunk, the image
    /// kept as `name` once whole.
    fn upload(&mut self, name: &str, size: usize) -> Result<(), String> {
        let Some((uart, _)) = self.control.as_ref().filter(|_| self.source == Source::Control) else {
            return Err("upload: only on the control port (hvctl create --kernel FILE sends one)".to_string());
        };
        let uart = *uart;
        let mut upload =
            Upload::new(name, size).ok_or_else(|| format!("upload: no memory for {size} bytes in dom0"))?;
        uart.write([ctlport::ACK]);
        let mut buf = [0u8; 512];
        let mut last = time::now_ns();
        let mut empty = 0u32;
        while upload.remaining() > 0 {
            let want = upload.remaining().min(buf.len());
            let n = uart.read(&mut buf[..want]);
            if n == 0 {
                empty += 1;
                if time::now_ns().saturating_sub(last) > ctlport::UPLOAD_IDLE_MS * NS_PER_MS {
                    return Err(format!(
                        "upload: {name}: nothing came for {} s, {} bytes short; abandoned",
                        ctlport::UPLOAD_IDLE_MS / 1000,
                        upload.remaining()
                    ));
                }
                // A short spin, then sleep: the host is slower than we are.
                if empty > 4096 {
                    let _ = time::sleep_ns(NS_PER_MS);
                }
                continue;
            }
            (last, empty) = (time::now_ns(), 0);
            let (_, acks) = upload.feed(&buf[..n]);
            for _ in 0..acks {
                uart.write([ctlport::ACK]);
            }
        }
        let (name, image) = upload.finish().ok_or("upload: incomplete")?;
        println!("{}", ctlport::uploaded_line(&name, &image));
        self.images.add(name, image);
        Ok(())
    }

    fn remote_shutdown(&mut self, verb: Verb, d: &DomainRef, reason: ShutdownReason) -> Result<(), String> {
        let id = self.target(verb, d)?;
        hv().sched_remote_shutdown(id, reason)
            .map_err(|e| format!("{}: d{id}: sched_op(remote_shutdown): {e}", verb.name()))?;
        let what = if reason == ShutdownReason::Reboot { "reboot" } else { "power off" };
        println!("asked d{id} '{}' to {what}", self.domains.name_of(id));
        Ok(())
    }

    fn info(&self) -> Result<(), String> {
        let p = ops::physinfo().map_err(|e| format!("info: physinfo: {e}"))?;
        let domains = domains::all().map_err(|e| format!("info: getdomaininfo: {e}"))?.len();
        println!("total_memory : {} MiB", p.total_pages / 256);
        println!("free_memory  : {} MiB", p.free_pages / 256);
        println!("nr_cpus      : {}", p.nr_cpus);
        println!("cpu_khz      : {}", p.cpu_khz);
        println!("domains      : {domains}");
        Ok(())
    }

    /// Prints the whole ring, then notes where the reprint landed in it.
    fn dmesg(&mut self) -> Result<(), String> {
        let (mut text, end) = ring::snapshot().map_err(|e| format!("dmesg: readconsole: {e}"))?;
        if text.last().is_some_and(|&b| b != b'\n') {
            text.push(b'\n');
        }
        for line in text.split_inclusive(|&b| b == b'\n') {
            write_bytes(line);
        }
        self.note_reprint(end, &text).map_err(|e| format!("dmesg: readconsole: {e}"))
    }

    /// Records `[at, at + text.len())` as a reprint if the ring holds
    /// `text` there (it does not on a hypervisor that keeps dom0's output
    /// out of the ring, or if other output came in between).
    fn note_reprint(&mut self, at: u32, text: &[u8]) -> Result<(), Errno> {
        let (mut same, mut seen) = (true, 0usize);
        ring::read_all(Some(at), |index, bytes| {
            for (k, &b) in bytes.iter().enumerate() {
                let offset = index.wrapping_add(k as u32).wrapping_sub(at) as usize;
                if let Some(&want) = text.get(offset) {
                    same &= want == b;
                    seen += 1;
                }
            }
        })?;
        if same && seen > 0 {
            self.reprints.record(at, at.wrapping_add(text.len() as u32));
        }
        Ok(())
    }

    /// Whether domain `id` still exists and has not shut down.
    fn alive(id: DomId) -> bool {
        match ops::domain_info(id) {
            Ok(Some(info)) => info.flags & (XEN_DOMINF_SHUTDOWN | XEN_DOMINF_DYING) == 0,
            Ok(None) => false,
            // Not known to have ended: keep following.
            Err(_) => true,
        }
    }

    /// Attaches to `id`'s console: its PV console if the shell has one
    /// ([`Shell::pv_console`]), else its lines in the hypervisor's ring.
    fn console(&mut self, id: DomId) -> Result<(), String> {
        if self.domains.console_of(id).is_some() {
            self.pv_console(id);
            return Ok(());
        }
        self.ring_console(id)
    }

    /// Prints `id`'s kept PV console output, then new output as it comes,
    /// and forwards what is typed to the domain, until Ctrl-] is typed or
    /// the domain has shut down or is gone. After a Ctrl-] that came with
    /// input for the domain (typed ahead, or pasted with it), it lingers
    /// for the answer: until the domain has read the input and been quiet
    /// [`LINGER_QUIET`] polls, at most [`LINGER_MAX`] polls.
    fn pv_console(&mut self, id: DomId) {
        println!("[console d{id} '{}': Ctrl-] detaches]", self.domains.name_of(id));
        // What was typed ahead is the domain's, up to a Ctrl-], which
        // detaches it (what follows that is for the prompt).
        let at = self.input.iter().position(|&b| b == DETACH);
        let typed: Vec<u8> = match at {
            Some(at) => self.input.drain(..=at).take(at).collect(),
            None => self.input.drain(..).collect(),
        };
        if let Some(c) = self.domains.console_of(id) {
            c.send(&typed);
        }
        let (mut detach, mut sent) = (at.is_some(), !typed.is_empty());
        let (mut cursor, mut last) = (0, b'\n');
        let (mut quiet, mut lingered) = (0u32, 0u32);
        let typist = self.typist();
        loop {
            // The domain may be waiting on xenstore or its disk while it
            // is watched.
            self.poll_devices();
            let Some(c) = self.domains.console_of(id) else { break };
            let _ = c.poll(&mut self.ops);
            let (new, next) = c.since(cursor);
            cursor = next;
            quiet += 1;
            if let Some(&b) = new.last() {
                last = b;
                quiet = 0;
                write_bytes(&new);
            }
            if detach {
                let settled = !c.input_waiting() && quiet >= LINGER_QUIET;
                lingered += 1;
                if !sent || settled || lingered >= LINGER_MAX || !Self::alive(id) {
                    break;
                }
                idle();
                continue;
            }
            let mut typed = [0u8; 64];
            let n = typist.read(&mut typed);
            let (mine, rest) = match typed[..n].iter().position(|&b| b == DETACH) {
                Some(at) => (&typed[..at], Some(&typed[at + 1..n])),
                None => (&typed[..n], None),
            };
            c.send(mine);
            sent |= !mine.is_empty();
            if let Some(rest) = rest {
                self.input.extend(rest);
                detach = true;
                continue;
            }
            if !Self::alive(id) {
                // One more poll for its last words.
                (detach, sent) = (true, false);
                continue;
            }
            idle();
        }
        if last != b'\n' {
            println!();
        }
        self.report_events();
        println!("[detached]");
    }

    /// Prints `id`'s lines in the hypervisor's ring, then new ones as they
    /// come, until Ctrl-] is typed or the domain has shut down or is gone.
    fn ring_console(&mut self, id: DomId) -> Result<(), String> {
        println!(
            "[console d{id} '{}': Ctrl-] detaches; input to the domain is not supported]",
            self.domains.name_of(id)
        );
        let mut lines = GuestLines::new(id);
        let mut next = None;
        // What was typed ahead stays for the prompt, unless it holds a
        // Ctrl-]: then up to that is this console's, and detaches it.
        let mut detach = match self.input.iter().position(|&b| b == DETACH) {
            Some(at) => {
                self.input.drain(..=at);
                true
            }
            None => false,
        };
        loop {
            follow(&mut lines, &mut next, &self.reprints)?;
            // What is typed while attached is dropped up to a Ctrl-]; what
            // follows it is for the prompt.
            if !detach {
                let mut typed = [0u8; 64];
                let n = self.read_typed(&mut typed);
                if let Some(at) = typed[..n].iter().position(|&b| b == DETACH) {
                    self.input.extend(&typed[at + 1..n]);
                    detach = true;
                }
            }
            let ended = !detach && !Self::alive(id);
            if ended {
                follow(&mut lines, &mut next, &self.reprints)?;
            }
            if detach || ended {
                lines.flush(write_bytes);
                self.report_events();
                println!("[detached]");
                return Ok(());
            }
            self.report_events();
            idle();
        }
    }
}

/// Reads the ring from `next` (`None`: the oldest byte) to the newest,
/// printing the lines `lines` picks out, and moves `next` on.
fn follow(lines: &mut GuestLines, next: &mut Option<u32>, reprints: &Reprints) -> Result<(), String> {
    let end = ring::read_all(*next, |index, bytes| lines.feed(index, bytes, reprints, write_bytes))
        .map_err(|e| format!("console: readconsole: {e}"))?;
    *next = Some(end);
    Ok(())
}
