//! Grant tables: letting another domain map or copy a page (`grant_table_op`).
//!
//! A domain grants access by filling a [`GrantEntryV1`] in its grant table;
//! the grantee names it by `(domid, ref)` in `GNTTABOP_*` operations.

/// Grant entries reserved for the toolstack (kept across grant-table resets).
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
/// Reserved grant entry: the console ring.
pub const GNTTAB_RESERVED_CONSOLE: u32 = 0;
/// Reserved grant entry: the xenstore ring.
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;

/// `grant_entry.flags` type: the entry grants nothing.
pub const GTF_INVALID: u16 = 0;
/// `grant_entry.flags` type: `domid` may map or copy `frame`.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `grant_entry.flags` type: `domid` may transfer a page to this slot.
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
/// `grant_entry.flags` type: transitive grant (v2 only).
pub const GTF_TRANSITIVE: u16 = 3;
/// `grant_entry.flags`: mask of the type.
pub const GTF_TYPE_MASK: u16 = 3;
/// `grant_entry.flags`: the grantee may only read.
pub const GTF_READONLY: u16 = 1 << 2;
/// `grant_entry.flags` (set by the hypervisor): the grantee is reading.
pub const GTF_READING: u16 = 1 << 3;
/// `grant_entry.flags` (set by the hypervisor): the grantee is writing.
pub const GTF_WRITING: u16 = 1 << 4;
/// `grant_entry.flags`: map with PWT.
pub const GTF_PWT: u16 = 1 << 5;
/// `grant_entry.flags`: map with PCD.
pub const GTF_PCD: u16 = 1 << 6;
/// `grant_entry.flags`: map with PAT.
pub const GTF_PAT: u16 = 1 << 7;
/// `grant_entry.flags`: sub-page grant (v2 only).
pub const GTF_SUB_PAGE: u16 = 1 << 8;
/// `grant_entry.flags` (transfer): the transfer is committed.
pub const GTF_TRANSFER_COMMITTED: u16 = 1 << 2;
/// `grant_entry.flags` (transfer): the transfer is complete.
pub const GTF_TRANSFER_COMPLETED: u16 = 1 << 3;

/// `grant_table_op`: map granted pages ([`GnttabMapGrantRef`]).
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
/// `grant_table_op`: unmap granted pages ([`GnttabUnmapGrantRef`]).
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
/// `grant_table_op`: set up and locate the grant table ([`GnttabSetupTable`]).
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
/// `grant_table_op`: dump the table to the console (debug).
pub const GNTTABOP_DUMP_TABLE: u32 = 3;
/// `grant_table_op`: transfer page ownership.
pub const GNTTABOP_TRANSFER: u32 = 4;
/// `grant_table_op`: copy between granted pages ([`GnttabCopy`]).
pub const GNTTABOP_COPY: u32 = 5;
/// `grant_table_op`: query the table size ([`GnttabQuerySize`]).
pub const GNTTABOP_QUERY_SIZE: u32 = 6;
/// `grant_table_op`: unmap and replace with another mapping.
pub const GNTTABOP_UNMAP_AND_REPLACE: u32 = 7;
/// `grant_table_op`: select the grant-table version ([`GnttabSetVersion`]).
pub const GNTTABOP_SET_VERSION: u32 = 8;
/// `grant_table_op`: locate the v2 status frames.
pub const GNTTABOP_GET_STATUS_FRAMES: u32 = 9;
/// `grant_table_op`: read the grant-table version.
pub const GNTTABOP_GET_VERSION: u32 = 10;
/// `grant_table_op`: swap two grant entries.
pub const GNTTABOP_SWAP_GRANT_REF: u32 = 11;
/// `grant_table_op`: cache maintenance on granted pages (Arm).
pub const GNTTABOP_CACHE_FLUSH: u32 = 12;

