//! Thin wrappers over privileged instructions: ports, MSRs, control registers.

use core::arch::asm;

/// Writes a byte to an I/O port.
pub fn outb(port: u16, value: u8) {
    // SAFETY: port I/O has no memory effects visible to Rust; the ports we
    // use (serial, debug exit, ACPI) are owned by the hypervisor alone.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) }
}

/// Writes a 16-bit word to an I/O port.
pub fn outw(port: u16, value: u16) {
    // SAFETY: as for `outb`.
    unsafe { asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags)) }
}

/// Reads 1, 2 or 4 bytes from a port for a guest (`in`, emulated); the
/// caller checked the guest was given `port`, never one the hypervisor
/// drives.
pub fn port_in(port: u16, size: u8) -> u32 {
    match size {
        1 => inb(port).into(),
        2 => {
            let value: u16;
            // SAFETY: port I/O has no memory effects visible to Rust.
            unsafe { asm!("in ax, dx", in("dx") port, out("ax") value, options(nomem, nostack, preserves_flags)) }
            value.into()
        }
        _ => {
            let value: u32;
            // SAFETY: as above.
            unsafe { asm!("in eax, dx", in("dx") port, out("eax") value, options(nomem, nostack, preserves_flags)) }
            value
        }
    }
}

/// Writes 1, 2 or 4 bytes to a port for a guest (`out`, emulated); the
/// caller checked the guest was given `port`.
pub fn port_out(port: u16, size: u8, value: u32) {
    match size {
        1 => outb(port, value as u8),
        2 => outw(port, value as u16),
        // SAFETY: port I/O has no memory effects visible to Rust.
        _ => unsafe { asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags)) },
    }
}

/// Reads a byte from an I/O port.
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as for `outb`; reading the serial registers we use has no side
    // effect beyond the device's own state.
    unsafe { asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags)) }
    value
}

/// Model-specific registers we program.
pub mod msr {
    /// Extended feature enables.
    pub const EFER: u32 = 0xC000_0080;
    /// SYSCALL/SYSRET segment selectors.
    pub const STAR: u32 = 0xC000_0081;
    /// 64-bit SYSCALL entry point.
    pub const LSTAR: u32 = 0xC000_0082;
    /// Compatibility-mode SYSCALL entry point.
    pub const CSTAR: u32 = 0xC000_0083;
    /// RFLAGS bits cleared by SYSCALL.
    pub const SYSCALL_MASK: u32 = 0xC000_0084;
    /// Page attribute table.
    pub const PAT: u32 = 0x0000_0277;
}

/// Reads an MSR.
pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: we only read architectural MSRs that exist on every x86_64 CPU.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes an MSR.
///
/// # Safety
/// The value must keep the CPU in a state the hypervisor expects (e.g. long
/// mode stays enabled, entry points point at entry code).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller vouches for the value.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags))
    }
}

