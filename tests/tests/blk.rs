//! SPEC §3.16: the PV block device. Dom0's shell serves a disk image it
//! holds to a domain built with `disk=<name>`; the domain's frontend
//! finds it in xenstore, writes a pattern over the whole disk with many
//! requests in flight, reads it back, and is refused requests beyond the
//! end; the next domain given the disk reads the pattern the first left.
//! A frontend that breaks the protocol is disconnected with one log line
//! and dom0 goes on serving.

use hv::exit::Exit;
use hvtest::{field, Outcome};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(300);

fn shell(script: &str) -> Outcome {
    hvtest::shell_session(script, TIMEOUT)
}

/// The `free_memory` lines `info` printed, in order.
fn free_memory(serial: &str) -> Vec<&str> {
    serial.lines().filter(|l| l.starts_with("free_memory ")).collect()
}

#[test]
fn a_domain_writes_its_disk_and_the_next_boot_reads_it_back() {
    let o = shell(
        "mkdisk d0 4; info; create name=a memory=16 disk=d0 cmdline=\"blk seed=7\" on_poweroff=preserve; console a; \
         disks; xenstore-ls /local/domain/0/backend/vbd; destroy a; \
         create name=b memory=16 disk=d0 cmdline=\"blk-verify seed=7\"; console b; info; exit",
    );
    let lines: Vec<&str> = o.serial.lines().collect();
    assert!(lines.contains(&"made disk 'd0': 4 MiB"), "{}", o.report());
    assert!(lines.contains(&"BLK connected sectors=8192 sector_size=512 backend=d0 ring=32"), "{}", o.report());
    // The whole disk written, then read back, with requests in flight together.
    for pass in ["BLK write ok ", "BLK read ok "] {
        let line = lines.iter().find(|l| l.starts_with(pass)).unwrap_or_else(|| panic!("{pass}\n{}", o.report()));
        assert_eq!(field(line, "sectors"), Some(8192), "{line}");
        assert!(field(line, "max_in_flight").is_some_and(|n| n > 1), "concurrent requests: {line}");
    }
    assert!(lines.contains(&"BLK refused ok beyond_end=error discard=eopnotsupp"), "{}", o.report());
    // Dom0's side: the backend's entries while it is connected, its counters.
    assert!(lines.contains(&"  params = \"d0\""), "{}", o.report());
    assert!(lines.contains(&"  state = \"4\""), "the backend is Connected\n{}", o.report());
    assert!(lines.iter().any(|l| l.starts_with("d0 ") && l.contains(" d1 ")), "disks names its user\n{}", o.report());
    // The next boot, with another domain, reads what the first wrote.
    assert!(lines.contains(&"BLK verify ok seed=7 sectors=8192"), "{}", o.report());
    assert_eq!(lines.iter().filter(|l| **l == "BLK pass seed=7").count(), 2, "{}", o.report());
    // Every frame of both domains came back (the disk is dom0's own memory).
    let free = free_memory(&o.serial);
    assert!(free.len() == 2 && free[0] == free[1], "free memory before and after: {free:?}\n{}", o.report());
    assert!(lines.contains(&"dom0: exit status=0"), "{}", o.report());
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
}

#[test]
fn a_hostile_frontend_is_disconnected_and_dom0_serves_on() {
    let o = shell(
        "mkdisk d0 1; create name=h memory=16 disk=d0 cmdline=blk-hostile; console h; \
         create name=a memory=16 disk=d0 cmdline=\"blk seed=3\"; console a; list; exit",
    );
    let lines: Vec<&str> = o.serial.lines().collect();
    for step in ["BLKH bad_grant ok status=-1", "BLKH bad_segments ok", "BLKH producer_ahead ok backend=closed"] {
        assert!(lines.contains(&step), "{step}\n{}", o.report());
    }
    let garbage = lines.iter().find(|l| l.starts_with("BLKH garbage ok ")).unwrap_or_else(|| panic!("{}", o.report()));
    assert_eq!(field(garbage, "requests"), Some(200), "each garbage request was answered: {garbage}");
    assert!(
        lines.iter().any(|l| l.starts_with("blkback: d1: the frontend's req_prod ") && l.ends_with("; disconnected")),
        "one log line for the broken ring\n{}",
        o.report()
    );
    assert!(lines.contains(&"BLKH done"), "{}", o.report());
    // Dom0 is unharmed: the next domain uses the same disk normally.
    assert!(lines.contains(&"BLK pass seed=3"), "{}", o.report());
    assert!(lines.contains(&"dom0: exit status=0"), "{}", o.report());
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
}

#[test]
fn bad_disk_commands_get_one_line_and_change_nothing() {
    let o = shell(
        "mkdisk d0 1; create name=x memory=16 disk=nosuch; mkdisk d0 1; mkdisk d1 0; mkdisk big 64; \
         create name=y memory=16 disk=d0 cmdline=block; create name=z memory=16 disk=d0; destroy y; \
         create name=z memory=16 disk=d0 cmdline=\"blk seed=5\"; console z; disks; exit",
    );
    let lines: Vec<&str> = o.serial.lines().collect();
    for want in [
        "error: create: disk: no disk image 'nosuch' (see 'disks'; 'mkdisk' makes one)",
        "error: mkdisk: a disk named 'd0' exists",
        "error: mkdisk: bad size '0' (1 to 64 MiB)",
        "error: create: disk: 'd0' is in use by d1",
    ] {
        assert!(lines.contains(&want), "{want}\n{}", o.report());
    }
    assert!(lines.iter().any(|l| l.starts_with("error: mkdisk: dom0 has less than 64 MiB free")), "{}", o.report());
    // The refused create left no domain behind, and the disk was free again
    // for the next one once its user was destroyed.
    assert!(lines.contains(&"BLK pass seed=5"), "{}", o.report());
    assert!(lines.contains(&"dom0: exit status=5"), "{}", o.report());
}

/// A boot module as a disk: `disk=ramdisk` serves a copy of dom0's
/// ramdisk module (here the guest kernel's image), padded to whole pages.
#[test]
fn dom0s_boot_module_serves_as_a_disk() {
    let o = shell("create name=m memory=16 disk=ramdisk cmdline=\"blk seed=2\"; console m; disks; exit");
    let bytes = std::fs::metadata(hvtest::image("guest-kernel.elf").unwrap()).unwrap().len();
    let sectors = bytes.div_ceil(4096) * 8;
    let lines: Vec<&str> = o.serial.lines().collect();
    let want = format!("BLK connected sectors={sectors} sector_size=512 backend=d0 ring=32");
    assert!(lines.contains(&want.as_str()), "{want}\n{}", o.report());
    assert!(lines.contains(&"BLK pass seed=2"), "{}", o.report());
    assert!(lines.contains(&"dom0: exit status=0"), "{}", o.report());
}
