//! A first-fit free-list allocator over regions the kernel hands it: the
//! core of the kernel heap (`mm` maps the pages and grows it).
//!
//! Free blocks form a list sorted by address; each holds its size and the
//! next block in its first 16 bytes. Every block starts on a [`GRAIN`]
//! boundary and is a multiple of it, so any split leaves either nothing or
//! a block big enough for its header. Freed blocks merge with free
//! neighbours.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

/// Allocation granule and the smallest block: room for a free block's
/// header.
pub const GRAIN: usize = 16;

#[repr(C)]
struct Block {
    size: usize,
    next: *mut Block,
}

const _: () = assert!(core::mem::size_of::<Block>() <= GRAIN);

const fn round_up(n: usize, to: usize) -> usize {
    (n + to - 1) & !(to - 1)
}

/// The free list.
#[derive(Debug)]
pub struct FreeList {
    head: *mut Block,
    free_bytes: usize,
}

// SAFETY: the list owns the free memory it points to; whoever holds the
// FreeList (behind a lock) is the only user of those blocks.
unsafe impl Send for FreeList {}

impl Default for FreeList {
    fn default() -> Self {
        Self::new()
    }
}

impl FreeList {
    /// An empty list.
    pub const fn new() -> FreeList {
        FreeList { head: ptr::null_mut(), free_bytes: 0 }
    }

    /// Bytes free in the list.
    pub const fn free_bytes(&self) -> usize {
        self.free_bytes
    }

    /// Gives the list `[start, start + size)`, trimmed to whole granules.
    ///
    /// # Safety
    ///
    /// The memory is valid for reads and writes, belongs to nothing else
    /// and stays valid for as long as this list or anything allocated from
    /// it is used.
    pub unsafe fn add_region(&mut self, start: usize, size: usize) {
        let begin = round_up(start, GRAIN);
        let end = (start + size) & !(GRAIN - 1);
        if end > begin {
            // SAFETY: the caller gives us the region.
            unsafe { self.insert(begin, end - begin) };
        }
    }

