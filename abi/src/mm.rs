//! Memory: `mmu_update`, `mmuext_op`, `update_va_mapping`, `memory_op`, multicalls, domain ids, `vm_assist`.

// ---- mmu_update --------------------------------------------------------

/// `mmu_update` (`ptr & 3`): checked `*ptr = val`; `ptr` is the machine
/// address of a page-table entry.
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
/// `mmu_update` (`ptr & 3`): `M2P[ptr >> 12] = val`.
pub const MMU_MACHPHYS_UPDATE: u64 = 1;
/// `mmu_update` (`ptr & 3`): like a normal update, keeping the entry's
/// current A and D bits.
pub const MMU_PT_UPDATE_PRESERVE_AD: u64 = 2;
/// `mmu_update` (`ptr & 3`): like a normal update, `ptr` untranslated.
pub const MMU_PT_UPDATE_NO_TRANSLATE: u64 = 3;

abi_enum! {
    /// The kind of an `mmu_update` request (`ptr & 3`).
    pub enum MmuUpdateKind: u64 {
        /// [`MMU_NORMAL_PT_UPDATE`].
        NormalPtUpdate = MMU_NORMAL_PT_UPDATE,
        /// [`MMU_MACHPHYS_UPDATE`].
        MachphysUpdate = MMU_MACHPHYS_UPDATE,
        /// [`MMU_PT_UPDATE_PRESERVE_AD`].
        PtUpdatePreserveAd = MMU_PT_UPDATE_PRESERVE_AD,
        /// [`MMU_PT_UPDATE_NO_TRANSLATE`].
        PtUpdateNoTranslate = MMU_PT_UPDATE_NO_TRANSLATE,
    }
}

/// `struct mmu_update`: one `mmu_update` request (16 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct MmuUpdate {
    /// IN: machine address (low 2 bits: `MMU_*` kind).
    pub ptr: u64,
    /// IN: new contents.
    pub val: u64,
}

assert_layout!(MmuUpdate, size = 16, align = 8, { ptr @ 0, val @ 8 });

impl MmuUpdate {
    /// The request's kind, from `ptr & 3` (every value is one).
    pub const fn kind(&self) -> MmuUpdateKind {
        match self.ptr & 3 {
            MMU_NORMAL_PT_UPDATE => MmuUpdateKind::NormalPtUpdate,
            MMU_MACHPHYS_UPDATE => MmuUpdateKind::MachphysUpdate,
            MMU_PT_UPDATE_PRESERVE_AD => MmuUpdateKind::PtUpdatePreserveAd,
            _ => MmuUpdateKind::PtUpdateNoTranslate,
        }
    }

    /// The machine address with the kind bits cleared.
    pub const fn addr(&self) -> u64 {
        self.ptr & !3
    }
}

// ---- mmuext_op ---------------------------------------------------------

