//! x86_64 specifics: reserved selectors, the guest address space, register frames.
//!
//! A 64-bit PV guest kernel runs at CPL 3 like its user space; the selectors
//! below live in the hypervisor's reserved GDT page, which every guest GDT
//! shares from entry [`FIRST_RESERVED_GDT_ENTRY`] on.

/// First GDT page reserved for the hypervisor (guest GDTs may use pages
/// below it).
pub const FIRST_RESERVED_GDT_PAGE: usize = 14;
/// First GDT byte reserved for the hypervisor.
pub const FIRST_RESERVED_GDT_BYTE: usize = FIRST_RESERVED_GDT_PAGE * 4096;
/// First GDT entry reserved for the hypervisor (selector `0xe000`).
pub const FIRST_RESERVED_GDT_ENTRY: usize = FIRST_RESERVED_GDT_BYTE / 8;

/// 32-bit ring-3 code segment (GDT entry 7172).
pub const FLAT_RING3_CS32: u16 = 0xe023;
/// 64-bit ring-3 code segment (GDT entry 7174).
pub const FLAT_RING3_CS64: u16 = 0xe033;
/// 32-bit ring-3 data segment (GDT entry 7173).
pub const FLAT_RING3_DS32: u16 = 0xe02b;
/// 64-bit ring-3 data segment: the NULL selector.
pub const FLAT_RING3_DS64: u16 = 0x0000;
/// 32-bit ring-3 stack segment (same descriptor as `DS32`).
pub const FLAT_RING3_SS32: u16 = 0xe02b;
/// 64-bit ring-3 stack segment (same descriptor as `DS32`).
pub const FLAT_RING3_SS64: u16 = 0xe02b;

/// Guest-kernel 64-bit data segment (NULL).
pub const FLAT_KERNEL_DS64: u16 = FLAT_RING3_DS64;
/// Guest-kernel 32-bit data segment.
pub const FLAT_KERNEL_DS32: u16 = FLAT_RING3_DS32;
/// Guest-kernel data segment (the 64-bit one: NULL).
pub const FLAT_KERNEL_DS: u16 = FLAT_KERNEL_DS64;
/// Guest-kernel 64-bit code segment.
pub const FLAT_KERNEL_CS64: u16 = FLAT_RING3_CS64;
/// Guest-kernel 32-bit code segment.
pub const FLAT_KERNEL_CS32: u16 = FLAT_RING3_CS32;
/// Guest-kernel code segment (the 64-bit one).
pub const FLAT_KERNEL_CS: u16 = FLAT_KERNEL_CS64;
/// Guest-kernel 64-bit stack segment.
pub const FLAT_KERNEL_SS64: u16 = FLAT_RING3_SS64;
/// Guest-kernel 32-bit stack segment.
pub const FLAT_KERNEL_SS32: u16 = FLAT_RING3_SS32;
/// Guest-kernel stack segment (the 64-bit one).
pub const FLAT_KERNEL_SS: u16 = FLAT_KERNEL_SS64;

/// Guest-user 64-bit data segment (NULL).
pub const FLAT_USER_DS64: u16 = FLAT_RING3_DS64;
/// Guest-user 32-bit data segment.
pub const FLAT_USER_DS32: u16 = FLAT_RING3_DS32;
/// Guest-user data segment (the 64-bit one: NULL).
pub const FLAT_USER_DS: u16 = FLAT_USER_DS64;
/// Guest-user 64-bit code segment.
pub const FLAT_USER_CS64: u16 = FLAT_RING3_CS64;
/// Guest-user 32-bit code segment.
pub const FLAT_USER_CS32: u16 = FLAT_RING3_CS32;
/// Guest-user code segment (the 64-bit one).
pub const FLAT_USER_CS: u16 = FLAT_USER_CS64;
/// Guest-user 64-bit stack segment.
pub const FLAT_USER_SS64: u16 = FLAT_RING3_SS64;
/// Guest-user 32-bit stack segment.
pub const FLAT_USER_SS32: u16 = FLAT_RING3_SS32;
/// Guest-user stack segment (the 64-bit one).
pub const FLAT_USER_SS: u16 = FLAT_USER_SS64;

/// The hypervisor's ring-0 code segment (Xen-internal, not in the public
/// headers; `STAR` carries it, and guests see it only there).
pub const HYPERVISOR_CS: u16 = 0xe008;
/// The hypervisor's ring-0 data segment (Xen-internal, not in the public
/// headers).
pub const HYPERVISOR_DS: u16 = 0xe010;

