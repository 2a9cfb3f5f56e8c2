//! Guest-side hypercalls for a 64-bit PV kernel (cargo feature `guest`).
//!
//! A 64-bit PV kernel enters the hypervisor with `syscall` from its kernel
//! mode: the hypercall number in `rax`, up to five arguments in `rdi, rsi,
//! rdx, r10, r8`, the result back in `rax` (`-errno` on failure). Two
//! [`Hypercall`] transports do that:
//!
//! - [`HypercallPage`]: `call` the 32-byte stub for the number in the page
//!   the hypervisor wrote into the guest image (the `HYPERCALL_PAGE` ELF note,
//!   [`crate::hypercall_page`]); the usual way, and the only one that stays
//!   correct if a hypervisor ever changes the entry sequence.
//! - [`Syscall`]: execute `syscall` directly, no page needed.
//!
//! [`Hypercalls`] wraps a transport with one method per operation. Methods
//! whose arguments are only plain values and Rust buffers are safe: the
//! hypervisor writes nothing outside the buffer it is given. Methods that
//! change how the CPU reaches guest code or memory (trap handlers, callbacks,
//! the kernel stack, segment bases, page mappings) are `unsafe fn`: a wrong
//! address there breaks memory safety later, far from the call.
//!
//! Returning from an exception bounced by the hypervisor is the `iret`
//! hypercall, which never returns to its caller: see [`xen_iret_asm!`](crate::xen_iret_asm) and
//! [`HypercallPage::iret_entry`].
#![cfg(target_arch = "x86_64")]
#![allow(unsafe_code)]

use crate::arch::{SegmentBase, TrapInfo};
use crate::callback::{CallbackRegister, CallbackUnregister, CALLBACKOP_REGISTER, CALLBACKOP_UNREGISTER};
use crate::domctl::XenDomctl;
use crate::event_channel::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVcpu, EvtchnBindVirq, EvtchnClose, EvtchnReset,
    EvtchnSend, EvtchnStatus, EvtchnUnmask, EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_INTERDOMAIN, EVTCHNOP_BIND_IPI,
    EVTCHNOP_BIND_VCPU, EVTCHNOP_BIND_VIRQ, EVTCHNOP_CLOSE, EVTCHNOP_RESET, EVTCHNOP_SEND, EVTCHNOP_STATUS,
    EVTCHNOP_UNMASK,
};
use crate::grant_table::{
    GnttabCopy, GnttabMapGrantRef, GnttabQuerySize, GnttabSetVersion, GnttabSetupTable, GnttabUnmapGrantRef,
    GNTTABOP_COPY, GNTTABOP_MAP_GRANT_REF, GNTTABOP_QUERY_SIZE, GNTTABOP_SETUP_TABLE, GNTTABOP_SET_VERSION,
    GNTTABOP_UNMAP_GRANT_REF,
};
use crate::hypercall as nr;
use crate::hypercall_page::{HYPERCALL_PAGE_ENTRIES, HYPERCALL_PAGE_ENTRY_SIZE};
use crate::mm::{
    MmuUpdate, MmuextOp, XenMemoryReservation, DOMID_SELF, XENMEM_CURRENT_RESERVATION, XENMEM_DECREASE_RESERVATION,
    XENMEM_INCREASE_RESERVATION, XENMEM_MAXIMUM_RESERVATION, XENMEM_POPULATE_PHYSMAP,
};
use crate::sched::ShutdownReason;
use crate::sched::{
    SchedPoll, SchedRemoteShutdown, SchedShutdown, VcpuRegisterVcpuInfo, VcpuSetSingleshotTimer, XenFeatureInfo,
    XenPlatformParameters, CONSOLEIO_READ, CONSOLEIO_WRITE, SCHEDOP_BLOCK, SCHEDOP_POLL, SCHEDOP_REMOTE_SHUTDOWN,
    SCHEDOP_SHUTDOWN, SCHEDOP_SHUTDOWN_CODE, SCHEDOP_YIELD, VCPUOP_REGISTER_VCPU_INFO, VCPUOP_SET_SINGLESHOT_TIMER,
    VCPUOP_STOP_PERIODIC_TIMER, VCPUOP_STOP_SINGLESHOT_TIMER, XENVER_BUILD_ID, XENVER_CAPABILITIES, XENVER_CHANGESET,
    XENVER_COMMANDLINE, XENVER_COMPILE_INFO, XENVER_EXTRAVERSION, XENVER_GET_FEATURES, XENVER_GUEST_HANDLE,
    XENVER_PAGESIZE, XENVER_PLATFORM_PARAMETERS, XENVER_VERSION, XEN_CAPABILITIES_INFO_LEN, XEN_CHANGESET_INFO_LEN,
    XEN_EXTRAVERSION_LEN,
};
use crate::sysctl::XenSysctl;
use crate::Errno;
use core::arch::asm;

/// Assembly text for the `iret` hypercall, for a trap handler's exit path.
///
/// Before it, the handler restores every register of the interrupted
/// context and leaves on the stack, from `rsp` up, `flags` (0, or
/// [`crate::arch::VGCF_IN_SYSCALL`]), `rip`, `cs`, `rflags`, `rsp`, `ss`:
/// the bounce frame with `rcx`, `r11` and any error code already popped,
/// plus one pushed `flags` word. The text pushes `rcx`, `r11` and `rax`,
/// completing an [`crate::arch::IretContext`], and enters the hypervisor,
/// which restores all of it and never comes back here. It is the same
/// sequence as the hypercall page's entry 23, so it works without the page:
///
/// ```text
/// push rcx; push r11; push rax; mov eax, 23; syscall
/// ```
///
/// Use it in `global_asm!`/`asm!` (Intel syntax) through `concat!`.
#[macro_export]
macro_rules! xen_iret_asm {
    () => {
        "push rcx\n push r11\n push rax\n mov eax, 23\n syscall\n"
    };
}

/// A way into the hypervisor.
pub trait Hypercall {
    /// Performs hypercall `nr` with `args` in `rdi, rsi, rdx, r10, r8` and
    /// returns `rax` as the hypervisor left it.
    ///
    /// # Safety
    ///
    /// `args` must be valid for hypercall `nr`: every pointer among them
    /// points to memory that may be read or written as that hypercall's
    /// documentation says, and the operation must not invalidate anything
    /// the caller's Rust code relies on (mappings, stacks, handlers).
    unsafe fn hypercall(&self, nr: u64, args: [u64; 5]) -> u64;
}

/// The raw `syscall` transport: `syscall` from guest kernel mode is a
/// hypercall.
#[derive(Clone, Copy, Debug)]
pub struct Syscall {
    _private: (),
}

impl Syscall {
    /// The transport.
    ///
    /// # Safety
    ///
    /// The caller runs in the kernel mode of a 64-bit PV guest (anywhere
    /// else `syscall` is not a hypercall).
    pub const unsafe fn new() -> Syscall {
        Syscall { _private: () }
    }
}

impl Hypercall for Syscall {
    unsafe fn hypercall(&self, nr: u64, args: [u64; 5]) -> u64 {
        let ret: u64;
        // SAFETY: the caller guarantees the arguments are valid for `nr`
        // (trait contract) and that this is a PV guest kernel (`new`).
        // `syscall` clobbers rcx and r11; the hypervisor may clobber the
        // argument registers.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") nr => ret,
                inlateout("rdi") args[0] => _,
                inlateout("rsi") args[1] => _,
                inlateout("rdx") args[2] => _,
                inlateout("r10") args[3] => _,
                inlateout("r8") args[4] => _,
                lateout("rcx") _,
                lateout("r11") _,
            );
        }
        ret
    }
}

/// The hypercall page the hypervisor wrote at a known address in the guest.
#[derive(Clone, Copy, Debug)]
pub struct HypercallPage {
    base: u64,
}

impl HypercallPage {
    /// The page at virtual address `base`.
    ///
    /// # Safety
    ///
    /// `base` is page-aligned and the hypervisor has filled the page there
    /// (it is the guest's `HYPERCALL_PAGE` note), and the caller runs in the
    /// kernel mode of a 64-bit PV guest.
    pub const unsafe fn new(base: u64) -> HypercallPage {
        HypercallPage { base }
    }

    /// The page's virtual address.
    pub const fn base(&self) -> u64 {
        self.base
    }

    /// The address of the stub for hypercall `nr` (`base + 32 * nr`), or
    /// `None` past the page's 128 entries.
    pub const fn entry(&self, nr: u64) -> Option<u64> {
        if nr < HYPERCALL_PAGE_ENTRIES as u64 {
            Some(self.base + nr * HYPERCALL_PAGE_ENTRY_SIZE as u64)
        } else {
            None
        }
    }

    /// The address of the `iret` stub (entry 23): a trap handler jumps (not
    /// calls) there with the stack described at [`xen_iret_asm!`](crate::xen_iret_asm) minus the
    /// three registers the stub pushes itself.
    pub const fn iret_entry(&self) -> u64 {
        self.base + nr::IRET * HYPERCALL_PAGE_ENTRY_SIZE as u64
    }
}

