//! Exception and interrupt entry, and the SYSCALL entry points.
//!
//! Every IDT vector has a 16-byte stub at `trap_stubs + 16 * vector` that
//! pushes a zero error code when the CPU does not, then the vector, and
//! joins `trap_common`, which saves the general registers as a
//! [`TrapFrame`] and calls [`hv_trap`]. Guests do not run yet, so every
//! trap is the hypervisor's own: faults are fatal and reported in full.

use super::cpu;
use super::power;
use crate::console;
use hv::exit::Exit;

/// Registers saved on entry, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

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
     * SYSCALL from ring 3. No guest runs yet, so this cannot happen; if it
     * does, report it from a known stack rather than trust the caller's.
     */
    .global syscall_entry64
syscall_entry64:
    movabs $boot_stack_top, %rsp
    mov %rcx, %rdi
    mov $64, %esi
    call hv_unexpected_syscall
    ud2

    .global syscall_entry32
syscall_entry32:
    movabs $boot_stack_top, %rsp
    mov %rcx, %rdi
    mov $32, %esi
    call hv_unexpected_syscall
    ud2
"#,
    options(att_syntax)
);

extern "C" {
    static trap_stubs: [u8; 256 * 16];
    fn syscall_entry64();
    fn syscall_entry32();
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

/// Conventional names of the architectural exception vectors.
pub fn vector_name(vector: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF",
        "RSVD", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "RSVD", "RSVD", "RSVD", "RSVD", "RSVD", "RSVD", "#HV", "#VC",
        "#SX", "RSVD",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("interrupt")
}

/// Common trap handler, called by `trap_common` with interrupts off.
#[no_mangle]
extern "C" fn hv_trap(frame: &mut TrapFrame) {
    if frame.vector == 2 {
        // An NMI is not a fault in the code it interrupted.
        log::warn!("NMI received at rip {:#018x}; continuing", frame.rip);
        return;
    }
    fatal_trap(frame);
}

/// Reports a trap the hypervisor cannot handle and stops the machine.
fn fatal_trap(frame: &TrapFrame) -> ! {
    let where_ = if frame.cs & 3 == 0 { "in the hypervisor" } else { "from ring 3 with no guest running" };
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

/// A SYSCALL arrived although no guest runs.
#[no_mangle]
extern "C" fn hv_unexpected_syscall(rip: u64, mode: u64) -> ! {
    console::emergency(format_args!("FATAL: {mode}-bit SYSCALL from rip {rip:#018x} with no guest running\n"));
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
