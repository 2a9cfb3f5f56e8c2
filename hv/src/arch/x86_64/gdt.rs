//! The per-CPU GDT with Xen's reserved selectors, and the TSS.
//!
//! Like Xen, the GDT is 15 pages: entries 0–7167 are for the guest's own
//! descriptors (`set_gdt`, a later issue) and the page from entry 7168
//! (selector 0xe000) holds the hypervisor's, at the selectors Xen's PV ABI
//! fixes. Guests rely on 0xe023/0xe02b/0xe033 existing in every GDT.

use super::IST_STACK_SIZE;
use core::arch::asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// First GDT entry reserved for the hypervisor (selector 0xe000).
pub const FIRST_RESERVED_GDT_ENTRY: usize = 7168;
/// Entries in the GDT: 14 guest pages and one reserved page.
pub const GDT_ENTRIES: usize = FIRST_RESERVED_GDT_ENTRY + 512;

/// Hypervisor 64-bit code.
pub const HYPERVISOR_CS: u16 = 0xe008;
/// Hypervisor data and stack.
pub const HYPERVISOR_DS: u16 = 0xe010;
/// Guest 32-bit (compatibility) code, RPL 3.
pub const FLAT_RING3_CS32: u16 = 0xe023;
/// Guest data and stack, RPL 3.
pub const FLAT_RING3_DS: u16 = 0xe02b;
/// Guest 64-bit code, RPL 3.
pub const FLAT_RING3_CS64: u16 = 0xe033;
/// Hypervisor compatibility-mode code.
pub const HYPERVISOR_CS32: u16 = 0xe038;
/// The task state segment (a 16-byte descriptor).
pub const TSS_SELECTOR: u16 = 0xe040;
// 0xe050: the LDT slot (16 bytes), empty until guests can set an LDT.

/// The reserved descriptors, indexed from `FIRST_RESERVED_GDT_ENTRY`.
const RESERVED: [(u16, u64); 6] = [
    (HYPERVISOR_CS, 0x00af_9b00_0000_ffff),
    (HYPERVISOR_DS, 0x00cf_9300_0000_ffff),
    (FLAT_RING3_CS32, 0x00cf_fb00_0000_ffff),
    (FLAT_RING3_DS, 0x00cf_f300_0000_ffff),
    (FLAT_RING3_CS64, 0x00af_fb00_0000_ffff),
    (HYPERVISOR_CS32, 0x00cf_9b00_0000_ffff),
];

/// IST slots (1-based, as the IDT names them).
pub const IST_DOUBLE_FAULT: u8 = 1;
/// NMI stack.
pub const IST_NMI: u8 = 2;
/// Machine-check stack.
pub const IST_MCE: u8 = 3;
const IST_COUNT: usize = 3;

/// The 64-bit task state segment.
#[repr(C, packed(4))]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}
const _: () = assert!(core::mem::size_of::<Tss>() == 104);

/// Everything one CPU needs for its descriptor tables and stacks.
#[repr(C, align(4096))]
struct PerCpu {
    gdt: [u64; GDT_ENTRIES],
    tss: Tss,
    ist_stacks: [[u8; IST_STACK_SIZE]; IST_COUNT],
}

/// The boot CPU's tables. Written once by `init_boot_cpu` before anything
/// else runs on this CPU, then only read by the hardware.
struct PerCpuCell(UnsafeCell<PerCpu>);
// SAFETY: only the boot CPU touches it, once, with interrupts off.
unsafe impl Sync for PerCpuCell {}

static BOOT_CPU: PerCpuCell = PerCpuCell(UnsafeCell::new(PerCpu {
    gdt: [0; GDT_ENTRIES],
    tss: Tss { reserved0: 0, rsp: [0; 3], reserved1: 0, ist: [0; 7], reserved2: 0, reserved3: 0, iomap_base: 0 },
    ist_stacks: [[0; IST_STACK_SIZE]; IST_COUNT],
}));

extern "C" {
    /// Top of the boot stack (boot.rs), which is this CPU's hypervisor stack.
    static boot_stack_top: u8;
}

