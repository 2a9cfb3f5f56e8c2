//! SPEC §3.13: the control domain's shell, scripted through its startup
//! commands (what `cargo xtask run --batch` does): create a domain from
//! dom0's ramdisk image, list it, follow its console to its shutdown, have
//! its on_poweroff policy applied, and exit with the number of commands
//! that failed.

use hv::exit::Exit;
use hvtest::Outcome;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(240);

fn shell(script: &str) -> Outcome {
    hvtest::shell_session(script, TIMEOUT)
}

#[test]
fn create_list_console_destroy_from_the_shell() {
    let o = shell(
        "create name=web memory=16 cmdline=\"sleep ms=5 rounds=3\"; list; console web; list; \
         create name=idle memory=16 cmdline=block; pause idle; list; destroy idle; info; exit",
    );
    let lines: Vec<&str> = o.serial.lines().collect();
    assert!(lines.contains(&"created d1 'web'"), "{}", o.report());
    assert!(lines.iter().any(|l| l.starts_with("1     web ")), "list shows it\n{}", o.report());
    assert!(lines.iter().any(|l| l.starts_with("SLEEP done rounds=3 ")), "console shows its output\n{}", o.report());
    assert!(lines.contains(&"d1 'web' shut down (poweroff): destroy"), "on_poweroff applied\n{}", o.report());
    assert!(lines.iter().any(|l| l.starts_with("1     idle ") && l.contains("paused")), "{}", o.report());
    assert!(lines.contains(&"destroyed d1 'idle'"), "{}", o.report());
    assert!(lines.iter().any(|l| l.starts_with("free_memory ")), "{}", o.report());
    assert!(lines.contains(&"dom0: exit status=0"), "{}", o.report());
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
}

#[test]
fn bad_commands_get_one_line_and_count_as_failures() {
    let o =
        shell("lst; destroy 7; create name=x; shutdown Domain-0; upload k 10; create name=k memory=8 kernel=k; exit");
    let lines: Vec<&str> = o.serial.lines().collect();
    assert!(lines.contains(&"error: unknown command 'lst' (try 'help')"), "{}", o.report());
    assert!(lines.contains(&"error: destroy: no domain 7"), "{}", o.report());
    assert!(lines.contains(&"error: create: missing required key 'memory'"), "{}", o.report());
    assert!(lines.iter().any(|l| l.starts_with("error: shutdown: refusing Domain-0")), "{}", o.report());
    assert!(
        lines.contains(&"error: upload: only on the control port (hvctl create --kernel FILE sends one)"),
        "{}",
        o.report()
    );
    assert!(lines.iter().any(|l| l.starts_with("error: create: no kernel image 'k'")), "{}", o.report());
    assert!(lines.contains(&"dom0: exit status=6"), "{}", o.report());
}

#[test]
fn on_crash_preserve_keeps_the_domain_and_reboot_restarts_it() {
    let o = shell(
        "create name=c memory=16 cmdline=crash on_crash=preserve; create name=r memory=16 cmdline=block; \
         reboot r; list; exit",
    );
    let lines: Vec<&str> = o.serial.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with("d1 'c' shut down (crash): preserve")), "{}", o.report());
    assert!(lines.iter().any(|l| l.starts_with("1     c ") && l.contains("shutdown(crash)")), "{}", o.report());
    assert!(lines.iter().any(|l| l.contains("'r' shut down (reboot): restart")), "{}", o.report());
    assert!(lines.contains(&"dom0: exit status=0"), "{}", o.report());
}

/// §3.15: the shell serves a domain it built on its xenstore ring; the
/// domain reads its home, writes there, is refused dom0's node, and its
/// entries go when it is destroyed.
#[test]
fn a_domain_talks_to_the_shells_xenstore() {
    let o = shell(
        "create name=xs memory=16 cmdline=xenstore on_poweroff=preserve; console xs; \
         xenstore-ls /local/domain; destroy xs; xenstore-ls /local/domain; exit",
    );
    let lines: Vec<&str> = o.serial.lines().collect();
    assert!(lines.contains(&"XS name=xs domid=1 write=ok denied=EACCES"), "{}", o.report());
    // The listing while it is preserved, then after it is destroyed.
    let (kept, gone) = o.serial.split_once("dom0> destroy xs").unwrap_or_else(|| panic!("{}", o.report()));
    let kept = kept.rsplit_once("dom0> xenstore-ls /local/domain").map_or("", |(_, after)| after);
    let kept: Vec<&str> = kept.lines().collect();
    for line in
        ["0 = \"\"", " name = \"Domain-0\"", "1 = \"\"", " data = \"\"", "  hello = \"world\"", " name = \"xs\""]
    {
        assert!(kept.contains(&line), "{line:?} in the listing\n{}", o.report());
    }
    let gone: Vec<&str> = gone.lines().collect();
    assert!(gone.contains(&"destroyed d1 'xs'"), "{}", o.report());
    assert!(gone.contains(&" name = \"Domain-0\""), "{}", o.report());
    assert!(!gone.contains(&"1 = \"\""), "its entries are removed\n{}", o.report());
    assert!(lines.contains(&"dom0: exit status=0"), "{}", o.report());
}