    /// A block for `layout`, or `None` if no free block fits.
    pub fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        let size = round_up(layout.size().max(1), GRAIN);
        let align = layout.align().max(GRAIN);
        let mut prev: *mut Block = ptr::null_mut();
        let mut cur = self.head;
        while !cur.is_null() {
            // SAFETY: every block in the list is a free block we own, with
            // its header written.
            let Block { size: bsize, next } = unsafe { cur.read() };
            let bstart = cur as usize;
            let bend = bstart + bsize;
            let start = round_up(bstart, align);
            if let Some(end) = start.checked_add(size).filter(|&e| e <= bend) {
                // Unlink, then give back what is left before and after.
                // SAFETY: prev (if any) is a live block of the list.
                unsafe { self.set_next(prev, next) };
                self.free_bytes -= bsize;
                if start > bstart {
                    // SAFETY: [bstart, start) was part of the free block.
                    unsafe { self.insert(bstart, start - bstart) };
                }
                if bend > end {
                    // SAFETY: [end, bend) was part of the free block.
                    unsafe { self.insert(end, bend - end) };
                }
                return NonNull::new(start as *mut u8);
            }
            prev = cur;
            cur = next;
        }
        None
    }

    /// Returns a block.
    ///
    /// # Safety
    ///
    /// `ptr` came from [`FreeList::alloc`] of this list with this `layout`
    /// and is not used any more.
    pub unsafe fn dealloc(&mut self, ptr: NonNull<u8>, layout: Layout) {
        let size = round_up(layout.size().max(1), GRAIN);
        // SAFETY: the caller returns a block this list gave out.
        unsafe { self.insert(ptr.as_ptr() as usize, size) };
    }

    /// # Safety
    ///
    /// `prev` is null or a block of the list.
    unsafe fn set_next(&mut self, prev: *mut Block, next: *mut Block) {
        if prev.is_null() {
            self.head = next;
        } else {
            // SAFETY: the caller's promise.
            unsafe { (*prev).next = next };
        }
    }

    /// Adds the free block `[start, start + size)` in address order,
    /// merging it with neighbours that touch it.
    ///
    /// # Safety
    ///
    /// The block is ours, granule-aligned, a multiple of [`GRAIN`], and
    /// overlaps no free block.
    unsafe fn insert(&mut self, start: usize, size: usize) {
        let mut prev: *mut Block = ptr::null_mut();
        let mut cur = self.head;
        while !cur.is_null() && (cur as usize) < start {
            prev = cur;
            // SAFETY: a block of the list.
            cur = unsafe { (*cur).next };
        }
        self.free_bytes += size;
        let mut bsize = size;
        // Merge with the next block.
        if !cur.is_null() && start + size == cur as usize {
            // SAFETY: a block of the list.
            let next = unsafe { cur.read() };
            bsize += next.size;
            cur = next.next;
        }
        // Merge into the previous block, or link a new one.
        if !prev.is_null() {
            // SAFETY: a block of the list.
            let p = unsafe { prev.read() };
            if prev as usize + p.size == start {
                // SAFETY: as above.
                unsafe { prev.write(Block { size: p.size + bsize, next: cur }) };
                return;
            }
        }
        let block = start as *mut Block;
        // SAFETY: the caller's free memory, with room for a header.
        unsafe { block.write(Block { size: bsize, next: cur }) };
        // SAFETY: prev is null or a block of the list.
        unsafe { self.set_next(prev, block) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16-aligned arena of `bytes`.
    fn arena(bytes: usize) -> (Vec<u128>, usize) {
        let v = vec![0u128; bytes / 16];
        let start = v.as_ptr() as usize;
        (v, start)
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn allocates_frees_and_merges() {
        let (_mem, start) = arena(4096);
        let mut l = FreeList::new();
        // SAFETY: the arena outlives the list and nothing else uses it.
        unsafe { l.add_region(start, 4096) };
        assert_eq!(l.free_bytes(), 4096);
        let a = l.alloc(layout(100, 8)).unwrap();
        let b = l.alloc(layout(1, 1)).unwrap();
        assert_eq!(a.as_ptr() as usize, start);
        assert_eq!(b.as_ptr() as usize, start + 112);
        assert_eq!(l.free_bytes(), 4096 - 128);
        // SAFETY: a came from this list with this layout.
        unsafe { l.dealloc(a, layout(100, 8)) };
        // SAFETY: as for a.
        unsafe { l.dealloc(b, layout(1, 1)) };
        assert_eq!(l.free_bytes(), 4096);
        // Merged back into one block: the whole arena fits again.
        assert_eq!(l.alloc(layout(4096, 16)).map(|p| p.as_ptr() as usize), Some(start));
        assert!(l.alloc(layout(1, 1)).is_none());
    }

    #[test]
    fn alignment_is_honoured_and_the_gap_stays_free() {
        let (_mem, start) = arena(3 * 4096);
        let mut l = FreeList::new();
        // SAFETY: as above.
        unsafe { l.add_region(start + 16, 3 * 4096 - 16) };
        let p = l.alloc(layout(64, 4096)).unwrap();
        assert_eq!(p.as_ptr() as usize % 4096, 0);
        assert_eq!(l.free_bytes(), 3 * 4096 - 16 - 64);
        // The gap before the aligned block is still usable.
        let q = l.alloc(layout(16, 16)).unwrap();
        assert_eq!(q.as_ptr() as usize, start + 16);
    }

    #[test]
    fn random_use_never_overlaps_and_returns_everything() {
        let size = 64 * 1024;
        let (_mem, start) = arena(size);
        let mut l = FreeList::new();
        // SAFETY: as above.
        unsafe { l.add_region(start, size) };
        let mut live: Vec<(usize, Layout)> = Vec::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 5 < 3 {
                let lay = layout(1 + (x >> 8) as usize % 700, 1 << ((x >> 20) % 8));
                if let Some(p) = l.alloc(lay) {
                    let a = p.as_ptr() as usize;
                    assert_eq!(a % lay.align(), 0);
                    assert!(a >= start && a + lay.size() <= start + size);
                    for &(b, lb) in &live {
                        assert!(a + lay.size() <= b || b + lb.size() <= a, "overlap");
                    }
                    live.push((a, lay));
                }
            } else if !live.is_empty() {
                let (a, lay) = live.swap_remove((x >> 16) as usize % live.len());
                // SAFETY: allocated above with this layout, not used since.
                unsafe { l.dealloc(NonNull::new(a as *mut u8).unwrap(), lay) };
            }
        }
        for (a, lay) in live.drain(..) {
            // SAFETY: as above.
            unsafe { l.dealloc(NonNull::new(a as *mut u8).unwrap(), lay) };
        }
        assert_eq!(l.free_bytes(), size);
        assert!(l.alloc(layout(size, 16)).is_some(), "not merged back into one block");
    }
}
