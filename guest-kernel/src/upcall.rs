//! The guest side of Xen's 2-level event protocol: which ports an upcall
//! must handle, found in a `vcpu_info` and the shared-info bitmaps exactly
//! as Xen expects them to be consumed.
//!
//! The hypervisor marks port `p` pending by setting bit `p` of
//! `evtchn_pending`; if it was clear and the port is not masked in
//! `evtchn_mask`, it also sets selector bit `p / 64` in
//! `evtchn_pending_sel` and `evtchn_upcall_pending`, and delivers an upcall
//! when `evtchn_upcall_mask` is clear. [`Bitmaps::drain`] is the consumer:
//!
//! 1. clear `evtchn_upcall_pending`;
//! 2. take the selector with an atomic exchange against 0;
//! 3. for each selected word, lowest first: the ports pending and not
//!    masked; atomically clear each one's pending bit, then handle it;
//! 4. repeat while the hypervisor set `evtchn_upcall_pending` again.
//!
//! Clearing `evtchn_upcall_pending` before taking the selector, and each
//! pending bit before its handler runs, means an event raised while the
//! handler runs is seen again rather than lost. A masked port keeps its
//! pending bit; unmasking it (the `EVTCHNOP_unmask` hypercall) re-raises it.
//!
//! Portable: the bitmaps are plain atomics, so the host tests run the
//! protocol against a model of the hypervisor's half.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering::SeqCst};

/// Bits per bitmap word: ports per selector bit.
pub const BITS_PER_WORD: u32 = 64;
/// Words in each bitmap (2-level: 64 × 64 = 4096 ports).
pub const WORDS: usize = 64;

/// The event state one upcall consumes: the vCPU's flags and the domain's
/// bitmaps, as atomics over the shared memory the hypervisor also writes.
#[derive(Clone, Copy, Debug)]
pub struct Bitmaps<'a> {
    /// `vcpu_info.evtchn_upcall_pending`.
    pub upcall_pending: &'a AtomicU8,
    /// `vcpu_info.evtchn_pending_sel`.
    pub pending_sel: &'a AtomicU64,
    /// `shared_info.evtchn_pending`.
    pub pending: &'a [AtomicU64; WORDS],
    /// `shared_info.evtchn_mask`.
    pub mask: &'a [AtomicU64; WORDS],
}

/// The word and bit of `port`.
pub const fn word_and_bit(port: u32) -> (usize, u64) {
    ((port / BITS_PER_WORD) as usize, 1 << (port % BITS_PER_WORD))
}

