//! SPEC §3.9: the guest kernel's `hostile` workload attacks the PV memory
//! model (hypervisor frames, the M2P, its own page tables, the reserved L4
//! slots, superpages, linear entries, giving back frames in use, pins and
//! base pointers, descriptor pages, pointers into the hypervisor, runaway
//! batches), one `ATTACK <name> refused|SUCCEEDED|ERROR ...` line each,
//! then `HOSTILE refused=N succeeded=M errors=K`.
//!
//! On this hypervisor every attack must be refused. On real Xen 4.17 the
//! same image must get through the list, and the attacks that would break
//! isolation must be refused there too; a few others are legitimate for
//! Xen's dom0 (it has I/O privileges: low memory, cache attributes), so
//! they are not required there.

use hv::exit::Exit;
use hvtest::xen::{self, Dom0End};
use hvtest::{image, Ending, Outcome, Qemu};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

/// Fewest attacks the workload must make.
const MIN_ATTACKS: usize = 25;

/// Attacks both hypervisors must refuse: each would give the guest
/// hypervisor memory, a writable page table, or a way around validation.
const ESSENTIAL: &[&str] = &[
    "map_hypervisor_table_ro",
    "map_hypervisor_image_rw",
    "map_m2p_rw_update_va",
    "map_m2p_rw_mmu_update",
    "map_m2p_rw_as_domid_xen",
    "own_l1_rw_update_va",
    "own_l4_rw_mmu_update",
    "write_pte_through_ro_mapping",
    "writable_frame_as_l1",
    "pin_l4_with_reserved_slots",
    "reserved_slot_redirect",
    "reserved_slot_clear",
    "superpage_l2",
    "superpage_l3",
    "linear_rw",
    "linear_l4_to_l1",
    "linear_l2_to_l4",
    "linear_chain",
    "give_back_mapped",
    "give_back_pinned_table",
    "give_back_hypervisor_frame",
    "pin_table_mapping_itself_rw",
    "clear_page_table",
    "copy_page_from_hypervisor",
    "mmu_update_into_hypervisor_table",
    "mmu_update_runs_off_mapped",
];

/// One `ATTACK` line.
#[derive(Debug)]
struct Attack<'a> {
    name: &'a str,
    /// `refused`, `SUCCEEDED` or `ERROR`.
    verdict: &'a str,
    detail: &'a str,
}

fn attacks<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<Attack<'a>> {
    lines
        .filter_map(|l| l.strip_prefix("ATTACK "))
        .map(|rest| {
            let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            let (verdict, detail) = rest.split_once(' ').unwrap_or((rest, ""));
            Attack { name, verdict, detail }
        })
        .collect()
}

/// The `HOSTILE refused=N succeeded=M errors=K` line's numbers.
fn summary<'a>(mut lines: impl Iterator<Item = &'a str>) -> Option<(usize, usize, usize)> {
    let line = lines.find_map(|l| l.strip_prefix("HOSTILE "))?;
    let count = |key: &str| usize::try_from(hvtest::field(line, key)?).ok();
    Some((count("refused")?, count("succeeded")?, count("errors")?))
}

fn not_refused(all: &[Attack<'_>]) -> Vec<String> {
    all.iter().filter(|a| a.verdict != "refused").map(|a| format!("{} {} {}", a.name, a.verdict, a.detail)).collect()
}

fn check_list(all: &[Attack<'_>], o: &Outcome) {
    assert!(all.len() >= MIN_ATTACKS, "only {} attacks ran\n{}", all.len(), o.report());
    let mut names: Vec<&str> = all.iter().map(|a| a.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), all.len(), "an attack ran twice\n{}", o.report());
    for name in ESSENTIAL {
        assert!(names.contains(name), "no 'ATTACK {name}' line\n{}", o.report());
    }
}

#[test]
fn every_attack_is_refused_on_this_hypervisor() {
    let guest = image("guest-kernel.elf").unwrap_or_else(|e| panic!("{e}"));
    let q = Qemu::hypervisor().unwrap_or_else(|e| panic!("{e}")).module(&guest, "hostile");
    let o = q.run(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(!o.serial.contains("FATAL"), "the hypervisor or the guest faulted\n{}", o.report());
    let all = attacks(o.serial.lines());
    check_list(&all, &o);
    let bad = not_refused(&all);
    assert!(bad.is_empty(), "attacks not refused on this hypervisor:\n  {}\n{}", bad.join("\n  "), o.report());
    assert_eq!(summary(o.serial.lines()), Some((all.len(), 0, 0)), "{}", o.report());
    assert!(o.hv_lines().any(|l| l == "d0: shut down (Poweroff)"), "{}", o.report());
    assert_eq!(o.exit(), Some(Exit::PowerOff), "{}", o.report());
}

#[test]
fn essential_attacks_are_refused_on_xen() {
    let guest = image("guest-kernel.elf").unwrap_or_else(|e| panic!("{e}"));
    let q = xen::dom0(&guest, "hostile").unwrap_or_else(|e| panic!("{e}"));
    let o = q.run_until(TIMEOUT, xen::dom0_ended).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(o.ending, Ending::TimedOut, "Xen did not report the end of dom0 in {TIMEOUT:?}\n{}", o.report());
    assert_ne!(xen::dom0_end(&o.serial), Some(Dom0End::XenPanic), "{}", o.report());
    let all = attacks(xen::guest_lines(&o));
    check_list(&all, &o);
    let (refused, succeeded, errors) = summary(xen::guest_lines(&o))
        .unwrap_or_else(|| panic!("no HOSTILE line: the workload did not finish\n{}", o.report()));
    assert_eq!((refused + succeeded + errors, errors), (all.len(), 0), "{}", o.report());
    let bad: Vec<String> =
        not_refused(&all).into_iter().filter(|l| ESSENTIAL.iter().any(|e| l.split(' ').next() == Some(e))).collect();
    assert!(bad.is_empty(), "essential attacks not refused on Xen 4.17:\n  {}\n{}", bad.join("\n  "), o.report());
}

#[test]
fn attack_lines_parse() {
    let text =
        "ATTACK a refused EINVAL\nATTACK b SUCCEEDED mapped 0x1 as RW\nnoise\nHOSTILE refused=1 succeeded=1 errors=0\n";
    let all = attacks(text.lines());
    assert_eq!(all.len(), 2);
    assert_eq!((all[1].name, all[1].verdict, all[1].detail), ("b", "SUCCEEDED", "mapped 0x1 as RW"));
    assert_eq!(not_refused(&all), ["b SUCCEEDED mapped 0x1 as RW"]);
    assert_eq!(summary(text.lines()), Some((1, 1, 0)));
    assert_eq!(summary("HOSTILE refused=1".lines()), None);
}
