//! Workloads that misbehave on purpose: the hypervisor must contain them
//! (crash this domain, report why) without faulting itself.

use abi::sched::ShutdownReason;
use guest_kernel::hypercall::hv;
use guest_kernel::println;
use guest_kernel::runtime::shutdown;

/// Clears the whole trap table, then executes `ud2`: there is no handler
/// for the `#UD`, so the hypervisor has to crash this domain.
pub fn fault_no_handler() -> ! {
    // SAFETY: a null list clears the table; the next thing this kernel does
    // is the deliberate fault, which is what the workload is for.
    let cleared = unsafe { hv().call(abi::hypercall::SET_TRAP_TABLE, [0; 5]) };
    println!("fault-no-handler: trap table cleared ({cleared:?}); executing ud2");
    // SAFETY: `ud2` only raises #UD.
    unsafe { core::arch::asm!("ud2") };
    println!("fault-no-handler: FAIL: still running after ud2 with no handler");
    shutdown(ShutdownReason::Poweroff)
}

/// Points the stack at an unmapped page and executes `ud2`: the
/// hypervisor cannot write the bounce frame and has to crash this domain.
pub fn fault_bad_stack() -> ! {
    println!("fault-bad-stack: rsp = 0x1000 (unmapped), executing ud2");
    // SAFETY: control never comes back here: the fault's delivery fails,
    // and if it did not, the handler would run on an unusable stack.
    unsafe { core::arch::asm!("mov rsp, {0}", "ud2", in(reg) 0x1000u64, options(noreturn)) }
}
