//! Trap virtualization: exceptions taken while a guest runs.
//!
//! A guest's exceptions are bounced to the handler in its trap table with
//! Xen's bounce frame. A few faults are the guest asking for something a
//! native kernel would do itself, and are emulated instead: reading `%cr2`
//! or `%cr3`, a software `int $N` whose trap-table DPL allows it, and CPUID
//! behind the forced-emulation prefix. A guest that cannot take an
//! exception (no handler, unwritable stack) crashes; nothing a guest does
//! here can stop the hypervisor.

use crate::domain::Vcpu;
use crate::guest::{self, GuestMemory, GuestPtr};
use crate::regs::{rflags, Regs, GUEST_CS64, GUEST_SS, SYSCALL_VECTOR};
use abi::arch::XEN_EMULATE_PREFIX;
use abi::shared_info::VcpuInfo;

/// Vector numbers used here.
pub mod vector {
    /// Divide error.
    pub const DE: u8 = 0;
    /// Debug.
    pub const DB: u8 = 1;
    /// Non-maskable interrupt.
    pub const NMI: u8 = 2;
    /// Breakpoint.
    pub const BP: u8 = 3;
    /// Invalid opcode.
    pub const UD: u8 = 6;
    /// Double fault.
    pub const DF: u8 = 8;
    /// General protection.
    pub const GP: u8 = 13;
    /// Page fault.
    pub const PF: u8 = 14;
    /// Machine check.
    pub const MC: u8 = 18;
}

/// Whether the CPU pushes an error code for exception `vector`.
pub const fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// Page-fault error code bit: the access came from user mode.
const PFEC_USER: u64 = 1 << 2;

/// Trap-table flag: mask event upcalls on entry to the handler.
const TI_MASK_EVENTS: u8 = 1 << 2;

/// Why a guest could not be continued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crash {
    /// The vector being delivered (or `SYSCALL_VECTOR`).
    pub vector: u64,
    /// Where the guest was.
    pub rip: u64,
    /// What went wrong.
    pub reason: &'static str,
}

/// What the CPU reported, besides the saved registers.
#[derive(Clone, Copy, Debug)]
pub struct Exception {
    /// The vector (0–31).
    pub vector: u8,
    /// The faulting address, for a page fault.
    pub cr2: u64,
}

/// What trap handling needs from the CPU it runs on.
pub trait GuestCpu {
    /// Executes CPUID: `(leaf, subleaf) -> [eax, ebx, ecx, edx]`.
    fn cpuid(&mut self, leaf: u32, subleaf: u32) -> [u32; 4];
    /// Switches the running vCPU between guest kernel and user mode:
    /// exchanges the kernel and user GS bases and loads `cr3`.
    fn switch_guest_mode(&mut self, cr3: u64);
}

/// Handles an exception taken in guest context. On `Ok` the frame holds
/// where the guest resumes.
pub fn guest_exception(
    regs: &mut Regs,
    vcpu: &mut Vcpu,
    vinfo: &mut VcpuInfo,
    mem: &mut dyn GuestMemory,
    exc: Exception,
    cpu: &mut dyn GuestCpu,
) -> Result<(), Crash> {
    match exc.vector {
        vector::PF => {
            vcpu.cr2 = exc.cr2;
            vinfo.arch.cr2 = exc.cr2;
            // The CPU says "user" for every guest fault (the guest kernel
            // runs in ring 3 too); as Xen does, report the guest's own mode.
            let code = (regs.error_code & !PFEC_USER) | if vcpu.kernel_mode { 0 } else { PFEC_USER };
            bounce(regs, vcpu, vinfo, mem, cpu, vector::PF, Some(code))
        }
        vector::GP => general_protection(regs, vcpu, vinfo, mem, cpu),
        vector::UD => invalid_opcode(regs, vcpu, vinfo, mem, cpu),
        v => bounce(regs, vcpu, vinfo, mem, cpu, v, has_error_code(v).then_some(regs.error_code)),
    }
}

