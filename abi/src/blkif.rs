//! The PV block device protocol (`io/blkif.h`) and the xenbus states both
//! ends step through (`io/xenbus.h`).
//!
//! # The protocol, for guest authors
//!
//! A frontend (the guest's disk driver) and a backend (in the domain that
//! holds the disk) share one ring page of [`BlkifRequest`]s and
//! [`BlkifResponse`]s ([`BlkifSring`], [`BLKIF_RING_SIZE`] = 32 entries in a
//! 4 KiB page) and an event channel. They find each other in xenstore:
//!
//! | node | written by | value |
//! | --- | --- | --- |
//! | `<front>/backend`, `<front>/backend-id` | toolstack | the backend's directory and domain |
//! | `<back>/frontend`, `<back>/frontend-id` | toolstack | the frontend's directory and domain |
//! | `<back>/sectors`, `<back>/sector-size`, `<back>/info` | backend | disk size in 512-byte sectors, [`BLKIF_SECTOR_SIZE`], `VDISK_*` flags |
//! | `<front>/ring-ref`, `<front>/event-channel`, `<front>/protocol` | frontend | the ring's grant reference, its unbound port, [`BLKIF_PROTOCOL_X86_64`] |
//! | `<front>/state`, `<back>/state` | each end | a [`XenbusState`] |
//!
//! where `<front>` is `/local/domain/<domid>/device/vbd/<devid>` and
//! `<back>` is `/local/domain/<backend>/backend/vbd/<domid>/<devid>`. The
//! backend goes to `InitWait` once it has published the disk; the frontend
//! reads the disk's size, grants the ring, allocates the port, writes
//! them and goes to `Initialised`; the backend maps the ring, binds the
//! port and goes to `Connected`, and so does the frontend.
//!
//! A request names up to [`BLKIF_MAX_SEGMENTS_PER_REQUEST`] segments, each a
//! granted page and the sectors `first_sect..=last_sect` of it (eight
//! 512-byte sectors to a page); `sector_number` is the disk address of the
//! first, in 512-byte units whatever the disk's sector size. The response
//! carries the request's `id` back with a `BLKIF_RSP_*` status.

use crate::ring::{ring_size, Sring};

/// `operation`: read from the disk into the segments.
pub const BLKIF_OP_READ: u8 = 0;
/// `operation`: write the segments to the disk.
pub const BLKIF_OP_WRITE: u8 = 1;
/// `operation`: write with a barrier (`feature-barrier`).
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
/// `operation`: flush the disk's write cache (`feature-flush-cache`).
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;
/// `operation`: discard sectors (`feature-discard`).
pub const BLKIF_OP_DISCARD: u8 = 5;
/// `operation`: segments in indirect pages (`feature-max-indirect-segments`).
pub const BLKIF_OP_INDIRECT: u8 = 6;

/// Most segments one request names.
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: u8 = 11;

/// `status`: done.
pub const BLKIF_RSP_OKAY: i16 = 0;
/// `status`: failed.
pub const BLKIF_RSP_ERROR: i16 = -1;
/// `status`: the operation is not supported.
pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;

/// `info` bit: a CD-ROM.
pub const VDISK_CDROM: u32 = 1;
/// `info` bit: removable media.
pub const VDISK_REMOVABLE: u32 = 2;
/// `info` bit: read-only.
pub const VDISK_READONLY: u32 = 4;

/// Bytes of the sectors `sector_number`, `first_sect` and `last_sect`
/// count, whatever the disk's own sector size.
pub const BLKIF_SECTOR_SIZE: u32 = 512;
/// Sectors in one segment's page.
pub const BLKIF_SECTORS_PER_PAGE: u8 = 8;

/// The `protocol` a 64-bit x86 frontend writes (`XEN_IO_PROTO_ABI_X86_64`).
pub const BLKIF_PROTOCOL_X86_64: &str = "x86_64-abi";

/// A request's segment (`struct blkif_request_segment`): sectors
/// `first_sect..=last_sect` of the page granted as `gref`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct BlkifRequestSegment {
    /// The page's grant reference.
    pub gref: u32,
    /// First sector of the page in the transfer (0..=7).
    pub first_sect: u8,
    /// Last sector of the page in the transfer (`first_sect`..=7).
    pub last_sect: u8,
    /// Padding.
    pub _pad0: [u8; 2],
}

assert_layout!(BlkifRequestSegment, size = 8, align = 4, { gref @ 0, first_sect @ 4, last_sect @ 5 });

