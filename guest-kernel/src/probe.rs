//! Taking a trap on purpose: arm a resume address, run one instruction,
//! and see what the trap handler was given.
//!
//! The handler resumes an expected trap at the address the probe armed
//! (just after the instruction), so every probe returns, trap or not.

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use guest_kernel::frame::TrapFrame;
use guest_kernel::{shared, traps};

/// Where the handler resumes an expected trap; 0 when none is expected.
pub static RESUME: AtomicU64 = AtomicU64::new(0);
/// The stack pointer just before a probed instruction, when a probe
/// records it.
pub static RSP_BEFORE: AtomicU64 = AtomicU64::new(0);

/// Traps taken so far.
static COUNT: AtomicU64 = AtomicU64::new(0);
/// The last trap's frame fields: vector, error code, rip, cs, rflags, rsp,
/// ss, cr2 (from vcpu_info, `u64::MAX` when shared_info is not mapped).
static LAST: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

/// What the handler saw of one trap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Vector the stub was entered for.
    pub vector: u64,
    /// Error code (0 where the vector has none).
    pub error_code: u64,
    /// Interrupted rip.
    pub rip: u64,
    /// Interrupted cs, with the saved event mask in bits 32..40.
    pub cs: u64,
    /// Interrupted rflags.
    pub rflags: u64,
    /// Interrupted rsp.
    pub rsp: u64,
    /// Interrupted ss.
    pub ss: u64,
    /// `vcpu_info[0].arch.cr2` when the trap arrived, if shared_info was
    /// mapped.
    pub cr2: Option<u64>,
}

/// One probe's outcome.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    /// The trap, if one arrived.
    pub seen: Option<Seen>,
    /// The address of the probed instruction.
    pub at: u64,
    /// The address just after it.
    pub next: u64,
}

/// The trap handler for workloads that probe: records an expected trap and
/// resumes after the probed instruction; anything else is fatal.
pub fn handler(frame: &mut TrapFrame) {
    let resume = RESUME.swap(0, SeqCst);
    if resume == 0 {
        traps::fatal(frame);
    }
    let cr2 = if frame.vector() == guest_kernel::frame::PF { shared::vcpu0_cr2() } else { None };
    let fields = [
        frame.vector,
        frame.error_code,
        frame.rip,
        frame.cs,
        frame.rflags,
        frame.rsp,
        frame.ss,
        cr2.unwrap_or(u64::MAX),
    ];
    for (slot, v) in LAST.iter().zip(fields) {
        slot.store(v, SeqCst);
    }
    COUNT.fetch_add(1, SeqCst);
    frame.rip = resume;
}

/// Traps taken so far.
pub fn count() -> u64 {
    COUNT.load(SeqCst)
}

/// Finishes a probe that started when [`count`] was `before`.
pub fn finish(before: u64, at: u64, next: u64) -> Probe {
    RESUME.store(0, SeqCst);
    let seen = (count() != before).then(|| {
        let v = |i: usize| LAST[i].load(SeqCst);
        Seen {
            vector: v(0),
            error_code: v(1),
            rip: v(2),
            cs: v(3),
            rflags: v(4),
            rsp: v(5),
            ss: v(6),
            cr2: (v(7) != u64::MAX).then(|| v(7)),
        }
    });
    Probe { seen, at, next }
}

/// Runs one instruction (the template, which must not use labels 2 or 3)
/// with the handler armed to resume after it; extra asm operands follow.
macro_rules! probe {
    ($insn:literal $(, $($rest:tt)*)?) => {{
        let before = $crate::probe::count();
        let at: u64;
        let next: u64;
        // SAFETY: the instruction's trap, if any, is resumed at label 3
        // with every register restored by the iret; the asm writes only
        // RESUME (an AtomicU64, one aligned store) besides its operands.
        unsafe {
            core::arch::asm!(
                "lea {next}, [rip + 3f]",
                "mov qword ptr [rip + {resume}], {next}",
                "lea {at}, [rip + 2f]",
                "2:",
                $insn,
                "3:",
                resume = sym $crate::probe::RESUME,
                next = out(reg) next,
                at = out(reg) at,
                $($($rest)*)?
            );
        }
        $crate::probe::finish(before, at, next)
    }};
}
pub(crate) use probe;