/// `mmuext_op`: pin an L1 table (`arg1` = mfn).
pub const MMUEXT_PIN_L1_TABLE: u32 = 0;
/// `mmuext_op`: pin an L2 table (`arg1` = mfn).
pub const MMUEXT_PIN_L2_TABLE: u32 = 1;
/// `mmuext_op`: pin an L3 table (`arg1` = mfn).
pub const MMUEXT_PIN_L3_TABLE: u32 = 2;
/// `mmuext_op`: pin an L4 table (`arg1` = mfn).
pub const MMUEXT_PIN_L4_TABLE: u32 = 3;
/// `mmuext_op`: unpin a table (`arg1` = mfn).
pub const MMUEXT_UNPIN_TABLE: u32 = 4;
/// `mmuext_op`: load a new kernel base pointer (`arg1` = L4 mfn).
pub const MMUEXT_NEW_BASEPTR: u32 = 5;
/// `mmuext_op`: flush this vCPU's TLB.
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6;
/// `mmuext_op`: invalidate one page locally (`arg1` = linear address).
pub const MMUEXT_INVLPG_LOCAL: u32 = 7;
/// `mmuext_op`: flush the TLBs of a vCPU set (`arg2` = vcpumask handle).
pub const MMUEXT_TLB_FLUSH_MULTI: u32 = 8;
/// `mmuext_op`: invalidate one page on a vCPU set.
pub const MMUEXT_INVLPG_MULTI: u32 = 9;
/// `mmuext_op`: flush every vCPU's TLB.
pub const MMUEXT_TLB_FLUSH_ALL: u32 = 10;
/// `mmuext_op`: invalidate one page on every vCPU.
pub const MMUEXT_INVLPG_ALL: u32 = 11;
/// `mmuext_op`: write back and invalidate caches.
pub const MMUEXT_FLUSH_CACHE: u32 = 12;
/// `mmuext_op`: set the LDT (`arg1` = linear address, `arg2` = entries).
pub const MMUEXT_SET_LDT: u32 = 13;
/// `mmuext_op`: load a new user base pointer (`arg1` = L4 mfn).
pub const MMUEXT_NEW_USER_BASEPTR: u32 = 15;
/// `mmuext_op`: zero a page (`arg1` = mfn).
pub const MMUEXT_CLEAR_PAGE: u32 = 16;
/// `mmuext_op`: copy a page (`arg1` = destination mfn, `arg2` = source mfn).
pub const MMUEXT_COPY_PAGE: u32 = 17;
/// `mmuext_op`: write back and invalidate caches on all CPUs.
pub const MMUEXT_FLUSH_CACHE_GLOBAL: u32 = 18;
/// `mmuext_op`: mark a superpage (obsolete).
pub const MMUEXT_MARK_SUPER: u32 = 19;
/// `mmuext_op`: unmark a superpage (obsolete).
pub const MMUEXT_UNMARK_SUPER: u32 = 20;

/// `struct mmuext_op`: one extended MMU operation (24 bytes).
///
/// `arg1` is C's union `{mfn, linear_addr}`; `arg2` is the union
/// `{nr_ents: u32, vcpumask: handle, src_mfn}`. A guest that sets `nr_ents`
/// writes only the low 32 bits, so read it with [`MmuextOp::nr_ents`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct MmuextOp {
    /// IN: `MMUEXT_*`.
    pub cmd: u32,
    /// Padding (implicit in C).
    pub _pad0: u32,
    /// IN: `mfn` or `linear_addr`, by command.
    pub arg1: u64,
    /// IN: `nr_ents`, `vcpumask` or `src_mfn`, by command.
    pub arg2: u64,
}

assert_layout!(MmuextOp, size = 24, align = 8, { cmd @ 0, _pad0 @ 4, arg1 @ 8, arg2 @ 16 });

impl MmuextOp {
    /// `arg2.nr_ents` (for `MMUEXT_SET_LDT`): the union's low 32 bits.
    pub const fn nr_ents(&self) -> u32 {
        self.arg2 as u32
    }

    /// Sets `arg2.nr_ents`, leaving `arg2`'s high half alone as C would.
    pub fn set_nr_ents(&mut self, nr_ents: u32) {
        self.arg2 = (self.arg2 & !0xffff_ffff) | nr_ents as u64;
    }
}

// ---- update_va_mapping ---------------------------------------------------

/// `update_va_mapping` flags: no flush.
pub const UVMF_NONE: u64 = 0;
/// `update_va_mapping` flags: flush the whole TLB.
pub const UVMF_TLB_FLUSH: u64 = 1;
/// `update_va_mapping` flags: flush only the updated entry.
pub const UVMF_INVLPG: u64 = 2;
/// `update_va_mapping` flags: mask of the flush type.
pub const UVMF_FLUSHTYPE_MASK: u64 = 3;
/// `update_va_mapping` flags: flush a vCPU set (a vcpumask pointer is
/// or-ed into the flags).
pub const UVMF_MULTI: u64 = 0;
/// `update_va_mapping` flags: flush the local TLB only.
pub const UVMF_LOCAL: u64 = 0;
/// `update_va_mapping` flags: flush all vCPUs' TLBs.
pub const UVMF_ALL: u64 = 1 << 2;