/// Start of the hypervisor's reserved virtual range (L4 slot 256).
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End of the hypervisor's reserved virtual range (L4 slot 272, exclusive).
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000;
/// Start of the read-only machine-to-physical table guests may read.
pub const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End of the machine-to-physical table (exclusive).
pub const MACH2PHYS_VIRT_END: u64 = 0xFFFF_8040_0000_0000;
/// Entries (one `u64` PFN per machine frame) the M2P table can hold.
pub const MACH2PHYS_NR_ENTRIES: u64 = (MACH2PHYS_VIRT_END - MACH2PHYS_VIRT_START) >> 3;

/// `set_segment_base`: set the FS base.
pub const SEGBASE_FS: u32 = 0;
/// `set_segment_base`: set the user GS base (the one `swapgs` swaps in).
pub const SEGBASE_GS_USER: u32 = 1;
/// `set_segment_base`: set the kernel GS base.
pub const SEGBASE_GS_KERNEL: u32 = 2;
/// `set_segment_base`: load user `%gs` with the selector in `base[15:0]`.
pub const SEGBASE_GS_USER_SEL: u32 = 3;

abi_enum! {
    /// The `which` argument of `set_segment_base`.
    pub enum SegmentBase: u32 {
        /// [`SEGBASE_FS`].
        Fs = SEGBASE_FS,
        /// [`SEGBASE_GS_USER`].
        GsUser = SEGBASE_GS_USER,
        /// [`SEGBASE_GS_KERNEL`].
        GsKernel = SEGBASE_GS_KERNEL,
        /// [`SEGBASE_GS_USER_SEL`].
        GsUserSel = SEGBASE_GS_USER_SEL,
    }
}

/// `vcpu_guest_context.flags`: the FPU context is valid.
pub const VGCF_I387_VALID: u64 = 1 << 0;
/// `vcpu_guest_context.flags`: the vCPU is in guest kernel mode.
pub const VGCF_IN_KERNEL: u64 = 1 << 2;
/// `vcpu_guest_context.flags`: the failsafe callback masks events.
pub const VGCF_FAILSAFE_DISABLES_EVENTS: u64 = 1 << 3;
/// `vcpu_guest_context.flags`: the syscall callback masks events.
pub const VGCF_SYSCALL_DISABLES_EVENTS: u64 = 1 << 4;
/// `vcpu_guest_context.flags`: the vCPU is online.
pub const VGCF_ONLINE: u64 = 1 << 5;
/// `iret_context.flags`: the guest entered by `syscall`; `sysret` may be used
/// to return.
pub const VGCF_IN_SYSCALL: u64 = 1 << 8;

/// `trap_info.flags`: the DPL a software `int` needs to reach the handler.
pub const TRAP_INFO_DPL_MASK: u8 = 3;
/// `trap_info.flags`: mask events on entry to the handler.
pub const TRAP_INFO_MASK_EVENTS: u8 = 4;

/// The forced-emulation prefix (`ud2; .ascii "xen"`): followed by `cpuid`,
/// the hypervisor emulates the `cpuid` for the guest.
pub const XEN_EMULATE_PREFIX: [u8; 5] = [0x0f, 0x0b, 0x78, 0x65, 0x6e];

/// `struct trap_info`: one virtual IDT entry (16 bytes).
///
/// `set_trap_table` reads an array of these until an entry with
/// `address == 0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TrapInfo {
    /// IN: exception vector.
    pub vector: u8,
    /// IN: bits 0-1 the DPL ([`TRAP_INFO_DPL_MASK`]); bit 2
    /// [`TRAP_INFO_MASK_EVENTS`].
    pub flags: u8,
    /// IN: code selector.
    pub cs: u16,
    /// Padding (implicit in C).
    pub _pad0: u32,
    /// IN: handler address.
    pub address: u64,
}

assert_layout!(TrapInfo, size = 16, align = 8, {
    vector @ 0, flags @ 1, cs @ 2, _pad0 @ 4, address @ 8,
});

impl TrapInfo {
    /// The DPL a software `int` needs to reach this handler.
    pub const fn dpl(&self) -> u8 {
        self.flags & TRAP_INFO_DPL_MASK
    }

    /// Whether entering this handler masks events.
    pub const fn masks_events(&self) -> bool {
        self.flags & TRAP_INFO_MASK_EVENTS != 0
    }
}

