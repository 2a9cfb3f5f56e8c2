//! Hypercall numbers (`__HYPERVISOR_*` in `xen.h`) and their names.
//!
//! A 64-bit PV guest puts the number in `rax` and up to five arguments in
//! `rdi, rsi, rdx, r10, r8`, then enters through its hypercall page (see
//! [`crate::hypercall_page`]); the result comes back in `rax`, a negative
//! [`crate::Errno`] on failure. Number 11 is unassigned in Xen 4.17.

/// `set_trap_table(const trap_info_t *table)`: install the virtual IDT.
pub const SET_TRAP_TABLE: u64 = 0;
/// `mmu_update(reqs, count, done, foreigndom)`: checked page-table writes.
pub const MMU_UPDATE: u64 = 1;
/// `set_gdt(frames, entries)`: install a guest GDT.
pub const SET_GDT: u64 = 2;
/// `stack_switch(ss, sp)`: set the kernel stack for the next ring change.
pub const STACK_SWITCH: u64 = 3;
/// `set_callbacks(event, failsafe, syscall)`: register entry points.
pub const SET_CALLBACKS: u64 = 4;
/// `fpu_taskswitch(set)`: set or clear the virtual `CR0.TS`.
pub const FPU_TASKSWITCH: u64 = 5;
/// `sched_op_compat(cmd, arg)`: the pre-3.0.2 scheduler operation.
pub const SCHED_OP_COMPAT: u64 = 6;
/// `platform_op(op)`: privileged platform control (dom0).
pub const PLATFORM_OP: u64 = 7;
/// `set_debugreg(reg, value)`.
pub const SET_DEBUGREG: u64 = 8;
/// `get_debugreg(reg)`.
pub const GET_DEBUGREG: u64 = 9;
/// `update_descriptor(ma, desc)`: write one GDT/LDT descriptor.
pub const UPDATE_DESCRIPTOR: u64 = 10;
/// `memory_op(cmd, arg)`: reservations and physmap (`XENMEM_*`).
pub const MEMORY_OP: u64 = 12;
/// `multicall(calls, count)`: a batch of hypercalls.
pub const MULTICALL: u64 = 13;
/// `update_va_mapping(va, pte, flags)`: rewrite one L1 entry.
pub const UPDATE_VA_MAPPING: u64 = 14;
/// `set_timer_op(abs_ns)`: one-shot timer; 0 cancels.
pub const SET_TIMER_OP: u64 = 15;
/// `event_channel_op_compat(op)`: the pre-3.0.2 event-channel operation.
pub const EVENT_CHANNEL_OP_COMPAT: u64 = 16;
/// `xen_version(cmd, arg)` (`XENVER_*`).
pub const XEN_VERSION: u64 = 17;
/// `console_io(cmd, count, buf)` (`CONSOLEIO_*`).
pub const CONSOLE_IO: u64 = 18;
/// `physdev_op_compat(op)`: the pre-3.0.2 physical-device operation.
pub const PHYSDEV_OP_COMPAT: u64 = 19;
/// `grant_table_op(cmd, ops, count)` (`GNTTABOP_*`).
pub const GRANT_TABLE_OP: u64 = 20;
/// `vm_assist(cmd, type)` (`VMASST_*`).
pub const VM_ASSIST: u64 = 21;
/// `update_va_mapping_otherdomain(va, pte, flags, domid)`.
pub const UPDATE_VA_MAPPING_OTHERDOMAIN: u64 = 22;
/// `iret()`: return from a bounced exception (x86 only).
pub const IRET: u64 = 23;
/// `vcpu_op(cmd, vcpu, arg)` (`VCPUOP_*`).
pub const VCPU_OP: u64 = 24;
/// `set_segment_base(which, base)` (x86_64 only; `SEGBASE_*`).
pub const SET_SEGMENT_BASE: u64 = 25;
/// `mmuext_op(ops, count, done, foreigndom)` (`MMUEXT_*`).
pub const MMUEXT_OP: u64 = 26;
/// `xsm_op(op)`: security-module operations.
pub const XSM_OP: u64 = 27;
/// `nmi_op(cmd, arg)`.
pub const NMI_OP: u64 = 28;
/// `sched_op(cmd, arg)` (`SCHEDOP_*`).
pub const SCHED_OP: u64 = 29;
/// `callback_op(cmd, arg)` (`CALLBACKOP_*`).
pub const CALLBACK_OP: u64 = 30;
/// `xenoprof_op(op, arg)`.
pub const XENOPROF_OP: u64 = 31;
/// `event_channel_op(cmd, arg)` (`EVTCHNOP_*`).
pub const EVENT_CHANNEL_OP: u64 = 32;
/// `physdev_op(cmd, arg)`.
pub const PHYSDEV_OP: u64 = 33;
/// `hvm_op(cmd, arg)`.
pub const HVM_OP: u64 = 34;
/// `sysctl(op)`: toolstack system control.
pub const SYSCTL: u64 = 35;
/// `domctl(op)`: toolstack domain control.
pub const DOMCTL: u64 = 36;

