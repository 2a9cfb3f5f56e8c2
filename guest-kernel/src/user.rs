//! A user-mode task: a page of code and a page of stack in an address space
//! of their own, entered with the `iret` hypercall and left by a system
//! call or a fault.
//!
//! A 64-bit PV kernel and its user mode both run in ring 3; the hypervisor
//! tells them apart and keeps two L4s. The task's L4 (pinned, mapping only
//! the two pages, with `U`) becomes the user base pointer
//! (`MMUEXT_NEW_USER_BASEPTR`). [`Task::run`] saves the kernel's
//! callee-saved registers and stack pointer, then `iret`s to the task with
//! `cs = 0xe033` (RPL 3: user mode), `ss = 0xe02b`, `rflags.IF` set.
//!
//! The task's `syscall` reaches the syscall callback (registered with
//! `CALLBACKF_mask_events`) on the kernel stack `stack_switch` named, with
//! Xen's bounce frame `rcx, r11, rip, cs, rflags, rsp, ss`; the trap entry
//! path hands it to `on_user_trap`, which answers in `rax` and returns
//! with `iret` and `VGCF_in_syscall`. `exit`, or any fault in user mode,
//! ends the run: the handler `iret`s to the kernel context `run` saved
//! (`cs` RPL 0, so kernel mode; `rflags.IF` clear, so events masked as
//! before), and `run` returns how the task ended.
//!
//! System calls: number in `rax`, arguments in `rdi`, `rsi`, result in
//! `rax`: [`SYS_WRITE`], [`SYS_ADD`], [`SYS_EXIT`].

use crate::frame::{TrapFrame, RFLAGS_IF};
use crate::layout::{PAGE_SIZE, USER_CODE, USER_STACK};
use crate::lock::Lock;
use crate::mm::{self, Frame};
use crate::pagetable::{entry_mfn, MmError, Prot, Space};
use crate::text::Escaped;
use crate::traps::{self, SYSCALL_CALLBACK_VECTOR};
use crate::{println, shared};
use abi::arch::{FLAT_KERNEL_CS, FLAT_KERNEL_SS, FLAT_USER_CS, FLAT_USER_SS};
use abi::Errno;
use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

/// `write(buf, len)`: prints `len` bytes (at most [`MAX_WRITE`]) of user
/// memory; returns `len`, or `-EFAULT` / `-EINVAL`.
pub const SYS_WRITE: u64 = 1;
/// `add(a, b)`: returns `a + b`.
pub const SYS_ADD: u64 = 2;
/// `exit(status)`: ends the run; does not return.
pub const SYS_EXIT: u64 = 3;

/// The most bytes one `write` takes.
pub const MAX_WRITE: usize = 128;

/// The address the fault program reads: mapped nowhere in the task.
pub const USER_FAULT_ADDR: u64 = 0x0000_0000_00c0_0000;

/// The value the syscall program exits with when `write` returned the
/// wrong count.
pub const BAD_WRITE_STATUS: u64 = 0xbad;

/// The text the syscall program writes.
pub const HELLO: &[u8] = b"hello from user mode";

