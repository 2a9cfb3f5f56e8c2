//! Cooperative kernel threads on the one vCPU: spawn, yield, wait, join.
//!
//! A thread runs until it yields ([`yield_now`]), waits on a [`WaitQueue`]
//! or returns; nothing preempts it. The code the kernel starts in
//! (`main`, on the boot stack) is thread 0; [`spawn`] adds up to
//! [`MAX_THREADS`] more, each with its own stack from the heap (so after
//! `mm::init`). Switching saves the callee-saved registers and the stack
//! pointer and loads the next thread's (there is no FPU/SSE state: the
//! target is soft-float).
//!
//! Waking comes from event handlers, which run inside the upcall on
//! whatever stack it interrupted: [`WaitQueue::wake_all`] only flips
//! atomics, so it is safe there. A waiter checks its condition and blocks
//! with upcalls masked, and the scheduler switches threads with upcalls
//! masked; when no thread can run, it blocks the vCPU with `SCHEDOP_block`
//! (which unmasks and returns at once if an event is pending), so a wakeup
//! is never lost between the check and the block. Each thread gets its own
//! upcall mask back when it resumes; a new thread starts with the mask its
//! spawner had.
//!
//! Limits, on purpose: no priorities, no preemption, no thread-local
//! storage; a stack overflow is caught (by a canary at the stack's bottom,
//! checked when the thread switches away and when it is joined) only after
//! the fact; a [`JoinHandle`] dropped without [`JoinHandle::join`] leaks the
//! thread's slot and stack.

use crate::event;
use crate::hypercall::hv;
use crate::lock::Lock;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::arch::global_asm;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::SeqCst};

/// Threads besides thread 0.
pub const MAX_THREADS: usize = 15;
/// Bytes of a new thread's stack unless [`spawn_with_stack`] says.
pub const DEFAULT_STACK: usize = 16 * 1024;
/// The smallest stack [`spawn_with_stack`] gives: room for an upcall's
/// frame and a `println!` on top of the thread's own use.
pub const MIN_STACK: usize = 8 * 1024;

/// What the bottom word of every spawned thread's stack holds while it has
/// not overflowed.
const CANARY: u64 = 0x57ac_c0de_dead_f00d;

const FREE: u8 = 0;
const RUNNABLE: u8 = 1;
const BLOCKED: u8 = 2;
const DONE: u8 = 3;

/// One thread's scheduling state.
struct Slot {
    /// `FREE`, `RUNNABLE`, `BLOCKED` or `DONE`.
    state: AtomicU8,
    /// The stack pointer saved when it last switched away.
    rsp: AtomicU64,
    /// The upcall mask it starts with.
    start_masked: AtomicBool,
    /// Its stack (none for thread 0).
    stack: Lock<Option<Vec<u64>>>,
    /// What it runs, until it starts.
    entry: Lock<Option<Box<dyn FnOnce() + Send>>>,
}

impl Slot {
    const fn new(state: u8) -> Slot {
        Slot {
            state: AtomicU8::new(state),
            rsp: AtomicU64::new(0),
            start_masked: AtomicBool::new(true),
            stack: Lock::new(None),
            entry: Lock::new(None),
        }
    }
}

/// Thread 0, already running when the kernel starts.
static MAIN: Slot = Slot::new(RUNNABLE);
/// Threads 1..=MAX_THREADS.
static SLOTS: [Slot; MAX_THREADS] = [const { Slot::new(FREE) }; MAX_THREADS];
/// The running thread.
static CURRENT: AtomicUsize = AtomicUsize::new(0);
/// Woken whenever a thread finishes.
static FINISHED: WaitQueue = WaitQueue::new();

fn slot(id: usize) -> &'static Slot {
    match id {
        0 => &MAIN,
        _ => &SLOTS[id - 1],
    }
}

/// The running thread's id (0 for the kernel's first thread).
pub fn current() -> usize {
    CURRENT.load(SeqCst)
}

