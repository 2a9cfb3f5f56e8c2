//! Installing the virtual IDT and the callbacks, and dispatching traps to
//! the workload's handler (event upcalls to [`crate::event`]).

use crate::entry;
use crate::frame::{SoftwareVector, TrapFrame, TrapTable, STUB_SIZE};
use crate::hypercall::hv;
use crate::println;
use crate::runtime::shutdown;
use abi::arch::FLAT_KERNEL_SS;
use abi::callback::{
    CallbackRegister, CALLBACKF_MASK_EVENTS, CALLBACKTYPE_EVENT, CALLBACKTYPE_FAILSAFE, CALLBACKTYPE_SYSCALL,
};
use abi::sched::ShutdownReason;
use abi::Errno;
use core::sync::atomic::{AtomicPtr, Ordering};

/// The pseudo-vector the event-upcall callback enters with (its frame has
/// no error code, like a vector above 31).
pub const EVENT_CALLBACK_VECTOR: u8 = 0xf0;
/// The pseudo-vector the user-mode `syscall` callback enters with.
pub const SYSCALL_CALLBACK_VECTOR: u8 = 0xf1;

/// What handles traps: `None` means every trap is fatal.
static HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// What handles the syscall callback and traps from user mode, if not
/// [`HANDLER`].
static USER_HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Sends every trap and the syscall callback to `handler`, which may
/// change the frame (its `rip`, say) before the `iret` restores it. (The
/// event callback always goes to [`crate::event`].)
pub fn set_handler(handler: fn(&mut TrapFrame)) {
    HANDLER.store(handler as *mut (), Ordering::SeqCst);
}

/// Sends the syscall callback and every trap that interrupted user mode to
/// `handler` instead (`None`: back to the [`set_handler`] one).
pub fn set_user_handler(handler: Option<fn(&mut TrapFrame)>) {
    USER_HANDLER.store(handler.map_or(core::ptr::null_mut(), |h| h as *mut ()), Ordering::SeqCst);
}

/// Called by the common entry path with the saved frame.
pub(crate) extern "C" fn dispatch(frame: &mut TrapFrame) {
    if frame.vector() == EVENT_CALLBACK_VECTOR {
        crate::event::upcall(frame);
        return;
    }
    let user = USER_HANDLER.load(Ordering::SeqCst);
    let from_user = frame.vector() == SYSCALL_CALLBACK_VECTOR || !frame.from_kernel_mode();
    let h = if from_user && !user.is_null() { user } else { HANDLER.load(Ordering::SeqCst) };
    if h.is_null() {
        fatal(frame);
    }
    // SAFETY: only `set_handler` and `set_user_handler` store into these,
    // always a `fn(&mut TrapFrame)` cast to a pointer.
    let handler: fn(&mut TrapFrame) = unsafe { core::mem::transmute::<*mut (), fn(&mut TrapFrame)>(h) };
    handler(frame)
}

/// Reports a trap nobody expected and crashes the domain.
pub fn fatal(frame: &TrapFrame) -> ! {
    let what = match frame.vector() {
        EVENT_CALLBACK_VECTOR => "event upcall",
        SYSCALL_CALLBACK_VECTOR => "syscall from user mode",
        _ => "trap",
    };
    println!("FATAL: unexpected {what}: {frame}");
    shutdown(ShutdownReason::Crash)
}

/// Called by the failsafe callback with its frame (`ds, es, fs, gs, rip,
/// cs, rflags, rsp, ss`).
pub(crate) extern "C" fn failsafe(frame: &[u64; 9]) -> ! {
    println!(
        "FATAL: failsafe callback: ds {:#x} es {:#x} fs {:#x} gs {:#x} rip {:#x} cs {:#x} rflags {:#x} rsp {:#x} ss {:#x}",
        frame[0], frame[1], frame[2], frame[3], frame[4], frame[5], frame[6], frame[7], frame[8]
    );
    shutdown(ShutdownReason::Crash)
}

/// The address of the entry stub for `vector`.
pub fn stub_addr(vector: u8) -> u64 {
    entry::trap_stubs_addr() + u64::from(vector) * STUB_SIZE
}

/// The trap table for exceptions 0..=31 and the `extra` software vectors.
pub fn table(extra: &[SoftwareVector]) -> Result<TrapTable, Errno> {
    let stubs = entry::trap_stubs_addr();
    TrapTable::exceptions(stubs).with_software(stubs, extra).map_err(|_| Errno::EINVAL)
}

/// Installs the trap table for exceptions 0..=31 and the `extra` software
/// vectors (`set_trap_table`).
pub fn install(extra: &[SoftwareVector]) -> Result<u64, Errno> {
    let t = table(extra)?;
    // SAFETY: every entry points at a stub of this image that follows the
    // bounce-frame convention, and the stubs live as long as the image.
    unsafe { hv().set_trap_table(t.as_slice()) }
}

/// Registers the event, failsafe and syscall callbacks one by one with
/// `callback_op`; the error names the first that failed.
pub fn register_callbacks() -> Result<(), (&'static str, Errno)> {
    let callbacks = [
        ("event", CALLBACKTYPE_EVENT, CALLBACKF_MASK_EVENTS, stub_addr(EVENT_CALLBACK_VECTOR)),
        ("failsafe", CALLBACKTYPE_FAILSAFE, CALLBACKF_MASK_EVENTS, entry::failsafe_callback_addr()),
        ("syscall", CALLBACKTYPE_SYSCALL, CALLBACKF_MASK_EVENTS, stub_addr(SYSCALL_CALLBACK_VECTOR)),
    ];
    for (name, type_, flags, address) in callbacks {
        let cb = CallbackRegister { type_, flags, _pad0: 0, address };
        // SAFETY: each address is an entry of this image written for that
        // callback's frame.
        unsafe { hv().callback_register(&cb) }.map_err(|e| (name, e))?;
    }
    Ok(())
}

/// Registers the user-mode `syscall` entry alone with `callback_op`,
/// events masked on entry (`set_callbacks` registers it without).
pub fn register_syscall_callback() -> Result<(), Errno> {
    let cb = CallbackRegister {
        type_: CALLBACKTYPE_SYSCALL,
        flags: CALLBACKF_MASK_EVENTS,
        _pad0: 0,
        address: stub_addr(SYSCALL_CALLBACK_VECTOR),
    };
    // SAFETY: the stub follows the syscall callback's frame (no error
    // code, like a vector above 31) and returns with iret and
    // VGCF_in_syscall.
    unsafe { hv().callback_register(&cb) }.map(drop)
}

/// Registers the same three entry points with the older `set_callbacks`
/// (which registers them without masking events).
pub fn set_callbacks() -> Result<u64, Errno> {
    // SAFETY: as in `register_callbacks`.
    unsafe {
        hv().set_callbacks(
            stub_addr(EVENT_CALLBACK_VECTOR),
            entry::failsafe_callback_addr(),
            stub_addr(SYSCALL_CALLBACK_VECTOR),
        )
    }
}

/// Names the stack for traps from user mode (`stack_switch`).
pub fn set_user_entry_stack() -> Result<u64, Errno> {
    // SAFETY: the stack is reserved for this use alone and the kernel runs
    // no user code that could be interrupted while it is in use.
    unsafe { hv().stack_switch(FLAT_KERNEL_SS, entry::user_entry_stack_top()) }
}
