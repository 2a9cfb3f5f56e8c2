//! Domains and their virtual CPUs: the state the hypervisor keeps per guest.

use crate::mm::frame::DomId;
use crate::mm::pagetype::{GuestFrames, PageTypes};
use crate::mm::Mfn;
use abi::arch::TrapInfo;
use abi::sched::ShutdownReason;

/// Most GDT frames a guest may give: entries below the hypervisor's
/// reserved ones (7168 entries, 14 pages).
pub const MAX_GDT_FRAMES: usize = 14;

/// A guest entry point registered with `set_callbacks` or `callback_op`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Callback {
    /// Where to enter the guest (0: not registered).
    pub address: u64,
    /// Mask event upcalls on entry (`CALLBACKF_mask_events`).
    pub mask_events: bool,
}

/// One virtual CPU.
#[derive(Clone, Debug)]
pub struct Vcpu {
    /// Index within its domain.
    pub id: u32,
    /// The guest's trap table (`set_trap_table`), indexed by vector.
    pub trap_table: [TrapInfo; 256],
    /// Event upcall entry.
    pub event_callback: Callback,
    /// Entry used when returning to the guest fails (bad segment state).
    pub failsafe_callback: Callback,
    /// Guest user-mode `syscall` entry.
    pub syscall_callback: Callback,
    /// NMI entry.
    pub nmi_callback: Callback,
    /// Stack selector for entering guest kernel mode (`stack_switch`).
    pub kernel_ss: u64,
    /// Stack pointer for entering guest kernel mode from user mode.
    pub kernel_sp: u64,
    /// Whether the guest is in its kernel mode (both modes run in ring 3).
    pub kernel_mode: bool,
    /// The guest's virtual CR2: the address of its last page fault.
    pub cr2: u64,
    /// The kernel page-table base (an L4 holding a type reference), loaded
    /// in guest kernel mode.
    pub kernel_table: Option<Mfn>,
    /// The user page-table base, loaded in guest user mode (none: the
    /// guest cannot enter user mode).
    pub user_table: Option<Mfn>,
    /// Frames of the guest's GDT (`set_gdt`), each holding a
    /// segment-descriptor type reference.
    pub gdt_frames: [Mfn; MAX_GDT_FRAMES],
    /// Entries of the guest's GDT (0: none).
    pub gdt_entries: u32,
    /// FS base.
    pub fs_base: u64,
    /// GS base while in guest kernel mode.
    pub gs_base_kernel: u64,
    /// GS base while in guest user mode.
    pub gs_base_user: u64,
    /// Where the `vcpu_info` lives if the guest moved it out of the
    /// shared-info page (`VCPUOP_register_vcpu_info`): frame and byte
    /// offset. The frame holds a writable-type reference for the domain.
    pub vcpu_info_at: Option<(Mfn, u32)>,
    /// The single-shot timer's deadline in system time (ns), if armed.
    pub timer: Option<u64>,
    /// What the vCPU waits for in `SCHEDOP_poll`, while it polls.
    pub poll: Option<Poll>,
    /// The virtual IOPL (`PHYSDEVOP_set_iopl`), 0 to 3: whether `in` and
    /// `out` are emulated ([`crate::ioport`]).
    pub iopl: u8,
    /// Its domain was given the I/O ports the hypervisor does not drive
    /// (the control domain is); else every port reads as all ones.
    pub io_ports: bool,
}

/// Most ports one `SCHEDOP_poll` may wait on (Xen's limit).
pub const MAX_POLL_PORTS: usize = 128;

/// A `SCHEDOP_poll` in progress: the vCPU wakes when one of `ports` is
/// pending, an upcall is due, or at `deadline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Poll {
    /// The ports (each valid in the domain when the poll began).
    pub ports: [u16; MAX_POLL_PORTS],
    /// How many of `ports` are used.
    pub count: u8,
    /// System time (ns) at which the poll gives up; `None`: never.
    pub deadline: Option<u64>,
}

impl Poll {
    /// The ports polled.
    pub fn ports(&self) -> &[u16] {
        &self.ports[..usize::from(self.count).min(MAX_POLL_PORTS)]
    }
}

impl Vcpu {
    /// Frames of the guest's GDT in use.
    pub fn gdt_frame_count(&self) -> usize {
        (self.gdt_entries as usize).div_ceil(512).min(MAX_GDT_FRAMES)
    }

