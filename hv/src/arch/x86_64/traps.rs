//! Exception, interrupt and SYSCALL entry, and the way back to guests.
//!
//! Every IDT vector has a 16-byte stub at `trap_stubs + 16 * vector` that
//! pushes a zero error code when the CPU does not, then the vector, and
//! joins `trap_common`, which saves the general registers as a
//! [`Regs`] frame and calls [`hv_trap`]. The SYSCALL entry builds the same
//! frame. Whatever the handler leaves in the frame is restored by
//! `trap_return` with `iretq`: that is how guests are resumed.
//!
//! Traps from a guest go to the guest runner; traps in the hypervisor are
//! fatal, except a fault on the one instruction that copies guest memory,
//! which is turned into an error for the copy's caller.

use super::cpu;
use super::power;
use crate::console;
use hv::exit::Exit;
use hv::regs::Regs;

core::arch::global_asm!(
    r#"
    .section .text.traps, "ax"
    .balign 16
    .global trap_stubs
trap_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    /* Vectors where the CPU pushes an error code: 8, 10-14, 17, 21, 29, 30. */
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    push $0
    .endif
    push $vec
    jmp trap_common
    .set vec, vec + 1
    .endr

trap_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    cld
    call hv_trap
    .global trap_return
trap_return:
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    iretq

    /*
     * SYSCALL from ring 3 (a guest). The CPU leaves the guest's RIP in rcx
     * and RFLAGS in r11 and does not switch stacks: park the guest's rsp,
     * take this CPU's hypervisor stack, and build the same frame an
     * exception from ring 3 would, so one exit path serves both.
     */
    .global syscall_entry64
syscall_entry64:
    mov %rsp, syscall_guest_rsp(%rip)
    movabs $boot_stack_top, %rsp
    push ${guest_ss}
    push syscall_guest_rsp(%rip)
    push %r11
    push ${guest_cs}
    push %rcx
    push $0
    push ${syscall_vector}
    jmp trap_common

    /* Compatibility-mode SYSCALL: no 32-bit guest code runs here. */
    .global syscall_entry32
syscall_entry32:
    movabs $boot_stack_top, %rsp
    mov %rcx, %rdi
    mov $32, %esi
    call hv_unexpected_syscall
    ud2

    /* Starts or resumes a guest from a saved frame: enter_guest(&Regs). */
    .global enter_guest
enter_guest:
    mov %rdi, %rsp
    jmp trap_return

    /*
     * Copies between hypervisor and guest memory with the guest's page
     * tables loaded: hv_copy_guest(dst, src, len) returns the bytes NOT
     * copied. Whole quadwords first, then the tail bytes. A fault on
     * either `rep movs` resumes at its fixup (see hv_trap), which returns
     * what is left: rcx counts quadwords in the first, bytes in the second.
     */
    .global hv_copy_guest, copy_guest_insn_q, copy_guest_fixup_q, copy_guest_insn_b, copy_guest_fixup_b
hv_copy_guest:
    mov %rdx, %rcx
    shr $3, %rcx
copy_guest_insn_q:
    rep movsq
    mov %rdx, %rcx
    and $7, %rcx
copy_guest_insn_b:
    rep movsb
    xor %eax, %eax
    ret
copy_guest_fixup_q:
    shl $3, %rcx
    and $7, %rdx
    lea (%rcx, %rdx), %rax
    ret
copy_guest_fixup_b:
    mov %rcx, %rax
    ret

    .section .bss.syscall, "aw", @nobits
    .balign 8
syscall_guest_rsp:
    .skip 8
"#,
    guest_ss = const hv::regs::GUEST_SS,
    guest_cs = const hv::regs::GUEST_CS64,
    syscall_vector = const hv::regs::SYSCALL_VECTOR,
    options(att_syntax)
);

extern "C" {
    static trap_stubs: [u8; 256 * 16];
    fn syscall_entry64();
    fn syscall_entry32();
    fn enter_guest(regs: *const Regs) -> !;
    fn hv_copy_guest(dst: *mut u8, src: *const u8, len: usize) -> usize;
    static copy_guest_insn_q: u8;
    static copy_guest_fixup_q: u8;
    static copy_guest_insn_b: u8;
    static copy_guest_fixup_b: u8;
}

/// Address of the entry stub for `vector`.
pub fn stub_addr(vector: u8) -> u64 {
    let base = core::ptr::addr_of!(trap_stubs) as u64;
    base + 16 * u64::from(vector)
}

/// The 64-bit SYSCALL entry point.
pub fn syscall_entry_addr() -> u64 {
    syscall_entry64 as *const () as u64
}

/// The compatibility-mode SYSCALL entry point.
pub fn syscall32_entry_addr() -> u64 {
    syscall_entry32 as *const () as u64
}

/// Switches to a guest: restores `regs` and `iretq`s to it. The guest's
/// page tables must be loaded, and `regs` must describe ring-3 state with
/// a canonical `rip` and `rsp` (the caller validated them).
pub fn resume_guest(regs: &Regs) -> ! {
    debug_assert!(regs.from_guest());
    // SAFETY: `enter_guest` only reads the frame and never returns; the
    // frame was built or validated by the hypervisor for ring 3.
    unsafe { enter_guest(regs) }
}

