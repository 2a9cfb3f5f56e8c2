//! Guest memory access: every guest pointer goes through here.
//!
//! A guest virtual address is a [`GuestPtr`]: it cannot be dereferenced,
//! only copied through a [`GuestMemory`], whose operations are fallible.
//! On the machine the copy runs with the guest's page tables loaded and
//! turns a fault into [`Fault`]; in host tests a fake memory stands in.
//! Either way, a range that touches the hypervisor's reserved slots is
//! refused before any access, so a guest cannot make the hypervisor read or
//! write its own memory on the guest's behalf.

use crate::layout::{is_canonical, HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START};

/// A guest virtual address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestPtr(pub u64);

impl GuestPtr {
    /// The address `bytes` further on (wrapping; ranges are checked on use).
    pub const fn add(self, bytes: u64) -> GuestPtr {
        GuestPtr(self.0.wrapping_add(bytes))
    }

    /// Whether this is the null pointer.
    pub const fn is_null(self) -> bool {
        self.0 == 0
    }
}

/// A guest access that failed: the range is not the guest's, or not mapped
/// (or not writable) in its page tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The first address that could not be accessed (as far as known).
    pub addr: u64,
}

/// Whether `[addr, addr + len)` lies wholly in guest-owned address space:
/// canonical, not wrapping, and clear of the hypervisor's slots.
pub const fn range_ok(addr: u64, len: u64) -> bool {
    if len == 0 {
        return true;
    }
    let Some(end) = addr.checked_add(len - 1) else {
        return false;
    };
    is_canonical(addr)
        && is_canonical(end)
        // Both ends in the same half: a range crossing the non-canonical
        // hole would have one end in each.
        && (addr >> 63) == (end >> 63)
        && !(addr < HYPERVISOR_VIRT_END && end >= HYPERVISOR_VIRT_START)
}

/// Copies to and from a guest's address space.
pub trait GuestMemory {
    /// Copies `buf.len()` bytes from the guest. The range has been checked
    /// with [`range_ok`] by the caller ([`read`] does so).
    fn read_raw(&mut self, src: GuestPtr, buf: &mut [u8]) -> Result<(), Fault>;
    /// Copies `data` to the guest. The range has been checked likewise.
    fn write_raw(&mut self, dst: GuestPtr, data: &[u8]) -> Result<(), Fault>;
}

/// Copies `buf.len()` bytes from guest address `src`.
pub fn read<M: GuestMemory + ?Sized>(mem: &mut M, src: GuestPtr, buf: &mut [u8]) -> Result<(), Fault> {
    if !range_ok(src.0, buf.len() as u64) {
        return Err(Fault { addr: src.0 });
    }
    mem.read_raw(src, buf)
}

/// Copies `data` to guest address `dst`.
pub fn write<M: GuestMemory + ?Sized>(mem: &mut M, dst: GuestPtr, data: &[u8]) -> Result<(), Fault> {
    if !range_ok(dst.0, data.len() as u64) {
        return Err(Fault { addr: dst.0 });
    }
    mem.write_raw(dst, data)
}

/// Plain-old-data ABI types that may be copied from guest bytes: every bit
/// pattern is a valid value and there is no padding the guest could not set.
///
/// # Safety
/// Implementors must be `repr(C)` (or transparent) types made only of
/// integers and arrays of integers, with no implicit padding.
pub unsafe trait Pod: Copy + 'static {}

// SAFETY: for this and all below: integers, and abi structs, which are
// repr(C) integer-only types whose padding is explicit (abi's layout test
// enforces no implicit padding).
unsafe impl Pod for u8 {}
// SAFETY: as above.
unsafe impl Pod for u16 {}
// SAFETY: as above.
unsafe impl Pod for u32 {}
// SAFETY: as above.
unsafe impl Pod for u64 {}
// SAFETY: as above.
unsafe impl Pod for abi::arch::TrapInfo {}
// SAFETY: as above.
unsafe impl Pod for abi::arch::IretContext {}
// SAFETY: as above.
unsafe impl Pod for abi::callback::CallbackRegister {}
// SAFETY: as above.
unsafe impl Pod for abi::callback::CallbackUnregister {}
// SAFETY: as above.
unsafe impl Pod for abi::sched::XenPlatformParameters {}
// SAFETY: as above.
unsafe impl Pod for abi::sched::SchedShutdown {}
// SAFETY: as above.
unsafe impl Pod for abi::physdev::PhysdevSetIopl {}
// SAFETY: as above.
unsafe impl Pod for abi::sched::XenFeatureInfo {}
// SAFETY: as above.
unsafe impl Pod for abi::start_info::StartInfo {}
// SAFETY: as above.
unsafe impl Pod for abi::mm::MulticallEntry {}
// SAFETY: as above.
unsafe impl Pod for abi::mm::MmuextOp {}
// SAFETY: as above.
unsafe impl Pod for abi::mm::MmuUpdate {}
// SAFETY: as above.
unsafe impl Pod for abi::mm::XenMemoryReservation {}
// SAFETY: as above.
unsafe impl Pod for abi::mm::XenMemoryMap {}
// SAFETY: as above.
unsafe impl Pod for abi::mm::XenMachphysMfnList {}
// SAFETY: as above.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

