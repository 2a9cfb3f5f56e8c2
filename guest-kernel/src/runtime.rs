//! Start, stop and panic: from `_start` to the workload's `main`, and the
//! ways out.

use crate::boot::check_start_info;
use crate::hypercall::{self, hv};
use crate::layout::is_page_aligned;
use crate::{entry, println};
use abi::sched::ShutdownReason;
use abi::start_info::StartInfo;
use core::sync::atomic::{AtomicU64, Ordering};

static START_INFO_VA: AtomicU64 = AtomicU64::new(0);

extern "Rust" {
    /// The workload's entry point, defined by [`crate::entry!`].
    fn __guest_kernel_main() -> !;
}

/// Called by `_start` on the kernel stack with the `start_info` address
/// the domain builder passed in `rsi`.
pub(crate) extern "C" fn rust_start(start_info_va: u64) -> ! {
    hypercall::init();
    if start_info_va == 0 || !is_page_aligned(start_info_va) {
        println!("FATAL: start_info address {start_info_va:#x} in rsi is not a page");
        shutdown(ShutdownReason::Crash);
    }
    START_INFO_VA.store(start_info_va, Ordering::Relaxed);
    // SAFETY: the binary defines this with `entry!`, which gives it this
    // exact signature.
    unsafe { __guest_kernel_main() }
}

/// The virtual address of the `start_info` page.
pub fn start_info_va() -> u64 {
    START_INFO_VA.load(Ordering::Relaxed)
}

/// The `start_info` page.
pub fn start_info() -> &'static StartInfo {
    // SAFETY: `rust_start` checked the address is a non-null page before
    // any caller could run; the domain builder maps that page read-write
    // for the domain's life and writes it only before we start.
    unsafe { &*(start_info_va() as *const StartInfo) }
}

/// Whether `start_info` is consistent with Xen's start-of-day layout.
pub fn check_boot() -> Result<(), &'static str> {
    let (_, image_end) = entry::image_range();
    check_start_info(start_info(), start_info_va(), image_end)
}

/// Stops the domain for `reason`. If the hypervisor refuses, says so and
/// spins, yielding.
pub fn shutdown(reason: ShutdownReason) -> ! {
    let result = hv().sched_shutdown(reason);
    println!("shutdown ({reason:?}) returned {result:?}; spinning");
    loop {
        let _ = hv().sched_yield();
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("PANIC: {info}");
    shutdown(ShutdownReason::Crash)
}

/// Names the workload's entry point: `guest_kernel::entry!(main)` with
/// `fn main() -> !`. The runtime calls it once the kernel runs on its own
/// stack with its hypercall transport chosen.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        extern "Rust" fn __guest_kernel_main() -> ! {
            let main: fn() -> ! = $main;
            main()
        }
    };
}
