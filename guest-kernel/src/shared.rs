//! The shared-info page: mapped over a page of the image with
//! `update_va_mapping`, then read for `vcpu_info[0]`.
//!
//! The domain builder does not map shared_info; `start_info.shared_info`
//! gives its machine address, and a PV guest maps it where it likes.

use crate::entry;
use crate::hypercall::hv;
use crate::layout::pte;
use abi::mm::{UVMF_INVLPG, UVMF_LOCAL};
use abi::shared_info::{ArchVcpuInfo, SharedInfo, VcpuInfo};
use abi::Errno;
use core::mem::offset_of;
use core::sync::atomic::{AtomicBool, Ordering};

static MAPPED: AtomicBool = AtomicBool::new(false);

/// The page-table entry that maps the frame at machine address `maddr`
/// present, writable, accessed and dirty.
pub const fn pte_for(maddr: u64) -> u64 {
    (maddr & pte::ADDR_MASK) | pte::PRESENT | pte::RW | pte::ACCESSED | pte::DIRTY
}

/// Maps the shared-info page (machine address `maddr`) at the image's
/// shared-info window.
pub fn map(maddr: u64) -> Result<u64, Errno> {
    // SAFETY: the window is a page of .bss reserved for this mapping that
    // no Rust reference points into.
    let r = unsafe { hv().update_va_mapping(entry::shared_info_window(), pte_for(maddr), UVMF_INVLPG | UVMF_LOCAL) }?;
    MAPPED.store(true, Ordering::SeqCst);
    Ok(r)
}

fn page() -> Option<*const SharedInfo> {
    MAPPED.load(Ordering::SeqCst).then(|| entry::shared_info_window() as *const SharedInfo)
}

/// The address of `vcpu_info[0]`'s field at `offset` (within `VcpuInfo`).
fn vcpu0_field(offset: usize) -> Option<*const u8> {
    page().map(|p| p.cast::<u8>().wrapping_add(offset_of!(SharedInfo, vcpu_info) + offset))
}

/// `vcpu_info[0].arch.cr2`: the address of the last page fault bounced to
/// vCPU 0, if shared_info is mapped.
pub fn vcpu0_cr2() -> Option<u64> {
    let at = vcpu0_field(offset_of!(VcpuInfo, arch) + offset_of!(ArchVcpuInfo, cr2))?;
    // SAFETY: once mapped, the window holds the shared-info page for the
    // domain's life; cr2 is an aligned u64 in it, which the hypervisor
    // updates concurrently, hence the volatile read.
    Some(unsafe { at.cast::<u64>().read_volatile() })
}

/// `vcpu_info[0].evtchn_upcall_mask`, if shared_info is mapped.
pub fn vcpu0_upcall_mask() -> Option<u8> {
    let at = vcpu0_field(offset_of!(VcpuInfo, evtchn_upcall_mask))?;
    // SAFETY: as in `vcpu0_cr2`, for a byte.
    Some(unsafe { at.read_volatile() })
}

/// Reads vCPU 0's time record under the version protocol (retrying while
/// the hypervisor updates it, boundedly), if shared_info is mapped.
pub fn vcpu0_time() -> Option<abi::shared_info::VcpuTimeInfo> {
    let at = vcpu0_field(offset_of!(VcpuInfo, time))?.cast::<abi::shared_info::VcpuTimeInfo>();
    for _ in 0..1000 {
        // SAFETY: as in `vcpu0_cr2`: an aligned record in the mapped page,
        // read volatile because the hypervisor updates it.
        let first = unsafe { core::ptr::addr_of!((*at).version).read_volatile() };
        // SAFETY: as above.
        let record = unsafe { at.read_volatile() };
        // SAFETY: as above.
        let again = unsafe { core::ptr::addr_of!((*at).version).read_volatile() };
        if first % 2 == 0 && first == again {
            return Some(record);
        }
    }
    None
}

/// The wall clock at system time 0, in seconds since the Unix epoch, read
/// under its version protocol, if shared_info is mapped.
pub fn wallclock_seconds() -> Option<u64> {
    let p = page()?;
    for _ in 0..1000 {
        // SAFETY: as in `vcpu0_cr2`, for the wall-clock fields.
        let (v1, sec, hi, v2) = unsafe {
            (
                core::ptr::addr_of!((*p).wc_version).read_volatile(),
                core::ptr::addr_of!((*p).wc_sec).read_volatile(),
                core::ptr::addr_of!((*p).wc_sec_hi).read_volatile(),
                core::ptr::addr_of!((*p).wc_version).read_volatile(),
            )
        };
        if v1 % 2 == 0 && v1 == v2 {
            return Some(u64::from(sec) | (u64::from(hi) << 32));
        }
    }
    None
}
