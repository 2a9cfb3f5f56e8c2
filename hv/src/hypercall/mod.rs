//! Hypercalls: one table from number to handler, and the dispatcher.
//!
//! A guest enters with the number in `rax` and up to five arguments in
//! `rdi, rsi, rdx, r10, r8`. [`dispatch`] looks the number up in [`TABLE`],
//! checks who may call it, and runs the handler on a [`Ctx`]: the saved
//! registers, the calling domain, its `vcpu_info`, its memory (only through
//! fallible copies) and the [`Platform`] (the hardware the handlers need).
//! Handlers decode and validate everything before they change anything,
//! and say what happens next with an [`Action`].

mod console;
pub mod control;
mod descriptors;
mod event;
mod grant;
mod memory;
mod mm;
mod multicall;
mod physdev;
mod sched;
mod traps;
mod vcpu;
mod version;

pub use version::features;

use crate::domain::Domain;
use crate::guest::GuestMemory;
use crate::mm::frame::DomId;
use crate::mm::pagetype::{GuestFrames, PageTypes};
use crate::mm::Mfn;
use crate::regs::Regs;
use crate::trap::GuestCpu;
use abi::arch::SegmentBase;
use abi::errno::Errno;
use abi::hypercall as nr;
use abi::sched::ShutdownReason;
use abi::shared_info::VcpuInfo;

/// What the hypervisor provides to handlers beyond guest state.
pub trait Platform: GuestCpu {
    /// Writes a domain's console output.
    fn console_write(&mut self, domain: DomId, bytes: &[u8]);
    /// Reads pending console input without waiting; returns the count.
    fn console_read(&mut self, buf: &mut [u8]) -> usize;
    /// Loads a validated segment base (or, for `GsUserSel`, selector)
    /// into the CPU for the running vCPU.
    fn load_segment_base(&mut self, which: SegmentBase, value: u64);
    /// Runs `op` with the page-type engine over this machine's frames
    /// (holding the frame table's lock for the duration).
    fn page_types(&mut self, op: &mut dyn FnMut(&mut PageTypes<'_, '_, dyn GuestFrames>));
    /// Loads `cr3`, a validated page-table base of the running vCPU.
    fn load_cr3(&mut self, cr3: u64);
    /// Records machine frame `mfn` as guest frame `pfn` in the M2P.
    fn set_m2p(&mut self, mfn: Mfn, pfn: u64);
    /// Installs `descriptors` (already checked and fixed up) as GDT
    /// entries 0.. of the running vCPU, clearing the rest below the
    /// hypervisor's reserved entries.
    fn load_gdt(&mut self, descriptors: &mut dyn Iterator<Item = u64>);
    /// Installs one (checked) descriptor as GDT entry `index`.
    fn set_gdt_entry(&mut self, index: usize, descriptor: u64);
    /// Gives domain `dom` a free frame, scrubbed, with an invalid M2P
    /// entry; `None` when memory is exhausted.
    fn alloc_domain_frame(&mut self, dom: DomId) -> Option<Mfn>;
    /// Takes frame `mfn` back from domain `dom`: only a frame it owns that
    /// nothing references (not mapped, not a page table, not pinned).
    fn release_domain_frame(&mut self, dom: DomId, mfn: Mfn) -> Result<(), Errno>;
    /// Flushes this CPU's TLB: one page, or everything.
    fn flush_tlb(&mut self, va: Option<u64>);
    /// The machine-to-phys table: its first frame and its size in frames
    /// (one contiguous run).
    fn m2p_frames(&mut self) -> (Mfn, u64);
    /// One past the highest machine frame.
    fn max_mfn(&mut self) -> Mfn;
    /// System time: nanoseconds since boot, the time base of every
    /// `vcpu_time_info` and of timer deadlines.
    fn now(&mut self) -> u64;
    /// Runs `op` over every domain's event state. `current` is the running
    /// vCPU's `vcpu_info` (the one in [`Ctx`]): the platform uses it for
    /// that vCPU rather than making a second reference to it.
    fn with_domains(&mut self, current: &mut VcpuInfo, op: &mut dyn FnMut(&mut dyn crate::event::Domains));
    /// A port became pending (`send`, `unmask`, a VIRQ): wakes its vCPU if
    /// it is blocked waiting for an upcall, or polling that port.
    fn notify(&mut self, signal: crate::event::Signal);
    /// Arms the running vCPU's single-shot timer for system time
    /// `deadline` (ns; a time in the past fires at once), or stops it.
    /// When it fires, the vCPU's `VIRQ_TIMER` is raised.
    fn set_timer(&mut self, deadline: Option<u64>);
    /// Writes `info` as the running vCPU's `vcpu_info` at byte `offset` of
    /// frame `mfn` (`VCPUOP_register_vcpu_info`, after the handler took a
    /// writable-type reference on the frame for the domain), and uses that
    /// copy from now on.
    fn place_vcpu_info(&mut self, mfn: Mfn, offset: u32, info: &VcpuInfo);

    // ---- for the control domain (domctl, sysctl) ----

