//! Trap virtualization: exceptions taken while a guest runs.
//!
//! A guest's exceptions are bounced to the handler in its trap table with
//! Xen's bounce frame. A few faults are the guest asking for something a
//! native kernel would do itself, and are emulated instead: reading `%cr2`
//! or `%cr3`, a software `int $N` whose trap-table DPL allows it, and CPUID
//! behind the forced-emulation prefix. A guest that cannot take an
//! exception (no handler, unwritable stack) crashes; nothing a guest does
//! here can stop the hypervisor.
//!
//! Two more entries use the same bounce frame: an event upcall
//! ([`deliver_event`]), and the failsafe callback ([`failsafe`]), entered
//! when the guest asks to return to a context the CPU refuses.

use crate::domain::Vcpu;
use crate::event::two_level::upcall_due;
use crate::guest::{self, GuestMemory, GuestPtr};
use crate::ioport::{self, PortBus};
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

/// [`Crash::vector`] of a crash while delivering an event upcall
/// ([`deliver_event`]). Above every vector and [`SYSCALL_VECTOR`].
pub const EVENT_UPCALL: u64 = 0x101;

/// [`Crash::vector`] of a crash while entering the failsafe callback
/// ([`failsafe`]).
pub const FAILSAFE: u64 = 0x102;

/// Why a guest could not be continued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crash {
    /// What was being delivered: the vector, [`SYSCALL_VECTOR`],
    /// [`EVENT_UPCALL`] or [`FAILSAFE`].
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

/// The data-segment selectors loaded in the CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataSelectors {
    /// `%ds`.
    pub ds: u16,
    /// `%es`.
    pub es: u16,
    /// `%fs`.
    pub fs: u16,
    /// `%gs`.
    pub gs: u16,
}

/// What trap handling needs from the CPU it runs on (port I/O included,
/// for the `in` and `out` it emulates).
pub trait GuestCpu: PortBus {
    /// Executes CPUID: `(leaf, subleaf) -> [eax, ebx, ecx, edx]`.
    fn cpuid(&mut self, leaf: u32, subleaf: u32) -> [u32; 4];
    /// Switches the running vCPU between guest kernel and user mode:
    /// exchanges the kernel and user GS bases and loads `cr3`.
    fn switch_guest_mode(&mut self, cr3: u64);
    /// The running vCPU's data-segment selectors as the CPU holds them now
    /// (what the guest would resume with), for the failsafe frame.
    fn data_selectors(&mut self) -> DataSelectors;
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
    bounce_to(regs, vcpu, vinfo, mem, cpu, target, error_code.as_slice())
}

/// Delivers an event upcall if one is due: `evtchn_upcall_pending` set,
/// `evtchn_upcall_mask` clear and an event callback registered. The guest
/// enters its event callback with the frame of an exception without error
/// code, events masked (always, as in Xen). Returns whether it did.
///
/// The caller runs this on every return to the guest, as Xen does after
/// every entry; a crash reports [`EVENT_UPCALL`].
pub fn deliver_event(
    regs: &mut Regs,
    vcpu: &mut Vcpu,
    vinfo: &mut VcpuInfo,
    mem: &mut dyn GuestMemory,
    cpu: &mut dyn GuestCpu,
) -> Result<bool, Crash> {
    let cb = vcpu.event_callback;
    if !upcall_due(vinfo) || cb.address == 0 {
        return Ok(false);
    }
    let target = Target { handler: cb.address, mask_events: true, what: EVENT_UPCALL };
    bounce_to(regs, vcpu, vinfo, mem, cpu, target, &[])?;
    Ok(true)
}

/// Enters the guest's failsafe callback for the context in `regs`, which
/// the CPU would refuse to return to (Xen's `failsafe_callback`, taken
/// when its `iretq` to the guest faults). The frame is the bounce frame
/// with the data-segment selectors the CPU holds between `R11` and `RIP`:
/// from the new `rsp` up, `RCX, R11, DS, ES, FS, GS, RIP, CS, RFLAGS, RSP,
/// SS` (what Linux's `xen_failsafe_callback` expects). Events are masked
/// if the callback was registered with `CALLBACKF_mask_events`.
///
/// Crashes (reporting [`FAILSAFE`]) without a failsafe callback or when the
/// kernel stack is not writable.
pub fn failsafe(
    regs: &mut Regs,
    vcpu: &mut Vcpu,
    vinfo: &mut VcpuInfo,
    mem: &mut dyn GuestMemory,
    cpu: &mut dyn GuestCpu,
) -> Result<(), Crash> {
    let cb = vcpu.failsafe_callback;
    if cb.address == 0 {
        return Err(Crash { vector: FAILSAFE, rip: regs.rip, reason: "no failsafe callback registered" });
    }
    let s = cpu.data_selectors();
    let selectors = [s.ds, s.es, s.fs, s.gs].map(u64::from);
    let target = Target { handler: cb.address, mask_events: cb.mask_events, what: FAILSAFE };
    bounce_to(regs, vcpu, vinfo, mem, cpu, target, &selectors)
}

