//! The shared-info page: mapped over a page of the image with
//! `update_va_mapping`, then read for vCPU 0's `vcpu_info` and the event
//! bitmaps.
//!
//! The domain builder does not map shared_info; `start_info.shared_info`
//! gives its machine address, and a PV guest maps it where it likes.
//! vCPU 0's `vcpu_info` is `vcpu_info[0]` of the page until the kernel
//! moves it with `VCPUOP_register_vcpu_info` ([`move_vcpu_info`]); the
//! readers here follow it.

use crate::entry;
use crate::hypercall::hv;
use crate::layout::pte;
use crate::upcall::Bitmaps;
use abi::mm::{UVMF_INVLPG, UVMF_LOCAL};
use abi::shared_info::{ArchVcpuInfo, SharedInfo, VcpuInfo};
use abi::Errno;
use core::mem::offset_of;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

static MAPPED: AtomicBool = AtomicBool::new(false);

/// Where vCPU 0's `vcpu_info` lives once moved out of the page (0: not
/// moved).
static MOVED_VCPU_INFO: AtomicU64 = AtomicU64::new(0);

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

/// Whether the shared-info page is mapped.
pub fn is_mapped() -> bool {
    MAPPED.load(Ordering::SeqCst)
}

fn page() -> Option<*const SharedInfo> {
    is_mapped().then(|| entry::shared_info_window() as *const SharedInfo)
}

/// The address of vCPU 0's `vcpu_info`: `vcpu_info[0]` in the page, or
/// where [`move_vcpu_info`] put it; `None` before the page is mapped.
pub fn vcpu0_info_addr() -> Option<u64> {
    let page = page()?;
    match MOVED_VCPU_INFO.load(Ordering::SeqCst) {
        0 => Some(page as u64 + offset_of!(SharedInfo, vcpu_info) as u64),
        moved => Some(moved),
    }
}

/// Records that vCPU 0's `vcpu_info` now lives at `addr` (after a
/// successful `VCPUOP_register_vcpu_info`).
///
/// # Safety
///
/// `addr` is the 64 bytes the hypervisor now maintains as vCPU 0's
/// `vcpu_info`: 8-aligned, mapped read-write for the domain's life and used
/// by nothing else.
pub unsafe fn move_vcpu_info(addr: u64) {
    MOVED_VCPU_INFO.store(addr, Ordering::SeqCst);
}

/// The address of vCPU 0's `vcpu_info` field at `offset` (within
/// `VcpuInfo`).
fn vcpu0_field(offset: usize) -> Option<*const u8> {
    vcpu0_info_addr().map(|a| (a as *const u8).wrapping_add(offset))
}

/// A reference to the `T` at `at` in shared memory.
///
/// # Safety
///
/// `at` is an aligned field of type `T` (or an atomic of its size) in the
/// mapped page or the live `vcpu_info`, both mapped read-write for the
/// domain's life; the hypervisor changes it only with atomic operations,
/// and atomics have the layout of the plain integers the ABI declares.
unsafe fn shared_ref<T>(at: *const u8) -> &'static T {
    // SAFETY: the caller's promise.
    unsafe { &*at.cast::<T>() }
}

/// vCPU 0's `evtchn_upcall_pending` and `evtchn_pending_sel` and the
/// domain's event bitmaps, as atomics, if the page is mapped.
pub fn bitmaps() -> Option<Bitmaps<'static>> {
    let page = page()?.cast::<u8>();
    let vcpu = vcpu0_info_addr()? as *const u8;
    // Offsets come from the ABI structs, so each field is aligned and
    // inside its object.
    let pending = page.wrapping_add(offset_of!(SharedInfo, evtchn_pending));
    let mask = page.wrapping_add(offset_of!(SharedInfo, evtchn_mask));
    let upcall_pending = vcpu.wrapping_add(offset_of!(VcpuInfo, evtchn_upcall_pending));
    let pending_sel = vcpu.wrapping_add(offset_of!(VcpuInfo, evtchn_pending_sel));
    Some(Bitmaps {
        // SAFETY: fields of the live vcpu_info and the mapped page.
        upcall_pending: unsafe { shared_ref(upcall_pending) },
        // SAFETY: as above.
        pending_sel: unsafe { shared_ref(pending_sel) },
        // SAFETY: as above.
        pending: unsafe { shared_ref(pending) },
        // SAFETY: as above.
        mask: unsafe { shared_ref(mask) },
    })
}

/// vCPU 0's `evtchn_upcall_mask` as an atomic, if the page is mapped.
pub fn vcpu0_upcall_mask_atomic() -> Option<&'static AtomicU8> {
    let at = vcpu0_field(offset_of!(VcpuInfo, evtchn_upcall_mask))?;
    // SAFETY: a byte of the live vcpu_info.
    Some(unsafe { shared_ref(at) })
}

/// vCPU 0's `arch.cr2`: the address of the last page fault bounced to
/// vCPU 0, if shared_info is mapped.
pub fn vcpu0_cr2() -> Option<u64> {
    let at = vcpu0_field(offset_of!(VcpuInfo, arch) + offset_of!(ArchVcpuInfo, cr2))?;
    // SAFETY: once mapped, the window holds the shared-info page for the
    // domain's life; cr2 is an aligned u64 in it, which the hypervisor
    // updates concurrently, hence the volatile read.
    Some(unsafe { at.cast::<u64>().read_volatile() })
}

/// vCPU 0's `evtchn_upcall_mask`, if shared_info is mapped.
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
    crate::time::time_record().map(|(t, _)| t)
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