/// `struct cpu_user_regs` (x86_64): a vCPU's general registers (200 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CpuUserRegs {
    /// `r15`.
    pub r15: u64,
    /// `r14`.
    pub r14: u64,
    /// `r13`.
    pub r13: u64,
    /// `r12`.
    pub r12: u64,
    /// `rbp`.
    pub rbp: u64,
    /// `rbx`.
    pub rbx: u64,
    /// `r11`.
    pub r11: u64,
    /// `r10`.
    pub r10: u64,
    /// `r9`.
    pub r9: u64,
    /// `r8`.
    pub r8: u64,
    /// `rax`.
    pub rax: u64,
    /// `rcx`.
    pub rcx: u64,
    /// `rdx`.
    pub rdx: u64,
    /// `rsi`.
    pub rsi: u64,
    /// `rdi`.
    pub rdi: u64,
    /// Hypervisor-private: exception error code.
    pub error_code: u32,
    /// Hypervisor-private: exception vector.
    pub entry_vector: u32,
    /// `rip`.
    pub rip: u64,
    /// `cs`.
    pub cs: u16,
    /// Padding.
    pub _pad0: [u16; 1],
    /// The event mask saved with this frame (`rflags.IF == !mask`).
    pub saved_upcall_mask: u8,
    /// Padding.
    pub _pad1: [u8; 3],
    /// `rflags`.
    pub rflags: u64,
    /// `rsp`.
    pub rsp: u64,
    /// `ss`.
    pub ss: u16,
    /// Padding.
    pub _pad2: [u16; 3],
    /// `es`.
    pub es: u16,
    /// Padding.
    pub _pad3: [u16; 3],
    /// `ds`.
    pub ds: u16,
    /// Padding.
    pub _pad4: [u16; 3],
    /// `fs`.
    pub fs: u16,
    /// Padding.
    pub _pad5: [u16; 3],
    /// `gs`.
    pub gs: u16,
    /// Padding.
    pub _pad6: [u16; 3],
}

assert_layout!(CpuUserRegs, size = 200, align = 8, {
    r15 @ 0, r14 @ 8, r13 @ 16, r12 @ 24, rbp @ 32, rbx @ 40, r11 @ 48, r10 @ 56,
    r9 @ 64, r8 @ 72, rax @ 80, rcx @ 88, rdx @ 96, rsi @ 104, rdi @ 112,
    error_code @ 120, entry_vector @ 124, rip @ 128, cs @ 136, _pad0 @ 138,
    saved_upcall_mask @ 140, _pad1 @ 141, rflags @ 144, rsp @ 152,
    ss @ 160, _pad2 @ 162, es @ 168, _pad3 @ 170, ds @ 176, _pad4 @ 178,
    fs @ 184, _pad5 @ 186, gs @ 192, _pad6 @ 194,
});

/// `struct vcpu_guest_context` (x86_64): a vCPU's whole PV state, as
/// `VCPUOP_initialise` and the domain builder use it (5168 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct VcpuGuestContext {
    /// IN: FXSAVE image of the user-level FPU state.
    pub fpu_ctxt: [u8; 512],
    /// IN: `VGCF_*` flags.
    pub flags: u64,
    /// IN: general registers.
    pub user_regs: CpuUserRegs,
    /// IN: the virtual IDT.
    pub trap_ctxt: [TrapInfo; 256],
    /// IN: LDT linear address.
    pub ldt_base: u64,
    /// IN: LDT entries.
    pub ldt_ents: u64,
    /// IN: GDT machine frames.
    pub gdt_frames: [u64; 16],
    /// IN: GDT entries.
    pub gdt_ents: u64,
    /// IN: kernel stack segment (virtual TSS SS1).
    pub kernel_ss: u64,
    /// IN: kernel stack pointer (virtual TSS SP1).
    pub kernel_sp: u64,
    /// IN: CR0-CR7; `ctrlreg[3]` is the kernel L4, `ctrlreg[1]` the user L4
    /// (both as `xen_pfn_to_cr3` values).
    pub ctrlreg: [u64; 8],
    /// IN: DR0-DR7.
    pub debugreg: [u64; 8],
    /// IN: event upcall entry point.
    pub event_callback_eip: u64,
    /// IN: failsafe callback entry point.
    pub failsafe_callback_eip: u64,
    /// IN: syscall callback entry point.
    pub syscall_callback_eip: u64,
    /// IN: `VMASST_TYPE_*` bitmap.
    pub vm_assist: u64,
    /// IN: FS base.
    pub fs_base: u64,
    /// IN: kernel GS base.
    pub gs_base_kernel: u64,
    /// IN: user GS base.
    pub gs_base_user: u64,
}

