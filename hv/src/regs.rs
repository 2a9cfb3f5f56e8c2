//! The register frame saved on every entry to the hypervisor.
//!
//! Exceptions, interrupts and SYSCALLs all build the same frame on the
//! hypervisor stack (`arch::x86_64::traps`), lowest address first as laid
//! out here. Handlers change the frame; the exit path restores it with
//! `iretq`, so whatever a handler leaves here is what the guest resumes with.

/// Selector of a guest's 64-bit code segment (ring 3).
pub const GUEST_CS64: u64 = 0xe033;
/// Selector of a guest's data and stack segment (ring 3).
pub const GUEST_SS: u64 = 0xe02b;
/// The `vector` value of a frame built by the SYSCALL entry.
pub const SYSCALL_VECTOR: u64 = 0x100;

/// RFLAGS bits.
pub mod rflags {
    /// Trap flag.
    pub const TF: u64 = 1 << 8;
    /// Interrupt enable.
    pub const IF: u64 = 1 << 9;
    /// I/O privilege level (two bits).
    pub const IOPL: u64 = 3 << 12;
    /// Nested task.
    pub const NT: u64 = 1 << 14;
    /// Resume flag.
    pub const RF: u64 = 1 << 16;
    /// Virtual-8086 mode.
    pub const VM: u64 = 1 << 17;
    /// Alignment check.
    pub const AC: u64 = 1 << 18;
    /// Bit 1 reads as one.
    pub const FIXED: u64 = 1 << 1;
}

/// Saved registers, lowest address first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    /// r15.
    pub r15: u64,
    /// r14.
    pub r14: u64,
    /// r13.
    pub r13: u64,
    /// r12.
    pub r12: u64,
    /// r11 (the guest's RFLAGS after a SYSCALL).
    pub r11: u64,
    /// r10 (fourth hypercall argument).
    pub r10: u64,
    /// r9.
    pub r9: u64,
    /// r8 (fifth hypercall argument).
    pub r8: u64,
    /// rbp.
    pub rbp: u64,
    /// rdi (first hypercall argument).
    pub rdi: u64,
    /// rsi (second hypercall argument).
    pub rsi: u64,
    /// rdx (third hypercall argument).
    pub rdx: u64,
    /// rcx (the guest's RIP after a SYSCALL).
    pub rcx: u64,
    /// rbx.
    pub rbx: u64,
    /// rax (hypercall number in, result out).
    pub rax: u64,
    /// Vector, or [`SYSCALL_VECTOR`].
    pub vector: u64,
    /// Error code (0 when the vector has none).
    pub error_code: u64,
    /// Where execution resumes.
    pub rip: u64,
    /// Code selector.
    pub cs: u64,
    /// Flags.
    pub rflags: u64,
    /// Stack pointer.
    pub rsp: u64,
    /// Stack selector.
    pub ss: u64,
}

impl Regs {
    /// Whether the frame was taken from ring 3 (a guest).
    pub const fn from_guest(&self) -> bool {
        self.cs & 3 == 3
    }

    /// The five hypercall arguments, in order.
    pub const fn hypercall_args(&self) -> [u64; 5] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8]
    }

    /// Sets the five hypercall arguments (a continuation's).
    pub fn set_hypercall_args(&mut self, [a, b, c, d, e]: [u64; 5]) {
        (self.rdi, self.rsi, self.rdx, self.r10, self.r8) = (a, b, c, d, e);
    }

    /// General register number `n` (0 = rax … 15 = r15, the encoding's order).
    pub fn gpr_mut(&mut self, n: u8) -> &mut u64 {
        match n & 15 {
            0 => &mut self.rax,
            1 => &mut self.rcx,
            2 => &mut self.rdx,
            3 => &mut self.rbx,
            4 => &mut self.rsp,
            5 => &mut self.rbp,
            6 => &mut self.rsi,
            7 => &mut self.rdi,
            8 => &mut self.r8,
            9 => &mut self.r9,
            10 => &mut self.r10,
            11 => &mut self.r11,
            12 => &mut self.r12,
            13 => &mut self.r13,
            14 => &mut self.r14,
            _ => &mut self.r15,
        }
    }
}

const _: () = assert!(core::mem::size_of::<Regs>() == 22 * 8);