// The user programs, copied to the task's code page (so only rip-relative
// references inside this block). `guest_user_syscalls`: add(40, 2), then
// write(HELLO), then exit with add's result (or BAD_WRITE_STATUS if write
// did not return the length). `guest_user_fault`: reads USER_FAULT_ADDR.
global_asm!(
    ".pushsection .text.guest_user_program, \"ax\"",
    ".balign 16",
    ".globl guest_user_program",
    "guest_user_program:",
    ".globl guest_user_syscalls",
    "guest_user_syscalls:",
    "    mov eax, {add}",
    "    mov edi, 40",
    "    mov esi, 2",
    "    syscall",
    "    mov r12, rax",
    "    mov eax, {write}",
    "    lea rdi, [rip + .Luser_hello]",
    "    mov esi, {hello_len}",
    "    syscall",
    "    cmp rax, {hello_len}",
    "    jne .Luser_bad_write",
    "    mov eax, {exit}",
    "    mov rdi, r12",
    "    syscall",
    "    ud2",
    ".Luser_bad_write:",
    "    mov eax, {exit}",
    "    mov edi, {bad}",
    "    syscall",
    "    ud2",
    ".Luser_hello:",
    ".ascii \"hello from user mode\"",
    ".balign 16",
    ".globl guest_user_fault",
    "guest_user_fault:",
    "    mov rbx, {fault_addr}",
    "    mov rax, qword ptr [rbx]",
    "    ud2",
    ".globl guest_user_program_end",
    "guest_user_program_end:",
    ".popsection",
    // Kernel side. guest_user_enter(saved_rsp: *mut u64, frame: *const
    // [u64; 6]) saves the callee-saved registers and rsp, clears every
    // other register and irets with `frame` (flags, rip, cs, rflags, rsp,
    // ss). It returns, as an ordinary function, when guest_user_leave
    // irets to guest_user_resume with the saved rsp and a value in rax.
    ".pushsection .text.guest_user_glue, \"ax\"",
    ".globl guest_user_enter",
    "guest_user_enter:",
    "    push rbx",
    "    push rbp",
    "    push r12",
    "    push r13",
    "    push r14",
    "    push r15",
    "    mov [rdi], rsp",
    "    push qword ptr [rsi + 40]",
    "    push qword ptr [rsi + 32]",
    "    push qword ptr [rsi + 24]",
    "    push qword ptr [rsi + 16]",
    "    push qword ptr [rsi + 8]",
    "    push qword ptr [rsi]",
    "    xor eax, eax",
    "    xor ebx, ebx",
    "    xor ecx, ecx",
    "    xor edx, edx",
    "    xor esi, esi",
    "    xor edi, edi",
    "    xor ebp, ebp",
    "    xor r8d, r8d",
    "    xor r9d, r9d",
    "    xor r10d, r10d",
    "    xor r11d, r11d",
    "    xor r12d, r12d",
    "    xor r13d, r13d",
    "    xor r14d, r14d",
    "    xor r15d, r15d",
    abi::xen_iret_asm!(),
    "    ud2",
    "guest_user_resume:",
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop rbp",
    "    pop rbx",
    "    ret",
    // guest_user_leave(saved_rsp, value): irets to guest_user_resume in
    // kernel mode (cs RPL 0) with events masked (IF clear) and rax = value.
    ".globl guest_user_leave",
    "guest_user_leave:",
    "    push {kernel_ss}",
    "    push rdi",
    "    push 2",
    "    push {kernel_cs}",
    "    lea rax, [rip + guest_user_resume]",
    "    push rax",
    "    push 0",
    "    mov rax, rsi",
    abi::xen_iret_asm!(),
    "    ud2",
    ".popsection",
    add = const SYS_ADD,
    write = const SYS_WRITE,
    exit = const SYS_EXIT,
    bad = const BAD_WRITE_STATUS,
    hello_len = const HELLO.len(),
    fault_addr = const USER_FAULT_ADDR,
    kernel_ss = const FLAT_KERNEL_SS,
    kernel_cs = const FLAT_KERNEL_CS & !3,
);

extern "C" {
    static guest_user_program: u8;
    static guest_user_syscalls: u8;
    static guest_user_fault: u8;
    static guest_user_program_end: u8;
    fn guest_user_enter(saved_rsp: *mut u64, frame: *const [u64; 6]) -> u64;
    fn guest_user_leave(saved_rsp: u64, value: u64) -> !;
}

/// Which user program to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// add, write, exit with add's result.
    Syscalls,
    /// Reads [`USER_FAULT_ADDR`].
    Fault,
}

impl Program {
    /// Its entry point in the task (the programs sit at [`USER_CODE`]).
    pub fn entry(self) -> u64 {
        let start = core::ptr::addr_of!(guest_user_program) as u64;
        let at = match self {
            Program::Syscalls => core::ptr::addr_of!(guest_user_syscalls) as u64,
            Program::Fault => core::ptr::addr_of!(guest_user_fault) as u64,
        };
        USER_CODE + (at - start)
    }
}