/// Where a bounce enters the guest kernel.
#[derive(Clone, Copy, Debug)]
struct Target {
    /// The handler's address (validated canonical when registered).
    handler: u64,
    /// Mask event upcalls on entry.
    mask_events: bool,
    /// What is being delivered, for reports ([`Crash::vector`]).
    what: u64,
}

/// Most words between `R11` and `RIP` in a bounce frame: the failsafe
/// callback's four selectors (an exception has at most its error code).
const MAX_EXTRA: usize = 4;

/// Pushes Xen's bounce frame on the guest kernel stack and points the frame
/// at `target`, entering guest kernel mode if the guest was in user mode.
///
/// The stack is the interrupted `rsp` in kernel mode and `kernel_sp`
/// (from `stack_switch`) in user mode, aligned down to 16. From the new
/// stack pointer up: `RCX, R11, [extra], RIP, CS (saved upcall mask in
/// bits 32–39; RPL 0 if kernel mode was interrupted, 3 for user mode),
/// RFLAGS (IF = !saved mask), RSP, SS`, where `extra` is an exception's
/// error code or the failsafe callback's selectors (at most
/// [`MAX_EXTRA`] words).
fn bounce_to(
    regs: &mut Regs,
    vcpu: &mut Vcpu,
    vinfo: &mut VcpuInfo,
    mem: &mut dyn GuestMemory,
    cpu: &mut dyn GuestCpu,
    target: Target,
    extra: &[u64],
) -> Result<(), Crash> {
    debug_assert!(extra.len() <= MAX_EXTRA);
    let from_user = !vcpu.kernel_mode;
    let mask = vinfo.evtchn_upcall_mask;
    let saved_cs = (if from_user { regs.cs } else { regs.cs & !3 }) | (u64::from(mask) << 32);
    let saved_flags = (regs.rflags & !rflags::IF) | if mask == 0 { rflags::IF } else { 0 };
    let head = [regs.rcx, regs.r11];
    let extra = &extra[..extra.len().min(MAX_EXTRA)];
    let tail = [regs.rip, saved_cs, saved_flags, regs.rsp, regs.ss];
    let n = head.len() + extra.len() + tail.len();
    let mut frame = [0u64; FRAME_WORDS];
    for (slot, v) in frame.iter_mut().zip(head.iter().chain(extra).chain(&tail)) {
        *slot = *v;
    }
    let stack = if from_user { vcpu.kernel_sp } else { regs.rsp };
    let sp = (stack & !15).wrapping_sub(8 * n as u64);
    if from_user {
        // The kernel stack is mapped by the kernel's page tables.
        cpu.switch_guest_mode(vcpu.cr3());
        vcpu.kernel_mode = true;
    }
    let bytes = words_to_bytes(&frame);
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
    bounce_to(regs, vcpu, vinfo, mem, cpu, target, &[])
}

/// Most words in a bounce frame.
const FRAME_WORDS: usize = 7 + MAX_EXTRA;

