//! Everything the image needs in assembly: the Xen ELF notes, the entry
//! point, the hypercall page, the stacks, the shared-info window and the
//! trap entry stubs.

use crate::frame::{ERROR_CODE_VECTORS, STUB_SIZE};
use crate::layout::{PADDR_OFFSET, VIRT_BASE};
use abi::elfnote::{
    XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_GUEST_OS, XEN_ELFNOTE_GUEST_VERSION, XEN_ELFNOTE_HYPERCALL_PAGE, XEN_ELFNOTE_LOADER,
    XEN_ELFNOTE_PADDR_OFFSET, XEN_ELFNOTE_VIRT_BASE, XEN_ELFNOTE_XEN_VERSION,
};
use core::arch::global_asm;

/// Bytes of the kernel stack `_start` switches to (the domain builder's
/// boot stack is a single page).
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

/// Bytes of the stack `stack_switch` names for traps from guest user mode.
pub const USER_ENTRY_STACK_SIZE: usize = 16 * 1024;

/// One Xen ELF note as assembly: `namesz = 4`, `descsz`, `type`, the name
/// `"Xen\0"`, then `$desc` (data directives), padded to 4 bytes.
macro_rules! xen_note {
    ($label:literal, $ty:literal, $desc:expr) => {
        concat!(
            ".balign 4\n",
            ".long 4\n",
            ".long .Lnote_end_",
            $label,
            " - .Lnote_desc_",
            $label,
            "\n",
            ".long ",
            $ty,
            "\n",
            ".asciz \"Xen\"\n",
            ".Lnote_desc_",
            $label,
            ":\n",
            $desc,
            "\n",
            ".Lnote_end_",
            $label,
            ":\n",
            ".balign 4\n",
        )
    };
}

// The notes. No FEATURES note: a plain 64-bit PV kernel that makes every
// page-table change through hypercalls requires none of Xen's optional
// features (and gets no auto-translated physmap, writable page tables or
// supervisor-mode kernel).
global_asm!(
    ".pushsection .note.Xen, \"a\", @note",
    xen_note!("guest_os", "{guest_os}", ".asciz \"hv-guest-kernel\""),
    xen_note!("guest_version", "{guest_version}", concat!(".asciz \"", env!("CARGO_PKG_VERSION"), "\"")),
    xen_note!("loader", "{loader}", ".asciz \"generic\""),
    xen_note!("xen_version", "{xen_version}", ".asciz \"xen-3.0\""),
    xen_note!("virt_base", "{virt_base}", ".quad {virt_base_value}"),
    xen_note!("paddr_offset", "{paddr_offset}", ".quad {paddr_offset_value}"),
    xen_note!("entry", "{entry}", ".quad _start"),
    xen_note!("hypercall_page", "{hypercall_page}", ".quad hypercall_page"),
    ".popsection",
    guest_os = const XEN_ELFNOTE_GUEST_OS,
    guest_version = const XEN_ELFNOTE_GUEST_VERSION,
    loader = const XEN_ELFNOTE_LOADER,
    xen_version = const XEN_ELFNOTE_XEN_VERSION,
    virt_base = const XEN_ELFNOTE_VIRT_BASE,
    virt_base_value = const VIRT_BASE,
    paddr_offset = const XEN_ELFNOTE_PADDR_OFFSET,
    paddr_offset_value = const PADDR_OFFSET,
    entry = const XEN_ELFNOTE_ENTRY,
    hypercall_page = const XEN_ELFNOTE_HYPERCALL_PAGE,
);

// Entry: the domain builder starts us in kernel mode with rsi = the
// start_info VA, rsp = the top of one boot-stack page, events masked.
// Zero .bss (the builder does too; this keeps us independent of it), move
// to our own stack and enter Rust.
global_asm!(
    ".pushsection .text.entry, \"ax\"",
    ".globl _start",
    "_start:",
    "    cld",
    "    lea rdi, [rip + __bss_start]",
    "    lea rcx, [rip + __bss_end]",
    "    sub rcx, rdi",
    "    xor eax, eax",
    "    rep stosb",
    "    lea rsp, [rip + guest_boot_stack_top]",
    "    xor ebp, ebp",
    "    mov rdi, rsi",
    "    call {start}",
    "    ud2",
    ".popsection",
    // The hypercall page: the hypervisor overwrites it when it loads us.
    // int3 until then, so a call into an unfilled page traps.
    ".pushsection .hypercall_page, \"ax\", @progbits",
    ".balign 4096",
    ".globl hypercall_page",
    "hypercall_page:",
    ".fill 4096, 1, 0xcc",
    ".popsection",
    // Stacks, and the page whose mapping is replaced by shared_info.
    ".pushsection .bss.guest_stacks, \"aw\", @nobits",
    ".balign 4096",
    "guest_boot_stack:",
    ".skip {boot_stack}",
    ".globl guest_boot_stack_top",
    "guest_boot_stack_top:",
    ".balign 4096",
    "guest_user_entry_stack:",
    ".skip {user_entry_stack}",
    ".globl guest_user_entry_stack_top",
    "guest_user_entry_stack_top:",
    ".balign 4096",
    ".globl guest_shared_info_page",
    "guest_shared_info_page:",
    ".skip 4096",
    ".popsection",
    start = sym crate::runtime::rust_start,
    boot_stack = const BOOT_STACK_SIZE,
    user_entry_stack = const USER_ENTRY_STACK_SIZE,
);

