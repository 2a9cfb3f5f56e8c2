//! I/O ports for PV kernels: `in` and `out` emulated behind `#GP`.
//!
//! A PV kernel runs in ring 3 with the real IOPL 0, so every `in` and
//! `out` faults. As Xen does, the hypervisor decodes the instruction and
//! performs it when the vCPU's virtual IOPL allows (at least 1 in guest
//! kernel mode, 3 in guest user mode; `PHYSDEVOP_set_iopl` sets it):
//! then a port the domain was given is really accessed, and any other
//! port reads as all ones and ignores writes. A vCPU whose virtual IOPL
//! does not allow port I/O gets the `#GP`.
//!
//! The control domain is given every port but the ones the hypervisor
//! drives itself ([`hypervisor_port`]); other domains are given none.
//! Only the single-port forms are emulated (`in`/`out` with an immediate
//! or `%dx` port, 8, 16 or 32 bits); the string forms (`ins`, `outs`)
//! fault to the guest.

use crate::regs::Regs;

/// One port access, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortIo {
    /// The port.
    pub port: u16,
    /// 1, 2 or 4 bytes.
    pub size: u8,
    /// `out` (else `in`).
    pub write: bool,
    /// The instruction's length in bytes.
    pub len: u8,
}

/// Port ranges the hypervisor drives (inclusive): the guest may not touch
/// them even if it was given I/O ports.
const HYPERVISOR_PORTS: [(u16, u16); 9] = [
    (0x20, 0x21),   // master PIC
    (0x40, 0x43),   // PIT (TSC calibration)
    (0x61, 0x61),   // PIT channel 2 gate
    (0x70, 0x71),   // RTC (the wall clock)
    (0xa0, 0xa1),   // slave PIC
    (0xf4, 0xf4),   // QEMU's isa-debug-exit (power off)
    (0x3f8, 0x3ff), // COM1, the hypervisor's console
    (0x4d0, 0x4d1), // ELCR
    (0xcf8, 0xcff), // PCI configuration
];

/// Whether any byte of `size` bytes at `port` is one the hypervisor
/// drives (a range that wraps past 0xffff counts as the hypervisor's).
pub fn hypervisor_port(port: u16, size: u8) -> bool {
    let Some(last) = port.checked_add(u16::from(size.max(1)) - 1) else {
        return true;
    };
    HYPERVISOR_PORTS.iter().any(|&(lo, hi)| port <= hi && lo <= last)
}

/// Whether a vCPU with virtual IOPL `iopl` may use `in`/`out` at all in
/// its current mode (Xen's `iopl_ok`).
pub fn iopl_allows(iopl: u8, kernel_mode: bool) -> bool {
    iopl >= if kernel_mode { 1 } else { 3 }
}

/// Decodes an `in` or `out` at the start of `code` (the bytes at the
/// guest's `rip`), with the port from `regs.rdx` for the `%dx` forms.
/// Operand-size (`0x66`) and REX prefixes are understood; anything else is
/// not an emulated port access.
pub fn decode(code: &[u8], regs: &Regs) -> Option<PortIo> {
    let mut wide = 4u8;
    let mut at = 0usize;
    loop {
        match *code.get(at)? {
            0x66 => wide = 2,
            0x40..=0x4f => {}
            _ => break,
        }
        at += 1;
        if at >= 4 {
            return None;
        }
    }
    let op = *code.get(at)?;
    let size = if op & 1 == 0 { 1 } else { wide };
    let write = op & 2 != 0;
    let (port, len) = match op {
        0xe4..=0xe7 => (u16::from(*code.get(at + 1)?), at + 2),
        0xec..=0xef => (regs.rdx as u16, at + 1),
        _ => return None,
    };
    Some(PortIo { port, size, write, len: len as u8 })
}

/// The port I/O the CPU performs for an emulated access.
pub trait PortBus {
    /// Reads `size` bytes (1, 2 or 4) from `port`.
    fn read(&mut self, port: u16, size: u8) -> u32;
    /// Writes the low `size` bytes (1, 2 or 4) of `value` to `port`.
    fn write(&mut self, port: u16, size: u8, value: u32);
}