/// The hypercall table this project implements covers numbers
/// `0..NR_HYPERCALLS` (Xen's `set_trap_table` through `domctl`); anything at
/// or above it is answered `-ENOSYS`. Xen itself numbers a few more
/// (37..=42 and the arch range 48..=55), which this crate does not describe.
pub const NR_HYPERCALLS: u64 = 37;

/// Xen's name for hypercall `nr` (`"mmu_update"` for 1), or `None` if `nr`
/// is unassigned or outside `0..NR_HYPERCALLS`.
pub const fn name(nr: u64) -> Option<&'static str> {
    Some(match nr {
        SET_TRAP_TABLE => "set_trap_table",
        MMU_UPDATE => "mmu_update",
        SET_GDT => "set_gdt",
        STACK_SWITCH => "stack_switch",
        SET_CALLBACKS => "set_callbacks",
        FPU_TASKSWITCH => "fpu_taskswitch",
        SCHED_OP_COMPAT => "sched_op_compat",
        PLATFORM_OP => "platform_op",
        SET_DEBUGREG => "set_debugreg",
        GET_DEBUGREG => "get_debugreg",
        UPDATE_DESCRIPTOR => "update_descriptor",
        MEMORY_OP => "memory_op",
        MULTICALL => "multicall",
        UPDATE_VA_MAPPING => "update_va_mapping",
        SET_TIMER_OP => "set_timer_op",
        EVENT_CHANNEL_OP_COMPAT => "event_channel_op_compat",
        XEN_VERSION => "xen_version",
        CONSOLE_IO => "console_io",
        PHYSDEV_OP_COMPAT => "physdev_op_compat",
        GRANT_TABLE_OP => "grant_table_op",
        VM_ASSIST => "vm_assist",
        UPDATE_VA_MAPPING_OTHERDOMAIN => "update_va_mapping_otherdomain",
        IRET => "iret",
        VCPU_OP => "vcpu_op",
        SET_SEGMENT_BASE => "set_segment_base",
        MMUEXT_OP => "mmuext_op",
        XSM_OP => "xsm_op",
        NMI_OP => "nmi_op",
        SCHED_OP => "sched_op",
        CALLBACK_OP => "callback_op",
        XENOPROF_OP => "xenoprof_op",
        EVENT_CHANNEL_OP => "event_channel_op",
        PHYSDEV_OP => "physdev_op",
        HVM_OP => "hvm_op",
        SYSCTL => "sysctl",
        DOMCTL => "domctl",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_but_eleven_has_a_name() {
        for nr in 0..NR_HYPERCALLS {
            assert_eq!(name(nr).is_none(), nr == 11, "hypercall {nr}");
        }
        assert_eq!(name(NR_HYPERCALLS), None);
        assert_eq!(name(u64::MAX), None);
    }

    #[test]
    fn names_match_numbers() {
        assert_eq!(name(MMU_UPDATE), Some("mmu_update"));
        assert_eq!(name(IRET), Some("iret"));
        assert_eq!(name(DOMCTL), Some("domctl"));
    }
}