impl Hypercall for HypercallPage {
    unsafe fn hypercall(&self, nr: u64, args: [u64; 5]) -> u64 {
        let Some(entry) = self.entry(nr) else {
            return Errno::ENOSYS.as_ret() as u64;
        };
        let ret: u64;
        // SAFETY: `new`'s contract makes `entry` a filled stub of the
        // hypervisor's page (push rcx/r11; mov; syscall; pop; ret), which
        // uses 24 bytes of our stack and returns; the caller guarantees the
        // arguments are valid for `nr`. The stub restores rcx and r11, but
        // they are declared clobbered anyway, as the hypervisor may clobber
        // the argument registers.
        unsafe {
            asm!(
                "call {entry}",
                entry = in(reg) entry,
                inlateout("rax") nr => ret,
                inlateout("rdi") args[0] => _,
                inlateout("rsi") args[1] => _,
                inlateout("rdx") args[2] => _,
                inlateout("r10") args[3] => _,
                inlateout("r8") args[4] => _,
                lateout("rcx") _,
                lateout("r11") _,
            );
        }
        ret
    }
}

/// Turns a hypercall's `rax` into a result: values from `-4095` to `-1` are
/// `-errno` (an errno this crate does not know becomes `EINVAL`), anything
/// else is success.
pub const fn decode(rax: u64) -> Result<u64, Errno> {
    let signed = rax as i64;
    if signed < 0 && signed >= -4095 {
        match Errno::from_ret(signed) {
            Some(e) => Err(e),
            None => Err(Errno::EINVAL),
        }
    } else {
        Ok(rax)
    }
}

fn ptr<T>(value: &T) -> u64 {
    value as *const T as u64
}

fn ptr_mut<T: ?Sized>(value: &mut T) -> u64 {
    value as *mut T as *mut u8 as u64
}

/// The hypercalls a small PV kernel uses, over a [`Hypercall`] transport.
///
/// Every method returns what the hypervisor returned in `rax`, decoded by
/// [`decode`].
#[derive(Clone, Copy, Debug)]
pub struct Hypercalls<H> {
    transport: H,
}

impl<H: Hypercall> Hypercalls<H> {
    /// Hypercalls through `transport`.
    pub const fn new(transport: H) -> Hypercalls<H> {
        Hypercalls { transport }
    }

    /// The transport.
    pub const fn transport(&self) -> &H {
        &self.transport
    }

    /// Any hypercall, decoded.
    ///
    /// # Safety
    ///
    /// As [`Hypercall::hypercall`].
    pub unsafe fn call(&self, nr: u64, args: [u64; 5]) -> Result<u64, Errno> {
        // SAFETY: forwarded to the caller.
        decode(unsafe { self.transport.hypercall(nr, args) })
    }

    /// A hypercall whose arguments are plain values or pointers to the
    /// given buffers, which the hypervisor reads or writes only within
    /// their bounds.
    fn call_plain(&self, nr: u64, args: [u64; 5]) -> Result<u64, Errno> {
        // SAFETY: callers pass only plain values and pointers to live Rust
        // objects of the size the operation reads or writes (each call site
        // documents which), and none of these operations changes mappings,
        // stacks or handlers.
        unsafe { self.call(nr, args) }
    }

    // ---- console_io -------------------------------------------------------

    /// `console_io(CONSOLEIO_write)`: writes `bytes` to the hypervisor's
    /// console. Returns 0. Xen refuses a domU (`EPERM`) unless it was built
    /// with guest console output enabled.
    pub fn console_write(&self, bytes: &[u8]) -> Result<u64, Errno> {
        // Reads `bytes.len()` bytes from `bytes`.
        self.call_plain(nr::CONSOLE_IO, [u64::from(CONSOLEIO_WRITE), bytes.len() as u64, bytes.as_ptr() as u64, 0, 0])
    }

    /// `console_io(CONSOLEIO_read)`: reads pending console input into `buf`
    /// and returns how many bytes were read (0 when there is none).
    pub fn console_read(&self, buf: &mut [u8]) -> Result<u64, Errno> {
        // Writes at most `buf.len()` bytes into `buf`.
        let len = buf.len() as u64;
        self.call_plain(nr::CONSOLE_IO, [u64::from(CONSOLEIO_READ), len, ptr_mut(buf), 0, 0])
    }

    // ---- xen_version ------------------------------------------------------

    /// `xen_version(XENVER_version, NULL)`: `major << 16 | minor`.
    pub fn xen_version(&self) -> Result<u64, Errno> {
        self.call_plain(nr::XEN_VERSION, [u64::from(XENVER_VERSION), 0, 0, 0, 0])
    }

    /// `xen_version(XENVER_extraversion)`: the version suffix (`".7"`),
    /// NUL-terminated, into `out`. Returns 0.
    pub fn xen_extraversion(&self, out: &mut [u8; XEN_EXTRAVERSION_LEN]) -> Result<u64, Errno> {
        // Writes `xen_extraversion_t` (16 bytes).
        self.call_plain(nr::XEN_VERSION, [u64::from(XENVER_EXTRAVERSION), ptr_mut(out), 0, 0, 0])
    }

    /// `xen_version(XENVER_compile_info)`: `struct xen_compile_info`
    /// (`compiler[64]`, `compile_by[16]`, `compile_domain[32]`,
    /// `compile_date[32]`, each NUL-terminated) into `out`. Returns 0.
    pub fn xen_compile_info(&self, out: &mut [u8; 144]) -> Result<u64, Errno> {
        // Writes `xen_compile_info_t` (144 bytes).
        self.call_plain(nr::XEN_VERSION, [u64::from(XENVER_COMPILE_INFO), ptr_mut(out), 0, 0, 0])
    }

    /// `xen_version(XENVER_capabilities)`: the space-separated guest types
    /// the hypervisor runs (`"xen-3.0-x86_64 ..."`), NUL-terminated, into
    /// `out`. Returns 0.
    pub fn xen_capabilities(&self, out: &mut [u8; XEN_CAPABILITIES_INFO_LEN]) -> Result<u64, Errno> {
        // Writes `xen_capabilities_info_t` (1024 bytes).
        self.call_plain(nr::XEN_VERSION, [u64::from(XENVER_CAPABILITIES), ptr_mut(out), 0, 0, 0])
    }

    /// `xen_version(XENVER_changeset)`: the source revision, NUL-terminated,
    /// into `out`. Returns 0.
    pub fn xen_changeset(&self, out: &mut [u8; XEN_CHANGESET_INFO_LEN]) -> Result<u64, Errno> {
        // Writes `xen_changeset_info_t` (64 bytes).
        self.call_plain(nr::XEN_VERSION, [u64::from(XENVER_CHANGESET), ptr_mut(out), 0, 0, 0])
    }

    /// `xen_version(XENVER_platform_parameters)`: where the hypervisor's
    /// virtual range starts (`0xFFFF800000000000` for 64-bit PV).
    pub fn xen_platform_parameters(&self) -> Result<XenPlatformParameters, Errno> {
        let mut params = XenPlatformParameters::default();
        // Writes `xen_platform_parameters_t` (8 bytes).
        self.call_plain(nr::XEN_VERSION, [u64::from(XENVER_PLATFORM_PARAMETERS), ptr_mut(&mut params), 0, 0, 0])?;
        Ok(params)
    }

    /// `xen_version(XENVER_get_features)`: feature submap `submap_idx`
    /// (bit `n` is `XENFEAT_*` number `32 * submap_idx + n`). Xen answers
    /// `EINVAL` for an index at or past `XENFEAT_NR_SUBMAPS`.
    pub fn xen_get_features(&self, submap_idx: u32) -> Result<u32, Errno> {
        let mut info = XenFeatureInfo { submap_idx, submap: 0 };
        // Reads and writes `xen_feature_info_t` (8 bytes).
        self.call_plain(nr::XEN_VERSION, [u64::from(XENVER_GET_FEATURES), ptr_mut(&mut info), 0, 0, 0])?;
        Ok(info.submap)
    }

    /// `xen_version(XENVER_pagesize, NULL)`: the page size (4096).
    pub fn xen_pagesize(&self) -> Result<u64, Errno> {
        self.call_plain(nr::XEN_VERSION, [u64::from(XENVER_PAGESIZE), 0, 0, 0, 0])
    }

    /// `xen_version(XENVER_guest_handle)`: the domain's handle (the UUID the
    /// toolstack gave it) into `out`. Returns 0.
    pub fn xen_guest_handle(&self, out: &mut [u8; 16]) -> Result<u64, Errno> {
        // Writes `xen_domain_handle_t` (16 bytes).
        self.call_plain(nr::XEN_VERSION, [u64::from(XENVER_GUEST_HANDLE), ptr_mut(out), 0, 0, 0])
    }

    /// `xen_version(XENVER_commandline)`: the hypervisor's command line,
    /// NUL-terminated, into `out` (Xen allows it to privileged domains
    /// only). Returns 0.
    pub fn xen_commandline(&self, out: &mut [u8; 1024]) -> Result<u64, Errno> {
        // Writes `xen_commandline_t` (1024 bytes).
        self.call_plain(nr::XEN_VERSION, [u64::from(XENVER_COMMANDLINE), ptr_mut(out), 0, 0, 0])
    }

