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

/// Reads a `T` at `base + offset` in the mapped page, volatile (the
/// hypervisor updates it).
fn read_at<T: Copy>(base: *const u8, offset: usize) -> T {
    let at = base.wrapping_add(offset).cast::<T>();
    // SAFETY: callers pass the mapped shared-info page and the offset of an
    // aligned field of type T inside it; the page stays mapped for the
    // domain's life.
    unsafe { at.read_volatile() }
}

/// Reads vCPU 0's time record under the version protocol (retrying while
/// the hypervisor updates it, boundedly), if shared_info is mapped.
pub fn vcpu0_time() -> Option<abi::shared_info::VcpuTimeInfo> {
    use abi::shared_info::VcpuTimeInfo;
    let base = vcpu0_field(offset_of!(VcpuInfo, time))?;
    for _ in 0..1000 {
        let first: u32 = read_at(base, offset_of!(VcpuTimeInfo, version));
        let record: VcpuTimeInfo = read_at(base, 0);
        let again: u32 = read_at(base, offset_of!(VcpuTimeInfo, version));
        if first.is_multiple_of(2) && first == again {
            return Some(record);
        }
    }
    None
}

/// The wall clock at system time 0, in seconds since the Unix epoch, read
/// under its version protocol, if shared_info is mapped.
pub fn wallclock_seconds() -> Option<u64> {
    let base = page()?.cast::<u8>();
    for _ in 0..1000 {
        let v1: u32 = read_at(base, offset_of!(SharedInfo, wc_version));
        let sec: u32 = read_at(base, offset_of!(SharedInfo, wc_sec));
        let hi: u32 = read_at(base, offset_of!(SharedInfo, wc_sec_hi));
        let v2: u32 = read_at(base, offset_of!(SharedInfo, wc_version));
        if v1.is_multiple_of(2) && v1 == v2 {
            return Some(u64::from(sec) | (u64::from(hi) << 32));
        }
    }
    None
}
