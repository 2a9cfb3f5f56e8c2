//! A fake hypervisor for the builder's tests: hands out frames, records every write, fails on request.
//!
//! It keeps the bookkeeping a real one would (who owns each frame, the M2P,
//! each domain's ports, pinned tables) and checks what Xen checks where a
//! builder could get it wrong: frames written, pinned or initialised must
//! belong to the domain; memory cannot be populated before a maximum is
//! set; pinning validates the tables (every table frame owned, none of them
//! mapped writable); a pinned table can no longer be written; the vCPU's
//! `cr3` must be the pinned L4. Unlike Xen, `populate_physmap` leaves the
//! M2P alone, so the builder's own `set_m2p` calls are what the tests see.

use std::collections::{BTreeMap, HashSet};

use abi::arch::VcpuGuestContext;
use abi::boot::pagetables::{PTE_PRESENT, PTE_RW, RESERVED_L4_SLOTS};
use abi::Errno;

use super::{ControlOps, CreateDomain, DomId};

/// First machine frame the fake hands out (frames are a shuffled run from here).
pub const FIRST_MFN: u64 = 0x10_0000;
/// Mask of the frame address in a page-table entry.
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// A deliberate failure, on the `n`th counted call (see [`Fake::fault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The call returns this errno and changes nothing.
    Errno(Errno),
    /// `populate_physmap` populates only half of what it is asked.
    ShortPopulate,
    /// `populate_physmap` reports a frame number no page table can hold.
    HugeMfn,
    /// `shared_info_frame` reports a frame number no page table can hold.
    HugeSharedInfo,
}

/// One machine frame in use.
#[derive(Debug)]
pub struct Frame {
    /// The domain owning it.
    pub owner: DomId,
    /// Its bytes and which were ever written (one bit per byte); `None`
    /// until first written (all zero, none written), which keeps a fresh
    /// frame cheap.
    contents: Option<Box<([u8; 4096], [u64; 64])>>,
}

/// The bytes of a frame never written.
static ZERO_PAGE: [u8; 4096] = [0; 4096];

impl Frame {
    /// Its bytes.
    pub fn data(&self) -> &[u8; 4096] {
        self.contents.as_ref().map_or(&ZERO_PAGE, |c| &c.0)
    }

    /// Number of bytes ever written.
    pub fn written_bytes(&self) -> u32 {
        self.contents.as_ref().map_or(0, |c| c.1.iter().map(|w| w.count_ones()).sum())
    }
}

/// One domain.
#[derive(Debug)]
pub struct Dom {
    /// What it was created with.
    pub create: CreateDomain,
    /// Still paused (nothing here unpauses).
    pub paused: bool,
    /// `set_max_mem`, in KiB.
    pub max_kib: Option<u64>,
    /// `set_sched_credit`.
    pub sched: Option<(u16, u16)>,
    /// Its memory, in population order.
    pub pages: Vec<u64>,
    /// Its shared-info frame.
    pub shared_info: u64,
    /// Allocated ports: `(port, remote domain)`.
    pub ports: Vec<(u32, DomId)>,
    /// The pinned L4.
    pub pinned_l4: Option<u64>,
    /// Frames validated as page tables by the pin.
    pub tables: HashSet<u64>,
    /// The frame `hypercall_init` wrote.
    pub hypercall_page: Option<u64>,
    /// vCPU 0's context.
    pub vcpu0: Option<Box<VcpuGuestContext>>,
}

/// The fake hypervisor.
#[derive(Debug)]
pub struct Fake {
    /// What `xen_features` answers.
    pub features: u32,
    /// Fail the call with this index (0-based, counting every call but
    /// `destroy_domain`) this way.
    pub fault: Option<(usize, Fault)>,
    /// `destroy_domain` fails with `-EBUSY` and changes nothing.
    pub destroy_fails: bool,
    /// The name of every counted call, in order.
    pub calls: Vec<&'static str>,
    total: usize,
    /// Frames handed out at least once (the rest have never been used).
    fresh: usize,
    /// Frames freed since.
    free: Vec<u64>,
    /// Frames in use, by `mfn - FIRST_MFN`.
    frames: Vec<Option<Frame>>,
    /// The M2P, by `mfn - FIRST_MFN`.
    m2p: Vec<Option<u64>>,
    domains: BTreeMap<DomId, Dom>,
    next_domid: DomId,
}