    /// `xen_version(XENVER_build_id)`: the hypervisor's build id into
    /// `buf[4..]` (`struct xen_build_id`: a `u32` length, set here to
    /// `buf.len() - 4`, then the bytes). Returns the id's length; `ENOBUFS`
    /// if it does not fit. `buf` shorter than 4 bytes is `EINVAL` (nothing
    /// is called).
    pub fn xen_build_id(&self, buf: &mut [u8]) -> Result<u64, Errno> {
        let Some(room) = buf.len().checked_sub(4) else {
            return Err(Errno::EINVAL);
        };
        let room = u32::try_from(room).map_err(|_| Errno::EINVAL)?;
        buf[..4].copy_from_slice(&room.to_le_bytes());
        // Reads the length word and writes at most `room` bytes after it.
        self.call_plain(nr::XEN_VERSION, [u64::from(XENVER_BUILD_ID), ptr_mut(buf), 0, 0, 0])
    }

    // ---- sched_op ---------------------------------------------------------

    /// `sched_op(SCHEDOP_yield)`: lets another vCPU run. Returns 0.
    pub fn sched_yield(&self) -> Result<u64, Errno> {
        self.call_plain(nr::SCHED_OP, [u64::from(SCHEDOP_YIELD), 0, 0, 0, 0])
    }

    /// `sched_op(SCHEDOP_block)`: clears this vCPU's `evtchn_upcall_mask`,
    /// then sleeps until an event is pending. The check comes after the
    /// unmask, so an event that arrived while upcalls were masked makes it
    /// return at once: mask, check for work, block is free of lost
    /// wakeups. Pending upcalls are delivered as it returns, and the mask
    /// stays clear. Returns 0.
    pub fn sched_block(&self) -> Result<u64, Errno> {
        self.call_plain(nr::SCHED_OP, [u64::from(SCHEDOP_BLOCK), 0, 0, 0, 0])
    }

    /// `sched_op(SCHEDOP_shutdown)`: stops the domain for `reason`. On
    /// success the vCPU does not run again, so this returns only on error.
    pub fn sched_shutdown(&self, reason: ShutdownReason) -> Result<u64, Errno> {
        let arg = SchedShutdown { reason: reason.into() };
        // Reads `sched_shutdown_t` (4 bytes).
        self.call_plain(nr::SCHED_OP, [u64::from(SCHEDOP_SHUTDOWN), ptr(&arg), 0, 0, 0])
    }

    /// `sched_op(SCHEDOP_shutdown_code)`: records `reason` as the domain's
    /// shutdown code without stopping it. Returns 0.
    pub fn sched_shutdown_code(&self, reason: ShutdownReason) -> Result<u64, Errno> {
        let arg = SchedShutdown { reason: reason.into() };
        // Reads `sched_shutdown_t` (4 bytes).
        self.call_plain(nr::SCHED_OP, [u64::from(SCHEDOP_SHUTDOWN_CODE), ptr(&arg), 0, 0, 0])
    }

    /// `sched_op(SCHEDOP_remote_shutdown)`: asks the hypervisor to shut
    /// domain `domid` down for `reason`, as if it had called
    /// `SCHEDOP_shutdown` itself (privileged: Xen refuses other callers
    /// with `EPERM`; an unknown domain is `ESRCH`). Returns 0; the domain
    /// stops asynchronously, and the control domain hears of it through
    /// `VIRQ_DOM_EXC`.
    pub fn sched_remote_shutdown(&self, domid: u16, reason: ShutdownReason) -> Result<u64, Errno> {
        let arg = SchedRemoteShutdown { domain_id: domid, _pad0: 0, reason: reason.into() };
        // Reads `sched_remote_shutdown_t` (8 bytes).
        self.call_plain(nr::SCHED_OP, [u64::from(SCHEDOP_REMOTE_SHUTDOWN), ptr(&arg), 0, 0, 0])
    }

    /// `physdev_op(PHYSDEVOP_set_iopl)`: sets this vCPU's virtual IOPL
    /// (0 to 3, else `EINVAL`). At 1 or more the kernel's `in` and `out`
    /// are emulated: a port its domain was given is really accessed, any
    /// other reads as all ones (see [`crate::physdev`]).
    pub fn physdev_set_iopl(&self, iopl: u32) -> Result<u64, Errno> {
        let arg = crate::physdev::PhysdevSetIopl { iopl };
        // Reads `physdev_set_iopl_t` (4 bytes).
        self.call_plain(nr::PHYSDEV_OP, [u64::from(crate::physdev::PHYSDEVOP_SET_IOPL), ptr(&arg), 0, 0, 0])
    }

    /// `sched_op(SCHEDOP_poll)`: sleeps until one of `ports` is pending, or
    /// until system time `timeout_abs_ns` (0: no timeout), and returns 0.
    /// Returns at once if a port is already pending, or if an upcall is
    /// pending and not masked, so callers poll with upcalls masked. Xen
    /// refuses more than 128 ports and a port at or past the event-channel
    /// limit (`EINVAL`); more than `u32::MAX` ports is `EINVAL` here without
    /// a call.
    pub fn sched_poll(&self, ports: &[u32], timeout_abs_ns: u64) -> Result<u64, Errno> {
        let nr_ports = u32::try_from(ports.len()).map_err(|_| Errno::EINVAL)?;
        let arg = SchedPoll { ports: ports.as_ptr() as u64, nr_ports, _pad0: 0, timeout: timeout_abs_ns };
        // Reads `sched_poll_t` (24 bytes) and `nr_ports` u32s from `ports`.
        self.call_plain(nr::SCHED_OP, [u64::from(SCHEDOP_POLL), ptr(&arg), 0, 0, 0])
    }

    // ---- timers ---------------------------------------------------------------

    /// `set_timer_op(timeout_abs_ns)`: arms this vCPU's one-shot timer for
    /// system time `timeout_abs_ns` (ns since boot, the pvclock's scale); at
    /// expiry the hypervisor raises `VIRQ_TIMER`. A time in the past fires
    /// at once; 0 cancels the timer. Returns 0. The same timer as
    /// [`Hypercalls::vcpu_set_singleshot_timer`].
    pub fn set_timer_op(&self, timeout_abs_ns: u64) -> Result<u64, Errno> {
        self.call_plain(nr::SET_TIMER_OP, [timeout_abs_ns, 0, 0, 0, 0])
    }

    // ---- vcpu_op ----------------------------------------------------------

    /// `vcpu_op(VCPUOP_set_singleshot_timer, vcpu, &{timeout_abs_ns, flags})`:
    /// arms the one-shot timer of `vcpu` (which must be the calling vCPU,
    /// else `EINVAL`); expiry raises `VIRQ_TIMER`, at once for a time
    /// already past. Xen 4.17.7 ignores [`crate::sched::VCPU_SSHOTTMR_FUTURE`]
    /// in `flags` (older Xen refused a past timeout with it, `ETIME`). A
    /// vCPU the domain does not have is `ENOENT`.
    pub fn vcpu_set_singleshot_timer(&self, vcpu: u32, timeout_abs_ns: u64, flags: u32) -> Result<u64, Errno> {
        let arg = VcpuSetSingleshotTimer { timeout_abs_ns, flags, _pad0: 0 };
        // Reads `vcpu_set_singleshot_timer_t` (16 bytes).
        self.call_plain(nr::VCPU_OP, [u64::from(VCPUOP_SET_SINGLESHOT_TIMER), u64::from(vcpu), ptr(&arg), 0, 0])
    }

    /// `vcpu_op(VCPUOP_stop_singleshot_timer, vcpu, NULL)`: cancels the
    /// one-shot timer (also the one [`Hypercalls::set_timer_op`] arms).
    pub fn vcpu_stop_singleshot_timer(&self, vcpu: u32) -> Result<u64, Errno> {
        self.call_plain(nr::VCPU_OP, [u64::from(VCPUOP_STOP_SINGLESHOT_TIMER), u64::from(vcpu), 0, 0, 0])
    }

    /// `vcpu_op(VCPUOP_stop_periodic_timer, vcpu, NULL)`: stops the periodic
    /// `VIRQ_TIMER` ticker, which Xen starts at 100 Hz for every PV vCPU.
    pub fn vcpu_stop_periodic_timer(&self, vcpu: u32) -> Result<u64, Errno> {
        self.call_plain(nr::VCPU_OP, [u64::from(VCPUOP_STOP_PERIODIC_TIMER), u64::from(vcpu), 0, 0, 0])
    }

    /// `vcpu_op(VCPUOP_register_vcpu_info, vcpu, info)`: moves `vcpu`'s
    /// `vcpu_info` (64 bytes: event flags, `arch.cr2`, time) out of the
    /// shared-info page to byte `info.offset` of frame `info.mfn` (for a PV
    /// guest, a machine frame). The hypervisor copies the current contents
    /// there, marks every selector bit and `evtchn_upcall_pending`, and from
    /// then on updates only the new copy. An offset that would cross the
    /// page or is not 8-aligned is `ENXIO`; once per vCPU: a second call is
    /// `EINVAL`, as is a frame the domain cannot map writable.
    ///
    /// # Safety
    ///
    /// The 64 bytes at that place become the hypervisor's for the domain's
    /// life: the guest may touch them only as the `vcpu_info` (with
    /// atomic or volatile accesses), and must never free the frame, give it
    /// back or use it for anything else.
    pub unsafe fn vcpu_register_vcpu_info(&self, vcpu: u32, info: &VcpuRegisterVcpuInfo) -> Result<u64, Errno> {
        // SAFETY: the hypervisor reads `vcpu_register_vcpu_info_t` (16
        // bytes); the frame's future use is the caller's promise.
        unsafe { self.call(nr::VCPU_OP, [u64::from(VCPUOP_REGISTER_VCPU_INFO), u64::from(vcpu), ptr(info), 0, 0]) }
    }