// ---- memory_op -------------------------------------------------------------

/// `memory_op`: add extents ([`XenMemoryReservation`]).
pub const XENMEM_INCREASE_RESERVATION: u32 = 0;
/// `memory_op`: release extents ([`XenMemoryReservation`]).
pub const XENMEM_DECREASE_RESERVATION: u32 = 1;
/// `memory_op`: the highest machine frame number in use.
pub const XENMEM_MAXIMUM_RAM_PAGE: u32 = 2;
/// `memory_op`: a domain's current page count ([`XenMemoryDomain`]).
pub const XENMEM_CURRENT_RESERVATION: u32 = 3;
/// `memory_op`: a domain's page limit ([`XenMemoryDomain`]).
pub const XENMEM_MAXIMUM_RESERVATION: u32 = 4;
/// `memory_op`: the frames holding the M2P table ([`XenMachphysMfnList`]).
pub const XENMEM_MACHPHYS_MFN_LIST: u32 = 5;
/// `memory_op`: populate guest frames ([`XenMemoryReservation`]).
pub const XENMEM_POPULATE_PHYSMAP: u32 = 6;
/// `memory_op`: map a special page into the physmap ([`XenAddToPhysmap`]).
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
/// `memory_op`: the domain's pseudo-physical memory map ([`XenMemoryMap`]).
pub const XENMEM_MEMORY_MAP: u32 = 9;
/// `memory_op`: the machine memory map (dom0).
pub const XENMEM_MACHINE_MEMORY_MAP: u32 = 10;
/// `memory_op`: exchange extents.
pub const XENMEM_EXCHANGE: u32 = 11;
/// `memory_op`: where the M2P is mapped ([`XenMachphysMapping`]).
pub const XENMEM_MACHPHYS_MAPPING: u32 = 12;
/// `memory_op`: set a domain's memory map (toolstack).
pub const XENMEM_SET_MEMORY_MAP: u32 = 13;
/// `memory_op`: the highest guest frame number in use.
pub const XENMEM_MAXIMUM_GPFN: u32 = 14;
/// `memory_op`: remove a page from the physmap.
pub const XENMEM_REMOVE_FROM_PHYSMAP: u32 = 15;
/// `memory_op`: set the populate-on-demand target.
pub const XENMEM_SET_POD_TARGET: u32 = 16;
/// `memory_op`: get the populate-on-demand target.
pub const XENMEM_GET_POD_TARGET: u32 = 17;
/// `memory_op`: batched `add_to_physmap`.
pub const XENMEM_ADD_TO_PHYSMAP_BATCH: u32 = 23;
/// `memory_op`: claim pages for a domain (toolstack only).
pub const XENMEM_CLAIM_PAGES: u32 = 24;
/// `memory_op`: M2P frames for 32-bit guests.
pub const XENMEM_MACHPHYS_COMPAT_MFN_LIST: u32 = 25;
/// `memory_op`: virtual NUMA information.
pub const XENMEM_GET_VNUMAINFO: u32 = 26;
/// `memory_op`: reserved device memory map (toolstack only).
pub const XENMEM_RESERVED_DEVICE_MEMORY_MAP: u32 = 27;
/// `memory_op`: map a resource (ioreq server, grant table) of a domain.
pub const XENMEM_ACQUIRE_RESOURCE: u32 = 28;

/// `xen_memory_reservation.mem_flags`: populate-on-demand entries.
pub const XENMEMF_POPULATE_ON_DEMAND: u32 = 1 << 16;
/// `xen_memory_reservation.mem_flags`: allocate only from the given node.
pub const XENMEMF_EXACT_NODE_REQUEST: u32 = 1 << 17;
/// `xen_memory_reservation.mem_flags`: the node is a virtual node.
pub const XENMEMF_VNODE: u32 = 1 << 18;

