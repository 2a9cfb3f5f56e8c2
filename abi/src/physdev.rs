//! Physical-device operations (`physdev_op`, `xen/physdev.h`): the part a
//! PV kernel needs to reach I/O ports.
//!
//! A 64-bit PV kernel runs in ring 3, so `in`/`out` fault; the hypervisor
//! emulates them when the vCPU's virtual IOPL allows it (1 or more in
//! guest kernel mode, 3 in guest user mode) and the domain was given the
//! port. Ports the domain was not given read as all ones and ignore
//! writes. A kernel raises its virtual IOPL with [`PHYSDEVOP_SET_IOPL`].

/// `physdev_op`: set the calling vCPU's virtual IOPL ([`PhysdevSetIopl`]).
pub const PHYSDEVOP_SET_IOPL: u32 = 6;
/// `physdev_op`: set the calling vCPU's I/O-port bitmap (not offered).
pub const PHYSDEVOP_SET_IOBITMAP: u32 = 7;

/// `struct physdev_set_iopl`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct PhysdevSetIopl {
    /// The new virtual IOPL, 0 to 3.
    pub iopl: u32,
}

assert_layout!(PhysdevSetIopl, size = 4, align = 4, { iopl @ 0 });