impl Fake {
    /// A hypervisor with `frames` free frames (a power of two), offering `features`.
    pub fn new(frames: usize, features: u32) -> Self {
        assert!(frames == 0 || frames.is_power_of_two());
        Fake {
            features,
            fault: None,
            destroy_fails: false,
            calls: Vec::new(),
            total: frames,
            fresh: 0,
            free: Vec::new(),
            frames: (0..frames).map(|_| None).collect(),
            m2p: vec![None; frames],
            domains: BTreeMap::new(),
            next_domid: 1,
        }
    }

    /// Frames free: returned ones and never-used ones.
    fn free_count(&self) -> usize {
        self.free.len() + (self.total - self.fresh)
    }

    /// Nothing in use: no domain, every frame free, the M2P empty.
    pub fn is_clean(&self) -> bool {
        self.domains.is_empty()
            && self.frames.iter().all(Option::is_none)
            && self.free_count() == self.total
            && self.m2p.iter().all(Option::is_none)
    }

    /// Domain `domid`.
    pub fn domain(&self, domid: DomId) -> &Dom {
        &self.domains[&domid]
    }

    /// Number of domains.
    pub fn domain_count(&self) -> usize {
        self.domains.len()
    }

    /// Frame `mfn` (which must be in use).
    pub fn frame(&self, mfn: u64) -> &Frame {
        self.get(mfn).unwrap_or_else(|| panic!("mfn {mfn:#x} is not in use"))
    }

    /// The M2P entry of `mfn`.
    pub fn m2p(&self, mfn: u64) -> Option<u64> {
        Self::index(mfn).and_then(|i| self.m2p.get(i).copied().flatten())
    }

    /// Counts a call and applies the planned fault, if it is this call's.
    fn enter(&mut self, name: &'static str) -> Result<Option<Fault>, Errno> {
        let index = self.calls.len();
        self.calls.push(name);
        match self.fault {
            Some((at, Fault::Errno(e))) if at == index => Err(e),
            Some((at, fault)) if at == index => Ok(Some(fault)),
            _ => Ok(None),
        }
    }

    fn dom_mut(&mut self, domid: DomId) -> Result<&mut Dom, Errno> {
        self.domains.get_mut(&domid).ok_or(Errno::ESRCH)
    }

    fn alloc(&mut self, owner: DomId) -> Option<u64> {
        let mfn = match self.free.pop() {
            Some(mfn) => mfn,
            None if self.fresh < self.total => {
                // An odd multiplier permutes 0..2^k: a scrambled but
                // repeatable order, so the p2m is not the identity.
                let index = (self.fresh as u64).wrapping_mul(0x9e37_79b9) % self.total as u64;
                self.fresh += 1;
                FIRST_MFN + index
            }
            None => return None,
        };
        self.frames[(mfn - FIRST_MFN) as usize] = Some(Frame { owner, contents: None });
        Some(mfn)
    }

    /// The slot of `mfn`, if it is one of this hypervisor's frames.
    fn index(mfn: u64) -> Option<usize> {
        mfn.checked_sub(FIRST_MFN).and_then(|i| usize::try_from(i).ok())
    }

    fn get(&self, mfn: u64) -> Option<&Frame> {
        Self::index(mfn).and_then(|i| self.frames.get(i)).and_then(Option::as_ref)
    }

    fn owned(&self, domid: DomId, mfn: u64) -> bool {
        self.get(mfn).is_some_and(|f| f.owner == domid)
    }

    fn entry(&self, mfn: u64, slot: usize) -> u64 {
        let data = self.frame(mfn).data();
        u64::from_le_bytes(data[slot * 8..slot * 8 + 8].try_into().unwrap())
    }