/// `xen_add_to_physmap.space`: the shared-info page.
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// `xen_add_to_physmap.space`: a grant-table frame.
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// `xen_add_to_physmap.space`: a guest frame.
pub const XENMAPSPACE_GMFN: u32 = 2;
/// `xen_add_to_physmap.space`: a range of guest frames.
pub const XENMAPSPACE_GMFN_RANGE: u32 = 3;
/// `xen_add_to_physmap.space`: a frame of another domain.
pub const XENMAPSPACE_GMFN_FOREIGN: u32 = 4;
/// `xen_add_to_physmap.space`: device MMIO (Arm only).
pub const XENMAPSPACE_DEV_MMIO: u32 = 5;
/// `xen_add_to_physmap.idx` bit: a grant-table status frame.
pub const XENMAPIDX_GRANT_TABLE_STATUS: u64 = 0x8000_0000;

/// `struct xen_memory_reservation` (32 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenMemoryReservation {
    /// IN/OUT: guest handle of an array of frame numbers (in for decrease,
    /// in/out for populate, out for increase; may be null for increase).
    pub extent_start: u64,
    /// IN: number of extents.
    pub nr_extents: u64,
    /// IN: each extent is `2^extent_order` pages.
    pub extent_order: u32,
    /// IN: `XENMEMF_*` flags (and address bits in the low byte).
    pub mem_flags: u32,
    /// IN: domain to operate on (usually `DOMID_SELF`).
    pub domid: u16,
    /// Padding (implicit in C).
    pub _pad0: [u16; 3],
}

assert_layout!(XenMemoryReservation, size = 32, align = 8, {
    extent_start @ 0, nr_extents @ 8, extent_order @ 16, mem_flags @ 20,
    domid @ 24, _pad0 @ 26,
});

/// `struct xen_memory_domain`: the argument of `current_reservation` and
/// `maximum_reservation` (2 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenMemoryDomain {
    /// IN: domain queried.
    pub domid: u16,
}

assert_layout!(XenMemoryDomain, size = 2, align = 2, { domid @ 0 });

/// `struct xen_machphys_mfn_list` (24 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenMachphysMfnList {
    /// IN: size of the `extent_start` array.
    pub max_extents: u32,
    /// Padding (implicit in C).
    pub _pad0: u32,
    /// IN: guest handle of an array receiving the M2P's 2 MiB frames.
    pub extent_start: u64,
    /// OUT: entries written.
    pub nr_extents: u32,
    /// Padding (implicit in C).
    pub _pad1: u32,
}

assert_layout!(XenMachphysMfnList, size = 24, align = 8, {
    max_extents @ 0, _pad0 @ 4, extent_start @ 8, nr_extents @ 16, _pad1 @ 20,
});

/// `struct xen_machphys_mapping` (24 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenMachphysMapping {
    /// OUT: start virtual address of the M2P.
    pub v_start: u64,
    /// OUT: end virtual address of the M2P.
    pub v_end: u64,
    /// OUT: maximum MFN the M2P can look up.
    pub max_mfn: u64,
}

assert_layout!(XenMachphysMapping, size = 24, align = 8, {
    v_start @ 0, v_end @ 8, max_mfn @ 16,
});

/// `struct xen_add_to_physmap` (24 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenAddToPhysmap {
    /// IN: domain whose physmap changes.
    pub domid: u16,
    /// IN: number of pages (for `XENMAPSPACE_GMFN_RANGE`).
    pub size: u16,
    /// IN: `XENMAPSPACE_*`.
    pub space: u32,
    /// IN: index into the space.
    pub idx: u64,
    /// IN: guest frame where the page should appear.
    pub gpfn: u64,
}

assert_layout!(XenAddToPhysmap, size = 24, align = 8, {
    domid @ 0, size @ 2, space @ 4, idx @ 8, gpfn @ 16,
});

