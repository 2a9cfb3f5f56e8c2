//! A 16550 UART driven with `in` and `out`: dom0's control port.
//!
//! A PV kernel's port I/O is emulated by the hypervisor (`#GP`, decoded,
//! performed) once the kernel has raised its virtual IOPL with
//! `PHYSDEVOP_set_iopl`, and reaches the device only for ports its domain
//! was given: dom0's, on this hypervisor and on Xen, are every port the
//! hypervisor does not use itself. Each access is a trap, so this is for
//! modest rates; reads poll the line status (no interrupts).

use crate::hypercall::hv;
use core::arch::asm;

/// The second UART's I/O base (COM2).
pub const COM2: u16 = 0x2f8;

const DATA: u16 = 0;
const IER: u16 = 1;
const FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const SCRATCH: u16 = 7;
const LSR_DATA_READY: u8 = 0x01;
const LSR_THR_EMPTY: u8 = 0x20;

fn outb(port: u16, value: u8) {
    // SAFETY: port I/O touches no memory; in a PV kernel it traps to the
    // hypervisor, which checks it (a port not given reads as 0xff).
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) }
}

fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as for `outb`.
    unsafe { asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags)) }
    value
}

/// A UART at an I/O base.
#[derive(Clone, Copy, Debug)]
pub struct Uart {
    base: u16,
}

impl Uart {
    /// Raises the virtual IOPL, checks that a UART answers at `base` (its
    /// scratch register keeps what is written) and programs it for 115200
    /// 8N1 with FIFOs and no interrupts. `Err` says why there is none.
    pub fn open(base: u16) -> Result<Uart, &'static str> {
        hv().physdev_set_iopl(1).map_err(|_| "physdev_op(set_iopl) refused")?;
        for probe in [0x5a, 0xa5] {
            outb(base + SCRATCH, probe);
            if inb(base + SCRATCH) != probe {
                return Err("no UART answers there");
            }
        }
        outb(base + IER, 0);
        outb(base + LCR, 0x80);
        outb(base + DATA, 1);
        outb(base + IER, 0);
        outb(base + LCR, 0x03);
        outb(base + FCR, 0xc7);
        outb(base + MCR, 0x0b);
        Ok(Uart { base })
    }

    /// Reads what has arrived into `buf`, without waiting; how many bytes.
    pub fn read(&self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() && inb(self.base + LSR) & LSR_DATA_READY != 0 {
            buf[n] = inb(self.base + DATA);
            n += 1;
        }
        n
    }

    /// Sends `bytes`, waiting for room.
    pub fn write(&self, bytes: impl IntoIterator<Item = u8>) {
        for b in bytes {
            while inb(self.base + LSR) & LSR_THR_EMPTY == 0 {
                core::hint::spin_loop();
            }
            outb(self.base + DATA, b);
        }
    }
}