/// Delivers `vector` to the guest's trap-table handler with Xen's bounce
/// frame.
pub fn bounce(
    regs: &mut Regs,
    vcpu: &mut Vcpu,
    vinfo: &mut VcpuInfo,
    mem: &mut dyn GuestMemory,
    cpu: &mut dyn GuestCpu,
    vector: u8,
    error_code: Option<u64>,
) -> Result<(), Crash> {
    let entry = vcpu.trap_table[usize::from(vector)];
    if entry.address == 0 {
        return Err(Crash { vector: vector.into(), rip: regs.rip, reason: "no handler registered" });
    }
    let target = Target { handler: entry.address, mask_events: entry.flags & TI_MASK_EVENTS != 0, what: vector.into() };
    bounce_to(regs, vcpu, vinfo, mem, cpu, target, error_code)
}

/// Where a bounce enters the guest kernel.
#[derive(Clone, Copy, Debug)]
struct Target {
    /// The handler's address (validated canonical when registered).
    handler: u64,
    /// Mask event upcalls on entry.
    mask_events: bool,
    /// The vector (or [`SYSCALL_VECTOR`]) being delivered, for reports.
    what: u64,
}

/// Pushes Xen's bounce frame on the guest kernel stack and points the frame
/// at `target`, entering guest kernel mode if the guest was in user mode.
///
/// The stack is the interrupted `rsp` in kernel mode and `kernel_sp`
/// (from `stack_switch`) in user mode, aligned down to 16. From the new
/// stack pointer up: `RCX, R11, [error code], RIP, CS (saved upcall mask in
/// bits 32–39; RPL 0 if kernel mode was interrupted, 3 for user mode),
/// RFLAGS (IF = !saved mask), RSP, SS`.
fn bounce_to(
    regs: &mut Regs,
    vcpu: &mut Vcpu,
    vinfo: &mut VcpuInfo,
    mem: &mut dyn GuestMemory,
    cpu: &mut dyn GuestCpu,
    target: Target,
    error_code: Option<u64>,
) -> Result<(), Crash> {
    let from_user = !vcpu.kernel_mode;
    let mask = vinfo.evtchn_upcall_mask;
    let saved_cs = (if from_user { regs.cs } else { regs.cs & !3 }) | (u64::from(mask) << 32);
    let saved_flags = (regs.rflags & !rflags::IF) | if mask == 0 { rflags::IF } else { 0 };
    let mut frame = [0u64; 8];
    let mut n = 0;
    let mut push = |v: u64| {
        frame[n] = v;
        n += 1;
    };
    push(regs.rcx);
    push(regs.r11);
    if let Some(code) = error_code {
        push(code);
    }
    for v in [regs.rip, saved_cs, saved_flags, regs.rsp, regs.ss] {
        push(v);
    }
    let stack = if from_user { vcpu.kernel_sp } else { regs.rsp };
    let sp = (stack & !15).wrapping_sub(8 * n as u64);
    if from_user {
        // The kernel stack is mapped by the kernel's page tables.
        cpu.switch_guest_mode(vcpu.cr3());
        vcpu.kernel_mode = true;
    }
    let bytes: [u8; 64] = words_to_bytes(&frame);
    guest::write(mem, GuestPtr(sp), &bytes[..8 * n]).map_err(|_| Crash {
        vector: target.what,
        rip: regs.rip,
        reason: "guest kernel stack is not writable",
    })?;
    regs.rsp = sp;
    regs.rip = target.handler;
    regs.cs = GUEST_CS64;
    regs.ss = GUEST_SS;
    regs.rflags &= !(rflags::AC | rflags::VM | rflags::RF | rflags::NT | rflags::TF);
    if target.mask_events {
        vinfo.evtchn_upcall_mask = 1;
    }
    Ok(())
}