/// `gnttab_map_grant_ref.flags`: map for device (I/O MMU) access.
pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
/// `gnttab_map_grant_ref.flags`: map for CPU access at `host_addr`.
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// `gnttab_map_grant_ref.flags`: map read-only.
pub const GNTMAP_READONLY: u32 = 1 << 2;
/// `gnttab_map_grant_ref.flags`: the mapping is a user (application) one.
pub const GNTMAP_APPLICATION_MAP: u32 = 1 << 3;
/// `gnttab_map_grant_ref.flags`: `host_addr` is the machine address of the
/// PTE to update.
pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4;
/// `gnttab_map_grant_ref.flags`: the first of the bits the guest may use
/// for itself (`_GNTMAP_guest_avail0`); the lowest three of them become
/// the mapping's PTE bits 9–11.
pub const GNTMAP_GUEST_AVAIL0: u32 = 16;
/// `gnttab_map_grant_ref.flags`: bits the guest may use for itself.
pub const GNTMAP_GUEST_AVAIL_MASK: u32 = 0xffff_0000;

/// `gnttab_copy.flags`: `source` names a grant reference, not a frame.
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// `gnttab_copy.flags`: `dest` names a grant reference, not a frame.
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// Grant status: success.
pub const GNTST_OKAY: i16 = 0;
/// Grant status: undefined error.
pub const GNTST_GENERAL_ERROR: i16 = -1;
/// Grant status: unrecognised domain id.
pub const GNTST_BAD_DOMAIN: i16 = -2;
/// Grant status: unrecognised or inappropriate grant reference.
pub const GNTST_BAD_GNTREF: i16 = -3;
/// Grant status: unrecognised or inappropriate handle.
pub const GNTST_BAD_HANDLE: i16 = -4;
/// Grant status: inappropriate virtual address to map.
pub const GNTST_BAD_VIRT_ADDR: i16 = -5;
/// Grant status: inappropriate device address to unmap.
pub const GNTST_BAD_DEV_ADDR: i16 = -6;
/// Grant status: out of space in the I/O MMU.
pub const GNTST_NO_DEVICE_SPACE: i16 = -7;
/// Grant status: not enough privilege.
pub const GNTST_PERMISSION_DENIED: i16 = -8;
/// Grant status: the page was invalid for the operation.
pub const GNTST_BAD_PAGE: i16 = -9;
/// Grant status: copy arguments cross a page boundary.
pub const GNTST_BAD_COPY_ARG: i16 = -10;
/// Grant status: transfer page address too large.
pub const GNTST_ADDRESS_TOO_BIG: i16 = -11;
/// Grant status: not done; try again.
pub const GNTST_EAGAIN: i16 = -12;
/// Grant status: out of space (handles etc.).
pub const GNTST_NO_SPACE: i16 = -13;

/// `struct grant_entry_v1`: one entry of a version-1 grant table (8 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct GrantEntryV1 {
    /// `GTF_*` type and flags (written by granter and hypervisor).
    pub flags: u16,
    /// The domain being granted access (written by the granter).
    pub domid: u16,
    /// The granted frame, or the frame transferred (granter / hypervisor).
    pub frame: u32,
}

assert_layout!(GrantEntryV1, size = 8, align = 4, { flags @ 0, domid @ 2, frame @ 4 });

/// `struct gnttab_map_grant_ref` (32 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct GnttabMapGrantRef {
    /// IN: where to map (a virtual address, or a PTE's machine address with
    /// `GNTMAP_CONTAINS_PTE`).
    pub host_addr: u64,
    /// IN: `GNTMAP_*`.
    pub flags: u32,
    /// IN: grant reference.
    pub ref_: u32,
    /// IN: granting domain.
    pub dom: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT: handle for unmapping.
    pub handle: u32,
    /// OUT: bus address for device mappings.
    pub dev_bus_addr: u64,
}

assert_layout!(GnttabMapGrantRef, size = 32, align = 8, {
    host_addr @ 0, flags @ 8, ref_ @ 12, dom @ 16, status @ 18, handle @ 20,
    dev_bus_addr @ 24,
});

/// `struct gnttab_unmap_grant_ref` (24 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct GnttabUnmapGrantRef {
    /// IN: the mapping's address (as given to map).
    pub host_addr: u64,
    /// IN: the device mapping's bus address.
    pub dev_bus_addr: u64,
    /// IN: handle from the map.
    pub handle: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding (implicit in C).
    pub _pad0: u16,
}