/// `struct xen_memory_map` (16 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XenMemoryMap {
    /// IN: entries the buffer holds; OUT: entries written.
    pub nr_entries: u32,
    /// Padding (implicit in C).
    pub _pad0: u32,
    /// IN: guest handle of an array of e820 entries.
    pub buffer: u64,
}

assert_layout!(XenMemoryMap, size = 16, align = 8, { nr_entries @ 0, _pad0 @ 4, buffer @ 8 });

// ---- multicall -------------------------------------------------------------

/// `struct multicall_entry`: one call of a `multicall` batch (64 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct MulticallEntry {
    /// IN: hypercall number.
    pub op: u64,
    /// OUT: the call's result.
    pub result: u64,
    /// IN: the call's arguments.
    pub args: [u64; 6],
}

assert_layout!(MulticallEntry, size = 64, align = 8, { op @ 0, result @ 8, args @ 16 });

// ---- domain ids ------------------------------------------------------------

/// First domain id reserved for special meanings.
pub const DOMID_FIRST_RESERVED: u16 = 0x7ff0;
/// The calling domain.
pub const DOMID_SELF: u16 = 0x7ff0;
/// I/O memory (as a foreign domain for `mmu_update`).
pub const DOMID_IO: u16 = 0x7ff1;
/// The hypervisor (owner of its own shared pages).
pub const DOMID_XEN: u16 = 0x7ff2;
/// Copy-on-write (shared) pages.
pub const DOMID_COW: u16 = 0x7ff3;
/// No domain.
pub const DOMID_INVALID: u16 = 0x7ff4;
/// The idle domain.
pub const DOMID_IDLE: u16 = 0x7fff;
/// Mask of valid domain-id bits.
pub const DOMID_MASK: u16 = 0x7fff;

// ---- vm_assist -------------------------------------------------------------

/// `vm_assist` command: enable an assist.
pub const VMASST_CMD_ENABLE: u32 = 0;
/// `vm_assist` command: disable an assist.
pub const VMASST_CMD_DISABLE: u32 = 1;
/// Assist: emulate 4 GiB segments (x86_32 only).
pub const VMASST_TYPE_4GB_SEGMENTS: u32 = 0;
/// Assist: notify on 4 GiB segment emulation (x86_32 only).
pub const VMASST_TYPE_4GB_SEGMENTS_NOTIFY: u32 = 1;
/// Assist: writable page tables (trap-and-emulate PTE writes).
pub const VMASST_TYPE_WRITABLE_PAGETABLES: u32 = 2;
/// Assist: PAE page directories above 4 GiB (x86_32 only).
pub const VMASST_TYPE_PAE_EXTENDED_CR3: u32 = 3;
/// Assist: architectural IOPL semantics.
pub const VMASST_TYPE_ARCHITECTURAL_IOPL: u32 = 4;
/// Assist: flag runstate-area updates with `XEN_RUNSTATE_UPDATE`.
pub const VMASST_TYPE_RUNSTATE_UPDATE_FLAG: u32 = 5;
/// Assist: strict M2P (hide guest-invisible entries).
pub const VMASST_TYPE_M2P_STRICT: u32 = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmu_update_kind_from_low_bits() {
        let u = MmuUpdate { ptr: 0x1234_5000 | 2, val: 0 };
        assert_eq!(u.kind(), MmuUpdateKind::PtUpdatePreserveAd);
        assert_eq!(MmuUpdate::default().kind(), MmuUpdateKind::NormalPtUpdate);
    }

    #[test]
    fn nr_ents_is_the_low_half() {
        let mut op = MmuextOp { arg2: 0xdead_beef_0000_0000, ..MmuextOp::default() };
        op.set_nr_ents(512);
        assert_eq!(op.nr_ents(), 512);
        assert_eq!(op.arg2 >> 32, 0xdead_beef);
    }
}
