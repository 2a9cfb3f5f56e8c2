//! Test-only helpers shared by the host tests of the portable modules.

/// A small deterministic PRNG (xorshift64), so randomized tests need no
/// dependencies and replay exactly from their seed.
#[derive(Clone, Debug)]
pub struct XorShift(pub u64);

impl XorShift {
    /// The next value (the state must not be 0).
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items` (not empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A handler-test machine whose calling domain runs on a small validated
/// kernel page-table tree: L4 16 → L3 17 → L2 18 → L1 19, mapping
/// [`VA`](kernel_tree::VA)'s 2 MiB (no page mapped yet).
pub mod kernel_tree {
    use crate::hypercall::testing::World;
    use crate::hypercall::Platform;
    use crate::mm::pagetable::{index, pte};
    use crate::mm::pagetype::GuestFrames;
    use crate::mm::Mfn;

    /// An address the tree's L1 covers.
    pub const VA: u64 = 0xffff_ffff_8020_3000;
    /// The tree's L4, the domain's kernel base.
    pub const L4: Mfn = 16;
    /// The tree's L3.
    pub const L3: Mfn = 17;
    /// The tree's L2.
    pub const L2: Mfn = 18;
    /// The tree's L1, which maps `VA`.
    pub const L1: Mfn = 19;
    /// How the tree's entries name the next table, as a guest writes them.
    const TABLE: u64 = pte::P | pte::RW | pte::U | pte::A;

    /// An unprivileged domain (1) whose kernel base is the tree, validated.
    pub fn world() -> World {
        let mut w = World::new(false);
        let m = &mut w.platform.mem;
        m.entries(L4)[index(VA, 4)] = (L3 << 12) | TABLE;
        m.entries(L3)[index(VA, 3)] = (L2 << 12) | TABLE;
        m.entries(L2)[index(VA, 2)] = (L1 << 12) | TABLE;
        m.entries(L1);
        let dom = w.domain.id;
        let mut slot = None;
        w.platform.page_types(&mut |pt| pt.new_baseptr(dom, &mut slot, Some(L4)).expect("fixture validates"));
        w.domain.vcpu.kernel_table = slot;
        w
    }
}
