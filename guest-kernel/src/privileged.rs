//! The `privileged` workload: every privileged instruction a ring-3 kernel
//! might try reaches it as `#GP(0)`. Xen emulates port I/O (and more) for
//! its dom0, which has I/O privilege there, so this runs only where the
//! stricter rule holds: on this project's hypervisor.

use crate::probe::{self, probe};
use crate::selftest::{expect_gp, Report};
use abi::sched::ShutdownReason;
use guest_kernel::runtime::shutdown;
use guest_kernel::{println, traps};

/// Runs the checks, reports `PRIVILEGED pass=N fail=M`, and shuts down.
pub fn run() -> ! {
    traps::set_handler(probe::handler);
    let mut r = Report::default();
    r.check("cli_gp", expect_gp(probe!("cli"), "cli"));
    r.check("sti_gp", expect_gp(probe!("sti"), "sti"));
    r.check("hlt_gp", expect_gp(probe!("hlt"), "hlt"));
    r.check("in_gp", expect_gp(probe!("in al, dx", in("dx") 0x80u16, out("al") _), "in"));
    r.check("out_gp", expect_gp(probe!("out dx, al", in("dx") 0x80u16, in("al") 0u8), "out"));
    r.check(
        "wrmsr_gp",
        expect_gp(probe!("wrmsr", in("ecx") 0xc000_0080u32, in("eax") 0u32, in("edx") 0u32), "wrmsr EFER"),
    );
    r.check("rdmsr_gp", expect_gp(probe!("rdmsr", in("ecx") 0xc000_0080u32, out("eax") _, out("edx") _), "rdmsr EFER"));
    r.check("lgdt_gp", expect_gp(probe!("lgdt [{p}]", p = in(reg) [0u8; 10].as_ptr()), "lgdt"));
    r.check("lidt_gp", expect_gp(probe!("lidt [{p}]", p = in(reg) [0u8; 10].as_ptr()), "lidt"));
    r.check("mov_cr0_gp", expect_gp(probe!("mov cr0, {v}", v = in(reg) 0u64), "mov to %cr0"));
    r.check("mov_cr3_gp", expect_gp(probe!("mov cr3, {v}", v = in(reg) 0u64), "mov to %cr3"));
    r.check("mov_cr4_gp", expect_gp(probe!("mov cr4, {v}", v = in(reg) 0u64), "mov to %cr4"));
    println!("PRIVILEGED pass={} fail={}", r.pass, r.fail);
    shutdown(if r.fail == 0 { ShutdownReason::Poweroff } else { ShutdownReason::Crash })
}
