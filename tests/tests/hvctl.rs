//! SPEC §3.13: `hvctl` against a live instance: dom0's control port (the
//! second serial line) on a Unix socket, as `cargo xtask run --socket PATH`
//! sets it up; list, create, console output read back, input typed into a
//! guest's console and its answer, JSON, a refused command, an image
//! uploaded from the host and a domain created from it, a disk image
//! uploaded and read back by the domain given it, destroy.

use hvtest::{image, Qemu, QEMU};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STEP: Duration = Duration::from_secs(60);

/// Kills QEMU when the test ends, however it ends.
struct Machine(Child);

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn hvctl_lists_creates_reads_the_console_and_destroys() {
    let guest = image("guest-kernel.elf").unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(format!("hvctl-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("control.sock");
    let console_log = dir.join("console.log");
    let q =
        Qemu::hypervisor().unwrap_or_else(|e| panic!("{e}")).memory_mib(512).module(&guest, "shell").module(&guest, "");
    let mut args = q.base_args().unwrap_or_else(|e| panic!("{e}"));
    args.extend(["-serial".into(), format!("file:{}", console_log.display())]);
    args.extend(["-serial".into(), format!("unix:{},server=on,wait=off", socket.display())]);
    args.extend(["-monitor", "none"].map(String::from));
    let child = Command::new(QEMU).args(&args).stdin(Stdio::null()).stdout(Stdio::null()).spawn().unwrap();
    let _machine = Machine(child);
    let start = Instant::now();
    while !socket.exists() {
        assert!(start.elapsed() < STEP, "QEMU made no socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut s = hvctl::Session::connect(&socket, STEP).unwrap_or_else(|e| panic!("{e}"));

    let list = s.run("list", STEP).unwrap();
    let rows = hvctl::parse_list(&list);
    assert_eq!(rows.len(), 1, "{list:?}");
    assert_eq!((rows[0].id, rows[0].name.as_str()), (0, "Domain-0"));

    let created = s.run("create name=web memory=16 cmdline=\"sleep ms=5 rounds=3\"", STEP).unwrap();
    assert_eq!((created.lines.as_slice(), created.status), (&["created d1 'web'".to_string()][..], 0));
    let json = hvctl::to_json("list", &s.run("list", STEP).unwrap());
    assert!(json.contains("{\"id\":1,\"name\":\"web\","), "{json}");

    let console = s.run("console web", STEP).unwrap();
    assert!(console.lines.iter().any(|l| l.starts_with("SLEEP done rounds=3 ")), "{console:?}");

    let refused = s.run("destroy 7", STEP).unwrap();
    assert_eq!((refused.lines.as_slice(), refused.status), (&["error: destroy: no domain 7".to_string()][..], 1));

    // Typed input reaches a guest through its PV console ring and its
    // answer comes back the same way (the `echo` workload).
    let e = s.run("create name=e memory=16 cmdline=echo", STEP).unwrap().lines;
    assert!(e.len() == 1 && e[0].starts_with("created d") && e[0].ends_with(" 'e'"), "{e:?}");
    let shown = s.console("e", "hello\n", STEP).unwrap().lines;
    assert!(shown.iter().any(|l| l == "echo: hello"), "{shown:?}");
    assert!(shown.iter().any(|l| l == "[detached]"), "{shown:?}");
    let gone = s.run("destroy e", STEP).unwrap().lines;
    assert!(gone.iter().any(|l| l.starts_with("destroyed d") && l.ends_with("'e'")), "{gone:?}");

    // An image from the host (the minimal guest, not in dom0's ramdisk),
    // byte for byte (dom0 reports its CRC, which `upload` checks); the
    // domain built from it says hello and powers off, and is kept.
    let minimal = image("minimal-guest.elf").unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::read(&minimal).unwrap();
    let mut acked = Vec::new();
    let up = s.upload("minimal.elf", &bytes, STEP, &mut |done| acked.push(done)).unwrap();
    assert_eq!(up.status, 0, "{up:?}");
    assert_eq!(acked.len(), bytes.len().div_ceil(toolstack::ctlport::CHUNK), "one acknowledgement a chunk");
    assert_eq!(acked.last(), Some(&bytes.len()));
    assert!(acked.windows(2).all(|w| w[0] < w[1]), "progress only grows");
    let images = s.run("images", STEP).unwrap().lines;
    assert!(images.iter().any(|l| l.starts_with("minimal.elf ")), "{images:?}");
    let up = s.run("create name=up memory=16 kernel=minimal.elf on_poweroff=preserve", STEP).unwrap();
    assert!(up.lines.iter().any(|l| l.starts_with("created d") && l.ends_with("'up'")), "{up:?}");
    // It writes with console_io, not to its PV console: its line is in
    // the hypervisor's ring.
    let console = s.run("console up", STEP).unwrap();
    assert!(console.lines.iter().any(|l| l.ends_with("'up' shut down (poweroff): preserve")), "{console:?}");
    let dmesg = s.run("dmesg", STEP).unwrap();
    assert!(dmesg.lines.iter().any(|l| l.contains(") minimal-guest: hello from a PV guest")), "{dmesg:?}");
    assert_eq!(s.run("destroy up", STEP).unwrap().status, 0);
    let missing = s.run("create name=m memory=16 kernel=nothing.elf", STEP).unwrap();
    assert_eq!(missing.status, 1, "{missing:?}");
    let bad = s.upload("ramdisk", b"x", STEP, &mut |_| {}).unwrap();
    assert_eq!(bad.lines.len(), 1, "{bad:?}");
    assert!(bad.lines[0].starts_with("error: upload: bad image name 'ramdisk'"), "{bad:?}");

    // A disk image made here, holding the pattern `blk seed=9` writes:
    // uploaded, served to a domain as its disk, read back by it.
    let disk = blk_pattern(9, 128);
    let up = s.upload("host.img", &disk, STEP, &mut |_| {}).unwrap();
    assert_eq!(up.status, 0, "{up:?}");
    let v = s.run("create name=v memory=16 disk=host.img cmdline=\"blk-verify seed=9\"", STEP).unwrap();
    assert_eq!(v.status, 0, "{v:?}");
    let console = s.run("console v", STEP).unwrap();
    assert!(console.lines.iter().any(|l| l == "BLK verify ok seed=9 sectors=128"), "{console:?}");

    let again = s.run("create name=idle memory=16 cmdline=block", STEP).unwrap().lines;
    assert!(again.iter().any(|l| l.starts_with("created d")), "{again:?}");
    let destroyed = s.run("destroy idle", STEP).unwrap().lines;
    assert!(destroyed.iter().any(|l| l.starts_with("destroyed d") && l.ends_with("'idle'")), "{destroyed:?}");
    let rows = hvctl::parse_list(&s.run("list", STEP).unwrap());
    assert_eq!(rows.len(), 1, "only dom0 is left: {rows:?}");

    // The console itself was never the control port's: the hypervisor's
    // log and dom0's banner are there, no reply is.
    let log = std::fs::read_to_string(&console_log).unwrap();
    assert!(log.contains("control port on COM2"), "{log}");
    assert!(!log.contains("created d1 'web'"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sectors` 512-byte sectors of the pattern the guest's `blk seed=<seed>`
/// writes (guest-kernel/src/blkload.rs): word `w` of sector `s`.
fn blk_pattern(seed: u64, sectors: u64) -> Vec<u8> {
    let word = |s: u64, w: u64| {
        let mut x = (seed << 40) ^ (s * 64 + w) ^ 0x9e37_79b9_7f4a_7c15;
        x ^= x >> 29;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^ (x >> 32)
    };
    (0..sectors).flat_map(|s| (0..64).flat_map(move |w| word(s, w).to_le_bytes())).collect()
}
