//! Building x86_64 4-level page tables in machine frames.
//!
//! Used for the hypervisor's own mappings (the guest-readable M2P) and by
//! the domain builder. Frames are reached through a [`TableMemory`]: the
//! direct map on the machine, a vector of pages in tests.

use super::Mfn;

/// Page-table entry bits.
pub mod pte {
    /// Present.
    pub const P: u64 = 1 << 0;
    /// Writable.
    pub const RW: u64 = 1 << 1;
    /// User-accessible (ring 3).
    pub const U: u64 = 1 << 2;
    /// Accessed.
    pub const A: u64 = 1 << 5;
    /// Dirty.
    pub const D: u64 = 1 << 6;
    /// Large page (at L2/L3).
    pub const PS: u64 = 1 << 7;
    /// Global.
    pub const G: u64 = 1 << 8;
    /// No execute.
    pub const NX: u64 = 1 << 63;
    /// The machine address bits of an entry.
    pub const ADDR: u64 = 0x000f_ffff_ffff_f000;
}

/// Access to page-table frames.
pub trait TableMemory {
    /// The 512 entries of the table in frame `mfn`.
    fn table(&mut self, mfn: Mfn) -> &mut [u64; 512];
    /// A new zeroed frame for a page table, or `None` when out of memory.
    fn alloc_table(&mut self) -> Option<Mfn>;
}

/// The index into the level-`level` table (4 = L4 … 1 = L1) for `va`.
pub const fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * (level - 1))) & 511) as usize
}

/// Maps the 4 KiB page at `va` to `leaf` (machine address | flags) in the
/// tree rooted at `l4`, creating missing tables with `table_flags`. Fails
/// when a table cannot be allocated or a large page is in the way.
pub fn map_4k(mem: &mut impl TableMemory, l4: Mfn, va: u64, leaf: u64, table_flags: u64) -> Result<(), MapError> {
    let mut table = l4;
    for level in [4, 3, 2] {
        let i = index(va, level);
        let entry = mem.table(table)[i];
        table = if entry & pte::P == 0 {
            let new = mem.alloc_table().ok_or(MapError::OutOfMemory)?;
            mem.table(table)[i] = (new << 12) | table_flags;
            new
        } else if entry & pte::PS != 0 {
            return Err(MapError::LargePage);
        } else {
            (entry & pte::ADDR) >> 12
        };
    }
    mem.table(table)[index(va, 1)] = leaf;
    Ok(())
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// No frame for a page table.
    OutOfMemory,
    /// A large page covers the address.
    LargePage,
}

/// Walks the tree rooted at `l4` for `va`: the L1 entry, if every level is
/// present (large pages are reported as their entry).
pub fn lookup(mem: &mut impl TableMemory, l4: Mfn, va: u64) -> Option<u64> {
    let mut table = l4;
    for level in [4, 3, 2, 1] {
        let entry = mem.table(table)[index(va, level)];
        if entry & pte::P == 0 {
            return None;
        }
        if level == 1 || entry & pte::PS != 0 {
            return Some(entry);
        }
        table = (entry & pte::ADDR) >> 12;
    }
    None
}

/// A vector of page frames standing in for machine memory in tests.
#[cfg(test)]
pub mod fake {
    use super::*;

    /// Frames `0..tables.len()`; allocation hands out the next unused one.
    #[derive(Debug, Default)]
    pub struct FakeTables {
        /// The frames.
        pub tables: Vec<[u64; 512]>,
    }

    impl TableMemory for FakeTables {
        fn table(&mut self, mfn: Mfn) -> &mut [u64; 512] {
            &mut self.tables[mfn as usize]
        }
        fn alloc_table(&mut self) -> Option<Mfn> {
            self.tables.push([0; 512]);
            Some(self.tables.len() as u64 - 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeTables;
    use super::*;

    #[test]
    fn maps_and_looks_up() {
        let mut m = FakeTables::default();
        let l4 = m.alloc_table().unwrap();
        let va = 0xffff_8000_0000_3000;
        map_4k(&mut m, l4, va, (0x1234 << 12) | pte::P | pte::U, pte::P | pte::RW | pte::U).unwrap();
        assert_eq!(m.tables.len(), 4, "L4 plus three new tables");
        assert_eq!(lookup(&mut m, l4, va), Some((0x1234 << 12) | pte::P | pte::U));
        assert_eq!(lookup(&mut m, l4, va + 0x1000), None);
        assert_eq!(m.tables[l4 as usize][256] & (pte::P | pte::U), pte::P | pte::U);
        map_4k(&mut m, l4, va + 0x1000, (0x99 << 12) | pte::P, pte::P).unwrap();
        assert_eq!(m.tables.len(), 4, "tables are shared");
    }

    #[test]
    fn large_pages_are_not_split() {
        let mut m = FakeTables::default();
        let l4 = m.alloc_table().unwrap();
        let l3 = m.alloc_table().unwrap();
        m.tables[l4 as usize][0] = (l3 << 12) | pte::P;
        m.tables[l3 as usize][0] = pte::P | pte::PS;
        assert_eq!(map_4k(&mut m, l4, 0x1000, pte::P, pte::P), Err(MapError::LargePage));
        assert_eq!(lookup(&mut m, l4, 0x1000), Some(pte::P | pte::PS));
    }
}
