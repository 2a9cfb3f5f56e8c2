//! The PV console ring page (`io/console.h`).
//!
//! Indices are free-running `u32`s masked by the ring size. The guest writes
//! `out` and advances `out_prod`; the backend reads it and advances
//! `out_cons`. Input flows the other way through `in`. The
//! `console_io` hypercall numbers are in [`crate::sched`].

/// Size of [`XenconsInterface::in_`] (backend to guest).
pub const XENCONS_IN_SIZE: usize = 1024;
/// Size of [`XenconsInterface::out`] (guest to backend).
pub const XENCONS_OUT_SIZE: usize = 2048;

/// The index within a ring of `size` bytes (a power of two) that the
/// free-running index `idx` refers to (`MASK_XENCONS_IDX`).
pub const fn mask_xencons_idx(idx: u32, size: usize) -> usize {
    idx as usize & (size - 1)
}

/// `struct xencons_interface`: the console ring page's contents (3088 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct XenconsInterface {
    /// OUT (backend writes): input for the guest.
    pub in_: [u8; XENCONS_IN_SIZE],
    /// IN (guest writes): output from the guest.
    pub out: [u8; XENCONS_OUT_SIZE],
    /// Guest: input consumed so far.
    pub in_cons: u32,
    /// Backend: input produced so far.
    pub in_prod: u32,
    /// Backend: output consumed so far.
    pub out_cons: u32,
    /// Guest: output produced so far.
    pub out_prod: u32,
}

assert_layout!(XenconsInterface, size = 3088, align = 4, {
    in_ @ 0, out @ 1024, in_cons @ 3072, in_prod @ 3076, out_cons @ 3080, out_prod @ 3084,
});

impl XenconsInterface {
    /// An empty console ring.
    pub const fn zeroed() -> Self {
        XenconsInterface {
            in_: [0; XENCONS_IN_SIZE],
            out: [0; XENCONS_OUT_SIZE],
            in_cons: 0,
            in_prod: 0,
            out_cons: 0,
            out_prod: 0,
        }
    }
}

impl Default for XenconsInterface {
    fn default() -> Self {
        Self::zeroed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_wrap() {
        assert_eq!(mask_xencons_idx(2047, XENCONS_OUT_SIZE), 2047);
        assert_eq!(mask_xencons_idx(2048, XENCONS_OUT_SIZE), 0);
        assert_eq!(mask_xencons_idx(u32::MAX, XENCONS_IN_SIZE), 1023);
    }
}