    /// The machine's memory and CPU, for `physinfo`.
    fn physinfo(&mut self) -> PhysInfo;
    /// Reads the console ring ([`crate::conring::ConsoleRing::read`]).
    fn read_console(
        &mut self,
        incremental: Option<u32>,
        max: u32,
        clear: bool,
        sink: &mut ConsoleSink<'_>,
    ) -> Result<crate::conring::ReadOut, Errno>;
    /// The first domain whose id is at least `from` (Xen 4.17's
    /// `getdomaininfo`); `caller` is the calling domain, which the platform
    /// must describe from this borrow.
    fn domain_info(&mut self, from: DomId, caller: &Domain) -> Option<crate::domain::DomainInfo>;
    /// Creates an empty, paused domain; returns its id (`-EEXIST` if the
    /// id asked for is taken, `-ENOMEM` without a free id or frame).
    fn create_domain(&mut self, new: &control::NewDomain) -> Result<DomId, Errno>;
    /// Destroys domain `dom` (not the caller), returning its memory.
    fn destroy_domain(&mut self, dom: DomId) -> Result<(), Errno>;
    /// Adds a controller pause to `dom` (not the caller).
    fn pause_domain(&mut self, dom: DomId) -> Result<(), Errno>;
    /// Removes one controller pause from `dom` (`-EINVAL` if none).
    fn unpause_domain(&mut self, dom: DomId) -> Result<(), Errno>;
    /// Sets the most frames `dom` (not the caller) may hold.
    fn set_max_pages(&mut self, dom: DomId, pages: u64) -> Result<(), Errno>;
    /// Frames `dom` (not the caller) holds and may hold (`-ESRCH` if there
    /// is no such domain).
    fn domain_pages(&mut self, dom: DomId) -> Result<(u64, u64), Errno>;
    /// Records that `dom` (not the caller) now holds `nr_pages` frames.
    fn set_domain_pages(&mut self, dom: DomId, nr_pages: u64) -> Result<(), Errno>;
    /// Installs a checked context as vCPU 0 of `dom` (not the caller):
    /// takes L4 type references on its bases for `dom` (`-EINVAL` if they
    /// are not its validated L4s), replacing any it had, and brings the
    /// vCPU up if asked.
    fn set_vcpu_context(&mut self, dom: DomId, init: &control::VcpuInit) -> Result<(), Errno>;
    /// vCPU 0 of `dom` (not the caller), or `None` if it never had a
    /// context (`-ESRCH` without such a domain).
    fn vcpu_context(&mut self, dom: DomId) -> Result<Option<abi::arch::VcpuGuestContext>, Errno>;
    /// Shuts domain `dom` (not the caller) down for `reason`, as if it had
    /// asked (`SCHEDOP_remote_shutdown`).
    fn remote_shutdown(&mut self, dom: DomId, reason: ShutdownReason) -> Result<(), Errno>;
    /// Domain `dom`'s scheduling parameters (any domain, the caller too).
    fn sched_params(&mut self, dom: DomId) -> Result<crate::sched::Params, Errno>;
    /// Sets domain `dom`'s scheduling parameters (checked by the caller).
    fn set_sched_params(&mut self, dom: DomId, params: crate::sched::Params) -> Result<(), Errno>;

    // ---- grant tables (crate::grant) ----

    /// The hypervisor frame holding domain `dom`'s grant state, 0 if it has
    /// none. A destroyed domain whose grants are still mapped keeps its
    /// frame until the last mapping goes.
    fn grant_root(&mut self, dom: DomId) -> Mfn;
    /// Records `root` as domain `dom`'s grant state (0: none);
    /// `-ENOMEM` if the platform has no room for that id.
    fn set_grant_root(&mut self, dom: DomId, root: Mfn) -> Result<(), Errno>;
    /// A zeroed hypervisor frame (grant state), `None` when memory is
    /// exhausted.
    fn alloc_hv_frame(&mut self) -> Option<Mfn>;
    /// Frees a frame [`Platform::alloc_hv_frame`] gave.
    fn free_hv_frame(&mut self, mfn: Mfn);
    /// The words of a frame [`Platform::alloc_hv_frame`] gave (no guest
    /// can reach it).
    fn hv_frame(&mut self, mfn: Mfn) -> &mut [u64; 512];
    /// Atomically reads 32-bit word `word` (below 1024) of frame `mfn`, a
    /// domain's frame that guests may be writing meanwhile (a grant entry).
    fn frame_load32(&mut self, mfn: Mfn, word: usize) -> u32;
    /// Atomic compare-and-exchange of that word: `Ok(old)` if it held
    /// `old` and now holds `new`, else `Err` with what it holds.
    fn frame_cmpxchg32(&mut self, mfn: Mfn, word: usize, old: u32, new: u32) -> Result<u32, u32>;
    /// Atomically ANDs `mask` into that word.
    fn frame_and32(&mut self, mfn: Mfn, word: usize, mask: u32);
    /// Copies `len` bytes from byte `src_off` of frame `src` to byte
    /// `dst_off` of frame `dst` (domains' frames the caller holds; both
    /// ranges within the page; the frames may be the same).
    fn copy_frame_bytes(&mut self, dst: Mfn, dst_off: usize, src: Mfn, src_off: usize, len: usize);
    /// Whether domain `dom` exists (created and not yet destroyed; the
    /// running domain too).
    fn domain_exists(&mut self, dom: DomId) -> bool;
    /// Domain `dom`, destroyed while its grants were mapped, has lost its
    /// last grant mapping and its grant state: frees every frame of it that
    /// nothing references any more, so its memory (and, once none is left,
    /// its id) can be used again.
    fn reclaim_domain(&mut self, dom: DomId);
}

/// Where [`Platform::read_console`] puts what it reads: `(offset, bytes)`.
pub type ConsoleSink<'a> = dyn FnMut(u32, &[u8]) -> Result<(), Errno> + 'a;

/// The machine, as `physinfo` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysInfo {
    /// Frames of RAM.
    pub total_pages: u64,
    /// Frames free.
    pub free_pages: u64,
    /// The highest machine frame.
    pub max_mfn: u64,
    /// The CPU's (TSC) frequency in kHz.
    pub cpu_khz: u32,
}

/// Everything a handler works on.
pub struct Ctx<'a> {
    /// The caller's registers; the result goes to `rax`.
    pub regs: &'a mut Regs,
    /// The calling domain (and its running vCPU).
    pub domain: &'a mut Domain,
    /// The running vCPU's `vcpu_info` in the shared-info page.
    pub vinfo: &'a mut VcpuInfo,
    /// The caller's address space.
    pub mem: &'a mut dyn GuestMemory,
    /// The hardware.
    pub platform: &'a mut dyn Platform,
}

