//! Workloads that misbehave on purpose: the hypervisor must contain them
//! without faulting itself.
//!
//! - `fault-no-handler`, `fault-bad-stack`: faults the hypervisor cannot
//!   deliver, so it must crash this domain and say why.
//! - `hostile`: the attacks a PV guest would try on the memory model
//!   (SPEC §3.9), one `ATTACK <name> refused <errno or trap>` or
//!   `ATTACK <name> SUCCEEDED <what>` line each (`ERROR` when the attack
//!   could not be set up), then `HOSTILE refused=N succeeded=M errors=K`;
//!   powers off when every attack was refused, crashes otherwise. After
//!   each attack it checks the attack left no trace (entries, contents,
//!   the reservation and the kernel's free frames as they were) and the
//!   kernel still works; a trace makes the attack count as succeeded.
//!   `INFO hostile:` lines record what the verdicts rest on where the
//!   hypervisors may differ (a pinned L4's reserved slots, a valid entry
//!   stored through a read-only mapping, what a deferred give-back did).

mod calls;
mod lab;
mod mappings;
mod tables;

use crate::probe;
use abi::sched::ShutdownReason;
use guest_kernel::hypercall::hv;
use guest_kernel::mm;
use guest_kernel::runtime::{shutdown, start_info};
use guest_kernel::{println, shared, traps};
use lab::{aftermath, Attack, Counts, Lab, Verdict};

/// Every attack, in the order they run.
const ATTACKS: &[(&str, Attack)] = &[
    // Frames that are not ours.
    ("map_frame_0", mappings::map_frame_0),
    ("map_hypervisor_table_ro", mappings::map_hypervisor_table_ro),
    ("map_hypervisor_image_rw", mappings::map_hypervisor_image_rw),
    ("map_m2p_rw_update_va", mappings::map_m2p_rw_update_va),
    ("map_m2p_rw_mmu_update", mappings::map_m2p_rw_mmu_update),
    ("map_m2p_rw_as_domid_xen", mappings::map_m2p_rw_as_domid_xen),
    ("pte_above_phys_width", mappings::pte_above_phys_width),
    ("update_va_mapping_hypervisor_va", mappings::update_va_mapping_hypervisor_va),
    // Our own page tables, writable.
    ("own_l1_rw_update_va", mappings::own_l1_rw_update_va),
    ("own_l4_rw_mmu_update", mappings::own_l4_rw_mmu_update),
    ("write_pte_through_ro_mapping", mappings::write_pte_through_ro_mapping),
    ("writable_frame_as_l1", mappings::writable_frame_as_l1),
    // The hypervisor's L4 slots.
    ("pin_l4_with_reserved_slots", mappings::pin_l4_with_reserved_slots),
    ("reserved_slot_redirect", mappings::reserved_slot_redirect),
    ("reserved_slot_clear", mappings::reserved_slot_clear),
    // Entries no level allows.
    ("superpage_l2", mappings::superpage_l2),
    ("superpage_l3", mappings::superpage_l3),
    ("linear_rw", mappings::linear_rw),
    ("linear_l4_to_l1", mappings::linear_l4_to_l1),
    ("linear_l2_to_l4", mappings::linear_l2_to_l4),
    ("l1_uncached", mappings::l1_uncached),
    ("l1_pat", mappings::l1_pat),
    // Frames still in use, given back.
    ("give_back_mapped", tables::give_back_mapped),
    ("give_back_pinned_table", tables::give_back_pinned_table),
    ("give_back_hypervisor_frame", tables::give_back_hypervisor_frame),
    // Pins and base pointers.
    ("unpin_not_pinned", tables::unpin_not_pinned),
    ("pin_writable_frame", tables::pin_writable_frame),
    ("double_pin", tables::double_pin),
    ("pin_hypervisor_frame", tables::pin_hypervisor_frame),
    ("unpin_hypervisor_frame", tables::unpin_hypervisor_frame),
    ("baseptr_l1", tables::baseptr_l1),
    ("baseptr_garbage", tables::baseptr_garbage),
    ("baseptr_hypervisor_frame", tables::baseptr_hypervisor_frame),
    ("user_baseptr_l1", tables::user_baseptr_l1),
    // Validation that must look all the way down.
    ("pin_table_mapping_itself_rw", tables::pin_table_mapping_itself_rw),
    ("pin_l1_mapping_m2p_rw", tables::pin_l1_mapping_m2p_rw),
    ("linear_chain", tables::linear_chain),
    // Pages the hypervisor writes or reads for us.
    ("clear_page_table", tables::clear_page_table),
    ("clear_page_m2p", tables::clear_page_m2p),
    ("copy_page_into_table", tables::copy_page_into_table),
    ("copy_page_from_hypervisor", tables::copy_page_from_hypervisor),
    // mmu_update requests aimed elsewhere; other domains.
    ("machphys_update_foreign", calls::machphys_update_foreign),
    ("mmu_update_into_m2p", calls::mmu_update_into_m2p),
    ("mmu_update_into_hypervisor_table", calls::mmu_update_into_hypervisor_table),
    ("mmu_update_misaligned_ptr", calls::mmu_update_misaligned_ptr),
    ("mmu_update_huge_ptr", calls::mmu_update_huge_ptr),
    ("mmu_update_nonexistent_domid", calls::mmu_update_nonexistent_domid),
    ("mmuext_op_nonexistent_domid", calls::mmuext_op_nonexistent_domid),
    ("update_va_mapping_nonexistent_domid", calls::update_va_mapping_nonexistent_domid),
    ("multicall_map_m2p_rw", calls::multicall_map_m2p_rw),
    // Descriptor tables.
    ("set_gdt_tss", calls::set_gdt_tss),
    ("set_gdt_page_table", calls::set_gdt_page_table),
    ("update_descriptor_page_table", calls::update_descriptor_page_table),
    ("update_descriptor_tss", calls::update_descriptor_tss),
    ("gdt_frame_writable", calls::gdt_frame_writable),
    ("update_descriptor_installed_gdt", calls::update_descriptor_installed_gdt),
    // Pointers into the hypervisor; lists that run off their mapping.
    ("list_in_hypervisor_range", calls::list_in_hypervisor_range),
    ("done_into_m2p", calls::done_into_m2p),
    ("xen_version_into_m2p", calls::xen_version_into_m2p),
    ("memory_op_arg_in_hypervisor_range", calls::memory_op_arg_in_hypervisor_range),
    ("increase_reservation_list_in_hypervisor_range", calls::increase_reservation_list_in_hypervisor_range),
    ("multicall_list_in_hypervisor_range", calls::multicall_list_in_hypervisor_range),
    ("set_trap_table_in_hypervisor_range", calls::set_trap_table_in_hypervisor_range),
    ("mmu_update_runs_off_mapped", calls::mmu_update_runs_off_mapped),
    ("mmuext_op_runs_off_mapped", calls::mmuext_op_runs_off_mapped),
    // Last: it leaves shared info unmapped.
    ("give_back_shared_info", tables::give_back_shared_info),
];