// Switching. `guest_switch_stacks(save, load)`: pushes the callee-saved
// registers, stores rsp at `*save`, loads `load` into rsp, pops the next
// thread's registers and returns on its stack. A new thread's stack is
// laid out so that this "returns" into `guest_thread_start`, which calls
// `thread_main` on an aligned stack.
global_asm!(
    ".pushsection .text.guest_threads, \"ax\"",
    ".globl guest_switch_stacks",
    "guest_switch_stacks:",
    "    push rbp",
    "    push rbx",
    "    push r12",
    "    push r13",
    "    push r14",
    "    push r15",
    "    mov [rdi], rsp",
    "    mov rsp, rsi",
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop rbx",
    "    pop rbp",
    "    ret",
    ".globl guest_thread_start",
    "guest_thread_start:",
    "    xor ebp, ebp",
    "    and rsp, -16",
    "    call {main}",
    "    ud2",
    ".popsection",
    main = sym thread_main,
);

extern "C" {
    fn guest_switch_stacks(save: *mut u64, load: u64);
    static guest_thread_start: u8;
}

/// Callee-saved registers `guest_switch_stacks` pops before returning.
const SAVED_REGISTERS: usize = 6;

/// Runs a new thread's entry, then finishes it.
extern "C" fn thread_main() -> ! {
    let me = slot(current());
    if !me.start_masked.load(SeqCst) {
        event::unmask_upcalls();
    }
    let entry = me.entry.lock().take();
    if let Some(f) = entry {
        f();
    }
    event::mask_upcalls();
    me.state.store(DONE, SeqCst);
    FINISHED.wake_all();
    schedule();
    unreachable!("a finished thread was scheduled");
}

/// Whether thread `id`'s stack canary is intact (thread 0 has none).
fn canary_intact(id: usize) -> bool {
    slot(id).stack.try_lock().is_none_or(|s| s.as_ref().is_none_or(|s| s.first() == Some(&CANARY)))
}

/// Switches to the next runnable thread after the current one (round
/// robin, the current one last); while none can run, blocks the vCPU until
/// an upcall makes one runnable. Returns when the current thread runs
/// again. Call with upcalls masked; returns with them masked.
fn schedule() {
    loop {
        let cur = current();
        let next = (1..=MAX_THREADS + 1)
            .map(|i| (cur + i) % (MAX_THREADS + 1))
            .find(|&id| slot(id).state.load(SeqCst) == RUNNABLE);
        match next {
            Some(next) if next == cur => return,
            Some(next) => {
                assert!(canary_intact(cur), "thread {cur} overflowed its stack");
                CURRENT.store(next, SeqCst);
                let load = slot(next).rsp.load(SeqCst);
                // SAFETY: `load` is what `next` saved when it switched away
                // (or its prepared first frame), on a stack that stays
                // allocated until it is joined after finishing; our own
                // state is saved in our slot until someone switches back.
                unsafe { guest_switch_stacks(slot(cur).rsp.as_ptr(), load) };
                return;
            }
            None => {
                // Nothing can run: sleep until an event. SCHEDOP_block
                // unmasks and delivers the upcall on its way back.
                let _ = hv().sched_block();
                event::mask_upcalls();
            }
        }
    }
}

/// Lets every other runnable thread run once before this one continues.
pub fn yield_now() {
    let was = event::mask_upcalls();
    schedule();
    event::restore_upcalls(was);
}

/// Threads waiting for a condition that event handlers (or other threads)
/// make true.
#[derive(Debug)]
pub struct WaitQueue {
    /// Bit `id` for each waiting thread.
    waiters: AtomicU32,
}