impl Ctx<'_> {
    /// The domain a `memory_op` reservation acts on: the caller itself
    /// (its id or `DOMID_SELF`), or, for a privileged caller, any other
    /// (whose existence the platform checks: `-ESRCH`); others `-EPERM`.
    pub fn reservation_target(&self, domid: u64) -> Result<DomId, Errno> {
        if domid == u64::from(abi::mm::DOMID_SELF) || domid == u64::from(self.domain.id) {
            Ok(self.domain.id)
        } else if !self.domain.privileged {
            Err(Errno::EPERM)
        } else {
            DomId::try_from(domid).map_err(|_| Errno::ESRCH)
        }
    }

    /// Checks a domain argument (`foreigndom`, a reservation's `domid`)
    /// names the caller itself. Acting on another domain needs the
    /// toolstack: a privileged caller gets `-ESRCH` (no such domain yet),
    /// others `-EPERM`.
    pub fn own_domain(&self, domid: u64) -> Result<(), Errno> {
        if domid == u64::from(abi::mm::DOMID_SELF) || domid == u64::from(self.domain.id) {
            Ok(())
        } else if self.domain.privileged {
            Err(Errno::ESRCH)
        } else {
            Err(Errno::EPERM)
        }
    }
}

impl core::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ctx").field("regs", &self.regs).field("domain", &self.domain.id).finish_non_exhaustive()
    }
}

/// What happens after a hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Put this result in `rax` and return to the caller.
    Return(Result<u64, Errno>),
    /// The handler rewrote the frame (`iret`): return to it as it is.
    Resume,
    /// The domain asked to shut down.
    Shutdown(ShutdownReason),
    /// The domain cannot continue.
    Crash(&'static str),
    /// Give up the CPU to anything else runnable (`SCHEDOP_yield`); the
    /// call returns 0.
    Yield,
    /// Wait until an upcall is due (`SCHEDOP_block`, with upcalls already
    /// unmasked and none due); the call returns 0.
    Block,
    /// Wait until one of the ports in the vCPU's [`crate::domain::Poll`]
    /// is pending, an upcall is due, or its deadline passes
    /// (`SCHEDOP_poll`); the call returns 0.
    Poll,
    /// The call did a bounded part of its work ([`BATCH_BUDGET`]) and is
    /// not finished: the caller re-enters it with these arguments (Xen's
    /// hypercall continuation), so that no guest batch holds the CPU for
    /// longer than one budget between two returns to the guest.
    Continue([u64; 5]),
}

/// The most items (requests, ops, multicall entries) one entry into a
/// batched hypercall handles before it continues ([`Action::Continue`]).
pub const BATCH_BUDGET: u64 = 256;

/// The length of the `syscall` instruction that made a hypercall: a
/// continuation steps back over it to make the call again.
pub const SYSCALL_LEN: u64 = 2;

/// A handler: the context and the five raw arguments.
pub type Handler = fn(&mut Ctx<'_>, [u64; 5]) -> Action;

/// One row of the hypercall table.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// Xen's name for it.
    pub name: &'static str,
    /// The implementation.
    pub handler: Handler,
    /// Only a privileged domain may call it (others get `-EPERM`).
    pub privileged: bool,
}

/// Size of the table: every number below it is looked up, the rest are
/// `-ENOSYS`.
pub const TABLE_SIZE: usize = 64;

const fn entry(name: &'static str, handler: Handler, privileged: bool) -> Option<Entry> {
    Some(Entry { name, handler, privileged })
}

/// The hypercall table: number → handler and who may call it.
pub static TABLE: [Option<Entry>; TABLE_SIZE] = {
    let mut t = [None; TABLE_SIZE];
    t[nr::SET_TRAP_TABLE as usize] = entry("set_trap_table", traps::set_trap_table, false);
    t[nr::SET_GDT as usize] = entry("set_gdt", descriptors::set_gdt, false);
    t[nr::UPDATE_DESCRIPTOR as usize] = entry("update_descriptor", descriptors::update_descriptor, false);
    t[nr::STACK_SWITCH as usize] = entry("stack_switch", traps::stack_switch, false);
    t[nr::SET_CALLBACKS as usize] = entry("set_callbacks", traps::set_callbacks, false);
    t[nr::MEMORY_OP as usize] = entry("memory_op", memory::memory_op, false);
    t[nr::MULTICALL as usize] = entry("multicall", multicall::multicall, false);
    t[nr::MMU_UPDATE as usize] = entry("mmu_update", mm::mmu_update, false);
    t[nr::UPDATE_VA_MAPPING as usize] = entry("update_va_mapping", mm::update_va_mapping, false);
    t[nr::UPDATE_VA_MAPPING_OTHERDOMAIN as usize] =
        entry("update_va_mapping_otherdomain", mm::update_va_mapping_otherdomain, true);
    t[nr::VM_ASSIST as usize] = entry("vm_assist", memory::vm_assist, false);
    t[nr::MMUEXT_OP as usize] = entry("mmuext_op", mm::mmuext_op, false);
    t[nr::XEN_VERSION as usize] = entry("xen_version", version::xen_version, false);
    t[nr::SET_TIMER_OP as usize] = entry("set_timer_op", sched::set_timer_op, false);
    // Every domain may write; reading is checked in the handler.
    t[nr::CONSOLE_IO as usize] = entry("console_io", console::console_io, false);
    t[nr::IRET as usize] = entry("iret", traps::iret, false);
    t[nr::VCPU_OP as usize] = entry("vcpu_op", vcpu::vcpu_op, false);
    t[nr::SET_SEGMENT_BASE as usize] = entry("set_segment_base", traps::set_segment_base, false);
    t[nr::SCHED_OP as usize] = entry("sched_op", sched::sched_op, false);
    t[nr::CALLBACK_OP as usize] = entry("callback_op", traps::callback_op, false);
    // Privilege is checked inside, after the interface version, as in Xen.
    t[nr::SYSCTL as usize] = entry("sysctl", control::sysctl, false);
    t[nr::DOMCTL as usize] = entry("domctl", control::domctl, false);
    t[nr::EVENT_CHANNEL_OP as usize] = entry("event_channel_op", event::event_channel_op, false);
    t[nr::GRANT_TABLE_OP as usize] = entry("grant_table_op", grant::grant_table_op, false);
    t[nr::PHYSDEV_OP as usize] = entry("physdev_op", physdev::physdev_op, false);
    t
};