    // ---- event_channel_op ---------------------------------------------------

    /// `event_channel_op(cmd, arg)` for a command whose struct the
    /// hypervisor reads and may write back in place.
    fn evtchn_op<T>(&self, cmd: u32, arg: &mut T) -> Result<u64, Errno> {
        // Reads and writes the command's struct, `size_of::<T>()` bytes.
        self.call_plain(nr::EVENT_CHANNEL_OP, [u64::from(cmd), ptr_mut(arg), 0, 0, 0])
    }

    /// `EVTCHNOP_alloc_unbound`: allocates a port in domain `dom`
    /// ([`DOMID_SELF`] unless privileged) that domain `remote_dom` may
    /// bind with [`Hypercalls::evtchn_bind_interdomain`] ([`DOMID_SELF`]
    /// means the caller: a loopback channel). Returns the port.
    pub fn evtchn_alloc_unbound(&self, dom: u16, remote_dom: u16) -> Result<u32, Errno> {
        let mut arg = EvtchnAllocUnbound { dom, remote_dom, port: 0 };
        self.evtchn_op(EVTCHNOP_ALLOC_UNBOUND, &mut arg)?;
        Ok(arg.port)
    }

    /// `EVTCHNOP_bind_interdomain`: connects a new local port to port
    /// `remote_port` of `remote_dom` ([`DOMID_SELF`]: this domain), which
    /// must be unbound and allocated for this domain (else `EINVAL`; a
    /// domain that does not exist is `ESRCH`). Returns the local port, which
    /// Xen leaves pending (a notification sent to the unbound port may have
    /// been lost).
    pub fn evtchn_bind_interdomain(&self, remote_dom: u16, remote_port: u32) -> Result<u32, Errno> {
        let mut arg = EvtchnBindInterdomain { remote_dom, _pad0: 0, remote_port, local_port: 0 };
        self.evtchn_op(EVTCHNOP_BIND_INTERDOMAIN, &mut arg)?;
        Ok(arg.local_port)
    }

    /// `EVTCHNOP_bind_virq`: binds VIRQ `virq` of vCPU `vcpu` to a new port
    /// and returns it. A VIRQ already bound on that vCPU is `EEXIST`, a
    /// VIRQ past `NR_VIRQS` or a global VIRQ on a vCPU other than 0 is
    /// `EINVAL`, a vCPU the domain does not have `ENOENT`.
    pub fn evtchn_bind_virq(&self, virq: u32, vcpu: u32) -> Result<u32, Errno> {
        let mut arg = EvtchnBindVirq { virq, vcpu, port: 0 };
        self.evtchn_op(EVTCHNOP_BIND_VIRQ, &mut arg)?;
        Ok(arg.port)
    }

    /// `EVTCHNOP_bind_ipi`: a new port that signals vCPU `vcpu` of this
    /// domain when sent on. Returns the port (`ENOENT` for a vCPU the
    /// domain does not have).
    pub fn evtchn_bind_ipi(&self, vcpu: u32) -> Result<u32, Errno> {
        let mut arg = EvtchnBindIpi { vcpu, port: 0 };
        self.evtchn_op(EVTCHNOP_BIND_IPI, &mut arg)?;
        Ok(arg.port)
    }

    /// `EVTCHNOP_close`: closes `port`; an interdomain peer's end becomes
    /// unbound again. A free or reserved port, or one past the domain's
    /// valid range, is `EINVAL`.
    pub fn evtchn_close(&self, port: u32) -> Result<u64, Errno> {
        self.evtchn_op(EVTCHNOP_CLOSE, &mut EvtchnClose { port })
    }

    /// `EVTCHNOP_send`: signals the other end of interdomain `port`, or
    /// this domain for an IPI port; a send on an unbound port is dropped
    /// (returns 0). A free or VIRQ port, or one past the valid range, is
    /// `EINVAL`.
    pub fn evtchn_send(&self, port: u32) -> Result<u64, Errno> {
        self.evtchn_op(EVTCHNOP_SEND, &mut EvtchnSend { port })
    }

    /// `EVTCHNOP_status`: what `port` of domain `dom` ([`DOMID_SELF`]) is
    /// bound to. A free port reports [`crate::event_channel::EVTCHNSTAT_CLOSED`]; a port
    /// past the valid range is `EINVAL`, a domain that does not exist
    /// `ESRCH`.
    pub fn evtchn_status(&self, dom: u16, port: u32) -> Result<EvtchnStatus, Errno> {
        let mut arg = EvtchnStatus { dom, port, ..EvtchnStatus::default() };
        self.evtchn_op(EVTCHNOP_STATUS, &mut arg)?;
        Ok(arg)
    }

    /// `EVTCHNOP_unmask`: clears `port`'s mask bit and, if it is pending,
    /// raises the upcall it missed. Returns 0 for any port in the valid
    /// range (free ones too), `EINVAL` past it.
    pub fn evtchn_unmask(&self, port: u32) -> Result<u64, Errno> {
        self.evtchn_op(EVTCHNOP_UNMASK, &mut EvtchnUnmask { port })
    }

    /// `EVTCHNOP_bind_vcpu`: delivers `port`'s events to vCPU `vcpu`.
    /// Allowed for unbound, interdomain and global-VIRQ ports; a per-vCPU
    /// VIRQ, an IPI or a free port is `EINVAL`, a vCPU the domain does not
    /// have `ENOENT`.
    pub fn evtchn_bind_vcpu(&self, port: u32, vcpu: u32) -> Result<u64, Errno> {
        self.evtchn_op(EVTCHNOP_BIND_VCPU, &mut EvtchnBindVcpu { port, vcpu })
    }

    /// `EVTCHNOP_reset`: closes every port of domain `dom` ([`DOMID_SELF`],
    /// or a domain the caller controls).
    pub fn evtchn_reset(&self, dom: u16) -> Result<u64, Errno> {
        self.evtchn_op(EVTCHNOP_RESET, &mut EvtchnReset { dom })
    }

    // ---- grant_table_op ------------------------------------------------------

    /// `grant_table_op(cmd, uop, count)` as it is, for operations and
    /// arguments the typed methods below do not cover (and for probing
    /// how a hypervisor answers bad ones).
    ///
    /// # Safety
    ///
    /// `uop` points to `count` structs of the kind `cmd` reads and writes,
    /// and the operations must not unmap or overwrite memory that live
    /// Rust references point to (see [`Hypercalls::gnttab_map_grant_ref`]
    /// and [`Hypercalls::gnttab_copy`]).
    pub unsafe fn grant_table_op(&self, cmd: u32, uop: u64, count: u32) -> Result<u64, Errno> {
        // SAFETY: forwarded to the caller.
        unsafe { self.call(nr::GRANT_TABLE_OP, [u64::from(cmd), uop, u64::from(count), 0, 0]) }
    }

    /// `GNTTABOP_query_size` for domain `dom` ([`DOMID_SELF`], or one the
    /// caller controls): the struct as the hypervisor wrote it back, with
    /// the table's current and maximum frames and the `GNTST_*` status.
    pub fn gnttab_query_size(&self, dom: u16) -> Result<GnttabQuerySize, Errno> {
        let mut op = GnttabQuerySize { dom, ..GnttabQuerySize::default() };
        // Reads and writes one `gnttab_query_size` (16 bytes).
        self.call_plain(nr::GRANT_TABLE_OP, [u64::from(GNTTABOP_QUERY_SIZE), ptr_mut(&mut op), 1, 0, 0])?;
        Ok(op)
    }

    /// `GNTTABOP_setup_table` for domain `dom` ([`DOMID_SELF`]): grows its
    /// grant table to at least `frames.len()` frames and writes their
    /// machine frames into `frames`, which the guest then maps to write
    /// grant entries. Returns the op's `GNTST_*` status (more frames than
    /// the table's maximum is `GNTST_general_error`).
    pub fn gnttab_setup_table(&self, dom: u16, frames: &mut [u64]) -> Result<i16, Errno> {
        let Ok(nr_frames) = u32::try_from(frames.len()) else { return Err(Errno::EINVAL) };
        let mut op = GnttabSetupTable { dom, nr_frames, frame_list: ptr_mut(frames), ..GnttabSetupTable::default() };
        // Reads `gnttab_setup_table` (24 bytes), writes its status and at
        // most `frames.len()` u64s into `frames`.
        self.call_plain(nr::GRANT_TABLE_OP, [u64::from(GNTTABOP_SETUP_TABLE), ptr_mut(&mut op), 1, 0, 0])?;
        Ok(op.status)
    }

    /// `GNTTABOP_set_version`: asks for grant-table version `version`.
    /// Returns the call's result and the version in effect afterwards,
    /// which the hypervisor writes back whatever the result (a version
    /// other than 1 or 2 is `EINVAL`; 2 where it is not offered `ENOSYS`).
    pub fn gnttab_set_version(&self, version: u32) -> (Result<u64, Errno>, u32) {
        let mut op = GnttabSetVersion { version };
        // Reads and writes one `gnttab_set_version` (4 bytes).
        let r = self.call_plain(nr::GRANT_TABLE_OP, [u64::from(GNTTABOP_SET_VERSION), ptr_mut(&mut op), 1, 0, 0]);
        (r, op.version)
    }

