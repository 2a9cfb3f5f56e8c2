//! SPEC §3.13: `hvctl` against a live instance: the machine's console (dom0's
//! shell) on a Unix socket, as `cargo xtask run --socket PATH` sets it up;
//! list, create, console output read back, input typed into a guest's
//! console and its answer, JSON, a refused command, destroy.

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
    let socket = dir.join("console.sock");
    let q =
        Qemu::hypervisor().unwrap_or_else(|e| panic!("{e}")).memory_mib(512).module(&guest, "shell").module(&guest, "");
    let mut args = q.base_args().unwrap_or_else(|e| panic!("{e}"));
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
    assert_eq!(created, ["created d1 'web'"], "{created:?}");
    let json = hvctl::to_json("list", &s.run("list", STEP).unwrap());
    assert!(json.contains("{\"id\":1,\"name\":\"web\","), "{json}");

    let console = s.run("console web", STEP).unwrap();
    assert!(console.iter().any(|l| l.starts_with("SLEEP done rounds=3 ")), "{console:?}");

    let refused = s.run("destroy 7", STEP).unwrap();
    assert!(hvctl::failed(&refused), "{refused:?}");
    assert_eq!(refused, ["error: destroy: no domain 7"]);

    // Typed input reaches a guest through its PV console ring and its
    // answer comes back the same way (the `echo` workload).
    let e = s.run("create name=e memory=16 cmdline=echo", STEP).unwrap();
    assert!(e.len() == 1 && e[0].starts_with("created d") && e[0].ends_with(" 'e'"), "{e:?}");
    let shown = s.console("e", "hello\n", STEP).unwrap();
    assert!(shown.iter().any(|l| l == "echo: hello"), "{shown:?}");
    assert!(shown.iter().any(|l| l == "[detached]"), "{shown:?}");
    let gone = s.run("destroy e", STEP).unwrap();
    assert!(gone.iter().any(|l| l.starts_with("destroyed d") && l.ends_with("'e'")), "{gone:?}");

    let again = s.run("create name=idle memory=16 cmdline=block", STEP).unwrap();
    assert!(again.iter().any(|l| l.starts_with("created d")), "{again:?}");
    let destroyed = s.run("destroy idle", STEP).unwrap();
    assert!(destroyed.iter().any(|l| l.starts_with("destroyed d") && l.ends_with("'idle'")), "{destroyed:?}");
    let rows = hvctl::parse_list(&s.run("list", STEP).unwrap());
    assert_eq!(rows.len(), 1, "only dom0 is left: {rows:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