/// A trap from user mode that ended a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserTrap {
    /// The vector.
    pub vector: u8,
    /// The error code (0 where the vector has none).
    pub error_code: u64,
    /// Where it happened.
    pub rip: u64,
    /// The interrupted `cs` (RPL 3 for user mode).
    pub cs: u64,
    /// `vcpu_info[0].arch.cr2` when it arrived (for `#PF`), if
    /// shared_info is mapped.
    pub cr2: Option<u64>,
    /// The address just above the bounce frame (where `ss` was saved
    /// ends): the stack `stack_switch` named.
    pub frame_top: u64,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `exit(status)`.
    Exited(u64),
    /// A trap in user mode.
    Trap(UserTrap),
}

/// One system call as the kernel saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallSeen {
    /// `rax`: the number.
    pub nr: u64,
    /// `rdi`, `rsi`.
    pub args: [u64; 2],
    /// The bounce frame's `rip` (after the `syscall`).
    pub rip: u64,
    /// `rcx` (the CPU's copy of the return address).
    pub rcx: u64,
    /// `r11` (the CPU's copy of `rflags`).
    pub r11: u64,
    /// `cs` (RPL 3).
    pub cs: u64,
    /// `rflags`.
    pub rflags: u64,
    /// The user `rsp`.
    pub rsp: u64,
    /// `ss`.
    pub ss: u64,
    /// `vcpu_info[0].evtchn_upcall_mask` in the handler (1: the callback
    /// masked events), if shared_info is mapped.
    pub upcall_mask: Option<u8>,
    /// The address just above the bounce frame.
    pub frame_top: u64,
}

/// Most system calls a run records.
pub const MAX_RECORDED: usize = 8;

/// What one run did.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    /// The system calls, in order (the first [`MAX_RECORDED`]).
    pub syscalls: [SyscallSeen; MAX_RECORDED],
    /// How many there were.
    pub count: usize,
    /// Everything `write` printed (the first bytes of it).
    pub output: [u8; MAX_WRITE],
    /// How many bytes of `output` are used.
    pub output_len: usize,
}

impl Record {
    const fn new() -> Record {
        Record {
            syscalls: [SyscallSeen {
                nr: 0,
                args: [0; 2],
                rip: 0,
                rcx: 0,
                r11: 0,
                cs: 0,
                rflags: 0,
                rsp: 0,
                ss: 0,
                upcall_mask: None,
                frame_top: 0,
            }; MAX_RECORDED],
            count: 0,
            output: [0; MAX_WRITE],
            output_len: 0,
        }
    }

    /// The recorded system calls.
    pub fn syscalls(&self) -> &[SyscallSeen] {
        &self.syscalls[..self.count.min(MAX_RECORDED)]
    }

    /// What `write` printed.
    pub fn output(&self) -> &[u8] {
        &self.output[..self.output_len]
    }
}

/// The run in progress.
struct Run {
    /// The task's L4, while a run is in progress.
    root: Option<u64>,
    record: Record,
    exit: Option<Exit>,
}

static RUN: Lock<Run> = Lock::new(Run { root: None, record: Record::new(), exit: None });

/// The kernel stack pointer `guest_user_enter` saved.
static SAVED_RSP: AtomicU64 = AtomicU64::new(0);

/// A user task: its address space, code page and stack page.
#[derive(Debug)]
pub struct Task {
    space: Space,
    code: Frame,
    stack: Frame,
}

impl Task {
    /// Builds the task: a new pinned L4, a code page holding the user
    /// programs mapped user read-only at [`USER_CODE`], a zeroed stack
    /// page mapped user read-write at [`USER_STACK`].
    pub fn new() -> Result<Task, MmError> {
        let code = mm::alloc_frame()?;
        let stack = match mm::alloc_frame() {
            Ok(f) => f,
            Err(e) => {
                let _ = mm::free_frame(code);
                return Err(e);
            }
        };
        Task::build(code, stack).inspect_err(|_| {
            // Best effort: the frames are only ours if no tree kept them.
            let _ = mm::free_frame(code);
            let _ = mm::free_frame(stack);
        })
    }