// Trap entry. The stub of vector v sits at guest_trap_stubs + 16 * v. It
// undoes the bounce frame's rcx/r11, evens out the error code, pushes the
// vector and goes to the common path, which saves the registers as a
// TrapFrame, calls the dispatcher and leaves through the iret hypercall.
// Pushes are hand-encoded (0x6a = push imm8, 0x68 = push imm32, 0xe9 =
// jmp rel32) so every stub has the same shape whatever its vector.
global_asm!(
    ".pushsection .text.guest_traps, \"ax\"",
    ".balign 16",
    ".globl guest_trap_stubs",
    "guest_trap_stubs:",
    ".set .Lvec, 0",
    ".rept 256",
    "    .balign {stub_size}, 0xcc",
    "    pop rcx",
    "    pop r11",
    "    .if .Lvec < 32",
    "    .if (({ec_vectors} >> .Lvec) & 1) == 0",
    "    .byte 0x6a, 0",
    "    .endif",
    "    .else",
    "    .byte 0x6a, 0",
    "    .endif",
    "    .byte 0x68",
    "    .long .Lvec",
    "    .byte 0xe9",
    "    .long guest_trap_common - (. + 4)",
    "    .set .Lvec, .Lvec + 1",
    ".endr",
    ".balign {stub_size}, 0xcc",
    // linker.ld asserts the stubs are exactly 256 * STUB_SIZE bytes.
    ".globl guest_trap_stubs_end",
    "guest_trap_stubs_end:",
    "guest_trap_common:",
    "    push rax",
    "    push rbx",
    "    push rcx",
    "    push rdx",
    "    push rsi",
    "    push rdi",
    "    push rbp",
    "    push r8",
    "    push r9",
    "    push r10",
    "    push r11",
    "    push r12",
    "    push r13",
    "    push r14",
    "    push r15",
    "    mov rdi, rsp",
    "    mov rbx, rsp",
    "    and rsp, -16",
    "    cld",
    "    call {dispatch}",
    "    mov rsp, rbx",
    // The error-code slot becomes the iret flags word: VGCF_in_syscall
    // when returning from the syscall callback (the hypervisor may then
    // use sysret), else 0.
    "    xor eax, eax",
    "    cmp qword ptr [rsp + 15 * 8], {syscall_vector}",
    "    jne 2f",
    "    mov eax, {in_syscall}",
    "2:",
    "    mov [rsp + 16 * 8], rax",
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop r11",
    "    pop r10",
    "    pop r9",
    "    pop r8",
    "    pop rbp",
    "    pop rdi",
    "    pop rsi",
    "    pop rdx",
    "    pop rcx",
    "    pop rbx",
    "    pop rax",
    // Drop the vector; the flags word is on top.
    "    add rsp, 8",
    abi::xen_iret_asm!(),
    // The failsafe callback (the hypervisor could not load the segments of
    // a frame we returned to): its frame is rcx, r11, ds, es, fs, gs, rip,
    // cs, rflags, rsp, ss. Report and stop.
    ".globl guest_failsafe_callback",
    "guest_failsafe_callback:",
    "    pop rcx",
    "    pop r11",
    "    mov rdi, rsp",
    "    and rsp, -16",
    "    call {failsafe}",
    "    ud2",
    ".popsection",
    stub_size = const STUB_SIZE,
    ec_vectors = const ERROR_CODE_VECTORS,
    syscall_vector = const crate::traps::SYSCALL_CALLBACK_VECTOR,
    in_syscall = const abi::arch::VGCF_IN_SYSCALL,
    dispatch = sym crate::traps::dispatch,
    failsafe = sym crate::traps::failsafe,
);

extern "C" {
    static hypercall_page: [u8; 4096];
    static guest_trap_stubs: u8;
    static guest_failsafe_callback: u8;
    static guest_boot_stack_top: u8;
    static guest_user_entry_stack_top: u8;
    static guest_shared_info_page: u8;
    static __image_start: u8;
    static __image_end: u8;
}

/// The hypercall page's address (the `HYPERCALL_PAGE` note).
pub fn hypercall_page_addr() -> u64 {
    core::ptr::addr_of!(hypercall_page) as u64
}

/// The hypercall page's bytes as the hypervisor left them.
pub fn hypercall_page_bytes() -> &'static [u8; 4096] {
    // SAFETY: the page is part of the image; the hypervisor wrote it
    // before we started and nothing writes it afterwards.
    unsafe { &*core::ptr::addr_of!(hypercall_page) }
}

/// The address of the stub for vector 0 (vector `v` is `STUB_SIZE * v`
/// further).
pub fn trap_stubs_addr() -> u64 {
    core::ptr::addr_of!(guest_trap_stubs) as u64
}

/// The failsafe callback's entry point.
pub fn failsafe_callback_addr() -> u64 {
    core::ptr::addr_of!(guest_failsafe_callback) as u64
}

/// The top of the kernel stack.
pub fn boot_stack_top() -> u64 {
    core::ptr::addr_of!(guest_boot_stack_top) as u64
}

/// The top of the stack for traps from user mode (`stack_switch`).
pub fn user_entry_stack_top() -> u64 {
    core::ptr::addr_of!(guest_user_entry_stack_top) as u64
}

/// The page-aligned address whose mapping `shared::map` replaces with the
/// shared-info frame.
pub fn shared_info_window() -> u64 {
    core::ptr::addr_of!(guest_shared_info_page) as u64
}

/// The image's extent: `[start, end)`, `.bss` included, page-aligned.
pub fn image_range() -> (u64, u64) {
    (core::ptr::addr_of!(__image_start) as u64, core::ptr::addr_of!(__image_end) as u64)
}
