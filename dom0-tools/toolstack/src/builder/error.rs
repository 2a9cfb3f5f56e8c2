//! What can go wrong while building a domain, each as one line naming the step and the cause.

use core::fmt;

use abi::boot::{BootError, Item};
use abi::Errno;

use super::{DomId, PAGES_PER_MIB};
use crate::config::ConfigErrorKind;

/// Why a domain was not built.
///
/// `Config`, `Kernel` and `Memory` are found before anything is created.
/// `Op` is a failed hypercall: if it came after the domain was created, the
/// domain has been destroyed. `LeftBehind` is the same, except that
/// destroying the domain failed too. `Display` gives one line, starting with
/// the step (`kernel:`, `memory:`, `populate_physmap:`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The configuration breaks a limit of [`DomainConfig`](crate::config::DomainConfig)
    /// (possible only for one built by hand).
    Config(ConfigErrorKind),
    /// The kernel image is refused.
    Kernel(ImageError),
    /// The domain's memory cannot hold the kernel, or the hypervisor lacks it.
    Memory(MemoryProblem),
    /// A control operation failed; no domain is left behind.
    Op(Failure),
    /// A control operation failed and destroying the half-built domain
    /// failed too: `domid` still exists.
    LeftBehind {
        /// What failed first.
        failure: Failure,
        /// The domain that could not be destroyed.
        domid: DomId,
        /// Why [`ControlOps::destroy_domain`](super::ControlOps::destroy_domain) failed.
        errno: Errno,
    },
}

impl BuildError {
    /// The domain the failure left behind, if destroying it failed.
    pub fn left_behind(&self) -> Option<DomId> {
        match self {
            BuildError::LeftBehind { domid, .. } => Some(*domid),
            _ => None,
        }
    }
}

impl From<ImageError> for BuildError {
    fn from(e: ImageError) -> Self {
        BuildError::Kernel(e)
    }
}

impl From<Failure> for BuildError {
    fn from(f: Failure) -> Self {
        BuildError::Op(f)
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Config(kind) => write!(f, "config: {kind}"),
            BuildError::Kernel(e) => write!(f, "kernel: {e}"),
            BuildError::Memory(m) => write!(f, "memory: {m}"),
            BuildError::Op(failure) => failure.fmt(f),
            BuildError::LeftBehind { failure, domid, errno } => {
                write!(f, "{failure}; destroying domain {domid} failed too: {}; it is left behind", Described(*errno))
            }
        }
    }
}

impl core::error::Error for BuildError {}

/// Why the kernel image is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// [`abi::boot`] refused it: ELF structure, Xen notes, features, placement.
    Boot(BootError),
    /// Two loadable segments overlap in memory (Xen would load the second
    /// over the first; a builder cannot tell which the kernel meant).
    OverlappingSegments {
        /// Program header index of one segment.
        first: usize,
        /// Its `(address, memsz)`.
        first_range: (u64, u64),
        /// Program header index of the other.
        second: usize,
        /// Its `(address, memsz)`.
        second_range: (u64, u64),
    },
    /// Something to be written (a segment, the hypercall page) lies outside
    /// the kernel's pages. [`abi::boot`]'s placement rules this out; the
    /// builder checks again rather than write elsewhere.
    OutsideKernel {
        /// Its address.
        va: u64,
        /// Its length in bytes.
        len: u64,
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ImageError::Boot(e) => e.fmt(f),
            ImageError::OverlappingSegments { first, first_range: (a, alen), second, second_range: (b, blen) } => {
                write!(
                    f,
                    "program headers {first} and {second} overlap in memory ({a:#x}+{alen:#x} and {b:#x}+{blen:#x})"
                )
            }
            ImageError::OutsideKernel { va, len } => {
                write!(f, "{va:#x}+{len:#x} lies outside the kernel's pages")
            }
        }
    }
}

/// Why the domain's memory does not work out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryProblem {
    /// The initial mapping (kernel, ramdisk, p2m, start_info, rings, page
    /// tables, stack, slack) does not fit in `memory`.
    TooSmall {
        /// The configured memory, in MiB.
        memory_mib: u32,
        /// Pages the initial mapping needs (at least).
        needed_pages: u64,
    },
    /// The hypervisor has fewer free pages than the domain needs.
    NotEnoughFree {
        /// Pages the domain needs.
        asked_pages: u64,
        /// Pages free ([`ControlOps::free_pages`](super::ControlOps::free_pages)).
        free_pages: u64,
    },
}

impl fmt::Display for MemoryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MemoryProblem::TooSmall { memory_mib, needed_pages } => write!(
                f,
                "{memory_mib} MiB is too small for this kernel: its initial mapping needs at least {}",
                Size(needed_pages)
            ),
            MemoryProblem::NotEnoughFree { asked_pages, free_pages } => {
                write!(f, "{} asked, max is {} (the hypervisor's free memory)", Size(asked_pages), Size(free_pages))
            }
        }
    }
}

/// A control operation that failed: which, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The operation.
    pub step: Step,
    /// What went wrong.
    pub cause: Cause,
}

impl Failure {
    /// `step` returned `errno`.
    pub const fn errno(step: Step, errno: Errno) -> Self {
        Failure { step, cause: Cause::Errno(errno) }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.cause)
    }
}