    /// Validates the tables under the L4 at `l4` as Xen's pin does, and
    /// returns the table frames.
    fn validate(&self, domid: DomId, l4: u64) -> Result<HashSet<u64>, Errno> {
        let mut tables = HashSet::from([l4]);
        let mut level = vec![l4];
        let mut leaves = Vec::new();
        for depth in 0..4 {
            let mut next = Vec::new();
            for &table in &level {
                for slot in 0..512 {
                    if depth == 0 && RESERVED_L4_SLOTS.contains(&slot) {
                        continue;
                    }
                    let e = self.entry(table, slot);
                    if e & PTE_PRESENT == 0 {
                        continue;
                    }
                    let mfn = (e & ADDR_MASK) >> 12;
                    if !self.owned(domid, mfn) {
                        return Err(Errno::EINVAL);
                    }
                    if depth == 3 {
                        leaves.push((mfn, e));
                    } else if tables.insert(mfn) {
                        next.push(mfn);
                    }
                }
            }
            level = next;
        }
        // A page table mapped writable would let the guest forge mappings.
        if leaves.iter().any(|&(mfn, e)| e & PTE_RW != 0 && tables.contains(&mfn)) {
            return Err(Errno::EINVAL);
        }
        Ok(tables)
    }

    fn write(&mut self, mfn: u64, offset: usize, bytes: &[u8]) {
        let frame = self.frames[(mfn - FIRST_MFN) as usize].as_mut().expect("checked by the caller");
        let (data, written) = &mut **frame.contents.get_or_insert_with(|| Box::new(([0; 4096], [0; 64])));
        data[offset..offset + bytes.len()].copy_from_slice(bytes);
        // Mark bytes offset..end, a word of the bitmap at a time.
        let end = offset + bytes.len();
        let mut i = offset;
        while i < end {
            let bits = (end - i).min(64 - i % 64);
            let mask = if bits == 64 { u64::MAX } else { ((1u64 << bits) - 1) << (i % 64) };
            written[i / 64] |= mask;
            i += bits;
        }
    }
}

impl ControlOps for Fake {
    fn xen_features(&mut self) -> Result<u32, Errno> {
        self.enter("xen_features")?;
        Ok(self.features)
    }

    fn free_pages(&mut self) -> Result<u64, Errno> {
        self.enter("free_pages")?;
        Ok(self.free_count() as u64)
    }

    fn create_domain(&mut self, params: &CreateDomain) -> Result<DomId, Errno> {
        self.enter("create_domain")?;
        if params.max_vcpus == 0 || params.max_vcpus > 32 {
            return Err(Errno::EINVAL);
        }
        let domid = self.next_domid;
        let shared_info = self.alloc(domid).ok_or(Errno::ENOMEM)?;
        self.next_domid += 1;
        let dom = Dom {
            create: *params,
            paused: true,
            max_kib: None,
            sched: None,
            pages: Vec::new(),
            shared_info,
            ports: Vec::new(),
            pinned_l4: None,
            tables: HashSet::new(),
            hypercall_page: None,
            vcpu0: None,
        };
        self.domains.insert(domid, dom);
        Ok(domid)
    }

    fn set_max_mem(&mut self, domid: DomId, max_kib: u64) -> Result<(), Errno> {
        self.enter("set_max_mem")?;
        self.dom_mut(domid)?.max_kib = Some(max_kib);
        Ok(())
    }

    fn set_sched_credit(&mut self, domid: DomId, weight: u16, cap: u16) -> Result<(), Errno> {
        self.enter("set_sched_credit")?;
        if weight == 0 {
            return Err(Errno::EINVAL);
        }
        self.dom_mut(domid)?.sched = Some((weight, cap));
        Ok(())
    }

    fn alloc_unbound(&mut self, domid: DomId, remote: DomId) -> Result<u32, Errno> {
        self.enter("alloc_unbound")?;
        let dom = self.dom_mut(domid)?;
        let port = dom.ports.len() as u32 + 1;
        dom.ports.push((port, remote));
        Ok(port)
    }