assert_layout!(VcpuGuestContext, size = 5168, align = 8, {
    fpu_ctxt @ 0, flags @ 512, user_regs @ 520, trap_ctxt @ 720,
    ldt_base @ 4816, ldt_ents @ 4824, gdt_frames @ 4832, gdt_ents @ 4960,
    kernel_ss @ 4968, kernel_sp @ 4976, ctrlreg @ 4984, debugreg @ 5048,
    event_callback_eip @ 5112, failsafe_callback_eip @ 5120,
    syscall_callback_eip @ 5128, vm_assist @ 5136, fs_base @ 5144,
    gs_base_kernel @ 5152, gs_base_user @ 5160,
});

impl VcpuGuestContext {
    /// An all-zero context.
    pub const fn zeroed() -> Self {
        const ZERO_TRAP: TrapInfo = TrapInfo { vector: 0, flags: 0, cs: 0, _pad0: 0, address: 0 };
        const ZERO_REGS: CpuUserRegs = CpuUserRegs {
            r15: 0,
            r14: 0,
            r13: 0,
            r12: 0,
            rbp: 0,
            rbx: 0,
            r11: 0,
            r10: 0,
            r9: 0,
            r8: 0,
            rax: 0,
            rcx: 0,
            rdx: 0,
            rsi: 0,
            rdi: 0,
            error_code: 0,
            entry_vector: 0,
            rip: 0,
            cs: 0,
            _pad0: [0; 1],
            saved_upcall_mask: 0,
            _pad1: [0; 3],
            rflags: 0,
            rsp: 0,
            ss: 0,
            _pad2: [0; 3],
            es: 0,
            _pad3: [0; 3],
            ds: 0,
            _pad4: [0; 3],
            fs: 0,
            _pad5: [0; 3],
            gs: 0,
            _pad6: [0; 3],
        };
        VcpuGuestContext {
            fpu_ctxt: [0; 512],
            flags: 0,
            user_regs: ZERO_REGS,
            trap_ctxt: [ZERO_TRAP; 256],
            ldt_base: 0,
            ldt_ents: 0,
            gdt_frames: [0; 16],
            gdt_ents: 0,
            kernel_ss: 0,
            kernel_sp: 0,
            ctrlreg: [0; 8],
            debugreg: [0; 8],
            event_callback_eip: 0,
            failsafe_callback_eip: 0,
            syscall_callback_eip: 0,
            vm_assist: 0,
            fs_base: 0,
            gs_base_kernel: 0,
            gs_base_user: 0,
        }
    }
}

impl Default for VcpuGuestContext {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// `struct iret_context`: what the guest leaves at `rsp` when it calls
/// `HYPERVISOR_iret` (72 bytes, lowest address first).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct IretContext {
    /// IN: `rax` to restore (also the hypercall's result).
    pub rax: u64,
    /// IN: `r11` to restore.
    pub r11: u64,
    /// IN: `rcx` to restore.
    pub rcx: u64,
    /// IN: [`VGCF_IN_SYSCALL`] or 0.
    pub flags: u64,
    /// IN: return `rip`.
    pub rip: u64,
    /// IN: return `cs`; `(cs & 3) == 3` returns to user mode.
    pub cs: u64,
    /// IN: return `rflags`.
    pub rflags: u64,
    /// IN: return `rsp`.
    pub rsp: u64,
    /// IN: return `ss`.
    pub ss: u64,
}

assert_layout!(IretContext, size = 72, align = 8, {
    rax @ 0, r11 @ 8, rcx @ 16, flags @ 24, rip @ 32, cs @ 40, rflags @ 48,
    rsp @ 56, ss @ 64,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trap_info_flags() {
        let t = TrapInfo { flags: 3 | TRAP_INFO_MASK_EVENTS, ..TrapInfo::default() };
        assert_eq!(t.dpl(), 3);
        assert!(t.masks_events());
        assert!(!TrapInfo::default().masks_events());
    }

    #[test]
    fn segment_base_conversion() {
        assert_eq!(SegmentBase::try_from(2), Ok(SegmentBase::GsKernel));
        assert_eq!(SegmentBase::try_from(4), Err(crate::UnknownValue(4)));
        for &s in SegmentBase::ALL {
            assert_eq!(SegmentBase::try_from(u32::from(s)), Ok(s));
        }
    }

    #[test]
    fn reserved_gdt_starts_at_selector_0xe000() {
        assert_eq!(FIRST_RESERVED_GDT_ENTRY, 7168);
        assert_eq!(FIRST_RESERVED_GDT_ENTRY << 3, 0xe000);
        assert_eq!(MACH2PHYS_NR_ENTRIES, 1 << 35);
    }
}