/// The control operations, in the order the builder makes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// [`ControlOps::xen_features`](super::ControlOps::xen_features).
    XenFeatures,
    /// [`ControlOps::free_pages`](super::ControlOps::free_pages).
    FreePages,
    /// [`ControlOps::create_domain`](super::ControlOps::create_domain).
    CreateDomain,
    /// [`ControlOps::set_max_mem`](super::ControlOps::set_max_mem).
    SetMaxMem,
    /// [`ControlOps::set_sched_credit`](super::ControlOps::set_sched_credit).
    SetSchedCredit,
    /// [`ControlOps::alloc_unbound`](super::ControlOps::alloc_unbound) for xenstore.
    AllocStoreEvtchn,
    /// [`ControlOps::alloc_unbound`](super::ControlOps::alloc_unbound) for the console.
    AllocConsoleEvtchn,
    /// [`ControlOps::populate_physmap`](super::ControlOps::populate_physmap).
    PopulatePhysmap,
    /// [`ControlOps::set_m2p`](super::ControlOps::set_m2p).
    SetM2p,
    /// [`ControlOps::shared_info_frame`](super::ControlOps::shared_info_frame).
    SharedInfoFrame,
    /// [`ControlOps::write_frame`](super::ControlOps::write_frame), writing the target.
    WriteFrame(Target),
    /// [`ControlOps::hypercall_init`](super::ControlOps::hypercall_init).
    HypercallInit,
    /// [`ControlOps::pin_l4`](super::ControlOps::pin_l4).
    PinL4,
    /// [`ControlOps::set_vcpu_context`](super::ControlOps::set_vcpu_context).
    SetVcpuContext,
}

impl Step {
    /// The operation's name: the [`ControlOps`](super::ControlOps) method's.
    pub const fn name(self) -> &'static str {
        match self {
            Step::XenFeatures => "xen_features",
            Step::FreePages => "free_pages",
            Step::CreateDomain => "create_domain",
            Step::SetMaxMem => "set_max_mem",
            Step::SetSchedCredit => "set_sched_credit",
            Step::AllocStoreEvtchn | Step::AllocConsoleEvtchn => "alloc_unbound",
            Step::PopulatePhysmap => "populate_physmap",
            Step::SetM2p => "set_m2p",
            Step::SharedInfoFrame => "shared_info_frame",
            Step::WriteFrame(_) => "write_frame",
            Step::HypercallInit => "hypercall_init",
            Step::PinL4 => "pin_l4",
            Step::SetVcpuContext => "set_vcpu_context",
        }
    }
}

impl fmt::Display for Step {
    /// The name, with what it was for where one name covers several steps:
    /// `alloc_unbound (console)`, `write_frame (page tables)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::AllocStoreEvtchn => write!(f, "{} (xenstore)", self.name()),
            Step::AllocConsoleEvtchn => write!(f, "{} (console)", self.name()),
            Step::WriteFrame(target) => write!(f, "{} ({target})", self.name()),
            _ => f.write_str(self.name()),
        }
    }
}

/// What a [`Step::WriteFrame`] was writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A page of an item of the start-of-day layout.
    Layout(Item),
    /// The shared-info page.
    SharedInfo,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Layout(item) => item.fmt(f),
            Target::SharedInfo => f.write_str("shared info"),
        }
    }
}

/// Why a control operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The hypervisor returned this errno.
    Errno(Errno),
    /// `populate_physmap` populated `done` of `asked` extents (the
    /// hypervisor ran out of memory, or the domain reached its maximum).
    Partial {
        /// Extents populated.
        done: usize,
        /// Extents asked for.
        asked: usize,
    },
    /// The hypervisor returned a machine frame number beyond what a page
    /// table entry can hold.
    BadMfn(u64),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Cause::Errno(e) => Described(e).fmt(f),
            Cause::Partial { done, asked } => write!(f, "out of memory (populated {done} of {asked} pages)"),
            Cause::BadMfn(mfn) => {
                write!(f, "the hypervisor returned machine frame {mfn:#x}, beyond the largest a page table can hold")
            }
        }
    }
}

/// An errno as a phrase and its name: `out of memory (-ENOMEM)`.
struct Described(Errno);

impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self.0 {
            Errno::EPERM => "operation not permitted",
            Errno::ENOENT => "not found",
            Errno::ESRCH => "no such domain",
            Errno::EIO => "I/O error",
            Errno::E2BIG => "too big",
            Errno::EAGAIN => "try again",
            Errno::ENOMEM => "out of memory",
            Errno::EACCES => "permission denied",
            Errno::EFAULT => "bad address",
            Errno::EBUSY => "busy",
            Errno::EEXIST => "already exists",
            Errno::EINVAL => "invalid argument",
            Errno::ENOSPC => "no space left",
            Errno::ERANGE => "out of range",
            Errno::ENOSYS => "not implemented",
            Errno::EOPNOTSUPP => "not supported",
            Errno::ETIMEDOUT => "timed out",
            _ => "failed",
        };
        write!(f, "{text} (-{})", self.0.name())
    }
}

/// A number of pages as MiB when whole, else KiB.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(PAGES_PER_MIB) {
            write!(f, "{} MiB", self.0 / PAGES_PER_MIB)
        } else {
            write!(f, "{} KiB", self.0.saturating_mul(4))
        }
    }
}
