//! x86_64: boot, descriptor tables, traps, serial port, power.

pub mod apic;
mod boot;
pub mod clock;
pub mod cpu;
pub mod gdt;
pub mod idt;
pub mod paging;
pub mod power;
pub mod serial;
pub mod traps;

/// Size of each per-CPU stack (boot/hypervisor stack).
pub const STACK_SIZE: usize = 64 * 1024;
/// Size of each interrupt stack (IST) for faults that need a known-good stack.
pub const IST_STACK_SIZE: usize = 16 * 1024;

/// Brings up the boot CPU: descriptor tables, traps, SYSCALL, control bits.
pub fn init_boot_cpu() {
    cpu::disable_pic();
    gdt::init_boot_cpu();
    idt::init();
    cpu::init_features();
    cpu::init_syscall(traps::syscall_entry_addr(), traps::syscall32_entry_addr());
}
