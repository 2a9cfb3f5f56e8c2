//! The kernel's way into the hypervisor: through the hypercall page when
//! the hypervisor filled it, else by raw `syscall`.

use crate::entry;
use abi::guest::{Hypercall, HypercallPage, Hypercalls, Syscall};
use abi::hypercall::XEN_VERSION;
use abi::hypercall_page::HYPERCALL_PAGE_ENTRY_SIZE;
use core::sync::atomic::{AtomicBool, Ordering};

/// The transport the kernel uses.
#[derive(Clone, Copy, Debug)]
pub enum Transport {
    /// `call` into the hypercall page.
    Page(HypercallPage),
    /// Raw `syscall`.
    Syscall(Syscall),
}

impl Hypercall for Transport {
    unsafe fn hypercall(&self, nr: u64, args: [u64; 5]) -> u64 {
        match self {
            // SAFETY: forwarded to the caller.
            Transport::Page(p) => unsafe { p.hypercall(nr, args) },
            // SAFETY: forwarded to the caller.
            Transport::Syscall(s) => unsafe { s.hypercall(nr, args) },
        }
    }
}

static USE_PAGE: AtomicBool = AtomicBool::new(false);

/// The bytes the hypercall page's entry `nr` must start with: `push %rcx;
/// push %r11; mov $nr, %eax; syscall` (everything but `iret` continues
/// with `pop %r11; pop %rcx; ret`).
fn entry_prefix(nr: u32) -> [u8; 10] {
    let n = nr.to_le_bytes();
    [0x51, 0x41, 0x53, 0xb8, n[0], n[1], n[2], n[3], 0x0f, 0x05]
}

/// Whether the hypervisor filled the hypercall page: entry
/// `xen_version` starts as it must.
pub fn page_is_filled() -> bool {
    let at = XEN_VERSION as usize * HYPERCALL_PAGE_ENTRY_SIZE;
    entry::hypercall_page_bytes()[at..at + 10] == entry_prefix(XEN_VERSION as u32)
}

/// Chooses the transport: the page if it is filled. Called once at start.
pub(crate) fn init() {
    USE_PAGE.store(page_is_filled(), Ordering::Relaxed);
}

/// Whether hypercalls go through the page.
pub fn uses_page() -> bool {
    USE_PAGE.load(Ordering::Relaxed)
}

/// The kernel's hypercalls.
pub fn hv() -> Hypercalls<Transport> {
    if uses_page() {
        // SAFETY: this image is a PV guest kernel and `init` checked that
        // the hypervisor filled the page at the HYPERCALL_PAGE address.
        Hypercalls::new(Transport::Page(unsafe { HypercallPage::new(entry::hypercall_page_addr()) }))
    } else {
        Hypercalls::new(Transport::Syscall(raw_syscall()))
    }
}

/// The raw `syscall` transport.
pub fn raw_syscall() -> Syscall {
    // SAFETY: this image runs only as a PV guest kernel.
    unsafe { Syscall::new() }
}

/// The hypercall-page transport, if the page is filled.
pub fn page() -> Option<HypercallPage> {
    // SAFETY: as in `hv`: checked filled, and this is a PV guest kernel.
    page_is_filled().then(|| unsafe { HypercallPage::new(entry::hypercall_page_addr()) })
}