    fn build(code: Frame, stack: Frame) -> Result<Task, MmError> {
        let start = core::ptr::addr_of!(guest_user_program);
        let len = core::ptr::addr_of!(guest_user_program_end) as usize - start as usize;
        if len > PAGE_SIZE as usize {
            return Err(MmError::Unavailable("the user programs are bigger than a page"));
        }
        // SAFETY: the programs are `len` bytes of this image's text.
        let program = unsafe { core::slice::from_raw_parts(start, len) };
        if !program.windows(HELLO.len()).any(|w| w == HELLO) {
            return Err(MmError::Unavailable("the user program's text is not HELLO"));
        }
        // SAFETY: both frames are new from the allocator, mapped
        // read-write in the direct map, referenced by nothing.
        unsafe { stack.zero() };
        // SAFETY: as above.
        unsafe { code.zero() };
        // SAFETY: as above; the program is `len` bytes of this image's
        // text, at most a page.
        unsafe { core::ptr::copy_nonoverlapping(start, code.va() as *mut u8, len) };
        let space = mm::new_space()?;
        let mapped = mm::map_in(space, USER_CODE, code.mfn, Prot::USER_RO)
            .and_then(|()| mm::map_in(space, USER_STACK, stack.mfn, Prot::USER_RW));
        if let Err(e) = mapped {
            let _ = mm::destroy_tree(space.root, true);
            return Err(e);
        }
        Ok(Task { space, code, stack })
    }

    /// The task's L4.
    pub fn root(&self) -> u64 {
        self.space.root
    }

    /// Runs `program` in user mode until it exits or traps: registers the
    /// syscall callback (events masked on entry), installs the task's L4
    /// as the user base pointer and enters user mode with `iret`.
    pub fn run(&self, program: Program) -> Result<(Exit, Record), MmError> {
        traps::register_syscall_callback().map_err(|e| MmError::Hypercall("callback_op(register, syscall)", e, 0))?;
        mm::set_user_root(self.space.root)?;
        *RUN.lock() = Run { root: Some(self.space.root), record: Record::new(), exit: None };
        traps::set_user_handler(Some(on_user_trap));
        let frame = [
            0,
            program.entry(),
            u64::from(FLAT_USER_CS),
            RFLAGS_IF | 2,
            USER_STACK + PAGE_SIZE,
            u64::from(FLAT_USER_SS),
        ];
        // SAFETY: the iret goes to user mode on the task's tables, which
        // map nothing of the kernel; the task comes back only through
        // `on_user_trap`, which irets to guest_user_resume with the rsp
        // saved here, so this returns like a function with its
        // callee-saved registers restored. The trap stack (stack_switch)
        // is not this one.
        unsafe { guest_user_enter(SAVED_RSP.as_ptr(), &frame) };
        traps::set_user_handler(None);
        let mut run = RUN.lock();
        run.root = None;
        let exit = run.exit.take();
        let record = run.record;
        drop(run);
        mm::set_user_root(0)?;
        exit.map(|e| (e, record)).ok_or(MmError::Unavailable("the task came back without an exit"))
    }

    /// Takes the task down: unpins and frees its tables and pages.
    pub fn destroy(self) -> Result<(), MmError> {
        mm::destroy_tree(self.space.root, true)?;
        mm::free_frame(self.code)?;
        mm::free_frame(self.stack)
    }
}