// Thread ids 0..=MAX_THREADS each need a waiter bit.
const _: () = assert!(MAX_THREADS < 32);

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitQueue {
    /// A queue nobody waits on.
    pub const fn new() -> WaitQueue {
        WaitQueue { waiters: AtomicU32::new(0) }
    }

    /// Returns once `cond` holds. `cond` is checked with upcalls masked;
    /// while it is false the thread sleeps until [`WaitQueue::wake_all`],
    /// and the other threads (or, with none runnable, the hypervisor) run.
    /// Restores the upcall mask on return.
    pub fn wait_until(&self, mut cond: impl FnMut() -> bool) {
        let was = event::mask_upcalls();
        while !cond() {
            let me = current();
            self.waiters.fetch_or(1 << me, SeqCst);
            slot(me).state.store(BLOCKED, SeqCst);
            schedule();
        }
        event::restore_upcalls(was);
    }

    /// Makes every waiting thread runnable, to check its condition again.
    /// Only flips atomics: safe in event handlers.
    pub fn wake_all(&self) {
        let mut w = self.waiters.swap(0, SeqCst);
        while w != 0 {
            let id = w.trailing_zeros() as usize;
            w &= w - 1;
            let _ = slot(id).state.compare_exchange(BLOCKED, RUNNABLE, SeqCst, SeqCst);
        }
    }
}

/// Why [`spawn`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// All [`MAX_THREADS`] slots are in use (or not yet joined).
    NoSlot,
    /// The heap could not give the stack.
    NoMemory,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::NoSlot => write!(f, "all {MAX_THREADS} thread slots are in use"),
            SpawnError::NoMemory => write!(f, "no heap for the thread's stack"),
        }
    }
}

/// A spawned thread, to wait for with [`JoinHandle::join`].
#[derive(Debug)]
#[must_use = "a thread that is never joined keeps its slot and stack"]
pub struct JoinHandle {
    id: usize,
}

impl JoinHandle {
    /// The thread's id.
    pub fn id(&self) -> usize {
        self.id
    }

    /// Waits for the thread to finish, then frees its stack and slot.
    /// Panics if it overflowed its stack.
    pub fn join(self) {
        let s = slot(self.id);
        FINISHED.wait_until(|| s.state.load(SeqCst) == DONE);
        assert!(canary_intact(self.id), "thread {} overflowed its stack", self.id);
        drop(s.stack.lock().take());
        s.state.store(FREE, SeqCst);
    }
}

/// Starts `f` on a new thread with a [`DEFAULT_STACK`]-byte stack. It
/// runs when the spawner next yields or waits.
pub fn spawn(f: impl FnOnce() + Send + 'static) -> Result<JoinHandle, SpawnError> {
    spawn_with_stack(DEFAULT_STACK, f)
}

/// Starts `f` on a new thread with a stack of `bytes` (at least
/// [`MIN_STACK`], rounded up to 16).
pub fn spawn_with_stack(bytes: usize, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle, SpawnError> {
    let words = bytes.max(MIN_STACK).div_ceil(16) * 2;
    let mut stack: Vec<u64> = Vec::new();
    stack.try_reserve_exact(words).map_err(|_| SpawnError::NoMemory)?;
    stack.resize(words, 0);
    stack[0] = CANARY;
    // The first frame guest_switch_stacks pops: the callee-saved registers
    // (zero), then the return address; one more word keeps the top aligned.
    let ret = words - 2;
    stack[ret] = core::ptr::addr_of!(guest_thread_start) as u64;
    let rsp = stack.as_ptr() as u64 + ((ret - SAVED_REGISTERS) * 8) as u64;
    let id = (1..=MAX_THREADS)
        .find(|&id| slot(id).state.compare_exchange(FREE, BLOCKED, SeqCst, SeqCst).is_ok())
        .ok_or(SpawnError::NoSlot)?;
    let s = slot(id);
    *s.entry.lock() = Some(Box::new(f));
    // The Vec's buffer does not move when the Vec does.
    *s.stack.lock() = Some(stack);
    s.rsp.store(rsp, SeqCst);
    s.start_masked.store(event::upcalls_masked(), SeqCst);
    s.state.store(RUNNABLE, SeqCst);
    Ok(JoinHandle { id })
}
