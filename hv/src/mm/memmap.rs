//! The physical memory map, as the firmware reports it, and the usable RAM
//! that follows from it.

use crate::fixed::FixedVec;
use crate::layout::PAGE_SIZE;

/// Most regions a memory map can hold.
pub const MAX_REGIONS: usize = 128;

/// What a range of physical addresses is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RegionKind {
    /// Usable RAM.
    Ram,
    /// Firmware or device memory: never touched.
    #[default]
    Reserved,
    /// ACPI tables, reclaimable after they are read.
    AcpiReclaimable,
    /// ACPI non-volatile storage.
    AcpiNvs,
    /// Defective RAM.
    Bad,
}

/// A range of physical addresses `[start, end)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// What the range is.
    pub kind: RegionKind,
}

impl Region {
    /// The empty range (a placeholder in fixed storage).
    pub const EMPTY: Region = Region { start: 0, end: 0, kind: RegionKind::Reserved };

    /// Whether `self` and `other` share a byte.
    pub const fn overlaps(&self, other: &Region) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// A memory map in firmware order (unsorted, possibly overlapping).
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryMap {
    regions: FixedVec<Region, MAX_REGIONS>,
}

/// A range of whole frames `[start, end)` of usable RAM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameRange {
    /// First frame.
    pub start: u64,
    /// One past the last frame.
    pub end: u64,
}

impl FrameRange {
    /// The frames wholly or partly covered by bytes `[start, end)`.
    pub const fn covering(start: u64, end: u64) -> FrameRange {
        FrameRange { start: start / PAGE_SIZE, end: end.div_ceil(PAGE_SIZE) }
    }

    /// Number of frames.
    pub const fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the range has no frames.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

impl MemoryMap {
    /// An empty map.
    pub const fn new() -> MemoryMap {
        MemoryMap { regions: FixedVec::filled_with(Region::EMPTY) }
    }

    /// Adds a region as the firmware reported it.
    pub fn push(&mut self, region: Region) -> Result<(), Region> {
        self.regions.push(region)
    }

    /// The regions, in the order given.
    pub fn regions(&self) -> &[Region] {
        self.regions.as_slice()
    }

    /// Usable RAM as sorted, disjoint ranges of whole frames: RAM regions
    /// shrunk to page boundaries, merged where they touch, with every
    /// frame that any non-RAM region touches removed (firmware maps
    /// sometimes overlap, and then the reservation wins).
    pub fn usable_frames(&self) -> FixedVec<FrameRange, MAX_REGIONS> {
        let mut out: FixedVec<FrameRange, MAX_REGIONS> = FixedVec::new();
        for r in self.regions().iter().filter(|r| r.kind == RegionKind::Ram) {
            let range = FrameRange { start: r.start.div_ceil(PAGE_SIZE), end: r.end / PAGE_SIZE };
            if !range.is_empty() {
                insert_merged(&mut out, range);
            }
        }
        for r in self.regions().iter().filter(|r| r.kind != RegionKind::Ram) {
            remove(&mut out, FrameRange::covering(r.start, r.end));
        }
        out
    }
}

/// Adds `new` to sorted disjoint `ranges`, merging overlapping or touching
/// ranges. Merging never needs more room than the inputs, so the only way to
/// run out is more disjoint RAM ranges than `MAX_REGIONS`, which the
/// firmware map cannot hold either.
fn insert_merged(ranges: &mut FixedVec<FrameRange, MAX_REGIONS>, mut new: FrameRange) {
    let mut i = 0;
    while i < ranges.len() {
        let r = ranges.as_slice()[i];
        if r.end < new.start {
            i += 1;
        } else if new.end < r.start {
            break;
        } else {
            new = FrameRange { start: r.start.min(new.start), end: r.end.max(new.end) };
            ranges.remove(i);
        }
    }
    let _ = ranges.insert(i, new);
}

/// Removes the frames of `hole` from sorted disjoint `ranges`.
fn remove(ranges: &mut FixedVec<FrameRange, MAX_REGIONS>, hole: FrameRange) {
    let mut i = 0;
    while i < ranges.len() {
        let r = ranges.as_slice()[i];
        if r.end <= hole.start || hole.end <= r.start {
            i += 1;
            continue;
        }
        ranges.remove(i);
        let (left, right) =
            (FrameRange { start: r.start, end: hole.start }, FrameRange { start: hole.end, end: r.end });
        for part in [left, right] {
            if !part.is_empty() {
                // Splitting one range into two can need one more slot; at
                // capacity the right-hand part is dropped (RAM lost, never
                // reserved memory used).
                if ranges.insert(i, part).is_ok() {
                    i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(regions: &[(u64, u64, RegionKind)]) -> MemoryMap {
        let mut m = MemoryMap::new();
        for &(start, end, kind) in regions {
            m.push(Region { start, end, kind }).unwrap();
        }
        m
    }

    fn frames(m: &MemoryMap) -> Vec<(u64, u64)> {
        m.usable_frames().as_slice().iter().map(|r| (r.start, r.end)).collect()
    }

    use RegionKind::*;

    #[test]
    fn qemu_map() {
        let m = map(&[
            (0, 0x9fc00, Ram),
            (0x9fc00, 0xa0000, Reserved),
            (0xf0000, 0x100000, Reserved),
            (0x100000, 0x7fe0000, Ram),
            (0x7fe0000, 0x8000000, Reserved),
            (0xfffc0000, 0x1_0000_0000, Reserved),
        ]);
        assert_eq!(frames(&m), [(0, 0x9f), (0x100, 0x7fe0)]);
    }

    #[test]
    fn ram_is_shrunk_to_whole_pages_and_merged() {
        let m = map(&[(0x1800, 0x5800, Ram), (0x5000, 0x9000, Ram), (0x9000, 0xa000, Ram)]);
        assert_eq!(frames(&m), [(2, 0xa)]);
    }

    #[test]
    fn reservations_win_over_overlapping_ram() {
        let m = map(&[(0, 0x10000, Ram), (0x3800, 0x4800, Reserved), (0xf000, 0x20000, AcpiNvs)]);
        assert_eq!(frames(&m), [(0, 3), (5, 0xf)]);
    }

    #[test]
    fn unsorted_input_gives_sorted_output() {
        let m = map(&[(0x20000, 0x30000, Ram), (0, 0x10000, Ram), (0x40000, 0x41000, Bad)]);
        assert_eq!(frames(&m), [(0, 0x10), (0x20, 0x30)]);
    }

    #[test]
    fn covering_rounds_outwards() {
        assert_eq!(FrameRange::covering(0x1001, 0x2001), FrameRange { start: 1, end: 3 });
        assert_eq!(FrameRange::covering(0x1000, 0x2000), FrameRange { start: 1, end: 2 });
    }
}
