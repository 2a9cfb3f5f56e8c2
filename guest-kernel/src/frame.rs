//! Trap frames and the virtual IDT: what a handler sees, and the trap table
//! the kernel gives the hypervisor.
//!
//! The hypervisor bounces an exception onto the guest kernel stack as
//! `rcx, r11, [error code], rip, cs, rflags, rsp, ss` (from `rsp` up) and
//! jumps to the handler named in the trap table. The entry stubs (one per
//! vector, [`STUB_SIZE`] bytes apart) pop `rcx` and `r11`, push a zero
//! error code where the CPU gives none, push the vector number and every
//! general register, and call the Rust dispatcher with a [`TrapFrame`]; on
//! the way out they pop it all again and return with the `iret` hypercall,
//! whose flags word is `VGCF_in_syscall` for the syscall callback and 0
//! otherwise.

use abi::arch::{TrapInfo, FLAT_KERNEL_CS, TRAP_INFO_DPL_MASK};
use core::fmt;

/// Bytes between two entry stubs (the stub of vector `v` is at
/// `stubs + v * STUB_SIZE`).
pub const STUB_SIZE: u64 = 16;

/// Exception vectors whose frame carries an error code: `#DF`, `#TS`,
/// `#NP`, `#SS`, `#GP`, `#PF`, `#AC`, `#CP`, `#VC`, `#SX` (bit `v` for
/// vector `v`). The entry stubs encode the same set.
pub const ERROR_CODE_VECTORS: u32 = 0x6022_7d00;

/// `#DE`, divide error.
pub const DE: u8 = 0;
/// `#DB`, debug.
pub const DB: u8 = 1;
/// NMI.
pub const NMI: u8 = 2;
/// `#BP`, breakpoint (`int3`).
pub const BP: u8 = 3;
/// `#OF`, overflow (`into`).
pub const OF: u8 = 4;
/// `#UD`, invalid opcode.
pub const UD: u8 = 6;
/// `#GP`, general protection.
pub const GP: u8 = 13;
/// `#PF`, page fault.
pub const PF: u8 = 14;

/// `#GP` error-code bit: the fault was caused by an IDT entry (a software
/// `int` whose gate DPL was too low); bits 3.. hold the vector.
pub const GP_ERROR_IDT: u64 = 1 << 1;

/// Whether the frame of exception `vector` carries a CPU error code.
pub const fn has_error_code(vector: u8) -> bool {
    vector < 32 && ERROR_CODE_VECTORS & (1 << vector) != 0
}

/// A short name for `vector` (`"#PF"`, `"int 0x80"`).
pub fn vector_name(vector: u8) -> VectorName {
    VectorName(vector)
}

/// Displays a vector by name.
#[derive(Clone, Copy, Debug)]
pub struct VectorName(u8);

impl fmt::Display for VectorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 22] = [
            "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS", "#NP", "#SS", "#GP", "#PF",
            "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
        ];
        match NAMES.get(usize::from(self.0)) {
            Some(name) => f.write_str(name),
            None => write!(f, "vector {:#x}", self.0),
        }
    }
}

/// The state of the interrupted context, as the entry stubs save it.
/// Changing a field changes what the `iret` restores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TrapFrame {
    /// `r15`.
    pub r15: u64,
    /// `r14`.
    pub r14: u64,
    /// `r13`.
    pub r13: u64,
    /// `r12`.
    pub r12: u64,
    /// `r11` (from the bounce frame).
    pub r11: u64,
    /// `r10`.
    pub r10: u64,
    /// `r9`.
    pub r9: u64,
    /// `r8`.
    pub r8: u64,
    /// `rbp`.
    pub rbp: u64,
    /// `rdi`.
    pub rdi: u64,
    /// `rsi`.
    pub rsi: u64,
    /// `rdx`.
    pub rdx: u64,
    /// `rcx` (from the bounce frame).
    pub rcx: u64,
    /// `rbx`.
    pub rbx: u64,
    /// `rax`.
    pub rax: u64,
    /// The vector the stub was entered for.
    pub vector: u64,
    /// The error code, or 0 for vectors without one.
    pub error_code: u64,
    /// Where the interrupted context resumes.
    pub rip: u64,
    /// Code selector; bits 32..40 hold the saved event mask. The RPL is 0
    /// when guest kernel mode was interrupted (the kernel really runs in
    /// ring 3), 3 for guest user mode.
    pub cs: u64,
    /// Flags; `IF` is the inverse of the saved event mask.
    pub rflags: u64,
    /// Stack pointer of the interrupted context.
    pub rsp: u64,
    /// Stack selector.
    pub ss: u64,
}

const _: () = {
    assert!(core::mem::size_of::<TrapFrame>() == 22 * 8);
    assert!(core::mem::offset_of!(TrapFrame, rax) == 14 * 8);
    assert!(core::mem::offset_of!(TrapFrame, vector) == 15 * 8);
    assert!(core::mem::offset_of!(TrapFrame, rip) == 17 * 8);
    assert!(core::mem::offset_of!(TrapFrame, ss) == 21 * 8);
};

/// `rflags.IF`.
pub const RFLAGS_IF: u64 = 1 << 9;

impl TrapFrame {
    /// The vector as a byte.
    pub const fn vector(&self) -> u8 {
        self.vector as u8
    }

    /// The selector part of `cs`.
    pub const fn cs_selector(&self) -> u16 {
        self.cs as u16
    }

    /// The event mask saved with the frame (`cs` bits 32..40).
    pub const fn saved_upcall_mask(&self) -> u8 {
        (self.cs >> 32) as u8
    }