/// Performs `io` for a domain that was (`given`) or was not given I/O
/// ports: the result lands in `rax` as the instruction would put it, and
/// `rip` moves past the instruction.
pub fn perform(io: PortIo, given: bool, regs: &mut Regs, bus: &mut dyn PortBus) {
    let allowed = given && !hypervisor_port(io.port, io.size);
    let mask: u32 = match io.size {
        1 => 0xff,
        2 => 0xffff,
        _ => u32::MAX,
    };
    if io.write {
        if allowed {
            bus.write(io.port, io.size, regs.rax as u32 & mask);
        }
    } else {
        let value = if allowed { bus.read(io.port, io.size) & mask } else { mask };
        regs.rax = match io.size {
            // A 32-bit result zero-extends into the whole register.
            4 => u64::from(value),
            _ => (regs.rax & !u64::from(mask)) | u64::from(value),
        };
    }
    regs.rip = regs.rip.wrapping_add(u64::from(io.len));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Bus {
        log: Vec<(bool, u16, u8, u32)>,
    }

    impl PortBus for Bus {
        fn read(&mut self, port: u16, size: u8) -> u32 {
            self.log.push((false, port, size, 0));
            0x1234_5678
        }
        fn write(&mut self, port: u16, size: u8, value: u32) {
            self.log.push((true, port, size, value));
        }
    }

    fn regs(rax: u64, rdx: u64) -> Regs {
        Regs { rax, rdx, rip: 0x1000, ..Regs::default() }
    }

    #[test]
    fn every_form_decodes() {
        let r = regs(0, 0x2fd);
        let d = |code: &[u8]| decode(code, &r);
        assert_eq!(d(&[0xec]), Some(PortIo { port: 0x2fd, size: 1, write: false, len: 1 }));
        assert_eq!(d(&[0xed]), Some(PortIo { port: 0x2fd, size: 4, write: false, len: 1 }));
        assert_eq!(d(&[0x66, 0xed]), Some(PortIo { port: 0x2fd, size: 2, write: false, len: 2 }));
        assert_eq!(d(&[0xee]), Some(PortIo { port: 0x2fd, size: 1, write: true, len: 1 }));
        assert_eq!(d(&[0x66, 0xef]), Some(PortIo { port: 0x2fd, size: 2, write: true, len: 2 }));
        assert_eq!(d(&[0xe4, 0x60]), Some(PortIo { port: 0x60, size: 1, write: false, len: 2 }));
        assert_eq!(d(&[0xe7, 0x80]), Some(PortIo { port: 0x80, size: 4, write: true, len: 2 }));
        assert_eq!(d(&[0x48, 0xec]), Some(PortIo { port: 0x2fd, size: 1, write: false, len: 2 }), "REX ignored");
    }

    #[test]
    fn other_instructions_and_truncated_bytes_are_not_port_io() {
        let r = regs(0, 0);
        for code in [&[][..], &[0x66], &[0xe4], &[0x6c], &[0x6e], &[0x0f, 0x20], &[0x66, 0x66, 0x66, 0x66, 0xec]] {
            assert_eq!(decode(code, &r), None, "{code:x?}");
        }
    }

    #[test]
    fn the_hypervisors_ports_are_refused_whole() {
        assert!(hypervisor_port(0x3f8, 1));
        assert!(hypervisor_port(0x3f6, 4), "a dword reaching into COM1");
        assert!(hypervisor_port(0xcfc, 4));
        assert!(hypervisor_port(0xffff, 2), "wraps");
        assert!(!hypervisor_port(0x2f8, 1), "COM2 is free");
        assert!(!hypervisor_port(0x3f4, 4));
    }

    #[test]
    fn iopl_follows_the_guest_mode() {
        assert!(!iopl_allows(0, true));
        assert!(iopl_allows(1, true));
        assert!(!iopl_allows(2, false));
        assert!(iopl_allows(3, false));
    }

    #[test]
    fn reads_merge_into_rax_as_the_cpu_would() {
        let mut bus = Bus::default();
        let mut r = regs(0xffff_ffff_ffff_ffff, 0x2f8);
        perform(decode(&[0xec], &r).unwrap(), true, &mut r, &mut bus);
        assert_eq!((r.rax, r.rip), (0xffff_ffff_ffff_ff78, 0x1001));
        perform(decode(&[0x66, 0xed], &r).unwrap(), true, &mut r, &mut bus);
        assert_eq!(r.rax, 0xffff_ffff_ffff_5678);
        perform(decode(&[0xed], &r).unwrap(), true, &mut r, &mut bus);
        assert_eq!(r.rax, 0x1234_5678, "32-bit results zero-extend");
        assert_eq!(bus.log.len(), 3);
    }

    #[test]
    fn ports_not_given_read_all_ones_and_drop_writes() {
        let mut bus = Bus::default();
        let mut r = regs(0xab, 0x3fd);
        perform(decode(&[0xec], &r).unwrap(), true, &mut r, &mut bus);
        assert_eq!(r.rax, 0xff, "COM1 belongs to the hypervisor");
        let mut r = regs(0xab, 0x2f8);
        perform(decode(&[0xee], &r).unwrap(), false, &mut r, &mut bus);
        perform(decode(&[0xed], &r).unwrap(), false, &mut r, &mut bus);
        assert_eq!(r.rax, 0xffff_ffff);
        assert!(bus.log.is_empty(), "nothing reached the bus");
        let mut r = regs(0x1_0000_00ab, 0x2f8);
        perform(decode(&[0xee], &r).unwrap(), true, &mut r, &mut bus);
        assert_eq!(bus.log, vec![(true, 0x2f8, 1, 0xab)]);
    }
}