/// The little-endian bytes of a bounce frame's words.
fn words_to_bytes(words: &[u64; FRAME_WORDS]) -> [u8; 8 * FRAME_WORDS] {
    let mut out = [0u8; 8 * FRAME_WORDS];
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
    if code == 0 && ioport::iopl_allows(vcpu.iopl, vcpu.kernel_mode) {
        if let Some(io) = fetch::<6>(regs, mem).and_then(|b| ioport::decode(&b, regs)) {
            ioport::perform(io, vcpu.io_ports, regs, cpu);
            return Ok(());
        }
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

    /// A CPU that answers one CPUID, records mode switches and holds some
    /// data selectors.
    #[derive(Debug, Default)]
    struct FakeCpu {
        cpuid: Option<[u32; 4]>,
        asked: Vec<(u32, u32)>,
        switches: Vec<u64>,
        selectors: DataSelectors,
        ports: Vec<(bool, u16, u8, u32)>,
    }

    impl PortBus for FakeCpu {
        fn read(&mut self, port: u16, size: u8) -> u32 {
            self.ports.push((false, port, size, 0));
            0x5a
        }
        fn write(&mut self, port: u16, size: u8, value: u32) {
            self.ports.push((true, port, size, value));
        }
    }

    impl GuestCpu for FakeCpu {
        fn cpuid(&mut self, leaf: u32, subleaf: u32) -> [u32; 4] {
            self.asked.push((leaf, subleaf));
            self.cpuid.expect("unexpected cpuid")
        }
        fn switch_guest_mode(&mut self, cr3: u64) {
            self.switches.push(cr3);
        }
        fn data_selectors(&mut self) -> DataSelectors {
            self.selectors
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
    fn port_io_is_emulated_only_with_the_virtual_iopl() {
        let (mut regs, mut vcpu, mut vinfo, mut mem) = setup();
        let start = regs.rip;
        // inb %dx, %al ; outb %al, %dx
        guest::write(&mut mem, GuestPtr(start), &[0xec, 0xee, 0, 0, 0, 0, 0, 0]).unwrap();
        regs.rdx = 0x2fd;
        let exc = Exception { vector: vector::GP, cr2: 0 };
        let mut cpu = no_cpuid();
        // IOPL 0: the guest's own #GP handler.
        guest_exception(&mut regs, &mut vcpu, &mut vinfo, &mut mem, exc, &mut cpu).unwrap();
        assert_eq!(regs.rip, 0xffff_ffff_8000_00d0);
        assert!(cpu.ports.is_empty());
        let (mut regs, mut vcpu, mut vinfo, mut mem) = setup();
        guest::write(&mut mem, GuestPtr(start), &[0xec, 0xee, 0, 0, 0, 0, 0, 0]).unwrap();
        (regs.rdx, vcpu.iopl, vcpu.io_ports) = (0x2fd, 1, true);
        guest_exception(&mut regs, &mut vcpu, &mut vinfo, &mut mem, exc, &mut cpu).unwrap();
        assert_eq!((regs.rax & 0xff, regs.rip), (0x5a, start + 1));
        guest_exception(&mut regs, &mut vcpu, &mut vinfo, &mut mem, exc, &mut cpu).unwrap();
        assert_eq!(regs.rip, start + 2);
        assert_eq!(cpu.ports, vec![(false, 0x2fd, 1, 0), (true, 0x2fd, 1, 0x5a)]);
        // Guest user mode needs IOPL 3.
        let (mut regs, mut vcpu, mut vinfo, mut mem) = setup();
        guest::write(&mut mem, GuestPtr(start), &[0xec, 0, 0, 0, 0, 0]).unwrap();
        (vcpu.iopl, vcpu.io_ports, vcpu.kernel_mode) = (1, true, false);
        vcpu.kernel_sp = 0x10_8000;
        let _ = guest_exception(&mut regs, &mut vcpu, &mut vinfo, &mut mem, exc, &mut cpu);
        assert_eq!(cpu.ports.len(), 2, "no access from user mode at IOPL 1");
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

    const EVENT_CB: u64 = 0xffff_ffff_8000_a000;
    const FAILSAFE_CB: u64 = 0xffff_ffff_8000_b000;

    #[test]
    fn an_upcall_is_delivered_only_when_due() {
        for (pending, mask, registered) in [(0, 0, true), (1, 1, true), (1, 0, false), (0, 1, true)] {
            let (mut regs, mut vcpu, mut vinfo, mut mem) = setup();
            if registered {
                vcpu.event_callback = crate::domain::Callback { address: EVENT_CB, mask_events: false };
            }
            (vinfo.evtchn_upcall_pending, vinfo.evtchn_upcall_mask) = (pending, mask);
            let before = regs;
            assert_eq!(deliver_event(&mut regs, &mut vcpu, &mut vinfo, &mut mem, &mut no_cpuid()), Ok(false));
            assert_eq!(regs, before, "pending {pending}, mask {mask}, registered {registered}: nothing changes");
            assert_eq!(vinfo.evtchn_upcall_mask, mask);
        }
    }

    #[test]
    fn an_upcall_uses_the_exception_frame_and_masks_events() {
        let (mut regs, mut vcpu, mut vinfo, mut mem) = setup();
        vcpu.event_callback = crate::domain::Callback { address: EVENT_CB, mask_events: false };
        vinfo.evtchn_upcall_pending = 1;
        let sp = regs.rsp;
        assert_eq!(deliver_event(&mut regs, &mut vcpu, &mut vinfo, &mut mem, &mut no_cpuid()), Ok(true));
        assert_eq!(regs.rip, EVENT_CB);
        assert_eq!(regs.rsp, (sp & !15) - 56, "seven words: no error code");
        assert_eq!(vinfo.evtchn_upcall_mask, 1, "masked on entry whatever the registration said");
        assert_eq!(regs.rflags & rflags::TF, 0);
        let w = stack_words(&mut mem, regs.rsp, 7);
        assert_eq!(
            w,
            [0xc, 0x11, 0x10_1000, 0xe030, rflags::IF | rflags::FIXED | rflags::TF, sp, GUEST_SS],
            "saved mask 0 and IF set: the guest was unmasked"
        );
    }

    #[test]
    fn an_upcall_from_user_mode_enters_the_kernel() {
        let (mut regs, mut vcpu, mut vinfo, mut mem) = user_mode();
        vcpu.event_callback = crate::domain::Callback { address: EVENT_CB, mask_events: false };
        vinfo.evtchn_upcall_pending = 1;
        let mut cpu = no_cpuid();
        assert_eq!(deliver_event(&mut regs, &mut vcpu, &mut vinfo, &mut mem, &mut cpu), Ok(true));
        assert!(vcpu.kernel_mode);
        assert_eq!(cpu.switches, [vcpu.cr3()]);
        assert_eq!(regs.rsp, KERNEL_SP - 56);
        let w = stack_words(&mut mem, regs.rsp, 7);
        assert_eq!((w[2], w[3], w[5]), (0x40_0000, GUEST_CS64, 0x7000_1234), "user rip, RPL 3, user rsp");
    }

    #[test]
    fn an_upcall_onto_a_bad_stack_crashes_with_its_own_what() {
        let (mut regs, mut vcpu, mut vinfo, mut mem) = setup();
        vcpu.event_callback = crate::domain::Callback { address: EVENT_CB, mask_events: false };
        vinfo.evtchn_upcall_pending = 1;
        regs.rsp = 0xffff_8000_0000_1000;
        let e = deliver_event(&mut regs, &mut vcpu, &mut vinfo, &mut mem, &mut no_cpuid()).unwrap_err();
        assert_eq!((e.vector, e.reason), (EVENT_UPCALL, "guest kernel stack is not writable"));
    }

    #[test]
    fn the_failsafe_frame_carries_the_data_selectors() {
        let (mut regs, mut vcpu, mut vinfo, mut mem) = setup();
        vcpu.failsafe_callback = crate::domain::Callback { address: FAILSAFE_CB, mask_events: true };
        regs.cs = 0xe00b; // a selector the CPU refused
        vinfo.evtchn_upcall_mask = 0;
        let mut cpu = FakeCpu { selectors: DataSelectors { ds: 0x11, es: 0x22, fs: 0x33, gs: 0x44 }, ..no_cpuid() };
        let sp = regs.rsp;
        failsafe(&mut regs, &mut vcpu, &mut vinfo, &mut mem, &mut cpu).unwrap();
        assert_eq!((regs.rip, regs.cs, regs.ss), (FAILSAFE_CB, GUEST_CS64, GUEST_SS));
        assert_eq!(regs.rsp, (sp & !15) - 88, "eleven words");
        assert_eq!(vinfo.evtchn_upcall_mask, 1, "registered with mask_events");
        let w = stack_words(&mut mem, regs.rsp, 11);
        assert_eq!(
            w,
            [
                0xc,
                0x11,
                0x11,
                0x22,
                0x33,
                0x44,
                0x10_1000,
                0xe008,
                rflags::IF | rflags::FIXED | rflags::TF,
                sp,
                GUEST_SS
            ],
            "RCX, R11, DS, ES, FS, GS, RIP, CS (RPL cleared: kernel mode), RFLAGS, RSP, SS"
        );
    }

    #[test]
    fn failsafe_without_a_callback_crashes() {
        let (mut regs, mut vcpu, mut vinfo, mut mem) = setup();
        let e = failsafe(&mut regs, &mut vcpu, &mut vinfo, &mut mem, &mut no_cpuid()).unwrap_err();
        assert_eq!((e.vector, e.reason), (FAILSAFE, "no failsafe callback registered"));
        vcpu.failsafe_callback = crate::domain::Callback { address: FAILSAFE_CB, mask_events: false };
        vinfo.evtchn_upcall_mask = 1;
        mem.read_only.push((regs.rsp - 0x100) & !0xfff);
        let e = failsafe(&mut regs, &mut vcpu, &mut vinfo, &mut mem, &mut no_cpuid()).unwrap_err();
        assert_eq!((e.vector, e.reason), (FAILSAFE, "guest kernel stack is not writable"));
    }
}