/// Runs `op` on `platform`'s page-type engine and returns its result
/// (`default` should the platform not run it).
pub fn with_page_types<T>(
    platform: &mut dyn Platform,
    default: T,
    mut op: impl FnMut(&mut PageTypes<'_, '_, dyn GuestFrames>) -> T,
) -> T {
    let mut out = default;
    platform.page_types(&mut |pt| out = op(pt));
    out
}

/// Runs the hypercall in `ctx.regs`.
pub fn dispatch(ctx: &mut Ctx<'_>) -> Action {
    let number = ctx.regs.rax;
    let args = ctx.regs.hypercall_args();
    call(ctx, number, args)
}

/// Runs hypercall `number` with `args` for the caller in `ctx`.
pub fn call(ctx: &mut Ctx<'_>, number: u64, args: [u64; 5]) -> Action {
    match usize::try_from(number).ok().and_then(|n| TABLE.get(n)).and_then(Option::as_ref) {
        None => Action::Return(Err(Errno::ENOSYS)),
        Some(e) if e.privileged && !ctx.domain.privileged => Action::Return(Err(Errno::EPERM)),
        Some(e) => (e.handler)(ctx, args),
    }
}

/// Applies a hypercall's result to the frame; returns the action for the
/// caller to act on if it is not a plain return.
pub fn complete(regs: &mut Regs, action: Action) -> Option<Action> {
    match action {
        Action::Return(result) => {
            regs.rax = abi::errno::encode_result(result);
            None
        }
        Action::Resume => None,
        Action::Continue(args) => {
            // The hypercall number stays in rax: the guest makes the same
            // call again, from where this one stopped.
            regs.set_hypercall_args(args);
            regs.rip = regs.rip.wrapping_sub(SYSCALL_LEN);
            None
        }
        Action::Yield | Action::Block | Action::Poll => {
            regs.rax = 0;
            Some(action)
        }
        other => Some(other),
    }
}