    /// `GNTTABOP_map_grant_ref` for each op in `ops`, in order: maps the
    /// frame another domain (or this one) granted at `host_addr` in the
    /// current page tables. Each op gets its own `status` (`GNTST_*`) and,
    /// on success, the `handle` to unmap it with and the frame's address in
    /// `dev_bus_addr`. `Ok(0)` once every op was processed, whatever their
    /// statuses; `EFAULT` if the hypervisor could not read or write one
    /// (the ones before it were done).
    ///
    /// # Safety
    ///
    /// Each `host_addr`'s old mapping is replaced: no live Rust reference
    /// may point into those pages.
    pub unsafe fn gnttab_map_grant_ref(&self, ops: &mut [GnttabMapGrantRef]) -> Result<u64, Errno> {
        // SAFETY: the hypervisor reads and writes `ops`; the mappings are
        // the caller's promise.
        unsafe { self.grant_batch(GNTTABOP_MAP_GRANT_REF, ptr_mut(ops), ops.len()) }
    }

    /// `GNTTABOP_unmap_grant_ref` for each op in `ops`: removes the mapping
    /// `handle` made at `host_addr`. Each op gets its own `status`;
    /// otherwise as [`Hypercalls::gnttab_map_grant_ref`].
    ///
    /// # Safety
    ///
    /// No live Rust reference points into the pages unmapped.
    pub unsafe fn gnttab_unmap_grant_ref(&self, ops: &mut [GnttabUnmapGrantRef]) -> Result<u64, Errno> {
        // SAFETY: as for the map.
        unsafe { self.grant_batch(GNTTABOP_UNMAP_GRANT_REF, ptr_mut(ops), ops.len()) }
    }

    /// `GNTTABOP_copy` for each op in `ops`: copies `len` bytes between
    /// granted frames (`GNTCOPY_*_gref`) or this domain's own frames
    /// (`DOMID_SELF` and a machine frame). Each op gets its own `status`;
    /// otherwise as [`Hypercalls::gnttab_map_grant_ref`].
    ///
    /// # Safety
    ///
    /// The destination bytes hold nothing a live Rust reference relies on.
    pub unsafe fn gnttab_copy(&self, ops: &mut [GnttabCopy]) -> Result<u64, Errno> {
        // SAFETY: as for the map; what is overwritten is the caller's
        // promise.
        unsafe { self.grant_batch(GNTTABOP_COPY, ptr_mut(ops), ops.len()) }
    }

    /// One batch of `grant_table_op`: more than `i32::MAX` ops is `EINVAL`
    /// without a call (Xen reads `count` as a signed int).
    ///
    /// # Safety
    ///
    /// As [`Hypercalls::grant_table_op`].
    unsafe fn grant_batch(&self, cmd: u32, uop: u64, count: usize) -> Result<u64, Errno> {
        let count = batch_count(count)?;
        // SAFETY: forwarded to the caller.
        unsafe { self.grant_table_op(cmd, uop, count) }
    }

    // ---- traps, callbacks, stacks, segments, mappings ----------------------

    /// `set_trap_table(table)`: installs the virtual IDT entries of `table`,
    /// whose last entry must have `address == 0` (the terminator the
    /// hypervisor stops at); otherwise `EINVAL` and nothing is called.
    ///
    /// # Safety
    ///
    /// Every non-terminator entry's `address` is a handler that follows the
    /// bounce-frame convention (it pops `rcx` and `r11`, handles the trap
    /// and leaves with the `iret` hypercall) for as long as the entry stays
    /// installed.
    pub unsafe fn set_trap_table(&self, table: &[TrapInfo]) -> Result<u64, Errno> {
        if table.last().is_none_or(|t| t.address != 0) {
            return Err(Errno::EINVAL);
        }
        // SAFETY: the hypervisor reads entries up to and including the
        // terminator, which is inside `table`; the handlers are the
        // caller's promise.
        unsafe { self.call(nr::SET_TRAP_TABLE, [table.as_ptr() as u64, 0, 0, 0, 0]) }
    }

    /// `set_callbacks(event, failsafe, syscall)`: sets the event-upcall,
    /// failsafe and 64-bit `syscall` entry points at once (0 leaves an entry
    /// unset).
    ///
    /// # Safety
    ///
    /// Each non-zero address is code that handles that callback's frame
    /// for as long as it stays registered.
    pub unsafe fn set_callbacks(&self, event: u64, failsafe: u64, syscall: u64) -> Result<u64, Errno> {
        // SAFETY: plain values; the entry points are the caller's promise.
        unsafe { self.call(nr::SET_CALLBACKS, [event, failsafe, syscall, 0, 0]) }
    }

    /// `callback_op(CALLBACKOP_register, cb)`: registers one callback.
    ///
    /// # Safety
    ///
    /// `cb.address` handles that callback's frame for as long as it stays
    /// registered.
    pub unsafe fn callback_register(&self, cb: &CallbackRegister) -> Result<u64, Errno> {
        // SAFETY: the hypervisor reads `callback_register` (16 bytes); the
        // entry point is the caller's promise.
        unsafe { self.call(nr::CALLBACK_OP, [u64::from(CALLBACKOP_REGISTER), ptr(cb), 0, 0, 0]) }
    }

    /// `callback_op(CALLBACKOP_unregister, cb)`: removes one callback (Xen
    /// refuses to remove the event and failsafe callbacks).
    pub fn callback_unregister(&self, cb: &CallbackUnregister) -> Result<u64, Errno> {
        // Reads `callback_unregister` (4 bytes).
        self.call_plain(nr::CALLBACK_OP, [u64::from(CALLBACKOP_UNREGISTER), ptr(cb), 0, 0, 0])
    }

    /// `stack_switch(ss, sp)`: the stack the hypervisor switches to when it
    /// bounces a trap or callback that interrupted guest user mode.
    ///
    /// # Safety
    ///
    /// `sp` is the top of a writable stack that nothing else uses while the
    /// guest runs user code, and `ss` a valid stack selector (`0xe02b`).
    pub unsafe fn stack_switch(&self, ss: u16, sp: u64) -> Result<u64, Errno> {
        // SAFETY: plain values; the stack is the caller's promise.
        unsafe { self.call(nr::STACK_SWITCH, [u64::from(ss), sp, 0, 0, 0]) }
    }

    /// `set_segment_base(which, base)`: sets the FS or a GS base (or, with
    /// [`SegmentBase::GsUserSel`], loads user `%gs` with the selector in
    /// `base[15:0]`). `base` must be canonical.
    ///
    /// # Safety
    ///
    /// Nothing running in this mode relies on the old base (thread-local
    /// storage, per-CPU data).
    pub unsafe fn set_segment_base(&self, which: SegmentBase, base: u64) -> Result<u64, Errno> {
        // SAFETY: plain values; the base's users are the caller's promise.
        unsafe { self.call(nr::SET_SEGMENT_BASE, [u64::from(u32::from(which)), base, 0, 0, 0]) }
    }

    /// `update_va_mapping(va, pte, flags)`: rewrites the L1 entry that maps
    /// `va` in the current page tables (`EINVAL` if no L1 table covers it),
    /// after the hypervisor has validated `pte`; `flags` is `UVMF_*`.
    ///
    /// # Safety
    ///
    /// No live Rust reference points into the page at `va` that the new
    /// mapping would invalidate or alias unsoundly.
    pub unsafe fn update_va_mapping(&self, va: u64, pte: u64, flags: u64) -> Result<u64, Errno> {
        // SAFETY: plain values; what the page held is the caller's promise.
        unsafe { self.call(nr::UPDATE_VA_MAPPING, [va, pte, flags, 0, 0]) }
    }

    // ---- page tables and memory reservation --------------------------------

    /// `mmu_update(reqs, count, &done, DOMID_SELF)`: applies the requests in
    /// order (`ptr & 3` selects the kind: [`crate::mm::MMU_NORMAL_PT_UPDATE`]
    /// writes the entry at machine address `ptr`,
    /// [`crate::mm::MMU_MACHPHYS_UPDATE`] sets `M2P[ptr >> 12] = val`) and
    /// stops at the first that fails. `Ok(done)` when all were applied;
    /// otherwise the error and how many were applied before it. More than
    /// `i32::MAX` requests is `EINVAL` (nothing is called): the top bit of
    /// `count` is Xen's continuation flag. `EOVERFLOW` means the
    /// hypervisor wrote more than the 4 bytes of `*done`.
    ///
    /// # Safety
    ///
    /// The new entries must not unmap or alias memory that live Rust
    /// references point to (the kernel's image, stacks and heap).
    pub unsafe fn mmu_update(&self, reqs: &[MmuUpdate]) -> Result<u32, BatchError> {
        // SAFETY: forwarded to the caller.
        unsafe { self.batch(nr::MMU_UPDATE, reqs.as_ptr() as u64, reqs.len()) }
    }

