//! The interrupt descriptor table.

use super::gdt::{HYPERVISOR_CS, IST_DOUBLE_FAULT, IST_MCE, IST_NMI};
use super::traps::stub_addr;
use core::arch::asm;
use core::cell::UnsafeCell;

/// One 16-byte IDT gate.
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const EMPTY: Gate =
        Gate { offset_low: 0, selector: 0, ist: 0, attributes: 0, offset_mid: 0, offset_high: 0, reserved: 0 };

    /// A present 64-bit interrupt gate (IF cleared on entry).
    fn interrupt(handler: u64, dpl: u8, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: HYPERVISOR_CS,
            ist,
            attributes: 0x8e | (dpl << 5),
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

struct IdtCell(UnsafeCell<[Gate; 256]>);
// SAFETY: written once by `init` on the boot CPU with interrupts off; after
// that only the hardware reads it.
unsafe impl Sync for IdtCell {}

static IDT: IdtCell = IdtCell(UnsafeCell::new([Gate::EMPTY; 256]));

/// Which IST stack a vector runs on (0: the current/TSS stack).
fn ist_for(vector: u8) -> u8 {
    match vector {
        2 => IST_NMI,
        8 => IST_DOUBLE_FAULT,
        18 => IST_MCE,
        _ => 0,
    }
}

/// Which privilege a software `int` needs to reach the vector directly.
/// As in Xen, `int3` and `into` are allowed from ring 3; every other
/// software interrupt from a guest raises `#GP`, which the hypervisor
/// bounces according to the guest's trap table.
fn dpl_for(vector: u8) -> u8 {
    match vector {
        3 | 4 => 3,
        _ => 0,
    }
}

/// Fills every vector with its stub and loads the IDT.
pub fn init() {
    // SAFETY: see `IdtCell`: this is the one writer, before `lidt`.
    let idt = unsafe { &mut *IDT.0.get() };
    for (vector, gate) in (0..=255u8).zip(idt.iter_mut()) {
        *gate = Gate::interrupt(stub_addr(vector), dpl_for(vector), ist_for(vector));
    }
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let idtr = Pointer { limit: (core::mem::size_of::<[Gate; 256]>() - 1) as u16, base: idt.as_ptr() as u64 };
    // SAFETY: every gate points at a valid stub in the hypervisor's code
    // segment, and the IDT is static.
    unsafe { asm!("lidt [{}]", in(reg) &idtr, options(readonly, nostack, preserves_flags)) }
}