/// A `syscall` from guest user mode: the guest's own system call, bounced
/// to its syscall callback in kernel mode (the frame is that of an
/// exception without error code; `RIP` and `RCX` are the return address,
/// `R11` the user flags). With no callback registered the guest gets
/// `#UD` at the `syscall`, as from Xen.
pub fn user_syscall(
    regs: &mut Regs,
    vcpu: &mut Vcpu,
    vinfo: &mut VcpuInfo,
    mem: &mut dyn GuestMemory,
    cpu: &mut dyn GuestCpu,
) -> Result<(), Crash> {
    debug_assert!(!vcpu.kernel_mode);
    let cb = vcpu.syscall_callback;
    if cb.address == 0 {
        // `syscall` is two bytes long.
        regs.rip = regs.rip.wrapping_sub(2);
        return bounce(regs, vcpu, vinfo, mem, cpu, vector::UD, None);
    }
    let target = Target { handler: cb.address, mask_events: cb.mask_events, what: SYSCALL_VECTOR };
    bounce_to(regs, vcpu, vinfo, mem, cpu, target, None)
}

/// The little-endian bytes of eight words.
fn words_to_bytes(words: &[u64; 8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// Reads up to 15 instruction bytes at the guest's `rip` (fewer at the end
/// of mapped memory is not supported: the whole read must succeed).
fn fetch<const N: usize>(regs: &Regs, mem: &mut dyn GuestMemory) -> Option<[u8; N]> {
    let mut b = [0u8; N];
    guest::read(mem, GuestPtr(regs.rip), &mut b).ok().map(|()| b)
}

/// `#GP`: a software interrupt the IDT refused, a privileged instruction
/// we emulate, or a real fault for the guest.
fn general_protection(
    regs: &mut Regs,
    vcpu: &mut Vcpu,
    vinfo: &mut VcpuInfo,
    mem: &mut dyn GuestMemory,
    cpu: &mut dyn GuestCpu,
) -> Result<(), Crash> {
    let code = regs.error_code;
    // Error code (N << 3) | 2: `int $N` through a gate with too low a DPL.
    if code & 7 == 2 {
        let n = (code >> 3) as u8;
        let entry = vcpu.trap_table[usize::from(n)];
        // Guest kernel mode counts as ring 1 for the DPL check, as in Xen.
        let ring = if vcpu.kernel_mode { 1 } else { 3 };
        if entry.address != 0 && (entry.flags & 3) >= ring && fetch::<2>(regs, mem) == Some([0xcd, n]) {
            regs.rip = regs.rip.wrapping_add(2);
            return bounce(regs, vcpu, vinfo, mem, cpu, n, None);
        }
        return bounce(regs, vcpu, vinfo, mem, cpu, vector::GP, Some(code));
    }
    if code == 0 && vcpu.kernel_mode && emulate_mov_from_cr(regs, vcpu, mem) {
        return Ok(());
    }
    bounce(regs, vcpu, vinfo, mem, cpu, vector::GP, Some(code))
}

/// Emulates `mov %cr2, %reg` and `mov %cr3, %reg`; other control
/// registers and everything else are left to the guest's `#GP` handler.
fn emulate_mov_from_cr(regs: &mut Regs, vcpu: &Vcpu, mem: &mut dyn GuestMemory) -> bool {
    let Some(b) = fetch::<4>(regs, mem) else { return false };
    let (rex, op) = if b[0] & 0xf0 == 0x40 { (b[0], &b[1..4]) } else { (0, &b[0..3]) };
    let [0x0f, 0x20, modrm] = *op else { return false };
    if modrm >> 6 != 3 {
        return false;
    }
    let cr = ((modrm >> 3) & 7) | if rex & 4 != 0 { 8 } else { 0 };
    let reg = (modrm & 7) | if rex & 1 != 0 { 8 } else { 0 };
    let value = match cr {
        2 => vcpu.cr2,
        3 => vcpu.cr3(),
        _ => return false,
    };
    *regs.gpr_mut(reg) = value;
    regs.rip = regs.rip.wrapping_add(3 + u64::from(rex != 0));
    true
}

/// `#UD`: CPUID behind Xen's forced-emulation prefix, or a real `#UD`.
fn invalid_opcode(
    regs: &mut Regs,
    vcpu: &mut Vcpu,
    vinfo: &mut VcpuInfo,
    mem: &mut dyn GuestMemory,
    cpu: &mut dyn GuestCpu,
) -> Result<(), Crash> {
    if fetch::<7>(regs, mem).is_some_and(|b| b[..5] == XEN_EMULATE_PREFIX && b[5..] == [0x0f, 0xa2]) {
        let [a, b, c, d] = guest_cpuid(cpu, regs.rax as u32, regs.rcx as u32);
        (regs.rax, regs.rbx, regs.rcx, regs.rdx) = (a.into(), b.into(), c.into(), d.into());
        regs.rip = regs.rip.wrapping_add(7);
        return Ok(());
    }
    bounce(regs, vcpu, vinfo, mem, cpu, vector::UD, None)
}

/// CPUID as a PV guest sees it: the machine's, with the hypervisor bit set
/// and the features a ring-3 kernel cannot use hidden.
pub fn guest_cpuid(cpu: &mut dyn GuestCpu, leaf: u32, subleaf: u32) -> [u32; 4] {
    let mut r = cpu.cpuid(leaf, subleaf);
    if leaf == 1 {
        const ECX_VMX: u32 = 1 << 5;
        const ECX_SMX: u32 = 1 << 6;
        const ECX_MONITOR: u32 = 1 << 3;
        const ECX_HYPERVISOR: u32 = 1 << 31;
        r[2] = (r[2] & !(ECX_VMX | ECX_SMX | ECX_MONITOR)) | ECX_HYPERVISOR;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::fake::FakeMemory;
    use crate::regs::GUEST_CS64;
    use abi::arch::TrapInfo;

    const STACK_TOP: u64 = 0x20_0000;

    fn setup() -> (Regs, Vcpu, VcpuInfo, FakeMemory) {
        let regs = Regs {
            rip: 0x10_1000,
            cs: GUEST_CS64,
            ss: GUEST_SS,
            rsp: STACK_TOP - 0x108,
            rflags: rflags::IF | rflags::FIXED | rflags::TF,
            rcx: 0xc,
            r11: 0x11,
            ..Regs::default()
        };
        let mut vcpu = Vcpu::new(0);
        vcpu.kernel_table = Some(0x12345);
        for v in 0..32u8 {
            vcpu.trap_table[usize::from(v)] = TrapInfo {
                vector: v,
                flags: 0,
                cs: GUEST_CS64 as u16,
                _pad0: 0,
                address: 0xffff_ffff_8000_0000 + u64::from(v) * 0x10,
            };
        }
        (regs, vcpu, VcpuInfo::default(), FakeMemory::new(0x10_0000, 0x10_0000))
    }

    fn stack_words(m: &mut FakeMemory, sp: u64, n: usize) -> Vec<u64> {
        (0..n).map(|i| guest::read_obj::<u64, _>(m, GuestPtr(sp + 8 * i as u64)).unwrap()).collect()
    }

    /// A CPU that answers one CPUID and records mode switches.
    #[derive(Debug, Default)]
    struct FakeCpu {
        cpuid: Option<[u32; 4]>,
        asked: Vec<(u32, u32)>,
        switches: Vec<u64>,
    }

    impl GuestCpu for FakeCpu {
        fn cpuid(&mut self, leaf: u32, subleaf: u32) -> [u32; 4] {
            self.asked.push((leaf, subleaf));
            self.cpuid.expect("unexpected cpuid")
        }
        fn switch_guest_mode(&mut self, cr3: u64) {
            self.switches.push(cr3);
        }
    }

    fn no_cpuid() -> FakeCpu {
        FakeCpu::default()
    }

    #[test]
    fn page_fault_bounce_frame_is_xens() {
        let (mut regs, mut vcpu, mut vinfo, mut mem) = setup();
        regs.error_code = 6; // write, user: the CPU's view of a ring-3 kernel
        vinfo.evtchn_upcall_mask = 1;
        let exc = Exception { vector: vector::PF, cr2: 0xdead_b000 };
        guest_exception(&mut regs, &mut vcpu, &mut vinfo, &mut mem, exc, &mut no_cpuid()).unwrap();
        let sp = (STACK_TOP - 0x110) - 8 * 8;
        assert_eq!(regs.rsp, sp);
        assert_eq!(regs.rip, 0xffff_ffff_8000_00e0);
        assert_eq!((regs.cs, regs.ss), (GUEST_CS64, GUEST_SS));
        assert_eq!(regs.rflags & rflags::TF, 0, "TF cleared for the handler");
        assert_eq!(vinfo.arch.cr2, 0xdead_b000);
        assert_eq!(vcpu.cr2, 0xdead_b000);
        let w = stack_words(&mut mem, sp, 8);
        assert_eq!(
            w,
            [
                0xc,
                0x11,
                2, // the user bit cleared: the guest kernel faulted
                0x10_1000,
                0xe030 | (1 << 32),         // RPL cleared: kernel mode; mask 1 saved
                rflags::FIXED | rflags::TF, // IF = !mask = 0
                STACK_TOP - 0x108,
                GUEST_SS
            ]
        );
    }

    #[test]
    fn exceptions_without_error_code_push_seven_words() {
        let (mut regs, mut vcpu, mut vinfo, mut mem) = setup();
        regs.rsp = STACK_TOP - 0x100;
        let exc = Exception { vector: vector::DE, cr2: 0 };
        guest_exception(&mut regs, &mut vcpu, &mut vinfo, &mut mem, exc, &mut no_cpuid()).unwrap();
        assert_eq!(regs.rsp, STACK_TOP - 0x100 - 56);
        let w = stack_words(&mut mem, regs.rsp, 7);
        assert_eq!(w[2], 0x10_1000);
        assert_eq!(w[4] & rflags::IF, rflags::IF, "unmasked: IF set in the saved flags");
    }

    #[test]
    fn trap_flag_masks_events() {
        let (mut regs, mut vcpu, mut vinfo, mut mem) = setup();
        vcpu.trap_table[3].flags = TI_MASK_EVENTS;
        bounce(&mut regs, &mut vcpu, &mut vinfo, &mut mem, &mut no_cpuid(), vector::BP, None).unwrap();
        assert_eq!(vinfo.evtchn_upcall_mask, 1);
    }

    #[test]
    fn missing_handler_or_bad_stack_crashes_the_guest() {
        let (mut regs, mut vcpu, mut vinfo, mut mem) = setup();
        vcpu.trap_table[0].address = 0;
        let e = bounce(&mut regs, &mut vcpu, &mut vinfo, &mut mem, &mut no_cpuid(), 0, None).unwrap_err();
        assert_eq!(e.reason, "no handler registered");
        let (mut regs, mut vcpu, mut vinfo, mut mem) = setup();
        mem.read_only.push(STACK_TOP - 0x1000);
        let e = bounce(&mut regs, &mut vcpu, &mut vinfo, &mut mem, &mut no_cpuid(), 0, None).unwrap_err();
        assert_eq!(e.reason, "guest kernel stack is not writable");
        let (mut regs, mut vcpu, mut vinfo, mut mem) = setup();
        regs.rsp = 0xffff_8000_0000_1000; // the hypervisor's M2P
        let e = bounce(&mut regs, &mut vcpu, &mut vinfo, &mut mem, &mut no_cpuid(), 0, None).unwrap_err();
        assert_eq!(e.reason, "guest kernel stack is not writable");
        assert_eq!(regs.rip, 0x10_1000, "frame unchanged on failure");
    }

    #[test]
    fn software_int_follows_the_trap_table_dpl() {
        let (mut regs, mut vcpu, mut vinfo, mut mem) = setup();
        guest::write(&mut mem, GuestPtr(regs.rip), &[0xcd, 0x80]).unwrap();
        vcpu.trap_table[0x80] =
            TrapInfo { vector: 0x80, flags: 3, cs: 0xe033, _pad0: 0, address: 0xffff_ffff_8000_8000 };
        regs.error_code = (0x80 << 3) | 2;
        let exc = Exception { vector: vector::GP, cr2: 0 };
        guest_exception(&mut regs, &mut vcpu, &mut vinfo, &mut mem, exc, &mut no_cpuid()).unwrap();
        assert_eq!(regs.rip, 0xffff_ffff_8000_8000);
        let w = stack_words(&mut mem, regs.rsp, 3);
        assert_eq!(w[2], 0x10_1002, "returns after the int instruction");

        // DPL 0: #GP with the same error code.
        let (mut regs, mut vcpu, mut vinfo, mut mem) = setup();
        guest::write(&mut mem, GuestPtr(regs.rip), &[0xcd, 0x81]).unwrap();
        vcpu.trap_table[0x81] =
            TrapInfo { vector: 0x81, flags: 0, cs: 0xe033, _pad0: 0, address: 0xffff_ffff_8000_9000 };
        regs.error_code = (0x81 << 3) | 2;
        guest_exception(&mut regs, &mut vcpu, &mut vinfo, &mut mem, exc, &mut no_cpuid()).unwrap();
        assert_eq!(regs.rip, 0xffff_ffff_8000_00d0, "#GP handler");
        let w = stack_words(&mut mem, regs.rsp, 4);
        assert_eq!((w[2], w[3]), ((0x81 << 3) | 2, 0x10_1000));
    }

    #[test]
    fn reading_cr2_and_cr3_is_emulated() {
        let (mut regs, mut vcpu, mut vinfo, mut mem) = setup();
        vcpu.cr2 = 0xabc;
        // mov %cr3, %rax ; then mov %cr2, %r9 (REX.B)
        guest::write(&mut mem, GuestPtr(regs.rip), &[0x0f, 0x20, 0xd8, 0x41, 0x0f, 0x20, 0xd1]).unwrap();
        let exc = Exception { vector: vector::GP, cr2: 0 };
        guest_exception(&mut regs, &mut vcpu, &mut vinfo, &mut mem, exc, &mut no_cpuid()).unwrap();
        assert_eq!((regs.rax, regs.rip), (0x1234_5000, 0x10_1003));
        guest_exception(&mut regs, &mut vcpu, &mut vinfo, &mut mem, exc, &mut no_cpuid()).unwrap();
        assert_eq!((regs.r9, regs.rip), (0xabc, 0x10_1007));
        // mov %cr0, %rax is not emulated: the guest gets #GP.
        guest::write(&mut mem, GuestPtr(regs.rip), &[0x0f, 0x20, 0xc0]).unwrap();
        guest_exception(&mut regs, &mut vcpu, &mut vinfo, &mut mem, exc, &mut no_cpuid()).unwrap();
        assert_eq!(regs.rip, 0xffff_ffff_8000_00d0);
    }

    #[test]
    fn forced_emulation_prefix_runs_cpuid() {
        let (mut regs, mut vcpu, mut vinfo, mut mem) = setup();
        guest::write(&mut mem, GuestPtr(regs.rip), &[0x0f, 0x0b, b'x', b'e', b'n', 0x0f, 0xa2]).unwrap();
        (regs.rax, regs.rcx) = (1, 0);
        let exc = Exception { vector: vector::UD, cr2: 0 };
        let mut cpu = FakeCpu { cpuid: Some([1, 2, 0x20, 4]), ..FakeCpu::default() };
        guest_exception(&mut regs, &mut vcpu, &mut vinfo, &mut mem, exc, &mut cpu).unwrap();
        assert_eq!(cpu.asked, [(1, 0)]);
        assert_eq!((regs.rax, regs.rbx, regs.rcx, regs.rdx), (1, 2, 1 << 31, 4), "VMX hidden, hypervisor bit set");
        assert_eq!(regs.rip, 0x10_1007);
        // A plain ud2 is the guest's #UD.
        guest::write(&mut mem, GuestPtr(regs.rip), &[0x0f, 0x0b, 0, 0, 0, 0, 0]).unwrap();
        guest_exception(&mut regs, &mut vcpu, &mut vinfo, &mut mem, exc, &mut no_cpuid()).unwrap();
        assert_eq!(regs.rip, 0xffff_ffff_8000_0060);
    }

    const KERNEL_SP: u64 = STACK_TOP - 0x800;

    fn user_mode() -> (Regs, Vcpu, VcpuInfo, FakeMemory) {
        let (mut regs, mut vcpu, vinfo, mem) = setup();
        vcpu.kernel_mode = false;
        vcpu.kernel_sp = KERNEL_SP + 8; // aligned down to 16
        regs.rsp = 0x7000_1234;
        regs.rip = 0x40_0000;
        regs.cs = GUEST_CS64;
        (regs, vcpu, vinfo, mem)
    }

    #[test]
    fn user_mode_faults_enter_the_kernel_on_its_stack() {
        let (mut regs, mut vcpu, mut vinfo, mut mem) = user_mode();
        regs.error_code = 4; // the CPU's "user"
        let mut cpu = no_cpuid();
        let exc = Exception { vector: vector::PF, cr2: 0x1000 };
        guest_exception(&mut regs, &mut vcpu, &mut vinfo, &mut mem, exc, &mut cpu).unwrap();
        assert!(vcpu.kernel_mode);
        assert_eq!(cpu.switches, [vcpu.cr3()], "kernel page tables loaded, GS swapped");
        assert_eq!(regs.rsp, KERNEL_SP - 64);
        let w = stack_words(&mut mem, regs.rsp, 8);
        assert_eq!(w[2], 4, "user bit kept: the fault came from user mode");
        assert_eq!((w[3], w[4] & 0xffff, w[6]), (0x40_0000, 0xe033, 0x7000_1234), "user rip, RPL 3, user rsp");
    }

    #[test]
    fn user_syscalls_go_to_the_syscall_callback() {
        let (mut regs, mut vcpu, mut vinfo, mut mem) = user_mode();
        vcpu.syscall_callback = crate::domain::Callback { address: 0xffff_ffff_8000_7000, mask_events: true };
        (regs.rcx, regs.r11) = (regs.rip, regs.rflags);
        let mut cpu = no_cpuid();
        user_syscall(&mut regs, &mut vcpu, &mut vinfo, &mut mem, &mut cpu).unwrap();
        assert_eq!(regs.rip, 0xffff_ffff_8000_7000);
        assert!(vcpu.kernel_mode);
        assert_eq!(vinfo.evtchn_upcall_mask, 1);
        let w = stack_words(&mut mem, regs.rsp, 7);
        assert_eq!((w[0], w[2], w[5]), (0x40_0000, 0x40_0000, 0x7000_1234), "rcx, rip, user rsp");
    }

    #[test]
    fn user_syscall_without_a_callback_is_ud() {
        let (mut regs, mut vcpu, mut vinfo, mut mem) = user_mode();
        user_syscall(&mut regs, &mut vcpu, &mut vinfo, &mut mem, &mut no_cpuid()).unwrap();
        assert_eq!(regs.rip, 0xffff_ffff_8000_0060, "#UD handler");
        assert_eq!(stack_words(&mut mem, regs.rsp, 3)[2], 0x40_0000 - 2, "at the syscall");
    }

    #[test]
    fn a_bad_kernel_stack_crashes_a_user_fault() {
        let (mut regs, mut vcpu, mut vinfo, mut mem) = user_mode();
        vcpu.kernel_sp = 0;
        let e = bounce(&mut regs, &mut vcpu, &mut vinfo, &mut mem, &mut no_cpuid(), vector::DE, None).unwrap_err();
        assert_eq!(e.reason, "guest kernel stack is not writable");
    }
}