/// Reads CR2 (the faulting address of the last page fault).
pub fn read_cr2() -> u64 {
    let v;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Reads CR3 (the current page-table base).
pub fn read_cr3() -> u64 {
    let v;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Loads CR3, flushing non-global TLB entries.
///
/// # Safety
/// `value` must address a page-table tree that maps the hypervisor exactly
/// as the current one does.
pub unsafe fn write_cr3(value: u64) {
    // SAFETY: the caller vouches for the tables.
    unsafe { asm!("mov cr3, {}", in(reg) value, options(nostack, preserves_flags)) }
}

fn read_cr4() -> u64 {
    let v;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Exchanges the GS base with the shadow GS base (guest kernel and user
/// GS bases, across a guest mode switch; the hypervisor does not use GS).
pub fn swapgs() {
    // SAFETY: only the two GS base MSRs change, which only guests use.
    unsafe { asm!("swapgs", options(nomem, nostack, preserves_flags)) }
}

/// Flushes this CPU's whole TLB, global entries included. A CR3 reload
/// would keep global translations, and guests may set G in their L1
/// entries: a flush meant to end a guest's access to a frame must drop
/// those too. Toggling CR4.PGE does (SDM 4.10.4.1).
pub fn flush_tlb() {
    let cr4 = read_cr4();
    // SAFETY: clearing and restoring PGE changes no mapping; it only
    // invalidates every TLB entry.
    unsafe {
        asm!("mov cr4, {0}", "mov cr4, {1}", in(reg) cr4 & !CR4_PGE, in(reg) cr4, options(nostack, preserves_flags))
    }
}

/// Invalidates the TLB entry for one virtual address.
pub fn invlpg(va: u64) {
    // SAFETY: invalidating a TLB entry only makes the next access walk the
    // page tables again.
    unsafe { asm!("invlpg [{}]", in(reg) va, options(nostack, preserves_flags)) }
}

/// Executes CPUID leaf `leaf`, subleaf 0: `(eax, ebx, ecx, edx)`.
pub fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Stops the CPU for good.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: with interrupts off, `hlt` only waits for NMI/SMI.
        unsafe { asm!("cli; hlt", options(nomem, nostack)) }
    }
}

const EFER_SCE: u64 = 1 << 0;
const EFER_NXE: u64 = 1 << 11;
const CR4_PGE: u64 = 1 << 7;
const CR4_OSFXSR: u64 = 1 << 9;

/// Xen's PAT (an ABI with PV guests: their PTE cache bits index it):
/// WB, WT, UC-, UC, WC, WP, UC, UC.
pub const XEN_PAT: u64 = 0x0000_0501_0007_0406;

/// The RFLAGS bits SYSCALL clears, as Xen sets them: AC, VM, RF, NT, DF,
/// IF, TF.
pub const XEN_SYSCALL_MASK: u64 = (1 << 18) | (1 << 17) | (1 << 16) | (1 << 14) | (1 << 10) | (1 << 9) | (1 << 8);

/// Turns on NX (when present), global pages and Xen's PAT.
pub fn init_features() {
    let has_nx = cpuid(0x8000_0001).3 & (1 << 20) != 0;
    if has_nx {
        // SAFETY: enabling NX only gives meaning to NX bits in page tables;
        // the boot tables set none.
        unsafe { wrmsr(msr::EFER, rdmsr(msr::EFER) | EFER_NXE) };
    }
    // SAFETY: PGE and OSFXSR change no existing mapping or instruction.
    unsafe { asm!("mov cr4, {}", in(reg) read_cr4() | CR4_PGE | CR4_OSFXSR, options(nostack, preserves_flags)) };
    // SAFETY: Xen's PAT keeps entry 0 write-back, the only one the boot
    // tables use.
    unsafe { wrmsr(msr::PAT, XEN_PAT) };
}

/// Programs the SYSCALL MSRs as Xen does: `STAR` = guest 32-bit CS 0xe023
/// in 63:48 (so 64-bit SYSRET lands on 0xe033/0xe02b) and the hypervisor CS
/// 0xe008 in 47:32, Xen's flag mask, and the two entry points.
pub fn init_syscall(entry64: u64, entry32: u64) {
    let star = (u64::from(super::gdt::FLAT_RING3_CS32) << 48) | (u64::from(super::gdt::HYPERVISOR_CS) << 32);
    let msrs = [
        (msr::STAR, star),
        (msr::LSTAR, entry64),
        (msr::CSTAR, entry32),
        (msr::SYSCALL_MASK, XEN_SYSCALL_MASK),
        (msr::EFER, rdmsr(msr::EFER) | EFER_SCE),
    ];
    for (index, value) in msrs {
        // SAFETY: the entry points are the hypervisor's SYSCALL stubs, the
        // selectors exist in the GDT loaded by `gdt::init_boot_cpu`, and
        // EFER only gains SCE.
        unsafe { wrmsr(index, value) };
    }
}

/// Remaps the legacy PICs away from the exception vectors (to 0x20–0x2f)
/// and masks every line: the hypervisor takes no device interrupts yet, and
/// guests run with interrupts enabled, so an unmasked timer would arrive on
/// vector 8 and look like a double fault.
pub fn disable_pic() {
    const PIC1: u16 = 0x20;
    const PIC2: u16 = 0xa0;
    for (port, value) in [
        (PIC1, 0x11), // ICW1: initialise, ICW4 follows
        (PIC2, 0x11),
        (PIC1 + 1, 0x20), // ICW2: vector base
        (PIC2 + 1, 0x28),
        (PIC1 + 1, 4), // ICW3: slave on line 2
        (PIC2 + 1, 2),
        (PIC1 + 1, 1), // ICW4: 8086 mode
        (PIC2 + 1, 1),
        (PIC1 + 1, 0xff), // mask everything
        (PIC2 + 1, 0xff),
    ] {
        outb(port, value);
    }
}

/// FS base MSR.
pub const MSR_FS_BASE: u32 = 0xC000_0100;
/// GS base MSR (the guest kernel's GS while the guest is in kernel mode).
pub const MSR_GS_BASE: u32 = 0xC000_0101;
/// The GS base `swapgs` exchanges with (the guest user's, in kernel mode).
pub const MSR_SHADOW_GS_BASE: u32 = 0xC000_0102;

/// Loads a GS selector for guest user mode, keeping the kernel GS base.
///
/// # Safety
/// `selector` must be null or a valid data segment selector with RPL 3.
pub unsafe fn load_user_gs_selector(selector: u16) {
    // SAFETY: `swapgs` brackets the load so it lands in the user (shadow)
    // half; the caller vouches for the selector, so the load cannot fault.
    unsafe { asm!("swapgs", "mov gs, {0:x}", "swapgs", in(reg) selector, options(nostack, preserves_flags)) }
}

/// Enables interrupts, halts until one arrives (and is handled), and
/// disables them again.
pub fn wait_for_interrupt() {
    // SAFETY: `sti; hlt` is atomic with respect to interrupts (STI's shadow
    // covers HLT), so no wakeup is lost; every vector has a gate, and the
    // handlers of interrupts taken in the hypervisor only acknowledge them.
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) }
}