    /// `mmuext_op(ops, count, &done, DOMID_SELF)`: pins and unpins page
    /// tables, loads base pointers, flushes TLBs; in order, stopping at the
    /// first failure, with the same result as [`Hypercalls::mmu_update`].
    ///
    /// # Safety
    ///
    /// As [`Hypercalls::mmu_update`]: a new base pointer in particular
    /// must map everything the kernel is running on.
    pub unsafe fn mmuext_op(&self, ops: &[MmuextOp]) -> Result<u32, BatchError> {
        // SAFETY: forwarded to the caller.
        unsafe { self.batch(nr::MMUEXT_OP, ops.as_ptr() as u64, ops.len()) }
    }

    /// `mmu_update(reqs, count, &done, foreigndom)`: as
    /// [`Hypercalls::mmu_update`], with the frames the requests name
    /// (entries' targets, [`crate::mm::MMU_MACHPHYS_UPDATE`]'s `ptr`) owned
    /// by domain `foreigndom` rather than the caller: how the control
    /// domain records the M2P of a domain it builds, or maps that domain's
    /// frames into its own page tables. The page tables written are still
    /// the caller's. Only a privileged caller may name another domain
    /// (else `EPERM`); one that does not exist is `ESRCH`.
    ///
    /// # Safety
    ///
    /// As [`Hypercalls::mmu_update`].
    pub unsafe fn mmu_update_foreign(&self, reqs: &[MmuUpdate], foreigndom: u16) -> Result<u32, BatchError> {
        // SAFETY: forwarded to the caller.
        unsafe { self.batch_as(nr::MMU_UPDATE, reqs.as_ptr() as u64, reqs.len(), foreigndom) }
    }

    /// `mmuext_op(ops, count, &done, foreigndom)`: as
    /// [`Hypercalls::mmuext_op`], on frames of domain `foreigndom` (the
    /// control domain pinning the page tables of a domain it builds with
    /// `MMUEXT_PIN_L4_TABLE`). Privileged callers only (else `EPERM`).
    ///
    /// # Safety
    ///
    /// As [`Hypercalls::mmuext_op`]: the ops must not change what this
    /// kernel runs on (a base-pointer op names this domain's tables).
    pub unsafe fn mmuext_op_foreign(&self, ops: &[MmuextOp], foreigndom: u16) -> Result<u32, BatchError> {
        // SAFETY: forwarded to the caller.
        unsafe { self.batch_as(nr::MMUEXT_OP, ops.as_ptr() as u64, ops.len(), foreigndom) }
    }

    /// `update_va_mapping_otherdomain(va, pte, flags, domid)`: as
    /// [`Hypercalls::update_va_mapping`] (the entry for `va` in the
    /// caller's current page tables), with the frame `pte` maps owned by
    /// domain `domid`: a control domain's foreign mapping of a domain it
    /// builds. Xen validates `pte` against `domid`'s frame (a writable
    /// mapping of one of its page tables is refused). Privileged callers
    /// only (else `EPERM`).
    ///
    /// # Safety
    ///
    /// As [`Hypercalls::update_va_mapping`]; and a writable mapping of a
    /// foreign frame is removed before that domain is destroyed (until
    /// then it holds a reference that keeps the domain from dying).
    pub unsafe fn update_va_mapping_otherdomain(
        &self,
        va: u64,
        pte: u64,
        flags: u64,
        domid: u16,
    ) -> Result<u64, Errno> {
        // SAFETY: plain values; the old and new mappings are the caller's
        // promise.
        unsafe { self.call(nr::UPDATE_VA_MAPPING_OTHERDOMAIN, [va, pte, flags, u64::from(domid), 0]) }
    }

    /// One batch hypercall `(list, count, &done, DOMID_SELF)`.
    ///
    /// # Safety
    ///
    /// `list` points to `count` requests of the kind hypercall `nr` reads;
    /// as [`Hypercalls::mmu_update`] for what they do.
    unsafe fn batch(&self, nr: u64, list: u64, count: usize) -> Result<u32, BatchError> {
        // SAFETY: forwarded to the caller.
        unsafe { self.batch_as(nr, list, count, DOMID_SELF) }
    }

    /// One batch hypercall `(list, count, &done, foreigndom)`.
    ///
    /// # Safety
    ///
    /// As [`Hypercalls::batch`].
    unsafe fn batch_as(&self, nr: u64, list: u64, count: usize, foreigndom: u16) -> Result<u32, BatchError> {
        let count = batch_count(count).map_err(|errno| BatchError { errno, done: 0 })?;
        // `*done` is a u32 (C's `unsigned int`): the low half of this
        // slot. The high half is a guard, so a hypervisor that writes more
        // is caught (EOVERFLOW) rather than corrupting the stack.
        let mut slot: u64 = u64::from(DONE_GUARD) << 32;
        let args = [list, u64::from(count), ptr_mut(&mut slot), u64::from(foreigndom), 0];
        // SAFETY: the hypervisor reads `count` requests at `list` (the
        // caller's promise) and writes the u32 at the start of `slot`;
        // what the requests do is the caller's promise.
        let r = unsafe { self.call(nr, args) };
        let done = slot as u32;
        if (slot >> 32) as u32 != DONE_GUARD {
            return Err(BatchError { errno: Errno::EOVERFLOW, done });
        }
        match r {
            Ok(_) => Ok(done),
            Err(errno) => Err(BatchError { errno, done }),
        }
    }

    /// `memory_op(XENMEM_populate_physmap)` for domain `domid` (the caller,
    /// `DOMID_SELF`, or, for the control domain, a domain it is building):
    /// gives the domain a frame for each guest frame number in `extents`,
    /// replaced by the machine frame. Single frames (order 0). Returns how
    /// many were done: fewer when the domain's maximum or the machine's
    /// memory runs out. Another domain without privilege is `EPERM`; one
    /// that does not exist `ESRCH`.
    pub fn populate_physmap(&self, domid: u16, extents: &mut [u64]) -> Result<u64, Errno> {
        let mut r = reservation(ptr_mut(extents), extents.len(), 0, domid);
        // Reads `xen_memory_reservation` (32 bytes), reads and rewrites at
        // most `extents.len()` u64s of `extents`.
        self.call_plain(nr::MEMORY_OP, [u64::from(XENMEM_POPULATE_PHYSMAP), ptr_mut(&mut r), 0, 0, 0])
    }

    /// `memory_op(XENMEM_increase_reservation)` for this domain: asks for
    /// `extents.len()` extents of `2^order` pages; for a PV guest the
    /// hypervisor writes each new extent's first machine frame into
    /// `extents`. Returns how many extents it allocated (fewer than asked
    /// when memory or the domain's limit ran out). The guest then records
    /// each frame in the M2P (`MMU_MACHPHYS_UPDATE`) and in its p2m.
    pub fn increase_reservation(&self, extents: &mut [u64], order: u32) -> Result<u64, Errno> {
        let mut r = reservation(ptr_mut(extents), extents.len(), order, DOMID_SELF);
        // Reads `xen_memory_reservation` (32 bytes) and writes at most
        // `extents.len()` u64s into `extents`.
        self.call_plain(nr::MEMORY_OP, [u64::from(XENMEM_INCREASE_RESERVATION), ptr_mut(&mut r), 0, 0, 0])
    }

    /// `memory_op(XENMEM_decrease_reservation)` for this domain: gives back
    /// the extents of `2^order` pages starting at each machine frame in
    /// `extents` (for a PV guest, frame numbers are machine frames).
    /// Returns how many extents were released, stopping at the first that
    /// could not be. The guest then marks those pfns invalid in its p2m.
    ///
    /// # Safety
    ///
    /// Nothing the kernel still uses lives in those frames: once released
    /// they are no longer the domain's memory.
    pub unsafe fn decrease_reservation(&self, extents: &[u64], order: u32) -> Result<u64, Errno> {
        let r = reservation(extents.as_ptr() as u64, extents.len(), order, DOMID_SELF);
        // SAFETY: the hypervisor reads `xen_memory_reservation` (32 bytes)
        // and `extents.len()` u64s from `extents`; that the frames are
        // unused is the caller's promise.
        unsafe { self.call(nr::MEMORY_OP, [u64::from(XENMEM_DECREASE_RESERVATION), ptr(&r), 0, 0, 0]) }
    }

    /// `memory_op(XENMEM_current_reservation, &DOMID_SELF)`: the pages this
    /// domain holds now.
    pub fn current_reservation(&self) -> Result<u64, Errno> {
        let domid = DOMID_SELF;
        // Reads a `domid_t` (2 bytes).
        self.call_plain(nr::MEMORY_OP, [u64::from(XENMEM_CURRENT_RESERVATION), ptr(&domid), 0, 0, 0])
    }

    /// `memory_op(XENMEM_maximum_reservation, &DOMID_SELF)`: the most pages
    /// this domain may hold.
    pub fn maximum_reservation(&self) -> Result<u64, Errno> {
        let domid = DOMID_SELF;
        // Reads a `domid_t` (2 bytes).
        self.call_plain(nr::MEMORY_OP, [u64::from(XENMEM_MAXIMUM_RESERVATION), ptr(&domid), 0, 0, 0])
    }

    // ---- toolstack: domctl and sysctl (privileged domains) -----------------

