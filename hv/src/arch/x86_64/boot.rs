//! Multiboot header and the 32-bit entry that gets us into long mode.
//!
//! QEMU's multiboot loader enters `start32` in 32-bit protected mode, paging
//! off, with the magic in `%eax` and the boot information's physical address
//! in `%ebx`. We build boot page tables that map
//!
//! - the first 8 GiB ([`BOOT_DIRECTMAP_BYTES`]) identically (dropped as
//!   soon as we run high),
//! - the same 8 GiB at the direct map (`DIRECTMAP_START`, L4 slot 262),
//! - the first GiB at the image's link address (L4 slot 261),
//!
//! with 2 MiB pages, enable long mode, and jump to [`hv_start64`] on the
//! boot stack with the magic and the boot information address as arguments.
//!
//! [`hv_start64`]: crate::setup::hv_start64
//! [`BOOT_DIRECTMAP_BYTES`]: hv::layout::BOOT_DIRECTMAP_BYTES

use hv::exit::Exit;

core::arch::global_asm!(
    r#"
    .set VIRT_OFFSET, {virt_offset}
    .set BOOT_PDS, {boot_pds}
    .set MB_MAGIC, 0x1BADB002
    /* page-align modules | memory info | header address fields valid */
    .set MB_FLAGS, 0x00010003

    .section .multiboot, "a"
    .balign 4
mb_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long mb_header - VIRT_OFFSET        /* header_addr */
    .long __image_start - VIRT_OFFSET    /* load_addr */
    .long __load_end - VIRT_OFFSET       /* load_end_addr */
    .long __image_end - VIRT_OFFSET      /* bss_end_addr */
    .long start32 - VIRT_OFFSET          /* entry_addr */

    .section .text.boot, "ax"
    .code32
    .global start32
start32:
    cli
    cld
    mov %eax, %edi                       /* magic: first argument */
    mov %ebx, %esi                       /* boot info: second argument */
    mov $(boot_stack_top - VIRT_OFFSET), %esp

    /* Long mode is required: CPUID 0x80000001 EDX bit 29. */
    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb no_long_mode
    mov $0x80000001, %eax
    cpuid
    bt $29, %edx
    jnc no_long_mode

    /* BOOT_PDS * 512 2 MiB pages covering 0-8 GiB, in consecutive PDs;
       entry n maps n << 21, whose upper half is n >> 11. */
    mov $(boot_pd - VIRT_OFFSET), %ebx
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax                       /* present | writable | 2 MiB */
    mov %eax, (%ebx, %ecx, 8)
    mov %ecx, %eax
    shr $11, %eax
    mov %eax, 4(%ebx, %ecx, 8)
    inc %ecx
    cmp $(BOOT_PDS * 512), %ecx
    jb 1b

    /* One PDPT entry per PD. */
    mov $(boot_pdpt_low - VIRT_OFFSET), %ebx
    mov $(boot_pd - VIRT_OFFSET + 3), %eax
    xor %ecx, %ecx
1:  mov %eax, (%ebx, %ecx, 8)
    add $4096, %eax
    inc %ecx
    cmp $BOOT_PDS, %ecx
    jb 1b

    /* The image: 0xFFFF82D080000000 is slot 261, L3 index 322, L2 index 0. */
    mov $(boot_pdpt_img - VIRT_OFFSET), %ebx
    mov $(boot_pd - VIRT_OFFSET + 3), %eax
    mov %eax, (322 * 8)(%ebx)

    mov $(boot_pml4 - VIRT_OFFSET), %ebx
    mov $(boot_pdpt_low - VIRT_OFFSET + 3), %eax
    mov %eax, 0(%ebx)                    /* identity, until we run high */
    mov %eax, (262 * 8)(%ebx)            /* direct map */
    mov $(boot_pdpt_img - VIRT_OFFSET + 3), %eax
    mov %eax, (261 * 8)(%ebx)            /* image */

    mov %ebx, %cr3
    mov %cr4, %eax
    or $(1 << 5), %eax                   /* PAE */
    mov %eax, %cr4
    mov $0xC0000080, %ecx                /* EFER */
    rdmsr
    or $(1 << 8), %eax                   /* LME */
    wrmsr
    mov %cr0, %eax
    or $((1 << 31) | (1 << 16) | 1), %eax /* PG | WP | PE */
    mov %eax, %cr0

    lgdt (boot_gdtr - VIRT_OFFSET)
    ljmp $0x08, $(start64_low - VIRT_OFFSET)

no_long_mode:
    mov $0xf4, %dx
    mov ${bad_boot}, %al
    out %al, %dx
2:  hlt
    jmp 2b

    .code64
start64_low:
    movabs $start64, %rax
    jmp *%rax
start64:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    movabs $boot_stack_top, %rsp
    xor %ebp, %ebp
    /* The upper halves of registers are undefined after the mode switch. */
    mov %edi, %edi
    mov %esi, %esi
    call hv_start64
    ud2

    .section .rodata.boot, "a"
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff             /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff             /* 0x10: data */
boot_gdtr:
    .word boot_gdtr - boot_gdt - 1
    .long boot_gdt - VIRT_OFFSET

    .section .bss.boot, "aw", @nobits
    .balign 4096
    .global boot_pml4
boot_pml4:
    .skip 4096
boot_pdpt_low:
    .skip 4096
    .global boot_pdpt_img
boot_pdpt_img:
    .skip 4096
boot_pd:
    .skip 4096 * BOOT_PDS
    /* Unmapped once memory is set up (paging::guard_stack): an overflow
       of the stack below faults instead of overwriting the page tables. */
    .global boot_stack_guard
boot_stack_guard:
    .skip 4096
    .global boot_stack_top
boot_stack:
    .skip {stack_size}
boot_stack_top:
"#,
    virt_offset = const hv::layout::IMAGE_VIRT_OFFSET,
    boot_pds = const hv::layout::BOOT_DIRECTMAP_BYTES >> 30,
    bad_boot = const match Exit::BadBoot.debug_exit_code() { Some(c) => c, None => 0 },
    stack_size = const super::STACK_SIZE,
    options(att_syntax)
);