/// The bytes of a plain-old-data value.
pub fn bytes_of<T: Pod>(value: &T) -> &[u8] {
    // SAFETY: T: Pod has no padding, so all its bytes are initialised, and
    // the slice borrows `value`.
    unsafe { core::slice::from_raw_parts((value as *const T).cast::<u8>(), core::mem::size_of::<T>()) }
}

/// Reads one `T` from the guest.
pub fn read_obj<T: Pod, M: GuestMemory + ?Sized>(mem: &mut M, src: GuestPtr) -> Result<T, Fault> {
    let mut value = core::mem::MaybeUninit::<T>::zeroed();
    // SAFETY: the bytes of a zeroed T are initialised, and T: Pod so any
    // bytes the guest supplies leave a valid T.
    let bytes = unsafe { core::slice::from_raw_parts_mut(value.as_mut_ptr().cast::<u8>(), core::mem::size_of::<T>()) };
    read(mem, src, bytes)?;
    // SAFETY: fully initialised above (zeroed, then overwritten).
    Ok(unsafe { value.assume_init() })
}

/// Writes one `T` to the guest.
pub fn write_obj<T: Pod, M: GuestMemory + ?Sized>(mem: &mut M, dst: GuestPtr, value: &T) -> Result<(), Fault> {
    write(mem, dst, bytes_of(value))
}

/// A fake guest memory for host tests: one region of bytes at a base
/// address; the pages listed as read-only refuse writes.
#[cfg(test)]
pub mod fake {
    use super::*;

    /// See the module doc.
    #[derive(Debug)]
    pub struct FakeMemory {
        /// Guest address of `bytes[0]`.
        pub base: u64,
        /// The memory.
        pub bytes: Vec<u8>,
        /// Page-aligned guest addresses of read-only pages.
        pub read_only: Vec<u64>,
    }

    impl FakeMemory {
        /// `len` zero bytes at `base`.
        pub fn new(base: u64, len: usize) -> FakeMemory {
            FakeMemory { base, bytes: vec![0; len], read_only: Vec::new() }
        }

        fn index(&self, at: GuestPtr, len: usize) -> Result<usize, Fault> {
            let off = at.0.checked_sub(self.base).ok_or(Fault { addr: at.0 })? as usize;
            if off.checked_add(len).is_some_and(|end| end <= self.bytes.len()) {
                Ok(off)
            } else {
                Err(Fault { addr: at.0 })
            }
        }
    }

    impl GuestMemory for FakeMemory {
        fn read_raw(&mut self, src: GuestPtr, buf: &mut [u8]) -> Result<(), Fault> {
            let off = self.index(src, buf.len())?;
            buf.copy_from_slice(&self.bytes[off..off + buf.len()]);
            Ok(())
        }

        fn write_raw(&mut self, dst: GuestPtr, data: &[u8]) -> Result<(), Fault> {
            let off = self.index(dst, data.len())?;
            let (first, last) = (dst.0 & !0xfff, (dst.0 + data.len().max(1) as u64 - 1) & !0xfff);
            if let Some(ro) = self.read_only.iter().find(|p| (first..=last).contains(p)) {
                return Err(Fault { addr: *ro });
            }
            self.bytes[off..off + data.len()].copy_from_slice(data);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeMemory;
    use super::*;

    #[test]
    fn ranges_in_the_hypervisor_hole_or_non_canonical_are_refused() {
        assert!(range_ok(0x1000, 8));
        assert!(range_ok(0xffff_ffff_8000_0000, 4096));
        assert!(range_ok(0x0000_7fff_ffff_fff8, 8));
        assert!(!range_ok(0x0000_7fff_ffff_fff8, 9), "runs into the non-canonical hole");
        assert!(!range_ok(0xffff_8000_0000_0000, 1), "M2P / hypervisor");
        assert!(!range_ok(0xffff_87ff_ffff_fff0, 8), "hypervisor");
        assert!(!range_ok(0xffff_7fff_ffff_fff0, 0x20), "hole, then the hypervisor");
        assert!(range_ok(0xffff_8800_0000_0000, 8), "first guest byte of the upper half");
        assert!(!range_ok(u64::MAX - 3, 8), "wraps");
        assert!(range_ok(0xffff_8000_0000_0000, 0), "empty ranges touch nothing");
    }

    #[test]
    fn objects_round_trip_and_faults_are_reported() {
        let mut m = FakeMemory::new(0x10000, 0x2000);
        m.read_only.push(0x11000);
        write_obj(&mut m, GuestPtr(0x10010), &0x1122_3344_5566_7788u64).unwrap();
        assert_eq!(read_obj::<u64, _>(&mut m, GuestPtr(0x10010)).unwrap(), 0x1122_3344_5566_7788);
        assert_eq!(write_obj(&mut m, GuestPtr(0x10ffc), &0u64), Err(Fault { addr: 0x11000 }));
        assert!(read_obj::<u64, _>(&mut m, GuestPtr(0x11ffc)).is_err());
        assert!(read_obj::<u64, _>(&mut m, GuestPtr(0xffff_8000_0000_0000)).is_err());
    }
}