    /// `domctl(op)`: one domain-control operation ([`crate::domctl`]; build
    /// `op` with a constructor such as [`XenDomctl::createdomain`]). Xen
    /// reads the whole [`XenDomctl`] (144 bytes), acts on `op.domain`, and
    /// for operations with OUT fields writes it back (including
    /// `op.domain` for `createdomain` and `getdomaininfo`); read results
    /// with the `u_*` accessors. Returns 0 on success. An unprivileged
    /// caller gets `EPERM`, an `op.interface_version` other than
    /// [`crate::domctl::XEN_DOMCTL_INTERFACE_VERSION`] `EACCES`, a domain
    /// that does not exist `ESRCH`, an unknown command `ENOSYS`.
    ///
    /// # Safety
    ///
    /// Every guest handle in `op.u` is 0 or points to memory the operation
    /// may read or write, as [`crate::domctl`] describes (`getvcpucontext`
    /// writes 5168 bytes at `ctxt`). And the operation must not take away
    /// what this kernel runs on: pausing, destroying or resetting its own
    /// domain or vCPUs, lowering its memory limit, or `hypercall_init` into
    /// one of its own frames that holds live data.
    pub unsafe fn domctl(&self, op: &mut XenDomctl) -> Result<u64, Errno> {
        // SAFETY: the hypervisor reads and writes `*op` (144 bytes); the
        // memory behind its handles and the operation's effect are the
        // caller's promise.
        unsafe { self.call(nr::DOMCTL, [ptr_mut(op), 0, 0, 0, 0]) }
    }

    /// `sysctl(op)`: one whole-host operation ([`crate::sysctl`]; build `op`
    /// with a constructor such as [`XenSysctl::physinfo`]). Xen reads the
    /// whole [`XenSysctl`] (136 bytes), acts, and writes it back; read
    /// results with the `u_*` accessors. Returns 0 on success. An
    /// unprivileged caller gets `EPERM`, an `op.interface_version` other
    /// than [`crate::sysctl::XEN_SYSCTL_INTERFACE_VERSION`] `EACCES`, an
    /// unknown command `ENOSYS`.
    ///
    /// # Safety
    ///
    /// Every guest handle in `op.u` is 0 or points to memory the operation
    /// may write, as [`crate::sysctl`] describes (`readconsole` writes up
    /// to `count` bytes at `buffer`; `getdomaininfolist` up to
    /// `max_domains` 112-byte records at `buffer`).
    pub unsafe fn sysctl(&self, op: &mut XenSysctl) -> Result<u64, Errno> {
        // SAFETY: the hypervisor reads and writes `*op` (136 bytes); the
        // memory behind its handles is the caller's promise.
        unsafe { self.call(nr::SYSCTL, [ptr_mut(op), 0, 0, 0, 0]) }
    }
}

/// The `count` of a batch hypercall for `len` requests: `EINVAL` past
/// `i32::MAX`, since Xen reads it as a signed int (`grant_table_op`) or
/// takes its top bit as the continuation flag (`mmu_update`, `mmuext_op`).
fn batch_count(len: usize) -> Result<u32, Errno> {
    u32::try_from(len).ok().filter(|&c| c <= i32::MAX as u32).ok_or(Errno::EINVAL)
}

/// A `xen_memory_reservation` of `nr_extents` extents of `2^extent_order`
/// pages for domain `domid`, their frame numbers at `extent_start`.
fn reservation(extent_start: u64, nr_extents: usize, extent_order: u32, domid: u16) -> XenMemoryReservation {
    XenMemoryReservation {
        extent_start,
        nr_extents: nr_extents as u64,
        extent_order,
        mem_flags: 0,
        domid,
        _pad0: [0; 3],
    }
}

/// What the word after a batch hypercall's `*done` must still hold.
const DONE_GUARD: u32 = 0xd0e5_a11e;

/// A batch hypercall (`mmu_update`, `mmuext_op`) that stopped early: the
/// error of the request that failed and how many were applied before it
/// (the hypervisor's `*done`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchError {
    /// Why the first unapplied request failed.
    pub errno: Errno,
    /// Requests applied before it.
    pub done: u32,
}