/// A request (`struct blkif_request`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct BlkifRequest {
    /// `BLKIF_OP_*`.
    pub operation: u8,
    /// Segments in use (0 for a flush).
    pub nr_segments: u8,
    /// The device (unused by single-device frontends).
    pub handle: u16,
    /// Padding.
    pub _pad0: [u8; 4],
    /// Echoed in the response.
    pub id: u64,
    /// The first sector, in 512-byte units.
    pub sector_number: u64,
    /// The segments; only the first `nr_segments` count.
    pub seg: [BlkifRequestSegment; BLKIF_MAX_SEGMENTS_PER_REQUEST as usize],
}

assert_layout!(BlkifRequest, size = 112, align = 8, {
    operation @ 0, nr_segments @ 1, handle @ 2, id @ 8, sector_number @ 16, seg @ 24,
});

/// A response (`struct blkif_response`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct BlkifResponse {
    /// The request's `id`.
    pub id: u64,
    /// The request's `operation`.
    pub operation: u8,
    /// Padding.
    pub _pad0: u8,
    /// `BLKIF_RSP_*`.
    pub status: i16,
    /// Padding.
    pub _pad1: u32,
}

assert_layout!(BlkifResponse, size = 16, align = 8, { id @ 0, operation @ 8, status @ 10 });

// The one unsafe thing here: declaring the entries plain data.
#[allow(unsafe_code)]
mod entries {
    use super::{BlkifRequest, BlkifRequestSegment, BlkifResponse};
    use crate::ring::RingEntry;

    // SAFETY: integers and arrays of integers, padding spelled as fields:
    // every byte belongs to a field and every pattern is a valid value.
    unsafe impl RingEntry for BlkifRequestSegment {}
    // SAFETY: as for `BlkifRequestSegment`.
    unsafe impl RingEntry for BlkifRequest {}
    // SAFETY: as for `BlkifRequestSegment`.
    unsafe impl RingEntry for BlkifResponse {}
}

/// The blkif shared ring (`struct blkif_sring`).
pub type BlkifSring<'a> = Sring<'a, BlkifRequest, BlkifResponse>;

/// Entries in a one-page blkif ring (`__CONST_RING_SIZE(blkif, 4096)`).
pub const BLKIF_RING_SIZE: u32 = ring_size(4096, 112);

/// A device's xenbus state (`enum xenbus_state`), written as a decimal
/// number to `<dir>/state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum XenbusState {
    /// Nothing yet.
    Unknown = 0,
    /// The toolstack made the device; the end is starting.
    Initialising = 1,
    /// The backend published what the frontend needs and waits for it.
    InitWait = 2,
    /// The frontend published its ring and port.
    Initialised = 3,
    /// Both ends are talking.
    Connected = 4,
    /// The end is going away.
    Closing = 5,
    /// The end is gone.
    Closed = 6,
    /// Reconfiguring (netback).
    Reconfiguring = 7,
    /// Reconfigured (netback).
    Reconfigured = 8,
}

impl XenbusState {
    /// The state a node's value names (`"4"`), if it names one.
    pub fn parse(value: &[u8]) -> Option<XenbusState> {
        let n: u32 = core::str::from_utf8(value).ok()?.trim_end_matches('\0').trim().parse().ok()?;
        Some(match n {
            0 => XenbusState::Unknown,
            1 => XenbusState::Initialising,
            2 => XenbusState::InitWait,
            3 => XenbusState::Initialised,
            4 => XenbusState::Connected,
            5 => XenbusState::Closing,
            6 => XenbusState::Closed,
            7 => XenbusState::Reconfiguring,
            8 => XenbusState::Reconfigured,
            _ => return None,
        })
    }

    /// The node's value for this state (`"4"`).
    pub const fn value(self) -> &'static str {
        match self {
            XenbusState::Unknown => "0",
            XenbusState::Initialising => "1",
            XenbusState::InitWait => "2",
            XenbusState::Initialised => "3",
            XenbusState::Connected => "4",
            XenbusState::Closing => "5",
            XenbusState::Closed => "6",
            XenbusState::Reconfiguring => "7",
            XenbusState::Reconfigured => "8",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_holds_32_requests() {
        assert_eq!(BLKIF_RING_SIZE, 32);
        assert_eq!(BlkifSring::ENTRY_SIZE, 112);
    }

    #[test]
    fn states_round_trip_through_their_values() {
        for n in 0..=8u32 {
            let s = XenbusState::parse(n.to_string().as_bytes()).unwrap();
            assert_eq!(s as u32, n);
            assert_eq!(XenbusState::parse(s.value().as_bytes()), Some(s));
        }
        assert_eq!(XenbusState::parse(b"4\0"), Some(XenbusState::Connected));
        assert_eq!(XenbusState::parse(b"9"), None);
        assert_eq!(XenbusState::parse(b"x"), None);
        assert_eq!(XenbusState::parse(b""), None);
    }
}