/// Reads a u64 at `addr`, which may fault: `Ok(value)` or `Err` with the
/// fault.
pub fn read_u64(addr: u64) -> Result<u64, Probe> {
    let value: u64;
    let p = probe!("mov {v}, qword ptr [{a}]", a = in(reg) addr, v = inout(reg) 0u64 => value);
    match p.seen {
        None => Ok(value),
        Some(_) => Err(p),
    }
}

/// Writes a u64 at `addr`, which may fault: `Ok(())` or `Err` with the
/// fault.
pub fn write_u64(addr: u64, value: u64) -> Result<(), Probe> {
    let p = probe!("mov qword ptr [{a}], {v}", a = in(reg) addr, v = in(reg) value);
    match p.seen {
        None => Ok(()),
        Some(_) => Err(p),
    }
}

/// `ud2` with the stack pointer recorded in [`RSP_BEFORE`] just before.
pub fn ud2_recording_rsp() -> Probe {
    probe!("mov qword ptr [rip + {sp}], rsp\n ud2", sp = sym RSP_BEFORE)
}

/// Register values loaded before a trap and compared after it.
pub const REGISTER_PATTERNS: [u64; 15] = [
    0x0101_0101_0101_0101, // rax
    0x0202_0202_0202_0202, // rbx
    0x0303_0303_0303_0303, // rcx
    0x0404_0404_0404_0404, // rdx
    0x0505_0505_0505_0505, // rsi
    0x0606_0606_0606_0606, // rbp
    0x0808_0808_0808_0808, // r8
    0x0909_0909_0909_0909, // r9
    0x1010_1010_1010_1010, // r10
    0x1111_1111_1111_1111, // r11
    0x1212_1212_1212_1212, // r12
    0x1313_1313_1313_1313, // r13
    0x1414_1414_1414_1414, // r14
    0x1515_1515_1515_1515, // r15
    0x0707_0707_0707_0707, // rdi, checked through the pointer it holds
];

/// Loads every general register with [`REGISTER_PATTERNS`], takes a `ud2`
/// and returns what each register held afterwards (rdi as the pointer
/// offset: `out[14]` is the pattern back if rdi came back intact).
pub fn ud2_with_patterns() -> (Option<Seen>, [u64; 15]) {
    let mut out = [0u64; 15];
    let p = &REGISTER_PATTERNS;
    let before = count();
    // SAFETY: rbx and rbp, which asm may not name, are saved and restored
    // around the block; every other register it changes is declared. The
    // ud2 is resumed at label 3 with every register as it was. rdi is the
    // output pointer and must survive the trap to be usable.
    unsafe {
        core::arch::asm!(
            "push rbx",
            "push rbp",
            "push rdi",
            "lea rax, [rip + 3f]",
            "mov qword ptr [rip + {resume}], rax",
            "mov rax, [rsi + 0]",
            "mov rbx, [rsi + 8]",
            "mov rcx, [rsi + 16]",
            "mov rdx, [rsi + 24]",
            "mov rbp, [rsi + 40]",
            "mov r8, [rsi + 48]",
            "mov r9, [rsi + 56]",
            "mov r10, [rsi + 64]",
            "mov r11, [rsi + 72]",
            "mov r12, [rsi + 80]",
            "mov r13, [rsi + 88]",
            "mov r14, [rsi + 96]",
            "mov r15, [rsi + 104]",
            "mov rsi, [rsi + 32]",
            "ud2",
            "3:",
            "mov [rdi + 0], rax",
            "mov [rdi + 8], rbx",
            "mov [rdi + 16], rcx",
            "mov [rdi + 24], rdx",
            "mov [rdi + 32], rsi",
            "mov [rdi + 40], rbp",
            "mov [rdi + 48], r8",
            "mov [rdi + 56], r9",
            "mov [rdi + 64], r10",
            "mov [rdi + 72], r11",
            "mov [rdi + 80], r12",
            "mov [rdi + 88], r13",
            "mov [rdi + 96], r14",
            "mov [rdi + 104], r15",
            "pop rax",
            "sub rax, rdi",
            "mov rcx, {rdi_pattern}",
            "add rax, rcx",
            "mov [rdi + 112], rax",
            "pop rbp",
            "pop rbx",
            resume = sym RESUME,
            rdi_pattern = const 0x0707_0707_0707_0707u64,
            in("rdi") out.as_mut_ptr(),
            inout("rsi") p.as_ptr() => _,
            out("rax") _, out("rcx") _, out("rdx") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
        );
    }
    (finish(before, 0, 0).seen, out)
}