    /// Drops every page reference the vCPU holds: its page-table bases,
    /// its GDT frames and a registered `vcpu_info` page. Afterwards it has
    /// no page tables, no GDT and its `vcpu_info` back in shared info.
    pub fn release_pages<M: GuestFrames + ?Sized>(&mut self, pt: &mut PageTypes<'_, '_, M>, dom: DomId) {
        // Dropping a base cannot fail: `None` takes no new reference.
        let _ = pt.new_baseptr(dom, &mut self.kernel_table, None);
        let _ = pt.new_baseptr(dom, &mut self.user_table, None);
        for &mfn in &self.gdt_frames[..self.gdt_frame_count()] {
            pt.put_page_and_type(mfn);
        }
        self.gdt_frames = [0; MAX_GDT_FRAMES];
        self.gdt_entries = 0;
        if let Some((mfn, _)) = self.vcpu_info_at.take() {
            pt.put_page_and_type(mfn);
        }
    }

    /// The CR3 value for guest kernel mode (0 when there is no base).
    pub fn cr3(&self) -> u64 {
        self.kernel_table.map_or(0, |mfn| mfn << 12)
    }

    /// The CR3 value for guest user mode, if there is a user base.
    pub fn user_cr3(&self) -> Option<u64> {
        self.user_table.map(|mfn| mfn << 12)
    }

    /// A vCPU in kernel mode with nothing registered and no page tables.
    pub fn new(id: u32) -> Vcpu {
        Vcpu {
            id,
            trap_table: [TrapInfo::default(); 256],
            event_callback: Callback::default(),
            failsafe_callback: Callback::default(),
            syscall_callback: Callback::default(),
            nmi_callback: Callback::default(),
            kernel_ss: 0,
            kernel_sp: 0,
            kernel_mode: true,
            cr2: 0,
            kernel_table: None,
            user_table: None,
            gdt_frames: [0; MAX_GDT_FRAMES],
            gdt_entries: 0,
            fs_base: 0,
            gs_base_kernel: 0,
            gs_base_user: 0,
            vcpu_info_at: None,
            timer: None,
            poll: None,
            iopl: 0,
            io_ports: false,
        }
    }
}

/// How a domain stopped running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// It asked to shut down (`SCHEDOP_shutdown`).
    Shutdown(ShutdownReason),
    /// It crashed: the hypervisor could not continue it.
    Crashed,
}

/// A domain: an isolated guest with its own memory and vCPUs.
#[derive(Clone, Debug)]
pub struct Domain {
    /// Its identifier (0 is the control domain).
    pub id: DomId,
    /// May use privileged operations (console, control hypercalls).
    pub privileged: bool,
    /// Its only vCPU for now.
    pub vcpu: Vcpu,
    /// The reason recorded by `SCHEDOP_shutdown_code`: it replaces the
    /// reason of any later shutdown or crash, as in Xen.
    pub shutdown_code: Option<ShutdownReason>,
    /// Set once the domain has stopped.
    pub stopped: Option<Stopped>,
    /// Frames the domain holds now.
    pub nr_pages: u64,
    /// Most frames the domain may hold.
    pub max_pages: u64,
    /// The handle (UUID) its creator gave it.
    pub handle: [u8; 16],
}

impl Domain {
    /// A new, running domain with one vCPU and no page tables yet.
    pub fn new(id: DomId, privileged: bool) -> Domain {
        Domain {
            id,
            privileged,
            vcpu: Vcpu::new(0),
            shutdown_code: None,
            stopped: None,
            nr_pages: 0,
            max_pages: 0,
            handle: [0; 16],
        }
    }

    /// Domain teardown, page-type side: drops every reference the domain
    /// holds on its frames (its vCPUs' bases, GDT and `vcpu_info` pages,
    /// every pin, and the hypervisor's general reference on its shared-info
    /// frame `shared_info`), so that its frames can be freed. Returns how
    /// many of its frames are still referenced from outside it (0 unless
    /// something else, such as a foreign mapping, holds one); those must
    /// not be freed.
    pub fn release_pages<M: GuestFrames + ?Sized>(&mut self, pt: &mut PageTypes<'_, '_, M>, shared_info: Mfn) -> u64 {
        self.vcpu.release_pages(pt, self.id);
        pt.put_page(shared_info);
        pt.release_domain(self.id)
    }
}

/// What the control domain learns about a domain (`getdomaininfo`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DomainInfo {
    /// Its id.
    pub id: DomId,
    /// Frames it holds.
    pub tot_pages: u64,
    /// Most frames it may hold.
    pub max_pages: u64,
    /// Its shared-info frame.
    pub shared_info: Mfn,
    /// CPU time its vCPUs have used (ns).
    pub cpu_time_ns: u64,
    /// Its vCPU is up (initialised and not taken down).
    pub vcpu_online: bool,
    /// Paused by the controller.
    pub paused: bool,
    /// Its vCPU waits for an event.
    pub blocked: bool,
    /// Its vCPU is on the CPU.
    pub running: bool,
    /// How it stopped, if it did.
    pub stopped: Option<Stopped>,
    /// The handle the toolstack gave it.
    pub handle: [u8; 16],
}