/// Copies `len` bytes between `dst` and `src`, one of which is a guest
/// address in the current address space, turning any fault into `Err`.
///
/// # Safety
/// The hypervisor side of the copy must be valid for `len` bytes, and the
/// guest side must have been checked with [`hv::guest::range_ok`], so that
/// a fault is the only way the copy can go wrong.
pub unsafe fn copy_guest(dst: *mut u8, src: *const u8, len: usize) -> Result<(), ()> {
    // SAFETY: the caller vouches for both ranges; faults are fixed up.
    let left = unsafe { hv_copy_guest(dst, src, len) };
    if left == 0 {
        Ok(())
    } else {
        Err(())
    }
}

/// Conventional names of the architectural exception vectors.
pub fn vector_name(vector: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF",
        "RSVD", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "RSVD", "RSVD", "RSVD", "RSVD", "RSVD", "RSVD", "#HV", "#VC",
        "#SX", "RSVD",
    ];
    match vector {
        hv::regs::SYSCALL_VECTOR => "SYSCALL",
        v => NAMES.get(v as usize).copied().unwrap_or("interrupt"),
    }
}

/// Common trap handler, called by `trap_common` with interrupts off.
#[no_mangle]
extern "C" fn hv_trap(frame: &mut Regs) {
    if frame.from_guest() && !matches!(frame.vector, 2 | 8 | 18) {
        crate::run::from_guest(frame);
        return;
    }
    match frame.vector {
        // An NMI is not a fault in the code it interrupted.
        2 => log::warn!("NMI received at rip {:#018x}; continuing", frame.rip),
        // A guest copy faulted: the copy reports what it could not do.
        13 | 14 if frame.rip == core::ptr::addr_of!(copy_guest_insn_q) as u64 => {
            frame.rip = core::ptr::addr_of!(copy_guest_fixup_q) as u64;
        }
        13 | 14 if frame.rip == core::ptr::addr_of!(copy_guest_insn_b) as u64 => {
            frame.rip = core::ptr::addr_of!(copy_guest_fixup_b) as u64;
        }
        // The timer interrupt while the hypervisor idles: the idle loop
        // goes on from its `hlt`.
        v if v == u64::from(super::apic::TIMER_VECTOR) => super::apic::eoi(),
        // Other external interrupts: the PIC's lines are masked, so these
        // are its spurious IRQ 7 and 15, or the APIC's spurious vector (no
        // EOI for those).
        32..=255 => log::debug!("spurious interrupt, vector {}", frame.vector),
        _ => fatal_trap(frame),
    }
}

/// Reports a trap the hypervisor cannot handle and stops the machine.
fn fatal_trap(frame: &Regs) -> ! {
    let where_ = if frame.from_guest() { "while a guest ran" } else { "in the hypervisor" };
    let cr2 = cpu::read_cr2();
    let cr3 = cpu::read_cr3();
    console::emergency(format_args!(
        "FATAL: {} (vector {}) {where_}, error code {:#x}\n",
        vector_name(frame.vector),
        frame.vector,
        frame.error_code
    ));
    let f = frame;
    let lines: [(&str, u64, &str, u64, &str, u64); 8] = [
        ("rip", f.rip, "cs", f.cs, "rflags", f.rflags),
        ("rsp", f.rsp, "ss", f.ss, "cr2", cr2),
        ("cr3", cr3, "rax", f.rax, "rbx", f.rbx),
        ("rcx", f.rcx, "rdx", f.rdx, "rsi", f.rsi),
        ("rdi", f.rdi, "rbp", f.rbp, "r8", f.r8),
        ("r9", f.r9, "r10", f.r10, "r11", f.r11),
        ("r12", f.r12, "r13", f.r13, "r14", f.r14),
        ("r15", f.r15, "", 0, "", 0),
    ];
    for (a, va, b, vb, c, vc) in lines {
        if b.is_empty() {
            console::emergency(format_args!("  {a:>6} {va:#018x}\n"));
        } else {
            console::emergency(format_args!("  {a:>6} {va:#018x}  {b:>6} {vb:#018x}  {c:>6} {vc:#018x}\n"));
        }
    }
    stop_with(Exit::HypervisorFault)
}

/// A compatibility-mode SYSCALL: no 32-bit code should be running.
#[no_mangle]
extern "C" fn hv_unexpected_syscall(rip: u64, mode: u64) -> ! {
    console::emergency(format_args!("FATAL: {mode}-bit SYSCALL from rip {rip:#018x}\n"));
    stop_with(Exit::HypervisorFault)
}

/// Logs the final line and stops the machine.
pub fn stop_with(exit: Exit) -> ! {
    match exit.debug_exit_code() {
        None => console::emergency(format_args!("{}\n", exit.describe())),
        Some(_) => {
            console::emergency(format_args!("stopping: {} (exit status {})\n", exit.describe(), exit.qemu_status()))
        }
    }
    power::stop(exit)
}