/// The `hostile` workload: runs every attack and shuts down.
pub fn run() -> ! {
    traps::set_handler(probe::handler);
    if let Err(e) = traps::install(&[]) {
        println!("HOSTILE cannot start: set_trap_table: {e}");
        shutdown(ShutdownReason::Crash);
    }
    // For `cr2` in the fault reports; the attacks do without.
    let _ = shared::map(start_info().shared_info);
    let lab = match mm::init().map_err(|e| guest_kernel::msg!("mm::init: {e}")).and_then(|_| Lab::set_up()) {
        Ok(lab) => lab,
        Err(why) => {
            println!("HOSTILE cannot start: {why}");
            shutdown(ShutdownReason::Crash);
        }
    };
    lab::info(format_args!("{lab}"));
    let (mut refused, mut succeeded, mut errors) = (0u32, 0u32, 0u32);
    for &(name, attack) in ATTACKS {
        let outcome = Counts::now(&lab).and_then(|before| Ok((attack(&lab)?, aftermath(&lab, &before))));
        match outcome {
            Ok((Verdict::Refused(how), Ok(()))) => {
                refused += 1;
                println!("ATTACK {name} refused {how}");
            }
            Ok((Verdict::Refused(how), Err(trace))) => {
                succeeded += 1;
                println!("ATTACK {name} SUCCEEDED left a trace: {trace} (the call gave {how})");
            }
            Ok((Verdict::Succeeded(what), _)) => {
                succeeded += 1;
                println!("ATTACK {name} SUCCEEDED {what}");
            }
            Err(why) => {
                errors += 1;
                println!("ATTACK {name} ERROR {why}");
            }
        }
    }
    println!("HOSTILE refused={refused} succeeded={succeeded} errors={errors}");
    shutdown(if succeeded == 0 && errors == 0 { ShutdownReason::Poweroff } else { ShutdownReason::Crash })
}

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
