//! The shared I/O ring layout (`io/ring.h`): a 64-byte header, then entries.
//!
//! A ring page holds a [`SringHeader`] followed by [`ring_size`] entries,
//! each the size of the larger of the ring's request and response types.
//! Indices are free-running `u32`s. The generic ring API comes later; this
//! module fixes the layout.

/// Bytes before the first entry of a shared ring.
pub const SRING_HEADER_SIZE: usize = 64;

/// The header of a shared ring page (`struct *_sring` up to `ring`; 64
/// bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct SringHeader {
    /// Frontend: requests produced so far.
    pub req_prod: u32,
    /// Backend: notify the backend when `req_prod` passes this.
    pub req_event: u32,
    /// Backend: responses produced so far.
    pub rsp_prod: u32,
    /// Frontend: notify the frontend when `rsp_prod` passes this.
    pub rsp_event: u32,
    /// Protocol-private bytes (netif `smartpoll_active`, tapif `msg`).
    pub pvt: [u8; 4],
    /// Padding to 64 bytes.
    pub pad: [u8; 44],
}

assert_layout!(SringHeader, size = SRING_HEADER_SIZE, align = 4, {
    req_prod @ 0, req_event @ 4, rsp_prod @ 8, rsp_event @ 12, pvt @ 16, pad @ 20,
});

impl SringHeader {
    /// A freshly initialised ring header (`SHARED_RING_INIT`): producers at
    /// 0, both event indices at 1.
    pub const fn new() -> Self {
        SringHeader { req_prod: 0, req_event: 1, rsp_prod: 0, rsp_event: 1, pvt: [0; 4], pad: [0; 44] }
    }
}

impl Default for SringHeader {
    fn default() -> Self {
        Self::new()
    }
}

/// Entries in a ring of `page_bytes` bytes whose entries are `entry_bytes`
/// each: what fits after the header, rounded down to a power of two (Xen's
/// `__RING_SIZE`). Zero if nothing fits or `entry_bytes` is zero.
pub const fn ring_size(page_bytes: u32, entry_bytes: u32) -> u32 {
    if entry_bytes == 0 || page_bytes <= SRING_HEADER_SIZE as u32 {
        return 0;
    }
    let fit = (page_bytes - SRING_HEADER_SIZE as u32) / entry_bytes;
    if fit == 0 {
        0
    } else {
        1 << (31 - fit.leading_zeros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_size_rounds_down_to_a_power_of_two() {
        // (4096 - 64) / 8 = 504 -> 256.
        assert_eq!(ring_size(4096, 8), 256);
        // (4096 - 64) / 4 = 1008 -> 512.
        assert_eq!(ring_size(4096, 4), 512);
        // blkif: 112-byte entries, 36 fit -> 32.
        assert_eq!(ring_size(4096, 112), 32);
        // netif tx: 12-byte entries, 336 fit -> 256.
        assert_eq!(ring_size(4096, 12), 256);
        // Exactly a power of two fits.
        assert_eq!(ring_size(64 + 4 * 16, 16), 4);
        assert_eq!(ring_size(4096, 4032), 1);
        // Multi-page rings.
        assert_eq!(ring_size(8192, 8), 512);
    }

    #[test]
    fn ring_size_degenerate_cases() {
        assert_eq!(ring_size(4096, 0), 0);
        assert_eq!(ring_size(64, 8), 0);
        assert_eq!(ring_size(0, 8), 0);
        assert_eq!(ring_size(4096, 4033), 0);
        assert_eq!(ring_size(u32::MAX, 1), 1 << 31);
    }

    #[test]
    fn new_header_arms_both_events() {
        let h = SringHeader::new();
        assert_eq!((h.req_prod, h.req_event, h.rsp_prod, h.rsp_event), (0, 1, 0, 1));
    }
}