    fn populate_physmap(&mut self, domid: DomId, extents: &mut [u64]) -> Result<usize, Errno> {
        let fault = self.enter("populate_physmap")?;
        let dom = self.dom_mut(domid)?;
        let max_pages = dom.max_kib.ok_or(Errno::EINVAL)? / 4;
        let room = max_pages.saturating_sub(dom.pages.len() as u64) as usize;
        let want = match fault {
            Some(Fault::ShortPopulate) => extents.len() / 2,
            _ => extents.len(),
        };
        let mut done = 0;
        while done < want.min(room) {
            let Some(mfn) = self.alloc(domid) else { break };
            self.dom_mut(domid)?.pages.push(mfn);
            extents[done] = mfn;
            done += 1;
        }
        if fault == Some(Fault::HugeMfn) && done > 0 {
            extents[0] = 1 << 45;
        }
        Ok(done)
    }

    fn set_m2p(&mut self, domid: DomId, mfn: u64, pfn: u64) -> Result<(), Errno> {
        self.enter("set_m2p")?;
        if !self.owned(domid, mfn) {
            return Err(Errno::EPERM);
        }
        self.m2p[(mfn - FIRST_MFN) as usize] = Some(pfn);
        Ok(())
    }

    fn shared_info_frame(&mut self, domid: DomId) -> Result<u64, Errno> {
        let fault = self.enter("shared_info_frame")?;
        let mfn = self.dom_mut(domid)?.shared_info;
        Ok(if fault == Some(Fault::HugeSharedInfo) { 1 << 45 } else { mfn })
    }

    fn write_frame(&mut self, domid: DomId, mfn: u64, offset: usize, bytes: &[u8]) -> Result<(), Errno> {
        self.enter("write_frame")?;
        if !self.owned(domid, mfn) {
            return Err(Errno::EPERM);
        }
        if offset.checked_add(bytes.len()).is_none_or(|end| end > 4096) {
            return Err(Errno::EINVAL);
        }
        if self.dom_mut(domid)?.tables.contains(&mfn) {
            return Err(Errno::EBUSY);
        }
        self.write(mfn, offset, bytes);
        Ok(())
    }

    fn hypercall_init(&mut self, domid: DomId, gmfn: u64) -> Result<(), Errno> {
        self.enter("hypercall_init")?;
        if !self.owned(domid, gmfn) || self.dom_mut(domid)?.tables.contains(&gmfn) {
            return Err(Errno::EINVAL);
        }
        let mut page = [0u8; 4096];
        abi::hypercall_page::write_hypercall_page(&mut page);
        self.write(gmfn, 0, &page);
        self.dom_mut(domid)?.hypercall_page = Some(gmfn);
        Ok(())
    }

    fn pin_l4(&mut self, domid: DomId, mfn: u64) -> Result<(), Errno> {
        self.enter("pin_l4")?;
        if !self.owned(domid, mfn) || self.dom_mut(domid)?.pinned_l4.is_some() {
            return Err(Errno::EINVAL);
        }
        let tables = self.validate(domid, mfn)?;
        let dom = self.dom_mut(domid)?;
        dom.pinned_l4 = Some(mfn);
        dom.tables = tables;
        Ok(())
    }

    fn set_vcpu_context(&mut self, domid: DomId, ctx: &VcpuGuestContext) -> Result<(), Errno> {
        self.enter("set_vcpu_context")?;
        let dom = self.dom_mut(domid)?;
        if dom.pinned_l4 != Some(ctx.ctrlreg[3] >> 12) {
            return Err(Errno::EINVAL);
        }
        dom.vcpu0 = Some(Box::new(*ctx));
        Ok(())
    }

    fn destroy_domain(&mut self, domid: DomId) -> Result<(), Errno> {
        if self.destroy_fails {
            return Err(Errno::EBUSY);
        }
        let dom = self.domains.remove(&domid).ok_or(Errno::ESRCH)?;
        for mfn in dom.pages.into_iter().chain([dom.shared_info]) {
            let i = (mfn - FIRST_MFN) as usize;
            self.frames[i] = None;
            self.m2p[i] = None;
            self.free.push(mfn);
        }
        Ok(())
    }
}