impl core::fmt::Display for BatchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} after {} done", self.errno, self.done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypercall_page::write_hypercall_page;
    use crate::sched::ShutdownReason;
    use std::cell::RefCell;

    /// A transport that records calls and answers from a script.
    struct Fake {
        calls: RefCell<Vec<(u64, [u64; 5])>>,
        answer: u64,
        /// What a batch call (`mmu_update`, `mmuext_op`) reports in `*done`.
        done: u32,
        /// How many bytes it writes there (Xen: 4).
        done_width: u32,
    }

    impl Hypercall for Fake {
        unsafe fn hypercall(&self, nr: u64, args: [u64; 5]) -> u64 {
            self.calls.borrow_mut().push((nr, args));
            if nr == nr::MMU_UPDATE || nr == nr::MMUEXT_OP {
                match self.done_width {
                    // SAFETY: the wrappers pass a pointer to an 8-byte
                    // slot whose first 4 bytes are `*done`.
                    4 => unsafe { (args[2] as *mut u32).write(self.done) },
                    // SAFETY: as above, writing all 8 bytes.
                    _ => unsafe { (args[2] as *mut u64).write(u64::from(self.done)) },
                }
            }
            self.answer
        }
    }

    fn fake(answer: u64) -> Hypercalls<Fake> {
        Hypercalls::new(Fake { calls: RefCell::new(Vec::new()), answer, done: 0, done_width: 4 })
    }

    #[test]
    fn decode_splits_errors_from_values() {
        assert_eq!(decode(0), Ok(0));
        assert_eq!(decode(0x0004_0011), Ok(0x0004_0011));
        assert_eq!(decode(Errno::ENOSYS.as_ret() as u64), Err(Errno::ENOSYS));
        assert_eq!(decode(-4095i64 as u64), Err(Errno::EINVAL));
        // A large "negative" value outside the errno range is a value
        // (e.g. an address in the top half).
        assert_eq!(decode(0xFFFF_8000_0000_0000), Ok(0xFFFF_8000_0000_0000));
    }

    #[test]
    fn wrappers_pass_xen_arguments() {
        let h = fake(0);
        h.console_write(b"hello").unwrap();
        h.xen_version().unwrap();
        h.xen_pagesize().unwrap();
        h.sched_yield().unwrap();
        let calls = h.transport().calls.borrow();
        assert_eq!(calls[0].0, nr::CONSOLE_IO);
        assert_eq!(&calls[0].1[..2], &[0, 5]);
        assert_eq!(calls[1], (nr::XEN_VERSION, [0, 0, 0, 0, 0]));
        assert_eq!(calls[2], (nr::XEN_VERSION, [7, 0, 0, 0, 0]));
        assert_eq!(calls[3], (nr::SCHED_OP, [0, 0, 0, 0, 0]));
    }

    #[test]
    fn errors_come_back_as_errno() {
        let h = fake(Errno::EPERM.as_ret() as u64);
        assert_eq!(h.console_write(b"x"), Err(Errno::EPERM));
        assert_eq!(h.sched_shutdown(ShutdownReason::Poweroff), Err(Errno::EPERM));
        assert_eq!(h.xen_get_features(0), Err(Errno::EPERM));
    }

    #[test]
    fn event_channel_ops_pass_their_structs() {
        use crate::event_channel::EVTCHNSTAT_IPI;

        /// Answers every `event_channel_op` by writing `7` into the OUT
        /// port field of the struct it was given, as the hypervisor would.
        struct Evtchn(RefCell<Vec<(u64, Vec<u8>)>>);
        impl Hypercall for Evtchn {
            unsafe fn hypercall(&self, nr: u64, args: [u64; 5]) -> u64 {
                assert_eq!(nr, nr::EVENT_CHANNEL_OP);
                let cmd = args[0] as u32;
                let (size, out) = match cmd {
                    EVTCHNOP_ALLOC_UNBOUND => (8, Some(4)),
                    EVTCHNOP_BIND_INTERDOMAIN => (12, Some(8)),
                    EVTCHNOP_BIND_VIRQ => (12, Some(8)),
                    EVTCHNOP_BIND_IPI => (8, Some(4)),
                    EVTCHNOP_STATUS => (24, Some(8)),
                    EVTCHNOP_BIND_VCPU => (8, None),
                    EVTCHNOP_RESET => (2, None),
                    _ => (4, None),
                };
                // SAFETY: the wrappers pass a pointer to the command's
                // struct, `size` bytes.
                let bytes = unsafe { core::slice::from_raw_parts_mut(args[1] as *mut u8, size) };
                self.0.borrow_mut().push((args[0], bytes.to_vec()));
                if let Some(at) = out {
                    let v = if cmd == EVTCHNOP_STATUS { EVTCHNSTAT_IPI } else { 7 };
                    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
                0
            }
        }
        let h = Hypercalls::new(Evtchn(RefCell::new(Vec::new())));
        assert_eq!(h.evtchn_alloc_unbound(DOMID_SELF, 3), Ok(7));
        assert_eq!(h.evtchn_bind_interdomain(3, 9), Ok(7));
        assert_eq!(h.evtchn_bind_virq(0, 1), Ok(7));
        assert_eq!(h.evtchn_bind_ipi(2), Ok(7));
        assert_eq!(h.evtchn_close(5), Ok(0));
        assert_eq!(h.evtchn_send(6), Ok(0));
        assert_eq!(h.evtchn_status(DOMID_SELF, 4).map(|s| (s.status, s.port)), Ok((EVTCHNSTAT_IPI, 4)));
        assert_eq!(h.evtchn_unmask(8), Ok(0));
        assert_eq!(h.evtchn_bind_vcpu(9, 1), Ok(0));
        assert_eq!(h.evtchn_reset(DOMID_SELF), Ok(0));
        let calls = h.transport().0.borrow();
        let cmds: Vec<u64> = calls.iter().map(|c| c.0).collect();
        assert_eq!(cmds, [6, 0, 1, 7, 3, 4, 5, 9, 8, 10]);
        let le = |v: u32| v.to_le_bytes();
        assert_eq!(calls[0].1, [&0x7ff0u16.to_le_bytes()[..], &3u16.to_le_bytes(), &le(0)].concat());
        assert_eq!(calls[1].1, [&3u16.to_le_bytes()[..], &[0, 0], &le(9), &le(0)].concat());
        assert_eq!(calls[2].1, [le(0), le(1), le(0)].concat());
        assert_eq!(calls[4].1, le(5));
        assert_eq!(calls[8].1, [le(9), le(1)].concat());
        assert_eq!(calls[9].1, 0x7ff0u16.to_le_bytes());
    }

    #[test]
    fn timer_and_vcpu_ops_pass_xen_arguments() {
        let h = fake(0);
        h.set_timer_op(1_000_000).unwrap();
        h.vcpu_set_singleshot_timer(0, 5_000, crate::sched::VCPU_SSHOTTMR_FUTURE).unwrap();
        h.vcpu_stop_singleshot_timer(0).unwrap();
        h.vcpu_stop_periodic_timer(1).unwrap();
        let info = VcpuRegisterVcpuInfo { mfn: 0x1234, offset: 64, rsvd: 0 };
        // SAFETY: the fake transport registers nothing.
        unsafe { h.vcpu_register_vcpu_info(0, &info) }.unwrap();
        h.sched_poll(&[3, 4], 99).unwrap();
        let calls = h.transport().calls.borrow();
        assert_eq!(calls[0], (nr::SET_TIMER_OP, [1_000_000, 0, 0, 0, 0]));
        assert_eq!((calls[1].0, calls[1].1[0], calls[1].1[1]), (nr::VCPU_OP, 8, 0));
        assert_eq!(calls[2], (nr::VCPU_OP, [9, 0, 0, 0, 0]));
        assert_eq!(calls[3], (nr::VCPU_OP, [7, 1, 0, 0, 0]));
        assert_eq!((calls[4].0, calls[4].1[0], calls[4].1[2]), (nr::VCPU_OP, 10, &info as *const _ as u64));
        assert_eq!((calls[5].0, calls[5].1[0]), (nr::SCHED_OP, 3));
    }

    #[test]
    fn trap_table_needs_its_terminator() {
        let h = fake(0);
        let entry = TrapInfo { vector: 6, flags: 0, cs: 0xe033, _pad0: 0, address: 0x1000 };
        // SAFETY: the fake transport installs nothing.
        let empty = unsafe { h.set_trap_table(&[]) };
        // SAFETY: as above.
        let unterminated = unsafe { h.set_trap_table(&[entry]) };
        // SAFETY: as above.
        let terminated = unsafe { h.set_trap_table(&[entry, TrapInfo::default()]) };
        assert_eq!((empty, unterminated, terminated), (Err(Errno::EINVAL), Err(Errno::EINVAL), Ok(0)));
        assert_eq!(h.transport().calls.borrow().len(), 1);
    }

    #[test]
    fn batches_report_how_many_were_done() {
        use crate::mm::{MMUEXT_TLB_FLUSH_LOCAL, MMU_MACHPHYS_UPDATE};
        let reqs = [MmuUpdate { ptr: 0x1234_5000 | MMU_MACHPHYS_UPDATE, val: 7 }; 3];
        let h = Hypercalls::new(Fake { calls: RefCell::new(Vec::new()), answer: 0, done: 3, done_width: 4 });
        // SAFETY: the fake transport changes no mapping.
        assert_eq!(unsafe { h.mmu_update(&reqs) }, Ok(3));
        let h = Hypercalls::new(Fake {
            calls: RefCell::new(Vec::new()),
            answer: Errno::EINVAL.as_ret() as u64,
            done: 1,
            done_width: 4,
        });
        // SAFETY: as above.
        assert_eq!(unsafe { h.mmu_update(&reqs) }, Err(BatchError { errno: Errno::EINVAL, done: 1 }));
        let op = MmuextOp { cmd: MMUEXT_TLB_FLUSH_LOCAL, ..MmuextOp::default() };
        // SAFETY: as above.
        assert_eq!(unsafe { h.mmuext_op(&[op]) }.map_err(|e| e.done), Err(1));
        let calls = h.transport().calls.borrow();
        assert_eq!(calls[0].0, nr::MMU_UPDATE);
        assert_eq!((calls[0].1[0], calls[0].1[1], calls[0].1[3]), (reqs.as_ptr() as u64, 3, u64::from(DOMID_SELF)));
        assert_eq!(calls[1].0, nr::MMUEXT_OP);
        assert_eq!(calls[1].1[1], 1);
    }

    #[test]
    fn foreign_variants_name_the_other_domain() {
        use crate::mm::{MMUEXT_PIN_L4_TABLE, MMU_MACHPHYS_UPDATE, UVMF_INVLPG};
        let h = Hypercalls::new(Fake { calls: RefCell::new(Vec::new()), answer: 0, done: 1, done_width: 4 });
        let req = [MmuUpdate { ptr: 0x1234_5000 | MMU_MACHPHYS_UPDATE, val: 7 }];
        let pin = [MmuextOp { cmd: MMUEXT_PIN_L4_TABLE, _pad0: 0, arg1: 0x1234, arg2: 0 }];
        // SAFETY: the fake transport changes no mapping.
        assert_eq!(unsafe { h.mmu_update_foreign(&req, 5) }, Ok(1));
        // SAFETY: as above.
        assert_eq!(unsafe { h.mmuext_op_foreign(&pin, 5) }, Ok(1));
        // SAFETY: as above.
        assert_eq!(unsafe { h.update_va_mapping_otherdomain(0x7000, 0x1234_5067, UVMF_INVLPG, 5) }, Ok(0));
        let calls = h.transport().calls.borrow();
        assert_eq!(
            (calls[0].0, calls[0].1[0], calls[0].1[1], calls[0].1[3]),
            (nr::MMU_UPDATE, req.as_ptr() as u64, 1, 5)
        );
        assert_eq!((calls[1].0, calls[1].1[0], calls[1].1[3]), (nr::MMUEXT_OP, pin.as_ptr() as u64, 5));
        assert_eq!(calls[2], (nr::UPDATE_VA_MAPPING_OTHERDOMAIN, [0x7000, 0x1234_5067, UVMF_INVLPG, 5, 0]));
    }

    #[test]
    fn a_done_wider_than_a_u32_is_caught() {
        let h = Hypercalls::new(Fake { calls: RefCell::new(Vec::new()), answer: 0, done: 2, done_width: 8 });
        let reqs = [MmuUpdate::default(); 2];
        // SAFETY: the fake transport changes no mapping.
        assert_eq!(unsafe { h.mmu_update(&reqs) }, Err(BatchError { errno: Errno::EOVERFLOW, done: 2 }));
    }

    #[test]
    fn reservations_name_this_domain() {
        let h = fake(1);
        let mut got = [0u64; 1];
        assert_eq!(h.increase_reservation(&mut got, 0), Ok(1));
        // SAFETY: the fake transport releases nothing.
        assert_eq!(unsafe { h.decrease_reservation(&[0x1234], 0) }, Ok(1));
        assert_eq!(h.current_reservation(), Ok(1));
        let calls = h.transport().calls.borrow();
        let cmds: Vec<u64> = calls.iter().map(|c| c.1[0]).collect();
        assert_eq!(cmds, [0, 1, 3]);
        assert!(calls.iter().all(|c| c.0 == nr::MEMORY_OP));
    }

    #[test]
    fn build_id_sets_the_length_word() {
        let h = fake(20);
        let mut buf = [0u8; 68];
        assert_eq!(h.xen_build_id(&mut buf), Ok(20));
        assert_eq!(&buf[..4], &64u32.to_le_bytes());
        assert_eq!(h.xen_build_id(&mut [0u8; 3]), Err(Errno::EINVAL));
    }

    #[test]
    fn page_entries_are_32_bytes_apart() {
        // SAFETY: the page is never called through.
        let page = unsafe { HypercallPage::new(0x10_0000) };
        assert_eq!(page.entry(0), Some(0x10_0000));
        assert_eq!(page.entry(17), Some(0x10_0000 + 17 * 32));
        assert_eq!(page.entry(128), None);
        assert_eq!(page.iret_entry(), 0x10_0000 + 23 * 32);
    }

    #[test]
    fn iret_text_matches_the_page_entry() {
        // The macro's text assembles to the page's entry 23; check the
        // mnemonics against the bytes the page writer documents.
        let text = xen_iret_asm!();
        assert_eq!(
            text.split('\n').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>(),
            ["push rcx", "push r11", "push rax", "mov eax, 23", "syscall"]
        );
        let mut page = [0u8; 4096];
        write_hypercall_page(&mut page);
        assert_eq!(&page[23 * 32..23 * 32 + 11], &[0x51, 0x41, 0x53, 0x50, 0xb8, 23, 0, 0, 0, 0x0f, 0x05]);
    }
}