assert_layout!(GnttabUnmapGrantRef, size = 24, align = 8, {
    host_addr @ 0, dev_bus_addr @ 8, handle @ 16, status @ 20, _pad0 @ 22,
});

/// `struct gnttab_setup_table` (24 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct GnttabSetupTable {
    /// IN: domain whose table is set up.
    pub dom: u16,
    /// Padding (implicit in C).
    pub _pad0: u16,
    /// IN: number of frames wanted.
    pub nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding (implicit in C).
    pub _pad1: [u16; 3],
    /// IN: guest handle of an array receiving the table's frames.
    pub frame_list: u64,
}

assert_layout!(GnttabSetupTable, size = 24, align = 8, {
    dom @ 0, _pad0 @ 2, nr_frames @ 4, status @ 8, _pad1 @ 10, frame_list @ 16,
});

/// `struct gnttab_copy_ptr`: one end of a [`GnttabCopy`] (16 bytes).
///
/// `u` is C's union `{ref: u32, gmfn: u64}`, selected by the copy's
/// `GNTCOPY_*_gref` flag; a guest naming a reference writes only the low
/// 32 bits, so read it with [`GnttabCopyPtr::gref`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct GnttabCopyPtr {
    /// IN: grant reference (low 32 bits) or guest frame.
    pub u: u64,
    /// IN: domain owning the page.
    pub domid: u16,
    /// IN: byte offset within the page.
    pub offset: u16,
    /// Padding (implicit in C).
    pub _pad0: u32,
}

assert_layout!(GnttabCopyPtr, size = 16, align = 8, { u @ 0, domid @ 8, offset @ 10, _pad0 @ 12 });

impl GnttabCopyPtr {
    /// `u.ref`: the grant reference (with `GNTCOPY_*_gref`).
    pub const fn gref(&self) -> u32 {
        self.u as u32
    }

    /// `u.gmfn`: the guest frame (without `GNTCOPY_*_gref`).
    pub const fn gmfn(&self) -> u64 {
        self.u
    }

    /// Sets `u.ref`, leaving the high half alone as C would.
    pub fn set_gref(&mut self, gref: u32) {
        self.u = (self.u & !0xffff_ffff) | gref as u64;
    }

    /// Sets `u.gmfn`.
    pub fn set_gmfn(&mut self, gmfn: u64) {
        self.u = gmfn;
    }
}

/// `struct gnttab_copy` (40 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct GnttabCopy {
    /// IN: where to copy from.
    pub source: GnttabCopyPtr,
    /// IN: where to copy to.
    pub dest: GnttabCopyPtr,
    /// IN: bytes to copy (within one page at each end).
    pub len: u16,
    /// IN: `GNTCOPY_*`.
    pub flags: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding (implicit in C).
    pub _pad0: u16,
}

assert_layout!(GnttabCopy, size = 40, align = 8, {
    source @ 0, dest @ 16, len @ 32, flags @ 34, status @ 36, _pad0 @ 38,
});

/// `struct gnttab_query_size` (16 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct GnttabQuerySize {
    /// IN: domain queried.
    pub dom: u16,
    /// Padding (implicit in C).
    pub _pad0: u16,
    /// OUT: current number of frames.
    pub nr_frames: u32,
    /// OUT: maximum number of frames.
    pub max_nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding (implicit in C).
    pub _pad1: u16,
}

assert_layout!(GnttabQuerySize, size = 16, align = 4, {
    dom @ 0, _pad0 @ 2, nr_frames @ 4, max_nr_frames @ 8, status @ 12, _pad1 @ 14,
});

/// `struct gnttab_set_version` (4 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct GnttabSetVersion {
    /// IN: version wanted; OUT: version in effect.
    pub version: u32,
}

assert_layout!(GnttabSetVersion, size = 4, align = 4, { version @ 0 });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ptr_views() {
        let mut p = GnttabCopyPtr { u: 0xffff_ffff_0000_0000, ..GnttabCopyPtr::default() };
        p.set_gref(17);
        assert_eq!(p.gref(), 17);
        assert_eq!(p.gmfn(), 0xffff_ffff_0000_0011);
        p.set_gmfn(0x1234);
        assert_eq!(p.gref(), 0x1234);
    }
}