    /// Whether guest kernel mode was interrupted (`cs` RPL 0).
    pub const fn from_kernel_mode(&self) -> bool {
        self.cs & 3 == 0
    }
}

impl fmt::Display for TrapFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} (vector {}) error code {:#x}", vector_name(self.vector()), self.vector, self.error_code)?;
        writeln!(
            f,
            "rip {:#018x} cs {:#x} rflags {:#x} rsp {:#018x} ss {:#x}",
            self.rip, self.cs, self.rflags, self.rsp, self.ss
        )?;
        writeln!(f, "rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}", self.rax, self.rbx, self.rcx, self.rdx)?;
        writeln!(f, "rsi {:#018x} rdi {:#018x} rbp {:#018x} r8  {:#018x}", self.rsi, self.rdi, self.rbp, self.r8)?;
        writeln!(f, "r9  {:#018x} r10 {:#018x} r11 {:#018x} r12 {:#018x}", self.r9, self.r10, self.r11, self.r12)?;
        write!(f, "r13 {:#018x} r14 {:#018x} r15 {:#018x}", self.r13, self.r14, self.r15)
    }
}

/// A software-interrupt vector to install beside the exceptions, and the
/// DPL an `int` instruction needs to reach it directly (a lower DPL turns
/// `int $vector` into `#GP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftwareVector {
    /// The vector (32..=255).
    pub vector: u8,
    /// 0..=3.
    pub dpl: u8,
}

/// Most entries a trap table holds: every vector plus the terminator.
pub const MAX_TRAP_ENTRIES: usize = 257;

/// A trap table being built: exceptions 0..=31 first, then software
/// vectors, then the `address == 0` terminator.
#[derive(Clone, Debug)]
pub struct TrapTable {
    entries: [TrapInfo; MAX_TRAP_ENTRIES],
    len: usize,
}

impl TrapTable {
    /// A table whose every exception vector 0..=31 enters its stub (stubs
    /// at `stubs + v * STUB_SIZE`). `int3` and `into` get DPL 3, as on
    /// native x86, so the kernel and its user mode may use them; the rest
    /// DPL 0.
    pub fn exceptions(stubs: u64) -> TrapTable {
        let mut t = TrapTable { entries: [TrapInfo::default(); MAX_TRAP_ENTRIES], len: 0 };
        for v in 0..32u8 {
            let dpl = if v == BP || v == OF { 3 } else { 0 };
            t.push(stubs, v, dpl);
        }
        t
    }

    fn push(&mut self, stubs: u64, vector: u8, dpl: u8) {
        self.entries[self.len] = TrapInfo {
            vector,
            flags: dpl & TRAP_INFO_DPL_MASK,
            cs: FLAT_KERNEL_CS,
            _pad0: 0,
            address: stubs + u64::from(vector) * STUB_SIZE,
        };
        self.len += 1;
    }

    /// Adds software vectors; vectors below 32 or already present are
    /// refused (`Err` names the first such).
    pub fn with_software(mut self, stubs: u64, extra: &[SoftwareVector]) -> Result<TrapTable, u8> {
        for sv in extra {
            if sv.vector < 32 || self.entries[..self.len].iter().any(|e| e.vector == sv.vector) {
                return Err(sv.vector);
            }
            self.push(stubs, sv.vector, sv.dpl);
        }
        Ok(self)
    }

    /// The entries followed by the terminator, as `set_trap_table` wants.
    pub fn as_slice(&self) -> &[TrapInfo] {
        // The terminator is the default (address 0) entry after `len`; at
        // most 256 vectors exist, so there is always room for it.
        &self.entries[..=self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_vectors() {
        let with: Vec<u8> = (0..=255u8).filter(|&v| has_error_code(v)).collect();
        assert_eq!(with, [8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);
    }

    #[test]
    fn table_covers_exceptions_then_software_then_terminator() {
        let stubs = 0xFFFF_FFFF_8000_2000;
        let t = TrapTable::exceptions(stubs)
            .with_software(stubs, &[SoftwareVector { vector: 0x80, dpl: 3 }, SoftwareVector { vector: 0x81, dpl: 0 }])
            .unwrap();
        let s = t.as_slice();
        assert_eq!(s.len(), 35);
        assert!(s[..34].iter().all(|e| e.cs == 0xe033 && e.address == stubs + u64::from(e.vector) * 16));
        assert_eq!((s[3].vector, s[3].flags), (3, 3));
        assert_eq!((s[14].vector, s[14].flags), (14, 0));
        assert_eq!((s[32].vector, s[32].flags), (0x80, 3));
        assert_eq!((s[33].vector, s[33].flags), (0x81, 0));
        assert_eq!(s[34].address, 0);
    }

    #[test]
    fn software_vectors_must_be_new() {
        let t = TrapTable::exceptions(0x1000);
        assert_eq!(t.clone().with_software(0x1000, &[SoftwareVector { vector: 14, dpl: 3 }]).err(), Some(14));
        let dup = [SoftwareVector { vector: 0x80, dpl: 3 }, SoftwareVector { vector: 0x80, dpl: 0 }];
        assert_eq!(t.with_software(0x1000, &dup).err(), Some(0x80));
    }

    #[test]
    fn frame_accessors() {
        let f = TrapFrame { vector: 14, cs: 0x1_0000_e030, ..TrapFrame::default() };
        assert_eq!(f.saved_upcall_mask(), 1);
        assert_eq!(f.cs_selector(), 0xe030);
        assert!(f.from_kernel_mode());
        assert_eq!(format!("{}", vector_name(14)), "#PF");
        assert_eq!(format!("{}", vector_name(0x80)), "vector 0x80");
    }
}