/// Copies user memory `[va, va + out.len())` of the task with L4 `root`
/// into `out`, through the task's page tables (the kernel's own tables do
/// not map user memory). Only present, user-accessible pages.
fn copy_from_user(root: u64, va: u64, out: &mut [u8]) -> Result<(), Errno> {
    let mut done = 0;
    while done < out.len() {
        let at = va.checked_add(done as u64).ok_or(Errno::EFAULT)?;
        let page = at & !(PAGE_SIZE - 1);
        let entry = mm::lookup_in(root, page).map_err(|_| Errno::EFAULT)?.ok_or(Errno::EFAULT)?;
        if entry & crate::layout::pte::USER == 0 {
            return Err(Errno::EFAULT);
        }
        let pfn = mm::pfn_of_mfn(entry_mfn(entry)).ok_or(Errno::EFAULT)?;
        let offset = (at - page) as usize;
        let n = (PAGE_SIZE as usize - offset).min(out.len() - done);
        let src = (crate::layout::va_of_pfn(pfn) + offset as u64) as *const u8;
        // SAFETY: the frame is ours (the M2P and p2m agree), so the direct
        // map maps it; `n` bytes from `offset` stay inside the page.
        unsafe { core::ptr::copy_nonoverlapping(src, out[done..].as_mut_ptr(), n) };
        done += n;
    }
    Ok(())
}

/// `-errno` as a system call result.
fn err(e: Errno) -> u64 {
    e.as_ret() as u64
}

fn sys_write(root: u64, record: &mut Record, va: u64, len: u64) -> u64 {
    let Ok(len) = usize::try_from(len) else {
        return err(Errno::EINVAL);
    };
    if len > MAX_WRITE {
        return err(Errno::EINVAL);
    }
    let mut buf = [0u8; MAX_WRITE];
    if let Err(e) = copy_from_user(root, va, &mut buf[..len]) {
        return err(e);
    }
    println!("user: {}", Escaped(&buf[..len]));
    let room = MAX_WRITE - record.output_len;
    let n = len.min(room);
    record.output[record.output_len..record.output_len + n].copy_from_slice(&buf[..n]);
    record.output_len += n;
    len as u64
}

/// Ends the run with `exit`: back to the kernel context `run` saved.
fn leave(exit: Exit) -> ! {
    RUN.lock().exit = Some(exit);
    // SAFETY: a run is in progress (only then is this handler installed),
    // so SAVED_RSP holds the kernel stack pointer guest_user_enter saved,
    // whose frame is still live below `Task::run`. Nothing on the trap
    // stack being abandoned needs dropping.
    unsafe { guest_user_leave(SAVED_RSP.load(Ordering::SeqCst), 0) }
}

/// Where the trap path sends the syscall callback and traps from user
/// mode while a task runs.
fn on_user_trap(frame: &mut TrapFrame) {
    let frame_top = core::ptr::addr_of!(frame.ss) as u64 + 8;
    let Some(root) = RUN.lock().root else {
        traps::fatal(frame);
    };
    if frame.vector() != SYSCALL_CALLBACK_VECTOR {
        let cr2 = (frame.vector() == crate::frame::PF).then(shared::vcpu0_cr2).flatten();
        leave(Exit::Trap(UserTrap {
            vector: frame.vector(),
            error_code: frame.error_code,
            rip: frame.rip,
            cs: frame.cs,
            cr2,
            frame_top,
        }));
    }
    let seen = SyscallSeen {
        nr: frame.rax,
        args: [frame.rdi, frame.rsi],
        rip: frame.rip,
        rcx: frame.rcx,
        r11: frame.r11,
        cs: frame.cs,
        rflags: frame.rflags,
        rsp: frame.rsp,
        ss: frame.ss,
        upcall_mask: shared::vcpu0_upcall_mask(),
        frame_top,
    };
    let mut run = RUN.lock();
    let n = run.record.count;
    if n < MAX_RECORDED {
        run.record.syscalls[n] = seen;
    }
    run.record.count += 1;
    let result = match frame.rax {
        SYS_ADD => frame.rdi.wrapping_add(frame.rsi),
        SYS_WRITE => sys_write(root, &mut run.record, frame.rdi, frame.rsi),
        SYS_EXIT => {
            drop(run);
            leave(Exit::Exited(frame.rdi));
        }
        _ => err(Errno::ENOSYS),
    };
    // The trap path returns with `iret` and VGCF_in_syscall for this
    // vector (see `entry`), so the hypervisor may use `sysret`.
    frame.rax = result;
}