const fn index(selector: u16) -> usize {
    (selector >> 3) as usize
}

/// A 16-byte available-64-bit-TSS descriptor for `base`.
fn tss_descriptor(base: u64) -> [u64; 2] {
    let limit = (core::mem::size_of::<Tss>() - 1) as u64;
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40) // present, DPL 0, type 9 (available 64-bit TSS)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    [low, base >> 32]
}

/// Fills and loads the boot CPU's GDT and TSS, reloading every segment.
pub fn init_boot_cpu() {
    let cpu = BOOT_CPU.0.get();
    // SAFETY: runs once on the boot CPU before any other user of BOOT_CPU
    // (see `PerCpuCell`), so this is the only reference.
    let cpu = unsafe { &mut *cpu };
    for (selector, descriptor) in RESERVED {
        cpu.gdt[index(selector)] = descriptor;
    }
    let stack_top = core::ptr::addr_of!(boot_stack_top) as u64;
    debug_assert_eq!(stack_top % 16, 0);
    cpu.tss.rsp = [stack_top, 0, 0];
    for (i, stack) in cpu.ist_stacks.iter().enumerate() {
        cpu.tss.ist[i] = stack.as_ptr() as u64 + IST_STACK_SIZE as u64;
    }
    // No I/O bitmap: every port faults at CPL 3.
    cpu.tss.iomap_base = core::mem::size_of::<Tss>() as u16;
    let [low, high] = tss_descriptor(core::ptr::addr_of!(cpu.tss) as u64);
    cpu.gdt[index(TSS_SELECTOR)] = low;
    cpu.gdt[index(TSS_SELECTOR) + 1] = high;

    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let gdtr = Pointer { limit: (GDT_ENTRIES * 8 - 1) as u16, base: cpu.gdt.as_ptr() as u64 };
    // SAFETY: the GDT holds valid code/data descriptors at the selectors we
    // load and a valid TSS; the far return reloads CS with 0xe008, which
    // describes the same flat 64-bit code segment we run in.
    unsafe {
        asm!(
            "lgdt [{gdtr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {ds:e}",
            "mov es, {ds:e}",
            "mov ss, {ds:e}",
            "ltr {tss:x}",
            gdtr = in(reg) &gdtr,
            cs = const HYPERVISOR_CS as u64,
            ds = in(reg) u32::from(HYPERVISOR_DS),
            tss = in(reg) TSS_SELECTOR,
            tmp = out(reg) _,
        );
    }
}

/// The guest's part of the boot CPU's GDT (entries below the reserved ones).
fn guest_entries() -> &'static mut [u64] {
    // SAFETY: one CPU, and the hypervisor takes this reference only while
    // handling a hypercall, never holding it across another; the hardware
    // reads the GDT only when a selector is loaded.
    let cpu = unsafe { &mut *BOOT_CPU.0.get() };
    &mut cpu.gdt[..FIRST_RESERVED_GDT_ENTRY]
}

/// One past the highest guest entry that may be non-zero: what a switch
/// between domains has to clear (usually nothing: few guests load a GDT).
static GUEST_ENTRIES_USED: AtomicUsize = AtomicUsize::new(0);

/// Installs checked guest descriptors as entries 0.., clearing the rest of
/// the guest's part.
pub fn load_guest_entries(descriptors: &mut dyn Iterator<Item = u64>) {
    let entries = guest_entries();
    let used = GUEST_ENTRIES_USED.load(Ordering::Relaxed).min(entries.len());
    entries[..used].fill(0);
    let mut n = 0;
    for (slot, d) in entries.iter_mut().zip(descriptors) {
        *slot = d;
        n += 1;
    }
    GUEST_ENTRIES_USED.store(n, Ordering::Relaxed);
}

/// Installs one checked guest descriptor.
pub fn set_guest_entry(index: usize, descriptor: u64) {
    if let Some(slot) = guest_entries().get_mut(index) {
        *slot = descriptor;
        GUEST_ENTRIES_USED.fetch_max(index + 1, Ordering::Relaxed);
    }
}