/// The data-segment selectors `ds, es, fs, gs` (the running guest's: the
/// hypervisor does not load them).
pub fn data_selectors() -> [u16; 4] {
    let (ds, es, fs, gs): (u16, u16, u16, u16);
    // SAFETY: reading segment selectors has no side effects.
    unsafe {
        asm!("mov {0:x}, ds", "mov {1:x}, es", "mov {2:x}, fs", "mov {3:x}, gs",
             out(reg) ds, out(reg) es, out(reg) fs, out(reg) gs, options(nomem, nostack, preserves_flags))
    }
    [ds, es, fs, gs]
}

/// Whether `selector` names a data segment the CPU would load (`verr`:
/// present and readable); the null selector counts as loadable.
fn loadable(selector: u16) -> bool {
    if selector & !3 == 0 {
        return true;
    }
    let ok: u8;
    // SAFETY: VERR only inspects the descriptor and sets ZF; it never faults
    // on a bad selector.
    unsafe { asm!("verr {0:x}", "setz {1}", in(reg) selector, out(reg_byte) ok, options(nomem, nostack)) }
    ok != 0
}

/// Loads the data-segment selectors `ds, es, fs, gs` of a guest being
/// switched to; one that would fault (its descriptor changed since) is
/// loaded as null. Loading FS and GS resets their bases: load those after.
pub fn load_data_selectors(selectors: [u16; 4]) {
    let [ds, es, fs, gs] = selectors.map(|s| if loadable(s) { s } else { 0 });
    // SAFETY: each selector is null or was just checked loadable, so the
    // loads cannot fault; the hypervisor addresses memory without them.
    unsafe {
        asm!("mov ds, {0:x}", "mov es, {1:x}", "mov fs, {2:x}", "mov gs, {3:x}",
             in(reg) ds, in(reg) es, in(reg) fs, in(reg) gs, options(nostack, preserves_flags))
    }
}