/// Host-test scaffolding shared by the handler tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::event;
    use crate::guest::fake::FakeMemory;

    /// Frames `0..FRAMES` of a fake machine, holding page-table contents.
    #[derive(Debug, Default)]
    pub struct FakeFrames {
        pub pages: std::collections::HashMap<Mfn, [u64; 512]>,
    }

    impl GuestFrames for FakeFrames {
        fn entries(&mut self, mfn: Mfn) -> &mut [u64; 512] {
            self.pages.entry(mfn).or_insert([0; 512])
        }
        fn descriptors_ok(&mut self, mfn: Mfn) -> bool {
            crate::descriptor::page_ok(self.entries(mfn))
        }
        fn flush_before_retype(&mut self, _mfn: Mfn) {}
    }

    /// Frames in the fake machine.
    pub const FRAMES: u64 = 128;
    /// The calling domain owns frames `DOMAIN_FRAMES`.
    pub const DOMAIN_FRAMES: core::ops::Range<u64> = 16..80;
    /// Another domain owns these.
    pub const OTHER_FRAMES: core::ops::Range<u64> = 80..96;

    /// One domain's event state in the fake machine.
    #[derive(Debug)]
    pub struct FakeDomain {
        pub id: DomId,
        pub channels: Box<event::EventChannels>,
        /// Its shared-info page. For the calling domain, `vcpu_info[0]` is
        /// not used: the caller's `World::vinfo` stands in for it.
        pub shared: Box<abi::shared_info::SharedInfo>,
        pub privileged: bool,
        pub paused: bool,
    }

    impl FakeDomain {
        pub fn new(id: DomId, privileged: bool) -> FakeDomain {
            FakeDomain {
                id,
                channels: Box::new(event::EventChannels::new(id, 1, if privileged { u32::MAX } else { 1023 })),
                shared: Box::new(abi::shared_info::SharedInfo::zeroed()),
                privileged,
                paused: false,
            }
        }
    }

    /// A domain's event state as `with_domains` lends it: the shared-info
    /// page, with `current` standing in for vCPU 0's `vcpu_info` in the
    /// calling domain.
    struct Split<'a> {
        shared: &'a mut abi::shared_info::SharedInfo,
        current: Option<&'a mut VcpuInfo>,
    }

    impl event::EventState for Split<'_> {
        fn words(&mut self, vcpu: u32) -> event::EventWords<'_> {
            let abi::shared_info::SharedInfo { vcpu_info, evtchn_pending, evtchn_mask, .. } = &mut *self.shared;
            let vcpu = match (vcpu, self.current.as_deref_mut()) {
                (0, Some(current)) => Some(current),
                (v, _) => usize::try_from(v).ok().and_then(|i| vcpu_info.get_mut(i)),
            };
            event::EventWords { pending: evtchn_pending, mask: evtchn_mask, vcpu }
        }
    }

    /// One fake domain as `with_domains` lends it.
    struct Lent<'a> {
        channels: &'a mut event::EventChannels,
        state: Split<'a>,
        privileged: bool,
        paused: bool,
    }

    /// Every fake domain's event state, for one `with_domains`.
    struct View<'a> {
        doms: Vec<Lent<'a>>,
    }

    impl View<'_> {
        fn find(&self, dom: DomId) -> Option<&Lent<'_>> {
            self.doms.iter().find(|d| d.channels.domain() == dom)
        }
    }

    impl event::Domains for View<'_> {
        fn events(&mut self, dom: DomId) -> Option<event::DomainEvents<'_>> {
            let d = self.doms.iter_mut().find(|d| d.channels.domain() == dom)?;
            Some(event::DomainEvents { channels: d.channels, state: &mut d.state })
        }
        fn is_privileged(&self, dom: DomId) -> bool {
            self.find(dom).is_some_and(|d| d.privileged)
        }
        fn is_paused_by_controller(&self, dom: DomId) -> bool {
            self.find(dom).is_some_and(|d| d.paused)
        }
    }

    /// A platform that records what handlers asked of it, over a real
    /// frame table and page-type engine with fake frame contents, and fake
    /// domains' event state.
    #[derive(Debug)]
    pub struct Recorder {
        /// The calling domain.
        pub dom: DomId,
        pub console: Vec<u8>,
        pub input: Vec<u8>,
        pub segment_loads: Vec<(SegmentBase, u64)>,
        pub flushes: Vec<Option<u64>>,
        pub mode_switches: Vec<u64>,
        pub cr3_loads: Vec<u64>,
        pub gdt: Vec<u64>,
        pub m2p: std::collections::HashMap<Mfn, u64>,
        pub frames: crate::mm::frame::FrameTable<'static>,
        pub mem: FakeFrames,
        pub policy: crate::mm::pagetype::Policy,
        /// What `now()` answers.
        pub now: u64,
        /// Every `set_timer`, in order.
        pub timers: Vec<Option<u64>>,
        /// Every `notify`, in order.
        pub signals: Vec<event::Signal>,
        /// Every `place_vcpu_info`, in order.
        pub placed: Vec<(Mfn, u32, VcpuInfo)>,
        /// Domains with event channels: the caller, and the others of 0, 1
        /// and 2 (0 privileged).
        pub domains: Vec<FakeDomain>,
        /// The other domains, as the control operations see them.
        pub infos: Vec<crate::domain::DomainInfo>,
        /// The console ring.
        pub conring: crate::conring::ConsoleRing<64>,
        /// What `physinfo` answers.
        pub phys: PhysInfo,
        /// Every `remote_shutdown`, in order.
        pub remote_shutdowns: Vec<(DomId, ShutdownReason)>,
        /// Scheduling parameters set.
        pub params: std::collections::HashMap<DomId, crate::sched::Params>,
        /// vCPU contexts installed in other domains.
        pub contexts: std::collections::HashMap<DomId, (crate::domain::Vcpu, Regs, [u16; 4])>,
        /// The grant side: roots, memory limits, racing granters.
        pub grants: FakeGrants,
    }

    /// The fake machine's grant-table side.
    #[derive(Debug, Default)]
    pub struct FakeGrants {
        /// Each domain's grant root.
        pub roots: std::collections::HashMap<DomId, Mfn>,
        /// Hypervisor frames it may still give (`None`: as many as are free).
        pub hv_frames_left: Option<u32>,
        /// A granter racing the hypervisor: before each compare-and-exchange
        /// the next mask (if any) is XORed into the word, as if the guest
        /// had just written it.
        pub races: std::collections::VecDeque<u32>,
        /// Every `reclaim_domain`, in order.
        pub reclaimed: Vec<DomId>,
    }

    /// The data selectors the fake CPU holds (distinct, to check their
    /// order in frames).
    pub const SELECTORS: crate::trap::DataSelectors =
        crate::trap::DataSelectors { ds: 0xe02b, es: 0x0010, fs: 0x0018, gs: 0x0020 };

    impl Recorder {
        /// Frames 0–15 the hypervisor's, `DOMAIN_FRAMES` domain `dom`'s,
        /// `OTHER_FRAMES` domain 7's, the rest free. Domains 0 (privileged),
        /// 1, 2 and `dom` have event channels.
        pub fn for_domain(dom: DomId) -> Recorder {
            use crate::mm::frame::{FrameTable, FrameUse, PageInfo};
            use crate::mm::memmap::FrameRange;
            let pages = Box::leak(vec![PageInfo::default(); FRAMES as usize].into_boxed_slice());
            let r = |range: core::ops::Range<u64>| FrameRange { start: range.start, end: range.end };
            let claims = [
                (r(0..16), FrameUse::Hypervisor),
                (r(DOMAIN_FRAMES), FrameUse::Domain(dom)),
                (r(OTHER_FRAMES), FrameUse::Domain(7)),
            ];
            let frames = FrameTable::new(pages, &[r(0..FRAMES)], &claims).expect("fixture claims");
            let mut domains: Vec<FakeDomain> = (0..3).map(|id| FakeDomain::new(id, id == 0)).collect();
            if dom > 2 {
                domains.push(FakeDomain::new(dom, false));
            }
            Recorder {
                dom,
                console: Vec::new(),
                input: Vec::new(),
                segment_loads: Vec::new(),
                flushes: Vec::new(),
                mode_switches: Vec::new(),
                cr3_loads: Vec::new(),
                gdt: vec![0; 7168],
                m2p: std::collections::HashMap::new(),
                frames,
                mem: FakeFrames::default(),
                policy: crate::mm::pagetype::Policy { reserved_l4: [0; 16], nx: true },
                now: 1_000_000_000,
                timers: Vec::new(),
                signals: Vec::new(),
                placed: Vec::new(),
                domains,
                infos: [1, 2, 7]
                    .into_iter()
                    .filter(|&id| id != dom)
                    .map(|id| crate::domain::DomainInfo { id, tot_pages: 16, max_pages: 32, ..Default::default() })
                    .collect(),
                conring: crate::conring::ConsoleRing::new(),
                phys: PhysInfo { total_pages: FRAMES, free_pages: 32, max_mfn: FRAMES - 1, cpu_khz: 2_000_000 },
                contexts: std::collections::HashMap::new(),
                grants: FakeGrants::default(),
                params: std::collections::HashMap::new(),
                remote_shutdowns: Vec::new(),
            }
        }

        fn info_mut(&mut self, dom: DomId) -> Result<&mut crate::domain::DomainInfo, Errno> {
            self.infos.iter_mut().find(|i| i.id == dom).ok_or(Errno::ESRCH)
        }

        /// Domain `dom`'s fake event state.
        pub fn domain(&mut self, dom: DomId) -> &mut FakeDomain {
            self.domains.iter_mut().find(|d| d.id == dom).expect("no such fake domain")
        }
    }

    impl crate::ioport::PortBus for Recorder {
        fn read(&mut self, _port: u16, _size: u8) -> u32 {
            u32::MAX
        }
        fn write(&mut self, _port: u16, _size: u8, _value: u32) {}
    }

    impl GuestCpu for Recorder {
        fn cpuid(&mut self, _leaf: u32, _subleaf: u32) -> [u32; 4] {
            [0; 4]
        }
        fn switch_guest_mode(&mut self, cr3: u64) {
            self.mode_switches.push(cr3);
        }
        fn data_selectors(&mut self) -> crate::trap::DataSelectors {
            SELECTORS
        }
    }

    impl Platform for Recorder {
        fn console_write(&mut self, _domain: DomId, bytes: &[u8]) {
            self.console.extend_from_slice(bytes);
        }
        fn console_read(&mut self, buf: &mut [u8]) -> usize {
            let n = buf.len().min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input.drain(..n);
            n
        }
        fn load_segment_base(&mut self, which: SegmentBase, value: u64) {
            self.segment_loads.push((which, value));
        }
        fn page_types(&mut self, op: &mut dyn FnMut(&mut PageTypes<'_, '_, dyn GuestFrames>)) {
            let mem: &mut dyn GuestFrames = &mut self.mem;
            op(&mut PageTypes::new(&mut self.frames, mem, &self.policy));
        }
        fn load_cr3(&mut self, cr3: u64) {
            self.cr3_loads.push(cr3);
        }
        fn set_m2p(&mut self, mfn: Mfn, pfn: u64) {
            self.m2p.insert(mfn, pfn);
        }
        fn load_gdt(&mut self, descriptors: &mut dyn Iterator<Item = u64>) {
            self.gdt.fill(0);
            for (slot, d) in self.gdt.iter_mut().zip(descriptors) {
                *slot = d;
            }
        }
        fn set_gdt_entry(&mut self, index: usize, descriptor: u64) {
            self.gdt[index] = descriptor;
        }
        fn alloc_domain_frame(&mut self, dom: DomId) -> Option<Mfn> {
            let mfn = self.frames.alloc(crate::mm::frame::FrameUse::Domain(dom))?;
            self.mem.pages.insert(mfn, [0; 512]);
            self.m2p.insert(mfn, u64::MAX);
            Some(mfn)
        }
        fn release_domain_frame(&mut self, dom: DomId, mfn: Mfn) -> Result<(), Errno> {
            if self.frames.usage(mfn) != crate::mm::frame::FrameUse::Domain(dom) || !self.frames.can_release(mfn) {
                return Err(Errno::EINVAL);
            }
            self.frames.free(mfn).map_err(|_| Errno::EINVAL)?;
            self.m2p.insert(mfn, u64::MAX);
            Ok(())
        }
        fn flush_tlb(&mut self, va: Option<u64>) {
            self.flushes.push(va);
        }
        fn m2p_frames(&mut self) -> (Mfn, u64) {
            (0x300, 1024)
        }
        fn max_mfn(&mut self) -> Mfn {
            0x8_0000
        }
        fn now(&mut self) -> u64 {
            self.now
        }
        fn with_domains(&mut self, current: &mut VcpuInfo, op: &mut dyn FnMut(&mut dyn event::Domains)) {
            let caller = self.dom;
            let mut current = Some(current);
            let doms = self
                .domains
                .iter_mut()
                .map(|d| {
                    let current = if d.id == caller { current.take() } else { None };
                    let state = Split { shared: &mut d.shared, current };
                    Lent { channels: &mut d.channels, state, privileged: d.privileged, paused: d.paused }
                })
                .collect();
            op(&mut View { doms });
        }
        fn notify(&mut self, signal: event::Signal) {
            self.signals.push(signal);
        }
        fn set_timer(&mut self, deadline: Option<u64>) {
            self.timers.push(deadline);
        }
        fn place_vcpu_info(&mut self, mfn: Mfn, offset: u32, info: &VcpuInfo) {
            self.placed.push((mfn, offset, *info));
        }
        fn physinfo(&mut self) -> PhysInfo {
            self.phys
        }
        fn read_console(
            &mut self,
            incremental: Option<u32>,
            max: u32,
            clear: bool,
            sink: &mut ConsoleSink<'_>,
        ) -> Result<crate::conring::ReadOut, Errno> {
            self.conring.read(incremental, max, clear, sink)
        }
        fn domain_info(&mut self, from: DomId, caller: &Domain) -> Option<crate::domain::DomainInfo> {
            let me = crate::domain::DomainInfo {
                id: caller.id,
                tot_pages: caller.nr_pages,
                max_pages: caller.max_pages,
                running: true,
                vcpu_online: true,
                ..Default::default()
            };
            self.infos.iter().copied().chain([me]).filter(|i| i.id >= from).min_by_key(|i| i.id)
        }
        fn create_domain(&mut self, new: &control::NewDomain) -> Result<DomId, Errno> {
            let taken = |id: DomId, r: &Recorder| id == r.dom || r.infos.iter().any(|i| i.id == id);
            let id = match new.id {
                Some(id) if taken(id, self) => return Err(Errno::EEXIST),
                Some(id) => id,
                None => (1..100).find(|&id| !taken(id, self)).ok_or(Errno::ENOMEM)?,
            };
            self.infos.push(crate::domain::DomainInfo { id, paused: true, handle: new.handle, ..Default::default() });
            Ok(id)
        }
        fn destroy_domain(&mut self, dom: DomId) -> Result<(), Errno> {
            self.info_mut(dom)?;
            self.infos.retain(|i| i.id != dom);
            Ok(())
        }
        fn pause_domain(&mut self, dom: DomId) -> Result<(), Errno> {
            self.info_mut(dom)?.paused = true;
            Ok(())
        }
        fn unpause_domain(&mut self, dom: DomId) -> Result<(), Errno> {
            let i = self.info_mut(dom)?;
            if !i.paused {
                return Err(Errno::EINVAL);
            }
            i.paused = false;
            Ok(())
        }
        fn set_max_pages(&mut self, dom: DomId, pages: u64) -> Result<(), Errno> {
            self.info_mut(dom)?.max_pages = pages;
            Ok(())
        }
        fn domain_pages(&mut self, dom: DomId) -> Result<(u64, u64), Errno> {
            let i = self.info_mut(dom)?;
            Ok((i.tot_pages, i.max_pages))
        }
        fn set_domain_pages(&mut self, dom: DomId, nr_pages: u64) -> Result<(), Errno> {
            self.info_mut(dom)?.tot_pages = nr_pages;
            Ok(())
        }
        fn set_vcpu_context(&mut self, dom: DomId, init: &control::VcpuInit) -> Result<(), Errno> {
            self.info_mut(dom)?;
            let mut kernel = None;
            let mem: &mut dyn GuestFrames = &mut self.mem;
            PageTypes::new(&mut self.frames, mem, &self.policy)
                .new_baseptr(dom, &mut kernel, Some(init.kernel_table))
                .map_err(crate::mm::pagetype::PtError::errno)?;
            let mut vcpu = init.vcpu.clone();
            vcpu.kernel_table = kernel;
            self.contexts.insert(dom, (vcpu, init.regs, init.selectors));
            Ok(())
        }
        fn remote_shutdown(&mut self, dom: DomId, reason: ShutdownReason) -> Result<(), Errno> {
            self.info_mut(dom)?;
            self.remote_shutdowns.push((dom, reason));
            Ok(())
        }
        fn sched_params(&mut self, dom: DomId) -> Result<crate::sched::Params, Errno> {
            if dom != self.dom {
                self.info_mut(dom)?;
            }
            Ok(self.params.get(&dom).copied().unwrap_or_default())
        }
        fn set_sched_params(&mut self, dom: DomId, params: crate::sched::Params) -> Result<(), Errno> {
            if dom != self.dom {
                self.info_mut(dom)?;
            }
            self.params.insert(dom, params);
            Ok(())
        }
        fn vcpu_context(&mut self, dom: DomId) -> Result<Option<abi::arch::VcpuGuestContext>, Errno> {
            self.info_mut(dom)?;
            Ok(self.contexts.get(&dom).map(|(v, r, s)| control::context_of(v, r, *s)))
        }
        fn grant_root(&mut self, dom: DomId) -> Mfn {
            self.grants.roots.get(&dom).copied().unwrap_or(0)
        }
        fn set_grant_root(&mut self, dom: DomId, root: Mfn) -> Result<(), Errno> {
            if root == 0 {
                self.grants.roots.remove(&dom);
            } else {
                self.grants.roots.insert(dom, root);
            }
            Ok(())
        }
        fn alloc_hv_frame(&mut self) -> Option<Mfn> {
            if let Some(left) = self.grants.hv_frames_left.as_mut() {
                *left = left.checked_sub(1)?;
            }
            let mfn = self.frames.alloc(crate::mm::frame::FrameUse::Hypervisor)?;
            self.mem.pages.insert(mfn, [0; 512]);
            Some(mfn)
        }
        fn free_hv_frame(&mut self, mfn: Mfn) {
            assert_eq!(self.frames.usage(mfn), crate::mm::frame::FrameUse::Hypervisor, "freeing {mfn} as grant state");
            self.frames.free(mfn).expect("a grant-state frame is unreferenced");
        }
        fn hv_frame(&mut self, mfn: Mfn) -> &mut [u64; 512] {
            assert_eq!(
                self.frames.usage(mfn),
                crate::mm::frame::FrameUse::Hypervisor,
                "frame {mfn} is not grant state"
            );
            self.mem.entries(mfn)
        }
        fn frame_load32(&mut self, mfn: Mfn, word: usize) -> u32 {
            (self.mem.entries(mfn)[word / 2] >> (32 * (word % 2))) as u32
        }
        fn frame_cmpxchg32(&mut self, mfn: Mfn, word: usize, old: u32, new: u32) -> Result<u32, u32> {
            let shift = 32 * (word % 2);
            let slot = &mut self.mem.entries(mfn)[word / 2];
            if let Some(x) = self.grants.races.pop_front() {
                *slot ^= u64::from(x) << shift;
            }
            let now = (*slot >> shift) as u32;
            if now != old {
                return Err(now);
            }
            *slot = (*slot & !(0xffff_ffffu64 << shift)) | u64::from(new) << shift;
            Ok(old)
        }
        fn frame_and32(&mut self, mfn: Mfn, word: usize, mask: u32) {
            let shift = 32 * (word % 2);
            self.mem.entries(mfn)[word / 2] &= !(u64::from(!mask) << shift);
        }
        fn copy_frame_bytes(&mut self, dst: Mfn, dst_off: usize, src: Mfn, src_off: usize, len: usize) {
            let bytes = |w: &[u64; 512]| w.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            let from = bytes(self.mem.entries(src));
            let mut to = bytes(self.mem.entries(dst));
            to[dst_off..dst_off + len].copy_from_slice(&from[src_off..src_off + len]);
            for (w, chunk) in self.mem.entries(dst).iter_mut().zip(to.chunks(8)) {
                *w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            }
        }
        fn domain_exists(&mut self, dom: DomId) -> bool {
            dom == self.dom || self.infos.iter().any(|i| i.id == dom)
        }
        fn reclaim_domain(&mut self, dom: DomId) {
            self.grants.reclaimed.push(dom);
            for mfn in 0..FRAMES {
                if self.frames.usage(mfn) == crate::mm::frame::FrameUse::Domain(dom) && self.frames.can_release(mfn) {
                    self.frames.free(mfn).expect("unreferenced");
                }
            }
        }
    }

    /// Guest memory at this address in tests.
    pub const MEM_BASE: u64 = 0x40_0000;

    /// A guest world for one hypercall.
    #[derive(Debug)]
    pub struct World {
        pub regs: Regs,
        pub domain: Domain,
        pub vinfo: VcpuInfo,
        pub mem: FakeMemory,
        pub platform: Recorder,
    }

    impl World {
        pub fn new(privileged: bool) -> World {
            World {
                regs: Regs { cs: 0xe033, ss: 0xe02b, rsp: MEM_BASE + 0x8000, ..Regs::default() },
                domain: Domain::new(if privileged { 0 } else { 1 }, privileged),
                vinfo: VcpuInfo::default(),
                mem: FakeMemory::new(MEM_BASE, 0x1_0000),
                platform: Recorder::for_domain(if privileged { 0 } else { 1 }),
            }
        }

        /// Makes hypercall `number` with `args` and returns its action
        /// after applying it to the frame.
        pub fn call(&mut self, number: u64, args: &[u64]) -> Action {
            self.regs.rax = number;
            let mut a = [0u64; 5];
            a[..args.len()].copy_from_slice(args);
            [self.regs.rdi, self.regs.rsi, self.regs.rdx, self.regs.r10, self.regs.r8] = a;
            let mut ctx = Ctx {
                regs: &mut self.regs,
                domain: &mut self.domain,
                vinfo: &mut self.vinfo,
                mem: &mut self.mem,
                platform: &mut self.platform,
            };
            let action = dispatch(&mut ctx);
            let _ = complete(&mut self.regs, action);
            action
        }

        /// Makes the call, then makes it again after each continuation as
        /// the guest would (the rewound `syscall` with the number still in
        /// `rax`); the final action and how many times it continued.
        pub fn call_to_end(&mut self, number: u64, args: &[u64]) -> (Action, u64) {
            let mut action = self.call(number, args);
            let mut continued = 0;
            while let Action::Continue(_) = action {
                continued += 1;
                assert!(continued < 1 << 20, "a continuation that never ends");
                let args = self.regs.hypercall_args();
                action = self.call(self.regs.rax, &args);
            }
            (action, continued)
        }

        /// The `rax` a plain return left, as a signed value.
        pub fn ret(&self) -> i64 {
            self.regs.rax as i64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::World;
    use super::*;

    #[test]
    fn unknown_and_unimplemented_numbers_are_enosys() {
        let mut w = World::new(true);
        for n in [nr::FPU_TASKSWITCH, 11, 37, 63, 64, 1 << 40, u64::MAX] {
            assert_eq!(w.call(n, &[]), Action::Return(Err(Errno::ENOSYS)), "hypercall {n}");
            assert_eq!(w.ret(), -38);
        }
    }

    #[test]
    fn privileged_calls_are_refused_to_unprivileged_domains() {
        let mut w = World::new(false);
        assert_eq!(w.call(nr::UPDATE_VA_MAPPING_OTHERDOMAIN, &[0, 0, 0, 0]), Action::Return(Err(Errno::EPERM)));
    }

    #[test]
    fn event_timer_and_vcpu_calls_are_open_to_every_domain() {
        for n in [nr::SET_TIMER_OP, nr::VCPU_OP, nr::EVENT_CHANNEL_OP, nr::CONSOLE_IO] {
            assert!(TABLE[n as usize].is_some_and(|e| !e.privileged), "hypercall {n}");
        }
    }

    #[test]
    fn waiting_actions_return_zero_and_reach_the_run_loop() {
        for a in [Action::Yield, Action::Block, Action::Poll] {
            let mut regs = Regs { rax: 99, ..Regs::default() };
            assert_eq!(complete(&mut regs, a), Some(a));
            assert_eq!(regs.rax, 0);
        }
    }

    #[test]
    fn a_continuation_makes_the_same_call_again() {
        let mut regs = Regs { rax: nr::MMU_UPDATE, rip: 0x1002, ..Regs::default() };
        assert_eq!(complete(&mut regs, Action::Continue([1, 2, 3, 4, 5])), None);
        assert_eq!((regs.rax, regs.rip), (nr::MMU_UPDATE, 0x1000), "back at the syscall, same number");
        assert_eq!(regs.hypercall_args(), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn the_table_names_match_abi() {
        for (n, e) in TABLE.iter().enumerate() {
            if let Some(e) = e {
                assert_eq!(abi::hypercall::name(n as u64), Some(e.name), "hypercall {n}");
            }
        }
    }
}