impl Bitmaps<'_> {
    /// Consumes every pending, unmasked port, calling `handle` with each
    /// (lowest word first, lowest bit first within a word) after clearing
    /// its pending bit. Returns how many ports were handled.
    pub fn drain(&self, mut handle: impl FnMut(u32)) -> u64 {
        let mut handled = 0;
        loop {
            self.upcall_pending.store(0, SeqCst);
            let mut words = self.pending_sel.swap(0, SeqCst);
            while words != 0 {
                let w = words.trailing_zeros();
                words &= words - 1;
                let ready = self.pending[w as usize].load(SeqCst) & !self.mask[w as usize].load(SeqCst);
                let mut bits = ready;
                while bits != 0 {
                    let b = bits.trailing_zeros();
                    bits &= bits - 1;
                    // Only the one who clears the bit handles the event
                    // (a handler's own drain may have taken it already).
                    let was = self.pending[w as usize].fetch_and(!(1u64 << b), SeqCst);
                    if was & (1 << b) != 0 {
                        handled += 1;
                        handle(w * BITS_PER_WORD + b);
                    }
                }
            }
            if self.upcall_pending.load(SeqCst) == 0 {
                return handled;
            }
        }
    }

    /// Whether `port` is pending.
    pub fn is_pending(&self, port: u32) -> bool {
        let (w, bit) = word_and_bit(port);
        self.pending.get(w).is_some_and(|p| p.load(SeqCst) & bit != 0)
    }

    /// Whether `port` is masked.
    pub fn is_masked(&self, port: u32) -> bool {
        let (w, bit) = word_and_bit(port);
        self.mask.get(w).is_some_and(|m| m.load(SeqCst) & bit != 0)
    }

    /// Clears `port`'s pending bit without handling it; whether it was set.
    pub fn clear_pending(&self, port: u32) -> bool {
        let (w, bit) = word_and_bit(port);
        self.pending.get(w).is_some_and(|p| p.fetch_and(!bit, SeqCst) & bit != 0)
    }

    /// Sets `port`'s mask bit (the guest may do this itself; unmasking
    /// needs the hypervisor, to re-raise a pending event).
    pub fn mask_port(&self, port: u32) {
        let (w, bit) = word_and_bit(port);
        if let Some(m) = self.mask.get(w) {
            m.fetch_or(bit, SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vCPU's event state and the hypervisor's half of the protocol.
    struct Model {
        upcall_pending: AtomicU8,
        sel: AtomicU64,
        pending: [AtomicU64; WORDS],
        mask: [AtomicU64; WORDS],
    }

    impl Model {
        fn new() -> Model {
            Model {
                upcall_pending: AtomicU8::new(0),
                sel: AtomicU64::new(0),
                pending: [const { AtomicU64::new(0) }; WORDS],
                mask: [const { AtomicU64::new(0) }; WORDS],
            }
        }

        fn bitmaps(&self) -> Bitmaps<'_> {
            Bitmaps {
                upcall_pending: &self.upcall_pending,
                pending_sel: &self.sel,
                pending: &self.pending,
                mask: &self.mask,
            }
        }

        /// Xen's `evtchn_2l_set_pending`.
        fn set_pending(&self, port: u32) {
            let (w, bit) = word_and_bit(port);
            if self.pending[w].fetch_or(bit, SeqCst) & bit != 0 {
                return;
            }
            if self.mask[w].load(SeqCst) & bit == 0 && self.sel.fetch_or(1 << w, SeqCst) & (1 << w) == 0 {
                self.upcall_pending.store(1, SeqCst);
            }
        }

        /// Xen's `evtchn_2l_unmask`.
        fn unmask(&self, port: u32) {
            let (w, bit) = word_and_bit(port);
            if self.mask[w].fetch_and(!bit, SeqCst) & bit != 0
                && self.pending[w].load(SeqCst) & bit != 0
                && self.sel.fetch_or(1 << w, SeqCst) & (1 << w) == 0
            {
                self.upcall_pending.store(1, SeqCst);
            }
        }
    }

    fn drained(m: &Model) -> Vec<u32> {
        let mut got = Vec::new();
        m.bitmaps().drain(|p| got.push(p));
        got
    }

    #[test]
    fn ports_come_out_in_order_once_each() {
        let m = Model::new();
        for p in [4095, 3, 64, 1, 3, 130] {
            m.set_pending(p);
        }
        assert_eq!(m.upcall_pending.load(SeqCst), 1);
        assert_eq!(drained(&m), [1, 3, 64, 130, 4095]);
        assert_eq!(m.upcall_pending.load(SeqCst), 0);
        assert_eq!(m.sel.load(SeqCst), 0);
        assert!(m.pending.iter().all(|w| w.load(SeqCst) == 0));
        assert_eq!(drained(&m), []);
    }

    #[test]
    fn masked_ports_wait_for_unmask() {
        let m = Model::new();
        m.bitmaps().mask_port(7);
        m.set_pending(7);
        m.set_pending(9);
        assert_eq!(drained(&m), [9]);
        assert!(m.bitmaps().is_pending(7));
        m.unmask(7);
        assert_eq!(m.upcall_pending.load(SeqCst), 1);
        assert_eq!(drained(&m), [7]);
    }

    #[test]
    fn an_event_raised_by_a_handler_is_not_lost() {
        let m = Model::new();
        m.set_pending(5);
        let mut got = Vec::new();
        m.bitmaps().drain(|p| {
            got.push(p);
            // The handler sends again on its own port and on one in a
            // word already scanned.
            if got.len() == 1 {
                m.set_pending(5);
                m.set_pending(2);
            }
        });
        assert_eq!(got, [5, 2, 5]);
        assert_eq!(drained(&m), []);
    }

    #[test]
    fn a_selector_bit_without_pending_ports_is_harmless() {
        let m = Model::new();
        // What register_vcpu_info leaves: every selector bit set.
        m.sel.store(u64::MAX, SeqCst);
        m.upcall_pending.store(1, SeqCst);
        m.pending[2].store(1 << 3, SeqCst);
        assert_eq!(drained(&m), [2 * 64 + 3]);
        assert_eq!(m.sel.load(SeqCst), 0);
    }

    #[test]
    fn clearing_a_pending_port_drops_its_event() {
        let m = Model::new();
        m.set_pending(70);
        assert!(m.bitmaps().clear_pending(70));
        assert!(!m.bitmaps().clear_pending(70));
        assert_eq!(drained(&m), []);
        assert!(!m.bitmaps().is_masked(70));
        assert!(!m.bitmaps().is_pending(5000));
    }
}
